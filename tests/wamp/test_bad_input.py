"""Bad input from one peer: ABORT and a close for that session, nothing for the others."""

from __future__ import annotations

import msgpack
import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, Peers, open_channels

from telegraphy.wamp import CLOSE_PROTOCOL_ERROR, SessionState, WireCodec, uris
from telegraphy.wamp.messages import Abort, Event, Publish, Published

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
