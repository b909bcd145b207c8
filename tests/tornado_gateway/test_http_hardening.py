"""The gateway's HTTP edge against real gateway processes: client addresses behind proxies, metrics access, JSON errors for malformed HTTP, the listen backlog."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from gateway_helpers import GatewayProcess, start_gateway, wait_for

from telegraphy.tokens import mint_manage_token

#: Seconds to wait for any one answer.
STEP = 5.0
SPOOFED = "203.0.113.9"
METRICS_TOKEN = "m" * 24


def raw_exchange(gateway: GatewayProcess, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; return the status, headers (lowercase names) and body of the answer."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=STEP) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the gateway may answer and close before reading it all
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, f"body cut short: {body!r}"
            body += chunk
        return int(lines[0].split(" ")[1]), headers, body


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> dict[str, Any]:
    """Check the answer is ``status`` with the JSON error shape and ``code``; return the body."""
    got_status, headers, body = answer
    assert got_status == status, answer
    assert headers["content-type"].startswith("application/json"), answer
    document: dict[str, Any] = json.loads(body)
    assert document["error"] == code and isinstance(document["detail"], str) and document["detail"], document
    return document


@pytest.fixture(scope="module")
def shared() -> Iterator[GatewayProcess]:
    """One gateway with default settings for the read-only tests."""
    gateway = start_gateway("--store", "memory://")
    yield gateway
    gateway.stop()


def _handshake(path: str, forwarded: dict[str, str]) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in forwarded.items())
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def _handshake_status(gateway: GatewayProcess, forwarded: dict[str, str]) -> int:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=STEP) as sock:
        sock.sendall(_handshake("/ws", forwarded))
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            assert chunk, "closed without an answer"
            received += chunk
        return int(received.split(b" ")[1])


def _sockjs_open_status(gateway: GatewayProcess, forwarded: dict[str, str]) -> int:
    extra = "".join(f"{name}: {value}\r\n" for name, value in forwarded.items())
    request = f"POST /sockjs/000/{uuid.uuid4().hex}/xhr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n{extra}\r\n"
    return raw_exchange(gateway, request.encode())[0]


async def _join_with_headers(gateway: GatewayProcess, headers: dict[str, str]) -> tornado.websocket.WebSocketClientConnection:
    request = tornado.httpclient.HTTPRequest(gateway.ws_url, headers=headers, connect_timeout=STEP)
    connection = await tornado.websocket.websocket_connect(request, subprotocols=["wamp.2.json"])
    await connection.write_message(json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}}]))
    welcome = json.loads(await asyncio.wait_for(connection.read_message(), STEP))
    assert welcome[0] == 2, welcome
    return connection


def _session_peers(gateway: GatewayProcess) -> list[str]:
    assert gateway.secret is not None
    request = urllib.request.Request(f"{gateway.url}/sessions", headers={"Authorization": f"Bearer {mint_manage_token(gateway.secret)}"})
    with urllib.request.urlopen(request, timeout=STEP) as response:
        return [session["transport"]["peer"] for session in json.loads(response.read())["sessions"]]


# --- #17: forwarded headers count only from trusted proxies -----------------


def test_forwarded_headers_ignored_without_trusted_proxies(gateway_process: Callable[..., GatewayProcess]) -> None:
    """Without --trusted-proxies, rotating X-Forwarded-For/X-Real-IP does not escape the per-IP connection limit, and /sessions and logs show the real peer."""
    gateway = gateway_process("--store", "memory://", "--connection-rate", "0.01", "--connection-burst", "2", "--log-level", "debug")
    statuses = [_handshake_status(gateway, {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"192.0.2.{n}"}) for n in range(10)]
    assert statuses == [101, 101] + [429] * 8
    sockjs = [_sockjs_open_status(gateway, {"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(3)]
    assert sockjs == [429, 429, 429]

    relaxed = gateway_process("--store", "memory://", "--log-level", "debug")

    async def scenario() -> None:
        connection = await _join_with_headers(relaxed, {"X-Forwarded-For": SPOOFED, "X-Real-IP": SPOOFED})
        assert _session_peers(relaxed) == ["127.0.0.1"]
        connection.close()

    asyncio.run(asyncio.wait_for(scenario(), 4 * STEP))
    assert SPOOFED not in relaxed.stderr() and "198.51.100." not in gateway.stderr()


def test_forwarded_headers_honoured_from_trusted_proxy(gateway_process: Callable[..., GatewayProcess]) -> None:
    """With --trusted-proxies 127.0.0.1, each forwarded client has its own connection budget and /sessions shows the right-most untrusted address."""
    gateway = gateway_process(
        "--store", "memory://", "--connection-rate", "0.01", "--connection-burst", "2", "--trusted-proxies", "127.0.0.1, 10.0.0.0/8"
    )
    statuses = [_handshake_status(gateway, {"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(10)]
    assert statuses == [101] * 10
    # One client's budget is spent; the others' are not.
    assert [_handshake_status(gateway, {"X-Forwarded-For": "198.51.100.0"}) for _ in range(2)] == [101, 429]
    assert _handshake_status(gateway, {"X-Real-IP": "198.51.100.1"}) == 101

    async def scenario() -> None:
        # The client wrote the left-most entry itself; 10.1.2.3 is a trusted hop.
        connection = await _join_with_headers(gateway, {"X-Forwarded-For": f"6.6.6.6, {SPOOFED}, 10.1.2.3"})
        assert _session_peers(gateway) == [SPOOFED]
        connection.close()

    asyncio.run(asyncio.wait_for(scenario(), 4 * STEP))


# --- #20: /health is minimal, /metrics is protected ------------------------


def test_health_says_only_ok(shared: GatewayProcess) -> None:
    """GET /health answers {"status": "ok"} and nothing else: no version, uptime or counts."""
    status, _, body = raw_exchange(shared, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_metrics_refused_through_a_proxy_without_token(shared: GatewayProcess, gateway_process: Callable[..., GatewayProcess]) -> None:
    """Without --metrics-token, /metrics is 403 JSON for a request that came through a proxy (a forwarding header, or a trusted proxy peer)."""
    for header in ("X-Forwarded-For: 127.0.0.1", "X-Real-IP: 127.0.0.1", "Forwarded: for=127.0.0.1"):
        answer = raw_exchange(shared, f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\nConnection: close\r\n\r\n".encode())
        assert "metrics-token" in assert_json_error(answer, 403, "forbidden")["detail"]
    behind_proxy = gateway_process("--store", "memory://", "--trusted-proxies", "127.0.0.1")
    assert_json_error(raw_exchange(behind_proxy, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), 403, "forbidden")


def test_metrics_token_required_when_set(gateway_process: Callable[..., GatewayProcess]) -> None:
    """With TELEGRAPHY_METRICS_TOKEN, /metrics needs that bearer token, even from loopback; with it, it answers from anywhere."""
    gateway = gateway_process("--store", "memory://", "--trusted-proxies", "127.0.0.1", env={"TELEGRAPHY_METRICS_TOKEN": METRICS_TOKEN})
    base = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    assert_json_error(raw_exchange(gateway, f"{base}\r\n".encode()), 401, "unauthorized")
    assert_json_error(raw_exchange(gateway, f"{base}Authorization: Bearer {'x' * 24}\r\n\r\n".encode()), 401, "unauthorized")
    status, headers, body = raw_exchange(gateway, f"{base}Authorization: Bearer {METRICS_TOKEN}\r\nX-Forwarded-For: {SPOOFED}\r\n\r\n".encode())
    assert status == 200 and headers["content-type"].startswith("text/plain") and b"telegraphy_connections " in body
    assert METRICS_TOKEN not in gateway.stderr()


# --- #21: every HTTP error is JSON ------------------------------------------

MALFORMED = {
    "bad chunk size": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "bad_request"),
    "length and chunked": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400, "bad_request"),
    "two lengths": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "bad_request"),
    "bad length": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\nabc", 400, "bad_request"),
    "bad request line": (b"GARBAGE\r\nHost: x\r\n\r\n", 400, "bad_request"),
    "bad version": (b"GET /health HTTP/7\r\nHost: x\r\n\r\n", 400, "bad_request"),
    "header without colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "bad_request"),
    "no host": (b"GET /health HTTP/1.1\r\n\r\n", 400, "bad_request"),
    "unknown transfer coding": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    "10 MB on /revoke": (b"POST /revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n", 413, "body_too_large"),
    "10 MB on /health": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 65536, 413, "body_too_large"),
    "10 MB on /subscriptions": (b"GET /subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n", 413, "body_too_large"),
    "chunked body too large": (
        b"POST /revoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"100000\r\n" + b"x" * 0x100000 + b"\r\n" + b"100000\r\n",
        413,
        "body_too_large",
    ),
    "100 KB header": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "headers_too_large"),
    "POST /ws": (b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"),
    "DELETE /metrics": (b"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_http_gets_json_error(shared: GatewayProcess, case: str) -> None:
    """Each malformed or oversized request gets the JSON error shape with the right status, never a bare status line or silence."""
    data, status, code = MALFORMED[case]
    document = assert_json_error(raw_exchange(shared, data), status, code)
    assert "zz" not in document["detail"] and "aaaa" not in document["detail"]  # the input is not echoed


@pytest.mark.parametrize("path", ["/revoke", "/health", "/subscriptions"])
def test_client_sending_a_whole_oversized_body_reads_413(shared: GatewayProcess, path: str) -> None:
    """A client that writes a whole 10 MB body before reading (as urllib does) gets the JSON 413, not a reset connection."""
    request = urllib.request.Request(f"{shared.url}{path}", data=b"x" * (10 * 1024 * 1024), method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=STEP)
    assert info.value.code == 413
    assert json.loads(info.value.read())["error"] == "body_too_large"


def test_publisher_sending_a_whole_oversized_body_reads_413(shared: GatewayProcess) -> None:
    """A publisher that writes a whole 10 MB body to /publish before reading (as http.client does) reads the JSON 413, not a reset connection."""
    connection = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=STEP)
    try:
        headers = {"Authorization": f"Bearer {shared.publish_token()}", "Content-Type": "application/json"}
        connection.request("POST", "/publish", body=b"x" * (10 * 1024 * 1024), headers=headers)
        response = connection.getresponse()
        assert response.status == 413
        document = json.loads(response.read())
    finally:
        connection.close()
    assert document["error"] == "body_too_large" and isinstance(document["detail"], str) and document["detail"], document


def test_gateway_serves_after_malformed_requests(shared: GatewayProcess) -> None:
    """After every malformed request the gateway still answers a well-formed one; no traceback is logged."""
    for data, _, _ in MALFORMED.values():
        raw_exchange(shared, data)
    assert raw_exchange(shared, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200
    assert "Traceback" not in shared.stderr()


# --- #22: the listen backlog ------------------------------------------------


def _listen_backlog(port: int) -> int:
    """The Send-Q of the listening socket on ``port``: its backlog, as the kernel applies it."""
    output = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=STEP).stdout
    return int(output.split()[2])


def _somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn", encoding="ascii") as handle:
        return int(handle.read())


@pytest.mark.skipif(subprocess.run(["which", "ss"], capture_output=True).returncode != 0, reason="needs ss (iproute2)")
def test_listen_backlog_is_configurable(gateway_process: Callable[..., GatewayProcess]) -> None:
    """The listening socket's backlog is --backlog (default 4096, capped by somaxconn); above somaxconn a warning names it."""
    cap = _somaxconn()
    assert _listen_backlog(gateway_process("--store", "memory://").port) == min(4096, cap)
    assert _listen_backlog(gateway_process("--store", "memory://", "--backlog", "1000").port) == min(1000, cap)
    over = gateway_process("--store", "memory://", env={"TELEGRAPHY_BACKLOG": str(cap + 1)})
    assert _listen_backlog(over.port) == cap
    wait_for(lambda: "net.core.somaxconn" in over.stderr(), STEP, message="no somaxconn warning")


def test_many_simultaneous_connects_are_queued(gateway_process: Callable[..., GatewayProcess]) -> None:
    """1,000 clients connecting at once while the gateway is not accepting all complete their TCP handshake (the backlog holds them)."""
    gateway = gateway_process("--store", "memory://")
    gateway.proc.send_signal(signal.SIGSTOP)  # nothing is accepted meanwhile
    sockets: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", gateway.port))
            sockets.append(sock)

        def all_connected() -> bool:
            return all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and _connected(sock) for sock in sockets)

        wait_for(all_connected, 2 * STEP, 0.1, "some connects were not queued")
    finally:
        gateway.proc.send_signal(signal.SIGCONT)
        for sock in sockets:
            sock.close()
    assert raw_exchange(gateway, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def test_urlopen_metrics_from_loopback_still_works(shared: GatewayProcess) -> None:
    """A plain scrape from this host (as the tests and bench/ do) reads /metrics without a token."""
    with urllib.request.urlopen(f"{shared.url}/metrics", timeout=STEP) as response:
        assert b"telegraphy_connections" in response.read()
