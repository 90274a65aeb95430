"""Shared fixtures: a fresh migrated in-memory store, the shipped boundaries, the shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.storage import Store, open_store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def needs_shared() -> pytest.MarkDecorator:
    """Skip a test when the shared real-data folder is not beside the repository."""
    return pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason="../shared/data (real public data) is not present beside the repository"
    )


@pytest.fixture
def store() -> Store:
    """A fresh, migrated in-memory database."""
    with open_store(":memory:") as s:
        yield s


@pytest.fixture(scope="session")
def shipped_units():
    """The shipped Henan boundaries as a Units table (session-wide, read-only)."""
    from gridwatch.boundaries import load_shipped
    from gridwatch.grid import Units

    batch = load_shipped()
    records = batch.frame.assign(geom=list(batch.geoms)).to_dict("records")
    return Units.from_records(records)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """A DuckDB file initialised for 伊川县 with demo data (built once per session)."""
    from gridwatch import services

    path = tmp_path_factory.mktemp("db") / "demo.duckdb"
    with open_store(str(path)) as s:
        services.init_region(s, region="410329", resolution=8, demo_data=True)
    return path


@pytest.fixture
def demo_store(demo_db: Path, tmp_path: Path) -> Store:
    """A private copy of the demo database, so tests may change it."""
    import shutil

    path = tmp_path / "demo.duckdb"
    shutil.copy(demo_db, path)
    with open_store(str(path)) as s:
        yield s


@pytest.fixture
def app_db(demo_db, tmp_path, monkeypatch):
    """A private demo database that ``AppTest`` runs of the app use (through GRIDWATCH_DB)."""
    import shutil

    import streamlit as st

    from gridwatch.config import REPO_ROOT

    path = tmp_path / "app.duckdb"
    shutil.copy(demo_db, path)
    monkeypatch.setenv("GRIDWATCH_DB", str(path))
    monkeypatch.chdir(REPO_ROOT)
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()


def signed_in(db: Path, username: str, script: str | Path, *, lang: str | None = None):
    """An ``AppTest`` of ``script`` for a demo account already signed in (not yet run)."""
    from streamlit.testing.v1 import AppTest

    from gridwatch import services

    with open_store(str(db)) as store:
        token = services.sign_in(store, username, services.DEMO_PASSWORD).token
    at = AppTest.from_file(str(script), default_timeout=60)
    at.session_state["token"] = token
    if lang:
        at.session_state["lang"] = lang
    return at
