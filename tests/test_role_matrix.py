"""Every page for every demo role (Streamlit AppTest): the pages a role may see run and show its scope only; the
others are not in its navigation and are refused when reached directly."""

from __future__ import annotations

import h3
import pytest
from streamlit.testing.v1 import AppTest

from gridwatch import auth, services, workflow
from gridwatch.config import REPO_ROOT
from gridwatch.i18n import gettext
from gridwatch.audit import open_sealed

from conftest import signed_in

APP = REPO_ROOT / "app.py"


def zh(message: str, **params: object) -> str:
    """A message as the app shows it in the default language."""
    text = gettext(message, "zh_CN")
    return text.format(**params) if params else text


#: page → (grant that puts it in the navigation, its title); None: every signed-in person
PAGES = {
    "pages/my_tasks.py": ("task.work", zh("My tasks")),
    "pages/review.py": ("task.verify", zh("Cell status and reports")),
    "pages/assign.py": ("task.assign", zh("Assign work")),
    "pages/people.py": ("people.manage", zh("People and roles")),
    "pages/overview.py": (None, zh("Grid overview: {name}", name="伊川县")),
    "pages/fires.py": (None, zh("Satellite fire points")),
}

#: the demo accounts plus a township head (demo-d01-head, 主要负责人 of 演示乡镇01) made for these tests,
#: with the pages each may reach, worked out by hand from the role grants of migration 0001
ROLES = {
    "inspector": {"pages/my_tasks.py", "pages/overview.py", "pages/fires.py"},
    "leader": {"pages/my_tasks.py", "pages/review.py", "pages/assign.py", "pages/overview.py",
               "pages/fires.py"},
    "county": {"pages/review.py", "pages/assign.py", "pages/overview.py", "pages/fires.py"},
    "head01": {"pages/review.py", "pages/assign.py", "pages/overview.py", "pages/fires.py"},
    "gis": {"pages/overview.py", "pages/fires.py"},
    "admin": {"pages/assign.py", "pages/people.py", "pages/overview.py", "pages/fires.py"},
}
#: for each guarded page, a role that has it (to open its URL before another person signs in in that tab)
HOLDER = {"pages/my_tasks.py": "inspector", "pages/review.py": "leader", "pages/assign.py": "leader",
          "pages/people.py": "admin"}
D01, D02 = "410329-D01", "410329-D02"


@pytest.fixture(autouse=True)
def _township_head(request):
    """The township head's account (demo-d01-head, 主要负责人 of 演示乡镇01) in the test's app database."""
    if "app_db" in request.fixturenames:
        with open_sealed(str(request.getfixturevalue("app_db"))) as store:
            auth.add_account(store, "head01", services.DEMO_PASSWORD, person_key="demo-d01-head")


def _setup(db) -> dict[str, int]:
    """One report waiting for verification in 演示乡镇01 and one in 演示乡镇02: township → task id."""
    with open_sealed(str(db)) as store:
        reported = {}
        for township in (D01, D02):
            task = store.query(
                "SELECT t.id, t.cell, t.assignee_id FROM tasks t JOIN cells c ON c.cell = t.cell"
                " WHERE c.township_code = ? AND t.kind = 'fire_check' AND t.state = 'assigned'"
                " AND NOT t.coverage_gap ORDER BY t.id LIMIT 1", [township])[0]
            lat, lng = h3.cell_to_latlng(h3.int_to_str(int(task["cell"])))
            workflow.transition(store, task["id"], "in_progress", actor="i", actor_person_id=task["assignee_id"])
            workflow.transition(store, task["id"], "reported", actor="i", actor_person_id=task["assignee_id"],
                                finding="extinguished", fix=workflow.Fix(lat, lng, 5.0))
            reported[township] = int(task["id"])
    return reported


def _app(db, username: str) -> AppTest:
    at = signed_in(db, username, APP).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("username", list(ROLES))
def test_each_role_reaches_exactly_its_pages_and_each_runs(app_db, username):
    at = _app(app_db, username)
    guarded = [p for p in PAGES if p in ROLES[username] and PAGES[p][0]]
    if guarded:  # the first page of the navigation opens after sign-in
        assert at.title[0].value == PAGES[guarded[0]][1]
    assert at.title[0].value not in {PAGES[p][1] for p in PAGES if p not in ROLES[username]}
    for page, (_, title) in PAGES.items():
        if page in ROLES[username]:
            at.switch_page(page).run()
            assert not at.exception, (page, at.exception)
            assert at.title[0].value == title, page
            assert not at.error, (page, [e.value for e in at.error])
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(page)


@pytest.mark.parametrize(("page", "username"), [(p, u) for p, holder in HOLDER.items() for u in ROLES
                                                 if p not in ROLES[u]])
def test_a_page_outside_the_navigation_is_refused_when_its_address_is_opened(app_db, page, username):
    """The holder opens the page; then another person signs in in the same tab, still on the page's address."""
    at = _app(app_db, HOLDER[page])
    at.switch_page(page).run()
    assert at.title[0].value == PAGES[page][1]
    with open_sealed(str(app_db)) as store:
        at.session_state["token"] = services.sign_in(store, username, services.DEMO_PASSWORD).token
    at.run()
    assert not at.exception, at.exception
    # Streamlit's navigation does not know the page for this person: it runs their first page instead
    assert at.title[0].value not in {PAGES[p][1] for p in PAGES if p not in ROLES[username]}
    guarded = [p for p in PAGES if p in ROLES[username] and PAGES[p][0]]
    if guarded:
        assert at.title[0].value == PAGES[guarded[0]][1]


@pytest.mark.parametrize(("page", "action", "username"), [
    (page, action, u) for page, action in (("pages/people.py", "people.manage"), ("pages/assign.py", "task.assign"))
    for u in ("inspector", "gis", "county", "leader") if page not in ROLES[u]])
def test_a_screen_run_without_app_py_is_refused_by_the_core(app_db, page, action, username):
    at = signed_in(app_db, username, REPO_ROOT / page).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [zh("You may not {action}.", action=action)]
    assert not at.dataframe and not at.tabs
    with open_sealed(str(app_db)) as store:
        denied = store.query("SELECT d.action FROM access_denials d JOIN accounts a ON a.id = d.account_id"
                             " WHERE a.username = ?", [username])
    assert {"action": action} in denied


def test_the_inspectors_task_list_holds_only_tasks_on_their_own_cells(app_db):
    at = _app(app_db, "inspector")
    shown = {int(b.key.removeprefix("task-")) for b in at.button if b.key and b.key.startswith("task-")}
    with open_sealed(str(app_db)) as store:
        rows = store.query(
            "SELECT t.id, c.village_code FROM tasks t JOIN cells c ON c.cell = t.cell JOIN people p"
            " ON p.id = t.assignee_id WHERE p.person_key = 'demo-d01-01-inspector'"
            " AND t.state IN ('open', 'assigned', 'in_progress', 'rejected', 'escalated')")
        cells_of_village = store.scalar("SELECT count(*) FROM cells WHERE village_code = '410329-D01-01'")
        everyone = store.scalar("SELECT count(*) FROM tasks WHERE state = 'assigned'")
    assert shown == {r["id"] for r in rows}
    assert {r["village_code"] for r in rows} == {"410329-D01-01"}
    # one weekly patrol per cell of the village at least, and far fewer than the county's tasks
    assert cells_of_village <= len(shown) < everyone
    assert zh("{n} open tasks, {overdue} overdue", n=len(shown), overdue=0) in [c.value for c in at.caption]


@pytest.mark.parametrize(("username", "townships"), [("leader", {D01}), ("head01", {D01}), ("county", {D01, D02})])
def test_the_review_holds_the_cells_and_reports_of_the_role_s_units_only(app_db, username, townships):
    reported = _setup(app_db)
    at = signed_in(app_db, username, REPO_ROOT / "pages" / "review.py").run()
    assert not at.exception, at.exception
    # the demo grid (seeded): 1,926 cells in 伊川县, 134 of them in 演示乡镇01
    expected_cells = 1926 if username == "county" else 134
    with open_sealed(str(app_db)) as store:
        assert store.scalar("SELECT count(*) FROM cells WHERE township_code = ?", [D01]) == 134
    labels = {zh(x) for x in ("cells clean", "cells not visited this week", "cells active", "cells overdue")}
    status = [m for m in at.metric if m.label in labels]
    assert sum(int(str(m.value).replace(",", "")) for m in status) == expected_cells
    verify = {int(b.key.removeprefix("ok-")) for b in at.button if b.key and b.key.startswith("ok-")}
    assert {reported[t] for t in townships} <= verify
    if D02 not in townships:
        assert reported[D02] not in verify
    with open_sealed(str(app_db)) as store:
        places = {r["township_code"] for r in store.query(
            "SELECT DISTINCT c.township_code FROM tasks t JOIN cells c ON c.cell = t.cell"
            " WHERE t.id IN (SELECT unnest(CAST(? AS BIGINT[])))", [sorted(verify)])}
    assert places <= townships


@pytest.mark.parametrize(("username", "people", "township"), [("leader", 7, D01), ("head01", 7, D01),
                                                               ("county", None, None), ("admin", None, None)])
def test_the_assign_screen_holds_the_role_s_tasks_and_people_only(app_db, username, people, township):
    at = signed_in(app_db, username, REPO_ROOT / "pages" / "assign.py").run()
    assert not at.exception, at.exception
    with open_sealed(str(app_db)) as store:
        where = "AND c.township_code = ?" if township else ""
        n = store.scalar("SELECT count(*) FROM tasks t JOIN cells c ON c.cell = t.cell"
                         f" WHERE t.state IN ('open', 'assigned', 'escalated') {where}",
                         [township] if township else [])
        workers = store.scalar("SELECT count(DISTINCT person_id) FROM assignments"
                               " WHERE role IN ('inspector', 'grid_member')")
    assert at.caption[0].value == zh("{n} tasks nobody has started yet", n=n)
    options = at.selectbox(key="assign_to").options
    assert len(options) - 1 == (people if people is not None else workers)


def test_the_admin_sees_every_person_of_the_county(app_db):
    at = signed_in(app_db, "admin", REPO_ROOT / "pages" / "people.py").run()
    assert not at.exception, at.exception
    with open_sealed(str(app_db)) as store:
        people = store.scalar("SELECT count(*) FROM people")
    assert at.dataframe[0].value.iloc[:, 1].nunique() == people
