"""Report periods: 旬 boundaries (February in leap and common years), month ends, weeks, seasons, the UTC shift."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.errors import ValidationError
from gridwatch.periods import custom, day, month, period_of, season, seasons_from_text, week, xun
from gridwatch.policy import parse_key_periods

#: the summer and autumn harvests as a county configures them (the plans give no dates: none by default)
HARVESTS = parse_key_periods("summer_harvest=05-20..06-30,autumn_harvest=09-15..11-15")

D = dt.date


@pytest.mark.parametrize("date, start, end", [
    (D(2024, 2, 1), D(2024, 2, 1), D(2024, 2, 10)),
    (D(2024, 2, 10), D(2024, 2, 1), D(2024, 2, 10)),
    (D(2024, 2, 11), D(2024, 2, 11), D(2024, 2, 20)),
    (D(2024, 2, 20), D(2024, 2, 11), D(2024, 2, 20)),
    (D(2024, 2, 21), D(2024, 2, 21), D(2024, 2, 29)),   # leap year: the last 旬 has 9 days
    (D(2024, 2, 29), D(2024, 2, 21), D(2024, 2, 29)),
    (D(2025, 2, 28), D(2025, 2, 21), D(2025, 2, 28)),   # common year: 8 days
    (D(2026, 1, 31), D(2026, 1, 21), D(2026, 1, 31)),   # 11 days
    (D(2026, 4, 30), D(2026, 4, 21), D(2026, 4, 30)),   # 10 days
])
def test_xun_boundaries(date, start, end):
    p = xun(date)
    assert (p.start, p.end) == (start, end)


def test_xun_lengths_in_february():
    assert xun(D(2024, 2, 25)).days == 9
    assert xun(D(2025, 2, 25)).days == 8
    assert xun(D(2100, 2, 25)).days == 8    # 2100 is not a leap year
    assert xun(D(2000, 2, 25)).days == 9    # 2000 is


def test_previous_xun_crosses_months_and_years():
    assert xun(D(2024, 3, 5)).previous().start == D(2024, 2, 21)
    assert xun(D(2024, 3, 5)).previous().end == D(2024, 2, 29)
    assert xun(D(2026, 1, 3)).previous().start == D(2025, 12, 21)
    assert xun(D(2026, 6, 15)).previous().start == D(2026, 6, 1)


@pytest.mark.parametrize("date, end", [(D(2024, 2, 10), D(2024, 2, 29)), (D(2025, 2, 10), D(2025, 2, 28)),
                                       (D(2026, 4, 30), D(2026, 4, 30)), (D(2026, 12, 31), D(2026, 12, 31))])
def test_month_ends(date, end):
    p = month(date)
    assert p.start == date.replace(day=1) and p.end == end
    assert month(D(2026, 3, 15)).previous().end == D(2026, 2, 28)
    assert month(D(2026, 1, 15)).previous().start == D(2025, 12, 1)


def test_weeks_start_on_monday():
    p = week(D(2026, 6, 14))  # a Sunday
    assert (p.start, p.end) == (D(2026, 6, 8), D(2026, 6, 14))
    assert p.start.weekday() == 0
    assert week(D(2026, 6, 15)).start == D(2026, 6, 15)
    assert week(D(2026, 1, 1)).start == D(2025, 12, 29)   # a week across the new year
    assert week(D(2026, 6, 14)).previous().start == D(2026, 6, 1)


def test_the_utc_to_beijing_date_shift():
    first, after = day(D(2026, 6, 11)).utc_bounds()
    assert first == dt.datetime(2026, 6, 10, 16, 0)   # Beijing midnight is 16:00 UTC the day before
    assert after == dt.datetime(2026, 6, 11, 16, 0)
    first, after = xun(D(2026, 6, 11)).utc_bounds()
    assert (first, after) == (dt.datetime(2026, 6, 10, 16), dt.datetime(2026, 6, 20, 16))
    # another zone cuts its own days
    assert day(D(2026, 6, 11), "UTC").utc_bounds()[0] == dt.datetime(2026, 6, 11)


def test_harvest_seasons_from_the_dispatch_key_periods():
    p = season(D(2026, 6, 1), HARVESTS)
    assert (p.start, p.end, p.season) == (D(2026, 5, 20), D(2026, 6, 30), "summer_harvest")
    assert season(D(2026, 10, 1), HARVESTS).season == "autumn_harvest"
    assert season(D(2026, 8, 1), HARVESTS).start == D(2026, 9, 15)          # between seasons: the next one
    assert season(D(2026, 6, 1), HARVESTS).previous().start == D(2025, 5, 20)
    winter = seasons_from_text("winter=12-01..02-28", HARVESTS)
    assert season(D(2026, 1, 10), winter).start == D(2025, 12, 1)  # a season across the new year
    assert season(D(2026, 1, 10), winter).end == D(2026, 2, 28)
    assert seasons_from_text("", HARVESTS) == HARVESTS  # no setting: the key periods in force


def test_a_season_period_needs_the_seasons():
    assert period_of("season", "2026-06-01", seasons=HARVESTS).season == "summer_harvest"
    with pytest.raises(ValidationError, match="harvest seasons"):
        period_of("season", "2026-06-01")


def test_custom_ranges_and_the_cli_names():
    p = period_of("custom", "2026-06-03", end="2026-06-09")
    assert p.days == 7 and p.previous().start == D(2026, 5, 27) and p.previous().end == D(2026, 6, 2)
    assert period_of("daily", "2026-06-03").kind == "day"
    assert period_of("weekly", "2026-06-03").start == D(2026, 6, 1)
    assert period_of("monthly", "2026-06-03").end == D(2026, 6, 30)
    with pytest.raises(ValidationError):
        period_of("daily", "2026-13-01")
    with pytest.raises(ValidationError):
        custom(D(2026, 6, 9), D(2026, 6, 3))
    with pytest.raises(ValidationError):
        period_of("fortnight", "2026-06-03")


def test_labels_in_both_languages():
    assert xun(D(2026, 6, 15)).label("zh_CN") == "2026年6月中旬"
    assert xun(D(2026, 6, 15)).label("en") == "2026-06, middle ten days"
    assert month(D(2026, 6, 15)).label("zh_CN") == "2026年6月"
    assert day(D(2026, 6, 15)).label("zh_CN") == "2026-06-15"


# -- property tests: every calendar kind tiles the years ----------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from gridwatch.periods import CALENDAR_KINDS, add_months, period_at  # noqa: E402

DATES = st.dates(min_value=D(1999, 1, 1), max_value=D(2101, 12, 31))
#: dates near the edges that break calendars: month ends, the 31st, 29 February, new year
EDGES = st.builds(lambda y, m, end: D(y, m, 1) - dt.timedelta(days=end),
                  st.integers(2000, 2100), st.integers(1, 12), st.integers(-1, 2))


@settings(max_examples=300, deadline=None)
@given(st.one_of(DATES, EDGES), st.sampled_from(CALENDAR_KINDS))
def test_every_day_lies_in_one_period_and_neighbours_touch(date, kind):
    p = period_of(kind, date)
    assert p.start <= date <= p.end and p.kind == kind
    # the next period starts the day after this one ends, the previous ends the day before it starts
    after = period_of(kind, p.end + dt.timedelta(days=1))
    assert after.start == p.end + dt.timedelta(days=1) and after.previous() == p
    assert p.previous().end == p.start - dt.timedelta(days=1)
    # every day of the period gives back the same period (one period per day and kind)
    for offset in (0, p.days // 2, p.days - 1):
        assert period_of(kind, p.start + dt.timedelta(days=offset)) == p


@settings(max_examples=40, deadline=None)
@given(st.integers(1999, 2100), st.sampled_from(CALENDAR_KINDS))
def test_periods_of_a_kind_tile_the_year(year_, kind):
    day_ = D(year_, 1, 1)
    covered = 0
    seen = []
    while day_.year == year_:
        p = period_of(kind, day_)
        seen.append(p)
        covered += (min(p.end, D(year_, 12, 31)) - day_).days + 1
        day_ = p.end + dt.timedelta(days=1)
    assert covered == (D(year_ + 1, 1, 1) - D(year_, 1, 1)).days  # no gap, no overlap
    if kind in ("month", "two_months", "quarter", "half_year", "year", "xun"):
        assert seen[0].start == D(year_, 1, 1) and seen[-1].end == D(year_, 12, 31)
        assert len(seen) == {"month": 12, "two_months": 6, "quarter": 4, "half_year": 2, "year": 1, "xun": 36}[kind]


@settings(max_examples=200, deadline=None)
@given(st.one_of(DATES, EDGES), st.sampled_from(CALENDAR_KINDS))
def test_utc_bounds_are_beijing_midnight(date, kind):
    p = period_of(kind, date)
    first, after = p.utc_bounds()
    assert first == dt.datetime.combine(p.start, dt.time()) - dt.timedelta(hours=8)
    assert after == dt.datetime.combine(p.end + dt.timedelta(days=1), dt.time()) - dt.timedelta(hours=8)
    # a moment one microsecond before the start (UTC) lies in the period before; the start in this one
    assert period_at(kind, first) == p and period_at(kind, first - dt.timedelta(microseconds=1)) == p.previous()


def test_weeks_run_monday_to_sunday_and_two_months_pair_from_january():
    assert (week(D(2026, 3, 1)).start, week(D(2026, 3, 1)).end) == (D(2026, 2, 23), D(2026, 3, 1))
    assert week(D(2026, 3, 2)).start.weekday() == 0
    pairs = [period_of("two_months", D(2024, 2, 29)), period_of("two_months", D(2024, 3, 1))]
    assert [(p.start, p.end) for p in pairs] == [(D(2024, 1, 1), D(2024, 2, 29)), (D(2024, 3, 1), D(2024, 4, 30))]
    assert period_of("half_year", D(2026, 7, 1)).start == D(2026, 7, 1)
    assert period_of("quarter", D(2026, 12, 31)).start == D(2026, 10, 1)
    # 2026-06-30 16:00 UTC is 07-01 00:00 in Beijing: the second half year
    assert period_at("half_year", dt.datetime(2026, 6, 30, 16)).start == D(2026, 7, 1)


@settings(max_examples=300, deadline=None)
@given(st.one_of(DATES, EDGES), st.integers(-30, 30))
def test_add_months_stays_in_the_target_month(date, n):
    later = add_months(date, n)
    assert (later.year * 12 + later.month) - (date.year * 12 + date.month) == n
    assert later.day == date.day or (later.day < date.day and period_of("month", later).end == later)
