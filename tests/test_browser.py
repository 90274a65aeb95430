"""Real headless Chromium against a real `streamlit run` of the demo database (select with -k browser)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gridwatch.config import REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO_ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(demo_db, tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "app.duckdb"
    shutil.copy(demo_db, db)
    port = _free_port()
    env = {**os.environ, "GRIDWATCH_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)])
def test_overview_renders_on_a_tablet(app_url, browser, viewport):
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:")) else None)
    page.goto(app_url)
    page.get_by_text("网格概览：伊川县").wait_for(timeout=60000)
    page.get_by_text("全覆盖检查").wait_for()
    page.locator("svg polygon").first.wait_for()
    assert page.locator("svg polygon").count() > 1800
    page.get_by_text("未分配单位的人员").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"overview-{width}x{height}.png"), full_page=True)
    assert not outside, f"the page asked the network for {outside[:3]}"
    page.close()


def test_language_switch_to_english(app_url, browser):
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(app_url)
    page.get_by_text("网格概览：伊川县").wait_for(timeout=60000)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="English").click()
    page.get_by_text("Grid overview: 伊川县").wait_for(timeout=30000)
    page.get_by_text("Coverage report").wait_for(timeout=30000)
    assert page.get_by_text("Coverage report").is_visible()
    page.close()
