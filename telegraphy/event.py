"""The Telegraphy event: one JSON shape from publisher to browser.

::

    {"name": "shop.Order",
     "meta": {"event_type": "update", "verbose_name": "order",
              "timestamp": "2026-11-24T10:00:00.000000Z", "id": "…"},
     "data": {"pk": 7, "status": "paid"}}

``name`` is the WAMP topic the event is delivered on. ``meta.event_type`` is
``create``, ``update``, ``delete`` or any custom type. ``meta.id`` names
the event: the publisher mints it once (:mod:`telegraphy.publisher` does, before
the first attempt), so a retried publish carries the same id and the gateway
delivers it once; the gateway mints one when it is absent. It is 1 to 64 of
``A-Z a-z 0-9 _ . : -``. ``meta.audience`` and ``meta.projections`` say who may see the
event and which ``data`` fields (see :mod:`telegraphy.wamp.audience`); the
gateway enforces them and never delivers them.

:func:`make_event` builds an event on the publishing side; :func:`validate_event`
checks one received by the gateway and says which field is wrong.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EVENT_CREATE",
    "EVENT_DELETE",
    "EVENT_UPDATE",
    "InvalidEvent",
    "json_type",
    "make_event",
    "utc_timestamp",
    "validate_event",
]

EVENT_CREATE = "create"
EVENT_UPDATE = "update"
EVENT_DELETE = "delete"

# WAMP §16.1.2 strict URI components: lowercase letters, digits and "_" are
# recommended; Telegraphy event names keep Django's "app_label.ModelName", so
# it checks the loose rule: non-empty components without whitespace or "#".
_NAME = re.compile(r"^[^\s.#]+(\.[^\s.#]+)*$")
#: What ``meta.id`` may be: room for a UUID, a ULID or a prefixed id, and
#: nothing that needs escaping in a store key.
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_ID_LENGTH = 64


class InvalidEvent(ValueError):
    """An event does not have the Telegraphy shape.

    ``field`` names the offending field (``"name"``, ``"meta.event_type"``, …)
    and ``index`` its position in a batch, when it came in one.
    """

    def __init__(self, field: str, detail: str, index: int | None = None) -> None:
        self.field = field
        self.detail = detail
        self.index = index
        where = f"event {index}: " if index is not None else ""
        super().__init__(f"{where}{field}: {detail}")


def utc_timestamp(moment: datetime.datetime | None = None) -> str:
    """Return ``moment`` (default now) as ISO 8601 UTC with microseconds and ``Z``."""
    if moment is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_event(
    name: str,
    data: Mapping[str, Any] | None = None,
    event_type: str = "custom",
    *,
    verbose_name: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an event dict ready to publish.

    Args:
        name: the topic, e.g. ``"shop.Order"`` or ``"chat.lobby"``.
        data: the JSON-serializable payload.
        event_type: ``"create"``, ``"update"``, ``"delete"`` or a custom type.
        verbose_name: a human name for the event's model; defaults to ``name``.
        meta: further meta fields (they override the defaults).
    """
    event_meta: dict[str, Any] = {
        "event_type": event_type,
        "verbose_name": verbose_name if verbose_name is not None else name,
        "timestamp": utc_timestamp(),
    }
    if meta:
        event_meta.update(meta)
    event = {"name": name, "meta": event_meta, "data": dict(data or {})}
    validate_event(event)
    return event


def validate_event(event: Any, index: int | None = None) -> dict[str, Any]:
    """Check that ``event`` has the Telegraphy shape and return it.

    Raises:
        InvalidEvent: naming the first field that is wrong.
    """
    if not isinstance(event, dict):
        raise InvalidEvent("event", f"expected an object, got {json_type(event)}", index)
    name = event.get("name")
    if name is None:
        raise InvalidEvent("name", "is required", index)
    if not isinstance(name, str):
        raise InvalidEvent("name", f"expected a string, got {json_type(name)}", index)
    if not _NAME.match(name):
        raise InvalidEvent("name", f"{name!r} is not a valid topic (dot-separated, non-empty, no spaces or '#')", index)
    meta = event.get("meta", {})
    if not isinstance(meta, dict):
        raise InvalidEvent("meta", f"expected an object, got {json_type(meta)}", index)
    event_type = meta.get("event_type")
    if event_type is not None and not isinstance(event_type, str):
        raise InvalidEvent("meta.event_type", f"expected a string, got {json_type(event_type)}", index)
    if "id" in meta:
        event_id = meta["id"]
        if not isinstance(event_id, str):
            raise InvalidEvent("meta.id", f"expected a string, got {json_type(event_id)}", index)
        if not _ID.fullmatch(event_id):
            raise InvalidEvent(
                "meta.id", f"expected 1 to {MAX_ID_LENGTH} of the characters A-Z a-z 0-9 _ . : -, got {len(event_id)} characters", index
            )
    if "audience" in meta or "projections" in meta:
        from telegraphy.wamp.audience import InvalidAudience, Visibility

        try:
            Visibility.of_event(event)
        except InvalidAudience as exc:
            raise InvalidEvent(exc.field, exc.detail, index) from None
    if "data" in event and event["data"] is not None and not isinstance(event["data"], (dict, list)):
        raise InvalidEvent("data", f"expected an object or array, got {json_type(event['data'])}", index)
    unknown = set(event) - {"name", "meta", "data"}
    if unknown:
        raise InvalidEvent(sorted(unknown)[0], "unknown field (an event has name, meta and data)", index)
    return event


def json_type(value: Any) -> str:
    """Return the JSON name of a decoded value's type (``null``, ``boolean``, ``number``, ``string``, ``array``, ``object``), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
