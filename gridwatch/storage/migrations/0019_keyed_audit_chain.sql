-- 0019_keyed_audit_chain: links MACed with a key kept outside the database, and task events that carry the cached
-- columns they set.
-- ``key_id`` names the audit key whose HMAC-SHA256 is the link's ``hash`` (NULL: a link sealed before keys, whose
-- hash is the plain SHA-256 of migration 0010). A link now covers exactly the rows first_id..last_id of its source.
ALTER TABLE audit_chain ADD COLUMN key_id TEXT;
-- What a task event sets besides the state: ``sets`` lists the cached columns (``assignee_id``, ``due_at``), and
-- these columns hold their values after the event, so the task row is derivable from its events (NULL ``sets``:
-- an event from before, which says nothing of them).
ALTER TABLE task_events ADD COLUMN sets TEXT;
ALTER TABLE task_events ADD COLUMN assignee_id BIGINT;
ALTER TABLE task_events ADD COLUMN due_at TIMESTAMP;
-- each transaction reads where the links of a source end (DuckDB answers from its column statistics)
--@postgres
CREATE INDEX audit_chain_source_last ON audit_chain (source, last_id);
