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


def _sign_in(page, app_url, username):
    page.goto(app_url)
    page.get_by_label("用户名").fill(username, timeout=60000)
    page.get_by_label("密码").fill("demo-2026")
    page.get_by_role("button", name="登录").click()


def _go(page, name):
    """Open a screen from the sidebar (expanding it first on a narrow tablet)."""
    link = page.get_by_role("link", name=name)
    link.wait_for(state="attached", timeout=60000)
    if not link.is_visible() or link.bounding_box()["x"] < 0:
        page.locator("[data-testid='stExpandSidebarButton'], [data-testid='stSidebarCollapsedControl'] button"
                     ).first.click()
    link.click(timeout=30000)


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)])
def test_overview_renders_on_a_tablet(app_url, browser, viewport):
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:")) else None)
    _sign_in(page, app_url, "county")
    _go(page, "概览")
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
    _sign_in(page, app_url, "county")
    _go(page, "概览")
    page.get_by_text("网格概览：伊川县").wait_for(timeout=60000)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="English").click()
    page.get_by_text("Grid overview: 伊川县").wait_for(timeout=30000)
    page.get_by_text("Coverage report").wait_for(timeout=30000)
    assert page.get_by_text("Coverage report").is_visible()
    page.close()


def test_inspector_closes_a_fire_check_with_photo_and_position_and_the_leader_verifies(app_url, browser, tmp_path,
                                                                                      demo_db):
    """The issue's walk-through on a tablet: report with photo and GPS, verify, the cell turns clean."""
    import io

    import h3
    from PIL import Image

    from gridwatch import services
    from gridwatch.storage import open_store

    photo = tmp_path / "现场.jpg"
    Image.new("RGB", (640, 480), (90, 140, 60)).save(photo, "JPEG")
    context = browser.new_context(viewport={"width": 768, "height": 1024}, permissions=["geolocation"],
                                  geolocation={"latitude": 0.0, "longitude": 0.0, "accuracy": 12})
    page = context.new_page()
    _sign_in(page, app_url, "inspector")
    page.get_by_role("button", name="卫星火点核查").first.wait_for(timeout=60000)
    _shot(page, "1-inspector-tasks-768x1024")
    heights = page.locator("[data-testid='stButton'] button").evaluate_all("bs => bs.map(b => b.offsetHeight)")
    assert heights and min(heights) >= 44, heights  # touch targets
    task_button = page.get_by_role("button", name="卫星火点核查").first
    title = task_button.inner_text().split(" · ")[0]
    task_button.click()
    page.get_by_role("button", name="开始处理此任务").click(timeout=30000)
    page.get_by_text("核查结果").wait_for(timeout=30000)
    # the device is in the task's cell
    cell = page.locator("code").first.inner_text()
    lat, lng = h3.cell_to_latlng(cell)
    context.set_geolocation({"latitude": lat, "longitude": lng, "accuracy": 12})
    page.get_by_text("已扑灭").click()
    page.get_by_label("备注").fill("已扑灭，现场无明火")
    page.locator("input[type=file]").set_input_files(str(photo))
    page.get_by_role("button", name="使用我的位置").click()
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value && "
                           "Math.abs(parseFloat(i.value) - %f) < 1e-4)" % lat, timeout=30000)
    _shot(page, "2-inspector-report-768x1024")
    page.get_by_role("button", name="提交上报").click()
    page.get_by_text("已上报，等待核实。").wait_for(timeout=30000)
    _shot(page, "3-inspector-sent-768x1024")

    leader_ctx = browser.new_context(viewport={"width": 1024, "height": 768})
    leader = leader_ctx.new_page()
    _sign_in(leader, app_url, "leader")
    _go(leader, "网格状态与核实")
    leader.get_by_text("待核实的上报").wait_for(timeout=60000)
    leader.get_by_text("在网格单元内上报。").first.wait_for(timeout=30000)
    leader.locator("[data-testid='stImage'] img").first.wait_for(timeout=30000)
    assert leader.locator("[data-testid='stImage'] img").count() >= 1
    _shot(leader, "4-leader-review-1024x768")
    before = leader.locator(f"svg polygon:has(title:text-is('{cell} · 有待办'))").count()
    assert before == 1
    leader.get_by_role("button", name="核实").first.click()
    leader.get_by_text("已核实并关闭。").wait_for(timeout=30000)
    # the cell turns clean on the leader's map (unless another open task sits on it; the app's database is a
    # copy of the demo database, which tells how many there were)
    with open_store(str(demo_db)) as store:
        others = store.scalar("SELECT count(*) FROM tasks WHERE cell = ? AND state NOT IN ('closed', 'verified')"
                              " AND kind <> 'routine_patrol'", [h3.str_to_int(cell)]) - 1
    expected = "有待办" if others else "无待办"
    assert leader.locator(f"svg polygon:has(title:text-is('{cell} · {expected}'))").count() == 1
    _shot(leader, "5-leader-verified-1024x768")
    context.close()
    leader_ctx.close()
