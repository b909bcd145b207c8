"""Client channels, private channels and subscription filters: parsing, rules, and delivery through the broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wamp_peers import CountingSerializer, Peers

from telegraphy.wamp import JSON, ServerSession, WireCodec, uris
from telegraphy.wamp.audience import ANONYMOUS, AUTHENTICATED, PUBLIC, Audience, Grants
from telegraphy.wamp.channels import (
    DEFAULT_CHANNELS,
    Channel,
    ChannelPolicy,
    Procedure,
    WebTopics,
    may_receive,
    parse_channels,
    private_owner,
)
from telegraphy.wamp.router import Publication
from telegraphy.wamp.messages import Call, Error, Event, Invocation, Publish, Published, Register, Registered, Result, Subscribed, Yield

CHANNELS = [
    {"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"},
    {"topic": "staff.news", "subscribe": {"groups": ["staff"]}, "publish": {"permissions": ["news.add_item"]}},
    {"topic": "board..posts", "match": "wildcard", "subscribe": "public", "publish": None},
]


# Parsing -------------------------------------------------------------------------


def test_parse_channels_from_json_text_and_lists() -> None:
    """Declarations parse from JSON text or a list, with exact match, public subscribe and no publish by default."""
    channels = parse_channels(json.dumps(CHANNELS + [{"topic": "news"}]))
    assert channels == parse_channels(CHANNELS + [{"topic": "news"}])
    assert channels[0] == Channel("chat.", "prefix", AUTHENTICATED, AUTHENTICATED)
    assert channels[1].subscribe == Audience.parse({"groups": ["staff"]})
    assert channels[3] == Channel("news", "exact", PUBLIC, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[", "channels are not valid JSON"),
        ('{"topic": "a"}', "channels must be a JSON list"),
        ([{"topic": "a"}, "b"], "channel 1: an object with a string 'topic' is expected"),
        ([{"topic": 5}], "channel 0: an object with a string 'topic' is expected"),
        ([{"topic": "a"}, {"topic": "b", "who": 1}], "channel 1: unknown key 'who'"),
        ([{"topic": "a", "match": "regex"}], "channel 0: match must be exact, prefix or wildcard"),
        ([{"topic": "a"}, {"topic": "b"}, {"topic": "c", "publish": "staff"}], "channel 2: publish: unknown audience 'staff'"),
        ([{"topic": "a", "subscribe": {"roles": []}}], "channel 0: subscribe.roles: unknown key"),
    ],
    ids=["json", "not-list", "not-object", "topic-type", "unknown-key", "match", "publish-audience", "subscribe-key"],
)
def test_invalid_channels_name_the_index(value: Any, message: str) -> None:
    """Every malformed declaration raises ValueError naming the channel index and what is wrong."""
    with pytest.raises(ValueError) as info:
        parse_channels(value)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("channel", "topic", "covered"),
    [
        (Channel("chat.lobby"), "chat.lobby", True),
        (Channel("chat.lobby"), "chat.lobby.x", False),
        (Channel("chat.", "prefix"), "chat.lobby", True),
        (Channel("chat.", "prefix"), "chatter", False),
        (Channel("board..posts", "wildcard"), "board.7.posts", True),
        (Channel("board..posts", "wildcard"), "board.7.posts.x", False),
        (Channel("board..posts", "wildcard"), "board.7.likes", False),
    ],
)
def test_channel_covers(channel: Channel, topic: str, covered: bool) -> None:
    """Exact, prefix and wildcard channels cover topics as the WAMP match policies do."""
    assert channel.covers(topic) is covered


# Rules ------------------------------------------------------------------------------

STAFF = Grants("1", frozenset({"staff"}))
EDITOR = Grants("2", permissions=frozenset({"news.add_item"}))
USER = Grants("3")
ROOT = Grants("9", superuser=True)


def test_policy_first_declared_channel_decides() -> None:
    """The first covering channel decides subscribe and publish; publish null means nobody."""
    policy = ChannelPolicy(parse_channels(CHANNELS))
    assert policy.check(USER, "publish", "chat.lobby") is None
    assert policy.check(ANONYMOUS, "subscribe", "chat.lobby") == "not allowed to subscribe on channel 'chat.'"
    assert policy.check(STAFF, "subscribe", "staff.news") is None
    assert policy.check(USER, "subscribe", "staff.news") is not None
    assert policy.check(EDITOR, "publish", "staff.news") is None
    assert policy.check(STAFF, "publish", "staff.news") is not None
    assert policy.check(ANONYMOUS, "subscribe", "board.7.posts") is None
    assert policy.check(ROOT, "publish", "board.7.posts") == "not allowed to publish on channel 'board..posts'"


def test_policy_topics_on_no_channel() -> None:
    """A topic on no declared channel may be subscribed to (events carry audiences) but not published to."""
    policy = ChannelPolicy(parse_channels(CHANNELS))
    assert policy.check(ANONYMOUS, "subscribe", "shop.Order") is None
    assert policy.check(ROOT, "publish", "shop.Order") == "publishing to 'shop.Order' is not allowed: it is on no declared channel"


def test_default_policy() -> None:
    """Without declarations anyone subscribes anywhere and nobody publishes anywhere, superusers included."""
    policy = ChannelPolicy()
    assert policy.channels == DEFAULT_CHANNELS == ()
    assert policy.check(ANONYMOUS, "subscribe", "any.thing") is None
    assert policy.check(ANONYMOUS, "publish", "any.thing") is not None
    assert policy.check(USER, "publish", "any.thing") == "publishing to 'any.thing' is not allowed: it is on no declared channel"
    assert policy.check(ROOT, "publish", "shop.Order") is not None


def test_private_channels_belong_to_their_user() -> None:
    """user.<id> and below belong to user <id> (and superusers); pattern subscriptions are not refused, the broker filters."""
    assert private_owner("user.3.inbox") == private_owner("user.3") == "3"
    assert private_owner("users.3") is None
    policy = ChannelPolicy()
    assert policy.check(USER, "subscribe", "user.3.inbox") is None
    assert policy.check(STAFF, "subscribe", "user.3.inbox") == "'user.3.inbox' is another user's private channel"
    assert policy.check(STAFF, "publish", "user.3.inbox") is not None
    assert policy.check(ROOT, "subscribe", "user.3.inbox") is None
    assert policy.check(STAFF, "subscribe", "user.", "prefix") is None
    assert may_receive(USER, "3") and may_receive(ROOT, "3") and not may_receive(STAFF, "3")


# Through the router -------------------------------------------------------------------


@pytest.fixture
def peers() -> Peers:
    """A router with the declared CHANNELS."""
    return Peers(channels=ChannelPolicy(parse_channels(CHANNELS)))


def _error(peers: Peers, session: ServerSession) -> Error:
    message = peers.read_one(session)
    assert isinstance(message, Error), message
    return message


def _events(peers: Peers, session: ServerSession) -> list[Event]:
    messages = peers.read(session)
    assert all(isinstance(m, Event) for m in messages), messages
    return messages  # type: ignore[return-value]


def test_publishing_outside_declared_channels_is_not_authorized(peers: Peers) -> None:
    """PUBLISH to a topic on no channel, or one the user may not publish on, gets wamp.error.not_authorized; a chat publish works."""
    user = peers.join(user="3")
    peers.send(user, Publish(1, {"acknowledge": True}, "shop.Order", [1]))
    assert _error(peers, user).error == uris.NOT_AUTHORIZED
    peers.send(user, Publish(2, {"acknowledge": True}, "staff.news", [1]))
    assert _error(peers, user).error == uris.NOT_AUTHORIZED
    peers.send(user, Publish(3, {"acknowledge": True}, "chat.lobby", [1]))
    assert isinstance(peers.read_one(user), Published)
    assert peers.router.stats.requests_unauthorized == 2


def test_subscribing_to_a_channel_needs_its_audience(peers: Peers) -> None:
    """SUBSCRIBE to staff.news is refused to a plain user and allowed to staff."""
    user, staff = peers.join(user="3"), peers.join(user="1", claims={"groups": ["staff"]})
    peers.send(user, [32, 1, {}, "staff.news"])
    assert _error(peers, user).error == uris.NOT_AUTHORIZED
    peers.send(staff, [32, 1, {}, "staff.news"])
    assert isinstance(peers.read_one(staff), Subscribed)


def test_private_channel_subscribe_and_delivery() -> None:
    """Another user's SUBSCRIBE to user.3.inbox is refused; a prefix subscription to user. gets its own user's events only."""
    peers = Peers()
    owner, other, root = peers.join(user="3"), peers.join(user="4"), peers.join(user="9", claims={"superuser": True})
    peers.send(other, [32, 1, {}, "user.3.inbox"])
    assert _error(peers, other).error == uris.NOT_AUTHORIZED
    inbox = peers.subscribe(owner, "user.3.inbox")
    pattern = peers.subscribe(other, "user.", "prefix")
    assert peers.subscribe(root, "user.", "prefix") == pattern
    peers.router.publish_event({"name": "user.3.inbox", "meta": {}, "data": {"n": 3}})
    peers.router.publish_event({"name": "user.4.inbox", "meta": {}, "data": {"n": 4}})
    assert [e.args[0]["data"]["n"] for e in _events(peers, owner)] == [3]  # type: ignore[index]
    assert [(e.subscription, e.args[0]["data"]["n"]) for e in _events(peers, other)] == [(pattern, 4)]  # type: ignore[index]
    assert [e.args[0]["data"]["n"] for e in _events(peers, root)] == [3, 4]  # type: ignore[index]
    assert inbox != pattern


# Filters through the broker ---------------------------------------------------------------


def _subscribe_filtered(peers: Peers, session: ServerSession, options: dict[str, Any], request: int = 1) -> Any:
    peers.send(session, [32, request, options, "shop.Order"])
    return peers.read_one(session)


def test_sessions_with_the_same_filter_share_a_subscription() -> None:
    """Equal filters (in any key order) share one subscription id; another filter, or none, gets another."""
    peers = Peers()
    a, b = peers.join(), peers.join()
    first = _subscribe_filtered(peers, a, {"filter": {"status": "open", "priority__gte": 3}})
    second = _subscribe_filtered(peers, b, {"filter": {"priority__gte": 3, "status": "open"}})
    other = _subscribe_filtered(peers, b, {"filter": {"status": "open"}, "exclude": {"priority__lt": 2}}, 2)
    assert isinstance(first, Subscribed) and isinstance(second, Subscribed) and isinstance(other, Subscribed)
    assert first.subscription == second.subscription != other.subscription
    assert peers.subscribe(b, "shop.Order", request=3) not in (first.subscription, other.subscription)


def test_filters_select_events() -> None:
    """Each filtered subscription gets exactly the events whose data match its filter and exclude."""
    peers = Peers()
    urgent, open_not_low, everything = peers.join(), peers.join(), peers.join()
    _subscribe_filtered(peers, urgent, {"filter": {"priority__gte": 5}})
    _subscribe_filtered(peers, open_not_low, {"filter": {"status": "open"}, "exclude": {"priority__lt": 2}})
    peers.subscribe(everything, "shop.Order")
    orders = [
        {"n": 0, "status": "open", "priority": 1},
        {"n": 1, "status": "open", "priority": 5},
        {"n": 2, "status": "closed", "priority": 9},
    ]
    for data in orders:
        peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": data})
    sessions = {"urgent": urgent, "open": open_not_low, "all": everything}
    numbers = {name: [e.args[0]["data"]["n"] for e in _events(peers, s)] for name, s in sessions.items()}  # type: ignore[index]
    assert numbers == {"urgent": [1, 2], "open": [1], "all": [0, 1, 2]}


def test_invalid_filter_is_refused_naming_the_lookup() -> None:
    """A SUBSCRIBE with an invalid filter gets ERROR wamp.error.invalid_argument naming the lookup; no subscription is made."""
    peers = Peers()
    session = peers.join()
    error = _subscribe_filtered(peers, session, {"filter": {"status__in": "open"}})
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert "'in'" in error.args[0] and "status__in" in error.args[0]  # type: ignore[index]
    assert session.subscriptions == set() and peers.router.counts()["subscriptions"] == 0


def test_distinct_filters_share_one_payload_encoding() -> None:
    """200 subscriptions with different filters: one JSON payload encoding per publish, each frame with its own id."""
    counter = CountingSerializer(JSON)
    codec = WireCodec(counter)
    peers = Peers()
    sessions = [peers.join(codec) for _ in range(200)]
    answers = [_subscribe_filtered(peers, s, {"filter": {"n__gte": 0}, "exclude": {"owner": i}}) for i, s in enumerate(sessions)]
    ids = [answer.subscription for answer in answers]
    assert len(set(ids)) == 200
    before = counter.encoded
    peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": {"n": 1, "owner": 5}})
    assert counter.encoded - before == 1
    events = [_events(peers, s) for s in sessions]
    assert [len(e) for e in events] == [1] * 5 + [0] + [1] * 194
    assert [e[0].subscription for e in events if e] == ids[:5] + ids[6:]


# Procedures: who registers and calls ----------------------------------------------------

PROCEDURES = [
    {"procedure": "app.search.", "match": "prefix", "call": "public"},
    {"procedure": "chat.bot.ask", "register": {"groups": ["bots"]}},
    {"procedure": "app.admin.", "match": "prefix", "call": None},
]
BOT = Grants("5", frozenset({"bots"}))


def test_parse_procedures_beside_channels() -> None:
    """Entries with "procedure" parse as procedures, register defaulting to backends only and call to authenticated."""
    entries = parse_channels(CHANNELS + PROCEDURES)
    assert [type(e) for e in entries] == [Channel] * 3 + [Procedure] * 3
    assert entries[3] == Procedure("app.search.", "prefix", None, PUBLIC)
    assert entries[4] == Procedure("chat.bot.ask", "exact", Audience.parse({"groups": ["bots"]}), AUTHENTICATED)
    assert entries[5].call is None
    policy = ChannelPolicy(entries)
    assert len(policy.channels) == 3 and len(policy.procedures) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"topic": "a"}, {"procedure": 5}], "procedure 1: 'procedure' must be a string"),
        ([{"procedure": "p", "publish": "public"}], "procedure 0: unknown key 'publish'"),
        ([{"procedure": "p", "match": "regex"}], "procedure 0: match must be exact, prefix or wildcard"),
        ([{"procedure": "p", "call": "staff"}], "procedure 0: call: unknown audience 'staff'"),
    ],
    ids=["type", "unknown-key", "match", "call-audience"],
)
def test_invalid_procedures_name_the_index(value: Any, message: str) -> None:
    """A malformed procedure declaration raises ValueError naming its index and what is wrong."""
    with pytest.raises(ValueError) as info:
        parse_channels(value)
    assert str(info.value).startswith(message)


def test_default_procedure_policy() -> None:
    """With no declaration only backend sessions register; users call; anonymous sessions do not call."""
    policy = ChannelPolicy()
    assert policy.check_procedure(USER, "user", "register", "app.payments.charge") == (
        "only backend sessions may register 'app.payments.charge': it is on no declared procedure"
    )
    assert policy.check_procedure(ROOT, "user", "register", "app.payments.charge") is not None
    assert policy.check_procedure(Grants("svc"), "backend", "register", "app.payments.charge") is None
    assert policy.check_procedure(USER, "user", "call", "app.payments.charge") is None
    assert policy.check_procedure(ANONYMOUS, "anonymous", "call", "app.payments.charge") is not None


def test_private_procedures_belong_to_their_user() -> None:
    """user.<id>.* is registered and called by user <id> or a superuser only, backends included."""
    policy = ChannelPolicy(parse_channels(PROCEDURES + [{"procedure": "user.", "match": "prefix", "register": "public", "call": "public"}]))
    for action in ("register", "call"):
        assert policy.check_procedure(USER, "user", action, "user.3.echo") is None
        assert policy.check_procedure(ROOT, "user", action, "user.3.echo") is None
        assert policy.check_procedure(STAFF, "user", action, "user.3.echo") == "'user.3.echo' is another user's private procedure"
        assert policy.check_procedure(Grants("svc"), "backend", action, "user.3.echo") is not None
        assert policy.check_procedure(ANONYMOUS, "anonymous", action, "user.3.echo") is not None


def test_declared_procedures_decide() -> None:
    """The first declared procedure covering a name decides who registers and calls it."""
    policy = ChannelPolicy(parse_channels(PROCEDURES))
    assert policy.check_procedure(ANONYMOUS, "anonymous", "call", "app.search.products") is None
    assert policy.check_procedure(BOT, "user", "register", "chat.bot.ask") is None
    assert policy.check_procedure(USER, "user", "register", "chat.bot.ask") == (
        "not allowed to register procedure 'chat.bot.ask' (declared 'chat.bot.ask')"
    )
    assert policy.check_procedure(ANONYMOUS, "anonymous", "call", "chat.bot.ask") is not None
    assert policy.check_procedure(ROOT, "user", "call", "app.admin.reset") is not None
    assert policy.check_procedure(Grants("svc"), "backend", "call", "app.admin.reset") is None


def _backend(peers: Peers) -> ServerSession:
    return peers.join(user="payments", authrole="backend")


def test_user_cannot_squat_a_procedure() -> None:
    """User 7's REGISTER of app.payments.charge gets not_authorized; the backend registers it and user 8's CALL reaches the backend."""
    peers = Peers()
    squatter, caller, backend = peers.join(user="7"), peers.join(user="8"), _backend(peers)
    peers.send(squatter, Register(1, {}, "app.payments.charge"))
    error = _error(peers, squatter)
    assert error.error == uris.NOT_AUTHORIZED and "backend" in error.args[0]  # type: ignore[index]
    peers.send(backend, Register(1, {}, "app.payments.charge"))
    registered = peers.read_one(backend)
    assert isinstance(registered, Registered)
    peers.send(caller, Call(2, {}, "app.payments.charge", [100]))
    invocation = peers.read_one(backend)
    assert isinstance(invocation, Invocation) and invocation.args == [100]
    peers.read(squatter)  # nothing
    peers.send(backend, Yield(invocation.request, {}, ["charged"]))
    assert peers.read_one(caller) == Result(2, {}, ["charged"])


def test_private_procedure_and_anonymous_calls_through_the_router() -> None:
    """User 7 may not register user.8.*; user 8 may; an anonymous CALL on no declared procedure gets not_authorized."""
    peers = Peers()
    intruder, owner, anonymous = peers.join(user="7"), peers.join(user="8"), peers.join()
    peers.send(intruder, Register(1, {}, "user.8.inbox.read"))
    assert _error(peers, intruder).error == uris.NOT_AUTHORIZED
    peers.send(owner, Register(1, {}, "user.8.inbox.read"))
    assert isinstance(peers.read_one(owner), Registered)
    peers.send(intruder, Call(2, {}, "user.8.inbox.read"))
    assert _error(peers, intruder).error == uris.NOT_AUTHORIZED
    peers.send(anonymous, Call(3, {}, "user.8.inbox.read"))
    assert _error(peers, anonymous).error == uris.NOT_AUTHORIZED
    peers.send(anonymous, Call(4, {}, "app.search"))
    error = _error(peers, anonymous)
    assert error.error == uris.NOT_AUTHORIZED and "anonymous" in error.args[0]  # type: ignore[index]


# Web-app topics and publisher identification ------------------------------------------------

BY_WEB = {"publisher_authrole": "web"}


def test_clients_never_publish_on_web_app_topics() -> None:
    """Once the HTTP API published on shop.Order, a channel allowing client publishes there is overridden; shop.Cart stays open."""
    peers = Peers(channels=ChannelPolicy(parse_channels([{"topic": "shop.", "match": "prefix", "publish": "authenticated"}])))
    forger, subscriber = peers.join(user="7"), peers.join()
    peers.subscribe(subscriber, "shop.Order")
    peers.send(forger, Publish(1, {"acknowledge": True}, "shop.Order", [{"name": "shop.Order"}]))
    assert isinstance(peers.read_one(forger), Published)  # before the web app ever used the topic
    peers.read(subscriber)
    peers.router.publish_event({"name": "shop.Order", "meta": {"event_type": "update"}, "data": {"pk": 1, "status": "paid"}})
    [web_event] = _events(peers, subscriber)
    peers.send(forger, Publish(2, {"acknowledge": True}, "shop.Order", [{"name": "shop.Order", "data": {"status": "refunded"}}]))
    error = _error(peers, forger)
    assert error.error == uris.NOT_AUTHORIZED
    assert error.args == ["'shop.Order' carries web-app events: clients may not publish on it"]
    assert peers.read(subscriber) == []
    peers.send(forger, Publish(3, {"acknowledge": True}, "shop.Cart", [1]))
    assert isinstance(peers.read_one(forger), Published)
    assert web_event.details == BY_WEB


def test_default_refuses_the_forged_model_event() -> None:
    """With no declaration user 7's PUBLISH of a shop.Order event gets not_authorized and reaches nobody."""
    peers = Peers()
    forger, subscriber = peers.join(user="7"), peers.join()
    peers.subscribe(subscriber, "shop.Order")
    forged = {"name": "shop.Order", "meta": {"event_type": "update"}, "data": {"pk": 1, "status": "refunded"}}
    peers.send(forger, Publish(1, {"acknowledge": True}, "shop.Order", [forged]))
    assert _error(peers, forger).error == uris.NOT_AUTHORIZED
    assert peers.read(subscriber) == []


def test_every_event_names_its_publisher() -> None:
    """Client events carry publisher, publisher_authid and publisher_authrole; HTTP events only publisher_authrole "web"."""
    peers = Peers(channels=ChannelPolicy(parse_channels([{"topic": "chat.", "match": "prefix", "publish": "authenticated"}])))
    client, subscriber = peers.join(user="7", authrole="editor"), peers.join()
    peers.subscribe(subscriber, "chat.", "prefix")
    # Options cannot pass for the web app: details are the router's.
    peers.send(client, Publish(1, {"disclose_me": False, "publisher_authrole": "web"}, "chat.lobby", ["hi"]))
    peers.router.publish_event({"name": "chat.news", "meta": {}, "data": {}})
    client_event, web_event = _events(peers, subscriber)
    assert client_event.details == {"publisher": client.id, "publisher_authid": "7", "publisher_authrole": "editor", "topic": "chat.lobby"}
    assert web_event.details == {**BY_WEB, "topic": "chat.news"}


def test_web_topics_learned_from_delivered_web_events() -> None:
    """A web-app publication delivered from elsewhere (another node, the store) makes its topic the web app's here too."""
    peers = Peers(channels=ChannelPolicy(parse_channels([{"topic": "", "match": "prefix", "publish": "authenticated"}])))
    realm = peers.router.realms[peers.router.default_realm]
    stored = [{"name": "shop.Order", "meta": {"id": "e1"}, "data": {}}]
    peers.router.deliver(Publication(realm, "shop.Order", 1, stored, None, dict(BY_WEB), event=True), ("epoch", 1))
    assert peers.router.channels.web_topics.covers("shop.Order")
    user = peers.join(user="7")
    peers.send(user, Publish(1, {"acknowledge": True}, "shop.Order", [1]))
    assert _error(peers, user).error == uris.NOT_AUTHORIZED


def test_web_topics_stay_bounded_and_forget_nothing() -> None:
    """Past its limit the set folds siblings into a prefix: it stays within the limit and still covers every topic it was given."""
    topics = WebTopics(limit=3)
    added: list[str] = []
    topics.on_added = added.append
    names = ["shop.Order", "shop.Cart", "blog.Post", "shop.Invoice", "blog.Comment", "wiki.Page", "news"]
    for name in names:
        assert topics.add(name)
        assert len(topics) <= 3
    assert all(topics.covers(name) for name in names)
    assert added == names and not topics.add("shop.Order")
    assert topics.covers("shop.Anything")  # coarser, never looser
    copy = WebTopics(limit=3)
    copy.load(topics.entries())
    assert copy.entries() == topics.entries()
    exact = WebTopics()
    exact.load([{"topic": "a.b"}, {"topic": 5}, {"topic": "c.", "match": "prefix"}])
    assert exact.covers("a.b") and not exact.covers("a.c") and exact.covers("c.d") and len(exact) == 2
    one = WebTopics(limit=1)
    one.add("a")
    one.add("b")  # no siblings to fold: every topic is refused (fail closed)
    assert one.covers("anything") and one.entries() == [{"topic": "*", "match": "all"}]
    again = WebTopics()
    again.load(one.entries())
    assert again.covers("z.z")


def test_registrations_the_new_grants_refuse_are_dropped() -> None:
    """A bot that loses its group loses its registration: the next CALL gets no_such_procedure."""
    peers = Peers(channels=ChannelPolicy(parse_channels(PROCEDURES)))
    bot, caller = peers.join(user="5", claims={"groups": ["bots"]}), peers.join(user="3")
    peers.send(bot, Register(1, {}, "chat.bot.ask"))
    assert isinstance(peers.read_one(bot), Registered)
    peers.router.revoke("5", 0.0, grants=Grants("5"))
    assert bot.registrations == set() and peers.router.counts()["registrations"] == 0
    peers.send(caller, Call(1, {}, "chat.bot.ask"))
    assert _error(peers, caller).error == uris.NO_SUCH_PROCEDURE
