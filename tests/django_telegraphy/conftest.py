"""Configure Django for the Django app's tests only.

Django is configured in this process with ``settings.configure()`` from
``telegraphy_test_settings.py`` (not through ``DJANGO_SETTINGS_MODULE``,
which child processes of other tests would inherit), when pytest collects
this directory. Tests elsewhere in the run do not touch Django.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from telegraphy.contrib.django_telegraphy.testing import telegraphy_outbox  # noqa: E402, F401 - the plugin's fixture

_test_settings = importlib.import_module("telegraphy_test_settings")

if not settings.configured:
    settings.configure(**{name: getattr(_test_settings, name) for name in dir(_test_settings) if name.isupper()})
    django.setup()
elif "telegraphy_testapp" not in settings.INSTALLED_APPS:  # pragma: no cover - another settings module won
    pytest.skip(
        "Django is already configured with other settings in this run; run tests/django_telegraphy on its own",
        allow_module_level=True,
    )


@pytest.fixture
def isolated_registry():
    """Restore the event registry after a test that declares event classes."""
    from telegraphy.contrib.django_telegraphy.registry import registry

    saved = dict(registry._handlers)
    yield registry
    registry._handlers.clear()
    registry._handlers.update(saved)


@pytest.fixture
def publish_to(settings):
    """Point the app at a gateway: ``publish_to(gateway)`` sets URL, secret and enables publishing."""

    def point(gateway):
        settings.TELEGRAPHY_GATEWAY_URL = gateway.url
        settings.TELEGRAPHY_SECRET = gateway.secret
        settings.TELEGRAPHY_ENABLED = True
        settings.TELEGRAPHY_FIRE_AND_FORGET = False

    return point


@pytest.fixture
def closed_port_url():
    """An http:// URL on 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
