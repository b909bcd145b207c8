"""SockJS sessions across gateway nodes with no sticky sessions: each request may reach any node.

Two (or three) real gateway processes share a Redis bus and a store, as
behind a load balancer that spreads requests without affinity. The client
sends every receiving request and every send to the next node in turn, so
a session's polls, streams and sends keep landing on nodes that do not
hold it; it must behave exactly as on one node: WAMP join, events published
to either node, the 2010 refusal of a second receiver, heartbeats, close
frames, the protocol's errors, and a clean ``c[1002,…]`` when a node dies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GatewayCrashed, GatewayProcess, wait_for_async
from test_multinode import redis_reachable
from test_sockjs_transport import ELSEWHERE, REALM, Closed, SockJSWamp, fetch, from_address, http, publish, run, ticket_join

pytestmark = pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")

TOPIC = "multinode.sockjs"
HTTP_TRANSPORTS = ["xhr", "jsonp", "xhr_streaming", "eventsource", "htmlfile"]


@pytest.fixture
def cluster(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> Callable[..., GatewayProcess]:
    """Start gateway nodes sharing one SQLite store and one Redis bus channel of their own."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
    }
    secret = secrets.token_urlsafe(32)
    return lambda *args: gateway_process(*args, env=env, secret=secret)


class SpreadSockJS(SockJSWamp):
    """A :class:`SockJSWamp` whose every request goes to the next node in turn (no affinity)."""

    def __init__(self, nodes: list[GatewayProcess], transport: str, session_id: str | None = None) -> None:
        self.session_id = session_id or uuid.uuid4().hex
        self._bases = itertools.cycle([f"{node.url}/sockjs/000/{self.session_id}" for node in nodes])
        super().__init__(nodes[0].url + "/sockjs", transport, self.session_id)

    def _next(self) -> None:
        self.url = next(self._bases)

    async def _request(self, method: str, path: str, on_chunk: Any = None) -> bytes:
        self._next()
        return await super()._request(method, path, on_chunk)

    async def send(self, *messages: list[Any]) -> None:
        self._next()
        await super().send(*messages)


async def forwarded(node: GatewayProcess) -> int:
    """The node's ``telegraphy_sockjs_forwarded_total`` counter."""
    body = (await fetch(f"{node.url}/metrics")).body.decode()
    match = re.search(r"^telegraphy_sockjs_forwarded_total (\d+)", body, re.MULTILINE)
    assert match, body
    return int(match.group(1))


async def _forwarded_at_least(node: GatewayProcess, count: int) -> bool:
    return await forwarded(node) >= count


async def post(url: str, body: bytes | str = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    """POST with a deadline of ``timeout`` seconds; return the status and body."""
    client = http()
    try:
        response = await client.fetch(url, method="POST", body=body, raise_error=False, request_timeout=timeout)
    finally:
        client.close()
    return response.code, response.body


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_session_spread_over_nodes_behaves_as_on_one(cluster: Callable[..., GatewayProcess], transport: str) -> None:
    """Join, subscribe and receive events published to either node while every request lands on another node than the last."""
    a, b = cluster(), cluster()

    async def scenario() -> None:
        client = SpreadSockJS([a, b], transport)
        await client.open()
        welcome = await client.join([1, REALM, {"roles": {"subscriber": {}, "publisher": {}}}])
        assert welcome[1] > 0
        await client.subscribe(TOPIC)
        for n in range(6):
            await publish(a if n % 2 else b, TOPIC, {"n": n})
        got = []
        while len(got) < 6:
            message = await client.receive()
            assert message[0] == 36, message  # EVENT
            got.append(message[4][0]["data"]["n"])
        assert got == list(range(6))
        # A CALL gets its answer the same way (anonymous sessions may not call meta procedures).
        await client.send([48, 7, {}, "wamp.session.count"])
        assert (await client.receive())[:5] == [8, 48, 7, {}, "wamp.error.not_authorized"]
        await client.send([6, {}, "wamp.close.close_realm"])
        assert await client.receive() == [6, {}, "wamp.close.goodbye_and_out"]
        await client.close()
        # A holds the session (its first request reached A); B forwarded every request it got.
        assert await forwarded(a) == 0 and await forwarded(b) > 0

    run(scenario())


def test_second_receiver_on_another_node_gets_2010_and_the_first_carries_on(cluster: Callable[..., GatewayProcess]) -> None:
    a, b = cluster(), cluster()

    async def scenario() -> None:
        client = SpreadSockJS([a], "xhr_streaming")  # the stream stays on A...
        await client.open()
        await client.join()
        # ...while a poll for the same session reaches B.
        code, body = await post(f"{b.url}/sockjs/000/{client.session_id}/xhr")
        assert (code, body) == (200, b'c[2010,"Another connection still open"]\n')
        await client.subscribe(TOPIC)  # the session and its stream are undisturbed
        await publish(b, TOPIC, {"n": 1})
        assert (await client.receive())[0] == 36

    run(scenario())


def test_heartbeats_reach_a_poll_on_another_node(cluster: Callable[..., GatewayProcess]) -> None:
    a, b = cluster("--sockjs-heartbeat", "0.3"), cluster("--sockjs-heartbeat", "0.3")

    async def scenario() -> None:
        session = uuid.uuid4().hex
        assert await post(f"{a.url}/sockjs/000/{session}/xhr") == (200, b"o\n")
        assert await post(f"{b.url}/sockjs/000/{session}/xhr") == (200, b"h\n")

    run(scenario())


def test_bad_input_on_another_node_gets_the_protocols_errors(cluster: Callable[..., GatewayProcess]) -> None:
    a, b = cluster(), cluster()

    async def scenario() -> None:
        client = SpreadSockJS([a], "xhr")
        await client.open()
        base = f"{b.url}/sockjs/000/{client.session_id}"
        assert await post(f"{b.url}/sockjs/000/{uuid.uuid4().hex}/xhr_send", '["x"]') == (404, b"Session not found.")
        assert await post(base + "/xhr_send", "[") == (500, b"Broken JSON encoding.")
        assert await post(base + "/xhr_send", "") == (500, b"Payload expected.")
        # A message that is no WAMP message ends this session only, with the WebSocket transport's code.
        other = SpreadSockJS([a, b], "xhr")
        await other.open()
        await other.join()
        assert await post(base + "/xhr_send", json.dumps(["not wamp"])) == (204, b"")
        with pytest.raises(Closed) as closed:
            while True:
                await client.receive()
        assert closed.value.code == 1002
        await other.subscribe(TOPIC)

    run(scenario())


def test_a_poll_forwarded_to_a_killed_node_ends_with_1002(cluster: Callable[..., GatewayProcess]) -> None:
    """The session's node dies while another node holds its poll: the poll ends, and sends get 503, not a hang."""
    a, b = cluster(), cluster()

    async def scenario() -> None:
        session = uuid.uuid4().hex
        assert await post(f"{a.url}/sockjs/000/{session}/xhr") == (200, b"o\n")
        poll = asyncio.ensure_future(post(f"{b.url}/sockjs/000/{session}/xhr", timeout=20))
        await wait_for_async(lambda: _forwarded_at_least(b, 1), message="B never forwarded the poll")
        assert not poll.done()
        a.kill()
        assert await poll == (200, b'c[1002,"Connection interrupted"]\n')
        code, body = await post(f"{b.url}/sockjs/000/{session}/xhr_send", '["x"]', timeout=20)
        assert (code, body) == (503, b"Session unavailable.")

    run(scenario())
    with pytest.raises(GatewayCrashed):
        a.stop()


def test_a_killed_node_serving_a_stream_is_detached_by_the_sessions_node(cluster: Callable[..., GatewayProcess]) -> None:
    """The node holding a session's stream dies: the session closes as if the connection dropped, so a new receiver learns it."""
    a, b = cluster(), cluster()

    async def scenario() -> None:
        session = uuid.uuid4().hex
        assert await post(f"{a.url}/sockjs/000/{session}/xhr") == (200, b"o\n")
        received = bytearray()
        client = http()
        stream = asyncio.ensure_future(
            client.fetch(
                f"{b.url}/sockjs/000/{session}/xhr_streaming", method="POST", body=b"",
                streaming_callback=received.extend, request_timeout=20, raise_error=False,
            )
        )
        # The stream is attached on A once a message sent there comes out of it.
        assert await post(f"{a.url}/sockjs/000/{session}/xhr_send", json.dumps([json.dumps([1, REALM, {"roles": {"subscriber": {}}}])])) == (204, b"")

        async def welcomed() -> bool:
            return b"\na[" in received

        await wait_for_async(welcomed, message=f"the stream through B never carried the WELCOME: {bytes(received[-200:])!r}")
        b.kill()
        await asyncio.gather(stream, return_exceptions=True)
        client.close()

        # While B's receiver is attached, A refuses others; once it is detached, A says the session is over.
        async def not_refused() -> bytes | None:
            _, body = await post(f"{a.url}/sockjs/000/{session}/xhr")
            return None if body == b'c[2010,"Another connection still open"]\n' else body

        assert await wait_for_async(not_refused, timeout=10, interval=0.25) == b'c[1002,"Connection interrupted"]\n'

    run(scenario())
    with pytest.raises(GatewayCrashed):
        b.stop()


def test_three_nodes_and_a_websocket_peer_exchange_events(cluster: Callable[..., GatewayProcess]) -> None:
    """A polling session spread over three nodes and a SockJS WebSocket on one of them see each other's publishes (on a declared channel)."""
    channels = json.dumps([{"topic": TOPIC, "publish": "authenticated"}])
    a, b, c = cluster("--channels", channels), cluster("--channels", channels), cluster("--channels", channels)

    async def scenario() -> None:
        assert a.secret is not None
        polling = SpreadSockJS([a, b, c], "xhr")
        await polling.open()
        await ticket_join(polling.send, polling.receive, a.secret, "polling")
        await polling.subscribe(TOPIC)
        websocket = await SockJSWamp.connect(c, "websocket")
        await ticket_join(websocket.send, websocket.receive, a.secret, "websocket")
        await websocket.subscribe(TOPIC)
        await polling.send([16, 1, {"acknowledge": True, "exclude_me": False}, TOPIC, [{"from": "polling"}]])
        await websocket.send([16, 1, {"acknowledge": True, "exclude_me": False}, TOPIC, [{"from": "websocket"}]])
        seen_by_polling, seen_by_websocket = set(), set()
        while len(seen_by_polling) < 2:
            message = await polling.receive()
            if message[0] == 36:
                seen_by_polling.add(message[4][0]["from"])
        while len(seen_by_websocket) < 2:
            message = await websocket.receive()
            if message[0] == 36:
                seen_by_websocket.add(message[4][0]["from"])
        assert seen_by_polling == seen_by_websocket == {"polling", "websocket"}

    run(scenario())


def test_a_session_id_alone_does_not_reach_a_session_on_another_node(cluster: Callable[..., GatewayProcess]) -> None:
    """Requests from another address reaching the node that does not hold the session get 404 too; the owner carries on."""
    a, b = cluster(), cluster()

    async def scenario() -> None:
        owner = SpreadSockJS([a, b], "xhr")
        await owner.open()
        await ticket_join(owner.send, owner.receive, a.secret, "8")
        topic = f"private.{uuid.uuid4().hex[:8]}"
        await owner.subscribe(topic)
        on_b = f"{b.url}/sockjs/000/{owner.session_id}"
        subscribe = json.dumps([json.dumps([32, 99, {}, topic])])
        for path, method, body in [("/xhr_send", "POST", subscribe), ("/xhr", "POST", None), ("/eventsource", "GET", None)]:
            status, text = await from_address(ELSEWHERE, on_b + path, method, body)
            assert (status, text) == (404, b"Session not found."), (path, status, text)
        await publish(b, topic, {"n": 1})
        event = await owner.receive()
        assert event[0] == 36 and event[4][0]["data"] == {"n": 1}, event
        await owner.send([32, 2, {}, topic + ".more"])
        assert (await owner.receive())[:2] == [33, 2]

    run(scenario())
