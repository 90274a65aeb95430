-- 0002_fires_and_tasks: satellite fire points, incidents, the observation ledger, patrol tasks and their events.

CREATE SEQUENCE ingest_batches_id_seq START 1;
CREATE TABLE ingest_batches (
    id          BIGINT PRIMARY KEY DEFAULT nextval('ingest_batches_id_seq'),
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL,
    started_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    summary     TEXT NOT NULL DEFAULT '{}'
);

-- Satellite detections, kept as given plus their cell, owners, flags and triage outcome.
CREATE TABLE fire_points (
    key              BIGINT NOT NULL,          -- hash of (latitude, longitude, acquisition time, satellite)
    batch_id         BIGINT NOT NULL,
    source           TEXT NOT NULL,
    satellite        TEXT NOT NULL,
    instrument       TEXT NOT NULL,
    latitude         DOUBLE PRECISION NOT NULL,
    longitude        DOUBLE PRECISION NOT NULL,
    acq_time         TIMESTAMP NOT NULL,       -- UTC
    confidence       INTEGER,
    confidence_class TEXT NOT NULL,
    brightness       DOUBLE PRECISION,
    bright_t31       DOUBLE PRECISION,
    frp              DOUBLE PRECISION,
    scan             DOUBLE PRECISION,
    track            DOUBLE PRECISION,
    daynight         TEXT,
    version          TEXT,
    fire_type        INTEGER,
    cell             BIGINT NOT NULL,
    in_region        BOOLEAN NOT NULL,
    county_code      TEXT,
    township_code    TEXT,
    village_code     TEXT,
    in_no_burn_zone  BOOLEAN NOT NULL DEFAULT FALSE,
    dispatch         TEXT NOT NULL,            -- dispatched | not_dispatched | outside_region
    reason           TEXT NOT NULL DEFAULT '', -- why not dispatched
    incident_key     BIGINT
);
-- No secondary indexes: rows arrive in bulk (an ART index costs more per insert than the hash joins it would
-- save), and time-range scans use DuckDB's zone maps, which ingest order keeps tight.

-- Detections of one overpass (satellite, acquisition time) in one cell.
CREATE TABLE incidents (
    key              BIGINT PRIMARY KEY,       -- hash of (cell, satellite, acquisition time)
    cell             BIGINT NOT NULL,
    satellite        TEXT NOT NULL,
    acq_time         TIMESTAMP NOT NULL,
    points           INTEGER NOT NULL,
    max_frp          DOUBLE PRECISION,
    in_no_burn_zone  BOOLEAN NOT NULL,
    township_code    TEXT,
    village_code     TEXT,
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Which satellite passes over the region each file or fetch showed (observed, no fire vs not observed).
CREATE TABLE observations (
    satellite   TEXT NOT NULL,
    acq_time    TIMESTAMP NOT NULL,
    detections  INTEGER NOT NULL,
    batch_id    BIGINT NOT NULL,
    PRIMARY KEY (satellite, acq_time)
);

-- Rows a file could not give, with the reason, for download.
CREATE TABLE ingest_rejects (
    batch_id BIGINT NOT NULL,
    line     BIGINT NOT NULL,
    reason   TEXT NOT NULL,
    message  TEXT NOT NULL,
    raw      TEXT NOT NULL
);

-- Each API fetch with its outcome.
CREATE SEQUENCE fetch_log_id_seq START 1;
CREATE TABLE fetch_log (
    id          BIGINT PRIMARY KEY DEFAULT nextval('fetch_log_id_seq'),
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    source      TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      TEXT NOT NULL,
    rows        INTEGER NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    batch_id    BIGINT
);

-- Patrol tasks: always on one cell; the state is derived from the events, and cached here.
CREATE SEQUENCE tasks_id_seq START 1;
CREATE TABLE tasks (
    id            BIGINT PRIMARY KEY DEFAULT nextval('tasks_id_seq'),
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
    title         TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, source_kind, source_key)
);

CREATE SEQUENCE task_events_id_seq START 1;
CREATE TABLE task_events (
    id          BIGINT PRIMARY KEY DEFAULT nextval('task_events_id_seq'),
    task_id     BIGINT NOT NULL,
    happened_at TIMESTAMP NOT NULL,
    actor       TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX task_events_task ON task_events (task_id);
