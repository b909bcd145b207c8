#!/usr/bin/env python3
"""Run the official SockJS protocol test suite against a real gateway.

The suite is ``sockjs-protocol.py`` from https://github.com/sockjs/sockjs-protocol
(with its helpers ``utils.py`` and ``httplib_fork.py`` beside it). It is not
vendored here: point this script at a checkout::

    git clone https://github.com/sockjs/sockjs-protocol /tmp/sockjs-protocol
    python tools/sockjs_conformance.py /tmp/sockjs-protocol
    # or: SOCKJS_PROTOCOL=/tmp/sockjs-protocol python tools/sockjs_conformance.py
    # one test class or test: ... /tmp/sockjs-protocol -- XhrPolling.test_transport

The suite is Python 2.7 only. The script finds an interpreter (``--python2``,
``$PYTHON2``, ``python2``/``python2.7`` on PATH, pyenv's ``2.7*`` versions),
installs the suite's dependencies once into a cache directory
(``python2 -m pip install --target DIR unittest2 ws4py 'websocket-client<0.60'``),
starts ``python -m telegraphy.tornado_gateway --sockjs-test-endpoints`` on a
free port, runs ``SOCKJS_URL=http://127.0.0.1:PORT PYTHONPATH=DIR python2
sockjs-protocol.py -v`` and prints the result. Without Python 2.7 it says so
and exits 0 (skipped). Its exit status is otherwise the suite's.

``--nodes N`` runs the suite against N gateway nodes sharing a Redis bus
(``--bus``, default ``redis://127.0.0.1:6379/0``) and a SQLite store, behind
a round-robin TCP balancer that sends each new connection to the next node:
the suite opens a connection per request, so a session's requests keep
landing on nodes that do not hold it (no sticky sessions).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING_PREFIX = "Telegraphy gateway listening on "
DEPENDENCIES = ["unittest2", "ws4py", "websocket-client<0.60"]
SUITE_FILE = "sockjs-protocol.py"
#: Seconds the whole suite may take (it waits out several 5 s session timeouts).
SUITE_TIMEOUT = 600


def find_python2(explicit: str | None) -> str | None:
    """Return a Python 2.7 interpreter, or None."""
    candidates = [explicit, os.environ.get("PYTHON2"), shutil.which("python2.7"), shutil.which("python2")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "2.7*", "bin", "python")), reverse=True)
    for candidate in candidates:
        if not candidate:
            continue
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip() == "2.7":
            return candidate
    return None


def find_suite(given: str | None) -> Path:
    """Return the directory holding sockjs-protocol.py and its helpers."""
    location = given or os.environ.get("SOCKJS_PROTOCOL")
    if not location:
        sys.exit(
            "no test suite given: pass the path of a sockjs/sockjs-protocol checkout (or of its sockjs-protocol.py), "
            "or set SOCKJS_PROTOCOL.\n  git clone https://github.com/sockjs/sockjs-protocol /tmp/sockjs-protocol"
        )
    path = Path(location).expanduser().resolve()
    directory = path.parent if path.is_file() else path
    missing = [name for name in (SUITE_FILE, "utils.py", "httplib_fork.py") if not (directory / name).is_file()]
    if missing:
        sys.exit(f"{directory} is not a sockjs-protocol checkout: missing {', '.join(missing)}")
    return directory


def install_dependencies(python2: str, target: Path) -> None:
    """Install the suite's dependencies into ``target`` unless done before."""
    marker = target / ".telegraphy-installed"
    if marker.exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    print(f"installing {' '.join(DEPENDENCIES)} into {target}", flush=True)
    subprocess.run([python2, "-m", "pip", "install", "--quiet", "--target", str(target), *DEPENDENCIES], check=True)
    marker.write_text("ok\n")


def start_gateway(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a gateway with the test endpoints on a free port; return it and its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAPHY_") and k != "PORT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "telegraphy.tornado_gateway",
        "--port", "0", "--insecure-dev", "--log-level", "warning", "--sockjs-test-endpoints", *extra,
    ]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(LISTENING_PREFIX):
        proc.kill()
        sys.exit(f"the gateway did not start (printed {line!r})")
    port = line.strip().rsplit(":", 1)[1]
    return proc, f"http://127.0.0.1:{port}"


def forwarded_counts(ports: list[int]) -> list[str]:
    """Each node's ``telegraphy_sockjs_forwarded_total``, as ``port: count``."""
    counts = []
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError as exc:
            counts.append(f"{port}: ? ({exc})")
            continue
        match = re.search(r"^telegraphy_sockjs_forwarded_total (\d+)", text, re.MULTILINE)
        counts.append(f"{port}: {match.group(1) if match else '?'}")
    return counts


def summarize(output: str) -> str:
    """Return 'N passed, M failed' from unittest's verbose output."""
    ran = re.search(r"^Ran (\d+) tests?", output, re.MULTILINE)
    total = int(ran.group(1)) if ran else 0
    failures = errors = 0
    status = re.search(r"^FAILED \((.*)\)", output, re.MULTILINE)
    if status:
        counts = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", status.group(1)))
        failures, errors = counts.get("failures", 0), counts.get("errors", 0)
    failed = [m for m in re.findall(r"^(?:FAIL|ERROR): (\S+ \(\S+\))", output, re.MULTILINE)]
    text = f"{total - failures - errors} passed, {failures + errors} failed (of {total})"
    return text + "".join(f"\n  failed: {name}" for name in failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", help="sockjs-protocol checkout or its sockjs-protocol.py (default: $SOCKJS_PROTOCOL)")
    parser.add_argument("tests", nargs="*", help="test classes or Class.test names to run (default: all)")
    parser.add_argument("--python2", help="the Python 2.7 interpreter to use")
    parser.add_argument(
        "--deps", default=os.path.join(tempfile.gettempdir(), "telegraphy-sockjs-protocol-deps"), help="cache directory for the suite's dependencies"
    )
    parser.add_argument("--gateway-arg", action="append", default=[], help="extra flag for the gateway (repeatable)")
    parser.add_argument("--nodes", type=int, default=1, help="gateway nodes behind a round-robin balancer (default 1)")
    parser.add_argument("--bus", default="redis://127.0.0.1:6379/0", help="the Redis bus of several nodes")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")

    python2 = find_python2(args.python2)
    if python2 is None:
        print("SKIPPED: no Python 2.7 found (tried --python2, $PYTHON2, python2.7, python2, ~/.pyenv/versions/2.7*); "
              "the SockJS protocol suite runs on Python 2.7 only")
        return 0
    suite = find_suite(args.suite)
    deps = Path(args.deps)
    install_dependencies(python2, deps)

    workdir = Path(tempfile.mkdtemp(prefix="telegraphy-sockjs-suite-"))
    procs, proxy = [], None
    if args.nodes == 1:
        proc, url = start_gateway(["--store", "none", *args.gateway_arg])
        procs.append(proc)
    else:
        sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
        from tcp_proxy import TcpProxy

        channel = f"telegraphy-sockjs-suite-{os.getpid()}"
        shared = ["--store", f"sqlite:///{workdir / 'shared.sqlite3'}", "--bus", f"{args.bus}?channel={channel}", *args.gateway_arg]
        ports = []
        for _ in range(args.nodes):
            proc, node_url = start_gateway(shared)
            procs.append(proc)
            ports.append(int(node_url.rsplit(":", 1)[1]))
        proxy = TcpProxy(ports[0], lifetime=SUITE_TIMEOUT + 60)
        proxy.set_targets(ports)
        url = f"http://127.0.0.1:{proxy.port}"
        print(f"{args.nodes} nodes on ports {', '.join(map(str, ports))}, round-robin balancer at {url}", flush=True)
    started = time.monotonic()
    try:
        env = {**os.environ, "SOCKJS_URL": url, "PYTHONPATH": str(deps)}
        print(f"running {suite / SUITE_FILE} with {python2} against {url}", flush=True)
        result = subprocess.run(
            [python2, SUITE_FILE, "-v", *args.tests], cwd=suite, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT
        )
        if proxy is not None:
            print(f"requests forwarded to the node holding their session: {', '.join(forwarded_counts(ports))}")
    finally:
        if proxy is not None:
            proxy.close()
        for proc in procs:
            proc.send_signal(signal.SIGINT if os.name == "nt" else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    output = result.stdout + result.stderr
    print(output)
    print(f"SockJS protocol suite: {summarize(output)} in {time.monotonic() - started:.1f} s")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
