"""People, roles and responsibility on the demo county: the chain for a cell, coverage gaps, the people CSV."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch import demo, org, services
from gridwatch.errors import NotFound, OutsideRegion, ValidationError
from gridwatch.i18n import translate_error

COUNTY = "410329"
LEVEL_ORDER = {"cell": 0, "village": 1, "township": 2, "county": 3}


@pytest.fixture
def planned(demo_store):
    """What ``demo.demo_people`` left out on purpose: villages without leader, without inspector, no-unit people."""
    units = demo_store.query_df("SELECT code, level FROM units WHERE is_demo ORDER BY code")
    people = demo.demo_people(COUNTY, units)
    villages = set(units[units.level == "village"].code)
    with_role = lambda role: set(people[people.role == role].unit_code)  # noqa: E731
    return {
        "no_leader": villages - with_role("grid_leader"),
        "no_inspector": villages - with_role("inspector"),
        "unassigned": set(people[people.role == ""].person_key),
    }


def _staffed_cell(store) -> int:
    """A cell whose village has an inspector and a grid leader."""
    return int(store.scalar(
        "SELECT min(c.cell) FROM cells c WHERE EXISTS (SELECT 1 FROM assignments a WHERE a.role = 'inspector'"
        " AND a.unit_code = c.village_code) AND EXISTS (SELECT 1 FROM assignments a WHERE a.role = 'grid_leader'"
        " AND a.unit_code = c.village_code)"))


def _people_state(store) -> tuple[int, int, int]:
    return (store.scalar("SELECT count(*) FROM people"), store.scalar("SELECT count(*) FROM assignments"),
            store.scalar("SELECT count(*) FROM audit_log"))


# -- responsibility --------------------------------------------------------------------------


def test_responsible_chain_runs_from_the_cell_up_to_the_county(demo_store):
    cell = _staffed_cell(demo_store)
    own = demo_store.query("SELECT city_code, county_code, township_code, village_code FROM cells WHERE cell = ?",
                           [cell])[0]
    result = org.responsible_chain(demo_store, cell)

    assert result["cell"] == h3.int_to_str(cell)
    assert set(result["owners"]) == {"city", "county", "township", "village"}
    assert {lvl: o["code"] for lvl, o in result["owners"].items()} == {
        "city": own["city_code"], "county": own["county_code"], "township": own["township_code"],
        "village": own["village_code"]}
    assert result["owners"]["county"] == {"code": COUNTY, "name": "伊川县"}
    assert result["owners"]["city"]["name"] == "洛阳市"
    assert result["owners"]["village"]["name"].startswith("演示村")

    chain = result["chain"]
    assert chain[0]["level"] == "village" and chain[0]["role"] == "inspector"
    assert chain[0]["unit_code"] == own["village_code"]
    assert chain[0]["role_label"] == "巡查员" and chain[0]["person"].endswith("（演示）")
    levels = [c["level"] for c in chain]
    assert levels == sorted(levels, key=LEVEL_ORDER.get)
    assert {"village", "township", "county"} <= set(levels)
    expected_unit = {"village": own["village_code"], "township": own["township_code"], "county": COUNTY}
    assert all(c["unit_code"] == expected_unit[c["level"]] for c in chain)
    assert {c["person_key"] for c in chain if c["level"] == "county"} == {
        "demo-county-leader", "demo-county-head", "demo-county-supervisor"}  # not GIS staff nor admin
    assert {c["role"] for c in chain if c["level"] == "township"} == {"grid_leader", "unit_head", "supervisor"}
    assert result["gaps"] == []


def test_a_role_held_on_the_cell_comes_first(demo_store):
    cell = _staffed_cell(demo_store)
    pid = org.add_person(demo_store, person_key="cell-inspector", name="田野")
    assert org.assign_role(demo_store, pid, "inspector", cell=cell) is True
    assert org.assign_role(demo_store, pid, "inspector", cell=cell) is False  # already held
    chain = org.responsible_chain(demo_store, cell)["chain"]
    assert chain[0] == {**chain[0], "level": "cell", "unit_code": h3.int_to_str(cell), "person": "田野",
                        "role": "inspector"}
    assert [c["level"] for c in chain].count("cell") == 1
    # a neighbouring cell of the same village does not get the cell inspector
    other = demo_store.scalar("SELECT min(cell) FROM cells WHERE village_code = "
                              "(SELECT village_code FROM cells WHERE cell = ?) AND cell <> ?", [cell, cell])
    assert all(c["person"] != "田野" for c in org.responsible_chain(demo_store, int(other))["chain"])


def test_a_cell_outside_the_grid_is_not_found(demo_store):
    outside = h3.str_to_int(h3.latlng_to_cell(34.75, 113.62, 8))  # 郑州
    with pytest.raises(NotFound):
        org.responsible_chain(demo_store, outside)


def test_responsible_at_a_point_outside_the_county(demo_store):
    with pytest.raises(OutsideRegion) as info:
        services.responsible_at(demo_store, services.CLI, lat=34.75, lng=113.62)
    assert info.value.exit_code == 3
    assert "34.75" in str(info.value) and "113.62" in str(info.value) and COUNTY in str(info.value)
    assert translate_error(info.value, "en") == str(info.value)


def test_responsible_at_a_point_inside(demo_store):
    result = services.responsible_at(demo_store, services.CLI, lat=34.42, lng=112.42)
    assert result["cell"] == h3.latlng_to_cell(34.42, 112.42, 8)
    assert result["owners"]["county"]["code"] == COUNTY
    assert result["chain"]


# -- coverage --------------------------------------------------------------------------------


def test_coverage_lists_exactly_the_planned_gaps(demo_store, planned):
    assert len(planned["no_leader"]) == 2 and len(planned["no_inspector"]) == 3
    report = services.coverage(demo_store, services.CLI)

    assert report["region"] == COUNTY
    assert {u["code"] for u in report["units_without_grid_leader"]} == planned["no_leader"]
    assert {u["level"] for u in report["units_without_grid_leader"]} == {"village"}

    gap_cells = demo_store.query(
        "SELECT cell, township_code FROM cells WHERE village_code IN (?, ?, ?) ORDER BY cell",
        sorted(planned["no_inspector"]))
    gaps = report["cells_without_inspector"]
    assert gaps["count"] == len(gap_cells) > 0
    assert set(gaps["cells"]) == {h3.int_to_str(r["cell"]) for r in gap_cells}
    by_township = {t["code"]: t["cells"] for t in gaps["by_township"]}
    assert sum(by_township.values()) == gaps["count"]
    assert set(by_township) == {r["township_code"] for r in gap_cells}
    assert all(t["name"].startswith("演示乡镇") for t in gaps["by_township"])

    assert [p["person_key"] for p in report["people_without_unit"]] == sorted(planned["unassigned"])
    assert planned["unassigned"] == {"demo-unassigned"}
    assert report["cells_checked"] == demo_store.scalar("SELECT count(*) FROM cells")


def test_assigning_an_inspector_to_a_gap_cell_closes_exactly_that_gap(demo_store):
    before = services.coverage(demo_store, services.CLI)["cells_without_inspector"]
    target = before["cells"][len(before["cells"]) // 2]
    pid = org.add_person(demo_store, person_key="new-inspector", name="新巡查员")
    assert org.assign_role(demo_store, pid, "inspector", cell=org.parse_cell(target)) is True

    after = services.coverage(demo_store, services.CLI)
    assert after["cells_without_inspector"]["count"] == before["count"] - 1
    assert set(before["cells"]) - set(after["cells_without_inspector"]["cells"]) == {target}
    assert set(after["cells_without_inspector"]["cells"]) < set(before["cells"])
    assert "new-inspector" not in {p["person_key"] for p in after["people_without_unit"]}


def test_assign_role_refuses_unknown_roles_units_and_cells(demo_store):
    pid = org.add_person(demo_store, person_key="x", name="某人")
    state = _people_state(demo_store)
    with pytest.raises(ValidationError, match="'chief'"):
        org.assign_role(demo_store, pid, "chief", unit_code=COUNTY)
    with pytest.raises(NotFound, match="419999"):
        org.assign_role(demo_store, pid, "inspector", unit_code="419999")
    with pytest.raises(NotFound):
        org.assign_role(demo_store, pid, "inspector", cell=h3.str_to_int(h3.latlng_to_cell(34.75, 113.62, 8)))
    with pytest.raises(ValidationError):
        org.assign_role(demo_store, pid, "inspector", unit_code=COUNTY, cell=1)
    assert _people_state(demo_store) == state


# -- people CSV ------------------------------------------------------------------------------

HEADER = "person_key,name,phone,role,unit_code,cell\n"


def _csv(tmp_path, name: str, body: str, *, header: str = HEADER, bom: bool = True):
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + (header + body).encode("utf-8"))
    return path


def test_people_csv_imports_and_reimport_is_idempotent(demo_store, tmp_path):
    village = demo_store.scalar("SELECT min(code) FROM units WHERE level = 'village'")
    cell = demo_store.scalar("SELECT min(cell) FROM cells WHERE village_code = ?", [village])
    path = _csv(tmp_path, "人员.csv", (
        f"zhang-san,张三,13900000001,grid_leader,{COUNTY},\n"
        f"zhang-san,张三,13900000001,supervisor,{village},\n"
        f"li-si,李四,13900000002,inspector,,{h3.int_to_str(cell)}\n"
        "wang-wu,王五,,,,\n"
    ))
    people_before = demo_store.scalar("SELECT count(*) FROM people")

    first = services.import_people(demo_store, services.CLI, path)
    conflicts = first.pop("conflicts")
    assert first == {"people": 3, "assignments": 3, "unchanged": 0}
    # the county's grid leader supervising a village of the county supervises their own work: a warning
    assert [(c["person_key"], c["role"], c["place"], c["supervised_place"]) for c in conflicts] == [
        ("zhang-san", "grid_leader", COUNTY, village)]
    stored = {r["person_key"]: r["name"] for r in demo_store.query(
        "SELECT person_key, name FROM people WHERE person_key IN ('zhang-san', 'li-si', 'wang-wu')")}
    assert stored == {"zhang-san": "张三", "li-si": "李四", "wang-wu": "王五"}
    table = services.people_table(demo_store, services.CLI)
    zhang = table[table.person_key == "zhang-san"]
    assert set(zip(zhang.role, zhang.unit_code)) == {("grid_leader", COUNTY), ("supervisor", village)}
    li = table[table.person_key == "li-si"].iloc[0]
    assert (li.role, int(li.cell)) == ("inspector", cell)
    assert "wang-wu" in {p["person_key"] for p in services.coverage(demo_store, services.CLI)["people_without_unit"]}

    state = _people_state(demo_store)[:2]
    second = services.import_people(demo_store, services.CLI, path)
    assert second == {"people": 0, "assignments": 0, "unchanged": 3, "conflicts": conflicts}
    assert _people_state(demo_store)[:2] == state
    assert demo_store.scalar("SELECT count(*) FROM people") == people_before + 3
    assert demo_store.scalar("SELECT count(*) FROM audit_log WHERE action = 'people.import'") == 2


def test_people_csv_without_bom_reads_the_same(demo_store, tmp_path):
    path = _csv(tmp_path, "plain.csv", f"zhao-liu,赵六,,unit_head,{COUNTY},\n", bom=False)
    assert org.import_people_csv(demo_store, path).to_dict() == {"people": 1, "assignments": 1, "unchanged": 0}


@pytest.mark.parametrize(
    ("name", "header", "body", "needles"),
    [
        ("role.csv", HEADER,
         f"ok-1,好人,,inspector,{COUNTY},\nbad-2,坏人,,chief,{COUNTY},\n",
         ["role.csv", "line 3", "'chief'"]),
        ("column.csv", "person_key,name,phone,unit_code\n",
         f"ok-1,好人,,{COUNTY}\n",
         ["column.csv", "role"]),
        ("unit.csv", HEADER,
         f"ok-1,好人,,inspector,{COUNTY},\nbad-2,坏人,,inspector,419999,\nok-3,又一人,,,,\n",
         ["unit.csv", "line 3", "419999"]),
        ("cell.csv", HEADER,
         f"ok-1,好人,,inspector,{COUNTY},\nbad-2,坏人,,inspector,,not-a-cell\n",
         ["cell.csv", "line 3", "not-a-cell"]),
        ("both.csv", HEADER,
         f"ok-1,好人,,inspector,{COUNTY},\nbad-2,坏人,,inspector,,\n",
         ["both.csv", "line 3", "unit_code or cell"]),
        ("noname.csv", HEADER,
         f"ok-1,好人,,inspector,{COUNTY},\nbad-2,,,inspector,{COUNTY},\n",
         ["noname.csv", "line 3", "name"]),
    ],
    ids=["unknown-role", "missing-column", "unknown-unit", "bad-cell", "neither-unit-nor-cell", "empty-name"],
)
def test_bad_people_csv_is_refused_and_nothing_is_stored(demo_store, tmp_path, name, header, body, needles):
    path = _csv(tmp_path, name, body, header=header)
    state = _people_state(demo_store)
    with pytest.raises(ValidationError) as info:
        services.import_people(demo_store, services.CLI, path)
    for needle in needles:
        assert needle in str(info.value)
    assert translate_error(info.value, "en") == str(info.value)
    assert _people_state(demo_store) == state
    assert demo_store.scalar("SELECT count(*) FROM people WHERE person_key LIKE 'ok-%'") == 0


def test_parse_cell_accepts_hex_and_int_and_refuses_the_rest():
    cell = h3.latlng_to_cell(34.42, 112.42, 8)
    assert org.parse_cell(cell) == org.parse_cell(h3.str_to_int(cell)) == h3.str_to_int(cell)
    for bad in ("zz", "0", -5, 1 << 70, "8f2a1072b5fffff0"):
        with pytest.raises(ValidationError):
            org.parse_cell(bad)


# -- the chain: who a new task goes to, where an overdue one climbs -----------------------------------------------


def _first_on_chain(store, cell: int) -> tuple[int | None, str | None]:
    """The first holder of :data:`org.CHAIN` on one cell, read step by step (lowest person id first)."""
    own = store.query("SELECT village_code, township_code, county_code, city_code FROM cells WHERE cell = ?",
                      [cell])[0]
    for step in org.CHAIN:
        where, value = ("cell = ?", cell) if step.level == "cell" else ("unit_code = ?", own[f"{step.level}_code"])
        rows = store.query(f"SELECT person_id FROM assignments WHERE role = ? AND {where} ORDER BY person_id LIMIT 1",
                           [step.role, value])
        if rows:
            return int(rows[0]["person_id"]), step.role
    return None, None


def test_a_new_task_goes_to_the_first_holder_on_the_chain_of_its_cell(demo_store):
    cells = demo_store.query_df("SELECT cell FROM cells ORDER BY cell").cell.to_numpy(dtype=np.int64)
    village = demo_store.scalar("SELECT village_code FROM cells WHERE cell = ?", [int(cells[0])])
    # a village without its inspectors, a cell with its own grid member: the chain decides
    demo_store.execute("DELETE FROM assignments WHERE role = 'inspector' AND unit_code = ?", [village])
    pid = org.add_person(demo_store, person_key="cell-member", name="网格员甲")
    org.assign_role(demo_store, pid, "grid_member", cell=int(cells[1]))
    sample = np.concatenate([cells[:3], cells[::97]])
    who = org.assignees_for_cells(demo_store, sample).set_index("cell")
    for cell in sample:
        person, role = _first_on_chain(demo_store, int(cell))
        row = who.loc[int(cell)]
        assert (None if pd.isna(row.person_id) else int(row.person_id), row.role) == (person, role), cell
        assert row.gap == (role != "inspector")
    assert who.loc[int(cells[1])].role == "grid_member" and who.loc[int(cells[1])].person_id == pid


def _person(store, key: str) -> int:
    return int(store.scalar("SELECT id FROM people WHERE person_key = ?", [key]))


def _climb(store, cell: int) -> list[tuple[str, str, list[int], int]]:
    """Climb a new task of ``cell`` to the top: (role, level, informed, person) per step."""
    first = org.assignees_for_cells(store, [cell]).iloc[0]
    task = {"cell": cell, "assignee_id": int(first.person_id), "assigned_role": first.role, "assigned_unit": first.unit}
    climbed = []
    for _ in range(len(org.ESCALATION) + 2):
        up = org.next_up(store, pd.DataFrame([task])).iloc[0]
        if pd.isna(up.person_id):
            break
        assert int(up.person_id) != task["assignee_id"]
        climbed.append((up.role, up.level, up.informed, int(up.person_id)))
        task = {"cell": cell, "assignee_id": int(up.person_id), "assigned_role": up.role, "assigned_unit": up.unit}
    return climbed


def test_an_overdue_task_climbs_village_township_county_city_as_the_plans_write_it(demo_store):
    cell = _staffed_cell(demo_store)
    own = demo_store.query("SELECT village_code, township_code, county_code, city_code FROM cells WHERE cell = ?",
                           [cell])[0]
    assert [(s.level, s.roles) for s in org.ESCALATION] == [
        ("village", ("grid_leader", "unit_head")), ("township", ("unit_head", "grid_leader")),
        ("county", ("grid_leader", "unit_head")), ("city", ("grid_leader", "unit_head"))]
    head = org.add_person(demo_store, person_key="village-head", name="村主任")
    org.assign_role(demo_store, head, "unit_head", unit_code=own["village_code"])
    city_leader = org.add_person(demo_store, person_key="city-leader", name="市网格长")
    city_head = org.add_person(demo_store, person_key="city-head", name="市长")
    org.assign_role(demo_store, city_leader, "grid_leader", unit_code=own["city_code"])
    org.assign_role(demo_store, city_head, "unit_head", unit_code=own["city_code"])
    township = demo_store.query("SELECT person_key, role FROM assignments a JOIN people p ON p.id = a.person_id"
                                " WHERE a.unit_code = ?", [own["township_code"]])
    t_leader = _person(demo_store, next(r["person_key"] for r in township if r["role"] == "grid_leader"))
    t_head = _person(demo_store, next(r["person_key"] for r in township if r["role"] == "unit_head"))

    climbed = _climb(demo_store, cell)
    assert [(role, level) for role, level, *_ in climbed] == [
        ("grid_leader", "village"), ("unit_head", "township"), ("grid_leader", "county"), ("grid_leader", "city")]
    assert climbed[0][2] == [head]  # the village head is informed, never skipped
    assert climbed[1][2:] == ([t_leader], t_head)
    assert climbed[2][2] == [_person(demo_store, "demo-county-head")]
    assert climbed[3][2:] == ([city_head], city_leader)


def test_the_village_head_takes_the_task_where_no_grid_leader_is_appointed(demo_store):
    cell = _staffed_cell(demo_store)
    village = demo_store.scalar("SELECT village_code FROM cells WHERE cell = ?", [cell])
    demo_store.execute("DELETE FROM assignments WHERE role = 'grid_leader' AND unit_code = ?", [village])
    head = org.add_person(demo_store, person_key="village-head", name="村主任")
    org.assign_role(demo_store, head, "unit_head", unit_code=village)
    climbed = _climb(demo_store, cell)
    assert climbed[0][:2] == ("unit_head", "village") and climbed[0][3] == head and climbed[0][2] == []
    assert climbed[1][:2] == ("unit_head", "township")
    assert climbed[-1][:2] == ("grid_leader", "county")  # the demo appoints nobody in the city: the county is the top


#: who may hold an escalation role in the property test, and where
_PEOPLE = ("p0", "p1", "p2", "p3")
_HELD = st.tuples(st.sampled_from(range(len(_PEOPLE))), st.sampled_from(("grid_leader", "unit_head")),
                  st.sampled_from(tuple(s.level for s in org.ESCALATION)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=st.lists(_HELD, max_size=8, unique=True), assignee=_HELD)
def test_escalation_never_goes_to_the_same_person_nor_skips_a_step_someone_else_holds(demo_store, held, assignee):
    cell = _staffed_cell(demo_store)
    own = demo_store.query("SELECT village_code, township_code, county_code, city_code FROM cells WHERE cell = ?",
                           [cell])[0]
    units = [own[f"{s.level}_code"] for s in org.ESCALATION]
    demo_store.execute(f"DELETE FROM assignments WHERE role IN ('grid_leader', 'unit_head') AND unit_code IN"
                       f" ({', '.join('?' * len(units))})", units)
    ids = [org.add_person(demo_store, person_key=key, name=key) for key in _PEOPLE]
    for person, role, level in held:
        org.assign_role(demo_store, ids[person], role, unit_code=own[f"{level}_code"])
    a_person, a_role, a_level = assignee
    task = {"cell": cell, "assignee_id": ids[a_person], "assigned_role": a_role,
            "assigned_unit": own[f"{a_level}_code"]}
    up = org.next_up(demo_store, pd.DataFrame([task])).iloc[0]
    level_no = {s.level: k for k, s in enumerate(org.ESCALATION)}
    at = level_no[a_level]
    others = sorted(((level_no[level], org.ESCALATION[level_no[level]].roles.index(role), ids[person])
                     for person, role, level in held if level_no[level] > at and ids[person] != ids[a_person]))
    if not others:
        assert pd.isna(up.person_id)
    else:
        step, _, first = others[0]
        assert int(up.person_id) == first != ids[a_person]
        assert up.level == org.ESCALATION[step].level  # the nearest step someone else holds: none skipped
        assert up.informed == sorted({p for k, _, p in others if k == step} - {first})
    demo_store.execute(f"DELETE FROM assignments WHERE person_id IN ({', '.join('?' * len(ids))})", ids)
    demo_store.execute(f"DELETE FROM people WHERE id IN ({', '.join('?' * len(ids))})", ids)


# -- coverage of 一长三员 and conflicting roles ------------------------------------------------------------------


def test_coverage_of_the_four_roles_a_local_set_up_requires(demo_store, planned):
    required = {"village": ("grid_leader", "grid_member", "inspector", "supervisor"), "township": ("supervisor",),
                "cell": ("inspector", "supervisor")}
    report = org.coverage_report(demo_store, COUNTY, required=required)
    assert report["required_roles"] == {k: list(v) for k, v in required.items()} and report["default"] is False
    gaps = {(g["level"], g["role"]): g for g in report["role_gaps"]}
    assert set(gaps) == {("village", r) for r in required["village"]} | {("township", "supervisor")}
    villages = set(demo_store.query_df("SELECT code FROM units WHERE level = 'village' AND code LIKE '410329-%'").code)
    assert {u["code"] for u in gaps["village", "grid_leader"]["units"]} == planned["no_leader"]
    assert {u["code"] for u in gaps["village", "inspector"]["units"]} == planned["no_inspector"]
    assert {u["code"] for u in gaps["village", "grid_member"]["units"]} == planned["no_inspector"]
    assert {u["code"] for u in gaps["village", "supervisor"]["units"]} == villages  # the demo has none in villages
    assert gaps["township", "supervisor"]["count"] == 0 < gaps["township", "supervisor"]["checked"]
    # every cell has a supervisor above it (township and county), not every one an inspector
    assert report["cell_gaps"]["supervisor"]["count"] == 0
    assert report["cell_gaps"]["inspector"] == report["cells_without_inspector"]
    assert report["cells_without_inspector"]["count"] > 0
    assert report["units_without_grid_leader"] == sorted(gaps["village", "grid_leader"]["units"],
                                                         key=lambda u: u["code"])
    # a supervisor for one village closes exactly that gap
    village = sorted(villages)[0]
    pid = org.add_person(demo_store, person_key="v-supervisor", name="监督员甲")
    org.assign_role(demo_store, pid, "supervisor", unit_code=village)
    after = {(g["level"], g["role"]): g for g in org.coverage_report(demo_store, COUNTY, required=required)
             ["role_gaps"]}
    assert after["village", "supervisor"]["count"] == gaps["village", "supervisor"]["count"] - 1
    assert village not in {u["code"] for u in after["village", "supervisor"]["units"]}


def test_the_default_set_up_is_a_grid_leader_on_every_unit_and_an_inspector_on_every_cell(demo_store):
    report = services.coverage(demo_store, services.CLI)
    assert report["default"] is True
    assert report["required_roles"]["cell"] == ["inspector"] and report["required_roles"]["village"] == ["grid_leader"]
    assert report["conflicts"] == []


def test_the_coverage_service_reads_the_set_up_from_the_settings(demo_store):
    from gridwatch.config import Settings
    from gridwatch.policy import Policy

    demo_store.policy = Policy.from_settings(Settings.load(env={}, config_path=None,
                                                           required_roles="township=supervisor+grid_member"))
    report = services.coverage(demo_store, services.CLI)
    assert report["required_roles"] == {"township": ["supervisor", "grid_member"]}
    assert report["units_without_grid_leader"] == [] and report["cells_without_inspector"]["count"] == 0
    member = next(g for g in report["role_gaps"] if g["role"] == "grid_member")
    assert member["count"] == member["checked"] > 0


@pytest.mark.parametrize("value, needle", [("hamlet=inspector", "hamlet"), ("village=boss", "boss"),
                                           ("village", "name=value")])
def test_a_wrong_required_roles_setting_is_refused_naming_it(value, needle):
    from gridwatch.config import Settings
    from gridwatch.policy import Policy

    with pytest.raises(ValidationError, match=needle):
        Policy.from_settings(Settings.load(env={}, config_path=None, required_roles=value))


def test_a_supervisor_supervising_their_own_work_is_a_conflict(demo_store):
    cell = _staffed_cell(demo_store)
    own = demo_store.query("SELECT village_code, township_code FROM cells WHERE cell = ?", [cell])[0]
    pid = org.add_person(demo_store, person_key="two-hats", name="两顶帽子")
    org.assign_role(demo_store, pid, "supervisor", unit_code=own["township_code"])
    assert org.role_conflicts(demo_store, person_ids=[pid]) == []
    org.assign_role(demo_store, pid, "unit_head", unit_code=own["village_code"])  # not supervised by 监督员
    assert org.role_conflicts(demo_store, person_ids=[pid]) == []
    org.assign_role(demo_store, pid, "inspector", cell=cell)  # inside the township supervised
    org.assign_role(demo_store, pid, "grid_member", unit_code=own["township_code"])  # the same unit
    found = org.role_conflicts(demo_store, person_ids=[pid])
    assert [(c["role"], c["place"], c["same_place"]) for c in found] == [
        ("inspector", h3.int_to_str(cell), False), ("grid_member", own["township_code"], True)]
    assert {c["supervised_place"] for c in found} == {own["township_code"]}
    report = services.coverage(demo_store, services.CLI)
    assert [c["role"] for c in report["conflicts"]] == ["inspector", "grid_member"]
    # a supervisor elsewhere is no conflict
    other = demo_store.scalar("SELECT min(code) FROM units WHERE level = 'township' AND code LIKE '410329-%'"
                              " AND code <> ?", [own["township_code"]])
    pid2 = org.add_person(demo_store, person_key="elsewhere", name="别处")
    org.assign_role(demo_store, pid2, "supervisor", unit_code=other)
    org.assign_role(demo_store, pid2, "inspector", cell=cell)
    assert org.role_conflicts(demo_store, person_ids=[pid2]) == []
