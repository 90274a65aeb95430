"""Notifications: tell people of the task facts that concern them through a webhook, with retries and a log.

Three facts are announced, each once (``UNIQUE (task_id, person_id, reason)``):

``assigned``
    a task in state ``assigned`` whose latest assignment went to its current assignee;
``escalated``
    a task whose latest assignment event is an escalation (:func:`gridwatch.workflow.escalate_overdue`),
    announced to the person now holding it;
``due_soon``
    an active task due within ``due_soon_hours``, announced to its assignee, unless that person was told
    of the task (assigned or escalated) when it was already that close to its due time — the first
    message then carried the deadline and a second one at once would be noise.

:func:`collect` finds the facts not yet announced and stores them as ``pending`` rows with a JSON payload
(task, place, due time in local time, person, the Chinese message text). :func:`deliver` sends pending
rows, and failed rows again after a back-off of ``2 ** attempts`` minutes, through a channel such as
:class:`WebhookChannel` (plain JSON, a WeCom or DingTalk group robot, an SMS gateway), and records each
outcome in its own small transaction. :func:`notification_log` lists what happened.

:meth:`WebhookChannel.send` never raises for a remote failure: it returns a :class:`SendResult` whose
``status`` is one of :data:`STATUSES`. It retries HTTP 5xx answers, timeouts and failed connections
within the call; never a refusal (4xx, a robot's non-zero ``errcode``) nor a rate limit, which
:func:`deliver` tries again on a later run. Webhook keys (``key``, ``access_token`` and the like in the
query) and the DingTalk signing secret never appear in a message, a log line or ``last_error``.

Examples
--------
>>> channel = WebhookChannel("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123", kind="wecom")
>>> channel.url_redacted
'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***'
>>> channel.body({"text": "【网格化监管】新任务", "phone": "13800000001"})["text"]["mentioned_mobile_list"]
['13800000001']
>>> channel_from_settings("", "wecom", None) is None
True
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import h3
import numpy as np
import pandas as pd
import pyarrow as pa

from gridwatch.errors import ValidationError
from gridwatch.i18n import DEFAULT_LANGUAGE, task_titles
from gridwatch.storage import Store
from gridwatch.policy import TIMEZONE
from gridwatch.tasks import ACTIVE_STATES, naive_utc
from gridwatch.webio import Answer, Verdict, clip

__all__ = [
    "KINDS",
    "REASONS",
    "STATUSES",
    "RATE_LIMIT_ERRCODES",
    "SendResult",
    "Channel",
    "WebhookChannel",
    "channel_from_settings",
    "dingtalk_sign",
    "collect",
    "deliver",
    "notification_log",
]

log = logging.getLogger(__name__)

#: channel kinds: a plain JSON POST, a WeCom (企业微信) group robot, a DingTalk (钉钉) group robot, an SMS gateway
KINDS = ("json", "wecom", "dingtalk", "sms")
#: the facts announced, the ``reason`` of a notification
REASONS = ("assigned", "due_soon", "escalated")
#: what a send can end in: ``ok``; ``rejected`` (HTTP 4xx, a robot's non-zero errcode, no phone for an SMS);
#: ``rate_limited`` (HTTP 429, a robot's rate-limit errcode); ``error`` (HTTP 5xx, an unreadable answer, no
#: connection); ``timeout``
STATUSES = ("ok", "rejected", "rate_limited", "error", "timeout")
#: robot errcodes that mean "sending too fast": tried again on a later delivery, not within the call
RATE_LIMIT_ERRCODES: dict[str, frozenset[int]] = {
    "wecom": frozenset({45009}),      # api freq out of limit
    "dingtalk": frozenset({130101}),  # send too fast, exceed 20 times per minute
}
#: the robots' "system busy, try again" errcode: retried within the call like an HTTP 5xx
_BUSY_ERRCODE = -1
#: send statuses after which :func:`deliver` stops its run (the next messages would fare the same)
_STOPPING = ("rate_limited", "error", "timeout")
#: query parameters whose values are secrets (webhook keys, tokens, signatures)
_SECRET_PARAMS = ("key", "access_token", "token", "sign", "secret", "signature", "password")
_SECRET_PARAM_RE = re.compile(r"(?i)((?:^|[?&;\s\"'])(?:%s)=)[^&#\s\"'<>]+" % "|".join(_SECRET_PARAMS))
REDACTED = "***"
#: bytes of an answer read and characters of it quoted in a message
_READ_BYTES = 65536
#: WeCom's text messages hold at most 2048 bytes
_WECOM_MAX_BYTES = 2048
_PREFIX = "【网格化监管】"


# -- sending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """The outcome of one message (after the retries within the call).

    Attributes
    ----------
    ok : bool
        True when the receiver accepted the message.
    status : str
        One of :data:`STATUSES`.
    http_status : int or None
        HTTP status of the last answer; None when no answer came (or no request was made).
    message : str
        What happened, in English, with secrets redacted.
    attempts : int
        Requests made (0 when the message could not be sent at all, e.g. an SMS without a phone).
    """

    ok: bool
    status: str
    http_status: int | None
    message: str
    attempts: int = 1


class Channel(Protocol):
    """What :func:`deliver` needs of a channel: a ``name`` and ``send``."""

    name: str

    def send(self, payload: dict[str, Any]) -> SendResult: ...  # noqa: D102


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64 of HmacSHA256(secret, ``"{timestamp}\\n{secret}"``), not URL-encoded.

    Examples
    --------
    >>> dingtalk_sign("SEC000", 1700000000000)
    'ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA='
    """
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class WebhookChannel:
    """Send notifications to one webhook URL.

    Parameters
    ----------
    url : str
        The webhook, with its key in the query for WeCom (``…/webhook/send?key=…``) and DingTalk
        (``…/robot/send?access_token=…``); the URL of the gateway for ``sms``.
    kind : str
        One of :data:`KINDS`: ``json`` POSTs the payload as it is; ``wecom`` and ``dingtalk`` POST a
        robot text message mentioning the person's mobile number; ``sms`` POSTs
        ``{"to": phone, "text": …}``.
    timeout_s : float
        Socket timeout of each request, seconds.
    retries : int
        Extra attempts within one call after an HTTP 5xx, a robot's "busy" errcode, a timeout or a failed
        connection (never after a refusal or a rate limit).
    backoff_s : float
        Pause before the first retry; it doubles for each further retry.
    secret : str, optional
        DingTalk's signing secret (``SEC…``): each request's URL gets ``timestamp`` and ``sign``.
    opener : object, optional
        Something with ``open(request, timeout=...)`` like :class:`urllib.request.OpenerDirector`
        (the default is :func:`urllib.request.build_opener`, which honours proxy variables).

    Raises
    ------
    ValidationError
        A URL that is not http(s), an unknown kind, settings out of range, or a secret for a kind that
        does not sign.
    """

    def __init__(self, url: str, *, kind: str = "json", timeout_s: float = 10, retries: int = 3,
                 backoff_s: float = 1.0, secret: str | None = None, opener: Any = None) -> None:
        self._url = url.strip() if isinstance(url, str) else url
        self._secret = secret or None
        if not isinstance(self._url, str) or not re.match(r"^https?://[^/?#\s]+", self._url):
            raise ValidationError("The webhook URL must start with http:// or https:// and name a host, got {url}.",
                                  url=self.redact(str(url)))
        if kind not in KINDS:
            raise ValidationError("Unknown notification channel kind {kind!r}; use one of {kinds}.", kind=kind,
                                  kinds=", ".join(KINDS))
        if self._secret is not None and kind != "dingtalk":
            raise ValidationError("A signing secret is only used by DingTalk robots (kind dingtalk), not by {kind}.",
                                  kind=kind)
        numbers = (timeout_s, retries, backoff_s)
        if not (all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers)
                and timeout_s > 0 and retries >= 0 and backoff_s >= 0 and int(retries) == retries):
            raise ValidationError(
                "Webhook settings out of range: timeout {timeout} s (> 0), retries {retries} (a whole number >= 0), "
                "back-off {backoff} s (>= 0).", timeout=timeout_s, retries=retries, backoff=backoff_s)
        self.kind = kind
        self.name = kind
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self._opener = opener if opener is not None else urllib.request.build_opener()

    def __repr__(self) -> str:
        return f"WebhookChannel({self.url_redacted!r}, kind={self.kind!r})"

    # -- redaction --

    def _secret_values(self) -> list[str]:
        values = []
        parts = urllib.parse.urlsplit(self._url if isinstance(self._url, str) else "")
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False):
            if name.lower() in _SECRET_PARAMS and value:
                values.append(value)
        if parts.password:
            values.append(parts.password)
        if self._secret:
            values.append(self._secret)
        found = set()
        for value in values:
            found |= {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
        return sorted((v for v in found if v), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with the webhook's keys, tokens, signatures and signing secret replaced by ``***``."""
        for value in self._secret_values():
            text = text.replace(value, REDACTED)
        return _SECRET_PARAM_RE.sub(lambda m: m.group(1) + REDACTED, text)

    @property
    def url_redacted(self) -> str:
        """The webhook URL with its secrets replaced by ``***``."""
        return self.redact(self._url)

    # -- messages --

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON document POSTed for ``payload`` (a notification payload, see :func:`collect`)."""
        text = str(payload.get("text", ""))
        phone = str(payload.get("phone") or "")
        if self.kind == "wecom":
            inner: dict[str, Any] = {"content": _clip_bytes(text, _WECOM_MAX_BYTES)}
            if phone:
                inner["mentioned_mobile_list"] = [phone]
            return {"msgtype": "text", "text": inner}
        if self.kind == "dingtalk":
            # DingTalk highlights the mention only when the text names the number as well
            content = f"{text} @{phone}" if phone and f"@{phone}" not in text else text
            return {"msgtype": "text", "text": {"content": content},
                    "at": {"atMobiles": [phone] if phone else [], "isAtAll": False}}
        if self.kind == "sms":
            return {"to": phone, "text": text}
        return dict(payload)

    def _signed_url(self) -> str:
        if self.kind != "dingtalk" or not self._secret:
            return self._url
        timestamp = int(round(time.time() * 1000))
        sign = urllib.parse.quote_plus(dingtalk_sign(self._secret, timestamp))
        separator = "&" if urllib.parse.urlsplit(self._url).query else ("" if self._url.endswith("?") else "?")
        return f"{self._url}{separator}timestamp={timestamp}&sign={sign}"

    # -- requests --

    def _request(self, url: str, data: bytes) -> Answer:
        """One POST; HTTP errors are answers, transport failures are recorded, nothing raises."""
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "gridwatch-notify/1",
            "Accept": "application/json, */*"})
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return Answer(response.status, response.read(_READ_BYTES))
        except urllib.error.HTTPError as err:
            try:
                body = err.read(_READ_BYTES)
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                err.close()
            return Answer(err.code, body)
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                return Answer(None, failure="timeout", detail=f"{self.timeout_s:g} s")
            return Answer(None, failure="error", detail=clip(self.redact(str(err.reason))))
        except TimeoutError:
            return Answer(None, failure="timeout", detail=f"{self.timeout_s:g} s")
        except (OSError, http.client.HTTPException, ValueError) as err:
            return Answer(None, failure="error", detail=clip(self.redact(f"{type(err).__name__}: {err}")))

    def _classify(self, answer: Answer) -> Verdict:
        """Map one answer (or transport failure) to a status, a message and whether to retry now."""
        if answer.failure == "timeout":
            return Verdict("timeout", f"no answer within the time limit ({answer.detail})", retry=True)
        if answer.failure is not None:
            return Verdict("error", f"could not reach the webhook ({answer.detail})", retry=True)
        code = answer.http_status
        text = answer.body.decode("utf-8", errors="replace")
        # redact before clipping: a clipped secret would no longer match
        said = f": {clip(self.redact(text))}" if text.strip() else ""
        if code == 429:
            return Verdict("rate_limited", f"the webhook is rate limited (HTTP 429{said}); try again later")
        if code is not None and code >= 500:
            return Verdict("error", f"the webhook failed (HTTP {code}{said})", retry=True)
        if code is None or not 200 <= code < 300:
            return Verdict("rejected", f"the webhook refused the message (HTTP {code}{said})")
        if self.kind not in ("wecom", "dingtalk"):
            return Verdict("ok", f"accepted (HTTP {code})")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("errcode"), int):
            return Verdict("error", f"the answer is not the robot's JSON (HTTP {code}{said})")
        errcode, errmsg = data["errcode"], clip(self.redact(str(data.get("errmsg", ""))))
        if errcode == 0:
            return Verdict("ok", f"accepted (errcode 0, {errmsg or 'ok'})")
        if errcode in RATE_LIMIT_ERRCODES.get(self.kind, ()):
            return Verdict("rate_limited", f"the robot is rate limited (errcode {errcode}: {errmsg}); try again later")
        if errcode == _BUSY_ERRCODE:
            return Verdict("error", f"the robot is busy (errcode {errcode}: {errmsg})", retry=True)
        return Verdict("rejected", f"the robot refused the message (errcode {errcode}: {errmsg})")

    def send(self, payload: dict[str, Any]) -> SendResult:
        """Send one notification payload, retrying within the call as configured; never raises for the remote.

        Returns
        -------
        SendResult
            ``ok`` and ``status`` tell what happened; ``message`` is redacted.
        """
        if self.kind == "sms" and not str(payload.get("phone") or "").strip():
            return SendResult(False, "rejected", None, "the person has no phone number to send a text message to",
                              attempts=0)
        data = json.dumps(self.body(payload), ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            answer = self._request(self._signed_url(), data)
            verdict = self._classify(answer)
            if not verdict.retry or attempt > self.retries:
                break
            pause = self.backoff_s * 2 ** (attempt - 1)
            log.info("webhook %s: %s; retry %d of %d in %.1f s", self.url_redacted, self.redact(verdict.message),
                     attempt, self.retries, pause)
            time.sleep(pause)
        message = self.redact(verdict.message)
        if attempt > 1:
            message += f" after {attempt} attempts"
        log.log(logging.INFO if verdict.status == "ok" else logging.WARNING, "webhook %s -> %s: %s",
                self.url_redacted, verdict.status, message)
        return SendResult(verdict.status == "ok", verdict.status, answer.http_status, message, attempts=attempt)


def channel_from_settings(url: str | None, kind: str | None = "json", secret: str | None = None,
                          **options: Any) -> WebhookChannel | None:
    """The configured :class:`WebhookChannel`, or None when no webhook URL is set.

    Parameters
    ----------
    url : str or None
        The webhook URL; empty or None means notifications are not sent (they still collect).
    kind : str or None
        One of :data:`KINDS`; empty means ``json``.
    secret : str or None
        DingTalk's signing secret; empty means none.
    **options
        ``timeout_s``, ``retries``, ``backoff_s``, ``opener`` for :class:`WebhookChannel`.
    """
    if url is None or not str(url).strip():
        return None
    return WebhookChannel(str(url).strip(), kind=(kind or "json").strip(), secret=(secret or "").strip() or None,
                          **options)


# -- collecting the facts --------------------------------------------------------------------------




_TASK_COLUMNS = (
    "t.id AS task_id, t.assignee_id AS person_id, t.title, t.title_key, t.title_args, t.kind, t.cell, t.due_at,"
    " p.name AS person_name, p.phone, tw.name AS township, vi.name AS village"
)
_TASK_JOINS = (
    " JOIN people p ON p.id = t.assignee_id"
    " LEFT JOIN cells c ON c.cell = t.cell"
    " LEFT JOIN units tw ON tw.code = c.township_code"
    " LEFT JOIN units vi ON vi.code = c.village_code"
)


def _assignment_facts(store: Store) -> pd.DataFrame:
    """Tasks whose latest assignment (or escalation) has not been announced to their current assignee.

    A routine patrol is announced only when it is escalated or nearly due: the weekly round of one patrol per
    cell would otherwise flood every inspector with messages they expect anyway.
    """
    return store.query_df(
        "WITH latest AS ("
        "  SELECT e.task_id, e.to_state, e.detail FROM task_events e"
        "  JOIN (SELECT task_id, max(id) AS id FROM task_events WHERE to_state IN ('assigned', 'escalated')"
        "        GROUP BY task_id) m ON m.id = e.id),"
        " facts AS ("
        "  SELECT t.id, CASE WHEN COALESCE(l.to_state, t.state) = 'escalated' THEN 'escalated' ELSE 'assigned' END"
        "         AS reason, l.detail AS event_detail"
        "  FROM tasks t LEFT JOIN latest l ON l.task_id = t.id"
        "  WHERE t.state IN ('assigned', 'escalated') AND t.assignee_id IS NOT NULL"
        "    AND (t.kind <> 'routine_patrol' OR t.state = 'escalated'))"
        f" SELECT {_TASK_COLUMNS}, f.reason, f.event_detail"
        f" FROM facts f JOIN tasks t ON t.id = f.id{_TASK_JOINS}"
        " WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.task_id = t.id AND n.person_id = t.assignee_id"
        "                   AND n.reason = f.reason)"
        " ORDER BY t.id")


def _due_soon_facts(store: Store, now: dt.datetime, window: dt.timedelta) -> pd.DataFrame:
    """Active tasks due within ``window`` of ``now`` whose assignee has not been told they are (nearly) due."""
    active = tuple(s.value for s in ACTIVE_STATES)
    return store.query_df(
        f"SELECT {_TASK_COLUMNS}, 'due_soon' AS reason, NULL AS event_detail"
        f" FROM tasks t{_TASK_JOINS}"
        f" WHERE t.state IN ({', '.join('?' * len(active))}) AND t.due_at > ? AND t.due_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.task_id = t.id AND n.person_id = t.assignee_id"
        "   AND (n.reason = 'due_soon' OR (n.reason IN ('assigned', 'escalated') AND n.created_at >= t.due_at - ?)))"
        " ORDER BY t.id", [*active, now, now + window, window])


def _escalated_to_person(detail: Any, person_id: int) -> bool:
    try:
        data = json.loads(detail) if isinstance(detail, str) else {}
    except ValueError:
        data = {}
    return isinstance(data, dict) and data.get("to_assignee") == person_id


def _payloads(facts: pd.DataFrame, timezone: str) -> list[str]:
    """The JSON payload of each fact: task, place, local due time, person, and the Chinese message."""
    due = (pd.to_datetime(facts.due_at).dt.tz_localize("UTC").dt.tz_convert(timezone)
           .dt.strftime("%Y-%m-%d %H:%M"))
    # the message is Chinese, and so is the task's title in it (a task without one is named by its id)
    title = task_titles(facts[["title_key", "title_args", "title"]], DEFAULT_LANGUAGE).astype(str).str.strip()
    title = title.where(title.ne(""), "任务 " + facts.task_id.astype(str))
    place = (facts.township.fillna("").astype(str) + facts.village.fillna("").astype(str))
    shown = title + np.where(place.ne(""), "（" + place + "）", "")
    to_person = [_escalated_to_person(d, int(p)) for d, p in zip(facts.event_detail, facts.person_id)]
    escalated_text = np.where(to_person, _PREFIX + "任务已升级给您：" + shown + "，期限 " + due,
                              _PREFIX + "任务已逾期升级，请尽快处理：" + shown + "，新期限 " + due)
    text = np.select(
        [facts.reason.eq("assigned"), facts.reason.eq("due_soon")],
        [_PREFIX + "新任务：" + shown + "，期限 " + due, _PREFIX + "任务即将到期：" + shown + "，期限 " + due],
        escalated_text)
    cells = [h3.int_to_str(int(c)) for c in facts.cell]
    out = []
    for i, row in enumerate(facts.itertuples(index=False)):
        out.append(json.dumps({
            "task_id": int(row.task_id), "reason": row.reason, "kind": row.kind, "title": title.iat[i],
            "cell": cells[i], "place": place.iat[i], "due": due.iat[i], "timezone": timezone,
            "person_id": int(row.person_id), "person_name": row.person_name, "phone": row.phone or "",
            "text": str(text[i]),
        }, ensure_ascii=False))
    return out


def collect(store: Store, *, now: dt.datetime | None = None, due_soon_hours: float = 2.0,
            timezone: str = TIMEZONE) -> int:
    """Store a ``pending`` notification for every fact not yet announced; returns how many were added.

    Parameters
    ----------
    store : Store
    now : datetime, optional
        The time of the run (UTC; default the clock) — the due-soon window starts here.
    due_soon_hours : float
        Tasks due within this many hours from ``now`` are announced as due soon (0 turns this off).
    timezone : str
        Zone of the due time shown in the message.

    Raises
    ------
    ValidationError
        A negative or non-finite ``due_soon_hours``.
    """
    if not (isinstance(due_soon_hours, int | float) and math.isfinite(due_soon_hours) and due_soon_hours >= 0):
        raise ValidationError("The due-soon window must be 0 or more hours, got {hours!r}.", hours=due_soon_hours)
    now = naive_utc(now)
    with store.transaction():
        before = store.scalar("SELECT count(*) FROM notifications")
        _insert(store, _assignment_facts(store), now, timezone)
        if due_soon_hours > 0:
            window = dt.timedelta(seconds=round(due_soon_hours * 3600))
            _insert(store, _due_soon_facts(store, now, window), now, timezone)
        added = int(store.scalar("SELECT count(*) FROM notifications") - before)
    if added:
        log.info("notifications: %d new", added)
    return added


def _insert(store: Store, facts: pd.DataFrame, now: dt.datetime, timezone: str) -> None:
    if facts.empty:
        return
    store.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_notifications"
                  " (task_id BIGINT, person_id BIGINT, reason TEXT, created_at TIMESTAMP, payload TEXT)")
    store.execute("DELETE FROM incoming_notifications")
    store.insert_arrow("incoming_notifications", pa.table({
        "task_id": pa.array(facts.task_id.to_numpy(dtype=np.int64)),
        "person_id": pa.array(facts.person_id.to_numpy(dtype=np.int64)),
        "reason": pa.array(facts.reason.astype(str).to_numpy(dtype=object), type=pa.string()),
        "created_at": pa.array([now] * len(facts), type=pa.timestamp("us")),
        "payload": pa.array(_payloads(facts, timezone), type=pa.string()),
    }))
    store.execute(
        "INSERT INTO notifications (task_id, person_id, reason, channel, created_at, status, attempts, last_error,"
        " payload) SELECT task_id, person_id, reason, '', created_at, 'pending', 0, '', payload"
        " FROM incoming_notifications ON CONFLICT DO NOTHING")
    store.execute("DELETE FROM incoming_notifications")


# -- delivering ----------------------------------------------------------------------------------

#: one delivery run at a time in this process, so no notification is sent twice by overlapping runs
_DELIVERY_LOCK = threading.Lock()


def _due_rows(store: Store, now: dt.datetime, limit: int, max_attempts: int) -> list[dict[str, Any]]:
    """Pending rows, and failed rows with attempts left whose back-off (2 ** attempts minutes) has passed."""
    conditions, params = ["status = 'pending'"], []
    for attempts in range(1, max_attempts):
        conditions.append("(status = 'failed' AND attempts = ? AND last_attempt_at <= ?)")
        params += [attempts, now - dt.timedelta(minutes=2 ** attempts)]
    return store.query(
        f"SELECT id, attempts, payload FROM notifications WHERE {' OR '.join(conditions)} ORDER BY id LIMIT ?",
        [*params, int(limit)])


def deliver(store: Store, channel: Channel, *, now: dt.datetime | None = None, limit: int = 500,
            max_attempts: int = 5) -> dict[str, int]:
    """Send the notifications that are due through ``channel``; returns ``{"sent", "failed", "pending"}``.

    Pending notifications go first come first; a failed one is tried again once ``2 ** attempts``
    minutes have passed since its last attempt, until it has had ``max_attempts`` attempts. Each
    outcome is written in its own transaction (no transaction is open while a request is under way).
    A rate limit, a timeout or a failing service ends the run early: the messages after it would
    fare the same, and they stay pending for the next run.

    Parameters
    ----------
    store : Store
    channel : Channel
        E.g. a :class:`WebhookChannel`; its ``name`` is recorded in the ``channel`` column.
    now : datetime, optional
        The time of the run (UTC), which decides the back-offs and stamps every attempt of the run;
        by default the clock, read again for each attempt's stamp.
    limit : int
        At most this many notifications per run.
    max_attempts : int
        Deliveries tried per notification before it stays failed.

    Returns
    -------
    dict
        ``sent`` and ``failed`` in this run; ``pending``: notifications never tried yet, after the run.
    """
    for name, value in (("limit", limit), ("max_attempts", max_attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError("The delivery setting {name} must be a whole number of at least 1, got {value!r}.",
                                  name=name, value=value)
    fixed, now = now is not None, naive_utc(now)
    name = str(getattr(channel, "name", type(channel).__name__))
    redact = getattr(channel, "redact", None)
    sent = failed = 0
    with _DELIVERY_LOCK:
        for row in _due_rows(store, now, limit, max_attempts):
            try:
                payload = json.loads(row["payload"])
            except ValueError:
                payload = {}
            result = channel.send(payload)
            message = redact(result.message) if callable(redact) else result.message
            stamp = now if fixed else naive_utc(None)
            with store.transaction():
                store.execute(
                    "UPDATE notifications SET status = ?, attempts = attempts + 1, last_attempt_at = ?,"
                    " last_error = ?, channel = ? WHERE id = ?",
                    ["sent" if result.ok else "failed", stamp, "" if result.ok else f"{result.status}: {message}",
                     name, row["id"]])
            if result.ok:
                sent += 1
            else:
                failed += 1
                if result.status in _STOPPING:
                    log.warning("notifications: delivery stopped after %s (%s)", result.status, message)
                    break
        pending = int(store.scalar("SELECT count(*) FROM notifications WHERE status = 'pending'"))
    return {"sent": sent, "failed": failed, "pending": pending}


def notification_log(store: Store, *, limit: int = 100) -> pd.DataFrame:
    """The latest notifications, newest first, with the task title, the person and the message text."""
    df = store.query_df(
        "SELECT n.id, n.created_at, n.task_id, t.title, n.reason, n.person_id, p.name AS person, n.channel,"
        " n.status, n.attempts, n.last_attempt_at, n.last_error, n.payload"
        " FROM notifications n LEFT JOIN tasks t ON t.id = n.task_id LEFT JOIN people p ON p.id = n.person_id"
        " ORDER BY n.id DESC LIMIT ?", [int(limit)])
    texts = []
    for payload in df.payload:
        try:
            data = json.loads(payload)
        except (TypeError, ValueError):
            data = {}
        texts.append(data.get("text", "") if isinstance(data, dict) else "")
    return df.drop(columns="payload").assign(text=texts)
