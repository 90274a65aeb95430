"""gridwatch app entry: page config, language, and the pages."""

import streamlit as st

from gridwatch import ui

st.set_page_config(page_title="gridwatch 网格化监管", page_icon="⬡", layout="wide")
ui.language_picker()

pages = [
    st.Page("pages/overview.py", title=ui.t("Overview"), icon="🗺️", default=True),
]
st.navigation(pages).run()
