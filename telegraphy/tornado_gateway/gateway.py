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

import tornado.ioloop

from telegraphy.wamp import Authenticator, Router, SessionState
from telegraphy.websocket import CLOSE_GOING_AWAY, CLOSE_POLICY

from .websocket import WampWebSocketProtocol, WebSocketUpgradeHandler

if TYPE_CHECKING:
    from telegraphy.bus import Bus
    from telegraphy.store import Store

    from .config import Config
    from .metrics import Metrics
    from .persistence import Persistence

__all__ = ["Gateway"]

logger = logging.getLogger("telegraphy.gateway")

#: Seconds between history trims (retention by age and size).
TRIM_INTERVAL = 60.0

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
        self.connections: set[WampWebSocketProtocol] = set()
        authenticator = Authenticator(config.secret, allow_anonymous=config.allow_anonymous, leeway=config.jwt_leeway)
        self.router = Router(authenticator, (config.realm,), stats=metrics, on_output=self._schedule_flush)
        self._loop = asyncio.get_event_loop()
        self._flush_scheduled = False
        self.store: Store | None = None
        self.persistence: Persistence | None = None
        self.bus: Bus | None = None
        self._trimmer: tornado.ioloop.PeriodicCallback | None = None
        # One ping loop for all connections rather than a timer each.
        self._pinger: tornado.ioloop.PeriodicCallback | None = None
        if config.ping_interval:
            self._pinger = tornado.ioloop.PeriodicCallback(self.ping, config.ping_interval * 1000)
            self._pinger.start()

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
            connection = session.transport
            if frames and connection is not None:
                connection.write_frames(frames)
                if session.close_request is not None:
                    connection.close_connection(*session.close_request)

    # Connections -------------------------------------------------------------

    def connection_opened(self, connection: WampWebSocketProtocol) -> None:
        self.connections.add(connection)
        self.metrics.connections_opened += 1

    def connection_closed(self, connection: WampWebSocketProtocol) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.metrics.connections_closed += 1

    def ping(self) -> None:
        """Close connections silent for two ping intervals, and ping the rest.

        Anything received (a pong, a message) counts as a sign of life.
        """
        silent_since = time.monotonic() - 2 * self.config.ping_interval
        for connection in list(self.connections):
            if connection.last_seen < silent_since:
                connection.close_connection(CLOSE_POLICY, "ping timeout")
            else:
                connection.ping()

    def websocket_routes(self) -> list[tuple[str, type, dict[str, Any]]]:
        """Return the Tornado routes of the WAMP WebSocket endpoint."""
        return [(self.config.ws_path, WebSocketUpgradeHandler, {"gateway": self})]

    def gauges(self) -> dict[str, float]:
        """Return the current connection, session, subscription and registration counts."""
        return {"connections": len(self.connections), **self.router.counts()}

    # Persistence -------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (``config.store``) and hook persistence into the router.

        Raises:
            StoreError: when the store cannot be opened.
        """
        if self.config.store.lower() == "none":
            logger.warning("no store: events carry no offsets and sessions cannot be resumed")
            return
        from telegraphy.store import open_store

        from .persistence import Persistence

        self.store = open_store(
            self.config.store, max_events=self.config.history_max_events, max_age=self.config.history_max_age
        )
        await self.store.open()
        self.persistence = Persistence(self.router, self.store, session_ttl=self.config.session_ttl)
        if not self.config.bus.lower().startswith("local"):
            from telegraphy.bus import BusError, open_bus

            if self.config.store.lower().startswith("memory"):
                raise BusError("a bus needs a store shared by every gateway process (sqlite, redis or mongodb), not memory://")
            self.bus = open_bus(self.config.bus)
            await self.bus.open(self.persistence.bus_message)
            self.persistence.bus = self.bus
        self._trimmer = tornado.ioloop.PeriodicCallback(self._trim, TRIM_INTERVAL * 1000)
        self._trimmer.start()

    async def _trim(self) -> None:
        assert self.store is not None
        try:
            removed = await self.store.trim(time.time())
        except Exception:
            logger.exception("could not trim the event history")
        else:
            if removed:
                logger.debug("trimmed %d events from the history", removed)

    # Publishing --------------------------------------------------------------

    async def publish_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Publish validated events, in order; return their ids (``meta.id``).

        With a store, returns once the events are stored and delivered.
        """
        publish = self.router.publish_event
        ids = [publish(event) for event in events]
        if self.persistence is not None:
            await self.persistence.accepted()
        return ids

    # Shutdown ----------------------------------------------------------------

    async def shutdown(self) -> None:
        """Say GOODBYE to every session, wait briefly for the answers, then close what is left.

        Connections without an established session (not joined yet, or
        after GOODBYE) have no answer to wait for and are closed at once.
        """
        if self._pinger is not None:
            self._pinger.stop()
        self.router.shutdown()
        self.flush()
        for connection in list(self.connections):
            session = connection.session
            if session is None or session.state is not SessionState.SHUTTING_DOWN:
                connection.close_connection(CLOSE_GOING_AWAY, "gateway shutting down")
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.close_connection(CLOSE_GOING_AWAY, "gateway shutting down")
        logger.info("gateway stopped: %d connections closed at shutdown", len(self.connections))
        if self._trimmer is not None:
            self._trimmer.stop()
        if self.persistence is not None:
            await self.persistence.close()
        if self.bus is not None:
            await self.bus.close()
        if self.store is not None:
            await self.store.close()
