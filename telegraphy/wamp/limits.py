"""Rate and size limits of sessions, sans-I/O: token buckets with the time passed in.

Nothing here reads a clock: every method takes ``now`` (seconds, any
monotonic-enough origin, the same for every call on one object).

- :class:`TokenBucket`: ``rate`` tokens per second, at most ``burst`` kept;
  a request takes one token or is refused.
- :class:`PublishThrottle`: the bucket of one session's client PUBLISHes,
  plus flood detection: a session that keeps publishing while refused —
  ``flood_factor × burst`` refusals within ``flood_window`` seconds — is to
  be closed, not merely throttled.
- :class:`KeyedRateLimiter`: one bucket per key (the gateway's per-IP
  connection rate), at most ``max_keys`` of them; idle keys (full buckets)
  are forgotten first.
- :class:`SessionLimits`: the per-session settings the router applies, and
  the gateway-wide bounds on what subscriptions hold.
- :class:`SubscriptionBudget`: the running totals the broker keeps against
  those bounds (distinct subscriptions, bytes of their filters).

A ``rate`` of ``0`` switches a limit off.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["UNLIMITED", "KeyedRateLimiter", "PublishThrottle", "SessionLimits", "SubscriptionBudget", "TokenBucket", "Verdict"]


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits; ``0`` switches each off.

    Attributes:
        max_subscriptions: most subscriptions one session may hold.
        publish_rate: client PUBLISHes per second, on average.
        publish_burst: client PUBLISHes allowed at once (the bucket's size).
        flood_factor: refusals, as a multiple of ``publish_burst``, within
            ``flood_window`` seconds that close the session.
        flood_window: seconds over which refusals are counted.
        max_uri_length: longest topic or procedure URI a session may
            subscribe, publish, register or call, in characters.
        max_filter_size: largest ``filter`` + ``exclude`` of one
            subscription, in bytes of their compact JSON.
        max_total_subscriptions: most distinct subscriptions (topic, match
            policy and filter; sessions sharing one count once) the router
            holds for all sessions together.
        max_filters_total: most bytes of filters (as for
            ``max_filter_size``) the router's distinct subscriptions hold
            together.
    """

    max_subscriptions: int = 0
    publish_rate: float = 0.0
    publish_burst: int = 0
    flood_factor: int = 10
    flood_window: float = 10.0
    max_uri_length: int = 0
    max_filter_size: int = 0
    max_total_subscriptions: int = 0
    max_filters_total: int = 0

    def throttle(self, now: float) -> PublishThrottle | None:
        """Return a fresh publish throttle for a session, or ``None`` when publishing is not limited."""
        if self.publish_rate <= 0:
            return None
        return PublishThrottle(self.publish_rate, max(1, self.publish_burst), now, self.flood_factor, self.flood_window)


#: No limit at all (the router's default; the gateway passes its configured limits).
UNLIMITED = SessionLimits()


class SubscriptionBudget:
    """What the distinct subscriptions of a router hold, against :class:`SessionLimits`.

    The broker calls :meth:`problem` before it creates a subscription,
    :meth:`add` once it has, and :meth:`remove` when the subscription's last
    subscriber leaves. Sizes are filter sizes in bytes (``0`` without a filter).
    """

    __slots__ = ("filters_total", "limits", "subscriptions")

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        #: Distinct subscriptions held now.
        self.subscriptions = 0
        #: Bytes of the filters of those subscriptions.
        self.filters_total = 0

    def filter_problem(self, size: int) -> str | None:
        """Return why a filter of ``size`` bytes is refused, or ``None``."""
        limit = self.limits.max_filter_size
        if limit and size > limit:
            return f"filter too large ({size} bytes, max {limit})"
        return None

    def problem(self, size: int) -> str | None:
        """Return why one more subscription (with a filter of ``size`` bytes) is refused, or ``None``."""
        limits = self.limits
        if limits.max_total_subscriptions and self.subscriptions >= limits.max_total_subscriptions:
            return f"the gateway holds its maximum of {limits.max_total_subscriptions} subscriptions"
        if size and limits.max_filters_total and self.filters_total + size > limits.max_filters_total:
            return f"the gateway holds its maximum of {limits.max_filters_total} bytes of filters"
        return None

    def add(self, size: int) -> None:
        """Count a subscription just created."""
        self.subscriptions += 1
        self.filters_total += size

    def remove(self, size: int) -> None:
        """Count a subscription just dropped."""
        self.subscriptions -= 1
        self.filters_total -= size


class TokenBucket:
    """``rate`` tokens per second, at most ``burst``; starts full."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many; return whether they were taken."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely (its owner has been idle)."""
        self._refill(now)
        return self.tokens >= self.burst


class Verdict(enum.Enum):
    """What to do with one client PUBLISH."""

    ALLOWED = "allowed"
    REFUSED = "refused"
    FLOODING = "flooding"


class PublishThrottle:
    """The publish rate limit of one session, with flood detection.

    Call :meth:`check` once per client PUBLISH.
    """

    __slots__ = ("bucket", "flood_limit", "flood_window", "refused", "window_start")

    def __init__(self, rate: float, burst: int, now: float, flood_factor: int = 10, flood_window: float = 10.0) -> None:
        self.bucket = TokenBucket(rate, burst, now)
        self.flood_limit = max(1, flood_factor * burst)
        self.flood_window = flood_window
        self.refused = 0
        self.window_start = now

    def check(self, now: float) -> Verdict:
        """Return whether a PUBLISH at ``now`` goes through, is refused, or shows the session is flooding."""
        if self.bucket.take(now):
            return Verdict.ALLOWED
        if now - self.window_start > self.flood_window:
            self.window_start = now
            self.refused = 0
        self.refused += 1
        return Verdict.FLOODING if self.refused >= self.flood_limit else Verdict.REFUSED


class KeyedRateLimiter:
    """One token bucket per key (for example per client IP address).

    Args:
        rate: tokens per second per key; ``0`` allows everything.
        burst: tokens a key may spend at once.
        max_keys: most keys remembered; beyond it idle keys are dropped,
            then (under a flood of distinct keys) the oldest ones.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        """Take a token for ``key``; return whether one was left."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self.prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def prune(self, now: float) -> None:
        """Forget keys whose bucket is full again; if none, the oldest half."""
        buckets = self._buckets
        idle = [key for key, bucket in buckets.items() if bucket.full(now)]
        if not idle:
            idle = list(buckets)[: max(1, len(buckets) // 2)]
        for key in idle:
            del buckets[key]
