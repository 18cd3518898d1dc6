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
from contextlib import contextmanager

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


@contextmanager
def serving(recommender):
    """The app over `recommender` on a free local port, in a thread; yields its URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(recommender), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server_url(rec):
    with serving(rec) as url:
        yield url


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
    sync_api.expect(page.locator("#model")).to_contain_text("Serving pop (a baseline)")
    # the page says what clicking a search result does, and what a score is
    sync_api.expect(page.locator("#search-hint")).to_have_text(
        "Click a result to add it to the history."
    )
    sync_api.expect(page.locator("#score-meaning")).to_contain_text(
        "number of interactions in the training data"
    )

    page.fill("#search", "nail polish")
    hit = page.locator("#search-results li", has_text="Green Nail Polish")
    hit.click()
    page.fill("#search", "lipstick")
    page.locator("#search-results li", has_text="Red Velvet Lipstick").click()
    sync_api.expect(page.locator("#history li")).to_have_count(2)

    page.fill("#k", "3")
    page.click("#recommend")
    rows = page.locator("#results tbody tr")
    sync_api.expect(rows).to_have_count(3)
    # popularity without the history items 3 and 1: items 2, 4, 5
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert cells[0] == ["1", "Blue Waterproof Mascara", "2"]  # a count: a whole number
    assert [c[1] for c in cells[1:]] == ["Yellow Citrus Shampoo", "Purple Liquid Eyeliner"]
    # the score has its own column: it never runs into the title
    title_box = rows.nth(0).locator("td").nth(1).bounding_box()
    score_box = rows.nth(0).locator("td").nth(2).bounding_box()
    assert score_box["x"] >= title_box["x"] + title_box["width"]
    assert page.locator("#error").inner_text() == ""


@pytest.mark.parametrize("k", ["0", "1000", "2.5", ""])
def test_a_k_out_of_range_is_refused_with_a_message(server_url, page, k):
    page.goto(server_url + "/")
    sync_api.expect(page.locator("#model")).to_contain_text("pop")
    page.fill("#search", "mascara")
    page.locator("#search-results li", has_text="Blue Waterproof Mascara").click()
    requests = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/recommend") else None)
    page.fill("#k", k)
    page.click("#recommend")
    sync_api.expect(page.locator("#error")).to_contain_text(
        "k must be a whole number from 1 to 100"
    )
    assert requests == []  # refused on the page, never silently replaced by 10
    sync_api.expect(page.locator("#results tbody tr")).to_have_count(0)


def test_the_page_names_the_model_of_a_pipeline_run_and_the_others(tmp_path, page):
    pytest.importorskip("recalign.baselines.run")
    from recalign.serving import Recommender
    from tests.serving.conftest import make_pipeline_dir

    run = make_pipeline_dir(tmp_path / "run", baselines=("pop", "sasrec"))
    with serving(Recommender.load(run, model="sasrec")) as url:
        page.goto(url + "/")
        model = page.locator("#model")
        sync_api.expect(model).to_contain_text("Serving sasrec (a baseline, --model sasrec)")
        sync_api.expect(model).to_contain_text("This run also has: pop")
        sync_api.expect(page.locator("#score-meaning")).to_contain_text("sasrec model's score")


def test_api_docs_render_offline(server_url, page):
    """Swagger UI comes from the local bundle: it renders with no network at all."""
    outside = []
    page.on("request", lambda r: None if r.url.startswith(server_url) else outside.append(r.url))
    page.goto(server_url + "/docs")
    sync_api.expect(page.locator(".opblock-summary-path", has_text="/recommend")).to_be_visible()
    assert outside == []
