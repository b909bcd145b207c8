"""Live revocation in the sans-I/O core: new grants at once, logout ends sessions, older tickets follow the revocation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from wamp_peers import Peers

from telegraphy.tokens import mint_connect_token
from telegraphy.wamp import CLOSE_NORMAL, ServerSession, SessionState, uris
from telegraphy.wamp.audience import Grants
from telegraphy.wamp.auth import Identity
from telegraphy.wamp.channels import ChannelPolicy, parse_channels
from telegraphy.wamp.errors import AuthenticationFailed
from telegraphy.wamp.messages import Abort, Event, Goodbye, Welcome
from telegraphy.wamp.revocation import Revocations, parse_grants

STAFF_ONLY = {"groups": ["staff"]}


def _publish(peers: Peers, audience: Any, n: int, topic: str = "shop.Order") -> None:
    peers.router.publish_event({"name": topic, "meta": {"audience": audience}, "data": {"n": n}})


def _numbers(peers: Peers, session: ServerSession) -> list[int]:
    return [m.args[0]["data"]["n"] for m in peers.read(session) if isinstance(m, Event)]  # type: ignore[index]


@pytest.fixture
def peers() -> Peers:
    """A router whose staff.news channel only staff may subscribe to."""
    return Peers(channels=ChannelPolicy(parse_channels([{"topic": "staff.news", "subscribe": STAFF_ONLY}])))


def test_parse_grants() -> None:
    """The /revoke grants object becomes Grants for the user; every key is optional; wrong types name the key."""
    assert parse_grants("7", {"groups": ["staff", 3], "perms": ["a.b"], "superuser": True}) == Grants(
        "7", frozenset({"staff", "3"}), frozenset({"a.b"}), True
    )
    assert parse_grants("7", {}) == Grants("7")
    wrong = [
        ([], "grants"),
        ({"groups": "staff"}, "grants.groups"),
        ({"perms": [1]}, "grants.perms"),
        ({"superuser": 1}, "grants.superuser"),
        ({"roles": []}, "grants.roles"),
    ]
    for value, key in wrong:
        with pytest.raises(ValueError) as info:
            parse_grants("7", value)
        assert str(info.value).startswith(key + ":")


def test_new_grants_judge_the_next_event(peers: Peers) -> None:
    """After revoke() with grants without staff, the next staff-only event is withheld; other users are untouched."""
    alice, bob = peers.join(user="1", claims=STAFF_ONLY), peers.join(user="2", claims=STAFF_ONLY)
    for session in (alice, bob):
        peers.subscribe(session, "shop.Order")
    _publish(peers, STAFF_ONLY, 1)
    assert peers.router.revoke("1", time.time(), grants=Grants("1")) == 1
    _publish(peers, STAFF_ONLY, 2)
    _publish(peers, "authenticated", 3)
    assert _numbers(peers, alice) == [1, 3]
    assert _numbers(peers, bob) == [1, 2, 3]
    assert alice.grants == Grants("1") and alice.state is SessionState.ESTABLISHED
    assert peers.router.stats.revocations == 1


def test_new_grants_drop_exact_subscriptions_to_channels_no_longer_allowed(peers: Peers) -> None:
    """An exact staff.news subscription is dropped when staff is revoked; other subscriptions stay; the change is reported."""
    changes: list[ServerSession] = []
    peers.router.on_session_change = changes.append
    alice = peers.join(user="1", claims=STAFF_ONLY)
    news = peers.subscribe(alice, "staff.news")
    orders = peers.subscribe(alice, "shop.Order", request=2)
    staff_prefix = peers.subscribe(alice, "staff.", "prefix", request=3)
    changes.clear()
    peers.router.revoke("1", time.time(), grants=Grants("1"))
    assert alice.subscriptions == {orders, staff_prefix}
    assert peers.router.realms["telegraphy"].broker.get(news) is None
    assert changes == [alice]
    assert peers.read(alice) == []  # silently: no UNSUBSCRIBED a client would not expect


def test_logout_ends_every_session_of_the_user(peers: Peers) -> None:
    """revoke(logout=True): each of the user's sessions gets GOODBYE wamp.close.logout, is CLOSED and asks for close 1000."""
    phone, laptop, other = peers.join(user="1"), peers.join(user="1"), peers.join(user="2")
    anonymous = peers.join()
    assert peers.router.revoke("1", time.time(), logout=True) == 2
    for session in (phone, laptop):
        [goodbye] = peers.read(session)
        assert isinstance(goodbye, Goodbye) and goodbye.reason == uris.LOGOUT
        assert session.state is SessionState.CLOSED and session.close_request == (CLOSE_NORMAL, uris.LOGOUT)
    assert other.state is anonymous.state is SessionState.ESTABLISHED
    assert peers.router.counts()["sessions"] == 2
    assert peers.router.revoke("anonymous", time.time(), logout=True) == 0


def test_tickets_issued_before_a_logout_are_refused(peers: Peers) -> None:
    """After a logout, a ticket issued earlier is refused (ABORT); one issued afterwards joins."""
    peers.router.revoke("1", time.time(), logout=True)
    session = peers.attach()
    peers.hello(session, authmethods=["ticket"])
    peers.read(session)
    peers.send(session, [5, mint_connect_token(peers.secret, "1", now=time.time() - 60), {}])
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.reason == uris.AUTHENTICATION_FAILED
    assert abort.details["message"] == "ticket refused: the user logged out after it was issued"
    later = peers.join(user="1", now=time.time() + 2)
    assert later.state is SessionState.ESTABLISHED
    assert peers.join(user="2", now=time.time() - 60).state is SessionState.ESTABLISHED


def test_tickets_issued_before_a_grant_change_get_the_new_grants(peers: Peers) -> None:
    """A session joining with a ticket older than a grant change gets the revoked grants, not its claims."""
    peers.router.revoke("1", time.time(), grants=Grants("1"))
    old = peers.join(user="1", claims=STAFF_ONLY, now=time.time() - 60)
    fresh = peers.join(user="1", claims=STAFF_ONLY, now=time.time() + 2)
    assert old.grants == Grants("1")
    assert fresh.grants.groups == {"staff"}


def test_revocations_are_forgotten_after_their_memory() -> None:
    """A revocation is applied for `memory` seconds, to ticket identities only, and at most max_users are kept."""
    revocations = Revocations(memory=10.0, max_users=2)
    now = 1_000_000.0
    revocations.record("1", None, True, now)
    old_ticket = Identity("1", "user", "ticket", claims={"iat": int(now) - 5})
    with pytest.raises(AuthenticationFailed):
        revocations.grants_for(old_ticket, Grants("1"), now + 5)
    cra = Identity("1", "user", "wampcra")
    assert revocations.grants_for(cra, Grants("1"), now + 5) == Grants("1")
    assert revocations.grants_for(old_ticket, Grants("1"), now + 11) == Grants("1")
    for user in ("2", "3", "4"):
        revocations.record(user, Grants(user), False, now)
    assert len(revocations) == 2


def test_ticket_minted_in_the_same_second_as_a_logout_is_refused(peers: Peers) -> None:
    """A revocation at T covers tickets with iat <= T: one minted in the logout's second (iat has second resolution) is refused."""
    logout = int(time.time()) + 0.5
    peers.router.revoke("1", logout, logout=True)
    session = peers.attach()
    peers.hello(session, authmethods=["ticket"])
    peers.read(session)
    peers.send(session, [5, mint_connect_token(peers.secret, "1", now=logout + 0.3), {}])  # iat == int(logout)
    abort = peers.read_one(session)
    assert isinstance(abort, Abort) and abort.details["message"] == "ticket refused: the user logged out after it was issued"
    assert peers.join(user="1", now=logout + 0.5).state is SessionState.ESTABLISHED  # the next second


def test_identity_without_iat_is_covered_by_every_revocation() -> None:
    """A ticket identity with no issue time counts as issued before any logout or grant change."""
    revocations = Revocations()
    now = 1_000_000.0
    revocations.record("1", None, True, now)
    revocations.record("2", Grants("2"), False, now)
    with pytest.raises(AuthenticationFailed):
        revocations.grants_for(Identity("1", "user", "ticket", claims={}), Grants("1", frozenset({"staff"})), now)
    old = Identity("2", "user", "ticket", claims={"iat": True})
    assert revocations.grants_for(old, Grants("2", frozenset({"staff"})), now) == Grants("2")


def test_restored_revocations_apply_and_later_ones_win() -> None:
    """Revocations read back from the store apply to older tickets; an older one arriving late never undoes a newer one."""
    revocations = Revocations(memory=100.0)
    now = 1_000_000.0
    revocations.restore("1", now - 10, None, None, now)
    revocations.restore("2", None, now - 10, Grants("2"), now)
    revocations.restore("3", now - 101, None, None, now)  # forgotten already: no token it covers is valid
    with pytest.raises(AuthenticationFailed):
        revocations.grants_for(Identity("1", "user", "ticket", claims={"iat": int(now) - 20}), Grants("1"), now)
    staff = Grants("2", frozenset({"staff"}))
    assert revocations.grants_for(Identity("2", "user", "ticket", claims={"iat": int(now) - 20}), staff, now) == Grants("2")
    assert revocations.grants_for(Identity("3", "user", "ticket", claims={"iat": int(now) - 200}), Grants("3"), now) == Grants("3")
    revocations.record("2", staff, False, now - 30)  # an older change, late
    assert revocations.grants_for(Identity("2", "user", "ticket", claims={"iat": int(now) - 20}), staff, now) == Grants("2")
    revocations.record("1", None, True, now - 30)  # an older logout, late
    with pytest.raises(AuthenticationFailed):
        revocations.grants_for(Identity("1", "user", "ticket", claims={"iat": int(now) - 20}), Grants("1"), now)


def test_sessions_still_joining_are_not_counted(peers: Peers) -> None:
    """Only established sessions are live sessions: one waiting for its CHALLENGE answer is not touched."""
    pending = peers.attach()
    peers.hello(pending, authmethods=["ticket"])
    peers.read(pending)
    assert peers.router.revoke("1", time.time(), logout=True) == 0
    # A ticket from the next second: one from the logout's second is refused.
    peers.send(pending, [5, mint_connect_token(peers.secret, "1", now=time.time() + 1), {}])
    assert isinstance(peers.read_one(pending), Welcome)
