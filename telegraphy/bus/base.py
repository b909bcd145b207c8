"""The bus interface, message signing, and the URL-based factory.

Every message a gateway process puts on a shared bus is signed
(:class:`BusSigner`): HMAC-SHA256 under a key derived from the gateway
secret (:func:`bus_key`), over the channel it is sent on, the time it was
sent and the message. A receiver drops what is unsigned, forged, sent on
another channel or older than :data:`MAX_MESSAGE_AGE` seconds, so someone
who can write to the bus's server but does not hold the secret cannot
inject events, revocations or SockJS traffic. One HMAC per bus message
(a message carries a whole batch of events), never per event.

Replays: every signer has a random sender id and numbers its messages; a
receiver remembers, per sender, the numbers it accepted in a window of
:data:`REPLAY_WINDOW` (as IPsec's anti-replay window does, RFC 4303
§3.4.3), so a signed message recorded off the bus and sent again is dropped
even inside :data:`MAX_MESSAGE_AGE`. Messages may arrive a little out of
order (several connections publish for one process): any number in the
window not seen yet is accepted. A sender silent for longer than
:data:`MAX_MESSAGE_AGE` is forgotten: every message it sent is too old by
then.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = [
    "MAX_MESSAGE_AGE",
    "REPLAY_WINDOW",
    "Bus",
    "BusError",
    "BusSigner",
    "InvalidBusMessage",
    "LocalBus",
    "NodeBus",
    "bus_key",
    "node_bus",
    "open_bus",
]

#: Seconds a signed bus message is accepted after it was sent (and before,
#: for clocks running ahead): keep the clocks of gateway hosts in sync (NTP).
MAX_MESSAGE_AGE = 60.0
#: What the bus key is derived for: a new version gets a new key.
KEY_CONTEXT = b"telegraphy bus v1"
#: How far behind the highest number seen from a sender a message may be numbered.
REPLAY_WINDOW = 4096
_TAG = 32  # HMAC-SHA256
_STAMP = struct.Struct(">d")  # the sending time, unix seconds
_SENDER = 8  # random id of the signing process
_SEQ = struct.Struct(">Q")  # the message's number from that sender
_HEADER = _TAG + _STAMP.size + _SENDER + _SEQ.size


class BusError(Exception):
    """The bus URL is wrong or its server cannot be used."""


class InvalidBusMessage(Exception):
    """A bus message failed verification: ``reason`` says how (for logs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"bus message dropped: {reason}")
        self.reason = reason


def bus_key(secret: str | bytes) -> bytes:
    """The key signing bus messages: HMAC-SHA256 of :data:`KEY_CONTEXT` under the gateway secret.

    A key of its own, so that a bus message can never pass for a token, nor
    the other way round.
    """
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise BusError("the bus needs the gateway secret to sign its messages")
    return hmac.new(raw, KEY_CONTEXT, hashlib.sha256).digest()


class BusSigner:
    """Signs and verifies bus messages: ``tag (32) | sent at (8) | sender (8) | number (8) | message``.

    The tag is HMAC-SHA256 over ``channel | 0x00 | sent at | sender |
    number | message``: a message signed for one channel (one node's direct
    channel, say) is refused on any other, and one accepted once is refused
    the next time (see the module docstring).

    Args:
        key: from :func:`bus_key`.
        max_age: seconds a message is accepted after (or before) its sending time.
    """

    def __init__(self, key: bytes, max_age: float = MAX_MESSAGE_AGE) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.max_age = max_age
        self._sender = os.urandom(_SENDER)
        self._sent = 0
        #: What was accepted from each sender.
        self._seen: dict[bytes, _Window] = {}
        self._swept = 0.0

    def _tag(self, channel: bytes, head: bytes, data: bytes | memoryview) -> bytes:
        mac = self._mac.copy()  # the keyed state, computed once
        mac.update(channel)
        mac.update(b"\0")
        mac.update(head)
        mac.update(data)
        return mac.digest()

    def sign(self, channel: bytes, data: bytes, now: float) -> bytes:
        """Return ``data`` signed for ``channel`` at time ``now``, numbered after the last one."""
        self._sent += 1
        head = _STAMP.pack(now) + self._sender + _SEQ.pack(self._sent)
        return self._tag(channel, head, data) + head + data

    def verify(self, channel: bytes, message: bytes, now: float) -> bytes:
        """Return the data of a message received on ``channel``.

        Raises:
            InvalidBusMessage: unsigned, forged, for another channel, too old
                or new, or accepted before (a replay).
        """
        if len(message) < _HEADER:
            raise InvalidBusMessage("too short to be signed")
        view = memoryview(message)
        head = bytes(view[_TAG:_HEADER])
        if not hmac.compare_digest(self._tag(channel, head, view[_HEADER:]), view[:_TAG]):
            raise InvalidBusMessage("bad signature")
        (sent,) = _STAMP.unpack_from(head)
        if not abs(now - sent) <= self.max_age:  # also refuses NaN
            raise InvalidBusMessage(f"sent {now - sent:.0f} s from now, more than {self.max_age:.0f} s")
        if now - self._swept > self.max_age:
            self._sweep(now)
        sender = head[_STAMP.size : _STAMP.size + _SENDER]
        window = self._seen.get(sender)
        if window is None:
            window = self._seen[sender] = _Window()
        if not window.accept(_SEQ.unpack_from(head, _STAMP.size + _SENDER)[0], now):
            raise InvalidBusMessage("replayed")
        return message[_HEADER:]

    def _sweep(self, now: float) -> None:
        """Forget senders silent for longer than ``max_age``: all they sent is too old by now."""
        self._swept = now
        for sender in [s for s, window in self._seen.items() if now - window.last > self.max_age]:
            del self._seen[sender]


class _Window:
    """The numbers accepted from one sender: the highest, and those within :data:`REPLAY_WINDOW` of it."""

    __slots__ = ("highest", "last", "recent")

    def __init__(self) -> None:
        self.highest = 0
        self.last = 0.0
        self.recent: set[int] = set()

    def accept(self, number: int, now: float) -> bool:
        """Record ``number``; return False if it was seen already or is too far behind."""
        if number <= self.highest - REPLAY_WINDOW or number in self.recent:
            return False
        self.recent.add(number)
        self.last = now
        if number > self.highest:
            self.highest = number
            if len(self.recent) > 2 * REPLAY_WINDOW:
                floor = number - REPLAY_WINDOW
                self.recent = {n for n in self.recent if n > floor}
        return True


class Bus(Protocol):
    """Fan-out of messages between gateway processes.

    Call :meth:`open` once with the function receiving other nodes' messages,
    then :meth:`publish` as often as needed, and :meth:`close` at the end.
    """

    async def open(self, on_message: Callable[[bytes], None]) -> None: ...

    async def publish(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class NodeBus(Bus, Protocol):
    """A bus that also reaches one node by name, and keeps leases naming a node.

    What several gateway processes need to share a SockJS session: the node
    holding it owns a lease on its key, and requests reaching another node
    are forwarded to the owner over :meth:`send`.

    Attributes:
        node: this process's name on the bus (random, unique per process).
        on_direct: receives the messages :meth:`send` addressed to this node;
            set it before anyone can know the node's name.
    """

    node: str
    on_direct: Callable[[bytes], None] | None

    async def send(self, node: str, messages: list[bytes]) -> None:
        """Send messages, in order, to ``node`` alone (at most once, like every bus message)."""
        ...

    async def claim(self, keys: list[str], ttl: float) -> list[str]:
        """Take or renew for ``ttl`` seconds the leases on ``keys`` nobody else holds; return each key's owner."""
        ...

    async def owner(self, key: str) -> str | None:
        """The node holding the lease on ``key``, or None."""
        ...

    async def release(self, keys: list[str]) -> None:
        """Give up this node's leases on ``keys`` (others' leases stay)."""
        ...


def node_bus(bus: Bus | None) -> NodeBus | None:
    """``bus`` if it can reach single nodes and keep leases (:class:`NodeBus`), else None."""
    if bus is not None and all(hasattr(bus, name) for name in ("node", "send", "claim", "owner", "release")):
        return bus  # type: ignore[return-value]
    return None


class LocalBus:
    """The bus of a single gateway process: there is nobody else to tell."""

    async def open(self, on_message: Callable[[bytes], None]) -> None:
        return None

    async def publish(self, data: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


def open_bus(url: str, *, secret: str | bytes | None = None) -> Bus:
    """Return the bus for ``url``: ``local://`` or ``redis://host:port/db`` (``rediss://`` for TLS).

    The Redis pub/sub channel is ``telegraphy:events`` unless the URL says
    otherwise (``redis://host:6379/0?channel=myapp``): gateways that should
    act as one share a channel, and separate deployments on one Redis don't.
    A Redis bus signs its messages with a key derived from ``secret`` (the
    gateway secret, the same on every node): it is required.

    Raises:
        BusError: for an unknown scheme, a Redis bus without a secret, or
            when the Redis client is not installed.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    channel = query.pop("channel", ["telegraphy:events"])[-1]
    if scheme == "local":
        return LocalBus()
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisBus
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BusError("the redis bus needs the redis package: pip install 'telegraphy[redis]'") from exc
        rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
        if secret is None:
            raise BusError("the redis bus needs the gateway secret to sign its messages")
        return RedisBus(urlunsplit(parts._replace(query=rest)), channel=channel, key=bus_key(secret))
    raise BusError(f"unknown bus {url!r}: use local:// or redis://HOST:PORT/DB")
