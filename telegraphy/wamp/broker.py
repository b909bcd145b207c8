"""The WAMP broker: subscriptions and event fan-out (WAMP §8 "Publish and Subscribe").

Subscriptions are router-wide: every session subscribing to the same topic
with the same match policy shares one subscription id (WAMP §8.1.2: "the
Broker MAY return the same Subscription ID"), so an EVENT is identical for all
of its subscribers. :meth:`Broker.publish` therefore encodes each EVENT once
per wire codec and hands the same bytes to every subscriber; the only
per-subscriber work is one append to that session's outgoing list. Every
codec's bytes are made before any subscriber gets them, so a payload one
serialization cannot carry is refused whole, never half delivered.

Match policies (advanced profile, "Pattern-based Subscriptions"): ``exact``;
``prefix`` (the topic starts with the subscribed string); ``wildcard`` (the
topic has as many components as the pattern and equals it wherever the
pattern's component is not empty, so ``a..c`` matches ``a.b.c``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import ApplicationError, uris
from .messages import Event

if TYPE_CHECKING:
    from .serializer import WireCodec
    from .session import ServerSession

__all__ = ["Broker", "Subscription"]


class Subscription:
    """One topic + match policy and the sessions subscribed to it."""

    __slots__ = ("codecs", "components", "created", "id", "match", "subscribers", "topic")

    def __init__(self, subscription_id: int, topic: str, match: str, created: float | None = None) -> None:
        self.id = subscription_id
        self.topic = topic
        self.match = match
        #: Unix time the subscription was created, when the caller said.
        self.created = created
        #: Insertion-ordered set of sessions.
        self.subscribers: dict[ServerSession, None] = {}
        #: How many subscribers use each wire codec.
        self.codecs: dict[WireCodec, int] = {}
        self.components: tuple[str, ...] = tuple(topic.split(".")) if match == "wildcard" else ()

    def add(self, session: ServerSession) -> None:
        """Add a subscriber (again is a no-op)."""
        if session not in self.subscribers:
            self.subscribers[session] = None
            self.codecs[session.codec] = self.codecs.get(session.codec, 0) + 1

    def discard(self, session: ServerSession) -> None:
        """Remove a subscriber, if it is one."""
        if session in self.subscribers:
            del self.subscribers[session]
            left = self.codecs[session.codec] - 1
            if left:
                self.codecs[session.codec] = left
            else:
                del self.codecs[session.codec]

    def matches(self, topic: str, components: list[str]) -> bool:
        """Return whether ``topic`` (split into ``components``) matches this subscription."""
        if self.match == "exact":
            return topic == self.topic
        if self.match == "prefix":
            return topic.startswith(self.topic)
        pattern = self.components
        if len(pattern) != len(components):
            return False
        return all(not want or want == have for want, have in zip(pattern, components))

    def __repr__(self) -> str:
        return f"Subscription({self.id}, {self.topic!r}, {self.match}, {len(self.subscribers)} subscribers)"


class Broker:
    """Subscriptions of one realm and the publishing of events to them.

    Args:
        next_id: returns a fresh router-scope id (WAMP §7.1.3).
    """

    def __init__(self, next_id: Callable[[], int]) -> None:
        self._next_id = next_id
        self._exact: dict[str, Subscription] = {}
        self._prefix: dict[str, Subscription] = {}
        self._wildcard: dict[str, Subscription] = {}
        self._by_id: dict[int, Subscription] = {}

    # Subscription bookkeeping --------------------------------------------

    def _table(self, match: str) -> dict[str, Subscription]:
        return self._exact if match == "exact" else self._prefix if match == "prefix" else self._wildcard

    def subscribe(self, session: ServerSession, topic: str, match: str = "exact", now: float | None = None) -> Subscription:
        """Add ``session`` to the subscription for (``topic``, ``match``), creating it if needed.

        Subscribing twice is not an error: WAMP §8.1.2 says the Broker answers
        with the existing subscription's id. ``now`` becomes the creation time
        of a new subscription (``wamp.subscription.get`` reports it).
        """
        table = self._table(match)
        sub = table.get(topic)
        if sub is None:
            sub = Subscription(self._next_id(), topic, match, now)
            table[topic] = sub
            self._by_id[sub.id] = sub
        sub.add(session)
        return sub

    def unsubscribe(self, session: ServerSession, subscription_id: int) -> Subscription:
        """Remove ``session`` from a subscription; drop the subscription when it empties.

        Raises:
            ApplicationError: ``wamp.error.no_such_subscription`` if the session
                is not subscribed under that id.
        """
        sub = self._by_id.get(subscription_id)
        if sub is None or session not in sub.subscribers:
            raise ApplicationError(uris.NO_SUCH_SUBSCRIPTION, f"subscription {subscription_id} not found on session {session.id}")
        self._remove(sub, session)
        return sub

    def _remove(self, sub: Subscription, session: ServerSession) -> None:
        sub.discard(session)
        if not sub.subscribers:
            del self._table(sub.match)[sub.topic]
            del self._by_id[sub.id]

    def remove_session(self, session: ServerSession, subscription_ids: Iterable[int]) -> None:
        """Drop every subscription of a session that left."""
        for subscription_id in list(subscription_ids):
            sub = self._by_id.get(subscription_id)
            if sub is not None and session in sub.subscribers:
                self._remove(sub, session)

    def get(self, subscription_id: int) -> Subscription | None:
        return self._by_id.get(subscription_id)

    def lookup(self, topic: str, match: str = "exact") -> Subscription | None:
        """Return the subscription for exactly (``topic``, ``match``), if any."""
        return self._table(match).get(topic)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._by_id.values())

    def matching(self, topic: str) -> list[Subscription]:
        """Return the subscriptions an event on ``topic`` goes to."""
        found: list[Subscription] = []
        exact = self._exact.get(topic)
        if exact is not None:
            found.append(exact)
        if self._prefix:
            found.extend(sub for prefix, sub in self._prefix.items() if topic.startswith(prefix))
        if self._wildcard:
            components = topic.split(".")
            found.extend(sub for sub in self._wildcard.values() if sub.matches(topic, components))
        return found

    # Publishing ----------------------------------------------------------

    def publish(
        self,
        topic: str,
        publication: int,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        *,
        publisher: ServerSession | None = None,
        exclude_me: bool = True,
        exclude: frozenset[int] | None = None,
        eligible: frozenset[int] | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Deliver an event to every matching subscriber; return how many got it.

        Each EVENT is encoded once per subscription and wire codec. WAMP §8.4.1
        (publisher exclusion): the publisher does not receive its own event
        unless it asks with ``exclude_me: false``. ``exclude``/``eligible`` are
        session ids (advanced profile, "Subscriber Black- and Whitelisting").

        Raises:
            ApplicationError: ``wamp.error.invalid_argument`` when a subscriber's
                serialization cannot carry the payload; nobody got the event.
        """
        base = details or {}
        prepared: list[tuple[Subscription, dict[WireCodec, bytes]]] = []
        for sub in self.matching(topic):
            event_details = base if sub.match == "exact" else {**base, "topic": topic}
            message = Event(sub.id, publication, event_details, args, kwargs).marshal()
            prepared.append((sub, {codec: codec.encode(message) for codec in sub.codecs}))
        delivered = 0
        skip = publisher if exclude_me else None
        filtered = exclude is not None or eligible is not None
        for sub, frames in prepared:
            for session in sub.subscribers:
                if session is skip:
                    continue
                if filtered and not _allowed(session.id, exclude, eligible):
                    continue
                session.deliver(frames[session.codec])
                delivered += 1
        return delivered


def _allowed(session_id: int | None, exclude: frozenset[int] | None, eligible: frozenset[int] | None) -> bool:
    if exclude is not None and session_id in exclude:
        return False
    return eligible is None or session_id in eligible
