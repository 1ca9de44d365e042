"""A bound on the dose of the part of a structure that lies beyond the dose grid.

The planning system computed no dose there, so rtqa never counts that part as 0 Gy
(:class:`rtqa.dvh.core.Dvh`: ``unknown_volume_cc``). What it can state is a bound under one
assumption, written in every finding that uses it: the dose beyond the grid is no higher than
the highest dose on the faces of the grid that the structure crosses. A dose grid is placed
around the high dose, which falls off away from the targets, so the dose at its faces is the
most the region beyond receives (this fails where a beam enters the patient outside the grid;
the ``grid_coverage`` finding stays, naming the part outside).

The bound is taken over each crossed face as a whole, not only over the structure's own
section of it, so that a part of the structure lying wholly beyond the grid (a second lobe, a
loop of bowel) is covered too. Doses in Gy.
"""

from __future__ import annotations

import numpy as np

from rtqa.geometry.sampling import Occupancy
from rtqa.model import DoseGrid

#: A structure reaching past a face of the grid by less than this (mm) does not cross it.
FACE_TOL_MM = 1e-6


def beyond_grid_max_gy(occ: Occupancy, grid: DoseGrid) -> float | None:
    """The highest dose (Gy, at least 0) on the dose grid's faces that the structure of ``occ``
    crosses: the bound of the dose beyond the grid. None when nothing lies outside, or where the
    structure's extent is not known (a derived structure without its own contours)."""
    if occ.outside_cc <= 0 or occ.slabs is None or grid.dose_gy.size == 0:
        return None
    lat = occ.lattice
    low = occ.slabs.bounds_mm[:3]
    high = occ.slabs.bounds_mm[3:]
    edges = (lat.x_edges_mm, lat.y_edges_mm, lat.z_edges_mm)
    dose = grid.dose_gy
    faces = []
    for xyz, (lo, hi, e) in enumerate(zip(low, high, edges, strict=True)):
        axis = 2 - xyz  # dose_gy is indexed (z, y, x)
        if lo < e[0] - FACE_TOL_MM:
            faces.append(np.take(dose, 0, axis=axis))
        if hi > e[-1] + FACE_TOL_MM:
            faces.append(np.take(dose, -1, axis=axis))
    if not faces:
        return None
    return max(0.0, max(float(np.max(f)) for f in faces))


__all__ = ["FACE_TOL_MM", "beyond_grid_max_gy"]
