"""The WAMP broker: subscriptions and event fan-out (WAMP §8 "Publish and Subscribe").

Subscriptions are router-wide: every session subscribing to the same topic
with the same match policy (and filter) shares one subscription id (WAMP
§8.1.2: "the Broker MAY return the same Subscription ID"), so an EVENT is
identical for all of its subscribers. :meth:`Broker.publish` therefore encodes
each EVENT once per wire codec and hands the same bytes to every subscriber;
the only per-subscriber work is one append to that session's outgoing list.
Subscriptions matching one event differ only in their id: the rest of the
EVENT (publication, details, payload) is encoded once per publish and
serializer, and each subscription id is spliced in front of it
(:meth:`~telegraphy.wamp.serializer.Serializer.event`). Every codec's bytes
are made before any subscriber gets them, so a payload one serialization
cannot carry is refused whole, never half delivered.

Match policies (advanced profile, "Pattern-based Subscriptions"): ``exact``;
``prefix`` (the topic starts with the subscribed string); ``wildcard`` (the
topic has as many components as the pattern and equals it wherever the
pattern's component is not empty, so ``a..c`` matches ``a.b.c``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .channels import may_receive, private_owner
from .errors import ApplicationError, uris
from .limits import UNLIMITED, SubscriptionBudget
from .messages import Event

if TYPE_CHECKING:
    from .audience import Visibility
    from .auth import Identity
    from .serializer import WireCodec
    from .session import ServerSession

__all__ = ["AuthLists", "Broker", "Subscription", "filter_target"]


@dataclass(frozen=True, slots=True)
class AuthLists:
    """A PUBLISH's black- and whitelists by authid and authrole (advanced profile, "Subscriber Black- and Whitelisting").

    ``exclude_authid``/``exclude_authrole`` remove the sessions they name;
    ``eligible_authid``/``eligible_authrole`` keep only those they name. An
    authid and an authrole mean the same on every gateway process and after
    a resume, so these lists hold wherever the event is delivered. Build with
    :meth:`parse` (PUBLISH options, or the stored form :meth:`to_wire` made).
    """

    exclude_authid: frozenset[str] | None = None
    eligible_authid: frozenset[str] | None = None
    exclude_authrole: frozenset[str] | None = None
    eligible_authrole: frozenset[str] | None = None

    OPTIONS = ("exclude_authid", "eligible_authid", "exclude_authrole", "eligible_authrole")

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> AuthLists | None:
        """Return the lists ``options`` carry, or ``None`` when it carries none.

        Raises:
            ApplicationError: ``wamp.error.invalid_argument`` naming an option that is not a list of strings.
        """
        lists: dict[str, frozenset[str]] = {}
        for name in cls.OPTIONS:
            value = options.get(name)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApplicationError(uris.INVALID_ARGUMENT, f"option {name!r} must be a list of strings")
            lists[name] = frozenset(value)
        return cls(**lists) if lists else None

    def allows(self, identity: Identity | None) -> bool:
        """Return whether a session of ``identity`` may get the event (no identity: no)."""
        if identity is None:
            return False
        authid, authrole = identity.authid, identity.authrole
        if self.exclude_authid is not None and authid in self.exclude_authid:
            return False
        if self.exclude_authrole is not None and authrole in self.exclude_authrole:
            return False
        if self.eligible_authid is not None and authid not in self.eligible_authid:
            return False
        return self.eligible_authrole is None or authrole in self.eligible_authrole

    def to_wire(self) -> dict[str, list[str]]:
        """Return the lists as PUBLISH options (sorted), for storing and forwarding."""
        return {name: sorted(values) for name in self.OPTIONS if (values := getattr(self, name)) is not None}


class Subscription:
    """One topic + match policy and the sessions subscribed to it."""

    __slots__ = (
        "codecs", "components", "created", "filter_key", "filter_size", "id", "match", "options", "predicate", "subscribers", "topic",
    )  # fmt: skip

    def __init__(
        self,
        subscription_id: int,
        topic: str,
        match: str,
        created: float | None = None,
        predicate: Callable[[Any], bool] | None = None,
        filter_key: str = "",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.id = subscription_id
        self.topic = topic
        self.match = match
        #: The compiled server-side filter, evaluated once per event for all subscribers.
        self.predicate = predicate
        #: A digest of the filter's canonical JSON (not the JSON itself: a filter is held once, as ``options``).
        self.filter_key = filter_key
        #: Bytes of the filter's canonical JSON (counted against the budget).
        self.filter_size = 0
        #: The ``filter``/``exclude`` options that made it (empty without a filter).
        self.options = options or {}
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
        budget: the bounds on subscriptions and their filters, shared by the
            brokers of one router (none by default).
    """

    def __init__(self, next_id: Callable[[], int], budget: SubscriptionBudget | None = None) -> None:
        self._next_id = next_id
        self.budget = budget if budget is not None else SubscriptionBudget(UNLIMITED)
        # Keyed by topic, or by topic + NUL + filter key for filtered subscriptions.
        self._exact: dict[str, Subscription] = {}
        self._prefix: dict[str, Subscription] = {}
        self._wildcard: dict[str, Subscription] = {}
        #: Filtered exact subscriptions by topic (they share a topic, not a key).
        self._exact_filtered: dict[str, list[Subscription]] = {}
        self._by_id: dict[int, Subscription] = {}

    # Subscription bookkeeping --------------------------------------------

    def _table(self, match: str) -> dict[str, Subscription]:
        return self._exact if match == "exact" else self._prefix if match == "prefix" else self._wildcard

    def subscribe(
        self,
        session: ServerSession,
        topic: str,
        match: str = "exact",
        now: float | None = None,
        options: dict[str, Any] | None = None,
    ) -> Subscription:
        """Add ``session`` to the subscription for (``topic``, ``match``, filter), creating it if needed.

        Subscribing twice is not an error: WAMP §8.1.2 says the Broker answers
        with the existing subscription's id. ``now`` becomes the creation time
        of a new subscription (``wamp.subscription.get`` reports it).
        ``options`` may carry ``filter`` and ``exclude`` (the Django lookup
        language, :mod:`telegraphy.query`); sessions with the same filter
        share one subscription, so the filter runs once per event.

        Raises:
            ApplicationError: ``wamp.error.invalid_argument`` for an invalid or
                too large filter; ``telegraphy.error.limit_exceeded`` when the
                router holds as many subscriptions (or bytes of filters) as
                its budget allows.
        """
        wanted = {k: options[k] for k in ("filter", "exclude") if options and options.get(k) is not None}
        key, filter_key, filter_size, predicate = topic, "", 0, None
        budget = self.budget
        if wanted:
            from telegraphy.query import QueryError, compile_filter

            # Sized first, so an oversized filter is never compiled.
            try:
                canonical = json.dumps(wanted, sort_keys=True, separators=(",", ":"), default=str).encode("ascii")
            except (TypeError, ValueError, RecursionError):
                raise ApplicationError(uris.INVALID_ARGUMENT, "invalid filter: not JSON") from None
            filter_size = len(canonical)  # ASCII: json.dumps escapes the rest
            problem = budget.filter_problem(filter_size)
            if problem is not None:
                raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid filter: {problem}")
            filter_key = hashlib.sha256(canonical).hexdigest()
            key = f"{topic}\x00{filter_key}"
            sub = self._table(match).get(key)
            if sub is not None:  # the same filter on the same topic: shared, compiled already
                sub.add(session)
                return sub
            try:
                predicate = compile_filter(wanted.get("filter"), wanted.get("exclude"))
            except QueryError as exc:
                raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid filter: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid filter: {exc}") from None
        table = self._table(match)
        sub = table.get(key)
        if sub is None:
            problem = budget.problem(filter_size)
            if problem is not None:
                raise ApplicationError(uris.LIMIT_EXCEEDED, problem)
            budget.add(filter_size)
            sub = Subscription(self._next_id(), topic, match, now, predicate, filter_key, wanted)
            sub.filter_size = filter_size
            table[key] = sub
            self._by_id[sub.id] = sub
            if predicate is not None and match == "exact":
                self._exact_filtered.setdefault(topic, []).append(sub)
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
            key = f"{sub.topic}\x00{sub.filter_key}" if sub.filter_key else sub.topic
            del self._table(sub.match)[key]
            del self._by_id[sub.id]
            self.budget.remove(sub.filter_size)
            if sub.filter_key and sub.match == "exact":
                siblings = self._exact_filtered[sub.topic]
                siblings.remove(sub)
                if not siblings:
                    del self._exact_filtered[sub.topic]

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
        if self._exact_filtered:
            found.extend(self._exact_filtered.get(topic, ()))
        if self._prefix:
            found.extend(sub for sub in self._prefix.values() if topic.startswith(sub.topic))
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
        visibility: Visibility | None = None,
        target: Any = None,
        only: ServerSession | None = None,
        only_id: int | None = None,
        authlists: AuthLists | None = None,
    ) -> int:
        """Deliver an event to every matching subscriber; return how many got it.

        This is the one delivery policy: live events, events of other gateway
        processes and resume replays all go through it, so a session gets the
        same EVENTs whichever path brings them. ``only`` restricts delivery to
        one session (a resume replay): it gets one EVENT per subscription it
        holds that matches ``topic``, in the order live delivery uses, and
        ``exclude``/``eligible`` judge it by ``only_id`` — the id it had when
        the event was published (``None``: unknown, so an event with either
        list does not reach it).

        The EVENT's payload is encoded once per serializer (and, with a
        ``visibility``, once per projection), then framed once per
        subscription and wire codec. WAMP §8.4.1 (publisher
        exclusion): the publisher does not receive its own event unless it
        asks with ``exclude_me: false``. ``exclude``/``eligible`` are session
        ids, ``authlists`` the lists by authid and authrole (advanced
        profile, "Subscriber Black- and Whitelisting"). A
        filtered subscription gets the event only if its filter accepts
        ``target`` (the event's ``data``); with a ``visibility``, a filter
        sees only what its session would receive: it runs on the projected
        ``data``, once per subscription and projection variant.

        Raises:
            ApplicationError: ``wamp.error.invalid_argument`` when a subscriber's
                serialization cannot carry the payload; nobody got the event.
        """
        base = details or {}
        skip = publisher if exclude_me else None
        listed = exclude is not None or eligible is not None
        owner = private_owner(topic)
        # (subscription, recipients, frame key per recipient or None for "by codec", frames)
        plan: list[tuple[Subscription, Iterable[ServerSession], list[Any] | None, dict[Any, bytes | None]]] = []
        variants: dict[int, int | None] = {}
        # Encoded EVENT tails by (serializer, variant, exact match?): once per publish.
        tails: dict[tuple[Any, int, bool], bytes] = {}
        # What each variant receives (None: nothing) and what its filters see.
        payloads: dict[int, list[Any] | None] = {}
        targets: dict[int, Any] = {}
        pattern_details = {**base, "topic": topic}

        def payload_of(variant: int) -> list[Any] | None:
            found = payloads.get(variant, _UNKNOWN)
            if found is _UNKNOWN:
                found = args
                if visibility is not None:
                    assert args is not None
                    projected = visibility.project(args[0], variant)
                    found = None if projected is None else [projected, *args[1:]]
                payloads[variant] = found
            return found  # type: ignore[no-any-return]

        def target_of(variant: int) -> Any:
            found = targets.get(variant, _UNKNOWN)
            if found is _UNKNOWN:
                found = targets[variant] = filter_target(payload_of(variant), kwargs)
            return found

        def tail(serializer: Any, variant: int, exact: bool) -> bytes:
            key = (serializer, variant, exact)
            found = tails.get(key)
            if found is None:
                rest = Event(0, publication, base if exact else pattern_details, payload_of(variant), kwargs).marshal()[2:]
                found = tails[key] = serializer.event_tail(rest)
            return found

        if only is None:
            subscriptions = self.matching(topic)
            sessions_of: Callable[[Subscription], Iterable[ServerSession]] = _subscribers
        else:
            subscriptions = [sub for sub in self.matching(topic) if only in sub.subscribers]
            if (
                only is skip
                or (listed and (only_id is None or not _allowed(only_id, exclude, eligible)))
                or (authlists is not None and not authlists.allows(only.identity))
            ):
                subscriptions = []
            alone = [only]

            def sessions_of(sub: Subscription) -> Iterable[ServerSession]:
                return alone

            skip, listed, authlists = None, False, None
        # Without projections every recipient sees the same data: judge the filter once per subscription.
        unprojected = visibility is None or not visibility.projections
        for sub in subscriptions:
            predicate = sub.predicate
            if predicate is not None and unprojected and not predicate(target if visibility is None else target_of(-1)):
                continue
            exact = sub.match == "exact"
            sessions = sessions_of(sub)
            if skip is not None or listed:
                sessions = [s for s in sessions if s is not skip and (not listed or _allowed(s.id, exclude, eligible))]
            if authlists is not None:
                sessions = [s for s in sessions if authlists.allows(s.identity)]
            if owner is not None:
                # A private channel's events reach its owner only, whatever the pattern.
                sessions = [s for s in sessions if may_receive(s.grants, owner)]
            if visibility is None:
                codecs = sub.codecs if only is None else (only.codec,)
                frames: dict[Any, bytes | None] = {codec: codec.encode_event(sub.id, tail(codec.serializer, -1, exact)) for codec in codecs}
                plan.append((sub, sessions, None, frames))
                continue
            # Who gets which version: decided once per distinct grants object.
            # Which (codec, variant) frames this subscription sends: made once,
            # None when the variant gets nothing (its projection fails closed,
            # or the filter rejects what that variant would receive).
            frame_keys: list[Any] = []
            kept: list[ServerSession] = []
            frames = {}
            verdicts: dict[int, bool] = {}
            for session in sessions:
                grants = session.grants
                variant = variants.get(id(grants), _UNKNOWN)
                if variant is _UNKNOWN:
                    variant = variants[id(grants)] = visibility.variant(grants)
                if variant is None:
                    continue
                codec = session.codec
                key = (codec, variant)
                frame = frames.get(key, _UNKNOWN)
                if frame is _UNKNOWN:
                    accepted = verdicts.get(variant)
                    if accepted is None:
                        accepted = verdicts[variant] = payload_of(variant) is not None and (
                            predicate is None or bool(predicate(target_of(variant)))
                        )
                    frame = frames[key] = codec.encode_event(sub.id, tail(codec.serializer, variant, exact)) if accepted else None
                if frame is None:
                    continue
                kept.append(session)
                frame_keys.append(key)
            plan.append((sub, kept, frame_keys, frames))
        delivered = 0
        for _, recipients, keys, frames in plan:
            if keys is None:
                for session in recipients:
                    session.deliver(frames[session.codec])  # type: ignore[arg-type]
                    delivered += 1
            else:
                for session, key in zip(recipients, keys):
                    session.deliver(frames[key])  # type: ignore[arg-type]
                delivered += len(keys)
        return delivered


def _subscribers(sub: Subscription) -> Iterable[ServerSession]:
    return sub.subscribers


_UNKNOWN: Any = object()


def filter_target(args: list[Any] | None, kwargs: dict[str, Any] | None) -> Any:
    """Return what subscription filters look at: a Telegraphy event's ``data``, else the first argument, else kwargs."""
    if args:
        first = args[0]
        if isinstance(first, dict):
            return first["data"] if "data" in first and "meta" in first else first
        return first
    return kwargs or {}


def _allowed(session_id: int | None, exclude: frozenset[int] | None, eligible: frozenset[int] | None) -> bool:
    if exclude is not None and session_id in exclude:
        return False
    return eligible is None or session_id in eligible
