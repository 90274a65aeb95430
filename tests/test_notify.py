"""Notifications: each task fact collected once, webhook bodies and signatures, retries, back-off, redaction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import h3
import pytest

from gridwatch import notify, workflow
from gridwatch.audit import open_sealed
from gridwatch.errors import ValidationError
from gridwatch.notify import SendResult, WebhookChannel, channel_from_settings, collect, deliver, notification_log
from gridwatch.policy import Policy
from gridwatch.storage import open_store

#: realistic secrets (a WeCom key is a UUID, a DingTalk access token 64 hex digits, a signing secret "SEC…")
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "c0ffee5eed" * 6 + "abcd"
DING_SECRET = "SECb6a1c0d2e4f6a8b5f1e0c2b9a7d4e3f8b6a1c0d2e4f6a8b5f1e0c2b9a7d4e3f8"
SECRETS = (WECOM_KEY, DING_TOKEN, DING_SECRET)


# -- the stand-in webhook --------------------------------------------------------------------------


class WebhookStandIn:
    """A local webhook on 127.0.0.1 that records every request; the path picks the behaviour.

    ===================  ============================================================
    path                 answer
    ===================  ============================================================
    ``/ok``              200 ``{"ok": true}``
    ``/wecom-ok``        200 ``{"errcode": 0, "errmsg": "ok"}`` (``/dingtalk-ok`` too)
    ``/wecom-limited``   200 ``{"errcode": 45009, "errmsg": "api freq out of limit"}``
    ``/dingtalk-limited`` 200 ``{"errcode": 130101, "errmsg": "send too fast, …"}``
    ``/flaky``           503 the first ``flaky_failures`` times, then as ``/ok``
    ``/bad``             400 with a text that repeats the request path and query (and so any key)
    ``/slow``            sleeps ``slow_s`` seconds, then as ``/ok``
    ===================  ============================================================
    """

    def __init__(self, *, flaky_failures: int = 2, slow_s: float = 1.0) -> None:
        self.flaky_failures = flaky_failures
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookStandIn:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a sleeping "slow" answer must not hold up the teardown
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def record(self, entry: dict) -> int:
        """Remember a request; returns how many requests its path has had so far."""
        with self._lock:
            self.requests.append(entry)
            return sum(1 for r in self.requests if r["path"] == entry["path"])

    def to(self, path: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    standin: WebhookStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Keep the test output quiet."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first ("slow")
        self.close_connection = True

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data).encode())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        count = self.standin.record({
            "path": parts.path, "target": self.path, "query": parse_qs(parts.query),
            "content_type": self.headers.get("Content-Type", ""), "body": json.loads(raw.decode("utf-8")),
        })
        path = parts.path
        if path == "/ok":
            self._json(200, {"ok": True})
        elif path in ("/wecom-ok", "/dingtalk-ok"):
            self._json(200, {"errcode": 0, "errmsg": "ok"})
        elif path == "/wecom-limited":
            self._json(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
        elif path == "/dingtalk-limited":
            self._json(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
        elif path == "/flaky":
            if count <= self.standin.flaky_failures:
                self._send(503, b"<html><title>503 Service Unavailable</title></html>", "text/html")
            else:
                self._json(200, {"ok": True})
        elif path == "/bad":
            self._send(400, f"bad request {self.path}".encode(), "text/plain")
        elif path == "/slow":
            time.sleep(self.standin.slow_s)
            self._json(200, {"ok": True})
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture
def hook() -> Iterator[WebhookStandIn]:
    standin = WebhookStandIn(flaky_failures=2, slow_s=3.0).start()
    try:
        yield standin
    finally:
        standin.stop()


#: no proxy, whatever the environment says: the stand-in is local
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def channel(hook: WebhookStandIn, path: str, **options) -> WebhookChannel:
    options = {"retries": 3, "backoff_s": 0.01, "timeout_s": 2, "opener": DIRECT} | options
    return WebhookChannel(hook.url(path), **options)


PAYLOAD = {"task_id": 7, "reason": "assigned", "title": "卫星火点核查", "phone": "13800000001",
           "text": "【网格化监管】新任务：卫星火点核查，期限 2026-06-01 18:00"}


# -- a small store with one or a few tasks ---------------------------------------------------------

T0 = dt.datetime(2026, 6, 1, 8, 0)
CELL = h3.str_to_int(h3.latlng_to_cell(34.42, 112.41, 8))


def add_task(store, *, person: str = "p1", phone: str = "13800000001", due: dt.datetime = T0 + dt.timedelta(hours=24),
             title: str = "卫星火点核查") -> int:
    """A person and a task assigned to them at T0 (with its event), the way dispatch stores them."""
    with store.transaction():
        store.execute("INSERT INTO people (person_key, name, phone) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                      [person, f"巡查员{person}", phone])
        pid = store.scalar("SELECT id FROM people WHERE person_key = ?", [person])
        store.execute("INSERT INTO tasks (kind, cell, source_kind, source_key, priority, state, assignee_id,"
                      " assigned_role, created_at, due_at, title) VALUES ('fire_check', ?, 'test', ?, 2, 'assigned',"
                      " ?, 'inspector', ?, ?, ?)", [CELL, f"k{time.monotonic_ns()}", pid, T0, due, title])
        task_id = store.scalar("SELECT max(id) FROM tasks")
        store.execute("INSERT INTO task_events (task_id, happened_at, actor, from_state, to_state, detail)"
                      " VALUES (?, ?, 'dispatch', NULL, 'assigned', '{}')", [task_id, T0])
    return task_id


@pytest.fixture(scope="module")
def _small_store():
    with open_sealed(":memory:") as s:
        yield s


@pytest.fixture
def store(_small_store):
    """Here: one migrated in-memory store for the module, emptied of people, tasks and notifications per test."""
    with _small_store.transaction():
        for table in ("notifications", "task_events", "tasks", "people"):
            _small_store.execute(f"DELETE FROM {table}")
    return _small_store


def rows(store) -> list[dict]:
    return store.query("SELECT * FROM notifications ORDER BY id")


# -- the stand-in itself ---------------------------------------------------------------------------


def test_the_standin_listens_on_loopback_only(hook):
    assert urlsplit(hook.base_url).hostname == "127.0.0.1"
    assert hook._server.server_address[0] == "127.0.0.1"


# -- collecting ------------------------------------------------------------------------------------


def test_collect_announces_each_assigned_task_once(demo_store):
    assigned = demo_store.query_df("SELECT t.id, t.assignee_id, t.title, t.cell, t.due_at, p.name, p.phone"
                                   " FROM tasks t JOIN people p ON p.id = t.assignee_id WHERE t.state = 'assigned'"
                                   " AND t.kind <> 'routine_patrol'")
    assert len(assigned) > 10
    now = demo_store.scalar("SELECT min(created_at) FROM tasks")
    assert collect(demo_store, now=now) == len(assigned)
    assert collect(demo_store, now=now) == 0
    assert collect(demo_store, now=now + dt.timedelta(minutes=5)) == 0  # idempotent later too

    stored = demo_store.query_df("SELECT task_id, person_id, reason, status, attempts, channel, payload"
                                 " FROM notifications ORDER BY task_id")
    assert set(stored.reason) == {"assigned"} and set(stored.status) == {"pending"}
    assert (stored.attempts == 0).all()
    merged = stored.merge(assigned, left_on="task_id", right_on="id")
    assert len(merged) == len(assigned) and (merged.person_id == merged.assignee_id).all()

    first = merged.iloc[0]
    payload = json.loads(first.payload)
    local_due = (first.due_at + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")  # Asia/Shanghai is UTC+8
    assert payload["task_id"] == first.task_id and payload["reason"] == "assigned"
    assert payload["title"] == first.title and payload["kind"] == "fire_check"
    assert payload["cell"] == h3.int_to_str(int(first.cell))
    assert payload["due"] == local_due
    assert payload["person_name"] == first["name"] and payload["phone"] == first.phone
    assert payload["text"].startswith(f"【网格化监管】新任务：{first.title}")
    assert payload["text"].endswith(f"，期限 {local_due}")


def test_due_soon_is_announced_once_close_to_the_due_time(demo_store):
    created = demo_store.scalar("SELECT min(created_at) FROM tasks")
    due = demo_store.scalar("SELECT min(due_at) FROM tasks WHERE state = 'assigned'")
    n_due = demo_store.scalar("SELECT count(*) FROM tasks WHERE state = 'assigned' AND due_at = ?", [due])
    assert due - created == dt.timedelta(hours=2)  # the demo's fire checks: a 2 h SLA in the harvest
    assigned = collect(demo_store, now=created)

    # 3 h before: outside a 1 h window
    assert collect(demo_store, now=due - dt.timedelta(hours=3), due_soon_hours=1) == 0
    # 30 min before: every task due then is due soon, once
    assert collect(demo_store, now=due - dt.timedelta(minutes=30), due_soon_hours=1) == n_due
    assert collect(demo_store, now=due - dt.timedelta(minutes=10), due_soon_hours=1) == 0
    soon = demo_store.query_df("SELECT n.task_id, n.person_id, n.payload, t.assignee_id FROM notifications n"
                               " JOIN tasks t ON t.id = n.task_id WHERE n.reason = 'due_soon'")
    assert len(soon) == n_due and (soon.person_id == soon.assignee_id).all()
    assert "即将到期" in json.loads(soon.payload.iloc[0])["text"]
    # past the due time nothing is "due soon" any more
    assert collect(demo_store, now=due + dt.timedelta(minutes=1), due_soon_hours=1) == 0
    assert demo_store.scalar("SELECT count(*) FROM notifications") == assigned + n_due


def test_no_separate_due_soon_when_the_task_was_announced_inside_the_window(demo_store):
    created = demo_store.scalar("SELECT min(created_at) FROM tasks")
    due = demo_store.scalar("SELECT min(due_at) FROM tasks WHERE state = 'assigned'")
    # the default 2 h window equals the 2 h SLA: the assignment message already carried the deadline
    assigned = collect(demo_store, now=created)
    assert collect(demo_store, now=due - dt.timedelta(minutes=30)) == 0
    # the first collect runs only 30 min before the due time: one message, not two
    demo_store.execute("DELETE FROM notifications")
    assert collect(demo_store, now=due - dt.timedelta(minutes=30), due_soon_hours=1) == assigned
    assert demo_store.query("SELECT DISTINCT reason FROM notifications") == [{"reason": "assigned"}]


def test_an_escalation_is_announced_to_the_new_assignee(demo_store):
    now = demo_store.scalar("SELECT min(created_at) FROM tasks")
    collect(demo_store, now=now)
    task = demo_store.query("SELECT * FROM tasks WHERE state = 'assigned' ORDER BY id LIMIT 1")[0]
    # the next person up the chain of the task's cell (a grid leader or unit head of its village, township, county)
    leader = demo_store.query("SELECT a.person_id, a.role, a.unit_code FROM assignments a JOIN cells c"
                              " ON a.unit_code IN (c.village_code, c.township_code, c.county_code)"
                              " WHERE c.cell = ? AND a.role IN ('grid_leader', 'unit_head') AND a.person_id <> ?"
                              " ORDER BY a.unit_code DESC, a.role, a.person_id LIMIT 1",
                              [task["cell"], task["assignee_id"]])[0]
    later = task["due_at"] + dt.timedelta(minutes=5)
    # what workflow.escalate_overdue does for one overdue task
    with demo_store.transaction():
        detail = {"overdue": True, "from_assignee": task["assignee_id"], "from_role": task["assigned_role"],
                  "to_assignee": leader["person_id"], "to_role": leader["role"], "to_unit": leader["unit_code"]}
        demo_store.execute("UPDATE tasks SET assignee_id = ?, assigned_role = ?, assigned_unit = ?, due_at = ?"
                           " WHERE id = ?", [leader["person_id"], leader["role"], leader["unit_code"],
                                             later + dt.timedelta(hours=24), task["id"]])
        demo_store.execute("INSERT INTO task_events (task_id, happened_at, actor, from_state, to_state, detail)"
                           " VALUES (?, ?, 'escalation', 'assigned', 'escalated', ?)",
                           [task["id"], later, json.dumps(detail)])
        demo_store.execute("UPDATE tasks SET state = 'escalated' WHERE id = ?", [task["id"]])

    assert collect(demo_store, now=later, due_soon_hours=0) == 1
    row = demo_store.query("SELECT * FROM notifications WHERE reason = 'escalated'")[0]
    assert row["task_id"] == task["id"] and row["person_id"] == leader["person_id"]
    payload = json.loads(row["payload"])
    phone, name = demo_store.query("SELECT phone, name FROM people WHERE id = ?", [leader["person_id"]])[0].values()
    assert payload["phone"] == phone and payload["person_name"] == name
    assert payload["text"].startswith("【网格化监管】任务已升级给您：")
    assert collect(demo_store, now=later, due_soon_hours=0) == 0


def test_escalate_overdue_feeds_collect(demo_store):
    now = demo_store.scalar("SELECT min(created_at) FROM tasks")
    collect(demo_store, now=now)
    later = demo_store.scalar("SELECT max(due_at) FROM tasks") + dt.timedelta(minutes=1)
    # an aware time: workflow reads a naive one as local time
    moved = workflow.escalate_overdue(demo_store, now=later.replace(tzinfo=dt.UTC), policy=Policy())["escalated"]
    assert moved > 0
    assert collect(demo_store, now=later, due_soon_hours=0) == moved
    escalated = demo_store.query_df("SELECT n.person_id, t.assignee_id FROM notifications n JOIN tasks t"
                                    " ON t.id = n.task_id WHERE n.reason = 'escalated'")
    assert (escalated.person_id == escalated.assignee_id).all()


def test_collect_refuses_a_negative_window(store):
    with pytest.raises(ValidationError):
        collect(store, due_soon_hours=-1)


# -- delivering ------------------------------------------------------------------------------------


def test_delivery_to_a_json_webhook_marks_sent(demo_store, hook):
    now = demo_store.scalar("SELECT min(created_at) FROM tasks")
    n = collect(demo_store, now=now)
    result = deliver(demo_store, channel(hook, "/ok"), now=now)
    assert result == {"sent": n, "failed": 0, "pending": 0}
    assert len(hook.to("/ok")) == n
    stored = {r["id"]: r for r in rows(demo_store)}
    assert {r["status"] for r in stored.values()} == {"sent"}
    assert {(r["attempts"], r["channel"], r["last_error"]) for r in stored.values()} == {(1, "json", "")}
    first = hook.to("/ok")[0]
    assert first["content_type"].startswith("application/json")
    sent = json.loads(rows(demo_store)[0]["payload"])
    assert first["body"] == sent  # the json kind posts the payload as it is
    assert first["body"]["text"].startswith("【网格化监管】新任务：") and first["body"]["phone"].startswith("138")
    # nothing left to send
    assert deliver(demo_store, channel(hook, "/ok"), now=now) == {"sent": 0, "failed": 0, "pending": 0}
    assert len(hook.to("/ok")) == n
    log = notification_log(demo_store, limit=5)
    assert len(log) == 5 and set(log.status) == {"sent"} and log.text.str.contains("新任务").all()
    assert {"title", "person", "reason", "attempts", "last_error"} <= set(log.columns)


def test_wecom_body_mentions_the_mobile(hook):
    result = channel(hook, f"/wecom-ok?key={WECOM_KEY}", kind="wecom").send(PAYLOAD)
    assert result == SendResult(True, "ok", 200, result.message, attempts=1)
    [request] = hook.to("/wecom-ok")
    assert request["query"] == {"key": [WECOM_KEY]}
    assert request["body"] == {"msgtype": "text", "text": {"content": PAYLOAD["text"],
                                                          "mentioned_mobile_list": ["13800000001"]}}


def test_dingtalk_body_and_signature(hook):
    before = int(time.time() * 1000)
    result = channel(hook, f"/dingtalk-ok?access_token={DING_TOKEN}", kind="dingtalk", secret=DING_SECRET).send(PAYLOAD)
    assert result.ok and result.status == "ok"
    [request] = hook.to("/dingtalk-ok")
    query = {k: v[0] for k, v in request["query"].items()}
    assert set(query) == {"access_token", "timestamp", "sign"} and query["access_token"] == DING_TOKEN
    timestamp = int(query["timestamp"])
    assert before - 1000 <= timestamp <= int(time.time() * 1000) + 1000
    expected = base64.b64encode(hmac.new(DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert query["sign"] == expected
    assert "%2B" in request["target"] or "+" not in expected  # the base64 was URL-encoded, "+" kept
    body = request["body"]
    assert body["msgtype"] == "text" and body["at"]["atMobiles"] == ["13800000001"]
    assert body["text"]["content"].startswith(PAYLOAD["text"]) and "@13800000001" in body["text"]["content"]


def test_dingtalk_without_secret_is_not_signed(hook):
    assert channel(hook, f"/dingtalk-ok?access_token={DING_TOKEN}", kind="dingtalk").send(PAYLOAD).ok
    assert set(hook.to("/dingtalk-ok")[0]["query"]) == {"access_token"}


def test_sms_body_and_a_person_without_phone(hook):
    sms = channel(hook, "/ok", kind="sms")
    assert sms.send(PAYLOAD).ok
    assert hook.to("/ok")[0]["body"] == {"to": "13800000001", "text": PAYLOAD["text"]}
    result = sms.send({**PAYLOAD, "phone": ""})
    assert (result.ok, result.status, result.attempts) == (False, "rejected", 0)
    assert len(hook.to("/ok")) == 1


def test_flaky_service_is_retried_then_sent(store, hook):
    add_task(store)
    collect(store, now=T0)
    assert deliver(store, channel(hook, "/flaky"), now=T0) == {"sent": 1, "failed": 0, "pending": 0}
    assert len(hook.to("/flaky")) == 3  # 503, 503, 200 within one call
    [row] = rows(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, "")


def test_flaky_service_beyond_the_retries_fails(hook):
    result = channel(hook, "/flaky", retries=1).send(PAYLOAD)
    assert (result.ok, result.status, result.http_status, result.attempts) == (False, "error", 503, 2)
    assert "HTTP 503" in result.message and "after 2 attempts" in result.message


def test_a_refusal_fails_without_retry_and_the_run_goes_on(store, hook):
    add_task(store, person="p1")
    add_task(store, person="p2", phone="13800000002")
    collect(store, now=T0)
    result = deliver(store, channel(hook, f"/bad?key={WECOM_KEY}", kind="wecom"), now=T0)
    assert result == {"sent": 0, "failed": 2, "pending": 0}
    assert len(hook.to("/bad")) == 2  # one request each: a 400 is not retried
    for row in rows(store):
        assert row["status"] == "failed" and row["attempts"] == 1 and row["channel"] == "wecom"
        assert row["last_error"].startswith("rejected: the webhook refused the message (HTTP 400")
        assert "key=***" in row["last_error"] and WECOM_KEY not in row["last_error"]


def test_a_timeout_fails_and_is_retried_by_a_later_delivery_after_the_back_off(store, hook):
    add_task(store, person="p1")
    add_task(store, person="p2", phone="13800000002")
    collect(store, now=T0)
    slow = channel(hook, "/slow", timeout_s=0.2, retries=1, backoff_s=0)
    began = time.monotonic()
    # the first message times out (twice: one retry); the run stops there, the second stays pending
    assert deliver(store, slow, now=T0) == {"sent": 0, "failed": 1, "pending": 1}
    assert time.monotonic() - began < 2.5  # two 0.2 s timeouts, not the 3 s answers
    assert len(hook.to("/slow")) == 2
    first, second = rows(store)
    assert (first["status"], first["attempts"], first["last_attempt_at"]) == ("failed", 1, T0)
    assert first["last_error"].startswith("timeout: no answer within the time limit (0.2 s)")
    assert second["status"] == "pending"

    ok = channel(hook, "/ok")
    assert deliver(store, ok, now=T0 + dt.timedelta(minutes=1), limit=1) == {"sent": 1, "failed": 0, "pending": 0}
    assert [r["status"] for r in rows(store)] == ["failed", "sent"]  # the failed one waits 2 ** 1 minutes
    assert deliver(store, ok, now=T0 + dt.timedelta(minutes=1, seconds=59)) == {"sent": 0, "failed": 0, "pending": 0}
    assert deliver(store, ok, now=T0 + dt.timedelta(minutes=2)) == {"sent": 1, "failed": 0, "pending": 0}
    first = rows(store)[0]
    assert (first["status"], first["attempts"], first["last_error"]) == ("sent", 2, "")
    assert first["last_attempt_at"] == T0 + dt.timedelta(minutes=2)
    assert len(hook.to("/ok")) == 2


def test_a_rate_limit_is_not_retried_within_the_call_but_later(store, hook):
    add_task(store, person="p1")
    add_task(store, person="p2", phone="13800000002")
    collect(store, now=T0)
    limited = channel(hook, f"/wecom-limited?key={WECOM_KEY}", kind="wecom")
    assert deliver(store, limited, now=T0) == {"sent": 0, "failed": 1, "pending": 1}
    assert len(hook.to("/wecom-limited")) == 1  # no retry within the call, and the run stopped
    first = rows(store)[0]
    assert first["last_error"].startswith("rate_limited: the robot is rate limited (errcode 45009")
    assert WECOM_KEY not in first["last_error"]

    # second failure: the back-off doubles to 4 minutes
    ding = channel(hook, f"/dingtalk-limited?access_token={DING_TOKEN}", kind="dingtalk", secret=DING_SECRET)
    assert deliver(store, ding, now=T0 + dt.timedelta(minutes=2), limit=1)["failed"] == 1
    first = rows(store)[0]
    assert (first["status"], first["attempts"]) == ("failed", 2) and "errcode 130101" in first["last_error"]
    assert not any(s in first["last_error"] for s in SECRETS)

    wecom = channel(hook, f"/wecom-ok?key={WECOM_KEY}", kind="wecom")
    assert deliver(store, wecom, now=T0 + dt.timedelta(minutes=5), limit=1)["sent"] == 1  # the pending one
    assert rows(store)[0]["status"] == "failed"
    assert deliver(store, wecom, now=T0 + dt.timedelta(minutes=6)) == {"sent": 1, "failed": 0, "pending": 0}
    assert [(r["status"], r["attempts"]) for r in rows(store)] == [("sent", 3), ("sent", 1)]


def test_delivery_gives_up_after_max_attempts(store, hook):
    add_task(store)
    collect(store, now=T0)
    bad = channel(hook, "/bad", kind="json")
    assert deliver(store, bad, now=T0, max_attempts=2)["failed"] == 1
    assert deliver(store, bad, now=T0 + dt.timedelta(minutes=2), max_attempts=2)["failed"] == 1
    assert deliver(store, bad, now=T0 + dt.timedelta(days=1), max_attempts=2)["failed"] == 0
    assert rows(store)[0]["attempts"] == 2 and len(hook.to("/bad")) == 2


def test_secrets_never_appear_in_errors_results_or_logs(store, hook, caplog):
    caplog.set_level(logging.DEBUG, logger="gridwatch.notify")
    add_task(store)
    collect(store, now=T0)
    ding = channel(hook, f"/bad?access_token={DING_TOKEN}", kind="dingtalk", secret=DING_SECRET)
    result = ding.send(PAYLOAD)
    assert result.status == "rejected" and "access_token=***" in result.message
    deliver(store, ding, now=T0)
    wecom = channel(hook, f"/flaky?key={WECOM_KEY}", kind="wecom", retries=0)
    assert wecom.send(PAYLOAD).status == "error"
    # the receiver did get the secrets: what is hidden is hidden on our side
    assert hook.to("/bad")[0]["query"]["access_token"] == [DING_TOKEN]
    signs = [r["query"]["sign"][0] for r in hook.to("/bad")]
    texts = [result.message, repr(ding), ding.url_redacted, repr(wecom), caplog.text,
             *(r["last_error"] for r in rows(store))]
    for secret in (*SECRETS, *signs):
        assert not any(secret in text for text in texts), secret
    assert rows(store)[0]["last_error"].startswith("rejected:")
    assert ding.url_redacted.endswith("/bad?access_token=***")


def test_unreachable_webhook_is_an_error_not_an_exception():
    dead = WebhookChannel(f"http://127.0.0.1:9/hook?key={WECOM_KEY}", kind="wecom", retries=1, backoff_s=0,
                          timeout_s=0.5, opener=DIRECT)
    result = dead.send(PAYLOAD)
    assert (result.ok, result.status, result.http_status, result.attempts) == (False, "error", None, 2)
    assert WECOM_KEY not in result.message


# -- settings ----------------------------------------------------------------------------------------


def test_channel_settings_are_checked_without_leaking_the_key():
    assert channel_from_settings(None, "wecom", None) is None
    assert channel_from_settings("  ", "", "") is None
    made = channel_from_settings(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}", "wecom", "")
    assert made.kind == "wecom" and made.name == "wecom"
    assert channel_from_settings("https://example.org/hook", "", None).kind == "json"
    with pytest.raises(ValidationError) as err:
        WebhookChannel(f"ftp://example.org/hook?key={WECOM_KEY}")
    assert WECOM_KEY not in str(err.value) and "key=***" in str(err.value)
    with pytest.raises(ValidationError, match="Unknown notification channel kind"):
        WebhookChannel("https://example.org/hook", kind="pager")
    with pytest.raises(ValidationError) as err:
        WebhookChannel("https://example.org/hook", kind="wecom", secret=DING_SECRET)
    assert DING_SECRET not in str(err.value)
    for bad in ({"timeout_s": 0}, {"retries": -1}, {"backoff_s": -1}, {"retries": 1.5}):
        with pytest.raises(ValidationError, match="Webhook settings out of range"):
            WebhookChannel("https://example.org/hook", **bad)
    with pytest.raises(ValidationError):
        deliver(None, made, limit=0)
    assert notify.KINDS == ("json", "wecom", "dingtalk", "sms")
