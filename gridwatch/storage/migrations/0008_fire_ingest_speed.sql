-- 0008_fire_ingest_speed: detections stored narrow (numbers and small codes, no text per row), read through a
-- view with the columns fire_points had. A million rows append in one bulk insert without per-row text or index
-- work; the text comes back from a few fixed codes, the per-file source and version, and the cell's owners.

-- The source and version of each file's detections: one row per distinct pair in a batch.
CREATE TABLE fire_variants (
    batch_id  BIGINT NOT NULL,
    variant   SMALLINT NOT NULL,
    source    TEXT NOT NULL,
    version   TEXT,
    PRIMARY KEY (batch_id, variant)
);

-- Satellite detections as given (numbers), their cell, flags and triage outcome.
CREATE TABLE fire_detections (
    key              BIGINT NOT NULL,          -- hash of (latitude, longitude, acquisition time, satellite)
    batch_id         BIGINT NOT NULL,
    variant          SMALLINT NOT NULL,        -- fire_variants of the batch: source and version
    satellite        SMALLINT NOT NULL,        -- 0 Terra, 1 Aqua, 2 S-NPP, 3 NOAA-20, 4 NOAA-21
    latitude         DOUBLE PRECISION NOT NULL,
    longitude        DOUBLE PRECISION NOT NULL,
    acq_time         TIMESTAMP NOT NULL,       -- UTC
    confidence       SMALLINT,                 -- 0-100 (MODIS)
    confidence_class SMALLINT NOT NULL,        -- 0 low, 1 nominal, 2 high
    brightness       DOUBLE PRECISION,
    bright_t31       DOUBLE PRECISION,
    frp              DOUBLE PRECISION,
    scan             DOUBLE PRECISION,
    track            DOUBLE PRECISION,
    daynight         SMALLINT,                 -- 0 day, 1 night
    fire_type        SMALLINT,
    cell             BIGINT NOT NULL,
    outcome          SMALLINT NOT NULL,        -- 0 dispatched, 1 static_source, 2 persistent_heat,
                                               -- 3 low_confidence, 4 outside_region
    in_no_burn_zone  BOOLEAN NOT NULL,
    incident_key     BIGINT
);
-- No indexes or keys: rows arrive in bulk; duplicate keys are kept out by the ingest's anti-join.

INSERT INTO fire_variants (batch_id, variant, source, version)
SELECT batch_id, CAST(row_number() OVER (PARTITION BY batch_id ORDER BY source, version) - 1 AS SMALLINT),
       source, version
FROM (SELECT DISTINCT batch_id, source, version FROM fire_points) AS d;

INSERT INTO fire_detections
SELECT f.key, f.batch_id, v.variant,
       CAST(CASE f.satellite WHEN 'Terra' THEN 0 WHEN 'Aqua' THEN 1 WHEN 'S-NPP' THEN 2 WHEN 'NOAA-20' THEN 3
                             ELSE 4 END AS SMALLINT),
       f.latitude, f.longitude, f.acq_time, CAST(f.confidence AS SMALLINT),
       CAST(CASE f.confidence_class WHEN 'low' THEN 0 WHEN 'nominal' THEN 1 ELSE 2 END AS SMALLINT),
       f.brightness, f.bright_t31, f.frp, f.scan, f.track,
       CAST(CASE f.daynight WHEN 'D' THEN 0 WHEN 'N' THEN 1 END AS SMALLINT),
       CAST(f.fire_type AS SMALLINT), f.cell,
       CAST(CASE WHEN f.dispatch = 'outside_region' THEN 4 WHEN f.dispatch = 'dispatched' THEN 0
                 WHEN f.reason = 'static_source' THEN 1 WHEN f.reason = 'persistent_heat' THEN 2
                 ELSE 3 END AS SMALLINT),
       f.in_no_burn_zone, f.incident_key
FROM fire_points f
JOIN fire_variants v ON v.batch_id = f.batch_id AND v.source = f.source AND v.version IS NOT DISTINCT FROM f.version;

DROP TABLE fire_points;

-- The columns and meaning fire_points always had; owners are the cell's (a point's jurisdiction is its cell's).
CREATE VIEW fire_points AS
SELECT f.key, f.batch_id, v.source,
       CASE f.satellite WHEN 0 THEN 'Terra' WHEN 1 THEN 'Aqua' WHEN 2 THEN 'S-NPP' WHEN 3 THEN 'NOAA-20'
                        WHEN 4 THEN 'NOAA-21' END AS satellite,
       CASE WHEN f.satellite <= 1 THEN 'MODIS' ELSE 'VIIRS' END AS instrument,
       f.latitude, f.longitude, f.acq_time, CAST(f.confidence AS INTEGER) AS confidence,
       CASE f.confidence_class WHEN 0 THEN 'low' WHEN 1 THEN 'nominal' WHEN 2 THEN 'high' END AS confidence_class,
       f.brightness, f.bright_t31, f.frp, f.scan, f.track,
       CASE f.daynight WHEN 0 THEN 'D' WHEN 1 THEN 'N' END AS daynight,
       v.version, CAST(f.fire_type AS INTEGER) AS fire_type, f.cell,
       f.outcome <> 4 AS in_region,
       CASE WHEN f.outcome <> 4 THEN c.county_code END AS county_code,
       CASE WHEN f.outcome <> 4 THEN c.township_code END AS township_code,
       CASE WHEN f.outcome <> 4 THEN c.village_code END AS village_code,
       f.in_no_burn_zone,
       CASE f.outcome WHEN 0 THEN 'dispatched' WHEN 4 THEN 'outside_region' ELSE 'not_dispatched' END AS dispatch,
       CASE f.outcome WHEN 1 THEN 'static_source' WHEN 2 THEN 'persistent_heat' WHEN 3 THEN 'low_confidence'
                      ELSE '' END AS reason,
       f.incident_key
FROM fire_detections f
LEFT JOIN fire_variants v ON v.batch_id = f.batch_id AND v.variant = f.variant
LEFT JOIN cells c ON c.cell = f.cell;  -- an equi-join (a hash join); points outside the region get no codes above

-- Incidents likewise: the satellite as its code, township and village from the cell, behind a view named as before.
CREATE TABLE fire_incidents (
    key              BIGINT PRIMARY KEY,       -- hash of (cell, satellite, acquisition time)
    cell             BIGINT NOT NULL,
    satellite        SMALLINT NOT NULL,        -- as in fire_detections
    acq_time         TIMESTAMP NOT NULL,
    points           INTEGER NOT NULL,
    max_frp          DOUBLE PRECISION,
    in_no_burn_zone  BOOLEAN NOT NULL,
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO fire_incidents
SELECT key, cell,
       CAST(CASE satellite WHEN 'Terra' THEN 0 WHEN 'Aqua' THEN 1 WHEN 'S-NPP' THEN 2 WHEN 'NOAA-20' THEN 3
                           ELSE 4 END AS SMALLINT),
       acq_time, points, max_frp, in_no_burn_zone, created_at
FROM incidents;
DROP TABLE incidents;
CREATE VIEW incidents AS
SELECT i.key, i.cell,
       CASE i.satellite WHEN 0 THEN 'Terra' WHEN 1 THEN 'Aqua' WHEN 2 THEN 'S-NPP' WHEN 3 THEN 'NOAA-20'
                        WHEN 4 THEN 'NOAA-21' END AS satellite,
       i.acq_time, i.points, i.max_frp, i.in_no_burn_zone, c.township_code, c.village_code, i.created_at
FROM fire_incidents i
LEFT JOIN cells c ON c.cell = i.cell;

-- tasks without UNIQUE (kind, source_kind, source_key): its index cost more than the whole rest of opening 265 k
-- tasks. Each opener keeps its own idempotence (fire checks: one per new incident, whose key is the incidents
-- primary key; patrols: one per cell and week, checked before opening). Same columns, data kept.
CREATE TABLE tasks_0008 (
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
    title         TEXT NOT NULL DEFAULT ''
);
INSERT INTO tasks_0008 (id, kind, cell, source_kind, source_key, priority, state, assignee_id, assigned_role,
                        assigned_unit, coverage_gap, created_at, due_at, title)
SELECT id, kind, cell, source_kind, source_key, priority, state, assignee_id, assigned_role, assigned_unit,
       coverage_gap, created_at, due_at, title
FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_0008 RENAME TO tasks;

-- task_events grows by bulk appends too; its rows are found by task_id through zone maps (ids only increase).
DROP INDEX task_events_task;
