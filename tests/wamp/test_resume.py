"""Sequenced publications and session resume in the sans-I/O core (no store, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from telegraphy.wamp import SessionState
from telegraphy.wamp.messages import Abort, Event, Welcome
from telegraphy.wamp.router import Publication
from telegraphy.wamp.session import Resumption

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
    missed = [("shop.Order", 11, {"epoch": "e1", "offset": 4}, [{"n": 4}], None)]
    session.complete_resume(
        Resumption("tok", [("shop.Order", "exact", {}), ("shop", "prefix", {})], {"shop.Order": True}, {}, missed)
    )
    welcome, event = peers.read(session)
    assert isinstance(welcome, Welcome)
    assert welcome.details["resumed"] is True
    assert welcome.details["resume_token"] == "tok"
    assert welcome.details["recovered"] == {"shop.Order": True}
    listed = {(s["topic"], s["match"]): s["subscription"] for s in welcome.details["subscriptions"]}
    assert set(listed) == {("shop.Order", "exact"), ("shop", "prefix")}
    assert isinstance(event, Event)
    assert event.subscription == listed[("shop.Order", "exact")]
    assert event.args == [{"n": 4}] and event.details["offset"] == 4
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
