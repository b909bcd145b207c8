"""A router-side WAMP session: the per-connection state machine, sans-I/O.

A transport creates one :class:`ServerSession` per connection with
:meth:`Router.attach`, then:

1. feeds every received WebSocket message (or SockJS frame, …) to
   :meth:`ServerSession.receive` with the current time;
2. writes out what :meth:`ServerSession.data_to_send` returns — for this
   session and for every session the router reports dirty (fan-out fills the
   outgoing lists of other sessions, see :meth:`Router.take_dirty`);
3. closes the connection when :attr:`ServerSession.close_request` is set,
   after writing the pending data;
4. calls :meth:`ServerSession.connection_lost` when the connection is gone.

Every state transition lives in this file (WAMP §5 "Sessions"):

::

    ESTABLISHING --HELLO--> CHALLENGING --AUTHENTICATE--> (RESUMING) --> ESTABLISHED
         |  \\____________________________(anonymous)_____________/      |    |
         |                                              GOODBYE(peer)  |    | router GOODBYE
         v                                                             v    v
       FAILED  <--protocol violation / ABORT--          CLOSED <--GOODBYE-- SHUTTING_DOWN

``RESUMING``: the HELLO carried a ``resume_token``; the router looks the old
session up asynchronously and calls :meth:`ServerSession.complete_resume`.

``CLOSED`` accepts a new HELLO on the same connection (WAMP §5.2: the
transport may be reused); ``FAILED`` means the transport must close.

No input makes :meth:`ServerSession.receive` raise: a bad message gets ABORT
(or ERROR for a request that fails), and the texts of both are cut to a few
hundred characters and made encodable (:func:`~telegraphy.wamp.serializer.safe_text`)
however odd the input they quote. A bug of our own met while handling a
message is logged and ends that session only (ABORT ``telegraphy.error.internal``,
close code 1011).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .audience import ANONYMOUS, Grants, InvalidAudience, Visibility, grants_of
from .auth import Identity, PendingChallenge
from .broker import AuthLists, filter_target
from .errors import ApplicationError, AuthenticationFailed, ProtocolViolation, WampError, uris
from .limits import PublishThrottle, Verdict
from .serializer import safe_text, unportable
from .messages import (
    MAX_ID,
    Abort,
    Authenticate,
    Call,
    Error,
    Goodbye,
    Hello,
    Invocation,
    Message,
    Publish,
    Published,
    Register,
    Registered,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
    parse,
)

if TYPE_CHECKING:
    from .router import Realm, Router
    from .serializer import WireCodec

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "Missed",
    "Resumption",
    "ServerSession",
    "SessionState",
]

logger = logging.getLogger("telegraphy.wamp")

# WebSocket close codes (RFC 6455 §7.4.1) the transport uses after a session ends.
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011

#: The ABORT reason when handling a message met a bug of ours (never the peer's fault).
INTERNAL_ERROR = "telegraphy.error.internal"
#: Longest resume token accepted in HELLO.Details (ours are 32 characters).
MAX_RESUME_TOKEN = 128


class SessionState(enum.Enum):
    ESTABLISHING = "establishing"
    CHALLENGING = "challenging"
    RESUMING = "resuming"
    ESTABLISHED = "established"
    SHUTTING_DOWN = "shutting_down"
    CLOSED = "closed"
    FAILED = "failed"


class ServerSession:
    """The router's side of one WAMP connection.

    Args:
        router: the router the session joins.
        codec: the wire codec of the connection (serializer + framing).
        transport: an opaque object the transport keeps here to find its
            connection again (for example when flushing dirty sessions).
        peer: a description of the peer for logs and ``wamp.session`` meta
            data, such as ``"tcp4:127.0.0.1:52114"``.
    """

    __slots__ = (
        "__weakref__",
        "_challenge",
        "_hello",
        "_next_request",
        "_now",
        "_out",
        "_throttle",
        "_router",
        "close_request",
        "codec",
        "id",
        "grants",
        "identity",
        "peer",
        "realm",
        "registrations",
        "resume_token",
        "state",
        "subscriptions",
        "transport",
    )

    def __init__(self, router: Router, codec: WireCodec, transport: Any = None, peer: str = "") -> None:
        self._router = router
        self.codec = codec
        self.transport = transport
        self.peer = peer
        self.state = SessionState.ESTABLISHING
        self.id: int | None = None
        self.realm: Realm | None = None
        self.identity: Identity | None = None
        #: What the session may see (audiences); replaced on live revocation.
        self.grants: Grants = ANONYMOUS
        self.subscriptions: set[int] = set()
        self.registrations: set[int] = set()
        #: (code, reason) once the transport should close after flushing.
        self.close_request: tuple[int, str] | None = None
        self._out: list[bytes] = []
        self._challenge: PendingChallenge | None = None
        self._hello: Hello | None = None
        self._next_request = 0
        #: The time given with the message being handled (or the last one).
        self._now: float | None = None
        #: The token a reconnecting client presents to resume this session.
        self.resume_token: str | None = None
        #: The client PUBLISH rate limit, from the router's limits.
        self._throttle: PublishThrottle | None = None

    def __repr__(self) -> str:
        return f"ServerSession({self.id}, {self.state.value}, {self.peer})"

    # Output ------------------------------------------------------------------

    def deliver(self, frame: bytes) -> None:
        """Queue prepared wire bytes for this connection (the fan-out hot path)."""
        out = self._out
        if not out:
            self._router._mark_dirty(self)
        out.append(frame)

    def send(self, message: Message) -> None:
        """Encode and queue one message for this connection."""
        self.deliver(self.codec.encode(message.marshal()))

    def data_to_send(self) -> list[bytes]:
        """Return and forget the frames waiting to be written, oldest first."""
        out = self._out
        if not out:
            return out
        self._out = []
        return out

    @property
    def pending_frames(self) -> int:
        return len(self._out)

    def next_request_id(self) -> int:
        """Return the next session-scope request id (WAMP §7.1.3: 1, 2, 3, …)."""
        self._next_request = self._next_request % MAX_ID + 1
        return self._next_request

    # Input -------------------------------------------------------------------

    def receive(self, data: bytes | str, now: float) -> None:
        """Handle one received transport message.

        Protocol violations never raise: the session sends ABORT and sets
        :attr:`close_request`. Nothing here affects other sessions beyond the
        WAMP semantics of what was received.
        """
        if self.state is SessionState.FAILED:
            return
        self._router.stats.messages_received += 1
        self._now = now
        try:
            message = parse(self.codec.decode(data))
            self._dispatch(message, now)
        except ProtocolViolation as exc:
            self._router.stats.protocol_errors += 1
            logger.info("protocol violation from %s (session %s): %s", self.peer, self.id, safe_text(exc.message))
            self._fail(exc.uri, exc.message, CLOSE_PROTOCOL_ERROR)
        except RecursionError:
            self._router.stats.protocol_errors += 1
            logger.info("protocol violation from %s (session %s): nested too deeply", self.peer, self.id)
            self._fail(uris.PROTOCOL_VIOLATION, "message nested too deeply", CLOSE_PROTOCOL_ERROR)
        except Exception:
            # A bug of ours: the peer gets a clean end, the log the details.
            logger.exception("internal error handling a message from %s (session %s)", self.peer, self.id)
            if self.close_request is None:
                self._fail(INTERNAL_ERROR, "internal error: the session cannot go on", CLOSE_INTERNAL_ERROR)

    def _dispatch(self, message: Message, now: float) -> None:
        state = self.state
        if state is SessionState.ESTABLISHED:
            handler = _HANDLERS.get(type(message))
            if handler is None:
                raise ProtocolViolation(f"unexpected {message.NAME} from a client in an established session")
            handler(self, message)
        elif state is SessionState.ESTABLISHING or state is SessionState.CLOSED:
            if not isinstance(message, Hello):
                raise ProtocolViolation(f"unexpected {message.NAME} before HELLO")
            self._on_hello(message, now)
        elif state is SessionState.CHALLENGING:
            if isinstance(message, Abort):
                self._leave(SessionState.CLOSED)
                return
            if not isinstance(message, Authenticate):
                raise ProtocolViolation(f"unexpected {message.NAME} while waiting for AUTHENTICATE")
            self._on_authenticate(message)
        elif state is SessionState.RESUMING:
            # The router is fetching the session to resume; the peer waits
            # for WELCOME. Only giving up is meaningful now.
            if isinstance(message, Abort):
                self._leave(SessionState.CLOSED)
                return
            raise ProtocolViolation(f"unexpected {message.NAME} before WELCOME")
        elif state is SessionState.SHUTTING_DOWN:
            # WAMP §5.3: after sending GOODBYE, wait for the peer's GOODBYE and
            # ignore everything else.
            if isinstance(message, Goodbye):
                self._leave(SessionState.CLOSED)
                self.close_request = (CLOSE_NORMAL, message.reason)

    # Session establishment -----------------------------------------------------

    def _on_hello(self, hello: Hello, now: float) -> None:
        realm = self._router.realms.get(hello.realm)
        if realm is None:
            self._abort(uris.NO_SUCH_REALM, f"no realm {hello.realm!r} on this router")
            return
        self.realm = realm
        self._hello = hello
        self.resume_token = None
        self.id = self._router.new_session_id()
        try:
            outcome = self._router.authenticator.begin(hello, self.id, now)
        except AuthenticationFailed as exc:
            self._abort(exc.uri, exc.message)
            return
        if isinstance(outcome, Identity):
            self._welcome(outcome)
        else:
            self._challenge = outcome
            self.state = SessionState.CHALLENGING
            self.send(outcome.challenge)

    def _on_authenticate(self, message: Authenticate) -> None:
        assert self._challenge is not None
        pending, self._challenge = self._challenge, None
        try:
            identity = self._router.authenticator.complete(pending, message)
        except AuthenticationFailed as exc:
            logger.info("authentication failed for %s: %s", self.peer, exc.message)
            self._abort(exc.uri, exc.message)
            return
        self._welcome(identity)

    def _welcome(self, identity: Identity) -> None:
        """The peer is authenticated: resume its earlier session if it asks to, else start afresh."""
        hello, self._hello = self._hello, None
        now = self._now if self._now is not None else 0.0
        try:
            # A revocation since the ticket was issued wins over its claims.
            self.grants = self._router.revocations.grants_for(identity, grants_of(identity), now)
        except AuthenticationFailed as exc:
            self._abort(exc.uri, exc.message)
            return
        self.identity = identity
        self._throttle = self._router.limits.throttle(now)
        token = hello.details.get("resume_token") if hello is not None else None
        if token is None or self._router.on_resume is None:
            self._establish({})
            return
        offsets = hello.details.get("resume_offsets", {}) if hello is not None else {}
        if not isinstance(token, str) or not _valid_offsets(offsets):
            raise ProtocolViolation("invalid 'resume_token' or 'resume_offsets' in HELLO.Details")
        if not _plausible_token(token):
            # Not one of ours (they are short and ASCII): never looked up.
            self._establish({"resumed": False, "resume_error": "unknown or expired resume token"})
            return
        # The router answers asynchronously with complete_resume().
        self.state = SessionState.RESUMING
        self._router.on_resume(self, token, {topic: (epoch, offset) for topic, (epoch, offset) in offsets.items()})

    def complete_resume(self, restored: Resumption | None) -> None:
        """Finish a HELLO that asked to resume: WELCOME, restored subscriptions, missed events.

        ``restored`` is ``None`` when the token is unknown, expired or belongs
        to someone else: the peer then gets a fresh session, with
        ``resumed: false`` and ``resume_error`` saying why (WELCOME.Details).
        Call it once; it does nothing if the connection went away meanwhile.
        """
        if self.state is not SessionState.RESUMING:
            return
        if restored is None:
            self._establish({"resumed": False, "resume_error": "unknown or expired resume token"})
            return
        assert self.realm is not None
        broker = self.realm.broker
        listed: list[dict[str, Any]] = []
        for topic, match, options in restored.subscriptions:
            try:
                # Grants may have changed since: a subscription is restored only if still allowed.
                self._authorize("subscribe", topic, match)
                sub = broker.subscribe(self, topic, match, self._now, options)
            except ApplicationError as exc:
                restored.recovered[topic] = False
                restored.errors[topic] = exc.message
                continue
            self.subscriptions.add(sub.id)
            listed.append({"topic": topic, "match": match, "subscription": sub.id, **sub.options})
        self.resume_token = restored.token
        self._establish(
            {"resumed": True, "subscriptions": listed, "recovered": restored.recovered, "recovery_errors": restored.errors}
        )
        # Missed events go through the broker's delivery policy, as live ones do:
        # one EVENT per subscription of this session that matches, with the same
        # audiences, projections, filters and exclude/eligible lists.
        skipped = 0
        first: tuple[str, int, str] | None = None
        for missed in restored.missed:
            args, kwargs = missed.args, missed.kwargs
            try:
                visibility = Visibility.of_event(args[0]) if args else None
            except InvalidAudience:
                continue
            try:
                broker.publish(
                    missed.topic, missed.publication, args, kwargs, exclude=missed.exclude, eligible=missed.eligible,
                    details=missed.details, visibility=visibility, target=filter_target(args, kwargs),
                    only=self, only_id=restored.session_id, authlists=missed.authlists,
                )
            except Exception as exc:
                # A stored event this peer cannot receive (stored before its
                # payload was checked, damaged, or one its serializer cannot
                # carry) is skipped: the ones after it are still replayed.
                skipped += 1
                if first is None:
                    first = (missed.topic, missed.publication, type(exc).__name__)
        if first is not None:
            logger.warning(
                "skipped %d stored event(s) that could not be replayed to session %s (first: %r publication %s, %s)",
                skipped, self.id, *first,
            )

    def _establish(self, extra: dict[str, Any]) -> None:
        identity = self.identity
        assert self.realm is not None and self.id is not None and identity is not None
        self.state = SessionState.ESTABLISHED
        self.realm.sessions[self.id] = self
        details = {
            "realm": self.realm.name,
            "authid": identity.authid,
            "authrole": identity.authrole,
            "authmethod": identity.authmethod,
            "authprovider": identity.authprovider,
            "roles": self._router.roles,
            **extra,
        }
        if self._router.on_resume is not None:
            if self.resume_token is None:
                self.resume_token = self._router.new_resume_token()
            details["resume_token"] = self.resume_token
        self.send(Welcome(self.id, details))
        self._router.session_changed(self)

    def _abort(self, reason: str, message: str) -> None:
        """Refuse the session being opened: ABORT, then the transport closes."""
        self.send(Abort({"message": safe_text(message)}, reason))
        code = CLOSE_PROTOCOL_ERROR if reason == uris.PROTOCOL_VIOLATION else CLOSE_POLICY
        self._leave(SessionState.FAILED)
        self.close_request = (code, reason)

    def _fail(self, reason: str, message: str, code: int) -> None:
        self.send(Abort({"message": safe_text(message)}, reason))
        self._leave(SessionState.FAILED)
        self.close_request = (code, reason)

    # Session close -----------------------------------------------------------

    def _on_goodbye(self, message: Goodbye) -> None:
        # WAMP §5.3: answer GOODBYE with GOODBYE and wamp.close.goodbye_and_out.
        self.send(Goodbye({}, uris.GOODBYE_AND_OUT))
        self._leave(SessionState.CLOSED)

    def shutdown(self, reason: str = uris.SYSTEM_SHUTDOWN, message: str = "the router is shutting down") -> None:
        """Start closing from the router's side with GOODBYE (e.g. on SIGTERM).

        A session not yet established is aborted instead.
        """
        if self.state is SessionState.ESTABLISHED:
            self.send(Goodbye({"message": message}, reason))
            self._leave(SessionState.SHUTTING_DOWN)
        elif self.state in (SessionState.ESTABLISHING, SessionState.CHALLENGING, SessionState.RESUMING):
            self._fail(reason, message, CLOSE_NORMAL)

    def end(self, reason: str, message: str) -> None:
        """End the session from the router's side at once: GOODBYE, then the transport closes.

        Unlike :meth:`shutdown`, no answering GOODBYE is awaited, and the
        session ends as if the peer had said GOODBYE (it cannot be resumed).
        Used for a logout (``wamp.close.logout``).
        """
        if self.state is SessionState.ESTABLISHED:
            self.send(Goodbye({"message": message}, reason))
            self._leave(SessionState.CLOSED)
            self.close_request = (CLOSE_NORMAL, reason)
        elif self.state in (SessionState.ESTABLISHING, SessionState.CHALLENGING, SessionState.RESUMING):
            self._fail(reason, message, CLOSE_NORMAL)

    def replace_grants(self, grants: Grants) -> list[int]:
        """Judge everything from now on with ``grants``; return the subscriptions dropped.

        Exact subscriptions to topics the channel policy no longer lets the
        session subscribe to are dropped, without a message to the peer
        (the events simply stop). Pattern subscriptions stay: every event
        they match is checked against the grants anyway. Registrations the
        procedure policy no longer allows are dropped the same way (calls
        then get ``wamp.error.no_such_procedure``).
        """
        self.grants = grants
        realm = self.realm
        if realm is None or self.state is not SessionState.ESTABLISHED:
            return []
        dropped = []
        for subscription_id in sorted(self.subscriptions):
            sub = realm.broker.get(subscription_id)
            if sub is None or sub.match != "exact":
                continue
            if self._router.channels.check(grants, "subscribe", sub.topic) is not None:
                realm.broker.unsubscribe(self, subscription_id)
                self.subscriptions.discard(subscription_id)
                dropped.append(subscription_id)
        authrole = self.identity.authrole if self.identity is not None else ""
        for registration_id in sorted(self.registrations):
            registration = realm.dealer.get(registration_id)
            if registration is not None and self._router.channels.check_procedure(grants, authrole, "register", registration.procedure):
                realm.dealer.unregister(self, registration_id)
                self.registrations.discard(registration_id)
        if dropped:
            self._router.session_changed(self)
        return dropped

    def connection_lost(self) -> None:
        """The transport is gone: forget the session everywhere."""
        self._leave(SessionState.FAILED)
        self._out = []

    def _leave(self, state: SessionState) -> None:
        """Detach from the realm (subscriptions, registrations, calls) and move to ``state``."""
        realm = self.realm
        if realm is not None and self.id is not None and realm.sessions.get(self.id) is self:
            del realm.sessions[self.id]
            realm.broker.remove_session(self, self.subscriptions)
            realm.dealer.remove_session(self, self.registrations)
        self.subscriptions.clear()
        self.registrations.clear()
        self._challenge = None
        self._hello = None
        self.realm = None
        previous, self.state = self.state, state
        if previous is SessionState.ESTABLISHED:
            # The router keeps a session that ended without GOODBYE for a
            # later resume, and forgets one that said GOODBYE.
            self._router.session_changed(self)

    # Established session -------------------------------------------------------

    def _request_error(self, request: Message, request_id: int, exc: WampError) -> None:
        self.send(Error(request.TYPE, request_id, {}, exc.uri, [safe_text(exc.message)]))

    def _authorize(self, action: str, uri: str, match: str = "exact") -> None:
        assert self.identity is not None
        limit = self._router.limits.max_uri_length
        if limit and len(uri) > limit:
            # Every topic a session subscribes to costs memory (broker, stored
            # session, stream positions): its length is bounded. Not echoed back.
            raise ApplicationError(uris.INVALID_URI, f"uri too long ({len(uri)} characters, max {limit})")
        try:
            self._router.authorize(self.identity, action, uri, self.grants, match)
        except ApplicationError as exc:
            if exc.uri == uris.NOT_AUTHORIZED:
                self._router.stats.requests_unauthorized += 1
            raise

    def _throttled(self, message: Publish) -> bool:
        """Apply the publish rate limit; return whether the PUBLISH is refused (answered already)."""
        throttle = self._throttle
        if throttle is None:
            return False
        verdict = throttle.check(self._now if self._now is not None else 0.0)
        if verdict is Verdict.ALLOWED:
            return False
        stats = self._router.stats
        if verdict is Verdict.FLOODING:
            # Refused again and again: not a burst but a flood. Other sessions
            # must not pay for it, so this one ends (close code 1008).
            stats.sessions_flooding += 1
            logger.warning("closing session %s of %s: publish flood", self.id, self.peer)
            self._fail(uris.FLOODING, f"over {throttle.flood_limit} publishes refused within {throttle.flood_window:g} s", CLOSE_POLICY)
            return True
        stats.publishes_throttled += 1
        if message.options.get("acknowledge"):
            rate = throttle.bucket.rate
            self._request_error(
                message,
                message.request,
                ApplicationError(uris.LIMIT_EXCEEDED, f"publish rate over {rate:g}/s (burst {throttle.bucket.burst:g})"),
            )
        return True

    def _on_publish(self, message: Publish) -> None:
        assert self.realm is not None
        options = message.options
        if self._throttled(message):
            return
        try:
            self._authorize("publish", message.topic)
            publication = self._router.publish(self.realm, message.topic, message.args, message.kwargs, options, publisher=self)
        except ApplicationError as exc:
            if options.get("acknowledge"):
                self._request_error(message, message.request, exc)
            return
        if options.get("acknowledge"):
            self.send(Published(message.request, publication))

    def _on_subscribe(self, message: Subscribe) -> None:
        assert self.realm is not None
        try:
            self._authorize("subscribe", message.topic, message.options.get("match", "exact"))
        except ApplicationError as exc:
            self._request_error(message, message.request, exc)
            return
        broker = self.realm.broker
        try:
            sub = broker.subscribe(self, message.topic, message.options.get("match", "exact"), self._now, message.options)
        except ApplicationError as exc:
            if exc.uri == uris.LIMIT_EXCEEDED:
                self._router.stats.subscriptions_over_budget += 1
            self._request_error(message, message.request, exc)
            return
        limit = self._router.limits.max_subscriptions
        if limit and sub.id not in self.subscriptions and len(self.subscriptions) >= limit:
            # Subscribing again to what the session holds stays allowed (same id).
            broker.unsubscribe(self, sub.id)
            self._router.stats.subscriptions_refused += 1
            self._request_error(
                message, message.request, ApplicationError(uris.LIMIT_EXCEEDED, f"a session may hold at most {limit} subscriptions")
            )
            return
        self.subscriptions.add(sub.id)
        self.send(Subscribed(message.request, sub.id))
        self._router.session_changed(self)

    def _on_unsubscribe(self, message: Unsubscribe) -> None:
        assert self.realm is not None
        try:
            self.realm.broker.unsubscribe(self, message.subscription)
        except ApplicationError as exc:
            self._request_error(message, message.request, exc)
            return
        self.subscriptions.discard(message.subscription)
        self.send(Unsubscribed(message.request))
        self._router.session_changed(self)

    def _on_call(self, message: Call) -> None:
        assert self.realm is not None
        try:
            self._authorize("call", message.procedure)
            self.realm.dealer.call(self, message)
        except ApplicationError as exc:
            self._request_error(message, message.request, exc)

    def _on_register(self, message: Register) -> None:
        assert self.realm is not None
        try:
            self._authorize("register", message.procedure)
            registration = self.realm.dealer.register(self, message.procedure, message.options)
        except ApplicationError as exc:
            self._request_error(message, message.request, exc)
            return
        self.registrations.add(registration.id)
        self.send(Registered(message.request, registration.id))

    def _on_unregister(self, message: Unregister) -> None:
        assert self.realm is not None
        try:
            self.realm.dealer.unregister(self, message.registration)
        except ApplicationError as exc:
            self._request_error(message, message.request, exc)
            return
        self.registrations.discard(message.registration)
        self.send(Unregistered(message.request))

    def _on_yield(self, message: Yield) -> None:
        assert self.realm is not None
        self.realm.dealer.yield_(self, message)

    def _on_error(self, message: Error) -> None:
        assert self.realm is not None
        if message.request_type != Invocation.TYPE:
            raise ProtocolViolation(f"invalid value {message.request_type} for 'request_type' in ERROR: a client only sends ERROR for INVOCATION")
        self.realm.dealer.invocation_error(self, message)


_HANDLERS: dict[type[Message], Callable[[ServerSession, Any], None]] = {
    Publish: ServerSession._on_publish,
    Subscribe: ServerSession._on_subscribe,
    Unsubscribe: ServerSession._on_unsubscribe,
    Call: ServerSession._on_call,
    Register: ServerSession._on_register,
    Unregister: ServerSession._on_unregister,
    Yield: ServerSession._on_yield,
    Error: ServerSession._on_error,
    Goodbye: ServerSession._on_goodbye,
}


@dataclass(frozen=True, slots=True)
class Missed:
    """One event a resuming session missed, as its publication was stored.

    Attributes:
        topic: the event's topic.
        publication: its publication id.
        details: its EVENT.Details (with ``epoch`` and ``offset``).
        args, kwargs: its payload, as published (projections apply on replay).
        exclude, eligible: its session-id lists (``None``: none given).
        authlists: its lists by authid and authrole, if any.
    """

    topic: str
    publication: int
    details: dict[str, Any]
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    exclude: frozenset[int] | None = None
    eligible: frozenset[int] | None = None
    authlists: AuthLists | None = None


@dataclass(frozen=True, slots=True)
class Resumption:
    """What the router found for a resume token (see :meth:`ServerSession.complete_resume`).

    Attributes:
        token: the resume token (kept for the resumed session).
        subscriptions: (topic, match, options) to restore; options may carry
            the subscription's ``filter``/``exclude``.
        recovered: per topic, whether every missed event is in ``missed``.
        errors: per topic that was not recovered, why ("history trimmed", …).
        missed: the missed events (:class:`Missed`), in order.
        session_id: the id the session had before (its stored record's);
            ``exclude``/``eligible`` of missed events are judged by it, since
            that is the id their publishers could name.
    """

    token: str
    subscriptions: list[tuple[str, str, dict[str, Any]]]
    recovered: dict[str, bool] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    missed: list[Missed] = field(default_factory=list)
    session_id: int | None = None


def _plausible_token(token: str) -> bool:
    """Whether ``token`` may be one of ours: a short ASCII string (it is looked up in the store as it is)."""
    return token.isascii() and len(token) <= MAX_RESUME_TOKEN


def _valid_offsets(offsets: Any) -> bool:
    """``resume_offsets`` is ``{topic: [epoch, offset]}`` (epoch a string, offset an integer >= 0)."""
    if not isinstance(offsets, dict):
        return False
    for topic, position in offsets.items():
        if not isinstance(topic, str) or not isinstance(position, list) or len(position) != 2:
            return False
        epoch, offset = position
        if not isinstance(epoch, str) or type(offset) is not int or offset < 0:
            return False
    # Topics and epochs are looked up in the store: portable strings only.
    return unportable(offsets, "resume_offsets") is None
