"""Bare land: patches, their changes between versions and their escalation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from gridwatch.errors import ValidationError
from gridwatch.services._common import Actor, actor_name, policy, require_region, require_system
from gridwatch.services.heat import _heat_scope, _with_cell_ids
from gridwatch.storage import Store


def bare_land_summary(store: Store, actor: Actor, *, level: str = "cell") -> pd.DataFrame:
    """Bare land of the published version per cell, or summed per ``village``, ``township`` or ``county``:
    observed and bare area (m²), bare fraction, bare cells and open patches."""
    from gridwatch import bare
    frame = bare.bare_cells_table(store)
    cells = _heat_scope(store, actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)]
    if level == "cell":
        return _with_cell_ids(frame.reset_index(drop=True))
    if level not in ("village", "township", "county"):
        raise ValidationError("Unknown level {level}; use cell, village, township or county.", level=level)
    patches = bare.patches_table(store)
    patches = patches[patches.status.isin(["bare", "covered"])]
    key = f"{level}_code"
    out = frame.groupby(key, dropna=False).agg(observed_m2=("observed_m2", "sum"), bare_m2=("bare_m2", "sum"),
                                               bare_cells=("is_bare", "sum")).reset_index()
    out["fraction"] = out.bare_m2 / out.observed_m2.where(out.observed_m2 > 0)
    owner = store.query_df(f"SELECT cell, {key} FROM cells")
    open_count = patches[["cell"]].merge(owner, on="cell").groupby(key).size().rename("open_patches")
    out = out.merge(open_count, left_on=key, right_index=True, how="left").fillna({"open_patches": 0})
    names = store.query_df("SELECT code, name FROM units")
    return out.merge(names, left_on=key, right_on="code", how="left").drop(columns="code") \
        .sort_values("bare_m2", ascending=False, ignore_index=True)


def bare_land_change(store: Store, actor: Actor, version_a: int, version_b: int) -> dict[str, Any]:
    """The change between two stored bare-land versions (cells observed in both): newly bare and no longer bare
    cells (H3 ids), and bare area before, after and the change (m²); for layer staff of the region."""
    from gridwatch import bare, layerstore
    require_region(store, actor, "layer.load")
    policy = bare.BarePolicy.from_settings()
    change = bare.bare_change(layerstore.frame_of(store, "bare_land", version_a),
                              layerstore.frame_of(store, "bare_land", version_b), min_m2=policy.min_m2)
    for key in ("newly_bare", "no_longer_bare"):
        change[key] = cells_to_string(pa.array(np.asarray(change[key], dtype=np.int64).view(np.uint64))).to_pylist()
    return {"from_version": int(version_a), "to_version": int(version_b), **change}


def bare_land_patches(store: Store, actor: Actor, *, status: str | None = None) -> pd.DataFrame:
    """Registered bare-land patches (建档): cell, first and last seen, area, status, escalation."""
    from gridwatch import bare
    frame = bare.patches_table(store, status=status)
    cells = _heat_scope(store, actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)].reset_index(drop=True)
    return _with_cell_ids(frame)


def bare_land_escalate(store: Store, actor: Actor, *, today: dt.date | None = None) -> dict[str, Any]:
    """Apply verified survey findings, then escalate patches covered (or still bare) for more than
    ``bare_land_months`` calendar months to greening (a high-priority survey task each, once); a job or the command
    line, on Beijing's today by default."""
    from gridwatch import bare
    require_system(actor, "bare_land.escalate")
    applied = bare.apply_bare_findings(store)
    rules = policy(store)
    result = bare.escalate_bare_land(store, today or rules.today(), dispatch=rules.dispatch,
                                     policy=bare.BarePolicy.from_settings(rules.settings), actor=actor_name(actor))
    return {"findings_applied": len(applied), **result}
