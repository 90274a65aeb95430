-- 0018_static_heat_sources: the places heat-source checks added to the static heat source layer.
-- The layer itself (factories, kilns, flares; and the farmland layer) is stored as layer versions (0006); this
-- table records, per verified check that confirmed a static source, the layer version that added it, so that a
-- check is applied once and the layer's history names the task, who reported it and who verified it.
CREATE TABLE static_source_additions (
    task_id      BIGINT PRIMARY KEY,             -- the heat_source_check task whose report confirmed the source
    cell         BIGINT NOT NULL,                -- the task's cell (H3)
    version      INTEGER NOT NULL,               -- the static_heat_sources layer version that added it
    added_by     TEXT NOT NULL,                  -- who reported it (the inspector)
    verified_by  TEXT NOT NULL,                  -- who verified the report
    added_at     TIMESTAMP NOT NULL
);
