"""A fuzz campaign against a running gateway: hostile sessions, and well-behaved ones that must not notice.

Shared by ``tests/tornado_gateway/test_fuzz.py`` (bounded, in the suite) and
``tools/fuzz_gateway.py`` (longer runs, numbers for docs/security.md)::

    report = asyncio.run(run_campaign("127.0.0.1", port, secret, messages=5000, connections=80, seed=11))
    print("\\n".join(report.lines()))

What runs at once:

- ``concurrency`` lanes of hostile connections (``wamp.2.json`` and
  ``wamp.2.msgpack``, anonymous, ticket-authenticated or with a hostile
  HELLO), ``messages`` frames in all from :class:`wamp_fuzz.HostileInput`,
  spread over about ``connections`` connections (a connection the gateway
  closes early hands its remaining frames to a new one). Each frame is
  followed by a ping, and the next frame waits for the pong, so frames reach
  a live session rather than one the gateway already closed. Each connection
  ends with GOODBYE and a Close frame unless the gateway ended it first;
  every reply is counted by WAMP message type, every ending by close code.
- two well-behaved subscribers (one per serializer) on the web app's topic
  :data:`wamp_fuzz.APP_TOPIC` (and on a fuzzed topic, to take hostile events);
- a well-behaved publisher: ``POST /publish`` of numbered events on the web
  app's topic, spread over the run;
- a well-behaved "closing publisher": now and then a signed-in session that
  writes its PUBLISH (on the fuzzed topic the subscribers hold) and its Close
  frame in one go; those events must arrive too.

At the end each good subscriber drops its connection and resumes from the
first event it received: the replay must hold every later event (the
fuzzed topic is replayed to it too, hostile payloads and all).

The gateway must run with ``--channels`` allowing signed-in clients to
publish on ``fuzz.`` (see :data:`CHANNELS`) and with ``--connection-rate 0``
(every connection comes from 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import collections
import json
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import msgpack

from telegraphy.tokens import mint_connect_token, mint_publish_token
from wamp_fuzz import APP_TOPIC, CLEAN_CLOSE_CODES, FUZZ_TOPICS, HostileInput, WebSocketClient, encode

__all__ = ["CHANNELS", "GATEWAY_FLAGS", "Report", "run_campaign"]

#: The client channels the fuzzed gateway declares: only ``fuzz.`` topics are client-publishable.
CHANNELS = json.dumps([{"topic": "fuzz.", "match": "prefix", "subscribe": "public", "publish": "authenticated"}])
#: Flags the fuzzed gateway needs (see the module docstring).
GATEWAY_FLAGS = ("--channels", CHANNELS, "--connection-rate", "0")
NAMES = {1: "HELLO", 2: "WELCOME", 3: "ABORT", 4: "CHALLENGE", 6: "GOODBYE", 8: "ERROR", 17: "PUBLISHED", 33: "SUBSCRIBED",
         35: "UNSUBSCRIBED", 36: "EVENT", 50: "RESULT", 65: "REGISTERED", 67: "UNREGISTERED", 68: "INVOCATION", 69: "INTERRUPT"}
#: Seconds to wait for any one reply, and for the good subscribers to catch up at the end.
STEP = 30.0
#: Frames remembered per connection, to show what preceded an unclean ending.
KEEP_FRAMES = 3
#: Event numbers from here on mark the end of a resume's replay.
MARKER = 10**9


@dataclass
class Report:
    """What a campaign sent, what came back, and what the well-behaved sessions saw."""

    seed: int = 0
    messages: int = 0
    connections: int = 0
    by_label: collections.Counter[str] = field(default_factory=collections.Counter)
    replies: collections.Counter[str] = field(default_factory=collections.Counter)
    endings: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Connections that ended without a close frame (EOF), or hung: (ending, last frames sent).
    unclean: list[tuple[str, list[str]]] = field(default_factory=list)
    #: Connections that ended with a TCP reset: the last frames sent on each.
    resets: list[list[str]] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    publish_failures: list[str] = field(default_factory=list)
    #: Per good subscriber: seq → (epoch, offset) or None when the EVENT carried no offset.
    received: dict[str, dict[int, Any]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    #: Events of the closing publisher (PUBLISH and Close frame in one write), and who received which.
    closing_published: list[int] = field(default_factory=list)
    closing_received: dict[str, set[int]] = field(default_factory=dict)
    #: Per good subscriber: what its resume after the campaign replayed, and which events it missed.
    replays: dict[str, str] = field(default_factory=dict)
    replay_missing: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0

    def lost(self) -> dict[str, list[int]]:
        """Return, per good subscriber, the published event numbers it never received."""
        return {name: [seq for seq in self.published if seq not in got] for name, got in self.received.items()}

    def closing_lost(self) -> dict[str, list[int]]:
        """Return, per good subscriber, the closing publisher's events it never received."""
        return {name: [k for k in self.closing_published if k not in got] for name, got in self.closing_received.items()}

    def without_offset(self) -> dict[str, list[int]]:
        """Return, per good subscriber, the event numbers it received without a stream offset."""
        return {name: sorted(seq for seq, pos in got.items() if pos is None) for name, got in self.received.items()}

    def offset_gaps(self) -> dict[str, list[tuple[int, int]]]:
        """Return, per good subscriber, consecutive received events whose offsets are not consecutive."""
        gaps: dict[str, list[tuple[int, int]]] = {}
        for name, got in self.received.items():
            offsets = sorted(pos[1] for pos in got.values() if pos is not None)
            gaps[name] = [(a, b) for a, b in zip(offsets, offsets[1:]) if b != a + 1]
        return gaps

    def lines(self) -> list[str]:
        """Return the report as printable lines."""
        lost = self.lost()
        lines = [
            f"seed {self.seed}: {self.messages} hostile messages over {self.connections} connections in {self.seconds:.1f} s",
            "sent by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_label.items())),
            "replies: " + ", ".join(f"{k} {v}" for k, v in sorted(self.replies.items())),
            "connection endings: " + ", ".join(f"{k} {v}" for k, v in sorted(self.endings.items())),
            f"unclean endings (no close frame, or hung): {len(self.unclean)}; TCP resets: {len(self.resets)}",
            f"well-behaved publisher: {len(self.published)} events published over HTTP, {len(self.publish_failures)} refused",
        ]
        for name, got in sorted(self.received.items()):
            lines.append(
                f"well-behaved subscriber {name}: received {len(got)}, lost {len(lost[name])}, "
                f"without offset {len(self.without_offset()[name])}, offset gaps {len(self.offset_gaps()[name])}, "
                f"duplicates {self.duplicates.get(name, 0)}"
            )
        closing_lost = self.closing_lost()
        lines.append(
            f"closing publisher (PUBLISH then Close in one write): {len(self.closing_published)} published, lost by "
            + ", ".join(f"{name} {len(lost)}" for name, lost in sorted(closing_lost.items()))
        )
        for name, outcome in sorted(self.replays.items()):
            lines.append(f"resume of {name} after the run: {outcome}")
        return lines


class _Budget:
    def __init__(self, messages: int, connections: int) -> None:
        self.messages = messages
        self.per_connection = max(1, messages // max(1, connections))


def _decode(data: bytes | str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False) if isinstance(data, bytes) else json.loads(data)
    except Exception:
        return None


def _kind(message: Any) -> str:
    if isinstance(message, list) and message and isinstance(message[0], int):
        return NAMES.get(message[0], f"type-{message[0]}")
    return "undecodable"


async def _read_all(ws: WebSocketClient, report: Report) -> str:
    """Count every reply until the connection ends; return how it ended."""
    while True:
        try:
            data = await ws.receive(STEP)
        except asyncio.TimeoutError:
            ws.abort()
            return "timeout"
        if data is None:
            if ws.close_code is not None:
                return f"close:{ws.close_code}"
            return "reset" if ws.reset else "dropped"
        report.replies[_kind(_decode(data))] += 1


async def _join(ws: WebSocketClient, as_msgpack: bool, secret: str, user: str | None, **extra: Any) -> dict[str, Any] | None:
    """Open a WAMP session (anonymous, or with a ticket for ``user``); return WELCOME's details, or None."""
    details: dict[str, Any] = {"roles": {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}, **extra}
    if user is not None:
        details["authmethods"] = ["ticket"]
    ws.send(encode([1, "telegraphy", details], as_msgpack), binary=as_msgpack)
    reply = _decode(await ws.receive(STEP) or b"")
    if user is not None and _kind(reply) == "CHALLENGE":
        ws.send(encode([5, mint_connect_token(secret, user), {}], as_msgpack), binary=as_msgpack)
        reply = _decode(await ws.receive(STEP) or b"")
    if _kind(reply) == "WELCOME" and isinstance(reply[2], dict):
        return reply[2]
    return None


async def _lane(index: int, host: str, port: int, path: str, secret: str, seed: int, budget: _Budget, report: Report) -> None:
    fuzzer = HostileInput(seed * 1000 + index)
    rng = fuzzer.rng
    while budget.messages > 0:
        as_msgpack = rng.random() < 0.5
        subprotocol = "wamp.2.msgpack" if as_msgpack else "wamp.2.json"
        try:
            ws = await WebSocketClient.connect(host, port, path, subprotocol, STEP)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            report.endings[f"refused:{str(exc)[:40]}"] += 1
            await asyncio.sleep(0.05)
            continue
        report.connections += 1
        plan = rng.random()
        sent: list[str] = []
        try:
            if plan < 0.5:
                await _join(ws, as_msgpack, secret, f"fuzz-{index}")
            elif plan < 0.85:
                await _join(ws, as_msgpack, secret, None)
            else:
                hello = fuzzer.hello_message()
                ws.send(encode(hello, as_msgpack), binary=as_msgpack)
                sent.append(f"hostile-hello {encode(hello, as_msgpack)[:120]!r}")
                report.messages += 1
                budget.messages -= 1
        except asyncio.TimeoutError:
            ws.abort()
            report.endings["timeout"] += 1
            report.unclean.append(("timeout in handshake", sent))
            continue
        reader = asyncio.ensure_future(_read_all(ws, report))
        for _ in range(budget.per_connection):
            if reader.done() or budget.messages <= 0:
                break
            frame = fuzzer.frame(as_msgpack)
            ws.send(frame.data, binary=frame.binary)
            sent = (sent + [f"{frame.label} {frame.data[:120]!r}"])[-KEEP_FRAMES:]
            report.by_label[frame.label.split(":")[0] + ":" + frame.label.split(":")[1][:12]] += 1
            report.messages += 1
            budget.messages -= 1
            # One frame at a time: the next goes once this one was handled, so (nearly) every
            # frame counted reached the session, not a connection the gateway was closing.
            if not await ws.sync(reader, STEP):
                break
        if not reader.done():
            ws.send(encode([6, {}, "wamp.close.close_realm"], as_msgpack), binary=as_msgpack)
            ws.send_close(1000)
            await ws.drain()
        ending = await reader
        report.endings[ending] += 1
        code = int(ending.split(":")[1]) if ending.startswith("close:") and ending.split(":")[1].isdigit() else None
        if ending == "reset":
            # A TCP reset while frames were still in flight both ways: the kernel discards what
            # the client had not read yet (a close frame among it, perhaps). Counted, not judged:
            # a crash behind it shows in the gateway's log.
            report.resets.append(sent)
        elif code not in CLEAN_CLOSE_CODES:
            report.unclean.append((ending, sent))


class _Subscriber:
    """A well-behaved session on the web app's topic (and on a fuzzed one) recording what it gets."""

    def __init__(self, name: str, ws: WebSocketClient, as_msgpack: bool, report: Report) -> None:
        self.name = name
        self.ws = ws
        self.as_msgpack = as_msgpack
        self.report = report
        self.app_subscription: int | None = None
        self.fuzz_subscription: int | None = None
        #: Numbers of the closing publisher's events received on the fuzzed topic.
        self.closing_got: set[int] = set()
        report.closing_received[name] = self.closing_got
        self.got: dict[int, Any] = {}
        report.received[name] = self.got
        self.reader: asyncio.Future[None] | None = None
        self.ended = ""
        self.resume_token: str | None = None

    @classmethod
    async def start(cls, name: str, host: str, port: int, path: str, secret: str, as_msgpack: bool, report: Report) -> _Subscriber:
        ws = await WebSocketClient.connect(host, port, path, "wamp.2.msgpack" if as_msgpack else "wamp.2.json", STEP)
        welcome = await _join(ws, as_msgpack, secret, name)
        assert welcome is not None, f"{name} could not join"
        self = cls(name, ws, as_msgpack, report)
        self.resume_token = welcome.get("resume_token")
        for request, topic in ((1, APP_TOPIC), (2, FUZZ_TOPICS[0])):
            ws.send(encode([32, request, {}, topic], as_msgpack), binary=as_msgpack)
            reply = _decode(await ws.receive(STEP) or b"")
            assert _kind(reply) == "SUBSCRIBED", f"{name} could not subscribe to {topic}: {reply}"
            if topic == APP_TOPIC:
                self.app_subscription = reply[2]
            else:
                self.fuzz_subscription = reply[2]
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        while True:
            try:
                data = await self.ws.receive(3600)
            except asyncio.TimeoutError:
                continue
            if data is None:
                self.ended = f"close:{self.ws.close_code}" if self.ws.close_code is not None else "dropped"
                return
            message = _decode(data)
            if _kind(message) == "EVENT" and message[1] == self.fuzz_subscription and len(message) >= 5:
                arg = message[4][0] if isinstance(message[4], list) and message[4] else None
                if isinstance(arg, dict) and type(arg.get("closing")) is int and len(arg) == 1:
                    self.closing_got.add(arg["closing"])
                continue
            if _kind(message) != "EVENT" or message[1] != self.app_subscription or len(message) < 5:
                continue
            details, args = message[3], message[4]
            try:
                seq = args[0]["data"]["seq"]
            except (TypeError, KeyError, IndexError):
                continue
            if not isinstance(seq, int) or seq >= MARKER:
                continue  # a resume's marker event, not one of the campaign's
            if seq in self.got:
                self.report.duplicates[self.name] = self.report.duplicates.get(self.name, 0) + 1
            offset = details.get("offset") if isinstance(details, dict) else None
            self.got[seq] = None if offset is None else (details.get("epoch"), offset)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        self.ws.abort()

    async def resume(self, host: str, port: int, path: str, secret: str, base_url: str) -> None:
        """Drop the connection, resume from the first event received, and check the replay of the web app's topic.

        The replay must hold every event published after that one. The fuzzed
        topic is resumed too (from where it stood at subscribe time), so every
        hostile payload stored there is replayed to this serializer on the way.
        """
        positions = sorted((pos for pos in self.got.values() if pos is not None), key=lambda p: p[1])
        if self.resume_token is None or not positions:
            self.report.replays[self.name] = "not run: no resume token or no event with an offset"
            return
        epoch, first = positions[0]
        expected = sorted(seq for seq, pos in self.got.items() if pos is not None and pos[1] > first)
        self.close()
        ws = await WebSocketClient.connect(host, port, path, "wamp.2.msgpack" if self.as_msgpack else "wamp.2.json", STEP)
        try:
            welcome = await _join(ws, self.as_msgpack, secret, self.name, resume_token=self.resume_token, resume_offsets={APP_TOPIC: [epoch, first]})
            if welcome is None or not welcome.get("resumed"):
                self.report.replays[self.name] = f"not resumed: {welcome}"
                return
            marker = MARKER + len(self.report.replays)
            failure = await asyncio.to_thread(_publish, base_url, secret, marker)
            replayed: list[int] = []
            while failure is None:
                try:
                    data = await ws.receive(STEP)
                except asyncio.TimeoutError:
                    break
                if data is None:
                    break
                message = _decode(data)
                if _kind(message) == "EVENT" and len(message) >= 5:
                    try:
                        seq = message[4][0]["data"]["seq"] if message[4][0]["name"] == APP_TOPIC else None
                    except (TypeError, KeyError, IndexError):
                        seq = None
                    if seq == marker:
                        break
                    if isinstance(seq, int) and seq < MARKER:
                        replayed.append(seq)
            missing = [seq for seq in expected if seq not in replayed]
            self.report.replay_missing[self.name] = missing
            self.report.replays[self.name] = (
                f"recovered {welcome.get('recovered')}, replayed {len(replayed)} of {len(expected)}, missing {len(missing)}"
            )
        finally:
            ws.abort()


def _publish(base_url: str, secret: str, seq: int) -> str | None:
    """POST one numbered event; return None on 202, else what went wrong."""
    body = json.dumps([{"name": APP_TOPIC, "meta": {"event_type": "update"}, "data": {"seq": seq}}]).encode()
    request = urllib.request.Request(
        f"{base_url}/publish", data=body,
        headers={"Authorization": f"Bearer {mint_publish_token(secret)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=STEP) as response:
            return None if response.status == 202 else f"status {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)[:200]


async def _publisher(base_url: str, secret: str, budget: _Budget, total: int, events: int, report: Report) -> None:
    """Publish ``events`` numbered events, spread over the campaign by its progress."""
    for seq in range(1, events + 1):
        threshold = total - total * seq // (events + 1)
        while budget.messages > threshold:
            await asyncio.sleep(0.01)
        failure = await asyncio.to_thread(_publish, base_url, secret, seq)
        if failure is None:
            report.published.append(seq)
        else:
            report.publish_failures.append(failure)


async def _closing_publisher(host: str, port: int, path: str, secret: str, budget: _Budget, total: int, events: int, report: Report) -> None:
    """Publish ``events`` events on the fuzzed topic, each from a new session that closes in the same write.

    A well-behaved client may well send its last PUBLISH and the Close frame
    together; the event must still reach the subscribers.
    """
    for number in range(1, events + 1):
        threshold = total - total * number // (events + 1)
        while budget.messages > threshold:
            await asyncio.sleep(0.01)
        as_msgpack = number % 2 == 0
        try:
            ws = await WebSocketClient.connect(host, port, path, "wamp.2.msgpack" if as_msgpack else "wamp.2.json", STEP)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            report.publish_failures.append(f"closing publisher could not connect: {exc}")
            continue
        try:
            if await _join(ws, as_msgpack, secret, "closing-publisher") is None:
                report.publish_failures.append("closing publisher could not join")
                continue
            publish = encode([16, number, {}, FUZZ_TOPICS[0], [{"closing": number}]], as_msgpack)
            ws.send_frames([(publish, 0x2 if as_msgpack else 0x1), (struct.pack("!H", 1000), 0x8)])
            await ws.drain()
            while await ws.receive(STEP) is not None:
                pass
            report.closing_published.append(number)
        except asyncio.TimeoutError:
            report.publish_failures.append("closing publisher: no close in time")
        finally:
            ws.abort()


async def run_campaign(
    host: str,
    port: int,
    secret: str,
    *,
    messages: int,
    connections: int,
    seed: int,
    concurrency: int = 40,
    events: int = 100,
    path: str = "/ws",
    catch_up: float = STEP,
) -> Report:
    """Run one campaign against the gateway at ``host:port`` (see the module docstring) and return its report.

    ``catch_up`` is how many seconds the well-behaved subscribers get, after
    the last frame, to receive what they have not received yet.
    """
    started = time.monotonic()
    report = Report(seed=seed)
    budget = _Budget(messages, connections)
    subscribers = [
        await _Subscriber.start("json", host, port, path, secret, False, report),
        await _Subscriber.start("msgpack", host, port, path, secret, True, report),
    ]
    try:
        lanes = [_lane(i, host, port, path, secret, seed, budget, report) for i in range(concurrency)]
        await asyncio.gather(
            _publisher(f"http://{host}:{port}", secret, budget, messages, events, report),
            _closing_publisher(host, port, path, secret, budget, messages, max(10, events // 5), report),
            *lanes,
        )
        # The good subscribers catch up: everything published must arrive.
        deadline = time.monotonic() + catch_up
        while time.monotonic() < deadline and any(
            s.ended == "" and (len(s.got) < len(report.published) or len(s.closing_got) < len(report.closing_published)) for s in subscribers
        ):
            await asyncio.sleep(0.05)
        for subscriber in subscribers:
            if subscriber.ended:
                report.endings[f"good subscriber {subscriber.name}: {subscriber.ended}"] += 1
        for subscriber in subscribers:
            await subscriber.resume(host, port, path, secret, f"http://{host}:{port}")
    finally:
        for subscriber in subscribers:
            subscriber.close()
    report.seconds = time.monotonic() - started
    return report
