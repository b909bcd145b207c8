"""A minimal WAMP-over-WebSocket subscriber for load generation (benchmarks only).

It speaks just enough RFC 6455 and WAMP to join, subscribe and count EVENT
frames, parsing frame headers by hand in one epoll loop so that one Python
process can receive hundreds of thousands of frames per second. Not a client
library.

Latency samples use the kernel's receive timestamp of the data (Linux
``SO_TIMESTAMP``), so they measure when an event reached the subscriber's
socket rather than when this Python process got round to reading it; the
user-space receive time is reported beside it.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import time

SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)  # Linux value
_TIMEVAL = struct.Struct("@ll")


def mask_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Return a masked client frame (RFC 6455 §5.3)."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


def _read_frame(sock: socket.socket, buf: bytearray) -> bytes:
    """Blocking read of one frame's payload (used during set-up only)."""
    while True:
        parsed = _frame_bounds(buf, 0)
        if parsed is not None:
            head, end = parsed
            payload = bytes(buf[head:end])
            del buf[:end]
            return payload
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed during set-up")
        buf += chunk


def _frame_bounds(buf: bytearray, pos: int) -> tuple[int, int] | None:
    """Return (payload start, frame end) of the frame at ``pos``, or None if incomplete."""
    size = len(buf)
    if size - pos < 2:
        return None
    length = buf[pos + 1] & 0x7F
    head = pos + 2
    if length == 126:
        if size - pos < 4:
            return None
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        head = pos + 4
    elif length == 127:
        if size - pos < 10:
            return None
        length = struct.unpack_from("!Q", buf, pos + 2)[0]
        head = pos + 10
    end = head + length
    return (head, end) if end <= size else None


class Subscriber:
    """One subscribed connection and its counters.

    ``kind`` is how events arrive: ``websocket`` (one WAMP message per
    frame), ``sockjs-websocket`` (SockJS ``a[...]`` frames over a WebSocket)
    or ``sockjs-xhr-streaming`` (SockJS frames, one per line, in a chunked
    HTTP response).
    """

    __slots__ = ("buffer", "chunked", "events", "kind", "sample", "sock")

    def __init__(self, sock: socket.socket, buffer: bytearray, sample: bool, kind: str = "websocket") -> None:
        self.sock = sock
        self.buffer = buffer
        self.sample = sample
        self.kind = kind
        self.chunked = bytearray()
        self.events = 0


#: An EVENT inside a SockJS ``a[...]`` frame: each WAMP message is a JSON string literal.
_SOCKJS_EVENT = b'"[36,'


def _sockjs_events(frame: bytes) -> list[list]:
    """Decode the WAMP EVENTs of one SockJS ``a[...]`` frame."""
    return [m for m in (json.loads(t) for t in json.loads(frame[1:])) if m[0] == 36]


def _http_upgrade(sock: socket.socket, host: str, port: int, path: str, protocol: str | None) -> bytearray:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed during handshake")
        buf += chunk
    end = buf.find(b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(bytes(buf[:end]).decode(errors="replace"))
    del buf[: end + 4]
    return buf


def _sockjs_ws_send(sock: socket.socket, message: list) -> None:
    sock.sendall(mask_frame(json.dumps([json.dumps(message)]).encode()))


def _sockjs_ws_read(sock: socket.socket, buf: bytearray) -> list:
    """Read SockJS frames until one carries a WAMP message; return it."""
    while True:
        frame = _read_frame(sock, buf)
        if frame.startswith(b"a"):
            return json.loads(json.loads(frame[1:])[0])


def connect_sockjs_websocket(host: str, port: int, topic: str, sample: bool) -> Subscriber:
    """Join and subscribe over SockJS's WebSocket transport (``/sockjs/<server>/<session>/websocket``)."""
    sock = socket.create_connection((host, port), timeout=30)
    buf = _http_upgrade(sock, host, port, f"/sockjs/0/{os.urandom(8).hex()}/websocket", None)
    if _read_frame(sock, buf) != b"o":
        raise ConnectionError("no SockJS open frame")
    _sockjs_ws_send(sock, [1, "telegraphy", {"roles": {"subscriber": {}}}])
    if _sockjs_ws_read(sock, buf)[0] != 2:
        raise ConnectionError("session refused")
    _sockjs_ws_send(sock, [32, 1, {}, topic])
    if _sockjs_ws_read(sock, buf)[0] != 33:
        raise ConnectionError("subscribe refused")
    if sample:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    sock.setblocking(False)
    return Subscriber(sock, buf, sample, "sockjs-websocket")


def _xhr_send(host: str, port: int, path: str, message: list) -> None:
    body = json.dumps([json.dumps(message)]).encode()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            f"POST {path}/xhr_send HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        answer = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 204"):
            raise ConnectionError(f"xhr_send refused: {answer[:200]!r}")


def _dechunk(sub: Subscriber, data: bytes) -> bytes:
    """Remove HTTP/1.1 chunked framing from ``data``, keeping partial chunks for later."""
    raw = sub.chunked
    raw += data
    out = bytearray()
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            break
        size = int(bytes(raw[:line_end]).split(b";")[0] or b"0", 16)
        if len(raw) < line_end + 2 + size + 2:
            break
        out += raw[line_end + 2 : line_end + 2 + size]
        del raw[: line_end + 2 + size + 2]
    return bytes(out)


def _open_session(host: str, port: int, path: str) -> None:
    """Create the SockJS session at ``path`` with one xhr poll to ``port`` (which then holds it)."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"POST {path}/xhr HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    if not (answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\no\n")):
        raise ConnectionError(f"session not opened: {answer[:200]!r}")


def connect_sockjs_xhr_streaming(host: str, port: int, topic: str, sample: bool, session_port: int | None = None) -> Subscriber:
    """Join and subscribe over SockJS's xhr-streaming transport (frames in a chunked POST response).

    With ``session_port``, the session is created on that gateway node first:
    the stream and the sends on ``port`` are then forwarded to it over the bus.
    """
    path = f"/sockjs/0/{os.urandom(8).hex()}"
    if session_port is not None:
        _open_session(host, session_port, path)
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(f"POST {path}/xhr_streaming HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\r\n".encode())
    head = bytearray()
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the streaming response")
        head += chunk
    end = head.find(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(bytes(head[:end]).decode(errors="replace"))
    sub = Subscriber(sock, bytearray(), sample, "sockjs-xhr-streaming")
    lines = bytearray(_dechunk(sub, bytes(head[end + 4 :])))

    def next_line() -> bytes:
        while b"\n" not in lines:
            lines.extend(_dechunk(sub, sock.recv(65536)))
        at = lines.find(b"\n")
        line = bytes(lines[:at])
        del lines[: at + 1]
        return line

    def next_message() -> list:
        while True:
            line = next_line()
            if line.startswith(b"a"):
                return json.loads(json.loads(line[1:])[0])

    while next_line() != (b"o" if session_port is None else b"h" * 2048):
        pass  # the h prelude, then the open frame (sent to the session's first poll if it was elsewhere)
    _xhr_send(host, port, path, [1, "telegraphy", {"roles": {"subscriber": {}}}])
    if next_message()[0] != 2:
        raise ConnectionError("session refused")
    _xhr_send(host, port, path, [32, 1, {}, topic])
    if next_message()[0] != 33:
        raise ConnectionError("subscribe refused")
    sub.buffer = lines
    if sample:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    sock.setblocking(False)
    return sub


CONNECT = {
    "websocket": lambda host, port, topic, sample: connect(host, port, topic, sample),
    "sockjs-websocket": connect_sockjs_websocket,
    "sockjs-xhr-streaming": connect_sockjs_xhr_streaming,
}


def connect(
    host: str, port: int, topic: str, sample: bool, options: dict | None = None, ticket: str | None = None
) -> Subscriber:
    """Open a WebSocket, join the default realm and subscribe to ``topic``.

    ``options`` go in the SUBSCRIBE (``filter``, ``exclude``, ``match``);
    with a ``ticket`` (a connect token) the session joins as its user,
    otherwise anonymously.
    """
    sock = socket.create_connection((host, port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
        ).encode()
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed during handshake")
        buf += chunk
    end = buf.find(b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(bytes(buf[:end]).decode(errors="replace"))
    del buf[: end + 4]
    details: dict = {"roles": {"subscriber": {}}}
    if ticket is not None:
        details["authmethods"] = ["ticket"]
    sock.sendall(mask_frame(json.dumps([1, "telegraphy", details]).encode()))
    welcome = json.loads(_read_frame(sock, buf))
    if welcome[0] == 4 and ticket is not None:  # CHALLENGE: answer with the ticket
        sock.sendall(mask_frame(json.dumps([5, ticket, {}]).encode()))
        welcome = json.loads(_read_frame(sock, buf))
    if welcome[0] != 2:
        raise ConnectionError(f"session refused: {welcome}")
    sock.sendall(mask_frame(json.dumps([32, 1, options or {}, topic]).encode()))
    subscribed = json.loads(_read_frame(sock, buf))
    if subscribed[0] != 33:
        raise ConnectionError(f"subscribe refused: {subscribed}")
    if sample:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    sock.setblocking(False)
    return Subscriber(sock, buf, sample)


class Receiver:
    """Many subscribers in one epoll loop.

    ``latencies`` collects (kernel_latency, user_latency) in seconds for EVENTs
    on sampled connections, computed against ``data.t`` of the event.
    """

    def __init__(self, subscribers: list[Subscriber]) -> None:
        self.subscribers = subscribers
        self.by_fd = {s.sock.fileno(): s for s in subscribers}
        self.epoll = select.epoll()
        for fd in self.by_fd:
            self.epoll.register(fd, select.EPOLLIN)
        self.latencies: list[tuple[float, float]] = []

    def total(self) -> int:
        return sum(s.events for s in self.subscribers)

    def run(self, expected: int, deadline: float) -> None:
        """Read until every subscriber has ``expected`` events or the deadline passes."""
        missing = {s for s in self.subscribers if s.events < expected}
        while missing and time.monotonic() < deadline:
            for fd, _ in self.epoll.poll(0.1):
                sub = self.by_fd[fd]
                self._read(sub)
                if sub.events >= expected:
                    missing.discard(sub)

    def _read(self, sub: Subscriber) -> None:
        kernel_time = 0.0
        try:
            if sub.sample:
                data, ancillary, _, _ = sub.sock.recvmsg(262144, socket.CMSG_SPACE(_TIMEVAL.size))
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP:
                        seconds, micros = _TIMEVAL.unpack(value[: _TIMEVAL.size])
                        kernel_time = seconds + micros / 1e6
            else:
                data = sub.sock.recv(262144)
        except BlockingIOError:
            return
        if not data:
            self.epoll.unregister(sub.sock.fileno())
            return
        user_time = time.time() if sub.sample else 0.0
        stamp = kernel_time or user_time
        buf = sub.buffer
        if sub.kind == "sockjs-xhr-streaming":
            buf += _dechunk(sub, data)
            end = buf.rfind(b"\n")
            if end < 0:
                return
            lines = bytes(buf[:end])
            del buf[: end + 1]
            if sub.sample:
                for line in lines.split(b"\n"):
                    if line.startswith(b"a"):
                        self._sample(_sockjs_events(line), stamp, user_time)
            sub.events += lines.count(_SOCKJS_EVENT)
            return
        buf += data
        pos = 0
        count = 0
        while True:
            bounds = _frame_bounds(buf, pos)
            if bounds is None:
                break
            head, end = bounds
            if sub.kind == "websocket":
                if sub.sample:
                    self._sample([json.loads(bytes(buf[head:end]))], stamp, user_time)
                count += 1
            else:
                frame = bytes(buf[head:end])
                if sub.sample and frame.startswith(b"a"):
                    self._sample(_sockjs_events(frame), stamp, user_time)
                count += frame.count(_SOCKJS_EVENT)
            pos = end
        if pos:
            del buf[:pos]
        sub.events += count

    def _sample(self, events: list[list], stamp: float, user_time: float) -> None:
        for event in events:
            sent = event[4][0]["data"]["t"]
            self.latencies.append((stamp - sent, user_time - sent))

    def close(self) -> None:
        for sub in self.subscribers:
            sub.sock.close()
        self.epoll.close()
