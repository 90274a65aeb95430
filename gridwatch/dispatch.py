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

__all__ = ["assignees_for_cells", "dispatch_fire_incidents"]

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
    who = assignees_for_cells(store, new.cell.to_numpy()).set_index("cell").loc[new.cell.to_numpy()]
    person = who.person_id.to_numpy()
    state = np.where(pd.isna(person), State.OPEN.value, State.ASSIGNED.value)
    due = pd.Timestamp(now) + pd.to_timedelta(policy.fire_sla_hours(key_period), unit="h")
    title = _fire_titles(new, policy.timezone)
    tasks = pa.table({
        "kind": pa.array([Kind.FIRE_CHECK.value] * len(new)),
        "cell": pa.array(new.cell.to_numpy(dtype=np.int64)),
        "source_kind": pa.array(["incident"] * len(new)),
        "source_key": pa.array(new.key.astype("int64").astype(str).to_numpy()),
        "priority": pa.array(policy.fire_priority(key_period, zone)),
        "state": pa.array(state),
        "assignee_id": pa.array(who.person_id.astype("Int64").array, type=pa.int64()),
        "assigned_role": pa.array(who.role.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
        "assigned_unit": pa.array(who.unit.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
        "coverage_gap": pa.array(who.gap.to_numpy(dtype=bool)),
        "created_at": pa.array([now] * len(new), type=pa.timestamp("us")),
        "due_at": pa.array(due.to_numpy().astype("datetime64[us]")),
        "title": pa.array(title),
    })
    store.insert_arrow("tasks", tasks)
    detail = json.dumps({"by": "dispatch", "rule": "fire_check per incident"})
    store.execute(
        "INSERT INTO task_events (task_id, happened_at, actor, from_state, to_state, detail)"
        " SELECT t.id, t.created_at, ?, NULL, t.state, ? FROM tasks t"
        " JOIN incoming_incidents i ON t.source_key = CAST(i.key AS TEXT)"
        " WHERE t.kind = 'fire_check' AND t.source_kind = 'incident' AND t.created_at = ?"
        " AND NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id)",
        [actor, detail, now],
    )
    return int(len(new)), int(who.gap.sum())
