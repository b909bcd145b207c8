"""Run the Autobahn WebSocket conformance suite (``wstest -m fuzzingclient``) against a real gateway.

Starts a gateway on 127.0.0.1 with the SockJS test endpoints, points the
suite at two endpoints, and prints the number of cases per behaviour (OK,
NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED) for each, with the ids of
the cases that were not OK::

    python tools/autobahn_ws_suite.py                 # all cases but 12.*, 13.* (compression)
    python tools/autobahn_ws_suite.py --cases 3.* 4.* 5.*

Endpoints:

- ``echo``: ``ws://…/echo/websocket``, the raw WebSocket of the SockJS echo
  service (``--sockjs-test-endpoints``): it echoes every message, which is
  what the suite expects, so every case is meaningful;
- ``wamp``: ``ws://…/ws``, the WAMP endpoint. The suite's payloads are not
  WAMP, so the gateway answers the first one with ABORT and close 1002:
  echo cases are expected to fail there; what this run shows is that frames
  and closes are handled as RFC 6455 requires (no crash, a close code on
  every path).

The suite is a Python 2.7 program (the ``autobahntestsuite`` package). The
script runs ``--wstest`` if given or found in ``--venv``; otherwise it makes
that virtualenv with ``--python2`` and installs the package into it from the
package index (nothing is installed into this project's environment).
Reports (HTML and JSON per case) are written under ``--outdir``. Exit
status 1 when a case on the echo endpoint FAILED, except those the gateway
closed by design: 1003 for a binary message (SockJS carries text only) and
1009 for a message over ``--max-message-size``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_helpers import start_gateway  # noqa: E402

BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: permessage-deflate (12.*, 13.*): the gateway offers no compression, so these only say "unimplemented".
COMPRESSION_CASES = ["12.*", "13.*"]
#: Close codes that mean "refused by design or by a limit": 1003 (SockJS carries text only, so its
#: raw WebSocket refuses binary messages) and 1009 (a message over --max-message-size, 1 MiB by
#: default). A FAILED echo case that ended with one of them is counted apart (RFC 6455 §7.4.1).
BY_DESIGN_CLOSES = {1003, 1009}


def ensure_wstest(venv: Path, python2: str) -> Path:
    """Return the path of ``wstest``, installing the suite into ``venv`` first if needed."""
    wstest = venv / "bin" / "wstest"
    if wstest.exists():
        return wstest
    tools = venv.parent / (venv.name + "-virtualenv")
    print(f"installing autobahntestsuite into {venv} (Python 2.7: {python2})", file=sys.stderr)
    # The last virtualenv releases that still create Python 2.7 environments.
    subprocess.run([python2, "-m", "pip", "install", "-q", "--target", str(tools), "virtualenv<20.22"], check=True)
    subprocess.run([python2, "-m", "virtualenv", "-q", str(venv)], check=True, env={**os.environ, "PYTHONPATH": str(tools)})
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "autobahntestsuite"], check=True)
    return wstest


def summarize(index: dict[str, dict[str, dict[str, object]]], agent: str) -> tuple[collections.Counter[str], dict[str, list[str]]]:
    """Count one agent's cases by behaviour; list the ids of those not OK."""
    counts: collections.Counter[str] = collections.Counter()
    cases: dict[str, list[str]] = collections.defaultdict(list)
    for case, result in index.get(agent, {}).items():
        behaviour = str(result.get("behavior"))
        counts[behaviour] += 1
        if behaviour != "OK":
            cases[behaviour].append(case)
    for ids in cases.values():
        ids.sort(key=lambda c: [int(part) for part in c.split(".")])
    return counts, cases


def _remote_close(reports: Path, index: dict[str, dict[str, dict[str, object]]], agent: str, case: str) -> object:
    """Return the close code the server sent in one case (from the case's JSON report)."""
    report = json.loads((reports / str(index[agent][case]["reportfile"])).read_text())
    return report.get("remoteCloseCode")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["*"], help="case ids or patterns to run (default: all)")
    parser.add_argument("--all", action="store_true", help="also run the compression cases " + " ".join(COMPRESSION_CASES))
    parser.add_argument("--endpoints", nargs="+", choices=("echo", "wamp"), default=["echo", "wamp"])
    parser.add_argument("--wstest", help="path of an installed wstest")
    parser.add_argument("--venv", default="/tmp/autobahn-venv", help="the Python 2.7 virtualenv holding the suite")
    parser.add_argument("--python2", default=os.environ.get("PYTHON2", "/root/.pyenv/versions/2.7.18/bin/python"))
    parser.add_argument("--outdir", help="where the suite writes its reports (default: a temporary directory)")
    args = parser.parse_args(argv)
    wstest = Path(args.wstest) if args.wstest else ensure_wstest(Path(args.venv), args.python2)
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="autobahn-"))
    outdir.mkdir(parents=True, exist_ok=True)
    gateway = start_gateway("--sockjs-test-endpoints", "--connection-rate", "0")
    try:
        urls = {"echo": f"ws://127.0.0.1:{gateway.port}/echo/websocket", "wamp": f"ws://127.0.0.1:{gateway.port}/ws"}
        agents = {name: f"telegraphy-{name}" for name in args.endpoints}
        spec = {
            "outdir": str(outdir / "reports"),
            "servers": [{"agent": agents[name], "url": urls[name]} for name in args.endpoints],
            "cases": args.cases,
            "exclude-cases": [] if args.all else COMPRESSION_CASES,
            "exclude-agent-cases": {},
        }
        spec_path = outdir / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        run = subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)], cwd=outdir, capture_output=True, text=True)
        (outdir / "wstest.log").write_text(run.stdout + run.stderr)
        if run.returncode != 0:
            print(f"wstest exited with status {run.returncode}; its output is in {outdir / 'wstest.log'}", file=sys.stderr)
            return 2
        alive = gateway.alive()
    finally:
        gateway.stop()
    log = gateway.stderr()
    index = json.loads((outdir / "reports" / "index.json").read_text())
    excluded = "" if args.all else f" (excluded: {' '.join(COMPRESSION_CASES)})"
    print(f"Autobahn WebSocket suite, cases {' '.join(args.cases)}{excluded}; reports in {outdir / 'reports'}")
    failed_echo = 0
    for name in args.endpoints:
        counts, cases = summarize(index, agents[name])
        print(f"{name} ({urls[name].split(str(gateway.port))[1]}): {sum(counts.values())} cases: " + ", ".join(f"{b} {counts.get(b, 0)}" for b in BEHAVIOURS))
        for behaviour in BEHAVIOURS[1:]:
            if cases.get(behaviour):
                print(f"  {behaviour}: {' '.join(cases[behaviour])}")
        if name == "echo":
            by_design = [c for c in cases.get("FAILED", []) if _remote_close(outdir / "reports", index, agents[name], c) in BY_DESIGN_CLOSES]
            failed_echo = len(cases.get("FAILED", [])) - len(by_design)
            print(f"  of the FAILED, closed by design with 1003 (binary: SockJS is text only) or 1009 (over --max-message-size): {len(by_design)}; others: {failed_echo}")
    print(f"gateway alive at the end: {alive}; tracebacks in its log: {log.count('Traceback')}")
    return 1 if failed_echo or not alive or "Traceback" in log else 0


if __name__ == "__main__":
    sys.exit(main())
