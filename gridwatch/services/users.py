"""Accounts and sign-in: passwords, organisation identities, sessions and the demo accounts.

Signing in, out and reading a session's user are the only services without an actor: they are how one is made.
"""

from __future__ import annotations

from typing import Any

from gridwatch import auth, cookies, org
from gridwatch.services._common import MANAGE_PEOPLE, Actor, actor_name, audit, require, require_region
from gridwatch.storage import Store

#: the demo accounts made by ``init --demo`` (user name → person key); one password for all, in the README
DEMO_ACCOUNTS = {
    "inspector": "demo-d01-01-inspector",
    "leader": "demo-d01-leader",
    "county": "demo-county-head",
    "gis": "demo-gis",
    "admin": "demo-admin",
}


DEMO_PASSWORD = "demo-2026"




def _add_demo_accounts(store: Store) -> int:
    made = 0
    for username, person in DEMO_ACCOUNTS.items():
        if store.scalar("SELECT 1 FROM people WHERE person_key = ?", [person]) and not store.scalar(
                "SELECT 1 FROM accounts WHERE username = ?", [username]):
            auth.add_account(store, username, DEMO_PASSWORD, person_key=person)
            made += 1
    return made


def add_user(store: Store, actor: Actor, username: str, password: str, *, role: str, unit: str,
             name: str | None = None) -> dict[str, Any]:
    """Create a person (if new), give them ``role`` on ``unit`` and an account; all or nothing.

    An administrator may add people only on units in their scope; the command line anywhere.
    """
    require(store, actor, MANAGE_PEOPLE, unit=unit)
    with store.transaction():
        pid = org.add_person(store, person_key=username, name=name or username)
        org.assign_role(store, pid, role, unit_code=unit)
        account = auth.add_account(store, username, password, person_key=username)
        audit(store, actor=actor_name(actor), action="users.add", subject=username, detail={"role": role, "unit": unit})
    return {"username": username, "account_id": account, "person_id": pid, "role": role, "unit": unit}


def sign_in(store: Store, username: str, password: str, *, client: str | None = None) -> auth.Session:
    """Check the password and open a session (the token is returned once).

    ``client`` is the address the request came from: attempts are throttled per account and per address.
    """
    return auth.login(store, username, password, client=client)


def sign_in_external(store: Store, *, issuer: str, subject: str, email: str = "") -> auth.Session:
    """Open a session for an organisation identity vouched for by the OIDC provider (linked to an account)."""
    return auth.login_external(store, issuer=issuer, subject=subject, email=email)


def link_identity(store: Store, actor: Actor, username: str, *, issuer: str, subject: str,
                  email: str = "") -> dict[str, str]:
    """Let an organisation identity sign in as ``username`` (the command line, or an administrator of the region)."""
    require_region(store, actor, MANAGE_PEOPLE)
    auth.link_identity(store, username, issuer=issuer, subject=subject, email=email, actor=actor_name(actor))
    audit(store, actor=actor_name(actor), action="identity.link", subject=username,
          detail={"issuer": issuer, "subject": subject})
    return {"username": username, "issuer": issuer, "subject": subject}


def sign_out(store: Store, token: str) -> None:
    """End a session."""
    auth.logout(store, token)


def current_user(store: Store, token: str) -> auth.User:
    """The signed-in user of a session token (raises PermissionDenied when it expired)."""
    return auth.session_user(store, token)


def cookie_grant(store: Store, grants: cookies.CookieGrants, token: str) -> str:
    """A single-use grant, valid for seconds, with which this session's browser fetches its HttpOnly cookie."""
    return grants.issue(store, token)


def take_cookie_grant(store: Store, grants: cookies.CookieGrants, grant: str) -> tuple[str, int]:
    """Take a cookie grant (once): its session's token and the seconds the session may still last."""
    return grants.redeem(store, grant)
