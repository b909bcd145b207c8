"""Authentication: anonymous, ticket (connect tokens) and WAMP-CRA, through real sessions."""

from __future__ import annotations

import time

import jwt
import pytest
from wamp_peers import REALM, SECRET, Peers, challenge_of, open_channels, wampcra_signature

from telegraphy.tokens import mint_connect_token, mint_publish_token, wampcra_key
from telegraphy.wamp import Authenticator, Router
from telegraphy.wamp import CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, ServerSession, SessionState, uris
from telegraphy.wamp.messages import Abort, Challenge, Error, Publish, Published, Welcome


@pytest.fixture
def peers() -> Peers:
    """A router allowing anonymous sessions."""
    return Peers()


def _ticket_hello(peers: Peers, **details: object) -> ServerSession:
    session = peers.attach()
    peers.hello(session, authmethods=["ticket"], **details)
    assert peers.read_one(session) == Challenge("ticket", {})
    assert session.state is SessionState.CHALLENGING
    return session


def _refused(peers: Peers, session: ServerSession, reason: str = uris.AUTHENTICATION_FAILED) -> str:
    """Assert ``session`` got ABORT ``reason`` and a policy close; return the ABORT message."""
    abort = peers.read_one(session)
    assert isinstance(abort, Abort), abort
    assert abort.reason == reason
    assert session.state is SessionState.FAILED
    assert session.close_request == (CLOSE_POLICY, reason)
    assert peers.router.sessions() == []
    message: str = abort.details["message"]
    assert SECRET not in message
    return message


def test_anonymous_allowed(peers: Peers) -> None:
    """HELLO without authmethods, or with anonymous, is welcomed as anonymous."""
    for details in ({}, {"authmethods": ["anonymous"]}, {"authmethods": ["cryptosign", "anonymous"]}):
        session = peers.attach()
        peers.hello(session, **details)
        welcome = peers.read_one(session)
        assert isinstance(welcome, Welcome) and welcome.details["authmethod"] == "anonymous"


def test_anonymous_refused() -> None:
    """With anonymous access off, a HELLO offering nothing else gets ABORT no_auth_method."""
    peers = Peers(allow_anonymous=False)
    session = peers.attach()
    peers.hello(session)
    message = _refused(peers, session, uris.NO_AUTH_METHOD)
    assert message == "no acceptable auth method: asked anonymous, offered ticket, wampcra"


def test_unknown_method_refused(peers: Peers) -> None:
    """A HELLO asking only for methods the router lacks gets ABORT no_auth_method."""
    session = peers.attach()
    peers.hello(session, authmethods=["cryptosign"])
    assert "asked cryptosign" in _refused(peers, session, uris.NO_AUTH_METHOD)


@pytest.mark.parametrize("authmethods", ["ticket", [1], {"ticket": True}])
def test_malformed_authmethods(peers: Peers, authmethods: object) -> None:
    """authmethods that is not a list of strings is a protocol violation (close 1002)."""
    session = peers.attach()
    peers.hello(session, authmethods=authmethods)
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.PROTOCOL_VIOLATION
    assert session.close_request == (CLOSE_PROTOCOL_ERROR, uris.PROTOCOL_VIOLATION)


def test_ticket_accepted(peers: Peers) -> None:
    """A valid connect token as ticket: WELCOME with authid = sub and authrole "user"."""
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, 42), {}])
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome)
    assert (welcome.details["authid"], welcome.details["authrole"], welcome.details["authmethod"]) == ("42", "user", "ticket")
    assert session.identity is not None and session.identity.claims["sub"] == "42"


def test_ticket_authrole_from_token(peers: Peers) -> None:
    """The token's authrole claim becomes the session's authrole."""
    session = _ticket_hello(peers, authid="alice")
    peers.send(session, [5, mint_connect_token(SECRET, "alice", authrole="staff"), {}])
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome)
    assert (welcome.details["authid"], welcome.details["authrole"]) == ("alice", "staff")


def test_ticket_preferred_in_client_order(peers: Peers) -> None:
    """The first method of the client's list that the router offers is used."""
    session = peers.attach()
    peers.hello(session, authmethods=["ticket", "anonymous"])
    assert peers.read_one(session) == Challenge("ticket", {})


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: mint_connect_token(SECRET, 1, now=time.time() - 3600, ttl=60), "ticket refused: token expired"),
        (lambda: mint_connect_token("another-secret-" + "y" * 32, 1), "ticket refused: token signature is invalid"),
        (lambda: mint_publish_token(SECRET), "ticket refused: token is not a connect token"),
        (lambda: "not.a.token", "ticket refused: token is malformed"),
        (lambda: "", "ticket refused: token missing"),
    ],
    ids=["expired", "forged", "publish-token", "garbage", "empty"],
)
def test_ticket_refused(peers: Peers, token: object, reason: str) -> None:
    """Expired, forged, wrong-purpose or malformed tickets get ABORT authentication_failed with a short reason."""
    session = _ticket_hello(peers)
    ticket = token()  # type: ignore[operator]
    peers.send(session, [5, ticket, {}])
    message = _refused(peers, session)
    assert message == reason
    assert not ticket or ticket not in message


def test_ticket_without_iat_refused(peers: Peers) -> None:
    """A connect token without `iat` (which no logout could cover) gets ABORT naming the missing claim."""
    session = _ticket_hello(peers)
    claims = {"aud": "telegraphy:connect", "sub": "7", "exp": int(time.time()) + 60}
    peers.send(session, [5, jwt.encode(claims, SECRET, algorithm="HS256"), {}])
    assert _refused(peers, session) == "ticket refused: token has no 'iat' claim"


def test_ticket_living_too_long_refused(peers: Peers) -> None:
    """A connect token whose exp - iat exceeds the maximum (3600 s by default) is refused, however valid otherwise."""
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, 7, ttl=10 * 365 * 86400), {}])
    assert _refused(peers, session) == "ticket refused: token lives 315360000 s, more than the 3600 s allowed"
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, 7, ttl=3600), {}])
    assert isinstance(peers.read_one(session), Welcome)


def test_ticket_lifetime_maximum_is_configurable() -> None:
    """Authenticator(max_token_ttl=...) sets the longest connect token accepted."""
    peers = Peers()
    peers.router = Router(Authenticator(SECRET, max_token_ttl=60), (REALM,))
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, 7, ttl=61), {}])
    assert _refused(peers, session) == "ticket refused: token lives 61 s, more than the 60 s allowed"


def test_ticket_for_another_authid_refused(peers: Peers) -> None:
    """A ticket whose sub differs from the HELLO's authid is refused."""
    session = _ticket_hello(peers, authid="alice")
    peers.send(session, [5, mint_connect_token(SECRET, "mallory"), {}])
    assert _refused(peers, session) == "ticket is for another authid than 'alice'"


def test_anonymous_ticket_cannot_publish(peers: Peers) -> None:
    """A connect token naming no user makes an anonymous session: it may not publish."""
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, None), {}])
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome) and welcome.details["authid"] == "anonymous"
    peers.send(session, Publish(1, {"acknowledge": True}, "shop.Order"))
    error = peers.read_one(session)
    assert isinstance(error, Error) and error.error == uris.NOT_AUTHORIZED


def test_anonymous_ticket_refused_without_anonymous_access() -> None:
    """With anonymous access off, a connect token naming no user is refused."""
    peers = Peers(allow_anonymous=False)
    session = _ticket_hello(peers)
    peers.send(session, [5, mint_connect_token(SECRET, None), {}])
    _refused(peers, session, uris.NOT_AUTHORIZED)


def test_ticket_user_may_publish_on_a_declared_channel() -> None:
    """A ticket-authenticated user may publish where a declared channel allows it."""
    peers = Peers(channels=open_channels())
    session = peers.join(user="7")
    peers.send(session, Publish(1, {"acknowledge": True}, "shop.Order"))
    assert isinstance(peers.read_one(session), Published)


def test_web_authrole_is_reserved(peers: Peers) -> None:
    """A ticket naming authrole "web" (the HTTP API's marking) is refused with ABORT not_authorized."""
    session = peers.attach()
    peers.hello(session, authmethods=["ticket"])
    peers.read_one(session)
    peers.send(session, [5, mint_connect_token(SECRET, "7", authrole="web"), {}])
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.NOT_AUTHORIZED
    assert "reserved" in abort.details["message"]


def test_wampcra_accepted(peers: Peers) -> None:
    """WAMP-CRA: the client signs the challenge with wampcra_key(secret, authid) and is welcomed."""
    session = peers.attach()
    peers.hello(session, authmethods=["wampcra"], authid="carol")
    challenge = peers.read_one(session)
    assert isinstance(challenge, Challenge) and challenge.method == "wampcra"
    decoded = challenge_of(challenge)
    assert decoded["authid"] == "carol" and decoded["authmethod"] == "wampcra"
    assert decoded["session"] == session.id
    signature = wampcra_signature(wampcra_key(SECRET, "carol"), challenge.extra["challenge"])
    peers.send(session, [5, signature, {}])
    welcome = peers.read_one(session)
    assert isinstance(welcome, Welcome)
    assert welcome.session == decoded["session"]
    assert (welcome.details["authid"], welcome.details["authrole"], welcome.details["authmethod"]) == ("carol", "user", "wampcra")


def test_wampcra_challenges_differ(peers: Peers) -> None:
    """Every WAMP-CRA challenge carries a fresh nonce."""
    nonces = set()
    for _ in range(5):
        session = peers.attach()
        peers.hello(session, authmethods=["wampcra"], authid="carol")
        nonces.add(challenge_of(peers.read_one(session))["nonce"])
    assert len(nonces) == 5


@pytest.mark.parametrize(
    "key",
    [wampcra_key("another-secret-" + "y" * 32, "carol"), wampcra_key(SECRET, "dave")],
    ids=["other-secret", "other-authid"],
)
def test_wampcra_wrong_key_refused(peers: Peers, key: str) -> None:
    """A signature made with the wrong key gets ABORT authentication_failed."""
    session = peers.attach()
    peers.hello(session, authmethods=["wampcra"], authid="carol")
    challenge = peers.read_one(session)
    assert isinstance(challenge, Challenge)
    peers.send(session, [5, wampcra_signature(key, challenge.extra["challenge"]), {}])
    assert _refused(peers, session) == "wampcra signature is invalid"


def test_wampcra_replayed_signature_refused(peers: Peers) -> None:
    """A signature for an earlier challenge does not answer a new one."""
    first = peers.attach()
    peers.hello(first, authmethods=["wampcra"], authid="carol")
    old = peers.read_one(first)
    assert isinstance(old, Challenge)
    signature = wampcra_signature(wampcra_key(SECRET, "carol"), old.extra["challenge"])
    session = peers.attach()
    peers.hello(session, authmethods=["wampcra"], authid="carol")
    peers.read(session)
    peers.send(session, [5, signature, {}])
    _refused(peers, session)


def test_wampcra_without_authid_refused(peers: Peers) -> None:
    """WAMP-CRA needs an authid in HELLO."""
    session = peers.attach()
    peers.hello(session, authmethods=["wampcra"])
    assert _refused(peers, session) == "wampcra needs an authid in HELLO.Details"


def test_abort_while_challenged(peers: Peers) -> None:
    """A client may ABORT instead of answering the challenge, then start over with HELLO."""
    session = _ticket_hello(peers)
    peers.send(session, [3, {}, "wamp.error.canceled"])
    assert peers.read(session) == []
    assert session.state is SessionState.CLOSED
    peers.hello(session)
    assert isinstance(peers.read_one(session), Welcome)


def test_other_message_while_challenged_is_a_violation(peers: Peers) -> None:
    """Only AUTHENTICATE (or ABORT) may answer a CHALLENGE."""
    session = _ticket_hello(peers)
    peers.send(session, [32, 1, {}, "t"])
    abort = peers.read_one(session)
    assert abort == Abort({"message": "unexpected SUBSCRIBE while waiting for AUTHENTICATE"}, uris.PROTOCOL_VIOLATION)
