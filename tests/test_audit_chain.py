"""The tamper-evident chain over task events and the audit log: sealed at commit, verified, tampering found."""

from __future__ import annotations

import json

import pytest

from gridwatch import audit, services
from gridwatch.audit import open_sealed
from gridwatch.cli import AUDIT_BROKEN, main


def _work(store):
    inspector = services.current_user(store, services.sign_in(store, "inspector", services.DEMO_PASSWORD).token)
    task = services.my_tasks(store, inspector).iloc[0]
    services.work_on(store, inspector, int(task.id), "in_progress")
    return int(task.id)


def test_every_transaction_seals_what_it_wrote(demo_store):
    before = audit.verify(demo_store)
    assert before["ok"] and before["unsealed"] == 0 and before["links"] >= 1
    sealed = before["rows"]
    events = demo_store.scalar("SELECT count(*) FROM task_events") + demo_store.scalar("SELECT count(*) FROM audit_log")
    assert sealed == events
    _work(demo_store)
    after = audit.verify(demo_store)
    assert after["ok"] and after["rows"] == sealed + 1 and after["links"] == before["links"] + 1
    assert after["head"]["seq"] == after["links"] and after["head"]["hash"] != before["head"]["hash"]


@pytest.mark.parametrize("tamper, reason", [
    ("UPDATE task_events SET detail = '{{\"finding\": \"false_alarm\"}}' WHERE id = {event}", "rows_changed"),
    ("UPDATE task_events SET actor = 'someone-else' WHERE id = {event}", "rows_changed"),
    ("DELETE FROM task_events WHERE id = {event}", "rows_missing_or_added"),
    ("UPDATE audit_chain SET prev_hash = '{zero}' WHERE seq = {seq}", "link_changed"),
    ("DELETE FROM audit_chain WHERE seq = {seq} - 1", "sequence_gap"),
])
def test_tampering_names_the_first_broken_link(demo_store, tamper, reason):
    _work(demo_store)
    event = demo_store.scalar("SELECT max(id) FROM task_events")
    seq = demo_store.scalar("SELECT seq FROM audit_chain WHERE source = 'task_events' AND first_id <= ? AND"
                            " last_id >= ?", [event, event])
    demo_store.execute(tamper.format(event=event, seq=seq, zero="0" * 64))
    report = audit.verify(demo_store)
    assert not report["ok"]
    broken = report["first_broken"]
    assert broken["reason"] == reason
    if reason != "sequence_gap":
        assert broken["seq"] == seq and broken["source"] == "task_events"
        assert broken["first_id"] <= event <= broken["last_id"]


def test_a_failed_transaction_seals_nothing(demo_store):
    head = audit.head(demo_store)
    with pytest.raises(RuntimeError):
        with demo_store.transaction():
            demo_store.execute("INSERT INTO audit_log (actor, action) VALUES ('t', 'rolled back')")
            raise RuntimeError("stop")
    assert audit.head(demo_store) == head and audit.verify(demo_store)["ok"]


def test_rows_written_outside_a_transaction_are_reported_then_sealed_by_the_next(demo_store):
    demo_store.execute("INSERT INTO audit_log (actor, action) VALUES ('t', 'autocommit')")
    assert audit.verify(demo_store)["unsealed"] == 1
    with demo_store.transaction():
        pass
    assert audit.verify(demo_store)["unsealed"] == 0 and audit.verify(demo_store)["ok"]


def test_cli_audit_verify_exits_non_zero_when_broken(demo_copy, capsys):
    path = demo_copy
    assert main(["audit", "verify", "--json", "--db", str(path)]) == 0
    good = json.loads(capsys.readouterr().out)
    assert good["ok"] and good["first_broken"] is None
    with open_sealed(str(path)) as store:
        store.execute("UPDATE task_events SET actor = 'x' WHERE id = (SELECT min(id) FROM task_events)")
    assert main(["audit", "verify", "--json", "--db", str(path)]) == AUDIT_BROKEN
    bad = json.loads(capsys.readouterr().out)
    assert bad["ok"] is False and bad["first_broken"]["reason"] == "rows_changed"
    assert main(["audit", "head", "--json", "--db", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == good["head"]["seq"]


def test_an_exported_dossier_carries_the_chain_head(demo_store):
    frame = services.report_dossier(demo_store, services.CLI, unit="410329-D01")
    files = services.report_dossier_files(demo_store, services.CLI, frame, unit="410329-D01")
    head = audit.head(demo_store)
    assert head["hash"] in files["html"].decode("utf-8") and f"第 {head['seq']} 环" in files["html"].decode("utf-8")


def test_the_seal_hashes_exactly_what_verify_recomputes(store):
    """The seal's streamed digest (DuckDB) equals the SQL digest verify uses: many rows, Chinese text, NULLs and
    empty strings."""
    import datetime as dt

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
    assert report["ok"] and report["unsealed"] == 0 and report["rows"] == n
    text = audit._canonical_sql(store, "task_events", "r")
    expected = store.scalar(f"SELECT {store.sha256_hex_sql(f'string_agg({text}, chr(30) ORDER BY r.id)')}"
                            " FROM task_events r")
    assert store.scalar("SELECT digest FROM audit_chain WHERE source = 'task_events'") == expected


def test_terminated_texts_hash_as_joined_whatever_the_chunks():
    import hashlib

    import pyarrow as pa

    texts = [f"行{i}|{'x' * (i % 4)}" for i in range(1000)]
    expected = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    whole = pa.array([t + "\x1e" for t in texts])
    assert audit.sha256_of_terminated(whole) == expected
    # several chunks of sliced arrays (non-zero offsets), of plain and of large strings
    for kind in (pa.string(), pa.large_string()):
        part = whole.cast(kind)
        chunked = pa.chunked_array([part.slice(0, 10), part.slice(10, 490), part.slice(500)])
        assert audit.sha256_of_terminated(chunked) == expected


def test_storage_alone_does_not_seal_and_the_edge_does():
    """Storage knows nothing of the seal: ``open_store`` opens and migrates; ``open_sealed`` also seals."""
    from gridwatch.storage import open_store

    with open_store(":memory:") as plain:
        with plain.transaction():
            plain.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
        assert audit.verify(plain)["unsealed"] == 1 and audit.head(plain)["seq"] == 0
    with open_sealed(":memory:") as sealed:
        with sealed.transaction():
            sealed.execute("INSERT INTO audit_log (actor, action) VALUES ('a', 'x')")
        report = audit.verify(sealed)
        assert report["ok"] and report["unsealed"] == 0 and report["head"]["seq"] == 1
