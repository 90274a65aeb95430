-- 0001_foundation: administrative units, the H3 grid and its owners, people and roles, audit log.
-- Written in the SQL both backends share (DuckDB with its spatial extension, PostgreSQL with PostGIS).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Administrative units: province > city > county > township > village.
CREATE TABLE units (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('province', 'city', 'county', 'township', 'village')),
    parent_code TEXT,
    source      TEXT NOT NULL DEFAULT '',
    is_demo     BOOLEAN NOT NULL DEFAULT FALSE,
    area_km2    DOUBLE PRECISION,
    geom        GEOMETRY
);

-- One row per H3 cell of the region's grid with its owning unit at every level.
CREATE TABLE cells (
    cell          BIGINT PRIMARY KEY,
    lat           DOUBLE PRECISION NOT NULL,
    lng           DOUBLE PRECISION NOT NULL,
    city_code     TEXT,
    county_code   TEXT,
    township_code TEXT,
    village_code  TEXT
);
CREATE INDEX cells_township ON cells (township_code);
CREATE INDEX cells_village ON cells (village_code);

-- Roles are data: what each role may do, and how it ranks in the responsibility chain.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    chain_order INTEGER NOT NULL,
    label_zh    TEXT NOT NULL,
    label_en    TEXT NOT NULL
);
CREATE TABLE role_grants (
    role   TEXT NOT NULL REFERENCES roles (name),
    action TEXT NOT NULL,
    PRIMARY KEY (role, action)
);

CREATE SEQUENCE people_id_seq START 1;
CREATE TABLE people (
    id          BIGINT PRIMARY KEY DEFAULT nextval('people_id_seq'),
    person_key  TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    phone       TEXT NOT NULL DEFAULT '',
    is_demo     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- A person holds a role on a unit (any level) or on one cell.
CREATE SEQUENCE assignments_id_seq START 1;
CREATE TABLE assignments (
    id          BIGINT PRIMARY KEY DEFAULT nextval('assignments_id_seq'),
    person_id   BIGINT NOT NULL REFERENCES people (id),
    role        TEXT NOT NULL REFERENCES roles (name),
    unit_code   TEXT,
    cell        BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK ((unit_code IS NULL) <> (cell IS NULL))
);
CREATE INDEX assignments_person ON assignments (person_id);
CREATE INDEX assignments_unit ON assignments (unit_code);
CREATE INDEX assignments_cell ON assignments (cell);

-- Append-only record of every change.
CREATE SEQUENCE audit_id_seq START 1;
CREATE TABLE audit_log (
    id      BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
    logged_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT '{}'
);

INSERT INTO roles (name, chain_order, label_zh, label_en) VALUES
    ('inspector',   10, '巡查员', 'Patrol inspector'),
    ('grid_member', 20, '网格员', 'Grid member'),
    ('grid_leader', 30, '网格长', 'Grid leader'),
    ('supervisor',  40, '监督员', 'Supervisor'),
    ('unit_head',   50, '主要负责人', 'Unit head'),
    ('gis_staff',   90, 'GIS 人员', 'GIS staff'),
    ('admin',       99, '管理员', 'Administrator');

INSERT INTO role_grants (role, action) VALUES
    ('inspector', 'task.work'), ('inspector', 'cell.view'),
    ('grid_member', 'task.work'), ('grid_member', 'cell.view'),
    ('grid_leader', 'task.work'), ('grid_leader', 'task.assign'), ('grid_leader', 'task.verify'), ('grid_leader', 'cell.view'), ('grid_leader', 'report.view'),
    ('supervisor', 'task.verify'), ('supervisor', 'cell.view'), ('supervisor', 'report.view'),
    ('unit_head', 'task.assign'), ('unit_head', 'task.verify'), ('unit_head', 'cell.view'), ('unit_head', 'report.view'),
    ('gis_staff', 'layer.load'), ('gis_staff', 'layer.publish'), ('gis_staff', 'boundary.load'), ('gis_staff', 'cell.view'),
    ('admin', 'people.manage'), ('admin', 'boundary.load'), ('admin', 'layer.load'), ('admin', 'layer.publish'), ('admin', 'cell.view'), ('admin', 'report.view'), ('admin', 'task.assign');
