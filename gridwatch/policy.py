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
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.tasks import Kind, Priority

__all__ = ["TIMEZONE", "Period", "DispatchPolicy", "Policy"]

#: Beijing time: the zone of every local date, period and deadline shown (the plans' calendar)
TIMEZONE = "Asia/Shanghai"


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


@dataclass(frozen=True)
class DispatchPolicy:
    """The configurable rules of fire dispatch.

    Attributes
    ----------
    key_periods : tuple of Period
        Summer (三夏) and autumn (三秋) harvests by default, when straw burning peaks.
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

    key_periods: tuple[Period, ...] = (
        Period("summer_harvest", (5, 20), (6, 30)),
        Period("autumn_harvest", (9, 15), (11, 15)),
    )
    sla_key_hours: float = 2.0
    sla_hours: float = 24.0
    dispatch_low_confidence: bool = False
    persistent_days: int = 4
    persistent_window_days: int = 60
    timezone: str = TIMEZONE
    sla_by_kind: dict[str, float] = field(default_factory=lambda: {
        Kind.BARE_LAND_SURVEY: 72.0, Kind.BOILER_CHECK: 168.0, Kind.COAL_CHECK: 72.0,
        Kind.ROUTINE_PATROL: 168.0, Kind.MANUAL: 72.0,
    })

    def local_dates(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Local calendar dates (datetime64[D]) of UTC timestamps."""
        idx = pd.DatetimeIndex(pd.to_datetime(utc, utc=True)).tz_convert(self.timezone).tz_localize(None)
        return idx.to_numpy().astype("datetime64[D]")

    def in_key_period(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Whether each detection time falls in a key period (by local date)."""
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
    """

    dispatch: DispatchPolicy = field(default_factory=lambda: DispatchPolicy())
    settings: Settings = field(default_factory=Settings)
    timezone: str = TIMEZONE

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policy":
        """The policy of these settings: ``sla_hours`` overrides the hours of the task kinds it names.

        ``sla_hours`` may name any task kind, and ``fire_check_key_period`` for fire checks in a key period.
        """
        dispatch = DispatchPolicy()
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
        return cls(dispatch=dispatch, settings=settings)

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
