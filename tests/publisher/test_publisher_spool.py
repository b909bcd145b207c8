"""The publisher's durable spool (``Publisher(spool=...)``): what survives a restart of the publishing process."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from fake_gateway import fake_gateway

from telegraphy.event import make_event
from telegraphy.publisher import Publisher, PublishRejected, SpoolFull, SpoolLocked

SECRET = "spool-test-secret-" * 3
REPO = Path(__file__).resolve().parents[2]


def spool_rows(path: Path) -> list[str]:
    """The ids of the events waiting in the spool file, in order."""
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT event_id FROM telegraphy_spool ORDER BY seq")]


def sent_ids(fake) -> list[str]:
    """Every meta.id the fake gateway received, in order (a batch body counts each event)."""
    ids = []
    for body in fake.bodies():
        for event in body if isinstance(body, list) else [body]:
            ids.append(event["meta"]["id"])
    return ids


def spool_in_a_process(url: str, spool: Path) -> list[str]:
    """Publish four events with a spool from a separate Python process (the gateway is down); return their ids."""
    script = textwrap.dedent(
        f"""
        import json
        from telegraphy.event import make_event
        from telegraphy.publisher import Publisher
        publisher = Publisher({url!r}, {SECRET!r}, spool={str(spool)!r},
                              retries=1, backoff=0.001, timeout=1)
        ids = publisher.publish_many([make_event("shop.Order", {{"pk": n}}) for n in range(3)])
        ids += publisher.publish(make_event("shop.Order", {{"pk": 3}}))
        print(json.dumps(ids))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    ids: list[str] = json.loads(done.stdout)
    assert len(ids) == 4 and spool_rows(spool) == ids
    return ids


def test_events_spooled_while_the_gateway_is_down_are_delivered_by_the_next_process(tmp_path, closed_port):
    """Gateway down: a process publishes with a spool and exits; with the gateway up, a new Publisher on the spool delivers every event once, in order."""
    spool = tmp_path / "spool.sqlite3"
    ids = spool_in_a_process(f"http://127.0.0.1:{closed_port}", spool)
    with fake_gateway(closed_port) as fake:
        publisher = Publisher(fake.url, SECRET, spool=spool)
        try:
            assert sent_ids(fake) == ids
            assert publisher.spooled() == 0
            publisher.publish(make_event("shop.Order", {"pk": 4}))
        finally:
            publisher.close()
        assert sent_ids(fake)[:4] == ids and len(sent_ids(fake)) == 5
    assert spool_rows(spool) == []


def metric(gateway, name: str) -> float:
    """The value of a counter in the gateway's /metrics."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_real_gateway_delivers_a_restarted_spool_once_even_when_it_is_sent_twice(tmp_path, closed_port, gateway_process):
    """A spool left by an exited process is delivered by a real gateway started later; sending a copy of it again publishes nothing twice."""
    spool = tmp_path / "spool.sqlite3"
    ids = spool_in_a_process(f"http://127.0.0.1:{closed_port}", spool)
    copy = tmp_path / "copy.sqlite3"
    with sqlite3.connect(spool) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # as if the acknowledgement had been lost before the rows were deleted
    gateway = gateway_process(port=closed_port, secret=SECRET)
    with Publisher(gateway.url, SECRET, spool=spool) as publisher:
        assert publisher.spooled() == 0
    assert metric(gateway, "telegraphy_events_published_total") == 4
    with Publisher(gateway.url, SECRET, spool=copy) as publisher:
        assert publisher.spooled() == 0
    assert metric(gateway, "telegraphy_events_published_total") == 4
    assert metric(gateway, "telegraphy_duplicate_events_total") == 4


def test_an_acknowledged_event_is_gone_from_the_spool(fake, tmp_path):
    """An event the gateway answered 2xx is deleted from the spool file."""
    spool = tmp_path / "spool.sqlite3"
    with Publisher(fake.url, SECRET, spool=spool) as publisher:
        ids = publisher.publish(make_event("a.B"))
        assert sent_ids(fake) == ids
        assert spool_rows(spool) == []
        assert publisher.spooled() == 0


def test_an_unacknowledged_event_stays_and_goes_first_next_time(fake, tmp_path):
    """A 5xx leaves the event in the spool (publish returns its id); the next publish sends it before the new one."""
    spool = tmp_path / "spool.sqlite3"
    fake.script = [(503, {"error": "unavailable"})]
    with Publisher(fake.url, SECRET, spool=spool, retries=0) as publisher:
        first = publisher.publish(make_event("a.B", {"n": 1}))
        assert spool_rows(spool) == first
        second = publisher.publish(make_event("a.B", {"n": 2}))
        assert spool_rows(spool) == []
    assert sent_ids(fake) == first + first + second


def test_a_refused_event_does_not_block_the_ones_after_it(fake, tmp_path, caplog):
    """A spooled event refused with 400 is dropped and logged; the events queued behind it are delivered."""
    spool = tmp_path / "spool.sqlite3"
    fake.script = [(503, {"error": "unavailable"})] * 2  # two publishes spooled while the gateway fails
    with Publisher(fake.url, SECRET, spool=spool, retries=0) as publisher:
        bad = publisher.publish(make_event("a.B", {"n": "bad"}))
        good = publisher.publish(make_event("a.B", {"n": 1}))
        assert spool_rows(spool) == bad + good
        # Next: the batch of three is refused, then each alone: the first refused, the others accepted.
        fake.script = [(400, {"error": "invalid_event", "detail": "event 0"}), (400, {"error": "invalid_event"})]
        with caplog.at_level(logging.ERROR, logger="telegraphy.publisher"):
            last = publisher.publish(make_event("a.B", {"n": 2}))
        assert spool_rows(spool) == []
    assert sent_ids(fake)[-2:] == good + last
    assert any(bad[0] in record.getMessage() and "dropped" in record.getMessage() for record in caplog.records)


def test_a_refused_event_of_this_call_is_raised(fake, tmp_path):
    """When the call's own event is refused for good, publish raises PublishRejected; the spool keeps nothing of it."""
    spool = tmp_path / "spool.sqlite3"
    fake.script = [(413, {"error": "payload_too_large"})]
    with Publisher(fake.url, SECRET, spool=spool) as publisher:
        with pytest.raises(PublishRejected) as caught:
            publisher.publish(make_event("a.B"))
        assert caught.value.status == 413
        assert spool_rows(spool) == []


def test_a_refusal_that_is_not_the_events_fault_keeps_them(fake, tmp_path):
    """A 401 (wrong secret) or 429 leaves every event in the spool, to be sent later."""
    spool = tmp_path / "spool.sqlite3"
    fake.script = [(401, {"error": "unauthorized"}), (429, {"error": "rate_limited"})]
    with Publisher(fake.url, SECRET, spool=spool) as publisher:
        one = publisher.publish(make_event("a.B"))
        two = publisher.publish(make_event("a.B"))
        assert spool_rows(spool) == one + two
        assert publisher.flush_spool() == 0
    assert sent_ids(fake)[-2:] == one + two


def test_the_spool_is_bounded(closed_port, tmp_path):
    """A publish that would exceed spool_max_events raises SpoolFull (even fire-and-forget) and spools none of its events."""
    spool = tmp_path / "spool.sqlite3"
    url = f"http://127.0.0.1:{closed_port}"
    with Publisher(url, SECRET, spool=spool, spool_max_events=3, retries=0, fire_and_forget=True) as publisher:
        kept = publisher.publish_many([make_event("a.B", {"n": n}) for n in range(2)])
        with pytest.raises(SpoolFull) as caught:
            publisher.publish_many([make_event("a.B", {"n": n}) for n in range(2, 4)])
        assert caught.value.pending == 2 and caught.value.limit == 3
        assert spool_rows(spool) == kept
        kept += publisher.publish(make_event("a.B", {"n": 4}))
        assert spool_rows(spool) == kept


def test_a_spool_has_one_owner(fake, tmp_path):
    """A second Publisher on a spool in use raises SpoolLocked; once the first is closed, it opens."""
    spool = tmp_path / "spool.sqlite3"
    first = Publisher(fake.url, SECRET, spool=spool)
    with pytest.raises(SpoolLocked):
        Publisher(fake.url, SECRET, spool=spool)
    first.close()
    second = Publisher(fake.url, SECRET, spool=spool)
    with pytest.raises(SpoolLocked):
        first.publish(make_event("a.B"))  # a closed publisher reopens its spool on use: still one owner
    second.close()
    assert first.publish(make_event("a.B")) == spool_rows(spool) + sent_ids(fake)[-1:]
    first.close()
