"""Template tags that put the Telegraphy browser client on a page.

::

    {% load telegraphy_tags %}
    {% telegraphy_scripts %}

writes the client's configuration (``window.TELEGRAPHY_CONFIG``) and the
``<script>`` element loading ``telegraphy/telegraphy.js`` from the static
files. The tag needs ``request`` in the context (the ``request`` context
processor) to pick the host, scheme and user; without it the page still
renders, for an anonymous user on ``TELEGRAPHY_WS_HOST`` or ``localhost``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..client import client_config, script_json

register = template.Library()


@register.simple_tag(takes_context=True)
def telegraphy_scripts(context: template.Context) -> SafeString:
    """Return the ``<script>`` elements of the Telegraphy client, configured for this request."""
    request = context.get("request")
    user = None if request is not None else context.get("user")
    config = client_config(request, user=user)
    return format_html(
        '<script>window.TELEGRAPHY_CONFIG = {};</script>\n<script src="{}"></script>',
        mark_safe(script_json(config)),  # noqa: S308 - escaped for a script element by script_json
        static("telegraphy/telegraphy.js"),
    )


@register.simple_tag(takes_context=True)
def telegraphy_config(context: template.Context) -> dict[str, Any]:
    """Return the client configuration, for ``{% telegraphy_config as config %}`` in custom markup."""
    request = context.get("request")
    return client_config(request, user=None if request is not None else context.get("user"))
