"""The app in a real browser: Playwright driving Debian's headless Chromium."""

import os
import shutil

import pandas as pd
import pytest

from review_sentiment.app.ui import serve_in_background as serve

from ..conftest import toy_reviews

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def page(exported):
    # In CI (CI=true) a missing browser is a failure, not a skip: .ci/run installs it.
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    if not shutil.which("chromium"):
        missing("Debian chromium is not installed (make browser-deps)")
    process, url = serve(env={"SENTIMENT_MODEL": str(exported["int8"])})
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(accept_downloads=True)
        # Wait until the page is idle: text typed before Gradio's components are live is lost.
        page.goto(url, wait_until="networkidle")
        page.locator("#analyze").wait_for(state="visible")
        yield page
        browser.close()
    process.terminate()
    process.wait(timeout=30)


def test_type_a_review_and_read_the_label(page, tmp_path):
    from playwright.sync_api import expect

    box = page.locator("#review textarea")
    box.fill("great wonderful loved it, a brilliant film")
    expect(box).to_have_value("great wonderful loved it, a brilliant film")
    page.locator("#analyze").click()
    expect(page.locator("#label")).to_contain_text("positive", timeout=30_000)
    expect(page.locator("#note")).to_contain_text("CPUExecutionProvider")
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert (tmp_path / "review.png").stat().st_size > 10_000


def test_upload_score_and_download_a_file(page, tmp_path):
    from playwright.sync_api import expect

    source = tmp_path / "upload.csv"
    toy_reviews(12).to_csv(source, index=False)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#upload input[type=file]").set_input_files(str(source))
    expect(page.locator("#column input")).to_have_value("review", timeout=30_000)
    page.locator("#score").click()
    expect(page.locator("#summary")).to_contain_text("rows 12, scored 12", timeout=60_000)
    with page.expect_download() as download:
        page.locator("#download a").first.click()
    saved = tmp_path / "scored.csv"
    download.value.save_as(saved)
    scored = pd.read_csv(saved)
    assert len(scored) == 12 and set(scored["label"]) <= {"negative", "positive"}
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
