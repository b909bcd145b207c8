"""The browser client's configuration: where to connect, which realm, which token.

:func:`client_config` builds the ``window.TELEGRAPHY_CONFIG`` object that the
``{% telegraphy_scripts %}`` tag writes into a page, and
:func:`script_json` escapes it for a ``<script>`` element. Building it never
contacts the gateway: the connect token is signed locally with the shared
secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest

from .conf import PREFIX
from .conf import settings as conf
from .grants import connect_token_for

__all__ = ["client_config", "script_json", "websocket_url"]

logger = logging.getLogger("telegraphy.django")

# The host a page rendered without a request (an e-mail, a management
# command) tells the browser to connect to, unless TELEGRAPHY_WS_HOST says.
FALLBACK_HOST = "localhost"

# As django.utils.html.json_script: "<", ">" and "&" cannot end the script
# element or start a comment inside it once escaped. U+2028/9 are escaped for
# old JavaScript engines, which did not allow them in string literals.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003C",
    ord(">"): "\\u003E",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def client_config(request: HttpRequest | None = None, user: Any = None) -> dict[str, Any]:
    """Return the configuration of the browser client for ``request``.

    Args:
        request: the request being answered; ``None`` falls back to
            :data:`FALLBACK_HOST` and ``ws://`` unless settings say otherwise.
        user: the user to mint a connect token for; default ``request.user``.

    Returns:
        ``{"url", "realm", "token", "authid"}``: ``token`` (from
        :func:`~.grants.connect_token_for`: the user's id, groups, relevant
        permissions and superuser flag) and ``authid`` are ``None`` for an
        anonymous or inactive user (or when ``TELEGRAPHY_SECRET`` is not set,
        which is logged).
    """
    if user is None and request is not None:
        user = getattr(request, "user", None)
    token = authid = None
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", True):
        if conf.SECRET:
            authid = str(user.pk)
            token = connect_token_for(user)
        else:
            logger.error("%sSECRET is not set: the page connects to Telegraphy anonymously", PREFIX)
    return {"url": websocket_url(request), "realm": conf.REALM, "token": token, "authid": authid}


def websocket_url(request: HttpRequest | None = None) -> str:
    """Return the ``ws://`` or ``wss://`` URL browsers connect to.

    ``TELEGRAPHY_WS_URL`` wins. Otherwise: the scheme follows
    ``TELEGRAPHY_IS_SECURE`` (or the request), the host is
    ``TELEGRAPHY_WS_HOST`` (or the request's host name, without its port),
    then ``TELEGRAPHY_WS_PORT`` and ``TELEGRAPHY_WS_PATH``.
    """
    if conf.WS_URL:
        return str(conf.WS_URL)
    secure = conf.IS_SECURE
    if secure is None:
        secure = request.is_secure() if request is not None else False
    host = conf.WS_HOST or _request_host(request) or FALLBACK_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = conf.WS_PORT
    path = conf.WS_PATH or "/"
    if not path.startswith("/"):
        path = "/" + path
    netloc = host if port in (None, "") else f"{host}:{int(port)}"
    return f"{'wss' if secure else 'ws'}://{netloc}{path}"


def script_json(value: Any) -> str:
    """Return ``value`` as JSON that is safe inside a ``<script>`` element."""
    return json.dumps(value, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def _request_host(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    try:
        host = request.get_host()
    except DisallowedHost:
        # Django answers such requests with 400 itself; the tag just renders.
        return None
    if host.startswith("["):  # "[::1]:8000"
        return host[1 : host.find("]")] or None
    return host.rpartition(":")[0] if ":" in host else host
