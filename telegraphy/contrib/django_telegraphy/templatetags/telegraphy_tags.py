"""Template tags that put the Telegraphy browser client on a page.

::

    {% load telegraphy_tags %}
    {% telegraphy_scripts %}

writes the client's configuration (``window.TELEGRAPHY_CONFIG``) and the
``<script>`` element loading ``telegraphy/telegraphy.js`` from the static
files. The tag needs ``request`` in the context (the ``request`` context
processor) to pick the host, scheme and user; without it the page still
renders, for an anonymous user on ``TELEGRAPHY_WS_HOST`` or ``localhost``.

Besides :func:`~..client.client_config`'s fields, the configuration has what
the client's SockJS fallback needs: ``sockjsUrl`` (:func:`sockjs_url`) and
``sockjsScriptUrl``, the vendored sockjs-client
(``telegraphy/vendor/sockjs.min.js``), which the client loads only when it
cannot open a WebSocket.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import template
from django.http import HttpRequest
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..client import client_config, script_json, websocket_url
from ..conf import settings as conf

register = template.Library()

#: The vendored sockjs-client (client_js/vendor.mjs), loaded by the client only for its fallback.
SOCKJS_SCRIPT = "telegraphy/vendor/sockjs.min.js"


def sockjs_url(request: HttpRequest | None = None) -> str:
    """Return the ``http://`` or ``https://`` SockJS URL browsers fall back to.

    ``TELEGRAPHY_SOCKJS_URL`` wins. Otherwise it is the WebSocket URL
    (:func:`~..client.websocket_url`) with ``http`` for ``ws`` and ``https``
    for ``wss``, and its last path segment replaced by ``sockjs``:
    ``ws://example.com:9000/ws`` gives ``http://example.com:9000/sockjs``
    (the gateway's default SockJS path), ``wss://example.com/rt/ws`` gives
    ``https://example.com/rt/sockjs``. The browser client derives it the
    same way when the configuration has none.
    """
    if conf.SOCKJS_URL:
        return str(conf.SOCKJS_URL)
    parts = urlsplit(websocket_url(request))
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme)
    segments = parts.path.rstrip("/").split("/")
    if len(segments) > 1:
        segments[-1] = "sockjs"
    else:
        segments.append("sockjs")
    return urlunsplit((scheme, parts.netloc, "/".join(segments), "", ""))


def _page_config(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    config = client_config(request, user=None if request is not None else context.get("user"))
    config["sockjsUrl"] = sockjs_url(request)
    config["sockjsScriptUrl"] = static(SOCKJS_SCRIPT)
    return config


@register.simple_tag(takes_context=True)
def telegraphy_scripts(context: template.Context) -> SafeString:
    """Return the ``<script>`` elements of the Telegraphy client, configured for this request."""
    return format_html(
        '<script>window.TELEGRAPHY_CONFIG = {};</script>\n<script src="{}"></script>',
        mark_safe(script_json(_page_config(context))),  # noqa: S308 - escaped for a script element by script_json
        static("telegraphy/telegraphy.js"),
    )


@register.simple_tag(takes_context=True)
def telegraphy_config(context: template.Context) -> dict[str, Any]:
    """Return the client configuration, for ``{% telegraphy_config as config %}`` in custom markup."""
    return _page_config(context)
