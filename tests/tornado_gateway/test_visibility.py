"""Who sees what, against real gateway processes: audiences, projections, private and declared channels, live revocation.

Autobahn|Python sessions authenticate with connect tokens carrying different
``groups``/``perms`` claims. "X was withheld" is shown by a later public
sentinel event arriving with nothing before it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import autobahn.asyncio.wamp  # noqa: F401 - first: makes txaio use asyncio
import pytest
import tornado.httpclient
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import PublishOptions, SubscribeOptions
from gateway_helpers import GatewayProcess, run_gateway
from test_session_resume import Client as RawClient
from test_session_resume import join_as
from test_sockjs_transport import Closed, SockJSWamp
from test_sockjs_transport import run as sockjs_run
from test_wamp_autobahn import STEP, Client, connect, connect_user, http_publish, run

from telegraphy.tokens import mint_connect_token, mint_manage_token, mint_publish_token

SERIALIZERS = pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
STAFF = {"groups": ["staff"]}
CLERK = {"perms": ["shop.view_order"]}
SENTINEL = "sentinel"


def _event(name: str, audience: Any = None, projections: Any = None, **data: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"event_type": "update"}
    if audience is not None:
        meta["audience"] = audience
    if projections is not None:
        meta["projections"] = projections
    return {"name": name, "meta": meta, "data": data}


async def _publish(gateway: GatewayProcess, *events: dict[str, Any]) -> None:
    response = await http_publish(gateway, list(events))
    assert response.code == 202, response.body


async def _until_sentinel(client: Client) -> list[dict[str, Any]]:
    """Return the events a client got before the sentinel (a public event whose data has ``sentinel: true``)."""
    received = []
    while True:
        _, args, _ = await client.next_event()
        event = args[0]
        if event["data"].get(SENTINEL):
            return received
        received.append(event)


async def _post(gateway: GatewayProcess, path: str, body: Any, token: str | None = "") -> tornado.httpclient.HTTPResponse:
    """POST JSON to ``path`` with a manage token (``""`` mints one for this body, ``None`` sends none)."""
    assert gateway.secret is not None
    headers = {"Content-Type": "application/json"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if token is not None:
        headers["Authorization"] = f"Bearer {token or mint_manage_token(gateway.secret, body=data)}"
    client = tornado.httpclient.AsyncHTTPClient()
    return await client.fetch(f"{gateway.url}{path}", method="POST", body=data, headers=headers, raise_error=False, request_timeout=STEP)


async def _revoke(gateway: GatewayProcess, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST /revoke; return its JSON answer and how long the round trip took, in seconds."""
    started = time.perf_counter()
    response = await _post(gateway, "/revoke", body)
    elapsed = time.perf_counter() - started
    assert response.code == 200, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer, elapsed


def _metrics(gateway: GatewayProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=STEP) as response:
        text = response.read().decode()
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")}


# Audiences and projections -------------------------------------------------------------


@SERIALIZERS
def test_users_get_different_events_for_the_same_publishes(gateway: GatewayProcess, serializer: type) -> None:
    """Staff, a permission holder, a plain user and an anonymous session each get the events their grants allow, in order."""

    async def scenario() -> None:
        staff = await connect_user(gateway, serializer, "1", claims=STAFF)
        clerk = await connect_user(gateway, serializer, "2", claims=CLERK)
        user = await connect_user(gateway, JsonSerializer, "3")
        anonymous = await connect(gateway, serializer)
        clients = {"staff": staff, "clerk": clerk, "user": user, "anonymous": anonymous}
        for client in clients.values():
            await client.subscribe(client.collector("order"), "shop.Order")
        audiences = [
            None, "public", "authenticated", STAFF, {"permissions": ["shop.view_order"]}, {"users": [3]}, {"users": [1], "groups": ["x"]},
        ]
        events = [_event("shop.Order", audience, n=n) for n, audience in enumerate(audiences)]
        await _publish(gateway, *events, _event("shop.Order", sentinel=True))
        got = {name: [e["data"]["n"] for e in await _until_sentinel(client)] for name, client in clients.items()}
        assert got == {"staff": [0, 1, 2, 3, 6], "clerk": [0, 1, 2, 4], "user": [0, 1, 2, 5], "anonymous": [0, 1]}
        for client in clients.values():
            await client.close()

    run(scenario())


@SERIALIZERS
def test_projections_give_each_audience_its_fields(gateway: GatewayProcess, serializer: type) -> None:
    """One publish: staff get all fields, users title and status, anonymous sessions the title; audience and projections never arrive."""

    async def scenario() -> None:
        staff = await connect_user(gateway, serializer, "1", claims=STAFF)
        user = await connect_user(gateway, serializer, "3")
        anonymous = await connect(gateway, serializer)
        for client in (staff, user, anonymous):
            await client.subscribe(client.collector("order"), "shop.Order")
        projections = [
            {"audience": STAFF, "fields": None},
            {"audience": "authenticated", "fields": ["title", "status"]},
            {"audience": "public", "fields": ["title"]},
        ]
        order = _event("shop.Order", None, projections, title="T", status="paid", total=99)
        await _publish(gateway, order, _event("shop.Order", sentinel=True))
        [for_staff], [for_user], [for_anonymous] = [await _until_sentinel(c) for c in (staff, user, anonymous)]
        assert for_staff["data"] == {"title": "T", "status": "paid", "total": 99}
        assert for_user["data"] == {"title": "T", "status": "paid"}
        assert for_anonymous["data"] == {"title": "T"}
        for event in (for_staff, for_user, for_anonymous):
            assert set(event["meta"]) >= {"event_type", "id"}
            assert "audience" not in event["meta"] and "projections" not in event["meta"]
        for client in (staff, user, anonymous):
            await client.close()

    run(scenario())


def test_invalid_audience_is_refused_at_publish(gateway: GatewayProcess) -> None:
    """/publish refuses a malformed meta.audience with 400 invalid_event naming the field."""

    async def scenario() -> None:
        response = await http_publish(gateway, _event("shop.Order", {"users": "7"}))
        assert response.code == 400
        body = json.loads(response.body)
        assert (body["error"], body["field"]) == ("invalid_event", "meta.audience.users")

    run(scenario())


# Filters and projections (issue 11, findings 1 and 4) --------------------------------------

HR = {"groups": ["hr"]}
EMPLOYEE_PROJECTIONS = [{"audience": HR, "fields": None}, {"audience": "public", "fields": ["name"]}]


def _employee(name: str, salary: int, ssn: str) -> dict[str, Any]:
    event = _event("hr.Employee", None, EMPLOYEE_PROJECTIONS)
    event["data"] = {"name": name, "salary": salary, "ssn": ssn}
    return event


def test_filters_on_hidden_fields_reveal_nothing(gateway: GatewayProcess) -> None:
    """Sessions whose projection shows only name get nothing from salary/ssn filters; an HR session is filtered on them as usual."""

    async def scenario() -> None:
        hr_client = await RawClient.open(gateway)
        await hr_client.hello(authmethods=["ticket"], _ticket=gateway.connect_token("1", claims=HR))
        user, _, _ = await join_as(gateway, "3")
        anonymous = await RawClient.open(gateway)
        await anonymous.hello()
        clients = {"hr": hr_client, "user": user, "anonymous": anonymous}
        for client in clients.values():
            for request, condition in enumerate(({"salary__gt": 149999}, {"ssn__startswith": "123"}, {"name": "Bob"}), 1):
                await client.send([32, request, {"filter": condition}, "hr.Employee"])
                assert (await client.receive())[0] == 33
            await client.send([32, 9, {}, "hr.Sentinel"])
            assert (await client.receive())[0] == 33
        await _publish(gateway, _employee("Bob", 150000, "123-45"), _employee("Ann", 90000, "999-00"), _event("hr.Sentinel", sentinel=True))
        got = {}
        for name, client in clients.items():
            received = []
            while True:
                [event] = await client.events(1)
                data = event[4][0]["data"]
                if data.get(SENTINEL):
                    break
                received.append(data)
            got[name] = received
            client.close()
        bob = {"name": "Bob", "salary": 150000, "ssn": "123-45"}
        # One event per matching subscription: the name filter is the only one a projected session can satisfy.
        assert got == {"hr": [bob, bob, bob], "user": [{"name": "Bob"}], "anonymous": [{"name": "Bob"}]}

    run(scenario())


def test_array_data_with_projections_is_refused(gateway_process: Callable[..., GatewayProcess]) -> None:
    """/publish refuses array data under a field projection with 400 naming data and the event index; a WAMP PUBLISH gets invalid_argument; nobody gets it."""
    gateway = gateway_process("--channels", json.dumps([{"topic": "chat.", "match": "prefix", "publish": "authenticated"}]))
    leak = {**_employee("Bob", 150000, "1"), "data": [{"name": "Bob", "salary": 150000}]}

    async def scenario() -> None:
        anonymous = await connect(gateway, JsonSerializer)
        await anonymous.subscribe(anonymous.collector("hr"), "hr.Employee")
        await anonymous.subscribe(anonymous.collector("chat"), "chat.hr")
        response = await http_publish(gateway, [_employee("Ann", 1, "1"), leak])
        assert response.code == 400
        body = json.loads(response.body)
        assert (body["error"], body["field"], body["index"]) == ("invalid_event", "data", 1)
        assert "must be an object" in body["detail"]
        user = await connect_user(gateway, JsonSerializer, "3")
        with pytest.raises(ApplicationError) as info:
            await user.publish("chat.hr", {**leak, "name": "chat.hr"}, options=PublishOptions(acknowledge=True))
        assert info.value.error == "wamp.error.invalid_argument"
        await _publish(gateway, _event("hr.Employee", sentinel=True))
        assert await _until_sentinel(anonymous) == []
        for client in (anonymous, user):
            await client.close()

    run(scenario())


# Private and declared channels ----------------------------------------------------------


@SERIALIZERS
def test_private_channel(gateway_process: Callable[..., GatewayProcess], serializer: type) -> None:
    """Another user's SUBSCRIBE to user.7.inbox is not authorized; a prefix subscription to user. gets its own user's events only."""
    gateway = gateway_process("--channels", json.dumps([{"topic": "user.", "match": "prefix", "publish": "authenticated"}]))

    async def scenario() -> None:
        owner = await connect_user(gateway, serializer, "7")
        other = await connect_user(gateway, serializer, "8")
        with pytest.raises(ApplicationError) as info:
            await other.subscribe(other.collector("stolen"), "user.7.inbox")
        assert info.value.error == "wamp.error.not_authorized"
        await owner.subscribe(owner.collector("inbox"), "user.7.inbox")
        await other.subscribe(other.collector("mine"), "user.", options=SubscribeOptions(match="prefix"))
        await _publish(
            gateway, _event("user.7.inbox", text="for 7"), _event("user.8.inbox", text="for 8"), _event("user.8.inbox", sentinel=True)
        )
        assert [e["data"]["text"] for e in await _until_sentinel(other)] == ["for 8"]
        _, args, _ = await owner.next_event()
        assert args[0]["data"] == {"text": "for 7"}
        assert owner.events.empty()
        # The owner may publish in their own inbox tree; the other user may not.
        await owner.publish("user.7.notes", "x", options=PublishOptions(acknowledge=True))
        with pytest.raises(ApplicationError) as info:
            await other.publish("user.7.inbox", "spoof", options=PublishOptions(acknowledge=True))
        assert info.value.error == "wamp.error.not_authorized"
        await owner.close()
        await other.close()

    run(scenario())


CHANNELS = [
    {"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"},
    {"topic": "staff.news", "subscribe": STAFF, "publish": STAFF},
]


def test_declared_channels_from_a_file(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """With --channels @FILE, publishing outside the channels, or subscribing outside a channel's audience, is not authorized."""
    channels = tmp_path / "channels.json"
    channels.write_text(json.dumps(CHANNELS))
    gateway = gateway_process("--channels", f"@{channels}")

    async def scenario() -> None:
        user = await connect_user(gateway, JsonSerializer, "3")
        staff = await connect_user(gateway, JsonSerializer, "1", claims=STAFF)
        anonymous = await connect(gateway, JsonSerializer)
        for topic in ("shop.Order", "staff.news"):
            with pytest.raises(ApplicationError) as info:
                await user.publish(topic, "x", options=PublishOptions(acknowledge=True))
            assert info.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as info:
            await anonymous.subscribe(anonymous.collector("chat"), "chat.lobby")
        assert info.value.error == "wamp.error.not_authorized"
        await staff.subscribe(staff.collector("chat"), "chat.lobby")
        await staff.subscribe(staff.collector("news"), "staff.news")
        await user.publish("chat.lobby", "hello", options=PublishOptions(acknowledge=True))
        assert await staff.next_event() == ("chat", ("hello",), {})
        await staff.publish("staff.news", "memo", options=PublishOptions(acknowledge=True, exclude_me=False))
        assert await staff.next_event() == ("news", ("memo",), {})
        for client in (user, staff, anonymous):
            await client.close()

    run(scenario())
    assert _metrics(gateway)["telegraphy_requests_unauthorized_total"] == 3


def test_invalid_channels_exit_2_naming_flag_and_index(tmp_path: Path) -> None:
    """An invalid --channels value (or TELEGRAPHY_CHANNELS) stops the gateway with status 2 naming the flag and channel index."""
    result = run_gateway("--secret", "x" * 32, "--channels", json.dumps([{"topic": "a"}, {"topic": "b", "match": "regex"}]))
    assert result.returncode == 2
    assert "argument --channels: channel 1: match must be exact, prefix or wildcard" in result.stderr
    result = run_gateway("--secret", "x" * 32, env={"TELEGRAPHY_CHANNELS": "[5]"})
    assert result.returncode == 2
    assert "channel 0: an object with a string 'topic' is expected (from TELEGRAPHY_CHANNELS" in result.stderr
    result = run_gateway("--secret", "x" * 32, "--channels", f"@{tmp_path / 'missing.json'}")
    assert result.returncode == 2 and "cannot read the channels file" in result.stderr


# Live revocation ---------------------------------------------------------------------------


def test_reduced_grants_withhold_the_very_next_event(gateway_process: Callable[..., GatewayProcess]) -> None:
    """After POST /revoke with grants without staff the next staff-only event is withheld and staff.news dropped; the delay is printed."""
    gateway = gateway_process("--channels", json.dumps(CHANNELS))

    async def scenario() -> float:
        alice = await connect_user(gateway, JsonSerializer, "1", claims=STAFF)
        bob = await connect_user(gateway, JsonSerializer, "2", claims=STAFF)
        for client in (alice, bob):
            await client.subscribe(client.collector("order"), "shop.Order")
            await client.subscribe(client.collector("news"), "staff.news")
        await _publish(gateway, _event("shop.Order", STAFF, n=1), _event("shop.Order", sentinel=True))
        for client in (alice, bob):
            assert [e["data"]["n"] for e in await _until_sentinel(client)] == [1]
        answer, elapsed = await _revoke(gateway, {"user": "1", "logout": False, "grants": {"groups": [], "perms": [], "superuser": False}})
        assert answer == {"sessions": 1}
        # Published right after the 200: judged with the new grants already.
        await _publish(gateway, _event("shop.Order", STAFF, n=2), _event("staff.news", n=3), _event("shop.Order", sentinel=True))
        assert await _until_sentinel(alice) == []
        assert [e["data"]["n"] for e in await _until_sentinel(bob)] == [2, 3]
        for client in (alice, bob):
            await client.close()
        return elapsed

    elapsed = run(scenario())
    print(f"\nbench: revocation (reduced grants) in force within {elapsed * 1000:.1f} ms of POST /revoke (enforced before its 200)")
    assert _metrics(gateway)["telegraphy_revocations_total"] == 1


def test_logout_ends_sessions_and_resume_tokens(gateway: GatewayProcess) -> None:
    """Logout: live sessions get GOODBYE wamp.close.logout and close, no resume token of the user resumes, older tickets are refused."""
    assert gateway.secret is not None
    old_ticket = mint_connect_token(gateway.secret, "5", now=time.time() - 5)

    async def scenario() -> float:
        # A session that disconnected without GOODBYE: resumable until the logout.
        gone = await RawClient.open(gateway)
        gone_token = (await gone.hello(authmethods=["ticket"], _ticket=old_ticket))["resume_token"]
        await gone.subscribe()
        gone.close()
        live = await RawClient.open(gateway)
        live_token = (await live.hello(authmethods=["ticket"], _ticket=old_ticket))["resume_token"]
        autobahn = await connect(gateway, JsonSerializer, authmethods=["ticket"], ticket=old_ticket)
        bystander = await connect_user(gateway, JsonSerializer, "6")
        started = time.perf_counter()
        answer, _ = await _revoke(gateway, {"user": "5", "logout": True, "grants": None})
        assert answer == {"sessions": 2}
        details = await asyncio.wait_for(asyncio.shield(autobahn.left), STEP)
        closed_after = time.perf_counter() - started
        assert details.reason == "wamp.close.logout"
        goodbye = await live.receive()
        assert goodbye[0] == 6 and goodbye[2] == "wamp.close.logout", goodbye
        assert await asyncio.wait_for(live.conn.read_message(), STEP) is None
        assert live.conn.close_code == 1000
        # Neither token resumes, even with a ticket minted after the logout
        # (in the next second: one from the logout's second is refused).
        for token in (live_token, gone_token):
            again = await RawClient.open(gateway)
            fresh = mint_connect_token(gateway.secret, "5", now=time.time() + 1)
            welcome = await again.hello(authmethods=["ticket"], _ticket=fresh, resume_token=token)
            assert welcome["resumed"] is False, welcome
            again.close()
        # A ticket issued before the logout no longer opens a session.
        refused = await RawClient.open(gateway)
        await refused.send([1, "telegraphy", {"roles": {"subscriber": {}}, "authmethods": ["ticket"]}])
        assert (await refused.receive())[0] == 4
        await refused.send([5, old_ticket, {}])
        abort = await refused.receive()
        assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed", abort
        refused.close()
        assert bystander.is_attached()
        await bystander.close()
        return closed_after

    closed_after = run(scenario())
    print(f"\nbench: logout closed the session {closed_after * 1000:.1f} ms after POST /revoke was sent")


@pytest.mark.parametrize("transport", ["xhr_streaming", "websocket"])
def test_logout_over_sockjs(gateway: GatewayProcess, transport: str) -> None:
    """A SockJS session of a user who logs out gets GOODBYE wamp.close.logout, then c[1000,"wamp.close.logout"]."""
    assert gateway.secret is not None
    ticket = mint_connect_token(gateway.secret, "5")

    async def scenario() -> None:
        client = await SockJSWamp.connect(gateway, transport)
        await client.send([1, "telegraphy", {"roles": {"subscriber": {}}, "authmethods": ["ticket"]}])
        assert (await client.receive())[0] == 4
        await client.send([5, ticket, {}])
        assert (await client.receive())[0] == 2
        answer, _ = await _revoke(gateway, {"user": "5", "logout": True})
        assert answer == {"sessions": 1}
        goodbye = await client.receive()
        assert goodbye[0] == 6 and goodbye[2] == "wamp.close.logout", goodbye
        with pytest.raises(Closed) as closed:
            await client.receive()
        assert (closed.value.code, closed.value.reason) == (1000, "wamp.close.logout")

    sockjs_run(scenario())


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        (b"{not json", 400, "invalid_json", None),
        ([], 400, "invalid_revocation", None),
        ({"user": "", "logout": True}, 400, "invalid_revocation", "user"),
        ({"user": "1", "logout": "yes"}, 400, "invalid_revocation", "logout"),
        ({"user": "1", "grants": ["staff"]}, 400, "invalid_revocation", "grants"),
        ({"user": "1", "grants": {"groups": "staff"}}, 400, "invalid_revocation", "grants.groups"),
        ({"user": "1", "logout": False, "grants": None}, 400, "invalid_revocation", "grants"),
        ({"user": "1", "logout": True, "who": 1}, 400, "invalid_revocation", "who"),
    ],
    ids=["json", "not-object", "no-user", "logout-type", "grants-type", "groups-type", "nothing-to-do", "unknown-key"],
)
def test_revoke_refuses_bad_bodies(gateway: GatewayProcess, body: Any, status: int, error: str, field: str | None) -> None:
    """/revoke answers malformed bodies in the API's JSON error shape, naming the field."""

    async def scenario() -> None:
        response = await _post(gateway, "/revoke", body)
        assert response.code == status
        answer = json.loads(response.body)
        assert answer["error"] == error and answer.get("field") == field and answer["detail"]

    run(scenario())


def test_revoke_needs_a_manage_token(gateway: GatewayProcess) -> None:
    """/revoke without a token, with a publish token or with GET is refused (401, 401, 405) and ends nobody's session."""
    assert gateway.secret is not None

    async def scenario() -> None:
        user = await connect_user(gateway, JsonSerializer, "1")
        for token in (None, mint_publish_token(gateway.secret)):
            response = await _post(gateway, "/revoke", {"user": "1", "logout": True}, token=token)
            assert response.code == 401 and json.loads(response.body)["error"] == "unauthorized"
        response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{gateway.url}/revoke", raise_error=False)
        assert response.code == 405 and json.loads(response.body)["error"] == "method_not_allowed"
        assert user.is_attached()
        await user.close()

    run(scenario())


# Several gateway processes --------------------------------------------------------------------


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_reachable(), reason="no Redis server on 127.0.0.1:6379 for the bus")
def test_revocation_reaches_sessions_on_other_nodes(gateway_process: Callable[..., GatewayProcess], tmp_path: Path) -> None:
    """POST /revoke to one node applies it on every node of the bus: new grants on one, logout on another."""
    env = {
        "TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "TELEGRAPHY_BUS": f"redis://127.0.0.1:6379/0?channel=telegraphy-test-{secrets.token_hex(6)}",
    }
    secret = secrets.token_urlsafe(32)
    a, b = gateway_process(env=env, secret=secret), gateway_process(env=env, secret=secret)

    async def scenario() -> None:
        on_b = await connect_user(b, JsonSerializer, "1", claims=STAFF)
        await on_b.subscribe(on_b.collector("order"), "shop.Order")
        answer, _ = await _revoke(a, {"user": "1", "grants": {"groups": []}})
        assert answer == {"sessions": 0}  # none on node a itself
        # The bus is asynchronous: poll node b with staff-only events until one is withheld.
        deadline = time.monotonic() + STEP
        while True:
            await _publish(b, _event("shop.Order", STAFF, n=1), _event("shop.Order", sentinel=True))
            if not await _until_sentinel(on_b):
                break
            assert time.monotonic() < deadline, "node b kept the old grants"
        other = await connect_user(b, JsonSerializer, "2")
        await _revoke(a, {"user": "2", "logout": True})
        details = await asyncio.wait_for(asyncio.shield(other.left), STEP)
        assert details.reason == "wamp.close.logout"
        await on_b.close()

    run(scenario())
