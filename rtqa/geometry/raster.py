"""Exact in-plane coverage: the part of each pixel of a regular grid covered by a polygon, with
the first and second moments of that part.

Method (pure numpy, no loop over pixels or planes): Green's theorem on every pixel. With
``G(x, y) = integral of f from the pixel's bottom edge to y``, the integral of ``f`` over
``polygon ∩ pixel`` is the sum of ``-∮ G dx`` along the polygon's edges clipped to the pixel
(rings oriented counter-clockwise, holes clockwise) plus ``∫ G dx`` along the part of the pixel's
top edge inside the polygon. The clipped edge pieces are straight, and ``G`` is at most cubic
along them for ``f`` in ``1, u, v, u^2, v^2`` (pixel-centred coordinates), so Simpson's rule
integrates them exactly; the covered parts of each horizontal pixel edge come from the exact
crossings of the rings with that line (even-odd intervals, crossings counted for
``min(y_a, y_b) < y <= max(y_a, y_b)``, i.e. just below the line). Interior pixels get exactly
1 from the intervals alone; the result is exact up to floating-point rounding.

Many planes are handled in one batch (each ring carries its plane index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely


@dataclass(frozen=True, eq=False)
class PixelCoverage:
    """Coverage of ``planes`` polygons on one pixel grid (``ny`` x ``nx`` pixels).

    ``fraction[p, j, i]`` is the covered fraction (0..1) of pixel ``(j, i)`` on plane ``p``.
    Boundary pixels (those a polygon edge passes through) are listed in ``key`` (sorted flat
    index ``(p * ny + j) * nx + i``) with their moments in pixel units, pixel-centred
    coordinates ``u, v`` in ``[-1/2, 1/2]``: ``moments[:, m]`` = integrals of
    ``1, u, v, u^2, v^2`` over the covered part. A fully covered pixel has ``(1, 0, 0, 1/12,
    1/12)``."""

    fraction: np.ndarray
    key: np.ndarray
    moments: np.ndarray


FULL_MOMENTS = np.array([1.0, 0.0, 0.0, 1.0 / 12.0, 1.0 / 12.0])


def ring_edges(geoms) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges ``(n, 4)`` (xa, ya, xb, yb) of every ring of ``geoms`` (exteriors
    counter-clockwise, holes clockwise) and the index of the geometry each edge belongs to."""
    geoms = np.asarray(geoms, dtype=object)
    oriented = shapely.orient_polygons(geoms)
    parts, part_of = shapely.get_parts(oriented, return_index=True)
    kinds = shapely.get_type_id(parts)
    keep = kinds == 3  # polygons only (make_valid may have left lines or points)
    parts, part_of = parts[keep], part_of[keep]
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    if coords.shape[0] < 2:
        return np.empty((0, 4)), np.empty(0, dtype=np.int64)
    same = idx[:-1] == idx[1:]
    edges = np.column_stack([coords[:-1][same], coords[1:][same]])
    owner = part_of[ring_of[idx[:-1][same]]]
    return edges, owner.astype(np.int64)


def coverage(
    geoms, x_edges: np.ndarray, y_edges: np.ndarray, with_moments: bool = True
) -> PixelCoverage:
    """Exact coverage of each geometry of ``geoms`` (one per plane) on the pixels between the
    uniform ``x_edges`` (nx + 1) and ``y_edges`` (ny + 1), in mm."""
    geoms = list(geoms)
    n_planes = len(geoms)
    ny, nx = y_edges.size - 1, x_edges.size - 1
    frac = np.zeros((n_planes, max(ny, 0), max(nx, 0)), dtype=np.float32)
    empty = PixelCoverage(frac, np.empty(0, dtype=np.int64), np.empty((0, 5)))
    if n_planes == 0 or nx <= 0 or ny <= 0:
        return empty
    e, plane = ring_edges(geoms)
    if e.shape[0] == 0:
        return empty
    x0, y0 = float(x_edges[0]), float(y_edges[0])
    dx = (float(x_edges[-1]) - x0) / nx
    dy = (float(y_edges[-1]) - y0) / ny
    # pixel units: pixel (j, i) is [i, i + 1] x [j, j + 1]
    ua, va = (e[:, 0] - x0) / dx, (e[:, 1] - y0) / dy
    ub, vb = (e[:, 2] - x0) / dx, (e[:, 3] - y0) / dy
    p_keys, pa, pb = _top_intervals(frac, ua, va, ub, vb, plane, nx, ny)
    keys, mom = _edge_pieces(ua, va, ub, vb, plane, nx, ny)
    flat = frac.reshape(-1)
    ukey, inv = np.unique(keys, return_inverse=True)
    whole = flat[ukey].astype(float)  # whole top edges so far (0 or 1, exact)
    np.add.at(flat, p_keys, (pb - pa).astype(np.float32))
    if ukey.size == 0:
        np.clip(frac, 0.0, 1.0, out=frac)
        return PixelCoverage(frac, ukey, np.empty((0, 5)))
    sums = np.empty((ukey.size, 5))
    for m in range(5):
        sums[:, m] = np.bincount(inv, weights=mom[:, m], minlength=ukey.size)
    # the boundary pixels' own top-edge terms, in double precision
    at = np.minimum(np.searchsorted(ukey, p_keys), ukey.size - 1)
    hit = ukey[at] == p_keys
    at, qa, qb = at[hit], pa[hit] - 0.5, pb[hit] - 0.5
    top_len = whole + np.bincount(at, weights=qb - qa, minlength=ukey.size)
    sums[:, 0] += top_len
    if with_moments:
        sums[:, 1] += np.bincount(at, weights=(qb**2 - qa**2) / 2.0, minlength=ukey.size)
        sums[:, 3] += whole / 12.0
        sums[:, 3] += np.bincount(at, weights=(qb**3 - qa**3) / 3.0, minlength=ukey.size)
        sums[:, 4] += top_len / 12.0
    flat[ukey] = sums[:, 0]
    np.clip(frac, 0.0, 1.0, out=frac)
    np.clip(sums[:, 0], 0.0, 1.0, out=sums[:, 0])
    return PixelCoverage(frac, ukey, sums)


def _crossings(ua, va, ub, vb, plane, ny):
    """Crossings of the edges with the lines v = 1..ny (just below each line): (line, plane, u)."""
    lo, hi = np.minimum(va, vb), np.maximum(va, vb)
    first = np.maximum(np.floor(lo).astype(np.int64) + 1, 1)
    last = np.minimum(np.floor(hi).astype(np.int64), ny)
    # a line exactly at ``hi`` counts (min < L <= max); floor(hi) handles it
    count = np.maximum(last - first + 1, 0)
    count[va == vb] = 0
    n = int(count.sum())
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    edge = np.repeat(np.arange(ua.size), count)
    line = first[edge] + (np.arange(n) - np.repeat(np.cumsum(count) - count, count))
    t = (line - va[edge]) / (vb[edge] - va[edge])
    u = ua[edge] + t * (ub[edge] - ua[edge])
    return line, plane[edge], u


def _intervals(ua, va, ub, vb, plane, ny):
    """Covered intervals [a, b] (pixel units) on each line v = L, just below it: (line, plane,
    a, b), from the even-odd pairing of the sorted crossings."""
    line, pl, u = _crossings(ua, va, ub, vb, plane, ny)
    if line.size == 0:
        return line, pl, u, u
    order = np.lexsort((u, line, pl))
    line, pl, u = line[order], pl[order], u[order]
    if line.size % 2:
        raise ValueError("a contour ring is not closed (odd number of crossings)")
    return line[0::2], pl[0::2], u[0::2], u[1::2]


def _top_intervals(frac, ua, va, ub, vb, plane, nx, ny):
    """Add to ``frac`` the pixels whose top edge (pixel row j: line j + 1) is wholly covered;
    return the partly covered ones: flat keys and the covered part ``[pa, pb]`` of each in
    pixel-local coordinates (0..1)."""
    line, pl, a, b = _intervals(ua, va, ub, vb, plane, ny)
    nothing = np.empty(0, np.int64), np.empty(0), np.empty(0)
    if line.size == 0:
        return nothing
    a = np.clip(a, 0.0, nx)
    b = np.clip(b, 0.0, nx)
    ok = b > a
    line, pl, a, b = line[ok], pl[ok], a[ok], b[ok]
    row = pl * ny + (line - 1)  # pixel row index (plane, j)
    ia = np.minimum(np.floor(a).astype(np.int64), nx - 1)
    ib = np.minimum(np.floor(b).astype(np.int64), nx - 1)
    same = ia == ib
    # whole pixels ia + 1 .. ib - 1: a difference array along each row (intervals are disjoint)
    diff = np.zeros((frac.shape[0] * ny, nx + 1), dtype=np.int8)
    w = ~same & (ib > ia + 1)
    np.add.at(diff, (row[w], ia[w] + 1), 1)
    np.add.at(diff, (row[w], ib[w]), -1)
    np.cumsum(diff[:, :nx], axis=1, dtype=np.int8, out=diff[:, :nx])
    frac.reshape(-1, nx)[...] += diff[:, :nx]
    del diff
    n = int((~same).sum())
    keys = np.concatenate([row[same] * nx + ia[same], row[~same] * nx + ia[~same]])
    keys = np.concatenate([keys, row[~same] * nx + ib[~same]])
    pa = np.concatenate([(a - ia)[same], (a - ia)[~same], np.zeros(n)])
    pb = np.concatenate([(b - ia)[same], np.ones(n), (b - ib)[~same]])
    return keys, pa, pb


def _edge_pieces(ua, va, ub, vb, plane, nx, ny):
    """Edge pieces within single pixels and their contributions ``-∮ G du`` to the moments of
    ``1, u, v, u^2, v^2``: (flat pixel keys, (n, 5) contributions)."""
    du, dv = ub - ua, vb - va
    # only edges that can touch the grid, and not zero-length ones; a vertical edge adds
    # nothing to the integrals (du = 0) but its pieces list the pixels it crosses, so that a
    # pixel cut only by vertical edges still gets its moments (from its top-edge terms)
    touch = (
        (np.maximum(ua, ub) >= 0)
        & (np.minimum(ua, ub) <= nx)
        & (np.maximum(va, vb) >= 0)
        & (np.minimum(va, vb) <= ny)
        & ((du != 0) | (dv != 0))
    )
    ua, va, ub, vb, plane, du, dv = (a[touch] for a in (ua, va, ub, vb, plane, du, dv))
    if ua.size == 0:
        return np.empty(0, np.int64), np.empty((0, 5))
    ts = [np.zeros(ua.size), np.ones(ua.size)]
    owners = [np.arange(ua.size), np.arange(ua.size)]
    for a, b, d, n in ((ua, ub, du, nx), (va, vb, dv, ny)):
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        first = np.maximum(np.floor(lo).astype(np.int64) + 1, 0)
        last = np.minimum(np.ceil(hi).astype(np.int64) - 1, n)
        count = np.maximum(last - first + 1, 0)
        count[d == 0] = 0
        m = int(count.sum())
        if m:
            edge = np.repeat(np.arange(ua.size), count)
            k = first[edge] + (np.arange(m) - np.repeat(np.cumsum(count) - count, count))
            ts.append((k - a[edge]) / d[edge])
            owners.append(edge)
    t = np.concatenate(ts)
    owner = np.concatenate(owners)
    order = np.lexsort((t, owner))
    t, owner = t[order], owner[order]
    same = owner[:-1] == owner[1:]
    t1, t2, ow = t[:-1][same], t[1:][same], owner[:-1][same]
    keep = t2 > t1
    t1, t2, ow = t1[keep], t2[keep], ow[keep]
    p1u, p1v = ua[ow] + t1 * du[ow], va[ow] + t1 * dv[ow]
    p2u, p2v = ua[ow] + t2 * du[ow], va[ow] + t2 * dv[ow]
    mu, mv = 0.5 * (p1u + p2u), 0.5 * (p1v + p2v)
    i = np.floor(mu).astype(np.int64)
    j = np.floor(mv).astype(np.int64)
    ok = (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
    i, j, ow = i[ok], j[ok], ow[ok]
    p1u, p1v, p2u, p2v, mu, mv = (a[ok] for a in (p1u, p1v, p2u, p2v, mu, mv))
    # pixel-centred coordinates
    cu, cv = i + 0.5, j + 0.5
    pts = [(p1u - cu, p1v - cv), (mu - cu, mv - cv), (p2u - cu, p2v - cv)]
    wts = (1.0 / 6.0, 4.0 / 6.0, 1.0 / 6.0)
    dp = p2u - p1u
    out = np.zeros((i.size, 5))
    for (p, q), w in zip(pts, wts, strict=True):
        g1 = q + 0.5
        out[:, 0] += w * g1
        out[:, 1] += w * p * g1
        out[:, 2] += w * (q * q - 0.25) / 2.0
        out[:, 3] += w * p * p * g1
        out[:, 4] += w * (q**3 + 0.125) / 3.0
    out *= -dp[:, None]
    keys = (plane[ow] * ny + j) * nx + i
    return keys, out


def pixel_fractions(geom: shapely.Geometry, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """Fraction (0..1) of each pixel covered by ``geom``: array ``(ny, nx)`` for the pixels
    between uniform ``y_edges`` (ny + 1) and ``x_edges`` (nx + 1), in mm."""
    ny, nx = y_edges.size - 1, x_edges.size - 1
    if geom.is_empty or nx <= 0 or ny <= 0:
        return np.zeros((max(ny, 0), max(nx, 0)))
    return coverage([geom], x_edges, y_edges, with_moments=False).fraction[0]


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
