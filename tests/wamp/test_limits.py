"""Per-session limits in the sans-I/O core: token buckets, max subscriptions, publish rate and floods; time is passed in."""

from __future__ import annotations

import time
from typing import Any

import pytest
from wamp_peers import Peers, open_channels

from telegraphy.wamp import CLOSE_POLICY, ServerSession, SessionState, uris
from telegraphy.wamp.limits import (
    KeyedRateLimiter,
    PublishThrottle,
    SessionLimits,
    TokenBucket,
    Verdict,
)
from telegraphy.wamp.messages import Abort, Error, Event, Published, Subscribed

T0 = 1_000_000.0


def test_token_bucket_starts_full_and_refills_at_its_rate() -> None:
    """A bucket spends its burst at once, then gives one token per 1/rate seconds, never more than the burst."""
    bucket = TokenBucket(rate=2.0, burst=3, now=T0)
    assert [bucket.take(T0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(T0 + 0.25) is False
    assert bucket.take(T0 + 0.5) is True
    assert not bucket.full(T0 + 1.0) and bucket.full(T0 + 100.0)
    assert [bucket.take(T0 + 100.0) for _ in range(4)] == [True, True, True, False]


def test_publish_throttle_refuses_then_detects_a_flood() -> None:
    """Past the burst PUBLISHes are refused; flood_factor × burst refusals within the window is a flood."""
    throttle = PublishThrottle(rate=1.0, burst=2, now=T0, flood_factor=3, flood_window=10.0)
    verdicts = [throttle.check(T0) for _ in range(8)]
    assert verdicts == [Verdict.ALLOWED] * 2 + [Verdict.REFUSED] * 5 + [Verdict.FLOODING]


def test_publish_throttle_forgets_refusals_of_an_old_window() -> None:
    """Refusals spread over more than the window never add up to a flood."""
    throttle = PublishThrottle(rate=0.001, burst=1, now=T0, flood_factor=2, flood_window=1.0)
    assert throttle.check(T0) is Verdict.ALLOWED
    assert throttle.check(T0) is Verdict.REFUSED
    assert throttle.check(T0 + 5) is Verdict.REFUSED
    assert throttle.check(T0 + 10) is Verdict.REFUSED
    assert throttle.check(T0 + 10) is Verdict.FLOODING


def test_keyed_rate_limiter_is_per_key_and_bounded() -> None:
    """Each key has its own bucket; at max_keys idle keys are forgotten; rate 0 allows everything."""
    limiter = KeyedRateLimiter(rate=1.0, burst=2, max_keys=3)
    assert [limiter.allow("a", T0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("b", T0) and limiter.allow("c", T0)
    assert len(limiter) == 3
    assert limiter.allow("d", T0 + 10)  # a, b, c have refilled: forgotten
    assert len(limiter) == 1
    unlimited = KeyedRateLimiter(rate=0, burst=1)
    assert all(unlimited.allow("x", T0) for _ in range(1000)) and len(unlimited) == 0


def test_keyed_rate_limiter_under_a_flood_of_distinct_keys() -> None:
    """When no key is idle, the oldest half is dropped so memory stays bounded."""
    limiter = KeyedRateLimiter(rate=0.001, burst=1, max_keys=10)
    for n in range(100):
        limiter.allow(str(n), T0)
    assert len(limiter) <= 10


# Sessions -----------------------------------------------------------------------------


def _send(session: ServerSession, message: list[Any], now: float) -> None:
    """Feed one JSON message to ``session`` at time ``now``."""
    session.receive(session.codec.serializer.encode(message).decode("utf-8"), now)


@pytest.fixture
def peers() -> Peers:
    """A router with small limits: 3 subscriptions, 2 publishes per second with a burst of 4, floods at 5 × 4 refusals."""
    return Peers(channels=open_channels(), limits=SessionLimits(max_subscriptions=3, publish_rate=2.0, publish_burst=4, flood_factor=5, flood_window=10.0))


def test_max_subscriptions(peers: Peers) -> None:
    """The 4th distinct SUBSCRIBE gets telegraphy.error.limit_exceeded; subscribing again to a held topic still works; unsubscribing makes room."""
    session = peers.join()
    ids = [peers.subscribe(session, f"t.{n}", request=n) for n in range(3)]
    peers.send(session, [32, 10, {}, "t.3"])
    error = peers.read_one(session)
    assert isinstance(error, Error) and error.error == uris.LIMIT_EXCEEDED and error.request == 10
    assert error.args == ["a session may hold at most 3 subscriptions"]
    assert peers.router.counts()["subscriptions"] == 3 and peers.router.stats.subscriptions_refused == 1
    assert peers.subscribe(session, "t.0", request=11) == ids[0]
    peers.send(session, [34, 12, ids[0]])
    peers.read(session)
    assert isinstance(peers.subscribe(session, "t.3", request=13), int)


def test_max_subscriptions_is_per_session(peers: Peers) -> None:
    """One session at its limit does not stop another from subscribing."""
    full, other = peers.join(), peers.join()
    for n in range(3):
        peers.subscribe(full, f"t.{n}", request=n)
    peers.send(other, [32, 1, {}, "t.9"])
    assert isinstance(peers.read_one(other), Subscribed)


def test_publish_rate_with_and_without_acknowledge(peers: Peers) -> None:
    """Past the burst, an acknowledged PUBLISH gets ERROR limit_exceeded and an unacknowledged one is dropped and counted."""
    publisher, subscriber = peers.join(user="p"), peers.join()
    peers.subscribe(subscriber, "chat.lobby")
    now = time.time() + 1  # after the join, which started the bucket
    for request in range(1, 5):
        _send(publisher, [16, request, {"acknowledge": True}, "chat.lobby", [request]], now)
    assert all(isinstance(m, Published) for m in peers.read(publisher))
    _send(publisher, [16, 5, {"acknowledge": True}, "chat.lobby", [5]], now)
    _send(publisher, [16, 6, {}, "chat.lobby", [6]], now)
    [error] = peers.read(publisher)
    assert isinstance(error, Error) and (error.error, error.request) == (uris.LIMIT_EXCEEDED, 5)
    assert error.args == ["publish rate over 2/s (burst 4)"]
    _send(publisher, [16, 7, {"acknowledge": True}, "chat.lobby", [7]], now + 0.5)
    assert isinstance(peers.read_one(publisher), Published)
    received = [m.args[0] for m in peers.read(subscriber) if isinstance(m, Event)]  # type: ignore[index]
    assert received == [1, 2, 3, 4, 7]
    assert peers.router.stats.publishes_throttled == 2


def test_publish_flood_closes_the_session_only(peers: Peers) -> None:
    """20 refusals within the window: ABORT telegraphy.error.flooding and close 1008; another publisher goes on."""
    flooder, other, subscriber = peers.join(user="f"), peers.join(user="o"), peers.join()
    peers.subscribe(subscriber, "chat.lobby")
    now = time.time() + 1
    for request in range(1, 1 + 4 + 20):
        _send(flooder, [16, request, {}, "chat.lobby", ["spam"]], now)
    messages = peers.read(flooder)
    assert isinstance(messages[-1], Abort) and messages[-1].reason == uris.FLOODING
    assert flooder.close_request == (CLOSE_POLICY, uris.FLOODING)
    assert flooder.state is SessionState.FAILED
    assert peers.router.stats.sessions_flooding == 1
    _send(flooder, [16, 99, {}, "chat.lobby", ["after"]], now)  # ignored: the session is over
    _send(other, [16, 1, {"acknowledge": True}, "chat.lobby", ["fine"]], now)
    assert isinstance(peers.read_one(other), Published)
    assert [m.args[0] for m in peers.read(subscriber)] == ["spam"] * 4 + ["fine"]  # type: ignore[attr-defined]


def test_no_limits_by_default() -> None:
    """A router built without limits lets a session hold many subscriptions and publish in bursts."""
    peers = Peers(channels=open_channels())
    session = peers.join(user="p")
    for n in range(1200):
        _send(session, [32, n + 1, {}, f"t.{n}"], T0)
        _send(session, [16, n + 1, {}, "x"], T0)
    assert len(session.subscriptions) == 1200 and peers.router.stats.publishes_throttled == 0


# Topic length, filter size and the gateway-wide budget (issue 11, finding 8) -----------


def test_uris_longer_than_max_uri_length_are_refused_with_invalid_uri() -> None:
    """SUBSCRIBE, acknowledged PUBLISH and REGISTER of a URI over max_uri_length get ERROR wamp.error.invalid_uri, not echoing the URI."""
    peers = Peers(limits=SessionLimits(max_uri_length=20))
    session = peers.join(user="7")
    long_uri = "a." + "b" * 30
    assert isinstance(peers.subscribe(session, "a." + "b" * 18), int)
    for request, message in enumerate(([32, 0, {}, long_uri], [16, 0, {"acknowledge": True}, long_uri], [64, 0, {}, long_uri]), 1):
        message[1] = request
        peers.send(session, message)
        error = peers.read_one(session)
        assert isinstance(error, Error) and error.error == uris.INVALID_URI and error.request == request
        assert error.args == ["uri too long (32 characters, max 20)"]
    assert peers.router.counts()["subscriptions"] == 1


def test_a_filter_over_max_filter_size_is_refused_before_it_is_compiled() -> None:
    """A SUBSCRIBE whose filter's JSON exceeds max_filter_size gets wamp.error.invalid_argument naming the limit."""
    peers = Peers(limits=SessionLimits(max_filter_size=100))
    session = peers.join()
    peers.send(session, [32, 1, {"filter": {"n__in": list(range(10))}}, "t"])
    assert peers.read_one(session).TYPE == 33  # type: ignore[attr-defined]
    peers.send(session, [32, 2, {"filter": {"n__in": list(range(100))}}, "t"])
    error = peers.read_one(session)
    assert isinstance(error, Error) and error.error == uris.INVALID_ARGUMENT
    assert error.args is not None and error.args[0].startswith("invalid filter: filter too large (") and "max 100)" in error.args[0]


def test_the_gateway_wide_subscription_budget_counts_distinct_subscriptions_of_all_sessions() -> None:
    """Beyond max_total_subscriptions a new distinct subscription gets telegraphy.error.limit_exceeded and is counted; shared ones still work; leaving frees room."""
    peers = Peers(limits=SessionLimits(max_total_subscriptions=3))
    first, second = peers.join(), peers.join()
    peers.subscribe(first, "t.0")
    peers.subscribe(first, "t.1")
    peers.subscribe(second, "t.2")
    peers.send(second, [32, 9, {}, "t.3"])
    error = peers.read_one(second)
    assert isinstance(error, Error) and error.error == uris.LIMIT_EXCEEDED and error.request == 9
    assert error.args == ["the gateway holds its maximum of 3 subscriptions"]
    assert peers.router.stats.subscriptions_over_budget == 1
    assert isinstance(peers.subscribe(second, "t.0", request=10), int)  # shared: no new subscription
    first.connection_lost()
    assert peers.router.budget.subscriptions == 2
    assert isinstance(peers.subscribe(second, "t.3", request=11), int)


def test_the_gateway_wide_filter_budget_counts_bytes_of_distinct_filters() -> None:
    """Beyond max_filters_total bytes of filters a new filtered subscription is refused; the same filter is shared; unsubscribing frees its bytes."""
    peers = Peers(limits=SessionLimits(max_filters_total=100))
    first, second = peers.join(), peers.join()
    big = {"filter": {"name__in": ["x" * 10, "y" * 10, "z" * 10]}}  # 55 bytes of JSON
    peers.send(first, [32, 1, big, "t"])
    sub = peers.read_one(first).subscription  # type: ignore[attr-defined]
    peers.send(second, [32, 1, big, "t"])
    assert peers.read_one(second).subscription == sub  # type: ignore[attr-defined]
    peers.send(second, [32, 2, big, "u"])
    error = peers.read_one(second)
    assert isinstance(error, Error) and error.error == uris.LIMIT_EXCEEDED
    assert error.args == ["the gateway holds its maximum of 100 bytes of filters"]
    assert peers.router.stats.subscriptions_over_budget == 1
    peers.send(first, [34, 3, sub])
    peers.send(second, [34, 3, sub])
    peers.read(first), peers.read(second)
    assert (peers.router.budget.subscriptions, peers.router.budget.filters_total) == (0, 0)
    peers.send(second, [32, 4, big, "u"])
    assert peers.read_one(second).TYPE == 33  # type: ignore[attr-defined]
