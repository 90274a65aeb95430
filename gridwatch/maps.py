"""Maps: an SVG overview of cells that needs no tiles or scripts, and Leaflet maps sent as compact cell data.

The Leaflet maps load Leaflet and h3-js from the app itself (``static/vendor``), never from a CDN; cells travel
as H3 ids (≈18 bytes each) and are drawn in the browser, only those in view, as parent cells when zoomed out.

Examples
--------
>>> svg = cells_svg(["882a1072b5fffff"], ["#1f77b4"], width=200)
>>> svg.startswith("<svg") and "polygon" in svg
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import folium
import h3
import numpy as np
import pyarrow as pa
from branca.element import MacroElement
from h3ronpy import cells_parse, cells_to_string, change_resolution
from jinja2 import Template

from gridwatch.encode import html_attr, html_text, map_text
from gridwatch.overlap import cells_to_convex_xy

__all__ = ["cells_svg", "PALETTE", "STATUSES", "STATUS_COLOURS", "MapView", "Basemap", "CellLayer", "PointLayer",
           "base_map", "fit_zoom", "cell_layer_data", "point_layer_data", "view_resolution", "radius_layer"]

#: colour-blind-safe qualitative palette (Tableau 10)
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac",
           "#86bcb6", "#8cd17d", "#a0cbe8", "#ffbe7d", "#d4a6c8")


def cells_svg(
    cells: Sequence[str],
    fills: Sequence[str],
    *,
    titles: Sequence[str] | None = None,
    width: int = 720,
    stroke: str = "#ffffff",
) -> str:
    """Draw H3 cells (hex ids) as an SVG in an equirectangular view scaled by cos(latitude).

    Parameters
    ----------
    cells : sequence of str
        H3 cell ids.
    fills : sequence of str
        A CSS colour per cell.
    titles : sequence of str, optional
        Hover text per cell.
    width : int
        Width in pixels; the height follows the region's shape.
    """
    if len(cells) == 0:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40"></svg>'
    ids = np.asarray(cells_parse(pa.array(list(cells), type=pa.string())), dtype=np.uint64)
    xy = cells_to_convex_xy(ids)
    lng, lat = xy[..., 0], xy[..., 1]
    k = np.cos(np.radians(lat.mean()))
    x = (lng - lng.min()) * k
    y = lat.max() - lat
    scale = (width - 4) / max(x.max(), 1e-9)
    height = int(np.ceil(y.max() * scale)) + 4
    px = np.round(x * scale + 2, 1)
    py = np.round(y * scale + 2, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" style="max-width:{width}px">'
    ]
    for i in range(len(ids)):
        points = " ".join(f"{a},{b}" for a, b in zip(px[i], py[i]))
        title = f"<title>{html_text(titles[i])}</title>" if titles is not None else ""
        parts.append(
            f'<polygon points="{points}" fill="{html_attr(fills[i])}" stroke="{stroke}" stroke-width="0.4">'
            f"{title}</polygon>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- interactive maps (folium / Leaflet, served by the app itself) ------------------------------------------

#: versions of the vendored browser libraries under ``static/vendor/`` (see its README)
LEAFLET = "leaflet-1.9.4"
H3JS = "h3-js-4.2.1"

#: cell statuses of the leaders' map, from least to most urgent; a parent cell shows its most urgent child
STATUSES = ("clean", "not_observed", "active", "overdue")
STATUS_COLOURS = {"clean": "#59a14f", "not_observed": "#9aa0a6", "active": "#f28e2b", "overdue": "#d62728"}

#: Leaflet's Web Mercator ground resolution at the equator, metres per pixel at zoom 0 (256 px tiles)
_M_PER_PX_Z0 = 156543.03392804097


@dataclass(frozen=True)
class MapView:
    """What a map shows: its bounds (WGS84 degrees) and Leaflet zoom level.

    Examples
    --------
    >>> MapView.from_leaflet({"_southWest": {"lat": 34.3, "lng": 112.2},
    ...                       "_northEast": {"lat": 34.6, "lng": 112.7}}, 11).zoom
    11.0
    """

    south: float
    west: float
    north: float
    east: float
    zoom: float

    @classmethod
    def from_leaflet(cls, bounds: Mapping[str, Any] | None, zoom: Any) -> "MapView | None":
        """The view streamlit-folium reports (``bounds``, ``zoom``), or None when it has not reported one yet."""
        try:
            sw, ne = bounds["_southWest"], bounds["_northEast"]
            view = cls(float(sw["lat"]), float(sw["lng"]), float(ne["lat"]), float(ne["lng"]), float(zoom))
        except (KeyError, TypeError, ValueError):
            return None
        return view if view.north > view.south and view.east > view.west else None

    def padded(self, fraction: float = 0.25) -> "MapView":
        """The view widened on every side, so a small pan does not show an empty edge."""
        dy, dx = (self.north - self.south) * fraction, (self.east - self.west) * fraction
        return MapView(self.south - dy, self.west - dx, self.north + dy, self.east + dx, self.zoom)


def view_resolution(zoom: float, grid_resolution: int, *, lat: float = 34.0, min_px: float = 6.0) -> int:
    """The H3 resolution to draw at a zoom level: the finest (up to the grid's) whose cells are ≥ ``min_px`` wide.

    Examples
    --------
    >>> view_resolution(13, 8), view_resolution(9, 8), view_resolution(6, 8)
    (8, 7, 5)
    """
    metres_per_px = _M_PER_PX_Z0 * np.cos(np.radians(lat)) / 2.0 ** zoom
    for res in range(grid_resolution, -1, -1):
        if 2.0 * h3.average_hexagon_edge_length(res, unit="m") / metres_per_px >= min_px:
            return res
    return 0


def cell_layer_data(
    cells: np.ndarray,
    status: np.ndarray,
    *,
    grid_resolution: int | None = None,
    view: MapView | None = None,
    max_cells: int = 4000,
) -> dict[str, Any]:
    """The compact cell layer for one map view: only the cells in view, as parent cells when zoomed out.

    Parameters
    ----------
    cells : numpy.ndarray of uint64 or int64
        H3 cells at the grid resolution.
    status : numpy.ndarray of int
        Index into :data:`STATUSES` per cell.
    grid_resolution : int, optional
        Resolution of ``cells`` (read from the first cell when not given).
    view : MapView, optional
        The map's view; None draws every cell at the resolution that keeps within ``max_cells``.
    max_cells : int
        Most cells drawn in one view; coarser parents are used beyond it.

    Returns
    -------
    dict
        ``res`` (resolution drawn), ``c`` (hex ids), ``s`` (status index per drawn cell), ``n`` (cells of the
        grid inside each drawn parent, only when ``res`` is coarser than the grid), ``total`` (grid cells in view).

    Examples
    --------
    >>> import h3
    >>> kids = np.array([int(c, 16) for c in h3.cell_to_children("872a10725ffffff", 8)], dtype=np.uint64)
    >>> data = cell_layer_data(kids, np.array([0, 0, 3, 0, 0, 0, 1]), grid_resolution=8, max_cells=3)
    >>> data["res"], data["c"], data["s"], data["n"]
    (7, ['872a10725ffffff'], [3], [7])
    """
    ids = np.asarray(cells).astype(np.uint64, copy=False)
    codes = np.asarray(status, dtype=np.int8)
    if grid_resolution is None:
        grid_resolution = h3.get_resolution(h3.int_to_str(int(ids[0]))) if len(ids) else 0
    res = grid_resolution
    if view is not None and len(ids):
        area = view.padded()
        lat, lng = _centres(ids)
        keep = (lat >= area.south) & (lat <= area.north) & (lng >= area.west) & (lng <= area.east)
        ids, codes = ids[keep], codes[keep]
        middle = (view.south + view.north) / 2
        res = min(res, view_resolution(view.zoom, grid_resolution, lat=middle))
    total = int(len(ids))
    drawn, worst, counts = ids, codes, None
    while True:
        if res < grid_resolution and total:
            parents = np.asarray(change_resolution(pa.array(ids), res), dtype=np.uint64)
            order = np.argsort(parents, kind="stable")
            p_sorted = parents[order]
            starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
            drawn = p_sorted[starts]
            worst = np.maximum.reduceat(codes[order], starts) if len(starts) else codes[:0]
            counts = np.diff(np.r_[starts, len(p_sorted)])
        if len(drawn) <= max_cells or res == 0:
            break
        res -= 1
    hex_ids = cells_to_string(pa.array(drawn, type=pa.uint64())).to_pylist()
    return {"res": int(res), "c": hex_ids, "s": worst.astype(int).tolist(),
            "n": None if counts is None else counts.astype(int).tolist(), "total": total}


def _centres(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xy = cells_to_convex_xy(ids)
    return xy[..., 1].mean(axis=1), xy[..., 0].mean(axis=1)


def point_layer_data(lat: Sequence[float], lng: Sequence[float], *, view: MapView | None = None,
                     digits: int = 5) -> list[float]:
    """Points as one flat ``[lat, lng, lat, lng, …]`` list rounded to ``digits`` (5 ≈ 1 m), only those in view."""
    la, ln = np.asarray(lat, dtype=float), np.asarray(lng, dtype=float)
    if view is not None:
        area = view.padded()
        keep = (la >= area.south) & (la <= area.north) & (ln >= area.west) & (ln <= area.east)
        la, ln = la[keep], ln[keep]
    return np.round(np.column_stack([la, ln]).ravel(), digits).tolist()


class CellLayer(MacroElement):
    """H3 cells drawn in the browser from their ids (h3-js), coloured by status; a few bytes a cell.

    Parameters
    ----------
    data : dict
        From :func:`cell_layer_data`.
    labels : sequence of str
        Display name of each status, in :data:`STATUSES` order.
    colours : sequence of str
        Fill colour of each status.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var d = {{ this.data|tojson }}, g = {{ this._parent.get_name() }};
  var labels = {{ this.labels|tojson }}, colours = {{ this.colours|tojson }};
  var shown = window.gridwatchCells = window.gridwatchCells || {};  // cell id → status label, for tests and tools
  for (var i = 0; i < d.c.length; i++) {
    var s = d.s[i];
    shown[d.c[i]] = labels[s];
    var tip = labels[s] + (d.n ? " · " + d.n[i] : "") + "<br><code>" + d.c[i] + "</code>";
    L.polygon(h3.cellToBoundary(d.c[i]), {color: "#ffffff", weight: 0.6, fillColor: colours[s],
              fillOpacity: 0.55}).bindTooltip(tip).addTo(g);
  }
})();
{% endmacro %}
""")

    def __init__(self, data: dict[str, Any], *, labels: Sequence[str], colours: Sequence[str]) -> None:
        super().__init__()
        self._name = "CellLayer"
        self.data = {k: data[k] for k in ("c", "s", "n")}
        self.labels = [map_text(label) for label in labels]
        self.colours = list(colours)


class PointLayer(MacroElement):
    """Points (fire detections, task pins) as circle markers from a flat coordinate list.

    Parameters
    ----------
    lat_lng : list of float
        ``[lat, lng, lat, lng, …]`` (latitude first, as Leaflet takes it), from :func:`point_layer_data`.
    colour : str
        Marker colour.
    label : str
        Tooltip of every marker.
    radius : float
        Marker radius in pixels.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var p = {{ this.lat_lng|tojson }}, g = {{ this._parent.get_name() }};
  for (var i = 0; i + 1 < p.length; i += 2) {
    L.circleMarker([p[i], p[i + 1]], {radius: {{ this.radius }}, color: "#ffffff", weight: 1.5,
                   fillColor: {{ this.colour|tojson }}, fillOpacity: 0.95}).bindTooltip({{ this.label|tojson }})
      .addTo(g);
  }
})();
{% endmacro %}
""")

    def __init__(self, lat_lng: list[float], *, colour: str, label: str, radius: float = 6) -> None:
        super().__init__()
        self._name = "PointLayer"
        self.lat_lng, self.colour, self.label, self.radius = lat_lng, colour, map_text(label), float(radius)


def radius_layer(radii: Sequence[Mapping[str, Any]], *, labels: Sequence[str] = ("Plant", "MW"),
                 colour: str = "#c0392b") -> folium.GeoJson:
    """The heat-supply radii as one GeoJSON layer, each plant's name and capacity in its tooltip.

    Parameters
    ----------
    radii : sequence of mapping
        As :func:`gridwatch.services.heat_radii` gives them: ``name``, ``capacity_mw`` and ``ring``
        (``[[lng, lat], …]``, closed).
    labels : sequence of str
        The tooltip's two row labels, in the reader's language.
    colour : str
        The rings' colour.

    Returns
    -------
    folium.GeoJson
        The layer; plant names come from layer files and reach the tooltip through
        :func:`gridwatch.encode.map_text` (folium's ``GeoJsonTooltip`` shows properties as HTML).
    """
    features = [{"type": "Feature", "properties": {"name": map_text(r["name"]), "mw": r["capacity_mw"]},
                 "geometry": {"type": "Polygon", "coordinates": [r["ring"]]}} for r in radii]
    return folium.GeoJson({"type": "FeatureCollection", "features": features},
                          style_function=lambda _: {"color": colour, "weight": 1.5, "fillOpacity": 0.04},
                          tooltip=folium.GeoJsonTooltip(fields=["name", "mw"],
                                                        aliases=[map_text(label) for label in labels]))


@dataclass(frozen=True)
class Basemap:
    """An XYZ tile source. ``url`` may hold ``{s}``, ``{z}``, ``{x}``, ``{y}``; empty means no basemap."""

    url: str = ""
    attribution: str = ""
    subdomains: str = "abc"
    labels_url: str = ""

    @classmethod
    def from_settings(cls, url: str, attribution: str = "", tianditu_key: str = "") -> "Basemap":
        """The configured basemap: an explicit XYZ template, else Tianditu with its key, else none.

        Tianditu's tiles are in CGCS2000, which matches the WGS84 data here to well under a metre.

        Examples
        --------
        >>> Basemap.from_settings("", "", "KEY").url.startswith("https://t{s}.tianditu.gov.cn/vec_w/")
        True
        >>> bool(Basemap.from_settings("", ""))
        False
        """
        if url:
            return cls(url=url, attribution=attribution or url.split("/")[2])
        if tianditu_key:
            def layer(name: str) -> str:
                return (f"https://t{{s}}.tianditu.gov.cn/{name}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                        f"&LAYER={name}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}"
                        f"&TILEROW={{y}}&TILECOL={{x}}&tk={tianditu_key}")
            return cls(url=layer("vec"), labels_url=layer("cva"), subdomains="01234567",
                       attribution=attribution or "天地图 Tianditu")
        return cls()

    def __bool__(self) -> bool:
        return bool(self.url)


def base_map(
    *,
    bounds: tuple[float, float, float, float],
    assets: str,
    basemap: Basemap | None = None,
    height: int = 480,
) -> folium.Map:
    """A Leaflet map fitted to ``bounds`` (south, west, north, east) whose scripts come from ``assets``.

    Parameters
    ----------
    bounds : tuple of float
        South, west, north, east in WGS84 degrees.
    assets : str
        URL prefix of ``static/vendor`` as the app serves it (for example ``/app/static/vendor``).
    basemap : Basemap, optional
        Tiles under the cells; without one the map has a plain background.
    height : int
        Height in pixels.
    """
    south, west, north, east = bounds
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=None, prefer_canvas=True,
                   control_scale=True, height=height, zoom_start=fit_zoom(bounds, width=320, height=height), min_zoom=5,
                   max_zoom=18)
    # instance attributes win over folium's class defaults, which point at CDNs
    m.default_js = [("leaflet", f"{assets}/{LEAFLET}/leaflet.js"), ("h3", f"{assets}/{H3JS}/h3-js.umd.js")]
    m.default_css = [("leaflet_css", f"{assets}/{LEAFLET}/leaflet.css")]
    if basemap:
        folium.TileLayer(basemap.url, attr=map_text(basemap.attribution), subdomains=basemap.subdomains,
                         max_zoom=18).add_to(m)
        if basemap.labels_url:
            folium.TileLayer(basemap.labels_url, attr=map_text(basemap.attribution), subdomains=basemap.subdomains,
                             max_zoom=18, overlay=True).add_to(m)
    return m


def fit_zoom(bounds: tuple[float, float, float, float], *, width: int = 560, height: int = 460) -> int:
    """The largest Leaflet zoom at which ``bounds`` (south, west, north, east) fit a ``width`` × ``height`` view.

    Computed here rather than by Leaflet's ``fitBounds``, which can run before the map's frame has its size.

    Examples
    --------
    >>> fit_zoom((34.25, 112.25, 34.60, 112.70))
    10
    """
    south, west, north, east = bounds

    def merc(lat: float) -> float:
        return float(np.log(np.tan(np.pi / 4 + np.radians(np.clip(lat, -85, 85)) / 2)))

    dx = max(east - west, 1e-6) / 360.0
    dy = max(merc(north) - merc(south), 1e-6) / (2 * np.pi)
    zoom = np.floor(np.log2(min(width / (256 * dx), height / (256 * dy))))
    return int(np.clip(zoom, 5, 18))
