-- 0005_notifications: one message per task fact worth telling (assigned, due soon, escalated), with its delivery.
-- Times are UTC, stored without a time zone (as everywhere in gridwatch).

CREATE SEQUENCE notifications_id_seq START 1;
CREATE TABLE notifications (
    id              BIGINT PRIMARY KEY DEFAULT nextval('notifications_id_seq'),
    task_id         BIGINT NOT NULL,
    person_id       BIGINT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('assigned', 'due_soon', 'escalated')),
    channel         TEXT NOT NULL DEFAULT '',          -- kind of the channel of the last attempt ('' before any)
    created_at      TIMESTAMP NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,        -- deliveries tried (each may have retried within itself)
    last_attempt_at TIMESTAMP,
    last_error      TEXT NOT NULL DEFAULT '',          -- English, secrets redacted; '' once sent
    payload         TEXT NOT NULL DEFAULT '{}',        -- JSON: task, place, due time, person, message text
    UNIQUE (task_id, person_id, reason)                -- each fact is announced once
);
