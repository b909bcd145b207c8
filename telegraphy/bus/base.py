"""The bus interface, message signing, and the URL-based factory.

Every message a gateway process puts on a shared bus is signed
(:class:`BusSigner`): HMAC-SHA256 under a key derived from the gateway
secret (:func:`bus_key`), over the channel it is sent on, the time it was
sent and the message. A receiver drops what is unsigned, forged, sent on
another channel or older than :data:`MAX_MESSAGE_AGE` seconds, so someone
who can write to the bus's server but does not hold the secret cannot
inject events, revocations or SockJS traffic. One HMAC per bus message
(a message carries a whole batch of events), never per event.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = [
    "MAX_MESSAGE_AGE",
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
_TAG = 32  # HMAC-SHA256
_STAMP = struct.Struct(">d")  # the sending time, unix seconds
_HEADER = _TAG + _STAMP.size


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
    """Signs and verifies bus messages: ``tag (32 bytes) | sent at (8 bytes) | message``.

    The tag is HMAC-SHA256 over ``channel | 0x00 | sent at | message``: a
    message signed for one channel (one node's direct channel, say) is
    refused on any other.

    Args:
        key: from :func:`bus_key`.
        max_age: seconds a message is accepted after (or before) its sending time.
    """

    def __init__(self, key: bytes, max_age: float = MAX_MESSAGE_AGE) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self.max_age = max_age

    def _tag(self, channel: bytes, stamp: bytes, data: bytes | memoryview) -> bytes:
        mac = self._mac.copy()  # the keyed state, computed once
        mac.update(channel)
        mac.update(b"\0")
        mac.update(stamp)
        mac.update(data)
        return mac.digest()

    def sign(self, channel: bytes, data: bytes, now: float) -> bytes:
        """Return ``data`` signed for ``channel`` at time ``now``."""
        stamp = _STAMP.pack(now)
        return self._tag(channel, stamp, data) + stamp + data

    def verify(self, channel: bytes, message: bytes, now: float) -> bytes:
        """Return the data of a message received on ``channel``.

        Raises:
            InvalidBusMessage: unsigned, forged, for another channel, or too old or new.
        """
        if len(message) < _HEADER:
            raise InvalidBusMessage("too short to be signed")
        view = memoryview(message)
        stamp = bytes(view[_TAG:_HEADER])
        if not hmac.compare_digest(self._tag(channel, stamp, view[_HEADER:]), view[:_TAG]):
            raise InvalidBusMessage("bad signature")
        (sent,) = _STAMP.unpack(stamp)
        if not abs(now - sent) <= self.max_age:  # also refuses NaN
            raise InvalidBusMessage(f"sent {now - sent:.0f} s from now, more than {self.max_age:.0f} s")
        return message[_HEADER:]


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
