"""The app in real headless Chromium: plan one Wall episode with the shipped model and play it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app did not start in 90 s")
    yield url
    proc.terminate()
    proc.wait(10)


def test_plan_one_wall_episode_and_play_the_video(app_url: str, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(app_url)
        page.get_by_role("button", name="Plan episode").click()
        video = page.locator("#video video")
        video.wait_for(state="attached", timeout=180_000)
        src = video.get_attribute("src")
        assert src and src.endswith(".mp4")
        page.wait_for_function("document.querySelector('#video video').readyState >= 2", timeout=30_000)
        duration = page.evaluate("document.querySelector('#video video').duration")
        assert duration > 0.5
        summary = page.locator("#summary").inner_text()
        assert "wall / mpc, episode 0 (seed 99)" in summary and "final state distance" in summary
        page.screenshot(path=str(tmp_path / "app.png"))
        browser.close()
