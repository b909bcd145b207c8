"""SockJS framing (protocol 0.3.3), sans-I/O: frames, message encoding, transport wrappers.

A SockJS server sends four kinds of frames (sockjs-protocol-0.3.3 "Framing
accepted by the client")::

    o                   open: sent once, when a session starts
    h                   heartbeat
    a["m1","m2",...]    messages: an array of JSON string literals
    c[3000,"Go away!"]  close: a code and a reason

Messages travel as *JSON string literals*: :func:`encode_literal` turns a
message text into one, escaping what browsers would otherwise mangle. A
literal is made once per message and can be joined into the ``a`` frame of
every session that gets it (the broker's once-per-publish encoding).

The client sends messages, not frames: a JSON array of strings in the body
of ``xhr_send``/``jsonp_send``, or a JSON string or array in a WebSocket
message (:func:`decode_messages`, :func:`decode_websocket_message`).

Each HTTP transport wraps every frame in its own way (:func:`wrap_xhr`,
:func:`wrap_eventsource`, :func:`wrap_htmlfile`, :func:`wrap_jsonp`) and
some start with a prelude.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import parse_qs
from json.encoder import encode_basestring
from typing import Any

from .errors import BrokenJson, InvalidCallback, PayloadExpected

__all__ = [
    "ANOTHER_CONNECTION",
    "EVENTSOURCE_PRELUDE",
    "HEARTBEAT",
    "OPEN",
    "XHR_STREAMING_PRELUDE",
    "close_frame",
    "decode_form_messages",
    "decode_messages",
    "decode_websocket_message",
    "encode_literal",
    "htmlfile_prelude",
    "literal_from_json",
    "message_frame",
    "parse_frame",
    "validate_callback",
    "wrap_eventsource",
    "wrap_htmlfile",
    "wrap_jsonp",
    "wrap_xhr",
]

OPEN = b"o"
HEARTBEAT = b"h"

# sockjs-protocol-0.3.3 "JSON Unicode Encoding": characters the server must
# send escaped (escapable_by_server), plus lone surrogates, which Python
# strings can hold after decoding "\ud800" but UTF-8 cannot carry.
_SERVER_ESCAPE = re.compile("[\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]")
# Inside <script> (htmlfile) "</script>" would end the script: escape the
# HTML specials too, which JSON and JavaScript read back unchanged.
_SCRIPT_ESCAPE = re.compile("[<>&\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]")
# sockjs-protocol-0.3.3: callbacks matching [^a-zA-Z0-9-_.] are invalid.
_CALLBACK = re.compile(r"[a-zA-Z0-9_.\-]{1,256}")
_MAX_CALLBACK = 256


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _literal(text: str, escape: re.Pattern[str]) -> str:
    # encode_basestring escapes '"', '\\' and the controls U+0000-U+001F.
    literal: str = encode_basestring(text)
    if escape.search(literal):
        literal = escape.sub(_escape, literal)
    return literal


def encode_literal(text: str) -> bytes:
    """Return ``text`` as a UTF-8 JSON string literal, quotes included, escaped for SockJS."""
    return _literal(text, _SERVER_ESCAPE).encode("utf-8")


def literal_from_json(payload: bytes) -> bytes:
    """Return the literal of a message whose text is the UTF-8 ``payload`` (a WAMP JSON message).

    This is the framing function of the WAMP-over-SockJS wire codec.
    """
    return encode_literal(payload.decode("utf-8"))


def message_frame(literals: Sequence[bytes]) -> bytes:
    """Return the ``a`` frame carrying ``literals`` (from :func:`encode_literal`)."""
    if len(literals) == 1:
        return b"a[" + literals[0] + b"]"
    return b"a[" + b",".join(literals) + b"]"


def close_frame(code: int, reason: str) -> bytes:
    """Return the ``c`` frame ``c[code,"reason"]``."""
    return b"c[%d," % code + encode_literal(reason) + b"]"


#: Sent to a second receiving request while one is still attached.
ANOTHER_CONNECTION = close_frame(2010, "Another connection still open")


def parse_frame(frame: bytes) -> tuple[str, Any]:
    """Split a frame into its kind (``"o"``, ``"h"``, ``"a"``, ``"c"``) and decoded payload.

    For raw WebSocket receivers, which send messages without SockJS framing.
    ``a`` gives the list of message texts, ``c`` the ``[code, reason]`` pair.
    """
    kind = frame[:1].decode("ascii")
    if kind in ("a", "c"):
        return kind, json.loads(frame[1:])
    return kind, None


# Input ----------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid json")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BrokenJson(f"{where} must be a json array of strings, got {type(value).__name__}")
    return value


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise BrokenJson(f"{where} is not json: {exc}") from None
    except RecursionError:
        raise BrokenJson(f"{where} is nested too deeply") from None


def decode_messages(body: bytes | str) -> list[str]:
    """Return the messages of a send body: a JSON array of strings (``[]`` is fine).

    Raises:
        PayloadExpected: the body is empty.
        BrokenJson: the body is not UTF-8 JSON, or not an array of strings.
    """
    if not body:
        raise PayloadExpected()
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BrokenJson(f"send body is not utf-8: invalid byte at offset {exc.start}") from None
    return _strings(_parse(body, "send body"), "send body")


def decode_form_messages(body: bytes) -> list[str]:
    """Return the messages of a ``jsonp_send`` form body: the JSON array in field ``d``.

    Raises:
        PayloadExpected: no ``d`` field, or an empty one.
        BrokenJson: ``d`` is not a JSON array of strings.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenJson(f"form body is not utf-8: invalid byte at offset {exc.start}") from None
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=16)
    except ValueError:
        raise BrokenJson("form body has too many fields") from None
    value = fields.get("d", [""])[0]
    if not value:
        raise PayloadExpected()
    return decode_messages(value)


def decode_websocket_message(text: str) -> list[str]:
    """Return the messages of one WebSocket message: a JSON string, or an array of them.

    An empty message, and ``[]``, carry no messages (sockjs-protocol-0.3.3:
    "Empty frames must be ignored by the server side").

    Raises:
        BrokenJson: anything else.
    """
    if not text:
        return []
    value = _parse(text, "websocket message")
    if isinstance(value, str):
        return [value]
    return _strings(value, "websocket message")


def validate_callback(callback: str | None) -> bytes:
    """Return a JSONP/htmlfile callback name as bytes after checking it.

    Raises:
        InvalidCallback: none was given, or it has characters outside
            ``[a-zA-Z0-9-_.]`` (or is over 256 characters).
    """
    if not callback:
        raise InvalidCallback(None)
    if len(callback) > _MAX_CALLBACK or not _CALLBACK.fullmatch(callback):
        raise InvalidCallback(callback)
    return callback.encode("ascii")


# Transports -----------------------------------------------------------------

#: xhr_streaming: 2 KiB of ``h`` then a newline, so browsers start delivering data.
XHR_STREAMING_PRELUDE = b"h" * 2048 + b"\n"
#: eventsource: a newline first (an old Opera bug).
EVENTSOURCE_PRELUDE = b"\r\n"

_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def htmlfile_prelude(callback: bytes) -> bytes:
    """Return the start of an htmlfile response, padded past 1 KiB so browsers render it."""
    head = (_HTMLFILE_HEAD % callback.decode("ascii")).encode("utf-8")
    return head + b" " * max(0, 1024 - len(head)) + b"\r\n\r\n"


def wrap_xhr(frame: bytes) -> bytes:
    """xhr and xhr_streaming: the frame and a newline."""
    return frame + b"\n"


def wrap_eventsource(frame: bytes) -> bytes:
    """eventsource: one ``data:`` event per frame (frames never hold a raw newline)."""
    return b"data: " + frame + b"\r\n\r\n"


def _script_literal(frame: bytes) -> bytes:
    return _literal(frame.decode("utf-8"), _SCRIPT_ESCAPE).encode("utf-8")


def wrap_htmlfile(frame: bytes) -> bytes:
    """htmlfile: a script calling ``p("<frame>")``."""
    return b"<script>\np(" + _script_literal(frame) + b");\n</script>\r\n"


def wrap_jsonp(callback: bytes, frame: bytes) -> bytes:
    """jsonp: ``/**/callback("<frame>");`` (the comment defeats content sniffing tricks)."""
    return b"/**/" + callback + b"(" + _script_literal(frame) + b");\r\n"
