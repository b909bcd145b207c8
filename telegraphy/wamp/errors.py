"""Exceptions of the sans-I/O WAMP core.

::

    WampError                       root; carries a WAMP error URI
    ├── ProtocolViolation           the peer sent something invalid (remote)
    │   └── SerializationError      bytes that do not decode to a WAMP message
    ├── ApplicationError            a request failed in an expected way; the
    │                               session goes on (ERROR message to the peer)
    └── AuthenticationFailed        HELLO/AUTHENTICATE refused (ABORT)
    LocalProtocolError              our own caller misused the core API (a bug)

Messages are short, lowercase and carry the values they talk about. They are
safe to send to the peer: they never contain tracebacks or secrets.
"""

from __future__ import annotations

__all__ = [
    "ApplicationError",
    "AuthenticationFailed",
    "LocalProtocolError",
    "ProtocolViolation",
    "SerializationError",
    "WampError",
    "uris",
]


class uris:  # noqa: N801 - a namespace of constants
    """The WAMP error and close URIs Telegraphy uses (WAMP §7.1.2 "Predefined URIs")."""

    # Session close reasons
    CLOSE_NORMAL = "wamp.close.normal"
    GOODBYE_AND_OUT = "wamp.close.goodbye_and_out"
    SYSTEM_SHUTDOWN = "wamp.close.system_shutdown"
    CLOSE_REALM = "wamp.close.close_realm"
    LOGOUT = "wamp.close.logout"
    # Errors
    PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
    INVALID_URI = "wamp.error.invalid_uri"
    INVALID_ARGUMENT = "wamp.error.invalid_argument"
    NO_SUCH_REALM = "wamp.error.no_such_realm"
    NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
    NO_SUCH_SESSION = "wamp.error.no_such_session"
    NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
    NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"
    PROCEDURE_ALREADY_EXISTS = "wamp.error.procedure_already_exists"
    NOT_AUTHORIZED = "wamp.error.not_authorized"
    AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
    NO_AUTH_METHOD = "wamp.error.no_auth_method"
    CANCELED = "wamp.error.canceled"
    OPTION_NOT_ALLOWED = "wamp.error.option_not_allowed"
    # Telegraphy's own (see telegraphy.wamp.limits)
    LIMIT_EXCEEDED = "telegraphy.error.limit_exceeded"
    FLOODING = "telegraphy.error.flooding"


class WampError(Exception):
    """Root of the core's exceptions; ``uri`` is the WAMP error URI for the peer."""

    uri: str = uris.PROTOCOL_VIOLATION

    def __init__(self, message: str, uri: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if uri is not None:
            self.uri = uri


class ProtocolViolation(WampError):
    """The peer sent a message that breaks the protocol; the session is aborted.

    Transports close the connection after sending the ABORT (WebSocket close
    code 1002).
    """

    uri = uris.PROTOCOL_VIOLATION


class SerializationError(ProtocolViolation):
    """Received bytes are not a valid message in the negotiated serialization."""


class ApplicationError(WampError):
    """A request the peer made cannot be carried out; answered with ERROR.

    Examples: calling a procedure nobody registered, unsubscribing twice.
    """

    def __init__(self, uri: str, message: str) -> None:
        super().__init__(message, uri)


class AuthenticationFailed(WampError):
    """The peer could not be authenticated; answered with ABORT."""

    uri = uris.AUTHENTICATION_FAILED


class LocalProtocolError(Exception):
    """The code driving the core called it in a way it does not support."""
