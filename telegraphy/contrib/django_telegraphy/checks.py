"""System checks of the Telegraphy settings and event classes (``manage.py check``).

=====================  =========================================================
``telegraphy.E001``    ``TELEGRAPHY_SECRET`` is not set
``telegraphy.E009``    ``TELEGRAPHY_SECRET`` is shorter than 32 bytes (the gateway
                       refuses such a secret too)
``telegraphy.E002``    ``TELEGRAPHY_GATEWAY_URL`` is not an ``http(s)://host[:port]`` URL
``telegraphy.E003``    ``TELEGRAPHY_WS_URL`` is not a ``ws(s)://`` URL
``telegraphy.W002``    ``django.contrib.staticfiles`` is not installed
``telegraphy.E004``    an event class names a field its model does not have
``telegraphy.E005``    an event class lists an unknown operation
``telegraphy.E006``    an event class's ``audience``, ``permission`` or ``projections``
                       is malformed
``telegraphy.E007``    an event class declares its audience twice (``audience`` and
                       ``permission``, or either with an overridden
                       ``is_authorized_user``)
``telegraphy.E008``    ``TELEGRAPHY_DEFAULT_AUDIENCE``, ``TELEGRAPHY_CHANNELS``,
                       ``TELEGRAPHY_TOKEN_PERMISSIONS``, ``TELEGRAPHY_TOKEN_MAX_PERMS``
                       or ``TELEGRAPHY_REVOKE_MAX_USERS`` is malformed
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

from .audiences import AudienceError, wire_audience, wire_projections
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
    elif _length(secret) < MIN_SECRET_LENGTH:
        # Every signed-in page carries a token signed with it: a short secret
        # can be found offline from one token. The gateway refuses it too.
        messages.append(
            Error(
                f"{PREFIX}SECRET is {_length(secret)} bytes long; at least {MIN_SECRET_LENGTH} are required.",
                hint=f"Use at least {MIN_SECRET_LENGTH} random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'.",
                id="telegraphy.E009",
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
    messages.extend(_audience_setting_problems())
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
        messages.extend(_audience_problems(handler, label))
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


def _audience_problems(handler: Any, label: str) -> list[CheckMessage]:
    """Check the audience declarations of one event class."""
    event_class = type(handler)
    messages: list[CheckMessage] = []
    declared = [
        ("audience", event_class.audience),
        ("permission", None if not event_class.permission else {"permissions": event_class.permission}),
    ]
    for option, value in declared:
        if value is None:
            continue
        try:
            wire_audience(value, f"{label}.{option}")
        except AudienceError as exc:
            messages.append(Error(f"{exc}.", obj=event_class, id="telegraphy.E006"))
    try:
        wire_projections(event_class.projections, event_class.model, f"{label}.projections")
    except AudienceError as exc:
        messages.append(Error(f"{exc}.", obj=event_class, id="telegraphy.E006"))
    named = [option for option, value in declared if value is not None]
    if handler.checks_users():
        named.append("is_authorized_user()")
    if len(named) > 1:
        messages.append(
            Error(
                f"{label} declares its audience with both {' and '.join(named)}.",
                hint="Use one: audiences are unions (a user in any entry sees the event), so two declarations "
                "cannot both restrict it. Override get_audience(instance) to combine them yourself.",
                obj=event_class,
                id="telegraphy.E007",
            )
        )
    return messages


def _audience_setting_problems() -> list[CheckMessage]:
    """Check the settings of audiences, token grants and revocation."""
    problems = []
    try:
        wire_audience(conf.DEFAULT_AUDIENCE, f"{PREFIX}DEFAULT_AUDIENCE")
    except AudienceError as exc:
        problems.append(str(exc))
    if conf.CHANNELS:
        import json

        from telegraphy.wamp.channels import parse_channels

        try:
            value = conf.CHANNELS
            parse_channels(value if isinstance(value, str) else json.loads(json.dumps(value)))
        except (TypeError, ValueError) as exc:
            problems.append(f"{PREFIX}CHANNELS: {exc}")
    permissions = conf.TOKEN_PERMISSIONS
    if isinstance(permissions, str) or not all(isinstance(p, str) and p for p in permissions or ()):
        problems.append(f"{PREFIX}TOKEN_PERMISSIONS: expected a list of 'app_label.codename' strings")
    for name in ("TOKEN_MAX_PERMS", "REVOKE_MAX_USERS"):
        value = getattr(conf, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{PREFIX}{name}: expected a whole number, 0 or more, got {value!r}")
    return [Error(f"{problem}.", id="telegraphy.E008") for problem in problems]


def _length(secret: Any) -> int:
    """The length of a secret in bytes (UTF-8 for a string), as HS256 uses it."""
    return len(secret.encode("utf-8") if isinstance(secret, str) else bytes(secret))


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
