"""Map drawings as pure data: an SVG overview of cells that needs no tiles, scripts or network.

Examples
--------
>>> svg = cells_svg(["882a1072b5fffff"], ["#1f77b4"], width=200)
>>> svg.startswith("<svg") and "polygon" in svg
True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np
import pyarrow as pa
from h3ronpy import cells_parse

from gridwatch.overlap import cells_to_convex_xy

__all__ = ["cells_svg", "PALETTE"]

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
        title = f"<title>{escape(titles[i])}</title>" if titles is not None else ""
        parts.append(
            f'<polygon points="{points}" fill="{escape(fills[i])}" stroke="{stroke}" stroke-width="0.4">'
            f"{title}</polygon>"
        )
    parts.append("</svg>")
    return "".join(parts)
