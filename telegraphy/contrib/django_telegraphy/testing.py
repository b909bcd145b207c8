"""Test helpers: capture Telegraphy events in memory instead of publishing them.

Like ``django.core.mail.outbox``, events are recorded instead of sent, and
tests assert on them. Capturing follows the same transaction rules as
publishing: an event appears once its transaction commits. Inside Django's
``TestCase`` (where the test runs in a transaction that is never committed),
run the on-commit callbacks with ``captureOnCommitCallbacks(execute=True)``
(pytest-django: the ``django_capture_on_commit_callbacks`` fixture)::

    from telegraphy.contrib.django_telegraphy.testing import TelegraphyTestMixin

    class OrderTests(TelegraphyTestMixin, TestCase):
        def test_paid(self):
            with self.captureOnCommitCallbacks(execute=True):
                Order.objects.create(status="paid")
            self.assertPublished("shop.Order", "create", {"status": "paid"})

With pytest, the ``telegraphy_outbox`` fixture (this module is a pytest
plugin, registered under the ``pytest11`` entry point) gives the outbox::

    def test_paid(telegraphy_outbox, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            Order.objects.create(status="paid")
        assert telegraphy_outbox.filter("shop.Order", "create")

Revocations (grant changes, logouts, see :mod:`.revocation`) are captured
too, in ``outbox.revocations``.

Anywhere else, ``with capture_events() as outbox:`` (or ``@capture_events()``
on a function, reading :data:`outbox`). Events are captured even when
``TELEGRAPHY_ENABLED`` is False, and nothing reaches the gateway while a
capture is active.

This module imports Django only when used, so the pytest plugin loads in
projects without Django.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Outbox", "TelegraphyTestMixin", "capture_events", "outbox"]


class Outbox(list):  # type: ignore[type-arg]
    """The events captured, in order; ``batches`` groups them as they would have been sent.

    Each item of ``batches`` is one would-be HTTP request: the events of one
    committed transaction, or one event published outside a transaction.
    ``revocations`` lists the would-be ``POST /revoke`` bodies (see
    :mod:`.revocation`): ``{"user": "7", "logout": False, "grants": {...}}``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, Any]]] = []
        self.revocations: list[dict[str, Any]] = []

    def record(self, events: list[dict[str, Any]]) -> None:
        """Record one delivered batch."""
        self.batches.append(list(events))
        self.extend(events)

    def record_revocation(self, revocation: dict[str, Any]) -> None:
        """Record one would-be revocation."""
        self.revocations.append(dict(revocation))

    def clear(self) -> None:
        """Forget every captured event and revocation."""
        super().clear()
        self.batches.clear()
        self.revocations.clear()

    def filter(
        self,
        name: str | None = None,
        event_type: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the captured events that match.

        Args:
            name: the event name, e.g. ``"shop.Order"``; None matches any.
            event_type: ``"create"``, ``"update"``, ``"delete"`` or a custom type.
            data: items the event data must contain (a subset match).
        """
        return [event for event in self if _matches(event, name, event_type, data)]

    def names(self) -> list[str]:
        """Return ``"name/event_type"`` of each captured event, for failure messages."""
        return [f"{event['name']}/{event.get('meta', {}).get('event_type')}" for event in self]


#: The outbox of the innermost active :func:`capture_events`, else an empty,
#: inactive one. Read it as ``testing.outbox`` (the name is rebound).
outbox = Outbox()


@contextlib.contextmanager
def capture_events() -> Iterator[Outbox]:
    """Capture the events published inside the block; yield the :class:`Outbox`.

    Also a decorator. While active, nothing is published to the gateway.
    """
    global outbox
    from .dispatcher import add_capture, remove_capture

    previous = outbox
    current = Outbox()
    outbox = current
    add_capture(current)
    try:
        yield current
    finally:
        remove_capture(current)
        outbox = previous


class TelegraphyTestMixin:
    """A ``TestCase`` mixin: captures events during each test into ``self.telegraphy_outbox``.

    Put it before ``TestCase`` in the bases.
    """

    telegraphy_outbox: Outbox

    def run(self, result: Any = None) -> Any:
        """Run the test (setUp, the test, tearDown) with events captured."""
        with capture_events() as captured:
            self.telegraphy_outbox = captured
            return super().run(result)  # type: ignore[misc]

    def assertPublished(  # noqa: N802 - unittest naming
        self,
        name: str,
        event_type: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Assert an event ``name`` (of ``event_type``, whose data contains ``data``) was published.

        Returns:
            the first matching event.
        """
        found = self.telegraphy_outbox.filter(name, event_type, data)
        if not found:
            self.fail(  # type: ignore[attr-defined]
                f"no {_describe(name, event_type, data)} was published; "
                f"published: {self.telegraphy_outbox.names() or 'nothing'}"
            )
        return found[0]

    def assertNotPublished(  # noqa: N802 - unittest naming
        self,
        name: str,
        event_type: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Assert no event ``name`` (of ``event_type``, whose data contains ``data``) was published."""
        found = self.telegraphy_outbox.filter(name, event_type, data)
        if found:
            self.fail(  # type: ignore[attr-defined]
                f"{len(found)} {_describe(name, event_type, data)} published: {found}"
            )


def _matches(event: dict[str, Any], name: str | None, event_type: str | None, data: Mapping[str, Any] | None) -> bool:
    if name is not None and event.get("name") != name:
        return False
    if event_type is not None and event.get("meta", {}).get("event_type") != event_type:
        return False
    if data:
        payload = event.get("data") or {}
        if not isinstance(payload, dict):
            return False
        missing = object()
        return all(payload.get(key, missing) == value for key, value in data.items())
    return True


def _describe(name: str, event_type: str | None, data: Mapping[str, Any] | None) -> str:
    text = f"{name!r} event"
    if event_type is not None:
        text = f"{name!r} {event_type} event"
    if data:
        text += f" with data {dict(data)!r}"
    return text


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pass
else:

    @pytest.fixture
    def telegraphy_outbox() -> Iterator[Outbox]:
        """The events published during the test, captured instead of sent to the gateway."""
        with capture_events() as captured:
            yield captured
