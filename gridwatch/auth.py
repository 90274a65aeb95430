"""Accounts, sign-in sessions, role grants and the cells each user may see and act on.

A person signs in with an account (user name and an argon2id password hash);
a session is a random token given to the client once, of which only the
SHA-256 is stored. A signed-in :class:`User` carries the person's roles and the
actions they grant. Scope is enforced here, in the core: a role held on a cell
covers that cell, a role held on a unit covers every cell the unit owns (at
city, county, township or village level; a province covers its cities).
Every refused attempt, failed sign-ins included, is recorded in
``access_denials`` in a transaction of its own, so the record outlives the
refused work.

Sign-in attempts are counted per account and per client address before the
password is checked, each with one conditional statement that also refuses a
locked account or a paused address: attempts made at once get no more checks
than the limits allow, and a right password after the limit is refused
unchecked. Every refusal reads the same, whether the user name exists or not.

Times are UTC. Functions that take ``now`` accept an aware datetime or a naive
one meaning UTC; the store keeps naive UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import h3
import numpy as np

from gridwatch.accounts import (
    _USERNAME,
    MIN_PASSWORD_LENGTH,
    _account_id,
    _aware,
    _decoy_hash,
    _hasher,
    _normal_username,
    _utc,
    add_account,
    check_password,
    deactivate,
    hash_password,
    set_password,
    verify_password,
)
from gridwatch.errors import NotFound, PermissionDenied, StorageError, ValidationError
from gridwatch.storage import Store

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "MAX_FAILED_LOGINS",
    "LOCKOUT",
    "MAX_FAILED_PER_CLIENT",
    "CLIENT_WINDOW",
    "Session",
    "User",
    "hash_password",
    "verify_password",
    "check_password",
    "add_account",
    "set_password",
    "deactivate",
    "login",
    "login_external",
    "link_identity",
    "logout",
    "session_user",
    "load_user",
    "grants",
    "scope_cells_sql",
    "user_cells",
    "can_act_on_cell",
    "can_act_on_unit",
    "require",
]

log = logging.getLogger(__name__)

#: consecutive failed sign-ins that lock an account
MAX_FAILED_LOGINS = 5
#: how long a locked account (or a paused client address) refuses sign-ins
LOCKOUT = dt.timedelta(minutes=15)
#: failed sign-ins from one client address, whatever user names it tries, that pause sign-ins from it
MAX_FAILED_PER_CLIENT = 20
#: the window in which the failed sign-ins of a client address add up
CLIENT_WINDOW = dt.timedelta(minutes=15)
#: how long sign-in bookkeeping retries when it loses a write conflict before it refuses the attempt, seconds
_CONFLICT_PATIENCE_S = 5.0
#: a session's last use is written at most this often (the idle clock is that precise; each write is a commit)
SESSION_TOUCH = dt.timedelta(seconds=30)

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_OWNER_COLUMNS = ("city_code", "county_code", "township_code", "village_code")

T = TypeVar("T")


# -- writes that must outlive the caller's transaction ------------------------------------------

_apart_pools: weakref.WeakKeyDictionary[Store, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_apart_lock = threading.Lock()


def _apart(store: Store, work: Callable[[Store], T], *, exclusive: str | None = None) -> T:
    """Run ``work(store)`` in a transaction of its own, committed even if the caller's is rolled back.

    The store gives each thread its own cursor and transaction, so the work runs
    on one long-lived helper thread per store (one extra cursor, not one per call).
    With ``exclusive``, the transaction is :meth:`Store.exclusive` under that
    name (no other session of any process runs such work beside it). Work that
    loses a write conflict to another session is run again, for up to
    :data:`_CONFLICT_PATIENCE_S` seconds, before the conflict is raised.
    """
    with _apart_lock:
        pool = _apart_pools.get(store)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gridwatch-auth-record")
            _apart_pools[store] = pool

    def run() -> T:
        deadline = time.monotonic() + _CONFLICT_PATIENCE_S
        pause = 0.005
        while True:
            try:
                with store.exclusive(exclusive) if exclusive else store.transaction():
                    return work(store)
            except StorageError as exc:
                if not store.is_write_conflict(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.2)

    return pool.submit(run).result()


def _record_denial(store: Store, *, account_id: int | None, action: str, target: str, moment: dt.datetime,
                   detail: Mapping[str, Any]) -> None:
    """Append a row to ``access_denials`` in its own transaction; a failure to record is logged, not raised."""
    row = [moment, account_id, action, target[:200], json.dumps(dict(detail), ensure_ascii=False, default=str)]
    try:
        _apart(store, lambda s: s.execute(
            "INSERT INTO access_denials (happened_at, account_id, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            row,
        ))
    except StorageError:
        log.exception("could not record an access denial: %s", row)


# -- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A new sign-in session; ``token`` is shown only here and is never stored.

    Attributes
    ----------
    token : str
        The secret the client presents (``secrets.token_urlsafe(32)``).
    account_id, person_id : int
        Who signed in.
    username : str
        The account's user name.
    expires_at : datetime.datetime
        The absolute end of the session (aware, UTC); it ends sooner when idle.
    """

    token: str = field(repr=False)
    account_id: int
    person_id: int
    username: str
    expires_at: dt.datetime


def _token_hash(token: str) -> str:
    """The stored form of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _refused() -> PermissionDenied:
    """The one refusal of a sign-in: unknown user name, wrong password, locked account or paused address alike."""
    return PermissionDenied(
        "Wrong username or password, or too many failed sign-ins: after {failures} failures in a row "
        "sign-in pauses for {minutes} minutes.",
        failures=MAX_FAILED_LOGINS, minutes=round(LOCKOUT.total_seconds() / 60),
    )


def _client_address(client: str | None) -> str | None:
    """A client address as counted: an IP address in its canonical form, other text trimmed; None when unknown.

    Examples
    --------
    >>> _client_address(" 2001:DB8:0:0::7 "), _client_address("198.51.100.2"), _client_address("")
    ('2001:db8::7', '198.51.100.2', None)
    """
    text = str(client).strip()[:64] if client is not None else ""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def _decoy(password: object) -> None:
    """Spend the time of a password check on a refusal that checks none (unknown and locked names alike)."""
    verify_password(_decoy_hash(), password if isinstance(password, str) else "")


#: one attempt on an account, counted unless it is locked; a lock that has run out starts a fresh count
_COUNT_ACCOUNT = (
    "UPDATE accounts SET"
    " failed_logins = CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END,"
    " locked_until = CASE WHEN (CASE WHEN locked_until IS NULL THEN failed_logins + 1 ELSE 1 END) >= ?"
    " THEN ? ELSE NULL END"
    " WHERE id = ? AND (locked_until IS NULL OR locked_until <= ?)"
)
#: a count of a client address starts again after a lock or once its window has passed
_FRESH = "(sign_in_throttle.locked_until IS NOT NULL OR sign_in_throttle.window_start <= ?)"
#: one attempt from a client address, counted unless the address is paused; returns the attempt's number
_COUNT_CLIENT = (
    "INSERT INTO sign_in_throttle (client, failures, window_start, locked_until) VALUES (?, 1, ?, ?)"
    " ON CONFLICT (client) DO UPDATE SET"
    f" failures = CASE WHEN {_FRESH} THEN 1 ELSE sign_in_throttle.failures + 1 END,"
    f" window_start = CASE WHEN {_FRESH} THEN excluded.window_start ELSE sign_in_throttle.window_start END,"
    f" locked_until = CASE WHEN (CASE WHEN {_FRESH} THEN 1 ELSE sign_in_throttle.failures + 1 END) >= ?"
    " THEN ? ELSE NULL END"
    " WHERE sign_in_throttle.locked_until IS NULL OR sign_in_throttle.locked_until <= ?"
    " RETURNING failures"
)


@dataclass(frozen=True)
class _Attempt:
    """A sign-in attempt as counted: why it is refused unchecked (or None), the account, its number in the count."""

    refused: str | None
    account: dict[str, Any] | None = None
    number: int = 0


def _count_attempt(store: Store, name: str, client: str | None, moment: dt.datetime) -> _Attempt:
    """Count a sign-in attempt on the client address and on the account, before its password is checked.

    A paused address (``client_locked``), an unknown user name (``unknown_user``) or a locked account
    (``locked``) refuses the attempt, uncounted on the account. Each count is one conditional statement that
    checks the lock and adds one (``failures + 1``), so no attempt is lost and none slips past a lock set by
    another. The whole runs apart from the caller's transaction, in the sign-in lock of :meth:`Store.exclusive`
    (every process's sign-ins take turns here; DuckDB refuses ``RETURNING`` on ``accounts``, which other tables
    reference, so the account's count is read back in the same turn), and is retried when it loses a write
    conflict to another session.
    """
    until = moment + LOCKOUT
    window = moment - CLIENT_WINDOW

    def work(s: Store) -> _Attempt:
        if client is not None:
            counted = s.query(_COUNT_CLIENT, [client, moment, until if MAX_FAILED_PER_CLIENT <= 1 else None,
                                              window, window, window, MAX_FAILED_PER_CLIENT, until, moment])
            if not counted:
                return _Attempt("client_locked")
        rows = s.query(
            "SELECT id, person_id, username, password_hash, active, locked_until FROM accounts WHERE username = ?",
            [name],
        ) if _USERNAME.fullmatch(name) else []
        if not rows:
            return _Attempt("unknown_user")
        account = rows[0]
        if account["locked_until"] is not None and account["locked_until"] > moment:
            return _Attempt("locked", account)
        s.execute(_COUNT_ACCOUNT, [MAX_FAILED_LOGINS, until, account["id"], moment])
        return _Attempt(None, account, int(s.scalar("SELECT failed_logins FROM accounts WHERE id = ?",
                                                    [account["id"]])))

    return _apart(store, work, exclusive="sign-in")


def login(store: Store, username: str, password: str, *, client: str | None = None,
          now: dt.datetime | None = None, ttl_minutes: float = 480, idle_minutes: float = 60) -> Session:
    """Check a user name and password and open a session.

    Each attempt is counted before its password is checked, on the account and
    on the client address, each in one conditional statement that refuses a
    locked account or a paused address instead: however many attempts arrive at
    once, no more than :data:`MAX_FAILED_LOGINS` in a row are checked on an
    account and no more than :data:`MAX_FAILED_PER_CLIENT` in
    :data:`CLIENT_WINDOW` from an address. A success takes back its count and
    the counts before it on the account (failures in a row), and its own count
    on the address.

    Parameters
    ----------
    store : Store
        The database.
    username : str
        The account's user name (not case-sensitive).
    password : str
        The password in clear.
    client : str, optional
        The address the attempt came from (the IP address the app saw); without
        it only the account is counted.
    now : datetime.datetime, optional
        The time of the sign-in (default: the current time).
    ttl_minutes : float
        The session's absolute lifetime.
    idle_minutes : float
        The session ends after this long without use (see :func:`session_user`).

    Returns
    -------
    Session
        With the token to hand to the client.

    Raises
    ------
    PermissionDenied
        One message, "Wrong username or password, or too many failed sign-ins
        ...", for an unknown user name, a wrong password, an account locked for
        :data:`LOCKOUT` after :data:`MAX_FAILED_LOGINS` failures in a row and
        an address paused for :data:`LOCKOUT` after
        :data:`MAX_FAILED_PER_CLIENT` failures alike, each taking the time of a
        password check (which of them it was is recorded, not said); a
        deactivated account is refused (after a right password only). Every
        refusal is recorded in ``access_denials``, an attempt that could not be
        counted (a write conflict that outlasted the retries) too.
    ValidationError
        A lifetime that is not positive.
    """
    if not ttl_minutes > 0 or not idle_minutes > 0:
        raise ValidationError("Session lifetimes must be positive (got {ttl} and {idle} minutes).",
                              ttl=ttl_minutes, idle=idle_minutes)
    moment = _utc(now)
    name = _normal_username(username)
    address = _client_address(client)

    def refuse(account_id: int | None, reason: str, **more: Any) -> PermissionDenied:
        """Record the refusal; the one refusal to raise."""
        seen = {"client": address} if address is not None else {}
        _record_denial(store, account_id=account_id, action="login", target=name or str(username), moment=moment,
                       detail={"reason": reason, "username": name, **seen, **more})
        return _refused()

    try:
        attempt = _count_attempt(store, name, address, moment)
    except StorageError as exc:
        if not store.is_write_conflict(exc):
            raise
        _decoy(password)
        raise refuse(None, "not_counted", error=str(exc)) from exc
    account = attempt.account
    account_id = None if account is None else int(account["id"])
    if attempt.refused is not None:
        _decoy(password)
        raise refuse(account_id, attempt.refused)
    if not isinstance(password, str) or not verify_password(account["password_hash"], password):
        raise refuse(account_id, "locked_now" if attempt.number >= MAX_FAILED_LOGINS else "wrong_password")
    if not account["active"]:
        refuse(account_id, "inactive")  # the password was right: saying so tells nothing new
        raise PermissionDenied("This account is deactivated; ask an administrator.")
    rehash = _hasher.hash(password) if _hasher.check_needs_rehash(account["password_hash"]) else None
    return _open_session(store, account, moment, ttl_minutes=ttl_minutes, idle_minutes=idle_minutes,
                         new_hash=rehash, forgive=attempt.number, client=address)


def _open_session(store: Store, account: dict[str, Any], moment: dt.datetime, *, ttl_minutes: float,
                  idle_minutes: float, new_hash: str | None = None, forgive: int | None = None,
                  client: str | None = None) -> Session:
    """Record a successful sign-in of ``account`` and open its session.

    ``forgive`` is the success's number in the account's count: it and the
    failures before it are taken back, those counted after it (attempts still
    under way) stay; None takes back the whole count (a sign-in without a
    password). The success's count on ``client`` is taken back too. This runs
    apart from the caller's transaction, taking turns with the counting.
    """
    account_id = int(account["id"])
    token = secrets.token_urlsafe(32)
    expires_at = moment + dt.timedelta(minutes=ttl_minutes)
    later = "failed_logins" if forgive is None else f"(failed_logins - {int(forgive)})"

    def work(s: Store) -> None:
        s.execute(
            f"UPDATE accounts SET last_login_at = ?, failed_logins = greatest({later}, 0),"
            f" locked_until = CASE WHEN {later} >= ? THEN locked_until ELSE NULL END WHERE id = ?"
            if forgive is not None else
            "UPDATE accounts SET last_login_at = ?, failed_logins = 0, locked_until = NULL WHERE id = ?",
            [moment, MAX_FAILED_LOGINS, account_id] if forgive is not None else [moment, account_id],
        )
        if client is not None:
            s.execute(
                "UPDATE sign_in_throttle SET failures = greatest(failures - 1, 0),"
                " locked_until = CASE WHEN failures - 1 >= ? THEN locked_until ELSE NULL END WHERE client = ?",
                [MAX_FAILED_PER_CLIENT, client],
            )
        if new_hash:
            s.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", [new_hash, account_id])
        s.execute(
            "INSERT INTO sessions (token_hash, account_id, created_at, last_seen_at, expires_at, idle_seconds, revoked)"
            " VALUES (?, ?, ?, ?, ?, ?, FALSE)",
            [_token_hash(token), account_id, moment, moment, expires_at, max(1, round(idle_minutes * 60))],
        )

    _apart(store, work, exclusive="sign-in")
    return Session(token=token, account_id=account_id, person_id=int(account["person_id"]),
                   username=account["username"], expires_at=_aware(expires_at))


def link_identity(store: Store, username: str, *, issuer: str, subject: str, email: str = "",
                  actor: str, now: dt.datetime | None = None) -> None:
    """Let the organisation identity (``issuer``, ``subject``) of an OIDC provider sign in as ``username``.

    Raises
    ------
    ValidationError
        An empty issuer or subject, or an identity already linked to another account.
    NotFound
        No such account.
    """
    issuer, subject = (issuer or "").strip(), (subject or "").strip()
    if not issuer or not subject:
        raise ValidationError("An organisation identity needs both its issuer and its subject.")
    account_id = _account_id(store, username)
    with store.transaction():
        found = store.query("SELECT account_id FROM account_identities WHERE issuer = ? AND subject = ?",
                            [issuer, subject])
        if found and int(found[0]["account_id"]) != account_id:
            raise ValidationError("The identity {subject} of {issuer} is already linked to another account.",
                                  subject=subject, issuer=issuer)
        if found:
            return
        store.execute("INSERT INTO account_identities (issuer, subject, account_id, email, linked_at, linked_by)"
                      " VALUES (?, ?, ?, ?, ?, ?)", [issuer, subject, account_id, email or "", _utc(now), actor])


def login_external(store: Store, *, issuer: str, subject: str, email: str = "", now: dt.datetime | None = None,
                   ttl_minutes: float = 480, idle_minutes: float = 60) -> Session:
    """Open a session for an identity the OIDC provider has vouched for (Streamlit's ``st.login``).

    The identity must be linked to an active account (:func:`link_identity`); roles and scope are the account's.
    Refusals are recorded in ``access_denials`` like password sign-ins.

    Raises
    ------
    PermissionDenied
        An unlinked identity, or a deactivated account.
    """
    moment = _utc(now)
    rows = store.query(
        "SELECT a.id, a.person_id, a.username, a.active FROM account_identities i JOIN accounts a"
        " ON a.id = i.account_id WHERE i.issuer = ? AND i.subject = ?", [issuer or "", subject or ""])
    if not rows or not rows[0]["active"]:
        _record_denial(store, account_id=int(rows[0]["id"]) if rows else None, action="login",
                       target=email or subject or "", moment=moment,
                       detail={"reason": "inactive" if rows else "unlinked_identity", "issuer": issuer,
                               "subject": subject, "email": email})
        if rows:
            raise PermissionDenied("This account is deactivated; ask an administrator.")
        raise PermissionDenied("The organisation account {who} is not linked to a gridwatch account; ask an "
                               "administrator to link it.", who=email or subject)
    return _open_session(store, rows[0], moment, ttl_minutes=ttl_minutes, idle_minutes=idle_minutes)


def _expired() -> PermissionDenied:
    """The refusal of a session that is unknown, revoked, expired or idle too long."""
    return PermissionDenied("Your session has expired; sign in again.")


def session_user(store: Store, token: str, *, now: dt.datetime | None = None) -> User:
    """The user of a live session, marking it as used now.

    Parameters
    ----------
    store : Store
        The database.
    token : str
        The token :func:`login` returned.
    now : datetime.datetime, optional
        The time of the request (default: the current time).

    Returns
    -------
    User
        The account's person with their current roles and grants.

    Raises
    ------
    PermissionDenied
        "Your session has expired; sign in again." when the token is unknown,
        the session was revoked, has passed its absolute end or has been idle
        longer than its idle timeout, or the account was deactivated.
    """
    if not isinstance(token, str) or not token:
        raise _expired()
    moment = _utc(now)
    digest = _token_hash(token)
    rows = store.query(
        "SELECT s.account_id, s.last_seen_at, s.expires_at, s.idle_seconds, s.revoked, a.active"
        " FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = ?",
        [digest],
    )
    if not rows:
        raise _expired()
    row = rows[0]
    idle_end = row["last_seen_at"] + dt.timedelta(seconds=int(row["idle_seconds"]))
    if row["revoked"] or not row["active"]:
        raise _expired()
    if moment >= row["expires_at"] or moment >= idle_end:
        with store.transaction():  # once ended, for good (a later request with an earlier clock cannot revive it)
            store.execute("UPDATE sessions SET revoked = TRUE WHERE token_hash = ?", [digest])
        raise _expired()
    if moment - row["last_seen_at"] >= SESSION_TOUCH:  # every rerun reads the session; a write now and then will do
        with store.transaction():
            store.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND last_seen_at < ?",
                          [moment, digest, moment])
    return _user_of_account(store, int(row["account_id"]))


def logout(store: Store, token: str) -> None:
    """End a session; its token is refused from now on (unknown tokens are ignored).

    Parameters
    ----------
    store : Store
        The database.
    token : str
        The token :func:`login` returned.
    """
    if isinstance(token, str) and token:
        with store.transaction():
            store.execute("UPDATE sessions SET revoked = TRUE WHERE token_hash = ?", [_token_hash(token)])


# -- users and grants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A signed-in person with the roles they hold and the actions those roles grant.

    Attributes
    ----------
    account_id, person_id : int
        The account and its person.
    username : str
        The account's user name.
    name : str
        The person's name.
    roles : tuple of (str, str or None, int or None)
        ``(role, unit_code, cell)`` per assignment; exactly one of unit and cell is set.
    role_grants : Mapping[str, frozenset[str]]
        The actions each held role grants (``role_grants`` table).
    """

    account_id: int
    person_id: int
    username: str
    name: str
    roles: tuple[tuple[str, str | None, int | None], ...]
    role_grants: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def actions(self) -> frozenset[str]:
        """Every action any held role grants."""
        return frozenset().union(*self.role_grants.values()) if self.role_grants else frozenset()

    def can(self, action: str) -> bool:
        """Whether any held role grants ``action`` (somewhere; scope is checked by :func:`require`).

        Parameters
        ----------
        action : str
            An action of ``role_grants``, e.g. ``"task.work"``.

        Returns
        -------
        bool
            True when granted by at least one role.
        """
        return any(action in self.role_grants.get(role, ()) for role, _, _ in self.roles)


def _user_of_account(store: Store, account_id: int) -> User:
    """Build the :class:`User` of an account from the current assignments and grants."""
    rows = store.query(
        "SELECT a.id, a.username, a.person_id, p.name FROM accounts a JOIN people p ON p.id = a.person_id"
        " WHERE a.id = ?", [account_id],
    )
    if not rows:
        raise NotFound("No account with id {id}.", id=account_id)
    account = rows[0]
    held = store.query(
        "SELECT role, unit_code, cell FROM assignments WHERE person_id = ? ORDER BY role, unit_code, cell",
        [account["person_id"]],
    )
    granted: dict[str, set[str]] = {}
    for r in store.query(
        "SELECT g.role, g.action FROM role_grants g"
        " WHERE g.role IN (SELECT role FROM assignments WHERE person_id = ?)", [account["person_id"]],
    ):
        granted.setdefault(r["role"], set()).add(r["action"])
    return User(
        account_id=int(account["id"]),
        person_id=int(account["person_id"]),
        username=account["username"],
        name=account["name"],
        roles=tuple((r["role"], r["unit_code"], None if r["cell"] is None else int(r["cell"])) for r in held),
        role_grants={role: frozenset(actions) for role, actions in granted.items()},
    )


def load_user(store: Store, username: str) -> User:
    """The :class:`User` of an account, without a session (for the CLI, jobs and tests).

    Parameters
    ----------
    store : Store
        The database.
    username : str
        The account's user name.

    Returns
    -------
    User
        With the person's current roles and grants.

    Raises
    ------
    NotFound
        No such account.
    """
    return _user_of_account(store, _account_id(store, username))


def grants(store: Store, user: User) -> set[str]:
    """Every action the user's roles grant, read afresh from the store.

    Parameters
    ----------
    store : Store
        The database.
    user : User
        The user.

    Returns
    -------
    set of str
        Actions such as ``"task.work"`` or ``"people.manage"``.
    """
    return {r["action"] for r in store.query(
        "SELECT DISTINCT g.action FROM assignments a JOIN role_grants g ON g.role = a.role WHERE a.person_id = ?",
        [user.person_id],
    )}


# -- scope --------------------------------------------------------------------------------------


def _held_for(user: User, action: str | None) -> list[tuple[str, str | None, int | None]]:
    """The user's assignments whose role grants ``action`` (all of them for None)."""
    if action is None:
        return list(user.roles)
    return [r for r in user.roles if action in user.role_grants.get(r[0], ())]


def scope_cells_sql(user: User, action: str | None = None, *, column: str = "cell") -> tuple[str, list[Any]]:
    """A SQL condition keeping the rows whose cell the user may see (or act on).

    The scope is the union over the user's assignments: a role held on a cell
    covers that cell; a role held on a unit covers every cell whose city,
    county, township or village code is the unit (a province covers its
    cities' cells). Admin and GIS staff, held on a county, cover that county.

    Parameters
    ----------
    user : User
        The user.
    action : str, optional
        Only assignments whose role grants this action count (default: all).
    column : str
        The column, possibly qualified (``"t.cell"``), holding the H3 cell of
        the rows to filter.

    Returns
    -------
    tuple of (str, list)
        The condition, with ``?`` placeholders, and its parameters; ``1 = 0``
        when nothing is in scope.

    Raises
    ------
    ValueError
        ``column`` is not a (qualified) column name.

    Examples
    --------
    >>> u = User(1, 1, "li.si", "李四", (("inspector", "410329-D06-09", None),),
    ...          {"inspector": frozenset({"task.work"})})
    >>> sql, params = scope_cells_sql(u, "task.work", column="t.cell")
    >>> sql.startswith("t.cell IN (SELECT sc.cell FROM cells sc WHERE"), params[:2]
    (True, ['410329-D06-09', '410329-D06-09'])
    >>> scope_cells_sql(u, "people.manage")
    ('1 = 0', [])
    """
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"{column!r} is not a column name")
    held = _held_for(user, action)
    cells = sorted({int(c) for _, _, c in held if c is not None})
    units = sorted({u for _, u, _ in held if u is not None})
    if not cells and not units:
        return "1 = 0", []
    parts: list[str] = []
    params: list[Any] = []
    if cells:
        parts.append(f"sc.cell IN ({', '.join('?' * len(cells))})")
        params += cells
    if units:
        marks = ", ".join("?" * len(units))
        for owner in _OWNER_COLUMNS:
            parts.append(f"sc.{owner} IN ({marks})")
            params += units
        parts.append(f"sc.city_code IN (SELECT su.code FROM units su WHERE su.parent_code IN ({marks}))")
        params += units
    return f"{column} IN (SELECT sc.cell FROM cells sc WHERE {' OR '.join(parts)})", params


def user_cells(store: Store, user: User, action: str | None = None) -> np.ndarray:
    """The cells the user may see (or, given ``action``, act on), sorted.

    Parameters
    ----------
    store : Store
        The database.
    user : User
        The user.
    action : str, optional
        Only assignments whose role grants this action count (default: all).

    Returns
    -------
    numpy.ndarray
        H3 cells as int64.
    """
    condition, params = scope_cells_sql(user, action, column="c.cell")
    frame = store.query_df(f"SELECT c.cell FROM cells c WHERE {condition} ORDER BY c.cell", params)
    return frame["cell"].to_numpy(dtype=np.int64)


def can_act_on_cell(store: Store, user: User, action: str, cell: int) -> bool:
    """Whether the user holds, on this cell or a unit owning it, a role granting ``action``.

    Parameters
    ----------
    store : Store
        The database.
    user : User
        The user.
    action : str
        An action of ``role_grants``.
    cell : int
        An H3 cell (int64).

    Returns
    -------
    bool
        False too for a cell outside the grid.
    """
    if not user.can(action):
        return False
    condition, params = scope_cells_sql(user, action, column="c.cell")
    return bool(store.scalar(f"SELECT count(*) FROM cells c WHERE c.cell = ? AND {condition}",
                             [int(cell), *params]))


def _unit_lineage(store: Store, unit: str) -> list[str]:
    """The unit and its ancestors up to the province, nearest first."""
    lineage: list[str] = []
    code: str | None = unit
    while code is not None and code not in lineage and len(lineage) < 8:
        rows = store.query("SELECT parent_code FROM units WHERE code = ?", [code])
        if not rows:
            if not lineage:
                raise NotFound("No administrative unit with code {code}.", code=unit)
            break
        lineage.append(code)
        code = rows[0]["parent_code"]
    return lineage


def can_act_on_unit(store: Store, user: User, action: str, unit: str) -> bool:
    """Whether the user holds, on this unit or one above it, a role granting ``action``.

    Parameters
    ----------
    store : Store
        The database.
    user : User
        The user.
    action : str
        An action of ``role_grants``.
    unit : str
        An administrative unit code.

    Returns
    -------
    bool
        True when granted there.

    Raises
    ------
    NotFound
        No unit with that code.
    """
    lineage = set(_unit_lineage(store, unit))
    return any(u in lineage for _, u, _ in _held_for(user, action) if u is not None)


def require(store: Store, user: User, action: str, *, cell: int | None = None, unit: str | None = None) -> None:
    """Refuse, and record the refusal, unless the user may do ``action`` on the cell or unit given.

    With neither ``cell`` nor ``unit``, any role granting ``action`` suffices.

    Parameters
    ----------
    store : Store
        The database.
    user : User
        The user.
    action : str
        An action of ``role_grants``, e.g. ``"task.work"``.
    cell : int, optional
        The H3 cell acted on.
    unit : str, optional
        The administrative unit acted on.

    Raises
    ------
    PermissionDenied
        "You may not {action} here ({target})." (or "You may not {action}."
        without a target); a row is added to ``access_denials`` in a
        transaction of its own, so it stays when the caller's work is rolled back.
    NotFound
        ``unit`` is not a unit code.
    """
    refused: str | None = None
    kind = ""
    if cell is not None and not can_act_on_cell(store, user, action, cell):
        refused = h3.int_to_str(int(cell)) if int(cell) > 0 else str(cell)
        kind = "cell"
    elif unit is not None and not can_act_on_unit(store, user, action, unit):
        refused, kind = unit, "unit"
    elif cell is None and unit is None and not user.can(action):
        refused = ""
    if refused is None:
        return
    _record_denial(
        store, account_id=user.account_id, action=action, target=f"{kind}:{refused}" if kind else "",
        moment=_utc(None),
        detail={"reason": "out_of_scope" if user.can(action) else "not_granted", "username": user.username,
                "person_id": user.person_id},
    )
    if refused:
        raise PermissionDenied("You may not {action} here ({target}).", action=action, target=refused)
    raise PermissionDenied("You may not {action}.", action=action)
