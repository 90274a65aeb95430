"""Report metrics, rankings and thresholds on a small dataset built through ingest, dispatch and task work.

The dataset (on the demo county, in June 2025 where the demo has no fires): seven FIRMS detections read,
triaged and dispatched by the real ingest, task work through ``workflow.transition`` at explicit times,
one escalation run. Every expected value below is counted by hand from this list:

===  ========  =====================  =======================  ==========================================
#    township  UTC acquisition        Beijing date (旬)        task
===  ========  =====================  =======================  ==========================================
1    D01 c1    2025-06-10 17:00       06-11 01:00 (2nd 旬)     arrive +1 h, report +3 h confirmed_burning
2,3  D01 c2    2025-06-12 05:35 (×2)  06-12 (2nd 旬)           one incident; arrive +4 h, report +6 h
                                                               false_alarm; due 06-12 12:00 UTC (in time)
4    D02 c3    2025-06-15 05:35       06-15 (2nd 旬)           never reported, due 07:35, escalated 08:00
5    D02 c4    2025-06-20 16:30       06-21 00:30 (3rd 旬)     due 06-20 18:30 UTC = 06-21 local
6    D01 c5    2025-06-10 15:00       06-10 23:00 (1st 旬)     reported 15:30 extinguished (before due)
7    D02 c6    2025-06-16 05:35       06-16, confidence 10     not dispatched (low confidence)
===  ========  =====================  =======================  ==========================================

Task 1 is due 2025-06-10 19:00 UTC and reported at 20:00: overdue, not escalated.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridwatch import auth, reports, services, workflow
from gridwatch.cli import main
from gridwatch.periods import month, period_of, xun
from gridwatch.policy import Policy
from gridwatch.reports import ReportRules, build_report

T = dt.datetime
HEADER = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight"


def _cells(store, village: str, n: int) -> list[tuple[int, float, float]]:
    rows = store.query("SELECT cell, lat, lng FROM cells WHERE village_code = ? ORDER BY cell LIMIT ?", [village, n])
    return [(r["cell"], r["lat"], r["lng"]) for r in rows]


def _line(lat: float, lng: float, when: dt.datetime, confidence: int = 80) -> str:
    return (f"{lat:.5f},{lng:.5f},320.0,1.0,1.0,{when:%Y-%m-%d},{when:%H%M},"
            f"{'A' if when.hour < 12 else 'T'},{confidence},6.1NRT,300.0,12.0,D")


def _task_of(store, cell: int, acq: dt.datetime) -> int:
    return int(store.scalar(
        "SELECT t.id FROM tasks t JOIN incidents i ON t.source_key = CAST(i.key AS VARCHAR)"
        " WHERE i.cell = ? AND i.acq_time = ?", [cell, acq]))


@pytest.fixture
def dataset(demo_store, tmp_path):
    s = demo_store
    (c1, c2, c5), (c3, c4, c6) = [[c for c in _cells(s, v, 6)[::2]] for v in ("410329-D01-01", "410329-D02-02")]
    times = {1: T(2025, 6, 10, 17, 0), 2: T(2025, 6, 12, 5, 35), 4: T(2025, 6, 15, 5, 35), 5: T(2025, 6, 20, 16, 30),
             6: T(2025, 6, 10, 15, 0), 7: T(2025, 6, 16, 5, 35)}
    lines = [HEADER, _line(c1[1], c1[2], times[1]), _line(c2[1], c2[2], times[2]),
             _line(c2[1] + 0.0005, c2[2], times[2]), _line(c3[1], c3[2], times[4]), _line(c4[1], c4[2], times[5]),
             _line(c5[1], c5[2], times[6]), _line(c6[1], c6[2], times[7], confidence=10)]
    path = tmp_path / "june_2025.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the ingest's clock lies after the file's latest detection (a later one is refused as acquired in the future)
    summary = services.ingest_fire_file(s, services.CLI, path, now=T(2025, 6, 20, 17, 5))
    assert summary["accepted"] == 7 and summary["incidents"] == 5
    task = {k: _task_of(s, c[0], times[k]) for k, c in ((1, c1), (2, c2), (4, c3), (5, c4), (6, c5))}
    due = {1: T(2025, 6, 10, 19), 2: T(2025, 6, 12, 12), 4: T(2025, 6, 15, 7, 35), 5: T(2025, 6, 20, 18, 30),
           6: T(2025, 6, 10, 17)}
    for k, when in due.items():
        s.execute("UPDATE tasks SET due_at = ? WHERE id = ?", [when, task[k]])
    inspector = int(s.scalar("SELECT id FROM people WHERE person_key = 'demo-d01-01-inspector'"))
    leader = int(s.scalar("SELECT id FROM people WHERE person_key = 'demo-d01-leader'"))

    def work(k, arrive, report, finding):
        workflow.transition(s, task[k], "in_progress", actor="insp", actor_person_id=inspector, now=arrive)
        workflow.transition(s, task[k], "reported", actor="insp", actor_person_id=inspector, finding=finding,
                            now=report)
        workflow.transition(s, task[k], "verified", actor="lead", actor_person_id=leader, now=report)

    work(1, times[1] + dt.timedelta(hours=1), times[1] + dt.timedelta(hours=3), "confirmed_burning")
    work(2, times[2] + dt.timedelta(hours=4), times[2] + dt.timedelta(hours=6), "false_alarm")
    work(6, T(2025, 6, 10, 15, 20), T(2025, 6, 10, 15, 30), "extinguished")
    assert workflow.escalate_overdue(s, now=T(2025, 6, 15, 8, 0), policy=Policy())["escalated"] == 1
    return {"store": s, "task": task, "cells": {"c1": c1[0], "c2": c2[0], "c3": c3[0]}}


def _row(report, code):
    return report.rows.set_index("unit_code").loc[code]


NOW = T(2025, 7, 1)


def test_every_metric_of_the_ten_day_ranking(dataset):
    s = dataset["store"]
    r = build_report(s, xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW,
                     cropland={"410329-D01": 30.0})
    assert len(r.rows) == 14
    d01, d02 = _row(r, "410329-D01"), _row(r, "410329-D02")
    # fire points by Beijing date: #1 (UTC 06-10 17:00) counts, #6 (UTC 06-10 15:00) and #5 (06-21 local) do not
    assert (d01.fire_points, d01.incidents, d01.filtered_points) == (3, 2, 0)
    assert (d02.fire_points, d02.incidents, d02.filtered_points) == (1, 1, 1)
    assert (d01.dispatched, d01.confirmed, d01.false_alarms) == (2, 1, 1)
    assert (d02.dispatched, d02.confirmed, d02.false_alarms) == (1, 0, 0)
    assert d01.confirmation_rate == 0.5 and d02.confirmation_rate == 0.0
    # arrival 1 h and 4 h; report 3 h and 6 h
    assert d01.arrival_median_h == pytest.approx(2.5) and d01.arrival_p90_h == pytest.approx(3.7)
    assert d01.report_median_h == pytest.approx(4.5) and d01.report_p90_h == pytest.approx(5.7)
    assert pd.isna(d02.arrival_median_h)
    # overdue: D01 task 1 (reported after its due time), D02 task 4 (escalated); task 5 falls due on 06-21 local
    assert (d01.tasks_overdue, d01.tasks_escalated) == (1, 0)
    assert (d02.tasks_overdue, d02.tasks_escalated) == (1, 1)
    # coverage as the demo organisation stands: D01-04 has no grid leader; D02-01 (10 cells) has no inspector
    assert (d01.cells, d02.cells) == (134, 112)
    assert (d01.cells_without_inspector, d01.units_without_grid_leader) == (0, 1)
    assert (d02.cells_without_inspector, d02.units_without_grid_leader) == (10, 0)
    # two cells of D01 had a report in the period (tasks 1 and 2); task 6's report was on 06-10 local
    assert d01.cells_not_visited == 132 and d02.cells_not_visited == 112
    # passes seen on 06-11, 06-12, 06-15, 06-16 (Beijing) → 6 of 10 days not observed, for every unit
    assert set(r.rows.days_not_observed) == {6}
    area = s.scalar("SELECT area_km2 FROM units WHERE code = '410329-D01'")
    assert d01.area_km2 == pytest.approx(area) and d01.fires_per_100km2 == pytest.approx(300 / area)
    assert d01.cropland_km2 == 30.0 and d01.fires_per_100km2_cropland == pytest.approx(10.0)
    assert pd.isna(d02.cropland_km2) and pd.isna(d02.fires_per_100km2_cropland)
    # the season's first fire (#6, 06-10 23:00 Beijing) lies in the previous 旬: nobody is flagged here
    assert not r.rows.first_fire.any()
    quiet = _row(r, "410329-D05")
    assert (quiet.fire_points, quiet.incidents, quiet.dispatched, quiet.tasks_overdue) == (0, 0, 0, 0)
    assert pd.isna(quiet.confirmation_rate)


def test_ranking_score_rule_and_rank_change(dataset):
    r = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW)
    d01, d02 = _row(r, "410329-D01"), _row(r, "410329-D02")
    # default score = 1×fire points + 1×confirmed + 0.5×overdue
    assert d01.score == 3 + 1 + 0.5 and d02.score == 1 + 0 + 0.5
    assert (d01["rank"], d02["rank"]) == (14, 13)
    assert list(r.rows.unit_code[-2:]) == ["410329-D02", "410329-D01"]
    assert (r.rows["rank"] == 1).sum() == 12          # equal scores share the rank
    # previous 旬 (06-01..10): only D01 scored (#6: 1 point, confirmed) → D01 14th again, D02 was 1st
    assert d01.rank_change == 0 and d02.rank_change == 1 - 13
    assert r.to_json()["rule"] == ("得分 = 1×卫星火点 + 1×查实火情 + 0.5×逾期任务；得分越低排名越前，同分同名次。")
    custom = ReportRules(weights={"fires_per_100km2": 1.0})
    again = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW,
                         rules=custom)
    assert _row(again, "410329-D01").score == pytest.approx(_row(again, "410329-D01").fires_per_100km2, abs=1e-6)


def test_first_fire_is_flagged_in_the_period_holding_it(dataset):
    s = dataset["store"]
    first = build_report(s, xun(dt.date(2025, 6, 5)), level="township", unit="410329", now=NOW)
    flagged = first.rows[first.rows.first_fire]
    assert list(flagged.unit_code) == ["410329-D01"]
    assert flagged.first_fire_at.iloc[0] == "2025-06-10 23:00"
    june = build_report(s, month(dt.date(2025, 6, 1)), level="township", unit="410329", now=NOW)
    assert list(june.rows[june.rows.first_fire].unit_code) == ["410329-D01"]
    assert _row(june, "410329-D01").fire_points == 4 and _row(june, "410329-D02").fire_points == 2


def test_thresholds_status_deduction_and_people_concerned(dataset):
    rules = ReportRules(thresholds={"notice": 1, "interview_deputy": 3, "interview_principal": 5},
                        deduction_yuan=500)
    r = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW,
                     rules=rules)
    d01, d02 = _row(r, "410329-D01"), _row(r, "410329-D02")
    assert d01.status == "interview_deputy" and d02.status == "notice"
    assert (r.rows.status != "").sum() == 2
    assert d01.deduction_yuan == 1500 and d02.deduction_yuan == 500
    assert [p["person_key"] for p in d01.affected_people] == ["demo-d01-head", "demo-d01-leader"]
    assert d01.affected == "贾欣（演示）（主要负责人）、袁燕峰（演示）（网格长（第一责任人））"
    assert _row(r, "410329-D05").affected == ""
    default = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW)
    assert (default.rows.status == "").all()          # nobody reaches 5 fire points


def test_village_and_grid_levels_and_a_township_scope(dataset):
    s = dataset["store"]
    v = build_report(s, xun(dt.date(2025, 6, 15)), level="village", unit="410329-D01", now=NOW)
    assert len(v.rows) == 7
    assert _row(v, "410329-D01-01").fire_points == 3 and v.rows.fire_points.sum() == 3
    cells = build_report(s, xun(dt.date(2025, 6, 15)), level="cell", unit="410329-D01-01", now=NOW)
    assert len(cells.rows) == 20
    import h3
    c2 = h3.int_to_str(dataset["cells"]["c2"])
    assert _row(cells, c2).fire_points == 2 and _row(cells, c2).incidents == 1
    assert _row(cells, c2).parent_name == "演示村01-01"
    county = build_report(s, xun(dt.date(2025, 6, 15)), level="county", unit="410329", now=NOW)
    assert len(county.rows) == 1 and county.rows.fire_points.iloc[0] == 4


def test_daily_series_follows_beijing_dates(dataset):
    r = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW)
    series = r.daily.set_index("day").fire_points
    assert len(series) == 10 and series.sum() == 4
    assert series[dt.date(2025, 6, 11)] == 1 and series[dt.date(2025, 6, 12)] == 2
    assert series[dt.date(2025, 6, 15)] == 1


def test_response_times_and_dossier(dataset):
    s = dataset["store"]
    r = build_report(s, xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW)
    times = services.report_response_times(s, services.CLI, r).sort_values("arrival_h")
    assert list(times.arrival_h.dropna()) == [1.0, 4.0] and list(times.report_h.dropna()) == [3.0, 6.0]
    assert len(times) == 3
    events = reports.dossier_events(s, unit="410329-D01", period=xun(dt.date(2025, 6, 15)))
    task1 = events[events.task_id == dataset["task"][1]]
    assert list(task1.to_state) == ["assigned", "in_progress", "reported", "verified"]
    # assigned when the file was ingested (after its latest detection), worked from the fire's own times
    assert list(task1.happened_at) == ["2025-06-21 01:05", "2025-06-11 02:00", "2025-06-11 04:00",
                                       "2025-06-11 04:00"]
    assert task1.finding.iloc[2] == "confirmed_burning" and task1["flags"].iloc[2] == "no_gps"
    # every task was opened when the file was ingested, 2025-06-20 17:05 UTC (06-21 01:05 Beijing), in the next 旬:
    # task 6, worked on 06-10 (Beijing), has no event in this one
    assert set(events.task_id) == {dataset["task"][k] for k in (1, 2)}
    later = reports.dossier_events(s, unit="410329-D01", period=xun(dt.date(2025, 6, 25)))
    assert "assigned" in set(later.to_state)
    d02 = reports.dossier_events(s, unit="410329-D02", period=xun(dt.date(2025, 6, 15)))
    assert list(d02[d02.task_id == dataset["task"][4]].to_state) == ["assigned", "escalated"]
    frame = services.report_dossier(s, services.CLI, unit="410329-D01", kind="xun", date="2025-06-15")
    assert "时间（当地）" in frame.columns and "确认在烧" in set(frame["核查结果"])


def test_scope_is_enforced_for_signed_in_users(dataset):
    s = dataset["store"]
    leader = auth.load_user(s, "leader")        # grid leader of 演示乡镇01
    assert list(services.report_units(s, leader).code[:2]) == ["410329-D01", "410329-D01-01"]
    r = services.report_build(s, leader, kind="xun", date="2025-06-15", level="village", now=NOW)
    assert r.scope_code == "410329-D01" and len(r.rows) == 7
    from gridwatch.errors import PermissionDenied
    with pytest.raises(PermissionDenied):
        services.report_build(s, leader, kind="xun", date="2025-06-15", unit="410329", now=NOW)
    with pytest.raises(PermissionDenied):
        services.report_build(s, auth.load_user(s, "inspector"), kind="xun", date="2025-06-15", now=NOW)


def test_weights_and_thresholds_are_checked():
    from gridwatch.config import Settings
    from gridwatch.errors import ValidationError
    rules = ReportRules.from_settings(Settings.load(env={}, config_path=None))
    assert dict(rules.weights) == {"fire_points": 1.0, "confirmed": 1.0, "tasks_overdue": 0.5}
    # the plans give no thresholds or amounts: none applies until the county sets them (本地设置)
    assert dict(rules.thresholds) == {} and rules.deduction_yuan == 0.0 and rules.seasons[0].name == "summer_harvest"
    with pytest.raises(ValidationError):
        ReportRules.from_settings(Settings.load(env={"GRIDWATCH_REPORT_WEIGHTS": "smoke=1"}, config_path=None))
    with pytest.raises(ValidationError):
        reports.parse_thresholds("warning=3")
    assert reports.parse_weights({"incidents": 2}) == {"incidents": 2.0}


def test_cropland_csv_is_loaded_and_used(dataset, tmp_path):
    s = dataset["store"]
    path = tmp_path / "cropland.csv"
    path.write_text("unit_code,cropland_km2\n410329-D01,30\n410329-D02,12.5\n", encoding="utf-8")
    assert services.report_load_cropland(s, services.CLI, path)["units"] == 2
    r = services.report_build(s, services.CLI, kind="xun", date="2025-06-15", unit="410329", now=NOW)
    assert _row(r, "410329-D02").fires_per_100km2_cropland == pytest.approx(8.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_code,cropland_km2\n999999,3\n", encoding="utf-8")
    from gridwatch.errors import NotFound
    with pytest.raises(NotFound):
        services.report_load_cropland(s, services.CLI, bad)


def test_excel_and_csv_have_chinese_headers_and_the_page_values(dataset):
    r = build_report(dataset["store"], xun(dt.date(2025, 6, 15)), level="township", unit="410329", now=NOW)
    table = services.report_table(r)
    assert list(table.columns[:6]) == ["名次", "名次变化", "单位代码", "单位", "上级", "得分"]
    import io
    book = pd.read_excel(io.BytesIO(services.report_xlsx(r)), sheet_name=None)
    ranking = book["排名"]
    assert list(ranking.columns) == list(table.columns)
    assert ranking["单位代码"].tolist() == table["单位代码"].tolist()
    assert ranking["卫星火点"].tolist() == table["卫星火点"].tolist()
    assert ranking["查实率 (%)"].iloc[-1] == 50.0
    assert "说明" in book and "每日火点" in book
    csv = pd.read_csv(io.BytesIO(services.report_csv(r)), encoding="utf-8-sig")
    assert csv["得分"].tolist() == table["得分"].tolist()
    html = services.report_bulletin(dataset["store"], services.CLI, r)
    assert html.startswith("<!DOCTYPE html>") and "@media print" in html and "<svg" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "演示乡镇01" in html and "卫星火点通报" in html


def test_cli_report_json_and_xlsx(dataset, tmp_path, monkeypatch, capsys):
    out: list[str] = []
    store = dataset["store"]
    store.close()
    path = store.url if store.backend == "postgres" else store.path  # the demo_store fixture's private copy
    xlsx = tmp_path / "rank.xlsx"
    assert main(["report", "xun", "--date", "2025-06-15", "--db", str(path), "--json", "--xlsx", str(xlsx)],
                out=out.append) == 0
    result = json.loads(out[0])
    assert result["period"]["start"] == "2025-06-11" and result["period"]["end"] == "2025-06-20"
    assert result["rule"].startswith("得分 = ")
    row = next(r for r in result["rows"] if r["unit_code"] == "410329-D01")
    assert {k: row[k] for k in ("unit_name", "rank", "fire_points", "incidents", "confirmed",
                                "confirmation_rate")} == {"unit_name": "演示乡镇01", "rank": 14,
                                                          "fire_points": 3, "incidents": 2, "confirmed": 1,
                                                          "confirmation_rate": 0.5}
    assert pd.read_excel(xlsx, sheet_name="排名")["单位代码"].iloc[-1] == "410329-D01"
