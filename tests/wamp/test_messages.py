"""WAMP messages: round trips through both serializers, and validation errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from telegraphy.wamp import JSON, MSGPACK, ProtocolViolation, uris
from telegraphy.wamp.messages import (
    MAX_ID,
    MESSAGE_TYPES,
    Abort,
    Authenticate,
    Call,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Invocation,
    Message,
    Publish,
    Published,
    Register,
    Registered,
    Result,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
    parse,
)

ARGS = [1, "two", 3.5, None, True, [4], {"five": 5}]
KWARGS = {"pk": 7, "status": "paid", "nested": {"list": [1, 2]}, "unicode": "żółw"}

#: Every message type, with every shape of its optional payload.
SAMPLES: list[Message] = [
    Hello("telegraphy", {"roles": {"subscriber": {}}, "authmethods": ["ticket", "anonymous"]}),
    Welcome(MAX_ID, {"realm": "telegraphy", "roles": {"broker": {}}}),
    Abort({"message": "no"}, uris.NO_SUCH_REALM),
    Challenge("wampcra", {"challenge": '{"nonce":"x"}'}),
    Authenticate("c2lnbmF0dXJl", {}),
    Goodbye({}, uris.GOODBYE_AND_OUT),
    Error(Call.TYPE, 5, {}, "com.example.error"),
    Error(Call.TYPE, 5, {}, "com.example.error", ARGS),
    Error(Call.TYPE, 5, {}, "com.example.error", [], KWARGS),
    Error(Invocation.TYPE, 5, {}, "com.example.error", ARGS, KWARGS),
    Publish(1, {}, "shop.Order"),
    Publish(2, {"acknowledge": True, "exclude_me": False}, "shop.Order", ARGS),
    Publish(3, {}, "shop.Order", [], KWARGS),
    Publish(MAX_ID, {}, "shop.Order", ARGS, KWARGS),
    Published(1, 2),
    Subscribe(1, {}, "shop.Order"),
    Subscribe(2, {"match": "prefix"}, "shop."),
    Subscribe(3, {"match": "wildcard"}, "shop..update"),
    Subscribed(1, 2),
    Unsubscribe(1, 2),
    Unsubscribed(1),
    Event(1, 2, {}),
    Event(1, 2, {"topic": "shop.Order"}, ARGS),
    Event(1, 2, {}, [], KWARGS),
    Event(1, 2, {}, ARGS, KWARGS),
    Call(1, {}, "com.example.add"),
    Call(1, {"disclose_me": True}, "com.example.add", [1, 2]),
    Call(1, {}, "com.example.add", [], {"a": 1}),
    Result(1, {}),
    Result(1, {}, [3]),
    Result(1, {}, [], {"sum": 3}),
    Register(1, {}, "com.example.add"),
    Registered(1, 2),
    Unregister(1, 2),
    Unregistered(1),
    Invocation(1, 2, {}),
    Invocation(1, 2, {"caller": 9}, [1, 2], {"a": 1}),
    Yield(1, {}),
    Yield(1, {}, ARGS, KWARGS),
    Yield(1, {}, [], KWARGS),
]


def _id(message: Message) -> str:
    return repr(message)[:60]


def test_samples_cover_every_message_type() -> None:
    """The round-trip samples include every registered message type."""
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES.values())
    assert len(MESSAGE_TYPES) == 22


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_parse_marshal_round_trip(message: Message) -> None:
    """parse(m.marshal()) gives back an equal message of the same type."""
    raw = message.marshal()
    assert raw[0] == message.TYPE
    assert parse(raw) == message
    assert type(message).parse(raw) == message


@pytest.mark.parametrize("serializer", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_serializer_round_trip(message: Message, serializer: Any) -> None:
    """Encoding with a serializer, decoding and parsing gives back an equal message."""
    data = serializer.encode(message.marshal())
    assert isinstance(data, bytes)
    assert parse(serializer.decode(data)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_json_and_msgpack_agree(message: Message) -> None:
    """A message decoded from JSON and from msgpack is the same list."""
    raw = message.marshal()
    assert JSON.decode(JSON.encode(raw)) == MSGPACK.decode(MSGPACK.encode(raw)) == raw


@pytest.mark.parametrize(
    ("message", "marshalled"),
    [
        (Publish(1, {}, "t"), [16, 1, {}, "t"]),
        (Publish(1, {}, "t", []), [16, 1, {}, "t"]),
        (Publish(1, {}, "t", [], {}), [16, 1, {}, "t"]),
        (Publish(1, {}, "t", None, {}), [16, 1, {}, "t"]),
        (Publish(1, {}, "t", [1]), [16, 1, {}, "t", [1]]),
        (Publish(1, {}, "t", [1], {}), [16, 1, {}, "t", [1]]),
        (Publish(1, {}, "t", None, {"k": 1}), [16, 1, {}, "t", [], {"k": 1}]),
        (Publish(1, {}, "t", [], {"k": 1}), [16, 1, {}, "t", [], {"k": 1}]),
        (Event(1, 2, {}, None, {"k": 1}), [36, 1, 2, {}, [], {"k": 1}]),
        (Result(1, {}, [], {}), [50, 1, {}]),
        (Error(48, 1, {}, "a.b", None, {"k": 1}), [8, 48, 1, {}, "a.b", [], {"k": 1}]),
    ],
)
def test_optional_payload_rules(message: Message, marshalled: list[Any]) -> None:
    """kwargs forces an args element ([] if none); empty args and kwargs are left out."""
    assert message.marshal() == marshalled


def test_parse_keeps_explicit_empty_args() -> None:
    """A received message with explicit empty args/kwargs parses them as given."""
    assert parse([16, 1, {}, "t", []]) == Publish(1, {}, "t", [], None)
    assert parse([16, 1, {}, "t", [], {}]) == Publish(1, {}, "t", [], {})


def _violation(raw: Any) -> str:
    with pytest.raises(ProtocolViolation) as info:
        parse(raw)
    assert info.value.uri == uris.PROTOCOL_VIOLATION
    return info.value.message


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([16, 1, {}, 5], "invalid type int for 'topic' in PUBLISH"),
        ([16, "1", {}, "t"], "invalid type str for 'request' in PUBLISH"),
        ([16, 1, [], "t"], "invalid type list for 'options' in PUBLISH"),
        ([16, 1, {}, "t", {"a": 1}], "invalid type dict for 'args' in PUBLISH"),
        ([16, 1, {}, "t", [], [1]], "invalid type list for 'kwargs' in PUBLISH"),
        ([16, 1, {}, "t", None], "invalid type null for 'args' in PUBLISH"),
        ([1, 7, {}], "invalid type int for 'realm' in HELLO"),
        ([1, "realm", None], "invalid type null for 'details' in HELLO"),
        ([5, None, {}], "invalid type null for 'signature' in AUTHENTICATE"),
        ([6, {}, 3], "invalid type int for 'reason' in GOODBYE"),
        ([8, "48", 1, {}, "a.b"], "invalid type str for 'request_type' in ERROR"),
        ([8, 68, 1, {}, "a b"], "invalid uri 'a b' for 'error' in ERROR"),
        ([32, 1, {}, ["t"]], "invalid type list for 'topic' in SUBSCRIBE"),
        ([34, 1, "2"], "invalid type str for 'subscription' in UNSUBSCRIBE"),
        ([48, 1, {}, 1.5], "invalid type float for 'procedure' in CALL"),
        ([64, 1, {}, True], "invalid type bool for 'procedure' in REGISTER"),
        ([70, 1, "options"], "invalid type str for 'options' in YIELD"),
    ],
)
def test_type_errors_name_field_and_message(raw: list[Any], error: str) -> None:
    """A field of the wrong type is reported with its type, its name and the message name."""
    assert _violation(raw) == error


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([16, 1, {}], "invalid length 3 for PUBLISH: expected 4 to 6 elements"),
        ([16, 1, {}, "t", [], {}, "extra"], "invalid length 7 for PUBLISH: expected 4 to 6 elements"),
        ([1, "realm"], "invalid length 2 for HELLO: expected 3 elements"),
        ([32, 1, {}, "t", "extra"], "invalid length 5 for SUBSCRIBE: expected 4 elements"),
        ([6], "invalid length 1 for GOODBYE: expected 3 to 5 elements"),
        ([70, 1], "invalid length 2 for YIELD: expected 3 to 5 elements"),
    ],
)
def test_wrong_arity(raw: list[Any], error: str) -> None:
    """A message with too few or too many elements is refused with the expected count."""
    assert _violation(raw) == error


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([99, 1, 2], "unknown message type 99"),
        ([7, {}], "unknown message type 7"),
        (["16", 1, {}, "t"], "invalid message type '16': expected an integer"),
        ([True, 1, {}, "t"], "invalid message type True: expected an integer"),
        ([], "invalid message: empty list"),
        ({"type": 16}, "invalid message: expected a list, got dict"),
        ("hello", "invalid message: expected a list, got str"),
        (None, "invalid message: expected a list, got null"),
        (16, "invalid message: expected a list, got int"),
    ],
)
def test_not_a_message(raw: Any, error: str) -> None:
    """Non-lists, empty lists and unknown or non-integer type codes are refused."""
    assert _violation(raw) == error


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, "invalid value -1 for 'request' in PUBLISH: ids are 0 to 2**53"),
        (MAX_ID + 1, f"invalid value {MAX_ID + 1} for 'request' in PUBLISH: ids are 0 to 2**53"),
        (2**64, f"invalid value {2**64} for 'request' in PUBLISH: ids are 0 to 2**53"),
        (True, "invalid type bool for 'request' in PUBLISH"),
        (1.0, "invalid type float for 'request' in PUBLISH"),
        (None, "invalid type null for 'request' in PUBLISH"),
    ],
)
def test_bad_ids(value: Any, error: str) -> None:
    """Ids must be integers from 0 to 2**53: negatives, larger values, bools and floats are refused."""
    assert _violation([16, value, {}, "t"]) == error


@pytest.mark.parametrize("value", [0, 1, MAX_ID])
def test_id_bounds_accepted(value: int) -> None:
    """0, 1 and 2**53 are valid ids."""
    assert parse([17, value, value]) == Published(value, value)


@pytest.mark.parametrize("topic", ["a", "shop.Order", "com.example-app.my_topic.1", "żółw.ü"])
def test_exact_uris_accepted(topic: str) -> None:
    """Loose URIs: non-empty dot-separated components without whitespace or '#'."""
    assert parse([32, 1, {}, topic]).topic == topic  # type: ignore[attr-defined]
    assert parse([16, 1, {}, topic]).topic == topic  # type: ignore[attr-defined]


@pytest.mark.parametrize("topic", ["", "a b", "a.b c", "a\tb", "a.#", "#", "a..b", ".a", "a.", "."])
def test_exact_uris_refused(topic: str) -> None:
    """Whitespace, '#' and empty components make an invalid exact URI."""
    assert _violation([16, 1, {}, topic]) == f"invalid uri {topic!r} for 'topic' in PUBLISH"
    assert _violation([32, 1, {}, topic]) == f"invalid uri {topic!r} for 'topic' in SUBSCRIBE"


@pytest.mark.parametrize("topic", ["a..c", "..c", "a..", "a.b.c", ".", "a.b."])
def test_wildcard_uris_allow_empty_components(topic: str) -> None:
    """A wildcard subscription may leave components empty."""
    assert parse([32, 1, {"match": "wildcard"}, topic]) == Subscribe(1, {"match": "wildcard"}, topic)


@pytest.mark.parametrize("topic", ["", "a b..c", "a.#", "a..c d"])
def test_wildcard_uris_refused(topic: str) -> None:
    """A wildcard pattern is still refused for whitespace, '#' or emptiness."""
    assert _violation([32, 1, {"match": "wildcard"}, topic]) == f"invalid uri {topic!r} for 'topic' in SUBSCRIBE"


@pytest.mark.parametrize("topic", ["shop.", "shop", "shop.Ord"])
def test_prefix_uris_accepted(topic: str) -> None:
    """A prefix subscription may end in a dot or in the middle of a component."""
    assert parse([32, 1, {"match": "prefix"}, topic]).topic == topic  # type: ignore[attr-defined]


@pytest.mark.parametrize("topic", ["shop .", "shop.#"])
def test_prefix_uris_refused(topic: str) -> None:
    """A prefix is refused for whitespace or '#'."""
    assert _violation([32, 1, {"match": "prefix"}, topic]) == f"invalid uri {topic!r} for 'topic' in SUBSCRIBE"


@pytest.mark.parametrize("match", ["regex", "", 5, None])
def test_invalid_match_option(match: Any) -> None:
    """SUBSCRIBE's options.match must be exact, prefix or wildcard."""
    assert _violation([32, 1, {"match": match}, "t"]) == f"invalid value {match!r} for 'options.match' in SUBSCRIBE"


def test_messages_are_frozen() -> None:
    """Message objects are immutable values."""
    message = Publish(1, {}, "t")
    with pytest.raises(AttributeError):
        message.topic = "other"  # type: ignore[misc]
    assert message == Publish(1, {}, "t") and message != Publish(2, {}, "t")
