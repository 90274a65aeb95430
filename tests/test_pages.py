"""Every page runs (Streamlit AppTest) on the demo database and shows what it should, in Chinese and English."""

from __future__ import annotations

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
    at = signed_in(app_db, "county", REPO_ROOT / "pages" / "overview.py").run()
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
    at = signed_in(app_db, "county", REPO_ROOT / "pages" / "overview.py", lang="en").run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Grid overview: 伊川县" in text
    assert "Coverage report" in text


def test_overview_without_a_region_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.chdir(REPO_ROOT)
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO_ROOT / "pages" / "overview.py"), default_timeout=60).run()
    st.cache_resource.clear()
    assert not at.exception
    assert any("init --region" in e.value for e in at.error)


def test_fire_page_shows_demo_detections_tasks_and_days(app_db):
    at = signed_in(app_db, "county", REPO_ROOT / "pages" / "fires.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "卫星火点"
    assert any("演示火点" in e.value for e in at.info)
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["辖区内火点"]) > 60 and int(labels["火情事件"]) > 30
    # repeated burning is counted and dispatched (flagged, never set aside as persistent heat)
    assert not any("持续热源" in c.value for c in at.caption)
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

        cell = services.task_show(store, services.CLI, task_id)["cell"]
        lat, lng = h3.cell_to_latlng(cell)
        assert services.load_draft(store, services.current_user(store, at.session_state["token"]), task_id)[
            "note"] == "已扑灭，现场无明火"
    at.number_input(key=key.replace("finding", "lat")).set_value(lat)
    at.number_input(key=key.replace("finding", "lng")).set_value(lng).run()
    at.button(key=key.replace("finding", "send")).click().run()
    assert not at.exception, at.exception
    with open_sealed(str(app_db)) as store:
        shown = services.task_show(store, services.CLI, task_id)
        assert shown["state"] == "reported"
        assert shown["events"][-1]["detail"]["outside_cell_m"] == 0

    leader = AppTest.from_file(str(REPO_ROOT / "pages" / "review.py"), default_timeout=60)
    with open_sealed(str(app_db)) as store:
        leader.session_state["token"] = services.sign_in(store, "leader", services.DEMO_PASSWORD).token
    leader.run()
    assert not leader.exception, leader.exception
    assert leader.title[0].value == "网格状态与核实"
    leader.button(key=f"ok-{task_id}").click().run()
    with open_sealed(str(app_db)) as store:
        assert services.task_show(store, services.CLI, task_id)["state"] == "closed"


# -- pages run inside app.py, and no one sees a traceback ---------------------------------------------------------


def test_a_first_request_for_a_page_address_runs_through_app_py(app_db, monkeypatch):
    """A server's first request may open a page's address (a bookmarked /fires): the page runs inside app.py."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    monkeypatch.setattr(app_test, "PagesManager", PagesManager)  # Streamlit decides as on a server's first request
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).switch_page("pages/fires.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "gridwatch · 网格化监管"  # the sign-in, not the fire points without signing in
    assert [i.label for i in at.text_input] == ["用户名", "密码"]

    leader = _signed_in(app_db, "leader").switch_page("pages/assign.py").run()
    assert not leader.exception, leader.exception
    assert leader.title[0].value == "分派任务"
    assert [s.label for s in leader.sidebar.selectbox] == ["语言 / Language"]  # app.py's frame around the page


def test_after_giving_tasks_the_next_rerun_shows_every_tab_and_no_error(app_db):
    """The tablet walk-through's blocker: after a successful assignment, typing a note showed a TypeError."""
    from gridwatch import services
    from gridwatch.audit import open_sealed

    at = _signed_in(app_db, "leader").run()
    at.switch_page("pages/assign.py").run()
    assert not at.exception, at.exception
    with open_sealed(str(app_db)) as store:
        leader = services.current_user(store, at.session_state["token"])
        task = services.assign_tasks(store, leader).iloc[0]
        person = next(k for k in services.assign_people(store, leader).person_key if k != task.assignee_key)
    at.multiselect(key="assign_task_ids").set_value([int(task.id)])
    at.selectbox(key="assign_to").set_value(person)
    at.text_input(key="assign_note").input("人手调整").run()
    drawn = list(at.multiselect(key="assign_task_ids").values)  # the labels the browser shows
    at.button(key="assign_go").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("已将 1 项任务分派给")
    assert at.multiselect(key="assign_task_ids").value == [] and at.text_input(key="assign_note").value == ""

    # a browser still holding the label drawn before the assignment (its assignee has changed since) sends it back
    # with the next change on the page
    at.multiselect(key="assign_task_ids").set_value(drawn)
    at.text_input(key="assign_note").input("再分派一次").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.multiselect(key="assign_task_ids").value == []
    assert [tab.label for tab in at.tabs] == ["按任务分派", "按网格单元分派", "按网格分派当天任务", "新建任务"]
    assert at.button(key="cells_go") and at.button(key="split_preview")  # the other tabs are drawn
    at.selectbox(key="assign_to").set_value(task.assignee_key).run()
    assert not at.exception and at.button(key="assign_go").disabled  # nothing chosen: nothing to give


def test_an_unexpected_error_reads_as_a_message_in_the_persons_language(app_db, monkeypatch):
    from gridwatch import ui

    monkeypatch.setattr(ui, "_under_apptest", lambda: False)  # as in the running app
    script = "from gridwatch import ui\nwith ui.show_errors():\n    raise TypeError('bad argument type')\n"
    for lang, message in (("zh_CN", "出现了问题，已记录在案。请重试；如再次出现，请告知管理员。"),
                          ("en", "Something went wrong and has been recorded. Try again; if it happens again, tell "
                                 "an administrator.")):
        at = AppTest.from_string(script, default_timeout=60)
        at.session_state["lang"] = lang
        at.run()
        assert not at.exception, at.exception
        assert [e.value for e in at.error] == [message]


def test_streamlit_shows_no_error_details_and_keeps_the_roles_menu():
    import tomllib

    client = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["client"]
    assert client["showErrorDetails"] == "none"
    # false would hide st.navigation's menu as well (Streamlit 1.67), not only the pages/ folder's automatic one
    assert client.get("showSidebarNavigation", True) is True


def _rule_entry(at, key: str) -> str:
    """The entry of the rule ``key`` on the rules screen: its label and value, then its source line."""
    from gridwatch.encode import markdown_text

    body = next(m.value for m in at.markdown if "-badge[" in m.value)
    entries = body.split("\n- ")
    return next(e for e in entries if f":small[{markdown_text(key)}]" in e)


def test_rules_page_lists_each_rule_with_its_source_in_chinese_and_english(app_db):
    at = signed_in(app_db, "inspector", REPO_ROOT / "pages" / "rules.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "规则说明"
    radius = _rule_entry(at, "heat_radius_km")
    assert "30" in radius and ":blue-badge[规划条款]" in radius and "2024 §3" in radius
    thresholds = _rule_entry(at, "report_thresholds")
    assert ":gray-badge[演示设置]" in thresholds  # the demo database fills them in, and says so
    english = signed_in(app_db, "inspector", REPO_ROOT / "pages" / "rules.py", lang="en").run()
    assert not english.exception, english.exception
    assert english.title[0].value == "Rules in force"
    assert ":blue-badge[Plan clause]" in _rule_entry(english, "heat_radius_km")
