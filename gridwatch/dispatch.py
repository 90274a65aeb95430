"""Dispatch rules: findings become tasks for the responsible person, once (idempotent).

A task goes to the cell's inspector: one held on the cell, else the nearest
owning unit's (village, township, county). A cell no inspector covers is a
coverage gap: its task goes to the next person up the chain (grid member,
grid leader, unit head, nearest unit first) and is flagged, or stays open
with nobody when the chain is empty.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from gridwatch.storage import Store
from gridwatch.tasks import DispatchPolicy, Kind, State

__all__ = ["assignees_for_cells", "dispatch_fire_incidents", "open_tasks"]

_ROLE_RANK = {"inspector": 0, "grid_member": 1, "grid_leader": 2, "unit_head": 3}


def assignees_for_cells(store: Store, cells: np.ndarray) -> pd.DataFrame:
    """The person each cell's task goes to: ``cell, person_id, role, unit, gap`` (one row per cell given).

    ``gap`` is True when no inspector covers the cell; ``person_id`` is <NA>
    when nobody on the chain holds a role.
    """
    cells = np.unique(np.asarray(cells, dtype=np.int64))
    base = pd.DataFrame({"cell": cells})
    if not len(cells):
        return base.assign(person_id=pd.array([], dtype="Int64"), role=[], unit=[], gap=[])
    with store.transaction():
        store.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_cells (cell BIGINT)")
        store.execute("DELETE FROM wanted_cells")
        store.insert_arrow("wanted_cells", pa.table({"cell": pa.array(cells)}))
        found = store.query_df(
            "SELECT c.cell, a.person_id, a.role, COALESCE(a.unit_code, '') AS unit,"
            " CASE WHEN a.cell = c.cell THEN 0 WHEN a.unit_code = c.village_code THEN 1"
            "      WHEN a.unit_code = c.township_code THEN 2 ELSE 3 END AS depth"
            " FROM wanted_cells w JOIN cells c ON c.cell = w.cell"
            " JOIN assignments a ON a.cell = c.cell"
            "   OR a.unit_code = c.village_code OR a.unit_code = c.township_code OR a.unit_code = c.county_code"
            " WHERE a.role IN ('inspector', 'grid_member', 'grid_leader', 'unit_head')"
        )
        store.execute("DELETE FROM wanted_cells")
    if found.empty:
        return base.assign(person_id=pd.array([pd.NA] * len(base), dtype="Int64"), role=None, unit=None, gap=True)
    found["is_inspector"] = found.role.ne("inspector")
    found["rank"] = found.role.map(_ROLE_RANK)
    best = (found.sort_values(["cell", "is_inspector", "depth", "rank", "person_id"])
            .drop_duplicates("cell")[["cell", "person_id", "role", "unit"]])
    out = base.merge(best, on="cell", how="left")
    out["person_id"] = out.person_id.astype("Int64")
    out["gap"] = out.role.ne("inspector").to_numpy()
    return out


def dispatch_fire_incidents(store: Store, incidents: pd.DataFrame, *, policy: DispatchPolicy,
                            now: dt.datetime | None = None, actor: str = "dispatch") -> dict[str, int]:
    """Store new incidents and open one ``fire_check`` task per incident (call inside a transaction).

    Incidents already stored (same cell and overpass) get their counts updated
    and no second task. Returns ``{"incidents": new, "tasks_created": n, "coverage_gaps": g}``.
    """
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    if incidents.empty:
        return {"incidents": 0, "tasks_created": 0, "coverage_gaps": 0}
    inc = incidents.copy()
    inc["acq_time"] = pd.to_datetime(inc.acq_time, utc=True).dt.tz_localize(None)
    with store.transaction():
        store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_incidents AS SELECT * FROM incidents LIMIT 0")
        store.execute("DELETE FROM incoming_incidents")
        store.insert_arrow("incoming_incidents", pa.Table.from_pandas(
            inc[["key", "cell", "satellite", "acq_time", "points", "max_frp", "in_no_burn_zone", "township_code",
                 "village_code"]].assign(key=inc.key.astype("int64"), created_at=now), preserve_index=False))
        known = store.query_df("SELECT i.key FROM incoming_incidents i JOIN incidents s ON s.key = i.key")
        store.execute(
            "UPDATE incidents SET points = incidents.points + i.points,"
            " max_frp = greatest(incidents.max_frp, i.max_frp),"
            " in_no_burn_zone = incidents.in_no_burn_zone OR i.in_no_burn_zone"
            " FROM incoming_incidents i WHERE incidents.key = i.key"
        )
        store.execute(
            "INSERT INTO incidents SELECT * FROM incoming_incidents i"
            " WHERE NOT EXISTS (SELECT 1 FROM incidents s WHERE s.key = i.key)"
        )
        new = inc[~inc.key.isin(known.key)]
        created, gaps = _open_fire_tasks(store, new, policy=policy, now=now, actor=actor)
        store.execute("DELETE FROM incoming_incidents")
    return {"incidents": int(len(new)), "tasks_created": created, "coverage_gaps": gaps}


def open_tasks(store: Store, *, kind: Kind, cells: np.ndarray, source_kind: str, source_keys: np.ndarray,
               priority: np.ndarray, due: np.ndarray, titles: np.ndarray, now: dt.datetime, actor: str,
               detail: dict) -> int:
    """Open tasks in bulk, each for its cell's responsible person, with its first event; returns the coverage gaps.

    Call inside a transaction. A task whose cell has nobody on the chain stays ``open`` with no assignee.
    """
    who = assignees_for_cells(store, cells).set_index("cell").loc[cells]
    n = len(cells)
    store.insert_arrow("tasks", pa.table({
        "kind": pa.array([kind.value] * n),
        "cell": pa.array(np.asarray(cells, dtype=np.int64)),
        "source_kind": pa.array([source_kind] * n),
        "source_key": pa.array(np.asarray(source_keys, dtype=object), type=pa.string()),
        "priority": pa.array(np.asarray(priority, dtype=np.int32)),
        "state": pa.array(np.where(who.person_id.isna(), State.OPEN.value, State.ASSIGNED.value)),
        "assignee_id": pa.array(who.person_id.astype("Int64").array, type=pa.int64()),
        "assigned_role": pa.array(who.role.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
        "assigned_unit": pa.array(who.unit.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
        "coverage_gap": pa.array(who.gap.to_numpy(dtype=bool)),
        "created_at": pa.array([now] * n, type=pa.timestamp("us")),
        "due_at": pa.array(np.asarray(due).astype("datetime64[us]")),
        "title": pa.array(np.asarray(titles, dtype=object), type=pa.string()),
    }))
    store.execute(
        "INSERT INTO task_events (task_id, happened_at, actor, from_state, to_state, detail)"
        " SELECT t.id, t.created_at, ?, NULL, t.state, ? FROM tasks t WHERE t.kind = ? AND t.created_at = ?"
        " AND NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id)",
        [actor, json.dumps(detail, ensure_ascii=False), kind.value, now])
    return int(who.gap.sum())


def _fire_titles(incidents: pd.DataFrame, timezone: str) -> np.ndarray:
    """"卫星火点核查 06-10 10:50 Terra ×2" per incident, formatted once per distinct pass and count."""
    keys = pd.MultiIndex.from_arrays([incidents.acq_time, incidents.satellite.astype(str), incidents.points])
    codes, uniq = pd.factorize(keys)
    local = pd.DatetimeIndex(uniq.get_level_values(0)).tz_localize("UTC").tz_convert(timezone)
    texts = ("卫星火点核查 " + local.strftime("%m-%d %H:%M") + " " + uniq.get_level_values(1)
             + " ×" + uniq.get_level_values(2).astype(str)).to_numpy(dtype=object)
    return texts[codes]


def _open_fire_tasks(store: Store, new: pd.DataFrame, *, policy: DispatchPolicy, now: dt.datetime,
                     actor: str) -> tuple[int, int]:
    if new.empty:
        return 0, 0
    key_period = policy.in_key_period(new.acq_time.dt.tz_localize("UTC"))
    zone = new.in_no_burn_zone.to_numpy(dtype=bool)
    due = pd.Timestamp(now) + pd.to_timedelta(policy.fire_sla_hours(key_period), unit="h")
    gaps = open_tasks(store, kind=Kind.FIRE_CHECK, cells=new.cell.to_numpy(dtype=np.int64), source_kind="incident",
                      source_keys=new.key.astype("int64").astype(str).to_numpy(),
                      priority=policy.fire_priority(key_period, zone), due=due.to_numpy(),
                      titles=_fire_titles(new, policy.timezone), now=now, actor=actor,
                      detail={"by": "dispatch", "rule": "fire_check per incident"})
    return int(len(new)), gaps
