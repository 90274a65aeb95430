"""Alarms from other systems (video 蓝天卫士, drones, hotline complaints): each opens a task, and its outcome is told.

An alarm arrives through the HTTP API from an integration (:class:`~gridwatch.services._common.IntegrationActor`).
:func:`read_alarm` checks what was sent and brings its position to WGS84; :func:`post_alarms` stores a batch of
them and opens one task per new alarm on its cell, for the cell's responsible person, through the same door as
dispatch, with a priority and a due time from the policy. An integration's ``external_id`` names one alarm: sent
again (a retry, or twenty copies at once) it answers with the first one's ids, because the database's unique key
on ``(integration, external_id)`` decides which insert is the first, not a look before the write.
:func:`alarm_show` gives an alarm with its task's state and outcome, for a hotline to feed back to the caller.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
import pandas as pd

from gridwatch import problems, regionstore, workflow
from gridwatch.crs import gcj02_to_wgs84
from gridwatch.errors import GridwatchError, NotFound, OutsideRegion, PermissionDenied, ValidationError
from gridwatch.intake import CATEGORY_TITLES, assignees, link_photos, open_intake
from gridwatch.photos import Photo
from gridwatch.services._common import Actor, IntegrationActor, actor_name, policy, require, require_system
from gridwatch.storage import Store
from gridwatch.tasks import naive_utc

__all__ = ["SOURCES", "CATEGORIES", "CRS_NAMES", "ALARM_FIELDS", "Alarm", "AlarmOutcome", "read_alarm",
           "post_alarms", "post_alarm_groups", "alarm_show", "alarm_outcome"]

#: where an alarm comes from
SOURCES = ("video", "drone", "hotline", "other")
#: what an alarm is about (the problem register's categories)
CATEGORIES = problems.CATEGORIES
#: the coordinate systems a position may be sent in: WGS84 (GPS), or GCJ-02 (consumer map apps), converted here
CRS_NAMES = ("wgs84", "gcj02")
#: the fields of an alarm: name → (JSON type, required)
ALARM_FIELDS: dict[str, tuple[str, bool]] = {
    "external_id": ("string", True),
    "source": ("string", True),
    "category": ("string", True),
    "lat": ("number", True),
    "lng": ("number", True),
    "crs": ("string", False),
    "observed_at": ("string", True),
    "description": ("string", True),
    "contact": ("string", False),
}
#: the longest text accepted per field (characters)
TEXT_LIMITS = {"external_id": 128, "description": 2000, "contact": 200}
#: how far ahead of the server's clock an observation may be (the sender's clock may run fast)
FUTURE_TOLERANCE = dt.timedelta(minutes=10)
#: the oldest observation accepted: anything older is a wrong date, not an alarm to check in the field
MAX_AGE = dt.timedelta(days=90)
#: words of the task titles (shown to field staff as the titles of other tasks are)
_SOURCE_TITLES = {"video": "视频告警", "drone": "无人机发现", "hotline": "热线投诉", "other": "外部告警"}


@dataclass(frozen=True)
class Alarm:
    """An alarm as checked on arrival: its position in WGS84 and its observation time in naive UTC."""

    external_id: str
    source: str
    category: str
    lat: float
    lng: float
    crs: str
    observed_at: dt.datetime
    description: str
    contact: str = ""


@dataclass(frozen=True)
class AlarmOutcome:
    """What became of one posted alarm: stored now (``created``), or found stored (a repeat), or refused."""

    created: bool = False
    answer: dict[str, Any] | None = None
    error: GridwatchError | None = None


def _text(fields: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = fields.get(name, "" if not required else None)
    if not isinstance(value, str):
        raise ValidationError("The field {field} must be a text (got {value!r}).", field=name, value=value)
    value = value.strip()
    if required and name != "description" and not value:
        raise ValidationError("The field {field} must not be empty.", field=name)
    limit = TEXT_LIMITS.get(name)
    if limit and len(value) > limit:
        raise ValidationError("The field {field} holds {length} characters, more than the {limit} allowed.",
                              field=name, length=len(value), limit=limit)
    return value


def _choice(fields: Mapping[str, Any], name: str, allowed: Sequence[str], default: str | None = None) -> str:
    value = fields.get(name, default)
    if value not in allowed:
        raise ValidationError("The field {field} is {value!r}; use one of {allowed}.", field=name, value=value,
                              allowed=", ".join(allowed))
    return str(value)


def _number(fields: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("The field {field} must be a number (got {value!r}).", field=name, value=value)
    if not low <= value <= high:
        raise ValidationError("The field {field} is {value}, outside {low} to {high} degrees.", field=name,
                              value=value, low=low, high=high)
    return float(value)


def read_alarm(fields: Mapping[str, Any], *, now: dt.datetime | None = None) -> Alarm:
    """Check an alarm as sent (JSON fields) and bring its position to WGS84.

    Parameters
    ----------
    fields : mapping
        ``external_id``, ``source``, ``category``, ``lat``, ``lng``, ``crs`` (``wgs84`` by default, or
        ``gcj02``), ``observed_at`` (ISO 8601 with its offset), ``description`` and optionally ``contact``.
    now : datetime, optional
        The time of arrival (default: the clock), which the observation time is checked against.

    Returns
    -------
    Alarm
        With ``lat``/``lng`` in WGS84 and ``observed_at`` as naive UTC.

    Raises
    ------
    ValidationError
        A field unknown, missing, of the wrong type or out of range, naming the field; an observation time
        without an offset, more than :data:`FUTURE_TOLERANCE` ahead or more than :data:`MAX_AGE` old.

    Examples
    --------
    >>> a = read_alarm({"external_id": "A-1", "source": "hotline", "category": "straw_burning", "lat": 34.42,
    ...                 "lng": 112.42, "observed_at": "2026-06-10T10:20:00+08:00", "description": "冒烟"},
    ...                now=dt.datetime(2026, 6, 10, 3, 0))
    >>> a.observed_at, a.crs
    (datetime.datetime(2026, 6, 10, 2, 20), 'wgs84')
    """
    unknown = sorted(set(fields) - set(ALARM_FIELDS))
    if unknown:
        raise ValidationError("Unknown field {field}; the known fields are {known}.", field=unknown[0],
                              known=", ".join(ALARM_FIELDS))
    now = naive_utc(now)
    external_id = _text(fields, "external_id")
    source = _choice(fields, "source", SOURCES)
    category = _choice(fields, "category", CATEGORIES)
    crs = _choice(fields, "crs", CRS_NAMES, default="wgs84")
    lat = _number(fields, "lat", -90, 90)
    lng = _number(fields, "lng", -180, 180)
    if crs == "gcj02":
        lat, lng = (float(v) for v in gcj02_to_wgs84(lat=lat, lng=lng))
    observed = fields.get("observed_at")
    try:
        moment = dt.datetime.fromisoformat(observed) if isinstance(observed, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError("The field observed_at is {value!r}; give an ISO 8601 time with its offset, such as "
                              "2026-06-10T10:20:00+08:00.", value=observed)
    observed_at = naive_utc(moment)
    if observed_at > now + FUTURE_TOLERANCE:
        raise ValidationError("The field observed_at ({value}) lies in the future; check the sender's clock.",
                              value=observed)
    if observed_at < now - MAX_AGE:
        raise ValidationError("The field observed_at ({value}) is more than {days} days old; send current alarms "
                              "only.", value=observed, days=MAX_AGE.days)
    return Alarm(external_id=external_id, source=source, category=category, lat=lat, lng=lng, crs=crs,
                 observed_at=observed_at, description=_text(fields, "description"),
                 contact=_text(fields, "contact", required=False))


def _iso(moment: Any) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with ``Z``; None stays None."""
    if moment is None or (not isinstance(moment, str) and pd.isna(moment)):
        return None
    return pd.Timestamp(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(cell: Any) -> str:
    return h3.int_to_str(int(cell))


def _answer(row: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to a post: the ids, the cell and who the task went to."""
    person = None
    if row.get("person_key") is not None and not pd.isna(row.get("person_key")):
        person = {"person_key": row["person_key"], "name": row["person_name"], "role": row["assigned_role"]}
    task = row.get("task_id")
    problem = row.get("problem_id")
    return {"alarm_id": int(row["alarm_id"]), "task_id": None if task is None or pd.isna(task) else int(task),
            "problem_id": None if problem is None or pd.isna(problem) else int(problem), "cell": _hex(row["cell"]),
            "assignee": person, "photos": int(row.get("photos") or 0)}


#: an alarm as read, with the integration that sent it: (integration, alarm)
Sent = tuple[IntegrationActor, Alarm]


def _placed(store: Store, sent: list[Sent]) -> tuple[np.ndarray, list[Any]]:
    """The cell of each alarm, or the refusal of one outside the region, its integration's unit or source."""
    grid = regionstore.grid(store)
    lat = np.array([a.lat for _, a in sent], dtype=np.float64)
    lng = np.array([a.lng for _, a in sent], dtype=np.float64)
    cells, pos = grid.locate(lat, lng)
    owners = [grid.owner_codes(level, pos) for level in grid.owner]
    refusals: list[Any] = []
    for i, (actor, alarm) in enumerate(sent):
        if pos[i] < 0:
            refusals.append(OutsideRegion(
                "The point (lat {lat}, lng {lng}) lies outside the region {region} ({name}); "
                "check the coordinates (latitude first) or the region.", lat=alarm.lat, lng=alarm.lng,
                region=grid.region_code, name=regionstore.unit_name(store, grid.region_code)))
        elif alarm.source != actor.source:
            refusals.append(PermissionDenied("The integration {name} sends {allowed} alarms, not {source}.",
                                             name=actor.name, allowed=actor.source, source=alarm.source))
        elif actor.unit != grid.region_code and all(codes[i] != actor.unit for codes in owners):
            refusals.append(PermissionDenied("The alarm {external_id} lies outside the unit {unit} the integration "
                                             "{name} is scoped to.", external_id=alarm.external_id,
                                             unit=actor.unit, name=actor.name))
        else:
            refusals.append(None)
    return np.asarray(cells, dtype=np.uint64).view(np.int64), refusals


_COLUMNS = ("integration_id, external_id, source, category, lat, lng, crs, cell, observed_at, received_at,"
            " description, contact")
_ANSWER_SQL = ("SELECT a.id AS alarm_id, a.external_id, a.task_id, a.problem_id, a.cell, p.person_key,"
               " p.name AS person_name, t.assigned_role,"
               " (SELECT count(*) FROM intake_photos ip WHERE ip.task_id = a.task_id) AS photos FROM alarms a"
               " LEFT JOIN tasks t ON t.id = a.task_id"
               " LEFT JOIN people p ON p.id = t.assignee_id")

def _values(rows: int, columns: int) -> str:
    """``(?, …), (?, …)``: the VALUES of a multi-row statement."""
    one = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([one] * rows)


def _store_new(store: Store, opener: str, sent: list[Sent], cells: np.ndarray, now: dt.datetime,
               pictures: Sequence[Sequence[tuple[str, Photo]]]) -> dict[tuple[int, str], dict[str, Any]]:
    """Insert the alarms whose key is free and open their tasks (``opener`` records who opened them), with each
    one's photos (checked); the answers of the new ones by (integration id, external id)."""
    rows = [[actor.id, a.external_id, a.source, a.category, a.lat, a.lng, a.crs, int(c), a.observed_at, now,
             a.description, a.contact] for (actor, a), c in zip(sent, cells, strict=True)]
    # the unique key decides which alarms are new: a copy already stored (or stored by a concurrent transaction
    # that commits first) inserts nothing here
    inserted = store.query(f"INSERT INTO alarms ({_COLUMNS}) VALUES {_values(len(rows), 12)}"
                           " ON CONFLICT (integration_id, external_id) DO NOTHING RETURNING id, integration_id,"
                           " external_id", [v for row in rows for v in row])
    if not inserted:
        return {}
    ids = {(int(r["integration_id"]), r["external_id"]): int(r["id"]) for r in inserted}
    fresh = [i for i, (actor, a) in enumerate(sent) if (actor.id, a.external_id) in ids]
    new = [sent[i][1] for i in fresh]
    keys = [ids[sent[i][0].id, sent[i][1].external_id] for i in fresh]
    rules = policy(store)
    titles = np.array([f"{_SOURCE_TITLES[a.source]}核查：{CATEGORY_TITLES[a.category]}"
                       + (f" {a.description[:40]}" if a.description else "") for a in new], dtype=object)
    opened, problems_at = open_intake(
        store, cells=cells[fresh], categories=[a.category for a in new], observed=[a.observed_at for a in new],
        titles=titles, source_kind="alarm", source_keys=[str(k) for k in keys], dispatch=rules.dispatch,
        problem_rules=rules.problems, now=now, opener=opener, alarm_ids=keys, detail={"by": "alarm"})
    _, answered = assignees(store)
    task_of = dict(zip(keys, opened, strict=True))
    problem_of = {keys[k]: pid for k, pid in problems_at.items()}
    triples = [[alarm_id, task_of[alarm_id], problem_of.get(alarm_id)] for alarm_id in keys]
    store.execute("UPDATE alarms SET task_id = v.task_id, problem_id = v.problem_id FROM (VALUES "
                  + ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))"] * len(triples))
                  + ") AS v (alarm_id, task_id, problem_id) WHERE alarms.id = v.alarm_id",
                  [v for triple in triples for v in triple])
    for i, key in zip(fresh, keys, strict=True):
        if pictures[i]:
            link_photos(store, pictures[i], task_id=task_of[key], uploaded_by=sent[i][0].username, channel="alarm",
                        now=now)
    return {(sent[i][0].id, sent[i][1].external_id): {
        "alarm_id": key, "task_id": task_of[key], "problem_id": problem_of.get(key), "cell": _hex(cells[i]),
        "assignee": answered.get(int(cells[i])), "photos": len(pictures[i])}
        for i, key in zip(fresh, keys, strict=True)}


def _stored(store: Store, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The answers of alarms stored before, by (integration id, external id)."""
    found: dict[tuple[int, str], dict[str, Any]] = {}
    by_integration: dict[int, list[str]] = {}
    for integration, external_id in dict.fromkeys(wanted):
        by_integration.setdefault(integration, []).append(external_id)
    for integration, external_ids in by_integration.items():
        rows = store.query(f"{_ANSWER_SQL} WHERE a.integration_id = ? AND a.external_id IN"
                           f" ({', '.join('?' * len(external_ids))})", [integration, *external_ids])
        found |= {(integration, r["external_id"]): _answer(r) for r in rows}
    return found


def post_alarms(store: Store, actor: Actor, bodies: Sequence[Mapping[str, Any]], *,
                now: dt.datetime | None = None) -> list[AlarmOutcome]:
    """Store a batch of alarms of one integration and open a task for each new one, all in one transaction.

    Parameters
    ----------
    store : Store
        The database.
    actor : Actor
        The integration posting them (a signed-in person or a system actor is refused).
    bodies : sequence of mapping
        The alarms as sent (JSON fields, see :func:`read_alarm`).
    now : datetime, optional
        The time of arrival (default: the clock).

    Returns
    -------
    list of AlarmOutcome
        One per body, in order: ``created`` with the answer (``alarm_id``, ``task_id``, ``problem_id``, ``cell``,
        ``assignee``); a repeat of a stored external id with the stored alarm's answer; or the refusal
        (:class:`ValidationError`, :class:`OutsideRegion`, :class:`PermissionDenied` for an alarm outside the
        integration's unit or of another source). Every alarm is in the audit record under the integration's name.
    """
    if not isinstance(actor, IntegrationActor):
        actor_name(actor)  # no actor at all is a programming error (TypeError)
        raise PermissionDenied("Alarms come from integrations through the HTTP API; a person reports through the "
                               "app's screens.")
    return _post(store, actor_name(actor), [(actor, bodies)], now)[0]


def post_alarm_groups(store: Store, actor: Actor,
                      groups: Sequence[tuple[IntegrationActor, Sequence[Mapping[str, Any]]]], *,
                      now: dt.datetime | None = None,
                      photos: Sequence[Sequence[Sequence[tuple[str, Photo]]]] | None = None,
                      ) -> list[list[AlarmOutcome]]:
    """:func:`post_alarms` for the alarms of several integrations at once, in one transaction (the API's intake, a
    system actor, stores what arrived together; each integration is checked as the sender of its own).

    The tasks' first events name ``actor`` (``system:api``) as who opened them; the alarms and the audit record name
    each integration. ``photos`` gives each alarm's photos, checked (:func:`gridwatch.photos.inspect_report_photos`),
    in the shape of ``groups``; a new alarm's are kept with its task, a repeat's are not (the first one's answer
    stands).
    """
    require_system(actor, "alarms.intake")
    return _post(store, actor_name(actor), groups, now, photos)


def _post(store: Store, opener: str, groups: Sequence[tuple[IntegrationActor, Sequence[Mapping[str, Any]]]],
          now: dt.datetime | None,
          photos: Sequence[Sequence[Sequence[tuple[str, Photo]]]] | None = None) -> list[list[AlarmOutcome]]:
    now = naive_utc(now)
    for integration, _ in groups:
        if not isinstance(integration, IntegrationActor):
            raise PermissionDenied("Alarms come from integrations through the HTTP API; a person reports through "
                                   "the app's screens.")
        require(store, integration, "alarm.post")
    outcomes: list[list[AlarmOutcome | None]] = [[None] * len(bodies) for _, bodies in groups]
    read: list[tuple[int, int]] = []  # (group, position) of each alarm read
    sent: list[Sent] = []
    for g, (integration, bodies) in enumerate(groups):
        for i, body in enumerate(bodies):
            try:
                sent.append((integration, read_alarm(body, now=now)))
                read.append((g, i))
            except GridwatchError as exc:
                outcomes[g][i] = AlarmOutcome(error=exc)
    with store.transaction():
        if sent:
            cells, refusals = _placed(store, sent)
            first: dict[tuple[int, str], int] = {}  # one insert per key in the batch; its copies repeat it
            for k, refusal in enumerate(refusals):
                g, i = read[k]
                key = (sent[k][0].id, sent[k][1].external_id)
                if refusal is not None:
                    outcomes[g][i] = AlarmOutcome(error=refusal)
                elif key not in first:
                    first[key] = k
            wanted = sorted(first.values())
            pictures = [list(photos[g][i]) if photos is not None else [] for g, i in (read[k] for k in wanted)]
            new = _store_new(store, opener, [sent[k] for k in wanted], cells[wanted], now,
                             pictures) if wanted else {}
            keys = [(sent[k][0].id, sent[k][1].external_id) for k in range(len(sent))]
            known = _stored(store, [key for k, key in enumerate(keys)
                                    if refusals[k] is None and key not in new])
            for k, key in enumerate(keys):
                g, i = read[k]
                if outcomes[g][i] is not None:
                    continue
                if key in new and first[key] == k:
                    outcomes[g][i] = AlarmOutcome(created=True, answer=new[key])
                else:
                    answer = new.get(key) or known.get(key)
                    outcomes[g][i] = AlarmOutcome(answer=answer) if answer else AlarmOutcome(error=NotFound(
                        "The alarm {external_id} was being stored by another request; send it again.",
                        external_id=key[1]))
        _audit_posts(store, groups, outcomes)
    return [[o if o is not None else AlarmOutcome() for o in found] for found in outcomes]


def _audit_posts(store: Store, groups: Sequence[tuple[IntegrationActor, Sequence[Mapping[str, Any]]]],
                 outcomes: Sequence[Sequence[AlarmOutcome | None]]) -> None:
    """One audit entry per posted alarm, under its integration: what it became (created, repeated, refused, why)."""
    rows: list[list[Any]] = []
    for (actor, bodies), found in zip(groups, outcomes, strict=True):
        for body, outcome in zip(bodies, found, strict=True):
            subject = str(body.get("external_id", ""))[:200] if isinstance(body, Mapping) else ""
            if outcome is None or outcome.error is not None:
                detail = {"outcome": "refused", "reason": str(outcome.error) if outcome else ""}
            else:
                detail = {"outcome": "created" if outcome.created else "repeated",
                          **{k: outcome.answer[k] for k in ("alarm_id", "task_id", "problem_id")}}
            rows.append([actor.username, "api.alarms.post", subject, json.dumps(detail, ensure_ascii=False)])
    if rows:
        store.execute(f"INSERT INTO audit_log (actor, action, subject, detail) VALUES {_values(len(rows), 4)}",
                      [v for row in rows for v in row])


def alarm_outcome(events: Sequence[Mapping[str, Any]], *, upto: int | None = None) -> dict[str, Any]:
    """How an alarm's task stands after its events (up to the event ``upto``): its state, the finding and note of
    the last report, and when it was reported, verified, closed or last rejected (ISO 8601, UTC)."""
    seen = [e for e in events if upto is None or int(e["id"]) <= int(upto)]
    out: dict[str, Any] = {"state": seen[-1]["to_state"] if seen else None, "finding": None, "note": None,
                           "reported_at": None, "verified_at": None, "closed_at": None, "rejected_at": None,
                           "rejection_note": None}
    for event in seen:
        detail = event["detail"] if isinstance(event["detail"], dict) else json.loads(event["detail"] or "{}")
        state, when = event["to_state"], _iso(event["happened_at"])
        if state == "reported":
            out.update(finding=detail.get("finding"), note=detail.get("note") or None, reported_at=when,
                       verified_at=None, closed_at=None)
        elif state in ("verified", "closed"):
            out[f"{state}_at"] = when
        elif state == "rejected":
            out.update(rejected_at=when, rejection_note=detail.get("note") or None)
    return out


def alarm_show(store: Store, actor: Actor, alarm_id: int) -> dict[str, Any]:
    """An alarm with its task's state and outcome, for its own integration or a person who may see its cell.

    Raises
    ------
    NotFound
        No such alarm, or one another integration posted (an integration sees only its own).
    PermissionDenied
        A person without ``cell.view`` on its cell.
    """
    rows = store.query("SELECT a.*, i.name AS integration FROM alarms a JOIN integrations i ON i.id = a.integration_id"
                       " WHERE a.id = ?", [int(alarm_id)])
    if not rows or (isinstance(actor, IntegrationActor) and int(rows[0]["integration_id"]) != actor.id):
        raise NotFound("There is no alarm {id}.", id=alarm_id)
    alarm = rows[0]
    require(store, actor, "alarm.view" if isinstance(actor, IntegrationActor) else "cell.view", cell=alarm["cell"])
    task, outcome = None, alarm_outcome([])
    if alarm["task_id"] is not None:
        detail = workflow.task_detail(store, int(alarm["task_id"]))
        person = detail["assignee"]
        task = {"id": int(detail["id"]), "kind": detail["kind"], "state": detail["state"],
                "created_at": _iso(detail["created_at"]), "due_at": _iso(detail["due_at"]),
                "assignee": {"person_key": person["person_key"], "name": person["name"],
                             "role": detail["assigned_role"]} if person else None}
        outcome = alarm_outcome(detail["events"])
    return {"alarm_id": int(alarm["id"]), "external_id": alarm["external_id"], "integration": alarm["integration"],
            "source": alarm["source"], "category": alarm["category"], "lat": alarm["lat"], "lng": alarm["lng"],
            "crs": alarm["crs"], "cell": _hex(alarm["cell"]), "observed_at": _iso(alarm["observed_at"]),
            "received_at": _iso(alarm["received_at"]), "description": alarm["description"],
            "problem_id": alarm["problem_id"], "task": task, "outcome": outcome,
            "photos": [] if alarm["task_id"] is None else [dict(r) for r in store.query(
                "SELECT i.sha256, p.file_name AS name, p.media_type, p.bytes FROM intake_photos i JOIN photos p"
                " ON p.sha256 = i.sha256 WHERE i.task_id = ? ORDER BY i.position", [int(alarm["task_id"])])]}
