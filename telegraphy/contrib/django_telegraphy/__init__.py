"""Telegraphy for Django: model events, custom events, template tags, ``run_telegraph``.

Add ``"telegraphy.contrib.django_telegraphy"`` to ``INSTALLED_APPS``, set
``TELEGRAPHY_SECRET``, declare event classes in your apps' ``events.py``
(:class:`~.events.BaseEventModel`) and put ``{% telegraphy_scripts %}`` in
your base template. Custom events::

    from telegraphy.contrib.django_telegraphy import send_event

    send_event("chat.lobby", {"text": "hello"})
    send_event("shop.alerts", {"text": "stock low"}, audience={"groups": ["staff"]})

Who sees what: ``audience``, ``permission`` and ``projections`` on event
classes (:mod:`.audiences`), the grants in connect tokens
(:func:`connect_token_for`, :mod:`.grants`) and live revocation
(:mod:`.revocation`: :func:`refresh_grants`, :func:`end_sessions`).

See docs/django.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["connect_token_for", "end_sessions", "refresh_grants", "send_event"]

_LAZY = {
    "send_event": "dispatcher",
    "connect_token_for": "grants",
    "refresh_grants": "revocation",
    "end_sessions": "revocation",
}


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing the package (as Django and the
    # pytest plugin in .testing do) imports nothing of Django by itself.
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
