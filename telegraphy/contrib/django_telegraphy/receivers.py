"""Model signal receivers: a save or delete of a registered model becomes an event.

:func:`connect` is called once by ``AppConfig.ready()``. The receivers are
connected for every sender and look the sender up in the registry, so event
classes declared after ``ready()`` work too.

The event data is read when the signal fires (so a delete still has the
row's values), and the event is published after the transaction commits
(see :mod:`.dispatcher`). Fixture loading (``raw=True``) sends nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_save

from . import dispatcher
from .conf import settings as conf
from .events import OP_CREATE, OP_DELETE, OP_UPDATE
from .registry import registry

__all__ = ["connect", "disconnect", "on_post_delete", "on_post_save"]

logger = logging.getLogger("telegraphy.django")

_SAVE_UID = "telegraphy.post_save"
_DELETE_UID = "telegraphy.post_delete"


def on_post_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool = False,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """Queue a create or update event for ``instance``."""
    if raw:
        return
    _queue(sender, instance, OP_CREATE if created else OP_UPDATE, using)


def on_post_delete(sender: type[models.Model], instance: models.Model, using: str | None = None, **kwargs: Any) -> None:
    """Queue a delete event for ``instance``."""
    _queue(sender, instance, OP_DELETE, using)


def _queue(sender: type[models.Model], instance: models.Model, operation: str, using: str | None) -> None:
    handler = registry.handler_for(sender)
    if handler is None or not handler.sends(operation) or not dispatcher.is_active():
        return
    try:
        event = handler.build_event(instance, operation)
    except Exception:
        # A broken to_dict() must not turn the user's save into an error.
        if not conf.FIRE_AND_FORGET:
            raise
        logger.exception("could not build the %s event of %s %r", operation, sender._meta.label, instance.pk)
        return
    dispatcher.enqueue(event, using)


def connect() -> None:
    """Connect the receivers (idempotent)."""
    post_save.connect(on_post_save, dispatch_uid=_SAVE_UID)
    post_delete.connect(on_post_delete, dispatch_uid=_DELETE_UID)


def disconnect() -> None:
    """Disconnect the receivers."""
    post_save.disconnect(dispatch_uid=_SAVE_UID)
    post_delete.disconnect(dispatch_uid=_DELETE_UID)
