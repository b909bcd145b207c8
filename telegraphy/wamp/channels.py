"""Client channels: which topics WAMP clients may publish and subscribe to.

Model events come from the web app over HTTP; WAMP clients publishing
(chat-style topics) is governed here. A deployment declares channels, each a
topic (``exact``, ``prefix`` or ``wildcard`` match) with the audience that may
subscribe and the audience that may publish (see :mod:`.audience` for the
audience forms; ``null`` for publish means nobody)::

    [{"topic": "chat.", "match": "prefix", "subscribe": "authenticated", "publish": "authenticated"},
     {"topic": "staff.news", "subscribe": {"groups": ["staff"]}, "publish": {"permissions": ["news.add_item"]}}]

Rules, in order:

1. ``user.<id>`` and everything under it is the private channel of user
   ``<id>``: only that user (or a superuser) may subscribe or publish there,
   and the broker delivers its events to nobody else, whatever pattern
   subscription they hold.
2. The first declared channel matching the topic decides.
3. No channel matches: subscribing is allowed (events carry their own
   audiences), publishing is not (``wamp.error.not_authorized``).

Without any declaration the default is one channel covering every topic:
anyone subscribes, authenticated users publish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .audience import AUTHENTICATED, PUBLIC, Audience, Grants, InvalidAudience

__all__ = ["DEFAULT_CHANNELS", "Channel", "ChannelPolicy", "may_receive", "parse_channels", "private_owner"]

PRIVATE_PREFIX = "user."


@dataclass(frozen=True, slots=True)
class Channel:
    """A declared channel: a topic pattern and who may subscribe and publish."""

    topic: str
    match: str = "exact"
    subscribe: Audience = PUBLIC
    publish: Audience | None = None

    def covers(self, topic: str) -> bool:
        if self.match == "exact":
            return topic == self.topic
        if self.match == "prefix":
            return topic.startswith(self.topic)
        pattern = self.topic.split(".")
        parts = topic.split(".")
        return len(pattern) == len(parts) and all(not want or want == have for want, have in zip(pattern, parts))


DEFAULT_CHANNELS = (Channel("", "prefix", PUBLIC, AUTHENTICATED),)


def parse_channels(value: str | Sequence[Any]) -> tuple[Channel, ...]:
    """Parse channel declarations from JSON text or a decoded list.

    Raises:
        ValueError: naming the channel index and field that is wrong.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"channels are not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise ValueError("channels must be a JSON list of objects")
    channels = []
    for index, item in enumerate(value):
        where = f"channel {index}"
        if not isinstance(item, Mapping) or not isinstance(item.get("topic"), str):
            raise ValueError(f"{where}: an object with a string 'topic' is expected")
        unknown = set(item) - {"topic", "match", "subscribe", "publish"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        match = item.get("match", "exact")
        if match not in ("exact", "prefix", "wildcard"):
            raise ValueError(f"{where}: match must be exact, prefix or wildcard, not {match!r}")
        try:
            subscribe = Audience.parse(item.get("subscribe", "public"), "subscribe")
            publish = None if item.get("publish") is None else Audience.parse(item["publish"], "publish")
        except InvalidAudience as exc:
            raise ValueError(f"{where}: {exc}") from None
        channels.append(Channel(item["topic"], match, subscribe, publish))
    return tuple(channels)


class ChannelPolicy:
    """Answers whether a session may subscribe or publish to a topic."""

    def __init__(self, channels: Sequence[Channel] = DEFAULT_CHANNELS) -> None:
        self.channels = tuple(channels)

    def check(self, grants: Grants, action: str, topic: str, match: str = "exact") -> str | None:
        """Return ``None`` when allowed, else a short reason for ``wamp.error.not_authorized``."""
        reason = _private_conflict(grants, topic, match)
        if reason is not None:
            return reason
        for channel in self.channels:
            if channel.covers(topic):
                audience = channel.subscribe if action == "subscribe" else channel.publish
                if audience is not None and audience.allows(grants):
                    return None
                return f"not allowed to {action} on channel {channel.topic!r}"
        if action == "subscribe":
            return None
        return f"publishing to {topic!r} is not allowed: it is on no declared channel"


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
