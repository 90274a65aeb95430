"""Heat-supply radius: the exact inside test for a million points against every ≥ 300 MW plant of the province."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyproj
import shapely

from benchmarks import Result, Target, benchmark
from benchmarks.common import HENAN_BBOX, measure, random_points
from gridwatch.heat import SHIPPED_PLANTS
from layers.heat_supply import RadiusIndex, read_plants

N_POINTS = 1_000_000
RADIUS_M = 30_000.0
#: points packed within ±5 m of the radius around random plants, for the exactness check
N_EDGE = 200_000


def _plants() -> tuple[np.ndarray, np.ndarray]:
    frame = read_plants(SHIPPED_PLANTS).frame
    xy = shapely.get_coordinates(frame[frame.capacity_mw >= 300].geometry.to_numpy())
    return xy[:, 0], xy[:, 1]


def _haversine_prefilter(plng: np.ndarray, plat: np.ndarray, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The baseline: per-plant bbox prefilter, then haversine on a sphere of mean radius (fast, not exact)."""
    r = 6_371_008.8
    out = np.zeros(lng.size, dtype=bool)
    dlat = np.degrees(RADIUS_M / r) * 1.01
    for x, y in zip(plng, plat):
        dlng = dlat / np.cos(np.radians(abs(y) + dlat))
        idx = np.flatnonzero((np.abs(lat - y) <= dlat) & (np.abs(lng - x) <= dlng))
        p1, p2 = np.radians(y), np.radians(lat[idx])
        h = (np.sin((p2 - p1) / 2) ** 2
             + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lng[idx] - x) / 2) ** 2)
        out[idx[2 * r * np.arcsin(np.sqrt(h)) <= RADIUS_M]] = True
    return out


def _edge_points(plng: np.ndarray, plat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points within ±5 m of 30 km of random plants, and the truth from pyproj's geodesic against every plant."""
    geod = pyproj.Geod(ellps="WGS84")
    rng = np.random.default_rng(30_000)
    k = rng.integers(0, plng.size, N_EDGE)
    lng, lat, _ = geod.fwd(plng[k], plat[k], rng.uniform(0, 360, N_EDGE), RADIUS_M + rng.uniform(-5, 5, N_EDGE))
    truth = np.zeros(N_EDGE, dtype=bool)
    for x, y in zip(plng, plat):
        _, _, d = geod.inv(np.full(N_EDGE, x), np.full(N_EDGE, y), lng, lat)
        truth |= np.asarray(d) <= RADIUS_M
    return np.asarray(lng), np.asarray(lat), truth


@benchmark
def heat_supply_inside_1m() -> Result:
    """``RadiusIndex(...).inside`` (index built inside the timing) on 1 M random points in Henan's bbox."""
    plng, plat = _plants()
    lat, lng = random_points(N_POINTS, HENAN_BBOX)
    ours = measure("heat_supply_inside_1m", lambda: RadiusIndex(plng, plat, RADIUS_M).inside(lng, lat),
                   items=N_POINTS, repeats=5)
    base = measure("bbox_haversine_1m", lambda: _haversine_prefilter(plng, plat, lng, lat), items=N_POINTS,
                   repeats=5)
    share = float(np.mean(ours.value))
    elng, elat, truth = _edge_points(plng, plat)
    exact_wrong = int((RadiusIndex(plng, plat, RADIUS_M).inside(elng, elat) != truth).sum())
    sphere_wrong = int((_haversine_prefilter(plng, plat, elng, elat) != truth).sum())
    random_wrong = int((ours.value != base.value).sum())
    ours, base = dataclasses.replace(ours, value=None), dataclasses.replace(base, value=None)
    return Result(ours, base, Target(min_throughput=3_000_000, note="0 disagreements with pyproj.Geod.inv"),
                  unit="points/s",
                  details={"points": N_POINTS, "plants": int(plng.size), "radius_m": RADIUS_M,
                           "share_inside": round(share, 4), "edge_points": N_EDGE,
                           "edge_disagreements_with_pyproj": exact_wrong,
                           "edge_disagreements_haversine": sphere_wrong,
                           "random_points_where_haversine_differs": random_wrong})
