"""Sans-I/O WAMP v2 router core: messages, serializers, sessions, broker, dealer, auth.

Nothing here imports Tornado or asyncio, opens sockets or starts timers: bytes
go in through :meth:`ServerSession.receive`, prepared frames come out through
:meth:`ServerSession.data_to_send`, and time is passed in as an argument.
"""

from __future__ import annotations

from .auth import Authenticator, Identity
from .errors import (
    ApplicationError,
    AuthenticationFailed,
    LocalProtocolError,
    ProtocolViolation,
    SerializationError,
    WampError,
    uris,
)
from .router import DEFAULT_REALM, Realm, Router, RouterStats
from .serializer import JSON, MSGPACK, SERIALIZERS, WireCodec
from .session import CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, ServerSession, SessionState

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "DEFAULT_REALM",
    "JSON",
    "MSGPACK",
    "SERIALIZERS",
    "ApplicationError",
    "AuthenticationFailed",
    "Authenticator",
    "Identity",
    "LocalProtocolError",
    "ProtocolViolation",
    "Realm",
    "Router",
    "RouterStats",
    "SerializationError",
    "ServerSession",
    "SessionState",
    "WampError",
    "WireCodec",
    "uris",
]
