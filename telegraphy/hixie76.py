"""The server side of the legacy draft-76 WebSocket protocol ("Hixie-76"), sans-I/O.

The protocol is draft-ietf-hybi-thewebsocketprotocol-00, the same text as
draft-hixie-thewebsocketprotocol-76 (May 2010): what browsers spoke before
RFC 6455 (Safari 5, Chrome 6-13), and what some old
proxies (HAProxy in HTTP mode, early versions) still forward. The gateway
accepts it on one endpoint only, SockJS's per-session websocket transport, as
sockjs-node does; everything else is RFC 6455 (:mod:`telegraphy.websocket`).

**Handshake** (draft §5.2, "Sending the server's opening handshake"). The
client sends ``Sec-WebSocket-Key1`` and ``Sec-WebSocket-Key2`` (and no
``Sec-WebSocket-Version``) and, after the request headers, eight raw bytes,
*key3*. For each key, the digits in it read as a decimal number
(*key-number*), divided by the number of spaces in it (*spaces*), give a
32-bit *part*; zero spaces, or a key-number that is not a multiple of the
spaces, abort the connection. The answer is the MD5 of part1 and part2 (each a
big-endian unsigned 32-bit integer) followed by key3: 16 bytes sent after the
``101`` response's headers, which echo the origin (``Sec-WebSocket-Origin``)
and the URL (``Sec-WebSocket-Location``). Proxies such as HAProxy forward
key3 only once the ``101`` came back, so a server writes its headers first
and the 16 bytes when key3 arrives; :class:`Handshake` splits the two.

**Framing** (draft §4.2 and §5.3). Text is ``0x00``, UTF-8, ``0xFF``; a frame
type byte with the high bit set starts a length-prefixed frame (a
base-128 length, high bit meaning "more"), which is discarded, except
``0xFF 0x00``: the closing handshake. Other text frame types (``0x01`` to
``0x7F``) are discarded too. There is no masking, no binary message, no
ping, no close code: :class:`ServerConnection` reports a peer's close as
:class:`~telegraphy.websocket.ClosedByPeer` with code 1000 and refuses invalid
UTF-8 (1007) and messages over the size limit (1009) as
:class:`~telegraphy.websocket.ClosedByProtocol`, codes only for the logs.

Security: the framing is not masked, which is what let a page poison the
caches of transparent proxies that misread the bytes as HTTP (the reason
RFC 6455 added masking), and the handshake proves only that the server read
the request. Serve it only where a legacy client needs it; the gateway lets
it be switched off (``--no-sockjs-hixie76``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from .websocket import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    ClosedByPeer,
    ClosedByProtocol,
    Message,
)

__all__ = [
    "CLOSE",
    "KEY3_SIZE",
    "Handshake",
    "HandshakeError",
    "ServerConnection",
    "challenge_response",
    "frame",
    "key_part",
    "offered",
]

#: The closing frame, both ways (draft §4.2: 0xFF followed by a zero length).
CLOSE = b"\xff\x00"
#: The bytes the client sends after its request headers (draft §4.1, /key_3/).
KEY3_SIZE = 8
#: Longest key accepted: clients send at most 10 digits, 12 spaces and 12 other characters.
MAX_KEY_LENGTH = 256


class HandshakeError(ValueError):
    """The request is not a valid draft-76 opening handshake; the message says why."""


def offered(headers: Mapping[str, str]) -> bool:
    """Whether a request asks for draft-76: both keys and no ``Sec-WebSocket-Version``."""
    return "Sec-WebSocket-Key1" in headers and "Sec-WebSocket-Key2" in headers and "Sec-WebSocket-Version" not in headers


def key_part(key: str) -> int:
    """Return /part/ of a ``Sec-WebSocket-Key1``/``Key2`` value (draft §5.2).

    Raises:
        HandshakeError: no spaces or no digits in the key, a key-number that
            is not a multiple of its spaces, a part that is not a 32-bit
            number, or an implausibly long key.
    """
    if len(key) > MAX_KEY_LENGTH:
        raise HandshakeError(f"key longer than {MAX_KEY_LENGTH} characters")
    digits = "".join(c for c in key if "0" <= c <= "9")
    spaces = key.count(" ")
    if not digits:
        raise HandshakeError("key without digits")
    if not spaces:
        raise HandshakeError("key without spaces")  # §5.2: "a symptom of a cross-protocol attack"
    number = int(digits)
    part, remainder = divmod(number, spaces)
    if remainder:
        raise HandshakeError("key number is not a multiple of the spaces in the key")
    if part > 0xFFFFFFFF:
        raise HandshakeError("key part does not fit in 32 bits")
    return part


def _answer(part1: int, part2: int, key3: bytes) -> bytes:
    if len(key3) != KEY3_SIZE:
        raise HandshakeError(f"key3 must be {KEY3_SIZE} bytes, not {len(key3)}")
    return hashlib.md5(struct.pack("!II", part1, part2) + key3, usedforsecurity=False).digest()


def challenge_response(key1: str, key2: str, key3: bytes) -> bytes:
    """Return the 16 bytes answering the keys (draft §5.2, /response/).

    Raises:
        HandshakeError: a key :func:`key_part` refuses, or key3 not 8 bytes.
    """
    return _answer(key_part(key1), key_part(key2), key3)


def _header_value(name: str, value: str) -> str:
    if any(c < " " or c == "\x7f" for c in value):
        raise HandshakeError(f"control character in {name}")
    return value


@dataclass(frozen=True, slots=True)
class Handshake:
    """A validated draft-76 opening handshake, server side.

    Build it with :meth:`from_request`; write :meth:`response_head` at once
    and, when the client's eight bytes (:data:`KEY3_SIZE`) arrived,
    :meth:`response` to them. The connection is open after that (draft §5.2).
    """

    part1: int
    part2: int
    origin: str
    location: str
    protocol: str | None = None

    @classmethod
    def from_request(cls, headers: Mapping[str, str], location: str, protocol: str | None = None) -> Handshake:
        """Validate an upgrade request's headers (draft §5.1-5.2).

        Args:
            headers: the request headers (a case-insensitive mapping).
            location: the URL the client asked for, ``ws://host/resource``
                or ``wss://…``; echoed as ``Sec-WebSocket-Location``, which
                the client checks.
            protocol: the subprotocol to confirm, if the server picked one
                from the client's ``Sec-WebSocket-Protocol``.

        Raises:
            HandshakeError: not a WebSocket upgrade, no ``Origin`` (which
                the draft requires of clients and the answer must echo), a
                bad key, or a control character in a value to echo.
        """
        if headers.get("Upgrade", "").lower() != "websocket":
            raise HandshakeError('Can "Upgrade" only to "WebSocket".')
        if "upgrade" not in (token.strip().lower() for token in headers.get("Connection", "").split(",")):
            raise HandshakeError('"Connection" must be "Upgrade".')
        origin = headers.get("Origin")
        if not origin:
            raise HandshakeError('A draft-76 handshake needs "Origin".')
        try:
            part1 = key_part(headers.get("Sec-WebSocket-Key1", ""))
            part2 = key_part(headers.get("Sec-WebSocket-Key2", ""))
        except HandshakeError as exc:
            raise HandshakeError(f'Invalid "Sec-WebSocket-Key1/2": {exc}.') from None
        return cls(
            part1,
            part2,
            _header_value("Origin", origin),
            _header_value("location", location),
            None if protocol is None else _header_value("protocol", protocol),
        )

    def response_head(self) -> bytes:
        """Return the ``101`` response's status line and headers, up to the blank line."""
        lines = [
            "HTTP/1.1 101 WebSocket Protocol Handshake",
            "Upgrade: WebSocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Origin: {self.origin}",
            f"Sec-WebSocket-Location: {self.location}",
        ]
        if self.protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {self.protocol}")
        # Header values came in as latin-1 (HTTP's historical charset); they go back the same.
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def response(self, key3: bytes) -> bytes:
        """Return the 16 bytes that follow the head, once the client's ``key3`` arrived."""
        return _answer(self.part1, self.part2, key3)


def frame(payload: bytes) -> bytes:
    """Return a text frame for UTF-8 ``payload`` (draft §4.2; UTF-8 never holds 0xFF)."""
    return b"\x00" + payload + b"\xff"


class ServerConnection:
    """One draft-76 connection after the handshake, server side.

    The same shape as :class:`telegraphy.websocket.ServerConnection`:
    :meth:`receive_data` returns complete text messages and raises
    :class:`~telegraphy.websocket.ClosedByPeer` or
    :class:`~telegraphy.websocket.ClosedByProtocol` when the connection ends;
    :meth:`data_to_send` holds the closing frame to write first.

    Args:
        max_message_size: the largest message accepted, in bytes (a longer
            text frame, or a discarded length-prefixed one, closes the
            connection).
    """

    __slots__ = ("_buffer", "_out", "_scanned", "closing", "max_message_size")

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        #: How far the current unterminated text frame was searched for its 0xFF.
        self._scanned = 0
        self._out: list[bytes] = []
        #: True once the closing frame was sent; nothing but the peer's is expected then.
        self.closing = False

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued by the protocol itself (the closing frame)."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send_close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; draft-76 has no codes, so ``code`` and ``reason`` are not sent."""
        if not self.closing:
            self.closing = True
            self._out.append(CLOSE)

    def _fail(self, code: int, reason: str) -> ClosedByProtocol:
        self.send_close()
        return ClosedByProtocol(code, reason)

    def receive_data(self, data: bytes) -> list[Message]:
        """Parse received bytes; return the complete text messages in order."""
        buf = self._buffer
        buf += data
        messages: list[Message] = []
        pos = 0
        size = len(buf)
        limit = self.max_message_size
        try:
            while pos < size:
                kind = buf[pos]
                if kind & 0x80:
                    # Length-prefixed frame: base-128 length, high bit = more digits.
                    length = 0
                    head = pos + 1
                    while True:
                        if head >= size:
                            return messages
                        byte = buf[head]
                        head += 1
                        length = (length << 7) | (byte & 0x7F)
                        if length > limit:
                            raise self._fail(CLOSE_MESSAGE_TOO_BIG, f"frame over {limit} bytes")
                        if not byte & 0x80:
                            break
                    if kind == 0xFF and length == 0:
                        raise self._closed_by_peer()
                    if head + length > size:
                        return messages
                    pos = head + length  # nothing is defined for these frames: discarded (§5.3)
                    continue
                end = buf.find(b"\xff", max(pos + 1, self._scanned))
                if end < 0:
                    if size - pos - 1 > limit:
                        raise self._fail(CLOSE_MESSAGE_TOO_BIG, f"message over {limit} bytes")
                    self._scanned = size
                    return messages
                self._scanned = 0
                payload = bytes(buf[pos + 1 : end])
                pos = end + 1
                if len(payload) > limit:
                    raise self._fail(CLOSE_MESSAGE_TOO_BIG, f"message over {limit} bytes")
                if kind or self.closing:
                    continue  # another frame type (§5.3: discarded), or data after our closing frame
                try:
                    messages.append(Message(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    raise self._fail(CLOSE_INVALID_DATA, "text message is not valid utf-8") from None
            return messages
        finally:
            if pos:
                del buf[:pos]
                if self._scanned:
                    self._scanned -= pos

    def _closed_by_peer(self) -> ClosedByPeer:
        # §5.3: answer the closing frame unless ours went out first, then close.
        self.send_close()
        return ClosedByPeer(CLOSE_NORMAL, "")
