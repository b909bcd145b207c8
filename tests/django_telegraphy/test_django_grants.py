"""Connect tokens carry the user's grants: groups, the permissions that matter, superuser."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.template import Context, Template
from django.test import RequestFactory

from telegraphy.contrib.django_telegraphy import connect_token_for
from telegraphy.contrib.django_telegraphy.events import BaseEventModel
from telegraphy.contrib.django_telegraphy.grants import grants_for, relevant_permissions
from telegraphy.tokens import verify_connect_token
from telegraphy.wamp.audience import Visibility, grants_of
from telegraphy.wamp.auth import Identity
from telegraphy_testapp.models import Order

pytestmark = pytest.mark.django_db

SECRET = "django-telegraphy-tests-secret-0123456789"


def perm(codename, app_label="testapp"):
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def claims_of(user, **kwargs):
    return verify_connect_token(connect_token_for(user, **kwargs), SECRET)


@pytest.fixture
def order_event(isolated_registry):
    """An Order event class whose audience names testapp.view_order, and staff in a projection."""

    class OrderEvent(BaseEventModel):
        model = Order
        permission = "testapp.view_order"
        projections = [({"permissions": ["testapp.change_order"]}, None), ("authenticated", ["status"])]

    return OrderEvent


def test_anonymous_and_missing_users_get_no_token():
    """No user, an anonymous user and an inactive user get no token."""
    assert connect_token_for(None) is None
    assert connect_token_for(AnonymousUser()) is None
    assert connect_token_for(User.objects.create(username="gone", is_active=False)) is None


def test_claims_of_a_plain_user():
    """sub is the pk; groups, perms and superuser are always there."""
    user = User.objects.create(username="ann")
    claims = claims_of(user)
    assert claims["sub"] == str(user.pk)
    assert (claims["groups"], claims["perms"], claims["superuser"]) == ([], [], False)


def test_groups_are_the_group_names():
    """groups lists every group's name, sorted."""
    user = User.objects.create(username="ann")
    user.groups.add(Group.objects.create(name="staff"), Group.objects.create(name="editors"))
    assert claims_of(user)["groups"] == ["editors", "staff"]


def test_perms_are_only_those_audiences_name(order_event):
    """Of the user's permissions, only those named by audiences and projections go in the token."""
    user = User.objects.create(username="ann")
    user.user_permissions.add(perm("view_order"), perm("delete_order"), perm("add_article"))
    group = Group.objects.create(name="managers")
    group.permissions.add(perm("change_order"))
    user.groups.add(group)
    user = User.objects.get(pk=user.pk)  # a fresh permission cache
    assert relevant_permissions() >= {"testapp.view_order", "testapp.change_order"}
    assert claims_of(user)["perms"] == ["testapp.change_order", "testapp.view_order"]


def test_token_permissions_setting_and_channels_add_relevant_permissions(settings):
    """TELEGRAPHY_TOKEN_PERMISSIONS and the permissions of TELEGRAPHY_CHANNELS matter too."""
    settings.TELEGRAPHY_TOKEN_PERMISSIONS = ["testapp.add_article"]
    settings.TELEGRAPHY_CHANNELS = [
        {"topic": "news.", "match": "prefix", "subscribe": "public", "publish": {"permissions": ["testapp.add_order"]}}
    ]
    user = User.objects.create(username="ann")
    user.user_permissions.add(perm("add_article"), perm("add_order"), perm("delete_order"))
    assert claims_of(User.objects.get(pk=user.pk))["perms"] == ["testapp.add_article", "testapp.add_order"]
    settings.TELEGRAPHY_CHANNELS = '[{"topic": "x", "subscribe": {"permissions": ["testapp.delete_order"]}}]'
    assert "testapp.delete_order" in relevant_permissions()


def test_procedure_declarations_add_their_permissions(settings):
    """Procedure entries of TELEGRAPHY_CHANNELS (register and call audiences) make their permissions relevant too."""
    settings.TELEGRAPHY_CHANNELS = [
        {"topic": "chat.", "match": "prefix", "publish": "authenticated"},
        {"procedure": "app.refund", "register": {"permissions": ["testapp.add_order"]}, "call": {"permissions": ["testapp.change_order"]}},
    ]
    assert {"testapp.add_order", "testapp.change_order"} <= relevant_permissions()


def test_superuser_claim_and_no_perms_list(order_event):
    """A superuser's token says superuser and lists no permissions (superuser covers them)."""
    root = User.objects.create(username="root", is_superuser=True)
    claims = claims_of(root)
    assert claims["superuser"] is True and claims["perms"] == []


def test_perms_are_bounded_by_token_max_perms(settings, caplog):
    """At most TELEGRAPHY_TOKEN_MAX_PERMS permissions go in a token; the cut is logged."""
    codenames = ["add_order", "change_order", "delete_order", "view_order"]
    settings.TELEGRAPHY_TOKEN_PERMISSIONS = [f"testapp.{c}" for c in codenames]
    settings.TELEGRAPHY_TOKEN_MAX_PERMS = 2
    user = User.objects.create(username="ann")
    user.user_permissions.add(*(perm(c) for c in codenames))
    with caplog.at_level(logging.WARNING):
        perms = claims_of(User.objects.get(pk=user.pk))["perms"]
    assert perms == ["testapp.add_order", "testapp.change_order"]
    assert "TELEGRAPHY_TOKEN_MAX_PERMS" in caplog.text


def test_is_authorized_user_grants_the_receive_permission(isolated_registry):
    """A class overriding is_authorized_user puts its receive permission in the tokens of users it accepts."""

    class OrderEvent(BaseEventModel):
        model = Order

        def is_authorized_user(self, user):
            return user.username.startswith("a")

    ann, bob = User.objects.create(username="ann"), User.objects.create(username="bob")
    assert claims_of(ann)["perms"] == ["telegraphy:receive:testapp.Order"]
    assert claims_of(bob)["perms"] == []
    # The gateway reads the claims into grants that the event's audience admits.
    event = OrderEvent().build_event(Order(pk=1, title="t"), "update")
    visibility = Visibility.of_event(event)
    for user, seen in ((ann, True), (bob, False)):
        claims = claims_of(user)
        identity = Identity(authid=claims["sub"], authrole="user", authmethod="ticket", claims=claims)
        assert (visibility.variant(grants_of(identity)) is not None) is seen


def test_ttl_argument():
    """connect_token_for(ttl=) sets the token's lifetime."""
    claims = claims_of(User.objects.create(username="ann"), ttl=20)
    assert claims["exp"] - claims["iat"] == 20


def test_template_tag_token_carries_the_grants(order_event):
    """{% telegraphy_scripts %} mints the token with groups, perms and superuser."""
    import json
    import re

    user = User.objects.create(username="ann")
    user.groups.add(Group.objects.create(name="staff"))
    user.user_permissions.add(perm("view_order"))
    request = RequestFactory().get("/", HTTP_HOST="example.com")
    request.user = User.objects.get(pk=user.pk)
    html = Template("{% load telegraphy_tags %}{% telegraphy_scripts %}").render(Context({"request": request}))
    config = json.loads(re.search(r"TELEGRAPHY_CONFIG = (.*?);</script>", html).group(1))
    claims = verify_connect_token(config["token"], SECRET)
    assert claims["groups"] == ["staff"]
    assert claims["perms"] == ["testapp.view_order"]
    assert claims["superuser"] is False
    assert grants_for(request.user) == {"groups": ["staff"], "perms": ["testapp.view_order"], "superuser": False}
