"""The storage layer: migrations, transactions, bulk inserts, threads, file locking, the spatial extension."""

from __future__ import annotations

import doctest
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

import gridwatch.storage.base
from gridwatch.audit import open_sealed
from gridwatch.errors import StorageError
from gridwatch.storage import list_migrations, open_store
from gridwatch.storage.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
TABLES = {"meta", "units", "cells", "roles", "role_grants", "people", "assignments", "audit_log", "schema_migrations"}


@pytest.fixture(params=["duckdb", "postgres"])
def store(request):
    """The contract tests below run on both backends: in memory, and a fresh PostgreSQL database (skipped, with
    the reason, when no server is available)."""
    if request.param == "duckdb":
        with open_sealed(":memory:") as s:
            yield s
        return
    with open_sealed(request.getfixturevalue("pg_url")) as s:
        yield s


def _meta(store) -> dict[str, str]:
    return {r["key"]: r["value"] for r in store.query("SELECT key, value FROM meta")}


# -- migrations -------------------------------------------------------------------------------


def test_migrations_apply_once():
    names = [name for _, name, _ in list_migrations()]
    assert names[0] == "0001_foundation"
    with DuckDBStore(":memory:") as store:
        assert store.migrate() == names
        assert store.migrate() == []
        assert store.migrate() == []
        rows = store.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [(n, name) for n, name, _ in list_migrations()]
        assert all(r["applied_at"] is not None for r in rows)
        tables = {r["table_name"] for r in store.query("SELECT table_name FROM information_schema.tables")}
        assert TABLES <= tables
        assert store.scalar("SELECT count(*) FROM roles") == 7


def test_migrations_are_remembered_in_the_file(tmp_path):
    path = str(tmp_path / "g.duckdb")
    with open_store(path) as store:
        store.set_meta("k", "v")
    with open_store(path, migrate=False) as store:
        assert store.migrate() == []
        assert store.scalar("SELECT count(*) FROM schema_migrations") == len(list_migrations())
        assert store.get_meta("k") == "v"


def test_an_unreachable_postgres_url_is_named_without_the_password():
    with pytest.raises(StorageError) as info:
        open_store("postgresql://user:secret@127.0.0.1:1/gridwatch")  # nothing listens on port 1
    assert "secret" not in str(info.value) and "user@127.0.0.1:1/gridwatch" in str(info.value)


# -- transactions ----------------------------------------------------------------------------


def test_a_failing_statement_rolls_back_the_whole_block(store):
    store.set_meta("kept", "1")
    with pytest.raises(StorageError) as info:
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
            store.execute("INSERT INTO people (person_key, name) VALUES ('p1', '张三')")
            store.execute("INSERT INTO meta (key, value) VALUES ('kept', 'duplicate')")  # primary key violation
    assert "Constraint" in str(info.value) or "duplicate" in str(info.value)
    assert _meta(store) == {"kept": "1"}
    assert store.scalar("SELECT count(*) FROM people") == 0
    # the store is usable afterwards
    with store.transaction():
        store.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")
    assert _meta(store) == {"kept": "1", "b": "2"}


def test_a_python_exception_rolls_back_too(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
            raise RuntimeError("boom")
    assert _meta(store) == {}


def test_nested_transactions_join_the_outer_one(store):
    with pytest.raises(KeyError):
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('outer', '1')")
            with store.transaction():
                store.execute("INSERT INTO meta (key, value) VALUES ('inner', '1')")
            store.set_meta("also_nested", "1")  # set_meta opens its own (nested) transaction
            assert set(_meta(store)) == {"outer", "inner", "also_nested"}
            raise KeyError("abort after the inner blocks finished")
    assert _meta(store) == {}  # the inner blocks did not commit on their own

    with store.transaction():
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('inner', '1')")
        store.execute("INSERT INTO meta (key, value) VALUES ('outer', '1')")
    assert _meta(store) == {"inner": "1", "outer": "1"}


def test_an_error_in_an_inner_block_rolls_back_the_outer_block(store):
    with pytest.raises(StorageError):
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('outer', '1')")
            with store.transaction():
                store.execute("INSERT INTO nowhere VALUES (1)")
    assert _meta(store) == {}


def test_a_transaction_that_cannot_commit_says_so(store):
    with pytest.raises(StorageError):
        with store.transaction():
            store.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
            try:
                store.execute("INSERT INTO meta (key, value) VALUES ('a', '2')")
            except StorageError:
                pass  # a caller that carries on
    assert _meta(store) == {}


def test_the_transaction_doctest_passes():
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(gridwatch.storage.base) if t.name.endswith("Store.transaction")]
    assert tests
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t, out=lambda _: None)
    assert runner.failures == 0


# -- bulk inserts ----------------------------------------------------------------------------


def test_insert_arrow_bulk_inserts(store):
    n = 20_000
    table = pa.table({
        "cell": pa.array(range(1, n + 1), type=pa.int64()),
        "lat": pa.array([34.0 + i * 1e-5 for i in range(n)]),
        "lng": pa.array([112.0] * n),
        "township_code": pa.array(["T1" if i % 2 else None for i in range(n)], type=pa.string()),
    })
    assert store.insert_arrow("cells", table) == n
    row = store.query("SELECT count(*) AS n, count(township_code) AS t, max(cell) AS top, count(village_code) AS v"
                      " FROM cells")[0]
    assert row == {"n": n, "t": n // 2, "top": n, "v": 0}


def test_insert_arrow_inside_a_failing_transaction_is_rolled_back(store):
    table = pa.table({"key": ["a", "b"], "value": ["1", "2"]})
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_arrow("meta", table)
            assert store.scalar("SELECT count(*) FROM meta") == 2
            raise RuntimeError("abort")
    assert store.scalar("SELECT count(*) FROM meta") == 0


def test_insert_arrow_refuses_bad_tables_and_columns(store):
    with pytest.raises(StorageError):
        store.insert_arrow("meta; DROP TABLE units", pa.table({"key": ["a"], "value": ["1"]}))
    with pytest.raises(StorageError) as info:
        store.insert_arrow("meta", pa.table({"key": ["a"], "colour": ["red"]}))
    assert "colour" in str(info.value)
    assert store.scalar("SELECT count(*) FROM meta") == 0
    assert store.scalar("SELECT count(*) FROM units") == 0


# -- threads ---------------------------------------------------------------------------------


def test_threads_each_get_their_cursor_and_all_writes_land(tmp_path):
    rows_per_thread = 60
    with open_sealed(str(tmp_path / "threads.duckdb")) as store:  # seals from both threads too
        errors: list[BaseException] = []
        cursors: dict[str, int] = {}
        start = threading.Barrier(2)

        def work(name: str) -> None:
            try:
                start.wait()
                cursors[name] = id(store._cursor())
                for i in range(rows_per_thread):
                    with store.transaction():
                        store.execute("INSERT INTO audit_log (actor, action, subject) VALUES (?, 'test', ?)",
                                      [name, str(i)])
                        store.set_meta(f"{name}-{i}", str(i))
                    seen = store.scalar("SELECT count(*) FROM audit_log WHERE actor = ?", [name])
                    assert seen == i + 1, (name, i, seen)
                    store.query("SELECT count(*) FROM meta")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert len(set(cursors.values())) == 2  # a cursor per thread
        counts = {r["actor"]: r["n"] for r in store.query(
            "SELECT actor, count(*) AS n, count(DISTINCT subject) AS d FROM audit_log GROUP BY actor")}
        assert counts == {"t1": rows_per_thread, "t2": rows_per_thread}
        assert store.scalar("SELECT count(*) FROM meta") == 2 * rows_per_thread
        assert store.scalar("SELECT count(DISTINCT id) FROM audit_log") == 2 * rows_per_thread


# -- files and processes ---------------------------------------------------------------------


def _python(code: str, *, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None):
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


OPEN_IN_CHILD = """
import sys
from gridwatch.errors import StorageError
from gridwatch.storage import open_store
from gridwatch.storage.duckdb import DuckDBStore
try:
    if sys.argv[-1] == "ro":
        DuckDBStore({path!r}, read_only=True)
    else:
        open_store({path!r})
except StorageError as exc:
    print("StorageError:", exc)
    raise SystemExit(7)
print("opened")
"""


@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_second_process_is_refused_while_the_file_is_in_use(tmp_path, mode):
    """DuckDB locks the file for the process holding it: a second process cannot open it, not even read-only."""
    path = tmp_path / "busy.duckdb"
    with open_store(str(path)) as store:
        store.set_meta("k", "v")
        result = subprocess.run(
            [sys.executable, "-c", OPEN_IN_CHILD.format(path=str(path)), mode], capture_output=True, text=True,
            cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert result.returncode == 7, result.stdout + result.stderr
        message = result.stdout
        assert path.name in message and str(path.parent) not in message
        assert "in use by another gridwatch process" in message
        assert str(os.getpid()) not in message  # DuckDB names the holder's process id; the server log keeps it
    # released on close: the same child now opens it
    result = _python(OPEN_IN_CHILD.format(path=str(path)))
    assert result.returncode == 0 and "opened" in result.stdout, result.stderr


def test_a_file_that_is_not_a_database_gives_a_storage_error(tmp_path):
    path = tmp_path / "not.duckdb"
    path.write_text("hello, I am text", encoding="utf-8")
    with pytest.raises(StorageError) as info:
        open_store(str(path))
    assert path.name in str(info.value) and str(path.parent) not in str(info.value)  # the file, not the folder


def test_the_spatial_extension_loads_without_network(tmp_path):
    code = (
        "from gridwatch.storage import open_store\n"
        "s = open_store(':memory:')\n"
        "print(s.scalar(\"SELECT ST_AsText(ST_Point(112.4, 34.4))\"))\n"
        "print(s.scalar(\"SELECT ST_Area(ST_GeomFromText('POLYGON((0 0, 2 0, 2 1, 0 1, 0 0))'))\"))\n"
    )
    home = tmp_path / "home"  # no ~/.duckdb extension cache to fall back on
    home.mkdir()
    env = {"HOME": str(home), "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    prefix: tuple[str, ...] = ()
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        prefix = (unshare, "-rn")  # a network namespace with no interfaces but loopback
    result = _python(code, prefix=prefix, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["POINT", "(112.4", "34.4)", "2.0"]
    assert not any(home.rglob("*.duckdb_extension"))


def test_the_spatial_extension_is_loaded_from_the_package():
    with open_store(":memory:") as store:  # DuckDB only
        row = store.query("SELECT loaded, installed FROM duckdb_extensions() WHERE extension_name = 'spatial'")[0]
        assert row == {"loaded": True, "installed": False}
        assert store.scalar("SELECT ST_AsText(ST_GeomFromWKB(?))", [bytes.fromhex(
            "0101000000000000000000f03f0000000000000040")]) == "POINT (1 2)"
