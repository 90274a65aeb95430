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
    # one entry per rule, so long clauses and values wrap on a tablet of either orientation; user and file text is
    # escaped for Markdown (ui.md), the badges are the app's own words
    badge = {"plan": "blue", "local": "orange", "demo": "gray"}
    entries, colon = [], "：" if ui.language().startswith("zh") else ": "
    for rule in rules.itertuples():
        value = t("off") if rule.off else services.display.rule_value_text(rule.key, rule.value, ui.language())
        where = ui.md(rule.document or t("no document entered"))
        since = " · " + t("in force since {day}", day=rule.since) if rule.since else ""
        entries.append(f"- **{ui.md(t(rule.label))}**{colon}{ui.md(value)}  \n"
                       f"  :{badge[rule.source]}-badge[{t(SOURCES[rule.source])}] {where}{since} · "
                       f":small[{ui.md(rule.key)}]")
    st.markdown("\n".join(entries))
    local = rules[(rules.source == "local") & (rules.document == "") & ~rules.off]
    if len(local):
        st.warning(t("{n} local settings apply without a document: enter the document number of each in "
                     "rule_documents (gridwatch.toml).", n=len(local)))
