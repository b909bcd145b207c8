"""The store contract: every backend behaves the same, tested against each one.

memory and sqlite always run; redis runs against the server at
``TELEGRAPHY_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) and is
skipped with the reason when it can't be reached; mongodb runs only when
``TELEGRAPHY_TEST_MONGODB_URL`` is set. Every test uses its own key, table or
collection prefix and removes what it wrote.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telegraphy.store import (
    EPOCH_CHANGED,
    HISTORY_TRIMMED,
    OFFSET_AHEAD,
    MemoryStore,
    MissingDependency,
    Position,
    SQLiteStore,
    Store,
    StoreConfigError,
    StoreNotOpen,
    StoreUnavailable,
    open_store,
)
from telegraphy.store.errors import redact_url

REDIS_URL = os.environ.get("TELEGRAPHY_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
MONGODB_URL = os.environ.get("TELEGRAPHY_TEST_MONGODB_URL") or ""
WRITER = Path(__file__).with_name("writer.py")

Scenario = Callable[[Store], Awaitable[None]]


def _redis_unreachable() -> str | None:
    """Why the test Redis server can't be used, or None."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install telegraphy[redis])"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"no redis server at {redact_url(REDIS_URL)}: {exc}"
    return None


@dataclass
class Backend:
    """One backend under test: how to build stores on its (shared) storage."""

    name: str
    url: str
    prefix: str

    @property
    def shared(self) -> bool:
        """Whether two store instances see the same data (all but memory)."""
        return self.name != "memory"

    def make(self, **options: Any) -> Store:
        """A new, unopened store on this backend's storage."""
        return open_store(self.url, prefix=self.prefix, **options)

    def run(self, scenario: Scenario, **options: Any) -> None:
        """Open a new store, run ``scenario`` with it, close it."""

        async def main() -> None:
            store = self.make(**options)
            await store.open()
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())

    def lose_history(self) -> None:
        """Throw the backend's data away behind the store's back (a deleted file, FLUSHDB, a dropped database)."""
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(self.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        elif self.name == "redis":
            _redis_delete_prefix(self.prefix)
        elif self.name == "mongodb":
            _mongodb_drop_prefix(self.prefix)


def _redis_delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _mongodb_drop_prefix(prefix: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(MONGODB_URL)
    try:
        database = client.get_default_database(default="telegraphy")
        for name in database.list_collection_names():
            if name.startswith(f"{prefix}_"):
                database.drop_collection(name)
    finally:
        client.close()


@pytest.fixture(params=["memory", "sqlite", "redis", "mongodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, on fresh storage with its own prefix."""
    name = request.param
    prefix = f"test_{secrets.token_hex(6)}"
    if name == "memory":
        yield Backend(name, "memory://", prefix)
    elif name == "sqlite":
        yield Backend(name, f"sqlite:///{tmp_path / 'store.db'}", prefix)
    elif name == "redis":
        reason = _redis_unreachable()
        if reason:
            pytest.skip(reason)
        try:
            yield Backend(name, REDIS_URL, prefix)
        finally:
            _redis_delete_prefix(prefix)
    else:
        if not MONGODB_URL:
            pytest.skip("set TELEGRAPHY_TEST_MONGODB_URL to run")
        try:
            yield Backend(name, MONGODB_URL, prefix)
        finally:
            _mongodb_drop_prefix(prefix)


NOW = 1_800_000_000.0


# Event history


def test_offsets_start_at_one_and_are_gapless(backend: Backend) -> None:
    """Offsets count 1, 2, 3, ... per topic, independently for each topic."""

    async def scenario(store: Store) -> None:
        got = [await store.append(topic, b"{}", NOW) for topic in ["a", "b", "a", "a", "b"]]
        assert [p.offset for p in got] == [1, 1, 2, 3, 2]
        assert await store.position("a") == got[3]
        assert await store.position("b") == got[4]
        assert got[0].epoch == got[2].epoch == got[3].epoch

    backend.run(scenario)


def test_position_of_a_new_topic_is_zero_in_a_stable_epoch(backend: Backend) -> None:
    """A topic with no events is at offset 0, and its first event continues that epoch."""

    async def scenario(store: Store) -> None:
        empty = await store.position("new")
        assert empty.offset == 0 and empty.epoch
        assert await store.position("new") == empty
        first = await store.append("new", b"1", NOW)
        assert first == Position(empty.epoch, 1)
        history = await store.read("new", empty)
        assert history.recovered and [e.data for e in history.events] == [b"1"]

    backend.run(scenario)


def test_read_from_zero_returns_every_event_in_order(backend: Backend) -> None:
    """Reading from offset 0 gives every event, oldest first, with data and time as stored."""

    async def scenario(store: Store) -> None:
        for i in range(5):
            await store.append("t", b'{"n": %d}' % i, NOW + i + 0.25)
        await store.append("other", b"x", NOW)
        position = await store.position("t")
        history = await store.read("t", Position(position.epoch, 0))
        assert history.recovered and history.reason is None
        assert history.position == position
        assert [(e.offset, e.data, e.stored_at) for e in history.events] == [
            (i + 1, b'{"n": %d}' % i, NOW + i + 0.25) for i in range(5)
        ]
        empty = await store.read("never", await store.position("never"))
        assert empty.recovered and empty.events == [] and empty.position.offset == 0

    backend.run(scenario)


def test_read_with_limit_pages_through_the_history(backend: Backend) -> None:
    """A limited read returns the next `limit` events; reading on from the last one gets the rest."""

    async def scenario(store: Store) -> None:
        await store.append_many([("t", str(i).encode()) for i in range(7)], NOW)
        epoch = (await store.position("t")).epoch
        pages, since = [], Position(epoch, 0)
        while True:
            history = await store.read("t", since, limit=3)
            assert history.recovered and history.position == Position(epoch, 7)
            if not history.events:
                break
            pages.append([e.offset for e in history.events])
            since = Position(epoch, history.events[-1].offset)
        assert pages == [[1, 2, 3], [4, 5, 6], [7]]
        with pytest.raises(ValueError, match="limit"):
            await store.read("t", since, limit=0)
        with pytest.raises(ValueError, match="offset"):
            await store.read("t", Position(epoch, -1))

    backend.run(scenario)


def test_read_from_another_epoch_is_not_recovered(backend: Backend) -> None:
    """A position from another epoch can't be resumed ("epoch changed"), unless it is offset 0."""

    async def scenario(store: Store) -> None:
        await store.append_many([("t", b"1"), ("t", b"2")], NOW)
        history = await store.read("t", Position("gone-epoch", 1))
        assert (history.recovered, history.reason, history.events) == (False, EPOCH_CHANGED, [])
        assert history.position == await store.position("t")
        fresh = await store.read("t", Position("gone-epoch", 0))
        assert fresh.recovered and [e.offset for e in fresh.events] == [1, 2]

    backend.run(scenario)


def test_read_ahead_of_the_stream_is_not_recovered(backend: Backend) -> None:
    """An offset the stream has not reached yet, in its own epoch, reads as "offset ahead of stream"."""

    async def scenario(store: Store) -> None:
        position = await store.append("t", b"1", NOW)
        history = await store.read("t", Position(position.epoch, 5))
        assert (history.recovered, history.reason, history.events) == (False, OFFSET_AHEAD, [])
        caught_up = await store.read("t", position)
        assert caught_up.recovered and caught_up.events == []

    backend.run(scenario)


def test_max_events_trims_on_append_and_reads_say_so(backend: Backend) -> None:
    """With max_events=3, appends keep the last 3 events; a reader who missed older ones is told "history trimmed"."""

    async def scenario(store: Store) -> None:
        for i in range(5):
            await store.append("t", str(i + 1).encode(), NOW)
        epoch = (await store.position("t")).epoch
        for since in (0, 1):
            history = await store.read("t", Position(epoch, since))
            assert (history.recovered, history.reason, history.events) == (False, HISTORY_TRIMMED, [])
        history = await store.read("t", Position(epoch, 2))
        assert history.recovered and [e.data for e in history.events] == [b"3", b"4", b"5"]
        assert await store.trim(NOW) == 0

    backend.run(scenario, max_events=3)


def test_trim_by_age_removes_old_events_and_offsets_continue(backend: Backend) -> None:
    """trim(now) removes events older than max_age, counts them, and the next append continues the offsets."""

    async def scenario(store: Store) -> None:
        await store.append_many([("t", b"1"), ("t", b"2"), ("t", b"3"), ("u", b"1")], NOW)
        await store.append_many([("t", b"4"), ("t", b"5")], NOW + 50)
        epoch = (await store.position("t")).epoch
        assert await store.trim(NOW + 99) == 0
        assert await store.trim(NOW + 120) == 4
        assert (await store.read("t", Position(epoch, 2))).reason == HISTORY_TRIMMED
        kept = await store.read("t", Position(epoch, 3))
        assert kept.recovered and [e.offset for e in kept.events] == [4, 5]
        assert await store.trim(NOW + 200) == 2
        assert await store.position("t") == Position(epoch, 5)
        assert (await store.read("t", Position(epoch, 4))).reason == HISTORY_TRIMMED
        assert (await store.read("t", Position(epoch, 5))).recovered
        assert await store.append("t", b"6", NOW + 201) == Position(epoch, 6)
        assert (await store.position("u")).offset == 1

    backend.run(scenario, max_age=100)


def test_trim_keeps_history_contiguous(backend: Backend) -> None:
    """Retention removes oldest first and stops at the first young event, so no gap opens mid-stream."""

    async def scenario(store: Store) -> None:
        await store.append("t", b"1", NOW)
        await store.append("t", b"2", NOW - 500)  # a writer with a slow clock
        await store.append("t", b"3", NOW)
        assert await store.trim(NOW + 50) == 0
        history = await store.read("t", Position((await store.position("t")).epoch, 0))
        assert history.recovered and [e.offset for e in history.events] == [1, 2, 3]

    backend.run(scenario, max_age=100)


def test_trim_applies_a_lowered_max_events(backend: Backend) -> None:
    """trim() enforces max_events on history written under a higher limit."""
    if not backend.shared:
        pytest.skip("a memory store's history dies with the instance")

    async def write(store: Store) -> None:
        await store.append_many([("t", str(i).encode()) for i in range(6)], NOW)

    async def trim(store: Store) -> None:
        assert await store.trim(NOW) == 4
        epoch = (await store.position("t")).epoch
        assert [e.offset for e in (await store.read("t", Position(epoch, 4))).events] == [5, 6]

    backend.run(write, max_events=10)
    backend.run(trim, max_events=2)


def test_append_many_keeps_order_within_each_topic(backend: Backend) -> None:
    """append_many returns one position per item, in order, and each topic's events keep the items' order."""

    async def scenario(store: Store) -> None:
        assert await store.append_many([], NOW) == []
        await store.append("b", b"b0", NOW)
        items = [("a", b"a1"), ("b", b"b1"), ("b", b"b2"), ("a", b"a2"), ("c", b"c1"), ("a", b"a3")]
        positions = await store.append_many(items, NOW)
        assert [p.offset for p in positions] == [1, 2, 3, 2, 1, 3]
        for topic in "abc":
            history = await store.read(topic, Position((await store.position(topic)).epoch, 0))
            assert [e.data for e in history.events] == [d for t, d in [("b", b"b0"), *items] if t == topic]

    backend.run(scenario)


# Each event id at most once (append_once)


def test_append_once_stores_each_id_once(backend: Backend) -> None:
    """append_once appends new ids and items without an id, and answers None for an id already stored (earlier or in the same batch)."""

    async def scenario(store: Store) -> None:
        assert await store.append_once([], NOW) == []
        first = await store.append_once([("a", b"a1", "id-1"), ("b", b"b1", None), ("a", b"a2", "id-2")], NOW)
        assert [p.offset if p else None for p in first] == [1, 1, 2]
        again = await store.append_once(
            [("a", b"a1", "id-1"), ("a", b"a3", "id-3"), ("a", b"a3", "id-3"), ("b", b"b1", None)], NOW + 1
        )
        assert [p.offset if p else None for p in again] == [None, 3, None, 2]
        epoch = (await store.position("a")).epoch
        assert again[1] == Position(epoch, 3)
        history = await store.read("a", Position(epoch, 0))
        assert [e.data for e in history.events] == [b"a1", b"a2", b"a3"]
        # An id is one event whatever its topic.
        assert await store.append_once([("c", b"c1", "id-2")], NOW + 2) == [None]
        assert (await store.position("c")).offset == 0

    backend.run(scenario)


def test_append_once_window_is_bounded_by_age_and_count(backend: Backend) -> None:
    """An id older than dedup_max_age, or pushed out by dedup_max_events newer ones (at the latest by trim), is appended again."""

    async def scenario(store: Store) -> None:
        await store.append_once([("t", b"0", "old")], NOW)
        assert await store.append_once([("t", b"0", "old")], NOW + 59) == [None]
        assert (await store.append_once([("t", b"0", "old")], NOW + 61))[0] is not None
        await store.append_once([("t", b"x", f"n{i}") for i in range(4)], NOW + 100)
        await store.trim(NOW + 100)
        # The window holds the newest 3 ids (n1, n2, n3): "old" and n0 are forgotten.
        fresh = await store.append_once([("t", b"n3", "n3"), ("t", b"n0", "n0")], NOW + 101)
        assert fresh[0] is None and fresh[1] is not None

    backend.run(scenario, dedup_max_events=3, dedup_max_age=60)


def test_append_once_race_on_two_instances_stores_each_id_once(backend: Backend) -> None:
    """Many tasks (on two store instances where storage is shared) appending the same ids store each id once, offsets gapless."""

    async def scenario(first: Store) -> None:
        second = backend.make() if backend.shared else first
        if second is not first:
            await second.open()
        try:

            async def writer(index: int) -> list[bool]:
                store = first if index % 2 else second
                answers = []
                for n in range(10):
                    positions = await store.append_once([("t", f"e{n}".encode(), f"id-{n}")], NOW)
                    answers.append(positions[0] is not None)
                return answers

            results = await asyncio.gather(*(writer(i) for i in range(6)))
            assert [sum(r[n] for r in results) for n in range(10)] == [1] * 10
            epoch = (await first.position("t")).epoch
            history = await first.read("t", Position(epoch, 0))
            assert [e.offset for e in history.events] == list(range(1, 11))
            assert sorted(e.data for e in history.events) == sorted(f"e{n}".encode() for n in range(10))
        finally:
            if second is not first:
                await second.close()

    backend.run(scenario)


def test_append_once_window_survives_a_new_instance(backend: Backend) -> None:
    """A durable store (a new instance on the same file or server) still refuses an id it stored."""
    if not backend.shared:
        pytest.skip("a memory store's window dies with the instance")

    async def write(store: Store) -> None:
        assert (await store.append_once([("t", b"e", "kept")], NOW))[0] is not None

    async def reopen(store: Store) -> None:
        assert await store.append_once([("t", b"e", "kept")], NOW + 1) == [None]
        assert (await store.position("t")).offset == 1

    backend.run(write)
    backend.run(reopen)


def test_concurrent_tasks_get_unique_gapless_offsets(backend: Backend) -> None:
    """Many tasks appending at once (on two store instances where storage is shared) get offsets 1..N, each once."""

    async def scenario(first: Store) -> None:
        second = backend.make() if backend.shared else first
        if second is not first:
            await second.open()
        try:

            async def writer(index: int) -> None:
                store = first if index % 2 else second
                for n in range(10):
                    data = f"{index}:{n}".encode()
                    if n % 4 == 0:
                        await store.append_many([("t", data), ("t", data + b"+")], NOW)
                    else:
                        await store.append("t", data, NOW)

            await asyncio.gather(*(writer(i) for i in range(8)))
            epoch = (await first.position("t")).epoch
            history = await first.read("t", Position(epoch, 0))
            assert [e.offset for e in history.events] == list(range(1, 8 * 13 + 1))
            for index in range(8):  # each writer's events in its own order
                mine = [e.data for e in history.events if e.data.startswith(b"%d:" % index)]
                expected = [
                    f"{index}:{n}".encode() + plus for n in range(10) for plus in ([b"", b"+"] if n % 4 == 0 else [b""])
                ]
                assert mine == expected
        finally:
            if second is not first:
                await second.close()

    backend.run(scenario)


def test_two_processes_get_unique_gapless_offsets(backend: Backend) -> None:
    """Two OS processes appending to one topic at once get every offset 1..N exactly once, each in its own order."""
    if not backend.shared:
        pytest.skip("a memory store is private to its process")
    count = 150
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), backend.url, backend.prefix, "t", f"p{i}", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready", writer.stderr
        for writer in writers:  # both are open: start them together
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()

    async def check(store: Store) -> None:
        epoch = (await store.position("t")).epoch
        history = await store.read("t", Position(epoch, 0), limit=10_000)
        assert [e.offset for e in history.events] == list(range(1, 2 * count + 1))
        for tag in ("p0", "p1"):
            mine = [e.data.decode() for e in history.events if e.data.startswith(tag.encode() + b":")]
            assert mine == [f"{tag}:{i}" for i in range(count)]

    backend.run(check)


def test_a_new_instance_on_the_same_storage_keeps_history_and_epoch(backend: Backend) -> None:
    """Reopening a durable store (a new Store on the same file or server) keeps the events, offsets and epoch."""
    if not backend.shared:
        pytest.skip("a memory store's history dies with the instance; see test_memory_store_restart_is_a_new_epoch")
    before: list[Position] = []

    async def write(store: Store) -> None:
        before.extend(await store.append_many([("t", b"1"), ("t", b"2")], NOW))
        await store.save_session("tok", {"user": "ann"}, ttl=60, now=NOW)
        await store.set_subscriptions("ann", [{"topic": "t"}])

    async def reopen(store: Store) -> None:
        assert await store.position("t") == before[-1]
        history = await store.read("t", before[0])
        assert history.recovered and [e.data for e in history.events] == [b"2"]
        assert await store.append("t", b"3", NOW) == Position(before[0].epoch, 3)
        assert await store.load_session("tok", NOW) == {"user": "ann"}
        assert await store.subscribers("t") == ["ann"]

    backend.run(write)
    backend.run(reopen)


def test_lost_history_starts_a_new_epoch(backend: Backend) -> None:
    """When the stored data vanishes (file deleted, FLUSHDB, database dropped), streams restart in a new epoch."""
    before: list[Position] = []

    async def write(store: Store) -> None:
        before.append(await store.append("t", b"1", NOW))
        before.append(await store.append("t", b"2", NOW))

    async def after(store: Store) -> None:
        position = await store.position("t")
        assert position.offset == 0 and position.epoch != before[-1].epoch
        history = await store.read("t", before[0])
        assert (history.recovered, history.reason) == (False, EPOCH_CHANGED)
        assert await store.append("t", b"new", NOW) == Position(position.epoch, 1)

    backend.run(write)
    backend.lose_history()
    backend.run(after)


def test_memory_store_restart_is_a_new_epoch() -> None:
    """Every MemoryStore instance starts a new epoch: its history is gone after a restart."""

    async def main() -> None:
        first, second = MemoryStore(), MemoryStore()
        await first.open()
        await second.open()
        position = await first.append("t", b"1", NOW)
        assert (await second.position("t")).epoch != position.epoch
        assert (await second.read("t", position)).reason == EPOCH_CHANGED

    asyncio.run(main())


def test_methods_before_open_raise_store_not_open(backend: Backend) -> None:
    """Calling a store before open() (or after close()) raises StoreNotOpen naming the fix."""

    async def main() -> None:
        store = backend.make()
        with pytest.raises(StoreNotOpen, match="call await store.open"):
            await store.append("t", b"1", NOW)
        await store.open()
        await store.close()
        with pytest.raises(StoreNotOpen):
            await store.position("t")
        await store.close()  # closing twice is harmless

    asyncio.run(main())


# Sessions


def test_sessions_save_load_expire_delete_and_list(backend: Backend) -> None:
    """Sessions load until they expire, can be replaced and deleted, and list as live records with token and expiry."""

    async def scenario(store: Store) -> None:
        assert await store.load_session("nobody", NOW) is None
        await store.save_session("tok-b", {"user": "bob", "topics": ["a", "b"]}, ttl=60, now=NOW)
        await store.save_session("tok-a", {"user": "ann"}, ttl=10, now=NOW)
        await store.save_session("tok-c", {"user": None}, ttl=600, now=NOW)
        assert await store.load_session("tok-b", NOW + 59) == {"user": "bob", "topics": ["a", "b"]}
        assert await store.load_session("tok-a", NOW + 10) is None  # expired at exactly now + ttl
        assert [s["token"] for s in await store.list_sessions(NOW)] == ["tok-a", "tok-b", "tok-c"]
        assert await store.list_sessions(NOW + 30) == [
            {"user": "bob", "topics": ["a", "b"], "token": "tok-b", "expires_at": NOW + 60},
            {"user": None, "token": "tok-c", "expires_at": NOW + 600},
        ]
        await store.save_session("tok-b", {"user": "bob", "n": 2}, ttl=600, now=NOW + 30)  # refreshed
        assert await store.load_session("tok-b", NOW + 100) == {"user": "bob", "n": 2}
        await store.delete_session("tok-b")
        await store.delete_session("tok-b")  # unknown tokens are ignored
        assert await store.load_session("tok-b", NOW) is None
        await store.trim(NOW + 1000)  # also drops expired sessions
        assert await store.list_sessions(NOW) == []

    backend.run(scenario)


def test_session_records_must_be_json(backend: Backend) -> None:
    """A record that JSON can't carry, or a ttl that isn't positive, is refused before anything is stored."""

    async def scenario(store: Store) -> None:
        with pytest.raises(TypeError, match="session record is not json-serializable"):
            await store.save_session("tok", {"when": object()}, ttl=60, now=NOW)
        with pytest.raises(ValueError, match="ttl"):
            await store.save_session("tok", {}, ttl=0, now=NOW)
        assert await store.load_session("tok", NOW) is None

    backend.run(scenario)


# Subscriptions


def test_subscriptions_set_get_and_subscribers(backend: Backend) -> None:
    """set_subscriptions replaces an owner's list; subscribers lists the owners with an exact subscription."""

    async def scenario(store: Store) -> None:
        assert await store.get_subscriptions("ann") == []
        ann: list[dict[str, Any]] = [
            {"topic": "shop.Order", "match": "exact", "options": {"filter": {"status": "open"}}},
            {"topic": "shop", "match": "prefix", "options": {}},
            {"topic": "shop.Item"},
        ]
        await store.set_subscriptions("ann", ann)
        await store.set_subscriptions(
            "anon:tok", [{"topic": "shop.Order"}, {"topic": "shop.Order", "options": {"x": 1}}]
        )
        assert await store.get_subscriptions("ann") == [
            ann[0],
            ann[1],
            {"topic": "shop.Item", "match": "exact", "options": {}},
        ]
        assert await store.subscribers("shop.Order") == ["ann", "anon:tok"]
        assert await store.subscribers("shop") == []  # a prefix subscription is not exact
        await store.set_subscriptions("ann", [{"topic": "shop.Item"}])
        assert await store.subscribers("shop.Order") == ["anon:tok"]
        assert await store.subscribers("shop.Item") == ["ann"]
        await store.set_subscriptions("anon:tok", [])
        assert await store.get_subscriptions("anon:tok") == []
        assert await store.subscribers("shop.Order") == []

    backend.run(scenario)


def test_bad_subscriptions_are_refused(backend: Backend) -> None:
    """Subscriptions without a topic, with unknown keys, or with non-mapping options raise and change nothing."""

    async def scenario(store: Store) -> None:
        await store.set_subscriptions("ann", [{"topic": "t"}])
        with pytest.raises(ValueError, match="invalid topic None in subscription 1"):
            await store.set_subscriptions("ann", [{"topic": "u"}, {"match": "exact"}])
        with pytest.raises(ValueError, match="unknown key 'id' in subscription 0"):
            await store.set_subscriptions("ann", [{"topic": "u", "id": 3}])
        with pytest.raises(TypeError, match="options of subscription 0 must be a mapping"):
            await store.set_subscriptions("ann", [{"topic": "u", "options": [1]}])
        assert await store.get_subscriptions("ann") == [{"topic": "t", "match": "exact", "options": {}}]

    backend.run(scenario)


# Choosing a backend by URL


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///telegraphy.db", "telegraphy.db"),
        ("sqlite:///data/events.db", "data/events.db"),
        ("sqlite:////var/lib/telegraphy/events.db", "/var/lib/telegraphy/events.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///with%20space.db", "with space.db"),
    ],
)
def test_open_store_sqlite_paths(url: str, path: str) -> None:
    """sqlite:/// URLs name a relative path, sqlite://// an absolute one, sqlite://:memory: a private database."""
    store = open_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


def test_open_store_picks_the_backend_and_options() -> None:
    """The URL's scheme picks the backend; options reach it; nothing connects until open()."""
    memory = open_store("memory://", max_events=5, max_age=60, prefix="x")
    assert isinstance(memory, MemoryStore) and (memory.max_events, memory.max_age, memory.prefix) == (5, 60.0, "x")
    defaults = open_store("memory://")
    assert isinstance(defaults, MemoryStore) and isinstance(defaults, Store)
    assert (defaults.max_events, defaults.max_age, defaults.prefix) == (10_000, 86_400.0, "telegraphy")
    sqlite = open_store("sqlite:///x.db", prefix="y")
    assert isinstance(sqlite, SQLiteStore) and isinstance(sqlite, Store) and sqlite.prefix == "y"


def test_open_store_picks_redis() -> None:
    """redis:// and rediss:// URLs build a RedisStore (when redis-py is installed) without connecting."""
    pytest.importorskip("redis", reason="redis-py is not installed (pip install telegraphy[redis])")
    from telegraphy.store.redis import RedisStore

    for url in ("redis://127.0.0.1:1/3", "rediss://:pw@cache.example.com:6380/0"):
        store = open_store(url, max_events=7)
        assert isinstance(store, RedisStore) and isinstance(store, Store) and store.max_events == 7


def test_open_store_picks_mongodb() -> None:
    """mongodb:// and mongodb+srv:// URLs build a MongoStore (when PyMongo is installed) without connecting."""
    pytest.importorskip("pymongo", reason="pymongo is not installed (pip install telegraphy[mongodb])")
    from telegraphy.store.mongodb import MongoStore

    for url in ("mongodb://127.0.0.1:1/events", "mongodb+srv://user:pw@cluster.example.com/events"):
        store = open_store(url, prefix="z")
        assert isinstance(store, MongoStore) and isinstance(store, Store) and store.prefix == "z"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        (
            "postgres://db/x",
            {},
            "unsupported store scheme 'postgres' in 'postgres://db/x' (supported: memory://, sqlite://",
        ),
        ("events.db", {}, "unsupported store url without a scheme"),
        ("ftp://u:secret@host/x", {}, "'ftp://u:***@host/x'"),
        ("sqlite://host/events.db", {}, "no host allowed; use sqlite:///relative/path.db"),
        ("sqlite://", {}, "no file path"),
        ("memory://", {"max_events": 0}, "invalid max_events 0"),
        ("memory://", {"max_age": -1}, "invalid max_age -1"),
        ("memory://", {"prefix": "a-b"}, "invalid prefix 'a-b'"),
        ("memory://", {"maxevents": 3}, "unknown store option 'maxevents' (supported: max_events, max_age, prefix"),
        ("memory://", {"dedup_max_events": 0}, "invalid dedup_max_events 0"),
        ("sqlite:///x.db", {"dedup_max_age": 0}, "invalid dedup_max_age 0"),
    ],
)
def test_open_store_refuses_bad_urls_and_options(url: str, options: dict[str, Any], message: str) -> None:
    """A bad URL or option raises StoreConfigError saying what is accepted (and never the password)."""
    with pytest.raises(StoreConfigError) as caught:
        open_store(url, **options)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    [("redis://localhost/0", "redis", "redis"), ("mongodb://localhost/x", "pymongo", "mongodb")],
)
def test_open_store_names_the_extra_for_a_missing_package(
    monkeypatch: pytest.MonkeyPatch, url: str, package: str, extra: str
) -> None:
    """A backend whose package is not installed says which extra to install."""
    module = "telegraphy.store.redis" if package == "redis" else "telegraphy.store.mongodb"
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, package, None)  # makes `import <package>` fail
    with pytest.raises(MissingDependency, match=rf"pip install telegraphy\[{extra}\]"):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@127.0.0.1:1/0",
        "mongodb://user:s3cret@127.0.0.1:1/db?serverSelectionTimeoutMS=300",
    ],
)
def test_unreachable_server_raises_store_unavailable_without_the_password(url: str) -> None:
    """open() on a server that isn't there raises StoreUnavailable naming the URL, password hidden."""
    package = "redis" if url.startswith("redis") else "pymongo"
    pytest.importorskip(package, reason=f"{package} is not installed")

    async def main() -> None:
        with pytest.raises(StoreUnavailable) as caught:
            await open_store(url).open()
        message = str(caught.value)
        assert "127.0.0.1:1" in message and "***" in message and "s3cret" not in message
        assert caught.value.http_status == 503

    asyncio.run(main())


def test_sqlite_file_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    """A SQLite file that can't be created raises StoreUnavailable naming the path."""

    async def main() -> None:
        with pytest.raises(StoreUnavailable, match="unable to open database file"):
            await open_store(f"sqlite:///{tmp_path}/missing/dir/x.db").open()

    asyncio.run(main())


def test_redact_url_hides_passwords() -> None:
    """URLs in messages show the user and host but never the password, in the user part or the query."""
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("mongodb://ann:pw@h1,h2/db?replicaSet=r") == "mongodb://ann:***@h1,h2/db?replicaSet=r"
    assert redact_url("redis://h/0?password=pw&db=1") == "redis://h/0?password=***&db=1"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


# Revocations


def test_revocations_are_kept_until_their_expiry_listed_by_prefix_and_replaced(backend: Backend) -> None:
    """put_revocation keeps a record until its expiry; list_revocations filters by prefix; a put replaces; trim drops expired ones."""

    async def scenario(store: Store) -> None:
        assert await store.list_revocations("user:", NOW) == {}
        assert await store.put_revocation("user:logout:7", {"at": NOW}, NOW + 60, NOW) is True
        assert await store.put_revocation("user:grants:7", {"at": NOW, "grants": {"superuser": False}}, NOW + 10, NOW)
        assert await store.put_revocation("jti:abc", {}, NOW + 60, NOW)
        assert await store.list_revocations("user:", NOW) == {
            "user:logout:7": {"at": NOW},
            "user:grants:7": {"at": NOW, "grants": {"superuser": False}},
        }
        assert await store.list_revocations("", NOW + 10) == {"user:logout:7": {"at": NOW}, "jti:abc": {}}
        assert await store.put_revocation("user:logout:7", {"at": NOW + 5}, NOW + 120, NOW + 5) is True
        assert await store.list_revocations("user:logout:", NOW + 100) == {"user:logout:7": {"at": NOW + 5}}
        await store.trim(NOW + 100)
        assert await store.list_revocations("", NOW + 50) == {"user:logout:7": {"at": NOW + 5}}
        with pytest.raises(ValueError):
            await store.put_revocation("k", {}, NOW, NOW)
        with pytest.raises(TypeError):
            await store.put_revocation("k", {"x": object()}, NOW + 1, NOW)

    backend.run(scenario)


def test_only_new_revocation_is_written_once_while_live(backend: Backend) -> None:
    """put_revocation(only_new=True) refuses a key that is live, also when many tasks on two instances race; an expired key is free again."""

    async def scenario(first: Store) -> None:
        second = backend.make() if backend.shared else first
        if second is not first:
            await second.open()
        try:
            results = await asyncio.gather(
                *(
                    (first if i % 2 else second).put_revocation("jti:x", {"i": i}, NOW + 60, NOW, only_new=True)
                    for i in range(10)
                )
            )
            assert results.count(True) == 1
            assert await first.put_revocation("jti:x", {}, NOW + 60, NOW + 59, only_new=True) is False
            assert await second.put_revocation("jti:x", {"again": True}, NOW + 200, NOW + 60, only_new=True) is True
            assert await first.list_revocations("jti:", NOW + 61) == {"jti:x": {"again": True}}
        finally:
            if second is not first:
                await second.close()

    backend.run(scenario)


def test_revocations_survive_a_new_instance(backend: Backend) -> None:
    """A durable store (a new instance on the same file or server) still lists the live revocations."""
    if not backend.shared:
        pytest.skip("a memory store's revocations die with the instance")

    async def write(store: Store) -> None:
        await store.put_revocation("user:logout:ann", {"at": NOW}, NOW + 3600, NOW)

    async def reopen(store: Store) -> None:
        assert await store.list_revocations("user:", NOW + 1) == {"user:logout:ann": {"at": NOW}}

    backend.run(write)
    backend.run(reopen)
