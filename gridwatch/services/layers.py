"""Versioned spatial layers: load, preview, publish, restore; no-burn zones and coal checks."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import cells_to_string

from gridwatch import auth, regionstore
from gridwatch.services._common import (
    Actor,
    _upload_path,
    actor_name,
    check_upload_size,
    policy,
    require,
    require_region,
    require_system,
    user_of,
)
from gridwatch.storage import Store


def _layer_actor(store: Store, actor: Actor, action: str) -> str:
    """The actor's name, after checking that they may do ``action`` over the whole region (layers cover it all)."""
    require_region(store, actor, action)
    return actor_name(actor)


def layer_kinds() -> list[dict[str, str]]:
    """The layer kinds that can be loaded: ``kind``, ``geometry`` and English ``label`` (translate with ui.t)."""
    from gridwatch import layerstore
    return [{"kind": k.kind, "geometry": k.geometry, "label": k.label or k.kind}
            for k in sorted(layerstore.kinds().values(), key=lambda k: k.kind)]


def layer_load(store: Store, actor: Actor, kind: str, path_or_bytes: str | Path | bytes,
               name: str | None = None, crs: str | None = None, publish: bool = False,
               **options: Any) -> dict[str, Any]:
    """Store an uploaded layer file as a new version of ``kind`` (and publish it when asked).

    Returns ``kind, version, rows, rejected, repaired, crs, cells_affected, warnings, published, differences``
    (``differences`` is what publishing did, or would do when not published). A file without a CRS raises
    :class:`CRSError` listing candidates; see :func:`layer_crs_candidates`.
    """
    check_upload_size(path_or_bytes, name=name)
    from gridwatch import layerstore
    name_of_actor = _layer_actor(store, actor, "layer.publish" if publish else "layer.load")
    layerstore.get_kind(kind)
    options = {k: v for k, v in options.items() if v is not None}
    if kind == "static_heat_sources":  # each source names who added it: the uploader, unless the file says
        options.setdefault("added_by", name_of_actor)
    return layerstore.load(store, kind, path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes),
                           actor=name_of_actor, policy=policy(store), name=name, crs=crs or None,
                           publish_now=publish, **options)


def layer_list(store: Store, actor: Actor, kind: str | None = None) -> pd.DataFrame:
    """Every stored layer version, newest first within a kind (``published`` marks the one in force)."""
    from gridwatch import layerstore
    _layer_actor(store, actor, "layer.load")
    return layerstore.versions(store, kind)


def layer_versions(store: Store, actor: Actor, kind: str) -> pd.DataFrame:
    """The versions of one kind, newest first."""
    from gridwatch import layerstore
    layerstore.get_kind(kind)
    return layer_list(store, actor, kind)


def layer_preview(store: Store, actor: Actor, kind: str, version: int, *, tolerance_m: float = 20.0,
                  limit: int = 5000, differences: bool = True) -> dict[str, Any]:
    """A version for a map preview before publishing: simplified features as a GeoJSON FeatureCollection.

    Returns
    -------
    dict
        ``kind, version, info`` (who, when, file, CRS, counts, warnings, rejects), ``geojson`` (WGS84, geometries
        simplified to ``tolerance_m``, at most ``limit`` features; per-cell kinds give hexagons), ``bounds``
        ``[min lng, min lat, max lng, max lat]``, ``shown`` and ``rows``, and ``differences`` (what publishing
        would change: a trial publication rolled back; None when published already or not asked).
    """
    from gridwatch import layerstore
    from gridwatch.grid import cells_to_polygons
    _layer_actor(store, actor, "layer.load")
    info = layerstore.version_info(store, kind, version)
    frame = layerstore.frame_of(store, kind, version)
    rows = len(frame)
    frame = frame.iloc[:limit]
    if "geometry" in frame.columns:
        geoms = frame.geometry.to_numpy(dtype=object)
    else:
        geoms = cells_to_polygons(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))
    simplified = shapely.simplify(geoms, tolerance_m / 111_000.0, preserve_topology=True) if len(geoms) else geoms
    props = frame.drop(columns=[c for c in ("geometry",) if c in frame.columns])
    props = props.astype(object).where(props.notna(), None)
    if "cell" in props.columns:
        props["cell"] = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist()
    features = [{"type": "Feature", "geometry": json.loads(g), "properties": p}
                for g, p in zip(shapely.to_geojson(simplified), props.to_dict("records"))]
    bounds = [float(v) for v in shapely.total_bounds(geoms)] if len(geoms) else None
    diff = None
    if differences and not info["published"]:
        diff = layerstore.preview_differences(store, kind, version, policy=policy(store))
    return {"kind": kind, "version": int(version), "info": info, "rows": rows, "shown": len(features),
            "bounds": bounds, "geojson": {"type": "FeatureCollection", "features": features},
            "differences": diff}


def layer_publish(store: Store, actor: Actor, kind: str, version: int) -> dict[str, Any]:
    """Publish a stored version: cell flags and tasks follow it; returns the differences."""
    from gridwatch import layerstore
    return layerstore.publish(store, kind, int(version), actor=_layer_actor(store, actor, "layer.publish"),
                              policy=policy(store))


def layer_restore(store: Store, actor: Actor, kind: str, version: int) -> dict[str, Any]:
    """Publish an earlier version again (roll back); returns the differences."""
    from gridwatch import layerstore
    return layerstore.restore(store, kind, int(version), actor=_layer_actor(store, actor, "layer.publish"),
                              policy=policy(store))


def layer_crs_candidates(store: Store, actor: Actor, path_or_bytes: str | Path | bytes, *, name: str | None = None,
                         layer: str | None = None, x_field: str | None = None,
                         y_field: str | None = None) -> list[dict[str, Any]]:
    """For a file that declares no CRS: the CRSs its coordinates fit, those placing it in the region first.

    Each: ``crs`` (pass it back as ``crs``), ``name``, ``bounds`` (WGS84 after reprojection), ``inside`` (share of
    features in the region) and ``in_region``.
    """
    from gridwatch.layerfiles import crs_candidates
    _layer_actor(store, actor, "layer.load")
    with tempfile.TemporaryDirectory(prefix="gridwatch-upload-") as tmp:
        path = _upload_path(path_or_bytes, name, Path(tmp))
        return crs_candidates(path, layer=layer, region=regionstore.geometry(store), x_field=x_field, y_field=y_field)


def layer_file_layers(path_or_bytes: str | Path | bytes, *, name: str | None = None) -> list[str]:
    """The layers of a multi-layer file (GeoPackage tables, KML folders), for a layer picker."""
    from gridwatch.ingest import list_layers
    with tempfile.TemporaryDirectory(prefix="gridwatch-upload-") as tmp:
        return list_layers(_upload_path(path_or_bytes, name, Path(tmp)))


def zone_cells(store: Store, actor: Actor, *, zone_type: str | None = None) -> pd.DataFrame:
    """Cells of the published no-burn zones that the actor may see: ``cell_id`` (H3 hex), ``cell``, ``zone_type``,
    ``border``, ``default`` (the whole region is the straw-burning ban zone while no straw zone is published)."""
    from gridwatch import zones
    require(store, actor, "cell.view")
    df = zones.zone_cells_table(store, zone_type=zone_type)
    user = user_of(actor)
    if user is not None:
        df = df[df.cell.isin(np.asarray(auth.user_cells(store, user, "cell.view"), dtype=np.int64))]
        df = df.reset_index(drop=True)
    df.insert(0, "cell_id", cells_to_string(pa.array(df.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist())
    return df


def generate_coal_checks(store: Store, actor: Actor, *, cadence_days: int | None = None) -> dict[str, int]:
    """Open the recurring coal checks (回头看) of high-polluting-fuel zone cells due now (``coal_check_cadence_days``,
    monthly by default); idempotent. A job or the command line opens them."""
    from gridwatch import zones
    require_system(actor, "coal_checks.generate")
    if cadence_days is None:
        cadence_days = policy(store).settings.coal_check_cadence_days
    return zones.generate_coal_checks(store, cadence_days=cadence_days, actor=actor_name(actor))
