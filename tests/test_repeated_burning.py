"""Repeated burning counted and dispatched, the window anchored on the ingest's clock, impossible dates refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gridwatch import services
from gridwatch.storage import Store

HEADER = ("latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,"
          "daynight")
#: a field in 伊川县 (the demo county), and another one well away from it
FIELD = (34.30, 112.30)
OTHER = (34.45, 112.40)
NOW = dt.datetime(2024, 6, 10, 12, 0)


def _row(lat: float, lng: float, day: str, hhmm: str = "0535", sat: str = "A") -> str:
    return f"{lat},{lng},320.1,1.0,1.0,{day},{hhmm},{sat},80,6.1NRT,295.0,10.0,D"


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _field_rows() -> list[str]:
    """The field burning on five days within sixty (2024-04-20 … 2024-06-05), and a one-off elsewhere."""
    days = ["2024-04-20", "2024-05-05", "2024-05-20", "2024-05-28", "2024-06-05"]
    return [_row(*FIELD, d) for d in days] + [_row(*OTHER, "2024-06-01", "0250", "T")]


def _fire_tasks(store: Store) -> list[tuple]:
    return [tuple(r.values()) for r in store.query(
        "SELECT cell, title_key, state, priority FROM tasks WHERE kind = 'fire_check' ORDER BY cell, id")]


def test_a_field_burning_on_five_days_in_sixty_is_counted_every_time_and_dispatched(county, tmp_path):
    before = county.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check'")
    result = services.ingest_fire_file(county, services.CLI, _write(tmp_path / "field.csv", _field_rows()), now=NOW)
    assert result["accepted"] == 6 and result["rejected"] == 0
    assert result["not_dispatched"] == {}
    assert result["flagged"] == {"possible_static_source": 5}
    assert result["incidents"] == 6 and result["tasks_created"] == 6
    assert county.scalar("SELECT count(*) FROM tasks WHERE kind = 'fire_check'") == before + 6
    # and the field's cell is asked about once: 疑似固定热源 — 请核实 (tests/test_static_heat_sources.py)
    assert result["checks_opened"] == 1
    assert county.scalar("SELECT count(*) FROM tasks WHERE kind = 'heat_source_check'") == 1
    summary = services.fire_summary(county, services.CLI)
    assert summary["dispatched"] == summary["in_region"] == 6 and summary["not_dispatched"] == {}
    days = services.fire_days(county, services.CLI)
    assert int(days.detections.sum()) == int(days.dispatched.sum()) == 6


def test_later_files_count_stored_days_in_the_window_ending_now(county, tmp_path):
    rows = _field_rows()
    first = services.ingest_fire_file(county, services.CLI, _write(tmp_path / "a.csv", rows[:3]), now=NOW)
    assert first["flagged"] == {}  # three days: not yet repeated burning
    second = services.ingest_fire_file(county, services.CLI, _write(tmp_path / "b.csv", rows[3:]), now=NOW)
    assert second["flagged"] == {"possible_static_source": 2} and second["tasks_created"] == 3
    assert (first["checks_opened"], second["checks_opened"]) == (0, 1)
    # months later the same days lie outside the window: nothing is flagged, everything is still dispatched
    late = [_row(*FIELD, d) for d in ("2024-04-21", "2024-05-06")]
    third = services.ingest_fire_file(county, services.CLI, _write(tmp_path / "c.csv", late),
                                      now=NOW + dt.timedelta(days=200))
    assert third["flagged"] == {} and third["tasks_created"] == 2


def test_a_file_with_one_future_row_gives_the_same_tasks_as_without_it(county, tmp_path):
    plain = _write(tmp_path / "plain.csv", _field_rows())
    rows = _field_rows()
    future = _write(tmp_path / "future.csv", [*rows[:2], _row(*OTHER, "2099-01-01"), *rows[2:]])
    services.ingest_fire_file(county, services.CLI, plain, now=NOW)
    expected = _fire_tasks(county)
    county.execute("DELETE FROM task_events")
    county.execute("DELETE FROM tasks")
    county.execute("DELETE FROM fire_incidents")
    county.execute("DELETE FROM fire_detections")
    result = services.ingest_fire_file(county, services.CLI, future, now=NOW)
    assert result["rejected"] == 1 and result["accepted"] == 6
    assert services.fire_rejects(county, services.CLI, result["batch"]).reason.tolist() == ["acquired_in_future"]
    assert _fire_tasks(county) == expected


def test_rows_dated_2030_2099_or_1970_are_refused_never_stored(county, tmp_path):
    rows = [_row(*FIELD, "2024-06-01"), _row(*FIELD, "2030-01-01"), _row(*FIELD, "2099-12-31", "2359"),
            _row(*FIELD, "1970-01-01", "0000")]
    result = services.ingest_fire_file(county, services.CLI, _write(tmp_path / "dates.csv", rows), now=NOW)
    assert result["accepted"] == 1 and result["rejected"] == 3
    rejects = services.fire_rejects(county, services.CLI, result["batch"])
    assert rejects.reason.tolist() == ["acquired_in_future", "acquired_in_future", "acquired_before_record"]
    assert county.scalar("SELECT max(acq_time) FROM fire_detections") == dt.datetime(2024, 6, 1, 5, 35)
    assert county.scalar("SELECT min(acq_time) FROM fire_detections") == dt.datetime(2024, 6, 1, 5, 35)
