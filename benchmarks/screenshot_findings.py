"""Retake docs/screenshots/findings.png: the app on a free port with an empty results cache, its
Findings tab (drawn from assets/findings/) in headless Debian chromium at 1280 x 800.

    python benchmarks/screenshot_findings.py [--out docs/screenshots/findings.png]

Look at the picture before committing it.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quantwm.cache import RESULTS_DIR_ENV  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTS_DRAWN = """() => { const ps = document.querySelectorAll('#tab-findings .js-plotly-plot');
  return ps.length > 0 && [...ps].every(p => p.data && p.data.length > 0 && p.querySelector('.main-svg .trace')); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not listen on port {port} within {timeout_s:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "findings.png")
    args = p.parse_args()
    port = free_port()
    env = {**os.environ, "PORT": str(port), RESULTS_DIR_ENV: tempfile.mkdtemp(prefix="quantwm-shot-"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{port}")
            page.locator("#tabs").wait_for()
            page.get_by_role("tab", name="Findings").click()
            page.wait_for_function(PLOTS_DRAWN, timeout=30000)
            time.sleep(1)  # plotly's transitions settle
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        app.terminate()
        app.wait(10)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
