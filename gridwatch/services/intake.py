"""Work entered in the app: an inspector's 随手拍 from patrol, and a task a leader makes by hand and gives out.

Both go through :func:`gridwatch.intake.open_intake`, the pipeline alarms take: the cell from the position (or the
supervised object), the cell's responsible person, a priority and a due time from the policy, a problem where the
category names a standing one. Dedupe: a form sends its submission key (a retry of the same tap answers the same
task), and a 随手拍 of a cell and category that already has an active task adds its photos to that task instead
of opening another.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import h3
import numpy as np
import pandas as pd

from gridwatch import assignment, auth, intake, org, regionstore
from gridwatch.errors import NotFound, OutsideRegion, PermissionDenied, ValidationError
from gridwatch.photos import inspect_report_photos
from gridwatch.policy import PROBLEM_CATEGORIES
from gridwatch.services._common import Actor, IntegrationActor, actor_name, audit, policy, require, user_of
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES, Kind, naive_utc
from gridwatch.workflow import Fix

__all__ = ["SIGHTING_CATEGORIES", "MANUAL_KINDS", "may_report_sightings", "report_sighting",
           "intake_objects", "create_task",
           "intake_photos"]

#: what a 随手拍 may be about (the problem register's categories)
SIGHTING_CATEGORIES = PROBLEM_CATEGORIES
#: the kinds of task a leader may make by hand (a fire check comes from a satellite point or an alarm)
MANUAL_KINDS = (Kind.MANUAL.value, Kind.ROUTINE_PATROL.value, Kind.BARE_LAND_SURVEY.value, Kind.BOILER_CHECK.value,
                Kind.COAL_CHECK.value)
#: the longest note and title accepted (characters)
NOTE_LIMIT = 2000
TITLE_LIMIT = 120
#: the longest form key (a submission id the form makes)
KEY_LIMIT = 64
_ACTIVE = tuple(s.value for s in ACTIVE_STATES)


def _person(actor: Actor, what: str) -> auth.User | None:
    """The signed-in person behind the actor (None for a system actor); integrations post alarms instead."""
    if isinstance(actor, IntegrationActor):
        raise PermissionDenied("An integration posts alarms through the HTTP API; {what} is made in the app.",
                               what=what)
    actor_name(actor)  # no actor at all is a programming error (TypeError)
    return user_of(actor)


def _key(key: str) -> str:
    key = str(key or "").strip()
    if not key or len(key) > KEY_LIMIT or not all(c.isalnum() or c in "-_" for c in key):
        raise ValidationError("The form's submission key {key!r} is not valid; reload the page and send again.",
                              key=key[:80])
    return key


def _note(note: str, limit: int = NOTE_LIMIT) -> str:
    note = str(note or "").strip()
    if len(note) > limit:
        raise ValidationError("The note holds {length} characters, more than the {limit} allowed.",
                              length=len(note), limit=limit)
    return note


def _cell_of_fix(store: Store, fix: Fix) -> int:
    grid = regionstore.grid(store)
    cells, pos = grid.locate(np.array([fix.lat]), np.array([fix.lng]))
    if pos[0] < 0:
        raise OutsideRegion("The point (lat {lat}, lng {lng}) lies outside the region {region} ({name}); "
                            "check the coordinates (latitude first) or the region.", lat=fix.lat, lng=fix.lng,
                            region=grid.region_code, name=regionstore.unit_name(store, grid.region_code))
    return int(np.asarray(cells, dtype=np.uint64).view(np.int64)[0])


def may_report_sightings(store: Store, actor: Actor) -> bool:
    """Whether the actor works tasks somewhere (``task.work``), and so may send a 随手拍 from there."""
    if isinstance(actor, IntegrationActor):
        return False
    user = user_of(actor)
    return user is None or any("task.work" in user.role_grants.get(role, ()) for role, _, _ in user.roles)


def report_sighting(store: Store, actor: Actor, *, category: str, fix: Fix, photos: Sequence[tuple[str, bytes]],
                    note: str = "", key: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """An inspector's 随手拍: something seen on patrol becomes a task on the spot's cell (and a problem where the
    category names a standing one), with the photos and the position.

    Parameters
    ----------
    store : Store
        The database.
    actor : Actor
        A person who works tasks (``task.work``) on the cell of the position, or a system actor.
    category : str
        One of :data:`SIGHTING_CATEGORIES`.
    fix : Fix
        The device's position (WGS84): the cell is the one it lies in.
    photos : sequence of (name, bytes)
        At least one photo, within the app's caps (count, size, pixels).
    note : str
        What was seen (optional).
    key : str
        The form's submission key: sending the same key again answers the same task.
    now : datetime, optional
        The moment (default: the clock).

    Returns
    -------
    dict
        ``task_id``, ``problem_id`` (or None), ``cell`` (H3 hex), ``assignee`` (person key and name, or None),
        ``created`` (False for a repeat of the key or a 随手拍 added to an active task of the cell and category),
        ``photos`` (their references).

    Raises
    ------
    ValidationError
        An unknown category, no photo, a photo the caps refuse, a note too long, a bad key.
    OutsideRegion
        A position outside the region.
    PermissionDenied
        A person without ``task.work`` on the cell; an integration.
    """
    user = _person(actor, "a 随手拍")
    if category not in SIGHTING_CATEGORIES:
        raise ValidationError("Unknown problem category {category}; use one of {known}.", category=category,
                              known=", ".join(SIGHTING_CATEGORIES))
    note, key = _note(note), _key(key)
    if not photos:
        raise ValidationError("A 随手拍 needs at least one photo of what was seen.")
    checked = inspect_report_photos(list(photos))
    now = naive_utc(now)
    cell = _cell_of_fix(store, fix)
    require(store, actor, "task.work", cell=cell)
    name = actor_name(actor)
    source_key = f"{category}:{name}:{key}"
    gps = {"lat": fix.lat, "lng": fix.lng, "accuracy_m": fix.accuracy_m}

    def work() -> dict[str, Any]:
        with store.transaction():
            same = store.query("SELECT id FROM tasks WHERE source_kind = 'sighting' AND source_key = ?", [source_key])
            if same:
                task_id, created = int(same[0]["id"]), False
            else:
                active = store.query(
                    f"SELECT id FROM tasks WHERE source_kind = 'sighting' AND cell = ? AND source_key LIKE ?"
                    f" AND state IN ({', '.join('?' * len(_ACTIVE))}) ORDER BY id LIMIT 1",
                    [cell, f"{category}:%", *_ACTIVE])
                created = not active
                if active:
                    task_id = int(active[0]["id"])
                else:
                    rules = policy(store)
                    title = f"随手拍：{intake.CATEGORY_TITLES[category]}" + (f" {note[:40]}" if note else "")
                    ids, problem_at = intake.open_intake(
                        store, cells=np.array([cell], dtype=np.int64), categories=[category], observed=[now],
                        titles=np.array([title], dtype=object), source_kind="sighting", source_keys=[source_key],
                        dispatch=rules.dispatch, problem_rules=rules.problems, now=now, opener=name,
                        person_id=None if user is None else user.person_id,
                        detail={"by": "sighting", "reporter": name, "category": category, "note": note, "gps": gps})
                    task_id = ids[0]
            refs = intake.link_photos(store, checked, task_id=task_id, uploaded_by=name, channel="sighting", now=now)
            audit(store, actor=name, action="intake.sighting", subject=str(task_id),
                  detail={"category": category, "cell": h3.int_to_str(cell), "created": created, "gps": gps,
                          "photos": [r["sha256"] for r in refs], "key": key})
            return _answer(store, task_id, created, refs)

    return store.retrying(work)


def _answer(store: Store, task_id: int, created: bool, refs: list[dict[str, Any]]) -> dict[str, Any]:
    row = store.query("SELECT t.cell, p.person_key, p.name, (SELECT id FROM problems WHERE finding_task_id = t.id)"
                      " AS problem_id FROM tasks t LEFT JOIN people p ON p.id = t.assignee_id WHERE t.id = ?",
                      [task_id])[0]
    person = None if row["person_key"] is None else {"person_key": row["person_key"], "name": row["name"]}
    return {"task_id": task_id, "problem_id": None if row["problem_id"] is None else int(row["problem_id"]),
            "cell": h3.int_to_str(int(row["cell"])), "assignee": person, "created": created, "photos": refs}


def intake_objects(store: Store, actor: Actor, *, unit: str | None = None) -> pd.DataFrame:
    """Supervised objects a leader may make a task for, in their scope: coal boilers of the published inventory and
    bare land not yet greened (``object_key`` ``boiler:<id>`` / ``bare:<id>``, ``label``, ``cell`` as H3 hex)."""
    if unit:
        require(store, actor, "task.assign", unit=unit)
    else:
        require(store, actor, "task.assign")
    user = user_of(actor)
    rows = store.query_df(
        "SELECT 'boiler:' || boiler_id AS object_key, name AS label, cell FROM boilers WHERE active AND in_region"
        " UNION ALL SELECT 'bare:' || CAST(id AS VARCHAR), CAST(round(bare_m2) AS BIGINT) || ' m² (' ||"
        " CAST(first_seen AS VARCHAR) || ')', cell FROM bare_patches WHERE status <> 'greened'")
    if user is not None:
        allowed = auth.user_cells(store, user, "task.assign")
        rows = rows[np.isin(rows.cell.to_numpy(dtype=np.int64), np.asarray(allowed, dtype=np.int64))]
    if unit:
        cells = store.query_df("SELECT cell FROM cells WHERE ? IN (village_code, township_code, county_code,"
                               " city_code)", [unit])
        rows = rows[rows.cell.isin(cells.cell)]
    rows = rows.sort_values(["object_key"]).reset_index(drop=True)
    rows["cell"] = [h3.int_to_str(int(c)) for c in rows.cell]
    return rows


def _object_cell(store: Store, object_key: str) -> int:
    kind, _, ident = str(object_key).partition(":")
    if kind == "boiler":
        value = store.scalar("SELECT cell FROM boilers WHERE boiler_id = ? AND active", [ident])
    elif kind == "bare" and ident.isdigit():
        value = store.scalar("SELECT cell FROM bare_patches WHERE id = ?", [int(ident)])
    else:
        value = None
    if value is None:
        raise NotFound("There is no supervised object {key}; choose a boiler or a bare-land patch of the list.",
                       key=object_key)
    return int(value)


def create_task(store: Store, actor: Actor, *, kind: str, title: str, cell: str | int | None = None,
                object_key: str | None = None, person_key: str | None = None, note: str = "", key: str,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """A task made by hand for a cell or a supervised object in the actor's scope, and given out.

    Parameters
    ----------
    store : Store
        The database.
    actor : Actor
        A person who assigns work (``task.assign``) on the cell, or a system actor.
    kind : str
        One of :data:`MANUAL_KINDS` (its findings open problems as that kind's do).
    title : str
        What is to be done (shown as the task's title).
    cell, object_key : str or int, optional
        Where: an H3 cell of the grid, or a supervised object (``boiler:<id>``, ``bare:<id>``) whose cell it takes.
    person_key : str, optional
        Whom to give it to (an inspector or grid member in the actor's scope); default the cell's responsible
        person, as for every other task.
    note : str
        Said to the person with it.
    key : str
        The form's submission key: sending the same key again answers the same task.
    now : datetime, optional
        The moment (default: the clock).

    Returns
    -------
    dict
        ``task_id``, ``cell``, ``assignee`` (person key and name, or None), ``created``.
    """
    user = _person(actor, "a task made by hand")
    if person_key and user is None:
        raise PermissionDenied("A task made by hand is given to a person by a leader signed in; the command line "
                               "leaves it to the cell's responsible person.")
    if kind not in MANUAL_KINDS:
        raise ValidationError("A task made by hand is one of {known}, not {kind}.", known=", ".join(MANUAL_KINDS),
                              kind=kind)
    title = _note(title, TITLE_LIMIT)
    if not title:
        raise ValidationError("Give the task a title: what is to be done.")
    note, key = _note(note), _key(key)
    if (cell is None) == (not object_key):
        raise ValidationError("Choose either a cell or a supervised object for the task.")
    if object_key:
        cell_int = _object_cell(store, object_key)
    else:
        cell_int = org.parse_cell(cell)
        if regionstore.grid(store).locate_cells(np.array([cell_int], dtype=np.int64).view(np.uint64))[0] < 0:
            raise NotFound("The cell {cell} is not a cell of the region's grid.", cell=str(cell))
    require(store, actor, "task.assign", cell=cell_int)
    now = naive_utc(now)
    name = actor_name(actor)
    source_key = f"{name}:{key}"

    def work() -> dict[str, Any]:
        with store.transaction():
            same = store.query("SELECT id FROM tasks WHERE source_kind = 'manual' AND source_key = ?", [source_key])
            created = not same
            if same:
                task_id = int(same[0]["id"])
            else:
                rules = policy(store)
                ids, _ = intake.open_intake(
                    store, cells=np.array([cell_int], dtype=np.int64), categories=[None], observed=[now],
                    titles=np.array([title], dtype=object), source_kind="manual", source_keys=[source_key],
                    dispatch=rules.dispatch, problem_rules=rules.problems, now=now, opener=name, kinds=[kind],
                    detail={"by": "manual", "creator": name, "object_key": object_key or "", "note": note})
                task_id = ids[0]
                if person_key:
                    assignment.reassign(store, user, [task_id], person_key, note=note)
                audit(store, actor=name, action="intake.task", subject=str(task_id),
                      detail={"kind": kind, "cell": h3.int_to_str(cell_int), "object_key": object_key or "",
                              "to": person_key or "", "key": key})
            return {k: v for k, v in _answer(store, task_id, created, []).items() if k not in ("photos",
                                                                                               "problem_id")}

    return store.retrying(work)


def intake_photos(store: Store, actor: Actor, task_id: int) -> list[dict[str, Any]]:
    """The photos that came with a task (an alarm's, a 随手拍's), in order, for someone who may see its cell."""
    cell = store.scalar("SELECT cell FROM tasks WHERE id = ?", [int(task_id)])
    if cell is None:
        raise NotFound("There is no task {id}.", id=task_id)
    user = user_of(actor)
    assignee = store.scalar("SELECT assignee_id FROM tasks WHERE id = ?", [int(task_id)])
    if user is not None and user.person_id is not None and assignee == user.person_id:
        require(store, actor, "task.work")
    else:
        require(store, actor, "cell.view", cell=int(cell))
    rows = store.query("SELECT i.sha256, i.channel, p.file_name AS name, p.media_type, p.bytes FROM intake_photos i"
                       " JOIN photos p ON p.sha256 = i.sha256 WHERE i.task_id = ? ORDER BY i.position",
                       [int(task_id)])
    return [json.loads(json.dumps(r, default=str)) for r in rows]
