"""The problem register (问题台账): a finding opens a problem, which is handed over, rectified, checked by another
person and closed or returned; repeats, escalation, re-check patrols (回头看), alarms, scope and the seal."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import h3
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gridwatch import audit, auth, problems, services, workflow
from gridwatch.cli import main
from gridwatch.errors import InvalidTransition, NotFound, PermissionDenied, ValidationError
from gridwatch.config import Settings
from gridwatch.policy import Policy, ProblemRules, rules_in_force
from gridwatch.problems import State
from gridwatch.services._common import DEMO_SETTINGS
from gridwatch.workflow import Fix

VILLAGE = "410329-D01-01"   # the demo inspector's village
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _photo(colour: str = "green") -> tuple[str, bytes]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
    return ("after.jpg", buf.getvalue())


def _users(store):
    return {name: auth.load_user(store, name) for name in ("inspector", "leader", "county")}


def _inspector_task(store, kind: str = "fire_check", n: int = 0) -> dict:
    """A task of the demo inspector (on a cell of their village), started."""
    person = store.scalar("SELECT id FROM people WHERE person_key = 'demo-d01-01-inspector'")
    row = store.query("SELECT t.id, t.cell FROM tasks t JOIN cells c ON c.cell = t.cell WHERE t.kind = ?"
                      " AND t.state = 'assigned' AND t.assignee_id = ? ORDER BY t.id LIMIT 1 OFFSET ?",
                      [kind, person, n])[0]
    return {"id": int(row["id"]), "cell": int(row["cell"])}


def _centre(cell: int) -> Fix:
    lat, lng = h3.cell_to_latlng(h3.int_to_str(int(cell)))
    return Fix(lat, lng, 5.0)


def _found_by_report(store, users, finding: str = "confirmed_burning", kind: str = "fire_check", n: int = 0):
    """The inspector reports ``finding`` on a task; the leader verifies it. The task and the verification's detail."""
    task = _inspector_task(store, kind, n)
    services.work_on(store, users["inspector"], task["id"], "in_progress")
    services.work_on(store, users["inspector"], task["id"], "reported", finding=finding, note="现场",
                     fix=_centre(task["cell"]))
    detail = services.verify(store, users["leader"], task["id"], accept=True)
    return task, detail


def test_the_demo_configures_the_register_as_demo_settings(demo_store):
    rules = {r["key"]: r for r in services.rules(demo_store, services.CLI)}
    for key in ("problem_rectify_days", "problem_repeat_days", "problem_recheck_days"):
        assert rules[key]["source"] == "demo" and not rules[key]["off"], rules[key]
    assert DEMO_SETTINGS["problem_repeat_days"] == 90


def test_the_register_is_off_until_configured():
    rules = Policy().problems
    assert rules.rectify_days == {} and rules.repeat_days == 0 and rules.recheck_days == 0
    listed = {r.key: r for r in rules_in_force(Policy())}
    for key in ("problem_rectify_days", "problem_repeat_days", "problem_recheck_days"):
        assert listed[key].off and listed[key].source == "local"
    with pytest.raises(ValidationError, match="Unknown problem category"):
        Policy.from_settings(Settings(problem_rectify_days="smoke=3"))
    with pytest.raises(ValidationError, match="at most a year"):
        ProblemRules.from_settings(Settings(problem_rectify_days="bare_land=0"))
    set_here = Policy.from_settings(Settings(problem_rectify_days="bare_land=30", problem_repeat_days="90",
                                             rule_documents={"problem_rectify_days": "伊政办〔2026〕1号"}))
    listed = {r.key: r for r in rules_in_force(set_here)}
    assert listed["problem_rectify_days"].value == "bare_land=30"
    assert listed["problem_rectify_days"].document == "伊政办〔2026〕1号" and listed["problem_repeat_days"].value == "90"


def test_the_whole_life_found_to_closed_with_the_check_by_another_person(demo_store):
    users = _users(demo_store)
    task, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    # linked both ways: the task shows its problem, the problem its task
    assert services.task_show(demo_store, users["leader"], task["id"])["problem_id"] == pid
    shown = services.problem_show(demo_store, users["inspector"], pid)
    assert shown["finding_task_id"] == task["id"] and shown["category"] == "straw_burning"
    assert shown["state"] == "found" and shown["deadline_at"] is not None  # demo: straw burning within a day
    with pytest.raises(PermissionDenied):  # an inspector hands nothing over
        services.problem_assign(demo_store, users["inspector"], pid, party_kind="enterprise", party_name="x")
    with pytest.raises(ValidationError, match="names who must fix it"):
        services.problem_assign(demo_store, users["leader"], pid, party_kind="company", party_name="x")
    services.problem_assign(demo_store, users["leader"], pid, party_kind="person",
                            person_key="demo-d01-01-inspector", note="限期清理火场")
    services.problem_start(demo_store, users["inspector"], pid)
    with pytest.raises(ValidationError, match="photo"):
        services.problem_rectified(demo_store, users["inspector"], pid, note="已清理")
    with pytest.raises(ValidationError, match="note"):
        services.problem_rectified(demo_store, users["inspector"], pid, note=" ", photos=[_photo()])
    cell = int(demo_store.scalar("SELECT cell FROM problems WHERE id = ?", [pid]))
    services.problem_rectified(demo_store, users["inspector"], pid, note="火场已清理，秸秆已离田",
                               photos=[_photo()], fix=_centre(cell))
    assert services.problem_actions(demo_store, users["leader"], pid) == ["check"]
    checked = services.problem_check(demo_store, users["leader"], pid, passed=True, note="现场复核无火点",
                                     fix=_centre(cell))
    assert checked["outcome"] == "closed" and checked["outside_cell_m"] == 0
    shown = services.problem_show(demo_store, users["leader"], pid)
    assert shown["state"] == "closed" and shown["closed_at"] is not None
    assert [e["to_state"] for e in shown["events"]] == ["found", "assigned", "rectifying", "rectified", "checked",
                                                      "closed"]
    assert shown["events"][1]["detail"]["party"]["kind"] == "person"
    assert shown["events"][3]["detail"]["photos"][0]["media_type"] == "image/jpeg"
    assert shown["events"][4]["person_id"] != shown["events"][3]["person_id"]
    assert audit.verify(demo_store)["ok"]
    sealed = demo_store.scalar("SELECT max(last_id) FROM audit_chain WHERE source = 'problem_events'")
    assert sealed == demo_store.scalar("SELECT max(id) FROM problem_events")


def test_the_rectifier_cannot_check_and_a_failed_check_returns_the_problem(demo_store):
    users = _users(demo_store)
    _, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    leader = users["leader"]  # the township's grid leader may work and verify: rectifies here, so may not check
    services.problem_assign(demo_store, leader, pid, party_kind="enterprise", party_name="伊川某建材有限公司")
    services.problem_start(demo_store, leader, pid)
    services.problem_rectified(demo_store, leader, pid, note="已整改", photos=[_photo()])
    assert "check" not in services.problem_actions(demo_store, leader, pid)
    events = demo_store.scalar("SELECT count(*) FROM problem_events WHERE problem_id = ?", [pid])
    with pytest.raises(PermissionDenied, match="another person"):
        services.problem_check(demo_store, leader, pid, passed=True)
    assert demo_store.scalar("SELECT count(*) FROM problem_events WHERE problem_id = ?", [pid]) == events
    with pytest.raises(ValidationError, match="reason"):
        services.problem_check(demo_store, users["county"], pid, passed=False)
    out = services.problem_check(demo_store, users["county"], pid, passed=False, note="仍有残留秸秆，请再清理")
    assert out["outcome"] == "returned" and out["flags"] == ["no_gps"]
    assert services.problem_show(demo_store, leader, pid)["state"] == "returned"
    services.problem_start(demo_store, leader, pid)
    assert services.problem_show(demo_store, leader, pid)["state"] == "rectifying"
    with pytest.raises(InvalidTransition):
        problems.step(demo_store, pid, State.CLOSED, actor="x", person_id=1)


def test_a_problem_raised_in_error_is_dismissed_with_a_reason_only_before_work(demo_store):
    users = _users(demo_store)
    _, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    with pytest.raises(ValidationError, match="reason"):
        services.problem_dismiss(demo_store, users["leader"], pid, note="")
    services.problem_dismiss(demo_store, users["leader"], pid, note="系统重复")
    with pytest.raises(InvalidTransition):
        services.problem_assign(demo_store, users["leader"], pid, party_kind="enterprise", party_name="x")


_PEOPLE = (101, 102)
_TARGETS = [s for s in State]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_TARGETS), st.sampled_from(_PEOPLE)), max_size=14))
def test_every_path_reaches_closed_only_through_a_check_by_another_person(store, steps):
    """Random steps through the one door: refused ones write nothing, and a closed problem was checked (just
    before closing) by another person than the one whose rectification it checked."""
    now = dt.datetime(2026, 6, 1)
    task = int(store.scalar("SELECT coalesce(max(finding_task_id), 0) + 1 FROM problems"))
    pid = problems.open_problems(store, pd.DataFrame([{"category": "bare_land", "cell": 1, "finding_task_id": task,
                                                       "finding": "still_bare"}]),
                                 rules=ProblemRules(), now=now, actor="t")[0]
    accepted = 1
    for target, person in steps:
        try:
            problems.record_events(store, [pid], target, actor=f"p{person}", now=now, detail={}, person_id=person)
            accepted += 1
        except (InvalidTransition, PermissionDenied):
            pass
    events = store.query("SELECT person_id, from_state, to_state FROM problem_events WHERE problem_id = ?"
                         " ORDER BY id", [pid])
    assert len(events) == accepted
    assert store.scalar("SELECT state FROM problems WHERE id = ?", [pid]) == events[-1]["to_state"]
    for k, event in enumerate(events):
        assert event["from_state"] == (events[k - 1]["to_state"] if k else None)
        if event["to_state"] == "closed":
            assert events[k - 1]["to_state"] == "checked" and events[k - 2]["to_state"] == "rectified"
            assert events[k - 1]["person_id"] != events[k - 2]["person_id"]


def test_the_table_leads_to_closed_only_through_rectified_and_checked():
    into = {s: [f for f, targets in problems.TRANSITIONS.items() if s in targets] for s in State}
    assert into[State.CLOSED] == [State.CHECKED] and into[State.CHECKED] == [State.RECTIFIED]
    assert set(into[State.RECTIFIED]) == {State.RECTIFYING}
    with pytest.raises(InvalidTransition, match="starts as found"):
        problems.check_transition(None, State.ASSIGNED)


def test_a_problem_found_again_in_the_window_is_a_repeat_and_says_so(demo_store):
    users = _users(demo_store)
    first_task, first = _found_by_report(demo_store, users)
    cell = first_task["cell"]
    later = demo_store.query("SELECT id FROM tasks WHERE cell = ? AND id <> ? ORDER BY id LIMIT 2",
                             [cell, first_task["id"]])
    rules = ProblemRules(repeat_days=90)
    frame = pd.DataFrame([{"category": "straw_burning", "cell": cell, "finding_task_id": int(later[0]["id"]),
                           "finding": "confirmed_burning"},
                          {"category": "bare_land", "cell": cell, "finding_task_id": int(later[1]["id"]),
                           "finding": "still_bare"}])
    again, other = problems.open_problems(demo_store, frame, rules=rules, now=dt.datetime.now(dt.UTC), actor="t")
    shown = services.problem_show(demo_store, users["leader"], again)
    assert shown["repeat_of"] == first["problem_id"] and shown["events"][0]["detail"]["repeat_of"] == first["problem_id"]
    assert services.problem_show(demo_store, users["leader"], other)["repeat_of"] is None  # another category
    assert again in services.problem_show(demo_store, users["leader"], first["problem_id"])["repeats"]
    listed = services.problems_table(demo_store, users["leader"], repeat=True)
    assert [p["id"] for p in listed["problems"]] == [again]
    # outside the window, or with the window off, it is no repeat
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    task3 = demo_store.query("SELECT id FROM tasks WHERE id NOT IN (SELECT finding_task_id FROM problems)"
                             " ORDER BY id LIMIT 1")[0]["id"]
    frame3 = frame.iloc[:1].assign(finding_task_id=int(task3))
    [late_one] = problems.open_problems(demo_store, frame3, rules=rules, now=late, actor="t")
    assert demo_store.scalar("SELECT repeat_of FROM problems WHERE id = ?", [late_one]) is None


def test_overdue_rectification_escalates_up_the_chain_as_a_problem_event(demo_store):
    users = _users(demo_store)
    _, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    before = demo_store.query("SELECT assignee_id, deadline_at FROM problems WHERE id = ?", [pid])[0]
    assert services.problems_escalate(demo_store, services.SCHEDULER)["escalated"] == 0  # not yet due
    with pytest.raises(PermissionDenied):
        services.problems_escalate(demo_store, users["county"])
    later = before["deadline_at"] + dt.timedelta(hours=1)
    assert services.problems_escalate(demo_store, services.SCHEDULER, now=later)["escalated"] == 1
    shown = services.problem_show(demo_store, users["leader"], pid)
    last = shown["events"][-1]
    assert last["from_state"] == last["to_state"] == "found" and last["actor"] == "system:scheduler"
    assert last["detail"]["overdue"] and last["detail"]["from_assignee"] == before["assignee_id"]
    assert shown["assignee_id"] == last["detail"]["to_assignee"] != before["assignee_id"]
    assert shown["deadline_at"] == before["deadline_at"]  # still overdue for the reports
    assert services.problems_table(demo_store, users["leader"], overdue=True, now=later)["total"] == 1
    # escalated once per rectification period: not again an hour later
    assert services.problems_escalate(demo_store, services.SCHEDULER,
                                      now=later + dt.timedelta(hours=1))["escalated"] == 0


def test_without_rectification_days_there_is_no_deadline_and_no_escalation(county):
    services.generate_patrols(county, services.CLI)
    task = int(county.scalar("SELECT min(id) FROM tasks"))
    cell = int(county.scalar("SELECT cell FROM tasks WHERE id = ?", [task]))
    [pid] = problems.open_problems(county, pd.DataFrame([{"category": "bare_land", "cell": cell,
                                                          "finding_task_id": task, "finding": "still_bare"}]),
                                   rules=services._common.policy(county).problems, now=dt.datetime(2026, 6, 1),
                                   actor="t")
    assert county.scalar("SELECT deadline_at FROM problems WHERE id = ?", [pid]) is None
    assert services.problems_escalate(county, services.CLI, now=dt.datetime(2030, 1, 1))["escalated"] == 0
    assert services.problem_rechecks(county, services.CLI, now=dt.datetime(2030, 1, 1))["created"] == 0


def test_closed_problems_get_recheck_patrols_whose_finding_opens_a_repeat(demo_store):
    users = _users(demo_store)
    task, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    leader, county = users["leader"], users["county"]
    services.problem_assign(demo_store, leader, pid, party_kind="unit", unit=VILLAGE)
    services.problem_start(demo_store, users["inspector"], pid)
    services.problem_rectified(demo_store, users["inspector"], pid, note="已清理", photos=[_photo()])
    services.problem_check(demo_store, county, pid, passed=True)
    closed_at = demo_store.scalar("SELECT closed_at FROM problems WHERE id = ?", [pid])
    assert services.problem_rechecks(demo_store, services.SCHEDULER)["created"] == 0  # 30 days (demo) not yet
    due = closed_at + dt.timedelta(days=30, hours=1)
    assert services.problem_rechecks(demo_store, services.SCHEDULER, now=due)["created"] == 1
    assert services.problem_rechecks(demo_store, services.SCHEDULER, now=due)["created"] == 0  # idempotent
    recheck = demo_store.query("SELECT id, kind, cell, state, title_key, assignee_id FROM tasks"
                               " WHERE source_kind = 'problem_recheck'")
    assert len(recheck) == 1 and recheck[0]["kind"] == "routine_patrol" and recheck[0]["cell"] == task["cell"]
    assert recheck[0]["title_key"] == "problem_recheck"
    assert [r["id"] for r in services.problem_show(demo_store, leader, pid)["rechecks"]] == [recheck[0]["id"]]
    # still open a window later: no second patrol piles up
    assert services.problem_rechecks(demo_store, services.SCHEDULER,
                                     now=due + dt.timedelta(days=30))["created"] == 0
    rid = int(recheck[0]["id"])
    inspector = users["inspector"]
    services.work_on(demo_store, inspector, rid, "in_progress")
    services.work_on(demo_store, inspector, rid, "reported", finding="problem_found", note="又见焚烧痕迹",
                     fix=_centre(task["cell"]))
    again = services.verify(demo_store, leader, rid, accept=True)["problem_id"]
    shown = services.problem_show(demo_store, leader, again)
    assert shown["repeat_of"] == pid and shown["category"] == "straw_burning"


def test_findings_without_a_problem_open_none_and_a_problem_opens_once(demo_store):
    users = _users(demo_store)
    task, detail = _found_by_report(demo_store, users, finding="extinguished")
    assert "problem_id" not in detail and services.task_show(demo_store, users["leader"], task["id"])["problem_id"] is None
    _, detail = _found_by_report(demo_store, users, n=1)
    task_id = demo_store.scalar("SELECT finding_task_id FROM problems WHERE id = ?", [detail["problem_id"]])
    again = problems.open_from_task(demo_store, task_id, rules=ProblemRules(), actor="t")
    assert again == detail["problem_id"] and demo_store.scalar("SELECT count(*) FROM problems") == 1


def test_alarms_of_standing_problems_open_one_linked_to_the_alarm_and_its_task(demo_store):
    made = services.integration_add(demo_store, services.CLI, "hotline-12369", source="hotline", unit="410329")
    actor = services.integration_actor(demo_store, services.CLI, made["token"])
    lat, lng = (float(v) for v in demo_store.query(
        "SELECT lat, lng FROM cells WHERE village_code = ? ORDER BY cell LIMIT 1", [VILLAGE])[0].values())
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
    body = {"external_id": "C-1", "source": "hotline", "lat": lat, "lng": lng, "observed_at": when,
            "description": "院内燃煤锅炉冒黑烟"}
    [boiler, smoke] = services.post_alarms(demo_store, actor, [{**body, "category": "coal_boiler"},
                                                              {**body, "external_id": "C-2",
                                                               "category": "straw_burning"}])
    assert boiler.created and boiler.answer["problem_id"] is not None
    assert smoke.created and smoke.answer["problem_id"] is None  # a fire is checked first, as a satellite point
    pid = boiler.answer["problem_id"]
    row = demo_store.query("SELECT * FROM problems WHERE id = ?", [pid])[0]
    assert row["alarm_id"] == boiler.answer["alarm_id"] and row["finding_task_id"] == boiler.answer["task_id"]
    assert row["category"] == "coal_boiler" and row["finding"] == "alarm" and row["assignee_id"] is not None
    assert services.alarm_show(demo_store, actor, boiler.answer["alarm_id"])["problem_id"] == pid
    [repeat] = services.post_alarms(demo_store, actor, [{**body, "category": "coal_boiler"}])
    assert not repeat.created and repeat.answer["problem_id"] == pid
    assert demo_store.scalar("SELECT count(*) FROM problems") == 1


def test_people_see_and_change_only_problems_in_their_scope(demo_store):
    users = _users(demo_store)
    _, detail = _found_by_report(demo_store, users)
    pid = detail["problem_id"]
    far = demo_store.query("SELECT t.id, t.cell FROM tasks t JOIN cells c ON c.cell = t.cell"
                           " WHERE c.township_code = '410329-D02' ORDER BY t.id LIMIT 1")[0]
    [other] = problems.open_problems(demo_store, pd.DataFrame([{"category": "bare_land", "cell": far["cell"],
                                                                "finding_task_id": far["id"],
                                                                "finding": "still_bare"}]),
                                     rules=ProblemRules(), now=dt.datetime.now(dt.UTC), actor="t")
    seen = {p["id"] for p in services.problems_table(demo_store, users["leader"])["problems"]}
    assert pid in seen and other not in seen
    assert {p["id"] for p in services.problems_table(demo_store, users["county"])["problems"]} == {pid, other}
    with pytest.raises(PermissionDenied):
        services.problem_show(demo_store, users["leader"], other)
    with pytest.raises(PermissionDenied):
        services.problem_assign(demo_store, users["leader"], other, party_kind="enterprise", party_name="x")
    with pytest.raises(PermissionDenied):
        services.problem_check(demo_store, users["inspector"], pid, passed=True)
    with pytest.raises(NotFound):
        services.problem_show(demo_store, users["leader"], 10**9)
    with pytest.raises(ValidationError, match="responsibility chain"):
        services.problem_assign(demo_store, users["county"], other, party_kind="enterprise", party_name="x",
                                follower_key="demo-d01-01-inspector")
    with pytest.raises(ValidationError, match="Unknown problem state"):
        services.problems_table(demo_store, users["county"], state="open")
    page = services.problems_table(demo_store, users["county"], limit=1, offset=1)
    assert page["total"] == 2 and len(page["problems"]) == 1


def test_the_command_line_lists_and_shows_problems(demo_copy):
    from gridwatch.audit import open_sealed

    with open_sealed(demo_copy) as store:
        users = _users(store)
        _, detail = _found_by_report(store, users)
    out: list[str] = []
    assert main(["problems", "list", "--db", demo_copy, "--json"], out=out.append) == 0
    assert [p["id"] for p in json.loads(out[-1])["problems"]] == [detail["problem_id"]]
    assert main(["problems", "show", str(detail["problem_id"]), "--db", demo_copy, "--json"], out=out.append) == 0
    shown = json.loads(out[-1])
    assert shown["state"] == "found" and shown["events"][0]["to_state"] == "found"
    assert main(["problems", "list", "--state", "closed", "--db", demo_copy, "--json"], out=out.append) == 0
    assert json.loads(out[-1])["total"] == 0


def test_the_register_screen_lists_a_problem_and_hands_it_over(app_db):
    from conftest import signed_in

    from gridwatch.audit import open_sealed
    from gridwatch.i18n import gettext

    with open_sealed(str(app_db)) as store:
        _, detail = _found_by_report(store, _users(store))
    at = signed_in(app_db, "leader", APP).run()
    at.switch_page("pages/problems.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == gettext("Problem register", "zh_CN")
    assert any(str(detail["problem_id"]) in s.value for s in at.subheader)
    at.text_input(key=f"party-name-{detail['problem_id']}").input("伊川某建材有限公司").run()
    at.button(key=f"assign-{detail['problem_id']}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with open_sealed(str(app_db)) as store:
        row = store.query("SELECT state, party_kind, party_name FROM problems WHERE id = ?", [detail["problem_id"]])
    assert row == [{"state": "assigned", "party_kind": "enterprise", "party_name": "伊川某建材有限公司"}]
    inspector = signed_in(app_db, "inspector", APP).run()
    inspector.switch_page("pages/problems.py").run()
    assert not inspector.exception and any(b.key == f"start-{detail['problem_id']}" for b in inspector.button)


def test_the_life_of_a_problem_on_postgresql(pg_url):
    """The same door on PostgreSQL: rows locked for each step, the four eyes refused, the history sealed."""
    from gridwatch.audit import open_sealed

    cell_id = h3.latlng_to_cell(34.42, 112.42, 8)
    cell = h3.str_to_int(cell_id)
    with open_sealed(pg_url) as store:
        with store.transaction():
            store.execute("INSERT INTO cells (cell, lat, lng, county_code, township_code, village_code)"
                          " VALUES (?, 34.42, 112.42, '410329', '410329-D01', '410329-D01-01')", [cell])
        rules = ProblemRules(rectify_days={"bare_land": 30.0}, repeat_days=90)
        found = pd.DataFrame([{"category": "bare_land", "cell": cell, "finding_task_id": 7, "finding": "still_bare"},
                              {"category": "bare_land", "cell": cell, "finding_task_id": 8, "finding": "still_bare"}])
        first, second = problems.open_problems(store, found, rules=rules, now=dt.datetime(2026, 6, 1), actor="t")
        assert store.scalar("SELECT repeat_of FROM problems WHERE id = ?", [second]) == first
        problems.step(store, first, State.ASSIGNED, actor="leader", person_id=2,
                      party={"kind": "enterprise", "name": "某建筑公司"})
        problems.step(store, first, State.RECTIFYING, actor="worker", person_id=1)
        problems.step(store, first, State.RECTIFIED, actor="worker", person_id=1, note="已覆盖防尘网",
                      photos=[{"sha256": "ab" * 32, "name": "p.jpg"}])
        with pytest.raises(PermissionDenied, match="another person"):
            problems.step(store, first, State.CHECKED, actor="worker", person_id=1)
        lat, lng = h3.cell_to_latlng(cell_id)
        checked = problems.step(store, first, State.CHECKED, actor="leader", person_id=2, fix=Fix(lat, lng, 5.0))
        assert checked["outside_cell_m"] == 0 and checked["rectifier_id"] == 1
        problems.step(store, first, State.CLOSED, actor="leader", person_id=2)
        detail = problems.problem_detail(store, first)
        assert [e["to_state"] for e in detail["events"]] == ["found", "assigned", "rectifying", "rectified",
                                                             "checked", "closed"]
        assert detail["state"] == "closed" and detail["repeats"] == [second]
        frame, total = problems.list_problems(store, overdue=True, now=dt.datetime(2026, 8, 1))
        assert total == 1 and frame.id.tolist() == [second]
        assert audit.verify(store)["ok"]
