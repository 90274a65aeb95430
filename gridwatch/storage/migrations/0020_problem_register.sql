-- 0020_problem_register: the problem register (问题台账, HN-2024 §8(3) 问题整改清单 … 整改情况核查 … 清单式闭环管理).
-- A problem is found by a task's verified finding or by an alarm, handed to a party responsible for fixing it,
-- rectified, checked on site by another person than the rectifier, and closed or returned for more work.
-- The state on `problems` is a cache of the last event; `problem_events` is append-only and written only by
-- gridwatch.problems (its one door), in the same transaction as the change. Times are UTC without a zone.

CREATE SEQUENCE problems_id_seq START 1;
CREATE TABLE problems (
    id               BIGINT PRIMARY KEY DEFAULT nextval('problems_id_seq'),
    category         TEXT NOT NULL,                -- straw_burning, bare_land, coal_boiler, ... (the alarms' list)
    cell             BIGINT NOT NULL,
    object_key       TEXT NOT NULL DEFAULT '',     -- a supervised object, as a free key for now
    finding_task_id  BIGINT NOT NULL UNIQUE,       -- the task whose finding raised it (one problem per task)
    alarm_id         BIGINT,                       -- the alarm that raised it, where one did
    finding          TEXT NOT NULL DEFAULT '',     -- the finding code, or 'alarm'
    state            TEXT NOT NULL,
    party_kind       TEXT NOT NULL DEFAULT '' CHECK (party_kind IN ('', 'person', 'enterprise', 'unit')),
    party_person_id  BIGINT,                       -- party_kind person
    party_name       TEXT NOT NULL DEFAULT '',     -- the person's, enterprise's or unit's name
    party_unit       TEXT NOT NULL DEFAULT '',     -- party_kind unit: its code
    assignee_id      BIGINT,                       -- the official on the chain who follows it (escalation moves it)
    assigned_role    TEXT,
    assigned_unit    TEXT,
    found_at         TIMESTAMP NOT NULL,
    deadline_at      TIMESTAMP,                    -- NULL: no rectification days configured (no deadline, no overdue)
    escalate_at      TIMESTAMP,                    -- the next escalation when still not rectified
    closed_at        TIMESTAMP,
    repeat_of        BIGINT                        -- an earlier problem of the cell and category in the window
);
CREATE INDEX problems_cell ON problems (cell);

CREATE SEQUENCE problem_events_id_seq START 1;
CREATE TABLE problem_events (
    id          BIGINT PRIMARY KEY DEFAULT nextval('problem_events_id_seq'),
    problem_id  BIGINT NOT NULL,
    happened_at TIMESTAMP NOT NULL,
    actor       TEXT NOT NULL,                     -- a user name, or system:<name>
    person_id   BIGINT,                            -- the person behind it (the four eyes of a check compare these)
    from_state  TEXT,                              -- NULL for the problem's opening
    to_state    TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX problem_events_problem ON problem_events (problem_id);
