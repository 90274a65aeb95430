-- 0021_intake_photos: the photos that came with the work itself, not with a report on it: an alarm's photos
-- (POST /api/v1/alarms as multipart) and an inspector's 随手拍. The photos live in `photos` (content-addressed,
-- stored once); this table links each to the task it opened, in the order sent, and names the channel.
CREATE TABLE intake_photos (
    task_id    BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('alarm', 'sighting')),
    added_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (task_id, sha256)
);
