"""The publisher against faults a real gateway cannot be made to show (a scripted stand-in)."""

from __future__ import annotations

import json
import re

import pytest

from telegraphy.event import InvalidEvent, make_event
from telegraphy.publisher import GatewayUnavailable, Publisher, PublishRejected, UnexpectedResponse
from telegraphy.tokens import PUBLISH_AUDIENCE, verify_publish_token

SECRET = "fault-injection-secret-" * 2


def test_request_shape(fake, make_publisher):
    """A publish is a POST to <url>/publish with a Bearer publish token and a JSON body."""
    publisher = make_publisher(fake.url + "/", SECRET)
    event = make_event("shop.Order", {"pk": 1}, "create")
    publisher.publish(event)
    (request,) = fake.requests
    assert request["path"] == "/publish"
    assert request["headers"]["Content-Type"] == "application/json"
    assert verify_publish_token(fake.tokens()[0], SECRET)["aud"] == PUBLISH_AUDIENCE
    sent_id = request["body"]["meta"].pop("id")
    assert request["body"] == event and "id" not in event["meta"]  # the caller's event is not changed
    assert re.fullmatch(r"[0-9a-f]{32}", sent_id)


def test_a_retried_event_carries_the_same_id(fake, make_publisher):
    """Every retry (after a lost response, after a 5xx) sends the meta.id minted before the first attempt; that id is returned."""
    fake.drop_answers = 1
    fake.script = [(503, {"error": "unavailable"})]
    ids = make_publisher(fake.url, SECRET, retries=3, backoff=0.01).publish(make_event("a.B"))
    bodies = fake.bodies()
    assert len(bodies) == 3
    assert len({body["meta"]["id"] for body in bodies}) == 1
    assert ids == [bodies[0]["meta"]["id"]]


def test_a_caller_id_is_kept_and_batch_events_get_their_own(fake, make_publisher):
    """An event's own meta.id is sent as is; queued events each get a distinct id when queued."""
    publisher = make_publisher(fake.url, SECRET)
    assert publisher.publish(make_event("a.B", meta={"id": "order-7:v2"})) == ["order-7:v2"]
    with publisher.batch() as batch:
        publisher.publish(make_event("a.B", {"n": 1}))
        publisher.publish(make_event("a.B", {"n": 2}))
        queued = [event["meta"]["id"] for event in batch.events]
    assert len(set(queued)) == 2
    assert [event["meta"]["id"] for event in fake.bodies()[1]] == queued == batch.ids


def test_url_path_prefix_is_kept(fake, make_publisher):
    """A gateway mounted under a path gets <path>/publish."""
    make_publisher(fake.url + "/telegraphy", SECRET).publish(make_event("a.B"))
    assert fake.requests[0]["path"] == "/telegraphy/publish"


def test_server_errors_are_retried_then_succeed(fake, make_publisher):
    """A 503 is retried; the retry's answer is returned."""
    fake.script = [(503, {"error": "unavailable"}), (502, b"bad gateway")]
    ids = make_publisher(fake.url, SECRET, retries=3).publish(make_event("a.B"))
    assert len(ids) == 1
    assert len(fake.requests) == 3


def test_persistent_server_errors_raise_gateway_unavailable(fake, make_publisher):
    """5xx on every attempt raises GatewayUnavailable with the last status."""
    fake.script = [(500, {"error": "internal_error"})] * 3
    with pytest.raises(GatewayUnavailable) as caught:
        make_publisher(fake.url, SECRET, retries=2).publish(make_event("a.B"))
    assert caught.value.attempts == 3
    assert "500" in caught.value.reason
    assert fake.url in str(caught.value)


def test_client_errors_are_not_retried(fake, make_publisher):
    """A 400 raises PublishRejected carrying the gateway's error and detail, after one request."""
    fake.script = [(400, {"error": "invalid_event", "detail": "event 0: name: is required"})]
    with pytest.raises(PublishRejected) as caught:
        make_publisher(fake.url, SECRET, retries=3).publish(make_event("a.B"))
    assert (caught.value.status, caught.value.error) == (400, "invalid_event")
    assert caught.value.detail == "event 0: name: is required"
    assert "400 invalid_event" in str(caught.value)
    assert len(fake.requests) == 1


def test_client_error_without_json_body(fake, make_publisher):
    """A 4xx with a non-JSON body still raises PublishRejected with the status's name."""
    fake.script = [(415, b"<html>nope</html>")]
    with pytest.raises(PublishRejected) as caught:
        make_publisher(fake.url, SECRET).publish(make_event("a.B"))
    assert caught.value.error == "unsupported_media_type"


def test_unexpected_success_body(fake, make_publisher):
    """A 2xx without an ids list raises UnexpectedResponse and is not retried."""
    fake.script = [(202, {"published": 1})]
    with pytest.raises(UnexpectedResponse):
        make_publisher(fake.url, SECRET).publish(make_event("a.B"))
    assert len(fake.requests) == 1


def test_dropped_keep_alive_connection_is_reopened_without_a_retry(fake, make_publisher):
    """When the gateway closed the idle connection, the publisher reconnects at once, retries=0 or not."""
    fake.close_after_answer = True
    publisher = make_publisher(fake.url, SECRET, retries=0)
    for n in range(3):
        assert publisher.publish(make_event("a.B", {"n": n}))
    assert len(fake.requests) == 3
    assert fake.connections == 3


def test_keep_alive_reuses_one_connection(fake, make_publisher):
    """Without the server closing it, every publish goes over one connection."""
    publisher = make_publisher(fake.url, SECRET)
    for _ in range(5):
        publisher.publish(make_event("a.B"))
    assert fake.connections == 1


def test_token_is_cached_then_reminted_before_expiry(fake, make_publisher):
    """One token serves requests until shortly before it expires; then a new one is minted."""
    publisher = make_publisher(fake.url, SECRET, token_ttl=60)
    now = [1_000_000.0]
    publisher._clock = lambda: now[0]
    publisher.publish(make_event("a.B"))
    now[0] += 30
    publisher.publish(make_event("a.B"))
    now[0] += 25  # 55 s after minting: within the renewal margin of a 60 s token
    publisher.publish(make_event("a.B"))
    first, second, third = fake.tokens()
    assert first == second
    assert third != first


def test_a_401_forgets_the_cached_token(fake, make_publisher):
    """After a 401 the next publish mints a fresh token."""
    fake.script = [(401, {"error": "unauthorized", "detail": "token expired"})]
    publisher = make_publisher(fake.url, SECRET)
    now = [1_000_000.0]
    publisher._clock = lambda: now[0]
    with pytest.raises(PublishRejected):
        publisher.publish(make_event("a.B"))
    now[0] += 1
    publisher.publish(make_event("a.B"))
    first, second = fake.tokens()
    assert first != second


def test_batch_body_is_a_json_array(fake, make_publisher):
    """Several events go as one JSON array; one event as one object."""
    publisher = make_publisher(fake.url, SECRET)
    with publisher.batch():
        publisher.publish(make_event("a.B", {"n": 1}))
        publisher.publish(make_event("a.B", {"n": 2}))
    (body,) = fake.bodies()
    assert [event["data"]["n"] for event in body] == [1, 2]


def test_invalid_event_is_refused_before_sending(fake, make_publisher):
    """An event without a name raises InvalidEvent and sends nothing."""
    publisher = make_publisher(fake.url, SECRET)
    with pytest.raises(InvalidEvent) as caught:
        publisher.publish_many([make_event("a.B"), {"data": {}}])
    assert caught.value.index == 1
    assert fake.requests == []


def test_unserializable_data_is_an_invalid_event(fake, make_publisher):
    """Data json cannot encode raises InvalidEvent naming 'data'."""
    publisher = make_publisher(fake.url, SECRET)
    with pytest.raises(InvalidEvent) as caught:
        publisher.publish({"name": "a.B", "meta": {}, "data": {"when": object()}})
    assert caught.value.field == "data"
    assert fake.requests == []


def test_non_ascii_data_is_sent_as_utf8(fake, make_publisher):
    """Text outside ASCII arrives intact."""
    make_publisher(fake.url, SECRET).publish(make_event("a.B", {"text": "ñandú ☃"}))
    assert fake.bodies()[0]["data"]["text"] == "ñandú ☃"
    assert json.dumps(fake.bodies()[0])  # the stand-in parsed it as JSON


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://example.com", {}),
        ("http://", {}),
        ("http://127.0.0.1:9000", {"retries": -1}),
        ("http://127.0.0.1:9000", {"token_ttl": 1}),
        ("http://127.0.0.1:9000", {"max_batch": 0}),
    ],
)
def test_bad_arguments_are_refused(url, kwargs):
    """The constructor refuses a non-HTTP URL and out-of-range options."""
    with pytest.raises(ValueError):
        Publisher(url, SECRET, **kwargs)


def test_empty_secret_is_refused():
    """An empty secret is refused at construction."""
    with pytest.raises(ValueError, match="secret"):
        Publisher("http://127.0.0.1:9000", "")
