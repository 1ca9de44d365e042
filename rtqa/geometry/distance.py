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
from rtqa.geometry.slabs import SlabStack, contains_points

#: Point spacing (mm) of the coarse surface sampling used to classify far points.
COARSE_STEP_MM = 2.0


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


def surface_points(slabs: SlabStack, step_mm: float | None = None) -> np.ndarray:
    """Points ``(n, 3)`` covering the surface of the slab stack no further apart than about
    ``step_mm`` (default: 0.25 mm, coarser for large structures to stay near 2 million points):
    the side walls of every slab and the parts of its top and bottom faces not covered by the
    neighbouring slab."""
    if step_mm is None:
        sizes = zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True)
        walls = sum(g.length * (hi - lo) for g, lo, hi in sizes)
        area = walls + 2.0 * float(np.sum(slabs.areas_mm2))
        step_mm = max(0.25, math.sqrt(area / 2e6))
    from rtqa.geometry.raster import _boundary_points

    chunks = []
    n = len(slabs.geoms)
    for p, (geom, lo, hi) in enumerate(zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True)):
        if geom.is_empty:
            continue
        ring = _boundary_points(geom, step_mm)
        nz = max(math.ceil((hi - lo) / step_mm), 1)
        zs = np.linspace(lo, hi, nz + 1)
        chunks.append(np.column_stack([np.tile(ring, (zs.size, 1)), np.repeat(zs, ring.shape[0])]))
        for q, z in ((p - 1, lo), (p + 1, hi)):
            face = geom
            if 0 <= q < n and abs((slabs.hi_mm[q] if q < p else slabs.lo_mm[q]) - z) < 1e-6:
                face = shapely.difference(geom, slabs.geoms[q])
            if face.is_empty or face.area <= 0:
                continue
            xmin, ymin, xmax, ymax = face.bounds
            gx, gy = np.meshgrid(
                np.arange(xmin, xmax + step_mm, step_mm), np.arange(ymin, ymax + step_mm, step_mm)
            )
            inside = shapely.contains_xy(face, gx, gy)
            pts = np.concatenate(
                [np.column_stack([gx[inside], gy[inside]]), _boundary_points(face, step_mm)]
            )
            chunks.append(np.column_stack([pts, np.full(pts.shape[0], z)]))
    return np.concatenate(chunks) if chunks else np.empty((0, 3))


def points_distance(
    slabs: SlabStack, pts: np.ndarray, around_mm: float | None = None
) -> np.ndarray:
    """Distance (mm) from points ``(n, 3)`` (x, y, z) to the slab stack: 0 inside, else the
    distance to the nearest of :func:`surface_points` (a k-d tree; the error is at most half
    the point spacing next to the surface and falls as ``spacing^2 / distance`` away from it).

    Without ``around_mm`` every point is measured finely. With it, only points whose distance
    may lie within a coarse sampling step of ``around_mm`` are; the others get a coarse distance
    (``inf`` when far beyond), on the right side of ``around_mm`` (enough to classify them).
    """
    inside = contains_points(slabs, pts, closed=True)
    d = np.zeros(pts.shape[0])
    out = np.nonzero(~inside)[0]
    if out.size == 0:
        return d
    coarse, step = _tree(slabs, coarse=True)
    if around_mm is None:
        fine, _ = _tree(slabs, coarse=False)
        d[out], _ = fine.query(pts[out])
        return d
    else:
        # beyond around + step the coarse distance is only known to be larger: inf
        d[out], _ = coarse.query(pts[out], distance_upper_bound=around_mm + 2 * step)
        out = out[np.abs(d[out] - around_mm) <= step + 1e-9]
    if out.size:
        # surface points 1 mm apart err by < step^2 / (8 (d - step)): < 0.02 mm beyond 8 mm
        fine, _ = _tree(slabs, coarse=False, step_mm=1.0 if around_mm >= 8.0 else None)
        d[out], _ = fine.query(pts[out])
    return d


def _tree(slabs: SlabStack, coarse: bool, step_mm: float | None = None):
    """Cached k-d tree of the surface points and its sampling step (mm)."""
    from scipy.spatial import cKDTree

    step = COARSE_STEP_MM if coarse else step_mm
    key = f"_surface_tree_{step}"
    cached = slabs.__dict__.get(key)
    if cached is None:
        cached = (cKDTree(surface_points(slabs, step)), step or 0.0)
        object.__setattr__(slabs, key, cached)
    return cached


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


def distance_to(occ: Occupancy, pts: np.ndarray, around_mm: float | None = None) -> np.ndarray:
    """Distance (mm) from points ``(n, 3)`` to the structure: where the contours are known, to
    points covering their surface (:func:`points_distance`: off by at most half the point
    spacing next to the surface), else to the nearest occupied cell centre of its lattice."""
    if occ.slabs is not None:
        return points_distance(occ.slabs, pts, around_mm)
    from scipy.spatial import cKDTree

    k, j, i = np.nonzero(occ.values >= 0.5)
    if k.size == 0:
        raise ValueError(f"structure '{occ.name}' is empty")
    x, y, z = occ.centres()
    tree = cKDTree(np.column_stack([x[i], y[j], z[k]]))
    d, _ = tree.query(pts)
    return d
