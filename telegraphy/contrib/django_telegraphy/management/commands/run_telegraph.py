"""``manage.py run_telegraph``: start the Telegraphy gateway with this project's settings.

::

    python manage.py run_telegraph                     # 127.0.0.1:TELEGRAPHY_WS_PORT
    python manage.py run_telegraph --host 0.0.0.0 --port 9100
    python manage.py run_telegraph --reload            # restart when Python files change
    python manage.py run_telegraph --max-batch 500     # unknown options go to the gateway

The gateway runs as a child process, ``python -m telegraphy.tornado_gateway``.
The secret (``TELEGRAPHY_SECRET``), the realm (``TELEGRAPHY_REALM``), the
WebSocket path (``TELEGRAPHY_WS_PATH``), the allowed browser origins
(``TELEGRAPHY_ALLOWED_ORIGINS``) and the client channels
(``TELEGRAPHY_CHANNELS``, as JSON) are handed over in the child's environment,
where the gateway reads them; the secret is not put on the command line,
where every user of the machine could read it in the process list.

With ``DEBUG = True`` and no ``TELEGRAPHY_ALLOWED_ORIGINS``, pages from any
origin may open a WebSocket (``--allowed-origins *``): ``runserver`` pages
(port 8000) and the gateway (port 9000) are different origins.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

import telegraphy

from ...conf import PREFIX
from ...conf import settings as conf

GATEWAY_MODULE = "telegraphy.tornado_gateway"
DEFAULT_HOST = "127.0.0.1"
#: Seconds the gateway gets to finish after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


def gateway_command(
    *,
    host: str,
    port: int,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """Return the command line that starts the gateway."""
    return [python, "-m", GATEWAY_MODULE, "--host", host, "--port", str(port), *extra]


def gateway_environment(extra: Sequence[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the gateway's environment: ``base`` plus the settings it shares with Django.

    Raises:
        CommandError: ``TELEGRAPHY_SECRET`` is not set (and no ``--secret``
            or ``--secret-file`` is passed through).
    """
    env = dict(os.environ if base is None else base)
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    if conf.SECRET:
        env["TELEGRAPHY_SECRET"] = str(conf.SECRET)
        env.pop("TELEGRAPHY_SECRET_FILE", None)
    elif not given & {"--secret", "--secret-file", "--insecure-dev"}:
        raise CommandError(f"{PREFIX}SECRET is not set: the gateway and Django must share it.")
    env["TELEGRAPHY_REALM"] = str(conf.REALM)
    env["TELEGRAPHY_WS_PATH"] = str(conf.WS_PATH)
    origins = getattr(django_settings, f"{PREFIX}ALLOWED_ORIGINS", None)
    if origins is not None:
        env["TELEGRAPHY_ALLOWED_ORIGINS"] = origins if isinstance(origins, str) else ",".join(origins)
    elif django_settings.DEBUG and "TELEGRAPHY_ALLOWED_ORIGINS" not in env:
        env["TELEGRAPHY_ALLOWED_ORIGINS"] = "*"
    channels = conf.CHANNELS
    if channels:
        # One declaration: the gateway enforces it, Django puts its permissions in connect tokens.
        env["TELEGRAPHY_CHANNELS"] = channels if isinstance(channels, str) else json.dumps(channels)
    return env


class Command(BaseCommand):
    help = (
        "Run the Telegraphy gateway with this project's settings. "
        "Options this command does not know are passed to the gateway "
        "(python -m telegraphy.tornado_gateway --help lists them)."
    )
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Return the parser, made to keep the options it does not know (for the gateway)."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known_args = parser.parse_known_args

        def parse_args(args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> Any:
            parsed, unknown = parse_known_args(args, namespace)
            parsed.gateway_args = unknown
            return parsed

        parser.parse_args = parse_args  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help=f"interface to listen on (default {DEFAULT_HOST})")
        parser.add_argument(
            "--port", type=int, default=None, help=f"port to listen on (default {PREFIX}WS_PORT, else 9000)"
        )
        parser.add_argument(
            "--reload", action="store_true", help="restart the gateway when a Python file of the project changes"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        extra = [*args, *options.get("gateway_args", [])]
        command = gateway_command(host=self.host(options), port=self.port(options), extra=extra)
        env = gateway_environment(extra)
        self.warn_about_gateway_url(self.port(options))
        if options["reload"]:
            from django.utils import autoreload

            autoreload.autoreload_started.connect(_watch_telegraphy, dispatch_uid="telegraphy.watch")
            autoreload.run_with_reloader(self.run_gateway, command, env)
        else:
            status = self.run_gateway(command, env)
            if status:
                raise CommandError(f"the gateway exited with status {status}", returncode=status)

    @staticmethod
    def host(options: Mapping[str, Any]) -> str:
        return str(options.get("host") or DEFAULT_HOST)

    @staticmethod
    def port(options: Mapping[str, Any]) -> int:
        if options.get("port") is not None:
            return int(options["port"])
        return int(conf.WS_PORT or 9000)

    def warn_about_gateway_url(self, port: int) -> None:
        """Say so when Django would POST its events somewhere else than this gateway."""
        try:
            gateway_port = urllib.parse.urlsplit(conf.GATEWAY_URL).port or 80
        except (ValueError, TypeError):
            return
        if port and gateway_port != port:
            self.stderr.write(
                f"Note: {PREFIX}GATEWAY_URL is {conf.GATEWAY_URL}, but this gateway listens on port {port}; "
                "Django publishes to the URL."
            )

    def run_gateway(self, command: list[str], env: dict[str, str]) -> int:
        """Run the gateway until it exits or this process is told to stop; return its status."""
        self.stdout.write(f"Starting the Telegraphy gateway: {' '.join(command)}")
        process = subprocess.Popen(command, env=env)
        # With --reload this runs in a daemon thread and the autoreloader ends
        # the process with SystemExit from the main thread: no finally clause
        # of this thread runs then, atexit handlers do.
        atexit.register(_stop, process)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda signum, frame: process.send_signal(signum))
        try:
            return process.wait()
        finally:
            _stop(process)
            atexit.unregister(_stop)
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the gateway: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _watch_telegraphy(sender: Any, **kwargs: Any) -> None:
    """Have the autoreloader watch Telegraphy's own files too (the gateway's code)."""
    sender.watch_dir(Path(telegraphy.__file__).resolve().parent, "**/*.py")
