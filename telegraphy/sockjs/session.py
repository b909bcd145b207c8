"""SockJS sessions and their registry, sans-I/O.

A :class:`SockJSSession` outlives the HTTP requests that carry it: messages
for the client are queued (as JSON string literals) until a *receiver* — a
polling request, a streaming response, a WebSocket — is attached, and are
written to it as ``a[...]`` frames. Time is passed in as ``now``
(``time.monotonic()`` seconds); the core starts no timers: the transport
calls :meth:`SessionRegistry.expire` about once a second.

How a transport uses it:

1. a receiving request finds or creates the session
   (:meth:`SessionRegistry.open`; WebSockets use
   :meth:`SessionRegistry.open_bound`) and calls :meth:`SockJSSession.attach`
   with a :class:`Receiver`; the session writes frames to the receiver and
   calls :meth:`Receiver.finish` when the response should end (a polling
   request after one frame, a streaming one past its byte limit, any after
   a close frame);
2. a send request calls :meth:`SockJSSession.receive` with the decoded
   messages; they go to the session's :class:`SessionHandler`;
3. a receiver whose connection ends on its own (the client went away) is
   reported with :meth:`SockJSSession.detach`.

States and transitions, all in this file (sockjs-protocol-0.3.3, "Session
URLs" and "Handling close")::

    CONNECTING --first receiver: "o"--> OPEN --close(code, reason)--> CLOSING
                                         |   --receiver lost: 1002 ---^   |
                                         |                                | disconnect delay
                                         +--no receiver for the delay--> CLOSED <-+

- OPEN: messages are delivered; a second receiver while one is attached
  gets ``c[2010,"Another connection still open"]`` and the session is not
  disturbed; with a receiver attached, a heartbeat ``h`` goes out when
  nothing was written for the heartbeat interval.
- CLOSING: every receiver gets what was still queued, then the close frame
  (``c[3000,"Go away!"]``), until the disconnect delay after the close.
- CLOSED: forgotten by the registry; the same id then starts a new session.

Every request after the first must come from the address that opened the
session (:attr:`SockJSSession.peer`, the client address after the gateway's
proxy handling), unless :attr:`SessionOptions.bind_peer` is off: the
session id travels in URLs and access logs, so it must not be the only
thing a client needs to read or write someone else's session.
:meth:`SessionRegistry.get` with a ``peer`` answers a request from
elsewhere exactly as one for a session that does not exist
(:class:`~telegraphy.sockjs.errors.SessionNotFound`).

A session bound to a WebSocket (``bound=True``) lives exactly as long as
its one connection: it is not findable by id (the protocol lets two
WebSockets share an id) and ends as soon as the connection does.

The :class:`SessionHandler` hears ``on_open``, ``on_messages`` and, once,
``on_close`` when the session stops being open for any reason.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from telegraphy.websocket import CLOSE_SLOW_CONSUMER

from .errors import LocalProtocolError, SessionNotFound
from .frames import ANOTHER_CONNECTION, HEARTBEAT, OPEN, close_frame, encode_literal, message_frame

__all__ = [
    "CLOSE_GO_AWAY",
    "CLOSE_INTERRUPTED",
    "CLOSE_SLOW_CONSUMER",
    "HandlerFactory",
    "Receiver",
    "SessionHandler",
    "SessionOptions",
    "SessionRegistry",
    "SessionState",
    "SockJSSession",
]

logger = logging.getLogger("telegraphy.sockjs")

#: The close the protocol uses when a receiving request is cut by the network.
CLOSE_INTERRUPTED = (1002, "Connection interrupted")
#: The close of the test suite's ``close`` service.
CLOSE_GO_AWAY = (3000, "Go away!")


class SessionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Receiver(Protocol):
    """A request (or WebSocket) the session writes frames to.

    ``response_limit`` is how many bytes it takes before the session ends it
    with :meth:`finish`: ``0`` for polling (one frame per request), the
    streaming limit for streaming responses, ``math.inf`` for WebSockets.
    """

    response_limit: float

    def write_frame(self, frame: bytes) -> int:
        """Write one frame in the transport's wrapping; return the bytes written."""
        ...

    def finish(self) -> None:
        """End the response (or close the WebSocket); the session forgets the receiver first."""
        ...


class SessionHandler(Protocol):
    """What a SockJS service does with one session (echo, WAMP, …)."""

    def on_open(self, now: float) -> None:
        """The ``o`` frame was just sent."""
        ...

    def on_messages(self, messages: list[str], now: float) -> None:
        """Messages arrived from the client, in order."""
        ...

    def on_close(self) -> None:
        """The session is no longer open (closed by either side, or timed out); called once."""
        ...


HandlerFactory = Callable[["SockJSSession"], SessionHandler]


@dataclass(frozen=True)
class SessionOptions:
    """Timing and limits shared by the sessions of one service.

    Attributes:
        heartbeat: seconds without a frame before an ``h`` frame is sent to
            an attached receiver (sockjs-protocol-0.3.3: "typical delay is
            25 seconds and should be configurable").
        disconnect_delay: seconds a session survives with no receiver
            attached (the spec's session timeout, 5 s).
        max_queue: bytes of queued literals a session holds while no
            receiver is attached before it is closed as a slow consumer.
        bind_peer: refuse requests for a session from any address but the
            one that opened it (``--sockjs-bind-peer``).
    """

    heartbeat: float = 25.0
    disconnect_delay: float = 5.0
    max_queue: int = 4 * 1024 * 1024
    bind_peer: bool = True


class SockJSSession:
    """One SockJS session; create it through a :class:`SessionRegistry`."""

    __slots__ = (
        "_close_frame",
        "_expires_at",
        "_heartbeat_at",
        "_queue",
        "_queued",
        "_sent",
        "bound",
        "close_reason",
        "handler",
        "id",
        "options",
        "peer",
        "receiver",
        "state",
    )

    def __init__(
        self, session_id: str, factory: HandlerFactory, options: SessionOptions, now: float, *, bound: bool = False, peer: str = ""
    ) -> None:
        self.id = session_id
        self.bound = bound
        #: Who opened the session (an address), for the handler and logs.
        self.peer = peer
        self.state = SessionState.CONNECTING
        self.receiver: Receiver | None = None
        #: (code, reason) once the session is closing.
        self.close_reason: tuple[int, str] | None = None
        self.options = options
        self._queue: list[bytes] = []
        self._queued = 0
        self._sent = 0.0
        self._close_frame = b""
        self._heartbeat_at: float | None = None
        # A session nobody attaches to expires like one whose receiver left.
        self._expires_at: float | None = now + options.disconnect_delay
        self.handler = factory(self)

    def __repr__(self) -> str:
        return f"SockJSSession({self.id!r}, {self.state.value})"

    def admits(self, peer: str) -> bool:
        """Whether a request from ``peer`` may use this session (see :attr:`SessionOptions.bind_peer`)."""
        return self.peer == peer or not self.options.bind_peer

    # Receivers -----------------------------------------------------------------

    def attach(self, receiver: Receiver, now: float) -> bool:
        """Attach a receiving request; return False when it was refused.

        A receiver arriving while another one is attached is refused: it is
        written ``c[2010,"Another connection still open"]`` and finished. A
        closing session writes what was still queued, then its close frame.

        Raises:
            LocalProtocolError: the session is closed (the registry never
                returns closed sessions).
        """
        if self.receiver is not None:
            receiver.write_frame(ANOTHER_CONNECTION)
            receiver.finish()
            return False
        if self.state is SessionState.CLOSED:
            raise LocalProtocolError(f"session {self.id!r} is closed: open a new one from the registry")
        self.receiver = receiver
        self._sent = 0.0
        self._heartbeat_at = now + self.options.heartbeat
        if self.state is SessionState.OPEN:
            self._expires_at = None
        elif self.state is SessionState.CONNECTING:
            self._expires_at = None
            self.state = SessionState.OPEN
            self._write(OPEN)
            self.handler.on_open(now)
        self._flush()
        return True

    def detach(self, receiver: Receiver, now: float) -> None:
        """Report that ``receiver``'s connection ended on its own (the client went away).

        An open session then closes with ``c[1002,"Connection interrupted"]``
        (sockjs-protocol-0.3.3 "Handling close": the state is undefined,
        messages may have been lost). A bound session ends at once.
        Receivers the session finished itself, or refused, are ignored.
        """
        if receiver is not self.receiver:
            return
        self.receiver = None
        if self.bound:
            self._end()
            return
        if self.state is SessionState.OPEN:
            self._expires_at = now + self.options.disconnect_delay
            self.close(*CLOSE_INTERRUPTED)

    # Messages --------------------------------------------------------------------

    def receive(self, messages: list[str], now: float) -> None:
        """Hand messages from the client to the handler; dropped unless the session is open."""
        if messages and self.state is SessionState.OPEN:
            self.handler.on_messages(messages, now)

    def send(self, messages: list[str]) -> bool:
        """Send message texts to the client; see :meth:`send_literals`."""
        return self.send_literals([encode_literal(message) for message in messages])

    def send_literals(self, literals: list[bytes]) -> bool:
        """Send messages already encoded with :func:`~telegraphy.sockjs.frames.encode_literal`.

        They are written at once when a receiver is attached, queued
        otherwise. Returns False when this pushed the queue over
        ``max_queue``: the queue is dropped and the session closed with
        :data:`CLOSE_SLOW_CONSUMER`. Sends to a session that is not open are
        dropped (and return True).
        """
        if self.state is not SessionState.OPEN or not literals:
            return True
        self._queue.extend(literals)
        if self.receiver is not None:
            self._flush()
            return True
        self._queued += sum(len(literal) for literal in literals)
        if self._queued > self.options.max_queue:
            self._queue.clear()
            self._queued = 0
            self.close(*CLOSE_SLOW_CONSUMER)
            return False
        return True

    @property
    def pending(self) -> int:
        """How many messages are queued for the next receiver."""
        return len(self._queue)

    # Closing ---------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close the session with ``c[code,"reason"]``, written now or to the next receiver.

        What was queued before is still delivered first. The handler hears
        ``on_close`` (if the session was open). Closing twice does nothing.
        """
        if self.state is SessionState.CLOSING or self.state is SessionState.CLOSED:
            return
        was_open = self.state is SessionState.OPEN
        self.state = SessionState.CLOSING
        self.close_reason = (code, reason)
        self._close_frame = close_frame(code, reason)
        if was_open:
            self.handler.on_close()
        self._flush()

    def tick(self, now: float) -> bool:
        """Send a heartbeat if one is due, expire the session if its time is up.

        Returns True once the session is closed and can be forgotten.
        """
        if self.state is SessionState.CLOSED:
            return True
        if self.receiver is not None:
            if self._heartbeat_at is None:
                self._heartbeat_at = now + self.options.heartbeat
            elif now >= self._heartbeat_at and self.state is SessionState.OPEN:
                self._write(HEARTBEAT)
            return False
        if self._expires_at is None:
            # The receiver was finished in a call that had no time (a write
            # from the fan-out): the delay starts now.
            self._expires_at = now + self.options.disconnect_delay
            return False
        if now >= self._expires_at:
            self._end()
            return True
        return False

    # Internals -------------------------------------------------------------------

    def _flush(self) -> None:
        while self.receiver is not None:
            if self._queue:
                frame = message_frame(self._queue)
                self._queue = []
                self._queued = 0
                self._write(frame)
            elif self.state is SessionState.CLOSING:
                self._write(self._close_frame)
                self._release()
            else:
                return

    def _write(self, frame: bytes) -> None:
        receiver = self.receiver
        if receiver is None:
            raise LocalProtocolError("no receiver to write to")
        self._sent += receiver.write_frame(frame)
        self._heartbeat_at = None
        if self._sent >= receiver.response_limit:
            self._release()

    def _release(self) -> None:
        """Forget the receiver and end its response."""
        receiver = self.receiver
        if receiver is None:
            return
        self.receiver = None
        if self.state is SessionState.OPEN:
            self._expires_at = None  # set at the next tick
        receiver.finish()
        if self.bound:
            self._end()

    def _end(self) -> None:
        was_open = self.state is SessionState.OPEN
        self.state = SessionState.CLOSED
        self._queue = []
        self._queued = 0
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.finish()
        if was_open:
            self.handler.on_close()


class SessionRegistry:
    """The sessions of one SockJS service, by id.

    Args:
        factory: makes the :class:`SessionHandler` of each new session.
        options: timing and limits of every session.
    """

    def __init__(self, factory: HandlerFactory, options: SessionOptions | None = None) -> None:
        self.factory = factory
        self.options = options or SessionOptions()
        self._sessions: dict[str, SockJSSession] = {}
        self._bound: set[SockJSSession] = set()
        self._bound_ids = 0

    def __len__(self) -> int:
        return len(self._sessions) + len(self._bound)

    def __iter__(self) -> Iterator[SockJSSession]:
        yield from list(self._sessions.values())
        yield from list(self._bound)

    def get(self, session_id: str, peer: str | None = None) -> SockJSSession | None:
        """Return the live session with this id, or None.

        Raises:
            SessionNotFound: ``peer`` is given and the session may not be
                used from there (:meth:`SockJSSession.admits`).
        """
        session = self._sessions.get(session_id)
        if session is None or session.state is SessionState.CLOSED:
            return None
        if peer is not None and not session.admits(peer):
            logger.info("refused a request for sockjs session %r from %s: opened from another address", session_id[:64], peer)
            raise SessionNotFound(session_id)
        return session

    def open(self, session_id: str, now: float, peer: str = "") -> SockJSSession:
        """Return the session with this id, creating it (opened by ``peer``) when there is none.

        Raises:
            SessionNotFound: the session exists and was opened from another
                address (see :meth:`get`).
        """
        session = self.get(session_id, peer)
        if session is None:
            session = SockJSSession(session_id, self.factory, self.options, now, peer=peer)
            self._sessions[session_id] = session
        return session

    def open_bound(self, now: float, peer: str = "") -> SockJSSession:
        """Return a new session for one WebSocket, not findable by id."""
        self._bound_ids += 1
        session = SockJSSession(f"websocket-{self._bound_ids}", self.factory, self.options, now, bound=True, peer=peer)
        self._bound.add(session)
        return session

    def expire(self, now: float) -> int:
        """Send due heartbeats and forget expired and closed sessions; return how many were forgotten."""
        gone = [session for session in list(self._sessions.values()) if session.tick(now)]
        for session in gone:
            if self._sessions.get(session.id) is session:
                del self._sessions[session.id]
        gone_bound = [session for session in list(self._bound) if session.tick(now)]
        self._bound.difference_update(gone_bound)
        return len(gone) + len(gone_bound)

    def close_all(self, code: int, reason: str) -> None:
        """Close every session (for example when the server shuts down)."""
        for session in self:
            session.close(code, reason)

