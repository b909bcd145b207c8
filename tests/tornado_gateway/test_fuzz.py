"""Fuzzing a real gateway: thousands of hostile WAMP messages, and well-behaved sessions that must not notice.

One bounded, seeded campaign (``tests/fuzz_campaign.py``): 5,000 generated
messages from :mod:`wamp_fuzz`, 40 connections at a time of both
subprotocols, a new connection whenever the gateway closes one (about 1,600
in all: most protocol violations end a session), with a SQLite store, while the web app publishes numbered events over HTTP and two
well-behaved subscribers (JSON, msgpack) receive them. Longer runs:
``tools/fuzz_gateway.py``. The properties:

- every hostile connection ends with a close frame (ABORT/ERROR before it
  where WAMP applies), none is dropped or hangs;
- every event a well-behaved client publishes in the same write as its
  Close frame reaches both good subscribers;
- every event the web app published reaches both good subscribers, once,
  with an offset, offsets consecutive; and again when they drop their
  connection and resume from the first one (the hostile payloads stored on
  a fuzzed topic they hold are replayed to them on the way);
- no traceback (nor "could not deliver/store/save" error) in the gateway's
  log, the process is alive and ``/health`` answers.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz_campaign import GATEWAY_FLAGS, Report, run_campaign
from gateway_helpers import GatewayProcess
from wamp_fuzz import WebSocketClient, encode

#: Log lines that mean a client's input made the gateway fail somewhere.
FAILURE_LINES = re.compile(r"Traceback|could not (deliver|store|save|serve)|persistence worker failed|Fatal error|Exception in callback|exception was never retrieved")


def run(gateway: GatewayProcess, messages: int, connections: int, seed: int) -> Report:
    assert gateway.secret is not None
    return asyncio.run(
        asyncio.wait_for(
            run_campaign("127.0.0.1", gateway.port, gateway.secret, messages=messages, connections=connections, seed=seed, catch_up=15), 85
        )
    )


def test_fuzzed_gateway_stays_up_answers_cleanly_and_loses_no_event(
    gateway_process: Callable[..., GatewayProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """5,000 hostile messages on some 1,600 connections: clean closes, no traceback, every HTTP event delivered with consecutive offsets."""
    gateway = gateway_process(*GATEWAY_FLAGS, env={"TELEGRAPHY_STORE": f"sqlite:///{tmp_path / 'fuzz.sqlite3'}"})
    report = run(gateway, messages=5000, connections=80, seed=11)
    log = gateway.stderr()
    failures = FAILURE_LINES.findall(log)
    with urllib.request.urlopen(f"{gateway.url}/health", timeout=10) as response:
        health = json.loads(response.read())
    with capsys.disabled():
        print(f"\nfuzz gateway: {' | '.join(report.lines()[:1] + report.lines()[3:])} | failure lines in log: {len(failures)}")
    problems = []
    if report.unclean:
        problems.append(f"{len(report.unclean)} connections ended without a close frame or hung, e.g. {report.unclean[:3]}")
    for name, lost in report.closing_lost().items():
        if lost:
            problems.append(
                f"subscriber {name} lost {len(lost)} of {len(report.closing_published)} events published right before a Close frame: {lost[:10]}"
            )
    for name, lost in report.lost().items():
        if lost:
            problems.append(f"subscriber {name} lost {len(lost)} of {len(report.published)} events: {lost[:10]}")
    for name, missing in report.without_offset().items():
        if missing:
            problems.append(f"subscriber {name} got {len(missing)} events without an offset: {missing[:10]}")
    for name, gaps in report.offset_gaps().items():
        if gaps:
            problems.append(f"subscriber {name} saw offset gaps {gaps[:5]}")
    for name, missing in report.replay_missing.items():
        if missing:
            problems.append(f"subscriber {name} resumed and missed {len(missing)} events in the replay: {missing[:10]}")
    if set(report.replay_missing) != set(report.received):
        problems.append(f"resume after the run did not complete: {report.replays}")
    if report.duplicates:
        problems.append(f"duplicate deliveries: {report.duplicates}")
    if report.publish_failures:
        problems.append(f"{len(report.publish_failures)} HTTP publishes failed: {report.publish_failures[:3]}")
    if failures:
        first = log[max(0, log.find(failures[0]) - 300) : log.find(failures[0]) + 1500]
        problems.append(f"{len(failures)} failure lines in the gateway's log; the first:\n{first}")
    assert gateway.alive() and health, "the gateway died"
    assert report.messages >= 5000 and len(report.published) >= 50, report.lines()
    assert not problems, "\n".join(problems)


def test_a_frame_level_error_close_survives_a_peer_that_keeps_sending(gateway_process: Callable[..., GatewayProcess]) -> None:
    """Invalid UTF-8 in a text frame gets close 1007 even while the client is still sending (no TCP reset destroys it)."""
    gateway = gateway_process(*GATEWAY_FLAGS)

    async def one() -> str:
        ws = await WebSocketClient.connect("127.0.0.1", gateway.port, "/ws", "wamp.2.json")
        ws.send(encode([1, "telegraphy", {"roles": {"subscriber": {}}}], False))
        assert await ws.receive() is not None  # WELCOME
        ws.send(b"\xe5\xa9C")  # not UTF-8: RFC 6455 §8.1 fails the connection with 1007
        for request in range(1, 201):
            ws.send(encode([32, request, {}, "fuzz.t.a"], False))
        await ws.drain()
        while await ws.receive() is not None:
            pass
        return f"close:{ws.close_code}" if ws.close_code is not None else ("reset" if ws.reset else "dropped")

    async def scenario() -> list[str]:
        return [await one() for _ in range(10)]

    endings = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert endings == ["close:1007"] * 10, endings
