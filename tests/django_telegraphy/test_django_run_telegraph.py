"""manage.py run_telegraph: how it starts the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from telegraphy.contrib.django_telegraphy.management.commands import run_telegraph
from telegraphy.contrib.django_telegraphy.management.commands.run_telegraph import (
    gateway_command,
    gateway_environment,
)


class FakePopen:
    """Stands in for subprocess.Popen: records the command, exits at once."""

    started: list[FakePopen] = []

    def __init__(self, command, env=None, **kwargs):
        self.command = command
        self.env = env
        self.returncode = 0
        FakePopen.started.append(self)

    def wait(self, timeout=None):
        return self.returncode

    def poll(self):
        return self.returncode

    def send_signal(self, signum):
        pass

    def terminate(self):
        pass


@pytest.fixture
def popen(monkeypatch):
    """Replace Popen in the command; return the list of started fake processes."""
    FakePopen.started = []
    monkeypatch.setattr(run_telegraph.subprocess, "Popen", FakePopen)
    return FakePopen.started


def test_default_command(popen, settings):
    """By default: this Python, -m telegraphy.tornado_gateway, 127.0.0.1 and TELEGRAPHY_WS_PORT."""
    settings.TELEGRAPHY_WS_PORT = 9123
    call_command("run_telegraph")
    (process,) = popen
    assert process.command == [sys.executable, "-m", "telegraphy.tornado_gateway", "--host", "127.0.0.1", "--port", "9123"]


def test_secret_goes_in_the_environment_not_the_command_line(popen, settings):
    """TELEGRAPHY_SECRET reaches the gateway as an environment variable, never as a flag."""
    call_command("run_telegraph")
    (process,) = popen
    assert process.env["TELEGRAPHY_SECRET"] == settings.TELEGRAPHY_SECRET
    assert settings.TELEGRAPHY_SECRET not in " ".join(process.command)


def test_host_and_port_options(popen):
    """--host and --port choose where the gateway listens."""
    call_command("run_telegraph", "--host", "0.0.0.0", "--port", "9500")
    assert popen[0].command[-4:] == ["--host", "0.0.0.0", "--port", "9500"]


def test_unknown_options_pass_through(popen):
    """Options run_telegraph does not know are handed to the gateway, in order."""
    call_command("run_telegraph", "--max-batch", "50", "--no-allow-anonymous", "--log-level=debug")
    assert popen[0].command[-4:] == ["--max-batch", "50", "--no-allow-anonymous", "--log-level=debug"]


def test_shared_settings_go_in_the_environment(popen, settings):
    """Realm and WebSocket path come from the Django settings."""
    settings.TELEGRAPHY_REALM = "shop"
    settings.TELEGRAPHY_WS_PATH = "/wamp"
    call_command("run_telegraph")
    env = popen[0].env
    assert (env["TELEGRAPHY_REALM"], env["TELEGRAPHY_WS_PATH"]) == ("shop", "/wamp")


def test_allowed_origins_setting(popen, settings):
    """TELEGRAPHY_ALLOWED_ORIGINS (a list) is joined for the gateway."""
    settings.TELEGRAPHY_ALLOWED_ORIGINS = ["http://localhost:8000", "http://127.0.0.1:8000"]
    call_command("run_telegraph")
    assert popen[0].env["TELEGRAPHY_ALLOWED_ORIGINS"] == "http://localhost:8000,http://127.0.0.1:8000"


def test_channels_setting_goes_to_the_gateway_as_json(settings):
    """TELEGRAPHY_CHANNELS (a list, or JSON text) reaches the gateway as JSON in its environment."""
    channels = [
        {"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"},
        {"procedure": "app.search.", "match": "prefix", "call": "public"},
    ]
    settings.TELEGRAPHY_CHANNELS = channels
    assert json.loads(gateway_environment(base={})["TELEGRAPHY_CHANNELS"]) == channels
    settings.TELEGRAPHY_CHANNELS = '[{"topic": "news"}]'
    assert gateway_environment(base={})["TELEGRAPHY_CHANNELS"] == '[{"topic": "news"}]'
    settings.TELEGRAPHY_CHANNELS = None
    assert "TELEGRAPHY_CHANNELS" not in gateway_environment(base={})


def test_debug_allows_any_origin_when_not_configured(settings):
    """With DEBUG and no TELEGRAPHY_ALLOWED_ORIGINS, any origin may connect; without DEBUG, the gateway decides."""
    settings.DEBUG = True
    assert gateway_environment(base={})["TELEGRAPHY_ALLOWED_ORIGINS"] == "*"
    settings.DEBUG = False
    assert "TELEGRAPHY_ALLOWED_ORIGINS" not in gateway_environment(base={})


def test_missing_secret_is_a_command_error(popen, settings):
    """Without TELEGRAPHY_SECRET the command refuses to start, naming the setting."""
    settings.TELEGRAPHY_SECRET = None
    with pytest.raises(CommandError, match="TELEGRAPHY_SECRET"):
        call_command("run_telegraph")
    assert popen == []


def test_explicit_secret_flag_is_allowed_without_the_setting(settings):
    """A passed-through --secret-file (or --insecure-dev) replaces the setting."""
    settings.TELEGRAPHY_SECRET = None
    env = gateway_environment(["--secret-file", "/run/secret"], base={})
    assert "TELEGRAPHY_SECRET" not in env


def test_gateway_exit_status_is_reported(popen, monkeypatch):
    """A gateway that exits non-zero makes the command fail with that status."""

    class Failing(FakePopen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.returncode = 2

    monkeypatch.setattr(run_telegraph.subprocess, "Popen", Failing)
    with pytest.raises(CommandError, match="status 2"):
        call_command("run_telegraph")


def test_reload_runs_the_gateway_under_the_autoreloader(popen, monkeypatch):
    """--reload hands the gateway runner to django.utils.autoreload."""
    calls = []
    from django.utils import autoreload

    monkeypatch.setattr(autoreload, "run_with_reloader", lambda main, *args: calls.append((main, args)))
    call_command("run_telegraph", "--reload")
    ((main, (command, _env)),) = calls
    assert command[:3] == [sys.executable, "-m", "telegraphy.tornado_gateway"]
    assert main.__name__ == "run_gateway"


def test_gateway_command_helper():
    """gateway_command() builds the argv list."""
    assert gateway_command(host="h", port=1, extra=["--x"], python="py") == [
        "py", "-m", "telegraphy.tornado_gateway", "--host", "h", "--port", "1", "--x"
    ]


def test_runs_a_real_gateway_until_it_is_stopped(settings, monkeypatch):
    """The command really starts the gateway, which listens and reports its address."""
    seen = []
    real_popen = subprocess.Popen

    def spawn(command, env=None, **kwargs):
        process = real_popen(command, env=env, stdout=subprocess.PIPE, text=True)
        seen.append(process.stdout.readline())
        process.terminate()
        return process

    monkeypatch.setattr(run_telegraph.subprocess, "Popen", spawn)
    try:
        call_command("run_telegraph", "--port", "0")
    except CommandError:
        pass  # how the gateway exits on SIGTERM is the gateway's business
    assert seen[0].startswith("Telegraphy gateway listening on http://127.0.0.1:")
