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
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from django.db import models

from telegraphy.event import EVENT_CREATE, EVENT_DELETE, EVENT_UPDATE, make_event

from .registry import EventAlreadyRegistered, autodiscover, registry
from .serialization import ALL_FIELDS, instance_data

__all__ = [
    "ALL_FIELDS",
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
        """Return whether ``user`` may receive these events (default: everyone).

        This keeps the seed's hook; the gateway does not enforce it yet.
        """
        return True

    def get_data(self, instance: models.Model) -> dict[str, Any]:
        """Return the JSON-ready data of ``instance`` (see :mod:`.serialization`)."""
        return instance_data(instance, self.fields, self.exclude)

    def build_event(self, instance: models.Model, operation: str) -> dict[str, Any]:
        """Return the event for ``operation`` on ``instance``."""
        return make_event(self.get_name(), self.get_data(instance), operation, verbose_name=self.get_verbose_name())

