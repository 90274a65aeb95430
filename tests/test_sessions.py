"""The session cookie set by the server (HttpOnly) through single-use grants, and the security headers.

The cookie routes and the header middleware run in a real uvicorn server on a free port, answering real HTTP
requests, over a real (in-memory) database; the browser's side is in ``tests/test_browser.py``.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gridwatch import auth, services
from gridwatch.api.browser import COOKIE_ROUTE, FOLIUM_FRAME, SecurityHeaders, inline_script_hashes, policies
from gridwatch.audit import open_sealed
from gridwatch.cookies import CookieGrants
from gridwatch.errors import PermissionDenied

PASSWORD = "a-long-password-1"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def plain():
    from gridwatch.org import add_person

    with open_sealed(":memory:") as store:
        add_person(store, person_key="p-li", name="李")
        auth.add_account(store, "li.si", PASSWORD, person_key="p-li")
        yield store


@pytest.fixture(scope="module")
def server(plain):
    """The cookie routes and the security headers in a uvicorn server; its URL, grants and clock."""
    clock = Clock()
    grants = CookieGrants(clock=clock)
    page, frame = policies(script_hashes=("'sha256-abc='",), tile_origins=("https://tiles.example.cn",))
    from gridwatch.api.browser import cookie_routes

    app = Starlette(routes=cookie_routes(lambda: plain, grants),
                    middleware=[Middleware(SecurityHeaders, page_policy=page, frame_policy=frame)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    yield url, grants, clock
    uv.should_exit = True
    thread.join(timeout=10)


def _post(url: str, grant: object, *, origin: str | None = "same", **headers) -> requests.Response:
    sent = {"Origin": url if origin == "same" else origin, **headers} if origin else dict(headers)
    return requests.post(url + COOKIE_ROUTE, json={"grant": grant}, headers=sent, timeout=10)


def _cookie_header(response: requests.Response) -> dict[str, str]:
    parts = [p.strip() for p in response.headers["set-cookie"].split(";")]
    name, _, value = parts[0].partition("=")
    return {"name": name, "value": value, **{p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}}


def test_a_grant_gets_the_session_cookie_httponly_strict_once(server, plain):
    url, grants, _ = server
    session = services.sign_in(plain, "li.si", PASSWORD)
    grant = services.cookie_grant(plain, grants, session.token)
    assert session.token not in grant
    answer = _post(url, grant)
    assert answer.status_code == 204, answer.text
    cookie = _cookie_header(answer)
    assert cookie["name"] == "gridwatch_session" and cookie["value"] == session.token
    assert {"httponly", "samesite", "path", "max-age"} <= cookie.keys() and "secure" not in cookie
    assert cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert 8 * 3600 - 60 < int(cookie["max-age"]) <= 8 * 3600
    assert answer.headers["cache-control"] == "no-store"
    again = _post(url, grant)  # a grant is taken once
    assert again.status_code == 403 and "set-cookie" not in again.headers
    assert again.json()["error"]["code"] == "forbidden"


def test_over_tls_behind_the_local_proxy_the_cookie_is_secure(server, plain):
    url, grants, _ = server
    session = services.sign_in(plain, "li.si", PASSWORD)
    grant = services.cookie_grant(plain, grants, session.token)
    answer = _post(url, grant, origin=url.replace("http://", "https://"), **{"X-Forwarded-Proto": "https"})
    assert answer.status_code == 204, answer.text
    assert "secure" in _cookie_header(answer)


def test_another_site_cannot_post_a_grant(server, plain):
    """A page of another origin posting a grant (to plant its own session in a victim's browser) is refused."""
    url, grants, _ = server
    session = services.sign_in(plain, "li.si", PASSWORD)
    grant = services.cookie_grant(plain, grants, session.token)
    for origin in ("http://evil.example", "null", None):
        answer = _post(url, grant, origin=origin)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers, origin
    assert _post(url, grant).status_code == 204  # refusals did not spend it


def test_expired_unknown_and_ended_grants_are_refused(server, plain):
    url, grants, clock = server
    session = services.sign_in(plain, "li.si", PASSWORD)
    late = services.cookie_grant(plain, grants, session.token)
    clock.now += grants.seconds + 1
    assert _post(url, late).status_code == 403
    for bogus in ("x" * 43, "", 12, None, "x" * 5000):
        answer = _post(url, bogus)
        assert answer.status_code in (403, 413, 422) and "set-cookie" not in answer.headers, repr(bogus)[:20]
    ended = services.cookie_grant(plain, grants, session.token)
    services.sign_out(plain, session.token)
    assert _post(url, ended).status_code == 403
    with pytest.raises(PermissionDenied):  # and none for a session that has ended
        services.cookie_grant(plain, grants, session.token)


def test_signing_out_ends_the_cookies_session_and_expires_the_cookie(server, plain):
    url, grants, _ = server
    session = services.sign_in(plain, "li.si", PASSWORD)
    refused = requests.delete(url + COOKIE_ROUTE, cookies={"gridwatch_session": session.token},
                              headers={"Origin": "http://evil.example"}, timeout=10)
    assert refused.status_code == 403
    services.current_user(plain, session.token)  # a forged sign-out from another site ended nothing
    answer = requests.delete(url + COOKIE_ROUTE, cookies={"gridwatch_session": session.token},
                             headers={"Origin": url}, timeout=10)
    assert answer.status_code == 204
    cookie = _cookie_header(answer)
    assert cookie["value"] == "" and cookie["max-age"] == "0" and "httponly" in cookie
    with pytest.raises(PermissionDenied):
        services.current_user(plain, session.token)


def test_every_response_carries_the_policy_and_the_map_frame_its_own(server):
    url, _, _ = server
    for path in ("/", "/nowhere", COOKIE_ROUTE):
        answer = requests.get(url + path, timeout=10)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self' blob: 'sha256-abc='" in csp and "unsafe" not in csp.split("script-src")[1]
        assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp and "object-src 'none'" in csp
        assert "img-src 'self' data: blob: https://tiles.example.cn" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    frame = requests.get(url + FOLIUM_FRAME + "st_folium/index.html", timeout=10).headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' 'unsafe-eval'" in frame and "http:" not in frame


def test_no_outside_host_is_allowed_without_a_basemap():
    page, frame = policies()
    for policy in (page, frame):
        assert "http" not in policy and "*" not in policy


def test_the_inline_script_of_streamlits_page_is_allowed_by_its_hash():
    import base64
    import hashlib
    from pathlib import Path

    import streamlit

    html = (Path(streamlit.__file__).parent / "static" / "index.html").read_text(encoding="utf-8")
    hashes = inline_script_hashes(html)
    assert hashes, "Streamlit's page has an inline script"
    body = html.split("<script>")[1].split("</script>")[0]
    assert f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" in hashes


def test_grants_waiting_are_bounded(plain):
    session = services.sign_in(plain, "li.si", PASSWORD)
    grants = CookieGrants(limit=20)
    first = grants.issue(plain, session.token)
    for _ in range(20):
        grants.issue(plain, session.token)
    assert len(grants) == 20
    with pytest.raises(PermissionDenied):  # the oldest made room
        grants.redeem(plain, first)
