"""The range of dose present around each lattice cell, and sample intervals kept within it.

A trilinear, edge-clamped dose field over a lattice cell (:mod:`rtqa.geometry.sampling`) takes
values between the lowest and highest dose-grid node of the interpolation intervals the cell
overlaps (at most three nodes per axis: a cell is no larger than its dose voxel). A sample's
uniform dose interval (its dose -/+ half its spread) is kept within that range
(:func:`clip_intervals`), so that at a kink of the field (a plateau edge, the clamped outer half
voxel, a field falling to 0 Gy) no interval reaches beyond the dose present there.

The ranges are computed separably in float32 (four times faster than float64) and moved
outward by one float32 step where they are used (:func:`outward`): bounds of the float64 node
values, loose by about 1e-7 of the dose, below any dose grid's own resolution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtqa.model import DoseGrid

if TYPE_CHECKING:
    from rtqa.geometry.sampling import Occupancy


class NodeRanges:
    """The lowest and highest dose-grid node around each lattice cell of an occupancy: the nodes
    of the interpolation intervals the cell overlaps along each axis (at most three nodes per
    axis, as a cell is no larger than its dose voxel). A trilinear, edge-clamped field takes
    values between the lowest and highest of them everywhere in the cell. Computed separably
    (axis by axis) for a block of lattice planes at a time, in float32 moved outward
    (:func:`outward`)."""

    def __init__(self, grid: DoseGrid, windows):
        wz, wy, wx = windows
        ys = slice(int(wy[0].min()), int(wy[2].max()) + 1)
        xs = slice(int(wx[0].min()), int(wx[2].max()) + 1)
        self.block = grid.dose_gy[:, ys, xs]
        self.wz = wz
        self.wy = tuple(w - ys.start for w in wy)
        self.wx = tuple(w - xs.start for w in wx)

    @classmethod
    def of(cls, occ: Occupancy, grid: DoseGrid) -> NodeRanges | None:
        """The bounds of ``occ``'s cells on ``grid``; None for an empty occupancy."""
        if occ.values.size == 0:
            return None
        k0, j0, i0 = occ.offset
        nz, ny, nx = occ.values.shape
        lat = occ.lattice
        windows = (
            _node_window(grid.z_mm, lat.z_edges_mm[k0 : k0 + nz + 1]),
            _node_window(grid.y_mm, lat.y_edges_mm[j0 : j0 + ny + 1]),
            _node_window(grid.x_mm, lat.x_edges_mm[i0 : i0 + nx + 1]),
        )
        return cls(grid, windows)

    def __call__(self, ks: int, ke: int) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) node value around each cell of lattice planes ``ks:ke`` (Gy, float32
        rounded to nearest: :func:`outward` makes them bounds)."""
        wz = tuple(w[ks:ke] for w in self.wz)
        zs = slice(int(wz[0].min()), int(wz[2].max()) + 1)
        parts = [self.block[zs].astype(np.float32).take(w - zs.start, axis=0) for w in wz]
        low, high = _least(parts), _most(parts)
        for axis, window in ((1, self.wy), (2, self.wx)):
            low = _least([low.take(w, axis=axis) for w in window])
            high = _most([high.take(w, axis=axis) for w in window])
        return low, high


def _least(parts: list[np.ndarray]) -> np.ndarray:
    return np.minimum(np.minimum(parts[0], parts[1]), parts[2])


def _most(parts: list[np.ndarray]) -> np.ndarray:
    return np.maximum(np.maximum(parts[0], parts[1]), parts[2])


def clip_intervals(
    ranges: tuple[np.ndarray, np.ndarray],
    mask: np.ndarray,
    doses: np.ndarray,
    spreads: np.ndarray,
    partial: np.ndarray | None = None,
) -> None:
    """Keep the intervals ``doses -/+ spreads / 2`` of the occupied cells of a block of planes
    (in mask order) within their cells' node ranges ``(low, high)`` (float32 block arrays, see
    :func:`outward`), in place. A whole cell's interval is clipped and the sample becomes the
    clipped interval (its middle as the dose, its width as the spread); a partial cell's
    (positions ``partial``) is narrowed about its dose, which stays the dose at the centroid
    of the occupied part."""
    low, high = ranges[0][mask], ranges[1][mask]
    half = 0.5 * spreads
    # candidates against the float32 extremes; the outward bounds (looser) decide
    out = np.flatnonzero((doses - half < low) | (doses + half > high))
    if out.size == 0:
        return
    low, high = outward(low[out], high[out])
    d, h = doses[out], half[out]
    if partial is not None and partial.size:
        is_part = np.zeros(doses.size, dtype=bool)
        is_part[partial] = True
        narrow = is_part[out]
        if narrow.any():
            room = np.minimum(high[narrow] - d[narrow], d[narrow] - low[narrow])
            spreads[out[narrow]] = np.minimum(2.0 * h[narrow], 2.0 * np.maximum(room, 0.0))
            keep = ~narrow
            out, d, h, low, high = out[keep], d[keep], h[keep], low[keep], high[keep]
    lo = np.maximum(d - h, low)
    hi = np.maximum(np.minimum(d + h, high), lo)
    doses[out] = 0.5 * (lo + hi)
    spreads[out] = hi - lo


def node_range_of_block(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest of the 3 x 3 x 3 nodes around every node of a block with a rim of
    one node on every side (as the sampler's node path builds it): the node range of factor-1
    cells, whose centres are nodes, separably, in float32 rounded to nearest (:func:`outward`
    makes them bounds)."""
    low = high = block.astype(np.float32)
    for axis in range(3):
        shifted = []
        for part in (slice(0, -2), slice(1, -1), slice(2, None)):
            at = [slice(None)] * 3
            at[axis] = part
            shifted.append(tuple(at))
        low = _least([low[at] for at in shifted])
        high = _most([high[at] for at in shifted])
    return low, high


def outward(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 extremes of float64 values moved out by one float32 step: bounds of the float64
    values again (each was rounded by at most half a step). Float32 keeps the separable passes
    four times faster; the bounds are loose by about 1e-7 of the dose, below any dose grid's
    own resolution. Only the few samples that reach the float32 extremes are moved."""
    inf = np.float32(np.inf)
    return np.nextafter(low, -inf), np.nextafter(high, inf)


def _node_window(centres: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per cell between consecutive ``edges`` (mm), three node indices ``(a, m, b)`` covering the
    nodes ``a..b`` of the interpolation intervals the cell overlaps (clamped to the grid; a cell
    spans at most two intervals, so ``b - a <= 2``)."""
    n = centres.size
    lo, hi = edges[:-1], edges[1:]
    a = np.clip(np.searchsorted(centres, lo, side="right") - 1, 0, n - 1)
    b = np.clip(np.searchsorted(centres, hi, side="left"), 0, n - 1)
    b = np.maximum(a, b)
    if np.any(b - a > 2):
        raise AssertionError("a lattice cell spans more than two dose intervals")
    return a, np.minimum(a + 1, b), b
