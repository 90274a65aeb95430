"""The layer metrics of the reports: boilers still to close inside heat-supply radii, bare land left and greened."""

from __future__ import annotations

import datetime as dt

from gridwatch import services


def test_boilers_and_bare_land_per_township(demo_store):
    # three boilers of 演示乡镇02 by hand: one to close, one closed, one not coal (never listed)
    cells = demo_store.query_df("SELECT cell FROM cells WHERE township_code = '410329-D02' ORDER BY cell LIMIT 3").cell
    demo_store.execute("DELETE FROM boilers")
    for i, (cell, status, listed) in enumerate(zip(cells, ("to_close", "closed", "to_close"), (True, True, False))):
        demo_store.execute(
            "INSERT INTO boilers (boiler_id, version, active, name, coal, unit_type, capacity_tph, lat, lng, cell,"
            " in_region, in_radius, listed, small, status) VALUES (?, 1, TRUE, ?, ?, 'boiler', 10, 34.4, 112.4, ?,"
            " TRUE, TRUE, ?, TRUE, ?)", [f"T{i}", f"锅炉{i}", listed, int(cell), listed, status])
    # bare land in 演示乡镇03: 1.5 km² bare, 0.25 km² covered, 2 km² greened on 2026-11-15 (in 11-11..11-20)
    cell = int(demo_store.scalar("SELECT min(cell) FROM cells WHERE township_code = '410329-D03'"))
    now = dt.datetime(2026, 11, 1)
    for pid, (m2, status) in enumerate(((1.5e6, "bare"), (0.25e6, "covered"), (2e6, "greened")), start=900):
        demo_store.execute("INSERT INTO bare_patches (id, cell, first_seen, last_seen, bare_m2, status,"
                           " status_changed_at, status_changed_by, version) VALUES (?, ?, ?, ?, ?, ?, ?, 't', 1)",
                           [pid, cell, now.date(), now.date(), m2, status, now])
    demo_store.execute("INSERT INTO bare_patch_history (patch_id, from_status, to_status, changed_at, changed_by)"
                       " VALUES (902, 'covered', 'greened', ?, 't')", [dt.datetime(2026, 11, 15, 2)])
    report = services.report_build(demo_store, services.CLI, kind="xun", date="2026-11-15", level="township")
    table = services.report_table(report)
    by_name = table.set_index("单位")
    assert by_name.loc["演示乡镇02", "供热半径内待关停锅炉"] == 1
    assert by_name.loc["演示乡镇01", "供热半径内待关停锅炉"] == 0
    assert by_name.loc["演示乡镇03", "未绿化裸地（平方公里）"] == 1.75
    assert by_name.loc["演示乡镇03", "本期完成绿化裸地（平方公里）"] == 2.0
    assert by_name.loc["演示乡镇02", "未绿化裸地（平方公里）"] == 0.0
    # the previous 旬 (11-01..11-10) greened nothing
    before = services.report_table(services.report_build(demo_store, services.CLI, kind="xun", date="2026-11-05",
                                                         level="township")).set_index("单位")
    assert before.loc["演示乡镇03", "本期完成绿化裸地（平方公里）"] == 0.0
