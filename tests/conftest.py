"""Shared fixtures: a fresh migrated in-memory store, the shipped boundaries, the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridwatch.audit import open_sealed
from gridwatch.storage import Store

REPO = Path(__file__).resolve().parents[1]
#: PostgreSQL test databases keep their audit key and head files here (a DuckDB file keeps them beside it)
if "GRIDWATCH_AUDIT_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["GRIDWATCH_AUDIT_DIR"] = tempfile.mkdtemp(prefix="gridwatch-audit-")
    atexit.register(shutil.rmtree, os.environ["GRIDWATCH_AUDIT_DIR"], ignore_errors=True)
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
#: ``GRIDWATCH_TEST_BACKEND=postgres`` (``make test-pg``) runs the store and demo fixtures on PostgreSQL
BACKEND = os.environ.get("GRIDWATCH_TEST_BACKEND", "duckdb").strip().lower() or "duckdb"


def needs_shared() -> pytest.MarkDecorator:
    """Skip a test when the shared real-data folder is not beside the repository."""
    return pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason="../shared/data (real public data) is not present beside the repository"
    )


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URL of a PostgreSQL role that may create databases: ``GRIDWATCH_TEST_PG`` or a private local cluster."""
    import pgserver

    url = pgserver.server_url()
    if not url:
        pytest.skip(pgserver.why_unavailable())
    return url


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database (PostGIS available, nothing migrated), dropped after the test."""
    import pgserver

    url = pgserver.create_database()
    yield url
    pgserver.drop_database(url)


@pytest.fixture(scope="session")
def _pg_migrated(request) -> str:
    """A migrated PostgreSQL database used as the template of every ``store`` (built once per session)."""
    import pgserver

    request.getfixturevalue("pg_server")
    url = pgserver.create_database(prefix="gw_tpl_migrated")
    open_sealed(url).close()
    yield pgserver.database_name(url)
    pgserver.drop_database(url)


def copy_db(db: Path | str, tmp_path: Path, name: str = "copy.duckdb") -> str:
    """A private copy of a test database (a DuckDB file, or a PostgreSQL database as a template); its path or URL."""
    import shutil

    from gridwatch.storage import is_postgres_url

    from gridwatch import auditkey

    class _At:  # what the audit key and head files are found by
        def __init__(self, where: str) -> None:
            self.backend = "postgres" if is_postgres_url(where) else "duckdb"
            self.url = self.path = where

    if is_postgres_url(str(db)):
        import pgserver

        copy = pgserver.create_database(pgserver.database_name(str(db)))
    else:
        copy = str(tmp_path / name)
        shutil.copy(db, copy)
    for find in (auditkey.key_path, auditkey.head_path):  # the copy's key and anchored head go with it
        source, target = find(_At(str(db))), find(_At(copy))
        if source is not None and source.is_file():
            shutil.copy(source, target)
    return copy


def drop_db(db: Path | str) -> None:
    """Drop a PostgreSQL copy made by :func:`copy_db` (a DuckDB file goes with its tmp_path)."""
    from gridwatch.storage import is_postgres_url

    if is_postgres_url(str(db)):
        import pgserver

        pgserver.drop_database(str(db))


@pytest.fixture
def store(request) -> Store:
    """A fresh, migrated database: in memory (DuckDB), or a new PostgreSQL database with GRIDWATCH_TEST_BACKEND."""
    if BACKEND != "postgres":
        with open_sealed(":memory:") as s:
            yield s
        return
    import pgserver

    url = pgserver.create_database(request.getfixturevalue("_pg_migrated"))
    with open_sealed(url) as s:
        yield s
    pgserver.drop_database(url)


@pytest.fixture(scope="session")
def shipped_units():
    """The shipped Henan boundaries as a Units table (session-wide, read-only)."""
    from gridwatch.boundaries import load_shipped
    from gridwatch.grid import Units

    batch = load_shipped()
    records = batch.frame.assign(geom=list(batch.geoms)).to_dict("records")
    return Units.from_records(records)


def _template_db(tmp_path_factory, request, name: str, **init) -> Path | str:
    """A database initialised once per session with ``services.init_region(store, services.CLI, **init)``: a DuckDB file, or with
    GRIDWATCH_TEST_BACKEND=postgres the URL of a PostgreSQL database (copy either with :func:`copy_db`)."""
    from gridwatch import services

    if BACKEND == "postgres":
        import pgserver

        request.getfixturevalue("pg_server")
        url = pgserver.create_database(prefix=f"gw_tpl_{name}")
        request.addfinalizer(lambda: pgserver.drop_database(url))
        with open_sealed(url) as s:
            services.init_region(s, services.CLI, **init)
        return url
    path = tmp_path_factory.mktemp("db") / f"{name}.duckdb"
    with open_sealed(str(path)) as s:
        services.init_region(s, services.CLI, **init)
    return path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, request) -> Path:
    """伊川县 at resolution 8 with demo data (built once per session); see :func:`_template_db`."""
    return _template_db(tmp_path_factory, request, "demo", region="410329", resolution=8, demo_data=True)


@pytest.fixture(scope="session")
def county_db(tmp_path_factory, request) -> Path:
    """伊川县 at resolution 8 without demo people, so tasks stay open and unassigned (built once per session)."""
    return _template_db(tmp_path_factory, request, "county", region="410329", resolution=8, demo_data=False)


@pytest.fixture
def county(county_db, tmp_path) -> Store:
    """A private copy of :func:`county_db`, so tests may change it."""
    path = copy_db(county_db, tmp_path, "county.duckdb")
    with open_sealed(path) as s:
        yield s
    drop_db(path)


@pytest.fixture
def demo_store(demo_db: Path, tmp_path: Path) -> Store:
    """A private copy of the demo database, so tests may change it."""
    path = copy_db(demo_db, tmp_path, "demo.duckdb")
    with open_sealed(path) as s:
        yield s
    drop_db(path)


@pytest.fixture
def demo_copy(demo_db, tmp_path) -> str:
    """A private copy of the demo database for commands and subprocesses: a DuckDB file's path or a PostgreSQL
    URL, dropped afterwards."""
    path = copy_db(demo_db, tmp_path, "demo-copy.duckdb")
    yield path
    drop_db(path)


@pytest.fixture
def app_db(demo_db, tmp_path, monkeypatch):
    """A private demo database that ``AppTest`` runs of the app use (through GRIDWATCH_DB)."""
    import streamlit as st

    from gridwatch.config import REPO_ROOT

    path = copy_db(demo_db, tmp_path, "app.duckdb")
    monkeypatch.setenv("GRIDWATCH_DB", path)
    monkeypatch.chdir(REPO_ROOT)
    pages_as_on_a_running_server(monkeypatch)
    st.cache_resource.clear()
    yield path if BACKEND == "postgres" else Path(path)
    st.cache_resource.clear()
    drop_db(path)


def pages_as_on_a_running_server(monkeypatch) -> None:
    """Let ``AppTest`` runs treat ``pages/`` as a running server does: not as Streamlit's legacy page folder.

    A server decides once, on its first request, whether the ``pages/`` folder beside app.py makes a legacy
    multipage app, and ``st.navigation`` (or ``ui.through_app`` on a page) turns that off for good. ``AppTest``
    decides anew before every run, so a run on a page would start that page's file without app.py each time.
    Tests of a server's first request undo this with ``monkeypatch.undo()`` or their own ``setattr``.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    class AfterTheFirstRequest(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(app_test, "PagesManager", AfterTheFirstRequest)


def signed_in(db: Path, username: str, script: str | Path, *, lang: str | None = None):
    """An ``AppTest`` of ``script`` for a demo account already signed in (not yet run)."""
    from streamlit.testing.v1 import AppTest

    from gridwatch import services

    with open_sealed(str(db)) as store:
        token = services.sign_in(store, username, services.DEMO_PASSWORD).token
    at = AppTest.from_file(str(script), default_timeout=60)
    at.session_state["token"] = token
    if lang:
        at.session_state["lang"] = lang
    return at
