"""Property tests of the sans-I/O core under hostile input, through both serializers.

Hypothesis generates WAMP messages (every type code, valid-shaped with
hostile fields, or not WAMP at all: see ``tests/wamp_fuzz.py``) and feeds them
to one session of an in-memory router, encoded as a ``wamp.2.json`` or a
``wamp.2.msgpack`` client would. Properties:

- no exception escapes :meth:`ServerSession.receive` (a traceback at the gateway);
- everything the router queues for the offender is valid WAMP in its
  serialization, and an ERROR or ABORT stays small whatever the input;
- a session that is told to close got an ABORT or GOODBYE first;
- requests that need an answer (SUBSCRIBE, REGISTER, UNSUBSCRIBE,
  UNREGISTER, acknowledged PUBLISH) get one unless the session is closing;
- two well-behaved subscribers (one per serializer) still receive the web
  app's event published after the hostile input, once each.

And one property of the WebSocket layer beneath (``telegraphy/websocket.py``,
sans-I/O as well): the messages before a Close frame or a bad frame all come
out, in order, however the byte stream is split into reads.

Bounded: ``derandomize=True`` and modest example counts, so the file runs in
well under a minute and gives the same verdict on every run.
"""

from __future__ import annotations

from typing import Any

import pytest
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from telegraphy.wamp.channels import ChannelPolicy, parse_channels
from telegraphy.wamp.messages import Abort, Error, Event, Goodbye, parse
from telegraphy.wamp.serializer import WireCodec

from wamp_fuzz import APP_TOPIC, FUZZ_TOPICS, HostileInput, encode, hello_messages, payloads, wamp_messages
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, Peers

#: The channels of the fuzzed router: fuzz topics are open to every signed-in publisher.
CHANNELS = ChannelPolicy(parse_channels('[{"topic": "fuzz.", "match": "prefix", "subscribe": "public", "publish": "authenticated"}]'))
#: The largest ERROR or ABORT the router may send back, in bytes (it must not echo huge input).
MAX_REPLY = 4096
#: Requests that always get an answer (type code → the answer's code).
ANSWERED = {32: 33, 34: 35, 64: 65, 66: 67}
CODECS = {"json": JSON_CODEC, "msgpack": MSGPACK_CODEC}

SETTINGS = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_summary: dict[str, int] = {"examples": 0, "messages": 0, "aborts": 0, "errors": 0}


class World:
    """A router with two well-behaved subscribers (JSON, msgpack) on the web app's topic and a fuzz topic."""

    def __init__(self) -> None:
        self.peers = Peers(channels=CHANNELS)
        self.subscribers = [self.peers.join(JSON_CODEC, user="good-json"), self.peers.join(MSGPACK_CODEC, user="good-msgpack")]
        for subscriber in self.subscribers:
            self.peers.subscribe(subscriber, APP_TOPIC)
            self.peers.subscribe(subscriber, FUZZ_TOPICS[0], request=2)
        self.sent = 0

    def check_unaffected(self) -> None:
        """The web app publishes one event; each good subscriber gets it exactly once (after whatever else it got)."""
        self.sent += 1
        marker = {"name": APP_TOPIC, "meta": {"event_type": "update"}, "data": {"seq": self.sent}}
        self.peers.router.publish_event(marker)
        for subscriber in self.subscribers:
            got = [m for m in self.peers.read(subscriber) if isinstance(m, Event) and m.args and _seq(m.args[0]) is not None]
            assert [_seq(m.args[0]) for m in got] == [self.sent], f"{subscriber.codec} subscriber got {got} for event {self.sent}"


def _seq(arg: Any) -> Any:
    if isinstance(arg, dict) and arg.get("name") == APP_TOPIC and isinstance(arg.get("data"), dict):
        return arg["data"].get("seq")
    return None


def hostile_session(world: World, codec: WireCodec, how: str) -> Any:
    if how == "anonymous":
        return world.peers.join(codec)
    if how == "user":
        return world.peers.join(codec, user="mallory")
    return world.peers.attach(codec)  # not yet established: the first message is hostile


def feed(world: World, session: Any, message: Any, binary: bool, raw: bytes | None = None) -> None:
    """Send one hostile message (a binary or a text WebSocket message) and check the router's answer to it."""
    data = raw if raw is not None else encode(message, binary)
    if not binary:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # the WebSocket layer closes with 1007 before the core sees it
    _summary["messages"] += 1
    # No exception may escape: at the gateway it would be a traceback and a dropped connection.
    world.peers.send_raw(session, data if binary else text)
    frames = session.data_to_send()
    replies = []
    for frame in frames:
        reply = parse(session.codec.decode(frame))
        replies.append(reply)
        if isinstance(reply, (Abort, Error)):
            _summary["aborts" if isinstance(reply, Abort) else "errors"] += 1
            assert len(frame) <= MAX_REPLY, f"{reply.NAME} of {len(frame)} bytes in answer to {data[:200]!r}"
    if session.close_request is not None:
        assert replies and isinstance(replies[-1], (Abort, Goodbye)), f"closed without ABORT/GOODBYE after {data[:200]!r}: {replies}"
        return
    if session.state.value == "established" and isinstance(message, list) and message and type(message[0]) is int:
        code = message[0]
        expects = ANSWERED.get(code)
        if code == 16 and isinstance(message[2] if len(message) > 2 else None, dict) and message[2].get("acknowledge") is True:
            expects = 17
        if expects is not None and len(message) >= 3:
            assert any(r.TYPE in (expects, 8, 3) for r in replies), f"no answer to {data[:200]!r}: {replies}"


def run_messages(messages: list[Any], codec_name: str, how: str) -> None:
    world = World()
    codec = CODECS[codec_name]
    session = hostile_session(world, codec, how)
    _summary["examples"] += 1
    for message in messages:
        feed(world, session, message, codec_name == "msgpack")
        if session.close_request is not None:
            break
    world.check_unaffected()


@SETTINGS
@given(st.lists(wamp_messages(), min_size=1, max_size=6), st.sampled_from(sorted(CODECS)), st.sampled_from(("anonymous", "user", "fresh")))
def test_hostile_messages_never_raise_and_never_disturb_other_sessions(messages: list[Any], codec_name: str, how: str) -> None:
    """Arbitrary WAMP messages get answers or ABORT, never an exception, and other sessions still get their events."""
    run_messages(messages, codec_name, how)


@SETTINGS
@given(hello_messages(), st.lists(wamp_messages(), max_size=3), st.sampled_from(sorted(CODECS)))
# Found by the review (issue 11 #13): the ABORT naming the method could not be encoded.
@example([1, "telegraphy", {"authmethods": ["\ud800"]}], [], "json")
def test_hostile_hello_then_messages_never_raise(hello: Any, messages: list[Any], codec_name: str) -> None:
    """A HELLO with hostile realm or details, and whatever follows it, gets WELCOME, CHALLENGE or ABORT, never an exception."""
    run_messages([hello, *messages], codec_name, "fresh")


@SETTINGS
@given(payloads(), st.sampled_from(sorted(CODECS)), st.sampled_from((APP_TOPIC, *FUZZ_TOPICS)), st.booleans())
@example(math.nan, "msgpack", FUZZ_TOPICS[0], False)
@example("\ud800", "json", FUZZ_TOPICS[0], True)
@example({b"k": 1}, "msgpack", FUZZ_TOPICS[0], True)
def test_published_payloads_are_delivered_or_refused(payload: Any, codec_name: str, topic: str, as_event: bool) -> None:
    """A signed-in client's PUBLISH of any payload gets PUBLISHED or ERROR, and good subscribers of both serializers are unaffected."""
    args = [{"name": topic, "meta": {"event_type": "update"}, "data": payload}] if as_event else [payload]
    run_messages([[16, 1, {"acknowledge": True}, topic, args], [16, 2, {"acknowledge": True}, topic, [], {"k": payload}]], codec_name, "user")


@pytest.mark.parametrize("codec_name", sorted(CODECS))
def test_seeded_hostile_frames_never_raise(codec_name: str) -> None:
    """The gateway fuzzer's frames (raw garbage included) never raise in the core; good subscribers are unaffected."""
    fuzzer = HostileInput(seed=11)
    as_msgpack = codec_name == "msgpack"
    world = World()
    session = None
    for _ in range(600):
        if session is None or session.close_request is not None:
            session = hostile_session(world, CODECS[codec_name], fuzzer.rng.choice(("anonymous", "user", "user", "fresh")))
        frame = fuzzer.frame(as_msgpack)
        feed(world, session, None, frame.binary, raw=frame.data)
    world.check_unaffected()


# The WebSocket layer under the core (telegraphy/websocket.py, sans-I/O too) --------------------------


def _client_frame(fin: bool, opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 §5.2); the mask is fixed, which the server must not care about."""
    from wamp_fuzz import _masked_frame

    data = _masked_frame(payload, opcode)
    return data if fin else bytes((data[0] & 0x7F,)) + data[1:]


_ws_items = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=40), st.integers(1, 3)),
    st.tuples(st.just("binary"), st.binary(max_size=40), st.integers(1, 3)),
    st.tuples(st.just("ping"), st.binary(max_size=10), st.just(1)),
)
_ws_ends = st.sampled_from(("close", "close-empty", "invalid-utf8", "reserved-bits", "unmasked", "none"))


def _stream(items: list[tuple[str, Any, int]], end: str) -> tuple[bytes, list[bytes | str]]:
    """Return the bytes of ``items`` (messages in ``parts`` fragments, pings) then ``end``, and the messages they carry."""
    from telegraphy.websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT

    data = b""
    messages: list[bytes | str] = []
    for kind, payload, parts in items:
        if kind == "ping":
            data += _client_frame(True, OP_PING, payload)
            continue
        raw = payload.encode("utf-8") if kind == "text" else payload
        cuts = [len(raw) * i // parts for i in range(parts + 1)]
        for index in range(parts):
            opcode = (OP_TEXT if kind == "text" else OP_BINARY) if index == 0 else OP_CONTINUATION
            data += _client_frame(index == parts - 1, opcode, raw[cuts[index] : cuts[index + 1]])
        messages.append(payload)
    data += {
        "close": _client_frame(True, OP_CLOSE, b"\x03\xe8bye"),
        "close-empty": _client_frame(True, OP_CLOSE, b""),
        "invalid-utf8": _client_frame(True, OP_TEXT, b"\xe5\xa9C"),
        "reserved-bits": bytes((0xC1,)) + _client_frame(True, OP_TEXT, b"x")[1:],
        "unmasked": bytes((0x81, 0x01)) + b"x",
        "none": b"",
    }[end]
    return data, messages


@SETTINGS
@given(st.lists(_ws_items, max_size=5), _ws_ends, st.lists(st.integers(0, 10_000), max_size=6))
def test_websocket_messages_before_a_close_or_an_error_are_delivered_however_the_bytes_arrive(
    items: list[tuple[str, Any, int]], end: str, cuts: list[int]
) -> None:
    """Every complete message before a Close frame or a bad frame comes out, in order, wherever TCP split the stream (issue 11 #12)."""
    from telegraphy.websocket import ClosedByPeer, ClosedByProtocol, ServerConnection

    data, expected = _stream(items, end)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    connection = ServerConnection()
    got: list[bytes | str] = []
    for start, stop in zip(points, points[1:]):
        try:
            got.extend(m.data for m in connection.receive_data(data[start:stop]))
        except (ClosedByPeer, ClosedByProtocol) as exc:
            got.extend(m.data for m in getattr(exc, "messages", ()))
            break
    assert got == expected, f"stream split at {points}: got {got!r}, expected {expected!r}"


def test_zz_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Print one line: how much hostile input the core took in this run."""
    with capsys.disabled():
        print(
            f"\nfuzz core: {_summary['examples']} sessions, {_summary['messages']} hostile messages, "
            f"{_summary['aborts']} ABORT, {_summary['errors']} ERROR (failures, if any, are reported above)"
        )
