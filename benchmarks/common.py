"""Shared set-up for the benchmarks: boundaries (cached), points and timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import cache

import numpy as np

from benchmarks import Measurement
from gridwatch.grid import Grid, Units, build_grid

PROVINCE = "410000"
YICHUAN = "410329"  # 伊川县
#: Henan's bounding box (lng0, lat0, lng1, lat1), from the shipped province outline
HENAN_BBOX = (110.355037, 31.384377, 116.646424, 36.366509)
SEED = 410000


@cache
def shipped_units() -> Units:
    """The shipped province, 18 cities and 157 counties as Units (as tests/conftest.py builds them)."""
    from gridwatch.boundaries import load_shipped

    batch = load_shipped()
    records = batch.frame.assign(geom=list(batch.geoms)).to_dict("records")
    return Units.from_records(records)


@cache
def units_with_demo(county: str = YICHUAN) -> Units:
    """The shipped units plus the demo townships and villages of ``county``."""
    from gridwatch.demo import units_with_demo as add_demo

    return add_demo(shipped_units(), county)


def geom_of(code: str):
    """The shipped boundary of ``code`` (shapely, lng/lat)."""
    units = shipped_units()
    return units.geoms[units.index_of(code)]


@cache
def province_grid(resolution: int = 8) -> Grid:
    """The province grid, built once (set-up for lookup benchmarks)."""
    return build_grid(shipped_units(), PROVINCE, resolution)


def random_points(n: int, bbox: tuple[float, float, float, float] = HENAN_BBOX,
                  seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform random (lat, lng) points in ``bbox``, reproducible."""
    rng = np.random.default_rng(seed)
    lng0, lat0, lng1, lat1 = bbox
    lng = rng.uniform(lng0, lng1, n)
    lat = rng.uniform(lat0, lat1, n)
    return lat, lng


def measure(name: str, fn: Callable[[], object], *, repeats: int = 3, warmup: bool = True,
            items: int | None = None) -> Measurement:
    """Median wall time (``time.perf_counter``) of ``repeats`` calls of ``fn``, after one warm-up call if asked.

    The median CPU time (``time.process_time``) is kept beside it for the JSON.
    """
    if warmup:
        fn()
    samples, cpu = [], []
    value = None
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Measurement(name=name, seconds=statistics.median(samples), repeats=repeats, samples=tuple(samples),
                       items=items, cpu_seconds=statistics.median(cpu), value=value)


#: measurements shared between benchmarks of one run (e.g. res 9 compares with res 8)
_measured: dict[str, Measurement] = {}


def remember(m: Measurement) -> Measurement:
    """Keep ``m`` for later benchmarks of this run."""
    _measured[m.name] = m
    return m


def recall(name: str, compute: Callable[[], Measurement]) -> Measurement:
    """A measurement already taken in this run, else ``compute()`` it now."""
    if name not in _measured:
        _measured[name] = compute()
    return _measured[name]


def copy_database(source, target) -> None:
    """Copy a DuckDB file with its audit key and anchored head (``.auditkey``, ``.audithead``), as an operator
    copies a database: without its key the copy could not seal a change."""
    import shutil
    from pathlib import Path

    shutil.copy(source, target)
    for suffix in (".auditkey", ".audithead"):
        side, copied = Path(str(source) + suffix), Path(str(target) + suffix)
        if side.is_file():
            shutil.copy(side, copied)
        else:
            copied.unlink(missing_ok=True)
