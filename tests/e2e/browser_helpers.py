"""Helpers of the end-to-end tests: the demo site's processes and waits on the demo pages.

Import them in a test module with ``from browser_helpers import ...``; the
fixtures that use them are in this directory's ``conftest.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from gateway_helpers import REPO_ROOT, GatewayCrashed, GatewayProcess, clean_environ, free_port, start_gateway

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture then skips (or fails, with TELEGRAPHY_REQUIRE_BROWSER=1)
    expect = None

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CONNECT_TIMEOUT_MS",
    "EVENT_TIMEOUT_MS",
    "TOPIC",
    "DemoSite",
    "expect",
    "wait_connected",
    "wait_subscribed",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEMO_DIR = REPO_ROOT / "demo_project"
MANAGE = DEMO_DIR / "manage.py"
TOPIC = "demo.MyModel"
#: Signed-in pages may publish on e2e.* topics (clients publish nowhere by
#: default); e2e.* procedures are registered by backend sessions.
E2E_CHANNELS = json.dumps([{"topic": "e2e.", "match": "prefix", "publish": "authenticated"}])

#: Seconds for Django to answer its first request.
DJANGO_READY_TIMEOUT = 30.0
#: Seconds for a ``manage.py`` command (migrate, shell -c) to finish.
MANAGE_TIMEOUT = 60.0
#: Milliseconds Playwright waits for a page to connect or an event to show.
CONNECT_TIMEOUT_MS = 10_000
EVENT_TIMEOUT_MS = 10_000

# Whether the page's client holds an acknowledged WAMP subscription with a
# handler on the topic. The public API has no such query yet, so this reads
# the session's subscriptions() (documented "for inspection and tests").
_SUBSCRIBED_JS = """(topic) => {
  const client = window.Telegraphy;
  if (!client || client.state !== 'connected' || !client._session) return false;
  return client._session.subscriptions().some(
    (s) => s.topic === topic && s.handlers > 0 && s.subscriptionId !== null);
}"""


def wait_connected(page: Any, topic: str | None = TOPIC, timeout_ms: int = CONNECT_TIMEOUT_MS) -> None:
    """Wait until the demo page's status says connected and ``topic`` is subscribed."""
    expect(page.locator("#telegraphy-status")).to_have_attribute("data-state", "connected", timeout=timeout_ms)
    if topic is not None:
        wait_subscribed(page, topic, timeout_ms)


def wait_subscribed(page: Any, topic: str = TOPIC, timeout_ms: int = CONNECT_TIMEOUT_MS) -> None:
    """Wait until the page's client has an acknowledged subscription with a handler on ``topic``."""
    page.wait_for_function(_SUBSCRIBED_JS, arg=topic, timeout=timeout_ms)


class DemoSite:
    """The demo project served by ``runserver``, publishing to a gateway.

    Attributes:
        url: ``http://127.0.0.1:PORT`` of Django.
        origin: the same, as the gateway's allowed browser origin.
        gateway: the running gateway (replaced by :meth:`restart_gateway`).
        secret: the secret Django and every gateway share.
        env: the environment of Django and ``manage.py`` commands.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.origin = self.url
        self.gateway: GatewayProcess = start_gateway("--allowed-origins", self.origin, "--channels", E2E_CHANNELS)
        self.secret = self.gateway.secret
        assert self.secret
        self.gateway_port = self.gateway.port
        # The developer's DJANGO_* and DEMO_* settings stay out, like TELEGRAPHY_* ones.
        self.env = {k: v for k, v in clean_environ().items() if not k.startswith(("DJANGO_", "DEMO_"))}
        self.env.update(
            DJANGO_DEBUG="1",  # runserver serves static files only with DEBUG on
            DEMO_DATABASE=str(workdir / "demo.sqlite3"),
            TELEGRAPHY_SECRET=self.secret,
            TELEGRAPHY_GATEWAY_URL=self.gateway.url,
            TELEGRAPHY_WS_PORT=str(self.gateway_port),
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[str] = tempfile.NamedTemporaryFile("w+", prefix="telegraphy-django-", suffix=".log", delete=False)

    # -- Django --------------------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        """Run ``manage.py ARGS`` to completion; return its stdout (fail with its output)."""
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=DEMO_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MANAGE_TIMEOUT,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
            )
        return result.stdout

    def orm(self, code: str) -> str:
        """Run ``code`` in ``manage.py shell`` (with ``MyModel`` imported); return the last line it printed.

        (Django 5.2's shell prints a line of its own about automatic imports.)
        """
        lines = self.manage("shell", "-c", "from demo.models import MyModel\n" + code).strip().splitlines()
        return lines[-1] if lines else ""

    def start_django(self) -> None:
        """Prepare the database and start ``runserver``; return once it answers."""
        self.manage(
            "shell",
            "-c",
            "from django.core.management import call_command\n"
            "call_command('migrate', verbosity=0, interactive=False)\n"
            "call_command('createdemo', '--no-items')",
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=DEMO_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + DJANGO_READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"runserver exited with {self.proc.returncode}\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"runserver did not answer within {DJANGO_READY_TIMEOUT} s\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        """Return what Django wrote so far (requests, Telegraphy's publisher log)."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    # -- gateway -------------------------------------------------------------------------------

    def kill_gateway(self) -> None:
        """SIGKILL the gateway: no close frames, no GOODBYE."""
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.proc.wait(10)

    def restart_gateway(self) -> GatewayProcess:
        """Start a new gateway with the same secret on the same port (after the old one died)."""
        old = self.gateway
        if old.alive():
            old.kill()
        try:
            old.stop()
        except GatewayCrashed:
            pass  # it was killed on purpose; stop() just reaps it and removes its log
        self.gateway = start_gateway("--allowed-origins", self.origin, "--channels", E2E_CHANNELS, secret=self.secret, port=self.gateway_port)
        return self.gateway

    def stop(self) -> None:
        """Stop Django and the gateway; raise if the gateway had crashed."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self.gateway.stop()
