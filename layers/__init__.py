"""Spatial layers (fire points, bare land, heat supply, no-burn zones) implementing the layer protocol.

Each layer module reads one kind of source file into a :class:`layers.base.LayerRead`
(accepted rows, rejected rows with reasons, counts and warnings). Layers import
from gridwatch only its leaf modules (``errors``, ``crs``, ``grid``).
"""

from __future__ import annotations

from .base import Layer, LayerRead
from .fire_points import FirePointsLayer, read_firms

__all__ = ["Layer", "LayerRead", "FirePointsLayer", "read_firms"]
