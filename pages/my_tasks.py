"""Inspector, tablet first: today's tasks (overdue on top), the spot, and the report with finding, photo and GPS."""

import uuid

import pandas as pd
import streamlit as st

from gridwatch import maps, services, ui
from gridwatch.maps import cells_svg

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
State = services.State


def _local(ts) -> str:
    return services.moment_text(ts, store=store)


def sighting_form() -> None:
    """随手拍 in three taps: a photo, what it shows, send (the position comes from the device, or is typed)."""
    # closed until tapped (the day's tasks come first); it stays as the inspector left it across reruns
    with st.expander(t("Report something seen (随手拍)"), icon=":material/photo_camera:"):
        form = st.session_state.setdefault("sight-key", uuid.uuid4().hex)
        photos = st.file_uploader(t("Photo"), type=["jpg", "jpeg", "png", "heic"], accept_multiple_files=True,
                                  key=f"sight-photos-{form}")
        category = st.pills(t("What is it?"), list(services.SIGHTING_CATEGORIES), key=f"sight-category-{form}",
                            format_func=lambda c: t(services.PROBLEM_CATEGORY_LABELS[c]))
        note = st.text_input(t("Note (optional)"), key=f"sight-note-{form}", max_chars=2000)
        fix = ui.gps_button(f"sight-gps-{form}")
        if fix:
            st.session_state[f"sight-lat-{form}"], st.session_state[f"sight-lng-{form}"] = fix["lat"], fix["lng"]
            st.session_state[f"sight-acc-{form}"] = fix.get("accuracy")
        cols = st.columns(2)
        lat = cols[0].number_input(t("Latitude"), value=None, format="%.6f", key=f"sight-lat-{form}")
        lng = cols[1].number_input(t("Longitude"), value=None, format="%.6f", key=f"sight-lng-{form}")
        ready = bool(photos) and category is not None and lat is not None and lng is not None
        if not ready:
            st.caption(t("A photo, what it shows and your position are needed."))
        if st.button(t("Send"), type="primary", width="stretch", key="sight-send", disabled=not ready):
            with ui.show_errors():
                got = services.report_sighting(
                    store, me, category=category, note=note, key=form,
                    fix=services.Fix(lat, lng, st.session_state.get(f"sight-acc-{form}")),
                    photos=[(p.name, p.getvalue()) for p in photos or []])
                if got["created"]:
                    st.session_state["flash"] = t("Reported: task {task} for {person}.", task=got["task_id"],
                                                  person=(got["assignee"] or {}).get("name") or t("nobody yet"))
                else:
                    st.session_state["flash"] = t("Already reported: your photos were added to task {task}.",
                                                  task=got["task_id"])
                st.session_state.pop("sight-key", None)
                st.rerun()


def task_list() -> None:
    st.title(t("My tasks"))
    if services.may_report_sightings(store, me):
        sighting_form()
    tasks = services.my_tasks(store, me)
    if tasks.empty:
        st.success(t("No open tasks. Thank you!"))
        return
    st.caption(t("{n} open tasks, {overdue} overdue", n=len(tasks), overdue=int(tasks.overdue.sum())))
    view = st.segmented_control(t("Show"), ["list", "map"], format_func=lambda v: t("List") if v == "list" else t("Map"),
                                default="list", key="tasks-view", label_visibility="collapsed")
    if view == "map":
        task_map(tasks)
        return
    for row in tasks.itertuples():
        mark = "🔴 " + t("Overdue") + " · " if row.overdue else ""
        title = ui.md(ui.task_title(row))
        label = f"{mark}{title} · {t(row.state)} · {t('due')} {_local(row.due_at)}"
        if st.button(label, key=f"task-{row.id}", width="stretch"):
            st.session_state["task"] = int(row.id)
            st.rerun()


def task_map(tasks: pd.DataFrame) -> None:
    """My cells by status, a pin per task (red when overdue) and my position; tapping a pin opens the task."""
    cells = services.cell_status(store, me)
    centres = services.cell_centres(tasks.cell_id)
    late = tasks.overdue.to_numpy()
    fix = ui.gps_button("list-gps")
    labels = [t(s) if s != "not_observed" else t("not visited this week") for s in maps.STATUSES]

    def layers(view):
        out = [maps.CellLayer(maps.cell_layer_data(cells.cell.to_numpy(), cells.status_code.to_numpy(), view=view),
                              labels=labels, colours=[maps.STATUS_COLOURS[s] for s in maps.STATUSES])]
        for mask, colour, label in ((~late, "#f28e2b", t("Task")), (late, "#d62728", t("Overdue"))):
            coords = maps.point_layer_data(centres.lat[mask], centres.lng[mask], view=view)
            out.append(maps.PointLayer(coords, colour=colour, label=label, radius=9))
        if fix:
            out.append(maps.PointLayer([fix["lat"], fix["lng"]], colour="#1f6feb", label=t("My position"), radius=7))
        return out

    out = ui.leaflet_map("my-map", bounds=services.scope_bounds(store, me), layers=layers, height=380)
    clicked = out.get("last_object_clicked") or {}
    if clicked.get("lat") is not None and not centres.empty:
        near = ((centres.lat - clicked["lat"]) ** 2 + (centres.lng - clicked["lng"]) ** 2).idxmin()
        if abs(centres.lat[near] - clicked["lat"]) < 1e-4 and abs(centres.lng[near] - clicked["lng"]) < 1e-4:
            if st.session_state.get("map-opened") != (clicked["lat"], clicked["lng"]):
                st.session_state["map-opened"] = (clicked["lat"], clicked["lng"])
                st.session_state["task"] = int(tasks.id.iloc[near])
                st.rerun()


def task_page(task_id: int) -> None:
    task = services.task_show(store, me, task_id)
    if st.button("← " + t("All my tasks"), key="back"):
        st.session_state.pop("task", None)
        st.rerun()
    st.title(ui.md(ui.task_title(task)))
    place = task["place"]
    st.markdown(f"**{ui.md(place.get('township', ''))} · {ui.md(place.get('village', ''))}** · `{task['cell']}` · "
                f"{t(task['state'])} · {t('due')} {_local(task['due_at'])}")
    lat, lng = services.cell_centre(task["cell"])
    links = services.navigation_links(lat, lng, label=ui.task_title(task))
    cols = st.columns(2)
    cols[0].link_button(t("Navigate (AMap)"), links["amap"], width="stretch")
    cols[1].link_button(t("Navigate (map app)"), links["geo"], width="stretch")
    came_with = services.intake_photos(store, me, task_id)
    if came_with:
        st.caption(t("Photos sent with this task"))
        for photo, col in zip(came_with, st.columns(min(len(came_with), 4) or 1) * len(came_with)):
            preview = services.task_photo(store, me, photo["sha256"])
            if preview is not None:
                col.image(preview, caption=ui.md(photo["name"]), width="stretch")
    ring = services.cell_neighbourhood(task["cell"])
    fills = ["#d62728" if c == task["cell"] else "#dddddd" for c in ring]
    st.markdown(cells_svg(ring, fills, width=360), unsafe_allow_html=True)

    # the version this person is looking at, kept from the first render: a change by someone else meanwhile is
    # refused with who and when (the input is kept for the leader); one key per form makes a double tap count once
    st.session_state.setdefault(f"seen-{task_id}", task["events"][-1]["id"] if task["events"] else None)
    st.session_state.setdefault(f"form-{task_id}", uuid.uuid4().hex)
    state = task["state"]
    if services.can_start(state):
        if state == State.REJECTED:
            st.warning(t("The report was sent back: {note}", note=task["events"][-1]["detail"].get("note", "")))
        if st.button(t("Start work on this task"), type="primary", width="stretch", key="start"):
            with ui.show_errors():
                services.work_on(store, me, task_id, State.IN_PROGRESS.value, **_version(task_id))
                _done(task_id)
                st.rerun()
    elif state == State.IN_PROGRESS:
        report_form(task)
    else:
        st.info(t("This task is {state}; nothing to do here.", state=t(state)))


def _version(task_id: int) -> dict:
    return {"seen_event_id": st.session_state.get(f"seen-{task_id}"),
            "idempotency_key": st.session_state.get(f"form-{task_id}")}


def _done(task_id: int) -> None:
    """After this person's own change: the next render reads the new version and opens a new form key."""
    st.session_state.pop(f"seen-{task_id}", None)
    st.session_state.pop(f"form-{task_id}", None)


def report_form(task: dict) -> None:
    draft = services.load_draft(store, me, task["id"])
    key = f"r{task['id']}"

    def keep() -> None:
        services.save_draft(store, me, task["id"], {
            "finding": st.session_state.get(f"{key}-finding"), "note": st.session_state.get(f"{key}-note", ""),
            "lat": st.session_state.get(f"{key}-lat"), "lng": st.session_state.get(f"{key}-lng")})

    st.subheader(t("Report"))
    findings = services.findings(task["kind"])
    for field in ("finding", "note", "lat", "lng"):  # a saved draft fills the form once per session
        if f"{key}-{field}" not in st.session_state and draft.get(field) not in (None, ""):
            st.session_state[f"{key}-{field}"] = draft[field]
    st.radio(t("Finding"), findings, format_func=t, key=f"{key}-finding", on_change=keep, index=None)
    st.text_area(t("Note"), key=f"{key}-note", on_change=keep, max_chars=2000)
    photos = st.file_uploader(t("Photos (JPEG, PNG or HEIC, up to 15 MB each)"), type=["jpg", "jpeg", "png", "heic"],
                              accept_multiple_files=True, key=f"{key}-photos")
    fix = ui.gps_button(f"{key}-gps")
    if fix:
        st.session_state[f"{key}-lat"], st.session_state[f"{key}-lng"] = fix["lat"], fix["lng"]
        st.session_state[f"{key}-acc"] = fix.get("accuracy")
    cols = st.columns(2)
    lat = cols[0].number_input(t("Latitude"), value=None, format="%.6f", key=f"{key}-lat", on_change=keep)
    lng = cols[1].number_input(t("Longitude"), value=None, format="%.6f", key=f"{key}-lng", on_change=keep)
    if st.button(t("Send report"), type="primary", width="stretch", key=f"{key}-send"):
        with ui.show_errors():
            position = services.Fix(lat, lng, st.session_state.get(f"{key}-acc")) if lat is not None and lng is not None \
                else None
            detail = services.work_on(store, me, task["id"], State.REPORTED.value,
                                      finding=st.session_state.get(f"{key}-finding"),
                                      note=st.session_state.get(f"{key}-note", ""), fix=position,
                                      photos=[(p.name, p.getvalue()) for p in photos or []],
                                      **_version(task["id"]))
            _done(task["id"])
            if "gps_outside_cell" in detail.get("flags", []):
                st.session_state["flash"] = t("Sent. Your position is {m} m outside the cell; the verifier will "
                                              "see this.", m=int(detail["outside_cell_m"]))
            else:
                st.session_state["flash"] = t("Report sent for verification.")
            st.session_state.pop("task", None)
            st.rerun()


@st.fragment(run_every="60s")
def news() -> None:
    """Every minute, without a reload: a toast for each task that is new, escalated to me, or now overdue."""
    tasks = services.my_tasks(store, me)
    seen = st.session_state.setdefault("seen_tasks", {})
    first = not seen
    for row in tasks.itertuples():
        state = ("overdue" if row.overdue else row.state)
        if not first and seen.get(row.id) != state:
            if row.id not in seen:
                st.toast(t("New task: {title}", title=ui.task_title(row)))
            elif state == "overdue":
                st.toast(t("Overdue: {title}", title=ui.task_title(row)))
            elif state == State.ESCALATED:
                st.toast(t("Escalated to you: {title}", title=ui.task_title(row)))
        seen[row.id] = state


news()
flash = st.session_state.pop("flash", None)
if flash:
    st.toast(flash)
selected = st.session_state.get("task")
with ui.show_errors():
    if selected:
        task_page(selected)
    else:
        task_list()
