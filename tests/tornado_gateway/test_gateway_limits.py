"""Limits against real gateway processes: each triggers with its documented error, is counted in /metrics, and spares other sessions.

- ``--max-subscriptions``: SUBSCRIBE beyond → ERROR ``telegraphy.error.limit_exceeded``;
- ``--publish-rate``/``--publish-burst``: PUBLISH beyond → ERROR
  ``telegraphy.error.limit_exceeded`` when acknowledged, else dropped; 10 × the
  burst refused within 10 s → ABORT ``telegraphy.error.flooding``, close 1008;
- ``--connection-rate``/``--connection-burst``: a new WebSocket or SockJS
  session beyond → HTTP 429 ``{"error": "too_many_connections"}``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Callable

import autobahn.asyncio.wamp  # noqa: F401 - first: makes txaio use asyncio
import pytest
import tornado.httpclient
import tornado.websocket
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import PublishOptions
from gateway_helpers import GatewayProcess, run_gateway
from test_session_resume import Client as RawClient
from test_wamp_autobahn import STEP, connect, connect_user, run

from telegraphy.tokens import mint_connect_token

LIMIT_EXCEEDED = "telegraphy.error.limit_exceeded"
#: Signed-in sessions may publish on chat.* (by default clients publish nowhere).
CHAT = json.dumps([{"topic": "chat.", "match": "prefix", "publish": "authenticated"}])


def _metrics(gateway: GatewayProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=STEP) as response:
        text = response.read().decode()
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")}


def test_max_subscriptions(gateway_process: Callable[..., GatewayProcess]) -> None:
    """With --max-subscriptions 3 the 4th SUBSCRIBE gets telegraphy.error.limit_exceeded; another session has its own 3."""
    gateway = gateway_process("--max-subscriptions", "3")

    async def scenario() -> None:
        full = await connect(gateway, JsonSerializer)
        other = await connect(gateway, JsonSerializer)
        for n in range(3):
            await full.subscribe(full.collector("t"), f"t.{n}")
        with pytest.raises(ApplicationError) as info:
            await full.subscribe(full.collector("t"), "t.3")
        assert info.value.error == LIMIT_EXCEEDED
        assert info.value.args == ("a session may hold at most 3 subscriptions",)
        for topic in ("t.3", "t.0", "t.1"):
            await other.subscribe(other.collector("t"), topic)
        await full.close()
        await other.close()

    run(scenario())
    counters = _metrics(gateway)
    assert counters["telegraphy_subscriptions_refused_total"] == 1
    assert counters["telegraphy_subscriptions"] == 0


def test_publish_rate(gateway_process: Callable[..., GatewayProcess]) -> None:
    """Past --publish-burst an acknowledged PUBLISH gets limit_exceeded, an unacknowledged one is dropped; others are unaffected."""
    gateway = gateway_process("--publish-rate", "0.01", "--publish-burst", "3", "--channels", CHAT)

    async def scenario() -> None:
        fast = await connect_user(gateway, JsonSerializer, "fast")
        calm = await connect_user(gateway, JsonSerializer, "calm")
        subscriber = await connect(gateway, JsonSerializer)
        await subscriber.subscribe(subscriber.collector("chat"), "chat.lobby")
        for n in range(3):
            await fast.publish("chat.lobby", n, options=PublishOptions(acknowledge=True))
        with pytest.raises(ApplicationError) as info:
            await fast.publish("chat.lobby", 3, options=PublishOptions(acknowledge=True))
        assert info.value.error == LIMIT_EXCEEDED
        assert info.value.args == ("publish rate over 0.01/s (burst 3)",)
        fast.publish("chat.lobby", 4)  # unacknowledged: dropped without an answer
        await calm.publish("chat.lobby", "calm", options=PublishOptions(acknowledge=True))
        received = [(await subscriber.next_event())[1][0] for _ in range(4)]
        assert received == [0, 1, 2, "calm"]
        assert subscriber.events.empty()
        for client in (fast, calm, subscriber):
            await client.close()

    run(scenario())
    assert _metrics(gateway)["telegraphy_publishes_throttled_total"] == 2


def test_publish_flood_closes_only_the_flooder(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A session sending 10 × the burst beyond it gets ABORT telegraphy.error.flooding and close 1008; a subscriber keeps its session."""
    gateway = gateway_process("--publish-rate", "0.01", "--publish-burst", "2", "--channels", CHAT)
    assert gateway.secret is not None

    async def scenario() -> None:
        subscriber = await connect(gateway, JsonSerializer)
        await subscriber.subscribe(subscriber.collector("chat"), "chat.lobby")
        flooder = await RawClient.open(gateway)
        await flooder.hello(authmethods=["ticket"], _ticket=mint_connect_token(gateway.secret, "spammer"))
        for request in range(1, 40):
            await flooder.send([16, request, {}, "chat.lobby", [request]])
        abort = await flooder.receive()
        assert abort[0] == 3 and abort[2] == "telegraphy.error.flooding", abort
        assert await asyncio.wait_for(flooder.conn.read_message(), STEP) is None
        assert flooder.conn.close_code == 1008
        received = [(await subscriber.next_event())[1][0] for _ in range(2)]
        assert received == [1, 2]
        assert subscriber.is_attached()
        await subscriber.close()

    run(scenario())
    counters = _metrics(gateway)
    assert counters["telegraphy_sessions_flooding_total"] == 1
    assert counters["telegraphy_publishes_throttled_total"] == 19


async def _websocket(gateway: GatewayProcess) -> tornado.websocket.WebSocketClientConnection:
    return await tornado.websocket.websocket_connect(gateway.ws_url, subprotocols=["wamp.2.json"], connect_timeout=STEP)


def test_connection_rate_websocket(gateway_process: Callable[..., GatewayProcess]) -> None:
    """Beyond --connection-burst new WebSockets from one IP get HTTP 429 too_many_connections; open ones keep working."""
    gateway = gateway_process("--connection-rate", "0.01", "--connection-burst", "3")

    async def scenario() -> None:
        opened = [await _websocket(gateway) for _ in range(3)]
        with pytest.raises(tornado.httpclient.HTTPClientError) as info:
            await _websocket(gateway)
        assert info.value.code == 429
        assert info.value.response is not None
        assert json.loads(info.value.response.body)["error"] == "too_many_connections"
        assert info.value.response.headers["Retry-After"] == "1"
        # An open connection is unaffected: it joins and gets WELCOME.
        await opened[0].write_message(json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}}]))
        welcome = json.loads(await asyncio.wait_for(opened[0].read_message(), STEP))
        assert welcome[0] == 2
        for connection in opened:
            connection.close()

    run(scenario())
    assert _metrics(gateway)["telegraphy_connections_throttled_total"] == 1


def test_connection_rate_sockjs(gateway_process: Callable[..., GatewayProcess]) -> None:
    """New SockJS sessions count too: beyond the burst a new session's first request gets 429; an existing session keeps polling."""
    gateway = gateway_process("--connection-rate", "0.01", "--connection-burst", "2")

    async def scenario() -> None:
        client = tornado.httpclient.AsyncHTTPClient()

        async def xhr(session: str) -> tornado.httpclient.HTTPResponse:
            return await client.fetch(
                f"{gateway.url}/sockjs/000/{session}/xhr", method="POST", body=b"", raise_error=False, request_timeout=STEP
            )

        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        assert (await xhr(first)).body == b"o\n"
        assert (await xhr(second)).body == b"o\n"
        refused = await xhr(uuid.uuid4().hex)
        assert refused.code == 429 and json.loads(refused.body)["error"] == "too_many_connections"
        # The first session's next poll is no new connection.
        hello = json.dumps([json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}}])])
        url = f"{gateway.url}/sockjs/000/{first}/xhr_send"
        send = await client.fetch(url, method="POST", body=hello, raise_error=False, request_timeout=STEP)
        assert send.code == 204
        poll = await xhr(first)
        assert poll.code == 200 and poll.body.startswith(b"a[")

    run(scenario())
    assert _metrics(gateway)["telegraphy_connections_throttled_total"] == 1


def test_defaults_are_stated_in_help() -> None:
    """--help names every limit flag with its environment variable and documented default."""
    result = run_gateway("--help")
    text = " ".join(result.stdout.split())
    for flag, env, default in [
        ("--max-subscriptions", "TELEGRAPHY_MAX_SUBSCRIPTIONS", "1000"),
        ("--publish-rate", "TELEGRAPHY_PUBLISH_RATE", "50"),
        ("--publish-burst", "TELEGRAPHY_PUBLISH_BURST", "100"),
        ("--connection-rate", "TELEGRAPHY_CONNECTION_RATE", "20"),
        ("--connection-burst", "TELEGRAPHY_CONNECTION_BURST", "50"),
    ]:
        assert flag in text and f"env: {env}; default: {default})" in text

