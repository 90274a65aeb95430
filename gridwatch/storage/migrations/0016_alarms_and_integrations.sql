-- 0016_alarms_and_integrations: other systems post alarms through the HTTP API, and hear back how they ended.
-- An integration (a video 蓝天卫士 platform, a drone team, a 12345/12369 hotline) calls with a token of which only
-- the SHA-256 is stored; its alarms must lie in its unit's cells and be of its source. Each alarm opens a task on
-- its cell (the same door as dispatch), and an alarm arrives once per integration and external id whatever the
-- retries: the unique key decides, in the database. When the task is closed or a report on it is rejected, the
-- outcome is posted to the integration's webhook, signed, and every attempt is logged.
-- Times are UTC, stored without a time zone (as everywhere in gridwatch).

CREATE SEQUENCE integrations_id_seq START 1;
CREATE TABLE integrations (
    id              BIGINT PRIMARY KEY DEFAULT nextval('integrations_id_seq'),
    name            TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL CHECK (source IN ('video', 'drone', 'hotline', 'other')),
    unit_code       TEXT NOT NULL,                 -- its alarms must lie in this unit's cells
    token_hash      TEXT NOT NULL UNIQUE,          -- SHA-256 (hex) of the token, which is shown once
    rate_per_minute INTEGER NOT NULL CHECK (rate_per_minute > 0),
    webhook_url     TEXT NOT NULL DEFAULT '',      -- where outcomes are posted ('' for none)
    webhook_secret  TEXT NOT NULL DEFAULT '',      -- the HMAC-SHA256 key of those posts (shown once as well)
    created_at      TIMESTAMP NOT NULL,
    created_by      TEXT NOT NULL,
    revoked_at      TIMESTAMP,                     -- its token is refused from then on
    revoked_by      TEXT
);

CREATE SEQUENCE alarms_id_seq START 1;
CREATE TABLE alarms (
    id             BIGINT PRIMARY KEY DEFAULT nextval('alarms_id_seq'),
    integration_id BIGINT NOT NULL,
    external_id    TEXT NOT NULL,                  -- the sender's own id of the alarm
    source         TEXT NOT NULL,                  -- video | drone | hotline | other
    category       TEXT NOT NULL,                  -- straw_burning, bare_land, ... (gridwatch.services.alarms)
    lat            DOUBLE PRECISION NOT NULL,      -- WGS84 (GCJ-02 positions are converted on arrival)
    lng            DOUBLE PRECISION NOT NULL,
    crs            TEXT NOT NULL,                  -- the position's system as sent: wgs84 or gcj02
    cell           BIGINT NOT NULL,
    observed_at    TIMESTAMP NOT NULL,
    received_at    TIMESTAMP NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    contact        TEXT NOT NULL DEFAULT '',       -- a complainant's contact (hotlines); never shown to field staff
    task_id        BIGINT,                         -- the task it opened
    problem_id     BIGINT,                         -- its problem register entry, where one opens
    UNIQUE (integration_id, external_id)
);
--@postgres
CREATE INDEX alarms_task ON alarms (task_id);

-- One outcome (a task event: closed, or a report rejected) to post to one integration's webhook.
CREATE SEQUENCE webhook_deliveries_id_seq START 1;
CREATE TABLE webhook_deliveries (
    id              BIGINT PRIMARY KEY DEFAULT nextval('webhook_deliveries_id_seq'),
    integration_id  BIGINT NOT NULL,
    alarm_id        BIGINT NOT NULL,
    event_id        BIGINT NOT NULL UNIQUE,        -- the task event it reports: each is posted once
    outcome         TEXT NOT NULL,                 -- closed | rejected
    payload         TEXT NOT NULL,                 -- the JSON posted, the same bytes at every attempt
    created_at      TIMESTAMP NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,            -- back-off: 2 ** attempts minutes after a failed attempt
    last_error      TEXT NOT NULL DEFAULT ''       -- English, secrets redacted; '' once sent
);

-- Every attempt of a delivery, as it went.
CREATE SEQUENCE webhook_attempts_id_seq START 1;
CREATE TABLE webhook_attempts (
    id           BIGINT PRIMARY KEY DEFAULT nextval('webhook_attempts_id_seq'),
    delivery_id  BIGINT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status       TEXT NOT NULL,                    -- ok | rejected | rate_limited | error | timeout
    http_status  INTEGER,
    requests     INTEGER NOT NULL,                 -- requests made (5xx answers and timeouts are retried at once)
    message      TEXT NOT NULL DEFAULT ''
);
