"""Distances to a structure and its expansion by a margin.

* Where the contour geometry is known (an occupancy built from an ROI), the distance from a
  point to the structure is **exact** for the slab model: the minimum over slabs of
  ``sqrt(d_xy^2 + d_z^2)`` with ``d_xy`` the in-plane distance to the plane's polygon
  (``shapely.distance``) and ``d_z`` the distance to the slab's z interval.
* Otherwise (a derived structure) a Euclidean distance transform of the occupied cells
  (``scipy.ndimage.distance_transform_edt``) is corrected to first order by the nearest cell's
  fraction: ``phi = edt + (0.5 - f_nearest) * h``.
* A cell at distance ``phi`` from the structure is inside the ``m`` mm expansion by the
  fraction ``clip(0.5 - (phi - m) / h, 0, 1)`` (``h`` the mean cell side): a linear ramp across
  the cell that is symmetric about the surface, so the expanded volume carries no bias.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from rtqa.geometry.sampling import Occupancy
from rtqa.geometry.slabs import SlabStack


def slab_distance(slabs: SlabStack, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Exact distance (mm) from the lattice points ``(z[k], y[j], x[i])`` to the slab stack,
    array ``(nz, ny, nx)`` (0 inside)."""
    gx, gy = np.meshgrid(x, y)
    best = np.full((z.size, y.size, x.size), np.inf)
    for geom, lo, hi in zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True):
        if geom.is_empty:
            continue
        shapely.prepare(geom)
        d2 = shapely.distance(shapely.points(gx.ravel(), gy.ravel()), geom).reshape(gx.shape) ** 2
        dz2 = np.clip(np.maximum(lo - z, z - hi), 0.0, None) ** 2
        np.minimum(best, d2[None, :, :] + dz2[:, None, None], out=best)
    return np.sqrt(best)


def points_distance(slabs: SlabStack, pts: np.ndarray) -> np.ndarray:
    """Exact distance (mm) from points ``(n, 3)`` (x, y, z) to the slab stack (0 inside)."""
    best = np.full(pts.shape[0], np.inf)
    p2 = shapely.points(pts[:, 0], pts[:, 1])
    for geom, lo, hi in zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True):
        if geom.is_empty:
            continue
        shapely.prepare(geom)
        dz = np.clip(np.maximum(lo - pts[:, 2], pts[:, 2] - hi), 0.0, None)
        np.minimum(best, shapely.distance(p2, geom) ** 2 + dz**2, out=best)
    return np.sqrt(best)


def expand(occ: Occupancy, margin_mm: float) -> Occupancy:
    """The structure grown by ``margin_mm`` (>= 0) in every direction, on the same lattice
    (clipped to the dose grid; ``outside_cc`` is kept from the source, a lower bound)."""
    if not np.isfinite(margin_mm) or margin_mm < 0:
        raise ValueError(f"an expansion margin must be >= 0 mm, got {margin_mm}")
    lat = occ.lattice
    dz_med = float(np.median(lat.dz))
    pads = (
        math.ceil(margin_mm / dz_med) + 2,
        math.ceil(margin_mm / lat.dy) + 2,
        math.ceil(margin_mm / lat.dx) + 2,
    )
    lo = tuple(max(o - p, 0) for o, p in zip(occ.offset, pads, strict=True))
    hi = tuple(
        min(o + n + p, full)
        for o, n, p, full in zip(occ.offset, occ.values.shape, pads, lat.shape, strict=True)
    )
    base = occ._padded(lo, hi)
    x = lat.x_mm[lo[2] : hi[2]]
    y = lat.y_mm[lo[1] : hi[1]]
    z = lat.z_mm[lo[0] : hi[0]]
    h = (lat.dx + lat.dy + lat.dz[lo[0] : hi[0]]) / 3.0
    if occ.slabs is not None:
        phi = slab_distance(occ.slabs, x, y, z)
    else:
        phi = _edt_distance(base, (dz_med, lat.dy, lat.dx), h)
    frac = np.clip(0.5 - (phi - margin_mm) / h[:, None, None], 0.0, 1.0)
    values = np.maximum(frac, base).astype(np.float32)
    name = f"{occ.name}+{margin_mm:g}mm"
    return Occupancy(lat, lo, values, occ.outside_cc, name)


def _edt_distance(values: np.ndarray, sampling, h: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    inside = values > 0
    if not inside.any():
        raise ValueError("cannot expand an empty structure")
    edt, idx = ndimage.distance_transform_edt(~inside, sampling=sampling, return_indices=True)
    f_near = values[idx[0], idx[1], idx[2]]
    return np.maximum(edt + (0.5 - f_near) * h[:, None, None], 0.0)


def distance_to(occ: Occupancy, pts: np.ndarray) -> np.ndarray:
    """Distance (mm) from points ``(n, 3)`` to the structure: exact where the contours are known,
    else from a distance transform of its lattice (nearest occupied cell centre)."""
    if occ.slabs is not None:
        return points_distance(occ.slabs, pts)
    from scipy.spatial import cKDTree

    k, j, i = np.nonzero(occ.values >= 0.5)
    if k.size == 0:
        raise ValueError(f"structure '{occ.name}' is empty")
    x, y, z = occ.centres()
    tree = cKDTree(np.column_stack([x[i], y[j], z[k]]))
    d, _ = tree.query(pts)
    return d
