"""A bus over Redis pub/sub (one channel shared by every gateway process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from .base import BusError

__all__ = ["RedisBus"]

logger = logging.getLogger("telegraphy.bus")

#: Seconds between attempts to resubscribe after the connection to Redis broke.
RETRY_DELAY = 0.5


class RedisBus:
    """Publishes to and listens on one Redis pub/sub channel.

    Pub/sub drops messages while a subscriber is disconnected; the gateway
    notices the gap at the next event of the topic and reads what it missed
    from the store.
    """

    def __init__(self, url: str, *, channel: str = "telegraphy:events") -> None:
        self.url = url
        self.channel = channel
        self._client: Any = None
        self._listener: asyncio.Task[None] | None = None

    async def open(self, on_message: Callable[[bytes], None]) -> None:
        self._client = redis_asyncio.Redis.from_url(self.url)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BusError(f"cannot reach the redis bus at {_safe(self.url)}: {exc}") from None
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
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
                    await pubsub.subscribe(self.channel)
                except (RedisError, OSError):
                    pass
                continue
            if message is not None and message.get("type") == "message":
                try:
                    on_message(message["data"])
                except Exception:
                    logger.exception("bus message handler failed")

    async def publish(self, data: bytes) -> None:
        await self._client.publish(self.channel, data)

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
