"""Known static heat sources (factories, kilns, flares) and farmland: turning a layer file's features into frames.

Static heat sources are points or polygons, each with a name, a kind (:data:`SOURCE_KINDS`) and who added it.
Farmland is polygons. Readers reject bad features one by one (a line, a heat source of an unknown kind) and stop
only when the file as a whole cannot be the layer.

Examples
--------
>>> import shapely
>>> attrs = pd.DataFrame({"名称": ["砖厂", "火炬"], "类型": ["砖窑", "flare"]})
>>> read = static_sources_from_features(np.array([shapely.Point(112.3, 34.3), shapely.Point(112.4, 34.4)]), attrs,
...                                     source="s.geojson", feature_no=np.array([1, 2]), added_by="gis")
>>> read.frame[["name", "source_kind", "added_by"]].values.tolist()
[['砖厂', 'kiln', 'gis'], ['火炬', 'flare', 'gis']]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from gridwatch.errors import ValidationError
from layers.base import LayerRead, attribute_column, rejected_frame

__all__ = ["SOURCE_KINDS", "SOURCE_KIND_NAMES", "source_kind_of", "static_sources_from_features",
           "farmland_from_features"]

#: the kinds of known static heat source
SOURCE_KINDS = ("factory", "kiln", "flare", "other")

#: what files call each kind (compared without spaces, case-insensitively; then as substrings, in this order)
SOURCE_KIND_NAMES: dict[str, tuple[str, ...]] = {
    "kiln": ("kiln", "窑", "砖窑", "石灰窑", "brick kiln"),
    "flare": ("flare", "火炬", "放空火炬", "torch"),
    "factory": ("factory", "plant", "工厂", "企业", "厂", "industry", "industrial"),
    "other": ("other", "其他", "其它"),
}

KIND_FIELDS = ("source_kind", "kind", "type", "类型", "热源类型", "类别")
NAME_FIELDS = ("name", "名称", "热源名称", "企业名称", "title")
ADDED_BY_FIELDS = ("added_by", "添加人", "录入人", "created_by")


def source_kind_of(values: np.ndarray) -> np.ndarray:
    """The kind each value names (``""`` when none is recognised): exact names first, then substrings.

    Examples
    --------
    >>> source_kind_of(np.array(["石灰窑厂", "Flare", "某某化工厂", "?"], dtype=object)).tolist()
    ['kiln', 'flare', 'factory', '']
    """
    text = pd.Series(np.asarray(values, dtype=object)).fillna("").astype(str).str.replace(r"\s+", "", regex=True)
    lowered = text.str.lower()
    out = np.full(len(text), "", dtype=object)
    for kind, names in SOURCE_KIND_NAMES.items():
        out[(out == "") & lowered.isin([n.replace(" ", "").lower() for n in names]).to_numpy()] = kind
    for kind, names in SOURCE_KIND_NAMES.items():  # kilns before factories: 砖窑厂 is a kiln
        for name in names:
            out[(out == "") & lowered.str.contains(name.replace(" ", "").lower(), regex=False).to_numpy()] = kind
    return out


def _texts(attributes: pd.DataFrame, column: str | None, default: np.ndarray) -> np.ndarray:
    if column is None:
        return default
    values = attributes[column].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    return np.where(values == "", default, values)


def _raw(attributes: pd.DataFrame, rows: np.ndarray) -> list[str]:
    if not len(rows) or attributes.shape[1] == 0:
        return [""] * len(rows)
    sub = attributes.iloc[rows]
    return sub.astype(object).where(sub.notna(), "").astype(str).agg(" | ".join, axis=1).tolist()


def static_sources_from_features(geoms: np.ndarray, attributes: pd.DataFrame, *, source: str,
                                 feature_no: np.ndarray, source_kind: str | None = None,
                                 kind_field: str | None = None, name_field: str | None = None,
                                 added_by_field: str | None = None, added_by: str = "") -> LayerRead:
    """Turn WGS84 points and polygons into the static heat source frame.

    Parameters
    ----------
    geoms : ndarray of shapely geometries, WGS84
    attributes : DataFrame
    source : str
        File name.
    feature_no : ndarray of int
        1-based feature numbers in the file (reported with rejected rows).
    source_kind : str, optional
        One kind for every feature (:data:`SOURCE_KINDS`); else read per feature from ``kind_field`` (or a column
        named like ``kind``/``类型``), recognising Chinese names such as 砖窑 and 火炬.
    kind_field, name_field, added_by_field : str, optional
        Columns holding the kind, the name and who added the feature.
    added_by : str
        Who added the features the file does not say (the uploader).

    Returns
    -------
    LayerRead
        Frame columns ``geometry``, ``name``, ``source_kind``, ``added_by``, ``feature_no``; features that are
        neither points nor polygons (``not_point_or_polygon``) or of an unknown kind (``unknown_source_kind``)
        are rejected.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if source_kind is not None:
        if source_kind not in SOURCE_KINDS:
            raise ValidationError("Unknown heat source kind {kind!r}; use one of {kinds}.", kind=source_kind,
                                  kinds=", ".join(SOURCE_KINDS))
        kinds, column = np.full(n, source_kind, dtype=object), None
    else:
        column = attribute_column(attributes, kind_field, KIND_FIELDS)
        if column is None:
            raise ValidationError(
                "{file} has no heat source kind column (looked for {names}); choose the column or one kind for "
                "all features ({kinds}).", file=source, names=", ".join(KIND_FIELDS), kinds=", ".join(SOURCE_KINDS))
        kinds = source_kind_of(attributes[column].to_numpy(dtype=object))
    types = shapely.get_type_id(geoms) if n else np.zeros(0, dtype=np.int64)
    shape_ok = np.isin(types, (0, 3, 4, 6))  # Point, Polygon, MultiPoint, MultiPolygon
    good = shape_ok & (kinds != "")
    numbers = np.asarray(feature_no, dtype=np.int64)
    frame = pd.DataFrame({
        "geometry": geoms[good],
        "name": pd.array(_texts(attributes, attribute_column(attributes, name_field, NAME_FIELDS),
                                np.array([f"#{k}" for k in numbers], dtype=object))[good].tolist(), dtype="str"),
        "source_kind": pd.array(kinds[good].tolist(), dtype="str"),
        "added_by": pd.array(_texts(attributes, attribute_column(attributes, added_by_field, ADDED_BY_FIELDS),
                                    np.full(n, str(added_by), dtype=object))[good].tolist(), dtype="str"),
        "feature_no": numbers[good],
    })
    bad_shape, bad_kind = np.flatnonzero(~shape_ok), np.flatnonzero(shape_ok & (kinds == ""))
    values = attributes[column].astype(str).to_numpy() if column is not None else np.full(n, "", dtype=object)
    rejected = rejected_frame(
        np.concatenate([numbers[bad_shape], numbers[bad_kind]]),
        ["not_point_or_polygon"] * len(bad_shape) + ["unknown_source_kind"] * len(bad_kind),
        ["A static heat source is a point or a polygon."] * len(bad_shape)
        + [f"The heat source kind {v!r} is none of factory (工厂), kiln (窑), flare (火炬) or other (其他)."
           for v in values[bad_kind]],
        _raw(attributes, bad_shape) + _raw(attributes, bad_kind))
    return LayerRead(source=source, frame=frame, rejected=rejected, read=n)


def farmland_from_features(geoms: np.ndarray, attributes: pd.DataFrame, *, source: str, feature_no: np.ndarray,
                           name_field: str | None = None) -> LayerRead:
    """Turn WGS84 polygons into the farmland frame: ``geometry``, ``name``, ``feature_no``."""
    numbers = np.asarray(feature_no, dtype=np.int64)
    frame = pd.DataFrame({
        "geometry": np.asarray(geoms, dtype=object),
        "name": pd.array(_texts(attributes, attribute_column(attributes, name_field, NAME_FIELDS),
                                np.array([f"#{k}" for k in numbers], dtype=object)).tolist(), dtype="str"),
        "feature_no": numbers,
    })
    return LayerRead(source=source, frame=frame, rejected=rejected_frame([], [], [], []), read=len(frame))
