"""Telegraphy for Django: model events, custom events, template tags, ``run_telegraph``.

Add ``"telegraphy.contrib.django_telegraphy"`` to ``INSTALLED_APPS``, set
``TELEGRAPHY_SECRET``, declare event classes in your apps' ``events.py``
(:class:`~.events.BaseEventModel`) and put ``{% telegraphy_scripts %}`` in
your base template. Custom events::

    from telegraphy.contrib.django_telegraphy import send_event

    send_event("chat.lobby", {"text": "hello"})

See docs/django.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["send_event"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing the package (as Django and the
    # pytest plugin in .testing do) imports nothing of Django by itself.
    if name == "send_event":
        from .dispatcher import send_event

        return send_event
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
