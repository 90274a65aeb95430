"""Administrative units, people and their roles; who is responsible for a cell; coverage gaps.

Roles are data (tables ``roles``, ``role_grants``, ``assignments``): a person
holds a role on a unit at any level or on one cell. A role held on a unit
covers every cell the unit owns.

The responsibility chain of a cell is defined once, by the tables :data:`CHAIN` and :data:`ESCALATION`: a new task
goes to the first step of the chain someone holds (:func:`assignees_for_cells`), an overdue one climbs to the next
escalation step someone else holds (:func:`next_up`: village, township, county, city), and
:func:`responsible_chain` lists it for people to read.
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
from gridwatch.policy import DEFAULT_REQUIRED_ROLES, ESCALATION_LEVELS
from gridwatch.storage import Store

__all__ = [
    "ROLES",
    "CHAIN_ROLES",
    "CHAIN_LEVELS",
    "Step",
    "CHAIN",
    "EscalationStep",
    "ESCALATION",
    "SUPERVISED_ROLES",
    "role_conflicts",
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
#: where a role on the chain is held: on the cell itself, or on the village, township, county or city owning it
CHAIN_LEVELS = ("cell", "village", "township", "county", "city")
PEOPLE_COLUMNS = ("person_key", "name", "phone", "role", "unit_code", "cell")


@dataclass(frozen=True)
class Step:
    """One step of the responsibility chain: a role held on the cell or on the unit of one level owning it."""

    role: str
    level: str


#: The responsibility chain of a cell, first to last. A new task goes to the first step someone holds (lowest
#: person id first): an inspector, nearest first, else the grid member, grid leader or unit head of the cell, then
#: of its village, township, county and city.
CHAIN: tuple[Step, ...] = tuple(Step(role, level) for role, level in (
    ("inspector",   "cell"),
    ("inspector",   "village"),
    ("inspector",   "township"),
    ("inspector",   "county"),
    ("inspector",   "city"),
    ("grid_member", "cell"),
    ("grid_leader", "cell"),
    ("unit_head",   "cell"),
    ("grid_member", "village"),
    ("grid_leader", "village"),
    ("unit_head",   "village"),
    ("grid_member", "township"),
    ("grid_leader", "township"),
    ("unit_head",   "township"),
    ("grid_member", "county"),
    ("grid_leader", "county"),
    ("unit_head",   "county"),
    ("grid_member", "city"),
    ("grid_leader", "city"),
    ("unit_head",   "city"),
))


@dataclass(frozen=True)
class EscalationStep:
    """One step an overdue task climbs to: a level, and its roles in the order the task goes to them.

    The task goes to the first holder of the first role someone else than its assignee holds (lowest person id
    first); the step's other holders are informed (named on the escalation event).
    """

    level: str
    roles: tuple[str, ...]


#: The escalation order (HN-2017 §11, the policy excerpts §1): 网格长为第一责任人; the grid leader and the village's
#: 主要负责人 hold direct responsibility, so the village step gives the task to the grid leader with the village
#: head informed (and to the head where no grid leader is appointed: the head is never skipped); the township's
#: 主要负责人 holds leadership responsibility, so the township step gives it to the head with the township grid
#: leader informed; the plans name no order at the county and the city, where the grid leader, the first responsible
#: person, takes it with the head informed. The system covers 市、县、乡镇、村: the city is the top. Each step has
#: its own hours (``sla_step_hours``, :attr:`gridwatch.policy.Policy.step_hours`).
ESCALATION: tuple[EscalationStep, ...] = (
    EscalationStep("village", ("grid_leader", "unit_head")),
    EscalationStep("township", ("unit_head", "grid_leader")),
    EscalationStep("county", ("grid_leader", "unit_head")),
    EscalationStep("city", ("grid_leader", "unit_head")),
)
if tuple(step.level for step in ESCALATION) != ESCALATION_LEVELS:  # pragma: no cover - a table edited on one side
    raise ImportError("org.ESCALATION and policy.ESCALATION_LEVELS name different levels")

#: the roles on the chain, in the order of their first step
_CHAIN_ROLE_NAMES = tuple(dict.fromkeys(step.role for step in CHAIN))
#: each (level, role) pair's position in :data:`CHAIN` (-1: not on it)
_STEP_OF = np.full((len(CHAIN_LEVELS), len(_CHAIN_ROLE_NAMES)), -1, dtype=np.int64)
for _i, _step in enumerate(CHAIN):
    _STEP_OF[CHAIN_LEVELS.index(_step.level), _CHAIN_ROLE_NAMES.index(_step.role)] = _i
#: each position in :data:`CHAIN` that is an escalation step's role: (step number, the role's rank in the step)
_CLIMB = {i: (k, esc.roles.index(step.role)) for i, step in enumerate(CHAIN) for k, esc in enumerate(ESCALATION)
          if step.level == esc.level and step.role in esc.roles}


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
    """Where each overdue task goes: the next step of :data:`ESCALATION` above its assignee's that someone else holds.

    The assignee's step is the one whose level's unit and one of whose roles the task was assigned with (none, for
    an inspector, a grid member or a role on the cell: the task then climbs to the first step). A step is skipped
    only when nobody but the assignee holds it. Within the step the task goes to the first holder of the step's
    first role held (lowest person id first); the step's other holders are informed.

    Parameters
    ----------
    store : Store
        The database.
    tasks : pandas.DataFrame
        ``cell, assignee_id, assigned_role, assigned_unit`` per task.

    Returns
    -------
    pandas.DataFrame
        On the index of ``tasks``: ``person_id`` (Int64), ``role``, ``unit``, ``level`` of the step it goes to
        (missing at the chain's top), ``informed`` (person ids, a list per task) and ``from_level`` (the
        assignee's step, None when the assignee holds none).
    """
    n = len(tasks)
    out = pd.DataFrame({"person_id": pd.array([pd.NA] * n, dtype="Int64"),
                        "role": pd.Series([None] * n, dtype=object), "unit": pd.Series([None] * n, dtype=object),
                        "level": pd.Series([None] * n, dtype=object),
                        "informed": pd.Series([[] for _ in range(n)], dtype=object),
                        "from_level": pd.Series([None] * n, dtype=object)}, index=tasks.index)
    if tasks.empty:
        return out
    cells = tasks.cell.to_numpy(dtype=np.int64)
    codes = _query_cells(store, _distinct_cells(cells), "SELECT c.cell, c.village_code, c.township_code,"
                         " c.county_code, c.city_code FROM wanted_cells w JOIN cells c ON c.cell = w.cell")
    codes = codes.set_index("cell").reindex(cells)
    role = tasks.assigned_role.to_numpy(dtype=object)
    unit = tasks.assigned_unit.to_numpy(dtype=object)
    at = np.full(n, -1, dtype=np.int64)  # the assignee's step, -1 when none
    for k, step in enumerate(ESCALATION):
        code = codes[f"{step.level}_code"].to_numpy(dtype=object)
        held = pd.notna(code) & (code != "")
        at = np.where(held & np.isin(role, step.roles) & (unit == code), k, at)
    out["from_level"] = np.asarray([ESCALATION[k].level if k >= 0 else None for k in at], dtype=object)
    holders = chain_holders(store, cells)
    holders = holders[holders.step.isin(list(_CLIMB))]
    holders = holders.assign(k=holders.step.map(lambda i: _CLIMB[i][0]).astype(np.int64),
                             rank=holders.step.map(lambda i: _CLIMB[i][1]).astype(np.int64))
    pairs = pd.DataFrame({"task": np.arange(n), "cell": cells, "at": at,
                          "assignee": tasks.assignee_id.astype("Int64").to_numpy()}).merge(holders, on="cell")
    pairs = pairs[(pairs.k > pairs["at"]) & (pairs.person_id != pairs.assignee).fillna(True)]
    pairs = pairs.sort_values(["task", "k", "rank", "person_id"], kind="stable")
    best = pairs.drop_duplicates("task")
    rows = best.task.to_numpy()
    out.iloc[rows, out.columns.get_loc("person_id")] = best.person_id.to_numpy(dtype=np.int64)
    out.iloc[rows, out.columns.get_loc("role")] = best.role.to_numpy(dtype=object)
    out.iloc[rows, out.columns.get_loc("unit")] = best.unit.to_numpy(dtype=object)
    out.iloc[rows, out.columns.get_loc("level")] = np.asarray([ESCALATION[k].level for k in best.k], dtype=object)
    step = pairs.merge(best[["task", "k", "person_id"]].rename(columns={"k": "to_k", "person_id": "to_person"}),
                       on="task")
    step = step[(step.k == step.to_k) & (step.person_id != step.to_person)]
    for task, people in step.groupby("task").person_id:
        out.iat[int(task), out.columns.get_loc("informed")] = sorted({int(p) for p in people})
    return out


def responsible_chain(store: Store, cell: int) -> dict[str, Any]:
    """Who answers for a cell: its owners and every person on the chain up to the city.

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
    codes = {level: own[f"{level}_code"] for level in ("village", "township", "county", "city")}
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
        f" WHERE a.role IN ({', '.join('?' * len(CHAIN_ROLES))}) AND (a.cell = ? OR a.unit_code IN (?, ?, ?, ?))"
        " ORDER BY r.chain_order, p.person_key",
        [*CHAIN_ROLES, int(cell), codes["village"], codes["township"], codes["county"], codes["city"]],
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


#: the roles whose work a supervisor (监督员) supervises: a supervisor holding one of them where they supervise (on
#: the same unit or cell, one inside it, or one containing it) supervises their own work
SUPERVISED_ROLES = ("inspector", "grid_member", "grid_leader")


def _place_paths(store: Store) -> tuple[dict[str, str], dict[str, str]]:
    """Unit code → parent code, and unit code → name."""
    units = store.query("SELECT code, name, parent_code FROM units")
    return {u["code"]: u["parent_code"] for u in units}, {u["code"]: u["name"] for u in units}


def role_conflicts(store: Store, *, person_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Where a person supervises their own work: 监督员 of a place and inspector, grid member or grid leader of the
    same place, of one inside it or of one containing it (the places overlap).

    Returns
    -------
    list of dict
        ``person_id, person_key, name, supervisor_assignment, supervised_place, supervised_name, assignment, role,
        place, place_name, same_place`` per conflicting pair of roles, by person key; a place is a unit code or a
        cell's hex id.
    """
    supervised = ", ".join(f"'{r}'" for r in SUPERVISED_ROLES)
    where = "" if person_ids is None else \
        f" AND a.person_id IN ({', '.join(str(int(p)) for p in person_ids) or 'NULL'})"
    rows = store.query(
        "SELECT a.id, a.person_id, a.role, a.unit_code, a.cell, p.person_key, p.name, c.village_code,"
        " c.township_code, c.county_code, c.city_code FROM assignments a JOIN people p ON p.id = a.person_id"
        " LEFT JOIN cells c ON c.cell = a.cell"
        f" WHERE a.role IN ('supervisor', {supervised}) AND a.person_id IN"
        f" (SELECT person_id FROM assignments WHERE role = 'supervisor'){where} ORDER BY p.person_key, a.id")
    if not rows:
        return []
    parents, names = _place_paths(store)

    def place(r: dict) -> tuple[str, str, set[str]]:
        """The place's id, its name and the ids of every place containing it (itself included)."""
        if r["cell"] is None:
            code, name = r["unit_code"], names.get(r["unit_code"], "")
            start = code
        else:
            code = name = h3.int_to_str(int(r["cell"]))
            start = next((r[f"{lv}_code"] for lv in ("village", "township", "county", "city") if r[f"{lv}_code"]), None)
        path = {code} if r["cell"] is not None else set()
        while start is not None and start not in path:
            path.add(start)
            start = parents.get(start)
        return code, name, path

    out = []
    by_person: dict[int, list[dict]] = {}
    for r in rows:
        by_person.setdefault(int(r["person_id"]), []).append(r)
    for held in by_person.values():
        places = {r["id"]: place(r) for r in held}
        for sup in (r for r in held if r["role"] == "supervisor"):
            s_code, s_name, s_path = places[sup["id"]]
            for work in (r for r in held if r["role"] in SUPERVISED_ROLES):
                w_code, w_name, w_path = places[work["id"]]
                if s_code in w_path or w_code in s_path:
                    out.append({"person_id": int(sup["person_id"]), "person_key": sup["person_key"],
                                "name": sup["name"], "supervisor_assignment": int(sup["id"]),
                                "supervised_place": s_code, "supervised_name": s_name,
                                "assignment": int(work["id"]), "role": work["role"], "place": w_code,
                                "place_name": w_name, "same_place": s_code == w_code})
    return out


def coverage_report(store: Store, region_code: str, *, required: dict[str, tuple[str, ...]] | None = None,
                    cells: np.ndarray | None = None, limit: int = 200) -> dict[str, Any]:
    """Coverage gaps of a region (全覆盖 check) against the roles the local set-up requires, and conflicting roles.

    Parameters
    ----------
    store : Store
        The database.
    region_code : str
        The region's unit.
    required : mapping, optional
        The roles each level's units must hold, and every cell (``cell``: on the cell or a unit owning it)
        (:attr:`gridwatch.policy.Policy.required_roles`); default :data:`gridwatch.policy.DEFAULT_REQUIRED_ROLES`,
        a grid leader on every unit and an inspector on every cell.
    cells : array of int, optional
        Only these cells and the units lying wholly inside them (a leader's scope); people without a unit are
        then not listed.
    limit : int
        Most cell ids listed per role.

    Returns
    -------
    dict
        ``required_roles`` and ``default`` (the set-up checked), ``role_gaps`` (per level and role required:
        ``level, role, checked, count, units``), ``cell_gaps`` (per role required on cells: ``count``,
        ``by_township``, ``by_village``, the first ``limit`` ``cells``), ``conflicts`` (:func:`role_conflicts` in
        the region or scope), ``units_without_grid_leader`` and ``cells_without_inspector`` (the same gaps of
        those two roles), ``people_without_unit`` and the totals checked.
    """
    required = dict(DEFAULT_REQUIRED_ROLES if required is None else required)
    units = region_units(store, region_code)
    grid = store.query_df("SELECT cell, city_code, county_code, township_code, village_code FROM cells ORDER BY cell")
    if cells is not None:
        grid["inside"] = grid.cell.isin(np.asarray(cells, dtype=np.int64))
        inside = set()
        for col in ("village_code", "township_code", "county_code", "city_code"):
            whole = grid.groupby(col).inside.all()
            inside |= set(whole[whole].index)
        units = units[units.code.isin(inside)]
        grid = grid[grid.inside].drop(columns="inside")
    names = dict(zip(units.code, units.name, strict=True))
    names |= {r["code"]: r["name"] for r in store.query("SELECT code, name FROM units WHERE level IN"
                                                        " ('township', 'village')")}
    held = store.query_df("SELECT role, unit_code, cell FROM assignments")
    role_gaps = []
    for level, roles in required.items():
        if level == "cell":
            continue
        at_level = units[units.level == level]
        if at_level.empty:  # no unit of the level in the region (the province above a county)
            continue
        for role in roles:
            holding = set(held.unit_code[(held.role == role) & held.unit_code.notna()])
            missing = at_level[~at_level.code.isin(holding)]
            role_gaps.append({"level": level, "role": role, "checked": int(len(at_level)), "count": int(len(missing)),
                              "units": [{"code": r.code, "name": r.name, "level": r.level}
                                        for r in missing.itertuples()]})
    cell_gaps = {}
    for role in required.get("cell", ()):
        mine = held[held.role == role]
        covered_units = set(mine.unit_code.dropna())
        mask = grid.cell.isin(set(mine.cell.dropna().astype("int64"))).to_numpy().copy()
        for col in ("village_code", "township_code", "county_code", "city_code"):
            mask |= grid[col].isin(covered_units).to_numpy()
        gaps = grid[~mask]
        cell_gaps[role] = {
            "count": int(len(gaps)),
            **{f"by_{level}": [{"code": code, "name": names.get(code, ""), "cells": int(k)} for code, k in
                               gaps.groupby(gaps[f"{level}_code"].fillna(""), dropna=False).size()
                               .sort_values(ascending=False, kind="stable").items()]
               for level in ("township", "village")},
            "cells": [h3.int_to_str(int(c)) for c in gaps.cell.head(limit)]}
    known = set(units.code) | {h3.int_to_str(int(c)) for c in grid.cell} if cells is not None else None
    conflicts = [c for c in role_conflicts(store)
                 if known is None or c["supervised_place"] in known or c["place"] in known]
    people = [] if cells is not None else store.query_df(
        "SELECT p.person_key, p.name FROM people p WHERE NOT EXISTS"
        " (SELECT 1 FROM assignments a WHERE a.person_id = p.id) ORDER BY p.person_key").to_dict("records")
    no_gap = {"count": 0, "by_township": [], "by_village": [], "cells": []}
    return {
        "region": region_code,
        "units_checked": int(len(units)),
        "cells_checked": int(len(grid)),
        "required_roles": {level: list(roles) for level, roles in required.items()},
        "default": required == DEFAULT_REQUIRED_ROLES,
        "role_gaps": role_gaps,
        "cell_gaps": cell_gaps,
        "conflicts": conflicts,
        "units_without_grid_leader": sorted((u for g in role_gaps if g["role"] == "grid_leader" for u in g["units"]),
                                            key=lambda u: u["code"]),
        "cells_without_inspector": cell_gaps.get("inspector", no_gap),
        "people_without_unit": people,
    }


def can(store: Store, person_id: int, action: str) -> bool:
    """Whether any role the person holds grants ``action`` (scope is checked by callers)."""
    return bool(store.scalar(
        "SELECT 1 FROM assignments a JOIN role_grants g ON g.role = a.role WHERE a.person_id = ? AND g.action = ?",
        [person_id, action],
    ))
