-- 0013_task_log_without_index: in DuckDB, tasks and task_events without their primary-key indexes.
-- Their ids come from sequences (unique by construction, never given by hand) and only increase, so DuckDB finds
-- a task or its events by the zone maps of the id columns, as it finds task_events by task_id since 0008. The
-- indexes cost a large fire dispatch a tenth of its time: 265 k tasks and their first events each took an index
-- entry, and every later checkpoint wrote both indexes again. PostgreSQL has no zone maps and keeps its keys.
-- Same columns and data; ids keep coming from the same sequences.
--@duckdb
CREATE TABLE tasks_0013 (
    id            BIGINT NOT NULL DEFAULT nextval('tasks_id_seq'),
    kind          TEXT NOT NULL,
    cell          BIGINT NOT NULL,
    source_kind   TEXT NOT NULL,
    source_key    TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    state         TEXT NOT NULL,
    assignee_id   BIGINT,
    assigned_role TEXT,
    assigned_unit TEXT,
    coverage_gap  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    due_at        TIMESTAMP NOT NULL,
    title         TEXT NOT NULL DEFAULT ''
);
--@duckdb
INSERT INTO tasks_0013 (id, kind, cell, source_kind, source_key, priority, state, assignee_id, assigned_role,
                        assigned_unit, coverage_gap, created_at, due_at, title)
SELECT id, kind, cell, source_kind, source_key, priority, state, assignee_id, assigned_role, assigned_unit,
       coverage_gap, created_at, due_at, title
FROM tasks ORDER BY id;
--@duckdb
DROP TABLE tasks;
--@duckdb
ALTER TABLE tasks_0013 RENAME TO tasks;
--@duckdb
CREATE TABLE task_events_0013 (
    id          BIGINT NOT NULL DEFAULT nextval('task_events_id_seq'),
    task_id     BIGINT NOT NULL,
    happened_at TIMESTAMP NOT NULL,
    actor       TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
--@duckdb
INSERT INTO task_events_0013 (id, task_id, happened_at, actor, from_state, to_state, detail)
SELECT id, task_id, happened_at, actor, from_state, to_state, detail
FROM task_events ORDER BY id;
--@duckdb
DROP TABLE task_events;
--@duckdb
ALTER TABLE task_events_0013 RENAME TO task_events
