"""The gateway: one WAMP router shared by the WebSocket transport and the HTTP publish API.

:class:`Gateway` owns the :class:`~telegraphy.wamp.Router`, the open
connections and the flush loop: when the router reports output, one callback
per event-loop iteration writes every dirty connection's frames in a single
write each. Create it inside a running event loop.

It also applies the settings that decide who sees what and how much a client
may do: the client channels (``--channels``), the per-session limits
(``--max-subscriptions``, ``--publish-rate``, ``--publish-burst``, enforced
by the WAMP core), the per-IP connection rate (``--connection-rate``,
``--connection-burst``: :meth:`Gateway.admit`) and live revocations
(:meth:`Gateway.revoke`, forwarded to the other gateway processes on the bus).

Revocations are also kept in the store, shared by every gateway process,
until no connect token they cover can still be valid
(``--connect-token-max-ttl`` plus ``--jwt-leeway``), and loaded at start:
a restarted gateway, or one started later, still refuses a ticket issued
before a logout. The store also remembers the ``jti`` of every manage token
used on ``POST /revoke`` until it expires (:meth:`Gateway.use_manage_token`),
so each is accepted once, by any process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import tornado.ioloop

from telegraphy.store.base import DedupWindow
from telegraphy.wamp import Authenticator, Router, SessionState
from telegraphy.wamp.audience import Grants
from telegraphy.wamp.channels import ChannelPolicy
from telegraphy.wamp.limits import KeyedRateLimiter, SessionLimits
from telegraphy.wamp.revocation import Revocations, parse_grants
from telegraphy.websocket import CLOSE_GOING_AWAY, CLOSE_POLICY

from .websocket import WampWebSocketProtocol, WebSocketUpgradeHandler

if TYPE_CHECKING:
    from telegraphy.bus import Bus
    from telegraphy.store import Store

    from .config import Config
    from .metrics import Metrics
    from .persistence import Persistence
    from .web_topics import StoredWebTopics

__all__ = ["Gateway", "RevocationIncomplete"]

logger = logging.getLogger("telegraphy.gateway")

#: Seconds between history trims (retention by age and size).
TRIM_INTERVAL = 60.0

#: How long shutdown waits for peers to answer GOODBYE before closing them.
SHUTDOWN_GRACE = 2.0


class RevocationIncomplete(Exception):
    """A revocation was applied here but not forwarded (``part == "bus"``) or not forgotten (``"store"``)."""

    def __init__(self, part: str) -> None:
        super().__init__(f"revocation incomplete: the {part} failed")
        self.part = part


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
        authenticator = Authenticator(
            config.secret,
            allow_anonymous=config.allow_anonymous,
            leeway=config.jwt_leeway,
            max_token_ttl=config.connect_token_max_ttl,
        )
        channels = ChannelPolicy(config.channels or (), max_web_topics=config.max_web_topics)
        limits = SessionLimits(
            max_subscriptions=config.max_subscriptions,
            publish_rate=config.publish_rate,
            publish_burst=config.publish_burst,
            max_uri_length=config.max_uri_length,
            max_filter_size=config.max_filter_size,
            max_total_subscriptions=config.max_total_subscriptions,
            max_filters_total=config.max_filters_total,
        )
        self.router = Router(
            authenticator, (config.realm,), stats=metrics, on_output=self._schedule_flush, channels=channels, limits=limits
        )
        #: How long a revocation matters: until the last token it covers has expired.
        self.revocation_memory = config.connect_token_max_ttl + config.jwt_leeway
        self.router.revocations = Revocations(memory=self.revocation_memory)
        #: Manage-token ids used on /revoke, when there is no store: jti -> expiry.
        self._used_tokens: dict[str, float] = {}
        #: New connections per client IP (WebSocket upgrades and new SockJS sessions).
        self.connection_limiter = KeyedRateLimiter(config.connection_rate, config.connection_burst)
        self._loop = asyncio.get_event_loop()
        self._flush_scheduled = False
        self.store: Store | None = None
        self.persistence: Persistence | None = None
        #: The ids of events published lately, when there is no store (with one, the store keeps them).
        self.dedup = DedupWindow(config.dedup_window_events, config.dedup_window_age)
        self.bus: Bus | None = None
        #: Saves the topics of web-app events (set by :meth:`start` with a store).
        self.web_topics: StoredWebTopics | None = None
        #: Set by the SockJS endpoints when they share sessions over the bus.
        self.sockjs_nodes: Any = None
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

    def admit(self, peer: str) -> bool:
        """Whether a new connection from IP ``peer`` is within ``--connection-rate``; counts the refusals."""
        if self.connection_limiter.allow(peer, time.monotonic()):
            return True
        self.metrics.connections_throttled += 1
        return False

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
            self.config.store,
            max_events=self.config.history_max_events,
            max_age=self.config.history_max_age,
            dedup_max_events=self.config.dedup_window_events,
            dedup_max_age=self.config.dedup_window_age,
        )
        await self.store.open()
        from .web_topics import StoredWebTopics

        self.web_topics = StoredWebTopics(self.router.channels.web_topics, self.store)
        await self.web_topics.load()
        await self._load_revocations()
        self.persistence = Persistence(
            self.router,
            self.store,
            session_ttl=self.config.session_ttl,
            anonymous_session_ttl=self.config.anonymous_session_ttl,
            max_anonymous_sessions=self.config.max_anonymous_sessions,
            dedup=self.dedup,
        )
        self.persistence.on_revocation = self._remote_revocation
        self.persistence.on_duplicate = self._duplicates
        if not self.config.bus.lower().startswith("local"):
            from telegraphy.bus import BusError, open_bus

            if self.config.store.lower().startswith("memory"):
                raise BusError("a bus needs a store shared by every gateway process (sqlite, redis or mongodb), not memory://")
            # Signed with a key derived from the secret: forged messages are dropped.
            self.bus = open_bus(self.config.bus, secret=self.config.secret)
            if hasattr(self.bus, "on_rejected"):
                self.bus.on_rejected = self._bus_message_rejected
            await self.bus.open(self.persistence.bus_message)
            self.persistence.bus = self.bus
        self._trimmer = tornado.ioloop.PeriodicCallback(self._trim, TRIM_INTERVAL * 1000)
        self._trimmer.start()

    def _duplicates(self, count: int) -> None:
        self.metrics.duplicate_events += count

    def _bus_message_rejected(self) -> None:
        self.metrics.bus_messages_rejected += 1

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

        With a store, returns once the events are stored and delivered. An
        event whose ``meta.id`` was published before (within the dedup
        window) is not delivered again; its id is returned all the same, so a
        retried publish looks like success. The store keeps the window; with
        no store, this process does (``self.dedup``).
        """
        publish = self.router.publish_event
        if self.persistence is None:
            ids = []
            now = time.time()
            for event in events:
                given = (event.get("meta") or {}).get("id")
                if isinstance(given, str) and not self.dedup.add(given, now):
                    self.metrics.duplicate_events += 1
                    ids.append(given)
                    continue
                ids.append(publish(event))
            return ids
        ids = [publish(event) for event in events]
        if self.persistence is not None:
            await self.persistence.accepted()
        return ids

    # Revocation --------------------------------------------------------------

    async def revoke(self, user: str, grants: dict[str, Any] | None, logout: bool) -> int:
        """Apply a revocation here, keep it in the store, tell the other processes, forget a logged-out user's sessions.

        Returns how many live sessions of ``user`` this process had. The live
        sessions are dealt with before this returns (and before any await):
        the next event is judged with the new grants.

        Raises:
            ValueError: ``grants`` is malformed (nothing was applied).
            RevocationIncomplete: the store or the bus failed (applied here; retry).
        """
        parsed = None if grants is None else parse_grants(user, grants)
        at = time.time()
        sessions = self._apply_revocation(user, parsed, logout, at)
        persistence = self.persistence
        if persistence is None or self.store is None:
            return sessions
        failed = None
        try:
            await self._store_revocation(user, grants, logout, at)
        except Exception:
            logger.exception("could not keep the revocation of user %s in the store", user)
            failed = "store"
        try:
            await persistence.announce_revocation({"user": user, "logout": logout, "grants": grants, "at": at})
        except Exception:
            logger.exception("could not announce the revocation of user %s on the bus", user)
            failed = failed or "bus"
        if logout:
            try:
                await persistence.forget_user(user)
            except Exception:
                logger.exception("could not delete the stored sessions of user %s", user)
                failed = failed or "store"
        if failed is not None:
            raise RevocationIncomplete(failed)
        return sessions

    async def _store_revocation(self, user: str, grants: dict[str, Any] | None, logout: bool, at: float) -> None:
        """Keep a revocation in the store until no token it covers can be valid (one record per kind and user)."""
        assert self.store is not None
        expires_at = at + self.revocation_memory
        if logout:
            await self.store.put_revocation(f"user:logout:{user}", {"user": user, "at": at}, expires_at, at)
        if grants is not None:
            record = {"user": user, "at": at, "grants": grants}
            await self.store.put_revocation(f"user:grants:{user}", record, expires_at, at)

    async def _load_revocations(self) -> None:
        """Load the revocations kept in the store (made by any process, before this one started).

        Raises:
            StoreError: when the store cannot be read.
        """
        assert self.store is not None
        now = time.time()
        records = await self.store.list_revocations("user:", now)
        revocations = self.router.revocations
        for key, record in records.items():
            user, at = record.get("user"), record.get("at")
            if not isinstance(user, str) or not user or isinstance(at, bool) or not isinstance(at, (int, float)):
                logger.warning("ignoring a malformed revocation %r in the store", key[:80])
                continue
            if key.startswith("user:logout:"):
                revocations.restore(user, float(at), None, None, now)
                continue
            try:
                grants = parse_grants(user, record.get("grants"))
            except ValueError:
                logger.warning("ignoring a malformed revocation %r in the store", key[:80])
                continue
            revocations.restore(user, None, float(at), grants, now)
        if records:
            logger.info("loaded %d revocations from the store", len(records))

    async def use_manage_token(self, claims: dict[str, Any]) -> bool:
        """Record that the manage token with ``claims`` (verified) was used; False if it was used before.

        Its ``jti`` is kept until the token expires (in the store when
        there is one, so the rule holds across processes and restarts).

        Raises:
            Exception: whatever the store raises when it cannot be written.
        """
        now = time.time()
        jti = str(claims["jti"])
        expires_at = max(float(claims["exp"]) + self.config.jwt_leeway, now + 1.0)
        if self.store is not None:
            return await self.store.put_revocation(f"jti:{jti}", {}, expires_at, now, only_new=True)
        used = self._used_tokens
        for old in [key for key, expiry in used.items() if expiry <= now]:
            del used[old]
        if jti in used:
            return False
        used[jti] = expires_at
        return True

    def _apply_revocation(self, user: str, grants: Grants | None, logout: bool, at: float) -> int:
        sessions = self.router.revoke(user, at, grants=grants, logout=logout)
        if logout and sessions:
            logger.info("logged out user %s: %d sessions ended", user, sessions)
        return sessions

    def _remote_revocation(self, revocation: dict[str, Any]) -> None:
        """A revocation announced by another gateway process (a verified bus message): apply it here too."""
        user, grants, logout = revocation.get("user"), revocation.get("grants"), revocation.get("logout") is True
        if not isinstance(user, str) or not user:
            return
        try:
            parsed = None if grants is None else parse_grants(user, grants)
        except ValueError:
            logger.warning("ignoring a malformed revocation from the bus")
            return
        now = time.time()
        at = revocation.get("at")
        # The time the revocation was made, so every node covers the same tickets.
        at = min(float(at), now) if isinstance(at, (int, float)) and not isinstance(at, bool) else now
        if parsed is not None and not logout and self.router.revocations.superseded(user, at):
            return  # newer grants are in force already
        self._apply_revocation(user, parsed, logout, at)
        if logout and self.persistence is not None:
            # Records this process was about to save must go too.
            task = asyncio.ensure_future(self.persistence.forget_user(user))
            task.add_done_callback(_log_failure)

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
        if self.web_topics is not None:
            await self.web_topics.close()
        if self.sockjs_nodes is not None:
            await self.sockjs_nodes.close()
        if self.bus is not None:
            await self.bus.close()
        if self.store is not None:
            await self.store.close()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("could not forget the sessions of a logged-out user: %r", task.exception())
