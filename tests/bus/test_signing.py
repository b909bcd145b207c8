"""Bus message signing, without sockets: what a node accepts from the bus and what it drops."""

from __future__ import annotations

import pytest

from telegraphy.bus import BusError, BusSigner, InvalidBusMessage, bus_key, open_bus
from telegraphy.bus.base import REPLAY_WINDOW

SECRET = "bus-signing-test-secret-" + "k" * 32
CHANNEL = b"telegraphy:events"
NOW = 1_800_000_000.0


def test_signed_message_round_trips_on_its_channel() -> None:
    """A message signed with the shared key is accepted on its channel, unchanged, within the age window."""
    signer = BusSigner(bus_key(SECRET))
    data = b'{"n":"a","v":[]}'
    assert BusSigner(bus_key(SECRET)).verify(CHANNEL, signer.sign(CHANNEL, data, NOW), NOW + 59) == data
    assert signer.verify(CHANNEL, signer.sign(CHANNEL, b"", NOW), NOW) == b""


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (lambda s: b'{"n":"x","r":{"user":"7","grants":{"superuser":true,"groups":["staff"]}}}', "bad signature"),
        (lambda s: b"short", "too short to be signed"),
        (lambda s: BusSigner(bus_key("another-secret-" + "z" * 32)).sign(CHANNEL, b"{}", NOW), "bad signature"),
        (lambda s: s.sign(b"telegraphy:events:node:abc", b"{}", NOW), "bad signature"),
        (lambda s: s.sign(CHANNEL, b"{}", NOW)[:-1] + b"]", "bad signature"),
        (lambda s: s.sign(CHANNEL, b"{}", NOW - 61), "sent 61 s from now, more than 60 s"),
        (lambda s: s.sign(CHANNEL, b"{}", float("nan")), None),
    ],
    ids=["unsigned", "short", "other-key", "other-channel", "tampered", "stale", "nan-time"],
)
def test_unsigned_forged_or_stale_messages_are_refused(message: object, reason: str | None) -> None:
    """Unsigned, short, wrongly keyed, re-channelled, tampered or stale messages raise InvalidBusMessage saying why."""
    signer = BusSigner(bus_key(SECRET))
    with pytest.raises(InvalidBusMessage) as refused:
        signer.verify(CHANNEL, message(signer), NOW)  # type: ignore[operator]
    if reason is not None:
        assert refused.value.reason == reason


def test_bus_key_is_derived_and_redis_bus_needs_a_secret() -> None:
    """The bus key is not the secret itself; a Redis bus cannot be opened without the secret."""
    assert bus_key(SECRET) != SECRET.encode() and len(bus_key(SECRET)) == 32
    with pytest.raises(BusError, match="needs the gateway secret"):
        open_bus("redis://127.0.0.1:6379/0")
    with pytest.raises(BusError, match="needs the gateway secret"):
        bus_key("")


def test_a_replayed_message_is_refused_inside_the_age_window() -> None:
    """A signed message accepted once is refused when sent again, even seconds later (a recording replayed into the bus)."""
    sender, receiver = BusSigner(bus_key(SECRET)), BusSigner(bus_key(SECRET))
    grant = sender.sign(CHANNEL, b'{"n":"a","r":{"user":"7","grants":{"superuser":true}}}', NOW)
    assert receiver.verify(CHANNEL, grant, NOW) is not None
    with pytest.raises(InvalidBusMessage) as refused:
        receiver.verify(CHANNEL, grant, NOW + 5)
    assert refused.value.reason == "replayed"


def test_messages_out_of_order_within_the_window_are_all_accepted() -> None:
    """Messages of one sender arriving out of order (several connections) are each accepted once; one too far behind is refused."""
    sender, receiver = BusSigner(bus_key(SECRET)), BusSigner(bus_key(SECRET))
    messages = [sender.sign(CHANNEL, str(n).encode(), NOW) for n in range(REPLAY_WINDOW + 10)]
    for index in (2, 0, 1, 5, 3, 4):
        assert receiver.verify(CHANNEL, messages[index], NOW) == str(index).encode()
    assert receiver.verify(CHANNEL, messages[-1], NOW) == str(REPLAY_WINDOW + 9).encode()
    with pytest.raises(InvalidBusMessage, match="replayed"):
        receiver.verify(CHANNEL, messages[6], NOW)  # more than REPLAY_WINDOW behind the highest
    assert receiver.verify(CHANNEL, messages[-2], NOW) == str(REPLAY_WINDOW + 8).encode()


def test_each_sender_is_numbered_apart() -> None:
    """Two gateway processes number their messages independently: neither's numbers shadow the other's."""
    a, b, receiver = BusSigner(bus_key(SECRET)), BusSigner(bus_key(SECRET)), BusSigner(bus_key(SECRET))
    for _ in range(3):
        first, second = a.sign(CHANNEL, b"a", NOW), b.sign(CHANNEL, b"b", NOW)
        assert receiver.verify(CHANNEL, first, NOW) == b"a" and receiver.verify(CHANNEL, second, NOW) == b"b"
