"""Who may publish, register and call, and who published what, against real gateway processes.

User 7 tries what an attacker would: forging a model event on ``shop.Order``,
squatting the backend's ``app.payments.charge``, registering in user 8's
private namespace. Every attempt is refused with ``wamp.error.not_authorized``;
every event says who published it (the web app over HTTP, or a session with
its authid) live, after a resume and on another node.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GatewayProcess
from test_multinode import redis_reachable
from test_session_resume import Client, publish

NOT_AUTHORIZED = "wamp.error.not_authorized"
BY_WEB = {"publisher_authrole": "web"}
SHOP_CHANNEL = json.dumps([{"topic": "shop.", "match": "prefix", "subscribe": "public", "publish": "authenticated"}])
FORGED = {"name": "shop.Order", "meta": {"event_type": "update"}, "data": {"pk": 1, "status": "refunded"}}


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def join(gw: GatewayProcess, user: str | None = None, authrole: str | None = None) -> tuple[Client, int]:
    """Open a raw JSON session (anonymous, or with a ticket for ``user``); return it and its session id."""
    client = await Client.open(gw)
    if user is None:
        await client.send([1, "telegraphy", {"roles": {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}}])
    else:
        ticket = gw.connect_token(user, authrole=authrole)
        await client.send([1, "telegraphy", {"roles": {"subscriber": {}, "publisher": {}}, "authmethods": ["ticket"]}])
        challenge = await client.receive()
        assert challenge[0] == 4, challenge
        await client.send([5, ticket, {}])
    welcome = await client.receive()
    assert welcome[0] == 2, welcome
    return client, int(welcome[1])


async def request(client: Client, message: list[Any]) -> list[Any]:
    """Send a request and return the answer (the next message)."""
    await client.send(message)
    return await client.receive()


def assert_refused(answer: list[Any], request_type: int, *words: str) -> None:
    """``answer`` is ERROR not_authorized for a request of ``request_type`` whose reason has ``words``."""
    assert answer[0] == 8 and answer[1] == request_type and answer[4] == NOT_AUTHORIZED, answer
    assert all(word in answer[5][0] for word in words), answer


def test_signed_in_user_cannot_forge_a_model_event(gateway: GatewayProcess) -> None:
    """With no --channels, user 7's PUBLISH of a shop.Order event is not authorized; subscribers get only the web app's, marked as such."""

    async def scenario() -> None:
        forger, _ = await join(gateway, "7")
        subscriber, _ = await join(gateway)
        await subscriber.subscribe("shop.Order")
        answer = await request(forger, [16, 1, {"acknowledge": True}, "shop.Order", [FORGED]])
        assert_refused(answer, 16, "shop.Order", "no declared channel")
        publish(gateway, 1)
        [event] = await subscriber.events(1)
        assert event[4][0]["data"] == {"n": 1}
        assert {k: v for k, v in event[3].items() if k.startswith("publisher")} == BY_WEB
        forger.close()
        subscriber.close()

    run(scenario())


def test_web_app_topics_stay_closed_to_clients_across_a_restart(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """A channel lets users publish under shop.; once the web app published on shop.Order, client PUBLISHes there are refused, also after a restart."""
    secret = secrets.token_urlsafe(32)
    env = {"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'store.sqlite3'}", "TELEGRAPHY_CHANNELS": SHOP_CHANNEL}
    first = gateway_process(env=env, secret=secret)

    async def before_restart() -> None:
        user, user_session = await join(first, "7")
        subscriber, _ = await join(first)
        await subscriber.subscribe("shop.Cart")
        publish(first, 1)  # the web app's event: shop.Order is its topic from now on
        answer = await request(user, [16, 1, {"acknowledge": True}, "shop.Order", [FORGED]])
        assert_refused(answer, 16, "'shop.Order' carries web-app events")
        answer = await request(user, [16, 2, {"acknowledge": True}, "shop.Cart", ["mine"]])
        assert answer[0] == 17, answer
        [event] = await subscriber.events(1)
        assert event[4] == ["mine"]
        assert {k: event[3][k] for k in ("publisher", "publisher_authid", "publisher_authrole")} == {
            "publisher": user_session, "publisher_authid": "7", "publisher_authrole": "user",
        }
        user.close()
        subscriber.close()

    run(before_restart())
    first.stop()
    second = gateway_process(env=env, secret=secret)

    async def after_restart() -> None:
        user, _ = await join(second, "7")
        answer = await request(user, [16, 1, {"acknowledge": True}, "shop.Order", [FORGED]])
        assert_refused(answer, 16, "web-app events")
        user.close()

    run(after_restart())


def test_replayed_events_name_their_publisher(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """Events missed while away are replayed on resume with the same publisher details as live: the web app's and user 7's."""
    channels = json.dumps([{"topic": "chat.", "match": "prefix", "publish": "authenticated"}])
    gw = gateway_process(env={"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'store.sqlite3'}", "TELEGRAPHY_CHANNELS": channels})

    async def scenario() -> None:
        reader = await Client.open(gw)
        token = (await reader.hello())["resume_token"]
        await reader.subscribe("chat.lobby")
        writer, writer_session = await join(gw, "7")
        answer = await request(writer, [16, 1, {"acknowledge": True}, "chat.lobby", ["live"]])
        assert answer[0] == 17, answer
        [live] = await reader.events(1)
        reader.close()
        answer = await request(writer, [16, 2, {"acknowledge": True}, "chat.lobby", ["while away"]])
        assert answer[0] == 17, answer
        publish(gw, 2, topic="chat.lobby")
        again = await Client.open(gw)
        position = [live[3]["epoch"], live[3]["offset"]]
        welcome = await again.hello(resume_token=token, resume_offsets={"chat.lobby": position})
        assert welcome["recovered"] == {"chat.lobby": True}
        by_client, by_web = await again.events(2)
        who = {"publisher": writer_session, "publisher_authid": "7", "publisher_authrole": "user"}
        assert by_client[4] == ["while away"] and {k: by_client[3][k] for k in who} == who
        assert {k: live[3][k] for k in who} == who
        assert by_web[4][0]["data"] == {"n": 2}
        assert {k: v for k, v in by_web[3].items() if k.startswith("publisher")} == BY_WEB
        writer.close()
        again.close()

    run(scenario())


@pytest.mark.skipif(not redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")
def test_other_nodes_know_web_topics_and_publishers(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """Two nodes on a Redis bus: a web event posted to node A arrives on B marked web, and B then refuses client PUBLISHes on its topic."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
        "TELEGRAPHY_CHANNELS": SHOP_CHANNEL,
    }
    secret = secrets.token_urlsafe(32)
    a, b = gateway_process(env=env, secret=secret), gateway_process(env=env, secret=secret)

    async def scenario() -> None:
        on_b, _ = await join(b)
        await on_b.subscribe("shop.Order")
        user_a, user_a_session = await join(a, "7")
        user_b, _ = await join(b, "8")
        answer = await request(user_a, [16, 1, {"acknowledge": True}, "shop.Order", ["before the web app"]])
        assert answer[0] == 17, answer
        [by_client] = await on_b.events(1)
        assert (by_client[3]["publisher"], by_client[3]["publisher_authid"]) == (user_a_session, "7")
        publish(a, 1)
        [by_web] = await on_b.events(1)
        assert {k: v for k, v in by_web[3].items() if k.startswith("publisher")} == BY_WEB
        answer = await request(user_b, [16, 1, {"acknowledge": True}, "shop.Order", [FORGED]])
        assert_refused(answer, 16, "web-app events")
        for client in (on_b, user_a, user_b):
            client.close()

    run(scenario())


def test_procedures_cannot_be_squatted(gateway: GatewayProcess) -> None:
    """User 7 may not register app.payments.charge nor user.8.*; the backend registers it; user 8's CALL reaches the backend; anonymous calls are refused."""

    async def scenario() -> None:
        squatter, _ = await join(gateway, "7")
        caller, _ = await join(gateway, "8")
        backend, _ = await join(gateway, "payments", authrole="backend")
        anonymous, _ = await join(gateway)
        assert_refused(await request(squatter, [64, 1, {}, "app.payments.charge"]), 64, "backend")
        assert_refused(await request(squatter, [64, 2, {}, "user.8.inbox.read"]), 64, "private")
        registered = await request(backend, [64, 1, {}, "app.payments.charge"])
        assert registered[0] == 65, registered
        await caller.send([48, 7, {}, "app.payments.charge", [100]])
        invocation = await backend.receive()
        assert invocation[0] == 68 and invocation[4] == [100], invocation
        await backend.send([70, invocation[1], {}, ["charged"]])
        assert await caller.receive() == [50, 7, {}, ["charged"]]
        assert_refused(await request(anonymous, [48, 1, {}, "app.payments.charge", [1]]), 48, "anonymous")
        for client in (squatter, caller, backend, anonymous):
            client.close()

    run(scenario())
