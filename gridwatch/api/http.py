"""What every route of the API shares: the caller's language, bodies read within a cap, JSON in and out, refusals.

An answer other than success is a :class:`Refusal`: an HTTP status, a stable ``code`` a program can test, and a
gridwatch error whose message is sent in the caller's language (``Accept-Language``: ``zh-CN`` by default, ``en``)
as ``{"error": {"code": …, "message": …}}``. Errors the domain raises map to a status by their class
(:func:`status_of`); anything else is logged and answered as a plain 500, never with a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from starlette.requests import Request
from starlette.responses import Response

from gridwatch.errors import (
    Conflict,
    CRSError,
    DiskFull,
    GridwatchError,
    InvalidTransition,
    NotFound,
    OutsideRegion,
    PermissionDenied,
    StorageError,
    ValidationError,
)
from gridwatch.i18n import DEFAULT_LANGUAGE, translate_error
from gridwatch.storage.text import CONTROL

__all__ = ["Refusal", "language", "status_of", "json_response", "error_response", "read_json", "read_capped",
           "refuse_declared_length", "check_fields", "bearer", "JSON_TYPES"]

#: the JSON types a field may be declared with, and the Python values that are of it
JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "integer": (int,),
                                           "boolean": (bool,), "object": (dict,), "array": (list,)}


class Refusal(Exception):
    """An answer other than success: HTTP ``status``, a stable ``code`` and the error whose message is shown.

    Not an error of the domain: it only carries one (``error``) to the edge, with how to answer it.
    """

    def __init__(self, status: int, code: str, error: GridwatchError, *, headers: Mapping[str, str] | None = None):
        super().__init__(str(error))
        self.status = status
        self.code = code
        self.error = error
        self.headers = dict(headers or {})


def language(header: str | None) -> str:
    """The caller's language from ``Accept-Language``: ``en`` or ``zh_CN`` (the default), by preference.

    Examples
    --------
    >>> language("en-US,en;q=0.9"), language("zh-CN,en;q=0.5"), language("fr, en;q=0.2"), language(None)
    ('en', 'zh_CN', 'en', 'zh_CN')
    """
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        name = "en" if tag.startswith("en") else "zh_CN" if tag.startswith("zh") else None
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name is not None and q > best_q and q > 0:
            best, best_q = name, q
    return best


def status_of(error: GridwatchError) -> tuple[int, str]:
    """The HTTP status and code of an error of the domain.

    Examples
    --------
    >>> status_of(OutsideRegion("x")), status_of(NotFound("x")), status_of(PermissionDenied("x"))
    ((422, 'outside_region'), (404, 'not_found'), (403, 'forbidden'))
    """
    for kind, answer in ((DiskFull, (507, "disk_full")), (OutsideRegion, (422, "outside_region")), (Conflict, (409, "conflict")),
                         (InvalidTransition, (409, "invalid_transition")), (NotFound, (404, "not_found")),
                         (PermissionDenied, (403, "forbidden")), (ValidationError, (422, "invalid_value")),
                         (CRSError, (422, "invalid_value")), (StorageError, (503, "unavailable"))):
        if isinstance(error, kind):
            return answer
    return 400, "bad_request"


def _plain(value: Any) -> Any:
    """A value JSON can hold: times as ISO 8601 in UTC (naive means UTC), numpy and pandas scalars as Python."""
    if isinstance(value, dt.datetime | pd.Timestamp):
        moment = pd.Timestamp(value)
        moment = moment.tz_convert("UTC") if moment.tzinfo is not None else moment
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (not JSON) as None, in nested lists and dicts too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_response(data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer (UTF-8, no NaN)."""
    body = json.dumps(_finite(data), ensure_ascii=False, default=_plain, allow_nan=False)
    return Response(body.encode("utf-8"), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


def error_response(refusal: Refusal, lang: str) -> Response:
    """The JSON answer of a refusal, its message in ``lang``."""
    body = {"error": {"code": refusal.code, "message": translate_error(refusal.error, lang)}}
    return json_response(body, refusal.status, headers=refusal.headers)


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None when none was sent."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def refuse_declared_length(request: Request, limit: int, too_large: Refusal) -> None:
    """Refuse (``too_large``) a body whose declared length is over ``limit`` bytes or not a number, unread."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        raise too_large


async def read_capped(request: Request, limit: int, too_large: Refusal) -> list[bytes]:
    """The body's chunks as they arrive, refused (``too_large``) as soon as they pass ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return chunks


async def read_json(request: Request, *, limit_bytes: int) -> Any:
    """The request's JSON body, refused before it is read when it is larger than ``limit_bytes`` (413).

    Raises
    ------
    Refusal
        413 ``body_too_large`` (the declared length, or the bytes as they arrive); 415 ``unsupported_media_type``
        for a body declared as something else than JSON; 400 ``invalid_json`` for a body that does not parse.
    """
    kb = max(1, limit_bytes // 1024)
    too_large = Refusal(413, "body_too_large", ValidationError(
        "The request body is larger than {limit} KB; send at most {limit} KB (the setting api_max_body_kb).",
        limit=kb))
    refuse_declared_length(request, limit_bytes, too_large)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise Refusal(415, "unsupported_media_type", ValidationError(
            "Send the body as JSON (Content-Type: application/json), not {kind}.", kind=kind))
    raw = b"".join(await read_capped(request, limit_bytes, too_large))

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = str(exc).split("\n")[0][:200] if not isinstance(exc, RecursionError) else "nested too deeply"
        raise Refusal(400, "invalid_json", ValidationError(
            "The body is not valid JSON ({detail}); send one JSON object.", detail=detail)) from exc


def check_fields(body: Any, fields: Mapping[str, tuple[str, bool]]) -> dict[str, Any]:
    """A JSON object holding only known ``fields`` (name → (JSON type, required)), each of its declared type.

    Raises
    ------
    Refusal
        400 ``invalid_json`` for a body that is not an object; 422 ``unknown_field``, ``missing_field`` or
        ``wrong_type`` naming the field, ``invalid_value`` for a text holding a control character (NUL…).

    Examples
    --------
    >>> check_fields({"a": 1}, {"a": ("number", True)})
    {'a': 1}
    >>> check_fields({"a": "1"}, {"a": ("number", True)})
    Traceback (most recent call last):
    ...
    gridwatch.api.http.Refusal: The field a must be of JSON type number, not string.
    """
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_json", ValidationError("The body must be one JSON object, not {kind}.",
                                                           kind=_json_type(body)))
    known = ", ".join(fields)
    for name in body:
        if name not in fields:
            raise Refusal(422, "unknown_field", ValidationError(
                "Unknown field {field}; the known fields are {known}.", field=name, known=known))
    for name, (kind, required) in fields.items():
        if name not in body:
            if required:
                raise Refusal(422, "missing_field", ValidationError(
                    "The field {field} is missing; the required fields are {required}.", field=name,
                    required=", ".join(n for n, (_, r) in fields.items() if r)))
            continue
        value = body[name]
        if not isinstance(value, JSON_TYPES[kind]) or (isinstance(value, bool) and kind != "boolean"):
            raise Refusal(422, "wrong_type", ValidationError(
                "The field {field} must be of JSON type {expected}, not {got}.", field=name, expected=kind,
                got=_json_type(value)))
        found = CONTROL.search(value) if isinstance(value, str) else None
        if found:
            raise Refusal(422, "invalid_value", ValidationError(
                "The field {field} holds a control character ({code}) that cannot be stored; remove it (tabs and "
                "line breaks are fine).", field=name, code=f"U+{ord(found.group(0)):04X}"))
    return dict(body)


def _json_type(value: Any) -> str:
    """The JSON type name of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
