"""The try-it page in a real headless browser: search, build a history, see the top-K.

Needs Debian's chromium (`apt-get install chromium`) and the `playwright` Python
package (never `playwright install`: it downloads a browser). Skips, saying which is
missing, when either is absent.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from recalign.serving.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)


@pytest.fixture
def server_url(rec):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    """A page of a headless chromium, closed after the test."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def test_page_builds_a_history_and_shows_recommendations(server_url, page):
    page.goto(server_url + "/")
    sync_api.expect(page.locator("#model")).to_contain_text("pop")

    page.fill("#search", "nail polish")
    hit = page.locator("#search-results li", has_text="Green Nail Polish")
    hit.click()
    page.fill("#search", "lipstick")
    page.locator("#search-results li", has_text="Red Velvet Lipstick").click()
    sync_api.expect(page.locator("#history li")).to_have_count(2)

    page.fill("#k", "3")
    page.click("#recommend")
    results = page.locator("#results li")
    sync_api.expect(results).to_have_count(3)
    # popularity without the history items 3 and 1: items 2, 4, 5
    texts = results.all_inner_texts()
    assert texts[0].startswith("Blue Waterproof Mascara") and "2.0000" in texts[0]
    assert texts[1].startswith("Yellow Citrus Shampoo")
    assert texts[2].startswith("Purple Liquid Eyeliner")
    assert page.locator("#error").inner_text() == ""

    # a k beyond the server's limit: the page shows the API's message
    page.fill("#k", "1000")
    page.click("#recommend")
    sync_api.expect(page.locator("#error")).to_contain_text("k")


def test_api_docs_render_offline(server_url, page):
    """Swagger UI comes from the local bundle: it renders with no network at all."""
    outside = []
    page.on("request", lambda r: None if r.url.startswith(server_url) else outside.append(r.url))
    page.goto(server_url + "/docs")
    sync_api.expect(page.locator(".opblock-summary-path", has_text="/recommend")).to_be_visible()
    assert outside == []
