"""The routes of the API under ``/api/v1``, mounted beside the Streamlit app in the same server process.

Each route authenticates its caller — a person's session token, or an integration's token (``gwi_…``) — and calls
:mod:`gridwatch.services` with it as the actor, so the services' scope checks apply as in the app. Every call an
integration makes is in the audit record under ``integration:<name>``, refusals included; alarms go through the
batching writer of :mod:`gridwatch.api.intake`. Database work runs on the server's worker threads, never on its
event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import logging
import math
import os
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from gridwatch import services
from gridwatch.api.http import (
    Refusal,
    bearer,
    check_fields,
    error_response,
    json_response,
    language,
    read_json,
    status_of,
)
from gridwatch.api.intake import AlarmWriter, RateWindows
from gridwatch.api.multipart import is_multipart, read_alarm_with_photos, read_json_with_photos
from gridwatch.api.openapi import REPORT_FIELDS, document
from gridwatch.config import Settings
from gridwatch.errors import (
    Conflict,
    DiskFull,
    GridwatchError,
    NotFound,
    PermissionDenied,
    ValidationError,
    is_disk_full,
)
from gridwatch.i18n import gettext, task_title, translate_error
from gridwatch.services import Actor, IntegrationActor
from gridwatch.storage import Store

__all__ = ["Api", "ROUTES", "PREFIX"]

log = logging.getLogger(__name__)

#: where the API is mounted; its routes below are relative to it
PREFIX = "/api"
#: every route: (path below :data:`PREFIX`, method, name of the :class:`Api` method answering it)
ROUTES = (
    ("/v1/openapi.json", "GET", "openapi"),
    ("/v1/sessions", "POST", "sign_in"),
    ("/v1/sessions", "DELETE", "sign_out"),
    ("/v1/alarms", "POST", "post_alarm"),
    ("/v1/alarms/{alarm_id:int}", "GET", "get_alarm"),
    ("/v1/tasks", "GET", "list_tasks"),
    ("/v1/tasks/{task_id:int}", "GET", "get_task"),
    ("/v1/tasks/{task_id:int}/reports", "POST", "post_report"),
    ("/v1/reports/ranking", "GET", "ranking"),
    ("/v1/problems", "GET", "list_problems"),
    ("/v1/problems/{problem_id:int}", "GET", "get_problem"),
)
_PROBLEM_PARAMETERS = ("state", "category", "overdue", "repeat", "unit", "limit", "offset")
_SIGN_IN_FIELDS = {"username": ("string", True), "password": ("string", True)}
_TASK_PARAMETERS = ("state", "kind", "unit", "mine", "limit", "offset", "cursor")
_RANKING_PARAMETERS = ("period", "date", "level", "unit")
_PERIODS = ("daily", "weekly", "xun", "monthly", "season")
_LEVELS = ("county", "township", "village", "cell")
_WWW = {"WWW-Authenticate": "Bearer"}
#: what an Idempotency-Key may look like (a UUID, or any short token of these characters)
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{8,128}")

Endpoint = Callable[[Any, Request, str], Awaitable[Response]]


def _answering(method: Endpoint) -> Callable[[Any, Request], Awaitable[Response]]:
    """Answer a route's refusals and errors as JSON in the caller's language; log anything unexpected."""
    @functools.wraps(method)
    async def answer(self: Any, request: Request) -> Response:
        lang = language(request.headers.get("accept-language"))
        try:
            return await method(self, request, lang)
        except Refusal as refusal:
            return error_response(refusal, lang)
        except GridwatchError as exc:
            status, code = status_of(exc)
            return error_response(Refusal(status, code, exc, headers={"Retry-After": "1"} if status == 503 else {}),
                                  lang)
        except Exception as exc:  # noqa: BLE001 - a caller never sees a traceback
            log.exception("API %s %s failed", request.method, request.url.path)
            if is_disk_full(exc):
                return error_response(Refusal(507, "disk_full", DiskFull()), lang)
            return error_response(Refusal(500, "server_error", _server_error()), lang)

    return answer


def _server_error() -> GridwatchError:
    return GridwatchError("Something went wrong on the server and was logged; nothing was stored. Send the request "
                          "again, or tell an administrator.")


def _positive(settings: Settings, name: str) -> float:
    """A numeric setting that must be positive (settings from the environment arrive as text)."""
    value = getattr(settings, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if not number > 0:
        raise ValidationError("The setting {name} is {value!r}; give a positive {kind}.", name=name, value=value,
                              kind="number")
    return number


class Api:
    """The HTTP JSON API of one server process.

    Parameters
    ----------
    store : callable
        Returns the process's store: the one the app's screens use (one DuckDB connection per process).
    settings : Settings
        ``api_max_body_kb`` caps request bodies; ``api_alarm_batch`` caps the alarms stored per transaction.
    """

    def __init__(self, store: Callable[[], Store], settings: Settings) -> None:
        self._store = store
        self.settings = settings
        self.limit_bytes = int(_positive(settings, "api_max_body_kb") * 1024)
        self.rates = RateWindows()
        self.writer = AlarmWriter(store, self.rates, max_batch=int(_positive(settings, "api_alarm_batch")))
        self._document = document()

    # -- serving --------------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The routes to serve beside the app: everything under ``/api`` (unknown paths answer a JSON 404)."""
        inner = [Route(path, getattr(self, name), methods=[method], name=f"{name}") for path, method, name in ROUTES]
        app = Starlette(routes=inner, exception_handlers={HTTPException: self._http_error})
        return [Mount(PREFIX, app=app)]

    def start(self) -> None:
        """Start the alarm writer (the server's start-up), and answer kept-alive connections without delay."""
        no_delay_on_listening_sockets()
        self.writer.start()

    def stop(self) -> None:
        """Store the alarms still waiting, then stop (the server's shutdown)."""
        self.writer.stop()

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        lang = language(request.headers.get("accept-language"))
        path = PREFIX + request.url.path if not request.url.path.startswith(PREFIX) else request.url.path
        if exc.status_code == 405:
            refusal = Refusal(405, "method_not_allowed", ValidationError(
                "The route {path} does not take {method}; see /api/v1/openapi.json.", path=path,
                method=request.method))
        else:
            refusal = Refusal(404, "not_found", NotFound("There is no API route {method} {path}; see "
                                                         "/api/v1/openapi.json.", method=request.method, path=path))
        return error_response(refusal, lang)

    # -- callers --------------------------------------------------------------------------------------------

    def _record(self, store: Store, actor: Actor | str, action: str, subject: str, detail: dict[str, Any]) -> None:
        """An audit entry of one call (integrations' calls and refusals)."""
        name = actor if isinstance(actor, str) else actor.username
        with store.transaction():
            services.audit(store, actor=name, action=action, subject=subject[:200], detail=detail)

    def _identify(self, store: Store, token: str | None, action: str, subject: str) -> Actor:
        """The caller of a token: an integration (under its rate) or a signed-in person; refusals are 401 and 429."""
        if token is None:
            raise Refusal(401, "unauthenticated", PermissionDenied(
                "Send a token: 'Authorization: Bearer <token>' (a session from POST /api/v1/sessions, or an "
                "integration's token)."), headers=_WWW)
        if token.startswith(services.TOKEN_PREFIX):
            try:
                actor = services.integration_actor(store, services.API, token)
            except PermissionDenied as exc:
                name = exc.params.get("name")
                self._record(store, f"integration:{name}" if name else services.API.username, action, subject,
                             {"status": 401, "reason": "revoked token" if name else "unknown token"})
                raise Refusal(401, "unauthenticated", exc, headers=_WWW) from exc
            if not self.rates.admit(actor):
                wait = self.rates.seconds_left()
                self._record(store, actor, action, subject, {"status": 429, "reason": "rate"})
                raise Refusal(429, "rate_limited", PermissionDenied(
                    "The integration {name} may make {rate} calls a minute; send again in {seconds} s.",
                    name=actor.name, rate=actor.rate_per_minute, seconds=wait), headers={"Retry-After": str(wait)})
            return actor
        try:
            return services.current_user(store, token)
        except PermissionDenied as exc:
            raise Refusal(401, "unauthenticated", exc, headers=_WWW) from exc

    async def _call(self, request: Request, action: str, subject: str,
                    work: Callable[[Store, Actor], Any]) -> Any:
        """Identify the caller and run ``work(store, actor)`` on a worker thread; an integration's call is audited."""
        token = bearer(request)

        def run() -> Any:
            store = self._store()
            actor = self._identify(store, token, action, subject)
            status = 200
            try:
                return work(store, actor)
            except Refusal as refusal:
                status = refusal.status
                raise
            except GridwatchError as exc:
                status = status_of(exc)[0]
                raise
            finally:
                if isinstance(actor, IntegrationActor):
                    self._record(store, actor, action, subject, {"status": status})

        return await run_in_threadpool(run)

    @staticmethod
    def _person(actor: Actor) -> Actor:
        if isinstance(actor, IntegrationActor):
            raise Refusal(403, "forbidden", PermissionDenied(
                "Integrations post and read their alarms; tasks and reports are read by signed-in people."))
        return actor

    # -- routes ---------------------------------------------------------------------------------------------

    @_answering
    async def openapi(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/openapi.json``: the OpenAPI document."""
        return json_response(self._document)

    @_answering
    async def sign_in(self, request: Request, lang: str) -> Response:
        """``POST /api/v1/sessions``: a person signs in (the app's throttling and lockout apply)."""
        body = check_fields(await read_json(request, limit_bytes=self.limit_bytes), _SIGN_IN_FIELDS)
        try:
            session = await run_in_threadpool(services.sign_in, self._store(), body["username"], body["password"])
        except PermissionDenied as exc:
            raise Refusal(401, "unauthenticated", exc, headers=_WWW) from exc
        caps = {name: getattr(self.settings, name) for name in ("photo_max_count", "photo_max_mb",
                                                                 "photo_max_total_mb", "photo_max_megapixels")}
        return json_response({"token": session.token, "username": session.username,
                              "expires_at": session.expires_at, "photo_caps": caps}, 201)

    @_answering
    async def sign_out(self, request: Request, lang: str) -> Response:
        """``DELETE /api/v1/sessions``: end the session of the token sent."""
        token = bearer(request)
        if token is not None and token.startswith(services.TOKEN_PREFIX):
            raise Refusal(403, "forbidden", PermissionDenied(
                "An integration's token is not a session; an administrator revokes it (integrations revoke NAME)."))

        def end(store: Store, actor: Actor) -> None:
            services.sign_out(store, token)

        await self._call(request, "api.sessions.delete", "", end)
        return Response(status_code=204)

    @_answering
    async def post_alarm(self, request: Request, lang: str) -> Response:
        """``POST /api/v1/alarms``: an integration's alarm; 201 new, 200 the same external id again."""
        token = bearer(request)
        if token is None or not token.startswith(services.TOKEN_PREFIX):
            def person(store: Store, actor: Actor) -> None:
                raise Refusal(403, "forbidden", PermissionDenied(
                    "Alarms come from integrations through the HTTP API; a person reports through the app's "
                    "screens."))

            await self._call(request, "api.alarms.post", "", person)
        photos: list = []
        try:
            if is_multipart(request):  # the alarm's JSON in a part named alarm, its photos as parts named photo
                raw, photos = await read_alarm_with_photos(request, json_limit=self.limit_bytes,
                                                           settings=self.settings)
            else:
                raw = await read_json(request, limit_bytes=self.limit_bytes)
            body = check_fields(raw, services.ALARM_FIELDS)
        except Refusal as refusal:
            await run_in_threadpool(self._refused, token, "api.alarms.post", refusal)
            raise
        posted = await asyncio.wrap_future(self.writer.submit(token, body, photos))
        if posted.status:
            headers = {"Retry-After": str(posted.retry_after)} if posted.retry_after else {}
            raise Refusal(posted.status, posted.code, posted.error, headers=headers | (_WWW if posted.status == 401
                                                                                      else {}))
        answer = posted.answer or {}
        headers = {"Location": f"/api/v1/alarms/{answer.get('alarm_id')}"} if posted.created else {}
        return json_response(answer, 201 if posted.created else 200, headers=headers)

    def _refused(self, token: str, action: str, refusal: Refusal) -> None:
        """Record a refusal made before the caller was identified, under the integration its token names."""
        store = self._store()
        try:
            actor: Actor | str = services.integration_actor(store, services.API, token)
        except PermissionDenied:
            actor = services.API.username
        self._record(store, actor, action, "", {"status": refusal.status, "reason": refusal.code})

    @_answering
    async def get_alarm(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/alarms/{alarm_id}``: the alarm, its task's state and outcome."""
        alarm_id = int(request.path_params["alarm_id"])
        return json_response(await self._call(request, "api.alarms.show", str(alarm_id),
                                               lambda store, actor: services.alarm_show(store, actor, alarm_id)))

    @_answering
    async def list_tasks(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/tasks``: one page of the tasks the caller may see (filters, paging)."""
        query = _parameters(request, _TASK_PARAMETERS)
        mine = _flag(query.get("mine", "false"), "mine")
        limit = _whole(query.get("limit", "100"), "limit")
        offset = _cursor(query["cursor"]) if "cursor" in query else _whole(query.get("offset", "0"), "offset")

        def page(store: Store, actor: Actor) -> dict[str, Any]:
            found = services.task_page(store, self._person(actor), mine=mine, state=query.get("state"),
                                       kind=query.get("kind"), unit=query.get("unit") or None, limit=limit,
                                       offset=offset)
            following = found["next_offset"]
            return {**found, "next_cursor": None if following is None else _encode_cursor(following)}

        return json_response(await self._call(request, "api.tasks.list", "", page))

    @_answering
    async def get_task(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/tasks/{task_id}``: one task with its events, for a person who may see it."""
        task_id = int(request.path_params["task_id"])

        def show(store: Store, actor: Actor) -> dict[str, Any]:
            task = services.task_show(store, self._person(actor), task_id)
            # what a report may find, named in the caller's language (the field app offers these offline)
            found = [{"value": f, "label": gettext(f, lang)} for f in services.findings(task["kind"])]
            return {**task, "findings": found, "title_text": task_title(task, lang)}

        return json_response(await self._call(request, "api.tasks.show", str(task_id), show))

    @_answering
    async def post_report(self, request: Request, lang: str) -> Response:
        """``POST /api/v1/tasks/{task_id}/reports``: a field report; 201 stored, 200 the same key again, 409 when
        the task changed since ``seen_event_id`` (the report is kept for the leader)."""
        task_id = int(request.path_params["task_id"])
        key = _idempotency_key(request)
        token = bearer(request)
        if token is None or token.startswith(services.TOKEN_PREFIX):  # who it is, before the body is read
            await self._call(request, "api.reports.post", str(task_id), lambda store, actor: self._person(actor))
        photos: list = []
        if is_multipart(request):  # the report's JSON in a part named report, its photos as parts named photo
            raw, photos = await read_json_with_photos(request, part="report", json_limit=self.limit_bytes,
                                                      settings=self.settings)
        else:
            raw = await read_json(request, limit_bytes=self.limit_bytes)
        body = check_fields(raw, REPORT_FIELDS)
        fix = _fix(body)

        def report(store: Store, actor: Actor) -> dict[str, Any]:
            user = self._person(actor)
            detail = services.work_on(
                store, user, task_id, "reported", finding=body["finding"], note=body.get("note", ""), fix=fix,
                photos=[(name, photo.original) for name, photo in photos], seen_event_id=body.get("seen_event_id"),
                idempotency_key=f"api:{user.username}:{key}", start_first=True)
            return {"task_id": task_id, **detail}

        try:
            answer = await self._call(request, "api.reports.post", str(task_id), report)
        except Conflict as exc:
            # what changed, for the device to show; the report itself is kept in task_conflicts for the leader
            body_out = {"error": {"code": "conflict", "message": translate_error(exc, lang)},
                        "conflict": {"task_id": task_id, "changed_by": exc.params.get("who"),
                                     "changed_at": exc.params.get("when"), "state": exc.params.get("state"),
                                     "kept": True}}
            return json_response(body_out, 409)
        replayed = bool(answer.pop("replayed", False))
        return json_response({**answer, "replayed": replayed}, 200 if replayed else 201)

    @_answering
    async def list_problems(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/problems``: one page of the problems the caller may see (filters, paging)."""
        query = _parameters(request, _PROBLEM_PARAMETERS)
        flags = {name: _flag(query[name], name) if name in query else None for name in ("overdue", "repeat")}
        limit = _whole(query.get("limit", "100"), "limit")
        offset = _whole(query.get("offset", "0"), "offset")
        return json_response(await self._call(request, "api.problems.list", "", lambda store, actor: (
            services.problems_table(store, self._person(actor), state=query.get("state") or None,
                                    category=query.get("category") or None, unit=query.get("unit") or None,
                                    limit=limit, offset=offset, **flags))))

    @_answering
    async def get_problem(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/problems/{problem_id}``: one problem with its history, for a person who may see it."""
        problem_id = int(request.path_params["problem_id"])
        return json_response(await self._call(
            request, "api.problems.show", str(problem_id),
            lambda store, actor: services.problem_show(store, self._person(actor), problem_id)))

    @_answering
    async def ranking(self, request: Request, lang: str) -> Response:
        """``GET /api/v1/reports/ranking``: the ranking of a period for a person with ``report.view``."""
        query = _parameters(request, _RANKING_PARAMETERS)
        period = query.get("period", "xun")
        level = query.get("level", "township")
        for name, value, allowed in (("period", period, _PERIODS), ("level", level, _LEVELS)):
            if value not in allowed:
                raise Refusal(422, "invalid_value", ValidationError(
                    "The parameter {name} is {value!r}; use one of {allowed}.", name=name, value=value,
                    allowed=", ".join(allowed)))
        if not query.get("date"):
            raise Refusal(422, "missing_field", ValidationError(
                "The parameter {name} is missing; give a day of the period as YYYY-MM-DD.", name="date"))

        def build(store: Store, actor: Actor) -> dict[str, Any]:
            report = services.report_build(store, self._person(actor), kind=period, date=query["date"], level=level,
                                           unit=query.get("unit") or None, language=lang)
            return report.to_json()

        return json_response(await self._call(request, "api.reports.ranking", period, build))


def no_delay_on_listening_sockets() -> int:
    """Turn Nagle's algorithm off on the process's listening TCP sockets; returns how many there were.

    Streamlit binds the server's socket itself without naming its protocol, so asyncio does not set
    ``TCP_NODELAY`` on the connections it accepts (the cause of uvicorn issue 3149 as well), and every request after
    the first on a kept-alive connection waited about 40 ms for the client's delayed acknowledgement: the answer's
    head and body are two writes. Linux gives accepted connections the listening socket's ``TCP_NODELAY``, so
    setting it there, once at start-up, is enough. Elsewhere (no ``/proc/self/fd``) nothing is changed.
    """
    folder = Path("/proc/self/fd")
    if not folder.is_dir():
        return 0
    changed = 0
    for entry in folder.iterdir():
        try:
            if not os.readlink(entry).startswith("socket:"):
                continue
            sock = socket.socket(fileno=int(entry.name))
        except (OSError, ValueError):
            continue
        try:
            if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                    and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                changed += 1
        except OSError:
            pass
        finally:
            sock.detach()  # the descriptor stays the server's
    return changed


def _parameters(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown or repeated ones (422 naming them)."""
    query = request.query_params
    for name in query:
        if name not in known:
            raise Refusal(422, "unknown_parameter", ValidationError(
                "Unknown parameter {name}; the known parameters are {known}.", name=name, known=", ".join(known)))
        if len(query.getlist(name)) > 1:
            raise Refusal(422, "invalid_value", ValidationError("The parameter {name} is given more than once.",
                                                                name=name))
    return dict(query)


def _idempotency_key(request: Request) -> str:
    """The request's ``Idempotency-Key`` header, required (422 naming it)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        raise Refusal(422, "missing_field", ValidationError(
            "The header {name} is missing; send a key of your own for each report (a UUID), the same key when "
            "you send the report again.", name="Idempotency-Key"))
    if not _IDEMPOTENCY_KEY.fullmatch(key.strip()):
        raise Refusal(422, "invalid_value", ValidationError(
            "The header {name} is {value!r}; use 8 to 128 letters, digits or . _ : - (a UUID).",
            name="Idempotency-Key", value=key[:140]))
    return key.strip()


def _fix(body: dict[str, Any]) -> services.Fix | None:
    """The report's GPS fix from its fields (lat and lng together; accuracy and time optional)."""
    has = [name in body for name in ("lat", "lng")]
    if not any(has):
        for name in ("accuracy", "observed_at"):
            if name in body:
                raise Refusal(422, "missing_field", ValidationError(
                    "The field {field} belongs to a GPS fix; send lat and lng with it.", field=name))
        return None
    if not all(has):
        raise Refusal(422, "missing_field", ValidationError("A GPS fix needs both lat and lng."))
    accuracy = body.get("accuracy")
    if accuracy is not None and not (math.isfinite(accuracy) and accuracy >= 0):
        raise Refusal(422, "invalid_value", ValidationError(
            "The field {field} is {value!r}; give the fix's accuracy radius in metres (0 or more).",
            field="accuracy", value=accuracy))
    observed = None
    if "observed_at" in body:
        try:
            observed = dt.datetime.fromisoformat(body["observed_at"])
        except ValueError:
            observed = None
        if observed is None or observed.tzinfo is None:
            raise Refusal(422, "invalid_value", ValidationError(
                "The field {field} is {value!r}; give a time in ISO 8601 with its offset "
                "(2026-06-10T10:20:00+08:00).", field="observed_at", value=body["observed_at"][:60]))
    try:
        return services.Fix(float(body["lat"]), float(body["lng"]),
                            None if accuracy is None else float(accuracy), observed)
    except ValidationError as exc:
        raise Refusal(422, "invalid_value", exc) from exc


def _flag(text: str, name: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no", ""):
        return False
    raise Refusal(422, "invalid_value", ValidationError("The parameter {name} is {value!r}; use true or false.",
                                                        name=name, value=text))


def _whole(text: str, name: str) -> int:
    if not text.strip().isdigit():
        raise Refusal(422, "invalid_value", ValidationError(
            "The parameter {name} is {value!r}; give a whole number.", name=name, value=text))
    return int(text)


def _encode_cursor(offset: int) -> str:
    """An opaque cursor for the page that starts at ``offset``.

    Examples
    --------
    >>> _cursor(_encode_cursor(300))
    300
    """
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _cursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Refusal(422, "invalid_value", ValidationError(
        "The parameter {name} is {value!r}; pass the next_cursor of the previous page.", name="cursor", value=text))
