"""The only Streamlit import of the package: the cached store, the language, translated errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st

from gridwatch import services
from gridwatch.config import Settings
from gridwatch.firms import FetchScheduler
from gridwatch.errors import GridwatchError
from gridwatch.i18n import DEFAULT_LANGUAGE, LANGUAGES, gettext, translate_error
from gridwatch.storage import Store, open_store

__all__ = ["store", "language", "t", "show_errors", "language_picker", "settings", "fire_fetcher"]


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


def language() -> str:
    """The language chosen in this browser session."""
    return st.session_state.get("lang", settings().language or DEFAULT_LANGUAGE)


def t(message: str, **params: object) -> str:
    """Translate a message into the session's language and fill it."""
    text = gettext(message, language())
    return text.format(**params) if params else text


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
