"""The router: publishing Telegraphy events from outside WAMP, realms, counters, authorization."""

from __future__ import annotations

import pytest
from wamp_peers import MSGPACK_CODEC, Peers, open_channels

from telegraphy.event import make_event
from telegraphy.wamp import ApplicationError, Authenticator, LocalProtocolError, Router, uris
from telegraphy.wamp.auth import Identity
from telegraphy.wamp.messages import Event
from telegraphy.wamp.router import Publication


def test_publish_event_delivers_the_event_as_args() -> None:
    """publish_event delivers [event] as args on the topic event["name"], with meta.id set."""
    peers = Peers()
    json_subscriber, msgpack_subscriber = peers.join(), peers.join(MSGPACK_CODEC)
    sub = peers.subscribe(json_subscriber, "shop.Order")
    peers.subscribe(msgpack_subscriber, "shop.Order")
    event = make_event("shop.Order", {"pk": 7, "status": "paid"}, "update")
    event_id = peers.router.publish_event(event)
    assert event["meta"]["id"] == event_id
    for session in (json_subscriber, msgpack_subscriber):
        [message] = peers.read(session)
        assert isinstance(message, Event)
        assert (message.subscription, message.details, message.kwargs) == (sub, {"publisher_authrole": "web"}, None)
        assert message.args == [event]


def test_publish_event_ids_are_unique() -> None:
    """Every published event without a meta.id gets a fresh one."""
    peers = Peers()
    ids = {peers.router.publish_event({"name": "t", "meta": {}, "data": {}}) for _ in range(100)}
    ids |= {peers.router.publish_event({"name": "t"}) for _ in range(100)}
    assert len(ids) == 200
    assert all(isinstance(i, str) and i for i in ids)


def test_publish_event_keeps_the_publishers_id_and_hands_it_to_the_sequencer() -> None:
    """An event's own meta.id is kept, delivered, and given to the sequencer (which dedups); a minted one is not."""
    peers = Peers()
    subscriber = peers.join()
    peers.subscribe(subscriber, "t")
    publications: list[Publication] = []
    peers.router.sequencer = publications.append
    assert peers.router.publish_event({"name": "t", "meta": {"id": "order-7:v2"}}) == "order-7:v2"
    minted = peers.router.publish_event({"name": "t"})
    assert [p.event_id for p in publications] == ["order-7:v2", None]
    for publication in publications:
        peers.router.deliver(publication)
    assert [m.args[0]["meta"]["id"] for m in peers.read(subscriber)] == ["order-7:v2", minted]  # type: ignore[attr-defined]


def test_publish_event_adds_missing_meta() -> None:
    """An event without meta gets one holding its id."""
    peers = Peers()
    subscriber = peers.join()
    peers.subscribe(subscriber, "t")
    event: dict[str, object] = {"name": "t", "data": {"x": 1}}
    event_id = peers.router.publish_event(event)
    [message] = peers.read(subscriber)
    assert message.args == [{"name": "t", "data": {"x": 1}, "meta": {"id": event_id}}]  # type: ignore[attr-defined]


def test_publish_event_reaches_pattern_subscribers() -> None:
    """Events from publish_event match prefix subscriptions and carry details.topic."""
    peers = Peers()
    subscriber = peers.join()
    sub = peers.subscribe(subscriber, "shop.", match="prefix")
    peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": {}})
    [message] = peers.read(subscriber)
    assert isinstance(message, Event) and (message.subscription, message.details) == (sub, {"publisher_authrole": "web", "topic": "shop.Order"})


def test_publish_event_payload_nobody_can_carry() -> None:
    """An event a subscriber's serializer cannot carry raises invalid_argument and reaches nobody."""
    peers = Peers()
    json_subscriber, msgpack_subscriber = peers.join(), peers.join(MSGPACK_CODEC)
    peers.subscribe(json_subscriber, "t")
    peers.subscribe(msgpack_subscriber, "t")
    with pytest.raises(ApplicationError) as info:
        peers.router.publish_event({"name": "t", "meta": {}, "data": {"n": 10**30}})
    assert info.value.uri == uris.INVALID_ARGUMENT
    assert peers.read(json_subscriber) == peers.read(msgpack_subscriber) == []
    assert peers.router.stats.events_published == 0


def test_realms_are_separate() -> None:
    """Events published in one realm do not reach sessions of another; publish_event defaults to the first realm."""
    peers = Peers(realms=("first", "second"))
    a, b = peers.attach(), peers.attach()
    peers.hello(a, realm="first")
    peers.hello(b, realm="second")
    peers.read(a)
    peers.read(b)
    peers.subscribe(a, "t")
    peers.subscribe(b, "t")
    peers.router.publish_event({"name": "t"})
    assert len(peers.read(a)) == 1 and peers.read(b) == []
    peers.router.publish_event({"name": "t"}, realm="second")
    assert peers.read(a) == [] and len(peers.read(b)) == 1


def test_router_needs_a_realm() -> None:
    """A router with no realm is a programming error."""
    with pytest.raises(LocalProtocolError):
        Router(Authenticator("s" * 32), ())


def test_counters() -> None:
    """Stats count received messages, publications, deliveries and protocol errors."""
    peers = Peers()
    a, b = peers.join(), peers.join()
    peers.subscribe(a, "t")
    peers.subscribe(b, "t")
    peers.router.publish_event({"name": "t"})
    stats = peers.router.stats
    assert (stats.events_published, stats.events_delivered, stats.protocol_errors) == (1, 2, 0)
    assert stats.messages_received == 4  # two HELLOs, two SUBSCRIBEs
    peers.send_raw(a, "junk")
    assert stats.protocol_errors == 1


def test_counts() -> None:
    """counts() reports established sessions, subscriptions and registrations."""
    peers = Peers()
    assert peers.router.counts() == {"sessions": 0, "subscriptions": 0, "registrations": 0}
    a, b = peers.join(), peers.join(user="callee", authrole="backend")
    peers.subscribe(a, "t")
    peers.subscribe(b, "t")
    peers.send(b, [64, 1, {}, "p"])
    peers.attach()  # not established: not counted
    assert peers.router.counts() == {"sessions": 2, "subscriptions": 1, "registrations": 1}


@pytest.mark.parametrize(
    ("identity", "action", "uri", "error"),
    [
        (Identity("anonymous", "anonymous", "anonymous"), "publish", "t", uris.NOT_AUTHORIZED),
        (Identity("anonymous", "anonymous", "anonymous"), "register", "p", uris.NOT_AUTHORIZED),
        (Identity("anonymous", "anonymous", "ticket"), "publish", "t", uris.NOT_AUTHORIZED),
        (Identity("u", "user", "ticket"), "publish", "wamp.x", uris.INVALID_URI),
        (Identity("u", "user", "wampcra"), "register", "wamp.x", uris.INVALID_URI),
        (Identity("u", "user", "ticket"), "publish", "t", uris.NOT_AUTHORIZED),
        (Identity("u", "user", "ticket"), "register", "p", uris.NOT_AUTHORIZED),
        (Identity("anonymous", "anonymous", "anonymous"), "call", "p", uris.NOT_AUTHORIZED),
    ],
)
def test_authorize_refuses(identity: Identity, action: str, uri: str, error: str) -> None:
    """By default nobody publishes, only backends register, anonymous sessions do not call; nobody publishes or registers under wamp."""
    router = Peers().router
    with pytest.raises(ApplicationError) as info:
        router.authorize(identity, action, uri)
    assert info.value.uri == error


@pytest.mark.parametrize(
    ("identity", "action"),
    [
        (Identity("anonymous", "anonymous", "anonymous"), "subscribe"),
        (Identity("u", "user", "ticket"), "call"),
        (Identity("svc", "backend", "ticket"), "register"),
        (Identity("svc", "backend", "ticket"), "call"),
    ],
)
def test_authorize_allows_by_default(identity: Identity, action: str) -> None:
    """With no declaration anyone subscribes, users call, backend sessions register."""
    Peers().router.authorize(identity, action, "com.example.t")


@pytest.mark.parametrize(
    ("identity", "action"),
    [
        (Identity("anonymous", "anonymous", "anonymous"), "call"),
        (Identity("u", "user", "ticket"), "publish"),
        (Identity("u", "user", "wampcra"), "register"),
    ],
)
def test_authorize_allows_what_is_declared(identity: Identity, action: str) -> None:
    """A declaration lets anonymous sessions call and users publish and register."""
    Peers(channels=open_channels()).router.authorize(identity, action, "com.example.t")
