"""WAMP serializers (JSON and MessagePack) and wire codecs.

A :class:`Serializer` turns a message list into bytes and back. A
:class:`WireCodec` pairs a serializer with a transport's framing (for example
a prepared WebSocket frame header), so the broker can encode an event once per
codec and write the very same bytes to every subscriber using it (WAMP §10
"Serializations"; the WebSocket subprotocols are ``wamp.2.json`` and
``wamp.2.msgpack``).

A payload decoded from one serialization may not fit another (bytes from
msgpack in JSON, an integer over 64 bits from JSON in msgpack), so ``encode``
raises :class:`~telegraphy.wamp.errors.ApplicationError`
(``wamp.error.invalid_argument``) for a message it cannot represent; the
broker and dealer encode before delivering, and answer the sender with ERROR.

EVENTs differ between subscriptions only in their subscription id, so the
broker encodes the rest of an EVENT once per publish (:meth:`Serializer.event_tail`)
and splices each subscription id in front of it (:meth:`Serializer.event`):
a thousand subscriptions with different filters cost one payload encoding.

Limits: bytes are sent to JSON peers as WAMP's ``"\\0" + base64`` strings, but
such strings received from JSON peers are passed on as strings, not
converted to bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]

from .errors import ApplicationError, SerializationError, uris

__all__ = ["JSON", "MSGPACK", "SERIALIZERS", "JsonSerializer", "MsgpackSerializer", "Serializer", "WireCodec"]


class Serializer(Protocol):
    """Encodes message lists to bytes and decodes them back."""

    name: str
    subprotocol: str
    binary: bool

    def encode(self, message: list[Any]) -> bytes:
        """Return the bytes of ``message``; ApplicationError if it cannot be represented."""
        ...

    def decode(self, data: bytes | str) -> Any: ...

    def event_tail(self, rest: list[Any]) -> bytes:
        """Encode an EVENT without its type and subscription id: ``[Publication, Details, Arguments?, ArgumentsKw?]``.

        Raises ApplicationError like :meth:`encode`.
        """
        ...

    def event(self, subscription: int, tail: bytes) -> bytes:
        """Return the bytes of ``[36, subscription, *rest]`` given the :meth:`event_tail` of ``rest``."""
        ...


class JsonSerializer:
    """``wamp.2.json``: UTF-8 JSON text, compact separators."""

    name = "json"
    subprotocol = "wamp.2.json"
    binary = False

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_binary)
        # Python accepts NaN and Infinity; JSON (RFC 8259) and browsers do not.
        self._decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def encode(self, message: list[Any]) -> bytes:
        try:
            return self._encoder.encode(message).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise _unrepresentable(self.name, exc) from None

    def event_tail(self, rest: list[Any]) -> bytes:
        return self.encode(rest)

    def event(self, subscription: int, tail: bytes) -> bytes:
        # "[pub,…]" becomes "[36,sub,pub,…]".
        return b"[36,%d,%b" % (subscription, tail[1:])

    def decode(self, data: bytes | str) -> Any:
        try:
            if isinstance(data, bytes):
                data = data.decode("utf-8")
            return self._decoder.decode(data)
        except UnicodeDecodeError:
            raise SerializationError("invalid json: not utf-8") from None
        except ValueError as exc:
            raise SerializationError(f"invalid json: {exc}") from None
        except RecursionError:
            raise SerializationError("invalid json: nested too deeply") from None


class MsgpackSerializer:
    """``wamp.2.msgpack``: MessagePack in binary frames."""

    name = "msgpack"
    subprotocol = "wamp.2.msgpack"
    binary = True

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True)

    def encode(self, message: list[Any]) -> bytes:
        try:
            packed: bytes = self._packer.pack(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _unrepresentable(self.name, exc) from None
        return packed

    def event_tail(self, rest: list[Any]) -> bytes:
        # The array header of the whole EVENT (4 to 6 items: a fixarray), then the packed items after the id.
        try:
            packed = b"".join([self._packer.pack(item) for item in rest])
        except (TypeError, ValueError, OverflowError) as exc:
            raise _unrepresentable(self.name, exc) from None
        return bytes((0x90 | (len(rest) + 2),)) + packed

    def event(self, subscription: int, tail: bytes) -> bytes:
        # 0x24 is the positive fixint 36 (EVENT).
        return b"%b\x24%b%b" % (tail[:1], self._packer.pack(subscription), tail[1:])

    def decode(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            raise SerializationError("invalid msgpack: got a text frame, expected binary")
        try:
            # strict_map_key keeps keys to str/bytes; raw=False decodes strings.
            return msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise SerializationError(f"invalid msgpack: {exc or type(exc).__name__}") from None
        except Exception as exc:  # msgpack raises assorted types on garbage
            raise SerializationError(f"invalid msgpack: {type(exc).__name__}") from None


def _json_binary(value: Any) -> str:
    # WAMP "Binary conversion of JSON Strings": a NUL character, then base64.
    if isinstance(value, (bytes, bytearray)):
        return "\0" + base64.b64encode(value).decode("ascii")
    raise TypeError(f"object of type {type(value).__name__} is not json serializable")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid json")


def _unrepresentable(name: str, exc: Exception) -> ApplicationError:
    return ApplicationError(uris.INVALID_ARGUMENT, f"payload cannot be sent as {name}: {exc}")


JSON = JsonSerializer()
MSGPACK = MsgpackSerializer()

#: Serializers by WebSocket subprotocol, in the server's order of preference.
SERIALIZERS: dict[str, Serializer] = {JSON.subprotocol: JSON, MSGPACK.subprotocol: MSGPACK}


def _identity(payload: bytes) -> bytes:
    return payload


class WireCodec:
    """A serializer plus the framing of one transport.

    ``encode`` returns bytes ready to be written to the transport as they are.
    Instances are shared by all connections of one kind, and the broker keys
    its once-per-publish encoding cache on them.
    """

    __slots__ = ("frame", "serializer")

    def __init__(self, serializer: Serializer, frame: Callable[[bytes], bytes] = _identity) -> None:
        self.serializer = serializer
        self.frame = frame

    def encode(self, message: list[Any]) -> bytes:
        return self.frame(self.serializer.encode(message))

    def encode_event(self, subscription: int, tail: bytes) -> bytes:
        """Return the framed EVENT of ``subscription`` from its serializer's :meth:`~Serializer.event_tail`."""
        return self.frame(self.serializer.event(subscription, tail))

    def decode(self, data: bytes | str) -> Any:
        return self.serializer.decode(data)

    def __repr__(self) -> str:
        return f"WireCodec({self.serializer.name})"
