"""Backups through the store's connection and checked restores that compare everything, on either backend
(PostgreSQL: pg_dump and pg_restore)."""

from __future__ import annotations

import json
import os
import secrets
import shutil

import pandas as pd
import pytest

from gridwatch import audit, backup, services
from gridwatch.cli import main
from gridwatch.errors import StorageError, ValidationError
from gridwatch.audit import open_sealed
from gridwatch.storage import is_postgres_url

from conftest import BACKEND, copy_db, drop_db


@pytest.fixture
def new_target(tmp_path, request):
    """``new_target(name, postgres)``: where a restore may go — a DuckDB file that does not exist, or the URL of a
    PostgreSQL database that does not exist yet (dropped after the test)."""
    made = []

    def make(name: str, postgres: bool | None = None) -> str:
        if not (BACKEND == "postgres" if postgres is None else postgres):
            return str(tmp_path / f"{name}.duckdb")
        import pgserver

        url = pgserver.database_url(request.getfixturevalue("pg_server"),
                                    f"gw_{name}_{os.getpid()}_{secrets.token_hex(4)}")
        made.append(url)
        return url

    yield make
    for url in made:
        drop_db(url)


def _left(target: str) -> bool:
    """Whether a restore left anything at ``target``: the file or database, or its half-restored copy."""
    if not is_postgres_url(target):
        return os.path.exists(target) or os.path.exists(target + ".restoring")
    import psycopg
    import pgserver

    name = pgserver.database_name(target)
    with psycopg.connect(pgserver.server_url(), autocommit=True) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_database WHERE datname IN (%s, %s)",
                                 [name, name[:50] + "_restoring"]).fetchone()[0])


def _all_rows(store) -> dict[str, pd.DataFrame]:
    out = {}
    for name in backup.table_counts(store):
        frame = store.query_df(f'SELECT * FROM "{name}"')
        for column in frame.columns:  # geometries and blobs compare as bytes
            if frame[column].dtype == object and frame[column].map(
                    lambda v: isinstance(v, (bytes, bytearray, memoryview))).any():
                frame[column] = frame[column].map(lambda v: bytes(v) if v is not None else None)
        out[name] = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True) if len(frame) else frame
    return out


def _restore_compares_everything(store, folder, target: str) -> None:
    inspector = services.current_user(store, services.sign_in(store, "inspector", "demo-2026").token)
    task = services.my_tasks(store, inspector).iloc[0]
    services.work_on(store, inspector, int(task.id), "in_progress")
    made = services.backup(store, services.CLI, folder)
    assert (folder / backup.MANIFEST).is_file()
    assert made["tables"]["cells"] == 1926 and "spatial_ref_sys" not in made["tables"]
    before = _all_rows(store)
    restored = services.restore(services.CLI, folder, target)
    assert restored["tables"] == {k: v for k, v in made["tables"].items()}
    assert restored["chain_head"] == made["chain_head"]
    with open_sealed(target) as again:
        after = _all_rows(again)
        assert set(after) == set(before)
        for name in before:
            if name == "audit_log":  # the backup itself is logged after the snapshot
                continue
            pd.testing.assert_frame_equal(after[name], before[name], check_dtype=False, obj=name)
        assert audit.verify(again)["ok"]
        # sequences continue after the restored rows
        assert again.scalar("SELECT nextval('tasks_id_seq')") == store.scalar("SELECT max(id) FROM tasks") + 1


def test_a_restore_gives_back_every_row_and_the_record_checks(demo_store, tmp_path, new_target):
    _restore_compares_everything(demo_store, tmp_path / "backup-1", new_target("restored"))


@pytest.fixture
def pg_demo(request, pg_server, tmp_path):
    """A PostgreSQL demo database in either run: a copy of the demo template on PostgreSQL, else built here."""
    if BACKEND == "postgres":
        url = copy_db(request.getfixturevalue("demo_db"), tmp_path)
    else:
        url = request.getfixturevalue("pg_url")
        with open_sealed(url) as store:
            services.init_region(store, services.CLI, region="410329", resolution=8, demo_data=True)
    with open_sealed(url) as store:
        yield store
    drop_db(url)


def test_a_postgres_backup_is_pg_dump_and_its_restore_gives_back_every_row(pg_demo, tmp_path, new_target):
    """Runs in the DuckDB run too (on the test server), so pg_dump and pg_restore are always exercised."""
    _restore_compares_everything(pg_demo, tmp_path / "pg-backup", new_target("pg_restored", postgres=True))
    manifest = json.loads((tmp_path / "pg-backup" / backup.MANIFEST).read_text())
    assert manifest["format"] == "gridwatch-postgres-dump-1" and list(manifest["files"]) == ["gridwatch.dump"]
    with pytest.raises(ValidationError, match="holds a PostgreSQL database"):
        backup.restore(tmp_path / "pg-backup", tmp_path / "into.duckdb")
    assert not (tmp_path / "into.duckdb").exists()


def test_a_damaged_or_incomplete_backup_is_refused_and_nothing_is_written(demo_store, tmp_path, new_target):
    services.backup(demo_store, services.CLI, tmp_path / "b")
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "b", broken)
    damaged = "gridwatch.dump" if demo_store.backend == "postgres" else "tasks.parquet"
    (broken / damaged).write_bytes(b"not the data")
    with pytest.raises(ValidationError, match=f"damaged: {damaged}"):
        backup.restore(broken, x := new_target("x"))
    assert not _left(x)
    manifest = json.loads((tmp_path / "b" / backup.MANIFEST).read_text())
    manifest["tables"]["tasks"] += 1  # as if a table had lost a row
    (tmp_path / "b" / backup.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValidationError, match="tasks"):
        backup.restore(tmp_path / "b", y := new_target("y"))
    assert not _left(y)
    with pytest.raises(ValidationError, match="not a gridwatch backup"):
        backup.restore(tmp_path, new_target("z"))


def test_backups_and_restores_never_overwrite_by_accident(demo_store, tmp_path, new_target):
    services.backup(demo_store, services.CLI, tmp_path / "b")
    with pytest.raises(ValidationError, match="not empty"):
        services.backup(demo_store, services.CLI, tmp_path / "b")
    there = new_target("db")
    if is_postgres_url(there):
        import pgserver

        pgserver._admin(pgserver.server_url(), f'CREATE DATABASE "{pgserver.database_name(there)}"')
    else:
        (tmp_path / "db.duckdb").write_bytes(b"")
    with pytest.raises(ValidationError, match="already exists"):
        backup.restore(tmp_path / "b", there)


def test_restore_refuses_a_database_the_app_holds(demo_copy, tmp_path):
    live = demo_copy
    with open_sealed(live) as store:
        services.backup(store, services.CLI, tmp_path / "b")
        holder = open_sealed(live)  # DuckDB: another connection in this process is not a lock; another process is
        holder.close()
    import subprocess
    import sys
    code = (f"import time; from gridwatch.audit import open_sealed; s = open_sealed({live!r}); "
            "s.scalar('SELECT 1'); print('ready', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        # DuckDB: "in use by another process"; PostgreSQL: "in use by 1 connections"
        with pytest.raises(StorageError, match="in use by"):
            backup.restore(tmp_path / "b", live, replace=True)
    finally:
        proc.kill()
        proc.wait()
    with open_sealed(live) as store:  # still the database it was
        assert store.scalar("SELECT count(*) FROM cells") == 1926


def test_cli_backup_and_restore(demo_copy, tmp_path, capsys, new_target):
    assert main(["backup", str(tmp_path / "b"), "--json", "--db", demo_copy]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["tables"]["cells"] == 1926
    new = new_target("new")
    assert main(["restore", str(tmp_path / "b"), "--json", "--db", new]) == 0
    assert json.loads(capsys.readouterr().out)["tables"]["cells"] == 1926
    assert main(["restore", str(tmp_path / "b"), "--db", new]) == 2  # exists: refused


def test_an_administrator_backs_up_from_the_app(app_db, tmp_path, monkeypatch):
    from gridwatch.config import REPO_ROOT
    from tests.conftest import signed_in

    monkeypatch.setenv("GRIDWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    at = signed_in(app_db, "admin", REPO_ROOT / "app.py").run()
    at.switch_page("pages/people.py").run()
    assert not at.exception
    assert "备份" in [tab.label for tab in at.tabs]
    assert "完好" in [str(m.value) for m in at.metric]
    at.button(key="backup-now").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    made = list((tmp_path / "backups").iterdir())
    assert len(made) == 1 and (made[0] / backup.MANIFEST).is_file()
    assert any("已备份" in s.value for s in at.success)


def test_only_administrators_back_up(demo_store, tmp_path):
    from gridwatch.errors import PermissionDenied

    leader = services.current_user(demo_store, services.sign_in(demo_store, "leader", "demo-2026").token)
    with pytest.raises(PermissionDenied):
        services.admin_backup(demo_store, leader, folder=tmp_path / "backups")
    assert not (tmp_path / "backups").exists()
