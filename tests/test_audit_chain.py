"""The keyed, anchored chain over task events and the audit log: sealed in the writing transaction, verified, and
every attack on it found (on DuckDB and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch import audit, auditkey, services, workflow
from gridwatch.audit import open_sealed
from gridwatch.cli import AUDIT_BROKEN, main
from gridwatch.errors import StorageError
from gridwatch.storage import open_store
from gridwatch.tasks import Kind

NOW = dt.datetime(2026, 6, 10, 8, 0)


def _work(store):
    inspector = services.current_user(store, services.sign_in(store, "inspector", services.DEMO_PASSWORD).token)
    task = services.my_tasks(store, inspector).iloc[0]
    services.work_on(store, inspector, int(task.id), "in_progress")
    return int(task.id)


def _open_tasks(store, n: int, *, start: int = 0) -> None:
    """``n`` tasks for person 7, each with its first event (through the workflow's one door)."""
    cells = np.arange(start + 1, start + n + 1, dtype=np.int64)
    who = pd.DataFrame({"cell": cells, "person_id": pd.array([7] * n, dtype="Int64"), "role": ["inspector"] * n,
                        "unit": ["u1"] * n, "gap": [False] * n})
    workflow.open_tasks(store, kind=Kind.MANUAL, cells=cells, source_kind="test",
                        source_keys=np.array([f"k{start + i}" for i in range(n)], dtype=object),
                        priority=np.ones(n), due=np.array([np.datetime64("2026-06-12T08:00")] * n),
                        titles=np.array(["t"] * n, dtype=object), now=NOW, actor="test", detail={}, who=who)


def _step(store, task_id: int, state: str, **columns) -> None:
    with store.transaction():
        workflow.record_events(store, [task_id], state, actor="test", now=NOW, detail={"note": "x"},
                               columns={k: [v] for k, v in columns.items()} or None)


@pytest.fixture(params=["duckdb", "postgres"])
def sealed(request, tmp_path):
    """A sealed database file (DuckDB) or database (PostgreSQL) with 5 tasks, one of them moved on."""
    if request.param == "duckdb":
        url = str(tmp_path / "chain.duckdb")
    else:
        import pgserver

        url = pgserver.create_database(request.getfixturevalue("_pg_migrated"))
        request.addfinalizer(lambda: pgserver.drop_database(url))
    with open_sealed(url) as store:
        _open_tasks(store, 5)
        _step(store, 1, "in_progress")
        with store.transaction():
            store.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'x')")
        store.url_or_path = url
        yield store


def _reasons(report) -> set[str]:
    return {p["reason"] for p in report["problems"]}


def test_every_transaction_seals_what_it_wrote_in_the_transaction(sealed):
    report = audit.verify(sealed)
    assert report["ok"], report["problems"]
    assert report["unsealed"] == 0 and report["rows"] == 5 + 1 + 1 and report["tasks"] == 5
    assert report["anchored"] == {"seq": report["head"]["seq"], "hash": report["head"]["hash"]}
    keys = {r["key_id"] for r in sealed.query("SELECT key_id FROM audit_chain")}
    assert len(keys) == 1 and None not in keys


def test_a_failed_transaction_seals_nothing(sealed):
    head = audit.head(sealed)
    with pytest.raises(RuntimeError):
        with sealed.transaction():
            sealed.execute("INSERT INTO audit_log (actor, action) VALUES ('t', 'rolled back')")
            raise RuntimeError("stop")
    assert audit.head(sealed) == head and audit.verify(sealed)["ok"]


def test_tail_truncation_is_caught_by_the_head_file(sealed):
    last = sealed.query("SELECT seq, source, first_id, last_id FROM audit_chain ORDER BY seq DESC LIMIT 1")[0]
    sealed.execute(f"DELETE FROM {last['source']} WHERE id BETWEEN ? AND ?", [last["first_id"], last["last_id"]])
    sealed.execute("DELETE FROM audit_chain WHERE seq = ?", [last["seq"]])
    report = audit.verify(sealed)
    assert not report["ok"] and _reasons(report) == {"truncated"}
    assert report["problems"][0]["anchored"] == last["seq"] and report["problems"][0]["seq"] == last["seq"] - 1


def test_deleting_the_last_link_is_caught(sealed):
    sealed.execute("DELETE FROM audit_chain WHERE seq = (SELECT max(seq) FROM audit_chain)")
    report = audit.verify(sealed, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert "truncated" in _reasons(report) and "unsealed" in _reasons(report)


def test_deleting_the_last_rows_is_caught(sealed):
    sealed.execute("DELETE FROM task_events WHERE id = (SELECT max(id) FROM task_events)")
    report = audit.verify(sealed)
    assert _reasons(report) >= {"rows_missing_or_added", "task_row_differs"}
    missing = next(p for p in report["problems"] if p["reason"] == "rows_missing_or_added")
    assert missing["source"] == "task_events" and missing["expected"] == 1 and missing["found"] == 0


def _forge(store, key: bytes, key_id: str) -> int:
    """Append an event and a link MACed with ``key`` as an attacker would (the chain's form is public)."""
    tip = store.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")[0]
    event = int(store.scalar("SELECT max(id) FROM task_events")) + 1
    store.execute("INSERT INTO task_events (id, task_id, happened_at, actor, from_state, to_state, detail, sets)"
                  " VALUES (?, 2, ?, 'forger', 'assigned', 'closed', '{}', '')", [event, NOW])
    text = audit._canonical_sql("task_events", "r")
    row = store.scalar(f"SELECT {text} FROM task_events r WHERE id = ?", [event])
    digest = hashlib.sha256(row.encode()).hexdigest()
    seq = int(tip["seq"]) + 1
    mac = audit._link_mac(key, key_id, tip["hash"], seq, "task_events", event, event, 1, digest)
    store.execute("INSERT INTO audit_chain (seq, source, first_id, last_id, rows, digest, prev_hash, hash, sealed_at,"
                  " key_id) VALUES (?, 'task_events', ?, ?, 1, ?, ?, ?, ?, ?)",
                  [seq, event, event, digest, tip["hash"], mac, NOW, key_id])
    return seq


def test_a_forged_appended_event_fails_without_the_key(sealed):
    current = sealed.scalar("SELECT key_id FROM audit_chain ORDER BY seq DESC LIMIT 1")
    seq = _forge(sealed, b"guessed key of 32 bytes .......", current)
    report = audit.verify(sealed)
    forged = [p for p in report["problems"] if p["reason"] == "link_forged"]
    assert forged and forged[0]["seq"] == seq and forged[0]["source"] == "task_events"
    assert report["first_broken"]["reason"] == "link_forged"


def test_a_forged_event_without_a_link_is_never_sealed_by_the_next_change(sealed):
    event = int(sealed.scalar("SELECT max(id) FROM task_events")) + 100
    sealed.execute("INSERT INTO task_events (id, task_id, happened_at, actor, from_state, to_state, detail)"
                   " VALUES (?, 3, ?, 'forger', 'assigned', 'closed', '{}')", [event, NOW])
    _step(sealed, 4, "in_progress")  # an honest change afterwards seals its own rows only
    report = audit.verify(sealed)
    unsealed = [p for p in report["problems"] if p["reason"] == "unsealed"]
    assert len(unsealed) == 1 and unsealed[0]["ids"] == str(event) and unsealed[0]["source"] == "task_events"
    assert report["unsealed"] == 1


def test_an_unsealed_event_fails_once_older_than_the_limit(sealed, tmp_path):
    # written around the seal: a store opened without it
    plain = open_store(sealed.url_or_path) if sealed.backend == "postgres" else sealed
    if plain is sealed:
        plain.execute("INSERT INTO audit_log (actor, action, logged_at) VALUES ('around', 'x', ?)",
                      [dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    else:
        with plain:
            plain.execute("INSERT INTO audit_log (actor, action, logged_at) VALUES ('around', 'x', ?)",
                          [dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    young = audit.verify(sealed)
    assert young["ok"] and young["unsealed"] == 1
    later = audit.verify(sealed, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=audit.UNSEALED_LIMIT_S + 1))
    assert _reasons(later) == {"unsealed"} and later["problems"][0]["source"] == "audit_log"


@pytest.mark.parametrize("column, value", [("state", "closed"), ("assignee_id", 99),
                                           ("due_at", dt.datetime(2027, 1, 1))])
def test_an_edited_task_row_is_caught(sealed, column, value):
    sealed.execute(f"UPDATE tasks SET {column} = ? WHERE id = 2", [value])
    report = audit.verify(sealed)
    assert [(p["reason"], p["task_id"], p["column"]) for p in report["problems"]] == \
        [("task_row_differs", 2, column)]


def test_assignee_and_due_are_derived_from_the_last_event_that_set_them(sealed):
    _step(sealed, 1, "reported")
    _step(sealed, 3, "assigned", assignee_id=8, due_at=dt.datetime(2026, 6, 20, 8))
    assert audit.verify(sealed)["ok"]
    assert sealed.query("SELECT assignee_id, due_at FROM tasks WHERE id = 3")[0] == {
        "assignee_id": 8, "due_at": dt.datetime(2026, 6, 20, 8)}
    sealed.execute("UPDATE tasks SET assignee_id = 7 WHERE id = 3")  # back to the first assignee: still caught
    assert [p["column"] for p in audit.verify(sealed)["problems"]] == ["assignee_id"]


def _reopen(url):
    return open_sealed(url)


def test_a_missing_key_fails_verification_and_refuses_changes(sealed):
    url = sealed.url_or_path
    key_file = auditkey.key_path(sealed)
    sealed.close()
    saved = key_file.read_bytes()
    key_file.unlink()
    with _reopen(url) as again:
        report = audit.verify(again)
        assert "key_missing" in _reasons(report) and not report["ok"]
        assert not key_file.exists()  # never made anew for a database that has a chain
        with pytest.raises(StorageError, match="audit key"):
            _step(again, 1, "reported")
    key_file.write_bytes(saved)
    with _reopen(url) as again:
        assert audit.verify(again)["ok"]


def test_a_wrong_key_fails_verification(sealed, monkeypatch):
    url, key_file = sealed.url_or_path, auditkey.key_path(sealed)
    sealed.close()
    ring = json.loads(key_file.read_text())
    key_file.unlink()
    monkeypatch.setenv(auditkey.KEY_ENV, "ab" * 32)  # another key in the environment
    with _reopen(url) as again:
        report = audit.verify(again)
        assert "key_unknown" in _reasons(report) and not report["ok"]
    ring["keys"][ring["current"]] = "cd" * 32  # the same key id, other bytes
    key_file.write_text(json.dumps(ring))
    monkeypatch.delenv(auditkey.KEY_ENV)
    with _reopen(url) as again:
        assert "link_forged" in _reasons(audit.verify(again))


def test_rotating_the_key_keeps_old_links_verifying(sealed):
    before = sealed.scalar("SELECT key_id FROM audit_chain ORDER BY seq DESC LIMIT 1")
    rotated = services.audit_rotate_key(sealed, services.CLI)
    assert rotated["current"] != before and before in rotated["keys"]
    _step(sealed, 2, "in_progress")
    ids = [r["key_id"] for r in sealed.query("SELECT key_id FROM audit_chain ORDER BY seq")]
    assert ids[0] == before and ids[-1] == rotated["current"]
    assert audit.verify(sealed)["ok"]
    assert oct(auditkey.key_path(sealed).stat().st_mode & 0o777) == "0o600"


def test_concurrent_writers_each_seal_their_own_rows(sealed):
    errors = []

    def write(k: int) -> None:
        try:
            for i in range(4):
                sealed.retrying(lambda: _open_tasks(sealed, 2, start=1000 + k * 100 + i * 10))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    report = audit.verify(sealed)
    assert report["ok"] and report["unsealed"] == 0, report["problems"]
    assert report["tasks"] == 5 + 4 * 4 * 2


def test_demo_tampering_names_where(demo_store):
    _work(demo_store)
    event = demo_store.scalar("SELECT max(id) FROM task_events")
    demo_store.execute("UPDATE task_events SET actor = 'someone-else' WHERE id = ?", [event])
    demo_store.execute("UPDATE audit_chain SET prev_hash = ? WHERE seq = 2", ["0" * 64])
    report = audit.verify(demo_store)
    reasons = [(p["reason"], p.get("seq")) for p in report["problems"]]
    assert ("link_changed", 2) in reasons
    changed = next(p for p in report["problems"] if p["reason"] == "rows_changed")
    assert changed["first_id"] <= event <= changed["last_id"] and changed["source"] == "task_events"


def test_cli_audit_verify_says_what_and_where_and_exits_non_zero(demo_copy, capsys):
    path = demo_copy
    assert main(["audit", "verify", "--json", "--db", str(path)]) == 0
    good = json.loads(capsys.readouterr().out)
    assert good["ok"] and good["first_broken"] is None and good["problems"] == []
    with open_sealed(str(path)) as store:
        store.execute("UPDATE task_events SET actor = 'x' WHERE id = (SELECT min(id) FROM task_events)")
        store.execute("UPDATE tasks SET state = 'closed' WHERE id = (SELECT min(id) FROM tasks)")
        first_task = store.scalar("SELECT min(id) FROM tasks")
    assert main(["audit", "verify", "--json", "--db", str(path)]) == AUDIT_BROKEN
    bad = json.loads(capsys.readouterr().out)
    assert bad["ok"] is False and bad["first_broken"]["reason"] == "rows_changed"
    task = next(p for p in bad["problems"] if p["reason"] == "task_row_differs")
    assert task["task_id"] == first_task and task["column"] == "state"
    assert f"任务 {first_task}" in task["message"]  # in the user's language
    assert main(["audit", "verify", "--db", str(path)]) == AUDIT_BROKEN
    text = capsys.readouterr().out
    assert f"任务 {first_task}" in text and "被改动" in text
    assert main(["audit", "head", "--json", "--db", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == good["head"]["seq"]


def test_cli_rotate_key(demo_copy, capsys):
    assert main(["audit", "rotate-key", "--json", "--db", str(demo_copy)]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert len(rotated["keys"]) == 2
    assert main(["audit", "verify", "--json", "--db", str(demo_copy)]) == 0


def test_an_exported_dossier_carries_the_chain_head(demo_store):
    frame = services.report_dossier(demo_store, services.CLI, unit="410329-D01")
    files = services.report_dossier_files(demo_store, services.CLI, frame, unit="410329-D01")
    head = audit.head(demo_store)
    assert head["hash"] in files["html"].decode("utf-8") and f"第 {head['seq']} 环" in files["html"].decode("utf-8")


def test_the_seal_hashes_exactly_what_verify_recomputes(store):
    """The seal's streamed digest equals SQL's SHA-256 of the joined texts: many rows, Chinese text, NULLs and
    empty strings."""
    import pyarrow as pa

    n = 300_000 if store.backend == "duckdb" else 3_000
    rows = pa.table({
        "task_id": pa.array([1] * n, pa.int64()),
        "happened_at": pa.array([dt.datetime(2026, 6, 1, 10)] * n, pa.timestamp("us")),
        "actor": [f"巡查员{i % 7}" for i in range(n)],
        "from_state": [None if i % 5 == 0 else "assigned" for i in range(n)],
        "to_state": ["reported"] * n,
        "detail": [json.dumps({"note": "已扑灭，现场无明火" * (i % 3), "n": i}, ensure_ascii=False) if i % 4 else ""
                   for i in range(n)],
    })
    with store.transaction():
        store.insert_arrow("task_events", rows)
    report = audit.verify(store)
    assert report["unsealed"] == 0 and report["rows"] == n
    assert {p["reason"] for p in report["problems"]} <= {"task_row_differs"}  # events of a task that is not there
    text = audit._canonical_sql("task_events", "r")
    expected = store.scalar(f"SELECT {store.sha256_hex_sql(f'string_agg({text}, chr(30) ORDER BY r.id)')}"
                            " FROM task_events r")
    assert store.scalar("SELECT digest FROM audit_chain WHERE source = 'task_events'") == expected


def test_terminated_texts_hash_as_joined_whatever_the_chunks():
    import pyarrow as pa

    texts = [f"行{i}|{'x' * (i % 4)}" for i in range(1000)]
    expected = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    whole = pa.array([t + "\x1e" for t in texts])
    assert audit.sha256_of_terminated(whole) == expected
    for kind in (pa.string(), pa.large_string()):
        part = whole.cast(kind)
        chunked = pa.chunked_array([part.slice(0, 10), part.slice(10, 490), part.slice(500)])
        assert audit.sha256_of_terminated(chunked) == expected


def test_storage_alone_does_not_seal_and_the_edge_does():
    """Storage knows nothing of the seal: ``open_store`` opens and migrates; ``open_sealed`` also seals."""
    with open_store(":memory:") as plain:
        with plain.transaction():
            plain.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
        assert audit.verify(plain)["unsealed"] == 1 and audit.head(plain)["seq"] == 0
    with open_sealed(":memory:") as sealed:
        with sealed.transaction():
            sealed.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
        report = audit.verify(sealed)
        assert report["ok"] and report["unsealed"] == 0 and report["head"]["seq"] == 1


def test_macs_are_hmac_sha256():
    mac = audit._link_mac(b"k" * 32, "k1", "0" * 64, 1, "audit_log", 1, 1, 1, "d")
    assert mac == hmac.new(b"k" * 32, f"{'0' * 64}|1|audit_log|1|1|1|d|k1".encode(), hashlib.sha256).hexdigest()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3), st.booleans()), min_size=1, max_size=12))
def test_any_mix_of_writes_and_rollbacks_leaves_every_row_sealed_once(writes):
    """Transactions of any size writing events, audit entries or both, some rolled back: every committed row is
    sealed exactly once, and nothing else."""
    with open_sealed(":memory:") as store:
        committed = 0
        for events, entries, fails in writes:
            try:
                with store.transaction():
                    if events:
                        store.insert_arrow("task_events", pa.table({
                            "task_id": pa.array(np.ones(events, dtype=np.int64)),
                            "happened_at": pa.array([NOW] * events, pa.timestamp("us")),
                            "actor": ["p"] * events, "to_state": ["assigned"] * events, "detail": ["{}"] * events}))
                    for _ in range(entries):
                        store.execute("INSERT INTO audit_log (actor, action) VALUES ('p', 'x')")
                    if fails:
                        raise RuntimeError("roll back")
                committed += events + entries
            except RuntimeError:
                pass
        report = audit.verify(store)
        assert report["unsealed"] == 0 and report["rows"] == committed
        assert {p["reason"] for p in report["problems"]} <= {"task_row_differs"}
        assert int(store.scalar("SELECT coalesce(sum(rows), 0) FROM audit_chain")) == committed


def test_runs_are_the_maximal_runs_of_consecutive_ids():
    @settings(max_examples=200, deadline=None)
    @given(st.sets(st.integers(1, 300), max_size=60))
    def check(ids):
        ordered = np.array(sorted(ids), dtype=np.int64)
        runs = audit._runs(ordered)
        assert sum(b - a for a, b in runs) == len(ordered)
        for a, b in runs:
            assert (np.diff(ordered[a:b]) == 1).all()
        for (_, b), (c, _) in zip(runs, runs[1:]):
            assert ordered[c] - ordered[b - 1] > 1

    check()


def test_a_chain_sealed_before_keys_verifies_and_is_continued_with_a_key(tmp_path):
    """A database from before keyed links: its plain SHA-256 links still verify, the first opening gives it a key,
    and a keyless link after a keyed one is a forgery."""
    path = str(tmp_path / "old.duckdb")

    def legacy_link(store, seq: int, prev: str, row_id: int) -> str:
        text = store.scalar(f"SELECT {audit._canonical_sql('audit_log', 'r', legacy=True)} FROM audit_log r"
                            " WHERE id = ?", [row_id])
        digest = hashlib.sha256(text.encode()).hexdigest()
        link = audit._link_hash(prev, seq, "audit_log", row_id, row_id, 1, digest)
        store.execute("INSERT INTO audit_chain (seq, source, first_id, last_id, rows, digest, prev_hash, hash,"
                      " sealed_at) VALUES (?, 'audit_log', ?, ?, 1, ?, ?, ?, ?)",
                      [seq, row_id, row_id, digest, prev, link, NOW])
        return link

    with open_store(path) as old:
        old.execute("INSERT INTO audit_log (actor, action, logged_at) VALUES ('old', 'x', ?)", [NOW])
        legacy_link(old, 1, audit.GENESIS, 1)
    assert not auditkey.key_path(old).exists()
    with open_sealed(path) as store:
        assert auditkey.key_path(store).exists()
        assert audit.verify(store)["ok"]
        with store.transaction():
            store.execute("INSERT INTO audit_log (actor, action) VALUES ('new', 'y')")
        report = audit.verify(store)
        assert report["ok"] and report["links"] == 2 and report["rows"] == 2
        store.execute("INSERT INTO audit_log (actor, action, logged_at) VALUES ('late', 'z', ?)", [NOW])
        legacy_link(store, 3, audit.head(store)["hash"], 3)
        assert [p["reason"] for p in audit.verify(store)["problems"]] == ["link_forged"]


@pytest.mark.parametrize("value, match", [("not hex", "hexadecimal keys"), ("abcd", "at least 32")])
def test_a_bad_key_in_the_environment_is_refused_clearly(tmp_path, value, match):
    from gridwatch.errors import ValidationError

    with pytest.raises(ValidationError, match=match):
        auditkey.load_keyring(None, env={auditkey.KEY_ENV: value})


def test_a_damaged_key_file_is_refused_and_never_replaced(tmp_path):
    from gridwatch.errors import ValidationError

    path = tmp_path / "db.duckdb"
    with open_sealed(str(path)) as store:
        with store.transaction():
            store.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
    key = auditkey.key_path(store)
    key.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValidationError, match="damaged"):
        open_sealed(str(path))
    assert key.read_text(encoding="utf-8") == "{not json"
    with pytest.raises(ValidationError, match="never overwritten"):
        auditkey.create_keyring(key)


def test_the_head_file_is_replaced_whole(tmp_path):
    head = tmp_path / "db.audithead"
    auditkey.write_head(head, 3, "ab" * 32)
    auditkey.write_head(head, 4, "cd" * 32)
    assert auditkey.read_head(head) == {"seq": 4, "hash": "cd" * 32}
    assert [p.name for p in tmp_path.iterdir()] == ["db.audithead"]  # no temp file left
    assert oct(head.stat().st_mode & 0o777) == "0o600"


def test_an_unsealed_event_dated_ahead_fails_at_once(sealed):
    """A row written around the seal cannot hide behind a future date."""
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=30)
    event = int(sealed.scalar("SELECT max(id) FROM task_events")) + 1
    sealed.execute("INSERT INTO task_events (id, task_id, happened_at, actor, from_state, to_state, detail)"
                   " VALUES (?, 999, ?, 'forger', 'assigned', 'closed', '{}')", [event, later])
    report = audit.verify(sealed)
    assert [(p["reason"], p.get("ids")) for p in report["problems"]] == [("unsealed", str(event))]


def test_every_sealed_source_names_its_time_column():
    """A table added to the seal's sources is read with the column saying when each row was written."""
    assert set(audit.WRITTEN_AT) == set(audit.SOURCES)
