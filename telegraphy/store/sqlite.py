"""The SQLite store: the embedded default, durable, with no server to run.

One ``sqlite3`` connection per store, used only from the store's own worker
thread, so the event loop never blocks on disk. The database is in WAL mode
(readers don't wait for the writer) with ``synchronous=NORMAL``: a committed
append survives a crash of the process; a power cut may lose the last
moments, never corrupt the file.

Several gateway processes may share one file. Every write runs in a
``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write lock
before reading the topic's last offset, so two processes never hand out the
same offset; a writer waits up to ``busy_timeout`` seconds for the lock.

Tables (``telegraphy`` is the ``prefix`` option)::

    telegraphy_meta           key, value: the database's epoch, made when the file is created
    telegraphy_topics         topic, epoch, last_offset
    telegraphy_events         topic, seq, data, stored_at      (seq is the offset)
    telegraphy_sessions       token, record, expires_at
    telegraphy_subscriptions  owner, idx, topic, match, options
    telegraphy_revocations    key, record, expires_at
    telegraphy_dedup          seq, id, stored_at: the event ids of ``append_once``'s window
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

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
    gap_reason,
    normalize_subscriptions,
    session_entry,
)
from .errors import StoreError, StoreNotOpen, StoreUnavailable

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}_topics (
    topic TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    last_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}_events (
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL,
    PRIMARY KEY (topic, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}_events_stored_at ON {p}_events (stored_at);
CREATE TABLE IF NOT EXISTS {p}_sessions (
    token TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_sessions_expires_at ON {p}_sessions (expires_at);
CREATE TABLE IF NOT EXISTS {p}_subscriptions (
    owner TEXT NOT NULL,
    idx INTEGER NOT NULL,
    topic TEXT NOT NULL,
    match TEXT NOT NULL,
    options TEXT NOT NULL,
    PRIMARY KEY (owner, idx)
);
CREATE INDEX IF NOT EXISTS {p}_subscriptions_topic ON {p}_subscriptions (topic, match);
CREATE TABLE IF NOT EXISTS {p}_revocations (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_revocations_expires_at ON {p}_revocations (expires_at);
CREATE TABLE IF NOT EXISTS {p}_dedup (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_dedup_stored_at ON {p}_dedup (stored_at);
"""


class SQLiteStore:
    """A :class:`~telegraphy.store.base.Store` in one SQLite database file.

    Args:
        path: the database file (created if missing; its directory must
            exist), or ``":memory:"`` for a private, non-durable database.
        max_events: events kept per topic.
        max_age: seconds an event is kept (applied by :meth:`trim`).
        prefix: table name prefix.
        busy_timeout: seconds a write waits for another process's lock.
        dedup_max_events: event ids remembered by :meth:`append_once`.
        dedup_max_age: seconds an event id is remembered.
        url: the URL the store was opened from, for error messages.
    """

    def __init__(
        self,
        path: str,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age: float = DEFAULT_MAX_AGE,
        prefix: str = DEFAULT_PREFIX,
        busy_timeout: float = 10.0,
        url: str | None = None,
        dedup_max_events: int = DEFAULT_DEDUP_MAX_EVENTS,
        dedup_max_age: float = DEFAULT_DEDUP_MAX_AGE,
    ) -> None:
        check_options(max_events, max_age, prefix)
        check_dedup_options(dedup_max_events, dedup_max_age)
        self.dedup_max_events = dedup_max_events
        self.dedup_max_age = float(dedup_max_age)
        self.path = path
        self.max_events = max_events
        self.max_age = float(max_age)
        self.prefix = prefix
        self.busy_timeout = busy_timeout
        self.url = url or f"sqlite:///{path}"
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, prefix={self.prefix!r})"

    # Plumbing: one thread owns the connection

    async def _run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        executor, connection = self._executor, self._connection
        if executor is None or connection is None:
            raise StoreNotOpen("sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._call, function, connection)

    def _call(self, function: Callable[[sqlite3.Connection], T], connection: sqlite3.Connection) -> T:
        try:
            return function(connection)
        except sqlite3.OperationalError as exc:
            # "database is locked" after busy_timeout, a vanished directory, a full disk, ...
            raise StoreUnavailable(self.url, str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    @contextmanager
    def _write(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database's write lock from its start."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextmanager
    def _snapshot(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees the same committed state."""
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            if connection.in_transaction:
                connection.execute("COMMIT")

    async def open(self) -> None:
        """Open the file, switch it to WAL mode and create the tables."""
        if self._connection is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telegraphy-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, self._connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor, self._connection = executor, connection

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(self.url, f"{exc} ({self.path})") from exc
        # Switching to WAL and creating the schema can meet SQLITE_BUSY at
        # once, without the busy handler, when another process opens the same
        # new file at the same moment: retry until busy_timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._prepare(connection)
                return connection
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    connection.close()
                    raise StoreUnavailable(self.url, f"{exc} ({self.path})") from exc
                time.sleep(0.02)
            except sqlite3.Error as exc:
                connection.close()
                raise StoreUnavailable(self.url, f"{exc} ({self.path})") from exc

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Put the database in WAL mode and create the schema and epoch (idempotent)."""
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        with self._write(connection):
            for statement in _SCHEMA.format(p=self.prefix).split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(
                f"INSERT OR IGNORE INTO {self.prefix}_meta (key, value) VALUES ('epoch', ?)",
                (secrets.token_hex(8),),
            )

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        executor, connection = self._executor, self._connection
        self._executor = self._connection = None
        if executor is None or connection is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    # Event history

    def _store_epoch(self, connection: sqlite3.Connection) -> str:
        row = connection.execute(f"SELECT value FROM {self.prefix}_meta WHERE key = 'epoch'").fetchone()
        return str(row[0])

    def _append_one(self, connection: sqlite3.Connection, topic: str, data: bytes, now: float) -> Position:
        p = self.prefix
        # The caller holds the write lock (BEGIN IMMEDIATE): nobody else can read
        # this last_offset until we commit the new one.
        row = connection.execute(f"SELECT epoch, last_offset FROM {p}_topics WHERE topic = ?", (topic,)).fetchone()
        if row is None:
            epoch, offset = self._store_epoch(connection), 1
            connection.execute(
                f"INSERT INTO {p}_topics (topic, epoch, last_offset) VALUES (?, ?, ?)", (topic, epoch, offset)
            )
        else:
            epoch, offset = str(row[0]), int(row[1]) + 1
            connection.execute(f"UPDATE {p}_topics SET last_offset = ? WHERE topic = ?", (offset, topic))
        connection.execute(
            f"INSERT INTO {p}_events (topic, seq, data, stored_at) VALUES (?, ?, ?, ?)",
            (topic, offset, bytes(data), float(now)),
        )
        if offset > self.max_events:
            connection.execute(
                f"DELETE FROM {p}_events WHERE topic = ? AND seq <= ?", (topic, offset - self.max_events)
            )
        return Position(epoch, offset)

    async def append(self, topic: str, data: bytes, now: float) -> Position:
        """Append one event in its own transaction; see :meth:`Store.append`."""

        def append(connection: sqlite3.Connection) -> Position:
            with self._write(connection):
                return self._append_one(connection, topic, data, now)

        return await self._run(append)

    async def append_many(self, items: Sequence[tuple[str, bytes]], now: float) -> list[Position]:
        """Append several events in one transaction; see :meth:`Store.append_many`."""
        items = list(items)

        def append_many(connection: sqlite3.Connection) -> list[Position]:
            with self._write(connection):
                return [self._append_one(connection, topic, data, now) for topic, data in items]

        return await self._run(append_many) if items else []

    def _claim(self, connection: sqlite3.Connection, event_id: str, now: float) -> bool:
        """Put ``event_id`` in the dedup window; False when it is there already (the caller holds the write lock)."""
        p = self.prefix
        row = connection.execute(f"SELECT stored_at FROM {p}_dedup WHERE id = ?", (event_id,)).fetchone()
        if row is not None:
            if float(row[0]) >= now - self.dedup_max_age:
                return False
            connection.execute(f"DELETE FROM {p}_dedup WHERE id = ?", (event_id,))
        seq = connection.execute(
            f"INSERT INTO {p}_dedup (id, stored_at) VALUES (?, ?)", (event_id, float(now))
        ).lastrowid
        if seq is not None and seq > self.dedup_max_events:
            # seq only grows (AUTOINCREMENT): the window is the last dedup_max_events of them.
            connection.execute(f"DELETE FROM {p}_dedup WHERE seq <= ?", (seq - self.dedup_max_events,))
        return True

    async def append_once(self, items: Sequence[tuple[str, bytes, str | None]], now: float) -> list[Position | None]:
        """Append several events in one transaction, each id at most once; see :meth:`Store.append_once`."""
        items = list(items)

        def append_once(connection: sqlite3.Connection) -> list[Position | None]:
            with self._write(connection):
                return [
                    self._append_one(connection, topic, data, now)
                    if event_id is None or self._claim(connection, event_id, now)
                    else None
                    for topic, data, event_id in items
                ]

        return await self._run(append_once) if items else []

    def _position(self, connection: sqlite3.Connection, topic: str) -> Position:
        row = connection.execute(
            f"SELECT epoch, last_offset FROM {self.prefix}_topics WHERE topic = ?", (topic,)
        ).fetchone()
        if row is None:
            # The epoch the topic will get on its first append.
            return Position(self._store_epoch(connection), 0)
        return Position(str(row[0]), int(row[1]))

    async def position(self, topic: str) -> Position:
        """The stream's current position."""

        def position(connection: sqlite3.Connection) -> Position:
            with self._snapshot(connection):
                return self._position(connection, topic)

        return await self._run(position)

    async def read(self, topic: str, since: Position, limit: int = 1000) -> History:
        """The events after ``since``, from one consistent snapshot; see :meth:`Store.read`."""
        check_read(since, limit)
        p = self.prefix

        def read(connection: sqlite3.Connection) -> History:
            with self._snapshot(connection):
                current = self._position(connection, topic)
                row = connection.execute(
                    f"SELECT seq FROM {p}_events WHERE topic = ? ORDER BY seq LIMIT 1", (topic,)
                ).fetchone()
                reason = gap_reason(current, since, None if row is None else int(row[0]))
                if reason is not None:
                    return History(current, [], False, reason)
                rows = connection.execute(
                    f"SELECT seq, data, stored_at FROM {p}_events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (topic, since.offset, limit),
                ).fetchall()
            events = [StoredEvent(int(seq), bytes(data), float(stored_at)) for seq, data, stored_at in rows]
            return History(current, events, True, None)

        return await self._run(read)

    async def trim(self, now: float) -> int:
        """Apply retention and drop expired sessions, in one transaction; see :meth:`Store.trim`."""
        p = self.prefix
        cutoff = now - self.max_age

        def trim(connection: sqlite3.Connection) -> int:
            removed = 0
            with self._write(connection):
                over = connection.execute(
                    f"SELECT topic, last_offset FROM {p}_topics WHERE last_offset > ?", (self.max_events,)
                ).fetchall()
                for topic, last_offset in over:
                    removed += connection.execute(
                        f"DELETE FROM {p}_events WHERE topic = ? AND seq <= ?",
                        (topic, int(last_offset) - self.max_events),
                    ).rowcount
                aged = connection.execute(
                    f"SELECT DISTINCT topic FROM {p}_events WHERE stored_at < ?", (cutoff,)
                ).fetchall()
                for (topic,) in aged:
                    # Remove oldest first up to the first young event, so history stays contiguous.
                    young = connection.execute(
                        f"SELECT seq FROM {p}_events WHERE topic = ? AND stored_at >= ? ORDER BY seq LIMIT 1",
                        (topic, cutoff),
                    ).fetchone()
                    if young is None:
                        cursor = connection.execute(f"DELETE FROM {p}_events WHERE topic = ?", (topic,))
                    else:
                        cursor = connection.execute(
                            f"DELETE FROM {p}_events WHERE topic = ? AND seq < ?", (topic, int(young[0]))
                        )
                    removed += cursor.rowcount
                connection.execute(f"DELETE FROM {p}_sessions WHERE expires_at <= ?", (now,))
                connection.execute(f"DELETE FROM {p}_revocations WHERE expires_at <= ?", (now,))
                connection.execute(f"DELETE FROM {p}_dedup WHERE stored_at < ?", (now - self.dedup_max_age,))
            return removed

        return await self._run(trim)

    # Sessions

    async def save_session(self, token: str, record: Mapping[str, Any], ttl: float, now: float) -> None:
        """Store a session record until ``now + ttl``."""
        check_ttl(ttl)
        text = encode_json(record, "session record")

        def save(connection: sqlite3.Connection) -> None:
            with self._write(connection):
                connection.execute(
                    f"INSERT OR REPLACE INTO {self.prefix}_sessions (token, record, expires_at) VALUES (?, ?, ?)",
                    (token, text, now + ttl),
                )

        await self._run(save)

    async def load_session(self, token: str, now: float) -> dict[str, Any] | None:
        """The live record saved under ``token``, or None."""

        def load(connection: sqlite3.Connection) -> dict[str, Any] | None:
            row = connection.execute(
                f"SELECT record FROM {self.prefix}_sessions WHERE token = ? AND expires_at > ?", (token, now)
            ).fetchone()
            if row is None:
                return None
            record: dict[str, Any] = decode_json(row[0])
            return record

        return await self._run(load)

    async def delete_session(self, token: str) -> None:
        """Forget a session."""

        def delete(connection: sqlite3.Connection) -> None:
            with self._write(connection):
                connection.execute(f"DELETE FROM {self.prefix}_sessions WHERE token = ?", (token,))

        await self._run(delete)

    async def list_sessions(self, now: float) -> list[dict[str, Any]]:
        """Live sessions sorted by token, with ``token`` and ``expires_at`` added."""

        def list_sessions(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                f"SELECT token, record, expires_at FROM {self.prefix}_sessions WHERE expires_at > ? ORDER BY token",
                (now,),
            ).fetchall()
            return [session_entry(str(token), decode_json(text), float(expires)) for token, text, expires in rows]

        return await self._run(list_sessions)

    # Subscriptions

    async def set_subscriptions(self, owner: str, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        """Replace ``owner``'s subscriptions in one transaction."""
        normalized = normalize_subscriptions(subscriptions)
        rows = [
            (owner, index, s["topic"], s["match"], encode_json(s["options"], "options"))
            for index, s in enumerate(normalized)
        ]
        p = self.prefix

        def replace(connection: sqlite3.Connection) -> None:
            with self._write(connection):
                connection.execute(f"DELETE FROM {p}_subscriptions WHERE owner = ?", (owner,))
                connection.executemany(
                    f"INSERT INTO {p}_subscriptions (owner, idx, topic, match, options) VALUES (?, ?, ?, ?, ?)", rows
                )

        await self._run(replace)

    async def get_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s subscriptions in the order they were set."""

        def get(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = connection.execute(
                f"SELECT topic, match, options FROM {self.prefix}_subscriptions WHERE owner = ? ORDER BY idx",
                (owner,),
            ).fetchall()
            return [{"topic": topic, "match": match, "options": decode_json(options)} for topic, match, options in rows]

        return await self._run(get)

    async def subscribers(self, topic: str) -> list[str]:
        """Owners with an exact subscription to ``topic``, sorted."""

        def subscribers(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(
                f"SELECT DISTINCT owner FROM {self.prefix}_subscriptions WHERE topic = ? AND match = 'exact' "
                "ORDER BY owner",
                (topic,),
            ).fetchall()
            return [str(owner) for (owner,) in rows]

        return await self._run(subscribers)

    # Revocations

    async def put_revocation(
        self, key: str, record: Mapping[str, Any], expires_at: float, now: float, *, only_new: bool = False
    ) -> bool:
        """Keep ``record`` under ``key`` until ``expires_at``; see :meth:`Store.put_revocation`."""
        check_expiry(expires_at, now)
        text = encode_json(record, "revocation record")
        p = self.prefix
        # The upsert leaves a live row alone under only_new: rowcount says which happened.
        condition = f" WHERE {p}_revocations.expires_at <= ?" if only_new else ""
        parameters: tuple[Any, ...] = (key, text, float(expires_at), now) if only_new else (key, text, float(expires_at))

        def put(connection: sqlite3.Connection) -> bool:
            with self._write(connection):
                cursor = connection.execute(
                    f"INSERT INTO {p}_revocations (key, record, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET record = excluded.record, expires_at = excluded.expires_at"
                    + condition,
                    parameters,
                )
                return cursor.rowcount > 0

        return await self._run(put)

    async def list_revocations(self, prefix: str, now: float) -> dict[str, dict[str, Any]]:
        """Live records whose key starts with ``prefix``; see :meth:`Store.list_revocations`."""

        def list_revocations(connection: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            rows = connection.execute(
                f"SELECT key, record FROM {self.prefix}_revocations WHERE expires_at > ? AND substr(key, 1, ?) = ?",
                (now, len(prefix), prefix),
            ).fetchall()
            return {str(key): decode_json(text) for key, text in rows}

        return await self._run(list_revocations)
