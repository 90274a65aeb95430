"""The problem register (问题台账): lists and a problem's history in scope, each step of its life, the schedules.

Who may do what, checked here on the problem's cell: seeing a problem needs ``cell.view`` (or being the official
following it, or the person responsible for fixing it); handing it over (交办) needs ``task.assign``; starting the
rectification and applying to close it (申请销号) need ``task.work`` (or being the responsible person or the
official); the on-site check (复核), closing (销号), returning (退回) and dismissing need ``task.verify``, and the
check is refused to the person who rectified. Escalation and the re-check patrols (回头看) are system work.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from gridwatch import auth, org, problems
from gridwatch.errors import NotFound, PermissionDenied, ValidationError
from gridwatch.i18n import N_
from gridwatch.photos import inspect_report_photos, store_photo
from gridwatch.problems import State
from gridwatch.services._common import Actor, actor_name, audit, policy, require, require_system, scope_sql, user_of
from gridwatch.storage import Store
from gridwatch.tasks import Kind, naive_utc
from gridwatch.workflow import Fix

__all__ = ["problems_table", "problem_show", "problem_actions", "problem_assign", "problem_start",
           "problem_rectified", "problem_check", "problem_dismiss", "problems_escalate", "problem_rechecks",
           "PROBLEM_STATES", "PROBLEM_CATEGORIES", "PROBLEM_STATE_LABELS", "PROBLEM_CATEGORY_LABELS"]

#: the states and categories a screen or an API may filter on
PROBLEM_STATES = tuple(s.value for s in State)
PROBLEM_CATEGORIES = problems.CATEGORIES
#: what a screen shows for each state and category (message ids, translated at the edge)
PROBLEM_STATE_LABELS = {"found": N_("Found"), "assigned": N_("Handed over"), "rectifying": N_("Being rectified"),
                        "rectified": N_("Applied to close"), "checked": N_("Checked on site"),
                        "closed": N_("Closed (销号)"), "returned": N_("Returned"), "dismissed": N_("Dismissed")}
PROBLEM_CATEGORY_LABELS = {"straw_burning": N_("Straw burning"), "bare_land": N_("Bare land"),
                           "coal_boiler": N_("Coal boiler"), "loose_coal": N_("Loose coal"),
                           "construction_dust": N_("Construction dust"), "fireworks": N_("Fireworks"),
                           "other": N_("Other problem")}
#: the steps a person takes, by the state each leads to: hand over, start, apply to close, check, dismiss
PROBLEM_ACTIONS = {State.ASSIGNED: "hand_over", State.RECTIFYING: "start", State.RECTIFIED: "apply_close",
                   State.CHECKED: "check", State.DISMISSED: "dismiss"}
#: the largest page of problems one call returns
MAX_PAGE = 500


def _iso(moment: Any) -> str | None:
    if moment is None or (not isinstance(moment, str) and pd.isna(moment)):
        return None
    return pd.Timestamp(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(store: Store, problem_id: int) -> dict[str, Any]:
    rows = store.query("SELECT id, cell, state, assignee_id, party_person_id FROM problems WHERE id = ?",
                       [int(problem_id)])
    if not rows:
        raise NotFound("There is no problem {id}.", id=problem_id)
    return rows[0]


def _own(actor: Actor, row: dict[str, Any]) -> bool:
    """Whether a signed-in person follows the problem or must fix it."""
    user = user_of(actor)
    return user is not None and user.person_id is not None and user.person_id in (row["assignee_id"],
                                                                                 row["party_person_id"])


def _require(store: Store, actor: Actor, problem_id: int, action: str) -> dict[str, Any]:
    """Refuse unless the actor may do ``action`` on the problem's cell (its own people may see and work it)."""
    row = _row(store, problem_id)
    if action in ("cell.view", "task.work") and _own(actor, row):
        require(store, actor, action if action == "task.work" else "task.work")
    else:
        require(store, actor, action, cell=int(row["cell"]))
    return row


def _person_id(actor: Actor) -> int | None:
    user = user_of(actor)
    return None if user is None else user.person_id


def problems_table(store: Store, actor: Actor, *, state: str | None = None, category: str | None = None,
                   overdue: bool | None = None, repeat: bool | None = None, unit: str | None = None,
                   limit: int = 100, offset: int = 0, now: dt.datetime | None = None) -> dict[str, Any]:
    """Problems on the cells the actor may see, filtered and paged, as JSON-ready rows (cell as H3 hex id, times
    as UTC ISO 8601): ``{"total", "limit", "offset", "problems"}``, overdue first, then by deadline."""
    if state is not None and state not in PROBLEM_STATES:
        raise ValidationError("Unknown problem state {state}; use one of {known}.", state=state,
                              known=", ".join(PROBLEM_STATES))
    if not 1 <= int(limit) <= MAX_PAGE or int(offset) < 0:
        raise ValidationError("A page holds 1 to {most} problems from an offset of 0 or more (got limit {limit}, "
                              "offset {offset}).", most=MAX_PAGE, limit=limit, offset=offset)
    require(store, actor, "cell.view")
    if unit:
        require(store, actor, "cell.view", unit=unit)
    frame, total = problems.list_problems(store, scope=scope_sql(actor, "p.cell"), state=state, category=category,
                                          overdue=overdue, repeat=repeat, unit=unit, now=now, limit=int(limit),
                                          offset=int(offset))
    frame["cell"] = [f"{int(c):x}" for c in frame.cell.to_numpy(dtype=np.int64)]
    for column in ("found_at", "deadline_at", "closed_at"):
        frame[column] = [_iso(v) for v in frame[column]]
    frame["overdue"] = frame.overdue.astype(bool)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {"total": total, "limit": int(limit), "offset": int(offset), "problems": rows}


def problem_show(store: Store, actor: Actor, problem_id: int) -> dict[str, Any]:
    """One problem with its history, the task that found it, its repeats and re-check patrols, for someone who may
    see its cell (or follows it, or must fix it)."""
    _require(store, actor, problem_id, "cell.view")
    return problems.problem_detail(store, problem_id)


def problem_actions(store: Store, actor: Actor, problem_id: int) -> list[str]:
    """The steps the actor may take on the problem now (for a screen to offer), as :data:`PROBLEM_ACTIONS` names:
    steps of the table that the actor's grants allow, less the check for the person who rectified."""
    row = _row(store, problem_id)
    user = user_of(actor)
    if user is None:
        return []
    cell = int(row["cell"])
    can = {a: auth.can_act_on_cell(store, user, a, cell) for a in ("task.assign", "task.work", "task.verify")}
    can["task.work"] = can["task.work"] or (_own(actor, row) and user.can("task.work"))
    need = {State.ASSIGNED: "task.assign", State.RECTIFYING: "task.work", State.RECTIFIED: "task.work",
            State.CHECKED: "task.verify", State.DISMISSED: "task.verify"}
    out = []
    for target in problems.TRANSITIONS[State(row["state"])]:
        if target is State(row["state"]) and target is not State.ASSIGNED:
            continue  # escalation is the system's
        if target in (State.CLOSED, State.RETURNED):
            continue  # the outcome of a check, taken with it
        if not can.get(need.get(target, ""), False):
            continue
        if target is State.CHECKED and problems._last_rectifier(store, int(row["id"])) == user.person_id:
            continue
        out.append(PROBLEM_ACTIONS[target])
    return out


def _party(store: Store, kind: str, name: str, person_key: str | None, unit: str | None) -> dict[str, Any]:
    """The responsible party of a handover: a person found by key (named as stored), or an enterprise or unit."""
    if kind == "person":
        rows = store.query("SELECT id, name FROM people WHERE person_key = ?", [str(person_key or "")])
        if not rows:
            raise NotFound("There is no person {key}.", key=person_key)
        return {"kind": kind, "name": rows[0]["name"], "person_id": int(rows[0]["id"])}
    if kind == "unit":
        rows = store.query("SELECT code, name FROM units WHERE code = ?", [str(unit or "")])
        if not rows:
            raise NotFound("There is no unit {code}.", code=unit)
        return {"kind": kind, "name": rows[0]["name"], "unit": rows[0]["code"]}
    return {"kind": kind, "name": name}


def problem_assign(store: Store, actor: Actor, problem_id: int, *, party_kind: str, party_name: str = "",
                   person_key: str | None = None, unit: str | None = None, follower_key: str | None = None,
                   note: str = "") -> dict[str, Any]:
    """Hand a problem over (交办): name who must fix it (a person by key, an enterprise by name, a unit by code) and
    optionally the official who follows it (a person by key, who must be in the handing person's scope)."""
    row = _require(store, actor, problem_id, "task.assign")
    party = _party(store, party_kind, party_name, person_key, unit)
    follower = None
    if follower_key:
        found = store.query("SELECT id FROM people WHERE person_key = ?", [follower_key])
        if not found:
            raise NotFound("There is no person {key}.", key=follower_key)
        chain = org.chain_holders(store, np.array([int(row["cell"])], dtype=np.int64))
        mine = chain[chain.person_id == int(found[0]["id"])]
        if mine.empty:
            raise ValidationError("{key} holds no role on the responsibility chain of the problem's place; hand "
                                  "problems to someone who does.", key=follower_key)
        follower = {"person_id": int(found[0]["id"]), "role": mine.role.iloc[0], "unit": mine.unit.iloc[0] or None}
    with store.transaction():
        detail = problems.step(store, int(row["id"]), State.ASSIGNED, actor=actor_name(actor),
                               person_id=_person_id(actor), note=note, party=party, assignee=follower)
        audit(store, actor=actor_name(actor), action="problem.assign", subject=str(row["id"]), detail=detail)
    return detail


def problem_start(store: Store, actor: Actor, problem_id: int, *, note: str = "") -> dict[str, Any]:
    """Start the rectification (整改中) of a handed-over or returned problem."""
    row = _require(store, actor, problem_id, "task.work")
    with store.transaction():
        return problems.step(store, int(row["id"]), State.RECTIFYING, actor=actor_name(actor),
                             person_id=_person_id(actor), note=note)


def problem_rectified(store: Store, actor: Actor, problem_id: int, *, note: str,
                      photos: list[tuple[str, bytes]] = (), fix: Fix | None = None) -> dict[str, Any]:
    """Apply to close a problem (申请销号): what was done, with photos of the place (and the position, flagged when
    outside the cell), as the person who rectified it."""
    row = _require(store, actor, problem_id, "task.work")
    if _person_id(actor) is None:
        raise PermissionDenied("Problem {id} is rectified by a person signed in; the system cannot apply to close "
                               "it.", id=problem_id)
    checked = inspect_report_photos(list(photos))
    task_id = int(store.scalar("SELECT finding_task_id FROM problems WHERE id = ?", [int(row["id"])]))
    with store.transaction():
        refs = [store_photo(store, photo, task_id=task_id, uploaded_by=actor_name(actor)) for _, photo in checked]
        return problems.step(store, int(row["id"]), State.RECTIFIED, actor=actor_name(actor),
                             person_id=_person_id(actor), note=note, photos=refs, fix=fix)


def problem_check(store: Store, actor: Actor, problem_id: int, *, passed: bool, note: str = "",
                  fix: Fix | None = None) -> dict[str, Any]:
    """Check a rectification on site (复核), as another person than the rectifier, and close the problem (销号) or
    return it for more work (退回, with the reason in the note), in one transaction."""
    row = _require(store, actor, problem_id, "task.verify")
    if not passed and not note.strip():
        raise ValidationError("Returning or dismissing a problem needs a reason in the note.")
    name, person = actor_name(actor), _person_id(actor)
    with store.transaction():
        detail = problems.step(store, int(row["id"]), State.CHECKED, actor=name, person_id=person, note=note,
                               fix=fix)
        outcome = State.CLOSED if passed else State.RETURNED
        problems.step(store, int(row["id"]), outcome, actor=name, person_id=person, note=note)
        audit(store, actor=name, action=f"problem.{outcome.value}", subject=str(row["id"]), detail=detail)
    return {**detail, "outcome": outcome.value}


def problem_dismiss(store: Store, actor: Actor, problem_id: int, *, note: str) -> dict[str, Any]:
    """Dismiss a problem raised in error (不成立) before any work on it, with the reason."""
    row = _require(store, actor, problem_id, "task.verify")
    with store.transaction():
        detail = problems.step(store, int(row["id"]), State.DISMISSED, actor=actor_name(actor),
                               person_id=_person_id(actor), note=note)
        audit(store, actor=actor_name(actor), action="problem.dismiss", subject=str(row["id"]), detail=detail)
    return detail


def problems_escalate(store: Store, actor: Actor, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Escalate problems whose rectification is overdue up the chain (a job or the command line)."""
    require_system(actor, "problems.escalate")
    with store.transaction():
        result = problems.escalate_overdue(store, rules=policy(store).problems, now=naive_utc(now),
                                           actor=actor_name(actor))
        if result["escalated"]:
            audit(store, actor=actor_name(actor), action="problems.escalate", detail=result)
    return result


def problem_rechecks(store: Store, actor: Actor, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Open the re-check patrols (回头看) of closed problems that are due (a job or the command line)."""
    require_system(actor, "problems.recheck")
    rules = policy(store)
    with store.transaction():
        result = problems.schedule_rechecks(store, rules=rules.problems, now=naive_utc(now), actor=actor_name(actor),
                                            due_hours=rules.sla_hours(Kind.ROUTINE_PATROL))
        if result["created"]:
            audit(store, actor=actor_name(actor), action="problems.recheck", detail=result)
    return result
