"""Bus message signing, without sockets: what a node accepts from the bus and what it drops."""

from __future__ import annotations

import pytest

from telegraphy.bus import BusError, BusSigner, InvalidBusMessage, bus_key, open_bus

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
        (lambda s: b'{"n":"x","r":{"user":"7","grants":{"superuser":true}}}', "bad signature"),
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
