"""Accountability measures as leaders issue them (通报, 约谈, 问责, 经济处罚, 行政处罚): an append-only record.

The plans name the measures (问责约谈、经济处罚、行政处罚; 公开约谈 of a government's principal; 网格长为第一责任人,
the township's 主要负责人 with leadership responsibility) and give no thresholds or amounts, so a measure is never
inferred: a leader issues it in a document with a number (文号), and it is recorded here as issued. A record is
never changed or deleted; a correction is a new record of kind ``revocation`` naming the record it revokes and why.

This module checks what a measure says and reads and writes the rows; who may issue or read one is the service's
business (:mod:`gridwatch.services.accountability`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gridwatch.errors import Conflict, NotFound, ValidationError
from gridwatch.i18n import N_
from gridwatch.periods import ReportPeriod
from gridwatch.storage import Store

__all__ = ["KINDS", "REVOCATION", "ROLE_OF_KIND", "PERSON_ROLES", "Measure", "check_text", "check_measure",
           "unit_lineage", "person_on_unit", "insert", "revocation_of", "read", "MAX_REASON", "MAX_DOCUMENT"]

#: the measures the plans name, mildest first, with their labels (English msgids)
KINDS = {
    "notice": N_("Public notice (通报)"),
    "interview_grid_leader": N_("Interview of the grid leader, the first responsible person (约谈)"),
    "interview_principal": N_("Interview of the principal leader (约谈)"),
    "interview_deputy": N_("Interview of the deputy leader (约谈)"),
    "accountability": N_("Accountability (问责)"),
    "economic_penalty": N_("Economic penalty (经济处罚)"),
    "administrative_penalty": N_("Administrative penalty (行政处罚)"),
}
#: the kind of a record that revokes an earlier one
REVOCATION = "revocation"
REVOCATION_LABEL = N_("Revocation of measure {id}")
#: the role a person named in an interview must hold on the unit (the deputy in charge holds no chain role)
ROLE_OF_KIND = {"interview_grid_leader": "grid_leader", "interview_principal": "unit_head"}
#: how a named person's role is shown: the grid leader is the first responsible person (网格长为第一责任人)
PERSON_ROLES = {"grid_leader": N_("Grid leader (first responsible person)"), "unit_head": N_("Principal leader"),
                "supervisor": N_("Supervisor"), "grid_member": N_("Grid member"), "inspector": N_("Patrol inspector")}
#: the longest reason and document number, in characters
MAX_REASON = 2000
MAX_DOCUMENT = 100
#: the most task ids or fire points one measure may cite
MAX_BASIS = 500
#: the largest penalty amount taken, in yuan
MAX_AMOUNT = 1e9


@dataclass(frozen=True)
class Measure:
    """A measure as it is to be recorded (checked by :func:`check_measure`)."""

    kind: str
    unit_code: str
    issued_on: dt.date
    document_no: str
    reason: str
    person_key: str | None = None
    amount_yuan: float | None = None
    period: ReportPeriod | None = None
    tasks: tuple[int, ...] = field(default_factory=tuple)
    fire_points: tuple[int, ...] = field(default_factory=tuple)


#: the messages about each text field (the field's name is part of the message, so it is translated with it)
_MISSING = {"document": N_("The document number (文号) is missing; enter it as the document gives it."),
            "reason": N_("The reason is missing; say why the measure was issued or revoked.")}
_TOO_LONG = {"document": N_("The document number has {n} characters; at most {limit} are kept, so shorten it."),
             "reason": N_("The reason has {n} characters; at most {limit} are kept, so shorten it.")}
_CONTROL = {"document": N_("The document number holds a control character (code {code}); remove it."),
            "reason": N_("The reason holds a control character (code {code}); remove it.")}
_NOT_ID = {"task": N_("{value!r} is not a task id (a whole number)."),
           "fire": N_("{value!r} is not a fire point (a whole number, the detection's key).")}
_TOO_MANY = {"task": N_("A measure cites at most {limit} tasks ({n} given)."),
             "fire": N_("A measure cites at most {limit} fire points ({n} given).")}
_NOT_HOLDER = {"grid_leader": N_("{name} is not the grid leader of {unit}; an interview of the grid leader names "
                                 "that person."),
               "unit_head": N_("{name} is not the principal leader of {unit}; an interview of the principal leader "
                               "names that person.")}


def check_text(value: Any, *, field: str, limit: int, required: bool = True, lines: bool = False) -> str:
    """The text of ``field`` (``document`` or ``reason``) stripped, refused when empty (if required), longer than
    ``limit`` or holding a control character; ``lines`` lets line breaks and tabs through.

    Examples
    --------
    >>> check_text("  豫农〔2026〕3号 ", field="document", limit=100)
    '豫农〔2026〕3号'
    >>> check_text("a\\x00b", field="reason", limit=10)
    Traceback (most recent call last):
    ...
    gridwatch.errors.ValidationError: The reason holds a control character (code 0); remove it.
    """
    text = "" if value is None else str(value).strip()
    if not text:
        if required:
            raise ValidationError(_MISSING[field])
        return ""
    if len(text) > limit:
        raise ValidationError(_TOO_LONG[field], n=len(text), limit=limit)
    allowed = "\n\t\r" if lines else ""
    for ch in text:
        if (ord(ch) < 32 or ord(ch) == 127) and ch not in allowed:
            raise ValidationError(_CONTROL[field], code=ord(ch))
    return text


def _ids(values: Iterable[Any], kind: str) -> tuple[int, ...]:
    out = []
    for value in values:
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError) as exc:
            raise ValidationError(_NOT_ID[kind], value=str(value)[:40]) from exc
        out.append(number)
    if len(out) > MAX_BASIS:
        raise ValidationError(_TOO_MANY[kind], limit=MAX_BASIS, n=len(out))
    return tuple(dict.fromkeys(out))


def check_measure(*, kind: str, unit_code: str, issued_on: dt.date, today: dt.date, document_no: Any,
                  reason: Any, person_key: str | None = None, amount_yuan: Any = None,
                  period: ReportPeriod | None = None, tasks: Sequence[Any] = (),
                  fire_points: Sequence[Any] = ()) -> Measure:
    """Check what a measure says, before anything is looked up: its kind, date, texts, amount and basis.

    Raises
    ------
    ValidationError
        An unknown kind; a date after ``today`` (Beijing) or before the period it rests on; a missing or too
        long document number or reason; an amount on a measure that is no economic penalty, or one that is not
        a number from 0 to 10⁹; task ids or fire points that are no whole numbers.
    """
    if kind not in KINDS:
        raise ValidationError("Unknown measure {kind}; use one of {kinds}.", kind=str(kind)[:40],
                              kinds=", ".join(KINDS))
    if issued_on > today:
        raise ValidationError("The measure's date {day} lies in the future (today is {today} in Beijing); a measure "
                              "is recorded once it is issued.", day=issued_on.isoformat(), today=today.isoformat())
    if period is not None and issued_on < period.start:
        raise ValidationError("The measure's date {day} lies before the period it rests on ({start} – {end}).",
                              day=issued_on.isoformat(), start=period.start.isoformat(), end=period.end.isoformat())
    document = check_text(document_no, field="document", limit=MAX_DOCUMENT)
    why = check_text(reason, field="reason", limit=MAX_REASON, lines=True)
    amount = None
    if amount_yuan is not None and str(amount_yuan).strip() != "":
        if kind != "economic_penalty":
            raise ValidationError("Only an economic penalty has an amount; leave the amount empty.")
        try:
            amount = float(amount_yuan)
        except (TypeError, ValueError) as exc:
            raise ValidationError("The amount {value!r} is not a number of yuan.", value=str(amount_yuan)[:40]) \
                from exc
        if not math.isfinite(amount) or amount < 0 or amount > MAX_AMOUNT:
            raise ValidationError("The amount {value} yuan is not between 0 and {limit:.0f}.", value=amount_yuan,
                                  limit=MAX_AMOUNT)
    return Measure(kind=kind, unit_code=str(unit_code), issued_on=issued_on, document_no=document, reason=why,
                   person_key=person_key or None, amount_yuan=amount, period=period,
                   tasks=_ids(tasks, "task"), fire_points=_ids(fire_points, "fire"))


def unit_lineage(store: Store, unit: str) -> list[dict[str, str]]:
    """The unit and the units above it, nearest first: ``code, name, level`` each.

    Raises
    ------
    NotFound
        No unit with that code.
    """
    lineage: list[dict[str, str]] = []
    code: str | None = unit
    while code is not None and code not in {u["code"] for u in lineage} and len(lineage) < 8:
        rows = store.query("SELECT code, name, level, parent_code FROM units WHERE code = ?", [code])
        if not rows:
            break
        lineage.append({k: rows[0][k] for k in ("code", "name", "level")})
        code = rows[0]["parent_code"]
    if not lineage:
        raise NotFound("No administrative unit with code {code}.", code=unit)
    return lineage


def _level(store: Store, unit: str) -> str:
    return str(store.scalar("SELECT level FROM units WHERE code = ?", [unit]))


def person_on_unit(store: Store, person_key: str, unit: str | None) -> tuple[dict[str, Any], str]:
    """The person (``id, name``) and the unit of the measure: the one given, or the only one the person holds a
    role on (a role on a cell counts for the cell's village).

    Returns the person and the unit code; the person's roles on that unit are in ``person["roles"]``.

    Raises
    ------
    NotFound
        No person with that key.
    ValidationError
        The person holds no role on the unit given, or (with no unit) roles on several units or none.
    """
    found = store.query("SELECT id, name FROM people WHERE person_key = ?", [person_key])
    if not found:
        raise NotFound("No person with key {key}.", key=person_key)
    person = dict(found[0])
    held = store.query(
        "SELECT a.role, COALESCE(a.unit_code, c.village_code, c.township_code, c.county_code) AS unit_code"
        " FROM assignments a LEFT JOIN cells c ON c.cell = a.cell WHERE a.person_id = ?", [person["id"]])
    if unit is None:
        units = sorted({r["unit_code"] for r in held if r["unit_code"]})
        if len(units) != 1:
            raise ValidationError("{name} holds roles on {n} units; say which unit the measure concerns.",
                                  name=person["name"], n=len(units))
        unit = units[0]
    roles = sorted({r["role"] for r in held if r["unit_code"] == unit})
    if not roles:
        raise ValidationError("{name} holds no role on {unit}; name a person of that unit, or none.",
                              name=person["name"], unit=unit)
    person["roles"] = roles
    return person, unit


def _check_basis(store: Store, measure: Measure, level: str) -> None:
    """Refuse task ids and fire points that do not exist on the unit's cells."""
    where = "TRUE" if level == "province" else f"c.{level}_code = ?"
    scope = [] if level == "province" else [measure.unit_code]
    if measure.tasks:
        marks = ", ".join("?" * len(measure.tasks))
        found = {int(r["id"]) for r in store.query(
            f"SELECT t.id FROM tasks t JOIN cells c ON c.cell = t.cell WHERE t.id IN ({marks}) AND {where}",
            [*measure.tasks, *scope])}
        missing = [t for t in measure.tasks if t not in found]
        if missing:
            raise ValidationError("No task {ids} lies in {unit}; cite the unit's own tasks.",
                                  ids=", ".join(map(str, missing[:5])), unit=measure.unit_code)
    if measure.fire_points:
        marks = ", ".join("?" * len(measure.fire_points))
        found = {int(r["key"]) for r in store.query(
            f"SELECT DISTINCT d.key FROM fire_detections d JOIN cells c ON c.cell = d.cell"
            f" WHERE d.key IN ({marks}) AND {where}", [*measure.fire_points, *scope])}
        missing = [k for k in measure.fire_points if k not in found]
        if missing:
            raise ValidationError("No fire point {keys} lies in {unit}; cite the unit's own fire points.",
                                  keys=", ".join(map(str, missing[:5])), unit=measure.unit_code)


def insert(store: Store, measure: Measure, *, issued_by: str, now: dt.datetime) -> dict[str, Any]:
    """Write a checked measure (inside the caller's transaction) and return its row.

    The person, when named, must hold a role on the unit, and the role an interview concerns
    (:data:`ROLE_OF_KIND`); the tasks and fire points cited must lie on the unit's cells.
    """
    lineage = unit_lineage(store, measure.unit_code)
    level = lineage[0]["level"]
    person: dict[str, Any] = {"id": None, "name": "", "roles": []}
    role = ""
    if measure.person_key:
        person, _ = person_on_unit(store, measure.person_key, measure.unit_code)
        wanted = ROLE_OF_KIND.get(measure.kind)
        if wanted and wanted not in person["roles"]:
            raise ValidationError(_NOT_HOLDER[wanted], name=person["name"], unit=measure.unit_code)
        role = wanted or next((r for r in ("grid_leader", "unit_head", "supervisor", "grid_member", "inspector")
                               if r in person["roles"]), person["roles"][0])
    _check_basis(store, measure, level)
    path = "/" + "/".join(u["code"] for u in reversed(lineage)) + "/"
    period = measure.period
    row = {
        "kind": measure.kind, "unit_code": measure.unit_code, "unit_path": path, "unit_name": lineage[0]["name"],
        "person_id": person["id"], "person_name": person["name"], "person_role": role,
        "issued_on": measure.issued_on, "document_no": measure.document_no, "reason": measure.reason,
        "amount_yuan": measure.amount_yuan, "period_kind": period.kind if period else None,
        "period_start": period.start if period else None, "period_end": period.end if period else None,
        "task_ids": json.dumps(list(measure.tasks)), "fire_keys": json.dumps(list(measure.fire_points)),
        "revokes": None, "issued_by": issued_by, "recorded_at": now,
    }
    return _append(store, row)


def _append(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    new_id = int(store.scalar("SELECT nextval('accountability_measures_id_seq')"))
    columns = ["id", *row]
    store.execute(f"INSERT INTO accountability_measures ({', '.join(columns)})"
                  f" VALUES ({', '.join('?' * len(columns))})", [new_id, *row.values()])
    return {"id": new_id, **row}


def revocation_of(store: Store, measure_id: int, *, reason: Any, document_no: Any, issued_on: dt.date,
                  today: dt.date, issued_by: str, now: dt.datetime) -> dict[str, Any]:
    """Append the revocation of a measure (inside the caller's transaction): the same unit, person and period,
    its own date, reason and (optional) document number.

    Raises
    ------
    NotFound
        No measure with that id.
    Conflict
        The record is itself a revocation, or has been revoked already.
    ValidationError
        A missing reason, a date in the future or before the measure's own date.
    """
    rows = store.query("SELECT * FROM accountability_measures WHERE id = ?", [int(measure_id)])
    if not rows:
        raise NotFound("No accountability measure {id}.", id=measure_id)
    original = rows[0]
    if original["kind"] == REVOCATION:
        raise Conflict("Record {id} is a revocation; record the measure again instead of revoking a revocation.",
                       id=measure_id)
    earlier = store.scalar("SELECT id FROM accountability_measures WHERE revokes = ?", [int(measure_id)])
    if earlier is not None:
        raise Conflict("Measure {id} was revoked already (record {by}).", id=measure_id, by=earlier)
    why = check_text(reason, field="reason", limit=MAX_REASON, lines=True)
    document = check_text(document_no, field="document", limit=MAX_DOCUMENT, required=False)
    issued = pd.Timestamp(original["issued_on"]).date()
    if issued_on > today:
        raise ValidationError("The measure's date {day} lies in the future (today is {today} in Beijing); a measure "
                              "is recorded once it is issued.", day=issued_on.isoformat(), today=today.isoformat())
    if issued_on < issued:
        raise ValidationError("A revocation dated {day} cannot come before the measure it revokes ({issued}).",
                              day=issued_on.isoformat(), issued=issued.isoformat())
    row = {k: original[k] for k in ("unit_code", "unit_path", "unit_name", "person_id", "person_name", "person_role",
                                    "period_kind", "period_start", "period_end")}
    row.update(kind=REVOCATION, issued_on=issued_on, document_no=document, reason=why, amount_yuan=None,
               task_ids="[]", fire_keys="[]", revokes=int(measure_id), issued_by=issued_by, recorded_at=now)
    return _append(store, row)


def read(store: Store, *, units: Sequence[str] | None = None, within: str | None = None,
         period: ReportPeriod | None = None) -> pd.DataFrame:
    """The records on the units of ``units`` or below them (every record for None), of ``within`` and below it,
    and of the period (resting on a period that overlaps it, or issued in it), oldest first.

    Each record carries ``revoked_by``: the id of the revocation that revoked it (None while it stands).
    """
    where, params = ["TRUE"], []
    if units is not None:
        if not units:
            where.append("FALSE")
        else:
            where.append("(" + " OR ".join("strpos(m.unit_path, ?) > 0" for _ in units) + ")")
            params += [f"/{u}/" for u in units]
    if within is not None:
        where.append("strpos(m.unit_path, ?) > 0")
        params.append(f"/{within}/")
    if period is not None:
        where.append("((m.period_start IS NOT NULL AND m.period_start <= ? AND m.period_end >= ?)"
                     " OR (m.period_start IS NULL AND m.issued_on >= ? AND m.issued_on <= ?))")
        params += [period.end, period.start, period.start, period.end]
    frame = store.query_df(
        "SELECT m.id, m.kind, m.unit_code, m.unit_name, m.person_name, m.person_role, m.issued_on, m.document_no,"
        " m.reason, m.amount_yuan, m.period_kind, m.period_start, m.period_end, m.task_ids, m.fire_keys, m.revokes,"
        " r.id AS revoked_by, m.issued_by, m.recorded_at FROM accountability_measures m"
        " LEFT JOIN accountability_measures r ON r.revokes = m.id"
        f" WHERE {' AND '.join(where)} ORDER BY m.issued_on, m.id", params)
    for column in ("issued_on", "period_start", "period_end"):
        frame[column] = [None if v is None or pd.isna(v) else pd.Timestamp(v).date().isoformat()
                         for v in frame[column]]
    frame["recorded_at"] = [pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S") for v in frame["recorded_at"]]
    for column in ("task_ids", "fire_keys"):
        frame[column] = [json.loads(v) for v in frame[column]]
    for column in ("revokes", "revoked_by"):
        frame[column] = frame[column].astype("Int64")
    return frame

