"""The DVH engine: exact dose-volume distributions and the metrics read from them.

``Dvh`` and ``MetricUndefined`` (numpy only) load at once; the structure-level functions, which
need the geometry (shapely, scipy), load on first use.
"""

from __future__ import annotations

from typing import Any

from rtqa.dvh.core import Dvh, MetricUndefined, display_bin_gy

_LAZY = {
    "StructureDvh": "rtqa.dvh.structure",
    "structure_dvh": "rtqa.dvh.structure",
    "occupancy_dvh": "rtqa.dvh.structure",
    "plan_quality": "rtqa.dvh.quality",
}

__all__ = ["Dvh", "MetricUndefined", "display_bin_gy", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtqa.dvh' has no attribute {name!r}")
