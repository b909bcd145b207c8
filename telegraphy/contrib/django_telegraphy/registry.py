"""The registry of event classes: at most one per model.

An event class (a :class:`~telegraphy.contrib.django_telegraphy.events.BaseEventModel`
subclass whose body sets ``model``) registers itself when its module is
imported; :func:`autodiscover` imports the ``events`` module of every
installed app, and runs once by itself in ``AppConfig.ready()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.module_loading import autodiscover_modules

if TYPE_CHECKING:
    from .events import BaseEventModel

__all__ = ["EventAlreadyRegistered", "EventRegistry", "autodiscover", "registry"]


class EventAlreadyRegistered(ImproperlyConfigured):
    """A second event class was declared for a model that already has one."""

    def __init__(self, model: type[models.Model], registered: type, rejected: type) -> None:
        self.model = model
        self.registered = registered
        self.rejected = rejected
        super().__init__(
            f"{model._meta.label} already has the event class {_path(registered)}; "
            f"cannot register {_path(rejected)} too (one event class per model)"
        )


class EventRegistry:
    """Maps each model class to its event class and that class's one instance."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._handlers: dict[type[models.Model], BaseEventModel] = {}

    def register(self, event_class: type[BaseEventModel]) -> BaseEventModel:
        """Register ``event_class`` for its ``model`` and return its instance.

        Registering the same class again is a no-op; so is re-registering a
        class of the same dotted path (a module imported twice, or reloaded).

        Raises:
            EventAlreadyRegistered: another class is registered for the model.
        """
        model = event_class.model
        if model is None:
            raise ImproperlyConfigured(f"{_path(event_class)} has no 'model'")
        with self._lock:
            current = self._handlers.get(model)
            if current is not None:
                if type(current) is event_class:
                    return current
                if _path(type(current)) != _path(event_class):
                    raise EventAlreadyRegistered(model, type(current), event_class)
            handler = event_class()
            self._handlers[model] = handler
            return handler

    def unregister(self, model: type[models.Model]) -> None:
        """Forget the event class of ``model`` (no error if it has none)."""
        with self._lock:
            self._handlers.pop(model, None)

    def handler_for(self, model: type[models.Model]) -> BaseEventModel | None:
        """Return the event handler of ``model`` (or of the model a proxy stands for)."""
        handler = self._handlers.get(model)
        if handler is None and model._meta.proxy:
            handler = self._handlers.get(model._meta.concrete_model)
        return handler

    def __contains__(self, model: object) -> bool:
        return model in self._handlers

    def __iter__(self) -> Iterator[BaseEventModel]:
        return iter(list(self._handlers.values()))

    def __len__(self) -> int:
        return len(self._handlers)


#: The process-wide registry the signal receivers read.
registry = EventRegistry()


def autodiscover() -> None:
    """Import the ``events`` module of every installed app.

    Idempotent: a module is imported once; calling this again does nothing
    more. An app without an ``events`` module is skipped; an ``events``
    module that fails to import raises.
    """
    autodiscover_modules("events")


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
