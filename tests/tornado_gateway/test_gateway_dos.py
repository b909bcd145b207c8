"""Resource bounds against real gateway processes (issue 11, findings 7, 8 and 9).

- a hostile filter cannot freeze the event loop: ``/health`` answers while
  its subscription and a large event are processed;
- topic URIs, filters and the gateway's subscriptions are bounded, with
  their documented errors and a metric;
- anonymous sessions are stored only once they subscribe.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_helpers import GatewayProcess, wait_for_async
from test_session_resume import DEADLINE, Client, publish

from telegraphy.store import open_store


def _get(gw: GatewayProcess, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"{gw.url}{path}", timeout=DEADLINE) as response:
        return response.status, response.read().decode()


def _post_event(gw: GatewayProcess, topic: str, data: Any) -> None:
    body = json.dumps({"name": topic, "meta": {"event_type": "update"}, "data": data}).encode()
    request = urllib.request.Request(
        f"{gw.url}/publish", data=body, headers={"Authorization": f"Bearer {gw.publish_token()}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        assert response.status == 202


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def _subscribe(client: Client, request: int, topic: str, options: dict[str, Any] | None = None) -> list[Any]:
    await client.send([32, request, options or {}, topic])
    return await client.receive()


def test_a_hostile_filter_and_a_large_event_leave_health_answering(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A filter of 32 × 1,000-item contains is refused; one within the bounds, with a 10,000-integer event, is judged cheaply while /health answers."""
    gw = gateway_process()

    async def scenario() -> None:
        hostile = await Client.open(gw)
        await hostile.hello()
        huge = {f"tags{n}__contains": list(range(1000)) for n in range(32)}
        refused = await _subscribe(hostile, 1, "t.big", {"filter": huge})
        assert refused[0] == 8 and refused[4] == "wamp.error.invalid_argument", refused[:5]
        assert "filter too large" in refused[5][0]
        bounded = {"tags__contains": list(range(1000)), "more__contains": list(range(1000, 2000))}
        accepted = await _subscribe(hostile, 2, "t.big", {"filter": bounded})
        assert accepted[0] == 33, accepted
        calm = await Client.open(gw)
        await calm.hello()
        await calm.subscribe("t.big")
        _post_event(gw, "t.big", {"tags": list(range(10_000)), "more": list(range(10_000))})
        status, _ = _get(gw, "/health")
        assert status == 200
        [event] = await calm.events(1)
        assert len(event[4][0]["data"]["tags"]) == 10_000
        # The hostile subscription's filter did not match (over its work budget): nothing came.
        publish(gw, 1, topic="t.big")
        [event] = await calm.events(1)
        await hostile.send([32, 3, {}, "t.ping"])
        assert (await hostile.receive())[0] == 33  # the next thing the hostile session gets is this answer: no EVENT
        hostile.close()
        calm.close()

    run(scenario())


def test_long_topics_and_the_gateway_wide_budget_are_refused_and_counted(gateway_process: Callable[..., GatewayProcess]) -> None:
    """A topic over --max-uri-length gets wamp.error.invalid_uri; past --max-total-subscriptions SUBSCRIBE gets limit_exceeded, counted in /metrics."""
    gw = gateway_process("--max-total-subscriptions", "3")

    async def scenario() -> None:
        client = await Client.open(gw)
        await client.hello()
        refused = await _subscribe(client, 1, "room." + "x" * 600)
        assert refused[0] == 8 and refused[4] == "wamp.error.invalid_uri", refused[:5]
        assert refused[5] == ["uri too long (605 characters, max 512)"]
        for n in range(3):
            assert (await _subscribe(client, 2 + n, f"room.{n}." + "x" * 400))[0] == 33
        other = await Client.open(gw)
        await other.hello()
        refused = await _subscribe(other, 1, "room.3")
        assert refused[0] == 8 and refused[4] == "telegraphy.error.limit_exceeded", refused[:5]
        assert (await _subscribe(other, 2, "room.0." + "x" * 400))[0] == 33  # shared: allowed
        client.close()
        other.close()

    run(scenario())
    _, text = _get(gw, "/metrics")
    assert "telegraphy_subscriptions_over_budget_total 1" in text.splitlines()


def test_anonymous_connections_that_never_subscribe_leave_no_stored_session(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """200 anonymous sessions that never subscribe leave 0 stored sessions; one that subscribed is stored and resumes."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    gw = gateway_process("--connection-rate", "0", env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        for batch in range(4):
            idle = [await Client.open(gw) for _ in range(50)]
            for client in idle:
                await client.hello()
            for client in idle:
                client.close()
        subscriber = await Client.open(gw)
        token = (await subscriber.hello())["resume_token"]
        await subscriber.subscribe("shop.Order")
        subscriber.close()
        store = open_store(store_url)
        await store.open()
        try:

            async def stored() -> list[dict[str, Any]]:
                return await store.list_sessions(time.time())

            entries = await wait_for_async(stored, timeout=DEADLINE)
            assert [entry["token"] for entry in entries] == [token]
            assert entries[0]["expires_at"] <= time.time() + 300
        finally:
            await store.close()
        publish(gw, 1)
        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token)
        assert welcome["resumed"] is True and [s["topic"] for s in welcome["subscriptions"]] == ["shop.Order"]
        again.close()

    run(scenario())
