"""Calendar periods in Beijing time: day, week, 旬, month, two months, quarter, half year, year, season, custom.

每日一调度，每周一汇总，每旬一排名，每月一考核: a period is a range of local
calendar dates (Beijing time by default), first and last day included. Fire
times are stored in UTC, so a period also gives its UTC bounds: 2026-06-11 in
Beijing starts at 2026-06-10 16:00 UTC.

Examples
--------
>>> p = period_of("xun", dt.date(2024, 2, 25))
>>> p.start, p.end, p.days
(datetime.date(2024, 2, 21), datetime.date(2024, 2, 29), 9)
>>> p.utc_bounds()[0]
datetime.datetime(2024, 2, 20, 16, 0)
>>> period_of("xun", dt.date(2024, 2, 25)).previous().start
datetime.date(2024, 2, 11)
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gridwatch.errors import ValidationError
from gridwatch.i18n import N_, gettext
from gridwatch.policy import TIMEZONE, Period as KeyPeriod

__all__ = ["KINDS", "ReportPeriod", "period_of", "day", "week", "xun", "month", "season", "custom", "parse_date",
           "seasons_from_text", "add_months", "two_months", "quarter", "half_year", "year", "months_period",
           "period_at", "CALENDAR_KINDS"]

#: the kinds of report period, in the plans' order (HN-2017 §11: 每日一调度，每周一汇总，每旬一排名，每月一考核，
#: 每两个月一评比，半年一奖惩，年终综期考核; quarters as well)
KINDS = ("day", "week", "xun", "month", "two_months", "quarter", "half_year", "year", "season", "custom")
#: the calendar kinds that tile every year without gaps or overlaps
CALENDAR_KINDS = ("day", "week", "xun", "month", "two_months", "quarter", "half_year", "year")
#: months per period of the kinds made of whole calendar months (each starts in January and tiles the year)
MONTH_SPANS = {"month": 1, "two_months": 2, "quarter": 3, "half_year": 6, "year": 12}
#: the CLI's names of the kinds
CLI_KINDS = {"daily": "day", "weekly": "week", "xun": "xun", "monthly": "month", "two-monthly": "two_months",
             "quarterly": "quarter", "half-yearly": "half_year", "yearly": "year", "season": "season",
             "custom": "custom"}
_XUN_NAMES = (N_("{year}-{month:02d}, first ten days"), N_("{year}-{month:02d}, middle ten days"),
              N_("{year}-{month:02d}, last days"))
#: the names of the key periods the plans name (the dispatch key periods, as the demo sets them), for translation
_SEASON_NAMES = (N_("summer_harvest"), N_("autumn_harvest"), N_("spring_ploughing"), N_("autumn_winter"))
_KIND_LABELS = {"day": N_("Daily dispatch"), "week": N_("Weekly summary"), "xun": N_("Ten-day ranking"),
                "month": N_("Monthly assessment"), "two_months": N_("Two-monthly comparison"),
                "quarter": N_("Quarter"), "half_year": N_("Half-year rewards and penalties"),
                "year": N_("Year-end assessment"), "season": N_("Harvest season"), "custom": N_("Custom range")}


@dataclass(frozen=True)
class ReportPeriod:
    """A range of local dates, both ends included.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    start, end : datetime.date
        First and last local day.
    timezone : str
        The zone of the dates.
    season : str
        The key period's name for a ``season`` (e.g. ``summer_harvest``), else ``""``.
    """

    kind: str
    start: dt.date
    end: dt.date
    timezone: str = TIMEZONE
    season: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError("Unknown report period {kind}; use one of {kinds}.", kind=self.kind,
                                  kinds=", ".join(KINDS))
        if self.end < self.start:
            raise ValidationError("A report period cannot end ({end}) before it starts ({start}).",
                                  start=self.start.isoformat(), end=self.end.isoformat())

    @property
    def days(self) -> int:
        """Number of local days in the period."""
        return (self.end - self.start).days + 1

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """Naive UTC datetimes ``[first, after)``: local midnight of the first day to local midnight after the last."""
        zone = ZoneInfo(self.timezone)
        first = dt.datetime.combine(self.start, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)
        after = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), zone)
        return first, after.astimezone(dt.UTC).replace(tzinfo=None)

    def utc_offset_hours(self) -> float:
        """The zone's offset from UTC at the period's start, in hours (8 for Beijing)."""
        moment = dt.datetime.combine(self.start, dt.time(12), ZoneInfo(self.timezone))
        return moment.utcoffset().total_seconds() / 3600

    def previous(self) -> "ReportPeriod":
        """The period before, of the same kind: the day, week, 旬 or month before; the season a year before;
        for a custom range, the range of the same length ending the day before."""
        if self.kind == "day":
            return day(self.start - dt.timedelta(days=1), self.timezone)
        if self.kind == "week":
            return week(self.start - dt.timedelta(days=7), self.timezone)
        if self.kind == "xun":
            return xun(self.start - dt.timedelta(days=1), self.timezone)
        if self.kind in MONTH_SPANS:
            return months_period(self.kind, self.start - dt.timedelta(days=1), self.timezone)
        if self.kind == "season":
            return ReportPeriod("season", _year_back(self.start), _year_back(self.end), self.timezone, self.season)
        return custom(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1), self.timezone)

    def label(self, language: str = "zh_CN") -> str:
        """A readable name of the period in the language given, e.g. ``2026年06月中旬``."""
        start, end = self.start.isoformat(), self.end.isoformat()
        if self.kind == "day":
            return start
        if self.kind == "xun":
            index = 0 if self.start.day == 1 else 1 if self.start.day == 11 else 2
            return gettext(_XUN_NAMES[index], language).format(year=self.start.year, month=self.start.month)
        if self.kind == "month":
            return gettext("{year}-{month:02d}", language).format(year=self.start.year, month=self.start.month)
        if self.kind in MONTH_SPANS:
            return gettext("{start} to {end}", language).format(start=start, end=end)
        if self.kind == "season":
            return gettext("{season} {year} ({start} to {end})", language).format(
                season=gettext(self.season, language), year=self.start.year, start=start, end=end)
        if self.kind == "week":
            return gettext("Week of {start} to {end}", language).format(start=start, end=end)
        return gettext("{start} to {end}", language).format(start=start, end=end)

    def kind_label(self, language: str = "zh_CN") -> str:
        """The name of the report of this kind (每日一调度 …)."""
        return gettext(_KIND_LABELS[self.kind], language)

    def to_dict(self, language: str = "zh_CN") -> dict:
        """JSON-ready: kind, first and last local day, zone, UTC bounds, label."""
        first, after = self.utc_bounds()
        return {"kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "days": self.days, "timezone": self.timezone, "utc_start": first.isoformat() + "Z",
                "utc_end": after.isoformat() + "Z", "label": self.label(language),
                **({"season": self.season} if self.season else {})}


def _year_back(date: dt.date) -> dt.date:
    """The same day a year earlier (29 February becomes the 28th)."""
    try:
        return date.replace(year=date.year - 1)
    except ValueError:
        return date.replace(year=date.year - 1, day=28)


def add_months(date: dt.date, months: int) -> dt.date:
    """The same day ``months`` calendar months later (earlier when negative), kept inside the month reached.

    A day the target month lacks becomes its last day: 03-31 plus three months is 06-30, 11-30 plus three months is
    02-28 (02-29 in a leap year). The plans count calendar months (超过三个月): land covered on 03-31 has been
    covered for three months when 06-30 ends, for more than three months from 07-01.

    Examples
    --------
    >>> add_months(dt.date(2026, 3, 31), 3), add_months(dt.date(2023, 11, 30), 3), add_months(dt.date(2026, 1, 5), -2)
    (datetime.date(2026, 6, 30), datetime.date(2024, 2, 29), datetime.date(2025, 11, 5))
    """
    index = date.year * 12 + date.month - 1 + int(months)
    year, month_ = divmod(index, 12)
    return _valid(year, month_ + 1, date.day)


def parse_date(text: str | dt.date) -> dt.date:
    """A date from ``YYYY-MM-DD`` (or a date)."""
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError as exc:
        raise ValidationError("{value!r} is not a date of the form YYYY-MM-DD.", value=text) from exc


def day(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The local day (每日一调度)."""
    return ReportPeriod("day", date, date, timezone)


def week(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The week from Monday to Sunday holding ``date`` (每周一汇总)."""
    start = date - dt.timedelta(days=date.weekday())
    return ReportPeriod("week", start, start + dt.timedelta(days=6), timezone)


def xun(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The 旬 holding ``date``: days 1–10, 11–20, or 21 to the month's end (每旬一排名)."""
    last = calendar.monthrange(date.year, date.month)[1]
    first_day, last_day = (1, 10) if date.day <= 10 else (11, 20) if date.day <= 20 else (21, last)
    return ReportPeriod("xun", date.replace(day=first_day), date.replace(day=last_day), timezone)


def month(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The calendar month holding ``date`` (每月一考核)."""
    last = calendar.monthrange(date.year, date.month)[1]
    return ReportPeriod("month", date.replace(day=1), date.replace(day=last), timezone)


def months_period(kind: str, date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The period of whole calendar months holding ``date``: ``month``, ``two_months`` (Jan–Feb, Mar–Apr, …;
    每两个月一评比), ``quarter``, ``half_year`` (半年一奖惩) or ``year`` (年终综期考核)."""
    if kind not in MONTH_SPANS:
        raise ValidationError("Unknown report period {kind}; use one of {kinds}.", kind=kind,
                              kinds=", ".join(MONTH_SPANS))
    span = MONTH_SPANS[kind]
    first = (date.month - 1) // span * span + 1
    last = first + span - 1
    return ReportPeriod(kind, dt.date(date.year, first, 1),
                        dt.date(date.year, last, calendar.monthrange(date.year, last)[1]), timezone)


def two_months(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The two calendar months holding ``date``: January–February, March–April, … (每两个月一评比)."""
    return months_period("two_months", date, timezone)


def quarter(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The calendar quarter holding ``date``."""
    return months_period("quarter", date, timezone)


def half_year(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """January–June or July–December (半年一奖惩)."""
    return months_period("half_year", date, timezone)


def year(date: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """The calendar year holding ``date`` (年终综期考核)."""
    return months_period("year", date, timezone)


def period_at(kind: str, moment: dt.datetime, timezone: str = TIMEZONE) -> ReportPeriod:
    """The calendar period of ``kind`` holding a moment (naive means UTC, as stored), cut in Beijing time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return period_of(kind, moment.astimezone(ZoneInfo(timezone)).date(), timezone=timezone)


def season(date: dt.date, seasons: tuple[KeyPeriod, ...], timezone: str = TIMEZONE) -> ReportPeriod:
    """The harvest season (a key period of dispatch) holding ``date``, or else the next one to start.

    Parameters
    ----------
    seasons : tuple of policy.Period
        The harvest seasons: the key periods of the policy in force (``policy.dispatch.key_periods``) or those
        of :func:`seasons_from_text`.
    """
    candidates = []
    for key in seasons:
        for year in (date.year - 1, date.year, date.year + 1):
            start = dt.date(year, *key.start)
            end_year = year if key.end >= key.start else year + 1
            end = _valid(end_year, *key.end)
            candidates.append((start, end, key.name))
    holding = [c for c in candidates if c[0] <= date <= c[1]]
    if holding:
        start, end, name = max(holding)
    else:
        start, end, name = min(c for c in candidates if c[0] > date)
    return ReportPeriod("season", start, end, timezone, name)


def _valid(year: int, month_: int, day_: int) -> dt.date:
    return dt.date(year, month_, min(day_, calendar.monthrange(year, month_)[1]))


def custom(start: dt.date, end: dt.date, timezone: str = TIMEZONE) -> ReportPeriod:
    """Any range of local days, both ends included."""
    return ReportPeriod("custom", start, end, timezone)


def period_of(kind: str, date: dt.date | str, *, end: dt.date | str | None = None,
              seasons: tuple[KeyPeriod, ...] | None = None, timezone: str = TIMEZONE) -> ReportPeriod:
    """The period of ``kind`` (or its CLI name: daily, weekly, xun, monthly) holding ``date``.

    A ``custom`` period runs from ``date`` to ``end``; a ``season`` needs the harvest ``seasons``
    (:func:`season`).
    """
    kind = CLI_KINDS.get(kind, kind)
    date = parse_date(date)
    if kind == "custom":
        return custom(date, parse_date(end) if end is not None else date, timezone)
    if kind == "season":
        if not seasons:
            raise ValidationError("A season report needs the harvest seasons (the report_seasons setting or the "
                                  "dispatch key periods); none were given.")
        return season(date, seasons, timezone)
    makers = {"day": day, "week": week, "xun": xun, "month": month, "two_months": two_months, "quarter": quarter,
              "half_year": half_year, "year": year}
    if kind not in makers:
        raise ValidationError("Unknown report period {kind}; use one of {kinds}.", kind=kind,
                              kinds=", ".join(KINDS))
    return makers[kind](date, timezone)


def seasons_from_text(text: str, default: tuple[KeyPeriod, ...]) -> tuple[KeyPeriod, ...]:
    """Harvest seasons from ``name=MM-DD..MM-DD,name=MM-DD..MM-DD``; empty text gives ``default``.

    ``default`` is the key periods of the policy in force (``policy.dispatch.key_periods``).
    """
    if not str(text or "").strip():
        return tuple(default)
    out = []
    for part in str(text).split(","):
        name, sep, dates = part.partition("=")
        if not sep:
            raise ValidationError("Season {text!r} is not of the form name=MM-DD..MM-DD.", text=part.strip())
        out.append(KeyPeriod.parse(name.strip(), dates.strip()))
    return tuple(out)
