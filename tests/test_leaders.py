"""The leaders' board: task filters, who is behind, coverage gaps, the cells nobody has visited (core and screen)."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch import services
from gridwatch.errors import PermissionDenied

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _user(store, name):
    return services.current_user(store, services.sign_in(store, name, services.DEMO_PASSWORD).token)


def _township_cells(store, code):
    return set(store.query_df("SELECT cell FROM cells WHERE township_code = ?", [code]).cell)


def test_the_board_holds_the_open_tasks_of_the_leaders_township_only(demo_store):
    leader = _user(demo_store, "leader")
    board = services.leader_board(demo_store, leader)
    expected = demo_store.query_df(
        "SELECT t.id FROM tasks t JOIN cells c ON c.cell = t.cell WHERE c.township_code = '410329-D01'"
        " AND t.state IN ('open', 'assigned', 'in_progress', 'escalated', 'rejected', 'reported')")
    assert sorted(board.id) == sorted(expected.id) and len(board) > 0
    assert set(board.cell) <= _township_cells(demo_store, "410329-D01")
    fires = services.leader_board(demo_store, leader, kind="fire_check")
    assert set(fires.kind) == {"fire_check"} and 0 < len(fires) < len(board)
    village = fires.village_code.iloc[0]
    assert set(services.leader_board(demo_store, leader, kind="fire_check", village=village).village_code) == {village}
    assert village in services.leader_villages(demo_store, leader)


def test_overdue_tasks_go_first_and_name_who_is_behind(demo_store):
    leader = _user(demo_store, "leader")
    fires = services.leader_board(demo_store, leader, kind="fire_check")
    late = fires.iloc[-1]
    demo_store.execute("UPDATE tasks SET due_at = ? WHERE id = ?", [NOW - dt.timedelta(hours=5), int(late.id)])
    board = services.leader_board(demo_store, leader)
    assert int(board.id.iloc[0]) == int(late.id) and board.overdue.iloc[0] and board.overdue.sum() == 1
    assert list(services.leader_board(demo_store, leader, overdue_only=True).id) == [int(late.id)]
    behind = services.people_behind(demo_store, leader)
    first = behind.iloc[0]
    assert first.assignee_key == late.assignee_key and first.overdue == 1
    assert first.oldest_overdue_due == pytest.approx(NOW - dt.timedelta(hours=5), abs=dt.timedelta(seconds=1))
    assert behind.overdue.sum() == 1
    assert behind.open.sum() == len(board[board.kind != "routine_patrol"])


def test_coverage_gaps_inside_the_scope(demo_store):
    leader = _user(demo_store, "leader")
    gaps = services.scope_coverage(demo_store, leader)
    assert gaps["cells_checked"] == len(_township_cells(demo_store, "410329-D01"))
    whole = services.coverage(demo_store, services.CLI)
    inside = [u for u in whole["units_without_grid_leader"] if u["code"].startswith("410329-D01")]
    assert gaps["units_without_grid_leader"] == inside
    # an inspector gap: take the inspector off one village
    village = "410329-D01-02"
    cells = demo_store.query_df("SELECT cell FROM cells WHERE village_code = ?", [village]).cell
    demo_store.execute("DELETE FROM assignments WHERE role = 'inspector' AND (unit_code = ? OR cell IN (SELECT cell"
                       " FROM cells WHERE village_code = ?))", [village, village])
    after = services.scope_coverage(demo_store, leader)["cells_without_inspector"]
    assert after["count"] == len(cells) + gaps["cells_without_inspector"]["count"]
    assert {"code": village, "name": "演示村01-02", "cells": len(cells)} in after["by_village"]


def test_cells_nobody_visited_come_first_and_a_report_moves_a_cell_last(demo_store):
    leader = _user(demo_store, "leader")
    inspector = _user(demo_store, "inspector")
    task = services.my_tasks(demo_store, inspector).iloc[0]
    services.work_on(demo_store, inspector, int(task.id), "in_progress")
    services.work_on(demo_store, inspector, int(task.id), "reported", finding=services.findings(task.kind)[0])
    visits = services.cells_not_visited(demo_store, leader, limit=10_000)
    assert visits.cell_id.iloc[-1] == task.cell_id and visits.last_visit.iloc[:-1].isna().all()


def test_an_inspector_has_no_board(demo_store):
    with pytest.raises(PermissionDenied):
        services.leader_board(demo_store, _user(demo_store, "inspector"))


def test_the_review_screen_shows_the_board_and_gaps(app_db):
    from gridwatch.config import REPO_ROOT
    from tests.conftest import signed_in

    at = signed_in(app_db, "leader", REPO_ROOT / "app.py").run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["任务看板", "进度落后人员", "覆盖缺口", "久未巡查单元", "冲突留存"]
    assert "无巡查员的网格单元" in [m.label for m in at.metric]
    assert len(at.dataframe) >= 3


def test_not_visited_means_not_this_calendar_week_in_beijing(demo_store):
    from gridwatch.periods import period_at
    from gridwatch.services.leaders import cell_status

    leader = _user(demo_store, "leader")
    inspector = _user(demo_store, "inspector")
    task = services.my_tasks(demo_store, inspector).iloc[0]
    services.work_on(demo_store, inspector, int(task.id), "in_progress")
    services.work_on(demo_store, inspector, int(task.id), "reported", finding=services.findings(task.kind)[0])
    visited = demo_store.scalar("SELECT max(happened_at) FROM task_events WHERE to_state = 'reported'")
    week = period_at("week", visited)
    _, next_monday = week.utc_bounds()
    cell = int(task.cell)
    this_week = cell_status(demo_store, leader, now=visited + dt.timedelta(minutes=1)).set_index("cell")
    next_week = cell_status(demo_store, leader, now=next_monday + dt.timedelta(minutes=1)).set_index("cell")
    assert this_week.status[cell] != "not_observed"
    # less than seven days may have passed, yet the visit lies in last week: the cell is not observed this week
    assert next_week.status[cell] in ("not_observed", "overdue", "active")
    assert (next_week.status[cell] == "not_observed") or next_week.active[cell] > 0
