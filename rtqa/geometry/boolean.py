"""Union and difference of structures as slab models, exactly (no lattice in between).

Each structure's slab model (:mod:`rtqa.geometry.slabs`) is a stack of polygons extruded over z
intervals. Between any two consecutive slab faces of all the structures involved, every
structure's cross-section is one polygon (or nothing), so the union or difference there is one
planar polygon operation (shapely), and the result is again a slab stack: the derived structure
(``Lungs - GTV``, ``Trachea + Bronchus``) is then rasterised like any contoured one, with exact
partial cells. Combining occupancies cell by cell instead (the larger, or the difference of two
occupied fractions) is exact only where no cell holds both boundaries: where it does, the cell's
shared part is unknown, and a union or difference loses up to the whole cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from rtqa.geometry.slabs import SlabStack

#: Slab faces of different structures closer than this (mm) are one face (rounding of plane z).
FACE_TOLERANCE_MM = 1e-6


def combined_stack(
    base: SlabStack, plus: Sequence[SlabStack] = (), minus: Sequence[SlabStack] = ()
) -> SlabStack:
    """The slab model of ``base`` united with ``plus``, less the union of ``minus`` (mm, the
    z intervals of the slabs of all of them cut at every face). Consecutive intervals built
    from the same slabs are one slab; intervals where nothing remains are left out. Its
    ``z_mm`` are the middles of its slabs; its gaps are those of ``base``."""
    kept = [base, *plus]
    stacks = [*kept, *minus]
    faces = np.unique(np.concatenate([np.r_[s.lo_mm, s.hi_mm] for s in stacks]))
    faces = faces[np.r_[True, np.diff(faces) > FACE_TOLERANCE_MM]]
    lower, upper = faces[:-1], faces[1:]
    middle = 0.5 * (lower + upper)
    # per stack and interval: the slabs holding the interval (usually one, or none)
    holding = [_holding(s, middle) for s in stacks]
    n_kept = len(kept)
    pieces: list[tuple[float, float, tuple]] = []  # (lo, hi, key of the slabs used)
    for i in range(middle.size):
        key = tuple(holding[s][i] for s in range(len(stacks)))
        if not any(key[:n_kept]):
            continue
        if pieces and pieces[-1][2] == key and abs(pieces[-1][1] - lower[i]) <= FACE_TOLERANCE_MM:
            pieces[-1] = (pieces[-1][0], float(upper[i]), key)
        else:
            pieces.append((float(lower[i]), float(upper[i]), key))
    made: dict[tuple, shapely.Geometry] = {}
    lo, hi, geoms = [], [], []
    for a, b, key in pieces:
        geom = made.get(key)
        if geom is None:
            geom = made[key] = _section(stacks, key, n_kept)
        if geom.is_empty or geom.area <= 0:
            continue
        lo.append(a)
        hi.append(b)
        geoms.append(geom)
    lo_mm, hi_mm = np.array(lo, dtype=float), np.array(hi, dtype=float)
    return SlabStack(
        0.5 * (lo_mm + hi_mm),
        lo_mm,
        hi_mm,
        tuple(geoms),
        np.array([g.area for g in geoms], dtype=float),
        base.gap_steps_mm,
    )


def _holding(stack: SlabStack, z: np.ndarray) -> list[tuple[int, ...]]:
    """For each z (mm), the indices of the slabs of ``stack`` whose ``[lo, hi]`` holds it."""
    inside = (stack.lo_mm[None, :] <= z[:, None]) & (z[:, None] <= stack.hi_mm[None, :])
    return [tuple(np.flatnonzero(row)) for row in inside]


def _section(stacks: Sequence[SlabStack], key: tuple, n_kept: int) -> shapely.Geometry:
    """The cross-section of the combination: the union of the kept stacks' slabs in ``key``
    less the union of the others' (areal parts only)."""
    kept = [stacks[s].geoms[p] for s in range(n_kept) for p in key[s]]
    cut = [stacks[s].geoms[p] for s in range(n_kept, len(stacks)) for p in key[s]]
    geom = kept[0] if len(kept) == 1 else shapely.union_all(kept)
    if cut:
        geom = shapely.difference(geom, cut[0] if len(cut) == 1 else shapely.union_all(cut))
    if geom.geom_type == "GeometryCollection":
        geom = shapely.union_all([g for g in geom.geoms if g.area > 0] or [shapely.Polygon()])
    return geom
