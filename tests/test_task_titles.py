"""Task titles as a message key and values: stored when tasks open, translated where they are shown."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridwatch import bulletin, reports, workflow
from gridwatch.audit import open_sealed
from gridwatch.cli import main
from gridwatch.i18n import TASK_TITLES, gettext, task_title, task_title_columns, task_titles
from gridwatch.storage import open_store

#: the Chinese titles as the domain formed them before title keys, with the values that make them
BEFORE = [
    ("fire_check", {"time": "06-10 10:50", "satellite": "Terra", "points": 2}, "卫星火点核查 06-10 10:50 Terra ×2"),
    ("routine_patrol", {}, "例行巡查"),
    ("bare_land_survey", {"area_m2": 1234, "date": "2026-04-10"}, "裸地核查 1234㎡（2026-04-10）"),
    ("bare_greening", {"first_seen": "2026-01-05", "area_m2": 987}, "裸地超期绿化督办 首见2026-01-05 987㎡"),
    ("boiler_check", {"name": "某厂", "capacity_tph": 20.0, "distance_km": 12.3, "plant": "伊川电厂"},
     "燃煤锅炉核查 某厂 20.0t/h，距伊川电厂 12.3km"),
    ("coal_sale_point", {"name": "老王煤店"}, "散煤销售点检查：老王煤店"),
    ("coal_recheck", {}, "禁燃区散煤回头看"),
]


@pytest.mark.parametrize(("key", "values", "before"), BEFORE, ids=[k for k, _, _ in BEFORE])
def test_the_stored_title_reads_as_the_domain_wrote_it_before(key, values, before):
    made = task_title_columns(key, {k: [v, v] for k, v in values.items()}, n=2)
    assert made.key == key and made.title.to_pylist() == [before, before]
    row = {"title_key": key, "title_args": made.args[0].as_py(), "title": before, "kind": "x"}
    assert json.loads(row["title_args"]) == {k: str(v) for k, v in values.items()}
    assert task_title(row, "zh_CN") == before
    english = task_title(row, "en")
    assert english == TASK_TITLES[key].format(**{k: str(v) for k, v in values.items()})
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in english.replace("某厂", "").replace("伊川电厂", "")
                   .replace("老王煤店", ""))  # English words; only the names stay Chinese


def test_every_title_key_has_a_chinese_message():
    assert all(gettext(message, "zh_CN") != message for message in TASK_TITLES.values())


def test_values_with_quotes_backslashes_and_line_breaks_survive_as_json():
    names = ['老王"煤店"', "a\\b", "第一行\n第二行", "plain"]
    made = task_title_columns("coal_sale_point", {"name": names})
    assert [json.loads(a)["name"] for a in made.args.to_pylist()] == names
    assert [task_title({"title_key": "coal_sale_point", "title_args": a}, "en") for a in made.args.to_pylist()] == [
        f"Loose coal sale point check: {n}" for n in names]


def test_missing_values_are_empty_and_lengths_must_agree():
    made = task_title_columns("boiler_check", {"name": ["B1"], "capacity_tph": [20.0], "distance_km": [1.5],
                                               "plant": [None]})
    assert made.title.to_pylist() == ["燃煤锅炉核查 B1 20.0t/h，距 1.5km"]
    with pytest.raises(ValueError, match="differ in length"):
        task_title_columns("coal_sale_point", {"name": ["a", "b"]}, n=3)
    with pytest.raises(KeyError):
        task_title_columns("no_such_title", n=1)


def test_a_task_without_a_key_shows_its_stored_title_or_its_kind():
    frame = pd.DataFrame({"title_key": ["", None, "fire_check", "fire_check"],
                          "title_args": ["{}", None, "not json", '{"time": "x"}'],
                          "title": ["旧标题", "", "存的标题", "存的"],
                          "kind": ["manual", "manual", "fire_check", "fire_check"]},
                         index=[5, 7, 9, 11])
    shown = task_titles(frame, "en")
    assert shown.index.tolist() == [5, 7, 9, 11]
    assert shown.tolist() == ["旧标题", "manual", "存的标题", "存的"]  # values that do not fill the message: stored
    assert task_titles(frame.iloc[:0], "en").tolist() == []


# -- stored and shown ------------------------------------------------------------------------------------------


def test_dispatched_and_generated_tasks_carry_their_key_and_show_english_to_an_english_user(demo_store):
    tasks = workflow.list_tasks(demo_store, limit=100_000)
    assert {"fire_check", "routine_patrol"} <= set(tasks.title_key) and tasks.title_key.ne("").all()
    chinese = task_titles(tasks, "zh_CN")
    assert (chinese == tasks.title).all()  # Chinese users see what they saw before
    english = task_titles(tasks, "en")
    fires = tasks.kind.eq("fire_check")
    assert english[fires].str.match(r"Satellite fire point check \d\d-\d\d \d\d:\d\d (Terra|Aqua) ×\d+$").all()
    assert english[tasks.kind.eq("routine_patrol")].eq("Routine patrol").all()


def test_the_dossier_export_is_in_its_language(demo_store):
    unit = demo_store.scalar("SELECT village_code FROM cells c JOIN tasks t ON t.cell = c.cell"
                             " WHERE t.kind = 'fire_check' LIMIT 1")
    events = reports.dossier_events(demo_store, unit=unit)
    english = bulletin.dossier_frame(events, "en")
    chinese = bulletin.dossier_frame(events, "zh_CN")
    assert english["Title"].str.startswith("Satellite fire point check").any()
    assert list(chinese[gettext("Title", "zh_CN")]) == list(events.title)
    assert "title_key" not in english.columns and "title_args" not in english.columns


def test_the_command_line_lists_titles_in_its_language(demo_copy):
    out: list[str] = []
    assert main(["tasks", "list", "--kind", "fire_check", "--limit", "3", "--json", "--lang", "en", "--db", demo_copy],
                out=out.append) == 0
    rows = json.loads(out[-1])
    assert rows and all(r["title"].startswith("Satellite fire point check") for r in rows)
    assert not {"title_key", "title_args"} & set(rows[0])
    assert main(["tasks", "show", str(rows[0]["id"]), "--json", "--lang", "zh_CN", "--db", demo_copy],
                out=out.append) == 0
    shown = json.loads(out[-1])
    assert shown["title"].startswith("卫星火点核查") and "title_key" not in shown


# -- tasks opened before the keys (migration 0014) -----------------------------------------------------------------

OLD_TASKS = [  # kind, source_kind, stored title, the key 0014 reads from it ('' for none)
    ("fire_check", "incident", "卫星火点核查 06-10 10:50 Terra ×2", "fire_check"),
    ("fire_check", "incident", "卫星火点核查 06-10 10:50 Some Sat ×2", ""),  # a name with a space: not read
    ("routine_patrol", "cadence", "例行巡查", "routine_patrol"),
    ("coal_check", "cadence", "禁燃区散煤回头看", "coal_recheck"),
    ("coal_check", "coal_sale_point", '散煤销售点检查：老王"煤店"', "coal_sale_point"),
    ("bare_land_survey", "bare_patch", "裸地核查 1234㎡（2026-04-10）", "bare_land_survey"),
    ("bare_land_survey", "bare_greening", "裸地超期绿化督办 首见2026-01-05 987㎡", "bare_greening"),
    ("boiler_check", "boiler", "燃煤锅炉核查 某厂 20.0t/h，距伊川电厂 12.3km", ""),
    ("manual", "test", "", ""),
]


@pytest.fixture(params=["duckdb", "postgres"])
def before_0014(request, monkeypatch):
    """A store migrated up to 0013 (DuckDB in memory, or a fresh PostgreSQL database)."""
    import gridwatch.storage.base as base

    every = base.list_migrations()
    monkeypatch.setattr(base, "list_migrations", lambda: [m for m in every if m[0] < 14])
    url = ":memory:" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    store = open_store(url)
    monkeypatch.setattr(base, "list_migrations", lambda: every)
    yield store
    store.close()


def test_migration_0014_reads_keys_back_only_from_titles_it_can_render_again(before_0014):
    store = before_0014
    for kind, source_kind, title, _ in OLD_TASKS:
        store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, created_at, due_at,"
                      " title) VALUES (?, 1001, ?, 'k', 2, 'open', '2026-06-01 06:00', '2026-06-01 08:00', ?)",
                      [kind, source_kind, title])
    assert store.migrate()[0] == "0014_task_title_keys"  # then any later migrations
    rows = store.query_df("SELECT kind, title, title_key, title_args FROM tasks ORDER BY id")
    assert rows.title_key.tolist() == [key for *_, key in OLD_TASKS]
    assert all(isinstance(json.loads(a), dict) for a in rows.title_args)
    unchanged = rows.title.where(rows.title != "", gettext("manual", "zh_CN"))
    assert task_titles(rows, "zh_CN").tolist() == unchanged.tolist()  # Chinese users see what they saw before
    english = task_titles(rows, "en").tolist()
    assert english[0] == "Satellite fire point check 06-10 10:50 Terra ×2"
    assert english[4] == 'Loose coal sale point check: 老王"煤店"'
    assert english[5] == "Bare land survey 1234 m² (2026-04-10)"
    assert english[1] == OLD_TASKS[1][2] and english[7] == OLD_TASKS[7][2]  # not read back: the stored title
    with pytest.raises(Exception):  # noqa: B017 - NOT NULL, whatever the backend calls the error
        with store.transaction():
            store.execute("UPDATE tasks SET title_key = NULL")


def test_a_store_opened_for_use_has_the_columns(tmp_path):
    with open_sealed(str(tmp_path / "t.duckdb")) as store:
        store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, created_at, due_at)"
                      " VALUES ('manual', 1, 'x', '1', 2, 'open', '2026-06-01 06:00', '2026-06-01 08:00')")
        assert store.query("SELECT title, title_key, title_args FROM tasks") == [
            {"title": "", "title_key": "", "title_args": "{}"}]
        assert np.all(task_titles(store.query_df("SELECT * FROM tasks"), "en") == ["manual"])


# -- the screens ----------------------------------------------------------------------------------------------


def _task_buttons(at) -> list[str]:
    return [b.label for b in at.button if b.key and b.key.startswith("task-")]


def test_an_inspector_sees_the_task_list_in_the_chosen_language(app_db):
    from conftest import signed_in

    from gridwatch.config import REPO_ROOT

    chinese = signed_in(app_db, "inspector", REPO_ROOT / "app.py").run()
    assert not chinese.exception, chinese.exception
    english = signed_in(app_db, "inspector", REPO_ROOT / "app.py", lang="en").run()
    assert not english.exception, english.exception
    zh, en = _task_buttons(chinese), _task_buttons(english)
    assert zh and len(zh) == len(en)
    assert any(("卫星火点核查" in label or "例行巡查" in label) for label in zh)
    assert not any(("卫星火点核查" in label or "例行巡查" in label) for label in en)
    assert any(("Satellite fire point check" in label or "Routine patrol" in label) for label in en)


def test_the_fire_page_lists_english_titles_in_english(app_db):
    from streamlit.testing.v1 import AppTest

    from gridwatch.config import REPO_ROOT

    from conftest import signed_in

    at = signed_in(app_db, "county", REPO_ROOT / "pages" / "fires.py", lang="en").run()
    assert not at.exception, at.exception
    tasks = at.dataframe[0].value
    assert len(tasks) > 30 and tasks.iloc[:, 0].str.startswith("Satellite fire point check").all()


def test_the_heat_source_check_title_in_both_languages():
    made = task_title_columns("heat_source_check", {"days": ["5"], "window": ["60"]})
    assert made.title.to_pylist() == ["疑似固定热源 — 请核实：60天内有5天出现火点"]
    row = {"title_key": "heat_source_check", "title_args": made.args[0].as_py(), "kind": "heat_source_check"}
    assert task_title(row, "en") == "Possible static heat source — please verify: fire on 5 days within 60 days"
