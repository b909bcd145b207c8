"""WAMP over SockJS against a real gateway process: every transport, bad input, timeouts, origins, slow consumers.

:class:`SockJSWamp` is a WAMP client written by hand against the SockJS
protocol (0.3.3) over one transport: it opens the receiving request(s),
decodes frames (``o``, ``h``, ``a[...]``, ``c[...]``) from the transport's
wrapping and sends WAMP messages through ``xhr_send``, ``jsonp_send`` or the
WebSocket. The official protocol suite runs separately
(``tools/sockjs_conformance.py``); these tests show what a client of the
gateway sees.
"""

from __future__ import annotations

import asyncio
import http.client as http_client
import json
import re
import socket
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.simple_httpclient
import tornado.websocket
from gateway_helpers import GatewayProcess, start_gateway, wait_for_async
from test_websocket_transport import OP_TEXT, RawClient, connect, metrics  # noqa: F401 - connect is a fixture
from test_websocket_transport import publish as publish_now

from telegraphy.sockjs.http import bundled_client
from telegraphy.tokens import mint_connect_token, mint_publish_token
from telegraphy.tornado_gateway.config import Config, ConfigError

REALM = "telegraphy"
#: Seconds a whole test scenario may take.
DEADLINE = 30.0
#: Seconds to wait for any one thing (a frame, a response).
STEP = 5.0
HELLO = [1, REALM, {"roles": {"subscriber": {}, "publisher": {}}}]
TRANSPORTS = ["xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp", "websocket"]

_HTMLFILE_FRAME = re.compile(rb'<script>\np\((".*?")\);\n</script>\r\n', re.DOTALL)
_JSONP_FRAME = re.compile(rb'^/\*\*/cb\((".*")\);\r\n$', re.DOTALL)


def run(scenario: Any, deadline: float = DEADLINE) -> Any:
    """Run an asyncio scenario, failing it after ``deadline`` seconds; close the clients it left open."""

    async def scenario_then_close() -> Any:
        try:
            return await asyncio.wait_for(scenario, deadline)
        finally:
            for client in list(SockJSWamp.opened):
                await client.close()

    return asyncio.run(scenario_then_close())


def http() -> tornado.simple_httpclient.SimpleAsyncHTTPClient:
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True, max_body_size=1 << 24)
    return client


async def fetch(url: str, method: str = "GET", body: bytes | str | None = None, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    """One HTTP request with a deadline; errors come back as responses."""
    client = http()
    try:
        if method == "POST" and body is None:
            body = b""
        return await client.fetch(url, method=method, body=body, raise_error=False, request_timeout=STEP, **kwargs)
    finally:
        client.close()


async def publish(gateway: GatewayProcess, topic: str, data: dict[str, Any]) -> None:
    """Publish one event through the HTTP API."""
    assert gateway.secret is not None
    headers = {"Authorization": f"Bearer {mint_publish_token(gateway.secret)}", "Content-Type": "application/json"}
    response = await fetch(f"{gateway.url}/publish", "POST", json.dumps({"name": topic, "data": data}), headers=headers)
    assert response.code == 202, response.body


class Closed(Exception):
    """The session was closed with ``c[code, reason]``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed: {code} {reason}")
        self.code = code
        self.reason = reason


class SockJSWamp:
    """A WAMP session over one SockJS transport, driven by hand."""

    opened: list[SockJSWamp] = []

    def __init__(self, base: str, transport: str, session_id: str | None = None) -> None:
        self.base = base
        self.transport = transport
        self.url = f"{base}/000/{session_id or uuid.uuid4().hex}"
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed: Closed | None = None
        self.heartbeats = 0
        self._task: asyncio.Task[None] | None = None
        self._ws: tornado.websocket.WebSocketClientConnection | None = None
        SockJSWamp.opened.append(self)

    @classmethod
    async def connect(cls, gateway: GatewayProcess, transport: str, path: str = "/sockjs") -> SockJSWamp:
        client = cls(gateway.url + path, transport)
        await client.open()
        return client

    async def open(self) -> None:
        """Start receiving; return once the open frame arrived."""
        if self.transport == "websocket":
            url = "ws" + self.url[len("http") :] + "/websocket"
            self._ws = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, request_timeout=STEP))
            self._task = asyncio.ensure_future(self._read_websocket())
        elif self.transport in ("xhr", "jsonp"):
            self._task = asyncio.ensure_future(self._poll())
        else:
            self._task = asyncio.ensure_future(self._stream())
        assert await self.next_frame() == b"o"

    async def _read_websocket(self) -> None:
        assert self._ws is not None
        while (message := await self._ws.read_message()) is not None:
            assert isinstance(message, str)
            self._frame(message.encode())
        self._frame(b'c[0,"websocket closed"]')

    async def _poll(self) -> None:
        while self.closed is None:
            if self.transport == "xhr":
                body = await self._request("POST", "/xhr")
                assert body.endswith(b"\n"), body
                self._frame(body[:-1])
            else:
                body = await self._request("GET", "/jsonp?c=cb")
                match = _JSONP_FRAME.match(body)
                assert match, body
                self._frame(json.loads(match.group(1)).encode())

    async def _stream(self) -> None:
        method, path = {"xhr_streaming": ("POST", "/xhr_streaming"), "eventsource": ("GET", "/eventsource"), "htmlfile": ("GET", "/htmlfile?c=cb")}[
            self.transport
        ]
        while self.closed is None:  # a response ends past the streaming limit: open the next
            buffer = bytearray()

            def on_chunk(chunk: bytes, buffer: bytearray = buffer) -> None:
                buffer.extend(chunk)
                for frame in self._split(buffer):
                    self._frame(frame)

            await self._request(method, path, on_chunk)

    async def _request(self, method: str, path: str, on_chunk: Any = None) -> bytes:
        """One receiving request on its own connection, closed when done or cancelled.

        Returns the body; with ``on_chunk`` each chunk is handed over as it arrives.
        """
        url = urllib.parse.urlsplit(self.url + path)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            writer.write(f"{method} {target} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: 0\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            assert head.startswith("http/1.1 200"), head
            if "transfer-encoding: chunked" not in head:
                length = int(re.search(r"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                return await reader.readexactly(length)
            body = bytearray()
            while size := int(await reader.readuntil(b"\r\n"), 16):
                chunk = (await reader.readexactly(size + 2))[:-2]
                if on_chunk is not None:
                    on_chunk(chunk)
                else:
                    body.extend(chunk)
            return bytes(body)
        finally:
            writer.close()

    def _split(self, buffer: bytearray) -> Iterator[bytes]:
        """Take the complete frames out of a streaming buffer (preludes dropped)."""
        if self.transport == "xhr_streaming":
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                if line != b"h" * 2048:
                    yield line
        elif self.transport == "eventsource":
            while (end := buffer.find(b"\r\n\r\n")) >= 0 or buffer.startswith(b"\r\n"):
                if buffer.startswith(b"\r\n"):  # the prelude
                    del buffer[:2]
                    continue
                event = bytes(buffer[:end])
                del buffer[: end + 4]
                assert event.startswith(b"data: "), event
                yield event[len(b"data: ") :]
        else:
            while (match := _HTMLFILE_FRAME.search(buffer)) is not None:
                literal = bytes(match.group(1))
                del buffer[: match.end()]
                yield json.loads(literal).encode()

    def _frame(self, frame: bytes) -> None:
        if frame == b"h":
            self.heartbeats += 1
            return
        if frame[:1] == b"c":
            code, reason = json.loads(frame[1:])
            self.closed = Closed(code, reason)
        self.frames.put_nowait(frame)

    async def next_frame(self) -> bytes:
        return await asyncio.wait_for(self.frames.get(), STEP)

    async def receive(self) -> list[Any]:
        """Return the next WAMP message; raise :class:`Closed` on a close frame."""
        if not hasattr(self, "_pending"):
            self._pending: list[list[Any]] = []
        while not self._pending:
            frame = await self.next_frame()
            if frame[:1] == b"c":
                code, reason = json.loads(frame[1:])
                raise Closed(code, reason)
            assert frame[:1] == b"a", frame
            self._pending.extend(json.loads(text) for text in json.loads(frame[1:]))
        return self._pending.pop(0)

    async def send(self, *messages: list[Any]) -> None:
        """Send WAMP messages, one SockJS message each."""
        texts = json.dumps([json.dumps(message) for message in messages])
        if self._ws is not None:
            await self._ws.write_message(texts)
        elif self.transport == "jsonp":
            body = urllib.parse.urlencode({"d": texts})
            response = await fetch(self.url + "/jsonp_send", "POST", body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert (response.code, response.body) == (200, b"ok"), response.body
        else:
            response = await fetch(self.url + "/xhr_send", "POST", texts)
            assert response.code == 204, response.body

    async def join(self, hello: list[Any] = HELLO) -> list[Any]:
        await self.send(hello)
        welcome = await self.receive()
        assert welcome[0] == 2, welcome
        return welcome

    async def subscribe(self, topic: str, request: int = 1) -> int:
        await self.send([32, request, {}, topic])
        subscribed = await self.receive()
        assert subscribed[:2] == [33, request], subscribed
        subscription: int = subscribed[2]
        return subscription

    async def close(self) -> None:
        if self in SockJSWamp.opened:
            SockJSWamp.opened.remove(self)
        if self._ws is not None:
            self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


class RawWamp:
    """WAMP over a plain WebSocket (the gateway's /ws, or SockJS's raw /websocket)."""

    def __init__(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str, subprotocols: list[str] | None = None) -> RawWamp:
        request = tornado.httpclient.HTTPRequest(url, request_timeout=STEP)
        return cls(await tornado.websocket.websocket_connect(request, subprotocols=subprotocols))

    async def send(self, message: list[Any]) -> None:
        await self.connection.write_message(json.dumps(message))

    async def receive(self) -> list[Any]:
        data = await asyncio.wait_for(self.connection.read_message(), STEP)
        assert data is not None, "connection closed"
        result: list[Any] = json.loads(data)
        return result


async def wait_until(condition: Any, message: str) -> None:
    """Poll an async condition with a deadline."""
    await wait_for_async(condition, STEP, 0.05, message)


async def gauges(gateway: GatewayProcess) -> dict[str, float]:
    """Read the current connection and session counts from /metrics (/health only says "ok")."""
    text = (await fetch(f"{gateway.url}/metrics")).body.decode()
    samples = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(samples[f"telegraphy_{name}"]) for name in ("connections", "sessions")}


@pytest.fixture(scope="module")
def shared_gateway() -> Iterator[GatewayProcess]:
    """One gateway for the transport matrix (each test uses its own session and topic)."""
    gateway = start_gateway()
    yield gateway
    gateway.stop()


# Every transport --------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wamp_session_over_each_transport(shared_gateway: GatewayProcess, transport: str) -> None:
    """HELLO gets WELCOME, SUBSCRIBE gets SUBSCRIBED, and an event published over HTTP arrives, over every SockJS transport."""

    async def scenario() -> None:
        client = await SockJSWamp.connect(shared_gateway, transport)
        welcome = await client.join()
        assert welcome[2]["authrole"] == "anonymous"
        topic = f"shop.Order{transport}"
        subscription = await client.subscribe(topic)
        for n in range(3):
            await publish(shared_gateway, topic, {"pk": n})
            event = await client.receive()
            assert event[:2] == [36, subscription] and event[4][0]["data"] == {"pk": n}, event
        await client.send([6, {}, "wamp.close.close_realm"])
        assert await client.receive() == [6, {}, "wamp.close.goodbye_and_out"]

    run(scenario())


def test_wamp_session_over_raw_websocket(shared_gateway: GatewayProcess) -> None:
    """<prefix>/websocket is plain WAMP over WebSocket (no SockJS framing), with or without a subprotocol."""

    async def scenario() -> None:
        for subprotocols in (None, ["wamp.2.json"]):
            client = await RawWamp.connect(shared_gateway.url.replace("http", "ws") + "/sockjs/websocket", subprotocols)
            await client.send(HELLO)
            assert (await client.receive())[0] == 2
            await client.send([32, 1, {}, "raw.topic"])
            subscription = (await client.receive())[2]
            await publish(shared_gateway, "raw.topic", {"raw": True})
            event = await client.receive()
            assert event[:2] == [36, subscription] and event[4][0]["data"] == {"raw": True}
            client.connection.close()

    run(scenario())


def test_streaming_response_ends_at_the_limit_and_the_session_continues(gateway_process: Any) -> None:
    """Past --sockjs-response-limit a streaming response ends; the next one continues the same session."""
    gateway = gateway_process("--sockjs-response-limit", "2K")

    async def scenario() -> None:
        client = await SockJSWamp.connect(gateway, "xhr_streaming")
        await client.join()  # WELCOME alone is over 300 bytes
        subscription = await client.subscribe("big")
        for n in range(10):
            await publish(gateway, "big", {"n": n, "pad": "x" * 400})
            event = await client.receive()
            assert event[1] == subscription and event[4][0]["data"]["n"] == n

    run(scenario())


# Bad input -----------------------------------------------------------------------------


def test_bad_input_gets_protocol_errors_and_other_sessions_carry_on(gateway_process: Any) -> None:
    """Malformed arrays, unknown sessions, oversized posts, bad callbacks, broken framing and floods get the protocol's answers; a good session still gets events."""
    gateway = gateway_process("--max-message-size", "4K")

    async def scenario() -> None:
        good = await SockJSWamp.connect(gateway, "xhr_streaming")
        await good.join()
        subscription = await good.subscribe("watch")
        victim = await SockJSWamp.connect(gateway, "xhr")
        send = victim.url + "/xhr_send"

        async def expect(url: str, body: bytes | str, status: int, text: bytes, **headers: str) -> None:
            response = await fetch(url, "POST", body, headers=headers)
            assert response.code == status and text in response.body, (url, body, response.code, response.body)

        for body in ['["x', "{}", "[1]", '"a"', "\xff"]:
            await expect(send, body, 500, b"Broken JSON encoding.")
        await expect(send, "", 500, b"Payload expected.")
        await expect(f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/xhr_send", '["x"]', 404, b"")
        await expect(send, json.dumps(["x" * 5000]), 413, b"Payload too large.")
        await expect(victim.url + "/jsonp_send", "p=p", 500, b"Payload expected.", **{"Content-Type": "application/x-www-form-urlencoded"})
        for callback in ["", "%20", "abc(", "a%3Cb"]:
            response = await fetch(f"{victim.url}/jsonp?c={callback}")
            assert response.code == 500 and b"callback" in response.body
        response = await fetch(f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/websocket")
        assert response.code == 400
        response = await fetch(f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/xhr")
        assert response.code == 405 and response.headers["Allow"] == "OPTIONS, POST"

        # Broken SockJS framing on a WebSocket ends that WebSocket only.
        broken = await SockJSWamp.connect(gateway, "websocket")
        assert broken._ws is not None
        await broken._ws.write_message('["unterminated')
        with pytest.raises(Closed):
            await broken.receive()
        # A bad WAMP message inside valid SockJS framing: ABORT and c[1002,...] for that session.
        await victim.send([32, 1, {}, "subscribe before hello"])
        abort = await victim.receive()
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        with pytest.raises(Closed) as closed:
            await victim.receive()
        assert (closed.value.code, closed.value.reason) == (1002, "wamp.error.protocol_violation")
        # A flood of sends to a fresh session.
        flooder = await SockJSWamp.connect(gateway, "xhr")
        results = await asyncio.gather(*(fetch(flooder.url + "/xhr_send", "POST", '["[1, \\"nope\\""]') for _ in range(100)))
        assert {r.code for r in results} == {204}

        await publish(gateway, "watch", {"still": "here"})
        event = await good.receive()
        assert event[:2] == [36, subscription] and event[4][0]["data"] == {"still": "here"}
        assert gateway.alive()

    run(scenario())


def test_second_receiver_gets_2010(gateway: GatewayProcess) -> None:
    """A second receiving request while one is open gets c[2010,"Another connection still open"]; the first keeps working."""

    async def scenario() -> None:
        first = await SockJSWamp.connect(gateway, "xhr_streaming")
        second = SockJSWamp(gateway.url + "/sockjs", "xhr_streaming", session_id=first.url.rsplit("/", 1)[1])
        second._task = asyncio.ensure_future(second._stream())
        assert await second.next_frame() == b'c[2010,"Another connection still open"]'
        await first.join()

    run(scenario())


# Session lifetime ----------------------------------------------------------------------


def test_heartbeats_and_session_timeout(gateway_process: Any) -> None:
    """Heartbeats reach an idle receiver; a session left without a receiver times out and its WAMP session goes."""
    gateway = gateway_process("--sockjs-heartbeat", "0.2", "--sockjs-disconnect-delay", "0.5")

    async def scenario() -> None:
        streaming = await SockJSWamp.connect(gateway, "xhr_streaming")
        await wait_until(lambda: _true(streaming.heartbeats >= 2), "no heartbeats on an idle stream")
        await streaming.close()
        polling = await SockJSWamp.connect(gateway, "xhr")
        await polling.join()
        assert (await gauges(gateway))["sessions"] == 1
        session_url = polling.url
        await polling.close()  # no receiver any more: 1002, then the timeout
        await wait_until(
            lambda: _status(session_url + "/xhr_send", 404), "the session did not time out after --sockjs-disconnect-delay"
        )
        await wait_until(lambda: _health_is(gateway, sessions=0, connections=0), "the WAMP session outlived its SockJS session")

    run(scenario())


async def _true(value: bool) -> bool:
    return value


async def _status(url: str, status: int) -> bool:
    return (await fetch(url, "POST", '["x"]')).code == status


async def _health_is(gateway: GatewayProcess, **expected: int) -> bool:
    current = await gauges(gateway)
    return all(current[name] == value for name, value in expected.items())


def test_sockjs_sessions_count_as_connections(gateway: GatewayProcess) -> None:
    """An open SockJS session counts in /metrics like a WebSocket connection."""

    async def scenario() -> None:
        client = await SockJSWamp.connect(gateway, "eventsource")
        await client.join()
        assert (await gauges(gateway))["connections"] == 1
        metrics = (await fetch(f"{gateway.url}/metrics")).body.decode()
        assert "telegraphy_connections 1" in metrics and "telegraphy_connections_opened_total 1" in metrics

    run(scenario())


def test_shutdown_says_goodbye_over_sockjs(gateway_process: Any) -> None:
    """On SIGTERM a SockJS session gets GOODBYE (system_shutdown), then c[1001,...] after the grace period; the gateway exits cleanly."""
    gateway = gateway_process()

    async def scenario() -> int:
        client = await SockJSWamp.connect(gateway, "xhr_streaming")
        await client.join()
        stopped = asyncio.ensure_future(asyncio.to_thread(gateway.stop))  # SIGTERM, then wait for the exit
        goodbye = await client.receive()
        assert goodbye[0] == 6 and goodbye[2] == "wamp.close.system_shutdown", goodbye
        # The listener is closed by now: a polling client could not answer.
        with pytest.raises(Closed) as closed:
            await client.receive()
        assert closed.value.code == 1001
        status: int = await stopped
        return status

    assert run(scenario()) == 0


# SockJS and WebSocket together -------------------------------------------------------------


async def ticket_join(send: Any, receive: Any, secret: str, user: str) -> list[Any]:
    """Authenticate with a connect token as WAMP ticket; return WELCOME."""
    await send([1, REALM, {"roles": {"subscriber": {}, "publisher": {}}, "authmethods": ["ticket"], "authid": user}])
    challenge = await receive()
    assert challenge[:2] == [4, "ticket"], challenge
    await send([5, mint_connect_token(secret, user), {}])
    welcome = await receive()
    assert welcome[0] == 2 and welcome[2]["authid"] == user, welcome
    return welcome


def test_sockjs_and_websocket_sessions_exchange_events(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A ticket-authenticated WAMP session over SockJS and one over plain WebSocket publish to each other on a declared channel."""
    gateway = gateway_process("--channels", json.dumps([{"topic": "chat.", "match": "prefix", "publish": "authenticated"}]))
    assert gateway.secret is not None
    secret = gateway.secret

    async def scenario() -> None:
        sockjs = await SockJSWamp.connect(gateway, "xhr_streaming")
        await ticket_join(sockjs.send, sockjs.receive, secret, "u1")
        websocket = await RawWamp.connect(gateway.ws_url, ["wamp.2.json"])
        await ticket_join(websocket.send, websocket.receive, secret, "u2")
        on_sockjs = await sockjs.subscribe("chat.to_sockjs")
        await websocket.send([32, 1, {}, "chat.to_websocket"])
        on_websocket = (await websocket.receive())[2]

        await websocket.send([16, 2, {"acknowledge": True, "disclose_me": True}, "chat.to_sockjs", ["hello from websocket"]])
        assert (await websocket.receive())[:2] == [17, 2]
        event = await sockjs.receive()
        assert event[:2] == [36, on_sockjs] and event[4] == ["hello from websocket"] and event[3]["publisher_authid"] == "u2"

        await sockjs.send([16, 2, {"acknowledge": True}, "chat.to_websocket", ["hello from sockjs"], {"via": "xhr_streaming"}])
        assert (await sockjs.receive())[:2] == [17, 2]
        event = await websocket.receive()
        assert event[:2] == [36, on_websocket] and event[4:] == [["hello from sockjs"], {"via": "xhr_streaming"}]
        websocket.connection.close()

    run(scenario())


# Endpoints, origins, options -----------------------------------------------------------------


def test_origins_follow_allowed_origins(gateway_process: Any) -> None:
    """A foreign Origin gets 403 on SockJS endpoints; same-host and --allowed-origins pages get CORS echoed."""
    gateway = gateway_process("--allowed-origins", "https://app.example")

    async def scenario() -> None:
        base = gateway.url + "/sockjs"
        session = f"{base}/000/{uuid.uuid4().hex}"
        for url, method in [(base + "/info", "GET"), (session + "/xhr", "POST"), (session + "/xhr_send", "OPTIONS")]:
            refused = await fetch(url, method, headers={"Origin": "https://evil.example"})
            assert refused.code == 403, (url, refused.code)
        allowed = await fetch(base + "/info", headers={"Origin": "https://app.example"})
        assert allowed.code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
        same_host = await fetch(session + "/xhr", "POST", headers={"Origin": gateway.url})
        assert same_host.code == 200 and same_host.body == b"o\n"
        no_origin = await fetch(base + "/info")
        assert no_origin.headers["Access-Control-Allow-Origin"] == "*"
        ws = base.replace("http", "ws") + f"/000/{uuid.uuid4().hex}/websocket"
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused_ws:
            await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(ws, headers={"Origin": "https://evil.example"}))
        assert refused_ws.value.code == 403

    run(scenario())


def test_info_iframe_and_preflight(gateway_process: Any) -> None:
    """/info describes the service, the iframe page loads --sockjs-client-url with an ETag, preflights are cacheable."""
    gateway = gateway_process("--sockjs-client-url", "/static/sockjs.min.js", "--sockjs-client-integrity", "sha384-abc", "--sockjs-cookie")

    async def scenario() -> None:
        base = gateway.url + "/sockjs"
        info = await fetch(base + "/info")
        document = json.loads(info.body)
        assert document["websocket"] is True and document["cookie_needed"] is True and document["origins"] == ["*:*"]
        assert info.headers["Cache-Control"] == "no-store, no-cache, no-transform, must-revalidate, max-age=0"
        iframe = await fetch(base + "/iframe-1.6.1.html")
        assert iframe.code == 200
        assert b'<script src="/static/sockjs.min.js" integrity="sha384-abc" crossorigin="anonymous"></script>' in iframe.body
        # The bundled copy is not served when the page loads another one.
        assert (await fetch(base + "/sockjs.min.js")).code == 404
        again = await fetch(base + "/iframe.html", headers={"If-None-Match": iframe.headers["Etag"]})
        assert again.code == 304
        preflight = await fetch(f"{base}/000/abc/xhr", "OPTIONS", headers={"Origin": gateway.url, "Access-Control-Request-Headers": "x-a"})
        assert preflight.code == 204
        assert preflight.headers["Access-Control-Allow-Headers"] == "x-a"
        assert int(preflight.headers["Access-Control-Max-Age"]) >= 31536000
        polled = await fetch(f"{base}/000/{uuid.uuid4().hex}/xhr", "POST", headers={"Cookie": "JSESSIONID=node7"})
        assert polled.headers["Set-Cookie"] == "JSESSIONID=node7; Path=/"
        greeting = await fetch(base)
        assert greeting.body == b"Welcome to SockJS!\n"

    run(scenario())


def test_paths_and_test_endpoints_follow_the_flags(gateway_process: Any) -> None:
    """--sockjs-path moves the endpoint, --no-sockjs removes it, --sockjs-test-endpoints adds /echo and friends."""
    moved = gateway_process("--sockjs-path", "/realtime/", "--sockjs-test-endpoints")
    off = gateway_process("--no-sockjs")

    async def scenario() -> None:
        assert (await fetch(moved.url + "/realtime/info")).code == 200
        assert (await fetch(moved.url + "/sockjs/info")).code == 404
        assert json.loads((await fetch(moved.url + "/disabled_websocket_echo/info")).body)["websocket"] is False
        echo = SockJSWamp(moved.url + "/echo", "xhr")
        echo._task = asyncio.ensure_future(echo._poll())
        assert await echo.next_frame() == b"o"
        await fetch(echo.url + "/xhr_send", "POST", '["ping"]')
        assert await echo.next_frame() == b'a["ping"]'
        assert (await fetch(off.url + "/sockjs/info")).code == 404
        assert (await fetch(off.url + "/echo/info")).code == 404

    run(scenario())


# Draft-76 ("Hixie-76") WebSockets ---------------------------------------------------------

HIXIE_KEY1 = "4 @1  46546xW%0l 1 5"
HIXIE_KEY2 = "12998 5 Y3 1  .P00"


async def hixie76_request(
    gateway: GatewayProcess, path: str, key3: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Send a draft-76 upgrade request (with key3 right after it as browsers did, or without as HAProxy forwarded it); return the stream and the response head."""
    host = gateway.url.split("//", 1)[1]
    reader, writer = await asyncio.open_connection(*host.rsplit(":", 1))
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
            f"Origin: {gateway.url}\r\nSec-WebSocket-Key1: {HIXIE_KEY1}\r\nSec-WebSocket-Key2: {HIXIE_KEY2}\r\n\r\n"
        ).encode("ascii")
        + key3
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    return reader, writer, head


async def hixie76_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one draft-76 text frame (0x00 ... 0xFF)."""
    data = await asyncio.wait_for(reader.readuntil(b"\xff"), STEP)
    assert data[:1] == b"\x00", data
    return data[1:-1]


def test_wamp_session_over_a_hixie76_websocket(gateway_process: Any) -> None:
    """A draft-76 client on the per-session websocket transport: 101 head, key3 after it, the 16-byte answer, then a WAMP session; --no-sockjs-hixie76 refuses it."""
    gateway = gateway_process()
    off = gateway_process("--no-sockjs-hixie76")

    async def scenario() -> None:
        path = f"/sockjs/000/{uuid.uuid4().hex}/websocket"
        reader, writer, head = await hixie76_request(gateway, path)
        status, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
        assert status == "HTTP/1.1 101 WebSocket Protocol Handshake"
        assert headers["upgrade"] == "WebSocket" and headers["connection"] == "Upgrade"
        assert headers["sec-websocket-origin"] == gateway.url
        assert headers["sec-websocket-location"] == gateway.url.replace("http", "ws") + path
        assert "content-length" not in headers
        writer.write(b"aaaaaaaa")
        answer = await asyncio.wait_for(reader.readexactly(16), STEP)
        assert answer == b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{"
        assert await hixie76_frame(reader) == b"o"
        writer.write(b"\x00" + json.dumps([json.dumps(HELLO)]).encode() + b"\xff")
        frame = await hixie76_frame(reader)
        assert frame.startswith(b"a[")
        welcome = json.loads(json.loads(frame[1:])[0])
        assert welcome[0] == 2 and welcome[2]["authrole"] == "anonymous"
        # The closing handshake: ours answered, then the connection ends.
        writer.write(b"\xff\x00")
        assert await asyncio.wait_for(reader.read(), STEP) == b"\xff\x00"
        writer.close()

        # A browser sent key3 with the request, before any answer.
        reader, writer, head = await hixie76_request(gateway, f"/sockjs/000/{uuid.uuid4().hex}/websocket", b"^n:ds[4U")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await asyncio.wait_for(reader.readexactly(16), STEP) == b"8jKS'y:G*Co,Wxa-"
        assert await hixie76_frame(reader) == b"o"
        writer.close()

        # Off: the same request is an RFC 6455 one without a version, refused.
        reader, writer, head = await hixie76_request(off, path)
        assert head.startswith(b"HTTP/1.1 400 ")
        writer.close()
        # The raw <prefix>/websocket and /ws stay RFC 6455 only, even when on.
        for other in ("/sockjs/websocket", "/ws"):
            reader, writer, head = await hixie76_request(gateway, other)
            assert head.startswith(b"HTTP/1.1 426 "), (other, head)
            writer.close()

    run(scenario())


# Input no serializer or store can carry, over SockJS -------------------------------------------------


@pytest.mark.parametrize("transport", ["xhr_streaming", "websocket"])
def test_odd_wamp_input_over_sockjs_gets_errors_not_tracebacks(gateway_process: Any, transport: str) -> None:
    """Over SockJS as over /ws: a HELLO quoting a lone surrogate and a 900-deep message get ABORT and close; a payload with one gets ERROR; no traceback."""
    gateway = gateway_process("--channels", json.dumps([{"topic": "t.", "match": "prefix", "publish": "authenticated"}]))
    assert gateway.secret is not None
    secret = gateway.secret

    async def scenario() -> None:
        watcher = await SockJSWamp.connect(gateway, "xhr_streaming")
        await watcher.join()
        subscription = await watcher.subscribe("t.odd")

        deep: Any = 1
        for _ in range(900):
            deep = [deep]
        for bad, joined in (([1, REALM, {"authmethods": ["\ud800"]}], False), (deep, True)):
            offender = await SockJSWamp.connect(gateway, transport)
            if joined:
                await offender.join()
            await offender.send(bad)
            abort = await offender.receive()
            assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation", abort
            assert len(abort[1]["message"]) <= 200
            with pytest.raises(Closed) as closed:
                await offender.receive()
            assert closed.value.code == 1002
            await offender.close()

        publisher = await SockJSWamp.connect(gateway, transport)
        await ticket_join(publisher.send, publisher.receive, secret, "u7")
        await publisher.send([16, 1, {"acknowledge": True}, "t.odd", ["\ud800"]], [16, 2, {"acknowledge": True}, "t.odd", ["fine"]])
        error = await publisher.receive()
        assert error[:5] == [8, 16, 1, {}, "wamp.error.invalid_argument"], error
        assert "lone utf-16 surrogate" in error[5][0]
        assert (await publisher.receive())[:2] == [17, 2]
        event = await watcher.receive()
        assert event[:2] == [36, subscription] and event[4] == ["fine"] and "offset" in event[3], event

    run(scenario())
    assert "Traceback" not in gateway.stderr(), gateway.stderr()


# Session binding and cross-origin fallbacks (issue 11, findings 6 and 25) ----------------------------

#: Another loopback address: a client there is "another machine" to the gateway.
ELSEWHERE = "127.0.0.2"


async def from_address(
    source: str, url: str, method: str = "POST", body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Make one HTTP request from the local address ``source``; return the status and body."""
    parts = urllib.parse.urlsplit(url)

    def request() -> tuple[int, bytes]:
        connection = http_client.HTTPConnection(parts.hostname, parts.port, timeout=STEP, source_address=(source, 0))
        try:
            connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return await asyncio.to_thread(request)


@pytest.mark.parametrize("transport", ["xhr", "jsonp"])
def test_a_session_id_alone_does_not_reach_someone_elses_session(gateway: GatewayProcess, transport: str) -> None:
    """A client at another address that knows a session id gets 404 for every request of it; the owner carries on."""

    async def scenario() -> None:
        owner = await SockJSWamp.connect(gateway, transport)
        await ticket_join(owner.send, owner.receive, gateway.secret, "8")
        topic = f"private.{uuid.uuid4().hex[:8]}"
        await owner.subscribe(topic)
        subscribe = json.dumps([json.dumps([32, 99, {}, topic])])
        form = urllib.parse.urlencode({"d": subscribe})
        attempts = [
            ("/xhr_send", "POST", subscribe, {}),
            ("/jsonp_send", "POST", form, {"Content-Type": "application/x-www-form-urlencoded"}),
            ("/xhr", "POST", None, {}),
            ("/xhr_streaming", "POST", None, {}),
            ("/eventsource", "GET", None, {}),
            ("/htmlfile?c=cb", "GET", None, {}),
            ("/jsonp?c=cb", "GET", None, {}),
        ]
        for path, method, body, headers in attempts:
            status, text = await from_address(ELSEWHERE, owner.url + path, method, body, headers)
            assert (status, text) == (404, b"Session not found."), (path, status, text)
        # The owner's session is untouched: its events arrive, its sends work.
        await publish(gateway, topic, {"secret": 1})
        event = await owner.receive()
        assert event[0] == 36 and event[4][0]["data"] == {"secret": 1}, event
        await owner.send([32, 2, {}, topic + ".more"])
        assert (await owner.receive())[:2] == [33, 2]

    run(scenario())


def test_peer_binding_can_be_turned_off(gateway_process: Any) -> None:
    """With --no-sockjs-bind-peer a session answers any address (for clients whose address changes between requests)."""
    gateway = gateway_process("--no-sockjs-bind-peer")

    async def scenario() -> None:
        owner = await SockJSWamp.connect(gateway, "xhr")
        status, text = await from_address(ELSEWHERE, owner.url + "/xhr_send", body=json.dumps([json.dumps(HELLO)]))
        assert status == 204, text
        assert (await owner.receive())[0] == 2  # the WELCOME of the HELLO sent from elsewhere

    run(scenario())


def test_iframe_page_loads_the_bundled_client(gateway: GatewayProcess) -> None:
    """By default the iframe page loads the bundled sockjs-client from the gateway itself, nothing from outside."""

    async def scenario() -> None:
        base = gateway.url + "/sockjs"
        page = (await fetch(base + "/iframe.html")).body.decode()
        match = re.search(r'<script src="(/sockjs/sockjs\.min\.js\?v=[0-9a-f]+)"></script>', page)
        assert match, page
        assert "://" not in page  # nothing from outside
        script = await fetch(gateway.url + match.group(1))
        assert script.code == 200 and script.body == bundled_client()[0]
        assert script.headers["Content-Type"].startswith("application/javascript")
        assert "max-age=31536000" in script.headers["Cache-Control"]

    run(scenario())


def test_a_client_url_needs_an_integrity_hash() -> None:
    """--sockjs-client-url without --sockjs-client-integrity is refused at start, naming both settings."""
    config = Config.from_args(["--insecure-dev", "--sockjs-client-url", "https://cdn.example/sockjs.min.js"], {})
    with pytest.raises(ConfigError, match="--sockjs-client-url needs --sockjs-client-integrity"):
        config.check()
    with pytest.raises(SystemExit):
        Config.from_args(["--sockjs-client-integrity", "md5-abc"], {})


def test_eventsource_answers_cross_origin_pages(gateway_process: Any) -> None:
    """An eventsource response to an allowed page on another origin carries the CORS headers the browser needs."""
    gateway = gateway_process("--allowed-origins", "http://app.example:8000")

    async def scenario() -> None:
        url = f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/eventsource"
        chunks: list[bytes] = []
        client = http()
        request = tornado.httpclient.HTTPRequest(
            url, headers={"Origin": "http://app.example:8000"}, streaming_callback=chunks.append, request_timeout=STEP
        )
        response_headers: list[str] = []
        request.header_callback = response_headers.append
        future = client.fetch(request, raise_error=False)
        await wait_until(lambda: _true(b"".join(chunks).endswith(b"data: o\r\n\r\n")), "no open frame")
        future.cancel()
        client.close()
        head = "".join(response_headers)
        assert "Access-Control-Allow-Origin: http://app.example:8000\r\n" in head, head
        assert "Access-Control-Allow-Credentials: true\r\n" in head, head

    run(scenario())


def test_jsonp_works_from_a_page_whose_referrer_policy_hides_its_origin(gateway_process: Any) -> None:
    """jsonp_send with ``Origin: null`` and no Referer is delivered; a Referer from a foreign origin is refused."""
    gateway = gateway_process("--allowed-origins", "http://app.example:8000")

    async def scenario() -> None:
        client = await SockJSWamp.connect(gateway, "jsonp")
        form = urllib.parse.urlencode({"d": json.dumps([json.dumps(HELLO)])})
        url = client.url + "/jsonp_send"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        refused = await fetch(url, "POST", form, headers={**headers, "Origin": "null", "Referer": "http://evil.example/page"})
        assert refused.code == 403
        sent = await fetch(url, "POST", form, headers={**headers, "Origin": "null"})
        assert (sent.code, sent.body) == (200, b"ok")
        assert (await client.receive())[0] == 2  # WELCOME
        allowed = await fetch(url, "POST", form, headers={**headers, "Origin": "null", "Referer": "http://app.example:8000/list/"})
        assert (allowed.code, allowed.body) == (200, b"ok")
        polled = await fetch(f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/jsonp?c=cb", headers={"Referer": "http://evil.example/"})
        assert polled.code == 403
        # Other transports keep the plain Origin rule: a null Origin is no allowed page.
        null_xhr = await fetch(f"{gateway.url}/sockjs/000/{uuid.uuid4().hex}/xhr", "POST", b"", headers={"Origin": "null"})
        assert null_xhr.code == 403

    run(scenario())


def test_a_short_session_id_cannot_authenticate(gateway: GatewayProcess) -> None:
    """A SockJS session id of 8 characters (sockjs-client's default) may join anonymously, not with a ticket."""

    async def scenario() -> None:
        short = SockJSWamp(gateway.url + "/sockjs", "xhr", session_id=uuid.uuid4().hex[:8])
        await short.open()
        await short.send([1, REALM, {"roles": {"subscriber": {}}, "authmethods": ["ticket"], "authid": "8"}])
        abort = await short.receive()
        assert abort[0] == 3 and abort[2] == "wamp.error.not_authorized", abort
        with pytest.raises(Closed) as closed:
            await short.receive()
        assert (closed.value.code, closed.value.reason) == (1008, "wamp.error.not_authorized")
        anonymous = SockJSWamp(gateway.url + "/sockjs", "xhr", session_id=uuid.uuid4().hex[:8])
        await anonymous.open()
        await anonymous.join()

    run(scenario())


# Slow consumers ---------------------------------------------------------------------


def sockjs_websocket(connect: Callable[..., RawClient], gateway: GatewayProcess, rcvbuf: int | None = None) -> RawClient:
    """Open a SockJS WebSocket (``<prefix>/<server>/<session>/websocket``) by hand and read its open frame."""
    client = connect(gateway, rcvbuf)
    assert client.upgrade([], path=f"/sockjs/000/{uuid.uuid4().hex}/websocket").status == 101
    assert client.next_frame() == (OP_TEXT, b"o")
    return client


def sockjs_frame(client: RawClient) -> bytes:
    """Return the next SockJS frame of a hand-made SockJS WebSocket, skipping heartbeats."""
    while True:
        received = client.next_frame()
        assert received is not None, "the gateway closed the TCP connection"
        assert received[0] == OP_TEXT, received
        if received[1] != b"h":
            return received[1]


def sockjs_call(client: RawClient, message: list[Any]) -> list[Any]:
    """Send one WAMP message over a hand-made SockJS WebSocket and return the one answer."""
    client.send_frame(OP_TEXT, json.dumps([json.dumps(message)]).encode())
    frame = sockjs_frame(client)
    assert frame[:1] == b"a", frame
    (answer,) = json.loads(frame[1:])
    result: list[Any] = json.loads(answer)
    return result


def test_sockjs_websocket_slow_consumer_gets_the_close_frame(gateway_process: Any, connect: Callable[..., RawClient]) -> None:
    """A SockJS WebSocket client that stops reading gets, once it reads again, the queued events then c[1008,"slow consumer: outgoing buffer full"] and the close."""
    gateway = gateway_process("--outgoing-buffer", "64K", "--max-message-size", "64K", "--max-body-size", "64K")
    topic = "firehose"
    slow = sockjs_websocket(connect, gateway, rcvbuf=4096)
    assert sockjs_call(slow, HELLO)[0] == 2
    slow_subscription = sockjs_call(slow, [32, 1, {}, topic])[2]
    reader = sockjs_websocket(connect, gateway)
    assert sockjs_call(reader, HELLO)[0] == 2
    subscription = sockjs_call(reader, [32, 1, {}, topic])[2]
    padding = "x" * 32_000
    published = 0
    # Bounded, as the /ws test: at most 400 events of 32 kB.
    for published in range(1, 401):
        publish_now(gateway, topic, {"n": published, "padding": padding})
        frame = sockjs_frame(reader)
        event = json.loads(json.loads(frame[1:])[0])
        assert event[:2] == [36, subscription] and event[4][0]["data"]["n"] == published, frame[:200]
        if published % 5 == 0 and metrics(gateway)["telegraphy_slow_consumers_total"] == 1:
            break
    else:
        raise AssertionError(f"the slow consumer was not closed after {published} events")
    # Reading again: the events queued before the cut, in order, then the SockJS close frame and the WebSocket close.
    seen = 0
    while (frame := sockjs_frame(slow))[:1] == b"a":
        for text in json.loads(frame[1:]):
            event = json.loads(text)
            assert event[:2] == [36, slow_subscription] and event[4][0]["data"]["n"] == seen + 1, event[:4]
            seen += 1
    assert frame == b'c[1008,"slow consumer: outgoing buffer full"]'
    assert 0 < seen < published
    assert slow.expect_close() == (1000, "")
    slow.finish_close(1000)
    assert "Traceback" not in gateway.stderr()


def test_sockjs_websocket_reader_gets_a_message_bigger_than_the_outgoing_buffer(gateway_process: Any, connect: Callable[..., RawClient]) -> None:
    """One SockJS frame several times --outgoing-buffer (one event, several matching subscriptions) reaches a SockJS WebSocket client that reads; it is no slow consumer."""
    gateway = gateway_process("--outgoing-buffer", "256K", "--max-message-size", "256K", "--max-body-size", "256K")
    # A small window: the frame waits in the gateway's buffer while the client reads it.
    client = sockjs_websocket(connect, gateway, rcvbuf=4096)
    assert sockjs_call(client, HELLO)[0] == 2
    # Eight subscriptions the event matches: its eight EVENTs go out as one SockJS frame.
    subscriptions = [sockjs_call(client, [32, n, {"filter": {"n__lt": 100 + n}}, "big"])[2] for n in range(8)]
    # A body under the limit (each quote is 2 bytes of JSON) whose EVENTs are
    # not: SockJS escapes their JSON once more (4 bytes a quote), about 8 x 480 KB,
    # more than the kernel takes at once on loopback.
    quotes = '"' * 120_000
    publish_now(gateway, "big", {"q": quotes, "n": 0})
    frame = sockjs_frame(client)
    assert len(frame) > 8 * 256 * 1024
    events = [json.loads(text) for text in json.loads(frame[1:])]
    assert sorted(event[1] for event in events) == sorted(subscriptions)
    assert all(event[4][0]["data"] == {"q": quotes, "n": 0} for event in events)
    publish_now(gateway, "big", {"after": True, "n": 106})
    event = json.loads(json.loads(sockjs_frame(client)[1:])[0])
    assert event[4][0]["data"] == {"after": True, "n": 106}
    assert metrics(gateway)["telegraphy_slow_consumers_total"] == 0


class StreamingReader:
    """An ``xhr_streaming`` response read by hand from a socket, whose reading can pause."""

    def __init__(self, gateway: GatewayProcess, session_id: str, rcvbuf: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(STEP)
        self.sock.connect(("127.0.0.1", gateway.port))
        self.sock.sendall(f"POST /sockjs/000/{session_id}/xhr_streaming HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".encode())
        self.raw = bytearray()
        self.body = bytearray()
        self.ended = False
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
        self.raw = bytearray(rest)

    def _recv(self) -> None:
        chunk = self.sock.recv(1 << 16)
        assert chunk, f"the gateway closed the connection (response ended: {self.ended})"
        self.raw += chunk

    def _dechunk(self) -> None:
        while not self.ended and (end := self.raw.find(b"\r\n")) >= 0:
            size = int(self.raw[:end], 16)
            if len(self.raw) < end + 2 + size + 2:
                return
            self.body += self.raw[end + 2 : end + 2 + size]
            del self.raw[: end + 2 + size + 2]
            self.ended = size == 0

    def frame(self) -> bytes:
        """Return the next frame (prelude and heartbeats skipped)."""
        while True:
            self._dechunk()
            while (end := self.body.find(b"\n")) >= 0:
                line = bytes(self.body[:end])
                del self.body[: end + 1]
                if line not in (b"h", b"h" * 2048):
                    return line
            assert not self.ended, "the response ended"
            self._recv()

    def close(self) -> None:
        self.sock.close()


def xhr_call(gateway: GatewayProcess, stream: StreamingReader, session_id: str, message: list[Any]) -> list[Any]:
    """Send one WAMP message with ``xhr_send`` and return the one answer from the stream."""
    connection = http_client.HTTPConnection("127.0.0.1", gateway.port, timeout=STEP)
    try:
        connection.request("POST", f"/sockjs/000/{session_id}/xhr_send", json.dumps([json.dumps(message)]))
        assert connection.getresponse().status == 204
    finally:
        connection.close()
    frame = stream.frame()
    assert frame[:1] == b"a", frame
    answer: list[Any] = json.loads(json.loads(frame[1:])[0])
    return answer


def test_xhr_streaming_reader_gets_a_frame_bigger_than_the_outgoing_buffer(gateway_process: Any) -> None:
    """One SockJS frame several times --outgoing-buffer reaches an xhr_streaming client that reads; it is no slow consumer."""
    gateway = gateway_process("--outgoing-buffer", "256K", "--max-message-size", "256K", "--max-body-size", "256K")
    session_id = uuid.uuid4().hex
    stream = StreamingReader(gateway, session_id, rcvbuf=4096)
    try:
        assert stream.frame() == b"o"
        assert xhr_call(gateway, stream, session_id, HELLO)[0] == 2
        subscriptions = [xhr_call(gateway, stream, session_id, [32, n, {"filter": {"n__lt": 100 + n}}, "big"])[2] for n in range(8)]
        quotes = '"' * 120_000
        publish_now(gateway, "big", {"q": quotes, "n": 0})
        frame = stream.frame()
        assert len(frame) > 8 * 256 * 1024
        events = [json.loads(text) for text in json.loads(frame[1:])]
        assert sorted(event[1] for event in events) == sorted(subscriptions)
        assert all(event[4][0]["data"] == {"q": quotes, "n": 0} for event in events)
    finally:
        stream.close()
    assert metrics(gateway)["telegraphy_slow_consumers_total"] == 0


def test_xhr_streaming_slow_consumer_gets_the_close_frame(gateway_process: Any) -> None:
    """An xhr_streaming client that stops reading gets, once it reads again, the queued events, c[1008,"slow consumer: outgoing buffer full"] and the end of the response."""
    # A response limit above the buffer, so that the buffer, not the limit, ends a stalled response.
    gateway = gateway_process("--outgoing-buffer", "64K", "--max-message-size", "64K", "--max-body-size", "64K", "--sockjs-response-limit", "64M")
    topic = "firehose"
    session_id = uuid.uuid4().hex
    stream = StreamingReader(gateway, session_id, rcvbuf=4096)
    try:
        assert stream.frame() == b"o"
        assert xhr_call(gateway, stream, session_id, HELLO)[0] == 2
        subscription = xhr_call(gateway, stream, session_id, [32, 1, {}, topic])[2]
        padding = "x" * 32_000
        published = 0
        for published in range(1, 401):
            publish_now(gateway, topic, {"n": published, "padding": padding})
            if published % 5 == 0 and metrics(gateway)["telegraphy_slow_consumers_total"] == 1:
                break
        else:
            raise AssertionError(f"the slow consumer was not closed after {published} events")
        seen = 0
        while (frame := stream.frame())[:1] == b"a":
            for text in json.loads(frame[1:]):
                event = json.loads(text)
                assert event[:2] == [36, subscription] and event[4][0]["data"]["n"] == seen + 1, event[:4]
                seen += 1
        assert frame == b'c[1008,"slow consumer: outgoing buffer full"]'
        assert 0 < seen < published
        while not stream.ended:  # then the response ends
            stream._recv()
            stream._dechunk()
    finally:
        stream.close()
    assert "Traceback" not in gateway.stderr()
