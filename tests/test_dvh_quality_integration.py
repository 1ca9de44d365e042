"""Isodose-volume integration and the D2cm search of rtqa.dvh.quality against independent
references: exact polytope volumes (scipy ConvexHull), closed-form isodose volumes, and brute
force over the trilinear field (scipy.ndimage.map_coordinates)."""

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from rtqa.dvh.quality import (
    D2CM_MM,
    SUBCELLS,
    box_fraction_at_or_above,
    isodose_volume_cc,
)
from rtqa.geometry import occupancy
from rtqa.geometry.distance import slab_distance
from rtqa.geometry.sampling import Occupancy, lattice_for, voxel_edges
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi

CUBE = np.array(list(itertools.product((0.0, 1.0), repeat=3)))


def _cut_volume(lo: np.ndarray, hi: np.ndarray, normal: np.ndarray, offset: float) -> float:
    """Volume of the box [lo, hi] where normal . x >= offset: convex hull of the box corners on
    that side and the points where the plane cuts the box edges."""
    corners = lo + CUBE * (hi - lo)
    side = corners @ normal - offset
    pts = list(corners[side >= 0])
    for a, b in itertools.combinations(range(8), 2):
        if np.count_nonzero(CUBE[a] != CUBE[b]) == 1 and side[a] * side[b] < 0:
            t = side[a] / (side[a] - side[b])
            pts.append(corners[a] + t * (corners[b] - corners[a]))
    if len(pts) < 4:
        return 0.0
    return float(ConvexHull(np.array(pts)).volume)


# --------------------------------------------------------------- the closed-form box fraction


def test_box_fraction_matches_polytope_volumes():
    rng = np.random.default_rng(7)
    n = 300
    change = rng.normal(size=(n, 3)) * 10.0 ** rng.uniform(-2, 1, size=(n, 3))
    # levels across the whole range of the linear field over the box
    s = rng.uniform(-0.48, 0.48, n) * np.abs(change).sum(axis=1)
    got = box_fraction_at_or_above(s, change)
    want = [
        _cut_volume(np.full(3, -0.5), np.full(3, 0.5), c, -v)  # c . u + s >= 0
        for v, c in zip(s, change, strict=True)
    ]
    assert np.abs(got - np.array(want)).max() < 1e-9
    assert got.min() < 0.01 and got.max() > 0.99  # the whole range is exercised


def test_box_fraction_degenerate_widths():
    # changes differing by up to 12 orders of magnitude: exact limits, no cancellation
    for tiny in (1e-6, 1e-9, 1e-12, 0.0):
        # one-dimensional ramp: fraction = clip(1/2 + s / c1)
        for s in (-0.7, -0.3, 0.0, 0.2, 0.49):
            got = box_fraction_at_or_above(np.array([s]), np.array([[1.0, tiny, tiny]]))[0]
            assert got == pytest.approx(min(max(0.5 + s, 0.0), 1.0), abs=1e-9)
        # two-dimensional (c1 = c2 = 1): near a corner the fraction is (1 - s)^2 / 2 for s > 0
        for s in (0.1, 0.5, 0.9):
            got = box_fraction_at_or_above(np.array([s]), np.array([[1.0, 1.0, tiny]]))[0]
            assert got == pytest.approx(1.0 - (1.0 - s) ** 2 / 2.0, abs=1e-9)
            got = box_fraction_at_or_above(np.array([-s]), np.array([[tiny, 1.0, 1.0]]))[0]
            assert got == pytest.approx((1.0 - s) ** 2 / 2.0, abs=1e-9)
    # three equal widths, corner tetrahedron: (3/2 - s)^3 / 6 below s = 1/2 from the far corner
    for s in (0.6, 1.0, 1.4):
        got = box_fraction_at_or_above(np.array([-s]), np.ones((1, 3)))[0]
        assert got == pytest.approx((1.5 - s) ** 3 / 6.0, abs=1e-12)
    # a constant field counts at the level (at or above)
    f = box_fraction_at_or_above(np.array([0.0, -1e-12, 1e-12]), np.zeros((3, 3)))
    assert f.tolist() == [1.0, 0.0, 1.0]


# --------------------------------------------------------------- whole isodose volumes


def _interior_body(dose: DoseGrid) -> Occupancy:
    """Occupancy 1 on every voxel but the outermost layer, where the field is clamped."""
    values = np.zeros(dose.dose_gy.shape, dtype=np.float32)
    values[1:-1, 1:-1, 1:-1] = 1.0
    return Occupancy(lattice_for(dose), (0, 0, 0), values, name="interior")


def test_linear_dose_is_exact():
    # D = g . x + c is reproduced exactly by trilinear interpolation inside the node hull; on
    # the interior voxels the isodose volume is a box cut by a plane (uneven z frames)
    z = np.cumsum([0.0, 2.0, 3.0, 2.5, 1.5, 3.0, 2.0, 2.5, 3.0])
    x = np.arange(11) * 2.5 - 12.0
    y = np.arange(10) * 2.0 - 9.0
    g = np.array([0.7, -1.1, 0.45])  # Gy/mm along x, y, z
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    dose = DoseGrid(30.0 + g[0] * X + g[1] * Y + g[2] * Z, x, y, z, None)
    body = _interior_body(dose)
    ze = voxel_edges(z)
    lo = np.array([0.5 * (x[0] + x[1]), 0.5 * (y[0] + y[1]), ze[1]])
    hi = np.array([0.5 * (x[-2] + x[-1]), 0.5 * (y[-2] + y[-1]), ze[-2]])
    for level in (22.0, 27.5, 30.0, 33.3, 38.0):
        want = _cut_volume(lo, hi, g, level - 30.0) / 1000.0
        assert 0.0 < want < np.prod(hi - lo) / 1000.0
        assert isodose_volume_cc(dose, level, body) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_cone_dose_volume_is_a_sphere():
    # D = a - b r: the level's isodose is the sphere r = (a - level) / b. Trilinear
    # interpolation of this concave dose lies below it, by at most (h^2 / 8) |laplacian D| =
    # b h^2 / (4 r); so the volume falls short, by at most 3 h^2 / (4 R (R - h)) (relative)
    h = 1.0
    ax = np.arange(-20.0, 20.0 + 1e-9, h)
    Z, Y, X = np.meshgrid(ax, ax, ax, indexing="ij")
    a, b = 60.0, 2.0
    dose = DoseGrid(a - b * np.sqrt(X**2 + Y**2 + Z**2), ax, ax, ax, None)
    for radius in (9.0, 12.5, 16.0):
        want = 4.0 / 3.0 * math.pi * radius**3 / 1000.0
        got = isodose_volume_cc(dose, a - b * radius, None)
        assert want * (1 - 0.75 * h * h / (radius * (radius - h))) < got <= want * (1 + 1e-12)


def _line_reference_cc(dose: DoseGrid, level: float, body: np.ndarray, n: int) -> float:
    """Isodose volume (cc) of the trilinear, edge-clamped field, each voxel weighted by
    ``body``. Voxels whose 27 neighbouring nodes are all at or above the level count whole;
    every other voxel is crossed by n x n lines along its steepest axis (midpoint rule across),
    each integrated exactly (the field is linear along a line between a voxel face and the
    node). Values from scipy.ndimage.map_coordinates."""
    d = dose.dose_gy
    shape = d.shape
    nodes = [dose.z_mm, dose.y_mm, dose.x_mm]
    edges = [voxel_edges(c) for c in nodes]
    vol = np.einsum("k,j,i->kji", *(np.diff(e) for e in edges))
    win = np.lib.stride_tricks.sliding_window_view(np.pad(d, 1, mode="edge"), (3, 3, 3))
    lo, hi = win.min(axis=(-3, -2, -1)), win.max(axis=(-3, -2, -1))
    total = float((vol * body)[lo >= level].sum())
    cand = np.nonzero((hi >= level) & (lo < level))
    steep = np.stack([np.abs(np.gradient(d, nodes[a], axis=a))[cand] for a in range(3)])
    axis_of = np.argmax(steep, axis=0)
    t = (np.arange(n) + 0.5) / n
    for a in range(3):
        vox = [c[axis_of == a] for c in cand]
        m = vox[0].size
        u, v = [b for b in range(3) if b != a]
        across = [
            np.repeat(edges[u][vox[u]][:, None] + np.diff(edges[u])[vox[u]][:, None] * t, n, 1),
            np.tile(edges[v][vox[v]][:, None] + np.diff(edges[v])[vox[v]][:, None] * t, (1, n)),
        ]
        along = [edges[a][vox[a]], nodes[a][vox[a]], edges[a][vox[a] + 1]]
        vals = []
        for pos in along:
            coords = [np.empty(0)] * 3
            coords[a] = np.repeat(pos[:, None], n * n, axis=1)
            coords[u], coords[v] = across
            index = [
                np.interp(c.ravel(), nodes[b], np.arange(shape[b], dtype=float))
                for b, c in enumerate(coords)
            ]
            vals.append(ndimage.map_coordinates(d, index, order=1, mode="nearest").reshape(m, -1))
        length = np.zeros((m, n * n))
        for p in (0, 1):
            top, low = np.maximum(vals[p], vals[p + 1]), np.minimum(vals[p], vals[p + 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                part = np.clip((top - level) / (top - low), 0.0, 1.0)
            part = np.where(low >= level, 1.0, np.where(top < level, 0.0, part))
            length += part * (along[p + 1] - along[p])[:, None]
        frac = length.mean(axis=1) / (along[2] - along[0])
        total += float((frac * vol[tuple(vox)] * body[tuple(vox)]).sum())
    return total / 1000.0


def _gaussians():
    z = np.cumsum([0.0, 2.5, 2.0, 3.0, 2.5, 2.5, 3.0, 2.0, 2.5, 3.0, 2.0, 2.5])
    x = np.arange(14) * 2.5 - 16.0
    y = np.arange(13) * 2.0 - 12.0
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    d = np.zeros(Z.shape)
    for (cx, cy, cz), w, amp in (
        ((0.0, 1.0, 12.0), 7.0, 40.0),
        ((-8.0, -4.0, 8.0), 4.0, 25.0),
        ((7.0, 5.0, 18.0), 5.0, 20.0),
    ):
        d += amp * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2 + (Z - cz) ** 2) / (2 * w * w))
    return DoseGrid(d, x, y, z, None)


@pytest.mark.parametrize("level", [6.0, 15.0, 24.0, 36.0])
def test_matches_brute_force_over_the_trilinear_field(level):
    # an uneven-z grid (x and y steps differ too) with three overlapping hot spots (curved,
    # merging isodoses) and a body of fractional occupancies. The reference at n = 32 lines per
    # voxel side is within 1e-5 of its converged value (n = 64, and z lines at n = 96); the
    # integration's own error at ISODOSE_DEPTH = 2 is about 2e-5 here
    dose = _gaussians()
    rng = np.random.default_rng(3)
    body_values = np.where(rng.random(dose.dose_gy.shape) < 0.2, rng.random(), 1.0)
    body = Occupancy(lattice_for(dose), (0, 0, 0), body_values.astype(np.float32), name="B")
    got = isodose_volume_cc(dose, level, body)
    want = _line_reference_cc(dose, level, body.values.astype(float), 32)
    assert got == pytest.approx(want, rel=1e-4)
    # the body matters: unweighted, the volume is larger
    assert isodose_volume_cc(dose, level, None) > got * 1.01


# --------------------------------------------------------------- D2cm search


def _sphere_roi(radius: float, step: float) -> Roi:
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    zs = np.arange(-radius + step / 2, radius, step)
    planes = tuple(
        ContourPlane(
            float(z),
            (
                PlanarPolygon(
                    math.sqrt(radius**2 - z * z) * np.column_stack([np.cos(t), np.sin(t)])
                ),
            ),
            1,
        )
        for z in zs
    )
    return Roi(1, "PTV", planes=planes)


def _lattice(ax: np.ndarray, h: float, f: int, lo: float, hi: float) -> np.ndarray:
    """Centres of a regular f-fold split of the voxels of axis ``ax`` (step h) within [lo, hi]."""
    t = (np.arange(f) + 0.5) / f - 0.5
    pos = (ax[:, None] + t * h).ravel()
    return pos[(pos >= lo) & (pos <= hi)]


def _brute_max(target, d, ax, h, f, box, distance_mm):
    """Largest trilinear dose over the f-fold split points in ``box`` ((lo, hi) per x, y, z)
    at least ``distance_mm`` from the target (slab-model distances)."""
    xs, ys, zs = (_lattice(ax, h, f, lo, hi) for lo, hi in box)
    dist = slab_distance(target.slabs, xs, ys, zs).ravel()
    index = [np.clip((p - ax[0]) / h, 0, ax.size - 1) for p in (zs, ys, xs)]
    grid = np.meshgrid(*index, indexing="ij")
    vals = ndimage.map_coordinates(d, [g.ravel() for g in grid], order=1, mode="nearest")
    return float(vals[dist >= distance_mm].max())


def test_d2cm_finds_the_maximum_on_the_2cm_surface():
    # a falling dose with two hot spots: a hotter one 18 mm from the target, whose steep flank
    # (about 6 Gy/mm) crosses the 20 mm surface between voxel centres, and a weaker one 21 mm
    # from it. The maximum 20 mm or more away lies on that surface, between any regular points:
    # the search must reach at least the best of a dense lattice (1/64 of a voxel side, 0.04 mm)
    # near it, and can exceed it by no more than the field's gradient across a lattice cell
    # (distances exact for the slab model)
    from rtqa.dvh.quality import plan_quality

    h = 2.5
    ax = np.arange(-42.5, 42.5 + 1e-9, h)
    Z, Y, X = np.meshgrid(ax, ax, ax, indexing="ij")
    radius = 8.0
    d = 30.0 * np.exp(-np.maximum(np.sqrt(X**2 + Y**2 + Z**2) - radius, 0) / 6.0)
    for (cx, cy, cz), amp, w in (
        ((radius + 18.0, 1.0, 0.5), 25.0, 2.0),
        ((0.0, -(radius + 21.0), 3.0), 9.0, 3.0),
    ):
        d += amp * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2 + (Z - cz) ** 2) / (2 * w * w))
    dose = DoseGrid(d, ax, ax, ax, None)
    target = occupancy(_sphere_roi(radius, 1.0), dose)
    got = plan_quality(target, dose, 30.0, body=None)["D2cm[%]"] * 30.0 / 100.0

    whole = ((-45.0, 45.0),) * 3
    centres = _brute_max(target, d, ax, h, 1, whole, D2CM_MM)
    coarse = _brute_max(target, d, ax, h, SUBCELLS, whole, D2CM_MM)
    near_max = ((26.0, 30.0), (-2.0, 4.0), (-2.5, 3.5))  # where the flank crosses 20 mm
    dense = _brute_max(target, d, ax, h, 64, near_max, D2CM_MM)
    assert coarse > centres + 2.0  # between voxel centres
    assert dense > coarse + 3.0  # and between the sub-cells of a voxel
    assert dense <= got <= dense + 0.2  # 6 Gy/mm x 0.034 mm, half a lattice cell diagonal
