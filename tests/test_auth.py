"""Accounts, passwords, sessions, lockout, and the scope each role gives over cells and units."""

from __future__ import annotations

import datetime as dt
import doctest
import json

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
WRONG = "Wrong username or password."


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
    assert str(unknown.value) == str(wrong.value) == WRONG
    assert unknown.value.template == WRONG
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
        assert str(info.value) == WRONG
    assert plain.scalar("SELECT failed_logins FROM accounts WHERE id = ?", [account]) == 4
    with pytest.raises(PermissionDenied, match=r"locked until 2026-06-01T08:19:00Z \(UTC\)"):
        auth.login(plain, "locked.out", "wrong-password", now=minutes(4))
    # the right password does not help while locked
    with pytest.raises(PermissionDenied, match="locked until 2026-06-01T08:19:00Z"):
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
