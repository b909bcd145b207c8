"""Live revocation: tell the gateway at once when what a user may see changes.

A connect token carries the user's grants (:mod:`.grants`) as they were when
the page was rendered, and a WAMP session outlives its token. So when a
user's grants change, Telegraphy sends the gateway the new ones
(``POST /revoke``, see :meth:`telegraphy.publisher.Publisher.revoke`), and
the user's live sessions get only what the new grants allow from then on:

===========================================  ======================================================
What happens                                 What the gateway is told
===========================================  ======================================================
``user_logged_out``                          end the user's sessions (``logout``), on every device
                                             (the gateway knows users, not Django sessions);
                                             ``TELEGRAPHY_REVOKE_ON_LOGOUT = False`` turns it off
a user saved with ``is_active=False``,       end the user's sessions
or deleted
any other save of a user (not one with       their grants, recomputed (``is_superuser`` may have
``update_fields`` leaving out                changed)
``is_active`` and ``is_superuser``, as
``last_login`` updates do)
``user.groups``, ``user.user_permissions``   their grants, recomputed
changed (either side of the relation)
``group.permissions`` changed (either        the grants of every user of the group(s), at most
side)                                        ``TELEGRAPHY_REVOKE_MAX_USERS`` of them (the rest is
                                             logged as an error and keeps its grants until its
                                             next page)
===========================================  ======================================================

Like events, revocations wait for the transaction to commit (nothing is
sent for a rolled back change), are collected per transaction and sent once
per user, with the grants read from the database after the commit: an admin
form that saves a user, their groups and their permissions sends one
request. Each is one small HTTP request made in the committing thread
(a millisecond or so on a local network); the gateway applies it at once.

Changes that send no signal (``QuerySet.update()``, raw SQL, a permission
backend reading elsewhere, a new answer of an ``is_authorized_user``) need
:func:`refresh_grants` or :func:`end_sessions` from your code.

``TELEGRAPHY_REVOCATION = False`` sends none of it. While
:func:`~.testing.capture_events` is active, revocations go to
``outbox.revocations`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models.signals import m2m_changed, post_delete, post_save

from . import dispatcher
from .conf import PREFIX
from .conf import settings as conf
from .grants import grants_for

__all__ = ["connect", "disconnect", "end_sessions", "refresh_grants"]

logger = logging.getLogger("telegraphy.django")

_QUEUE = "revocations"
#: Fields of the user whose change alters the grants: a save naming neither in
#: ``update_fields`` (``last_login`` at each login) sends nothing.
_GRANT_FIELDS = frozenset({"is_active", "is_superuser"})
_CHANGED = ("post_add", "post_remove", "post_clear")


def refresh_grants(user: Any, using: str | None = None) -> None:
    """Send ``user``'s grants (a user or a pk) to the gateway once the transaction commits.

    The grants are read after the commit; an inactive or deleted user's
    sessions are ended instead.
    """
    _queue(user, False, using)


def end_sessions(user: Any, using: str | None = None) -> None:
    """End every live session of ``user`` (a user or a pk) once the transaction commits."""
    _queue(user, True, using)


def _queue(user: Any, logout: bool, using: str | None) -> None:
    if not conf.REVOCATION or not dispatcher.is_active():
        return
    pk = user.pk if isinstance(user, models.Model) else user
    if pk is None:
        return
    alias = using or DEFAULT_DB_ALIAS
    dispatcher.after_commit(_QUEUE, (alias, pk, logout), _flush, alias)


def _flush(items: list[tuple[str, Any, bool]]) -> None:
    """Send one revocation per user of the committed ``items``; stop at the first failure."""
    wanted: dict[tuple[str, str], list[Any]] = {}
    for alias, pk, logout in items:
        entry = wanted.setdefault((alias, str(pk)), [pk, False])
        entry[1] = entry[1] or logout
    users: dict[tuple[str, str], Any] = {}
    user_model = get_user_model()
    for alias in {alias for alias, _ in wanted}:
        pks = [pk for (where, _), (pk, logout) in wanted.items() if where == alias and not logout]
        if pks:
            for user in user_model._default_manager.using(alias).filter(pk__in=pks):
                users[(alias, str(user.pk))] = user
    bodies = []
    for key, (_pk, logout) in wanted.items():
        user = users.get(key)
        if logout or user is None or not getattr(user, "is_active", True):
            bodies.append({"user": key[1], "logout": True, "grants": None})
        else:
            bodies.append({"user": key[1], "logout": False, "grants": grants_for(user)})
    for index, body in enumerate(bodies):
        if not _send(body):
            rest = len(bodies) - index - 1
            if rest:
                logger.error("gave up telling the gateway about %d more user(s) after a failure", rest)
            return


def _send(body: dict[str, Any]) -> bool:
    """Send one revocation (or record it in the test outboxes); return False after a logged failure."""
    if dispatcher.capture_revocation(body):
        return True
    if not conf.ENABLED:
        return True
    try:
        answer = dispatcher.get_publisher().revoke(body["user"], logout=body["logout"], grants=body["grants"])
    except ImproperlyConfigured:
        if not conf.FIRE_AND_FORGET:
            raise
        logger.exception("could not revoke the sessions of user %s", body["user"])
        return False
    return answer is not None  # None: the publisher logged a failure (fire and forget)


# -- receivers -----------------------------------------------------------------------------------


def on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """End the sessions of a user who logged out."""
    if user is not None and conf.REVOKE_ON_LOGOUT:
        end_sessions(user)


def on_user_saved(
    sender: Any, instance: Any, created: bool = False, raw: bool = False, using: str | None = None, **kwargs: Any
) -> None:
    """Refresh (or, for an inactive user, end) the sessions of a saved user."""
    update_fields = kwargs.get("update_fields")
    if created or raw or (update_fields is not None and not _GRANT_FIELDS & set(update_fields)):
        return
    refresh_grants(instance, using)


def on_user_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    """End the sessions of a deleted user."""
    end_sessions(instance, using)


def on_user_groups_changed(sender: Any, **kwargs: Any) -> None:
    """``user.groups`` or ``group.user_set`` changed: refresh the users concerned."""
    _user_relation_changed("groups", **kwargs)


def on_user_permissions_changed(sender: Any, **kwargs: Any) -> None:
    """``user.user_permissions`` or ``permission.user_set`` changed: refresh the users concerned."""
    _user_relation_changed("user_permissions", **kwargs)


def _user_relation_changed(
    field: str,
    *,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    if not reverse:  # instance is the user
        if action in _CHANGED:
            refresh_grants(instance, using)
        return
    # instance is a group or a permission; pk_set holds user pks, except for
    # a clear, whose users are read just before it.
    users = get_user_model()._default_manager.using(using or DEFAULT_DB_ALIAS)
    if action == "pre_clear":
        instance._telegraphy_cleared = _bounded(users.filter(**{field: instance}), instance)
        return
    if action == "post_clear":
        pks: Iterable[Any] = instance.__dict__.pop("_telegraphy_cleared", [])
    elif action in _CHANGED:
        pks = _bounded(users.filter(pk__in=pk_set or ()), instance)
    else:
        return
    for pk in pks:
        refresh_grants(pk, using)


def on_group_permissions_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    model: Any,
    pk_set: set[Any] | None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """``group.permissions`` or ``permission.group_set`` changed: refresh every user of the groups."""
    users = get_user_model()._default_manager.using(using or DEFAULT_DB_ALIAS)
    if not reverse:  # instance is the group
        if action in _CHANGED:
            for pk in _bounded(users.filter(groups=instance), instance):
                refresh_grants(pk, using)
        return
    # instance is a permission; pk_set holds group pks
    if action == "pre_clear":
        instance._telegraphy_cleared = list(instance.group_set.values_list("pk", flat=True))
        return
    if action == "post_clear":
        groups: Iterable[Any] = instance.__dict__.pop("_telegraphy_cleared", [])
    elif action in _CHANGED:
        groups = pk_set or ()
    else:
        return
    for pk in _bounded(users.filter(groups__in=list(groups)).distinct(), instance):
        refresh_grants(pk, using)


def _bounded(users: Any, cause: Any) -> list[Any]:
    """Return the pks of ``users``, at most ``TELEGRAPHY_REVOKE_MAX_USERS`` of them (the excess is logged)."""
    if not conf.REVOCATION or not dispatcher.is_active():
        return []
    limit = int(conf.REVOKE_MAX_USERS)
    pks = list(users.order_by("pk").values_list("pk", flat=True)[: limit + 1])
    if len(pks) > limit:
        logger.error(
            "the change of %r concerns more than %d users; only the first %d get their new grants at once "
            "(%sREVOKE_MAX_USERS), the others when they next load a page",
            cause,
            limit,
            limit,
            PREFIX,
        )
        pks = pks[:limit]
    return pks


# -- wiring --------------------------------------------------------------------------------------

_UIDS = {
    "logged_out": "telegraphy.revoke.logged_out",
    "saved": "telegraphy.revoke.user_saved",
    "deleted": "telegraphy.revoke.user_deleted",
    "groups": "telegraphy.revoke.user_groups",
    "user_permissions": "telegraphy.revoke.user_permissions",
    "group_permissions": "telegraphy.revoke.group_permissions",
}


def connect() -> None:
    """Connect the receivers (idempotent); called by ``AppConfig.ready()`` when ``django.contrib.auth`` is installed."""
    user_model = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid=_UIDS["logged_out"])
    post_save.connect(on_user_saved, sender=user_model, dispatch_uid=_UIDS["saved"])
    post_delete.connect(on_user_deleted, sender=user_model, dispatch_uid=_UIDS["deleted"])
    for name, receiver in (("groups", on_user_groups_changed), ("user_permissions", on_user_permissions_changed)):
        through = _through(user_model, name)
        if through is not None:
            m2m_changed.connect(receiver, sender=through, dispatch_uid=_UIDS[name])
    from django.contrib.auth.models import Group

    m2m_changed.connect(
        on_group_permissions_changed, sender=Group.permissions.through, dispatch_uid=_UIDS["group_permissions"]
    )


def disconnect() -> None:
    """Disconnect the receivers."""
    user_model = get_user_model()
    user_logged_out.disconnect(dispatch_uid=_UIDS["logged_out"])
    post_save.disconnect(sender=user_model, dispatch_uid=_UIDS["saved"])
    post_delete.disconnect(sender=user_model, dispatch_uid=_UIDS["deleted"])
    for name in ("groups", "user_permissions"):
        through = _through(user_model, name)
        if through is not None:
            m2m_changed.disconnect(sender=through, dispatch_uid=_UIDS[name])
    from django.contrib.auth.models import Group

    m2m_changed.disconnect(sender=Group.permissions.through, dispatch_uid=_UIDS["group_permissions"])


def _through(user_model: type[models.Model], name: str) -> Any:
    """Return the through model of the user's many-to-many ``name``, or None (a user model without it)."""
    try:
        field = user_model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return getattr(getattr(field, "remote_field", None), "through", None)
