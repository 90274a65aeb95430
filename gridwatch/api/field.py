"""The field app's files under ``/field/``: an installable offline web app for inspectors (the repo's ``field/``).

Its pages are static (HTML, one script, a service worker, a manifest, icons); it talks to the server only through
the HTTP API (``/api/v1/…``), so the security headers of every other page apply to it unchanged: no inline script,
nothing from other hosts.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gridwatch.config import REPO_ROOT

__all__ = ["FIELD_PATH", "FIELD_FOLDER", "field_routes"]

#: where the field app is served
FIELD_PATH = "/field"
#: the folder its files are read from
FIELD_FOLDER = REPO_ROOT / "field"

mimetypes.add_type("application/manifest+json", ".webmanifest")


class _FieldFiles(StaticFiles):
    """The field app's files; the page and the service worker are checked with the server on every load (a new
    version reaches the tablets), the rest may be cached."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        answer = await super().get_response(path, scope)
        if path in (".", "", "index.html", "sw.js", "app.js"):
            answer.headers["cache-control"] = "no-cache"
        return answer


def field_routes(folder: Path = FIELD_FOLDER) -> list[BaseRoute]:
    """``/field/…`` (the app's files) and ``/field`` (sent on to ``/field/``)."""

    async def to_folder(request: Request) -> Response:
        return RedirectResponse(FIELD_PATH + "/", status_code=308)

    return [Route(FIELD_PATH, to_folder, methods=["GET"]),
            Mount(FIELD_PATH, app=_FieldFiles(directory=folder, html=True), name="field")]
