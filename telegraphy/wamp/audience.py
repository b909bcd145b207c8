"""Who may see an event, and which of its fields: audiences, grants and projections.

A session's :class:`Grants` come from its connect token's claims (``sub``,
``groups``, ``perms``, ``superuser``). An event's visibility comes from its
``meta``:

- ``meta.audience``: ``"public"`` (everyone; the default), ``"authenticated"``
  (any session with a user), or an object ``{"users": [...], "groups": [...],
  "permissions": [...]}`` — a session sees the event if it matches any entry.
  Superusers see everything.
- ``meta.projections``: an optional list of ``{"audience": <audience>,
  "fields": [...] | null}``; the first entry whose audience matches a session
  decides which ``data`` fields it gets (``null``: all of them); a session
  matching none does not get the event.

Projections fail closed: an event with a projection that names fields must
carry ``data`` as an object (an array or a scalar has no fields to keep, and
would otherwise reach every audience whole), or it is refused at publish
(:class:`InvalidAudience` on ``data``); :meth:`Visibility.project` delivers
nothing to a projected audience whatever reaches it. Subscription filters of a
projected audience see the projected ``data`` only (the broker evaluates them
once per subscription and variant), so a filter on a hidden field never matches.

Neither ``audience`` nor ``projections`` is ever delivered to subscribers.
The broker asks :meth:`Visibility.variant` once per distinct :class:`Grants`
object and encodes each variant once per wire codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telegraphy.event import json_type

from .auth import Identity

__all__ = ["ANONYMOUS", "Audience", "Grants", "InvalidAudience", "Visibility", "grants_of"]

#: Keys of ``meta`` that steer delivery and never reach subscribers.
CONTROL_KEYS = ("audience", "projections")
#: Most entries in one audience list, and most projections of one event.
MAX_ENTRIES = 1000
MAX_PROJECTIONS = 16


class InvalidAudience(ValueError):
    """``meta.audience`` or ``meta.projections`` is malformed; ``field`` says where."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Grants:
    """What a session may see: its user, groups and permissions."""

    user: str | None = None
    groups: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    superuser: bool = False


#: The grants of every anonymous session (one shared object).
ANONYMOUS = Grants()


def grants_of(identity: Identity) -> Grants:
    """Return the grants carried by an identity's token claims."""
    if identity.anonymous:
        return ANONYMOUS
    claims = identity.claims
    return Grants(
        user=identity.authid,
        groups=frozenset(str(g) for g in claims.get("groups", ()) if isinstance(g, (str, int))),
        permissions=frozenset(str(p) for p in claims.get("perms", ()) if isinstance(p, str)),
        superuser=claims.get("superuser") is True,
    )


@dataclass(frozen=True, slots=True)
class Audience:
    """A parsed audience: public, authenticated, or a set of users, groups and permissions."""

    kind: str  # "public" | "authenticated" | "targeted"
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()

    def allows(self, grants: Grants) -> bool:
        """Return whether a session with ``grants`` is in this audience."""
        if self.kind == "public":
            return True
        if grants.user is None:
            return False
        if self.kind == "authenticated" or grants.superuser:
            return True
        return (
            grants.user in self.users
            or not self.groups.isdisjoint(grants.groups)
            or not self.permissions.isdisjoint(grants.permissions)
        )

    @classmethod
    def parse(cls, value: Any, field: str = "meta.audience") -> Audience:
        """Parse the wire form of an audience.

        Raises:
            InvalidAudience: naming the field and what is wrong.
        """
        if value is None or value == "public":
            return PUBLIC
        if value == "authenticated":
            return AUTHENTICATED
        if isinstance(value, str):
            raise InvalidAudience(field, f"unknown audience {value!r}: use 'public', 'authenticated' or an object")
        if not isinstance(value, Mapping):
            raise InvalidAudience(field, "expected 'public', 'authenticated' or an object of users, groups, permissions")
        unknown = set(value) - {"users", "groups", "permissions"}
        if unknown:
            raise InvalidAudience(f"{field}.{sorted(unknown)[0]}", "unknown key (an audience has users, groups, permissions)")
        sets = {}
        for key in ("users", "groups", "permissions"):
            entries = value.get(key, [])
            if not isinstance(entries, list) or not all(isinstance(e, (str, int)) and not isinstance(e, bool) for e in entries):
                raise InvalidAudience(f"{field}.{key}", "expected a list of strings or integers")
            if len(entries) > MAX_ENTRIES:
                raise InvalidAudience(f"{field}.{key}", f"more than {MAX_ENTRIES} entries")
            sets[key] = frozenset(str(e) for e in entries)
        return cls("targeted", sets["users"], sets["groups"], sets["permissions"])


PUBLIC = Audience("public")
AUTHENTICATED = Audience("authenticated")


@dataclass(frozen=True, slots=True)
class Visibility:
    """The audience and projections of one event."""

    audience: Audience
    projections: tuple[tuple[Audience, tuple[str, ...] | None], ...] = ()

    @classmethod
    def of_event(cls, event: Any) -> Visibility | None:
        """Return the visibility of a Telegraphy event, or ``None`` when it is public with no projections.

        Raises:
            InvalidAudience: for a malformed ``meta.audience`` or ``meta.projections``.
        """
        meta = event.get("meta") if isinstance(event, Mapping) else None
        if not isinstance(meta, Mapping) or not any(key in meta for key in CONTROL_KEYS):
            return None
        audience = Audience.parse(meta.get("audience"))
        raw = meta.get("projections")
        projections: list[tuple[Audience, tuple[str, ...] | None]] = []
        if raw is not None:
            if not isinstance(raw, list) or len(raw) > MAX_PROJECTIONS:
                raise InvalidAudience("meta.projections", f"expected a list of at most {MAX_PROJECTIONS} projections")
            for index, item in enumerate(raw):
                where = f"meta.projections[{index}]"
                if not isinstance(item, Mapping) or set(item) - {"audience", "fields"}:
                    raise InvalidAudience(where, "expected an object with 'audience' and 'fields'")
                fields = item.get("fields")
                if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
                    raise InvalidAudience(f"{where}.fields", "expected a list of field names or null")
                projections.append((Audience.parse(item.get("audience"), f"{where}.audience"), None if fields is None else tuple(fields)))
        if any(fields is not None for _, fields in projections) and not isinstance(event.get("data"), Mapping):
            raise InvalidAudience("data", f"must be an object when meta.projections name fields, got {json_type(event.get('data'))}")
        if audience is PUBLIC and not projections:
            return PUBLIC_VISIBILITY
        return cls(audience, tuple(projections))

    def variant(self, grants: Grants) -> int | None:
        """Return which version of the event a session gets: ``-1`` all of it, ``i`` projection i, ``None`` nothing."""
        if not self.audience.allows(grants):
            return None
        if not self.projections:
            return -1
        for index, (audience, _) in enumerate(self.projections):
            if audience.allows(grants):
                return index
        return None

    def project(self, event: Mapping[str, Any], variant: int) -> dict[str, Any] | None:
        """Return the event as sessions of ``variant`` get it (a copy; control keys removed).

        Returns ``None`` (deliver nothing) when the variant's projection names
        fields and ``data`` is not an object: a projection fails closed.
        """
        meta = {k: v for k, v in event.get("meta", {}).items() if k not in CONTROL_KEYS}
        data = event.get("data")
        if variant >= 0:
            fields = self.projections[variant][1]
            if fields is not None:
                if not isinstance(data, Mapping):
                    return None
                data = {k: v for k, v in data.items() if k in fields}
        return {**event, "meta": meta, "data": data}


#: An event whose meta names the public audience and nothing else.
PUBLIC_VISIBILITY = Visibility(PUBLIC)
