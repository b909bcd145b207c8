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
applies it to tickets issued up to it: after a logout they are refused,
after a change of grants they get the new grants instead of their claims.
Tokens carry ``iat`` in whole seconds, so a revocation at time T covers
every ticket with ``iat <= T``: one minted within the same second as a
logout is refused too (it may have been minted before it). Tickets without
``iat`` are refused by the authenticator; here they count as covered by
every revocation. WAMP-CRA sessions carry no token and are only affected
while live.

A revocation is remembered for ``memory`` seconds: the longest a connect
token may live (``exp - iat``, see :data:`telegraphy.tokens.MAX_CONNECT_TOKEN_TTL`)
plus the clock leeway, after which no token it covers can still be valid.
The gateway also keeps them in its store, shared by every node, and loads
them at start (:meth:`Revocations.restore`), so neither a restart nor a
node started later forgets a logout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..tokens import MAX_CONNECT_TOKEN_TTL
from .audience import Grants
from .auth import Identity
from .errors import AuthenticationFailed

__all__ = ["MEMORY", "Revocations", "parse_grants"]

#: Seconds a revocation is remembered by default: the longest connect token
#: accepted by default, plus the default clock leeway.
MEMORY = MAX_CONNECT_TOKEN_TTL + 5.0
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
        """Remember that ``authid`` logged out, or got ``grants``, at ``now``.

        ``now`` may be older than what is remembered already (a revocation
        another node made, arriving late): the later logout and the later
        grants are kept.
        """
        entry = self._entries.pop(authid, None) or _Entry()
        if logout and (entry.logged_out_at is None or now > entry.logged_out_at):
            entry.logged_out_at = now
        if grants is not None and (entry.changed_at is None or now >= entry.changed_at):
            entry.changed_at = now
            entry.grants = grants
        self._entries[authid] = entry  # most recent last
        self._forget(now)

    def restore(
        self, authid: str, logged_out_at: float | None, changed_at: float | None, grants: Grants | None, now: float
    ) -> None:
        """Remember a revocation read back from the store (at start); ignores one already forgotten by ``now``."""
        if logged_out_at is not None and now - logged_out_at <= self.memory:
            self.record(authid, None, True, logged_out_at)
        if grants is not None and changed_at is not None and now - changed_at <= self.memory:
            self.record(authid, grants, False, changed_at)
        self._forget(now)

    def superseded(self, authid: str, changed_at: float) -> bool:
        """Whether grants of ``authid`` changed at ``changed_at`` are older than the grants remembered.

        A grant change arriving late (or replayed) must not undo a newer one.
        """
        entry = self._entries.get(authid)
        return entry is not None and entry.changed_at is not None and entry.changed_at > changed_at

    def grants_for(self, identity: Identity, grants: Grants, now: float) -> Grants:
        """Return the grants a session of ``identity`` gets: ``grants`` (from its token), or newer ones.

        Raises:
            AuthenticationFailed: the ticket was issued before its user
                logged out, or within the same second.
        """
        entry = self._entries.get(identity.authid)
        if entry is None or identity.anonymous:
            return grants
        if now - entry.latest() > self.memory:
            del self._entries[identity.authid]
            return grants
        if identity.authmethod != "ticket":
            return grants
        issued = identity.claims.get("iat")
        if not isinstance(issued, (int, float)) or isinstance(issued, bool):
            issued = float("-inf")  # no issue time: covered by every revocation
        if entry.logged_out_at is not None and issued <= entry.logged_out_at:
            raise AuthenticationFailed("ticket refused: the user logged out after it was issued")
        if entry.grants is not None and entry.changed_at is not None and issued <= entry.changed_at:
            return entry.grants
        return grants

    def _forget(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if len(entries) <= self.max_users and now - entries[oldest].latest() <= self.memory:
                return
            del entries[oldest]
