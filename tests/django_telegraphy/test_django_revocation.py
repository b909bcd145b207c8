"""Live revocation: logouts, deactivations and grant changes reach the gateway after commit."""

from __future__ import annotations

import http.server
import json
import logging
import socketserver
import threading

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.test import Client

from telegraphy.contrib.django_telegraphy import end_sessions, refresh_grants
from telegraphy.contrib.django_telegraphy.events import BaseEventModel
from telegraphy.publisher import GatewayUnavailable, Publisher, PublishRejected
from telegraphy.tokens import MANAGE_AUDIENCE, verify_manage_token
from telegraphy_testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "django-telegraphy-tests-secret-0123456789"


def perm(codename):
    return Permission.objects.get(content_type__app_label="testapp", codename=codename)


def revoked(outbox):
    """Return (user, logout, grants) of each captured revocation."""
    return [(r["user"], r["logout"], r["grants"]) for r in outbox.revocations]


@pytest.fixture
def ann():
    return User.objects.create(username="ann")


@pytest.fixture
def order_perms(isolated_registry):
    """Make testapp.view_order a permission that matters (an event class's audience names it)."""

    class OrderEvent(BaseEventModel):
        model = Order
        permission = "testapp.view_order"


def test_logout_ends_the_users_sessions(ann, telegraphy_outbox):
    """user_logged_out sends logout for the user."""
    client = Client()
    client.force_login(ann)
    telegraphy_outbox.clear()
    client.logout()
    assert revoked(telegraphy_outbox) == [(str(ann.pk), True, None)]


def test_logout_revocation_can_be_turned_off(ann, settings, telegraphy_outbox):
    """TELEGRAPHY_REVOKE_ON_LOGOUT = False leaves the sessions alone at logout."""
    settings.TELEGRAPHY_REVOKE_ON_LOGOUT = False
    client = Client()
    client.force_login(ann)
    client.logout()
    assert telegraphy_outbox.revocations == []


def test_login_sends_nothing(ann, telegraphy_outbox):
    """A login (which saves last_login with update_fields) sends no revocation."""
    Client().force_login(ann)
    assert telegraphy_outbox.revocations == []


def test_deactivated_user_is_logged_out(ann, telegraphy_outbox):
    """A user saved with is_active=False gets their sessions ended."""
    ann.is_active = False
    ann.save()
    assert revoked(telegraphy_outbox) == [(str(ann.pk), True, None)]


def test_deleted_user_is_logged_out(ann, telegraphy_outbox):
    """Deleting a user ends their sessions."""
    pk = ann.pk
    ann.delete()
    assert (str(pk), True, None) in revoked(telegraphy_outbox)


def test_saving_a_user_pushes_their_grants(ann, telegraphy_outbox):
    """Another save of an active user (e.g. is_superuser changed) sends their recomputed grants."""
    ann.is_superuser = True
    ann.save()
    assert revoked(telegraphy_outbox) == [(str(ann.pk), False, {"groups": [], "perms": [], "superuser": True})]


def test_creating_a_user_sends_nothing(telegraphy_outbox):
    """A new user has no sessions to revoke."""
    User.objects.create(username="new")
    assert telegraphy_outbox.revocations == []


def test_group_added_and_removed_on_the_user_side(ann, telegraphy_outbox):
    """user.groups.add/remove/clear send the user's new groups."""
    staff = Group.objects.create(name="staff")
    ann.groups.add(staff)
    ann.groups.remove(staff)
    ann.groups.add(staff)
    ann.groups.clear()
    assert [grants["groups"] for _, _, grants in revoked(telegraphy_outbox)] == [["staff"], [], ["staff"], []]


def test_group_members_changed_on_the_group_side(telegraphy_outbox):
    """group.user_set.add/remove/clear refresh each user concerned, clear included."""
    ann, bob = User.objects.create(username="ann"), User.objects.create(username="bob")
    staff = Group.objects.create(name="staff")
    staff.user_set.add(ann, bob)
    assert sorted(user for user, _, _ in revoked(telegraphy_outbox)) == sorted([str(ann.pk), str(bob.pk)])
    telegraphy_outbox.clear()
    staff.user_set.clear()
    assert sorted((user, grants["groups"]) for user, _, grants in revoked(telegraphy_outbox)) == sorted(
        [(str(ann.pk), []), (str(bob.pk), [])]
    )


def test_user_permissions_changed(ann, order_perms, telegraphy_outbox):
    """user.user_permissions and permission.user_set changes send the recomputed perms."""
    view = perm("view_order")
    ann.user_permissions.add(view)
    view.user_set.remove(ann)
    assert [grants["perms"] for _, _, grants in revoked(telegraphy_outbox)] == [["testapp.view_order"], []]


def test_group_permissions_reach_every_member(order_perms, telegraphy_outbox):
    """group.permissions changes refresh every member; permission.group_set too, clear included."""
    ann, bob = User.objects.create(username="ann"), User.objects.create(username="bob")
    staff = Group.objects.create(name="staff")
    staff.user_set.add(ann, bob)
    telegraphy_outbox.clear()
    staff.permissions.add(perm("view_order"))
    assert sorted((user, grants["perms"]) for user, _, grants in revoked(telegraphy_outbox)) == sorted(
        [(str(ann.pk), ["testapp.view_order"]), (str(bob.pk), ["testapp.view_order"])]
    )
    telegraphy_outbox.clear()
    perm("view_order").group_set.clear()
    assert sorted((user, grants["perms"]) for user, _, grants in revoked(telegraphy_outbox)) == sorted(
        [(str(ann.pk), []), (str(bob.pk), [])]
    )


def test_group_changes_are_bounded(settings, telegraphy_outbox, caplog):
    """At most TELEGRAPHY_REVOKE_MAX_USERS users are refreshed for one group change; the rest is logged."""
    settings.TELEGRAPHY_REVOKE_MAX_USERS = 2
    users = [User.objects.create(username=f"u{n}") for n in range(3)]
    staff = Group.objects.create(name="staff")
    with transaction.atomic():
        for user in users:
            user.groups.add(staff)
    telegraphy_outbox.clear()
    with caplog.at_level(logging.ERROR):
        staff.permissions.add(perm("view_order"))
    assert [user for user, _, _ in revoked(telegraphy_outbox)] == [str(users[0].pk), str(users[1].pk)]
    assert "TELEGRAPHY_REVOKE_MAX_USERS" in caplog.text


def test_one_revocation_per_user_per_transaction_with_the_final_grants(ann, order_perms, telegraphy_outbox):
    """Inside atomic(), nothing is sent before commit; then one request per user, with the committed grants."""
    staff, ops = Group.objects.create(name="staff"), Group.objects.create(name="ops")
    with transaction.atomic():
        ann.is_superuser = False
        ann.save()
        ann.groups.set([staff, ops])
        ann.user_permissions.add(perm("view_order"))
        assert telegraphy_outbox.revocations == []
    assert revoked(telegraphy_outbox) == [
        (str(ann.pk), False, {"groups": ["ops", "staff"], "perms": ["testapp.view_order"], "superuser": False})
    ]


def test_a_deactivation_in_the_transaction_wins(ann, telegraphy_outbox):
    """Grant changes and a deactivation of the same user in one transaction send one logout."""
    with transaction.atomic():
        ann.groups.add(Group.objects.create(name="staff"))
        ann.is_active = False
        ann.save()
    assert revoked(telegraphy_outbox) == [(str(ann.pk), True, None)]


def test_rolled_back_changes_send_nothing(ann, telegraphy_outbox):
    """A rolled back transaction sends no revocation."""
    with pytest.raises(RuntimeError), transaction.atomic():
        ann.groups.add(Group.objects.create(name="staff"))
        ann.is_active = False
        ann.save()
        raise RuntimeError
    assert telegraphy_outbox.revocations == []


def test_revocation_setting_turns_it_off(ann, settings, telegraphy_outbox):
    """TELEGRAPHY_REVOCATION = False sends no revocation."""
    settings.TELEGRAPHY_REVOCATION = False
    ann.groups.add(Group.objects.create(name="staff"))
    ann.is_active = False
    ann.save()
    assert telegraphy_outbox.revocations == []


def test_helpers_refresh_grants_and_end_sessions(ann, telegraphy_outbox):
    """refresh_grants and end_sessions take a user or a pk."""
    refresh_grants(ann)
    end_sessions(ann.pk)
    refresh_grants(123456)  # no such user: their sessions are ended
    assert revoked(telegraphy_outbox) == [
        (str(ann.pk), False, {"groups": [], "perms": [], "superuser": False}),
        (str(ann.pk), True, None),
        ("123456", True, None),
    ]


def test_nothing_is_sent_when_disabled_and_not_captured(ann, settings, monkeypatch):
    """With TELEGRAPHY_ENABLED = False (and no capture), revocations reach no publisher."""
    settings.TELEGRAPHY_ENABLED = False
    monkeypatch.setattr(Publisher, "revoke", lambda *a, **k: pytest.fail("revoke called"))
    ann.is_active = False
    ann.save()


def test_the_publisher_gets_the_calls(ann, settings, monkeypatch):
    """Without capture, each revocation is one Publisher.revoke call with the right arguments."""
    settings.TELEGRAPHY_ENABLED = True
    calls = []
    monkeypatch.setattr(Publisher, "revoke", lambda self, user, **kw: calls.append((user, kw)) or {})
    ann.groups.add(Group.objects.create(name="staff"))
    Client().force_login(ann)
    Client().logout()  # a client without a session: no user, nothing sent
    client = Client()
    client.force_login(ann)
    client.logout()
    assert calls == [
        (str(ann.pk), {"logout": False, "grants": {"groups": ["staff"], "perms": [], "superuser": False}}),
        (str(ann.pk), {"logout": True, "grants": None}),
    ]


def test_a_failing_gateway_stops_the_flush_and_is_logged(settings, closed_port_url, caplog):
    """With the gateway down, the first failure is logged and the rest of the transaction's revocations dropped."""
    settings.TELEGRAPHY_ENABLED = True
    settings.TELEGRAPHY_GATEWAY_URL = closed_port_url
    users = [User.objects.create(username=f"u{n}") for n in range(3)]
    with caplog.at_level(logging.ERROR), transaction.atomic():
        for user in users:
            end_sessions(user)
    assert "could not revoke the sessions of user" in caplog.text
    assert "gave up telling the gateway about 2 more user(s)" in caplog.text


# -- Publisher.revoke, against a scripted stand-in for the gateway -----------------------------------


class FakeRevoke:
    """A threaded HTTP server answering each POST with the next scripted (status, body), then 200."""

    def __init__(self):
        self.script = []
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, answer = outer.script.pop(0) if outer.script else (200, {"sessions": 1})
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake():
    gateway = FakeRevoke()
    thread = threading.Thread(target=gateway.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield gateway
    gateway.server.shutdown()
    gateway.server.server_close()
    thread.join(5)


@pytest.mark.django_db(transaction=False)
def test_publisher_revoke_request_shape(fake):
    """revoke() POSTs {user, logout, grants} to <url>/revoke with a manage token and returns the answer."""
    with Publisher(fake.url + "/rt", SECRET) as publisher:
        grants = {"groups": ["staff"], "perms": [], "superuser": False}
        assert publisher.revoke(7, grants=grants) == {"sessions": 1}
        publisher.revoke("7", logout=True)
    first, second = fake.requests
    assert first["path"] == "/rt/revoke"
    token = first["headers"]["Authorization"].removeprefix("Bearer ")
    assert verify_manage_token(token, SECRET)["aud"] == MANAGE_AUDIENCE
    assert first["body"] == {"user": "7", "logout": False, "grants": grants}
    assert second["body"] == {"user": "7", "logout": True, "grants": None}


@pytest.mark.django_db(transaction=False)
def test_publisher_revoke_retries_and_refusals(fake, caplog):
    """A 5xx is retried; a 4xx raises PublishRejected (action "revoke"); fire-and-forget logs and returns None."""
    fake.script = [(503, {"error": "unavailable"})]
    with Publisher(fake.url, SECRET, retries=1, backoff=0.001) as publisher:
        assert publisher.revoke(1, logout=True) == {"sessions": 1}
        assert len(fake.requests) == 2
        fake.script = [(401, {"error": "invalid_token", "detail": "token expired"})]
        with pytest.raises(PublishRejected) as caught:
            publisher.revoke(1, logout=True)
        assert caught.value.action == "revoke" and "rejected the revoke with 401" in str(caught.value)
        fake.script = [(503, {}), (503, {})]
        with pytest.raises(GatewayUnavailable):
            publisher.revoke(1, logout=True)
        with pytest.raises(ValueError):
            publisher.revoke("", logout=True)
        with pytest.raises(ValueError, match="nothing to revoke"):
            publisher.revoke(1)
    fake.script = [(400, {"error": "invalid_revocation"})]
    with Publisher(fake.url, SECRET, fire_and_forget=True) as publisher, caplog.at_level(logging.ERROR):
        assert publisher.revoke(1, logout=True) is None
    assert "could not revoke the sessions of user 1" in caplog.text
