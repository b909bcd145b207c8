"""System checks of the settings and event classes."""

from __future__ import annotations

from django.core import checks

from telegraphy.contrib.django_telegraphy.checks import check_event_classes, check_settings
from telegraphy.contrib.django_telegraphy.events import BaseEventModel
from telegraphy_testapp.models import Quiet


def ids(messages):
    return [message.id for message in messages]


def test_test_settings_pass():
    """The test project's settings raise nothing."""
    assert check_settings() == []
    assert check_event_classes() == []


def test_checks_are_registered_with_django():
    """manage.py check runs the Telegraphy checks (tag 'telegraphy')."""
    assert "telegraphy" in checks.registry.registry.tags_available()


def test_missing_secret_is_an_error_naming_the_setting(settings):
    """No TELEGRAPHY_SECRET: Error telegraphy.E001 naming the setting."""
    settings.TELEGRAPHY_SECRET = None
    (message,) = check_settings()
    assert message.id == "telegraphy.E001"
    assert message.level == checks.ERROR
    assert "TELEGRAPHY_SECRET" in message.msg


def test_missing_secret_is_fine_when_disabled(settings):
    """With TELEGRAPHY_ENABLED = False a missing secret is not reported."""
    settings.TELEGRAPHY_SECRET = None
    settings.TELEGRAPHY_ENABLED = False
    assert check_settings() == []


def test_short_secret_is_an_error(settings):
    """A secret under 32 bytes: Error telegraphy.E009 naming the setting and the minimum."""
    settings.TELEGRAPHY_SECRET = "short"
    (message,) = check_settings()
    assert (message.id, message.level) == ("telegraphy.E009", checks.ERROR)
    assert "TELEGRAPHY_SECRET is 5 bytes long" in message.msg and "at least 32" in message.msg
    settings.TELEGRAPHY_SECRET = "é" * 16  # 32 bytes in UTF-8
    assert check_settings() == []


def test_malformed_gateway_urls_are_errors(settings):
    """TELEGRAPHY_GATEWAY_URL must be http(s)://host[:port]: else telegraphy.E002."""
    for url in ("127.0.0.1:9000", "ws://127.0.0.1:9000", "http://", "http://host:99999", "http://h/?q=1", 9000):
        settings.TELEGRAPHY_GATEWAY_URL = url
        assert ids(check_settings()) == ["telegraphy.E002"], url
    settings.TELEGRAPHY_GATEWAY_URL = "https://gateway.internal:8443/prefix"
    assert check_settings() == []


def test_malformed_ws_url_is_an_error(settings):
    """TELEGRAPHY_WS_URL must be ws:// or wss://: else telegraphy.E003."""
    settings.TELEGRAPHY_WS_URL = "http://example.com/ws"
    assert ids(check_settings()) == ["telegraphy.E003"]
    settings.TELEGRAPHY_WS_URL = "wss://example.com/ws"
    assert check_settings() == []


def test_missing_staticfiles_is_a_warning(settings):
    """Without django.contrib.staticfiles: Warning telegraphy.W002."""
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django.contrib.staticfiles"]
    assert ids(check_settings()) == ["telegraphy.W002"]


def test_unknown_field_names_are_errors(isolated_registry):
    """fields or exclude naming a missing field: Error telegraphy.E004 naming class and field."""

    class QuietEvent(BaseEventModel):
        model = Quiet
        fields = ("text", "titel")
        exclude = ("nope",)

    messages = check_event_classes()
    assert ids(messages) == ["telegraphy.E004", "telegraphy.E004"]
    assert "QuietEvent.fields names 'titel'" in messages[0].msg
    assert "testapp.Quiet" in messages[0].msg


def test_unknown_operation_is_an_error(isolated_registry):
    """An operation outside create/update/delete: Error telegraphy.E005."""

    class QuietEvent(BaseEventModel):
        model = Quiet
        operations = ("create", "upsert")

    (message,) = check_event_classes()
    assert message.id == "telegraphy.E005"
    assert "'upsert'" in message.msg


def test_all_fields_spelling_is_accepted(isolated_registry):
    """fields = '__all__' is valid."""

    class QuietEvent(BaseEventModel):
        model = Quiet
        fields = "__all__"

    assert check_event_classes() == []
