"""Fuzz a real gateway with hostile WAMP messages and print what happened.

Starts a gateway on 127.0.0.1 (this checkout, a fresh secret, the flags the
campaign needs), runs the seeded campaign of ``tests/fuzz_campaign.py``
against it, stops it, and prints: messages sent, connections, replies by
kind, connection endings by close code, unclean endings, events the
well-behaved subscribers lost (live, and on resume), and the tracebacks and "could not …" error
lines in the gateway's log (grouped by their last line)::

    python tools/fuzz_gateway.py --messages 20000 --connections 3000 --seed 11

Loopback only. Each lane holds one connection at a time, so the process
needs about ``--concurrency`` + 20 file descriptors (``ulimit -n``), however
many connections the run makes in all. Exit status 1 when a connection ended
without a close frame, an event was lost, or the log has a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz_campaign import GATEWAY_FLAGS, run_campaign  # noqa: E402
from gateway_helpers import start_gateway  # noqa: E402

FAILURE_LINES = re.compile(r"Traceback|could not (deliver|store|save|serve)|persistence worker failed|Fatal error|Exception in callback|exception was never retrieved")


RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def log_failures(log: str) -> collections.Counter[str]:
    """Group the error records of a gateway log by what they say and the exception that ended their traceback."""
    groups: collections.Counter[str] = collections.Counter()
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if not RECORD.match(line) or not FAILURE_LINES.search(line):
            continue
        block = []
        for follow in lines[index + 1 :]:
            if RECORD.match(follow):
                break
            block.append(follow)
        causes = [b for b in block if b and not b.startswith((" ", "Traceback", "During handling", "The above", "protocol:", "transport:"))]
        cause = causes[-1] if causes else ""
        message = RECORD.sub("", line).split(": ", 1)[-1]
        text = f"{message[:70]} -> {cause[:160]}"
        # One group per kind of failure, not per value: numbers, addresses and quoted characters vary.
        text = re.sub(r"'\\?[^']{1,8}'", "'…'", re.sub(r"0x[0-9a-f]+|\d+", "N", text))
        groups[text] += 1
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="hostile messages to send in all")
    parser.add_argument("--connections", type=int, default=3000, help="about how many hostile connections to spread them over")
    parser.add_argument("--concurrency", type=int, default=100, help="hostile connections open at once")
    parser.add_argument("--events", type=int, default=400, help="events the well-behaved publisher sends over HTTP")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--store", default="memory://", help="the gateway's --store (e.g. sqlite:///tmp/fuzz.sqlite3)")
    parser.add_argument("--show", type=int, default=3, help="unclean endings to print with the frames that preceded them")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.concurrency + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.concurrency + 1024), hard))
    gateway = start_gateway(*GATEWAY_FLAGS, env={"TELEGRAPHY_STORE": args.store})
    try:
        assert gateway.secret is not None
        report = asyncio.run(
            run_campaign(
                "127.0.0.1", gateway.port, gateway.secret, messages=args.messages, connections=args.connections,
                seed=args.seed, concurrency=args.concurrency, events=args.events,
            )
        )
        alive = gateway.alive()
    finally:
        try:
            gateway.stop()
        except AssertionError as exc:
            print(f"gateway did not stop cleanly: {str(exc).splitlines()[0]}")
    log = gateway.stderr()
    failures = log_failures(log)
    for line in report.lines():
        print(line)
    for ending, frames in report.unclean[: args.show]:
        print(f"  unclean ({ending}) after: {frames}")
    print(f"gateway alive at the end: {alive}")
    print(f"tracebacks in log: {log.count('Traceback')}; error lines by cause:")
    for cause, count in failures.most_common():
        print(f"  {count:6d}  {cause}")
    lost = sum(len(v) for v in report.lost().values())
    closing_lost = sum(len(v) for v in report.closing_lost().values())
    print(f"events lost: {lost + closing_lost} (web app's over HTTP: {lost}; published right before a Close frame: {closing_lost}; summed over both subscribers)")
    lost += closing_lost
    return 1 if report.unclean or lost or "Traceback" in log or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
