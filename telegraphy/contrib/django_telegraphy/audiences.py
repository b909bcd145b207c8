"""Who may see an event, as Django code declares it, turned into the gateway's wire format.

An *audience* is declared in one of these forms:

- ``"public"``: everyone, anonymous visitors included;
- ``"authenticated"``: any signed-in user;
- a dict ``{"users": [...], "groups": [...], "permissions": [...]}``: a user
  sees the event if they are listed, are in a listed group, or hold a listed
  permission (any one is enough; superusers see everything). Users may be
  given as model instances or primary keys, groups as ``Group`` instances or
  names, permissions as ``"app_label.codename"``. A single value may stand for
  a one-element list; ``None`` entries (an empty foreign key) are dropped.

On the wire (:mod:`telegraphy.wamp.audience`, enforced by the gateway) it
becomes ``meta.audience``: the strings above, or an object whose users are
strings of the primary key, without empty keys. Projections become
``meta.projections``: ``[{"audience": ..., "fields": [...] | null}, ...]``.
The gateway gives a session the first projection whose audience it is in;
:func:`wire_projections` orders them narrowest first (listed users, groups
and permissions in the order declared, then ``"authenticated"``, then
``"public"``), so the order they are declared in does not decide what a
staff member gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

__all__ = [
    "AUTHENTICATED",
    "PUBLIC",
    "AudienceError",
    "AudienceSpec",
    "audience_permissions",
    "receive_permission",
    "wire_audience",
    "wire_projections",
]

PUBLIC = "public"
AUTHENTICATED = "authenticated"

#: The keys of a targeted audience.
KEYS = ("users", "groups", "permissions")
#: The gateway's limits (telegraphy.wamp.audience): entries per key, projections per event.
MAX_ENTRIES = 1000
MAX_PROJECTIONS = 16

#: What an event class may declare as an audience.
AudienceSpec = str | Mapping[str, Any]

# The permission a user's connect token carries when an event class's own
# is_authorized_user(user) says yes. The colon keeps it apart from Django's
# "app_label.codename" permissions.
_RECEIVE_PREFIX = "telegraphy:receive:"


class AudienceError(ValueError):
    """An audience or projection declaration is malformed; ``where`` says which one."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


def receive_permission(event_name: str) -> str:
    """Return the token permission standing for ``is_authorized_user`` of the events ``event_name``."""
    return _RECEIVE_PREFIX + event_name


def is_receive_permission(permission: str) -> bool:
    """Whether ``permission`` is one of :func:`receive_permission`'s, not a Django permission."""
    return permission.startswith(_RECEIVE_PREFIX)


def wire_audience(value: Any, where: str = "audience") -> str | dict[str, list[str]]:
    """Return the wire form of an audience declaration.

    Raises:
        AudienceError: naming ``where`` and what is wrong.
    """
    if value is None or value == PUBLIC:
        return PUBLIC
    if value == AUTHENTICATED:
        return AUTHENTICATED
    if isinstance(value, str):
        raise AudienceError(where, f"unknown audience {value!r}: use 'public', 'authenticated' or a dict")
    if not isinstance(value, Mapping):
        raise AudienceError(where, f"expected 'public', 'authenticated' or a dict, got {type(value).__name__}")
    unknown = set(value) - set(KEYS)
    if unknown:
        raise AudienceError(where, f"unknown key {min(map(str, unknown))!r} (use users, groups, permissions)")
    wire: dict[str, list[str]] = {}
    for key in KEYS:
        entries = _entries(value.get(key), key, where)
        if len(entries) > MAX_ENTRIES:
            raise AudienceError(f"{where}.{key}", f"{len(entries)} entries; the gateway takes at most {MAX_ENTRIES}")
        if entries:
            wire[key] = entries
    return wire


def wire_projections(
    value: Any,
    model: type[models.Model] | None = None,
    where: str = "projections",
) -> list[dict[str, Any]]:
    """Return the wire form of projections, narrowest audience first.

    ``value`` is a sequence of ``(audience, fields)`` pairs or of
    ``{"audience": ..., "fields": ...}`` dicts; ``fields`` is a list of data
    keys or ``None`` (every field). ``pk`` is always kept, so a browser can
    tell which row an event is about; a foreign key named by its field name
    (``customer``) also keeps its data key (``customer_id``).

    Raises:
        AudienceError: naming the projection and what is wrong.
    """
    if value is None:
        return []
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise AudienceError(where, "expected a list of (audience, fields) pairs")
    items = list(value)
    if len(items) > MAX_PROJECTIONS:
        raise AudienceError(where, f"{len(items)} projections; the gateway takes at most {MAX_PROJECTIONS}")
    wired = []
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if isinstance(item, Mapping):
            if set(item) - {"audience", "fields"}:
                raise AudienceError(here, "expected the keys 'audience' and 'fields'")
            audience, fields = item.get("audience"), item.get("fields")
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            audience, fields = item
        else:
            raise AudienceError(here, "expected an (audience, fields) pair")
        wired.append({"audience": wire_audience(audience, f"{here}.audience"), "fields": _fields(fields, model, here)})
    # Stable: declared order among audiences of the same breadth.
    return sorted(wired, key=_breadth)


def audience_permissions(wire: Any) -> set[str]:
    """Return the permissions a wire audience names."""
    if isinstance(wire, Mapping):
        return {str(permission) for permission in wire.get("permissions", ())}
    return set()


def _breadth(projection: Mapping[str, Any]) -> int:
    """0 for listed users, groups and permissions, 1 for authenticated, 2 for public."""
    audience = projection["audience"]
    return {AUTHENTICATED: 1, PUBLIC: 2}.get(audience, 0) if isinstance(audience, str) else 0


def _entries(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, models.Model)) or not isinstance(value, Iterable):
        value = [value]
    entries: list[str] = []
    for entry in value:
        if entry is None:
            continue  # an empty foreign key: nobody to add
        text = _entry(entry, key, where)
        if text not in entries:
            entries.append(text)
    return entries


def _entry(entry: Any, key: str, where: str) -> str:
    if isinstance(entry, bool):
        raise AudienceError(f"{where}.{key}", f"{entry!r} is not a {key[:-1]}")
    if isinstance(entry, models.Model):
        if key == "groups" and hasattr(entry, "name"):
            return str(entry.name)
        if key == "users":
            return str(entry.pk)
        raise AudienceError(f"{where}.{key}", f"give {key} as strings, not {type(entry).__name__} instances")
    if key == "permissions":
        if not isinstance(entry, str) or not entry:
            raise AudienceError(f"{where}.permissions", f"{entry!r} is not an 'app_label.codename' string")
        return entry
    if key == "groups" and not isinstance(entry, str):
        raise AudienceError(f"{where}.groups", f"{entry!r} is not a group name")
    text = str(entry)
    if not text:
        raise AudienceError(f"{where}.{key}", "empty entry")
    return text


def _fields(fields: Any, model: type[models.Model] | None, where: str) -> list[str] | None:
    if fields is None or fields == "__all__":
        return None
    if isinstance(fields, str) or not isinstance(fields, Iterable):
        raise AudienceError(f"{where}.fields", "expected a list of field names or None")
    keys = ["pk"]
    for name in fields:
        if not isinstance(name, str):
            raise AudienceError(f"{where}.fields", f"{name!r} is not a field name")
        for key in (name, _attname(model, name)):
            if key is not None and key not in keys:
                keys.append(key)
    return keys


def _attname(model: type[models.Model] | None, name: str) -> str | None:
    """Return the data key of model field ``name`` when it differs (``customer`` → ``customer_id``)."""
    if model is None:
        return None
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a key of to_dict(), say
        return None
    return getattr(field, "attname", None)
