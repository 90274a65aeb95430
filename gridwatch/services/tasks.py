"""Task work: lists, reports from the field, review by a second person, drafts, photos and patrols."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from typing import Any

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from gridwatch import auth, problems, workflow
from gridwatch.crs import wgs84_to_gcj02
from gridwatch.errors import InvalidTransition, NotFound, ValidationError
from gridwatch.photos import inspect_report_photos, photo_preview, store_photo
from gridwatch.services._common import Actor, actor_name, audit, policy, require, require_system, user_of
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, FINDINGS, TRANSITIONS, State


def tasks_table(store: Store, actor: Actor, *, assignee: str | None = None, state: str | None = None,
                unit: str | None = None, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Tasks on the cells the actor may see, as JSON-ready rows (cell as H3 hex id, times in UTC ISO)."""
    if state is not None and state not in {s.value for s in State}:
        raise ValidationError("Unknown task state {state}; use one of {known}.", state=state,
                              known=", ".join(s.value for s in State))
    if unit:
        require(store, actor, "cell.view", unit=unit)
    user = user_of(actor)
    cells = None if user is None else auth.user_cells(store, user, "cell.view")
    df = workflow.list_tasks(store, assignee=assignee, state=state, unit=unit, kind=kind, cells=cells, limit=limit)
    df["cell"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    for col in ("created_at", "due_at"):
        df[col] = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df.astype(object).where(df.notna(), None).to_dict("records")


def _require_task(store: Store, actor: Actor, task_id: int, action: str) -> int:
    """Refuse unless the actor may do ``action`` on the task: on its cell, or as its assignee (for ``task.work``)."""
    found = store.query("SELECT cell, assignee_id FROM tasks WHERE id = ?", [int(task_id)])
    if not found:
        raise NotFound("There is no task {id}.", id=task_id)
    cell, assignee = int(found[0]["cell"]), found[0]["assignee_id"]
    user = user_of(actor)
    if user is not None and action in ("task.work", "cell.view") and assignee == user.person_id:
        # a task a leader gave to this person (in the leader's scope) is theirs to see and work, on any cell
        require(store, actor, "task.work")
    else:
        require(store, actor, action, cell=cell)
    return cell


def task_show(store: Store, actor: Actor, task_id: int) -> dict[str, Any]:
    """One task with its full event history, for someone who may see its cell (or works on it)."""
    _require_task(store, actor, task_id, "cell.view")
    return {**workflow.task_detail(store, task_id), "problem_id": problems.problem_of_task(store, task_id)}


def generate_patrols(store: Store, actor: Actor) -> dict[str, int]:
    """Open the routine patrols due now (weekly per cell) over the whole region (a job or the command line)."""
    require_system(actor, "patrols.generate")
    with store.transaction():
        result = workflow.generate_patrols(store, actor=actor_name(actor))
        audit(store, actor=actor_name(actor), action="patrols.generate", detail=result)
    return result


def escalate(store: Store, actor: Actor) -> dict[str, int]:
    """Escalate overdue tasks up the chain (a job or the command line)."""
    require_system(actor, "tasks.escalate")
    with store.transaction():
        result = workflow.escalate_overdue(store, actor=actor_name(actor), policy=policy(store))
        audit(store, actor=actor_name(actor), action="tasks.escalate", detail=result)
    return result


def my_tasks(store: Store, user: auth.User, *, include_done: bool = False) -> pd.DataFrame:
    """The user's own tasks: overdue first, then by due time."""
    key = store.scalar("SELECT person_key FROM people WHERE id = ?", [user.person_id])
    df = workflow.list_tasks(store, assignee=key, limit=5000)
    if not include_done:
        df = df[df.state.isin([s.value for s in ACTIVE_STATES])]
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    df = df.assign(overdue=pd.to_datetime(df.due_at) < now)
    df = df.sort_values(["overdue", "due_at", "priority"], ascending=[False, True, False])
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df.reset_index(drop=True)


#: the largest draft kept for a report in progress (JSON text)
MAX_DRAFT_BYTES = 64 * 1024

#: the states a worker may move their task to (the rest belong to verifiers, leaders and the system)
WORKER_STEPS = ("in_progress", "reported")


def work_on(store: Store, user: auth.User, task_id: int, to_state: str, *, finding: str | None = None,
            note: str = "", fix: workflow.Fix | None = None, photos: list[tuple[str, bytes]] = (),
            seen_event_id: int | None = None, idempotency_key: str | None = None, start_first: bool = False) -> dict:
    """A worker's step on a task in their scope: start it, or report a finding with photos and position.

    ``seen_event_id`` and ``idempotency_key`` come from the form (see :func:`gridwatch.workflow.transition`): a
    task changed meanwhile raises :class:`gridwatch.errors.Conflict` and keeps the input; a repeat is recorded once.
    ``start_first`` (a report written offline, on a task the device saw unstarted): a report on a task not yet in
    progress starts it in the same transaction, when the task is as the device saw it.
    """
    if to_state not in WORKER_STEPS:
        raise InvalidTransition("A worker starts a task or reports on it; {state} is set by leaders and by the "
                                "system.", state=to_state)
    _require_task(store, user, task_id, "task.work")
    if to_state == "reported" and finding == "static_source_confirmed" and not photos:
        # the answer takes the place off dispatch for good: the chimney or kiln must be seen
        raise ValidationError("A report that confirms a static heat source needs at least one photo of it (the "
                              "chimney, kiln or flare).")
    checked = inspect_report_photos(photos)  # their number and total size, then each one's size and pixels

    # photos first, in their own transaction (content-addressed, stored once): input that loses a race to another
    # person's change is kept for the leader with its photos
    with store.transaction():
        refs = [store_photo(store, photo, task_id=task_id, uploaded_by=user.username) for _, photo in checked]

    def work() -> dict:
        with store.transaction():
            seen = seen_event_id
            state = store.scalar("SELECT state FROM tasks WHERE id = ?", [int(task_id)])
            if (start_first and to_state == "reported" and state != State.IN_PROGRESS.value
                    and State.IN_PROGRESS in TRANSITIONS.get(State(state), ())
                    and (seen is None or workflow.last_event_id(store, task_id) == int(seen))):
                # unchanged since the device saw it: start it, and the report follows in the same transaction (a
                # task changed meanwhile goes straight to the report's step, which keeps the report as a conflict)
                workflow.transition(store, task_id, State.IN_PROGRESS, actor=user.username,
                                    actor_person_id=user.person_id, fix=fix)
                seen = None
            detail = workflow.transition(store, task_id, to_state, actor=user.username,
                                         actor_person_id=user.person_id, finding=finding, note=note, fix=fix,
                                         photos=refs, seen_event_id=seen, idempotency_key=idempotency_key)
            if to_state == "reported":
                store.execute("DELETE FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
        return detail

    return store.retrying(work)


def review_queue(store: Store, user: auth.User) -> pd.DataFrame:
    """Reports waiting for this user's verification (in their scope, not reported by them)."""
    auth.require(store, user, "task.verify")
    cells = auth.user_cells(store, user, "task.verify")
    df = workflow.list_tasks(store, state="reported", cells=cells, limit=2000)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df


def verify(store: Store, user: auth.User, task_id: int, *, accept: bool, note: str = "",
           seen_event_id: int | None = None, idempotency_key: str | None = None) -> dict:
    """Verify (and close) or reject a report, as someone other than the reporter (version-checked like
    :func:`work_on`)."""
    _require_task(store, user, task_id, "task.verify")
    task = workflow.task_detail(store, task_id)

    def work() -> dict:
        with store.transaction():
            if accept:
                detail = workflow.transition(store, task_id, "verified", actor=user.username,
                                             actor_person_id=user.person_id, note=note, seen_event_id=seen_event_id,
                                             idempotency_key=idempotency_key)
                if not detail.get("replayed"):
                    workflow.transition(store, task_id, "closed", actor=user.username,
                                        actor_person_id=user.person_id)
                    _apply_verified_finding(store, task["kind"])
                    # a finding that implies a problem opens it now, when a second person has established it
                    problem = problems.open_from_task(store, task_id, rules=policy(store).problems,
                                                      actor=user.username, person_id=user.person_id)
                    if problem is not None:
                        detail = {**detail, "problem_id": problem}
            else:
                detail = workflow.transition(store, task_id, "rejected", actor=user.username,
                                             actor_person_id=user.person_id, note=note, seen_event_id=seen_event_id,
                                             idempotency_key=idempotency_key)
        return detail

    return store.retrying(work)


def _apply_verified_finding(store: Store, kind: str) -> None:
    """A verified boiler check or bare-land survey moves the boiler's or the patch's status at once; a verified
    heat-source check that confirmed a static source adds it to the static heat source layer."""
    if kind == "boiler_check":
        from gridwatch import heat

        heat.apply_boiler_findings(store, dispatch=policy(store).dispatch)
    elif kind == "bare_land_survey":
        from gridwatch import bare

        bare.apply_bare_findings(store)
    elif kind == "heat_source_check":  # a confirmed static source joins the layer: a new version, published
        from gridwatch import heatsources

        heatsources.apply_check_findings(store, policy=policy(store))


def task_conflicts(store: Store, user: auth.User) -> pd.DataFrame:
    """Input that arrived after someone else had changed the task, on a leader's cells, newest first."""
    auth.require(store, user, "task.verify")
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    frame = store.query_df(
        "SELECT k.id, k.task_id, k.happened_at, k.actor, k.wanted_state, k.detail, e.actor AS first_actor,"
        " e.happened_at AS first_at, e.to_state AS first_state, t.cell, t.title, t.title_key, t.title_args, t.kind"
        " FROM task_conflicts k"
        " JOIN tasks t ON t.id = k.task_id JOIN task_events e ON e.id = k.current_event_id ORDER BY k.id DESC")
    return frame[frame.cell.isin(cells)].reset_index(drop=True)


def save_draft(store: Store, user: auth.User, task_id: int, draft: dict) -> None:
    """Keep a report in progress on the server, so a lost connection or a locked screen loses nothing.

    Only on a task the user may work on; a draft is at most ``MAX_DRAFT_BYTES`` of JSON.
    """
    _require_task(store, user, task_id, "task.work")
    text = json.dumps(draft, ensure_ascii=False)
    if len(text.encode()) > MAX_DRAFT_BYTES:
        raise ValidationError("A draft may hold at most {limit} KB of text; this one has {size} KB.",
                              limit=MAX_DRAFT_BYTES // 1024, size=len(text.encode()) // 1024)
    with store.transaction():
        store.execute("DELETE FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
        store.execute("INSERT INTO report_drafts (task_id, author, saved_at, draft) VALUES (?, ?, ?, ?)",
                      [task_id, user.username, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                       text])


def load_draft(store: Store, user: auth.User, task_id: int) -> dict:
    """The user's saved draft of a report, or {}."""
    _require_task(store, user, task_id, "task.work")
    value = store.scalar("SELECT draft FROM report_drafts WHERE task_id = ? AND author = ?", [task_id, user.username])
    return json.loads(value) if value else {}


def navigation_links(lat: float, lng: float, *, label: str = "") -> dict[str, str]:
    """Links that open navigation to a spot: a ``geo:`` URI (Android, WGS84) and AMap (GCJ-02, as it expects)."""
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    name = urllib.parse.quote(label or "gridwatch")
    return {
        "geo": f"geo:{lat:.6f},{lng:.6f}?q={lat:.6f},{lng:.6f}({name})",
        "amap": f"https://uri.amap.com/marker?position={g_lng:.6f},{g_lat:.6f}&name={name}&coordinate=gaode",
    }


def cell_neighbourhood(cell_id: str, *, k: int = 2) -> list[str]:
    """A cell and its rings up to ``k`` (hex ids), for a small map of the spot."""
    return list(h3.grid_disk(cell_id, k))


def task_photo(store: Store, actor: Actor, sha256: str) -> bytes | None:
    """The upright preview of a report photo, for someone who may see its task."""
    task_id = store.scalar("SELECT task_id FROM photos WHERE sha256 = ?", [str(sha256)])
    if task_id is None:
        return None
    _require_task(store, actor, int(task_id), "cell.view")
    return photo_preview(store, sha256)


def findings(kind: str) -> list[str]:
    """What a report on a task of ``kind`` may find."""
    return list(FINDINGS[kind])
