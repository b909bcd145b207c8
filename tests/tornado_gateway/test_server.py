"""The gateway HTTP server's pure parts, without sockets: trusted proxies, framing checks, error responses, somaxconn."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from telegraphy.tornado_gateway.config import Config
from telegraphy.tornado_gateway.server import (
    TrustedProxies,
    error_response,
    framing_error,
    is_local_request,
    read_somaxconn,
)


def headers(**values: str) -> HTTPHeaders:
    """Build request headers from keyword arguments (underscores become dashes)."""
    result = HTTPHeaders()
    for name, value in values.items():
        result.add(name.replace("_", "-"), value)
    return result


PROXIES = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])


def test_untrusted_peer_headers_ignored() -> None:
    """From a peer that is no trusted proxy, X-Forwarded-For and X-Real-IP are ignored."""
    assert TrustedProxies().client_address("127.0.0.1", headers(X_Forwarded_For="1.2.3.4", X_Real_IP="5.6.7.8")) == "127.0.0.1"
    assert PROXIES.client_address("192.0.2.7", headers(X_Forwarded_For="1.2.3.4")) == "192.0.2.7"


def test_rightmost_untrusted_address_is_the_client() -> None:
    """From a trusted proxy, the right-most X-Forwarded-For address that is not a trusted proxy is the client; what the client wrote left of it is ignored."""
    assert PROXIES.client_address("127.0.0.1", headers(X_Forwarded_For="6.6.6.6, 203.0.113.9, 10.1.2.3")) == "203.0.113.9"
    assert PROXIES.client_address("127.0.0.1", headers(X_Forwarded_For="203.0.113.9")) == "203.0.113.9"
    # Two X-Forwarded-For headers count as one list.
    two = headers(X_Forwarded_For="6.6.6.6")
    two.add("X-Forwarded-For", "203.0.113.9")
    assert PROXIES.client_address("127.0.0.1", two) == "203.0.113.9"


def test_all_trusted_chain_gives_leftmost() -> None:
    """When every forwarded address is a trusted proxy, the left-most one is the client."""
    assert PROXIES.client_address("127.0.0.1", headers(X_Forwarded_For="10.0.0.1, 10.0.0.2")) == "10.0.0.1"


def test_garbage_in_forwarded_for_stops_the_walk() -> None:
    """A forwarded entry that is not an IP ends the walk at the last address a trusted hop gave."""
    assert PROXIES.client_address("127.0.0.1", headers(X_Forwarded_For="203.0.113.9, unknown")) == "127.0.0.1"
    assert PROXIES.client_address("127.0.0.1", headers(X_Forwarded_For="nonsense, 10.0.0.3")) == "10.0.0.3"


def test_real_ip_from_trusted_proxy() -> None:
    """Without X-Forwarded-For, a trusted proxy's valid X-Real-IP is the client; an invalid one is ignored."""
    assert PROXIES.client_address("::1", headers(X_Real_IP="203.0.113.9")) == "203.0.113.9"
    assert PROXIES.client_address("::1", headers(X_Real_IP="not-an-ip")) == "::1"
    assert PROXIES.client_address("::1", headers()) == "::1"


def test_ipv4_mapped_peer_matches_ipv4_network() -> None:
    """A dual-stack peer ::ffff:10.0.0.5 is the trusted IPv4 proxy 10.0.0.5."""
    assert PROXIES.trusts("::ffff:10.0.0.5")
    assert PROXIES.client_address("::ffff:10.0.0.5", headers(X_Forwarded_For="::ffff:203.0.113.9")) == "203.0.113.9"


def test_scheme_only_from_trusted_proxy() -> None:
    """X-Forwarded-Proto sets the scheme only from a trusted proxy, and only to http or https (its last value)."""
    assert PROXIES.scheme("10.0.0.1", headers(X_Forwarded_Proto="http, https"), "http") == "https"
    assert PROXIES.scheme("10.0.0.1", headers(X_Forwarded_Proto="gopher"), "http") == "http"
    assert PROXIES.scheme("192.0.2.1", headers(X_Forwarded_Proto="https"), "http") == "http"


def _request(peer: str, **values: str) -> HTTPServerRequest:
    connection = SimpleNamespace(context=SimpleNamespace(address=(peer, 40000)))
    return HTTPServerRequest(
        connection=connection,  # type: ignore[arg-type]
        start_line=RequestStartLine("GET", "/metrics", "HTTP/1.1"),
        headers=headers(Host="127.0.0.1", **values),
    )


def test_local_request() -> None:
    """Only a loopback peer that is no trusted proxy and sent no forwarding header is local."""
    assert is_local_request(_request("127.0.0.1"), TrustedProxies())
    assert is_local_request(_request("::1"), TrustedProxies())
    assert not is_local_request(_request("192.0.2.1"), TrustedProxies())
    assert not is_local_request(_request("127.0.0.1", X_Forwarded_For="127.0.0.1"), TrustedProxies())
    assert not is_local_request(_request("127.0.0.1", Forwarded="for=1.2.3.4"), TrustedProxies())
    assert not is_local_request(_request("127.0.0.1"), TrustedProxies(["127.0.0.0/8"]))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"Content_Length": "3", "Transfer_Encoding": "chunked"}, 400),
        ({"Content_Length": "3, 4"}, 400),
        ({"Content_Length": "-3"}, 400),
        ({"Content_Length": "0x10"}, 400),
        ({"Content_Length": "2000"}, 413),
        ({"Transfer_Encoding": "gzip"}, 501),
        ({"Content_Length": "3, 3"}, None),
        ({"Content_Length": "1000"}, None),
        ({"Transfer_Encoding": "Chunked"}, None),
        ({}, None),
    ],
)
def test_framing_error(values: dict[str, str], expected: int | None) -> None:
    """Conflicting, malformed or oversized framing headers are refused with 400, 413 or 501; sound ones pass."""
    problem = framing_error(headers(**values), 1000)
    assert (problem[0] if problem else None) == expected


def test_error_response_is_json_and_closes() -> None:
    """An error response carries the JSON error shape, its length and Connection: close."""
    response = error_response(431, "headers_too_large", "too big")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Connection: close" in head and f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": "headers_too_large", "detail": "too big"}


def test_read_somaxconn(tmp_path: Path) -> None:
    """somaxconn is read from its file; a missing or garbled file gives None."""
    path = tmp_path / "somaxconn"
    path.write_text("4096\n")
    assert read_somaxconn(str(path)) == 4096
    path.write_text("x")
    assert read_somaxconn(str(path)) is None
    assert read_somaxconn(str(tmp_path / "missing")) is None


def test_new_settings_flags_and_env() -> None:
    """--trusted-proxies, --metrics-token and --backlog parse from flags and env; defaults are empty, none and 4096."""
    assert (Config().trusted_proxies, Config().metrics_token, Config().backlog) == ((), None, 4096)
    config = Config.from_args(["--trusted-proxies", "10.1.2.3/8, 127.0.0.1,::1", "--backlog", "1000"], {"TELEGRAPHY_METRICS_TOKEN": "t" * 16})
    assert config.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "::1/128")
    assert (config.metrics_token, config.backlog) == ("t" * 16, 1000)
    assert "t" * 16 not in repr(config)
    env = {"TELEGRAPHY_TRUSTED_PROXIES": "192.0.2.0/24", "TELEGRAPHY_BACKLOG": "64"}
    assert (Config.from_args([], env).trusted_proxies, Config.from_args([], env).backlog) == (("192.0.2.0/24",), 64)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trusted-proxies", "proxy.example"], "--trusted-proxies"),
        (["--metrics-token", "short"], "--metrics-token"),
        (["--backlog", "0"], "--backlog"),
        (["--backlog", "70000"], "--backlog"),
    ],
)
def test_new_settings_refuse_bad_values(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Bad proxy addresses, short metrics tokens and out-of-range backlogs exit 2 naming the flag."""
    with pytest.raises(SystemExit) as info:
        Config.from_args(argv, {})
    assert info.value.code == 2
    assert message in capsys.readouterr().err
