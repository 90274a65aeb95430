"""Reports and rankings over calendar periods: tables, maps, bulletins, dossiers and exports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from gridwatch import auth, org, regionstore
from gridwatch import bulletin as _bulletin
from gridwatch import periods as _periods
from gridwatch import reports as _reports
from gridwatch.config import Settings
from gridwatch.errors import NotFound
from gridwatch.grid import LEVELS
from gridwatch.policy import Policy
from gridwatch.services._common import (
    Actor,
    actor_name,
    audit,
    check_upload_size,
    policy,
    require,
    require_region,
    user_of,
    with_demo_settings,
)
from gridwatch.services.accountability import list_measures
from gridwatch.services.records import audit_head
from gridwatch.storage import Store
from gridwatch.tasks import FINDINGS

#: the grant that lets a person see reports (grid leaders, supervisors, unit heads, administrators)
REPORT_VIEW = "report.view"


#: the ``meta`` key holding cropland areas per unit (JSON {unit_code: km²})
CROPLAND_META = "report.cropland_km2"


def report_units(store: Store, actor: Actor) -> pd.DataFrame:
    """The units an actor may report on, top first: ``code, name, level, parent_code``.

    For a system actor (the command line), the region and every unit below it.
    """
    user = user_of(actor)
    if user is None:
        roots = [regionstore.region_and_resolution(store)[0]]
    else:
        auth.require(store, user, REPORT_VIEW)
        roots = sorted({u for role, u, _ in user.roles
                        if u is not None and REPORT_VIEW in user.role_grants.get(role, ())})
    frames = [org.region_units(store, code) for code in roots]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code"])
    units = pd.concat(frames).drop_duplicates("code")
    order = {level: i for i, level in enumerate(LEVELS)}
    units = units.assign(depth=units.level.map(order)).sort_values(["depth", "code"])
    return units[["code", "name", "level", "parent_code"]].reset_index(drop=True)


def report_cropland(store: Store, actor: Actor) -> dict[str, float]:
    """Cropland areas (km²) per unit code, as loaded by :func:`report_load_cropland`."""
    require(store, actor, REPORT_VIEW)
    return _cropland(store)


def _cropland(store: Store) -> dict[str, float]:
    value = store.get_meta(CROPLAND_META)
    return {k: float(v) for k, v in json.loads(value).items()} if value else {}


def report_load_cropland(store: Store, actor: Actor, path: str | Path) -> dict[str, Any]:
    """Load a CSV ``unit_code, cropland_km2`` (replacing earlier figures); every code must be a unit."""
    require_region(store, actor, "layer.load")
    check_upload_size(path)
    path = Path(path)
    values = _reports.load_cropland(path.read_text(encoding="utf-8-sig"))
    known = {r["code"] for r in store.query("SELECT code FROM units")}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NotFound("{file}: no administrative unit with code {codes}.", file=path.name,
                       codes=", ".join(unknown[:5]))
    with store.transaction():
        store.set_meta(CROPLAND_META, _reports.cropland_json(values))
        audit(store, actor=actor_name(actor), action="report.cropland", subject=path.name,
              detail={"units": len(values)})
    return {"file": path.name, "units": len(values), "cropland_km2": round(sum(values.values()), 3)}


def report_latest_day(store: Store, actor: Actor) -> dt.date:
    """The Beijing day of the latest dispatched fire point (today when there is none, and never after today): a
    report's default date."""
    require(store, actor, REPORT_VIEW)
    rules = policy(store)
    latest = _reports.latest_fire_day(store, rules.timezone)
    today = rules.today()
    return min(latest, today) if latest else today


def report_period(kind: str, date: str | dt.date, *, end: str | dt.date | None = None,
                  settings: Settings | None = None) -> _periods.ReportPeriod:
    """The period of a report: ``daily|weekly|xun|monthly|season|custom`` (or day, week, month) holding ``date``,
    in Beijing time, with the seasons of the settings (``gridwatch.toml`` when none are given)."""
    rules = Policy.from_settings(settings) if settings is not None else Policy.load()
    rules.check_report_date(_periods.parse_date(date))
    if end is not None:
        rules.check_report_date(_periods.parse_date(end), what="end date")
    seasons = _periods.seasons_from_text(rules.settings.report_seasons, rules.dispatch.key_periods)
    return _periods.period_of(kind, date, end=end, seasons=seasons, timezone=rules.timezone)


def report_build(store: Store, actor: Actor, *, kind: str, date: str | dt.date, end: str | dt.date | None = None,
                 level: str = "township", unit: str | None = None, settings: Settings | None = None,
                 language: str = "zh_CN", now: dt.datetime | None = None) -> _reports.Report:
    """Compute a report and ranking for the units of ``level`` inside ``unit`` (default: the user's top unit).

    A user needs ``report.view`` on ``unit`` (the refusal is recorded); the rules (weights, thresholds,
    deduction, seasons) come from the settings (the store's policy when none are given).
    """
    settings = policy(store).settings if settings is None else \
        with_demo_settings(store, Policy.from_settings(settings)).settings
    if unit is None:
        units = report_units(store, actor)
        if units.empty:
            raise NotFound("There is no unit to report on.")
        unit = str(units.code.iloc[0])
    require(store, actor, REPORT_VIEW, unit=unit)
    period = report_period(kind, date, end=end, settings=settings)
    return _reports.build_report(store, period, level=level, unit=unit,
                                 rules=_reports.ReportRules.from_settings(settings), now=now,
                                 cropland=_cropland(store), language=language)


def report_table(report: _reports.Report) -> pd.DataFrame:
    """The ranking table as the page shows it and the downloads hold it (headers in the report's language)."""
    return _bulletin.ranking_frame(report)


def report_daily(report: _reports.Report) -> pd.DataFrame:
    """Fire points and incidents per local day, translated headers."""
    return _bulletin.daily_frame(report)


def report_csv(report: _reports.Report) -> bytes:
    """The ranking as CSV (UTF-8 with BOM)."""
    return _bulletin.to_csv(report_table(report))


def report_xlsx(report: _reports.Report) -> bytes:
    """The report as an Excel workbook (ranking, notes, fire points per day)."""
    return _bulletin.report_xlsx(report)


def _require_report(store: Store, actor: Actor, report: _reports.Report) -> None:
    """Refuse unless the actor may see reports on the report's unit (a report object does not carry its reader)."""
    require(store, actor, REPORT_VIEW, unit=report.scope_code)


def report_map(store: Store, actor: Actor, report: _reports.Report, column: str = "fire_points", *,
               width: int = 640) -> tuple[str, list[tuple[str, str]]]:
    """A choropleth of the report's units by ``column`` (SVG of the cells, coarsened above 6,000), and its legend."""
    _require_report(store, actor, report)
    level = report.level
    where = "TRUE" if _reports.scope_level(store, report.scope_code) == "province" else \
        f"{_reports.scope_level(store, report.scope_code)}_code = ?"
    params = [] if where == "TRUE" else [report.scope_code]
    unit_sql = "lower(to_hex(cell))" if level == "cell" else f"{level}_code"
    cells = store.query_df(f"SELECT cell, {unit_sql} AS unit_code FROM cells WHERE {where} ORDER BY cell", params)
    ids = cells.cell.to_numpy(dtype=np.int64).view(np.uint64)
    resolution = h3.get_resolution(h3.int_to_str(int(ids[0]))) if len(ids) else 0
    while len(ids) > 6000 and resolution > 0:
        resolution -= 1
        from h3ronpy import change_resolution
        parents = np.asarray(change_resolution(pa.array(ids), resolution), dtype=np.uint64)
        keep = ~pd.Index(parents).duplicated()
        ids, cells = parents[keep], cells[keep]
    values = report.rows.set_index("unit_code")[column].astype(float)
    names = report.rows.set_index("unit_code").unit_name
    value = cells.unit_code.map(values).fillna(0).to_numpy()
    titles = [f"{names.get(u, u)} · {v:g}" for u, v in zip(cells.unit_code, value)]
    hexes = cells_to_string(pa.array(ids)).to_pylist()
    return _bulletin.choropleth_svg(hexes, value, titles=titles, width=width)


def report_legend_html(legend: list[tuple[str, str]], caption: str = "") -> str:
    """The legend of :func:`report_map` as inline HTML."""
    return _bulletin.legend_html(legend, caption)


def report_bulletin(store: Store, actor: Actor, report: _reports.Report, *, with_map: bool = True) -> str:
    """The printable HTML bulletin (通报) of a report, with the map of fire points by unit."""
    _require_report(store, actor, report)
    svg = ""
    if with_map:
        svg, legend = report_map(store, actor, report, width=520)
        svg += _bulletin.legend_html(legend, _reports.column_labels(report.language)["fire_points"])
    return _bulletin.bulletin_html(report, map_svg=svg, measures=report_measures(store, actor, report))


def report_response_times(store: Store, actor: Actor, report: _reports.Report) -> pd.DataFrame:
    """Hours from detection to arrival and to report, per fire check of the report's incidents."""
    _require_report(store, actor, report)
    return _reports.response_times(store, report.period, level=report.level, unit=report.scope_code,
                                   rules=report.rules, now=report.generated_at)


def report_response_histogram(store: Store, actor: Actor, report: _reports.Report, *,
                              width_h: float = 1.0) -> pd.DataFrame:
    """Fire checks per bin of hours to arrival and to report (``step, hours, tasks``), for the chart."""
    _require_report(store, actor, report)
    return _reports.response_histogram(store, report.period, level=report.level, unit=report.scope_code,
                                       rules=report.rules, now=report.generated_at, width_h=width_h)


def _require_unit_or_cell(store: Store, actor: Actor, unit: str) -> None:
    """Refuse unless the actor may see reports on ``unit`` (a unit code, or a cell's H3 id)."""
    level = store.scalar("SELECT level FROM units WHERE code = ?", [unit])
    if level is not None:
        require(store, actor, REPORT_VIEW, unit=unit)
        return
    try:
        cell = int(h3.str_to_int(unit)) if h3.is_valid_cell(unit) else None
    except (TypeError, ValueError):
        cell = None
    if cell is None:
        raise NotFound("No administrative unit with code {code}.", code=unit)
    require(store, actor, REPORT_VIEW, cell=cell)


def report_dossier(store: Store, actor: Actor, *, unit: str, kind: str | None = None,
                   date: str | dt.date | None = None, end: str | dt.date | None = None, language: str = "zh_CN",
                   include_patrols: bool = False, settings: Settings | None = None) -> pd.DataFrame:
    """A unit's dossier: the accountability measures recorded on it and the units below it (of the period, when one
    is given), then every event of its tasks (with an event in the period, when one is given)."""
    _require_unit_or_cell(store, actor, unit)
    period = report_period(kind, date, end=end, settings=settings) if kind and date else None
    kinds = None if include_patrols else tuple(k for k in FINDINGS if k != "routine_patrol")
    events = _reports.dossier_events(store, unit=unit, period=period, kinds=kinds)
    is_unit = store.scalar("SELECT count(*) FROM units WHERE code = ?", [unit])
    measures = list_measures(store, actor, unit=unit, period=period) if is_unit else None
    return _bulletin.dossier_frame(events, language, measures=measures)


def report_loop(store: Store, actor: Actor, *, unit: str, kind: str, date: str | dt.date,
                end: str | dt.date | None = None, language: str = "zh_CN", settings: Settings | None = None,
                now: dt.datetime | None = None) -> pd.DataFrame:
    """The closed loop of a unit over a period, for its dossier: problems found, closed, due, closed on time, 闭环率,
    overdue, without a deadline (not in the rate), repeats, hotline complaints and those answered
    (:mod:`gridwatch.loopreport`); two columns, the figure's label and value, in ``language``."""
    from gridwatch.i18n import gettext
    from gridwatch.loopreport import LOOP_COLUMNS

    require(store, actor, REPORT_VIEW, unit=unit)
    period = report_period(kind, date, end=end, settings=settings)
    found = _reports.unit_metrics(store, period, unit=unit, only=set(LOOP_COLUMNS), now=now)
    labels = _reports.column_labels(language)
    values = [("—" if found.get(c) is None else f"{found[c] * 100:.1f} %") if c == "closure_rate"
              else int(found.get(c) or 0) for c in LOOP_COLUMNS]
    return pd.DataFrame({gettext("Figure", language): [labels[c] for c in LOOP_COLUMNS],
                         gettext("Value", language): [str(v) for v in values]})


def report_measures(store: Store, actor: Actor, report: _reports.Report) -> pd.DataFrame:
    """The accountability measures recorded on the report's unit and the units below it for the report's period
    (revocations included), as the screen shows them: headers and kinds in the report's language."""
    _require_report(store, actor, report)
    measures = list_measures(store, actor, unit=report.scope_code, period=report.period)
    return _bulletin.measures_frame(measures, report.language)


def report_dossier_files(store: Store, actor: Actor, frame: pd.DataFrame, *, unit: str, language: str = "zh_CN",
                         note: str = "", loop: pd.DataFrame | None = None) -> dict[str, bytes]:
    """A dossier frame as ``{"csv": …, "xlsx": …, "html": …}`` bytes."""
    from gridwatch.i18n import gettext

    _require_unit_or_cell(store, actor, unit)
    name = store.scalar("SELECT name FROM units WHERE code = ?", [unit]) or unit
    title = gettext("Dossier of {unit}", language).format(unit=name)
    head = audit_head(store, actor)
    chain = gettext("Record chain head {seq}: {hash} (check with: python -m gridwatch audit verify)",
                    language).format(seq=head["seq"], hash=head["hash"])
    chain_sheet = pd.DataFrame({gettext("Record chain head", language): [head["seq"], head["hash"]]})
    sheets = {gettext("Dossier", language): frame}
    if loop is not None:  # the closed loop's figures (report_loop): a sheet, and a line above the events
        sheets[gettext("Closed loop", language)] = loop
        figures = "；".join(f"{a}：{b}" for a, b in loop.itertuples(index=False))
        note = (note + " " if note else "") + gettext("Closed loop", language) + "：" + figures
    sheets[gettext("Record chain", language)] = chain_sheet
    return {"csv": _bulletin.to_csv(frame), "xlsx": _bulletin.to_xlsx(sheets),
            "html": _bulletin.dossier_html(title, frame, note=note, chain=chain).encode("utf-8")}
