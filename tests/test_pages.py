"""Every page runs (Streamlit AppTest) on the demo database and shows what it should, in Chinese and English."""

from __future__ import annotations

import shutil

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gridwatch.config import REPO_ROOT


@pytest.fixture
def app_db(demo_db, tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    shutil.copy(demo_db, path)
    monkeypatch.setenv("GRIDWATCH_DB", str(path))
    monkeypatch.chdir(REPO_ROOT)
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.subheader] + [e.value for e in at.markdown]
    parts += [m.label for m in at.metric] + [str(m.value) for m in at.metric] + [e.value for e in at.info]
    parts += [t.value.to_string() for t in at.table]
    return "\n".join(map(str, parts))


def test_overview_shows_the_demo_county_and_its_coverage_in_chinese(app_db):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "网格概览：伊川县" in text
    assert "演示数据" in text
    assert "全覆盖检查" in text and "无巡查员的网格单元" in text and "无网格长的单位" in text
    cells = next(m for m in at.metric if m.label == "网格单元")
    assert int(str(cells.value).replace(",", "")) > 1800
    # the drawing of the cells is on the page
    assert any("<svg" in m.value and "polygon" in m.value for m in at.markdown)
    # the two villages the demo leaves without a grid leader are listed
    assert "演示村" in text


def test_overview_in_english(app_db):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = "en"
    at.run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Grid overview: 伊川县" in text
    assert "Coverage report" in text


def test_overview_without_a_region_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.chdir(REPO_ROOT)
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    st.cache_resource.clear()
    assert not at.exception
    assert any("init --region" in e.value for e in at.error)


def test_fire_page_shows_demo_detections_tasks_and_days(app_db):
    at = AppTest.from_file(str(REPO_ROOT / "screens" / "fires.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "卫星火点"
    assert any("演示火点" in e.value for e in at.info)
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["辖区内火点"]) > 60 and int(labels["火情事件"]) > 30
    assert any("持续热源" in c.value for c in at.caption)
    tasks = at.dataframe[0].value
    assert len(tasks) > 30 and "卫星火点核查" in tasks.iloc[0, 0]
