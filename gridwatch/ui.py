"""The only Streamlit import of the package: the cached store, the language, translated errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st

from gridwatch import services
from gridwatch.config import Settings
from gridwatch.firms import FetchScheduler
from gridwatch import auth  # noqa: F401 - for annotations
from gridwatch.errors import GridwatchError, PermissionDenied
from gridwatch.i18n import DEFAULT_LANGUAGE, LANGUAGES, gettext, translate_error
from gridwatch.storage import Store, open_store

__all__ = ["store", "language", "t", "show_errors", "language_picker", "settings", "fire_fetcher", "user", "sign_out",
           "account_box", "gps_button", "notifier", "tablet_style"]


@st.cache_resource
def settings() -> Settings:
    """Settings of this app process."""
    return Settings.load()


@st.cache_resource
def _store(db: str) -> Store:
    return open_store(db)


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
    scheduler = FetchScheduler(lambda: services.fetch_fires(the_store, config),
                               interval_s=config.firms_interval_minutes * 60, name="firms-fetch")
    return scheduler.start()


@st.cache_resource
def notifier() -> FetchScheduler:
    """The process's notification schedule: escalate overdue tasks, then announce what changed."""
    config = settings()
    the_store = store()

    def run() -> None:
        services.escalate(the_store)
        services.notify_run(the_store, config)

    return FetchScheduler(run, interval_s=config.notify_interval_minutes * 60, name="notify").start()


def language() -> str:
    """The language chosen in this browser session."""
    return st.session_state.get("lang", settings().language or DEFAULT_LANGUAGE)


def t(message: str, **params: object) -> str:
    """Translate a message into the session's language and fill it."""
    text = gettext(message, language())
    return text.format(**params) if params else text


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


@contextlib.contextmanager
def show_errors() -> Iterator[None]:
    """Show gridwatch errors as a message in the user's language instead of a traceback."""
    try:
        yield
    except GridwatchError as exc:
        st.error(translate_error(exc, language()))


def user() -> "auth.User | None":
    """The signed-in user of this browser session, or None (an expired session signs out with a notice)."""
    token = st.session_state.get("token")
    if not token:
        return None
    try:
        return services.current_user(store(), token)
    except PermissionDenied as exc:
        st.session_state.pop("token", None)
        st.session_state["signin_notice"] = translate_error(exc, language())
        return None


def require_user() -> "auth.User":
    """The signed-in user; a screen reached without one shows nothing but a notice."""
    current = user()
    if current is None:
        st.warning(t("Sign in first."))
        st.stop()
    return current


def sign_out() -> None:
    """End the session on the server and in this tab."""
    token = st.session_state.pop("token", None)
    if token:
        services.sign_out(store(), token)


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
