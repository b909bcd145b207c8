"""The demo's item list in Chromium, changed through the ORM, the admin and the page's own forms."""

from __future__ import annotations

import uuid

import pytest
from browser_helpers import EVENT_TIMEOUT_MS, TOPIC, expect, wait_connected, wait_subscribed

pytestmark = pytest.mark.browser


def unique(prefix: str) -> str:
    """Return a title no other test uses (the database is shared by the session)."""
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def test_orm_changes_show_on_the_page(demo, page):
    """Creating, updating and deleting a MyModel through the ORM adds, changes and removes its row live."""
    page.goto(demo.url + "/")
    expect(page.locator("#telegraphy-status")).to_have_text("connected", timeout=EVENT_TIMEOUT_MS)
    wait_subscribed(page)
    title = unique("Telegraph")

    pk = int(demo.orm(f"print(MyModel.objects.create(title={title!r}, description='by the ORM', count=1).pk)"))
    row = page.locator(f"#item-{pk}")
    expect(row.locator(".item-title")).to_have_text(title, timeout=EVENT_TIMEOUT_MS)
    expect(row.locator(".item-description")).to_have_text("by the ORM")
    expect(row.locator(".item-count")).to_have_text("1")

    demo.orm(f"item = MyModel.objects.get(pk={pk})\nitem.title = {title + ' v2'!r}\nitem.count = 2\nitem.save()")
    expect(row.locator(".item-title")).to_have_text(title + " v2", timeout=EVENT_TIMEOUT_MS)
    expect(row.locator(".item-count")).to_have_text("2")

    demo.orm(f"MyModel.objects.get(pk={pk}).delete()")
    expect(row).to_have_count(0, timeout=EVENT_TIMEOUT_MS)


def test_admin_changes_show_on_the_page(demo, browser, page):
    """Adding, changing and deleting a MyModel in the Django admin (another browser) shows on the list page."""
    page.goto(demo.url + "/")
    wait_connected(page)
    title = unique("Semaphore")

    admin_context = browser.new_context()
    try:
        admin = admin_context.new_page()
        admin.goto(demo.url + "/admin/login/?next=/admin/")
        admin.fill("#id_username", "admin")
        admin.fill("#id_password", "admin")
        admin.click("input[type=submit]")
        expect(admin.locator("#user-tools")).to_contain_text("admin", timeout=EVENT_TIMEOUT_MS)

        admin.goto(demo.url + "/admin/demo/mymodel/add/")
        admin.fill("#id_title", title)
        admin.fill("#id_description", "from the admin")
        admin.fill("#id_count", "5")
        admin.click("input[name=_save]")
        row = page.locator("#items li.item", has=page.locator(".item-title", has_text=title))
        expect(row).to_have_count(1, timeout=EVENT_TIMEOUT_MS)
        expect(row.locator(".item-description")).to_have_text("from the admin")
        expect(row.locator(".item-count")).to_have_text("5")
        pk = row.get_attribute("data-pk")

        admin.goto(f"{demo.url}/admin/demo/mymodel/{pk}/change/")
        admin.fill("#id_title", title + " changed")
        admin.fill("#id_count", "6")
        admin.click("input[name=_save]")
        changed = page.locator(f"#item-{pk}")
        expect(changed.locator(".item-title")).to_have_text(title + " changed", timeout=EVENT_TIMEOUT_MS)
        expect(changed.locator(".item-count")).to_have_text("6")

        admin.goto(f"{demo.url}/admin/demo/mymodel/{pk}/delete/")
        admin.click("form input[type=submit]")
        expect(changed).to_have_count(0, timeout=EVENT_TIMEOUT_MS)
    finally:
        admin_context.close()


def test_unregister_stops_delivery_to_the_list(demo, page):
    """After Telegraphy.unregister('demo.MyModel') the list ignores events a control subscription still gets."""
    page.goto(demo.url + "/")
    wait_connected(page)
    first = unique("Pigeon")
    page.fill("#create-title", first)
    page.click("#create-submit")
    created = page.locator("#items li.item", has=page.locator(".item-title", has_text=first))
    expect(created).to_have_count(1, timeout=EVENT_TIMEOUT_MS)
    first_row = page.locator(f"#item-{created.get_attribute('data-pk')}")
    items_before = page.locator("#items li.item").count()

    # A control subscription on the same topic, made after unregister() (which
    # cancels every handler of the topic, subscribe() chains included): the
    # events keep reaching the page, only the list's handler is gone.
    page.evaluate(
        """(topic) => {
          Telegraphy.unregister(topic);
          window.controlEvents = [];
          Telegraphy.subscribe(topic).onAny((event) => window.controlEvents.push(event));
        }""",
        TOPIC,
    )
    wait_subscribed(page, TOPIC)

    second = unique("Heliograph")
    page.fill("#create-title", second)
    page.click("#create-submit")
    first_row.locator(".edit-title").fill(first + " renamed")
    first_row.locator(".item-save").click()

    # Bounded wait: until the control subscription got both events (or the deadline).
    page.wait_for_function(
        """([created, renamed]) => {
          const seen = window.controlEvents.map((e) => e.meta.event_type + ':' + e.data.title);
          return seen.includes('create:' + created) && seen.includes('update:' + renamed);
        }""",
        arg=[second, first + " renamed"],
        timeout=EVENT_TIMEOUT_MS,
    )
    # The list's handler would have run in the same dispatch as the control's: nothing changed.
    expect(page.locator("#items li.item")).to_have_count(items_before)
    expect(page.locator("#items li.item", has=page.locator(".item-title", has_text=second))).to_have_count(0)
    expect(first_row.locator(".item-title")).to_have_text(first)
