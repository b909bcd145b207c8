"""Event classes: which model changes become events, and what they carry.

In an app's ``events.py``::

    from telegraphy.contrib.django_telegraphy.events import BaseEventModel, OP_CREATE, OP_UPDATE

    from .models import Order

    class OrderEvent(BaseEventModel):
        model = Order
        fields = ("status", "total", "customer")   # default: every concrete field
        operations = (OP_CREATE, OP_UPDATE)         # default: create, update, delete

Declaring the class registers it (one event class per model); the app's
``AppConfig.ready()`` imports every app's ``events`` module. The seed's
spelling, instantiating the class (``OrderEvent()``) and calling
``events.autodiscover()`` from ``urls.py``, still works and does nothing more.

A subclass registers only when its own body sets ``model``, so a base class
without ``model`` can hold shared options.

Who sees the events (enforced by the gateway, see :mod:`.audiences`)::

    class OrderEvent(BaseEventModel):
        model = Order
        permission = "shop.view_order"                     # or: audience = "authenticated"
        projections = [("public", ["status"]), ({"groups": ["staff"]}, None)]

        def get_audience(self, instance):                  # per instance: the owner, and staff
            return {"users": [instance.customer_id], "permissions": ["shop.view_order"]}
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, ClassVar

from django.db import models

from telegraphy.event import EVENT_CREATE, EVENT_DELETE, EVENT_UPDATE, make_event

from .audiences import AUTHENTICATED, PUBLIC, AudienceSpec, receive_permission, wire_audience, wire_projections
from .conf import settings as conf
from .registry import EventAlreadyRegistered, autodiscover, registry
from .serialization import ALL_FIELDS, instance_data

__all__ = [
    "ALL_FIELDS",
    "AUTHENTICATED",
    "PUBLIC",
    "OP_CREATE",
    "OP_DELETE",
    "OP_UPDATE",
    "BaseEventModel",
    "EventAlreadyRegistered",
    "autodiscover",
    "registry",
]

OP_CREATE = EVENT_CREATE
OP_UPDATE = EVENT_UPDATE
OP_DELETE = EVENT_DELETE


class BaseEventModel:
    """Describe the events of one model.

    Attributes:
        model: the model class whose saves and deletes become events.
        fields: the field names in the event data; ``None`` (or
            ``"__all__"``) for every concrete field. Many-to-many fields are
            included only when named here.
        exclude: field names to leave out.
        operations: which of :data:`OP_CREATE`, :data:`OP_UPDATE` and
            :data:`OP_DELETE` send an event.
        name: the event name and WAMP topic; default ``"app_label.ModelName"``.
        verbose_name: a human name for the event; default the model's
            ``verbose_name``.
        audience: who may receive the events: ``"public"``,
            ``"authenticated"`` or ``{"users": [...], "groups": [...],
            "permissions": [...]}``; ``None`` (the default) means
            ``TELEGRAPHY_DEFAULT_AUDIENCE`` (itself ``"public"`` by default).
        permission: a shortcut: ``permission = "shop.view_order"`` (or a list)
            is ``audience = {"permissions": ["shop.view_order"]}``.
        projections: which data fields each audience gets: a list of
            ``(audience, fields)`` pairs, ``fields`` a list of field names or
            ``None`` for all; a user in none of them gets no event.

    Per instance, override :meth:`get_audience` and :meth:`get_projections`.
    Overriding :meth:`is_authorized_user` is a third way to say who receives
    the events: see its docstring.

    A model instance's own ``to_dict()`` method, when it has one, gives the
    event data instead of ``fields`` and ``exclude``. Override
    :meth:`get_data` to compute the data some other way.
    """

    model: ClassVar[type[models.Model] | None] = None
    fields: ClassVar[Collection[str] | str | None] = None
    exclude: ClassVar[Collection[str]] = ()
    operations: ClassVar[Collection[str]] = (OP_CREATE, OP_UPDATE, OP_DELETE)
    name: ClassVar[str | None] = None
    verbose_name: ClassVar[str | None] = None
    audience: ClassVar[AudienceSpec | None] = None
    permission: ClassVar[str | Collection[str] | None] = None
    projections: ClassVar[Sequence[Any] | None] = None

    # Whether ``name`` was set by hand (here or in a base class) rather than derived.
    _explicit_name: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls._explicit_name = cls.name is not None
        model = cls.__dict__.get("model")
        if model is not None:
            if not cls._explicit_name:
                cls.name = f"{model._meta.app_label}.{model._meta.object_name}"
            registry.register(cls)

    def get_name(self) -> str:
        """Return the event name (the WAMP topic)."""
        assert self.name is not None, f"{type(self).__name__} has no model"
        return self.name

    def get_verbose_name(self) -> str:
        """Return :attr:`verbose_name`, or the model's ``verbose_name`` in the active language."""
        if self.verbose_name is not None:
            return str(self.verbose_name)
        assert self.model is not None, f"{type(self).__name__} has no model"
        return str(self.model._meta.verbose_name)

    def sends(self, operation: str) -> bool:
        """Return whether ``operation`` (``"create"``, ``"update"``, ``"delete"``) sends an event."""
        return operation in self.operations

    def is_authorized_user(self, user: Any) -> bool:
        """Return whether the signed-in ``user`` may receive these events (default: everyone).

        The seed's hook, now enforced. A class that overrides it declares its
        audience this way instead of with ``audience``/``permission`` (the
        system check ``telegraphy.E007`` refuses both): its events go to the
        users for whom it returns True (and to superusers), never to
        anonymous visitors. It is called when a connect token is minted (each
        page render, once per such class) and when Telegraphy pushes a user's
        grants to the gateway; the token then carries the permission
        ``"telegraphy:receive:<event name>"``, which is the events' audience.
        A change in what it returns reaches live pages at the user's next
        token, or at once with :func:`~.revocation.refresh_grants`.
        """
        return True

    def checks_users(self) -> bool:
        """Whether this class overrides :meth:`is_authorized_user`."""
        return type(self).is_authorized_user is not BaseEventModel.is_authorized_user

    def declared_audience(self) -> AudienceSpec:
        """Return the audience declared on the class (before any per-instance override).

        ``permission`` if set, else ``audience``, else the permission of an
        overridden :meth:`is_authorized_user`, else ``TELEGRAPHY_DEFAULT_AUDIENCE``.
        """
        if self.permission:
            permissions = [self.permission] if isinstance(self.permission, str) else list(self.permission)
            return {"permissions": permissions}
        if self.audience is not None:
            return self.audience
        if self.checks_users():
            return {"permissions": [receive_permission(self.get_name())]}
        return conf.DEFAULT_AUDIENCE  # type: ignore[no-any-return]

    def get_audience(self, instance: models.Model) -> AudienceSpec:
        """Return who may receive the events of ``instance`` (default: :meth:`declared_audience`).

        Override it for per-instance audiences, e.g. an order's customer and
        the staff: ``{"users": [instance.customer_id], "groups": ["staff"]}``.
        For a delete, ``instance`` holds the deleted row's values.
        """
        return self.declared_audience()

    def get_projections(self, instance: models.Model) -> Sequence[Any] | None:
        """Return the projections of the events of ``instance`` (default: :attr:`projections`)."""
        return self.projections

    def get_visibility(self, instance: models.Model) -> dict[str, Any]:
        """Return the ``meta`` items that tell the gateway who sees the event of ``instance``.

        ``{"audience": ...}`` unless the audience is public (no key: public,
        as events have always been), and ``{"projections": [...]}`` when there
        are any.

        Raises:
            AudienceError: the audience or projections are malformed.
        """
        where = f"{type(self).__name__}"
        meta: dict[str, Any] = {}
        audience = wire_audience(self.get_audience(instance), f"{where}.audience")
        if audience != PUBLIC:
            meta["audience"] = audience
        projections = wire_projections(self.get_projections(instance), self.model, f"{where}.projections")
        if projections:
            meta["projections"] = projections
        return meta

    def get_data(self, instance: models.Model) -> dict[str, Any]:
        """Return the JSON-ready data of ``instance`` (see :mod:`.serialization`)."""
        return instance_data(instance, self.fields, self.exclude)

    def build_event(self, instance: models.Model, operation: str) -> dict[str, Any]:
        """Return the event for ``operation`` on ``instance``, with its audience and projections in ``meta``."""
        return make_event(
            self.get_name(),
            self.get_data(instance),
            operation,
            verbose_name=self.get_verbose_name(),
            meta=self.get_visibility(instance) or None,
        )
