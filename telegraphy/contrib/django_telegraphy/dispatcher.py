"""Hold events until their transaction commits, then publish each transaction's events at once.

:func:`enqueue` is called by the model signal receivers and by
:func:`send_event`. What happens next depends on the database connection:

- outside a transaction (autocommit), the change is already committed: the
  event is published right away, like ``transaction.on_commit`` would;
- inside ``atomic()``, each event is registered with
  ``transaction.on_commit``, so Django itself drops the events of a rolled
  back transaction or savepoint. When the outermost block commits, the
  surviving events are collected and published as one batch: one HTTP
  request per transaction.

Collecting needs one callback that runs after every per-event callback of
the commit, and survives the rollback of any savepoint. Django has no such
hook, so the flush callback is appended to the connection's ``on_commit``
list at the outermost level (as ``on_commit`` outside any savepoint would),
and it is appended again after each new event: only the latest one flushes.

The same machinery, :func:`after_commit`, holds the revocations of
:mod:`.revocation` (one queue per kind of item and connection).

Events go to the publisher (:mod:`telegraphy.publisher`), or, while
:func:`telegraphy.contrib.django_telegraphy.testing.capture_events` is
active, to the in-memory outboxes instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, transaction

from telegraphy.event import make_event
from telegraphy.publisher import Publisher

from .audiences import PUBLIC, AudienceSpec, wire_audience, wire_projections
from .conf import PREFIX
from .conf import settings as conf

__all__ = ["after_commit", "deliver", "enqueue", "get_publisher", "reset_publisher", "send_event"]

logger = logging.getLogger("telegraphy.django")

_publisher_lock = threading.Lock()
_publisher: Publisher | None = None
_publisher_key: tuple[Any, ...] | None = None


class Capture(Protocol):
    """Where :func:`~.testing.capture_events` records what would have been sent."""

    def record(self, events: list[dict[str, Any]]) -> None: ...

    def record_revocation(self, revocation: dict[str, Any]) -> None: ...


# Outboxes of capture_events(): while one is active, events go there and not
# to the gateway. Shared by all threads, so a live server's thread counts too.
_capture_lock = threading.Lock()
_captures: list[Capture] = []


def send_event(
    name: str,
    data: Mapping[str, Any] | None = None,
    event_type: str = "custom",
    *,
    verbose_name: str | None = None,
    meta: Mapping[str, Any] | None = None,
    using: str | None = None,
    audience: AudienceSpec | None = None,
    projections: Any = None,
) -> None:
    """Publish a custom event once the current transaction commits (at once outside one).

    Args:
        name: the event name and WAMP topic, e.g. ``"chat.lobby"``.
        data: the JSON-serializable payload.
        event_type: the event type; ``"custom"`` unless told.
        verbose_name: a human name for the event (default ``name``).
        meta: more ``meta`` fields.
        using: the database alias whose transaction to follow (default ``"default"``).
        audience: who may receive it (see :mod:`.audiences`); default
            ``TELEGRAPHY_DEFAULT_AUDIENCE``, unless ``meta`` has an ``audience``.
        projections: which data fields each audience gets, as on event classes.

    Raises:
        telegraphy.event.InvalidEvent: the name or data is not valid.
        AudienceError: the audience or projections are malformed.
    """
    extra = dict(meta or {})
    if audience is not None or "audience" not in extra:
        wired = wire_audience(conf.DEFAULT_AUDIENCE if audience is None else audience)
        if wired != PUBLIC:
            extra["audience"] = wired
    if projections is not None:
        extra["projections"] = wire_projections(projections)
    event = make_event(name, data, event_type, verbose_name=verbose_name, meta=extra or None)
    enqueue(event, using)


def enqueue(event: dict[str, Any], using: str | None = None) -> None:
    """Publish ``event`` when the transaction of connection ``using`` commits."""
    if not is_active():
        return
    after_commit("events", event, deliver, using)


def after_commit(queue: str, item: Any, handle: Callable[[list[Any]], None], using: str | None = None) -> None:
    """Call ``handle`` with ``item`` and the other committed items of ``queue`` once the transaction commits.

    Outside a transaction ``handle([item])`` runs at once. Items of rolled
    back blocks are dropped; the survivors of one transaction reach
    ``handle`` in one call, in order.
    """
    connection = transaction.get_connection(using or DEFAULT_DB_ALIAS)
    if not connection.in_atomic_block:
        handle([item])
        return
    pending = _pending(connection, queue, handle)
    transaction.on_commit(_Committed(pending, item), using=connection.alias)
    flush = _Flush(pending)
    pending.flush = flush
    run_on_commit = getattr(connection, "run_on_commit", None)
    if isinstance(run_on_commit, list):
        # (savepoint ids, callback, robust), as on_commit() records it at the
        # outermost level: no savepoint rollback can discard it.
        run_on_commit.append((set(), flush, False))
    else:  # pragma: no cover - a database backend that does things differently
        transaction.on_commit(flush, using=connection.alias)


def is_active() -> bool:
    """Whether events are produced: publishing is enabled, or an outbox captures them."""
    return bool(_captures) or bool(conf.ENABLED)


def deliver(events: list[dict[str, Any]]) -> None:
    """Hand committed ``events`` to the outboxes, or publish them in one request.

    With ``TELEGRAPHY_FIRE_AND_FORGET`` (the default), a failure is logged
    and never raised.
    """
    if not events:
        return
    with _capture_lock:
        captures = list(_captures)
    if captures:
        for capture in captures:
            capture.record(events)
        return
    if not conf.ENABLED:
        return
    try:
        get_publisher().publish_many(events)
    except Exception:
        if not conf.FIRE_AND_FORGET:
            raise
        logger.exception("could not publish %d Telegraphy event(s)", len(events))


def get_publisher() -> Publisher:
    """Return the process's publisher, built from the settings (rebuilt when they change).

    Raises:
        ImproperlyConfigured: ``TELEGRAPHY_SECRET`` is not set.
    """
    global _publisher, _publisher_key
    secret = conf.SECRET
    if not secret:
        raise ImproperlyConfigured(f"{PREFIX}SECRET is not set; Telegraphy cannot sign its publish requests")
    key = (conf.GATEWAY_URL, secret, conf.FIRE_AND_FORGET, conf.PUBLISH_TIMEOUT, conf.PUBLISH_RETRIES)
    with _publisher_lock:
        if _publisher is None or _publisher_key != key:
            if _publisher is not None:
                _publisher.close()
            _publisher = Publisher(
                conf.GATEWAY_URL,
                secret,
                timeout=conf.PUBLISH_TIMEOUT,
                retries=conf.PUBLISH_RETRIES,
                fire_and_forget=conf.FIRE_AND_FORGET,
            )
            _publisher_key = key
        return _publisher


def reset_publisher(**kwargs: Any) -> None:
    """Close the cached publisher; the next publish builds one from the settings."""
    global _publisher, _publisher_key
    setting = kwargs.get("setting")
    if setting is not None and not str(setting).startswith(PREFIX):
        return
    with _publisher_lock:
        if _publisher is not None:
            _publisher.close()
        _publisher = None
        _publisher_key = None


setting_changed.connect(reset_publisher, dispatch_uid="telegraphy.reset_publisher")


def add_capture(capture: Capture) -> None:
    """Send delivered batches and revocations to ``capture`` instead of the gateway (see ``testing``)."""
    with _capture_lock:
        _captures.append(capture)


def remove_capture(capture: Capture) -> None:
    """Stop sending to ``capture``."""
    with _capture_lock:
        # By identity: outboxes are lists, and two empty ones compare equal.
        _captures[:] = [active for active in _captures if active is not capture]


def capture_revocation(revocation: dict[str, Any]) -> bool:
    """Record ``revocation`` in the active captures; return whether there was one."""
    with _capture_lock:
        captures = list(_captures)
    for capture in captures:
        capture.record_revocation(revocation)
    return bool(captures)


class _Pending:
    """The items of one queue of one connection's transaction whose own on_commit callbacks ran."""

    __slots__ = ("committed", "flush", "handle")

    def __init__(self, handle: Callable[[list[Any]], None]) -> None:
        self.committed: list[Any] = []
        self.flush: _Flush | None = None
        self.handle = handle


def _pending(connection: Any, queue: str, handle: Callable[[list[Any]], None]) -> _Pending:
    # One per queue and connection object; a connection belongs to one thread.
    queues: dict[str, _Pending] | None = getattr(connection, "_telegraphy_pending", None)
    if queues is None:
        queues = connection._telegraphy_pending = {}
    pending = queues.get(queue)
    if pending is None:
        pending = queues[queue] = _Pending(handle)
    return pending


class _Committed:
    """on_commit callback of one item: the item's transaction (and savepoints) committed."""

    __slots__ = ("item", "pending")

    def __init__(self, pending: _Pending, item: Any) -> None:
        self.pending = pending
        self.item = item

    def __call__(self) -> None:
        self.pending.committed.append(self.item)


class _Flush:
    """on_commit callback that hands over the committed items; only the latest one acts."""

    __slots__ = ("pending",)

    def __init__(self, pending: _Pending) -> None:
        self.pending = pending

    def __call__(self) -> None:
        if self.pending.flush is not self:
            return
        items, self.pending.committed = self.pending.committed, []
        self.pending.flush = None
        self.pending.handle(items)
