"""WAMP over SockJS: each SockJS session carries one WAMP session, in ``wamp.2.json``.

Every SockJS message is the text of one WAMP message. The router writes to
a :class:`WampSockJSConnection` exactly as it writes to a WebSocket
connection (``write_frames``, ``close_connection``), so sessions, auth,
broker, dealer and resume behave the same on both transports.

The wire codec :data:`WAMP_CODEC` frames each WAMP message as a JSON string
literal (:func:`~telegraphy.sockjs.frames.literal_from_json`). The broker
encodes an event once per publish and codec, so every SockJS subscriber gets
the very same literal; the connection only joins literals into
``a[...]`` frames.

Close codes: a WAMP close reaches the client as ``c[code,"reason"]`` with the
code the WebSocket transport would use (1000 after GOODBYE, 1001 on gateway
shutdown, 1002 after a protocol violation, 1007 for a message holding a lone
UTF-16 surrogate — what invalid UTF-8 is on a WebSocket —, 1008 after an
authentication failure or for a slow consumer) and the WAMP reason URI, so a
client handles both transports alike. SockJS's own codes come on top:
1002 "Connection interrupted", 2010 "Another connection still open".

Short session ids: SockJS lets the client choose the session id in the
URL. A session whose id is shorter than ``min_auth_id`` characters
(``--sockjs-auth-id-length``, 16 by default) may only be anonymous: a HELLO
asking for any other authentication method, or to resume a session, gets
ABORT ``wamp.error.not_authorized`` and ``c[1008,…]``. The Telegraphy
client uses 32 random characters; sockjs-client's default of 8 (40 bits)
is too few to carry someone's identity (set its ``sessionId`` option to 32).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from telegraphy.wamp import JSON, WireCodec

from .frames import literal_from_json

if TYPE_CHECKING:
    from telegraphy.wamp import Router, ServerSession

    from .session import SockJSSession

__all__ = ["WAMP_CODEC", "ConnectionHost", "WampSockJSConnection"]

logger = logging.getLogger("telegraphy.sockjs")

#: JSON text, each message a SockJS string literal.
WAMP_CODEC = WireCodec(JSON, frame=literal_from_json)

CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
NOT_AUTHORIZED = "wamp.error.not_authorized"

# A lone surrogate decodes from JSON ("\ud800") but is no UTF-8 text: over a
# WebSocket such a message could not even arrive.
_SURROGATE = re.compile("[\ud800-\udfff]")


class ConnectionHost(Protocol):
    """What a WAMP-over-SockJS connection needs from the gateway."""

    router: Router
    metrics: Any

    def connection_opened(self, connection: Any) -> None: ...

    def connection_closed(self, connection: Any) -> None: ...


class WampSockJSConnection:
    """The handler of one SockJS session, and the transport of its WAMP session.

    Args:
        sockjs: the SockJS session.
        host: the gateway (router, metrics, connection bookkeeping).
        clock: returns wall-clock seconds, for token expiry checks
            (``time.time``).
        min_auth_id: the shortest SockJS session id that may carry an
            authenticated or resumed WAMP session (0: any).
    """

    __slots__ = ("_clock", "_hello_checked", "_host", "_min_auth_id", "peer", "session", "sockjs")

    #: SockJS sessions prove they are alive by polling; the gateway's ping
    #: loop leaves them to the SockJS session timeout.
    last_seen = math.inf

    def __init__(self, sockjs: SockJSSession, host: ConnectionHost, clock: Callable[[], float], min_auth_id: int = 0) -> None:
        self.sockjs = sockjs
        self._min_auth_id = min_auth_id
        # A WebSocket-bound session is its connection's alone: its (made-up) id is no credential.
        self._hello_checked = sockjs.bound or len(sockjs.id) >= min_auth_id
        #: The address of the client that opened the SockJS session.
        self.peer = sockjs.peer
        self.session: ServerSession | None = None
        self._host = host
        self._clock = clock

    def __repr__(self) -> str:
        return f"WampSockJSConnection({self.sockjs.id!r}, {self.peer})"

    # SessionHandler --------------------------------------------------------------

    def on_open(self, now: float) -> None:
        self.session = self._host.router.attach(WAMP_CODEC, transport=self, peer=self.peer)
        self._host.connection_opened(self)

    def on_messages(self, messages: list[str], now: float) -> None:
        session = self.session
        if session is None:
            return
        wall = self._clock()
        for text in messages:
            if _SURROGATE.search(text):
                self.close_connection(CLOSE_INVALID_DATA, "message is not valid unicode (lone surrogate)")
                return
            if not self._hello_checked:
                self._hello_checked = True
                if _asks_for_identity(text):
                    self._refuse_short_id()
                    return
            session.receive(text, wall)
            if session.close_request is not None:
                self.write_frames(session.data_to_send())
                self.close_connection(*session.close_request)
                return

    def on_close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost()
            self._host.connection_closed(self)

    def _refuse_short_id(self) -> None:
        detail = (
            f"a sockjs session id of {len(self.sockjs.id)} characters may only carry an anonymous session: "
            f"use at least {self._min_auth_id} random characters to authenticate"
        )
        logger.info("refused authentication over sockjs session %r from %s: id too short", self.sockjs.id[:64], self.peer)
        abort = json.dumps([3, {"message": detail}, NOT_AUTHORIZED], separators=(",", ":")).encode("utf-8")
        self.write_frames([literal_from_json(abort)])
        self.close_connection(CLOSE_POLICY, NOT_AUTHORIZED)

    # Transport of the WAMP session ----------------------------------------------

    def write_frames(self, frames: list[bytes]) -> None:
        """Send prepared literals; a session over its queue budget is closed as a slow consumer."""
        if frames and not self.sockjs.send_literals(frames):
            logger.warning("closing slow sockjs consumer %s: over %d queued bytes", self.peer, self.sockjs.options.max_queue)
            self._host.metrics.slow_consumers += 1

    def close_connection(self, code: int, reason: str) -> None:
        """Close the SockJS session with ``c[code,"reason"]``; the WAMP session is gone at once."""
        self.sockjs.close(code, reason)
        self.on_close()  # in case the SockJS session was not open any more

    def ping(self) -> None:
        """Nothing to do: SockJS heartbeats keep intermediaries awake."""


def _asks_for_identity(text: str) -> bool:
    """Whether a first message is a HELLO asking to authenticate (any method but anonymous) or to resume a session.

    Anything else, well-formed or not, goes to the WAMP session as it is,
    which answers it as over any transport.
    """
    try:
        message = json.loads(text)
    except ValueError:
        return False
    if not (isinstance(message, list) and len(message) >= 3 and message[0] == 1 and isinstance(message[2], dict)):
        return False
    details = message[2]
    methods = details.get("authmethods", ["anonymous"])
    if "resume_token" in details or not isinstance(methods, list):
        return True
    return any(method != "anonymous" for method in methods)
