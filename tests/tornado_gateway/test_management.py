"""The management API of a real gateway process: /sessions, /subscriptions, /subscribers, and WAMP meta procedures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.httpclient
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig, SubscribeOptions
from gateway_helpers import GatewayProcess, wait_for_async
from tornado.websocket import WebSocketClientConnection, websocket_connect

from telegraphy.tokens import mint_connect_token, mint_manage_token, mint_publish_token

REALM = "telegraphy"
#: Seconds a whole test scenario may take.
DEADLINE = 20.0
#: Seconds to wait for any one thing (an answer, a store write).
STEP = 5.0

ENDPOINTS = ["/sessions", "/subscriptions?user=alice", "/subscribers?topic=shop.Order", "/subscriptors?topic=shop.Order"]


def run(scenario: Awaitable[Any]) -> Any:
    """Run an asyncio scenario to completion, failing it after :data:`DEADLINE` seconds."""
    return asyncio.run(asyncio.wait_for(scenario, DEADLINE))


async def get(gw: GatewayProcess, path: str, token: str | None = "", method: str = "GET") -> tuple[int, Any, Any]:
    """Request ``path``; ``token=""`` mints a valid manage token, ``None`` sends none. Return (status, JSON, headers)."""
    assert gw.secret is not None
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or mint_manage_token(gw.secret)}"
    client = tornado.httpclient.AsyncHTTPClient()
    response = await client.fetch(
        f"{gw.url}{path}", method=method, headers=headers, raise_error=False, request_timeout=STEP,
        body=b"" if method == "POST" else None,
    )
    assert response.headers["Content-Type"] == "application/json", response.headers
    return response.code, json.loads(response.body), response.headers


async def poll(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Await ``condition()`` until it returns something truthy; fail after :data:`STEP` seconds."""
    return await wait_for_async(condition, STEP, 0.05, f"not within {STEP} s: {what}")


class RawClient:
    """A WAMP-over-WebSocket (wamp.2.json) client speaking raw messages."""

    def __init__(self, conn: WebSocketClientConnection, welcome: list[Any]) -> None:
        self.conn = conn
        self.session: int = welcome[1]
        self.details: dict[str, Any] = welcome[2]
        self._request = 0

    @classmethod
    async def join(cls, gw: GatewayProcess, user: str | None = None, **claims: Any) -> RawClient:
        """Open a session: anonymous, or ticket-authenticated as ``user``."""
        conn = await websocket_connect(gw.ws_url, subprotocols=["wamp.2.json"])
        details: dict[str, Any] = {"roles": {"subscriber": {}, "caller": {}}}
        if user is not None:
            details["authmethods"] = ["ticket"]
        await conn.write_message(json.dumps([1, REALM, details]))
        message = await cls._read(conn)
        if message[0] == 4:  # CHALLENGE
            assert gw.secret is not None
            await conn.write_message(json.dumps([5, mint_connect_token(gw.secret, user, **claims), {}]))
            message = await cls._read(conn)
        assert message[0] == 2, message
        return cls(conn, message)

    @staticmethod
    async def _read(conn: WebSocketClientConnection) -> list[Any]:
        text = await asyncio.wait_for(conn.read_message(), STEP)
        assert text is not None, "connection closed"
        return json.loads(text)

    async def request(self, message: list[Any]) -> list[Any]:
        """Send a request (its id is filled in) and return the answer."""
        self._request += 1
        await self.conn.write_message(json.dumps([message[0], self._request, *message[1:]]))
        answer = await self._read(self.conn)
        assert answer[0] == 8 or answer[1] == self._request, answer
        return answer

    async def subscribe(self, topic: str, match: str = "exact") -> int:
        answer = await self.request([32, {} if match == "exact" else {"match": match}, topic])
        assert answer[0] == 33, answer
        return int(answer[2])

    def drop(self) -> None:
        """Close the connection without GOODBYE (the session stays resumable)."""
        self.conn.close()


# Authentication and errors -----------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_requires_a_manage_token(gateway: GatewayProcess, path: str) -> None:
    """Without a token, or with a publish, connect, forged or expired one, every endpoint answers 401 unauthorized."""
    assert gateway.secret is not None
    refused = {
        None: "missing authorization header: send 'Bearer <manage token>'",
        mint_publish_token(gateway.secret): "token is not a manage token",
        mint_connect_token(gateway.secret, "alice", authrole="admin"): "token is not a manage token",
        mint_manage_token("another secret, long enough for HS256"): "token signature is invalid",
        mint_manage_token(gateway.secret, now=time.time() - 600): "token expired",
        "not-a-jwt": "token is malformed",
    }

    async def scenario() -> None:
        for token, detail in refused.items():
            status, body, headers = await get(gateway, path, token)
            assert (status, body) == (401, {"error": "unauthorized", "detail": detail}), token
            assert headers["WWW-Authenticate"].startswith('Bearer realm="telegraphy"')
        status, _, _ = await get(gateway, path)
        assert status == 200

    run(scenario())


def test_manage_token_does_not_publish(gateway: GatewayProcess) -> None:
    """A manage token is refused by /publish: the two audiences do not mix."""
    assert gateway.secret is not None

    async def scenario() -> None:
        client = tornado.httpclient.AsyncHTTPClient()
        response = await client.fetch(
            f"{gateway.url}/publish", method="POST", body=json.dumps({"name": "shop.Order"}), raise_error=False, request_timeout=STEP,
            headers={"Authorization": f"Bearer {mint_manage_token(gateway.secret)}", "Content-Type": "application/json"},
        )
        assert response.code == 401
        assert json.loads(response.body) == {"error": "unauthorized", "detail": "token is not a publish token"}

    run(scenario())


@pytest.mark.parametrize(
    ("path", "parameter"),
    [("/subscriptions", "user"), ("/subscriptions?user=", "user"), ("/subscribers", "topic"), ("/subscriptors?topic=%20", "topic")],
)
def test_missing_query_parameter(gateway: GatewayProcess, path: str, parameter: str) -> None:
    """A missing or empty user/topic parameter is 400 missing_parameter naming it."""

    async def scenario() -> None:
        status, body, _ = await get(gateway, path)
        assert status == 400
        assert body == {"error": "missing_parameter", "detail": f"query parameter {parameter!r} is required", "parameter": parameter}

    run(scenario())


def test_only_get_is_allowed(gateway: GatewayProcess) -> None:
    """POST to a management endpoint is 405 method_not_allowed with Allow: GET."""

    async def scenario() -> None:
        status, body, headers = await get(gateway, "/sessions", method="POST")
        assert (status, body["error"], headers["Allow"]) == (405, "method_not_allowed", "GET")

    run(scenario())


# Live sessions -------------------------------------------------------------------------


def test_sessions_lists_live_sessions(gateway: GatewayProcess) -> None:
    """/sessions lists each live session with its identity, transport and subscriptions, and drops it when it leaves."""

    async def scenario() -> None:
        alice = await RawClient.join(gateway, "alice")
        guest = await RawClient.join(gateway)
        sub = await alice.subscribe("shop.Order")
        status, body, _ = await get(gateway, "/sessions")
        assert status == 200 and body["count"] == 2
        by_id = {s["session"]: s for s in body["sessions"]}
        assert by_id[alice.session] == {
            "session": alice.session,
            "realm": REALM,
            "authid": "alice",
            "authrole": "user",
            "authmethod": "ticket",
            "authprovider": "telegraphy",
            "transport": {"type": "websocket", "peer": "127.0.0.1", "serializer": "json"},
            "subscriptions": [{"subscription": sub, "topic": "shop.Order", "match": "exact"}],
        }
        assert (by_id[guest.session]["authrole"], by_id[guest.session]["subscriptions"]) == ("anonymous", [])
        guest.drop()

        async def guest_gone() -> bool:
            _, body, _ = await get(gateway, "/sessions")
            return [s["session"] for s in body["sessions"]] == [alice.session]

        await poll(guest_gone, "the dropped session leaves /sessions")
        alice.drop()

    run(scenario())


def test_sessions_reports_sockjs_sessions(gateway: GatewayProcess) -> None:
    """A session joined over SockJS's WebSocket transport is listed with transport type sockjs."""

    async def scenario() -> None:
        url = f"ws://127.0.0.1:{gateway.port}/sockjs/000/{uuid.uuid4().hex}/websocket"
        conn = await websocket_connect(url)

        async def frame() -> str:
            text = await asyncio.wait_for(conn.read_message(), STEP)
            assert isinstance(text, str), text
            return text

        assert await frame() == "o"
        hello = json.dumps([1, REALM, {"roles": {"subscriber": {}}}])
        await conn.write_message(json.dumps([hello]))
        welcome_frame = await frame()
        assert welcome_frame.startswith("a"), welcome_frame
        welcome = json.loads(json.loads(welcome_frame[1:])[0])
        assert welcome[0] == 2, welcome
        _, body, _ = await get(gateway, "/sessions")
        [listed] = body["sessions"]
        assert listed["session"] == welcome[1]
        assert listed["transport"] == {"type": "sockjs", "peer": "127.0.0.1", "serializer": "json"}
        conn.close()

    run(scenario())


# Subscriptions of a user -------------------------------------------------------------------


def test_subscriptions_of_a_user_live_then_persistent(gateway: GatewayProcess) -> None:
    """/subscriptions?user= shows a user's live and stored subscriptions; after a drop only the stored ones remain."""

    async def scenario() -> None:
        alice = await RawClient.join(gateway, "alice")
        bob = await RawClient.join(gateway, "bob")
        order = await alice.subscribe("shop.Order")
        prefix = await alice.subscribe("chat.", "prefix")
        await bob.subscribe("shop.Invoice")

        async def stored() -> dict[str, Any] | None:
            _, body, _ = await get(gateway, "/subscriptions?user=alice")
            return body if len(body["persistent"]) == 2 else None

        body = await poll(stored, "alice's subscriptions reach the store")
        assert body["user"] == "alice"
        assert sorted(body["live"], key=lambda s: s["topic"]) == [
            {"session": alice.session, "realm": REALM, "subscription": prefix, "topic": "chat.", "match": "prefix"},
            {"session": alice.session, "realm": REALM, "subscription": order, "topic": "shop.Order", "match": "exact"},
        ]
        persistent = sorted(body["persistent"], key=lambda s: s["topic"])
        assert [(s["topic"], s["match"], s["session"], s["connected"]) for s in persistent] == [
            ("chat.", "prefix", alice.session, True),
            ("shop.Order", "exact", alice.session, True),
        ]
        assert all(s["expires_at"] > time.time() for s in persistent)
        assert "token" not in json.dumps(body) and alice.details["resume_token"] not in json.dumps(body)
        alice.drop()

        async def dropped() -> dict[str, Any] | None:
            _, body, _ = await get(gateway, "/subscriptions?user=alice")
            return body if not body["live"] else None

        body = await poll(dropped, "alice's live subscriptions go with her connection")
        assert sorted((s["topic"], s["connected"]) for s in body["persistent"]) == [("chat.", False), ("shop.Order", False)]
        _, nobody, _ = await get(gateway, "/subscriptions?user=carol")
        assert nobody == {"user": "carol", "live": [], "persistent": []}
        bob.drop()

    run(scenario())


def test_without_a_store_only_live_subscriptions(gateway_process: Callable[..., GatewayProcess]) -> None:
    """With --store none the persistent lists are empty and the live ones still work."""
    gw = gateway_process(env={"TELEGRAPHY_STORE": "none"})

    async def scenario() -> None:
        alice = await RawClient.join(gw, "alice")
        sub = await alice.subscribe("shop.Order")
        _, body, _ = await get(gw, "/subscriptions?user=alice")
        assert body == {
            "user": "alice",
            "live": [{"session": alice.session, "realm": REALM, "subscription": sub, "topic": "shop.Order", "match": "exact"}],
            "persistent": [],
        }
        _, body, _ = await get(gw, "/subscribers?topic=shop.Order")
        assert [s["session"] for s in body["live"]] == [alice.session] and body["persistent"] == []
        alice.drop()

    run(scenario())


# Subscribers of a topic ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/subscribers", "/subscriptors"])
def test_subscribers_of_a_topic(gateway: GatewayProcess, path: str) -> None:
    """/subscribers?topic= (and /subscriptors) lists live and stored sessions an event on the topic reaches, patterns included."""

    async def scenario() -> None:
        alice = await RawClient.join(gateway, "alice")
        bob = await RawClient.join(gateway, "bob")
        carol = await RawClient.join(gateway, "carol")
        exact = await alice.subscribe("shop.Order")
        wildcard = await bob.subscribe("shop.", "prefix")
        await carol.subscribe("shop.Invoice")

        async def stored() -> dict[str, Any] | None:
            _, body, _ = await get(gateway, f"{path}?topic=shop.Order")
            return body if len(body["persistent"]) == 2 else None

        body = await poll(stored, "the subscribers reach the store")
        assert body["topic"] == "shop.Order"
        assert sorted(body["live"], key=lambda s: s["authid"]) == [
            {"session": alice.session, "authid": "alice", "authrole": "user", "realm": REALM, "subscription": exact, "match": "exact"},
            {"session": bob.session, "authid": "bob", "authrole": "user", "realm": REALM, "subscription": wildcard, "match": "prefix"},
        ]
        persistent = sorted(body["persistent"], key=lambda s: s["authid"])
        assert [(s["authid"], s["session"], s["match"], s["connected"]) for s in persistent] == [
            ("alice", alice.session, "exact", True),
            ("bob", bob.session, "prefix", True),
        ]
        _, nobody, _ = await get(gateway, f"{path}?topic=chat.lobby")
        assert nobody == {"topic": "chat.lobby", "live": [], "persistent": []}
        for client in (alice, bob, carol):
            client.drop()

    run(scenario())


# WAMP meta procedures over the wire ---------------------------------------------------------------


class MetaCaller(ApplicationSession):
    """An Autobahn session that joins with a ticket and resolves a future when joined."""

    def __init__(self, config: ComponentConfig, ticket: str, joined: asyncio.Future[MetaCaller]) -> None:
        super().__init__(config)
        self.ticket = ticket
        self.joined = joined
        self.left: asyncio.Future[None] = joined.get_loop().create_future()

    def onConnect(self) -> None:
        self.join(self.config.realm, authmethods=["ticket"])

    def onChallenge(self, challenge: Any) -> str:
        return self.ticket

    def onJoin(self, details: Any) -> None:
        self.joined.set_result(self)

    def onLeave(self, details: Any) -> None:
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(f"refused: {details.reason}"))
        if not self.left.done():
            self.left.set_result(None)
        self.disconnect()

    async def close(self) -> None:
        """Leave with GOODBYE and wait for the router's answer."""
        self.leave()
        await asyncio.wait_for(self.left, STEP)


async def autobahn_session(gw: GatewayProcess, serializer: type, user: str, **claims: Any) -> MetaCaller:
    """Open a ticket-authenticated Autobahn session for ``user``."""
    assert gw.secret is not None
    loop = asyncio.get_running_loop()
    joined: asyncio.Future[MetaCaller] = loop.create_future()
    ticket = mint_connect_token(gw.secret, user, **claims)
    factory = WampWebSocketClientFactory(lambda: MetaCaller(ComponentConfig(REALM), ticket, joined), url=gw.ws_url, serializers=[serializer()])
    await loop.create_connection(factory, "127.0.0.1", gw.port)
    return await asyncio.wait_for(joined, STEP)


@pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
def test_admin_session_calls_meta_procedures(gateway: GatewayProcess, serializer: type) -> None:
    """An Autobahn session with authrole admin calls the meta procedures; a user session is not authorized."""

    async def scenario() -> None:
        admin = await autobahn_session(gateway, serializer, "root", authrole="admin")
        user = await autobahn_session(gateway, serializer, "alice")
        subscription = await user.subscribe(lambda *a: None, "shop.", options=SubscribeOptions(match="prefix"))
        admin_id, user_id = admin._session_id, user._session_id

        assert await admin.call("wamp.session.count") == 2
        assert await admin.call("wamp.session.count", ["user"]) == 1
        assert sorted(await admin.call("wamp.session.list")) == sorted([admin_id, user_id])
        details = await admin.call("wamp.session.get", user_id)
        assert (details["session"], details["authid"], details["authrole"], details["authmethod"]) == (user_id, "alice", "user", "ticket")
        assert await admin.call("wamp.subscription.list") == {"exact": [], "prefix": [subscription.id], "wildcard": []}
        assert await admin.call("wamp.subscription.lookup", "shop.", {"match": "prefix"}) == subscription.id
        assert await admin.call("wamp.subscription.lookup", "shop.") is None
        assert await admin.call("wamp.subscription.match", "shop.Order") == [subscription.id]
        got = await admin.call("wamp.subscription.get", subscription.id)
        assert (got["id"], got["uri"], got["match"]) == (subscription.id, "shop.", "prefix")
        assert got["created"].endswith("Z")
        assert await admin.call("wamp.subscription.list_subscribers", subscription.id) == [user_id]
        assert await admin.call("wamp.subscription.count_subscribers", subscription.id) == 1
        assert await admin.call("wamp.registration.list") == {"exact": [], "prefix": [], "wildcard": []}

        for procedure, args, uri in [
            ("wamp.session.get", [123], "wamp.error.no_such_session"),
            ("wamp.subscription.get", [123], "wamp.error.no_such_subscription"),
            ("wamp.session.kill_all", [], "wamp.error.no_such_procedure"),
        ]:
            with pytest.raises(ApplicationError) as refused:
                await admin.call(procedure, *args)
            assert refused.value.error == uri
        with pytest.raises(ApplicationError) as refused:
            await user.call("wamp.session.list")
        assert refused.value.error == "wamp.error.not_authorized"
        for session in (admin, user):
            await session.close()

    run(scenario())



# Revocation tokens and persistence ----------------------------------------------------


async def revoke(gw: GatewayProcess, body: bytes, token: str | None = None) -> tuple[int, Any]:
    """POST /revoke with ``body`` and ``token`` (default: a fresh one bound to the body); return (status, JSON)."""
    assert gw.secret is not None
    token = token if token is not None else mint_manage_token(gw.secret, body=body)
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"{gw.url}/revoke", method="POST", body=body, raise_error=False, request_timeout=STEP,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return response.code, json.loads(response.body)


async def ticket_answer(gw: GatewayProcess, ticket: str) -> list[Any]:
    """Offer ``ticket`` in a new session; return the gateway's answer (WELCOME or ABORT)."""
    conn = await websocket_connect(gw.ws_url, subprotocols=["wamp.2.json"])
    try:
        await conn.write_message(json.dumps([1, REALM, {"roles": {"subscriber": {}}, "authmethods": ["ticket"]}]))
        assert (await RawClient._read(conn))[0] == 4
        await conn.write_message(json.dumps([5, ticket, {}]))
        return await RawClient._read(conn)
    finally:
        conn.close()


def test_revoke_token_is_single_use_and_bound_to_its_body(gateway: GatewayProcess) -> None:
    """A /revoke manage token works once, for its own body: replays and other bodies get 401 and escalate nobody."""
    assert gateway.secret is not None
    legit = json.dumps({"user": "7", "grants": {"groups": []}}).encode()
    forged = json.dumps({"user": "7", "grants": {"superuser": True}}).encode()

    async def scenario() -> None:
        user7 = await RawClient.join(gateway, "7")
        token = mint_manage_token(gateway.secret, body=legit)
        assert await revoke(gateway, legit, token) == (200, {"sessions": 1})
        status, answer = await revoke(gateway, legit, token)
        assert (status, answer["error"], answer["detail"]) == (401, "unauthorized", "token already used: mint a new one per request")
        status, answer = await revoke(gateway, forged, token)
        assert (status, answer["detail"]) == (401, "token was minted for another request body")
        status, answer = await revoke(gateway, forged, mint_manage_token(gateway.secret))
        assert status == 401 and answer["detail"].startswith("token has no 'body_sha256' claim")
        # Still not a superuser: user 8's private channel stays closed to user 7.
        refused = await user7.request([32, {}, "user.8.inbox"])
        assert refused[0] == 8 and refused[4] == "wamp.error.not_authorized", refused
        user7.drop()

    run(scenario())


def test_manage_and_connect_tokens_must_be_short_lived(gateway: GatewayProcess) -> None:
    """A manage token living over 300 s, or a connect token living over 3600 s (ten years here), is refused."""
    assert gateway.secret is not None
    body = json.dumps({"user": "7", "logout": True}).encode()

    async def scenario() -> None:
        status, answer, _ = await get(gateway, "/sessions", mint_manage_token(gateway.secret, ttl=3600))
        assert (status, answer["detail"]) == (401, "token lives 3600 s, more than the 300 s allowed")
        status, answer = await revoke(gateway, body, mint_manage_token(gateway.secret, ttl=301, body=body))
        assert (status, answer["detail"]) == (401, "token lives 301 s, more than the 300 s allowed")
        abort = await ticket_answer(gateway, mint_connect_token(gateway.secret, "7", ttl=10 * 365 * 86400))
        assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed", abort
        assert abort[1]["message"] == "ticket refused: token lives 315360000 s, more than the 3600 s allowed"

    run(scenario())


def test_logout_outlives_a_restart_and_reaches_a_node_started_later(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Any
) -> None:
    """After a logout, a gateway restarted on the same SQLite store, and a second node started later, refuse the old ticket and the used manage token."""
    env = {"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'shared.sqlite3'}"}
    first = gateway_process(env=env)
    secret = first.secret
    assert secret is not None
    old_ticket = mint_connect_token(secret, "1")  # minted before the logout, or in its second
    body = json.dumps({"user": "1", "logout": True}).encode()
    token = mint_manage_token(secret, body=body)

    async def logout() -> None:
        assert (await ticket_answer(first, old_ticket))[0] == 2
        assert await revoke(first, body, token) == (200, {"sessions": 0})

    run(logout())
    first.stop()
    restarted = gateway_process(env=env, secret=secret)
    later = gateway_process(env=env, secret=secret)

    async def after() -> None:
        for gw in (restarted, later):
            abort = await ticket_answer(gw, old_ticket)
            assert abort[0] == 3 and abort[1]["message"] == "ticket refused: the user logged out after it was issued", abort
            status, answer = await revoke(gw, body, token)
            assert (status, answer["detail"]) == (401, "token already used: mint a new one per request")
        fresh = mint_connect_token(secret, "1", now=time.time() + 1)  # issued after the logout
        assert (await ticket_answer(restarted, fresh))[0] == 2

    run(after())
