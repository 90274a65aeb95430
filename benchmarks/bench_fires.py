"""Fire-point ingest: a million FIRMS rows from CSV on disk to stored, triaged rows, incidents and tasks."""

from __future__ import annotations

import statistics
import tempfile
import time
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import Measurement, Result, Target, benchmark
from benchmarks.common import copy_database, measure
from gridwatch import regionstore, services
from gridwatch.audit import open_sealed

N_ROWS = 1_000_000
HENAN_BBOX = (110.35, 31.38, 116.65, 36.37)
HEADER = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight"


@cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gridwatch-bench-fires-"))


@cache
def firms_csv(n: int = N_ROWS, seed: int = 20240601) -> Path:
    """``n`` MODIS-format rows: 200 passes over 50 days, points clustered around 1,500 burning areas per pass."""
    rng = np.random.default_rng(seed)
    passes = 200
    per = n // passes
    lng0, lat0, lng1, lat1 = HENAN_BBOX
    frames = []
    for p in range(passes):
        centres = rng.uniform((lng0, lat0), (lng1, lat1), size=(1500, 2))
        pick = rng.integers(0, len(centres), per)
        xy = centres[pick] + rng.normal(0, 0.01, size=(per, 2))
        day = pd.Timestamp("2024-05-20") + pd.Timedelta(days=p // 4)
        sat, hhmm = [("T", 250), ("A", 535), ("T", 1415), ("A", 1810)][p % 4]
        frames.append(pd.DataFrame({
            "latitude": np.round(xy[:, 1], 4), "longitude": np.round(xy[:, 0], 4),
            "brightness": np.round(rng.uniform(300, 360, per), 1), "scan": 1.1, "track": 1.0,
            "acq_date": day.strftime("%Y-%m-%d"), "acq_time": f"{hhmm:04d}", "satellite": sat,
            "confidence": rng.integers(0, 101, per), "version": "6.1NRT",
            "bright_t31": np.round(rng.uniform(280, 300, per), 1), "frp": np.round(rng.gamma(2, 6, per), 1),
            "daynight": "D" if hhmm < 1200 else "N",
        }))
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.drop_duplicates(["latitude", "longitude", "acq_date", "acq_time", "satellite"])
    path = _workdir() / f"firms_{len(frame)}.csv"
    frame.to_csv(path, index=False)
    return path


@cache
def province_db() -> Path:
    """A province database at resolution 8 (built once)."""
    path = _workdir() / "henan.duckdb"
    with open_sealed(str(path)) as store:
        services.init_region(store, services.CLI, region="410000", resolution=8)
    return path


def _ingest_once(path: Path, *, again: bool = False) -> tuple[float, float, dict, dict, float]:
    """Ingest into a fresh copy of the province database.

    Returns the first and second ingest's seconds, the first's summary (with its ``stage_seconds``), the second's
    stage seconds, and the first's process CPU seconds (all threads).
    """
    db = _workdir() / "run.duckdb"
    copy_database(province_db(), db)
    with open_sealed(str(db)) as store:
        regionstore.grid(store)  # the running app holds the grid already
        c0 = time.process_time()
        t0 = time.perf_counter()
        summary = services.ingest_fire_file(store, services.CLI, path)
        first = time.perf_counter() - t0
        cpu = time.process_time() - c0
        second, stages_again = 0.0, {}
        if again:
            t0 = time.perf_counter()
            repeat = services.ingest_fire_file(store, services.CLI, path)
            second = time.perf_counter() - t0
            assert repeat["accepted"] == 0 and repeat["tasks_created"] == 0, repeat
            stages_again = repeat["stage_seconds"]
    return first, second, summary, stages_again, cpu


def _median_stages(runs: list[dict]) -> dict[str, float]:
    return {stage: round(statistics.median(r.get(stage, 0.0) for r in runs), 3) for stage in runs[0]}


@benchmark
def fires_ingest_1m() -> Result:
    """CSV on disk → rows stored with cell, units and flags → incidents and fire-check tasks."""
    from h3ronpy.vector import coordinates_to_cells

    path = firms_csv()
    _ingest_once(path)  # warm-up (imports, caches)
    # five ingests: on a 2-core machine a single one moves by ±0.2 s with whatever else runs, and the median of
    # five holds still where that of three did not
    runs = [_ingest_once(path, again=True) for _ in range(5)]
    firsts = [r[0] for r in runs]
    summary = runs[-1][2]
    rows = summary["read"]
    ours = Measurement(name="fires_ingest_1m", seconds=statistics.median(firsts), repeats=len(firsts),
                       samples=tuple(firsts), items=rows, cpu_seconds=statistics.median(r[4] for r in runs))
    frame = pd.read_csv(path, usecols=["latitude", "longitude"])
    lat, lng = frame.latitude.to_numpy(), frame.longitude.to_numpy()
    base = measure("h3ronpy_point_to_cell_same_points", lambda: coordinates_to_cells(lat, lng, 8), items=rows,
                   repeats=5)
    seconds = [r[1] for r in runs]
    return Result(ours, base, Target(min_throughput=500_000, max_ratio=5.0), unit="rows/s",
                  details={"rows": rows,
                           "summary": {k: v for k, v in summary.items() if k not in ("file", "stage_seconds")},
                           "stage_seconds_median": _median_stages([r[2]["stage_seconds"] for r in runs]),
                           "reingest_seconds": statistics.median(seconds),
                           "reingest_stage_seconds_median": _median_stages([r[3] for r in runs]),
                           "reingest_over_first": round(statistics.median(seconds) / ours.seconds, 3)})
