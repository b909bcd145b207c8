"""The test helpers: capture_events(), the telegraphy_outbox fixture, TelegraphyTestMixin."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase, TransactionTestCase

from telegraphy.contrib.django_telegraphy import send_event, testing
from telegraphy.contrib.django_telegraphy.testing import Outbox, TelegraphyTestMixin, capture_events
from telegraphy.publisher import Publisher
from telegraphy_testapp.models import Article, Comment


@pytest.fixture
def no_requests(monkeypatch):
    """Fail the test if anything is POSTed to a gateway."""

    def refuse(self, *args):
        raise AssertionError("the publisher was called while capturing")

    monkeypatch.setattr(Publisher, "_round_trip", refuse)


@pytest.mark.django_db
def test_outbox_respects_on_commit_inside_a_test_transaction(telegraphy_outbox, django_capture_on_commit_callbacks):
    """In a test's transaction, events appear only when their on-commit callbacks run."""
    Article.objects.create(title="never committed")
    assert telegraphy_outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        Article.objects.create(title="committed")
        Article.objects.create(title="committed too")
    assert [event["data"]["title"] for event in telegraphy_outbox] == ["committed", "committed too"]
    assert len(telegraphy_outbox.batches) == 1


@pytest.mark.django_db(transaction=True)
def test_capture_events_records_instead_of_publishing(no_requests):
    """capture_events() yields an outbox and nothing reaches the publisher."""
    with capture_events() as outbox:
        Article.objects.create(title="a")
        send_event("chat.lobby", {"text": "hi"})
    assert isinstance(outbox, Outbox)
    assert [event["name"] for event in outbox] == ["testapp.Article", "chat.lobby"]


@pytest.mark.django_db(transaction=True)
def test_capture_events_works_when_publishing_is_disabled(settings):
    """Events are captured even with TELEGRAPHY_ENABLED = False."""
    settings.TELEGRAPHY_ENABLED = False
    with capture_events() as outbox:
        Comment.objects.create(text="x")
    assert outbox.filter("comments", "create")


@pytest.mark.django_db(transaction=True)
def test_capture_events_as_a_decorator(no_requests):
    """@capture_events() captures into testing.outbox during the call."""
    seen = []

    @capture_events()
    def work():
        send_event("chat.lobby", {"n": 1})
        seen.extend(testing.outbox)

    work()
    assert [event["data"] for event in seen] == [{"n": 1}]
    assert testing.outbox == []  # back to the inactive outbox


@pytest.mark.django_db(transaction=True)
def test_nested_captures_each_see_the_events(no_requests):
    """An inner capture and the outer one both record the events published inside both."""
    with capture_events() as outer:
        send_event("a.B", {"n": 1})
        with capture_events() as inner:
            send_event("a.B", {"n": 2})
    assert [event["data"]["n"] for event in outer] == [1, 2]
    assert [event["data"]["n"] for event in inner] == [2]


def test_outbox_filter_matches_name_type_and_data_subset():
    """Outbox.filter() matches by name, event type and a subset of the data."""
    outbox = Outbox()
    outbox.record(
        [
            {"name": "a.B", "meta": {"event_type": "create"}, "data": {"pk": 1, "x": 1}},
            {"name": "a.B", "meta": {"event_type": "update"}, "data": {"pk": 1, "x": 2}},
            {"name": "c.D", "meta": {"event_type": "create"}, "data": {"pk": 2}},
        ]
    )
    assert len(outbox.filter("a.B")) == 2
    assert len(outbox.filter("a.B", "update")) == 1
    assert outbox.filter("a.B", data={"x": 2})[0]["meta"]["event_type"] == "update"
    assert outbox.filter("a.B", data={"missing": None}) == []
    assert len(outbox.filter(event_type="create")) == 2
    outbox.clear()
    assert outbox == [] and outbox.batches == []


class MixinTestCase(TelegraphyTestMixin, TestCase):
    """TelegraphyTestMixin in a Django TestCase."""

    def test_assert_published(self):
        """assertPublished finds an event by name, type and data subset and returns it."""
        with self.captureOnCommitCallbacks(execute=True):
            article = Article.objects.create(title="hello")
        event = self.assertPublished("testapp.Article", "create", {"title": "hello"})
        assert event["data"]["pk"] == article.pk

    def test_assert_not_published(self):
        """assertNotPublished passes when no event matches, including uncommitted ones."""
        Article.objects.create(title="never committed")
        self.assertNotPublished("testapp.Article")
        with self.captureOnCommitCallbacks(execute=True):
            Comment.objects.create(text="c")
        self.assertNotPublished("comments", "update")

    def test_assert_published_failure_lists_what_was_published(self):
        """A failed assertPublished says what was published instead."""
        with self.captureOnCommitCallbacks(execute=True):
            send_event("chat.lobby", {"text": "hi"})
        with self.assertRaises(AssertionError) as caught:
            self.assertPublished("chat.lobby", data={"text": "bye"})
        assert "chat.lobby/custom" in str(caught.exception)

    def test_assert_not_published_failure(self):
        """A failed assertNotPublished shows the matching events."""
        with self.captureOnCommitCallbacks(execute=True):
            send_event("chat.lobby", {"text": "hi"})
        with self.assertRaises(AssertionError) as caught:
            self.assertNotPublished("chat.lobby", "custom")
        assert "'text': 'hi'" in str(caught.exception)

    def test_outbox_is_fresh_for_each_test_one(self):
        """Each test starts with an empty outbox (first of two)."""
        self.assertEqual(list(self.telegraphy_outbox), [])
        send_event("a.B", {})

    def test_outbox_is_fresh_for_each_test_two(self):
        """Each test starts with an empty outbox (second of two)."""
        self.assertEqual(list(self.telegraphy_outbox), [])
        send_event("a.B", {})


class MixinTransactionTestCase(TelegraphyTestMixin, TransactionTestCase):
    """TelegraphyTestMixin in a TransactionTestCase, where transactions really commit."""

    def test_commit_publishes_without_capturing_callbacks(self):
        """Real commits deliver the events; a rollback does not."""
        with transaction.atomic():
            Article.objects.create(title="real")
        self.assertPublished("testapp.Article", "create", {"title": "real"})
        try:
            with transaction.atomic():
                Article.objects.create(title="rolled back")
                raise RuntimeError
        except RuntimeError:
            pass
        self.assertNotPublished("testapp.Article", data={"title": "rolled back"})
