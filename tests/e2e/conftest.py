"""Browser tests: Playwright (Python) driving Debian's Chromium against pytest-django's live_server.

Playwright's sync API runs an event loop in this thread; Django then refuses ORM calls
from it unless told that the caller knows what it is doing. The tests only read rows
between browser steps, never concurrently with a request on the same connection.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


@pytest.fixture
def phone_page(browser):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Rate-limit counters live in the cache, and every browser here comes from 127.0.0.1:
    each test starts with none spent, or the tests before it use up the address's joins
    and consents (tests/e2e/test_ratelimits.py sets its own). The answer rate is raised, as
    in tests/webapp: a script answers faster than the 5 a second a person never reaches
    (test_in_place.py sets it back to see an answer over it)."""
    from django.core.cache import cache

    settings.FUSION_RATE_ANSWER = "1000/s"

    cache.clear()
    yield
    cache.clear()


_TOKEN = "() => { const t = document.querySelector('form input[name=token]'); return t ? t.value : null; }"


@contextmanager
def next_task(page) -> Iterator[None]:
    """Wait, after the answer the block sends, for the next task: a new page (a task of
    another kind or layout, the completion page, an error) or, for a task answered in place by
    tasks.js, the next task's token on the same page, and its images loaded (until then the
    script holds an answer back)."""
    token = page.evaluate(_TOKEN)
    yield
    page.wait_for_function(f"t => ({_TOKEN})() !== t", arg=token)
    page.wait_for_function("() => !document.querySelector('img.loading')")


def answer_any(page, count: str = "1") -> None:
    """Answer the task on the page, whichever kind: ``count`` typed into a count's field, or a
    ranking in screen order (keys 1 to 4); then wait for the next task."""
    if page.query_selector("#answer-form"):
        page.fill("#answer", count)
    else:
        for key in "1234":
            page.keyboard.press(key)
    with next_task(page):
        page.click("#submit")
