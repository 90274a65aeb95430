"""Leaders: give work to inspectors — one task or many, every task of some cells, or a day's work split by cell."""

import datetime as dt
import uuid

import pandas as pd
import streamlit as st

from gridwatch import services, ui
from gridwatch.maps import PALETTE, cells_svg

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
INDENT = "\u3000"  # an ideographic space: villages visibly under their township in a picker
# touch-sized tabs, pickers and date input (Streamlit 1.67 draws selects as react-aria combo boxes, which
# ui.tablet_style's select rule does not reach)
st.markdown('<style>div[data-testid="stTab"], div[data-testid="stSelectbox"] div[role="group"],'
            ' div[data-testid="stMultiSelect"] div[role="group"], div[data-testid="stDateInput"] input'
            " { min-height: 48px; }</style>", unsafe_allow_html=True)

flash = st.session_state.pop("assign_flash", None)
if flash:
    st.success(flash)
# values a run asked for (a widget keeps its value once drawn in a run): set before any widget is drawn
for widget, value in st.session_state.pop("assign_next", {}).items():
    st.session_state[widget] = value


def _next_run(**values) -> None:
    """Give widgets these values from the next run on (which the browser then shows too)."""
    st.session_state.setdefault("assign_next", {}).update(values)


def _known(chosen: list, labels: dict, widget: str) -> list:
    """The chosen options still offered; any others (a task started or changed meanwhile) leave the picker.

    A picker remembers a choice by its label, so a choice whose label changed since the browser drew it comes
    back as that old text: it is dropped, and the picker shows the choices that are left.
    """
    kept = [c for c in chosen if c in labels]
    if len(kept) < len(chosen):
        _next_run(**{widget: kept})
        st.rerun()
    return kept


def _done(result: dict, emptied: dict) -> None:
    """Say what happened after the rerun, with the form's pickers and note emptied (their work is done)."""
    st.session_state["assign_flash"] = t("{n} tasks given to {name}; {same} were already theirs.",
                                         n=result["reassigned"], name=result["name"], same=result["unchanged"])
    _next_run(**emptied)
    st.rerun()


with ui.show_errors():
    st.title(t("Assign work"))
    people = services.assign_people(store, me)
    units = services.assign_units(store, me)
    depth = {"city": 0, "county": 0, "township": 1, "village": 2}
    unit_labels = {u.code: INDENT * depth.get(u.level, 0) + u.name for u in units.itertuples()}
    person_labels = {p.person_key: f"{p.name} · {t(p.role)} · {p.unit_name}" for p in people.itertuples()}
    keys = list(people.person_key)
    choose = t("Choose…")

    tab_tasks, tab_cells, tab_split, tab_new = st.tabs([t("By task"), t("By cell"), t("Split a day"),
                                                        t("New task")])

    with tab_tasks:
        unit = st.selectbox(t("Unit"), [""] + list(units.code), key="assign_unit",
                            format_func=lambda c: unit_labels.get(c, c) if c else t("All units"))
        tasks = services.assign_tasks(store, me, unit=unit or None)
        st.caption(t("{n} tasks nobody has started yet", n=len(tasks)))
        due = t("due")
        due_text = services.local_text(tasks.due_at, store=store).tolist()  # one pass over the column
        task_labels = {int(r.id): f"{ui.task_title(r)} · {r.village or ''} · {r.assignee or '—'} · {due} {when}"
                       for r, when in zip(tasks.itertuples(), due_text)}
        st.dataframe(pd.DataFrame({
            t("Task"): ui.task_titles(tasks),
            t("Village"): tasks.village,
            t("State"): [t(s) for s in tasks.state],
            t("Assignee"): tasks.assignee.fillna("—"),
            t("Due"): services.local_text(tasks.due_at, store=store),
        }), hide_index=True, width="stretch", height=260)
        chosen = _known(st.multiselect(t("Tasks to give"), list(task_labels), placeholder=choose,
                                       key="assign_task_ids", format_func=lambda i: task_labels.get(i, str(i))),
                        task_labels, "assign_task_ids")
        to = st.selectbox(t("To"), [""] + keys, key="assign_to",
                          format_func=lambda k: person_labels.get(k, k) if k else t("Choose a person"))
        note = st.text_input(t("Note"), key="assign_note")
        if st.button(t("Give the tasks"), key="assign_go", type="primary", width="stretch",
                     disabled=not chosen or not to):
            with ui.show_errors():
                _done(services.assign_reassign(store, me, chosen, to, note=note),
                      {"assign_task_ids": [], "assign_note": ""})

    with tab_cells:
        every = tasks if not unit else services.assign_tasks(store, me)
        per_cell = every.groupby("cell_id", sort=True).agg(n=("id", "size"), village=("village", "first"))
        cell_labels = {c: t("{village} · {cell} · {n} tasks", village=r.village or "", cell=c, n=int(r.n))
                       for c, r in per_cell.iterrows()}
        villages = st.multiselect(t("Every cell of these units"), list(units.code), key="cells_units",
                                  format_func=lambda c: unit_labels.get(c, c), placeholder=choose)
        picked = _known(st.multiselect(t("Cells with tasks"), list(cell_labels), key="cells_ids", placeholder=choose,
                                       format_func=lambda c: cell_labels.get(c, str(c))), cell_labels, "cells_ids")
        cells = set(picked)
        for code in villages:
            cells |= set(services.region_cells(store, me, unit_code=code).cell)
        n_tasks = int(per_cell.n.reindex(sorted(cells)).fillna(0).sum())
        st.caption(t("{cells} cells, {n} tasks nobody has started", cells=len(cells), n=n_tasks))
        to_cells = st.selectbox(t("To"), [""] + keys, key="cells_to",
                                format_func=lambda k: person_labels.get(k, k) if k else t("Choose a person"))
        note_cells = st.text_input(t("Note"), key="cells_note")
        if st.button(t("Give every task of these cells"), key="cells_go", type="primary", width="stretch",
                     disabled=not cells or not to_cells):
            with ui.show_errors():
                _done(services.assign_cells(store, me, sorted(cells), to_cells, note=note_cells),
                      {"cells_units": [], "cells_ids": [], "cells_note": ""})

    with tab_split:
        today = services.today(store=store)
        day = st.date_input(t("Day"), value=today, key="split_day")
        split_unit = st.selectbox(t("Unit"), [""] + list(units.code), key="split_unit",
                                  format_func=lambda c: unit_labels.get(c, c) if c else t("All units"))
        available = _known(st.multiselect(t("Available inspectors"), keys, placeholder=choose, key="split_people",
                                          format_func=lambda k: person_labels.get(k, k)), person_labels, "split_people")
        st.caption(t("The tasks due by the end of the day (overdue ones too) that nobody has started are divided "
                     "by cell into groups of neighbouring cells, one per person, with about the same number of "
                     "tasks each."))
        inputs = (str(day), split_unit, tuple(available))
        if st.button(t("Preview the split"), key="split_preview", width="stretch", disabled=not available):
            with ui.show_errors():
                st.session_state["split_plan"] = (inputs, services.assign_split_preview(
                    store, me, day if isinstance(day, dt.date) else today, available, unit=split_unit or None))
        saved = st.session_state.get("split_plan")
        if saved and saved[0] == inputs:
            plan = saved[1]
            if plan.tasks.empty:
                st.info(t("No tasks nobody has started are due by the end of this day."))
            else:
                st.subheader(t("Plan for {day}", day=plan.day))
                colour = t("Colour")
                table = pd.DataFrame({
                    t("Person"): plan.people.name,
                    t("Cells"): plan.people.cells,
                    t("Tasks"): plan.people.tasks,
                    colour: [PALETTE[g % len(PALETTE)] for g in plan.people.group],
                })
                st.dataframe(table.style.map(lambda c: f"background-color: {c}; color: {c}", subset=[colour]),
                             hide_index=True, width="stretch")
                # the planned cells in their person's colour, on the rest of the unit (or the chosen one) in grey
                planned = plan.tasks.drop_duplicates("cell_id").set_index("cell_id")
                top = split_unit or next(c for c, p in zip(units.code, units.parent_code) if p not in set(units.code))
                ground = services.region_cells(store, me, unit_code=top)
                ids = list(dict.fromkeys([*ground.cell, *planned.index]))
                group = planned.group.reindex(ids)
                st.markdown(cells_svg(ids, [PALETTE[int(g) % len(PALETTE)] if g == g else "#e3e3e3" for g in group],
                                      titles=[f"{c} · {n}" if n == n else c
                                              for c, n in zip(ids, planned.name.reindex(ids))], width=560),
                            unsafe_allow_html=True)
                note_split = st.text_input(t("Note"), key="split_note")
                if st.button(t("Apply the plan"), key="split_apply", type="primary", width="stretch"):
                    with ui.show_errors():
                        result = services.assign_split_apply(store, me, plan, note=note_split)
                        st.session_state.pop("split_plan", None)
                        st.session_state["assign_flash"] = t(
                            "Plan applied: {n} tasks moved, {same} stayed with their person, {skipped} had been "
                            "started meanwhile.", n=result["reassigned"], same=result["unchanged"],
                            skipped=result["skipped"])
                        st.rerun()

    with tab_new:
        # a task made by hand for a cell or a supervised object in scope, given to a person (or to whoever the
        # chain names for the cell); one submission key per form, so a double tap makes one task
        form = st.session_state.setdefault("new_key", uuid.uuid4().hex)
        new_kind = st.selectbox(t("Kind"), list(services.MANUAL_KINDS), key="new_kind", format_func=t)
        new_title = st.text_input(t("What is to be done"), key="new_title", max_chars=120)
        where = st.segmented_control(t("Where"), ["cell", "object"], default="cell", key="new_where",
                                     format_func=lambda w: t("A cell") if w == "cell" else t("A supervised object"))
        new_cell = new_object = None
        if where == "object":
            objects = services.intake_objects(store, me)
            object_labels = dict(zip(objects.object_key, objects.label))
            new_object = st.selectbox(t("Object"), [""] + list(objects.object_key), key="new_object",
                                      format_func=lambda k: object_labels.get(k, k) if k else t("Choose…"))
        else:
            new_unit = st.selectbox(t("Unit"), [""] + list(units.code), key="new_unit",
                                    format_func=lambda c: unit_labels.get(c, c) if c else t("Choose…"))
            cells_of_unit = list(services.region_cells(store, me, unit_code=new_unit).cell) if new_unit else []
            new_cell = st.selectbox(t("Cell"), [""] + cells_of_unit, key="new_cell",
                                    format_func=lambda c: c or t("Choose…"))
        chain = t("The cell's responsible person")
        new_to = st.selectbox(t("To"), [""] + keys, key="new_to",
                              format_func=lambda k: person_labels.get(k, k) if k else chain)
        new_note = st.text_input(t("Note"), key="new_note")
        if st.button(t("Create the task"), key="new_go", type="primary", width="stretch",
                     disabled=not new_title.strip() or not (new_cell or new_object)):
            with ui.show_errors():
                made = services.create_task(store, me, kind=new_kind, title=new_title, cell=new_cell or None,
                                            object_key=new_object or None, person_key=new_to or None,
                                            note=new_note, key=form)
                st.session_state.pop("new_key", None)
                st.session_state["assign_flash"] = t("Task {task} created for {person}.", task=made["task_id"],
                                                     person=(made["assignee"] or {}).get("name") or t("nobody yet"))
                _next_run(new_title="", new_note="", new_cell="", new_object="", new_to="")
                st.rerun()
