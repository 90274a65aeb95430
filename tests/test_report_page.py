"""The report page (Streamlit AppTest) on the demo county: scope, tables, charts, map, downloads; Excel matches it."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
from streamlit.testing.v1 import AppTest

from gridwatch import services
from gridwatch.config import REPO_ROOT
from gridwatch.audit import open_sealed

from conftest import signed_in

PAGE = REPO_ROOT / "pages" / "reports.py"


def _downloads(at: AppTest) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


def test_county_head_sees_the_ten_day_ranking_and_the_excel_matches_it(app_db):
    at = signed_in(app_db, "county", PAGE).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "报表与排名"
    # the defaults: the ten-day ranking of the county's townships, on the latest day with fire points
    assert at.selectbox(key="rep_kind").value == "xun"
    assert at.selectbox(key="rep_unit").value == "410329"
    assert at.selectbox(key="rep_level").value == "township"
    # the demo plant's repeated detections are counted and dispatched now (never set aside): the latest is 06-20
    assert at.date_input(key="rep_date").value == dt.date(2026, 6, 20)
    assert "2026年6月中旬" in at.subheader[0].value
    assert any("演示" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert len(table) == 14 and list(table.columns[:4]) == ["名次", "名次变化", "单位代码", "单位"]
    assert table["名次"].is_monotonic_increasing
    assert any(c.value.startswith("得分 = 1×卫星火点") for c in at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["卫星火点"]) == int(table["卫星火点"].sum())
    assert {"下载 CSV", "下载 Excel", "下载通报（HTML，可打印）"} <= set(_downloads(at))
    # the map of units is an inline SVG of cells
    assert any("<svg" in m.value and "polygon" in m.value for m in at.markdown)

    # downloaded as Excel, the same ranking opens with Chinese headers and the page's values
    with open_sealed(str(app_db)) as store:
        report = services.report_build(store, services.current_user(store, at.session_state["token"]), kind="xun", date="2026-06-19", level="township", unit="410329")
        book = pd.read_excel(io.BytesIO(services.report_xlsx(report)), sheet_name="排名")
    assert list(book.columns) == list(table.columns)
    for column in ("名次", "单位代码", "单位", "卫星火点", "火情事件", "查实火情", "得分", "逾期任务"):
        assert book[column].tolist() == table[column].tolist(), column
    assert book["每百平方公里火点"].round(2).tolist() == table["每百平方公里火点"].round(2).tolist()


def test_a_township_leader_is_scoped_to_the_township_and_can_switch_period(app_db):
    at = signed_in(app_db, "leader", PAGE).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="rep_unit").options[0].endswith("（410329-D01）")
    assert "410329" not in [o.split("（")[-1].rstrip("）") for o in at.selectbox(key="rep_unit").options]
    assert at.selectbox(key="rep_level").value == "village"
    assert len(at.dataframe[0].value) == 7
    at.selectbox(key="rep_kind").set_value("monthly").run()
    assert not at.exception, at.exception
    assert "2026年6月" in at.subheader[0].value
    at.selectbox(key="rep_kind").set_value("daily").run()
    assert not at.exception, at.exception
    assert any(e.label == "通报" for e in at.expander)
    # the dossier of a unit, on request: every event of its tasks with activity in the period
    at.selectbox(key="rep_kind").set_value("monthly")
    at.toggle(key="rep_dossier_show").set_value(True).run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("本时段有处置记录的任务共") for c in at.caption)
    assert {"卷宗（CSV）", "卷宗（XLSX）", "卷宗（HTML）"} <= set(_downloads(at))


def test_the_page_in_english(app_db):
    at = signed_in(app_db, "county", PAGE, lang="en").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Reports and rankings"
    assert list(at.dataframe[0].value.columns[:4]) == ["Rank", "Rank change", "Unit code", "Unit"]


def test_a_worker_without_report_rights_is_refused_in_the_core(app_db):
    at = signed_in(app_db, "inspector", PAGE).run()
    assert not at.exception, at.exception
    assert not at.dataframe
    assert any("report.view" in e.value for e in at.error)
    with open_sealed(str(app_db)) as store:
        assert store.scalar("SELECT count(*) FROM access_denials WHERE action = 'report.view'") >= 1
    county = signed_in(app_db, "county", REPO_ROOT / "app.py").run()
    assert not county.exception, county.exception
