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

Events go to the publisher (:mod:`telegraphy.publisher`), or, while
:func:`telegraphy.contrib.django_telegraphy.testing.capture_events` is
active, to the in-memory outboxes instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, transaction

from telegraphy.event import make_event
from telegraphy.publisher import Publisher

from .conf import PREFIX
from .conf import settings as conf

__all__ = ["deliver", "enqueue", "get_publisher", "reset_publisher", "send_event"]

logger = logging.getLogger("telegraphy.django")

_publisher_lock = threading.Lock()
_publisher: Publisher | None = None
_publisher_key: tuple[Any, ...] | None = None

# Outboxes of capture_events(): while one is active, events go there and not
# to the gateway. Shared by all threads, so a live server's thread counts too.
_capture_lock = threading.Lock()
_captures: list[Callable[[list[dict[str, Any]]], None]] = []


def send_event(
    name: str,
    data: Mapping[str, Any] | None = None,
    event_type: str = "custom",
    *,
    verbose_name: str | None = None,
    meta: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> None:
    """Publish a custom event once the current transaction commits (at once outside one).

    Args:
        name: the event name and WAMP topic, e.g. ``"chat.lobby"``.
        data: the JSON-serializable payload.
        event_type: the event type; ``"custom"`` unless told.
        verbose_name: a human name for the event (default ``name``).
        meta: more ``meta`` fields.
        using: the database alias whose transaction to follow (default ``"default"``).

    Raises:
        telegraphy.event.InvalidEvent: the name or data is not valid.
    """
    event = make_event(name, data, event_type, verbose_name=verbose_name, meta=meta)
    enqueue(event, using)


def enqueue(event: dict[str, Any], using: str | None = None) -> None:
    """Publish ``event`` when the transaction of connection ``using`` commits."""
    if not is_active():
        return
    connection = transaction.get_connection(using or DEFAULT_DB_ALIAS)
    if not connection.in_atomic_block:
        deliver([event])
        return
    pending = _pending(connection)
    transaction.on_commit(_Committed(pending, event), using=connection.alias)
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
            capture(events)
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


def add_capture(capture: Callable[[list[dict[str, Any]]], None]) -> None:
    """Send delivered batches to ``capture`` instead of the gateway (see ``testing``)."""
    with _capture_lock:
        _captures.append(capture)


def remove_capture(capture: Callable[[list[dict[str, Any]]], None]) -> None:
    """Stop sending batches to ``capture``."""
    with _capture_lock:
        if capture in _captures:
            _captures.remove(capture)


class _Pending:
    """The events of one connection's transaction whose own on_commit callbacks ran."""

    __slots__ = ("committed", "flush")

    def __init__(self) -> None:
        self.committed: list[dict[str, Any]] = []
        self.flush: _Flush | None = None


def _pending(connection: Any) -> _Pending:
    # One per connection object; a connection belongs to one thread.
    pending: _Pending | None = getattr(connection, "_telegraphy_pending", None)
    if pending is None:
        pending = _Pending()
        connection._telegraphy_pending = pending
    return pending


class _Committed:
    """on_commit callback of one event: the event's transaction (and savepoints) committed."""

    __slots__ = ("event", "pending")

    def __init__(self, pending: _Pending, event: dict[str, Any]) -> None:
        self.pending = pending
        self.event = event

    def __call__(self) -> None:
        self.pending.committed.append(self.event)


class _Flush:
    """on_commit callback that publishes the committed events; only the latest one acts."""

    __slots__ = ("pending",)

    def __init__(self, pending: _Pending) -> None:
        self.pending = pending

    def __call__(self) -> None:
        if self.pending.flush is not self:
            return
        events, self.pending.committed = self.pending.committed, []
        self.pending.flush = None
        deliver(events)
