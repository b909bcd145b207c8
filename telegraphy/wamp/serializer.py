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

What a peer publishes must reach every peer whatever its serialization, now
and when it is replayed from the store (stored as JSON), so
:func:`check_payload` refuses at PUBLISH (``wamp.error.invalid_argument``)
anything but JSON's data model carried identically by msgpack: no NaN or
±Infinity, no lone UTF-16 surrogate, no bytes, no msgpack extension types
(Timestamp included), map keys that are strings, integers of at most 64 bits,
and lists and maps nested at most :data:`MAX_DEPTH` deep.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]

from .errors import ApplicationError, SerializationError, uris

__all__ = [
    "JSON",
    "MAX_DEPTH",
    "MSGPACK",
    "SERIALIZERS",
    "JsonSerializer",
    "MsgpackSerializer",
    "Serializer",
    "WireCodec",
    "check_payload",
    "check_value",
    "safe_text",
    "unportable",
]

#: Deepest nesting of lists and maps in a published payload (``args`` and
#: ``kwargs`` themselves are level 1).
MAX_DEPTH = 64
#: Longest error text sent to a peer, in characters; what a peer sent is
#: never echoed back at length.
MAX_ERROR_TEXT = 200


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
    # The encoder's own words (msgpack's internals, Python type names) stay here.
    return ApplicationError(uris.INVALID_ARGUMENT, f"payload cannot be sent as {name}: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError) or "recursion" in str(exc):  # msgpack: "recursion limit exceeded"
        return "nested too deeply"
    if isinstance(exc, OverflowError):
        return "an integer out of range"
    return "a value it cannot represent"


# Payload validation ------------------------------------------------------------

# msgpack's integer range (int 64 and uint 64).
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unportable(Exception):
    """A value some serializer cannot carry; ``path`` is filled in on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def _kind(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, msgpack.Timestamp):
        return "a msgpack timestamp"
    if isinstance(value, msgpack.ExtType):
        return "a msgpack extension type"
    return f"a value of type {type(value).__name__}"


def _key_text(key: str) -> str:
    return repr(key) if len(key) <= 24 else repr(key[:24]) + "…"


def _walk(value: Any, depth: int) -> None:
    kind = type(value)
    if kind is str:
        if not value.isascii() and _SURROGATE.search(value):
            raise _Unportable("a string with a lone utf-16 surrogate")
    elif kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Unportable("an integer that does not fit in 64 bits")
    elif kind is float:
        if not math.isfinite(value):
            raise _Unportable("NaN" if value != value else "Infinity")
    elif value is None or kind is bool:
        pass
    elif kind is list:
        if depth >= MAX_DEPTH:
            raise _Unportable(f"lists and maps nested over {MAX_DEPTH} deep")
        for index, item in enumerate(value):
            try:
                _walk(item, depth + 1)
            except _Unportable as exc:
                exc.path.append(f"[{index}]")
                raise
    elif kind is dict:
        if depth >= MAX_DEPTH:
            raise _Unportable(f"lists and maps nested over {MAX_DEPTH} deep")
        for key, item in value.items():
            if type(key) is not str:
                raise _Unportable(f"a map key that is {_kind(key) if not isinstance(key, (int, float)) else 'a number'}")
            try:
                if not key.isascii() and _SURROGATE.search(key):
                    raise _Unportable("a map key with a lone utf-16 surrogate")
                _walk(item, depth + 1)
            except _Unportable as exc:
                exc.path.append(f"[{_key_text(key)}]")
                raise
    else:
        raise _Unportable(_kind(value))


def unportable(value: Any, where: str, level: int = 1) -> str | None:
    """Return what keeps some serializer from carrying ``value`` unchanged, or ``None`` if nothing does.

    The answer names the problem and where it is (``"NaN at args[0]['price']"``),
    never the data itself, so it is short and safe to send to a peer.
    ``level`` is the nesting level of ``value`` itself (2 for an event that
    travels as ``args[0]``).
    """
    try:
        _walk(value, level)
    except _Unportable as exc:
        path = "".join(reversed(exc.path))
        if len(path) > 80:
            path = path[:80] + "…"
        return f"{exc.problem} at {safe_text(where, 40)}{safe_text(path)}"
    return None


def check_value(value: Any, where: str) -> None:
    """Raise unless every serializer carries ``value`` unchanged (see the module docstring).

    Args:
        value: decoded data (lists, dicts, strings, numbers, …).
        where: how the error names ``value``, such as ``"args"``.

    Raises:
        ApplicationError: ``wamp.error.invalid_argument``, naming the problem
            and where it is (see :func:`unportable`).
    """
    problem = unportable(value, where)
    if problem is not None:
        raise ApplicationError(uris.INVALID_ARGUMENT, f"payload cannot be delivered to every client: {problem}")


def check_payload(args: list[Any] | None, kwargs: dict[str, Any] | None) -> None:
    """Check a PUBLISH's ``Arguments`` and ``ArgumentsKw`` with :func:`check_value`."""
    if args is not None:
        check_value(args, "args")
    if kwargs is not None:
        check_value(kwargs, "kwargs")


def safe_text(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """Return ``text`` fit to send in an ABORT or ERROR: valid UTF-8 and at most ``limit`` characters.

    Error texts may quote what a peer sent; a lone surrogate in it would make
    the error itself impossible to encode, and a huge value would be echoed.
    """
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


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
