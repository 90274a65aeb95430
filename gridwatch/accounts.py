"""Passwords and accounts: argon2id hashes, the password rule, creating, changing and deactivating accounts.

Sign-in, sessions, grants and scope are in :mod:`gridwatch.auth`, which re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gridwatch.errors import NotFound, ValidationError
from gridwatch.storage import Store

#: shortest password accepted
MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"[a-z0-9._-]{3,32}")
_hasher = PasswordHasher()


# -- time ---------------------------------------------------------------------------------------


def _utc(now: dt.datetime | None) -> dt.datetime:
    """``now`` (or the current time) as a naive UTC datetime, the form the store keeps."""
    if now is None:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        return now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return now


def _aware(moment: dt.datetime) -> dt.datetime:
    """A naive UTC datetime from the store as an aware one."""
    return moment.replace(tzinfo=dt.timezone.utc)


# -- passwords ----------------------------------------------------------------------------------


def check_password(password: str) -> None:
    """Refuse a password the policy does not accept.

    Parameters
    ----------
    password : str
        The proposed password.

    Raises
    ------
    ValidationError
        Shorter than :data:`MIN_PASSWORD_LENGTH` characters, or digits only.

    Examples
    --------
    >>> check_password("12345678")
    Traceback (most recent call last):
    ...
    gridwatch.errors.ValidationError: A password must not be digits only; add letters or other characters.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("A password needs at least {min} characters.", min=MIN_PASSWORD_LENGTH)
    if password.isdigit():
        raise ValidationError("A password must not be digits only; add letters or other characters.")


def hash_password(password: str) -> str:
    """Check ``password`` against the policy and return its argon2id hash.

    Parameters
    ----------
    password : str
        The password in clear.

    Returns
    -------
    str
        An encoded hash starting with ``$argon2id$`` (argon2-cffi's default parameters).

    Raises
    ------
    ValidationError
        The password breaks the policy (see :func:`check_password`).
    """
    check_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False for a malformed hash too.

    Parameters
    ----------
    password_hash : str
        An encoded argon2 hash as :func:`hash_password` returns.
    password : str
        The password in clear.

    Returns
    -------
    bool
        True when it matches.
    """
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    """A hash of a random password, verified for unknown user names so they take as long as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


# -- accounts -----------------------------------------------------------------------------------


def _normal_username(username: str) -> str:
    """A user name as stored: trimmed and lower-case."""
    return username.strip().lower() if isinstance(username, str) else ""


def add_account(store: Store, username: str, password: str, *, person_key: str) -> int:
    """Create a sign-in account for a person; returns the account id.

    Parameters
    ----------
    store : Store
        The database.
    username : str
        3 to 32 characters: ASCII letters, digits, ``.``, ``_`` or ``-``; stored
        lower-case (user names are not case-sensitive).
    password : str
        The password in clear; only its argon2id hash is stored.
    person_key : str
        The ``people.person_key`` of the account's owner.

    Returns
    -------
    int
        The new ``accounts.id``.

    Raises
    ------
    ValidationError
        Bad user name, a user name already taken, or a password the policy refuses.
    NotFound
        No person with ``person_key``.
    """
    name = _normal_username(username)
    if not _USERNAME.fullmatch(name):
        raise ValidationError(
            "A user name has 3 to 32 characters: letters, digits, '.', '_' or '-' (got {username!r}).",
            username=username,
        )
    key = person_key.strip()
    check_password(password)
    _new_account_owner(store, name, key)  # clear errors before the slow hash
    password_hash = hash_password(password)
    with store.transaction():
        person_id = _new_account_owner(store, name, key)
        store.execute(
            "INSERT INTO accounts (username, person_id, password_hash, active, created_at, failed_logins)"
            " VALUES (?, ?, ?, TRUE, ?, 0)",
            [name, person_id, password_hash, _utc(None)],
        )
        return int(store.scalar("SELECT id FROM accounts WHERE username = ?", [name]))


def _new_account_owner(store: Store, username: str, person_key: str) -> int:
    """The id of the person a new account ``username`` is for, once the name is known to be free."""
    person_id = store.scalar("SELECT id FROM people WHERE person_key = ?", [person_key])
    if person_id is None:
        raise NotFound("No person with key {key}; add the person before their account.", key=person_key)
    if store.scalar("SELECT 1 FROM accounts WHERE username = ?", [username]) is not None:
        raise ValidationError("The user name {username} is already taken; choose another.", username=username)
    return int(person_id)


def _account_id(store: Store, username: str) -> int:
    """The id of the account named ``username``, or NotFound."""
    name = _normal_username(username)
    found = store.scalar("SELECT id FROM accounts WHERE username = ?", [name])
    if found is None:
        raise NotFound("No account with the user name {username}.", username=name)
    return int(found)


def set_password(store: Store, username: str, password: str) -> None:
    """Give an account a new password; unlocks it and ends all its sessions.

    Parameters
    ----------
    store : Store
        The database.
    username : str
        The account's user name.
    password : str
        The new password in clear (checked against the policy).

    Raises
    ------
    ValidationError
        The password breaks the policy.
    NotFound
        No such account.
    """
    _account_id(store, username)  # a clear error before the slow hash
    password_hash = hash_password(password)
    with store.transaction():
        account_id = _account_id(store, username)
        store.execute(
            "UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE id = ?",
            [password_hash, account_id],
        )
        store.execute("UPDATE sessions SET revoked = TRUE WHERE account_id = ?", [account_id])


def deactivate(store: Store, username: str) -> None:
    """Refuse all further sign-ins of an account and end its sessions (the row stays, for the record).

    Parameters
    ----------
    store : Store
        The database.
    username : str
        The account's user name.

    Raises
    ------
    NotFound
        No such account.
    """
    with store.transaction():
        account_id = _account_id(store, username)
        store.execute("UPDATE accounts SET active = FALSE WHERE id = ?", [account_id])
        store.execute("UPDATE sessions SET revoked = TRUE WHERE account_id = ?", [account_id])
