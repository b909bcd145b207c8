"""The HTTP side of SockJS that needs no I/O: headers, the info document, the iframe page.

Every function returns values (header lists, bytes); the Tornado handlers
only copy them onto responses. Times are passed in (``now`` in seconds since
the epoch for HTTP dates).

Header rules (sockjs-protocol-0.3.3):

- CORS: ``Access-Control-Allow-Origin`` echoes the request's ``Origin``
  (``null`` included: browsers treat a ``*`` there as a refusal when
  credentials are sent) with ``Access-Control-Allow-Credentials: true``;
  with no ``Origin`` at all it is ``*``, without credentials.
- Preflights (``OPTIONS``) are cacheable for a year: ``204``,
  ``Cache-Control: public, max-age=31536000``, ``Expires``,
  ``Access-Control-Max-Age``, the allowed methods, and
  ``Access-Control-Allow-Headers`` echoing ``Access-Control-Request-Headers``.
- Everything carrying session data is never cached: :data:`NO_CACHE`.
- ``JSESSIONID``: when a service asks for it, session responses set the
  cookie (echoing the client's, or ``dummy``) so that load balancers that
  only know cookie stickiness keep a client on one node.
- The iframe page loads sockjs-client: by default the copy bundled with the
  package (:func:`bundled_client`), which the gateway serves beside the
  page at ``<prefix>/sockjs.min.js`` (same origin as the page, so nothing
  outside the gateway is trusted); a script from elsewhere only with a
  Subresource Integrity check.
- JSONP requests carry no usable ``Origin`` (a ``<script>`` sends none; the
  form POST of ``jsonp_send`` sends ``null`` under a ``same-origin`` or
  ``no-referrer`` referrer policy, the web app's usual one):
  :func:`jsonp_origin` falls back to the ``Referer``'s origin when there is
  one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from urllib.parse import urlsplit

from telegraphy import hixie76

from .errors import BadHandshake

__all__ = [
    "BUNDLED_CLIENT_NAME",
    "CACHE_FOREVER",
    "NO_CACHE",
    "ONE_YEAR",
    "cache_headers",
    "cors_headers",
    "hixie76_handshake",
    "http_date",
    "bundled_client",
    "iframe_page",
    "info_document",
    "jsessionid_cookie",
    "jsonp_origin",
    "origin_allowed",
    "sri",
    "valid_integrity",
    "preflight_headers",
    "websocket_key",
]

#: The file name the bundled sockjs-client is served under, beside the iframe page.
BUNDLED_CLIENT_NAME = "sockjs.min.js"
#: Where the package keeps it (client_js/vendor.mjs vendors it; the Django app serves it too).
_BUNDLED_CLIENT = Path(__file__).resolve().parent.parent / "contrib" / "django_telegraphy" / "static" / "telegraphy" / "vendor" / "sockjs.min.js"
_INTEGRITY = re.compile(r"(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2}")

ONE_YEAR = 365 * 24 * 60 * 60
CACHE_FOREVER = f"public, max-age={ONE_YEAR}"
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"

Headers = list[tuple[str, str]]

# RFC 6265 §4.1.1 cookie-octet; anything else is not echoed into a header.
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}")

_IFRAME = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{url}"{integrity}></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def http_date(now: float) -> str:
    """Return ``now`` (seconds since the epoch) as an HTTP date."""
    return formatdate(now, usegmt=True)


def cors_headers(origin: str | None) -> Headers:
    """Return the CORS headers of a response to a request with this ``Origin``."""
    if not origin:
        return [("Access-Control-Allow-Origin", "*")]
    return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]


def cache_headers(now: float) -> Headers:
    """Return the headers that let a response be cached for a year."""
    return [("Cache-Control", CACHE_FOREVER), ("Expires", http_date(now + ONE_YEAR))]


def preflight_headers(origin: str | None, methods: Iterable[str], request_headers: str | None, now: float) -> Headers:
    """Return the headers of a ``204`` answer to an ``OPTIONS`` preflight."""
    headers = cors_headers(origin) + cache_headers(now)
    headers.append(("Access-Control-Max-Age", str(ONE_YEAR)))
    headers.append(("Access-Control-Allow-Methods", ", ".join(methods)))
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", request_headers))
    return headers


def origin_allowed(origin: str | None, host: str, allowed: Iterable[str]) -> bool:
    """Apply the gateway's ``--allowed-origins`` rule to a request's ``Origin``.

    Requests without ``Origin`` (not from a browser page, or same-origin
    GETs), same-host pages and the configured origins (``*`` for any) pass.
    """
    if origin is None:
        return True
    allowed = tuple(allowed)
    if "*" in allowed or origin.lower().rstrip("/") in allowed:
        return True
    return bool(origin) and urlsplit(origin).netloc.lower() == host.lower()


def jsessionid_cookie(current: str | None) -> str:
    """Return the ``Set-Cookie`` value: the client's ``JSESSIONID`` echoed, or ``dummy``."""
    value = current if current and _COOKIE_VALUE.fullmatch(current) else "dummy"
    return f"JSESSIONID={value}; Path=/"


def info_document(*, websocket: bool, cookie_needed: bool, entropy: int) -> bytes:
    """Return the body of ``GET /info``.

    ``entropy`` is a random number in [0, 2^32 - 1] from the caller
    (browsers used it to seed their generators); ``origins`` is always
    ``["*:*"]``, a field clients ignore.
    """
    document = {"websocket": websocket, "cookie_needed": cookie_needed, "origins": ["*:*"], "entropy": entropy}
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def _attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def iframe_page(client_url: str, integrity: str = "") -> tuple[bytes, str]:
    """Return the iframe page loading sockjs-client from ``client_url``, and its ETag.

    ``integrity`` is the script's Subresource Integrity value (see
    :func:`sri`), given for a script from another origin: a browser refuses
    to run a script whose bytes do not match, so a changed CDN copy cannot
    take over the gateway's origin. Without it the page is exactly the
    protocol's (its test suite compares the text), for the bundled copy the
    gateway serves itself.
    """
    extra = f' integrity="{_attribute(integrity)}" crossorigin="anonymous"' if integrity else ""
    page = _IFRAME.format(url=_attribute(client_url), integrity=extra).encode("utf-8")
    return page, '"' + hashlib.sha256(page).hexdigest()[:32] + '"'


@lru_cache(maxsize=1)
def bundled_client() -> tuple[bytes, str]:
    """Return the bundled sockjs-client script and its ``?v=`` cache buster (a digest prefix).

    Raises:
        OSError: the file is missing from the installation.
    """
    script = _BUNDLED_CLIENT.read_bytes()
    return script, hashlib.sha256(script).hexdigest()[:16]


def sri(script: bytes) -> str:
    """Return the ``sha384-…`` Subresource Integrity value of ``script``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(script).digest()).decode("ascii")


def valid_integrity(value: str) -> bool:
    """Whether ``value`` is one Subresource Integrity value (``sha256-``, ``sha384-`` or ``sha512-`` and base64)."""
    return bool(_INTEGRITY.fullmatch(value))


def jsonp_origin(origin: str | None, referer: str | None) -> str | None:
    """Return the origin to check a JSONP request (``jsonp``, ``jsonp_send``) against.

    The ``Origin`` when it names one; otherwise the ``Referer``'s
    ``scheme://host[:port]``; None when the request says neither (it then
    cannot be checked: the session's address binding and random id are
    what protect it).
    """
    if origin and origin != "null":
        return origin
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
        return "null"  # a Referer that is no URL proves nothing good
    return None


def websocket_key(headers: Mapping[str, str]) -> str:
    """Return the ``Sec-WebSocket-Key`` of a valid RFC 6455 upgrade request (§4.2.1).

    Raises:
        BadHandshake: a plain GET, a ``Connection`` header without
            ``Upgrade`` (some proxies rewrite it), another WebSocket version,
            or a key that is not 16 bytes in base64.
    """
    if headers.get("Upgrade", "").lower() != "websocket":
        raise BadHandshake('Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in (token.strip().lower() for token in headers.get("Connection", "").split(",")):
        raise BadHandshake('"Connection" must be "Upgrade".')
    if headers.get("Sec-WebSocket-Version") != "13":
        raise BadHandshake("Only WebSocket version 13 is supported.")
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # binascii.Error, or a non-ASCII key
        valid = False
    if not valid:
        raise BadHandshake('"Sec-WebSocket-Key" must be 16 bytes in base64.')
    return key


def hixie76_handshake(headers: Mapping[str, str], location: str) -> hixie76.Handshake:
    """Validate a draft-76 upgrade request (see :mod:`telegraphy.hixie76`) for the websocket transport.

    Only the per-session ``<server>/<session>/websocket`` endpoint takes it,
    and only when :func:`telegraphy.hixie76.offered` says the request is one.

    Raises:
        BadHandshake: what :meth:`telegraphy.hixie76.Handshake.from_request`
            refuses, with its reason as the ``400`` body.
    """
    try:
        return hixie76.Handshake.from_request(headers, location)
    except hixie76.HandshakeError as exc:
        raise BadHandshake(str(exc)) from None
