-- 0022_problem_outcome_deliveries: a hotline hears how its complaint ended, not only how the first check went.
-- A delivery reports either a task event (the check closed, or its report rejected) or a problem event (the problem
-- the complaint opened closed 销号, or dismissed 不成立); ``event_source`` says which table ``event_id`` is in. The
-- table is rebuilt because the uniqueness of ``event_id`` alone becomes that of the pair.
CREATE TABLE webhook_deliveries_v2 (
    id              BIGINT PRIMARY KEY DEFAULT nextval('webhook_deliveries_id_seq'),
    integration_id  BIGINT NOT NULL,
    alarm_id        BIGINT NOT NULL,
    event_source    TEXT NOT NULL DEFAULT 'task' CHECK (event_source IN ('task', 'problem')),
    event_id        BIGINT NOT NULL,               -- the task or problem event it reports: each is posted once
    outcome         TEXT NOT NULL,                 -- task: closed | rejected; problem: closed | dismissed
    payload         TEXT NOT NULL,                 -- the JSON posted, the same bytes at every attempt
    created_at      TIMESTAMP NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,            -- back-off: 2 ** attempts minutes after a failed attempt
    last_error      TEXT NOT NULL DEFAULT '',      -- English, secrets redacted; '' once sent
    UNIQUE (event_source, event_id)
);
INSERT INTO webhook_deliveries_v2 (id, integration_id, alarm_id, event_source, event_id, outcome, payload, created_at,
                                   status, attempts, next_attempt_at, last_error)
SELECT id, integration_id, alarm_id, 'task', event_id, outcome, payload, created_at, status, attempts,
       next_attempt_at, last_error FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_v2 RENAME TO webhook_deliveries;
