"""WAMP over WebSocket: Tornado does the opening handshake, a lean asyncio protocol the rest.

:class:`WebSocketUpgradeHandler` validates the upgrade request (RFC 6455
§4.2.1), the ``Origin`` and the WAMP subprotocol, answers ``101`` and hands the
socket to a :class:`WampWebSocketProtocol` on the same event loop. That
protocol feeds :class:`telegraphy.websocket.ServerConnection` (frames) and
:class:`telegraphy.wamp.ServerSession` (WAMP), and writes prepared frames.

Why not Tornado's ``WebSocketHandler``: an idle connection there costs about
19 KiB of Python objects (request, handler, HTTP connection, stream, a ping
task per connection); this path keeps only a socket transport and two small
objects, and writes each prepared event frame with one ``transport.write``.

A client IP opening connections faster than ``--connection-rate`` (burst
``--connection-burst``) gets ``429 {"error": "too_many_connections"}``.

Close codes (RFC 6455 §7.4.1): 1000 after GOODBYE, 1001 on gateway shutdown,
1002 after a protocol violation (WAMP ABORT ``wamp.error.protocol_violation``
first) or when no WAMP subprotocol was agreed, 1007 for invalid UTF-8, 1008
after an authentication failure, for a slow consumer or a missed ping, 1009
for a message over the size limit, 1011 after an internal error.

Slow consumers (:class:`OutgoingBuffer`, the rule every transport applies):
a connection is closed (1008) when its unsent bytes exceed
``--outgoing-buffer`` beyond the largest single frame written since its
buffer last drained; so one message bigger than the buffer (an event near
``--max-body-size``, say) reaches a client that reads, while a client that
stops reading is cut after at most one buffer's worth.

Messages received in the same read as the peer's close frame (or before a
framing violation) are handled before the connection closes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegraphy.tornado_gateway.http import JsonHandler
from telegraphy.wamp import JSON, MSGPACK, WireCodec
from telegraphy.websocket import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_SLOW_CONSUMER,
    OP_BINARY,
    OP_TEXT,
    PING,
    ClosedByPeer,
    ClosedByProtocol,
    ServerConnection,
    accept_key,
    frame,
)

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["SUBPROTOCOLS", "OutgoingBuffer", "WampWebSocketProtocol", "WebSocketUpgradeHandler", "linger"]

logger = logging.getLogger("telegraphy.gateway")

#: Seconds to wait for the peer's close frame after sending ours.
CLOSE_TIMEOUT = 5.0


class OutgoingBuffer:
    """The slow-consumer rule of one connection, shared by every transport (WebSocket, SockJS).

    A connection is a slow consumer when its unsent bytes exceed ``limit``
    (``--outgoing-buffer``) beyond the largest single frame written since
    they first passed ``limit``: one message bigger than the buffer reaches
    a client that reads, a client that stops reading is cut after at most
    one buffer's worth. ``paused`` says whether the unsent bytes passed
    ``limit`` (asyncio's ``pause_writing``); only then does a write count:
    the transport writes, and if ``paused``, calls :meth:`wrote` with the
    write's largest frame and asks :meth:`over` with its unsent bytes (then
    closes with :data:`~telegraphy.websocket.CLOSE_SLOW_CONSUMER` after what
    is already queued). :meth:`drained` starts afresh when asyncio says the
    buffer went back under (``resume_writing``). Frames written before the
    limit was passed need no counting, since together they fit under it;
    so the fan-out path, a write per subscriber, pays one attribute test.
    """

    __slots__ = ("largest", "limit", "paused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.largest = 0
        self.paused = False

    def wrote(self, size: int) -> None:
        """Count one frame of ``size`` bytes written."""
        if size > self.largest:
            self.largest = size

    def drained(self) -> None:
        """The unsent bytes went back under the limit: start counting frames afresh."""
        self.largest = 0
        self.paused = False

    def over(self, unsent: int) -> bool:
        """Whether ``unsent`` bytes make the connection a slow consumer."""
        return unsent - self.largest > self.limit


def linger(transport: asyncio.Transport, finish: Callable[[bool], None]) -> asyncio.TimerHandle | None:
    """Half-close a connection after our close frame for a protocol error; return the timer that ends it.

    RFC 6455 §7.1.1: the close frame must reach a peer that is still
    sending. Closing at once, with its frames unread, makes the kernel reset
    the connection and drop the close frame; so the caller stops reading
    what still comes (it drops it), the connection ends when the peer closes
    its side, or ``finish(True)`` aborts it after :data:`CLOSE_TIMEOUT`.
    Returns ``None`` when the transport cannot half-close: close it now.
    """
    if not transport.can_write_eof():
        return None
    transport.write_eof()
    return asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, finish, True)


def _framing(opcode: int) -> Any:
    def framed(payload: bytes) -> bytes:
        return frame(opcode, payload)

    return framed


#: Wire codecs by WebSocket subprotocol: JSON in text frames, msgpack in binary frames.
SUBPROTOCOLS: dict[str, WireCodec] = {
    JSON.subprotocol: WireCodec(JSON, _framing(OP_TEXT)),
    MSGPACK.subprotocol: WireCodec(MSGPACK, _framing(OP_BINARY)),
}


class WebSocketUpgradeHandler(JsonHandler):
    """``GET /ws``: the opening handshake; errors are JSON like the rest of the HTTP API."""

    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _refuse(self, status: int, error: str, detail: str, **headers: str) -> None:
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name.replace("_", "-"), value)
        self.finish({"error": error, "detail": detail})

    def origin_allowed(self, origin: str) -> bool:
        """Allow same-origin pages, clients sending no Origin, and the configured origins."""
        allowed = self.gateway.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        return bool(origin) and urlsplit(origin).netloc.lower() == self.request.host.lower()

    def get(self, *args: Any) -> None:
        headers = self.request.headers
        if not self.gateway.admit(str(self.request.remote_ip)):
            # --connection-rate: checked first, so a flood costs no handshake work.
            self._refuse(429, "too_many_connections", "too many new connections from this address: retry later", Retry_After="1")
            return
        # RFC 6455 §4.2.1: the handshake's required fields.
        if headers.get("Upgrade", "").lower() != "websocket":
            self._refuse(400, "websocket_required", "this endpoint speaks WAMP over WebSocket: send 'Upgrade: websocket'")
            return
        if "upgrade" not in (token.strip().lower() for token in headers.get("Connection", "").split(",")):
            self._refuse(400, "websocket_required", "the 'Connection' header must include 'Upgrade'")
            return
        if headers.get("Sec-WebSocket-Version") != "13":
            self._refuse(426, "unsupported_websocket_version", "only WebSocket version 13 is supported", Sec_WebSocket_Version="13")
            return
        key = headers.get("Sec-WebSocket-Key", "")
        try:
            # validate=True: a2b_base64 alone skips characters outside the alphabet.
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:  # binascii.Error, or a non-ASCII key
            valid_key = False
        if not valid_key:
            self._refuse(400, "invalid_websocket_key", "'Sec-WebSocket-Key' must be 16 bytes in base64")
            return
        origin = headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            self._refuse(403, "origin_not_allowed", f"origin {origin!r} is not allowed (see --allowed-origins)")
            return
        offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        chosen = next((p for p in offered if p in SUBPROTOCOLS), None)
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
        ]
        if chosen is not None:
            lines.append(f"Sec-WebSocket-Protocol: {chosen}")
        response = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        peer = str(self.request.remote_ip)
        stream = self.detach()
        # Take the connection out of Tornado: keep a duplicate of the socket's
        # descriptor, let Tornado close its own, and serve the duplicate
        # from an asyncio protocol on the same loop.
        fd = os.dup(stream.socket.fileno())
        stream.close()
        sock = socket.socket(fileno=fd)
        gateway = self.gateway
        codec = SUBPROTOCOLS[chosen or JSON.subprotocol]
        refuse = None if chosen is not None or not offered else "no supported subprotocol: use wamp.2.json or wamp.2.msgpack"

        def factory() -> WampWebSocketProtocol:
            return WampWebSocketProtocol(gateway, codec, peer, response, refuse)

        task = asyncio.ensure_future(asyncio.get_running_loop().connect_accepted_socket(factory, sock))
        task.add_done_callback(_handover_done)


def _handover_done(task: asyncio.Future[Any]) -> None:
    """Log a failed handover of an upgraded socket to asyncio (the peer is gone with it)."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("could not serve an upgraded WebSocket connection: %r", task.exception())


class WampWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection carrying one WAMP session at a time.

    The router's sessions reach their connection through ``session.transport``,
    which is this object: :meth:`write_frames` and :meth:`close_connection`.
    """

    __slots__ = (
        "_close_timer",
        "_draining",
        "_outgoing",
        "_response",
        "_transport",
        "codec",
        "connection",
        "gateway",
        "last_seen",
        "peer",
        "refuse",
        "session",
    )

    def __init__(self, gateway: Gateway, codec: WireCodec, peer: str, response: bytes, refuse: str | None) -> None:
        self.gateway = gateway
        self.codec = codec
        self.peer = peer
        self.refuse = refuse
        self._response = response
        self.connection = ServerConnection(gateway.config.max_message_size)
        self.session: Any = None
        self._transport: asyncio.Transport | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.last_seen = time.monotonic()
        self._outgoing = OutgoingBuffer(gateway.config.outgoing_buffer)
        #: After a protocol error: what the peer still sends is read and dropped.
        self._draining = False

    # asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # asyncio calls pause_writing() past this many unsent bytes: from
        # then on the backlog is checked on every write (_check_backlog).
        transport.set_write_buffer_limits(high=self.gateway.config.outgoing_buffer)
        transport.write(self._response)
        self._response = b""
        self.gateway.connection_opened(self)
        if self.refuse is not None:
            self.close_connection(CLOSE_PROTOCOL_ERROR, self.refuse)
            return
        self.session = self.gateway.router.attach(self.codec, transport=self, peer=self.peer)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self._draining:
            return
        try:
            messages = self.connection.receive_data(data)
        except (ClosedByPeer, ClosedByProtocol) as exc:
            if isinstance(exc, ClosedByProtocol):
                logger.info("websocket protocol error from %s: %s", self.peer, exc)
            # What came complete before the close still counts (RFC 6455 §5.5.1).
            session = self.session
            if exc.messages and session is not None:
                now = time.time()
                for message in exc.messages:
                    session.receive(message.data, now)
                    if session.close_request is not None:
                        break
                self._write_now(session.data_to_send())
            self._write_control()
            if isinstance(exc, ClosedByProtocol) and self._transport is not None:
                self._close_timer = linger(self._transport, self._finish)
                if self._close_timer is not None:
                    self._draining = True
                    return
            self._finish()
            return
        self._write_control()  # pongs
        session = self.session
        if session is None:
            return
        now = time.time()
        for message in messages:
            session.receive(message.data, now)
            if session.close_request is not None:
                self.write_frames(session.data_to_send())
                self.close_connection(*session.close_request)
                return

    def pause_writing(self) -> None:
        # Called from within transport.write(): the writer counts its frames and judges next.
        self._outgoing.paused = True

    def resume_writing(self) -> None:
        self._outgoing.drained()

    def _check_backlog(self) -> None:
        """Close a slow consumer (see :class:`OutgoingBuffer`)."""
        transport = self._transport
        if transport is None or self.connection.closing or not self._outgoing.over(transport.get_write_buffer_size()):
            return
        logger.warning("closing slow consumer %s: over %d unsent bytes", self.peer, self._outgoing.limit)
        self.gateway.metrics.slow_consumers += 1
        # Close code 1008 after what is queued; a peer that reads nothing
        # never gets it, and is dropped after CLOSE_TIMEOUT.
        self.close_connection(*CLOSE_SLOW_CONSUMER)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._transport = None
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost()
        self.gateway.connection_closed(self)

    # Output ------------------------------------------------------------------

    def write_frames(self, frames: list[bytes]) -> None:
        """Write prepared frames in one go (the fan-out path)."""
        transport = self._transport
        if frames and transport is not None and not self.connection.closing:
            # _write_now, inlined: this runs once per subscriber per flush.
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            if self._outgoing.paused:
                self._outgoing.wrote(max(map(len, frames)))
                self._check_backlog()

    def _write_now(self, frames: list[bytes]) -> None:
        transport = self._transport
        if not frames or transport is None:
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        if self._outgoing.paused:
            self._outgoing.wrote(max(map(len, frames)))
            self._check_backlog()

    def ping(self) -> None:
        """Send a ping frame (the gateway's ping loop calls this)."""
        transport = self._transport
        if transport is not None and not self.connection.closing:
            transport.write(PING)

    def close_connection(self, code: int, reason: str) -> None:
        """Send a close frame, then close the socket when the peer answers or after a timeout."""
        if self._transport is None or self.connection.closing:
            return
        self.connection.send_close(code, reason)
        self._write_control()
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._finish, True)

    def _write_control(self) -> None:
        data = self.connection.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _finish(self, abort: bool = False) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort() if abort else transport.close()

