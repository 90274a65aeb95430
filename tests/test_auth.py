"""Accounts, passwords, sessions, lockout, and the scope each role gives over cells and units."""

from __future__ import annotations

import datetime as dt
import doctest
import json
import re
import threading

import h3
import numpy as np
import pytest
from argon2 import PasswordHasher

import gridwatch.auth
from gridwatch import auth
from gridwatch.errors import NotFound, PermissionDenied, ValidationError
from gridwatch.audit import open_sealed

from conftest import copy_db, drop_db

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
PASSWORD = "麦收防火-2026"
EXPIRED = "Your session has expired; sign in again."
REFUSED_TEMPLATE = ("Wrong username or password, or too many failed sign-ins: after {failures} failures in a row "
                    "sign-in pauses for {minutes} minutes.")
REFUSED = REFUSED_TEMPLATE.format(failures=5, minutes=15)
REFUSED_RE = re.escape(REFUSED)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


# -- fixtures: argon2 is slow on purpose, so accounts are made once per module ---------------------


@pytest.fixture(scope="module")
def plain():
    """An empty migrated store with one person and the account ``wang.wu``."""
    from gridwatch.org import add_person

    with open_sealed(":memory:") as store:
        for key in ("p-wang", "p-zhao", "p-qian"):
            add_person(store, person_key=key, name=key)
        auth.add_account(store, "Wang.Wu", PASSWORD, person_key="p-wang")
        yield store


@pytest.fixture(scope="module")
def demo(demo_db, tmp_path_factory):
    """A private copy of the demo database with accounts for an inspector, a township leader and the admin."""
    path = copy_db(demo_db, tmp_path_factory.mktemp("auth"), "demo.duckdb")
    with open_sealed(path) as store:
        auth.add_account(store, "insp", PASSWORD, person_key="demo-d06-09-inspector")
        auth.add_account(store, "t.leader", PASSWORD, person_key="demo-d06-leader")
        auth.add_account(store, "t.admin", PASSWORD, person_key="demo-admin")
        yield store
    drop_db(path)


def _cells(store, where: str, params: list) -> np.ndarray:
    return store.query_df(f"SELECT cell FROM cells WHERE {where} ORDER BY cell", params)["cell"].to_numpy(np.int64)


def _denials(store, account_id=None) -> list[dict]:
    return store.query(
        "SELECT account_id, action, target, detail FROM access_denials"
        " WHERE account_id IS NOT DISTINCT FROM ? ORDER BY id", [account_id],
    )


# -- passwords -------------------------------------------------------------------------------------


def test_passwords_are_stored_only_as_argon2id_hashes(plain):
    stored = plain.query("SELECT * FROM accounts WHERE username = 'wang.wu'")[0]
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in json.dumps({k: str(v) for k, v in stored.items()}, ensure_ascii=False)
    assert auth.verify_password(stored["password_hash"], PASSWORD)
    assert not auth.verify_password(stored["password_hash"], PASSWORD + "x")
    assert not auth.verify_password("not a hash", PASSWORD)
    assert stored["active"] and stored["failed_logins"] == 0 and stored["locked_until"] is None


@pytest.mark.parametrize("bad, says", [
    ("short1", "at least 8 characters"),
    ("", "at least 8 characters"),
    ("1234567890", "digits only"),
])
def test_the_password_policy(plain, bad, says):
    with pytest.raises(ValidationError, match=says):
        auth.check_password(bad)
    with pytest.raises(ValidationError, match=says):
        auth.hash_password(bad)
    with pytest.raises(ValidationError, match=says):
        auth.add_account(plain, "zhao.liu", bad, person_key="p-zhao")
    with pytest.raises(ValidationError, match=says):
        auth.set_password(plain, "wang.wu", bad)
    assert plain.scalar("SELECT count(*) FROM accounts WHERE username = 'zhao.liu'") == 0
    auth.check_password("abcdefgh")
    auth.check_password("1234567a")


@pytest.mark.parametrize("name", ["ab", "x" * 33, "wang wu", "王五", "a/b", "a@b.c"])
def test_bad_user_names_are_refused(plain, name):
    with pytest.raises(ValidationError, match="3 to 32 characters"):
        auth.add_account(plain, name, PASSWORD, person_key="p-zhao")


def test_user_names_are_unique_and_people_must_exist(plain):
    with pytest.raises(ValidationError, match="wang.wu is already taken"):
        auth.add_account(plain, "WANG.WU", PASSWORD, person_key="p-zhao")  # not case-sensitive
    with pytest.raises(NotFound, match="No person with key nobody"):
        auth.add_account(plain, "nobody", PASSWORD, person_key="nobody")
    with pytest.raises(NotFound, match="No account with the user name ghost"):
        auth.set_password(plain, "ghost", PASSWORD)
    with pytest.raises(NotFound, match="No account"):
        auth.deactivate(plain, "ghost")


def test_an_old_hash_is_upgraded_at_sign_in(plain):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    auth.add_account(plain, "qian.qi", PASSWORD, person_key="p-qian")
    plain.execute("UPDATE accounts SET password_hash = ? WHERE username = 'qian.qi'", [weak])
    auth.login(plain, "qian.qi", PASSWORD, now=T0)
    upgraded = plain.scalar("SELECT password_hash FROM accounts WHERE username = 'qian.qi'")
    assert upgraded != weak and upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


# -- sessions --------------------------------------------------------------------------------------


def test_login_session_and_logout(plain):
    session = auth.login(plain, " Wang.Wu ", PASSWORD, now=T0)
    assert session.username == "wang.wu" and session.expires_at == minutes(480)
    assert len(session.token) >= 43 and session.token not in repr(session)
    stored = plain.query("SELECT * FROM sessions WHERE account_id = ?", [session.account_id])
    assert [r["token_hash"] for r in stored if r["token_hash"] == session.token] == []
    assert any(len(r["token_hash"]) == 64 for r in stored)
    assert plain.scalar("SELECT last_login_at FROM accounts WHERE id = ?", [session.account_id]) == minutes(0).replace(
        tzinfo=None)

    user = auth.session_user(plain, session.token, now=minutes(5))
    assert (user.username, user.person_id, user.roles) == ("wang.wu", session.person_id, ())
    assert not user.can("cell.view") and auth.user_cells(plain, user).size == 0

    auth.logout(plain, session.token)
    with pytest.raises(PermissionDenied, match=EXPIRED):
        auth.session_user(plain, session.token, now=minutes(6))
    for token in ("", "made-up", session.token + "x"):
        with pytest.raises(PermissionDenied, match=EXPIRED):
            auth.session_user(plain, token, now=minutes(6))
    auth.logout(plain, "made-up")  # ignored


def test_a_session_ends_when_idle_too_long(plain):
    session = auth.login(plain, "wang.wu", PASSWORD, now=T0, ttl_minutes=480, idle_minutes=60)
    auth.session_user(plain, session.token, now=minutes(59))
    auth.session_user(plain, session.token, now=minutes(118))  # each use restarts the idle clock
    auth.session_user(plain, session.token, now=minutes(100))  # a late, out-of-order request does not rewind it
    with pytest.raises(PermissionDenied, match=EXPIRED):
        auth.session_user(plain, session.token, now=minutes(178))
    with pytest.raises(PermissionDenied, match=EXPIRED):  # and stays ended
        auth.session_user(plain, session.token, now=minutes(130))


def test_a_session_ends_at_its_absolute_lifetime_even_in_use(plain):
    session = auth.login(plain, "wang.wu", PASSWORD, now=T0.astimezone(dt.timezone(dt.timedelta(hours=8))),
                         ttl_minutes=120, idle_minutes=60)
    assert session.expires_at == minutes(120)
    for t in (50, 100, 119):
        auth.session_user(plain, session.token, now=minutes(t))
    with pytest.raises(PermissionDenied, match=EXPIRED):
        auth.session_user(plain, session.token, now=minutes(120))


def test_the_same_message_for_an_unknown_user_and_a_wrong_password(plain):
    with pytest.raises(PermissionDenied) as unknown:
        auth.login(plain, "nobody.here", PASSWORD, now=T0)
    with pytest.raises(PermissionDenied) as wrong:
        auth.login(plain, "zhao.liu2", "x", now=T0)  # no such account either, bad name syntax aside
    assert str(unknown.value) == str(wrong.value) == REFUSED
    assert unknown.value.template == REFUSED_TEMPLATE
    denied = _denials(plain, None)
    assert [(d["action"], d["target"], json.loads(d["detail"])["reason"]) for d in denied[-2:]] == [
        ("login", "nobody.here", "unknown_user"), ("login", "zhao.liu2", "unknown_user")]


def test_five_failures_lock_the_account_for_fifteen_minutes(plain):
    from gridwatch.org import add_person

    add_person(plain, person_key="p-lock", name="p-lock")
    account = auth.add_account(plain, "locked.out", PASSWORD, person_key="p-lock")
    for i in range(4):
        with pytest.raises(PermissionDenied) as info:
            auth.login(plain, "locked.out", "wrong-password", now=minutes(i))
        assert str(info.value) == REFUSED
    assert plain.scalar("SELECT failed_logins FROM accounts WHERE id = ?", [account]) == 4
    with pytest.raises(PermissionDenied, match=REFUSED_RE):  # the same words: nothing tells the lock apart
        auth.login(plain, "locked.out", "wrong-password", now=minutes(4))
    assert plain.scalar("SELECT locked_until FROM accounts WHERE id = ?", [account]) == minutes(19).replace(
        tzinfo=None)
    # the right password does not help while locked
    with pytest.raises(PermissionDenied, match=REFUSED_RE):
        auth.login(plain, "locked.out", PASSWORD, now=minutes(18))
    session = auth.login(plain, "locked.out", PASSWORD, now=minutes(19))
    assert session.account_id == account
    row = plain.query("SELECT failed_logins, locked_until FROM accounts WHERE id = ?", [account])[0]
    assert row == {"failed_logins": 0, "locked_until": None}
    reasons = [json.loads(d["detail"])["reason"] for d in _denials(plain, account)]
    assert reasons == ["wrong_password"] * 4 + ["locked_now", "locked"]
    assert {d["action"] for d in _denials(plain, account)} == {"login"}


def test_a_deactivated_account_is_refused_and_its_sessions_end(plain):
    from gridwatch.org import add_person

    add_person(plain, person_key="p-gone", name="p-gone")
    auth.add_account(plain, "gone", PASSWORD, person_key="p-gone")
    session = auth.login(plain, "gone", PASSWORD, now=T0)
    auth.deactivate(plain, "gone")
    with pytest.raises(PermissionDenied, match=EXPIRED):
        auth.session_user(plain, session.token, now=minutes(1))
    with pytest.raises(PermissionDenied, match="deactivated"):
        auth.login(plain, "gone", PASSWORD, now=minutes(2))
    assert plain.scalar("SELECT count(*) FROM sessions WHERE token_hash IS NOT NULL AND account_id = ? AND NOT revoked",
                        [session.account_id]) == 0


def test_session_lifetimes_must_be_positive(plain):
    with pytest.raises(ValidationError, match="positive"):
        auth.login(plain, "wang.wu", PASSWORD, ttl_minutes=0)


# -- scope on the demo county ----------------------------------------------------------------------


def test_an_inspector_sees_exactly_the_cells_of_their_village(demo):
    session = auth.login(demo, "insp", PASSWORD, now=T0)
    user = auth.session_user(demo, session.token, now=minutes(1))
    assert ("inspector", "410329-D06-09", None) in user.roles
    village = _cells(demo, "village_code = ?", ["410329-D06-09"])
    assert village.size > 0
    cells = auth.user_cells(demo, user)
    assert cells.dtype == np.int64
    np.testing.assert_array_equal(cells, village)
    np.testing.assert_array_equal(auth.user_cells(demo, user, "task.work"), village)
    assert auth.user_cells(demo, user, "task.verify").size == 0
    assert auth.grants(demo, user) == {"task.work", "cell.view"} == set(user.actions)
    # tasks are filtered by the same condition
    sql, params = auth.scope_cells_sql(user, column="t.cell")
    seen = demo.scalar(f"SELECT count(*) FROM tasks t WHERE {sql}", params)
    assert seen == demo.scalar("SELECT count(*) FROM tasks t JOIN cells c ON c.cell = t.cell"
                               " WHERE c.village_code = '410329-D06-09'")


def test_an_inspector_may_work_on_their_cells_and_is_refused_elsewhere(demo):
    user = auth.load_user(demo, "insp")
    own = int(_cells(demo, "village_code = ?", ["410329-D06-09"])[0])
    assert auth.can_act_on_cell(demo, user, "task.work", own)
    auth.require(demo, user, "task.work", cell=own)
    auth.require(demo, user, "task.work", unit="410329-D06-09")

    elsewhere = int(_cells(demo, "township_code = ?", ["410329-D01"])[0])
    before = len(_denials(demo, user.account_id))
    assert not auth.can_act_on_cell(demo, user, "task.work", elsewhere)
    with pytest.raises(PermissionDenied) as info:
        auth.require(demo, user, "task.work", cell=elsewhere)
    assert str(info.value) == f"You may not task.work here ({h3.int_to_str(elsewhere)})."
    assert info.value.template == "You may not {action} here ({target})."
    denied = _denials(demo, user.account_id)
    assert len(denied) == before + 1
    assert denied[-1]["action"] == "task.work" and denied[-1]["target"] == f"cell:{h3.int_to_str(elsewhere)}"
    assert json.loads(denied[-1]["detail"]) == {"reason": "out_of_scope", "username": "insp",
                                                "person_id": user.person_id}
    with pytest.raises(PermissionDenied, match=r"here \(410329-D06\)"):
        auth.require(demo, user, "task.work", unit="410329-D06")  # the village, not the township
    with pytest.raises(PermissionDenied, match="task.verify"):
        auth.require(demo, user, "task.verify", cell=own)  # held there, but the role does not grant it


def test_a_denial_is_recorded_even_when_the_callers_transaction_rolls_back(demo):
    user = auth.load_user(demo, "insp")
    elsewhere = int(_cells(demo, "township_code = ?", ["410329-D02"])[0])
    before = len(_denials(demo, user.account_id))
    with pytest.raises(PermissionDenied):
        with demo.transaction():
            demo.execute("INSERT INTO meta (key, value) VALUES ('auth-test', 'rolled back')")
            auth.require(demo, user, "task.work", cell=elsewhere)
    assert demo.get_meta("auth-test") is None
    assert len(_denials(demo, user.account_id)) == before + 1


def test_an_inspector_may_not_manage_people(demo):
    user = auth.load_user(demo, "insp")
    assert not user.can("people.manage")
    with pytest.raises(PermissionDenied) as info:
        auth.require(demo, user, "people.manage")
    assert str(info.value) == "You may not people.manage."
    last = _denials(demo, user.account_id)[-1]
    assert (last["action"], last["target"], json.loads(last["detail"])["reason"]) == ("people.manage", "",
                                                                                      "not_granted")


def test_a_township_leader_sees_the_township_and_may_verify_there(demo):
    user = auth.load_user(demo, "t.leader")
    assert user.roles == (("grid_leader", "410329-D06", None),)
    township = _cells(demo, "township_code = ?", ["410329-D06"])
    np.testing.assert_array_equal(auth.user_cells(demo, user), township)
    assert township.size > _cells(demo, "village_code = ?", ["410329-D06-09"]).size
    auth.require(demo, user, "task.verify", cell=int(township[-1]))
    auth.require(demo, user, "task.assign", unit="410329-D06-09")  # a village of the township
    with pytest.raises(PermissionDenied):
        auth.require(demo, user, "task.verify", cell=int(_cells(demo, "township_code = ?", ["410329-D01"])[0]))
    with pytest.raises(PermissionDenied):
        auth.require(demo, user, "task.assign", unit="410329")
    with pytest.raises(NotFound):
        auth.require(demo, user, "task.assign", unit="410329-X99")
    sql, params = auth.scope_cells_sql(user, "task.verify", column="t.cell")
    seen = demo.scalar(f"SELECT count(*) FROM tasks t WHERE {sql}", params)
    assert seen > 0 and seen == demo.scalar(
        "SELECT count(*) FROM tasks t JOIN cells c ON c.cell = t.cell WHERE c.township_code = '410329-D06'")


def test_the_admin_manages_people_and_sees_the_county(demo):
    user = auth.load_user(demo, "t.admin")
    assert user.can("people.manage") and not user.can("task.work")
    auth.require(demo, user, "people.manage")
    np.testing.assert_array_equal(auth.user_cells(demo, user), _cells(demo, "county_code = ?", ["410329"]))


def test_a_role_on_the_province_covers_its_cities_cells(demo):
    user = auth.User(0, 0, "x", "x", (("supervisor", "410000", None),),
                     {"supervisor": frozenset({"task.verify", "cell.view"})})
    np.testing.assert_array_equal(auth.user_cells(demo, user), _cells(demo, "TRUE", []))


def test_the_scope_condition_refuses_odd_column_names():
    user = auth.User(0, 0, "x", "x", (), {})
    assert auth.scope_cells_sql(user) == ("1 = 0", [])
    with pytest.raises(ValueError, match="not a column name"):
        auth.scope_cells_sql(user, column="cell); DROP TABLE people; --")


def test_the_doctests_pass():
    result = doctest.testmod(gridwatch.auth, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


# -- organisation sign-in (OIDC through st.login) ------------------------------------------------------

ISSUER = "https://sso.example.gov.cn/realms/henan"


def test_an_organisation_identity_signs_in_only_once_linked(plain):
    with pytest.raises(PermissionDenied, match="not linked"):
        auth.login_external(plain, issuer=ISSUER, subject="u-123", email="wangwu@example.gov.cn", now=minutes(0))
    denial = json.loads(plain.query("SELECT detail FROM access_denials ORDER BY id DESC LIMIT 1")[0]["detail"])
    assert denial == {"reason": "unlinked_identity", "issuer": ISSUER, "subject": "u-123",
                      "email": "wangwu@example.gov.cn"}
    auth.link_identity(plain, "wang.wu", issuer=ISSUER, subject="u-123", email="wangwu@example.gov.cn",
                       actor="t.admin", now=minutes(0))
    auth.link_identity(plain, "wang.wu", issuer=ISSUER, subject="u-123", actor="t.admin")  # again: no change
    session = auth.login_external(plain, issuer=ISSUER, subject="u-123", now=minutes(1))
    assert session.username == "wang.wu"
    assert auth.session_user(plain, session.token, now=minutes(2)).username == "wang.wu"
    # the same subject from another provider is another identity
    with pytest.raises(PermissionDenied):
        auth.login_external(plain, issuer="https://other.example/", subject="u-123", now=minutes(3))


def test_an_identity_links_to_one_account_and_a_deactivated_account_is_refused(plain):
    auth.add_account(plain, "zhao.liu", PASSWORD, person_key="p-zhao")
    auth.link_identity(plain, "zhao.liu", issuer=ISSUER, subject="u-9", actor="t.admin")
    with pytest.raises(ValidationError, match="already linked"):
        auth.link_identity(plain, "wang.wu", issuer=ISSUER, subject="u-9", actor="t.admin")
    with pytest.raises(ValidationError, match="issuer and its subject"):
        auth.link_identity(plain, "wang.wu", issuer=" ", subject="u-10", actor="t.admin")
    with pytest.raises(NotFound):
        auth.link_identity(plain, "nobody.here", issuer=ISSUER, subject="u-11", actor="t.admin")
    auth.deactivate(plain, "zhao.liu")
    with pytest.raises(PermissionDenied, match="deactivated"):
        auth.login_external(plain, issuer=ISSUER, subject="u-9")


# -- sign-in under attack: concurrent guesses, the lock, the client address --------------------------

REFUSED_AT_ONCE = 40


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, monkeypatch):
    """A fresh migrated store, on each backend, with the account ``target`` (password :data:`PASSWORD`)."""
    from gridwatch.org import add_person

    url = ":memory:"
    if request.param == "postgres":
        monkeypatch.setenv("GRIDWATCH_PG_POOL_MAX", str(REFUSED_AT_ONCE + 10))  # a connection per attacking thread
        url = request.getfixturevalue("pg_url")
    with open_sealed(url) as store:
        add_person(store, person_key="p-target", name="p-target")
        auth.add_account(store, "target", PASSWORD, person_key="p-target")
        yield store


@pytest.fixture
def checks(monkeypatch):
    """Counts the passwords checked against a real account's hash (not the decoy of unknown names)."""
    seen: list[str] = []
    real = auth.verify_password

    def counted(password_hash: str, password: str) -> bool:
        if password_hash != auth._decoy_hash():
            seen.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counted)
    return seen


def _at_once(store, attempts: list[tuple[str, str]], *, client: str | None = None, now=T0) -> list[object]:
    """Run the sign-ins all at once, one thread each; a Session or the exception each raised, in order."""
    start = threading.Barrier(len(attempts))
    results: list[object] = [None] * len(attempts)

    def run(i: int, username: str, password: str) -> None:
        store.scalar("SELECT 1")  # each thread has its connection before the hashing starts
        start.wait()
        try:
            results[i] = auth.login(store, username, password, now=now,
                                    **({"client": client} if client is not None else {}))
        except Exception as exc:  # noqa: BLE001 - every outcome is checked below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, *a)) for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def _refusals(results: list[object]) -> set[str]:
    """The messages of the refusals; anything else raised fails the test."""
    for r in results:
        assert isinstance(r, (auth.Session, PermissionDenied)), repr(r)
    return {str(r) for r in results if isinstance(r, PermissionDenied)}


def test_forty_wrong_guesses_at_once_are_all_counted_and_the_right_password_is_refused_after(target, checks):
    account = int(target.scalar("SELECT id FROM accounts WHERE username = 'target'"))
    results = _at_once(target, [("target", f"guess-{i:02d}") for i in range(REFUSED_AT_ONCE)])
    assert _refusals(results) == {REFUSED} and len(results) == REFUSED_AT_ONCE
    # the lock is checked and the attempt counted in one step: only the first MAX_FAILED_LOGINS are checked
    assert len(checks) == auth.MAX_FAILED_LOGINS
    row = target.query("SELECT failed_logins, locked_until FROM accounts WHERE id = ?", [account])[0]
    assert row == {"failed_logins": auth.MAX_FAILED_LOGINS, "locked_until": (T0 + auth.LOCKOUT).replace(tzinfo=None)}
    reasons = [json.loads(d["detail"])["reason"] for d in _denials(target, account)]
    assert len(reasons) == REFUSED_AT_ONCE  # every refusal recorded
    assert sorted(set(reasons)) == ["locked", "locked_now", "wrong_password"]
    assert reasons.count("wrong_password") + reasons.count("locked_now") == auth.MAX_FAILED_LOGINS
    # the right password, at once and one by one, is refused until the lock ends, and never checked
    after = _at_once(target, [("target", PASSWORD)] * 3, now=minutes(1))
    assert _refusals(after) == {REFUSED} and len(checks) == auth.MAX_FAILED_LOGINS
    with pytest.raises(PermissionDenied, match=REFUSED_RE):
        auth.login(target, "target", PASSWORD, now=minutes(14.9))
    assert len(_denials(target, account)) == REFUSED_AT_ONCE + 4
    assert auth.login(target, "target", PASSWORD, now=minutes(15)).account_id == account


def test_the_right_password_cannot_slip_past_the_limit_in_a_race(target, checks):
    for i in range(auth.MAX_FAILED_LOGINS - 1):
        with pytest.raises(PermissionDenied):
            auth.login(target, "target", f"guess-{i}", now=T0)
    results = _at_once(target, [("target", "guess-x")] * 20 + [("target", PASSWORD)] * 3)
    _refusals(results)
    # one attempt was left before the lock: exactly one password is checked, so at most one sign-in succeeds
    assert len(checks) == auth.MAX_FAILED_LOGINS
    sessions = [r for r in results if isinstance(r, auth.Session)]
    assert len(sessions) == (1 if checks[-1] == PASSWORD else 0)


def test_a_write_conflict_does_not_lose_the_count(target, monkeypatch):
    """A sign-in failing while another session holds a change of the account: counted once that change ends."""
    account = int(target.scalar("SELECT id FROM accounts WHERE username = 'target'"))
    for i in range(2):
        with pytest.raises(PermissionDenied):
            auth.login(target, "target", f"guess-{i}", now=T0)
    holding, release = threading.Event(), threading.Event()
    conflicts: list[str] = []
    real = type(target).is_write_conflict

    def seen(self, exc) -> bool:
        if real(self, exc):
            conflicts.append(str(exc))
            release.set()  # the other session ends its change once the sign-in has run into it
            return True
        return False

    monkeypatch.setattr(type(target), "is_write_conflict", seen)

    def hold() -> None:
        with target.transaction():
            target.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?", [account])
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(timeout=30)
    timer = threading.Timer(3, release.set)  # PostgreSQL waits for the row instead of failing
    timer.start()
    try:
        with pytest.raises(PermissionDenied, match=REFUSED_RE):
            auth.login(target, "target", "guess-2", now=T0)
    finally:
        release.set()
        timer.cancel()
        holder.join(timeout=30)
    assert target.scalar("SELECT failed_logins FROM accounts WHERE id = ?", [account]) == 1  # after the reset
    assert [json.loads(d["detail"])["reason"] for d in _denials(target, account)] == ["wrong_password"] * 3
    if target.backend == "duckdb":  # DuckDB refuses the second writer at once: the count was retried
        assert conflicts and "Conflict" in conflicts[0]


def test_an_unknown_user_a_wrong_password_and_a_lock_read_the_same(target):
    outcomes = []
    for username, password in [("nobody.here", PASSWORD), ("x", PASSWORD), ("target", "guess-0")]:
        with pytest.raises(PermissionDenied) as info:
            auth.login(target, username, password, now=T0)
        outcomes.append((str(info.value), info.value.template))
    for i in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(PermissionDenied):
            auth.login(target, "target", f"guess-{i + 1}", now=T0)
    for username in ("target", "nobody.here"):  # a locked account and an unknown name, many times over
        with pytest.raises(PermissionDenied) as info:
            auth.login(target, username, PASSWORD, now=minutes(1))
        outcomes.append((str(info.value), info.value.template))
    assert set(outcomes) == {(REFUSED, REFUSED_TEMPLATE)}


def test_one_address_is_throttled_across_accounts(target, checks):
    """Password spraying: few guesses per account, many accounts, one address."""
    spray = [(f"user.{i:02d}", "Summer-2026") for i in range(auth.MAX_FAILED_PER_CLIENT)]
    for username, password in spray:
        with pytest.raises(PermissionDenied, match=REFUSED_RE):
            auth.login(target, username, password, now=T0, client="203.0.113.7")
    # the address is paused: even a right password is refused there, unchecked, and the refusal recorded
    with pytest.raises(PermissionDenied, match=REFUSED_RE):
        auth.login(target, "target", PASSWORD, now=minutes(1), client="203.0.113.7")
    assert checks == []
    last = json.loads(target.query("SELECT detail FROM access_denials ORDER BY id DESC LIMIT 1")[0]["detail"])
    assert last["reason"] == "client_locked" and last["client"] == "203.0.113.7"
    # the account itself was never charged: elsewhere it signs in
    assert auth.login(target, "target", PASSWORD, now=minutes(1), client="198.51.100.2").username == "target"
    assert auth.login(target, "target", PASSWORD, now=minutes(1)).username == "target"
    # concurrent sprays from a fresh address are all counted: the limit holds exactly
    results = _at_once(target, [(f"user.{i:02d}", "Winter-2026") for i in range(REFUSED_AT_ONCE)] +
                       [("target", PASSWORD)], client="192.0.2.44", now=minutes(2))
    _refusals(results)
    assert target.scalar("SELECT failures FROM sign_in_throttle WHERE client = '192.0.2.44'") == \
        auth.MAX_FAILED_PER_CLIENT - sum(isinstance(r, auth.Session) for r in results)
    # the pause ends
    assert auth.login(target, "target", PASSWORD, now=minutes(1) + auth.LOCKOUT, client="203.0.113.7")
