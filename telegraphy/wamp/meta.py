"""The router's own procedures: the WAMP Session and Subscription Meta API, sans-I/O.

A CALL to a ``wamp.`` procedure never reaches a callee (peers may not
register ``wamp.`` URIs, WAMP §7.1.2): the dealer hands it to :func:`answer`,
which looks the procedure up in :data:`PROCEDURES` and returns the RESULT at
once. An unknown ``wamp.`` procedure is ``wamp.error.no_such_procedure``, as
for any procedure nobody registered.

Who may call: :meth:`Router.authorize` lets only sessions whose ``authrole``
is in ``Router.meta_roles`` (``{"admin"}`` by default) call these; others get
``wamp.error.not_authorized``. A connect token minted with
``authrole="admin"`` opens such a session.

Every procedure sees the caller's realm only (advanced profile, "Session
Meta API": "Session meta procedures MUST be registered by the Router on the
same realm as the WAMP session about which information is retrieved").
Arguments and results follow the advanced profile's "Session Meta API",
"Subscription Meta API" and "Registration Meta API":

=====================================  ===============================  ===========================================
procedure                              positional arguments             positional result
=====================================  ===============================  ===========================================
``wamp.session.count``                 ``[filter_authroles]``           number of sessions
``wamp.session.list``                  ``[filter_authroles]``           session ids
``wamp.session.get``                   ``session``                      ``{session, authid, authrole, authmethod,
                                                                        authprovider, transport}``
``wamp.subscription.list``             (none)                           ``{exact: [ids], prefix: [ids],
                                                                        wildcard: [ids]}``
``wamp.subscription.lookup``           ``topic, [{match}]``             subscription id or null
``wamp.subscription.match``            ``topic``                        ids of matching subscriptions, or null
``wamp.subscription.get``              ``subscription``                 ``{id, created, uri, match}``
``wamp.subscription.list_subscribers`` ``subscription``                 session ids
``wamp.subscription.count_subscribers`` ``subscription``                number of sessions
``wamp.registration.list``             (none)                           ``{exact: [ids], prefix: [], wildcard: []}``
=====================================  ===============================  ===========================================

Limits, in plain words: no meta events (``wamp.session.on_join``, …) are
published, the ``kill`` procedures are not offered, and so the router does
not announce the ``session_meta_api``/``subscription_meta_api`` features.
``created`` is null for a subscription whose creation time the transport
did not give.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ApplicationError, uris
from .messages import Call, Result

if TYPE_CHECKING:
    from .broker import Subscription
    from .router import Realm
    from .session import ServerSession

__all__ = ["PROCEDURES", "answer", "session_details", "subscription_details"]

#: A meta procedure: (caller's realm, caller, args, kwargs) -> the one positional result.
MetaProcedure = Callable[["Realm", "ServerSession", list[Any], dict[str, Any]], Any]

_MATCH_POLICIES = ("exact", "prefix", "wildcard")


def answer(caller: ServerSession, call: Call) -> Result:
    """Return the RESULT of a CALL to one of the router's own procedures.

    Call it only for an established session whose CALL was authorized.

    Raises:
        ApplicationError: ``no_such_procedure`` for an unknown procedure;
            ``invalid_argument``, ``no_such_session`` or
            ``no_such_subscription`` from the procedure.
    """
    procedure = PROCEDURES.get(call.procedure)
    if procedure is None:
        raise ApplicationError(uris.NO_SUCH_PROCEDURE, f"no callee registered for procedure {call.procedure!r}")
    realm = caller.realm
    assert realm is not None
    result = procedure(realm, caller, list(call.args or []), dict(call.kwargs or {}))
    return Result(call.request, {}, [result])


# Descriptions shared with the gateway's management API ------------------------


def session_details(session: ServerSession) -> dict[str, Any]:
    """The ``wamp.session.get`` details of an established session."""
    identity = session.identity
    assert identity is not None
    return {
        "session": session.id,
        "authid": identity.authid,
        "authrole": identity.authrole,
        "authmethod": identity.authmethod,
        "authprovider": identity.authprovider,
        "transport": {"peer": session.peer, "serializer": session.codec.serializer.name},
    }


def subscription_details(subscription: Subscription) -> dict[str, Any]:
    """The ``wamp.subscription.get`` details (``SubscriptionDetails``) of a subscription."""
    return {
        "id": subscription.id,
        "created": _iso8601(subscription.created),
        "uri": subscription.topic,
        "match": subscription.match,
    }


def _iso8601(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Arguments -----------------------------------------------------------------------


def _arg(args: list[Any], index: int, name: str, procedure: str) -> Any:
    if len(args) <= index:
        raise ApplicationError(uris.INVALID_ARGUMENT, f"missing argument {name!r} in call to {procedure}")
    return args[index]


def _id_arg(args: list[Any], name: str, procedure: str) -> int:
    value = _arg(args, 0, name, procedure)
    if type(value) is not int:
        raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid type {type(value).__name__} for {name!r} in call to {procedure}")
    return value


def _str_arg(args: list[Any], name: str, procedure: str) -> str:
    value = _arg(args, 0, name, procedure)
    if not isinstance(value, str):
        raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid type {type(value).__name__} for {name!r} in call to {procedure}")
    return value


def _authroles(args: list[Any], procedure: str) -> frozenset[str] | None:
    """The optional ``filter_authroles`` argument: a list of role names, or None for all."""
    if not args or args[0] is None:
        return None
    roles = args[0]
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid 'filter_authroles' in call to {procedure}: expected a list of strings")
    return frozenset(roles)


def _subscription(realm: Realm, args: list[Any], procedure: str) -> Subscription:
    subscription_id = _id_arg(args, "subscription", procedure)
    subscription = realm.broker.get(subscription_id)
    if subscription is None:
        raise ApplicationError(uris.NO_SUCH_SUBSCRIPTION, f"subscription {subscription_id} not found in realm {realm.name!r}")
    return subscription


# Session Meta API ------------------------------------------------------------------


def _sessions(realm: Realm, args: list[Any], procedure: str) -> list[ServerSession]:
    roles = _authroles(args, procedure)
    sessions = list(realm.sessions.values())
    if roles is None:
        return sessions
    return [s for s in sessions if s.identity is not None and s.identity.authrole in roles]


def session_count(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> int:
    """``wamp.session.count([filter_authroles])``: how many sessions the realm has."""
    return len(_sessions(realm, args, "wamp.session.count"))


def session_list(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> list[int]:
    """``wamp.session.list([filter_authroles])``: the ids of the realm's sessions."""
    return [s.id for s in _sessions(realm, args, "wamp.session.list") if s.id is not None]


def session_get(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``wamp.session.get(session)``: one session's details."""
    session_id = _id_arg(args, "session", "wamp.session.get")
    session = realm.sessions.get(session_id)
    if session is None:
        raise ApplicationError(uris.NO_SUCH_SESSION, f"session {session_id} not found in realm {realm.name!r}")
    return session_details(session)


# Subscription Meta API -------------------------------------------------------------


def _by_policy(items: list[Subscription]) -> dict[str, list[int]]:
    lists: dict[str, list[int]] = {policy: [] for policy in _MATCH_POLICIES}
    for item in items:
        lists.setdefault(item.match, []).append(item.id)
    return lists


def subscription_list(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> dict[str, list[int]]:
    """``wamp.subscription.list()``: subscription ids by match policy."""
    return _by_policy(realm.broker.subscriptions)


def subscription_lookup(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> int | None:
    """``wamp.subscription.lookup(topic, [options])``: the subscription managing a topic with a match policy."""
    procedure = "wamp.subscription.lookup"
    topic = _str_arg(args, "topic", procedure)
    options = args[1] if len(args) > 1 and args[1] is not None else {}
    if not isinstance(options, dict):
        raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid type {type(options).__name__} for 'options' in call to {procedure}")
    match = options.get("match", "exact")
    if match not in _MATCH_POLICIES:
        raise ApplicationError(uris.INVALID_ARGUMENT, f"invalid match policy {match!r} in call to {procedure}")
    subscription = realm.broker.lookup(topic, match)
    return None if subscription is None else subscription.id


def subscription_match(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> list[int] | None:
    """``wamp.subscription.match(topic)``: the subscriptions an event on ``topic`` would go to, or null."""
    topic = _str_arg(args, "topic", "wamp.subscription.match")
    matching = [sub.id for sub in realm.broker.matching(topic)]
    return matching or None


def subscription_get(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``wamp.subscription.get(subscription)``: a subscription's details."""
    return subscription_details(_subscription(realm, args, "wamp.subscription.get"))


def subscription_list_subscribers(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> list[int]:
    """``wamp.subscription.list_subscribers(subscription)``: the ids of its sessions."""
    subscription = _subscription(realm, args, "wamp.subscription.list_subscribers")
    return [s.id for s in subscription.subscribers if s.id is not None]


def subscription_count_subscribers(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> int:
    """``wamp.subscription.count_subscribers(subscription)``: how many sessions it has."""
    return len(_subscription(realm, args, "wamp.subscription.count_subscribers").subscribers)


# Registration Meta API -------------------------------------------------------------


def registration_list(realm: Realm, caller: ServerSession, args: list[Any], kwargs: dict[str, Any]) -> dict[str, list[int]]:
    """``wamp.registration.list()``: registration ids by match policy (all ``exact`` here)."""
    return {"exact": [r.id for r in realm.dealer.registrations], "prefix": [], "wildcard": []}


#: The router's procedures by URI.
PROCEDURES: dict[str, MetaProcedure] = {
    "wamp.session.count": session_count,
    "wamp.session.list": session_list,
    "wamp.session.get": session_get,
    "wamp.subscription.list": subscription_list,
    "wamp.subscription.lookup": subscription_lookup,
    "wamp.subscription.match": subscription_match,
    "wamp.subscription.get": subscription_get,
    "wamp.subscription.list_subscribers": subscription_list_subscribers,
    "wamp.subscription.count_subscribers": subscription_count_subscribers,
    "wamp.registration.list": registration_list,
}
