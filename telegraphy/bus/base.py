"""The bus interface and its URL-based factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

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


def open_bus(url: str, *, channel: str = "telegraphy:events") -> Bus:
    """Return the bus for ``url``: ``local://`` or ``redis://host:port/db`` (``rediss://`` for TLS).

    Raises:
        BusError: for an unknown scheme, or when the Redis client is not installed.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "local":
        return LocalBus()
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisBus
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BusError("the redis bus needs the redis package: pip install 'telegraphy[redis]'") from exc
        return RedisBus(url, channel=channel)
    raise BusError(f"unknown bus {url!r}: use local:// or redis://HOST:PORT/DB")
