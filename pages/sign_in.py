"""Sign in with a local account."""

import streamlit as st

from gridwatch import services, ui

ui.through_app()
t = ui.t
st.title(t("gridwatch · grid supervision"))
notice = st.session_state.pop("signin_notice", None)
if notice:
    st.warning(notice)
with st.form("sign_in", border=True):
    username = st.text_input(t("User name"), autocomplete="username")
    password = st.text_input(t("Password"), type="password", autocomplete="current-password")
    submitted = st.form_submit_button(t("Sign in"), type="primary", width="stretch")
if submitted:
    with ui.show_errors():
        session = services.sign_in(ui.store(), username, password, client=ui.client_address())
        st.session_state["token"] = session.token
        st.session_state.pop("signed_out", None)
        st.rerun()
for provider in ui.oidc_providers():
    label = t("Sign in with the organisation account") if provider == "default" else \
        t("Sign in with the organisation account ({provider})", provider=provider)
    if st.button(label, key=f"oidc-{provider}", width="stretch"):
        ui.oidc_login(provider)
if services.is_demo(ui.store()):
    st.caption(t("Demo accounts (demo data only): inspector, leader, county, gis, admin — password demo-2026."))
