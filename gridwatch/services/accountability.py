"""Accountability measures issued by leaders (通报, 约谈, 问责, penalties): record, revoke, list, within scope.

A unit head records measures on the units below the unit they lead (a township head on its villages, the county on
its townships), an administrator on the units below theirs; nobody records a measure on a unit outside their
scope, and nobody reads measures outside it (``report.view``). Each record is an audit-log entry in the same
transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from gridwatch import accountability as _acc
from gridwatch import auth
from gridwatch.errors import PermissionDenied, ValidationError
from gridwatch.periods import ReportPeriod, parse_date
from gridwatch.services._common import Actor, actor_name, audit, policy, require, require_system, user_of
from gridwatch.storage import Store

#: the grant that lets a leader record a measure on the units below theirs (unit heads, administrators)
RECORD = "accountability.record"
#: the grant that lets a person read measures (the same as reports)
VIEW = "report.view"
MEASURE_KINDS = tuple(_acc.KINDS)


def _require_above(store: Store, actor: Actor, unit: str) -> None:
    """Refuse unless the actor holds :data:`RECORD` on a unit above ``unit`` (refusals are recorded)."""
    lineage = _acc.unit_lineage(store, unit)
    if len(lineage) < 2:  # the top of the stored tree: no leader in gridwatch stands above it
        require_system(actor, RECORD)
        return
    parent = lineage[1]["code"]
    user = actor if isinstance(actor, auth.User) else None
    if user is not None and not auth.can_act_on_unit(store, user, RECORD, parent) \
            and auth.can_act_on_unit(store, user, RECORD, unit):
        try:
            require(store, actor, RECORD, unit=parent)  # records the refusal
        except PermissionDenied as exc:
            raise PermissionDenied("A measure on {unit} is issued from a unit above it; your role is held on {unit} "
                                   "itself.", unit=unit) from exc
    require(store, actor, RECORD, unit=parent)


def record_measure(store: Store, actor: Actor, *, kind: str, unit: str | None = None, person: str | None = None,
                   issued_on: str | dt.date, document_no: str, reason: str, amount_yuan: Any = None,
                   period: ReportPeriod | None = None, tasks: Sequence[Any] = (),
                   fire_points: Sequence[Any] = (), now: dt.datetime | None = None) -> dict[str, Any]:
    """Record a measure a leader has issued, on a unit (and a person of it, where one is named).

    Parameters
    ----------
    kind : str
        One of :data:`MEASURE_KINDS` (``notice`` 通报, ``interview_grid_leader`` 约谈网格长（第一责任人）,
        ``interview_principal`` 约谈主要负责人, ``interview_deputy`` 约谈分管负责人, ``accountability`` 问责,
        ``economic_penalty`` 经济处罚, ``administrative_penalty`` 行政处罚).
    unit : str, optional
        The unit concerned; without it, the one unit the person holds a role on.
    person : str, optional
        The person key of the person concerned; they must hold a role on the unit (for an interview of the grid
        leader or the principal leader, that role).
    issued_on : date
        The Beijing date of the document; a future date is refused.
    document_no, reason : str
        The document number (文号) and why, both required.
    amount_yuan : number, optional
        An economic penalty's amount, as the document gives it.
    period : ReportPeriod, optional
        The report period the measure rests on.
    tasks, fire_points : sequence of int
        Task ids and fire points (detection keys) it rests on; they must lie on the unit's cells.

    Returns
    -------
    dict
        The stored record.

    Raises
    ------
    PermissionDenied
        The actor leads no unit above the unit concerned (the refusal is recorded).
    ValidationError, NotFound
        What the measure says cannot be taken as given; nothing is stored.
    """
    rules = policy(store)
    if unit is None and person:
        _, unit = _acc.person_on_unit(store, person, None)
    if unit is None:
        raise ValidationError("Say which unit the measure concerns (or name a person of it).")
    _require_above(store, actor, unit)
    measure = _acc.check_measure(kind=kind, unit_code=unit, issued_on=parse_date(issued_on), today=rules.today(),
                                 document_no=document_no, reason=reason, person_key=person,
                                 amount_yuan=amount_yuan, period=period, tasks=tasks, fire_points=fire_points)
    moment = _utc(now)
    with store.transaction():
        row = _acc.insert(store, measure, issued_by=actor_name(actor), now=moment)
        audit(store, actor=actor_name(actor), action="accountability.record", subject=f"measure:{row['id']}",
              detail=_detail(row))
    return _public(row)


def revoke_measure(store: Store, actor: Actor, measure_id: int, *, reason: str, document_no: str = "",
                   issued_on: str | dt.date | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Revoke a recorded measure with a new record (the reason required, a document number if there is one); the
    measure stays on record, marked as revoked. Only one who may record a measure on its unit may revoke it."""
    rules = policy(store)
    unit = store.scalar("SELECT unit_code FROM accountability_measures WHERE id = ?", [int(measure_id)])
    if unit is not None:
        _require_above(store, actor, str(unit))
    moment = _utc(now)
    with store.transaction():
        row = _acc.revocation_of(store, int(measure_id), reason=reason, document_no=document_no,
                                 issued_on=parse_date(issued_on) if issued_on else rules.today(),
                                 today=rules.today(), issued_by=actor_name(actor), now=moment)
        audit(store, actor=actor_name(actor), action="accountability.revoke", subject=f"measure:{measure_id}",
              detail=_detail(row))
    return _public(row)


def list_measures(store: Store, actor: Actor, *, unit: str | None = None,
                  period: ReportPeriod | None = None) -> pd.DataFrame:
    """The measures on ``unit`` and the units below it (every unit the actor may see, without one), of the period
    when one is given, revocations included; a revoked measure has ``revoked_by`` set."""
    if unit is not None:
        _acc.unit_lineage(store, unit)
        require(store, actor, VIEW, unit=unit)
    else:
        require(store, actor, VIEW)
    user = user_of(actor)
    units = None if user is None else sorted({u for role, u, _ in user.roles
                                              if u is not None and VIEW in user.role_grants.get(role, ())})
    return _acc.read(store, units=None if unit is not None else units, within=unit, period=period)


def may_record_measure(store: Store, actor: Actor, unit: str) -> bool:
    """Whether the actor may record measures on ``unit`` (for a screen deciding to show its form; no refusal is
    recorded)."""
    lineage = _acc.unit_lineage(store, unit)
    user = user_of(actor)
    if user is None:
        return True
    return len(lineage) > 1 and auth.can_act_on_unit(store, user, RECORD, lineage[1]["code"])


def measure_kind_labels(language: str = "zh_CN") -> dict[str, str]:
    """The measures a leader may record, with their labels in ``language``, mildest first."""
    from gridwatch.i18n import gettext

    return {kind: gettext(label, language) for kind, label in _acc.KINDS.items()}


def _utc(now: dt.datetime | None) -> dt.datetime:
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    """The whole record, for the audit log (which the tamper-evident chain seals)."""
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in row.items()
            if k not in ("unit_path", "recorded_at")}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in row.items()
           if k != "unit_path"}
    out["task_ids"], out["fire_keys"] = json.loads(row["task_ids"]), json.loads(row["fire_keys"])
    return out


__all__ = ["RECORD", "MEASURE_KINDS", "record_measure", "revoke_measure", "list_measures", "may_record_measure",
           "measure_kind_labels"]
