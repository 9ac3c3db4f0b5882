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
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        # Wait until the page is idle: text typed before Gradio's components are live is lost.
        page.goto(url, wait_until="networkidle")
        page.locator("#analyze").wait_for(state="visible")
        yield page
        browser.close()
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(autouse=True)
def no_console_errors(page):
    """Every browser test fails on a JavaScript error or a console error the page logged meanwhile."""
    page.console_errors.clear()
    yield
    assert page.console_errors == []


# Each word of every highlighted piece must sit on one line: a word whose characters lie on two lines is broken.
BROKEN_WORDS = """() => {
  const broken = [];
  for (const element of document.querySelectorAll('#words .textfield .text')) {
    const node = element.firstChild;
    if (!node) continue;
    for (const match of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      if (new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_highlighted_words_never_break_across_lines(page, tmp_path, width):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": width, "height": 900})
    page.get_by_role("tab", name="Review").click()
    review = " ".join(["great wonderful loved it, a brilliant film with excellent delightful moments"] * 12)
    page.locator("#review textarea").fill(review)
    page.locator("#analyze").click()
    expect(page.locator("#words .textfield .text").first).to_be_visible(timeout=30_000)
    words = page.locator("#words .textfield").inner_text().split()
    assert len(words) >= len(review.split())  # the whole review is shown
    assert page.evaluate(BROKEN_WORDS) == []
    page.locator("#words").screenshot(path=str(tmp_path / f"words-{width}.png"))


def test_reloading_the_page_logs_no_errors(page):
    page.reload(wait_until="networkidle")
    page.locator("#analyze").wait_for(state="visible")
    page.wait_for_timeout(1_000)  # lazily loaded components report their errors after the first paint


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


# Records, while a file is scored, how many progress bars are shown at once and what they say.
WATCH_PROGRESS = """() => {
  window.progressSeen = {most: 0, texts: []};
  new MutationObserver(() => {
    const shown = [...document.querySelectorAll('.progress-text, .meta-text-center')].filter((e) => e.offsetParent);
    const bars = new Set(shown.map((e) => e.closest('[data-testid=status-tracker]')));
    window.progressSeen.most = Math.max(window.progressSeen.most, bars.size);
    for (const e of shown) window.progressSeen.texts.push(e.textContent.trim());
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
BAR_FILLS = """() => [...document.querySelectorAll('#chart svg path')].map((e) => e.getAttribute('fill'))
  .filter((fill) => fill && fill.startsWith('#'))"""


def test_upload_score_and_download_a_file(page, tmp_path):
    from playwright.sync_api import expect

    from review_sentiment.app.explain import strength_colors

    source = tmp_path / "upload.csv"
    frame = toy_reviews(600)
    frame.loc[0, "review"] = "Great film. " * 30
    frame.to_csv(source, index=False)
    page.get_by_role("tab", name="Batch").click()
    expect(page.locator("#preview")).to_be_hidden()  # no placeholder headers "1 2 3" before a file is scored
    page.locator("#upload input[type=file]").set_input_files(str(source))
    expect(page.locator("#column input")).to_have_value("review", timeout=30_000)
    page.evaluate(WATCH_PROGRESS)
    page.locator("#score").click()
    expect(page.locator("#summary")).to_contain_text("rows 600, scored 600", timeout=60_000)
    seen = page.evaluate("window.progressSeen")
    assert seen["most"] == 1  # one bar, not one per output
    moved = {int(text.split("/")[0]) for text in seen["texts"] if text.split("|")[0].strip().endswith("/600 rows")}
    assert len(moved) >= 2 and max(moved) > 0, seen["texts"]  # it follows the rows scored
    assert "/tmp" not in page.locator("#summary").inner_text()
    for index, name in enumerate(["label", "confidence", "status", "review"]):
        expect(page.locator("#preview thead th").nth(index)).to_have_attribute("title", name, timeout=30_000)
    assert ("Great film. " * 30)[:120].strip() in page.locator("#preview").inner_text()
    assert ("Great film. " * 30).strip() not in page.locator("#preview").inner_text()
    legend = strength_colors(("negative", "positive"))
    colours = [legend["strongly negative"], legend["strongly positive"]]
    # One colour per class, the legend's: waits until the chart draws both (a timeout fails the test).
    page.wait_for_function(f"(colours) => colours.every((c) => ({BAR_FILLS})().includes(c))", arg=colours)
    with page.expect_download() as download:
        page.locator("#download a").first.click()
    saved = tmp_path / "scored.csv"
    download.value.save_as(saved)
    scored = pd.read_csv(saved)
    assert len(scored) == 600 and set(scored["label"]) <= {"negative", "positive"}
    assert scored["review"][0] == frame["review"][0]  # the file keeps the whole review
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
