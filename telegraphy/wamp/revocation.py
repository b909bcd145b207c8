"""Live revocation: a user's grants changed, or the user logged out.

The web app tells the gateway (``POST /revoke``); the gateway calls
:meth:`telegraphy.wamp.Router.revoke`, which acts on the user's live sessions
at once:

- ``logout``: each gets GOODBYE ``wamp.close.logout`` and its transport
  closes; a session closed this way cannot be resumed.
- new grants: they replace ``session.grants``, so the very next event is
  judged with them, and exact subscriptions to channels the user may no
  longer subscribe to are dropped (silently: WAMP has no message for it that
  every client understands).

A connect token outlives such a change (it is valid until its ``exp``), so
the router also remembers each revocation (:class:`Revocations`) and
applies it to tickets issued *before* it: after a logout they are refused,
after a change of grants they get the new grants instead of their claims.
Tokens carry ``iat`` in whole seconds, so a token counts as "before" when
its ``iat`` is less than the revocation's second: one issued within the
same second as the revocation keeps its claims. WAMP-CRA sessions carry no
token and are only affected while live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .audience import Grants
from .auth import Identity
from .errors import AuthenticationFailed

__all__ = ["MEMORY", "Revocations", "parse_grants"]

#: Seconds a revocation is remembered: longer than any connect token lives.
MEMORY = 3600.0
#: Most users remembered at once; the oldest revocations are forgotten first.
MAX_USERS = 100_000
#: Most groups or permissions in revoked grants.
MAX_ENTRIES = 1000


def parse_grants(user: str, value: Any) -> Grants:
    """Build the grants of ``user`` from ``{"groups": [...], "perms": [...], "superuser": bool}``.

    Every key is optional. Raises :class:`ValueError` naming the key that is wrong.
    """
    if not isinstance(value, Mapping):
        raise ValueError("grants: expected an object with groups, perms and superuser, or null")
    unknown = set(value) - {"groups", "perms", "superuser"}
    if unknown:
        raise ValueError(f"grants.{min(unknown)}: unknown key (grants have groups, perms, superuser)")
    groups = value.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, (str, int)) and not isinstance(g, bool) for g in groups):
        raise ValueError("grants.groups: expected a list of strings")
    perms = value.get("perms", [])
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise ValueError("grants.perms: expected a list of strings")
    if len(groups) > MAX_ENTRIES or len(perms) > MAX_ENTRIES:
        raise ValueError(f"grants: more than {MAX_ENTRIES} groups or perms")
    superuser = value.get("superuser", False)
    if not isinstance(superuser, bool):
        raise ValueError("grants.superuser: expected a boolean")
    return Grants(user, frozenset(str(g) for g in groups), frozenset(perms), superuser)


@dataclass(slots=True)
class _Entry:
    logged_out_at: float | None = None
    changed_at: float | None = None
    grants: Grants | None = None

    def latest(self) -> float:
        return max(t for t in (self.logged_out_at, self.changed_at) if t is not None)


class Revocations:
    """What the router remembers of recent revocations, per user (authid).

    Args:
        memory: seconds each is remembered.
        max_users: most users remembered.
    """

    def __init__(self, memory: float = MEMORY, max_users: int = MAX_USERS) -> None:
        self.memory = memory
        self.max_users = max_users
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, authid: str, grants: Grants | None, logout: bool, now: float) -> None:
        """Remember that ``authid`` logged out, or got ``grants``, at ``now``."""
        entry = self._entries.pop(authid, None) or _Entry()
        if logout:
            entry.logged_out_at = now
        if grants is not None:
            entry.changed_at = now
            entry.grants = grants
        self._entries[authid] = entry  # most recent last
        self._forget(now)

    def grants_for(self, identity: Identity, grants: Grants, now: float) -> Grants:
        """Return the grants a session of ``identity`` gets: ``grants`` (from its token), or newer ones.

        Raises:
            AuthenticationFailed: the ticket was issued before its user logged out.
        """
        entry = self._entries.get(identity.authid)
        if entry is None or identity.anonymous:
            return grants
        if now - entry.latest() > self.memory:
            del self._entries[identity.authid]
            return grants
        issued = identity.claims.get("iat")
        if identity.authmethod != "ticket" or not isinstance(issued, (int, float)) or isinstance(issued, bool):
            return grants
        if entry.logged_out_at is not None and issued < int(entry.logged_out_at):
            raise AuthenticationFailed("ticket refused: the user logged out after it was issued")
        if entry.grants is not None and entry.changed_at is not None and issued < int(entry.changed_at):
            return entry.grants
        return grants

    def _forget(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if len(entries) <= self.max_users and now - entries[oldest].latest() <= self.memory:
                return
            del entries[oldest]
