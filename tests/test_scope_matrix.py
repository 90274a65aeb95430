"""Scope on every read, at the services: role × the unit it is held on × the place read × the read.

The expected answer is worked out from the role grants of migration 0001 (copied below by hand) and the scope
rule (a role held on a unit covers the unit's cells and everything below it): a read is allowed exactly when the
role grants the read's action and the role's unit holds the place; a refusal is :class:`PermissionDenied`. Reads
that list records are checked row by row: every row lies in the reader's cells. One demo database per module.
"""

from __future__ import annotations

import datetime as dt

import h3
import pandas as pd
import pytest
from conftest import copy_db, drop_db

from gridwatch import auth, org, problems, services
from gridwatch.audit import open_sealed
from gridwatch.errors import PermissionDenied
from gridwatch.policy import ProblemRules

#: migration 0001's role grants, by hand
GRANTS = {
    "inspector": {"task.work", "cell.view"},
    "grid_member": {"task.work", "cell.view"},
    "grid_leader": {"task.work", "task.assign", "task.verify", "cell.view", "report.view"},
    "supervisor": {"task.verify", "cell.view", "report.view"},
    "unit_head": {"task.assign", "task.verify", "cell.view", "report.view"},
    "gis_staff": {"layer.load", "layer.publish", "boundary.load", "cell.view"},
    "admin": {"people.manage", "boundary.load", "layer.load", "layer.publish", "cell.view", "report.view",
              "task.assign"},
}
COUNTY = "410329"
#: holders: name → (role, level of the unit it is held on: "village" (the own village), "township", "county")
HOLDERS = {
    "inspector": ("inspector", "village"), "grid_member": ("grid_member", "village"),
    "grid_leader": ("grid_leader", "village"), "supervisor": ("supervisor", "village"),
    "head_village": ("unit_head", "village"), "head_township": ("unit_head", "township"),
    "head_county": ("unit_head", "county"), "gis": ("gis_staff", "county"),
    "admin_township": ("admin", "township"), "admin_county": ("admin", "county"),
}
#: the places read: the holder's own village, another village of the same township, a village of another township
PLACES = ("own", "same_township", "other_township")


@pytest.fixture(scope="module")
def world(demo_db, tmp_path_factory):
    """A demo database with one person per holder, the places, a task on each place and their users."""
    path = copy_db(demo_db, tmp_path_factory.mktemp("scope"), "scope.duckdb")
    with open_sealed(path) as store:
        rows = store.query("SELECT t.id, c.village_code, c.township_code, c.cell FROM tasks t"
                           " JOIN cells c ON c.cell = t.cell ORDER BY c.village_code, t.id")
        by_village: dict[str, dict] = {}
        for row in rows:
            by_village.setdefault(row["village_code"], row)
        townships: dict[str, list[dict]] = {}
        for row in by_village.values():
            townships.setdefault(row["township_code"], []).append(row)
        home = next(t for t, vs in townships.items() if len(vs) >= 2)
        other = next(t for t in townships if t != home)
        places = {"own": townships[home][0], "same_township": townships[home][1],
                  "other_township": townships[other][0]}
        units = {"village": places["own"]["village_code"], "township": home, "county": COUNTY}
        users = {}
        for name, (role, level) in HOLDERS.items():
            pid = org.add_person(store, person_key=f"scope-{name}", name=name)
            org.assign_role(store, pid, role, unit_code=units[level])
            auth.add_account(store, f"scope.{name.replace('_', '.')}", services.DEMO_PASSWORD,
                             person_key=f"scope-{name}")
            users[name] = auth.load_user(store, f"scope.{name.replace('_', '.')}")
        # a problem on each place, found by its task (so the problem reads are not vacuous)
        with store.transaction():
            problems.open_problems(store, pd.DataFrame({
                "category": ["bare_land"] * 3, "cell": [int(places[p]["cell"]) for p in PLACES],
                "finding_task_id": [int(places[p]["id"]) for p in PLACES], "finding": ["still_bare"] * 3}),
                rules=ProblemRules(), now=dt.datetime(2026, 6, 20, 2), actor="system:test")
        yield {"store": store, "places": places, "units": units, "users": users}
    drop_db(path)


def _allowed(holder: str, action: str, place: str, world: dict) -> bool:
    role, level = HOLDERS[holder]
    if action not in GRANTS[role]:
        return False
    unit = world["units"][level]
    return world["places"][place]["village_code"].startswith(unit)


def _check(call, allowed: bool) -> None:
    if allowed:
        call()
    else:
        with pytest.raises(PermissionDenied):
            call()


#: reads of one record or one place: (name, action it needs, call(store, user, place row))
PLACE_READS = {
    "task_show": ("cell.view", lambda s, u, p: services.task_show(s, u, int(p["id"]))),
    "load_draft": ("task.work", lambda s, u, p: services.load_draft(s, u, int(p["id"]))),
    "responsible_at": ("cell.view", lambda s, u, p: services.responsible_at(
        s, u, lat=h3.cell_to_latlng(h3.int_to_str(int(p["cell"])))[0],
        lng=h3.cell_to_latlng(h3.int_to_str(int(p["cell"])))[1])),
    "report_dossier": ("report.view", lambda s, u, p: services.report_dossier(s, u, unit=p["village_code"])),
    "admin_people": ("people.manage", lambda s, u, p: services.admin_people(s, u, unit_code=p["village_code"])),
    "tasks_table_unit": ("cell.view", lambda s, u, p: services.tasks_table(s, u, unit=p["village_code"])),
    "list_measures": ("report.view", lambda s, u, p: services.list_measures(s, u, unit=p["village_code"])),
    "report_loop": ("report.view", lambda s, u, p: services.report_loop(s, u, unit=p["village_code"], kind="month",
                                                                        date="2026-06-20")),
    "problems_table_unit": ("cell.view", lambda s, u, p: services.problems_table(s, u, unit=p["village_code"])),
}


@pytest.mark.parametrize("read", sorted(PLACE_READS))
@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_a_read_of_a_place_is_allowed_exactly_where_the_role_reaches(world, holder, place, read):
    action, call = PLACE_READS[read]
    store, user, row = world["store"], world["users"][holder], world["places"][place]
    _check(lambda: call(store, user, row), _allowed(holder, action, place, world))


def _cells(store, user, action: str = "cell.view") -> set[int]:
    return {int(c) for c in auth.user_cells(store, user, action)}


#: reads that list records: (name, call(store, user) → the cells of the rows returned)
def _cell(value) -> int:
    """A cell as stored (an integer) from a row that may show it as an H3 id."""
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else h3.str_to_int(text)


LIST_READS = {
    "fire_tasks": lambda s, u: {_cell(c) for c in services.fire_tasks(s, u, limit=100000)["cell"]},
    "fire_cells": lambda s, u: {_cell(c) for c in services.fire_cells(s, u)["cell"]},
    "tasks_table": lambda s, u: {_cell(r["cell"]) for r in services.tasks_table(s, u, limit=100000)},
    "cell_status": lambda s, u: {_cell(c) for c in services.cell_status(s, u)["cell"]},
    "problems_table": lambda s, u: {_cell(r["cell"]) for r in services.problems_table(s, u, limit=500)["problems"]},
}


@pytest.mark.parametrize("read", sorted(LIST_READS))
@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_a_list_holds_only_records_of_the_readers_cells(world, holder, read):
    store, user = world["store"], world["users"][holder]
    try:
        seen = LIST_READS[read](store, user)
    except PermissionDenied:
        seen = set()
    assert seen <= _cells(store, user), f"{read} shows {len(seen - _cells(store, user))} cells outside the scope"
    if read in ("tasks_table", "problems_table") and HOLDERS[holder][1] == "county":
        assert len(seen) > 1  # the matrix is not vacuous: the county's readers see records of several cells


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_region_wide_reads_are_for_the_county_administrator_only(world, holder):
    store, user = world["store"], world["users"][holder]
    whole = HOLDERS[holder] == ("admin", "county")
    for call in (lambda: services.people_table(store, user), lambda: services.integration_list(store, user)):
        _check(call, whole)


def test_every_failed_or_refused_sign_in_is_in_the_record(world):
    store = world["store"]
    before = int(store.scalar("SELECT count(*) FROM access_denials WHERE action = 'login'"))
    for username, password in (("scope.inspector", "wrong-password-1"), ("nobody.here", "wrong-password-1")):
        with pytest.raises(PermissionDenied):
            services.sign_in(store, username, password, client="198.51.100.7")
    rows = store.query("SELECT target, detail FROM access_denials WHERE action = 'login' ORDER BY id")[before:]
    assert [r["target"] for r in rows] == ["scope.inspector", "nobody.here"]
