"""System checks of the Telegraphy settings and event classes (``manage.py check``).

=====================  =========================================================
``telegraphy.E001``    ``TELEGRAPHY_SECRET`` is not set
``telegraphy.W001``    ``TELEGRAPHY_SECRET`` is shorter than 32 characters
``telegraphy.E002``    ``TELEGRAPHY_GATEWAY_URL`` is not an ``http(s)://host[:port]`` URL
``telegraphy.E003``    ``TELEGRAPHY_WS_URL`` is not a ``ws(s)://`` URL
``telegraphy.W002``    ``django.contrib.staticfiles`` is not installed
``telegraphy.E004``    an event class names a field its model does not have
``telegraphy.E005``    an event class lists an unknown operation
=====================  =========================================================

The app has no ordering constraint in ``INSTALLED_APPS``: its ``ready()``
runs after every app's models are loaded, and imports every app's
``events`` module then.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import PREFIX
from .conf import settings as conf
from .events import OP_CREATE, OP_DELETE, OP_UPDATE
from .registry import registry

__all__ = ["MIN_SECRET_LENGTH", "check_event_classes", "check_settings"]

MIN_SECRET_LENGTH = 32

TAG = "telegraphy"


@register(TAG, Tags.security)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check the ``TELEGRAPHY_*`` settings."""
    messages: list[CheckMessage] = []
    secret = conf.SECRET
    if not secret:
        if conf.ENABLED:
            messages.append(
                Error(
                    f"{PREFIX}SECRET is not set.",
                    hint=f"Set {PREFIX}SECRET to the secret the gateway is started with "
                    "(a random string of 32 characters or more, kept out of version control).",
                    id="telegraphy.E001",
                )
            )
    elif len(secret) < MIN_SECRET_LENGTH:
        messages.append(
            Warning(
                f"{PREFIX}SECRET has {len(secret)} characters; a short secret can be guessed.",
                hint=f"Use at least {MIN_SECRET_LENGTH} random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'.",
                id="telegraphy.W001",
            )
        )
    problem = _url_problem(conf.GATEWAY_URL, ("http", "https"))
    if problem:
        messages.append(
            Error(
                f"{PREFIX}GATEWAY_URL {conf.GATEWAY_URL!r} {problem}.",
                hint="It is where Django POSTs events, e.g. 'http://127.0.0.1:9000'.",
                id="telegraphy.E002",
            )
        )
    if conf.WS_URL:
        problem = _url_problem(conf.WS_URL, ("ws", "wss"), path_allowed=True)
        if problem:
            messages.append(
                Error(
                    f"{PREFIX}WS_URL {conf.WS_URL!r} {problem}.",
                    hint="It is the WebSocket URL browsers connect to, e.g. 'wss://example.com/ws'.",
                    id="telegraphy.E003",
                )
            )
    if not apps.is_installed("django.contrib.staticfiles"):
        messages.append(
            Warning(
                "django.contrib.staticfiles is not installed.",
                hint="{% telegraphy_scripts %} loads the browser client 'telegraphy/telegraphy.js' "
                "from the static files; install staticfiles or serve that file at STATIC_URL yourself.",
                id="telegraphy.W002",
            )
        )
    return messages


@register(TAG, Tags.models)
def check_event_classes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check that each registered event class names real fields and operations."""
    messages: list[CheckMessage] = []
    for handler in registry:
        event_class = type(handler)
        model = event_class.model
        assert model is not None
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        known = set()
        for field in [*model._meta.concrete_fields, *model._meta.many_to_many]:
            known.update({field.name, field.attname})
        label = f"{event_class.__module__}.{event_class.__qualname__}"
        for option in ("fields", "exclude"):
            names = getattr(event_class, option) or ()
            if isinstance(names, str):
                if option == "fields" and names == "__all__":
                    continue
                names = (names,)
            for name in names:
                if name not in known:
                    messages.append(
                        Error(
                            f"{label}.{option} names {name!r}, which is not a field of {model._meta.label}.",
                            obj=event_class,
                            id="telegraphy.E004",
                        )
                    )
        for operation in event_class.operations:
            if operation not in (OP_CREATE, OP_UPDATE, OP_DELETE):
                messages.append(
                    Error(
                        f"{label}.operations lists {operation!r}; the operations are "
                        f"{OP_CREATE!r}, {OP_UPDATE!r} and {OP_DELETE!r}.",
                        obj=event_class,
                        id="telegraphy.E005",
                    )
                )
    return messages


def _url_problem(url: Any, schemes: tuple[str, ...], *, path_allowed: bool = False) -> str | None:
    """Say what is wrong with ``url``, or return None."""
    if not isinstance(url, str):
        return "is not a string"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"cannot be parsed ({exc})"
    if parts.scheme not in schemes:
        return f"must start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return "has no host"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if parts.username or parts.password:
        return "must not carry credentials"
    return None
