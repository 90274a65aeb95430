"""The problem register (问题台账): problems found, handed over, rectified, checked by another person, closed.

HN-2024 §8(3) asks for 问题整改清单 … 整改情况核查 … 清单式闭环管理. A problem is raised by a task's verified
finding (a fire still burning, land still bare, a boiler operating, coal seized, a patrol's problem found) or by
an alarm whose category names a standing problem; it has a place (a cell, optionally a supervised object), the
task that found it (and the alarm), the party responsible for fixing it, a deadline from the policy (local
settings; none when no number is set) and a life in :data:`TRANSITIONS`:

发现 ``found`` → 交办 ``assigned`` → 整改中 ``rectifying`` → 申请销号 ``rectified`` (note and photos) →
复核 ``checked`` (on site, by another person than the rectifier) → 销号 ``closed``, or 退回 ``returned`` →
``rectifying`` again. A problem raised in error is 不成立 ``dismissed`` before any work on it.

This module is the only writer of problems and their history: every change goes through one door,
:func:`record_events`, which checks each step against the table (and the four eyes of a check), appends a
``problem_events`` row and updates the cached columns of ``problems`` in the caller's transaction.

Examples
--------
>>> check_transition(State.RECTIFIED, State.CHECKED)
>>> check_transition(State.RECTIFIED, State.CLOSED)
Traceback (most recent call last):
...
gridwatch.errors.InvalidTransition: A problem cannot go from rectified to closed; allowed next states: checked.
>>> FINDING_CATEGORIES[("boiler_check", "operating")]
'coal_boiler'
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import h3
import numpy as np
import pandas as pd

from gridwatch import org
from gridwatch.errors import InvalidTransition, NotFound, PermissionDenied, ValidationError
from gridwatch.i18n import task_title_columns
from gridwatch.policy import PROBLEM_CATEGORIES, ProblemRules
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, Priority, naive_utc
from gridwatch.workflow import GPS_TOLERANCE_M, Fix, distance_outside_cell_m, open_tasks

__all__ = ["CATEGORIES", "State", "TRANSITIONS", "UNRECTIFIED", "FINDING_CATEGORIES", "ALARM_CATEGORIES",
           "PARTY_KINDS", "check_transition", "record_events", "open_problems", "open_from_task", "step",
           "escalate_overdue", "schedule_rechecks", "problem_detail", "list_problems", "problem_of_task"]

#: what a problem is about (the same list as the alarms of the HTTP API)
CATEGORIES = PROBLEM_CATEGORIES
#: who must fix a problem: a person (in the register of people), an enterprise or a unit
PARTY_KINDS = ("person", "enterprise", "unit")


class State(StrEnum):
    """Where a problem stands; the last event's target."""

    FOUND = "found"              # 发现
    ASSIGNED = "assigned"        # 交办
    RECTIFYING = "rectifying"    # 整改中
    RECTIFIED = "rectified"      # 申请销号
    CHECKED = "checked"          # 复核
    CLOSED = "closed"            # 销号
    RETURNED = "returned"        # 退回
    DISMISSED = "dismissed"      # 不成立 (raised in error, before any work)


#: the steps a problem may take. A step to the same state changes who follows the problem without moving it
#: (a reassignment, an escalation of an overdue one)
TRANSITIONS: dict[State, tuple[State, ...]] = {
    State.FOUND: (State.FOUND, State.ASSIGNED, State.DISMISSED),
    State.ASSIGNED: (State.ASSIGNED, State.RECTIFYING, State.DISMISSED),
    State.RECTIFYING: (State.RECTIFYING, State.RECTIFIED),
    State.RECTIFIED: (State.CHECKED,),
    State.CHECKED: (State.CLOSED, State.RETURNED),
    State.RETURNED: (State.RETURNED, State.RECTIFYING),
    State.CLOSED: (),
    State.DISMISSED: (),
}
#: states in which rectification is still owed: these fall overdue after the deadline and escalate
UNRECTIFIED = (State.FOUND, State.ASSIGNED, State.RECTIFYING, State.RETURNED)

#: the findings of verified reports that imply a problem, and its category
FINDING_CATEGORIES: dict[tuple[str, str], str] = {
    (Kind.FIRE_CHECK.value, "confirmed_burning"): "straw_burning",
    (Kind.BARE_LAND_SURVEY.value, "still_bare"): "bare_land",
    (Kind.BOILER_CHECK.value, "operating"): "coal_boiler",
    (Kind.COAL_CHECK.value, "seized"): "loose_coal",
    (Kind.ROUTINE_PATROL.value, "problem_found"): "other",
    # an alarm's or a 随手拍's task: the problem takes the category it was reported under (see open_from_task)
    (Kind.MANUAL.value, "problem_found"): "other",
}
#: alarm categories that name a standing problem to rectify (a burning field or fireworks is an event: the check
#: task's finding decides whether a problem stays, as for a satellite fire point; "other" names nothing to fix)
ALARM_CATEGORIES = ("bare_land", "coal_boiler", "loose_coal", "construction_dust")
#: the task source of a re-check patrol (回头看) of a closed problem; its source key is ``<problem id>:<window>``
RECHECK_SOURCE = "problem_recheck"
#: the cached columns of ``problems`` a step may set besides the state
CACHED_COLUMNS = ("party_kind", "party_person_id", "party_name", "party_unit", "assignee_id", "assigned_role",
                  "assigned_unit", "escalate_at", "closed_at")


def check_transition(current: State | str | None, target: State | str) -> None:
    """Raise InvalidTransition unless the table allows ``current → target``; ``current`` None is the opening."""
    if current is None:
        if State(target) is not State.FOUND:
            raise InvalidTransition("A new problem starts as found, not as {target}.", target=State(target).value)
        return
    current, target = State(current), State(target)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            "A problem cannot go from {current} to {target}; allowed next states: {allowed}.",
            current=current.value, target=target.value,
            allowed=", ".join(s.value for s in TRANSITIONS[current]) or "none")


def _ids_sql(n: int) -> str:
    return ", ".join("?" * n)


def _lock(store: Store) -> str:
    """``FOR UPDATE`` on PostgreSQL, so the check and the write of a step see one state (see ``workflow``)."""
    return " FOR UPDATE" if store.backend == "postgres" else ""


def _last_rectifier(store: Store, problem_id: int) -> int | None:
    rows = store.query("SELECT person_id FROM problem_events WHERE problem_id = ? AND to_state = 'rectified'"
                       " ORDER BY id DESC LIMIT 1", [int(problem_id)])
    return None if not rows or rows[0]["person_id"] is None else int(rows[0]["person_id"])


def record_events(store: Store, problem_ids: Sequence[int], to_state: State | str, *, actor: str, now: dt.datetime,
                  detail: Mapping[str, Any] | Sequence[Mapping[str, Any]], person_id: int | None = None,
                  columns: Mapping[str, Sequence[Any]] | None = None, created: bool = False) -> list[int]:
    """The one door to problem state: check each step, append its event, update the cached columns.

    Parameters
    ----------
    store : Store
        The database; call inside the caller's transaction (a refused step writes nothing).
    problem_ids : sequence of int
        The problems, each once.
    to_state : State or str
        Where they go.
    actor : str
        Who (a user name, or ``system:<name>``).
    now : datetime.datetime
        When (naive UTC).
    detail : mapping or sequence of mappings
        The event's detail, one for all or one per problem.
    person_id : int, optional
        The person behind the step. A check (``checked``) needs one, and another than the last rectifier's.
    columns : mapping, optional
        Cached columns of :data:`CACHED_COLUMNS` to set, one value per problem.
    created : bool
        The problems were just inserted as ``found`` (by :func:`open_problems`): their first events.

    Returns
    -------
    list of int
        The new events' ids, in the order of ``problem_ids``.

    Raises
    ------
    InvalidTransition
        A step the table does not allow.
    PermissionDenied
        A check by the person who rectified, or by no person at all.
    NotFound
        A problem that does not exist.
    """
    ids = [int(i) for i in problem_ids]
    n = len(ids)
    if not n:
        return []
    if len(set(ids)) != n:
        raise ValueError("record_events takes each problem once")
    unknown = sorted(set(columns or ()) - set(CACHED_COLUMNS))
    if unknown:
        raise ValueError(f"record_events sets only the cached columns {CACHED_COLUMNS}, not {unknown}")
    target = State(to_state)
    details = [dict(detail)] * n if isinstance(detail, Mapping) else [dict(d) for d in detail]
    if len(details) != n:
        raise ValueError(f"record_events: {len(details)} details for {n} problems")
    with store.transaction():
        if created:
            before: list[str | None] = [None] * n
        else:
            found = {int(r["id"]): r["state"] for r in store.query(
                f"SELECT id, state FROM problems WHERE id IN ({_ids_sql(n)}) ORDER BY id{_lock(store)}", ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound("There is no problem {id}.", id=", ".join(str(i) for i in missing[:5]))
            before = [found[i] for i in ids]
        for current in dict.fromkeys(before):
            check_transition(current, target)
        if target is State.CHECKED:
            for pid in ids:
                rectifier = _last_rectifier(store, pid)
                if person_id is None:
                    raise PermissionDenied("Problem {id} is checked on site by a person signed in; the system "
                                           "cannot check it.", id=pid)
                if rectifier is not None and int(person_id) == rectifier:
                    raise PermissionDenied("The person who rectified problem {id} cannot also check it; another "
                                           "person must check it on site.", id=pid)
        event_ids = [int(i) for i in store.next_ids("problem_events_id_seq", n)]
        rows = [[eid, pid, now, actor, None if person_id is None else int(person_id), f, target.value,
                 json.dumps(d, ensure_ascii=False, default=str)]
                for eid, pid, f, d in zip(event_ids, ids, before, details, strict=True)]
        store.execute("INSERT INTO problem_events (id, problem_id, happened_at, actor, person_id, from_state,"
                      f" to_state, detail) VALUES {', '.join(['(?, ?, ?, ?, ?, ?, ?, ?)'] * n)}",
                      [v for row in rows for v in row])
        if not created:
            names = list(columns or ())
            for k, pid in enumerate(ids):
                values = [_plain(columns[c][k]) for c in names] if columns else []
                store.execute(f"UPDATE problems SET {', '.join(f'{c} = ?' for c in ['state', *names])} WHERE id = ?",
                              [target.value, *values, pid])
    return event_ids


def _plain(value: Any) -> Any:
    """A value as the database takes it: None for missing, Python ints and datetimes."""
    if value is None or (not isinstance(value, (str, dt.datetime)) and pd.isna(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def open_problems(store: Store, found: pd.DataFrame, *, rules: ProblemRules, now: dt.datetime, actor: str,
                  person_id: int | None = None) -> list[int]:
    """Open problems in bulk, each ``found`` with its first event; returns their ids in the order of ``found``.

    ``found`` has ``category, cell, finding_task_id, finding`` and optionally ``alarm_id, object_key,
    assignee_id, assigned_role, assigned_unit`` (the official who follows it: the finding task's assignee) and
    ``repeat_of`` (an explicit earlier problem: the one a re-check patrol looked at). The deadline is ``now`` plus
    the category's rectification days (none when unset). A problem of a cell and category already found within
    ``rules.repeat_days`` before (stored, or earlier in ``found``) is a repeat of the latest such one.
    A task that already raised a problem raises no other (the unique key on ``finding_task_id``).
    """
    if found.empty:
        return []
    now = naive_utc(now)
    rows = found.reset_index(drop=True).copy()
    bad = sorted(set(rows.category) - set(CATEGORIES))
    if bad:
        raise ValidationError("Unknown problem category {category}; use one of {known}.", category=bad[0],
                              known=", ".join(CATEGORIES))
    for column, default in (("alarm_id", None), ("object_key", ""), ("assignee_id", None), ("assigned_role", None),
                            ("assigned_unit", None), ("repeat_of", None)):
        if column not in rows:
            rows[column] = default
    if rules.repeat_days > 0:
        since = now - dt.timedelta(days=rules.repeat_days)
        cells = sorted({int(c) for c in rows.cell})
        earlier = store.query(f"SELECT cell, category, max(id) AS id FROM problems WHERE cell IN ({_ids_sql(len(cells))})"
                              " AND found_at >= ? GROUP BY cell, category", [*cells, since])
        latest = {(int(r["cell"]), r["category"]): int(r["id"]) for r in earlier}
    else:
        latest = None
    ids = [int(i) for i in store.next_ids("problems_id_seq", len(rows))]
    values, details = [], []
    for k, row in enumerate(rows.itertuples(index=False)):
        days = rules.deadline_days(row.category)
        deadline = None if days is None else now + dt.timedelta(days=days)
        repeat = _plain(row.repeat_of)
        if latest is not None:
            repeat = repeat if repeat is not None else latest.get((int(row.cell), row.category))
            latest[(int(row.cell), row.category)] = ids[k]
        values.append([ids[k], row.category, int(row.cell), str(row.object_key or "")[:200], int(row.finding_task_id),
                       _plain(row.alarm_id), row.finding, State.FOUND.value, _plain(row.assignee_id),
                       _plain(row.assigned_role), _plain(row.assigned_unit), now, deadline, deadline, repeat])
        detail = {"category": row.category, "finding": row.finding, "task_id": int(row.finding_task_id)}
        if _plain(row.alarm_id) is not None:
            detail["alarm_id"] = int(row.alarm_id)
        if days is not None:
            detail["rectify_days"] = days
        if repeat is not None:
            detail["repeat_of"] = int(repeat)
        details.append(detail)
    with store.transaction():
        store.execute("INSERT INTO problems (id, category, cell, object_key, finding_task_id, alarm_id, finding,"
                      " state, assignee_id, assigned_role, assigned_unit, found_at, deadline_at, escalate_at,"
                      f" repeat_of) VALUES {', '.join(['(' + _ids_sql(15) + ')'] * len(values))}",
                      [v for row in values for v in row])
        record_events(store, ids, State.FOUND, actor=actor, now=now, detail=details, person_id=person_id,
                      created=True)
    return ids


def problem_of_task(store: Store, task_id: int) -> int | None:
    """The problem a task's finding raised, if any (the other direction of ``problems.finding_task_id``)."""
    value = store.scalar("SELECT id FROM problems WHERE finding_task_id = ?", [int(task_id)])
    return None if value is None else int(value)


def open_from_task(store: Store, task_id: int, *, rules: ProblemRules, now: dt.datetime | None = None,
                   actor: str, person_id: int | None = None) -> int | None:
    """Open the problem a verified report's finding implies (:data:`FINDING_CATEGORIES`); its id, or None.

    Called in the transaction that verifies the report, so the problem exists exactly when the finding is
    established by a second person. A task's problem opens once. A re-check patrol (回头看) that finds a problem
    opens one of the closed problem's category, a repeat of it.
    """
    task = store.query("SELECT id, kind, cell, state, source_kind, source_key, assignee_id, assigned_role,"
                       " assigned_unit FROM tasks WHERE id = ?", [int(task_id)])
    if not task:
        raise NotFound("There is no task {id}.", id=task_id)
    task = task[0]
    if task["state"] not in ("verified", "closed"):
        return None
    existing = problem_of_task(store, task_id)
    if existing is not None:
        return existing
    report = store.query("SELECT detail FROM task_events WHERE task_id = ? AND to_state = 'reported'"
                         " ORDER BY id DESC LIMIT 1", [int(task_id)])
    finding = json.loads(report[0]["detail"]).get("finding") if report else None
    category = FINDING_CATEGORIES.get((task["kind"], finding))
    if category is None:
        return None
    repeat_of = None
    if task["source_kind"] == RECHECK_SOURCE:
        repeat_of = int(str(task["source_key"]).split(":")[0])
        category = store.scalar("SELECT category FROM problems WHERE id = ?", [repeat_of]) or category
    alarm = store.query("SELECT id, category FROM alarms WHERE task_id = ?", [int(task_id)])
    if task["source_kind"] == "sighting":  # its source key is <category>:<reporter>:<key>
        category = str(task["source_key"]).split(":")[0]
    elif alarm:
        category = alarm[0]["category"]
    alarm = int(alarm[0]["id"]) if alarm else None
    frame = pd.DataFrame([{"category": category, "cell": int(task["cell"]), "finding_task_id": int(task_id),
                           "finding": finding, "alarm_id": alarm, "assignee_id": task["assignee_id"],
                           "assigned_role": task["assigned_role"], "assigned_unit": task["assigned_unit"],
                           "repeat_of": repeat_of}])
    opened = open_problems(store, frame, rules=rules, now=naive_utc(now), actor=actor, person_id=person_id)[0]
    if alarm is not None:  # the alarm names its problem too (a hotline reads it back)
        store.execute("UPDATE alarms SET problem_id = ? WHERE id = ? AND problem_id IS NULL", [opened, alarm])
    return opened


def _problem(store: Store, problem_id: int) -> dict[str, Any]:
    rows = store.query(f"SELECT * FROM problems WHERE id = ?{_lock(store)}", [int(problem_id)])
    if not rows:
        raise NotFound("There is no problem {id}.", id=problem_id)
    return rows[0]


def _gps(cell: int, fix: Fix | None) -> dict[str, Any]:
    """Where a step was taken, compared with the problem's cell: flagged when outside it or unknown."""
    if fix is None:
        return {"flags": ["no_gps"]}
    outside = distance_outside_cell_m(cell, fix)
    detail: dict[str, Any] = {"gps": {"lat": fix.lat, "lng": fix.lng, "accuracy_m": fix.accuracy_m},
                              "outside_cell_m": round(outside, 1)}
    if outside > GPS_TOLERANCE_M + (fix.accuracy_m or 0):
        detail["flags"] = ["gps_outside_cell"]
    return detail


def step(store: Store, problem_id: int, to_state: State | str, *, actor: str, person_id: int | None = None,
         note: str = "", fix: Fix | None = None, photos: Sequence[Mapping[str, Any]] = (),
         party: Mapping[str, Any] | None = None, assignee: Mapping[str, Any] | None = None,
         now: dt.datetime | None = None) -> dict[str, Any]:
    """A person's step on a problem, with what the step needs; returns the event's detail.

    ``assigned`` (交办) names the responsible ``party`` (``kind`` person, enterprise or unit, ``name``, and
    ``person_id`` or ``unit``) and optionally the official who follows it (``assignee``: ``person_id``, ``role``,
    ``unit``); ``rectified`` (申请销号) needs a note and at least one photo; ``checked`` (复核) is taken on site
    (the position is compared with the cell and flagged, as a report's) by another person than the rectifier;
    ``returned`` and ``dismissed`` need a reason in the note.
    """
    target = State(to_state)
    now = naive_utc(now)
    note = (note or "").strip()[:4000]
    with store.transaction():
        problem = _problem(store, problem_id)
        check_transition(problem["state"], target)
        detail: dict[str, Any] = {"note": note} if note else {}
        columns: dict[str, list[Any]] = {}
        if target is State.ASSIGNED:
            kind = (party or {}).get("kind")
            name = str((party or {}).get("name") or "").strip()[:200]
            if kind not in PARTY_KINDS or not name:
                raise ValidationError("Handing over a problem names who must fix it: a person, an enterprise or a "
                                      "unit, with a name (got {kind!r}, {name!r}).", kind=kind, name=name)
            columns = {"party_kind": [kind], "party_name": [name],
                       "party_person_id": [(party or {}).get("person_id") if kind == "person" else None],
                       "party_unit": [str((party or {}).get("unit") or "") if kind == "unit" else ""]}
            detail["party"] = {"kind": kind, "name": name, "person_id": columns["party_person_id"][0],
                               "unit": columns["party_unit"][0]}
            if assignee:
                columns |= {"assignee_id": [assignee.get("person_id")], "assigned_role": [assignee.get("role")],
                            "assigned_unit": [assignee.get("unit")]}
                detail |= {"from_assignee": problem["assignee_id"], "to_assignee": assignee.get("person_id")}
        elif target in (State.FOUND, State.RECTIFYING) and target == State(problem["state"]):
            raise InvalidTransition("Problem {id} is {state} already.", id=problem["id"], state=target.value)
        elif target is State.RETURNED and problem["state"] == State.RETURNED:
            raise InvalidTransition("Problem {id} is {state} already.", id=problem["id"], state=target.value)
        elif target is State.RECTIFIED:
            if not note:
                raise ValidationError("Applying to close a problem (申请销号) needs a note saying what was done.")
            if not photos:
                raise ValidationError("Applying to close a problem (申请销号) needs at least one photo of the "
                                      "rectified place.")
            if person_id is None:
                raise PermissionDenied("Problem {id} is rectified by a person signed in; the system cannot "
                                       "apply to close it.", id=problem["id"])
            detail["photos"] = [dict(p) for p in photos]
            detail |= _gps(int(problem["cell"]), fix)
        elif target is State.CHECKED:
            detail |= _gps(int(problem["cell"]), fix)
            detail["rectifier_id"] = _last_rectifier(store, problem["id"])
        elif target in (State.RETURNED, State.DISMISSED) and not note:
            raise ValidationError("Returning or dismissing a problem needs a reason in the note.")
        elif target is State.CLOSED:
            columns = {"closed_at": [now]}
        record_events(store, [problem["id"]], target, actor=actor, now=now, detail=detail, person_id=person_id,
                      columns=columns or None)
    return detail


def escalate_overdue(store: Store, *, rules: ProblemRules, now: dt.datetime | None = None,
                     actor: str = "escalation") -> dict[str, int]:
    """Move problems whose rectification is overdue up the responsibility chain, as problem events.

    A problem not yet applied for closing (:data:`UNRECTIFIED`) past its escalation time goes from the official
    following it to the next person up its cell's chain (:func:`gridwatch.org.next_up`, as an overdue task does);
    it is escalated again after as many days as its category's rectification takes. Its deadline stays: it remains
    overdue for the reports. Problems without a deadline (no days set) never escalate.
    """
    now = naive_utc(now)
    states = [s.value for s in UNRECTIFIED]
    with store.transaction():
        overdue = store.query_df(
            "SELECT id, category, cell, state, assignee_id, assigned_role, assigned_unit, deadline_at FROM problems"
            f" WHERE escalate_at IS NOT NULL AND escalate_at <= ? AND state IN ({_ids_sql(len(states))}) ORDER BY id",
            [now, *states])
        if overdue.empty:
            return {"escalated": 0}
        overdue["assignee_id"] = overdue.assignee_id.astype("Int64")
        up = org.next_up(store, overdue)
        moved = up.person_id.notna().to_numpy()
        for k, row in enumerate(overdue.itertuples(index=False)):
            days = rules.deadline_days(row.category)
            detail: dict[str, Any] = {"overdue": True, "deadline_at": str(row.deadline_at),
                                      "from_assignee": _plain(row.assignee_id), "from_role": _plain(row.assigned_role)}
            nxt = up.iloc[k]
            if moved[k]:
                detail |= {"to_assignee": int(nxt.person_id), "to_role": nxt.role, "to_unit": nxt.unit}
                who = [int(nxt.person_id)], [nxt.role], [nxt.unit]
            else:
                detail["top_of_chain"] = True
                who = [_plain(row.assignee_id)], [_plain(row.assigned_role)], [_plain(row.assigned_unit)]
            again = None if days is None else now + dt.timedelta(days=days)
            record_events(store, [int(row.id)], row.state, actor=actor, now=now, detail=detail, columns={
                "assignee_id": who[0], "assigned_role": who[1], "assigned_unit": who[2], "escalate_at": [again]})
    return {"escalated": int(len(overdue))}


def schedule_rechecks(store: Store, *, rules: ProblemRules, due_hours: float, now: dt.datetime | None = None,
                      actor: str = "problem-rechecks") -> dict[str, int]:
    """Open the re-check patrols (回头看) of closed problems that are due; idempotent.

    Every ``rules.recheck_days`` after its closing, a closed problem's cell gets a routine patrol (source
    :data:`RECHECK_SOURCE`, key ``<problem>:<window>``), unless the previous one is still open; none while the
    setting is off. A patrol that finds a problem opens a repeat of the closed one (:func:`open_from_task`).
    """
    now = naive_utc(now)
    if rules.recheck_days <= 0:
        return {"created": 0}
    with store.transaction():
        closed = store.query_df("SELECT id, cell, closed_at FROM problems WHERE state = 'closed' AND closed_at <= ?"
                                " ORDER BY id", [now - dt.timedelta(days=rules.recheck_days)])
        if closed.empty:
            return {"created": 0}
        window = ((pd.Timestamp(now) - pd.to_datetime(closed.closed_at)) // pd.Timedelta(days=rules.recheck_days))
        keys = closed.id.astype(str) + ":" + window.astype(int).astype(str)
        active = [s.value for s in ACTIVE_STATES]
        existing = store.query_df(
            "SELECT source_key, state FROM tasks WHERE kind = ? AND source_kind = ?",
            [Kind.ROUTINE_PATROL.value, RECHECK_SOURCE])
        busy = {k.split(":")[0] for k, s in zip(existing.source_key, existing.state, strict=True) if s in active}
        fresh = closed[~keys.isin(existing.source_key) & ~closed.id.astype(str).isin(busy)]
        if fresh.empty:
            return {"created": 0}
        ids = fresh.id.to_numpy(dtype=np.int64)
        open_tasks(store, kind=Kind.ROUTINE_PATROL, cells=fresh.cell.to_numpy(dtype=np.int64),
                   source_kind=RECHECK_SOURCE, source_keys=keys[fresh.index].to_numpy(dtype=object),
                   priority=np.full(len(fresh), Priority.NORMAL),
                   due=np.full(len(fresh), np.datetime64(now + dt.timedelta(hours=due_hours), "us")),
                   titles=task_title_columns("problem_recheck", {"problem": ids}), now=now, actor=actor,
                   detail={"by": RECHECK_SOURCE, "recheck_days": rules.recheck_days})
    return {"created": int(len(fresh))}


_LIST_COLUMNS = ("p.id, p.category, p.cell, p.object_key, p.finding_task_id, p.alarm_id, p.finding, p.state,"
                 " p.party_kind, p.party_name, p.party_unit, p.party_person_id, p.assignee_id, p.assigned_role,"
                 " p.assigned_unit, p.found_at, p.deadline_at, p.closed_at, p.repeat_of, a.name AS assignee,"
                 " a.person_key AS assignee_key, c.township_code, c.village_code")


def list_problems(store: Store, *, scope: tuple[str, list] = ("1 = 1", []), state: str | None = None,
                  category: str | None = None, overdue: bool | None = None, repeat: bool | None = None,
                  unit: str | None = None, now: dt.datetime | None = None, limit: int = 100,
                  offset: int = 0) -> tuple[pd.DataFrame, int]:
    """Problems matching the filters within ``scope`` (a SQL condition on ``p.cell``), overdue first then by
    deadline; the page asked for and the number of all matches. ``overdue`` means past the deadline and not yet
    applied for closing."""
    now = naive_utc(now)
    where, params = [scope[0]], list(scope[1])
    if state:
        where.append("p.state = ?")
        params.append(State(state).value)
    if category:
        if category not in CATEGORIES:
            raise ValidationError("Unknown problem category {category}; use one of {known}.", category=category,
                                  known=", ".join(CATEGORIES))
        where.append("p.category = ?")
        params.append(category)
    late = (f"(p.deadline_at IS NOT NULL AND p.deadline_at < ? AND p.state IN"
            f" ({', '.join(repr(s.value) for s in UNRECTIFIED)}))")
    if overdue is not None:
        where.append(late if overdue else f"NOT {late}")
        params.append(now)
    if repeat is not None:
        where.append("p.repeat_of IS NOT NULL" if repeat else "p.repeat_of IS NULL")
    if unit:
        where.append("? IN (c.village_code, c.township_code, c.county_code, c.city_code)")
        params.append(unit)
    body = (" FROM problems p JOIN cells c ON c.cell = p.cell LEFT JOIN people a ON a.id = p.assignee_id"
            " WHERE " + " AND ".join(f"({w})" for w in where))
    total = int(store.scalar("SELECT count(*)" + body, params))
    frame = store.query_df(f"SELECT {_LIST_COLUMNS}, {late} AS overdue" + body
                           + " ORDER BY overdue DESC, p.deadline_at NULLS LAST, p.id LIMIT ? OFFSET ?",
                           [now, *params, int(limit), int(offset)])
    return frame, total


def problem_detail(store: Store, problem_id: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A problem with its place, people, history, the task that found it, its re-check patrols and repeats."""
    now = naive_utc(now)
    problem = _problem(store, problem_id)
    events = store.query("SELECT id, happened_at, actor, person_id, from_state, to_state, detail FROM problem_events"
                         " WHERE problem_id = ? ORDER BY id", [problem["id"]])
    for e in events:
        e["detail"] = json.loads(e["detail"])
    place = store.query("SELECT c.township_code, t.name AS township, c.village_code, v.name AS village, c.lat, c.lng"
                        " FROM cells c LEFT JOIN units t ON t.code = c.township_code"
                        " LEFT JOIN units v ON v.code = c.village_code WHERE c.cell = ?", [problem["cell"]])
    people = {int(r["id"]): r for r in store.query(
        "SELECT id, person_key, name FROM people WHERE id IN (?, ?)",
        [problem["assignee_id"] or -1, problem["party_person_id"] or -1])}
    rechecks = store.query("SELECT id, state, source_key, created_at FROM tasks WHERE source_kind = ?"
                           " AND (source_key = ? OR source_key LIKE ?) ORDER BY id",
                           [RECHECK_SOURCE, str(problem["id"]), f"{problem['id']}:%"])
    repeats = [int(r["id"]) for r in store.query("SELECT id FROM problems WHERE repeat_of = ? ORDER BY id",
                                                 [problem["id"]])]
    overdue = (problem["deadline_at"] is not None and problem["deadline_at"] < now
               and problem["state"] in {s.value for s in UNRECTIFIED})
    return {**problem, "cell": h3.int_to_str(int(problem["cell"])), "place": place[0] if place else {},
            "assignee": people.get(problem["assignee_id"] or -1),
            "party_person": people.get(problem["party_person_id"] or -1), "overdue": bool(overdue),
            "events": events, "rechecks": rechecks, "repeats": repeats}
