"""Overview: the region's grid, its townships and villages, and the coverage report."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui
from gridwatch.maps import PALETTE, cells_svg

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()

with ui.show_errors():
    stats = services.grid_stats(store, me)
    st.title(t("Grid overview: {name}", name=stats["region_name"]))
    demo = services.is_demo(store)
    if demo:
        st.info(t("Townships, villages and people here are generated demo data (演示数据), not real boundaries."))

    cols = st.columns(4)
    cols[0].metric(t("Cells"), f"{stats['cells']:,}")
    cols[1].metric(t("Townships"), stats["units"].get("township", 0))
    cols[2].metric(t("Villages"), stats["units"].get("village", 0))
    cols[3].metric(t("H3 resolution"), stats["resolution"],
                   help=t("Mean cell area {area} km²", area=stats["cell_area_km2"]))

    report = services.coverage(store, me)
    cells = services.region_cells(store, me)
    gap_cells = set(report["cells_without_inspector"]["cells"])
    townships = sorted(cells.township_code.dropna().unique())
    colour = {code: PALETTE[i % len(PALETTE)] for i, code in enumerate(townships)}
    fills = ["#d62728" if c in gap_cells else colour.get(tc, "#bbbbbb") for c, tc in zip(cells.cell, cells.township_code)]
    titles = [f"{c} · {tn or ''} · {vn or ''}" for c, tn, vn in zip(cells.cell, cells.township_name, cells.village_name)]

    left, right = st.columns([3, 2])
    with left:
        st.subheader(t("Cells by township"))
        st.caption(t("Red cells have no inspector."))
        st.markdown(cells_svg(list(cells.cell), fills, titles=titles, width=720), unsafe_allow_html=True)
    with right:
        st.subheader(t("Coverage report"))
        gaps = report["cells_without_inspector"]
        st.metric(t("Cells without an inspector"), gaps["count"])
        if gaps["by_township"]:
            st.table(  # st.table renders markdown in its cells: names shown as typed
                pd.DataFrame(gaps["by_township"]).map(ui.md).rename(
                    columns={"code": t("Code"), "name": t("Township"), "cells": t("Cells")}).set_index(t("Code"))
            )
        no_leader = t("Units without a grid leader")
        st.markdown(f"**{no_leader}** ({len(report['units_without_grid_leader'])})")
        if report["units_without_grid_leader"]:
            st.table(
                pd.DataFrame(report["units_without_grid_leader"]).map(ui.md).assign(
                    level=lambda d: d.level.map(lambda v: t(v))).rename(
                    columns={"code": t("Code"), "name": t("Name"), "level": t("Level")}).set_index(t("Code"))
            )
        no_unit = t("People without a unit")
        st.markdown(f"**{no_unit}** ({len(report['people_without_unit'])})")
        if report["people_without_unit"]:
            st.table(
                pd.DataFrame(report["people_without_unit"]).map(ui.md).rename(
                    columns={"person_key": t("Key"), "name": t("Name")}).set_index(t("Key"))
            )
