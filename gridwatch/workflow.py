"""Task work in the store: opening tasks, state changes as appended events, proof of presence, escalation, patrols.

This module is the only writer of task state. Every change goes through one door, :func:`record_events`: it
checks each step against the transition table (a task's creation is the step from no state to ``open`` or
``assigned``), appends a ``task_events`` row per task (who, when, from where, what) and updates the cached
columns of ``tasks`` (state, assignee, due time) in the caller's transaction, so the state is always the last
event's target. Opening tasks in bulk (:func:`open_tasks`), a person's transition, escalation, reassignment
(:mod:`gridwatch.assignment`) and withdrawal (:func:`withdraw_tasks`) all go through it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
import shapely.ops

from gridwatch import org
from gridwatch.crs import geodesic_distance_m
from gridwatch.errors import Conflict, NotFound, PermissionDenied, ValidationError
from gridwatch.i18n import TaskTitles, task_title_columns
from gridwatch.policy import Policy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, State, check_finding, check_transition, naive_utc

__all__ = ["Fix", "record_events", "open_tasks", "transition", "withdraw_tasks", "task_detail", "list_tasks",
           "escalate_overdue", "generate_patrols", "GPS_TOLERANCE_M"]

#: a report's GPS fix may lie this far outside the task's cell before it is flagged to the verifier
GPS_TOLERANCE_M = 150.0


@dataclass(frozen=True)
class Fix:
    """A GPS position from the device, with its accuracy radius in metres and, when the device gave it, the time it
    was taken (``observed_at``, aware or UTC)."""

    lat: float
    lng: float
    accuracy_m: float | None = None
    observed_at: dt.datetime | None = None

    def as_detail(self) -> dict[str, Any]:
        """The fix as an event's ``gps`` detail (its time as ISO 8601 UTC, when known)."""
        found: dict[str, Any] = {"lat": self.lat, "lng": self.lng, "accuracy_m": self.accuracy_m}
        if self.observed_at is not None:
            found["observed_at"] = naive_utc(self.observed_at).strftime("%Y-%m-%dT%H:%M:%SZ")
        return found

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


def _row_lock(store: Store) -> str:
    """SQL that locks the task rows a step reads until its transaction ends, so the check and the write see one state.

    PostgreSQL needs it (``FOR UPDATE``: a second session waits, then reads what the first wrote); DuckDB refuses
    the second of two concurrent writers of a row by itself (its transactions are optimistic).
    """
    return " FOR UPDATE" if store.backend == "postgres" else ""


def _task(store: Store, task_id: int, *, lock: bool = False) -> dict[str, Any]:
    rows = store.query(f"SELECT * FROM tasks WHERE id = ?{_row_lock(store) if lock else ''}", [int(task_id)])
    if not rows:
        raise NotFound("There is no task {id}.", id=task_id)
    return rows[0]


#: the cached columns of ``tasks`` a step may set besides the state, with their Arrow types
CACHED_COLUMNS: dict[str, pa.DataType] = {"assignee_id": pa.int64(), "assigned_role": pa.string(),
                                          "assigned_unit": pa.string(), "due_at": pa.timestamp("us")}


def _texts(values: State | str | Sequence[str] | np.ndarray | pa.Array, n: int) -> pa.Array:
    """One text per task: a single value repeated, or the values as an Arrow string array."""
    if isinstance(values, str):
        return pa.repeat(pa.scalar(str(values), pa.string()), n)
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)


def _details(detail: Mapping[str, Any] | Sequence[Mapping[str, Any]] | pa.Array, n: int) -> pa.Array:
    """Event details as JSON texts: one mapping for every task, one per task, or the texts already made."""
    if isinstance(detail, Mapping):
        return pa.repeat(pa.scalar(json.dumps(detail, ensure_ascii=False), pa.string()), n)
    if isinstance(detail, (pa.Array, pa.ChunkedArray)):
        return _texts(detail, n)
    return pa.array([json.dumps(d, ensure_ascii=False) for d in detail], type=pa.string())


def _stored_states(store: Store, ids: np.ndarray) -> pa.Array:
    """The stored state of each task (in the order of ``ids``), its row locked; a missing task is :class:`NotFound`."""
    if len(ids) == 1:
        rows = store.query(f"SELECT id, state FROM tasks WHERE id = ?{_row_lock(store)}", [int(ids[0])])
        found = pd.DataFrame(rows, columns=["id", "state"])
    else:
        found = store.query_df("SELECT id, state FROM tasks WHERE id IN (SELECT unnest(CAST(? AS BIGINT[])))"
                               f" ORDER BY id{_row_lock(store)}", [[int(i) for i in ids]])
    at = pd.Index(found.id.to_numpy(dtype=np.int64)).get_indexer(ids)
    if (at < 0).any():
        raise NotFound("There is no task {id}.", id=", ".join(str(int(i)) for i in ids[at < 0][:5]))
    return pa.array(found.state.to_numpy(dtype=object)[at], type=pa.string())


def _check_steps(from_states: pa.Array, to_states: pa.Array) -> None:
    """Check every distinct step ``from → to`` against the transition table (``from`` null: a creation)."""
    if from_states.null_count == len(from_states):
        for target in pc.unique(to_states).to_pylist():
            check_transition(None, target)
        return
    steps = pd.DataFrame({"from": from_states.to_pandas(), "to": to_states.to_pandas()}).drop_duplicates()
    for current, target in steps.itertuples(index=False):
        check_transition(None if pd.isna(current) else current, target)


def record_events(store: Store, task_ids: np.ndarray | Sequence[int] | pa.Array,
                  to_state: State | str | Sequence[str] | np.ndarray | pa.Array, *, actor: str, now: dt.datetime,
                  detail: Mapping[str, Any] | Sequence[Mapping[str, Any]] | pa.Array,
                  columns: Mapping[str, Any] | None = None, created: bool = False) -> np.ndarray | None:
    """The one door to task state: check each task's step, append its event, update its cached columns.

    Call inside the caller's transaction (nothing is written when a step is refused: the caller's transaction
    rolls back). One task or many at once: the events are one bulk insert, the tasks one update.

    Parameters
    ----------
    store : Store
        The database.
    task_ids : array of int
        The tasks.
    to_state : State, str or array of str
        The state each task goes to (one for all, or one per task).
    actor : str
        Who (a user name, or the job's name), recorded on every event.
    now : datetime.datetime
        When (naive UTC).
    detail : mapping, sequence of mappings, or Arrow strings
        The event's detail: one for all, one per task, or their JSON texts.
    columns : mapping, optional
        Other cached columns of :data:`CACHED_COLUMNS` to set, each one value per task.
    created : bool
        The tasks were just inserted (by :func:`open_tasks`) with ``to_state``: their first events, the step
        from no state; ``tasks`` is left as it is.

    Returns
    -------
    numpy.ndarray or None
        The new events' ids, in the order of ``task_ids`` (None for created tasks, whose event ids the database
        draws in bulk).

    Raises
    ------
    InvalidTransition
        A step the transition table does not allow.
    NotFound
        A task that does not exist.
    """
    ids = np.asarray(task_ids.to_numpy() if isinstance(task_ids, (pa.Array, pa.ChunkedArray)) else task_ids,
                     dtype=np.int64)
    n = len(ids)
    if not n:
        return None if created else np.zeros(0, dtype=np.int64)
    unknown = sorted(set(columns or ()) - set(CACHED_COLUMNS))
    if unknown:
        raise ValueError(f"record_events sets only the cached columns {sorted(CACHED_COLUMNS)}, not {unknown}")
    if not created and len(np.unique(ids)) != n:
        raise ValueError("record_events takes each task once: one step per task and call")
    to_states = _texts(to_state.value if isinstance(to_state, State) else to_state, n)
    from_states = pa.nulls(n, pa.string()) if created else _stored_states(store, ids)
    _check_steps(from_states, to_states)
    events = {
        "task_id": pa.array(ids),
        "happened_at": pa.repeat(pa.scalar(now, type=pa.timestamp("us")), n),
        "actor": pa.repeat(pa.scalar(actor, pa.string()), n),
        "from_state": from_states,
        "to_state": to_states,
        "detail": _details(detail, n),
        **_sets_columns(columns or {}, n),
    }
    if created:
        store.insert_arrow("task_events", pa.table(events))
        return None
    event_ids = store.next_ids("task_events_id_seq", n)
    if n == 1:
        store.execute("INSERT INTO task_events (id, task_id, happened_at, actor, from_state, to_state, detail, sets,"
                      " assignee_id, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [int(event_ids[0]), int(ids[0]), now, actor, from_states[0].as_py(), to_states[0].as_py(),
                       events["detail"][0].as_py(), events["sets"][0].as_py(), events["assignee_id"][0].as_py(),
                       events["due_at"][0].as_py()])
    else:
        store.insert_arrow("task_events", pa.table({"id": pa.array(event_ids), **events}))
    _update_tasks(store, ids, to_states, columns or {})
    return event_ids


#: the cached columns an event records when it sets them (``sets``), so ``audit verify`` can derive the task row
DERIVED_COLUMNS = ("assignee_id", "due_at")


def _sets_columns(columns: Mapping[str, Any], n: int) -> dict[str, pa.Array]:
    """The event columns saying which of :data:`DERIVED_COLUMNS` the event sets, and their values after it."""
    sets = [c for c in DERIVED_COLUMNS if c in columns]
    return {"sets": pa.repeat(pa.scalar(",".join(sets), pa.string()), n),
            **{c: _column(columns[c], CACHED_COLUMNS[c]) if c in sets else pa.nulls(n, CACHED_COLUMNS[c])
               for c in DERIVED_COLUMNS}}


def _update_tasks(store: Store, ids: np.ndarray, states: pa.Array, columns: Mapping[str, Any]) -> None:
    """Set the cached state (and ``columns``) of the tasks: one statement for one task, a join for many."""
    names = list(columns)
    if len(ids) == 1:
        values = [_column(columns[c], CACHED_COLUMNS[c])[0].as_py() for c in names]
        store.execute(f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in ['state', *names])} WHERE id = ?",
                      [states[0].as_py(), *values, int(ids[0])])
        return
    store.execute("CREATE TEMP TABLE IF NOT EXISTS task_changes (id BIGINT, state TEXT, assignee_id BIGINT,"
                  " assigned_role TEXT, assigned_unit TEXT, due_at TIMESTAMP)")
    store.execute("DELETE FROM task_changes")
    store.insert_arrow("task_changes", pa.table({
        "id": pa.array(ids), "state": states,
        **{c: _column(columns[c], CACHED_COLUMNS[c]) for c in names}}))
    store.execute(f"UPDATE tasks SET {', '.join(f'{c} = c.{c}' for c in ['state', *names])}"
                  " FROM task_changes c WHERE tasks.id = c.id")
    store.execute("DELETE FROM task_changes")


def _column(values: Any, kind: pa.DataType) -> pa.Array:
    """Values of a cached column as an Arrow array of its type (missing values null)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(kind)
    if isinstance(values, (pd.Series, pd.Index)) and kind == pa.int64():
        return pa.array(pd.array(values, dtype="Int64"), type=kind)
    if kind == pa.timestamp("us"):
        return pa.array(np.asarray(values).astype("datetime64[us]"), type=kind)
    return pa.array(np.asarray(values, dtype=object), type=kind, from_pandas=True)


def _strings(values: np.ndarray | pa.Array) -> pa.Array:
    """Text values as an Arrow string array (an Arrow array is taken as it is)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    return pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)


def open_tasks(store: Store, *, kind: Kind, cells: np.ndarray, source_kind: str, source_keys: np.ndarray,
               priority: np.ndarray, due: np.ndarray, titles: TaskTitles | np.ndarray, now: dt.datetime, actor: str,
               detail: dict, who: pd.DataFrame | None = None) -> int:
    """Open tasks in bulk, each for its cell's responsible person, with its first event; returns the coverage gaps.

    Call inside a transaction. A task whose cell has nobody on the chain stays ``open`` with no assignee.
    ``titles`` are a message key and its values (:func:`gridwatch.i18n.task_title_columns`), translated where
    they are shown; plain texts give tasks without a key. ``source_keys`` and plain titles may be numpy arrays of
    text or Arrow string arrays. ``who`` is
    :func:`gridwatch.org.assignees_for_cells` of ``cells`` (or of more cells), when the caller looked it up in
    the same transaction. Whatever their number, the tasks' ids are drawn from their sequence at once
    (:meth:`Store.next_ids`), then one Arrow insert writes the tasks and one their first events
    (:func:`record_events`).
    """
    cells = np.asarray(cells, dtype=np.int64)
    n = len(cells)
    who = org.assignees_for_cells(store, cells) if who is None else who
    at = pa.array(pd.Index(who.cell.to_numpy(dtype=np.int64)).get_indexer(cells))  # each task's row of ``who``
    has_person = who.person_id.notna().to_numpy()
    state = pa.array([State.OPEN.value, State.ASSIGNED.value]).take(pa.array(has_person.astype(np.int8)).take(at))
    with store.transaction():
        ids = pa.array(store.next_ids("tasks_id_seq", n))
        store.insert_arrow("tasks", pa.table({
            "id": ids,
            "kind": pa.repeat(kind.value, n),
            "cell": pa.array(cells),
            "source_kind": pa.repeat(source_kind, n),
            "source_key": _strings(source_keys),
            "priority": pa.array(np.asarray(priority, dtype=np.int32)),
            "state": state,
            "assignee_id": pa.array(who.person_id.astype("Int64").array, type=pa.int64()).take(at),
            "assigned_role": pa.array(who.role.to_numpy(dtype=object), type=pa.string(), from_pandas=True).take(at),
            "assigned_unit": pa.array(who.unit.to_numpy(dtype=object), type=pa.string(), from_pandas=True).take(at),
            "coverage_gap": pa.array(who.gap.to_numpy(dtype=bool)).take(at),
            "created_at": pa.repeat(pa.scalar(now, type=pa.timestamp("us")), n),
            "due_at": pa.array(np.asarray(due).astype("datetime64[us]")),
            **_title_columns(titles, n),
        }))
        record_events(store, ids, state, actor=actor, now=now, detail=detail, created=True,
                      columns={"assignee_id": pa.array(who.person_id.astype("Int64").array, type=pa.int64()).take(at),
                               "due_at": pa.array(np.asarray(due).astype("datetime64[us]"))})
    return int(who.gap.to_numpy(dtype=bool)[np.asarray(at)].sum())


def _title_columns(titles: TaskTitles | np.ndarray | pa.Array, n: int) -> dict[str, pa.Array]:
    """The ``title``, ``title_key`` and ``title_args`` columns of ``n`` new tasks."""
    if isinstance(titles, TaskTitles):
        return {"title": titles.title, "title_key": pa.repeat(titles.key, n), "title_args": titles.args}
    return {"title": _strings(titles), "title_key": pa.repeat("", n), "title_args": pa.repeat("{}", n)}


def withdraw_tasks(store: Store, task_ids: np.ndarray | Sequence[int], *, note: str | Sequence[str], actor: str,
                   now: dt.datetime | None = None) -> int:
    """Withdraw the active ones of the tasks (made moot: a newly published layer version); returns how many.

    ``note`` is one note for all, or one per task (in the order of ``task_ids``), kept on each ``withdrawn``
    event. Tasks already reported, verified, closed or withdrawn are left as they are. Call inside the
    publication's transaction.
    """
    ids = np.asarray(task_ids, dtype=np.int64)
    if not len(ids):
        return 0
    notes = [note] * len(ids) if isinstance(note, str) else list(note)
    if len(notes) != len(ids):
        raise ValueError(f"withdraw_tasks: {len(notes)} notes for {len(ids)} tasks")
    states = [s.value for s in ACTIVE_STATES]
    with store.transaction():
        active = store.query_df(
            "SELECT id FROM tasks WHERE id IN (SELECT unnest(CAST(? AS BIGINT[])))"
            f" AND state IN ({', '.join('?' * len(states))}) ORDER BY id", [[int(i) for i in ids], *states])
        todo = active.id.to_numpy(dtype=np.int64)
        note_of = dict(zip(ids.tolist(), notes, strict=True))
        record_events(store, todo, State.WITHDRAWN, actor=actor, now=naive_utc(now),
                      detail=[{"note": note_of[i][:4000]} if note_of[i] else {} for i in todo.tolist()])
    return int(len(todo))


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
    """Record input that lost a race (apart from the refused transaction) and describe who got there first.

    Input sent again with the same idempotency key (a field device retrying) is kept once.
    """
    key = detail.get("idempotency_key")
    kept = key is not None and any(
        json.loads(row["detail"]).get("idempotency_key") == key
        for row in store.query("SELECT detail FROM task_conflicts WHERE task_id = ? AND actor = ?", [task["id"], actor]))

    def work(s: Store) -> None:
        if kept:
            return
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
        task = _task(store, task_id, lock=True)
        replay = _replayed(store, idempotency_key, task["id"])
        if replay is not None:
            return replay
        current = last_event_id(store, task["id"])
        if seen_event_id is not None and current is not None and int(seen_event_id) != current:
            submitted = {"finding": finding, "note": note[:4000], "photos": photos or [],
                         "gps": None if fix is None else fix.as_detail()}
            if idempotency_key:
                submitted["idempotency_key"] = idempotency_key
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
            detail["gps"] = fix.as_detail()
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
        columns = None
        if to_state is State.ASSIGNED and assignee_id is not None:
            detail["from_assignee"] = task["assignee_id"]
            detail["to_assignee"] = int(assignee_id)
            columns = {"assignee_id": [int(assignee_id)]}
        event_id = int(record_events(store, [task["id"]], to_state, actor=actor, now=now, detail=detail,
                                     columns=columns)[0])
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


def escalate_overdue(store: Store, *, policy: Policy, now: dt.datetime | None = None,
                     actor: str = "escalation") -> dict[str, int]:
    """Move overdue tasks up the responsibility chain; the original assignee stays on the record.

    An overdue task goes from its assignee to the next escalation step up its cell's chain that someone else holds
    (:func:`gridwatch.org.next_up`, :data:`gridwatch.org.ESCALATION`: the village's grid leader with its head
    informed, the township's head, the county, the city); each step appends an ``escalated`` event naming the step,
    the person it goes to and those informed, and gives the task the hours of that step
    (:meth:`Policy.escalation_hours`: ``sla_step_hours`` of the level, else the hours of the task's kind). At the top
    of the chain the task stays with its assignee, with a fresh time of the step it is at.
    """
    now = naive_utc(now)
    active = tuple(s.value for s in ACTIVE_STATES)
    with store.transaction():
        overdue = store.query_df(
            "SELECT t.id, t.kind, t.cell, t.assignee_id, t.assigned_role, t.assigned_unit"
            " FROM tasks t JOIN cells c ON c.cell = t.cell"
            f" WHERE t.due_at < ? AND t.state IN ({', '.join('?' * len(active))}) ORDER BY t.id", [now, *active])
        if overdue.empty:
            return {"escalated": 0}
        overdue["assignee_id"] = overdue.assignee_id.astype("Int64")
        up = org.next_up(store, overdue)
        moved = up.person_id.notna().to_numpy()
        details, hours = [], []
        for task, nxt, goes in zip(overdue.itertuples(index=False), up.itertuples(index=False), moved, strict=True):
            detail: dict[str, Any] = {"overdue": True, "from_assignee": _plain(task.assignee_id),
                                      "from_role": _plain(task.assigned_role)}
            level = nxt.level if goes else nxt.from_level
            if goes:
                detail |= {"to_assignee": int(nxt.person_id), "to_role": nxt.role, "to_unit": nxt.unit,
                           "to_level": nxt.level}
                if nxt.informed:
                    detail["informed"] = list(nxt.informed)
            else:
                detail["top_of_chain"] = True
            hours.append(policy.escalation_hours(task.kind, level))
            detail["hours"] = hours[-1]
            details.append(detail)
        hours = np.asarray(hours, dtype=float)
        record_events(store, overdue.id.to_numpy(dtype=np.int64), State.ESCALATED, actor=actor, now=now,
                      detail=details, columns={
                          "assignee_id": up.person_id.where(moved, overdue.assignee_id),
                          "assigned_role": np.where(moved, up.role, overdue.assigned_role),
                          "assigned_unit": np.where(moved, up.unit, overdue.assigned_unit),
                          "due_at": np.datetime64(now, "us") + (hours * 3_600_000_000).astype("timedelta64[us]")})
    return {"escalated": int(len(overdue))}


def _plain(value: Any) -> Any:
    """A stored value as JSON takes it: None for a missing one, a Python int or text otherwise."""
    if value is None or pd.isna(value):
        return None
    return int(value) if isinstance(value, (int, np.integer)) else value


def generate_patrols(store: Store, *, now: dt.datetime | None = None, cadence_days: int = 7,
                     actor: str = "patrols") -> dict[str, int]:
    """Open the routine patrol due now for every cell (weekly by default, as in the 1 km grid rule); idempotent.

    Weekly means the calendar week, Monday to Sunday in Beijing time (HN-2017 每周巡查): one task per cell and
    week, due within that week. Another ``cadence_days`` gives windows of that many days. Cells nobody has visited
    for longest get the earliest due times.
    """
    from gridwatch.periods import period_at  # noqa: PLC0415 - periods imports policy, which imports tasks

    now = naive_utc(now)
    if cadence_days == 7:
        week = period_at("week", now)
        window_key, (_, window_end) = f"week:{week.start.isoformat()}", week.utc_bounds()
    else:
        window = int((now - dt.datetime(2024, 1, 1)).days // cadence_days)
        window_key, window_end = f"{cadence_days}d:{window}", now + dt.timedelta(days=cadence_days)
    with store.transaction():
        cells = store.query_df(
            "SELECT c.cell, max(e.happened_at) AS last_visit FROM cells c"
            " LEFT JOIN tasks t ON t.cell = c.cell LEFT JOIN task_events e ON e.task_id = t.id"
            " AND e.to_state = 'reported' GROUP BY c.cell")
        key = cells.cell.astype(str) + f":{window_key}"
        existing = store.query_df("SELECT source_key FROM tasks WHERE kind = 'routine_patrol'")
        fresh = cells[~key.isin(existing.source_key)].copy()
        fresh["source_key"] = key[fresh.index]
        if fresh.empty:
            return {"created": 0, "cells": int(len(cells))}
        never = fresh.last_visit.isna()
        order = fresh.assign(never=~never).sort_values(["never", "last_visit"], na_position="first").reset_index()
        # due from a day after now (or the last hour of the window, if sooner) up to the window's end
        first_due = min(pd.Timestamp(now) + pd.Timedelta(hours=24), pd.Timestamp(window_end) - pd.Timedelta(hours=1))
        hours = max((pd.Timestamp(window_end) - first_due) / pd.Timedelta(hours=1), 0.0)
        due = first_due + pd.to_timedelta(np.linspace(0, hours, len(order)), unit="h")
        open_tasks(store, kind=Kind.ROUTINE_PATROL, cells=order.cell.to_numpy(dtype=np.int64),
                   source_kind="cadence", source_keys=order.source_key.to_numpy(dtype=object),
                   priority=np.full(len(order), Priority.ROUTINE), due=due.to_numpy(),
                   titles=task_title_columns("routine_patrol", n=len(order)), now=now, actor=actor,
                   detail={"by": "patrols", "cadence_days": cadence_days, "window": window_key})
    return {"created": int(len(order)), "cells": int(len(cells)), "never_visited": int(never.sum())}
