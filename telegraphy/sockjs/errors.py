"""Errors of the SockJS core.

::

    SockJSError                    root; never raised itself
    ├── RemoteProtocolError        the peer sent something the protocol refuses
    │   ├── PayloadExpected        an empty send body            (500 "Payload expected.")
    │   ├── BrokenJson             a send body that is not JSON  (500 "Broken JSON encoding.")
    │   ├── PayloadTooLarge        a send body over the limit    (413 "Payload too large.")
    │   ├── InvalidCallback        a missing or unsafe JSONP/htmlfile callback (500)
    │   ├── BadHandshake           a WebSocket upgrade request that is not one (400)
    │   └── SessionNotFound        a send to an unknown session  (404)
    └── LocalProtocolError         our caller misused the API (a bug here, never the peer's)

Each remote error carries ``status`` (the HTTP status the spec asks for) and
``body`` (the text the spec words it with, sent to the peer as it is); the
exception message is for logs and says what was wrong with the values.
"""

from __future__ import annotations

__all__ = [
    "BadHandshake",
    "BrokenJson",
    "InvalidCallback",
    "LocalProtocolError",
    "PayloadExpected",
    "PayloadTooLarge",
    "RemoteProtocolError",
    "SessionNotFound",
    "SockJSError",
]


class SockJSError(Exception):
    """Root of the SockJS core's exceptions."""


class RemoteProtocolError(SockJSError):
    """The peer sent something the SockJS protocol refuses.

    Attributes:
        status: the HTTP status of the answer.
        body: the answer's text, as the protocol words it.
    """

    status = 500
    body = "Internal error."

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PayloadExpected(RemoteProtocolError):
    """A send request carried no messages at all (not even ``[]``)."""

    body = "Payload expected."

    def __init__(self) -> None:
        super().__init__("empty send body")


class BrokenJson(RemoteProtocolError):
    """A send body that is not a JSON array of strings."""

    body = "Broken JSON encoding."


class PayloadTooLarge(RemoteProtocolError):
    """A send body over the configured limit."""

    status = 413
    body = "Payload too large."

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"send body of {size} bytes is over the limit of {limit}")
        self.size = size
        self.limit = limit


class InvalidCallback(RemoteProtocolError):
    """A JSONP or htmlfile request without a usable ``c`` parameter."""

    def __init__(self, callback: str | None) -> None:
        if callback is None:
            detail = "no callback parameter"
            self.body = '"callback" parameter required'
        else:
            detail = f"invalid callback parameter {callback[:40]!r}"
            self.body = 'invalid "callback" parameter'
        super().__init__(detail)
        self.callback = callback


class BadHandshake(RemoteProtocolError):
    """A request to a WebSocket endpoint that is not a valid upgrade (RFC 6455, or draft-76 where accepted)."""

    status = 400

    def __init__(self, body: str) -> None:
        super().__init__(body.lower().rstrip("."))
        self.body = body


class SessionNotFound(RemoteProtocolError):
    """A send request named a session that does not exist (or no longer does)."""

    status = 404
    body = "Session not found."

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id[:64]!r} not found")
        self.session_id = session_id


class LocalProtocolError(SockJSError):
    """The caller misused the core's API (for example attached a receiver twice)."""
