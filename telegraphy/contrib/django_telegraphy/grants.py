"""What a user may see, as the gateway reads it: the grants in connect tokens and revocations.

A signed-in user's grants are::

    {"groups": ["staff", ...],          # the names of all their groups
     "perms": ["shop.view_order", ...], # only the permissions that matter (below)
     "superuser": false}

:func:`connect_token_for` mints a connect token with these claims (and
``sub``, the user's pk); :mod:`.revocation` sends them to the gateway when
they change. The gateway's :mod:`telegraphy.wamp.audience` matches them
against each event's audience.

Only the permissions that some audience can name go in a token, to keep it
small: those named by the registered event classes (``permission``,
``audience`` and ``projections`` declared on the class), by
``TELEGRAPHY_CHANNELS`` and by ``TELEGRAPHY_TOKEN_PERMISSIONS`` (list there
the permissions your ``get_audience``, ``get_projections`` or
``send_event(audience=...)`` compute at run time), plus one
``telegraphy:receive:<event name>`` entry per event class whose overridden
``is_authorized_user(user)`` says yes. At most ``TELEGRAPHY_TOKEN_MAX_PERMS``
of them (sorted; the rest are left out, which hides events rather than
showing them, and logged). A superuser's token lists no permissions:
``superuser`` covers them all.

An inactive user gets no token, like an anonymous visitor.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from telegraphy.tokens import mint_connect_token

from .audiences import (
    AudienceError,
    audience_permissions,
    is_receive_permission,
    receive_permission,
    wire_audience,
    wire_projections,
)
from .conf import PREFIX
from .conf import settings as conf
from .registry import registry

__all__ = ["connect_token_for", "grants_for", "relevant_permissions"]

logger = logging.getLogger("telegraphy.django")


def relevant_permissions() -> set[str]:
    """Return the Django permissions that some audience names (see the module docstring).

    Malformed declarations are skipped here; the system checks report them.
    """
    permissions = {str(permission) for permission in conf.TOKEN_PERMISSIONS or ()}
    for handler in registry:
        try:
            permissions |= audience_permissions(wire_audience(handler.declared_audience()))
            for projection in wire_projections(handler.projections):
                permissions |= audience_permissions(projection["audience"])
        except AudienceError:
            continue
    permissions |= channel_permissions()
    return permissions


def channel_permissions() -> set[str]:
    """Return the permissions ``TELEGRAPHY_CHANNELS`` names (none when it is unset or malformed)."""
    declared = conf.CHANNELS
    if not declared:
        return set()
    from telegraphy.wamp.channels import parse_channels

    try:
        channels = parse_channels(declared if isinstance(declared, str) else json.loads(json.dumps(declared)))
    except (TypeError, ValueError):
        return set()
    permissions: set[str] = set()
    for channel in channels:
        for audience in channel.audiences():
            if audience is not None:
                permissions |= set(audience.permissions)
    return permissions


def grants_for(user: Any) -> dict[str, Any]:
    """Return the grants of a signed-in ``user``: ``{"groups", "perms", "superuser"}``.

    Costs a query for the groups and, when some permission matters, the
    user's ``get_all_permissions()`` (two queries with ``ModelBackend``, cached
    on the user object).
    """
    superuser = bool(getattr(user, "is_superuser", False))
    # A user object never saved (built by hand) has no rows to read.
    stored = getattr(user, "pk", None) is not None and not getattr(getattr(user, "_state", None), "adding", False)
    groups_manager = getattr(user, "groups", None)
    groups: list[str] = []
    if groups_manager is not None and stored:
        groups = sorted(str(name) for name in groups_manager.values_list("name", flat=True))
    perms: list[str] = []
    if not superuser:
        wanted = {perm for perm in relevant_permissions() if not is_receive_permission(perm)}
        if wanted and stored and hasattr(user, "get_all_permissions"):
            perms = sorted(set(user.get_all_permissions()) & wanted)
        perms += sorted(
            receive_permission(handler.get_name())
            for handler in registry
            if handler.checks_users() and handler.is_authorized_user(user)
        )
        limit = int(conf.TOKEN_MAX_PERMS)
        if len(perms) > limit:
            logger.warning(
                "user %s holds %d permissions that Telegraphy audiences name; only %d go in their grants "
                "(%sTOKEN_MAX_PERMS): events for the others will not reach them",
                user.pk,
                len(perms),
                limit,
                PREFIX,
            )
            perms = perms[:limit]
    return {"groups": groups, "perms": perms, "superuser": superuser}


def connect_token_for(user: Any, *, ttl: float | None = None) -> str | None:
    """Return a connect token for ``user`` with their grants, or ``None`` for an anonymous or inactive user.

    Args:
        user: a user object (``request.user``), or ``None``.
        ttl: the token's lifetime in seconds; default ``TELEGRAPHY_CONNECT_TOKEN_TTL``.

    Raises:
        ImproperlyConfigured: ``TELEGRAPHY_SECRET`` is not set.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return None
    secret = conf.SECRET
    if not secret:
        raise ImproperlyConfigured(f"{PREFIX}SECRET is not set; Telegraphy cannot sign connect tokens")
    return mint_connect_token(
        secret,
        user.pk,
        ttl=conf.CONNECT_TOKEN_TTL if ttl is None else ttl,
        claims=grants_for(user),
    )
