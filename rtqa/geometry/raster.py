"""Exact in-plane coverage: the fraction of each pixel of a regular grid covered by a polygon.

Pixels whose four corners are covered and that no boundary passes through are 1 (tested with
``shapely.intersects_xy`` on the corner lattice); pixels that a boundary crosses or touches get
the exact area of ``polygon ∩ pixel`` (``shapely.intersection`` on an array of boxes); all others
are 0. Vectorised: no loop over pixels.
"""

from __future__ import annotations

import numpy as np
import shapely


def pixel_fractions(geom: shapely.Geometry, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """Fraction (0..1) of each pixel covered by ``geom``: array ``(ny, nx)`` for the pixels
    between uniform ``y_edges`` (ny + 1) and ``x_edges`` (nx + 1), in mm."""
    ny, nx = y_edges.size - 1, x_edges.size - 1
    out = np.zeros((ny, nx))
    if geom.is_empty or nx <= 0 or ny <= 0:
        return out
    dx = (x_edges[-1] - x_edges[0]) / nx
    dy = (y_edges[-1] - y_edges[0]) / ny
    xmin, ymin, xmax, ymax = geom.bounds
    i0 = max(int(np.floor((xmin - x_edges[0]) / dx)) - 1, 0)
    i1 = min(int(np.ceil((xmax - x_edges[0]) / dx)) + 1, nx)
    j0 = max(int(np.floor((ymin - y_edges[0]) / dy)) - 1, 0)
    j1 = min(int(np.ceil((ymax - y_edges[0]) / dy)) + 1, ny)
    if i0 >= i1 or j0 >= j1:
        return out
    xe = x_edges[i0 : i1 + 1]
    ye = y_edges[j0 : j1 + 1]
    shapely.prepare(geom)
    cx, cy = np.meshgrid(xe, ye)
    corner = shapely.intersects_xy(geom, cx, cy)
    all_in = corner[:-1, :-1] & corner[1:, :-1] & corner[:-1, 1:] & corner[1:, 1:]
    any_in = corner[:-1, :-1] | corner[1:, :-1] | corner[:-1, 1:] | corner[1:, 1:]
    boundary = all_in != any_in
    # pixels the boundary passes through (catches slivers and features smaller than a pixel)
    pts = _boundary_points(geom, 0.25 * min(dx, dy))
    if pts.size:
        tiny = 1e-7 * max(dx, dy)
        for sx in (-tiny, tiny):
            for sy in (-tiny, tiny):
                ii = np.floor((pts[:, 0] + sx - xe[0]) / dx).astype(np.int64)
                jj = np.floor((pts[:, 1] + sy - ye[0]) / dy).astype(np.int64)
                ok = (ii >= 0) & (ii < xe.size - 1) & (jj >= 0) & (jj < ye.size - 1)
                boundary[jj[ok], ii[ok]] = True
    local = np.where(all_in, 1.0, 0.0)
    jb, ib = np.nonzero(boundary)
    if jb.size:
        boxes = shapely.box(xe[ib], ye[jb], xe[ib + 1], ye[jb + 1])
        local[jb, ib] = np.clip(shapely.area(shapely.intersection(boxes, geom)) / (dx * dy), 0, 1)
    out[j0:j1, i0:i1] = local
    return out


def _boundary_points(geom: shapely.Geometry, step: float) -> np.ndarray:
    """Points along every ring of ``geom``, no further apart than ``step`` (mm)."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    chunks = []
    for ring in rings:
        c = shapely.get_coordinates(ring)
        if c.shape[0] < 2:
            continue
        a, b = c[:-1], c[1:]
        n = np.maximum(np.ceil(np.hypot(*(b - a).T) / step).astype(np.int64), 1)
        seg = np.repeat(np.arange(a.shape[0]), n)
        t = (np.arange(seg.size) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
        chunks.append(a[seg] + (b - a)[seg] * t[:, None])
        chunks.append(c[-1:])
    return np.concatenate(chunks) if chunks else np.empty((0, 2))
