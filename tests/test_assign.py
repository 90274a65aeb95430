"""Leaders' work assignment: re-assign, bulk-assign by cell, split a day by cell; scope, events, the screen."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gridwatch import assignment, auth, org, services, workflow
from gridwatch.config import REPO_ROOT
from gridwatch.errors import InvalidTransition, PermissionDenied, ValidationError
from gridwatch.i18n import gettext
from gridwatch.tasks import Kind
from gridwatch.audit import open_sealed
from gridwatch.workflow import open_tasks

from conftest import signed_in

#: a past local day: only the tasks a test opens are due by its end (the demo's are due after "now")
DAY = dt.date(2026, 6, 10)
DUE = np.datetime64("2026-06-10T02:00:00")  # 10:00 in Asia/Shanghai


def zh(message: str) -> str:
    """A message as the screen shows it in the default language."""
    return gettext(message, "zh_CN")


def _user(store, username: str) -> auth.User:
    return auth.load_user(store, username)


def _pid(store, key: str) -> int:
    return int(store.scalar("SELECT id FROM people WHERE person_key = ?", [key]))


def _open(store, cells: list[int], *, tag: str) -> list[int]:
    """Open one manual task per entry of ``cells`` (repeats give a cell several), due on DAY; their ids."""
    now = dt.datetime(2026, 6, 9, 0, 0, 0)
    with store.transaction():
        open_tasks(store, kind=Kind.MANUAL, cells=np.asarray(cells, dtype=np.int64), source_kind="test",
                   source_keys=np.array([f"{tag}-{i}" for i in range(len(cells))], dtype=object),
                   priority=np.full(len(cells), 2), due=np.full(len(cells), DUE), titles=np.array(
                       [f"{tag} {i}" for i in range(len(cells))], dtype=object), now=now, actor="test", detail={})
    return [int(r["id"]) for r in store.query(
        "SELECT id FROM tasks WHERE source_kind = 'test' AND source_key LIKE ? ORDER BY id", [f"{tag}-%"])]


def _a_task(store, village: str) -> dict:
    return store.query(
        "SELECT t.id, t.cell, t.assignee_id FROM tasks t JOIN cells c ON c.cell = t.cell WHERE c.village_code = ?"
        " AND t.kind = 'routine_patrol' AND t.state = 'assigned' ORDER BY t.id LIMIT 1", [village])[0]


def _denials(store) -> list[dict]:
    return store.query("SELECT action, target, detail FROM access_denials WHERE action = 'task.assign' ORDER BY id")


def _events(store, task_id: int) -> list[dict]:
    return workflow.task_detail(store, task_id)["events"]


# -- the split itself (pure) ---------------------------------------------------------------------


def test_bisect_cuts_a_row_of_cells_at_the_weighted_share_of_each_side():
    xy = np.column_stack([np.arange(6, dtype=float), np.zeros(6)])
    keys = np.arange(6)
    # three people living at x = 5, 0 and 2.5: the west two cells go to the one at 0, the middle to 2.5
    homes = np.array([[5.0, 0.0], [0.0, 0.0], [2.5, 0.0]])
    assert assignment.bisect(xy, np.ones(6), keys, homes).tolist() == [1, 1, 2, 2, 0, 0]
    # a heavy cell is a group on its own: 5 | 1+1+1+1+1
    assert assignment.bisect(xy, np.array([5, 1, 1, 1, 1, 1.0]), keys, homes[:2]).tolist() == [1, 0, 0, 0, 0, 0]


def test_bisect_cuts_along_the_longer_side_and_is_deterministic():
    # a 4 × 2 block of points: wider than tall, so the cut is vertical (x ≤ 1 | x ≥ 2)
    xy = np.array([[x, y] for y in (0.0, 1.0) for x in range(4)], dtype=float)
    homes = np.array([[3.0, 0.5], [0.0, 0.5]])
    groups = assignment.bisect(xy, np.ones(8), np.arange(8), homes)
    assert groups.tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert assignment.bisect(xy, np.ones(8), np.arange(8), homes).tolist() == groups.tolist()
    # more people than cells: everyone's group is valid, extra people get nothing
    assert sorted(assignment.bisect(xy[:2], np.ones(2), np.arange(2), np.array([[0, 0], [1, 0], [2, 0.]]))) \
        == [0, 1]


def test_day_bounds_are_the_local_day_in_utc():
    assert assignment.day_bounds(DAY) == (dt.datetime(2026, 6, 9, 16), dt.datetime(2026, 6, 10, 16))


# -- who and what a leader may assign ------------------------------------------------------------------


def test_the_township_leader_may_give_work_to_the_inspectors_of_its_villages_only(demo_store):
    people = services.assign_people(demo_store, _user(demo_store, "leader"))
    # 演示乡镇01 has seven villages, each with one person holding inspector and grid member roles
    assert list(people.person_key) == [f"demo-d01-0{i}-inspector" for i in range(1, 8)]
    assert set(people.role) == {"inspector"} and set(people.unit_code.str[:10]) == {"410329-D01"}
    county = services.assign_people(demo_store, _user(demo_store, "county"))
    assert len(county) > 100 and set(people.person_key) < set(county.person_key)
    tasks = services.assign_tasks(demo_store, _user(demo_store, "leader"))
    assert set(tasks.township_code) == {"410329-D01"}
    assert set(tasks.state) <= {"open", "assigned", "escalated"}


def test_reassigning_a_task_appends_an_event_and_keeps_the_original_assignee(demo_store):
    leader = _user(demo_store, "leader")
    task = _a_task(demo_store, "410329-D01-05")
    first = task["assignee_id"]
    assert first == _pid(demo_store, "demo-d01-05-inspector")
    before = len(_events(demo_store, task["id"]))
    result = services.assign_reassign(demo_store, leader, [task["id"]], "demo-d01-01-inspector",
                                      note="05 村巡查员请假")
    assert result == {"to": "demo-d01-01-inspector", "name": result["name"], "reassigned": 1, "unchanged": 0,
                      "tasks": [task["id"]]}
    events = _events(demo_store, task["id"])
    assert len(events) == before + 1
    last = events[-1]
    assert (last["actor"], last["from_state"], last["to_state"]) == ("leader", "assigned", "assigned")
    to = _pid(demo_store, "demo-d01-01-inspector")
    assert last["detail"] == {"by": "reassign", "note": "05 村巡查员请假", "from_assignee": first,
                              "to_assignee": to, "to_role": "inspector", "to_unit": "410329-D01-01",
                              "original_assignee": first, "assigned_by": leader.person_id}
    row = demo_store.query("SELECT state, assignee_id, assigned_role, assigned_unit FROM tasks WHERE id = ?",
                           [task["id"]])[0]
    assert row == {"state": "assigned", "assignee_id": to, "assigned_role": "inspector",
                   "assigned_unit": "410329-D01-01"}
    # a second move still names the first assignee; giving it to the same person again writes nothing
    services.assign_reassign(demo_store, leader, [task["id"]], "demo-d01-02-inspector")
    again = services.assign_reassign(demo_store, leader, [task["id"]], "demo-d01-02-inspector")
    assert (again["reassigned"], again["unchanged"]) == (0, 1)
    events = _events(demo_store, task["id"])
    assert len(events) == before + 2
    assert events[-1]["detail"]["from_assignee"] == to and events[-1]["detail"]["original_assignee"] == first
    assert "note" not in events[-1]["detail"]
    audit = demo_store.query("SELECT actor, action FROM audit_log WHERE action = 'tasks.reassign'")
    assert audit == [{"actor": "leader", "action": "tasks.reassign"}] * 2


def test_the_new_assignee_works_the_task_and_the_old_one_no_longer_sees_it(demo_store):
    leader, inspector = _user(demo_store, "leader"), _user(demo_store, "inspector")  # inspector of 演示村01-01
    task = _a_task(demo_store, "410329-D01-05")
    with pytest.raises(PermissionDenied):  # not their village
        services.work_on(demo_store, inspector, task["id"], "in_progress")
    services.assign_reassign(demo_store, leader, [task["id"]], "demo-d01-01-inspector")
    assert task["id"] in set(services.my_tasks(demo_store, inspector).id)
    services.work_on(demo_store, inspector, task["id"], "in_progress")
    assert workflow.task_detail(demo_store, task["id"])["state"] == "in_progress"
    assert task["id"] not in set(workflow.list_tasks(demo_store, assignee="demo-d01-05-inspector").id)


def test_a_leader_cannot_assign_outside_their_township_and_the_refusal_is_recorded(demo_store):
    leader = _user(demo_store, "leader")
    mine = _a_task(demo_store, "410329-D01-01")
    theirs = _a_task(demo_store, "410329-D02-01")
    events_before = len(_events(demo_store, mine["id"]))
    with pytest.raises(PermissionDenied, match="task.assign"):
        services.assign_reassign(demo_store, leader, [mine["id"], theirs["id"]], "demo-d01-02-inspector")
    with pytest.raises(PermissionDenied, match="410329-D02-02"):
        services.assign_reassign(demo_store, leader, [mine["id"]], "demo-d02-02-inspector")
    with pytest.raises(PermissionDenied):
        services.assign_cells(demo_store, leader, [int(theirs["cell"])], "demo-d01-02-inspector")
    with pytest.raises(PermissionDenied, match="You may not task.assign"):
        services.assign_reassign(demo_store, _user(demo_store, "inspector"), [mine["id"]], "demo-d01-02-inspector")
    import h3

    denials = _denials(demo_store)
    assert [d["target"] for d in denials] == [f"cell:{h3.int_to_str(int(theirs['cell']))}", "unit:410329-D02-02",
                                              f"cell:{h3.int_to_str(int(theirs['cell']))}", ""]
    assert [json.loads(d["detail"])["reason"] for d in denials] == ["out_of_scope"] * 3 + ["not_granted"]
    # all or nothing: the task in scope did not move either
    assert len(_events(demo_store, mine["id"])) == events_before
    assert demo_store.scalar("SELECT assignee_id FROM tasks WHERE id = ?", [mine["id"]]) == mine["assignee_id"]
    with pytest.raises(ValidationError, match="no inspector or grid member role"):
        services.assign_reassign(demo_store, leader, [mine["id"]], "demo-d01-head")


def test_a_started_task_stays_with_its_worker(demo_store):
    leader = _user(demo_store, "leader")
    a, b = _a_task(demo_store, "410329-D01-01"), _a_task(demo_store, "410329-D01-02")
    workflow.transition(demo_store, b["id"], "in_progress", actor="inspector", actor_person_id=b["assignee_id"])
    with pytest.raises(InvalidTransition, match=f"Task {b['id']} is already in_progress"):
        services.assign_reassign(demo_store, leader, [a["id"], b["id"]], "demo-d01-03-inspector")
    assert demo_store.scalar("SELECT assignee_id FROM tasks WHERE id = ?", [a["id"]]) == a["assignee_id"]


def test_assigning_cells_moves_every_task_nobody_started_on_them(demo_store):
    leader = _user(demo_store, "leader")
    # two cells of 演示村01-03 without fire checks: one routine patrol each
    cells = [int(r["cell"]) for r in demo_store.query(
        "SELECT c.cell FROM cells c WHERE c.village_code = '410329-D01-03' AND NOT EXISTS (SELECT 1 FROM tasks t"
        " WHERE t.cell = c.cell AND t.kind <> 'routine_patrol') ORDER BY c.cell LIMIT 2")]
    extra = _open(demo_store, [cells[0], cells[0]], tag="cells")  # cell A: 1 patrol + 2 manual, cell B: 1 patrol
    workflow.transition(demo_store, extra[1], "in_progress", actor="x")
    result = services.assign_cells(demo_store, leader, cells, "demo-d01-07-inspector", note="集中处理")
    assert (result["cells"], result["reassigned"], result["unchanged"]) == (2, 3, 0)
    to = _pid(demo_store, "demo-d01-07-inspector")
    rows = demo_store.query("SELECT id, assignee_id, state FROM tasks WHERE cell IN (?, ?) ORDER BY id", cells)
    assert [(r["assignee_id"] == to, r["state"]) for r in rows if r["id"] != extra[1]] == [(True, "assigned")] * 3
    assert demo_store.scalar("SELECT assignee_id FROM tasks WHERE id = ?", [extra[1]]) != to
    assert _events(demo_store, extra[0])[-1]["detail"]["by"] == "cells"


# -- split by cell for a day ---------------------------------------------------------------------------


def _row_of_cells(store) -> list[int]:
    """Six cells of 演示乡镇01 in a narrow east–west band, west to east."""
    rows = store.query(
        "SELECT cell, lng FROM cells WHERE township_code = '410329-D01' AND abs(lat - 34.5022) < 0.004 ORDER BY lng")
    assert len(rows) >= 6
    pick = np.linspace(0, len(rows) - 1, 6).round().astype(int)
    return [int(rows[i]["cell"]) for i in pick]


def test_split_gives_each_person_the_cells_near_them_balanced_by_task_count(demo_store):
    leader = _user(demo_store, "leader")
    row = _row_of_cells(demo_store)
    # two grid members holding their role on one cell each: one at the west end, one at the east end
    for key, cell in (("west-member", row[0]), ("east-member", row[-1])):
        pid = org.add_person(demo_store, person_key=key, name=key)
        org.assign_role(demo_store, pid, "grid_member", cell=cell)
    # tasks due on DAY: 3 on the westernmost cell, 1 on each of the other five — 8 in all
    ids = _open(demo_store, [row[0], row[0], row[0], *row[1:]], tag="split")
    plan = services.assign_split_preview(demo_store, leader, DAY, ["east-member", "west-member"])
    assert sorted(plan.tasks.task_id) == ids
    by_person = plan.people.set_index("person_key")
    # 3 + 1 | 1 + 1 + 1 + 1: the west member gets the two western cells, the east member the four others
    assert by_person.loc["west-member", ["cells", "tasks"]].tolist() == [2, 4]
    assert by_person.loc["east-member", ["cells", "tasks"]].tolist() == [4, 4]
    assert plan.spread == 0
    west = set(plan.tasks[plan.tasks.person_key == "west-member"].cell)
    assert west == {row[0], row[1]}
    # the same inputs give the same plan
    again = services.assign_split_preview(demo_store, leader, DAY, ["west-member", "east-member"])
    assert again.tasks[["task_id", "person_key"]].equals(plan.tasks[["task_id", "person_key"]])
    # nothing is written by a preview
    assert all(len(_events(demo_store, i)) == 1 for i in ids)

    workflow.transition(demo_store, ids[-1], "in_progress", actor="x")  # started after the preview
    result = services.assign_split_apply(demo_store, leader, plan, note="6 月 10 日分工")
    assert result == {"reassigned": 7, "unchanged": 0, "skipped": 1, "people": 2}
    west_id = _pid(demo_store, "west-member")
    first = _events(demo_store, ids[0])[-1]["detail"]
    assert (first["by"], first["day"], first["to_assignee"], first["note"]) == ("split", "2026-06-10", west_id,
                                                                                  "6 月 10 日分工")
    assert first["to_unit"] == "" and first["to_role"] == "grid_member"
    # applying it again changes nothing
    assert services.assign_split_apply(demo_store, leader, plan) == {"reassigned": 0, "unchanged": 7,
                                                                     "skipped": 1, "people": 2}


def test_split_refuses_people_outside_the_scope_and_needs_someone(demo_store):
    leader = _user(demo_store, "leader")
    with pytest.raises(ValidationError, match="at least one person"):
        services.assign_split_preview(demo_store, leader, DAY, [])
    with pytest.raises(PermissionDenied, match="410329-D03-01"):
        services.assign_split_preview(demo_store, leader, DAY, ["demo-d01-01-inspector", "demo-d03-01-inspector"])
    assert _denials(demo_store)[-1]["target"] == "unit:410329-D03-01"


# -- the screen -----------------------------------------------------------------------------------


def test_the_leader_reassigns_a_task_and_splits_a_day_on_the_screen(app_db):
    at = signed_in(app_db, "leader", REPO_ROOT / "pages" / "assign.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "分派任务"
    assert [t.label for t in at.tabs] == ["按任务分派", "按网格单元分派", "按网格分派当天任务", "新建任务"]
    with open_sealed(str(app_db)) as store:
        open_count = store.scalar(
            "SELECT count(*) FROM tasks t JOIN cells c ON c.cell = t.cell WHERE c.township_code = '410329-D01'"
            " AND t.state IN ('open', 'assigned', 'escalated')")
        task = _a_task(store, "410329-D01-04")
    assert at.caption[0].value == f"{open_count} 项任务尚未开始"
    options = at.selectbox(key="assign_to").options
    assert len(options) == 8 and options[0] == "选择人员" and all("演示村01-0" in o for o in options[1:])
    at.multiselect(key="assign_task_ids").set_value([task["id"]])
    at.selectbox(key="assign_to").set_value("demo-d01-06-inspector")
    at.text_input(key="assign_note").input("04 村今日人手不足").run()
    at.button(key="assign_go").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("已将 1 项任务分派给")
    with open_sealed(str(app_db)) as store:
        last = workflow.task_detail(store, task["id"])["events"][-1]
        assert last["actor"] == "leader" and last["detail"]["note"] == "04 村今日人手不足"
        assert last["detail"]["to_assignee"] == _pid(store, "demo-d01-06-inspector")

    # split the next days' work between two inspectors: preview, then apply
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date()
    at.date_input(key="split_day").set_value(day)
    at.multiselect(key="split_people").set_value(["demo-d01-01-inspector", "demo-d01-07-inspector"]).run()
    at.button(key="split_preview").click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == f"{day} 的分派方案"
    shown = at.dataframe[-1].value
    assert list(shown.columns) == [zh("Person"), zh("Cells"), "任务", "颜色"] and len(shown) == 2
    planned = int(shown["任务"].sum())
    assert planned > 0 and abs(int(shown["任务"].iloc[0]) - int(shown["任务"].iloc[1])) <= 3
    at.button(key="split_apply").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("方案已执行")
    with open_sealed(str(app_db)) as store:
        moved = store.scalar("SELECT count(*) FROM task_events WHERE actor = 'leader' AND detail LIKE '%\"split\"%'")
        stayed = planned - moved
        assert f"改派 {moved} 项任务，{stayed} 项保持原负责人" in at.success[0].value


def test_the_screen_refuses_a_person_who_may_not_assign(app_db):
    at = signed_in(app_db, "inspector", REPO_ROOT / "pages" / "assign.py").run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["您无权执行 task.assign。"]
    assert not at.tabs and not at.dataframe
