"""Bad input from one peer: ABORT and a close for that session, nothing for the others."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, Peers, open_channels

from telegraphy.tornado_gateway.persistence import _decode, _encode
from telegraphy.wamp import CLOSE_PROTOCOL_ERROR, SessionState, WireCodec, uris
from telegraphy.wamp.channels import ChannelPolicy, parse_channels
from telegraphy.wamp.messages import Abort, Error, Event, Publish, Published, Welcome
from telegraphy.wamp.router import Publication
from telegraphy.wamp.serializer import MAX_DEPTH
from telegraphy.wamp.session import Missed, Resumption

#: (codec of the offending session, what it sends, start of the ABORT message)
BAD_INPUT = [
    (JSON_CODEC, "[16, 1, {}", "invalid json: "),
    (JSON_CODEC, "", "invalid json: "),
    (JSON_CODEC, b"\xc3\x28", "invalid json: not utf-8"),
    (JSON_CODEC, "[16,1,{},\"t\",[NaN]]", "invalid json: NaN is not valid json"),
    (JSON_CODEC, "{\"type\": 16}", "invalid message: expected a list, got dict"),
    (JSON_CODEC, "[]", "invalid message: empty list"),
    (JSON_CODEC, "[99, 1]", "unknown message type 99"),
    (JSON_CODEC, "[\"PUBLISH\", 1, {}, \"t\"]", "invalid message type 'PUBLISH': expected an integer"),
    (JSON_CODEC, "[16, 1, {}]", "invalid length 3 for PUBLISH: expected 4 to 6 elements"),
    (JSON_CODEC, "[16, 1, {}, 5]", "invalid type int for 'topic' in PUBLISH"),
    (JSON_CODEC, "[32, -1, {}, \"t\"]", "invalid value -1 for 'request' in SUBSCRIBE: ids are 0 to 2**53"),
    (JSON_CODEC, "[32, 1, {\"match\": \"regex\"}, \"t\"]", "invalid value 'regex' for 'options.match' in SUBSCRIBE"),
    (JSON_CODEC, "[32, 1, {}, \"bad topic\"]", "invalid uri 'bad topic' for 'topic' in SUBSCRIBE"),
    (JSON_CODEC, "[1, \"telegraphy\", {}]", "unexpected HELLO from a client in an established session"),
    (JSON_CODEC, "[8, 48, 1, {}, \"a.b\"]", "invalid value 48 for 'request_type' in ERROR"),
    (JSON_CODEC, "[" * 50_000 + "]" * 50_000, "invalid json: nested too deeply"),
    (MSGPACK_CODEC, b"\xc1\xc1\xc1", "invalid msgpack: "),
    (MSGPACK_CODEC, b"\x94\x10\x01", "invalid msgpack: "),
    (MSGPACK_CODEC, "[16, 1, {}, \"t\"]", "invalid msgpack: got a text frame, expected binary"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {}]), "invalid length 3 for PUBLISH"),
    (MSGPACK_CODEC, msgpack.packb([70000, 1]), "unknown message type 70000"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {}, b"binary.topic"]), "invalid type bytes for 'topic' in PUBLISH"),
    (MSGPACK_CODEC, msgpack.packb({"a": 1}), "invalid message: expected a list, got dict"),
    (MSGPACK_CODEC, msgpack.packb([32, 1, {}, "t"]) + b"\x00", "invalid msgpack: "),
    # A message nested 1,000 deep: the error quotes it in short (no deep repr).
    (MSGPACK_CODEC, b"\x91" * 1000 + b"\xc0", "invalid message type [[[...]]]: expected an integer"),
    (JSON_CODEC, "[" * 900 + "]" * 900, "invalid message type [[[...]]]: expected an integer"),
    # What a peer sent is quoted in short, never echoed whole.
    (JSON_CODEC, json.dumps([32, 1, {}, "bad topic " + "x" * 100_000]), "invalid uri 'bad topic xxx"),
    (JSON_CODEC, json.dumps(["P" * 100_000, 1]), "invalid message type 'PPPP"),
    # A lone surrogate in a topic, in options or a filter key: never stored, never echoed raw.
    (JSON_CODEC, '[32, 1, {}, "a.\\ud800"]', "invalid uri 'a.\\ud800' for 'topic' in SUBSCRIBE"),
    (JSON_CODEC, '[16, 1, {}, "a.\\udfff", []]', "invalid uri 'a.\\udfff' for 'topic' in PUBLISH"),
    (JSON_CODEC, '[32, 1, {"filter": {"\\ud800": 1}}, "t"]', "invalid value for 'options' in SUBSCRIBE: a map key with a lone utf-16 surrogate"),
    (JSON_CODEC, '[16, 1, {"x": "\\ud800"}, "t"]', "invalid value for 'options' in PUBLISH: a string with a lone utf-16 surrogate at options['x']"),
    (MSGPACK_CODEC, msgpack.packb([32, 1, {"filter": {"n": float("nan")}}, "t"]), "invalid value for 'options' in SUBSCRIBE: NaN at options['filter']['n']"),
    (MSGPACK_CODEC, msgpack.packb([32, 1, {"filter": {"n": b"\x00"}}, "t"]), "invalid value for 'options' in SUBSCRIBE: bytes at options['filter']['n']"),
]


def _id(case: tuple[WireCodec, str | bytes, str]) -> str:
    return f"{case[0].serializer.name}:{case[2][:40]}"


@pytest.mark.parametrize(("codec", "data", "reason"), BAD_INPUT, ids=[_id(c) for c in BAD_INPUT])
def test_bad_input_aborts_only_the_offender(codec: WireCodec, data: str | bytes, reason: str) -> None:
    """The offending session gets ABORT protocol_violation and close 1002; another session keeps receiving events."""
    peers = Peers(channels=open_channels())
    offender = peers.join(codec, user="offender")
    bystander = peers.join(JSON_CODEC)
    publisher = peers.join(MSGPACK_CODEC, user="publisher")
    peers.subscribe(offender, "chat.lobby")
    sub = peers.subscribe(bystander, "chat.lobby")
    errors = peers.router.stats.protocol_errors

    peers.send_raw(offender, data)

    abort = peers.read_one(offender)
    assert isinstance(abort, Abort)
    assert abort.reason == uris.PROTOCOL_VIOLATION
    assert abort.details["message"].startswith(reason), abort.details["message"]
    assert len(abort.details["message"]) < 200
    assert offender.state is SessionState.FAILED
    assert offender.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)
    assert peers.router.stats.protocol_errors == errors + 1
    assert peers.read(bystander) == []

    peers.send(publisher, Publish(1, {"acknowledge": True}, "chat.lobby", ["still here"]))
    assert isinstance(peers.read_one(publisher), Published)
    [event] = peers.read(bystander)
    assert isinstance(event, Event) and (event.subscription, event.args) == (sub, ["still here"])
    assert peers.read(offender) == []
    assert set(peers.router.sessions()) == {bystander, publisher}


def test_violation_from_a_callee_cancels_its_calls_only() -> None:
    """A callee aborted for bad input cancels its own pending calls; other sessions are untouched."""
    peers = Peers(channels=open_channels())
    callee, caller, bystander = peers.join(user="c"), peers.join(), peers.join()
    peers.send(callee, [64, 1, {}, "p"])
    peers.read(callee)
    peers.subscribe(bystander, "t")
    peers.send(caller, [48, 9, {}, "p"])
    peers.read(callee)
    peers.send_raw(callee, "garbage")
    [error] = peers.read(caller)
    assert (error.TYPE, error.error) == (8, uris.CANCELED)  # type: ignore[attr-defined]
    assert peers.read(bystander) == []
    peers.router.publish_event({"name": "t", "meta": {}, "data": {}})
    assert len(peers.read(bystander)) == 1


def test_garbage_before_hello() -> None:
    """Garbage as the very first message is a protocol violation too."""
    peers = Peers()
    session = peers.attach(MSGPACK_CODEC)
    peers.send_raw(session, b"\xff\xff")
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.PROTOCOL_VIOLATION
    assert session.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ({"authmethods": ["\ud800"]}, "invalid value for 'details' in HELLO: a string with a lone utf-16 surrogate"),
        ({"authmethods": ["x" * 100_000]}, "no acceptable auth method: asked xxx"),
        ({"authid": "\udc00"}, "invalid value for 'details' in HELLO: a string with a lone utf-16 surrogate"),
        ({"resume_token": "t", "resume_offsets": {"\ud800": ["e", 1]}}, "invalid value for 'details' in HELLO: a map key"),
    ],
    ids=["surrogate-authmethod", "huge-authmethod", "surrogate-authid", "surrogate-offset-topic"],
)
def test_hello_with_odd_details_gets_a_short_encodable_abort(details: dict[str, Any], reason: str) -> None:
    """A HELLO quoting a lone surrogate or a huge string gets an ABORT that encodes and stays under 200 characters."""
    peers = Peers()
    session = peers.attach()
    # json.dumps escapes the surrogate as the client's JSON would ("\\ud800").
    peers.send_raw(session, json.dumps([1, "telegraphy", details]))
    abort = peers.read_one(session)
    assert isinstance(abort, Abort)
    assert abort.details["message"].startswith(reason), abort.details["message"]
    assert len(abort.details["message"]) <= 200
    assert session.state is SessionState.FAILED and session.close_request is not None


def test_plausible_but_foreign_resume_token_gets_a_fresh_session() -> None:
    """A resume token no gateway issues (non-ASCII, or over 128 characters) is never looked up: a fresh session, resumed false."""
    peers = Peers()
    looked_up: list[str] = []
    peers.router.on_resume = lambda session, token, offsets: looked_up.append(token)
    for token in ("é" * 10, "t" * 10_000):
        session = peers.attach()
        peers.hello(session, resume_token=token)
        welcome = peers.read_one(session)
        assert isinstance(welcome, Welcome) and welcome.details["resumed"] is False
    assert looked_up == []


def publishing_peers() -> Peers:
    """Peers whose signed-in users may publish on topics under ``t`` (a declared channel)."""
    return Peers(channels=ChannelPolicy(parse_channels([{"topic": "t", "match": "prefix", "publish": "authenticated"}])))


#: (codec of the publisher, the PUBLISH as sent, the ERROR text): each is refused, nobody gets an event.
UNPORTABLE = [
    # The frame: [16, 1, {"acknowledge": true}, "t.resume", [NaN]] over msgpack.
    (MSGPACK_CODEC, bytes.fromhex("951001 81ab61636b6e6f776c6564676563 a8742e726573756d65 91cb7ff8000000000000".replace(" ", "")), "NaN at args[0]"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [float("inf")]]), "Infinity at args[0]"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [], {"p": [float("-inf")]}]), "Infinity at kwargs['p'][0]"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [b"\x00"]]), "bytes at args[0]"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [{"k": {b"key": 1}}]]), "a map key that is bytes at args[0]['k']"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [msgpack.Timestamp(1)]], datetime=False), "a msgpack timestamp at args[0]"),
    (MSGPACK_CODEC, msgpack.packb([16, 1, {"acknowledge": True}, "t.x", [msgpack.ExtType(5, b"ab")]]), "a msgpack extension type at args[0]"),
    (JSON_CODEC, '[16, 1, {"acknowledge": true}, "t.x", ["\\ud800"]]', "a string with a lone utf-16 surrogate at args[0]"),
    (JSON_CODEC, '[16, 1, {"acknowledge": true}, "t.x", [{"\\udfff": 1}]]', "a map key with a lone utf-16 surrogate at args[0]"),
    (JSON_CODEC, '[16, 1, {"acknowledge": true}, "t.x", [18446744073709551616]]', "an integer that does not fit in 64 bits at args[0]"),
    (JSON_CODEC, '[16, 1, {"acknowledge": true}, "t.x", ' + "[" * 70 + "]" * 70 + "]", f"lists and maps nested over {MAX_DEPTH} deep at args"),
    (MSGPACK_CODEC, b"\x95\x10\x01\x81\xabacknowledge\xc3\xa3t.x" + b"\x91" * 500 + b"\xc0", f"lists and maps nested over {MAX_DEPTH} deep at args"),
]


@pytest.mark.parametrize(("codec", "data", "problem"), UNPORTABLE, ids=[c[2].split(" at ")[0] + f"-{c[0].serializer.name}" for c in UNPORTABLE])
def test_payload_not_every_serializer_carries_is_refused_at_publish(codec: WireCodec, data: str | bytes, problem: str) -> None:
    """A PUBLISH whose payload some serializer (or the store) cannot carry gets ERROR invalid_argument naming the problem; nothing is sequenced or delivered."""
    peers = publishing_peers()
    sequenced: list[Publication] = []
    peers.router.sequencer = sequenced.append
    publisher = peers.join(codec, user="p")
    subscribers = [peers.join(JSON_CODEC), peers.join(MSGPACK_CODEC)]
    for subscriber in subscribers:
        peers.subscribe(subscriber, "t.x")
        peers.subscribe(subscriber, "t.resume", request=2)
    peers.send_raw(publisher, data)
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and (error.request_type, error.request) == (16, 1)
    assert error.error == uris.INVALID_ARGUMENT
    assert error.args is not None and error.args[0].startswith("payload cannot be delivered to every client: " + problem), error.args
    assert len(error.args[0]) <= 200
    assert sequenced == []
    assert [peers.read(s) for s in subscribers] == [[], []]
    # The publisher's session goes on.
    peers.send(publisher, Publish(2, {"acknowledge": True}, "t.x", ["fine"]))
    assert isinstance(peers.read_one(publisher), Published)
    assert len(sequenced) == 1


def test_unacknowledged_bad_publish_is_dropped_silently() -> None:
    """Without acknowledge, a refused PUBLISH gets no answer (only acknowledged ones are answered) and reaches nobody."""
    peers = publishing_peers()
    publisher = peers.join(MSGPACK_CODEC, user="p")
    subscriber = peers.join()
    peers.subscribe(subscriber, "t")
    peers.send(publisher, Publish(1, {}, "t", [float("nan")]))
    assert peers.read(publisher) == [] and peers.read(subscriber) == []
    assert publisher.state is SessionState.ESTABLISHED


def test_replay_skips_an_event_the_peer_cannot_receive_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A missed event that cannot be encoded (a NaN stored before payloads were checked) is skipped and logged once; the later ones are replayed."""
    peers = publishing_peers()
    peers.router.on_resume = lambda session, token, offsets: None
    session = peers.attach(JSON_CODEC)
    peers.hello(session, resume_token="tok", resume_offsets={"t": ["e", 0]})
    missed = [
        Missed("t", 1, {"offset": 1}, [{"n": 1}], None),
        Missed("t", 2, {"offset": 2}, [float("nan")], None),
        Missed("t", 3, {"offset": 3}, [{"n": 3}], {"x": float("inf")}),
        Missed("t", 4, {"offset": 4}, [{"n": 4}], None),
    ]
    with caplog.at_level(logging.WARNING, "telegraphy.wamp"):
        session.complete_resume(Resumption("tok", [("t", "exact", {})], {"t": True}, {}, missed))
    welcome, *events = peers.read(session)
    assert isinstance(welcome, Welcome) and welcome.details["recovered"] == {"t": True}
    assert [(e.publication, e.args) for e in events if isinstance(e, Event)] == [(1, [{"n": 1}]), (4, [{"n": 4}])]
    assert len(events) == 2
    [record] = [r for r in caplog.records if "could not be replayed" in r.getMessage()]
    assert "skipped 2 stored event(s)" in record.getMessage() and record.exc_info is None
    assert session.state is SessionState.ESTABLISHED


def test_an_internal_error_ends_only_that_session(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A bug of ours met while handling a message gives that peer ABORT telegraphy.error.internal and close 1011, not an exception."""
    peers = publishing_peers()
    victim, bystander = peers.join(user="v"), peers.join()
    peers.subscribe(bystander, "t")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("internal detail")

    monkeypatch.setattr(victim.realm.broker, "subscribe", broken)  # type: ignore[union-attr]
    with caplog.at_level(logging.ERROR, "telegraphy.wamp"):
        peers.send(victim, [32, 5, {}, "u"])
    abort = peers.read_one(victim)
    assert isinstance(abort, Abort) and abort.reason == "telegraphy.error.internal"
    assert "internal detail" not in abort.details["message"]
    assert victim.close_request == (1011, "telegraphy.error.internal")
    monkeypatch.undo()
    peers.router.publish_event({"name": "t", "meta": {}, "data": {}})
    assert len(peers.read(bystander)) == 1


# Property: any payload is either refused with ERROR or stored, delivered and replayed unchanged.

_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _ANY_TEXT
    | st.binary(max_size=4)
    | st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1))
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3))
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_ANY_TEXT | st.binary(max_size=2), children, max_size=4),
    max_leaves=20,
)


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _wire(codec: WireCodec, message: list[Any]) -> str | bytes | None:
    """The PUBLISH as a client would send it in ``codec``'s serialization, or ``None`` if it cannot express it."""
    try:
        if codec is MSGPACK_CODEC:
            return msgpack.packb(message, use_bin_type=True, datetime=False)
        return json.dumps(message, allow_nan=True, ensure_ascii=True)
    except (TypeError, ValueError, OverflowError):
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([JSON_CODEC, MSGPACK_CODEC]),
    st.lists(_VALUES, max_size=3) | st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3).map(lambda d: [_nested(d)]),
    st.none() | st.dictionaries(_ANY_TEXT, _VALUES, max_size=3),
)
def test_any_payload_is_refused_or_delivered_stored_and_replayed(codec: WireCodec, args: list[Any], kwargs: dict[str, Any] | None) -> None:
    """Whatever a client publishes in either serialization: ERROR invalid_argument (or ABORT for what cannot be decoded), or delivered to JSON and msgpack peers, stored and replayed unchanged."""
    message: list[Any] = [16, 1, {"acknowledge": True}, "t", args] + ([kwargs] if kwargs is not None else [])
    data = _wire(codec, message)
    if data is None:
        return
    peers = publishing_peers()
    sequenced: list[Publication] = []
    peers.router.sequencer = sequenced.append
    publisher = peers.join(codec, user="p")
    subscribers = [peers.join(JSON_CODEC), peers.join(MSGPACK_CODEC)]
    for subscriber in subscribers:
        peers.subscribe(subscriber, "t")
    peers.send_raw(publisher, data)
    [answer] = peers.read(publisher)
    if isinstance(answer, Abort):
        # Not a message in this serialization at all (NaN in JSON text, integer map keys in msgpack).
        assert answer.reason == uris.PROTOCOL_VIOLATION and len(answer.details["message"]) <= 200
        assert sequenced == []
        return
    if isinstance(answer, Error):
        assert answer.error == uris.INVALID_ARGUMENT and answer.args is not None
        assert answer.args[0].startswith("payload cannot be delivered to every client: ") and len(answer.args[0]) <= 200
        assert sequenced == [] and [peers.read(s) for s in subscribers] == [[], []]
        return
    assert isinstance(answer, Published)
    [publication] = sequenced
    decoded = codec.decode(data)
    expected_args, expected_kwargs = decoded[4] or None, decoded[5] if len(decoded) > 5 and decoded[5] else None
    stored = _encode(publication)  # must not raise
    peers.router.deliver(publication, ("e", 1))
    for subscriber in subscribers:
        [event] = peers.read(subscriber)
        assert isinstance(event, Event)
        assert (event.args or None, event.kwargs or None) == (expected_args, expected_kwargs)
    # Replayed from its stored form to a resuming peer of either serialization.
    for replay_codec in (JSON_CODEC, MSGPACK_CODEC):
        peers.router.on_resume = lambda session, token, offsets: None
        resuming = peers.attach(replay_codec)
        peers.hello(resuming, resume_token="tok", resume_offsets={"t": ["e", 0]})
        # The id it had before: the stored event excludes its publisher, so replay judges by it.
        former = subscribers[0].id
        resuming.complete_resume(
            Resumption("tok", [("t", "exact", {})], {"t": True}, {}, [_decode("t", "e", 1, stored)], session_id=former)
        )
        welcome, event = peers.read(resuming)
        assert isinstance(welcome, Welcome) and isinstance(event, Event)
        assert (event.args or None, event.kwargs or None) == (expected_args, expected_kwargs)
