"""The demo's change tracker in Chromium."""

from __future__ import annotations

import uuid

import pytest
from browser_helpers import EVENT_TIMEOUT_MS, expect, wait_connected

pytestmark = pytest.mark.browser


def test_tracker_logs_changes_in_order(demo, page):
    """The tracker page logs an item's create, update and delete events in the order they happened."""
    page.goto(demo.url + "/tracker/")
    wait_connected(page)
    expect(page.locator("#tracker-empty")).to_be_visible()
    title = f"Tracked {uuid.uuid4().hex[:8]}"

    # Three commits in quick succession: three publishes, back to back.
    pk = int(
        demo.orm(
            f"item = MyModel.objects.create(title={title!r}, count=1)\n"
            "item.count = 2\n"
            "item.save()\n"
            "pk = item.pk\n"
            "item.delete()\n"
            "print(pk)"
        )
    )
    entries = page.locator(f"#tracker-entries tr[data-pk='{pk}']")
    expect(entries).to_have_count(3, timeout=EVENT_TIMEOUT_MS)
    expect(page.locator("#tracker-empty")).to_be_hidden()

    # Newest first on the page: read bottom-up for the order of arrival.
    logged = [
        (row.get_attribute("data-event-type"), [cell.text_content() for cell in row.locator("td").all()][1:])
        for row in reversed(entries.all())
    ]
    assert logged == [
        ("create", ["create", str(pk), title, "1"]),
        ("update", ["update", str(pk), title, "2"]),
        ("delete", ["delete", str(pk), title, "2"]),
    ]
