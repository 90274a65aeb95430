"""Heat supply: plants, their radii and the boilers inside them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import cells_to_string

from gridwatch import auth
from gridwatch.services._common import Actor, actor_name, audit, policy, require, require_system, user_of
from gridwatch.services.layers import _layer_actor
from gridwatch.storage import Store


def _heat_scope(store: Store, actor: Actor) -> np.ndarray | None:
    """The cells a user may see (None for a system actor, who sees all), after checking they may see cells."""
    require(store, actor, "cell.view")
    user = user_of(actor)
    return None if user is None else auth.user_cells(store, user, "cell.view")


def _with_cell_ids(frame: pd.DataFrame) -> pd.DataFrame:
    ids = cells_to_string(pa.array(frame.cell.to_numpy(dtype=np.int64).view(np.uint64))).to_pylist() if len(frame) \
        else []
    return frame.assign(cell_id=ids)


def boilers_in_radius(store: Store, actor: Actor, *,
                      today: dt.date | None = None, listed_only: bool = True) -> pd.DataFrame:
    """Every coal boiler and small coal CHP unit inside a heat-supply radius, with the nearest qualifying plant,
    the geodesic distance, the small flag and the status in force (``overdue`` after the deadline), nearest first;
    ``listed_only=False`` gives every boiler inside a radius (``listed`` marks the coal ones)."""
    from gridwatch import heat
    frame = heat.boilers_in_radius(store, dispatch=policy(store).dispatch, today=today, listed_only=listed_only)
    cells = _heat_scope(store, actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)].reset_index(drop=True)
    return _with_cell_ids(frame)


def boilers_due(store: Store, actor: Actor, *, today: dt.date | None = None,
                listed_only: bool = True) -> pd.DataFrame:
    """Every boiler due under either boiler rule, with ``rules`` (``eliminate_35tph``, ``chp_radius``), its
    ``boiler_id`` as loaded, and the nearest qualifying plant and geodesic distance where a radius applies;
    ``listed_only=False`` gives every boiler of the inventory."""
    from gridwatch import heat
    frame = heat.boilers_due(store, dispatch=policy(store).dispatch, today=today, listed_only=listed_only)
    cells = _heat_scope(store, actor)
    if cells is not None:
        frame = frame[frame.cell.isin(cells)].reset_index(drop=True)
    return _with_cell_ids(frame)


def heat_plants(store: Store, actor: Actor) -> pd.DataFrame:
    """The published power plants with their CHP flag (file or staff mark), qualification and radius.

    Plants serve the whole region and beyond (a 30 km radius crosses county lines), so anyone who sees cells may
    see them.
    """
    from gridwatch import heat
    require(store, actor, "cell.view")
    return heat.plants_table(store)


def heat_radii(store: Store, actor: Actor, *, vertices: int = 128) -> list[dict[str, Any]]:
    """Each qualifying plant's geodesic radius for maps: plant id, name, capacity, radius, ``ring`` [[lng, lat], …]."""
    from gridwatch import heat
    require(store, actor, "cell.view")
    out = []
    for item in heat.radius_polygons(store, vertices=vertices):  # a few dozen plants at most
        ring = shapely.get_coordinates(item.pop("polygon").exterior).round(6).tolist()
        out.append({**item, "ring": ring})
    return out


def heat_mark_chp(store: Store, actor: Actor, plants: list[str], *, chp: bool = True,
                  note: str = "") -> dict[str, Any]:
    """Mark published plants as CHP (or not) by id or exact name; radii, boiler list and tasks follow."""
    from gridwatch import heat
    return heat.mark_chp(store, plants, chp=chp, actor=_layer_actor(store, actor, "layer.publish"),
                         dispatch=policy(store).dispatch, note=note)


def heat_boiler_status(store: Store, actor: Actor, boiler_id: str, status: str, *,
                       note: str = "") -> dict[str, Any]:
    """Record a boiler's new status (to_close, closed, integrated, exempt) with who and when."""
    from gridwatch import heat
    name = _layer_actor(store, actor, "layer.publish")
    result = heat.boiler_status_update(store, boiler_id, status, actor=name, dispatch=policy(store).dispatch,
                                       note=note)
    audit(store, actor=name, action="heat.boiler_status", subject=str(boiler_id), detail=result)
    return result


def heat_boiler_history(store: Store, actor: Actor, boiler_id: str) -> pd.DataFrame:
    """Every status change of a boiler (who, when, from where: upload, manual, task), for layer staff."""
    _layer_actor(store, actor, "layer.load")
    return store.query_df("SELECT * FROM boiler_status_history WHERE boiler_id = ? ORDER BY id", [str(boiler_id)])


def demo_heat_supply(store: Store, actor: Actor, region: str) -> dict[str, Any]:
    """Demo content: the shipped real plants of Henan (≥ 300 MW coal plants reaching the region marked CHP) and a
    generated boiler inventory labelled （演示）, loaded and published as layer versions."""
    from gridwatch import heat
    require_system(actor, "heat.demo")
    return heat.add_demo_heat(store, region=region, policy=policy(store), actor=actor_name(actor))
