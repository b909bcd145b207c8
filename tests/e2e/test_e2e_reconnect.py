"""The browser client across a gateway crash: the demo page notices, reconnects by itself, and gets events again."""

from __future__ import annotations

import uuid

import pytest
from browser_helpers import EVENT_TIMEOUT_MS, expect, wait_connected

pytestmark = pytest.mark.browser

#: Milliseconds for the page to reconnect: the client's backoff ceiling doubles
#: from 0.5 s per failed attempt while the gateway is down (about a second).
RECONNECT_TIMEOUT_MS = 20_000


def test_page_reconnects_after_gateway_restart(demo, page):
    """A SIGKILLed gateway shows as disconnected; the page reconnects to its successor on the port and gets events."""
    page.goto(demo.url + "/")
    wait_connected(page)
    status = page.locator("#telegraphy-status")
    page.evaluate("window.connects = 0; Telegraphy.on('connect', () => { window.connects += 1; })")

    old_port = demo.gateway.port
    demo.kill_gateway()
    expect(status).to_have_attribute("data-state", "disconnected", timeout=EVENT_TIMEOUT_MS)
    expect(status).to_have_text("disconnected")

    new_gateway = demo.restart_gateway()
    assert new_gateway.port == old_port
    # The page only waits: no reload, no connect() call from here.
    wait_connected(page, timeout_ms=RECONNECT_TIMEOUT_MS)
    assert page.evaluate("window.connects") == 1

    # Published after the restart, through Django (whose keep-alive connection
    # to the old gateway died with it) and the new gateway.
    title = f"After restart {uuid.uuid4().hex[:8]}"
    pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}).pk)"))
    expect(page.locator(f"#item-{pk} .item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)
