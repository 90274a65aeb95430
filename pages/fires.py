"""Satellite fire points: what was detected, what was dispatched to whom, and which days were observed."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui
from gridwatch.maps import cells_svg

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()

with ui.show_errors():
    summary = services.fire_summary(store, me)
    st.title(t("Satellite fire points"))
    if summary["demo"]:
        st.info(t("The fire points here are generated demo detections (演示火点) in the FIRMS format, not real "
                  "satellite data."))
    cols = st.columns(4)
    cols[0].metric(t("Detections in the region"), summary["in_region"])
    cols[1].metric(t("Dispatched"), summary["dispatched"])
    cols[2].metric(t("Incidents"), summary["incidents"])
    cols[3].metric(t("Fire-check tasks without an inspector"), summary["coverage_gaps"])
    if summary["not_dispatched"]:
        kept = "；".join(f"{t(reason)} {n}" for reason, n in summary["not_dispatched"].items())
        st.caption(t("Kept but not dispatched: {reasons}", reasons=kept))
    if summary["heat_source_checks"]:
        st.caption(t("Cells that keep burning, to verify as possible static heat sources (疑似固定热源 — 请核实): "
                     "{n}", n=summary["heat_source_checks"]))

    days = services.fire_days(store, me)
    left, right = st.columns([3, 2])
    with left:
        st.subheader(t("Detections per day"))
        if len(days):
            chart = days.assign(day=pd.to_datetime(days.day).dt.strftime("%m-%d")).set_index("day")
            st.bar_chart(chart[["dispatched"]].rename(columns={"dispatched": t("Dispatched")}), height=220)
            status = days.status.map({"fire": t("fire"), "observed": t("observed, no fire"),
                                      "not_observed": t("not observed")})
            counts = status.value_counts()
            unit = t("days")
            st.caption(" · ".join(f"{label} {n} {unit}" for label, n in counts.items()))
        else:
            st.caption(t("No fire points yet: load a FIRMS file with `python -m gridwatch fires ingest`."))
    with right:
        st.subheader(t("Cells with fires"))
        cells = services.region_cells(store, me)
        hot = services.fire_cells(store, me).set_index("cell").detections
        fills = ["#d62728" if c in hot.index else "#e3e3e3" for c in cells.cell]
        titles = [f"{c} · {tn or ''} · {vn or ''} · {int(hot.get(c, 0))}" for c, tn, vn in
                  zip(cells.cell, cells.township_name, cells.village_name)]
        st.markdown(cells_svg(list(cells.cell), fills, titles=titles, width=520), unsafe_allow_html=True)

    st.subheader(t("Fire-check tasks"))
    tasks = services.fire_tasks(store, me)
    if len(tasks):
        view = pd.DataFrame({
            t("Task"): ui.task_titles(tasks),
            t("State"): tasks.state.map(lambda s: t(s)),
            t("Priority"): tasks.priority,
            t("Township"): tasks.township,
            t("Village"): tasks.village,
            t("Assignee"): tasks.assignee.fillna("—") + tasks.coverage_gap.map({True: " ⚠", False: ""}),
            t("Due"): services.local_text(tasks.due_at, store=store),
        })
        st.dataframe(view, hide_index=True, height=360)
        st.caption(t("⚠ marks a task sent up the chain because no inspector covers its cell."))
