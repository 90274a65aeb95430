-- 0004_photos_and_drafts: report photos (original kept, hashed) and report drafts that survive a lost connection.

CREATE TABLE photos (
    sha256       TEXT PRIMARY KEY,
    task_id      BIGINT NOT NULL,
    uploaded_by  TEXT NOT NULL,
    uploaded_at  TIMESTAMP NOT NULL,
    file_name    TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    width        INTEGER,
    height       INTEGER,
    taken_at     TEXT,
    original     BLOB NOT NULL,
    preview      BLOB
);

CREATE TABLE report_drafts (
    task_id     BIGINT NOT NULL,
    author      TEXT NOT NULL,
    saved_at    TIMESTAMP NOT NULL,
    draft       TEXT NOT NULL,
    PRIMARY KEY (task_id, author)
);
