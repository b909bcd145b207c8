"""The WebSocket transport of a real gateway process, spoken byte by byte over plain sockets.

A raw client writes the HTTP upgrade request and masked frames itself and
parses the server's frames, so the tests see exactly what the gateway puts on
the wire: the handshake answers, close codes, pings and pongs, and when the
server closes the TCP connection. After each misbehaving client a fresh,
well-behaved one must still be served end to end.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import select
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from gateway_helpers import GatewayProcess, wait_for

from telegraphy.websocket import accept_key

#: Seconds to wait for any one thing (a response, a frame, the end of the connection).
STEP = 5.0

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
REALM = "telegraphy"
HELLO = [1, REALM, {"roles": {"subscriber": {}, "publisher": {}}}]


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    """Build one client frame (RFC 6455 §5.2), masked unless told otherwise."""
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head = bytes((first, bit | length))
    elif length < 65536:
        head = struct.pack("!BBH", first, bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, bit | 127, length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class Response:
    """An HTTP response to the upgrade request: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """A TCP connection to the gateway that speaks HTTP and WebSocket by hand."""

    def __init__(self, gateway: GatewayProcess, rcvbuf: int | None = None) -> None:
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect(), so the TCP window is negotiated with this size.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(STEP)
        self.sock.connect(("127.0.0.1", gateway.port))
        self.buffer = bytearray()
        self.eof = False
        self.msgpack = False

    # HTTP ----------------------------------------------------------------------

    def upgrade(
        self,
        protocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = None,
        path: str = "/ws",
    ) -> Response:
        """Send an upgrade request (version 13, a fresh key, ``wamp.2.json``) and read the answer.

        ``headers`` override the defaults; a ``"-Name"`` key leaves ``Name`` out.
        A 101 answer must carry the accept value of the key sent.
        """
        key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        fields = {
            "Host": f"127.0.0.1:{self.gateway.port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        if protocols is None:
            protocols = ["wamp.2.json"]
        if protocols:
            fields["Sec-WebSocket-Protocol"] = ", ".join(protocols)
        for name, value in (headers or {}).items():
            if name.startswith("-"):
                fields.pop(name[1:], None)
            else:
                fields[name] = value
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.sock.sendall(request.encode())
        response = self.read_response()
        if response.status == 101:
            assert response.headers.get("sec-websocket-accept") == accept_key(key), response.headers
            self.msgpack = response.headers.get("sec-websocket-protocol") == "wamp.2.msgpack"
        return response

    def read_response(self) -> Response:
        """Read one HTTP response head and, unless it is 101, its Content-Length body."""
        deadline = time.monotonic() + STEP
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(deadline), f"connection closed before the response head: {bytes(self.buffer)!r}"
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if status != 101:
            length = int(headers.get("content-length", "0"))
            while len(self.buffer) < length:
                assert self._fill(deadline), "connection closed in the middle of the body"
            body, self.buffer = bytes(self.buffer[:length]), self.buffer[length:]
        return Response(status, headers, body)

    def _fill(self, deadline: float) -> bool:
        """Receive more bytes before ``deadline``; return False at EOF (a reset counts as EOF)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing more from the gateway within {STEP} s")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            raise AssertionError(f"nothing more from the gateway within {STEP} s") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    # Frames ----------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin, masked))

    def next_frame(self, timeout: float = STEP) -> tuple[int, bytes] | None:
        """Return the next server frame as (opcode, payload), or ``None`` when the server closed the TCP connection."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if self.eof or not self._fill(deadline):
                assert not self.buffer, f"connection closed mid-frame: {bytes(self.buffer)!r}"
                return None

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        assert first & 0x80 and not first & 0x70, f"server frames are final with no RSV bits: {first:#x}"
        assert not second & 0x80, "server frames are never masked"
        length, head = second & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, head = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, head = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < head + length:
            return None
        payload = bytes(buf[head : head + length])
        del buf[: head + length]
        return first & 0x0F, payload

    def expect_close(self, timeout: float = STEP) -> tuple[int | None, str]:
        """Skip data and ping frames until the server's close frame; return its code and reason."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.next_frame(max(deadline - time.monotonic(), 0.01))
            assert received is not None, "the server closed the TCP connection without a close frame"
            opcode, payload = received
            if opcode == OP_CLOSE:
                if not payload:
                    return None, ""
                return struct.unpack_from("!H", payload)[0], payload[2:].decode()

    def expect_tcp_closed(self, timeout: float = STEP) -> None:
        """Assert the server closes the TCP connection (EOF or reset) with no further frame."""
        assert self.next_frame(timeout) is None

    def finish_close(self, code: int) -> None:
        """After the server's close frame: echo it and expect the server to close the TCP connection."""
        self.send_frame(OP_CLOSE, close_payload(code))
        self.expect_tcp_closed()

    def close(self) -> None:
        self.sock.close()

    # WAMP ------------------------------------------------------------------------

    def send(self, message: list[Any]) -> None:
        """Send a WAMP message in the agreed serialization."""
        if self.msgpack:
            self.send_frame(OP_BINARY, msgpack.packb(message))
        else:
            self.send_frame(OP_TEXT, json.dumps(message).encode())

    def receive(self, timeout: float = STEP) -> Any:
        """Return the next WAMP message, answering pings on the way; fail on a close frame or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.next_frame(max(deadline - time.monotonic(), 0.01))
            assert received is not None, "the server closed the TCP connection"
            opcode, payload = received
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                raise AssertionError(f"unexpected close frame {payload!r}")
            elif opcode == OP_BINARY:
                assert self.msgpack, "binary frame on a JSON connection"
                return msgpack.unpackb(payload)
            elif opcode == OP_TEXT:
                assert not self.msgpack, "text frame on a msgpack connection"
                return json.loads(payload)

    def join(self) -> int:
        """HELLO → WELCOME; return the session id."""
        self.send(HELLO)
        welcome = self.receive()
        assert welcome[0] == 2, welcome
        session_id: int = welcome[1]
        return session_id

    def subscribe(self, topic: str, request: int = 1) -> int:
        """SUBSCRIBE → SUBSCRIBED; return the subscription id."""
        self.send([32, request, {}, topic])
        subscribed = self.receive()
        assert subscribed[:2] == [33, request], subscribed
        subscription: int = subscribed[2]
        return subscription


@pytest.fixture
def connect() -> Iterator[Callable[..., RawClient]]:
    """Open raw clients to a gateway; close them all after the test."""
    opened: list[RawClient] = []

    def open_client(gateway: GatewayProcess, rcvbuf: int | None = None) -> RawClient:
        client = RawClient(gateway, rcvbuf)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def publish(gateway: GatewayProcess, name: str, data: Any) -> None:
    """POST one event to /publish with a valid token; expect 202."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=STEP)
    try:
        body = json.dumps({"name": name, "data": data})
        headers = {"Authorization": f"Bearer {gateway.publish_token()}", "Content-Type": "application/json"}
        connection.request("POST", "/publish", body, headers)
        response = connection.getresponse()
        assert response.status == 202, response.read()
    finally:
        connection.close()


def metrics(gateway: GatewayProcess) -> dict[str, float]:
    """Scrape /metrics into {sample name: value}."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=STEP)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        connection.close()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def assert_event(client: RawClient, subscription: int, data: Any) -> None:
    event = client.receive()
    assert event[:2] == [36, subscription], event
    assert event[4][0]["data"] == data, event


def assert_still_serves(gateway: GatewayProcess, connect: Callable[..., RawClient], protocol: str = "wamp.2.json") -> None:
    """A fresh, well-behaved client joins, subscribes, gets a published event and closes cleanly."""
    client = connect(gateway)
    assert client.upgrade([protocol]).status == 101
    client.join()
    topic = f"fresh.{os.urandom(4).hex()}"
    subscription = client.subscribe(topic)
    publish(gateway, topic, {"fresh": True})
    assert_event(client, subscription, {"fresh": True})
    client.send_frame(OP_CLOSE, close_payload(1000))
    assert client.expect_close() == (1000, "")
    client.expect_tcp_closed()
    assert gateway.alive()
    assert "Traceback" not in gateway.stderr(), gateway.stderr()


# Opening handshake -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["wamp.2.json", "wamp.2.msgpack"], "wamp.2.json"),
        (["wamp.2.cbor", "wamp.2.json", "wamp.2.msgpack"], "wamp.2.json"),
        (["wamp.2.msgpack", "wamp.2.json"], "wamp.2.msgpack"),
        (["wamp.2.msgpack"], "wamp.2.msgpack"),
    ],
    ids=["json-first", "cbor-json-msgpack", "msgpack-first", "msgpack-only"],
)
def test_handshake(gateway: GatewayProcess, connect: Callable[..., RawClient], offered: list[str], chosen: str) -> None:
    """101 with the RFC accept key and the client's first supported subprotocol, whose serialization is then spoken."""
    client = connect(gateway)
    response = client.upgrade(offered)
    assert response.status == 101
    assert response.headers["upgrade"].lower() == "websocket"
    assert response.headers["connection"].lower() == "upgrade"
    assert response.headers["sec-websocket-protocol"] == chosen
    assert "sec-websocket-extensions" not in response.headers
    client.join()  # in msgpack over binary frames, or JSON over text frames


def test_handshake_rfc_key(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """The RFC 6455 §1.3 sample key gets the RFC's sample accept value."""
    client = connect(gateway)
    response = client.upgrade(key="dGhlIHNhbXBsZSBub25jZQ==")
    assert response.status == 101
    assert response.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_browser_style_headers(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """Header names and tokens are matched case-insensitively, and Connection may list other tokens (as Firefox sends)."""
    client = connect(gateway)
    headers = {"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade", "Origin": f"http://127.0.0.1:{gateway.port}"}
    response = client.upgrade(["wamp.2.json"], headers=headers)
    assert response.status == 101
    client.join()


def test_no_subprotocol_offered_means_json(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """A client offering no subprotocol gets 101 without the header and is served JSON."""
    client = connect(gateway)
    response = client.upgrade([])
    assert response.status == 101
    assert "sec-websocket-protocol" not in response.headers
    client.join()


@pytest.mark.parametrize(
    "headers",
    [{"-Upgrade": "", "-Connection": ""}, {"-Upgrade": ""}, {"Upgrade": "h2c"}, {"Connection": "keep-alive"}],
    ids=["plain-get", "no-upgrade", "other-upgrade", "no-connection-upgrade"],
)
def test_not_an_upgrade(gateway: GatewayProcess, connect: Callable[..., RawClient], headers: dict[str, str]) -> None:
    """GET /ws that is not a WebSocket upgrade gets 400 JSON websocket_required."""
    response = connect(gateway).upgrade(headers=headers)
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "websocket_required"
    assert_still_serves(gateway, connect)


@pytest.mark.parametrize("version", ["8", "14", "", None], ids=["8", "14", "empty", "missing"])
def test_wrong_version(gateway: GatewayProcess, connect: Callable[..., RawClient], version: str | None) -> None:
    """A version other than 13 gets 426 with Sec-WebSocket-Version: 13 (RFC 6455 §4.4)."""
    headers = {"-Sec-WebSocket-Version": ""} if version is None else {"Sec-WebSocket-Version": version}
    response = connect(gateway).upgrade(headers=headers)
    assert response.status == 426
    assert response.headers["sec-websocket-version"] == "13"
    assert response.json()["error"] == "unsupported_websocket_version"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "abc",
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        "é" * 22,
        "dGhlIHNhbXBsZSBub25jZQ==!!",
        "dGhl IHNhbXBsZSBub25jZQ==",
        None,
    ],
    ids=["empty", "short", "15-bytes", "17-bytes", "non-ascii", "trailing-junk", "inner-space", "missing"],
)
def test_bad_key(gateway: GatewayProcess, connect: Callable[..., RawClient], key: str | None) -> None:
    """A Sec-WebSocket-Key that is not 16 bytes of base64 gets 400 JSON invalid_websocket_key."""
    client = connect(gateway)
    if key is None:
        response = client.upgrade(headers={"-Sec-WebSocket-Key": ""})
    else:
        response = client.upgrade(headers={"Sec-WebSocket-Key": key})
    assert response.status == 400
    assert response.json()["error"] == "invalid_websocket_key"
    assert_still_serves(gateway, connect)


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://127.0.0.1", "http://127.0.0.1:1", "null"],
    ids=["other-site", "no-port", "other-port", "null"],
)
def test_disallowed_origin(gateway: GatewayProcess, connect: Callable[..., RawClient], origin: str) -> None:
    """A cross-origin browser gets 403 JSON origin_not_allowed before any WebSocket opens."""
    response = connect(gateway).upgrade(headers={"Origin": origin})
    assert response.status == 403
    assert response.json()["error"] == "origin_not_allowed"
    assert_still_serves(gateway, connect)


def test_same_origin_allowed(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """A page served from the gateway's own host and port may connect."""
    client = connect(gateway)
    assert client.upgrade(headers={"Origin": f"http://127.0.0.1:{gateway.port}"}).status == 101
    client.join()


def test_allowed_origins_flag(gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient]) -> None:
    """--allowed-origins https://app.example admits that origin, and only that one besides the gateway's own."""
    gateway = gateway_process("--allowed-origins", "https://app.example")
    client = connect(gateway)
    assert client.upgrade(headers={"Origin": "https://app.example"}).status == 101
    client.join()
    for origin in ("https://other.example", "http://app.example", "https://app.example:8443"):
        assert connect(gateway).upgrade(headers={"Origin": origin}).status == 403, origin
    assert_still_serves(gateway, connect)


def test_only_unsupported_subprotocols(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """Offering only unknown subprotocols gets 101 without one, then a close frame 1002 naming the supported ones."""
    client = connect(gateway)
    response = client.upgrade(["wamp.2.cbor", "mqtt"])
    assert response.status == 101
    assert "sec-websocket-protocol" not in response.headers
    code, reason = client.expect_close()
    assert code == 1002
    assert "wamp.2.json" in reason and "wamp.2.msgpack" in reason
    client.finish_close(1002)
    assert_still_serves(gateway, connect)


# Frames on an open connection ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["wamp.2.json", "wamp.2.msgpack"])
def test_wamp_exchange(gateway: GatewayProcess, connect: Callable[..., RawClient], protocol: str) -> None:
    """HELLO → WELCOME, SUBSCRIBE → SUBSCRIBED, and a POST /publish arrives as an EVENT frame."""
    client = connect(gateway)
    assert client.upgrade([protocol]).status == 101
    session_id = client.join()
    assert isinstance(session_id, int) and session_id > 0
    subscription = client.subscribe("chat.lobby")
    publish(gateway, "chat.lobby", {"text": "héllo", "n": 1})
    event = client.receive()
    assert event[0] == 36 and event[1] == subscription, event
    assert event[4][0]["name"] == "chat.lobby"
    assert event[4][0]["data"] == {"text": "héllo", "n": 1}


def test_fragmented_message(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """A WAMP message sent in fragments with a ping between them is understood, and the ping answered."""
    client = connect(gateway)
    assert client.upgrade().status == 101
    data = json.dumps(HELLO).encode()
    client.send_frame(OP_TEXT, data[:5], fin=False)
    client.send_frame(OP_PING, b"mid")
    client.send_frame(OP_CONTINUATION, data[5:])
    assert client.next_frame() == (OP_PONG, b"mid")
    assert client.receive()[0] == 2


def test_ping_gets_pong(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """A ping from the client is answered with a pong carrying the same payload, before and after HELLO."""
    client = connect(gateway)
    assert client.upgrade().status == 101
    client.send_frame(OP_PING, b"")
    assert client.next_frame() == (OP_PONG, b"")
    client.join()
    payload = os.urandom(125)
    client.send_frame(OP_PING, payload)
    assert client.next_frame() == (OP_PONG, payload)
    client.send_frame(OP_PONG, b"unsolicited pongs are ignored")
    client.subscribe("t")


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "after-hello"])
def test_client_close(gateway: GatewayProcess, connect: Callable[..., RawClient], joined: bool) -> None:
    """A client close frame gets its code echoed and the server closes the TCP connection."""
    client = connect(gateway)
    assert client.upgrade().status == 101
    if joined:
        client.join()
        client.subscribe("chat.lobby")
    client.send_frame(OP_CLOSE, close_payload(1001, "leaving"))
    assert client.expect_close() == (1001, "")
    client.expect_tcp_closed()
    wait_for(lambda: metrics(gateway)["telegraphy_connections"] == 0, STEP, message="the connection is still counted")
    assert_still_serves(gateway, connect)


def test_client_close_empty(gateway: GatewayProcess, connect: Callable[..., RawClient]) -> None:
    """An empty close frame gets an empty close frame back, then the TCP close."""
    client = connect(gateway)
    assert client.upgrade().status == 101
    client.send_frame(OP_CLOSE, b"")
    assert client.expect_close() == (None, "")
    client.expect_tcp_closed()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(OP_TEXT, json.dumps(HELLO).encode(), masked=False), 1002),
        (bytes((0xC1, 0x80)) + os.urandom(4), 1002),  # RSV1 without permessage-deflate
        (client_frame(0x3, b""), 1002),
        (client_frame(OP_CONTINUATION, b"x"), 1002),
        (client_frame(OP_PING, b"x" * 126), 1002),
        (client_frame(OP_CLOSE, b"\x03"), 1002),
        (client_frame(OP_CLOSE, close_payload(1005)), 1002),
        (client_frame(OP_TEXT, b'[1, "\xff"]'), 1007),
    ],
    ids=["unmasked", "rsv1", "reserved-opcode", "lone-continuation", "long-ping", "1-byte-close", "close-1005", "invalid-utf8"],
)
def test_protocol_error_closes(gateway: GatewayProcess, connect: Callable[..., RawClient], frame: bytes, code: int) -> None:
    """A frame breaking RFC 6455 gets a close frame with the matching code, then the server closes the TCP connection."""
    client = connect(gateway)
    assert client.upgrade().status == 101
    client.join()
    client.sock.sendall(frame)
    assert client.expect_close()[0] == code
    client.expect_tcp_closed()
    assert_still_serves(gateway, connect)


def test_message_over_max_message_size(gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient]) -> None:
    """With --max-message-size 1000 a message of 1000 bytes is fine and one of 1001 bytes gets close 1009."""
    gateway = gateway_process("--max-message-size", "1000")
    client = connect(gateway)
    assert client.upgrade().status == 101
    client.join()
    message: list[Any] = [32, 7, {"padding": ""}, "t.x"]  # padded in options: topics are bounded by --max-uri-length
    message[2]["padding"] = "x" * (1000 - len(json.dumps(message)))
    assert len(json.dumps(message)) == 1000
    client.send(message)
    assert client.receive()[:2] == [33, 7]
    message[2]["padding"] += "x"
    client.send(message)
    code, reason = client.expect_close()
    assert code == 1009
    assert "1000" in reason
    client.expect_tcp_closed()
    assert_still_serves(gateway, connect)


def test_message_over_max_size_in_fragments(gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient]) -> None:
    """Fragments that together pass --max-message-size get close 1009."""
    gateway = gateway_process("--max-message-size", "1000")
    client = connect(gateway)
    assert client.upgrade().status == 101
    client.send_frame(OP_TEXT, b"[" + b" " * 599, fin=False)
    client.send_frame(OP_CONTINUATION, b" " * 401, fin=False)
    assert client.expect_close()[0] == 1009
    client.expect_tcp_closed()
    assert_still_serves(gateway, connect)


# Keepalive and slow consumers -------------------------------------------------------


def test_ping_timeout(gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient]) -> None:
    """With --ping-interval 1 the server pings; a client that never answers gets close 1008 "ping timeout", one that answers stays."""
    gateway = gateway_process("--ping-interval", "1")
    silent = connect(gateway)
    assert silent.upgrade().status == 101
    answering = connect(gateway)
    assert answering.upgrade().status == 101
    answering.join()
    silent_pings = answering_pings = 0
    close: tuple[int, str] | None = None
    deadline = time.monotonic() + STEP
    # Serve both sockets until the silent one is closed: answer pings on one, never on the other.
    while close is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no ping timeout within {STEP} s ({silent_pings} pings seen)"
        readable, _, _ = select.select([silent.sock, answering.sock], [], [], remaining)
        if answering.sock in readable:
            received = answering.next_frame()
            assert received is not None and received[0] == OP_PING, received
            answering_pings += 1
            answering.send_frame(OP_PONG, received[1])
        if silent.sock in readable:
            received = silent.next_frame()
            assert received is not None, "TCP closed without a close frame"
            if received[0] == OP_PING:
                assert received[1] == b""
                silent_pings += 1
            else:
                assert received[0] == OP_CLOSE, received
                close = struct.unpack_from("!H", received[1])[0], received[1][2:].decode()
    assert close == (1008, "ping timeout")
    assert silent_pings >= 1, "the server never pinged before timing out"
    assert answering_pings >= 1
    silent.finish_close(1008)
    # The client that answered outlived the silent one (two ping intervals) and is still served.
    subscription = answering.subscribe("still.here")
    publish(gateway, "still.here", {"alive": True})
    assert_event(answering, subscription, {"alive": True})
    assert_still_serves(gateway, connect)


def test_slow_consumer_disconnected(gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient]) -> None:
    """A subscriber that stops reading gets close 1008 past --outgoing-buffer (after what was queued); a reading subscriber gets every event."""
    gateway = gateway_process("--outgoing-buffer", "65536", "--max-message-size", "65536", "--max-body-size", "65536")
    topic = "firehose"
    slow = connect(gateway, rcvbuf=4096)
    assert slow.upgrade().status == 101
    slow.join()
    slow.subscribe(topic)
    reader = connect(gateway, rcvbuf=1 << 20)
    assert reader.upgrade().status == 101
    reader.join()
    subscription = reader.subscribe(topic)
    assert metrics(gateway)["telegraphy_slow_consumers_total"] == 0
    padding = "x" * 32_000
    published = 0
    # Bounded: at most 400 events of 32 kB (12.8 MB), about three times what the
    # kernel buffers on loopback with Linux's default 4 MB send buffer ceiling.
    for published in range(1, 401):
        publish(gateway, topic, {"n": published, "padding": padding})
        assert_event(reader, subscription, {"n": published, "padding": padding})
        if published % 5 == 0 and metrics(gateway)["telegraphy_slow_consumers_total"] == 1:
            break
    else:
        raise AssertionError(f"the slow consumer was not dropped after {published} events")
    assert metrics(gateway)["telegraphy_slow_consumers_total"] == 1
    assert "slow consumer" in gateway.stderr()
    # Draining the slow client's connection ends with the documented close frame, after the events queued before it.
    assert slow.expect_close() == (1008, "slow consumer: outgoing buffer full")
    slow.finish_close(1008)
    wait_for(lambda: metrics(gateway)["telegraphy_connections"] == 1, STEP, message="the slow consumer is still counted")
    # The reader still gets what comes next.
    publish(gateway, topic, {"n": published + 1})
    assert_event(reader, subscription, {"n": published + 1})
    assert_still_serves(gateway, connect)


# Messages in the same read as a close frame ----------------------------------------------------


def ticket_join(client: RawClient, gateway: GatewayProcess, user: str) -> None:
    """HELLO with the ticket method, AUTHENTICATE with a connect token, expect WELCOME."""
    client.send([1, REALM, {"roles": {"publisher": {}, "subscriber": {}}, "authmethods": ["ticket"]}])
    assert client.receive()[:2] == [4, "ticket"]
    client.send([5, gateway.connect_token(user), {}])
    assert client.receive()[0] == 2


@pytest.mark.parametrize("path", ["/ws", "/sockjs/websocket"], ids=["ws", "sockjs-raw-websocket"])
def test_publish_then_close_in_one_write_is_delivered(
    gateway_process: Callable[..., GatewayProcess], connect: Callable[..., RawClient], path: str
) -> None:
    """A PUBLISH and a close frame sent in one TCP write: the event reaches subscribers, the publisher gets PUBLISHED then the close (RFC 6455 §5.5.1)."""
    gateway = gateway_process("--channels", json.dumps([{"topic": "t.", "match": "prefix", "publish": "authenticated"}]))
    subscriber = connect(gateway)
    assert subscriber.upgrade().status == 101
    subscriber.join()
    subscription = subscriber.subscribe("t.pc")
    publisher = connect(gateway)
    assert publisher.upgrade(path=path).status == 101
    ticket_join(publisher, gateway, "7")
    message = json.dumps([16, 1, {"acknowledge": True}, "t.pc", ["x"]]).encode()
    publisher.sock.sendall(client_frame(OP_TEXT, message) + client_frame(OP_CLOSE, close_payload(1000)))
    event = subscriber.receive()
    assert event[:2] == [36, subscription] and event[4] == ["x"], event
    assert publisher.receive()[:2] == [17, 1]
    assert publisher.expect_close() == (1000, "")
    publisher.expect_tcp_closed()
    assert_still_serves(gateway, connect)


def test_sockjs_websocket_answers_what_came_before_a_bad_frame_then_closes(connect: Callable[..., RawClient], gateway: GatewayProcess) -> None:
    """On SockJS's per-session WebSocket, a HELLO and a frame of a reserved opcode in one write: WELCOME comes, then close 1002, while the peer keeps sending (RFC 6455 §5.5.1, §7.1.1)."""
    client = connect(gateway)
    assert client.upgrade(path=f"/sockjs/000/{uuid.uuid4().hex}/websocket").status == 101
    assert client.next_frame() == (OP_TEXT, b"o")
    hello = json.dumps([json.dumps([1, REALM, {"roles": {"subscriber": {}}}])]).encode()
    client.sock.sendall(client_frame(OP_TEXT, hello) + client_frame(0x3, b""))
    for _ in range(50):  # still sending: the close frame must not be lost to a reset
        client.sock.sendall(client_frame(OP_TEXT, b'["[]"]'))
    kind, payload = client.next_frame()  # type: ignore[misc]
    assert kind == OP_TEXT and payload.startswith(b"a[") and json.loads(json.loads(payload[1:])[0])[0] == 2, payload
    assert client.expect_close()[0] == 1002


def test_one_message_over_the_outgoing_buffer_is_not_a_slow_consumer() -> None:
    """A single frame bigger than --outgoing-buffer reaches a client that reads; a client that then stops reading gets close 1008 (in-process gateway, real loopback sockets)."""
    from telegraphy.tornado_gateway.config import Config
    from telegraphy.tornado_gateway.gateway import Gateway
    from telegraphy.tornado_gateway.metrics import Metrics
    from telegraphy.tornado_gateway.websocket import SUBPROTOCOLS, WampWebSocketProtocol
    from telegraphy.websocket import frame

    limit = 64 * 1024

    async def read_until(client: socket.socket, received: bytearray, size: int) -> None:
        loop = asyncio.get_running_loop()
        while len(received) < size:
            chunk = await asyncio.wait_for(loop.sock_recv(client, 1 << 16), STEP)
            assert chunk, "the gateway closed the connection"
            received += chunk

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        gateway = Gateway(Config(secret="s" * 40, outgoing_buffer=limit, max_message_size=limit, max_body_size=limit, ping_interval=0), Metrics())
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        client.setblocking(False)
        accepted, _ = listener.accept()
        listener.close()
        # Small kernel buffers, so that what the client does not read stays in the gateway's buffer.
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        codec = SUBPROTOCOLS["wamp.2.json"]
        transport, protocol = await loop.connect_accepted_socket(lambda: WampWebSocketProtocol(gateway, codec, "test", b"", None), accepted)
        try:
            big = frame(OP_TEXT, b"x" * (3 * limit))
            protocol.write_frames([big])
            assert transport.get_write_buffer_size() > limit  # over the buffer, as one message
            assert not protocol.connection.closing and not transport.is_closing()
            assert gateway.metrics.slow_consumers == 0
            received = bytearray()
            await read_until(client, received, len(big))
            assert bytes(received[: len(big)]) == big
            # Now the client stops reading while small frames keep coming: that is a slow consumer.
            small = frame(OP_TEXT, b"y" * 1000)
            for _ in range(10 * limit // len(small)):
                protocol.write_frames([small])
                if protocol.connection.closing:
                    break
            assert protocol.connection.closing and gateway.metrics.slow_consumers == 1
            expected_close = frame(OP_CLOSE, struct.pack("!H", 1008) + b"slow consumer: outgoing buffer full")
            deadline = time.monotonic() + STEP
            while not received.endswith(expected_close):
                assert time.monotonic() < deadline, "no close frame 1008"
                chunk = await asyncio.wait_for(loop.sock_recv(client, 1 << 16), STEP)
                assert chunk, "the gateway closed the TCP connection without a close frame"
                received += chunk
        finally:
            transport.abort()
            client.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
