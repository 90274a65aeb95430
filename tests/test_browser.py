"""Real headless Chromium against a real `streamlit run` of the demo database (select with -k browser)."""

from __future__ import annotations

import contextlib
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

from conftest import copy_db, drop_db

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


@contextlib.contextmanager
def _serving(db: str, folder: Path):
    """`streamlit run app.py` on ``db``, freshly started; its URL while it runs."""
    port = _free_port()
    env = {**os.environ, "GRIDWATCH_DB": str(db)}
    # the server's output goes to a file: a pipe nobody reads would stop the server once its buffer fills
    log_path = folder / "streamlit.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
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
        log.close()
        pytest.fail("streamlit did not start: " + log_path.read_text(errors="replace")[-2000:])
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def app_url(demo_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    db = copy_db(demo_db, folder, "app.duckdb")
    with _serving(db, folder) as url:
        yield url
    drop_db(db)


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


def _go(page, name, shows) -> None:
    """Open a screen from the sidebar (expanding it first on a narrow tablet) and wait until it shows ``shows``.

    A tap that lands while the previous run is still redrawing the page can be lost (the screen stays where it
    was), as a person would see; like them, tap again. A screen that never opens fails with what the page shows.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        _idle(page)
        link = page.get_by_role("link", name=name)
        link.wait_for(state="attached", timeout=60000)
        if not link.is_visible() or link.bounding_box()["x"] < 0:
            page.locator("[data-testid='stExpandSidebarButton'], [data-testid='stSidebarCollapsedControl'] button"
                         ).first.click()
        link.click(timeout=30000)
        try:
            (page.get_by_text(shows) if isinstance(shows, str) else shows).first.wait_for(timeout=30000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"{name} did not open at {page.url}; the page shows: {page.inner_text('body')[:800]!r}")


def _choose(page, select, option: str, *, shows: str) -> None:
    """Choose ``option`` in the select box ``select`` and wait until the page shows ``shows``.

    A list opened while the app is still redrawing can close under the finger and the choice is lost, as a person
    would see; like them, choose again. A choice that never takes fails with what the page shows.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        _idle(page)
        select.click(timeout=30000)
        try:
            page.get_by_role("option", name=option).click(timeout=10000)
            page.get_by_text(shows).first.wait_for(timeout=30000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"choosing {option!r} never showed {shows!r}; the page shows: "
                         f"{page.inner_text('body')[:800]!r}")


def _sees(page, target, timeout: int = 60000) -> None:
    """Wait until ``target`` (a text, or a locator) shows; failing, say what the page shows instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        (page.get_by_text(target) if isinstance(target, str) else target).first.wait_for(timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"{target!r} did not show at {page.url}; the page shows: "
                             f"{page.inner_text('body')[:800]!r}") from None


def _map_cells(page, min_cells: int = 1) -> dict[str, str]:
    """Cell id → status label as drawn by the Leaflet map (in streamlit-folium's frame), once it has drawn."""
    from playwright.sync_api import Error as PlaywrightError

    page.locator("iframe[title='streamlit_folium.st_folium']").first.wait_for(timeout=60000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for frame in page.frames:
            if "st_folium" in frame.url:
                try:
                    cells = frame.evaluate("window.gridwatchCells || {}")
                    drawn = frame.evaluate("!!document.querySelector('.leaflet-container')")
                except PlaywrightError:  # the map's frame was replaced by a rerun meanwhile: look again
                    continue
                if len(cells) >= min_cells and drawn:
                    return cells
        time.sleep(0.3)
    raise AssertionError("the map drew no cells")


def _map_status(page, cell: str, expected: str) -> bool:
    """Wait until the map shows ``cell`` with the status label ``expected``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _map_cells(page).get(cell) == expected:
            return True
        time.sleep(0.3)
    return False


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
    # the screen's last section, so a tap that a late rerun of the previous screen undoes is made again
    _go(page, "概览", "全覆盖检查")
    _sees(page, "网格概览：伊川县")
    _sees(page, page.locator("svg polygon"))
    assert page.locator("svg polygon").count() > 1800
    _sees(page, "未分配单位的人员")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"overview-{width}x{height}.png"), full_page=True)
    assert not outside, f"the page asked the network for {outside[:3]}"
    page.close()


def test_language_switch_to_english(app_url, browser):
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    _sign_in(page, app_url, "county")
    _go(page, "概览", "全覆盖检查")  # the whole screen drawn before the picker is touched
    _choose(page, page.locator("[data-testid='stSelectbox']").first, "English", shows="Grid overview: 伊川县")
    _sees(page, "Coverage report")
    assert page.get_by_text("Coverage report").is_visible()
    page.close()


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)])
def test_the_rules_screen_lists_each_rule_with_its_source_in_chinese_and_english(app_url, browser, viewport):
    """规则说明: a plan's number cites its clause, a local one says 本地设置 or, in the demo, 演示设置 with its
    demo document; the same screen reads in English."""
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    _sign_in(page, app_url, "county")
    _go(page, "规则说明", page.get_by_role("heading", name="规则说明"))
    _idle(page)
    page.get_by_text("HN-2024 §3(3)").first.wait_for(timeout=60000)
    text = page.locator("[data-testid='stMain']").inner_text()
    for shown in ("规划条款", "演示设置", "HN-2024 §3(3)", "春耕期间"):
        assert shown in text, f"{shown!r} is not on the rules screen"
    _shot(page, f"rules-zh-{width}x{height}")
    _choose(page, page.locator("[data-testid='stSelectbox']").first, "English", shows="Rules in force")
    page.locator("[data-testid='stMain']").get_by_text("Plan clause").first.wait_for(timeout=60000)
    _idle(page)
    text = page.locator("[data-testid='stMain']").inner_text()
    for shown in ("Plan clause", "Demo setting", "Spring ploughing"):
        assert shown in text, f"{shown!r} is not on the English rules screen"
    _shot(page, f"rules-en-{width}x{height}")
    page.close()


def test_inspector_closes_a_fire_check_with_photo_and_position_and_the_leader_verifies(app_url, browser, tmp_path,
                                                                                      demo_db):
    """The issue's walk-through on a tablet: report with photo and GPS, verify, the cell turns clean."""
    import io

    import h3
    from PIL import Image

    from gridwatch import services
    from gridwatch.audit import open_sealed

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
    page.get_by_text("现场.jpg").first.wait_for(timeout=30000)  # uploaded (sending before that sends no photo)
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
    _go(leader, "网格状态与核实", "待核实的上报")
    leader.get_by_text("在网格单元内上报。").first.wait_for(timeout=30000)
    leader.locator("[data-testid='stImage'] img").first.wait_for(timeout=30000)
    assert leader.locator("[data-testid='stImage'] img").count() >= 1
    assert _map_status(leader, cell, "有待办"), _map_cells(leader).get(cell)
    _shot(leader, "4-leader-review-1024x768")
    leader.get_by_role("button", name="核实").first.click()
    leader.get_by_text("已核实并关闭。").wait_for(timeout=30000)
    # the cell turns clean on the leader's map (unless another open task sits on it; the app's database is a
    # copy of the demo database, which tells how many there were)
    with open_sealed(str(demo_db)) as store:
        others = store.scalar("SELECT count(*) FROM tasks WHERE cell = ? AND state NOT IN ('closed', 'verified')"
                              " AND kind <> 'routine_patrol'", [h3.str_to_int(cell)]) - 1
    expected = "有待办" if others else "无待办"
    assert _map_status(leader, cell, expected), _map_cells(leader).get(cell)
    _shot(leader, "5-leader-verified-1024x768")
    context.close()
    leader_ctx.close()


@pytest.mark.parametrize("viewport", [(1024, 768), (768, 1024)])
def test_maps_render_with_no_network_and_a_pin_opens_its_task(app_url, browser, viewport, demo_db, tmp_path):
    """Leaflet and h3-js come from the app itself; cells are drawn from their ids; tapping a pin opens the task."""
    import h3

    from gridwatch import services
    from gridwatch.audit import open_sealed

    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:")) else None)
    copy = copy_db(demo_db, tmp_path, "copy.duckdb")
    with open_sealed(copy) as store:
        leader_cells = len(services.cell_status(store, services.current_user(
            store, services.sign_in(store, "leader", "demo-2026").token)))
        inspector = services.current_user(store, services.sign_in(store, "inspector", "demo-2026").token)
        first = services.my_tasks(store, inspector).iloc[0]
    drop_db(copy)
    _sign_in(page, app_url, "leader")
    _go(page, "网格状态与核实", page.get_by_role("heading", name="网格状态与核实"))
    cells = _map_cells(page, min_cells=leader_cells)
    assert len(cells) == leader_cells
    assert set(cells.values()) <= {"无待办", "本周未巡查", "有待办", "逾期"}
    _shot(page, f"map-leader-{width}x{height}")

    context2 = browser.new_context(viewport={"width": width, "height": height})  # its own cookies
    page2 = context2.new_page()
    page2.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                    "blob:")) else None)
    _sign_in(page2, app_url, "inspector")
    page2.get_by_text("地图", exact=True).first.click(timeout=60000)
    assert len(_map_cells(page2)) > 0
    _shot(page2, f"map-inspector-{width}x{height}")
    # tap the pin of the first task in the list: it opens that task
    lat, lng = h3.cell_to_latlng(first.cell_id)
    frame = next(f for f in page2.frames if "st_folium" in f.url)
    point = frame.evaluate(f"(() => {{ const p = map_div.latLngToContainerPoint([{lat}, {lng}]); "
                           f"return [p.x, p.y]; }})()")
    the_map = page2.locator("iframe[title='streamlit_folium.st_folium']")
    the_map.scroll_into_view_if_needed()  # below the 随手拍 bar on a landscape screen
    box = the_map.bounding_box()
    page2.mouse.click(box["x"] + point[0], box["y"] + point[1])
    page2.get_by_role("button", name="← 全部任务").wait_for(timeout=30000)
    page2.get_by_text(first.cell_id).first.wait_for(timeout=30000)  # the task detail draws after its back button
    assert not outside, f"the page asked the network for {outside[:3]}"
    context.close()
    context2.close()


def test_the_sign_in_survives_a_reload_and_sign_out_ends_it(app_url, browser):
    """The server sets the session cookie (HttpOnly, SameSite=Strict): no script on the page can read the token."""
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    _sign_in(page, app_url, "inspector")
    page.get_by_role("heading", name="我的任务").wait_for(timeout=60000)
    deadline = time.monotonic() + 30
    while "gridwatch_session" not in {c["name"] for c in context.cookies()} and time.monotonic() < deadline:
        time.sleep(0.2)
    cookie = next(c for c in context.cookies() if c["name"] == "gridwatch_session")
    assert cookie["sameSite"] == "Strict" and cookie["httpOnly"] and len(cookie["value"]) > 30
    assert cookie["value"] not in page.evaluate("document.cookie")
    assert "gridwatch_session" not in page.evaluate("document.cookie")
    page.reload()
    page.get_by_role("heading", name="我的任务").wait_for(timeout=60000)
    assert page.get_by_label("密码").count() == 0
    page.get_by_role("button", name="退出登录").click()
    page.get_by_label("密码").wait_for(timeout=30000)
    deadline = time.monotonic() + 30
    while "gridwatch_session" in {c["name"] for c in context.cookies()} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "gridwatch_session" not in {c["name"] for c in context.cookies()}  # the server expired it
    page.reload()
    page.get_by_label("密码").wait_for(timeout=60000)  # the old token no longer signs in
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": app_url}])
    page.reload()  # the stolen cookie of a signed-out session signs no one in
    page.get_by_label("密码").wait_for(timeout=60000)
    context.close()


def test_every_screen_runs_under_the_content_security_policy(app_url, browser):
    """The policy is on every response, and no screen of the county's (maps included) breaks a rule of it."""
    import urllib.request

    with urllib.request.urlopen(app_url, timeout=10) as answer:
        policy = answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1]
    assert "'unsafe-eval'" not in policy and "frame-ancestors 'self'" in policy
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    _sign_in(page, app_url, "county")
    for name, shows in (("概览", "全覆盖检查"), ("网格状态与核实", "任务看板"), ("卫星火点", "卫星火点"),
                        ("报表与排名", "报表与排名"), ("规则说明", "规则说明")):
        _go(page, name, shows)
        _idle(page)
        if name == "网格状态与核实":
            assert _map_cells(page)  # the map frame draws under its own policy
    assert not violations, violations[:3]
    context.close()


#: names that would run script if a tooltip put them into the page as markup
_XSS_NAMES = ["<img src=x onerror=\"window.top.__pwned='img'\">", "<script>window.top.__pwned='script'</script>",
              "<svg onload=\"window.top.__pwned='svg'\"></svg>"]


def test_a_hostile_name_in_a_map_tooltip_runs_nothing(app_url, browser):
    """Stored XSS: plant, point and cell names made of markup, drawn by Leaflet and opened as tooltips, stay text."""
    import folium
    import h3
    import numpy as np

    from gridwatch import maps

    ring = [[112.40 + 0.1 * dx, 34.40 + 0.1 * dy] for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))]
    m = maps.base_map(bounds=(34.3, 112.3, 34.6, 112.6), assets="/app/static/vendor")
    group = folium.FeatureGroup(name="gridwatch").add_to(m)
    maps.radius_layer([{"plant_id": f"p{i}", "name": name, "capacity_mw": 300.0, "radius_km": 20.0, "ring": ring}
                       for i, name in enumerate(_XSS_NAMES)], labels=(_XSS_NAMES[0], "MW")).add_to(group)
    for name in _XSS_NAMES:
        maps.PointLayer([34.45, 112.45], colour="#d62728", label=name, radius=5).add_to(group)
    cells = np.array([h3.str_to_int(c) for c in h3.cell_to_children("862a10727ffffff", 8)], dtype=np.uint64)
    maps.CellLayer(maps.cell_layer_data(cells, np.zeros(len(cells), dtype=int), grid_resolution=8),
                   labels=_XSS_NAMES + ["x"], colours=list(maps.STATUS_COLOURS.values())).add_to(group)
    html = m.get_root().render()
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    probe = app_url + "hostile-map.html"  # served as if by the app, so the app's own Leaflet loads
    page.route(probe, lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(probe)
    page.wait_for_function("() => Object.keys(window).some(k => k.startsWith('map_'))", timeout=30000)
    opened = page.evaluate("""() => {
        let n = 0;
        for (const key of Object.keys(window).filter(k => k.startsWith('map_'))) {
            window[key].eachLayer(layer => {
                if (layer.getTooltip && layer.getTooltip()) { layer.openTooltip(layer.getLatLng ? layer.getLatLng()
                    : layer.getBounds().getCenter()); n += 1; }
                if (layer.getPopup && layer.getPopup()) { layer.openPopup(); n += 1; }
            });
        }
        return n;
    }""")
    page.wait_for_timeout(1000)
    assert opened > 0
    assert page.evaluate("window.__pwned || null") is None
    shown = page.inner_text("body")
    assert any(name in shown for name in _XSS_NAMES)  # shown as text, literally
    page.close()


def _gis_files(folder: Path) -> dict[str, Path]:
    """A zipped Shapefile in CGCS2000 Gauss-Kruger (zone 37), a GeoJSON in GCJ-02 and a bare-soil GeoTIFF."""
    import zipfile

    import geopandas as gpd
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from gridwatch.crs import wgs84_to_gcj02

    west, south, east, north = 112.40, 34.40, 112.46, 34.45  # inside 伊川县
    zones = gpd.GeoDataFrame({"name": ["禁燃区甲"], "zone_type": ["high_polluting_fuel"]},
                             geometry=[box(west, south, east, north)], crs="EPSG:4326").to_crs("EPSG:4525")
    shp = folder / "shp"
    shp.mkdir()
    zones.to_file(shp / "zones.shp", encoding="UTF-8")
    zipped = folder / "禁燃区_cgcs2000_gk37.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for part in shp.iterdir():
            z.write(part, part.name)
    g_south, g_west = wgs84_to_gcj02(lat=south + 0.01, lng=west + 0.02)
    g_north, g_east = wgs84_to_gcj02(lat=north + 0.01, lng=east + 0.02)
    gcj = folder / "禁燃区_高德坐标.geojson"
    gcj.write_text(gpd.GeoDataFrame({"name": ["禁燃区乙"], "zone_type": ["high_polluting_fuel"]},
                                    geometry=[box(float(g_west), float(g_south), float(g_east), float(g_north))],
                                    crs="EPSG:4326").to_json(), encoding="utf-8")
    tif = folder / "bare_index.tif"
    values = np.zeros((60, 60), dtype="float32")
    values[10:30, 10:40] = 0.6  # a bare patch
    with rasterio.open(tif, "w", driver="GTiff", width=60, height=60, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(112.40, 34.45, 0.001, 0.001), nodata=-9999) as dst:
        dst.write(values, 1)
    return {"shp": zipped, "gcj": gcj, "tif": tif}


def _upload(page, path: Path) -> None:
    """Choose ``path`` in the file uploader and wait until it has reached the app (the load button is enabled)."""
    from playwright.sync_api import Error as PlaywrightError

    button = page.get_by_role("button", name="上传并预览")
    for _ in range(3):  # a rerun landing at the same moment can drop the choice: choose again
        _idle(page)
        try:
            page.locator("input[type=file]").set_input_files(str(path))
        except PlaywrightError:  # a rerun still shows the previous screen's uploader beside the new one
            time.sleep(0.5)
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if button.is_enabled():
                    _idle(page)
                    return
            except PlaywrightError:  # two buttons for a moment, as above
                pass
            time.sleep(0.2)
    _shot(page, "upload-never-arrived")
    raise AssertionError(f"the upload of {path.name} never reached the app")


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the select box labelled ``label``."""
    box = page.locator("[data-testid='stSelectbox']").filter(has=page.locator(f"input[aria-label='{label}']"))
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(6):  # a rerun that lands meanwhile closes the list: open it again
        _idle(page)
        box.click()
        try:
            choice.click(timeout=5000)
            return
        except Exception:  # noqa: BLE001 - retried
            continue
    raise AssertionError(f"could not choose {option} in {label}")


def _click_for(page, name: str, text: str, *, timeout: float = 60) -> None:
    """Click the button ``name`` until ``text`` shows: a click landing while a rerun replaces the button is lost, so
    it is clicked again while the button is still there (a publish or restore button goes once it has worked)."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout
    while True:
        _idle(page)
        button = page.get_by_role("button", name=name)
        if button.count():
            try:
                button.first.click(timeout=5000)
            except PlaywrightError:
                pass
        try:
            page.get_by_text(text).first.wait_for(timeout=15000)
            return
        except PlaywrightError:
            if time.monotonic() > deadline:
                raise


def _idle(page) -> None:
    """Wait until the app has finished running (Streamlit's status widget is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60000)


def test_gis_staff_load_preview_publish_and_roll_back_layers(app_url, browser, tmp_path):
    """The layers issue's walk-through: Shapefile in Gauss-Kruger, GeoJSON in GCJ-02, a GeoTIFF; publish; roll back."""
    files = _gis_files(tmp_path)
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:")) else None)
    _sign_in(page, app_url, "gis")
    _go(page, "图层管理", "上传新版本")

    def load(path: Path, crs_label: str | None = None, version: int = 1) -> None:
        _upload(page, path)
        if crs_label:
            _pick(page, "坐标参考系", crs_label)
        page.get_by_role("button", name="上传并预览").click()
        page.get_by_text(f"已保存为第 {version} 版").wait_for(timeout=60000)

    # 1. a zipped Shapefile whose .prj says CGCS2000 Gauss-Kruger zone 37: reprojected, previewed, published
    load(files["shp"])
    page.locator("iframe[title='streamlit_folium.st_folium']").first.wait_for(timeout=60000)
    page.get_by_text("发布该版本将带来以下变化").wait_for(timeout=30000)
    _shot(page, "gis-1-preview-shapefile")
    _click_for(page, "发布第 1 版", "第 1 版已发布。")
    # 2. a GeoJSON with GCJ-02 coordinates, declared as such: version 2, published
    load(files["gcj"], "GCJ-02（来自高德等地图应用的坐标）", version=2)
    _click_for(page, "发布第 2 版", "第 2 版已发布。")
    _shot(page, "gis-2-published-gcj02")
    # 3. roll back to version 1
    _pick(page, "预览版本", "1")
    _click_for(page, "恢复第 1 版", "第 1 版为当前发布版本。")
    _shot(page, "gis-3-rolled-back")
    # 4. a bare-soil index GeoTIFF for the bare-land layer
    _pick(page, "图层", "裸地")
    _upload(page, files["tif"])
    page.get_by_text("裸土指数").click()
    page.get_by_role("button", name="上传并预览").click()
    page.get_by_text("已保存为第 1 版").wait_for(timeout=60000)
    _idle(page)
    _shot(page, "gis-4-bare-land-preview")
    # the note of the published version: the no-burn zones' confirmation may still be showing
    _click_for(page, "发布第 1 版", "第 1 版为当前发布版本。")
    _shot(page, "gis-5-bare-land-published")
    assert not outside, f"the page asked the network for {outside[:3]}"
    context.close()


#: the menu of a grid leader, in its order: app.py's st.navigation for the leader's roles
LEADER_MENU = ["我的任务", "网格状态与核实", "分派任务", "报表与排名", "问题台账", "概览", "卫星火点", "规则说明"]


def _menu(page) -> list[list[str]]:
    """The page's menus (Streamlit's side navigation), each as its links' titles (shown after their icon's name)."""
    menus = page.locator("[data-testid='stSidebarNav']")
    return [[link.inner_text().strip().split("\n")[-1].strip()
             for link in menus.nth(i).locator("[data-testid='stSidebarNavLink']").all()]
            for i in range(menus.count())]


def _open_sidebar(page) -> None:
    """Expand the sidebar on a narrow tablet (it starts collapsed there) so a screenshot shows the menu."""
    expand = page.locator("[data-testid='stExpandSidebarButton'], [data-testid='stSidebarCollapsedControl'] button")
    if expand.count() and expand.first.is_visible():
        expand.first.click()
        page.locator("[data-testid='stSidebarNav']").first.wait_for(state="visible", timeout=30000)


def test_a_first_request_for_a_page_address_runs_inside_app_py_under_one_menu(browser, demo_db, tmp_path):
    """A tablet's bookmark of /fires is a fresh server's first request: the sign-in comes first (no page run alone
    under an automatic menu of every file), then the role's menu and nothing else."""
    db = copy_db(demo_db, tmp_path, "fresh.duckdb")
    try:
        with _serving(db, tmp_path) as url:
            page = browser.new_page(viewport={"width": 768, "height": 1024})
            page.goto(url + "fires")
            _sees(page, page.get_by_label("密码"))
            _idle(page)
            assert page.locator("[data-testid='stSidebarNav']").count() == 0, _menu(page)
            assert page.get_by_role("heading", name="卫星火点").count() == 0
            _shot(page, "first-request-fires-768x1024")
            page.get_by_label("用户名").fill("leader")
            page.get_by_label("密码").fill("demo-2026")
            page.get_by_role("button", name="登录").click()
            _go(page, "卫星火点", "火点核查任务")
            _idle(page)
            _open_sidebar(page)
            menus = _menu(page)
            assert menus == [LEADER_MENU], menus
            _shot(page, "fires-leader-768x1024")
            page.close()
    finally:
        drop_db(db)


def test_after_giving_a_task_the_next_change_on_the_page_shows_no_error(app_url, browser):
    """The tablet walk-through's blocker: after tasks were given, typing a note showed a TypeError's traceback."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page(viewport={"width": 768, "height": 1024})
    _sign_in(page, app_url, "leader")
    _go(page, "分派任务", "要分派的任务")
    picker = page.locator("[data-testid='stMultiSelect']").filter(has_text="要分派的任务")
    for _ in range(3):  # a list opened while a rerun lands closes under the finger: open it again
        _idle(page)
        picker.click()
        try:
            page.get_by_role("option").filter(has_text="卫星火点核查").first.click(timeout=10000)  # not "Select all"
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    _idle(page)
    to = page.locator("[data-testid='stSelectbox']").filter(has=page.locator("input[aria-label='分派给']")).first
    for _ in range(3):
        _idle(page)
        to.click()
        try:
            page.get_by_role("option").filter(has_text="巡查员").first.click(timeout=10000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    _click_for(page, "分派所选任务", "项任务分派给")
    page.get_by_label("备注").first.fill("再分派一次")
    page.keyboard.press("Enter")
    _idle(page)
    time.sleep(1)
    _idle(page)
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:800]
    assert "Traceback" not in page.inner_text("body")
    page.get_by_role("tab", name="按网格分派当天任务").click()
    _sees(page, "当天可用的巡查员")
    _open_sidebar(page)
    assert len(_menu(page)) == 1
    _shot(page, "assign-after-giving-768x1024")
    page.close()


def test_a_sighting_opens_a_problem_that_goes_its_whole_life_on_the_register_screen(app_url, browser, tmp_path,
                                                                                    demo_db):
    """随手拍 on the inspector's tablet (photo, what it is, position, send) opens a bare-land problem; on the 问题台账
    screen the leader hands it over, the inspector starts and applies to close with a photo, the leader checks it
    on site and closes it (销号)."""
    import h3
    from PIL import Image

    from gridwatch.audit import open_sealed

    with open_sealed(str(demo_db)) as store:  # the served database is a copy of this one
        cell = int(store.scalar("SELECT cell FROM cells WHERE village_code = '410329-D01-01' ORDER BY cell"
                                " LIMIT 1 OFFSET 3"))
        pid = int(store.scalar("SELECT coalesce(max(id), 0) FROM problems")) + 1
    lat, lng = h3.cell_to_latlng(h3.int_to_str(cell))
    here = {"geolocation": {"latitude": lat, "longitude": lng, "accuracy": 10}, "permissions": ["geolocation"]}
    seen, after = tmp_path / "裸土.jpg", tmp_path / "覆盖后.jpg"
    Image.new("RGB", (320, 240), (150, 110, 70)).save(seen, "JPEG")
    Image.new("RGB", (320, 240), (40, 120, 40)).save(after, "JPEG")

    inspector_ctx = browser.new_context(viewport={"width": 768, "height": 1024}, **here)
    inspector = inspector_ctx.new_page()
    _sign_in(inspector, app_url, "inspector")
    inspector.get_by_text("随手拍").first.click(timeout=60000)
    inspector.locator("input[type=file]").first.set_input_files(str(seen))
    inspector.get_by_text("裸土.jpg").first.wait_for(timeout=30000)
    _idle(inspector)
    inspector.locator("[data-testid='stButtonGroup'] button").filter(has_text="裸地").first.click()
    _idle(inspector)
    inspector.get_by_role("button", name="使用我的位置").first.click()
    inspector.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value && "
                                "Math.abs(parseFloat(i.value) - %f) < 1e-4)" % lat, timeout=30000)
    _idle(inspector)
    _shot(inspector, "sighting-768x1024")
    _click_for(inspector, "发送", "已上报：任务")

    leader_ctx = browser.new_context(viewport={"width": 1024, "height": 768}, **here)
    leader = leader_ctx.new_page()
    _sign_in(leader, app_url, "leader")
    _go(leader, "问题台账", "问题台账")
    _pick(leader, "问题", f"问题 {pid}")
    _sees(leader, f"问题 {pid} · 裸地 · 发现")
    leader.get_by_text("人员", exact=True).first.click()
    leader.get_by_label("名称（企业）、单位代码或人员编号").fill("demo-d01-01-inspector")
    leader.keyboard.press("Tab")
    _click_for(leader, "交办", "已交办。")

    _go(inspector, "问题台账", "问题台账")
    _pick(inspector, "问题", f"问题 {pid}")
    _click_for(inspector, "开始整改", "已开始整改。")
    _pick(inspector, "问题", f"问题 {pid}")
    inspector.get_by_label("备注").first.fill("已覆盖防尘网")
    inspector.keyboard.press("Tab")
    inspector.locator("input[type=file]").first.set_input_files(str(after))
    inspector.get_by_text("覆盖后.jpg").first.wait_for(timeout=30000)
    inspector.get_by_role("button", name="使用我的位置").first.click()
    _idle(inspector)
    _click_for(inspector, "申请销号", "已申请销号。")

    leader.reload()
    _pick(leader, "问题", f"问题 {pid}")
    _sees(leader, f"问题 {pid} · 裸地 · 申请销号")
    leader.get_by_role("button", name="使用我的位置").first.click()
    _idle(leader)
    _click_for(leader, "现场复核通过：销号", "已复核并销号。")
    _pick(leader, "问题", f"问题 {pid}")
    _sees(leader, f"问题 {pid} · 裸地 · 已销号")
    _shot(leader, "problem-closed-1024x768")
    assert "Traceback" not in leader.inner_text("body") + inspector.inner_text("body")
    inspector_ctx.close()
    leader_ctx.close()
