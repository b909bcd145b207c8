"""The router's meta procedures (wamp.session.*, wamp.subscription.*, wamp.registration.list), socket-free."""

from __future__ import annotations

from typing import Any

import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, REALM, Peers, open_channels

from telegraphy.wamp import ServerSession, WireCodec, uris
from telegraphy.wamp.messages import Call, Error, Register, Registered, Result, Subscribe, Subscribed
from telegraphy.wamp.meta import PROCEDURES


@pytest.fixture
def peers() -> Peers:
    """A router allowing anonymous sessions, with the default meta roles; signed-in sessions may register."""
    return Peers(channels=open_channels())


def call(peers: Peers, session: ServerSession, procedure: str, *args: Any, request: int = 1) -> Result | Error:
    """CALL ``procedure`` and return the one answer, which must already be queued."""
    peers.send(session, Call(request, {}, procedure, list(args)))
    answer = peers.read_one(session)
    assert isinstance(answer, (Result, Error)), answer
    assert answer.request == request
    return answer


def result(peers: Peers, session: ServerSession, procedure: str, *args: Any) -> Any:
    """CALL ``procedure`` and return the one positional result of its RESULT."""
    answer = call(peers, session, procedure, *args)
    assert isinstance(answer, Result), answer
    assert answer.args is not None and len(answer.args) == 1, answer
    return answer.args[0]


def error(peers: Peers, session: ServerSession, procedure: str, *args: Any) -> str:
    """CALL ``procedure`` and return the error URI of its ERROR."""
    answer = call(peers, session, procedure, *args)
    assert isinstance(answer, Error) and answer.request_type == Call.TYPE, answer
    return answer.error


def admin(peers: Peers, codec: WireCodec = JSON_CODEC) -> ServerSession:
    """A session opened with a connect token carrying ``authrole: admin``."""
    return peers.join(codec, user="root", authrole="admin")


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"])
def test_session_count_list_get(peers: Peers, codec: WireCodec) -> None:
    """An admin counts, lists and describes the realm's sessions, itself included."""
    root = admin(peers, codec)
    alice = peers.join(user="alice")
    guest = peers.join(MSGPACK_CODEC)
    assert result(peers, root, "wamp.session.count") == 3
    assert sorted(result(peers, root, "wamp.session.list")) == sorted([root.id, alice.id, guest.id])
    assert result(peers, root, "wamp.session.get", alice.id) == {
        "session": alice.id,
        "authid": "alice",
        "authrole": "user",
        "authmethod": "ticket",
        "authprovider": "telegraphy",
        "transport": {"peer": "test", "serializer": "json"},
    }
    details = result(peers, root, "wamp.session.get", guest.id)
    assert (details["authid"], details["authrole"], details["transport"]["serializer"]) == ("anonymous", "anonymous", "msgpack")
    assert result(peers, root, "wamp.session.get", root.id)["authrole"] == "admin"


def test_session_filter_authroles(peers: Peers) -> None:
    """filter_authroles keeps only sessions with one of the listed roles; null means all."""
    root = admin(peers)
    alice, bob = peers.join(user="alice"), peers.join(user="bob")
    peers.join()
    assert result(peers, root, "wamp.session.count", ["user"]) == 2
    assert sorted(result(peers, root, "wamp.session.list", ["user"])) == sorted([alice.id, bob.id])
    assert result(peers, root, "wamp.session.list", ["admin", "anonymous"]).count(root.id) == 1
    assert result(peers, root, "wamp.session.count", ["nobody"]) == 0
    assert result(peers, root, "wamp.session.list", []) == []
    assert result(peers, root, "wamp.session.count", None) == 4


def test_session_get_unknown_and_departed(peers: Peers) -> None:
    """wamp.session.get of a session that never was, or that left, is wamp.error.no_such_session."""
    root = admin(peers)
    alice = peers.join(user="alice")
    alice_id = alice.id
    alice.connection_lost()
    assert error(peers, root, "wamp.session.get", alice_id) == uris.NO_SUCH_SESSION == "wamp.error.no_such_session"
    assert error(peers, root, "wamp.session.get", 12345) == uris.NO_SUCH_SESSION
    assert result(peers, root, "wamp.session.count") == 1


def test_sessions_of_other_realms_are_invisible() -> None:
    """Meta procedures see the caller's realm only."""
    peers = Peers(realms=(REALM, "other"))
    root = admin(peers)
    stranger = peers.attach()
    peers.hello(stranger, realm="other")
    peers.read(stranger)
    assert stranger.id is not None
    assert result(peers, root, "wamp.session.list") == [root.id]
    assert error(peers, root, "wamp.session.get", stranger.id) == uris.NO_SUCH_SESSION


def test_subscription_list_lookup_match(peers: Peers) -> None:
    """Subscriptions are listed by match policy, looked up by (topic, match), and matched by topic."""
    root = admin(peers)
    alice = peers.join(user="alice")
    exact = peers.subscribe(alice, "shop.order.paid")
    prefix = peers.subscribe(alice, "shop.", match="prefix", request=2)
    wildcard = peers.subscribe(alice, "shop..paid", match="wildcard", request=3)
    other = peers.subscribe(alice, "chat.lobby", request=4)
    assert result(peers, root, "wamp.subscription.list") == {"exact": [exact, other], "prefix": [prefix], "wildcard": [wildcard]}
    assert result(peers, root, "wamp.subscription.lookup", "shop.order.paid") == exact
    assert result(peers, root, "wamp.subscription.lookup", "shop.order.paid", {}) == exact
    assert result(peers, root, "wamp.subscription.lookup", "shop.", {"match": "prefix"}) == prefix
    assert result(peers, root, "wamp.subscription.lookup", "shop..paid", {"match": "wildcard"}) == wildcard
    assert result(peers, root, "wamp.subscription.lookup", "shop.", {"match": "exact"}) is None
    assert result(peers, root, "wamp.subscription.lookup", "nobody.here") is None
    assert sorted(result(peers, root, "wamp.subscription.match", "shop.order.paid")) == sorted([exact, prefix, wildcard])
    assert result(peers, root, "wamp.subscription.match", "shop.order.sent") == [prefix]
    assert result(peers, root, "wamp.subscription.match", "nobody.here") is None


def test_subscription_get_and_subscribers(peers: Peers) -> None:
    """get describes a subscription; list_subscribers and count_subscribers follow who joins and leaves it."""
    root = admin(peers)
    alice, bob = peers.join(user="alice"), peers.join()
    created = 1_800_000_000.25
    alice.receive(alice.codec.serializer.encode(Subscribe(1, {}, "shop.Order").marshal()).decode("utf-8"), created)
    subscribed = peers.read_one(alice)
    assert isinstance(subscribed, Subscribed)
    sub = subscribed.subscription
    assert result(peers, root, "wamp.subscription.get", sub) == {
        "id": sub,
        "created": "2027-01-15T08:00:00.250000Z",
        "uri": "shop.Order",
        "match": "exact",
    }
    assert result(peers, root, "wamp.subscription.list_subscribers", sub) == [alice.id]
    assert peers.subscribe(bob, "shop.Order") == sub
    assert result(peers, root, "wamp.subscription.list_subscribers", sub) == [alice.id, bob.id]
    assert result(peers, root, "wamp.subscription.count_subscribers", sub) == 2
    alice.connection_lost()
    assert result(peers, root, "wamp.subscription.list_subscribers", sub) == [bob.id]
    assert result(peers, root, "wamp.subscription.count_subscribers", sub) == 1
    bob.connection_lost()
    for procedure in ("wamp.subscription.get", "wamp.subscription.list_subscribers", "wamp.subscription.count_subscribers"):
        assert error(peers, root, procedure, sub) == uris.NO_SUCH_SUBSCRIPTION == "wamp.error.no_such_subscription"


def test_registration_list(peers: Peers) -> None:
    """wamp.registration.list gives the ids of the realm's registrations, all under exact."""
    root = admin(peers)
    callee = peers.join(user="callee")
    assert result(peers, root, "wamp.registration.list") == {"exact": [], "prefix": [], "wildcard": []}
    peers.send(callee, Register(1, {}, "com.example.add"))
    registered = peers.read_one(callee)
    assert isinstance(registered, Registered)
    assert result(peers, root, "wamp.registration.list") == {"exact": [registered.registration], "prefix": [], "wildcard": []}


@pytest.mark.parametrize("procedure", sorted(PROCEDURES))
@pytest.mark.parametrize("who", ["user", "anonymous", "wampcra"])
def test_other_roles_are_not_authorized(peers: Peers, procedure: str, who: str) -> None:
    """Every meta procedure refuses sessions whose role is not a meta role, with wamp.error.not_authorized."""
    session = peers.join(user="alice") if who == "user" else peers.join(cra="alice") if who == "wampcra" else peers.join()
    assert error(peers, session, procedure, 1) == uris.NOT_AUTHORIZED


def test_meta_roles_are_configurable(peers: Peers) -> None:
    """Router.meta_roles decides which authroles may call: here "ops" may and "admin" may not."""
    peers.router.meta_roles = {"ops"}
    ops, root = peers.join(user="o", authrole="ops"), admin(peers)
    assert result(peers, ops, "wamp.session.count") == 2
    assert error(peers, root, "wamp.session.count") == uris.NOT_AUTHORIZED


def test_unknown_wamp_procedure(peers: Peers) -> None:
    """An unknown wamp.* procedure is wamp.error.no_such_procedure, for admins and others alike."""
    root, alice = admin(peers), peers.join(user="alice")
    for session in (root, alice):
        assert error(peers, session, "wamp.session.kill", 1) == uris.NO_SUCH_PROCEDURE
        assert error(peers, session, "wamp.nothing") == uris.NO_SUCH_PROCEDURE


@pytest.mark.parametrize(
    ("procedure", "args"),
    [
        ("wamp.session.get", []),
        ("wamp.session.get", ["7"]),
        ("wamp.session.get", [True]),
        ("wamp.session.count", ["admin"]),
        ("wamp.session.list", [[1, 2]]),
        ("wamp.subscription.get", []),
        ("wamp.subscription.list_subscribers", [1.5]),
        ("wamp.subscription.lookup", []),
        ("wamp.subscription.lookup", [7]),
        ("wamp.subscription.lookup", ["t", "exact"]),
        ("wamp.subscription.lookup", ["t", {"match": "regex"}]),
        ("wamp.subscription.match", [None]),
    ],
)
def test_bad_arguments(peers: Peers, procedure: str, args: list[Any]) -> None:
    """Missing or mistyped arguments are wamp.error.invalid_argument, and the session goes on."""
    root = admin(peers)
    assert error(peers, root, procedure, *args) == uris.INVALID_ARGUMENT
    assert result(peers, root, "wamp.session.count") == 1


def test_meta_procedures_are_answered_by_the_router(peers: Peers) -> None:
    """A meta CALL is answered at once by the router; no peer can register a wamp.* procedure to take it."""
    root, callee = admin(peers), peers.join(user="callee")
    peers.send(callee, Register(1, {}, "wamp.session.count"))
    refused = peers.read_one(callee)
    assert isinstance(refused, Error) and refused.error == uris.INVALID_URI
    assert result(peers, root, "wamp.session.count") == 2
    assert peers.read(callee) == []
