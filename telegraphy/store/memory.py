"""The in-memory store: the reference implementation of :class:`~telegraphy.store.base.Store`.

Everything lives in this process and is lost when it exits, so every new
instance starts a new epoch: a client resuming against a restarted gateway is
told ``recovered: false, reason: "epoch changed"``. Use it for tests and for a
single gateway process that can afford to forget; use SQLite otherwise.

Methods never await anything while they change state, so each one is atomic
with respect to other tasks on the event loop.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import (
    DEFAULT_DEDUP_MAX_AGE,
    DEFAULT_DEDUP_MAX_EVENTS,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_EVENTS,
    DEFAULT_PREFIX,
    DedupWindow,
    History,
    Position,
    StoredEvent,
    check_expiry,
    check_options,
    check_read,
    check_ttl,
    decode_json,
    encode_json,
    exact_topics,
    gap_reason,
    normalize_subscriptions,
    session_entry,
)
from .errors import StoreNotOpen

__all__ = ["MemoryStore"]


@dataclass
class _Stream:
    """One topic: its last offset and the retained events, oldest first."""

    offset: int = 0
    events: deque[StoredEvent] = field(default_factory=deque)


class MemoryStore:
    """Keeps streams, sessions and subscriptions in dictionaries of this process.

    Args:
        max_events: events kept per topic.
        max_age: seconds an event is kept (applied by :meth:`trim`).
        prefix: accepted for symmetry with the other backends; unused.
        dedup_max_events: event ids remembered by :meth:`append_once`.
        dedup_max_age: seconds an event id is remembered.
    """

    def __init__(
        self,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age: float = DEFAULT_MAX_AGE,
        prefix: str = DEFAULT_PREFIX,
        dedup_max_events: int = DEFAULT_DEDUP_MAX_EVENTS,
        dedup_max_age: float = DEFAULT_DEDUP_MAX_AGE,
    ) -> None:
        check_options(max_events, max_age, prefix)
        self.max_events = max_events
        self.max_age = float(max_age)
        self.prefix = prefix
        self._dedup = DedupWindow(dedup_max_events, dedup_max_age)
        #: One epoch for every topic: history is lost for all at once.
        self.epoch = secrets.token_hex(8)
        self._streams: dict[str, _Stream] = {}
        self._sessions: dict[str, tuple[str, float]] = {}  # token -> (record json, expires_at)
        self._subscriptions: dict[str, list[dict[str, Any]]] = {}
        self._revocations: dict[str, tuple[str, float]] = {}  # key -> (record json, expires_at)
        self._open = False

    def __repr__(self) -> str:
        return f"MemoryStore(epoch={self.epoch!r}, topics={len(self._streams)})"

    async def open(self) -> None:
        """Mark the store usable; there is nothing to connect to."""
        self._open = True

    async def close(self) -> None:
        """Mark the store closed; its contents stay until the instance is dropped."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StoreNotOpen("memory")

    # Event history

    def _append(self, topic: str, data: bytes, now: float) -> Position:
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = _Stream()
        stream.offset += 1
        stream.events.append(StoredEvent(stream.offset, bytes(data), float(now)))
        while len(stream.events) > self.max_events:
            stream.events.popleft()
        return Position(self.epoch, stream.offset)

    async def append(self, topic: str, data: bytes, now: float) -> Position:
        """Append one event; see :meth:`Store.append`."""
        self._check_open()
        return self._append(topic, data, now)

    async def append_many(self, items: Sequence[tuple[str, bytes]], now: float) -> list[Position]:
        """Append several events in order; see :meth:`Store.append_many`."""
        self._check_open()
        return [self._append(topic, data, now) for topic, data in items]

    async def append_once(self, items: Sequence[tuple[str, bytes, str | None]], now: float) -> list[Position | None]:
        """Append several events in order, each id at most once; see :meth:`Store.append_once`."""
        self._check_open()
        return [
            self._append(topic, data, now) if event_id is None or self._dedup.add(event_id, now) else None
            for topic, data, event_id in items
        ]

    async def position(self, topic: str) -> Position:
        """The stream's current position."""
        self._check_open()
        stream = self._streams.get(topic)
        return Position(self.epoch, stream.offset if stream else 0)

    async def read(self, topic: str, since: Position, limit: int = 1000) -> History:
        """The events after ``since``; see :meth:`Store.read`."""
        self._check_open()
        check_read(since, limit)
        stream = self._streams.get(topic) or _Stream()
        current = Position(self.epoch, stream.offset)
        first = stream.events[0].offset if stream.events else None
        reason = gap_reason(current, since, first)
        if reason is not None:
            return History(current, [], False, reason)
        start = 0 if first is None else since.offset + 1 - first  # offsets are contiguous
        events = [stream.events[i] for i in range(start, min(start + limit, len(stream.events)))]
        return History(current, events, True, None)

    async def trim(self, now: float) -> int:
        """Apply retention to every topic and drop expired sessions; see :meth:`Store.trim`."""
        self._check_open()
        cutoff = now - self.max_age
        removed = 0
        for stream in self._streams.values():
            events = stream.events
            # Oldest first, stopping at the first young event: history stays contiguous.
            while events and (len(events) > self.max_events or events[0].stored_at < cutoff):
                events.popleft()
                removed += 1
        for token in [t for t, (_, expires_at) in self._sessions.items() if expires_at <= now]:
            del self._sessions[token]
        for key in [k for k, (_, expires_at) in self._revocations.items() if expires_at <= now]:
            del self._revocations[key]
        self._dedup.prune(now)
        return removed

    # Sessions

    async def save_session(self, token: str, record: Mapping[str, Any], ttl: float, now: float) -> None:
        """Store a session record until ``now + ttl``."""
        self._check_open()
        check_ttl(ttl)
        self._sessions[token] = (encode_json(record, "session record"), now + ttl)

    async def load_session(self, token: str, now: float) -> dict[str, Any] | None:
        """The live record saved under ``token``, or None."""
        self._check_open()
        entry = self._sessions.get(token)
        if entry is None or entry[1] <= now:
            return None
        record: dict[str, Any] = decode_json(entry[0])
        return record

    async def delete_session(self, token: str) -> None:
        """Forget a session."""
        self._check_open()
        self._sessions.pop(token, None)

    async def list_sessions(self, now: float) -> list[dict[str, Any]]:
        """Live sessions sorted by token, with ``token`` and ``expires_at`` added."""
        self._check_open()
        return [
            session_entry(token, decode_json(text), expires_at)
            for token, (text, expires_at) in sorted(self._sessions.items())
            if expires_at > now
        ]

    # Subscriptions

    async def set_subscriptions(self, owner: str, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        """Replace ``owner``'s subscriptions."""
        self._check_open()
        normalized = normalize_subscriptions(subscriptions)
        if normalized:
            self._subscriptions[owner] = normalized
        else:
            self._subscriptions.pop(owner, None)

    async def get_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s subscriptions, as copies."""
        self._check_open()
        subscriptions: list[dict[str, Any]] = decode_json(
            encode_json(self._subscriptions.get(owner, []), "subscriptions")
        )
        return subscriptions

    async def subscribers(self, topic: str) -> list[str]:
        """Owners with an exact subscription to ``topic``, sorted."""
        self._check_open()
        return sorted(owner for owner, subs in self._subscriptions.items() if topic in exact_topics(subs))

    # Revocations

    async def put_revocation(
        self, key: str, record: Mapping[str, Any], expires_at: float, now: float, *, only_new: bool = False
    ) -> bool:
        """Keep ``record`` under ``key`` until ``expires_at``; see :meth:`Store.put_revocation`."""
        self._check_open()
        check_expiry(expires_at, now)
        text = encode_json(record, "revocation record")
        current = self._revocations.get(key)
        if only_new and current is not None and current[1] > now:
            return False
        self._revocations[key] = (text, float(expires_at))
        return True

    async def list_revocations(self, prefix: str, now: float) -> dict[str, dict[str, Any]]:
        """Live records whose key starts with ``prefix``; see :meth:`Store.list_revocations`."""
        self._check_open()
        return {
            key: decode_json(text)
            for key, (text, expires_at) in self._revocations.items()
            if expires_at > now and key.startswith(prefix)
        }
