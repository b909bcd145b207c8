"""The Redis store, through redis-py's asyncio client (``pip install telegraphy[redis]``).

Every stream operation is one Lua script, which Redis runs atomically: the
offset is taken with ``HINCRBY`` and the event added with ``XADD`` in the same
step, so any number of gateway processes on one Redis server get unique,
gapless offsets and readers never see a half-done append.

Keys (``telegraphy`` is the ``prefix`` option)::

    telegraphy:pos:<topic>            hash {epoch, offset}: the stream's position
    telegraphy:ev:<topic>             stream of the retained events; entry id <offset>-0,
                                      fields d (data) and t (stored_at)
    telegraphy:topics                 set of the topics with a position
    telegraphy:dedup                  sorted set: event id -> when append_once stored it
    telegraphy:session:<token>        string {"expires_at", "record"}, with a Redis TTL
    telegraphy:sessions               sorted set token -> expires_at, to list live sessions
    telegraphy:subs:<owner>           string: the owner's subscriptions as JSON
    telegraphy:owner-topics:<owner>   set of the owner's exact-match topics
    telegraphy:subscribers:<topic>    set of owners with an exact subscription to the topic
    telegraphy:revocation:<key>       string {"expires_at", "record"}, with a Redis TTL
    telegraphy:revocations            sorted set key -> expires_at, to list live revocations

If a topic's position hash disappears (a new or flushed database, an evicted
key), the next operation on the topic makes a new epoch and drops whatever
history is left, so offsets restart at 1 and old positions read as "epoch
changed". Configure Redis with a ``noeviction`` policy and persistence
(AOF or RDB) if history must survive a Redis restart.

Limits: one Redis server (or a primary with replicas), not Redis Cluster; the
scripts name keys they are not given. Needs Redis 6.2 or later (``XTRIM MINID``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.commands.core import AsyncScript

from .base import (
    DEFAULT_DEDUP_MAX_AGE,
    DEFAULT_DEDUP_MAX_EVENTS,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_EVENTS,
    DEFAULT_PREFIX,
    History,
    Position,
    StoredEvent,
    check_dedup_options,
    check_expiry,
    check_options,
    check_read,
    check_ttl,
    decode_json,
    encode_json,
    exact_topics,
    gap_reason,
    normalize_subscriptions,
    session_entry,
)
from .errors import StoreError, StoreNotOpen, StoreUnavailable

__all__ = ["RedisStore"]

# Makes sure the topic has a position; a missing one means history was lost.
# KEYS: pos, ev, topics. ARGV[1]: a fresh epoch, ARGV[2]: the topic.
_ENSURE = """
local function ensure()
    local epoch = redis.call('HGET', KEYS[1], 'epoch')
    if not epoch then
        redis.call('DEL', KEYS[2])
        redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0)
        redis.call('SADD', KEYS[3], ARGV[2])
        epoch = ARGV[1]
    end
    return epoch
end
"""

# ARGV[3]: max_events, then (data, stored_at) pairs, appended in order.
_APPEND = (
    _ENSURE
    + """
local epoch = ensure()
local offsets = {}
for i = 4, #ARGV, 2 do
    local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], string.format('%d-0', offset), 'd', ARGV[i], 't', ARGV[i + 1])
    offsets[#offsets + 1] = offset
end
return {epoch, offsets}
"""
)

# Like _APPEND, each event id at most once. KEYS: pos, ev, topics, dedup (a
# sorted set: event id -> when it was appended). ARGV[3]: max_events,
# ARGV[4]: the dedup cutoff (now - dedup_max_age), ARGV[5]: dedup_max_events,
# then (data, stored_at, id or '') triples. Offset 0 answers a duplicate.
_APPEND_ONCE = (
    _ENSURE
    + """
local epoch = ensure()
local cutoff = tonumber(ARGV[4])
local offsets = {}
for i = 6, #ARGV, 3 do
    local id = ARGV[i + 2]
    local seen = false
    if id ~= '' then
        local at = redis.call('ZSCORE', KEYS[4], id)
        seen = at and tonumber(at) >= cutoff
    end
    if seen then
        offsets[#offsets + 1] = 0
    else
        if id ~= '' then redis.call('ZADD', KEYS[4], ARGV[i + 1], id) end
        local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
        redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], string.format('%d-0', offset), 'd', ARGV[i], 't', ARGV[i + 1])
        offsets[#offsets + 1] = offset
    end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[4])
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1) end
return {epoch, offsets}
"""
)

_POSITION = (
    _ENSURE
    + """
local epoch = ensure()
return {epoch, redis.call('HGET', KEYS[1], 'offset')}
"""
)

# ARGV[3]: the first entry id to return, ARGV[4]: how many at most.
_READ = (
    _ENSURE
    + """
local epoch = ensure()
local offset = redis.call('HGET', KEYS[1], 'offset')
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_id = false
if #first > 0 then first_id = first[1][1] end
local events = redis.call('XRANGE', KEYS[2], ARGV[3], '+', 'COUNT', ARGV[4])
return {epoch, offset, first_id, events}
"""
)

# KEYS: ev. ARGV[1]: max_events, ARGV[2]: cutoff. Removes oldest first, up to
# the first event stored at or after the cutoff, so history stays contiguous.
_TRIM = """
local removed = 0
if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[1]) then
    removed = redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[1])
end
local cutoff = tonumber(ARGV[2])
local start = '-'
while true do
    local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 200)
    if #batch == 0 then
        return removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
    end
    for _, entry in ipairs(batch) do
        local fields = entry[2]
        for i = 1, #fields, 2 do
            if fields[i] == 't' and tonumber(fields[i + 1]) >= cutoff then
                return removed + redis.call('XTRIM', KEYS[1], 'MINID', entry[1])
            end
        end
    end
    start = '(' .. batch[#batch][1]
end
"""

# KEYS: subs, owner-topics. ARGV[1]: owner, ARGV[2]: subscribers key prefix,
# ARGV[3]: subscriptions JSON ('' to remove), then the exact-match topics.
_SET_SUBSCRIPTIONS = """
for _, topic in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('SREM', ARGV[2] .. topic, ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] ~= '' then
    redis.call('SET', KEYS[1], ARGV[3])
    for i = 4, #ARGV do
        redis.call('SADD', KEYS[2], ARGV[i])
        redis.call('SADD', ARGV[2] .. ARGV[i], ARGV[1])
    end
end
return 1
"""


# Keeps a revocation, unless ARGV[6] is "1" and a live one has its key.
# KEYS: the record's key, the sorted set. ARGV: key, text, expires_at, now, ttl in ms, only_new.
_PUT_REVOCATION = """
if ARGV[6] == '1' then
    local expires = redis.call('ZSCORE', KEYS[2], ARGV[1])
    if expires and tonumber(expires) > tonumber(ARGV[4]) and redis.call('EXISTS', KEYS[1]) == 1 then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """A :class:`~telegraphy.store.base.Store` on a Redis server.

    Args:
        url: ``redis://[:password@]host:port/db`` or ``rediss://...`` for TLS.
        max_events: events kept per topic (enforced on every append).
        max_age: seconds an event is kept (applied by :meth:`trim`).
        prefix: key prefix; stores with different prefixes share nothing.
        dedup_max_events: event ids remembered by :meth:`append_once`.
        dedup_max_age: seconds an event id is remembered.
    """

    def __init__(
        self,
        url: str,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age: float = DEFAULT_MAX_AGE,
        prefix: str = DEFAULT_PREFIX,
        dedup_max_events: int = DEFAULT_DEDUP_MAX_EVENTS,
        dedup_max_age: float = DEFAULT_DEDUP_MAX_AGE,
    ) -> None:
        check_options(max_events, max_age, prefix)
        check_dedup_options(dedup_max_events, dedup_max_age)
        self.dedup_max_events = dedup_max_events
        self.dedup_max_age = float(dedup_max_age)
        self.url = url
        self.max_events = max_events
        self.max_age = float(max_age)
        self.prefix = prefix
        self._client: redis.asyncio.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        from .errors import redact_url

        return f"RedisStore({redact_url(self.url)!r}, prefix={self.prefix!r})"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn redis-py's exceptions into the store's."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(self.url, str(exc) or type(exc).__name__) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis store: {exc}") from exc

    @property
    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise StoreNotOpen("redis")
        return self._client

    async def open(self) -> None:
        """Connect and check the server answers."""
        if self._client is not None:
            return
        try:
            client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=5.0)
        except ValueError as exc:
            raise StoreUnavailable(self.url, str(exc)) from exc
        try:
            with self._errors():
                await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._scripts = {
            name: client.register_script(source)
            for name, source in [
                ("append", _APPEND),
                ("append_once", _APPEND_ONCE),
                ("position", _POSITION),
                ("read", _READ),
                ("trim", _TRIM),
                ("set_subscriptions", _SET_SUBSCRIPTIONS),
                ("put_revocation", _PUT_REVOCATION),
            ]
        }
        self._client = client

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # Keys

    def _stream_keys(self, topic: str) -> list[str]:
        p = self.prefix
        return [f"{p}:pos:{topic}", f"{p}:ev:{topic}", f"{p}:topics"]

    def _session_key(self, token: str) -> str:
        return f"{self.prefix}:session:{token}"

    # Event history

    async def append(self, topic: str, data: bytes, now: float) -> Position:
        """Append one event with one script call; see :meth:`Store.append`."""
        positions = await self.append_many([(topic, data)], now)
        return positions[0]

    async def append_many(self, items: Sequence[tuple[str, bytes]], now: float) -> list[Position]:
        """Append several events, one script call per run of one topic, in one pipeline."""
        client = self._redis
        runs: list[tuple[str, list[bytes]]] = []  # consecutive items of one topic go in one call
        for topic, data in items:
            if runs and runs[-1][0] == topic:
                runs[-1][1].append(bytes(data))
            else:
                runs.append((topic, [bytes(data)]))
        if not runs:
            return []
        stored_at = repr(float(now))
        script = self._scripts["append"]
        with self._errors():
            async with client.pipeline(transaction=False) as pipe:
                for topic, datas in runs:
                    args: list[str | bytes | int] = [secrets.token_hex(8), topic, self.max_events]
                    for data in datas:
                        args += [data, stored_at]
                    await script(keys=self._stream_keys(topic), args=args, client=pipe)
                replies = await pipe.execute()
        positions = []
        for epoch, offsets in replies:
            positions += [Position(_text(epoch), int(offset)) for offset in offsets]
        return positions

    async def append_once(self, items: Sequence[tuple[str, bytes, str | None]], now: float) -> list[Position | None]:
        """Append several events, each id at most once: one script call per run of one topic, in one pipeline.

        Each call checks and records its ids and appends in one atomic step
        (a Lua script), so writers in other processes never store an id twice.
        """
        client = self._redis
        runs: list[tuple[str, list[tuple[bytes, str]]]] = []
        for topic, data, event_id in items:
            entry = (bytes(data), event_id or "")
            if runs and runs[-1][0] == topic:
                runs[-1][1].append(entry)
            else:
                runs.append((topic, [entry]))
        if not runs:
            return []
        stored_at = repr(float(now))
        cutoff = repr(float(now - self.dedup_max_age))
        script = self._scripts["append_once"]
        with self._errors():
            async with client.pipeline(transaction=False) as pipe:
                for topic, entries in runs:
                    args: list[str | bytes | int] = [
                        secrets.token_hex(8), topic, self.max_events, cutoff, self.dedup_max_events
                    ]
                    for data, event_id in entries:
                        args += [data, stored_at, event_id]
                    await script(keys=[*self._stream_keys(topic), f"{self.prefix}:dedup"], args=args, client=pipe)
                replies = await pipe.execute()
        positions: list[Position | None] = []
        for epoch, offsets in replies:
            positions += [Position(_text(epoch), int(offset)) if int(offset) else None for offset in offsets]
        return positions

    async def position(self, topic: str) -> Position:
        """The stream's current position."""
        with self._errors():
            epoch, offset = await self._scripts["position"](
                keys=self._stream_keys(topic), args=[secrets.token_hex(8), topic], client=self._redis
            )
        return Position(_text(epoch), int(offset))

    async def read(self, topic: str, since: Position, limit: int = 1000) -> History:
        """The events after ``since``, read atomically by one script; see :meth:`Store.read`."""
        check_read(since, limit)
        with self._errors():
            epoch, offset, first_id, entries = await self._scripts["read"](
                keys=self._stream_keys(topic),
                args=[secrets.token_hex(8), topic, f"{since.offset + 1}-0", limit],
                client=self._redis,
            )
        current = Position(_text(epoch), int(offset))
        first = None if first_id is None else int(_text(first_id).split("-")[0])
        reason = gap_reason(current, since, first)
        if reason is not None:
            return History(current, [], False, reason)
        events = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2]))
            events.append(StoredEvent(int(_text(entry_id).split("-")[0]), bytes(values[b"d"]), float(values[b"t"])))
        return History(current, events, True, None)

    async def trim(self, now: float) -> int:
        """Apply retention to every topic (one pipeline) and forget expired sessions."""
        client = self._redis
        p = self.prefix
        with self._errors():
            topics = sorted(_text(t) for t in await client.smembers(f"{p}:topics"))
            async with client.pipeline(transaction=False) as pipe:
                for topic in topics:
                    await self._scripts["trim"](
                        keys=[f"{p}:ev:{topic}"], args=[self.max_events, repr(float(now - self.max_age))], client=pipe
                    )
                pipe.zremrangebyscore(f"{p}:sessions", "-inf", now)
                pipe.zremrangebyscore(f"{p}:revocations", "-inf", now)
                pipe.zremrangebyscore(f"{p}:dedup", "-inf", f"({now - self.dedup_max_age!r}")
                replies = await pipe.execute()
        return sum(int(removed) for removed in replies[:-3])

    # Sessions

    async def save_session(self, token: str, record: Mapping[str, Any], ttl: float, now: float) -> None:
        """Store a session record until ``now + ttl``; Redis deletes it ``ttl`` seconds from now."""
        check_ttl(ttl)
        expires_at = now + ttl
        text = encode_json({"expires_at": expires_at, "record": record}, "session record")
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._session_key(token), text, px=max(1, int(ttl * 1000 + 0.999)))
                pipe.zadd(f"{self.prefix}:sessions", {token: expires_at})
                await pipe.execute()

    async def load_session(self, token: str, now: float) -> dict[str, Any] | None:
        """The live record saved under ``token``, or None."""
        with self._errors():
            text = await self._redis.get(self._session_key(token))
        if text is None:
            return None
        entry = decode_json(text)
        if entry["expires_at"] <= now:
            return None
        record: dict[str, Any] = entry["record"]
        return record

    async def delete_session(self, token: str) -> None:
        """Forget a session."""
        with self._errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._session_key(token))
                pipe.zrem(f"{self.prefix}:sessions", token)
                await pipe.execute()

    async def list_sessions(self, now: float) -> list[dict[str, Any]]:
        """Live sessions sorted by token, with ``token`` and ``expires_at`` added."""
        client = self._redis
        with self._errors():
            tokens = [_text(t) for t in await client.zrangebyscore(f"{self.prefix}:sessions", f"({now!r}", "+inf")]
            texts = await client.mget([self._session_key(t) for t in tokens]) if tokens else []
        sessions = []
        for token, text in sorted(zip(tokens, texts)):
            if text is None:  # expired in Redis already
                continue
            entry = decode_json(text)
            if entry["expires_at"] > now:
                sessions.append(session_entry(token, entry["record"], float(entry["expires_at"])))
        return sessions

    # Subscriptions

    async def set_subscriptions(self, owner: str, subscriptions: Sequence[Mapping[str, Any]]) -> None:
        """Replace ``owner``'s subscriptions and the topic -> owners index, atomically."""
        normalized = normalize_subscriptions(subscriptions)
        p = self.prefix
        text = encode_json(normalized, "subscriptions") if normalized else ""
        with self._errors():
            await self._scripts["set_subscriptions"](
                keys=[f"{p}:subs:{owner}", f"{p}:owner-topics:{owner}"],
                args=[owner, f"{p}:subscribers:", text, *exact_topics(normalized)],
                client=self._redis,
            )

    async def get_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s subscriptions in the order they were set."""
        with self._errors():
            text = await self._redis.get(f"{self.prefix}:subs:{owner}")
        subscriptions: list[dict[str, Any]] = [] if text is None else decode_json(text)
        return subscriptions

    async def subscribers(self, topic: str) -> list[str]:
        """Owners with an exact subscription to ``topic``, sorted."""
        with self._errors():
            owners = await self._redis.smembers(f"{self.prefix}:subscribers:{topic}")
        return sorted(_text(owner) for owner in owners)

    # Revocations

    async def put_revocation(
        self, key: str, record: Mapping[str, Any], expires_at: float, now: float, *, only_new: bool = False
    ) -> bool:
        """Keep ``record`` under ``key`` until ``expires_at`` (one script: atomic); see :meth:`Store.put_revocation`."""
        check_expiry(expires_at, now)
        text = encode_json({"expires_at": float(expires_at), "record": record}, "revocation record")
        p = self.prefix
        ttl_ms = max(1, int((expires_at - now) * 1000 + 0.999))
        with self._errors():
            written = await self._scripts["put_revocation"](
                keys=[f"{p}:revocation:{key}", f"{p}:revocations"],
                args=[key, text, repr(float(expires_at)), repr(float(now)), ttl_ms, "1" if only_new else "0"],
                client=self._redis,
            )
        return bool(int(written))

    async def list_revocations(self, prefix: str, now: float) -> dict[str, dict[str, Any]]:
        """Live records whose key starts with ``prefix``; see :meth:`Store.list_revocations`."""
        client = self._redis
        p = self.prefix
        with self._errors():
            keys = [_text(k) for k in await client.zrangebyscore(f"{p}:revocations", f"({now!r}", "+inf")]
            keys = [k for k in keys if k.startswith(prefix)]
            texts = await client.mget([f"{p}:revocation:{k}" for k in keys]) if keys else []
        revocations: dict[str, dict[str, Any]] = {}
        for key, text in zip(keys, texts):
            if text is None:  # expired in Redis already
                continue
            entry = decode_json(text)
            if entry["expires_at"] > now:
                revocations[key] = entry["record"]
        return revocations
