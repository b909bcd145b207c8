"""The Django app's settings, read in one place with their defaults.

Every setting is read from ``django.conf.settings`` at the moment it is
used, so ``override_settings`` in tests works. Use the module-level
:data:`settings` object: ``conf.settings.GATEWAY_URL`` reads
``TELEGRAPHY_GATEWAY_URL``.

=================================  ===========================  ==========================================
Setting                            Default                      Meaning
=================================  ===========================  ==========================================
``TELEGRAPHY_SECRET``              required                     the secret shared with the gateway
``TELEGRAPHY_GATEWAY_URL``         ``http://127.0.0.1:9000``    where Django POSTs events (``/publish``)
``TELEGRAPHY_WS_URL``              ``None``                     full WebSocket URL given to browsers
``TELEGRAPHY_WS_HOST``             ``None``                     host name browsers connect to (None: the
                                                                request's host name)
``TELEGRAPHY_WS_PORT``             ``9000``                     port browsers connect to (None: omitted)
``TELEGRAPHY_WS_PATH``             ``/ws``                      WebSocket path on the gateway
``TELEGRAPHY_SOCKJS_URL``          ``None``                     full SockJS URL given to browsers (None:
                                                                the WebSocket URL's, path ``/sockjs``)
``TELEGRAPHY_IS_SECURE``           ``None``                     ``wss://`` if True, ``ws://`` if False,
                                                                None: like ``request.is_secure()``
``TELEGRAPHY_REALM``               ``telegraphy``               WAMP realm
``TELEGRAPHY_CONNECT_TOKEN_TTL``   ``300``                      lifetime of browser connect tokens (s)
``TELEGRAPHY_FIRE_AND_FORGET``     ``True``                     log publish failures, never raise them
``TELEGRAPHY_ENABLED``             ``True``                     False: publish nothing to the gateway
``TELEGRAPHY_PUBLISH_TIMEOUT``     ``5``                        seconds per attempt to reach the gateway
``TELEGRAPHY_PUBLISH_RETRIES``     ``3``                        retries after a failed attempt
``TELEGRAPHY_DEFAULT_AUDIENCE``    ``"public"``                 audience of events whose class or
                                                                ``send_event`` call names none
``TELEGRAPHY_TOKEN_PERMISSIONS``   ``()``                       more permissions to put in connect tokens
                                                                (those your get_audience / send_event name)
``TELEGRAPHY_TOKEN_MAX_PERMS``     ``100``                      most permissions in one connect token
``TELEGRAPHY_CHANNELS``            ``None``                     the gateway's channel declarations; their
                                                                permissions go in connect tokens
``TELEGRAPHY_REVOCATION``          ``True``                     tell the gateway about grant changes,
                                                                deactivations and deletions of users
``TELEGRAPHY_REVOKE_ON_LOGOUT``    ``True``                     a logout ends the user's live sessions
``TELEGRAPHY_REVOKE_MAX_USERS``    ``1000``                     most users refreshed for one group change
=================================  ===========================  ==========================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

__all__ = ["DEFAULTS", "PREFIX", "settings"]

PREFIX = "TELEGRAPHY_"

DEFAULTS: dict[str, Any] = {
    "SECRET": None,
    "GATEWAY_URL": "http://127.0.0.1:9000",
    "WS_URL": None,
    "WS_HOST": None,
    "WS_PORT": 9000,
    "WS_PATH": "/ws",
    "SOCKJS_URL": None,
    "IS_SECURE": None,
    "REALM": "telegraphy",
    "CONNECT_TOKEN_TTL": 300,
    # Publishing happens after the transaction committed: raising then would
    # turn a saved change into an error page. So failures are logged.
    "FIRE_AND_FORGET": True,
    "ENABLED": True,
    "PUBLISH_TIMEOUT": 5,
    "PUBLISH_RETRIES": 3,
    # Public keeps the seed's behaviour: every client saw every event.
    "DEFAULT_AUDIENCE": "public",
    "TOKEN_PERMISSIONS": (),
    "TOKEN_MAX_PERMS": 100,
    "CHANNELS": None,
    "REVOCATION": True,
    "REVOKE_ON_LOGOUT": True,
    "REVOKE_MAX_USERS": 1000,
}


class TelegraphySettings:
    """Read ``TELEGRAPHY_*`` settings by their short name, falling back to :data:`DEFAULTS`."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown Telegraphy setting {PREFIX}{name}")
        return getattr(django_settings, PREFIX + name, DEFAULTS[name])

    def __dir__(self) -> list[str]:
        return sorted(DEFAULTS)


settings = TelegraphySettings()
