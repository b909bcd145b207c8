"""What the gateway's persistence keeps per topic and per session stays bounded (issue 11, findings 8 and 9).

These drive the real :class:`~telegraphy.tornado_gateway.persistence.Persistence`
over the in-memory store (the reference backend) with a real router and its
sessions, in one asyncio loop, no sockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from gateway_helpers import wait_for_async

from telegraphy.store import open_store
from telegraphy.tokens import mint_connect_token
from telegraphy.tornado_gateway.persistence import Persistence
from telegraphy.wamp import JSON, Authenticator, Router, ServerSession, WireCodec

SECRET = "s" * 40
CODEC = WireCodec(JSON)


def send(session: ServerSession, *messages: list[Any]) -> list[list[Any]]:
    """Feed ``messages`` to ``session``; return what it answered, decoded."""
    for message in messages:
        session.receive(json.dumps(message), time.time())
    return [json.loads(frame) for frame in session.data_to_send()]


def join(router: Router, user: str | None = None, **details: Any) -> tuple[ServerSession, dict[str, Any]]:
    """Open a session, anonymous or with a ticket for ``user``; return it and its WELCOME details (maybe not yet there)."""
    session = router.attach(CODEC)
    hello = [1, "telegraphy", {"roles": {"subscriber": {}}, **details}]
    if user is None:
        answers = send(session, hello)
    else:
        hello[2]["authmethods"] = ["ticket"]
        send(session, hello)
        answers = send(session, [5, mint_connect_token(SECRET, user), {}])
    return session, answers[0][2] if answers else {}


def subscribe(session: ServerSession, topic: str, request: int = 1) -> int:
    [subscribed] = send(session, [32, request, {}, topic])
    assert subscribed[0] == 33, subscribed
    return int(subscribed[2])


async def settled(persistence: Persistence) -> None:
    """Wait until everything accepted is delivered and every session change is saved."""
    await persistence.accepted()

    async def saved() -> bool:
        persistence._wakeup.set()
        await asyncio.sleep(0)
        return not persistence._saves and not persistence._jobs

    await wait_for_async(saved, timeout=10.0, interval=0.01)


async def started(**options: Any) -> tuple[Router, Persistence, Any]:
    router = Router(Authenticator(SECRET))
    store = open_store("memory://")
    await store.open()
    return router, Persistence(router, store, **options), store


def test_per_topic_state_is_released_when_the_last_subscriber_leaves() -> None:
    """Subscribing to 600 unique topics that get events, then leaving (unsubscribe, GOODBYE, lost connection), leaves no per-topic state."""

    async def scenario() -> None:
        router, persistence, store = await started()
        sessions = [join(router)[0], join(router, user="7")[0], join(router)[0]]
        ids: dict[str, int] = {}
        for n in range(600):
            session = sessions[n % 3]
            topic = f"room.{n}." + "x" * 100
            ids[topic] = subscribe(session, topic, request=n + 1)
            router.publish_event({"name": topic, "meta": {}, "data": {"n": n}})
        kept, kept_session = "room.kept", join(router)[0]
        subscribe(kept_session, kept)
        router.publish_event({"name": kept, "meta": {}, "data": {}})
        await settled(persistence)
        assert len(persistence._next) == 601
        for n, (topic, subscription) in enumerate(ids.items()):
            if n % 3 == 0:
                send(sessions[0], [34, 10_000 + n, subscription])
        send(sessions[1], [6, {}, "wamp.close.goodbye_and_out"])
        sessions[2].connection_lost()
        await settled(persistence)
        assert list(persistence._next) == [kept]
        await persistence.close()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_events_nobody_here_receives_make_no_per_topic_state() -> None:
    """Events on 500 topics without a subscriber in this process are stored, but leave no per-topic state behind."""

    async def scenario() -> None:
        router, persistence, store = await started()
        for n in range(500):
            router.publish_event({"name": f"nobody.{n}", "meta": {}, "data": {}})
        await settled(persistence)
        assert persistence._next == {}
        assert (await store.position("nobody.499")).offset >= 1
        await persistence.close()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_anonymous_sessions_are_stored_only_once_they_subscribe() -> None:
    """200 anonymous sessions that never subscribe leave no record; one that subscribes is stored with the anonymous TTL, and forgotten when it unsubscribes all."""

    async def scenario() -> None:
        router, persistence, store = await started(session_ttl=3600.0, anonymous_session_ttl=300.0)
        idle = [join(router)[0] for _ in range(200)]
        for session in idle[:100]:
            session.connection_lost()
        await settled(persistence)
        assert await store.list_sessions(time.time()) == []
        session, welcome = join(router)
        subscription = subscribe(session, "t")
        user, user_welcome = join(router, user="8")
        await settled(persistence)
        entries = {entry["token"]: entry for entry in await store.list_sessions(time.time())}
        assert set(entries) == {welcome["resume_token"], user_welcome["resume_token"]}
        now = time.time()
        assert entries[welcome["resume_token"]]["expires_at"] <= now + 300.0
        assert entries[user_welcome["resume_token"]]["expires_at"] > now + 3000.0
        send(session, [34, 2, subscription])
        await settled(persistence)
        assert [entry["token"] for entry in await store.list_sessions(time.time())] == [user_welcome["resume_token"]]
        await persistence.close()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_stored_anonymous_sessions_are_bounded() -> None:
    """Past max_anonymous_sessions, a newly subscribed anonymous session is not stored (and counted); authenticated ones still are."""

    async def scenario() -> None:
        router, persistence, store = await started(max_anonymous_sessions=5)
        for n in range(8):
            subscribe(join(router)[0], f"t.{n}")
        _, user_welcome = join(router, user="9")
        await settled(persistence)
        entries = await store.list_sessions(time.time())
        assert sum(entry["authrole"] == "anonymous" for entry in entries) == 5
        assert user_welcome["resume_token"] in {entry["token"] for entry in entries}
        assert persistence.anonymous_not_stored == 3
        await persistence.close()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_resumed_anonymous_session_stays_resumable() -> None:
    """An anonymous session that subscribed, dropped and resumed counts as connected again (never pruned as expired) and is stored when it drops again."""

    async def scenario() -> None:
        router, persistence, store = await started(max_anonymous_sessions=3)
        session, welcome = join(router)
        token = welcome["resume_token"]
        subscribe(session, "t")
        session.connection_lost()
        await settled(persistence)
        assert persistence._anonymous[token] < float("inf")  # disconnected: expires with its record
        again, _ = join(router, resume_token=token)
        await settled(persistence)
        [resumed] = [json.loads(frame) for frame in again.data_to_send()]
        assert resumed[0] == 2 and resumed[2]["resumed"] is True, resumed
        assert persistence._anonymous[token] == float("inf")  # connected again
        for n in range(2):
            subscribe(join(router)[0], f"u.{n}")
        again.connection_lost()
        await settled(persistence)
        assert token in {entry["token"] for entry in await store.list_sessions(time.time())}
        await persistence.close()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
