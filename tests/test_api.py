"""The HTTP API: its services in-process, then a real `streamlit run app.py` answering a real HTTP client.

The server part starts the app on a free port with a private demo database (as the browser tests do), posts
alarms with ``requests`` and receives the outcome webhooks on a local listener thread. A hotline complaint goes
the whole way: posted, a task for the village's inspector, reported and verified (through the services, while the
server is stopped: DuckDB has one process), the webhook received after the restart, the outcome read back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h3
import pytest
import requests
from conftest import copy_db, drop_db

from gridwatch import auth, services
from gridwatch.api import ROUTES
from gridwatch.api.http import check_fields, language
from gridwatch.cli import main as cli_main
from gridwatch.crs import wgs84_to_gcj02
from gridwatch.errors import NotFound, OutsideRegion, PermissionDenied, ValidationError
from gridwatch.policy import Policy
from gridwatch.services._common import require
from gridwatch.storage import open_store

REPO = Path(__file__).resolve().parents[1]
VILLAGE = "410329-D01-01"   # the demo inspector's village (演示村01-01)
OTHER_TOWNSHIP = "410329-D02"


def _now_text(minutes: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat(timespec="seconds")


def _alarm(external_id: str, lat: float, lng: float, **fields) -> dict:
    return {"external_id": external_id, "source": "hotline", "category": "straw_burning", "lat": lat, "lng": lng,
            "observed_at": _now_text(-5), "description": "村东头麦田有人焚烧秸秆", **fields}


def _spot(store, unit: str = VILLAGE, n: int = 0) -> tuple[float, float]:
    row = store.query("SELECT lat, lng FROM cells WHERE ? IN (village_code, township_code) ORDER BY cell"
                      " LIMIT 1 OFFSET ?", [unit, n])[0]
    return float(row["lat"]), float(row["lng"])


class Listener:
    """A webhook receiver on 127.0.0.1 in a thread: keeps every request's headers and body; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.received


@pytest.fixture
def listener():
    found = Listener()
    yield found
    found.close()


# -- the services, in-process -----------------------------------------------------------------------------------


@pytest.fixture
def hotline(demo_store, listener):
    """A county-wide hotline integration with a webhook to the listener: (store, actor, made)."""
    made = services.integration_add(demo_store, services.CLI, "hotline-12345", source="hotline", unit="410329",
                                    webhook_url=listener.url)
    actor = services.integration_actor(demo_store, services.API, made["token"])
    return demo_store, actor, made


def test_an_integration_token_is_shown_once_and_stored_as_its_hash(hotline):
    store, actor, made = hotline
    assert made["token"].startswith(services.TOKEN_PREFIX) and made["webhook_secret"]
    stored = store.query("SELECT token_hash FROM integrations WHERE name = 'hotline-12345'")[0]["token_hash"]
    assert made["token"] not in stored and len(stored) == 64
    listed = services.integration_list(store, services.CLI)
    assert [r["name"] for r in listed] == ["hotline-12345"] and "token" not in listed[0]
    assert (actor.name, actor.unit, actor.source, actor.username) == ("hotline-12345", "410329", "hotline",
                                                                      "integration:hotline-12345")
    with pytest.raises(ValidationError, match="taken"):
        services.integration_add(store, services.CLI, "hotline-12345", source="hotline", unit="410329")
    with pytest.raises(ValidationError, match="integration name"):
        services.integration_add(store, services.CLI, "Bad Name", source="hotline", unit="410329")
    with pytest.raises(NotFound):
        services.integration_add(store, services.CLI, "nowhere", source="video", unit="999999")
    leader = auth.load_user(store, "leader")
    with pytest.raises(PermissionDenied):
        services.integration_add(store, leader, "mine", source="video", unit="410329")
    services.integration_revoke(store, services.CLI, "hotline-12345")
    with pytest.raises(PermissionDenied, match="revoked") as refused:
        services.integration_actor(store, services.API, made["token"])
    assert refused.value.params["name"] == "hotline-12345"
    with pytest.raises(PermissionDenied, match="not known"):
        services.integration_actor(store, services.API, "gwi_nope")
    with pytest.raises(PermissionDenied):
        services.integration_actor(store, leader, made["token"])  # only the API (a system actor) identifies


def test_an_alarm_opens_one_task_for_the_cells_inspector_and_a_repeat_answers_the_same_ids(hotline):
    store, actor, _ = hotline
    lat, lng = _spot(store)
    first = services.post_alarms(store, actor, [_alarm("A-1", lat, lng)])[0]
    assert first.created and first.error is None
    answer = first.answer
    assert answer["assignee"]["person_key"] == "demo-d01-01-inspector" and answer["problem_id"] is None
    assert answer["cell"] == h3.latlng_to_cell(lat, lng, 8)
    again = services.post_alarms(store, actor, [_alarm("A-1", lat, lng), _alarm("A-1", lat, lng)])
    assert [o.created for o in again] == [False, False] and all(o.answer == answer for o in again)
    copies = services.post_alarms(store, actor, [_alarm("A-2", lat, lng)] * 5)
    assert [o.created for o in copies] == [True, False, False, False, False]
    assert len({o.answer["task_id"] for o in copies}) == 1
    tasks = store.query("SELECT kind, state, source_kind, priority, due_at, created_at FROM tasks"
                        " WHERE source_kind = 'alarm'")
    assert len(tasks) == 2 and {t["kind"] for t in tasks} == {"manual"} and {t["state"] for t in tasks} == {"assigned"}
    rules = Policy.load().dispatch
    hours = (tasks[0]["due_at"] - tasks[0]["created_at"]).total_seconds() / 3600
    assert hours in (rules.sla_hours, rules.sla_key_hours)  # straw burning: the hours of a fire check
    audit = store.query("SELECT actor, action, detail FROM audit_log WHERE action = 'api.alarms.post' ORDER BY id")
    assert len(audit) == 8 and {a["actor"] for a in audit} == {"integration:hotline-12345"}
    assert [json.loads(a["detail"])["outcome"] for a in audit][:3] == ["created", "repeated", "repeated"]


def test_alarms_outside_the_region_the_unit_or_the_source_are_refused_each_with_its_reason(hotline):
    store, actor, _ = hotline
    lat, lng = _spot(store)
    video = services.integration_add(store, services.CLI, "video-d02", source="video", unit=OTHER_TOWNSHIP)
    camera = services.integration_actor(store, services.API, video["token"])
    outcomes = services.post_alarms(store, actor, [
        _alarm("far", 30.0, 112.4), _alarm("video", lat, lng, source="video"),
        _alarm("future", lat, lng, observed_at=_now_text(60)), _alarm("old", lat, lng, observed_at="2020-01-01T00:00Z"),
        _alarm("naive", lat, lng, observed_at="2026-06-10T10:00:00"), _alarm("ok", lat, lng)])
    kinds = [type(o.error) if o.error else None for o in outcomes]
    assert kinds == [OutsideRegion, PermissionDenied, ValidationError, ValidationError, ValidationError, None]
    assert "outside the region 410329" in str(outcomes[0].error)
    outside = services.post_alarms(store, camera, [_alarm("d01", lat, lng, source="video")])[0]
    assert isinstance(outside.error, PermissionDenied) and "outside the unit 410329-D02" in str(outside.error)
    inside = services.post_alarms(store, camera, [_alarm("d02", *_spot(store, OTHER_TOWNSHIP), source="video")])[0]
    assert inside.created
    with pytest.raises(PermissionDenied):
        services.post_alarms(store, auth.load_user(store, "leader"), [_alarm("x", lat, lng)])


def test_a_gcj02_position_is_converted_on_arrival(hotline):
    store, actor, _ = hotline
    lat, lng = _spot(store, n=3)
    g_lat, g_lng = wgs84_to_gcj02(lat=lat, lng=lng)
    answer = services.post_alarms(store, actor, [_alarm("gcj", float(g_lat), float(g_lng), crs="gcj02")])[0].answer
    stored = store.query("SELECT lat, lng, crs FROM alarms WHERE id = ?", [answer["alarm_id"]])[0]
    assert stored["crs"] == "gcj02" and abs(stored["lat"] - lat) < 2e-5 and abs(stored["lng"] - lng) < 2e-5
    assert answer["cell"] == h3.latlng_to_cell(lat, lng, 8)


def test_an_integration_reads_only_its_own_alarms_and_a_person_only_in_scope(hotline):
    store, actor, _ = hotline
    answer = services.post_alarms(store, actor, [_alarm("A-9", *_spot(store))])[0].answer
    shown = services.alarm_show(store, actor, answer["alarm_id"])
    assert shown["task"]["id"] == answer["task_id"] and shown["outcome"]["state"] == "assigned"
    other = services.integration_add(store, services.CLI, "drone-1", source="drone", unit="410329")
    with pytest.raises(NotFound):
        services.alarm_show(store, services.integration_actor(store, services.API, other["token"]),
                            answer["alarm_id"])
    assert services.alarm_show(store, auth.load_user(store, "leader"), answer["alarm_id"])["alarm_id"]
    with pytest.raises(PermissionDenied):  # an inspector of another township may not see the cell
        services.alarm_show(store, _other_inspector(store), answer["alarm_id"])


def _other_inspector(store) -> auth.User:
    key = store.scalar("SELECT p.person_key FROM people p JOIN assignments a ON a.person_id = p.id"
                       " WHERE a.role = 'inspector' AND a.unit_code LIKE '410329-D05-%' ORDER BY p.id LIMIT 1")
    auth.add_account(store, "other.inspector", "another-pass-1", person_key=key)
    return auth.load_user(store, "other.inspector")


def _work_and_verify(store, task_id: int, *, accept: bool = True, note: str = "已制止，现场无明火") -> None:
    inspector, leader = auth.load_user(store, "inspector"), auth.load_user(store, "leader")
    services.work_on(store, inspector, task_id, "in_progress")
    services.work_on(store, inspector, task_id, "reported", finding="done", note=note)
    services.verify(store, leader, task_id, accept=accept, note="" if accept else "没有照片，请补拍")


def test_outcomes_are_posted_signed_once_each_and_a_failed_post_backs_off(hotline, listener):
    store, actor, made = hotline
    answer = services.post_alarms(store, actor, [_alarm("A-5", *_spot(store))])[0].answer
    task = answer["task_id"]
    _work_and_verify(store, task, accept=False)
    listener.status = 500
    first = services.deliver_webhooks(store, services.SCHEDULER, backoff_s=0)
    assert first == {"queued": 1, "sent": 0, "failed": 1, "pending": 1}
    attempt = store.query("SELECT status, http_status, requests FROM webhook_attempts")[0]
    assert attempt == {"status": "error", "http_status": 500, "requests": 3}  # the client retried within it
    delivery = store.query("SELECT attempts, next_attempt_at, status FROM webhook_deliveries")[0]
    assert delivery["attempts"] == 1 and delivery["status"] == "pending"
    assert services.deliver_webhooks(store, services.SCHEDULER, backoff_s=0)["sent"] == 0  # backing off
    listener.status = 200
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    assert services.deliver_webhooks(store, services.SCHEDULER, now=later, backoff_s=0)["sent"] == 1
    headers, body = listener.received[-1]
    assert headers["x-gridwatch-signature"] == services.sign_body(made["webhook_secret"], body)
    sent = json.loads(body)
    assert (sent["outcome"], sent["alarm_id"], sent["rejection_note"]) == ("rejected", answer["alarm_id"],
                                                                          "没有照片，请补拍")
    # reported again and verified: the closing is posted too, once
    inspector, leader = auth.load_user(store, "inspector"), auth.load_user(store, "leader")
    services.work_on(store, inspector, task, "in_progress")
    services.work_on(store, inspector, task, "reported", finding="done", note="已补拍照片")
    services.verify(store, leader, task, accept=True)
    assert services.deliver_webhooks(store, services.SCHEDULER, now=later, backoff_s=0)["sent"] == 1
    assert services.deliver_webhooks(store, services.SCHEDULER, now=later, backoff_s=0)["queued"] == 0
    closed = json.loads(listener.received[-1][1])
    assert (closed["outcome"], closed["state"], closed["note"]) == ("closed", "closed", "已补拍照片")
    assert closed["verified_at"] and closed["closed_at"]
    assert len(store.query("SELECT id FROM webhook_attempts")) == 3


def test_the_task_page_is_scoped_paged_and_refuses_integrations(hotline):
    store, actor, _ = hotline
    inspector = auth.load_user(store, "inspector")
    mine = services.task_page(store, inspector, mine=True, limit=5)
    assert len(mine["tasks"]) == 5 and mine["next_offset"] == 5
    assert {t["assignee_key"] for t in mine["tasks"]} == {"demo-d01-01-inspector"}
    rest = services.task_page(store, inspector, mine=True, limit=500, offset=5)
    assert rest["next_offset"] is None and not {t["id"] for t in rest["tasks"]} & {t["id"] for t in mine["tasks"]}
    with pytest.raises(PermissionDenied):
        services.task_page(store, actor)
    with pytest.raises(ValidationError, match="kind"):
        services.task_page(store, inspector, kind="nonsense")
    with pytest.raises(PermissionDenied):
        services.task_page(store, inspector, unit=OTHER_TOWNSHIP)


def test_an_integration_may_do_nothing_else():
    camera = services.IntegrationActor(1, "camera-1", "410329", "video", 10)
    with open_store(":memory:") as store, pytest.raises(PermissionDenied, match="may not people.manage"):
        require(store, camera, "people.manage")


def test_edge_helpers():
    assert language("en;q=0.8, zh-CN;q=0.9") == "zh_CN" and language("*") == "zh_CN" and language("en-GB") == "en"
    assert check_fields({"a": 1.5, "b": True}, {"a": ("number", True), "b": ("boolean", False)}) == {"a": 1.5,
                                                                                                       "b": True}


def test_the_cli_creates_lists_and_revokes_integrations(demo_copy):
    lines: list[str] = []
    assert cli_main(["integrations", "add", "video-1", "--source", "video", "--unit", "410329", "--rate-per-minute",
                     "120", "--webhook-url", "https://example.org/hook", "--db", demo_copy, "--json"],
                    out=lines.append) == 0
    made = json.loads(lines[-1])
    assert made["token"].startswith("gwi_") and made["webhook_secret"] and made["rate_per_minute"] == 120
    assert cli_main(["integrations", "list", "--db", demo_copy, "--json"], out=lines.append) == 0
    assert "token" not in lines[-1] and json.loads(lines[-1])[0]["name"] == "video-1"
    assert cli_main(["integrations", "revoke", "video-1", "--db", demo_copy, "--json"], out=lines.append) == 0
    assert json.loads(lines[-1])["revoked"] is True
    assert cli_main(["integrations", "deliver", "--db", demo_copy, "--json"], out=lines.append) == 0
    assert json.loads(lines[-1]) == {"queued": 0, "sent": 0, "failed": 0, "pending": 0}


# -- a running server, a real HTTP client -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free port with a private database; started and stopped as the test needs."""

    def __init__(self, db: str, folder: Path) -> None:
        self.db, self.folder = db, folder
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.starts = 0

    def start(self) -> None:
        port = _free_port()
        env = {**os.environ, "GRIDWATCH_DB": self.db, "GRIDWATCH_NOTIFY_INTERVAL_MINUTES": "0.05"}
        self.starts += 1
        self.log_path = self.folder / f"streamlit-{self.starts}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/v1/openapi.json", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        self.stop()
        pytest.fail("the app did not start: " + self.log_path.read_text(errors="replace")[-2000:])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
            self.log.close()

    def text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("streamlit-*.log")))


@pytest.fixture(scope="module")
def site(demo_db, tmp_path_factory):
    """The server and what the tests share: tokens, places, the webhook listener."""
    folder = tmp_path_factory.mktemp("api")
    db = copy_db(demo_db, folder, "api.duckdb")
    hook = Listener()
    with open_store(db) as store:
        made = {
            "hotline": services.integration_add(store, services.CLI, "hotline-12345", source="hotline",
                                                unit="410329", webhook_url=hook.url),
            "video": services.integration_add(store, services.CLI, "video-d02", source="video", unit=OTHER_TOWNSHIP),
            "slow": services.integration_add(store, services.CLI, "slow-hotline", source="hotline", unit="410329",
                                             rate_per_minute=2),
        }
        spots = [_spot(store, n=i) for i in range(6)]
    server = Server(db, folder)
    server.start()
    yield {"server": server, "db": db, "made": made, "spots": spots, "hook": hook, "shared": {}}
    server.stop()
    hook.close()
    assert "Traceback" not in server.text(), server.text()[-3000:]
    drop_db(db)


def _post(site, alarm: dict, who: str = "hotline", **headers) -> requests.Response:
    token = site["made"][who]["token"]
    return requests.post(site["server"].url + "/api/v1/alarms", json=alarm, timeout=30,
                         headers={"Authorization": f"Bearer {token}", **headers})


def _session(site, username: str) -> str:
    answer = requests.post(site["server"].url + "/api/v1/sessions", timeout=30,
                           json={"username": username, "password": services.DEMO_PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_the_openapi_document_describes_every_route(site):
    answer = requests.get(site["server"].url + "/api/v1/openapi.json", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    assert doc["openapi"] == "3.1.0"
    served = {("/api" + path.replace(":int", ""), method.lower()) for path, method, _ in ROUTES}
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == described
    assert set(doc["components"]["schemas"]["AlarmIn"]["properties"]) == set(services.ALARM_FIELDS)


def test_sign_in_and_list_my_tasks_page_by_page(site):
    url, token = site["server"].url, _session(site, "inspector")
    auth_header = {"Authorization": f"Bearer {token}"}
    first = requests.get(url + "/api/v1/tasks", params={"mine": "true", "limit": 3}, headers=auth_header, timeout=30)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["tasks"]) == 3 and {t["assignee_key"] for t in page["tasks"]} == {"demo-d01-01-inspector"}
    second = requests.get(url + "/api/v1/tasks", params={"mine": "true", "limit": 3, "cursor": page["next_cursor"]},
                          headers=auth_header, timeout=30).json()
    assert not {t["id"] for t in second["tasks"]} & {t["id"] for t in page["tasks"]}
    one = requests.get(url + f"/api/v1/tasks/{page['tasks'][0]['id']}", headers=auth_header, timeout=30)
    assert one.status_code == 200 and one.json()["events"]
    wrong = requests.get(url + "/api/v1/tasks", params={"colour": "red"}, headers=auth_header, timeout=30)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "unknown_parameter"
    ranking = requests.get(url + "/api/v1/reports/ranking", params={"period": "xun", "date": "2026-06-15"},
                           headers=auth_header, timeout=30)
    assert ranking.status_code == 403  # an inspector has no report.view
    leader = {"Authorization": f"Bearer {_session(site, 'leader')}"}
    ranking = requests.get(url + "/api/v1/reports/ranking", params={"period": "xun", "date": "2026-06-15"},
                           headers=leader, timeout=30)
    assert ranking.status_code == 200 and ranking.json()["period"]["start"] == "2026-06-11" and ranking.json()["rows"]
    assert requests.delete(url + "/api/v1/sessions", headers=auth_header, timeout=30).status_code == 204
    assert requests.get(url + "/api/v1/tasks", headers=auth_header, timeout=30).status_code == 401


def test_an_alarm_is_201_then_200_with_the_same_ids(site):
    lat, lng = site["spots"][0]
    first = _post(site, _alarm("H-1", lat, lng))
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) == {"alarm_id", "task_id", "problem_id", "cell", "assignee", "photos"} and body["problem_id"] is None
    assert body["photos"] == 0
    assert body["assignee"]["person_key"] == "demo-d01-01-inspector"
    assert first.headers["location"] == f"/api/v1/alarms/{body['alarm_id']}"
    again = _post(site, _alarm("H-1", lat, lng))
    assert again.status_code == 200 and again.json() == body


def test_twenty_concurrent_posts_of_one_alarm_make_one_task(site):
    lat, lng = site["spots"][1]
    barrier = threading.Barrier(20)

    def post(_: int) -> requests.Response:
        barrier.wait()
        return _post(site, _alarm("H-CONCURRENT", lat, lng))

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    site["shared"]["concurrent"] = answers[0].json()


def test_refusals_name_the_problem_with_a_stable_code(site):
    url, (lat, lng) = site["server"].url, site["spots"][2]
    hotline = {"Authorization": f"Bearer {site['made']['hotline']['token']}"}

    def check(answer: requests.Response, status: int, code: str) -> dict:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == code and error["message"] and "Traceback" not in answer.text
        return error

    outside = check(_post(site, _alarm("far", 30.0, 112.42)), 422, "outside_region")
    assert "410329" in outside["message"] and not outside["message"].startswith("The point")  # Chinese by default
    english = check(_post(site, _alarm("far", 30.0, 112.42), **{"Accept-Language": "en-US,en;q=0.9"}), 422,
                    "outside_region")
    assert english["message"].startswith("The point (lat 30.0, lng 112.42) lies outside the region 410329")
    check(requests.post(url + "/api/v1/alarms", data=b'{"external_id": ', timeout=30,
                        headers={**hotline, "Content-Type": "application/json"}), 400, "invalid_json")
    huge = json.dumps(_alarm("huge", lat, lng, description="x" * 200_000)).encode()
    check(requests.post(url + "/api/v1/alarms", data=huge, timeout=30,
                        headers={**hotline, "Content-Type": "application/json"}), 413, "body_too_large")
    unknown = check(_post(site, {**_alarm("u", lat, lng), "colour": "red"}), 422, "unknown_field")
    assert "colour" in unknown["message"]
    assert "lat" in check(_post(site, {**_alarm("t", lat, lng), "lat": "34.5"}), 422, "wrong_type")["message"]
    assert "category" in check(_post(site, _alarm("c", lat, lng, category="smoke")), 422, "invalid_value")["message"]
    wrong = requests.post(url + "/api/v1/alarms", json=_alarm("w", lat, lng), timeout=30,
                          headers={"Authorization": "Bearer gwi_not-a-token"})
    check(wrong, 401, "unauthenticated")
    assert wrong.headers["www-authenticate"] == "Bearer"
    check(requests.post(url + "/api/v1/alarms", json=_alarm("n", lat, lng), timeout=30), 401, "unauthenticated")
    other_unit = check(_post(site, _alarm("v", lat, lng, source="video"), who="video"), 403, "forbidden")
    assert "410329-D02" in other_unit["message"]
    check(_post(site, _alarm("s", lat, lng, source="video")), 403, "forbidden")  # not the integration's source
    person = {"Authorization": f"Bearer {_session(site, 'inspector')}"}
    check(requests.post(url + "/api/v1/alarms", json=_alarm("p", lat, lng), headers=person, timeout=30), 403,
          "forbidden")
    check(requests.get(url + "/api/v1/tasks", headers=hotline, timeout=30), 403, "forbidden")
    check(requests.get(url + "/api/v1/nothing/here", timeout=30), 404, "not_found")
    check(requests.put(url + "/api/v1/alarms", timeout=30), 405, "method_not_allowed")
    check(requests.get(url + "/api/v1/alarms/999999", headers=hotline, timeout=30), 404, "not_found")


def test_more_than_the_rate_is_429(site):
    lat, lng = site["spots"][3]
    answers = [_post(site, _alarm(f"R-{i}", lat, lng), who="slow") for i in range(6)]
    codes = [a.status_code for a in answers]
    assert codes.count(429) >= 2 and set(codes) <= {201, 429}, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1


def test_a_hotline_complaint_goes_the_whole_way_and_the_caller_hears_the_outcome(site):
    server, hook, made = site["server"], site["hook"], site["made"]["hotline"]
    lat, lng = site["spots"][4]
    complaint = _alarm("12345-20260610-0001", lat, lng, contact="138****0000",
                       description="村东头麦田有人焚烧秸秆，浓烟很大")
    posted = _post(site, complaint)
    assert posted.status_code == 201, posted.text
    answer = posted.json()
    assert answer["assignee"]["person_key"] == "demo-d01-01-inspector"  # the inspector of the spot's village
    # DuckDB has one process: the field work goes through the services while the server is stopped
    server.stop()
    with open_store(site["db"]) as store:
        inspector = auth.load_user(store, "inspector")
        mine = services.my_tasks(store, inspector)
        assert answer["task_id"] in set(mine.id)
        _work_and_verify(store, answer["task_id"], note="已制止焚烧，现场明火已扑灭")
        concurrent = site["shared"].get("concurrent")
        if concurrent:
            assert store.scalar("SELECT count(*) FROM tasks WHERE source_kind = 'alarm' AND source_key = ?",
                                [str(concurrent["alarm_id"])]) == 1
        calls = store.query("SELECT DISTINCT actor FROM audit_log WHERE action LIKE 'api.%'")
        assert {"integration:hotline-12345", "integration:video-d02"} <= {c["actor"] for c in calls}
    assert cli_main(["integrations", "revoke", "slow-hotline", "--db", site["db"], "--json"], out=lambda _: None) == 0
    server.start()  # the notification schedule runs at start: the outcome is posted
    received = hook.wait(1)
    assert received, "no webhook arrived: " + server.text()[-2000:]
    headers, body = received[-1]
    assert headers["x-gridwatch-signature"] == services.sign_body(made["webhook_secret"], body)
    sent = json.loads(body)
    assert (sent["external_id"], sent["outcome"], sent["finding"]) == (complaint["external_id"], "closed", "done")
    shown = requests.get(server.url + f"/api/v1/alarms/{answer['alarm_id']}", timeout=30,
                         headers={"Authorization": f"Bearer {made['token']}", "Accept-Language": "en"})
    assert shown.status_code == 200, shown.text
    outcome = shown.json()["outcome"]
    assert (outcome["state"], outcome["finding"], outcome["note"]) == ("closed", "done", "已制止焚烧，现场明火已扑灭")
    assert outcome["verified_at"] and outcome["closed_at"] and shown.json()["task"]["state"] == "closed"
    revoked = _post(site, _alarm("after-revoke", lat, lng), who="slow", **{"Accept-Language": "en"})
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthenticated"
    assert "slow-hotline was revoked" in revoked.json()["error"]["message"]


def test_a_complaint_about_a_boiler_opens_a_problem_read_back_through_the_api(site):
    url = site["server"].url
    lat, lng = site["spots"][5]
    posted = _post(site, _alarm("H-BOILER-1", lat, lng, category="coal_boiler", description="小区锅炉冒黑烟"))
    assert posted.status_code == 201, posted.text
    problem_id = posted.json()["problem_id"]
    assert isinstance(problem_id, int)
    leader = {"Authorization": f"Bearer {_session(site, 'leader')}"}
    listed = requests.get(url + "/api/v1/problems", params={"category": "coal_boiler", "limit": 10},
                          headers=leader, timeout=30)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert problem_id in [p["id"] for p in page["problems"]] and page["limit"] == 10
    one = requests.get(url + f"/api/v1/problems/{problem_id}", headers=leader, timeout=30)
    assert one.status_code == 200, one.text
    shown = one.json()
    assert shown["state"] == "found" and shown["finding_task_id"] == posted.json()["task_id"]
    assert [e["to_state"] for e in shown["events"]] == ["found"]
    wrong = requests.get(url + "/api/v1/problems", params={"overdue": "maybe"}, headers=leader, timeout=30)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_value"
    bad_state = requests.get(url + "/api/v1/problems", params={"state": "open"}, headers=leader, timeout=30)
    assert bad_state.status_code == 422
    hotline = {"Authorization": f"Bearer {site['made']['hotline']['token']}"}
    assert requests.get(url + "/api/v1/problems", headers=hotline, timeout=30).status_code == 403
    assert requests.get(url + f"/api/v1/problems/{problem_id}", timeout=30).status_code == 401
    assert requests.get(url + "/api/v1/problems/999999", headers=leader, timeout=30).status_code == 404


def _jpeg(colour: str = "green", size: tuple[int, int] = (64, 48)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def _post_with_photos(site, alarm: dict, photos: list[tuple[str, bytes]], who: str = "hotline",
                      **headers) -> requests.Response:
    token = site["made"][who]["token"]
    files = [("alarm", (None, json.dumps(alarm), "application/json"))]
    files += [("photo", (name, data, "image/jpeg")) for name, data in photos]
    return requests.post(site["server"].url + "/api/v1/alarms", files=files, timeout=30,
                         headers={"Authorization": f"Bearer {token}", **headers})


def test_an_alarm_carries_photos_as_multipart_within_the_apps_caps(site):
    url, token = site["server"].url, site["made"]["hotline"]["token"]
    lat, lng = site["spots"][3]
    posted = _post_with_photos(site, _alarm("PHOTO-1", lat, lng), [("smoke.jpg", _jpeg("gray")),
                                                                    ("field.jpg", _jpeg("yellow"))])
    assert posted.status_code == 201, posted.text
    assert posted.json()["photos"] == 2
    shown = requests.get(url + f"/api/v1/alarms/{posted.json()['alarm_id']}", timeout=30,
                         headers={"Authorization": f"Bearer {token}"}).json()
    assert [p["name"] for p in shown["photos"]] == ["smoke.jpg", "field.jpg"]
    # the same external id again answers the first one's ids (its photos are not added)
    again = _post_with_photos(site, _alarm("PHOTO-1", lat, lng), [("other.jpg", _jpeg("red"))])
    assert again.status_code == 200 and again.json()["task_id"] == posted.json()["task_id"]
    assert again.json()["photos"] == 2
    english = {"Accept-Language": "en"}
    eleven = [(f"p{k}.jpg", _jpeg(c)) for k, c in enumerate(["red", "green", "blue", "white", "black", "gray",
                                                              "pink", "navy", "gold", "teal", "plum"])]
    refused = {
        "count": _post_with_photos(site, _alarm("PHOTO-2", lat, lng), eleven, **english),
        "not a photo": _post_with_photos(site, _alarm("PHOTO-3", lat, lng), [("x.jpg", b"<svg/>")], **english),
        "pixels": _post_with_photos(site, _alarm("PHOTO-4", lat, lng), [("huge.png", _huge_png())], **english),
    }
    assert refused["count"].status_code == 422 and "photo_max_count" in refused["count"].json()["error"]["message"]
    assert refused["not a photo"].status_code == 422
    assert "not a photo" in refused["not a photo"].json()["error"]["message"]
    assert refused["pixels"].status_code == 422 and "megapixels" in refused["pixels"].json()["error"]["message"]
    other_part = requests.post(url + "/api/v1/alarms", timeout=30, headers={"Authorization": f"Bearer {token}",
                                                                           **english},
                               files=[("alarm", (None, json.dumps(_alarm("PHOTO-5", lat, lng)))),
                                      ("picture", ("a.jpg", _jpeg(), "image/jpeg"))])
    assert other_part.status_code == 400 and other_part.json()["error"]["code"] == "invalid_multipart"
    assert "picture" in other_part.json()["error"]["message"]
    no_alarm = requests.post(url + "/api/v1/alarms", timeout=30, headers={"Authorization": f"Bearer {token}"},
                             files=[("photo", ("a.jpg", _jpeg(), "image/jpeg"))])
    assert no_alarm.status_code == 400 and no_alarm.json()["error"]["code"] == "invalid_multipart"
    # a body declared larger than the caps is refused before it is read
    import http.client

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/api/v1/alarms")
    for name, value in (("Authorization", f"Bearer {token}"), ("Content-Type", "multipart/form-data; boundary=x"),
                        ("Content-Length", str(200 * 2**20))):
        conn.putheader(name, value)
    conn.endheaders(b"--x--")
    huge = conn.getresponse()
    assert huge.status == 413 and json.loads(huge.read())["error"]["code"] == "body_too_large"
    conn.close()
    broken = requests.post(url + "/api/v1/alarms", timeout=30, headers={"Authorization": f"Bearer {token}"},
                           files=[("alarm", (None, "{not json"))])
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    # nothing of a refused post was stored: the same external ids are new when sent properly
    for external_id in ("PHOTO-2", "PHOTO-3", "PHOTO-4"):
        assert _post(site, _alarm(external_id, lat, lng)).status_code == 201


def _huge_png() -> bytes:
    """A small file claiming 10,000 × 10,000 pixels (a decompression bomb's header)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")
    return buf.getvalue()


def test_end_to_end_a_complaint_is_found_rectified_checked_by_another_and_closed_and_the_caller_hears(site):
    """The closed loop: a hotline complaint through the API becomes a task for the spot's inspector, is found
    (report, verified by the leader), opens a problem, which is rectified, checked on site by another person and
    closed; the hotline's own server receives the signed outcome and reads the problem back."""
    server, hook, made = site["server"], site["hook"], site["made"]["hotline"]
    lat, lng = site["spots"][2]
    complaint = _alarm("12345-E2E-0001", lat, lng, contact="139****1111", description="河滩地里有人烧秸秆")
    posted = _post_with_photos(site, complaint, [("caller.jpg", _jpeg("orange"))])
    assert posted.status_code == 201, posted.text
    answer = posted.json()
    assert answer["assignee"]["person_key"] == "demo-d01-01-inspector" and answer["problem_id"] is None
    delivered_before = len(hook.received)
    server.stop()  # DuckDB has one process: the field work goes through the services meanwhile
    with open_store(site["db"]) as store:
        inspector, leader = auth.load_user(store, "inspector"), auth.load_user(store, "leader")
        cell = int(store.scalar("SELECT cell FROM tasks WHERE id = ?", [answer["task_id"]]))
        lat_c, lng_c = h3.cell_to_latlng(h3.int_to_str(cell))
        fix = services.Fix(lat_c, lng_c, 5.0)
        assert [p["name"] for p in services.intake_photos(store, inspector, answer["task_id"])] == ["caller.jpg"]
        services.work_on(store, inspector, answer["task_id"], "in_progress")
        services.work_on(store, inspector, answer["task_id"], "reported", finding="problem_found",
                         note="确有焚烧，已制止", fix=fix, photos=[("spot.jpg", _jpeg("red"))])
        verified = services.verify(store, leader, answer["task_id"], accept=True)
        pid = verified["problem_id"]
        assert pid is not None
        problem = services.problem_show(store, leader, pid)
        assert problem["category"] == "straw_burning" and problem["finding_task_id"] == answer["task_id"]
        services.problem_assign(store, leader, pid, party_kind="person", person_key="demo-d01-01-inspector",
                                note="清理火场")
        services.problem_start(store, inspector, pid)
        services.problem_rectified(store, inspector, pid, note="火场已清理", photos=[("after.jpg", _jpeg("green"))],
                                   fix=fix)
        with pytest.raises(PermissionDenied):  # the rectifier does not check their own work
            services.problem_check(store, inspector, pid, passed=True, fix=fix)
        closed = services.problem_check(store, leader, pid, passed=True, note="复核无火点", fix=fix)
        assert closed["outcome"] == "closed"
    server.start()  # the notification schedule runs at start: the outcome is posted
    deadline = time.monotonic() + 60
    mine: list = []
    while time.monotonic() < deadline and len(mine) < 2:
        mine = [(h, b) for h, b in hook.received[delivered_before:] if b"12345-E2E-0001" in b]
        time.sleep(0.2)
    assert len(mine) == 2, "the two outcomes did not arrive: " + server.text()[-2000:]
    for headers, body in mine:
        assert headers["x-gridwatch-signature"] == services.sign_body(made["webhook_secret"], body)
    sent = {json.loads(body)["event"]: json.loads(body) for _, body in mine}
    # the check of the complaint, then the problem it named: fixed, checked by another person, closed (销号)
    assert (sent["alarm.outcome"]["outcome"], sent["alarm.outcome"]["finding"]) == ("closed", "problem_found")
    fixed = sent["alarm.problem_outcome"]
    assert (fixed["outcome"], fixed["problem_id"], fixed["problem_state"]) == ("closed", pid, "closed")
    assert fixed["rectified_at"] and fixed["checked_at"] and fixed["closed_at"] and fixed["check_note"] == "复核无火点"
    hotline = {"Authorization": f"Bearer {made['token']}"}
    shown = requests.get(server.url + f"/api/v1/alarms/{answer['alarm_id']}", headers=hotline, timeout=30).json()
    assert shown["problem_id"] == pid and shown["outcome"]["state"] == "closed"
    leader_token = {"Authorization": f"Bearer {_session(site, 'leader')}"}
    register = requests.get(server.url + f"/api/v1/problems/{pid}", headers=leader_token, timeout=30).json()
    assert register["state"] == "closed"
    assert [e["to_state"] for e in register["events"]] == ["found", "assigned", "rectifying", "rectified",
                                                          "checked", "closed"]
