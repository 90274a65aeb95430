"""The browser's side of the app's server: the HttpOnly session cookie, and security headers on every response.

* ``POST /session/cookie`` takes a single-use grant (``{"grant": …}``, from :func:`gridwatch.services.cookie_grant`)
  and answers ``Set-Cookie: gridwatch_session=<token>; HttpOnly; SameSite=Strict; Path=/; Max-Age=…`` (``Secure``
  when the request came over TLS; behind a proxy, uvicorn takes ``X-Forwarded-Proto`` from the addresses in
  ``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default). ``DELETE /session/cookie`` ends the cookie's session and expires
  the cookie. Both refuse a request whose ``Origin`` is not this server.
* :class:`SecurityHeaders` puts a Content-Security-Policy and the usual headers on every HTTP response
  (:func:`policies` says which policy a path gets and why).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gridwatch import services
from gridwatch.api.http import Refusal, check_fields, error_response, language, read_json
from gridwatch.cookies import CookieGrants
from gridwatch.errors import GridwatchError, PermissionDenied
from gridwatch.storage import Store

__all__ = ["SESSION_COOKIE", "COOKIE_ROUTE", "cookie_routes", "SecurityHeaders", "policies", "tile_origins",
           "inline_script_hashes", "FOLIUM_FRAME"]

#: the cookie that keeps a browser signed in across reloads (the session token; HttpOnly, SameSite=Strict)
SESSION_COOKIE = "gridwatch_session"
#: where the browser posts its grant (POST) or ends its session (DELETE)
COOKIE_ROUTE = "/session/cookie"
#: the address prefix of the streamlit-folium map frame (a document of its own, with its own policy)
FOLIUM_FRAME = "/component/streamlit_folium."


def _same_origin(request: Request) -> bool:
    """Whether the request was sent by a page of this server (browsers send ``Origin`` with every POST/DELETE)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return bool(origin and host) and origin.rstrip("/").lower() == f"{request.url.scheme}://{host}".lower()


def _cookie(request: Request, value: str, max_age: int) -> str:
    secure = "; Secure" if request.url.scheme in ("https", "wss") else ""
    return f"{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"


def _cross_origin() -> Refusal:
    return Refusal(403, "forbidden", PermissionDenied("Only this app's own pages may sign a browser in or out."))


def cookie_routes(store: Callable[[], Store], grants: CookieGrants, *,
                  limit_bytes: int = 1024) -> list[BaseRoute]:
    """``POST`` and ``DELETE`` :data:`COOKIE_ROUTE` for the process's store and its waiting grants."""

    async def answering(request: Request, work: Callable[[], Any]) -> Response:
        lang = language(request.headers.get("accept-language"))
        try:
            if not _same_origin(request):
                raise _cross_origin()
            return await work()
        except Refusal as refusal:
            return error_response(refusal, lang)
        except PermissionDenied as exc:
            return error_response(Refusal(403, "forbidden", exc), lang)
        except GridwatchError as exc:
            return error_response(Refusal(503, "unavailable", exc), lang)

    async def take(request: Request) -> Response:
        async def work() -> Response:
            body = check_fields(await read_json(request, limit_bytes=limit_bytes), {"grant": ("string", True)})
            token, seconds = await run_in_threadpool(services.take_cookie_grant, store(), grants, body["grant"])
            return Response(status_code=204, headers={"Set-Cookie": _cookie(request, token, seconds),
                                                      "Cache-Control": "no-store"})
        return await answering(request, work)

    async def forget(request: Request) -> Response:
        async def work() -> Response:
            token = request.cookies.get(SESSION_COOKIE)
            if token:
                await run_in_threadpool(services.sign_out, store(), token)
            return Response(status_code=204, headers={"Set-Cookie": _cookie(request, "", 0),
                                                      "Cache-Control": "no-store"})
        return await answering(request, work)

    return [Route(COOKIE_ROUTE, take, methods=["POST"]), Route(COOKIE_ROUTE, forget, methods=["DELETE"])]


# -- security headers ------------------------------------------------------------------------------------------


def inline_script_hashes(html: str) -> list[str]:
    r"""CSP sources (``'sha256-…'``) of the inline scripts of an HTML page, so exactly those may run.

    Examples
    --------
    >>> inline_script_hashes('<script>\n  window.x = 1\n</script><script src="a.js"></script>')
    ["'sha256-9drQX42/rMuCwOCH/ydXOJ/IpVUloMeSNPc4MfJKROY='"]
    """
    found = []
    for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S | re.I):
        if "src=" in attributes.lower():
            continue
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        found.append(f"'sha256-{digest}'")
    return found


def _origin(url: str) -> str | None:
    """The origin (scheme://host[:port]) of an http(s) URL template, for the basemap's tiles."""
    parts = urlsplit(url.replace("{s}", "a"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.netloc.split("@")[-1]
    return f"{parts.scheme}://{host}" if "{" not in host else f"{parts.scheme}://*.{host.split('.', 1)[-1]}"


def policies(*, script_hashes: tuple[str, ...] = (), tile_origins: tuple[str, ...] = ()) -> tuple[str, str]:
    """The Content-Security-Policy of the app's pages, and that of the map frame (streamlit-folium).

    The app's pages: everything from this server only; scripts only Streamlit's bundle, the one inline script of
    its page, by hash, and ``blob:`` modules — Streamlit loads the script of a v2 component (the GPS button, the
    cookie grant) from a ``blob:`` URL the page makes itself, which only the page's own script can create — but no
    ``'unsafe-inline'`` and no ``'unsafe-eval'``; styles may be inline, because
    Streamlit's components style themselves with inline ``<style>`` elements and attributes at run time; images
    and fonts also as ``data:``/``blob:`` URLs (Streamlit draws icons and charts so); frames only from this server
    (components and the map); framed only by this server; no plugins; forms post only here.

    The map frame is a document of its own (``/component/streamlit_folium…``): streamlit-folium inserts folium's
    map script as an inline script element and applies each redraw with ``eval``, so that frame alone allows
    ``'unsafe-inline'`` and ``'unsafe-eval'`` scripts — still from this server only (Leaflet and h3-js are served
    by the app), with no connection to any other host. What reaches it from users is escaped
    (:mod:`gridwatch.encode`), and the session cookie is HttpOnly, out of any script's reach.

    ``script_hashes`` are those of the inline scripts of Streamlit's page (:func:`inline_script_hashes`);
    ``tile_origins`` are the origins of a configured basemap, the one outside address a map may load images from.
    """
    tiles = " ".join(tile_origins)
    common = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: {tiles}; "
              "font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; "
              "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
    common = common.format(tiles=tiles).replace("  ", " ").replace(" ;", ";")
    page = f"{common}; script-src 'self' blob: {' '.join(script_hashes)}".rstrip()
    frame = f"{common}; script-src 'self' 'unsafe-inline' 'unsafe-eval'"
    return page, frame


def tile_origins(basemap_url: str, tianditu_key: str) -> tuple[str, ...]:
    """The origins a configured basemap loads its tiles from (none when no basemap is configured)."""
    if basemap_url:
        origin = _origin(basemap_url)
        return (origin,) if origin else ()
    return ("https://*.tianditu.gov.cn",) if tianditu_key else ()


class SecurityHeaders:
    """ASGI middleware: a Content-Security-Policy and the usual security headers on every HTTP response.

    Parameters
    ----------
    app
        The application it wraps.
    page_policy, frame_policy : str
        The policies of :func:`policies`: the map frame (:data:`FOLIUM_FRAME`) gets ``frame_policy``.
    """

    HEADERS = (
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "SAMEORIGIN"),
        ("cross-origin-opener-policy", "same-origin"),
        ("permissions-policy", "geolocation=(self), camera=(self), microphone=(), payment=(), usb=()"),
    )

    def __init__(self, app: Any, *, page_policy: str, frame_policy: str) -> None:
        self.app = app
        self.page_policy = page_policy
        self.frame_policy = frame_policy

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        policy = self.frame_policy if FOLIUM_FRAME in path else self.page_policy

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = policy
                for name, value in self.HEADERS:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, sending)
