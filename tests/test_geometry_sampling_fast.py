"""Dose sampling of occupancies: the node fast path (factor 1, cell centres on dose nodes), the
separable general path and the one-pass partial-cell samples, each against an independent
trilinear interpolation (scipy) at the documented sample points, and against each other."""

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from rtqa.geometry.sampling import (
    _InterpolatedCells,
    _node_axes,
    _NodeCells,
    _sample,
    occupancy,
    sample_doses,
)
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi


def ngon(cx, cy, r, n=40):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def roi_from(zs, ring):
    return Roi(1, "S", planes=tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs))


def dose_fn(x, y, z):
    """Smooth, curved in every axis: interpolation errors of a wrong stencil would show."""
    return 10.0 + 0.3 * x - 0.2 * y + 0.05 * z + 0.01 * x * y + 0.002 * z * z + np.sin(x / 7.0)


def make_grid(x, y, z):
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    return DoseGrid(
        dose_fn(X, Y, Z), np.asarray(x, float), np.asarray(y, float), np.asarray(z, float), None
    )


def reference(occ, grid):
    """Doses and spreads of the occupied cells, from the definitions in the docstrings: a
    clamped trilinear dose (scipy on positions clipped to the grid) at the cell centre or the
    partial centroid, spread from the points half a width either side along each axis."""
    f = RegularGridInterpolator((grid.z_mm, grid.y_mm, grid.x_mm), grid.dose_gy)
    lo = np.array([grid.x_mm[0], grid.y_mm[0], grid.z_mm[0]])
    hi = np.array([grid.x_mm[-1], grid.y_mm[-1], grid.z_mm[-1]])

    def at(p):
        q = np.clip(p, lo, hi)
        return f(q[:, ::-1])

    flat = np.flatnonzero(occ.values)
    k, j, i = np.unravel_index(flat, occ.values.shape)
    x, y, z = occ.centres()
    k0 = occ.offset[0]
    lat = occ.lattice
    pts = np.column_stack([x[i], y[j], z[k]])
    width = np.column_stack(
        [np.full(flat.size, lat.dx), np.full(flat.size, lat.dy), lat.dz[k0 + k]]
    )
    if occ.partial is not None:
        where = np.searchsorted(flat, occ.partial.index)
        pts[where] += occ.partial.offset_mm
        width[where] = occ.partial.width_mm
    var = np.zeros(flat.size)
    for a in range(3):
        p, m = pts.copy(), pts.copy()
        p[:, a] += width[:, a] / 2
        m[:, a] -= width[:, a] / 2
        var += (at(p) - at(m)) ** 2
    is_partial = np.zeros(flat.size, dtype=bool)
    if occ.partial is not None:
        is_partial[np.searchsorted(flat, occ.partial.index)] = True
    return clipped(at(pts), np.sqrt(var), *node_range(occ, grid, flat), is_partial)


def node_range(occ, grid, flat):
    """Lowest and highest grid node over the nodes of every interpolation interval each cell
    (the whole lattice cell, also for a partial one) overlaps: fractional node indices of the
    cell's edges by np.interp, floor and ceil, and the extremes over that index box."""
    k, j, i = np.unravel_index(flat, occ.values.shape)
    k0, j0, i0 = occ.offset
    lat = occ.lattice
    boxes = []
    for centres, edges, idx in (
        (grid.z_mm, lat.z_edges_mm, k + k0),
        (grid.y_mm, lat.y_edges_mm, j + j0),
        (grid.x_mm, lat.x_edges_mm, i + i0),
    ):
        at = np.arange(centres.size, dtype=float)
        first = np.floor(np.interp(edges[idx], centres, at) + 1e-9).astype(int)
        last = np.ceil(np.interp(edges[idx + 1], centres, at) - 1e-9).astype(int)
        boxes.append((first, np.maximum(first, last)))
    low = np.full(flat.size, np.inf)
    high = np.full(flat.size, -np.inf)
    for dz in range(3):
        for dy in range(3):
            for dx in range(3):
                kk, jj, ii = (
                    np.minimum(b[0] + o, b[1]) for b, o in zip(boxes, (dz, dy, dx), strict=True)
                )
                value = grid.dose_gy[kk, jj, ii]
                low, high = np.minimum(low, value), np.maximum(high, value)
    # the documented float32 bounds, one float32 step outward
    inf = np.float32(np.inf)
    return np.nextafter(low.astype(np.float32), -inf), np.nextafter(high.astype(np.float32), inf)


def clipped(d, s, low, high, is_partial):
    """Whole cells: the intervals d -/+ s/2 clipped to [low, high], as (middle, width); partial
    cells: the width narrowed about d to fit."""
    lo = np.maximum(d - s / 2, low)
    hi = np.maximum(np.minimum(d + s / 2, high), lo)
    out = ((d - s / 2 < low) | (d + s / 2 > high)) & ~is_partial
    narrow = np.minimum(s, 2 * np.maximum(np.minimum(high - d, d - low), 0.0))
    width = np.where(is_partial, narrow, np.where(out, hi - lo, s))
    return np.where(out, (lo + hi) / 2, d), width


# a structure reaching beyond the grid in x (right edge) and z (top), inside it elsewhere
EVEN = make_grid(
    np.arange(-20.0, 20.1, 2.0), np.arange(-16.0, 16.1, 2.0), np.arange(-12.0, 12.1, 2.0)
)
RING = ngon(12.0, 0.0, 10.3)  # x up to 22.3 mm: past the last node (20) and the grid edge (21)
ZS = np.arange(-5.0, 16.0, 1.5)  # up to 15 mm: past the top frame (12)


def test_node_fast_path_applies_and_matches_the_independent_reference():
    occ = occupancy(roi_from(ZS, RING), EVEN, factors=(1, 1, 1))
    assert occ.outside_cc > 0  # the structure does reach beyond the grid
    nodes = _node_axes(occ, EVEN)
    assert nodes is not None  # the fast path is taken here
    d, v, s = sample_doses(occ, EVEN)
    d_ref, s_ref = reference(occ, EVEN)
    np.testing.assert_allclose(d, d_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)
    assert v.sum() == pytest.approx(occ.volume_cc, rel=1e-12)


@pytest.mark.parametrize("symmetric", [True, False])
def test_node_fast_path_equals_the_general_path(symmetric):
    occ = occupancy(roi_from(ZS, RING), EVEN, factors=(1, 1, 1))
    occ.partial = None  # whole-cell sampling everywhere: compare the two whole-cell paths
    nodes = _node_axes(occ, EVEN)
    fast = _NodeCells(occ, EVEN, nodes, symmetric=symmetric)
    if symmetric:
        assert all(h == 0.5 for *_, h in fast.axes)
    else:
        assert all(h is None for *_, h in fast.axes)
    general = _InterpolatedCells(occ, EVEN)
    nz = occ.values.shape[0]
    for ks, ke in ((0, 3), (3, nz)):  # blocks touching the bottom and the top of the grid
        mask = occ.values[ks:ke] > 0
        d1, s1 = fast(ks, ke, mask)
        d2, s2 = general(ks, ke, mask)
        np.testing.assert_array_equal(d1, d2)  # node values, taken directly by both
        np.testing.assert_allclose(s1, s2, rtol=1e-12, atol=1e-12)


def test_edge_cells_use_the_clamped_half_difference():
    # at the last x node the +x half point lies beyond it: the dose there is the node's, so the
    # x term is half the difference to the previous node (linear dose: a * dx / 2); the interval
    # is then clipped to the dose present around the cell
    x = np.arange(0.0, 10.1, 2.0)
    g = DoseGrid(
        np.broadcast_to(3.0 * x, (5, 5, x.size)).copy(), x, x[:5].copy(), x[:5].copy(), None
    )
    ring = np.array([[5.0, 3.0], [12.0, 3.0], [12.0, 5.0], [5.0, 5.0]])  # cells i = 3, 4 whole
    occ = occupancy(roi_from([3.0, 5.0], ring), g, factors=(1, 1, 1))
    assert _node_axes(occ, g) is not None
    d, _, s = sample_doses(occ, g)
    flat = np.flatnonzero(occ.values)
    i = np.unravel_index(flat, occ.values.shape)[2]
    xi = occ.centres()[0][i]
    whole = occ.values.reshape(-1)[flat] >= 1.0
    interior = whole & (xi == 6.0)
    edge = whole & (xi == 10.0)
    assert interior.any() and edge.any()
    np.testing.assert_allclose(d[interior], 18.0, rtol=1e-14)
    np.testing.assert_allclose(s[interior], 3.0 * 2.0, rtol=1e-14)
    # the interval 30 -/+ 1.5 clipped at the highest node (30): [28.5, 30], whose middle is the
    # exact mean of the clamped dose over the cell [9, 11] mm (27..30 Gy, then 30 Gy)
    np.testing.assert_allclose(d[edge], 29.25, rtol=1e-7)
    np.testing.assert_allclose(s[edge], 1.5, rtol=1e-5)


def test_uneven_frames_take_the_general_path_and_match_the_reference():
    z = np.array([-12.0, -9.0, -7.0, -4.0, -3.0, 0.0, 2.0, 5.0, 9.0, 12.0])
    g = make_grid(EVEN.x_mm, EVEN.y_mm, z)
    occ = occupancy(roi_from(ZS, RING), g, factors=(1, 1, 1))
    assert _node_axes(occ, g) is None  # lattice centres are not frames where spacing changes
    d, _, s = sample_doses(occ, g)
    d_ref, s_ref = reference(occ, g)
    np.testing.assert_allclose(d, d_ref, rtol=1e-12)
    np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)


def test_even_part_of_an_uneven_grid_still_takes_the_fast_path_exactly():
    # frames even (2 mm) around the structure, uneven far from it
    z = np.concatenate([[-30.0, -21.0, -15.0], np.arange(-12.0, 12.1, 2.0)])
    g = make_grid(EVEN.x_mm, EVEN.y_mm, z)
    occ = occupancy(roi_from(np.arange(-5.0, 4.0, 1.5), ngon(0, 0, 9)), g, factors=(1, 1, 1))
    assert _node_axes(occ, g) is not None
    d, _, s = sample_doses(occ, g)
    d2, _, s2 = _sample(occ, g, 250_000, nodes=None)
    d_ref, s_ref = reference(occ, g)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_allclose(s, s2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d, d_ref, rtol=1e-12)
    np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("factors", [(2, 2, 2), (3, 4, 5)])
def test_subdivided_lattice_and_partial_cells_match_the_reference(factors):
    occ = occupancy(roi_from(ZS, RING), EVEN, factors=factors)
    assert occ.partial is not None and occ.partial.index.size > 100
    assert _node_axes(occ, EVEN) is None
    for chunk in (250_000, 3_000):  # plane blocks of any size give the same samples
        d, v, s = sample_doses(occ, EVEN, chunk=chunk)
        d_ref, s_ref = reference(occ, EVEN)
        np.testing.assert_allclose(d, d_ref, rtol=1e-12)
        np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)
        assert v.sum() == pytest.approx(occ.volume_cc, rel=1e-12)


def test_volume_is_the_sum_of_fractions_times_cell_volumes():
    z = np.array([-12.0, -9.0, -7.0, -4.0, -3.0, 0.0, 2.0, 5.0, 9.0, 12.0])
    g = make_grid(EVEN.x_mm, EVEN.y_mm, z)
    occ = occupancy(roi_from(ZS, RING), g, factors=(1, 2, 2))
    lat = occ.lattice
    k0 = occ.offset[0]
    dz = lat.dz[k0 : k0 + occ.values.shape[0]]
    expected = sum(
        float(np.sum(occ.values[k], dtype=np.float64)) * dz[k] * lat.dx * lat.dy
        for k in range(dz.size)
    )
    assert occ.volume_cc == pytest.approx(expected / 1000.0, rel=1e-13)


def test_centre_and_spread_by_slopes_equals_seven_separate_interpolations():
    from rtqa.geometry.sampling import _axis_weights, _centre_and_spread

    x = np.arange(-10.0, 10.1, 2.5)
    y = np.arange(-6.0, 6.1, 2.0)
    z = np.array([-9.0, -6.0, -3.0, -1.0, 0.0, 2.0, 5.0, 9.0])  # uneven frames
    grid = make_grid(x, y, z)
    rng = np.random.default_rng(3)
    n = 4000
    # centres inside and just beyond the grid; half-widths from tiny (same interval) to more
    # than a voxel (neighbouring intervals, clamped edges)
    p = rng.uniform([-11.0, -7.0, -10.0], [11.0, 7.0, 10.0], size=(n, 3))
    half = rng.choice([0.01, 0.3, 1.4, 3.5], size=(n, 3))
    interp = RegularGridInterpolator((z, y, x), grid.dose_gy)

    def dose_at(q):
        q = np.clip(q, [x[0], y[0], z[0]], [x[-1], y[-1], z[-1]])  # clamped, not extrapolated
        return interp(q[:, ::-1])

    weights = [
        _axis_weights(c, np.concatenate([p[:, a], p[:, a] - half[:, a], p[:, a] + half[:, a]]))
        for a, c in ((2, z), (1, y), (0, x))
    ]
    dose, spread = _centre_and_spread(grid.dose_gy, *weights, n)
    var = np.zeros(n)
    for a in range(3):
        step = np.zeros((n, 3))
        step[:, a] = half[:, a]
        var += (dose_at(p + step) - dose_at(p - step)) ** 2
    np.testing.assert_allclose(dose, dose_at(p), rtol=0, atol=1e-12)
    np.testing.assert_allclose(spread, np.sqrt(var), rtol=0, atol=1e-11)
    # both branches were taken: slopes within one interval and separate interpolations
    within = np.abs(half[:, 0]) < 0.05
    assert within.sum() > 500 and (~within).sum() > 500


def test_partial_centroids_stay_in_their_cell_when_moments_are_rounding_noise(monkeypatch):
    """A sliver's moments can be mostly rounding (area 1e-20 of the pixel, first moments of
    1e-15): the centroid is then clamped into the cell, never sampled mm away (which once set a
    structure's minimum dose from outside it)."""
    import rtqa.geometry.raster as raster

    real = raster.coverage

    def noisy(geoms, xe, ye):
        cov = real(geoms, xe, ye)
        mom = cov.moments.reshape(cov.key.size, 5).copy()
        mom[:, 0] = 1e-20
        mom[:, 1] = 1e-15
        mom[:, 2] = -1e-15
        return raster.PixelCoverage(cov.fraction, cov.key, mom.reshape(cov.moments.shape))

    monkeypatch.setattr(raster, "coverage", noisy)
    x = np.arange(0.0, 30.0, 2.0)
    grid = make_grid(x, x, np.arange(0.0, 20.0, 2.0))
    occ = occupancy(roi_from([6.0, 8.0, 10.0], ngon(14.0, 14.0, 6.3)), grid, factors=(1, 1, 1))
    part = occ.partial
    assert part is not None and part.index.size > 20
    lat = occ.lattice
    half = 0.5 * np.array([lat.dx, lat.dy])
    # without the clamp the offsets would be 1e5 cells
    assert np.all(np.abs(part.offset_mm[:, :2]) <= half + 1e-12)
    assert np.max(np.abs(part.offset_mm[:, 0])) == pytest.approx(half[0])
