"""Every page runs (Streamlit AppTest) on the demo database and shows what it should, in Chinese and English."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gridwatch.config import REPO_ROOT

from conftest import signed_in


def _signed_in(db, username: str, *, lang: str | None = None) -> AppTest:
    return signed_in(db, username, REPO_ROOT / "app.py", lang=lang)


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.subheader] + [e.value for e in at.markdown]
    parts += [m.label for m in at.metric] + [str(m.value) for m in at.metric] + [e.value for e in at.info]
    parts += [t.value.to_string() for t in at.table]
    return "\n".join(map(str, parts))


def test_without_a_session_only_the_sign_in_page_shows(app_db):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "gridwatch · 网格化监管"
    assert [i.label for i in at.text_input] == ["用户名", "密码"]
    at.text_input[0].input("inspector")
    at.text_input[1].input("wrong-password")
    at.button[0].click().run()
    assert any("用户名或密码错误" in e.value for e in at.error)
    at.text_input[1].input("demo-2026")
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "我的任务"


def test_overview_shows_the_demo_county_and_its_coverage_in_chinese(app_db):
    at = AppTest.from_file(str(REPO_ROOT / "screens" / "overview.py"), default_timeout=60).run()
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
    at = AppTest.from_file(str(REPO_ROOT / "screens" / "overview.py"), default_timeout=60)
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
    at = AppTest.from_file(str(REPO_ROOT / "screens" / "overview.py"), default_timeout=60).run()
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


def test_inspector_reports_and_leader_verifies(app_db):
    at = _signed_in(app_db, "inspector").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "我的任务"
    first = next(b for b in at.button if b.key and b.key.startswith("task-"))
    first.click().run()
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    key = next(r.key for r in at.radio)
    at.radio(key=key).set_value("extinguished").run()
    at.text_area(key=key.replace("finding", "note")).input("已扑灭，现场无明火").run()
    from gridwatch import services
    from gridwatch.audit import open_sealed

    task_id = at.session_state["task"]
    with open_sealed(str(app_db)) as store:
        import h3

        cell = services.task_show(store, task_id)["cell"]
        lat, lng = h3.cell_to_latlng(cell)
        assert services.load_draft(store, services.current_user(store, at.session_state["token"]), task_id)[
            "note"] == "已扑灭，现场无明火"
    at.number_input(key=key.replace("finding", "lat")).set_value(lat)
    at.number_input(key=key.replace("finding", "lng")).set_value(lng).run()
    at.button(key=key.replace("finding", "send")).click().run()
    assert not at.exception, at.exception
    with open_sealed(str(app_db)) as store:
        shown = services.task_show(store, task_id)
        assert shown["state"] == "reported"
        assert shown["events"][-1]["detail"]["outside_cell_m"] == 0

    leader = AppTest.from_file(str(REPO_ROOT / "screens" / "review.py"), default_timeout=60)
    with open_sealed(str(app_db)) as store:
        leader.session_state["token"] = services.sign_in(store, "leader", services.DEMO_PASSWORD).token
    leader.run()
    assert not leader.exception, leader.exception
    assert leader.title[0].value == "网格状态与核实"
    leader.button(key=f"ok-{task_id}").click().run()
    with open_sealed(str(app_db)) as store:
        assert services.task_show(store, task_id)["state"] == "closed"
