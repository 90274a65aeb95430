"""Leaders: the status of every cell in their units, and reports to verify or send back (four eyes)."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui
from gridwatch.maps import cells_svg

t = ui.t
store = ui.store()
me = ui.require_user()
COLOURS = {"clean": "#59a14f", "active": "#f28e2b", "overdue": "#d62728"}
LABELS = {"clean": t("cells clean"), "active": t("cells active"), "overdue": t("cells overdue")}
STATUS = {"clean": t("clean"), "active": t("active"), "overdue": t("overdue")}

flash = st.session_state.pop("review_flash", None)
if flash:
    st.success(flash)
with ui.show_errors():
    st.title(t("Cell status and reports"))
    status = services.cell_status(store, me)
    counts = status.status.value_counts()
    cols = st.columns(3)
    for col, name in zip(cols, ("clean", "active", "overdue")):
        col.metric(LABELS[name], int(counts.get(name, 0)))
    left, right = st.columns([3, 2])
    with left:
        st.caption(t("Green: clean · orange: open tasks · red: overdue"))
        st.markdown(cells_svg(list(status.cell_id), [COLOURS[s] for s in status.status],
                              titles=[f"{c} · {STATUS[s]}" for c, s in zip(status.cell_id, status.status)], width=640),
                    unsafe_allow_html=True)
    with right:
        st.subheader(t("Reports to verify"))
        queue = services.review_queue(store, me)
        if queue.empty:
            st.success(t("No reports are waiting."))
        for row in queue.itertuples():
            task = services.task_show(store, int(row.id))
            report = next(e for e in reversed(task["events"]) if e["to_state"] == "reported")["detail"]
            with st.container(border=True):
                st.markdown(f"**{task['title'] or t(task['kind'])}** · {task['place'].get('village', '')}")
                st.markdown(f"{t('Finding')}: **{t(report.get('finding', ''))}** · {report.get('note', '')}")
                flags = report.get("flags", [])
                if "gps_outside_cell" in flags:
                    st.warning(t("Reported from {m} m outside the cell.", m=int(report.get("outside_cell_m", 0))))
                elif "no_gps" in flags:
                    st.warning(t("Reported without a position."))
                else:
                    st.caption(t("Reported from inside the cell."))
                for photo in report.get("photos", []):
                    preview = services.task_photo(store, photo["sha256"])
                    if preview:
                        st.image(preview, caption=photo["name"], width="stretch")
                note = st.text_input(t("Note (needed to send back)"), key=f"note-{row.id}")
                a, b = st.columns(2)
                if a.button(t("Verify"), key=f"ok-{row.id}", type="primary", width="stretch"):
                    services.verify(store, me, int(row.id), accept=True, note=note)
                    st.session_state["review_flash"] = t("Verified and closed.")
                    st.rerun()
                if b.button(t("Send back"), key=f"no-{row.id}", width="stretch"):
                    services.verify(store, me, int(row.id), accept=False, note=note)
                    st.session_state["review_flash"] = t("Sent back to the inspector.")
                    st.rerun()
