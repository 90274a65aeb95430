"""Reports and rankings on the plans' cadence: tables, charts, the map of units, accountability, downloads."""

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from gridwatch import services, ui

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
lang = ui.language()
KINDS = {"daily": t("Daily dispatch"), "weekly": t("Weekly summary"), "xun": t("Ten-day ranking"),
         "monthly": t("Monthly assessment"), "season": t("Harvest season"), "custom": t("Custom range")}
LEVELS = ("province", "city", "county", "township", "village", "cell")
LEVEL_NAMES = {"county": t("county"), "township": t("township"), "village": t("village"), "cell": t("Grid cell")}
MAP_COLUMNS = ("fire_points", "fires_per_100km2", "confirmed", "tasks_overdue", "score")

with ui.show_errors():
    st.title(t("Reports and rankings"))
    units = services.report_units(store, me)
    names = dict(zip(units.code, units.name))
    pick = st.columns([2, 2, 3, 2])
    kind = pick[0].selectbox(t("Report type"), list(KINDS), index=2, format_func=KINDS.get, key="rep_kind")
    day = pick[1].date_input(t("Date"), value=services.report_latest_day(store, me), key="rep_date")
    end = None
    if kind == "custom":
        end = pick[1].date_input(t("Last day"), value=day + dt.timedelta(days=6), key="rep_end")
    unit = pick[2].selectbox(t("Unit"), list(units.code), format_func=lambda c: f"{names[c]}（{c}）", key="rep_unit")
    unit_level = units.set_index("code").level[unit]
    levels = [lv for lv in LEVEL_NAMES if LEVELS.index(lv) > LEVELS.index(unit_level)] or [unit_level]
    level = pick[3].selectbox(t("Ranked level"), levels, format_func=lambda v: LEVEL_NAMES.get(v, v), key="rep_level")

    report = services.report_build(store, me, kind=kind, date=day, end=end, level=level, unit=unit,
                                   language=lang)
    facts = report.to_json()
    period_text = facts["period"]["label"]
    st.subheader(f"{ui.md(names[unit])} · {facts['report']} · {period_text}")
    if facts["demo"]:
        st.info(t("Generated demo data (演示), not real."))
    totals = facts["totals"]
    cols = st.columns(5)
    cols[0].metric(t("Satellite fire points"), totals.get("fire_points", 0))
    cols[1].metric(t("Fire incidents"), totals.get("incidents", 0))
    cols[2].metric(t("Confirmed fires"), totals.get("confirmed", 0))
    rate = totals.get("confirmation_rate")
    cols[3].metric(t("Confirmation rate"), "—" if rate is None else f"{rate:.0%}")
    cols[4].metric(t("Tasks overdue"), totals.get("tasks_overdue", 0))
    # the closed loop (问题台账) and complaints: the rate counts problems settled in the period (closed by their
    # deadline, or past it); problems without a deadline are shown apart
    loop = st.columns(5)
    closure = totals.get("closure_rate")
    loop[0].metric(t("Problems found"), totals.get("problems_found", 0))
    loop[1].metric(t("Closure rate (闭环率)"), "—" if closure is None else f"{closure:.0%}",
                   help=t("Problems closed by their deadline, of the {n} whose deadline came or that were closed in "
                          "the period; {none} found without a deadline are not counted in it.",
                          n=totals.get("loop_due", 0), none=totals.get("problems_no_deadline", 0)))
    loop[2].metric(t("Problems overdue"), totals.get("problems_overdue", 0))
    loop[3].metric(t("Repeat problems (屡查屡犯)"), totals.get("problem_repeats", 0))
    loop[4].metric(t("Complaints answered"), f"{totals.get('complaints_answered', 0)} / {totals.get('complaints', 0)}")

    tab_rank, tab_days, tab_times, tab_map, tab_duty, tab_files = st.tabs(
        [t("Ranking"), t("Fire points per day"), t("Response times"), t("Map"), t("Accountability"),
         t("Downloads and dossier")])
    table = services.report_table(report)
    with tab_rank:
        st.dataframe(table, hide_index=True, height=min(38 + 35 * len(table), 560))
        st.caption(facts["rule"])
        st.caption(t("Rank change: compared with {period}; positive means moved up.",
                     period=facts["previous_period"]["label"]))
        unit_label, score_label = table.columns[3], table.columns[5]
        chart = alt.Chart(table).mark_bar(color="#de2d26").encode(
            x=alt.X(f"{score_label}:Q"), y=alt.Y(f"{unit_label}:N", sort="-x"),
            tooltip=[unit_label, score_label])
        st.altair_chart(chart, width="stretch")
    with tab_days:
        daily = services.report_daily(report)
        st.bar_chart(daily.set_index(daily.columns[0])[[daily.columns[1]]], height=260)
    with tab_times:
        hist = services.report_response_histogram(store, me, report)
        if hist.empty:
            st.info(t("No fire check of this period has been started yet."))
        else:
            steps = {"arrival": t("to arrival"), "report": t("to report")}
            hist = pd.DataFrame({t("Hours"): hist.hours, t("Fire checks"): hist.tasks,
                                 t("Step"): hist.step.map(steps)})
            chart = alt.Chart(hist).mark_bar(opacity=0.7).encode(
                x=alt.X(f"{t('Hours')}:Q"), y=alt.Y(f"{t('Fire checks')}:Q", stack=None),
                color=alt.Color(f"{t('Step')}:N"), tooltip=list(hist.columns))
            st.altair_chart(chart, width="stretch")
    with tab_map:
        labels = {c: table.columns[list(report.table_columns()).index(c)] for c in MAP_COLUMNS
                  if c in report.table_columns()}
        column = st.selectbox(t("Colour by"), list(labels), format_func=labels.get, key="rep_map_column")
        svg, legend = services.report_map(store, me, report, column)
        st.markdown(svg, unsafe_allow_html=True)
        st.markdown(services.report_legend_html(legend, labels[column]), unsafe_allow_html=True)
    with tab_duty:
        st.caption(facts["thresholds"]["text"])
        st.markdown("**" + t("Measures recorded (通报, 约谈, 问责…)") + "**")
        flash = st.session_state.pop("rep_measure_flash", None)
        if flash:
            st.success(flash)
        measures = services.report_measures(store, me, report)
        if measures.empty:
            st.info(t("No measure has been recorded for this period."))
        else:
            st.dataframe(measures, hide_index=True, key="rep_measures")
        if report.rules.thresholds or report.rules.deduction_yuan:
            st.markdown("**" + t("Suggested by the local thresholds (建议): a suggestion until a leader records the "
                                 "measure") + "**")
            hit = [r for r in facts["rows"] if r["status"]]
            if not hit:
                st.success(t("No unit reached a threshold."))
            else:
                duty = table[report.rows.status.ne("").to_numpy()]
                labels_of = dict(zip(report.table_columns(), table.columns))
                st.dataframe(duty[[labels_of[c] for c in ("unit_name", "fire_points", "status", "deduction_yuan",
                                                          "affected")]], hide_index=True, key="rep_suggested")
        targets = list(report.rows.unit_code) if level != "cell" else []
        if targets and services.may_record_measure(store, me, targets[0]):
            kinds = services.measure_kind_labels(lang)
            with st.form("rep_measure_form", clear_on_submit=True):
                st.markdown("**" + t("Record a measure issued") + "**")
                row = st.columns(3)
                m_unit = row[0].selectbox(t("Unit"), targets, key="rep_m_unit",
                                          format_func=lambda c: str(report.rows.set_index("unit_code")
                                                                    .unit_name.get(c, c)))
                m_kind = row[1].selectbox(t("Measure"), list(kinds), format_func=kinds.get, key="rep_m_kind")
                m_day = row[2].date_input(t("Date issued"), value=services.today(store=store), key="rep_m_day")
                row = st.columns(3)
                m_document = row[0].text_input(t("Document number (文号)"), max_chars=100, key="rep_m_document")
                m_person = row[1].text_input(t("Person concerned (person key, optional)"), key="rep_m_person")
                m_amount = row[2].text_input(t("Amount (yuan), economic penalties only"), key="rep_m_amount")
                m_reason = st.text_area(t("Reason"), max_chars=2000, key="rep_m_reason")
                if st.form_submit_button(t("Record the measure"), type="primary"):
                    with ui.show_errors():
                        done = services.record_measure(
                            store, me, kind=m_kind, unit=m_unit, person=m_person.strip() or None, issued_on=m_day,
                            document_no=m_document, reason=m_reason, amount_yuan=m_amount or None,
                            period=report.period)
                        st.session_state["rep_measure_flash"] = t("Measure {id} recorded ({document}).",
                                                                  id=done["id"], document=done["document_no"])
                        st.rerun()
    with tab_files:
        stem = f"{unit}_{kind}_{report.period.start:%Y%m%d}"
        row = st.columns(3)
        row[0].download_button(t("Download CSV"), data=lambda: services.report_csv(report),
                               file_name=f"{stem}.csv", mime="text/csv", key="dl_csv", width="stretch")
        row[1].download_button(
            t("Download Excel"), data=lambda: services.report_xlsx(report), file_name=f"{stem}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="dl_xlsx", width="stretch")
        row[2].download_button(t("Download bulletin (HTML, printable)"),
                               data=lambda: services.report_bulletin(store, me, report).encode("utf-8"),
                               file_name=f"{stem}.html", mime="text/html", key="dl_html", width="stretch")
        if kind in ("daily", "xun"):
            with st.expander(t("Bulletin (通报)"), expanded=False):
                st.html(services.report_bulletin(store, me, report, with_map=False))
        st.subheader(t("Dossier of a unit"))
        choices = list(report.rows.unit_code)
        who = st.selectbox(t("Unit"), choices, key="rep_dossier_unit",
                           format_func=lambda c: str(report.rows.set_index("unit_code").unit_name.get(c, c)))
        patrols = st.checkbox(t("Include routine patrols"), key="rep_dossier_patrols")
        if st.toggle(t("Show the dossier"), key="rep_dossier_show"):
            dossier = services.report_dossier(store, me, unit=who, kind=kind, date=day, end=end, language=lang,
                                              include_patrols=patrols)
            st.caption(t("{n} events of the tasks with activity in the period.", n=len(dossier)))
            st.dataframe(dossier, hide_index=True, height=300)
            loop = None if level == "cell" else services.report_loop(store, me, unit=who, kind=kind, date=day,
                                                                       end=end, language=lang)
            if loop is not None:
                st.caption(t("Closed loop"))
                st.dataframe(loop, hide_index=True)

            def dossier_file(ext: str) -> bytes:
                """One dossier file, made when its button is clicked."""
                return services.report_dossier_files(store, me, dossier, unit=who, language=lang, note=period_text,
                                                     loop=loop)[ext]

            row = st.columns(3)
            for col, (ext, mime) in zip(row, (("csv", "text/csv"), ("xlsx", "application/vnd.openxmlformats-"
                                                                              "officedocument.spreadsheetml.sheet"),
                                              ("html", "text/html"))):
                col.download_button(t("Dossier ({kind})", kind=ext.upper()), data=lambda ext=ext: dossier_file(ext),
                                    file_name=f"{who}_dossier.{ext}", mime=mime, key=f"dl_dossier_{ext}",
                                    width="stretch")
