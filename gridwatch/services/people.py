"""Administration of people and their roles, within the administrator's units."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import h3
import pandas as pd

from gridwatch import org
from gridwatch.errors import NotFound, ValidationError
from gridwatch.services._common import (
    MANAGE_PEOPLE,
    Actor,
    SystemActor,
    actor_name,
    audit,
    check_upload_size,
    policy,
    require,
    require_region,
    scope_sql,
)
from gridwatch.storage import Store


def _managed_roots(store: Store, user: Actor) -> list[str]:
    """The units on which the user holds a role granting ``people.manage`` (a system actor: the region's roots)."""
    if isinstance(user, SystemActor):
        return [r["code"] for r in store.query("SELECT code FROM units WHERE parent_code IS NULL ORDER BY code")]
    return sorted({unit for role, unit, _ in user.roles
                   if unit is not None and MANAGE_PEOPLE in user.role_grants.get(role, ())})


def _managed_units(store: Store, user: Actor) -> pd.DataFrame:
    """Every unit the user manages people on (their admin units and all below), each once."""
    frames = [org.region_units(store, code) for code in _managed_roots(store, user)]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code", "is_demo", "area_km2"])
    return pd.concat(frames).drop_duplicates("code").sort_values("code").reset_index(drop=True)


def _require_person(store: Store, user: Actor, person_id: int) -> None:
    """Refuse unless the user may manage every unit and cell the person holds a role on.

    A person who holds no role belongs to nobody's units: only an administrator of the whole region may change them.
    """
    held_roles = store.query("SELECT unit_code, cell FROM assignments WHERE person_id = ? ORDER BY id", [person_id])
    if not held_roles:
        require_region(store, user, MANAGE_PEOPLE)
    for held in held_roles:
        require(store, user, MANAGE_PEOPLE, unit=held["unit_code"],
                     cell=None if held["cell"] is None else int(held["cell"]))


def _person_id(store: Store, person_key: str) -> int:
    found = store.scalar("SELECT id FROM people WHERE person_key = ?", [person_key.strip()])
    if found is None:
        raise NotFound("No person with key {key}.", key=person_key)
    return int(found)


def admin_roles() -> list[str]:
    """The roles a person may be given, most local first (labels: ``ui.t(role)``)."""
    return list(org.ROLES)


def admin_csv_columns() -> list[str]:
    """The columns of a people CSV, in order."""
    return list(org.PEOPLE_COLUMNS)


def admin_units(store: Store, user: Actor) -> pd.DataFrame:
    """The units the user manages people on, for pickers: a tree in order, each unit right under its parent.

    Columns ``code, name, level, parent_code, parent_name, depth`` (0 for the units the admin role is
    held on, 1 for their townships, 2 for villages, ...).
    """
    require(store, user, MANAGE_PEOPLE)
    units = _managed_units(store, user)
    names = {r["code"]: r["name"] for r in store.query("SELECT code, name FROM units")}
    codes = set(units.code)
    children: dict[str, list[str]] = {}
    for code, parent in zip(units.code, units.parent_code):
        if parent in codes:
            children.setdefault(parent, []).append(code)
    order: list[tuple[str, int]] = []
    stack = [(code, 0) for code in sorted(codes - {c for kids in children.values() for c in kids}, reverse=True)]
    while stack:
        code, depth = stack.pop()
        order.append((code, depth))
        stack += [(kid, depth + 1) for kid in sorted(children.get(code, []), reverse=True)]
    rank = pd.DataFrame(order, columns=["code", "depth"])
    out = rank.merge(units[["code", "name", "level", "parent_code"]], on="code", how="left")
    out["parent_name"] = out.parent_code.map(names)
    return out[["code", "name", "level", "parent_code", "parent_name", "depth"]].reset_index(drop=True)


def admin_people(store: Store, user: Actor, *, unit_code: str | None = None) -> pd.DataFrame:
    """People with their roles and units in the admin's region (one row per role held there).

    Parameters
    ----------
    unit_code : str, optional
        Only the roles held on this unit, the units below it and the cells they own.

    Returns
    -------
    pandas.DataFrame
        ``assignment_id`` (nullable), ``person_key, name, phone, role, unit_code, unit_name, unit_level,
        parent_name, cell`` (H3 hex id or ""). A role held on one cell names the village (or lowest unit)
        owning the cell. Without ``unit_code``, people holding no role anywhere are listed too, with an
        empty role, so they can be given one; roles held outside the region are left out.
    """
    require(store, user, MANAGE_PEOPLE, unit=unit_code)
    condition, params = scope_sql(user, "a.cell", MANAGE_PEOPLE)
    df = store.query_df(
        "SELECT a.id AS assignment_id, p.person_key, p.name, p.phone, a.role, a.unit_code AS held_unit,"
        " COALESCE(a.unit_code, c.village_code, c.township_code, c.county_code) AS unit_code,"
        " u.name AS unit_name, u.level AS unit_level, pu.name AS parent_name, a.cell,"
        f" (a.cell IS NOT NULL AND {condition}) AS cell_in_scope"
        " FROM people p LEFT JOIN assignments a ON a.person_id = p.id"
        " LEFT JOIN cells c ON c.cell = a.cell"
        " LEFT JOIN units u ON u.code = COALESCE(a.unit_code, c.village_code, c.township_code, c.county_code)"
        " LEFT JOIN units pu ON pu.code = u.parent_code"
        " ORDER BY p.person_key, a.role, unit_code, a.cell",
        params,
    )
    managed = set(_managed_units(store, user).code)
    keep = df.held_unit.isin(managed) | df.cell_in_scope.eq(True)
    if unit_code:
        keep &= df.unit_code.isin(set(org.region_units(store, unit_code).code))
    else:
        keep |= df.assignment_id.isna()
    df = df[keep.to_numpy()].drop(columns=["held_unit", "cell_in_scope"]).reset_index(drop=True)
    df["assignment_id"] = df.assignment_id.astype("Int64")
    df["cell"] = [h3.int_to_str(int(c)) if pd.notna(c) else "" for c in df.cell]
    text = ["role", "unit_code", "unit_name", "unit_level", "parent_name", "phone"]
    df[text] = df[text].astype(object).where(df[text].notna(), "")
    return df


def admin_add_person(store: Store, user: Actor, *, person_key: str, name: str,
                     phone: str = "") -> dict[str, Any]:
    """Add a person (no role yet), or change the name and phone of one whose roles the admin manages."""
    require(store, user, MANAGE_PEOPLE)
    key, name, phone = person_key.strip(), name.strip(), (phone or "").strip()
    existing = store.scalar("SELECT id FROM people WHERE person_key = ?", [key])
    if existing is not None:
        _require_person(store, user, int(existing))
    with store.transaction():
        before = store.query("SELECT name, phone FROM people WHERE person_key = ?", [key])
        pid = org.add_person(store, person_key=key, name=name, phone=phone)
        audit(store, actor=actor_name(user), action="people.update" if before else "people.add", subject=key,
              detail={"name": name, "phone": phone, **({"before": before[0]} if before else {})})
    return {"person_id": pid, "person_key": key, "name": name, "phone": phone, "added": not before}


def admin_assign(store: Store, user: Actor, *, person_key: str, role: str, unit_code: str | None = None,
                 cell: str | int | None = None) -> dict[str, Any]:
    """Give a person a role on a unit (or one cell, as H3 hex id or integer) in the admin's region.

    Returns ``assignment_id, person_key, role, unit_code, cell``, ``added`` (False when the person
    already held that role there; nothing is written then) and ``conflicts``: where the role makes the person
    supervise their own work (:func:`gridwatch.org.role_conflicts`), a warning; with the local setting
    ``conflicting_roles = refuse`` such a role is refused and nothing is written.
    """
    if (unit_code is None) == (cell is None):
        raise ValidationError("A role is held on exactly one unit or one cell.")
    if role not in org.ROLES:
        raise ValidationError("Unknown role {role!r}; roles are {roles}.", role=role, roles=", ".join(org.ROLES))
    cell_int = org.parse_cell(cell) if cell is not None else None
    if cell_int is not None and store.scalar("SELECT 1 FROM cells WHERE cell = ?", [cell_int]) is None:
        raise NotFound("Cell {cell} is not part of the grid.", cell=h3.int_to_str(cell_int))
    require(store, user, MANAGE_PEOPLE, unit=unit_code, cell=cell_int)
    pid = _person_id(store, person_key)
    with store.transaction():
        added = org.assign_role(store, pid, role, unit_code=unit_code, cell=cell_int)
        assignment = int(store.scalar(
            "SELECT id FROM assignments WHERE person_id = ? AND role = ? AND unit_code IS NOT DISTINCT FROM ?"
            " AND cell IS NOT DISTINCT FROM ?", [pid, role, unit_code, cell_int]))
        conflicts = [c for c in org.role_conflicts(store, person_ids=[pid])
                     if assignment in (c["assignment"], c["supervisor_assignment"])]
        if added and conflicts:
            _refuse_conflicts(store, conflicts)
        result = {"assignment_id": assignment, "person_key": person_key.strip(), "role": role,
                  "unit_code": unit_code, "cell": h3.int_to_str(cell_int) if cell_int is not None else None,
                  "added": bool(added), "conflicts": conflicts}
        if added:
            audit(store, actor=actor_name(user), action="people.assign", subject=person_key.strip(), detail=result)
    return result


def _refuse_conflicts(store: Store, conflicts: list[dict[str, Any]]) -> None:
    """Refuse roles that make a person supervise their own work, when the local setting ``conflicting_roles`` is
    ``refuse`` (the plans name 监督员 but do not forbid it: by default the answer only warns)."""
    if not conflicts or policy(store).conflicting_roles != "refuse":
        return
    first = conflicts[0]
    labels = {r["name"]: r["label_zh"] for r in store.query("SELECT name, label_zh FROM roles")}
    raise ValidationError("{person} would supervise their own work: supervisor of {supervised} and {role} of "
                          "{place}. The local setting conflicting_roles = refuse forbids this; give one of the roles "
                          "to someone else.", person=first["name"],
                          supervised=first["supervised_name"] or first["supervised_place"],
                          role=labels.get(first["role"], first["role"]), place=first["place_name"] or first["place"])


def admin_unassign(store: Store, user: Actor, assignment_id: int) -> dict[str, Any]:
    """Take a role away (one assignment); the audit entry keeps what was removed.

    An administrator cannot take away their own role that lets them manage people (another must).
    """
    rows = store.query(
        "SELECT a.id, a.person_id, p.person_key, p.name, a.role, a.unit_code, a.cell, a.created_at"
        " FROM assignments a JOIN people p ON p.id = a.person_id WHERE a.id = ?", [int(assignment_id)])
    if not rows:
        raise NotFound("No role assignment with id {id}.", id=assignment_id)
    held = rows[0]
    cell = None if held["cell"] is None else int(held["cell"])
    require(store, user, MANAGE_PEOPLE, unit=held["unit_code"], cell=cell)
    own = not isinstance(user, SystemActor) and held["person_id"] == user.person_id
    if own and MANAGE_PEOPLE in user.role_grants.get(held["role"], ()):
        raise ValidationError("You cannot take away your own {role} role; another administrator must.",
                              role=held["role"])
    removed = {"assignment_id": int(held["id"]), "person_key": held["person_key"], "name": held["name"],
               "role": held["role"], "unit_code": held["unit_code"],
               "cell": h3.int_to_str(cell) if cell is not None else None, "held_since": held["created_at"]}
    with store.transaction():
        store.execute("DELETE FROM assignments WHERE id = ?", [int(held["id"])])
        audit(store, actor=actor_name(user), action="people.unassign", subject=held["person_key"], detail=removed)
    return removed


def admin_csv_template(store: Store, user: Actor) -> bytes:
    """A people CSV to fill in, with example rows on units of the admin's region.

    UTF-8 with a BOM, so spreadsheet programs keep the Chinese.
    """
    units = admin_units(store, user)
    village = units[units.level == "village"].code.head(1).tolist()
    township = units[units.level == "township"].code.head(1).tolist()
    top = units.code.head(1).tolist()
    lines = [",".join(org.PEOPLE_COLUMNS)]
    if village or township or top:
        place = (village or township or top)[0]
        lines += [f"p-0001,张三,13800000000,inspector,{place},",
                  f"p-0001,张三,13800000000,grid_member,{place},",
                  f"p-0002,李四,13900000000,grid_leader,{(township or top)[0]},",
                  "p-0003,王五,,,,"]
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def admin_import_people(store: Store, user: Actor, name: str, data: bytes) -> dict[str, Any]:
    """Import people and roles from an uploaded CSV into the admin's region, all or nothing.

    Every role must lie in the region and every person already known must be one whose roles the admin
    manages; a refusal or an error names the line. Returns ``file, people, assignments, unchanged`` and
    ``conflicts`` (the file's people supervising their own work; refused with ``conflicting_roles = refuse``).
    """
    check_upload_size(data, name=name)
    from gridwatch.errors import PermissionDenied

    require(store, user, MANAGE_PEOPLE)
    file = Path(str(name or "")).name or "people.csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file
        path.write_bytes(bytes(data))
        rows = org.read_people_csv(path)
        units = {r["code"] for r in store.query("SELECT code FROM units")}
        checked: set[tuple[str, Any]] = set()
        for row in rows:
            try:
                if row.get("unit_code") in units and ("unit", row["unit_code"]) not in checked:
                    require(store, user, MANAGE_PEOPLE, unit=row["unit_code"])
                    checked.add(("unit", row["unit_code"]))
                if row.get("cell"):
                    try:
                        cell = org.parse_cell(row["cell"])
                    except ValidationError:
                        cell = None  # the import names the line
                    if (cell is not None and ("cell", cell) not in checked
                            and store.scalar("SELECT 1 FROM cells WHERE cell = ?", [cell]) is not None):
                        require(store, user, MANAGE_PEOPLE, cell=cell)
                        checked.add(("cell", cell))
                if ("person", row["person_key"]) not in checked:
                    pid = store.scalar("SELECT id FROM people WHERE person_key = ?", [row["person_key"]])
                    if pid is not None:
                        _require_person(store, user, int(pid))
                    checked.add(("person", row["person_key"]))
            except PermissionDenied as exc:
                raise PermissionDenied("{file}, line {line}: {reason}", file=file, line=row["_line"],
                                            reason=str(exc)) from exc
        with store.transaction():
            result = org.import_people_csv(store, path).to_dict()
            result["conflicts"] = _imported_conflicts(store, rows)
            audit(store, actor=actor_name(user), action="people.import", subject=file,
                  detail={**result, "rows": len(rows), "sha256": hashlib.sha256(bytes(data)).hexdigest()})
    return {"file": file, **result}


def _imported_conflicts(store: Store, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The conflicting roles of the people of an imported file (call inside the import's transaction: refused with
    ``conflicting_roles = refuse``)."""
    keys = sorted({row["person_key"] for row in rows})
    ids = [int(r["id"]) for r in store.query(
        f"SELECT id FROM people WHERE person_key IN ({', '.join('?' * len(keys))})", keys)] if keys else []
    conflicts = org.role_conflicts(store, person_ids=ids) if ids else []
    _refuse_conflicts(store, conflicts)
    return conflicts
