"""gridwatch app entry: page config, language, and the pages."""

import streamlit as st

from gridwatch import ui

st.set_page_config(page_title="gridwatch 网格化监管", page_icon="⬡", layout="wide")
ui.language_picker()
ui.fire_fetcher()  # fetches new FIRMS detections on a schedule when a MAP_KEY is configured

pages = [
    st.Page("screens/overview.py", title=ui.t("Overview"), icon="🗺️", default=True),
    st.Page("screens/fires.py", title=ui.t("Satellite fire points"), icon="🔥"),
]
st.navigation(pages).run()
