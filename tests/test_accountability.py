"""Accountability measures as leaders issue them: recorded within scope, append-only, in the dossier and the screen.

The demo county: 演示乡镇01 (410329-D01) has the villages 410329-D01-01 …; its principal leader (demo-d01-head)
gets an account here. A fresh county database without demo settings shows no inferred measure at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import openpyxl
import pytest
from streamlit.testing.v1 import AppTest

from gridwatch import accounts, auth, encode, services
from gridwatch.audit import open_sealed
from gridwatch.cli import main
from gridwatch.config import REPO_ROOT, Settings
from gridwatch.errors import Conflict, NotFound, PermissionDenied, ValidationError
from gridwatch.periods import xun

from conftest import signed_in

VILLAGE, OTHER_VILLAGE, TOWNSHIP = "410329-D01-01", "410329-D02-01", "410329-D01"
PASSWORD = "Township-head-2026"


def _head(store) -> auth.User:
    """The principal leader (主要负责人) of 演示乡镇01, signed in."""
    accounts.add_account(store, "d01head", PASSWORD, person_key="demo-d01-head")
    return auth.load_user(store, "d01head")


def _today(store) -> dt.date:
    return services.today(store=store)


def _measures(store) -> int:
    return int(store.scalar("SELECT count(*) FROM accountability_measures"))


def test_a_township_head_records_an_interview_of_a_village_grid_leader(demo_store):
    s = demo_store
    head = _head(s)
    before = int(s.scalar("SELECT count(*) FROM audit_log"))
    row = services.record_measure(
        s, head, kind="interview_grid_leader", unit=VILLAGE, person="demo-d01-01-leader",
        issued_on=_today(s), document_no="演乡〔2026〕7号", reason="六月中旬火点 3 个，处置迟缓",
        period=xun(_today(s)))
    assert row["issued_by"] == "d01head" and row["person_role"] == "grid_leader" and row["unit_code"] == VILLAGE
    # the same transaction wrote an audit entry holding the whole record
    entry = s.query("SELECT actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert int(s.scalar("SELECT count(*) FROM audit_log")) == before + 1
    assert (entry["actor"], entry["action"], entry["subject"]) == ("d01head", "accountability.record",
                                                                   f"measure:{row['id']}")
    assert json.loads(entry["detail"])["document_no"] == "演乡〔2026〕7号"
    # the township's and the village's lists hold it; the grid leader is named as the first responsible person
    for unit in (TOWNSHIP, VILLAGE):
        listed = services.list_measures(s, head, unit=unit)
        assert list(listed.document_no) == ["演乡〔2026〕7号"]
    assert services.list_measures(s, head, unit="410329-D01-02").empty
    frame = services.report_dossier(s, head, unit=VILLAGE)
    first = frame.iloc[0]
    assert first["文号"] == "演乡〔2026〕7号" and first["类型"] == "约谈网格长（第一责任人）"
    assert first["当事人"].endswith("（网格长（第一责任人））") and first["备注"] == "六月中旬火点 3 个，处置迟缓"
    assert "分管" not in first["类型"]
    files = services.report_dossier_files(s, head, frame, unit=VILLAGE)
    lines = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    assert "演乡〔2026〕7号" in lines[1]
    sheet = openpyxl.load_workbook(io.BytesIO(files["xlsx"])).worksheets[0]
    assert "演乡〔2026〕7号" in [c.value for c in sheet[2]]
    assert "演乡〔2026〕7号" in files["html"].decode("utf-8")


def test_nobody_records_or_reads_a_measure_outside_their_scope(demo_store):
    s = demo_store
    head = _head(s)
    other = services.record_measure(s, services.CLI, kind="notice", unit=OTHER_VILLAGE, issued_on=_today(s),
                                    document_no="伊政〔2026〕1号", reason="火点多")
    with pytest.raises(PermissionDenied):
        services.record_measure(s, head, kind="notice", unit=OTHER_VILLAGE, issued_on=_today(s),
                                document_no="演乡〔2026〕8号", reason="越权")
    # a measure on one's own township is issued from above it, not by its own head
    with pytest.raises(PermissionDenied, match="above"):
        services.record_measure(s, head, kind="notice", unit=TOWNSHIP, issued_on=_today(s),
                                document_no="演乡〔2026〕9号", reason="自己")
    assert int(s.scalar("SELECT count(*) FROM access_denials WHERE action = 'accountability.record'")) == 2
    # a grid leader (no grant) may not record either, and nobody reads another township's measures
    leader = auth.load_user(s, "leader")
    with pytest.raises(PermissionDenied):
        services.record_measure(s, leader, kind="notice", unit=VILLAGE, issued_on=_today(s),
                                document_no="演乡〔2026〕10号", reason="无权")
    with pytest.raises(PermissionDenied):
        services.list_measures(s, head, unit="410329-D02")
    assert services.list_measures(s, head).empty
    assert list(services.list_measures(s, services.CLI).id) == [other["id"]]
    assert _measures(s) == 1
    # the county head records on a township
    county = auth.load_user(s, "county")
    services.record_measure(s, county, kind="notice", unit=TOWNSHIP, issued_on=_today(s),
                            document_no="伊政〔2026〕2号", reason="乡镇火点排名末位")
    assert list(services.list_measures(s, head).document_no) == ["伊政〔2026〕2号"]


@pytest.mark.parametrize("change, message", [
    ({"issued_on": "FUTURE"}, "future"),
    ({"document_no": "  "}, "document number \\(文号\\) is missing"),
    ({"reason": ""}, "reason is missing"),
    ({"reason": "x" * 2001}, "at most 2000"),
    ({"document_no": "伊政\x00〔2026〕1号"}, "control character"),
    ({"amount_yuan": 500}, "Only an economic penalty"),
    ({"kind": "economic_penalty", "amount_yuan": -5}, "between 0"),
    ({"kind": "firing"}, "Unknown measure"),
    ({"person": "demo-d02-01-leader"}, "holds no role"),
    ({"kind": "interview_principal", "person": "demo-d01-01-leader"}, "not the principal leader"),
    ({"tasks": [10 ** 9]}, "No task"),
])
def test_bad_measures_are_refused_and_nothing_is_stored(demo_store, change, message):
    s = demo_store
    args = {"kind": "notice", "unit": VILLAGE, "issued_on": _today(s), "document_no": "伊政〔2026〕3号",
            "reason": "火点", **change}
    if args["issued_on"] == "FUTURE":
        args["issued_on"] = _today(s) + dt.timedelta(days=1)
    with pytest.raises((ValidationError, NotFound), match=message):
        services.record_measure(s, services.CLI, **args)
    assert _measures(s) == 0


def test_a_person_alone_gives_the_unit_and_cited_tasks_must_lie_in_it(demo_store):
    s = demo_store
    task = int(s.scalar("SELECT t.id FROM tasks t JOIN cells c ON c.cell = t.cell WHERE c.village_code = ?"
                        " ORDER BY t.id LIMIT 1", [VILLAGE]))
    row = services.record_measure(s, services.CLI, kind="economic_penalty", person="demo-d01-01-leader",
                                  issued_on=_today(s), document_no="伊政〔2026〕4号", reason="罚", amount_yuan="2000",
                                  tasks=[task])
    assert row["unit_code"] == VILLAGE and row["amount_yuan"] == 2000.0 and row["task_ids"] == [task]


def test_a_revocation_is_a_new_record_and_both_remain(demo_store):
    s = demo_store
    head = _head(s)
    first = services.record_measure(s, head, kind="notice", unit=VILLAGE, issued_on=_today(s),
                                    document_no="演乡〔2026〕11号", reason="误录对象")
    revoked = services.revoke_measure(s, head, first["id"], reason="对象有误，撤销")
    assert revoked["kind"] == "revocation" and revoked["revokes"] == first["id"] and revoked["unit_code"] == VILLAGE
    listed = services.list_measures(s, head, unit=VILLAGE).set_index("id")
    assert list(listed.index) == [first["id"], revoked["id"]]
    assert listed.loc[first["id"], "revoked_by"] == revoked["id"] and listed.loc[first["id"], "reason"] == "误录对象"
    actions = [r["action"] for r in s.query("SELECT action FROM audit_log WHERE subject = ? ORDER BY id",
                                            [f"measure:{first['id']}"])]
    assert actions == ["accountability.record", "accountability.revoke"]
    with pytest.raises(Conflict, match="revoked already"):
        services.revoke_measure(s, head, first["id"], reason="再撤")
    with pytest.raises(Conflict, match="is a revocation"):
        services.revoke_measure(s, head, revoked["id"], reason="撤销撤销")
    with pytest.raises(ValidationError, match="reason is missing"):
        second = services.record_measure(s, head, kind="notice", unit=VILLAGE, issued_on=_today(s),
                                         document_no="演乡〔2026〕12号", reason="再录")
        services.revoke_measure(s, head, second["id"], reason=" ")
    # the screen's table shows the measure, its revocation and their standing
    report = services.report_build(s, head, kind="xun", date=_today(s), level="village", unit=TOWNSHIP)
    shown = services.report_measures(s, head, report)
    assert list(shown["状态"])[:2] == [f"已被记录 {revoked['id']} 撤销", f"撤销记录 {first['id']}"]
    # and so does the printable bulletin, the measure's document number with it
    html = services.report_bulletin(s, head, report, with_map=False)
    assert "演乡〔2026〕11号" in html and f"撤销措施 {first['id']}" in html


def test_no_code_changes_or_deletes_a_recorded_measure():
    """Records are only appended: no module of gridwatch updates or deletes them."""
    import re

    for path in (REPO_ROOT / "gridwatch").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(UPDATE|DELETE\s+FROM)\s+accountability_measures", text, re.I), path


@pytest.mark.parametrize("hostile", ["=HYPERLINK(\"http://evil/\",\"x\")", "<script>alert(1)</script>", "@SUM(1)",
                                     "+1", "-1+2"])
def test_hostile_document_numbers_and_reasons_stay_text(demo_store, hostile):
    s = demo_store
    services.record_measure(s, services.CLI, kind="notice", unit=VILLAGE, issued_on=_today(s), document_no=hostile,
                            reason=hostile)
    frame = services.report_dossier(s, services.CLI, unit=VILLAGE)
    files = services.report_dossier_files(s, services.CLI, frame, unit=VILLAGE)
    row = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))[1]
    inert = encode.sheet_cell(hostile)  # a formula's first character gets a leading '
    assert inert != hostile or hostile.startswith("<")
    assert row.count(inert) == 2  # document number and reason
    sheet = openpyxl.load_workbook(io.BytesIO(files["xlsx"])).worksheets[0]
    cells = [c for c in sheet[2] if isinstance(c.value, str) and c.value.endswith(hostile)]
    assert len(cells) == 2 and all(c.data_type == "s" and c.value == inert for c in cells)
    html = files["html"].decode("utf-8")
    assert "<script>" not in html and html.count(encode.html_text(hostile)) == 2


def test_a_fresh_county_shows_no_inferred_measure_until_thresholds_are_set(county, tmp_path):
    s = county
    cell, lat, lng = s.query("SELECT cell, lat, lng FROM cells ORDER BY cell LIMIT 1")[0].values()
    header = ("latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,"
              "frp,daynight")
    lines = [header] + [f"{lat:.5f},{lng:.5f},320.0,1.0,1.0,2025-06-{d:02d},0535,A,80,6.1NRT,300.0,12.0,D"
                        for d in range(1, 10)] + [f"{lat + 0.001:.5f},{lng:.5f},320.0,1.0,1.0,2025-06-0{d},0535,A,80,"
                                                  "6.1NRT,300.0,12.0,D" for d in range(1, 10)]
    path = tmp_path / "fires.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    services.ingest_fire_file(s, services.CLI, path, now=dt.datetime(2025, 6, 10))
    plain = Settings.load(env={}, config_path=None)
    report = services.report_build(s, services.CLI, kind="xun", date="2025-06-05", level="cell", unit="410329",
                                   settings=plain)
    assert int(report.rows.fire_points.sum()) == 18
    assert (report.rows.status == "").all() and (report.rows.deduction_yuan == 0).all()
    assert "没有" in report.rules.threshold_text() or "No accountability" in report.rules.threshold_text("en")
    local = Settings.load(env={}, config_path=None, report_thresholds="notice=5,interview_principal=15",
                          report_deduction_yuan=100.0, rule_documents={"report_thresholds": "伊政〔2025〕9号"})
    report = services.report_build(s, services.CLI, kind="xun", date="2025-06-05", level="cell", unit="410329",
                                   settings=local)
    hit = report.rows[report.rows.status != ""]
    assert list(hit.status) == ["interview_principal"] and list(hit.deduction_yuan) == [1800.0]
    assert "伊政〔2025〕9号" in report.rules.threshold_text() and "本地设置" in report.rules.threshold_text()
    assert list(services.report_table(report).columns).count("建议措施（本地设置）") == 1


def test_the_command_line_adds_lists_and_revokes(demo_copy, capsys):
    common = ["--json", "--db", demo_copy]
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    assert main(["accountability", "add", "interview_principal", "--unit", VILLAGE, "--person", "demo-d01-01-leader",
                 "--date", today, "--document", "伊政〔2026〕5号", "--reason", "r", *common]) != 0
    capsys.readouterr()
    assert main(["accountability", "add", "notice", "--unit", VILLAGE, "--date", today, "--document",
                 "伊政〔2026〕5号", "--reason", "火点", *common]) == 0
    made = json.loads(capsys.readouterr().out)
    assert main(["accountability", "revoke", str(made["id"]), "--reason", "误录", *common]) == 0
    capsys.readouterr()
    assert main(["accountability", "list", "--unit", TOWNSHIP, *common]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["notice", "revocation"] and rows[0]["revoked_by"] == rows[1]["id"]


PAGE = REPO_ROOT / "pages" / "reports.py"


def test_the_screen_records_a_measure_and_lists_it(app_db):
    with open_sealed(str(app_db)) as s:
        _head(s)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    with open_sealed(str(app_db)) as s:
        at.session_state["token"] = services.sign_in(s, "d01head", PASSWORD).token
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="rep_unit").value == TOWNSHIP
    assert any(i.value == "本时段尚未录入问责措施。" for i in at.info)
    # the demo database's thresholds are demo settings: what they infer is a suggestion (建议)
    assert any("建议" in m.value for m in at.markdown)
    at.selectbox(key="rep_m_unit").set_value(VILLAGE)
    at.selectbox(key="rep_m_kind").set_value("interview_grid_leader")
    at.text_input(key="rep_m_document").set_value("演乡〔2026〕20号")
    at.text_input(key="rep_m_person").set_value("demo-d01-01-leader")
    at.text_area(key="rep_m_reason").set_value("=1+1 火点处置迟缓")
    at.get("form_submit_button")[0].click()
    at.run()
    assert not at.exception, at.exception
    assert any("演乡〔2026〕20号" in m.value for m in at.success)
    table = [d.value for d in at.dataframe if "文号" in d.value.columns][0]
    assert list(table["文号"]) == ["演乡〔2026〕20号"] and list(table["原因"]) == ["=1+1 火点处置迟缓"]
    assert table["当事人"].iloc[0].endswith("（网格长（第一责任人））")
    # the grid leader of the township sees it and has no form
    leader = signed_in(app_db, "leader", PAGE).run()
    assert not leader.exception, leader.exception
    assert not leader.get("form_submit_button")
    assert any("文号" in d.value.columns for d in leader.dataframe)
