"""NUL and the other C0 control characters are refused before storage, the same on DuckDB and PostgreSQL.

PostgreSQL answers U+0000 in text with a raw error; the store refuses it (and the other controls but tab, line feed
and carriage return) first, naming the column, and nothing is written. The calls are real service calls on both
backends (PostgreSQL when a server is available, see ``tests/pgserver.py``).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch import auth, org, services
from gridwatch.api.http import Refusal, check_fields
from gridwatch.audit import open_sealed
from gridwatch.errors import ValidationError
from gridwatch.i18n import translate_error
from gridwatch.storage.text import CONTROL, field_of

PASSWORD = "a-long-password-1"
REFUSED = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))]


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request):
    """A migrated store on each backend (PostgreSQL skipped, with the reason, when no server is available)."""
    if request.param == "duckdb":
        with open_sealed(":memory:") as store:
            yield store
        return
    url = request.getfixturevalue("pg_url")
    with open_sealed(url) as store:
        yield store


def _people(store) -> int:
    return int(store.scalar("SELECT count(*) FROM people"))


def _county(store) -> str:
    with store.transaction():
        store.execute("INSERT INTO units (code, name, level) VALUES ('410329', '伊川县', 'county')")
    return "410329"


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x08"])
def test_a_person_named_with_a_control_character_is_refused_naming_the_field(backend, char):
    unit = _county(backend)
    with pytest.raises(ValidationError) as refused:
        services.add_user(backend, services.CLI, "zhang.san", PASSWORD, role="inspector", unit=unit,
                          name=f"张{char}三")
    assert refused.value.params["field"] == "name"
    assert refused.value.params["code"] == f"U+{ord(char):04X}"
    message = translate_error(refused.value, "zh_CN")
    assert "name" in message and f"U+{ord(char):04X}" in message and "控制字符" in message
    assert _people(backend) == 0  # nothing half-written: no person, no role, no account
    assert not backend.query("SELECT 1 FROM accounts") and not backend.query("SELECT 1 FROM assignments")
    done = services.add_user(backend, services.CLI, "zhang.san", PASSWORD, role="inspector", unit=unit,
                             name="张\t三")
    assert done["person_id"]  # tabs are fine, and the store was not left broken
    admin = services.add_user(backend, services.CLI, "admin.li", PASSWORD, role="admin", unit=unit, name="李")
    user = auth.load_user(backend, admin["username"])
    with pytest.raises(ValidationError) as renamed:  # an administrator renaming a person, through the service
        services.admin_add_person(backend, user, person_key="zhang.san", name=f"张{char}四")
    assert renamed.value.params["field"] == "name"
    assert backend.scalar("SELECT name FROM people WHERE person_key = 'zhang.san'") == "张\t三"


def test_a_sign_in_with_nul_is_a_clear_refusal_not_a_database_error(backend):
    with pytest.raises(ValidationError) as refused:
        services.sign_in(backend, "wang\x00wu", "a-long-password-1")
    assert "U+0000" in str(refused.value)


def test_a_bulk_insert_with_nul_is_refused_naming_the_column(backend):
    rows = pa.table({"person_key": ["p-a", "p-b"], "name": ["甲", "乙\x00"], "phone": ["", ""]})
    with pytest.raises(ValidationError) as refused, backend.transaction():
        backend.insert_arrow("people", rows)
    assert refused.value.params["field"] == "name"
    assert _people(backend) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=20).filter(lambda t: t.strip()))
def test_any_text_is_stored_as_typed_or_refused_when_it_holds_a_control(backend, text):
    key = f"p-{abs(hash(text))}"
    if CONTROL.search(text.strip()):
        with pytest.raises(ValidationError):
            org.add_person(backend, person_key=key, name=text.strip())
        assert backend.scalar("SELECT count(*) FROM people WHERE person_key = ?", [key]) == 0
    else:
        org.add_person(backend, person_key=key, name=text.strip())
        assert backend.scalar("SELECT name FROM people WHERE person_key = ?", [key]) == text.strip()


@pytest.mark.parametrize("char", REFUSED)
def test_an_api_field_with_a_control_character_is_refused_by_name(char):
    with pytest.raises(Refusal) as refused:
        check_fields({"external_id": "a-1", "description": f"起火{char}"},
                     {"external_id": ("string", True), "description": ("string", False)})
    assert refused.value.status == 422 and refused.value.code == "invalid_value"
    assert refused.value.error.params["field"] == "description"
    assert check_fields({"description": "起火\t\n\r"}, {"description": ("string", False)})


def test_the_column_is_named_from_the_statement():
    assert field_of("INSERT INTO t (a, b, c) VALUES (?, now(), ?)", 1) == "c"
    assert field_of("INSERT INTO t (a, b) VALUES (coalesce(?, ?), ?)", 2) == "b"
    assert field_of("SELECT * FROM t WHERE note LIKE ? AND x = '?'", 0) == "note"
    assert field_of("SELECT ?", 3) is None
