"""The app's speed: the inspector's task page with 10,000 tasks in the database, and 30 sessions working at once.

Both start from the demo database (伊川县) with tasks added through the real dispatch helper
(:func:`gridwatch.workflow.open_tasks`) up to 10,000 tasks in all, spread over the county's cells.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import statistics
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

import h3
import numpy as np

from benchmarks import Measurement, Result, Target, benchmark
from benchmarks.common import copy_database
from gridwatch import auth, services, workflow
from gridwatch.audit import open_sealed
from gridwatch.config import REPO_ROOT
from gridwatch.workflow import open_tasks
from gridwatch.tasks import Kind

TASKS = 10_000
SESSIONS = 30
RERUNS = 7
SEED = 410329


@cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gridwatch-bench-app-"))


def fill_10k(store) -> None:
    """Build the demo county in an empty ``store`` and add manual tasks on random cells up to :data:`TASKS`."""
    services.init_region(store, services.CLI, region="410329", resolution=8, demo_data=True)
    have = int(store.scalar("SELECT count(*) FROM tasks"))
    rng = np.random.default_rng(SEED)
    cells = store.query_df("SELECT cell FROM cells ORDER BY cell").cell.to_numpy(dtype=np.int64)
    n = TASKS - have
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    # due between 6 h ago (some overdue) and 7 days ahead
    due = np.datetime64(now) + (rng.uniform(-6, 7 * 24, n) * 3600).astype("timedelta64[s]")
    with store.transaction():
        open_tasks(store, kind=Kind.MANUAL, cells=rng.choice(cells, n), source_kind="bench",
                   source_keys=np.array([f"bench-{i}" for i in range(n)], dtype=object),
                   priority=rng.integers(1, 4, n), due=due,
                   titles=np.array([f"专项检查 {i}" for i in range(n)], dtype=object), now=now, actor="bench",
                   detail={"by": "bench"})
    assert int(store.scalar("SELECT count(*) FROM tasks")) == TASKS


@cache
def demo_db_10k() -> Path:
    """The demo database with manual tasks added on random cells until it holds :data:`TASKS` tasks (built once)."""
    path = _workdir() / "demo_10k.duckdb"
    with open_sealed(str(path)) as store:
        fill_10k(store)
    return path


def _copy(name: str) -> Path:
    path = _workdir() / name
    copy_database(demo_db_10k(), path)
    return path


def _stop_schedules() -> float:
    """Stop the app process's background schedules (started by the first run of app.py); seconds waited.

    The notifier escalates and announces once at its start, then every 5 minutes; its first run is not
    part of a page's rerun, so the reruns are timed after it.
    """
    from gridwatch import ui

    t0 = time.perf_counter()
    for scheduler in (ui.notifier(), ui.fire_fetcher()):
        if scheduler is not None:
            scheduler.stop(timeout=300)
    return time.perf_counter() - t0


def _apptest_reruns(script: Path, token: str | None, reruns: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each rerun of ``script`` in one AppTest session, after a first (cold) run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(script), default_timeout=120)
    if token:
        at.session_state["token"] = token
    at.run()
    assert not at.exception, at.exception
    if script.name == "app.py":
        _stop_schedules()
    samples, cpu = [], []
    for _ in range(reruns):
        c0, t0 = time.process_time(), time.perf_counter()
        at.run()
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert not at.exception, at.exception
    return samples, cpu


@benchmark
def app_inspector_tasks_10k() -> Result:
    """Server time per rerun of the inspector's 我的任务 page (AppTest) with 10,000 tasks in the database."""
    import streamlit as st

    db = _copy("page.duckdb")
    os.environ["GRIDWATCH_DB"] = str(db)
    os.chdir(REPO_ROOT)
    st.cache_resource.clear()
    with open_sealed(str(db)) as store:
        token = services.sign_in(store, "inspector", services.DEMO_PASSWORD).token
        user = services.current_user(store, token)
        mine = len(services.my_tasks(store, user))
        core = [0.0] * RERUNS
        for i in range(RERUNS + 1):
            t0 = time.perf_counter()
            services.my_tasks(store, user)
            if i:
                core[i - 1] = time.perf_counter() - t0
    trivial = _workdir() / "trivial_page.py"
    trivial.write_text('import streamlit as st\n\nst.title("baseline")\nst.button("ok", width="stretch")\n',
                       encoding="utf-8")
    # through app.py, as a browser's rerun runs it: language, sign-in check, navigation, then the page
    page, page_cpu = _apptest_reruns(REPO_ROOT / "app.py", token, RERUNS)
    screen, _ = _apptest_reruns(REPO_ROOT / "pages" / "my_tasks.py", token, RERUNS)
    base, base_cpu = _apptest_reruns(trivial, None, RERUNS)
    st.cache_resource.clear()
    return Result(
        Measurement("my_tasks_page_rerun", statistics.median(page), RERUNS, tuple(page),
                    cpu_seconds=statistics.median(page_cpu)),
        Measurement("trivial_page_rerun", statistics.median(base), RERUNS, tuple(base),
                    cpu_seconds=statistics.median(base_cpu)),
        Target(max_seconds=0.2, note="server time per rerun of app.py on 我的任务, AppTest"),
        details={"tasks_in_database": TASKS, "inspector_open_tasks": mine,
                 "screen_alone_rerun_seconds": statistics.median(screen), "screen_alone_samples": screen,
                 "services_my_tasks_seconds": statistics.median(core), "services_my_tasks_samples": core},
    )


def _photo(seed: int) -> bytes:
    """A small JPEG, different for every seed (photos are stored by hash)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _work(store, token: str, tasks: list[dict], times: list[float], seed: int) -> None:
    """One session: each interaction is a rerun's session check plus its list or its step on a task."""

    def step(fn) -> None:
        t0 = time.perf_counter()
        user = services.current_user(store, token)
        fn(user)
        times.append(time.perf_counter() - t0)

    step(lambda user: services.my_tasks(store, user))
    for i, task in enumerate(tasks):
        lat, lng = h3.cell_to_latlng(h3.int_to_str(int(task["cell"])))
        step(lambda user: services.work_on(store, user, task["id"], "in_progress"))
        step(lambda user: services.save_draft(store, user, task["id"], {"finding": "done", "note": "已处理"}))
        step(lambda user: services.work_on(store, user, task["id"], "reported", finding="done", note="已处理",
                                           fix=workflow.Fix(lat, lng, 8.0),
                                           photos=[("p.jpg", _photo(seed * 100 + i))]))
        step(lambda user: services.my_tasks(store, user))


def _sessions(db: Path, n: int, per: int) -> tuple[list[tuple[str, list[dict]]], int]:
    """Accounts for ``n`` inspectors (one per village) and ``per`` manual tasks of each to work."""
    with open_sealed(str(db)) as store:
        people = store.query(
            "SELECT DISTINCT p.id, p.person_key FROM people p JOIN assignments a ON a.person_id = p.id"
            " WHERE a.role = 'inspector' ORDER BY p.person_key LIMIT ?", [n])
        out = []
        for k, person in enumerate(people):
            name = f"bench{k:02d}"
            if not store.scalar("SELECT 1 FROM accounts WHERE username = ?", [name]):
                auth.add_account(store, name, services.DEMO_PASSWORD, person_key=person["person_key"])
            token = services.sign_in(store, name, services.DEMO_PASSWORD).token
            tasks = store.query("SELECT id, cell FROM tasks WHERE assignee_id = ? AND kind = 'manual'"
                                " AND state = 'assigned' ORDER BY id LIMIT ?", [person["id"], per])
            out.append((token, tasks))
        events = int(store.scalar("SELECT count(*) FROM task_events"))
    return out, events


def _check(db: Path, sessions: list[tuple[str, list[dict]]], events_before: int) -> dict:
    """Every step recorded exactly once: two events per task, all reported, one photo each."""
    ids = [t["id"] for _, tasks in sessions for t in tasks]
    with open_sealed(str(db)) as store:
        events = int(store.scalar("SELECT count(*) FROM task_events"))
        steps = store.query_df(
            "SELECT task_id, count(*) FILTER (WHERE to_state = 'in_progress') AS started,"
            " count(*) FILTER (WHERE to_state = 'reported') AS reported FROM task_events"
            " WHERE task_id IN (SELECT unnest(CAST(? AS BIGINT[]))) GROUP BY task_id", [ids])
        states = store.query_df("SELECT state, count(*) AS n FROM tasks WHERE id IN (SELECT unnest(CAST(? AS"
                                " BIGINT[]))) GROUP BY state", [ids])
        photos = int(store.scalar("SELECT count(*) FROM photos WHERE task_id IN (SELECT unnest(CAST(? AS"
                                  " BIGINT[])))", [ids]))
    ok = (events - events_before == 2 * len(ids) and len(steps) == len(ids) and bool((steps.started == 1).all())
          and bool((steps.reported == 1).all()) and states.to_dict("records") == [{"state": "reported",
                                                                                    "n": len(ids)}]
          and photos == len(ids))
    return {"tasks": len(ids), "new_events": events - events_before, "photos": photos, "nothing_lost": ok}


def run_sessions(db: str, sessions: list[tuple[str, list[dict]]], first: int,
                 barrier: Any = None) -> tuple[list[float], float]:
    """Work ``sessions`` at once on threads sharing one store of ``db`` (as one app process runs its browser
    sessions); every interaction's seconds, and the wall time. ``barrier`` (several processes) starts them
    together."""
    times: list[list[float]] = [[] for _ in sessions]
    errors: list[BaseException] = []
    with open_sealed(db) as store:
        start = threading.Barrier(len(sessions))

        def run(k: int) -> None:
            try:
                start.wait()
                _work(store, sessions[k][0], sessions[k][1], times[k], seed=first + k)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(sessions))]
        if barrier is not None:
            barrier.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return [x for ts in times for x in ts], wall


def _p95(samples: list[float]) -> float:
    return float(np.percentile(samples, 95))


@benchmark
def app_sessions_30() -> Result:
    """30 signed-in inspectors at once (a thread each, one store as in the app): p95 seconds per interaction."""
    per = 4
    # baseline: the same work by one session alone, on its own copy
    db = _copy("alone.duckdb")
    sessions, before = _sessions(db, 1, per)
    alone: list[float] = []
    with open_sealed(str(db)) as store:
        _work(store, sessions[0][0], sessions[0][1], alone, seed=999)
    # 30 at once
    db = _copy("sessions.duckdb")
    sessions, before = _sessions(db, SESSIONS, per)
    flat, wall = run_sessions(str(db), sessions, 0)
    check = _check(db, sessions, before)
    assert check["nothing_lost"], check
    return Result(
        Measurement("interaction_p95_30_sessions", _p95(flat), len(flat), tuple(flat)),
        Measurement("interaction_p95_one_session", _p95(alone), len(alone), tuple(alone)),
        Target(max_seconds=1.0, note="p95 per interaction; nothing lost"),
        details={"sessions": len(sessions), "interactions": len(flat), "median_s": statistics.median(flat),
                 "max_s": max(flat), "wall_s": wall, "alone_median_s": statistics.median(alone), **check},
    )
