"""Leaders' work assignment: re-assign tasks, bulk-assign the tasks of cells, split a day's work by cell.

A person holding a role that grants ``task.assign`` (grid leader, unit head,
administrator) may move tasks on cells in their scope to a person who holds an
``inspector`` or ``grid_member`` role in the same scope (on one of the leader's
units, a unit below it, or a cell in it). Scope is checked in the core with
:func:`gridwatch.auth.require`, so a refused attempt is recorded in
``access_denials`` like every other refusal.

Every change appends an ``assigned`` event to the task (who, when, from whom
to whom, the note, and the task's original assignee), in one transaction with
the change of the task's cached state and assignee, through the one door to
task state (:func:`gridwatch.workflow.record_events`). Only tasks nobody has
started can move (``open``, ``assigned``, ``escalated``): a task in progress
stays with the person working on it.

"Split by cell for a day" divides the cells of the leader's tasks due by the
end of a local day among chosen inspectors in compact groups of neighbouring
cells, balanced by task count: recursive coordinate bisection of the cell
centres (each cut along the longer side of the group, at the weighted
quantile matching the share of inspectors on each side), with the inspectors
split along the same axis by where their own cells lie, so each group goes to
people living nearby. It is deterministic: the same tasks and inspectors give
the same plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridwatch import auth, org, workflow
from gridwatch.errors import InvalidTransition, NotFound, ValidationError
from gridwatch.policy import TIMEZONE
from gridwatch.storage import Store
from gridwatch.tasks import State, naive_utc

__all__ = ["ASSIGN", "WORKER_ROLES", "REASSIGNABLE", "assignable_people", "assignable_tasks", "reassign",
           "assign_cells", "Plan", "bisect", "split_plan", "apply_plan", "day_bounds"]

#: the grant that lets a person move work between people
ASSIGN = "task.assign"
#: the roles work can be given to
WORKER_ROLES = ("inspector", "grid_member")
#: states in which a task may move to another person (nobody has started it)
REASSIGNABLE = (State.OPEN, State.ASSIGNED, State.ESCALATED)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The start and end of a local (Beijing, :data:`gridwatch.policy.TIMEZONE`) day as naive UTC datetimes.

    Examples
    --------
    >>> day_bounds(dt.date(2026, 6, 10))
    (datetime.datetime(2026, 6, 9, 16, 0), datetime.datetime(2026, 6, 10, 16, 0))
    """
    start = pd.Timestamp(day).tz_localize(TIMEZONE).tz_convert("UTC").tz_localize(None)
    return start.to_pydatetime(), (start + pd.Timedelta(days=1)).to_pydatetime()


def _scope_units(store: Store, user: auth.User) -> set[str]:
    """Every unit at or below a unit on which the user holds a role granting ``task.assign``."""
    roots = sorted({u for role, u, _ in user.roles if u is not None and ASSIGN in user.role_grants.get(role, ())})
    codes: set[str] = set()
    for code in roots:
        codes |= set(org.region_units(store, code).code)
    return codes


def _worker_roles(store: Store) -> pd.DataFrame:
    """Every inspector and grid-member role: ``person_id, person_key, name, role, unit_code, cell``."""
    return store.query_df(
        "SELECT a.person_id, p.person_key, p.name, a.role, a.unit_code, a.cell"
        " FROM assignments a JOIN people p ON p.id = a.person_id"
        f" WHERE a.role IN ({', '.join('?' * len(WORKER_ROLES))})"
        " ORDER BY p.person_key, a.role <> 'inspector', a.unit_code, a.cell", list(WORKER_ROLES))


def _in_scope(roles: pd.DataFrame, units: set[str], cells: np.ndarray) -> np.ndarray:
    """Which role rows lie in the scope given by units and (sorted) cells."""
    by_unit = roles.unit_code.isin(units).to_numpy()
    held = pd.to_numeric(roles.cell, errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
    return by_unit | ((held >= 0) & np.isin(held, cells))


def assignable_people(store: Store, user: auth.User) -> pd.DataFrame:
    """The people work may be given to: an inspector or grid-member role held in the user's scope.

    Parameters
    ----------
    store : Store
        The database.
    user : auth.User
        A person holding a role that grants ``task.assign``.

    Returns
    -------
    pandas.DataFrame
        One row per person, by person key: ``person_id, person_key, name, role, unit_code, unit_name``
        (the person's first in-scope worker role, inspector before grid member; ``unit_code`` is ''
        for a role held on one cell).

    Raises
    ------
    PermissionDenied
        The user holds no role granting ``task.assign`` (recorded).
    """
    auth.require(store, user, ASSIGN)
    roles = _worker_roles(store)
    keep = _in_scope(roles, _scope_units(store, user), auth.user_cells(store, user, ASSIGN))
    people = roles[keep].drop_duplicates("person_id").reset_index(drop=True)
    names = dict(store.query_df("SELECT code, name FROM units").itertuples(index=False, name=None))
    people["unit_code"] = people.unit_code.fillna("")
    people["unit_name"] = people.unit_code.map(names).fillna("")
    people["person_id"] = people.person_id.astype("int64")
    return people[["person_id", "person_key", "name", "role", "unit_code", "unit_name"]]


def _person(store: Store, user: auth.User, person_key: str, people: pd.DataFrame | None = None) -> dict[str, Any]:
    """The eligible person with ``person_key``; refuses (and records) a person outside the user's scope.

    ``people`` is :func:`assignable_people` of the user when the caller has it already.
    """
    key = (person_key or "").strip()
    people = assignable_people(store, user) if people is None else people
    found = people[people.person_key == key]
    if len(found):
        return found.iloc[0].to_dict()
    if store.scalar("SELECT 1 FROM people WHERE person_key = ?", [key]) is None:
        raise NotFound("No person with key {key}.", key=key)
    roles = _worker_roles(store)
    theirs = roles[roles.person_key == key]
    if theirs.empty:
        raise ValidationError("{key} holds no inspector or grid member role; work goes to inspectors and grid "
                              "members.", key=key)
    first = theirs.iloc[0]
    # outside the user's units: refused and recorded like every other refusal
    auth.require(store, user, ASSIGN, unit=first.unit_code if pd.notna(first.unit_code) else None,
                 cell=None if pd.isna(first.cell) else int(first.cell))
    raise AssertionError("unreachable: a worker role outside the scope passed auth.require")  # pragma: no cover


def assignable_tasks(store: Store, user: auth.User, *, cells: np.ndarray | list[int] | None = None,
                     unit: str | None = None, day: dt.date | None = None,
                     task_ids: list[int] | None = None) -> pd.DataFrame:
    """Tasks in the user's scope that nobody has started yet, by due time.

    Parameters
    ----------
    cells : array of int, optional
        Only tasks on these cells.
    unit : str, optional
        Only tasks on cells of this unit (any level).
    day : datetime.date, optional
        Only tasks due by the end of this local day (overdue ones included).
    task_ids : list of int, optional
        Only these tasks.

    Returns
    -------
    pandas.DataFrame
        ``id, kind, state, priority, cell, due_at, title, assignee_id, assignee_key, assignee,
        village_code, village, township_code, lat, lng``.
    """
    auth.require(store, user, ASSIGN)
    condition, params = auth.scope_cells_sql(user, ASSIGN, column="t.cell")
    states = [s.value for s in REASSIGNABLE]
    where = [condition, f"t.state IN ({', '.join('?' * len(states))})"]
    params = [*params, *states]
    if unit:
        where.append("(c.village_code = ? OR c.township_code = ? OR c.county_code = ? OR c.city_code = ?)")
        params += [unit] * 4
    if day is not None:
        where.append("t.due_at < ?")
        params.append(day_bounds(day)[1])
    if cells is not None:
        where.append("t.cell IN (SELECT unnest(CAST(? AS BIGINT[])))")
        params.append([int(c) for c in np.asarray(cells, dtype=np.int64)])
    if task_ids is not None:
        where.append("t.id IN (SELECT unnest(CAST(? AS BIGINT[])))")
        params.append([int(i) for i in task_ids])
    return store.query_df(
        "SELECT t.id, t.kind, t.state, t.priority, t.cell, t.due_at, t.title, t.assignee_id,"
        " t.title_key, t.title_args, p.person_key AS assignee_key, p.name AS assignee, c.village_code,"
        " v.name AS village, c.township_code,"
        " c.lat, c.lng FROM tasks t JOIN cells c ON c.cell = t.cell LEFT JOIN people p ON p.id = t.assignee_id"
        " LEFT JOIN units v ON v.code = c.village_code"
        f" WHERE {' AND '.join(where)} ORDER BY t.due_at, t.priority DESC, t.id", params)


def _move(store: Store, user: auth.User, moves: pd.DataFrame, *, note: str, by: str, now: dt.datetime,
          extra: dict[str, Any] | None = None) -> dict[str, int]:
    """Append an ``assigned`` event per move and update the tasks (call inside a transaction).

    ``moves`` has ``task_id, person_id, role, unit_code``; tasks already with their person are left
    alone. Returns ``{"reassigned": n, "unchanged": m}``.
    """
    if moves.empty:
        return {"reassigned": 0, "unchanged": 0}
    current = store.query_df(
        "SELECT id AS task_id, assignee_id FROM tasks WHERE id IN (SELECT unnest(CAST(? AS BIGINT[])))",
        [[int(i) for i in moves.task_id]])
    merged = moves.merge(current, on="task_id", how="left")
    same = merged.assignee_id.astype("Int64").eq(merged.person_id.astype("Int64")).fillna(False).to_numpy(bool)
    todo = merged[~same]
    if todo.empty:
        return {"reassigned": 0, "unchanged": int(same.sum())}
    todo = todo.sort_values("task_id")
    ids = todo.task_id.to_numpy(dtype=np.int64)
    fixed = {"by": by, **({"note": note[:4000]} if note else {}), **(extra or {})}
    first = _first_moved_from(store, ids)
    original = [f if f is not None else _plain_id(a) for f, a in zip(first, todo.assignee_id, strict=True)]
    details = [{**fixed, "from_assignee": _plain_id(a), "to_assignee": int(p), "to_role": str(r), "to_unit": u,
                "original_assignee": o, "assigned_by": user.person_id}
               for a, p, r, u, o in zip(todo.assignee_id, todo.person_id, todo.role,
                                        todo.unit_code.fillna("").astype(str), original, strict=True)]
    workflow.record_events(store, ids, State.ASSIGNED, actor=user.username, now=now, detail=details, columns={
        "assignee_id": todo.person_id.to_numpy(dtype=np.int64), "assigned_role": todo.role.astype(str).to_numpy(),
        "assigned_unit": todo.unit_code.fillna("").astype(str).to_numpy()})
    return {"reassigned": int(len(todo)), "unchanged": int(same.sum())}


def _plain_id(value: Any) -> int | None:
    """A person id as JSON takes it (None for none)."""
    return None if value is None or pd.isna(value) else int(value)


def _first_moved_from(store: Store, task_ids: np.ndarray) -> list[int | None]:
    """Per task: the first assignee any earlier move or escalation moved it away from (None when none did)."""
    found = store.query_df(
        # ->> in parentheses: DuckDB gives it a lower precedence than IS and AND
        "SELECT e.task_id, (array_agg(CAST((CAST(e.detail AS JSON) ->> 'from_assignee') AS BIGINT)"
        " ORDER BY e.id))[1] AS first_from FROM task_events e"
        " WHERE e.task_id IN (SELECT unnest(CAST(? AS BIGINT[])))"
        " AND (CAST(e.detail AS JSON) ->> 'from_assignee') IS NOT NULL GROUP BY e.task_id",  # JSON null: NULL
        [[int(i) for i in task_ids]])
    first = dict(zip(found.task_id.astype("int64"), found.first_from, strict=True))
    return [_plain_id(first.get(int(i))) for i in task_ids]


def _check_tasks(store: Store, user: auth.User, task_ids: list[int]) -> pd.DataFrame:
    """The tasks, each checked: it exists, lies in the user's scope (refusal recorded) and nobody started it."""
    ids = sorted({int(i) for i in task_ids})
    if not ids:
        raise ValidationError("Choose at least one task.")
    found = store.query_df("SELECT id, cell, state FROM tasks WHERE id IN (SELECT unnest(CAST(? AS BIGINT[])))"
                           " ORDER BY id", [ids])
    missing = sorted(set(ids) - set(found.id.astype(int)))
    if missing:
        raise NotFound("There is no task {id}.", id=", ".join(map(str, missing)))
    condition, params = auth.scope_cells_sql(user, ASSIGN, column="t.cell")
    inside = set(store.query_df(
        f"SELECT t.id FROM tasks t WHERE t.id IN (SELECT unnest(CAST(? AS BIGINT[]))) AND {condition}",
        [ids, *params]).id.astype(int))
    outside = found[~found.id.isin(inside)]
    if len(outside):
        auth.require(store, user, ASSIGN, cell=int(outside.cell.iloc[0]))  # records the refusal and raises
    started = found[~found.state.isin([s.value for s in REASSIGNABLE])]
    if len(started):
        raise InvalidTransition(
            "Task {ids} is already {state}; only tasks nobody has started (open, assigned, escalated) can go to "
            "another person.", ids=", ".join(map(str, started.id.astype(int))), state=str(started.state.iloc[0]))
    return found


def reassign(store: Store, user: auth.User, task_ids: list[int], person_key: str, *, note: str = "",
             now: dt.datetime | None = None, by: str = "reassign") -> dict[str, Any]:
    """Give one or many tasks to a person, all or nothing.

    Parameters
    ----------
    store : Store
        The database.
    user : auth.User
        The leader (``task.assign`` on every task's cell).
    task_ids : list of int
        The tasks; each must be in the user's scope and not started yet.
    person_key : str
        Who gets them: an inspector or grid member in the user's scope.
    note : str
        Why (kept on each event).

    Returns
    -------
    dict
        ``{"to": person_key, "name", "reassigned": n, "unchanged": m, "tasks": [ids]}``; tasks that
        already were the person's get no event.

    Raises
    ------
    PermissionDenied
        A task or the person lies outside the user's scope (recorded).
    InvalidTransition
        A task is already in progress, reported or done.
    """
    now = naive_utc(now)
    person = _person(store, user, person_key)
    with store.transaction():
        tasks = _check_tasks(store, user, task_ids)
        moves = pd.DataFrame({"task_id": tasks.id.astype("int64"), "person_id": person["person_id"],
                              "role": person["role"], "unit_code": person["unit_code"]})
        counts = _move(store, user, moves, note=note, by=by, now=now)
    return {"to": person["person_key"], "name": person["name"], **counts,
            "tasks": [int(i) for i in tasks.id]}


def assign_cells(store: Store, user: auth.User, cells: list[int] | np.ndarray, person_key: str, *,
                 note: str = "", now: dt.datetime | None = None) -> dict[str, Any]:
    """Give every not-yet-started task on a set of cells to one person.

    Every cell must lie in the user's scope (a refusal names the first that does not, and is
    recorded). Returns as :func:`reassign`, plus ``cells``.
    """
    cell_ids = np.unique(np.asarray(cells, dtype=np.int64))
    if not len(cell_ids):
        raise ValidationError("Choose at least one cell.")
    allowed = auth.user_cells(store, user, ASSIGN)
    outside = cell_ids[~np.isin(cell_ids, allowed)]
    if len(outside):
        auth.require(store, user, ASSIGN, cell=int(outside[0]))  # records the refusal and raises
    person = _person(store, user, person_key)
    now = naive_utc(now)
    with store.transaction():
        tasks = assignable_tasks(store, user, cells=cell_ids)
        moves = pd.DataFrame({"task_id": tasks.id.astype("int64"), "person_id": person["person_id"],
                              "role": person["role"], "unit_code": person["unit_code"]})
        counts = _move(store, user, moves, note=note, by="cells", now=now, extra={"cells": int(len(cell_ids))})
    return {"to": person["person_key"], "name": person["name"], **counts, "cells": int(len(cell_ids)),
            "tasks": [int(i) for i in tasks.id]}


# -- split by cell for a day ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A proposed split of a day's work.

    Attributes
    ----------
    day : datetime.date
        The local day.
    tasks : pandas.DataFrame
        One row per task: ``task_id, cell, village, due_at, title, from_key, person_id, person_key, name,
        role, unit_code, group``.
    people : pandas.DataFrame
        One row per chosen person: ``person_key, name, cells, tasks, group``.
    """

    day: dt.date
    tasks: pd.DataFrame
    people: pd.DataFrame

    @property
    def spread(self) -> int:
        """The largest minus the smallest number of tasks any chosen person gets."""
        return int(self.people.tasks.max() - self.people.tasks.min()) if len(self.people) else 0


def bisect(xy: np.ndarray, weight: np.ndarray, keys: np.ndarray, homes: np.ndarray) -> np.ndarray:
    """Split weighted points into ``len(homes)`` compact groups balanced by weight; returns each point's group.

    Recursive coordinate bisection: each step cuts the points along the longer side of their bounding
    box at the weighted quantile ``k1 / k`` (the share of the ``k`` groups going to the low side), and
    the groups (given by their ``homes``, one point each) along the same axis, lowest ``k1`` homes to the
    low side. Ties are broken by ``keys`` (and the group index), so the result is deterministic.

    Parameters
    ----------
    xy : (n, 2) array
        Planar positions of the points (cells).
    weight : (n,) array
        Their weights (tasks per cell), positive.
    keys : (n,) array of int
        A unique, stable key per point (the H3 cell).
    homes : (k, 2) array
        Where each group's person lives.

    Returns
    -------
    numpy.ndarray
        The group (0 .. k-1, an index into ``homes``) of every point.

    Examples
    --------
    >>> xy = np.array([[0., 0.], [1., 0.], [2., 0.], [3., 0.]])
    >>> bisect(xy, np.array([1, 1, 1, 1]), np.arange(4), np.array([[3., 0.], [0., 0.]])).tolist()
    [1, 1, 0, 0]
    """
    out = np.full(len(xy), -1, dtype=np.int64)
    stack = [(np.arange(len(xy)), np.arange(len(homes)))]
    while stack:
        points, groups = stack.pop()
        if not len(groups):
            continue
        if len(groups) == 1 or len(points) == 0:
            out[points] = groups[0]
            continue
        span = xy[points].max(axis=0) - xy[points].min(axis=0)
        axis = int(np.argmax(span))
        order = points[np.lexsort((keys[points], xy[points, axis]))]
        gorder = groups[np.lexsort((groups, homes[groups, axis]))]
        k1 = len(groups) // 2
        cum = np.cumsum(weight[order], dtype=float)
        target = cum[-1] * k1 / len(groups)
        # the cut after which the low side holds the weight closest to its share, leaving each side a point
        cut = int(np.argmin(np.abs(cum[:-1] - target))) + 1 if len(order) > 1 else 1
        stack.append((order[cut:], gorder[k1:]))
        stack.append((order[:cut], gorder[:k1]))
    return out


def _homes(store: Store, people: pd.DataFrame) -> np.ndarray:
    """Where each person's worker cells lie: the mean (lat, lng) of the cells of their worker roles."""
    rows = store.query_df(
        "SELECT a.person_id, avg(c.lat) AS lat, avg(c.lng) AS lng FROM assignments a JOIN cells c"
        " ON c.cell = a.cell OR a.unit_code IN (c.village_code, c.township_code, c.county_code, c.city_code)"
        f" WHERE a.role IN ({', '.join('?' * len(WORKER_ROLES))})"
        " AND a.person_id IN (SELECT unnest(CAST(? AS BIGINT[]))) GROUP BY a.person_id",
        [*WORKER_ROLES, [int(p) for p in people.person_id]])
    found = people[["person_id"]].merge(rows, on="person_id", how="left")
    return found[["lat", "lng"]].to_numpy(dtype=float)


def split_plan(store: Store, user: auth.User, day: dt.date, person_keys: list[str], *,
               unit: str | None = None) -> Plan:
    """Propose a split of the user's not-yet-started tasks due by the end of ``day`` among people, by cell.

    All tasks of a cell go to one person; the cells are divided into compact groups of neighbouring
    cells, one per person, balanced by task count (see :func:`bisect`), and each group goes to the
    person whose own cells lie nearest along the cuts. Nothing is written: show the plan, then
    :func:`apply_plan` it.

    Parameters
    ----------
    day : datetime.date
        The local (Beijing) day; tasks due by its end are planned, overdue ones included.
    person_keys : list of str
        The inspectors or grid members available that day, each in the user's scope.
    unit : str, optional
        Only the tasks of this unit (e.g. one village of a township).

    Raises
    ------
    PermissionDenied
        A person outside the user's scope (recorded).
    ValidationError
        No people chosen.
    """
    keys = list(dict.fromkeys(k.strip() for k in person_keys if k and k.strip()))
    if not keys:
        raise ValidationError("Choose at least one person to share the work.")
    eligible = assignable_people(store, user)
    people = pd.DataFrame([_person(store, user, k, eligible) for k in keys]).sort_values("person_key")
    people = people.reset_index(drop=True)
    tasks = assignable_tasks(store, user, day=day, unit=unit)
    per_cell = (tasks.groupby("cell", sort=True)
                .agg(tasks=("id", "size"), lat=("lat", "first"), lng=("lng", "first")).reset_index())
    homes_ll = _homes(store, people)
    centre = (np.array([per_cell.lat.mean(), per_cell.lng.mean()]) if len(per_cell)
              else np.nanmean(homes_ll, axis=0))
    homes_ll = np.where(np.isnan(homes_ll), centre, homes_ll)
    lat_all = np.concatenate([per_cell.lat.to_numpy(dtype=float), homes_ll[:, 0]])
    scale = np.cos(np.radians(lat_all.mean())) if len(lat_all) else 1.0
    xy = np.column_stack([per_cell.lng.to_numpy(dtype=float) * scale, per_cell.lat.to_numpy(dtype=float)])
    homes = np.column_stack([homes_ll[:, 1] * scale, homes_ll[:, 0]])
    per_cell["group"] = bisect(xy, per_cell.tasks.to_numpy(dtype=float), per_cell.cell.to_numpy(dtype=np.int64),
                               homes)
    who = people.reset_index(names="group")
    planned = (tasks.merge(per_cell[["cell", "group"]], on="cell")
               .merge(who[["group", "person_id", "person_key", "name", "role", "unit_code"]], on="group"))
    planned = planned.rename(columns={"id": "task_id", "assignee_key": "from_key"})[
        ["task_id", "cell", "village", "due_at", "title", "from_key", "person_id", "person_key", "name", "role",
         "unit_code", "group"]].sort_values(["group", "cell", "task_id"]).reset_index(drop=True)
    counts = per_cell.groupby("group").agg(cells=("cell", "size"), tasks=("tasks", "sum"))
    summary = who[["group", "person_key", "name"]].merge(counts, left_on="group", right_index=True, how="left")
    summary[["cells", "tasks"]] = summary[["cells", "tasks"]].fillna(0).astype("int64")
    return Plan(day=day, tasks=planned, people=summary[["person_key", "name", "cells", "tasks", "group"]])


def apply_plan(store: Store, user: auth.User, plan: Plan, *, note: str = "",
               now: dt.datetime | None = None) -> dict[str, Any]:
    """Carry out a split: each planned task goes to its person, in one transaction.

    Scope is checked again (a task or person now outside it is refused and recorded, nothing is
    written). A task someone started or finished since the preview is left as it is and counted
    in ``skipped``. Returns ``{"reassigned", "unchanged", "skipped", "people"}``.
    """
    now = naive_utc(now)
    planned = plan.tasks
    eligible = assignable_people(store, user)
    for key in sorted(set(planned.person_key)):
        _person(store, user, key, eligible)
    with store.transaction():
        ids = [int(i) for i in planned.task_id]
        if ids:
            condition, params = auth.scope_cells_sql(user, ASSIGN, column="t.cell")
            rows = store.query_df(
                f"SELECT t.id, t.cell, t.state, {condition} AS inside FROM tasks t"
                " WHERE t.id IN (SELECT unnest(CAST(? AS BIGINT[])))", [*params, ids])
            outside = rows[~rows.inside.astype(bool)]
            if len(outside):
                auth.require(store, user, ASSIGN, cell=int(outside.cell.iloc[0]))
            still = set(rows[rows.state.isin([s.value for s in REASSIGNABLE])].id.astype(int))
        else:
            still = set()
        todo = planned[planned.task_id.isin(still)]
        moves = todo[["task_id", "person_id", "role", "unit_code"]]
        counts = _move(store, user, moves, note=note, by="split", now=now,
                       extra={"day": plan.day.isoformat()})
    return {**counts, "skipped": int(len(planned) - len(todo)), "people": int(planned.person_key.nunique())}
