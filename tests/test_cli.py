"""The command line, run in-process with ``main([...], out=...)`` (and once as ``python -m gridwatch``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import h3
import pytest
import shapely

from gridwatch.cli import build_parser, main
from gridwatch.audit import open_sealed

from conftest import BACKEND

REPO = Path(__file__).resolve().parents[1]
COUNTY = "410329"


def _strict_json(text: str):
    """Parse JSON refusing NaN and Infinity, which are not JSON."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No settings from the developer's environment or a gridwatch.toml in the working directory."""
    for key in list(os.environ):
        # not the tests' own: their settings, and the folder of the test databases' audit keys (conftest)
        if key.startswith("GRIDWATCH_") and not key.startswith("GRIDWATCH_TEST_") and key != "GRIDWATCH_AUDIT_DIR":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db(demo_copy) -> str:
    """A private copy of the demo database (a file, or a PostgreSQL database with GRIDWATCH_TEST_BACKEND)."""
    return demo_copy


def run(*argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = main(list(argv), out=lines.append)
    return status, lines


def run_json(*argv: str):
    status, lines = run(*argv, "--json")
    assert status == 0, lines
    assert len(lines) == 1
    return _strict_json(lines[0])


# -- help ------------------------------------------------------------------------------------


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every command path of the parser: (), ('init',), ('grid',), ('grid', 'stats'), …"""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


COMMANDS = list(_command_paths(build_parser()))


def test_the_command_tree_is_complete():
    leaves = {" ".join(p) for p in COMMANDS}
    assert {"init", "grid stats", "grid rebuild", "responsible", "coverage", "boundaries load", "people import",
            "people list"} <= leaves


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "(top)")
def test_every_command_has_help(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"], out=lambda _: None)
    assert info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: python -m gridwatch" + "".join(f" {p}" for p in path))
    if path and "COMMAND ..." not in printed.splitlines()[0]:  # a command, not a group
        assert "--db" in printed and "--json" in printed


def test_python_dash_m_gridwatch_help():
    result = subprocess.run([sys.executable, "-m", "gridwatch", "--help"], capture_output=True, text=True, cwd=REPO,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m gridwatch")
    for command in ("init", "grid", "responsible", "coverage", "boundaries", "people"):
        assert command in result.stdout


def test_a_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([], out=lambda _: None)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


# -- commands on the demo database ------------------------------------------------------------


def test_grid_stats(db):
    stats = run_json("grid", "stats", "--db", db)
    assert {"region", "resolution", "cells", "units"} <= set(stats)
    assert stats["region"] == COUNTY and stats["resolution"] == 8
    assert stats["units"]["township"] == 14
    assert stats["units"]["county"] == 1
    assert stats["cells"] > 1000


def test_grid_stats_human_readable(db, capsys):
    status, lines = run("grid", "stats", "--db", db, "--lang", "en")
    assert status == 0
    text = "\n".join(lines)
    assert "410329" in text and "伊川县" in text and "township: 14" in text
    assert capsys.readouterr().err.startswith("Done in")


def test_responsible_at_a_point(db):
    result = run_json("responsible", "--lat", "34.42", "--lng", "112.42", "--db", db)
    assert result["cell"] == h3.latlng_to_cell(34.42, 112.42, 8)
    assert result["owners"]["county"]["code"] == COUNTY
    assert result["chain"]
    for entry in result["chain"]:
        assert {"level", "unit_code", "unit_name", "role", "person"} <= set(entry)
    assert result["chain"][0]["role"] == "inspector"


@pytest.mark.parametrize("lang", [None, "en"])
def test_responsible_outside_the_region_exits_3(db, capsys, lang):
    extra = ["--lang", lang] if lang else []
    status, lines = run("responsible", "--lat", "34.75", "--lng", "113.62", "--db", db, *extra)
    assert status == 3
    assert lines == []
    err = capsys.readouterr().err
    assert "34.75" in err and "113.62" in err
    if lang == "en":
        assert "outside the region 410329" in err

    status, lines = run("responsible", "--lat", "34.75", "--lng", "113.62", "--db", db, "--json", *extra)
    assert status == 3
    payload = _strict_json(lines[0])
    assert payload["kind"] == "OutsideRegion" and "113.62" in payload["error"]


def test_coverage(db):
    report = run_json("coverage", "--db", db)
    assert report["region"] == COUNTY
    assert len(report["units_without_grid_leader"]) == 2
    assert report["cells_without_inspector"]["count"] > 0
    assert [p["person_key"] for p in report["people_without_unit"]] == ["demo-unassigned"]


def test_people_list_is_strict_json(db):
    people = run_json("people", "list", "--db", db)
    assert {"person_key", "name", "role", "unit_code", "cell"} <= set(people[0])
    unassigned = [p for p in people if p["person_key"] == "demo-unassigned"]
    assert unassigned == [{**unassigned[0], "role": None, "unit_code": None, "cell": None}]
    assert len({p["person_key"] for p in people}) > 300


def test_people_import(db, tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("person_key,name,phone,role,unit_code,cell\n"
                   f"cli-1,命令行甲,,inspector,{COUNTY},\ncli-2,命令行乙,,,,\n", encoding="utf-8-sig")
    assert run_json("people", "import", str(csv), "--db", db) == {"people": 2, "assignments": 1, "unchanged": 0,
                                                                   "conflicts": []}
    assert run_json("people", "import", str(csv), "--db", db) == {"people": 0, "assignments": 0, "unchanged": 1,
                                                                   "conflicts": []}
    keys = {p["person_key"]: p for p in run_json("people", "list", "--db", db)}
    assert keys["cli-1"]["name"] == "命令行甲" and keys["cli-1"]["role"] == "inspector"


def test_people_import_of_a_bad_file_exits_2(db, tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text(f"person_key,name,phone,role,unit_code,cell\ncli-1,甲,,boss,{COUNTY},\n", encoding="utf-8")
    status, lines = run("people", "import", str(csv), "--db", db, "--lang", "en")
    assert status == 2 and lines == []
    err = capsys.readouterr().err
    assert "bad.csv" in err and "line 2" in err and "'boss'" in err


# -- init and boundaries on a new database ----------------------------------------------------


def test_init_then_boundaries_load(tmp_path):
    db = str(tmp_path / "new.duckdb")
    created = run_json("init", "--region", COUNTY, "--db", db)
    assert created["region"] == COUNTY and created["demo"] is None
    assert "township" not in created["units"]

    with open_sealed(db) as store:
        county = shapely.from_wkb(bytes(store.scalar("SELECT ST_AsWKB(geom) FROM units WHERE code = ?", [COUNTY])))
    x0, y0, x1, y1 = county.bounds
    mid = (x0 + x1) / 2
    halves = [shapely.clip_by_rect(county, x0, y0, mid, y1), shapely.clip_by_rect(county, mid, y0, x1, y1)]
    features = [
        {"type": "Feature", "properties": {"XZDM": f"41032900{i + 1}", "XZMC": name, "FJDM": COUNTY},
         "geometry": json.loads(shapely.to_geojson(g))}
        for i, (name, g) in enumerate(zip(["西乡", "东乡"], halves))
    ]
    path = tmp_path / "halves.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                    encoding="utf-8")

    result = run_json("boundaries", "load", str(path), "--level", "township", "--code-field", "XZDM",
                      "--name-field", "XZMC", "--parent-field", "FJDM", "--db", db)
    assert result["file"] == "halves.geojson" and result["units"] == 2 and result["crs"] == "EPSG:4326"
    assert result["grid"]["moved"] == {"township": created["cells"]}
    assert run_json("grid", "stats", "--db", db)["units"]["township"] == 2
    with open_sealed(db) as store:
        # the command line is a system actor, under a name no account can take
        assert store.scalar("SELECT actor FROM audit_log WHERE action = 'boundaries.load'") == "system:cli"


def test_boundaries_load_of_a_missing_field_exits_2(tmp_path, db, capsys):
    path = tmp_path / "x.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"A": "1"},
        "geometry": {"type": "Polygon", "coordinates": [[[112.4, 34.4], [112.41, 34.4], [112.41, 34.41],
                                                         [112.4, 34.4]]]}}]}), encoding="utf-8")
    status, _ = run("boundaries", "load", str(path), "--level", "township", "--code-field", "XZDM",
                    "--name-field", "XZMC", "--db", db, "--lang", "en")
    assert status == 2
    err = capsys.readouterr().err
    assert "x.geojson" in err and "'XZDM'" in err and "A" in err


# -- where the database comes from ------------------------------------------------------------


def test_db_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_DB", db)
    assert run_json("grid", "stats")["units"]["township"] == 14


def test_db_flag_wins_over_the_environment(db, monkeypatch, tmp_path):
    other = tmp_path / "other.duckdb"
    monkeypatch.setenv("GRIDWATCH_DB", str(other))
    assert run_json("grid", "stats", "--db", db)["region"] == COUNTY
    assert not other.exists()


def test_a_database_without_a_region_says_what_to_do(tmp_path, capsys):
    status, _ = run("grid", "stats", "--db", str(tmp_path / "empty.duckdb"), "--lang", "en")
    assert status == 2
    assert "init --region" in capsys.readouterr().err


@pytest.mark.skipif(BACKEND == "postgres", reason="the DuckDB file lock: PostgreSQL serves many processes at once")
def test_a_database_in_use_by_another_process_exits_2(db, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
         "sys.stdin.read()", db],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        status, _ = run("grid", "stats", "--db", db, "--lang", "en")
        assert status == 2
        err = capsys.readouterr().err
        # the file's name and what to do; no folder, no process id (they tell an outsider about the server)
        assert Path(db).name in err and "in use by another gridwatch process" in err
        assert str(Path(db).parent) not in err and str(holder.pid) not in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
