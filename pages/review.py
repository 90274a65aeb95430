"""Leaders: the status of every cell in their units, and reports to verify or send back (four eyes)."""

import json
import uuid

import pandas as pd
import streamlit as st

from gridwatch import maps, services, ui

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
LABELS = {"clean": t("cells clean"), "not_observed": t("cells not visited this week"), "active": t("cells active"),
          "overdue": t("cells overdue")}
STATUS = {"clean": t("clean"), "not_observed": t("not visited this week"), "active": t("active"),
          "overdue": t("overdue")}

ui.show_flash("review")
with ui.show_errors():
    st.title(t("Cell status and reports"))
    status = services.cell_status(store, me)
    counts = status.status.value_counts()
    cols = st.columns(4)
    for col, name in zip(cols, maps.STATUSES):
        col.metric(LABELS[name], int(counts.get(name, 0)))
    left, right = st.columns([3, 2])
    with left:
        st.caption(t("Green: clean · grey: not visited this week · orange: open tasks · red: overdue"))

        def cell_layers(view):
            data = maps.cell_layer_data(status.cell.to_numpy(), status.status_code.to_numpy(), view=view)
            return [maps.CellLayer(data, labels=[STATUS[s] for s in maps.STATUSES],
                                   colours=[maps.STATUS_COLOURS[s] for s in maps.STATUSES])]

        ui.leaflet_map("review-map", bounds=services.scope_bounds(store, me), layers=cell_layers)
    with right:
        st.subheader(t("Reports to verify"))
        queue = services.review_queue(store, me)
        if queue.empty:
            st.success(t("No reports are waiting."))
        for row in queue.itertuples():
            task = services.task_show(store, me, int(row.id))
            report = services.latest_report(task)
            with st.container(border=True):
                title = ui.md(ui.task_title(task))
                st.markdown(f"**{title}** · {ui.md(task['place'].get('village', ''))}")
                st.markdown(f"{t('Finding')}: **{t(report.get('finding', ''))}** · {ui.md(report.get('note', ''))}")
                flags = report.get("flags", [])
                if "gps_outside_cell" in flags:
                    st.warning(t("Reported from {m} m outside the cell.", m=int(report.get("outside_cell_m", 0))))
                elif "no_gps" in flags:
                    st.warning(t("Reported without a position."))
                else:
                    st.caption(t("Reported from inside the cell."))
                fix = report.get("gps")
                if fix:
                    accuracy = fix.get("accuracy_m")
                    where = t("Position {lat}, {lng}", lat=f"{fix['lat']:.5f}", lng=f"{fix['lng']:.5f}")
                    st.caption(where + (f" ± {accuracy:.0f} m" if accuracy else ""))
                for photo in report.get("photos", []):
                    preview = services.task_photo(store, me, photo["sha256"])
                    if preview:
                        st.image(preview, caption=photo["name"], width="stretch")
                note = st.text_input(t("Note (needed to send back)"), key=f"note-{row.id}")
                a, b = st.columns(2)
                seen = st.session_state.setdefault(f"seen-{row.id}", task["events"][-1]["id"])
                form = st.session_state.setdefault(f"form-{row.id}", uuid.uuid4().hex)
                for button, accept, done in ((a.button(t("Verify"), key=f"ok-{row.id}", type="primary",
                                                       width="stretch"), True, t("Verified and closed.")),
                                             (b.button(t("Send back"), key=f"no-{row.id}", width="stretch"), False,
                                              t("Sent back to the inspector."))):
                    if not button:
                        continue
                    with ui.show_errors():
                        try:
                            services.verify(store, me, int(row.id), accept=accept, note=note, seen_event_id=seen,
                                            idempotency_key=form)
                        finally:  # done, or changed by someone else: either way the next render reads it afresh
                            st.session_state.pop(f"seen-{row.id}", None)
                            st.session_state.pop(f"form-{row.id}", None)
                        ui.flash("review", done)
                        st.rerun()

    st.divider()
    board_tab, behind_tab, gaps_tab, visits_tab, kept_tab = st.tabs(
        [t("Task board"), t("Who is behind"), t("Coverage gaps"), t("Longest not visited"), t("Kept after a conflict")])
    with board_tab:
        f1, f2, f3, f4 = st.columns(4)
        state = f1.selectbox(t("State"), ["", *services.BOARD_STATES],
                             format_func=lambda s: t(s) if s else t("All open"), key="board-state")
        kind = f2.selectbox(t("Kind"), ["", *services.TASK_KINDS],
                            format_func=lambda k: t(k) if k else t("All kinds"), key="board-kind")
        villages = services.leader_villages(store, me)
        village = f3.selectbox(t("Village"), [""] + list(villages), key="board-village",
                               format_func=lambda v: villages.get(v, t("All villages")))
        overdue_only = f4.toggle(t("Overdue only"), key="board-overdue")
        board = services.leader_board(store, me, state=state, kind=kind, village=village,
                                      overdue_only=overdue_only)
        st.caption(t("{n} tasks", n=len(board)))
        st.dataframe(pd.DataFrame({
            t("Overdue"): board.overdue.map({True: "🔴", False: ""}),
            t("Task"): ui.task_titles(board),
            t("State"): board.state.map(t),
            t("Village"): board.village,
            t("Assignee"): board.assignee.fillna("—") + board.coverage_gap.map({True: " ⚠", False: ""}),
            t("Due (Beijing time)"): services.local_text(board.due_at, store=store),
            t("Cell"): board.cell_id}), hide_index=True, width="stretch")
    with behind_tab:
        behind = services.people_behind(store, me)
        if behind.empty:
            st.success(t("Nobody has open tasks."))
        else:
            st.dataframe(pd.DataFrame({
                t("Person"): behind.assignee.fillna("—"), t("Open tasks"): behind.open,
                t("Overdue"): behind.overdue,
                t("Oldest overdue since (Beijing time)"): services.local_text(behind.oldest_overdue_due, store=store),
                t("Last report (Beijing time)"): services.local_text(behind.last_report, missing=t("never"),
                                                                     store=store)}),
                hide_index=True, width="stretch")
    with gaps_tab:
        gaps = services.scope_coverage(store, me)
        missing = gaps["cells_without_inspector"]
        c1, c2 = st.columns(2)
        c1.metric(t("Cells without an inspector"), missing["count"])
        c2.metric(t("Units without a grid leader"), len(gaps["units_without_grid_leader"]))
        if gaps["units_without_grid_leader"]:
            st.dataframe(pd.DataFrame(gaps["units_without_grid_leader"]).rename(
                columns={"code": t("Code"), "name": t("Name"), "level": t("Level")}).assign(
                **{t("Level"): lambda d: d[t("Level")].map(t)}), hide_index=True, width="stretch")
        if missing["by_village"]:
            st.dataframe(pd.DataFrame(missing["by_village"]).rename(
                columns={"code": t("Code"), "name": t("Village"), "cells": t("Cells")}), hide_index=True,
                width="stretch")
        missing_roles = [g for g in gaps["role_gaps"] if g["count"] and g["role"] != "grid_leader"]
        for gap in missing_roles:  # other roles of 一长三员 the local set-up requires
            st.caption(t("{level} without a {role}: {units}", level=t(gap["level"]), role=t(gap["role"]),
                         units="、".join(u["name"] for u in gap["units"][:30])))
        for c in gaps["conflicts"]:
            st.warning(t("{person} supervises their own work: supervisor of {supervised} and {role} of {place}.",
                         person=c["name"], supervised=c["supervised_name"] or c["supervised_place"],
                         role=t(c["role"]), place=c["place_name"] or c["place"]))
        if not missing["count"] and not gaps["units_without_grid_leader"] and not missing_roles:
            st.success(t("Every cell has an inspector and every unit a grid leader."))
    with visits_tab:
        st.caption(t("Routine patrols go first to the cells nobody has reported from for longest."))
        visits = services.cells_not_visited(store, me)
        st.dataframe(pd.DataFrame({
            t("Cell"): visits.cell_id, t("Village"): visits.village,
            t("Last visit (Beijing time)"): services.local_text(visits.last_visit, "%Y-%m-%d %H:%M",
                                                                missing=t("never"), store=store),
            t("Status"): visits.status.map(STATUS)}), hide_index=True, width="stretch")
    with kept_tab:
        st.caption(t("Input that arrived after someone else had already changed the task: nothing was applied, and "
                     "it is kept here for you to act on."))
        kept = services.task_conflicts(store, me)
        if kept.empty:
            st.success(t("No conflicting changes."))
        else:
            details = kept.detail.map(json.loads)
            st.dataframe(pd.DataFrame({
                t("Task"): ui.task_titles(kept),
                t("Person"): kept.actor, t("Wanted"): kept.wanted_state.map(t),
                t("Finding"): details.map(lambda d: d.get("finding") or "").map(lambda f: t(f) if f else ""),
                t("Note"): details.map(lambda d: d.get("note", "")),
                t("First changed by"): kept.first_actor + " · " + kept.first_state.map(t),
                t("At (Beijing time)"): services.local_text(kept.happened_at, store=store)}), hide_index=True,
                width="stretch")
