"""The one pipeline by which work enters besides the satellite feed: alarms, 随手拍 from patrol, tasks made by hand.

Every channel ends in :func:`open_intake`: the tasks open on their cells for each cell's responsible person
(:func:`gridwatch.org.assignees_for_cells`, looked up once for the whole grid and cached, :func:`assignees`),
through the one door that opens tasks (:func:`gridwatch.workflow.open_tasks`), with a priority and a due time from
the policy (:func:`plan`: something burning is checked as fast as a satellite fire point, key periods first;
anything else within the hours of its task kind); and where the category names a standing problem
(:data:`gridwatch.problems.ALARM_CATEGORIES`) a problem opens with its task, followed by the task's assignee.
Dedupe is the caller's key: an alarm's ``(integration, external_id)``, a 随手拍's submission key, a hand-made
task's form key, each kept as the task's ``source_key``.

Examples
--------
>>> from gridwatch.config import Settings
>>> from gridwatch.policy import Policy
>>> harvest = Policy.from_settings(Settings(key_periods="summer_harvest=05-20..06-30")).dispatch
>>> prio, due = plan(harvest, ["straw_burning", "bare_land"],
...                  [dt.datetime(2026, 6, 10, 2, 0)] * 2, now=dt.datetime(2026, 6, 10, 2, 30))
>>> prio.tolist(), [str(d) for d in due]
([3, 2], ['2026-06-10T04:30:00.000000', '2026-06-13T02:30:00.000000'])
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridwatch import problems, regionstore
from gridwatch.org import assignees_for_cells
from gridwatch.photos import Photo, store_photo
from gridwatch.policy import DispatchPolicy, ProblemRules
from gridwatch.storage import Store
from gridwatch.tasks import Kind, Priority
from gridwatch.workflow import open_tasks

__all__ = ["BURNING", "CATEGORY_TITLES", "plan", "assignees", "open_intake", "link_photos"]

#: categories that burn: checked as fast as a satellite fire point (the fire checks' hours, key periods first)
BURNING = ("straw_burning", "fireworks")
#: the categories' words in the Chinese task titles (shown to field staff as the titles of other tasks are)
CATEGORY_TITLES = {"straw_burning": "秸秆焚烧", "bare_land": "裸露土地", "coal_boiler": "燃煤锅炉",
                   "loose_coal": "散煤", "construction_dust": "施工扬尘", "fireworks": "烟花爆竹", "other": "其他"}


def plan(rules: DispatchPolicy, categories: Sequence[str | None], observed: Sequence[dt.datetime], *,
         now: dt.datetime, kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Priorities and due times (naive UTC) of intake tasks, from the policy.

    Parameters
    ----------
    rules : DispatchPolicy
        Key periods and service-level hours (``sla_by_kind``; the ``manual`` hours when ``kinds`` is not given).
    categories : sequence of str or None
        What each is about; :data:`BURNING` categories take the fire checks' hours (2 h in key periods).
    observed : sequence of datetime
        When each was seen (naive UTC): its local date decides the key period.
    now : datetime
        The time the tasks open (naive UTC); due times run from it.
    kinds : sequence of str, optional
        Each task's kind, for the hours of its kind (tasks made by hand of any kind).
    """
    observed_utc = pd.Series(pd.to_datetime(list(observed))).dt.tz_localize("UTC")
    key_period = rules.in_key_period(observed_utc)
    burning = np.array([c in BURNING for c in categories], dtype=bool)
    default = float(rules.sla_by_kind.get(Kind.MANUAL, 72.0))
    if kinds is None:
        other = np.full(len(burning), default)
    else:
        other = np.array([float(rules.sla_by_kind.get(Kind(k), default)) for k in kinds], dtype=float)
    hours = np.where(burning, rules.fire_sla_hours(key_period), other)
    priority = np.where(burning & key_period, Priority.KEY_PERIOD, Priority.NORMAL).astype(np.int32)
    due = (pd.Timestamp(now) + pd.to_timedelta(hours, unit="h")).to_numpy().astype("datetime64[us]")
    return priority, due


#: who each cell's tasks go to (:func:`gridwatch.org.assignees_for_cells` of the whole grid) and the answer's
#: assignee per cell, per store, until the assignments or the grid change
_who_cache: dict[int, tuple[tuple, pd.DataFrame, dict[int, dict[str, Any] | None]]] = {}
_who_lock = threading.Lock()


def assignees(store: Store) -> tuple[pd.DataFrame, dict[int, dict[str, Any] | None]]:
    """The person every cell's tasks go to (dispatch's rule), looked up for the whole grid once, and as answered.

    Work arrives a few items at a time, and looking up the chain for a handful of cells costs as much as for all
    of them; the answer changes only when an assignment is added or removed (new ids, or fewer rows) or the grid
    is built again, which the key below notices.
    """
    row = store.query("SELECT count(*) AS n, max(id) AS last FROM assignments")[0]
    stamp = (int(row["n"]), row["last"], store.get_meta("grid_built_at", ""))
    with _who_lock:
        cached = _who_cache.get(id(store))
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
    grid = regionstore.grid(store)
    who = assignees_for_cells(store, grid.cells.view(np.int64))
    people = {int(r["id"]): r for r in store.query("SELECT id, person_key, name FROM people")}
    answered: dict[int, dict[str, Any] | None] = {}
    for cell, person, role in zip(who.cell.tolist(), who.person_id.tolist(), who.role.tolist(), strict=True):
        found = people.get(int(person)) if person is not None and not pd.isna(person) else None
        answered[int(cell)] = None if found is None else {"person_key": found["person_key"], "name": found["name"],
                                                          "role": role}
    with _who_lock:
        _who_cache[id(store)] = (stamp, who, answered)
    return who, answered


def open_intake(store: Store, *, cells: np.ndarray, categories: Sequence[str | None], observed: Sequence[dt.datetime],
                titles: np.ndarray, source_kind: str, source_keys: Sequence[str], dispatch: DispatchPolicy,
                problem_rules: ProblemRules, now: dt.datetime, opener: str, kinds: Sequence[str] | None = None,
                alarm_ids: Sequence[int | None] | None = None, person_id: int | None = None,
                detail: dict | None = None) -> tuple[list[int], dict[int, int]]:
    """Open one task per item, and a problem for each whose category names a standing problem; in one transaction.

    Parameters
    ----------
    cells : numpy.ndarray
        Each item's cell (H3 as int64), inside the grid.
    categories : sequence of str or None
        Each item's problem category (None: a task made by hand that names none; it opens no problem).
    observed : sequence of datetime
        When each was seen (naive UTC).
    titles : numpy.ndarray
        The tasks' titles (plain texts).
    source_kind, source_keys : str, sequence of str
        The channel (``alarm``, ``sighting``, ``manual``) and each item's key in it.
    dispatch, problem_rules : DispatchPolicy, ProblemRules
        The rules in force (hours, key periods; rectification days, repeats).
    now : datetime
        The moment (naive UTC).
    opener : str
        Who opens them (the first events' actor).
    kinds : sequence of str, optional
        Each task's kind (default ``manual``, the kind of alarms and 随手拍).
    alarm_ids : sequence, optional
        The alarm behind each item, kept with its problem.
    person_id : int, optional
        The person who reported (the problems' first events name them).
    detail : dict, optional
        The tasks' first events' detail (default ``{"by": source_kind}``).

    Returns
    -------
    tuple
        The tasks' ids in the order of the items, and the problem opened per item position.
    """
    cells = np.asarray(cells, dtype=np.int64)
    n = len(cells)
    if n == 0:
        return [], {}
    priority, due = plan(dispatch, categories, observed, now=now, kinds=kinds)
    who, _ = assignees(store)
    task_kinds = [Kind(k) for k in kinds] if kinds is not None else [Kind.MANUAL] * n
    task_ids: list[int | None] = [None] * n
    keys = np.array([str(k) for k in source_keys], dtype=object)
    with store.transaction():
        for kind in dict.fromkeys(task_kinds):
            at = [i for i, k in enumerate(task_kinds) if k is kind]
            floor = int(store.scalar("SELECT nextval('tasks_id_seq')"))  # the tasks opened next have larger ids
            open_tasks(store, kind=kind, cells=cells[at], source_kind=source_kind, source_keys=keys[at],
                       priority=priority[at], due=due[at], titles=np.asarray(titles, dtype=object)[at], now=now,
                       actor=opener, detail=detail or {"by": source_kind}, who=who)
            opened = store.query("SELECT id, source_key FROM tasks WHERE id > ? AND source_kind = ?",
                                 [floor, source_kind])
            by_key = {r["source_key"]: int(r["id"]) for r in opened}
            for i in at:
                task_ids[i] = by_key[keys[i]]
        chosen = [i for i, c in enumerate(categories) if c in problems.ALARM_CATEGORIES]
        problem_of: dict[int, int] = {}
        if chosen:
            first = who.drop_duplicates("cell").set_index("cell").reindex([int(cells[i]) for i in chosen])
            found = pd.DataFrame({"category": [categories[i] for i in chosen], "cell": [int(cells[i]) for i in chosen],
                                  "finding_task_id": [task_ids[i] for i in chosen],
                                  "finding": "alarm" if source_kind == "alarm" else source_kind,
                                  "alarm_id": [None if alarm_ids is None else alarm_ids[i] for i in chosen],
                                  "assignee_id": first.person_id.astype("Int64").to_numpy(dtype=object),
                                  "assigned_role": first.role.to_numpy(dtype=object),
                                  "assigned_unit": first.unit.to_numpy(dtype=object)})
            ids = problems.open_problems(store, found, rules=problem_rules, now=now, actor=opener,
                                         person_id=person_id)
            problem_of = dict(zip(chosen, ids, strict=True))
    return [int(t) for t in task_ids if t is not None], problem_of


def link_photos(store: Store, checked: Sequence[tuple[str, Photo]], *, task_id: int, uploaded_by: str, channel: str,
                now: dt.datetime) -> list[dict[str, Any]]:
    """Keep checked photos for a task (:func:`gridwatch.photos.store_photo`: the same photo twice is stored once)
    and link them as the photos it came with (``intake_photos``, after any it has); their references."""
    start = int(store.scalar("SELECT count(*) FROM intake_photos WHERE task_id = ?", [task_id]) or 0)
    refs = []
    with store.transaction():
        for k, (_, photo) in enumerate(checked):
            ref = store_photo(store, photo, task_id=task_id, uploaded_by=uploaded_by, now=now)
            store.execute("INSERT INTO intake_photos (task_id, sha256, position, channel, added_at)"
                          " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, sha256) DO NOTHING",
                          [task_id, ref["sha256"], start + k, channel, now])
            refs.append(ref)
    return refs
