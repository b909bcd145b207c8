"""Publish events to a Telegraphy gateway from any Python program.

The publisher is synchronous and framework-agnostic: a Django view, a Flask
route, a Celery task or a script calls :meth:`Publisher.publish` and gets back
the events' ids (``meta.id``). Underneath, each call is one HTTP ``POST`` to
the gateway's ``/publish`` endpoint, signed with a short-lived JWT minted from
the shared secret (:func:`telegraphy.tokens.mint_publish_token`).
:meth:`Publisher.revoke` tells the gateway that a user's grants changed or
that the user logged out (``POST /revoke``, signed with a manage token)::

    from telegraphy.event import make_event
    from telegraphy.publisher import Publisher

    with Publisher("http://127.0.0.1:9000", secret) as publisher:
        publisher.publish(make_event("chat.lobby", {"text": "hello"}))
        with publisher.batch():          # one request for both events
            publisher.publish(make_event("shop.Order", {"pk": 1}, "create"))
            publisher.publish(make_event("shop.Order", {"pk": 2}, "create"))
        publisher.revoke(7, grants={"groups": ["staff"], "perms": [], "superuser": False})
        publisher.revoke(7, logout=True)   # end user 7's live sessions

How it behaves:

- One keep-alive connection per thread (and per process: a forked child never
  reuses its parent's socket), so one ``Publisher`` can be shared by every
  thread of a gunicorn worker or a Celery process.
- A keep-alive connection the gateway closed while idle is reopened at once,
  without counting as a retry.
- Connection errors and ``5xx`` answers are retried ``retries`` times with
  exponential backoff and jitter; when every attempt failed,
  :class:`GatewayUnavailable` names the gateway URL.
- Every event gets its id (``meta.id``, a random UUID as 32 hex digits)
  here, when it is published or queued, before the first attempt; an id the
  caller set is kept. Every retry sends the same id, and the gateway
  delivers an id at most once (within its dedup window, 100,000 ids / 24 h
  by default), so a retry after a request whose answer was lost does not
  publish the event twice.
- A ``4xx`` answer is never retried: :class:`PublishRejected` carries the
  status and the gateway's ``error`` code and ``detail``.
- :meth:`Publisher.revoke` uses the same connections, retries and
  fire-and-forget rule; it is never queued by :meth:`Publisher.batch`.
- With ``fire_and_forget=True``, a :class:`PublishError` is logged on the
  ``telegraphy.publisher`` logger instead of raised and the call returns
  ``[]``. An event that is not valid (:class:`telegraphy.event.InvalidEvent`)
  is the caller's bug and is always raised, before anything is sent.

Exceptions::

    PublishError                 root of every delivery failure
    ├── GatewayUnavailable       unreachable, or answered 5xx, on every attempt
    ├── PublishRejected          answered 4xx (bad token, bad event, too large)
    ├── UnexpectedResponse       answered 2xx with a body that is not the API's
    └── SpoolFull                the spool holds ``spool_max_events`` events already
    SpoolLocked (RuntimeError)   another process (or Publisher) holds the spool file

With ``spool="path.sqlite3"`` events are written to a local SQLite file
before they are sent and deleted once the gateway acknowledged them; events
left there (gateway down, process killed) are sent again, in order, by the
next :meth:`Publisher.publish`/:meth:`Publisher.flush_spool` or by the next
``Publisher`` opened on the same file (see docs/publisher.md, "Durable spool").
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import random
import sqlite3
import ssl
import threading
import time
import urllib.parse
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from telegraphy import __version__
from telegraphy.event import InvalidEvent, validate_event
from telegraphy.tokens import MANAGE_TOKEN_TTL, mint_manage_token, mint_publish_token

__all__ = [
    "Batch",
    "GatewayUnavailable",
    "PublishError",
    "PublishRejected",
    "Publisher",
    "SpoolFull",
    "SpoolLocked",
    "UnexpectedResponse",
    "new_event_id",
]

logger = logging.getLogger("telegraphy.publisher")

#: The longest pause between two attempts, whatever ``backoff`` and the attempt number.
MAX_BACKOFF = 5.0

_USER_AGENT = f"telegraphy-publisher/{__version__}"

# Errors that mean "the idle keep-alive connection was closed by the peer":
# on a reused connection they are answered by reconnecting at once.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


class PublishError(Exception):
    """An event could not be delivered to the gateway."""


class GatewayUnavailable(PublishError):
    """The gateway stayed unreachable (or kept answering ``5xx``).

    Attributes:
        url: the gateway URL the publisher was configured with.
        attempts: how many requests were tried.
        reason: what went wrong on the last attempt.
    """

    def __init__(self, url: str, attempts: int, reason: str) -> None:
        self.url = url
        self.attempts = attempts
        self.reason = reason
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"gateway {url} unavailable after {attempts} {plural}: {reason}")


class PublishRejected(PublishError):
    """The gateway refused the request with a ``4xx`` answer; it is not retried.

    Attributes:
        status: the HTTP status (400 bad event, 401 bad token, 413 too large, …).
        error: the gateway's error code, e.g. ``"invalid_token"``.
        detail: the gateway's explanation.
        action: what was refused: ``"publish"`` or ``"revoke"``.
    """

    def __init__(self, status: int, error: str, detail: Any = None, action: str = "publish") -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.action = action
        message = f"gateway rejected the {action} with {status} {error}"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class UnexpectedResponse(PublishError):
    """The gateway answered ``2xx`` with a body that is not ``{"ids": [...]}``.

    The events may have been published; the request is not retried.
    """

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"unexpected answer from the gateway ({status}): {detail}")


class SpoolFull(PublishError):
    """The spool already holds its maximum of events; the new ones were not accepted.

    Always raised, even with ``fire_and_forget``: nothing of the call was spooled or sent.

    Attributes:
        path: the spool file.
        pending: how many events wait in it.
        limit: ``spool_max_events``.
    """

    def __init__(self, path: str, pending: int, limit: int, adding: int) -> None:
        self.path = path
        self.pending = pending
        self.limit = limit
        super().__init__(
            f"spool {path} is full ({pending} pending, limit {limit}); {adding} new event(s) not accepted"
        )


class SpoolLocked(RuntimeError):
    """The spool file is in use by another process or another :class:`Publisher`.

    A spool has one owner at a time; give each process its own file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"spool {path} is in use by another publisher (lock {path}.lock is held)")


#: Answers that say nothing against the event itself (the publisher's configuration, the gateway's load):
#: a spooled event answered so stays in the spool and is sent again later.
_SPOOL_KEEP_STATUSES = frozenset({401, 403, 404, 408, 429})


class _Spool:
    """The SQLite file behind ``Publisher(spool=...)``: one row per event, in publish order."""

    def __init__(self, path: str, max_events: int) -> None:
        self.path = path
        self.max_events = max_events
        self.pid = os.getpid()
        # One owner at a time: an advisory lock held for the life of the spool (released by the OS if
        # the process dies), so no two publishers ever send or delete the same rows.
        import fcntl  # here: the publisher without a spool also runs where there is no fcntl

        self._lock_file = open(path + ".lock", "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise SpoolLocked(path) from None
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS telegraphy_spool"
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, body TEXT NOT NULL)"
            )
        except BaseException:
            self._lock_file.close()
            raise
        #: Serializes spool use between threads: sending pending events in order needs one sender.
        self.lock = threading.RLock()

    def check_owner(self) -> None:
        if os.getpid() != self.pid:
            raise SpoolLocked(self.path)

    def pending(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM telegraphy_spool").fetchone()[0])

    def add(self, events: list[dict[str, Any]]) -> None:
        rows = [
            (str(event["meta"]["id"]), json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
            for event in events
        ]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            pending = self.pending()
            if pending + len(rows) > self.max_events:
                raise SpoolFull(self.path, pending, self.max_events, len(rows))
            self.db.executemany("INSERT INTO telegraphy_spool (event_id, body) VALUES (?, ?)", rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def head(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        cursor = self.db.execute("SELECT seq, body FROM telegraphy_spool ORDER BY seq LIMIT ?", (limit,))
        return [(int(seq), json.loads(body)) for seq, body in cursor.fetchall()]

    def delete(self, seqs: list[int]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("DELETE FROM telegraphy_spool WHERE seq = ?", [(seq,) for seq in seqs])
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
        self._lock_file.close()


class Batch:
    """Events queued by :meth:`Publisher.batch`, sent as one request on exit.

    ``ids`` holds the events' ids (as the gateway answered), once the outermost batch has
    been sent (it stays empty for a nested batch, whose events join the
    enclosing one, and in fire-and-forget mode after a failure).
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.events)


class Publisher:
    """A thread-safe client of the gateway's HTTP publish API.

    Create one per process and share it; call :meth:`close` (or use it as a
    context manager) when done. Connections are opened lazily, on the first
    publish of each thread.

    Args:
        url: the gateway's base URL, e.g. ``"http://127.0.0.1:9000"``; events
            are POSTed to ``url + "/publish"``.
        secret: the secret shared with the gateway.
        timeout: seconds to wait for connecting and for each answer.
        retries: how many times a failed attempt (connection error or ``5xx``)
            is retried; ``0`` tries once.
        backoff: the pause before the first retry, in seconds; it doubles at
            each further retry (at most :data:`MAX_BACKOFF`), with jitter.
        fire_and_forget: log delivery failures instead of raising them.
        token_ttl: lifetime of the publish tokens, in seconds; a token is
            reused until shortly before it expires.
        max_batch: the most events sent in one request; larger batches are
            split into several requests.
        ssl_context: the TLS context for an ``https://`` URL (default: the
            system's trusted certificates).
        spool: path of a local SQLite file that keeps every event until the
            gateway acknowledged it (docs/publisher.md, "Durable spool");
            ``None`` (the default) sends directly. Events already in the file
            are sent when the publisher is created.
        spool_max_events: the most events the spool holds; a publish that
            would exceed it raises :class:`SpoolFull`.

    Raises:
        SpoolLocked: another process or ``Publisher`` holds ``spool``.
    """

    # The clock tokens are minted by; tests replace it.
    _clock = staticmethod(time.time)

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 5,
        retries: int = 3,
        backoff: float = 0.1,
        fire_and_forget: bool = False,
        token_ttl: float = 60,
        max_batch: int = 1000,
        ssl_context: ssl.SSLContext | None = None,
        spool: str | os.PathLike[str] | None = None,
        spool_max_events: int = 10_000,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"gateway url must be http:// or https:// with a host, got {url!r}")
        if not secret:
            raise ValueError("the Telegraphy secret is empty")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        if token_ttl < 2:
            raise ValueError(f"token_ttl must be at least 2 seconds, got {token_ttl}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if spool_max_events < 1:
            raise ValueError(f"spool_max_events must be at least 1, got {spool_max_events}")
        self.url = url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.fire_and_forget = fire_and_forget
        self.token_ttl = token_ttl
        self.max_batch = max_batch
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = parsed.path.rstrip("/") + "/publish"
        self._revoke_path = parsed.path.rstrip("/") + "/revoke"
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._spool: _Spool | None = None
        self._spool_path = None if spool is None else os.fspath(spool)
        self._spool_max_events = spool_max_events
        if self._spool_path is not None:
            self._open_spool()
            # What a previous run left behind goes first (its failure is logged, not raised).
            self.flush_spool()

    def __repr__(self) -> str:
        return f"<Publisher {self.url}>"

    # -- public API ----------------------------------------------------------

    def publish(self, event: Mapping[str, Any]) -> list[str]:
        """Publish one event (as built by :func:`telegraphy.event.make_event`).

        The event is sent with its ``meta.id``, minted here unless it has
        one; the caller's mapping is not changed.

        Returns:
            the one-element list of the event's id (``meta.id``); ``[]`` inside
            :meth:`batch` (the event is queued) and after a logged failure in
            fire-and-forget mode.

        Raises:
            InvalidEvent: the event does not have the Telegraphy shape.
            PublishError: delivery failed (unless ``fire_and_forget``).
        """
        return self.publish_many([event])

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Publish several events in one request (or ``max_batch``-sized requests).

        Returns:
            the events' ids (``meta.id``, as the gateway answered), in order; ``[]`` inside :meth:`batch`
            or for no events.

        Raises:
            InvalidEvent: an event does not have the Telegraphy shape; nothing
                is sent.
            PublishError: delivery failed (unless ``fire_and_forget``).
        """
        checked = [_with_id(validate_event(dict(event), index)) for index, event in enumerate(events)]
        batches = self._batch_stack()
        if batches:
            batches[-1].events.extend(checked)
            return []
        if self._spool_path is not None:
            return self._publish_spooled(checked)
        ids: list[str] = []
        try:
            for start in range(0, len(checked), self.max_batch):
                chunk = checked[start : start + self.max_batch]
                ids.extend(self._send(self._encode(chunk, start), len(chunk)))
        except PublishError as exc:
            if not self.fire_and_forget:
                raise
            logger.error("dropped %d event(s): %s", len(checked) - len(ids), exc)
        return ids

    def flush_spool(self) -> int:
        """Send the events waiting in the spool, oldest first, until one cannot be delivered.

        Acknowledged events are deleted from the spool; an event the gateway
        refused for good (a ``4xx`` other than 401, 403, 404, 408 and 429) is
        deleted and logged at ERROR. A delivery failure is logged, not raised.

        Returns:
            how many events are still waiting (``0`` without a spool).
        """
        if self._spool_path is None:
            return 0
        spool = self._open_spool()
        with spool.lock:
            spool.check_owner()
            self._drain(spool)
            return spool.pending()

    def spooled(self) -> int:
        """How many events wait in the spool (``0`` without a spool)."""
        if self._spool_path is None:
            return 0
        spool = self._open_spool()
        with spool.lock:
            return spool.pending()

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """Queue the events published inside the block; send them as one request on exit.

        The queue belongs to the calling thread. If the block raises, the
        queued events are discarded. A batch opened inside another one adds its
        events to the enclosing batch, which sends them all.
        """
        stack = self._batch_stack()
        current = Batch()
        stack.append(current)
        try:
            yield current
        except BaseException:
            stack.pop()
            raise
        stack.pop()
        if stack:
            stack[-1].events.extend(current.events)
        elif current.events:
            current.ids = self.publish_many(current.events)

    def revoke(
        self,
        user_id: str | int,
        *,
        logout: bool = False,
        grants: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Tell the gateway that a user's grants changed, or that the user is gone.

        One ``POST /revoke`` with a fresh manage token (single use, bound to
        the body by its hash) and the body
        ``{"user": "<id>", "logout": <bool>, "grants": <grants or null>}``
        (docs/http-api.md). The gateway has dealt with the user's live
        sessions when this returns.

        Args:
            user_id: the user whose live sessions are concerned (``sub`` of
                their connect tokens).
            logout: end every live session of the user.
            grants: the user's grants from now on, replacing those of their
                connect tokens: ``{"groups": [...], "perms": [...],
                "superuser": bool}`` (the claims of
                :func:`telegraphy.tokens.mint_connect_token`); ``None`` keeps them.

        Returns:
            the gateway's JSON answer (``{}`` when it is not an object), or
            ``None`` after a logged failure in fire-and-forget mode.

        Raises:
            ValueError: ``user_id`` is empty, ``grants`` is not a mapping, or
                there is nothing to do (no ``logout``, no ``grants``).
            PublishError: the gateway was unreachable or refused (unless
                ``fire_and_forget``).
        """
        user = "" if user_id is None else str(user_id)
        if not user:
            raise ValueError("revoke needs a user id")
        if grants is not None and not isinstance(grants, Mapping):
            raise ValueError(f"grants must be a mapping or None, got {type(grants).__name__}")
        if not logout and grants is None:
            raise ValueError("nothing to revoke: pass logout=True, or the user's new grants")
        body = {"user": user, "logout": bool(logout), "grants": None if grants is None else dict(grants)}
        payload = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        try:
            # A fresh manage token per attempt, naming this body: the gateway
            # accepts each once (a retry after a lost answer is a new request).
            _status, answer = self._post(self._revoke_path, payload, lambda: self._manage_token_for(payload), "revoke")
        except PublishError as exc:
            if not self.fire_and_forget:
                raise
            logger.error("could not revoke the sessions of user %s: %s", user, exc)
            return None
        try:
            decoded = json.loads(answer) if answer else {}
        except ValueError:
            decoded = {}
        return decoded if isinstance(decoded, dict) else {}

    def close(self) -> None:
        """Close every connection this publisher opened, in every thread.

        Call it when no thread is publishing any more; a later publish
        reconnects. The spool file, if any, is closed and its lock released;
        a later publish opens it again.
        """
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            connection.close()
        spool, self._spool = self._spool, None
        if spool is not None:
            with spool.lock:
                spool.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- spool -----------------------------------------------------------------

    def _open_spool(self) -> _Spool:
        """The spool, opened (and locked) on first use and again after :meth:`close`."""
        assert self._spool_path is not None
        with self._lock:
            if self._spool is None:
                self._spool = _Spool(self._spool_path, self._spool_max_events)
            return self._spool

    def _publish_spooled(self, events: list[dict[str, Any]]) -> list[str]:
        """Write ``events`` to the spool, then send everything pending, in order; return their ids."""
        spool = self._open_spool()
        for index, event in enumerate(events):
            self._encode([event], index)  # a body that cannot be sent is the caller's error, raised now
        ids = [str(event["meta"]["id"]) for event in events]
        with spool.lock:
            spool.check_owner()
            spool.add(events)  # SpoolFull is raised even in fire-and-forget mode: nothing was accepted
            refused = self._drain(spool)
        mine = set(ids)
        for event_id, exc in refused:
            if event_id in mine and not self.fire_and_forget:
                raise exc  # one of this call's events was refused for good (it is out of the spool, logged)
        return ids

    def _drain(self, spool: _Spool) -> list[tuple[str, PublishRejected]]:
        """Send pending rows oldest first; stop (leaving them) at the first one that cannot be delivered now.

        Returns:
            the ids of the events refused for good (dropped from the spool), with the refusal.
        """
        refused: list[tuple[str, PublishRejected]] = []
        while True:
            rows = spool.head(self.max_batch)
            if not rows:
                return refused
            try:
                self._send(self._encode([event for _seq, event in rows], 0), len(rows))
            except PublishRejected as exc:
                if exc.status in _SPOOL_KEEP_STATUSES:
                    logger.warning("%d event(s) kept in spool %s: %s", spool.pending(), spool.path, exc)
                    return refused
                if len(rows) > 1:
                    # Find the refused event(s): one at a time, so the others are delivered.
                    for seq, event in rows:
                        if not self._send_spooled_one(spool, seq, event, refused):
                            return refused
                    continue
                self._drop_refused(spool, rows[0][0], rows[0][1], exc, refused)
                continue
            except PublishError as exc:
                logger.warning("%d event(s) kept in spool %s: %s", spool.pending(), spool.path, exc)
                return refused
            spool.delete([seq for seq, _event in rows])

    def _send_spooled_one(
        self, spool: _Spool, seq: int, event: dict[str, Any], refused: list[tuple[str, PublishRejected]]
    ) -> bool:
        """Send one spooled event; ``False`` when it must stay (and what follows it too)."""
        try:
            self._send(self._encode([event], 0), 1)
        except PublishRejected as exc:
            if exc.status in _SPOOL_KEEP_STATUSES:
                logger.warning("%d event(s) kept in spool %s: %s", spool.pending(), spool.path, exc)
                return False
            self._drop_refused(spool, seq, event, exc, refused)
            return True
        except PublishError as exc:
            logger.warning("%d event(s) kept in spool %s: %s", spool.pending(), spool.path, exc)
            return False
        spool.delete([seq])
        return True

    @staticmethod
    def _drop_refused(
        spool: _Spool,
        seq: int,
        event: dict[str, Any],
        exc: PublishRejected,
        refused: list[tuple[str, PublishRejected]],
    ) -> None:
        """Delete an event the gateway refused for good from the spool, logging it (id, name, reason)."""
        event_id = str(event["meta"]["id"])
        logger.error("dropped event %s (%s) from spool %s: %s", event_id, event.get("name"), spool.path, exc)
        spool.delete([seq])
        refused.append((event_id, exc))

    # -- request ---------------------------------------------------------------

    def _send(self, body: bytes, count: int) -> list[str]:
        """POST ``body`` to ``/publish`` with retries; return the ids from the gateway's answer."""
        status, payload = self._post(self._path, body, self._current_token, "publish")
        return self._ids(status, payload, count)

    def _post(self, path: str, body: bytes, token: Callable[[], str], action: str) -> tuple[int, bytes]:
        """POST ``body`` to ``path`` with retries; return the status and body of a 2xx answer."""
        attempts = 0
        reconnected = False
        while True:
            attempts += 1
            connection, reused = self._connection()
            try:
                status, payload = self._round_trip(connection, body, path, token)
            except (OSError, http.client.HTTPException) as exc:
                self._discard_connection()
                if reused and not reconnected and isinstance(exc, _STALE_CONNECTION_ERRORS):
                    # The gateway closed the idle keep-alive connection before
                    # reading this request: reconnect now, it is not a failure.
                    logger.debug("keep-alive connection to %s was closed; reconnecting", self.url)
                    reconnected = True
                    attempts -= 1
                    continue
                reason = _describe(exc)
            else:
                if 200 <= status < 300:
                    return status, payload
                if status < 500:
                    error, detail = _error_of(status, payload)
                    if status == 401:
                        self._forget_token()
                    raise PublishRejected(status, error, detail, action)
                error, detail = _error_of(status, payload)
                reason = f"HTTP {status} {error}" + (f": {detail}" if detail else "")
            if attempts > self.retries:
                raise GatewayUnavailable(self.url, attempts, reason)
            delay = min(MAX_BACKOFF, self.backoff * 2 ** (attempts - 1))
            # Jitter spreads the retries of many workers that failed together.
            delay *= 0.5 + random.random() / 2
            logger.info(
                "%s to %s failed (%s); retry %d of %d in %.2fs", action, self.url, reason, attempts, self.retries, delay
            )
            time.sleep(delay)

    def _round_trip(
        self,
        connection: http.client.HTTPConnection,
        body: bytes,
        path: str | None = None,
        token: Callable[[], str] | None = None,
    ) -> tuple[int, bytes]:
        headers = {
            "Authorization": f"Bearer {(token or self._current_token)()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        connection.request("POST", path or self._path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()  # read it all, so the connection can be reused
        if response.will_close:
            self._discard_connection()
        return response.status, payload

    def _ids(self, status: int, payload: bytes, count: int) -> list[str]:
        try:
            answer = json.loads(payload)
            ids = answer["ids"]
            if not isinstance(ids, list):
                raise TypeError("'ids' is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise UnexpectedResponse(status, f"{exc}; body {_excerpt(payload)!r}") from None
        if len(ids) != count:
            logger.warning("gateway %s returned %d ids for %d events", self.url, len(ids), count)
        return [str(event_id) for event_id in ids]

    @staticmethod
    def _encode(events: list[dict[str, Any]], offset: int) -> bytes:
        body: Any = events[0] if len(events) == 1 else events
        try:
            return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            index = offset if len(events) == 1 else None
            raise InvalidEvent("data", f"is not JSON-serializable: {exc}", index) from None

    # -- per-thread state ----------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """Return this thread's connection and whether it was used before."""
        local = self._local
        connection: http.client.HTTPConnection | None = getattr(local, "connection", None)
        if connection is not None and local.pid == os.getpid() and connection.sock is not None:
            return connection, True
        if connection is not None and local.pid == os.getpid():
            connection.close()
        # A forked child drops (without closing) the socket it shares with its parent.
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        local.connection = connection
        local.pid = os.getpid()
        with self._lock:
            self._connections.add(connection)
        return connection, False

    def _discard_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                self._connections.discard(connection)

    def _batch_stack(self) -> list[Batch]:
        stack: list[Batch] | None = getattr(self._local, "batches", None)
        if stack is None:
            stack = self._local.batches = []
        return stack

    def _current_token(self) -> str:
        now = self._clock()
        with self._lock:
            if self._token is None or now >= self._token_renew_at:
                self._token = mint_publish_token(self.secret, self.token_ttl, now=now)
                # Renew a little before expiry so that a token never expires in flight.
                self._token_renew_at = now + self.token_ttl - min(10.0, self.token_ttl / 4)
            return self._token

    def _manage_token_for(self, body: bytes) -> str:
        """A single-use manage token for one ``/revoke`` request with ``body`` (see :mod:`telegraphy.tokens`)."""
        return mint_manage_token(self.secret, min(self.token_ttl, MANAGE_TOKEN_TTL), body=body, now=self._clock())

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None


def new_event_id() -> str:
    """A fresh event id: a random (version 4) UUID as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def _with_id(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` (a copy of the caller's) with a ``meta.id``: minted once, so every attempt sends the same one."""
    meta = event.get("meta")
    if not isinstance(meta, dict) or "id" not in meta:
        event["meta"] = {**(meta or {}), "id": new_event_id()}
    return event


def _error_of(status: int, payload: bytes) -> tuple[str, Any]:
    """Return the ``error`` code and ``detail`` of a gateway error answer."""
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer["error"], answer.get("detail")
    reason = http.client.responses.get(status, "error").lower().replace(" ", "_")
    return reason, _excerpt(payload) or None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _excerpt(payload: bytes, limit: int = 200) -> str:
    return payload[:limit].decode("utf-8", "replace")
