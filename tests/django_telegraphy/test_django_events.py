"""BaseEventModel's attributes, the registry and autodiscover()."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured

from telegraphy.contrib.django_telegraphy import events
from telegraphy.contrib.django_telegraphy.events import (
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    BaseEventModel,
    EventAlreadyRegistered,
    autodiscover,
    registry,
)
from telegraphy_testapp.events import ArticleEvent, CommentEvent, NoteEvent
from telegraphy_testapp.models import Article, Comment, Note, ProxyComment, Quiet


def test_operation_constants_are_the_event_types():
    """OP_CREATE/OP_UPDATE/OP_DELETE are the event types the browser sees."""
    assert (OP_CREATE, OP_UPDATE, OP_DELETE) == ("create", "update", "delete")


def test_operations_default_to_all_three():
    """An event class sends create, update and delete unless told otherwise."""
    handler = registry.handler_for(Article)
    assert set(ArticleEvent.operations) == {OP_CREATE, OP_UPDATE, OP_DELETE}
    assert all(handler.sends(op) for op in (OP_CREATE, OP_UPDATE, OP_DELETE))


def test_operations_limit_the_events_sent():
    """operations = (OP_CREATE,) sends creates only."""
    handler = registry.handler_for(Comment)
    assert handler.sends(OP_CREATE)
    assert not handler.sends(OP_UPDATE)
    assert not handler.sends(OP_DELETE)


def test_name_defaults_to_app_label_and_model_name():
    """name is 'app_label.ModelName' by default."""
    assert ArticleEvent.name == "testapp.Article"
    assert registry.handler_for(Article).get_name() == "testapp.Article"


def test_name_can_be_set():
    """A name set on the class is the event name."""
    assert registry.handler_for(Comment).get_name() == "comments"


def test_verbose_name_defaults_to_the_model_verbose_name():
    """verbose_name is the model's verbose_name unless set."""
    assert registry.handler_for(Article).get_verbose_name() == "news article"
    assert registry.handler_for(Comment).get_verbose_name() == "remark"


def test_is_authorized_user_defaults_to_true():
    """is_authorized_user() allows everyone by default (the seed's hook)."""
    assert registry.handler_for(Article).is_authorized_user(None) is True


def test_fields_select_the_data(isolated_registry):
    """fields lists the fields in the data; pk is always there."""
    registry.unregister(Article)

    class Selected(BaseEventModel):
        model = Article
        fields = ("title", "count")

    data = Selected().get_data(Article(pk=3, title="t", count=2, body="hidden"))
    assert data == {"pk": 3, "title": "t", "count": 2}


def test_exclude_leaves_fields_out(isolated_registry):
    """exclude removes fields from the default selection."""
    registry.unregister(Article)

    class Excluding(BaseEventModel):
        model = Article
        exclude = ("body", "blob", "extra")

    data = Excluding().get_data(Article(pk=3, title="t", body="hidden"))
    assert "body" not in data and "blob" not in data and "extra" not in data
    assert data["title"] == "t"


def test_to_dict_wins_over_fields():
    """A model's own to_dict() gives the data; fields is ignored, pk still added."""
    event = registry.handler_for(Note).build_event(Note(pk=5, text="abc", secret="s"), OP_UPDATE)
    assert event["data"] == {"text": "ABC", "length": 3, "pk": 5}
    assert NoteEvent.fields == ("text",)


def test_build_event_has_the_event_shape():
    """build_event() returns name, meta (event_type, verbose_name, timestamp) and data."""
    event = registry.handler_for(Article).build_event(Article(pk=1, title="x"), OP_CREATE)
    assert event["name"] == "testapp.Article"
    assert event["meta"]["event_type"] == "create"
    assert event["meta"]["verbose_name"] == "news article"
    assert event["meta"]["timestamp"].endswith("Z")
    assert event["data"]["title"] == "x"


def test_declaring_a_class_registers_it(isolated_registry):
    """A subclass whose body sets model is registered by being declared."""

    class GroupEvent(BaseEventModel):
        model = Group

    assert isinstance(registry.handler_for(Group), GroupEvent)


def test_a_second_class_for_a_model_is_an_error_naming_both(isolated_registry):
    """Registering another class for a registered model raises, naming both classes."""
    with pytest.raises(EventAlreadyRegistered) as caught:

        class OtherArticleEvent(BaseEventModel):
            model = Article

    message = str(caught.value)
    assert "telegraphy_testapp.events.ArticleEvent" in message
    assert "OtherArticleEvent" in message
    assert "testapp.Article" in message
    assert isinstance(caught.value, ImproperlyConfigured)


def test_base_class_without_model_is_not_registered(isolated_registry):
    """An intermediate class without model holds options and registers nothing."""
    before = len(registry)

    class Common(BaseEventModel):
        operations = (OP_CREATE,)

    class QuietEvent(Common):
        model = Quiet

    assert len(registry) == before + 1
    assert registry.handler_for(Quiet).sends(OP_CREATE)
    assert not registry.handler_for(Quiet).sends(OP_DELETE)


def test_instantiating_a_registered_class_is_harmless():
    """The seed's `event = MyEvent()` keeps the registered handler."""
    handler = registry.handler_for(Comment)
    CommentEvent()
    assert registry.handler_for(Comment) is handler


def test_proxy_models_use_the_concrete_model_event_class():
    """A proxy model without its own event class uses its concrete model's."""
    assert isinstance(registry.handler_for(ProxyComment), CommentEvent)


def test_unregistered_models_have_no_handler():
    """A model without an event class has none."""
    assert registry.handler_for(Quiet) is None


def test_autodiscover_is_idempotent():
    """Calling autodiscover() again changes nothing and raises nothing."""
    before = {type(handler) for handler in registry}
    autodiscover()
    events.autodiscover()
    assert {type(handler) for handler in registry} == before
    assert ArticleEvent in before


def test_autodiscover_ran_in_ready():
    """AppConfig.ready() imported the test app's events module."""
    assert isinstance(registry.handler_for(Article), ArticleEvent)


def test_reimported_module_replaces_its_classes(isolated_registry):
    """A class re-declared by a reloaded module (same dotted path) replaces the old one."""
    import importlib
    import sys

    module = sys.modules["telegraphy_testapp.events"]
    importlib.reload(module)
    assert type(registry.handler_for(Article)) is module.ArticleEvent
