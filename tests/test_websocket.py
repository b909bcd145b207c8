"""The sans-I/O WebSocket server connection: masked client frames in, messages and control frames out."""

from __future__ import annotations

import os
import struct

import pytest

from telegraphy.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PING,
    ClosedByPeer,
    ClosedByProtocol,
    Message,
    ServerConnection,
    accept_key,
    close_frame,
    frame,
)


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True, mask: bytes | None = None) -> bytes:
    """Build one client frame (RFC 6455 §5.2), masked unless told otherwise, shortest length encoding."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head = bytes((first, bit | length))
    elif length < 65536:
        head = struct.pack("!BBH", first, bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, bit | 127, length)
    if not masked:
        return head + payload
    mask = os.urandom(4) if mask is None else mask
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def client_close(code: int | None = None, reason: bytes = b"") -> bytes:
    """Build a masked client close frame; ``None`` for an empty payload."""
    return client_frame(OP_CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


def parse_server_frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    """Split unmasked server bytes into (fin, opcode, payload) frames; fail on leftovers."""
    frames = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert not second & 0x80, "server frames are never masked"
        length = second & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        assert pos + length <= len(data), "truncated server frame"
        frames.append((bool(first & 0x80), first & 0x0F, data[pos : pos + length]))
        pos += length
    return frames


def close_code(data: bytes) -> int | None:
    """Return the code of the single close frame in ``data`` (``None`` for an empty close)."""
    frames = parse_server_frames(data)
    assert len(frames) == 1 and frames[0][:2] == (True, OP_CLOSE), frames
    payload = frames[0][2]
    return struct.unpack_from("!H", payload)[0] if payload else None


def protocol_error(connection: ServerConnection, data: bytes) -> ClosedByProtocol:
    """Feed ``data``, expect ClosedByProtocol, check the queued close frame carries its code."""
    with pytest.raises(ClosedByProtocol) as info:
        connection.receive_data(data)
    assert connection.closing
    assert close_code(connection.data_to_send()) == info.value.code
    return info.value


# Single messages ---------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 1000, 65535, 65536, 70000], ids=lambda n: f"{n}B")
def test_single_text_message(length: int) -> None:
    """A final text frame of any length encoding (7-bit, 16-bit, 64-bit) is one str message."""
    connection = ServerConnection()
    text = ("é" * length)[: length // 2] + "x" * (length - 2 * (length // 2))
    assert connection.receive_data(client_frame(OP_TEXT, text.encode())) == [Message(text)]
    assert connection.data_to_send() == b""
    assert not connection.closing


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 100_000], ids=lambda n: f"{n}B")
def test_single_binary_message(length: int) -> None:
    """A final binary frame of any length encoding is one bytes message, unmasked correctly."""
    connection = ServerConnection()
    payload = os.urandom(length)
    messages = connection.receive_data(client_frame(OP_BINARY, payload))
    assert messages == [Message(payload)]
    assert isinstance(messages[0].data, bytes)


def test_mask_with_zero_bytes_and_odd_lengths() -> None:
    """Unmasking is right for every payload length modulo 4 and for masks with zero bytes."""
    connection = ServerConnection()
    for mask in (b"\x00\x00\x00\x00", b"\xff\x00\xff\x00", b"\x01\x02\x03\x04"):
        for length in range(9):
            payload = bytes(range(256))[:length]
            assert connection.receive_data(client_frame(OP_BINARY, payload, mask=mask)) == [Message(payload)]


def test_several_frames_in_one_chunk() -> None:
    """Several frames delivered together come out as messages in order, pings answered in place."""
    connection = ServerConnection()
    chunk = (
        client_frame(OP_TEXT, b"one")
        + client_frame(OP_BINARY, b"\x00two")
        + client_frame(OP_PING, b"p")
        + client_frame(OP_TEXT, b"thr", fin=False)
        + client_frame(OP_CONTINUATION, b"ee")
        + client_frame(OP_PONG, b"ignored")
        + client_frame(OP_TEXT, b"four")
    )
    assert connection.receive_data(chunk) == [Message("one"), Message(b"\x00two"), Message("three"), Message("four")]
    assert parse_server_frames(connection.data_to_send()) == [(True, OP_PONG, b"p")]


def test_frames_then_partial_frame_in_one_chunk() -> None:
    """A chunk ending mid-frame returns the complete messages and keeps the rest for later."""
    connection = ServerConnection()
    second = client_frame(OP_TEXT, b"second" * 50)
    assert connection.receive_data(client_frame(OP_TEXT, b"first") + second[:7]) == [Message("first")]
    assert connection.receive_data(second[7:]) == [Message("second" * 50)]


# Fragmentation and splitting -----------------------------------------------------


def test_fragmented_text_message() -> None:
    """A text frame without FIN then continuation frames make one message; a split UTF-8 character is fine."""
    connection = ServerConnection()
    encoded = "héllo wörld €".encode()
    assert connection.receive_data(client_frame(OP_TEXT, encoded[:2], fin=False)) == []
    assert connection.receive_data(client_frame(OP_CONTINUATION, encoded[2:9], fin=False)) == []
    assert connection.receive_data(client_frame(OP_CONTINUATION, b"", fin=False)) == []
    assert connection.receive_data(client_frame(OP_CONTINUATION, encoded[9:])) == [Message("héllo wörld €")]
    # The connection is ready for the next message.
    assert connection.receive_data(client_frame(OP_TEXT, b"next")) == [Message("next")]


def test_fragmented_binary_message() -> None:
    """A fragmented binary message is reassembled as bytes."""
    connection = ServerConnection()
    payload = os.urandom(70_000)
    chunk = client_frame(OP_BINARY, payload[:10], fin=False) + client_frame(OP_CONTINUATION, payload[10:300], fin=False)
    chunk += client_frame(OP_CONTINUATION, payload[300:])
    assert connection.receive_data(chunk) == [Message(payload)]


def test_ping_between_fragments() -> None:
    """A ping between the fragments of a message is answered with a pong of the same payload; the message completes."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_TEXT, b"frag", fin=False)) == []
    assert connection.receive_data(client_frame(OP_PING, b"are you there?")) == []
    assert parse_server_frames(connection.data_to_send()) == [(True, OP_PONG, b"are you there?")]
    assert connection.receive_data(client_frame(OP_PONG, b"unsolicited")) == []
    assert connection.receive_data(client_frame(OP_CONTINUATION, b"ments")) == [Message("fragments")]
    assert connection.data_to_send() == b""


def test_message_fed_one_byte_at_a_time() -> None:
    """Frames split at every byte boundary, of every length encoding, still produce the same messages."""
    connection = ServerConnection()
    stream = (
        client_frame(OP_TEXT, "ünïcode".encode())
        + client_frame(OP_BINARY, bytes(range(200)))
        + client_frame(OP_PING, b"x")
        + client_frame(OP_TEXT, b"a" * 300, fin=False)
        + client_frame(OP_CONTINUATION, b"b" * 65536)
    )
    messages: list[Message] = []
    pongs = b""
    for i in range(len(stream)):
        messages += connection.receive_data(stream[i : i + 1])
        pongs += connection.data_to_send()
    assert messages == [Message("ünïcode"), Message(bytes(range(200))), Message("a" * 300 + "b" * 65536)]
    assert parse_server_frames(pongs) == [(True, OP_PONG, b"x")]


def test_every_split_point_of_a_chunk() -> None:
    """A chunk cut in two at any byte gives the same messages as the whole chunk."""
    stream = client_frame(OP_TEXT, b"hello") + client_frame(OP_BINARY, b"\x01" * 130) + client_frame(OP_TEXT, b"bye")
    for cut in range(len(stream) + 1):
        connection = ServerConnection()
        messages = connection.receive_data(stream[:cut]) + connection.receive_data(stream[cut:])
        assert messages == [Message("hello"), Message(b"\x01" * 130), Message("bye")], cut


# Protocol errors -----------------------------------------------------------------


def test_unmasked_frame() -> None:
    """An unmasked client frame is a protocol error: 1002 and a close frame queued."""
    connection = ServerConnection()
    error = protocol_error(connection, client_frame(OP_TEXT, b"hello", masked=False))
    assert error.code == 1002
    assert "masked" in error.reason


@pytest.mark.parametrize("rsv", [1, 2, 4, 7], ids=["rsv1", "rsv2", "rsv3", "all"])
def test_reserved_bits(rsv: int) -> None:
    """Any RSV bit set without a negotiated extension is a protocol error (1002)."""
    assert protocol_error(ServerConnection(), client_frame(OP_TEXT, b"x", rsv=rsv)).code == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_control_frame_too_long(opcode: int) -> None:
    """A control frame with more than 125 bytes of payload is a protocol error (1002)."""
    assert protocol_error(ServerConnection(), client_frame(opcode, b"\x03\xe8" + b"x" * 124)).code == 1002


def test_control_frame_of_125_bytes() -> None:
    """A ping of exactly 125 bytes is fine and answered in full."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_PING, b"p" * 125)) == []
    assert parse_server_frames(connection.data_to_send()) == [(True, OP_PONG, b"p" * 125)]


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_control_frame_not_final(opcode: int) -> None:
    """A fragmented control frame is a protocol error (1002)."""
    assert protocol_error(ServerConnection(), client_frame(opcode, b"", fin=False)).code == 1002


@pytest.mark.parametrize("fin", [True, False], ids=["final", "not-final"])
def test_continuation_without_start(fin: bool) -> None:
    """A continuation frame with no message to continue is a protocol error (1002)."""
    assert protocol_error(ServerConnection(), client_frame(OP_CONTINUATION, b"x", fin=fin)).code == 1002


def test_continuation_after_a_complete_message() -> None:
    """A continuation frame after a finished message has nothing to continue (1002)."""
    connection = ServerConnection()
    chunk = client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_CONTINUATION, b"b")
    assert connection.receive_data(chunk) == [Message("ab")]
    assert protocol_error(connection, client_frame(OP_CONTINUATION, b"c")).code == 1002


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("fin", [True, False], ids=["final", "not-final"])
def test_new_message_during_fragmented_message(opcode: int, fin: bool) -> None:
    """A new data frame before the fragmented message ended is a protocol error (1002)."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_TEXT, b"start", fin=False)) == []
    assert protocol_error(connection, client_frame(opcode, b"other", fin=fin)).code == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF], ids=hex)
def test_unknown_opcode(opcode: int) -> None:
    """A reserved opcode, data or control, is a protocol error (1002)."""
    error = protocol_error(ServerConnection(), client_frame(opcode, b""))
    assert error.code == 1002
    assert "opcode" in error.reason


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"caf\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"ok \xf4\x90\x80\x80"],
    ids=["invalid-byte", "truncated", "surrogate", "overlong", "above-max"],
)
def test_invalid_utf8_text(payload: bytes) -> None:
    """A text message that is not UTF-8 is closed with 1007 (RFC 6455 §8.1)."""
    assert protocol_error(ServerConnection(), client_frame(OP_TEXT, payload)).code == 1007


def test_invalid_utf8_across_fragments() -> None:
    """A fragmented text message ending in half a character is closed with 1007."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_TEXT, b"caf", fin=False)) == []
    assert protocol_error(connection, client_frame(OP_CONTINUATION, b"\xc3")).code == 1007


def test_invalid_utf8_in_a_first_fragment_fails_at_once() -> None:
    """Invalid UTF-8 in a fragment closes with 1007 when it arrives, not when the message ends (RFC 6455 §8.1, fail fast)."""
    connection = ServerConnection()
    assert protocol_error(connection, client_frame(OP_TEXT, b"ok\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xb5\xed\xa0\x80", fin=False)).code == 1007


def test_a_character_split_between_fragments_is_fine() -> None:
    """A UTF-8 character split across two fragments is valid: the check carries the half character over."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_TEXT, "caf\u00e9".encode()[:4], fin=False)) == []
    assert connection.receive_data(client_frame(OP_CONTINUATION, "caf\u00e9".encode()[4:])) == [Message("caf\u00e9")]


def test_invalid_utf8_in_binary_is_fine() -> None:
    """Binary messages are not checked for UTF-8."""
    assert ServerConnection().receive_data(client_frame(OP_BINARY, b"\xff\xfe")) == [Message(b"\xff\xfe")]


def test_message_too_big_single_frame() -> None:
    """A frame over max_message_size closes with 1009; exactly the limit is accepted."""
    connection = ServerConnection(max_message_size=100)
    assert connection.receive_data(client_frame(OP_BINARY, b"x" * 100)) == [Message(b"x" * 100)]
    assert protocol_error(connection, client_frame(OP_BINARY, b"x" * 101)).code == 1009


def test_message_too_big_refused_from_the_header() -> None:
    """An oversized frame is refused as soon as its header arrives, without buffering its payload."""
    connection = ServerConnection(max_message_size=1000)
    header = client_frame(OP_TEXT, b"y" * 70_000)[:14]
    assert protocol_error(connection, header).code == 1009


def test_message_too_big_across_fragments() -> None:
    """Fragments each under the limit but over it together close with 1009."""
    connection = ServerConnection(max_message_size=100)
    assert connection.receive_data(client_frame(OP_TEXT, b"a" * 60, fin=False)) == []
    assert protocol_error(connection, client_frame(OP_CONTINUATION, b"b" * 41)).code == 1009


def test_fragments_at_the_limit() -> None:
    """Fragments adding up to exactly max_message_size are accepted, and the count restarts per message."""
    connection = ServerConnection(max_message_size=100)
    for _ in range(3):
        chunk = client_frame(OP_BINARY, b"a" * 50, fin=False) + client_frame(OP_CONTINUATION, b"b" * 50)
        assert connection.receive_data(chunk) == [Message(b"a" * 50 + b"b" * 50)]


def test_error_discards_the_rest_of_the_chunk() -> None:
    """Frames after a protocol error in the same chunk are not returned and pings in them not answered."""
    connection = ServerConnection()
    chunk = client_frame(OP_TEXT, b"x", masked=False) + client_frame(OP_PING, b"p") + client_frame(OP_TEXT, b"y")
    protocol_error(connection, chunk)
    assert connection.data_to_send() == b""


# Closing -------------------------------------------------------------------------


def test_close_empty_payload() -> None:
    """An empty close frame is ClosedByPeer(1000) and an empty close frame is echoed."""
    connection = ServerConnection()
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(client_close())
    assert (info.value.code, info.value.reason) == (1000, "")
    assert connection.closing
    assert parse_server_frames(connection.data_to_send()) == [(True, OP_CLOSE, b"")]


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1008, 1011, 1014, 3000, 4999])
def test_close_with_code_and_reason(code: int) -> None:
    """A close frame's code and reason are reported, and the code is echoed back."""
    connection = ServerConnection()
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(client_close(code, "au revoir ✓".encode()))
    assert (info.value.code, info.value.reason) == (code, "au revoir ✓")
    assert close_code(connection.data_to_send()) == code


def test_close_after_messages_in_one_chunk() -> None:
    """A close frame after data frames in one chunk ends the connection and hands over the messages before it (RFC 6455 §5.5.1)."""
    connection = ServerConnection()
    chunk = client_frame(OP_TEXT, b"last words") + client_frame(OP_BINARY, b"\x01") + client_close(1001)
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(chunk)
    assert info.value.messages == [Message("last words"), Message(b"\x01")]
    assert close_code(connection.data_to_send()) == 1001


def test_close_after_a_fragmented_message_in_one_chunk() -> None:
    """A message completed by its last fragment just before the close frame is handed over; an unfinished one is not."""
    connection = ServerConnection()
    chunk = (
        client_frame(OP_TEXT, b"com", fin=False)
        + client_frame(OP_CONTINUATION, b"plete")
        + client_frame(OP_TEXT, b"half", fin=False)
        + client_close(1000)
    )
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(chunk)
    assert info.value.messages == [Message("complete")]


def test_close_alone_hands_over_no_message() -> None:
    """A close frame with nothing before it in the chunk carries no messages (those of earlier chunks were returned then)."""
    connection = ServerConnection()
    assert connection.receive_data(client_frame(OP_TEXT, b"earlier")) == [Message("earlier")]
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(client_close(1000))
    assert info.value.messages == []


def test_messages_before_a_protocol_error_are_handed_over() -> None:
    """Complete messages before a violation in the same chunk come with ClosedByProtocol; nothing after it does."""
    connection = ServerConnection()
    chunk = client_frame(OP_TEXT, b"fine") + client_frame(OP_TEXT, b"x", masked=False) + client_frame(OP_TEXT, b"after")
    with pytest.raises(ClosedByProtocol) as info:
        connection.receive_data(chunk)
    assert info.value.code == 1002
    assert info.value.messages == [Message("fine")]


def test_close_one_byte_payload() -> None:
    """A close frame with a 1-byte payload is a protocol error (1002)."""
    assert protocol_error(ServerConnection(), client_frame(OP_CLOSE, b"\x03")).code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_invalid_code(code: int) -> None:
    """A close code a peer may not send (reserved, unassigned, out of range) is a protocol error (1002)."""
    error = protocol_error(ServerConnection(), client_close(code))
    assert error.code == 1002
    assert str(code) in error.reason


def test_close_invalid_utf8_reason() -> None:
    """A close reason that is not UTF-8 is closed with 1007."""
    assert protocol_error(ServerConnection(), client_close(1000, b"bad \xff")).code == 1007


def test_send_close_then_data_ignored() -> None:
    """After send_close, data frames are discarded and pings go unanswered until the peer's close arrives."""
    connection = ServerConnection()
    connection.send_close(1001, "going away")
    assert close_code(connection.data_to_send()) == 1001
    chunk = client_frame(OP_TEXT, b"late") + client_frame(OP_PING, b"p") + client_frame(OP_BINARY, b"x", fin=False)
    chunk += client_frame(OP_CONTINUATION, b"y")
    assert connection.receive_data(chunk) == []
    assert connection.data_to_send() == b""
    with pytest.raises(ClosedByPeer) as info:
        connection.receive_data(client_close(1000))
    assert info.value.code == 1000
    assert connection.data_to_send() == b"", "the closing handshake is complete: no second close frame"


def test_send_close_once() -> None:
    """send_close queues one close frame however often it is called."""
    connection = ServerConnection()
    connection.send_close(1000)
    connection.send_close(1002, "again")
    assert close_code(connection.data_to_send()) == 1000


def test_protocol_error_after_send_close() -> None:
    """A protocol error after our close frame queues no second close frame."""
    connection = ServerConnection()
    connection.send_close(1000)
    connection.data_to_send()
    with pytest.raises(ClosedByProtocol):
        connection.receive_data(client_frame(OP_TEXT, b"x", masked=False))
    assert connection.data_to_send() == b""


# Server frames and the handshake key -----------------------------------------------


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_frame_length_encodings(length: int) -> None:
    """frame() writes one final unmasked frame with the shortest length encoding."""
    payload = b"z" * length
    data = frame(OP_BINARY, payload)
    assert parse_server_frames(data) == [(True, OP_BINARY, payload)]
    assert len(data) == len(payload) + (2 if length < 126 else 4 if length < 65536 else 10)


def test_ping_constant() -> None:
    """PING is an empty final ping frame."""
    assert parse_server_frames(PING) == [(True, OP_PING, b"")]


def test_close_frame_code_and_reason() -> None:
    """close_frame() carries the code and the UTF-8 reason."""
    assert parse_server_frames(close_frame(1008, "ping timeout")) == [(True, OP_CLOSE, b"\x03\xf0ping timeout")]
    assert parse_server_frames(close_frame(1000)) == [(True, OP_CLOSE, b"\x03\xe8")]


@pytest.mark.parametrize("char", ["x", "é", "€", "😀"], ids=["1-byte", "2-byte", "3-byte", "4-byte"])
def test_close_frame_truncates_long_reason(char: str) -> None:
    """A long reason is cut to fit 125 bytes of payload without splitting a UTF-8 character."""
    reason = char * 200
    (fin, opcode, payload) = parse_server_frames(close_frame(1011, reason))[0]
    assert (fin, opcode) == (True, OP_CLOSE)
    assert len(payload) <= 125
    assert payload[:2] == b"\x03\xf3"
    kept = payload[2:].decode("utf-8")  # raises if a character was split
    assert reason.startswith(kept)
    assert len(payload) > 125 - len(char.encode()), "no more was cut than needed"


def test_close_frame_short_reason_untouched() -> None:
    """A reason that fits (123 bytes) is kept whole."""
    reason = "r" * 123
    assert parse_server_frames(close_frame(1000, reason))[0][2] == b"\x03\xe8" + reason.encode()


def test_accept_key_rfc_example() -> None:
    """accept_key() gives the RFC 6455 §1.3 example answer."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
