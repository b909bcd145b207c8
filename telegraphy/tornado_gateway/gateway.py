"""The gateway: one WAMP router shared by the WebSocket transport and the HTTP publish API.

:class:`Gateway` owns the :class:`~telegraphy.wamp.Router`, the open
connections and the flush loop: when the router reports output, one callback
per event-loop iteration writes every dirty connection's frames in a single
write each. Create it inside a running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from telegraphy.wamp import Authenticator, Router

from .websocket import CLOSE_GOING_AWAY, WampWebSocketHandler

if TYPE_CHECKING:
    from .config import Config
    from .metrics import Metrics

__all__ = ["Gateway"]

logger = logging.getLogger("telegraphy.gateway")

#: How long shutdown waits for peers to answer GOODBYE before closing them.
SHUTDOWN_GRACE = 2.0


class Gateway:
    """The running gateway's state.

    Args:
        config: the gateway settings (must carry a secret).
        metrics: the counters; the router increments the event counters directly.
    """

    def __init__(self, config: Config, metrics: Metrics) -> None:
        if not config.secret:
            raise ValueError("the gateway needs a secret")
        self.config = config
        self.metrics = metrics
        self.started_at = time.monotonic()
        self.connections: set[WampWebSocketHandler] = set()
        authenticator = Authenticator(config.secret, allow_anonymous=config.allow_anonymous, leeway=config.jwt_leeway)
        self.router = Router(authenticator, (config.realm,), stats=metrics, on_output=self._schedule_flush)
        self._loop = asyncio.get_event_loop()
        self._flush_scheduled = False

    # Output ------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending frames of every connection the router marked dirty."""
        self._flush_scheduled = False
        for session in self.router.take_dirty():
            frames = session.data_to_send()
            handler = session.transport
            if frames and handler is not None:
                handler.write_frames(frames)
                if session.close_request is not None:
                    handler.close_connection(*session.close_request)

    # Connections -------------------------------------------------------------

    def connection_opened(self, handler: WampWebSocketHandler) -> None:
        self.connections.add(handler)
        self.metrics.connections_opened += 1

    def connection_closed(self, handler: WampWebSocketHandler) -> None:
        self.connections.discard(handler)
        self.metrics.connections_closed += 1

    def websocket_routes(self) -> list[tuple[str, type, dict[str, Any]]]:
        """Return the Tornado routes of the WAMP WebSocket endpoint."""
        return [(self.config.ws_path, WampWebSocketHandler, {"gateway": self})]

    def gauges(self) -> dict[str, float]:
        """Return the current connection, session, subscription and registration counts."""
        return {"connections": len(self.connections), **self.router.counts()}

    # Publishing --------------------------------------------------------------

    def publish_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Publish validated events, in order; return their ids (``meta.id``)."""
        publish = self.router.publish_event
        return [publish(event) for event in events]

    # Shutdown ----------------------------------------------------------------

    async def shutdown(self) -> None:
        """Say GOODBYE to every session, wait briefly for the answers, then close what is left."""
        self.router.shutdown()
        self.flush()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for handler in list(self.connections):
            handler.close_connection(CLOSE_GOING_AWAY, "gateway shutting down")
        logger.info("gateway stopped: %d connections closed at shutdown", len(self.connections))
