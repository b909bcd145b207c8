"""Autobahn|Python sessions against a real gateway process, over wamp.2.json and wamp.2.msgpack.

Each test runs one asyncio scenario under a deadline (:func:`run`). Events
on one connection arrive in order, so "X was not delivered" is shown by a
later sentinel event arriving with nothing before it, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
import tornado.httpclient
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.auth import compute_wcs
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import CloseDetails, ComponentConfig, PublishOptions, SubscribeOptions
from gateway_helpers import GatewayProcess

from telegraphy.tokens import mint_connect_token, mint_publish_token, wampcra_key

REALM = "telegraphy"
#: Seconds a whole test scenario may take.
DEADLINE = 20.0
#: Seconds to wait for any one thing (a join, an event).
STEP = 5.0

SERIALIZERS = pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
#: By default clients publish nowhere and only backend sessions register:
#: these tests declare chat.* open to signed-in publishers and com.example.*
#: open to every caller (registered by backend sessions).
CHANNELS = [
    {"topic": "chat.", "match": "prefix", "publish": "authenticated"},
    {"procedure": "com.example.", "match": "prefix", "call": "public"},
]


@pytest.fixture
def gateway(gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    """A gateway declaring :data:`CHANNELS`."""
    return gateway_process("--channels", json.dumps(CHANNELS))


def run(scenario: Awaitable[Any], deadline: float = DEADLINE) -> Any:
    """Run an asyncio scenario to completion, failing it after ``deadline`` seconds."""
    return asyncio.run(asyncio.wait_for(scenario, deadline))


class Refused(Exception):
    """The router ended the session before it joined (ABORT)."""

    def __init__(self, details: CloseDetails) -> None:
        super().__init__(f"{details.reason}: {details.message}")
        self.reason = details.reason
        self.message = details.message


class Client(ApplicationSession):
    """An Autobahn session whose join, leave and received events are futures and a queue."""

    def __init__(self, config: ComponentConfig, auth: dict[str, Any], joined: asyncio.Future[Any], left: asyncio.Future[CloseDetails]) -> None:
        super().__init__(config)
        self.auth = auth
        self.joined = joined
        self.left = left
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...], dict[str, Any]]] = asyncio.Queue()
        self.welcome: Any = None

    def onConnect(self) -> None:
        self.join(self.config.realm, authmethods=self.auth.get("authmethods"), authid=self.auth.get("authid"))

    def onChallenge(self, challenge: Any) -> str:
        if challenge.method == "ticket":
            ticket: str = self.auth["ticket"]
            return ticket
        assert challenge.method == "wampcra", challenge
        signature: bytes = compute_wcs(self.auth["key"], challenge.extra["challenge"])
        return signature.decode("ascii")

    def onJoin(self, details: Any) -> None:
        self.welcome = details
        self.joined.set_result(self)

    def onLeave(self, details: CloseDetails) -> Any:
        if not self.left.done():
            self.left.set_result(details)
        if not self.joined.done():
            self.joined.set_exception(Refused(details))
        return super().onLeave(details)

    def collector(self, name: str) -> Callable[..., None]:
        """Return an event handler that queues (name, args, kwargs) on :attr:`events`."""

        def on_event(*args: Any, **kwargs: Any) -> None:
            self.events.put_nowait((name, args, kwargs))

        return on_event

    async def next_event(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Return the next event any collector got, waiting at most :data:`STEP` seconds."""
        return await asyncio.wait_for(self.events.get(), STEP)

    async def close(self) -> None:
        """Leave with GOODBYE and wait for the router's answer."""
        if self.is_attached():
            self.leave()
            await asyncio.wait_for(asyncio.shield(self.left), STEP)


async def connect(gateway: GatewayProcess, serializer: type, **auth: Any) -> Client:
    """Open an Autobahn session to ``gateway``; return it once joined.

    Args:
        auth: ``authmethods``, ``authid``, ``ticket``, ``key`` (WAMP-CRA).

    Raises:
        Refused: when the router answers with ABORT.
    """
    loop = asyncio.get_running_loop()
    joined: asyncio.Future[Any] = loop.create_future()
    left: asyncio.Future[CloseDetails] = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: Client(ComponentConfig(REALM), auth, joined, left), url=gateway.ws_url, serializers=[serializer()]
    )
    await loop.create_connection(factory, "127.0.0.1", gateway.port)
    client: Client = await asyncio.wait_for(joined, STEP)
    return client


async def connect_user(gateway: GatewayProcess, serializer: type, user: str, **claims: Any) -> Client:
    """Open a ticket-authenticated session for ``user``."""
    assert gateway.secret is not None
    return await connect(gateway, serializer, authmethods=["ticket"], ticket=mint_connect_token(gateway.secret, user, **claims))


async def http_publish(gateway: GatewayProcess, body: Any, *, token: str | None = "", headers: dict[str, str] | None = None) -> tornado.httpclient.HTTPResponse:
    """POST ``body`` (JSON-encoded unless bytes) to /publish; ``token=""`` mints a valid one, ``None`` sends none."""
    assert gateway.secret is not None
    all_headers = {"Content-Type": "application/json"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token or mint_publish_token(gateway.secret)}"
    all_headers.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client = tornado.httpclient.AsyncHTTPClient()
    return await client.fetch(f"{gateway.url}/publish", method="POST", body=data, headers=all_headers, raise_error=False, request_timeout=STEP)


def _event(name: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "meta": {"event_type": "update"}, "data": data}


# Publish and subscribe -------------------------------------------------------


@SERIALIZERS
def test_event_from_http_publish(gateway: GatewayProcess, serializer: type) -> None:
    """A subscriber receives an event POSTed to /publish with a publish token, as one positional argument."""

    async def scenario() -> None:
        client = await connect(gateway, serializer)
        assert client.welcome.authrole == "anonymous"
        await client.subscribe(client.collector("order"), "shop.Order")
        response = await http_publish(gateway, _event("shop.Order", pk=7, status="paid"))
        assert response.code == 202, response.body
        [event_id] = json.loads(response.body)["ids"]
        name, args, kwargs = await client.next_event()
        assert (name, kwargs) == ("order", {})
        [event] = args
        assert event["name"] == "shop.Order"
        assert event["data"] == {"pk": 7, "status": "paid"}
        assert event["meta"]["id"] == event_id and event["meta"]["event_type"] == "update"
        await client.close()

    run(scenario())


@SERIALIZERS
def test_http_batch_arrives_in_order(gateway: GatewayProcess, serializer: type) -> None:
    """A batch POSTed to /publish reaches the subscriber as separate events, in order."""

    async def scenario() -> None:
        client = await connect(gateway, serializer)
        await client.subscribe(client.collector("n"), "counter.tick")
        response = await http_publish(gateway, [_event("counter.tick", n=n) for n in range(5)])
        assert response.code == 202, response.body
        received = [(await client.next_event())[1][0]["data"]["n"] for _ in range(5)]
        assert received == [0, 1, 2, 3, 4]
        await client.close()

    run(scenario())


@SERIALIZERS
def test_publish_between_sessions(gateway: GatewayProcess, serializer: type) -> None:
    """A ticket user publishes with acknowledge; the other session gets args and kwargs, the publisher not its own event."""

    async def scenario() -> None:
        publisher = await connect_user(gateway, serializer, "alice")
        subscriber = await connect(gateway, JsonSerializer if serializer is MsgPackSerializer else MsgPackSerializer)
        await subscriber.subscribe(subscriber.collector("chat"), "chat.lobby")
        await publisher.subscribe(publisher.collector("own"), "chat.lobby")
        publication = await publisher.publish("chat.lobby", "hello", 2, mood="happy", options=PublishOptions(acknowledge=True))
        assert publication.id > 0
        assert await subscriber.next_event() == ("chat", ("hello", 2), {"mood": "happy"})
        # Sentinel: asked for explicitly, and arriving with nothing before it.
        await publisher.publish("chat.lobby", "sentinel", options=PublishOptions(acknowledge=True, exclude_me=False))
        assert await publisher.next_event() == ("own", ("sentinel",), {})
        assert await subscriber.next_event() == ("chat", ("sentinel",), {})
        assert publisher.events.empty() and subscriber.events.empty()
        await publisher.close()
        await subscriber.close()

    run(scenario())


@SERIALIZERS
def test_exclude_and_eligible(gateway: GatewayProcess, serializer: type) -> None:
    """Publish options exclude and eligible (session ids) choose which subscribers get the event."""

    async def scenario() -> None:
        publisher = await connect_user(gateway, serializer, "alice")
        a, b, c = [await connect(gateway, serializer) for _ in range(3)]
        for client in (a, b, c):
            await client.subscribe(client.collector("t"), "chat.lobby")
        await publisher.publish("chat.lobby", "to-b", options=PublishOptions(acknowledge=True, eligible=[b.session_id]))
        await publisher.publish("chat.lobby", "not-c", options=PublishOptions(acknowledge=True, exclude=[c.session_id]))
        await publisher.publish("chat.lobby", "sentinel", options=PublishOptions(acknowledge=True))
        for client, expected in ((a, ["not-c", "sentinel"]), (b, ["to-b", "not-c", "sentinel"]), (c, ["sentinel"])):
            assert [(await client.next_event())[1][0] for _ in expected] == expected
            assert client.events.empty()
        for client in (publisher, a, b, c):
            await client.close()

    run(scenario())


@SERIALIZERS
def test_anonymous_publish_refused(gateway: GatewayProcess, serializer: type) -> None:
    """An anonymous session's acknowledged publish fails with wamp.error.not_authorized; nothing is delivered."""

    async def scenario() -> None:
        anonymous = await connect(gateway, serializer)
        subscriber = await connect(gateway, serializer)
        await subscriber.subscribe(subscriber.collector("t"), "chat.lobby")
        with pytest.raises(ApplicationError) as info:
            await anonymous.publish("chat.lobby", "spam", options=PublishOptions(acknowledge=True))
        assert info.value.error == "wamp.error.not_authorized"
        await http_publish(gateway, _event("chat.lobby"))
        _, args, _ = await subscriber.next_event()
        assert args[0]["name"] == "chat.lobby"
        await anonymous.close()
        await subscriber.close()

    run(scenario())


@SERIALIZERS
def test_prefix_and_wildcard_subscriptions(gateway: GatewayProcess, serializer: type) -> None:
    """Prefix and wildcard subscriptions get matching events, with the concrete topic in the details."""

    async def scenario() -> None:
        client = await connect(gateway, serializer)
        topics: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()

        def handler(kind: str) -> Callable[..., None]:
            return lambda event, details: topics.put_nowait((kind, details.topic, event["data"]))

        await client.subscribe(handler("prefix"), "shop.", options=SubscribeOptions(match="prefix", details_arg="details"))
        await client.subscribe(handler("wildcard"), "blog..update", options=SubscribeOptions(match="wildcard", details_arg="details"))
        for name in ("shop.Order", "other.Thing", "blog.Post.update", "blog.Post.delete", "shop.Cart"):
            response = await http_publish(gateway, _event(name, topic=name))
            assert response.code == 202
        received = [await asyncio.wait_for(topics.get(), STEP) for _ in range(3)]
        assert received == [
            ("prefix", "shop.Order", {"topic": "shop.Order"}),
            ("wildcard", "blog.Post.update", {"topic": "blog.Post.update"}),
            ("prefix", "shop.Cart", {"topic": "shop.Cart"}),
        ]
        assert topics.empty()
        await client.close()

    run(scenario())


# Remote procedure calls --------------------------------------------------------


@SERIALIZERS
def test_rpc_between_sessions(gateway: GatewayProcess, serializer: type) -> None:
    """A backend session registers a procedure; another session calls it and gets the result."""

    async def scenario() -> None:
        callee = await connect_user(gateway, serializer, "calc", authrole="backend")
        caller = await connect(gateway, JsonSerializer)

        def add(a: int, b: int, scale: int = 1) -> int:
            return (a + b) * scale

        registration = await callee.register(add, "com.example.add")
        assert registration.id > 0
        assert await caller.call("com.example.add", 2, 3) == 5
        assert await caller.call("com.example.add", 2, 3, scale=10) == 50
        await callee.close()
        await caller.close()

    run(scenario())


@SERIALIZERS
def test_rpc_error_propagates(gateway: GatewayProcess, serializer: type) -> None:
    """An ApplicationError raised by the callee reaches the caller with the same URI and args."""

    async def scenario() -> None:
        callee = await connect_user(gateway, serializer, "calc", authrole="backend")
        caller = await connect(gateway, serializer)

        def divide(a: int, b: int) -> float:
            if b == 0:
                raise ApplicationError("com.example.error.division_by_zero", "cannot divide by zero", a)
            return a / b

        await callee.register(divide, "com.example.divide")
        assert await caller.call("com.example.divide", 6, 3) == 2
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.example.divide", 6, 0)
        assert info.value.error == "com.example.error.division_by_zero"
        assert info.value.args == ("cannot divide by zero", 6)
        await callee.close()
        await caller.close()

    run(scenario())


@SERIALIZERS
def test_unknown_procedure(gateway: GatewayProcess, serializer: type) -> None:
    """Calling a procedure nobody registered fails with wamp.error.no_such_procedure."""

    async def scenario() -> None:
        caller = await connect(gateway, serializer)
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.example.missing")
        assert info.value.error == "wamp.error.no_such_procedure"
        await caller.close()

    run(scenario())


@SERIALIZERS
def test_callee_leaving_cancels_calls(gateway: GatewayProcess, serializer: type) -> None:
    """When the callee leaves during a call, the caller gets wamp.error.canceled."""

    async def scenario() -> None:
        callee = await connect_user(gateway, serializer, "slow", authrole="backend")
        caller = await connect(gateway, serializer)
        invoked = asyncio.get_running_loop().create_future()

        async def never_answers() -> None:
            invoked.set_result(None)
            await asyncio.Event().wait()

        await callee.register(never_answers, "com.example.slow")
        call = asyncio.ensure_future(caller.call("com.example.slow"))
        await asyncio.wait_for(invoked, STEP)
        callee.leave()
        with pytest.raises(ApplicationError) as info:
            await asyncio.wait_for(call, STEP)
        assert info.value.error == "wamp.error.canceled"
        await caller.close()

    run(scenario())


# Authentication ------------------------------------------------------------------


@SERIALIZERS
def test_ticket_accepted(gateway: GatewayProcess, serializer: type) -> None:
    """A connect token as WAMP ticket: joined with authid = sub, the token's role, method ticket."""

    async def scenario() -> None:
        client = await connect_user(gateway, serializer, "42", authrole="staff")
        assert (client.welcome.authid, client.welcome.authrole, client.welcome.authmethod) == ("42", "staff", "ticket")
        assert client.welcome.realm == REALM
        await client.close()
        plain = await connect_user(gateway, serializer, "43")
        assert (plain.welcome.authid, plain.welcome.authrole) == ("43", "user")
        await plain.close()

    run(scenario())


def _connect_claims(user: str) -> dict[str, Any]:
    return {"aud": "telegraphy:connect", "sub": user, "iat": int(time.time()), "exp": int(time.time()) + 60}


def _unsigned_ticket(user: str) -> str:
    """A connect token with ``alg: none`` and no signature."""
    return jwt.encode(_connect_claims(user), None, algorithm="none")


def _hs512_ticket(secret: str, user: str) -> str:
    """A connect token signed with the right secret but HS512."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for SHA-512
        return jwt.encode(_connect_claims(user), secret, algorithm="HS512")


def _tampered_ticket(secret: str, user: str, **changes: Any) -> str:
    """A valid connect token whose payload was changed afterwards (the signature kept)."""
    header, payload, signature = mint_connect_token(secret, user).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@SERIALIZERS
@pytest.mark.parametrize(
    ("make_ticket", "reason"),
    [
        (lambda secret: mint_connect_token(secret, "42", now=time.time() - 3600, ttl=60), "ticket refused: token expired"),
        (lambda secret: mint_connect_token("forged-" + "z" * 40, "42"), "ticket refused: token signature is invalid"),
        (lambda secret: mint_publish_token(secret), "ticket refused: token is not a connect token"),
        (lambda secret: _unsigned_ticket("42"), "ticket refused: token algorithm is not HS256"),
        (lambda secret: _tampered_ticket(secret, "42", sub="1", superuser=True), "ticket refused: token signature is invalid"),
        (lambda secret: _hs512_ticket(secret, "42"), "ticket refused: token algorithm is not HS256"),
    ],
    ids=["expired", "forged", "publish-token", "alg-none", "tampered-claims", "other-algorithm"],
)
def test_ticket_refused(gateway: GatewayProcess, serializer: type, make_ticket: Callable[[str], str], reason: str) -> None:
    """Expired, forged, unsigned (alg none), tampered, wrongly signed or wrong-purpose tickets end the session with wamp.error.authentication_failed."""

    async def scenario() -> None:
        assert gateway.secret is not None
        with pytest.raises(Refused) as info:
            await connect(gateway, serializer, authmethods=["ticket"], ticket=make_ticket(gateway.secret))
        assert info.value.reason == "wamp.error.authentication_failed"
        assert info.value.message == reason

    run(scenario())


@SERIALIZERS
def test_wampcra_accepted(gateway: GatewayProcess, serializer: type) -> None:
    """WAMP-CRA with key = wampcra_key(secret, authid): joined as that authid with role user."""

    async def scenario() -> None:
        assert gateway.secret is not None
        client = await connect(gateway, serializer, authmethods=["wampcra"], authid="carol", key=wampcra_key(gateway.secret, "carol"))
        assert (client.welcome.authid, client.welcome.authrole, client.welcome.authmethod) == ("carol", "user", "wampcra")
        await client.publish("chat.lobby", options=PublishOptions(acknowledge=True))
        await client.close()

    run(scenario())


@SERIALIZERS
def test_wampcra_wrong_key_refused(gateway: GatewayProcess, serializer: type) -> None:
    """WAMP-CRA signed with another authid's key ends the session with wamp.error.authentication_failed."""

    async def scenario() -> None:
        assert gateway.secret is not None
        with pytest.raises(Refused) as info:
            await connect(gateway, serializer, authmethods=["wampcra"], authid="carol", key=wampcra_key(gateway.secret, "mallory"))
        assert info.value.reason == "wamp.error.authentication_failed"

    run(scenario())


def test_anonymous_refused_when_switched_off(gateway_process: Callable[..., GatewayProcess]) -> None:
    """With --no-allow-anonymous an anonymous HELLO gets wamp.error.no_auth_method; a ticket still works."""
    gateway = gateway_process("--no-allow-anonymous")

    async def scenario() -> None:
        with pytest.raises(Refused) as info:
            await connect(gateway, JsonSerializer)
        assert info.value.reason == "wamp.error.no_auth_method"
        client = await connect_user(gateway, JsonSerializer, "7")
        await client.close()

    run(scenario())


# The HTTP API never leaks into sessions -------------------------------------------


def test_refused_http_requests_publish_nothing(gateway: GatewayProcess) -> None:
    """Every /publish refused with 400, 401, 413 or 415 sends nothing to a subscribed session; the next good one arrives alone."""
    assert gateway.secret is not None
    secret = gateway.secret
    good = _event("shop.Order", pk=1)
    bad_requests: list[tuple[int, dict[str, Any]]] = [
        (401, {"body": good, "token": None}),
        (401, {"body": good, "token": "not-a-jwt"}),
        (401, {"body": good, "token": mint_publish_token("forged-" + "z" * 40)}),
        (401, {"body": good, "token": mint_publish_token(secret, now=time.time() - 3600)}),
        (401, {"body": good, "token": mint_connect_token(secret, "42")}),
        (401, {"body": good, "headers": {"Authorization": f"Basic {mint_publish_token(secret)}"}}),
        (400, {"body": b"{not json"}),
        (400, {"body": b""}),
        (400, {"body": b'{"name": "shop.Order", "data": NaN}'}),
        (400, {"body": {"name": "shop order"}}),
        (400, {"body": {"name": "shop.Order", "extra": 1}}),
        (400, {"body": []}),
        (400, {"body": [good, {"name": 5}]}),
        (400, {"body": "shop.Order"}),
        (413, {"body": {"name": "shop.Order", "data": {"x": "y" * (2 * 1024 * 1024)}}}),
        (415, {"body": good, "headers": {"Content-Type": "text/plain"}}),
    ]

    async def scenario() -> None:
        json_client = await connect(gateway, JsonSerializer)
        msgpack_client = await connect(gateway, MsgPackSerializer)
        for client in (json_client, msgpack_client):
            await client.subscribe(client.collector("order"), "shop.Order")
            await client.subscribe(client.collector("prefix"), "", options=SubscribeOptions(match="prefix"))
        for status, request in bad_requests:
            response = await http_publish(gateway, **request)
            assert response.code == status, (request, response.body)
        response = await http_publish(gateway, good)
        assert response.code == 202
        [event_id] = json.loads(response.body)["ids"]
        for client in (json_client, msgpack_client):
            received = [await client.next_event() for _ in range(2)]
            assert sorted(name for name, _, _ in received) == ["order", "prefix"]
            assert [args[0]["meta"]["id"] for _, args, _ in received] == [event_id, event_id]
            assert client.events.empty()
        await json_client.close()
        await msgpack_client.close()

    run(scenario())
