"""Killing the process in the middle of an ingest or a layer publish leaves the database before or after it.

A real subprocess runs ``python -m gridwatch fires ingest`` (or ``layers publish``) on a copy of the demo database
and is killed with SIGKILL at several moments; the database is reopened and checked (never between, the audit
chain intact), then the command is run again to completion and must give the same result as one clean run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gridwatch import audit
from gridwatch.config import REPO_ROOT
from gridwatch.audit import open_sealed

from conftest import copy_db, drop_db

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

N_ROWS = 60_000


def _firms_csv(path, n: int = N_ROWS, seed: int = 7) -> None:
    """MODIS-format detections spread over 伊川县's bounding box in one harvest week (generated for the test)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(34.25, 34.60, n).round(4)
    lng = rng.uniform(112.25, 112.70, n).round(4)
    day = rng.integers(1, 8, n)
    minute = rng.integers(0, 60, n)
    lines = ["latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,"
             "frp,daynight"]
    lines += [f"{a},{b},320.5,1.0,1.0,2026-06-{d:02d},05{m:02d},A,80,6.1NRT,295.1,12.3,D"
              for a, b, d, m in zip(lat, lng, day, minute)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _state(db) -> dict:
    with open_sealed(str(db)) as store:
        counts = {t: int(store.scalar(f"SELECT count(*) FROM {t}")) for t in
                  ("fire_points", "incidents", "tasks", "task_events", "ingest_batches", "observations")}
        counts["tasks_without_event"] = int(store.scalar(
            "SELECT count(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id)"))
        counts["chain_ok"] = audit.verify(store)["ok"]
    return counts


def _ingest(db, csv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gridwatch", "fires", "ingest", str(csv), "--json", "--db", str(db)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


@pytest.fixture(scope="module")
def clean_run(demo_db, tmp_path_factory):
    """The demo database before, and after one uninterrupted ingest of the generated file."""
    folder = tmp_path_factory.mktemp("crash")
    csv = folder / "fires.csv"
    _firms_csv(csv)
    db = copy_db(demo_db, folder, "clean.duckdb")
    before = _state(db)
    started = time.monotonic()
    proc = _ingest(db, csv)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    yield {"csv": csv, "before": before, "after": _state(db), "seconds": time.monotonic() - started,
           "summary": json.loads(out)}
    drop_db(db)


def _comparable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "ingest_batches"}


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.85])
def test_a_killed_ingest_leaves_before_or_after_and_a_rerun_completes(clean_run, demo_db, tmp_path, fraction,
                                                                      request):
    before, after = clean_run["before"], clean_run["after"]
    assert after["fire_points"] > before["fire_points"] and after["tasks"] > before["tasks"]
    db = copy_db(demo_db, tmp_path, "killed.duckdb")
    request.addfinalizer(lambda: drop_db(db))
    proc = _ingest(db, clean_run["csv"])
    time.sleep(clean_run["seconds"] * fraction)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    state = _state(db)
    assert state["chain_ok"] and state["tasks_without_event"] == 0
    assert _comparable(state) in (_comparable(before), _comparable(after)), state
    rerun = _ingest(db, clean_run["csv"])
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    assert _comparable(_state(db)) == _comparable(after)


# -- a layer publish -------------------------------------------------------------------------------------------------

N_SHOPS = 400


def _publish_state(db) -> dict:
    with open_sealed(str(db)) as store:
        state = {t: int(store.scalar(f"SELECT count(*) FROM {t}")) for t in
                 ("layer_cell_flags", "layer_publications", "tasks", "task_events")}
        state["published"] = [(r["kind"], int(r["version"])) for r in store.query(
            "SELECT kind, version FROM layer_versions WHERE published ORDER BY kind, version")]
        state["coal_checks"] = int(store.scalar("SELECT count(*) FROM tasks WHERE kind = 'coal_check'"))
        state["tasks_without_event"] = int(store.scalar(
            "SELECT count(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id)"))
        state["chain_ok"] = audit.verify(store)["ok"]
    return state


def _publish(db) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gridwatch", "layers", "publish", "no_burn_zones", "1", "--json",
                             "--db", str(db)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def prepared_publish(demo_db, tmp_path_factory):
    """A copy of the demo database with loose-coal shops published and a fuel zone over most of the county loaded
    but not published; the state before, and after one uninterrupted ``layers publish``."""
    import geopandas as gpd
    import shapely

    from gridwatch import layerstore
    from gridwatch.policy import Policy

    folder = tmp_path_factory.mktemp("publish")
    db = copy_db(demo_db, folder, "prepared.duckdb")
    with open_sealed(str(db)) as store:
        b = store.query("SELECT min(lat) AS s, max(lat) AS n, min(lng) AS w, max(lng) AS e FROM cells")[0]
        rng = np.random.default_rng(11)
        dy, dx = (b["n"] - b["s"]) * 0.15, (b["e"] - b["w"]) * 0.15
        zone = shapely.box(b["w"] + dx, b["s"] + dy, b["e"] - dx, b["n"] - dy)
        lng = rng.uniform(b["w"] + dx, b["e"] - dx, N_SHOPS).round(5)
        lat = rng.uniform(b["s"] + dy, b["n"] - dy, N_SHOPS).round(5)
        shops = folder / "shops.csv"
        shops.write_text("名称,经度,纬度,是否散煤\n" + "".join(f"煤店{i},{x},{y},是\n" for i, (x, y) in
                                                           enumerate(zip(lng, lat))), encoding="utf-8")
        layerstore.load(store, "coal_sale_points", shops, actor="gis", policy=Policy(),
                        crs="EPSG:4326", publish_now=True)
        zones = folder / "zones.geojson"
        gpd.GeoDataFrame({"名称": ["城区禁燃区"], "类型": ["高污染燃料禁燃区"]}, geometry=[zone], crs=4326).to_file(zones)
        layerstore.load(store, "no_burn_zones", zones, actor="gis", policy=Policy())
    before = _publish_state(db)
    clean = copy_db(db, folder, "clean.duckdb")
    started = time.monotonic()
    proc = _publish(clean)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    yield {"db": db, "before": before, "after": _publish_state(clean), "seconds": time.monotonic() - started,
           "summary": json.loads(out)}
    drop_db(clean)
    drop_db(db)


@pytest.mark.parametrize("fraction", [0.5, 0.75, 0.95])
def test_a_killed_layer_publish_leaves_before_or_after_and_a_rerun_completes(prepared_publish, tmp_path, fraction,
                                                                             request):
    before, after = prepared_publish["before"], prepared_publish["after"]
    assert after["coal_checks"] > before["coal_checks"] and after["layer_cell_flags"] > before["layer_cell_flags"]
    assert ("no_burn_zones", 1) in after["published"] and ("no_burn_zones", 1) not in before["published"]
    db = copy_db(prepared_publish["db"], tmp_path, "killed.duckdb")
    request.addfinalizer(lambda: drop_db(db))
    proc = _publish(db)
    time.sleep(prepared_publish["seconds"] * fraction)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    state = _publish_state(db)
    assert state["chain_ok"] and state["tasks_without_event"] == 0
    assert state in (before, after), state
    rerun = _publish(db)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    final = _publish_state(db)
    # publishing the published version again changes nothing but is itself recorded as a publication
    recorded = final.pop("layer_publications") - after["layer_publications"]
    assert final == {k: v for k, v in after.items() if k != "layer_publications"}
    assert recorded == (1 if state == after else 0)
