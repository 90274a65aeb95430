"""Other systems calling the HTTP API: integrations and their tokens, outcome webhooks, and the task reads offered.

An administrator creates an integration on the command line (:func:`integration_add`): a name, the source of its
alarms, the unit whose cells it may report on, a rate, and optionally a webhook URL. The token (and the webhook's
signing secret) are shown once; only the token's SHA-256 is stored. :func:`integration_actor` turns a token into
the :class:`~gridwatch.services._common.IntegrationActor` the other services check.

When the task of an alarm is closed, or a report on it is rejected, :func:`deliver_webhooks` posts the outcome to
the integration's webhook: the JSON body signed with HMAC-SHA256 (header ``X-Gridwatch-Signature:
sha256=<hex>``, keyed by the webhook secret), through the notification module's webhook client (which retries
5xx answers and timeouts within an attempt), again after ``2 ** attempts`` minutes when an attempt fails, each
attempt written to ``webhook_attempts``. The app's notification schedule runs it, and ``integrations deliver``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import urllib.request
from typing import Any

from gridwatch import auth, notify, regionstore
from gridwatch.errors import NotFound, PermissionDenied, ValidationError
from gridwatch.services._common import (
    MANAGE_PEOPLE,
    Actor,
    IntegrationActor,
    SystemActor,
    actor_name,
    audit,
    require_region,
    require_system,
)
from gridwatch.services.alarms import SOURCES, _iso, alarm_outcome
from gridwatch.services.tasks import tasks_table
from gridwatch.storage import Store
from gridwatch.tasks import Kind, State, naive_utc

__all__ = ["API", "TOKEN_PREFIX", "DEFAULT_RATE_PER_MINUTE", "SIGNATURE_HEADER", "integration_add", "integration_list",
           "integration_revoke", "integration_actor", "deliver_webhooks", "task_page", "sign_body"]

#: the HTTP API's own doings: identifying callers, recording refusals
API = SystemActor("api")
#: integration tokens start with this, so a caller's token is told from a person's session at a glance
TOKEN_PREFIX = "gwi_"
#: alarms (and reads) an integration may make per minute unless told otherwise
DEFAULT_RATE_PER_MINUTE = 600
#: the most a rate may be set to
MAX_RATE_PER_MINUTE = 100_000
#: attempts of a webhook delivery before it stays failed (back-off 2, 4, 8 … minutes between them)
MAX_ATTEMPTS = 8
#: the header carrying the signature of a webhook body
SIGNATURE_HEADER = "X-Gridwatch-Signature"
#: the largest page of tasks one read returns, and the deepest offset
MAX_PAGE, MAX_OFFSET = 500, 100_000

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
#: one delivery run at a time in this process (a run claims each delivery before it posts it, across processes)
_DELIVERY_LOCK = threading.Lock()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign_body(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``: ``sha256=`` and the hex HMAC-SHA256 keyed by ``secret``.

    Examples
    --------
    >>> sign_body("key", b'{"a": 1}')
    'sha256=85e7b68cdf027474f0f0b8e2e63c4afb88cacf8a3e503aa13160f290dfc506d4'
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def integration_add(store: Store, actor: Actor, name: str, *, source: str, unit: str,
                    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE, webhook_url: str = "") -> dict[str, Any]:
    """Create an integration; its token (and webhook secret) are in the answer, and nowhere afterwards.

    Raises
    ------
    ValidationError
        A name already taken or not 3 to 40 of ``a-z 0-9 . _ -``; an unknown source; a rate that is not a whole
        number from 1 to :data:`MAX_RATE_PER_MINUTE`; a webhook URL that is not http(s).
    NotFound
        No unit with that code.
    """
    require_region(store, actor, MANAGE_PEOPLE)
    name = str(name).strip()
    if not _NAME.fullmatch(name):
        raise ValidationError("An integration name has 3 to 40 characters: lower-case letters, digits, '.', '_' or "
                              "'-' (got {name!r}).", name=name)
    if source not in SOURCES:
        raise ValidationError("Unknown alarm source {source!r}; use one of {known}.", source=source,
                              known=", ".join(SOURCES))
    if isinstance(rate_per_minute, bool) or not isinstance(rate_per_minute, int) or \
            not 1 <= rate_per_minute <= MAX_RATE_PER_MINUTE:
        raise ValidationError("The rate must be a whole number of calls per minute from 1 to {most}, got {rate!r}.",
                              most=MAX_RATE_PER_MINUTE, rate=rate_per_minute)
    if regionstore.unit_name(store, unit) is None:
        raise NotFound("No administrative unit with code {code}.", code=unit)
    webhook_url = (webhook_url or "").strip()
    if webhook_url:
        notify.WebhookChannel(webhook_url)  # refuses a URL that is not http(s) with a host
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    secret = secrets.token_urlsafe(32) if webhook_url else ""
    with store.transaction():
        if store.scalar("SELECT 1 FROM integrations WHERE name = ?", [name]):
            raise ValidationError("The integration name {name} is taken; choose another (a revoked integration "
                                  "keeps its name).", name=name)
        store.execute("INSERT INTO integrations (name, source, unit_code, token_hash, rate_per_minute, webhook_url,"
                      " webhook_secret, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [name, source, unit, _digest(token), rate_per_minute, webhook_url, secret, naive_utc(None),
                       actor_name(actor)])
        audit(store, actor=actor_name(actor), action="integrations.add", subject=name,
              detail={"source": source, "unit": unit, "rate_per_minute": rate_per_minute,
                      "webhook": bool(webhook_url)})
    return {"name": name, "source": source, "unit": unit, "rate_per_minute": rate_per_minute,
            "webhook_url": webhook_url, "token": token, "webhook_secret": secret or None}


def integration_list(store: Store, actor: Actor) -> list[dict[str, Any]]:
    """Every integration (no token, no secret): its scope, rate, webhook, state, alarms and deliveries."""
    require_region(store, actor, MANAGE_PEOPLE)
    rows = store.query(
        "SELECT i.name, i.source, i.unit_code AS unit, i.rate_per_minute, i.webhook_url, i.created_at, i.created_by,"
        " i.revoked_at, (SELECT count(*) FROM alarms a WHERE a.integration_id = i.id) AS alarms,"
        " (SELECT max(a.received_at) FROM alarms a WHERE a.integration_id = i.id) AS last_alarm_at,"
        " (SELECT count(*) FROM webhook_deliveries d WHERE d.integration_id = i.id AND d.status = 'pending')"
        " AS deliveries_pending,"
        " (SELECT count(*) FROM webhook_deliveries d WHERE d.integration_id = i.id AND d.status = 'failed')"
        " AS deliveries_failed FROM integrations i ORDER BY i.name")
    for row in rows:
        row["revoked"] = row["revoked_at"] is not None
        row["webhook_url"] = notify.WebhookChannel(row["webhook_url"]).url_redacted if row["webhook_url"] else ""
    return rows


def integration_revoke(store: Store, actor: Actor, name: str) -> dict[str, Any]:
    """Refuse an integration's token from now on (the integration and its alarms stay, for the record)."""
    require_region(store, actor, MANAGE_PEOPLE)
    with store.transaction():
        rows = store.query("SELECT id, revoked_at FROM integrations WHERE name = ?", [name])
        if not rows:
            raise NotFound("No integration named {name}.", name=name)
        if rows[0]["revoked_at"] is not None:
            return {"name": name, "revoked": True, "revoked_at": rows[0]["revoked_at"], "already": True}
        now = naive_utc(None)
        store.execute("UPDATE integrations SET revoked_at = ?, revoked_by = ? WHERE id = ?",
                      [now, actor_name(actor), rows[0]["id"]])
        audit(store, actor=actor_name(actor), action="integrations.revoke", subject=name)
    return {"name": name, "revoked": True, "revoked_at": now, "already": False}


def integration_actor(store: Store, actor: Actor, token: str) -> IntegrationActor:
    """The integration a token belongs to (the API identifies its callers; a system actor only).

    Raises
    ------
    PermissionDenied
        An unknown token, or a revoked one (``name`` in the error's params names its integration).
    """
    require_system(actor, "integrations.identify")
    rows = store.query("SELECT id, name, unit_code, source, rate_per_minute, revoked_at FROM integrations"
                       " WHERE token_hash = ?", [_digest(token)]) if isinstance(token, str) and token else []
    if not rows:
        raise PermissionDenied("The token is not known; send the integration's token as 'Authorization: Bearer "
                               "<token>', or ask an administrator for one.")
    row = rows[0]
    if row["revoked_at"] is not None:
        raise PermissionDenied("The token of the integration {name} was revoked; ask an administrator for a new "
                               "integration.", name=row["name"])
    return IntegrationActor(int(row["id"]), row["name"], row["unit_code"], row["source"], int(row["rate_per_minute"]))


# -- the tasks other systems read -----------------------------------------------------------------------------------

def task_page(store: Store, actor: Actor, *, mine: bool = False, state: str | None = None, kind: str | None = None,
              unit: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """One page of the tasks a signed-in person may see (``mine``: their own), overdue first, then by due time.

    Returns ``{"tasks", "limit", "offset", "next_offset"}``; ``next_offset`` is None on the last page.
    """
    if isinstance(actor, IntegrationActor):
        raise PermissionDenied("Integrations post and read their alarms; tasks and reports are read by signed-in "
                               "people.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("The parameter limit must be a whole number from 1 to {most}, got {value!r}.",
                              most=MAX_PAGE, value=limit)
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError("The parameter offset must be a whole number from 0 to {most}, got {value!r}.",
                              most=MAX_OFFSET, value=offset)
    if kind is not None and kind not in {k.value for k in Kind}:
        raise ValidationError("Unknown task kind {kind}; use one of {known}.", kind=kind,
                              known=", ".join(k.value for k in Kind))
    if state is not None and state not in {s.value for s in State}:
        raise ValidationError("Unknown task state {state}; use one of {known}.", state=state,
                              known=", ".join(s.value for s in State))
    assignee = None
    if mine:
        if not isinstance(actor, auth.User):
            raise ValidationError("Only a signed-in person has tasks of their own (mine=true).")
        assignee = store.scalar("SELECT person_key FROM people WHERE id = ?", [actor.person_id])
    rows = tasks_table(store, actor, assignee=assignee, state=state, unit=unit, kind=kind, limit=offset + limit + 1)
    page = rows[offset:offset + limit]
    return {"tasks": page, "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > offset + limit else None}


# -- outcome webhooks -----------------------------------------------------------------------------------------------

class _SigningOpener:
    """Opens a webhook request with the signature of its exact body (and the delivery's id) in its headers."""

    def __init__(self, secret: str, delivery_id: int, opener: Any = None) -> None:
        self._secret = secret
        self._delivery = str(delivery_id)
        self._inner = opener if opener is not None else urllib.request.build_opener()

    def open(self, request: urllib.request.Request, timeout: float | None = None) -> Any:  # noqa: D102
        request.add_header(SIGNATURE_HEADER, sign_body(self._secret, bytes(request.data or b"")))
        request.add_header("X-Gridwatch-Delivery", self._delivery)
        return self._inner.open(request, timeout=timeout)


def _queue_outcomes(store: Store, now: dt.datetime) -> int:
    """Make a delivery of every outcome of an alarm not yet made; returns how many.

    Outcomes are the alarm's task closed or its report rejected, and — where the alarm opened a problem (问题台账)
    — the problem closed (销号) or dismissed (不成立): a hotline hears both that the complaint was checked and, when
    it named a standing problem, that the problem was fixed and checked by another person.
    """
    events = store.query(
        "SELECT a.id AS alarm_id, a.integration_id, a.external_id, a.task_id, a.problem_id, i.name AS integration,"
        " e.id AS event_id, e.to_state FROM alarms a JOIN integrations i ON i.id = a.integration_id"
        " JOIN task_events e ON e.task_id = a.task_id"
        " WHERE i.webhook_url <> '' AND i.revoked_at IS NULL AND e.to_state IN ('closed', 'rejected')"
        " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_source = 'task' AND d.event_id = e.id)"
        " ORDER BY e.id")
    made = 0
    for row in events:
        history = store.query("SELECT id, happened_at, to_state, detail FROM task_events WHERE task_id = ?"
                              " ORDER BY id", [row["task_id"]])
        outcome = alarm_outcome(history, upto=row["event_id"])
        payload = {"event": "alarm.outcome", "outcome": row["to_state"], "alarm_id": int(row["alarm_id"]),
                   "external_id": row["external_id"], "integration": row["integration"],
                   "task_id": int(row["task_id"]), "problem_id": row["problem_id"], **outcome}
        made += _queue(store, row, "task", payload, now)
    problem_events = store.query(
        "SELECT a.id AS alarm_id, a.integration_id, a.external_id, a.task_id, a.problem_id, i.name AS integration,"
        " e.id AS event_id, e.to_state FROM alarms a JOIN integrations i ON i.id = a.integration_id"
        " JOIN problem_events e ON e.problem_id = a.problem_id"
        " WHERE i.webhook_url <> '' AND i.revoked_at IS NULL AND e.to_state IN ('closed', 'dismissed')"
        " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_source = 'problem' AND d.event_id = e.id)"
        " ORDER BY e.id")
    for row in problem_events:
        history = store.query("SELECT id, happened_at, to_state, detail FROM problem_events WHERE problem_id = ?"
                              " ORDER BY id", [row["problem_id"]])
        payload = {"event": "alarm.problem_outcome", "outcome": row["to_state"], "alarm_id": int(row["alarm_id"]),
                   "external_id": row["external_id"], "integration": row["integration"],
                   "task_id": None if row["task_id"] is None else int(row["task_id"]),
                   "problem_id": int(row["problem_id"]), **problem_outcome(history, upto=row["event_id"])}
        made += _queue(store, row, "problem", payload, now)
    return made


def problem_outcome(events: list[dict[str, Any]], *, upto: int | None = None) -> dict[str, Any]:
    """How an alarm's problem stands after its events (up to the event ``upto``): its state, when it was found,
    handed over, rectified, checked, closed or dismissed (ISO 8601, UTC), and the checker's note.

    Examples
    --------
    >>> import datetime as dt
    >>> at = dt.datetime(2026, 6, 20, 8, 0)
    >>> outcome = problem_outcome([{"id": 1, "happened_at": at, "to_state": "found", "detail": "{}"},
    ...                            {"id": 2, "happened_at": at, "to_state": "closed", "detail": '{"note": "已复绿"}'}])
    >>> outcome["problem_state"], outcome["closed_at"], outcome["check_note"]
    ('closed', '2026-06-20T08:00:00Z', '已复绿')
    """
    seen = [e for e in events if upto is None or int(e["id"]) <= int(upto)]
    out: dict[str, Any] = {"problem_state": seen[-1]["to_state"] if seen else None}
    for event in seen:
        state = event["to_state"]
        if state in ("found", "assigned", "rectified", "checked", "closed", "dismissed"):
            out[f"{state}_at"] = _iso(event["happened_at"])
        if state in ("checked", "closed", "returned", "dismissed"):
            detail = event["detail"] if isinstance(event["detail"], dict) else json.loads(event["detail"] or "{}")
            if detail.get("note"):
                out["check_note"] = detail["note"]
    return out



def _queue(store: Store, row: dict[str, Any], source: str, payload: dict[str, Any], now: dt.datetime) -> int:
    """One delivery of an event of ``source`` (task or problem) to an alarm's integration; 0 when it exists."""
    inserted = store.query(
        "INSERT INTO webhook_deliveries (integration_id, alarm_id, event_source, event_id, outcome, payload,"
        " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_source, event_id)"
        " DO NOTHING RETURNING id",
        [row["integration_id"], row["alarm_id"], source, row["event_id"], row["to_state"],
         json.dumps(payload, ensure_ascii=False), now, now])
    return len(inserted)


def _claim(store: Store, delivery: dict[str, Any], now: dt.datetime) -> bool:
    """Take a due delivery for this run (its next attempt moves out of every other run's way), or lose it."""
    with store.transaction():
        return bool(store.query(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'"
            " AND next_attempt_at = ? RETURNING id",
            [now + dt.timedelta(minutes=15), delivery["id"], delivery["next_attempt_at"]]))


def deliver_webhooks(store: Store, actor: Actor, *, now: dt.datetime | None = None, opener: Any = None,
                     limit: int = 200, backoff_s: float = 1.0) -> dict[str, int]:
    """Queue the outcomes not yet queued and post the deliveries that are due (a job or the command line).

    Each delivery's body is the same bytes at every attempt, signed with the integration's webhook secret. The
    webhook client retries an HTTP 5xx or a timeout within the attempt (twice, ``backoff_s`` apart, doubling); a
    failed attempt is tried again after ``2 ** attempts`` minutes, up to :data:`MAX_ATTEMPTS` attempts. Every
    attempt is a row of ``webhook_attempts``. Returns ``{"queued", "sent", "failed", "pending"}``.
    """
    require_system(actor, "integrations.deliver")
    fixed = now is not None
    now = naive_utc(now)
    sent = failed = 0
    with _DELIVERY_LOCK:
        with store.transaction():
            queued = _queue_outcomes(store, now)
        due = store.query(
            "SELECT d.id, d.attempts, d.payload, d.next_attempt_at, i.webhook_url, i.webhook_secret"
            " FROM webhook_deliveries d JOIN integrations i ON i.id = d.integration_id"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND i.revoked_at IS NULL AND i.webhook_url <> ''"
            " ORDER BY d.id LIMIT ?", [now, int(limit)])
        for delivery in due:
            if not _claim(store, delivery, now):
                continue
            channel = notify.WebhookChannel(delivery["webhook_url"], kind="json", retries=2, backoff_s=backoff_s,
                                            opener=_SigningOpener(delivery["webhook_secret"], delivery["id"], opener))
            result = channel.send(json.loads(delivery["payload"]))
            stamp = now if fixed else naive_utc(None)
            attempts = int(delivery["attempts"]) + 1
            status = "sent" if result.ok else ("failed" if attempts >= MAX_ATTEMPTS else "pending")
            with store.transaction():
                store.execute("INSERT INTO webhook_attempts (delivery_id, attempted_at, status, http_status, requests,"
                              " message) VALUES (?, ?, ?, ?, ?, ?)",
                              [delivery["id"], stamp, result.status, result.http_status, result.attempts,
                               channel.redact(result.message)])
                store.execute("UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,"
                              " last_error = ? WHERE id = ?",
                              [status, attempts, stamp + dt.timedelta(minutes=2 ** attempts),
                               "" if result.ok else f"{result.status}: {channel.redact(result.message)}",
                               delivery["id"]])
            sent += result.ok
            failed += not result.ok
        pending = int(store.scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))
    return {"queued": queued, "sent": sent, "failed": failed, "pending": pending}
