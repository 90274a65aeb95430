"""The only Streamlit import of the package: the cached store, the language, translated errors."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import folium
import pandas as pd
import streamlit as st

from gridwatch import (
    auth,  # noqa: F401 - for annotations
    i18n,
    maps,
    services,
)
from gridwatch.audit import open_sealed
from gridwatch.config import Settings
from gridwatch.encode import markdown_text
from gridwatch.errors import DiskFull, GridwatchError, PermissionDenied, is_disk_full
from gridwatch.firms import FetchScheduler
from gridwatch.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, gettext, translate_error, translate_text
from gridwatch.storage import Store

if TYPE_CHECKING:
    from gridwatch.api import Api
    from gridwatch.cookies import CookieGrants

__all__ = ["store", "language", "t", "t_filled", "show_errors", "language_picker", "settings", "fire_fetcher", "user",
           "sign_out", "account_box", "remember_session", "oidc_providers", "oidc_login", "translate", "flash",
           "show_flash", "gps_button", "notifier", "tablet_style", "leaflet_map", "basemap", "through_app",
           "task_title", "task_titles", "md", "t_plain", "client_address", "api_routes", "api_lifespan",
           "api_middleware"]

_LOG = logging.getLogger(__name__)


@st.cache_resource
def settings() -> Settings:
    """Settings of this app process."""
    return Settings.load()


@st.cache_resource
def _store(db: str) -> Store:
    return open_sealed(db)


def store() -> Store:
    """The process's store (one connection; a cursor per script thread)."""
    return _store(settings().db)


@st.cache_resource
def fire_fetcher() -> FetchScheduler | None:
    """The process's FIRMS fetch schedule (one per app process); None without a MAP_KEY."""
    config = settings()
    if not config.firms_map_key:
        return None
    the_store = store()
    scheduler = FetchScheduler(lambda: services.fetch_fires(the_store, services.SCHEDULER, config),
                               interval_s=config.firms_interval_minutes * 60, name="firms-fetch")
    return scheduler.start()


@st.cache_resource
def notifier() -> FetchScheduler:
    """The process's notification schedule: escalate overdue tasks, announce what changed, and post the outcomes
    of alarms to the webhooks of the integrations that sent them."""
    config = settings()
    the_store = store()

    def run() -> None:
        services.escalate(the_store, services.SCHEDULER)
        services.problems_escalate(the_store, services.SCHEDULER)  # overdue rectification up the chain
        services.problem_rechecks(the_store, services.SCHEDULER)  # 回头看 of closed problems that are due
        services.notify_run(the_store, services.SCHEDULER, config)
        services.deliver_webhooks(the_store, services.SCHEDULER)

    return FetchScheduler(run, interval_s=float(config.notify_interval_minutes) * 60, name="notify").start()


@st.cache_resource
def _api() -> Api:
    from gridwatch.api import Api

    return Api(store, settings())


def api_routes() -> list:
    """The HTTP API's routes (``/api/v1/…``), the session cookie's (``/session/cookie``) and the field app's
    (``/field/``), which ``app.py`` serves beside the screens on the same port."""
    from gridwatch.api.browser import cookie_routes
    from gridwatch.api.field import field_routes

    return _api().routes() + cookie_routes(store, _cookie_grants()) + field_routes()


@st.cache_resource
def _cookie_grants() -> "CookieGrants":
    """The cookie grants waiting in this process (the page issues them, the cookie route takes them)."""
    from gridwatch.cookies import CookieGrants

    return CookieGrants()


def api_middleware() -> list:
    """The middleware ``app.py`` wraps every response in: the Content-Security-Policy and security headers."""
    from starlette.middleware import Middleware

    from gridwatch.api.browser import SecurityHeaders, inline_script_hashes, policies, tile_origins

    config = settings()
    index = Path(st.__file__).parent / "static" / "index.html"  # Streamlit's page: its inline script, by hash
    page, frame = policies(script_hashes=tuple(inline_script_hashes(index.read_text(encoding="utf-8"))),
                           tile_origins=tile_origins(config.basemap_url, config.tianditu_key))
    return [Middleware(SecurityHeaders, page_policy=page, frame_policy=frame)]


@contextlib.asynccontextmanager
async def api_lifespan(_app: object) -> AsyncIterator[None]:
    """The server's start and stop: the schedules run from the start (an integration's outcomes are posted even
    when nobody opens a screen), and alarms still waiting are stored before the process ends."""
    fire_fetcher()
    notifier()
    server = _api()
    server.start()
    try:
        yield
    finally:
        server.stop()


def language() -> str:
    """The language chosen in this browser session."""
    return st.session_state.get("lang", settings().language or DEFAULT_LANGUAGE)


def t(message: str, **params: object) -> str:
    """Translate a message into the session's language and fill it, its values made inert for markdown.

    Nearly every place a page shows text renders markdown (titles, captions, alerts, toasts, widget labels), so the
    values — names, notes, file fields — are escaped (:func:`gridwatch.encode.markdown_text`): a name holding a link
    or an image shows as typed. Use :func:`t_plain` where the text is not markdown (table cells, downloads).
    """
    text = gettext(message, language())
    return text.format(**{k: md(v) for k, v in params.items()}) if params else text


def client_address() -> str | None:
    """The address this session's requests come from (for sign-in throttling per address), when known."""
    try:
        return st.context.ip_address or None
    except AttributeError:  # not served over HTTP (AppTest)
        return None


def t_plain(message: str, **params: object) -> str:
    """Translate and fill a message for a sink that is not markdown (a table cell, a file): values as they are."""
    text = gettext(message, language())
    return text.format(**params) if params else text


def md(value: object) -> object:
    """A value from a user or a file, shown literally inside markdown (no link, image, emphasis or HTML).

    Text is escaped; numbers, dates and other values keep their type, so format specs such as ``{area:.1f}`` work.
    """
    return markdown_text(value) if isinstance(value, str) else value
def task_title(row: Any) -> str:
    """A task's title in the session's language (:func:`gridwatch.i18n.task_title`; its kind when it has none)."""
    return i18n.task_title(row, language())


def task_titles(frame: pd.DataFrame) -> pd.Series:
    """The titles of a frame of tasks in the session's language (:func:`gridwatch.i18n.task_titles`)."""
    return i18n.task_titles(frame, language())


def t_filled(text: str) -> str:
    """Translate an English message that was filled in already (a stored warning) into the session's language."""
    return translate_text(text, language())


#: tablet-first: every control at least 48 px tall (the guideline is 44), readable type outdoors
_TABLET_CSS = """
<style>
div[data-testid="stButton"] button, div[data-testid="stFormSubmitButton"] button,
div[data-testid="stLinkButton"] a, div[data-baseweb="select"] > div, div[data-testid="stNumberInput"] input,
div[data-testid="stTextInput"] input { min-height: 48px; }
div[data-testid="stButton"] button p { font-size: 1.02rem; }
div[data-testid="stRadio"] label { min-height: 44px; align-items: center; }
</style>
"""


def tablet_style() -> None:
    """Touch-sized controls on every screen."""
    st.markdown(_TABLET_CSS, unsafe_allow_html=True)


def language_picker() -> None:
    """A sidebar control to switch between 简体中文 and English."""
    current = language()
    choice = st.sidebar.selectbox(
        "语言 / Language", list(LANGUAGES), index=list(LANGUAGES).index(current),
        format_func=LANGUAGES.__getitem__, key="lang_picker",
    )
    if choice != current:
        st.session_state["lang"] = choice
        st.rerun()


def translate(exc: GridwatchError) -> str:
    """A gridwatch error as one message in the session's language, its values made inert for markdown."""
    template = gettext(exc.template, language())
    try:
        return template.format(**{k: md(v) for k, v in exc.params.items()})
    except (KeyError, IndexError, ValueError):
        return translate_error(exc, language())


def flash(key: str, message: str, *, seconds: float = 8.0) -> None:
    """Keep a confirmation for the next screens of this session (maps and timers may rerun a page quickly)."""
    st.session_state[f"flash-{key}"] = (message, time.monotonic() + seconds)


def show_flash(key: str) -> None:
    """Show the confirmation kept by :func:`flash` while it is fresh."""
    kept = st.session_state.get(f"flash-{key}")
    if kept and time.monotonic() < kept[1]:
        st.success(kept[0])
    else:
        st.session_state.pop(f"flash-{key}", None)


#: what a person reads when something unexpected failed (the details go to the server's log)
_UNEXPECTED = N_("Something went wrong and has been recorded. Try again; if it happens again, tell an administrator.")


@contextlib.contextmanager
def show_errors() -> Iterator[None]:
    """Show any error as a message in the user's language, never as a traceback.

    A gridwatch error names the value and the fix; anything else is written to the server's log with its traceback
    while the person reads that something went wrong and was recorded (``client.showErrorDetails = "none"`` keeps
    Streamlit from showing details of an error that escapes). Streamlit's reruns and stops pass through. Under
    Streamlit's ``AppTest`` an unexpected error goes on, so that the test sees it.
    """
    try:
        yield
    except GridwatchError as exc:
        if is_disk_full(exc):
            _LOG.error("A write failed for want of disk space: %s", exc)
            exc = DiskFull()
        st.error(translate_error(exc, language()))
    except Exception as exc:
        if is_disk_full(exc):  # a full disk reads as such wherever it was raised (a file, a library)
            _LOG.error("A write failed for want of disk space: %s", exc)
            st.error(translate_error(DiskFull(), language()))
            return
        if _under_apptest():
            raise
        _LOG.exception("Unexpected error while drawing a page")
        st.error(t(_UNEXPECTED))


def _under_apptest() -> bool:
    """Whether this run is Streamlit's ``AppTest``, which is to see an unexpected error as such."""
    return bool(st.get_option("global.appTest"))


def through_app() -> None:
    """Run this page inside ``app.py``, after its sign-in, language picker and the role's menu.

    Streamlit treats a ``pages/`` folder beside the entry script as a legacy multipage app until some session has
    called ``st.navigation``: the first request after a start that opens a page's address directly (a bookmarked
    ``/fires``) runs that page's file alone, under an automatic menu of every file and without signing in. Such a
    run turns the legacy mode off, as ``st.navigation`` itself does, and starts again through ``app.py``, which
    opens the page when the person may see it. Every page calls this first.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


#: the cookie that keeps a browser signed in across reloads (the session token; set by the server, HttpOnly)
SESSION_COOKIE = "gridwatch_session"


def user() -> "auth.User | None":
    """The signed-in user of this browser session, or None (an expired session signs out with a notice).

    A reload starts a new Streamlit session; the sign-in survives it through :data:`SESSION_COOKIE`, whose token
    is checked like any other (expired, revoked or idle tokens are ignored).
    """
    token = st.session_state.get("token")
    if not token and not st.session_state.get("signed_out") and _oidc_identity():
        issuer, subject, email = _oidc_identity()
        try:
            session = services.sign_in_external(store(), issuer=issuer, subject=subject, email=email)
        except PermissionDenied as exc:
            st.session_state["signin_notice"] = translate_error(exc, language())
            st.session_state["signed_out"] = True
            return None
        st.session_state["token"] = token = session.token
    if not token and not st.session_state.get("signed_out"):
        remembered = _cookie_token()
        if remembered:
            try:
                found = services.current_user(store(), remembered)
            except PermissionDenied:
                return None
            st.session_state["token"] = remembered
            st.session_state["cookie_token"] = remembered
            return found
    if not token:
        return None
    try:
        return services.current_user(store(), token)
    except PermissionDenied as exc:
        st.session_state.pop("token", None)
        st.session_state["signin_notice"] = translate_error(exc, language())
        return None


def oidc_providers() -> list[str]:
    """The OIDC providers configured for Streamlit's ``st.login`` in ``.streamlit/secrets.toml`` (``[auth]``)."""
    try:
        section = st.secrets.get("auth")
    except Exception:  # no secrets file: organisation sign-in is off  # noqa: BLE001
        return []
    if not section:
        return []
    named = [name for name, value in section.items() if isinstance(value, Mapping)]
    return named or (["default"] if section.get("client_id") else [])


def _oidc_identity() -> tuple[str, str, str] | None:
    """The identity the OIDC provider vouched for in this browser (issuer, subject, e-mail), if any."""
    if not oidc_providers():
        return None
    try:
        if not st.user.is_logged_in:
            return None
        return str(st.user.get("iss", "")), str(st.user.get("sub", "")), str(st.user.get("email", "") or "")
    except (AttributeError, KeyError):
        return None


def oidc_login(provider: str) -> None:
    """Start the organisation sign-in (Streamlit redirects to the provider and back)."""
    st.session_state.pop("signed_out", None)
    if provider == "default":
        st.login()
    else:
        st.login(provider)


def _cookie_token() -> str | None:
    try:
        return st.context.cookies.get(SESSION_COOKIE) or None
    except (AttributeError, RuntimeError):  # no browser context (bare mode, AppTest)
        return None


#: posts the single-use grant to the server, which answers with the HttpOnly session cookie (or ends it); the
#: token itself never reaches the page
_COOKIE_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.method) { return; }
  const sent = data.method === "POST" ? JSON.stringify({grant: data.grant}) : undefined;
  fetch(data.url, {method: data.method, credentials: "same-origin", cache: "no-store",
                   headers: {"Content-Type": "application/json"}, body: sent}).catch(() => {});
}
"""


@st.cache_resource
def _cookie_component():
    return st.components.v2.component(name="gridwatch_session_cookie", html="<span></span>", js=_COOKIE_JS)


def _cookie_url() -> str:
    from gridwatch.api.browser import COOKIE_ROUTE

    return COOKIE_ROUTE


def remember_session() -> None:
    """Keep this browser signed in across reloads (or forget it after signing out); renders nothing visible.

    After a sign-in the browser gets a single-use grant, valid for seconds, and posts it to the server, which sets
    the session cookie itself (HttpOnly, SameSite=Strict): no script on the page can read the token. The grant is
    offered on every run while it is fresh (a run that ends before the browser saw it loses nothing). After a
    sign-out the browser asks the server to end the cookie's session and expire the cookie.
    """
    from gridwatch.cookies import GRANT_SECONDS

    token = st.session_state.get("token")
    pending = st.session_state.get("cookie_grant")
    if token and st.session_state.get("cookie_token") != token:
        try:
            grant = services.cookie_grant(store(), _cookie_grants(), token)
        except PermissionDenied:
            return
        pending = (token, grant, time.monotonic() + GRANT_SECONDS)
        st.session_state["cookie_grant"] = pending
        st.session_state["cookie_token"] = token
    if token and pending and pending[0] == token and time.monotonic() < pending[2]:
        _cookie_component()(data={"method": "POST", "url": _cookie_url(), "grant": pending[1]},
                            key="session-cookie")
        return
    st.session_state.pop("cookie_grant", None)
    if not token and st.session_state.get("cookie_token"):
        _cookie_component()(data={"method": "DELETE", "url": _cookie_url()}, key="session-cookie")
        st.session_state.pop("cookie_token", None)


def require_user() -> "auth.User":
    """The signed-in user; a screen reached without one shows nothing but a notice."""
    current = user()
    if current is None:
        with show_errors():
            services.require_region_set(store())  # a database without a region says what to do first
        st.warning(t("Sign in first."))
        st.stop()
    return current


def sign_out() -> None:
    """End the session on the server and in this tab."""
    token = st.session_state.pop("token", None)
    st.session_state["signed_out"] = True  # do not adopt the cookie again in this tab
    if token:
        services.sign_out(store(), token)
    if _oidc_identity():
        st.logout()


def account_box(current: "auth.User") -> None:
    """The signed-in person and a sign-out button in the sidebar."""
    with st.sidebar:
        st.caption(t("Signed in as {name} ({username})", name=current.name, username=current.username))
        if st.button(t("Sign out"), key="sign_out", width="stretch"):
            sign_out()
            st.rerun()


_GPS_JS = """
export default function (component) {
  const { setStateValue, parentElement, data } = component;
  const button = parentElement.querySelector("button");
  const status = parentElement.querySelector("span");
  button.textContent = data.label;
  button.onclick = () => {
    if (!navigator.geolocation) { status.textContent = data.unavailable; return; }
    status.textContent = data.waiting;
    navigator.geolocation.getCurrentPosition(
      (p) => { status.textContent = "";
               setStateValue("fix", {lat: p.coords.latitude, lng: p.coords.longitude,
                                     accuracy: p.coords.accuracy, at: Date.now()}); },
      (e) => { status.textContent = data.failed + " (" + e.message + ")"; },
      {enableHighAccuracy: true, timeout: 20000, maximumAge: 60000});
  };
}
"""


@st.cache_resource
def _gps_component():
    return st.components.v2.component(
        name="gridwatch_gps",
        html='<div class="gps"><button type="button"></button> <span></span></div>',
        css=".gps button{min-height:48px;min-width:48px;padding:0 18px;font-size:1rem;border-radius:8px;"
            "border:1px solid var(--st-primary-color);background:var(--st-primary-color);color:#fff;cursor:pointer}"
            ".gps span{margin-left:8px;color:var(--st-text-color)}",
        js=_GPS_JS,
    )


def gps_button(key: str) -> dict | None:
    """A button that asks the browser for the device position; returns {lat, lng, accuracy} once given."""
    result = _gps_component()(
        data={"label": t("Use my position"), "waiting": t("Locating…"),
              "failed": t("No position"), "unavailable": t("This browser gives no position.")},
        key=key, on_fix_change=lambda: None,
    )
    return getattr(result, "fix", None)


def _assets() -> str:
    """URL prefix of ``static/vendor`` as this server serves it (Streamlit's static file serving)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return ("/" + base if base else "") + "/app/static/vendor"


def basemap() -> "maps.Basemap":
    """The configured basemap (XYZ template, or Tianditu with its key), possibly none."""
    config = settings()
    return maps.Basemap.from_settings(config.basemap_url, config.basemap_attribution, config.tianditu_key)


def leaflet_map(
    key: str,
    *,
    bounds: tuple[float, float, float, float],
    layers: "Callable[[maps.MapView | None], list]",
    height: int = 460,
) -> dict:
    """A Leaflet map whose layers are rebuilt for the view the user is looking at.

    The map itself (scripts from this server, basemap, initial bounds) stays the same between reruns so the
    browser keeps its view; ``layers(view)`` returns the folium elements for the current view (None before the
    browser has reported one), sent as one feature group.

    Returns
    -------
    dict
        What streamlit-folium reports: ``bounds``, ``zoom``, ``last_object_clicked``.
    """
    from streamlit_folium import st_folium

    tiles = basemap()
    m = maps.base_map(bounds=bounds, assets=_assets(), basemap=tiles, height=height)
    reported = st.session_state.get(key) or {}  # streamlit-folium's last report, kept under our key
    view = maps.MapView.from_leaflet(reported.get("bounds"), reported.get("zoom"))
    group = folium.FeatureGroup(name="gridwatch")
    for element in layers(view):
        group.add_child(element)
    out = st_folium(m, key=key, height=height, width=None, use_container_width=True, feature_group_to_add=group,
                    returned_objects=["bounds", "zoom", "last_object_clicked"]) or {}
    if not tiles:
        st.caption(t("No basemap is configured: cells and boundaries are drawn on a plain background."))
    return out
