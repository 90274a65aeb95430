"""Dispatch rules: findings become tasks for the responsible person, once (idempotent).

Dispatch decides what to open; :func:`gridwatch.workflow.open_tasks` writes it. A task goes to the first
person on its cell's responsibility chain (:data:`gridwatch.org.CHAIN`): the cell's inspector, one held on
the cell, else the nearest owning unit's (village, township, county). A cell no inspector covers is a
coverage gap: its task goes to the next person up the chain (grid member, grid leader, unit head, nearest
unit first) and is flagged, or stays open with nobody when the chain is empty.

Tasks are opened in bulk, whatever their number: their ids are drawn from their sequence at once
(:meth:`Store.next_ids`), then one Arrow insert for the tasks and one for their first events.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gridwatch.fires import hash_columns, satellite_codes_of
from gridwatch.i18n import TaskTitles, task_title_columns
from gridwatch.org import assignees_for_cells
from gridwatch.storage import Store
from gridwatch.policy import DispatchPolicy
from gridwatch.tasks import Kind, naive_utc
from gridwatch.workflow import open_tasks
from layers.fire_points import SATELLITE_NAMES

__all__ = ["FirePlan", "dispatch_fire_incidents", "plan_fire_dispatch"]

#: the title key of fire checks (:data:`gridwatch.i18n.TASK_TITLES`)
FIRE_TITLE = "fire_check"


@dataclass(frozen=True)
class FirePlan:
    """What opening fire checks needs that the store does not decide, for every incident of a batch.

    Made by :func:`plan_fire_dispatch` without touching the store, so an ingest can make it on another thread
    while the store is busy.
    """

    now: dt.datetime
    priority: np.ndarray
    due: np.ndarray
    titles: TaskTitles


def plan_fire_dispatch(incidents: pd.DataFrame, *, policy: DispatchPolicy,
                       now: dt.datetime | None = None) -> FirePlan:
    """Task priorities, due times and titles for ``incidents`` (pure: no store)."""
    now = naive_utc(now)
    if incidents.empty:
        return FirePlan(now, np.zeros(0, dtype=np.int32), np.zeros(0, dtype="datetime64[us]"),
                        task_title_columns(FIRE_TITLE, n=0))
    key_period = policy.in_key_period(incidents.acq_time)  # aware, or naive UTC
    zone = incidents.in_no_burn_zone.to_numpy(dtype=bool)
    due = pd.Timestamp(now) + pd.to_timedelta(policy.fire_sla_hours(key_period), unit="h")
    return FirePlan(now, np.asarray(policy.fire_priority(key_period, zone), dtype=np.int32),
                    due.to_numpy().astype("datetime64[us]"), _fire_titles(incidents, policy.timezone))


def dispatch_fire_incidents(store: Store, incidents: pd.DataFrame, *, policy: DispatchPolicy,
                            now: dt.datetime | None = None, actor: str = "dispatch",
                            plan: FirePlan | Future[FirePlan] | None = None) -> dict[str, int]:
    """Store new incidents and open one ``fire_check`` task per incident.

    Call inside ``store.exclusive("fires.ingest")`` (:meth:`Store.exclusive`): incidents already stored (same
    cell and overpass) are found by an anti-join, get their counts updated and no second task. ``plan`` is
    :func:`plan_fire_dispatch` of the same incidents when the caller made it already, or a future of it being
    made on another thread with the same ``now`` (awaited only when the tasks are opened: the incidents are
    stored meanwhile). Returns ``{"incidents": new, "tasks_created": n, "coverage_gaps": g}``.
    """
    if incidents.empty:
        return {"incidents": 0, "tasks_created": 0, "coverage_gaps": 0}
    now = plan.now if isinstance(plan, FirePlan) else naive_utc(now)
    rows = _incident_rows(incidents, now)
    with store.transaction():
        known = _stored_incidents(store, rows)
        fresh = np.flatnonzero(~known)
        if known.any():
            store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_incidents AS SELECT * FROM fire_incidents LIMIT 0")
            store.execute("DELETE FROM incoming_incidents")
            store.insert_arrow("incoming_incidents", rows.filter(pa.array(known)))
            store.execute(
                "UPDATE fire_incidents SET points = fire_incidents.points + i.points,"
                " max_frp = greatest(fire_incidents.max_frp, i.max_frp),"
                " in_no_burn_zone = fire_incidents.in_no_burn_zone OR i.in_no_burn_zone"
                " FROM incoming_incidents i WHERE fire_incidents.key = i.key"
            )
            store.execute("DELETE FROM incoming_incidents")
        store.insert_arrow("fire_incidents", rows.filter(pa.array(~known)) if known.any() else rows)
        # who the new tasks go to is looked up while the plan may still be in the making
        who = assignees_for_cells(store, incidents.cell.to_numpy(dtype=np.int64)[fresh])
        if isinstance(plan, Future):
            plan = plan.result()
        plan = plan or plan_fire_dispatch(incidents, policy=policy, now=now)
        created, gaps = _open_fire_tasks(store, incidents, fresh, plan, actor=actor, who=who)
    return {"incidents": int(len(fresh)), "tasks_created": created, "coverage_gaps": gaps}


def _incident_rows(incidents: pd.DataFrame, now: dt.datetime) -> pa.Table:
    """Incidents as rows of the ``fire_incidents`` table (satellite codes, times naive UTC)."""
    n = len(incidents)
    return pa.table({
        "key": pa.array(incidents.key.to_numpy(dtype=np.int64)),
        "cell": pa.array(incidents.cell.to_numpy(dtype=np.int64)),
        "satellite": pa.array(satellite_codes_of(incidents.satellite).astype(np.int16)),
        "acq_time": pa.array(pd.DatetimeIndex(pd.to_datetime(incidents.acq_time, utc=True)).tz_convert(None)
                             .to_numpy().astype("datetime64[us]")),
        "points": pa.array(incidents.points.to_numpy(dtype=np.int32)),
        "max_frp": pa.array(incidents.max_frp.to_numpy(dtype=np.float64), from_pandas=True),
        "in_no_burn_zone": pa.array(incidents.in_no_burn_zone.to_numpy(dtype=bool)),
        "created_at": pa.repeat(pa.scalar(now, type=pa.timestamp("us")), n),
    })


def _stored_incidents(store: Store, rows: pa.Table) -> np.ndarray:
    """Whether each incident (:func:`_incident_rows`) is stored already (one bulk insert of the keys, one join).

    An incident's key holds the minute of its pass, so only stored incidents of the same minutes can match: when
    none lies in the batch's span of minutes (a fetch of new passes), nothing is looked up.
    """
    span = pc.min_max(rows.column("acq_time"))
    first = span["min"].as_py().replace(second=0, microsecond=0)
    last = span["max"].as_py().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    if not store.scalar("SELECT count(*) FROM fire_incidents WHERE acq_time >= ? AND acq_time < ?", [first, last]):
        return np.zeros(rows.num_rows, dtype=bool)
    keys = rows.column("key")
    store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_incident_keys (key BIGINT)")
    store.execute("DELETE FROM incoming_incident_keys")
    store.insert_arrow("incoming_incident_keys", pa.table({"key": keys}))
    found = store.query_df("SELECT s.key FROM fire_incidents s JOIN incoming_incident_keys i ON i.key = s.key")
    store.execute("DELETE FROM incoming_incident_keys")
    return pd.Index(keys.to_numpy()).isin(found.key.to_numpy(dtype=np.int64))


def _fire_titles(incidents: pd.DataFrame, timezone: str) -> TaskTitles:
    """Each incident's fire-check title: the local time of the pass, the satellite and the points.

    Formed once per distinct pass and count, then taken for every incident (``卫星火点核查 06-10 10:50 Terra ×2``,
    values ``{"time": "06-10 10:50", "satellite": "Terra", "points": "2"}``).
    """
    utc = pd.DatetimeIndex(pd.to_datetime(incidents.acq_time, utc=True))
    satellite = satellite_codes_of(incidents.satellite).astype(np.int64)
    names = np.asarray(SATELLITE_NAMES, dtype=object)
    if (satellite < 0).any():  # a name gridwatch does not know: number the names as they come
        satellite, names = pd.factorize(incidents.satellite.to_numpy(dtype=object))
    points = incidents.points.to_numpy(dtype=np.int64)
    codes, uniq = pd.factorize(hash_columns(utc.asi8, satellite, points))
    first = np.empty(len(uniq), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    local = utc[first].tz_convert(timezone)
    return task_title_columns(FIRE_TITLE, {"time": local.strftime("%m-%d %H:%M"),
                                           "satellite": pd.Index(names[satellite[first]]).astype(str),
                                           "points": pd.Index(points[first]).astype(str)}).take(pa.array(codes))


def _open_fire_tasks(store: Store, incidents: pd.DataFrame, fresh: np.ndarray, plan: FirePlan, *,
                     actor: str, who: pd.DataFrame | None = None) -> tuple[int, int]:
    """One ``fire_check`` per incident at positions ``fresh`` (those not stored before); tasks and gaps.

    ``who`` is :func:`gridwatch.org.assignees_for_cells` of their cells, when the caller looked it up already.
    """
    if not len(fresh):
        return 0, 0
    every = len(fresh) == len(incidents)
    take = pa.array(fresh)
    keys = incidents.key.to_numpy(dtype=np.int64)
    gaps = open_tasks(store, kind=Kind.FIRE_CHECK, cells=incidents.cell.to_numpy(dtype=np.int64)[fresh],
                      source_kind="incident",
                      source_keys=pc.cast(pa.array(keys if every else keys[fresh]), pa.string()),
                      priority=plan.priority if every else plan.priority[fresh],
                      due=plan.due if every else plan.due[fresh],
                      titles=plan.titles if every else plan.titles.take(take), now=plan.now, actor=actor,
                      detail={"by": "dispatch", "rule": "fire_check per incident"}, who=who)
    return int(len(fresh)), gaps
