"""Patrol tasks: kinds, states and the transition table, priorities, SLAs and key periods (pure).

Examples
--------
>>> check_transition(State.REPORTED, State.VERIFIED)
>>> check_transition(State.OPEN, State.CLOSED)
Traceback (most recent call last):
...
gridwatch.errors.InvalidTransition: A task cannot go from open to closed; allowed next states: assigned, escalated, withdrawn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from gridwatch.errors import InvalidTransition, ValidationError

__all__ = ["Kind", "State", "TRANSITIONS", "check_transition", "Period", "DispatchPolicy", "Priority", "FINDINGS",
           "ACTIVE_STATES", "check_finding", "derive_state", "naive_utc"]


def naive_utc(now: dt.datetime | None = None) -> dt.datetime:
    """``now`` (default: the clock) as naive UTC to the second, as times are stored; a naive ``now`` is UTC already.

    Examples
    --------
    >>> naive_utc(dt.datetime(2026, 6, 1, 8, 30, 15, 999, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    datetime.datetime(2026, 6, 1, 0, 30, 15)
    """
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC)
    return now.replace(tzinfo=None, microsecond=0)


class Kind(StrEnum):
    """What a task asks for."""

    FIRE_CHECK = "fire_check"
    BARE_LAND_SURVEY = "bare_land_survey"
    BOILER_CHECK = "boiler_check"
    COAL_CHECK = "coal_check"
    ROUTINE_PATROL = "routine_patrol"
    MANUAL = "manual"


class State(StrEnum):
    """Where a task stands; derived from its events."""

    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    REPORTED = "reported"
    VERIFIED = "verified"
    CLOSED = "closed"
    REJECTED = "rejected"
    ESCALATED = "escalated"
    WITHDRAWN = "withdrawn"   # made moot by the system (a newly published layer version), never by a worker


TRANSITIONS: dict[State, tuple[State, ...]] = {
    State.OPEN: (State.ASSIGNED, State.ESCALATED, State.WITHDRAWN),
    State.ASSIGNED: (State.ASSIGNED, State.IN_PROGRESS, State.ESCALATED, State.WITHDRAWN),
    State.IN_PROGRESS: (State.REPORTED, State.ESCALATED, State.WITHDRAWN),
    State.REPORTED: (State.VERIFIED, State.REJECTED),
    State.REJECTED: (State.IN_PROGRESS, State.ESCALATED, State.WITHDRAWN),
    State.ESCALATED: (State.ASSIGNED, State.IN_PROGRESS, State.ESCALATED, State.WITHDRAWN),
    State.VERIFIED: (State.CLOSED,),
    State.CLOSED: (),
    State.WITHDRAWN: (),
}


def check_transition(current: State | str, target: State | str) -> None:
    """Raise InvalidTransition unless the table allows ``current → target``."""
    current, target = State(current), State(target)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            "A task cannot go from {current} to {target}; allowed next states: {allowed}.",
            current=current.value, target=target.value,
            allowed=", ".join(s.value for s in TRANSITIONS[current]) or "none",
        )


class Priority:
    """Task priorities: higher is more urgent."""

    ROUTINE = 1
    NORMAL = 2
    KEY_PERIOD = 3
    NO_BURN_ZONE = 4
    ZONE_IN_KEY_PERIOD = 5


@dataclass(frozen=True)
class Period:
    """A recurring yearly period given by month and day, e.g. the summer harvest 05-20 to 06-30."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def parse(cls, name: str, text: str) -> "Period":
        """From ``"MM-DD..MM-DD"``."""
        try:
            a, b = text.split("..")
            start = tuple(int(x) for x in a.split("-"))
            end = tuple(int(x) for x in b.split("-"))
            dt.date(2024, *start), dt.date(2024, *end)
        except (ValueError, TypeError) as exc:
            raise ValidationError("Key period {name} = {text!r} is not of the form MM-DD..MM-DD.",
                                  name=name, text=text) from exc
        return cls(name, start, end)  # type: ignore[arg-type]

    def contains(self, dates: np.ndarray) -> np.ndarray:
        """Whether each local date (datetime64[D]) falls in the period (periods may wrap the new year)."""
        d = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[ns]"))
        md = d.month.to_numpy() * 100 + d.day.to_numpy()
        lo, hi = self.start[0] * 100 + self.start[1], self.end[0] * 100 + self.end[1]
        return (md >= lo) & (md <= hi) if lo <= hi else (md >= lo) | (md <= hi)


@dataclass(frozen=True)
class DispatchPolicy:
    """The configurable rules of fire dispatch.

    Attributes
    ----------
    key_periods : tuple of Period
        Summer (三夏) and autumn (三秋) harvests by default, when straw burning peaks.
    sla_key_hours, sla_hours : float
        Time to reach the spot in and outside key periods.
    dispatch_low_confidence : bool
        Low-confidence detections are kept but not dispatched unless this is set.
    persistent_days : int
        A cell with detections on this many separate days within ``persistent_window_days``
        is a likely static heat source (industry) and is not dispatched.
    timezone : str
        Zone of local dates.
    """

    key_periods: tuple[Period, ...] = (
        Period("summer_harvest", (5, 20), (6, 30)),
        Period("autumn_harvest", (9, 15), (11, 15)),
    )
    sla_key_hours: float = 2.0
    sla_hours: float = 24.0
    dispatch_low_confidence: bool = False
    persistent_days: int = 4
    persistent_window_days: int = 60
    timezone: str = "Asia/Shanghai"
    sla_by_kind: dict[str, float] = field(default_factory=lambda: {
        Kind.BARE_LAND_SURVEY: 72.0, Kind.BOILER_CHECK: 168.0, Kind.COAL_CHECK: 72.0,
        Kind.ROUTINE_PATROL: 168.0, Kind.MANUAL: 72.0,
    })

    def local_dates(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Local calendar dates (datetime64[D]) of UTC timestamps."""
        idx = pd.DatetimeIndex(pd.to_datetime(utc, utc=True)).tz_convert(self.timezone).tz_localize(None)
        return idx.to_numpy().astype("datetime64[D]")

    def in_key_period(self, utc: pd.Series | np.ndarray) -> np.ndarray:
        """Whether each detection time falls in a key period (by local date)."""
        dates = self.local_dates(utc)
        out = np.zeros(len(dates), dtype=bool)
        for period in self.key_periods:
            out |= period.contains(dates)
        return out

    def fire_priority(self, key_period: np.ndarray, in_zone: np.ndarray) -> np.ndarray:
        """Priority of fire checks: zones and key periods raise it."""
        return np.select(
            [in_zone & key_period, in_zone, key_period],
            [Priority.ZONE_IN_KEY_PERIOD, Priority.NO_BURN_ZONE, Priority.KEY_PERIOD],
            Priority.NORMAL,
        ).astype(np.int32)

    def fire_sla_hours(self, key_period: np.ndarray) -> np.ndarray:
        """Hours to reach the spot."""
        return np.where(key_period, self.sla_key_hours, self.sla_hours)


#: what a report may say, per task kind
FINDINGS: dict[str, tuple[str, ...]] = {
    Kind.FIRE_CHECK: ("confirmed_burning", "extinguished", "false_alarm", "industrial_heat_source"),
    Kind.BARE_LAND_SURVEY: ("covered", "greened", "still_bare"),
    Kind.BOILER_CHECK: ("closed", "operating", "integrated"),
    Kind.COAL_CHECK: ("none_found", "seized"),
    Kind.ROUTINE_PATROL: ("normal", "problem_found"),
    Kind.MANUAL: ("done",),
}

#: states in which a task still waits for work in the field
ACTIVE_STATES = (State.OPEN, State.ASSIGNED, State.IN_PROGRESS, State.REJECTED, State.ESCALATED)


def check_finding(kind: str, finding: str | None) -> str:
    """The finding, checked against the task kind's list."""
    allowed = FINDINGS[Kind(kind)]
    if finding not in allowed:
        raise ValidationError("A {kind} report needs a finding: one of {allowed} (got {finding!r}).",
                              kind=kind, allowed=", ".join(allowed), finding=finding)
    return finding


def derive_state(events: list[dict]) -> State:
    """The current state of a task from its events (the last event's target state), checking each step.

    Examples
    --------
    >>> derive_state([{"from_state": None, "to_state": "assigned"}, {"from_state": "assigned", "to_state": "in_progress"}])
    <State.IN_PROGRESS: 'in_progress'>
    """
    if not events:
        raise ValidationError("A task without events has no state.")
    state = State(events[0]["to_state"])
    for event in events[1:]:
        if event["from_state"] != state:
            raise InvalidTransition("Event history is inconsistent: {found} follows {state}.",
                                    found=event["from_state"], state=state.value)
        check_transition(state, event["to_state"])
        state = State(event["to_state"])
    return state
