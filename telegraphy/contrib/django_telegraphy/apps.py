"""The Django app configuration: wires model signals and discovers event classes."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoTelegraphyConfig(AppConfig):
    """``telegraphy.contrib.django_telegraphy``: real-time events for Django models."""

    name = "telegraphy.contrib.django_telegraphy"
    label = "django_telegraphy"
    verbose_name = "Telegraphy"

    def ready(self) -> None:
        """Register the system checks, connect the receivers and import every app's ``events``.

        The revocation receivers (:mod:`.revocation`) are connected when
        ``django.contrib.auth`` is installed.
        """
        from django.apps import apps

        from . import checks, receivers  # noqa: F401 - checks register themselves on import
        from .registry import autodiscover

        receivers.connect()
        if apps.is_installed("django.contrib.auth"):
            from . import revocation

            revocation.connect()
        autodiscover()
