"""Retake README's screenshots of the Explore, Findings and Compare tabs in headless Debian chromium
(1280 px wide), with the app on a free port.

    python benchmarks/screenshots.py [--tab explore findings compare] [--out-dir docs/screenshots]
                                     [--compare-env wall]

explore: an empty results cache; README's example (RTN W3 per channel on Wall's predictor, quick MPC,
10 episodes of seed 4242) opened by its link and run, shot once its videos play (1280 x 800; the run
takes minutes on 2 cores).
findings: an empty results cache; the tab draws from assets/findings/ (1280 x 800).
compare: this machine's results cache (cache/results, or $QUANTWM_RESULTS_DIR), which must hold the
findings experiments of ``--compare-env`` (`quantwm findings`); the table filtered to that env and
four of those experiments overlaid (RTN on the predictor's weights, W4 / W3, per channel / group
32), the whole page.
Look at the pictures before committing them.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, TimeoutError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quantwm.experiment.findings import load_findings  # noqa: E402
from quantwm.ui.headless import chromium, open_dashboard, served_app  # noqa: E402

EXPLORE_QUERY = "env=wall&method=rtn&w_bits=3&w_granularity=per_channel&episodes=10&seed=4242"
EXPLORE_RUN_S = 1800
COMPARE_PICKS = ("RTN W4 per_channel predictor", "RTN W4 group32 predictor", "RTN W3 per_channel predictor",
                 "RTN W3 group32 predictor")


def plots_drawn(selector: str, n: int = 1) -> str:
    """JS predicate: at least ``n`` plotly charts under ``selector`` have drawn their data."""
    return (f"() => {{ const ps = document.querySelectorAll('{selector} .js-plotly-plot'); return ps.length >= {n} && "
            "[...ps].every(p => p.data && p.data.length > 0 && p.querySelector('.main-svg .trace, .main-svg .hm')); }")


def shoot_explore(page: Page, out: Path) -> None:
    """``page`` opened at README's example link (EXPLORE_QUERY)."""
    page.wait_for_function("() => document.querySelector('#explore-check')?.innerText.includes('RTN W3 per_channel predictor')")
    page.locator("#explore-run").click()
    page.wait_for_function("""() => { const v = document.querySelector('#explore-imagination video');
                                      return v && v.readyState >= 2 && !v.paused; }""", timeout=EXPLORE_RUN_S * 1000)
    page.wait_for_function(plots_drawn("#explore-results", 3), timeout=60_000)
    page.evaluate("window.scrollTo(0, 0)")
    time.sleep(1)
    page.screenshot(path=str(out))


def shoot_findings(page: Page, out: Path) -> None:
    page.get_by_role("tab", name="Findings").click()
    page.wait_for_function(plots_drawn("#tab-findings"), timeout=30_000)
    time.sleep(1)  # plotly's transitions settle
    page.screenshot(path=str(out))


def shoot_compare(page: Page, out: Path, env: str) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-filter-env input").click()
    page.locator("#compare-filter-env [role=option]", has_text=env).first.click()
    page.keyboard.press("Escape")
    page.wait_for_function(f"""() => {{ const rows = [...document.querySelectorAll('#compare-table .virtual-row')];
        return rows.length > 0 && rows.every(r => r.querySelector('[role=gridcell]').innerText.trim() === '{env}'); }}""",
                           timeout=30_000)
    picker = page.locator("#compare-picker input")
    episodes = load_findings()[env]["episodes"]  # the findings' experiments, not other cached runs of the same label
    for n, label in enumerate(COMPARE_PICKS, 1):
        picker.click()
        picker.fill(f"{env} · {label} · mpc · {episodes} ep")  # the dropdown lists only matching names; Enter picks the first
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        try:  # each experiment adds a mean curve and its band to the latent-error chart
            page.wait_for_function(f"document.querySelectorAll('#compare-latent .main-svg .trace').length >= {2 * n}",
                                   timeout=30_000)
        except TimeoutError:
            raise SystemExit(f"no cached {env} experiment '{label}' to overlay: run `quantwm findings --env {env}` first") from None
    page.wait_for_function(plots_drawn("#tab-compare", 3), timeout=30_000)
    time.sleep(1)
    page.screenshot(path=str(out), full_page=True)


def with_app(results_dir: str | None, shoot: Callable[[Page], None], query: str = "") -> None:
    """Start the app (its results cache at ``results_dir``, None: the default), open it at 1280 x 800
    (with the URL query ``query``), shoot."""
    with served_app(results_dir) as url, chromium() as browser:
        shoot(open_dashboard(browser, f"{url}/?{query}" if query else url))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tab", nargs="+", choices=["explore", "findings", "compare"], default=["explore", "findings", "compare"])
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--compare-env", choices=["wall", "pusht"], default="wall")
    args = p.parse_args()
    for tab in args.tab:
        out = args.out_dir / f"{tab}.png"
        if tab == "explore":
            with_app(tempfile.mkdtemp(prefix="quantwm-shot-"), lambda page: shoot_explore(page, out), EXPLORE_QUERY)
        elif tab == "findings":
            with_app(tempfile.mkdtemp(prefix="quantwm-shot-"), lambda page: shoot_findings(page, out))
        else:
            with_app(None, lambda page: shoot_compare(page, out, args.compare_env))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
