"""Sessions of one in-memory router, driven synchronously (h11's ``ConnectionPair`` idea).

::

    peers = Peers()
    alice = peers.join()                      # anonymous, JSON
    bob = peers.join(MSGPACK_CODEC, user="bob")   # ticket-authenticated, msgpack
    peers.send(alice, [32, 1, {}, "chat.lobby"])
    assert peers.read(alice) == [Subscribed(1, sub_id)]

Messages go in as lists (or message objects), encoded with the session's
serializer the way a client would send them: JSON as text, msgpack as bytes.
What the router queued for a session comes out of :meth:`Peers.read` decoded
and parsed. Nothing here opens a socket or starts a timer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from telegraphy.tokens import mint_connect_token, wampcra_key
from telegraphy.wamp import JSON, MSGPACK, Authenticator, Router, ServerSession, WireCodec
from telegraphy.wamp.channels import ChannelPolicy, parse_channels
from telegraphy.wamp.messages import Challenge, Message, Welcome, parse

__all__ = ["JSON_CODEC", "MSGPACK_CODEC", "OPEN", "REALM", "SECRET", "CountingSerializer", "Peers", "open_channels", "wampcra_signature"]

SECRET = "core-test-secret-" + "x" * 32
REALM = "telegraphy"

#: A declaration for tests of routing rather than policy: signed-in sessions
#: publish and register anywhere, everyone calls (by default nobody publishes
#: and only backends register).
OPEN = [
    {"topic": "", "match": "prefix", "publish": "authenticated"},
    {"procedure": "", "match": "prefix", "register": "authenticated", "call": "public"},
]

JSON_CODEC = WireCodec(JSON)
MSGPACK_CODEC = WireCodec(MSGPACK)


class CountingSerializer:
    """A serializer that delegates to another and counts its ``encode`` and ``event_tail`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.subprotocol = inner.subprotocol
        self.binary = inner.binary
        self.encoded = 0

    def encode(self, message: list[Any]) -> bytes:
        self.encoded += 1
        data: bytes = self.inner.encode(message)
        return data

    def decode(self, data: bytes | str) -> Any:
        return self.inner.decode(data)

    def event_tail(self, rest: list[Any]) -> bytes:
        """Encode an EVENT's payload (counted: it is the expensive part)."""
        self.encoded += 1
        data: bytes = self.inner.event_tail(rest)
        return data

    def event(self, subscription: int, tail: bytes) -> bytes:
        data: bytes = self.inner.event(subscription, tail)
        return data


def open_channels() -> ChannelPolicy:
    """Return a policy of the :data:`OPEN` declaration."""
    return ChannelPolicy(parse_channels(OPEN))


def wampcra_signature(key: str, challenge: str) -> str:
    """Sign a WAMP-CRA challenge the way a client does (base64 HMAC-SHA256)."""
    digest = hmac.new(key.encode("utf-8"), challenge.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class Peers:
    """A :class:`Router` and the sessions attached to it, all in memory.

    Args:
        secret: the router's secret (tickets, WAMP-CRA keys).
        allow_anonymous: passed to the :class:`Authenticator`.
        realms: the realms served.
        router_options: further :class:`Router` arguments (``channels``, ``limits``).
    """

    def __init__(
        self, *, secret: str = SECRET, allow_anonymous: bool = True, realms: tuple[str, ...] = (REALM,), **router_options: Any
    ) -> None:
        self.secret = secret
        self.router = Router(Authenticator(secret, allow_anonymous=allow_anonymous), realms, **router_options)

    def attach(self, codec: WireCodec = JSON_CODEC, peer: str = "test") -> ServerSession:
        """Return a new session of a connection that just opened."""
        return self.router.attach(codec, peer=peer)

    def send(self, session: ServerSession, *messages: list[Any] | Message) -> None:
        """Encode ``messages`` as the client would and feed them to ``session``."""
        serializer = session.codec.serializer
        for message in messages:
            raw = message.marshal() if isinstance(message, Message) else message
            data = serializer.encode(raw)
            self.send_raw(session, data if serializer.binary else data.decode("utf-8"))

    def send_raw(self, session: ServerSession, data: bytes | str) -> None:
        """Feed one transport message to ``session`` as it is."""
        session.receive(data, time.time())

    def read(self, session: ServerSession) -> list[Message]:
        """Return and forget the messages queued for ``session``, decoded and parsed."""
        return [parse(session.codec.decode(frame)) for frame in session.data_to_send()]

    def read_one(self, session: ServerSession) -> Message:
        """Return the one message queued for ``session`` (fails if there are more or none)."""
        messages = self.read(session)
        assert len(messages) == 1, f"expected one message, got {messages}"
        return messages[0]

    def hello(self, session: ServerSession, realm: str = REALM, **details: Any) -> None:
        """Send HELLO with ``details`` (``authmethods``, ``authid``, …)."""
        self.send(session, [1, realm, {"roles": {"subscriber": {}, "publisher": {}}, **details}])

    def join(
        self,
        codec: WireCodec = JSON_CODEC,
        *,
        user: str | None = None,
        authrole: str | None = None,
        cra: str | None = None,
        claims: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> ServerSession:
        """Return an established session: anonymous, or with a ticket for ``user`` (with ``claims``, issued at ``now``), or WAMP-CRA as ``cra``."""
        session = self.attach(codec)
        if cra is not None:
            self.hello(session, authmethods=["wampcra"], authid=cra)
            challenge = self.read_one(session)
            assert isinstance(challenge, Challenge), challenge
            key = wampcra_key(self.secret, cra)
            self.send(session, [5, wampcra_signature(key, challenge.extra["challenge"]), {}])
        elif user is not None:
            self.hello(session, authmethods=["ticket"])
            assert self.read_one(session) == Challenge("ticket", {})
            self.send(session, [5, mint_connect_token(self.secret, user, authrole=authrole, claims=claims, now=now), {}])
        else:
            self.hello(session)
        welcome = self.read_one(session)
        assert isinstance(welcome, Welcome), welcome
        assert session.id == welcome.session
        return session

    def subscribe(self, session: ServerSession, topic: str, match: str | None = None, request: int = 1) -> int:
        """Subscribe ``session`` to ``topic``; return the subscription id."""
        options = {} if match is None else {"match": match}
        self.send(session, [32, request, options, topic])
        subscribed = self.read_one(session)
        assert subscribed.TYPE == 33 and subscribed.request == request, subscribed  # type: ignore[attr-defined]
        subscription: int = subscribed.subscription  # type: ignore[attr-defined]
        return subscription


def challenge_of(message: Message) -> dict[str, Any]:
    """Return the decoded WAMP-CRA challenge string of a CHALLENGE."""
    assert isinstance(message, Challenge)
    decoded: dict[str, Any] = json.loads(message.extra["challenge"])
    return decoded
