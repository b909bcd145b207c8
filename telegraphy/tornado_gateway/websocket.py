"""WAMP over WebSocket: a thin Tornado adapter around :class:`~telegraphy.wamp.ServerSession`.

The handler feeds received messages to the session and writes what the router
collected for it. Frames are prepared by the core's wire codecs (WebSocket
header + payload, encoded once per publish), and written straight to the
connection's stream: one write per connection per event-loop iteration, and a
direct ``socket.send`` when nothing is queued before it.

Close codes (RFC 6455 §7.4.1): 1000 after GOODBYE, 1001 on gateway shutdown,
1002 after a protocol violation (with ABORT ``wamp.error.protocol_violation``),
1008 after an authentication failure or for a slow consumer, 1009 for a
message over the size limit (Tornado's own check).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tornado.iostream
import tornado.websocket

from telegraphy.wamp import JSON, MSGPACK, WireCodec

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["SUBPROTOCOLS", "WampWebSocketHandler", "websocket_frame"]

logger = logging.getLogger("telegraphy.gateway")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


def websocket_frame(opcode: int) -> Callable[[bytes], bytes]:
    """Return a function framing a payload as one unmasked, final server frame (RFC 6455 §5.2)."""
    first = 0x80 | opcode

    def frame(payload: bytes) -> bytes:
        length = len(payload)
        if length < 126:
            return bytes((first, length)) + payload
        if length < 65536:
            return struct.pack("!BBH", first, 126, length) + payload
        return struct.pack("!BBQ", first, 127, length) + payload

    return frame


#: Wire codecs by WebSocket subprotocol: JSON in text frames, msgpack in binary frames.
SUBPROTOCOLS: dict[str, WireCodec] = {
    JSON.subprotocol: WireCodec(JSON, websocket_frame(0x1)),
    MSGPACK.subprotocol: WireCodec(MSGPACK, websocket_frame(0x2)),
}


def _consume(future: Any) -> None:
    # A write to a stream that closes meanwhile fails; the close itself is
    # handled in on_close, so the error only needs retrieving.
    future.exception()


class WampWebSocketHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection carrying one WAMP session at a time."""

    gateway: Gateway

    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.session: Any = None
        self._wamp_stream: tornado.iostream.IOStream | None = None
        self._wamp_closing = False

    # Handshake ---------------------------------------------------------------

    def check_origin(self, origin: str) -> bool:
        """Allow same-origin pages and the configured origins; Tornado refuses the rest with 403."""
        allowed = self.gateway.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        parsed = urlsplit(origin)
        return bool(parsed.netloc) and parsed.netloc.lower() == self.request.host.lower()

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Pick ``wamp.2.json`` or ``wamp.2.msgpack`` in the client's order (WAMP §10.1)."""
        for name in subprotocols:
            if name in SUBPROTOCOLS:
                return name
        return None

    def get_compression_options(self) -> None:
        # Frames are prepared once per publish; per-connection compression
        # would defeat that.
        return None

    # Connection --------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        offered = self.request.headers.get("Sec-WebSocket-Protocol")
        name = self.selected_subprotocol
        if name is None:
            if offered:
                # The client asked only for subprotocols we don't speak.
                self.close(1002, "no supported subprotocol: use wamp.2.json or wamp.2.msgpack")
                return
            name = JSON.subprotocol
        assert self.ws_connection is not None
        stream: tornado.iostream.IOStream = self.ws_connection.stream  # type: ignore[attr-defined]
        # The stream refuses writes past this many unsent bytes; write_frames
        # then disconnects the slow consumer instead of buffering without bound.
        stream.max_write_buffer_size = self.gateway.config.outgoing_buffer
        self._wamp_stream = stream
        peer = f"{self.request.remote_ip}"
        self.session = self.gateway.router.attach(SUBPROTOCOLS[name], transport=self, peer=peer)
        self.gateway.connection_opened(self)

    def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        session.receive(message, time.time())
        if session.close_request is not None:
            self.write_frames(session.data_to_send())
            self.close_connection(*session.close_request)

    def on_close(self) -> None:
        session, self.session = self.session, None
        self._wamp_stream = None
        if session is not None:
            session.connection_lost()
            self.gateway.connection_closed(self)

    def close_connection(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code and a short reason (at most 123 bytes)."""
        if not self._wamp_closing:
            self._wamp_closing = True
            self.close(code, reason[:123])

    # Output ------------------------------------------------------------------

    def write_frames(self, frames: list[bytes]) -> None:
        """Write prepared frames in one go; disconnect a consumer that stopped reading."""
        stream = self._wamp_stream
        if not frames or stream is None or stream.closed():
            return
        data: bytes | memoryview = frames[0] if len(frames) == 1 else b"".join(frames)
        if not stream.writing():
            # Nothing queued ahead of us: try the socket right away and leave
            # only the remainder, if any, to the stream's buffer.
            try:
                sent = stream.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the stream notices and closes; on_close cleans up
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        try:
            stream.write(data).add_done_callback(_consume)
        except tornado.iostream.StreamBufferFullError:
            logger.warning(
                "disconnecting slow consumer %s: over %d unsent bytes", self.request.remote_ip, stream.max_write_buffer_size
            )
            self.gateway.metrics.slow_consumers += 1
            stream.close()
        except tornado.iostream.StreamClosedError:
            return
