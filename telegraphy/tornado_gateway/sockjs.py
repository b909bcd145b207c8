"""SockJS endpoints of the gateway: thin Tornado handlers over :mod:`telegraphy.sockjs`.

A :class:`SockJSService` is one SockJS endpoint (``/sockjs`` carrying WAMP;
with ``--sockjs-test-endpoints`` also ``/echo``, ``/close``,
``/disabled_websocket_echo`` and ``/cookie_needed_echo`` for the official
protocol test suite). Its handlers map requests onto the sans-I/O core:
receiving requests become :class:`~telegraphy.sockjs.Receiver` objects
attached to a session, send requests hand decoded messages to it, and
WebSockets are served, after Tornado's handshake, by a lean asyncio protocol
(as in :mod:`.websocket`). One timer (:class:`SockJSServer`) sends
heartbeats and expires sessions for every service.

Errors are plain text as the protocol words them (``Payload expected.``,
``Broken JSON encoding.``, ``Session not found.``, ``Payload too large.``);
``405`` has an ``Allow`` header and no body; a disallowed ``Origin`` gets
``403``.

The per-session ``websocket`` transport also accepts legacy draft-76
("Hixie-76") WebSockets, as sockjs-node does, unless ``--no-sockjs-hixie76``:
the handler writes the ``101`` head, waits (at most :data:`KEY3_TIMEOUT`) for
the client's eight key bytes, which proxies like HAProxy forward only after
the ``101``, and hands the socket over with the 16-byte answer to write
first; :class:`telegraphy.hixie76.ServerConnection` then frames the session.
The raw ``<prefix>/websocket`` stays RFC 6455 only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import socket
import time
from collections.abc import Callable
from typing import Any, ClassVar

import tornado.http1connection
import tornado.ioloop
import tornado.iostream
import tornado.web

from telegraphy import hixie76
from telegraphy.bus import node_bus
from telegraphy.sockjs import (
    PayloadTooLarge,
    RemoteProtocolError,
    SessionHandler,
    SessionNotFound,
    SessionOptions,
    SessionRegistry,
    SessionState,
    SockJSSession,
)
from telegraphy.sockjs.echo import CloseHandler, EchoHandler
from telegraphy.sockjs.frames import (
    EVENTSOURCE_PRELUDE,
    XHR_STREAMING_PRELUDE,
    close_frame,
    decode_form_messages,
    decode_messages,
    decode_websocket_message,
    htmlfile_prelude,
    parse_frame,
    validate_callback,
    wrap_eventsource,
    wrap_htmlfile,
    wrap_jsonp,
    wrap_xhr,
)
from telegraphy.sockjs.http import (
    BUNDLED_CLIENT_NAME,
    NO_CACHE,
    bundled_client,
    cache_headers,
    cors_headers,
    hixie76_handshake,
    iframe_page,
    info_document,
    jsessionid_cookie,
    jsonp_origin,
    origin_allowed,
    preflight_headers,
    websocket_key,
)
from telegraphy.sockjs.wamp import WampSockJSConnection
from telegraphy.websocket import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNSUPPORTED_DATA,
    OP_TEXT,
    ClosedByPeer,
    ClosedByProtocol,
    ServerConnection,
    accept_key,
    frame,
)

from .sockjs_nodes import NodeUnreachable, SockJSNodes
from .websocket import CLOSE_TIMEOUT, OutgoingBuffer, WebSocketUpgradeHandler, linger

__all__ = ["SockJSServer", "SockJSService", "sockjs_server"]

logger = logging.getLogger("telegraphy.gateway.sockjs")

TEXT = "text/plain; charset=UTF-8"
JAVASCRIPT = "application/javascript; charset=UTF-8"
HTML = "text/html; charset=UTF-8"
#: sockjs-protocol-0.3.3: the test server closes streams after 4 KiB (128 KiB by default).
TEST_RESPONSE_LIMIT = 4096
#: Seconds a draft-76 client has to send its eight key bytes after the ``101`` head.
KEY3_TIMEOUT = 10.0

_entropy = random.SystemRandom()


class SockJSService:
    """One SockJS endpoint: its sessions and settings.

    Args:
        prefix: the URL path the service is mounted at (``/sockjs``).
        factory: makes each session's handler (WAMP, echo, …).
        options: session timing and queue budget.
        websocket: whether the WebSocket transports are offered.
        hixie76: whether the per-session websocket transport also accepts
            draft-76 WebSockets.
        cookie_needed: set ``JSESSIONID`` on session responses.
        origins: the gateway's ``--allowed-origins``; ``None`` allows any
            origin (the test services).
        response_limit: bytes after which a streaming response is ended.
        max_post: largest send body, bytes.
        max_message_size: largest WebSocket message, bytes.
        outgoing_buffer: unsent bytes per connection, beyond its largest
            frame, before it is closed as a slow consumer (see
            :class:`~.websocket.OutgoingBuffer`).
        client_url: the sockjs-client script the iframe page loads; empty
            for the bundled copy, served at ``<prefix>/sockjs.min.js``.
        client_integrity: the Subresource Integrity value of ``client_url``
            (computed for the bundled copy).
        raw_websocket: the route target of ``<prefix>/websocket``, or
            ``None`` for raw WebSockets over this core (test services).
        metrics: counts slow consumers, when given.
        admit: called with the client IP of each new session (and each
            WebSocket); ``False`` refuses it with ``429`` (``--connection-rate``).
        flush: writes the handlers' pending output at once (the gateway's
            ``flush``); used so that the answers to messages that came just
            before a close frame or a bad frame go out before the close.
    """

    def __init__(
        self,
        prefix: str,
        factory: Callable[[SockJSSession], SessionHandler],
        *,
        options: SessionOptions,
        websocket: bool = True,
        hixie76: bool = True,
        cookie_needed: bool = False,
        origins: tuple[str, ...] | None = None,
        response_limit: int = 128 * 1024,
        max_post: int = 1024 * 1024,
        max_message_size: int = 1024 * 1024,
        outgoing_buffer: int = 4 * 1024 * 1024,
        client_url: str = "",
        client_integrity: str = "",
        raw_websocket: tuple[type, dict[str, Any]] | None = None,
        metrics: Any = None,
        admit: Callable[[str], bool] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.registry = SessionRegistry(factory, options)
        self.websocket = websocket
        self.hixie76 = hixie76
        self.cookie_needed = cookie_needed
        self.origins = origins
        self.response_limit = response_limit
        self.max_post = max_post
        self.max_message_size = max_message_size
        self.outgoing_buffer = outgoing_buffer
        #: The bundled sockjs-client, when the iframe page loads it from here.
        self.client_script: bytes | None = None
        if not client_url:
            self.client_script, version = bundled_client()
            # Same origin as the page: no integrity attribute (the protocol's page, exactly,
            # whose test suite also wants the URL absolute: "/…" or "http…").
            client_url, client_integrity = f"{self.prefix}/{BUNDLED_CLIENT_NAME}?v={version}", ""
        self.iframe_page, self.iframe_etag = iframe_page(client_url, client_integrity)
        self.raw_websocket = raw_websocket
        self.metrics = metrics
        self.admit = admit
        #: Writes the handlers' pending output now (the gateway batches it to the next loop turn).
        self.flush = flush
        #: How sessions are shared with other gateway nodes, when there is a bus for it.
        self.nodes: SockJSNodes | None = None

    def origin_allowed(self, origin: str | None, host: str) -> bool:
        return self.origins is None or origin_allowed(origin, host, self.origins)

    def slow_consumer(self, peer: str) -> None:
        """Log and count a connection closed as a slow consumer."""
        logger.warning("closing slow sockjs consumer %s: over %d unsent bytes", peer, self.outgoing_buffer)
        if self.metrics is not None:
            self.metrics.slow_consumers += 1

    def routes(self) -> list[tuple[str, type, dict[str, Any]]]:
        """Return the Tornado routes of the service."""
        base = re.escape(self.prefix)
        session = base + r"/[^/.]+/([^/.]{1,256})/"
        kwargs = {"service": self}
        raw = self.raw_websocket or (RawWebSocketHandler, kwargs)
        return [
            (base + r"/?", GreetingHandler, kwargs),
            (base + r"/info", InfoHandler, kwargs),
            (base + r"/iframe[0-9a-z_.\-]*\.html", IframeHandler, kwargs),
            (base + "/" + re.escape(BUNDLED_CLIENT_NAME), ClientScriptHandler, kwargs),
            (base + r"/websocket", raw[0], raw[1]),
            (session + "xhr", XhrHandler, kwargs),
            (session + "xhr_send", XhrSendHandler, kwargs),
            (session + "xhr_streaming", XhrStreamingHandler, kwargs),
            (session + "eventsource", EventSourceHandler, kwargs),
            (session + "htmlfile", HtmlFileHandler, kwargs),
            (session + "jsonp", JsonpHandler, kwargs),
            (session + "jsonp_send", JsonpSendHandler, kwargs),
            (session + "websocket", WebSocketHandler, kwargs),
        ]


class SockJSServer:
    """Every SockJS service of a gateway, and the one timer driving their sessions."""

    def __init__(self, services: list[SockJSService], nodes: SockJSNodes | None = None) -> None:
        self.services = services
        self.nodes = nodes
        # Heartbeats and expiry are checked a few times per interval.
        shortest = min(min(s.registry.options.heartbeat, s.registry.options.disconnect_delay) for s in services)
        self.tick_interval = max(0.05, min(1.0, shortest / 4))
        self._timer = tornado.ioloop.PeriodicCallback(self.tick, self.tick_interval * 1000)

    def start(self) -> None:
        self._timer.start()
        if self.nodes is not None:
            self.nodes.start()

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> None:
        now = time.monotonic()
        for service in self.services:
            service.registry.expire(now)

    def routes(self) -> list[tuple[str, type, dict[str, Any]]]:
        return [route for service in self.services for route in service.routes()]


def sockjs_server(gateway: Any) -> SockJSServer | None:
    """Return the SockJS services ``gateway.config`` asks for (not started), or None."""
    config = gateway.config
    options = SessionOptions(
        heartbeat=config.sockjs_heartbeat,
        disconnect_delay=config.sockjs_disconnect_delay,
        max_queue=config.outgoing_buffer,
        bind_peer=config.sockjs_bind_peer,
    )
    common: dict[str, Any] = {
        "options": options,
        "max_post": config.max_message_size,
        "max_message_size": config.max_message_size,
        "outgoing_buffer": config.outgoing_buffer,
        "client_url": config.sockjs_client_url,
        "client_integrity": config.sockjs_client_integrity,
        "hixie76": config.sockjs_hixie76,
    }
    services = []
    if config.sockjs:

        def wamp(session: SockJSSession) -> WampSockJSConnection:
            return WampSockJSConnection(session, gateway, time.time, min_auth_id=config.sockjs_auth_id_length)

        services.append(
            SockJSService(
                config.sockjs_path,
                wamp,
                cookie_needed=config.sockjs_cookie,
                origins=config.allowed_origins,
                response_limit=config.sockjs_response_limit,
                raw_websocket=(WebSocketUpgradeHandler, {"gateway": gateway}),
                metrics=gateway.metrics,
                admit=getattr(gateway, "admit", None),
                flush=getattr(gateway, "flush", None),
                **common,
            )
        )
    if config.sockjs_test_endpoints:
        # The services sockjs-protocol-0.3.3's test suite expects, with permissive CORS.
        for prefix, factory, websocket, cookie_needed in (
            ("/echo", EchoHandler, True, False),
            ("/close", CloseHandler, True, False),
            ("/disabled_websocket_echo", EchoHandler, False, False),
            ("/cookie_needed_echo", EchoHandler, True, True),
        ):
            services.append(
                SockJSService(prefix, factory, websocket=websocket, cookie_needed=cookie_needed, response_limit=TEST_RESPONSE_LIMIT, **common)
            )
    if not services:
        return None
    nodes = None
    bus = node_bus(getattr(gateway, "bus", None))
    if bus is not None:
        # Several nodes: polling clients need no sticky sessions.
        nodes = SockJSNodes(bus, services, metrics=gateway.metrics)
        gateway.sockjs_nodes = nodes
    return SockJSServer(services, nodes)


# Handlers ---------------------------------------------------------------------


class SockJSHandler(tornado.web.RequestHandler):
    """Base: origin check, plain-text errors, CORS/caching/cookie helpers."""

    METHODS: ClassVar[tuple[str, ...]] = ("GET",)
    service: SockJSService
    #: Set when a 5xx answers bad input, as the protocol prescribes (logged as a client error).
    client_error = False

    def initialize(self, service: SockJSService) -> None:
        self.service = service

    def set_default_headers(self) -> None:
        self.clear_header("Server")

    def compute_etag(self) -> str | None:
        return None  # only the iframe page and the bundled script are cacheable

    def prepare(self) -> None:
        if not self.service.origin_allowed(self.origin(), self.request.host):
            raise tornado.web.HTTPError(403)

    def origin(self) -> str | None:
        """The origin the allow-list applies to: the request's ``Origin``."""
        return self.request.headers.get("Origin")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, RemoteProtocolError):
            logger.debug("sockjs %s %s refused: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.clear_header("Content-Type")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.METHODS))
            self.finish()
            return
        if isinstance(exc, RemoteProtocolError):
            self.set_status(exc.status)
            self.client_error = True
            body = exc.body
        else:
            body = {403: "Origin not allowed.", 404: "Not found.", 503: "Session unavailable."}.get(status_code, "Internal error.")
            if status_code == 503:
                self.set_header("Retry-After", "1")
        if status_code != 403:
            self.cors()
        self.set_header("Content-Type", TEXT)
        self.set_header("Cache-Control", NO_CACHE)
        self.finish(body)

    def admitted(self) -> bool:
        """Apply the per-IP connection rate to a new session or WebSocket; answer 429 when over it."""
        admit = self.service.admit
        if admit is None or admit(str(self.request.remote_ip)):
            return True
        self.set_status(429)
        self.cors()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", NO_CACHE)
        self.set_header("Retry-After", "1")
        self.finish('{"error":"too_many_connections","detail":"too many new connections from this address: retry later"}')
        return False

    async def locate(self, session_id: str, *, create: bool) -> str | None:
        """The node holding a session this node lacks (see :meth:`.SockJSNodes.locate`); ``503`` when the bus fails."""
        assert self.service.nodes is not None
        try:
            return await self.service.nodes.locate(self.service, session_id, create=create)
        except NodeUnreachable:
            raise tornado.web.HTTPError(503) from None

    def cors(self) -> None:
        for name, value in cors_headers(self.request.headers.get("Origin")):
            self.set_header(name, value)

    def session_headers(self, content_type: str) -> None:
        """Headers of every session response: type, no caching, ``JSESSIONID`` when asked."""
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", NO_CACHE)
        if self.service.cookie_needed:
            self.set_header("Set-Cookie", jsessionid_cookie(self.get_cookie("JSESSIONID")))

    def options(self, *args: str) -> None:
        if "OPTIONS" not in self.METHODS:
            raise tornado.web.HTTPError(405)
        self.set_status(204)
        request_headers = self.request.headers.get("Access-Control-Request-Headers")
        for name, value in preflight_headers(self.request.headers.get("Origin"), self.METHODS, request_headers, time.time()):
            self.set_header(name, value)
        self.finish()


class GreetingHandler(SockJSHandler):
    def get(self) -> None:
        self.set_header("Content-Type", TEXT)
        self.finish("Welcome to SockJS!\n")


class InfoHandler(SockJSHandler):
    METHODS = ("OPTIONS", "GET")

    def get(self) -> None:
        self.cors()
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", NO_CACHE)
        service = self.service
        self.finish(info_document(websocket=service.websocket, cookie_needed=service.cookie_needed, entropy=_entropy.getrandbits(32)))


class IframeHandler(SockJSHandler):
    """The iframe page: cacheable for a year, ``304`` on a matching ``If-None-Match``."""

    def compute_etag(self) -> str:
        return self.service.iframe_etag

    def get(self) -> None:
        for name, value in cache_headers(time.time()):
            self.set_header(name, value)
        self.set_header("Content-Type", HTML)
        self.finish(self.service.iframe_page)


class ClientScriptHandler(SockJSHandler):
    """The bundled sockjs-client the iframe page loads (``?v=`` busts caches): cacheable for a year."""

    def compute_etag(self) -> str | None:
        return None if self.service.client_script is None else '"' + bundled_client()[1] + '"'

    def get(self) -> None:
        if self.service.client_script is None:
            raise tornado.web.HTTPError(404)  # the iframe page loads it from --sockjs-client-url
        self.cors()
        for name, value in cache_headers(time.time()):
            self.set_header(name, value)
        self.set_header("Content-Type", JAVASCRIPT)
        self.finish(self.service.client_script)


class HttpReceiver:
    """A receiving request as the session sees it (see :class:`telegraphy.sockjs.Receiver`)."""

    __slots__ = ("done", "handler", "outgoing", "prelude", "response_limit", "slow", "wrap")

    def __init__(self, handler: ReceivingHandler, wrap: Callable[[bytes], bytes], response_limit: float, prelude: bytes = b"") -> None:
        self.handler = handler
        self.wrap = wrap
        self.response_limit = response_limit
        #: The streaming prelude, until it is sent (its own chunk, before the first frame).
        self.prelude = prelude
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: The slow-consumer rule of a streaming response.
        self.outgoing = OutgoingBuffer(handler.service.outgoing_buffer)
        #: Set once the response is being closed as a slow consumer.
        self.slow = False

    def start(self) -> None:
        """Send the prelude now, if it was not yet."""
        prelude, self.prelude = self.prelude, b""
        if prelude and not self.done.done():
            self.handler.write(prelude)
            self.handler.flush()

    def write_frame(self, frame: bytes) -> int:
        data = self.wrap(frame)
        if not self.done.done():
            self.start()
            handler = self.handler
            handler.write(data)
            if self.response_limit:  # streaming: each frame goes out now
                stream = handler.http_connection().stream
                outgoing = self.outgoing
                # No pause signal on a Tornado stream: every write counts, from the
                # last time the stream was empty (more lenient, never stricter).
                if not _unsent(stream):
                    outgoing.drained()
                outgoing.wrote(len(data))
                handler.flush()
                if not self.slow and outgoing.over(_unsent(stream)):
                    self.slow = True
                    handler.close_slow_consumer()
        return len(data)

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _unsent(stream: tornado.iostream.IOStream) -> int:
    """Bytes written to ``stream`` that the socket has not taken yet."""
    # IOStream keeps these two counters (since Tornado 5) but offers no accessor.
    return stream._total_write_index - stream._total_write_done_index


class ReceivingHandler(SockJSHandler):
    """Base of the transports that receive: attach to the session, wait until it lets go.

    A session held by another gateway node is served from there
    (:mod:`.sockjs_nodes`): this handler keeps the response, the frames come
    over the bus.
    """

    receiver: HttpReceiver | None = None
    session: SockJSSession | None = None
    #: The number of the forwarded request, when the session lives on another node.
    forwarded: int | None = None

    async def receive(self, session_id: str, wrap: Callable[[bytes], bytes], *, prelude: bytes = b"") -> None:
        service = self.service
        streaming = bool(prelude)
        peer = str(self.request.remote_ip)
        # A session opened from another address answers 404, as if there were none.
        session = service.registry.get(session_id, peer)
        owner = None
        nodes = service.nodes
        if session is None and nodes is not None:
            owner = await self.locate(session_id, create=True)
            if owner == nodes.node:
                owner = None
                session = service.registry.get(session_id, peer)  # opened meanwhile by another request?
        if session is None and owner is None and not self.admitted():
            return
        # The prelude goes out once the session took the receiver (a refusal is a 404 instead).
        self.receiver = receiver = HttpReceiver(self, wrap, service.response_limit if streaming else 0, prelude)
        now = time.monotonic()
        if owner is not None:
            assert nodes is not None
            self.forwarded = forwarded = nodes.attach(owner, service, session_id, receiver, peer)
            if not await nodes.accepted(forwarded):
                # The owner refused: the session was opened from another address.
                self.receiver = None
                self.clear()
                raise SessionNotFound(session_id)
        else:
            self.session = session = service.registry.open(session_id, now, peer=peer)
        receiver.start()
        if session is not None:
            session.attach(receiver, now)
        await receiver.done
        if receiver.slow:
            # The close frame waits behind what the client did not read: a
            # client that reads nothing more is dropped after CLOSE_TIMEOUT.
            try:
                await asyncio.wait_for(self.http_connection().stream.write(b""), CLOSE_TIMEOUT)
            except (asyncio.TimeoutError, tornado.iostream.StreamClosedError):
                self.http_connection().close()
                return
        if streaming and self.request.version == "HTTP/1.0":
            # No chunked encoding in HTTP/1.0: the response ends with the connection.
            try:
                await self.flush()
            except tornado.iostream.StreamClosedError:
                pass
            self.http_connection().close()

    def http_connection(self) -> tornado.http1connection.HTTP1Connection:
        connection = self.request.connection
        assert isinstance(connection, tornado.http1connection.HTTP1Connection)
        return connection

    def close_slow_consumer(self) -> None:
        """End the response with ``c[1008,"slow consumer: outgoing buffer full"]`` after what it carries, and close the session."""
        receiver = self.receiver
        if receiver is None or receiver.done.done():
            return
        self.service.slow_consumer(str(self.request.remote_ip))
        if self.session is not None:
            # Writes the close frame to this response, ends it, and ends the WAMP session.
            self.session.close(*CLOSE_SLOW_CONSUMER)
            return
        # The session lives on another node: close this response here; the owner hears the receiver is gone.
        receiver.write_frame(close_frame(*CLOSE_SLOW_CONSUMER))
        receiver.finish()
        if self.forwarded is not None and self.service.nodes is not None:
            self.service.nodes.detach(self.forwarded)

    def on_connection_close(self) -> None:
        receiver, session = self.receiver, self.session
        if receiver is None or receiver.done.done():
            return
        if session is not None:
            session.detach(receiver, time.monotonic())
        elif self.forwarded is not None and self.service.nodes is not None:
            self.service.nodes.detach(self.forwarded)
        receiver.finish()

    def callback(self) -> bytes:
        name = self.get_query_argument("c", None, strip=False)
        if name is None:
            name = self.get_query_argument("callback", None, strip=False)
        return validate_callback(name)


class XhrHandler(ReceivingHandler):
    METHODS = ("OPTIONS", "POST")

    async def post(self, session_id: str) -> None:
        self.cors()
        self.session_headers(JAVASCRIPT)
        await self.receive(session_id, wrap_xhr)


class XhrStreamingHandler(ReceivingHandler):
    METHODS = ("OPTIONS", "POST")

    async def post(self, session_id: str) -> None:
        self.cors()
        self.session_headers(JAVASCRIPT)
        await self.receive(session_id, wrap_xhr, prelude=XHR_STREAMING_PRELUDE)


class EventSourceHandler(ReceivingHandler):
    async def get(self, session_id: str) -> None:
        # A cross-origin EventSource is a CORS request: without these the browser drops every frame.
        self.cors()
        self.session_headers("text/event-stream")
        await self.receive(session_id, wrap_eventsource, prelude=EVENTSOURCE_PRELUDE)


class HtmlFileHandler(ReceivingHandler):
    async def get(self, session_id: str) -> None:
        callback = self.callback()
        self.session_headers(HTML)
        await self.receive(session_id, wrap_htmlfile, prelude=htmlfile_prelude(callback))


class JsonpHandler(ReceivingHandler):
    def origin(self) -> str | None:
        return jsonp_origin(self.request.headers.get("Origin"), self.request.headers.get("Referer"))

    async def get(self, session_id: str) -> None:
        callback = self.callback()
        self.session_headers(JAVASCRIPT)
        await self.receive(session_id, lambda frame: wrap_jsonp(callback, frame))


@tornado.web.stream_request_body
class SendHandler(SockJSHandler):
    """Base of ``xhr_send`` and ``jsonp_send``: a bounded body for an existing session."""

    METHODS: ClassVar[tuple[str, ...]] = ("OPTIONS", "POST")

    def prepare(self) -> None:
        super().prepare()
        self._chunks: list[bytes] = []
        self._size = 0
        # The limit is enforced here with the protocol's answer, not by
        # Tornado's server-wide one (which drops the connection).
        self.request.connection.set_max_body_size(2**62)  # type: ignore[union-attr]
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit():
            self._grow(int(declared))

    def _grow(self, size: int) -> None:
        if size > self.service.max_post:
            raise PayloadTooLarge(size, self.service.max_post)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        try:
            self._grow(self._size)
        except RemoteProtocolError as exc:
            self.send_error(exc.status, exc_info=(type(exc), exc, None))
            return
        self._chunks.append(chunk)

    def _messages(self, decode: Callable[[bytes], list[str]]) -> list[str]:
        """Decode the body read so far (raising the protocol's errors), and let it go."""
        messages = decode(b"".join(self._chunks))
        self._chunks = []
        return messages

    async def deliver(self, session_id: str, decode: Callable[[bytes], list[str]]) -> None:
        """Hand the body's messages to the session, here or on the node holding it."""
        service = self.service
        peer = str(self.request.remote_ip)
        # A session opened from another address answers 404, as if there were none.
        session = service.registry.get(session_id, peer)
        if session is not None:
            session.receive(self._messages(decode), time.monotonic())
            return
        nodes = service.nodes
        owner = None if nodes is None else await self.locate(session_id, create=False)
        if owner is None or nodes is None or owner == nodes.node:
            raise SessionNotFound(session_id)
        try:
            found = await nodes.send(owner, service, session_id, self._messages(decode), peer)
        except NodeUnreachable:
            raise tornado.web.HTTPError(503) from None
        if not found:
            raise SessionNotFound(session_id)


class XhrSendHandler(SendHandler):
    async def post(self, session_id: str) -> None:
        await self.deliver(session_id, decode_messages)
        self.cors()
        self.session_headers(TEXT)
        self.set_status(204)
        # Flushed by hand: finish() would drop Content-Type from a 204, and
        # Firefox then parses the empty body as XML and complains.
        self.flush()


class JsonpSendHandler(SendHandler):
    METHODS = ("POST",)

    def origin(self) -> str | None:
        # A form POST: ``Origin: null`` under the page's referrer policy; the Referer, if any, says more.
        return jsonp_origin(self.request.headers.get("Origin"), self.request.headers.get("Referer"))

    async def post(self, session_id: str) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        form = content_type == "application/x-www-form-urlencoded"
        await self.deliver(session_id, decode_form_messages if form else decode_messages)
        self.session_headers(TEXT)
        # Konqueror mishandles 204 here (sockjs-protocol-0.3.3): "ok" it is.
        self.finish("ok")


class WebSocketHandler(SockJSHandler):
    """``<prefix>/<server>/<session>/websocket``: SockJS framing over a WebSocket (RFC 6455, or draft-76)."""

    raw = False

    async def get(self, session_id: str = "") -> None:
        if not self.service.websocket:
            raise tornado.web.HTTPError(404)
        if not self.admitted():
            return
        if not self.raw and self.service.hixie76 and hixie76.offered(self.request.headers):
            await self._hixie76()
            return
        key = websocket_key(self.request.headers)
        response = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode("ascii")
        self._hand_over(self.detach(), response, ServerConnection(self.service.max_message_size))

    async def _hixie76(self) -> None:
        """Draft-76: the head now, the 16-byte answer once the client's key3 arrived (draft §5.2)."""
        request = self.request
        scheme = "wss" if request.protocol == "https" else "ws"
        handshake = hixie76_handshake(request.headers, f"{scheme}://{request.host}{request.uri}")
        stream = self.detach()
        try:
            await stream.write(handshake.response_head())
            key3 = await asyncio.wait_for(stream.read_bytes(hixie76.KEY3_SIZE), KEY3_TIMEOUT)
        except (tornado.iostream.StreamClosedError, asyncio.TimeoutError):
            logger.debug("sockjs draft-76 websocket from %s: no key3", request.remote_ip)
            stream.close()
            return
        # A client sends nothing more before it has checked the answer (draft §4.1),
        # so nothing is left in the stream's buffer.
        self._hand_over(stream, handshake.response(key3), hixie76.ServerConnection(self.service.max_message_size))

    def _hand_over(self, stream: tornado.iostream.IOStream, response: bytes, connection: WebSocketConnection) -> None:
        service, peer, raw = self.service, str(self.request.remote_ip), self.raw
        # As in .websocket: serve a duplicate of the socket from asyncio.
        fd = os.dup(stream.socket.fileno())
        stream.close()
        sock = socket.socket(fileno=fd)

        def factory() -> SockJSWebSocket:
            return SockJSWebSocket(service, response, peer, raw, connection)

        task = asyncio.ensure_future(asyncio.get_running_loop().connect_accepted_socket(factory, sock))
        task.add_done_callback(_handover_done)


class RawWebSocketHandler(WebSocketHandler):
    """``<prefix>/websocket`` of the test services: one WebSocket message per message, no framing."""

    raw = True


def _handover_done(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("could not serve an upgraded sockjs websocket: %r", task.exception())


#: What frames a SockJS WebSocket: RFC 6455, or draft-76 on the per-session transport.
WebSocketConnection = ServerConnection | hixie76.ServerConnection


def _rfc6455_text(payload: bytes) -> bytes:
    return frame(OP_TEXT, payload)


class SockJSWebSocket(asyncio.Protocol):
    """One WebSocket carrying one SockJS session (bound to it); also its receiver.

    ``response`` is written first: the ``101`` response (RFC 6455), or the
    16-byte handshake answer (draft-76, whose head the handler wrote).
    """

    response_limit = math.inf

    def __init__(self, service: SockJSService, response: bytes, peer: str, raw: bool, connection: WebSocketConnection) -> None:
        self.service = service
        self.peer = peer
        self.raw = raw
        self.connection = connection
        self._text = hixie76.frame if isinstance(connection, hixie76.ServerConnection) else _rfc6455_text
        self.session: SockJSSession | None = None
        self._response = response
        self._transport: asyncio.Transport | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._close = (CLOSE_NORMAL, "")
        self._outgoing = OutgoingBuffer(service.outgoing_buffer)
        #: Answering what came before the peer's close or protocol error.
        self._answering = False
        #: After a protocol error: what the peer still sends is read and dropped.
        self._draining = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=self.service.outgoing_buffer)
        transport.write(self._response)
        now = time.monotonic()
        self.session = self.service.registry.open_bound(now, peer=self.peer)
        self.session.attach(self, now)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        try:
            messages = self.connection.receive_data(data)
        except (ClosedByPeer, ClosedByProtocol) as exc:
            # What came complete before the close still counts (RFC 6455 §5.5.1),
            # and so do the answers to it: they go out before the close frame.
            self._answering = True
            try:
                self._handle(exc.messages, after_close=True)
                if exc.messages and self.service.flush is not None:
                    self.service.flush()
            finally:
                self._answering = False
            self._write_control()
            if isinstance(exc, ClosedByProtocol) and self._transport is not None:
                self._close_timer = linger(self._transport, self._end)
                if self._close_timer is not None:
                    self._draining = True
                    return
            self._end()
            return
        self._write_control()
        self._handle(messages)

    def _handle(self, messages: list[Any], after_close: bool = False) -> None:
        now = time.monotonic()
        for message in messages:
            session = self.session
            if session is None or (self.connection.closing and not after_close):
                return
            if isinstance(message.data, bytes):
                self._close_socket(CLOSE_UNSUPPORTED_DATA, "binary messages are not supported")
                return
            if self.raw:
                session.receive([message.data], now)
                continue
            try:
                session.receive(decode_websocket_message(message.data), now)
            except RemoteProtocolError as exc:
                # sockjs-protocol-0.3.3: broken JSON ends the connection abruptly.
                logger.info("sockjs websocket from %s: %s", self.peer, exc)
                self._close_socket(CLOSE_PROTOCOL_ERROR, "Broken framing.")
                return

    def pause_writing(self) -> None:
        # Called from within transport.write(): the writer counts its frames and judges next.
        self._outgoing.paused = True

    def resume_writing(self) -> None:
        self._outgoing.drained()

    def _check_backlog(self) -> None:
        """Close a slow consumer (see :class:`~.websocket.OutgoingBuffer`): ``c[1008,…]`` after what is queued, then the WebSocket close."""
        transport, session = self._transport, self.session
        if transport is None or session is None or session.state is not SessionState.OPEN or self.connection.closing:
            return
        if not self._outgoing.over(transport.get_write_buffer_size()):
            return
        self.service.slow_consumer(self.peer)
        # The session writes its close frame here and finishes this receiver,
        # which sends the WebSocket close; a peer that reads nothing never
        # gets them, and is dropped after CLOSE_TIMEOUT.
        session.close(*CLOSE_SLOW_CONSUMER)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._transport = None
        session, self.session = self.session, None
        if session is not None:
            session.detach(self, time.monotonic())

    # Receiver --------------------------------------------------------------------

    def write_frame(self, data: bytes) -> int:
        transport = self._transport
        if transport is None or (self.connection.closing and not self._answering):
            return len(data)
        if not self.raw:
            self._write(transport, [self._text(data)])
            return len(data)
        kind, payload = parse_frame(data)
        if kind == "a":
            self._write(transport, [self._text(text.encode("utf-8")) for text in payload])
        elif kind == "c":
            self._close = (payload[0], payload[1])
        return len(data)

    def _write(self, transport: asyncio.Transport, frames: list[bytes]) -> None:
        """Write WebSocket frames in one go, under the slow-consumer rule."""
        if not frames:
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        if self._outgoing.paused:
            self._outgoing.wrote(max(map(len, frames)))
            self._check_backlog()

    def finish(self) -> None:
        self._close_socket(*self._close)

    # Closing ---------------------------------------------------------------------

    def _close_socket(self, code: int, reason: str) -> None:
        """Send a close frame; close the socket when the peer answers or after a timeout."""
        if self._transport is None or self.connection.closing:
            return
        self.connection.send_close(code, reason)
        self._write_control()
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._end, True)

    def _write_control(self) -> None:
        data = self.connection.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def _end(self, abort: bool = False) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort() if abort else transport.close()
