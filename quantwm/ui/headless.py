"""The dashboard served by ``python app.py`` in a child process on a free port, and Debian's chromium
driven by Playwright with the flags a sandboxed, offline machine needs: one way for the browser tests
and ``benchmarks/screenshots.py`` to open the real page. Playwright is a test requirement, imported
only when a browser is launched."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quantwm.cache import RESULTS_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(results_dir: str | Path | None, start_s: float = 120.0) -> Iterator[str]:
    """``python app.py`` on a free port, its results cache at ``results_dir`` (None: the default
    cache/results); yields the page's URL once it answers, stops the app on exit. RuntimeError with
    the app's own output when it exits or does not answer within ``start_s`` seconds."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
    if results_dir is not None:
        env[RESULTS_DIR_ENV] = str(results_dir)
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: nobody reads while the app runs
        app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + start_s
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).close()  # the page answers, not only the port listens
                    break
                except OSError:
                    if app.poll() is not None or time.time() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"the app did not answer on port {port} within {start_s:.0f} s:\n"
                                           f"{log.read().decode(errors='replace')[-4000:]}") from None
                    time.sleep(0.5)
            yield url
        finally:
            app.terminate()
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` of Debian's chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_dashboard(browser: Any, url: str) -> Any:
    """A 1280 x 800 page of ``browser`` showing the dashboard at ``url``, its tabs rendered."""
    page = browser.new_page(viewport=dict(VIEWPORT))
    page.goto(url)
    page.locator("#tabs").wait_for()
    return page
