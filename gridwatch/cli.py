"""``python -m gridwatch``: the command line, a thin shell over :mod:`gridwatch.services`.

Every command takes ``--db`` (or ``GRIDWATCH_DB``), ``--lang`` (``zh_CN`` by
default, ``en``) and ``--json`` for scripting. Errors print one line in the
chosen language and exit non-zero: 2 for bad input, 3 for a point outside
the region, 4 for a refused permission; `audit verify` exits 6 when the chain is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gridwatch import services
from gridwatch.audit import keyring, open_sealed
from gridwatch.config import Settings
from gridwatch.errors import DiskFull, GridwatchError, ValidationError, is_disk_full
from gridwatch.grid import LEVELS
from gridwatch.i18n import gettext, task_title, translate_error, translate_text
from gridwatch.services import CLI
from gridwatch.storage import Store

__all__ = ["main", "build_parser", "AUDIT_BROKEN"]

#: exit status of ``audit verify`` when the chain is broken
AUDIT_BROKEN = 6


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
    p.set_defaults(run=lambda store, a: services.grid_stats(store, CLI))
    p = grid.add_parser("rebuild", help="rebuild the grid from the stored boundaries and report what moved")
    _common(p)
    p.set_defaults(run=lambda store, a: services.rebuild_grid(store, CLI))

    p = sub.add_parser("responsible", help="who is responsible for a point (cell, owners, people)")
    p.add_argument("--lat", type=float, required=True, help="latitude, WGS84 degrees")
    p.add_argument("--lng", type=float, required=True, help="longitude, WGS84 degrees")
    _common(p)
    p.set_defaults(run=lambda store, a: services.responsible_at(store, CLI, lat=a.lat, lng=a.lng))

    p = sub.add_parser("coverage", help="coverage gaps: roles each level must hold (required_roles), conflicting roles")
    _common(p)
    p.set_defaults(run=lambda store, a: services.coverage(store, CLI))

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
        store, CLI, a.file, level=a.level, code_field=a.code_field, name_field=a.name_field,
        parent_field=a.parent_field, crs=a.crs, layer=a.layer, replace=a.replace))

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
    p.set_defaults(run=lambda store, a: services.fetch_fires(store, CLI, Settings.load(), days=a.days))

    tk = sub.add_parser("tasks", help="patrol tasks").add_subparsers(dest="tasks_command", required=True,
                                                                      metavar="TASKS_COMMAND")
    p = tk.add_parser("list", help="list tasks, overdue first (filters combine)")
    p.add_argument("--assignee", help="person key of the assignee")
    p.add_argument("--state", help="task state, e.g. assigned, reported")
    p.add_argument("--unit", help="unit code: tasks on its cells")
    p.add_argument("--kind", help="task kind, e.g. fire_check, routine_patrol")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    _common(p)
    p.set_defaults(run=lambda store, a: _titled(services.tasks_table(store, CLI, assignee=a.assignee, state=a.state,
                                                                     unit=a.unit, kind=a.kind, limit=a.limit), a))
    p = tk.add_parser("show", help="one task with its full event history")
    p.add_argument("id", type=int, help="task id")
    _common(p)
    p.set_defaults(run=lambda store, a: _titled(services.task_show(store, CLI, a.id), a))
    p = tk.add_parser("escalate", help="move overdue tasks up the responsibility chain")
    _common(p)
    p.set_defaults(run=lambda store, a: services.escalate(store, CLI))

    pa_ = sub.add_parser("patrols", help="routine patrols").add_subparsers(dest="patrols_command", required=True,
                                                                          metavar="PATROLS_COMMAND")
    p = pa_.add_parser("generate", help="open the routine patrol tasks due now (weekly per cell)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.generate_patrols(store, CLI))

    nt = sub.add_parser("notify", help="messages to people about their tasks").add_subparsers(
        dest="notify_command", required=True, metavar="NOTIFY_COMMAND")
    p = nt.add_parser("run", help="collect new, due-soon and escalated tasks and send them through the webhook")
    _common(p)
    p.set_defaults(run=lambda store, a: services.notify_run(store, CLI, Settings.load()))

    p = sub.add_parser("backup", help="write a consistent backup of the database into a new folder")
    p.add_argument("path", help="the new backup folder")
    _common(p)
    p.set_defaults(run=lambda store, a: services.backup(store, CLI, a.path))
    p = sub.add_parser("restore", help="restore a backup folder into a new database file, or a new "
                                          "PostgreSQL database named by a URL (checked before use)")
    p.add_argument("path", help="the backup folder")
    p.add_argument("--replace", action="store_true", help="replace the database file if it exists")
    p.add_argument("--key-file", help="the audit key file of the database the backup was taken from (default: the "
                                      "one beside the target, or GRIDWATCH_AUDIT_KEY)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.restore(CLI, a.path, a.db or Settings.load().db, replace=a.replace,
                                                         key_file=a.key_file),
                   needs_store=False)

    au = sub.add_parser("audit", help="the tamper-evident record").add_subparsers(
        dest="audit_command", required=True, metavar="AUDIT_COMMAND")
    p = au.add_parser("verify", help="recompute the keyed chain over task events and the audit log, compare it with "
                                     "its head file and the task rows with their events; exit status 6 lists every "
                                     "problem and where it is")
    _common(p)
    p.set_defaults(run=lambda store, a: services.audit_verify(store, CLI))
    p = au.add_parser("head", help="the chain's head (print it on exported reports)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.audit_head(store, CLI))
    p = au.add_parser("rotate-key", help="seal new links with a fresh audit key; the old keys stay in the keyring "
                                         "so old links still verify (back up the key file afterwards)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.audit_rotate_key(store, CLI))

    p = sub.add_parser("rules", help="every rule in force with its value and source: a plan's clause, or a local "
                                     "setting (本地设置) with the document the county entered")
    _common(p)
    p.set_defaults(run=lambda store, a: services.rules(store, CLI))

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
    p = us.add_parser("link", help="let an organisation (OIDC) identity sign in as an account")
    p.add_argument("name", help="the account's user name")
    p.add_argument("--issuer", required=True, help="the provider's issuer URL (the identity's iss claim)")
    p.add_argument("--subject", required=True, help="the identity's subject (its sub claim)")
    p.add_argument("--email", default="", help="the identity's e-mail, for the record")
    _common(p)
    p.set_defaults(run=lambda store, a: services.link_identity(store, CLI, a.name, issuer=a.issuer, subject=a.subject,
                                                               email=a.email))

    pp = sub.add_parser("people", help="people and their roles").add_subparsers(
        dest="people_command", required=True, metavar="PEOPLE_COMMAND")
    p = pp.add_parser("import", help="import people and roles from a CSV "
                                     "(person_key,name,phone,role,unit_code,cell)")
    p.add_argument("file", help="the CSV file (UTF-8)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.import_people(store, CLI, a.file))
    p = pp.add_parser("list", help="list people with their roles")
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.people_table(store, CLI)))
    _layers_commands(sub)
    _heat_and_bare_commands(sub)
    _report_commands(sub)
    _accountability_commands(sub)
    _integrations_commands(sub)
    _problems_commands(sub)
    return parser


def _problems_commands(sub: Any) -> None:
    """``problems list|show|escalate|recheck``: the problem register (问题台账)."""
    pr = sub.add_parser("problems", help="the problem register (问题台账)").add_subparsers(
        dest="problems_command", required=True, metavar="PROBLEMS_COMMAND")
    p = pr.add_parser("list", help="list problems, overdue first (filters combine)")
    p.add_argument("--state", help="found, assigned, rectifying, rectified, checked, closed, returned, dismissed")
    p.add_argument("--category", help="straw_burning, bare_land, coal_boiler, loose_coal, construction_dust, ...")
    p.add_argument("--overdue", action=argparse.BooleanOptionalAction, default=None,
                   help="only overdue ones (--no-overdue: none of them)")
    p.add_argument("--repeat", action=argparse.BooleanOptionalAction, default=None,
                   help="only repeats (屡查屡犯; --no-repeat: none of them)")
    p.add_argument("--unit", help="unit code: problems on its cells")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--offset", type=int, default=0, help="skip this many first (paging)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.problems_table(
        store, CLI, state=a.state, category=a.category, overdue=a.overdue, repeat=a.repeat, unit=a.unit,
        limit=a.limit, offset=a.offset))
    p = pr.add_parser("show", help="one problem with its history")
    p.add_argument("id", type=int, help="problem id")
    _common(p)
    p.set_defaults(run=lambda store, a: services.problem_show(store, CLI, a.id))
    p = pr.add_parser("escalate", help="move problems whose rectification is overdue up the responsibility chain")
    _common(p)
    p.set_defaults(run=lambda store, a: services.problems_escalate(store, CLI))
    p = pr.add_parser("recheck", help="open the re-check patrols (回头看) of closed problems that are due")
    _common(p)
    p.set_defaults(run=lambda store, a: services.problem_rechecks(store, CLI))


# -- heat supply and bare land ---------------------------------------------------------------------------------------

def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError("{value!r} is not a date YYYY-MM-DD.", value=text) from exc


def _heat_and_bare_commands(sub: Any) -> None:
    """``heat-supply boilers|plants|mark-chp|status`` and ``bare-land summary|patches|change|escalate``."""
    hs = sub.add_parser("heat-supply", help="heat-supply radii of CHP plants and the boiler inventory").add_subparsers(
        dest="heat_command", required=True, metavar="HEAT_COMMAND")
    p = hs.add_parser("boilers", help="every boiler a boiler rule makes due, with its rules (eliminate_35tph: a coal "
                                      "boiler of 35 t/h or less anywhere; chp_radius: a coal boiler or small coal "
                                      "CHP unit inside a radius) and the distance to the nearest plant")
    p.add_argument("--today", help="the day statuses are judged on (overdue after the deadline), YYYY-MM-DD")
    p.add_argument("--all", action="store_true", help="every boiler of the inventory, not only those due")
    _common(p)
    p.set_defaults(run=lambda store, a: (lambda rows: {"count": len(rows), "boilers": rows})(
        _records(services.boilers_due(store, CLI, today=_date(a.today), listed_only=not a.all))))
    p = hs.add_parser("plants", help="the published plants with their CHP flag and radius")
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.heat_plants(store, CLI)))
    p = hs.add_parser("mark-chp", help="mark published plants as CHP (by id or exact name); radii follow")
    p.add_argument("plants", nargs="+", metavar="PLANT", help="plant id or exact name")
    p.add_argument("--unmark", action="store_true", help="mark the plants as not CHP instead")
    p.add_argument("--note", default="", help="why (kept with the mark)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.heat_mark_chp(store, CLI, a.plants, chp=not a.unmark,
                                                               note=a.note))
    p = hs.add_parser("status", help="record a boiler's new status: to_close, closed, integrated or exempt")
    p.add_argument("boiler", help="boiler id")
    p.add_argument("status", choices=("to_close", "closed", "integrated", "exempt"))
    p.add_argument("--note", default="", help="why")
    _common(p)
    p.set_defaults(run=lambda store, a: services.heat_boiler_status(store, CLI, a.boiler, a.status, note=a.note))

    bl = sub.add_parser("bare-land", help="bare land per cell, patches, change between uploads").add_subparsers(
        dest="bare_command", required=True, metavar="BARE_COMMAND")
    p = bl.add_parser("summary", help="bare area and fraction of the published version per cell or unit")
    p.add_argument("--level", default="township", choices=("cell", "village", "township", "county"))
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.bare_land_summary(store, CLI, level=a.level)))
    p = bl.add_parser("patches", help="registered bare-land patches (建档)")
    p.add_argument("--status", choices=("bare", "covered", "greened"))
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.bare_land_patches(store, CLI, status=a.status)))
    p = bl.add_parser("change", help="the change between two stored bare-land versions")
    p.add_argument("version_a", type=int)
    p.add_argument("version_b", type=int)
    _common(p)
    p.set_defaults(run=lambda store, a: services.bare_land_change(store, CLI, a.version_a, a.version_b))
    p = bl.add_parser("escalate", help="escalate patches bare for longer than bare_land_months to greening")
    p.add_argument("--today", help="YYYY-MM-DD (default today)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.bare_land_escalate(store, CLI, today=_date(a.today)))


# -- layers ---------------------------------------------------------------------------------------------------------

def _layers_commands(sub: Any) -> None:
    """``layers load|list|publish|restore|candidates`` and ``zones coal-checks`` (every registered layer kind)."""
    from gridwatch import layerstore

    kinds = sorted(layerstore.kinds())
    ly = sub.add_parser("layers", help="spatial layers: load versions, publish, restore").add_subparsers(
        dest="layers_command", required=True, metavar="LAYERS_COMMAND")
    p = ly.add_parser("load", help="store a layer file as a new version (GeoJSON, zipped Shapefile, GeoPackage, "
                                   "KML/KMZ, CSV with coordinates)")
    p.add_argument("kind", metavar="KIND", help="layer kind: " + ", ".join(kinds))
    p.add_argument("file", help="the layer file")
    p.add_argument("--crs", help="CRS when the file declares none (EPSG code), or gcj02 for map-app coordinates")
    p.add_argument("--layer", help="layer of a multi-layer file (GeoPackage, KML)")
    p.add_argument("--zone-type", help="no_burn_zones: one zone type for every feature "
                                       "(high_polluting_fuel or straw_burning)")
    p.add_argument("--type-field", help="no_burn_zones: field holding each zone's type")
    p.add_argument("--name-field", help="field holding each feature's name")
    p.add_argument("--x-field", help="CSV: column of x / longitude")
    p.add_argument("--y-field", help="CSV: column of y / latitude")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="another reader option of the kind (repeatable)")
    p.add_argument("--publish", action="store_true", help="publish the new version at once")
    _common(p)
    p.set_defaults(run=_layers_load)
    p = ly.add_parser("list", help="every stored version, the published one marked")
    p.add_argument("--kind", help="only this layer kind")
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.layer_list(store, CLI, a.kind)))
    p = ly.add_parser("publish", help="publish a stored version (cell flags and tasks follow it)")
    p.add_argument("kind", metavar="KIND", help="layer kind: " + ", ".join(kinds))
    p.add_argument("version", type=int, help="version number")
    _common(p)
    p.set_defaults(run=lambda store, a: services.layer_publish(store, CLI, a.kind, a.version))
    p = ly.add_parser("restore", help="publish an earlier version again (roll back)")
    p.add_argument("kind", metavar="KIND", help="layer kind: " + ", ".join(kinds))
    p.add_argument("version", type=int, help="version number")
    _common(p)
    p.set_defaults(run=lambda store, a: services.layer_restore(store, CLI, a.kind, a.version))
    p = ly.add_parser("candidates", help="for a file without a CRS: the CRSs that fit it, with a preview")
    p.add_argument("file", help="the layer file")
    p.add_argument("--layer", help="layer of a multi-layer file")
    p.add_argument("--x-field", help="CSV: column of x / longitude")
    p.add_argument("--y-field", help="CSV: column of y / latitude")
    _common(p)
    p.set_defaults(run=lambda store, a: services.layer_crs_candidates(
        store, CLI, a.file, layer=a.layer, x_field=a.x_field, y_field=a.y_field))

    zn = sub.add_parser("zones", help="no-burn zones").add_subparsers(dest="zones_command", required=True,
                                                                     metavar="ZONES_COMMAND")
    p = zn.add_parser("coal-checks", help="open the recurring coal checks of high-polluting-fuel zone cells "
                                          "due now (monthly by default)")
    p.add_argument("--cadence-days", type=int, help="days between checks (default: coal_check_cadence_days, 30)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.generate_coal_checks(store, CLI,
                                                                      cadence_days=a.cadence_days))


def _layers_load(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"layer": args.layer, "zone_type": args.zone_type, "type_field": args.type_field,
                               "name_field": args.name_field, "x_field": args.x_field, "y_field": args.y_field}
    if args.kind != "no_burn_zones":
        options.pop("zone_type"), options.pop("type_field")
    if args.kind not in ("coal_sale_points",):
        if args.x_field is None and args.y_field is None:
            options.pop("x_field"), options.pop("y_field")
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError("Option {option!r} is not of the form NAME=VALUE.", option=item)
        options[key.strip().replace("-", "_")] = value
    result = services.layer_load(store, CLI, args.kind, args.file, crs=args.crs, publish=args.publish, **options)
    keys = ("version", "rows", "rejected", "repaired", "crs", "cells_affected")
    return {**{k: result[k] for k in keys}, **{k: v for k, v in result.items() if k not in keys}}


def _titled(tasks: Any, args: argparse.Namespace) -> Any:
    """A task (or a list of them) with its title in the command's language, in place of its title key and values."""
    lang = Settings.load(language=args.lang).language

    def one(task: dict[str, Any]) -> dict[str, Any]:
        title = task_title({**task, "kind": ""}, lang)
        return {k: (title if k == "title" else v) for k, v in task.items() if k not in ("title_key", "title_args")}

    return [one(task) for task in tasks] if isinstance(tasks, list) else one(tasks)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dictionaries with None, not NaN, for missing values (NaN is not JSON)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _fires_ingest(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    result = services.ingest_fires(store, CLI, args.files)
    if args.rejects_csv:
        frames = [services.fire_rejects(store, CLI, f["batch"]).assign(file=f["file"]) for f in result["files"]]
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
    return services.add_user(store, CLI, args.name, password, role=args.role, unit=args.unit, name=args.full_name)


def _init(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.load(resolution=args.resolution)
    result = services.init_region(store, CLI, region=args.region, resolution=settings.resolution,
                                  demo_data=args.demo)
    ring = keyring(store)  # where the audit key lives: back it up (README, operators)
    return {**result, "audit_key": ring.source if ring else None} if isinstance(result, dict) else result


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
                    lines.append(f"{pad}{translate_text(item, lang) if isinstance(item, str) else item}")
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
        if getattr(args, "needs_store", True):
            with open_sealed(settings.db) as store:
                result = args.run(store, args)
        else:  # the command opens (or creates) the database itself
            result = args.run(None, args)
    except Exception as failure:  # noqa: BLE001 - a full disk reads as such wherever it was raised
        if not isinstance(failure, GridwatchError) and not is_disk_full(failure):
            raise
        exc = DiskFull() if is_disk_full(failure) else failure
        if args.json:
            out(json.dumps({"error": translate_error(exc, lang), "kind": type(exc).__name__}, ensure_ascii=False))
        print(translate_error(exc, lang), file=sys.stderr)
        return exc.exit_code
    if args.command == "audit" and isinstance(result, dict) and "problems" in result:
        for problem in result["problems"]:  # what is wrong and where, in the user's language
            problem["message"] = translate_text(problem["message"], lang)
    if args.json:
        out(json.dumps(result, ensure_ascii=False, default=str))
    elif args.command == "audit" and isinstance(result, dict) and "problems" in result:
        # each problem's message says what is wrong and where; the fields stay in --json
        out(_human({**result, "problems": [p["message"] for p in result["problems"]],
                    "first_broken": (result["first_broken"] or {}).get("message")}, lang))
    else:
        out(_human(result, lang))
        print(gettext("Done in {seconds:.1f} s.", lang).format(seconds=time.perf_counter() - started),
              file=sys.stderr)
    if args.command == "audit" and isinstance(result, dict) and result.get("ok") is False:
        return AUDIT_BROKEN
    return 0


# -- reports -----------------------------------------------------------------------------------------------

def _report_commands(sub: Any) -> None:
    """``report daily|weekly|xun|monthly|season|custom``, ``report cropland`` and ``report dossier``."""
    rp = sub.add_parser("report", help="reports and rankings: daily, weekly, ten-day (旬), monthly, season")
    rs = rp.add_subparsers(dest="report_command", required=True, metavar="REPORT_COMMAND")
    for name, text in (("daily", "daily dispatch (每日一调度)"), ("weekly", "weekly summary, Monday to Sunday"),
                       ("xun", "ten-day ranking (旬: 1–10, 11–20, 21–end)"), ("monthly", "monthly assessment"),
                       ("season", "the harvest season holding the date"), ("custom", "any range (--date to --end)")):
        p = rs.add_parser(name, help=text)
        p.add_argument("--date", required=True, help="a day of the period, YYYY-MM-DD (Beijing time)")
        p.add_argument("--end", help="last day of a custom range, YYYY-MM-DD")
        p.add_argument("--unit", help="unit whose units are ranked (default: the region)")
        p.add_argument("--level", default="township", choices=("county", "township", "village", "cell"),
                       help="level of the ranked units (default township)")
        p.add_argument("--xlsx", help="write the report to this Excel file")
        p.add_argument("--csv", help="write the ranking to this CSV file")
        p.add_argument("--html", help="write the printable bulletin (通报) to this HTML file (print it to PDF)")
        _common(p)
        p.set_defaults(run=_report, period_kind=name)
    p = rs.add_parser("cropland", help="load cropland areas per unit from a CSV (unit_code,cropland_km2)")
    p.add_argument("file", help="the CSV file")
    _common(p)
    p.set_defaults(run=lambda store, a: services.report_load_cropland(store, CLI, a.file))
    p = rs.add_parser("dossier", help="every event of a unit's tasks, for a period or all time")
    p.add_argument("--unit", required=True, help="unit code, or an H3 cell id")
    p.add_argument("--period", choices=("daily", "weekly", "xun", "monthly", "season"), help="period kind")
    p.add_argument("--date", help="a day of the period, YYYY-MM-DD")
    p.add_argument("--patrols", action="store_true", help="include routine patrols")
    p.add_argument("--xlsx", help="write the dossier to this Excel file")
    p.add_argument("--csv", help="write the dossier to this CSV file")
    p.add_argument("--html", help="write the dossier to this HTML file")
    _common(p)
    p.set_defaults(run=_dossier)


def _write_whole(target: str | Path, data: bytes) -> None:
    """Write an export whole or not at all: into a hidden file beside the target, synced, then renamed over it.

    A full disk or any other failure removes the partial file and leaves an earlier export of that name untouched.
    """
    target = Path(target)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _report(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.load(db=args.db, language=args.lang)
    report = services.report_build(store, CLI, kind=args.period_kind, date=args.date, end=args.end, level=args.level,
                                   unit=args.unit, settings=settings, language=settings.language)
    result = report.to_json()
    files = {}
    if args.xlsx:
        _write_whole(args.xlsx, services.report_xlsx(report))
        files["xlsx"] = args.xlsx
    if args.csv:
        _write_whole(args.csv, services.report_csv(report))
        files["csv"] = args.csv
    if args.html:
        _write_whole(args.html, services.report_bulletin(store, CLI, report).encode("utf-8"))
        files["html"] = args.html
    if files:
        result["files"] = files
    if not args.json:
        table = services.report_table(report)
        names = report.table_columns()
        keep = [table.columns[names.index(c)] for c in ("rank", "rank_change", "unit_name", "score", "fire_points",
                                                        "incidents", "confirmed", "confirmation_rate", "status")]
        return {"period": result["period"]["label"], "rule": result["rule"], "files": files or None,
                "rows": _records(table[keep])}
    return result


def _dossier(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.load(db=args.db, language=args.lang)
    frame = services.report_dossier(store, CLI, unit=args.unit, kind=args.period, date=args.date,
                                    language=settings.language, include_patrols=args.patrols, settings=settings)
    files = services.report_dossier_files(store, CLI, frame, unit=args.unit, language=settings.language)
    written = {}
    for kind in ("xlsx", "csv", "html"):
        target = getattr(args, kind)
        if target:
            _write_whole(target, files[kind])
            written[kind] = target
    return {"unit": args.unit, "events": int(len(frame)), "files": written or None,
            **({"rows": _records(frame)} if args.json and not written else {})}



# -- accountability measures ------------------------------------------------------------------------------------

def _accountability_commands(sub: Any) -> None:
    """``accountability add|list|revoke``: measures leaders issued (通报, 约谈, 问责, penalties), as recorded."""
    ac = sub.add_parser("accountability", help="accountability measures issued (通报, 约谈, 问责, penalties)"
                        ).add_subparsers(dest="accountability_command", required=True, metavar="ACCOUNTABILITY_COMMAND")
    p = ac.add_parser("add", help="record a measure issued in a document")
    p.add_argument("kind", choices=services.MEASURE_KINDS, help="the measure")
    p.add_argument("--unit", help="code of the unit concerned (default: the one unit the person holds a role on)")
    p.add_argument("--person", help="person key of the person concerned")
    p.add_argument("--date", required=True, help="the document's date, YYYY-MM-DD (Beijing)")
    p.add_argument("--document", required=True, help="the document number (文号)")
    p.add_argument("--reason", required=True, help="why")
    p.add_argument("--amount", help="an economic penalty's amount in yuan")
    p.add_argument("--period", choices=("daily", "weekly", "xun", "monthly", "season"),
                   help="the report period it rests on (with --period-date)")
    p.add_argument("--period-date", help="a day of that period, YYYY-MM-DD")
    p.add_argument("--task", type=int, action="append", default=[], help="a task id it rests on (repeatable)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.record_measure(
        store, CLI, kind=a.kind, unit=a.unit, person=a.person, issued_on=a.date, document_no=a.document,
        reason=a.reason, amount_yuan=a.amount, tasks=a.task,
        period=services.report_period(a.period, a.period_date) if a.period and a.period_date else None))
    p = ac.add_parser("list", help="recorded measures (revocations included), of a unit and those below it")
    p.add_argument("--unit", help="unit code (default: the whole region)")
    p.add_argument("--period", choices=("daily", "weekly", "xun", "monthly", "season"), help="period kind")
    p.add_argument("--date", help="a day of the period, YYYY-MM-DD")
    _common(p)
    p.set_defaults(run=lambda store, a: _records(services.list_measures(
        store, CLI, unit=a.unit, period=services.report_period(a.period, a.date) if a.period and a.date else None)))
    p = ac.add_parser("revoke", help="revoke a recorded measure with a new record (both stay on record)")
    p.add_argument("id", type=int, help="the measure's record number")
    p.add_argument("--reason", required=True, help="why it is revoked")
    p.add_argument("--document", default="", help="the document number of the revocation, if any")
    p.add_argument("--date", help="the revocation's date, YYYY-MM-DD (default today, Beijing)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.revoke_measure(store, CLI, a.id, reason=a.reason,
                                                                document_no=a.document, issued_on=a.date))


# -- integrations (the HTTP API's callers) -------------------------------------------------------------------------

def _integrations_commands(sub: Any) -> None:
    """``integrations add|list|revoke|deliver``: other systems that post alarms through the HTTP API."""
    ig = sub.add_parser("integrations", help="other systems posting alarms through the HTTP API (video, drones, "
                                             "hotlines)").add_subparsers(dest="integrations_command", required=True,
                                                                         metavar="INTEGRATIONS_COMMAND")
    p = ig.add_parser("add", help="create an integration; prints its token (and webhook secret) once")
    p.add_argument("name", help="the integration's name (3 to 40 of a-z 0-9 . _ -), e.g. hotline-12345")
    p.add_argument("--source", required=True, choices=services.SOURCES, help="the source of its alarms")
    p.add_argument("--unit", required=True, help="code of the unit whose cells its alarms may lie in")
    p.add_argument("--rate-per-minute", type=int, default=services.DEFAULT_RATE_PER_MINUTE,
                   help=f"calls a minute it may make (default {services.DEFAULT_RATE_PER_MINUTE})")
    p.add_argument("--webhook-url", default="", help="where the outcomes of its alarms are posted (signed)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.integration_add(
        store, CLI, a.name, source=a.source, unit=a.unit, rate_per_minute=a.rate_per_minute,
        webhook_url=a.webhook_url))
    p = ig.add_parser("list", help="every integration: scope, rate, webhook, alarms, deliveries (no tokens)")
    _common(p)
    p.set_defaults(run=lambda store, a: services.integration_list(store, CLI))
    p = ig.add_parser("revoke", help="refuse an integration's token from now on")
    p.add_argument("name", help="the integration's name")
    _common(p)
    p.set_defaults(run=lambda store, a: services.integration_revoke(store, CLI, a.name))
    p = ig.add_parser("deliver", help="post the outcomes of alarms that are due to the integrations' webhooks")
    _common(p)
    p.set_defaults(run=lambda store, a: services.deliver_webhooks(store, CLI))
