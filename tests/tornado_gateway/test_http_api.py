"""The HTTP side of a real gateway process: /publish, /health, /metrics, lifecycle."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jwt
import pytest
import tornado.testing
import tornado.web
from gateway_helpers import GatewayProcess, free_port, run_gateway, start_gateway

from telegraphy.tokens import mint_connect_token, mint_publish_token
from telegraphy.tornado_gateway.app import make_app
from telegraphy.tornado_gateway.config import Config
from telegraphy.tornado_gateway.metrics import Metrics

EVENT = {"name": "shop.Order", "meta": {"event_type": "update"}, "data": {"pk": 7, "status": "paid"}}


class Response:
    """What a client saw: status, headers, raw body, and the body as JSON when it is."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> Any:
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


def request(
    gateway: GatewayProcess,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> Response:
    """Send one request (on ``connection`` if given, else a fresh one)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        return Response(conn.getresponse())
    finally:
        if connection is None:
            conn.close()


def publish(
    gateway: GatewayProcess,
    body: Any,
    token: str | None = "",
    headers: Mapping[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> Response:
    """POST ``body`` (JSON-encoded unless bytes/str) to /publish with a valid token by default."""
    all_headers = {"Content-Type": "application/json"}
    if token == "":
        token = gateway.publish_token()
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return request(gateway, "POST", "/publish", raw, all_headers, connection)


def metrics(gateway: GatewayProcess) -> dict[str, float]:
    """Scrape /metrics into {sample name with labels: value}."""
    response = request(gateway, "GET", "/metrics")
    assert response.status == 200
    samples = {}
    for line in response.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def assert_error(response: Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """Check the JSON error shape; return the body."""
    assert response.status == status, (response.status, response.body)
    body = response.json()
    assert body["error"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], body
    assert "Traceback" not in response.body.decode()
    return body


@pytest.fixture(scope="module")
def shared() -> Iterator[GatewayProcess]:
    """One gateway for the tests that do not care about its counters."""
    gateway = start_gateway("--max-batch", "5", "--max-body-size", "64K")
    yield gateway
    gateway.stop()
    # Bad requests are the peer's problem: none may cause an error on our side.
    assert "Traceback" not in gateway.stderr() and "Uncaught exception" not in gateway.stderr(), gateway.stderr()


@pytest.fixture
def fresh(gateway_process: Any) -> GatewayProcess:
    """A gateway of its own, for tests that read its counters."""
    return gateway_process("--max-batch", "5", "--max-body-size", "64K")


# --- authentication -------------------------------------------------------


def _forged_tokens(secret: str) -> dict[str, str]:
    now = int(time.time())
    valid = mint_publish_token(secret)
    header, payload, signature = valid.split(".")
    tampered_payload = jwt.utils.base64url_encode(json.dumps({"aud": "telegraphy:publish", "exp": now + 3600, "admin": True}).encode()).decode()
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    return {
        "expired": mint_publish_token(secret, now=now - 3600),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}",
        "alg none": f"{none_header}.{payload}.",
        "wrong key": mint_publish_token("another-secret-" + "y" * 32),
        "connect token": mint_connect_token(secret, "alice"),
        "no exp": jwt.encode({"aud": "telegraphy:publish"}, secret, algorithm="HS256"),
        "no aud": jwt.encode({"exp": now + 60}, secret, algorithm="HS256"),
        "HS512": jwt.encode({"aud": "telegraphy:publish", "exp": now + 60}, secret + "-" * 64, algorithm="HS512"),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "case",
    ["expired", "tampered payload", "tampered signature", "alg none", "wrong key", "connect token", "no exp", "no aud", "HS512", "garbage"],
)
def test_bad_token_is_401(shared: GatewayProcess, case: str) -> None:
    """Expired, forged, unsigned or other-purpose tokens get 401 invalid_token."""
    token = _forged_tokens(shared.secret or "")[case]
    response = publish(shared, EVENT, token=token)
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_token_reasons_are_specific(shared: GatewayProcess) -> None:
    """The 401 detail says why the token was refused."""
    tokens = _forged_tokens(shared.secret or "")
    assert_error(publish(shared, EVENT, token=tokens["expired"]), 401, "unauthorized", "expired")
    assert_error(publish(shared, EVENT, token=tokens["connect token"]), 401, "unauthorized", "not a publish token")
    assert_error(publish(shared, EVENT, token=tokens["wrong key"]), 401, "unauthorized", "signature")


def test_missing_authorization_is_401(shared: GatewayProcess) -> None:
    """A request without Authorization gets 401 and a Bearer challenge."""
    response = publish(shared, EVENT, token=None)
    assert_error(response, 401, "unauthorized", "missing authorization header")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer   ", "bearer"])
def test_not_bearer_is_401(shared: GatewayProcess, header: str) -> None:
    """Another scheme, or Bearer without a token, gets 401."""
    response = publish(shared, EVENT, token=None, headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_bearer_scheme_is_case_insensitive(shared: GatewayProcess) -> None:
    """"bearer <token>" is accepted as well as "Bearer <token>" (RFC 7235)."""
    response = publish(shared, EVENT, token=None, headers={"Authorization": f"bearer {shared.publish_token()}"})
    assert response.status == 202


def test_refused_requests_publish_nothing(fresh: GatewayProcess) -> None:
    """After 401s and 400s, nothing was published and every error was counted by code."""
    tokens = _forged_tokens(fresh.secret or "")
    for token in tokens.values():
        assert publish(fresh, EVENT, token=token).status == 401
    assert publish(fresh, [EVENT, {"name": 3}]).status == 400
    assert publish(fresh, b"[{").status == 400
    counters = metrics(fresh)
    assert counters["telegraphy_events_published_total"] == 0
    assert counters["telegraphy_publish_requests_total"] == len(tokens) + 2
    assert counters["telegraphy_publish_errors_total"] == len(tokens) + 2
    assert counters['telegraphy_publish_errors_by_code_total{code="unauthorized"}'] == len(tokens)
    assert counters['telegraphy_publish_errors_by_code_total{code="invalid_event"}'] == 1
    assert counters['telegraphy_publish_errors_by_code_total{code="invalid_json"}'] == 1


# --- body validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (b'{"name": "a.b",', ["line 1 column 16"]),
        (b'[{"name": "a.b"}\n {"name": "c"}]', ["line 2 column 2"]),
        (b"", ["empty"]),
        (b"   ", ["empty"]),
        (b'{"name": NaN}', ["NaN"]),
        (b'\xff{"name": "a"}', ["utf-8"]),
        (b"[" * 20_000 + b"]" * 20_000, ["too deep"]),
    ],
    ids=["truncated", "missing comma", "empty", "blank", "nan", "not utf-8", "deep nesting"],
)
def test_malformed_json_is_400(shared: GatewayProcess, body: bytes, fragments: list[str]) -> None:
    """A body that is not JSON gets 400 invalid_json saying where."""
    assert_error(publish(shared, body), 400, "invalid_json", *fragments)


@pytest.mark.parametrize(
    ("body", "field", "index", "fragments"),
    [
        ({"data": {}}, "name", None, ["name", "required"]),
        ({"name": 42}, "name", None, ["name", "expected a string, got number"]),
        ({"name": "has space"}, "name", None, ["not a valid topic"]),
        ({"name": "a.b", "meta": []}, "meta", None, ["meta", "expected an object, got array"]),
        ({"name": "a.b", "meta": {"event_type": 1}}, "meta.event_type", None, ["meta.event_type"]),
        ({"name": "a.b", "data": "text"}, "data", None, ["data", "got string"]),
        ({"name": "a.b", "meta": {"id": 7}}, "meta.id", None, ["meta.id", "expected a string, got number"]),
        ([EVENT, {"name": "a.b", "meta": {"id": ""}}], "meta.id", 1, ["event 1", "meta.id", "1 to 64", "got 0 characters"]),
        ({"name": "a.b", "meta": {"id": "x" * 65}}, "meta.id", None, ["meta.id", "got 65 characters"]),
        ({"name": "a.b", "meta": {"id": "a/b"}}, "meta.id", None, ["meta.id", "A-Z a-z 0-9 _ . : -"]),
        ({"name": "a.b", "extra": 1}, "extra", None, ["extra", "unknown field"]),
        ([EVENT, EVENT, {"name": None}], "name", 2, ["event 2", "name"]),
        ([EVENT, "shop.Order"], "event", 1, ["event 1", "expected an object, got string"]),
        ([EVENT, [EVENT]], "event", 1, ["event 1", "got array"]),
        (json.dumps("just a string"), "event", None, ["got string"]),
        (12, "event", None, ["got number"]),
        (None, "event", None, ["got null"]),
        ('{"name": "a.b", "data": {"n": 1e400}}', None, None, ["1e400 is out of range"]),
        ('{"name": "a.b", "data": {"n": 18446744073709551616}}', None, None, ["must fit in 64 bits"]),
        ('{"name": "a.b", "data": {"n": ' + "9" * 5000 + "}}", None, None, ["must fit in 64 bits"]),
        ('{"name": "a.b", "data": {"s": "\\ud800"}}', None, None, ["surrogate"]),
    ],
    ids=lambda value: None if isinstance(value, (str, dict, list)) and len(str(value)) < 60 else "long",
)
def test_invalid_event_is_400_naming_field_and_index(
    shared: GatewayProcess, body: Any, field: str, index: int | None, fragments: list[str]
) -> None:
    """An event of the wrong shape gets 400 invalid_event naming the field and batch index."""
    error = assert_error(publish(shared, body), 400, "invalid_event", *fragments)
    assert (error["field"], error["index"]) == (field, index)


def test_empty_batch_is_400(shared: GatewayProcess) -> None:
    """An empty array gets 400 empty_batch."""
    assert_error(publish(shared, []), 400, "empty_batch", "empty")


def test_too_many_events_is_400(shared: GatewayProcess) -> None:
    """More events than --max-batch gets 400 batch_too_large with both numbers."""
    assert_error(publish(shared, [EVENT] * 6), 400, "batch_too_large", "6 events", "limit is 5")
    assert publish(shared, [EVENT] * 5).status == 202


def test_body_too_large_is_413(shared: GatewayProcess) -> None:
    """A body over --max-body-size gets a JSON 413, and the connection stays usable."""
    big = json.dumps({"name": "a.b", "data": {"blob": "x" * (64 * 1024)}})
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    try:
        assert publish(shared, EVENT, connection=conn).status == 202
        local = conn.sock.getsockname()
        error = assert_error(publish(shared, big, connection=conn), 413, "body_too_large", str(len(big)), "65536")
        assert error["limit"] == 64 * 1024
        assert publish(shared, EVENT, connection=conn).status == 202
        assert conn.sock is not None and conn.sock.getsockname() == local  # the same connection
    finally:
        conn.close()


def test_body_too_large_is_refused_before_it_is_sent(shared: GatewayProcess) -> None:
    """A huge declared Content-Length gets a JSON 413 at once, without sending the body."""
    with socket.create_connection(("127.0.0.1", shared.port), timeout=10) as sock:
        sock.sendall(
            b"POST /publish HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + shared.publish_token().encode() + b"\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        result = Response(response)
    assert_error(result, 413, "body_too_large", "1073741824")
    assert result.headers["Connection"] == "close"


def test_body_too_large_with_expect_continue(shared: GatewayProcess) -> None:
    """A client that asks "Expect: 100-continue" gets the 413 instead of a 100."""
    with socket.create_connection(("127.0.0.1", shared.port), timeout=10) as sock:
        sock.sendall(
            b"POST /publish HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n"
            b"Authorization: Bearer " + shared.publish_token().encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        result = Response(response)
    assert_error(result, 413, "body_too_large")


def test_chunked_body_too_large_is_413(shared: GatewayProcess) -> None:
    """A chunked body (no Content-Length) that grows past the limit gets a JSON 413."""
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    try:
        chunks = (b"x" * 16384 for _ in range(5))
        headers = {"Authorization": f"Bearer {shared.publish_token()}", "Content-Type": "application/json"}
        conn.request("POST", "/publish", body=chunks, headers=headers, encode_chunked=True)
        assert_error(Response(conn.getresponse()), 413, "body_too_large", "over 65536")
    finally:
        conn.close()


def test_chunked_body_within_limit_is_accepted(shared: GatewayProcess) -> None:
    """A chunked body within the limit is read whole and published."""
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    try:
        raw = json.dumps([EVENT, EVENT]).encode()
        chunks = (raw[i : i + 7] for i in range(0, len(raw), 7))
        headers = {"Authorization": f"Bearer {shared.publish_token()}", "Content-Type": "application/json"}
        conn.request("POST", "/publish", body=chunks, headers=headers, encode_chunked=True)
        response = Response(conn.getresponse())
        assert response.status == 202 and response.json()["published"] == 2
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [("text/plain", "text/plain"), ("application/x-www-form-urlencoded", "form"), ("application/json; charset=latin-1", "charset")],
)
def test_wrong_content_type_is_415(shared: GatewayProcess, content_type: str, fragment: str) -> None:
    """A Content-Type other than JSON in UTF-8 gets 415."""
    assert_error(publish(shared, EVENT, headers={"Content-Type": content_type}), 415, "unsupported_media_type", fragment)


def test_compressed_body_is_415(shared: GatewayProcess) -> None:
    """A Content-Encoding the gateway does not decode gets 415."""
    assert_error(publish(shared, EVENT, headers={"Content-Encoding": "gzip"}), 415, "unsupported_media_type", "gzip")


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8", "application/cloudevents+json"])
def test_json_content_types_accepted(shared: GatewayProcess, content_type: str | None) -> None:
    """No Content-Type, application/json (UTF-8) and +json types are accepted."""
    headers = {"Authorization": f"Bearer {shared.publish_token()}"}
    if content_type:
        headers["Content-Type"] = content_type
    assert request(shared, "POST", "/publish", json.dumps(EVENT), headers).status == 202


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(shared: GatewayProcess, method: str) -> None:
    """Methods other than POST on /publish get a JSON 405 with Allow: POST."""
    response = request(shared, method, "/publish", headers={"Authorization": f"Bearer {shared.publish_token()}"})
    assert_error(response, 405, "method_not_allowed", method)
    assert response.headers["Allow"] == "POST"


def test_unknown_method_is_json_405(shared: GatewayProcess) -> None:
    """A method Tornado does not know still gets the JSON error shape."""
    assert_error(request(shared, "BREW", "/publish"), 405, "method_not_allowed", "BREW")


# --- success --------------------------------------------------------------


def test_publish_one_event(fresh: GatewayProcess) -> None:
    """One event object gets 202 with its id, and the counters move."""
    response = publish(fresh, EVENT)
    assert response.status == 202
    body = response.json()
    assert body["published"] == 1 and len(body["ids"]) == 1 and isinstance(body["ids"][0], str) and body["ids"][0]
    counters = metrics(fresh)
    assert counters["telegraphy_events_published_total"] == 1
    assert counters["telegraphy_publish_requests_total"] == 1
    assert counters["telegraphy_publish_errors_total"] == 0


def test_publish_batch_ids_unique(fresh: GatewayProcess) -> None:
    """A batch gets 202 with one distinct id per event, in order of the batch."""
    ids = []
    for _ in range(3):
        response = publish(fresh, [EVENT, {"name": "chat.lobby", "data": ["hi"]}, {"name": "x"}, EVENT, EVENT])
        assert response.status == 202
        body = response.json()
        assert body["published"] == 5 and len(body["ids"]) == 5
        ids += body["ids"]
    assert len(set(ids)) == len(ids) == 15
    assert metrics(fresh)["telegraphy_events_published_total"] == 15


def test_publish_keeps_unicode_and_64_bit_numbers(shared: GatewayProcess) -> None:
    """Non-ASCII text, escaped surrogate pairs and 64-bit integers are accepted."""
    body = r'{"name": "chat.caf\u00e9", "data": {"text": "h\u00e9 \ud83d\ude00 ☃", "big": 18446744073709551615, "low": -9223372036854775808, "x": 1.5e300}}'
    response = publish(shared, body.encode("utf-8"))
    assert response.status == 202, response.body


def test_keep_alive_many_publishes_on_one_connection(shared: GatewayProcess) -> None:
    """Many publishes, refused ones included, share one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    try:
        token = shared.publish_token()
        for i in range(100):
            response = publish(shared, {"name": "seq.n", "data": {"i": i}}, token=token, connection=conn)
            assert response.status == 202, response.body
            if i == 0:
                local = conn.sock.getsockname()
            assert conn.sock is not None and conn.sock.getsockname() == local  # no reconnect
            if i % 25 == 0:
                assert publish(shared, {"name": 1}, token=token, connection=conn).status == 400
                assert publish(shared, EVENT, token="bad", connection=conn).status == 401
        assert conn.sock.getsockname() == local
    finally:
        conn.close()


# --- health, metrics, 404 -------------------------------------------------


def test_health(shared: GatewayProcess) -> None:
    """GET /health reports ok and nothing else (version, uptime and counts are for /metrics)."""
    response = request(shared, "GET", "/health")
    assert response.status == 200
    assert response.json() == {"status": "ok"}


def test_metrics_exposition_format(fresh: GatewayProcess) -> None:
    """GET /metrics is Prometheus text 0.0.4 with HELP/TYPE lines and prefixed names."""
    response = request(fresh, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.body.decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    for name in ("connections_opened", "connections_closed", "events_published", "events_delivered", "publish_requests", "publish_errors", "messages_received", "protocol_errors"):
        assert types[f"telegraphy_{name}_total"] == "counter"
    for name in ("connections", "sessions", "subscriptions", "registrations", "uptime_seconds"):
        assert types[f"telegraphy_{name}"] == "gauge"
    for line in text.splitlines():
        if not line.startswith("#"):
            assert re.match(r"^telegraphy_[a-z_]+(\{[a-z]+=\"[^\"]*\"\})? [0-9.e+-]+$", line), line
    assert all(f"# HELP {name} " in text for name in types)


def test_metrics_count_publishes_and_errors(fresh: GatewayProcess) -> None:
    """Counters move after a publish and after an error, by error code."""
    before = metrics(fresh)
    assert publish(fresh, [EVENT, EVENT]).status == 202
    assert publish(fresh, EVENT, token=None).status == 401
    assert publish(fresh, []).status == 400
    after = metrics(fresh)
    assert after["telegraphy_events_published_total"] == before["telegraphy_events_published_total"] + 2
    assert after["telegraphy_publish_requests_total"] == before["telegraphy_publish_requests_total"] + 3
    assert after["telegraphy_publish_errors_total"] == before["telegraphy_publish_errors_total"] + 2
    assert after['telegraphy_publish_errors_by_code_total{code="unauthorized"}'] == 1
    assert after['telegraphy_publish_errors_by_code_total{code="empty_batch"}'] == 1


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/nope"), ("POST", "/publish/extra"), ("DELETE", "/health/x")])
def test_unknown_path_is_json_404(shared: GatewayProcess, method: str, path: str) -> None:
    """Unknown paths get a JSON 404 naming the path."""
    assert_error(request(shared, method, path), 404, "not_found", path)


def test_health_post_is_json_405(shared: GatewayProcess) -> None:
    """Wrong methods on /health get the JSON error shape too."""
    response = request(shared, "POST", "/health", body=b"{}")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET"


# --- process lifecycle ----------------------------------------------------


def test_refuses_to_start_without_secret() -> None:
    """Without a secret or --insecure-dev the gateway exits 2 naming TELEGRAPHY_SECRET."""
    result = run_gateway("--port", "0")
    assert result.returncode == 2
    assert "no secret configured" in result.stderr and "TELEGRAPHY_SECRET" in result.stderr
    assert result.stdout == ""


def test_refuses_to_start_with_weak_secret() -> None:
    """TELEGRAPHY_SECRET=abc: the gateway exits 2 naming the setting and the 32-byte minimum, never the secret."""
    result = run_gateway("--port", "0", env={"TELEGRAPHY_SECRET": "abc"})
    assert result.returncode == 2
    assert "TELEGRAPHY_SECRET" in result.stderr and "at least 32" in result.stderr
    assert "abc" not in result.stderr
    assert result.stdout == ""


def test_invalid_setting_exits_2() -> None:
    """An invalid setting exits 2 with a message naming the flag and variable."""
    result = run_gateway("--port", "0", env={"TELEGRAPHY_MAX_BATCH": "many"})
    assert result.returncode == 2
    assert "--max-batch" in result.stderr and "TELEGRAPHY_MAX_BATCH" in result.stderr


def test_secret_from_env(gateway_process: Any) -> None:
    """TELEGRAPHY_SECRET configures the secret: its tokens are accepted."""
    secret = "env-secret-" + "z" * 32
    gateway = gateway_process(secret=None, env={"TELEGRAPHY_SECRET": secret})
    assert publish(gateway, EVENT, token=mint_publish_token(secret)).status == 202
    assert secret not in gateway.stderr()


def test_insecure_dev_starts_with_warning(gateway_process: Any) -> None:
    """--insecure-dev starts without a secret, warns loudly, and accepts no guessable token."""
    gateway = gateway_process("--insecure-dev", secret=None)
    assert "INSECURE DEVELOPMENT MODE" in gateway.stderr()
    assert request(gateway, "GET", "/health").status == 200
    assert publish(gateway, EVENT, token=mint_publish_token("a-guessed-secret-" + "g" * 32)).status == 401


def test_port_env_honoured(gateway_process: Any) -> None:
    """Without --port, the PORT environment variable chooses the port."""
    port = free_port()
    gateway = gateway_process(port=None, env={"PORT": str(port)})
    assert gateway.port == port
    assert request(gateway, "GET", "/health").status == 200


def test_listening_line(gateway: GatewayProcess) -> None:
    """stdout carries exactly one line naming the host and the port actually bound."""
    assert gateway.listening_line == f"Telegraphy gateway listening on http://127.0.0.1:{gateway.port}\n"
    assert gateway.port != 0
    assert gateway.stop() == 0
    assert gateway.stdout_rest() == []


def test_ws_path_moves_websocket(gateway_process: Any) -> None:
    """--ws-path serves the WebSocket endpoint there instead of /ws."""
    gateway = gateway_process("--ws-path", "/wamp", ws_path="/wamp")
    assert gateway.ws_url == f"ws://127.0.0.1:{gateway.port}/wamp"
    assert request(gateway, "GET", "/ws").status == 404
    assert request(gateway, "GET", "/wamp").status == 400  # a WebSocket endpoint, not upgraded


def test_sigterm_exits_0(gateway_process: Any) -> None:
    """SIGTERM stops the gateway with exit status 0 and nothing more on stdout."""
    gateway = gateway_process()
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    assert publish(gateway, EVENT, connection=conn).status == 202  # an idle keep-alive connection stays open
    assert gateway.stop(signal.SIGTERM) == 0
    conn.close()
    assert gateway.stdout_rest() == []
    assert "shutting down" in gateway.stderr()


def test_sigint_exits_0(gateway_process: Any) -> None:
    """SIGINT (Ctrl-C) stops the gateway cleanly too."""
    gateway = gateway_process()
    assert gateway.stop(signal.SIGINT) == 0
    assert "received SIGINT" in gateway.stderr() and "Traceback" not in gateway.stderr()


def test_port_in_use_exits_1(gateway_process: Any) -> None:
    """A port already taken makes the gateway exit 1 with a clear message."""
    first = gateway_process()
    result = run_gateway("--port", str(first.port), "--secret", "x" * 40)
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr


# --- failures inside the gateway ------------------------------------------
# A real gateway does not fail on demand, so this one test drives the HTTP
# handlers in-process around a stand-in whose publish_events raises.


class _FailingGateway:
    def __init__(self) -> None:
        self.config = Config(secret="stand-in-secret-" + "q" * 32)
        self.metrics = Metrics()
        self.started_at = time.monotonic()

    def publish_events(self, events: list[dict[str, Any]]) -> list[str]:
        raise RuntimeError("database password is hunter2")

    def gauges(self) -> dict[str, float]:
        return {"connections": 0, "sessions": 0, "subscriptions": 0, "registrations": 0}

    def websocket_routes(self) -> list[Any]:
        return []


class TestInternalError(tornado.testing.AsyncHTTPTestCase):
    """An exception inside the gateway becomes a bare JSON 500, logged, never shown."""

    def get_app(self) -> tornado.web.Application:
        self.stand_in = _FailingGateway()
        return make_app(self.stand_in)

    def test_exception_is_json_500_without_details(self) -> None:
        """The peer gets {"error": "internal_error"} only; the log gets the traceback."""
        token = mint_publish_token(self.stand_in.config.secret or "")
        with self.assertLogs("tornado.application", level="ERROR") as logs:
            response = self.fetch("/publish", method="POST", body=json.dumps(EVENT), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert response.code == 500
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.body) == {"error": "internal_error"}
        assert b"hunter2" not in response.body and b"Traceback" not in response.body
        assert "hunter2" in "\n".join(logs.output)
        assert self.stand_in.metrics.publish_errors_by_code == {"internal_error": 1}
