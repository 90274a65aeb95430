-- 0007_heat_supply_and_bare_land: power plants with their CHP flag and heat-supply radius, the boiler inventory
-- with its status history, bare-land cells of the published upload, and the bare-land patches (建档).
-- Times are UTC without a time zone, as everywhere in gridwatch.

-- Plants of the published chp_plants version, with the CHP flag in force and the radius of those that qualify.
CREATE TABLE heat_plants (
    plant_id           TEXT PRIMARY KEY,
    version            BIGINT NOT NULL,
    name               TEXT NOT NULL,
    fuel               TEXT NOT NULL DEFAULT '',
    capacity_mw        DOUBLE PRECISION NOT NULL,
    chp_in_file        BOOLEAN NOT NULL,          -- the flag of the upload (its chp column or chp option)
    chp                BOOLEAN NOT NULL,          -- in force: the file's flag unless staff marked the plant
    qualifies          BOOLEAN NOT NULL,          -- CHP and at least the minimum capacity
    radius_m           DOUBLE PRECISION,          -- NULL when the plant does not qualify
    lat                DOUBLE PRECISION NOT NULL,
    lng                DOUBLE PRECISION NOT NULL,
    status             TEXT NOT NULL DEFAULT '',
    commissioning_year INTEGER
);

-- CHP flags set by staff (the source data has none); they override the file's flag and survive new uploads.
CREATE TABLE chp_marks (
    plant_id  TEXT PRIMARY KEY,
    chp       BOOLEAN NOT NULL,
    marked_by TEXT NOT NULL,
    marked_at TIMESTAMP NOT NULL,
    note      TEXT NOT NULL DEFAULT ''
);

-- The boiler inventory: every boiler ever published, with where it stands against the radii and its status.
CREATE TABLE boilers (
    boiler_id         TEXT PRIMARY KEY,
    version           BIGINT NOT NULL,           -- the boilers version that last carried it
    active            BOOLEAN NOT NULL,          -- in the published version
    name              TEXT NOT NULL,
    fuel              TEXT NOT NULL DEFAULT '',
    coal              BOOLEAN NOT NULL,
    unit_type         TEXT NOT NULL,             -- boiler | chp_unit
    capacity_tph      DOUBLE PRECISION NOT NULL,
    lat               DOUBLE PRECISION NOT NULL,
    lng               DOUBLE PRECISION NOT NULL,
    cell              BIGINT NOT NULL,
    in_region         BOOLEAN NOT NULL,
    in_radius         BOOLEAN NOT NULL,
    plant_id          TEXT,                      -- nearest qualifying plant, when inside a radius
    distance_m        DOUBLE PRECISION,          -- geodesic distance to it on the WGS84 ellipsoid
    small             BOOLEAN NOT NULL,          -- below the small-boiler capacity (35 t/h)
    listed            BOOLEAN NOT NULL,          -- coal boiler or small coal CHP unit inside a radius
    status            TEXT NOT NULL CHECK (status IN ('to_close', 'closed', 'integrated', 'exempt')),
    status_changed_at TIMESTAMP,
    status_changed_by TEXT NOT NULL DEFAULT ''
);

CREATE SEQUENCE boiler_status_history_id_seq START 1;
CREATE TABLE boiler_status_history (
    id          BIGINT PRIMARY KEY DEFAULT nextval('boiler_status_history_id_seq'),
    boiler_id   TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    changed_at  TIMESTAMP NOT NULL,
    changed_by  TEXT NOT NULL,
    source      TEXT NOT NULL,                   -- upload | manual | task
    task_id     BIGINT,
    note        TEXT NOT NULL DEFAULT ''
);

-- Bare land per cell in the published bare_land version.
CREATE TABLE bare_land_cells (
    cell        BIGINT PRIMARY KEY,
    version     BIGINT NOT NULL,
    observed_m2 DOUBLE PRECISION NOT NULL,       -- area with data (not nodata) in the cell
    bare_m2     DOUBLE PRECISION NOT NULL,
    fraction    DOUBLE PRECISION NOT NULL,       -- bare_m2 / observed_m2
    observed_on DATE NOT NULL,
    is_bare     BOOLEAN NOT NULL                 -- bare_m2 at least the minimum patch area
);

-- Registered bare-land patches (建档), one open patch per cell at most.
CREATE SEQUENCE bare_patches_id_seq START 1;
CREATE TABLE bare_patches (
    id                BIGINT PRIMARY KEY DEFAULT nextval('bare_patches_id_seq'),
    cell              BIGINT NOT NULL,
    first_seen        DATE NOT NULL,
    last_seen         DATE NOT NULL,
    bare_m2           DOUBLE PRECISION NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('bare', 'covered', 'greened')),
    status_changed_at TIMESTAMP NOT NULL,
    status_changed_by TEXT NOT NULL,
    escalated_at      TIMESTAMP,                 -- bare too long: greening required
    version           BIGINT NOT NULL
);

CREATE SEQUENCE bare_patch_history_id_seq START 1;
CREATE TABLE bare_patch_history (
    id          BIGINT PRIMARY KEY DEFAULT nextval('bare_patch_history_id_seq'),
    patch_id    BIGINT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    changed_at  TIMESTAMP NOT NULL,
    changed_by  TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
