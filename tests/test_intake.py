"""Work entered in the app: an inspector's 随手拍 and a leader's task made by hand, through the alarms' pipeline."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import h3
import pytest
from PIL import Image

from gridwatch import auth, services
from gridwatch.errors import NotFound, OutsideRegion, PermissionDenied, ValidationError
from gridwatch.org import assignees_for_cells
from gridwatch.services._common import policy
from gridwatch.workflow import Fix

VILLAGE = "410329-D01-01"   # the demo inspector's village
OTHER_VILLAGE = "410329-D02-01"


def _photo(colour: str = "green", size: tuple[int, int] = (64, 48)) -> tuple[str, bytes]:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return (f"{colour}.jpg", buf.getvalue())


def _users(store):
    return {name: auth.load_user(store, name) for name in ("inspector", "leader", "county")}


def _cell(store, village: str = VILLAGE, n: int = 0) -> int:
    return int(store.scalar("SELECT cell FROM cells WHERE village_code = ? ORDER BY cell LIMIT 1 OFFSET ?",
                            [village, n]))


def _fix(cell: int) -> Fix:
    lat, lng = h3.cell_to_latlng(h3.int_to_str(cell))
    return Fix(lat, lng, 8.0)


def _key() -> str:
    return uuid.uuid4().hex


def test_a_sighting_opens_a_task_for_the_cells_person_with_its_photos_and_a_standing_problem(demo_store):
    users = _users(demo_store)
    cell = _cell(demo_store)
    tasks_before = demo_store.scalar("SELECT count(*) FROM tasks")
    got = services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=_fix(cell),
                                   photos=[_photo("green"), _photo("red")], note="工地裸土未覆盖", key=_key())
    assert got["created"] and got["cell"] == h3.int_to_str(cell)
    assert demo_store.scalar("SELECT count(*) FROM tasks") == tasks_before + 1
    task = demo_store.query("SELECT * FROM tasks WHERE id = ?", [got["task_id"]])[0]
    # the same responsible person every other task of the cell goes to
    who = assignees_for_cells(demo_store, [cell])
    assert task["assignee_id"] == int(who.person_id.iloc[0]) and task["kind"] == "manual"
    assert task["source_kind"] == "sighting" and task["cell"] == cell
    first = demo_store.query("SELECT detail FROM task_events WHERE task_id = ? ORDER BY id LIMIT 1",
                             [got["task_id"]])[0]
    assert '"reporter": "inspector"' in first["detail"] and "工地裸土未覆盖" in first["detail"]
    # bare land is a standing problem: it opens with the task, linked both ways
    problem = demo_store.query("SELECT * FROM problems WHERE id = ?", [got["problem_id"]])[0]
    assert problem["finding_task_id"] == got["task_id"] and problem["category"] == "bare_land"
    assert problem["finding"] == "sighting"
    assert services.task_show(demo_store, users["inspector"], got["task_id"])["problem_id"] == got["problem_id"]
    photos = services.intake_photos(demo_store, users["leader"], got["task_id"])
    assert [p["name"] for p in photos] == ["green.jpg", "red.jpg"] and {p["channel"] for p in photos} == {"sighting"}
    # the due time is the policy's hours for the kind (72 h unless set)
    hours = (task["due_at"] - task["created_at"]).total_seconds() / 3600
    assert hours == policy(demo_store).dispatch.sla_by_kind["manual"]


def test_burning_seen_on_patrol_is_checked_within_the_fire_hours_and_opens_no_problem_yet(demo_store):
    users = _users(demo_store)
    key_day = dt.datetime(2026, 6, 10, 2, 0)  # 10:00 in Beijing, in the summer harvest key period
    got = services.report_sighting(demo_store, users["inspector"], category="straw_burning",
                                   fix=_fix(_cell(demo_store)), photos=[_photo()], key=_key(), now=key_day)
    task = demo_store.query("SELECT * FROM tasks WHERE id = ?", [got["task_id"]])[0]
    assert got["problem_id"] is None
    assert task["due_at"] - task["created_at"] == dt.timedelta(hours=policy(demo_store).dispatch.sla_key_hours)


def test_the_same_tap_twice_and_a_second_report_of_the_same_thing_open_one_task(demo_store):
    users = _users(demo_store)
    cell, key = _cell(demo_store), _key()
    first = services.report_sighting(demo_store, users["inspector"], category="loose_coal", fix=_fix(cell),
                                     photos=[_photo("blue")], key=key)
    again = services.report_sighting(demo_store, users["inspector"], category="loose_coal", fix=_fix(cell),
                                     photos=[_photo("blue")], key=key)
    other = services.report_sighting(demo_store, users["leader"], category="loose_coal", fix=_fix(cell),
                                     photos=[_photo("white")], key=_key())
    assert first["created"] and not again["created"] and not other["created"]
    assert first["task_id"] == again["task_id"] == other["task_id"]
    assert demo_store.scalar("SELECT count(*) FROM problems WHERE finding_task_id = ?", [first["task_id"]]) == 1
    # the second person's photo joins the task; the repeated one is kept once
    assert len(services.intake_photos(demo_store, users["inspector"], first["task_id"])) == 2
    # another category on the same cell is another task
    dust = services.report_sighting(demo_store, users["inspector"], category="construction_dust", fix=_fix(cell),
                                    photos=[_photo()], key=_key())
    assert dust["created"] and dust["task_id"] != first["task_id"]


def test_a_sighting_is_refused_clearly_and_stores_nothing(demo_store):
    users = _users(demo_store)
    cell = _cell(demo_store)
    counts = lambda: [demo_store.scalar(f"SELECT count(*) FROM {t}") for t in  # noqa: E731
                      ("tasks", "photos", "intake_photos", "problems")]
    before = counts()
    with pytest.raises(ValidationError, match="at least one photo"):
        services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=_fix(cell), photos=[],
                                 key=_key())
    with pytest.raises(ValidationError, match="Unknown problem category"):
        services.report_sighting(demo_store, users["inspector"], category="smog", fix=_fix(cell),
                                 photos=[_photo()], key=_key())
    with pytest.raises(ValidationError, match="photo_max_count"):
        services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=_fix(cell),
                                 photos=[_photo(c) for c in ("red", "green", "blue", "white", "black", "gray",
                                                             "pink", "navy", "gold", "teal", "plum")],
                                 key=_key())
    with pytest.raises(ValidationError, match="not a photo"):
        services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=_fix(cell),
                                 photos=[("x.jpg", b"<html>not a photo</html>")], key=_key())
    with pytest.raises(OutsideRegion):
        services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=Fix(39.9, 116.4, 5.0),
                                 photos=[_photo()], key=_key())
    with pytest.raises(PermissionDenied):  # the inspector works only their own village
        services.report_sighting(demo_store, users["inspector"], category="bare_land",
                                 fix=_fix(_cell(demo_store, OTHER_VILLAGE)), photos=[_photo()], key=_key())
    with pytest.raises(ValidationError, match="submission key"):
        services.report_sighting(demo_store, users["inspector"], category="bare_land", fix=_fix(cell),
                                 photos=[_photo()], key="'; DROP TABLE tasks; --")
    made = services.integration_add(demo_store, services.CLI, "video-1", source="video", unit="410329")
    with pytest.raises(PermissionDenied):
        services.report_sighting(demo_store, services.integration_actor(demo_store, services.CLI, made["token"]),
                                 category="bare_land", fix=_fix(cell), photos=[_photo()], key=_key())
    assert counts() == before


def test_a_leader_makes_a_task_by_hand_for_a_cell_and_gives_it_to_a_person(demo_store):
    users = _users(demo_store)
    cell = _cell(demo_store, n=2)
    to = "demo-d01-01-inspector"
    assert to in set(services.assign_people(demo_store, users["leader"]).person_key)
    key = _key()
    got = services.create_task(demo_store, users["leader"], kind="boiler_check", title="核查燃煤锅炉是否拆除",
                               cell=h3.int_to_str(cell), person_key=to, note="带上拆除台账", key=key)
    task = demo_store.query("SELECT t.*, p.person_key FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id"
                            " WHERE t.id = ?", [got["task_id"]])[0]
    assert got["created"] and task["kind"] == "boiler_check" and task["person_key"] == to
    assert task["title"] == "核查燃煤锅炉是否拆除" and task["source_kind"] == "manual" and task["state"] == "assigned"
    hours = (task["due_at"] - task["created_at"]).total_seconds() / 3600
    assert hours == policy(demo_store).dispatch.sla_by_kind["boiler_check"]
    assert demo_store.scalar("SELECT count(*) FROM problems WHERE finding_task_id = ?", [got["task_id"]]) == 0
    again = services.create_task(demo_store, users["leader"], kind="boiler_check", title="核查燃煤锅炉是否拆除",
                                 cell=h3.int_to_str(cell), person_key=to, key=key)
    assert again["task_id"] == got["task_id"] and not again["created"]
    # its finding opens a problem as any boiler check's does
    services.work_on(demo_store, users["inspector"], got["task_id"], "in_progress")
    services.work_on(demo_store, users["inspector"], got["task_id"], "reported", finding="operating",
                     fix=_fix(cell), photos=[_photo()])
    services.verify(demo_store, users["leader"], got["task_id"], accept=True)
    assert services.task_show(demo_store, users["leader"], got["task_id"])["problem_id"] is not None


def test_a_task_by_hand_for_a_supervised_object_takes_its_cell(demo_store):
    users = _users(demo_store)
    objects = services.intake_objects(demo_store, users["county"])
    if objects.empty:
        pytest.skip("the demo has no supervised objects")
    chosen = objects.iloc[0]
    got = services.create_task(demo_store, users["county"], kind="manual", title="复查", object_key=chosen.object_key,
                               key=_key())
    assert got["cell"] == chosen.cell
    detail = demo_store.query("SELECT detail FROM task_events WHERE task_id = ?", [got["task_id"]])[0]["detail"]
    assert chosen.object_key in detail


def test_a_task_by_hand_is_refused_outside_scope_and_for_bad_input(demo_store):
    users = _users(demo_store)
    before = demo_store.scalar("SELECT count(*) FROM tasks")
    county_cell = h3.int_to_str(_cell(demo_store, OTHER_VILLAGE))
    with pytest.raises(PermissionDenied):
        services.create_task(demo_store, users["inspector"], kind="manual", title="x", cell=county_cell, key=_key())
    with pytest.raises(ValidationError, match="not fire_check"):
        services.create_task(demo_store, users["county"], kind="fire_check", title="x", cell=county_cell, key=_key())
    with pytest.raises(ValidationError, match="title"):
        services.create_task(demo_store, users["county"], kind="manual", title="  ", cell=county_cell, key=_key())
    with pytest.raises(ValidationError, match="either a cell or"):
        services.create_task(demo_store, users["county"], kind="manual", title="x", key=_key())
    with pytest.raises(NotFound):
        services.create_task(demo_store, users["county"], kind="manual", title="x", object_key="boiler:nope",
                             key=_key())
    with pytest.raises(NotFound):
        services.create_task(demo_store, users["county"], kind="manual", title="x", cell="8831aa5a49fffff",
                             key=_key())
    assert demo_store.scalar("SELECT count(*) FROM tasks") == before


def test_the_leader_makes_a_task_on_the_assign_screen(app_db):
    from conftest import signed_in

    from gridwatch.audit import open_sealed
    from gridwatch.config import REPO_ROOT

    at = signed_in(app_db, "leader", REPO_ROOT / "pages" / "assign.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="new_kind").set_value("coal_check")
    at.text_input(key="new_title").input("核查散煤销售点")
    at.selectbox(key="new_unit").set_value(VILLAGE).run()
    cell = at.selectbox(key="new_cell").options[2]
    at.selectbox(key="new_cell").set_value(cell)
    at.selectbox(key="new_to").set_value("demo-d01-01-inspector").run()
    at.button(key="new_go").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("已创建任务"), [s.value for s in at.success]
    assert at.text_input(key="new_title").value == ""
    with open_sealed(str(app_db)) as store:
        task = store.query("SELECT t.kind, t.title, t.cell, p.person_key FROM tasks t JOIN people p"
                           " ON p.id = t.assignee_id WHERE t.source_kind = 'manual' ORDER BY t.id DESC LIMIT 1")[0]
    assert (task["kind"], task["title"], task["person_key"]) == ("coal_check", "核查散煤销售点", "demo-d01-01-inspector")
    assert h3.int_to_str(task["cell"]) == cell
