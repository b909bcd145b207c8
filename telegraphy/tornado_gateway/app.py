"""Wiring of the gateway: the Tornado application, the server, the signals.

:func:`make_app` builds the application around a gateway object;
:func:`serve` runs a whole gateway until SIGTERM or SIGINT::

    config = Config.from_args(argv, os.environ)
    config.check()
    asyncio.run(serve(config))

Routes: the WAMP WebSocket endpoint(s) from ``gateway.websocket_routes()``
(at ``config.ws_path``), ``POST /publish``, ``POST /revoke``, ``GET /health``, ``GET /metrics``,
the management API (``GET /sessions``, ``/subscriptions``, ``/subscribers``
and its alias ``/subscriptors``, see :mod:`.management`), the SockJS
endpoints (at ``config.sockjs_path``, see :mod:`.sockjs`);
every other path is a JSON 404. The HTTP server itself
(:class:`.server.GatewayHTTPServer`) decides client addresses behind
``--trusted-proxies`` and answers malformed requests in JSON.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tornado.web

from telegraphy.tornado_gateway.config import Config
from telegraphy.tornado_gateway.http import (
    HealthHandler,
    MetricsHandler,
    NotFoundHandler,
    PublishHandler,
    RevokeHandler,
    SessionsHandler,
    SubscribersHandler,
    SubscriptionsHandler,
)
from telegraphy.tornado_gateway.metrics import Metrics
from telegraphy.tornado_gateway.server import GatewayHTTPServer, TrustedProxies, listen_sockets

if TYPE_CHECKING:
    from telegraphy.tornado_gateway.gateway import Gateway

__all__ = ["LISTENING_PREFIX", "make_app", "serve"]

logger = logging.getLogger("telegraphy.gateway")
access_log = logging.getLogger("tornado.access")

#: The one line :func:`serve` prints on stdout, followed by the URL.
LISTENING_PREFIX = "Telegraphy gateway listening on "

#: Bytes Tornado accepts beyond ``max_body_size``: the publish handler
#: enforces the real limit itself, with a JSON 413.
BODY_SLACK = 64 * 1024
#: Seconds an idle keep-alive HTTP connection is kept open.
IDLE_CONNECTION_TIMEOUT = 120.0
#: Seconds a client may take to send a request body.
BODY_TIMEOUT = 60.0
#: Seconds :func:`serve` waits for the gateway's shutdown, then for
#: open HTTP connections to close.
SHUTDOWN_TIMEOUT = 10.0


def make_app(gateway: Gateway, **settings: Any) -> tornado.web.Application:
    """Return the Tornado application serving ``gateway``.

    Args:
        gateway: the gateway.
        settings: further Tornado application settings (they win).
    """
    routes: list[Any] = list(gateway.websocket_routes())
    routes += [
        (r"/publish", PublishHandler, {"gateway": gateway}),
        (r"/revoke", RevokeHandler, {"gateway": gateway}),
        (r"/health", HealthHandler, {"gateway": gateway}),
        (r"/metrics", MetricsHandler, {"gateway": gateway}),
        (r"/sessions", SessionsHandler, {"gateway": gateway}),
        (r"/subscriptions", SubscriptionsHandler, {"gateway": gateway}),
        (r"/(?:subscribers|subscriptors)", SubscribersHandler, {"gateway": gateway}),
    ]
    # Imported here, like the gateway in serve(): it pulls in the WAMP core.
    from telegraphy.tornado_gateway.sockjs import sockjs_server

    sockjs = sockjs_server(gateway)
    if sockjs is not None:
        sockjs.start()
        routes += sockjs.routes()
    app_settings: dict[str, Any] = {
        "default_handler_class": NotFoundHandler,
        "log_function": _log_request,
    }
    app_settings.update(settings)
    return tornado.web.Application(routes, **app_settings)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: successes at debug, client errors at info, server errors at error.

    A handler whose ``client_error`` attribute is true answered bad input
    with a 5xx because its protocol says so (SockJS: "Payload expected."):
    that is logged as a client error.
    """
    status = handler.get_status()
    if status < 400:
        level = logging.DEBUG
    elif status < 500 or getattr(handler, "client_error", False):
        level = logging.INFO
    else:
        level = logging.ERROR
    if access_log.isEnabledFor(level):
        elapsed_ms = 1000.0 * handler.request.request_time()
        access_log.log(level, "%d %s %.2fms", status, handler._request_summary(), elapsed_ms)


def _display_url(host: str, port: int) -> str:
    if not host:
        host = "0.0.0.0"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(config: Config, *, on_listening: Callable[[str], None] | None = None) -> None:
    """Run a gateway with ``config`` until SIGTERM or SIGINT, then shut down.

    Prints exactly one line on stdout, ``Telegraphy gateway listening on
    http://HOST:PORT`` with the port actually bound (``--port 0`` picks one).
    On a signal: stop accepting connections, say GOODBYE to every session
    (``gateway.shutdown()``), close the remaining HTTP connections, return.

    Args:
        config: the settings; :meth:`Config.check` must pass.
        on_listening: called with the URL instead of printing the line.

    Raises:
        ConfigError: when the settings do not pass :meth:`Config.check`.
        OSError: when the address cannot be bound.
    """
    config.check()
    # Imported here: the gateway pulls in the WAMP core, which the rest of
    # this module (and the config tests) do not need.
    from telegraphy.tornado_gateway.gateway import Gateway

    config = config.with_secret()
    metrics = Metrics()
    gateway = Gateway(config, metrics)
    await gateway.start()
    app = make_app(gateway)
    # Forwarded headers (X-Forwarded-For, X-Real-IP) count only from
    # --trusted-proxies: anyone else could write them.
    proxies = TrustedProxies(config.trusted_proxies)
    if any(network.prefixlen == 0 for network in proxies.networks):
        logger.warning("--trusted-proxies includes every address: any client can choose the address the gateway sees")
    server = GatewayHTTPServer(
        app,
        trusted_proxies=proxies,
        max_body_size=config.max_body_size + BODY_SLACK,
        idle_connection_timeout=IDLE_CONNECTION_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
    )
    sockets = listen_sockets(config.host, config.port, config.backlog)
    server.add_sockets(sockets)
    url = _display_url(config.host, sockets[0].getsockname()[1])
    ws_url = "ws" + url[len("http") :] + config.ws_path
    logger.info("realm %r, WebSocket at %s, publish at %s/publish", config.realm, ws_url, url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signums = (signal.SIGTERM, signal.SIGINT)
    for signum in signums:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        # Only now: whoever reads this line may signal us at once.
        if on_listening is not None:
            on_listening(url)
        else:
            print(f"{LISTENING_PREFIX}{url}", flush=True)
        await stopping.wait()
    finally:
        for signum in signums:
            loop.remove_signal_handler(signum)
        server.stop()
        try:
            await asyncio.wait_for(gateway.shutdown(), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            logger.warning("gateway shutdown took over %.0f s, closing anyway", SHUTDOWN_TIMEOUT)
        except Exception:
            logger.exception("gateway shutdown failed, closing anyway")
        try:
            await asyncio.wait_for(server.close_all_connections(), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            logger.warning("open HTTP connections did not close within %.0f s", SHUTDOWN_TIMEOUT)
        logger.info("gateway stopped")
