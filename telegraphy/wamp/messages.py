"""WAMP v2 messages: one frozen dataclass per message type.

Each class has its type code ``TYPE``, ``parse(raw)`` that validates a decoded
list and ``marshal()`` that returns the list to serialize. :func:`parse`
dispatches on the type code through :data:`MESSAGE_TYPES`.

Validation errors name the field and the message, as in "invalid type int for
'topic' in PUBLISH" (WAMP §6 "Messages" gives every message's structure).
Optional ``args``/``kwargs`` follow the spec's rule: ``Arguments`` is sent
whenever ``ArgumentsKw`` is, and both are left out when empty.

Errors quote what the peer sent only in short (:func:`_show`: at most a few
dozen characters, a few levels deep), so a huge or deeply nested value is
never echoed back nor costs a deep ``repr``. Options and details dicts must be
data every serializer carries (:func:`~telegraphy.wamp.serializer.unportable`:
no lone surrogate, no NaN, no bytes, …); payloads (``args``/``kwargs``) are
checked where they are published.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import ProtocolViolation
from .serializer import unportable

__all__ = [
    "MAX_ID",
    "MESSAGE_TYPES",
    "Abort",
    "Authenticate",
    "Call",
    "Challenge",
    "Error",
    "Event",
    "Goodbye",
    "Hello",
    "Invocation",
    "Message",
    "Publish",
    "Published",
    "Register",
    "Registered",
    "Result",
    "Subscribe",
    "Subscribed",
    "Unregister",
    "Unregistered",
    "Unsubscribe",
    "Unsubscribed",
    "Welcome",
    "Yield",
    "parse",
]

#: WAMP §7.1.3 "IDs": integers in [1, 2^53] (0 is accepted where the spec's
#: request ids of some clients start at 0).
MAX_ID = 2**53

# WAMP §7.1.1 "URIs", loose rule: components without whitespace, "." or "#",
# non-empty. Patterns for "wildcard" matching may leave components empty.
_LOOSE_URI = re.compile(r"^([^\s.#]+\.)*([^\s.#]+)$")
_WILDCARD_URI = re.compile(r"^(([^\s.#]+\.)|\.)*([^\s.#]*)$")
_PREFIX_URI = re.compile(r"^[^\s#]*$")

M = TypeVar("M", bound="Message")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 40
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 4


def _show(value: Any) -> str:
    """A short, bounded ``repr`` of what a peer sent, for error messages."""
    return _REPR.repr(value)


class Message:
    """Base of all message classes."""

    TYPE: ClassVar[int]
    NAME: ClassVar[str]
    LENGTH: ClassVar[tuple[int, int]]  # (min, max) list length including the code

    def marshal(self) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[M], raw: Sequence[Any]) -> M:
        raise NotImplementedError

    @classmethod
    def _check_length(cls, raw: Sequence[Any]) -> None:
        low, high = cls.LENGTH
        if not low <= len(raw) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise ProtocolViolation(f"invalid length {len(raw)} for {cls.NAME}: expected {expected} elements")

    # Field validators: each names the field and the message in its error.

    @classmethod
    def _id(cls, value: Any, name: str) -> int:
        if type(value) is not int:
            raise ProtocolViolation(f"invalid type {_type_name(value)} for '{name}' in {cls.NAME}")
        if not 0 <= value <= MAX_ID:
            raise ProtocolViolation(f"invalid value {value} for '{name}' in {cls.NAME}: ids are 0 to 2**53")
        return value

    @classmethod
    def _dict(cls, value: Any, name: str, payload: bool = False) -> dict[str, Any]:
        if type(value) is not dict:
            raise ProtocolViolation(f"invalid type {_type_name(value)} for '{name}' in {cls.NAME}")
        if not payload and value:
            # Options and details are echoed, stored and logged: keep them portable.
            problem = unportable(value, name)
            if problem is not None:
                raise ProtocolViolation(f"invalid value for '{name}' in {cls.NAME}: {problem}")
        return value

    @classmethod
    def _str(cls, value: Any, name: str) -> str:
        if type(value) is not str:
            raise ProtocolViolation(f"invalid type {_type_name(value)} for '{name}' in {cls.NAME}")
        text: str = value
        return text

    @classmethod
    def _uri(cls, value: Any, name: str, match: str = "exact") -> str:
        uri = cls._str(value, name)
        pattern = {"exact": _LOOSE_URI, "prefix": _PREFIX_URI, "wildcard": _WILDCARD_URI}.get(match, _LOOSE_URI)
        if (not uri and match != "prefix") or not pattern.match(uri) or unportable(uri, name) is not None:
            raise ProtocolViolation(f"invalid uri {_show(uri)} for '{name}' in {cls.NAME}")
        return uri

    @classmethod
    def _payload(cls, raw: Sequence[Any], start: int) -> tuple[list[Any] | None, dict[str, Any] | None]:
        args: list[Any] | None = None
        kwargs: dict[str, Any] | None = None
        if len(raw) > start:
            if type(raw[start]) is not list:
                raise ProtocolViolation(f"invalid type {_type_name(raw[start])} for 'args' in {cls.NAME}")
            args = raw[start]
        if len(raw) > start + 1:
            kwargs = cls._dict(raw[start + 1], "kwargs", payload=True)
        return args, kwargs


def _with_payload(head: list[Any], args: list[Any] | None, kwargs: dict[str, Any] | None) -> list[Any]:
    if kwargs:
        head.append(args if args is not None else [])
        head.append(kwargs)
    elif args:
        head.append(args)
    return head


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """HELLO: ``[1, Realm|uri, Details|dict]``; a client opens a session."""

    TYPE: ClassVar[int] = 1
    NAME: ClassVar[str] = "HELLO"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    realm: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Hello:
        cls._check_length(raw)
        return cls(cls._uri(raw[1], "realm"), cls._dict(raw[2], "details"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.realm, self.details]


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """WELCOME: ``[2, Session|id, Details|dict]``."""

    TYPE: ClassVar[int] = 2
    NAME: ClassVar[str] = "WELCOME"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    session: int
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Welcome:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "session"), cls._dict(raw[2], "details"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.session, self.details]


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """ABORT: ``[3, Details|dict, Reason|uri]``; ends a session being opened (or a broken one)."""

    TYPE: ClassVar[int] = 3
    NAME: ClassVar[str] = "ABORT"
    LENGTH: ClassVar[tuple[int, int]] = (3, 5)
    details: dict[str, Any]
    reason: str

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Abort:
        cls._check_length(raw)
        return cls(cls._dict(raw[1], "details"), cls._uri(raw[2], "reason"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.details, self.reason]


@dataclass(frozen=True, slots=True)
class Challenge(Message):
    """CHALLENGE: ``[4, AuthMethod|string, Extra|dict]`` (WAMP §14.5 authentication)."""

    TYPE: ClassVar[int] = 4
    NAME: ClassVar[str] = "CHALLENGE"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    method: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Challenge:
        cls._check_length(raw)
        return cls(cls._str(raw[1], "method"), cls._dict(raw[2], "extra"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.method, self.extra]


@dataclass(frozen=True, slots=True)
class Authenticate(Message):
    """AUTHENTICATE: ``[5, Signature|string, Extra|dict]``."""

    TYPE: ClassVar[int] = 5
    NAME: ClassVar[str] = "AUTHENTICATE"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    signature: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Authenticate:
        cls._check_length(raw)
        return cls(cls._str(raw[1], "signature"), cls._dict(raw[2], "extra"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.signature, self.extra]


@dataclass(frozen=True, slots=True)
class Goodbye(Message):
    """GOODBYE: ``[6, Details|dict, Reason|uri]``; closes an established session."""

    TYPE: ClassVar[int] = 6
    NAME: ClassVar[str] = "GOODBYE"
    LENGTH: ClassVar[tuple[int, int]] = (3, 5)
    details: dict[str, Any]
    reason: str

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Goodbye:
        cls._check_length(raw)
        return cls(cls._dict(raw[1], "details"), cls._uri(raw[2], "reason"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.details, self.reason]


@dataclass(frozen=True, slots=True)
class Error(Message):
    """ERROR: ``[8, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 8
    NAME: ClassVar[str] = "ERROR"
    LENGTH: ClassVar[tuple[int, int]] = (5, 7)
    request_type: int
    request: int
    details: dict[str, Any]
    error: str
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Error:
        cls._check_length(raw)
        request_type = cls._id(raw[1], "request_type")
        args, kwargs = cls._payload(raw, 5)
        return cls(request_type, cls._id(raw[2], "request"), cls._dict(raw[3], "details"), cls._uri(raw[4], "error"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request_type, self.request, self.details, self.error], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Publish(Message):
    """PUBLISH: ``[16, Request|id, Options|dict, Topic|uri, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 16
    NAME: ClassVar[str] = "PUBLISH"
    LENGTH: ClassVar[tuple[int, int]] = (4, 6)
    request: int
    options: dict[str, Any]
    topic: str
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Publish:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 4)
        return cls(cls._id(raw[1], "request"), cls._dict(raw[2], "options"), cls._uri(raw[3], "topic"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request, self.options, self.topic], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Published(Message):
    """PUBLISHED: ``[17, PUBLISH.Request|id, Publication|id]``."""

    TYPE: ClassVar[int] = 17
    NAME: ClassVar[str] = "PUBLISHED"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    request: int
    publication: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Published:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "publication"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.publication]


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """SUBSCRIBE: ``[32, Request|id, Options|dict, Topic|uri]``.

    ``Options.match`` may be ``exact`` (default), ``prefix`` or ``wildcard``
    (WAMP advanced profile, "Pattern-based Subscriptions").
    """

    TYPE: ClassVar[int] = 32
    NAME: ClassVar[str] = "SUBSCRIBE"
    LENGTH: ClassVar[tuple[int, int]] = (4, 4)
    request: int
    options: dict[str, Any]
    topic: str

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Subscribe:
        cls._check_length(raw)
        options = cls._dict(raw[2], "options")
        match = options.get("match", "exact")
        if match not in ("exact", "prefix", "wildcard"):
            raise ProtocolViolation(f"invalid value {_show(match)} for 'options.match' in SUBSCRIBE")
        return cls(cls._id(raw[1], "request"), options, cls._uri(raw[3], "topic", match))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.options, self.topic]


@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """SUBSCRIBED: ``[33, SUBSCRIBE.Request|id, Subscription|id]``."""

    TYPE: ClassVar[int] = 33
    NAME: ClassVar[str] = "SUBSCRIBED"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    request: int
    subscription: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Subscribed:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "subscription"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.subscription]


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """UNSUBSCRIBE: ``[34, Request|id, SUBSCRIBED.Subscription|id]``."""

    TYPE: ClassVar[int] = 34
    NAME: ClassVar[str] = "UNSUBSCRIBE"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    request: int
    subscription: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Unsubscribe:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "subscription"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.subscription]


@dataclass(frozen=True, slots=True)
class Unsubscribed(Message):
    """UNSUBSCRIBED: ``[35, UNSUBSCRIBE.Request|id]``."""

    TYPE: ClassVar[int] = 35
    NAME: ClassVar[str] = "UNSUBSCRIBED"
    LENGTH: ClassVar[tuple[int, int]] = (2, 3)
    request: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Unsubscribed:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request]


@dataclass(frozen=True, slots=True)
class Event(Message):
    """EVENT: ``[36, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 36
    NAME: ClassVar[str] = "EVENT"
    LENGTH: ClassVar[tuple[int, int]] = (4, 6)
    subscription: int
    publication: int
    details: dict[str, Any]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Event:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 4)
        return cls(cls._id(raw[1], "subscription"), cls._id(raw[2], "publication"), cls._dict(raw[3], "details"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.subscription, self.publication, self.details], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Call(Message):
    """CALL: ``[48, Request|id, Options|dict, Procedure|uri, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 48
    NAME: ClassVar[str] = "CALL"
    LENGTH: ClassVar[tuple[int, int]] = (4, 6)
    request: int
    options: dict[str, Any]
    procedure: str
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Call:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 4)
        return cls(cls._id(raw[1], "request"), cls._dict(raw[2], "options"), cls._uri(raw[3], "procedure"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request, self.options, self.procedure], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Result(Message):
    """RESULT: ``[50, CALL.Request|id, Details|dict, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 50
    NAME: ClassVar[str] = "RESULT"
    LENGTH: ClassVar[tuple[int, int]] = (3, 5)
    request: int
    details: dict[str, Any]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Result:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 3)
        return cls(cls._id(raw[1], "request"), cls._dict(raw[2], "details"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request, self.details], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Register(Message):
    """REGISTER: ``[64, Request|id, Options|dict, Procedure|uri]``."""

    TYPE: ClassVar[int] = 64
    NAME: ClassVar[str] = "REGISTER"
    LENGTH: ClassVar[tuple[int, int]] = (4, 4)
    request: int
    options: dict[str, Any]
    procedure: str

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Register:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._dict(raw[2], "options"), cls._uri(raw[3], "procedure"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.options, self.procedure]


@dataclass(frozen=True, slots=True)
class Registered(Message):
    """REGISTERED: ``[65, REGISTER.Request|id, Registration|id]``."""

    TYPE: ClassVar[int] = 65
    NAME: ClassVar[str] = "REGISTERED"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    request: int
    registration: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Registered:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "registration"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.registration]


@dataclass(frozen=True, slots=True)
class Unregister(Message):
    """UNREGISTER: ``[66, Request|id, REGISTERED.Registration|id]``."""

    TYPE: ClassVar[int] = 66
    NAME: ClassVar[str] = "UNREGISTER"
    LENGTH: ClassVar[tuple[int, int]] = (3, 3)
    request: int
    registration: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Unregister:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "registration"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request, self.registration]


@dataclass(frozen=True, slots=True)
class Unregistered(Message):
    """UNREGISTERED: ``[67, UNREGISTER.Request|id]``."""

    TYPE: ClassVar[int] = 67
    NAME: ClassVar[str] = "UNREGISTERED"
    LENGTH: ClassVar[tuple[int, int]] = (2, 3)
    request: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Unregistered:
        cls._check_length(raw)
        return cls(cls._id(raw[1], "request"))

    def marshal(self) -> list[Any]:
        return [self.TYPE, self.request]


@dataclass(frozen=True, slots=True)
class Invocation(Message):
    """INVOCATION: ``[68, Request|id, REGISTERED.Registration|id, Details|dict, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 68
    NAME: ClassVar[str] = "INVOCATION"
    LENGTH: ClassVar[tuple[int, int]] = (4, 6)
    request: int
    registration: int
    details: dict[str, Any]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Invocation:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 4)
        return cls(cls._id(raw[1], "request"), cls._id(raw[2], "registration"), cls._dict(raw[3], "details"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request, self.registration, self.details], self.args, self.kwargs)


@dataclass(frozen=True, slots=True)
class Yield(Message):
    """YIELD: ``[70, INVOCATION.Request|id, Options|dict, Arguments?, ArgumentsKw?]``."""

    TYPE: ClassVar[int] = 70
    NAME: ClassVar[str] = "YIELD"
    LENGTH: ClassVar[tuple[int, int]] = (3, 5)
    request: int
    options: dict[str, Any]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Yield:
        cls._check_length(raw)
        args, kwargs = cls._payload(raw, 3)
        return cls(cls._id(raw[1], "request"), cls._dict(raw[2], "options"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _with_payload([self.TYPE, self.request, self.options], self.args, self.kwargs)


#: Registry of message classes by WAMP type code.
MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello, Welcome, Abort, Challenge, Authenticate, Goodbye, Error,
        Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed, Event,
        Call, Result, Register, Registered, Unregister, Unregistered, Invocation, Yield,
    )
}


def parse(raw: Any) -> Message:
    """Return the message object for a decoded WAMP message (a list).

    Raises:
        ProtocolViolation: naming what is wrong, for anything but a valid message.
    """
    if type(raw) is not list:
        raise ProtocolViolation(f"invalid message: expected a list, got {_type_name(raw)}")
    if not raw:
        raise ProtocolViolation("invalid message: empty list")
    code = raw[0]
    if type(code) is not int:
        raise ProtocolViolation(f"invalid message type {_show(code)}: expected an integer")
    cls = MESSAGE_TYPES.get(code)
    if cls is None:
        raise ProtocolViolation(f"unknown message type {code}")
    return cls.parse(raw)
