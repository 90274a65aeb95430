"""gridwatch app entry: page config, language, sign-in, the screens a person's roles allow, and the HTTP API."""

import streamlit as st

from gridwatch import ui

if __name__ != "__main__":
    # `streamlit run app.py` finds `app` here and serves it: these screens, and the HTTP API under /api/v1 on the
    # same port. Streamlit runs this file again as __main__ for every session's run of the screens (below).
    app = st.App(__file__, routes=ui.api_routes(), middleware=ui.api_middleware(), lifespan=ui.api_lifespan)
else:
    st.set_page_config(page_title="gridwatch 网格化监管", page_icon="assets/icon.png", layout="wide")
    ui.tablet_style()
    ui.language_picker()
    ui.fire_fetcher()  # fetches new FIRMS detections on a schedule when a MAP_KEY is configured
    ui.notifier()  # escalates overdue tasks and sends messages on a schedule

    user = ui.user()
    ui.remember_session()  # the sign-in survives a reload (an HttpOnly cookie the server sets)
    if user is None:
        pages = [st.Page("pages/sign_in.py", title=ui.t("Sign in"), icon=":material/login:", default=True)]
    else:
        ui.account_box(user)
        pages = []
        if user.can("task.work"):
            pages.append(st.Page("pages/my_tasks.py", title=ui.t("My tasks"), icon=":material/assignment:"))
        if user.can("task.verify"):
            pages.append(st.Page("pages/review.py", title=ui.t("Cell status and reports"),
                                 icon=":material/fact_check:"))
        if user.can("task.assign"):
            pages.append(st.Page("pages/assign.py", title=ui.t("Assign work"), icon=":material/assignment_ind:"))
        if user.can("layer.load"):
            pages.append(st.Page("pages/layers.py", title=ui.t("Layers"), icon=":material/layers:"))
        if user.can("people.manage"):
            pages.append(st.Page("pages/people.py", title=ui.t("People and roles"), icon=":material/groups:"))
        if user.can("report.view"):
            pages.append(st.Page("pages/reports.py", title=ui.t("Reports and rankings"),
                                 icon=":material/leaderboard:"))
        if user.can("task.work") or user.can("task.verify") or user.can("task.assign"):
            pages.append(st.Page("pages/problems.py", title=ui.t("Problem register"), icon=":material/rule:"))
        pages += [
            st.Page("pages/overview.py", title=ui.t("Overview"), icon=":material/map:"),
            st.Page("pages/fires.py", title=ui.t("Satellite fire points"),
                    icon=":material/local_fire_department:"),
            st.Page("pages/rules.py", title=ui.t("Rules in force"), icon=":material/gavel:"),
        ]
    with ui.show_errors():  # an unexpected error on any page reads as a message in the person's language
        st.navigation(pages).run()
