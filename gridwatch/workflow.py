"""Task work in the store: state changes as appended events, proof of presence, escalation, routine patrols.

Every change appends a ``task_events`` row (who, when, from where, what) and
updates the cached state on ``tasks`` in the same transaction; the state is
always the last event's target, checked against the transition table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
import shapely.ops

from gridwatch.crs import geodesic_distance_m
from gridwatch.dispatch import open_tasks
from gridwatch.errors import Conflict, NotFound, PermissionDenied, ValidationError
from gridwatch.i18n import task_title_columns
from gridwatch.storage import Store
from gridwatch.policy import DispatchPolicy
from gridwatch.tasks import (ACTIVE_STATES, Kind, Priority, State, check_finding, check_transition,
                             naive_utc)

__all__ = ["Fix", "transition", "task_detail", "list_tasks", "escalate_overdue", "generate_patrols",
           "GPS_TOLERANCE_M"]

#: a report's GPS fix may lie this far outside the task's cell before it is flagged to the verifier
GPS_TOLERANCE_M = 150.0


@dataclass(frozen=True)
class Fix:
    """A GPS position from the device, with its accuracy radius in metres."""

    lat: float
    lng: float
    accuracy_m: float | None = None

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lng <= 180):
            raise ValidationError("The GPS position (lat {lat}, lng {lng}) is not a valid WGS84 position.",
                                  lat=self.lat, lng=self.lng)




def distance_outside_cell_m(cell: int, fix: Fix) -> float:
    """How far (metres, geodesic) a position lies outside a cell; 0 inside it."""
    ring = h3.cell_to_boundary(h3.int_to_str(int(cell)))
    hexagon = shapely.Polygon([(lng, lat) for lat, lng in ring])
    point = shapely.Point(fix.lng, fix.lat)
    if hexagon.covers(point):
        return 0.0
    nearest = shapely.ops.nearest_points(hexagon.exterior, point)[0]
    return float(geodesic_distance_m(lat1=fix.lat, lng1=fix.lng, lat2=nearest.y, lng2=nearest.x))


def _task(store: Store, task_id: int) -> dict[str, Any]:
    rows = store.query("SELECT * FROM tasks WHERE id = ?", [int(task_id)])
    if not rows:
        raise NotFound("There is no task {id}.", id=task_id)
    return rows[0]


def _append(store: Store, task: dict, to_state: State, *, actor: str, now: dt.datetime, detail: dict) -> int:
    event_id = int(store.scalar("SELECT nextval('task_events_id_seq')"))
    store.execute(
        "INSERT INTO task_events (id, task_id, happened_at, actor, from_state, to_state, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [event_id, task["id"], now, actor, task["state"], to_state.value, json.dumps(detail, ensure_ascii=False)])
    store.execute("UPDATE tasks SET state = ? WHERE id = ?", [to_state.value, task["id"]])
    return event_id


def last_event_id(store: Store, task_id: int) -> int | None:
    """The id of a task's latest event: its version, which a form carries to detect a concurrent change."""
    value = store.scalar("SELECT max(id) FROM task_events WHERE task_id = ?", [int(task_id)])
    return None if value is None else int(value)


def _replayed(store: Store, key: str | None, task_id: int) -> dict[str, Any] | None:
    """The detail of the event an idempotency key already produced, if any."""
    if not key:
        return None
    rows = store.query("SELECT e.detail FROM task_event_keys k JOIN task_events e ON e.id = k.event_id"
                       " WHERE k.idempotency_key = ? AND k.task_id = ?", [key, int(task_id)])
    return {**json.loads(rows[0]["detail"]), "replayed": True} if rows else None


def _keep_conflict(store: Store, task: dict, to_state: State, *, actor: str, now: dt.datetime, seen: int | None,
                   current: int, detail: dict) -> dict[str, Any]:
    """Record input that lost a race (apart from the refused transaction) and describe who got there first."""
    def work(s: Store) -> None:
        s.execute("INSERT INTO task_conflicts (task_id, happened_at, actor, wanted_state, seen_event_id,"
                  " current_event_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  [task["id"], now, actor, to_state.value, seen, current, json.dumps(detail, ensure_ascii=False)])

    from gridwatch.auth import _apart  # the same "outlives the refused work" helper access denials use

    _apart(store, work)
    first = store.query("SELECT actor, happened_at, to_state FROM task_events WHERE id = ?", [current])[0]
    return first


def transition(
    store: Store,
    task_id: int,
    to_state: State | str,
    *,
    actor: str,
    actor_person_id: int | None = None,
    finding: str | None = None,
    note: str = "",
    fix: Fix | None = None,
    photos: list[dict] | None = None,
    assignee_id: int | None = None,
    now: dt.datetime | None = None,
    seen_event_id: int | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Move a task to ``to_state``, appending the event; returns the event's detail.

    ``seen_event_id`` is the task's version the person saw (:func:`last_event_id` when the form opened): if the
    task has changed since, nothing is applied, the input is kept in ``task_conflicts`` for the leader, and
    :class:`Conflict` names who changed it and when. ``idempotency_key`` (one per opened form) makes a double tap
    or a resubmit after a reconnect record one event: a repeat returns the first event's detail with
    ``replayed: True``.

    A report (``reported``) needs a finding valid for the task's kind; its GPS
    fix is compared with the cell, and a fix outside the cell (beyond
    :data:`GPS_TOLERANCE_M` plus the fix's accuracy) or no fix at all is flagged
    for the verifier, never silently accepted. Verifying or rejecting needs
    another person than the reporter (four eyes); rejecting needs a note.
    """
    to_state = State(to_state)
    now = naive_utc(now)
    with store.transaction():
        task = _task(store, task_id)
        replay = _replayed(store, idempotency_key, task["id"])
        if replay is not None:
            return replay
        current = last_event_id(store, task["id"])
        if seen_event_id is not None and current is not None and int(seen_event_id) != current:
            submitted = {"finding": finding, "note": note[:4000], "photos": photos or [],
                         "gps": None if fix is None else {"lat": fix.lat, "lng": fix.lng, "accuracy_m": fix.accuracy_m}}
            first = _keep_conflict(store, task, to_state, actor=actor, now=now, seen=int(seen_event_id),
                                   current=current, detail=submitted)
            raise Conflict("Task {id} was changed by {who} at {when} (now {state}) while you were working on it; "
                           "nothing was changed, and your input is kept for the leader.", id=task["id"],
                           who=first["actor"], when=first["happened_at"].strftime("%Y-%m-%d %H:%M UTC"),
                           state=first["to_state"])
        check_transition(task["state"], to_state)
        detail: dict[str, Any] = {}
        if note:
            detail["note"] = note[:4000]
        if fix is not None:
            detail["gps"] = {"lat": fix.lat, "lng": fix.lng, "accuracy_m": fix.accuracy_m}
        if to_state is State.REPORTED:
            detail["finding"] = check_finding(task["kind"], finding)
            detail["photos"] = photos or []
            if fix is None:
                detail["flags"] = ["no_gps"]
            else:
                outside = distance_outside_cell_m(task["cell"], fix)
                detail["outside_cell_m"] = round(outside, 1)
                if outside > GPS_TOLERANCE_M + (fix.accuracy_m or 0):
                    detail["flags"] = ["gps_outside_cell"]
            if actor_person_id is not None:
                detail["reporter_id"] = actor_person_id
        if to_state in (State.VERIFIED, State.REJECTED):
            reporter = _last_reporter(store, task["id"])
            if reporter is not None and actor_person_id == reporter:
                raise PermissionDenied("The person who reported task {id} cannot also verify it; another person "
                                       "must (four eyes).", id=task["id"])
            if to_state is State.REJECTED and not note.strip():
                raise ValidationError("Rejecting a report needs a reason in the note.")
            if actor_person_id is not None:
                detail["verifier_id"] = actor_person_id
        if to_state is State.ASSIGNED and assignee_id is not None:
            detail["from_assignee"] = task["assignee_id"]
            detail["to_assignee"] = int(assignee_id)
            store.execute("UPDATE tasks SET assignee_id = ? WHERE id = ?", [int(assignee_id), task["id"]])
        event_id = _append(store, task, to_state, actor=actor, now=now, detail=detail)
        if idempotency_key:
            store.execute("INSERT INTO task_event_keys (idempotency_key, task_id, event_id) VALUES (?, ?, ?)",
                          [idempotency_key, task["id"], event_id])
    return detail


def _last_reporter(store: Store, task_id: int) -> int | None:
    rows = store.query("SELECT detail FROM task_events WHERE task_id = ? AND to_state = 'reported'"
                       " ORDER BY id DESC LIMIT 1", [task_id])
    if not rows:
        return None
    return json.loads(rows[0]["detail"]).get("reporter_id")


def task_detail(store: Store, task_id: int) -> dict[str, Any]:
    """A task with its cell, place, assignee and its full event history."""
    task = _task(store, task_id)
    events = store.query("SELECT id, happened_at, actor, from_state, to_state, detail FROM task_events"
                         " WHERE task_id = ? ORDER BY id", [task["id"]])
    for e in events:
        e["detail"] = json.loads(e["detail"])
    place = store.query(
        "SELECT c.township_code, t.name AS township, c.village_code, v.name AS village, c.lat, c.lng"
        " FROM cells c LEFT JOIN units t ON t.code = c.township_code LEFT JOIN units v ON v.code = c.village_code"
        " WHERE c.cell = ?", [task["cell"]])
    person = store.query("SELECT person_key, name, phone FROM people WHERE id = ?", [task["assignee_id"]]) \
        if task["assignee_id"] is not None else []
    return {**task, "cell": h3.int_to_str(int(task["cell"])), "place": place[0] if place else {},
            "assignee": person[0] if person else None, "events": events}


def list_tasks(store: Store, *, assignee: str | None = None, state: str | None = None, unit: str | None = None,
               kind: str | None = None, cells: np.ndarray | None = None, limit: int = 1000) -> pd.DataFrame:
    """Tasks, overdue first then by due time, optionally filtered (``assignee`` is a person key)."""
    where, params = [], []
    if assignee:
        where.append("p.person_key = ?")
        params.append(assignee)
    if state:
        where.append("t.state = ?")
        params.append(State(state).value)
    if kind:
        where.append("t.kind = ?")
        params.append(Kind(kind).value)
    if unit:
        where.append("(c.village_code = ? OR c.township_code = ? OR c.county_code = ? OR c.city_code = ?)")
        params += [unit] * 4
    if cells is not None:
        store.execute("CREATE TEMP TABLE IF NOT EXISTS scope_cells (cell BIGINT)")
        store.execute("DELETE FROM scope_cells")
        store.insert_arrow("scope_cells", pa.table({"cell": pa.array(np.asarray(cells, dtype=np.int64))}))
        where.append("t.cell IN (SELECT cell FROM scope_cells)")
    sql = (
        "SELECT t.id, t.kind, t.state, t.priority, t.cell, t.created_at, t.due_at, t.coverage_gap, t.title,"
        " t.title_key, t.title_args, p.person_key AS assignee_key, p.name AS assignee, c.township_code, c.village_code"
        " FROM tasks t JOIN cells c ON c.cell = t.cell LEFT JOIN people p ON p.id = t.assignee_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY t.due_at, t.priority DESC, t.id LIMIT ?"
    )
    return store.query_df(sql, [*params, int(limit)])


def escalate_overdue(store: Store, *, now: dt.datetime | None = None, policy: DispatchPolicy | None = None,
                     actor: str = "escalation") -> dict[str, int]:
    """Move overdue tasks up the responsibility chain; the original assignee stays on the record.

    An overdue task goes from its assignee to the grid leader of the nearest
    unit, then to the township's head, then the county's; each step appends an
    ``escalated`` event and gives the new person a fresh SLA.
    """
    now = naive_utc(now)
    policy = policy or DispatchPolicy()
    active = tuple(s.value for s in ACTIVE_STATES)
    with store.transaction():
        overdue = store.query_df(
            "SELECT t.id, t.kind, t.cell, t.state, t.assignee_id, t.assigned_role, t.assigned_unit,"
            " c.village_code, c.township_code, c.county_code FROM tasks t JOIN cells c ON c.cell = t.cell"
            f" WHERE t.due_at < ? AND t.state IN ({', '.join('?' * len(active))})", [now, *active])
        moved = 0
        for task in overdue.to_dict("records"):
            nxt = _next_up(store, task)
            detail = {"overdue": True, "from_assignee": task["assignee_id"], "from_role": task["assigned_role"]}
            if nxt is not None:
                detail |= {"to_assignee": nxt["person_id"], "to_role": nxt["role"], "to_unit": nxt["unit_code"]}
                store.execute("UPDATE tasks SET assignee_id = ?, assigned_role = ?, assigned_unit = ?, due_at = ?"
                              " WHERE id = ?", [nxt["person_id"], nxt["role"], nxt["unit_code"],
                                                now + dt.timedelta(hours=_sla(policy, task["kind"])), task["id"]])
            else:
                detail["top_of_chain"] = True
                store.execute("UPDATE tasks SET due_at = ? WHERE id = ?",
                              [now + dt.timedelta(hours=_sla(policy, task["kind"])), task["id"]])
            _append(store, task, State.ESCALATED, actor=actor, now=now, detail=detail)
            moved += 1
    return {"escalated": moved}


def _sla(policy: DispatchPolicy, kind: str) -> float:
    return policy.sla_hours if kind == Kind.FIRE_CHECK else policy.sla_by_kind.get(kind, 72.0)


#: the chain above an assignee: (role, level) in order
_CHAIN = (("grid_leader", "village"), ("grid_leader", "township"), ("unit_head", "township"),
          ("grid_leader", "county"), ("unit_head", "county"))


def _next_up(store: Store, task: dict) -> dict | None:
    """The next person above the task's current assignee on the chain of its cell."""
    units = {"village": task["village_code"], "township": task["township_code"], "county": task["county_code"]}
    steps = [(role, units[level]) for role, level in _CHAIN if units[level]]
    current = (task["assigned_role"], task["assigned_unit"])
    start = steps.index(current) + 1 if current in steps else 0
    for role, unit in steps[start:]:
        rows = store.query("SELECT person_id FROM assignments WHERE role = ? AND unit_code = ? ORDER BY person_id"
                           " LIMIT 1", [role, unit])
        if rows and rows[0]["person_id"] != task["assignee_id"]:
            return {"person_id": rows[0]["person_id"], "role": role, "unit_code": unit}
    return None


def generate_patrols(store: Store, *, now: dt.datetime | None = None, cadence_days: int = 7,
                     actor: str = "patrols") -> dict[str, int]:
    """Open the routine patrol due now for every cell (weekly by default, as in the 1 km grid rule); idempotent.

    One task per cell and cadence window; cells nobody has visited for longest get the earliest due times.
    """
    now = naive_utc(now)
    window = int((now - dt.datetime(2024, 1, 1)).days // cadence_days)
    with store.transaction():
        cells = store.query_df(
            "SELECT c.cell, max(e.happened_at) AS last_visit FROM cells c"
            " LEFT JOIN tasks t ON t.cell = c.cell LEFT JOIN task_events e ON e.task_id = t.id"
            " AND e.to_state = 'reported' GROUP BY c.cell")
        key = cells.cell.astype(str) + f":{cadence_days}d:{window}"
        existing = store.query_df("SELECT source_key FROM tasks WHERE kind = 'routine_patrol'")
        fresh = cells[~key.isin(existing.source_key)].copy()
        fresh["source_key"] = key[fresh.index]
        if fresh.empty:
            return {"created": 0, "cells": int(len(cells))}
        never = fresh.last_visit.isna()
        order = fresh.assign(never=~never).sort_values(["never", "last_visit"], na_position="first").reset_index()
        spread = pd.to_timedelta(np.linspace(0, cadence_days * 24 - 1, len(order)), unit="h")
        due = pd.Timestamp(now) + pd.Timedelta(hours=24) + spread
        open_tasks(store, kind=Kind.ROUTINE_PATROL, cells=order.cell.to_numpy(dtype=np.int64),
                   source_kind="cadence", source_keys=order.source_key.to_numpy(dtype=object),
                   priority=np.full(len(order), Priority.ROUTINE), due=due.to_numpy(),
                   titles=task_title_columns("routine_patrol", n=len(order)), now=now, actor=actor,
                   detail={"by": "patrols", "cadence_days": cadence_days})
    return {"created": int(len(order)), "cells": int(len(cells)), "never_visited": int(never.sum())}
