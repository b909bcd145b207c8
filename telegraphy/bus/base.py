"""The bus interface and its URL-based factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["Bus", "BusError", "LocalBus", "open_bus"]


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
