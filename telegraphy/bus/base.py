"""The bus interface and its URL-based factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["Bus", "BusError", "LocalBus", "NodeBus", "node_bus", "open_bus"]


class BusError(Exception):
    """The bus URL is wrong or its server cannot be used."""


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


def open_bus(url: str) -> Bus:
    """Return the bus for ``url``: ``local://`` or ``redis://host:port/db`` (``rediss://`` for TLS).

    The Redis pub/sub channel is ``telegraphy:events`` unless the URL says
    otherwise (``redis://host:6379/0?channel=myapp``): gateways that should
    act as one share a channel, and separate deployments on one Redis don't.

    Raises:
        BusError: for an unknown scheme, or when the Redis client is not installed.
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
        return RedisBus(urlunsplit(parts._replace(query=rest)), channel=channel)
    raise BusError(f"unknown bus {url!r}: use local:// or redis://HOST:PORT/DB")
