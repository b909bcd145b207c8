"""Hostile WAMP input, generated: shared by the fuzz tests and ``tools/fuzz_gateway.py``.

Two ways to draw the same kinds of input:

- :class:`HostileInput`, a seeded generator (``random.Random``): the gateway
  fuzz test and the long fuzz tool send thousands of its frames over real
  connections, deterministically for a given seed;
- Hypothesis strategies (:func:`payloads`, :func:`wamp_messages`) for the
  sans-I/O property tests, which shrink a failing input to a small one.

What is generated: WAMP messages of every type code with well-formed fields
most of the time and, field by field, values of the wrong type, unknown type
codes, wrong arities, deep nesting, NaN and Infinity, lone surrogates, bytes,
bytes-keyed maps, integers past 64 bits, msgpack extension types and
timestamps, long strings; and raw transport messages that are no WAMP at all
(truncated or random bytes, invalid UTF-8, text on a binary subprotocol).

:class:`WebSocketClient` is a minimal asyncio RFC 6455 client that reports
exactly how a connection ended (the server's close code, or a drop without a
close frame), which higher-level clients hide.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

__all__ = [
    "CLEAN_CLOSE_CODES",
    "FUZZ_TOPICS",
    "APP_TOPIC",
    "Frame",
    "HostileInput",
    "WebSocketClient",
    "encode",
    "payloads",
    "wamp_messages",
]

#: Topics the fuzzing sessions may publish to (declared as a channel).
FUZZ_TOPICS = ("fuzz.t.a", "fuzz.t.b", "fuzz.t.c")
#: The web app's topic: only ``POST /publish`` puts events there.
APP_TOPIC = "app.fuzz"
#: Close codes a server may end a fuzzed connection with (RFC 6455 §7.4.1).
CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011})

HUGE_INTS = (2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -(10**40))
ODD_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324)
ODD_STRINGS = (
    "",
    "\ud800",
    "a\udfffb",
    "\x00",
    "\0" + base64.b64encode(b"\x00\xff").decode(),
    "wamp.error.not_authorized",
    "user.8.inbox",
    "\u202e\ufeff",
    "🙂" * 3,
    "x" * 5000,
)
ODD_URIS = ("", ".", "a..b", "wamp.session.list", "user.8", "user.8.inbox", "fuzz.", "\ud800", "x" * 3000, "fuzz.t.#", "Ünïcode.ü")
TYPE_CODES = (1, 2, 3, 4, 5, 6, 8, 16, 17, 32, 33, 34, 35, 36, 48, 49, 50, 64, 65, 66, 67, 68, 69, 70)
#: Messages a client sends in an established session, weighted towards the payload-carrying ones.
CLIENT_CODES = (16, 16, 16, 16, 16, 32, 32, 32, 34, 48, 48, 64, 64, 66, 70, 8)
ODD_CODES: tuple[Any, ...] = (0, 7, 99, 255, -1, 2**64, 16.0, "16", True, None, [16], {"16": 1})
LOOKUPS = ("", "__gt", "__gte", "__lt", "__in", "__contains", "__startswith", "__icontains", "__regex", "__isnull", "__range", "__bogus")


@dataclass(frozen=True, slots=True)
class Frame:
    """One transport message to send: its payload, whether it goes as a binary frame, and what it is."""

    data: bytes
    binary: bool
    label: str


class HostileInput:
    """Seeded generator of hostile WAMP values, messages and frames.

    Args:
        seed: the seed; the same seed gives the same sequence.
        topics: topics to aim valid-looking messages at.
    """

    def __init__(self, seed: int, topics: Sequence[str] = (*FUZZ_TOPICS, APP_TOPIC)) -> None:
        self.rng = random.Random(seed)
        self.topics = tuple(topics)

    # Values -------------------------------------------------------------------

    def value(self, depth: int = 0) -> Any:
        """Return an arbitrary value a serializer might carry (or choke on)."""
        rng = self.rng
        kind = rng.randrange(14 if depth < 4 else 10)
        if kind == 0:
            return rng.choice((None, True, False))
        if kind == 1:
            return rng.randint(-1000, 1000)
        if kind == 2:
            return rng.choice(HUGE_INTS)
        if kind == 3:
            return rng.choice(ODD_FLOATS)
        if kind == 4:
            return rng.random() * 10 ** rng.randint(-5, 20)
        if kind == 5:
            return rng.choice(ODD_STRINGS)
        if kind == 6:
            return "".join(chr(rng.choice((rng.randint(32, 126), rng.randint(0, 0x10FFFF)))) for _ in range(rng.randint(0, 12)))
        if kind == 7:
            return os.urandom(0) + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 16)))
        if kind == 8:
            return msgpack.ExtType(rng.randint(0, 127), bytes(rng.randint(0, 6)))
        if kind == 9:
            return msgpack.Timestamp(rng.randint(0, 2**34), rng.randint(0, 999_999_999))
        if kind in (10, 11):
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == 12:
            return {self.key(): self.value(depth + 1) for _ in range(rng.randint(0, 4))}
        return self.nested(rng.randint(50, 400))

    def key(self) -> Any:
        """Return a map key: mostly strings, sometimes bytes, integers or odd strings."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.7:
            return rng.choice(("name", "meta", "data", "pk", "status", "audience", "projections", "x", "eligible", "exclude"))
        if roll < 0.8:
            return rng.choice(ODD_STRINGS)
        if roll < 0.9:
            return bytes(rng.randint(0, 4))
        return rng.randint(-5, 5)

    def nested(self, depth: int) -> Any:
        """Return ``depth`` lists or maps nested in one another."""
        value: Any = self.rng.choice((1, "x", None))
        as_map = self.rng.random() < 0.3
        for _ in range(depth):
            value = {"a": value} if as_map else [value]
        return value

    def uri(self) -> Any:
        """Return a topic or procedure URI: mostly known topics, sometimes odd strings or not a string."""
        roll = self.rng.random()
        if roll < 0.75:
            return self.rng.choice(self.topics)
        if roll < 0.95:
            return self.rng.choice(ODD_URIS)
        return self.value(3)

    def request(self) -> Any:
        roll = self.rng.random()
        if roll < 0.95:
            return self.rng.randint(1, 2**53)
        return self.rng.choice((0, -1, 2**53 + 1, 2**64, 1.5, "1", None, [1]))

    def maybe(self, good: Any, odds: float = 0.85) -> Any:
        """Return ``good`` with probability ``odds``, a hostile value otherwise."""
        return good if self.rng.random() < odds else self.value(2)

    def options(self, kind: str) -> Any:
        """Return a SUBSCRIBE/PUBLISH/CALL/REGISTER options map with plausible and hostile keys."""
        rng = self.rng
        if rng.random() < 0.04:
            return self.value(2)
        options: dict[Any, Any] = {}
        for _ in range(rng.randint(0, 3)):
            if kind == "subscribe":
                name = rng.choice(("match", "filter", "exclude", "get_retained", self.key()))
                if name == "match":
                    options[name] = self.maybe(rng.choice(("exact", "prefix", "wildcard", "regex")))
                elif name == "filter":
                    options[name] = self.filter()
                else:
                    options[name] = self.value(2)
            elif kind == "publish":
                name = rng.choice(("acknowledge", "exclude_me", "exclude", "eligible", "disclose_me", self.key()))
                if name in ("exclude", "eligible"):
                    options[name] = self.maybe([rng.randint(1, 2**53) for _ in range(rng.randint(0, 3))])
                else:
                    options[name] = self.maybe(rng.random() < 0.7)
            else:
                options[self.key()] = self.value(2)
        return options

    def filter(self) -> Any:
        """Return a filter in the lookup language, often with hostile operands."""
        rng = self.rng
        if rng.random() < 0.1:
            return self.value(2)
        result: dict[Any, Any] = {}
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(("status", "n", "tags", "name", "data__x", "a__b__c", "\ud800", "")) + rng.choice(LOOKUPS)
            if name.endswith(("__in", "__contains", "__range")) and rng.random() < 0.5:
                result[name] = [rng.randint(0, 9) for _ in range(rng.choice((1, 2, 50, 500)))]
            else:
                result[name] = self.value(2)
        return result

    def payload_args(self) -> Any:
        """Return an Arguments list: often a Telegraphy event ``{name, meta, data}`` with hostile parts."""
        rng = self.rng
        if rng.random() < 0.4:
            meta: Any = {"event_type": self.maybe("update")}
            if rng.random() < 0.3:
                meta["audience"] = self.maybe(rng.choice(("public", "authenticated", {"users": [7]}, {"groups": ["g"]})))
            if rng.random() < 0.3:
                meta["projections"] = self.maybe({"public": ["name"]})
            event = {"name": self.maybe(rng.choice(self.topics)), "meta": self.maybe(meta), "data": self.value(1)}
            return self.maybe([event])
        return self.maybe([self.value(1) for _ in range(rng.randint(0, 3))])

    # Messages -----------------------------------------------------------------

    def message(self) -> Any:
        """Return one WAMP message (a list, usually), valid-shaped or not."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.02:
            return self.value(1)
        if roll < 0.05:
            return [rng.choice(ODD_CODES), *(self.value(2) for _ in range(rng.randint(0, 4)))]
        if roll < 0.12:
            # A type only the router sends, or a HELLO/AUTHENTICATE out of turn: a protocol violation.
            code = rng.choice(TYPE_CODES)
        else:
            # What a client sends in an established session, with hostile fields and payloads.
            code = rng.choice(CLIENT_CODES)
        message = self._shaped(code)
        roll = rng.random()
        if roll < 0.03:
            del message[rng.randint(1, max(1, len(message) - 1)) :]
        elif roll < 0.06:
            message.append(self.value(2))
        return message

    def _shaped(self, code: int) -> list[Any]:
        rng = self.rng
        if code == 1:
            return self.hello_message()
        if code == 16:
            message = [16, self.request(), self.options("publish"), self.uri()]
            if rng.random() < 0.85:
                message.append(self.payload_args())
                if rng.random() < 0.3:
                    message.append(self.maybe({self.key(): self.value(2)}))
            return message
        if code == 32:
            return [32, self.request(), self.options("subscribe"), self.uri()]
        if code in (34, 66):
            return [code, self.request(), self.maybe(rng.randint(1, 2**53))]
        if code == 48:
            return [48, self.request(), self.options("call"), self.maybe(rng.choice(("wamp.session.list", "wamp.session.count", "fuzz.proc", "app.rpc"))), self.payload_args()]
        if code == 64:
            return [64, self.request(), self.options("register"), self.uri()]
        if code == 70:
            return [70, self.request(), self.maybe({}), self.payload_args()]
        if code == 8:
            return [8, self.maybe(68), self.request(), self.maybe({}), self.maybe("wamp.error.runtime_error"), self.payload_args()]
        if code == 6:
            return [6, self.maybe({}), self.maybe("wamp.close.normal")]
        if code == 3:
            return [3, self.maybe({}), self.maybe("wamp.close.normal")]
        if code == 5:
            return [5, self.maybe("signature"), self.maybe({})]
        return [code, *(self.value(2) for _ in range(rng.randint(1, 4)))]

    def hello_message(self, realm: str = "telegraphy") -> list[Any]:
        """Return a HELLO, valid-shaped, with hostile details now and then."""
        rng = self.rng
        details: dict[Any, Any] = {"roles": self.maybe({"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}})}
        for _ in range(rng.randint(0, 2)):
            name = rng.choice(("authmethods", "authid", "resume_token", "resume_offsets", self.key()))
            if name == "authmethods":
                details[name] = self.maybe(rng.choice((["ticket"], ["wampcra"], ["anonymous"], ["\ud800"], [])))
            elif name == "resume_offsets":
                details[name] = self.maybe({rng.choice(self.topics): ["epoch", rng.choice((1, -1, 2**64))]})
            else:
                details[name] = self.value(2)
        return [1, self.maybe(realm), details]

    # Frames -------------------------------------------------------------------

    def frame(self, msgpack_peer: bool) -> Frame:
        """Return one transport message for a peer of the given subprotocol."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.93:
            message = self.message()
            return Frame(encode(message, msgpack_peer, rng), msgpack_peer, f"message:{_code_label(message)}")
        return self.raw_frame(msgpack_peer)

    def raw_frame(self, msgpack_peer: bool) -> Frame:
        """Return a transport message that is no valid serialization of anything sensible."""
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            return Frame(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))), msgpack_peer, "raw:random")
        if kind == 1:
            whole = encode(self.message(), msgpack_peer, rng)
            return Frame(whole[: rng.randint(0, max(0, len(whole) - 1))], msgpack_peer, "raw:truncated")
        if kind == 2:
            depth = rng.choice((100, 1000, 5000, 20000))
            if msgpack_peer:
                return Frame(b"\x91" * depth + b"\xc0", True, "raw:deep")
            return Frame(b"[" * depth + b"]" * depth, False, "raw:deep")
        if kind == 3:
            # Text on the binary subprotocol and binary on the text one.
            message = self.message()
            return Frame(encode(message, not msgpack_peer, rng), not msgpack_peer, "raw:wrong-frame-type")
        if kind == 4 and not msgpack_peer:
            # Python's JSON parser turns an overflowing literal into Infinity.
            return Frame(b'[16,1,{},"%s",[1e999,-1e999,123456789012345678901234567890]]' % rng.choice(FUZZ_TOPICS).encode(), False, "raw:json-overflow")
        if kind == 5 and msgpack_peer:
            # PUBLISH with a NaN float64 argument, and with a bin/ext/timestamp argument.
            arg = rng.choice((b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", b"\xc4\x01\x00", b"\xd6\xff\x00\x00\x00\x01", b"\xd4\x05\x00", b"\x81\xc4\x01k\x01"))
            topic = rng.choice(FUZZ_TOPICS).encode()
            return Frame(b"\x95\x10\x01\x80" + bytes((0xA0 | len(topic),)) + topic + b"\x91" + arg, True, "raw:msgpack-odd-arg")
        if kind == 6:
            return Frame(b"", msgpack_peer, "raw:empty")
        if kind == 7 and not msgpack_peer:
            # A lone surrogate escaped in JSON text (valid UTF-8 on the wire).
            return Frame(b'[16,1,{"acknowledge":true},"%s",["\\ud800"],{"k\\udfff":1}]' % rng.choice(FUZZ_TOPICS).encode(), False, "raw:json-surrogate")
        return Frame(b"\x81" * rng.randint(1, 8), msgpack_peer, "raw:garbage")


def _code_label(message: Any) -> str:
    if isinstance(message, list) and message and isinstance(message[0], int) and not isinstance(message[0], bool):
        return str(message[0]) if message[0] in TYPE_CODES else "unknown"
    return "not-a-list" if not isinstance(message, list) else "odd-code"


# Encoding ---------------------------------------------------------------------


def encode(message: Any, as_msgpack: bool, rng: random.Random | None = None) -> bytes:
    """Encode ``message`` as a client of that subprotocol would, keeping what the format allows.

    JSON: NaN/Infinity as the (invalid) literals, lone surrogates as
    ``\\udXXX`` escapes, bytes as WAMP's ``"\\0" + base64``, bytes keys and
    extension types turned into strings. msgpack: surrogates passed through as
    invalid UTF-8, integers past 64 bits turned into floats.
    """
    if as_msgpack:
        try:
            return msgpack.packb(message, use_bin_type=True, unicode_errors="surrogatepass")  # type: ignore[no-any-return]
        except (OverflowError, ValueError, TypeError):
            return msgpack.packb(_msgpack_safe(message, 0), use_bin_type=True, unicode_errors="surrogatepass")  # type: ignore[no-any-return]
    try:
        text = json.dumps(_jsonable(message, 0), ensure_ascii=True, allow_nan=True, separators=(",", ":"))
    except (RecursionError, ValueError):
        text = "[]"
    return text.encode("ascii")


def _jsonable(value: Any, depth: int) -> Any:
    if depth > 900:
        return None
    if isinstance(value, (bytes, bytearray)):
        return "\0" + base64.b64encode(value).decode("ascii")
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code}
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix()
    if isinstance(value, list):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return value


def _json_key(key: Any) -> Any:
    if isinstance(key, bytes):
        return key.hex()
    return key


def _msgpack_safe(value: Any, depth: int) -> Any:
    if depth > 900:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [_msgpack_safe(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {k: _msgpack_safe(v, depth + 1) for k, v in value.items()}
    return value


# Hypothesis strategies --------------------------------------------------------


def payloads() -> Any:
    """Hypothesis strategy: arbitrary payload values, hostile leaves included."""
    from hypothesis import strategies as st

    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(ODD_STRINGS[:9]),
        st.binary(max_size=8),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
        st.builds(msgpack.Timestamp, st.integers(0, 2**34), st.integers(0, 999_999_999)),
    )
    keys = st.one_of(st.sampled_from(("name", "meta", "data", "pk", "audience", "projections")), st.text(max_size=4), st.binary(max_size=3))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12)


def hello_messages() -> Any:
    """Hypothesis strategy: HELLO messages, valid-shaped, with hostile realms and details."""
    from hypothesis import strategies as st

    values = payloads()
    # Mostly the served realm and well-formed roles, so the details are what gets tested.
    realms = st.one_of(st.just("telegraphy"), st.just("telegraphy"), st.just("telegraphy"), st.sampled_from(ODD_URIS), values)
    methods = st.one_of(
        st.lists(st.sampled_from(("ticket", "wampcra", "anonymous", "cryptosign", "\ud800", "x" * 3000)), min_size=1, max_size=2),
        st.lists(values, max_size=2),
        values,
    )
    details: Any = st.fixed_dictionaries(
        {"roles": st.one_of(st.just({"subscriber": {}, "publisher": {}}), st.just({"caller": {}}), values)},
        optional={
            "authid": st.sampled_from(("7", "\ud800", "x" * 3000)) | values,
            "resume_token": st.text(max_size=4) | values,
            "resume_offsets": st.dictionaries(st.sampled_from((*FUZZ_TOPICS, *ODD_URIS[:8])), st.lists(values, max_size=2), max_size=2) | values,
        },
    )
    with_methods = st.tuples(details, methods).map(lambda pair: {**pair[0], "authmethods": pair[1]})
    return st.tuples(st.just(1), realms, st.one_of(details, with_methods, with_methods, values)).map(list)


def wamp_messages() -> Any:
    """Hypothesis strategy: WAMP messages of every type code, valid-shaped with hostile fields, or not."""
    from hypothesis import strategies as st

    values = payloads()
    uris = st.one_of(st.sampled_from((*FUZZ_TOPICS, APP_TOPIC)), st.sampled_from(ODD_URIS), values)
    ids = st.one_of(st.integers(1, 2**53), values)
    options = st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "acknowledge": st.booleans() | values,
                "match": st.sampled_from(("exact", "prefix", "wildcard", "regex")) | values,
                "filter": st.dictionaries(st.sampled_from(("n", "n__gt", "tags__contains", "x__in", "a__b__regex", "\ud800")), values, max_size=2) | values,
                "exclude_me": st.booleans() | values,
                "eligible": st.lists(st.integers(0, 2**64), max_size=3) | values,
                "exclude": st.lists(st.integers(0, 2**64), max_size=3) | values,
            },
        ),
        values,
    )
    args = st.one_of(
        st.lists(values, max_size=3),
        st.builds(lambda name, meta, data: [{"name": name, "meta": meta, "data": data}], uris, st.fixed_dictionaries({}, optional={"audience": values, "projections": values, "event_type": values}) | values, values),
        values,
    )
    shaped = st.one_of(
        st.tuples(st.just(16), ids, options, uris, args).map(list),
        st.tuples(st.just(16), ids, options, uris, args, values).map(list),
        st.tuples(st.just(32), ids, options, uris).map(list),
        st.tuples(st.just(34), ids, ids).map(list),
        st.tuples(st.just(48), ids, options, uris, args).map(list),
        st.tuples(st.just(64), ids, options, uris).map(list),
        st.tuples(st.just(66), ids, ids).map(list),
        st.tuples(st.just(70), ids, options, args).map(list),
        st.tuples(st.just(8), st.sampled_from((68, 48, 16)) | values, ids, options, uris, args).map(list),
        st.tuples(st.just(6), options, uris).map(list),
        hello_messages(),
        st.tuples(st.sampled_from(TYPE_CODES + ODD_CODES), st.lists(values, max_size=4)).map(lambda t: [t[0], *t[1]]),
        values,
    )
    return shaped


# A minimal WebSocket client ---------------------------------------------------


@dataclass
class ConnectionOutcome:
    """How a fuzzed connection went: replies by kind, and how it ended."""

    replies: dict[str, int] = field(default_factory=dict)
    #: "close:<code>", "dropped" (no close frame), "timeout", "refused:<status>".
    ending: str = ""


def _masked_frame(payload: bytes, op: int) -> bytes:
    """Return one final client frame (RFC 6455 §5.2): FIN, ``op``, a random mask, the masked payload."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | op, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, length)
    if not payload:
        return head + mask
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")


class WebSocketClient:
    """A bare RFC 6455 client on asyncio streams: masked frames out, every frame in, exact close codes.

    Call :meth:`connect`, then :meth:`send` and :meth:`receive` (``None``
    once the connection ended; :attr:`close_code` then says how: a code, or
    ``None`` for a drop without a close frame).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, subprotocol: str | None) -> None:
        self.reader = reader
        self.writer = writer
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        #: True when the connection ended with a TCP reset rather than an orderly close.
        self.reset = False
        #: Pongs received, and an event set at each (see :meth:`sync`).
        self.pongs = 0
        self.pong = asyncio.Event()
        self.ended = False
        self._sent_close = False

    @classmethod
    async def connect(cls, host: str, port: int, path: str, subprotocol: str, timeout: float = 10.0) -> WebSocketClient:
        """Open the connection and do the opening handshake.

        Raises:
            ConnectionError: when the server answers anything but 101 (the status is in the message).
        """
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except BaseException:
            writer.close()
            raise
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            writer.close()
            raise ConnectionError(status.decode("latin-1"))
        chosen = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-protocol:"):
                chosen = line.split(b":", 1)[1].strip().decode("ascii")
        return cls(reader, writer, chosen)

    def send(self, payload: bytes, binary: bool = False, opcode: int | None = None) -> None:
        """Queue one masked frame (text unless ``binary``; any ``opcode`` if given)."""
        self.send_frames([(payload, opcode if opcode is not None else (0x2 if binary else 0x1))])

    def send_frames(self, frames: list[tuple[bytes, int]]) -> None:
        """Queue several masked frames ``(payload, opcode)`` in one write (so they reach the server together)."""
        if self.ended:
            return
        data = b"".join(_masked_frame(payload, op) for payload, op in frames)
        if any(op == 0x8 for _, op in frames):
            self._sent_close = True
        try:
            self.writer.write(data)
        except (ConnectionError, RuntimeError):
            self.ended = True

    def send_close(self, code: int = 1000) -> None:
        """Start the closing handshake."""
        if not self._sent_close:
            self._sent_close = True
            self.send(struct.pack("!H", code), opcode=0x8)

    async def sync(self, reading: asyncio.Future[Any], timeout: float = 10.0) -> bool:
        """Send a ping and wait for its pong while ``reading`` (the task calling :meth:`receive`) runs.

        The server handles frames in order, so once the pong is back every
        frame sent before it was processed, and any reply to them written.
        Returns False when the connection ended (or ``timeout`` passed) first.
        """
        self.pong.clear()
        self.send(b"sync", opcode=0x9)
        await self.drain()
        waiter = asyncio.ensure_future(self.pong.wait())
        done, _ = await asyncio.wait({waiter, reading}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        # Let the reader take what came with the pong (an ABORT, a close) before the next frame goes.
        for _ in range(3):
            await asyncio.sleep(0)
        return waiter in done and not reading.done()

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self.ended = True

    async def receive(self, timeout: float = 10.0) -> bytes | str | None:
        """Return the next data message; answer pings; ``None`` once closed (see :attr:`close_code`)."""
        while not self.ended:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
                length = head[1] & 0x7F
                if length == 126:
                    length = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                payload = await self.reader.readexactly(length)
            except asyncio.IncompleteReadError:
                self._end()
                return None
            except ConnectionError:
                # A reset: the peer closed with our data unread (or crashed); what it sent last may be lost.
                self.reset = True
                self._end()
                return None
            opcode = head[0] & 0x0F
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self._sent_close:
                    self.send_close(self.close_code if self.close_code not in (1005, 1006) else 1000)
                self._end()
                return None
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
                continue
            if opcode == 0xA:
                self.pongs += 1
                self.pong.set()
                continue
            if opcode == 0x1:
                return payload.decode("utf-8")
            if opcode == 0x2:
                return payload
        return None

    def _end(self) -> None:
        self.ended = True
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        self.ended = True
        self.writer.transport.abort()
