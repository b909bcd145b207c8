"""Bad WebSocket input against a real gateway: the offender is aborted and closed, everyone else carries on.

Raw clients (Tornado's ``websocket_connect``) send what no WAMP library
would; a well-behaved session on the same gateway must still receive a
published event afterwards, and the process must still be running.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack
import pytest
import tornado.httpclient
import tornado.websocket
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import CloseDetails, ComponentConfig
from gateway_helpers import GatewayProcess

from telegraphy.tokens import mint_publish_token

REALM = "telegraphy"
PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
#: Seconds a whole test scenario may take.
DEADLINE = 20.0
#: Seconds to wait for any one thing (a message, a close).
STEP = 5.0

HELLO = [1, REALM, {"roles": {"subscriber": {}, "publisher": {}}}]


def run(scenario: Any, deadline: float = DEADLINE) -> Any:
    """Run an asyncio scenario to completion, failing it after ``deadline`` seconds.

    Raw connections the scenario left open are closed at the end, so the
    gateway is not left waiting for peers whose event loop is gone.
    """

    async def scenario_then_close() -> Any:
        try:
            return await asyncio.wait_for(scenario, deadline)
        finally:
            await RawClient.close_all()

    return asyncio.run(scenario_then_close())


class RawClient:
    """A WebSocket connection that sends and reads WAMP messages (or anything else) by hand."""

    #: Every client opened in the running scenario.
    opened: ClassVar[list[RawClient]] = []

    def __init__(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        self.connection = connection
        self.msgpack = connection.selected_subprotocol == "wamp.2.msgpack"
        #: Set once reading returned None: the connection is closed.
        self.done = False
        RawClient.opened.append(self)

    @classmethod
    async def close_all(cls) -> None:
        """Close every client still open, completing the closing handshake."""
        clients, cls.opened = cls.opened, []
        for client in clients:
            if client.done:
                continue
            client.connection.close(1000, "test over")
            try:
                while await client.receive() is not None:
                    pass
            except asyncio.TimeoutError:
                pass

    @classmethod
    async def open(cls, gateway: GatewayProcess, subprotocols: list[str] | None = None, origin: str | None = None) -> RawClient:
        """Open the WebSocket (``wamp.2.json`` unless told otherwise), with an Origin header if given."""
        headers = {"Origin": origin} if origin is not None else {}
        request = tornado.httpclient.HTTPRequest(gateway.ws_url, headers=headers, request_timeout=STEP)
        connection = await tornado.websocket.websocket_connect(request, subprotocols=subprotocols or ["wamp.2.json"])
        return cls(connection)

    async def send(self, message: list[Any]) -> None:
        """Send a WAMP message in the connection's serialization."""
        if self.msgpack:
            await self.connection.write_message(msgpack.packb(message), binary=True)
        else:
            await self.connection.write_message(json.dumps(message))

    async def send_raw(self, data: str | bytes, binary: bool = False) -> None:
        """Send one WebSocket message as it is (a text frame unless ``binary``)."""
        await self.connection.write_message(data, binary=binary)

    async def receive(self) -> Any:
        """Return the next WAMP message, or ``None`` once the connection is closed."""
        if self.done:
            return None
        data = await asyncio.wait_for(self.connection.read_message(), STEP)
        if data is None:
            self.done = True
            return None
        return msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)

    async def join(self) -> int:
        """Send HELLO, expect WELCOME; return the session id."""
        await self.send(HELLO)
        welcome = await self.receive()
        assert welcome is not None and welcome[0] == 2, welcome
        session_id: int = welcome[1]
        return session_id

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server to close the connection; return its close code and reason."""
        leftover = await self.receive()
        assert leftover is None, f"expected the connection to close, got {leftover}"
        return self.connection.close_code, self.connection.close_reason

    async def aborted(self) -> tuple[str, int | None]:
        """Expect ABORT then the close; return the ABORT reason and the close code."""
        abort = await self.receive()
        assert abort is not None and abort[0] == 3, abort
        assert isinstance(abort[1].get("message"), str)
        code, _ = await self.closed()
        reason: str = abort[2]
        return reason, code


class Watcher:
    """A well-behaved raw session subscribed to a topic, to show the gateway still delivers."""

    TOPIC = "watch.events"

    def __init__(self, gateway: GatewayProcess, client: RawClient, subscription: int) -> None:
        self.gateway = gateway
        self.client = client
        self.subscription = subscription
        self.published = 0

    @classmethod
    async def start(cls, gateway: GatewayProcess) -> Watcher:
        client = await RawClient.open(gateway)
        await client.join()
        await client.send([32, 1, {}, cls.TOPIC])
        subscribed = await client.receive()
        assert subscribed[:2] == [33, 1], subscribed
        return cls(gateway, client, subscribed[2])

    async def assert_still_served(self) -> None:
        """Publish over HTTP and assert the watcher gets the event and the process runs."""
        self.published += 1
        assert self.gateway.secret is not None
        body = json.dumps({"name": self.TOPIC, "data": {"n": self.published}}).encode()
        headers = {"Authorization": f"Bearer {mint_publish_token(self.gateway.secret)}", "Content-Type": "application/json"}
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            f"{self.gateway.url}/publish", method="POST", body=body, headers=headers, raise_error=False
        )
        assert response.code == 202, response.body
        event = await self.client.receive()
        assert event is not None and event[:2] == [36, self.subscription], event
        assert event[4][0]["data"] == {"n": self.published}
        assert self.gateway.alive()


async def _after_hello(client: RawClient) -> None:
    await client.join()


async def _after_goodbye(client: RawClient) -> None:
    await client.join()
    await client.send([6, {}, "wamp.close.normal"])
    assert await client.receive() == [6, {}, "wamp.close.goodbye_and_out"]


async def _nothing(client: RawClient) -> None:
    return None


#: (id, subprotocol, what happens first, what is sent, whether as a binary frame); each gets ABORT protocol_violation.
BAD_MESSAGES: list[tuple[str, str, Callable[[RawClient], Any], str | bytes, bool]] = [
    ("malformed-json", "wamp.2.json", _after_hello, '[16, 1, {}, "t"', False),
    ("json-nan", "wamp.2.json", _after_hello, '[16, 1, {}, "t", [NaN]]', False),
    ("json-not-a-list", "wamp.2.json", _after_hello, '{"type": 16}', False),
    ("wrong-arity", "wamp.2.json", _after_hello, '[32, 1, {}]', False),
    ("wrong-type", "wamp.2.json", _after_hello, '[32, 1, {}, 42]', False),
    ("unknown-code", "wamp.2.json", _after_hello, '[99, 1, {}]', False),
    ("subscribe-before-hello", "wamp.2.json", _nothing, '[32, 1, {}, "t"]', False),
    ("subscribe-after-goodbye", "wamp.2.json", _after_goodbye, '[32, 1, {}, "t"]', False),
    ("second-hello", "wamp.2.json", _after_hello, json.dumps(HELLO), False),
    ("msgpack-garbage", "wamp.2.msgpack", _after_hello, b"\xc1\xc1\xc1\xc1", True),
    ("msgpack-truncated", "wamp.2.msgpack", _after_hello, msgpack.packb([16, 1, {}, "t"])[:-2], True),
    ("msgpack-wrong-arity", "wamp.2.msgpack", _after_hello, msgpack.packb([16, 1]), True),
    ("msgpack-unknown-code", "wamp.2.msgpack", _after_hello, msgpack.packb([77, 1, 2]), True),
    ("msgpack-garbage-before-hello", "wamp.2.msgpack", _nothing, b"\x00\xff", True),
    ("text-frame-on-msgpack", "wamp.2.msgpack", _after_hello, '[32, 1, {}, "t"]', False),
    # The ABORT text quoted a lone surrogate and could not be encoded: the connection dropped with a traceback.
    ("hello-surrogate-authmethod", "wamp.2.json", _nothing, '[1,"telegraphy",{"authmethods":["\\ud800"]}]', False),
    # repr() of the message type recursed 1,000 deep: RecursionError, dropped connection, traceback.
    ("msgpack-nested-1000", "wamp.2.msgpack", _after_hello, b"\x91" * 1000 + b"\xc0", True),
    # Stored with the session record, a lone surrogate made "could not save a session" (never resumable).
    ("surrogate-topic", "wamp.2.json", _after_hello, '[32, 1, {}, "watch.\\ud800"]', False),
    ("surrogate-filter-key", "wamp.2.json", _after_hello, '[32, 1, {"filter": {"\\ud800": 1}}, "watch.events"]', False),
]


@pytest.mark.parametrize(("subprotocol", "setup", "data", "binary"), [case[1:] for case in BAD_MESSAGES], ids=[case[0] for case in BAD_MESSAGES])
def test_bad_message_aborts_only_the_offender(
    gateway: GatewayProcess, subprotocol: str, setup: Callable[[RawClient], Any], data: str | bytes, binary: bool
) -> None:
    """The offender gets ABORT wamp.error.protocol_violation and close 1002; a well-behaved session still gets events."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        offender = await RawClient.open(gateway, [subprotocol])
        assert offender.connection.selected_subprotocol == subprotocol
        await setup(offender)
        await offender.send_raw(data, binary=binary)
        assert await offender.aborted() == (PROTOCOL_VIOLATION, 1002)
        await watcher.assert_still_served()

    run(scenario())
    assert "Traceback" not in gateway.stderr(), gateway.stderr()


def test_many_offenders_in_a_row(gateway: GatewayProcess) -> None:
    """A stream of offending connections never disturbs the session that behaves."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        for _, subprotocol, setup, data, binary in BAD_MESSAGES:
            offender = await RawClient.open(gateway, [subprotocol])
            await setup(offender)
            await offender.send_raw(data, binary=binary)
            assert (await offender.aborted())[0] == PROTOCOL_VIOLATION
        await watcher.assert_still_served()
        await watcher.assert_still_served()

    run(scenario())


def test_invalid_utf8_text_frame(gateway: GatewayProcess) -> None:
    """A text frame that is not UTF-8 is closed with 1007 (RFC 6455 §8.1); others are unaffected."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        offender = await RawClient.open(gateway)
        await offender.join()
        await offender.send_raw(b'[16, 1, {}, "\xff"]', binary=False)
        code, _ = await offender.closed()
        assert code == 1007
        await watcher.assert_still_served()

    run(scenario())


def test_message_over_the_size_limit(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A message larger than --max-message-size closes the connection with 1009; a message under it is fine."""
    gateway = gateway_process("--max-message-size", "1K")

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        client = await RawClient.open(gateway)
        await client.join()
        await client.send([32, 1, {"padding": "x" * 900}, "t.x"])  # the topic itself stays under --max-uri-length
        assert (await client.receive())[0] == 33
        await client.send([32, 2, {}, "t." + "x" * 2000])
        code, _ = await client.closed()
        assert code == 1009
        await watcher.assert_still_served()

    run(scenario())


def test_unsupported_subprotocol_only(gateway: GatewayProcess) -> None:
    """A client offering only subprotocols the gateway lacks is closed with 1002 and told which to use."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        client = await RawClient.open(gateway, ["wamp.2.cbor", "wamp.2.ubjson"])
        assert client.connection.selected_subprotocol is None
        code, reason = await client.closed()
        assert code == 1002
        assert reason is not None and "wamp.2.json" in reason and "wamp.2.msgpack" in reason
        await watcher.assert_still_served()

    run(scenario())


def test_no_subprotocol_means_json(gateway: GatewayProcess) -> None:
    """A client offering no subprotocol at all is served wamp.2.json."""

    async def scenario() -> None:
        request = tornado.httpclient.HTTPRequest(gateway.ws_url, request_timeout=STEP)
        connection = await tornado.websocket.websocket_connect(request)
        client = RawClient(connection)
        assert connection.selected_subprotocol is None
        await client.join()

    run(scenario())


def test_subprotocol_in_client_order(gateway: GatewayProcess) -> None:
    """Of several offered subprotocols the gateway picks the client's first supported one."""

    async def scenario() -> None:
        client = await RawClient.open(gateway, ["wamp.2.cbor", "wamp.2.msgpack", "wamp.2.json"])
        assert client.connection.selected_subprotocol == "wamp.2.msgpack"
        await client.join()

    run(scenario())


def test_disallowed_origin_refused_at_handshake(gateway: GatewayProcess) -> None:
    """A browser Origin that is neither the gateway's own nor allowed gets 403 before any WebSocket opens."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        with pytest.raises(tornado.httpclient.HTTPClientError) as info:
            await RawClient.open(gateway, origin="https://evil.example")
        assert info.value.code == 403
        await watcher.assert_still_served()

    run(scenario())


def test_allowed_origins(gateway_process: Callable[..., GatewayProcess]) -> None:
    """--allowed-origins admits the listed origins; no Origin and the gateway's own origin are always admitted."""
    gateway = gateway_process("--allowed-origins", "https://app.example,https://admin.example")

    async def scenario() -> None:
        for origin in ("https://app.example", "https://admin.example", None, f"http://127.0.0.1:{gateway.port}"):
            client = await RawClient.open(gateway, origin=origin)
            await client.join()
        for origin in ("https://evil.example", "https://app.example.evil.example", "http://app.example"):
            with pytest.raises(tornado.httpclient.HTTPClientError) as info:
                await RawClient.open(gateway, origin=origin)
            assert info.value.code == 403, origin

    run(scenario())


def test_any_origin(gateway_process: Callable[..., GatewayProcess]) -> None:
    """--allowed-origins '*' admits every origin."""
    gateway = gateway_process("--allowed-origins", "*")

    async def scenario() -> None:
        client = await RawClient.open(gateway, origin="https://anywhere.example")
        await client.join()

    run(scenario())


def test_peer_closing_abruptly(gateway: GatewayProcess) -> None:
    """Connections dropped mid-session (with subscriptions) are cleaned up; the gateway keeps serving."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        for _ in range(5):
            client = await RawClient.open(gateway)
            await client.join()
            await client.send([32, 1, {}, Watcher.TOPIC])
            assert (await client.receive())[0] == 33
            client.connection.close()
        await watcher.assert_still_served()

    run(scenario())


# Shutdown ----------------------------------------------------------------------


class Session(ApplicationSession):
    """An Autobahn session that reports its join and its leave through futures."""

    def __init__(self, config: ComponentConfig, joined: asyncio.Future[Any], left: asyncio.Future[CloseDetails]) -> None:
        super().__init__(config)
        self.joined = joined
        self.left = left

    def onConnect(self) -> None:
        self.join(self.config.realm)

    def onJoin(self, details: Any) -> None:
        self.joined.set_result(self)

    def onLeave(self, details: CloseDetails) -> Any:
        if not self.left.done():
            self.left.set_result(details)
        return super().onLeave(details)


@pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
def test_sigterm_says_goodbye(gateway: GatewayProcess, serializer: type) -> None:
    """On SIGTERM a connected Autobahn session gets GOODBYE wamp.close.system_shutdown and the process exits 0."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        joined: asyncio.Future[Any] = loop.create_future()
        left: asyncio.Future[CloseDetails] = loop.create_future()
        factory = WampWebSocketClientFactory(lambda: Session(ComponentConfig(REALM), joined, left), url=gateway.ws_url, serializers=[serializer()])
        await loop.create_connection(factory, "127.0.0.1", gateway.port)
        session = await asyncio.wait_for(joined, STEP)
        await session.subscribe(lambda *args: None, "chat.lobby")
        idle = await RawClient.open(gateway)  # a connection that never said HELLO
        # stop() sends SIGTERM and waits for the exit; run it in a thread so
        # this loop can answer the gateway's GOODBYE meanwhile.
        stopping = asyncio.ensure_future(asyncio.to_thread(gateway.stop))
        details = await asyncio.wait_for(left, STEP)
        assert details.reason == "wamp.close.system_shutdown"
        assert await asyncio.wait_for(stopping, 15) == 0
        code, _ = await idle.closed()
        assert code == 1001

    run(scenario())


# Payloads some serializer cannot carry ------------------------------------------------------------


async def join_as(client: RawClient, gateway: GatewayProcess, user: str) -> int:
    """Join with a connect token as WAMP ticket (a signed-in user may publish); return the session id."""
    await client.send([1, REALM, {"roles": {"publisher": {}, "subscriber": {}}, "authmethods": ["ticket"]}])
    challenge = await client.receive()
    assert challenge[:2] == [4, "ticket"], challenge
    await client.send([5, gateway.connect_token(user), {}])
    welcome = await client.receive()
    assert welcome[0] == 2, welcome
    session_id: int = welcome[1]
    return session_id


#: A declared channel: signed-in users publish on topics under "t.".
PUBLISH_UNDER_T = ("--channels", json.dumps([{"topic": "t.", "match": "prefix", "publish": "authenticated"}]))

#: (id, publisher subprotocol, PUBLISH as sent, the problem the ERROR names or None when not acknowledged)
UNPORTABLE: list[tuple[str, str, str | bytes, str | None]] = [
    # The frames, byte for byte: [16,1,{"acknowledge":true},"t.resume",[NaN]] …
    ("msgpack-nan", "wamp.2.msgpack", bytes.fromhex("95100181ab61636b6e6f776c65646765c3a8742e726573756d6591cb7ff8000000000000"), "NaN at args[0]"),
    # … and [16,1,{},"t.x",[b"\x00"]] (no acknowledge: no answer, and nothing else changes).
    ("msgpack-bytes", "wamp.2.msgpack", bytes.fromhex("951001 80 a3742e78 91 c40100".replace(" ", "")), None),
    ("msgpack-infinity", "wamp.2.msgpack", msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [float("inf")]]), "Infinity at args[0]"),
    ("msgpack-bytes-key", "wamp.2.msgpack", msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [{b"k": 1}]]), "a map key that is bytes at args[0]"),
    ("msgpack-timestamp", "wamp.2.msgpack", msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [msgpack.Timestamp(0)]]), "a msgpack timestamp"),
    ("json-surrogate", "wamp.2.json", '[16, 1, {"acknowledge": true}, "t.x", ["\\ud800"]]', "a string with a lone utf-16 surrogate"),
]


@pytest.mark.parametrize(("subprotocol", "data", "problem"), [c[1:] for c in UNPORTABLE], ids=[c[0] for c in UNPORTABLE])
def test_unportable_payload_is_refused_and_other_events_are_stored(
    gateway_process: Callable[..., GatewayProcess], subprotocol: str, data: str | bytes, problem: str | None
) -> None:
    """A payload some peer or the store cannot carry gets ERROR invalid_argument; the next events, HTTP and client ones, are delivered with offsets; no traceback."""
    gateway = gateway_process(*PUBLISH_UNDER_T)

    async def scenario() -> None:
        subscribers = [await RawClient.open(gateway, ["wamp.2.json"]), await RawClient.open(gateway, ["wamp.2.msgpack"])]
        topics = {}
        for subscriber in subscribers:
            await subscriber.join()
            for request, topic in enumerate(("t.x", "t.resume"), 1):
                await subscriber.send([32, request, {}, topic])
                subscribed = await subscriber.receive()
                assert subscribed[:2] == [33, request], subscribed
                topics[(id(subscriber), topic)] = subscribed[2]
        publisher = await RawClient.open(gateway, [subprotocol])
        await join_as(publisher, gateway, "7")
        # The bad PUBLISH and a good one in one read: before, they shared a storage batch.
        await publisher.send_raw(data, binary=isinstance(data, bytes))
        await publisher.send([16, 2, {"acknowledge": True}, "t.x", ["fine"]])
        if problem is not None:
            error = await publisher.receive()
            assert error[:5] == [8, 16, 1, {}, "wamp.error.invalid_argument"], error
            assert error[5][0].startswith("payload cannot be delivered to every client: ") and problem in error[5][0], error
        published = await publisher.receive()
        assert published[:2] == [17, 2], published
        body = json.dumps({"name": "t.x", "data": {"over": "http"}}).encode()
        headers = {"Authorization": f"Bearer {gateway.publish_token()}", "Content-Type": "application/json"}
        response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{gateway.url}/publish", method="POST", body=body, headers=headers, raise_error=False)
        assert response.code == 202, response.body
        for subscriber in subscribers:
            first, second = await subscriber.receive(), await subscriber.receive()
            assert first[:2] == [36, topics[(id(subscriber), "t.x")]] and first[4] == ["fine"], first
            assert second[4][0]["data"] == {"over": "http"}, second
            # Stored: each has its stream position, one after the other.
            assert second[3]["offset"] == first[3]["offset"] + 1, (first, second)

    run(scenario())
    log = gateway.stderr()
    assert "Traceback" not in log and "could not" not in log, log


def test_http_event_nested_too_deep_is_refused(gateway: GatewayProcess) -> None:
    """POST /publish with data nested deeper than every serializer carries gets 400 invalid_event, not a failed delivery."""

    async def scenario() -> None:
        data: object = 1
        for _ in range(80):
            data = [data]
        body = json.dumps({"name": "t.deep", "data": {"x": data}}).encode()
        headers = {"Authorization": f"Bearer {gateway.publish_token()}", "Content-Type": "application/json"}
        response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{gateway.url}/publish", method="POST", body=body, headers=headers, raise_error=False)
        assert response.code == 400, response.body
        answer = json.loads(response.body)
        assert answer["error"] == "invalid_event" and "nested over 64 deep" in answer["detail"], answer
        assert len(answer["detail"]) < 300

    run(scenario())
    assert "Traceback" not in gateway.stderr(), gateway.stderr()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_http_event_with_a_non_finite_number_is_refused(gateway: GatewayProcess, constant: str) -> None:
    """POST /publish refuses NaN and ±Infinity (which Python's json would accept) with a 400 JSON error; nothing is published."""

    async def scenario() -> None:
        watcher = await Watcher.start(gateway)
        body = ('{"name": "%s", "data": {"v": %s}}' % (Watcher.TOPIC, constant)).encode()
        headers = {"Authorization": f"Bearer {gateway.publish_token()}", "Content-Type": "application/json"}
        response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{gateway.url}/publish", method="POST", body=body, headers=headers, raise_error=False)
        assert response.code == 400, response.body
        answer = json.loads(response.body)
        assert answer["error"] == "invalid_json" and constant.lstrip("-") in answer["detail"], answer
        await watcher.assert_still_served()

    run(scenario())
    assert "Traceback" not in gateway.stderr(), gateway.stderr()
