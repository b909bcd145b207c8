"""The store interface: event history, sessions and persistent subscriptions.

Every backend (``memory``, ``sqlite``, ``redis``, ``mongodb``) implements
:class:`Store`; ``tests/store/test_contract.py`` holds them all to the same
behaviour. Use it in this order::

    store = open_store("sqlite:///telegraphy.db")
    await store.open()                 # connect, create tables / indexes
    position = await store.append("shop.Order", b'{"name": ...}', now=time.time())
    history = await store.read("shop.Order", since=Position(epoch, 41))
    await store.trim(now=time.time())  # now and then: apply retention
    await store.close()

Time is always passed in (``now``, unix seconds), never read by the store, so
that retention and expiry can be tested without waiting.

Guarantees, in every backend:

- **Ordering and atomic offsets.** Each topic is a stream whose offsets are
  1, 2, 3, ... with no gap and no repeat, even with many writers in several
  processes. ``append_many`` keeps its items' order within each topic.
- **Contiguous history.** Retention removes the oldest events of a stream
  first, so what is kept is always one unbroken run of offsets ending at the
  stream's current offset (or nothing).
- **Each event id at most once.** :meth:`Store.append_once` stores an event
  whose id is in the dedup window (the last ``dedup_max_events`` ids, none
  older than ``dedup_max_age`` seconds) no second time; the check and the
  append are one atomic step, also across processes sharing the store.
- **Epochs.** A stream's epoch changes only when its history is lost (a new
  memory store, a deleted SQLite file, a flushed Redis). A position from
  another epoch can't be resumed from: :meth:`Store.read` says so.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import StoreConfigError

__all__ = [
    "DEFAULT_DEDUP_MAX_AGE",
    "DEFAULT_DEDUP_MAX_EVENTS",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_PREFIX",
    "EPOCH_CHANGED",
    "HISTORY_TRIMMED",
    "DedupWindow",
    "OFFSET_AHEAD",
    "History",
    "Position",
    "Store",
    "StoredEvent",
    "gap_reason",
]

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_AGE = 24 * 3600.0
DEFAULT_PREFIX = "telegraphy"
#: Event ids remembered by :meth:`Store.append_once` (the most recent ones).
DEFAULT_DEDUP_MAX_EVENTS = 100_000
#: Seconds an event id is remembered by :meth:`Store.append_once`.
DEFAULT_DEDUP_MAX_AGE = 24 * 3600.0

#: ``History.reason`` when the stream's history was lost since ``since`` was handed out.
EPOCH_CHANGED = "epoch changed"
#: ``History.reason`` when retention removed events the reader has not seen.
HISTORY_TRIMMED = "history trimmed"
#: ``History.reason`` when ``since`` names an offset the stream has not reached.
OFFSET_AHEAD = "offset ahead of stream"

# Table, collection and key names are built from the prefix, so keep it plain.
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


@dataclass(frozen=True, slots=True)
class Position:
    """A place in one topic's stream: the last offset seen, in an epoch."""

    #: Changes whenever the stream's history is lost (new memory store, flushed Redis, ...).
    epoch: str
    #: 1, 2, 3, ... per topic; 0 means nothing yet.
    offset: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a stream, as stored."""

    offset: int
    #: The event as published (JSON bytes); the store never looks inside.
    data: bytes
    #: Unix time the event was appended (the ``now`` given to ``append``).
    stored_at: float


@dataclass(frozen=True, slots=True)
class History:
    """The answer to :meth:`Store.read`: the events after a position, or why not."""

    #: The stream's current position.
    position: Position
    #: Events with offsets greater than the requested one, ascending, at most ``limit``.
    #: Empty when ``recovered`` is false.
    events: list[StoredEvent]
    #: False when the gap since the requested position cannot be filled.
    recovered: bool
    #: ``EPOCH_CHANGED``, ``HISTORY_TRIMMED``, ``OFFSET_AHEAD``, or None when recovered.
    reason: str | None


@runtime_checkable
class Store(Protocol):
    """Sessions, persistent subscriptions and per-topic event streams.

    Call :meth:`open` once before anything else and :meth:`close` at the end.
    Methods may raise :class:`~telegraphy.store.errors.StoreUnavailable` when
    the server goes away; the store reconnects on the next call where its
    client library does.
    """

    async def open(self) -> None:
        """Connect, and create the tables or indexes the store needs."""

    async def close(self) -> None:
        """Release connections and threads; the store can't be used after."""

    # Event history: ordered per-topic streams

    async def append(self, topic: str, data: bytes, now: float) -> Position:
        """Append one event to ``topic``'s stream; return its position.

        The offset is assigned atomically: concurrent writers, in this process
        or others sharing the store, never get the same one, and leave no gap.
        Retention by ``max_events`` is applied to the topic on the way.
        """

    async def append_many(self, items: Sequence[tuple[str, bytes]], now: float) -> list[Position]:
        """Append ``(topic, data)`` items in order, in one round trip where the backend allows.

        Returns one position per item, in the items' order.
        """

    async def append_once(self, items: Sequence[tuple[str, bytes, str | None]], now: float) -> list[Position | None]:
        """Append ``(topic, data, id)`` items in order, each id at most once; see :meth:`append_many`.

        An item whose ``id`` is in the dedup window (appended before, at most
        ``dedup_max_events`` ids ago and no earlier than ``now -
        dedup_max_age``) is not stored: its answer is None. Other items get
        their position, and their id enters the window (an item with id None
        is always appended). The check and the append are one atomic step,
        also for writers in other processes: two of them appending the same
        new id store it once.
        """

    async def position(self, topic: str) -> Position:
        """The stream's current position (offset 0 for a topic with no events yet)."""

    async def read(self, topic: str, since: Position, limit: int = 1000) -> History:
        """The events after ``since``, ascending, at most ``limit`` of them.

        ``recovered`` is false, with no events, when the gap can't be filled:
        ``since`` is from another epoch (and its offset is above 0), the stream
        has not reached ``since.offset``, or retention removed events after
        it. A reader that got ``limit`` events reads again from the last one.
        """

    async def trim(self, now: float) -> int:
        """Apply retention to every topic; return how many events were removed.

        Keeps at most ``max_events`` per topic and nothing stored before
        ``now - max_age``, removing oldest first. Also drops expired sessions
        and revocations (not counted). Call it periodically; ``append`` enforces only
        ``max_events``.
        """

    # Sessions (resume tokens)

    async def save_session(self, token: str, record: Mapping[str, Any], ttl: float, now: float) -> None:
        """Store (or replace) a JSON-serializable session record, live until ``now + ttl``."""

    async def load_session(self, token: str, now: float) -> dict[str, Any] | None:
        """The record saved under ``token``, or None when unknown or expired at ``now``."""

    async def delete_session(self, token: str) -> None:
        """Forget a session; unknown tokens are ignored."""

    async def list_sessions(self, now: float) -> list[dict[str, Any]]:
        """Live sessions, sorted by token: each record plus ``token`` and ``expires_at`` keys.

        Resume tokens are secrets: the management API should not show them as they are.
        """

    # Persistent subscriptions, by owner (a user id, or "anon:<resume token>")

    async def set_subscriptions(self, owner: str, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        """Replace ``owner``'s subscriptions, each ``{"topic", "match", "options"}``.

        ``match`` defaults to ``"exact"`` and ``options`` to ``{}``. An empty
        sequence removes the owner.
        """

    async def get_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s subscriptions in the order they were set (empty when none)."""

    async def subscribers(self, topic: str) -> list[str]:
        """Owners holding an exact-match subscription to ``topic``, sorted."""

    # Revocations: small records shared by every gateway process, each live
    # until its own expiry (logouts and grant changes, used manage tokens)

    async def put_revocation(
        self, key: str, record: Mapping[str, Any], expires_at: float, now: float, *, only_new: bool = False
    ) -> bool:
        """Keep a JSON-serializable ``record`` under ``key`` until ``expires_at``; return whether it was written.

        A live record under ``key`` is replaced, unless ``only_new``: then
        nothing is written and the answer is False. The check and the write
        are one atomic step, also across processes sharing the store (two
        callers putting the same new key with ``only_new`` get one True).
        """

    async def list_revocations(self, prefix: str, now: float) -> dict[str, dict[str, Any]]:
        """The records live at ``now`` whose key starts with ``prefix``, by key."""


def gap_reason(current: Position, since: Position, first_retained: int | None) -> str | None:
    """Why a reader at ``since`` can't get every event after it, or None if it can.

    Args:
        current: the stream's position now.
        since: the last position the reader saw.
        first_retained: the oldest offset still stored, None when nothing is.
    """
    if since.offset > 0 and since.epoch != current.epoch:
        return EPOCH_CHANGED
    if since.offset > current.offset:
        return OFFSET_AHEAD
    oldest = current.offset + 1 if first_retained is None else first_retained
    if oldest > since.offset + 1:
        return HISTORY_TRIMMED
    return None


def check_read(since: Position, limit: int) -> None:
    """Raise ValueError for a ``read`` that asks for something meaningless."""
    if since.offset < 0:
        raise ValueError(f"invalid offset {since.offset} in since: offsets are 0 or more")
    if limit < 1:
        raise ValueError(f"invalid limit {limit}: read at least 1 event")


def check_options(max_events: int, max_age: float, prefix: str) -> None:
    """Raise StoreConfigError for retention options or a prefix no backend can use."""
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise StoreConfigError(f"invalid max_events {max_events!r}: expected an integer of 1 or more")
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age > 0:
        raise StoreConfigError(f"invalid max_age {max_age!r}: expected seconds above 0")
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise StoreConfigError(
            f"invalid prefix {prefix!r}: use up to 48 letters, digits and underscores, not starting with a digit"
        )


def check_dedup_options(dedup_max_events: int, dedup_max_age: float) -> None:
    """Raise StoreConfigError for a dedup window no backend can keep."""
    if isinstance(dedup_max_events, bool) or not isinstance(dedup_max_events, int) or dedup_max_events < 1:
        raise StoreConfigError(f"invalid dedup_max_events {dedup_max_events!r}: expected an integer of 1 or more")
    if isinstance(dedup_max_age, bool) or not isinstance(dedup_max_age, (int, float)) or not dedup_max_age > 0:
        raise StoreConfigError(f"invalid dedup_max_age {dedup_max_age!r}: expected seconds above 0")


class DedupWindow:
    """The ids seen lately, in this process: at most ``max_events``, none older than ``max_age`` seconds.

    The memory store's window, and the gateway's when it runs with no store.
    """

    __slots__ = ("_seen", "max_age", "max_events")

    def __init__(self, max_events: int = DEFAULT_DEDUP_MAX_EVENTS, max_age: float = DEFAULT_DEDUP_MAX_AGE) -> None:
        check_dedup_options(max_events, max_age)
        self.max_events = max_events
        self.max_age = float(max_age)
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> when it entered, oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, event_id: str, now: float) -> bool:
        """Remember ``event_id``; return False (and change nothing) when it is in the window already."""
        self.prune(now)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        while len(self._seen) > self.max_events:
            self._seen.popitem(last=False)
        return True

    def prune(self, now: float) -> int:
        """Forget the ids older than ``max_age``; return how many."""
        seen, cutoff, removed = self._seen, now - self.max_age, 0
        while seen:
            oldest, at = next(iter(seen.items()))
            if at >= cutoff:
                break
            del seen[oldest]
            removed += 1
        return removed


def check_expiry(expires_at: float, now: float) -> None:
    """Raise ValueError for an expiry that is not a number after ``now``."""
    if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)) or not expires_at > now:
        raise ValueError(f"invalid expires_at {expires_at!r}: expected a time after now ({now!r})")


def check_ttl(ttl: float) -> None:
    """Raise ValueError for a session lifetime that is not a positive number."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"invalid ttl {ttl!r}: expected seconds above 0")


def encode_json(value: Mapping[str, Any] | Sequence[Any], what: str) -> str:
    """Serialize a record or options to compact JSON; TypeError names ``what`` if it can't be."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not json-serializable: {exc}") from None


def decode_json(text: str | bytes) -> Any:
    """Parse JSON written by :func:`encode_json`."""
    return json.loads(text)


def normalize_subscriptions(subscriptions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check subscriptions and fill in defaults: ``match="exact"``, ``options={}``.

    Raises:
        ValueError: a subscription lacks a topic, or has an unknown key or a bad value.
        TypeError: options that are not a JSON-serializable mapping.
    """
    if isinstance(subscriptions, (str, bytes)) or not isinstance(subscriptions, Sequence):
        raise TypeError(f"subscriptions must be a sequence of mappings, got {type(subscriptions).__name__}")
    normalized = []
    for index, subscription in enumerate(subscriptions):
        if not isinstance(subscription, Mapping):
            raise TypeError(f"subscription {index} must be a mapping, got {type(subscription).__name__}")
        unknown = set(subscription) - {"topic", "match", "options"}
        if unknown:
            raise ValueError(f"unknown key {min(unknown)!r} in subscription {index}")
        topic = subscription.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"invalid topic {topic!r} in subscription {index}: expected a non-empty string")
        match = subscription.get("match", "exact")
        if not isinstance(match, str) or not match:
            raise ValueError(f"invalid match {match!r} in subscription {index}: expected a non-empty string")
        options = subscription.get("options", {})
        if not isinstance(options, Mapping):
            raise TypeError(f"options of subscription {index} must be a mapping, got {type(options).__name__}")
        # A JSON round trip gives every backend the same copy semantics.
        options = decode_json(encode_json(options, f"options of subscription {index}"))
        normalized.append({"topic": topic, "match": match, "options": options})
    return normalized


def exact_topics(subscriptions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The distinct topics of normalized subscriptions whose match is exact, in first-seen order."""
    return list(dict.fromkeys(s["topic"] for s in subscriptions if s["match"] == "exact"))


def session_entry(token: str, record: Mapping[str, Any], expires_at: float) -> dict[str, Any]:
    """One item of :meth:`Store.list_sessions`: the record plus its token and expiry."""
    return {**record, "token": token, "expires_at": expires_at}
