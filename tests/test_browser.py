"""The dashboard in real headless Chromium (Debian's, driven by Playwright), served by `python app.py`
on a free port with an empty results cache of its own ($QUANTWM_RESULTS_DIR).

Screenshots go to the test's tmp dir, or to $QUANTWM_SCREENSHOTS when set (for the docs).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantwm.ui.headless import CHROMIUM, chromium, served_app

START_S = 60  # generous: the page answers in ~5 s on an idle machine, the suite may share it with other jobs
RUN_S = 180  # the brief: a video plays within 3 minutes of clicking Run on an empty cache
RERUN_S = 5

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of `python app.py` with an empty results cache of its own."""
    with served_app(tmp_path_factory.mktemp("results"), start_s=START_S) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("QUANTWM_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def screenshot(page, path: Path) -> None:
    """The whole page, taken with a window as tall as the page (a full-page capture would draw the
    controls' sticky Run bar where the short window's bottom was)."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": page.evaluate("document.body.scrollHeight")})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def choose(page, control: str, option: str) -> None:
    """Pick ``option`` in the Explore dropdown of ``control``."""
    page.locator(f"#explore-{control} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


PLOTS_WITH_DATA = """() => [...document.querySelectorAll('#explore-results .js-plotly-plot')]
                              .filter(p => p.data && p.data.length > 0).length"""


def shows(selector: str, text: str) -> str:
    """A page predicate: the element of ``selector`` exists and its text contains ``text``."""
    return f"() => !!document.querySelector({selector!r})?.innerText.includes({text!r})"


TITLE_FROM_CACHE = shows("#explore-title", "from the cache")


def test_explore_run_rerun_and_link(app_url: str, browser, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(app_url)
    page.locator("#explore-run").wait_for()
    choose(page, "env", "Wall")
    choose(page, "method", "rtn")
    choose(page, "w_bits", "3")
    choose(page, "w_granularity", "per_channel")
    page.get_by_label("Quick").check()
    episodes = page.locator("#explore-episodes input[type=number]")
    episodes.fill("4")
    episodes.press("Enter")
    page.wait_for_function(shows("#explore-check", "RTN W3 per_channel predictor"))
    assert page.locator("#explore-modules").inner_text().count("predictor") == 1

    page.locator("#explore-run").click()
    page.wait_for_function("""() => { const v = document.querySelector('#explore-imagination video');
                                      return v && v.readyState >= 2 && !v.paused; }""", timeout=RUN_S * 1000)
    playing = "document.querySelector('#explore-imagination video').currentTime"
    before = page.evaluate(playing)
    page.wait_for_timeout(1000)
    assert page.evaluate(playing) != before, "the imagination video does not advance"
    page.wait_for_function(f"() => ({PLOTS_WITH_DATA})() >= 3")
    rows = page.locator("#explore-summary div[role=row]")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().startswith("FP") and rows.nth(1).inner_text().startswith("quantized")
    assert "4 episodes" in page.locator("#explore-title").inner_text()
    assert "Traceback" not in page.content()
    screenshot(page, shots / "explore.png")

    start = time.time()
    page.locator("#explore-run").click()
    page.wait_for_function(TITLE_FROM_CACHE, timeout=RERUN_S * 1000)
    assert time.time() - start < RERUN_S

    link = page.url
    assert "w_bits=3" in link and "episodes=4" in link
    shared = browser.new_page(viewport={"width": 1920, "height": 1080})
    shared.goto(link)
    shared.wait_for_function(TITLE_FROM_CACHE, timeout=30_000)
    assert shared.locator("#explore-w_bits input").input_value() == "3"
    assert shared.locator("#explore-episodes input[type=number]").input_value() == "4"
    screenshot(shared, shots / "explore-1920.png")
    shared.goto(link + "&__theme=dark")
    shared.wait_for_function(TITLE_FROM_CACHE, timeout=30_000)
    screenshot(shared, shots / "explore-dark.png")
    assert "__theme=dark" in shared.url


def test_invalid_settings_are_explained_in_place(app_url: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{app_url}/?method=awq&a_bits=4")
    page.wait_for_function(shows("#explore-check", "AWQ is weight-only"))
    assert page.locator("#explore-group_size input").is_disabled()
    page.locator("#explore-run").click()
    page.wait_for_function(shows("#explore-status", "Not run"))
    assert "Traceback" not in page.content()
