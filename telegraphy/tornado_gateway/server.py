"""The gateway's HTTP server: client addresses behind proxies, JSON errors below the handlers, the listen backlog.

:class:`GatewayHTTPServer` is Tornado's ``HTTPServer`` with three changes:

- **Client addresses.** ``request.remote_ip`` is the TCP peer, unless that
  peer is one of ``--trusted-proxies``: then the address comes from
  ``X-Forwarded-For`` (the right-most address that is not itself a trusted
  proxy) or ``X-Real-IP``, and the scheme from ``X-Forwarded-Proto``
  (:class:`TrustedProxies`). Every user of the address (the per-IP
  connection rate, ``/sessions``, logs, SockJS sessions) reads
  ``request.remote_ip``, so this one place decides for all of them.
- **JSON errors before a handler exists.** Requests Tornado's HTTP/1 parser
  refuses (a malformed request line or header, conflicting framing headers,
  a bad chunk, a body over the limit) are answered with the gateway's error
  shape ``{"error", "detail"}`` and the right status (400, 413, 501)
  instead of a bare ``400``; a request head over :data:`MAX_HEADER_SIZE`
  gets ``431`` instead of a silent close.
- **Backlog.** :func:`listen_sockets` binds with ``--backlog`` and warns
  when the kernel will cap it.

Use::

    server = GatewayHTTPServer(app, trusted_proxies=TrustedProxies(config.trusted_proxies), ...)
    server.add_sockets(listen_sockets(config.host, config.port, config.backlog))
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Iterable
from typing import Any

import tornado.httpserver
import tornado.netutil
from tornado import httputil, iostream
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection

__all__ = [
    "MAX_HEADER_SIZE",
    "GatewayHTTPServer",
    "TrustedProxies",
    "direct_peer",
    "error_response",
    "framing_error",
    "is_local_request",
    "listen_sockets",
    "read_somaxconn",
]

logger = logging.getLogger("telegraphy.gateway.http")

#: Largest request head (request line and headers), bytes; beyond it: 431.
MAX_HEADER_SIZE = 64 * 1024
#: After an error answer, the connection is half-closed and what the client
#: still sends (the rest of a refused body) is read and dropped, up to this
#: many bytes and :data:`LINGER_SECONDS`, before closing: a client busy
#: sending then reads the answer instead of a reset (RFC 9112 §9.6).
LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 5.0
#: Bytes already received that are dropped before closing when the
#: connection cannot be read any more (an oversized head).
DRAIN_BYTES = 1024 * 1024
#: Where Linux keeps the cap of every listen backlog.
SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"

# The one response Tornado writes itself for a malformed request.
_TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"
_REASONS = {400: "Bad Request", 413: "Content Too Large", 431: "Request Header Fields Too Large", 501: "Not Implemented"}
_FORWARDED_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Scheme")


# --- client addresses -------------------------------------------------------


class TrustedProxies:
    """Which peers may tell the gateway the client's address, and what they say.

    Args:
        networks: addresses and CIDR networks (``"10.0.0.0/8"``,
            ``"::1"``), as ``--trusted-proxies`` holds them.
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(network, strict=False) for network in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({', '.join(map(str, self.networks))})"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP in text) is one of the trusted proxies."""
        ip = _parse_ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_address(self, peer: str, headers: httputil.HTTPHeaders) -> str:
        """Return the client's IP address for a request from TCP peer ``peer``.

        From an untrusted peer the headers are ignored. From a trusted one,
        ``X-Forwarded-For`` is read from the right: each proxy appends the
        address it got the request from, so the right-most address that is
        not a trusted proxy is the client (what lies left of it, the client
        could have written). Without that header, a valid ``X-Real-IP``
        is used; without either, the peer.
        """
        if not self.trusts(peer):
            return peer
        forwarded_for = headers.get("X-Forwarded-For")
        if forwarded_for is not None:
            address = peer
            for candidate in reversed(forwarded_for.split(",")):
                candidate = candidate.strip()
                if _parse_ip(candidate) is None:
                    break  # garbage: keep the last address a trusted hop gave
                address = candidate
                if not self.trusts(candidate):
                    break
            return _normal_ip(address)
        real_ip = headers.get("X-Real-Ip", "").strip()
        if _parse_ip(real_ip) is not None:
            return _normal_ip(real_ip)
        return peer

    def scheme(self, peer: str, headers: httputil.HTTPHeaders, default: str) -> str:
        """Return ``http`` or ``https`` as a trusted proxy's ``X-Forwarded-Proto`` says, else ``default``."""
        if not self.trusts(peer):
            return default
        value = headers.get("X-Forwarded-Proto", headers.get("X-Scheme", ""))
        last = value.split(",")[-1].strip().lower()
        return last if last in ("http", "https") else default


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _normal_ip(text: str) -> str:
    ip = _parse_ip(text)
    return str(ip) if ip is not None else text


def direct_peer(request: httputil.HTTPServerRequest) -> str | None:
    """Return the IP of the TCP peer of ``request`` (never a forwarded address), or ``None`` if unknown."""
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return _normal_ip(address[0])
    return None


def is_local_request(request: httputil.HTTPServerRequest, proxies: TrustedProxies) -> bool:
    """Whether ``request`` came straight from this host: a loopback peer, no proxy in between.

    A request carrying any forwarding header, or from a peer that is a
    trusted proxy, came through a proxy (maybe from the internet), so it
    is not local even when the proxy runs on this host.
    """
    peer = direct_peer(request)
    ip = _parse_ip(peer) if peer is not None else None
    if ip is None or not ip.is_loopback or proxies.trusts(str(ip)):
        return False
    return not any(name in request.headers for name in _FORWARDED_HEADERS)


class _ClientAddress(httputil.HTTPMessageDelegate):
    """Sets the request's address and scheme from trusted proxy headers, for one request.

    Also records a request refused before the application saw it (no
    ``Host``, …), so it gets a JSON answer.
    """

    def __init__(self, delegate: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection, proxies: TrustedProxies) -> None:
        self.delegate = delegate
        self.connection = connection
        self.proxies = proxies

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        context: Any = getattr(self.connection, "context", None)
        if context is not None and self.proxies:
            peer = context.remote_ip
            context.remote_ip = self.proxies.client_address(peer, headers)
            context.protocol = self.proxies.scheme(peer, headers, context.protocol)
        try:
            return self.delegate.headers_received(start_line, headers)
        except httputil.HTTPInputError as exc:
            _refuse(self.connection, 400, "bad_request", _head_detail(str(exc)))
            raise

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        # The next request on a keep-alive connection starts from the peer.
        context: Any = getattr(self.connection, "context", None)
        if context is not None and self.proxies:
            context.remote_ip = context._orig_remote_ip
            context.protocol = context._orig_protocol


def _head_detail(message: str) -> str:
    lowered = message.lower()
    if "host" in lowered:
        return "the Host header is missing or invalid"
    return "malformed request head"


# --- JSON errors below the handlers ---------------------------------------


def error_response(status: int, code: str, detail: str) -> bytes:
    """Return a whole HTTP/1.1 response carrying ``{"error": code, "detail": detail}``; it closes the connection."""
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def framing_error(headers: httputil.HTTPHeaders, max_body_size: int) -> tuple[int, str, str] | None:
    """Return (status, code, detail) if a request's framing headers are unacceptable, else ``None``.

    RFC 9112 §6.3: a request with both ``Transfer-Encoding`` and
    ``Content-Length`` is refused (a smuggling vector), as is a
    ``Content-Length`` that is not one non-negative integer; §6.1: a
    transfer coding other than ``chunked`` is not implemented (501).
    """
    if "Transfer-Encoding" in headers and "Content-Length" in headers:
        return 400, "bad_request", "a request must not have both Content-Length and Transfer-Encoding"
    if "Content-Length" in headers:
        values = {value.strip() for value in headers["Content-Length"].split(",")}
        if len(values) != 1:
            return 400, "bad_request", "conflicting Content-Length values"
        value = values.pop()
        if not value.isascii() or not value.isdigit():
            return 400, "bad_request", "Content-Length must be a non-negative integer"
        if int(value) > max_body_size:
            return 413, "body_too_large", f"body is {int(value)} bytes, the limit is {max_body_size}"
    if "Transfer-Encoding" in headers and headers["Transfer-Encoding"].strip().lower() != "chunked":
        return 501, "not_implemented", "only the chunked transfer coding is supported"
    return None


def _refuse(connection: Any, status: int, code: str, detail: str) -> None:
    """Tell ``connection``'s stream what to answer instead of Tornado's bare 400."""
    stream = getattr(connection, "stream", None)
    if isinstance(stream, _Stream) and stream.refusal is None:
        responded = getattr(connection, "_response_start_line", None) is not None
        # A handler that already answered (a 413 before the body) gets nothing appended.
        stream.refusal = b"" if responded else error_response(status, code, detail)


class _Stream(iostream.IOStream):
    """A server connection's stream that answers refusals in JSON and closes gently."""

    #: The response to send instead of Tornado's bare 400 (``b""``: nothing).
    refusal: bytes | None = None
    _reading_head = False
    _linger = False
    _lingering: asyncio.Task[None] | None = None

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        # The only regex read of a server connection is its request head.
        self._reading_head = True
        future = super().read_until_regex(regex, max_bytes)
        if not self.closed():
            future.add_done_callback(self._head_read)  # type: ignore[attr-defined]
        return future

    def _head_read(self, _future: Any) -> None:
        self._reading_head = False

    def write(self, data: bytes | memoryview) -> asyncio.Future[None]:
        if len(data) == len(_TORNADO_BARE_400) and bytes(data) == _TORNADO_BARE_400:
            data = error_response(400, "bad_request", "malformed HTTP request") if self.refusal is None else self.refusal
            self._linger = True
        return super().write(data)

    def close(self, exc_info: Any = False) -> None:
        if self._lingering is not None and not exc_info:
            return  # closes when the lingering ends
        if not self.closed() and self.socket is not None:
            if isinstance(exc_info, iostream.UnsatisfiableReadError) and self._reading_head:
                # Tornado gives up on an oversized head by closing at once,
                # a read still pending: answer and drop what already came.
                detail = f"the request line and headers exceed {MAX_HEADER_SIZE} bytes"
                self._send_now(error_response(431, "headers_too_large", detail))
                self._drain()
            elif self._linger and not exc_info and self._lingering is None and not self.reading():
                self._lingering = asyncio.get_running_loop().create_task(self._linger_then_close())
                return
        super().close(exc_info)

    async def _linger_then_close(self) -> None:
        """Half-close, read and drop what the client still sends (bounded), then close."""
        try:
            assert self.socket is not None
            self.socket.shutdown(socket.SHUT_WR)
            left = LINGER_BYTES
            deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
            while left > 0:
                timeout = deadline - asyncio.get_running_loop().time()
                chunk = await asyncio.wait_for(self.read_bytes(min(left, 65536), partial=True), max(timeout, 0.0))
                left -= len(chunk)
        except (OSError, iostream.StreamClosedError, asyncio.TimeoutError):
            pass  # the client closed, or enough waiting
        finally:
            self._lingering = None
            super().close()

    def _send_now(self, data: bytes) -> None:
        assert self.socket is not None
        try:
            self.socket.send(data)
        except OSError:
            pass

    def _drain(self) -> None:
        """Half-close, then drop what the peer already sent, so closing does not reset the connection."""
        sock = self.socket
        assert sock is not None
        try:
            sock.shutdown(socket.SHUT_WR)
            left = DRAIN_BYTES
            while left > 0:
                chunk = sock.recv(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # EAGAIN: nothing more buffered; or the peer is gone
            pass


class _Connection(HTTP1Connection):
    """One request on a server connection; records why Tornado refused it."""

    def _parse_headers(self, data: bytes) -> tuple[str, httputil.HTTPHeaders]:
        try:
            start_line, headers = super()._parse_headers(data)
        except httputil.HTTPInputError:
            _refuse(self, 400, "bad_request", "malformed header line: each header must be 'Name: value'")
            raise
        if not self.is_client:
            try:
                httputil.parse_request_start_line(start_line)
            except httputil.HTTPInputError:
                _refuse(self, 400, "bad_request", "malformed request line: expected 'METHOD /path HTTP/1.1'")
                raise
        return start_line, headers

    def _read_body(self, code: int, headers: httputil.HTTPHeaders, delegate: httputil.HTTPMessageDelegate) -> Awaitable[None] | None:
        problem = framing_error(headers, self._max_body_size)
        if problem is not None:
            _refuse(self, *problem)
            raise httputil.HTTPInputError(problem[2])
        try:
            reading = super()._read_body(code, headers, delegate)
        except httputil.HTTPInputError:
            _refuse(self, 400, "bad_request", "malformed body framing")
            raise
        return None if reading is None else self._watch_body(reading)

    async def _watch_body(self, reading: Awaitable[None]) -> None:
        try:
            await reading
        except httputil.HTTPInputError as exc:
            if "too large" in str(exc) or "too long" in str(exc):
                _refuse(self, 413, "body_too_large", f"body is over {self._max_body_size} bytes")
            else:
                _refuse(self, 400, "bad_request", "malformed chunked body: each chunk is '<hex size>\\r\\n<data>\\r\\n'")
            raise


class _ServerConnection(HTTP1ServerConnection):
    """Serves the requests of one connection, each through a :class:`_Connection`."""

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        try:
            while True:
                connection = _Connection(self.stream, False, self.params, self.context)
                request_delegate = delegate.start_request(self, connection)
                try:
                    keep_going = await connection.read_response(request_delegate)
                except (iostream.StreamClosedError, iostream.UnsatisfiableReadError, asyncio.CancelledError):
                    return
                except Exception:
                    logger.exception("uncaught error serving an HTTP connection")
                    connection.close()
                    return
                if not keep_going:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


class GatewayHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, with trusted proxies and JSON errors (see the module docstring).

    Takes ``HTTPServer``'s arguments (not ``xheaders``, which this
    replaces) plus ``trusted_proxies``.
    """

    def initialize(self, *args: Any, trusted_proxies: TrustedProxies | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("max_header_size", MAX_HEADER_SIZE)
        super().initialize(*args, **kwargs)
        self.trusted_proxies = trusted_proxies or TrustedProxies()

    def handle_stream(self, stream: iostream.IOStream, address: tuple[Any, ...]) -> None:
        if type(stream) is iostream.IOStream and stream.socket is not None:
            # The stream is fresh (nothing read, nothing registered with
            # the loop): serve the same socket through our stream class.
            stream = _Stream(stream.socket, max_buffer_size=stream.max_buffer_size, read_chunk_size=stream.read_chunk_size)
        context = tornado.httpserver._HTTPRequestContext(stream, address, self.protocol)
        connection = _ServerConnection(stream, self.conn_params, context)
        self._connections.add(connection)
        connection.start_serving(self)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        return _ClientAddress(delegate, request_conn, self.trusted_proxies)


# --- listening --------------------------------------------------------------


def read_somaxconn(path: str = SOMAXCONN_PATH) -> int | None:
    """Return the kernel's cap on listen backlogs, or ``None`` where it cannot be read (not Linux)."""
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def listen_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bind the listening sockets with ``backlog``; warn when the kernel caps it lower.

    Raises:
        OSError: when the address cannot be bound.
    """
    cap = read_somaxconn()
    if cap is not None and backlog > cap:
        logger.warning(
            "--backlog %d is above the kernel's net.core.somaxconn (%d): the kernel queues at most %d connections; "
            "raise it with: sysctl -w net.core.somaxconn=%d",
            backlog,
            cap,
            cap,
            backlog,
        )
    return tornado.netutil.bind_sockets(port, host, backlog=backlog)
