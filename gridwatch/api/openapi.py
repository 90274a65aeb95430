"""The OpenAPI 3.1 document of the API, written as data (served at ``/api/v1/openapi.json``).

The alarm's fields, sources, categories and limits come from :mod:`gridwatch.services.alarms`, so the document
and the checks the server makes are one list; ``tests/test_api.py`` checks that every route is described.
"""

from __future__ import annotations

from typing import Any

from gridwatch import services
from gridwatch.services.alarms import TEXT_LIMITS

__all__ = ["document", "VERSION", "REPORT_FIELDS"]

#: the API's version (its paths start with ``/api/v1``)
VERSION = "1.0.0"

_ALARM_FIELD_DOCS = {
    "external_id": "The sender's own id of the alarm; sent again, it answers with the same ids (idempotent).",
    "source": "Where the alarm comes from; must be the integration's own source.",
    "category": "What the alarm is about.",
    "lat": "Latitude, degrees (in the system named by crs).",
    "lng": "Longitude, degrees (in the system named by crs).",
    "crs": "wgs84 (GPS, the default) or gcj02 (consumer map apps); GCJ-02 positions are converted to WGS84.",
    "observed_at": "When the alarm was observed: ISO 8601 with its offset; at most 10 minutes ahead of the "
                   "server's clock and at most 90 days old.",
    "description": "What was seen or reported (may be empty); shown to the person who checks it.",
    "contact": "A complainant's contact (hotlines); kept, never shown to field staff.",
}


#: the fields of a field report (name → (JSON type, required)), as the server checks them
REPORT_FIELDS: dict[str, tuple[str, bool]] = {
    "finding": ("string", True), "note": ("string", False), "lat": ("number", False), "lng": ("number", False),
    "accuracy": ("number", False), "observed_at": ("string", False), "seen_event_id": ("integer", False)}

_REPORT_FIELD_DOCS = {
    "finding": "What was found: one of the task's findings (GET /api/v1/tasks/{task_id} lists them).",
    "note": "What the inspector writes (may be empty).",
    "lat": "Latitude of the device's GPS fix, degrees WGS84 (with lng; no fix: the report is flagged no_gps).",
    "lng": "Longitude of the device's GPS fix, degrees WGS84.",
    "accuracy": "The fix's accuracy radius, metres.",
    "observed_at": "When the fix was taken: ISO 8601 with its offset.",
    "seen_event_id": "The id of the task's latest event the device had seen; if the task changed since (reassigned, "
                     "withdrawn), the answer is 409 and the report is kept for the leader.",
}


def _report_in() -> dict[str, Any]:
    properties = {name: {"type": kind, "description": _REPORT_FIELD_DOCS[name]}
                  for name, (kind, _required) in REPORT_FIELDS.items()}
    properties["lat"] |= {"minimum": -90, "maximum": 90}
    properties["lng"] |= {"minimum": -180, "maximum": 180}
    properties["observed_at"]["format"] = "date-time"
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [n for n, (_, required) in REPORT_FIELDS.items() if required],
            "example": {"finding": "extinguished", "note": "已扑灭，现场无明火", "lat": 34.42, "lng": 112.42,
                        "accuracy": 8, "observed_at": "2026-06-10T10:20:00+08:00", "seen_event_id": 1234}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _alarm_in() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, (kind, _required) in services.ALARM_FIELDS.items():
        schema: dict[str, Any] = {"type": kind, "description": _ALARM_FIELD_DOCS[name]}
        if name in TEXT_LIMITS:
            schema["maxLength"] = TEXT_LIMITS[name]
        properties[name] = schema
    properties["source"]["enum"] = list(services.SOURCES)
    properties["category"]["enum"] = list(services.CATEGORIES)
    properties["crs"] |= {"enum": list(services.CRS_NAMES), "default": "wgs84"}
    properties["lat"] |= {"minimum": -90, "maximum": 90}
    properties["lng"] |= {"minimum": -180, "maximum": 180}
    properties["observed_at"]["format"] = "date-time"
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [n for n, (_, required) in services.ALARM_FIELDS.items() if required],
            "example": {"external_id": "12345-20260610-0001", "source": "hotline", "category": "straw_burning",
                        "lat": 34.42, "lng": 112.42, "crs": "wgs84", "observed_at": "2026-06-10T10:20:00+08:00",
                        "description": "村东头麦田有人焚烧秸秆", "contact": "138****0000"}}


_TIME = {"type": ["string", "null"], "format": "date-time", "description": "UTC, ISO 8601"}
_PERSON = {"type": ["object", "null"], "properties": {"person_key": {"type": "string"}, "name": {"type": "string"},
                                                       "role": {"type": ["string", "null"]}}}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "Stable: invalid_json, body_too_large, unsupported_media_type,"
                     " unknown_field, missing_field, wrong_type, invalid_value, unknown_parameter, outside_region,"
                     " unauthenticated, forbidden, not_found, method_not_allowed, rate_limited, conflict,"
                     " invalid_transition, unavailable, server_error."},
            "message": {"type": "string", "description": "In the caller's Accept-Language (zh-CN default, en)."}}}}},
    "SignIn": {"type": "object", "additionalProperties": False, "required": ["username", "password"],
               "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
    "Session": {"type": "object", "properties": {"token": {"type": "string", "description": "Send as 'Authorization:"
                                                          " Bearer <token>'; shown once."},
                                                "username": {"type": "string"}, "expires_at": _TIME}},
    "AlarmIn": _alarm_in(),
    "AlarmAnswer": {"type": "object", "required": ["alarm_id", "task_id", "problem_id", "cell", "assignee"],
                    "properties": {"alarm_id": {"type": "integer"}, "task_id": {"type": ["integer", "null"]},
                                   "problem_id": {"type": ["integer", "null"],
                                                  "description": "The problem register's entry (null until one "
                                                                 "opens)."},
                                   "cell": {"type": "string", "description": "H3 cell id"}, "assignee": _PERSON,
                                   "photos": {"type": "integer", "description": "Photos kept with its task."}}},
    "Outcome": {"type": "object", "properties": {
        "state": {"type": ["string", "null"], "description": "The task's state (open, assigned, in_progress, "
                                                             "reported, verified, closed, rejected, escalated)."},
        "finding": {"type": ["string", "null"]}, "note": {"type": ["string", "null"]}, "reported_at": _TIME,
        "verified_at": _TIME, "closed_at": _TIME, "rejected_at": _TIME,
        "rejection_note": {"type": ["string", "null"]}}},
    "Alarm": {"type": "object", "properties": {
        "alarm_id": {"type": "integer"}, "external_id": {"type": "string"}, "integration": {"type": "string"},
        "source": {"type": "string"}, "category": {"type": "string"}, "lat": {"type": "number"},
        "lng": {"type": "number"}, "crs": {"type": "string"}, "cell": {"type": "string"}, "observed_at": _TIME,
        "received_at": _TIME, "description": {"type": "string"}, "problem_id": {"type": ["integer", "null"]},
        "task": {"type": ["object", "null"], "properties": {
            "id": {"type": "integer"}, "kind": {"type": "string"}, "state": {"type": "string"}, "created_at": _TIME,
            "due_at": _TIME, "assignee": _PERSON}},
        "outcome": _ref("Outcome"),
        "photos": {"type": "array", "description": "The photos sent with it (sha256, name, media_type, bytes).",
                   "items": {"type": "object"}}}},
    "Task": {"type": "object", "description": "A task as listed: id, kind, state, priority, cell, times, title, "
                                              "assignee, township and village codes."},
    "TaskPage": {"type": "object", "properties": {
        "tasks": {"type": "array", "items": _ref("Task")}, "limit": {"type": "integer"},
        "offset": {"type": "integer"}, "next_offset": {"type": ["integer", "null"]},
        "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor for the next page."}}},
    "TaskDetail": {"type": "object", "description": "A task with its place, assignee and every event."},
    "ReportIn": _report_in(),
    "ReportAnswer": {"type": "object", "required": ["task_id", "replayed"], "properties": {
        "task_id": {"type": "integer"}, "finding": {"type": "string"}, "note": {"type": "string"},
        "gps": {"type": "object"}, "photos": {"type": "array", "items": {"type": "object"}},
        "flags": {"type": "array", "items": {"type": "string"},
                  "description": "no_gps, gps_outside_cell: shown to the verifier."},
        "replayed": {"type": "boolean", "description": "true: the same Idempotency-Key again; nothing new stored."}}},
    "ReportConflict": {"allOf": [_ref("Error"), {"type": "object", "required": ["conflict"], "properties": {
        "conflict": {"type": "object", "properties": {
            "task_id": {"type": "integer"}, "changed_by": {"type": "string"}, "changed_at": {"type": "string"},
            "state": {"type": "string", "description": "The task's state after the change."},
            "kept": {"type": "boolean", "description": "The report is kept for the leader."}}}}}]},
    "Ranking": {"type": "object", "description": "The period, the rule, totals and one row per unit, ranked."},
    "Problem": {"type": "object", "description": "A problem register entry (问题台账) as listed: id, category, cell, "
                                                 "finding task and alarm, state, responsible party, the official "
                                                 "following it, found/deadline/closed times, repeat_of, overdue."},
    "ProblemPage": {"type": "object", "properties": {
        "problems": {"type": "array", "items": _ref("Problem")}, "total": {"type": "integer"},
        "limit": {"type": "integer"}, "offset": {"type": "integer"}}},
    "ProblemDetail": {"type": "object", "description": "A problem with its place, people, every event, the task "
                                                       "that found it, its repeats and its re-check patrols."},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_RESPONSES = {
    "Invalid": _error("A field or parameter refused (unknown, missing, wrong type, bad value), named."),
    "BadJSON": _error("The body is not one JSON object."),
    "TooLarge": _error("The body is larger than the setting api_max_body_kb allows (checked before reading)."),
    "Unauthenticated": _error("No token, an unknown, expired or revoked one."),
    "Forbidden": _error("Not allowed for this caller, or outside its scope."),
    "NotFound": _error("No such record (an integration sees only its own alarms)."),
    "RateLimited": _error("More calls than the integration's rate per minute; see Retry-After."),
    "Unavailable": _error("The database was busy; send again (alarms are idempotent)."),
}


def _ok(description: str, schema: str | None, status: str = "200") -> dict[str, Any]:
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _refs(*names: str) -> dict[str, Any]:
    codes = {"Invalid": "422", "BadJSON": "400", "TooLarge": "413", "Unauthenticated": "401", "Forbidden": "403",
             "NotFound": "404", "RateLimited": "429", "Unavailable": "503"}
    return {codes[n]: {"$ref": f"#/components/responses/{n}"} for n in names}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route."""
    secured = [{"bearer": []}]
    alarm_id = {"name": "alarm_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    task_id = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gridwatch API", "version": VERSION,
                 "description": "Alarms from other systems (video 蓝天卫士, drones, hotlines) become tasks on the "
                                "grid; their outcome goes back by webhook (POST, JSON, header X-Gridwatch-Signature: "
                                "sha256=<hex HMAC-SHA256 of the body keyed by the integration's webhook secret>, "
                                "X-Gridwatch-Delivery: <id>). Messages follow Accept-Language (zh-CN default, en)."},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description":
                                           "An integration's token (gwi_…, made by `python -m gridwatch integrations "
                                           "add`) or a person's session token (POST /api/v1/sessions)."}},
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
        },
        "paths": {
            "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/api/v1/sessions": {
                "post": {"summary": "Sign in (a person): a session token", "operationId": "signIn",
                         "requestBody": {"required": True,
                                         "content": {"application/json": {"schema": _ref("SignIn")}}},
                         "responses": {**_ok("Signed in", "Session", "201"),
                                       **_refs("BadJSON", "Invalid", "TooLarge", "Unauthenticated")}},
                "delete": {"summary": "Sign out (ends the session of the token sent)", "operationId": "signOut",
                           "security": secured,
                           "responses": {**_ok("Signed out", None, "204"), **_refs("Unauthenticated", "Forbidden")}},
            },
            "/api/v1/alarms": {"post": {
                "summary": "Post an alarm (an integration): it opens a task on its cell", "operationId": "postAlarm",
                "security": secured,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("AlarmIn")},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["alarm"], "description":
                        "An alarm with photos: its JSON in the part alarm, each photo a file part named photo "
                        "(JPEG, PNG or HEIC; the app's caps photo_max_count, photo_max_mb, photo_max_total_mb and "
                        "photo_max_megapixels apply; a photo refused is 422 and nothing is stored).",
                        "properties": {"alarm": {"type": "string", "contentMediaType": "application/json"},
                                       "photo": {"type": "array", "items": {"type": "string",
                                                                            "contentMediaType": "image/*"}}}}}}},
                "responses": {**_ok("A new alarm and its task", "AlarmAnswer", "201"),
                              **_ok("The same external_id again: the stored alarm's ids", "AlarmAnswer"),
                              **_refs("BadJSON", "Invalid", "TooLarge", "Unauthenticated", "Forbidden",
                                      "RateLimited", "Unavailable"),
                              "415": _error("The body is not declared as JSON.")}}},
            "/api/v1/alarms/{alarm_id}": {"get": {
                "summary": "An alarm with its task's state and outcome", "operationId": "getAlarm",
                "security": secured, "parameters": [alarm_id],
                "responses": {**_ok("The alarm", "Alarm"),
                              **_refs("Unauthenticated", "Forbidden", "NotFound", "RateLimited")}}},
            "/api/v1/tasks": {"get": {
                "summary": "Tasks the signed-in person may see, overdue first, then by due time", "operationId":
                "listTasks", "security": secured,
                "parameters": [
                    _query("state", "Task state", {"type": "string"}),
                    _query("kind", "Task kind", {"type": "string"}),
                    _query("unit", "Unit code: tasks on its cells", {"type": "string"}),
                    _query("mine", "Only the caller's own tasks", {"type": "boolean", "default": False}),
                    _query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
                    _query("offset", "Tasks to skip", {"type": "integer", "minimum": 0, "default": 0}),
                    _query("cursor", "next_cursor of the previous page (instead of offset)", {"type": "string"}),
                ],
                "responses": {**_ok("One page", "TaskPage"), **_refs("Invalid", "Unauthenticated", "Forbidden")}}},
            "/api/v1/tasks/{task_id}": {"get": {
                "summary": "One task with its events", "operationId": "getTask", "security": secured,
                "parameters": [task_id],
                "responses": {**_ok("The task", "TaskDetail"),
                              **_refs("Unauthenticated", "Forbidden", "NotFound")}}},
            "/api/v1/tasks/{task_id}/reports": {"post": {
                "summary": "A field report on one's task (finding, note, GPS fix, photos), sent once per "
                           "Idempotency-Key", "operationId": "postReport", "security": secured,
                "parameters": [task_id, {"name": "Idempotency-Key", "in": "header", "required": True,
                                         "description": "The device's own key of the report (a UUID): sent again "
                                                        "(a retry), it answers 200 with the first answer and "
                                                        "stores nothing twice.",
                                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{8,128}$"}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ReportIn")},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["report"], "description":
                        "A report with photos: its JSON in the part report, each photo a file part named photo "
                        "(the app's photo caps apply; a photo refused is 422 and nothing is stored).",
                        "properties": {"report": {"type": "string", "contentMediaType": "application/json"},
                                       "photo": {"type": "array", "items": {"type": "string",
                                                                            "contentMediaType": "image/*"}}}}}}},
                "responses": {**_ok("The report, stored", "ReportAnswer", "201"),
                              **_ok("The same Idempotency-Key again: the stored report", "ReportAnswer"),
                              "409": {"description": "The task changed since seen_event_id (or cannot take a "
                                                     "report in its state); the report is kept for the leader.",
                                      "content": {"application/json": {"schema": _ref("ReportConflict")}}},
                              **_refs("BadJSON", "Invalid", "TooLarge", "Unauthenticated", "Forbidden",
                                      "NotFound")}}},
            "/api/v1/problems": {"get": {
                "summary": "Problems (问题台账) on the cells the signed-in person may see, overdue first",
                "operationId": "listProblems", "security": secured,
                "parameters": [
                    _query("state", "found, assigned, rectifying, rectified, checked, closed, returned or dismissed",
                           {"type": "string"}),
                    _query("category", "Problem category", {"type": "string"}),
                    _query("overdue", "Only overdue ones (false: none of them)", {"type": "boolean"}),
                    _query("repeat", "Only repeats, 屡查屡犯 (false: none of them)", {"type": "boolean"}),
                    _query("unit", "Unit code: problems on its cells", {"type": "string"}),
                    _query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
                    _query("offset", "Problems to skip", {"type": "integer", "minimum": 0, "default": 0}),
                ],
                "responses": {**_ok("One page", "ProblemPage"), **_refs("Invalid", "Unauthenticated", "Forbidden")}}},
            "/api/v1/problems/{problem_id}": {"get": {
                "summary": "One problem with its history", "operationId": "getProblem", "security": secured,
                "parameters": [{"name": "problem_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {**_ok("The problem", "ProblemDetail"),
                              **_refs("Unauthenticated", "Forbidden", "NotFound")}}},
            "/api/v1/reports/ranking": {"get": {
                "summary": "The ranking of a period (每旬一排名 and the others), for people with report.view",
                "operationId": "ranking", "security": secured,
                "parameters": [
                    _query("period", "daily, weekly, xun (default), monthly or season",
                           {"type": "string", "default": "xun"}),
                    {**_query("date", "A day of the period, YYYY-MM-DD (Beijing time)",
                              {"type": "string", "format": "date"}), "required": True},
                    _query("level", "Level of the ranked units", {"type": "string", "default": "township"}),
                    _query("unit", "Unit whose units are ranked (default: the caller's top unit)",
                           {"type": "string"}),
                ],
                "responses": {**_ok("The ranking", "Ranking"),
                              **_refs("Invalid", "Unauthenticated", "Forbidden")}}},
        },
    }
