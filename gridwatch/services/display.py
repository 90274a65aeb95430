"""What pages show and offer: stored times in Beijing time, the task states and kinds to choose from, cell centres.

Pages take these from here instead of naming a time zone, listing task states of their own or calling h3: the
zone is the policy's (:mod:`gridwatch.policy`), the states and kinds are those of :mod:`gridwatch.tasks`, and
cell geometry is :mod:`gridwatch.grid`'s.

Examples
--------
>>> moment_text("2026-06-30 16:05:00")  # stored times are naive UTC
'07-01 00:05'
>>> can_start(State.ASSIGNED), can_start(State.REPORTED)
(True, False)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_parse

from gridwatch.grid import cells_to_latlng
from gridwatch.policy import Policy
from gridwatch.storage import Store
from gridwatch.tasks import TRANSITIONS, Kind, State

__all__ = ["BOARD_STATES", "State", "TASK_KINDS", "can_start", "cell_centre", "cell_centres", "latest_report",
           "local_text", "moment_text", "rule_value_text", "today"]

#: the states a leader's task board filters by, in the order offered (no choice means every open state)
BOARD_STATES: tuple[str, ...] = tuple(s.value for s in (State.ASSIGNED, State.IN_PROGRESS, State.REPORTED,
                                                         State.ESCALATED, State.REJECTED))
#: every task kind, in the order offered
TASK_KINDS: tuple[str, ...] = tuple(k.value for k in Kind)

#: how a moment is written on a screen unless a page asks for another format
_MOMENT = "%m-%d %H:%M"
#: the clock of screens: Beijing time is not a setting, so writing a time needs neither the settings file nor the
#: store (pages format times row by row; reading the settings and the store for each would be I/O per row)
_CLOCK = Policy()


def local_text(values: pd.Series | np.ndarray | Sequence[Any], fmt: str = _MOMENT, *, missing: str = "",
               store: Store | None = None) -> pd.Series:
    """Stored (naive UTC) times written as Beijing times, one text per value.

    Parameters
    ----------
    values : Series, array or sequence
        Times as stored (naive UTC); missing values become ``missing``. A Series keeps its index.
    fmt : str
        A :meth:`~datetime.datetime.strftime` format.
    missing : str
        The text of a missing time (e.g. "never").
    store : Store, optional
        The store the times come from (accepted for symmetry; Beijing time is the same for every store).

    Returns
    -------
    pandas.Series
        One text per value.

    Examples
    --------
    >>> local_text(["2026-06-01 02:00:00", None], missing="—").tolist()
    ['06-01 10:00', '—']
    """
    return _CLOCK.local_text(values, fmt, missing=missing)


def moment_text(value: dt.datetime | pd.Timestamp | str | None, fmt: str = _MOMENT, *, missing: str = "",
                store: Store | None = None) -> str:
    """One stored (naive UTC) time written as Beijing time (``missing`` when there is none).

    Examples
    --------
    >>> moment_text(dt.datetime(2026, 6, 1, 2, 0), "%Y-%m-%d %H:%M")
    '2026-06-01 10:00'
    >>> moment_text(None, missing="—")
    '—'
    """
    return _CLOCK.moment_text(value, fmt, missing=missing)


def today(*, store: Store | None = None) -> dt.date:
    """Today's Beijing calendar date (the day a page offers first)."""
    return _CLOCK.today()


def can_start(state: str) -> bool:
    """Whether a worker may start work on a task in ``state`` (the transition table allows ``in_progress``).

    Examples
    --------
    >>> [s.value for s in State if can_start(s)]
    ['assigned', 'rejected', 'escalated']
    """
    return State.IN_PROGRESS in TRANSITIONS[State(state)]


def latest_report(task: dict[str, Any]) -> dict[str, Any]:
    """What the task's latest report says (finding, note, photos, position, flags); {} before any report.

    ``task`` is a task with its events, as :func:`gridwatch.services.task_show` returns it.

    Examples
    --------
    >>> latest_report({"events": [{"to_state": "reported", "detail": {"finding": "extinguished"}},
    ...                           {"to_state": "rejected", "detail": {"note": "photo?"}}]})
    {'finding': 'extinguished'}
    """
    return next((e["detail"] for e in reversed(task.get("events", [])) if e["to_state"] == State.REPORTED), {})


def cell_centres(cell_ids: Iterable[str]) -> pd.DataFrame:
    """The centres of cells given by their hex ids, as columns ``lat`` and ``lng`` (WGS84), one row per id.

    Examples
    --------
    >>> cell_centres(["88408250b5fffff"]).round(4).values.tolist()
    [[34.4227, 112.4275]]
    """
    ids = list(cell_ids)
    if not ids:
        return pd.DataFrame({"lat": pd.Series(dtype=float), "lng": pd.Series(dtype=float)})
    parsed = np.asarray(cells_parse(pa.array(ids, type=pa.string())), dtype=np.uint64)
    lat, lng = cells_to_latlng(parsed)
    return pd.DataFrame({"lat": lat, "lng": lng})


def cell_centre(cell_id: str) -> tuple[float, float]:
    """The centre of one cell as ``(lat, lng)`` (WGS84)."""
    row = cell_centres([cell_id]).iloc[0]
    return float(row.lat), float(row.lng)


def rule_value_text(key: str, value: str, language: str = "zh_CN") -> str:
    """A rule's value as a screen shows it: the key periods' names in the reader's language.

    Examples
    --------
    >>> rule_value_text("key_periods", "spring_ploughing=03-01..04-30,autumn_winter=10-01..03-31")
    '春耕期间 03-01..04-30，秋冬季节 10-01..03-31'
    >>> rule_value_text("key_periods", "spring_ploughing=03-01..04-30", "en")
    'Spring ploughing 03-01..04-30'
    >>> rule_value_text("heat_radius_km", "30")
    '30'
    """
    if key != "key_periods" or not value:
        return value
    from gridwatch.i18n import gettext

    parts = [part.split("=", 1) for part in value.split(",") if "=" in part]
    joiner = "，" if language.startswith("zh") else ", "

    def named(name: str) -> str:
        text = gettext(name, language)
        return text.replace("_", " ").capitalize() if text == name else text  # an id shown in English reads as words

    return joiner.join(f"{named(name.strip())} {dates.strip()}" for name, dates in parts)
