"""Backups through the store's connection and checked restores that compare everything, on either backend
(tables as Parquet, a signed manifest; a restore builds the schema from the migrations and runs nothing from the
backup)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil

import pandas as pd
import pytest

from gridwatch import audit, auditkey, backup, services
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
    restored = services.restore(services.CLI, folder, target, key_file=auditkey.key_path(store))
    assert restored["tables"] == {k: v for k, v in made["tables"].items()}
    assert restored["chain_head"] == made["chain_head"]
    with open_sealed(target) as again:
        after = _all_rows(again)
        assert set(after) == set(before)
        for name in before:
            if name in ("audit_log", "audit_chain"):  # the backup itself is logged (and sealed) after the snapshot
                assert len(after[name]) == made["tables"][name] == len(before[name]) - 1
                continue
            pd.testing.assert_frame_equal(after[name], before[name], check_dtype=False, obj=name)
        checked = audit.verify(again)  # the key and the anchored head were put beside the restored database
        assert checked["ok"] and checked["anchored"]["seq"] == made["chain_head"]["seq"]
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


def test_a_postgres_backup_and_its_restore_give_back_every_row(pg_demo, tmp_path, new_target):
    """Runs in the DuckDB run too (on the test server), so the PostgreSQL restore is always exercised."""
    _restore_compares_everything(pg_demo, tmp_path / "pg-backup", new_target("pg_restored", postgres=True))
    manifest = json.loads((tmp_path / "pg-backup" / backup.MANIFEST).read_text())
    assert manifest["format"] == backup.FORMAT and manifest["backend"] == "postgres"
    assert set(manifest["files"]) == {f"{t}.parquet" for t in manifest["tables"]} | {backup.HEAD_FILE}
    with pytest.raises(ValidationError, match="holds a PostgreSQL database"):
        backup.restore(tmp_path / "pg-backup", tmp_path / "into.duckdb", key_file=auditkey.key_path(pg_demo))
    assert not (tmp_path / "into.duckdb").exists()


def _variant(folder, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return copy


def test_a_damaged_or_incomplete_backup_is_refused_and_nothing_is_written(demo_store, tmp_path, new_target):
    services.backup(demo_store, services.CLI, tmp_path / "b")
    key = auditkey.key_path(demo_store)

    def refused(folder, match):
        target = new_target(folder.name)
        with pytest.raises(ValidationError, match=match):
            backup.restore(folder, target, key_file=key)
        assert not _left(target)

    changed = _variant(tmp_path / "b", tmp_path, "changed")
    (changed / "tasks.parquet").write_bytes(b"not the data")
    refused(changed, "damaged: tasks.parquet")
    missing = _variant(tmp_path / "b", tmp_path, "missing")
    (missing / "task_events.parquet").unlink()
    refused(missing, "damaged: task_events.parquet")
    extra = _variant(tmp_path / "b", tmp_path, "extra")
    (extra / "schema.sql").write_text("CREATE TABLE pwned (x INT);", encoding="utf-8")
    refused(extra, "does not list \\(schema.sql\\)")
    recounted = _variant(tmp_path / "b", tmp_path, "recounted")
    manifest = json.loads((recounted / backup.MANIFEST).read_text())
    manifest["tables"]["tasks"] += 1  # as if a table had lost a row
    (recounted / backup.MANIFEST).write_text(json.dumps(manifest))
    refused(recounted, "valid signature")
    resigned = _variant(tmp_path / "b", tmp_path, "resigned")  # an attacker's own key signs a changed manifest
    manifest = json.loads((resigned / backup.MANIFEST).read_text())
    (resigned / "tasks.parquet").write_bytes(b"not the data")
    manifest["files"]["tasks.parquet"] = {"size": 12, "sha256": hashlib.sha256(b"not the data").hexdigest()}
    manifest["signature"] = backup._sign(manifest, auditkey.Keyring("kforged", {"kforged": b"x" * 32}, "attacker"))
    (resigned / backup.MANIFEST).write_text(json.dumps(manifest))
    refused(resigned, "kforged")
    manifest["signature"]["key_id"] = json.loads((tmp_path / "b" / backup.MANIFEST).read_text())["signature"]["key_id"]
    (resigned / backup.MANIFEST).write_text(json.dumps(manifest))
    refused(resigned, "valid signature")
    with pytest.raises(ValidationError, match="not a gridwatch backup"):
        backup.restore(tmp_path, new_target("z"), key_file=key)


def test_a_backup_is_checked_only_with_its_own_key(demo_store, tmp_path, new_target):
    services.backup(demo_store, services.CLI, tmp_path / "b")
    other = tmp_path / "other.auditkey"
    auditkey.create_keyring(other)  # another database's key
    target = new_target("w")
    with pytest.raises(ValidationError, match="not at hand"):
        backup.restore(tmp_path / "b", target, key_file=other)
    assert not _left(target)


def test_an_edited_schema_file_is_never_run(demo_store, tmp_path, new_target):
    """The attack of the old format: SQL put into a backup (as schema.sql or load.sql) is refused unread, and a
    restore runs nothing from the backup even when signed by the right key."""
    services.backup(demo_store, services.CLI, tmp_path / "b")
    key = auditkey.key_path(demo_store)
    marker = tmp_path / "ran"
    for name in ("schema.sql", "load.sql"):
        folder = _variant(tmp_path / "b", tmp_path, name.replace(".", "-"))
        (folder / name).write_text(f"COPY (SELECT 1) TO '{marker}';", encoding="utf-8")
        target = new_target(folder.name)
        with pytest.raises(ValidationError, match=name):
            backup.restore(folder, target, key_file=key)
        assert not marker.exists() and not _left(target)


def test_a_backup_on_a_full_disk_says_so_and_leaves_nothing(demo_copy, tmp_path):
    """A disk that fills during the backup (a file size limit in a child process): a clear message, no partial
    folder."""
    import subprocess
    import sys

    target = tmp_path / "full"
    code = ("import resource, signal, sys; from gridwatch import backup; from gridwatch.audit import open_sealed\n"
            "from gridwatch.errors import StorageError; from gridwatch.i18n import translate_error\n"
            f"store = open_sealed({str(demo_copy)!r})\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, 32_000))\n"
            "try:\n"
            f"    backup.backup(store, {str(target)!r})\n"
            "except StorageError as exc:\n"
            "    print(translate_error(exc, 'zh_CN')); sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "磁盘已满" in proc.stdout
    assert not target.exists() and not (tmp_path / "full.partial").exists()


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
        backup.restore(tmp_path / "b", there, key_file=auditkey.key_path(demo_store))


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
            backup.restore(tmp_path / "b", live, replace=True)  # the key beside it
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
    with open_sealed(demo_copy) as store:
        key = str(auditkey.key_path(store))
    assert main(["restore", str(tmp_path / "b"), "--json", "--db", new]) == 2  # no key at hand: refused
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "b"), "--json", "--db", new, "--key-file", key]) == 0
    assert json.loads(capsys.readouterr().out)["tables"]["cells"] == 1926
    assert main(["restore", str(tmp_path / "b"), "--db", new, "--key-file", key]) == 2  # exists: refused


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
