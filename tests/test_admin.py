"""Administration of people and roles: the screen (Streamlit AppTest) and the scope rules of the services."""

from __future__ import annotations

import json

import pytest
from conftest import signed_in
from streamlit.testing.v1 import AppTest

from gridwatch import auth, org, services
from gridwatch.audit import open_sealed
from gridwatch.config import REPO_ROOT
from gridwatch.errors import NotFound, PermissionDenied, ValidationError
from gridwatch.i18n import gettext

SCREEN = str(REPO_ROOT / "pages" / "people.py")
OTHER_COUNTY = "410323"  # 新安县, a neighbour of the demo county 伊川县 (410329)


def zh(message: str, **params: object) -> str:
    """What the screen shows for an English msgid in the default language (translated or not yet)."""
    text = gettext(message, "zh_CN")
    return text.format(**params) if params else text


def _screen(db, username: str, *, lang: str | None = None) -> AppTest:
    return signed_in(db, username, SCREEN, lang=lang).run()


def _counts(db) -> dict[str, int]:
    with open_sealed(str(db)) as store:
        return {table: int(store.scalar(f"SELECT count(*) FROM {table}"))
                for table in ("people", "assignments", "audit_log", "access_denials")}


def _gap_villages(store) -> dict[str, list[str]]:
    """Villages with cells no inspector covers: code -> the village's cells."""
    gaps = set(services.coverage(store, services.CLI)["cells_without_inspector"]["cells"])
    cells = services.region_cells(store, services.CLI)
    cells = cells[cells.cell.isin(gaps)]
    return {code: list(group.cell) for code, group in cells.groupby("village_code")}


def _metric(at: AppTest, label: str) -> int:
    return int(next(m for m in at.metric if m.label == label).value)


# -- the screen ------------------------------------------------------------------------------


def test_the_admin_sees_four_tabs_and_the_people_table(app_db):
    at = _screen(app_db, "admin")
    assert not at.exception, at.exception
    assert not at.error
    assert at.title[0].value == zh("People and roles")
    assert [tab.label for tab in at.tabs] == [zh("People"), zh("Assign roles"), zh("Import CSV"), "全覆盖检查", "备份"]
    table = at.dataframe[0].value
    assert len(table) > 400
    keys = set(table[zh("Key")])
    assert {"demo-admin", "demo-d01-01-inspector", "demo-unassigned"} <= keys
    assert "网格长" in set(table[zh("Role")])  # role names are translated
    # the unit picker lists every village right under its township
    units = at.selectbox(key="assign_unit")
    assert units.options[:3] == ["伊川县", "\u3000演示乡镇01", "\u3000\u3000演示村01-01（演示乡镇01）"]
    # filtering by a township keeps only its people
    at.selectbox(key="people_unit").set_value("410329-D01").run()
    filtered = at.dataframe[0].value
    assert 10 < len(filtered) < len(table)
    assert set(filtered[zh("Key")]) >= {"demo-d01-leader", "demo-d01-01-inspector"}
    assert "demo-admin" not in set(filtered[zh("Key")])


def test_the_screen_in_english(app_db):
    at = _screen(app_db, "admin", lang="en")
    assert not at.exception, at.exception
    assert at.title[0].value == "People and roles"
    assert [tab.label for tab in at.tabs] == ["People", "Assign roles", "Import CSV", "Coverage report", "Backup"]
    assert at.selectbox(key="assign_role").options[0] == "inspector"


def test_assigning_an_inspector_to_a_gap_village_closes_its_gap(app_db):
    with open_sealed(str(app_db)) as store:
        gaps_before = services.coverage(store, services.CLI)["cells_without_inspector"]["count"]
        village, village_cells = sorted(_gap_villages(store).items())[0]
    at = _screen(app_db, "admin")
    assert _metric(at, zh("Cells without an inspector")) == gaps_before
    assert _metric(at, zh("People without a unit")) == 1
    assert at.selectbox(key="assign_person").value == "demo-unassigned"  # people without a role come first
    at.selectbox(key="assign_role").set_value("inspector")
    at.selectbox(key="assign_unit").set_value(village)
    at.button(key="assign").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success and "巡查员" in at.success[0].value

    with open_sealed(str(app_db)) as store:
        report = services.coverage(store, services.CLI)
        entry = store.query("SELECT actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert report["cells_without_inspector"]["count"] == gaps_before - len(village_cells)
    assert not set(village_cells) & set(report["cells_without_inspector"]["cells"])
    assert report["people_without_unit"] == []
    assert (entry["actor"], entry["action"], entry["subject"]) == ("admin", "people.assign", "demo-unassigned")
    assert json.loads(entry["detail"])["unit_code"] == village
    # the coverage tab shows it after the rerun
    assert _metric(at, zh("Cells without an inspector")) == gaps_before - len(village_cells)
    assert _metric(at, zh("People without a unit")) == 0

    # and the role can be taken away again from the same tab
    at.selectbox(key="assign_person").set_value("demo-unassigned").run()
    remove = next(b for b in at.button if b.key and b.key.startswith("unassign-"))
    remove.click().run()
    assert not at.exception, at.exception
    assert _metric(at, zh("Cells without an inspector")) == gaps_before
    with open_sealed(str(app_db)) as store:
        entry = store.query("SELECT action, detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert entry["action"] == "people.unassign"
    assert json.loads(entry["detail"])["role"] == "inspector"


def test_the_screen_warns_when_a_supervisor_is_given_work_they_supervise(app_db):
    at = _screen(app_db, "admin")
    assert _metric(at, zh("Conflicting roles")) == 0
    at.selectbox(key="assign_role").set_value("supervisor")
    at.selectbox(key="assign_unit").set_value("410329-D01")
    at.button(key="assign").click().run()
    assert not at.warning
    at.selectbox(key="assign_role").set_value("inspector")
    at.selectbox(key="assign_unit").set_value("410329-D01-02")
    at.button(key="assign").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success and "巡查员" in at.success[0].value  # given: the plans do not forbid it
    warned = [w.value.replace("\\", "") for w in at.warning]  # markdown escapes shown unescaped
    assert warned and "演示乡镇01" in warned[0] and "演示村01-02" in warned[0] and "监督自己的工作" in warned[0]
    assert _metric(at, zh("Conflicting roles")) == 1  # and the coverage tab lists it


def test_importing_a_csv_through_the_uploader(app_db):
    at = _screen(app_db, "admin")
    assert "person_key,name,phone,role,unit_code,cell" in [c.value for c in at.code]
    csv = ("person_key,name,phone,role,unit_code,cell\n"
           "imp-1,周新（导入）,13700000001,inspector,410329-D02-01,\n"
           "imp-1,周新（导入）,13700000001,grid_member,410329-D02-01,\n"
           "imp-2,吴新（导入）,,grid_leader,410329-D03,\n").encode("utf-8-sig")
    at.file_uploader(key="import_file").set_value(("新人员.csv", csv, "text/csv")).run()
    at.button(key="import").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success
    shown = at.success[0].value
    assert "新人员\\.csv" in shown  # the file's name is shown literally (markdown-escaped: no link, no markup)
    assert "2" in shown and "3" in shown
    with open_sealed(str(app_db)) as store:
        people = services.admin_people(store, auth.load_user(store, "admin"), unit_code="410329-D02-01")
        entry = store.query("SELECT action, subject, detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert set(people[people.person_key == "imp-1"].role) == {"inspector", "grid_member"}
    assert (entry["action"], entry["subject"]) == ("people.import", "新人员.csv")
    assert json.loads(entry["detail"])["assignments"] == 3


def test_a_bad_csv_shows_the_error_naming_the_line_and_writes_nothing(app_db):
    at = _screen(app_db, "admin")
    before = _counts(app_db)
    csv = ("person_key,name,phone,role,unit_code,cell\n"
           "bad-1,甲,,inspector,410329-D02-01,\n"
           "bad-2,乙,,village_boss,410329-D02-01,\n").encode("utf-8")
    at.file_uploader(key="import_file").set_value(("bad.csv", csv, "text/csv")).run()
    at.button(key="import").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors and "bad.csv" in errors[0] and "第 3 行" in errors[0] and "village_boss" in errors[0]
    assert _counts(app_db) == before
    # the other tabs still show
    assert at.dataframe and _metric(at, zh("People without a unit")) == 1


def test_an_inspector_is_refused_and_the_refusal_recorded(app_db):
    before = _counts(app_db)
    at = _screen(app_db, "inspector")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [zh("You may not {action}.", action="people.manage")]
    assert not at.tabs and not at.dataframe and not at.button
    after = _counts(app_db)
    assert after["access_denials"] == before["access_denials"] + 1
    assert {k: v for k, v in after.items() if k != "access_denials"} == \
        {k: v for k, v in before.items() if k != "access_denials"}
    with open_sealed(str(app_db)) as store:
        denial = store.query("SELECT d.action, d.detail, a.username FROM access_denials d"
                             " JOIN accounts a ON a.id = d.account_id ORDER BY d.id DESC LIMIT 1")[0]
    assert (denial["action"], denial["username"]) == ("people.manage", "inspector")
    assert json.loads(denial["detail"])["reason"] == "not_granted"


# -- the services: scope ----------------------------------------------------------------------


@pytest.fixture
def two_counties(demo_store):
    """The demo store with an admin of another county (新安县) and one inspector there."""
    other = org.add_person(demo_store, person_key="xa-admin", name="新安管理员")
    org.assign_role(demo_store, other, "admin", unit_code=OTHER_COUNTY)
    auth.add_account(demo_store, "xa-admin", "xinan-2026", person_key="xa-admin")
    inspector = org.add_person(demo_store, person_key="xa-inspector", name="新安巡查员")
    org.assign_role(demo_store, inspector, "inspector", unit_code=OTHER_COUNTY)
    return demo_store


def _denials(store) -> list[dict]:
    return store.query("SELECT d.action, d.target, a.username FROM access_denials d"
                       " LEFT JOIN accounts a ON a.id = d.account_id ORDER BY d.id")


def test_an_admin_cannot_manage_units_outside_their_region(two_counties):
    store = two_counties
    admin = auth.load_user(store, "admin")
    before = store.scalar("SELECT count(*) FROM assignments")
    with pytest.raises(PermissionDenied, match="410323"):
        services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector", unit_code=OTHER_COUNTY)
    with pytest.raises(PermissionDenied):
        services.admin_people(store, admin, unit_code=OTHER_COUNTY)
    xa_role = store.scalar("SELECT a.id FROM assignments a JOIN people p ON p.id = a.person_id"
                           " WHERE p.person_key = 'xa-inspector'")
    with pytest.raises(PermissionDenied):
        services.admin_unassign(store, admin, xa_role)
    with pytest.raises(PermissionDenied):
        services.admin_add_person(store, admin, person_key="xa-inspector", name="改名")
    assert store.scalar("SELECT count(*) FROM assignments") == before
    assert store.scalar("SELECT name FROM people WHERE person_key = 'xa-inspector'") == "新安巡查员"
    assert _denials(store)[-4:-2] == [{"action": "people.manage", "target": "unit:410323", "username": "admin"}] * 2

    # the region: 伊川县 and all below it, not 新安县 nor its people
    units = services.admin_units(store, admin)
    assert units.code.iloc[0] == "410329" and OTHER_COUNTY not in set(units.code)
    assert set(units.level) == {"county", "township", "village"}
    assert "xa-inspector" not in set(services.admin_people(store, admin).person_key)


def test_the_other_countys_admin_manages_only_theirs(two_counties):
    store = two_counties
    xa = auth.load_user(store, "xa-admin")
    assert list(services.admin_units(store, xa).code) == [OTHER_COUNTY]
    people = services.admin_people(store, xa)
    assert set(people.person_key) == {"xa-admin", "xa-inspector", "demo-unassigned"}  # and the unassigned
    with pytest.raises(PermissionDenied, match="410329-D01-01"):
        services.admin_assign(store, xa, person_key="xa-inspector", role="inspector", unit_code="410329-D01-01")
    cell = services.region_cells(store, services.CLI, unit_code="410329-D01-01").cell[0]
    with pytest.raises(PermissionDenied, match=cell):
        services.admin_assign(store, xa, person_key="xa-inspector", role="inspector", cell=cell)
    csv = "person_key,name,role,unit_code\nxa-2,新安二,inspector,410323\nxa-3,伊川三,inspector,410329-D01-01\n"
    with pytest.raises(PermissionDenied, match=r"people\.csv, line 3: .*410329-D01-01") as refused:
        services.admin_import_people(store, xa, "people.csv", csv.encode())
    assert refused.value.template == "{file}, line {line}: {reason}"
    assert store.scalar("SELECT count(*) FROM people WHERE person_key IN ('xa-2', 'xa-3')") == 0
    done = services.admin_assign(store, xa, person_key="demo-unassigned", role="grid_leader", unit_code=OTHER_COUNTY)
    assert done["added"]
    assert _denials(store)[-1]["target"] == "unit:410329-D01-01"


def test_an_extra_admin_assignment_widens_the_region(two_counties):
    store = two_counties
    admin_id = store.scalar("SELECT id FROM people WHERE person_key = 'demo-admin'")
    org.assign_role(store, admin_id, "admin", unit_code=OTHER_COUNTY)
    admin = auth.load_user(store, "admin")
    units = services.admin_units(store, admin)
    assert list(units[units.depth == 0].code) == [OTHER_COUNTY, "410329"]
    assert "xa-inspector" in set(services.admin_people(store, admin).person_key)
    done = services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector", unit_code=OTHER_COUNTY)
    assert done["added"] and done["unit_code"] == OTHER_COUNTY
    # a province-wide role is still out of reach
    with pytest.raises(PermissionDenied):
        services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector", unit_code="410300")


def test_assign_on_a_cell_unassign_and_their_audit(demo_store):
    store = demo_store
    admin = auth.load_user(store, "admin")
    cell = services.region_cells(store, services.CLI, unit_code="410329-D05-04").cell[0]
    done = services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector", cell=cell)
    assert done["added"] and done["cell"] == cell
    again = services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector", cell=cell)
    assert not again["added"] and again["assignment_id"] == done["assignment_id"]
    row = services.admin_people(store, admin, unit_code="410329-D05-04").query("person_key == 'demo-unassigned'")
    assert list(row.cell) == [cell] and list(row.unit_code) == ["410329-D05-04"]
    assert cell not in services.coverage(store, services.CLI)["cells_without_inspector"]["cells"]
    audits = store.query("SELECT action FROM audit_log WHERE actor = 'admin' ORDER BY id")
    assert [a["action"] for a in audits] == ["people.assign"]  # the second call changed nothing

    removed = services.admin_unassign(store, admin, done["assignment_id"])
    assert removed["cell"] == cell and removed["person_key"] == "demo-unassigned"
    detail = json.loads(store.query("SELECT detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]["detail"])
    assert detail["role"] == "inspector" and detail["cell"] == cell and detail["held_since"]
    with pytest.raises(NotFound):
        services.admin_unassign(store, admin, done["assignment_id"])


def test_validation_and_the_admins_own_role(demo_store):
    store = demo_store
    admin = auth.load_user(store, "admin")
    with pytest.raises(ValidationError):
        services.admin_assign(store, admin, person_key="demo-unassigned", role="boss", unit_code="410329")
    with pytest.raises(ValidationError):
        services.admin_assign(store, admin, person_key="demo-unassigned", role="inspector")
    with pytest.raises(NotFound):
        services.admin_assign(store, admin, person_key="nobody", role="inspector", unit_code="410329")
    own = store.scalar("SELECT a.id FROM assignments a JOIN people p ON p.id = a.person_id"
                       " WHERE p.person_key = 'demo-admin' AND a.role = 'admin'")
    with pytest.raises(ValidationError, match="own admin role"):
        services.admin_unassign(store, admin, own)
    added = services.admin_add_person(store, admin, person_key=" new-1 ", name="新人", phone="13600000000")
    assert added["added"] and added["person_key"] == "new-1"
    changed = services.admin_add_person(store, admin, person_key="new-1", name="新人二")
    assert not changed["added"]
    assert [a["action"] for a in store.query("SELECT action FROM audit_log WHERE actor = 'admin' ORDER BY id")] == \
        ["people.add", "people.update"]


def test_the_template_imports_as_is(demo_store):
    admin = auth.load_user(demo_store, "admin")
    template = services.admin_csv_template(demo_store, admin)
    assert template.startswith("\ufeff".encode()) and template.decode("utf-8-sig").splitlines()[0] == \
        ",".join(services.admin_csv_columns())
    result = services.admin_import_people(demo_store, admin, "people_template.csv", template)
    assert result == {"file": "people_template.csv", "people": 3, "assignments": 3, "unchanged": 0, "conflicts": []}
    again = services.admin_import_people(demo_store, admin, "people_template.csv", template)
    assert again["assignments"] == 0 and again["unchanged"] == 3


def test_services_refuse_a_user_without_the_grant(demo_store):
    inspector = auth.load_user(demo_store, "inspector")
    calls = [
        lambda: services.admin_people(demo_store, inspector),
        lambda: services.admin_units(demo_store, inspector),
        lambda: services.admin_add_person(demo_store, inspector, person_key="x", name="x"),
        lambda: services.admin_assign(demo_store, inspector, person_key="demo-unassigned", role="inspector",
                                      unit_code="410329-D01-01"),
        lambda: services.admin_import_people(demo_store, inspector, "p.csv", b"person_key,name,role\nx,x,\n"),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert len(_denials(demo_store)) == len(calls)
    assert demo_store.scalar("SELECT count(*) FROM people WHERE person_key = 'x'") == 0


def test_a_role_that_makes_a_supervisor_supervise_their_own_work_is_warned_or_refused(demo_store):
    from gridwatch.config import Settings
    from gridwatch.i18n import translate_error
    from gridwatch.policy import Policy

    admin = auth.load_user(demo_store, "admin")
    township, village = "410329-D01", "410329-D01-01"
    done = services.admin_assign(demo_store, admin, person_key="demo-unassigned", role="supervisor",
                                 unit_code=township)
    assert done["added"] and done["conflicts"] == []
    done = services.admin_assign(demo_store, admin, person_key="demo-unassigned", role="inspector", unit_code=village)
    assert done["added"]  # a warning, not a refusal: the plans do not forbid it
    assert [(c["role"], c["place"], c["supervised_place"], c["same_place"]) for c in done["conflicts"]] == [
        ("inspector", village, township, False)]
    assert len(services.coverage(demo_store, services.CLI)["conflicts"]) == 1

    demo_store.policy = Policy.from_settings(Settings.load(env={}, config_path=None, conflicting_roles="refuse"))
    before = (demo_store.scalar("SELECT count(*) FROM assignments"),
              demo_store.scalar("SELECT count(*) FROM audit_log"))
    with pytest.raises(ValidationError, match="supervise their own work") as info:
        services.admin_assign(demo_store, admin, person_key="demo-unassigned", role="grid_member", unit_code=township)
    assert "conflicting_roles" in str(info.value) and "监督" in translate_error(info.value, "zh_CN")
    assert (demo_store.scalar("SELECT count(*) FROM assignments"),
            demo_store.scalar("SELECT count(*) FROM audit_log")) == before
    # a role elsewhere is no conflict, and is given
    assert services.admin_assign(demo_store, admin, person_key="demo-unassigned", role="inspector",
                                 unit_code="410329-D02-01")["conflicts"] == []
    with pytest.raises(ValidationError, match="warn or refuse"):
        Policy.from_settings(Settings.load(env={}, config_path=None, conflicting_roles="maybe"))


def test_the_people_services_work_for_a_system_actor_over_every_county(two_counties):
    """The command line and the scheduler manage people everywhere, recorded as themselves."""
    store = two_counties
    units = services.admin_units(store, services.CLI)
    assert {"410329", OTHER_COUNTY} <= set(units.code)
    assert "xa-inspector" in set(services.admin_people(store, services.CLI).person_key)
    services.admin_assign(store, services.CLI, person_key="demo-unassigned", role="inspector", unit_code=OTHER_COUNTY)
    assert store.scalar("SELECT actor FROM audit_log WHERE action = 'people.assign' ORDER BY id DESC LIMIT 1") \
        == "system:cli"
