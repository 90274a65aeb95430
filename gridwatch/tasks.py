"""Patrol tasks: kinds, states and the transition table, priorities and findings (pure).

Examples
--------
>>> check_transition(State.REPORTED, State.VERIFIED)
>>> check_transition(State.OPEN, State.CLOSED)
Traceback (most recent call last):
...
gridwatch.errors.InvalidTransition: A task cannot go from open to closed; allowed next states: assigned, escalated, withdrawn.

A task's creation is the step from no state (``None``) to one of :data:`CREATED`:

>>> check_transition(None, State.ASSIGNED)
>>> check_transition(None, State.REPORTED)
Traceback (most recent call last):
...
gridwatch.errors.InvalidTransition: A new task starts as open or assigned, not as reported.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum


from gridwatch.errors import InvalidTransition, ValidationError

__all__ = ["Kind", "State", "TRANSITIONS", "CREATED", "check_transition", "Priority", "FINDINGS", "ACTIVE_STATES",
           "check_finding", "derive_state", "naive_utc"]


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
    HEAT_SOURCE_CHECK = "heat_source_check"  # 疑似固定热源 — 请核实: a cell that keeps burning, not on the layer


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


#: the states a task is created in: assigned to the first person on its cell's chain, or open when nobody is on it
CREATED: tuple[State, ...] = (State.OPEN, State.ASSIGNED)


def check_transition(current: State | str | None, target: State | str) -> None:
    """Raise InvalidTransition unless the table allows ``current → target``; ``current`` None is a task's creation."""
    if current is None:
        if State(target) not in CREATED:
            raise InvalidTransition("A new task starts as open or assigned, not as {target}.",
                                    target=State(target).value)
        return
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



#: what a report may say, per task kind
FINDINGS: dict[str, tuple[str, ...]] = {
    Kind.FIRE_CHECK: ("confirmed_burning", "extinguished", "false_alarm", "industrial_heat_source"),
    Kind.BARE_LAND_SURVEY: ("covered", "greened", "still_bare"),
    Kind.BOILER_CHECK: ("closed", "operating", "integrated"),
    Kind.COAL_CHECK: ("none_found", "seized"),
    Kind.ROUTINE_PATROL: ("normal", "problem_found"),
    Kind.MANUAL: ("done", "problem_found"),
    Kind.HEAT_SOURCE_CHECK: ("static_source_confirmed", "field_burning"),
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
    check_transition(None, events[0]["to_state"])
    state = State(events[0]["to_state"])
    for event in events[1:]:
        if event["from_state"] != state:
            raise InvalidTransition("Event history is inconsistent: {found} follows {state}.",
                                    found=event["from_state"], state=state.value)
        check_transition(state, event["to_state"])
        state = State(event["to_state"])
    return state
