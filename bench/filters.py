"""Fan-out with server-side filters and field projections: deliveries/s against a real gateway.

Each scenario starts a fresh gateway process on 127.0.0.1, opens the same
number of WebSocket subscribers (from load-generator processes, as
``bench/fanout.py`` does), publishes the same events through ``POST /publish``
and prints deliveries/s, the gateway's CPU time per 1,000 deliveries and the
publish→receive latency. Nothing here asserts; it prints numbers.

Scenarios:

- ``none``: plain subscriptions, plain events (the baseline).
- ``filters``: every subscriber holds a *different* filter, all of them
  matching every event (``{"filter": {"kind": "item", "n__gte": 0},
  "exclude": {"owner": i}}``): one subscription and one filter evaluation per
  subscriber per event, the same deliveries as the baseline.
- ``filters-10pct``: different filters each matching one event in ten
  (``{"filter": {"bucket": i % 10}, "exclude": {"owner": i}}``).
- ``projections``: a third of the subscribers are staff, a third users, a
  third anonymous (connect tokens with different ``groups``); every event
  carries 3 projections, so each is encoded 3 times and every subscriber gets
  its own fields.

Examples::

    python bench/filters.py                          # 1,000 subscribers, 500 events, every scenario
    python bench/filters.py --scenario filters --events 2000

Each scenario is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout import percentile, pin, raise_nofile, start_gateway  # noqa: E402
from wsclient import Receiver, connect  # noqa: E402

from telegraphy.tokens import mint_connect_token, mint_publish_token  # noqa: E402

TOPIC = "bench.Item"
SCENARIOS = ("none", "filters", "filters-10pct", "projections")
STAFF = {"groups": ["staff"]}
PROJECTIONS = [
    {"audience": STAFF, "fields": None},
    {"audience": "authenticated", "fields": ["t", "n", "title", "status"]},
    {"audience": "public", "fields": ["t", "n", "title"]},
]


def subscriber_specs(scenario: str, count: int, secret: str) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Return (SUBSCRIBE options, ticket) for each subscriber of ``scenario``."""
    specs: list[tuple[dict[str, Any] | None, str | None]] = []
    for i in range(count):
        if scenario == "filters":
            specs.append(({"filter": {"kind": "item", "n__gte": 0}, "exclude": {"owner": i}}, None))
        elif scenario == "filters-10pct":
            specs.append(({"filter": {"bucket": i % 10}, "exclude": {"owner": i}}, None))
        elif scenario == "projections":
            kind = i % 3
            ticket = None if kind == 2 else mint_connect_token(secret, f"u{i}", ttl=3600, claims=STAFF if kind == 0 else None)
            specs.append((None, ticket))
        else:
            specs.append((None, None))
    return specs


def receiver(port: int, specs: list[tuple[dict[str, Any] | None, str | None]], sample_every: int, conn: Any) -> None:
    """Load-generator process: open the subscribers, then count events until told the total."""
    raise_nofile()
    pin("load")
    subs = [
        connect("127.0.0.1", port, TOPIC, sample_every > 0 and i % sample_every == 0, options, ticket)
        for i, (options, ticket) in enumerate(specs)
    ]
    recv = Receiver(subs)
    conn.send(("ready", len(subs)))
    expected, deadline = conn.recv()
    recv.run(expected, deadline)
    conn.send(("done", recv.total(), recv.latencies))
    recv.close()


def publisher(port: int, secret: str, first: int, events: int, batch: int, pad: int, projections: bool, out: list[float]) -> None:
    """POST events ``first .. first + events - 1`` in batches; append the time it took to ``out``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {mint_publish_token(secret, ttl=3600)}", "Content-Type": "application/json"}
    meta: dict[str, Any] = {"event_type": "update"}
    if projections:
        meta["projections"] = PROJECTIONS
    start = time.monotonic()
    for offset in range(0, events, batch):
        now = time.time()
        body = [
            {
                "name": TOPIC,
                "meta": meta,
                "data": {"t": now, "n": n, "kind": "item", "bucket": n % 10, "owner": -1, "title": "Item", "status": "open",
                         "total": n * 3, "pad": "x" * pad},
            }
            for n in range(first + offset, first + min(offset + batch, events))
        ]
        conn.request("POST", "/publish", json.dumps(body), headers)
        response = conn.getresponse()
        response.read()
        if response.status != 202:
            raise SystemExit(f"publish failed: {response.status}")
    out.append(time.monotonic() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_scenario(scenario: str, args: argparse.Namespace) -> dict[str, float]:
    secret = secrets.token_urlsafe(32)
    gateway, port = start_gateway(secret, ["--max-subscriptions", "0", *args.gateway_arg])
    pin("load")
    stop_at = time.monotonic() + args.timeout
    procs: list[mp.Process] = []
    try:
        specs = subscriber_specs(scenario, args.subscribers, secret)
        chunks = [specs[i :: args.procs] for i in range(args.procs)]
        pipes = []
        for chunk in chunks:
            parent, child = mp.Pipe()
            process = mp.Process(target=receiver, args=(port, chunk, args.sample_every, child), daemon=True)
            process.start()
            pipes.append(parent)
            procs.append(process)
        opened = 0
        for pipe in pipes:
            if not pipe.poll(max(1.0, stop_at - time.monotonic())):
                raise SystemExit("subscribers did not connect in time")
            opened += pipe.recv()[1]
        per_subscriber = args.events // 10 if scenario == "filters-10pct" else args.events
        for pipe in pipes:
            pipe.send((per_subscriber, stop_at))
        cpu_before = cpu_seconds(gateway.pid)
        durations: list[float] = []
        shares = [args.events // args.publishers + (1 if i < args.events % args.publishers else 0) for i in range(args.publishers)]
        firsts = [sum(shares[:i]) for i in range(len(shares))]
        threads = [
            threading.Thread(
                target=publisher, args=(port, secret, first, n, args.batch, args.pad, scenario == "projections", durations)
            )
            for first, n in zip(firsts, shares)
            if n
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = 0
        samples: list[tuple[float, float]] = []
        for pipe in pipes:
            if pipe.poll(max(1.0, stop_at - time.monotonic() + 5)):
                _, count, latencies = pipe.recv()
                received += count
                samples += latencies
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(gateway.pid) - cpu_before
        expected = per_subscriber * opened
        latencies = [kernel for kernel, _ in samples]
        result = {
            "subscribers": opened,
            "received": received,
            "expected": expected,
            "elapsed": elapsed,
            "rate": received / elapsed,
            "cpu_per_1k": cpu / max(received, 1) * 1000 * 1000,
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
        }
        print(
            f"{scenario:>14}: {received:,} of {expected:,} deliveries ({expected - received} lost) in {elapsed:.2f} s = "
            f"{result['rate']:,.0f} deliveries/s ({args.events / elapsed:,.0f} events/s fanned out); gateway CPU {result['cpu_per_1k']:.2f} ms per 1,000 deliveries; "
            f"latency p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms",
            flush=True,
        )
        return result
    finally:
        gateway.terminate()
        try:
            gateway.wait(10)
        except subprocess.TimeoutExpired:
            gateway.kill()
        for process in procs:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append", help="scenario to run (repeatable; default: all)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=500, help="events to publish (a multiple of 10)")
    parser.add_argument("--batch", type=int, default=10, help="events per POST")
    parser.add_argument("--publishers", type=int, default=2, help="concurrent publishing connections")
    parser.add_argument("--pad", type=int, default=60, help="padding bytes in data")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--sample-every", type=int, default=50, help="measure latency on one connection in this many")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each scenario may take")
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra gateway argument (repeatable)")
    args = parser.parse_args()
    print(f"{args.subscribers} subscribers, {args.events} events in POSTs of {args.batch}, {os.cpu_count()} CPUs", flush=True)
    results = {scenario: run_scenario(scenario, args) for scenario in args.scenario or SCENARIOS}
    if "none" in results:
        base = results["none"]["rate"]
        print("relative to none: " + ", ".join(f"{name} {r['rate'] / base:.2f}x" for name, r in results.items() if name != "none"))


if __name__ == "__main__":
    main()
