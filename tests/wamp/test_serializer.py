"""Serializers and wire codecs: encoding, framing, and refusing bytes that are not WAMP."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from telegraphy.wamp import JSON, MSGPACK, SERIALIZERS, ApplicationError, SerializationError, WireCodec, uris


def test_serializers_by_subprotocol() -> None:
    """wamp.2.json is JSON in text frames, wamp.2.msgpack is msgpack in binary frames."""
    assert list(SERIALIZERS) == ["wamp.2.json", "wamp.2.msgpack"]
    assert SERIALIZERS["wamp.2.json"] is JSON and not JSON.binary
    assert SERIALIZERS["wamp.2.msgpack"] is MSGPACK and MSGPACK.binary


def test_json_is_compact_utf8() -> None:
    """JSON is encoded without spaces and with non-ASCII text as UTF-8, not escapes."""
    assert JSON.encode([16, 1, {"a": "żółw"}, "t"]) == '[16,1,{"a":"żółw"},"t"]'.encode()


@pytest.mark.parametrize("data", ['[1,"r",{}]', b'[1,"r",{}]'])
def test_json_decodes_text_and_bytes(data: str | bytes) -> None:
    """JSON arrives as text frames, but a binary frame with UTF-8 JSON is accepted too."""
    assert JSON.decode(data) == [1, "r", {}]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("[1,", "invalid json: "),
        ("", "invalid json: "),
        ("[1] [2]", "invalid json: extra data"),
        (b"\xff\xfe[1]", "invalid json: not utf-8"),
        ("[" * 100_000 + "]" * 100_000, "invalid json: nested too deeply"),
    ],
)
def test_json_decode_errors(data: str | bytes, error: str) -> None:
    """Malformed JSON raises SerializationError, a protocol violation."""
    with pytest.raises(SerializationError) as info:
        JSON.decode(data)
    assert info.value.message.lower().startswith(error)
    assert info.value.uri == uris.PROTOCOL_VIOLATION


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_decode_refuses_non_standard_constants(constant: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259); they are refused, not passed on to subscribers."""
    with pytest.raises(SerializationError) as info:
        JSON.decode(f'[16,1,{{}},"t",[{constant}]]')
    assert constant in info.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never used byte
        b"\x93\x01",  # array of 3 with 1 element
        b"\x91\x01\x02",  # extra data after the message
        msgpack.packb({1: "int key"}),
        b"",
    ],
)
def test_msgpack_decode_errors(data: bytes) -> None:
    """Malformed msgpack raises SerializationError naming msgpack."""
    with pytest.raises(SerializationError) as info:
        MSGPACK.decode(data)
    assert info.value.message.startswith("invalid msgpack: ")


def test_msgpack_refuses_text_frames() -> None:
    """A text frame on a msgpack connection is a protocol violation."""
    with pytest.raises(SerializationError, match="got a text frame, expected binary"):
        MSGPACK.decode("[1]")


def test_msgpack_binary_payloads_round_trip() -> None:
    """msgpack keeps bytes as bytes and strings as str."""
    message = [16, 1, {}, "t", [b"\x00\x01", "text"]]
    assert MSGPACK.decode(MSGPACK.encode(message)) == message


def test_json_encodes_bytes_as_wamp_binary_strings() -> None:
    """Bytes (from a msgpack peer) are sent to JSON peers as "\\0" + base64 (WAMP's binary convention)."""
    assert JSON.decode(JSON.encode([36, 1, 2, {}, [b"\x00\x01\xff"]])) == [36, 1, 2, {}, ["\x00AAH/"]]


@pytest.mark.parametrize(
    ("serializer", "payload"),
    [
        (JSON, [float("nan")]),
        (JSON, {b"bytes key": 1}),
        (JSON, [msgpack.Timestamp(1, 0)]),
        (JSON, ["\ud800"]),
        (MSGPACK, ["\ud800"]),
        (MSGPACK, [2**64]),
        (MSGPACK, [-(2**63) - 1]),
    ],
)
def test_values_a_serializer_cannot_encode(serializer: Any, payload: Any) -> None:
    """A payload the serializer cannot represent raises ApplicationError invalid_argument naming it."""
    with pytest.raises(ApplicationError) as info:
        serializer.encode([36, 1, 2, {}, payload])
    assert info.value.uri == uris.INVALID_ARGUMENT
    assert info.value.message.startswith(f"payload cannot be sent as {serializer.name}: ")


def test_wire_codec_frames_the_encoded_payload() -> None:
    """A WireCodec applies its framing function to the serializer's bytes."""
    codec = WireCodec(JSON, lambda payload: b"<" + payload + b">")
    assert codec.encode([17, 1, 2]) == b"<[17,1,2]>"
    assert codec.decode("[17,1,2]") == [17, 1, 2]
    assert repr(codec) == "WireCodec(json)"
    assert WireCodec(MSGPACK).encode([17, 1, 2]) == MSGPACK.encode([17, 1, 2])


def test_msgpack_encoder_recovers_after_a_refusal() -> None:
    """A refused payload leaves nothing behind in the shared msgpack packer."""
    with pytest.raises(ApplicationError):
        MSGPACK.encode([36, 1, 2, {}, [1, 2, 3, 2**70]])
    assert MSGPACK.encode([17, 1, 2]) == msgpack.packb([17, 1, 2])


@pytest.mark.parametrize("serializer", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize(
    "event",
    [
        [36, 7, 99, {}],
        [36, 2**40, 5, {"topic": "a.b"}, [1, "x"]],
        [36, 1, 2, {}, [], {"k": [1.5, None]}],
        [36, 2**53, 2**53, {"offset": 3}, [{"data": {"ż": True}}], {"k": 1}],
    ],
    ids=["no-payload", "args", "kwargs", "large-ids"],
)
def test_spliced_event_equals_encoded_event(serializer: Any, event: list[Any]) -> None:
    """An EVENT spliced from its subscription id and a once-encoded tail is byte for byte the encoded EVENT."""
    tail = serializer.event_tail(event[2:])
    assert serializer.event(event[1], tail) == serializer.encode(event)
    assert serializer.decode(serializer.event(12345, tail)) == [36, 12345, *event[2:]]


def test_event_tail_refuses_what_the_serializer_cannot_carry() -> None:
    """event_tail raises ApplicationError invalid_argument like encode does."""
    for serializer, rest in [(JSON, [1, {}, [float("nan")]]), (MSGPACK, [1, {}, [2**70]])]:
        with pytest.raises(ApplicationError) as info:
            serializer.event_tail(rest)
        assert info.value.uri == uris.INVALID_ARGUMENT
