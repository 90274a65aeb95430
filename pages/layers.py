"""GIS staff: upload a layer file, choose its CRS when it has none, preview, publish, and restore earlier versions."""

import folium
import pandas as pd
import streamlit as st

from gridwatch import maps, services, ui
from gridwatch.errors import CRSError, GridwatchError
from gridwatch.i18n import N_

ui.through_app()
t = ui.t
store = ui.store()
me = ui.require_user()
FILE_TYPES = ["geojson", "json", "zip", "gpkg", "kml", "kmz", "csv", "tif", "tiff"]
#: the CRS choices offered before any candidate list (a file's own declaration is always used when present)
CRS_CHOICES = {"": N_("As declared in the file"), "gcj02": N_("GCJ-02 (coordinates from a consumer map app)"),
               "EPSG:4326": N_("WGS84 (EPSG:4326)"), "EPSG:4490": N_("CGCS2000 (EPSG:4490)"), "other": N_("Another EPSG code")}
DIFF_LABELS = {"cells_added": N_("Cells added"), "cells_removed": N_("Cells removed"), "tasks_opened": N_("Tasks opened"),
               "tasks_closed": N_("Tasks closed")}


def _differences(diff: dict | None) -> None:
    if not diff:
        return
    cols = st.columns(4)
    for col, (key, label) in zip(cols, DIFF_LABELS.items()):
        col.metric(t(label), int(diff.get(key, 0) or 0))


def _preview_map(preview: dict, key: str) -> None:
    bounds = preview.get("bounds")
    if not bounds:
        st.info(t("This version has no features to show."))
        return
    west, south, east, north = bounds

    def layers(view):
        return [folium.GeoJson(preview["geojson"], style_function=lambda _: {
            "color": "#c0392b", "weight": 1.5, "fillColor": "#f28e2b", "fillOpacity": 0.35},
            marker=folium.CircleMarker(radius=5, color="#c0392b", fill=True, fill_opacity=0.9))]

    ui.leaflet_map(key, bounds=(south, west, north, east), layers=layers, height=420)
    if preview["shown"] < preview["rows"]:
        st.caption(t("The map shows the first {shown} of {rows} features.", shown=preview["shown"],
                     rows=preview["rows"]))


def kind_options(kind: str, file_name: str) -> dict:
    """The reader options a layer kind needs from the person loading it."""
    options: dict = {}
    if kind == "no_burn_zones":
        zone = st.selectbox(t("Zone type"), ["", "high_polluting_fuel", "straw_burning"],
                            format_func=lambda z: t("From the file's zone type column") if not z else t(z),
                            key="opt-zone-type")
        options["zone_type"] = zone or None
    elif kind == "chp_plants":
        marked = st.text_input(t("Mark as combined heat and power (CHP): plant names or ids, separated by commas"),
                               key="opt-chp")
        options["chp"] = marked or None
    elif kind == "bare_land":
        options["date"] = st.date_input(t("Date of the imagery or survey"), key="opt-date").isoformat()
        if file_name.lower().endswith((".tif", ".tiff")):
            mode = st.radio(t("Raster values"), ["class", "index"], horizontal=True, key="opt-mode",
                            format_func=lambda m: t("Land-cover classes") if m == "class" else t("Bare-soil index"))
            if mode == "class":
                options["bare_class"] = int(st.number_input(t("Bare land class value"), value=60, step=1,
                                                            key="opt-class"))
            else:
                options["threshold"] = float(st.number_input(t("Bare when the index is at least"), value=0.2,
                                                             step=0.05, key="opt-threshold"))
    if file_name.lower().endswith(".csv"):
        with st.expander(t("Coordinate columns (when not longitude/latitude)")):
            options["x_field"] = st.text_input(t("Longitude or x column"), key="opt-x") or None
            options["y_field"] = st.text_input(t("Latitude or y column"), key="opt-y") or None
    return options


def heat_supply_section() -> None:
    """The published heat-supply radii and the boilers inside them, on a map and as a list."""
    st.subheader(t("Heat-supply radii and the boilers inside them"))
    radii = services.heat_radii(store, me)
    boilers = services.boilers_in_radius(store, me)
    if not radii:
        st.info(t("No plant is marked as combined heat and power with the capacity that gives a radius yet."))
        return
    rings = [r["ring"] for r in radii]
    west = min(p[0] for r in rings for p in r)
    east = max(p[0] for r in rings for p in r)
    south = min(p[1] for r in rings for p in r)
    north = max(p[1] for r in rings for p in r)
    colours = {"to_close": "#d62728", "overdue": "#7f0000", "closed": "#59a14f", "integrated": "#4e79a7",
               "exempt": "#9aa0a6"}

    def layers(view):
        out = [maps.radius_layer(radii, labels=(t("Plant"), "MW"))]  # plant names escaped for the tooltip
        for status, colour in colours.items():
            chosen = boilers[boilers.status == status]
            if len(chosen):
                out.append(maps.PointLayer(maps.point_layer_data(chosen.lat, chosen.lng, view=view), colour=colour,
                                           label=t(status), radius=5))
        return out

    ui.leaflet_map("heat-map", bounds=(south, west, north, east), layers=layers, height=440)
    st.caption(t("{plants} plants give a radius; {boilers} coal boilers and small coal CHP units lie inside, "
                 "{open} still to close.", plants=len(radii), boilers=len(boilers),
                 open=int(boilers.status.isin(["to_close", "overdue"]).sum())))
    st.dataframe(pd.DataFrame({
        t("Boiler"): boilers.name, t("Capacity (t/h)"): boilers.capacity_tph,
        t("Under 35 t/h"): boilers.small.map({True: "✔", False: ""}), t("Status"): boilers.status.map(t),
        t("Nearest plant"): boilers.plant, t("Distance (km)"): (boilers.distance_m / 1000).round(2),
        t("Village"): boilers.village_code}), hide_index=True, width="stretch")


st.title(t("Layers"))
ui.show_flash("layers")
ORDER = ["no_burn_zones", "coal_sale_points", "chp_plants", "boilers", "bare_land"]
kinds = sorted(services.layer_kinds(), key=lambda k: ORDER.index(k["kind"]) if k["kind"] in ORDER else 99)
names = {k["kind"]: k["label"] for k in kinds}
labels = {kind: t(name) for kind, name in names.items()}
kind = st.selectbox(t("Layer"), list(labels), format_func=labels.__getitem__, key="layer-kind")

with st.container(border=True):
    st.subheader(t("Load a new version"))
    upload = st.file_uploader(t("Layer file (GeoJSON, zipped Shapefile, GeoPackage, KML/KMZ, CSV, GeoTIFF)"),
                              type=FILE_TYPES, key=f"layer-file-{st.session_state.get('upload-round', 0)}")
    choice = st.selectbox(t("Coordinate reference system"), list(CRS_CHOICES),
                          format_func=lambda c: t(CRS_CHOICES[c]),
                          key=f"layer-crs-{st.session_state.get('upload-round', 0)}")
    crs = choice
    if choice == "other":
        crs = st.text_input(t("EPSG code, e.g. EPSG:4527 (CGCS2000 3-degree Gauss-Kruger zone 39)"),
                            key="layer-epsg").strip()
    options = kind_options(kind, upload.name if upload is not None else "")
    sublayer = None
    if upload is not None and upload.name.lower().endswith((".gpkg", ".kml", ".kmz")):
        with ui.show_errors():
            names = services.layer_file_layers(upload.getvalue(), name=upload.name)
            if len(names) > 1:
                sublayer = st.selectbox(t("Layer in the file"), names, key="layer-sub")
    if st.button(t("Load for preview"), type="primary", disabled=upload is None, key="layer-load", width="stretch"):
        st.session_state.pop("layer-candidates", None)
        try:
            result = services.layer_load(store, me, kind, upload.getvalue(), name=upload.name, crs=crs or None,
                                         layer=sublayer, **options)
        except CRSError as exc:
            st.error(ui.translate(exc))
            with ui.show_errors():
                st.session_state["layer-candidates"] = services.layer_crs_candidates(
                    store, upload.getvalue(), name=upload.name, layer=sublayer)
        except GridwatchError as exc:
            st.error(ui.translate(exc))
        else:
            st.session_state["layer-loaded"] = (kind, int(result["version"]))
            st.session_state[f"layer-version-{kind}"] = int(result["version"])
            st.session_state["upload-round"] = st.session_state.get("upload-round", 0) + 1  # an empty form again
            ui.flash("layers", t("Stored as version {version}: {rows} features, {rejected} rejected, {repaired} "
                                 "repaired.", version=result["version"], rows=result["rows"],
                                 rejected=result["rejected"], repaired=result["repaired"]))
            st.rerun()
    candidates = st.session_state.get("layer-candidates")
    if candidates:
        st.warning(t("The file declares no coordinate reference system. Pick the one it was made in; those that "
                     "place it inside the region come first."))
        table = pd.DataFrame([{t("CRS"): c["crs"], t("Name"): c["name"],
                               t("Share inside the region"): f"{100 * float(c.get('inside') or 0):.0f}%",
                               t("Bounds (WGS84)"): ", ".join(f"{v:.4f}" for v in c["bounds"])}
                              for c in candidates])
        st.dataframe(table, hide_index=True, width="stretch")
        picked = st.selectbox(t("Use this CRS"), [c["crs"] for c in candidates], key="layer-pick")
        if st.button(t("Load with this CRS"), key="layer-load-crs", width="stretch") and upload is not None:
            with ui.show_errors():
                result = services.layer_load(store, me, kind, upload.getvalue(), name=upload.name, crs=picked,
                                             layer=sublayer, **options)
                st.session_state.pop("layer-candidates", None)
                st.session_state["layer-loaded"] = (kind, int(result["version"]))
                st.session_state[f"layer-version-{kind}"] = int(result["version"])
                st.session_state["upload-round"] = st.session_state.get("upload-round", 0) + 1
                ui.flash("layers", t("Stored as version {version}: {rows} features, {rejected} rejected, "
                                     "{repaired} repaired.", version=result["version"], rows=result["rows"],
                                     rejected=result["rejected"], repaired=result["repaired"]))
                st.rerun()

with ui.show_errors():
    versions = services.layer_versions(store, me, kind)
    if versions.empty:
        st.info(t("No version of this layer has been loaded yet."))
        st.stop()
    st.subheader(t("Versions"))
    shown = versions.assign(published=versions.published.map({True: "✔", False: ""}))
    columns = {"version": t("Version"), "published": t("Published"), "file_name": t("File"),
               "uploaded_by": t("Loaded by"), "uploaded_at": t("Loaded at (UTC)"), "crs": t("CRS"),
               "rows": t("Features"), "rejected": t("Rejected"), "repaired": t("Repaired")}
    st.dataframe(shown[[c for c in columns if c in shown.columns]].rename(columns=columns), hide_index=True,
                 width="stretch")
    loaded = st.session_state.get("layer-loaded")
    default = loaded[1] if loaded and loaded[0] == kind else int(versions.version.iloc[0])
    numbers = [int(v) for v in versions.version]
    if st.session_state.get(f"layer-version-{kind}") not in numbers:
        st.session_state[f"layer-version-{kind}"] = default if default in numbers else numbers[0]
    version = st.selectbox(t("Version to preview"), numbers, key=f"layer-version-{kind}")
    preview = services.layer_preview(store, me, kind, version)
    info = preview["info"]
    for warning in info.get("warnings", []):
        st.caption("⚠ " + ui.md(ui.t_filled(warning)))
    _preview_map(preview, key=f"layer-map-{kind}")
    if info["published"]:
        st.success(t("Version {version} is the published version.", version=version))
    else:
        if preview.get("differences"):
            st.caption(t("Publishing this version would change:"))
            _differences(preview["differences"])
        published = [int(v) for v, p in zip(versions.version, versions.published) if p]
        newer = not published or version > published[0]
        label = t("Publish version {version}", version=version) if newer else \
            t("Restore version {version}", version=version)
        if st.button(label, type="primary", key="layer-publish", width="stretch"):
            if newer:
                diff = services.layer_publish(store, me, kind, version)
            else:
                diff = services.layer_restore(store, me, kind, version)
            ui.flash("layers", t("Version {version} is now published.", version=version))
            st.session_state["layer-diff"] = (kind, version, diff)
            st.rerun()
    done = st.session_state.get("layer-diff")
    if done and done[:2] == (kind, version):
        st.caption(t("Publishing changed:"))
        _differences(done[2])

if kind in ("chp_plants", "boilers"):
    with ui.show_errors():
        heat_supply_section()
