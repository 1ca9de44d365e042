"""Geometry: slab model volumes, exact pixel coverage, occupancy on a dose grid, derived
structures. Expected values are computed here from polygon areas and slab bounds."""

import numpy as np
import pytest

from rtqa.geometry import contour_volume_cc, occupancy, pixel_fractions, slab_stack
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi


def ngon(cx, cy, r, n=96):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def shoelace(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def roi_from(zs, rings_at, name="S"):
    planes = tuple(ContourPlane(float(z), (rings_at(z),), 1) for z in zs)
    return Roi(1, name, planes=planes)


def grid(spacing=2.5, lo=-50.0, hi=50.0, z=None, f=lambda x, y, z: 0 * x + 1.0):
    ax = np.arange(lo, hi + 1e-9, spacing)
    zz = ax if z is None else np.asarray(z, float)
    Z, Y, X = np.meshgrid(zz, ax, ax, indexing="ij")
    return DoseGrid(f(X, Y, Z), ax, ax.copy(), zz, None)


def test_cylinder_volume_even_planes_default_end_caps():
    zs = np.arange(0.0, 20.0 + 1e-9, 2.0)  # 11 planes
    ring = ngon(0, 0, 10)
    roi = roi_from(zs, lambda z: PlanarPolygon(ring))
    expected = shoelace(ring) * (20.0 + 2.0) / 1000  # half a spacing beyond each end plane
    assert contour_volume_cc(roi) == pytest.approx(expected, rel=1e-12)
    assert contour_volume_cc(roi, end_cap_mm=0.0) == pytest.approx(shoelace(ring) * 20 / 1000)


def test_uneven_planes_and_gap_make_separate_parts():
    zs = np.array([0.0, 1.0, 2.0, 4.0, 7.0, 10.0, 30.0, 32.0, 34.0])
    ring = ngon(0, 0, 5)
    roi = roi_from(zs, lambda z: PlanarPolygon(ring))
    slabs = slab_stack(roi)
    assert slabs.gaps == 1  # 10 -> 30 is a gap, the 1 -> 2 -> 3 mm change is not
    # part 1 spans -0.5 .. 11.5, part 2 spans 29 .. 35
    expected = shoelace(ring) * ((11.5 + 0.5) + (35 - 29)) / 1000
    assert contour_volume_cc(roi) == pytest.approx(expected, rel=1e-12)


def test_ring_with_hole():
    outer, inner = ngon(0, 0, 20), ngon(0, 0, 10)
    zs = np.arange(-10, 10 + 1e-9, 2.5)
    roi = roi_from(zs, lambda z: PlanarPolygon(outer, (inner,)))
    expected = (shoelace(outer) - shoelace(inner)) * (20 + 2.5) / 1000
    assert contour_volume_cc(roi) == pytest.approx(expected, rel=1e-12)
    occ = occupancy(roi, grid())
    assert occ.volume_cc == pytest.approx(expected, rel=1e-6)  # exact areas: volume is exact
    assert occ.outside_cc == 0.0


def test_pixel_fractions_exact_for_a_square_and_a_sub_pixel_triangle():
    edges = np.arange(0.0, 10.0 + 1e-9, 1.0)
    sq = ngon(5, 5, 1, n=4)  # a diamond of area 2
    import shapely

    frac = pixel_fractions(shapely.Polygon(sq), edges, edges)
    assert frac.sum() == pytest.approx(2.0)
    tri = shapely.Polygon([(2.1, 2.1), (2.4, 2.1), (2.1, 2.3)])  # inside one pixel
    frac = pixel_fractions(tri, edges, edges)
    assert frac[2, 2] == pytest.approx(0.03) and frac.sum() == pytest.approx(0.03)


def test_partly_outside_grid_volume_reported():
    ring = ngon(0, 0, 10)
    zs = np.arange(30.0, 70.0 + 1e-9, 2.0)
    roi = roi_from(zs, lambda z: PlanarPolygon(ring))
    g = grid()  # z frames -50..50: voxels end at 51.25
    occ = occupancy(roi, g)
    area = shoelace(ring)
    assert occ.volume_cc == pytest.approx(area * (51.25 - 29.0) / 1000, rel=1e-6)
    assert occ.outside_cc == pytest.approx(area * (71.0 - 51.25) / 1000, rel=1e-6)


def test_small_structures_are_sampled_finely():
    roi = roi_from([-1.0, 0.0, 1.0], lambda z: PlanarPolygon(ngon(0, 0, 4)))
    occ = occupancy(roi, grid())
    assert occ.lattice.factors[1] >= 8
    assert np.count_nonzero(occ.values) >= 20_000


def test_derived_structures_difference_and_shell():
    g = grid(spacing=2.0, lo=-40, hi=40)
    big = roi_from(np.arange(-20, 20.1, 2.0), lambda z: PlanarPolygon(ngon(0, 0, 25)), "Lung")
    small = roi_from(np.arange(-4, 4.1, 2.0), lambda z: PlanarPolygon(ngon(3, 0, 5)), "GTV")
    f = (2, 4, 4)
    a, b = occupancy(big, g, factors=f), occupancy(small, g, factors=f)
    diff = a.difference(b)
    assert diff.volume_cc == pytest.approx(contour_volume_cc(big) - contour_volume_cc(small))
    assert a.union(b).volume_cc == pytest.approx(a.volume_cc)
    assert a.intersection(b).volume_cc == pytest.approx(b.volume_cc)


def test_expansion_of_a_prism_matches_steiner_formula():
    # a prism (polygon P extruded over H) grown by m: A H + (2A + P H) m + (pi H + pi P / 2) m^2
    # + 4/3 pi m^3 (Steiner's formula for a convex body)
    ring = ngon(0, 0, 8)
    zs = np.arange(-4.5, 4.6, 1.0)
    roi = roi_from(zs, lambda z: PlanarPolygon(ring))
    g = grid(spacing=2.0, lo=-30, hi=30)
    occ = occupancy(roi, g)
    A, H, m = shoelace(ring), 10.0, 10.0
    P = np.sum(np.hypot(*np.diff(np.vstack([ring, ring[:1]]), axis=0).T))
    expected = (
        A * H + (2 * A + P * H) * m + (np.pi * H + np.pi * P / 2) * m**2 + 4 / 3 * np.pi * m**3
    ) / 1000
    grown = occ.expand(m)
    assert grown.volume_cc == pytest.approx(expected, rel=0.005)
    shell = occ.shell(0, m)
    assert shell.volume_cc == pytest.approx(expected - A * H / 1000, rel=0.005)


def test_two_cm_shell_of_a_sphere():
    R = 10.0
    zs = np.arange(-R + 0.125, R, 0.25)  # thin planes: the slab rims add little
    roi = roi_from(zs, lambda z: PlanarPolygon(ngon(0, 0, np.sqrt(R * R - z * z), 128)))
    g = grid(spacing=2.5, lo=-40, hi=40)
    shell = occupancy(roi, g).shell(0, 20)
    expected = 4 / 3 * np.pi * ((R + 20) ** 3 - R**3) / 1000
    assert shell.volume_cc == pytest.approx(expected, rel=0.01)
