#!/usr/bin/env python
"""Run the whole Telegraphy demo with one command.

::

    python demo_project/run_demo.py [--port 8000] [--gateway-port 9000]

It migrates the SQLite database, creates the superuser admin/admin and a few
items (``manage.py createdemo``; DEBUG only), starts the gateway
(``python -m telegraphy.tornado_gateway``) and Django's ``runserver``, waits
until both answer, prints the URL to open, and stops both on Ctrl-C or
SIGTERM (or when either of them exits).

Both processes get the same ``TELEGRAPHY_SECRET`` through their environment
(the gateway reads it there; a ``--secret`` flag would show in the process
list). Set ``TELEGRAPHY_SECRET`` yourself to choose it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEV_SECRET = "telegraphy-demo-secret-not-for-production-0123456789"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Telegraphy demo: gateway + Django.")
    parser.add_argument("--host", default="127.0.0.1", help="interface both servers listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="Django's port (default 8000)")
    parser.add_argument("--gateway-port", type=int, default=9000, help="the gateway's port (default 9000)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("TELEGRAPHY_SECRET", DEV_SECRET)
    env["TELEGRAPHY_GATEWAY_URL"] = f"http://127.0.0.1:{args.gateway_port}"
    env["TELEGRAPHY_WS_PORT"] = str(args.gateway_port)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    manage = [sys.executable, str(HERE / "manage.py")]

    origins = ",".join(f"http://{host}:{args.port}" for host in ("127.0.0.1", "localhost", "[::1]", args.host))
    gateway_command = [
        sys.executable, "-m", "telegraphy.tornado_gateway",
        "--host", args.host, "--port", str(args.gateway_port), "--allowed-origins", origins,
    ]
    django_command = [*manage, "runserver", f"{args.host}:{args.port}", "--noreload"]

    processes: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def stop(signum: int | None = None, frame: object = None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        # Each in its own session, so Ctrl-C reaches only this script, which stops them in order.
        def start(command: list[str], port: int, name: str) -> bool:
            processes.append(subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True))
            if wait_for_port(args.host, port, processes, stopping):
                return True
            if not stopping.is_set():
                print(f"run_demo: the {name} did not start on port {port}", file=sys.stderr)
            return False

        # The gateway first, so that the sample items' events have somewhere to go.
        if not start(gateway_command, args.gateway_port, "gateway"):
            return 0 if stopping.is_set() else 1
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=HERE, env=env, check=True)
        subprocess.run([*manage, "createdemo"], cwd=HERE, env=env, check=True)
        if not start(django_command, args.port, "Django"):
            return 0 if stopping.is_set() else 1
        print(
            f"\n  Telegraphy demo running: open http://{display(args.host)}:{args.port}/\n"
            f"  Tracker: http://{display(args.host)}:{args.port}/tracker/   "
            f"Admin: http://{display(args.host)}:{args.port}/admin/ (admin / admin)\n"
            f"  Gateway: ws://{display(args.host)}:{args.gateway_port}/ws\n"
            "  Ctrl-C stops both.\n",
            flush=True,
        )
        while not stopping.wait(0.2):
            for process in processes:
                if process.poll() is not None:
                    print(f"run_demo: {process.args[2]} exited with status {process.returncode}", file=sys.stderr)
                    return 1
        return 0
    finally:
        for process in reversed(processes):
            terminate(process)


def wait_for_port(host: str, port: int, processes: list[subprocess.Popen[bytes]], stopping: threading.Event) -> bool:
    """Poll until something accepts connections on host:port; False if a process died or we were stopped."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not stopping.is_set():
        if any(process.poll() is not None for process in processes):
            return False
        try:
            with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            stopping.wait(0.1)
    return False


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, SIGKILL it after STOP_TIMEOUT."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def display(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


if __name__ == "__main__":
    sys.exit(main())
