"""What the management API reports: this node's live sessions and the store's session records.

The HTTP handlers (``GET /sessions``, ``/subscriptions``, ``/subscribers``
in :mod:`.http`) call these functions and write what they return as JSON.
Nothing here knows about HTTP.

Two sources, reported side by side:

- **live**: the sessions connected to *this* gateway process, straight from
  the router (the same details as ``wamp.session.get``, see
  :mod:`telegraphy.wamp.meta`);
- **persistent**: the session records the gateway saves in the store for
  resume (see :mod:`.persistence`): each holds the session's ``authid``,
  ``authrole``, ``realm`` and ``subscriptions``, and lives until
  ``--session-ttl`` seconds after its connection ended. With a shared store
  they include sessions of other gateway processes. Resume tokens are
  secrets and are never reported.

Limits: persistent records are written a moment after a SUBSCRIBE (by the
persistence worker), so a brand-new subscription may show as live before it
shows as persistent. Without a store (``--store none``) the persistent lists
are empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telegraphy.wamp import meta
from telegraphy.wamp.broker import Subscription

from .websocket import WampWebSocketProtocol

if TYPE_CHECKING:
    from telegraphy.store import Store
    from telegraphy.wamp import Router, ServerSession

__all__ = ["live_sessions", "topic_subscribers", "user_subscriptions"]


def transport_type(session: ServerSession) -> str:
    """``websocket``, ``sockjs`` or ``other``: the kind of connection a session runs over."""
    transport = session.transport
    if isinstance(transport, WampWebSocketProtocol):
        return "websocket"
    return "sockjs" if "sockjs" in type(transport).__name__.lower() else "other"


def describe(session: ServerSession) -> dict[str, Any]:
    """A live session: ``wamp.session.get`` details, its realm, transport type and subscriptions."""
    details = meta.session_details(session)
    details["transport"]["type"] = transport_type(session)
    realm = session.realm
    details["realm"] = realm.name if realm is not None else None
    subscriptions = []
    for subscription_id in sorted(session.subscriptions):
        sub = realm.broker.get(subscription_id) if realm is not None else None
        if sub is not None:
            subscriptions.append({"subscription": sub.id, "topic": sub.topic, "match": sub.match})
    details["subscriptions"] = subscriptions
    return details


def live_sessions(router: Router) -> dict[str, Any]:
    """``GET /sessions``: every established session of this gateway process."""
    sessions = [describe(session) for session in router.sessions()]
    return {"count": len(sessions), "sessions": sessions}


async def _records(store: Store | None, now: float) -> list[dict[str, Any]]:
    """The store's live session records, without their resume tokens."""
    if store is None:
        return []
    records = []
    for entry in await store.list_sessions(now):
        records.append(
            {
                "session": entry.get("session"),
                "authid": entry.get("authid"),
                "authrole": entry.get("authrole"),
                "realm": entry.get("realm"),
                "subscriptions": [s for s in entry.get("subscriptions", []) if isinstance(s, dict)],
                "expires_at": entry.get("expires_at"),
            }
        )
    return records


def _connected(router: Router) -> set[int]:
    return {session.id for session in router.sessions() if session.id is not None}


async def user_subscriptions(router: Router, store: Store | None, user: str, now: float) -> dict[str, Any]:
    """``GET /subscriptions?user=``: what ``user`` (an authid) is subscribed to, live and persistent.

    Args:
        router: this gateway's router.
        store: its store, or None when it runs without one.
        user: the authid.
        now: the current unix time (records expired by then are left out).

    Raises:
        Exception: whatever the store raises when it cannot be read.
    """
    live = []
    for session in router.sessions():
        if session.identity is not None and session.identity.authid == user:
            described = describe(session)
            for subscription in described["subscriptions"]:
                live.append({"session": session.id, "realm": described["realm"], **subscription})
    connected = _connected(router)
    persistent = []
    for record in await _records(store, now):
        if record["authid"] != user:
            continue
        for subscription in record["subscriptions"]:
            persistent.append(
                {
                    "session": record["session"],
                    "realm": record["realm"],
                    "topic": subscription.get("topic"),
                    "match": subscription.get("match", "exact"),
                    "connected": record["session"] in connected,
                    "expires_at": record["expires_at"],
                }
            )
    return {"user": user, "live": live, "persistent": persistent}


async def topic_subscribers(router: Router, store: Store | None, topic: str, now: float) -> dict[str, Any]:
    """``GET /subscribers?topic=``: who gets an event published on ``topic``, live and persistent.

    Pattern subscriptions (``prefix``, ``wildcard``) that match the topic count.

    Raises:
        Exception: whatever the store raises when it cannot be read.
    """
    live = []
    for realm in router.realms.values():
        for sub in realm.broker.matching(topic):
            for session in sub.subscribers:
                identity = session.identity
                live.append(
                    {
                        "session": session.id,
                        "authid": identity.authid if identity is not None else None,
                        "authrole": identity.authrole if identity is not None else None,
                        "realm": realm.name,
                        "subscription": sub.id,
                        "match": sub.match,
                    }
                )
    connected = _connected(router)
    components = topic.split(".")
    persistent = []
    for record in await _records(store, now):
        for subscription in record["subscriptions"]:
            pattern, match = subscription.get("topic"), subscription.get("match", "exact")
            if not isinstance(pattern, str) or not isinstance(match, str):
                continue
            if Subscription(0, pattern, match).matches(topic, components):
                persistent.append(
                    {
                        "session": record["session"],
                        "authid": record["authid"],
                        "authrole": record["authrole"],
                        "realm": record["realm"],
                        "match": match,
                        "connected": record["session"] in connected,
                        "expires_at": record["expires_at"],
                    }
                )
                break
    return {"topic": topic, "live": live, "persistent": persistent}
