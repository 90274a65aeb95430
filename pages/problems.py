"""The problem register (问题台账): problems in scope with filters, one problem's history, and the steps the signed-in
person may take (hand over, start, apply to close with photos, check on site, dismiss)."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
STATES, CATEGORIES = services.PROBLEM_STATE_LABELS, services.PROBLEM_CATEGORY_LABELS

ui.show_flash("problems")
with ui.show_errors():
    st.title(t("Problem register"))
    f1, f2, f3, f4 = st.columns(4)
    state = f1.selectbox(t("State"), ["", *services.PROBLEM_STATES], key="problem-state",
                         format_func=lambda s: t(STATES[s]) if s else t("All states"))
    category = f2.selectbox(t("Category"), ["", *services.PROBLEM_CATEGORIES], key="problem-category",
                            format_func=lambda c: t(CATEGORIES[c]) if c else t("All categories"))
    overdue = f3.toggle(t("Overdue only"), key="problem-overdue")
    repeat = f4.toggle(t("Repeats only (屡查屡犯)"), key="problem-repeat")
    page = services.problems_table(store, me, state=state or None, category=category or None,
                                   overdue=True if overdue else None, repeat=True if repeat else None, limit=200)
    rows = pd.DataFrame(page["problems"])
    st.caption(t("{n} problems", n=page["total"]))
    if rows.empty:
        st.info(t("No problems match."))
        st.stop()
    st.dataframe(pd.DataFrame({
        t("Problem"): rows.id,
        t("Overdue"): rows.overdue.map({True: "🔴", False: ""}),
        t("Category"): rows.category.map(lambda c: t(CATEGORIES[c])),
        t("State"): rows.state.map(lambda s: t(STATES[s])),
        t("Repeat of"): rows.repeat_of.map(lambda r: "" if r is None or pd.isna(r) else t("repeat of {id}", id=int(r))),
        t("Responsible party"): rows.party_name.fillna(""),
        t("Followed by"): rows.assignee.fillna("—"),
        t("Deadline (Beijing time)"): services.local_text(rows.deadline_at, missing=t("none"), store=store),
        t("Cell"): rows.cell}), hide_index=True, width="stretch")

    chosen = st.selectbox(t("Problem"), rows.id.tolist(), key="problem-chosen",
                          format_func=lambda i: t("Problem {id}", id=i))
    problem = services.problem_show(store, me, int(chosen))
    st.subheader(t("Problem {id}", id=problem["id"]) + f" · {t(CATEGORIES[problem['category']])} · {t(STATES[problem['state']])}")
    place = problem["place"]
    st.markdown(t("Found by task {task} · {village}", task=problem["finding_task_id"],
                  village=place.get("village") or ""))
    if problem["repeat_of"] is not None:
        st.warning(t("Repeat (屡查屡犯): found again after problem {id}.", id=problem["repeat_of"]))
    if problem["overdue"]:
        st.error(t("Rectification is overdue."))
    history = pd.DataFrame(problem["events"])
    st.dataframe(pd.DataFrame({
        t("When (Beijing time)"): services.local_text(history.happened_at, store=store),
        t("Who"): history.actor,
        t("Step"): history.to_state.map(lambda s: t(STATES[s])),
        t("Note"): history.detail.map(lambda d: d.get("note", ""))}), hide_index=True, width="stretch")

    actions = services.problem_actions(store, me, int(problem["id"]))
    note = st.text_input(t("Note"), key=f"problem-note-{problem['id']}") if actions else ""
    pid = int(problem["id"])
    if "hand_over" in actions:
        kinds = {"enterprise": t("Enterprise"), "unit": t("Unit"), "person": t("Person")}
        kind = st.radio(t("Who must fix it"), list(kinds), format_func=kinds.get, horizontal=True,
                        key=f"party-kind-{pid}")
        name = st.text_input(t("Name (enterprise), unit code, or person key"), key=f"party-name-{pid}")
        if st.button(t("Hand over (交办)"), type="primary", width="stretch", key=f"assign-{pid}"):
            services.problem_assign(store, me, pid, party_kind=kind, party_name=name, person_key=name,
                                    unit=name, note=note)
            ui.flash("problems", t("Handed over."))
            st.rerun()
    if "start" in actions and st.button(t("Start rectification"), width="stretch", key=f"start-{pid}"):
        services.problem_start(store, me, pid, note=note)
        ui.flash("problems", t("Rectification started."))
        st.rerun()
    if "apply_close" in actions:
        photos = st.file_uploader(t("Photos of the rectified place"), accept_multiple_files=True,
                                  type=["jpg", "jpeg", "png", "heic"], key=f"photos-{pid}")
        fix = ui.gps_button(f"problem-gps-{pid}")
        if st.button(t("Apply to close (申请销号)"), type="primary", width="stretch", key=f"rectified-{pid}"):
            services.problem_rectified(store, me, pid, note=note, photos=[(p.name, p.getvalue()) for p in photos or []],
                                       fix=services.Fix(fix["lat"], fix["lng"], fix.get("accuracy")) if fix else None)
            ui.flash("problems", t("Applied to close."))
            st.rerun()
    if "check" in actions:
        fix = ui.gps_button(f"problem-check-gps-{pid}")
        a, b = st.columns(2)
        for column, passed, done in ((a, True, t("Checked and closed.")), (b, False, t("Returned for rectification."))):
            label = t("Checked on site: close (销号)") if passed else t("Checked on site: return (退回)")
            if column.button(label, type="primary" if passed else "secondary", width="stretch",
                             key=f"check-{passed}-{pid}"):
                services.problem_check(store, me, pid, passed=passed, note=note,
                                       fix=services.Fix(fix["lat"], fix["lng"], fix.get("accuracy")) if fix else None)
                ui.flash("problems", done)
                st.rerun()
    if "dismiss" in actions and st.button(t("Dismiss (raised in error)"), width="stretch", key=f"dismiss-{pid}"):
        services.problem_dismiss(store, me, pid, note=note)
        ui.flash("problems", t("Dismissed."))
        st.rerun()
