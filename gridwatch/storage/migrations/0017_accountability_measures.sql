-- 0017_accountability_measures: the measures leaders issue (通报, 约谈, 问责, 经济处罚, 行政处罚), as issued.
-- The plans name the measures and give no thresholds, so a measure is a leader's decision, recorded with who issued
-- it, on whom (a unit, and a person where one is named), when (the Beijing date of the document), why, and the
-- document number (文号). Rows are only appended: a correction is a new row of kind 'revocation' naming the row it
-- revokes, never a change. Each row is also an audit_log entry written in the same transaction.
-- Times are UTC, stored without a time zone (as everywhere in gridwatch); dates are Beijing calendar dates.
CREATE SEQUENCE accountability_measures_id_seq START 1;
CREATE TABLE accountability_measures (
    id           BIGINT PRIMARY KEY DEFAULT nextval('accountability_measures_id_seq'),
    kind         TEXT NOT NULL CHECK (kind IN ('notice', 'interview_grid_leader', 'interview_principal',
                                               'interview_deputy', 'accountability', 'economic_penalty',
                                               'administrative_penalty', 'revocation')),
    unit_code    TEXT NOT NULL,                -- the unit the measure concerns
    unit_path    TEXT NOT NULL,                -- '/province/…/unit/': its lineage when recorded, for scope
    unit_name    TEXT NOT NULL,
    person_id    BIGINT,                       -- the person named, if any
    person_name  TEXT NOT NULL DEFAULT '',     -- as the person was named then
    person_role  TEXT NOT NULL DEFAULT '',     -- the role the person held on the unit (grid_leader, unit_head)
    issued_on    DATE NOT NULL,                -- the date of the document (Beijing calendar)
    document_no  TEXT NOT NULL,                -- 文号 ('' only for a revocation without a document of its own)
    reason       TEXT NOT NULL,
    amount_yuan  DOUBLE PRECISION,             -- an economic penalty's amount, as the document gives it
    period_kind  TEXT,                         -- the report period the measure rests on, if any
    period_start DATE,
    period_end   DATE,
    task_ids     TEXT NOT NULL DEFAULT '[]',   -- JSON list of the task ids it rests on
    fire_keys    TEXT NOT NULL DEFAULT '[]',   -- JSON list of the fire points (detection keys) it rests on
    revokes      BIGINT UNIQUE,                -- the measure a revocation revokes (each at most once)
    issued_by    TEXT NOT NULL,                -- the signed-in user who recorded it, or system:<name>
    recorded_at  TIMESTAMP NOT NULL,
    CHECK ((kind = 'revocation') = (revokes IS NOT NULL)),
    CHECK (kind = 'revocation' OR document_no <> ''),
    CHECK ((period_start IS NULL) = (period_end IS NULL))
);
CREATE INDEX accountability_measures_unit ON accountability_measures (unit_code);

-- unit heads issue measures on the units below theirs; administrators on the units of their region
INSERT INTO role_grants (role, action) VALUES
    ('unit_head', 'accountability.record'), ('admin', 'accountability.record');
