"""Publish and subscribe between sessions of one router: ids, exclusion, filters, patterns, fan-out."""

from __future__ import annotations

from typing import Any

import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, CountingSerializer, Peers, open_channels

from telegraphy.wamp import JSON, MSGPACK, WireCodec, uris
from telegraphy.wamp.messages import Error, Event, Publish, Published, Subscribe, Unsubscribed


@pytest.fixture
def peers() -> Peers:
    """A router allowing anonymous sessions; signed-in sessions publish anywhere (a declared channel)."""
    return Peers(channels=open_channels())


def _events(peers: Peers, session: Any) -> list[Event]:
    messages = peers.read(session)
    assert all(isinstance(m, Event) for m in messages), messages
    return messages  # type: ignore[return-value]


def test_subscribe_gets_subscribed(peers: Peers) -> None:
    """SUBSCRIBE is answered with SUBSCRIBED carrying the request id and a subscription id."""
    session = peers.join()
    peers.send(session, [32, 713, {}, "shop.Order"])
    subscribed = peers.read_one(session)
    assert subscribed.TYPE == 33
    assert subscribed.request == 713  # type: ignore[attr-defined]
    assert subscribed.subscription in session.subscriptions  # type: ignore[attr-defined]


def test_same_topic_twice_same_id(peers: Peers) -> None:
    """Subscribing twice to the same topic returns the same subscription id (WAMP §8.1.2)."""
    session = peers.join()
    first = peers.subscribe(session, "shop.Order", request=1)
    assert peers.subscribe(session, "shop.Order", request=2) == first
    assert peers.router.counts()["subscriptions"] == 1


def test_sessions_share_subscription_ids(peers: Peers) -> None:
    """Two sessions subscribing to one topic get the same subscription id; another match policy gets another."""
    a, b = peers.join(), peers.join(MSGPACK_CODEC)
    sub = peers.subscribe(a, "shop.Order")
    assert peers.subscribe(b, "shop.Order") == sub
    assert peers.subscribe(b, "shop.Order", match="prefix") != sub
    assert peers.subscribe(b, "shop.Other") != sub


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"])
def test_publish_with_acknowledge(peers: Peers, codec: WireCodec) -> None:
    """PUBLISH with acknowledge gets PUBLISHED; subscribers get EVENT with args and kwargs."""
    publisher = peers.join(codec, user="p")
    subscriber = peers.join(JSON_CODEC)
    other = peers.join(MSGPACK_CODEC)
    sub = peers.subscribe(subscriber, "shop.Order")
    assert peers.subscribe(other, "shop.Order") == sub
    peers.send(publisher, Publish(9, {"acknowledge": True}, "shop.Order", [1, "two"], {"pk": 7}))
    published = peers.read_one(publisher)
    assert isinstance(published, Published) and published.request == 9
    by = {"publisher": publisher.id, "publisher_authid": "p", "publisher_authrole": "user"}
    for session in (subscriber, other):
        assert _events(peers, session) == [Event(sub, published.publication, by, [1, "two"], {"pk": 7})]


def test_publish_without_acknowledge(peers: Peers) -> None:
    """PUBLISH without acknowledge gets no answer; the event is still delivered."""
    publisher = peers.join(user="p")
    subscriber = peers.join()
    sub = peers.subscribe(subscriber, "chat.lobby")
    peers.send(publisher, Publish(1, {}, "chat.lobby", ["hi"]))
    assert peers.read(publisher) == []
    [event] = _events(peers, subscriber)
    assert (event.subscription, event.args, event.kwargs) == (sub, ["hi"], None)


def test_event_without_payload(peers: Peers) -> None:
    """An event published without args or kwargs arrives without them."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "t")
    peers.send(publisher, [16, 1, {}, "t"])
    [frame] = subscriber.data_to_send()
    assert len(JSON.decode(frame)) == 4


def test_event_with_kwargs_only(peers: Peers) -> None:
    """Kwargs without args arrive with an empty args list."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "t")
    peers.send(publisher, [16, 1, {}, "t", [], {"k": 1}])
    [frame] = subscriber.data_to_send()
    assert JSON.decode(frame)[4:] == [[], {"k": 1}]


def test_publisher_excluded_by_default(peers: Peers) -> None:
    """The publisher does not receive its own event unless it sets exclude_me false (WAMP §8.4.1)."""
    publisher, other = peers.join(user="p"), peers.join()
    sub = peers.subscribe(publisher, "t")
    peers.subscribe(other, "t")
    peers.send(publisher, Publish(1, {}, "t", ["a"]))
    assert peers.read(publisher) == []
    assert len(_events(peers, other)) == 1
    peers.send(publisher, Publish(2, {"exclude_me": False}, "t", ["b"]))
    [event] = _events(peers, publisher)
    assert (event.subscription, event.args) == (sub, ["b"])
    assert len(_events(peers, other)) == 1


def test_exclude_me_must_be_boolean(peers: Peers) -> None:
    """A non-boolean exclude_me is refused with invalid_argument."""
    publisher = peers.join(user="p")
    peers.send(publisher, Publish(1, {"acknowledge": True, "exclude_me": "no"}, "t"))
    error = peers.read_one(publisher)
    assert isinstance(error, Error)
    assert (error.request_type, error.request, error.error) == (Publish.TYPE, 1, uris.INVALID_ARGUMENT)


def test_exclude_and_eligible(peers: Peers) -> None:
    """exclude and eligible lists of session ids restrict who receives the event."""
    publisher = peers.join(user="p")
    a, b, c = peers.join(), peers.join(MSGPACK_CODEC), peers.join()
    for s in (a, b, c):
        peers.subscribe(s, "t")
    peers.send(publisher, Publish(1, {"exclude": [b.id]}, "t"))
    assert [len(_events(peers, s)) for s in (a, b, c)] == [1, 0, 1]
    peers.send(publisher, Publish(2, {"eligible": [b.id, c.id]}, "t"))
    assert [len(_events(peers, s)) for s in (a, b, c)] == [0, 1, 1]
    peers.send(publisher, Publish(3, {"eligible": [b.id, c.id], "exclude": [c.id]}, "t"))
    assert [len(_events(peers, s)) for s in (a, b, c)] == [0, 1, 0]


@pytest.mark.parametrize("value", ["1", [1.5], [True], {"id": 1}])
def test_malformed_session_id_lists(peers: Peers, value: Any) -> None:
    """exclude/eligible must be lists of integer session ids."""
    publisher = peers.join(user="p")
    peers.send(publisher, Publish(1, {"acknowledge": True, "eligible": value}, "t"))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT


def test_exclude_and_eligible_by_authid_and_authrole(peers: Peers) -> None:
    """exclude_authid, eligible_authid, exclude_authrole and eligible_authrole restrict who receives the event."""
    publisher = peers.join(user="p")
    seven, eight, admin, anonymous = peers.join(user="7"), peers.join(user="8"), peers.join(user="9", authrole="admin"), peers.join()
    sessions = (seven, eight, admin, anonymous)
    for s in sessions:
        peers.subscribe(s, "t")
    cases = [
        ({"eligible_authid": ["8"]}, [0, 1, 0, 0]),
        ({"exclude_authid": ["8", "anonymous"]}, [1, 0, 1, 0]),
        ({"eligible_authrole": ["admin"]}, [0, 0, 1, 0]),
        ({"exclude_authrole": ["user"]}, [0, 0, 1, 1]),
        ({"eligible_authid": ["7", "8"], "exclude": [eight.id]}, [1, 0, 0, 0]),
    ]
    for request, (options, expected) in enumerate(cases, 1):
        peers.send(publisher, Publish(request, options, "t"))
        assert [len(_events(peers, s)) for s in sessions] == expected, options


@pytest.mark.parametrize("option", ["eligible_authid", "exclude_authid", "eligible_authrole", "exclude_authrole"])
def test_malformed_authid_lists(peers: Peers, option: str) -> None:
    """The authid and authrole lists must be lists of strings; a malformed one is refused naming the option, and nobody gets the event."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "t")
    peers.send(publisher, Publish(1, {"acknowledge": True, option: [8]}, "t"))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT and option in error.args[0]  # type: ignore[index]
    assert peers.read(subscriber) == []


def test_publisher_always_identified(peers: Peers) -> None:
    """EVENT details always carry the publisher's session id, authid and authrole, whatever disclose_me says."""
    publisher, subscriber = peers.join(user="pat", authrole="editor"), peers.join()
    peers.subscribe(subscriber, "t")
    for request, options in enumerate(({"disclose_me": True}, {}, {"disclose_me": False})):
        peers.send(publisher, Publish(request + 1, options, "t"))
        [event] = _events(peers, subscriber)
        assert event.details == {"publisher": publisher.id, "publisher_authid": "pat", "publisher_authrole": "editor"}


def test_unsubscribe(peers: Peers) -> None:
    """UNSUBSCRIBE gets UNSUBSCRIBED and stops events; the last one out drops the subscription."""
    publisher, a, b = peers.join(user="p"), peers.join(), peers.join()
    sub = peers.subscribe(a, "t")
    peers.subscribe(b, "t")
    peers.send(a, [34, 5, sub])
    assert peers.read_one(a) == Unsubscribed(5)
    assert a.subscriptions == set()
    peers.send(publisher, Publish(1, {}, "t"))
    assert peers.read(a) == []
    assert len(_events(peers, b)) == 1
    assert peers.router.counts()["subscriptions"] == 1
    peers.send(b, [34, 6, sub])
    assert peers.read_one(b) == Unsubscribed(6)
    assert peers.router.counts()["subscriptions"] == 0


def test_unsubscribe_unknown(peers: Peers) -> None:
    """Unsubscribing an unknown id, or one the session does not hold, gets ERROR no_such_subscription."""
    a, b = peers.join(), peers.join()
    sub = peers.subscribe(a, "t")
    for session, subscription in ((a, 424242), (b, sub)):
        peers.send(session, [34, 8, subscription])
        error = peers.read_one(session)
        assert isinstance(error, Error)
        assert (error.request_type, error.request, error.error) == (34, 8, uris.NO_SUCH_SUBSCRIPTION)
        assert error.args == [f"subscription {subscription} not found on session {session.id}"]
    peers.send(a, [34, 9, sub])
    assert peers.read_one(a) == Unsubscribed(9)
    peers.send(a, [34, 10, sub])
    error = peers.read_one(a)
    assert isinstance(error, Error) and error.error == uris.NO_SUCH_SUBSCRIPTION


def test_prefix_subscription(peers: Peers) -> None:
    """A prefix subscription gets events on every topic starting with it; details.topic names the topic."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    sub = peers.subscribe(subscriber, "shop.", match="prefix")
    for topic in ("shop.Order", "shop.Order.line", "shopping.cart", "blog.Post"):
        peers.send(publisher, Publish(1, {}, topic, [topic]))
    events = _events(peers, subscriber)
    by = {"publisher": publisher.id, "publisher_authid": "p", "publisher_authrole": "user"}
    assert [(e.subscription, e.details, e.args) for e in events] == [
        (sub, {**by, "topic": "shop.Order"}, ["shop.Order"]),
        (sub, {**by, "topic": "shop.Order.line"}, ["shop.Order.line"]),
    ]


def test_wildcard_subscription(peers: Peers) -> None:
    """A wildcard subscription matches topics of its length equal wherever its components are not empty."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    sub = peers.subscribe(subscriber, "shop..update", match="wildcard")
    for topic in ("shop.Order.update", "shop.Cart.update", "shop.Order.delete", "shop.Order.update.x", "blog.Post.update", "shop.update"):
        peers.send(publisher, Publish(1, {}, topic))
    events = _events(peers, subscriber)
    by = {"publisher": publisher.id, "publisher_authid": "p", "publisher_authrole": "user"}
    assert [(e.subscription, e.details) for e in events] == [
        (sub, {**by, "topic": "shop.Order.update"}),
        (sub, {**by, "topic": "shop.Cart.update"}),
    ]


def test_exact_subscription_has_no_topic_detail(peers: Peers) -> None:
    """An exact subscription's EVENT does not repeat the topic."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "shop.Order")
    peers.send(publisher, Publish(1, {}, "shop.Order"))
    [event] = _events(peers, subscriber)
    assert "topic" not in event.details


def test_one_event_per_matching_subscription(peers: Peers) -> None:
    """A session matching several subscriptions gets one EVENT for each, with one publication id."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    subs = {
        peers.subscribe(subscriber, "shop.Order", request=1),
        peers.subscribe(subscriber, "shop.", match="prefix", request=2),
        peers.subscribe(subscriber, "shop.", match="wildcard", request=3),
    }
    assert len(subs) == 3
    peers.send(publisher, Publish(1, {"acknowledge": True}, "shop.Order", ["x"]))
    published = peers.read_one(publisher)
    assert isinstance(published, Published)
    events = _events(peers, subscriber)
    assert {e.subscription for e in events} == subs
    assert {e.publication for e in events} == {published.publication}
    assert all(e.args == ["x"] for e in events)


def test_subscriptions_dropped_when_session_leaves(peers: Peers) -> None:
    """A session that goes away loses its subscriptions; the others keep theirs and their ids."""
    publisher, a, b = peers.join(user="p"), peers.join(), peers.join()
    sub = peers.subscribe(a, "t")
    peers.subscribe(a, "only.a")
    peers.subscribe(b, "t")
    assert peers.router.counts()["subscriptions"] == 2
    a.connection_lost()
    assert peers.router.counts()["subscriptions"] == 1
    peers.send(publisher, Publish(1, {}, "t"))
    peers.send(publisher, Publish(2, {}, "only.a"))
    [event] = _events(peers, b)
    assert event.subscription == sub
    assert peers.router.stats.events_delivered == 1


def test_anonymous_publish_refused(peers: Peers) -> None:
    """Anonymous sessions may not publish: ERROR not_authorized with acknowledge, silence without."""
    anonymous, subscriber = peers.join(), peers.join()
    peers.subscribe(subscriber, "t")
    peers.send(anonymous, Publish(1, {}, "t"))
    assert peers.read(anonymous) == []
    peers.send(anonymous, Publish(2, {"acknowledge": True}, "t"))
    error = peers.read_one(anonymous)
    assert isinstance(error, Error)
    assert (error.request_type, error.request, error.error) == (Publish.TYPE, 2, uris.NOT_AUTHORIZED)
    assert peers.read(subscriber) == []
    assert peers.router.stats.events_published == 0


def test_publishing_to_router_uris_refused(peers: Peers) -> None:
    """Topics under wamp. belong to the router: publishing there gets ERROR invalid_uri."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "wamp.session.on_join")
    peers.send(publisher, Publish(1, {"acknowledge": True}, "wamp.session.on_join"))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_URI
    assert peers.read(subscriber) == []


def test_publish_without_subscribers(peers: Peers) -> None:
    """Publishing to a topic nobody subscribed to is acknowledged and counted, delivering nothing."""
    publisher = peers.join(user="p")
    peers.send(publisher, Publish(1, {"acknowledge": True}, "nobody.listens"))
    assert isinstance(peers.read_one(publisher), Published)
    assert (peers.router.stats.events_published, peers.router.stats.events_delivered) == (1, 0)


def test_publication_ids_differ(peers: Peers) -> None:
    """Every publication gets its own id."""
    publisher = peers.join(user="p")
    for request in range(1, 21):
        peers.send(publisher, Publish(request, {"acknowledge": True}, "t"))
    ids = {m.publication for m in peers.read(publisher)}  # type: ignore[attr-defined]
    assert len(ids) == 20


def test_encoded_once_per_serializer_per_publish(peers: Peers) -> None:
    """3 JSON and 2 msgpack subscribers: each serializer encodes the EVENT once and all its sessions share the frame."""
    json_counter, msgpack_counter = CountingSerializer(JSON), CountingSerializer(MSGPACK)
    json_codec, msgpack_codec = WireCodec(json_counter), WireCodec(msgpack_counter)
    publisher = peers.join(user="p")  # its own codec: the helper encodes what it sends
    json_subscribers = [peers.join(json_codec) for _ in range(3)]
    msgpack_subscribers = [peers.join(msgpack_codec) for _ in range(2)]
    for session in json_subscribers + msgpack_subscribers:
        peers.subscribe(session, "shop.Order")
    before = (json_counter.encoded, msgpack_counter.encoded)
    peers.send(publisher, Publish(1, {}, "shop.Order", [{"pk": 1}], {"big": "x" * 1000}))
    assert (json_counter.encoded - before[0], msgpack_counter.encoded - before[1]) == (1, 1)
    json_frames = [s.data_to_send() for s in json_subscribers]
    msgpack_frames = [s.data_to_send() for s in msgpack_subscribers]
    assert all(len(f) == 1 for f in json_frames + msgpack_frames)
    assert all(f[0] is json_frames[0][0] for f in json_frames)
    assert all(f[0] is msgpack_frames[0][0] for f in msgpack_frames)
    assert JSON.decode(json_frames[0][0]) == MSGPACK.decode(msgpack_frames[0][0])
    assert peers.router.stats.events_delivered == 5


def test_subscription_codec_counts_follow_subscribers(peers: Peers) -> None:
    """Once the last msgpack subscriber leaves, publishing no longer encodes msgpack."""
    msgpack_counter = CountingSerializer(MSGPACK)
    msgpack_codec = WireCodec(msgpack_counter)
    publisher, json_subscriber = peers.join(user="p"), peers.join()
    msgpack_subscriber = peers.join(msgpack_codec)
    sub = peers.subscribe(json_subscriber, "t")
    peers.subscribe(msgpack_subscriber, "t")
    peers.subscribe(msgpack_subscriber, "t", request=2)
    peers.send(msgpack_subscriber, [34, 3, sub])
    peers.read(msgpack_subscriber)
    before = msgpack_counter.encoded
    peers.send(publisher, Publish(1, {}, "t"))
    assert msgpack_counter.encoded == before
    assert len(_events(peers, json_subscriber)) == 1


@pytest.mark.parametrize(
    ("publisher_codec", "payload"),
    [
        (JSON_CODEC, "[16,1,{},\"t\",[100000000000000000000000000]]"),
        (MSGPACK_CODEC, MSGPACK.encode([16, 1, {}, "t", [{b"binary key": 1}]])),
        (MSGPACK_CODEC, MSGPACK.encode([16, 1, {}, "t", [float("nan")]])),
    ],
    ids=["json-int-too-big-for-msgpack", "msgpack-bytes-key", "msgpack-nan"],
)
def test_payload_another_serializer_cannot_carry(peers: Peers, publisher_codec: WireCodec, payload: str | bytes) -> None:
    """A payload some subscriber's serializer cannot carry is refused whole: nobody gets it, the publisher's session goes on."""
    publisher = peers.join(publisher_codec, user="p")
    json_subscriber, msgpack_subscriber = peers.join(JSON_CODEC), peers.join(MSGPACK_CODEC)
    peers.subscribe(json_subscriber, "t")
    peers.subscribe(msgpack_subscriber, "t")
    peers.send_raw(publisher, payload)
    assert peers.read(publisher) == []
    assert peers.read(json_subscriber) == peers.read(msgpack_subscriber) == []
    acknowledged = publisher_codec.decode(payload)
    acknowledged[2] = {"acknowledge": True}
    peers.send(publisher, acknowledged)
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert error.args is not None and error.args[0].startswith("payload cannot be delivered to every client: ")
    peers.send(publisher, Publish(2, {}, "t", ["fine"]))
    assert len(_events(peers, json_subscriber)) == len(_events(peers, msgpack_subscriber)) == 1


def test_binary_from_msgpack_is_refused_at_publish(peers: Peers) -> None:
    """Bytes published over msgpack are refused (a JSON peer or a replay could not give them back as bytes); nobody gets them."""
    publisher = peers.join(MSGPACK_CODEC, user="p")
    json_subscriber, msgpack_subscriber = peers.join(JSON_CODEC), peers.join(MSGPACK_CODEC)
    peers.subscribe(json_subscriber, "t")
    peers.subscribe(msgpack_subscriber, "t")
    peers.send(publisher, Publish(1, {"acknowledge": True}, "t", [b"\x00\xff"]))
    error = peers.read_one(publisher)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert error.args == ["payload cannot be delivered to every client: bytes at args[0]"]
    assert peers.read(json_subscriber) == peers.read(msgpack_subscriber) == []


def test_subscribe_message_round_trip_through_session(peers: Peers) -> None:
    """A Subscribe object sent through the helper is the same as its list form."""
    session = peers.join()
    peers.send(session, Subscribe(1, {"match": "prefix"}, "a."))
    assert peers.read_one(session).TYPE == 33
