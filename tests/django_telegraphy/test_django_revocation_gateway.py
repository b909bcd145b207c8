"""Against a real gateway: a user's session stops getting staff events when they leave the group, and ends at logout."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from gateway_helpers import wait_for
from django.contrib.auth.models import Group, User
from django.test import Client
from tornado.websocket import websocket_connect

from telegraphy.contrib.django_telegraphy import connect_token_for, send_event
from telegraphy.contrib.django_telegraphy.events import BaseEventModel
from telegraphy_testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

REALM = "telegraphy"
#: Seconds to wait for any one thing.
STEP = 5.0


class Browser:
    """A WAMP (wamp.2.json) session on its own event loop thread, driven from the test's (Django's) thread."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.closed_at: float | None = None
        self.subscriptions: dict[int, str] = {}
        self._call(self._join(ws_url, token))

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(STEP)

    async def _join(self, ws_url: str, token: str) -> None:
        self.conn = await websocket_connect(ws_url, subprotocols=["wamp.2.json"])
        await self.conn.write_message(json.dumps([1, REALM, {"roles": {"subscriber": {}}, "authmethods": ["ticket"]}]))
        challenge = json.loads(await self.conn.read_message())
        assert challenge[0] == 4, challenge
        await self.conn.write_message(json.dumps([5, token, {}]))
        welcome = json.loads(await self.conn.read_message())
        assert welcome[0] == 2, welcome

    def subscribe(self, *topics: str) -> None:
        async def run() -> None:
            for request, topic in enumerate(topics, 1):
                await self.conn.write_message(json.dumps([32, request, {}, topic]))
                answer = json.loads(await self.conn.read_message())
                assert answer[0] == 33, answer
                self.subscriptions[answer[2]] = topic
            self.loop.create_task(self._read())

        self._call(run())

    async def _read(self) -> None:
        while True:
            text = await self.conn.read_message()
            if text is None:
                self.closed_at = time.monotonic()
                return
            message = json.loads(text)
            if message[0] == 36:  # EVENT
                self.events.append((time.monotonic(), message[4][0] if len(message) > 4 else {}))
            elif message[0] in (3, 6):  # ABORT, GOODBYE: the router ended the session
                self.closed_at = time.monotonic()

    def names(self) -> list[str]:
        return [event.get("name", "") for _, event in self.events]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.conn.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STEP)


def test_leaving_the_group_and_logging_out_take_effect_on_the_live_session(
    gateway_process, publish_to, isolated_registry
):
    """Staff events stop right after the user leaves the group; logout ends the session; delays are printed, not asserted."""

    class OrderEvent(BaseEventModel):
        model = Order
        audience = {"groups": ["staff"]}

    gateway = gateway_process()
    publish_to(gateway)
    staff = Group.objects.create(name="staff")
    ann = User.objects.create(username="ann")
    ann.groups.add(staff)
    browser = Browser(gateway.ws_url, connect_token_for(User.objects.get(pk=ann.pk)))
    try:
        browser.subscribe("testapp.Order", "marks")
        Order.objects.create(title="first")
        wait_for(lambda: "testapp.Order" in browser.names(), STEP, 0.01, "not within 5 s: the staff event")

        revoked_at = time.monotonic()
        ann.groups.remove(staff)  # -> POST /revoke with ann's new grants, after commit
        Order.objects.create(title="second")
        send_event("marks", {"n": 1}, audience="public")
        wait_for(lambda: "marks" in browser.names(), STEP, 0.01, "not within 5 s: the public marker after the revocation")
        assert browser.names() == ["testapp.Order", "marks"], browser.names()
        grants_delay = browser.events[-1][0] - revoked_at

        client = Client()
        client.force_login(ann)
        logout_at = time.monotonic()
        client.logout()  # -> POST /revoke logout
        wait_for(lambda: browser.closed_at is not None, STEP, 0.01, "not within 5 s: the session to end after logout")
        logout_delay = browser.closed_at - logout_at
        print(
            f"revocation delays: grants {grants_delay * 1000:.1f} ms (incl. a publish), logout {logout_delay * 1000:.1f} ms"
        )
    finally:
        browser.close()
