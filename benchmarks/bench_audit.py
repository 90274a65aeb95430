"""The tamper-evident record: ``audit verify`` over a million task events, and what sealing costs each write.

The database is built once per run in a temporary folder: 201,200 tasks opened in bulk (one event each), 199,200
of them moved through four steps in batches, and 2,000 one-step transactions (one link each): 1,000,000 events, all
through the workflow's one door, so the chain has the links real use makes.
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import Result, Target, benchmark
from benchmarks.common import copy_database, measure
from gridwatch import audit, auditkey, workflow
from gridwatch.audit import open_sealed
from gridwatch.storage import open_store
from gridwatch.tasks import Kind

N_TASKS = 201_200  # opened (one event each) and four steps for all but the singles: 1,000,000 events
BATCH = 20_000
SINGLE_STEPS = 2_000
STEPS = ("in_progress", "reported", "verified", "closed")
NOW = dt.datetime(2026, 6, 10, 8, 0)
WRITES = 200


@cache
def million_events_db() -> Path:
    """A DuckDB file with 1,000,000 sealed task events (built once per run)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "events.duckdb"
    with open_sealed(str(path)) as store:
        for start in range(0, N_TASKS, BATCH):
            n = min(BATCH, N_TASKS - start)
            cells = np.arange(start + 1, start + n + 1, dtype=np.int64)
            who = pd.DataFrame({"cell": cells, "person_id": pd.array(np.full(n, 7), dtype="Int64"),
                                "role": ["inspector"] * n, "unit": ["u1"] * n, "gap": [False] * n})
            workflow.open_tasks(store, kind=Kind.MANUAL, cells=cells, source_kind="bench",
                                source_keys=np.array([f"k{start + i}" for i in range(n)], dtype=object),
                                priority=np.ones(n), due=np.full(n, np.datetime64("2026-06-12T08:00")),
                                titles=np.array(["巡查任务"] * n, dtype=object), now=NOW, actor="bench", detail={},
                                who=who)
        ids = np.arange(1, N_TASKS + 1, dtype=np.int64)
        singles = ids[:SINGLE_STEPS]
        for step in STEPS:
            for start in range(SINGLE_STEPS, N_TASKS, BATCH):
                with store.transaction():
                    part = ids[start:start + BATCH]
                    workflow.record_events(store, part, step, actor="bench", now=NOW,
                                           detail={"note": "已到现场核实，无明火"})
        for task in singles[:SINGLE_STEPS // 2]:
            with store.transaction():
                workflow.record_events(store, [int(task)], "in_progress", actor="巡查员", now=NOW,
                                       detail={"note": "处理中"})
        for task in singles[SINGLE_STEPS // 2:]:
            with store.transaction():
                workflow.record_events(store, [int(task)], "assigned", actor="网格长", now=NOW, detail={},
                                       columns={"assignee_id": [8], "due_at": [NOW + dt.timedelta(days=2)]})
    return path


def _copy(path: Path, name: str) -> Path:
    """A copy of the database with its audit key and head."""
    copy = path.with_name(name)
    copy_database(path, copy)
    return copy


@benchmark
def audit_verify_1m() -> Result:
    """``audit verify`` (every link's rows, MACs, the head file, the task rows against their events) over a million
    task events, against one SHA-256 over the same rows' canonical text in SQL (what a keyless hash of the data
    costs)."""
    path = million_events_db()
    with open_sealed(str(path)) as store:
        events = int(store.scalar("SELECT count(*) FROM task_events"))
        text = audit._canonical_sql("task_events", "r")

        def plain_hash() -> str:
            return store.scalar(f"SELECT sha256(string_agg({text}, chr(30) ORDER BY r.id)) FROM task_events r")

        base = measure("one SHA-256 over the events in SQL", plain_hash, repeats=3, warmup=True, items=events)
        ours = measure("audit verify", lambda: audit.verify(store), repeats=3, warmup=True, items=events)
        report = ours.value
        assert report["ok"], report["problems"][:3]
        details = {"events": events, "links": report["links"], "tasks": report["tasks"]}
    return Result(ours, base, Target(max_seconds=10.0, note="1,000,000 events, 2 cores shared"), details=details)


@benchmark
def audit_seal_per_write() -> Result:
    """One task step in its own transaction on the million-event database: sealed (the MACed link, the head file
    written and fsynced) against the same write on a store opened without the seal."""
    path = million_events_db()

    def writes(store, first: int) -> None:
        task = iter(range(first, first + WRITES))

        def one() -> None:
            with store.transaction():
                workflow.record_events(store, [next(task)], "in_progress", actor="bench", now=NOW, detail={})
        return one

    plain_db, sealed_db = _copy(path, "plain.duckdb"), _copy(path, "sealed.duckdb")
    with open_store(str(plain_db)) as plain:
        base = measure("unsealed write", writes(plain, SINGLE_STEPS // 2 + 1), repeats=WRITES, warmup=False)
    with open_sealed(str(sealed_db)) as sealed:
        ours = measure("sealed write", writes(sealed, SINGLE_STEPS // 2 + 1), repeats=WRITES, warmup=False)
        assert auditkey.read_head(auditkey.head_path(sealed))["seq"] == audit.head(sealed)["seq"]
    for db in (plain_db, sealed_db):
        for suffix in ("", ".wal", ".auditkey", ".audithead"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    return Result(ours, base, Target(max_seconds=0.05, note="per write transaction, median"),
                  details={"writes": WRITES, "sealed_ms": ours.seconds * 1000, "unsealed_ms": base.seconds * 1000})
