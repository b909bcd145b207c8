"""Run a real gateway process for end-to-end tests.

In a test, use the fixtures from ``tests/conftest.py``::

    def test_publish(gateway):                  # one gateway, default settings
        token = gateway.publish_token()
        ...POST to f"{gateway.url}/publish", connect to gateway.ws_url...

    def test_strict(gateway_process):           # a factory: your own settings
        gw = gateway_process("--no-allow-anonymous", env={"TELEGRAPHY_REALM": "r"})
        ...

Outside pytest fixtures (a module-scoped fixture, a benchmark), use
:func:`start_gateway` and call :meth:`GatewayProcess.stop` yourself; it
returns the exit status and raises if the process had crashed.

The process is ``sys.executable -m telegraphy.tornado_gateway --port 0
--secret <random>`` run from the repository root, with every
``TELEGRAPHY_*`` and ``PORT`` variable of the test environment removed (so
a developer's shell cannot change the tests). Its stderr (the logs) goes to
a temporary file, readable at any time with :meth:`GatewayProcess.stderr`.
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "GatewayCrashed",
    "GatewayProcess",
    "READY_TIMEOUT",
    "REPO_ROOT",
    "STOP_TIMEOUT",
    "clean_environ",
    "free_port",
    "run_gateway",
    "start_gateway",
    "wait_for",
    "wait_for_async",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING_PREFIX = "Telegraphy gateway listening on "
#: Seconds to wait for the listening line.
READY_TIMEOUT = 15.0
#: Seconds to wait for the process to exit after SIGTERM before killing it.
STOP_TIMEOUT = 5.0


class GatewayCrashed(AssertionError):
    """The gateway did not start, exited on its own, or did not stop cleanly."""


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the test environment without gateway settings, plus ``extra``.

    ``PYTHONPATH`` gets the repository root first, so the process imports
    this checkout's ``telegraphy``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAPHY_") and k != "PORT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def wait_for_async(
    condition: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Await ``condition()`` until it returns something truthy; return that (the asyncio twin of :func:`wait_for`).

    Raises:
        AssertionError: when ``timeout`` seconds pass first.
    """
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {condition!r}")
        await asyncio.sleep(interval)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now (for tests of ``PORT``)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, message: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; return that.

    Raises:
        AssertionError: when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {condition!r}")
        time.sleep(interval)


class GatewayProcess:
    """A running gateway subprocess; build it with :func:`start_gateway`.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        ws_url: ``ws://127.0.0.1:PORT/ws`` (the path follows ``--ws-path``).
        port: the port the gateway bound.
        listening_line: the line it printed on stdout, as printed.
        secret: the shared secret given to it (``None`` if none was).
        proc: the :class:`subprocess.Popen`.
    """

    def __init__(self, proc: subprocess.Popen[str], stderr_file: IO[str], secret: str | None, ws_path: str) -> None:
        self.proc = proc
        self.secret = secret
        self.url = ""
        self.ws_url = ""
        self.listening_line = ""
        self.port = 0
        self._ws_path = ws_path
        self._stderr_file = stderr_file
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()
        self._stopped = False
        self._exit_code: int | None = None
        self._stderr_text: str | None = None
        threading.Thread(target=self._read_stdout, name="gateway-stdout", daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout_lines.put(line)
        self._stdout_lines.put(None)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for the listening line and fill in ``url``, ``ws_url``, ``port``.

        Raises:
            GatewayCrashed: when the process exits or says nothing in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise GatewayCrashed(f"gateway printed no listening line within {timeout} s\n{self._report()}")
            try:
                line = self._stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(STOP_TIMEOUT)
                raise GatewayCrashed(f"gateway exited with status {self.proc.returncode} before listening\n{self._report()}")
            if line.startswith(LISTENING_PREFIX):
                self.listening_line = line
                self.url = line[len(LISTENING_PREFIX) :].strip()
                self.port = int(self.url.rsplit(":", 1)[1])
                self.url = f"http://127.0.0.1:{self.port}"
                self.ws_url = f"ws://127.0.0.1:{self.port}{self._ws_path}"
                return
            raise GatewayCrashed(f"unexpected line on the gateway's stdout: {line!r}\n{self._report()}")

    def stdout_rest(self) -> list[str]:
        """Return the stdout lines printed after the listening line, so far."""
        lines = []
        while True:
            try:
                line = self._stdout_lines.get_nowait()
            except queue.Empty:
                return lines
            if line is not None:
                lines.append(line)

    def stderr(self) -> str:
        """Return everything the gateway wrote on stderr so far (its logs)."""
        if self._stderr_text is not None:
            return self._stderr_text
        return Path(self._stderr_file.name).read_text(encoding="utf-8", errors="replace")

    def publish_token(self, **kwargs: Any) -> str:
        """Return a fresh publish token signed with this gateway's secret."""
        from telegraphy.tokens import mint_publish_token

        assert self.secret is not None, "this gateway was started without a known secret"
        return mint_publish_token(self.secret, **kwargs)

    def connect_token(self, user_id: str | int | None = None, **kwargs: Any) -> str:
        """Return a fresh connect token signed with this gateway's secret."""
        from telegraphy.tokens import mint_connect_token

        assert self.secret is not None, "this gateway was started without a known secret"
        return mint_connect_token(self.secret, user_id, **kwargs)

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.proc.poll() is None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process (if it still runs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """Kill the process without ceremony and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``signum`` (SIGTERM), wait (kill after ``timeout``), return the exit status.

        Idempotent: later calls return the same status. Raises
        :class:`GatewayCrashed`, with the captured stderr, when the process
        had already exited on its own, had to be killed, or exited with a
        non-zero status. :meth:`stderr` still works afterwards.
        """
        if self._stopped:
            return self._exit_code if self._exit_code is not None else -1
        self._stopped = True
        try:
            crashed = self.proc.poll() is not None
            if not crashed:
                self.proc.send_signal(signum)
            try:
                self._exit_code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise GatewayCrashed(f"gateway did not exit within {timeout} s of {signal.Signals(signum).name}, killed\n{self._report()}") from None
            if crashed:
                raise GatewayCrashed(f"gateway exited on its own with status {self._exit_code}\n{self._report()}")
            if self._exit_code != 0:
                raise GatewayCrashed(f"gateway exited with status {self._exit_code} after {signal.Signals(signum).name}\n{self._report()}")
            return self._exit_code
        finally:
            self._stderr_text = self.stderr()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr_file.close()
            Path(self._stderr_file.name).unlink(missing_ok=True)

    def _report(self) -> str:
        return f"command: {' '.join(self.proc.args)}\n--- gateway stderr ---\n{self.stderr()}--- end of stderr ---"  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"GatewayProcess(url={self.url!r}, pid={self.proc.pid})"


def _command(args: Sequence[str], secret: str | None, port: int | None) -> list[str]:
    command = [sys.executable, "-m", "telegraphy.tornado_gateway"]
    if port is not None:
        command += ["--port", str(port)]
    if secret is not None:
        command.append(f"--secret={secret}")  # "=" form: a secret may start with "-"
    return command + list(args)


def start_gateway(
    *args: str,
    env: Mapping[str, str] | None = None,
    secret: str | None = "",
    port: int | None = 0,
    ws_path: str = "/ws",
    timeout: float = READY_TIMEOUT,
) -> GatewayProcess:
    """Start a gateway and wait until it listens.

    Args:
        args: extra command-line flags (``"--max-batch", "10"``).
        env: extra environment variables (``{"TELEGRAPHY_REALM": "r"}``).
        secret: ``""`` (default) for a fresh random secret passed as
            ``--secret``; a string to pass that one; ``None`` to pass none
            (use with ``--insecure-dev`` or ``env={"TELEGRAPHY_SECRET": …}``,
            which then becomes ``.secret``).
        port: ``--port`` value, ``0`` by default; ``None`` to pass no
            ``--port`` (to test ``PORT``/``TELEGRAPHY_PORT``).
        ws_path: the WebSocket path the gateway was told to use, for ``ws_url``.
        timeout: seconds to wait for the listening line.

    Returns:
        The running process; call :meth:`GatewayProcess.stop` when done.

    Raises:
        GatewayCrashed: when it exits or does not listen within ``timeout``.
    """
    flag_secret = secrets.token_urlsafe(32) if secret == "" else secret
    known_secret = flag_secret if flag_secret is not None else (env or {}).get("TELEGRAPHY_SECRET")
    stderr_file = tempfile.NamedTemporaryFile("w+", prefix="telegraphy-gateway-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        _command(args, flag_secret, port),
        cwd=REPO_ROOT,
        # Each test gateway keeps its history to itself unless a test chooses a store.
        env=clean_environ({"TELEGRAPHY_STORE": "memory://", **(env or {})}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    gateway = GatewayProcess(proc, stderr_file, known_secret, ws_path)
    try:
        gateway.wait_ready(timeout)
    except BaseException:
        gateway.kill()
        stderr_file.close()
        Path(stderr_file.name).unlink(missing_ok=True)
        raise
    return gateway


def run_gateway(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = READY_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the gateway command to completion (for settings it must refuse).

    No ``--port`` or ``--secret`` is added. Returns the completed process
    with its stdout and stderr as text.
    """
    return subprocess.run(
        _command(args, None, None),
        cwd=REPO_ROOT,
        env=clean_environ(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
