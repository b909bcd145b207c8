"""Settings of the Tornado gateway, from command-line flags and the environment.

Every setting has a flag and an environment variable. A flag wins over the
environment, the environment over the default::

    config = Config.from_args(sys.argv[1:], os.environ)
    config.check()                 # refuses to run without a secret
    config = config.with_secret()  # fills in a random secret under --insecure-dev

Sizes accept plain byte counts and the suffixes ``K`` (KiB), ``M`` (MiB) and
``G`` (GiB): ``1048576``, ``512K``, ``4M``. Booleans in the environment accept
``1/true/yes/on`` and ``0/false/no/off``.

An invalid value ends the program through argparse (exit status 2) with a
message that names the flag and the environment variable it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from telegraphy.sockjs.http import valid_integrity

__all__ = [
    "Config",
    "ConfigError",
    "build_parser",
    "parse_bool",
    "parse_size",
]

logger = logging.getLogger("telegraphy.gateway")

KIB = 1024
MIB = 1024 * KIB

#: Shortest secret accepted, in bytes (UTF-8): HS256 wants at least 256 bits.
#: A shorter one is refused unless ``--insecure-dev`` (then it draws a warning).
MIN_SECRET_LENGTH = 32
#: Shortest ``--metrics-token`` accepted.
MIN_METRICS_TOKEN_LENGTH = 16
#: The default listen backlog; the kernel caps it (Linux: ``net.core.somaxconn``).
DEFAULT_BACKLOG = 4096
#: The embedded default store: a SQLite file in the working directory.
DEFAULT_STORE = "sqlite:///telegraphy.sqlite3"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SIZE = re.compile(r"^\s*(\d+)\s*(k|kib|m|mib|g|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": KIB, "kib": KIB, "m": MIB, "mib": MIB, "g": 1024 * MIB, "gib": 1024 * MIB}
# An origin is scheme://host[:port], nothing after it (RFC 6454 §6.1).
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$", re.IGNORECASE)


class ConfigError(Exception):
    """The settings are consistent one by one but cannot run together.

    Raised by :meth:`Config.check`; the message is meant for the operator,
    as is, on stderr.
    """


@dataclass(frozen=True, repr=False)
class Config:
    """Every setting of the gateway. Build it with :meth:`from_args`.

    Attributes:
        host: the interface to listen on.
        port: the TCP port; ``0`` picks a free one.
        backlog: the listen backlog: connections the kernel queues before
            the gateway accepts them (capped by ``net.core.somaxconn``).
        secret: the shared HS256 secret, or ``None`` when none was given.
        insecure_dev: allow starting without a secret (a random one is used),
            or with one shorter than ``MIN_SECRET_LENGTH`` bytes.
        realm: the single WAMP realm served.
        ws_path: the URL path of the WAMP WebSocket endpoint.
        allowed_origins: browser origins allowed to open a WebSocket besides
            the gateway's own; ``("*",)`` allows any.
        trusted_proxies: addresses and networks (``10.0.0.0/8``) of the
            reverse proxies whose ``X-Forwarded-For``/``X-Real-IP`` and
            ``X-Forwarded-Proto`` headers are believed; empty: none are.
        metrics_token: the bearer token ``GET /metrics`` requires; ``None``:
            only loopback clients that came through no proxy may read it.
        allow_anonymous: let clients join without a connect token.
        max_message_size: largest incoming WebSocket message, in bytes.
        max_body_size: largest ``/publish`` request body, in bytes.
        max_batch: most events in one ``/publish`` request.
        jwt_leeway: clock skew tolerated on token ``exp``/``nbf``, in seconds.
        connect_token_max_ttl: longest connect token accepted (``exp - iat``),
            in seconds; revocations are kept this long (plus ``jwt_leeway``).
        outgoing_buffer: unsent bytes per connection before a slow consumer
            is disconnected.
        channels: the declared client channels (parsed by
            :func:`telegraphy.wamp.channels.parse_channels`), or ``None`` for
            the default (anyone subscribes, clients publish nowhere, only
            backend sessions register, signed-in sessions call).
        max_web_topics: most topics of web-app events remembered as never
            client-publishable (siblings fold into a prefix beyond).
        max_subscriptions: most subscriptions per session; ``0``: no limit.
        max_uri_length: longest topic or procedure URI a client may use, in
            characters; ``0``: no limit.
        max_filter_size: largest filter (``filter`` + ``exclude``) of one
            subscription, in bytes of compact JSON; ``0``: no limit.
        max_total_subscriptions: most distinct subscriptions the gateway
            process holds for all sessions together; ``0``: no limit.
        max_filters_total: most bytes of filters those subscriptions hold
            together; ``0``: no limit.
        publish_rate: client PUBLISHes per second per session; ``0``: no limit.
        publish_burst: client PUBLISHes a session may send at once.
        connection_rate: new WebSocket and SockJS connections per second per
            client IP; ``0``: no limit.
        connection_burst: new connections one IP may open at once.
        ping_interval: seconds between WebSocket pings; ``0`` disables them.
        store: where sessions, subscriptions and event history persist
            (``sqlite:///path``, ``memory://``, ``redis://…``, ``mongodb://…``),
            or ``none`` for no persistence (no offsets, no resume).
        bus: how gateway processes that act as one tell each other about
            events: ``local://`` (one process) or ``redis://HOST:PORT/DB``.
        session_ttl: seconds a disconnected session can still be resumed.
        anonymous_session_ttl: the same for anonymous sessions (which are
            stored only once they subscribe).
        max_anonymous_sessions: most anonymous sessions stored for resume
            by one gateway process; ``0``: no limit.
        history_max_events: events kept per topic for recovery.
        history_max_age: seconds events are kept for recovery.
        dedup_window_events: event ids (``meta.id``) remembered so that a
            retried publish is delivered once: the most recent ones.
        dedup_window_age: seconds an event id is remembered.
        sockjs: serve WAMP over SockJS for clients that cannot open a WebSocket.
        sockjs_path: the URL path of the SockJS endpoint.
        sockjs_heartbeat: seconds between SockJS heartbeat frames.
        sockjs_disconnect_delay: seconds a SockJS session survives without
            a receiving connection.
        sockjs_response_limit: bytes after which a SockJS streaming response
            is ended (the client opens a new one).
        sockjs_cookie: set the ``JSESSIONID`` cookie for load balancers that
            keep clients on one node by cookie.
        sockjs_client_url: the sockjs-client script the SockJS iframe page
            loads; empty (the default) for the copy the gateway serves itself.
        sockjs_client_integrity: the Subresource Integrity value of that
            script (``sha384-…``); required with a ``sockjs_client_url``.
        sockjs_bind_peer: refuse requests for a SockJS session from any
            address but the one that opened it.
        sockjs_auth_id_length: the shortest SockJS session id that may
            carry an authenticated (or resumed) WAMP session.
        sockjs_hixie76: also accept legacy draft-76 ("Hixie-76") WebSockets
            on SockJS's per-session websocket transport.
        sockjs_test_endpoints: also mount the services of the official SockJS
            protocol test suite (``/echo``, ``/close``, …).
        log_level: one of ``debug``, ``info``, ``warning``, ``error``,
            ``critical``.
        secret_generated: ``True`` when :meth:`with_secret` made up the secret.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    backlog: int = DEFAULT_BACKLOG
    secret: str | None = None
    insecure_dev: bool = False
    realm: str = "telegraphy"
    ws_path: str = "/ws"
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    metrics_token: str | None = None
    allow_anonymous: bool = True
    max_message_size: int = 1 * MIB
    max_body_size: int = 1 * MIB
    max_batch: int = 1000
    jwt_leeway: float = 5.0
    connect_token_max_ttl: float = 3600.0
    outgoing_buffer: int = 4 * MIB
    channels: tuple[Any, ...] | None = None
    max_web_topics: int = 10_000
    max_subscriptions: int = 1000
    max_uri_length: int = 512
    max_filter_size: int = 16 * KIB
    max_total_subscriptions: int = 100_000
    max_filters_total: int = 8 * MIB
    publish_rate: float = 50.0
    publish_burst: int = 100
    connection_rate: float = 20.0
    connection_burst: int = 50
    ping_interval: float = 25.0
    store: str = DEFAULT_STORE
    bus: str = "local://"
    session_ttl: float = 3600.0
    anonymous_session_ttl: float = 300.0
    max_anonymous_sessions: int = 10_000
    history_max_events: int = 10_000
    history_max_age: float = 86_400.0
    dedup_window_events: int = 100_000
    dedup_window_age: float = 86_400.0
    sockjs: bool = True
    sockjs_path: str = "/sockjs"
    sockjs_heartbeat: float = 25.0
    sockjs_disconnect_delay: float = 5.0
    sockjs_response_limit: int = 128 * KIB
    sockjs_cookie: bool = False
    sockjs_client_url: str = ""
    sockjs_client_integrity: str = ""
    sockjs_bind_peer: bool = True
    sockjs_auth_id_length: int = 16
    sockjs_hixie76: bool = True
    sockjs_test_endpoints: bool = False
    log_level: str = "info"
    secret_generated: bool = False

    def __repr__(self) -> str:
        # Never show the secret: configs end up in logs and tracebacks.
        fields = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("secret", "metrics_token") and value is not None:
                fields.append(f"{field.name}=***")
                continue
            fields.append(f"{field.name}={value!r}")
        return f"Config({', '.join(fields)})"

    __str__ = __repr__

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
        """Parse flags and environment variables into a :class:`Config`.

        Args:
            argv: the arguments without the program name; ``None`` means
                ``sys.argv[1:]``.
            environ: the environment; ``None`` means ``os.environ``.

        Raises:
            SystemExit: with status 2 on an invalid value (argparse prints
                the message), or 0 after ``--help``.
        """
        env = os.environ if environ is None else environ
        parser = build_parser(env)
        args = parser.parse_args(argv)
        secret = _resolve_secret(parser, args, env)
        insecure_dev = args.insecure_dev if args.insecure_dev is not None else _env_bool(parser, env, "TELEGRAPHY_INSECURE_DEV", "--insecure-dev", False)
        allow_anonymous = (
            args.allow_anonymous
            if args.allow_anonymous is not None
            else _env_bool(parser, env, "TELEGRAPHY_ALLOW_ANONYMOUS", "--allow-anonymous", True)
        )
        return cls(
            host=args.host,
            port=args.port,
            backlog=args.backlog,
            secret=secret,
            insecure_dev=insecure_dev,
            realm=args.realm,
            ws_path=args.ws_path,
            allowed_origins=args.allowed_origins,
            trusted_proxies=args.trusted_proxies,
            metrics_token=args.metrics_token,
            allow_anonymous=allow_anonymous,
            max_message_size=args.max_message_size,
            max_body_size=args.max_body_size,
            max_batch=args.max_batch,
            jwt_leeway=args.jwt_leeway,
            connect_token_max_ttl=args.connect_token_max_ttl,
            outgoing_buffer=args.outgoing_buffer,
            channels=args.channels,
            max_web_topics=args.max_web_topics,
            max_subscriptions=args.max_subscriptions,
            max_uri_length=args.max_uri_length,
            max_filter_size=args.max_filter_size,
            max_total_subscriptions=args.max_total_subscriptions,
            max_filters_total=args.max_filters_total,
            publish_rate=args.publish_rate,
            publish_burst=args.publish_burst,
            connection_rate=args.connection_rate,
            connection_burst=args.connection_burst,
            ping_interval=args.ping_interval,
            store=args.store,
            bus=args.bus,
            session_ttl=args.session_ttl,
            anonymous_session_ttl=args.anonymous_session_ttl,
            max_anonymous_sessions=args.max_anonymous_sessions,
            history_max_events=args.history_max_events,
            history_max_age=args.history_max_age,
            dedup_window_events=args.dedup_window_events,
            dedup_window_age=args.dedup_window_age,
            sockjs=_flag(parser, args.sockjs, env, "TELEGRAPHY_SOCKJS", "--sockjs", True),
            sockjs_path=args.sockjs_path.rstrip("/"),
            sockjs_heartbeat=args.sockjs_heartbeat,
            sockjs_disconnect_delay=args.sockjs_disconnect_delay,
            sockjs_response_limit=args.sockjs_response_limit,
            sockjs_cookie=_flag(parser, args.sockjs_cookie, env, "TELEGRAPHY_SOCKJS_COOKIE", "--sockjs-cookie", False),
            sockjs_client_url=args.sockjs_client_url,
            sockjs_client_integrity=args.sockjs_client_integrity,
            sockjs_bind_peer=_flag(parser, args.sockjs_bind_peer, env, "TELEGRAPHY_SOCKJS_BIND_PEER", "--sockjs-bind-peer", True),
            sockjs_auth_id_length=args.sockjs_auth_id_length,
            sockjs_hixie76=_flag(parser, args.sockjs_hixie76, env, "TELEGRAPHY_SOCKJS_HIXIE76", "--sockjs-hixie76", True),
            sockjs_test_endpoints=_flag(
                parser, args.sockjs_test_endpoints, env, "TELEGRAPHY_SOCKJS_TEST_ENDPOINTS", "--sockjs-test-endpoints", False
            ),
            log_level=args.log_level,
        )

    def check(self) -> None:
        """Refuse settings the gateway cannot safely run with.

        Raises:
            ConfigError: when there is no secret, or one shorter than
                ``MIN_SECRET_LENGTH`` bytes, and ``insecure_dev`` is off; when
                the SockJS path collides with another endpoint; or when
                ``--max-message-size`` or ``--max-body-size`` is above
                ``--outgoing-buffer``.
        """
        if not self.secret and not self.insecure_dev:
            raise ConfigError(
                "no secret configured: set TELEGRAPHY_SECRET (or --secret / --secret-file), "
                "or pass --insecure-dev for local development"
            )
        if self.secret and not self.insecure_dev and secret_bytes(self.secret) < MIN_SECRET_LENGTH:
            # Every signed-in page carries a token signed with it: a short
            # secret can be found offline from one token.
            raise ConfigError(
                f"TELEGRAPHY_SECRET (--secret / --secret-file) is {secret_bytes(self.secret)} bytes long; "
                f"at least {MIN_SECRET_LENGTH} are required "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                "or pass --insecure-dev for local development"
            )
        taken = (
            "", self.ws_path, "/publish", "/revoke", "/health", "/metrics", "/sessions", "/subscriptions", "/subscribers", "/subscriptors",
        )
        if self.sockjs and self.sockjs_path in taken:
            raise ConfigError(f"--sockjs-path {self.sockjs_path or '/'!r} collides with another endpoint: choose another path")
        if self.sockjs_client_url and not self.sockjs_client_integrity:
            raise ConfigError(
                "--sockjs-client-url needs --sockjs-client-integrity (the script's sha384-… Subresource Integrity value), "
                "or leave --sockjs-client-url unset to serve the bundled sockjs-client"
            )
        self._check_buffer_limits()

    def _check_buffer_limits(self) -> None:
        """Refuse incoming limits above --outgoing-buffer: one message must fit in a connection's buffer."""
        for flag, size in (("--max-message-size", self.max_message_size), ("--max-body-size", self.max_body_size)):
            if size > self.outgoing_buffer:
                raise ConfigError(
                    f"{flag} ({size} bytes) is above --outgoing-buffer ({self.outgoing_buffer} bytes): "
                    f"raise --outgoing-buffer or lower {flag}"
                )

    def with_secret(self) -> Config:
        """Return this config with a secret, generating one under ``insecure_dev``.

        Call after :meth:`check`. A generated secret is random per process,
        so no web app can mint tokens for it: a loud warning says so. A short
        configured secret is refused (:class:`ConfigError`), or under
        ``insecure_dev`` gets a warning.
        """
        if self.secret:
            if secret_bytes(self.secret) < MIN_SECRET_LENGTH:
                self.check()
                logger.warning(
                    "INSECURE DEVELOPMENT MODE: the secret is %d bytes long; use at least %d random bytes",
                    secret_bytes(self.secret),
                    MIN_SECRET_LENGTH,
                )
            return self
        self.check()
        logger.warning(
            "INSECURE DEVELOPMENT MODE: no secret configured, using a random secret for this process only; "
            "publishers and connect tokens from your web app will be refused. "
            "Set TELEGRAPHY_SECRET before deploying."
        )
        return dataclasses.replace(self, secret=secrets.token_urlsafe(32), secret_generated=True)


def secret_bytes(secret: str) -> int:
    """The length of ``secret`` in bytes (UTF-8), as HS256 uses it."""
    return len(secret.encode("utf-8"))


def parse_size(text: str) -> int:
    """Return the byte count of ``text`` (``"1048576"``, ``"512K"``, ``"4M"``).

    Raises:
        ValueError: when ``text`` is not a non-negative size.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (use bytes, or a number with K or M, e.g. 512K, 4M)")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_bool(text: str) -> bool:
    """Return the truth of ``text``: ``1/true/yes/on`` or ``0/false/no/off``.

    Raises:
        ValueError: for any other text.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1/true/yes/on or 0/false/no/off)")


class _EnvValue(str):
    """A default taken from the environment; remembers the variable's name.

    argparse converts string defaults with the option's ``type``, so an
    invalid environment value fails exactly like an invalid flag, and the
    converter can say where the value came from.
    """

    source: str

    def __new__(cls, value: str, source: str) -> _EnvValue:
        self = super().__new__(cls, value)
        self.source = source
        return self


def _converter(
    flag: str, env_names: Sequence[str], parse: Callable[[str], Any], check: Callable[[Any], str | None] | None = None
) -> Callable[[str], Any]:
    """Wrap ``parse`` so its errors name the flag and the environment variable."""
    also = " or ".join(env_names)

    def convert(text: str) -> Any:
        source = f"from {text.source}" if isinstance(text, _EnvValue) else f"from {flag}"
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{_reason(exc)} ({source}; set with {flag} or {also})") from None
        problem = check(value) if check else None
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r} {problem} ({source}; set with {flag} or {also})")
        return value

    convert.__name__ = flag.lstrip("-").replace("-", "_")
    return convert


def _reason(exc: ValueError) -> str:
    text = str(exc)
    # int("x") and float("x") say "invalid literal for int() with base 10: 'x'".
    if text.startswith("invalid literal for int()"):
        return f"{text.rsplit(': ', 1)[-1]} is not an integer"
    if text.startswith("could not convert string to float"):
        return f"{text.rsplit(': ', 1)[-1]} is not a number"
    return text


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "is not a port (0-65535)"


def _backlog(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "is not a backlog (1-65535)"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 and value == value and value != float("inf") else "must be a finite number >= 0"


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("an empty value is not allowed")
    return text.strip()


def _integrity(text: str) -> str:
    if text.strip() and not valid_integrity(text.strip()):
        raise ValueError("expected a Subresource Integrity value: sha256-, sha384- or sha512- and the base64 digest")
    return text.strip()


def _path(text: str) -> str:
    text = text.strip()
    if not text.startswith("/") or any(c.isspace() for c in text) or "?" in text or "#" in text:
        raise ValueError(f"{text!r} is not a URL path (it must start with '/', without spaces, query or fragment)")
    return text


def _origins(text: str) -> tuple[str, ...]:
    origins = []
    for item in text.split(","):
        origin = item.strip().rstrip("/").lower()
        if not origin:
            continue
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"{item.strip()!r} is not an origin (expected scheme://host[:port], or *)")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def _networks(text: str) -> tuple[str, ...]:
    """Parse ``--trusted-proxies``: comma-separated addresses and CIDR networks."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            # strict=False: "10.1.2.3/8" means the network 10.0.0.0/8.
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (expected e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)") from None
        networks.append(str(network))
    return tuple(dict.fromkeys(networks))


def _metrics_token(text: str) -> str:
    token = text.strip()
    if len(token) < MIN_METRICS_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"the metrics token must be at least {MIN_METRICS_TOKEN_LENGTH} printable characters without spaces")
    return token


def _channels(text: str) -> tuple[Any, ...]:
    """Parse ``--channels``: a JSON list, or ``@PATH`` of a file holding one."""
    # Imported here: the WAMP core is not needed to parse the other settings.
    from telegraphy.wamp.channels import parse_channels

    text = text.strip()
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the channels file {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_channels(text)


def _whole(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not a log level (one of {', '.join(LOG_LEVELS)})")
    return level


def _flag(parser: argparse.ArgumentParser, value: bool | None, env: Mapping[str, str], name: str, flag: str, default: bool) -> bool:
    """Return a boolean flag's value: the flag if given, else its environment variable, else ``default``."""
    return value if value is not None else _env_bool(parser, env, name, flag, default)


def _env_bool(parser: argparse.ArgumentParser, env: Mapping[str, str], name: str, flag: str, default: bool) -> bool:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        return parse_bool(text)
    except ValueError as exc:
        parser.error(f"{exc} (from {name}; set with {flag} or {name})")
    raise AssertionError("unreachable")  # parser.error exits


def _resolve_secret(parser: argparse.ArgumentParser, args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """Return the secret: ``--secret``, ``--secret-file``, then their env vars."""
    if args.secret is not None and args.secret_file is not None:
        parser.error("give either --secret or --secret-file, not both")
    if args.secret is not None:
        return _non_empty_secret(parser, args.secret, "--secret")
    if args.secret_file is not None:
        return _read_secret(parser, args.secret_file, "--secret-file")
    env_secret = env.get("TELEGRAPHY_SECRET") or None
    env_file = env.get("TELEGRAPHY_SECRET_FILE") or None
    if env_secret is not None and env_file is not None:
        parser.error("set either TELEGRAPHY_SECRET or TELEGRAPHY_SECRET_FILE, not both")
    if env_secret is not None:
        return _non_empty_secret(parser, env_secret, "TELEGRAPHY_SECRET")
    if env_file is not None:
        return _read_secret(parser, env_file, "TELEGRAPHY_SECRET_FILE")
    return None


def _non_empty_secret(parser: argparse.ArgumentParser, secret: str, source: str) -> str:
    secret = secret.strip()
    if not secret:
        parser.error(f"the secret from {source} is empty")
    return secret


def _read_secret(parser: argparse.ArgumentParser, path: str, source: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"cannot read the secret file {path!r} (from {source}): {getattr(exc, 'strerror', None) or exc}")
    if not secret:
        parser.error(f"the secret file {path!r} (from {source}) is empty")
    return secret


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Return the argument parser; defaults come from ``environ`` when set there.

    ``--help`` lists every flag with its environment variable and default.
    """
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="telegraphy-gateway",
        description=(
            "Telegraphy gateway: WAMP v2 over WebSocket, the HTTP publish API, /health and /metrics. "
            "Every flag has an environment variable; a flag wins over the environment, "
            "the environment over the default. Sizes take K or M suffixes (KiB, MiB)."
        ),
        epilog="Booleans in the environment: 1/true/yes/on or 0/false/no/off.",
    )

    def env_default(names: Sequence[str], default: Any) -> Any:
        # The first name set wins: ("TELEGRAPHY_PORT", "PORT") prefers ours
        # over the platform's PORT.
        for name in names:
            value = env.get(name)
            if value is not None and value.strip():
                return _EnvValue(value, name)
        return default

    def add(
        flag: str,
        env_names: Sequence[str],
        default: Any,
        shown: str,
        parse: Callable[[str], Any],
        help_text: str,
        check: Callable[[Any], str | None] | None = None,
        metavar: str | None = None,
    ) -> None:
        parser.add_argument(
            flag,
            default=env_default(env_names, default),
            type=_converter(flag, env_names, parse, check),
            metavar=metavar,
            help=f"{help_text} (env: {' or '.join(env_names)}; default: {shown})",
        )

    add("--host", ["TELEGRAPHY_HOST"], "127.0.0.1", "127.0.0.1", _non_empty, "interface to listen on", metavar="HOST")
    add(
        "--port",
        ["TELEGRAPHY_PORT", "PORT"],
        9000,
        "9000",
        int,
        "TCP port; 0 picks a free port; TELEGRAPHY_PORT wins over PORT",
        _port,
        metavar="PORT",
    )
    add(
        "--backlog",
        ["TELEGRAPHY_BACKLOG"],
        DEFAULT_BACKLOG,
        str(DEFAULT_BACKLOG),
        int,
        "listen backlog: connections the kernel queues before the gateway accepts them; "
        "the kernel caps it (Linux: net.core.somaxconn, a warning says so at start)",
        _backlog,
        metavar="N",
    )
    parser.add_argument(
        "--secret",
        default=None,
        metavar="SECRET",
        help="shared HS256 secret for publish and connect tokens, at least 32 bytes; prefer the env var or "
        "--secret-file, flags show in the process list (env: TELEGRAPHY_SECRET; default: none)",
    )
    parser.add_argument(
        "--secret-file",
        default=None,
        metavar="PATH",
        help="read the secret from this file, surrounding whitespace stripped (env: TELEGRAPHY_SECRET_FILE; default: none)",
    )
    parser.add_argument(
        "--insecure-dev",
        action="store_const",
        const=True,
        default=None,
        help="allow starting without a secret (a random per-process secret is used) or with one shorter "
        "than 32 bytes, with a warning logged; local development only (env: TELEGRAPHY_INSECURE_DEV; default: off)",
    )
    add("--realm", ["TELEGRAPHY_REALM"], "telegraphy", "telegraphy", _non_empty, "the WAMP realm served", metavar="REALM")
    add("--ws-path", ["TELEGRAPHY_WS_PATH"], "/ws", "/ws", _path, "URL path of the WAMP WebSocket endpoint", metavar="PATH")
    add(
        "--allowed-origins",
        ["TELEGRAPHY_ALLOWED_ORIGINS"],
        (),
        '"" (same origin only)',
        _origins,
        "comma-separated browser origins allowed to open a WebSocket, like https://example.com, or *; "
        "same-origin and no-Origin clients are always allowed",
        metavar="ORIGINS",
    )
    add(
        "--trusted-proxies",
        ["TELEGRAPHY_TRUSTED_PROXIES"],
        (),
        '"" (none: forwarded headers are ignored)',
        _networks,
        "comma-separated addresses and networks (CIDR) of reverse proxies whose X-Forwarded-For, X-Real-IP "
        "and X-Forwarded-Proto headers are believed; from any other peer they are ignored",
        metavar="ADDRESSES",
    )
    add(
        "--metrics-token",
        ["TELEGRAPHY_METRICS_TOKEN"],
        None,
        "none (only loopback clients not behind a proxy may read /metrics)",
        _metrics_token,
        f"bearer token GET /metrics requires (at least {MIN_METRICS_TOKEN_LENGTH} characters); "
        "prefer the env var, flags show in the process list",
        metavar="TOKEN",
    )
    parser.add_argument(
        "--allow-anonymous",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let WAMP clients join without a connect token (env: TELEGRAPHY_ALLOW_ANONYMOUS; default: true)",
    )
    add(
        "--max-message-size",
        ["TELEGRAPHY_MAX_MESSAGE_SIZE"],
        1 * MIB,
        "1M",
        parse_size,
        "largest incoming WebSocket message, bytes",
        _positive,
        metavar="SIZE",
    )
    add(
        "--max-body-size",
        ["TELEGRAPHY_MAX_BODY_SIZE"],
        1 * MIB,
        "1M",
        parse_size,
        "largest HTTP /publish request body, bytes",
        _positive,
        metavar="SIZE",
    )
    add("--max-batch", ["TELEGRAPHY_MAX_BATCH"], 1000, "1000", int, "most events in one /publish request", _positive, metavar="N")
    add(
        "--jwt-leeway",
        ["TELEGRAPHY_JWT_LEEWAY"],
        5.0,
        "5",
        float,
        "clock skew tolerated when checking token expiry, seconds",
        _non_negative,
        metavar="SECONDS",
    )
    add(
        "--outgoing-buffer",
        ["TELEGRAPHY_OUTGOING_BUFFER"],
        4 * MIB,
        "4M",
        parse_size,
        "unsent bytes per connection before a slow consumer is disconnected",
        _positive,
        metavar="SIZE",
    )
    add(
        "--channels",
        ["TELEGRAPHY_CHANNELS"],
        None,
        "none (anyone subscribes; clients publish nowhere; only backend sessions register; signed-in sessions call)",
        _channels,
        "the client channels and procedures as a JSON list, or @PATH of a JSON file: "
        '[{"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"}, '
        '{"procedure": "app.search.", "match": "prefix", "register": null, "call": "public"}, …]; '
        "publishing outside them is refused",
        metavar="JSON_OR_@FILE",
    )
    add(
        "--max-web-topics",
        ["TELEGRAPHY_MAX_WEB_TOPICS"],
        10_000,
        "10000",
        int,
        "most topics of web-app events remembered as never client-publishable; beyond, siblings fold into one prefix",
        _positive,
        metavar="N",
    )
    add(
        "--max-subscriptions",
        ["TELEGRAPHY_MAX_SUBSCRIPTIONS"],
        1000,
        "1000",
        int,
        "most subscriptions one session may hold (telegraphy.error.limit_exceeded beyond); 0: no limit",
        _whole,
        metavar="N",
    )
    add(
        "--max-uri-length",
        ["TELEGRAPHY_MAX_URI_LENGTH"],
        512,
        "512",
        int,
        "longest topic or procedure URI a client may subscribe, publish, register or call (wamp.error.invalid_uri beyond); 0: no limit",
        _whole,
        metavar="CHARACTERS",
    )
    add(
        "--max-filter-size",
        ["TELEGRAPHY_MAX_FILTER_SIZE"],
        16 * KIB,
        "16K",
        parse_size,
        "largest filter + exclude of one subscription, in bytes of JSON (wamp.error.invalid_argument beyond); 0: no limit",
        None,
        metavar="SIZE",
    )
    add(
        "--max-total-subscriptions",
        ["TELEGRAPHY_MAX_TOTAL_SUBSCRIPTIONS"],
        100_000,
        "100000",
        int,
        "most distinct subscriptions the gateway process holds for all sessions (telegraphy.error.limit_exceeded beyond); 0: no limit",
        _whole,
        metavar="N",
    )
    add(
        "--max-filters-total",
        ["TELEGRAPHY_MAX_FILTERS_TOTAL"],
        8 * MIB,
        "8M",
        parse_size,
        "most bytes of filters the gateway process's subscriptions hold together (telegraphy.error.limit_exceeded beyond); 0: no limit",
        None,
        metavar="SIZE",
    )
    add(
        "--publish-rate",
        ["TELEGRAPHY_PUBLISH_RATE"],
        50.0,
        "50",
        float,
        "client PUBLISHes per second per session, on average (token bucket); 0: no limit",
        _non_negative,
        metavar="PER_SECOND",
    )
    add(
        "--publish-burst",
        ["TELEGRAPHY_PUBLISH_BURST"],
        100,
        "100",
        int,
        "client PUBLISHes a session may send at once; 10 times as many refused within 10 s close it",
        _positive,
        metavar="N",
    )
    add(
        "--connection-rate",
        ["TELEGRAPHY_CONNECTION_RATE"],
        20.0,
        "20",
        float,
        "new WebSocket and SockJS connections per second per client IP (HTTP 429 beyond); 0: no limit",
        _non_negative,
        metavar="PER_SECOND",
    )
    add(
        "--connection-burst",
        ["TELEGRAPHY_CONNECTION_BURST"],
        50,
        "50",
        int,
        "new connections one client IP may open at once",
        _positive,
        metavar="N",
    )
    add(
        "--ping-interval",
        ["TELEGRAPHY_PING_INTERVAL"],
        25.0,
        "25",
        float,
        "seconds between WebSocket pings; 0 disables them",
        _non_negative,
        metavar="SECONDS",
    )
    add(
        "--store",
        ["TELEGRAPHY_STORE"],
        DEFAULT_STORE,
        DEFAULT_STORE,
        _non_empty,
        "where sessions, subscriptions and event history persist: sqlite:///PATH, memory://, redis://HOST:PORT/DB, "
        "mongodb://HOST/DB, or none (no persistence: no offsets, no resume)",
        metavar="URL",
    )
    add(
        "--bus",
        ["TELEGRAPHY_BUS"],
        "local://",
        "local://",
        _non_empty,
        "how several gateway processes act as one: local:// (a single process) or redis://HOST:PORT/DB "
        "(Redis pub/sub; add ?channel=NAME to keep deployments apart); needs a shared store",
        metavar="URL",
    )
    add(
        "--connect-token-max-ttl",
        ["TELEGRAPHY_CONNECT_TOKEN_MAX_TTL"],
        3600.0,
        "3600",
        float,
        "longest connect token accepted (exp - iat), seconds; longer ones are refused, "
        "and logouts are remembered this long",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--session-ttl",
        ["TELEGRAPHY_SESSION_TTL"],
        3600.0,
        "3600",
        float,
        "seconds a disconnected session can still be resumed",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--anonymous-session-ttl",
        ["TELEGRAPHY_ANONYMOUS_SESSION_TTL"],
        300.0,
        "300",
        float,
        "seconds a disconnected anonymous session can still be resumed (stored only once it subscribed)",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--max-anonymous-sessions",
        ["TELEGRAPHY_MAX_ANONYMOUS_SESSIONS"],
        10_000,
        "10000",
        int,
        "most anonymous sessions one gateway process stores for resume (beyond, new ones are not resumable); 0: no limit",
        _whole,
        metavar="N",
    )
    add(
        "--history-max-events",
        ["TELEGRAPHY_HISTORY_MAX_EVENTS"],
        10_000,
        "10000",
        int,
        "events kept per topic for clients that resume",
        _positive,
        metavar="N",
    )
    add(
        "--history-max-age",
        ["TELEGRAPHY_HISTORY_MAX_AGE"],
        86_400.0,
        "86400",
        float,
        "seconds events are kept for clients that resume",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--dedup-window-events",
        ["TELEGRAPHY_DEDUP_WINDOW_EVENTS"],
        100_000,
        "100000",
        int,
        "event ids (meta.id) remembered, shared by every node on the store: a publish retried with an id among them is delivered once",
        _positive,
        metavar="N",
    )
    add(
        "--dedup-window-age",
        ["TELEGRAPHY_DEDUP_WINDOW_AGE"],
        86_400.0,
        "86400",
        float,
        "seconds an event id (meta.id) is remembered for deduplication",
        _positive,
        metavar="SECONDS",
    )
    parser.add_argument(
        "--sockjs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve WAMP over SockJS for clients that cannot open a WebSocket (env: TELEGRAPHY_SOCKJS; default: true)",
    )
    add("--sockjs-path", ["TELEGRAPHY_SOCKJS_PATH"], "/sockjs", "/sockjs", _path, "URL path of the SockJS endpoint", metavar="PATH")
    add(
        "--sockjs-heartbeat",
        ["TELEGRAPHY_SOCKJS_HEARTBEAT"],
        25.0,
        "25",
        float,
        "seconds between SockJS heartbeat frames",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--sockjs-disconnect-delay",
        ["TELEGRAPHY_SOCKJS_DISCONNECT_DELAY"],
        5.0,
        "5",
        float,
        "seconds a SockJS session survives without a receiving connection",
        _positive,
        metavar="SECONDS",
    )
    add(
        "--sockjs-response-limit",
        ["TELEGRAPHY_SOCKJS_RESPONSE_LIMIT"],
        128 * KIB,
        "128K",
        parse_size,
        "bytes after which a SockJS streaming response ends and the client opens a new one",
        _positive,
        metavar="SIZE",
    )
    parser.add_argument(
        "--sockjs-cookie",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="set the JSESSIONID cookie on SockJS responses, for load balancers with cookie stickiness "
        "(env: TELEGRAPHY_SOCKJS_COOKIE; default: false)",
    )
    add(
        "--sockjs-client-url",
        ["TELEGRAPHY_SOCKJS_CLIENT_URL"],
        "",
        "the bundled copy, served at <sockjs-path>/sockjs.min.js",
        str.strip,
        "the sockjs-client script the SockJS iframe page loads (a CDN, say); needs --sockjs-client-integrity",
        metavar="URL",
    )
    add(
        "--sockjs-client-integrity",
        ["TELEGRAPHY_SOCKJS_CLIENT_INTEGRITY"],
        "",
        "none",
        _integrity,
        "Subresource Integrity value (sha256-/sha384-/sha512-BASE64) of the --sockjs-client-url script",
        metavar="HASH",
    )
    parser.add_argument(
        "--sockjs-bind-peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse requests for a SockJS session from any address but the one that opened it "
        "(env: TELEGRAPHY_SOCKJS_BIND_PEER; default: true)",
    )
    add(
        "--sockjs-auth-id-length",
        ["TELEGRAPHY_SOCKJS_AUTH_ID_LENGTH"],
        16,
        "16",
        int,
        "shortest SockJS session id that may carry an authenticated or resumed WAMP session (shorter: anonymous only; 0: any)",
        _non_negative,
        metavar="N",
    )
    parser.add_argument(
        "--sockjs-hixie76",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also accept legacy draft-76 (Hixie-76) WebSockets, unmasked, on SockJS's per-session websocket "
        "transport only (env: TELEGRAPHY_SOCKJS_HIXIE76; default: true)",
    )
    parser.add_argument(
        "--sockjs-test-endpoints",
        action="store_const",
        const=True,
        default=None,
        help="also mount the services of the official SockJS protocol test suite (/echo, /close, "
        "/disabled_websocket_echo, /cookie_needed_echo); for conformance runs only "
        "(env: TELEGRAPHY_SOCKJS_TEST_ENDPOINTS; default: off)",
    )
    add(
        "--log-level",
        ["TELEGRAPHY_LOG_LEVEL"],
        "info",
        "info",
        _log_level,
        f"logging level on stderr: {', '.join(LOG_LEVELS)}",
        metavar="LEVEL",
    )
    return parser
