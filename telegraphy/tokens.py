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
- a *manage* token (``aud = "telegraphy:manage"``) authorizes requests to
  the gateway's management API (``/revoke``, ``/sessions``, ``/subscriptions``,
  ``/subscribers``); a publish token is refused there, and the other way round.

Every token must carry ``exp``. Verification never accepts ``alg: none`` or
any algorithm but HS256.

Connect and manage tokens must also carry ``iat``, and live no longer than
a maximum (``exp - iat``): a connect token at most
:data:`MAX_CONNECT_TOKEN_TTL` seconds unless the gateway is told otherwise
(``--connect-token-max-ttl``), a manage token at most
:data:`MAX_MANAGE_TOKEN_TTL`. A revocation (logout, new grants) covers the
connect tokens issued up to its second, so it has to be remembered only
until the longest such token has expired.

A manage token for ``POST /revoke`` names the request it authorizes: its
``body_sha256`` claim is the SHA-256 (hex) of the exact request body, and
its ``jti`` is used once (the gateway remembers it until ``exp``). Mint a
fresh one per request with :func:`mint_manage_token` ``(body=...)``.

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
    "BODY_HASH_CLAIM",
    "CONNECT_AUDIENCE",
    "MANAGE_AUDIENCE",
    "MAX_CONNECT_TOKEN_TTL",
    "MAX_MANAGE_TOKEN_TTL",
    "PUBLISH_AUDIENCE",
    "TokenError",
    "mint_connect_token",
    "mint_manage_token",
    "body_hash",
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

#: Longest connect token accepted (``exp - iat``, seconds) unless the gateway says otherwise.
MAX_CONNECT_TOKEN_TTL = 3600
#: Longest manage token accepted (``exp - iat``, seconds).
MAX_MANAGE_TOKEN_TTL = 300
#: The manage-token claim holding the SHA-256 (hex) of the request body it authorizes.
BODY_HASH_CLAIM = "body_sha256"


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


def _verify(
    token: str,
    secret: str | bytes,
    audience: str,
    leeway: float,
    require: tuple[str, ...] = ("exp", "aud"),
    max_ttl: float | None = None,
) -> dict[str, Any]:
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
    # Checked after the audience, so a token of another kind is named as such.
    for claim in require:
        if claim not in claims:
            raise TokenError(f"token has no '{claim}' claim")
    if max_ttl is not None:
        # Both are numbers once decoded: the library checks exp and iat.
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > max_ttl:
            raise TokenError(f"token lives {lifetime:.0f} s, more than the {max_ttl:.0f} s allowed")
    return claims


def body_hash(body: bytes) -> str:
    """The ``body_sha256`` claim of a manage token for a request with ``body``: SHA-256, hex."""
    return hashlib.sha256(body).hexdigest()


def mint_publish_token(secret: str | bytes, ttl: float = PUBLISH_TOKEN_TTL, *, now: float | None = None) -> str:
    """Return a token authorizing requests to the gateway's ``/publish``."""
    return _mint(secret, PUBLISH_AUDIENCE, ttl, {}, now)


def verify_publish_token(token: str, secret: str | bytes, leeway: float = 5.0) -> dict[str, Any]:
    """Return the claims of a valid publish token, or raise :class:`TokenError`."""
    return _verify(token, secret, PUBLISH_AUDIENCE, leeway)


def mint_manage_token(
    secret: str | bytes, ttl: float = MANAGE_TOKEN_TTL, *, body: bytes | None = None, now: float | None = None
) -> str:
    """Return a token authorizing a request to the gateway's management API.

    Each token gets a fresh ``jti``. For ``POST /revoke`` pass the exact
    request ``body``: the token then names it (``body_sha256``) and the
    gateway accepts it for that one request, once. Keep ``ttl`` short (at
    most :data:`MAX_MANAGE_TOKEN_TTL`).
    """
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16)}
    if body is not None:
        claims[BODY_HASH_CLAIM] = body_hash(body)
    return _mint(secret, MANAGE_AUDIENCE, ttl, claims, now)


def verify_manage_token(
    token: str, secret: str | bytes, leeway: float = 5.0, *, body: bytes | None = None
) -> dict[str, Any]:
    """Return the claims of a valid manage token, or raise :class:`TokenError`.

    The token must carry ``exp``, ``iat`` and ``jti`` and live at most
    :data:`MAX_MANAGE_TOKEN_TTL` seconds. With ``body``, its
    ``body_sha256`` must be the hash of that body. Whether its ``jti`` was
    used before is for the caller to check (the gateway keeps them in its store).
    """
    claims = _verify(token, secret, MANAGE_AUDIENCE, leeway, ("exp", "aud", "iat", "jti"), MAX_MANAGE_TOKEN_TTL)
    if not isinstance(claims["jti"], str) or not 8 <= len(claims["jti"]) <= 128:
        raise TokenError("token 'jti' must be a string of 8 to 128 characters")
    if body is not None:
        bound = claims.get(BODY_HASH_CLAIM)
        if not isinstance(bound, str):
            raise TokenError(f"token has no '{BODY_HASH_CLAIM}' claim: mint one per request, with the body's hash")
        if not hmac.compare_digest(bound.encode("utf-8", "replace"), body_hash(body).encode("ascii")):
            raise TokenError("token was minted for another request body")
    return claims


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


def verify_connect_token(
    token: str, secret: str | bytes, leeway: float = 5.0, *, max_ttl: float = MAX_CONNECT_TOKEN_TTL
) -> dict[str, Any]:
    """Return the claims of a valid connect token, or raise :class:`TokenError`.

    The token must carry ``exp`` and ``iat`` (revocations are judged by
    ``iat``) and live at most ``max_ttl`` seconds (``exp - iat``).
    """
    return _verify(token, secret, CONNECT_AUDIENCE, leeway, ("exp", "aud", "iat"), max_ttl)


def wampcra_key(secret: str | bytes, authid: str) -> str:
    """Return the WAMP-CRA key (a base64 string) of ``authid``.

    The key is HMAC-SHA256 of ``"wampcra:" + authid`` under the shared secret:
    the web app gives it to the user, the gateway recomputes it, and no list
    of users is needed on the gateway.
    """
    digest = hmac.new(_secret_bytes(secret), b"wampcra:" + authid.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
