"""Giving tasks to people: by task, by cell or village, and a day's split among inspectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from gridwatch import assignment, auth, org
from gridwatch.services._common import audit
from gridwatch.storage import Store


def assign_people(store: Store, user: auth.User) -> pd.DataFrame:
    """Who work may go to: inspectors and grid members in the user's scope (``person_key, name, role, unit_name``)."""
    return assignment.assignable_people(store, user)


def assign_tasks(store: Store, user: auth.User, *, unit: str | None = None, day: dt.date | None = None,
                 cells: list[str] | None = None) -> pd.DataFrame:
    """Tasks in the user's scope nobody has started, by due time, with ``cell_id`` (H3 hex) and place."""
    cell_ints = None if cells is None else [org.parse_cell(c) for c in cells]
    df = assignment.assignable_tasks(store, user, unit=unit, day=day, cells=cell_ints)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def assign_units(store: Store, user: auth.User) -> pd.DataFrame:
    """The units the user assigns work in (their units and all below): ``code, name, level, parent_code``."""
    auth.require(store, user, assignment.ASSIGN)
    roots = sorted({u for role, u, _ in user.roles
                    if u is not None and assignment.ASSIGN in user.role_grants.get(role, ())})
    frames = [org.region_units(store, code) for code in roots]
    if not frames:
        return pd.DataFrame(columns=["code", "name", "level", "parent_code"])
    units = pd.concat(frames).drop_duplicates("code").sort_values("code").reset_index(drop=True)
    return units[["code", "name", "level", "parent_code"]]


def assign_reassign(store: Store, user: auth.User, task_ids: list[int], person_key: str, *,
                    note: str = "") -> dict[str, Any]:
    """Give one or many tasks to an inspector or grid member in the user's scope (all or nothing)."""
    with store.transaction():
        result = assignment.reassign(store, user, task_ids, person_key, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.reassign", subject=result["to"],
                  detail={**result, "note": note})
    return result


def assign_cells(store: Store, user: auth.User, cells: list[str | int], person_key: str, *,
                 note: str = "") -> dict[str, Any]:
    """Give every not-yet-started task on the cells (H3 hex ids or integers) to one person."""
    cell_ints = [org.parse_cell(c) for c in cells]
    with store.transaction():
        result = assignment.assign_cells(store, user, cell_ints, person_key, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.assign_cells", subject=result["to"],
                  detail={**result, "note": note})
    return result


def assign_split_preview(store: Store, user: auth.User, day: dt.date, person_keys: list[str], *,
                         unit: str | None = None) -> assignment.Plan:
    """Propose how to split the day's tasks by cell among the people (nothing written); ``cell_id`` added."""
    plan = assignment.split_plan(store, user, day, person_keys, unit=unit)
    plan.tasks["cell_id"] = cells_to_string(
        pa.array(plan.tasks.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return plan


def assign_split_apply(store: Store, user: auth.User, plan: assignment.Plan, *, note: str = "") -> dict[str, Any]:
    """Carry out a previewed split (tasks started since are skipped and counted)."""
    with store.transaction():
        result = assignment.apply_plan(store, user, plan, note=note)
        if result["reassigned"]:
            audit(store, actor=user.username, action="tasks.split", subject=plan.day.isoformat(),
                  detail={**result, "note": note, "people": sorted(set(plan.tasks.person_key))})
    return result
