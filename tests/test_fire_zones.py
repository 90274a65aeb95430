"""Fire points in a published no-burn zone are flagged and dispatched with a higher priority."""

from __future__ import annotations

from tests.bad_inputs.make import FIRMS_HEADER, SQUARE

from gridwatch import services


def test_a_fire_inside_a_published_zone_is_flagged_and_urgent(demo_store, tmp_path):
    zone = tmp_path / "zone.geojson"
    zone.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "甲",'
                    ' "zone_type": "high_polluting_fuel"}, "geometry": {"type": "Polygon", "coordinates": ['
                    + str(SQUARE) + "]}}]}", encoding="utf-8")
    services.layer_load(demo_store, services.CLI, "no_burn_zones", zone, name="zone.geojson", publish=True)
    fires = tmp_path / "fires.csv"
    fires.write_text("\n".join([FIRMS_HEADER,
                                "34.4250,112.4300,320.5,1.0,1.0,2026-11-02,0530,A,80,6.1NRT,295.1,12.3,D",  # inside
                                "34.3000,112.3000,320.5,1.0,1.0,2026-11-02,0530,A,80,6.1NRT,295.1,12.3,D"]) + "\n",
                     encoding="utf-8")
    result = services.ingest_fire_file(demo_store, services.CLI, fires)
    assert result["accepted"] == 2 and result["tasks_created"] == 2
    flags = demo_store.query_df("SELECT latitude, in_no_burn_zone FROM fire_points WHERE acq_time >= '2026-11-02'"
                                " ORDER BY latitude")
    assert list(flags.in_no_burn_zone) == [False, True]
    tasks = demo_store.query_df(
        "SELECT t.priority, i.in_no_burn_zone FROM tasks t JOIN incidents i ON CAST(i.key AS VARCHAR) = t.source_key"
        " WHERE t.kind = 'fire_check' AND i.acq_time >= '2026-11-02' ORDER BY i.in_no_burn_zone")
    assert list(tasks.in_no_burn_zone) == [False, True]
    assert tasks.priority.iloc[1] > tasks.priority.iloc[0]
