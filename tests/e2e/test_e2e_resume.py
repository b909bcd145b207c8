"""The browser client loses nothing across reconnects: through a proxy, across nodes, and says so when history was trimmed.

A static page (the packaged ``telegraphy.js``, no Django) connects through
:class:`tcp_proxy.TcpProxy`, which stands in for a load balancer in front of
gateway nodes; the tests drop its connections, kill the node behind it, or
point it at another node, while events are published over HTTP. A page with
no WebSocket polls over SockJS through a round-robin balancer with no
sticky sessions.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import CONNECT_TIMEOUT_MS, EVENT_TIMEOUT_MS, wait_subscribed
from gateway_helpers import GatewayCrashed, GatewayProcess, wait_for
from tcp_proxy import TcpProxy
from test_e2e_static_page import StaticSite

pytestmark = pytest.mark.browser

TOPIC = "shop.Order"
#: Milliseconds for the page to come back (backoff 100..500 ms per attempt, plus the resume).
RECONNECT_TIMEOUT_MS = 15_000
#: Seconds for one POST /publish.
PUBLISH_TIMEOUT = 10.0
#: Seconds between two POSTs once the publisher goes on (about 1.5 s for 70 events).
PUBLISH_INTERVAL = 0.02
#: Seconds a paused publisher waits for go() before giving up.
PUBLISHER_GATE_TIMEOUT = 20.0
REDIS = ("127.0.0.1", 6379)

SETUP_JS = """([url, topic]) => {
  window.received = [];
  window.connects = [];
  window.disconnects = 0;
  window.recoveries = [];
  window.errors = [];
  Telegraphy.on('connect', (info) => window.connects.push(
    {sessionId: info.sessionId, resumed: info.resumed, recovered: info.recovered}));
  Telegraphy.on('disconnect', () => { window.disconnects += 1; });
  Telegraphy.on('recovery', (notice) => window.recoveries.push(notice));
  Telegraphy.on('error', (error) => window.errors.push(String(error && error.message || error)));
  Telegraphy.register(topic, (event) => window.received.push(event.data.n));
  Telegraphy.configure({url: url, reconnect: {minDelay: 100, maxDelay: 500}});
}"""

STATE_JS = """() => ({state: Telegraphy.state, received: window.received, connects: window.connects,
  disconnects: window.disconnects, recoveries: window.recoveries, errors: window.errors})"""


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


def publish(gw: GatewayProcess, *numbers: int, topic: str = TOPIC) -> None:
    """POST events numbered ``numbers`` to ``gw`` and check the 202."""
    body = json.dumps([{"name": topic, "meta": {"event_type": "update"}, "data": {"n": n}} for n in numbers]).encode()
    request = urllib.request.Request(
        f"{gw.url}/publish",
        data=body,
        headers={"Authorization": f"Bearer {gw.publish_token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=PUBLISH_TIMEOUT) as response:
        assert response.status == 202


class Publisher(threading.Thread):
    """Publishes events 1..total to a node, one POST each; after ``pause_after`` waits for :meth:`go`, then paces itself.

    The pace (one POST per ``interval`` seconds) keeps events coming while the
    page is away and while it resumes, so replayed and live events meet.
    """

    def __init__(self, gw: GatewayProcess, total: int, pause_after: int, interval: float = PUBLISH_INTERVAL) -> None:
        super().__init__(name="e2e-publisher", daemon=True)
        self.gw, self.total, self.pause_after, self.interval = gw, total, pause_after, interval
        self.published = 0
        self.errors: list[BaseException] = []
        self._go = threading.Event()
        self._hurry = threading.Event()  # set by finish(): no more pacing

    def run(self) -> None:
        try:
            for n in range(1, self.total + 1):
                if n == self.pause_after + 1 and not self._go.wait(PUBLISHER_GATE_TIMEOUT):
                    raise AssertionError(f"publisher paused after {self.pause_after} events and go() never came")
                if n > self.pause_after + 1:
                    self._hurry.wait(self.interval)
                publish(self.gw, n)
                self.published = n
        except BaseException as exc:  # reported by finish()
            self.errors.append(exc)

    def go(self) -> None:
        self._go.set()

    def finish(self) -> None:
        """Wait for the last POST; fail with the publisher's error, if any."""
        self.go()
        self.join(self.total * PUBLISH_TIMEOUT)
        assert not self.is_alive(), f"publisher still running after {self.published} events"
        assert not self.errors, self.errors

    def abandon(self) -> None:
        """The test is failing: let the publisher run out unpaced, wait a bounded time, report nothing."""
        self.go()
        self._hurry.set()
        self.join(self.total * PUBLISH_TIMEOUT)


@pytest.fixture
def site() -> Iterator[StaticSite]:
    """The static page serving the packaged client, for one test."""
    static = StaticSite()
    try:
        yield static
    finally:
        static.close()


@pytest.fixture
def proxies() -> Iterator[Callable[[int], TcpProxy]]:
    """Start TCP proxies to a node's port; all are closed after the test."""
    started: list[TcpProxy] = []

    def start(port: int) -> TcpProxy:
        proxy = TcpProxy(port)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.close()


def page_state(page: Any) -> dict[str, Any]:
    return page.evaluate(STATE_JS)


def wait_page(page: Any, condition: str, timeout_ms: int, arg: Any = None) -> None:
    """Wait for ``condition`` (a JS expression or function) on the page; fail with the page's state."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"page never met {condition!r} within {timeout_ms} ms; page state: {page_state(page)}") from None


def open_page(page: Any, site: StaticSite, proxy: TcpProxy) -> None:
    """Load the static page, wire its listeners and connect through ``proxy``; wait for the subscription."""
    page.goto(site.url + "/")
    page.evaluate(SETUP_JS, [f"ws://127.0.0.1:{proxy.port}/ws", TOPIC])
    wait_page(page, "window.connects.length === 1", CONNECT_TIMEOUT_MS)
    wait_subscribed(page, TOPIC, CONNECT_TIMEOUT_MS)


def two_nodes(gateway_process: Callable[..., GatewayProcess], site: StaticSite, tmp_path: Path) -> tuple[GatewayProcess, GatewayProcess]:
    """Start two gateway nodes sharing a SQLite store and a Redis bus channel of their own, open to the page's origin."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-e2e-{secrets.token_hex(6)}",
    }
    secret = secrets.token_urlsafe(32)
    a = gateway_process("--allowed-origins", site.url, env=env, secret=secret)
    b = gateway_process("--allowed-origins", site.url, env=env, secret=secret)
    return a, b


def forwarded_total(nodes: list[GatewayProcess]) -> int:
    """How many SockJS requests the nodes forwarded to the node holding their session."""
    total = 0
    for node in nodes:
        with urllib.request.urlopen(f"{node.url}/metrics", timeout=PUBLISH_TIMEOUT) as response:
            text = response.read().decode()
        total += sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("telegraphy_sockjs_forwarded_total "))
    return total


def wait_received(page: Any, n: int) -> None:
    """Wait until the page has received event ``n``."""
    wait_page(page, "(n) => window.received.includes(n)", EVENT_TIMEOUT_MS, arg=n)


@pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")
def test_page_resumes_on_another_node_after_its_node_is_killed(page, site, proxies, gateway_process, tmp_path: Path):
    """kill -9 the page's node mid-stream and point the proxy at the other: the page resumes there with every event once, in order."""
    a, b = two_nodes(gateway_process, site, tmp_path)
    proxy = proxies(a.port)
    open_page(page, site, proxy)

    total = 80
    publisher = Publisher(b, total, pause_after=10)  # to node B: the page hears them through A and the bus
    publisher.start()
    try:
        wait_page(page, "window.received.length >= 10", EVENT_TIMEOUT_MS)
        publisher.go()  # the rest streams while A dies
        a.kill()
        with pytest.raises(GatewayCrashed):
            a.stop()  # reaps it; the fixture's teardown then leaves it be
        proxy.set_target(b.port)
        wait_page(page, "window.connects.length >= 2", RECONNECT_TIMEOUT_MS)
    except BaseException:
        publisher.abandon()
        raise
    publisher.finish()
    wait_received(page, total)
    publish(b, total + 1)  # a sentinel: nothing stale trails the replay
    wait_received(page, total + 1)

    state = page_state(page)
    assert state["received"] == list(range(1, total + 2)), state
    assert [c["resumed"] for c in state["connects"]] == [False, True], state
    assert state["connects"][1]["recovered"] == {TOPIC: True}
    assert state["recoveries"] == [{"topic": TOPIC, "recovered": True, "missed": None}]


def test_page_recovers_every_event_missed_while_the_proxy_dropped_it(page, site, proxies, gateway_process, tmp_path: Path):
    """The proxy drops the page's connection (the node lives on) while events keep coming: each arrives once, in order."""
    gw = gateway_process("--allowed-origins", site.url, env={"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'store.sqlite3'}"})
    proxy = proxies(gw.port)
    open_page(page, site, proxy)

    total = 60
    publisher = Publisher(gw, total, pause_after=10)
    publisher.start()
    try:
        wait_page(page, "window.received.length >= 10", EVENT_TIMEOUT_MS)
        proxy.drop_all(block=True)
        publisher.go()
        wait_page(page, "window.disconnects >= 1", EVENT_TIMEOUT_MS)
        # Come back while the publisher is still going: replayed and live events meet.
        wait_for(lambda: publisher.published >= 40 or not publisher.is_alive(), timeout=30, message="publisher stalled")
        proxy.unblock()
        wait_page(page, "window.connects.length >= 2", RECONNECT_TIMEOUT_MS)
    except BaseException:
        publisher.abandon()
        raise
    publisher.finish()
    wait_received(page, total)
    publish(gw, total + 1)
    wait_received(page, total + 1)

    state = page_state(page)
    assert state["received"] == list(range(1, total + 2)), state
    assert [c["resumed"] for c in state["connects"]] == [False, True], state
    assert state["connects"][1]["recovered"] == {TOPIC: True}
    assert state["recoveries"] == [{"topic": TOPIC, "recovered": True, "missed": None}]


def test_page_is_told_when_missed_events_were_trimmed_and_gets_live_ones_after(
    page, site, proxies, gateway_process, tmp_path: Path
):
    """With only 3 events of history, 10 missed ones cannot be recovered: a 'recovery' says so, then live events flow."""
    gw = gateway_process(
        "--allowed-origins",
        site.url,
        "--history-max-events",
        "3",
        env={"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'store.sqlite3'}"},
    )
    proxy = proxies(gw.port)
    open_page(page, site, proxy)
    publish(gw, 1)
    wait_received(page, 1)

    proxy.drop_all(block=True)
    wait_page(page, "window.disconnects >= 1", EVENT_TIMEOUT_MS)
    for n in range(2, 12):
        publish(gw, n)
    proxy.unblock()
    wait_page(page, "window.connects.length >= 2", RECONNECT_TIMEOUT_MS)  # 'recovery' follows 'connect' at once

    state = page_state(page)
    assert state["recoveries"] == [{"topic": TOPIC, "recovered": False, "reason": "history trimmed"}], state
    assert [c["resumed"] for c in state["connects"]] == [False, True], state
    assert state["connects"][1]["recovered"] == {TOPIC: False}

    publish(gw, 12)
    publish(gw, 13)
    wait_received(page, 13)
    assert page.evaluate("window.received") == [1, 12, 13]  # live events only: nothing stale, nothing twice


@pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")
@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
def test_page_without_websocket_polls_through_a_balancer_without_sticky_sessions(
    page, site, proxies, gateway_process, tmp_path: Path, transport: str
):
    """No WebSocket, two nodes behind a round-robin balancer: each connection of sockjs-client may reach either node, nothing is lost."""
    a, b = two_nodes(gateway_process, site, tmp_path)
    proxy = proxies(a.port)
    proxy.set_targets([a.port, b.port])
    page.add_init_script("delete window.WebSocket;")
    page.goto(site.url + "/")
    page.evaluate("Telegraphy.on('connect', (info) => { window.transports = [info.transport, info.sockjsTransport]; })")
    setup = SETUP_JS.replace(
        "Telegraphy.configure({url: url,",
        f"Telegraphy.configure({{url: url, sockjsScriptUrl: '{site.url}/sockjs.min.js', sockjsTransports: ['{transport}'],",
    )
    assert setup != SETUP_JS
    page.evaluate(setup, [f"ws://127.0.0.1:{proxy.port}/ws", TOPIC])
    wait_page(page, "window.connects.length === 1", CONNECT_TIMEOUT_MS)
    wait_subscribed(page, TOPIC, CONNECT_TIMEOUT_MS)
    assert page.evaluate("window.transports") == ["sockjs", transport]

    total = 30
    for n in range(1, total + 1):
        publish(a if n % 2 else b, n)
    wait_received(page, total)
    state = page_state(page)
    assert state["received"] == list(range(1, total + 1)), state
    assert state["connects"] == state["connects"][:1] and state["errors"] == [], state
    # The balancer spread the session's requests: some reached the node without the session.
    assert proxy.accepted >= 2
    assert forwarded_total([a, b]) > 0
