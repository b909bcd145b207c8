"""Sequenced publications and session resume in the sans-I/O core (no store, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from telegraphy.wamp import SessionState
from telegraphy.wamp.messages import Abort, Event, Publish, Welcome
from telegraphy.wamp.router import Publication
from telegraphy.wamp.session import Missed, Resumption

from wamp_peers import Peers, open_channels


class Hooks:
    """Records what the router hands to its persistence hooks."""

    def __init__(self, peers: Peers) -> None:
        self.publications: list[Publication] = []
        self.resumes: list[tuple[Any, str, dict[str, tuple[str, int]]]] = []
        self.changes: list[tuple[Any, SessionState]] = []
        router = peers.router
        router.sequencer = self.publications.append
        router.on_resume = lambda session, token, offsets: self.resumes.append((session, token, offsets))
        router.on_session_change = lambda session: self.changes.append((session, session.state))


@pytest.fixture
def peers() -> Peers:
    return Peers(channels=open_channels())


@pytest.fixture
def hooks(peers: Peers) -> Hooks:
    return Hooks(peers)


def test_sequencer_holds_events_until_delivered_with_a_position(peers: Peers, hooks: Hooks) -> None:
    """With a sequencer, nothing is delivered until deliver(); then details carry epoch and offset."""
    subscriber = peers.join()
    subscription = peers.subscribe(subscriber, "shop.Order")
    event_id = peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": {"pk": 1}})
    assert peers.read(subscriber) == []
    [publication] = hooks.publications
    peers.router.deliver(publication, ("e1", 42))
    [event] = peers.read(subscriber)
    assert isinstance(event, Event) and event.subscription == subscription
    assert event.details == {"publisher_authrole": "web", "epoch": "e1", "offset": 42}
    assert event.args is not None
    assert event.args[0]["meta"] == {"id": event_id, "epoch": "e1", "offset": 42}


def test_client_payloads_are_not_stamped(peers: Peers, hooks: Hooks) -> None:
    """A WAMP client's own payload keeps its shape; only EVENT.Details get the position."""
    subscriber = peers.join()
    peers.subscribe(subscriber, "chat.lobby")
    publisher = peers.join(user="7")
    peers.send(publisher, [16, 1, {}, "chat.lobby", [{"meta": {"x": 1}}]])
    peers.router.deliver(hooks.publications[0], ("e", 1))
    [event] = peers.read(subscriber)
    assert isinstance(event, Event)
    assert event.args == [{"meta": {"x": 1}}]
    assert event.details == {"publisher": publisher.id, "publisher_authid": "7", "publisher_authrole": "user", "epoch": "e", "offset": 1}


def test_welcome_carries_a_resume_token_when_resume_is_on(peers: Peers, hooks: Hooks) -> None:
    """Every WELCOME has a resume_token once the router can resume sessions; each one differs."""
    peers.router.on_resume = lambda *args: None
    tokens = set()
    for _ in range(3):
        session = peers.attach()
        peers.hello(session)
        welcome = peers.read_one(session)
        assert isinstance(welcome, Welcome)
        tokens.add(welcome.details["resume_token"])
        assert session.resume_token == welcome.details["resume_token"]
    assert len(tokens) == 3


def test_no_resume_token_without_the_hook() -> None:
    """Without persistence, WELCOME offers no resume token."""
    peers = Peers()
    session = peers.attach()
    peers.hello(session)
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome) and "resume_token" not in welcome.details


def test_subscription_changes_are_reported(peers: Peers, hooks: Hooks) -> None:
    """Welcome, subscribe, unsubscribe and leaving are each reported to on_session_change."""
    session = peers.join()
    subscription = peers.subscribe(session, "a.b")
    peers.send(session, [34, 2, subscription])
    peers.read(session)
    session.connection_lost()
    states = [state for _, state in hooks.changes]
    assert states == [SessionState.ESTABLISHED] * 3 + [SessionState.FAILED]


def test_resume_waits_for_the_router_then_restores_and_replays(peers: Peers, hooks: Hooks) -> None:
    """A resuming HELLO gets no WELCOME until complete_resume(); then subscriptions and missed events follow."""
    session = peers.attach()
    peers.hello(session, resume_token="tok", resume_offsets={"shop.Order": ["e1", 3]})
    assert peers.read(session) == []
    assert session.state is SessionState.RESUMING
    [(resuming, token, offsets)] = hooks.resumes
    assert resuming is session and token == "tok" and offsets == {"shop.Order": ("e1", 3)}
    missed = [Missed("shop.Order", 11, {"epoch": "e1", "offset": 4}, [{"n": 4}], None)]
    session.complete_resume(
        Resumption("tok", [("shop.Order", "exact", {}), ("shop", "prefix", {})], {"shop.Order": True}, {}, missed)
    )
    welcome, event, by_prefix = peers.read(session)
    assert isinstance(welcome, Welcome)
    assert welcome.details["resumed"] is True
    assert welcome.details["resume_token"] == "tok"
    assert welcome.details["recovered"] == {"shop.Order": True}
    listed = {(s["topic"], s["match"]): s["subscription"] for s in welcome.details["subscriptions"]}
    assert set(listed) == {("shop.Order", "exact"), ("shop", "prefix")}
    assert isinstance(event, Event)
    assert event.subscription == listed[("shop.Order", "exact")]
    assert event.args == [{"n": 4}] and event.details["offset"] == 4
    # As live delivery would: the prefix subscription matching the topic gets its EVENT too.
    assert isinstance(by_prefix, Event) and by_prefix.subscription == listed[("shop", "prefix")]
    assert by_prefix.args == [{"n": 4}] and by_prefix.details["topic"] == "shop.Order"
    # Live events reach the restored subscription afterwards.
    peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": {}})
    peers.router.deliver(hooks.publications[-1], ("e1", 5))
    received = [m for m in peers.read(session) if isinstance(m, Event)]
    assert {m.subscription for m in received} == set(listed.values())


def test_unknown_token_gets_a_fresh_session(peers: Peers, hooks: Hooks) -> None:
    """complete_resume(None) welcomes a fresh session with resumed false and the reason."""
    session = peers.attach()
    peers.hello(session, resume_token="stale")
    session.complete_resume(None)
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome)
    assert welcome.details["resumed"] is False
    assert "resume_error" in welcome.details
    assert welcome.details["resume_token"] != "stale"


def test_resume_after_the_connection_went_is_ignored(peers: Peers, hooks: Hooks) -> None:
    """A resume completed after the connection closed sends nothing and subscribes nothing."""
    session = peers.attach()
    peers.hello(session, resume_token="tok")
    session.connection_lost()
    session.complete_resume(Resumption("tok", [("a.b", "exact", {})]))
    assert peers.read(session) == []
    assert session.subscriptions == set()


@pytest.mark.parametrize(
    "details",
    [
        {"resume_token": 5},
        {"resume_token": "t", "resume_offsets": []},
        {"resume_token": "t", "resume_offsets": {"a": ["e"]}},
        {"resume_token": "t", "resume_offsets": {"a": [1, 2]}},
        {"resume_token": "t", "resume_offsets": {"a": ["e", -1]}},
    ],
)
def test_malformed_resume_details_abort(peers: Peers, hooks: Hooks, details: dict[str, Any]) -> None:
    """Malformed resume_token or resume_offsets abort the session as a protocol violation."""
    session = peers.attach()
    peers.hello(session, **details)
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == "wamp.error.protocol_violation"
    assert hooks.resumes == []


def test_messages_while_resuming_are_a_protocol_violation(peers: Peers, hooks: Hooks) -> None:
    """A client must wait for WELCOME: a SUBSCRIBE while resuming aborts."""
    session = peers.attach()
    peers.hello(session, resume_token="tok")
    peers.send(session, [32, 1, {}, "a.b"])
    abort = peers.read_one(session)
    assert isinstance(abort, Abort)
    assert session.close_request is not None


# Replay delivers exactly what live delivery would (issue 11, findings 5 and 24) ----


def _subscribe_all(peers: Peers, session: Any, specs: list[dict[str, Any]]) -> None:
    for request, options in enumerate(specs, 1):
        options = dict(options)
        topic = options.pop("topic")
        peers.send(session, [32, request, options, topic])
        assert peers.read_one(session).TYPE == 33


def _stored(publication: Publication, offset: int) -> Missed:
    """What persistence replays for a publication delivered at ("e1", offset)."""
    details = {**publication.details, "epoch": "e1", "offset": offset}
    return Missed(
        publication.topic, publication.id, details, publication.args, publication.kwargs,
        publication.exclude, publication.eligible, publication.authlists,
    )


SPECS: list[dict[str, Any]] = [
    {"topic": "shop.Order"},
    {"topic": "shop.Order", "filter": {"n__gte": 1}},
    {"topic": "shop.Order", "filter": {"n__gte": 2}},
    {"topic": "shop.", "match": "prefix"},
    {"topic": "shop..", "match": "wildcard"},
    {"topic": "shop.Invoice"},
]


def test_replay_equals_live_delivery_for_several_subscriptions_on_one_topic(peers: Peers, hooks: Hooks) -> None:
    """A resumed session with exact, filtered, prefix and wildcard subscriptions gets exactly the EVENTs, in order, a live session got."""
    live = peers.join(user="u")
    _subscribe_all(peers, live, SPECS)
    for offset, n in enumerate([0, 1, 2, 3], 1):
        peers.router.publish_event({"name": "shop.Order", "meta": {}, "data": {"n": n}})
        peers.router.deliver(hooks.publications[-1], ("e1", offset))
    expected = peers.read(live)
    assert len(expected) == 4 + 3 + 2 + 2 + 2
    missed = [_stored(p, offset) for offset, p in enumerate(hooks.publications, 1)]
    resumed = peers.attach()
    peers.hello(resumed, resume_token="tok")
    subscriptions = [(s["topic"], s.get("match", "exact"), {k: v for k, v in s.items() if k == "filter"}) for s in SPECS]
    resumed.complete_resume(Resumption("tok", subscriptions, {"shop.Order": True}, {}, missed))
    welcome, *replayed = peers.read(resumed)
    assert isinstance(welcome, Welcome) and welcome.details["resumed"] is True
    # Subscriptions are router-wide: the resumed session holds the very ids the live one does.
    assert replayed == expected


def _replayed(peers: Peers, hooks: Hooks, options: dict[str, Any], former: int | None) -> list[Any]:
    """Publish one client event with ``options`` while the subscriber is away; return what its resume replays."""
    publisher = peers.join(user="p")
    peers.send(publisher, Publish(1, options, "chat.room", ["whisper"]))
    [publication] = hooks.publications[-1:]
    resumed = peers.attach()
    peers.hello(resumed, resume_token="tok")
    missed = [_stored(publication, 1)]
    resumed.complete_resume(Resumption("tok", [("chat.room", "exact", {})], {"chat.room": True}, {}, missed, session_id=former))
    welcome, *events = peers.read(resumed)
    assert isinstance(welcome, Welcome)
    return events


def test_replay_applies_eligible_to_the_former_session_id(peers: Peers, hooks: Hooks) -> None:
    """A whisper eligible to another session is never replayed to a resuming one; one eligible to the session's former id is."""
    assert _replayed(peers, hooks, {"eligible": [8]}, former=7) == []
    [event] = _replayed(peers, hooks, {"eligible": [7]}, former=7)
    assert isinstance(event, Event) and event.args == ["whisper"]


def test_replay_applies_exclude_to_the_former_session_id(peers: Peers, hooks: Hooks) -> None:
    """An event excluding the session's former id is not replayed to it; one excluding someone else is."""
    assert _replayed(peers, hooks, {"exclude": [7]}, former=7) == []
    assert len(_replayed(peers, hooks, {"exclude": [8]}, former=7)) == 1


def test_replay_with_no_former_id_withholds_listed_events(peers: Peers, hooks: Hooks) -> None:
    """When the former session id is unknown, an event with an eligible or exclude list is not replayed (fail closed)."""
    assert _replayed(peers, hooks, {"eligible": [7]}, former=None) == []
    assert _replayed(peers, hooks, {"exclude": [8]}, former=None) == []
    assert len(_replayed(peers, hooks, {}, former=None)) == 1


def test_replay_applies_authid_and_authrole_lists(peers: Peers, hooks: Hooks) -> None:
    """Lists by authid and authrole hold on replay: the resumed session (anonymous here) gets only what they let it have."""
    assert _replayed(peers, hooks, {"eligible_authid": ["8"]}, former=7) == []
    assert _replayed(peers, hooks, {"exclude_authrole": ["anonymous"]}, former=7) == []
    assert len(_replayed(peers, hooks, {"eligible_authid": ["anonymous"]}, former=7)) == 1
