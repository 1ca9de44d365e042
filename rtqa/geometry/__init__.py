"""Contours to fractional voxel occupancy on a dose grid, derived structures, distances.

Names load on first use so that importing the package stays light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "contour_volume_cc": "rtqa.geometry.slabs",
    "slab_stack": "rtqa.geometry.slabs",
    "SlabStack": "rtqa.geometry.slabs",
    "combined_stack": "rtqa.geometry.boolean",
    "interpolated_stack": "rtqa.geometry.interpolation",
    "InterpolatedStack": "rtqa.geometry.interpolation",
    "Occupancy": "rtqa.geometry.sampling",
    "Lattice": "rtqa.geometry.sampling",
    "occupancy": "rtqa.geometry.sampling",
    "lattice_for": "rtqa.geometry.sampling",
    "choose_factors": "rtqa.geometry.sampling",
    "sample_doses": "rtqa.geometry.sampling",
    "pixel_fractions": "rtqa.geometry.raster",
    "expand": "rtqa.geometry.distance",
    "distance_to": "rtqa.geometry.distance",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtqa.geometry' has no attribute {name!r}")
