"""Reports count the loop: problems found and closed, 闭环率 (closed by the deadline, of those settled in the period),
overdue problems, problems without a deadline apart, repeats (屡查屡犯) and hotline complaints answered."""

from __future__ import annotations

import datetime as dt

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch import auth, problems, services
from gridwatch.errors import PermissionDenied
from gridwatch.periods import ReportPeriod
from gridwatch.policy import ProblemRules
from gridwatch.problems import State
from gridwatch.reports import ReportRules, build_report
from gridwatch.workflow import Fix

TOWNSHIP = "410329-D01"
VILLAGE = "410329-D01-01"
RULES = ProblemRules(rectify_days={"bare_land": 3.0, "coal_boiler": 3.0}, repeat_days=90)
WEEK = ReportPeriod("week", dt.date(2026, 6, 8), dt.date(2026, 6, 14))
NOW = dt.datetime(2026, 6, 20, 4, 0)


def _at(day: int, hour: int = 2) -> dt.datetime:
    return dt.datetime(2026, 6, day, hour, 0)


def _cells(store, n: int) -> list[int]:
    return [int(r["cell"]) for r in store.query("SELECT cell FROM cells WHERE village_code = ? ORDER BY cell LIMIT ?",
                                               [VILLAGE, n])]


def _open(store, category: str, cell: int, at: dt.datetime) -> int:
    # a finding task id no task has (the register needs one per problem; these problems are set up directly)
    task = int(store.scalar("SELECT coalesce(max(finding_task_id), 1000000000) + 1 FROM problems"))
    frame = pd.DataFrame([{"category": category, "cell": cell, "finding_task_id": task, "finding": "test"}])
    return problems.open_problems(store, frame, rules=RULES, now=at, actor="system:test")[0]


def _close(store, pid: int, at: dt.datetime) -> None:
    """The whole life by two people: handed over, rectified by one, checked by another, closed at ``at``."""
    people = [int(r["id"]) for r in store.query("SELECT id FROM people ORDER BY id LIMIT 2")]
    cell = int(store.scalar("SELECT cell FROM problems WHERE id = ?", [pid]))
    lat, lng = h3.cell_to_latlng(h3.int_to_str(cell))
    fix = Fix(lat, lng, 5.0)
    photo = [{"sha256": "0" * 64, "name": "after.jpg", "media_type": "image/jpeg", "bytes": 1}]
    before = at - dt.timedelta(hours=1)
    problems.step(store, pid, State.ASSIGNED, actor="leader", person_id=people[1], now=before,
                  party={"kind": "enterprise", "name": "某建筑公司"})
    problems.step(store, pid, State.RECTIFYING, actor="inspector", person_id=people[0], now=before)
    problems.step(store, pid, State.RECTIFIED, actor="inspector", person_id=people[0], note="已覆盖", photos=photo,
                  fix=fix, now=before)
    problems.step(store, pid, State.CHECKED, actor="leader", person_id=people[1], fix=fix, now=at)
    problems.step(store, pid, State.CLOSED, actor="leader", person_id=people[1], now=at)


def _row(report, unit: str = VILLAGE) -> dict:
    return report.rows.set_index("unit_code").loc[unit].to_dict()


def test_the_loop_is_counted_per_unit_and_period_with_deadlines_settled_once(demo_store):
    a, b, c, d, f, g = _cells(demo_store, 6)
    on_time = _open(demo_store, "bare_land", a, _at(8))           # deadline 06-11, closed 06-10
    late = _open(demo_store, "bare_land", b, _at(8))              # deadline 06-11, closed 06-12: late
    never = _open(demo_store, "bare_land", c, _at(9))             # deadline 06-12, still open: late
    _open(demo_store, "other", a, _at(9))                          # no deadline: apart from the rate
    repeat = _open(demo_store, "bare_land", a, _at(10))           # a repeat of on_time; deadline 06-13, open
    early = _open(demo_store, "coal_boiler", f, _at(12))          # deadline 06-15 (next week), closed 06-13
    next_week = _open(demo_store, "coal_boiler", g, _at(13))      # deadline 06-16: settles next week
    dismissed = _open(demo_store, "bare_land", d, _at(9))
    problems.step(demo_store, dismissed, State.DISMISSED, actor="leader", note="误报", now=_at(9, 5))
    _close(demo_store, on_time, _at(10))
    _close(demo_store, late, _at(12))
    _close(demo_store, early, _at(13))
    assert demo_store.scalar("SELECT repeat_of FROM problems WHERE id = ?", [repeat]) == on_time
    assert never and next_week
    report = build_report(demo_store, WEEK, level="village", unit=TOWNSHIP, now=NOW)
    row = _row(report)
    assert row["problems_found"] == 7            # the dismissed one counts nowhere
    assert row["problems_closed"] == 3
    assert row["loop_due"] == 5                  # on_time, late, never, repeat, early
    assert row["loop_on_time"] == 2              # on_time, early
    assert row["closure_rate"] == pytest.approx(0.4)
    assert row["problems_overdue"] == 3
    assert row["problems_no_deadline"] == 1
    assert row["problem_repeats"] == 1
    # next week the last boiler's deadline passes unclosed: it is counted there, once
    after = build_report(demo_store, WEEK.previous().previous().previous(), level="village", unit=TOWNSHIP, now=NOW)
    assert _row(after)["loop_due"] == 0
    following = build_report(demo_store, ReportPeriod("week", dt.date(2026, 6, 15), dt.date(2026, 6, 21)),
                             level="village", unit=TOWNSHIP, now=NOW)
    assert _row(following)["loop_due"] == 1 and _row(following)["problems_overdue"] == 1
    # a unit without problems has no rate (not 0 %, not 100 %)
    others = report.rows[report.rows.unit_code != VILLAGE]
    assert others.closure_rate.isna().all() and (others.problems_found == 0).all()
    totals = report.totals()
    assert totals["loop_due"] == 5 and totals["closure_rate"] == pytest.approx(0.4)
    as_json = report.to_json()
    [mine] = [r for r in as_json["rows"] if r["unit_code"] == VILLAGE]
    assert mine["closure_rate"] == 0.4 and mine["problems_no_deadline"] == 1


def test_the_closure_rate_enters_the_score_only_with_a_local_weight(demo_store):
    a, b = _cells(demo_store, 2)
    _close(demo_store, _open(demo_store, "bare_land", a, _at(8)), _at(9))
    _open(demo_store, "bare_land", b, _at(8))
    plain = build_report(demo_store, WEEK, level="village", unit=TOWNSHIP, now=NOW)
    assert "closure_rate" not in plain.rules.weights
    weighted = build_report(demo_store, WEEK, level="village", unit=TOWNSHIP, now=NOW,
                            rules=ReportRules(weights={"closure_rate": -10.0}))
    row = _row(weighted)
    assert row["score"] == pytest.approx(-5.0) and row["rank"] == 1  # 50 % closed on time ranks first
    assert "-10×" in weighted.rules.rule_text("en")


def test_hotline_complaints_answered_are_those_whose_outcome_is_known(demo_store):
    made = services.integration_add(demo_store, services.CLI, "hotline-12345", source="hotline", unit="410329")
    actor = services.integration_actor(demo_store, services.CLI, made["token"])
    video = services.integration_add(demo_store, services.CLI, "video", source="video", unit="410329")
    camera = services.integration_actor(demo_store, services.CLI, video["token"])
    lat, lng = h3.cell_to_latlng(h3.int_to_str(_cells(demo_store, 1)[0]))
    when = _at(10)
    body = {"source": "hotline", "category": "other", "lat": lat, "lng": lng,
            "observed_at": (when - dt.timedelta(minutes=5)).isoformat() + "+00:00", "description": "噪声"}
    first, second = services.post_alarms(demo_store, actor, [{**body, "external_id": "H-1"},
                                                             {**body, "external_id": "H-2"}], now=when)
    services.post_alarms(demo_store, camera, [{**body, "source": "video", "external_id": "V-1"}], now=when)
    inspector, leader = auth.load_user(demo_store, "inspector"), auth.load_user(demo_store, "leader")
    task = first.answer["task_id"]
    services.work_on(demo_store, inspector, task, "in_progress")
    services.work_on(demo_store, inspector, task, "reported", finding="done", note="已处理")
    services.verify(demo_store, leader, task, accept=True)
    assert demo_store.scalar("SELECT state FROM tasks WHERE id = ?", [task]) == "closed"
    row = _row(build_report(demo_store, WEEK, level="village", unit=TOWNSHIP, now=NOW))
    assert (row["complaints"], row["complaints_answered"]) == (2, 1)  # video alarms are not complaints
    assert second.created


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 20))), min_size=1, max_size=12))
def test_every_problem_with_a_deadline_settles_in_exactly_one_period(county, lives):
    """Whatever the days found and closed, the weekly counts of problems settled add up to those whose settling
    moment has come, and on-time ones never exceed them."""
    county.execute("DELETE FROM problem_events")
    county.execute("DELETE FROM problems")
    cells = [int(r["cell"]) for r in county.query("SELECT cell FROM cells ORDER BY cell LIMIT 12")]
    start = dt.datetime(2026, 6, 1, 2, 0)
    now = dt.datetime(2026, 7, 20)
    settled = 0
    for k, (found, closed_after) in enumerate(lives):
        at = start + dt.timedelta(days=found)
        pid = _open(county, "bare_land", cells[k], at)
        deadline = at + dt.timedelta(days=3)
        if closed_after is not None:
            closed_at = at + dt.timedelta(days=closed_after, hours=2)
            county.execute("UPDATE problems SET state = 'closed', closed_at = ? WHERE id = ?", [closed_at, pid])
            settle = closed_at if closed_at <= deadline else deadline
        else:
            settle = deadline
        settled += settle < now
    weeks = [ReportPeriod("week", dt.date(2026, 6, 1) + dt.timedelta(days=7 * w),
                          dt.date(2026, 6, 7) + dt.timedelta(days=7 * w)) for w in range(7)]
    due = on_time = 0
    for week in weeks:
        rows = build_report(county, week, level="county", unit="410329", now=now).rows
        due += int(rows.loop_due.sum())
        on_time += int(rows.loop_on_time.sum())
        assert (rows.loop_on_time <= rows.loop_due).all()
        assert np.allclose(rows.problems_overdue, rows.loop_due - rows.loop_on_time)
    assert due == settled and on_time <= due


def test_the_dossier_carries_the_units_loop_figures(demo_store):
    a, b = _cells(demo_store, 2)
    _close(demo_store, _open(demo_store, "bare_land", a, _at(8)), _at(9))
    _open(demo_store, "other", b, _at(8))
    county = auth.load_user(demo_store, "county")
    loop = services.report_loop(demo_store, county, unit=VILLAGE, kind="week", date="2026-06-10", language="en",
                                now=NOW)
    figures = dict(loop.itertuples(index=False))
    assert figures["Problems found"] == "2" and figures["Closure rate (闭环率)"] == "100.0 %"
    assert figures["Problems without a deadline (not in the closure rate)"] == "1"
    files = services.report_dossier_files(demo_store, county, services.report_dossier(
        demo_store, county, unit=VILLAGE, kind="week", date="2026-06-10", language="en"), unit=VILLAGE,
        language="en", loop=loop)
    assert "Closed loop" in files["html"].decode() and "100.0 %" in files["html"].decode()
    with pytest.raises(PermissionDenied):
        services.report_loop(demo_store, auth.load_user(demo_store, "inspector"), unit=VILLAGE, kind="week",
                             date="2026-06-10")
