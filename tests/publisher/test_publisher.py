"""The publisher against a real gateway process (the ``gateway``/``gateway_process`` fixtures)."""

from __future__ import annotations

import logging
import threading

import pytest

from telegraphy.event import InvalidEvent, make_event
from telegraphy.publisher import GatewayUnavailable, PublishError, Publisher, PublishRejected


def test_publish_returns_the_gateway_id(gateway, make_publisher):
    """publish() sends one event and returns the one id the gateway assigned."""
    publisher = make_publisher(gateway.url, gateway.secret)
    ids = publisher.publish(make_event("shop.Order", {"pk": 1}, "create"))
    assert len(ids) == 1
    assert isinstance(ids[0], str) and ids[0]


def test_publish_many_returns_one_id_per_event_in_one_request(gateway, make_publisher, spy):
    """publish_many() sends all events in one request and returns their ids in order."""
    publisher = make_publisher(gateway.url, gateway.secret)
    ids = publisher.publish_many([make_event("shop.Order", {"pk": n}) for n in range(5)])
    assert len(ids) == len(set(ids)) == 5
    assert spy.round_trips == 1


def test_publish_many_of_nothing_sends_nothing(gateway, make_publisher, spy):
    """publish_many([]) returns [] without a request."""
    publisher = make_publisher(gateway.url, gateway.secret)
    assert publisher.publish_many([]) == []
    assert spy.round_trips == 0


def test_wrong_secret_is_rejected_without_retry(gateway, make_publisher, spy):
    """A 401 raises PublishRejected with the gateway's code, after exactly one request."""
    publisher = make_publisher(gateway.url, "not-the-secret-" * 3, retries=3)
    with pytest.raises(PublishRejected) as caught:
        publisher.publish(make_event("shop.Order", {"pk": 1}))
    assert caught.value.status == 401
    assert caught.value.error == "unauthorized"
    assert isinstance(caught.value, PublishError)
    assert spy.round_trips == 1


def test_too_large_body_is_rejected_with_413(gateway_process, make_publisher, spy):
    """A body over the gateway's limit raises PublishRejected 413 and is not retried."""
    gateway = gateway_process("--max-body-size", "1K")
    publisher = make_publisher(gateway.url, gateway.secret)
    with pytest.raises(PublishRejected) as caught:
        publisher.publish(make_event("shop.Order", {"text": "x" * 4096}))
    assert caught.value.status == 413
    assert spy.round_trips == 1


def test_unreachable_gateway_raises_gateway_unavailable_naming_the_url(closed_port, make_publisher, spy):
    """Connection errors are retried `retries` times, then GatewayUnavailable names the URL."""
    url = f"http://127.0.0.1:{closed_port}"
    publisher = make_publisher(url, "s" * 40, retries=2)
    with pytest.raises(GatewayUnavailable) as caught:
        publisher.publish(make_event("shop.Order", {"pk": 1}))
    assert caught.value.url == url
    assert caught.value.attempts == 3
    assert url in str(caught.value)
    assert spy.round_trips == 3


def test_fire_and_forget_logs_instead_of_raising(closed_port, make_publisher, caplog):
    """In fire-and-forget mode an unreachable gateway is logged and publish() returns []."""
    publisher = make_publisher(f"http://127.0.0.1:{closed_port}", "s" * 40, retries=0, fire_and_forget=True)
    with caplog.at_level(logging.ERROR, logger="telegraphy.publisher"):
        assert publisher.publish(make_event("shop.Order", {"pk": 1})) == []
    assert any(str(closed_port) in record.getMessage() for record in caplog.records)


def test_fire_and_forget_still_raises_invalid_events(closed_port, make_publisher):
    """An invalid event is the caller's bug: raised even in fire-and-forget mode."""
    publisher = make_publisher(f"http://127.0.0.1:{closed_port}", "s" * 40, fire_and_forget=True)
    with pytest.raises(InvalidEvent):
        publisher.publish({"name": "has space", "data": {}})


def test_keep_alive_connection_is_reused(gateway, make_publisher, spy):
    """Successive publishes from one thread share one TCP connection."""
    publisher = make_publisher(gateway.url, gateway.secret)
    for n in range(10):
        publisher.publish(make_event("shop.Order", {"pk": n}))
    assert spy.round_trips == 10
    assert spy.connects == 1


def test_batch_sends_one_request_on_exit(gateway, make_publisher, spy):
    """Events published inside batch() are queued and sent as one request when it exits."""
    publisher = make_publisher(gateway.url, gateway.secret)
    with publisher.batch() as batch:
        for n in range(4):
            assert publisher.publish(make_event("shop.Order", {"pk": n})) == []
        assert spy.round_trips == 0
        assert len(batch) == 4
    assert spy.round_trips == 1
    assert len(batch.ids) == 4


def test_nested_batch_joins_the_outer_one(gateway, make_publisher, spy):
    """A batch inside a batch adds its events to the outer one: still one request."""
    publisher = make_publisher(gateway.url, gateway.secret)
    with publisher.batch() as outer:
        publisher.publish(make_event("a.B", {"n": 1}))
        with publisher.batch() as inner:
            publisher.publish_many([make_event("a.B", {"n": 2}), make_event("a.B", {"n": 3})])
        assert inner.ids == []
    assert spy.round_trips == 1
    assert len(outer.ids) == 3


def test_batch_discards_its_events_when_the_block_raises(gateway, make_publisher, spy):
    """An exception inside batch() drops the queued events and propagates."""
    publisher = make_publisher(gateway.url, gateway.secret)
    with pytest.raises(RuntimeError), publisher.batch():
        publisher.publish(make_event("a.B", {"n": 1}))
        raise RuntimeError("boom")
    assert spy.round_trips == 0
    assert publisher.publish(make_event("a.B", {"n": 2}))  # the next publish is not batched


def test_batch_belongs_to_its_thread(gateway, make_publisher, spy):
    """A batch open in one thread does not queue another thread's events."""
    publisher = make_publisher(gateway.url, gateway.secret)
    other_ids: list[str] = []
    with publisher.batch():
        publisher.publish(make_event("a.B", {"n": 1}))
        worker = threading.Thread(target=lambda: other_ids.extend(publisher.publish(make_event("a.B", {"n": 2}))))
        worker.start()
        worker.join(10)
    assert len(other_ids) == 1
    assert spy.round_trips == 2


def test_larger_batches_are_split_by_max_batch(gateway, make_publisher, spy):
    """publish_many() sends at most max_batch events per request."""
    publisher = make_publisher(gateway.url, gateway.secret, max_batch=2)
    ids = publisher.publish_many([make_event("a.B", {"n": n}) for n in range(5)])
    assert len(ids) == 5
    assert spy.round_trips == 3


def test_threads_share_a_publisher_with_a_connection_each(gateway, make_publisher, spy):
    """One publisher used by many threads publishes everything, one connection per thread."""
    publisher = make_publisher(gateway.url, gateway.secret)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            results.append([publisher.publish(make_event("a.B", {"t": thread, "n": n}))[0] for n in range(25)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({event_id for ids in results for event_id in ids}) == 6 * 25
    assert spy.connects == 6


def test_close_closes_connections_and_publishing_reconnects(gateway, make_publisher, spy):
    """close() drops the connections; a later publish opens a new one."""
    publisher = make_publisher(gateway.url, gateway.secret)
    publisher.publish(make_event("a.B"))
    publisher.close()
    publisher.publish(make_event("a.B"))
    assert spy.connects == 2


def test_context_manager_closes(gateway, spy):
    """Leaving `with Publisher(...)` closes its connections."""
    with Publisher(gateway.url, gateway.secret) as publisher:
        publisher.publish(make_event("a.B"))
        connection = publisher._local.connection
    assert connection.sock is None


def test_gateway_restart_is_survived_by_reconnecting(gateway_process, make_publisher):
    """After the gateway restarts on the same port, the next publish reconnects and succeeds."""
    first = gateway_process()
    publisher = make_publisher(first.url, first.secret)
    publisher.publish(make_event("a.B"))
    first.stop()
    second = gateway_process(port=first.port, secret=first.secret)
    assert publisher.publish(make_event("a.B"))
    assert second.alive()


def test_each_revoke_sends_a_fresh_token_bound_to_its_body(gateway, make_publisher):
    """revoke() mints a single-use manage token per request, naming its body: repeated revocations all succeed."""
    from telegraphy.tokens import body_hash, verify_manage_token

    publisher = make_publisher(gateway.url, gateway.secret)
    seen = []
    round_trip = publisher._round_trip

    def recording(connection, body, path=None, token=None):
        minted = token()
        seen.append((verify_manage_token(minted, gateway.secret), body))
        return round_trip(connection, body, path, lambda: minted)

    publisher._round_trip = recording
    assert publisher.revoke(7, grants={"groups": []}) == {"sessions": 0}
    assert publisher.revoke(7, grants={"groups": []}) == {"sessions": 0}  # same body, new token
    assert publisher.revoke(7, logout=True) == {"sessions": 0}
    assert len({claims["jti"] for claims, _ in seen}) == 3
    assert all(claims["body_sha256"] == body_hash(body) for claims, body in seen)
