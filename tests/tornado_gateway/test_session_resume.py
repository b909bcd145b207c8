"""Session resume and missed-event recovery against real gateway processes and a SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GatewayCrashed, GatewayProcess
from tornado.websocket import WebSocketClientConnection, websocket_connect

TOPIC = "shop.Order"
DEADLINE = 10.0


def publish(gw: GatewayProcess, *numbers: int, topic: str = TOPIC) -> None:
    """POST events numbered ``numbers`` and wait for the 202 (stored and delivered)."""
    body = json.dumps([{"name": topic, "meta": {"event_type": "update"}, "data": {"n": n}} for n in numbers]).encode()
    request = urllib.request.Request(
        f"{gw.url}/publish",
        data=body,
        headers={"Authorization": f"Bearer {gw.publish_token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        assert response.status == 202


class Client:
    """A raw WAMP-over-WebSocket client that records what it receives."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, gw: GatewayProcess) -> Client:
        conn = await websocket_connect(gw.ws_url, subprotocols=["wamp.2.json"])
        return cls(conn)

    async def send(self, message: list[Any]) -> None:
        await self.conn.write_message(json.dumps(message))

    async def receive(self) -> list[Any]:
        text = await asyncio.wait_for(self.conn.read_message(), DEADLINE)
        assert text is not None, "connection closed"
        return json.loads(text)

    async def hello(self, **details: Any) -> dict[str, Any]:
        await self.send([1, "telegraphy", {"roles": {"subscriber": {}}, **details}])
        welcome = await self.receive()
        if welcome[0] == 4:  # CHALLENGE for a ticket
            await self.send([5, details.pop("_ticket"), {}])
            welcome = await self.receive()
        assert welcome[0] == 2, welcome
        return welcome[2]

    async def subscribe(self, topic: str = TOPIC) -> int:
        await self.send([32, 1, {}, topic])
        subscribed = await self.receive()
        assert subscribed[0] == 33, subscribed
        return int(subscribed[2])

    async def events(self, count: int) -> list[list[Any]]:
        received = [await self.receive() for _ in range(count)]
        assert all(m[0] == 36 for m in received), received
        return received

    def close(self) -> None:
        self.conn.close()


def numbers(events: list[list[Any]]) -> list[int]:
    return [e[4][0]["data"]["n"] for e in events]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'telegraphy.sqlite3'}"


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_event_details_and_meta_carry_epoch_and_offset(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """Every EVENT carries its stream position, consecutive per topic, in details and in meta."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        welcome = await client.hello()
        assert isinstance(welcome["resume_token"], str) and len(welcome["resume_token"]) >= 24
        await client.subscribe()
        publish(gw, 1, 2, 3)
        events = await client.events(3)
        offsets = [e[3]["offset"] for e in events]
        assert offsets == [offsets[0], offsets[0] + 1, offsets[0] + 2]
        assert len({e[3]["epoch"] for e in events}) == 1
        for event in events:
            assert event[4][0]["meta"]["offset"] == event[3]["offset"]
            assert event[4][0]["meta"]["epoch"] == event[3]["epoch"]
        client.close()

    run(scenario())


def test_reconnect_resumes_and_replays_missed_events_once_in_order(
    gateway_process: Callable[..., GatewayProcess], store_url: str
) -> None:
    """A client that comes back with its token and offsets gets the missed events, in order, then live ones."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(gw, 1, 2)
        seen = await client.events(2)
        last = seen[-1][3]
        client.close()
        publish(gw, 3, 4, 5)

        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token, resume_offsets={TOPIC: [last["epoch"], last["offset"]]})
        assert welcome["resumed"] is True
        assert welcome["recovered"] == {TOPIC: True}
        assert welcome["resume_token"] == token
        [restored] = welcome["subscriptions"]
        assert restored["topic"] == TOPIC and restored["match"] == "exact"
        missed = await again.events(3)
        assert numbers(missed) == [3, 4, 5]
        assert {e[1] for e in missed} == {restored["subscription"]}
        publish(gw, 6)
        assert numbers(await again.events(1)) == [6]
        again.close()

    run(scenario())


def test_resume_survives_a_gateway_killed_and_restarted_on_the_same_store(
    gateway_process: Callable[..., GatewayProcess], store_url: str
) -> None:
    """After kill -9 and a restart on the same SQLite store, the session resumes with nothing lost."""
    first = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def before() -> tuple[str, dict[str, Any], int]:
        client = await Client.open(first)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(first, 1)
        [event] = await client.events(1)
        return token, event[3], first.port

    token, last, port = run(before())
    first.kill()
    with pytest.raises(GatewayCrashed):
        first.stop()
    second = gateway_process(env={"TELEGRAPHY_STORE": store_url}, port=port)
    publish(second, 2, 3)

    async def after() -> None:
        client = await Client.open(second)
        welcome = await client.hello(resume_token=token, resume_offsets={TOPIC: [last["epoch"], last["offset"]]})
        assert welcome["resumed"] is True and welcome["recovered"] == {TOPIC: True}
        assert numbers(await client.events(2)) == [2, 3]
        client.close()

    run(after())


def test_trimmed_history_is_reported_as_not_recovered(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """When the missed events were trimmed away, WELCOME says recovered false with the reason, and nothing stale is replayed."""
    gw = gateway_process("--history-max-events", "2", env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(gw, 1)
        [event] = await client.events(1)
        client.close()
        publish(gw, 2, 3, 4, 5)
        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token, resume_offsets={TOPIC: [event[3]["epoch"], event[3]["offset"]]})
        assert welcome["resumed"] is True
        assert welcome["recovered"] == {TOPIC: False}
        assert welcome["recovery_errors"][TOPIC] == "history trimmed"
        publish(gw, 6)
        assert numbers(await again.events(1)) == [6]  # only live events follow
        again.close()

    run(scenario())


def test_changed_epoch_is_reported_as_not_recovered(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """An offset from another epoch of the stream cannot be recovered and says so."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(gw, 1)
        await client.events(1)
        client.close()
        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token, resume_offsets={TOPIC: ["an-older-epoch", 1]})
        assert welcome["recovered"] == {TOPIC: False}
        assert welcome["recovery_errors"][TOPIC] == "epoch changed"
        again.close()

    run(scenario())


@pytest.mark.parametrize("token", ["forged-token-that-was-never-issued", ""])
def test_unknown_token_gets_a_fresh_session(gateway_process: Callable[..., GatewayProcess], store_url: str, token: str) -> None:
    """A stale or forged resume token is refused cleanly: a fresh session, resumed false, with the reason."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        welcome = await client.hello(resume_token=token)
        assert welcome["resumed"] is False
        assert welcome["resume_error"] == "unknown or expired resume token"
        assert welcome["resume_token"] != token
        assert "subscriptions" not in welcome
        client.close()

    run(scenario())


def test_another_users_token_does_not_resume(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """A resume token is bound to its authid: presented by someone else it gives a fresh session."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        alice = await Client.open(gw)
        token = (await alice.hello(authmethods=["ticket"], _ticket=gw.connect_token("alice")))["resume_token"]
        await alice.subscribe("user.alice.inbox")
        publish(gw, 1, topic="user.alice.inbox")
        await alice.events(1)
        alice.close()
        mallory = await Client.open(gw)
        welcome = await mallory.hello(resume_token=token)
        assert welcome["authid"] == "anonymous"
        assert welcome["resumed"] is False
        mallory.close()

    run(scenario())


def test_goodbye_forgets_the_session(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """A session closed with GOODBYE cannot be resumed."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        await client.send([6, {}, "wamp.close.close_realm"])
        assert (await client.receive())[0] == 6
        client.close()
        publish(gw, 1)  # the session deletion is written before this publish completes
        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token)
        assert welcome["resumed"] is False
        again.close()

    run(scenario())


def test_a_quiet_topic_replays_from_where_it_stood_at_subscribe_time(
    gateway_process: Callable[..., GatewayProcess], store_url: str
) -> None:
    """A client that never got an event on a topic sends no offset for it, yet misses nothing published after it subscribed."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})
    publish(gw, 0)  # history from before the subscription is not replayed

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(gw, 99, topic="other.Topic")  # completes after the subscription was saved
        client.close()
        publish(gw, 1, 2)
        again = await Client.open(gw)
        welcome = await again.hello(resume_token=token, resume_offsets={})
        assert welcome["recovered"] == {TOPIC: True}
        assert numbers(await again.events(2)) == [1, 2]
        again.close()

    run(scenario())


# Replay delivers what live delivery would, no more (issue 11, findings 5 and 24) -------

CHAT = "chat.room"
CHAT_CHANNELS = json.dumps([{"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"}])


async def join_as(gw: GatewayProcess, user: str, **details: Any) -> tuple[Client, int, dict[str, Any]]:
    """Open a ticket-authenticated session for ``user``; return the client, its session id and WELCOME.Details."""
    client = await Client.open(gw)
    await client.send([1, "telegraphy", {"roles": {"subscriber": {}, "publisher": {}}, "authmethods": ["ticket"], **details}])
    challenge = await client.receive()
    assert challenge[0] == 4, challenge
    await client.send([5, gw.connect_token(user), {}])
    welcome = await client.receive()
    assert welcome[0] == 2, welcome
    return client, int(welcome[1]), welcome[2]


async def client_publish(client: Client, request: int, options: dict[str, Any], *args: Any) -> None:
    """PUBLISH on the chat topic with acknowledge and wait for PUBLISHED."""
    await client.send([16, request, {"acknowledge": True, **options}, CHAT, list(args)])
    published = await client.receive()
    assert published[:2] == [17, request], published


def test_replay_equals_live_for_several_subscriptions_on_one_topic(
    gateway_process: Callable[..., GatewayProcess], store_url: str
) -> None:
    """A session with exact, filtered and prefix subscriptions on one topic gets, on resume, one EVENT per subscription per missed event, as live."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url})
    specs = [({}, TOPIC), ({"filter": {"n__gte": 0}}, TOPIC), ({"match": "prefix"}, "shop.")]

    def kind(options: dict[str, Any], topic: str) -> str:
        return f"{options.get('match', 'exact')}:{topic}:{json.dumps(options.get('filter'))}"

    async def scenario() -> None:
        client = await Client.open(gw)
        token = (await client.hello())["resume_token"]
        kinds = {}
        for request, (options, topic) in enumerate(specs, 1):
            await client.send([32, request, options, topic])
            subscribed = await client.receive()
            kinds[subscribed[2]] = kind(options, topic)
        publish(gw, 1)
        seen = await client.events(3)
        live = [(kinds[e[1]], e[4][0]["data"]["n"]) for e in seen]
        client.close()
        publish(gw, 2, 3)
        again = await Client.open(gw)
        position = seen[-1][3]
        welcome = await again.hello(resume_token=token, resume_offsets={TOPIC: [position["epoch"], position["offset"]]})
        assert welcome["resumed"] is True and welcome["recovered"][TOPIC] is True
        restored = {s["subscription"]: kind(s, s["topic"]) for s in welcome["subscriptions"]}
        replayed = [(restored[e[1]], e[4][0]["data"]["n"]) for e in await again.events(6)]
        order = [k for k, _ in live]
        assert replayed == [(k, n) for n in (2, 3) for k in order]
        # Nothing more was replayed: the next event is the live one.
        publish(gw, 4)
        assert [(restored[e[1]], e[4][0]["data"]["n"]) for e in await again.events(3)] == [(k, 4) for k in order]
        again.close()

    run(scenario())


def test_eligible_and_exclude_hold_on_resume_replay(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """A whisper eligible to user 8's session is replayed to 8 on resume, never to user 7 (likewise by authid); a publisher that excluded itself gets none of its own events."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": store_url, "TELEGRAPHY_CHANNELS": CHAT_CHANNELS})

    async def scenario() -> None:
        sessions = {}
        for user in ("7", "8", "9"):
            client, session_id, welcome = await join_as(gw, user)
            await client.subscribe(CHAT)
            sessions[user] = (client, session_id, welcome["resume_token"])
        whisperer = sessions["9"][0]
        await client_publish(whisperer, 1, {"eligible": [sessions["8"][1]]}, "whisper")
        await client_publish(whisperer, 2, {"exclude": [sessions["8"][1]]}, "not for 8")
        await client_publish(whisperer, 3, {"eligible_authid": ["7"]}, "for user 7")
        await client_publish(whisperer, 4, {}, "for all")
        # 7 and 8 dropped their sockets before any of it: they get it from the store.
        for user in ("7", "8", "9"):
            sessions[user][0].close()
        got = {}
        for user in ("7", "8", "9"):
            again, _, welcome = await join_as(gw, user, resume_token=sessions[user][2])
            assert welcome["resumed"] is True and welcome["recovered"] == {CHAT: True}
            # Replayed events come right after WELCOME; a sentinel of its own marks their end.
            await again.send([16, 9, {"acknowledge": True, "exclude_me": False}, CHAT, ["sentinel"]])
            received = []
            while not received or received[-1] != "sentinel":
                message = await again.receive()
                assert message[0] in (17, 36), message
                if message[0] == 36:
                    received.append(message[4][0])
            got[user] = received[:-1]
            again.close()
        assert got == {"7": ["not for 8", "for user 7", "for all"], "8": ["whisper", "for all"], "9": []}

    run(scenario())


def test_replay_survives_stored_records_no_peer_can_receive(gateway_process: Callable[..., GatewayProcess], store_url: str) -> None:
    """Stored records that cannot be replayed (a NaN from before payloads were checked, a damaged one) are skipped and logged once; the later events are replayed and live delivery goes on."""
    from telegraphy.store import open_store

    first = gateway_process(env={"TELEGRAPHY_STORE": store_url})

    async def before() -> tuple[str, dict[str, Any], int]:
        client = await Client.open(first)
        token = (await client.hello())["resume_token"]
        await client.subscribe()
        publish(first, 1)
        [event] = await client.events(1)
        client.close()
        return token, event[3], first.port

    token, last, port = run(before())
    assert first.stop() == 0

    async def damage() -> None:
        # What an older gateway stored (a msgpack NaN), and a record that is not even JSON.
        store = open_store(store_url)
        await store.open()
        try:
            await store.append_many(
                [(TOPIC, b'{"p":5,"d":{},"a":[NaN],"k":null}'), (TOPIC, b"\x00not json"), (TOPIC, b'{"p":6,"d":{},"a":[{"x":Infinity}],"k":null}')],
                time.time(),
            )
        finally:
            await store.close()

    run(damage())
    second = gateway_process(env={"TELEGRAPHY_STORE": store_url}, port=port)

    async def after() -> None:
        live = await Client.open(second)
        await live.hello()
        await live.subscribe()
        publish(second, 2, 3)
        assert numbers(await live.events(2)) == [2, 3]
        client = await Client.open(second)
        welcome = await client.hello(resume_token=token, resume_offsets={TOPIC: [last["epoch"], last["offset"]]})
        assert welcome["resumed"] is True and welcome["recovered"] == {TOPIC: True}
        replayed = await client.events(2)
        assert numbers(replayed) == [2, 3]
        assert [e[3]["offset"] for e in replayed] == [last["offset"] + 4, last["offset"] + 5]
        publish(second, 4)
        assert numbers(await client.events(1)) == [4]
        assert numbers(await live.events(1)) == [4]
        client.close()
        live.close()

    run(after())
    log = second.stderr()
    assert "Traceback" not in log and "persistence worker failed" not in log, log
    assert "skipped 3 stored event(s)" in log, log
