"""The SockJS fallback in Chromium: demo pages that cannot open a WebSocket use WAMP over SockJS.

A page whose ``window.WebSocket`` an init script deleted gets the vendored
sockjs-client from the demo's static files and connects to the gateway's
``/sockjs`` endpoint; model events, publishing (ticket-authenticated: the
page is signed in, so the template tag mints a connect token) and RPC work
as over WebSocket. The RPC callee and a WebSocket subscriber are an
Autobahn|Python session running in its own thread and event loop (the
main thread's loop belongs to Playwright's sync API).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import CONNECT_TIMEOUT_MS, EVENT_TIMEOUT_MS, expect, wait_connected, wait_subscribed
from gateway_helpers import GatewayProcess
from test_e2e_static_page import StaticSite

pytestmark = pytest.mark.browser

#: Seconds the Autobahn session waits for one step (join, register, an event).
STEP = 10.0

#: Before the page's scripts run: optionally delete window.WebSocket (or put in
#: its place one that never opens, as behind a proxy that swallows the
#: upgrade), and catch the client as telegraphy.js defines window.Telegraphy, to record its
#: 'connect' events from the first one on and to apply extra options before
#: it connects (autoConnect waits for the script's microtasks).
_PAGE_HOOK = """(function (setup) {
  var log = window.__e2e = {connects: [], errors: [], events: {}};
  if (setup.noWebSocket) { delete window.WebSocket; }
  if (setup.blackHoleWebSocket) {
    log.blackHoled = [];
    var BlackHole = function WebSocket(url) {
      this.url = url; this.readyState = 0; this.protocol = ''; this.extensions = '';
      log.blackHoled.push(url);
    };
    BlackHole.CONNECTING = 0; BlackHole.OPEN = 1; BlackHole.CLOSING = 2; BlackHole.CLOSED = 3;
    BlackHole.prototype.send = function () { throw new Error('InvalidStateError: still connecting'); };
    BlackHole.prototype.close = function (code, reason) {
      var socket = this;
      if (socket.readyState === 3) { return; }
      socket.readyState = 3;
      setTimeout(function () {
        if (socket.onclose) { socket.onclose({code: 1006, reason: '', wasClean: false}); }
      }, 0);
    };
    window.WebSocket = BlackHole;
  }
  var client;
  Object.defineProperty(window, 'Telegraphy', {
    configurable: true,
    get: function () { return client; },
    set: function (value) {
      client = value;
      value.on('connect', function (info) { log.connects.push(info); });
      value.on('error', function (error) { log.errors.push(String((error && error.message) || error)); });
      if (setup.options) { value.configure(setup.options); }
    }
  });
})(%s);"""

#: Register a handler that keeps the events of ``topic`` in window.__e2e.events[topic].
_COLLECT_JS = """(topic) => {
  window.__e2e.events[topic] = [];
  Telegraphy.register(topic, (event) => window.__e2e.events[topic].push(event));
}"""


def unique(prefix: str) -> str:
    """Return a name no other test uses (the demo database and gateway are shared by the session)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def hook_page(
    page: Any, *, no_websocket: bool, black_hole_websocket: bool = False, options: dict[str, Any] | None = None
) -> list[str]:
    """Install the page hook; return the list that collects the URLs the page requests."""
    setup = {"noWebSocket": no_websocket, "blackHoleWebSocket": black_hole_websocket, "options": options}
    page.add_init_script(_PAGE_HOOK % json.dumps(setup))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    return requested


def sign_in_and_open_list(page: Any, demo: Any) -> None:
    """Sign in as the demo's admin through the admin login form, landing on the item list, connected."""
    page.goto(demo.url + "/admin/login/?next=/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    expect(page.locator("#current-user")).to_contain_text("admin", timeout=EVENT_TIMEOUT_MS)
    wait_connected(page)


def connect_info(page: Any) -> dict[str, Any]:
    """Return the page's first 'connect' event (there must be exactly one), after checking no error was reported."""
    log = page.evaluate("window.__e2e")
    assert log["errors"] == [], log["errors"]
    assert len(log["connects"]) == 1, log["connects"]
    info: dict[str, Any] = log["connects"][0]
    return info


def collect(page: Any, topic: str) -> None:
    """Make the page keep every event on ``topic``; return once the subscription is acknowledged."""
    page.evaluate(_COLLECT_JS, topic)
    wait_subscribed(page, topic)


def wait_for_events(page: Any, topic: str, count: int) -> list[dict[str, Any]]:
    """Wait until the page kept ``count`` events on ``topic``; return them."""
    page.wait_for_function(
        "([topic, count]) => (window.__e2e.events[topic] || []).length >= count",
        arg=[topic, count],
        timeout=EVENT_TIMEOUT_MS,
    )
    events: list[dict[str, Any]] = page.evaluate("(topic) => window.__e2e.events[topic]", topic)
    return events


class AutobahnPeer:
    """An Autobahn|Python session over WebSocket (wamp.2.json) in a thread of its own.

    It signs in with a backend connect token for ``user``, registers ``procedure``
    (``add(a, b, scale=1)``) and subscribes to ``topic``, whose events land
    in :attr:`events`.
    """

    def __init__(self, gateway: GatewayProcess, user: str, procedure: str, topic: str) -> None:
        self.procedure = procedure
        self.topic = topic
        self.events: queue.Queue[tuple[tuple[Any, ...], dict[str, Any]]] = queue.Queue()
        self.calls: queue.Queue[tuple[int, int, int]] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="autobahn-peer", daemon=True)
        self._thread.start()
        self._session: Any = None
        try:
            self._run(self._open(gateway, gateway.connect_token(user_id=user, authrole="backend"), procedure, topic))
        except BaseException:
            self.close()
            raise

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, STEP), self._loop).result(STEP + 1)

    async def _open(self, gateway: GatewayProcess, ticket: str, procedure: str, topic: str) -> None:
        from autobahn.asyncio.wamp import ApplicationSession
        from autobahn.asyncio.websocket import WampWebSocketClientFactory
        from autobahn.wamp.serializer import JsonSerializer
        from autobahn.wamp.types import ComponentConfig

        loop = asyncio.get_running_loop()
        joined: asyncio.Future[Any] = loop.create_future()

        class Peer(ApplicationSession):  # type: ignore[misc]
            def onConnect(self) -> None:
                self.join(self.config.realm, authmethods=["ticket"])

            def onChallenge(self, challenge: Any) -> str:
                return ticket

            def onJoin(self, details: Any) -> None:
                joined.set_result(self)

            def onLeave(self, details: Any) -> None:
                if not joined.done():
                    joined.set_exception(AssertionError(f"the gateway refused the Autobahn session: {details}"))
                super().onLeave(details)

        factory = WampWebSocketClientFactory(
            lambda: Peer(ComponentConfig("telegraphy")), url=gateway.ws_url, serializers=[JsonSerializer()]
        )
        await loop.create_connection(factory, "127.0.0.1", gateway.port)
        self._session = await joined

        def add(a: int, b: int, scale: int = 1) -> int:
            self.calls.put((a, b, scale))
            return (a + b) * scale

        await self._session.register(add, procedure)
        await self._session.subscribe(lambda *args, **kwargs: self.events.put((args, kwargs)), topic)

    def next_event(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Return the next event the session got on its topic, waiting at most :data:`STEP` seconds."""
        return self.events.get(timeout=STEP)

    def close(self) -> None:
        """Leave the session and stop the thread."""

        async def leave() -> None:
            if self._session is not None and self._session.is_attached():
                self._session.leave()

        try:
            if self._thread.is_alive():
                self._run(leave())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STEP)
            if not self._thread.is_alive():
                self._loop.close()


@pytest.fixture
def autobahn_peer(demo: Any) -> Iterator[AutobahnPeer]:
    """An Autobahn|Python callee of ``e2e.sockjs.add.<id>`` subscribed to ``e2e.sockjs.chat.<id>``."""
    suffix = unique("")
    peer = AutobahnPeer(demo.gateway, "autobahn-peer", f"e2e.sockjs.add.{suffix}", f"e2e.sockjs.chat.{suffix}")
    try:
        yield peer
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("no_websocket", "options", "expected_sockjs_transport"),
    [
        (True, None, None),
        (True, {"sockjsTransports": ["xhr-polling"]}, "xhr-polling"),
        # Not a fallback: SockJS chosen, and over its own WebSocket transport (the gateway's raw SockJS WebSocket).
        (False, {"transports": ["sockjs"]}, "websocket"),
    ],
    ids=["no-websocket", "no-websocket-xhr-polling", "sockjs-only-over-websocket"],
)
def test_page_over_sockjs(demo, page, autobahn_peer, no_websocket, options, expected_sockjs_transport):
    """A signed-in demo page over SockJS gets model events, publishes to and calls an Autobahn session."""
    requested = hook_page(page, no_websocket=no_websocket, options=options)
    sign_in_and_open_list(page, demo)

    info = connect_info(page)
    assert info["transport"] == "sockjs"
    if expected_sockjs_transport is None:
        # SockJS picks its best transport; its own WebSocket one is gone with window.WebSocket.
        assert info["sockjsTransport"] in ("xhr-streaming", "eventsource", "xhr-polling", "htmlfile"), info
    else:
        assert info["sockjsTransport"] == expected_sockjs_transport
    assert info["details"]["authmethod"] == "ticket"
    assert info["details"]["authid"] not in (None, "", "anonymous")
    # The vendored sockjs-client came from the demo's static files, then SockJS talked to the gateway.
    assert any(url.startswith(demo.url + "/static/telegraphy/vendor/sockjs.min.js") for url in requested), requested
    sockjs_base = f"http://127.0.0.1:{demo.gateway.port}/sockjs/"
    assert any(url.startswith(sockjs_base + "info") for url in requested), requested
    if expected_sockjs_transport == "xhr-polling":
        paths = [url.split("?")[0] for url in requested if url.startswith(sockjs_base)]
        assert any(path.endswith("/xhr") for path in paths), paths
        assert not any(path.endswith(("/xhr_streaming", "/eventsource", "/htmlfile")) for path in paths), paths

    # A model event from the demo, created through the ORM.
    title = unique("Over SockJS ")
    pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}, count=3).pk)"))
    expect(page.locator(f"#item-{pk} .item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)
    expect(page.locator(f"#item-{pk} .item-count")).to_have_text("3")

    # Publish: acknowledged by the gateway, received by the Autobahn session over WebSocket.
    ack = page.evaluate(
        "(topic) => Telegraphy.publish(topic, {text: 'from sockjs', n: 1}, {acknowledge: true})", autobahn_peer.topic
    )
    assert isinstance(ack["publicationId"], int) and ack["publicationId"] > 0
    args, _kwargs = autobahn_peer.next_event()
    assert args == ({"text": "from sockjs", "n": 1},)

    # RPC: a call over SockJS reaches the Autobahn callee and its result comes back.
    result = page.evaluate("(procedure) => Telegraphy.call(procedure, [2, 3], {scale: 10})", autobahn_peer.procedure)
    assert result["args"] == [50]
    assert autobahn_peer.calls.get(timeout=1) == (2, 3, 10)
    error = page.evaluate(
        "(procedure) => Telegraphy.call(procedure + '.missing').then(() => null, (err) => err.uri)",
        autobahn_peer.procedure,
    )
    assert error == "wamp.error.no_such_procedure"
    assert connect_info(page)["sessionId"] == info["sessionId"], "one SockJS session all along"


def test_websocket_that_never_opens_falls_back_to_sockjs(demo, page):
    """A WebSocket that hangs (a proxy swallowing the upgrade) is abandoned after connectTimeout for SockJS."""
    hook_page(page, no_websocket=False, black_hole_websocket=True, options={"connectTimeout": 1000})
    page.goto(demo.url + "/")
    wait_connected(page, timeout_ms=3 * CONNECT_TIMEOUT_MS)
    info = connect_info(page)
    assert info["transport"] == "sockjs"
    # SockJS's own WebSocket transport hung the same way, so it moved on to another.
    assert info["sockjsTransport"] not in (None, "websocket"), info
    black_holed = page.evaluate("window.__e2e.blackHoled")
    assert black_holed[0] == f"ws://127.0.0.1:{demo.gateway.port}/ws", black_holed

    title = unique("After the timeout ")
    pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}).pk)"))
    expect(page.locator(f"#item-{pk} .item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)


def test_sockjs_page_and_websocket_page_exchange_events(demo, context, page):
    """A page over SockJS and a page over WebSocket, both signed in, publish to each other and get model events."""
    sockjs_page = page
    hook_page(sockjs_page, no_websocket=True, options={"sockjsTransports": ["xhr-polling"]})
    sign_in_and_open_list(sockjs_page, demo)
    websocket_page = context.new_page()  # same context: signed in too
    hook_page(websocket_page, no_websocket=False)
    websocket_page.goto(demo.url + "/")
    wait_connected(websocket_page)
    try:
        assert connect_info(sockjs_page)["transport"] == "sockjs"
        websocket_info = connect_info(websocket_page)
        assert websocket_info["transport"] == "websocket"
        assert websocket_info["sockjsTransport"] is None
        assert websocket_info["details"]["authmethod"] == "ticket"

        topic = unique("e2e.sockjs.exchange.")
        collect(sockjs_page, topic)
        collect(websocket_page, topic)
        publish_js = "([topic, text]) => Telegraphy.publish(topic, {text: text}, {acknowledge: true})"
        assert sockjs_page.evaluate(publish_js, [topic, "sockjs to websocket"])["publicationId"] > 0
        assert wait_for_events(websocket_page, topic, 1) == [{"text": "sockjs to websocket"}]
        assert websocket_page.evaluate(publish_js, [topic, "websocket to sockjs"])["publicationId"] > 0
        assert wait_for_events(sockjs_page, topic, 1) == [{"text": "websocket to sockjs"}]
        # Publishers are excluded from their own events (WAMP's default): each page saw only the other's.
        assert websocket_page.evaluate("(topic) => window.__e2e.events[topic].length", topic) == 1

        # Both get the same model event, whichever transport carries it.
        title = unique("To both ")
        pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}).pk)"))
        for each in (sockjs_page, websocket_page):
            expect(each.locator(f"#item-{pk} .item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)
    finally:
        websocket_page.close()


def test_preferred_transport_stays_sockjs_after_a_gateway_restart(demo, page):
    """A SockJS page whose gateway restarts reconnects over SockJS by itself and gets events again."""
    hook_page(page, no_websocket=True)
    page.goto(demo.url + "/")
    wait_connected(page)
    assert connect_info(page)["transport"] == "sockjs"

    demo.kill_gateway()
    expect(page.locator("#telegraphy-status")).to_have_attribute("data-state", "disconnected", timeout=EVENT_TIMEOUT_MS)
    demo.restart_gateway()
    wait_connected(page, timeout_ms=3 * CONNECT_TIMEOUT_MS)
    connects = page.evaluate("window.__e2e.connects")
    assert [each["transport"] for each in connects] == ["sockjs", "sockjs"]

    title = unique("After restart over SockJS ")
    pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}).pk)"))
    expect(page.locator(f"#item-{pk} .item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)


# A page on one origin, the gateway on another (issue 11, finding 25) ----------------------------------------

#: Every SockJS transport a browser may end up with, each forced in turn.
CROSS_ORIGIN_TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
]

#: The page: no WebSocket (an init script removes it), and the referrer policy
#: Django sends by default, under which a form POST says ``Origin: null``.
_CROSS_ORIGIN_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="same-origin">
<title>Telegraphy on another origin</title><link rel="icon" href="data:,"></head>
<body><script src="/telegraphy.js"></script></body></html>
"""


def _other_origin() -> StaticSite:
    """A static site on http://localhost:PORT serving the page, telegraphy.js and sockjs.min.js (the gateway is on 127.0.0.1)."""
    return StaticSite(_CROSS_ORIGIN_PAGE, host="localhost")


@pytest.fixture(scope="module")
def other_origin() -> Iterator[StaticSite]:
    """The page's site, on another origin than every gateway of the module."""
    site = _other_origin()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture(scope="module")
def cross_origin_gateway(other_origin: StaticSite) -> Iterator[Any]:
    """One gateway on 127.0.0.1 that allows the page's origin and nothing else."""
    from gateway_helpers import start_gateway

    gateway = start_gateway("--allowed-origins", other_origin.url, "--no-allow-anonymous")
    try:
        yield gateway
    finally:
        gateway.stop()


def _publish_over_http(gateway: Any, topic: str, data: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{gateway.url}/publish",
        data=json.dumps({"name": topic, "data": data}).encode(),
        headers={"Authorization": f"Bearer {gateway.publish_token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=STEP) as response:
        assert response.status == 202


@pytest.mark.parametrize("transport", CROSS_ORIGIN_TRANSPORTS)
def test_every_sockjs_transport_works_cross_origin(page, other_origin, cross_origin_gateway, transport):
    """With the page on another origin than the gateway, each SockJS transport forced alone connects, authenticates, subscribes and gets events."""
    gateway = cross_origin_gateway
    page.add_init_script("delete window.WebSocket;" if transport != "websocket" else "")
    page.goto(other_origin.url + "/")
    topic = unique("crossorigin.")
    page.evaluate(
        """([url, token, transport, topic]) => {
          window.__e2e = {connects: [], errors: [], events: []};
          Telegraphy.on('connect', (info) => window.__e2e.connects.push(info));
          Telegraphy.on('error', (error) => window.__e2e.errors.push(String(error && error.message || error)));
          Telegraphy.register(topic, (event) => window.__e2e.events.push(event.data));
          Telegraphy.configure({url: url, token: token, transports: ['sockjs'], sockjsTransports: [transport],
                                sockjsScriptUrl: '/sockjs.min.js'});
        }""",
        [gateway.ws_url, gateway.connect_token(user_id=42), transport, topic],
    )
    page.wait_for_function("window.__e2e.connects.length > 0 || window.__e2e.errors.length > 0", timeout=CONNECT_TIMEOUT_MS)
    assert page.evaluate("window.__e2e.errors") == []
    connect = page.evaluate("window.__e2e.connects[0]")
    assert (connect["transport"], connect["sockjsTransport"]) == ("sockjs", transport)
    assert connect["details"]["authid"] == "42"
    wait_subscribed(page, topic)  # a SUBSCRIBE went out through the transport's sends
    _publish_over_http(gateway, topic, {"n": 1})
    page.wait_for_function("window.__e2e.events.length > 0", timeout=EVENT_TIMEOUT_MS)
    assert page.evaluate("window.__e2e.events") == [{"n": 1}]


def test_a_refused_transport_is_reported(page, other_origin, gateway_process):
    """A gateway that does not allow the page's origin: the client reports that no transport could connect, and is disconnected."""
    gateway = gateway_process("--allowed-origins", "http://elsewhere.example")
    page.add_init_script("delete window.WebSocket;")
    page.goto(other_origin.url + "/")
    page.evaluate(
        """([url]) => {
          window.__e2e = {errors: []};
          Telegraphy.on('error', (error) => window.__e2e.errors.push(String(error && error.message || error)));
          Telegraphy.configure({url: url, transports: ['sockjs'], sockjsTransports: ['xhr-polling'], sockjsScriptUrl: '/sockjs.min.js'});
        }""",
        [gateway.ws_url],
    )
    page.wait_for_function("window.__e2e.errors.length > 0", timeout=CONNECT_TIMEOUT_MS)
    assert "could not connect with any transport (tried sockjs)" in page.evaluate("window.__e2e.errors[0]")
    assert page.evaluate("Telegraphy.state") in ("disconnected", "connecting")  # connecting again after its back-off
