"""Where the gateway keeps what must outlive a connection.

Sessions with their resume tokens, each owner's persistent subscriptions, and
every topic's event history as an ordered stream with offsets and an epoch,
so a reconnecting client gets exactly the events it missed. One small async
interface, :class:`Store`, with four backends chosen by URL::

    from telegraphy.store import Position, open_store

    store = open_store("sqlite:///telegraphy.db", max_events=10_000, max_age=86400)
    await store.open()
    position = await store.append("shop.Order", b'{"name": "shop.Order"}', now=time.time())
    history = await store.read("shop.Order", since=Position(position.epoch, 0))
    await store.close()

See ``docs/store.md`` for the URLs, options and guarantees.
"""

from __future__ import annotations

from .base import (
    EPOCH_CHANGED,
    HISTORY_TRIMMED,
    OFFSET_AHEAD,
    History,
    Position,
    Store,
    StoredEvent,
)
from .errors import (
    MissingDependency,
    StoreConfigError,
    StoreError,
    StoreNotOpen,
    StoreUnavailable,
)
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .urls import SCHEMES, open_store

__all__ = [
    "EPOCH_CHANGED",
    "HISTORY_TRIMMED",
    "OFFSET_AHEAD",
    "SCHEMES",
    "History",
    "MemoryStore",
    "MissingDependency",
    "Position",
    "SQLiteStore",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreNotOpen",
    "StoreUnavailable",
    "StoredEvent",
    "open_store",
]
