"""Authentication of WAMP sessions: anonymous, ticket (connect JWT) and WAMP-CRA.

The router asks :meth:`Authenticator.begin` what to do with a HELLO: welcome
the peer at once (anonymous) or send a CHALLENGE; the AUTHENTICATE that comes
back goes to :meth:`Authenticator.complete`. Both return an :class:`Identity`
or raise :class:`AuthenticationFailed` with a short reason for the ABORT.

Methods (WAMP §14.5 "Authentication"; the client lists them in
``HELLO.Details.authmethods``, in its order of preference):

- ``anonymous``: allowed unless switched off; authid ``anonymous``, authrole
  ``anonymous``.
- ``ticket`` (§14.5.3 "Ticket-based Authentication"): the ticket is a connect
  token (see :mod:`telegraphy.tokens`); its ``sub`` is the authid. It must
  carry ``iat`` (logouts and grant changes are judged by it, see
  :mod:`.revocation`) and live at most ``max_token_ttl`` seconds.
- ``wampcra`` (§14.5.2 "Challenge Response Authentication"): the key of an
  authid is :func:`telegraphy.tokens.wampcra_key` of the gateway secret, so
  any web app holding the secret can hand users their keys.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..tokens import MAX_CONNECT_TOKEN_TTL, TokenError, verify_connect_token, wampcra_key
from .errors import AuthenticationFailed, uris
from .messages import Authenticate, Challenge, Hello

__all__ = ["AUTH_PROVIDER", "BACKEND_ROLE", "WEB_ROLE", "Authenticator", "Identity", "PendingChallenge"]

AUTH_PROVIDER = "telegraphy"
#: The authrole of trusted services (a connect token minted with
#: ``authrole="backend"``): they may register procedures (see :mod:`.channels`).
BACKEND_ROLE = "backend"
#: The ``publisher_authrole`` of events published through the HTTP API;
#: reserved, so no session has it and no client can pass for the web app.
WEB_ROLE = "web"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a session is: the fields WELCOME.Details reports, plus token claims."""

    authid: str
    authrole: str
    authmethod: str
    authprovider: str = AUTH_PROVIDER
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        """Whether the session names no user: the ``anonymous`` method, or a ticket without ``sub``."""
        return self.authrole == "anonymous"


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    """A CHALLENGE sent and the state needed to check the answer."""

    challenge: Challenge
    authid: str
    expected: str = ""


class Authenticator:
    """Decides who may open a session.

    Args:
        secret: the gateway secret (verifies tickets, derives WAMP-CRA keys).
        allow_anonymous: accept ``anonymous`` (and HELLOs naming no method).
        leeway: seconds of clock skew accepted on token expiry.
        max_token_ttl: longest connect token accepted (``exp - iat``), seconds.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        allow_anonymous: bool = True,
        leeway: float = 5.0,
        max_token_ttl: float = MAX_CONNECT_TOKEN_TTL,
    ) -> None:
        self.secret = secret
        self.allow_anonymous = allow_anonymous
        self.leeway = leeway
        self.max_token_ttl = max_token_ttl

    @property
    def methods(self) -> tuple[str, ...]:
        base = ("ticket", "wampcra")
        return (*base, "anonymous") if self.allow_anonymous else base

    def begin(self, hello: Hello, session_id: int, now: float) -> Identity | PendingChallenge:
        """Return the identity of the peer, or the challenge to send it.

        Raises:
            AuthenticationFailed: no acceptable method, or a bad HELLO authid.
        """
        requested = hello.details.get("authmethods", ["anonymous"])
        if not isinstance(requested, list) or not all(isinstance(m, str) for m in requested):
            raise AuthenticationFailed("authmethods must be a list of strings", uris.PROTOCOL_VIOLATION)
        method = next((m for m in requested if m in self.methods), None)
        if method is None:
            offered = ", ".join(self.methods)
            asked = ", ".join(requested) or "none"
            raise AuthenticationFailed(f"no acceptable auth method: asked {asked}, offered {offered}", uris.NO_AUTH_METHOD)
        authid = hello.details.get("authid")
        if authid is not None and not isinstance(authid, str):
            raise AuthenticationFailed("authid must be a string", uris.PROTOCOL_VIOLATION)
        if method == "anonymous":
            return Identity(authid="anonymous", authrole="anonymous", authmethod="anonymous")
        if method == "ticket":
            return PendingChallenge(Challenge("ticket", {}), authid or "")
        if not authid:
            raise AuthenticationFailed("wampcra needs an authid in HELLO.Details", uris.AUTHENTICATION_FAILED)
        challenge = json.dumps(
            {
                "authid": authid,
                "authrole": "user",
                "authmethod": "wampcra",
                "authprovider": AUTH_PROVIDER,
                "nonce": secrets.token_urlsafe(16),
                "timestamp": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "session": session_id,
            },
            separators=(",", ":"),
        )
        key = wampcra_key(self.secret, authid).encode("utf-8")
        expected = base64.b64encode(hmac.new(key, challenge.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")
        return PendingChallenge(Challenge("wampcra", {"challenge": challenge}), authid, expected)

    def complete(self, pending: PendingChallenge, answer: Authenticate) -> Identity:
        """Check the AUTHENTICATE answering ``pending`` and return the identity.

        Raises:
            AuthenticationFailed: with a short reason safe to send to the peer.
        """
        method = pending.challenge.method
        if method == "wampcra":
            if not hmac.compare_digest(answer.signature.encode("utf-8"), pending.expected.encode("utf-8")):
                raise AuthenticationFailed("wampcra signature is invalid")
            return Identity(authid=pending.authid, authrole="user", authmethod="wampcra")
        try:
            claims = verify_connect_token(answer.signature, self.secret, self.leeway, max_ttl=self.max_token_ttl)
        except TokenError as exc:
            raise AuthenticationFailed(f"ticket refused: {exc.reason}") from None
        subject = claims.get("sub")
        if subject is None:
            if not self.allow_anonymous:
                raise AuthenticationFailed("ticket names no user and anonymous access is off", uris.NOT_AUTHORIZED)
            return Identity(authid="anonymous", authrole="anonymous", authmethod="ticket", claims=claims)
        subject = str(subject)
        if pending.authid and pending.authid != subject:
            raise AuthenticationFailed(f"ticket is for another authid than {pending.authid!r}")
        role = claims.get("authrole") or "user"
        if role == WEB_ROLE:
            raise AuthenticationFailed(f"ticket refused: authrole {WEB_ROLE!r} is reserved for the web app's HTTP API", uris.NOT_AUTHORIZED)
        return Identity(authid=subject, authrole=str(role), authmethod="ticket", claims=claims)
