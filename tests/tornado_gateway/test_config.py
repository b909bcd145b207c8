"""Gateway settings: flags, environment variables, precedence, errors."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from gateway_helpers import run_gateway

from telegraphy.tornado_gateway.config import MIB, Config, ConfigError, build_parser, parse_bool, parse_size

SECRET = "s3cr3t-" + "x" * 40


def parse(argv: list[str], env: dict[str, str] | None = None) -> Config:
    return Config.from_args(argv, env or {})


def parse_error(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str] | None = None) -> str:
    """Parse settings that must be refused; return argparse's message."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv, env)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults() -> None:
    """With no flags and an empty environment every setting has its documented default."""
    config = parse([])
    assert config == Config()
    assert (config.host, config.port, config.secret, config.insecure_dev) == ("127.0.0.1", 9000, None, False)
    assert (config.realm, config.ws_path, config.allowed_origins, config.allow_anonymous) == ("telegraphy", "/ws", (), True)
    assert (config.max_message_size, config.max_body_size, config.max_batch) == (MIB, MIB, 1000)
    assert (config.jwt_leeway, config.outgoing_buffer, config.ping_interval, config.log_level) == (5.0, 4 * MIB, 25.0, "info")


def test_every_flag() -> None:
    """Each flag sets its setting."""
    config = parse(
        [
            "--host", "0.0.0.0", "--port", "0", "--secret", SECRET, "--insecure-dev",
            "--realm", "shop", "--ws-path", "/wamp", "--allowed-origins", "https://a.example, http://b.example:8000",
            "--no-allow-anonymous", "--max-message-size", "64K", "--max-body-size", "2M", "--max-batch", "10",
            "--jwt-leeway", "1.5", "--outgoing-buffer", "8M", "--ping-interval", "0", "--log-level", "DEBUG",
        ]
    )  # fmt: skip
    assert config == Config(
        host="0.0.0.0",
        port=0,
        secret=SECRET,
        insecure_dev=True,
        realm="shop",
        ws_path="/wamp",
        allowed_origins=("https://a.example", "http://b.example:8000"),
        allow_anonymous=False,
        max_message_size=64 * 1024,
        max_body_size=2 * MIB,
        max_batch=10,
        jwt_leeway=1.5,
        outgoing_buffer=8 * MIB,
        ping_interval=0.0,
        log_level="debug",
    )


def test_every_env_var() -> None:
    """Each environment variable sets its setting."""
    env = {
        "TELEGRAPHY_HOST": "::1",
        "TELEGRAPHY_PORT": "8123",
        "TELEGRAPHY_SECRET": SECRET,
        "TELEGRAPHY_INSECURE_DEV": "yes",
        "TELEGRAPHY_REALM": "shop",
        "TELEGRAPHY_WS_PATH": "/wamp",
        "TELEGRAPHY_ALLOWED_ORIGINS": "*",
        "TELEGRAPHY_ALLOW_ANONYMOUS": "off",
        "TELEGRAPHY_MAX_MESSAGE_SIZE": "2048",
        "TELEGRAPHY_MAX_BODY_SIZE": "512k",
        "TELEGRAPHY_MAX_BATCH": "7",
        "TELEGRAPHY_JWT_LEEWAY": "0",
        "TELEGRAPHY_OUTGOING_BUFFER": "1MiB",
        "TELEGRAPHY_PING_INTERVAL": "2.5",
        "TELEGRAPHY_LOG_LEVEL": "warning",
    }
    config = parse([], env)
    assert config == Config(
        host="::1",
        port=8123,
        secret=SECRET,
        insecure_dev=True,
        realm="shop",
        ws_path="/wamp",
        allowed_origins=("*",),
        allow_anonymous=False,
        max_message_size=2048,
        max_body_size=512 * 1024,
        max_batch=7,
        jwt_leeway=0.0,
        outgoing_buffer=MIB,
        ping_interval=2.5,
        log_level="warning",
    )


def test_flag_wins_over_env() -> None:
    """A flag overrides the environment variable of the same setting."""
    env = {"TELEGRAPHY_PORT": "8123", "TELEGRAPHY_REALM": "env", "TELEGRAPHY_ALLOW_ANONYMOUS": "false", "TELEGRAPHY_SECRET": "from-env"}
    config = parse(["--port", "8124", "--realm", "flag", "--allow-anonymous", "--secret", "from-flag"], env)
    assert (config.port, config.realm, config.allow_anonymous, config.secret) == (8124, "flag", True, "from-flag")


def test_flag_wins_over_invalid_env() -> None:
    """An invalid environment value is ignored when the flag is given."""
    assert parse(["--port", "8124"], {"TELEGRAPHY_PORT": "not-a-port"}).port == 8124


def test_port_env_precedence() -> None:
    """PORT is honoured, and TELEGRAPHY_PORT wins over it."""
    assert parse([], {"PORT": "5000"}).port == 5000
    assert parse([], {"PORT": "5000", "TELEGRAPHY_PORT": "6000"}).port == 6000
    assert parse(["--port", "0"], {"PORT": "5000"}).port == 0


def test_empty_env_values_mean_unset() -> None:
    """An empty environment variable falls back to the default."""
    config = parse([], {"TELEGRAPHY_PORT": "", "TELEGRAPHY_SECRET": "", "TELEGRAPHY_INSECURE_DEV": " "})
    assert (config.port, config.secret, config.insecure_dev) == (9000, None, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1024", 1024), ("1K", 1024), ("512k", 512 * 1024), ("4M", 4 * MIB), ("2MiB", 2 * MIB), ("1g", 1024 * MIB), (" 3 M ", 3 * MIB)],
)
def test_parse_size(text: str, expected: int) -> None:
    """Sizes accept plain bytes and K/M/G suffixes in binary units."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.5M", "12X", "M", "1 MB"])
def test_parse_size_refuses(text: str) -> None:
    """A size that is not a whole number with an optional unit is refused."""
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_parse_bool() -> None:
    """Booleans accept the usual spellings and refuse anything else."""
    assert all(parse_bool(t) for t in ["1", "true", "YES", "On"])
    assert not any(parse_bool(t) for t in ["0", "false", "No", "OFF"])
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_bool("maybe")


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--port", "http"], {}, ["--port", "'http' is not an integer"]),
        (["--port", "70000"], {}, ["--port", "not a port", "TELEGRAPHY_PORT"]),
        ([], {"PORT": "abc"}, ["--port", "from PORT"]),
        ([], {"TELEGRAPHY_MAX_BODY_SIZE": "lots"}, ["--max-body-size", "from TELEGRAPHY_MAX_BODY_SIZE", "not a size"]),
        (["--max-message-size", "0"], {}, ["--max-message-size", "greater than 0", "TELEGRAPHY_MAX_MESSAGE_SIZE"]),
        (["--max-batch", "-3"], {}, ["--max-batch", "greater than 0"]),
        (["--jwt-leeway", "-1"], {}, ["--jwt-leeway", ">= 0"]),
        (["--ping-interval", "nan"], {}, ["--ping-interval", ">= 0"]),
        (["--ws-path", "ws"], {}, ["--ws-path", "not a URL path"]),
        (["--allowed-origins", "example.com"], {}, ["--allowed-origins", "'example.com' is not an origin"]),
        (["--allowed-origins", "https://a.example/path"], {}, ["is not an origin"]),
        (["--log-level", "loud"], {}, ["--log-level", "not a log level", "TELEGRAPHY_LOG_LEVEL"]),
        (["--host", ""], {}, ["--host", "empty"]),
        ([], {"TELEGRAPHY_INSECURE_DEV": "sure"}, ["'sure' is not a boolean", "TELEGRAPHY_INSECURE_DEV", "--insecure-dev"]),
        ([], {"TELEGRAPHY_ALLOW_ANONYMOUS": "2"}, ["TELEGRAPHY_ALLOW_ANONYMOUS", "--allow-anonymous"]),
        (["--secret", "a", "--secret-file", "b"], {}, ["either --secret or --secret-file"]),
        ([], {"TELEGRAPHY_SECRET": "a", "TELEGRAPHY_SECRET_FILE": "b"}, ["either TELEGRAPHY_SECRET or TELEGRAPHY_SECRET_FILE"]),
        (["--secret", "  "], {}, ["secret from --secret is empty"]),
        (["--bogus"], {}, ["unrecognized arguments: --bogus"]),
    ],
)
def test_invalid_values_exit_2_naming_flag_and_env(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], expected: list[str]
) -> None:
    """An invalid value exits with status 2 and a message naming where it came from."""
    message = parse_error(capsys, argv, env)
    for fragment in expected:
        assert fragment in message


def test_secret_file(tmp_path: Path) -> None:
    """--secret-file and TELEGRAPHY_SECRET_FILE read the secret, stripped."""
    path = tmp_path / "secret"
    path.write_text(f"\n  {SECRET}  \n", encoding="utf-8")
    assert parse(["--secret-file", str(path)]).secret == SECRET
    assert parse([], {"TELEGRAPHY_SECRET_FILE": str(path)}).secret == SECRET
    assert parse(["--secret", "flag"], {"TELEGRAPHY_SECRET_FILE": str(path)}).secret == "flag"


def test_secret_file_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A missing or empty secret file is refused with its path and source."""
    missing = tmp_path / "missing"
    message = parse_error(capsys, ["--secret-file", str(missing)])
    assert "cannot read the secret file" in message and str(missing) in message and "--secret-file" in message
    empty = tmp_path / "empty"
    empty.write_text(" \n", encoding="utf-8")
    message = parse_error(capsys, [], {"TELEGRAPHY_SECRET_FILE": str(empty)})
    assert "is empty" in message and "TELEGRAPHY_SECRET_FILE" in message


def test_allowed_origins_normalized() -> None:
    """Origins are split on commas, trimmed, lowercased and deduplicated."""
    config = parse(["--allowed-origins", " https://A.example/ ,,https://a.example, http://localhost:3000"])
    assert config.allowed_origins == ("https://a.example", "http://localhost:3000")


def test_repr_masks_secret() -> None:
    """Neither repr nor str of a config shows the secret."""
    config = parse(["--secret", SECRET])
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert "secret=***" in repr(config)
    assert "secret=None" in repr(parse([]))


def test_check_refuses_without_secret() -> None:
    """check() refuses a config with no secret, naming TELEGRAPHY_SECRET and --insecure-dev."""
    with pytest.raises(ConfigError) as info:
        parse([]).check()
    assert str(info.value) == (
        "no secret configured: set TELEGRAPHY_SECRET (or --secret / --secret-file), "
        "or pass --insecure-dev for local development"
    )


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--max-message-size", "8M"], "--max-message-size (8388608 bytes) is above --outgoing-buffer (4194304 bytes)"),
        (["--max-body-size", "5M"], "--max-body-size (5242880 bytes) is above --outgoing-buffer (4194304 bytes)"),
        (["--outgoing-buffer", "64K"], "--max-message-size (1048576 bytes) is above --outgoing-buffer (65536 bytes)"),
    ],
    ids=["message-size", "body-size", "small-buffer"],
)
def test_check_refuses_incoming_limits_above_the_outgoing_buffer(flags: list[str], named: str) -> None:
    """check() refuses --max-message-size or --max-body-size above --outgoing-buffer, naming both settings: one such message could never be sent."""
    with pytest.raises(ConfigError) as info:
        parse(["--secret", SECRET, *flags]).check()
    assert str(info.value).startswith(named), str(info.value)
    parse(["--secret", SECRET, *flags, "--outgoing-buffer", "8M", "--max-message-size", "8M", "--max-body-size", "8M"]).check()


def test_gateway_refuses_to_start_with_limits_above_the_outgoing_buffer() -> None:
    """The gateway exits 2 at start when --max-body-size is above --outgoing-buffer, naming both."""
    result = run_gateway("--port", "0", "--secret", SECRET, "--outgoing-buffer", "1M", "--max-body-size", "2M")
    assert result.returncode == 2, result.stderr
    assert "--max-body-size (2097152 bytes) is above --outgoing-buffer (1048576 bytes)" in result.stderr


def test_check_accepts_secret_or_insecure_dev() -> None:
    """check() passes with a secret, or without one under --insecure-dev."""
    parse(["--secret", SECRET]).check()
    parse(["--insecure-dev"]).check()
    parse([], {"TELEGRAPHY_INSECURE_DEV": "1"}).check()


def test_with_secret_generates_under_insecure_dev(caplog: pytest.LogCaptureFixture) -> None:
    """Under --insecure-dev a random secret is made up per call, with a loud warning."""
    config = parse(["--insecure-dev"])
    with caplog.at_level(logging.WARNING, logger="telegraphy.gateway"):
        first, second = config.with_secret(), config.with_secret()
    assert first.secret and second.secret and first.secret != second.secret
    assert len(first.secret) >= 32 and first.secret_generated
    assert "INSECURE DEVELOPMENT MODE" in caplog.text
    assert first.secret not in caplog.text


def test_with_secret_keeps_configured_secret(caplog: pytest.LogCaptureFixture) -> None:
    """A configured secret is kept; a short one is kept only under --insecure-dev, with a warning that does not show it."""
    config = parse(["--secret", SECRET])
    assert config.with_secret() is config
    with pytest.raises(ConfigError):
        parse(["--secret", "zq9-short"]).with_secret()
    with caplog.at_level(logging.WARNING, logger="telegraphy.gateway"):
        assert parse(["--secret", "zq9-short", "--insecure-dev"]).with_secret().secret == "zq9-short"
    assert "9 bytes long" in caplog.text and "zq9-short" not in caplog.text


def test_check_refuses_short_secret() -> None:
    """check() refuses a secret under 32 bytes, naming the setting and the minimum, unless --insecure-dev."""
    for argv, env in ((["--secret", "abc"], {}), ([], {"TELEGRAPHY_SECRET": "x" * 31})):
        with pytest.raises(ConfigError) as info:
            parse(argv, env).check()
        assert "TELEGRAPHY_SECRET" in str(info.value) and "at least 32" in str(info.value)
        assert "abc" not in str(info.value)
    parse(["--secret", "abc", "--insecure-dev"]).check()
    parse(["--secret", "x" * 32]).check()
    parse(["--secret", "é" * 16]).check()  # 32 bytes in UTF-8


def test_with_secret_refuses_without_secret() -> None:
    """with_secret() without a secret or --insecure-dev raises ConfigError."""
    with pytest.raises(ConfigError):
        parse([]).with_secret()


def test_config_is_frozen() -> None:
    """A config cannot be changed in place."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse([]).port = 1  # type: ignore[misc]


def test_help_lists_every_flag_with_env_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names every flag with its environment variable and default."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser({}).parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    pairs = [
        ("--host", "TELEGRAPHY_HOST", "127.0.0.1"),
        ("--port", "TELEGRAPHY_PORT or PORT", "9000"),
        ("--secret", "TELEGRAPHY_SECRET", "none"),
        ("--secret-file", "TELEGRAPHY_SECRET_FILE", "none"),
        ("--insecure-dev", "TELEGRAPHY_INSECURE_DEV", "off"),
        ("--realm", "TELEGRAPHY_REALM", "telegraphy"),
        ("--ws-path", "TELEGRAPHY_WS_PATH", "/ws"),
        ("--allowed-origins", "TELEGRAPHY_ALLOWED_ORIGINS", '""'),
        ("--allow-anonymous", "TELEGRAPHY_ALLOW_ANONYMOUS", "true"),
        ("--max-message-size", "TELEGRAPHY_MAX_MESSAGE_SIZE", "1M"),
        ("--max-body-size", "TELEGRAPHY_MAX_BODY_SIZE", "1M"),
        ("--max-batch", "TELEGRAPHY_MAX_BATCH", "1000"),
        ("--jwt-leeway", "TELEGRAPHY_JWT_LEEWAY", "5"),
        ("--connect-token-max-ttl", "TELEGRAPHY_CONNECT_TOKEN_MAX_TTL", "3600"),
        ("--outgoing-buffer", "TELEGRAPHY_OUTGOING_BUFFER", "4M"),
        ("--ping-interval", "TELEGRAPHY_PING_INTERVAL", "25"),
        ("--log-level", "TELEGRAPHY_LOG_LEVEL", "info"),
    ]
    for flag, env, default in pairs:
        assert flag in text
        assert f"(env: {env}; default: {default}" in text, flag
    assert "--no-allow-anonymous" in text


def test_connect_token_max_ttl_flag_and_env() -> None:
    """--connect-token-max-ttl defaults to 3600 s; the flag or TELEGRAPHY_CONNECT_TOKEN_MAX_TTL changes it; 0 is refused."""
    assert parse([]).connect_token_max_ttl == 3600.0
    assert parse(["--connect-token-max-ttl", "600"]).connect_token_max_ttl == 600.0
    assert parse([], {"TELEGRAPHY_CONNECT_TOKEN_MAX_TTL": "120"}).connect_token_max_ttl == 120.0
    with pytest.raises(SystemExit):
        parse(["--connect-token-max-ttl", "0"])


def test_sockjs_hixie76_flag_and_env() -> None:
    """--sockjs-hixie76 is on by default; the flag or TELEGRAPHY_SOCKJS_HIXIE76 turns it off, the flag winning."""
    assert parse([]).sockjs_hixie76 is True
    assert parse(["--no-sockjs-hixie76"]).sockjs_hixie76 is False
    assert parse([], {"TELEGRAPHY_SOCKJS_HIXIE76": "false"}).sockjs_hixie76 is False
    assert parse(["--sockjs-hixie76"], {"TELEGRAPHY_SOCKJS_HIXIE76": "false"}).sockjs_hixie76 is True


def test_max_web_topics_flag_env_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    """--max-web-topics (TELEGRAPHY_MAX_WEB_TOPICS) defaults to 10000, the flag wins, and 0 is refused naming the flag."""
    assert parse([]).max_web_topics == 10_000
    assert parse([], {"TELEGRAPHY_MAX_WEB_TOPICS": "50"}).max_web_topics == 50
    assert parse(["--max-web-topics", "7"], {"TELEGRAPHY_MAX_WEB_TOPICS": "50"}).max_web_topics == 7
    message = parse_error(capsys, ["--max-web-topics", "0"])
    assert "--max-web-topics" in message and "greater than 0" in message


def test_channels_may_declare_procedures() -> None:
    """--channels accepts procedure entries beside channels (the same declaration)."""
    config = parse(["--channels", '[{"topic": "chat.", "match": "prefix", "publish": "authenticated"}, {"procedure": "app.", "match": "prefix", "call": "public"}]'])
    assert config.channels is not None and len(config.channels) == 2


def test_resource_bounds_settings() -> None:
    """The subscription, filter, URI and anonymous-session bounds have safe defaults and are set by flag or environment."""
    config = parse([])
    assert (config.max_uri_length, config.max_filter_size, config.max_total_subscriptions, config.max_filters_total) == (
        512, 16 * 1024, 100_000, 8 * MIB,
    )  # fmt: skip
    assert (config.anonymous_session_ttl, config.max_anonymous_sessions, config.session_ttl) == (300.0, 10_000, 3600.0)
    config = parse(
        ["--max-uri-length", "128", "--max-filter-size", "4K", "--max-total-subscriptions", "10", "--anonymous-session-ttl", "60"],
        {"TELEGRAPHY_MAX_FILTERS_TOTAL": "1M", "TELEGRAPHY_MAX_ANONYMOUS_SESSIONS": "0"},
    )
    assert (config.max_uri_length, config.max_filter_size, config.max_total_subscriptions, config.max_filters_total) == (
        128, 4096, 10, MIB,
    )  # fmt: skip
    assert (config.anonymous_session_ttl, config.max_anonymous_sessions) == (60.0, 0)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-uri-length", "-1"], ["--max-uri-length", "TELEGRAPHY_MAX_URI_LENGTH"]),
        (["--max-filter-size", "big"], ["--max-filter-size", "not a size"]),
        (["--anonymous-session-ttl", "0"], ["--anonymous-session-ttl", "greater than 0"]),
        (["--max-anonymous-sessions", "x"], ["--max-anonymous-sessions", "not an integer"]),
    ],
)
def test_resource_bounds_settings_refuse_invalid_values(capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[str]) -> None:
    """An invalid bound exits with status 2 naming the flag."""
    message = parse_error(capsys, argv, {})
    for fragment in expected:
        assert fragment in message


def test_every_flag_is_documented() -> None:
    """Every flag of the gateway, and its TELEGRAPHY_* variable, appears in docs/configuration.md."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    flags = [option for action in build_parser({})._actions for option in action.option_strings if option.startswith("--") and option != "--help"]
    assert flags and [flag for flag in flags if f"`{flag}" not in docs] == []
    for flag in flags:
        if flag.startswith("--no-"):
            continue
        variable = "TELEGRAPHY_" + flag[2:].upper().replace("-", "_")
        assert variable in docs, variable
