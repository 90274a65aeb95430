"""The rules in force, built once from the settings: Beijing calendar time, dispatch, service-level hours.

Every module that applies a rule takes it from a :class:`Policy` handed to it, rather than building its own
defaults: the policy is made once where settings are read (the command line, the app, a job) and passed in.
This is also the only module that names the time zone: the plans count days, weeks, 旬 and months in Beijing
time, so every local date in gridwatch is a Beijing date.

Examples
--------
>>> policy = Policy.from_settings(Settings.load(env={}, config_path=None))
>>> policy.timezone
'Asia/Shanghai'
>>> policy.local_date(dt.datetime(2026, 6, 30, 16, 0))  # 16:00 UTC is midnight in Beijing
datetime.date(2026, 7, 1)
>>> policy.sla_hours("boiler_check")
168.0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.i18n import N_
from gridwatch.tasks import Kind, Priority

__all__ = ["TIMEZONE", "EARLIEST_DATA", "DEMO_DOCUMENT", "DEMO_KEY_PERIODS", "Period", "parse_key_periods",
           "DispatchPolicy", "Policy", "Rule", "rules_in_force", "PLAN_RULES", "LOCAL_RULES", "ESCALATION_LEVELS",
           "ESCALATION_ORDER", "ONE_LEADER_THREE_MEMBERS", "DEFAULT_REQUIRED_ROLES", "PROBLEM_CATEGORIES",
           "ProblemRules", "PLAN_DOCUMENT_DATES", "rule_since_of"]

#: Beijing time: the zone of every local date, period and deadline shown (the plans' calendar)
TIMEZONE = "Asia/Shanghai"
#: the first day of the satellite fire record (MODIS on Terra, FIRMS collection 6.1): no fire data is older
EARLIEST_DATA = dt.date(2000, 11, 1)
#: a report date after today, or before the satellite record: for the date and for the end date of a range
_FUTURE = {False: N_("The date {day} lies in the future (today is {today} in Beijing); choose a day up to today."),
           True: N_("The end date {day} lies in the future (today is {today} in Beijing); choose a day up to today.")}
_TOO_EARLY = {False: N_("The date {day} lies before {earliest}, when the satellite fire record begins (MODIS on "
                        "Terra); choose a later date."),
              True: N_("The end date {day} lies before {earliest}, when the satellite fire record begins (MODIS on "
                       "Terra); choose a later date.")}


#: the levels an overdue task climbs through, first to last, each with its own hours (HN-2017 §11: 市、县（区）、
#: 乡镇（街道）、村（社区）; the roles at each level are :data:`gridwatch.org.ESCALATION`)
ESCALATION_LEVELS = ("village", "township", "county", "city")
#: the escalation order as the 规则说明 lists it
ESCALATION_ORDER = ("巡查员 → 村网格长（村主要负责人知悉）→ 乡镇主要负责人（乡镇网格长知悉）"
                    "→ 县网格长（县主要负责人知悉）→ 市网格长（市主要负责人知悉）")
#: 一长三员: 网格长, 网格员, 巡查员, 监督员 (HN-2017 §11)
ONE_LEADER_THREE_MEMBERS = ("grid_leader", "grid_member", "inspector", "supervisor")
#: the roles a unit or cell may be required to hold: 一长三员 and the unit's 主要负责人
_REQUIRABLE_ROLES = (*ONE_LEADER_THREE_MEMBERS, "unit_head")
#: where roles may be required: units of a level, or every cell (held on the cell or a unit owning it)
_REQUIRABLE_LEVELS = ("province", "city", "county", "township", "village", "cell")
#: the coverage check when ``required_roles`` is unset: a grid leader on every unit, an inspector on every cell
DEFAULT_REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    **{level: ("grid_leader",) for level in _REQUIRABLE_LEVELS[:-1]}, "cell": ("inspector",)}


def _pairs(value: Any, setting: str) -> dict[str, Any]:
    """A mapping setting as a dict: a TOML table, or text ``name=value,name=value`` from the environment."""
    if isinstance(value, Mapping):
        return {str(k).strip(): v for k, v in value.items()}
    text = str(value or "").strip()
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, item = part.partition("=")
        if not sep or not name.strip():
            raise ValidationError("The setting {name} = {value!r} is not of the form name=value,name=value.",
                                  name=setting, value=text)
        out[name.strip()] = item.strip()
    return out


#: the date of each plan the rules cite (the document list of the policy excerpts); HN-2017's day is not given there
PLAN_DOCUMENT_DATES = {"HN-2017": "2017", "HN-2024": "2024-03-23", "XC-2024": "2024-07-30"}


def rule_since_of(value: Any, *, today: dt.date) -> dict[str, str]:
    """The day each local setting took effect (``rule_since``), checked: ISO dates, none after ``today``.

    Examples
    --------
    >>> rule_since_of("report_thresholds=2026-03-01", today=dt.date(2026, 12, 7))
    {'report_thresholds': '2026-03-01'}
    """
    out = {}
    for name, text in _pairs(value, "rule_since").items():
        try:
            day = dt.date.fromisoformat(str(text).strip())
        except ValueError as exc:
            raise ValidationError("rule_since: {name} = {value!r} is not a date (YYYY-MM-DD).", name=name,
                                  value=str(text)) from exc
        if day > today:
            raise ValidationError("rule_since: {name} takes effect on {day}, after today ({today}); enter the date "
                                  "its document took effect.", name=name, day=day.isoformat(),
                                  today=today.isoformat())
        out[name] = day.isoformat()
    return out


def _plan_since(clause: str) -> str:
    """The date of the first plan a clause cites."""
    found = [(clause.find(code), date) for code, date in PLAN_DOCUMENT_DATES.items() if code in clause]
    return min(found)[1] if found else ""


def step_hours_of(value: Any) -> dict[str, float]:
    """``sla_step_hours`` checked: hours (more than 0, at most a year) by escalation level.

    Examples
    --------
    >>> step_hours_of("village=24,city=72")
    {'village': 24.0, 'city': 72.0}
    """
    found = _pairs(value, "sla_step_hours")
    unknown = sorted(set(found) - set(ESCALATION_LEVELS))
    if unknown:
        raise ValidationError("Unknown escalation step(s) {names} in sla_step_hours; the steps are {known}.",
                              names=", ".join(unknown), known=", ".join(ESCALATION_LEVELS))
    hours = {}
    for level in ESCALATION_LEVELS:
        if level not in found:
            continue
        try:
            hours[level] = float(found[level])
        except (TypeError, ValueError):
            hours[level] = float("nan")
        if not 0 < hours[level] <= 24 * 366:
            raise ValidationError("sla_step_hours gives {level} {value!r}; give hours above 0 and at most a year.",
                                  level=level, value=found[level])
    return hours


def required_roles_of(value: Any) -> dict[str, tuple[str, ...]]:
    """``required_roles`` checked: the roles each level's units (and ``cell``: every cell) must hold.

    Empty gives :data:`DEFAULT_REQUIRED_ROLES`; a level left out of a set-up requires nothing.

    Examples
    --------
    >>> required_roles_of("village=grid_leader+inspector,cell=inspector")
    {'village': ('grid_leader', 'inspector'), 'cell': ('inspector',)}
    """
    found = _pairs(value, "required_roles")
    if not found:
        return dict(DEFAULT_REQUIRED_ROLES)
    unknown = sorted(set(found) - set(_REQUIRABLE_LEVELS))
    if unknown:
        raise ValidationError("Unknown level(s) {names} in required_roles; the levels are {known}.",
                              names=", ".join(unknown), known=", ".join(_REQUIRABLE_LEVELS))
    out = {}
    for level in _REQUIRABLE_LEVELS:
        if level not in found:
            continue
        roles = found[level]
        roles = [r.strip() for r in (roles.split("+") if isinstance(roles, str) else list(roles)) if str(r).strip()]
        wrong = sorted({str(r) for r in roles} - set(_REQUIRABLE_ROLES))
        if wrong:
            raise ValidationError("required_roles names the role(s) {names} for {level}; the roles are {known}.",
                                  names=", ".join(wrong), level=level, known=", ".join(_REQUIRABLE_ROLES))
        out[level] = tuple(dict.fromkeys(roles))
    return out


def _chain_rules(settings: Settings) -> dict[str, Any]:
    """The chain's rules of the settings: hours per escalation step, required roles, what conflicting roles do."""
    conflicts = str(settings.conflicting_roles or "warn").strip()
    if conflicts not in ("warn", "refuse"):
        raise ValidationError("conflicting_roles is {value!r}; use warn or refuse.", value=settings.conflicting_roles)
    return {"step_hours": step_hours_of(settings.sla_step_hours),
            "required_roles": required_roles_of(settings.required_roles), "conflicting_roles": conflicts}


@dataclass(frozen=True)
class Period:
    """A recurring yearly period given by month and day, e.g. the summer harvest 05-20 to 06-30."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def parse(cls, name: str, text: str) -> "Period":
        """From ``"MM-DD..MM-DD"``."""
        try:
            a, b = text.split("..")
            start = tuple(int(x) for x in a.split("-"))
            end = tuple(int(x) for x in b.split("-"))
            dt.date(2024, *start), dt.date(2024, *end)
        except (ValueError, TypeError) as exc:
            raise ValidationError("Key period {name} = {text!r} is not of the form MM-DD..MM-DD.",
                                  name=name, text=text) from exc
        return cls(name, start, end)  # type: ignore[arg-type]

    def contains(self, dates: np.ndarray) -> np.ndarray:
        """Whether each local date (datetime64[D]) falls in the period (periods may wrap the new year)."""
        d = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[ns]"))
        md = d.month.to_numpy() * 100 + d.day.to_numpy()
        lo, hi = self.start[0] * 100 + self.start[1], self.end[0] * 100 + self.end[1]
        return (md >= lo) & (md <= hi) if lo <= hi else (md >= lo) | (md <= hi)


def parse_key_periods(value: str | Mapping[str, str] | None) -> tuple[Period, ...]:
    """Key periods from the ``key_periods`` setting: ``name=MM-DD..MM-DD,...`` or a mapping of name to dates.

    Empty gives none. A period may cross the new year (``autumn_winter=10-01..03-31``); 02-29 is a valid day.

    Examples
    --------
    >>> [p.name for p in parse_key_periods({"summer_harvest": "05-25..06-30", "autumn_winter": "10-01..03-31"})]
    ['summer_harvest', 'autumn_winter']
    >>> parse_key_periods("")
    ()
    """
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for part in str(value or "").split(","):
            if not part.strip():
                continue
            name, sep, dates = part.partition("=")
            if not sep or not name.strip():
                raise ValidationError("Key period {text!r} is not of the form name=MM-DD..MM-DD.", text=part.strip())
            pairs.append((name, dates))
    periods = tuple(Period.parse(name.strip(), dates.strip()) for name, dates in pairs)
    names = [p.name for p in periods]
    if len(set(names)) != len(names):
        raise ValidationError("Key period names must differ: {names}.", names=", ".join(names))
    return periods


@dataclass(frozen=True)
class DispatchPolicy:
    """The configurable rules of fire dispatch.

    Attributes
    ----------
    key_periods : tuple of Period
        Key periods of straw burning (the ``key_periods`` setting, :func:`parse_key_periods`). The plans name the
        summer and autumn harvests (三夏、三秋), 秋冬季节 and 春耕期间 but give no dates: none unless configured.
    sla_key_hours, sla_hours : float
        Time to reach the spot in and outside key periods.
    dispatch_low_confidence : bool
        Low-confidence detections are kept but not dispatched unless this is set.
    persistent_days : int
        A cell with detections on this many separate days within ``persistent_window_days``
        is a likely static heat source (industry) and is not dispatched.
    timezone : str
        Zone of local dates (:data:`TIMEZONE`).
    """

    key_periods: tuple[Period, ...] = ()
    sla_key_hours: float = 2.0
    sla_hours: float = 24.0
    dispatch_low_confidence: bool = False
    persistent_days: int = 4
    persistent_window_days: int = 60
    timezone: str = TIMEZONE
    sla_by_kind: dict[str, float] = field(default_factory=lambda: {
        Kind.BARE_LAND_SURVEY: 72.0, Kind.BOILER_CHECK: 168.0, Kind.COAL_CHECK: 72.0,
        Kind.ROUTINE_PATROL: 168.0, Kind.MANUAL: 72.0, Kind.HEAT_SOURCE_CHECK: 72.0,
    })

    def local_dates(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Local calendar dates (datetime64[D]) of UTC timestamps."""
        idx = pd.DatetimeIndex(pd.to_datetime(utc, utc=True)).tz_convert(self.timezone).tz_localize(None)
        return idx.to_numpy().astype("datetime64[D]")

    def in_key_period(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Whether each detection time falls in a key period (by local date); none while no period is set."""
        if not self.key_periods:
            return np.zeros(len(utc), dtype=bool)
        dates = self.local_dates(utc)
        out = np.zeros(len(dates), dtype=bool)
        for period in self.key_periods:
            out |= period.contains(dates)
        return out

    def fire_priority(self, key_period: np.ndarray, in_zone: np.ndarray) -> np.ndarray:
        """Priority of fire checks: zones and key periods raise it."""
        return np.select(
            [in_zone & key_period, in_zone, key_period],
            [Priority.ZONE_IN_KEY_PERIOD, Priority.NO_BURN_ZONE, Priority.KEY_PERIOD],
            Priority.NORMAL,
        ).astype(np.int32)

    def fire_sla_hours(self, key_period: np.ndarray) -> np.ndarray:
        """Hours to reach the spot."""
        return np.where(key_period, self.sla_key_hours, self.sla_hours)

#: what a problem (and an alarm) is about: the problem register's categories
PROBLEM_CATEGORIES = ("straw_burning", "bare_land", "coal_boiler", "loose_coal", "construction_dust", "fireworks",
                      "other")


@dataclass(frozen=True)
class ProblemRules:
    """The problem register's rules (问题台账). No plan gives these numbers: each is a local setting, off until set.

    Attributes
    ----------
    rectify_days : dict of str to float
        Days to rectify a problem, per category (``problem_rectify_days``); a category without a number gets no
        deadline, is never overdue and never escalates.
    repeat_days : int
        A problem of the same cell and category found within this many days after an earlier one is a repeat
        (屡查屡犯, ``problem_repeat_days``); 0: none is marked.
    recheck_days : int
        Days after closing when a closed problem gets a re-check patrol (回头看, ``problem_recheck_days``); 0: none.

    Examples
    --------
    >>> rules = ProblemRules.from_settings(Settings(problem_rectify_days="bare_land=30", problem_repeat_days=90))
    >>> rules.deadline_days("bare_land"), rules.deadline_days("fireworks"), rules.repeat_days, rules.recheck_days
    (30.0, None, 90, 0)
    """

    rectify_days: dict[str, float] = field(default_factory=dict)
    repeat_days: int = 0
    recheck_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "ProblemRules":
        """The rules of these settings; a category the register does not know or a number out of range is refused."""
        raw = settings.problem_rectify_days or {}
        if isinstance(raw, str):
            try:
                raw = dict(part.split("=", 1) for part in raw.replace(" ", "").split(",") if part)
            except ValueError as exc:
                raise ValidationError("problem_rectify_days must read category=days,category=days: {value}.",
                                      value=str(settings.problem_rectify_days)) from exc
        unknown = sorted(set(raw) - set(PROBLEM_CATEGORIES))
        if unknown:
            raise ValidationError("Unknown problem category {names} in problem_rectify_days; the categories are "
                                  "{known}.", names=", ".join(unknown), known=", ".join(PROBLEM_CATEGORIES))
        try:
            days = {str(k): float(v) for k, v in raw.items()}
            repeat, recheck = int(settings.problem_repeat_days or 0), int(settings.problem_recheck_days or 0)
        except (TypeError, ValueError) as exc:
            raise ValidationError("The problem register's settings must be numbers of days: rectify {days}, repeat "
                                  "{repeat}, re-check {recheck}.", days=str(settings.problem_rectify_days),
                                  repeat=settings.problem_repeat_days, recheck=settings.problem_recheck_days) from exc
        if any(not 0 < v <= 366 for v in days.values()) or not 0 <= repeat <= 3660 or not 0 <= recheck <= 3660:
            raise ValidationError("The problem register's days must be more than 0 and at most a year to rectify, "
                                  "and from 0 to ten years for repeats and re-checks: rectify {days}, repeat {repeat}, "
                                  "re-check {recheck}.", days=str(settings.problem_rectify_days), repeat=repeat,
                                  recheck=recheck)
        return cls(rectify_days=days, repeat_days=repeat, recheck_days=recheck)

    def deadline_days(self, category: str) -> float | None:
        """Days to rectify a problem of ``category``, or None when no number is set (no deadline)."""
        return self.rectify_days.get(category)


@dataclass(frozen=True)
class Policy:
    """Every rule gridwatch applies, built once from :class:`~gridwatch.config.Settings`.

    Attributes
    ----------
    dispatch : DispatchPolicy
        Key periods, service-level hours per task kind, the confidence and persistence rules of fire dispatch.
    settings : Settings
        The settings it was built from (layer rules such as radii and months are read from here by their modules).
    timezone : str
        Always :data:`TIMEZONE`.
    step_hours : mapping
        Hours a task may sit at each escalation step (:data:`ESCALATION_LEVELS`) before climbing; a level without
        hours (all, unless ``sla_step_hours`` is set) gives the hours of the task's kind.
    required_roles : mapping
        The roles each level's units, and every cell (``cell``), must hold (:func:`required_roles_of`).
    conflicting_roles : str
        ``warn`` or ``refuse`` a role that makes a supervisor supervise their own work.
    """

    dispatch: DispatchPolicy = field(default_factory=lambda: DispatchPolicy())
    settings: Settings = field(default_factory=Settings)
    timezone: str = TIMEZONE
    step_hours: Mapping[str, float] = field(default_factory=dict)
    required_roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_REQUIRED_ROLES))
    conflicting_roles: str = "warn"

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        """The policy of these settings: ``sla_hours`` overrides the hours of the task kinds it names.

        ``sla_hours`` may name any task kind, and ``fire_check_key_period`` for fire checks in a key period.
        """
        dispatch = DispatchPolicy(key_periods=parse_key_periods(settings.key_periods))
        hours = dict(settings.sla_hours or {})
        if hours:
            known = {k.value for k in Kind} | {"fire_check_key_period"}
            unknown = sorted(set(hours) - known)
            if unknown:
                raise ValidationError("Unknown task kind(s) {names} in sla_hours; known kinds are {known}.",
                                      names=", ".join(unknown), known=", ".join(sorted(known)))
            try:
                hours = {k: float(v) for k, v in hours.items()}
            except (TypeError, ValueError) as exc:
                raise ValidationError("sla_hours must map task kinds to hours (numbers): {value}.",
                                      value=str(settings.sla_hours)) from exc
            if any(not 0 < v <= 24 * 366 for v in hours.values()):
                raise ValidationError("sla_hours must be more than 0 and at most a year of hours: {value}.",
                                      value=str(settings.sla_hours))
            by_kind = dict(dispatch.sla_by_kind)
            by_kind.update({k: v for k, v in hours.items() if k not in ("fire_check", "fire_check_key_period")})
            dispatch = replace(dispatch, sla_by_kind=by_kind,
                               sla_hours=hours.get("fire_check", dispatch.sla_hours),
                               sla_key_hours=hours.get("fire_check_key_period", dispatch.sla_key_hours))
        ProblemRules.from_settings(settings)  # refused here, where the settings are read, not at first use
        policy = cls(dispatch=dispatch, settings=settings, **_chain_rules(settings))
        rule_since_of(getattr(settings, "rule_since", ""), today=policy.today())  # refused here too
        return policy

    @property
    def problems(self) -> ProblemRules:
        """The problem register's rules (read from the settings, so demo settings filled in later apply)."""
        return ProblemRules.from_settings(self.settings)

    @classmethod
    def load(cls) -> "Policy":
        """The policy of :meth:`Settings.load` (``gridwatch.toml`` and ``GRIDWATCH_*``)."""
        return cls.from_settings(Settings.load())

    @property
    def zone(self) -> ZoneInfo:
        """The time zone as a :class:`zoneinfo.ZoneInfo`."""
        return ZoneInfo(self.timezone)

    def sla_hours(self, kind: str) -> float:
        """Hours a task of ``kind`` may take (fire checks outside key periods for ``fire_check``)."""
        if kind == Kind.FIRE_CHECK:
            return float(self.dispatch.sla_hours)
        return float(self.dispatch.sla_by_kind.get(kind, self.dispatch.sla_by_kind.get(Kind.MANUAL, 72.0)))

    def escalation_hours(self, kind: str, level: str | None) -> float:
        """Hours a task of ``kind`` may sit at the escalation step of ``level`` (its kind's hours when the step has
        none configured, or for no step)."""
        return float(self.step_hours.get(level or "", self.sla_hours(kind)))

    def now(self) -> dt.datetime:
        """The current moment as an aware Beijing datetime."""
        return dt.datetime.now(self.zone)

    def today(self) -> dt.date:
        """Today's Beijing calendar date."""
        return self.now().date()

    def local_date(self, moment: dt.datetime) -> dt.date:
        """The Beijing date of a moment (naive means UTC, as stored)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(self.zone).date()

    def check_report_date(self, day: dt.date, *, what: str = "date") -> dt.date:
        """Refuse a day after today (Beijing) or before any satellite fire data exists (:data:`EARLIEST_DATA`).

        Examples
        --------
        >>> Policy().check_report_date(dt.date(1970, 1, 1))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridwatch.errors.ValidationError: The date 1970-01-01 lies before 2000-11-01, when the satellite fire record ...
        """
        end = what == "end date"  # the word is part of the message, so that it is translated with it
        if day > self.today():
            raise ValidationError(_FUTURE[end], day=day.isoformat(), today=self.today().isoformat())
        if day < EARLIEST_DATA:
            raise ValidationError(_TOO_EARLY[end], day=day.isoformat(), earliest=EARLIEST_DATA.isoformat())
        return day

    def day_bounds_utc(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The start and end of a Beijing calendar day as naive UTC datetimes (end exclusive)."""
        start = dt.datetime.combine(day, dt.time(0), self.zone).astimezone(dt.UTC).replace(tzinfo=None)
        return start, start + dt.timedelta(days=1)

    def local_times(self, utc: pd.Series | np.ndarray | list) -> pd.Series:
        """Stored (naive UTC) times as aware Beijing times; missing values stay missing."""
        series = pd.Series(pd.to_datetime(pd.Series(utc), errors="coerce"))
        if series.dt.tz is None:
            series = series.dt.tz_localize("UTC")
        return series.dt.tz_convert(self.timezone)

    def local_text(self, utc: pd.Series | np.ndarray | list, fmt: str = "%m-%d %H:%M", *,
                   missing: str = "") -> pd.Series:
        """Stored (naive UTC) times written as Beijing times for a screen or an export."""
        return self.local_times(utc).dt.strftime(fmt).fillna(missing)

    def moment_text(self, utc: dt.datetime | pd.Timestamp | str | None, fmt: str = "%m-%d %H:%M",
                    *, missing: str = "") -> str:
        """One stored (naive UTC) time written as Beijing time."""
        if utc is None or (not isinstance(utc, str) and pd.isna(utc)):
            return missing
        return str(self.local_text([utc], fmt, missing=missing).iloc[0])


# -- the rules in force, each with its source ---------------------------------------------------------------------

#: where a rule comes from: a clause of a plan, a local setting (本地设置) the county entered, or a demo setting
SOURCE_KINDS = ("plan", "local", "demo")
#: the document shown for the local settings the generated demo database fills in
DEMO_DOCUMENT = "演示设置（演示数据库生成，非规划规定）"
#: the key periods the generated demo database sets (the plans name these periods but give no dates)
DEMO_KEY_PERIODS = ("summer_harvest=05-20..06-30,autumn_harvest=09-15..11-15,spring_ploughing=03-01..04-30,"
                    "autumn_winter=10-01..03-31")


@dataclass(frozen=True)
class Rule:
    """One rule the software applies, with its value and its source.

    Attributes
    ----------
    key : str
        The setting that holds it (``gridwatch.toml`` / ``GRIDWATCH_*``), e.g. ``heat_radius_km``.
    label : str
        What it decides, as an English message id (translated at the edge).
    value : str
        The value in force, as text (``""`` when the feature is off).
    source : str
        ``plan`` (a clause gives the number), ``local`` (本地设置: a number no clause gives, set by the county) or
        ``demo`` (a local setting of the generated demo database).
    document : str
        For ``plan``: the document and clause (see the policy excerpts); for ``local``: the document number the
        county entered (``rule_documents`` in the settings), empty when none was entered.
    off : bool
        True when no clause gives the number and nobody set it: the feature it drives is off.
    since : str
        When it took effect: for ``plan``, the date of the plan it cites; for ``local``, the date the county
        entered (``rule_since``), empty when none was entered.
    """

    key: str
    label: str
    value: str
    source: str
    document: str
    off: bool = False
    since: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data."""
        return {"key": self.key, "label": self.label, "value": self.value, "source": self.source,
                "document": self.document, "off": self.off, "since": self.since}


#: rules whose number a plan gives: (setting, label, the plan's value, the clause)
PLAN_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("heat_min_chp_mw", N_("Combined heat and power plants whose radius applies, at least (MW)"), "300",
     "HN-2024 §3(3) 30万千瓦以上热电联产电厂; XC-2024 3(3) 30萬千瓦及以上"),
    ("heat_radius_km", N_("Heat-supply radius around a qualifying plant (km)"), "30",
     "HN-2024 §3(3) 供热半径30公里范围内"),
    ("heat_small_boiler_tph", N_("Coal boilers to eliminate region-wide, up to and including (t/h)"), "35",
     "XC-2024 3(3) 35蒸噸/小時及以下; HN-2024 §3(3) 35蒸吨/小时以下"),
    ("heat_boiler_deadline", N_("Boilers inside a radius closed or integrated by"), "2025-12-31",
     "HN-2024 §3(3) 2025年年底前…关停或整合"),
    ("bare_land_months", N_("Covered idle construction land greened after more than (months)"), "3",
     "HN-2017 暂时不能开工的建设用地…超过三个月的进行绿化"),
    ("resolution", N_("Grid cell size (H3 resolution; 8 is the closest to a 1 km grid)"), "8",
     "HN-2017 以 1×1 千米网格为单位部署网格专员"),
    ("patrol_cadence", N_("Routine patrol of every cell"), "每周", "HN-2017 每周巡查"),
    ("report_cadence", N_("Reporting cadence"), "日、周、旬、月、两个月、半年、年",
     "HN-2017 §11 每日一调度，每周一汇总，每旬一排名，每月一考核，每两个月一评比，半年一奖惩，年终综期考核"),
    ("timezone", N_("Calendar of days, weeks, 旬 and months"), f"北京时间 ({TIMEZONE})",
     "HN-2017 §11 (the plans' calendar: Beijing time)"),
    ("escalation_order", N_("Escalation order of an overdue task"), ESCALATION_ORDER,
     "HN-2017 §11 网格长为第一责任人，乡镇（街道）主要负责人对本辖区内网格化监管负领导责任，"
     "网格长和行政村、社区主要负责人对本辖区内网格化监管负直接领导责任; 涵盖市、县（区）、乡镇（街道）、村（社区）"),
)

#: rules no plan gives a number for (本地设置): (setting, label, how to read it from the settings or policy)
LOCAL_RULES: tuple[tuple[str, str], ...] = (
    ("key_periods", N_("Key periods of straw burning (dates)")),
    ("sla_fire_check_key_period", N_("Hours to reach a fire point in a key period")),
    ("sla_fire_check", N_("Hours to reach a fire point outside key periods")),
    ("sla_other", N_("Hours allowed for other task kinds")),
    ("dispatch_low_confidence", N_("Low-confidence detections dispatched")),
    ("persistent_days", N_("Burn days in the window that flag a cell as a possible static heat source")),
    ("bare_land_min_m2", N_("Smallest bare patch registered (m²)")),
    ("coal_check_cadence_days", N_("Days between re-check patrols (回头看) of no-burn zone cells")),
    ("report_weights", N_("Ranking score weights")),
    ("report_thresholds", N_("Accountability thresholds (通报, 约谈) on fire points per period")),
    ("report_deduction_yuan", N_("Fiscal deduction per fire point (yuan)")),
    ("sla_step_hours", N_("Hours a task may sit at each escalation step before climbing")),
    ("required_roles", N_("Roles of 一长三员 each unit and cell must hold (coverage)")),
    ("conflicting_roles", N_("A supervisor given a role whose work they supervise (warn or refuse)")),
    ("problem_rectify_days", N_("Days to rectify a problem, per category (问题整改时限)")),
    ("problem_repeat_days", N_("Days within which a problem found again at the same place is a repeat (屡查屡犯)")),
    ("problem_recheck_days", N_("Days after closing when a closed problem is patrolled again (回头看)")),
)


#: how the 规则说明 shows the coverage check when ``required_roles`` is unset
_DEFAULT_ROLES_TEXT = "默认：各级单位须有网格长，每个网格须有巡查员"


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def rules_in_force(policy: Policy, *, demo: bool = False) -> list[Rule]:
    """Every rule the policy applies, each with its value and source.

    A plan's number kept as it is cites the clause; a number changed locally, and every number no clause gives, is a
    local setting (本地设置) citing the document the county entered in ``rule_documents`` (``demo`` when the database
    is the generated demo and no document was entered). A local rule with no value is off.

    Examples
    --------
    >>> rules = {r.key: r for r in rules_in_force(Policy())}
    >>> rules["heat_radius_km"].source, rules["heat_radius_km"].document.startswith("HN-2024")
    ('plan', True)
    >>> rules["report_deduction_yuan"].source
    'local'
    """
    settings, dispatch = policy.settings, policy.dispatch
    documents = getattr(settings, "rule_documents", None) or {}
    if isinstance(documents, str):  # from the environment: name=document,name=document
        documents = dict(part.split("=", 1) for part in documents.split(",") if "=" in part)
    documents = {str(k).strip(): str(v).strip() for k, v in dict(documents).items()}
    since = rule_since_of(getattr(settings, "rule_since", ""), today=policy.today())
    current = {
        "heat_min_chp_mw": _text(float(settings.heat_min_chp_mw)),
        "heat_radius_km": _text(float(settings.heat_radius_km)),
        "heat_small_boiler_tph": _text(float(settings.heat_small_boiler_tph)),
        "heat_boiler_deadline": str(settings.heat_boiler_deadline), "bare_land_months": str(settings.bare_land_months),
        "resolution": str(settings.resolution), "patrol_cadence": "每周",
        "report_cadence": "日、周、旬、月、两个月、半年、年", "timezone": f"北京时间 ({policy.timezone})",
        "key_periods": ",".join(f"{p.name}={p.start[0]:02d}-{p.start[1]:02d}..{p.end[0]:02d}-{p.end[1]:02d}"
                                for p in dispatch.key_periods),
        "sla_fire_check_key_period": _text(float(dispatch.sla_key_hours)),
        "sla_fire_check": _text(float(dispatch.sla_hours)),
        "sla_other": _text({str(k): float(v) for k, v in dispatch.sla_by_kind.items()}),
        "dispatch_low_confidence": "yes" if dispatch.dispatch_low_confidence else "no",
        "persistent_days": f"{dispatch.persistent_days} / {dispatch.persistent_window_days}",
        "bare_land_min_m2": _text(float(settings.bare_land_min_m2)),
        "coal_check_cadence_days": str(settings.coal_check_cadence_days),
        "report_weights": _text(settings.report_weights), "report_thresholds": _text(settings.report_thresholds),
        "report_deduction_yuan": _text(float(settings.report_deduction_yuan or 0)),
        "escalation_order": ESCALATION_ORDER,
        "sla_step_hours": _text(dict(policy.step_hours)),
        "required_roles": (_DEFAULT_ROLES_TEXT if dict(policy.required_roles) == DEFAULT_REQUIRED_ROLES
                           else ",".join(f"{k}={'+'.join(v)}" for k, v in policy.required_roles.items())),
        "conflicting_roles": policy.conflicting_roles,
        "problem_rectify_days": _text(policy.problems.rectify_days),
        "problem_repeat_days": str(policy.problems.repeat_days),
        "problem_recheck_days": str(policy.problems.recheck_days),
    }

    def local(key: str, label: str) -> Rule:
        value = current[key]
        off = value in ("", "0", "no")
        source = "demo" if demo and documents.get(key, DEMO_DOCUMENT) == DEMO_DOCUMENT else "local"
        return Rule(key, label, value, source, DEMO_DOCUMENT if source == "demo" else documents.get(key, ""), off=off,
                    since=since.get(key, ""))

    out = []
    for key, label, plan_value, clause in PLAN_RULES:
        if current[key] == plan_value:
            out.append(Rule(key, label, plan_value, "plan", clause, since=_plan_since(clause)))
        else:
            out.append(local(key, label))
    out += [local(key, label) for key, label in LOCAL_RULES]
    return out
