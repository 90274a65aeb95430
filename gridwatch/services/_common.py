"""What the service modules share: actors and scope checks, the policy, the region's settings and units, audit entries.

Every public service takes the store and an :data:`Actor` as its first two arguments: a signed-in
:class:`~gridwatch.auth.User`, whose grants and scope are checked by :func:`require`, or a :class:`SystemActor`
(the command line, a scheduled job, the demo builder), which may do everything and is recorded under its own name
(``system:cli``). There is no call without an actor, and so no call that skips the check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gridwatch import auth
from gridwatch.config import Settings
from gridwatch.errors import PermissionDenied, ValidationError
from gridwatch.policy import DEMO_DOCUMENT, DEMO_KEY_PERIODS, Policy, parse_key_periods, step_hours_of
from gridwatch.storage import Store


@dataclass(frozen=True)
class SystemActor:
    """A job or the command line: may do everything, and is recorded as ``system:<name>``.

    Examples
    --------
    >>> CLI.username
    'system:cli'
    """

    name: str

    @property
    def username(self) -> str:
        """The name under which its work is recorded."""
        return f"system:{self.name}"


@dataclass(frozen=True)
class IntegrationActor:
    """Another system calling through the HTTP API with its token, recorded as ``integration:<name>``.

    It may post alarms of its own ``source`` on the cells of its ``unit`` and read its own alarms back, nothing
    else (:data:`INTEGRATION_ACTIONS`).

    Examples
    --------
    >>> IntegrationActor(1, "hotline-12345", "410329", "hotline", 600).username
    'integration:hotline-12345'
    """

    id: int
    name: str
    unit: str
    source: str
    rate_per_minute: int

    @property
    def username(self) -> str:
        """The name under which its calls are recorded."""
        return f"integration:{self.name}"


#: what an integration may do (on the cells of its unit)
INTEGRATION_ACTIONS = frozenset({"alarm.post", "alarm.view"})

#: who acts: a signed-in user (checked), an integration (checked) or a system actor (recorded as such)
Actor = auth.User | SystemActor | IntegrationActor

#: the command line
CLI = SystemActor("cli")
#: scheduled jobs of the running app (FIRMS fetch, escalation, notifications)
SCHEDULER = SystemActor("scheduler")
#: the demo database's builder
DEMO = SystemActor("demo")
#: work the system does on its own behalf inside another service (kept for callers of the old name)
SYSTEM = SystemActor("system")

#: the action that lets an administrator manage people, roles, backups and the record
MANAGE_PEOPLE = "people.manage"


def actor_name(actor: Actor) -> str:
    """The name recorded for an actor (a user name, or ``system:<name>``)."""
    if isinstance(actor, (auth.User, SystemActor, IntegrationActor)):
        return actor.username
    raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")


def require(store: Store, actor: Actor, action: str, *, cell: int | None = None, unit: str | None = None) -> None:
    """Refuse (and record the refusal) unless the actor may do ``action`` here; system actors may do everything."""
    if isinstance(actor, SystemActor):
        return
    if isinstance(actor, IntegrationActor):
        _require_integration(store, actor, action, cell=cell, unit=unit)
        return
    if not isinstance(actor, auth.User):
        raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")
    auth.require(store, actor, action, cell=cell, unit=unit)


def _require_integration(store: Store, actor: IntegrationActor, action: str, *, cell: int | None,
                         unit: str | None) -> None:
    """Refuse an integration anything but its own actions, and any cell or unit outside its unit."""
    from gridwatch.errors import PermissionDenied

    if action not in INTEGRATION_ACTIONS:
        raise PermissionDenied("The integration {name} may not {action}.", name=actor.name, action=action)
    if cell is not None and not store.scalar(
            "SELECT count(*) FROM cells WHERE cell = ? AND ? IN (city_code, county_code, township_code, village_code)",
            [int(cell), actor.unit]):
        raise PermissionDenied("The integration {name} may not {action} here: the place lies outside its unit "
                               "{unit}.", name=actor.name, action=action, unit=actor.unit)
    if unit is not None and unit != actor.unit:
        raise PermissionDenied("The integration {name} may not {action} for unit {target}; it is scoped to "
                               "{unit}.", name=actor.name, action=action, target=unit, unit=actor.unit)


def require_region(store: Store, actor: Actor, action: str) -> None:
    """Refuse unless the actor may do ``action`` over the whole region (a role on the region's unit or above)."""
    if isinstance(actor, SystemActor):
        return
    region = store.get_meta("region")
    require(store, actor, action, unit=region) if region else require(store, actor, action)


def require_system(actor: Actor, what: str) -> None:
    """Refuse unless a system actor (the command line, a job) does ``what`` (an action id such as ``fires.ingest``):
    work that concerns the whole region and that no signed-in user starts."""
    if not isinstance(actor, SystemActor):
        raise PermissionDenied("Only the command line or the system's own jobs may do {action}.", action=what)


def scope_sql(actor: Actor, column: str = "cell", action: str = "cell.view") -> tuple[str, list]:
    """A SQL condition keeping the rows whose cell the actor may see (everything for a system actor)."""
    if isinstance(actor, SystemActor):
        return "1 = 1", []
    if not isinstance(actor, auth.User):
        raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")
    return auth.scope_cells_sql(actor, action, column=column)


def user_of(actor: Actor) -> auth.User | None:
    """The signed-in user behind an actor, or None for a system actor (which sees everything)."""
    if isinstance(actor, SystemActor):
        return None
    if not isinstance(actor, auth.User):
        raise TypeError(f"a service needs an actor (a signed-in user or a system actor), not {actor!r}")
    return actor


def policy(store: Store) -> Policy:
    """The policy in force for this store: the one the edge attached when it opened it (``store.policy``), else the
    one of the settings as they are now (``gridwatch.toml`` and ``GRIDWATCH_*``)."""
    attached = getattr(store, "policy", None)
    found = attached if isinstance(attached, Policy) else Policy.load()
    return with_demo_settings(store, found)


#: local settings (本地设置) the generated demo database applies where the settings leave them unset, so that its
#: screens show every feature; they are labelled as demo settings wherever rules are listed
DEMO_SETTINGS = {"report_thresholds": "notice=5,interview_deputy=10,interview_principal=20",
                 "report_deduction_yuan": 10000.0, "key_periods": DEMO_KEY_PERIODS,
                 "sla_step_hours": "village=24,township=24,county=48,city=72",
                 "problem_rectify_days": "straw_burning=1,fireworks=1,construction_dust=3,loose_coal=7,other=15,"
                                         "bare_land=30,coal_boiler=30",
                 "problem_repeat_days": 90, "problem_recheck_days": 30}


def with_demo_settings(store: Store, found: Policy) -> Policy:
    """The policy with :data:`DEMO_SETTINGS` filled in where unset, when the database is the generated demo."""
    from dataclasses import replace

    from gridwatch import regionstore

    unset = {k: v for k, v in DEMO_SETTINGS.items() if not getattr(found.settings, k)}
    if not unset or store is None or store.get_meta("region") is None or not regionstore.is_demo(store):
        return found
    documents = {**{k: DEMO_DOCUMENT for k in unset}, **dict(found.settings.rule_documents or {})}
    settings = replace(found.settings, **unset, rule_documents=documents)
    dispatch = found.dispatch
    if "key_periods" in unset:  # the dispatch rules hold the parsed periods
        dispatch = replace(dispatch, key_periods=parse_key_periods(unset["key_periods"]))
    return replace(found, dispatch=dispatch, settings=settings, step_hours=step_hours_of(settings.sla_step_hours))




#: the longest upload name, in bytes (a file system takes 255)
_MAX_NAME_BYTES = 200


def upload_name(name: str | None) -> str:
    r"""Give the name an upload is written and reported under: its last path part, never a path.

    ``../../zones.zip`` gives ``zones.zip`` and no name gives ``upload``.

    Raises
    ------
    ValidationError
        The name has no file part (``..``, ``/``), holds a NUL or another control character, or is longer than a
        file system takes.

    Examples
    --------
    >>> upload_name("../../zones.zip"), upload_name(None), upload_name(r"C:\data\村界.kmz")
    ('zones.zip', 'upload', '村界.kmz')
    """
    if not name:
        return "upload"
    base = re.split(r"[\\/]", name)[-1].strip()
    if (base in ("", ".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in base)
            or len(base.encode("utf-8")) > _MAX_NAME_BYTES):
        raise ValidationError("The upload name {name!r} is not a file name gridwatch can keep (a path, a control "
                              "character, or more than {limit} bytes); give the file a plain name such as zones.zip.",
                              name=name[:100], limit=_MAX_NAME_BYTES)
    return base


def check_upload_size(source: str | Path | bytes, *, name: str | None = None) -> None:
    """Refuse a file larger than ``max_upload_mb``, or an upload name that is no file name, before it is read."""
    limit = float(Settings.load().max_upload_mb)
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, label = len(source), upload_name(name)
    else:
        path = Path(source)
        size, label = (path.stat().st_size if path.is_file() else 0), upload_name(name) if name else path.name
    if size > limit * (1 << 20):
        raise ValidationError("{file} is {size:.0f} MB, more than the {limit:g} MB a file may have; split it or ask an "
                              "administrator to raise max_upload_mb.", file=label, size=size / (1 << 20), limit=limit)


def audit(store: Store, *, actor: str, action: str, subject: str = "", detail: dict | None = None) -> None:
    """Append an entry to the audit log (in the caller's transaction, else in its own, which seals it)."""
    with store.transaction():
        store.execute(
            "INSERT INTO audit_log (actor, action, subject, detail) VALUES (?, ?, ?, ?)",
            [actor, action, subject, json.dumps(detail or {}, ensure_ascii=False, default=str)],
        )





def _upload_path(source: str | Path | bytes, name: str | None, workdir: Path) -> Path:
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = workdir / upload_name(name)
        path.write_bytes(bytes(source))
        return path
    return Path(source)

