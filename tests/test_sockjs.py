"""The sans-I/O SockJS core: framing, sessions with time passed in, HTTP details, WAMP over SockJS.

Receivers are in-memory lists of frames; sessions run on a fake clock
(``now`` is just a number). Nothing here opens a socket or starts a timer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from typing import Any

import pytest

from telegraphy.sockjs import (
    BrokenJson,
    InvalidCallback,
    LocalProtocolError,
    PayloadExpected,
    SessionNotFound,
    SessionOptions,
    SessionRegistry,
    SessionState,
    SockJSSession,
)
from telegraphy.sockjs.echo import CloseHandler, EchoHandler
from telegraphy.sockjs.errors import BadHandshake
from telegraphy.sockjs.frames import (
    ANOTHER_CONNECTION,
    close_frame,
    decode_form_messages,
    decode_messages,
    decode_websocket_message,
    encode_literal,
    htmlfile_prelude,
    literal_from_json,
    message_frame,
    parse_frame,
    validate_callback,
    wrap_eventsource,
    wrap_htmlfile,
    wrap_jsonp,
    wrap_xhr,
)
from telegraphy.sockjs.http import (
    NO_CACHE,
    cors_headers,
    iframe_page,
    info_document,
    jsessionid_cookie,
    jsonp_origin,
    origin_allowed,
    preflight_headers,
    sri,
    websocket_key,
)
from telegraphy.sockjs.wamp import WAMP_CODEC, WampSockJSConnection
from telegraphy.tokens import mint_connect_token
from telegraphy.wamp import Authenticator, Router

OPTIONS = SessionOptions(heartbeat=25.0, disconnect_delay=5.0, max_queue=1000)


class FakeReceiver:
    """A receiver that keeps the frames written to it."""

    def __init__(self, response_limit: float = 0) -> None:
        self.response_limit = response_limit
        self.frames: list[bytes] = []
        self.finished = False

    def write_frame(self, frame: bytes) -> int:
        assert not self.finished, "frame written to a finished receiver"
        self.frames.append(frame)
        return len(frame) + 1  # as xhr: the frame and a newline

    def finish(self) -> None:
        self.finished = True


class Recorder:
    """A session handler that records what it hears."""

    def __init__(self, session: SockJSSession) -> None:
        self.session = session
        self.events: list[Any] = []

    def on_open(self, now: float) -> None:
        self.events.append(("open", now))

    def on_messages(self, messages: list[str], now: float) -> None:
        self.events.append(("messages", messages))

    def on_close(self) -> None:
        self.events.append(("close", self.session.close_reason))


def polling() -> FakeReceiver:
    return FakeReceiver(0)


def streaming(limit: float = 4096) -> FakeReceiver:
    return FakeReceiver(limit)


def registry(factory: Any = Recorder, options: SessionOptions = OPTIONS) -> SessionRegistry:
    return SessionRegistry(factory, options)


# Framing -----------------------------------------------------------------------


def test_literals_escape_what_sockjs_requires() -> None:
    """Characters the spec's escapable_by_server matches go out as lowercase \\uXXXX escapes."""
    escapable = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")
    text = "".join(chr(i) for i in range(255, 65536) if escapable.match(chr(i)))
    expected = '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'
    assert encode_literal(text) == expected.encode("ascii")
    assert json.loads(encode_literal(text)) == text


def test_literals_carry_quotes_controls_unicode_and_lone_surrogates() -> None:
    """Quotes, backslashes, controls and lone surrogates come back unchanged after JSON decoding; UTF-8 stays UTF-8."""
    for text in ['say "hi"\\', "\x00\n\r\t", "héllo wörld ✓", "\ud800 lone", ""]:
        literal = encode_literal(text)
        literal.decode("utf-8")  # always valid UTF-8
        assert json.loads(literal) == text
    assert encode_literal("✓") == '"✓"'.encode()


def test_frames() -> None:
    """Message frames join literals in one array; close frames carry code and reason."""
    assert message_frame([b'"a"']) == b'a["a"]'
    assert message_frame([b'"a"', b'"b"']) == b'a["a","b"]'
    assert close_frame(3000, "Go away!") == b'c[3000,"Go away!"]'
    assert ANOTHER_CONNECTION == b'c[2010,"Another connection still open"]'
    assert parse_frame(b'a["x","y"]') == ("a", ["x", "y"])
    assert parse_frame(b'c[3000,"Go away!"]') == ("c", [3000, "Go away!"])
    assert parse_frame(b"h") == ("h", None)


def test_wamp_literal_is_the_json_text_as_a_string() -> None:
    """The WAMP codec frames each message as the literal of its JSON text."""
    data = WAMP_CODEC.encode([36, 1, 2, {}, [{"name": "a\u2028b"}]])
    assert json.loads(json.loads(data)) == [36, 1, 2, {}, [{"name": "a\u2028b"}]]
    assert literal_from_json(b"[1,2]") == b'"[1,2]"'


def test_transport_wrappers() -> None:
    """Each HTTP transport wraps frames as the spec shows."""
    frame = b'a["x"]'
    assert wrap_xhr(frame) == b'a["x"]\n'
    assert wrap_eventsource(frame) == b'data: a["x"]\r\n\r\n'
    assert wrap_htmlfile(frame) == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'
    assert wrap_jsonp(b"cb", frame) == b'/**/cb("a[\\"x\\"]");\r\n'


def test_htmlfile_cannot_be_broken_out_of() -> None:
    """A message holding </script> cannot end the htmlfile script early; it decodes back unchanged."""
    frame = message_frame([encode_literal("</script><script>alert(1)</script>")])
    wrapped = wrap_htmlfile(frame)
    assert wrapped.count(b"</script>") == 1
    inner = wrapped[len(b"<script>\np(") : -len(b");\n</script>\r\n")]
    assert json.loads(inner) == frame.decode()
    assert b"</script>" not in wrap_jsonp(b"cb", frame)


def test_htmlfile_prelude_is_padded() -> None:
    """The htmlfile prelude names the callback and is over 1 KiB."""
    prelude = htmlfile_prelude(b"callback")
    assert b"var c = parent.callback;" in prelude
    assert len(prelude) > 1024 and prelude.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("body", [b'["a","b"]', '["a","b"]'])
def test_decode_messages(body: bytes | str) -> None:
    """A send body is a JSON array of strings."""
    assert decode_messages(body) == ["a", "b"]
    assert decode_messages(b"[]") == []


@pytest.mark.parametrize("body", [b'["x', b"{}", b'"a"', b"[1]", b'["a",null]', b"\xff\xfe", b"NaN", b"[NaN]", b" "])
def test_decode_messages_refuses_broken_json(body: bytes) -> None:
    """Anything but a JSON array of strings is "Broken JSON encoding." (500)."""
    with pytest.raises(BrokenJson) as info:
        decode_messages(body)
    assert info.value.status == 500 and info.value.body == "Broken JSON encoding."


def test_decode_messages_refuses_an_empty_body() -> None:
    """An empty body is "Payload expected." (500)."""
    with pytest.raises(PayloadExpected) as info:
        decode_messages(b"")
    assert info.value.status == 500 and info.value.body == "Payload expected."


def test_decode_messages_refuses_deep_nesting() -> None:
    """A body nested deeper than the parser goes is broken JSON, not a crash."""
    with pytest.raises(BrokenJson):
        decode_messages(b"[" * 100_000 + b"]" * 100_000)


def test_decode_form_messages() -> None:
    """jsonp_send forms carry the array in field d; no d, or an empty one, is "Payload expected."."""
    assert decode_form_messages(b"d=%5B%22x%22%5D") == ["x"]
    for body in [b"", b"d=", b"p=p"]:
        with pytest.raises(PayloadExpected):
            decode_form_messages(body)
    with pytest.raises(BrokenJson):
        decode_form_messages(b"d=%5B%22x")
    with pytest.raises(BrokenJson):
        decode_form_messages(b"&".join(b"f%d=1" % i for i in range(100)))


def test_decode_websocket_message() -> None:
    """A WebSocket message is a JSON string or array of them; empty messages and [] carry nothing."""
    assert decode_websocket_message('"a"') == ["a"]
    assert decode_websocket_message('["a","b"]') == ["a", "b"]
    assert decode_websocket_message("") == []
    assert decode_websocket_message("[]") == []
    for text in ['["a', "1", "{}", '["a",2]']:
        with pytest.raises(BrokenJson):
            decode_websocket_message(text)


def test_callbacks() -> None:
    """Callbacks are [a-zA-Z0-9-_.]+; missing and invalid ones are told apart."""
    assert validate_callback("_jp.a1-b_2") == b"_jp.a1-b_2"
    with pytest.raises(InvalidCallback) as missing:
        validate_callback(None)
    assert missing.value.body == '"callback" parameter required'
    for name in [" ", "*", "abc(", "a\nb", "x" * 257]:
        with pytest.raises(InvalidCallback) as invalid:
            validate_callback(name)
        assert invalid.value.body == 'invalid "callback" parameter'


# Sessions ----------------------------------------------------------------------


def test_first_receiver_opens_the_session() -> None:
    """The first receiver gets "o" and the handler hears on_open; a polling receiver is then finished."""
    reg = registry()
    session = reg.open("s1", 0.0)
    receiver = polling()
    assert session.attach(receiver, 1.0)
    assert receiver.frames == [b"o"] and receiver.finished
    assert session.state is SessionState.OPEN
    assert session.handler.events == [("open", 1.0)]  # type: ignore[attr-defined]


def test_messages_queue_until_a_receiver_comes() -> None:
    """Messages sent with no receiver attached wait, then go out as one a[...] frame."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    assert session.send(["one", "two"])
    assert session.send_literals([b'"three"'])
    assert session.pending == 3
    receiver = polling()
    session.attach(receiver, 1.0)
    assert receiver.frames == [b'a["one","two","three"]'] and receiver.finished
    assert session.pending == 0


def test_a_waiting_poll_gets_the_next_messages() -> None:
    """A polling receiver waiting on an open session is answered by the next send."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    receiver = polling()
    session.attach(receiver, 0.5)
    assert receiver.frames == [] and not receiver.finished
    session.send(["x"])
    assert receiver.frames == [b'a["x"]'] and receiver.finished


def test_streaming_receiver_ends_past_its_limit() -> None:
    """A streaming receiver takes frames until its byte limit, then is finished; the session stays open."""
    session = registry().open("s1", 0.0)
    receiver = streaming(limit=20)
    session.attach(receiver, 0.0)
    session.send(["12345"])
    assert not receiver.finished
    session.send(["12345"])
    assert receiver.frames == [b"o", b'a["12345"]', b'a["12345"]'] and receiver.finished
    session.send(["later"])
    assert session.pending == 1 and session.state is SessionState.OPEN


def test_incoming_messages_reach_the_handler() -> None:
    """receive() hands messages to the handler while the session is open; empty lists are not delivered."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    session.receive(["a", "b"], 1.0)
    session.receive([], 1.0)
    assert session.handler.events[1:] == [("messages", ["a", "b"])]  # type: ignore[attr-defined]


def test_second_receiver_gets_2010_and_the_first_is_undisturbed() -> None:
    """While one receiver is attached, another gets c[2010,...] and is finished; the first still gets messages."""
    session = registry().open("s1", 0.0)
    first = streaming()
    session.attach(first, 0.0)
    second = streaming()
    assert not session.attach(second, 1.0)
    assert second.frames == [b'c[2010,"Another connection still open"]'] and second.finished
    session.send(["x"])
    assert first.frames == [b"o", b'a["x"]'] and not first.finished
    session.detach(second, 2.0)  # the refused request's connection closing changes nothing
    assert session.state is SessionState.OPEN


def test_close_3000_is_served_until_the_session_expires() -> None:
    """The close service's c[3000,"Go away!"] goes to every receiver until the disconnect delay passes."""
    reg = registry(CloseHandler)
    session = reg.open("s1", 0.0)
    receiver = polling()
    session.attach(receiver, 0.0)
    assert receiver.frames == [b"o"]
    for now in (1.0, 2.0):
        again = polling()
        reg.open("s1", now).attach(again, now)
        assert again.frames == [b'c[3000,"Go away!"]'] and again.finished
    reg.expire(1.0)  # the delay starts at the first tick after the close
    assert reg.expire(5.5) == 0
    assert reg.expire(6.0) == 1
    fresh = reg.open("s1", 7.0)
    assert fresh is not session and fresh.state is SessionState.CONNECTING


def test_streaming_close_sends_open_then_close() -> None:
    """On a streaming receiver the close service writes o, then c[3000,...], then finishes it."""
    session = registry(CloseHandler).open("s1", 0.0)
    receiver = streaming()
    session.attach(receiver, 0.0)
    assert receiver.frames == [b"o", b'c[3000,"Go away!"]'] and receiver.finished


def test_queued_messages_go_out_before_the_close_frame() -> None:
    """Closing keeps what was queued: the next receivers get it, then the close frame."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    session.send(["last words"])
    session.close(1000, "bye")
    first, second = polling(), polling()
    session.attach(first, 1.0)
    session.attach(second, 1.0)
    assert first.frames == [b'a["last words"]'] and second.frames == [b'c[1000,"bye"]']


def test_on_close_is_heard_once() -> None:
    """The handler hears on_close once, with the close reason, however often close() is called."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    session.close(3001, "first")
    session.close(3002, "second")
    assert session.handler.events[1:] == [("close", (3001, "first"))]  # type: ignore[attr-defined]


def test_heartbeat_after_the_interval_with_now() -> None:
    """An attached receiver gets "h" once the heartbeat interval passes with nothing written."""
    reg = registry()
    session = reg.open("s1", 0.0)
    receiver = streaming()
    session.attach(receiver, 0.0)
    reg.expire(10.0)  # schedules the next heartbeat 25 s after this tick
    reg.expire(34.0)
    assert receiver.frames == [b"o"]
    reg.expire(35.0)
    assert receiver.frames == [b"o", b"h"]


def test_heartbeat_answers_a_waiting_poll() -> None:
    """A poll waiting with nothing to say is answered with "h" after the interval."""
    reg = registry()
    session = reg.open("s1", 0.0)
    session.attach(polling(), 0.0)
    receiver = polling()
    session.attach(receiver, 1.0)
    reg.expire(25.0)
    assert receiver.frames == []
    reg.expire(26.0)
    assert receiver.frames == [b"h"] and receiver.finished


def test_session_expires_without_a_receiver() -> None:
    """With no receiver for the disconnect delay the session closes, the handler hears it, and the id is free."""
    reg = registry()
    session = reg.open("s1", 0.0)
    session.attach(polling(), 0.0)
    reg.expire(0.5)  # the poll was finished without a clock: the delay starts here
    assert reg.expire(5.4) == 0 and reg.get("s1") is session
    assert reg.expire(5.5) == 1
    assert reg.get("s1") is None and session.state is SessionState.CLOSED
    assert session.handler.events[-1] == ("close", None)  # type: ignore[attr-defined]


def test_an_attached_receiver_keeps_the_session_alive() -> None:
    """A session with a receiver attached never expires."""
    reg = registry()
    session = reg.open("s1", 0.0)
    session.attach(streaming(), 0.0)
    for now in range(1, 100, 10):
        reg.expire(float(now))
    assert session.state is SessionState.OPEN


def test_a_session_nobody_attached_to_expires() -> None:
    """A session created but never attached to expires after the delay."""
    reg = registry()
    reg.open("s1", 0.0)
    assert reg.expire(6.0) == 1 and len(reg) == 0


def test_lost_receiver_closes_with_1002() -> None:
    """A receiver whose connection ends on its own closes the session with c[1002,"Connection interrupted"]."""
    reg = registry()
    session = reg.open("s1", 0.0)
    receiver = streaming()
    session.attach(receiver, 0.0)
    session.detach(receiver, 1.0)
    assert session.state is SessionState.CLOSING
    assert session.handler.events[-1] == ("close", (1002, "Connection interrupted"))  # type: ignore[attr-defined]
    after = polling()
    session.attach(after, 2.0)
    assert after.frames == [b'c[1002,"Connection interrupted"]']
    assert reg.expire(5.9) == 0 and reg.expire(6.0) == 1


def test_queue_over_budget_closes_as_slow_consumer() -> None:
    """A session whose queue passes max_queue with no receiver drops it and closes with 1008."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    assert session.send_literals([b'"' + b"x" * 500 + b'"'])
    assert not session.send_literals([b'"' + b"x" * 500 + b'"'])
    assert session.state is SessionState.CLOSING and session.pending == 0
    receiver = polling()
    session.attach(receiver, 1.0)
    assert receiver.frames == [b'c[1008,"slow consumer: outgoing buffer full"]']


def test_sends_to_a_closed_session_are_dropped() -> None:
    """Sending to a closing session neither queues nor fails."""
    session = registry().open("s1", 0.0)
    session.attach(polling(), 0.0)
    session.close(3000, "Go away!")
    assert session.send(["x"]) and session.pending == 0
    session.receive(["y"], 1.0)
    assert ("messages", ["y"]) not in session.handler.events  # type: ignore[attr-defined]


def test_bound_session_lives_with_its_websocket() -> None:
    """A WebSocket session is not findable by id and ends, for the handler too, when its connection ends."""
    reg = registry()
    session = reg.open_bound(0.0, peer="10.0.0.1")
    socket = FakeReceiver(math.inf)
    session.attach(socket, 0.0)
    session.send(["x"])
    assert socket.frames == [b"o", b'a["x"]'] and session.peer == "10.0.0.1"
    assert reg.get(session.id) is None and len(reg) == 1
    session.detach(socket, 1.0)
    assert session.state is SessionState.CLOSED
    assert session.handler.events[-1] == ("close", None)  # type: ignore[attr-defined]
    assert reg.expire(1.0) == 1 and len(reg) == 0


def test_bound_session_close_finishes_its_websocket() -> None:
    """Closing a WebSocket session writes the close frame and finishes the socket."""
    reg = registry(CloseHandler)
    session = reg.open_bound(0.0)
    socket = FakeReceiver(math.inf)
    session.attach(socket, 0.0)
    assert socket.frames == [b"o", b'c[3000,"Go away!"]'] and socket.finished
    assert session.state is SessionState.CLOSED


def test_echo_service() -> None:
    """The echo service sends messages back in one frame."""
    session = registry(EchoHandler).open("s1", 0.0)
    receiver = streaming()
    session.attach(receiver, 0.0)
    session.receive(["a", "b"], 1.0)
    assert receiver.frames == [b"o", b'a["a","b"]']


def test_attaching_to_a_closed_session_is_a_local_error() -> None:
    """A closed session refuses receivers: the caller should have asked the registry."""
    reg = registry()
    session = reg.open("s1", 0.0)
    reg.expire(10.0)
    with pytest.raises(LocalProtocolError):
        session.attach(polling(), 11.0)


def test_close_all() -> None:
    """close_all closes every session with the given code."""
    reg = registry()
    sessions = [reg.open(f"s{i}", 0.0) for i in range(3)]
    for session in sessions:
        session.attach(polling(), 0.0)
    reg.close_all(1001, "going away")
    assert all(s.close_reason == (1001, "going away") for s in sessions)


# HTTP details --------------------------------------------------------------------


def test_cors_echoes_the_origin() -> None:
    """CORS echoes Origin (null included) with credentials; no Origin gets * without credentials."""
    assert cors_headers("http://a.example") == [
        ("Access-Control-Allow-Origin", "http://a.example"),
        ("Access-Control-Allow-Credentials", "true"),
    ]
    assert cors_headers("null")[0] == ("Access-Control-Allow-Origin", "null")
    assert cors_headers(None) == [("Access-Control-Allow-Origin", "*")]


def test_preflight_is_cacheable_for_a_year() -> None:
    """Preflight answers carry a year of caching, the methods and the echoed request headers."""
    headers = dict(preflight_headers("http://a.example", ("OPTIONS", "POST"), "a, b", 0.0))
    assert headers["Cache-Control"] == "public, max-age=31536000"
    assert headers["Access-Control-Max-Age"] == "31536000"
    assert headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"
    assert headers["Access-Control-Allow-Headers"] == "a, b"
    assert headers["Expires"] == "Fri, 01 Jan 1971 00:00:00 GMT"
    assert "Access-Control-Allow-Headers" not in dict(preflight_headers(None, ("GET",), "", 0.0))
    assert NO_CACHE == "no-store, no-cache, no-transform, must-revalidate, max-age=0"


def test_origin_rules_follow_allowed_origins() -> None:
    """No Origin and same-host pass; others need --allowed-origins (or *)."""
    assert origin_allowed(None, "gw.example:9000", ())
    assert origin_allowed("https://gw.example:9000", "gw.example:9000", ())
    assert not origin_allowed("https://evil.example", "gw.example:9000", ())
    assert not origin_allowed("null", "gw.example:9000", ())
    assert origin_allowed("https://App.example/", "gw.example:9000", ("https://app.example",))
    assert origin_allowed("null", "gw.example:9000", ("*",))


def test_jsessionid_echoes_safe_values_only() -> None:
    """The cookie echoes the client's JSESSIONID when it is a plain token, else dummy."""
    assert jsessionid_cookie(None) == "JSESSIONID=dummy; Path=/"
    assert jsessionid_cookie("abcdef") == "JSESSIONID=abcdef; Path=/"
    assert jsessionid_cookie("a;b\r\nSet-Cookie: x") == "JSESSIONID=dummy; Path=/"


def test_info_and_iframe() -> None:
    """The info document has the four fields; the iframe page loads the client URL, escaped, with a stable ETag."""
    assert json.loads(info_document(websocket=True, cookie_needed=False, entropy=7)) == {
        "websocket": True,
        "cookie_needed": False,
        "origins": ["*:*"],
        "entropy": 7,
    }
    page, etag = iframe_page("https://cdn.example/sockjs.js?a=1&b=2", "sha384-abc")
    assert b'<script src="https://cdn.example/sockjs.js?a=1&amp;b=2" integrity="sha384-abc" crossorigin="anonymous"></script>' in page
    assert iframe_page("https://cdn.example/sockjs.js?a=1&b=2", "sha384-abc")[1] == etag
    assert iframe_page('/x"><script>', '"><script>')[0].count(b"<script") == 2
    assert b'<script src="sockjs.min.js?v=1"></script>' in iframe_page("sockjs.min.js?v=1")[0]
    assert sri(b"alert(1)") == "sha384-" + base64.b64encode(hashlib.sha384(b"alert(1)").digest()).decode()


def test_websocket_key_checks_the_handshake() -> None:
    """Only a version 13 upgrade with a 16-byte key passes; the errors are 400s."""
    good = {"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="}
    assert websocket_key(good) == "x3JJHMbDL1EzLkh9GBhXDw=="
    for bad in [{}, {**good, "Connection": "close"}, {**good, "Sec-WebSocket-Version": "8"}, {**good, "Sec-WebSocket-Key": "abc"}]:
        with pytest.raises(BadHandshake) as info:
            websocket_key(bad)
        assert info.value.status == 400


# WAMP over SockJS --------------------------------------------------------------------

SECRET = "sockjs-core-secret-" + "y" * 32


class Host:
    """The gateway as a WAMP-over-SockJS connection sees it."""

    def __init__(self) -> None:
        self.router = Router(Authenticator(SECRET))
        self.metrics = type("Metrics", (), {"slow_consumers": 0})()
        self.connections: set[Any] = set()

    def connection_opened(self, connection: Any) -> None:
        self.connections.add(connection)

    def connection_closed(self, connection: Any) -> None:
        self.connections.discard(connection)

    def flush(self) -> None:
        """What Gateway.flush does once per loop iteration."""
        for session in self.router.take_dirty():
            frames = session.data_to_send()
            if frames and session.transport is not None:
                session.transport.write_frames(frames)
                if session.close_request is not None:
                    session.transport.close_connection(*session.close_request)


def wamp_registry(host: Host, max_queue: int = 1 << 20) -> SessionRegistry:
    return SessionRegistry(lambda s: WampSockJSConnection(s, host, lambda: 1_000_000.0), SessionOptions(max_queue=max_queue))


def wamp_messages(receiver: FakeReceiver) -> list[list[Any]]:
    """The WAMP messages in the a-frames a receiver got."""
    return [json.loads(text) for frame in receiver.frames if frame[:1] == b"a" for text in json.loads(frame[1:])]


def join(host: Host, reg: SessionRegistry, session_id: str, **details: Any) -> tuple[SockJSSession, FakeReceiver]:
    session = reg.open(session_id, 0.0, peer="127.0.0.1")
    receiver = streaming(limit=math.inf)
    session.attach(receiver, 0.0)
    session.receive([json.dumps([1, "telegraphy", {"roles": {"subscriber": {}, "publisher": {}}, **details}])], 0.0)
    host.flush()
    assert wamp_messages(receiver)[-1][0] == 2, receiver.frames  # WELCOME
    return session, receiver


def test_wamp_session_over_sockjs() -> None:
    """HELLO gets WELCOME, SUBSCRIBE gets SUBSCRIBED, a published event arrives: all as a-frames of WAMP JSON."""
    host = Host()
    reg = wamp_registry(host)
    session, receiver = join(host, reg, "s1")
    assert len(host.connections) == 1
    session.receive([json.dumps([32, 1, {}, "shop.Order"])], 1.0)
    host.flush()
    assert wamp_messages(receiver)[-1][:2] == [33, 1]
    host.router.publish_event({"name": "shop.Order", "meta": {}, "data": {"pk": 7}})
    host.flush()
    event = wamp_messages(receiver)[-1]
    assert event[0] == 36 and event[4][0]["data"] == {"pk": 7}


def test_one_literal_per_publish_for_every_sockjs_subscriber() -> None:
    """The broker encodes an event once: every SockJS subscriber is handed the very same literal."""
    host = Host()
    reg = wamp_registry(host)
    sessions = [join(host, reg, f"s{i}")[0] for i in range(3)]
    for session in sessions:
        session.receive([json.dumps([32, 1, {}, "t"])], 1.0)
    host.flush()
    host.router.publish_event({"name": "t", "meta": {}, "data": {}})
    dirty = host.router.take_dirty()
    assert len(dirty) == 3
    assert len({id(wamp.data_to_send()[0]) for wamp in dirty}) == 1


def test_wamp_protocol_violation_closes_with_1002() -> None:
    """A malformed WAMP message gets ABORT, then c[1002,"wamp.error.protocol_violation"]; the router forgets the session."""
    host = Host()
    reg = wamp_registry(host)
    session, receiver = join(host, reg, "s1")
    session.receive(["[1, 2"], 1.0)
    host.flush()
    assert wamp_messages(receiver)[-1][0] == 3  # ABORT
    assert receiver.frames[-1] == b'c[1002,"wamp.error.protocol_violation"]'
    assert host.connections == set() and host.router.counts()["sessions"] == 0


def test_lone_surrogate_closes_with_1007() -> None:
    """A message holding a lone surrogate (invalid UTF-8 on a WebSocket) closes the session with 1007."""
    host = Host()
    reg = wamp_registry(host)
    session, receiver = join(host, reg, "s1")
    session.receive(['[32, 1, {}, "a\ud800"]'], 1.0)
    assert receiver.frames[-1].startswith(b"c[1007,")
    assert host.connections == set()


def test_authenticated_sockjs_session() -> None:
    """A connect token as WAMP ticket authenticates over SockJS as over WebSocket."""
    host = Host()
    reg = wamp_registry(host)
    session = reg.open("s1", 0.0)
    receiver = streaming(limit=math.inf)
    session.attach(receiver, 0.0)
    session.receive([json.dumps([1, "telegraphy", {"roles": {"publisher": {}}, "authmethods": ["ticket"], "authid": "u1"}])], 0.0)
    host.flush()
    assert wamp_messages(receiver)[-1][0] == 4  # CHALLENGE
    token = mint_connect_token(SECRET, "u1")
    session.receive([json.dumps([5, token, {}])], 0.0)
    host.flush()
    welcome = wamp_messages(receiver)[-1]
    assert welcome[0] == 2 and welcome[2]["authid"] == "u1"


def test_sockjs_expiry_ends_the_wamp_session() -> None:
    """When the SockJS session times out, the WAMP session and the gateway's connection go too."""
    host = Host()
    reg = wamp_registry(host)
    session, receiver = join(host, reg, "s1")
    session.detach(receiver, 1.0)
    assert host.connections == set() and host.router.counts()["sessions"] == 0


def test_slow_sockjs_consumer_is_closed_and_counted() -> None:
    """Events piling up for a session that stopped polling close it as a slow consumer."""
    host = Host()
    reg = wamp_registry(host, max_queue=2000)
    session = reg.open("s1", 0.0)
    first = polling()
    session.attach(first, 0.0)
    session.receive([json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}}])], 0.0)
    host.flush()
    session.attach(polling(), 0.0)  # takes the WELCOME
    session.receive([json.dumps([32, 1, {}, "t"])], 0.0)
    host.flush()
    for _ in range(20):
        host.router.publish_event({"name": "t", "meta": {}, "data": {"pad": "x" * 200}})
        host.flush()
    assert session.state is SessionState.CLOSING and session.close_reason == (1008, "slow consumer: outgoing buffer full")
    assert host.metrics.slow_consumers == 1 and host.connections == set()


def test_a_session_answers_only_the_address_that_opened_it() -> None:
    """With a peer, get() and open() refuse a session opened from another address as not found, unless binding is off."""
    registry = SessionRegistry(lambda session: EchoHandler(session))
    session = registry.open("abc", 0.0, peer="10.0.0.1")
    assert registry.get("abc", "10.0.0.1") is session and registry.open("abc", 1.0, peer="10.0.0.1") is session
    with pytest.raises(SessionNotFound):
        registry.get("abc", "10.0.0.2")
    with pytest.raises(SessionNotFound):
        registry.open("abc", 1.0, peer="10.0.0.2")
    unbound = SessionRegistry(lambda session: EchoHandler(session), SessionOptions(bind_peer=False))
    shared = unbound.open("abc", 0.0, peer="10.0.0.1")
    assert unbound.get("abc", "10.0.0.2") is shared


def test_jsonp_origin_falls_back_to_the_referer() -> None:
    """A JSONP request is checked by its Origin, else its Referer's origin, else not at all."""
    assert jsonp_origin("https://app.example", None) == "https://app.example"
    assert jsonp_origin("null", "https://app.example:8000/page?x=1") == "https://app.example:8000"
    assert jsonp_origin(None, "https://app.example/") == "https://app.example"
    assert jsonp_origin("null", None) is None and jsonp_origin(None, None) is None
    assert jsonp_origin("null", "not a url") == "null"


def test_short_session_ids_may_only_be_anonymous() -> None:
    """Under min_auth_id, a HELLO asking for ticket auth or a resume gets ABORT not_authorized and c[1008]; anonymous is welcome."""
    host = Host()
    reg = SessionRegistry(lambda s: WampSockJSConnection(s, host, lambda: 1_000_000.0, min_auth_id=16))
    for short_id, details in (("abcdefgh", {"authmethods": ["ticket"], "authid": "u1"}), ("ijklmnop", {"resume_token": "x"})):
        session = reg.open(short_id, 0.0)
        receiver = streaming(limit=math.inf)
        session.attach(receiver, 0.0)
        session.receive([json.dumps([1, "telegraphy", {"roles": {"subscriber": {}}, **details}])], 0.0)
        host.flush()
        abort = wamp_messages(receiver)[-1]
        assert abort[0] == 3 and abort[2] == "wamp.error.not_authorized", abort
        assert "at least 16 random characters" in abort[1]["message"]
        assert receiver.frames[-1] == b'c[1008,"wamp.error.not_authorized"]'
    assert host.connections == set() and host.router.counts()["sessions"] == 0
    join(host, reg, "qrstuvwx")  # anonymous: WELCOME
    long_id = reg.open("a" * 16, 0.0)
    receiver = streaming(limit=math.inf)
    long_id.attach(receiver, 0.0)
    long_id.receive([json.dumps([1, "telegraphy", {"roles": {"publisher": {}}, "authmethods": ["ticket"], "authid": "u1"}])], 0.0)
    host.flush()
    assert wamp_messages(receiver)[-1][0] == 4  # CHALLENGE
