"""规则说明: every rule in force, its value and its source — a plan's clause, or a local setting and its document."""

import pandas as pd
import streamlit as st

from gridwatch import services, ui
from gridwatch.i18n import N_

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()

SOURCES = {"plan": N_("Plan clause"), "local": N_("Local setting (本地设置)"), "demo": N_("Demo setting (演示设置)")}

with ui.show_errors():
    st.title(t("Rules in force"))
    st.caption(t("Every number gridwatch applies, with where it comes from. A plan's number cites its clause; a "
                 "number no plan gives is a local setting with the document the county entered, and is off until "
                 "someone sets it."))
    rules = pd.DataFrame(services.rules(store, me))
    table = pd.DataFrame({
        t("Rule"): [t(label) for label in rules.label],
        t("Value"): [t("off") if off else services.display.rule_value_text(key, value, ui.language())
                     for key, value, off in zip(rules.key, rules.value, rules.off)],
        t("Source"): [t(SOURCES[s]) for s in rules.source],
        t("Document or clause"): [doc or t("no document entered") for doc in rules.document],
        t("Setting"): rules.key,
    })
    st.dataframe(table, hide_index=True, width="stretch", height=36 * (len(table) + 1) + 3,  # every rule at once
                 column_config={t("Rule"): st.column_config.TextColumn(width="medium"),
                                t("Document or clause"): st.column_config.TextColumn(width="large")})
    local = rules[(rules.source == "local") & (rules.document == "") & ~rules.off]
    if len(local):
        st.warning(t("{n} local settings apply without a document: enter the document number of each in "
                     "rule_documents (gridwatch.toml).", n=len(local)))
