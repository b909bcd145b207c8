"""Idempotent publish on real gateway processes: an event id (``meta.id``) is delivered at most once.

A publisher whose HTTP response was lost retries the same event with the same
``meta.id``; the gateway answers as for the first attempt and delivers
nothing again — on one node, after a restart on the same store, and across
two nodes sharing a store and a Redis bus.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GatewayProcess
from test_multinode import redis_reachable
from test_session_resume import TOPIC, Client

DEADLINE = 10.0


def post(gw: GatewayProcess, *events: tuple[str, int]) -> tuple[int, dict[str, Any]]:
    """POST events given as (meta.id, n) and return the status and the JSON answer."""
    body = json.dumps(
        [{"name": TOPIC, "meta": {"event_type": "update", "id": event_id}, "data": {"n": n}} for event_id, n in events]
    ).encode()
    request = urllib.request.Request(
        f"{gw.url}/publish",
        data=body,
        headers={"Authorization": f"Bearer {gw.publish_token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        return response.status, json.loads(response.read())


def duplicates_counted(gw: GatewayProcess) -> float:
    """The gateway's telegraphy_duplicate_events_total."""
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=DEADLINE) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("telegraphy_duplicate_events_total "):
                return float(line.split()[1])
    raise AssertionError("no telegraphy_duplicate_events_total in /metrics")


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def received(events: list[list[Any]]) -> list[tuple[str, int]]:
    """(meta.id, n) of each EVENT."""
    return [(e[4][0]["meta"]["id"], e[4][0]["data"]["n"]) for e in events]


@pytest.mark.parametrize("store", ["sqlite", "none"])
def test_a_retried_publish_is_delivered_once(gateway_process: Callable[..., GatewayProcess], tmp_path: Path, store: str) -> None:
    """The same meta.id POSTed twice (and twice in one batch) reaches a subscriber once, offsets consecutive, each POST answered alike."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}" if store == "sqlite" else "none"
    gw = gateway_process(env={"TELEGRAPHY_STORE": url})

    async def scenario() -> None:
        client = await Client.open(gw)
        await client.hello()
        await client.subscribe()
        first = post(gw, ("order-7-v1", 1))
        assert first == (202, {"published": 1, "ids": ["order-7-v1"]})
        # The response was lost: the publisher sends the same event again.
        assert post(gw, ("order-7-v1", 1)) == first
        assert post(gw, ("order-7-v2", 2), ("order-7-v2", 2)) == (202, {"published": 2, "ids": ["order-7-v2", "order-7-v2"]})
        post(gw, ("sentinel", 3))
        got = await client.events(3)
        assert received(got) == [("order-7-v1", 1), ("order-7-v2", 2), ("sentinel", 3)]
        if store == "sqlite":
            assert [e[3]["offset"] for e in got] == [1, 2, 3]
        assert duplicates_counted(gw) == 2
        client.close()

    run(scenario())


def test_a_retry_after_a_gateway_restart_on_the_same_store_is_delivered_once(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """An id stored before a restart is still known after it (the window is in the SQLite store): the retry is dropped."""
    env = {"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'events.sqlite3'}"}
    secret = secrets.token_urlsafe(32)
    before = gateway_process(env=env, secret=secret)
    assert post(before, ("evt-1", 1))[0] == 202
    before.stop()
    after = gateway_process(env=env, secret=secret)

    async def scenario() -> None:
        client = await Client.open(after)
        await client.hello()
        await client.subscribe()
        assert post(after, ("evt-1", 1)) == (202, {"published": 1, "ids": ["evt-1"]})
        post(after, ("evt-2", 2))
        got = await client.events(1)
        assert received(got) == [("evt-2", 2)]
        assert got[0][3]["offset"] == 2  # the retry took no offset
        client.close()

    run(scenario())


@pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")
def test_the_same_id_posted_to_two_nodes_is_delivered_once_everywhere(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """Two nodes sharing a SQLite store and a Redis bus: one id POSTed to each is delivered once to subscribers of both."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
    }
    secret = secrets.token_urlsafe(32)
    a, b = gateway_process(env=env, secret=secret), gateway_process(env=env, secret=secret)

    async def scenario() -> None:
        on_a, on_b = await Client.open(a), await Client.open(b)
        for client in (on_a, on_b):
            await client.hello()
            await client.subscribe()
        assert post(a, ("shared-1", 1)) == (202, {"published": 1, "ids": ["shared-1"]})
        assert post(b, ("shared-1", 1)) == (202, {"published": 1, "ids": ["shared-1"]})
        post(b, ("sentinel", 2))
        for client in (on_a, on_b):
            got = await client.events(2)
            assert received(got) == [("shared-1", 1), ("sentinel", 2)]
            assert [e[3]["offset"] for e in got] == [1, 2]
            client.close()
        assert duplicates_counted(a) + duplicates_counted(b) == 1

    run(scenario())


def test_while_the_store_fails_the_process_window_still_drops_a_retry() -> None:
    """With the store failing, a retry of an event stored before the failure, or of one delivered during it, is not delivered again."""
    from test_persistence_bounds import join, settled, subscribe

    from telegraphy.store import MemoryStore, StoreUnavailable
    from telegraphy.tornado_gateway.persistence import Persistence
    from telegraphy.wamp import Authenticator, Router

    class FailingStore(MemoryStore):
        failing = False

        async def append_once(self, items: Any, now: float) -> Any:
            if self.failing:
                raise StoreUnavailable("memory://", "down for the test")
            return await super().append_once(items, now)

    async def scenario() -> None:
        router = Router(Authenticator("s" * 40))
        store = FailingStore()
        await store.open()
        persistence = Persistence(router, store)
        session, _ = join(router)
        subscribe(session, TOPIC)
        session.data_to_send()

        def publish(event_id: str, n: int) -> None:
            router.publish_event({"name": TOPIC, "meta": {"id": event_id}, "data": {"n": n}})

        publish("before", 1)
        await settled(persistence)
        store.failing = True
        for event_id, n in [("before", 1), ("during", 2), ("during", 2), ("after", 3)]:
            publish(event_id, n)
        await settled(persistence)
        got = [json.loads(frame) for frame in session.data_to_send()]
        assert [(m[4][0]["meta"]["id"], m[4][0]["data"]["n"]) for m in got] == [("before", 1), ("during", 2), ("after", 3)]
        assert persistence.duplicates == 2

    asyncio.run(asyncio.wait_for(scenario(), 30))
