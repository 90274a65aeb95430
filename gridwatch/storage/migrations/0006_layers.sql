-- 0006_layers: versions of every spatial layer (no-burn zones, coal sale points, heat supply, bare land), their
-- accepted features, what the published version of a layer marks on the grid, and the publication history.

-- One row per upload of a layer file; at most one published version per kind.
CREATE TABLE layer_versions (
    kind          TEXT NOT NULL,
    version       INTEGER NOT NULL,            -- 1, 2, ... per kind
    uploaded_by   TEXT NOT NULL,
    uploaded_at   TIMESTAMP NOT NULL,
    file_name     TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    crs           TEXT NOT NULL DEFAULT '',    -- the CRS the file was read in (EPSG:4490, gcj02, ...)
    rows          BIGINT NOT NULL,             -- accepted features
    rejected      BIGINT NOT NULL DEFAULT 0,
    repaired      BIGINT NOT NULL DEFAULT 0,
    warnings      TEXT NOT NULL DEFAULT '[]',  -- JSON list of English remarks
    rejects       TEXT NOT NULL DEFAULT '[]',  -- JSON list of rejected rows (line, reason, message, raw)
    columns       TEXT NOT NULL DEFAULT '{}',  -- JSON {attribute column: dtype}, to restore the frame's types
    options       TEXT NOT NULL DEFAULT '{}',  -- JSON of the reader options used
    published     BOOLEAN NOT NULL DEFAULT FALSE,
    published_at  TIMESTAMP,
    published_by  TEXT,
    PRIMARY KEY (kind, version)
);

-- The accepted features of each version, so any version can be published again later.
CREATE TABLE layer_features (
    kind        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    feature_no  BIGINT NOT NULL,               -- 0-based, in file order
    attributes  TEXT NOT NULL DEFAULT '{}',    -- JSON object of the kind's attribute columns
    geometry    BLOB,                          -- WKB in WGS84 (longitude, latitude), NULL for per-cell kinds
    cell        BIGINT,                        -- H3 cell for per-cell kinds, else NULL
    PRIMARY KEY (kind, version, feature_no)
);

-- Cells a published layer marks (no-burn zones: every cell inside or touching a zone, by zone type).
-- border = TRUE when a zone boundary crosses the cell, so a point there is decided by the exact polygon.
CREATE TABLE layer_cell_flags (
    kind        TEXT NOT NULL,
    flag        TEXT NOT NULL,                 -- e.g. high_polluting_fuel, straw_burning
    cell        BIGINT NOT NULL,
    border      BOOLEAN NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (kind, flag, cell)
);

-- Every publication (first publication, re-publication, restore) with the differences it made.
CREATE SEQUENCE layer_publications_id_seq START 1;
CREATE TABLE layer_publications (
    id            BIGINT PRIMARY KEY DEFAULT nextval('layer_publications_id_seq'),
    kind          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    previous      INTEGER,                     -- the version published before, if any
    published_at  TIMESTAMP NOT NULL,
    published_by  TEXT NOT NULL,
    action        TEXT NOT NULL,               -- publish | restore
    summary       TEXT NOT NULL DEFAULT '{}'   -- JSON of the differences (cells added/removed, tasks opened/closed)
);
