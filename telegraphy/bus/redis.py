"""A bus over Redis pub/sub (one channel shared by every gateway process).

Besides the shared channel ``<channel>``, each process listens on its own
``<channel>:node:<node>`` (messages :meth:`RedisBus.send` addresses to it)
and keeps leases as keys ``<channel>:lease:<key>`` whose value is the owner's
node name, set with a millisecond expiry (``PX``) by a Lua script, so that
taking a lease nobody holds and renewing one's own is a single atomic step.

Every message published on either channel is signed for that channel
(:class:`~telegraphy.bus.base.BusSigner`) and verified on receipt: one that
is unsigned, forged or stale is dropped before any handler sees it, counted
(:attr:`RedisBus.rejected`, ``on_rejected``) and logged at most once every
:data:`WARNING_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from .base import BusError, BusSigner, InvalidBusMessage

__all__ = ["RedisBus"]

logger = logging.getLogger("telegraphy.bus")

#: Seconds between attempts to resubscribe after the connection to Redis broke.
RETRY_DELAY = 0.5
#: Leases handled per script call.
LEASE_BATCH = 500
#: Seconds between two warnings about dropped (unsigned, forged, stale) messages.
WARNING_INTERVAL = 10.0

# KEYS: lease keys; ARGV: node, ttl in ms. Each key nobody else holds becomes
# (or stays) ours for the ttl; the reply is every key's owner.
_CLAIM = """
local owners = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if not owner or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    owner = ARGV[1]
  end
  owners[i] = owner
end
return owners
"""

# KEYS: lease keys; ARGV: node. Deletes the keys the node holds.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
  end
end
return 0
"""


class RedisBus:
    """Publishes to and listens on one Redis pub/sub channel.

    Pub/sub drops messages while a subscriber is disconnected; the gateway
    notices the gap at the next event of the topic and reads what it missed
    from the store.
    """

    def __init__(self, url: str, *, channel: str = "telegraphy:events", key: bytes) -> None:
        self.url = url
        self.channel = channel
        self.node = secrets.token_hex(8)
        #: Receives what other nodes :meth:`send` to this one.
        self.on_direct: Callable[[bytes], None] | None = None
        #: Called for each message dropped by verification (for a metric).
        self.on_rejected: Callable[[], None] | None = None
        #: Messages dropped by verification so far.
        self.rejected = 0
        self._signer = BusSigner(key)
        self._channel_bytes = channel.encode()
        self._direct_channel = self._node_channel(self.node)
        self._direct_channel_bytes = self._direct_channel.encode()
        self._warned_at = -WARNING_INTERVAL
        self._unwarned = 0
        self._client: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._claim: Any = None
        self._release: Any = None

    def _node_channel(self, node: str) -> str:
        return f"{self.channel}:node:{node}"

    def _lease(self, key: str) -> str:
        return f"{self.channel}:lease:{key}"

    async def open(self, on_message: Callable[[bytes], None]) -> None:
        # RESP2: redis-py's RESP3 parser turns every pub/sub message into a
        # string for a debug log line, enabled or not (a copy of each message).
        self._client = redis_asyncio.Redis.from_url(self.url, protocol=2)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BusError(f"cannot reach the redis bus at {_safe(self.url)}: {exc}") from None
        self._claim = self._client.register_script(_CLAIM)
        self._release = self._client.register_script(_RELEASE)
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel, self._direct_channel)
        self._listener = asyncio.ensure_future(self._listen(pubsub, on_message))

    async def _listen(self, pubsub: Any, on_message: Callable[[bytes], None]) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                logger.warning("redis bus connection lost (%s); resubscribing", exc)
                await asyncio.sleep(RETRY_DELAY)
                try:
                    await pubsub.subscribe(self.channel, self._direct_channel)
                except (RedisError, OSError):
                    pass
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message.get("channel")
            try:
                data = self._signer.verify(channel, message["data"], time.time())
            except InvalidBusMessage as exc:
                self._reject(channel, exc.reason)
                continue
            handler = on_message
            if channel == self._direct_channel_bytes:
                if self.on_direct is None:
                    continue
                handler = self.on_direct
            try:
                handler(data)
            except Exception:
                logger.exception("bus message handler failed")

    def _reject(self, channel: bytes, reason: str) -> None:
        """Count a dropped message; warn now and then, never once per message (a flood must not flood the log)."""
        self.rejected += 1
        if self.on_rejected is not None:
            self.on_rejected()
        self._unwarned += 1
        now = time.monotonic()
        if now - self._warned_at >= WARNING_INTERVAL:
            logger.warning(
                "dropped %d bus message(s) that were not signed with this gateway's secret or were replayed (latest on %s: %s); "
                "someone without the secret is writing to the bus or replaying recorded messages, or a node has another secret or a wrong clock",
                self._unwarned,
                channel.decode("utf-8", "replace")[:200],
                reason,
            )
            self._warned_at = now
            self._unwarned = 0

    async def publish(self, data: bytes) -> None:
        await self._client.publish(self.channel, self._signer.sign(self._channel_bytes, data, time.time()))

    async def send(self, node: str, messages: list[bytes]) -> None:
        if not messages:
            return
        channel = self._node_channel(node)
        channel_bytes = channel.encode()
        now = time.time()
        sign = self._signer.sign
        if len(messages) == 1:
            await self._client.publish(channel, sign(channel_bytes, messages[0], now))
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for data in messages:
                pipe.publish(channel, sign(channel_bytes, data, now))
            await pipe.execute()

    async def claim(self, keys: list[str], ttl: float) -> list[str]:
        owners: list[str] = []
        ms = max(1, int(ttl * 1000))
        for start in range(0, len(keys), LEASE_BATCH):
            batch = [self._lease(key) for key in keys[start : start + LEASE_BATCH]]
            result = await self._claim(keys=batch, args=[self.node, ms])
            owners += [owner.decode() if isinstance(owner, bytes) else str(owner) for owner in result]
        return owners

    async def owner(self, key: str) -> str | None:
        value = await self._client.get(self._lease(key))
        return None if value is None else value.decode()

    async def release(self, keys: list[str]) -> None:
        for start in range(0, len(keys), LEASE_BATCH):
            await self._release(keys=[self._lease(key) for key in keys[start : start + LEASE_BATCH]], args=[self.node])

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
        if self._client is not None:
            await self._client.aclose()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
