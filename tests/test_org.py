"""People, roles and responsibility on the demo county: the chain for a cell, coverage gaps, the people CSV."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

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
    assert first == {"people": 3, "assignments": 3, "unchanged": 0}
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
    assert second == {"people": 0, "assignments": 0, "unchanged": 3}
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
    own = store.query("SELECT village_code, township_code, county_code FROM cells WHERE cell = ?", [cell])[0]
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


def test_an_overdue_task_climbs_the_escalation_steps_in_order(demo_store):
    cell = _staffed_cell(demo_store)
    climb = [(s.role, s.level) for s in org.CHAIN if s.escalation]
    assert climb == [("grid_leader", "village"), ("grid_leader", "township"), ("unit_head", "township"),
                     ("grid_leader", "county"), ("unit_head", "county")]
    own = demo_store.query("SELECT village_code, township_code, county_code FROM cells WHERE cell = ?", [cell])[0]
    level_of = {own[f"{level}_code"]: level for level in ("village", "township", "county")}
    first = org.assignees_for_cells(demo_store, [cell]).iloc[0]
    task = {"cell": cell, "assignee_id": int(first.person_id), "assigned_role": first.role, "assigned_unit": first.unit}
    climbed = []
    for _ in range(len(climb) + 1):
        up = org.next_up(demo_store, pd.DataFrame([task])).iloc[0]
        if pd.isna(up.person_id):
            break
        assert int(up.person_id) != task["assignee_id"]
        climbed.append((up.role, level_of[up.unit]))
        task = {"cell": cell, "assignee_id": int(up.person_id), "assigned_role": up.role, "assigned_unit": up.unit}
    assert climbed and climbed == [step for step in climb if step in climbed]  # in the chain's order, none twice
    assert climbed[-1] == ("unit_head", "county")  # the top: nobody above
