-- 0011_task_concurrency: a double tap or a resubmit is recorded once; a change that lost a race is kept.
-- The key a form carries when it is submitted (one per opened form); the event it produced.
CREATE TABLE task_event_keys (
    idempotency_key TEXT PRIMARY KEY,
    task_id         BIGINT NOT NULL,
    event_id        BIGINT NOT NULL
);

-- Input that arrived after someone else had changed the task: kept for the leader, never dropped.
CREATE SEQUENCE task_conflicts_id_seq START 1;
CREATE TABLE task_conflicts (
    id              BIGINT PRIMARY KEY DEFAULT nextval('task_conflicts_id_seq'),
    task_id         BIGINT NOT NULL,
    happened_at     TIMESTAMP NOT NULL,
    actor           TEXT NOT NULL,
    wanted_state    TEXT NOT NULL,
    seen_event_id   BIGINT,                     -- the last event the person had seen
    current_event_id BIGINT NOT NULL,           -- the event that got there first
    detail          TEXT NOT NULL DEFAULT '{}'  -- what they submitted (finding, note, position, photos)
);
CREATE INDEX task_conflicts_task ON task_conflicts (task_id);
