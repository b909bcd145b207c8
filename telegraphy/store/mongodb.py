"""The MongoDB store, through PyMongo's asyncio API (``pip install telegraphy[mongodb]``).

Uses ``pymongo.AsyncMongoClient`` (Motor, its predecessor, reached end of
life in May 2026). Works on a standalone server as well as a replica set: it
needs no multi-document transactions.

Collections (``telegraphy`` is the ``prefix`` option), with the indexes
:meth:`MongoStore.open` creates::

    telegraphy_events         {topic, offset, epoch, data, stored_at}
                              unique (topic, offset); stored_at
    telegraphy_topics         {_id: topic, epoch, offset}: the epoch, and the last
                              offset once retention has removed every event
    telegraphy_sessions       {_id: token, record, expires, expires_at}
                              expires_at (TTL, so MongoDB deletes expired ones); expires
    telegraphy_subscriptions  {_id: owner, subscriptions, exact_topics}; exact_topics
    telegraphy_revocations    {_id: key, record, expires, expires_at}
                              expires_at (TTL); expires
    telegraphy_dedup          {_id: event id, at}: append_once's window; at

How offsets stay unique and gapless: an append reads the topic's last offset
and inserts the event at the next one; the unique (topic, offset) index
refuses the insert if another writer got there first, and the append retries
with the new last offset. So an offset exists exactly when its event does, and
a reader never sees offset 7 while 6 is still being written (a separate
counter incremented before the insert would allow that window, and readers
would skip 6).

How ``append_once`` stores an id once without transactions: it first claims
each id with an upsert that matches only an expired claim (a live one makes
the upsert's insert meet the unique ``_id``: a duplicate), then appends the
events it claimed. If the append fails, its claims are released, so a retry
is stored; a duplicate that arrives while the first append is in flight is
dropped. The count bound of the window is applied by :meth:`MongoStore.trim`.

Limits: dropping ``telegraphy_topics`` alone starts a new epoch for every
topic; dropping ``telegraphy_events`` alone is seen as trimmed history. Drop
both (or the database) to start over.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pymongo.errors
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .base import (
    DEFAULT_DEDUP_MAX_AGE,
    DEFAULT_DEDUP_MAX_EVENTS,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_EVENTS,
    DEFAULT_PREFIX,
    History,
    Position,
    StoredEvent,
    check_dedup_options,
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
from .errors import StoreError, StoreNotOpen, StoreUnavailable, redact_url

__all__ = ["MongoStore"]

Document = dict[str, Any]

#: Attempts to find a free offset before giving up (each lost race is another writer's success).
_MAX_ATTEMPTS = 100
#: MongoDB's duplicate key error code.
_DUPLICATE_KEY = 11000


class MongoStore:
    """A :class:`~telegraphy.store.base.Store` in a MongoDB database.

    Args:
        url: ``mongodb://...`` or ``mongodb+srv://...``; the database is the
            URL's path, ``telegraphy`` when it has none.
        max_events: events kept per topic (enforced on every append).
        max_age: seconds an event is kept (applied by :meth:`trim`).
        prefix: collection name prefix.
        dedup_max_events: event ids remembered by :meth:`append_once` (applied by :meth:`trim`).
        dedup_max_age: seconds an event id is remembered.
    """

    def __init__(
        self,
        url: str,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age: float = DEFAULT_MAX_AGE,
        prefix: str = DEFAULT_PREFIX,
        dedup_max_events: int = DEFAULT_DEDUP_MAX_EVENTS,
        dedup_max_age: float = DEFAULT_DEDUP_MAX_AGE,
    ) -> None:
        check_options(max_events, max_age, prefix)
        check_dedup_options(dedup_max_events, dedup_max_age)
        self.dedup_max_events = dedup_max_events
        self.dedup_max_age = float(dedup_max_age)
        self._dedup: AsyncCollection[Document] | None = None
        self.url = url
        self.max_events = max_events
        self.max_age = float(max_age)
        self.prefix = prefix
        self._client: AsyncMongoClient[Document] | None = None
        self._events: AsyncCollection[Document] | None = None
        self._topics: AsyncCollection[Document] | None = None
        self._sessions: AsyncCollection[Document] | None = None
        self._subscriptions: AsyncCollection[Document] | None = None
        self._revocations: AsyncCollection[Document] | None = None

    def __repr__(self) -> str:
        return f"MongoStore({redact_url(self.url)!r}, prefix={self.prefix!r})"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn PyMongo's exceptions into the store's."""
        try:
            yield
        except pymongo.errors.ConnectionFailure as exc:
            raise StoreUnavailable(self.url, str(exc).split(",")[0]) from exc
        except pymongo.errors.PyMongoError as exc:
            raise StoreError(f"mongodb store: {exc}") from exc

    def _collections(
        self,
    ) -> tuple[
        AsyncCollection[Document], AsyncCollection[Document], AsyncCollection[Document], AsyncCollection[Document]
    ]:
        if self._events is None or self._topics is None or self._sessions is None or self._subscriptions is None:
            raise StoreNotOpen("mongodb")
        return self._events, self._topics, self._sessions, self._subscriptions

    async def open(self) -> None:
        """Connect, check the server answers, and create the indexes."""
        if self._client is not None:
            return
        options: dict[str, Any] = {}
        if "serverselectiontimeoutms" not in self.url.lower():
            options["serverSelectionTimeoutMS"] = 5000
        try:
            client: AsyncMongoClient[Document] = AsyncMongoClient(self.url, **options)
        except pymongo.errors.ConfigurationError as exc:
            raise StoreUnavailable(self.url, str(exc)) from exc
        try:
            with self._errors():
                await client.admin.command("ping")
                database = client.get_default_database(default="telegraphy")
                p = self.prefix
                events, topics = database[f"{p}_events"], database[f"{p}_topics"]
                sessions, subscriptions = database[f"{p}_sessions"], database[f"{p}_subscriptions"]
                await events.create_index([("topic", ASCENDING), ("offset", ASCENDING)], unique=True)
                await events.create_index("stored_at")
                await sessions.create_index("expires_at", expireAfterSeconds=0)
                await sessions.create_index("expires")
                await subscriptions.create_index("exact_topics")
                revocations = database[f"{p}_revocations"]
                await revocations.create_index("expires_at", expireAfterSeconds=0)
                await revocations.create_index("expires")
                dedup = database[f"{p}_dedup"]
                await dedup.create_index("at")
        except BaseException:
            await client.close()
            raise
        self._client = client
        self._events, self._topics, self._sessions, self._subscriptions = events, topics, sessions, subscriptions
        self._revocations = revocations
        self._dedup = dedup

    async def close(self) -> None:
        """Close the client's connections."""
        client, self._client = self._client, None
        self._events = self._topics = self._sessions = self._subscriptions = None
        self._revocations = None
        self._dedup = None
        if client is not None:
            await client.close()

    # Event history

    async def _head(self, topic: str) -> Position:
        """The topic's epoch and last offset: its newest event, else its topics document."""
        events, topics, _, _ = self._collections()
        last = await events.find_one({"topic": topic}, {"offset": 1, "epoch": 1}, sort=[("offset", DESCENDING)])
        if last is not None:
            return Position(str(last["epoch"]), int(last["offset"]))
        try:
            meta = await topics.find_one_and_update(
                {"_id": topic},
                {"$setOnInsert": {"epoch": secrets.token_hex(8), "offset": 0}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except pymongo.errors.DuplicateKeyError:  # another writer's upsert of the same topic won
            meta = await topics.find_one({"_id": topic})
        if meta is None:
            raise StoreError(f"mongodb store: the topics document of {topic!r} vanished while being created")
        return Position(str(meta["epoch"]), int(meta["offset"]))

    async def _heads(self, topics: Sequence[str]) -> dict[str, Position]:
        heads = await asyncio.gather(*(self._head(topic) for topic in topics))
        return dict(zip(topics, heads))

    async def append(self, topic: str, data: bytes, now: float) -> Position:
        """Append one event; see :meth:`Store.append`."""
        positions = await self.append_many([(topic, data)], now)
        return positions[0]

    async def append_many(self, items: Sequence[tuple[str, bytes]], now: float) -> list[Position]:
        """Append several events with one ordered ``insert_many`` (retried past lost races)."""
        events, _, _, _ = self._collections()
        items = [(topic, bytes(data)) for topic, data in items]
        positions: list[Position] = []
        with self._errors():
            for _ in range(_MAX_ATTEMPTS):
                pending = items[len(positions) :]
                if not pending:
                    break
                heads = await self._heads(list(dict.fromkeys(topic for topic, _ in pending)))
                documents: list[Document] = []
                for topic, data in pending:
                    head = heads[topic] = Position(heads[topic].epoch, heads[topic].offset + 1)
                    documents.append(
                        {"topic": topic, "offset": head.offset, "epoch": head.epoch, "data": data, "stored_at": now}
                    )
                try:
                    await events.insert_many(documents, ordered=True)
                    inserted = len(documents)
                except pymongo.errors.BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                        raise
                    inserted = int(exc.details.get("nInserted", 0))  # ordered: the ones before the clash
                positions += [Position(d["epoch"], d["offset"]) for d in documents[:inserted]]
            else:
                raise StoreError(
                    f"mongodb store: no free offset after {_MAX_ATTEMPTS} attempts; too many concurrent writers"
                )
            await self._trim_counts({topic: position.offset for (topic, _), position in zip(items, positions)})
        return positions

    async def append_once(self, items: Sequence[tuple[str, bytes, str | None]], now: float) -> list[Position | None]:
        """Append several events, each id at most once; see :meth:`Store.append_once` and this module's docstring."""
        dedup = self._dedup
        if dedup is None:
            raise StoreNotOpen("mongodb")
        items = list(items)
        cutoff = now - self.dedup_max_age
        claims: dict[str, int] = {}  # event id -> index of its first item in this batch
        for index, (_, _, event_id) in enumerate(items):
            if event_id is not None:
                claims.setdefault(event_id, index)
        refused: set[int] = set()
        with self._errors():
            if claims:
                ids = list(claims)
                requests = [
                    UpdateOne({"_id": event_id, "at": {"$lt": cutoff}}, {"$set": {"at": float(now)}}, upsert=True)
                    for event_id in ids
                ]
                try:
                    await dedup.bulk_write(requests, ordered=False)
                except pymongo.errors.BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                        raise
                    refused = {claims[ids[int(error["index"])]] for error in errors}
        kept = [
            index
            for index, (_, _, event_id) in enumerate(items)
            if event_id is None or (claims[event_id] == index and index not in refused)
        ]
        try:
            appended = await self.append_many([(items[i][0], items[i][1]) for i in kept], now)
        except Exception:
            mine = [items[i][2] for i in kept if items[i][2] is not None]
            if mine:
                try:
                    with self._errors():
                        await dedup.delete_many({"_id": {"$in": mine}, "at": float(now)})
                except Exception:
                    pass  # the store is failing: the claims expire with the window
            raise
        positions: list[Position | None] = [None] * len(items)
        for index, position in zip(kept, appended):
            positions[index] = position
        return positions

    async def _trim_dedup(self, now: float) -> None:
        """Forget the ids older than ``dedup_max_age`` and all but the newest ``dedup_max_events``."""
        dedup = self._dedup
        if dedup is None:
            raise StoreNotOpen("mongodb")
        await dedup.delete_many({"at": {"$lt": now - self.dedup_max_age}})
        boundary = await dedup.find_one({}, {"at": 1}, sort=[("at", DESCENDING)], skip=self.dedup_max_events)
        if boundary is not None:
            await dedup.delete_many({"at": {"$lte": boundary["at"]}})

    async def _trim_counts(self, last_offsets: Mapping[str, int]) -> int:
        """Delete events beyond ``max_events`` below each topic's given last offset."""
        events, _, _, _ = self._collections()
        over = [
            {"topic": topic, "offset": {"$lte": last - self.max_events}}
            for topic, last in last_offsets.items()
            if last > self.max_events
        ]
        if not over:
            return 0
        result = await events.delete_many({"$or": over})
        return int(result.deleted_count)

    async def position(self, topic: str) -> Position:
        """The stream's current position."""
        with self._errors():
            return await self._head(topic)

    async def read(self, topic: str, since: Position, limit: int = 1000) -> History:
        """The events after ``since``; see :meth:`Store.read`."""
        check_read(since, limit)
        events, _, _, _ = self._collections()
        with self._errors():
            current = await self._head(topic)
            reason = gap_reason(current, since, since.offset + 1)
            if reason is not None:
                return History(current, [], False, reason)
            # Only up to the head read above, so the answer is one consistent state.
            cursor = events.find(
                {"topic": topic, "offset": {"$gt": since.offset, "$lte": current.offset}},
                {"offset": 1, "data": 1, "stored_at": 1},
                sort=[("offset", ASCENDING)],
                limit=limit,
            )
            documents = await cursor.to_list(None)
        # Offsets are contiguous, so the first one after `since` tells whether any was trimmed.
        reason = gap_reason(current, since, int(documents[0]["offset"]) if documents else None)
        if reason is not None:
            return History(current, [], False, reason)
        stored = [StoredEvent(int(d["offset"]), bytes(d["data"]), float(d["stored_at"])) for d in documents]
        return History(current, stored, True, None)

    async def trim(self, now: float) -> int:
        """Apply retention to every topic and delete expired sessions; see :meth:`Store.trim`."""
        events, _, sessions, _ = self._collections()
        cutoff = now - self.max_age
        with self._errors():
            all_topics = [str(t) for t in await events.distinct("topic")]
            heads = await self._heads(all_topics)
            removed = await self._trim_counts({topic: head.offset for topic, head in heads.items()})
            aged = [str(t) for t in await events.distinct("topic", {"stored_at": {"$lt": cutoff}})]
            counts = await asyncio.gather(*(self._trim_age(topic, cutoff) for topic in aged))
            await sessions.delete_many({"expires": {"$lte": now}})
            await self._revocations_collection().delete_many({"expires": {"$lte": now}})
            await self._trim_dedup(now)
        return removed + sum(counts)

    async def _trim_age(self, topic: str, cutoff: float) -> int:
        """Delete ``topic``'s events oldest first, up to the first one stored at or after ``cutoff``."""
        events, topics, _, _ = self._collections()
        young = await events.find_one(
            {"topic": topic, "stored_at": {"$gte": cutoff}}, {"offset": 1}, sort=[("offset", ASCENDING)]
        )
        if young is not None:
            result = await events.delete_many({"topic": topic, "offset": {"$lt": int(young["offset"])}})
            return int(result.deleted_count)
        head = await self._head(topic)
        # Everything goes: keep the last offset first, so the next append continues after it.
        await topics.update_one(
            {"_id": topic}, {"$max": {"offset": head.offset}, "$setOnInsert": {"epoch": head.epoch}}, upsert=True
        )
        result = await events.delete_many({"topic": topic, "offset": {"$lte": head.offset}})
        return int(result.deleted_count)

    # Sessions

    async def save_session(self, token: str, record: Mapping[str, Any], ttl: float, now: float) -> None:
        """Store a session record until ``now + ttl``."""
        check_ttl(ttl)
        _, _, sessions, _ = self._collections()
        expires = now + ttl
        document = {
            "record": encode_json(record, "session record"),
            "expires": expires,
            "expires_at": datetime.fromtimestamp(expires, timezone.utc),  # for the TTL index
        }
        with self._errors():
            await sessions.replace_one({"_id": token}, document, upsert=True)

    async def load_session(self, token: str, now: float) -> dict[str, Any] | None:
        """The live record saved under ``token``, or None."""
        _, _, sessions, _ = self._collections()
        with self._errors():
            document = await sessions.find_one({"_id": token, "expires": {"$gt": now}})
        if document is None:
            return None
        record: dict[str, Any] = decode_json(document["record"])
        return record

    async def delete_session(self, token: str) -> None:
        """Forget a session."""
        _, _, sessions, _ = self._collections()
        with self._errors():
            await sessions.delete_one({"_id": token})

    async def list_sessions(self, now: float) -> list[dict[str, Any]]:
        """Live sessions sorted by token, with ``token`` and ``expires_at`` added."""
        _, _, sessions, _ = self._collections()
        with self._errors():
            cursor = sessions.find({"expires": {"$gt": now}}, sort=[("_id", ASCENDING)])
            documents = await cursor.to_list(None)
        return [session_entry(str(d["_id"]), decode_json(d["record"]), float(d["expires"])) for d in documents]

    # Subscriptions

    async def set_subscriptions(self, owner: str, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        """Replace ``owner``'s subscriptions (one document, replaced atomically)."""
        normalized = normalize_subscriptions(subscriptions)
        _, _, _, collection = self._collections()
        with self._errors():
            if not normalized:
                await collection.delete_one({"_id": owner})
                return
            document = {
                "subscriptions": encode_json(normalized, "subscriptions"),
                "exact_topics": exact_topics(normalized),
            }
            await collection.replace_one({"_id": owner}, document, upsert=True)

    async def get_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s subscriptions in the order they were set."""
        _, _, _, collection = self._collections()
        with self._errors():
            document = await collection.find_one({"_id": owner})
        subscriptions: list[dict[str, Any]] = [] if document is None else decode_json(document["subscriptions"])
        return subscriptions

    async def subscribers(self, topic: str) -> list[str]:
        """Owners with an exact subscription to ``topic``, sorted."""
        _, _, _, collection = self._collections()
        with self._errors():
            cursor = collection.find({"exact_topics": topic}, {"_id": 1}, sort=[("_id", ASCENDING)])
            documents = await cursor.to_list(None)
        return [str(d["_id"]) for d in documents]

    # Revocations

    def _revocations_collection(self) -> AsyncCollection[Document]:
        if self._revocations is None:
            raise StoreNotOpen("mongodb")
        return self._revocations

    async def put_revocation(
        self, key: str, record: Mapping[str, Any], expires_at: float, now: float, *, only_new: bool = False
    ) -> bool:
        """Keep ``record`` under ``key`` until ``expires_at``; see :meth:`Store.put_revocation`.

        With ``only_new``, an upsert whose filter matches only an expired
        document: when a live one holds the key, the upsert's insert meets the
        unique ``_id`` and fails, so the check and the write are one step.
        """
        check_expiry(expires_at, now)
        revocations = self._revocations_collection()
        document = {
            "record": encode_json(record, "revocation record"),
            "expires": float(expires_at),
            "expires_at": datetime.fromtimestamp(expires_at, timezone.utc),  # for the TTL index
        }
        with self._errors():
            if not only_new:
                await revocations.replace_one({"_id": key}, document, upsert=True)
                return True
            try:
                await revocations.update_one({"_id": key, "expires": {"$lte": now}}, {"$set": document}, upsert=True)
            except pymongo.errors.DuplicateKeyError:
                return False
            return True

    async def list_revocations(self, prefix: str, now: float) -> dict[str, dict[str, Any]]:
        """Live records whose key starts with ``prefix``; see :meth:`Store.list_revocations`."""
        revocations = self._revocations_collection()
        with self._errors():
            cursor = revocations.find({"_id": {"$regex": "^" + re.escape(prefix)}, "expires": {"$gt": now}})
            documents = await cursor.to_list(None)
        return {str(d["_id"]): decode_json(d["record"]) for d in documents}
