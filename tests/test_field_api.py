"""Field reports through the HTTP API: a real `streamlit run app.py` answering a real HTTP client.

A report is sent the way the field app sends it (multipart, a photo, a GPS fix, an ``Idempotency-Key``): sent
twice it is stored once; sent after a leader reassigned the task it answers 409 naming the change, and the report
is kept for the leader, once however often the device retries. What was stored is read back through the services
after the server has stopped (DuckDB has one process).
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
import requests
from conftest import copy_db, drop_db
from test_api import Server

from gridwatch import auth, services, workflow
from gridwatch.api import ROUTES
from gridwatch.storage import open_store


def _jpeg(colour: str, size: tuple[int, int] = (80, 60)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def field(demo_db, tmp_path_factory):
    """The server, the inspector's token, and two of their open tasks: one to report, one a leader reassigns while
    the inspector is offline (after the device saw its last event)."""
    folder = tmp_path_factory.mktemp("field-api")
    db = copy_db(demo_db, folder, "field.duckdb")
    with open_store(db) as store:
        inspector = auth.load_user(store, "inspector")
        mine = services.my_tasks(store, inspector)
        ids = [int(i) for i in mine.id[:2]]
        seen = {i: workflow.last_event_id(store, i) for i in ids}
        spot = store.query("SELECT lat, lng FROM cells WHERE cell = (SELECT cell FROM tasks WHERE id = ?)", [ids[0]])[0]
        key = store.scalar("SELECT p.person_key FROM people p JOIN assignments a ON a.person_id = p.id"
                           " WHERE a.role = 'inspector' AND a.unit_code LIKE '410329-D01-%' AND p.id <> ?"
                           " ORDER BY p.id LIMIT 1", [inspector.person_id])
        services.assign_reassign(store, auth.load_user(store, "leader"), [ids[1]], key, note="改派")
    server = Server(db, folder)
    server.start()
    token = requests.post(server.url + "/api/v1/sessions", timeout=30,
                          json={"username": "inspector", "password": services.DEMO_PASSWORD}).json()["token"]
    yield {"server": server, "db": db, "token": token, "ids": ids, "seen": seen,
           "spot": (float(spot["lat"]), float(spot["lng"]))}
    server.stop()
    assert "Traceback" not in server.text(), server.text()[-3000:]
    drop_db(db)


def _send(field, task_id: int, report: dict, key: str | None, photos=(), **headers) -> requests.Response:
    head = {"Authorization": f"Bearer {field['token']}", **headers}
    if key is not None:
        head["Idempotency-Key"] = key
    files = [("report", (None, json.dumps(report), "application/json"))]
    files += [("photo", (name, data, "image/jpeg")) for name, data in photos]
    return requests.post(field["server"].url + f"/api/v1/tasks/{task_id}/reports", files=files, headers=head,
                         timeout=60)


def test_the_report_route_is_in_the_openapi_document(field):
    doc = requests.get(field["server"].url + "/api/v1/openapi.json", timeout=30).json()
    post = doc["paths"]["/api/v1/tasks/{task_id}/reports"]["post"]
    assert {p["name"] for p in post["parameters"]} == {"task_id", "Idempotency-Key"}
    assert set(post["responses"]) >= {"200", "201", "409", "422"}
    assert ("/v1/tasks/{task_id:int}/reports", "POST", "post_report") in ROUTES


def test_a_task_lists_its_findings_and_sign_in_gives_the_photo_caps(field):
    url, head = field["server"].url, {"Authorization": f"Bearer {field['token']}", "Accept-Language": "zh-CN"}
    task = requests.get(url + f"/api/v1/tasks/{field['ids'][0]}", headers=head, timeout=30).json()
    assert [f["value"] for f in task["findings"]] == services.findings(task["kind"])
    assert all(f["label"] for f in task["findings"]) and task["title_text"]
    again = requests.post(url + "/api/v1/sessions", json={"username": "inspector",
                                                          "password": services.DEMO_PASSWORD}, timeout=30).json()
    assert again["photo_caps"]["photo_max_count"] >= 1 and again["photo_caps"]["photo_max_mb"] > 0


def test_a_report_sent_twice_is_stored_once_with_its_photo_and_fix(field):
    task_id, (lat, lng) = field["ids"][0], field["spot"]
    finding = services.findings(requests.get(field["server"].url + f"/api/v1/tasks/{task_id}", timeout=30, headers={
        "Authorization": f"Bearer {field['token']}"}).json()["kind"])[0]
    report = {"finding": finding, "note": "现场已查看", "lat": lat, "lng": lng, "accuracy": 6.5,
              "observed_at": "2026-06-10T10:20:00+08:00", "seen_event_id": field["seen"][task_id]}
    key = str(uuid.uuid4())
    first = _send(field, task_id, report, key, [("field.jpg", _jpeg("green"))])
    assert first.status_code == 201, first.text
    assert first.json()["replayed"] is False and len(first.json()["photos"]) == 1
    assert first.json()["gps"]["observed_at"] == "2026-06-10T02:20:00Z"
    again = _send(field, task_id, report, key, [("field.jpg", _jpeg("green"))])  # a retry after a timeout
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True and again.json()["photos"] == first.json()["photos"]
    field["reported"] = (task_id, key)


def test_a_report_on_a_task_reassigned_meanwhile_is_409_and_kept_once(field):
    task_id = field["ids"][1]
    kind = requests.get(field["server"].url + f"/api/v1/tasks/{task_id}", timeout=30, headers={
        "Authorization": f"Bearer {field['token']}"}).json()["kind"]
    report = {"finding": services.findings(kind)[0], "note": "离线时写的", "seen_event_id": field["seen"][task_id]}
    key = str(uuid.uuid4())
    for _ in range(2):  # the device retries: the report is kept once
        answer = _send(field, task_id, report, key, [("smoke.jpg", _jpeg("gray"))], **{"Accept-Language": "en"})
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body["error"]["code"] == "conflict" and "kept for the leader" in body["error"]["message"]
        assert body["conflict"]["changed_by"] == "leader" and body["conflict"]["kept"] is True
    field["conflict"] = (task_id, key)


@pytest.mark.parametrize(("report", "key", "status", "code"), [
    ({"finding": "x"}, None, 422, "missing_field"),
    ({"finding": "x"}, "short", 422, "invalid_value"),
    ({"finding": "x", "lat": 34.4}, "k" * 20, 422, "missing_field"),
    ({"finding": "x", "colour": "red"}, "k" * 20, 422, "unknown_field"),
    ({"finding": "x", "lat": 34.4, "lng": 112.4, "observed_at": "yesterday"}, "k" * 20, 422, "invalid_value"),
])
def test_bad_reports_are_refused_naming_the_problem(field, report, key, status, code):
    answer = _send(field, field["ids"][0], report, key)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_a_report_needs_a_person_signed_in(field):
    answer = requests.post(field["server"].url + f"/api/v1/tasks/{field['ids'][0]}/reports", json={"finding": "x"},
                           headers={"Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthenticated"


def test_what_was_stored_after_the_server_stopped(field):
    field["server"].stop()
    with open_store(field["db"]) as store:
        task_id, _key = field["reported"]
        reports = store.query("SELECT detail FROM task_events WHERE task_id = ? AND to_state = 'reported'",
                              [task_id])
        assert len(reports) == 1
        detail = json.loads(reports[0]["detail"])
        assert detail["gps"]["accuracy_m"] == 6.5 and len(detail["photos"]) == 1
        assert store.scalar("SELECT count(*) FROM photos WHERE task_id = ?", [task_id]) == 1
        conflict_task, key = field["conflict"]
        kept = store.query("SELECT detail FROM task_conflicts WHERE task_id = ?", [conflict_task])
        assert len(kept) == 1 and json.loads(kept[0]["detail"])["idempotency_key"] == f"api:inspector:{key}"
        assert len(json.loads(kept[0]["detail"])["photos"]) == 1
        leader = auth.load_user(store, "leader")
        assert conflict_task in set(services.task_conflicts(store, leader).task_id)
