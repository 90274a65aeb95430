"""Bare land per cell: a 10,000 × 10,000 pixel land-cover GeoTIFF, against reading the raster once."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from benchmarks import Result, Target, benchmark
from benchmarks.common import measure
from layers.bare_land import bare_cells_from_raster, raster_windows

SIZE = 10_000
BARE_CLASS = 60  # ESA WorldCover "bare / sparse vegetation"


@cache
def land_cover_tif(size: int = SIZE, seed: int = 60) -> Path:
    """A tiled, DEFLATE-compressed uint8 land-cover raster in CGCS2000 / 3-degree Gauss-Kruger CM 111° E
    (EPSG:4546), 10 m pixels over 100 km × 100 km around Luoyang: patches of 40 × 40 pixels of WorldCover
    classes with 5 % speckle and a nodata strip, written block row by block row."""
    path = Path(tempfile.mkdtemp(prefix="gridwatch-bench-bare-")) / "land_cover.tif"
    rng = np.random.default_rng(seed)
    classes = np.array([10, 30, 40, 50, 60, 80], dtype=np.uint8)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs="EPSG:4546",
                   transform=from_origin(480_000, 3_850_000, 10, 10), nodata=0, tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 512):
            h = min(512, size - row)
            coarse = rng.choice(classes, size=(-(-h // 40), -(-size // 40)), p=[.35, .2, .2, .1, .1, .05])
            block = np.repeat(np.repeat(coarse, 40, axis=0), 40, axis=1)[:h, :size]
            speckle = rng.random(block.shape) < 0.05
            block[speckle] = rng.choice(classes, size=int(speckle.sum()))
            if row == 0:
                block[:100] = 0
            dst.write(block, 1, window=Window(0, row, size, h))
    return path


def _read_once(path: Path) -> int:
    total = 0
    with rasterio.open(path) as src:
        for window in raster_windows(src):
            total += int(src.read(1, window=window).size)
    return total


@benchmark
def bare_land_cells_10k() -> Result:
    """``bare_cells_from_raster`` (res 8, class 60) on a 10,000² DEFLATE GeoTIFF vs reading its windows once."""
    path = land_cover_tif()
    try:
        ours = measure("bare_land_cells_10k", lambda: bare_cells_from_raster(path, resolution=8,
                                                                              bare_classes=[BARE_CLASS]),
                       items=SIZE * SIZE, repeats=3)
        base = measure("rasterio_read_once_10k", lambda: _read_once(path), items=SIZE * SIZE, repeats=3)
        cells = ours.value
        details = {"pixels": SIZE * SIZE, "cells": int(len(cells)), "file_mb": round(path.stat().st_size / 1e6, 1),
                   "bare_share": round(float(cells.bare_px.sum() / cells.observed_px.sum()), 4),
                   "observed_px": int(cells.observed_px.sum())}
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
        land_cover_tif.cache_clear()
    ours, base = dataclasses.replace(ours, value=None), dataclasses.replace(base, value=None)
    return Result(ours, base, Target(max_ratio=2.0), unit="pixels/s", details=details)
