"""``python -m gridwatch``: the command line, a thin shell over :mod:`gridwatch.services`.

Every command takes ``--db`` (or ``GRIDWATCH_DB``), ``--lang`` (``zh_CN`` by
default, ``en``) and ``--json`` for scripting. Errors print one line in the
chosen language and exit non-zero: 2 for bad input, 3 for a point outside
the region, 4 for a refused permission.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

import pandas as pd

from gridwatch import services
from gridwatch.config import Settings
from gridwatch.errors import GridwatchError, ValidationError
from gridwatch.grid import LEVELS
from gridwatch.i18n import gettext, translate_error
from gridwatch.storage import Store, open_store

__all__ = ["main", "build_parser"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database: a DuckDB file (default data/gridwatch.duckdb) or GRIDWATCH_DB")
    parser.add_argument("--lang", choices=("zh_CN", "en"), help="language of messages (default zh_CN)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command (each has --help)."""
    parser = argparse.ArgumentParser(
        prog="python -m gridwatch",
        description="gridwatch: grid supervision for air-quality work (网格化监管).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create or update a database for a region and build its grid")
    p.add_argument("--region", required=True, help="code of the region's unit, e.g. 410329 (伊川县) or 410000")
    p.add_argument("--resolution", type=int, default=None, help="H3 resolution (default 8, ≈0.6 km² cells)")
    p.add_argument("--demo", action="store_true", help="add generated demo townships, villages and people")
    _common(p)
    p.set_defaults(run=_init)

    grid = sub.add_parser("grid", help="the H3 grid").add_subparsers(dest="grid_command", required=True,
                                                                     metavar="GRID_COMMAND")
    p = grid.add_parser("stats", help="region, resolution, cells and units per level")
    _common(p)
    p.set_defaults(run=lambda store, a: services.grid_stats(store))
    p = grid.add_parser("rebuild", help="rebuild the grid from the stored boundaries and report what moved")
    _common(p)
    p.set_defaults(run=lambda store, a: services.rebuild_grid(store, actor="cli"))

    p = sub.add_parser("responsible", help="who is responsible for a point (cell, owners, people)")
    p.add_argument("--lat", type=float, required=True, help="latitude, WGS84 degrees")
    p.add_argument("--lng", type=float, required=True, help="longitude, WGS84 degrees")
    _common(p)
    p.set_defaults(run=lambda store, a: services.responsible_at(store, lat=a.lat, lng=a.lng))

    p = sub.add_parser("coverage", help="coverage gaps: units without a grid leader, cells without an inspector")
    _common(p)
    p.set_defaults(run=lambda store, a: services.coverage(store))

    b = sub.add_parser("boundaries", help="administrative boundaries").add_subparsers(
        dest="boundaries_command", required=True, metavar="BOUNDARIES_COMMAND")
    p = b.add_parser("load", help="load unit boundaries (GeoJSON, zipped Shapefile, GeoPackage) and rebuild the grid")
    p.add_argument("file", help="the boundary file")
    p.add_argument("--level", required=True, choices=LEVELS[1:], help="level of the units in the file")
    p.add_argument("--code-field", required=True, help="field holding each unit's code")
    p.add_argument("--name-field", required=True, help="field holding each unit's name")
    p.add_argument("--parent-field", help="field holding the parent unit's code (else found by location)")
    p.add_argument("--crs", help="CRS when the file declares none, or gcj02 for map-app coordinates")
    p.add_argument("--layer", help="layer of a multi-layer file")
    p.add_argument("--replace", action="store_true",
                   help="replace every stored unit of this level under the same parents (their roles are removed)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.load_boundaries(
        store, a.file, level=a.level, code_field=a.code_field, name_field=a.name_field,
        parent_field=a.parent_field, crs=a.crs, layer=a.layer, replace=a.replace, actor="cli"))

    fires = sub.add_parser("fires", help="satellite fire points (NASA FIRMS)").add_subparsers(
        dest="fires_command", required=True, metavar="FIRES_COMMAND")
    p = fires.add_parser("ingest", help="ingest FIRMS CSV files: triage, store, and dispatch fire-check tasks")
    p.add_argument("files", nargs="+", help="FIRMS CSV files (MODIS or VIIRS, NRT or archive)")
    p.add_argument("--rejects-csv", help="write the rejected rows (line, reason, text) to this CSV file")
    _common(p)
    p.set_defaults(run=_fires_ingest)

    p = fires.add_parser("fetch", help="fetch the region's recent detections from the FIRMS area API and ingest them")
    p.add_argument("--days", type=int, default=None, help="how many days back (default: firms_days setting, 1)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.fetch_fires(store, Settings.load(), days=a.days))

    tk = sub.add_parser("tasks", help="patrol tasks").add_subparsers(dest="tasks_command", required=True,
                                                                      metavar="TASKS_COMMAND")
    p = tk.add_parser("list", help="list tasks, overdue first (filters combine)")
    p.add_argument("--assignee", help="person key of the assignee")
    p.add_argument("--state", help="task state, e.g. assigned, reported")
    p.add_argument("--unit", help="unit code: tasks on its cells")
    p.add_argument("--kind", help="task kind, e.g. fire_check, routine_patrol")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.tasks_table(store, assignee=a.assignee, state=a.state,
                                                             unit=a.unit, kind=a.kind, limit=a.limit))
    p = tk.add_parser("show", help="one task with its full event history")
    p.add_argument("id", type=int, help="task id")
    _common(p)
    p.set_defaults(run=lambda store, a: services.task_show(store, a.id))
    p = tk.add_parser("escalate", help="move overdue tasks up the responsibility chain")
    _common(p)
    p.set_defaults(run=lambda store, a: services.escalate(store, actor="cli"))

    pa_ = sub.add_parser("patrols", help="routine patrols").add_subparsers(dest="patrols_command", required=True,
                                                                          metavar="PATROLS_COMMAND")
    p = pa_.add_parser("generate", help="open the routine patrol tasks due now (weekly per cell)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.generate_patrols(store, actor="cli"))

    nt = sub.add_parser("notify", help="messages to people about their tasks").add_subparsers(
        dest="notify_command", required=True, metavar="NOTIFY_COMMAND")
    p = nt.add_parser("run", help="collect new, due-soon and escalated tasks and send them through the webhook")
    _common(p)
    p.set_defaults(run=lambda store, a: services.notify_run(store, Settings.load()))

    us = sub.add_parser("users", help="sign-in accounts").add_subparsers(dest="users_command", required=True,
                                                                        metavar="USERS_COMMAND")
    p = us.add_parser("add", help="add a person with a role on a unit and an account "
                                  "(asks for the password, or reads it from standard input)")
    p.add_argument("name", help="user name (also the person's key)")
    p.add_argument("--role", required=True, help="role on the unit, e.g. admin, inspector, grid_leader")
    p.add_argument("--unit", required=True, help="code of the unit the role is held on")
    p.add_argument("--full-name", help="the person's name as shown (default: the user name)")
    _common(p)
    p.set_defaults(run=_users_add)

    pp = sub.add_parser("people", help="people and their roles").add_subparsers(
        dest="people_command", required=True, metavar="PEOPLE_COMMAND")
    p = pp.add_parser("import", help="import people and roles from a CSV "
                                     "(person_key,name,phone,role,unit_code,cell)")
    p.add_argument("file", help="the CSV file (UTF-8)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.import_people(store, a.file, actor="cli"))
    p = pp.add_parser("list", help="list people with their roles")
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.people_table(store)))
    return parser


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dictionaries with None, not NaN, for missing values (NaN is not JSON)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _fires_ingest(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    result = services.ingest_fires(store, args.files, actor="cli")
    if args.rejects_csv:
        frames = [services.fire_rejects(store, f["batch"]).assign(file=f["file"]) for f in result["files"]]
        pd.concat(frames, ignore_index=True)[["file", "line", "reason", "message", "raw"]].to_csv(
            args.rejects_csv, index=False, encoding="utf-8-sig")
        result["rejects_csv"] = args.rejects_csv
    return result


def _users_add(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    if sys.stdin.isatty():
        password = getpass.getpass("Password / 密码: ")
        if getpass.getpass("Again / 再次输入: ") != password:
            raise ValidationError("The two passwords differ; nothing was changed.")
    else:
        password = sys.stdin.readline().rstrip("\n")
    return services.add_user(store, args.name, password, role=args.role, unit=args.unit, name=args.full_name,
                             actor="cli")


def _init(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.load(resolution=args.resolution)
    return services.init_region(store, region=args.region, resolution=settings.resolution,
                                demo_data=args.demo, actor="cli")


def _human(result: Any, lang: str) -> str:
    """A readable rendering: keys translated, nested values indented."""
    def render(value: Any, indent: int) -> list[str]:
        pad = "  " * indent
        if isinstance(value, dict):
            lines = []
            for k, v in value.items():
                label = gettext(str(k), lang)
                if isinstance(v, (dict, list)) and v:
                    lines += [f"{pad}{label}:"] + render(v, indent + 1)
                else:
                    lines.append(f"{pad}{label}: {v if v not in (None, [], {}) else '—'}")
            return lines
        if isinstance(value, list):
            lines = []
            for item in value:
                if isinstance(item, dict):
                    lines.append(pad + " · ".join(str(v) for v in item.values() if v not in (None, "")))
                else:
                    lines.append(f"{pad}{item}")
            return lines
        return [f"{pad}{value}"]

    return "\n".join(render(result, 0))


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(db=args.db, language=args.lang)
    except GridwatchError as exc:
        print(translate_error(exc, args.lang or "zh_CN"), file=sys.stderr)
        return exc.exit_code
    lang = settings.language
    started = time.perf_counter()
    try:
        with open_store(settings.db) as store:
            result = args.run(store, args)
    except GridwatchError as exc:
        if args.json:
            out(json.dumps({"error": translate_error(exc, lang), "kind": type(exc).__name__}, ensure_ascii=False))
        print(translate_error(exc, lang), file=sys.stderr)
        return exc.exit_code
    if args.json:
        out(json.dumps(result, ensure_ascii=False, default=str))
    else:
        out(_human(result, lang))
        print(gettext("Done in {seconds:.1f} s.", lang).format(seconds=time.perf_counter() - started),
              file=sys.stderr)
    return 0
