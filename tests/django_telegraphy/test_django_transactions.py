"""Model and custom events follow transactions: sent after commit, dropped on rollback, batched."""

from __future__ import annotations

import logging

import pytest
from django.core import serializers
from django.db import transaction

from telegraphy.contrib.django_telegraphy import send_event
from telegraphy.event import InvalidEvent
from telegraphy.publisher import GatewayUnavailable, Publisher
from telegraphy_testapp.models import Article, Comment, Note, Quiet

pytestmark = pytest.mark.django_db(transaction=True)


def kinds(outbox):
    """Return (name, event_type) of each captured event."""
    return [(event["name"], event["meta"]["event_type"]) for event in outbox]


def test_save_outside_a_transaction_publishes_at_once(telegraphy_outbox):
    """In autocommit mode a create is published right away, alone."""
    article = Article.objects.create(title="first")
    assert kinds(telegraphy_outbox) == [("testapp.Article", "create")]
    assert telegraphy_outbox[0]["data"]["pk"] == article.pk
    assert len(telegraphy_outbox.batches) == 1


def test_update_and_delete_events(telegraphy_outbox):
    """A second save is an update; a delete sends the deleted row's data and pk."""
    article = Article.objects.create(title="first")
    pk = article.pk
    article.title = "second"
    article.save()
    article.delete()
    assert kinds(telegraphy_outbox) == [("testapp.Article", t) for t in ("create", "update", "delete")]
    assert telegraphy_outbox[1]["data"]["title"] == "second"
    assert telegraphy_outbox[2]["data"]["pk"] == pk
    assert telegraphy_outbox[2]["data"]["title"] == "second"


def test_events_wait_for_the_commit(telegraphy_outbox):
    """Inside atomic() nothing is published before the block commits."""
    with transaction.atomic():
        Article.objects.create(title="a")
        assert telegraphy_outbox == []
    assert kinds(telegraphy_outbox) == [("testapp.Article", "create")]


def test_one_batch_per_transaction(telegraphy_outbox):
    """Several changes in one transaction are delivered together, in order, as one batch."""
    with transaction.atomic():
        first = Article.objects.create(title="a")
        Article.objects.create(title="b")
        first.title = "a2"
        first.save()
        Comment.objects.create(text="c")
        send_event("chat.lobby", {"text": "hi"})
    assert len(telegraphy_outbox.batches) == 1
    assert kinds(telegraphy_outbox) == [
        ("testapp.Article", "create"),
        ("testapp.Article", "create"),
        ("testapp.Article", "update"),
        ("comments", "create"),
        ("chat.lobby", "custom"),
    ]


def test_two_transactions_are_two_batches(telegraphy_outbox):
    """Each committed transaction is its own batch."""
    for title in ("a", "b"):
        with transaction.atomic():
            Article.objects.create(title=title)
            Article.objects.create(title=title + "2")
    assert [len(batch) for batch in telegraphy_outbox.batches] == [2, 2]


def test_rollback_publishes_nothing(telegraphy_outbox):
    """A rolled back transaction sends no event."""
    with pytest.raises(RuntimeError), transaction.atomic():
        Article.objects.create(title="a")
        send_event("chat.lobby", {"text": "never"})
        raise RuntimeError("roll back")
    assert telegraphy_outbox == []
    Article.objects.create(title="b")  # the next transaction is not polluted
    assert [event["data"]["title"] for event in telegraphy_outbox] == ["b"]


def test_savepoint_rollback_drops_only_its_events(telegraphy_outbox):
    """Events of a rolled back savepoint are dropped, the others sent in one batch."""
    with transaction.atomic():
        Article.objects.create(title="kept-1")
        try:
            with transaction.atomic():
                Article.objects.create(title="dropped")
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        Article.objects.create(title="kept-2")
    assert [event["data"]["title"] for event in telegraphy_outbox] == ["kept-1", "kept-2"]
    assert len(telegraphy_outbox.batches) == 1


def test_savepoint_rolled_back_last_still_flushes_the_rest(telegraphy_outbox):
    """When the last change was in a rolled back savepoint, the earlier events are still sent."""
    with transaction.atomic():
        Article.objects.create(title="kept")
        try:
            with transaction.atomic():
                Article.objects.create(title="dropped")
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
    assert [event["data"]["title"] for event in telegraphy_outbox] == ["kept"]


def test_nested_committed_blocks_are_one_batch(telegraphy_outbox):
    """Events of committed inner blocks join the outer transaction's batch."""
    with transaction.atomic():
        Article.objects.create(title="outer")
        with transaction.atomic():
            Article.objects.create(title="inner")
            with transaction.atomic():
                Article.objects.create(title="innermost")
    assert len(telegraphy_outbox.batches) == 1
    assert len(telegraphy_outbox) == 3


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_each_database_has_its_own_transaction(telegraphy_outbox):
    """Events follow the transaction of the database they were saved to."""
    with transaction.atomic(using="other"):
        Article.objects.using("other").create(title="other")
        with transaction.atomic():
            Article.objects.create(title="default")
        assert [event["data"]["title"] for event in telegraphy_outbox] == ["default"]
    assert [event["data"]["title"] for event in telegraphy_outbox] == ["default", "other"]


def test_fixture_loading_sends_nothing(telegraphy_outbox):
    """Saves with raw=True (loaddata, deserialization) are ignored."""
    payload = '[{"model": "testapp.comment", "pk": 50, "fields": {"text": "loaded"}}]'
    for obj in serializers.deserialize("json", payload):
        obj.save()
    assert Comment.objects.filter(pk=50).exists()
    assert telegraphy_outbox == []


def test_operations_filter_updates_and_deletes(telegraphy_outbox):
    """A model with operations=(OP_CREATE,) sends creates only."""
    comment = Comment.objects.create(text="a")
    comment.text = "b"
    comment.save()
    comment.delete()
    assert kinds(telegraphy_outbox) == [("comments", "create")]


def test_models_without_event_class_send_nothing(telegraphy_outbox):
    """Saving a model that has no event class sends nothing."""
    Quiet.objects.create(text="shh")
    assert telegraphy_outbox == []


def test_send_event_outside_a_transaction(telegraphy_outbox):
    """send_event() publishes a custom event at once in autocommit mode."""
    send_event("chat.lobby", {"text": "hello"})
    (event,) = telegraphy_outbox
    assert event["name"] == "chat.lobby"
    assert event["meta"]["event_type"] == "custom"
    assert event["data"] == {"text": "hello"}


def test_send_event_with_type_and_database(telegraphy_outbox):
    """send_event() takes an event_type and follows the given database's transaction."""
    with transaction.atomic():
        send_event("game.Board", {"move": "e4"}, event_type="move", using="default")
        assert telegraphy_outbox == []
    assert telegraphy_outbox[0]["meta"]["event_type"] == "move"


def test_send_event_refuses_an_invalid_name():
    """An invalid event name raises InvalidEvent at the call."""
    with pytest.raises(InvalidEvent):
        send_event("not a topic", {})


def test_broken_to_dict_does_not_break_the_save(monkeypatch, telegraphy_outbox, caplog):
    """With fire-and-forget, an exception while building the event is logged and the save succeeds."""

    def broken(self):
        raise ValueError("bad to_dict")

    monkeypatch.setattr(Note, "to_dict", broken)
    with caplog.at_level(logging.ERROR, logger="telegraphy.django"):
        Note.objects.create(text="x")
    assert Note.objects.count() == 1
    assert telegraphy_outbox == []
    assert "bad to_dict" in caplog.text


def test_broken_to_dict_raises_without_fire_and_forget(monkeypatch, settings, telegraphy_outbox):
    """With TELEGRAPHY_FIRE_AND_FORGET = False, the error reaches the caller."""
    settings.TELEGRAPHY_FIRE_AND_FORGET = False
    monkeypatch.setattr(Note, "to_dict", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        Note.objects.create(text="x")


# -- through the publisher to a real gateway --------------------------------------------------


@pytest.fixture
def round_trips(monkeypatch):
    """Count the HTTP requests the publisher makes."""
    calls = []
    original = Publisher._round_trip

    def counting(self, *args):
        calls.append(self.url)
        return original(self, *args)

    monkeypatch.setattr(Publisher, "_round_trip", counting)
    return calls


def test_one_http_request_per_transaction(gateway, publish_to, round_trips):
    """A transaction with several changes costs one POST to the real gateway."""
    publish_to(gateway)
    with transaction.atomic():
        for n in range(5):
            Article.objects.create(title=f"a{n}")
        send_event("chat.lobby", {"n": 5})
    assert round_trips == [gateway.url]
    Article.objects.create(title="alone")
    assert len(round_trips) == 2


def test_rolled_back_transaction_makes_no_request(gateway, publish_to, round_trips):
    """Nothing is POSTed for a rolled back transaction."""
    publish_to(gateway)
    with pytest.raises(RuntimeError), transaction.atomic():
        Article.objects.create(title="a")
        raise RuntimeError
    assert round_trips == []


def test_gateway_down_is_logged_with_fire_and_forget(settings, closed_port_url, round_trips, caplog):
    """With the gateway down, saves succeed and the failure is logged (the default)."""
    settings.TELEGRAPHY_ENABLED = True
    settings.TELEGRAPHY_GATEWAY_URL = closed_port_url
    with caplog.at_level(logging.ERROR):
        Article.objects.create(title="saved anyway")
    assert Article.objects.filter(title="saved anyway").exists()
    assert round_trips == [closed_port_url]
    assert closed_port_url in caplog.text


def test_gateway_down_raises_without_fire_and_forget(settings, closed_port_url):
    """With TELEGRAPHY_FIRE_AND_FORGET = False, GatewayUnavailable reaches the caller after commit."""
    settings.TELEGRAPHY_ENABLED = True
    settings.TELEGRAPHY_FIRE_AND_FORGET = False
    settings.TELEGRAPHY_GATEWAY_URL = closed_port_url
    with pytest.raises(GatewayUnavailable):
        Article.objects.create(title="committed, then the error")
    assert Article.objects.filter(title="committed, then the error").exists()


def test_disabled_publishes_nothing(settings, closed_port_url, round_trips):
    """TELEGRAPHY_ENABLED = False makes no request at all."""
    settings.TELEGRAPHY_ENABLED = False
    settings.TELEGRAPHY_GATEWAY_URL = closed_port_url
    Article.objects.create(title="quiet")
    send_event("chat.lobby", {})
    assert round_trips == []


def test_missing_secret_is_logged_not_raised(settings, round_trips, caplog):
    """Without TELEGRAPHY_SECRET, publishing logs an error naming the setting; the save succeeds."""
    settings.TELEGRAPHY_ENABLED = True
    settings.TELEGRAPHY_SECRET = None
    with caplog.at_level(logging.ERROR):
        Article.objects.create(title="no secret")
    assert "TELEGRAPHY_SECRET" in caplog.text
    assert round_trips == []


def test_a_commit_whose_answer_is_lost_is_retried_with_the_same_ids_and_delivered_once(gateway, publish_to, monkeypatch, settings):
    """Model and custom events carry publisher-minted meta.ids; a retry after a lost answer reuses them and the real gateway drops it."""
    import json
    import re
    import urllib.request

    publish_to(gateway)
    settings.TELEGRAPHY_PUBLISH_RETRIES = 1
    bodies = []
    original = Publisher._round_trip

    def lose_the_first_answer(self, connection, body, *args):
        bodies.append(json.loads(body))
        answer = original(self, connection, body, *args)
        if len(bodies) == 1:
            raise ConnectionResetError("the answer was lost")
        return answer

    monkeypatch.setattr(Publisher, "_round_trip", lose_the_first_answer)
    with transaction.atomic():
        Article.objects.create(title="a")
        send_event("chat.lobby", {"n": 1})
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    ids = [event["meta"]["id"] for event in bodies[0]]
    assert len(set(ids)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "telegraphy_duplicate_events_total 2" in text.splitlines()
    assert "telegraphy_events_published_total 2" in text.splitlines()
