"""The sans-I/O draft-76 ("Hixie-76") WebSocket server side: handshake answer and framing, no sockets."""

from __future__ import annotations

import pytest

from telegraphy.hixie76 import (
    CLOSE,
    Handshake,
    HandshakeError,
    ServerConnection,
    challenge_response,
    frame,
    key_part,
    offered,
)
from telegraphy.sockjs.errors import BadHandshake
from telegraphy.sockjs.http import hixie76_handshake
from telegraphy.websocket import ClosedByPeer, ClosedByProtocol, Message

KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"
REQUEST = {
    "Upgrade": "WebSocket",
    "Connection": "Upgrade",
    "Origin": "http://example.com",
    "Sec-WebSocket-Key1": KEY1,
    "Sec-WebSocket-Key2": KEY2,
}


# Handshake ---------------------------------------------------------------------------


def test_the_drafts_own_example() -> None:
    """draft-ietf-hybi-thewebsocketprotocol-00 §1.3: these keys and key3 '^n:ds[4U' give "8jKS'y:G*Co,Wxa-"."""
    assert challenge_response(KEY1, KEY2, b"^n:ds[4U") == b"8jKS'y:G*Co,Wxa-"


def test_the_sockjs_suites_vector() -> None:
    """sockjs-protocol's Websocket.test_haproxy: the same keys with key3 'aaaaaaaa'."""
    assert challenge_response(KEY1, KEY2, b"aaaaaaaa") == b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{"


def test_key_parts() -> None:
    """§5.2: the digits as a number, divided by the spaces."""
    assert key_part(KEY1) == 4146546015 // 5 == 829309203
    assert key_part(KEY2) == 1299853100 // 5 == 259970620
    for bad in ["12345", "abc def", "1  3", " " + "9" * 12, "1 " * 200]:
        with pytest.raises(HandshakeError):
            key_part(bad)  # no spaces, no digits, not a multiple, over 32 bits, too long


def test_offered_only_without_a_version() -> None:
    assert offered(REQUEST)
    assert not offered({**REQUEST, "Sec-WebSocket-Version": "13"})
    assert not offered({k: v for k, v in REQUEST.items() if k != "Sec-WebSocket-Key2"})


def test_handshake_head_then_answer() -> None:
    """The head (no Content-Length) can go out before key3; the answer follows it."""
    handshake = Handshake.from_request(REQUEST, "ws://example.com/demo")
    assert handshake.response_head() == (
        b"HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Origin: http://example.com\r\nSec-WebSocket-Location: ws://example.com/demo\r\n\r\n"
    )
    assert handshake.response(b"^n:ds[4U") == b"8jKS'y:G*Co,Wxa-"
    with pytest.raises(HandshakeError):
        handshake.response(b"short")
    sample = Handshake.from_request(REQUEST, "ws://example.com/demo", protocol="sample")
    assert b"\r\nSec-WebSocket-Protocol: sample\r\n\r\n" in sample.response_head()


@pytest.mark.parametrize(
    "change",
    [
        {"Upgrade": "h2c"},
        {"Connection": "keep-alive"},
        {"Origin": ""},
        {"Sec-WebSocket-Key1": "12345"},
        {"Sec-WebSocket-Key2": "1  3"},
        {"Origin": "http://a\r\nSet-Cookie: x=1"},
    ],
)
def test_bad_handshakes_are_400(change: dict[str, str]) -> None:
    with pytest.raises(HandshakeError):
        Handshake.from_request({**REQUEST, **change}, "ws://example.com/demo")
    with pytest.raises(BadHandshake) as info:
        hixie76_handshake({**REQUEST, **change}, "ws://example.com/demo")
    assert info.value.status == 400


# Framing -----------------------------------------------------------------------------


def test_text_frames_both_ways() -> None:
    assert frame("a[\"é\"]".encode()) == b'\x00a["\xc3\xa9"]\xff'
    connection = ServerConnection()
    assert connection.receive_data(b"\x00hello\xff\x00w\xc3\xa9rld\xff") == [Message("hello"), Message("wérld")]
    assert connection.receive_data(b"\x00\xff") == [Message("")]
    assert connection.data_to_send() == b""


def test_frames_split_anywhere() -> None:
    """Every split of a stream of frames gives the same messages."""
    stream = b"\x00one\xff\x80\x03abc\x00two\xff\x81\x81\x01" + b"z" * 129 + b"\x00three\xff"
    for step in (1, 2, 3, 7):
        connection = ServerConnection()
        messages = []
        for start in range(0, len(stream), step):
            messages += connection.receive_data(stream[start : start + step])
        assert messages == [Message("one"), Message("two"), Message("three")], step


def test_other_frame_types_are_discarded() -> None:
    """§5.3: length-prefixed frames and text frames of another type carry nothing."""
    connection = ServerConnection()
    assert connection.receive_data(b"\x80\x02xy\x01ignored\xff\xfe\x00\x00kept\xff") == [Message("kept")]


def test_peer_close_is_answered() -> None:
    connection = ServerConnection()
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(b"\x00last\xff" + CLOSE)
    assert info.value.code == 1000
    assert connection.data_to_send() == CLOSE and connection.closing


def test_our_close_then_the_peers() -> None:
    """After our closing frame, data is discarded and the peer's closing frame is not answered again."""
    connection = ServerConnection()
    connection.send_close(1000, "bye")
    connection.send_close()
    assert connection.data_to_send() == CLOSE
    assert connection.receive_data(b"\x00late\xff") == []
    with pytest.raises(ClosedByPeer):
        connection.receive_data(CLOSE)
    assert connection.data_to_send() == b""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\xc3\x28\xff", 1007),  # invalid UTF-8
        (b"\x00" + b"x" * 11, 1009),  # an unterminated text frame over the limit
        (b"\x00" + b"x" * 11 + b"\xff", 1009),
        (b"\x80\x0b", 1009),  # a length-prefixed frame over the limit, refused from its length
        (b"\x80\xff\xff\xff\xff\xff\x7f", 1009),
    ],
)
def test_errors_close(data: bytes, code: int) -> None:
    connection = ServerConnection(max_message_size=10)
    with pytest.raises(ClosedByProtocol) as info:
        connection.receive_data(data)
    assert info.value.code == code
    assert connection.data_to_send() == CLOSE


def test_message_at_the_limit_passes_in_pieces() -> None:
    connection = ServerConnection(max_message_size=10)
    assert connection.receive_data(b"\x00" + b"y" * 5) == []
    assert connection.receive_data(b"y" * 5) == []
    assert connection.receive_data(b"\xff") == [Message("y" * 10)]
