"""Hostile names and notes through every core sink: nothing executable, linked or live comes out the other side.

A plant, a unit, a person or a note named like an attack is fed through the heat-supply map, the ranking CSV and
Excel file, the dossier files and the HTML bulletin; the output must show the text and run none of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import string
from collections import Counter
from html.parser import HTMLParser

import folium
import h3
import numpy as np
import openpyxl
import pandas as pd
import pytest

from gridwatch import bulletin, encode, maps, reports
from gridwatch.periods import xun
from gridwatch.storage import open_store

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '=HYPERLINK("http://evil/","x")',
    "[click](http://evil)",
    "![t](http://evil/p.png)",
    "@SUM(1)",
    "+1",
    "-1+2",
    "\t=1",
    "＝1+1",
    "\r=1",
    "${alert(1)}`",
]
BENIGN = "伊川县白沙镇"
PARENT = "862a10727ffffff"  # a res-6 cell in 伊川县
#: first characters that make a spreadsheet evaluate a cell
RISKY = tuple("=+-@\t\r＝＋－＠")


def _risky(text: str) -> bool:
    return text.lstrip(" \u3000\xa0").startswith(RISKY)


class _Tags(HTMLParser):
    """The start tags of a document, counted by name, and the document's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attributes: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _tags(document: str) -> _Tags:
    parser = _Tags()
    parser.feed(document)
    parser.close()
    return parser


def _as_script_sees_it(document: str) -> str:
    """The document with JSON's escapes undone: what a script sets as ``innerHTML`` when it reads the data."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), document)


def _same_markup(hostile: str, benign: str) -> None:
    """The hostile rendering has the very tags and attributes of the benign one: none came from the data."""
    bad, good = _tags(hostile), _tags(benign)
    assert bad.tags == good.tags
    assert sorted(bad.attributes) == sorted(good.attributes)
    assert "onerror" not in bad.attributes


# -- a small region whose townships carry the hostile names ------------------------------------------------------


@pytest.fixture(scope="module")
def region():
    """A county of one township per hostile name (and a benign one), three cells each, no fires."""
    with open_store(":memory:") as store:
        store.execute("INSERT INTO units (code, name, level) VALUES ('410329', '伊川县', 'county')")
        kids = sorted(h3.cell_to_children(PARENT, 8))
        for i, name in enumerate([BENIGN, *HOSTILE]):
            code = f"410329-D{i:02d}"
            store.execute("INSERT INTO units (code, name, level, parent_code, area_km2)"
                          " VALUES (?, ?, 'township', '410329', 10)", [code, name])
            for cell in kids[i * 3:(i + 1) * 3]:
                lat, lng = h3.cell_to_latlng(cell)
                store.execute("INSERT INTO cells (cell, lat, lng, county_code, township_code) VALUES (?, ?, ?, ?, ?)",
                              [h3.str_to_int(cell), lat, lng, "410329", code])
        yield store


@pytest.fixture(scope="module")
def report(region):
    """The ten-day ranking of the townships; the hostile ones also reach the accountability list."""
    built = reports.build_report(region, xun(dt.date(2025, 6, 12)), level="township", unit="410329",
                                 now=dt.datetime(2025, 6, 30))
    hostile = built.rows.unit_name != BENIGN
    built.rows.loc[hostile, "status"] = "notice"
    built.rows.loc[hostile, "affected"] = built.rows.unit_name[hostile]  # people named like the attack
    built.rows["first_fire"] = hostile
    built.rows["first_fire_at"] = "2025-06-12 13:35"
    return built


def _row_of(frame: pd.DataFrame, name: str) -> int:
    column = reports.column_labels("zh_CN")["unit_name"]
    return int(frame.index[frame[column] == name][0])


# -- spreadsheets -----------------------------------------------------------------------------------------------


def _csv_cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _check_csv(data: bytes, hostile: str) -> None:
    cells = _csv_cells(data)
    assert not [c for row in cells for c in row if _risky(c)]  # no cell a spreadsheet would evaluate
    found = [c for row in cells for c in row if c.removeprefix("'") == hostile]
    assert found, "the text is still there"
    assert all(c == ("'" + hostile if _risky(hostile) else hostile) for c in found)


def _check_xlsx(data: bytes, hostile: str) -> None:
    book = openpyxl.load_workbook(io.BytesIO(data))
    risky = _risky(hostile)
    hostile = hostile.replace("\r", "\n")  # XML reads a carriage return back as a line feed
    seen = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.data_type == "s" and not _risky(cell.value), (cell.coordinate, cell.value)
                    if cell.value.removeprefix("'") == hostile:
                        seen.append(cell.value)
    assert seen and all(v == ("'" + hostile if risky else hostile) for v in seen)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_ranking_csv_holds_no_formula(report, hostile):
    frame = bulletin.ranking_frame(report)
    data = bulletin.to_csv(frame)
    _check_csv(data, hostile)
    # numbers stay numbers
    rank = reports.column_labels("zh_CN")["rank"]
    assert _csv_cells(data)[1 + _row_of(frame, hostile)][list(frame.columns).index(rank)].isdigit()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_ranking_workbook_holds_text_not_formulas(report, hostile):
    data = bulletin.report_xlsx(report)
    _check_xlsx(data, hostile)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    frame = bulletin.ranking_frame(report)
    rank = sheet.cell(row=2 + _row_of(frame, hostile), column=1)
    assert rank.data_type == "n" and isinstance(rank.value, int)


def _dossier(hostile: str) -> pd.DataFrame:
    events = pd.DataFrame({
        "task_id": [7, 7], "kind": ["fire_check", "fire_check"], "title": [hostile, "火点核查"],
        "cell": ["882a10725bfffff"] * 2, "village": [hostile, "白沙村"],
        "happened_at": ["2025-06-12 13:40", "2025-06-12 15:10"], "from_state": [None, "in_progress"],
        "to_state": ["in_progress", "reported"], "actor": [hostile, "insp"], "finding": ["", "false_alarm"],
        "note": [hostile, f"see {hostile}"], "flags": ["", ""], "assignee": [hostile, hostile]})
    return bulletin.dossier_frame(events, "zh_CN")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_dossier_files_hold_no_formula_and_no_markup(hostile):
    frame = _dossier(hostile)
    _check_csv(bulletin.to_csv(frame), hostile)
    _check_xlsx(bulletin.to_xlsx({"案卷": frame, "记录链": pd.DataFrame({"链头": [12, "ab" * 32]})}), hostile)
    page = bulletin.dossier_html(f"{hostile} 案卷", frame, note=hostile, chain="12: " + "ab" * 32)
    _same_markup(page, bulletin.dossier_html(f"{BENIGN} 案卷", _dossier(BENIGN), note=BENIGN,
                                             chain="12: " + "ab" * 32))
    assert hostile.strip() in "".join(_tags(page).text)  # shown as text


# -- the HTML bulletin -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_bulletin_shows_the_names_as_text(report, hostile):
    page = bulletin.bulletin_html(report, map_svg=maps.cells_svg([PARENT], ["#fee5d9"], titles=[hostile]))
    benign = bulletin.bulletin_html(report, map_svg=maps.cells_svg([PARENT], ["#fee5d9"], titles=[BENIGN]))
    assert _tags(page).tags["img"] == _tags(page).tags["script"] == 0
    _same_markup(page, benign)
    assert "".join(_tags(page).text).count(hostile.strip()) >= 3  # the table, the accountability list, the map


# -- the heat-supply map ----------------------------------------------------------------------------------------


def _heat_map(name: str, label: str) -> str:
    ring = [[112.40 + 0.1 * dx, 34.40 + 0.1 * dy] for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))]
    radii = [{"plant_id": "p1", "name": name, "capacity_mw": 300.0, "radius_km": 20.0, "ring": ring},
             {"plant_id": "p2", "name": BENIGN + "热电厂", "capacity_mw": 600.0, "radius_km": 30.0, "ring": ring}]
    m = maps.base_map(bounds=(34.3, 112.3, 34.6, 112.6), assets="/app/static/vendor")
    group = folium.FeatureGroup(name="gridwatch").add_to(m)
    maps.radius_layer(radii, labels=(label, "MW")).add_to(group)
    maps.PointLayer([34.45, 112.45], colour="#d62728", label=name, radius=5).add_to(group)
    cells = np.array([h3.str_to_int(c) for c in h3.cell_to_children(PARENT, 8)], dtype=np.uint64)
    maps.CellLayer(maps.cell_layer_data(cells, np.zeros(len(cells), dtype=int), grid_resolution=8),
                   labels=[name] * 4, colours=list(maps.STATUS_COLOURS.values())).add_to(group)
    return m.get_root().render()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_heat_supply_map_runs_nothing_from_a_plant_name(hostile):
    page, benign = _heat_map(hostile, hostile), _heat_map(BENIGN, "电厂")
    _same_markup(page, benign)  # as the browser parses the page
    script, calm = _as_script_sees_it(page), _as_script_sees_it(benign)  # as the tooltips set innerHTML
    for live in ("<img", "<script", "${alert", "`"):
        assert script.count(live) == calm.count(live), live
    properties = [json.loads(m.group(0))["properties"] for m in re.finditer(r'\{"geometry".*?"type": "Feature"\}',
                                                                             page)]
    assert encode.map_text(hostile) in [p["name"] for p in properties]


# -- markdown, for the pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", [*HOSTILE, "**bold** _it_ `code` # h ~~s~~ :red[x] $x$ www.evil.example a@b.c"])
def test_markdown_text_leaves_no_markup_and_reads_the_same(hostile):
    shown = encode.markdown_text(hostile)
    # every ASCII punctuation character is escaped, so markdown makes no link, image, emphasis, HTML or math
    assert not re.search(r"(?<!\\)(?:\\\\)*[" + re.escape(string.punctuation.replace("\\", "")) + "]",
                         re.sub(r"\\[" + re.escape(string.punctuation) + "]", "", shown))
    # and markdown's unescaping gives back the text as typed
    assert re.sub(r"\\([" + re.escape(string.punctuation) + "])", r"\1", shown) == hostile
