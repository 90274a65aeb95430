"""Task work: events, findings, proof of presence, four eyes, escalation up the chain, routine patrols."""

from __future__ import annotations

import datetime as dt
import json

import h3
import pytest

from gridwatch import services, workflow
from gridwatch.cli import main
from gridwatch.errors import InvalidTransition, NotFound, PermissionDenied, ValidationError
from gridwatch.policy import DispatchPolicy, Policy
from gridwatch.tasks import State, derive_state
from gridwatch.workflow import Fix


def _a_fire_task(store):
    row = store.query("SELECT t.id, t.cell, t.assignee_id FROM tasks t WHERE t.kind = 'fire_check'"
                      " AND t.state = 'assigned' AND NOT t.coverage_gap ORDER BY t.id LIMIT 1")[0]
    lat, lng = h3.cell_to_latlng(h3.int_to_str(int(row["cell"])))
    return row, lat, lng


def _person(store, key):
    return store.scalar("SELECT id FROM people WHERE person_key = ?", [key])


def test_a_report_with_gps_in_the_cell_is_verified_by_someone_else(demo_store):
    task, lat, lng = _a_fire_task(demo_store)
    me = task["assignee_id"]
    workflow.transition(demo_store, task["id"], "in_progress", actor="inspector", actor_person_id=me)
    detail = workflow.transition(demo_store, task["id"], "reported", actor="inspector", actor_person_id=me,
                                 finding="extinguished", note="秸秆已扑灭", fix=Fix(lat, lng, 8.0),
                                 photos=[{"sha256": "ab" * 32, "name": "p.jpg"}])
    assert detail["outside_cell_m"] == 0 and "flags" not in detail
    with pytest.raises(PermissionDenied, match="four eyes"):
        workflow.transition(demo_store, task["id"], "verified", actor="inspector", actor_person_id=me)
    leader = _person(demo_store, "demo-county-leader")
    workflow.transition(demo_store, task["id"], "verified", actor="leader", actor_person_id=leader)
    workflow.transition(demo_store, task["id"], "closed", actor="leader", actor_person_id=leader)
    shown = services.task_show(demo_store, services.CLI, task["id"])
    assert shown["state"] == "closed"
    assert [e["to_state"] for e in shown["events"]] == ["assigned", "in_progress", "reported", "verified", "closed"]
    assert derive_state(shown["events"]) is State.CLOSED
    assert shown["events"][2]["detail"]["finding"] == "extinguished"
    assert shown["events"][2]["detail"]["gps"]["accuracy_m"] == 8.0


def test_a_report_from_elsewhere_or_without_gps_is_flagged_not_refused(demo_store):
    task, lat, lng = _a_fire_task(demo_store)
    workflow.transition(demo_store, task["id"], "in_progress", actor="i", actor_person_id=task["assignee_id"])
    detail = workflow.transition(demo_store, task["id"], "reported", actor="i", actor_person_id=task["assignee_id"],
                                 finding="false_alarm", fix=Fix(lat + 0.05, lng, 10.0))
    assert detail["flags"] == ["gps_outside_cell"] and detail["outside_cell_m"] > 4000
    other, *_ = _a_fire_task(demo_store)
    workflow.transition(demo_store, other["id"], "in_progress", actor="i")
    assert workflow.transition(demo_store, other["id"], "reported", actor="i",
                               finding="false_alarm")["flags"] == ["no_gps"]


def test_findings_transitions_and_rejections_are_checked(demo_store):
    task, lat, lng = _a_fire_task(demo_store)
    with pytest.raises(InvalidTransition):
        workflow.transition(demo_store, task["id"], "closed", actor="x")
    workflow.transition(demo_store, task["id"], "in_progress", actor="x", actor_person_id=task["assignee_id"])
    with pytest.raises(ValidationError, match="finding"):
        workflow.transition(demo_store, task["id"], "reported", actor="x", finding="seized")
    workflow.transition(demo_store, task["id"], "reported", actor="x", actor_person_id=task["assignee_id"],
                        finding="confirmed_burning", fix=Fix(lat, lng))
    with pytest.raises(ValidationError, match="reason"):
        workflow.transition(demo_store, task["id"], "rejected", actor="leader", actor_person_id=-1)
    workflow.transition(demo_store, task["id"], "rejected", actor="leader", actor_person_id=-1,
                        note="照片看不清，请补拍")
    workflow.transition(demo_store, task["id"], "in_progress", actor="x")
    events = services.task_show(demo_store, services.CLI, task["id"])["events"]
    assert [e["to_state"] for e in events][-2:] == ["rejected", "in_progress"]
    assert events[-2]["detail"]["note"] == "照片看不清，请补拍"
    # nothing was written by the refused attempts
    assert len(events) == 5


def test_overdue_tasks_climb_the_chain_and_keep_the_first_assignee_on_record(demo_store):
    task, *_ = _a_fire_task(demo_store)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    first = workflow.escalate_overdue(demo_store, now=later, policy=Policy())
    assert first["escalated"] >= 1
    shown = services.task_show(demo_store, services.CLI, task["id"])
    assert shown["state"] == "escalated"
    step = shown["events"][-1]["detail"]
    assert step["from_assignee"] == task["assignee_id"] and step["from_role"] == "inspector"
    assert step["to_role"] == "grid_leader"
    # a grid leader holds it now; next time it goes one step further up
    workflow.escalate_overdue(demo_store, now=later + dt.timedelta(days=10), policy=Policy())
    again = services.task_show(demo_store, services.CLI, task["id"])["events"][-1]["detail"]
    assert again["from_role"] == "grid_leader" and again["from_assignee"] == step["to_assignee"]
    assert (again["to_role"], again["to_unit"]) != (step["to_role"], step["to_unit"])


def test_escalation_gives_the_service_level_hours_of_the_policy_passed_in(demo_store):
    task, *_ = _a_fire_task(demo_store)
    later = dt.datetime(2030, 1, 1, 8, 0)
    workflow.escalate_overdue(demo_store, now=later, policy=Policy(dispatch=DispatchPolicy(sla_hours=5.0)))
    due = demo_store.scalar("SELECT due_at FROM tasks WHERE id = ?", [task["id"]])
    assert due == later + dt.timedelta(hours=5)


def test_an_overdue_task_climbs_to_the_city_with_the_hours_of_each_step(demo_store):
    from gridwatch import org
    from gridwatch.config import Settings

    task = demo_store.query(
        "SELECT t.id, t.cell FROM tasks t JOIN cells c ON c.cell = t.cell WHERE t.kind = 'fire_check'"
        " AND t.state = 'assigned' AND t.assigned_role = 'inspector' AND EXISTS (SELECT 1 FROM assignments a"
        " WHERE a.role = 'grid_leader' AND a.unit_code = c.village_code) ORDER BY t.id LIMIT 1")[0]
    own = demo_store.query("SELECT village_code, township_code, county_code, city_code FROM cells WHERE cell = ?",
                           [task["cell"]])[0]
    township_leader = f"demo-{own['township_code'].rsplit('-', 1)[-1].lower()}-leader"
    head = org.add_person(demo_store, person_key="village-head", name="村主任")
    org.assign_role(demo_store, head, "unit_head", unit_code=own["village_code"])
    city = org.add_person(demo_store, person_key="city-leader", name="市网格长")
    org.assign_role(demo_store, city, "grid_leader", unit_code=own["city_code"])
    policy = Policy.from_settings(Settings.load(env={}, config_path=None,
                                                sla_step_hours={"village": 24, "township": 36, "county": 48,
                                                                "city": 72}))
    expected = [("grid_leader", own["village_code"], "village", 24, [head]),
                ("unit_head", own["township_code"], "township", 36, [_person(demo_store, township_leader)]),
                ("grid_leader", own["county_code"], "county", 48, [_person(demo_store, "demo-county-head")]),
                ("grid_leader", own["city_code"], "city", 72, None)]
    for role, unit, level, hours, informed in expected:
        due = demo_store.scalar("SELECT due_at FROM tasks WHERE id = ?", [task["id"]])
        now = due + dt.timedelta(minutes=1)
        assert workflow.escalate_overdue(demo_store, now=due, policy=policy)["escalated"] >= 0  # not yet overdue
        held = demo_store.query("SELECT assigned_role, assigned_unit FROM tasks WHERE id = ?", [task["id"]])[0]
        assert (held["assigned_role"], held["assigned_unit"]) != (role, unit)
        workflow.escalate_overdue(demo_store, now=now, policy=policy)
        step = services.task_show(demo_store, services.CLI, task["id"])["events"][-1]["detail"]
        assert (step["to_role"], step["to_unit"], step["to_level"], step["hours"]) == (role, unit, level, hours)
        assert step.get("informed") == informed
        assert demo_store.scalar("SELECT due_at FROM tasks WHERE id = ?", [task["id"]]) == \
            now + dt.timedelta(hours=hours)
    # the top: the city's grid leader keeps it, with the city's hours again
    now = demo_store.scalar("SELECT due_at FROM tasks WHERE id = ?", [task["id"]]) + dt.timedelta(minutes=1)
    workflow.escalate_overdue(demo_store, now=now, policy=policy)
    top = services.task_show(demo_store, services.CLI, task["id"])
    assert top["events"][-1]["detail"]["top_of_chain"] is True and top["assignee_id"] == city
    assert top["due_at"] == now + dt.timedelta(hours=72)


def test_without_step_hours_escalation_keeps_the_hours_of_the_kind(demo_store):
    task, *_ = _a_fire_task(demo_store)
    later = dt.datetime(2030, 1, 1, 8, 0)
    policy = Policy(dispatch=DispatchPolicy(sla_hours=5.0))
    assert policy.step_hours == {} and policy.escalation_hours("fire_check", "village") == 5.0
    workflow.escalate_overdue(demo_store, now=later, policy=policy)
    assert services.task_show(demo_store, services.CLI, task["id"])["events"][-1]["detail"]["hours"] == 5.0


@pytest.mark.parametrize("value, needle", [({"hamlet": 5}, "hamlet"), ({"village": 0}, "village"),
                                           ("village=soon", "soon"), ("village", "name=value")])
def test_wrong_step_hours_are_refused_naming_them(value, needle):
    from gridwatch.config import Settings

    with pytest.raises(ValidationError, match=needle):
        Policy.from_settings(Settings.load(env={}, config_path=None, sla_step_hours=value))


def _assigned(store, n: int) -> list[int]:
    return [int(r["id"]) for r in store.query("SELECT id FROM tasks WHERE state = 'assigned' ORDER BY id LIMIT ?",
                                              [n])]


def _history(store, task_id: int) -> list[dict]:
    return store.query("SELECT actor, from_state, to_state, detail FROM task_events WHERE task_id = ? ORDER BY id",
                       [task_id])


def test_withdrawal_leaves_tasks_no_longer_active_as_they_are(demo_store):
    a, b = _assigned(demo_store, 2)
    assert workflow.withdraw_tasks(demo_store, [b], note="moot", actor="layer-publish") == 1
    assert workflow.withdraw_tasks(demo_store, [a, b], note=["", "again"], actor="layer-publish") == 1
    assert _history(demo_store, b)[-1] == {"actor": "layer-publish", "from_state": "assigned",
                                           "to_state": "withdrawn", "detail": '{"note": "moot"}'}
    assert [e["to_state"] for e in _history(demo_store, b)].count("withdrawn") == 1
    assert _history(demo_store, a)[-1]["detail"] == "{}"
    assert {r["state"] for r in demo_store.query("SELECT state FROM tasks WHERE id IN (?, ?)", [a, b])} == {
        "withdrawn"}


def test_the_one_door_checks_every_step_and_a_refused_one_writes_nothing(demo_store):
    a, b = _assigned(demo_store, 2)
    workflow.withdraw_tasks(demo_store, [b], note="moot", actor="layer-publish")
    before = len(_history(demo_store, a))
    now = dt.datetime(2026, 6, 1, 8, 0)
    with pytest.raises(InvalidTransition, match="withdrawn to in_progress"):
        with demo_store.transaction():
            workflow.record_events(demo_store, [a, b], State.IN_PROGRESS, actor="x", now=now, detail={})
    assert len(_history(demo_store, a)) == before
    assert demo_store.scalar("SELECT state FROM tasks WHERE id = ?", [a]) == "assigned"
    with pytest.raises(InvalidTransition, match="new task"):  # a creation starts open or assigned only
        workflow.record_events(demo_store, [a], "reported", actor="x", now=now, detail={}, created=True)
    with pytest.raises(NotFound):
        workflow.record_events(demo_store, [a, 10**12], State.IN_PROGRESS, actor="x", now=now, detail={})
    ids = workflow.record_events(demo_store, [a], State.IN_PROGRESS, actor="x", now=now, detail={"note": "n"})
    assert workflow.last_event_id(demo_store, a) == int(ids[0])
    assert _history(demo_store, a)[-1] == {"actor": "x", "from_state": "assigned", "to_state": "in_progress",
                                           "detail": '{"note": "n"}'}


def test_routine_patrols_are_weekly_idempotent_and_oldest_first(demo_store):
    # weeks before the demo was built: the demo opened the current week's round (by the real clock) already
    now = dt.datetime(2025, 11, 24, 8, tzinfo=dt.UTC)
    made = workflow.generate_patrols(demo_store, now=now)
    cells = demo_store.scalar("SELECT count(*) FROM cells")
    assert made["created"] == cells
    assert workflow.generate_patrols(demo_store, now=now + dt.timedelta(hours=5))["created"] == 0
    assert workflow.generate_patrols(demo_store, now=now + dt.timedelta(days=7))["created"] == cells
    gaps = demo_store.scalar("SELECT count(*) FROM tasks WHERE kind = 'routine_patrol' AND coverage_gap")
    assert gaps > 0  # the demo's villages without an inspector


def test_cli_tasks_and_patrols(demo_copy):
    db = demo_copy
    out: list[str] = []
    assert main(["tasks", "list", "--kind", "fire_check", "--limit", "3", "--json", "--db", str(db)],
                out=out.append) == 0
    rows = json.loads(out[-1])
    assert len(rows) == 3 and {"id", "state", "cell", "due_at", "assignee"} <= set(rows[0])
    assert main(["tasks", "show", str(rows[0]["id"]), "--json", "--db", str(db)], out=out.append) == 0
    assert json.loads(out[-1])["events"][0]["actor"] == "dispatch"
    assert main(["patrols", "generate", "--json", "--db", str(db)], out=out.append) == 0
    made = json.loads(out[-1])
    assert made["created"] == 0 and made["cells"] > 1800  # the demo opened this week's round already
    assert main(["tasks", "show", "999999", "--db", str(db)], out=out.append) == 2


def test_patrol_weeks_run_monday_to_sunday_in_beijing(demo_store):
    cells = demo_store.scalar("SELECT count(*) FROM cells")
    monday = dt.datetime(2025, 11, 16, 16, 0)  # Monday 2025-11-17 00:00 in Beijing
    assert workflow.generate_patrols(demo_store, now=monday)["created"] == cells
    sunday_night = dt.datetime(2025, 11, 23, 15, 59)  # Sunday 23:59 in Beijing: still the same week
    assert workflow.generate_patrols(demo_store, now=sunday_night)["created"] == 0
    due = demo_store.query_df("SELECT min(due_at) AS first, max(due_at) AS last FROM tasks"
                              " WHERE kind = 'routine_patrol' AND source_key LIKE '%:week:2025-11-17'")
    assert due["last"][0] <= dt.datetime(2025, 11, 23, 16, 0)  # due by the end of Sunday, Beijing time
    assert workflow.generate_patrols(demo_store, now=sunday_night + dt.timedelta(minutes=1))["created"] == cells
