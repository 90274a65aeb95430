"""What leaders see of their units: cell status, the task board, who is behind, coverage."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from gridwatch import auth, org, regionstore, workflow
from gridwatch.maps import STATUSES
from gridwatch.overlap import cells_to_convex_xy
from gridwatch.services._common import policy
from gridwatch.storage import Store
from gridwatch.tasks import ACTIVE_STATES


def cell_status(store: Store, user: auth.User, *, now: dt.datetime | None = None,
                patrol_days: int = 7) -> pd.DataFrame:
    """Per cell in the user's scope, for the leaders' map: its status and last visit.

    ``overdue`` (a task past its due time), ``active`` (tasks open), ``not_observed`` (nobody has reported from
    the cell this calendar week, Monday to Sunday in Beijing time, the routine patrol cadence; another
    ``patrol_days`` than 7 gives that many days back) or ``clean``. Routine patrols alone do not make
    a cell active. Columns: ``cell`` (int64), ``cell_id`` (hex), ``status``, ``status_code`` (index in
    :data:`gridwatch.maps.STATUSES`), ``active``, ``overdue``, ``last_visit`` (UTC, NaT when never).
    """
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    cells = auth.user_cells(store, user, "cell.view")
    frame = pd.DataFrame({"cell": np.asarray(cells, dtype=np.int64)})
    active = tuple(s.value for s in ACTIVE_STATES) + ("reported",)
    tasks = store.query_df(
        f"SELECT cell, count(*) AS active, count(*) FILTER (WHERE due_at < ?) AS overdue FROM tasks"
        f" WHERE state IN ({', '.join('?' * len(active))}) AND kind <> 'routine_patrol' GROUP BY cell",
        [now, *active])
    visits = store.query_df(
        "SELECT t.cell, max(e.happened_at) AS last_visit FROM task_events e JOIN tasks t ON t.id = e.task_id"
        " WHERE e.to_state = 'reported' GROUP BY t.cell")
    frame = frame.merge(tasks, on="cell", how="left").merge(visits, on="cell", how="left")
    frame = frame.fillna({"active": 0, "overdue": 0})
    if patrol_days == 7:  # this calendar week in Beijing (每周巡查), not a rolling seven days
        from gridwatch.periods import period_at  # noqa: PLC0415

        since = pd.Timestamp(period_at("week", now).utc_bounds()[0])
    else:
        since = pd.Timestamp(now) - pd.Timedelta(days=patrol_days)
    seen = frame.last_visit.notna() & (frame.last_visit >= since)
    frame["status"] = np.select([frame.overdue > 0, frame.active > 0, ~seen], ["overdue", "active", "not_observed"],
                                "clean")
    frame["status_code"] = frame.status.map({s: i for i, s in enumerate(STATUSES)}).astype(np.int8)
    frame["cell_id"] = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return frame


def scope_bounds(store: Store, user: auth.User) -> tuple[float, float, float, float]:
    """South, west, north, east (WGS84) of the cells the user may view, for fitting a map."""
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    if len(cells) == 0:
        west, south, east, north = regionstore.bounds(store)
        return south, west, north, east
    xy = cells_to_convex_xy(cells.view(np.uint64))
    return (float(xy[..., 1].min()), float(xy[..., 0].min()), float(xy[..., 1].max()), float(xy[..., 0].max()))


def _scope_cells_frame(store: Store, user: auth.User) -> pd.DataFrame:
    """The cells a leader may view with their village and township (codes and names)."""
    cells = np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64)
    frame = store.query_df(
        "SELECT c.cell, c.township_code, c.village_code, t.name AS township, v.name AS village FROM cells c"
        " LEFT JOIN units t ON t.code = c.township_code LEFT JOIN units v ON v.code = c.village_code")
    return frame[frame.cell.isin(cells)].reset_index(drop=True)


def leader_board(store: Store, user: auth.User, *, state: str | None = None, kind: str | None = None,
                 village: str | None = None, overdue_only: bool = False, now: dt.datetime | None = None,
                 limit: int = 500) -> pd.DataFrame:
    """The tasks on a leader's cells, overdue first then by due time, with filters.

    Columns as :func:`gridwatch.workflow.list_tasks` plus ``overdue``, ``village`` and ``cell_id``.
    Routine patrols are included (filter with ``kind``). Refused without ``task.verify``.
    """
    auth.require(store, user, "task.verify")
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    scope = _scope_cells_frame(store, user)
    df = workflow.list_tasks(store, state=state or None, kind=kind or None, unit=village or None,
                             cells=scope.cell.to_numpy(), limit=100_000)
    df = df[df.state.isin([s.value for s in ACTIVE_STATES] + ["reported"])] if not state else df
    df = df.assign(overdue=(pd.to_datetime(df.due_at) < pd.Timestamp(now)) & df.state.ne("reported"))
    if overdue_only:
        df = df[df.overdue]
    df = df.merge(scope[["cell", "village"]], on="cell", how="left")
    df = df.sort_values(["overdue", "due_at", "priority"], ascending=[False, True, False]).head(limit)
    df["cell_id"] = cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    return df.reset_index(drop=True)


def people_behind(store: Store, user: auth.User, *, now: dt.datetime | None = None) -> pd.DataFrame:
    """Who is behind on a leader's cells: per assignee, open and overdue tasks, the oldest overdue due time and the
    last report; most overdue first. Refused without ``task.verify``."""
    board = leader_board(store, user, now=now)
    board = board[board.kind != "routine_patrol"] if len(board) else board
    if board.empty:
        return pd.DataFrame(columns=["assignee_key", "assignee", "open", "overdue", "oldest_overdue_due",
                                     "last_report"])
    late_due = board.due_at.where(board.overdue)
    grouped = board.assign(late_due=late_due).groupby(["assignee_key", "assignee"], dropna=False).agg(
        open=("id", "size"), overdue=("overdue", "sum"), oldest_overdue_due=("late_due", "min")).reset_index()
    reports = store.query_df(
        "SELECT p.person_key AS assignee_key, max(e.happened_at) AS last_report FROM task_events e"
        " JOIN tasks t ON t.id = e.task_id JOIN people p ON p.id = t.assignee_id WHERE e.to_state = 'reported'"
        " GROUP BY p.person_key")
    grouped = grouped.merge(reports, on="assignee_key", how="left")
    grouped["overdue"] = grouped.overdue.astype(int)
    return grouped.sort_values(["overdue", "open"], ascending=False).reset_index(drop=True)


def scope_coverage(store: Store, user: auth.User) -> dict[str, Any]:
    """The coverage gaps inside a leader's cells, against the roles the local set-up requires
    (:func:`gridwatch.org.coverage_report` of the leader's cells): the units wholly inside them missing a role, cells
    without an inspector (count, by village, the first ids), and people supervising their own work there. Refused
    without ``cell.view``."""
    auth.require(store, user, "cell.view")
    scope = _scope_cells_frame(store, user)
    report = org.coverage_report(store, regionstore.region_and_resolution(store)[0],
                                 required=dict(policy(store).required_roles), cells=scope.cell.to_numpy())
    return {key: report[key] for key in ("cells_checked", "required_roles", "default", "role_gaps", "cell_gaps",
                                         "conflicts", "units_without_grid_leader", "cells_without_inspector")}


def cells_not_visited(store: Store, user: auth.User, *, limit: int = 20) -> pd.DataFrame:
    """A leader's cells nobody has reported from for longest (never visited first): ``cell_id``, ``village``,
    ``last_visit`` (UTC, NaT when never)."""
    status = cell_status(store, user)
    scope = _scope_cells_frame(store, user)[["cell", "village"]]
    out = status.merge(scope, on="cell", how="left").sort_values("last_visit", na_position="first", kind="stable")
    return out[["cell_id", "village", "last_visit", "status"]].head(limit).reset_index(drop=True)


def leader_villages(store: Store, user: auth.User) -> dict[str, str]:
    """Code → name of the villages on a leader's cells, for the task board's filter."""
    scope = _scope_cells_frame(store, user).dropna(subset=["village_code"])
    return dict(scope.drop_duplicates("village_code").sort_values("village_code")[["village_code", "village"]]
                .itertuples(index=False, name=None))
