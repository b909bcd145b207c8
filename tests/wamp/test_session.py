"""Session state machine: HELLO/WELCOME, ABORT, GOODBYE both ways, reuse after close."""

from __future__ import annotations

import pytest
from wamp_peers import JSON_CODEC, MSGPACK_CODEC, REALM, Peers

from telegraphy.wamp import CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, SessionState, WireCodec, uris
from telegraphy.wamp.auth import AUTH_PROVIDER
from telegraphy.wamp.messages import MAX_ID, Abort, Event, Goodbye, Subscribed, Welcome


@pytest.fixture
def peers() -> Peers:
    """A router with one realm, anonymous access allowed."""
    return Peers()


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"])
def test_hello_gets_welcome(peers: Peers, codec: WireCodec) -> None:
    """An anonymous HELLO is answered with WELCOME naming realm, identity and router roles."""
    session = peers.attach(codec)
    assert session.state is SessionState.ESTABLISHING
    peers.hello(session)
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome)
    assert 1 <= welcome.session <= MAX_ID
    assert welcome.details["realm"] == REALM
    assert welcome.details["authid"] == "anonymous"
    assert welcome.details["authrole"] == "anonymous"
    assert welcome.details["authmethod"] == "anonymous"
    assert welcome.details["authprovider"] == AUTH_PROVIDER
    assert set(welcome.details["roles"]) == {"broker", "dealer"}
    assert welcome.details["roles"]["broker"]["features"]["publisher_exclusion"] is True
    assert session.state is SessionState.ESTABLISHED
    assert session.id == welcome.session
    assert session.close_request is None
    assert peers.router.sessions() == [session]


def test_session_ids_differ(peers: Peers) -> None:
    """Each session gets its own id."""
    ids = {peers.join().id for _ in range(20)}
    assert len(ids) == 20


def test_unknown_realm_aborts(peers: Peers) -> None:
    """HELLO for a realm the router does not serve gets ABORT no_such_realm and a policy close."""
    session = peers.attach()
    peers.hello(session, realm="other.realm")
    abort = peers.read_one(session)
    assert isinstance(abort, Abort)
    assert abort.reason == uris.NO_SUCH_REALM
    assert "other.realm" in abort.details["message"]
    assert session.state is SessionState.FAILED
    assert session.close_request == (CLOSE_POLICY, uris.NO_SUCH_REALM)
    assert peers.router.sessions() == []


@pytest.mark.parametrize(
    ("message", "name"),
    [([32, 1, {}, "t"], "SUBSCRIBE"), ([16, 1, {}, "t"], "PUBLISH"), ([6, {}, uris.CLOSE_NORMAL], "GOODBYE"), ([5, "sig", {}], "AUTHENTICATE")],
)
def test_messages_before_hello_abort(peers: Peers, message: list[object], name: str) -> None:
    """Anything but HELLO first is a protocol violation: ABORT, then close 1002."""
    session = peers.attach()
    peers.send(session, message)
    abort = peers.read_one(session)
    assert abort == Abort({"message": f"unexpected {name} before HELLO"}, uris.PROTOCOL_VIOLATION)
    assert session.state is SessionState.FAILED
    assert session.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)


def test_messages_after_abort_are_ignored(peers: Peers) -> None:
    """After ABORT the session is dead: further messages, even HELLO, get no answer."""
    session = peers.attach()
    peers.send(session, [32, 1, {}, "t"])
    assert isinstance(peers.read_one(session), Abort)
    received = peers.router.stats.messages_received
    peers.hello(session)
    peers.send(session, [32, 2, {}, "t"])
    assert peers.read(session) == []
    assert session.state is SessionState.FAILED
    assert peers.router.stats.messages_received == received


def test_client_goodbye(peers: Peers) -> None:
    """A client GOODBYE is answered with GOODBYE goodbye_and_out; the session is closed but the transport stays."""
    session = peers.join()
    peers.subscribe(session, "chat.lobby")
    peers.send(session, [6, {"message": "bye"}, uris.CLOSE_NORMAL])
    assert peers.read_one(session) == Goodbye({}, uris.GOODBYE_AND_OUT)
    assert session.state is SessionState.CLOSED
    assert session.close_request is None
    assert session.subscriptions == set()
    assert peers.router.counts() == {"sessions": 0, "subscriptions": 0, "registrations": 0}


def test_new_hello_after_goodbye(peers: Peers) -> None:
    """A closed session accepts a new HELLO on the same transport and gets a new session id."""
    session = peers.join()
    first = session.id
    peers.send(session, [6, {}, uris.CLOSE_NORMAL])
    peers.read(session)
    peers.hello(session)
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome) and welcome.session != first
    assert session.state is SessionState.ESTABLISHED
    assert peers.subscribe(session, "chat.lobby") > 0


def test_messages_after_goodbye_before_hello_abort(peers: Peers) -> None:
    """After GOODBYE, anything but a new HELLO is a protocol violation."""
    session = peers.join()
    peers.send(session, [6, {}, uris.CLOSE_NORMAL])
    peers.read(session)
    peers.send(session, [32, 1, {}, "t"])
    assert peers.read_one(session) == Abort({"message": "unexpected SUBSCRIBE before HELLO"}, uris.PROTOCOL_VIOLATION)
    assert session.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)


def test_router_shutdown_says_goodbye(peers: Peers) -> None:
    """Router shutdown sends GOODBYE system_shutdown; the client's GOODBYE then requests close 1000."""
    session = peers.join()
    other = peers.join(MSGPACK_CODEC)
    peers.subscribe(session, "chat.lobby")
    peers.router.shutdown()
    for s in (session, other):
        goodbye = peers.read_one(s)
        assert isinstance(goodbye, Goodbye) and goodbye.reason == uris.SYSTEM_SHUTDOWN
        assert s.state is SessionState.SHUTTING_DOWN
        assert s.close_request is None
    assert peers.router.counts()["subscriptions"] == 0
    # WAMP §5.3: while waiting for the peer's GOODBYE everything else is ignored.
    peers.send(session, [32, 2, {}, "t"])
    assert peers.read(session) == []
    peers.send(session, [6, {}, uris.GOODBYE_AND_OUT])
    assert peers.read(session) == []
    assert session.state is SessionState.CLOSED
    assert session.close_request == (CLOSE_NORMAL, uris.GOODBYE_AND_OUT)


def test_shutdown_before_hello_aborts(peers: Peers) -> None:
    """A session being opened when the router shuts down gets ABORT and a normal close."""
    session = peers.attach()
    session.shutdown()
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.SYSTEM_SHUTDOWN
    assert session.close_request == (CLOSE_NORMAL, uris.SYSTEM_SHUTDOWN)


def test_second_hello_is_a_violation(peers: Peers) -> None:
    """HELLO in an established session is a protocol violation."""
    session = peers.join()
    peers.hello(session)
    abort = peers.read_one(session)
    assert abort == Abort({"message": "unexpected HELLO from a client in an established session"}, uris.PROTOCOL_VIOLATION)
    assert peers.router.sessions() == []


@pytest.mark.parametrize(
    ("message", "name"),
    [([2, 1, {}], "WELCOME"), ([36, 1, 2, {}], "EVENT"), ([50, 1, {}], "RESULT"), ([4, "ticket", {}], "CHALLENGE")],
)
def test_router_messages_from_a_client_are_violations(peers: Peers, message: list[object], name: str) -> None:
    """Messages only a router sends are refused from a client."""
    session = peers.join()
    peers.send(session, message)
    abort = peers.read_one(session)
    assert abort == Abort({"message": f"unexpected {name} from a client in an established session"}, uris.PROTOCOL_VIOLATION)


def test_connection_lost_forgets_the_session(peers: Peers) -> None:
    """A lost connection drops the session, its subscriptions and its queued output."""
    session = peers.join()
    other = peers.join()
    peers.subscribe(session, "chat.lobby")
    peers.subscribe(other, "chat.lobby")
    peers.router.publish_event({"name": "chat.lobby", "meta": {}, "data": {}})
    session.connection_lost()
    assert session.data_to_send() == []
    assert session.state is SessionState.FAILED
    assert peers.router.sessions() == [other]
    assert peers.router.counts()["subscriptions"] == 1
    assert isinstance(peers.read_one(other), Event)


def test_output_is_collected_per_session(peers: Peers) -> None:
    """Queued frames mark a session dirty once; on_output fires when the dirty list stops being empty."""
    calls: list[None] = []
    peers.router.on_output = lambda: calls.append(None)
    a = peers.attach()
    b = peers.attach()
    peers.hello(a)
    peers.hello(b)
    peers.send(a, [32, 1, {}, "t"])
    assert len(calls) == 1
    assert peers.router.take_dirty() == [a, b]
    assert peers.router.take_dirty() == []
    assert [type(m) for m in peers.read(a)] == [Welcome, Subscribed]
    assert a.pending_frames == 0
    peers.send(a, [32, 2, {}, "u"])
    assert len(calls) == 2
