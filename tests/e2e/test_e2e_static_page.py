"""The packaged browser client on a plain static page (no Django), configured by hand."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from importlib import resources

import pytest
from browser_helpers import CONNECT_TIMEOUT_MS

pytestmark = pytest.mark.browser

#: The client as shipped in the Python package (the Django app's static file).
CLIENT_JS = resources.files("telegraphy") / "contrib" / "django_telegraphy" / "static" / "telegraphy" / "telegraphy.js"
#: The vendored sockjs-client the SockJS fallback loads (``sockjsScriptUrl``).
SOCKJS_JS = CLIENT_JS.parent / "vendor" / "sockjs.min.js"

PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Telegraphy static page</title>
<link rel="icon" href="data:,"></head>
<body><p>A page with no TELEGRAPHY_CONFIG: it connects when configure() is called.</p>
<script src="/telegraphy.js"></script></body></html>
"""


class StaticSite:
    """A tiny HTTP server on 127.0.0.1 serving ``/`` (the page), ``/telegraphy.js`` and ``/sockjs.min.js``.

    ``host`` only names it in :attr:`url`: ``localhost`` makes the same
    server another origin than a gateway on ``127.0.0.1``.
    """

    def __init__(self, page: bytes = PAGE, host: str = "127.0.0.1") -> None:
        files = {
            "/": (page, "text/html; charset=utf-8"),
            "/telegraphy.js": (CLIENT_JS.read_bytes(), "text/javascript"),
            "/sockjs.min.js": (SOCKJS_JS.read_bytes(), "text/javascript"),
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body, content_type = files.get(self.path, (b"not found", "text/plain"))
                self.send_response(200 if self.path in files else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def static_site() -> Iterator[StaticSite]:
    """The static page, served for one test."""
    site = StaticSite()
    try:
        yield site
    finally:
        site.close()


def test_static_page_connects_as_the_token_user(page, static_site, gateway_process):
    """Telegraphy.configure({url, token}) on a plain page connects over WebSocket as the token's user."""
    gateway = gateway_process("--allowed-origins", static_site.url, "--no-allow-anonymous")
    token = gateway.connect_token(user_id=42)

    page.goto(static_site.url + "/")
    assert page.evaluate("Telegraphy.state") == "disconnected"
    page.evaluate(
        """([url, token]) => {
          window.connects = [];
          window.errors = [];
          Telegraphy.on('connect', (info) => window.connects.push(info));
          Telegraphy.on('error', (error) => window.errors.push(String(error && error.message || error)));
          Telegraphy.configure({url: url, token: token});
        }""",
        [gateway.ws_url, token],
    )
    page.wait_for_function("window.connects.length > 0 || window.errors.length > 0", timeout=CONNECT_TIMEOUT_MS)

    assert page.evaluate("window.errors") == []
    connect = page.evaluate("window.connects[0]")
    assert connect["transport"] == "websocket"
    assert isinstance(connect["sessionId"], int) and connect["sessionId"] > 0
    details = connect["details"]
    assert details["authid"] == "42"
    assert details["authmethod"] == "ticket"
    assert details["realm"] == "telegraphy"
    assert page.evaluate("[Telegraphy.state, Telegraphy.sessionId]") == ["connected", connect["sessionId"]]
