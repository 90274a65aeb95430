"""Administrative units, people and their roles; who is responsible for a cell; coverage gaps.

Roles are data (tables ``roles``, ``role_grants``, ``assignments``): a person
holds a role on a unit at any level or on one cell. A role held on a unit
covers every cell the unit owns.

The responsibility chain of a cell is defined once, by the table :data:`CHAIN`: a new task goes to the first
step of it someone holds (:func:`assignees_for_cells`), an overdue one climbs to the next escalation step
someone else holds (:func:`next_up`), and :func:`responsible_chain` lists it for people to read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa

from gridwatch.errors import NotFound, ValidationError
from gridwatch.storage import Store

__all__ = [
    "ROLES",
    "CHAIN_ROLES",
    "CHAIN_LEVELS",
    "Step",
    "CHAIN",
    "chain_holders",
    "assignees_for_cells",
    "next_up",
    "add_person",
    "assign_role",
    "import_people_csv",
    "list_people",
    "responsible_chain",
    "coverage_report",
    "region_units",
    "can",
]

ROLES = ("inspector", "grid_member", "grid_leader", "supervisor", "unit_head", "gis_staff", "admin")
#: roles that answer for the ground, in the order the chain lists them
CHAIN_ROLES = ("inspector", "grid_member", "grid_leader", "supervisor", "unit_head")
#: where a role on the chain is held: on the cell itself, or on the village, township or county owning it
CHAIN_LEVELS = ("cell", "village", "township", "county")
PEOPLE_COLUMNS = ("person_key", "name", "phone", "role", "unit_code", "cell")


@dataclass(frozen=True)
class Step:
    """One step of the responsibility chain: a role held on the cell or on the unit of one level owning it.

    ``escalation`` marks the steps an overdue task climbs through.
    """

    role: str
    level: str
    escalation: bool = False


#: The responsibility chain of a cell, first to last. A new task goes to the first step someone holds (lowest
#: person id first): an inspector, nearest first, else the grid member, grid leader or unit head of the cell, then
#: of its village, township and county. An overdue task climbs from its assignee's step to the next escalation
#: step someone else holds: village grid leader, township grid leader, township head, county grid leader, county
#: head.
CHAIN: tuple[Step, ...] = tuple(Step(role, level, escalation) for role, level, escalation in (
    # role          level       escalation
    ("inspector",   "cell",     False),
    ("inspector",   "village",  False),
    ("inspector",   "township", False),
    ("inspector",   "county",   False),
    ("grid_member", "cell",     False),
    ("grid_leader", "cell",     False),
    ("unit_head",   "cell",     False),
    ("grid_member", "village",  False),
    ("grid_leader", "village",  True),
    ("unit_head",   "village",  False),
    ("grid_member", "township", False),
    ("grid_leader", "township", True),
    ("unit_head",   "township", True),
    ("grid_member", "county",   False),
    ("grid_leader", "county",   True),
    ("unit_head",   "county",   True),
))

#: the roles on the chain, in the order of their first step
_CHAIN_ROLE_NAMES = tuple(dict.fromkeys(step.role for step in CHAIN))
#: each (level, role) pair's position in :data:`CHAIN` (-1: not on it)
_STEP_OF = np.full((len(CHAIN_LEVELS), len(_CHAIN_ROLE_NAMES)), -1, dtype=np.int64)
for _i, _step in enumerate(CHAIN):
    _STEP_OF[CHAIN_LEVELS.index(_step.level), _CHAIN_ROLE_NAMES.index(_step.role)] = _i


def parse_cell(value: str | int) -> int:
    """An H3 cell given as hex string or integer, validated.

    Examples
    --------
    >>> parse_cell("882a1072b5fffff") == int("882a1072b5fffff", 16)
    True
    """
    try:
        cell = int(value, 16) if isinstance(value, str) else int(value)
    except ValueError as exc:
        raise ValidationError("{value!r} is not an H3 cell id (15 hex digits).", value=value) from exc
    if not 0 < cell < 1 << 63 or not h3.is_valid_cell(h3.int_to_str(cell)):
        raise ValidationError("{value!r} is not a valid H3 cell id.", value=value)
    return cell


def add_person(store: Store, *, person_key: str, name: str, phone: str = "", is_demo: bool = False) -> int:
    """Create a person, or update the name and phone of the one with ``person_key``; returns the id."""
    person_key, name = person_key.strip(), name.strip()
    if not person_key or not name:
        raise ValidationError("A person needs a non-empty key and name (got key {key!r}, name {name!r}).",
                              key=person_key, name=name)
    with store.transaction():
        found = store.scalar("SELECT id FROM people WHERE person_key = ?", [person_key])
        if found is not None:
            store.execute("UPDATE people SET name = ?, phone = ? WHERE id = ?", [name, phone, found])
            return int(found)
        store.execute(
            "INSERT INTO people (person_key, name, phone, is_demo) VALUES (?, ?, ?, ?)",
            [person_key, name, phone, is_demo],
        )
        return int(store.scalar("SELECT id FROM people WHERE person_key = ?", [person_key]))


def assign_role(store: Store, person_id: int, role: str, *, unit_code: str | None = None,
                cell: int | None = None) -> bool:
    """Give a person a role on a unit or a cell; returns False when they already hold it."""
    if role not in ROLES:
        raise ValidationError("Unknown role {role!r}; roles are {roles}.", role=role, roles=", ".join(ROLES))
    if (unit_code is None) == (cell is None):
        raise ValidationError("A role is held on exactly one unit or one cell.")
    with store.transaction():
        if unit_code is not None and store.scalar("SELECT 1 FROM units WHERE code = ?", [unit_code]) is None:
            raise NotFound("No administrative unit with code {code}.", code=unit_code)
        if cell is not None and store.scalar("SELECT 1 FROM cells WHERE cell = ?", [int(cell)]) is None:
            raise NotFound("Cell {cell} is not part of the grid.", cell=h3.int_to_str(int(cell)))
        exists = store.scalar(
            "SELECT 1 FROM assignments WHERE person_id = ? AND role = ? AND unit_code IS NOT DISTINCT FROM ?"
            " AND cell IS NOT DISTINCT FROM ?",
            [person_id, role, unit_code, cell],
        )
        if exists:
            return False
        store.execute(
            "INSERT INTO assignments (person_id, role, unit_code, cell) VALUES (?, ?, ?, ?)",
            [person_id, role, unit_code, cell],
        )
        return True


@dataclass(frozen=True)
class PeopleImport:
    """Outcome of a people CSV import."""

    people: int
    assignments: int
    unchanged: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"people": self.people, "assignments": self.assignments, "unchanged": self.unchanged}


def read_people_csv(path: str | Path) -> list[dict[str, str]]:
    """Read and check a people CSV (UTF-8, with or without BOM).

    Columns: ``person_key, name, phone, role, unit_code, cell``; one row per role
    held (a person with two roles has two rows); ``unit_code`` or ``cell`` (an
    H3 id) names where the role is held. A row with no role, unit or cell adds
    the person only.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError("{file} is not UTF-8 text; save it as UTF-8 CSV.", file=path.name) from exc
    except OSError as exc:
        raise ValidationError("Cannot read {file}: {reason}", file=str(path), reason=exc.strerror) from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("person_key", "name", "role") if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(
            "{file} lacks the column(s) {columns}; expected {expected}.",
            file=path.name, columns=", ".join(missing), expected=", ".join(PEOPLE_COLUMNS),
        )
    rows = []
    for line, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        if not row.get("role") and not row.get("unit_code") and not row.get("cell"):
            row["role"] = ""  # a person without a role yet
        elif row.get("role") not in ROLES:
            raise ValidationError("{file}, line {line}: unknown role {role!r}; roles are {roles}.",
                                  file=path.name, line=line, role=row.get("role"), roles=", ".join(ROLES))
        if row["role"] and bool(row.get("unit_code")) == bool(row.get("cell")):
            raise ValidationError("{file}, line {line}: give either unit_code or cell for the role.",
                                  file=path.name, line=line)
        if not row["person_key"] or not row["name"]:
            raise ValidationError("{file}, line {line}: person_key and name must not be empty.",
                                  file=path.name, line=line)
        row["_line"] = str(line)
        rows.append(row)
    return rows


def import_people_csv(store: Store, path: str | Path, *, is_demo: bool = False) -> PeopleImport:
    """Import people and their roles from a CSV, all or nothing."""
    rows = read_people_csv(path)
    name = Path(path).name
    units = {r["code"] for r in store.query("SELECT code FROM units")}
    people_before = store.scalar("SELECT count(*) FROM people")
    added = unchanged = 0
    with store.transaction():
        for row in rows:
            if row.get("unit_code") and row["unit_code"] not in units:
                raise ValidationError("{file}, line {line}: no administrative unit with code {code}.",
                                      file=name, line=row["_line"], code=row["unit_code"])
            try:
                cell = parse_cell(row["cell"]) if row.get("cell") else None
            except ValidationError as exc:
                raise ValidationError("{file}, line {line}: {reason}", file=name, line=row["_line"],
                                      reason=str(exc)) from exc
            pid = add_person(store, person_key=row["person_key"], name=row["name"], phone=row.get("phone", ""),
                             is_demo=is_demo)
            if not row["role"]:
                continue
            try:
                new = assign_role(store, pid, row["role"], unit_code=row.get("unit_code") or None, cell=cell)
            except NotFound as exc:
                raise ValidationError("{file}, line {line}: {reason}", file=name, line=row["_line"],
                                      reason=str(exc)) from exc
            added += new
            unchanged += not new
        people = store.scalar("SELECT count(*) FROM people") - people_before
    return PeopleImport(people=int(people), assignments=added, unchanged=unchanged)


def list_people(store: Store) -> pd.DataFrame:
    """People with their roles (one row per person and role; role empty for none)."""
    return store.query_df(
        "SELECT p.id, p.person_key, p.name, p.phone, p.is_demo, a.role, a.unit_code, u.name AS unit_name,"
        " a.cell FROM people p LEFT JOIN assignments a ON a.person_id = p.id"
        " LEFT JOIN units u ON u.code = a.unit_code ORDER BY p.person_key, a.role, a.unit_code"
    )


def region_units(store: Store, region_code: str) -> pd.DataFrame:
    """The region and every unit below it: ``code, name, level, parent_code, is_demo, area_km2``."""
    units = store.query_df("SELECT code, name, level, parent_code, is_demo, area_km2 FROM units")
    keep = {region_code}
    frontier = {region_code}
    children = units.groupby("parent_code")["code"].apply(list).to_dict()
    while frontier:
        frontier = {c for p in frontier for c in children.get(p, [])} - keep
        keep |= frontier
    return units[units.code.isin(keep)].sort_values("code").reset_index(drop=True)


def _reach_sql(level: str) -> str:
    """How a role holder ``a`` reaches a cell ``c`` from ``level``: on the cell, or on the unit owning it there."""
    return "a.cell = c.cell" if level == "cell" else f"a.unit_code = c.{level}_code"


def _distinct_cells(cells: np.ndarray) -> np.ndarray:
    """Cells (int64) once each, sorted."""
    cells = pd.unique(np.asarray(cells, dtype=np.int64))
    cells.sort()
    return cells


def _query_cells(store: Store, cells: np.ndarray, sql: str) -> pd.DataFrame:
    """Run ``sql``, which reads the temporary table ``wanted_cells`` (one ``cell`` column), holding ``cells``."""
    with store.transaction():
        store.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_cells (cell BIGINT)")
        store.execute("DELETE FROM wanted_cells")
        store.insert_arrow("wanted_cells", pa.table({"cell": pa.array(cells)}))
        found = store.query_df(sql)
        store.execute("DELETE FROM wanted_cells")
    return found


def chain_holders(store: Store, cells: np.ndarray) -> pd.DataFrame:
    """Everyone on the responsibility chain of each cell, in the chain's order.

    Parameters
    ----------
    store : Store
        The database.
    cells : array of int
        H3 cells (int64); repeats are looked up once.

    Returns
    -------
    pandas.DataFrame
        ``cell, step, role, unit, person_id`` sorted by cell, step and person id: ``step`` is the position in
        :data:`CHAIN`, ``unit`` the unit code the role is held on ('' for a role held on the cell).
    """
    cells = _distinct_cells(cells)
    empty = pd.DataFrame({"cell": np.zeros(0, np.int64), "step": np.zeros(0, np.int64), "role": [], "unit": [],
                          "person_id": np.zeros(0, np.int64)})
    roles = ", ".join(f"'{r}'" for r in _CHAIN_ROLE_NAMES)
    if not len(cells) or not store.scalar(f"SELECT count(*) FROM assignments WHERE role IN ({roles})"):
        return empty
    # one equi-join per level (an OR of them would make the join a nested loop)
    reach = " UNION ALL ".join(
        f"SELECT c.cell, a.person_id, a.role, COALESCE(a.unit_code, '') AS unit, {depth} AS depth"
        f" FROM wanted_cells w JOIN cells c ON c.cell = w.cell JOIN assignments a ON {_reach_sql(level)}"
        f" WHERE a.role IN ({roles})"
        for depth, level in enumerate(CHAIN_LEVELS))
    found = _query_cells(store, cells, reach)
    if found.empty:
        return empty
    role = pd.Categorical(found.role, categories=_CHAIN_ROLE_NAMES).codes
    found["step"] = _STEP_OF[found.depth.to_numpy(dtype=np.int64), role]
    found["person_id"] = found.person_id.astype(np.int64)
    found = found[found.step.to_numpy() >= 0]
    return (found.sort_values(["cell", "step", "person_id"], kind="stable")
            [["cell", "step", "role", "unit", "person_id"]].reset_index(drop=True))


def assignees_for_cells(store: Store, cells: np.ndarray) -> pd.DataFrame:
    """The person each cell's new task goes to, the first on its chain: ``cell, person_id, role, unit, gap``.

    One row per distinct cell, by cell. ``gap`` is True when no inspector covers the cell; ``person_id`` is <NA>
    (role and unit missing) when nobody on the chain holds a role.
    """
    base = pd.DataFrame({"cell": _distinct_cells(cells)})
    holders = chain_holders(store, base.cell.to_numpy())
    if holders.empty:
        n = len(base)
        return base.assign(person_id=pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)),
                           role=None, unit=None, gap=True)
    first = holders.drop_duplicates("cell")[["cell", "person_id", "role", "unit"]]
    out = base.merge(first, on="cell", how="left")
    out["person_id"] = out.person_id.astype("Int64")
    out["gap"] = out.role.ne("inspector").to_numpy()
    return out


def next_up(store: Store, tasks: pd.DataFrame) -> pd.DataFrame:
    """The person above each task's assignee on the chain of its cell: where an overdue task goes.

    The next escalation step of :data:`CHAIN` after the assignee's (the first one when the assignee holds no
    escalation step of the cell) whose first holder (lowest person id) is someone else than the assignee.

    Parameters
    ----------
    store : Store
        The database.
    tasks : pandas.DataFrame
        ``cell, assignee_id, assigned_role, assigned_unit`` per task.

    Returns
    -------
    pandas.DataFrame
        ``person_id`` (Int64), ``role``, ``unit`` per task, on the index of ``tasks``; missing at the chain's top.
    """
    out = pd.DataFrame({"person_id": pd.array([pd.NA] * len(tasks), dtype="Int64"),
                        "role": pd.Series([None] * len(tasks), dtype=object),
                        "unit": pd.Series([None] * len(tasks), dtype=object)}, index=tasks.index)
    if tasks.empty:
        return out
    climb = [i for i, step in enumerate(CHAIN) if step.escalation]
    cells = tasks.cell.to_numpy(dtype=np.int64)
    codes = _query_cells(store, _distinct_cells(cells), "SELECT c.cell, c.village_code, c.township_code,"
                         " c.county_code FROM wanted_cells w JOIN cells c ON c.cell = w.cell")
    codes = codes.set_index("cell").reindex(cells)
    role = tasks.assigned_role.to_numpy(dtype=object)
    unit = tasks.assigned_unit.to_numpy(dtype=object)
    # the assignee's escalation step: its position among the steps of ``climb``, -1 when none
    at = np.full(len(tasks), -1, dtype=np.int64)
    for k, i in reversed(list(enumerate(climb))):
        code = codes[f"{CHAIN[i].level}_code"].to_numpy(dtype=object)
        held = pd.notna(code) & (code != "")
        at = np.where(held & (role == CHAIN[i].role) & (unit == code), k, at)
    holders = chain_holders(store, cells)
    firsts = holders[holders.step.isin(climb)].drop_duplicates(["cell", "step"])
    firsts = firsts.assign(k=firsts.step.map({i: k for k, i in enumerate(climb)}))
    pairs = pd.DataFrame({"task": np.arange(len(tasks)), "cell": cells, "at": at,
                          "assignee": tasks.assignee_id.astype("Int64").to_numpy()}).merge(firsts, on="cell")
    pairs = pairs[(pairs.k > pairs["at"]) & (pairs.person_id != pairs.assignee).fillna(True)]
    best = pairs.sort_values(["task", "k"]).drop_duplicates("task")
    rows = best.task.to_numpy()
    out.iloc[rows, out.columns.get_loc("person_id")] = best.person_id.to_numpy(dtype=np.int64)
    out.iloc[rows, out.columns.get_loc("role")] = best.role.to_numpy(dtype=object)
    out.iloc[rows, out.columns.get_loc("unit")] = best.unit.to_numpy(dtype=object)
    return out


def responsible_chain(store: Store, cell: int) -> dict[str, Any]:
    """Who answers for a cell: its owners and every person on the chain up to the county.

    Returns
    -------
    dict
        ``cell`` (hex id), ``owners`` {level: {code, name}}, ``chain`` (list of
        ``{level, unit_code, unit_name, role, role_label, person, person_key, phone}``
        from the cell up), and ``gaps`` (roles the chain lacks).
    """
    rows = store.query(
        "SELECT c.village_code, c.township_code, c.county_code, c.city_code FROM cells c WHERE c.cell = ?",
        [int(cell)],
    )
    if not rows:
        raise NotFound("Cell {cell} is not part of the grid.", cell=h3.int_to_str(int(cell)))
    own = rows[0]
    codes = {"village": own["village_code"], "township": own["township_code"], "county": own["county_code"]}
    names = {
        r["code"]: r["name"]
        for r in store.query(
            "SELECT code, name FROM units WHERE code IN (?, ?, ?, ?)",
            [own["village_code"], own["township_code"], own["county_code"], own["city_code"]],
        )
    }
    found = store.query(
        "SELECT a.role, a.unit_code, a.cell, p.name, p.person_key, p.phone, r.chain_order, r.label_zh, r.label_en"
        " FROM assignments a JOIN people p ON p.id = a.person_id JOIN roles r ON r.name = a.role"
        f" WHERE a.role IN ({', '.join('?' * len(CHAIN_ROLES))}) AND (a.cell = ? OR a.unit_code IN (?, ?, ?))"
        " ORDER BY r.chain_order, p.person_key",
        [*CHAIN_ROLES, int(cell), codes["village"], codes["township"], codes["county"]],
    )
    cell_id = h3.int_to_str(int(cell))
    chain = []
    for level in CHAIN_LEVELS:
        for r in found:
            at_level = r["cell"] is not None if level == "cell" else (r["cell"] is None and r["unit_code"] == codes[level])
            if at_level:
                chain.append({
                    "level": level,
                    "unit_code": cell_id if level == "cell" else r["unit_code"],
                    "unit_name": cell_id if level == "cell" else names.get(r["unit_code"], ""),
                    "role": r["role"],
                    "role_label": r["label_zh"],
                    "person": r["name"],
                    "person_key": r["person_key"],
                    "phone": r["phone"],
                })
    held = {c["role"] for c in chain}
    gaps = [role for role in ("inspector", "grid_leader") if role not in held]
    return {
        "cell": cell_id,
        "owners": {
            level: {"code": own[f"{level}_code"], "name": names.get(own[f"{level}_code"], "")}
            for level in ("city", "county", "township", "village")
            if own[f"{level}_code"]
        },
        "chain": chain,
        "gaps": gaps,
    }


def coverage_report(store: Store, region_code: str, *, limit: int = 200) -> dict[str, Any]:
    """Coverage gaps of a region (全覆盖 check).

    Returns
    -------
    dict
        ``units_without_grid_leader`` (list of units), ``cells_without_inspector``
        (count, by township, and the first ``limit`` cell ids),
        ``people_without_unit`` (list), and the totals checked.
    """
    units = region_units(store, region_code)
    leaders = {r["unit_code"] for r in store.query(
        "SELECT DISTINCT unit_code FROM assignments WHERE role = 'grid_leader' AND unit_code IS NOT NULL")}
    no_leader = units[~units.code.isin(leaders)]
    cells = store.query_df("SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")
    insp = store.query_df("SELECT unit_code, cell FROM assignments WHERE role = 'inspector'")
    covered_units = set(insp.unit_code.dropna())
    covered_cells = set(insp.cell.dropna().astype("int64"))
    mask = cells.cell.isin(covered_cells).to_numpy().copy()
    for col in ("village_code", "township_code", "county_code", "city_code"):
        mask |= cells[col].isin(covered_units).to_numpy()
    gaps = cells[~mask]
    names = dict(zip(units.code, units.name))
    by_township = (
        gaps.groupby(gaps.township_code.fillna(""), dropna=False).size().sort_values(ascending=False)
    )
    people = store.query_df(
        "SELECT p.person_key, p.name FROM people p WHERE NOT EXISTS"
        " (SELECT 1 FROM assignments a WHERE a.person_id = p.id) ORDER BY p.person_key"
    )
    return {
        "region": region_code,
        "units_checked": int(len(units)),
        "cells_checked": int(len(cells)),
        "units_without_grid_leader": [
            {"code": r.code, "name": r.name, "level": r.level} for r in no_leader.itertuples()
        ],
        "cells_without_inspector": {
            "count": int(len(gaps)),
            "by_township": [
                {"code": code, "name": names.get(code, ""), "cells": int(n)} for code, n in by_township.items()
            ],
            "cells": [h3.int_to_str(int(c)) for c in gaps.cell.head(limit)],
        },
        "people_without_unit": people.to_dict("records"),
    }


def can(store: Store, person_id: int, action: str) -> bool:
    """Whether any role the person holds grants ``action`` (scope is checked by callers)."""
    return bool(store.scalar(
        "SELECT 1 FROM assignments a JOIN role_grants g ON g.role = a.role WHERE a.person_id = ? AND g.action = ?",
        [person_id, action],
    ))
