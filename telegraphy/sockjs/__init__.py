"""SockJS (protocol 0.3.3) server core, sans-I/O: sessions, framing, HTTP details.

The gateway serves WAMP over SockJS for clients that cannot open a
WebSocket; the Tornado handlers in :mod:`telegraphy.tornado_gateway.sockjs`
only map HTTP requests and WebSockets onto this core. See ``docs/sockjs.md``.

- :mod:`.frames`: the ``o``/``h``/``a``/``c`` frames, message literals,
  send-body decoding, transport wrappers;
- :mod:`.session`: :class:`SockJSSession` (its state machine) and
  :class:`SessionRegistry` (expiry, heartbeats);
- :mod:`.http`: CORS and caching headers, ``/info``, the iframe page;
- :mod:`.wamp`: :class:`WampSockJSConnection`, one WAMP session per SockJS session;
- :mod:`.echo`: the ``echo`` and ``close`` services of the protocol test suite;
- :mod:`.errors`: what the peer did wrong, with the status and text to answer.
"""

from __future__ import annotations

from .errors import (
    BrokenJson,
    InvalidCallback,
    LocalProtocolError,
    PayloadExpected,
    PayloadTooLarge,
    RemoteProtocolError,
    SessionNotFound,
    SockJSError,
)
from .session import (
    CLOSE_GO_AWAY,
    CLOSE_INTERRUPTED,
    CLOSE_SLOW_CONSUMER,
    HandlerFactory,
    Receiver,
    SessionHandler,
    SessionOptions,
    SessionRegistry,
    SessionState,
    SockJSSession,
)

__all__ = [
    "CLOSE_GO_AWAY",
    "CLOSE_INTERRUPTED",
    "CLOSE_SLOW_CONSUMER",
    "BrokenJson",
    "HandlerFactory",
    "InvalidCallback",
    "LocalProtocolError",
    "PayloadExpected",
    "PayloadTooLarge",
    "Receiver",
    "RemoteProtocolError",
    "SessionHandler",
    "SessionNotFound",
    "SessionOptions",
    "SessionRegistry",
    "SessionState",
    "SockJSError",
    "SockJSSession",
]
