"""Fixtures of the publisher tests: a fake gateway for faults, a publisher factory, request spies."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_gateway import FakeGateway, fake_gateway  # noqa: E402

from telegraphy.publisher import Publisher  # noqa: E402


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    """A scriptable stand-in gateway."""
    with fake_gateway() as gateway:
        yield gateway


@pytest.fixture
def make_publisher() -> Iterator[Callable[..., Publisher]]:
    """Build publishers (fast backoff by default); close them all after the test."""
    made: list[Publisher] = []

    def make(url: str, secret: str, **kwargs: Any) -> Publisher:
        kwargs.setdefault("backoff", 0.001)
        publisher = Publisher(url, secret, **kwargs)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


class Spy:
    """Counts the HTTP round trips and TCP connects of publishers."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.connects = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Count ``Publisher._round_trip`` calls and ``HTTPConnection.connect`` calls."""
    import http.client

    counts = Spy()
    round_trip = Publisher._round_trip
    connect = http.client.HTTPConnection.connect

    def counting_round_trip(self: Publisher, *args: Any) -> Any:
        counts.round_trips += 1
        return round_trip(self, *args)

    def counting_connect(self: http.client.HTTPConnection) -> None:
        counts.connects += 1
        connect(self)

    monkeypatch.setattr(Publisher, "_round_trip", counting_round_trip)
    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting_connect)
    return counts


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
