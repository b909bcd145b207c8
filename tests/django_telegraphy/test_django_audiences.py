"""Event classes' audience, permission and projections become meta.audience and meta.projections."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.checks import run_checks

from telegraphy.contrib.django_telegraphy import send_event
from telegraphy.contrib.django_telegraphy.audiences import AudienceError, wire_audience, wire_projections
from telegraphy.contrib.django_telegraphy.events import OP_CREATE, OP_DELETE, OP_UPDATE, BaseEventModel
from telegraphy.contrib.django_telegraphy.registry import registry
from telegraphy.wamp.audience import ANONYMOUS, Grants, Visibility
from telegraphy_testapp.models import Article, Order

STAFF = Grants(user="2", groups=frozenset({"staff"}))
CUSTOMER = Grants(user="7")
VIEWER = Grants(user="8", permissions=frozenset({"testapp.view_order"}))
STRANGER = Grants(user="9")
ROOT = Grants(user="1", superuser=True)


def order(**fields):
    values = {"pk": 1, "title": "Desk", "status": "paid", "total": Decimal("9.50"), "customer_id": 7}
    values.update(fields)
    return Order(**values)


def event_of(event_class, instance=None, operation=OP_UPDATE):
    return registry.handler_for(event_class.model).build_event(instance or order(), operation)


def who_gets(event, *grants):
    """Return, for each of ``grants``, the data the gateway would deliver (None: not delivered)."""
    visibility = Visibility.of_event(event)
    seen = []
    for grant in grants:
        if visibility is None:
            seen.append(event["data"])
            continue
        variant = visibility.variant(grant)
        seen.append(None if variant is None else visibility.project(event, variant)["data"])
    return seen


def test_default_audience_is_public_and_not_on_the_wire():
    """An event class without audience sends events as before: no meta.audience, everyone gets them."""
    event = registry.handler_for(Article).build_event(Article(pk=1, title="x"), OP_CREATE)
    assert "audience" not in event["meta"] and "projections" not in event["meta"]
    assert who_gets(event, ANONYMOUS)[0]["title"] == "x"


def test_default_audience_setting(settings, isolated_registry):
    """TELEGRAPHY_DEFAULT_AUDIENCE is the audience of classes that declare none; a class's own wins."""
    settings.TELEGRAPHY_DEFAULT_AUDIENCE = "authenticated"

    class OrderEvent(BaseEventModel):
        model = Order

    assert event_of(OrderEvent)["meta"]["audience"] == "authenticated"
    assert registry.handler_for(Article).build_event(Article(pk=1), OP_CREATE)["meta"]["audience"] == "authenticated"
    OrderEvent.audience = "public"
    assert "audience" not in event_of(OrderEvent)["meta"]


def test_authenticated_audience(isolated_registry):
    """audience = "authenticated" reaches any signed-in session, not anonymous ones."""

    class OrderEvent(BaseEventModel):
        model = Order
        audience = "authenticated"

    event = event_of(OrderEvent)
    assert event["meta"]["audience"] == "authenticated"
    assert [data is not None for data in who_gets(event, ANONYMOUS, STRANGER)] == [False, True]


@pytest.mark.django_db
def test_targeted_audience_wire_format(isolated_registry):
    """Users become strings of their pk (instances or pks), groups their names, empty keys are left out."""
    ann = User.objects.create(username="ann")
    staff = Group.objects.create(name="staff")

    class OrderEvent(BaseEventModel):
        model = Order
        audience = {"users": [ann, 7, None, 7], "groups": [staff, "ops"], "permissions": []}

    assert event_of(OrderEvent)["meta"]["audience"] == {"users": [str(ann.pk), "7"], "groups": ["staff", "ops"]}


def test_permission_shortcut(isolated_registry):
    """permission = "app.codename" is audience {"permissions": [...]}; a list works too."""

    class OrderEvent(BaseEventModel):
        model = Order
        permission = "testapp.view_order"

    event = event_of(OrderEvent)
    assert event["meta"]["audience"] == {"permissions": ["testapp.view_order"]}
    assert [data is not None for data in who_gets(event, ANONYMOUS, STRANGER, VIEWER, ROOT)] == [
        False,
        False,
        True,
        True,
    ]
    OrderEvent.permission = ["testapp.view_order", "testapp.change_order"]
    assert event_of(OrderEvent)["meta"]["audience"] == {"permissions": ["testapp.view_order", "testapp.change_order"]}


def test_get_audience_per_instance(isolated_registry):
    """get_audience(instance) names the order's customer; other users and anonymous sessions get nothing."""

    class OrderEvent(BaseEventModel):
        model = Order

        def get_audience(self, instance):
            return {"users": [instance.customer_id], "groups": ["staff"]}

    event = event_of(OrderEvent, order(customer_id=7))
    assert event["meta"]["audience"] == {"users": ["7"], "groups": ["staff"]}
    assert [data is not None for data in who_gets(event, CUSTOMER, STAFF, STRANGER, ANONYMOUS)] == [
        True,
        True,
        False,
        False,
    ]
    # No customer: only the staff (an empty foreign key adds nobody).
    assert event_of(OrderEvent, order(customer_id=None))["meta"]["audience"] == {"groups": ["staff"]}


@pytest.mark.django_db(transaction=True)
def test_saved_and_deleted_instances_carry_their_audience(isolated_registry, telegraphy_outbox):
    """Model signals publish the per-instance audience, also for a delete (from the deleted row's values)."""
    ann = User.objects.create(username="ann")

    class OrderEvent(BaseEventModel):
        model = Order

        def get_audience(self, instance):
            return {"users": [instance.customer_id]}

    saved = Order.objects.create(title="Desk", customer=ann)
    saved.delete()
    assert [(event["meta"]["event_type"], event["meta"]["audience"]) for event in telegraphy_outbox] == [
        (OP_CREATE, {"users": [str(ann.pk)]}),
        (OP_DELETE, {"users": [str(ann.pk)]}),
    ]


def test_projections_wire_format_and_order(isolated_registry):
    """Projections go narrowest first, keep pk, add a foreign key's data key; None means every field."""

    class OrderEvent(BaseEventModel):
        model = Order
        projections = [("public", ["title"]), ("authenticated", ["title", "customer"]), ({"groups": ["staff"]}, None)]

    event = event_of(OrderEvent)
    assert "audience" not in event["meta"]
    assert event["meta"]["projections"] == [
        {"audience": {"groups": ["staff"]}, "fields": None},
        {"audience": "authenticated", "fields": ["pk", "title", "customer", "customer_id"]},
        {"audience": "public", "fields": ["pk", "title"]},
    ]
    anonymous, customer, staff = who_gets(event, ANONYMOUS, CUSTOMER, STAFF)
    assert anonymous == {"pk": 1, "title": "Desk"}
    assert customer == {"pk": 1, "title": "Desk", "customer_id": 7}
    assert staff == event["data"]


def test_projections_without_a_public_entry_hide_the_event_from_others(isolated_registry):
    """A session in no projection's audience does not get the event at all."""

    class OrderEvent(BaseEventModel):
        model = Order
        projections = [{"audience": {"groups": ["staff"]}, "fields": ["status"]}]

    event = event_of(OrderEvent)
    assert who_gets(event, STAFF, STRANGER, ANONYMOUS) == [{"pk": 1, "status": "paid"}, None, None]


def test_get_projections_per_instance_with_an_audience(isolated_registry):
    """get_projections(instance) and an audience combine: the audience first, then the projection."""

    class OrderEvent(BaseEventModel):
        model = Order
        audience = "authenticated"

        def get_projections(self, instance):
            return [({"users": [instance.customer_id]}, None), ("authenticated", ["status"])]

    event = event_of(OrderEvent, order(customer_id=7))
    assert event["meta"]["audience"] == "authenticated"
    assert event["meta"]["projections"][0] == {"audience": {"users": ["7"]}, "fields": None}
    customer, stranger, anonymous = who_gets(event, CUSTOMER, STRANGER, ANONYMOUS)
    assert customer["total"] == "9.50" and stranger == {"pk": 1, "status": "paid"} and anonymous is None


def test_overridden_is_authorized_user_becomes_the_audience(isolated_registry):
    """A class overriding is_authorized_user sends its events to the holders of its receive permission."""

    class OrderEvent(BaseEventModel):
        model = Order

        def is_authorized_user(self, user):
            return user.username.startswith("a")

    assert event_of(OrderEvent)["meta"]["audience"] == {"permissions": ["telegraphy:receive:testapp.Order"]}


def test_send_event_audience_and_projections(settings, telegraphy_outbox):
    """send_event takes audience= and projections=, and follows TELEGRAPHY_DEFAULT_AUDIENCE."""
    send_event("shop.alerts", {"text": "low", "sku": "A1"}, audience={"groups": ["staff"]})
    send_event("shop.news", {"title": "t", "body": "b"}, projections=[("public", ["title"]), ("authenticated", None)])
    send_event("chat.lobby", {"text": "hi"}, meta={"audience": "authenticated"})
    settings.TELEGRAPHY_DEFAULT_AUDIENCE = "authenticated"
    send_event("chat.lobby", {"text": "hi"})
    alerts, news, chat, defaulted = telegraphy_outbox
    assert alerts["meta"]["audience"] == {"groups": ["staff"]}
    assert "audience" not in news["meta"]
    assert news["meta"]["projections"] == [
        {"audience": "authenticated", "fields": None},
        {"audience": "public", "fields": ["pk", "title"]},
    ]
    assert chat["meta"]["audience"] == "authenticated"
    assert defaulted["meta"]["audience"] == "authenticated"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("staff", "audience"),
        (["staff"], "audience"),
        ({"roles": ["x"]}, "audience"),
        ({"users": [True]}, "audience.users"),
        ({"groups": [3]}, "audience.groups"),
        ({"permissions": [""]}, "audience.permissions"),
        ({"users": list(range(1001))}, "audience.users"),
    ],
)
def test_malformed_audiences_are_refused_naming_where(value, where):
    """A malformed audience raises AudienceError naming the key at fault."""
    with pytest.raises(AudienceError) as caught:
        wire_audience(value)
    assert caught.value.where == where


def test_malformed_projections_are_refused():
    """Projections must be (audience, fields) pairs, at most 16, fields a list or None."""
    for value, where in [
        ("public", "projections"),
        ([("public",)], "projections[0]"),
        ([("public", "title")], "projections[0].fields"),
        ([("public", None)] * 17, "projections"),
        ([{"audience": "public", "fields": None, "x": 1}], "projections[0]"),
    ]:
        with pytest.raises(AudienceError) as caught:
            wire_projections(value)
        assert caught.value.where == where, value


@pytest.mark.django_db(transaction=True)
def test_a_malformed_audience_does_not_break_the_save(isolated_registry, telegraphy_outbox, caplog):
    """With fire-and-forget (the default), a bad get_audience is logged and the save succeeds."""

    class OrderEvent(BaseEventModel):
        model = Order

        def get_audience(self, instance):
            return "staff"

    with caplog.at_level(logging.ERROR):
        Order.objects.create(title="Desk")
    assert telegraphy_outbox == []
    assert "unknown audience 'staff'" in caplog.text


def test_checks_report_malformed_and_double_declarations(isolated_registry):
    """E006 for a malformed declaration, E007 for two declarations of one audience."""

    class OrderEvent(BaseEventModel):
        model = Order
        audience = {"groupz": ["staff"]}
        projections = [("everyone", None)]

    messages = [m for m in run_checks(tags=["telegraphy"]) if m.obj is OrderEvent]
    assert sorted(m.id for m in messages) == ["telegraphy.E006", "telegraphy.E006"]
    assert "groupz" in messages[0].msg

    OrderEvent.audience = "authenticated"
    OrderEvent.projections = None
    OrderEvent.permission = "testapp.view_order"
    (message,) = [m for m in run_checks(tags=["telegraphy"]) if m.obj is OrderEvent]
    assert message.id == "telegraphy.E007"
    assert "audience and permission" in message.msg


def test_checks_refuse_is_authorized_user_beside_an_audience(isolated_registry):
    """Overriding is_authorized_user and setting audience is E007."""

    class OrderEvent(BaseEventModel):
        model = Order
        audience = "authenticated"

        def is_authorized_user(self, user):
            return True

    (message,) = [m for m in run_checks(tags=["telegraphy"]) if m.obj is OrderEvent]
    assert message.id == "telegraphy.E007" and "is_authorized_user()" in message.msg


def test_checks_report_malformed_settings(settings):
    """E008 names the malformed setting."""
    settings.TELEGRAPHY_DEFAULT_AUDIENCE = "everyone"
    settings.TELEGRAPHY_CHANNELS = [{"topic": "chat.", "match": "glob"}]
    settings.TELEGRAPHY_TOKEN_PERMISSIONS = "shop.view_order"
    settings.TELEGRAPHY_TOKEN_MAX_PERMS = -1
    messages = [m.msg for m in run_checks(tags=["telegraphy"]) if m.id == "telegraphy.E008"]
    assert len(messages) == 4
    for name in ("DEFAULT_AUDIENCE", "CHANNELS", "TOKEN_PERMISSIONS", "TOKEN_MAX_PERMS"):
        assert any(f"TELEGRAPHY_{name}" in message for message in messages), name
