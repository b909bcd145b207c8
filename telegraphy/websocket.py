"""The server side of the WebSocket protocol (RFC 6455), sans-I/O.

The gateway does the opening handshake in Tornado and then hands the socket to
a lean asyncio protocol built on :class:`ServerConnection`: bytes in through
:meth:`ServerConnection.receive_data`, complete messages out as return values,
bytes to send from :meth:`ServerConnection.data_to_send`. It never imports
asyncio or Tornado, so it is tested without sockets.

What it checks (RFC 6455 §5): client frames are masked, reserved bits are
zero (no extension is negotiated), control frames are final and at most 125
bytes, continuation frames follow a started message, text messages are UTF-8
(§8.1, close code 1007), messages stay under the size limit (close code 1009),
close frames carry a valid code (§7.4). Any violation is answered with a close
frame and reported as :class:`ClosedByProtocol`.

Messages that arrived complete before a close frame (or before a violation)
in the same read are not lost: the exception carries them in ``messages``,
and the caller handles them before closing (RFC 6455 §5.5.1: a close frame
ends the data the peer sends, it does not take back what came before).

Limits: no extensions (permessage-deflate is never negotiated, so frames can be
prepared once and written to every subscriber unchanged).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import struct
from dataclasses import dataclass

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_SLOW_CONSUMER",
    "PING",
    "ClosedByPeer",
    "ClosedByProtocol",
    "Message",
    "ServerConnection",
    "accept_key",
    "close_frame",
    "frame",
]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
#: The close a client that stops reading gets, on every transport (a WebSocket
#: close frame, or SockJS's ``c[1008,"slow consumer: outgoing buffer full"]``).
CLOSE_SLOW_CONSUMER = (CLOSE_POLICY, "slow consumer: outgoing buffer full")

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 6455 §7.4.1-2: codes a peer may send in a close frame.
_VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def accept_key(key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def frame(opcode: int, payload: bytes) -> bytes:
    """Return one final, unmasked server frame (RFC 6455 §5.2)."""
    first = 0x80 | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """Return a close frame; the reason is cut to fit the 125-byte control frame limit."""
    encoded = reason.encode("utf-8")[:123]
    # Do not cut a multi-byte character in half.
    encoded = encoded.decode("utf-8", "ignore").encode("utf-8")
    return frame(OP_CLOSE, struct.pack("!H", code) + encoded)


#: A ping frame with an empty payload, the same bytes for every connection.
PING = frame(OP_PING, b"")


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``str`` for text frames, ``bytes`` for binary."""

    data: str | bytes


class ClosedByPeer(Exception):
    """The peer sent a close frame; the reply is queued. ``code`` is the peer's.

    ``messages`` are the complete messages received before the close frame
    in the same :meth:`ServerConnection.receive_data` call: handle them.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by peer: {code} {reason}".strip())
        self.code = code
        self.reason = reason
        self.messages: list[Message] = []


class ClosedByProtocol(Exception):
    """The peer broke the protocol; a close frame with ``code`` is queued.

    ``messages`` are the complete messages received before the violation in
    the same :meth:`ServerConnection.receive_data` call: handle them.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason
        self.messages: list[Message] = []


def _unmask(payload: bytes | bytearray, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(length, "little")


class ServerConnection:
    """One WebSocket connection after the handshake, server side.

    Args:
        max_message_size: the largest message accepted, in bytes; larger ones
            close the connection with 1009.

    Call :meth:`receive_data` with whatever the socket gave; it returns the
    complete messages, answers pings by itself, and raises
    :class:`ClosedByPeer` or :class:`ClosedByProtocol` when the connection
    ends. After either, handle the exception's ``messages`` (those that came
    before the end), write :meth:`data_to_send` and close the socket.
    """

    __slots__ = ("_buffer", "_decoder", "_fragments", "_fragments_size", "_opcode", "_out", "closing", "max_message_size")

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._opcode: int | None = None
        #: Checks a fragmented text message's UTF-8 as its fragments arrive.
        self._decoder: codecs.IncrementalDecoder | None = None
        self._out: list[bytes] = []
        #: True once a close frame was sent; nothing but the peer's close is expected then.
        self.closing = False

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued by the protocol itself (pongs, close frames)."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2)."""
        if not self.closing:
            self.closing = True
            self._out.append(close_frame(code, reason))

    def _fail(self, code: int, reason: str) -> ClosedByProtocol:
        self.send_close(code, reason)
        return ClosedByProtocol(code, reason)

    def receive_data(self, data: bytes) -> list[Message]:
        """Parse received bytes; return the complete messages in order."""
        buf = self._buffer
        buf += data
        messages: list[Message] = []
        pos = 0
        size = len(buf)
        try:
            while size - pos >= 2:
                first = buf[pos]
                second = buf[pos + 1]
                length = second & 0x7F
                head = pos + 2
                if length == 126:
                    if size - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    head = pos + 4
                elif length == 127:
                    if size - pos < 10:
                        break
                    length = struct.unpack_from("!Q", buf, pos + 2)[0]
                    head = pos + 10
                if not second & 0x80:
                    raise self._fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
                if first & 0x70:
                    raise self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
                if length > self.max_message_size:
                    raise self._fail(CLOSE_MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes")
                end = head + 4 + length
                if end > size:
                    break
                payload = _unmask(buf[head + 4 : end], bytes(buf[head : head + 4]))
                pos = end
                message = self._frame(first & 0x80, first & 0x0F, payload)
                if message is not None:
                    messages.append(message)
        except (ClosedByPeer, ClosedByProtocol) as exc:
            exc.messages = messages
            raise
        finally:
            if pos:
                del buf[:pos]
        return messages

    def _frame(self, fin: int, opcode: int, payload: bytes) -> Message | None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                raise self._fail(CLOSE_PROTOCOL_ERROR, "control frames must be final and at most 125 bytes")
            if opcode == OP_PING:
                if not self.closing:
                    self._out.append(frame(OP_PONG, payload))
                return None
            if opcode == OP_PONG:
                return None
            if opcode == OP_CLOSE:
                raise self._close(payload)
            raise self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if self.closing:
            return None  # RFC 6455 §5.5.1: data after our close frame is discarded
        if opcode == OP_CONTINUATION:
            if self._opcode is None:
                raise self._fail(CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._opcode is not None:
                raise self._fail(CLOSE_PROTOCOL_ERROR, "new message before the previous one ended")
            if fin:
                return self._message(opcode, payload)
            self._opcode = opcode
            if opcode == OP_TEXT:
                self._decoder = _utf8_decoder()
        else:
            raise self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        self._fragments_size += len(payload)
        if self._fragments_size > self.max_message_size:
            raise self._fail(CLOSE_MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes")
        decoder = self._decoder
        if decoder is not None:
            # RFC 6455 §8.1: fail fast on invalid UTF-8, not only once the
            # last fragment is in (the decoder keeps a split character).
            try:
                decoder.decode(payload, final=bool(fin))
            except UnicodeDecodeError:
                raise self._fail(CLOSE_INVALID_DATA, "text message is not valid utf-8") from None
        self._fragments.append(payload)
        if not fin:
            return None
        assert self._opcode is not None
        opcode, self._opcode, self._decoder = self._opcode, None, None
        data = b"".join(self._fragments)
        self._fragments.clear()
        self._fragments_size = 0
        return self._message(opcode, data)

    def _message(self, opcode: int, payload: bytes) -> Message:
        if opcode == OP_BINARY:
            return Message(payload)
        try:
            return Message(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._fail(CLOSE_INVALID_DATA, "text message is not valid utf-8") from None

    def _close(self, payload: bytes) -> Exception:
        # RFC 6455 §5.5.1: a close payload is empty or a 2-byte code plus a UTF-8 reason.
        if len(payload) == 1:
            return self._fail(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code, reason = CLOSE_NORMAL, ""
        if payload:
            code = struct.unpack_from("!H", payload)[0]
            if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
                return self._fail(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(CLOSE_INVALID_DATA, "close reason is not valid utf-8")
        if not self.closing:
            # Echo the code (RFC 6455 §5.5.1) to complete the closing handshake.
            self.closing = True
            self._out.append(close_frame(code) if payload else frame(OP_CLOSE, b""))
        return ClosedByPeer(code, reason)


_utf8_decoder = codecs.getincrementaldecoder("utf-8")
