"""The WAMP router: realms, sessions, and the entry point for publishing.

One :class:`Router` serves every transport of a gateway process. Transports
attach a :class:`~telegraphy.wamp.session.ServerSession` per connection with
:meth:`Router.attach`; the HTTP publish API calls :meth:`Router.publish_event`.

Output is collected, not written: a session that gets data to send is added
to the router's dirty list, and ``on_output`` is called once when that list
stops being empty, so the transport layer can flush every dirty connection
once per event-loop iteration (one write per connection however many events
reached it meanwhile).
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from . import meta
from .audience import Grants, InvalidAudience, Visibility, grants_of
from .auth import Authenticator, Identity
from .channels import WEB_ROLE, ChannelPolicy
from .broker import AuthLists, Broker, filter_target
from .dealer import Dealer
from .errors import ApplicationError, LocalProtocolError, uris
from .limits import UNLIMITED, SessionLimits, SubscriptionBudget
from .messages import MAX_ID
from .revocation import Revocations
from .serializer import WireCodec, check_payload
from .session import ServerSession

__all__ = ["DEFAULT_REALM", "Publication", "Realm", "Router", "RouterStats"]

DEFAULT_REALM = "telegraphy"

#: What a session may do, by kind of identity, before the channel and
#: procedure policy (:mod:`.channels`) decides where: anonymous peers never
#: publish or register. URIs under ``wamp.`` are the router's own (WAMP
#: §7.1.2) and never published or registered by peers.
ACTIONS = frozenset({"subscribe", "publish", "call", "register"})
ANONYMOUS_ACTIONS = frozenset({"subscribe", "call"})
#: The roles that may call the meta procedures (``wamp.session.list``, …).
META_ROLES = frozenset({"admin"})


class RouterStats:
    """Counters the router increments; the gateway may pass its metrics object instead."""

    def __init__(self) -> None:
        self.events_published = 0
        self.events_delivered = 0
        self.messages_received = 0
        self.protocol_errors = 0
        self.requests_unauthorized = 0
        self.subscriptions_refused = 0
        self.subscriptions_over_budget = 0
        self.publishes_throttled = 0
        self.sessions_flooding = 0
        self.revocations = 0


@dataclass(slots=True)
class Publication:
    """An event accepted by the router and not yet delivered.

    With a ``sequencer`` set, the router hands publications to it; the
    sequencer gives each a stream position (for example from a store) and
    calls :meth:`Router.deliver` in order.
    """

    realm: Realm
    topic: str
    id: int
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    details: dict[str, Any]
    publisher: ServerSession | None = None
    exclude_me: bool = True
    exclude: frozenset[int] | None = None
    eligible: frozenset[int] | None = None
    #: True for Telegraphy events (args[0] is ``{name, meta, data}``): their
    #: ``meta`` gets ``offset`` and ``epoch`` too.
    event: bool = False
    #: Who sees the event and which fields (from ``meta.audience``/``meta.projections``).
    visibility: Visibility | None = None
    #: The PUBLISH's ``exclude_authid``/``eligible_authid``/``…_authrole`` lists.
    authlists: AuthLists | None = None
    #: The event's ``meta.id`` (web-app events): the sequencer stores and
    #: delivers each id at most once.
    event_id: str | None = None


class Realm:
    """A routing namespace with its own broker, dealer and sessions (WAMP §5.1)."""

    __slots__ = ("broker", "dealer", "name", "sessions")

    def __init__(self, name: str, next_id: Callable[[], int], budget: SubscriptionBudget | None = None) -> None:
        self.name = name
        self.broker = Broker(next_id, budget)
        self.dealer = Dealer(next_id)
        self.sessions: dict[int, ServerSession] = {}


class Router:
    """Realms, authentication and the dirty-session list shared by all transports.

    Args:
        authenticator: decides who may open a session.
        realms: the realm names served; the first is the default for
            :meth:`publish_event`.
        stats: an object with the integer attributes of :class:`RouterStats`.
        on_output: called (with no arguments) when a session gets data to
            send and no other session had any; the transport layer then calls
            :meth:`take_dirty` and writes.
        anonymous_actions: what anonymous sessions may do.
        meta_roles: the authroles that may call the meta procedures of
            :mod:`.meta` (kept as the ``meta_roles`` attribute).
        channels: who may subscribe and publish where (:mod:`.channels`).
        limits: per-session limits (:mod:`.limits`); none by default.

    Persistence hooks (all optional; set them as attributes):
        sequencer: called with each :class:`Publication` instead of
            delivering it at once; it must call :meth:`deliver` later, in order.
        on_resume: called with (session, resume token, {topic: (epoch,
            offset)}) when a HELLO asks to resume; it must call
            ``session.complete_resume(...)`` later. When set, every WELCOME
            carries a ``resume_token``.
        on_session_change: called with a session whose subscriptions or
            state changed, so they can be saved.
    """

    roles: dict[str, Any] = {
        "broker": {
            "features": {
                "publisher_exclusion": True,
                "subscriber_blackwhite_listing": True,
                "publisher_identification": True,
                "pattern_based_subscription": True,
            }
        },
        "dealer": {"features": {"caller_identification": True}},
    }

    def __init__(
        self,
        authenticator: Authenticator,
        realms: Iterable[str] = (DEFAULT_REALM,),
        *,
        stats: Any = None,
        on_output: Callable[[], None] | None = None,
        anonymous_actions: frozenset[str] = ANONYMOUS_ACTIONS,
        meta_roles: AbstractSet[str] = META_ROLES,
        channels: ChannelPolicy | None = None,
        limits: SessionLimits = UNLIMITED,
    ) -> None:
        self.authenticator = authenticator
        #: Who may subscribe and publish where (see :mod:`.channels`).
        self.channels = channels if channels is not None else ChannelPolicy()
        self.limits = limits
        #: Recent logouts and grant changes, applied to tickets issued before them.
        self.revocations = Revocations()
        #: Distinct subscriptions and filter bytes held, against ``limits`` (all realms together).
        self.budget = SubscriptionBudget(limits)
        self.realms: dict[str, Realm] = {name: Realm(name, self._next_router_id, self.budget) for name in realms}
        if not self.realms:
            raise LocalProtocolError("a router needs at least one realm")
        self.default_realm = next(iter(self.realms))
        self.stats = stats if stats is not None else RouterStats()
        self.on_output = on_output
        self.anonymous_actions = anonymous_actions
        self.meta_roles = meta_roles
        self._dirty: list[ServerSession] = []
        self._router_id = 0
        self._random = random.SystemRandom()
        self.sequencer: Callable[[Publication], None] | None = None
        self.on_resume: Callable[[ServerSession, str, dict[str, tuple[str, int]]], None] | None = None
        self.on_session_change: Callable[[ServerSession], None] | None = None

    # Sessions ------------------------------------------------------------------

    def attach(self, codec: WireCodec, transport: Any = None, peer: str = "") -> ServerSession:
        """Return a new session for a connection that just opened."""
        return ServerSession(self, codec, transport, peer)

    def new_session_id(self) -> int:
        """Return a global-scope id (WAMP §7.1.3: random in [1, 2^53])."""
        return self._random.randint(1, MAX_ID)

    def new_resume_token(self) -> str:
        """Return a fresh, unguessable resume token."""
        return secrets.token_urlsafe(24)

    def session_changed(self, session: ServerSession) -> None:
        """Tell ``on_session_change`` that a session's state or subscriptions changed."""
        if self.on_session_change is not None:
            self.on_session_change(session)

    def _next_router_id(self) -> int:
        self._router_id = self._router_id % MAX_ID + 1
        return self._router_id

    def _mark_dirty(self, session: ServerSession) -> None:
        dirty = self._dirty
        dirty.append(session)
        if len(dirty) == 1 and self.on_output is not None:
            self.on_output()

    def take_dirty(self) -> list[ServerSession]:
        """Return and forget the sessions that have data to send."""
        dirty, self._dirty = self._dirty, []
        return dirty

    def sessions(self) -> list[ServerSession]:
        """Return the established sessions of every realm."""
        return [s for realm in self.realms.values() for s in realm.sessions.values()]

    def counts(self) -> dict[str, int]:
        """Return the number of sessions, subscriptions and registrations."""
        return {
            "sessions": sum(len(r.sessions) for r in self.realms.values()),
            "subscriptions": sum(len(r.broker.subscriptions) for r in self.realms.values()),
            "registrations": sum(len(r.dealer.registrations) for r in self.realms.values()),
        }

    def shutdown(self) -> None:
        """Send GOODBYE (``wamp.close.system_shutdown``) to every established session."""
        for session in self.sessions():
            session.shutdown()

    # Revocation ----------------------------------------------------------------

    def revoke(self, authid: str, now: float, *, grants: Grants | None = None, logout: bool = False) -> int:
        """Apply a revocation to the live sessions of user ``authid``; return how many there are.

        ``logout`` ends them (GOODBYE ``wamp.close.logout``, then the
        transport closes); otherwise ``grants``, when given, replace theirs
        from the next event on (see :mod:`.revocation`). Either is also
        remembered for tickets issued before ``now``. Anonymous sessions are
        never concerned.
        """
        self.stats.revocations += 1
        self.revocations.record(authid, grants, logout, now)
        sessions = [
            s for s in self.sessions() if s.identity is not None and not s.identity.anonymous and s.identity.authid == authid
        ]
        for session in sessions:
            if logout:
                session.end(uris.LOGOUT, "the user logged out")
            elif grants is not None:
                session.replace_grants(grants)
        return len(sessions)

    # Authorization -------------------------------------------------------------

    def authorize(
        self, identity: Identity, action: str, uri: str, grants: Grants | None = None, match: str = "exact"
    ) -> None:
        """Raise :class:`ApplicationError` unless ``identity`` may do ``action`` on ``uri``.

        Roles decide the kinds of action; the channel policy decides which
        topics may be subscribed to and published on, and which procedures
        registered and called (see :mod:`.channels`).
        """
        if action in ("publish", "register") and uri.startswith("wamp."):
            raise ApplicationError(uris.INVALID_URI, f"uri {uri!r} is reserved for the router")
        allowed = self.anonymous_actions if identity.anonymous else ACTIONS
        if action not in allowed:
            raise ApplicationError(uris.NOT_AUTHORIZED, f"{identity.authrole} sessions may not {action} {uri!r}")
        if grants is None:
            grants = grants_of(identity)
        if action in ("subscribe", "publish"):
            refused = self.channels.check(grants, action, uri, match)
        elif action == "call" and uri.startswith("wamp."):
            refused = None  # the router's own procedures: meta roles below
        else:
            refused = self.channels.check_procedure(grants, identity.authrole, action, uri)
        if refused is not None:
            raise ApplicationError(uris.NOT_AUTHORIZED, refused)
        if action == "call" and uri in meta.PROCEDURES and identity.authrole not in self.meta_roles:
            raise ApplicationError(uris.NOT_AUTHORIZED, f"{identity.authrole} sessions may not call {uri!r}")

    # Publishing ----------------------------------------------------------------

    def publish(
        self,
        realm: Realm,
        topic: str,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        options: dict[str, Any] | None = None,
        publisher: ServerSession | None = None,
        *,
        event: bool = False,
        event_id: str | None = None,
    ) -> int:
        """Publish an event in ``realm`` and return its publication id.

        The event is delivered at once, or handed to the ``sequencer`` when
        one is set. Its EVENT.Details always say who published it (advanced
        profile, "Publisher Identification": the Broker may disclose the
        publisher by policy even when not asked): a session's ``publisher``
        id, ``publisher_authid`` and ``publisher_authrole``; for an event of
        the web app (no ``publisher`` session) ``publisher_authrole`` is
        :data:`~.channels.WEB_ROLE`, which no session can have. The details
        are stored with the event and travel with it to replays and other
        nodes. ``event_id`` (the publisher's ``meta.id``) goes to the
        sequencer, which delivers each id at most once.

        Raises:
            ApplicationError: ``wamp.error.invalid_argument`` for malformed
                options, or a payload some serializer cannot carry (see
                :func:`~telegraphy.wamp.serializer.check_payload`): refused
                here, before it is stored or anyone gets it.
        """
        check_payload(args, kwargs)
        options = options or {}
        exclude_me = options.get("exclude_me", True)
        if not isinstance(exclude_me, bool):
            raise ApplicationError(uris.INVALID_ARGUMENT, "option 'exclude_me' must be a boolean")
        exclude = _session_ids(options, "exclude")
        eligible = _session_ids(options, "eligible")
        authlists = AuthLists.parse(options)
        details: dict[str, Any]
        if publisher is None:
            details = {"publisher_authrole": WEB_ROLE}
        else:
            details = {"publisher": publisher.id}
            if publisher.identity is not None:
                details["publisher_authid"] = publisher.identity.authid
                details["publisher_authrole"] = publisher.identity.authrole
        try:
            visibility = Visibility.of_event(args[0]) if args else None
        except InvalidAudience as exc:
            raise ApplicationError(uris.INVALID_ARGUMENT, str(exc)) from None
        publication = Publication(
            realm, topic, self._random.randint(1, MAX_ID), args, kwargs, details,
            publisher, exclude_me, exclude, eligible, event, visibility, authlists, event_id,
        )
        if self.sequencer is not None:
            self.sequencer(publication)
        else:
            self.deliver(publication)
        return publication.id

    def deliver(self, publication: Publication, position: tuple[str, int] | None = None) -> int:
        """Fan a publication out to its subscribers; return how many got it.

        ``position`` is the (epoch, offset) of the event in its topic's
        stream; it travels in EVENT.Details (and in ``meta`` of Telegraphy events).
        """
        details = publication.details
        if publication.publisher is None and details.get("publisher_authrole") == WEB_ROLE:
            # A web-app event, maybe from another node: its topic is the web app's.
            self.channels.web_topics.add(publication.topic)
        if position is not None:
            epoch, offset = position
            details = {**details, "epoch": epoch, "offset": offset}
            if publication.event and publication.args:
                meta = publication.args[0].get("meta")
                if isinstance(meta, dict):
                    meta["epoch"] = epoch
                    meta["offset"] = offset
        delivered = publication.realm.broker.publish(
            publication.topic, publication.id, publication.args, publication.kwargs,
            publisher=publication.publisher, exclude_me=publication.exclude_me,
            exclude=publication.exclude, eligible=publication.eligible, details=details,
            visibility=publication.visibility, target=filter_target(publication.args, publication.kwargs),
            authlists=publication.authlists,
        )
        stats = self.stats
        stats.events_published += 1
        stats.events_delivered += delivered
        return delivered

    def publish_event(self, event: dict[str, Any], realm: str | None = None) -> str:
        """Publish a Telegraphy event (see :mod:`telegraphy.event`) on the topic ``event["name"]``.

        Returns the event's ``meta.id``: the publisher's (a retried publish
        carries the same one, and the sequencer delivers it once), or a fresh
        unique id set here when it has none. The event must already be valid. Its topic is remembered as the web app's
        (:class:`~.channels.WebTopics`): no client may publish on it from now on.
        """
        meta = event.get("meta")
        if meta is None:
            meta = event["meta"] = {}
        given = meta.get("id")
        if isinstance(given, str):
            event_id = given
        else:
            # Unique already: it needs no place in the dedup window.
            event_id = meta["id"] = uuid.uuid4().hex
        self.channels.web_topics.add(event["name"])
        self.publish(
            self.realms[realm or self.default_realm], event["name"], [event], None, event=True,
            event_id=given if isinstance(given, str) else None,
        )
        return event_id


def _session_ids(options: dict[str, Any], name: str) -> frozenset[int] | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise ApplicationError(uris.INVALID_ARGUMENT, f"option {name!r} must be a list of session ids")
    return frozenset(value)
