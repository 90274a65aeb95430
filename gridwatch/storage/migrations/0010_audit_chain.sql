-- 0010_audit_chain: the tamper-evident seal over task events and the audit log.
-- Each link seals the rows of one source written by one transaction (ids first_id..last_id): ``digest`` is the
-- SHA-256 of their canonical text in id order, and ``hash`` = SHA-256(prev_hash | seq | source | first_id |
-- last_id | rows | digest), so every link covers every row sealed before it. ``audit verify`` recomputes it.
CREATE TABLE audit_chain (
    seq        BIGINT PRIMARY KEY,
    source     TEXT NOT NULL,                 -- task_events | audit_log
    first_id   BIGINT NOT NULL,
    last_id    BIGINT NOT NULL,
    rows       BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    sealed_at  TIMESTAMP NOT NULL
);
