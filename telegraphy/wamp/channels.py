"""Client channels and procedures: where WAMP clients may publish, subscribe, register and call.

Model events come from the web app over HTTP; what WAMP clients may do
themselves is governed here, by one declaration (``--channels``,
``TELEGRAPHY_CHANNELS``): a JSON list whose entries are either *channels*
(a ``topic``) or *procedures* (a ``procedure``), each with an ``exact``,
``prefix`` or ``wildcard`` match and the audiences allowed to act (see
:mod:`.audience` for the audience forms; ``null`` means nobody)::

    [{"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"},
     {"topic": "staff.news", "subscribe": {"groups": ["staff"]}, "publish": {"permissions": ["news.add_item"]}},
     {"procedure": "app.search.", "match": "prefix", "call": "public"},
     {"procedure": "chat.bot.ask", "register": {"groups": ["bots"]}, "call": "authenticated"}]

A channel's ``subscribe`` defaults to ``"public"`` and its ``publish`` to
``null``; a procedure's ``register`` defaults to ``null`` (backend sessions
only) and its ``call`` to ``"authenticated"``.

Topics, in order:

1. ``user.<id>`` and everything under it is the private channel of user
   ``<id>``: only that user (or a superuser) may subscribe or publish there,
   and the broker delivers its events to nobody else, whatever pattern
   subscription they hold.
2. A topic that carries web-app events (published through the HTTP API,
   remembered in :class:`WebTopics`) is never published on by a client,
   whatever channel covers it.
3. The first declared channel matching the topic decides.
4. No channel matches: subscribing is allowed (events carry their own
   audiences), publishing is not (``wamp.error.not_authorized``).

Procedures, in order (``wamp.*`` belongs to the router, WAMP §7.1.2):

1. ``user.<id>`` and everything under it may be registered and called only
   by user ``<id>`` or a superuser.
2. Sessions with the :data:`BACKEND_ROLE` authrole (a connect token minted
   with ``authrole="backend"``) may register and call any other procedure.
3. The first declared procedure matching the name decides.
4. No procedure matches: only backend sessions register; any session with a
   user calls; anonymous sessions do not.

Without any declaration clients publish nowhere, subscribe anywhere (events
carry their own audiences), register nothing unless they are backends, and
call only when signed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .audience import AUTHENTICATED, PUBLIC, Audience, Grants, InvalidAudience
from .auth import BACKEND_ROLE, WEB_ROLE

__all__ = [
    "BACKEND_ROLE",
    "DEFAULT_CHANNELS",
    "MAX_WEB_TOPICS",
    "WEB_ROLE",
    "Channel",
    "ChannelPolicy",
    "Procedure",
    "WebTopics",
    "may_receive",
    "parse_channels",
    "private_owner",
]

PRIVATE_PREFIX = "user."
#: Most entries :class:`WebTopics` keeps by default (exact topics plus prefixes).
MAX_WEB_TOPICS = 10_000


def _covers(pattern: str, match: str, uri: str) -> bool:
    if match == "exact":
        return uri == pattern
    if match == "prefix":
        return uri.startswith(pattern)
    wanted = pattern.split(".")
    parts = uri.split(".")
    return len(wanted) == len(parts) and all(not want or want == have for want, have in zip(wanted, parts))


@dataclass(frozen=True, slots=True)
class Channel:
    """A declared channel: a topic pattern and who may subscribe and publish."""

    topic: str
    match: str = "exact"
    subscribe: Audience = PUBLIC
    publish: Audience | None = None

    def covers(self, topic: str) -> bool:
        return _covers(self.topic, self.match, topic)

    def audiences(self) -> tuple[Audience | None, ...]:
        """The audiences this declaration names (``None``: nobody)."""
        return (self.subscribe, self.publish)


@dataclass(frozen=True, slots=True)
class Procedure:
    """A declared procedure: a name pattern and who may register and call it."""

    procedure: str
    match: str = "exact"
    register: Audience | None = None
    call: Audience | None = AUTHENTICATED

    def covers(self, procedure: str) -> bool:
        return _covers(self.procedure, self.match, procedure)

    def audiences(self) -> tuple[Audience | None, ...]:
        """The audiences this declaration names (``None``: nobody)."""
        return (self.register, self.call)


#: No declaration: see the module docstring for what that allows.
DEFAULT_CHANNELS: tuple[Channel | Procedure, ...] = ()


def parse_channels(value: str | Sequence[Any]) -> tuple[Channel | Procedure, ...]:
    """Parse channel and procedure declarations from JSON text or a decoded list.

    Raises:
        ValueError: naming the entry index and field that is wrong.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"channels are not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise ValueError("channels must be a JSON list of objects")
    entries: list[Channel | Procedure] = []
    for index, item in enumerate(value):
        where = f"channel {index}"
        if isinstance(item, Mapping) and "procedure" in item and "topic" not in item:
            entries.append(_parse_procedure(item, f"procedure {index}"))
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("topic"), str):
            raise ValueError(f"{where}: an object with a string 'topic' is expected")
        unknown = set(item) - {"topic", "match", "subscribe", "publish"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        match = _match(item, where)
        try:
            subscribe = Audience.parse(item.get("subscribe", "public"), "subscribe")
            publish = None if item.get("publish") is None else Audience.parse(item["publish"], "publish")
        except InvalidAudience as exc:
            raise ValueError(f"{where}: {exc}") from None
        entries.append(Channel(item["topic"], match, subscribe, publish))
    return tuple(entries)


def _match(item: Mapping[str, Any], where: str) -> str:
    match = item.get("match", "exact")
    if match not in ("exact", "prefix", "wildcard"):
        raise ValueError(f"{where}: match must be exact, prefix or wildcard, not {match!r}")
    return str(match)


def _parse_procedure(item: Mapping[str, Any], where: str) -> Procedure:
    if not isinstance(item.get("procedure"), str):
        raise ValueError(f"{where}: 'procedure' must be a string")
    unknown = set(item) - {"procedure", "match", "register", "call"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    match = _match(item, where)
    try:
        register = None if item.get("register") is None else Audience.parse(item["register"], "register")
        call = None if "call" in item and item["call"] is None else Audience.parse(item.get("call", "authenticated"), "call")
    except InvalidAudience as exc:
        raise ValueError(f"{where}: {exc}") from None
    return Procedure(item["procedure"], match, register, call)


class WebTopics:
    """The topics that carry web-app events: clients never publish on them.

    Bounded: it keeps at most ``limit`` entries (exact topics plus prefixes).
    When a new topic would exceed that, the largest group of entries sharing
    a parent (``a.b.c`` and ``a.b.d`` → ``a.b.``) becomes one prefix entry, so
    the set forgets nothing: it only grows coarser (more topics refused to
    clients, never fewer). ``on_added`` is called with each topic that was not
    covered before, so the gateway can store the set and tell other nodes.
    """

    def __init__(self, limit: int = MAX_WEB_TOPICS) -> None:
        if limit < 1:
            raise ValueError("the web topic limit must be at least 1")
        self.limit = limit
        self._exact: set[str] = set()
        #: Prefixes, each ending with "." (or "", every topic).
        self._prefixes: set[str] = set()
        self.on_added: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def covers(self, topic: str) -> bool:
        """Whether ``topic`` carries (or may carry) web-app events."""
        if topic in self._exact:
            return True
        prefixes = self._prefixes
        if not prefixes:
            return False
        if "" in prefixes:
            return True
        end = topic.find(".")
        while end != -1:
            if topic[: end + 1] in prefixes:
                return True
            end = topic.find(".", end + 1)
        return False

    def add(self, topic: str) -> bool:
        """Remember ``topic``; return whether it was new (``on_added`` was called)."""
        if self.covers(topic):
            return False
        self._exact.add(topic)
        if len(self) > self.limit:
            self._compact()
        if self.on_added is not None:
            self.on_added(topic)
        return True

    def entries(self) -> list[dict[str, str]]:
        """The stored form: ``{"topic", "match"}`` objects, ``match`` being ``exact``, ``prefix`` or ``all``.

        Topics are never empty: folding everything is ``{"topic": "*", "match": "all"}``.
        """
        return [{"topic": t, "match": "exact"} for t in sorted(self._exact)] + [
            {"topic": p, "match": "prefix"} if p else {"topic": "*", "match": "all"} for p in sorted(self._prefixes)
        ]

    def load(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Merge entries of :meth:`entries` form (from the store); malformed ones are skipped."""
        for entry in entries:
            topic = entry.get("topic")
            if not isinstance(topic, str):
                continue
            if entry.get("match") == "all":
                self._add_prefix("")
            elif entry.get("match") == "prefix":
                self._add_prefix(topic)
            elif not self.covers(topic):
                self._exact.add(topic)
        if len(self) > self.limit:
            self._compact()

    def _add_prefix(self, prefix: str) -> None:
        self._exact = {t for t in self._exact if not t.startswith(prefix)}
        self._prefixes = {p for p in self._prefixes if not p.startswith(prefix)}
        self._prefixes.add(prefix)

    def _compact(self) -> None:
        while len(self) > self.limit:
            groups: dict[str, int] = {}
            for entry in (*self._exact, *self._prefixes):
                parent = _parent(entry)
                if parent is not None:
                    groups[parent] = groups.get(parent, 0) + 1
            best = max(groups.items(), key=lambda item: item[1], default=None)
            # No two entries share a parent: refuse every topic (fail closed).
            self._add_prefix(best[0] if best is not None and best[1] > 1 else "")


def _parent(entry: str) -> str | None:
    """``a.b.c`` → ``a.b.``; prefix ``a.b.`` → ``a.``; ``a`` and ``a.`` → ``""``; ``""`` → None."""
    if not entry:
        return None
    stem = entry[:-1] if entry.endswith(".") else entry
    cut = stem.rfind(".")
    return stem[: cut + 1] if cut != -1 else ""


class ChannelPolicy:
    """Answers whether a session may subscribe, publish, register or call.

    Args:
        channels: the declarations (:func:`parse_channels`): channels and procedures.
        max_web_topics: the bound of :attr:`web_topics`.
    """

    def __init__(self, channels: Sequence[Channel | Procedure] = DEFAULT_CHANNELS, *, max_web_topics: int = MAX_WEB_TOPICS) -> None:
        self.channels = tuple(c for c in channels if isinstance(c, Channel))
        self.procedures = tuple(c for c in channels if isinstance(c, Procedure))
        #: Topics the HTTP API published on: refused to client publishers.
        self.web_topics = WebTopics(max_web_topics)

    def check(self, grants: Grants, action: str, topic: str, match: str = "exact") -> str | None:
        """Return ``None`` when allowed to ``subscribe``/``publish``, else a short reason for ``wamp.error.not_authorized``."""
        reason = _private_conflict(grants, topic, match)
        if reason is not None:
            return reason
        if action == "publish" and self.web_topics.covers(topic):
            return f"{topic!r} carries web-app events: clients may not publish on it"
        for channel in self.channels:
            if channel.covers(topic):
                audience = channel.subscribe if action == "subscribe" else channel.publish
                if audience is not None and audience.allows(grants):
                    return None
                return f"not allowed to {action} on channel {channel.topic!r}"
        if action == "subscribe":
            return None
        return f"publishing to {topic!r} is not allowed: it is on no declared channel"

    def check_procedure(self, grants: Grants, authrole: str, action: str, procedure: str) -> str | None:
        """Return ``None`` when allowed to ``register``/``call``, else a short reason for ``wamp.error.not_authorized``."""
        owner = private_owner(procedure)
        if owner is not None:
            if may_receive(grants, owner):
                return None
            return f"{procedure!r} is another user's private procedure"
        if authrole == BACKEND_ROLE:
            return None
        for rule in self.procedures:
            if rule.covers(procedure):
                audience = rule.register if action == "register" else rule.call
                if audience is not None and audience.allows(grants):
                    return None
                return f"not allowed to {action} procedure {procedure!r} (declared {rule.procedure!r})"
        if action == "register":
            return f"only {BACKEND_ROLE} sessions may register {procedure!r}: it is on no declared procedure"
        if grants.user is None:
            return f"anonymous sessions may not call {procedure!r}: it is on no declared procedure"
        return None


def private_owner(topic: str) -> str | None:
    """Return the user id whose private channel ``topic`` is on, or ``None``."""
    if topic.startswith(PRIVATE_PREFIX):
        return topic[len(PRIVATE_PREFIX) :].split(".")[0]
    return None


def may_receive(grants: Grants, owner: str) -> bool:
    """Whether a session may get an event on the private channel of ``owner``."""
    return grants.superuser or grants.user == owner


def _private_conflict(grants: Grants, topic: str, match: str) -> str | None:
    """Refuse subscribing or publishing by name to another user's private channel ``user.<id>``.

    Pattern subscriptions are allowed; the broker never delivers another
    user's private events through them.
    """
    if match != "exact":
        return None
    owner = private_owner(topic)
    if owner is not None and not may_receive(grants, owner):
        return f"{topic!r} is another user's private channel"
    return None
