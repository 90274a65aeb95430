"""Demo data for one county: a generated township/village partition and demo people.

No public township or village boundaries exist for Henan, so the demo draws
its own: Voronoi regions around well-spread seeds, clipped to the county.
Everything it makes is named 演示 (demo), coded ``<county>-Dnn``, and stored
with ``is_demo = TRUE`` so screens can say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from gridwatch.boundaries import UnitBatch
from gridwatch.grid import Units

__all__ = ["demo_partition", "demo_people", "demo_fires_csv", "DEMO_SOURCE", "DEMO_FIRE_SOURCE", "DEMO_PASSWORD_NOTE", "units_with_demo"]

DEMO_SOURCE = "演示数据（生成）/ demo data (generated)"
DEMO_FIRE_SOURCE = "DEMO（演示火点）"
DEMO_PASSWORD_NOTE = "demo only"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅文斌辉鹏飞宇浩然欣怡俊峰海燕晓东春雪松林波"


def _spread_points(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` well-spread points inside ``geom``: k-means (Lloyd) on a dense random sample."""
    x0, y0, x1, y1 = geom.bounds
    shapely.prepare(geom)
    pts = np.empty((0, 2))
    while len(pts) < 60 * n:
        cand = rng.uniform((x0, y0), (x1, y1), size=(4000, 2))
        pts = np.vstack([pts, cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]])
    centres = pts[rng.choice(len(pts), n, replace=False)]
    for _ in range(30):
        d = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        label = d.argmin(1)
        for k in range(n):
            members = pts[label == k]
            if len(members):
                centres[k] = members.mean(0)
    return centres[np.lexsort((centres[:, 0], -centres[:, 1]))]  # north to south, then west to east


def _voronoi_parts(geom: shapely.Geometry, seeds: np.ndarray) -> list[shapely.Geometry]:
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=shapely.box(*geom.buffer(0.1).bounds))
    regions = list(cells.geoms)
    tree = shapely.STRtree(regions)
    parts = []
    for x, y in seeds:
        hit = tree.query(shapely.Point(x, y), predicate="within")
        parts.append(shapely.intersection(regions[int(hit[0])], geom))
    return parts


def demo_partition(county_code: str, county_geom: shapely.Geometry, *, townships: int = 14,
                   villages: tuple[int, int] = (6, 12), seed: int = 410329) -> list[UnitBatch]:
    """Generated demo townships and villages of a county: two batches, townships first."""
    rng = np.random.default_rng(seed)
    t_geoms = _voronoi_parts(county_geom, _spread_points(county_geom, townships, rng))
    t_codes = [f"{county_code}-D{i + 1:02d}" for i in range(townships)]
    t_frame = pd.DataFrame({
        "code": t_codes,
        "name": [f"演示乡镇{i + 1:02d}" for i in range(townships)],
        "level": "township",
        "parent_code": county_code,
        "is_demo": True,
    })
    v_rows, v_geoms = [], []
    for i, (code, geom) in enumerate(zip(t_codes, t_geoms)):
        n = int(rng.integers(villages[0], villages[1] + 1))
        for j, part in enumerate(_voronoi_parts(geom, _spread_points(geom, n, rng))):
            v_rows.append({"code": f"{code}-{j + 1:02d}", "name": f"演示村{i + 1:02d}-{j + 1:02d}",
                           "level": "village", "parent_code": code, "is_demo": True})
            v_geoms.append(part)
    return [
        UnitBatch(source=DEMO_SOURCE, frame=t_frame, geoms=np.array(t_geoms, dtype=object)),
        UnitBatch(source=DEMO_SOURCE, frame=pd.DataFrame(v_rows), geoms=np.array(v_geoms, dtype=object)),
    ]


def _names(rng: np.random.Generator, n: int) -> list[str]:
    out, seen = [], set()
    while len(out) < n:
        name = rng.choice(list(_SURNAMES)) + "".join(rng.choice(list(_GIVEN), size=int(rng.integers(1, 3))))
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def demo_people(county_code: str, units: pd.DataFrame, *, seed: int = 410329) -> pd.DataFrame:
    """Demo people and roles for a county with demo townships and villages.

    Returns rows ``person_key, name, phone, role, unit_code`` (as the people CSV).
    A few gaps are left on purpose (two villages without a grid leader, three
    without an inspector, one person with no unit) so the coverage report has
    something to show.
    """
    rng = np.random.default_rng(seed)
    townships = units[units.level == "township"].code.tolist()
    villages = units[units.level == "village"].code.tolist()
    rows: list[dict[str, str]] = []
    names = iter(_names(rng, 4 * len(villages) + 3 * len(townships) + 20))

    def person(key: str, role: str, unit: str | None) -> None:
        rows.append({"person_key": key, "name": f"{next(names)}（演示）", "phone": f"1380000{len(rows):04d}",
                     "role": role, "unit_code": unit or ""})

    for role, key in (("grid_leader", "leader"), ("unit_head", "head"), ("supervisor", "supervisor")):
        person(f"demo-county-{key}", role, county_code)
    person("demo-gis", "gis_staff", county_code)
    person("demo-admin", "admin", county_code)
    for t in townships:
        n = t.rsplit("-", 1)[-1].lower()
        for role, key in (("grid_leader", "leader"), ("unit_head", "head"), ("supervisor", "supervisor")):
            person(f"demo-{n}-{key}", role, t)
    no_leader = set(villages[3::40][:2])
    no_inspector = set(villages[7::30][:3])
    for v in villages:
        n = v.split("-", 1)[1].lower()
        if v not in no_leader:
            person(f"demo-{n}-leader", "grid_leader", v)
        if v not in no_inspector:
            person(f"demo-{n}-inspector", "inspector", v)
            rows.append({**rows[-1], "role": "grid_member"})
    person("demo-unassigned", "", None)
    return pd.DataFrame(rows)


#: a coal-fired plant site in the demo county whose stacks show up day after day (WRI/GCPT location)
DEMO_HEAT_SOURCE = (34.414573, 112.50113)
_FIRMS_MODIS_HEADER = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight"
#: (satellite code, UTC HHMM) of the day passes of Terra and Aqua over Henan
_PASSES = (("T", 250), ("A", 535), ("T", 1415), ("A", 1810))


def demo_fires_csv(county_geom: shapely.Geometry, *, year: int = 2026, start: str = "05-25", end: str = "06-20",
                   seed: int = 410329) -> str:
    """FIRMS MODIS-format demo detections over a summer harvest in a county (演示 data).

    Straw-burning points peak in the middle of the harvest; a heat source (the
    power plant site) shows on most days so triage learns to set it aside; a
    few detections are low-confidence. Values are drawn to look like MODIS
    C6.1 NRT output; ``version`` is ``DEMO`` so nobody takes them for real.
    """
    rng = np.random.default_rng(seed)
    days = pd.date_range(f"{year}-{start}", f"{year}-{end}", freq="D")
    mid = len(days) / 2
    rows = []
    x0, y0, x1, y1 = county_geom.bounds
    shapely.prepare(county_geom)
    for i, day in enumerate(days):
        n = rng.poisson(1.0 + 7.0 * np.exp(-(((i - mid) / (len(days) / 5)) ** 2)))
        pts = np.empty((0, 2))
        while len(pts) < n:
            cand = rng.uniform((x0, y0), (x1, y1), size=(64, 2))
            pts = np.vstack([pts, cand[shapely.contains_xy(county_geom, cand[:, 0], cand[:, 1])]])
        for lng, lat in pts[:n]:
            sat, hhmm = _PASSES[int(rng.integers(0, 2))]
            conf = int(np.clip(rng.normal(72, 18), 5, 100))
            rows.append((lat, lng, sat, hhmm, conf, day))
        if rng.random() < 0.7:  # the plant
            sat, hhmm = _PASSES[int(rng.integers(0, 4))]
            lat, lng = DEMO_HEAT_SOURCE
            rows.append((lat + rng.normal(0, 0.002), lng + rng.normal(0, 0.002), sat, hhmm, 90, day))
    lines = [_FIRMS_MODIS_HEADER]
    for lat, lng, sat, hhmm, conf, day in rows:
        bright = 300 + conf * 0.3 + rng.normal(8, 4)
        lines.append(
            f"{lat:.4f},{lng:.4f},{bright:.1f},{rng.uniform(1, 1.6):.1f},{rng.uniform(1, 1.3):.1f},"
            f"{day:%Y-%m-%d},{hhmm:04d},{sat},{conf},DEMO,{bright - rng.uniform(15, 30):.1f},"
            f"{rng.gamma(2.0, 6.0):.1f},{'D' if hhmm < 1200 else 'N'}"
        )
    return "\n".join(lines) + "\n"


def units_with_demo(units: Units, county: str) -> Units:
    """``units`` plus the generated demo townships and villages of ``county`` (for grids built in memory)."""
    records = [
        {"code": c, "name": n, "level": lv, "parent_code": p, "geom": g}
        for c, n, lv, p, g in zip(units.codes, units.names, units.levels, units.parents, units.geoms)
    ]
    for batch in demo_partition(county, units.geoms[units.index_of(county)]):
        records += batch.frame.assign(geom=list(batch.geoms)).to_dict("records")
    return Units.from_records(records)
