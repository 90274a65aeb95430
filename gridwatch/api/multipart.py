"""JSON with photos: ``multipart/form-data`` with one JSON part (``alarm``, ``report``) and ``photo`` parts.

The body is capped before it is parsed: its declared length and then its bytes as they arrive may not exceed the
JSON cap (``api_max_body_kb``) plus the photos' cap of one report (``photo_max_total_mb``) plus a little for the
parts' headers. Then the parts are read (no other field, no other file name), the photos checked with the app's
caps (:func:`gridwatch.photos.inspect_report_photos`: their number, total size, each one's size and pixels, on a
worker thread), and the JSON read as the plain post's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from gridwatch.api.http import Refusal, read_capped, refuse_declared_length
from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.photos import inspect_report_photos

__all__ = ["is_multipart", "read_alarm_with_photos", "read_json_with_photos", "PART_OVERHEAD"]

#: room for the parts' boundaries and headers, beyond the JSON and the photos themselves
PART_OVERHEAD = 64 * 1024


def is_multipart(request: Request) -> bool:
    """Whether the request's body is ``multipart/form-data``."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "multipart/form-data"


async def read_alarm_with_photos(request: Request, *, json_limit: int,
                                 settings: Settings) -> tuple[Any, list[tuple[str, Any]]]:
    """The alarm's JSON (a part named ``alarm``, parsed, not yet checked) and its photos (checked)."""
    return await read_json_with_photos(request, part="alarm", json_limit=json_limit, settings=settings)


async def read_json_with_photos(request: Request, *, part: str, json_limit: int,
                                settings: Settings) -> tuple[Any, list[tuple[str, Any]]]:
    """The JSON of the part named ``part`` (parsed, not yet checked) and the photos (checked) of a multipart body.

    Raises
    ------
    Refusal
        413 ``body_too_large`` past the caps; 400 ``invalid_multipart`` for a body that does not parse, a missing
        JSON part, another field or file name; 400 ``invalid_json``; 422 ``invalid_value`` for a photo the
        caps refuse (naming it and the setting).
    """
    photo_bytes = int(float(settings.photo_max_total_mb) * 2**20)
    limit = json_limit + photo_bytes + PART_OVERHEAD
    too_large = Refusal(413, "body_too_large", ValidationError(
        "The request body is larger than {limit} KB; a body with photos may carry {json} KB of JSON "
        "(api_max_body_kb) and {photos:g} MB of photos (photo_max_total_mb).", limit=limit // 1024,
        json=json_limit // 1024, photos=float(settings.photo_max_total_mb)))
    refuse_declared_length(request, limit, too_large)
    chunks = await read_capped(request, limit, too_large)

    async def replay() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    parser = MultiPartParser(request.headers, replay(), max_files=int(settings.photo_max_count) + 1, max_fields=1,
                             max_part_size=json_limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise _bad(ValidationError("The multipart body cannot be read ({detail}); send one part named {part} (the "
                                   "JSON) and the photos as parts named photo.", detail=str(exc)[:200],
                                   part=part)) from exc
    try:
        unknown = sorted({name for name, _ in form.multi_items()} - {part, "photo"})
        if unknown:
            raise _bad(ValidationError("Unknown part {name}; send one part named {part} (the JSON) and the photos "
                                       "as parts named photo.", name=unknown[0], part=part))
        texts = form.getlist(part)
        if len(texts) != 1 or not isinstance(texts[0], str):
            raise _bad(ValidationError("Send exactly one part named {part} holding the JSON (not a file), and the "
                                       "photos as parts named photo.", part=part))
        files = form.getlist("photo")
        if any(not isinstance(f, UploadFile) for f in files):
            raise _bad(ValidationError("A part named photo must be a file (a filename in its Content-Disposition)."))
        photos = [(f.filename or f"photo-{k + 1}", await f.read()) for k, f in enumerate(files)]
    finally:
        await form.close()
    try:
        body = json.loads(texts[0])
    except ValueError as exc:
        raise Refusal(400, "invalid_json", ValidationError(
            "The body is not valid JSON ({detail}); send one JSON object.", detail=str(exc).split("\n")[0][:200])
        ) from exc
    try:
        checked = await run_in_threadpool(inspect_report_photos, photos, settings=settings)
    except ValidationError as exc:
        raise Refusal(422, "invalid_value", exc) from exc
    return body, checked


def _bad(error: ValidationError) -> Refusal:
    return Refusal(400, "invalid_multipart", error)
