"""Administrators: people with their roles and units, giving and taking roles, a people CSV, the coverage check."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
INDENT = "\u3000"  # an ideographic space: keeps villages visibly under their township in a picker

flash = st.session_state.pop("people_flash", None)
if flash:
    st.success(flash)
for warning in st.session_state.pop("people_warnings", []):
    st.warning(warning)


def conflict_text(c: dict) -> str:
    """One person supervising their own work, as a sentence."""
    return t("{person} supervises their own work: supervisor of {supervised} and {role} of {place}.",
             person=c["name"], supervised=c["supervised_name"] or c["supervised_place"], role=t(c["role"]),
             place=c["place_name"] or c["place"])


def people_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The people table as shown: translated headers and role names."""
    return pd.DataFrame({
        t("Person"): df.name,
        t("Key"): df.person_key,
        t("Phone"): df.phone,
        t("Role"): [t(r) if r else "" for r in df.role],
        t("Unit"): df.unit_name,
        t("Part of"): df.parent_name,
        t("Cell"): df.cell,
    })


with ui.show_errors():
    st.title(t("People and roles"))
    people = services.admin_people(store, me)
    units = services.admin_units(store, me)
    unit_names = dict(zip(units.code, units.name))
    unit_labels = {
        u.code: INDENT * int(u.depth) + u.name + (f"（{u.parent_name}）" if u.depth >= 2 and u.parent_name else "")
        for u in units.itertuples()
    }
    tab_people, tab_assign, tab_import, tab_coverage, tab_backup = st.tabs(
        [t("People"), t("Assign roles"), t("Import CSV"), t("Coverage report"), t("Backup")])

    with tab_people:
        chosen = st.selectbox(t("Unit"), [""] + list(units.code), key="people_unit",
                              format_func=lambda c: unit_labels.get(c, c) if c else t("All units"))
        shown = services.admin_people(store, me, unit_code=chosen) if chosen else people
        st.caption(t("{people} people, {roles} roles", people=shown.person_key.nunique(),
                     roles=int(shown.assignment_id.notna().sum())))
        st.dataframe(people_frame(shown), hide_index=True, width="stretch")
        with st.expander(t("Add a person")):
            key = st.text_input(t("Key"), key="new_key", help=t("A unique id, e.g. the staff number."))
            name = st.text_input(t("Person"), key="new_name")
            phone = st.text_input(t("Phone"), key="new_phone")
            if st.button(t("Save person"), key="add_person", type="primary", width="stretch"):
                with ui.show_errors():
                    saved = services.admin_add_person(store, me, person_key=key, name=name, phone=phone)
                    st.session_state["people_flash"] = t("Saved {name} ({key}).", name=saved["name"],
                                                         key=saved["person_key"])
                    st.rerun()

    with tab_assign:
        names = people.drop_duplicates("person_key").set_index("person_key")["name"].to_dict()
        without_role = set(people.person_key[people.role == ""])
        keys = sorted(names, key=lambda k: (k not in without_role, k))  # people without a role first
        no_role = t("no role yet")
        person = st.selectbox(t("Person"), keys, key="assign_person",
                              format_func=lambda k: f"{names[k]} · {k}" + (f" · {no_role}" * (k in without_role)))
        roles = services.admin_roles()
        role = st.selectbox(t("Role"), roles, key="assign_role", format_func=t)
        unit = st.selectbox(t("Unit"), list(units.code), key="assign_unit",
                            format_func=lambda c: unit_labels.get(c, c))
        if st.button(t("Assign"), key="assign", type="primary", width="stretch",
                     disabled=person is None or unit is None):
            with ui.show_errors():
                done = services.admin_assign(store, me, person_key=person, role=role, unit_code=unit)
                filled = {"person": names[person], "role": t(role), "unit": unit_names.get(unit, unit)}
                st.session_state["people_flash"] = (t("{person} is now {role} of {unit}.", **filled) if done["added"]
                                                    else t("{person} already is {role} of {unit}.", **filled))
                st.session_state["people_warnings"] = [conflict_text(c) for c in done["conflicts"]]
                st.rerun()
        if person is not None:
            held = people[(people.person_key == person) & people.assignment_id.notna()]
            st.subheader(t("Roles of {name}", name=names[person]))
            if held.empty:
                st.caption(t("No roles yet."))
            for row in held.itertuples():
                place = ui.md(row.unit_name) + (f" · {row.cell}" if row.cell else "")
                text_col, button_col = st.columns([3, 1], vertical_alignment="center")
                text_col.markdown(f"**{t(row.role)}** · {place}")
                if button_col.button(t("Remove"), key=f"unassign-{row.assignment_id}", width="stretch"):
                    with ui.show_errors():
                        services.admin_unassign(store, me, int(row.assignment_id))
                        st.session_state["people_flash"] = t("Removed: {person} as {role} of {unit}.",
                                                             person=names[person], role=t(row.role), unit=place)
                        st.rerun()

    with tab_import:
        result = st.session_state.pop("people_import", None)
        if result:
            st.success(t("Imported {file}: {people} new people, {assignments} new roles, "
                         "{unchanged} roles already held.", **result))
            for conflict in result.get("conflicts", []):
                st.warning(conflict_text(conflict))
        st.markdown(t("One row per role a person holds, with either unit_code or cell (an H3 id); "
                      "a row without role, unit and cell adds the person only. The columns:"))
        st.code(",".join(services.admin_csv_columns()), language=None)
        st.download_button(t("Download a template"), data=services.admin_csv_template(store, me),
                           file_name="people_template.csv", mime="text/csv", key="template", on_click="ignore",
                           width="stretch")
        upload = st.file_uploader(t("People CSV (UTF-8)"), type=["csv"], key="import_file")
        if st.button(t("Import"), key="import", type="primary", width="stretch", disabled=upload is None):
            with ui.show_errors():
                st.session_state["people_import"] = services.admin_import_people(store, me, upload.name,
                                                                                 upload.getvalue())
                st.rerun()

    with tab_coverage:
        report = services.coverage(store, me)
        gaps = report["cells_without_inspector"]
        if report["default"]:
            st.caption(t("Checked against the default set-up: a grid leader on every unit and an inspector on every "
                         "cell. A county sets the roles of 一长三员 each level must hold in required_roles."))
        else:
            st.caption(t("Checked against the roles the local set-up requires (required_roles): {setup}.",
                         setup="; ".join(f"{t(level)}: {'、'.join(t(r) for r in roles)}"
                                         for level, roles in report["required_roles"].items())))
        cols = st.columns(4)
        cols[0].metric(t("Units without a grid leader"), len(report["units_without_grid_leader"]))
        cols[1].metric(t("Cells without an inspector"), gaps["count"])
        cols[2].metric(t("People without a unit"), len(report["people_without_unit"]))
        cols[3].metric(t("Conflicting roles"), len(report["conflicts"]))

        st.subheader(t("Roles missing, by level"))
        st.dataframe(pd.DataFrame({
            t("Level"): [t(g["level"]) for g in report["role_gaps"]],
            t("Role"): [t(g["role"]) for g in report["role_gaps"]],
            t("Units checked"): [g["checked"] for g in report["role_gaps"]],
            t("Missing"): [g["count"] for g in report["role_gaps"]],
            t("Units"): ["、".join(u["name"] for u in g["units"][:50]) for g in report["role_gaps"]],
        }), hide_index=True, width="stretch")
        for role, cell_gap in report["cell_gaps"].items():
            if role != "inspector":
                st.caption(t("Cells without a {role}: {count}", role=t(role), count=cell_gap["count"]))

        st.subheader(t("Conflicting roles"))
        if report["conflicts"]:
            for conflict in report["conflicts"]:
                st.warning(conflict_text(conflict))
        else:
            st.caption(t("None."))

        st.subheader(t("Cells without an inspector"))
        if gaps["by_township"]:
            st.dataframe(pd.DataFrame(gaps["by_township"]).rename(
                columns={"code": t("Code"), "name": t("Township"), "cells": t("Cells")}), hide_index=True,
                width="stretch")
        else:
            st.caption(t("None."))

        st.subheader(t("People without a unit"))
        if report["people_without_unit"]:
            st.dataframe(pd.DataFrame(report["people_without_unit"]).rename(
                columns={"person_key": t("Key"), "name": t("Person")}), hide_index=True, width="stretch")
        else:
            st.caption(t("None."))

    with tab_backup:
        st.caption(t("A consistent copy of the whole database, taken through the running app while people work, "
                     "with a manifest of row counts, file checksums and the record's tamper-evident head. Restore "
                     "it with `python -m gridwatch restore FOLDER --db NEW_FILE`."))
        st.metric(t("Tamper-evident record"), t("intact") if services.audit_verify(store, me)["ok"] else t("BROKEN"))
        if st.button(t("Back up now"), type="primary", key="backup-now", width="stretch"):
            made = services.admin_backup(store, me)
            st.success(t("Backed up {tables} tables into {path}.", tables=len(made["tables"]), path=made["path"]))
