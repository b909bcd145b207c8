"""Several gateway processes acting as one: a Redis bus, a shared store, resume on another node."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from gateway_helpers import GatewayCrashed, GatewayProcess, wait_for_async
from test_session_resume import CHAT, CHAT_CHANNELS, TOPIC, Client, client_publish, join_as, numbers, publish
from tornado.websocket import websocket_connect

from telegraphy.bus import BusSigner, bus_key

REDIS = ("127.0.0.1", 6379)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")


@pytest.fixture
def cluster(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> Callable[[], GatewayProcess]:
    """Start gateway nodes sharing one SQLite store and one Redis bus channel of their own."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
    }
    secret = secrets.token_urlsafe(32)
    return lambda: gateway_process(env=env, secret=secret)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_events_published_to_either_node_reach_subscribers_on_both_once(cluster: Callable[[], GatewayProcess]) -> None:
    """Subscribers on two nodes each get every event exactly once, in one order, whichever node took the POST."""
    a, b = cluster(), cluster()

    async def scenario() -> None:
        on_a = await Client.open(a)
        await on_a.hello()
        await on_a.subscribe()
        on_b = await Client.open(b)
        await on_b.hello()
        await on_b.subscribe()
        for n in range(1, 11):
            publish(a if n % 2 else b, n)
        got_a = await on_a.events(10)
        got_b = await on_b.events(10)
        assert numbers(got_a) == numbers(got_b) == list(range(1, 11))
        offsets = [e[3]["offset"] for e in got_a]
        assert offsets == sorted(offsets) and len(set(offsets)) == 10
        assert offsets == [e[3]["offset"] for e in got_b]
        # Nothing else arrives: a sentinel published now is the very next event.
        publish(a, 99)
        assert numbers(await on_a.events(1)) == [99]
        assert numbers(await on_b.events(1)) == [99]
        on_a.close()
        on_b.close()

    run(scenario())


def test_clients_of_a_killed_node_resume_on_the_survivor_with_every_event_once(cluster: Callable[[], GatewayProcess]) -> None:
    """kill -9 one node while events keep coming: its client resumes on the other node and ends with each event once, in order."""
    a, b = cluster(), cluster()
    total = 60
    published: list[int] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        # Publishes through the surviving node only, so that no accepted event is lost with the killed one.
        try:
            for n in range(1, total + 1):
                publish(b, n)
                published.append(n)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    async def scenario() -> None:
        client = await Client.open(a)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(b, 0)
        seen = await client.events(1)  # the subscription is saved and live
        thread = threading.Thread(target=publisher)
        thread.start()
        deadline = time.monotonic() + 20
        while len(published) < total // 3:  # poll until a third is out, with a deadline
            assert time.monotonic() < deadline and not errors, errors or "publisher too slow"
            await asyncio.sleep(0.01)
        a.kill()
        try:
            while True:
                seen.append(await client.receive())
        except (AssertionError, asyncio.TimeoutError):
            pass  # the connection died with the node
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
        assert not errors, errors
        last = seen[-1][3]
        again = await Client.open(b)
        welcome = await again.hello(resume_token=token, resume_offsets={TOPIC: [last["epoch"], last["offset"]]})
        assert welcome["resumed"] is True and welcome["recovered"] == {TOPIC: True}
        expected_rest = total - (len(seen) - 1)
        seen += await again.events(expected_rest)
        assert numbers(seen) == list(range(0, total + 1))
        again.close()

    run(scenario())
    with pytest.raises(GatewayCrashed):
        a.stop()


def test_racing_publishes_to_two_nodes_on_new_topics_all_arrive_in_offset_order(cluster: Callable[[], GatewayProcess]) -> None:
    """Node A stores an event, node B stores the next one and would deliver it before A's announcement arrives: none may be skipped."""
    a, b = cluster(), cluster()
    topics = [f"race.topic{n}" for n in range(12)]

    async def scenario() -> None:
        subscriber = await Client.open(b)
        await subscriber.hello()
        for topic in topics:
            await subscriber.subscribe(topic)
        loop = asyncio.get_running_loop()
        for topic in topics:
            # Both POSTs at once, on fresh topics: the subscriber's node has delivered nothing on them yet.
            await asyncio.gather(
                loop.run_in_executor(None, lambda topic=topic: publish(a, 1, topic=topic)),
                loop.run_in_executor(None, lambda topic=topic: publish(b, 2, topic=topic)),
            )
        got = await subscriber.events(2 * len(topics))
        by_topic: dict[int, list[int]] = {}
        for event in got:
            by_topic.setdefault(event[1], []).append(event[3]["offset"])
        assert sorted(len(offsets) for offsets in by_topic.values()) == [2] * len(topics), got
        assert all(offsets == [1, 2] for offsets in by_topic.values()), by_topic
        subscriber.close()

    run(scenario())


def test_eligible_and_exclude_hold_across_nodes(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """A whisper eligible to a session on node A reaches it and no session on node B; exclude and eligible_authid lists hold on B too."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
        "TELEGRAPHY_CHANNELS": CHAT_CHANNELS,
    }
    secret = secrets.token_urlsafe(32)
    a, b = gateway_process(env=env, secret=secret), gateway_process(env=env, secret=secret)

    async def scenario() -> None:
        eight, eight_id, _ = await join_as(a, "8")
        seven, seven_id, _ = await join_as(b, "7")
        six, _, _ = await join_as(b, "6")
        whisperer, _, _ = await join_as(a, "9")
        for client in (eight, seven, six):
            await client.subscribe(CHAT)
        await client_publish(whisperer, 1, {"eligible": [eight_id]}, "whisper")
        await client_publish(whisperer, 2, {"exclude": [seven_id]}, "not for 7")
        await client_publish(whisperer, 3, {"eligible_authid": ["7"]}, "for user 7")
        await client_publish(whisperer, 4, {}, "for all")
        got = {}
        for name, client in (("8", eight), ("7", seven), ("6", six)):
            received = []
            while not received or received[-1] != "for all":
                received.append((await client.events(1))[0][4][0])
            got[name] = received
            client.close()
        whisperer.close()
        assert got == {"8": ["whisper", "not for 7", "for all"], "7": ["for user 7", "for all"], "6": ["not for 7", "for all"]}

    run(scenario())


def _rejected(gw: GatewayProcess) -> float:
    """The gateway's telegraphy_bus_messages_rejected_total counter."""
    with urllib.request.urlopen(f"{gw.url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("telegraphy_bus_messages_rejected_total "):
                return float(line.split()[1])
    return -1.0


def test_forged_bus_messages_are_dropped_and_escalate_nobody(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """A revocation PUBLISHed into Redis by someone without the secret (unsigned, or signed with another key, or sent to a node's direct channel) is dropped and counted: the live session keeps its grants."""
    channel = f"telegraphy-test-{secrets.token_hex(6)}"
    env = {"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel={channel}"}
    gw = gateway_process(env=env)
    assert gw.secret is not None
    forged = json.dumps({"n": "intruder", "r": {"user": "7", "logout": False, "grants": {"superuser": True}}}).encode()
    wrong_key = BusSigner(bus_key("not-the-gateway-secret-" + "x" * 32))

    async def scenario() -> None:
        user7 = Client(await websocket_connect(gw.ws_url, subprotocols=["wamp.2.json"]))
        await user7.hello(authmethods=["ticket"], _ticket=gw.connect_token("7"))
        intruder = redis.Redis(*REDIS)
        try:
            direct = [c.decode() for c in intruder.pubsub_channels(f"{channel}:node:*")]
            assert len(direct) == 1, direct
            intruder.publish(channel, forged)
            intruder.publish(channel, wrong_key.sign(channel.encode(), forged, time.time()))
            intruder.publish(direct[0], b'{"forged": "sockjs traffic"}')
        finally:
            intruder.close()
        async def all_dropped() -> bool:
            return _rejected(gw) == 3

        await wait_for_async(all_dropped, 5.0, 0.05, "the gateway did not drop the 3 forged messages")
        await user7.send([32, 2, {}, "user.8.inbox"])
        refused = await user7.receive()
        assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized", refused
        user7.close()

    run(scenario())
    assert "dropped 1 bus message(s) that were not signed" in gw.stderr()


def test_a_recorded_bus_message_replayed_into_redis_is_dropped(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """A genuine, signed bus message recorded off Redis and PUBLISHed again seconds later is dropped as a replay: the event is not delivered twice."""
    channel = f"telegraphy-test-{secrets.token_hex(6)}"
    env = {"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel={channel}"}
    gw = gateway_process(env=env)

    async def scenario() -> None:
        client = Client(await websocket_connect(gw.ws_url, subprotocols=["wamp.2.json"]))
        await client.hello()
        await client.subscribe()
        recorder = redis.Redis(*REDIS)
        tap = recorder.pubsub()
        tap.subscribe(channel)
        try:
            assert tap.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
            publish(gw, 1)
            assert numbers(await client.events(1)) == [1]
            recorded = tap.get_message(timeout=5)
            assert recorded is not None and recorded["type"] == "message", recorded
            recorder.publish(channel, recorded["data"])  # the same signed bytes, again
        finally:
            tap.close()
            recorder.close()

        async def dropped() -> bool:
            return _rejected(gw) == 1

        await wait_for_async(dropped, 5.0, 0.05, "the gateway did not drop the replayed message")
        publish(gw, 2)
        assert numbers(await client.events(1)) == [2]  # not 1 again
        client.close()

    run(scenario())
    assert "replayed" in gw.stderr()
