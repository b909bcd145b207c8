"""Fixtures of the end-to-end tests: a real gateway, the demo served by Django, headless Chromium.

``demo``
    The demo project served by ``manage.py runserver --noreload`` on a free
    port, publishing to a real gateway process, with a fresh SQLite database
    (migrated, with the ``admin``/``admin`` superuser of ``createdemo``).
    Started once per session; each test gets it with a live gateway (one a
    test killed is started again on the same port)::

        def test_list(demo, page):
            page.goto(demo.url + "/")
            pk = demo.orm("print(MyModel.objects.create(title='x').pk)")

``browser``, ``context``, ``page``
    Headless Chromium (``/usr/bin/chromium``, driven by Playwright's sync
    API; never a downloaded browser), launched once per test module, and a
    fresh context and page per test.
    Without Chromium or Playwright the tests are skipped, or fail when
    ``TELEGRAPHY_REQUIRE_BROWSER=1`` (as in CI).

A failed test's report gets the last lines of the Django and gateway logs
and the page's console messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, DemoSite


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("TELEGRAPHY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and TELEGRAPHY_REQUIRE_BROWSER=1 requires the browser tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (or fail, with TELEGRAPHY_REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _browser_unavailable("Playwright for Python is not installed (pip install playwright)")


# Module scope, not session: while Playwright's sync API runs, the main thread's
# asyncio loop counts as running, and asyncio.run() in the test modules that
# follow would fail.
@pytest.fixture(scope="module")
def browser(browser_available: None) -> Iterator[Any]:
    """Headless Chromium from /usr/bin/chromium, shared by one test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) for one test."""
    ctx = browser.new_context()
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest) -> Any:
    """A page of ``context`` whose console messages go to a failed test's report."""
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    request.node.telegraphy_console = console
    return tab


@pytest.fixture(scope="session")
def demo_site(browser_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """The demo and its gateway, started once for the session (unless the browser tests skip)."""
    site = DemoSite(tmp_path_factory.mktemp("e2e-demo"))
    try:
        site.start_django()
        yield site
    finally:
        site.stop()


@pytest.fixture
def demo(demo_site: DemoSite, request: pytest.FixtureRequest) -> DemoSite:
    """The session's demo, with a live gateway and a live Django, for one test."""
    assert demo_site.proc is not None and demo_site.proc.poll() is None, f"runserver died\n{demo_site.log()}"
    if not demo_site.gateway.alive():
        demo_site.restart_gateway()  # an earlier test killed it and failed before restarting it
    request.node.telegraphy_demo = demo_site
    return demo_site


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the Django and gateway logs and the page console to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    site = getattr(item, "telegraphy_demo", None)
    if site is not None:
        report.sections.append(("django log (last 60 lines)", "\n".join(site.log().splitlines()[-60:])))
        report.sections.append(("gateway log (last 60 lines)", "\n".join(site.gateway.stderr().splitlines()[-60:])))
    console = getattr(item, "telegraphy_console", None)
    if console:
        report.sections.append(("browser console", "\n".join(console[-60:])))
