"""Report metrics per unit and period, weighted rankings with rank change, and accountability thresholds.

Every metric is computed set-based in SQL over the stored tables (fire points,
incidents, tasks and their events, cells, assignments, observations), for the
units of one level inside a scope unit, over one :class:`~gridwatch.periods.ReportPeriod`.
A cell's unit is its current owner in ``cells`` (the grid's ownership).

Adding a metric is one function plus one entry in :data:`METRICS`: the function
takes the :class:`Context` and the frame built so far (one row per unit, the
earlier metrics' columns) and returns a frame with ``unit_code`` and its
columns (or None to leave its columns out); the entry names its columns with
their labels and kinds. Derived metrics (rates, densities) list the metrics they
``need``, so a ranking of the previous period computes only what its weights use.

Definitions (the rule on paper → the code):

* ``fire_points``: satellite detections in the unit in the period that were
  dispatched (static sources, persistent industrial heat and low-confidence
  detections are kept apart as ``filtered_points``); ``incidents``: one per cell
  and overpass.
* ``dispatched``: fire-check tasks opened for the period's incidents; their
  report's finding (the last ``reported`` event, while the report stands:
  reported, verified or closed) makes them ``confirmed`` (confirmed burning,
  extinguished) or ``false_alarms`` (false alarm, industrial heat source);
  ``confirmation_rate`` (查实率) = confirmed / dispatched.
* Response times run from the detection (UTC acquisition time) to the first
  ``in_progress`` event (arrival) and to the first ``reported`` event, in hours:
  median and 90th percentile (linear interpolation).
* ``tasks_overdue``: tasks of any kind escalated in the period (escalation only
  happens past the due time) or due in the period (before now) without a report
  by their due time; ``tasks_escalated``: tasks escalated in the period.
* ``cells_without_inspector`` and ``units_without_grid_leader`` (the unit and
  every unit below it): coverage gaps as the organisation stands now.
* ``cells_not_visited``: cells without a report of any task on them in the period.
* ``days_not_observed``: local days of the period up to today on which no
  satellite pass over the region is known (the same for every unit).
* ``first_fire`` (第一把火): the unit holding the first dispatched fire point of
  a harvest season within the report's scope, when that point falls in the period.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_area_km2

from gridwatch import loopreport
from gridwatch.accountability import PERSON_ROLES
from gridwatch.errors import NotFound, ValidationError
from gridwatch.i18n import N_, gettext
from gridwatch.periods import ReportPeriod, seasons_from_text
from gridwatch.storage import Store
from gridwatch.policy import TIMEZONE, DispatchPolicy, Policy, Period as KeyPeriod

__all__ = ["Column", "Metric", "METRICS", "REPORT_LEVELS", "ReportRules", "Context", "Report", "build_report",
           "compute_metrics", "response_times", "daily_series", "column_labels", "STATUSES", "CONFIRMED",
           "FALSE_ALARMS", "parse_weights", "parse_thresholds", "scope_level", "dossier_events", "load_cropland",
           "fires_source", "latest_fire_day", "response_histogram", "unit_metrics"]

#: levels a report ranks, from the top; ``cell`` is the grid unit (the H3 cell, 社/组)
REPORT_LEVELS = ("county", "township", "village", "cell")
_LEVEL_ORDER = ("province", "city", "county", "township", "village", "cell")
#: report findings of a fire check that confirm a fire, and those that find none
CONFIRMED = ("confirmed_burning", "extinguished")
FALSE_ALARMS = ("false_alarm", "industrial_heat_source")
#: accountability statuses, mildest first, with their labels
STATUSES = {"notice": N_("Public notice (通报)"), "interview_deputy": N_("Interview of the deputy leader (约谈)"),
            "interview_principal": N_("Interview of the principal leader (约谈)")}
#: the roles held on a unit whose people a status affects
AFFECTED_ROLES = ("unit_head", "grid_leader")


# -- rules ----------------------------------------------------------------------------------------------


def _pairs(value: str | Mapping[str, Any], what: str) -> dict[str, float]:
    """``a=1,b=2`` (or a mapping) as {name: number}."""
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = []
        for part in str(value or "").split(","):
            if part.strip():
                name, sep, number = part.partition("=")
                if not sep:
                    raise ValidationError("The {what} setting {text!r} is not of the form name=number,…",
                                          what=what, text=part.strip())
                items.append((name.strip(), number.strip()))
    out = {}
    for name, number in items:
        try:
            out[str(name)] = float(number)
        except (TypeError, ValueError) as exc:
            raise ValidationError("The {what} setting gives {name} = {value!r}, not a number.", what=what,
                                  name=name, value=number) from exc
    return out


def parse_weights(value: str | Mapping[str, Any]) -> dict[str, float]:
    """Score weights from ``metric=weight,…``; every metric must be a numeric column of :data:`METRICS`."""
    weights = _pairs(value, "report_weights")
    known = [c.name for m in METRICS for c in m.columns if c.kind not in ("flag", "text")]
    unknown = sorted(set(weights) - set(known))
    if unknown or not weights:
        raise ValidationError("Unknown metric(s) {names} in the ranking weights; use {known}.",
                              names=", ".join(unknown) or "—", known=", ".join(known))
    return weights


def parse_thresholds(value: str | Mapping[str, Any]) -> dict[str, float]:
    """Thresholds ``notice=5,interview_deputy=10,interview_principal=20`` (any subset), checked."""
    found = _pairs(value, "report_thresholds")
    unknown = sorted(set(found) - set(STATUSES))
    if unknown:
        raise ValidationError("Unknown accountability status(es) {names}; use {known}.", names=", ".join(unknown),
                              known=", ".join(STATUSES))
    return {name: found[name] for name in STATUSES if name in found}


@dataclass(frozen=True)
class ReportRules:
    """The configurable rules of rankings and accountability (from :class:`~gridwatch.config.Settings`)."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"fire_points": 1.0, "confirmed": 1.0,
                                                                  "tasks_overdue": 0.5})
    thresholds: Mapping[str, float] = field(default_factory=dict)  # the plans give none: local settings only
    threshold_metric: str = "fire_points"
    deduction_yuan: float = 0.0  # the plans give no amount: a local setting only
    document: str = ""  # the document of the local thresholds and deduction (rule_documents)
    seasons: tuple[KeyPeriod, ...] = DispatchPolicy.key_periods  # the dispatch key periods unless given
    timezone: str = TIMEZONE  # Beijing time (gridwatch.policy)

    @classmethod
    def from_settings(cls, settings: Any) -> "ReportRules":
        """The rules of a :class:`~gridwatch.config.Settings`, checked."""
        metric = str(settings.report_threshold_metric)
        parse_weights({metric: 1})
        try:
            deduction = float(settings.report_deduction_yuan)
        except (TypeError, ValueError) as exc:
            raise ValidationError("report_deduction_yuan must be a number (got {value!r}).",
                                  value=settings.report_deduction_yuan) from exc
        documents = getattr(settings, "rule_documents", None) or {}
        document = (documents.get("report_thresholds") or documents.get("report_deduction_yuan") or ""
                    if isinstance(documents, Mapping) else "")
        return cls(weights=parse_weights(settings.report_weights), document=document,
                   thresholds=parse_thresholds(settings.report_thresholds), threshold_metric=metric,
                   deduction_yuan=deduction, seasons=seasons_from_text(
                       settings.report_seasons, Policy.from_settings(settings).dispatch.key_periods),
                   timezone=TIMEZONE)

    def rule_text(self, language: str = "zh_CN") -> str:
        """The score rule as written next to the table, e.g. ``得分 = 1×卫星火点 + …；得分越低排名越前``."""
        labels = column_labels(language)
        terms = " + ".join(f"{_number(w)}×{labels.get(name, name)}" for name, w in self.weights.items())
        return gettext("Score = {terms}; the lower the score, the higher the rank; equal scores share a rank.",
                       language).format(terms=terms)

    def threshold_text(self, language: str = "zh_CN") -> str:
        """The accountability rule in words, labelled as the local setting (本地设置) it is, with its document."""
        if not self.thresholds and not self.deduction_yuan:
            return gettext("No accountability thresholds or deductions are applied: the plans name the measures "
                           "(通报, 约谈, economic penalties) but give no numbers, and none is set locally.", language)
        metric = column_labels(language).get(self.threshold_metric, self.threshold_metric)
        local = gettext("Local setting (本地设置): {document}", language).format(
            document=self.document or gettext("no document entered", language))
        steps = "；".join(f"≥ {_number(v)} → {gettext(STATUSES[k], language)}" for k, v in self.thresholds.items())
        return gettext("{metric} in the period: {steps}; deduction {yuan} yuan per fire point.", language).format(
            metric=metric, steps=steps or "—", yuan=_number(self.deduction_yuan)) + " " + local


def _number(x: float) -> str:
    return f"{x:g}"


def fires_source(store: Store) -> str:
    """A subquery of the stored detections: ``cell, acq_time, key, incident_key`` and the flags ``dispatched``,
    ``filtered`` (kept, not dispatched) and ``in_region``.

    Reads the narrow ``fire_detections`` table when the schema has it (the ``fire_points`` view over it joins
    every row to its cell's owners, which reports take from the scope instead), else ``fire_points``.
    """
    narrow = store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fire_detections'")
    if narrow:
        return ("(SELECT cell, acq_time, key, incident_key, outcome = 0 AS dispatched,"
                " outcome IN (1, 2, 3) AS filtered, outcome <> 4 AS in_region FROM fire_detections)")
    return ("(SELECT cell, acq_time, key, incident_key, dispatch = 'dispatched' AS dispatched,"
            " dispatch = 'not_dispatched' AS filtered, in_region FROM fire_points)")


def latest_fire_day(store: Store, timezone: str = TIMEZONE) -> dt.date | None:
    """The local day of the latest dispatched detection, or None."""
    latest = store.scalar(f"SELECT max(acq_time) FROM {fires_source(store)} f WHERE dispatched")
    return None if latest is None else pd.Timestamp(latest).tz_localize("UTC").tz_convert(timezone).date()


# -- the metrics engine -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One output column of a metric: its name, label (an English msgid) and kind.

    ``kind`` is ``count`` (whole number, 0 when absent), ``rate`` (0–1), ``hours``, ``area`` (km²),
    ``density`` (per 100 km²), ``flag`` (bool) or ``text``; only ``count`` columns default to 0.
    """

    name: str
    label: str
    kind: str = "count"


@dataclass(frozen=True)
class Metric:
    """A metric: its function, its columns and the metrics it needs computed first."""

    name: str
    compute: Callable[["Context", pd.DataFrame], pd.DataFrame | None]
    columns: tuple[Column, ...]
    needs: tuple[str, ...] = ()


@dataclass
class Context:
    """What every metric function gets: the store, the period, the level and scope of the units."""

    store: Store
    period: ReportPeriod
    level: str
    scope_code: str
    scope_level: str
    now: dt.datetime
    rules: ReportRules
    cropland: Mapping[str, float] = field(default_factory=dict)
    _fires: str | None = field(default=None, repr=False)

    @property
    def bounds(self) -> list[dt.datetime]:
        """``[first, after)`` in naive UTC."""
        return list(self.period.utc_bounds())

    def scope_cte(self) -> tuple[str, list[Any]]:
        """``sc AS (SELECT cell, unit_code …)``: the scope's cells with their unit at the report level."""
        unit = "lower(to_hex(c.cell))" if self.level == "cell" else f"c.{self.level}_code"
        if self.scope_level == "province":
            where, params = "TRUE", []
        else:
            where, params = f"c.{self.scope_level}_code = ?", [self.scope_code]
        return (f"sc AS (SELECT c.cell, {unit} AS unit_code FROM cells c WHERE {where} AND {unit} IS NOT NULL)",
                params)

    def fires(self) -> str:
        """A subquery of the stored detections with ``cell, acq_time, key, incident_key`` and the flags
        ``dispatched``, ``filtered`` (kept but not dispatched) and ``in_region``.

        Reads the narrow ``fire_detections`` table when the schema has it (the ``fire_points`` view over it
        joins every row to its cell's owners, which the reports take from ``sc`` instead), else ``fire_points``.
        """
        if self._fires is None:
            self._fires = fires_source(self.store)
        return self._fires

    def incidents(self) -> str:
        """The stored incidents with ``key, cell, acq_time``: the ``fire_incidents`` table behind the
        ``incidents`` view when the schema has it, else ``incidents``."""
        narrow = self.store.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'fire_incidents'")
        return "fire_incidents" if narrow else "incidents"

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run ``WITH sc AS (…) <sql>`` with the scope's parameters first."""
        cte, scope = self.scope_cte()
        return self.store.query_df(f"WITH {cte} {sql}", [*scope, *(params or [])])

    def local_day_sql(self, column: str) -> str:
        """SQL of the local calendar date of a UTC timestamp column."""
        minutes = int(round(self.period.utc_offset_hours() * 60))
        return f"CAST({column} + INTERVAL '{minutes} minutes' AS DATE)"


def _cells(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    first, after = ctx.bounds
    return ctx.query(
        ", seen AS (SELECT DISTINCT t.cell FROM task_events e JOIN tasks t ON t.id = e.task_id"
        "   WHERE e.to_state = 'reported' AND e.happened_at >= ? AND e.happened_at < ?)"
        " SELECT sc.unit_code, count(*) AS cells,"
        " count(*) FILTER (WHERE sc.cell NOT IN (SELECT cell FROM seen)) AS cells_not_visited"
        " FROM sc GROUP BY 1", [first, after])


def _fire_points(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    # counted per cell first (a few thousand groups), then joined to the scope: no join over every detection
    return ctx.query(
        ", per_cell AS (SELECT cell, count(*) FILTER (WHERE dispatched) AS d, count(*) FILTER (WHERE filtered) AS n"
        f"   FROM {ctx.fires()} f WHERE acq_time >= ? AND acq_time < ? AND in_region GROUP BY cell)"
        " SELECT sc.unit_code, sum(p.d) AS fire_points, sum(p.n) AS filtered_points"
        " FROM per_cell p JOIN sc ON sc.cell = p.cell GROUP BY 1", ctx.bounds)


def _incidents(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    return ctx.query(f"SELECT sc.unit_code, count(*) AS incidents FROM {ctx.incidents()} i"
                     " JOIN sc ON sc.cell = i.cell WHERE i.acq_time >= ? AND i.acq_time < ? GROUP BY 1", ctx.bounds)


_FIRE_TASKS = (
    ", fi AS (SELECT i.key, sc.unit_code, i.acq_time FROM {incidents} i JOIN sc ON sc.cell = i.cell"
    "   WHERE i.acq_time >= ? AND i.acq_time < ?),"
    " ft AS (SELECT t.id, t.state, fi.unit_code, fi.acq_time FROM fi JOIN (SELECT id, state, source_key"
    "   FROM tasks WHERE kind = 'fire_check' AND source_kind = 'incident') t"
    "   ON t.source_key = CAST(fi.key AS VARCHAR)),"  # the incident's key as text (dispatch.open_tasks)
    " ev AS (SELECT e.task_id,"
    "   min(e.happened_at) FILTER (WHERE e.to_state = 'in_progress') AS arrived,"
    "   min(e.happened_at) FILTER (WHERE e.to_state = 'reported') AS reported,"
    # the latest report that names a finding, read back by its id below (as fast as DuckDB's arg_max, which
    # PostgreSQL lacks; ->> in parentheses: DuckDB gives it a lower precedence than IS and AND)
    "   max(e.id) FILTER (WHERE e.to_state = 'reported' AND (CAST(e.detail AS JSON) ->> 'finding') IS NOT NULL)"
    "   AS report_id"
    "   FROM task_events e JOIN ft ON ft.id = e.task_id WHERE e.to_state IN ('in_progress', 'reported')"
    "   AND e.task_id BETWEEN (SELECT min(id) FROM ft) AND (SELECT max(id) FROM ft) GROUP BY 1),"
    " fx AS (SELECT ft.unit_code,"
    "   CASE WHEN ft.state IN ('reported', 'verified', 'closed') THEN (CAST(r.detail AS JSON) ->> 'finding') END"
    "   AS finding, extract(epoch FROM ev.arrived - ft.acq_time) / 3600.0 AS arrival_h,"
    "   extract(epoch FROM ev.reported - ft.acq_time) / 3600.0 AS report_h"
    "   FROM ft LEFT JOIN ev ON ev.task_id = ft.id LEFT JOIN task_events r ON r.id = ev.report_id)"
)


def _fire_checks(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    confirmed = ", ".join(f"'{f}'" for f in CONFIRMED)
    false = ", ".join(f"'{f}'" for f in FALSE_ALARMS)
    return ctx.query(
        _FIRE_TASKS.format(incidents=ctx.incidents()) +
        " SELECT unit_code, count(*) AS dispatched,"
        f" count(*) FILTER (WHERE finding IN ({confirmed})) AS confirmed,"
        f" count(*) FILTER (WHERE finding IN ({false})) AS false_alarms,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY arrival_h) AS arrival_median_h,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY arrival_h) AS arrival_p90_h,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY report_h) AS report_median_h,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY report_h) AS report_p90_h"
        " FROM fx GROUP BY 1", ctx.bounds)


def _confirmation_rate(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    dispatched = frame.dispatched.astype(float)
    rate = np.where(dispatched > 0, frame.confirmed / dispatched.where(dispatched > 0, 1), np.nan)
    return pd.DataFrame({"unit_code": frame.unit_code, "confirmation_rate": rate})


def _area(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Geodesic area of the unit's boundary; the area of its cells when it has none (cells, villages without)."""
    if ctx.level == "cell":
        area = pd.Series(dtype=float)
    else:
        area = ctx.query("SELECT u.code AS unit_code, u.area_km2 FROM units u"
                         " WHERE u.code IN (SELECT unit_code FROM sc) AND u.area_km2 IS NOT NULL"
                         ).set_index("unit_code").area_km2
    missing = frame.unit_code[~frame.unit_code.isin(area.index)]
    if len(missing):
        cells = ctx.query("SELECT sc.unit_code, sc.cell FROM sc")
        cells = cells[cells.unit_code.isin(missing)]
        sizes = np.asarray(cells_area_km2(pa.array(cells.cell.to_numpy(dtype=np.int64).view(np.uint64))))
        area = pd.concat([area, pd.Series(sizes).groupby(cells.unit_code.to_numpy()).sum()])
    out = frame[["unit_code"]].assign(area_km2=frame.unit_code.map(area).to_numpy(dtype=float))
    out["fires_per_100km2"] = frame.fire_points / out.area_km2 * 100
    return out


def _cropland(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame | None:
    if not ctx.cropland:
        return None
    land = frame.unit_code.map({k: float(v) for k, v in ctx.cropland.items()}).astype(float)
    return pd.DataFrame({"unit_code": frame.unit_code, "cropland_km2": land,
                         "fires_per_100km2_cropland": frame.fire_points / land.where(land > 0) * 100})


def _overdue(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    first, after = ctx.bounds
    due_end = min(after, ctx.now)
    return ctx.query(
        ", esc AS (SELECT DISTINCT task_id FROM task_events WHERE to_state = 'escalated'"
        "   AND happened_at >= ? AND happened_at < ?),"
        " due AS (SELECT t.id FROM tasks t WHERE t.due_at >= ? AND t.due_at < ?"
        "   AND NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id AND e.to_state = 'reported'"
        "   AND e.happened_at <= t.due_at)),"
        " late AS (SELECT t.id, t.cell, t.id IN (SELECT task_id FROM esc) AS escalated FROM tasks t"
        "   WHERE t.id IN (SELECT task_id FROM esc) OR t.id IN (SELECT id FROM due))"
        " SELECT sc.unit_code, count(*) AS tasks_overdue, count(*) FILTER (WHERE late.escalated) AS tasks_escalated"
        " FROM late JOIN sc ON sc.cell = late.cell GROUP BY 1", [first, after, first, due_end])


def _coverage(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    gaps = ctx.query(
        ", insp AS (SELECT unit_code, cell FROM assignments WHERE role = 'inspector'),"
        " iu AS (SELECT DISTINCT unit_code FROM insp WHERE unit_code IS NOT NULL),"
        " ic AS (SELECT DISTINCT cell FROM insp WHERE cell IS NOT NULL)"
        " SELECT sc.unit_code, count(*) FILTER (WHERE NOT (c.cell IN (SELECT cell FROM ic)"
        "   OR c.village_code IN (SELECT unit_code FROM iu) OR c.township_code IN (SELECT unit_code FROM iu)"
        "   OR c.county_code IN (SELECT unit_code FROM iu) OR c.city_code IN (SELECT unit_code FROM iu)))"
        "   AS cells_without_inspector FROM sc JOIN cells c ON c.cell = sc.cell GROUP BY 1")
    below = [lv for lv in ("county", "township", "village") if _LEVEL_ORDER.index(lv) >= _LEVEL_ORDER.index(ctx.level)]
    if not below:
        return gaps
    units = " UNION ".join(f"SELECT DISTINCT sc.unit_code, c.{lv}_code AS code FROM sc JOIN cells c ON c.cell ="
                           f" sc.cell WHERE c.{lv}_code IS NOT NULL" for lv in below)
    leaderless = ctx.query(
        f", below AS ({units}) SELECT unit_code, count(*) AS units_without_grid_leader FROM below"
        " WHERE code NOT IN (SELECT unit_code FROM assignments WHERE role = 'grid_leader' AND unit_code IS NOT NULL)"
        " GROUP BY 1")
    return gaps.merge(leaderless, on="unit_code", how="outer")


def _boilers(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Coal boilers and small coal CHP units still to close inside heat-supply radii (the inventory in force)."""
    return ctx.query(
        " SELECT sc.unit_code, count(b.boiler_id) AS boilers_in_radius FROM sc JOIN boilers b ON b.cell = sc.cell"
        " WHERE b.active AND b.listed AND b.in_radius AND b.status = 'to_close' GROUP BY 1")


def _bare_land(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Registered bare land not yet greened (bare or covered) now, and the area greened within the period."""
    first, after = ctx.bounds
    found = ctx.query(
        ", greened AS (SELECT DISTINCT h.patch_id FROM bare_patch_history h WHERE h.to_status = 'greened'"
        "   AND h.changed_at >= ? AND h.changed_at < ?)"
        " SELECT sc.unit_code,"
        "  sum(p.bare_m2) FILTER (WHERE p.status IN ('bare', 'covered')) / 1e6 AS bare_km2_remaining,"
        "  sum(p.bare_m2) FILTER (WHERE p.id IN (SELECT patch_id FROM greened)) / 1e6 AS bare_km2_greened"
        " FROM sc JOIN bare_patches p ON p.cell = sc.cell GROUP BY 1", [first, after])
    columns = ["bare_km2_remaining", "bare_km2_greened"]
    out = frame[["unit_code"]].merge(found, on="unit_code", how="left")
    out[columns] = out[columns].astype(float).fillna(0.0)  # no registered bare land is 0 km², not unknown
    return out


def _days_not_observed(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    today = (ctx.now + dt.timedelta(hours=ctx.period.utc_offset_hours())).date()
    last = min(ctx.period.end, today)
    days = max((last - ctx.period.start).days + 1, 0)
    first, after = ctx.bounds
    observed = ctx.store.scalar(
        f"SELECT count(DISTINCT {ctx.local_day_sql('acq_time')}) FROM observations"
        f" WHERE acq_time >= ? AND acq_time < ? AND {ctx.local_day_sql('acq_time')} <= ?", [first, after, last])
    return frame[["unit_code"]].assign(days_not_observed=days - int(observed or 0))


def _season_bounds(ctx: Context) -> list[tuple[dt.datetime, dt.datetime]]:
    """UTC bounds of each harvest season overlapping the period."""
    from gridwatch.periods import season

    found = set()
    for key in ctx.rules.seasons or ():
        for day_ in (ctx.period.start, ctx.period.end):
            s = season(day_, (key,), ctx.period.timezone)
            if s.start <= ctx.period.end and s.end >= ctx.period.start:
                found.add((s.start, s.end))
    return [ReportPeriod("custom", a, b, ctx.period.timezone).utc_bounds() for a, b in sorted(found)]


def _first_fire(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame | None:
    first, after = ctx.bounds
    rows = []
    for s_first, s_after in _season_bounds(ctx):
        hit = ctx.query(
            f", first AS (SELECT f.cell, f.acq_time FROM {ctx.fires()} f WHERE f.dispatched AND f.acq_time >= ?"
            "   AND f.acq_time < ? AND f.cell IN (SELECT cell FROM sc) ORDER BY f.acq_time, f.key LIMIT 1)"
            " SELECT sc.unit_code, first.acq_time FROM first JOIN sc ON sc.cell = first.cell", [s_first, s_after])
        if len(hit) and first <= hit.acq_time.iloc[0] < after:
            local = pd.Timestamp(hit.acq_time.iloc[0]).tz_localize("UTC").tz_convert(ctx.period.timezone)
            rows.append({"unit_code": hit.unit_code.iloc[0], "first_fire": True,
                         "first_fire_at": local.strftime("%Y-%m-%d %H:%M")})
    out = pd.DataFrame(rows, columns=["unit_code", "first_fire", "first_fire_at"]).drop_duplicates("unit_code")
    return frame[["unit_code"]].merge(out, on="unit_code", how="left").assign(
        first_fire=lambda d: d.first_fire.eq(True))


#: the metrics of every report, in order (a metric may use the columns of those before it)
METRICS: tuple[Metric, ...] = (
    Metric("cells", _cells, (Column("cells", N_("Cells")), Column("cells_not_visited", N_("Cells not visited")))),
    Metric("fire_points", _fire_points, (Column("fire_points", N_("Satellite fire points")),
                                         Column("filtered_points", N_("Detections filtered out")))),
    Metric("incidents", _incidents, (Column("incidents", N_("Fire incidents")),)),
    Metric("fire_checks", _fire_checks, (
        Column("dispatched", N_("Fire checks dispatched")), Column("confirmed", N_("Confirmed fires")),
        Column("false_alarms", N_("False alarms")),
        Column("arrival_median_h", N_("Hours to arrival (median)"), "hours"),
        Column("arrival_p90_h", N_("Hours to arrival (P90)"), "hours"),
        Column("report_median_h", N_("Hours to report (median)"), "hours"),
        Column("report_p90_h", N_("Hours to report (P90)"), "hours"))),
    Metric("confirmation_rate", _confirmation_rate,
           (Column("confirmation_rate", N_("Confirmation rate"), "rate"),), needs=("fire_checks",)),
    Metric("area", _area, (Column("area_km2", N_("Area (km²)"), "area"),
                           Column("fires_per_100km2", N_("Fire points per 100 km²"), "density")),
           needs=("fire_points",)),
    Metric("cropland", _cropland, (Column("cropland_km2", N_("Cropland (km²)"), "area"),
                                   Column("fires_per_100km2_cropland", N_("Fire points per 100 km² of cropland"),
                                          "density")), needs=("fire_points",)),
    Metric("overdue", _overdue, (Column("tasks_overdue", N_("Tasks overdue")),
                                 Column("tasks_escalated", N_("Tasks escalated")))),
    Metric("coverage", _coverage, (Column("cells_without_inspector", N_("Cells without an inspector")),
                                   Column("units_without_grid_leader", N_("Units without a grid leader")))),
    Metric("boilers", _boilers, (Column("boilers_in_radius", N_("Boilers still inside heat-supply radii")),)),
    Metric("bare_land", _bare_land, (Column("bare_km2_remaining", N_("Bare land not yet greened (km²)"), "area"),
                                     Column("bare_km2_greened", N_("Bare land greened in the period (km²)"), "area"))),
    Metric("days_not_observed", _days_not_observed, (Column("days_not_observed", N_("Days not observed")),)),
    Metric("first_fire", _first_fire, (Column("first_fire", N_("First fire of the season (第一把火)"), "flag"),
                                       Column("first_fire_at", N_("Time of the first fire"), "text"))),
    # the closed loop and complaints (gridwatch.loopreport gives the definitions)
    Metric("problems", loopreport.loop_counts, (
        Column("problems_found", N_("Problems found")), Column("problems_closed", N_("Problems closed (销号)")),
        Column("loop_due", N_("Problems due (deadline reached or closed)")),
        Column("loop_on_time", N_("Problems closed by their deadline")),
        Column("problems_no_deadline", N_("Problems without a deadline (not in the closure rate)")),
        Column("problem_repeats", N_("Repeat problems (屡查屡犯)")))),
    Metric("closure_rate", loopreport.closure_rate, (
        Column("closure_rate", N_("Closure rate (闭环率)"), "rate"),
        Column("problems_overdue", N_("Problems overdue"))), needs=("problems",)),
    Metric("complaints", loopreport.complaint_counts, (
        Column("complaints", N_("Hotline complaints")), Column("complaints_answered", N_("Complaints answered")))),
)

_BASE_LABELS = {"unit_code": N_("Unit code"), "unit_name": N_("Unit"), "parent_name": N_("Part of"),
                "rank": N_("Rank"), "rank_change": N_("Rank change"), "score": N_("Score"),
                "status": N_("Suggested measure (建议, local setting)"), "deduction_yuan": N_("Deduction (yuan)"),
                "affected": N_("People concerned")}


def column_labels(language: str = "zh_CN") -> dict[str, str]:
    """Every report column's label in ``language``."""
    labels = {**_BASE_LABELS, **{c.name: c.label for m in METRICS for c in m.columns}}
    return {name: gettext(label, language) for name, label in labels.items()}


def _wanted(only: set[str] | None) -> list[Metric]:
    if only is None:
        return list(METRICS)
    by_name = {m.name: m for m in METRICS}
    keep = {m.name for m in METRICS if {c.name for c in m.columns} & only}
    frontier = set(keep)
    while frontier:
        frontier = {n for m in frontier for n in by_name[m].needs} - keep
        keep |= frontier
    return [m for m in METRICS if m.name in keep]


def compute_metrics(ctx: Context, units: pd.DataFrame, *, only: set[str] | None = None) -> pd.DataFrame:
    """One row per unit of ``units`` (``unit_code`` first) with the columns of every metric (or of ``only``)."""
    frame = units.copy()
    for metric in _wanted(only):
        part = metric.compute(ctx, frame)
        if part is None:
            continue
        names = [c.name for c in metric.columns if c.name in part.columns]
        frame = frame.merge(part[["unit_code", *names]], on="unit_code", how="left")
        for column in metric.columns:
            if column.name in frame and column.kind == "count":
                frame[column.name] = frame[column.name].fillna(0).astype("int64")
    return frame


# -- reports ------------------------------------------------------------------------------------------------


def scope_level(store: Store, code: str) -> str:
    """The level of a scope unit (``NotFound`` for an unknown code)."""
    level = store.scalar("SELECT level FROM units WHERE code = ?", [code])
    if level is None:
        raise NotFound("No administrative unit with code {code}.", code=code)
    return str(level)


def _units(ctx: Context) -> pd.DataFrame:
    if ctx.level == "cell":
        return ctx.query("SELECT DISTINCT sc.unit_code, sc.unit_code AS unit_name, v.name AS parent_name"
                         " FROM sc JOIN cells c ON c.cell = sc.cell LEFT JOIN units v ON v.code = c.village_code"
                         " ORDER BY 1")
    return ctx.query("SELECT u.code AS unit_code, u.name AS unit_name, p.name AS parent_name FROM units u"
                     " LEFT JOIN units p ON p.code = u.parent_code"
                     " WHERE u.code IN (SELECT unit_code FROM sc) ORDER BY 1")


def _ranked(frame: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    score = sum(frame[name].astype(float).fillna(0) * w for name, w in weights.items())
    frame = frame.assign(score=np.round(np.asarray(score, dtype=float), 6))
    frame["rank"] = frame.score.rank(method="min").astype("int64")
    return frame


def _affected(ctx: Context, codes: list[str], language: str) -> dict[str, list[dict[str, str]]]:
    if not codes:
        return {}
    label = "label_zh" if language != "en" else "label_en"
    marks = ", ".join("?" * len(codes))
    roles = ", ".join(f"'{r}'" for r in AFFECTED_ROLES)
    rows = ctx.store.query(
        f"SELECT COALESCE(a.unit_code, lower(to_hex(a.cell))) AS unit_code, p.person_key, p.name, p.phone, a.role,"
        f" r.{label} AS role_label FROM assignments a JOIN people p ON p.id = a.person_id"
        f" JOIN roles r ON r.name = a.role WHERE a.role IN ({roles})"
        f" AND COALESCE(a.unit_code, lower(to_hex(a.cell))) IN ({marks}) ORDER BY r.chain_order DESC, p.person_key",
        codes)
    out: dict[str, list[dict[str, str]]] = {}
    first = gettext(PERSON_ROLES["grid_leader"], language)  # 网格长为第一责任人
    for r in rows:
        if r["role"] == "grid_leader":
            r["role_label"] = first
        out.setdefault(r.pop("unit_code"), []).append(r)
    return out


def _statuses(ctx: Context, frame: pd.DataFrame, language: str) -> pd.DataFrame:
    rules = ctx.rules
    value = frame[rules.threshold_metric].astype(float).fillna(0).to_numpy()
    status = np.full(len(frame), "", dtype=object)
    for name, threshold in rules.thresholds.items():  # mildest first: the highest reached wins
        status[value >= threshold] = name
    frame = frame.assign(status=status, deduction_yuan=np.round(frame.fire_points.to_numpy() * rules.deduction_yuan, 2))
    people = _affected(ctx, list(frame.unit_code[status != ""]), language)
    frame["affected_people"] = [people.get(code, []) if s else [] for code, s in zip(frame.unit_code, status)]
    frame["affected"] = ["、".join(f"{p['name']}（{p['role_label']}）" for p in found)
                         for found in frame.affected_people]
    return frame


@dataclass
class Report:
    """A computed report: the period, the rule, one row per unit, and the series behind the charts."""

    period: ReportPeriod
    previous: ReportPeriod
    level: str
    scope_code: str
    scope_name: str
    rules: ReportRules
    rows: pd.DataFrame
    daily: pd.DataFrame
    generated_at: dt.datetime
    language: str = "zh_CN"
    demo: bool = False

    @property
    def metric_columns(self) -> list[str]:
        """The metric columns present, in table order."""
        return [c.name for m in METRICS for c in m.columns if c.name in self.rows]

    def table_columns(self) -> list[str]:
        """The columns of the ranking table, in order."""
        return ["rank", "rank_change", "unit_code", "unit_name", "parent_name", "score", *self.metric_columns,
                "status", "deduction_yuan", "affected"]

    def totals(self) -> dict[str, Any]:
        """Sums over the units of the count columns, and the overall confirmation and closure (闭环率) rates."""
        out = {c: int(self.rows[c].sum()) for c in ("fire_points", "incidents", "dispatched", "confirmed",
                                                     "false_alarms", "tasks_overdue", "tasks_escalated")
               if c in self.rows}
        if "dispatched" in out:
            out["confirmation_rate"] = (out["confirmed"] / out["dispatched"]) if out["dispatched"] else None
        out |= {c: int(self.rows[c].sum()) for c in ("problems_found", "problems_closed", "loop_due", "loop_on_time",
                                                      "problems_overdue", "problems_no_deadline", "problem_repeats",
                                                      "complaints", "complaints_answered") if c in self.rows}
        if "loop_due" in out:
            out["closure_rate"] = (out["loop_on_time"] / out["loop_due"]) if out["loop_due"] else None
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: period, previous period, level, scope, rule, thresholds, totals, rows, daily series."""
        rows = self.rows[[*self.table_columns(), "affected_people"]].drop(columns=["affected"])
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        for r in records:
            for k, v in r.items():
                if isinstance(v, (np.integer,)):
                    r[k] = int(v)
                elif isinstance(v, (float, np.floating)):
                    r[k] = round(float(v), 4)
        daily = self.daily.assign(day=self.daily.day.astype(str)).to_dict("records")
        return {
            "period": self.period.to_dict(self.language),
            "previous_period": self.previous.to_dict(self.language),
            "report": self.period.kind_label(self.language),
            "level": self.level,
            "unit": {"code": self.scope_code, "name": self.scope_name},
            "rule": self.rules.rule_text(self.language),
            "weights": dict(self.rules.weights),
            "thresholds": {"metric": self.rules.threshold_metric, **dict(self.rules.thresholds),
                           "deduction_yuan_per_point": self.rules.deduction_yuan,
                           "text": self.rules.threshold_text(self.language)},
            "generated_at": self.generated_at.replace(microsecond=0).isoformat() + "Z",
            "demo": self.demo,
            "totals": self.totals(),
            "rows": records,
            "daily": [{k: (int(v) if isinstance(v, np.integer) else v) for k, v in d.items()} for d in daily],
        }


def _context(store: Store, period: ReportPeriod, *, level: str, unit: str, rules: ReportRules,
             now: dt.datetime | None, cropland: Mapping[str, float] | None) -> Context:
    if level not in REPORT_LEVELS:
        raise ValidationError("Reports rank units of level {levels}, not {level}.", levels=", ".join(REPORT_LEVELS),
                              level=level)
    scope = scope_level(store, unit)
    if _LEVEL_ORDER.index(level) < _LEVEL_ORDER.index(scope) or (level == scope and level == "cell"):
        raise ValidationError("A report on {unit} (a {scope}) cannot rank units of the level above it ({level}).",
                              unit=unit, scope=scope, level=level)
    now = (now or dt.datetime.now(dt.UTC))
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    return Context(store=store, period=period, level=level, scope_code=unit, scope_level=scope, now=now,
                   rules=rules, cropland=dict(cropland or {}))


def daily_series(ctx: Context) -> pd.DataFrame:
    """Per local day of the period in the scope: ``day, fire_points, incidents``."""
    day = ctx.local_day_sql("acq_time")
    points = ctx.query(
        f", per_cell AS (SELECT cell, {day} AS day, count(*) AS n FROM {ctx.fires()} f WHERE dispatched"
        "   AND acq_time >= ? AND acq_time < ? GROUP BY 1, 2),"
        f" inc AS (SELECT cell, {day} AS day, count(*) AS n FROM {ctx.incidents()} WHERE acq_time >= ?"
        "   AND acq_time < ?"
        "   GROUP BY 1, 2),"
        " p AS (SELECT day, sum(n) AS fire_points FROM per_cell JOIN sc ON sc.cell = per_cell.cell GROUP BY 1),"
        " q AS (SELECT day, sum(n) AS incidents FROM inc JOIN sc ON sc.cell = inc.cell GROUP BY 1)"
        " SELECT COALESCE(p.day, q.day) AS day, COALESCE(p.fire_points, 0) AS fire_points,"
        " COALESCE(q.incidents, 0) AS incidents FROM p FULL OUTER JOIN q ON p.day = q.day", ctx.bounds * 2)
    days = pd.DataFrame({"day": pd.date_range(ctx.period.start, ctx.period.end, freq="D").date})
    if len(points):
        points["day"] = pd.to_datetime(points.day).dt.date
    out = days.merge(points, on="day", how="left").fillna({"fire_points": 0, "incidents": 0})
    return out.astype({"fire_points": "int64", "incidents": "int64"})


def response_times(store: Store, period: ReportPeriod, *, level: str, unit: str, rules: ReportRules | None = None,
                   now: dt.datetime | None = None) -> pd.DataFrame:
    """Per fire check of the period's incidents: ``unit_code, finding, arrival_h, report_h`` (for the charts)."""
    ctx = _context(store, period, level=level, unit=unit, rules=rules or ReportRules(), now=now, cropland=None)
    return ctx.query(_FIRE_TASKS.format(incidents=ctx.incidents())
                     + " SELECT unit_code, finding, arrival_h, report_h FROM fx ORDER BY 1",
                     ctx.bounds)


def response_histogram(store: Store, period: ReportPeriod, *, level: str, unit: str,
                       rules: ReportRules | None = None, now: dt.datetime | None = None,
                       width_h: float = 1.0) -> pd.DataFrame:
    """Fire checks of the period's incidents per bin of hours: ``step`` (arrival, report), ``hours`` (bin start),
    ``tasks`` — the response-time distribution, binned in SQL."""
    ctx = _context(store, period, level=level, unit=unit, rules=rules or ReportRules(), now=now, cropland=None)
    width = float(width_h)
    return ctx.query(
        _FIRE_TASKS.format(incidents=ctx.incidents())
        + f" SELECT 'arrival' AS step, floor(arrival_h / {width}) * {width} AS hours, count(*) AS tasks FROM fx"
        " WHERE arrival_h IS NOT NULL GROUP BY 2"
        f" UNION ALL SELECT 'report', floor(report_h / {width}) * {width}, count(*) FROM fx"
        " WHERE report_h IS NOT NULL GROUP BY 2 ORDER BY 1, 2", ctx.bounds)


def build_report(store: Store, period: ReportPeriod, *, level: str = "township", unit: str,
                 rules: ReportRules | None = None, now: dt.datetime | None = None,
                 cropland: Mapping[str, float] | None = None, language: str = "zh_CN") -> Report:
    """Compute a report: every metric per unit of ``level`` inside ``unit``, ranked, with rank change and status.

    Parameters
    ----------
    store : Store
        The database.
    period : ReportPeriod
        The period; its previous period gives the rank change.
    level : str
        ``county``, ``township``, ``village`` or ``cell`` (the grid).
    unit : str
        The scope: the unit whose units of ``level`` are ranked.
    rules : ReportRules, optional
        Weights, thresholds, deduction and seasons (defaults from :class:`ReportRules`).
    now : datetime, optional
        The moment of the report (UTC); tasks due after it are not yet overdue.
    cropland : mapping, optional
        Cropland area (km²) per unit code, for fire points per cropland area.
    language : str
        Of labels, the rule and the people's role names.

    Returns
    -------
    Report
        ``rows`` sorted by rank then code; ``rank_change`` = previous rank − rank (positive: moved up),
        None for a unit not ranked before.
    """
    rules = rules or ReportRules()
    ctx = _context(store, period, level=level, unit=unit, rules=rules, now=now, cropland=cropland)
    units = _units(ctx)
    frame = _ranked(compute_metrics(ctx, units), rules.weights)
    before_ctx = _context(store, period.previous(), level=level, unit=unit, rules=rules, now=now, cropland=cropland)
    before = _ranked(compute_metrics(before_ctx, units[["unit_code"]], only=set(rules.weights)), rules.weights)
    frame = frame.merge(before[["unit_code", "rank"]].rename(columns={"rank": "previous_rank"}), on="unit_code",
                        how="left")
    frame["rank_change"] = (frame.previous_rank - frame["rank"]).astype("Int64")
    frame = _statuses(ctx, frame, language)
    frame = frame.sort_values(["rank", "unit_code"]).reset_index(drop=True)
    name = store.scalar("SELECT name FROM units WHERE code = ?", [unit]) or unit
    demo = bool(store.scalar("SELECT count(*) > 0 FROM units WHERE is_demo AND code LIKE ? || '%'", [unit]))
    return Report(period=period, previous=period.previous(), level=level, scope_code=unit, scope_name=name,
                  rules=rules, rows=frame, daily=daily_series(ctx), generated_at=ctx.now, language=language,
                  demo=demo)


def unit_metrics(store: Store, period: ReportPeriod, *, unit: str, only: set[str],
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """The metrics ``only`` (and those they need) of one unit over the period, as one mapping (a dossier's figures)."""
    level = scope_level(store, unit)
    level = level if level in REPORT_LEVELS else "county"
    ctx = _context(store, period, level=level, unit=unit, rules=ReportRules(), now=now, cropland=None)
    frame = compute_metrics(ctx, pd.DataFrame({"unit_code": [unit]}), only=only)
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def load_cropland(text: str) -> dict[str, float]:
    """Cropland areas from CSV text with columns ``unit_code, cropland_km2`` (checked, all or nothing)."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or not {"unit_code", "cropland_km2"} <= {f.strip() for f in reader.fieldnames}:
        raise ValidationError("A cropland CSV needs the columns unit_code and cropland_km2 (found {found}).",
                              found=", ".join(reader.fieldnames or []) or "—")
    out = {}
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            value = float(row["cropland_km2"])
        except ValueError as exc:
            raise ValidationError("Line {line}: cropland_km2 {value!r} is not a number.", line=line,
                                  value=row["cropland_km2"]) from exc
        if value < 0 or not row["unit_code"]:
            raise ValidationError("Line {line}: a unit code and a cropland area ≥ 0 are needed.", line=line)
        out[row["unit_code"]] = value
    return out


def cropland_json(values: Mapping[str, float]) -> str:
    """The stored form of cropland areas (``meta`` key ``report.cropland_km2``)."""
    return json.dumps(dict(sorted(values.items())), ensure_ascii=False)


def dossier_events(store: Store, *, unit: str, period: ReportPeriod | None = None,
                   kinds: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The full event history of the tasks on a unit's cells (a dossier), oldest task first.

    Parameters
    ----------
    unit : str
        A unit code (any level), or an H3 cell id for one grid cell.
    period : ReportPeriod, optional
        Only tasks with at least one event in the period (all their events are listed).
    kinds : tuple of str, optional
        Only these task kinds (default: every kind).

    Returns
    -------
    pandas.DataFrame
        ``task_id, kind, title, cell, village, happened_at`` (local time text), ``from_state, to_state, actor,
        finding, note, flags, assignee``.
    """
    level = store.scalar("SELECT level FROM units WHERE code = ?", [unit])
    if level is None:
        where, params = "lower(to_hex(c.cell)) = ?", [unit.lower()]
    elif level == "province":
        where, params = "TRUE", []
    else:
        where, params = f"c.{level}_code = ?", [unit]
    if kinds:
        where += f" AND t.kind IN ({', '.join('?' * len(kinds))})"
        params += list(kinds)
    minutes = 480  # Beijing, when no period gives the zone
    if period is not None:
        first, after = period.utc_bounds()
        minutes = int(round(period.utc_offset_hours() * 60))
        where += (" AND t.id IN (SELECT task_id FROM task_events WHERE happened_at >= ? AND happened_at < ?)")
        params += [first, after]
    frame = store.query_df(
        "SELECT t.id AS task_id, t.kind, t.title, t.title_key, t.title_args, lower(to_hex(t.cell)) AS cell,"
        " v.name AS village,"
        " e.happened_at, e.from_state, e.to_state, e.actor, (CAST(e.detail AS JSON) ->> 'finding') AS finding,"
        " (CAST(e.detail AS JSON) ->> 'note') AS note, CAST((CAST(e.detail AS JSON) -> 'flags') AS VARCHAR) AS flags,"
        " p.name AS assignee FROM tasks t JOIN cells c ON c.cell = t.cell"
        " JOIN task_events e ON e.task_id = t.id LEFT JOIN units v ON v.code = c.village_code"
        f" LEFT JOIN people p ON p.id = t.assignee_id WHERE {where} ORDER BY t.id, e.id", params)
    # local time as text and the flags joined by ", ", made here the same way on every backend
    local = pd.to_datetime(frame.happened_at) + pd.Timedelta(minutes=minutes)
    frame["happened_at"] = local.dt.strftime("%Y-%m-%d %H:%M").astype("str")
    frame["flags"] = pd.Series([None if text is None or pd.isna(text) else _joined(text) for text in frame["flags"]],
                               index=frame.index, dtype="str")
    for column in ("finding", "note"):
        frame[column] = frame[column].astype("str")
    return frame


def _joined(text: str) -> str:
    """A JSON list of flags as ``a, b`` (any other JSON value as it is written)."""
    value = json.loads(text)
    return ", ".join(map(str, value)) if isinstance(value, list) else text
