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
        delay = float(os.environ.get("FUSION_E2E_SLOW_SCRIPTS", "0"))
        if delay > 0:
            with _slow_scripts(b, delay):
                yield b
        else:
            yield b
        b.close()


@contextmanager
def _slow_scripts(browser, delay: float) -> Iterator[None]:
    """Every script a page loads arrives ``delay`` seconds late (FUSION_E2E_SLOW_SCRIPTS=0.8):
    the page shows its form before its script has run, as on a slow network. A test that
    presses a key or clicks before waiting for the page (``settled``) then fails every time,
    not once in a hundred CI runs. The scripts go through a local proxy that sleeps, so the
    browser, not the test's thread, waits."""
    import http.server
    import threading
    import time
    import urllib.parse
    import urllib.request

    class Late(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(delay)
            url = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["u"][0]
            try:
                with urllib.request.urlopen(url) as r:  # the live server's own script
                    body, kind = r.read(), r.headers.get("Content-Type", "text/javascript")
            except OSError:  # the test ended and its live server with it
                self.send_error(502)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Late)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}/late"

    def late(route):
        route.continue_(url=f"{proxy}?{urllib.parse.urlencode({'u': route.request.url})}")

    new_context = browser.new_context

    def new_context_with_late_scripts(*args, **kwargs):
        context = new_context(*args, **kwargs)
        context.route("**/*.js", late)
        return context

    browser.new_context = new_context_with_late_scripts
    try:
        yield
    finally:
        browser.new_context = new_context
        server.shutdown()


# A page's fixture asks for the database first, so that it is closed before the database is
# flushed: a page left open (a dashboard polling progress.json) would send a request into the
# flush; CI failed once on that, in a test's teardown.
@pytest.fixture
def page(browser, transactional_db):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


@pytest.fixture
def phone_page(browser, transactional_db):
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


# A page is ready for keys once it is loaded (its scripts ran: a key pressed before tasks.js
# has its handlers goes nowhere, as for a person) and no image put in place is still loading.
_SETTLED = "document.readyState === 'complete' && !document.querySelector('img.loading')"


def settled(page) -> None:
    """Wait until the page takes keys and clicks as a person's: loaded, its images in place."""
    page.wait_for_function(f"() => {_SETTLED}")


@contextmanager
def next_task(page) -> Iterator[None]:
    """Wait, after the answer the block sends, for the next task: a new page (a task of
    another kind or layout, the completion page, an error) or, for a task answered in place by
    tasks.js, the next task's token on the same page; then until the page is settled (a new
    page's script has run; images put in place are loaded: until then the script holds an
    answer back)."""
    token = page.evaluate(_TOKEN)
    yield
    page.wait_for_function(f"t => ({_TOKEN})() !== t && {_SETTLED}", arg=token)


def answer_any(page, count: str = "1") -> None:
    """Answer the task on the page, whichever kind: ``count`` typed into a count's field, or a
    ranking in screen order (keys 1 to 4); then wait for the next task."""
    settled(page)
    if page.query_selector("#answer-form"):
        page.fill("#answer", count)
    else:
        for key in "1234":
            page.keyboard.press(key)
    with next_task(page):
        page.click("#submit")
