"""The persistence worker with records it cannot encode or read: in process, a real memory store, no sockets.

A publication that cannot be encoded for the store must not take the other
events of its storage batch with it, and a stored record that cannot be read
back (damaged, or stored by an older gateway) must not stop the events after
it, whether they come from a gap fill or a resume.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from gateway_helpers import wait_for_async

from telegraphy.store.memory import MemoryStore
from telegraphy.tornado_gateway.persistence import Persistence
from telegraphy.wamp import JSON, Authenticator, Router, ServerSession, WireCodec
from telegraphy.wamp.router import Publication

CODEC = WireCodec(JSON)
#: Seconds any one wait may take.
STEP = 5.0


def events(session: ServerSession) -> list[list[Any]]:
    """The EVENTs queued for ``session``, decoded."""
    return [m for m in (json.loads(frame) for frame in session.data_to_send()) if m[0] == 36]


async def setup() -> tuple[Router, MemoryStore, Persistence, ServerSession]:
    """A router with persistence on an opened memory store, and one anonymous session subscribed to ``t``."""
    router = Router(Authenticator("s" * 40, allow_anonymous=True))
    store = MemoryStore()
    await store.open()
    persistence = Persistence(router, store)
    subscriber = router.attach(CODEC)
    subscriber.receive(json.dumps([1, "telegraphy", {}]), time.time())
    subscriber.receive(json.dumps([32, 1, {}, "t"]), time.time())
    assert [json.loads(f)[0] for f in subscriber.data_to_send()] == [2, 33]
    await asyncio.wait_for(persistence.accepted(), STEP)
    return router, store, persistence, subscriber


def publication(router: Router, payload: Any) -> Publication:
    realm = router.realms["telegraphy"]
    return Publication(realm, "t", 1, [payload], None, {})


def test_an_unstorable_event_does_not_spoil_its_batch(caplog: pytest.LogCaptureFixture) -> None:
    """Of one storage batch, an event the store cannot encode is delivered alone without a position; the others are stored with offsets."""

    async def scenario() -> None:
        router, store, persistence, subscriber = await setup()
        # Sequenced directly, past Router.publish's check: as a bug (or an older node) would.
        sequence = router.sequencer
        assert sequence is not None
        with caplog.at_level(logging.WARNING, "telegraphy.gateway"):
            sequence(publication(router, {"n": 1}))
            sequence(publication(router, "\ud800"))
            sequence(publication(router, {"n": 3}))
            await asyncio.wait_for(persistence.accepted(), STEP)
        # The bad one cannot be sent to JSON subscribers either: it is dropped with a warning.
        received = events(subscriber)
        assert [(e[4][0], e[3]["offset"]) for e in received] == [({"n": 1}, 1), ({"n": 3}, 2)]
        assert (await store.position("t")).offset == 2
        assert persistence.store_errors == 0
        assert "could not encode an event on 't' for the store" in caplog.text
        assert all(r.exc_info is None for r in caplog.records)
        await persistence.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_gap_fill_skips_records_it_cannot_read(caplog: pytest.LogCaptureFixture) -> None:
    """Records another process stored that cannot be read are skipped (logged once) when a gap is filled; the events after them are delivered in order."""

    async def scenario() -> None:
        router, store, persistence, subscriber = await setup()
        sequence = router.sequencer
        assert sequence is not None
        sequence(publication(router, {"n": 1}))
        await asyncio.wait_for(persistence.accepted(), STEP)
        assert [e[3]["offset"] for e in events(subscriber)] == [1]
        # Another process stored offsets 2 to 4; the bus brings only the last.
        positions = await store.append_many(
            [("t", b'{"p":2,"d":{},"a":[NaN],"k":null}'), ("t", b"\x00damaged"), ("t", b'{"p":4,"d":{},"a":[{"n":4}],"k":null}')],
            time.time(),
        )
        epoch = positions[0].epoch
        good = '{"p":5,"d":{},"a":[{"n":5}],"k":null}'
        with caplog.at_level(logging.WARNING, "telegraphy.gateway"):
            persistence.bus_message(json.dumps({"n": "other", "v": [["telegraphy", "t", epoch, 5, good], ["telegraphy"]]}).encode())
            received: list[list[Any]] = []

            async def both_delivered() -> bool:
                received.extend(events(subscriber))
                return len(received) >= 2

            await wait_for_async(both_delivered, STEP, message="the events after the unreadable records were not delivered")
        assert [(e[4][0]["n"], e[3]["offset"]) for e in received] == [(4, 4), (5, 5)]
        assert "skipped 2 stored event(s) of 't'" in caplog.text
        assert "ignoring an event from the bus that cannot be read" in caplog.text
        assert "persistence worker failed" not in caplog.text
        await persistence.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
