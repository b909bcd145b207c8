"""JSON Web Tokens shared by the gateway, the publisher and the Django app.

Telegraphy uses HS256 tokens signed with one shared secret (the gateway's
``TELEGRAPHY_SECRET``). Each kind of token names its purpose in the ``aud``
claim, so a token minted for one purpose is refused for any other:

- a *publish* token (``aud = "telegraphy:publish"``) authorizes one HTTP
  request from a web app to the gateway's ``/publish`` endpoint;
- a *connect* token (``aud = "telegraphy:connect"``) is minted by the web app
  when it renders a page and presented by the browser as its WAMP ``ticket``;
  ``sub`` is the user id (absent for anonymous users), ``authrole`` optional
  (``authrole="admin"`` lets the session call the WAMP meta procedures);
- a *manage* token (``aud = "telegraphy:manage"``) authorizes one request to
  the gateway's management API (``/sessions``, ``/subscriptions``,
  ``/subscribers``); a publish token is refused there, and the other way round.

Every token must carry ``exp``. Verification never accepts ``alg: none`` or
any algorithm but HS256.

WAMP-CRA keys are derived from the same secret per ``authid`` with
:func:`wampcra_key`, so the web app can hand a user the key that the gateway
will expect without any shared state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt

__all__ = [
    "ALGORITHM",
    "CONNECT_AUDIENCE",
    "MANAGE_AUDIENCE",
    "PUBLISH_AUDIENCE",
    "TokenError",
    "mint_connect_token",
    "mint_manage_token",
    "mint_publish_token",
    "verify_connect_token",
    "verify_manage_token",
    "verify_publish_token",
    "wampcra_key",
]

ALGORITHM = "HS256"
PUBLISH_AUDIENCE = "telegraphy:publish"
CONNECT_AUDIENCE = "telegraphy:connect"
MANAGE_AUDIENCE = "telegraphy:manage"

#: Default lifetimes, in seconds.
PUBLISH_TOKEN_TTL = 60
CONNECT_TOKEN_TTL = 300
MANAGE_TOKEN_TTL = 60


class TokenError(Exception):
    """A token was missing, malformed, expired, forged or meant for another use.

    ``reason`` is short and safe to show to the peer; it never contains the
    secret or the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError("the Telegraphy secret is empty")
    return secret


def _mint(secret: str | bytes, audience: str, ttl: float, claims: Mapping[str, Any], now: float | None) -> str:
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"aud": audience, "iat": issued, "exp": issued + int(ttl)}
    payload.update({k: v for k, v in claims.items() if v is not None})
    return jwt.encode(payload, _secret_bytes(secret), algorithm=ALGORITHM)


def _verify(token: str, secret: str | bytes, audience: str, leeway: float) -> dict[str, Any]:
    if not token:
        raise TokenError("token missing")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _secret_bytes(secret),
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidAudienceError:
        raise TokenError(f"token is not a {audience.split(':')[-1]} token") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token has no '{exc.claim}' claim") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token signature is invalid") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token algorithm is not {ALGORITHM}") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise TokenError("token is malformed") from None
    return claims


def mint_publish_token(secret: str | bytes, ttl: float = PUBLISH_TOKEN_TTL, *, now: float | None = None) -> str:
    """Return a token authorizing requests to the gateway's ``/publish``."""
    return _mint(secret, PUBLISH_AUDIENCE, ttl, {}, now)


def verify_publish_token(token: str, secret: str | bytes, leeway: float = 5.0) -> dict[str, Any]:
    """Return the claims of a valid publish token, or raise :class:`TokenError`."""
    return _verify(token, secret, PUBLISH_AUDIENCE, leeway)


def mint_manage_token(secret: str | bytes, ttl: float = MANAGE_TOKEN_TTL, *, now: float | None = None) -> str:
    """Return a token authorizing requests to the gateway's management API."""
    return _mint(secret, MANAGE_AUDIENCE, ttl, {}, now)


def verify_manage_token(token: str, secret: str | bytes, leeway: float = 5.0) -> dict[str, Any]:
    """Return the claims of a valid manage token, or raise :class:`TokenError`."""
    return _verify(token, secret, MANAGE_AUDIENCE, leeway)


def mint_connect_token(
    secret: str | bytes,
    user_id: str | int | None = None,
    *,
    authrole: str | None = None,
    ttl: float = CONNECT_TOKEN_TTL,
    claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Return a connect token for a browser session.

    Args:
        secret: the shared Telegraphy secret.
        user_id: the user's id (becomes ``sub``); ``None`` for an anonymous user.
        authrole: an optional WAMP role name.
        ttl: lifetime in seconds; keep it short, the page uses it once.
        claims: further claims (for example the user's groups).
        now: the current time, for tests.
    """
    extra: dict[str, Any] = dict(claims or {})
    extra["sub"] = None if user_id is None else str(user_id)
    extra["authrole"] = authrole
    extra["jti"] = secrets.token_urlsafe(12)
    return _mint(secret, CONNECT_AUDIENCE, ttl, extra, now)


def verify_connect_token(token: str, secret: str | bytes, leeway: float = 5.0) -> dict[str, Any]:
    """Return the claims of a valid connect token, or raise :class:`TokenError`."""
    return _verify(token, secret, CONNECT_AUDIENCE, leeway)


def wampcra_key(secret: str | bytes, authid: str) -> str:
    """Return the WAMP-CRA key (a base64 string) of ``authid``.

    The key is HMAC-SHA256 of ``"wampcra:" + authid`` under the shared secret:
    the web app gives it to the user, the gateway recomputes it, and no list
    of users is needed on the gateway.
    """
    digest = hmac.new(_secret_bytes(secret), b"wampcra:" + authid.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
