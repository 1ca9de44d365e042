"""Inter-slice interpolation of contour shapes, on closed-form solids contoured every 3 mm.

Contours are regular n-gons (area ``K * r^2`` with ``K = n/2 sin(2 pi / n)``) or polygons
written here; expected volumes are integrals of the cross-section area in z. A sub-slab holds
the shape at its middle z, so where the area is quadratic in z the interpolated volume is the
midpoint rule, ``integral - h^2 / 24 * integral of A''`` (``h`` the sub-slab thickness).
"""

import numpy as np
import pytest
import shapely

from rtqa.dvh import structure_dvh
from rtqa.geometry import InterpolatedStack, interpolated_stack, occupancy, slab_stack
from rtqa.model import ContourPlane, DoseGrid, Level, PlanarPolygon, Roi

N = 256
K = N / 2 * np.sin(2 * np.pi / N)  # area of the regular N-gon of circumradius 1


def ngon(cx, cy, r, n=N):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def roi_of(zs, polygons_at, name="S"):
    """An ROI with ``polygons_at(z)`` (a tuple of PlanarPolygon) on each plane."""
    planes = tuple(ContourPlane(float(z), tuple(polygons_at(z)), 1) for z in zs)
    return Roi(5, name, planes=planes)


def cone(zs, r_at, cx=0.0, cy=0.0):
    return roi_of(zs, lambda z: (PlanarPolygon(ngon(cx, cy, r_at(z))),))


def shape_error(geom, expected) -> float:
    """Area of the symmetric difference, as a fraction of the expected area."""
    return shapely.symmetric_difference(geom, expected).area / expected.area


# --------------------------------------------------------------------------------------------
# the slab model unchanged
# --------------------------------------------------------------------------------------------


def test_zero_steps_is_the_slab_model():
    roi = cone(np.arange(0.0, 24.1, 3.0), lambda z: 1 + 0.5 * z)
    a, b = interpolated_stack(roi, 0, end_cap_mm=1.0), slab_stack(roi, end_cap_mm=1.0)
    assert not isinstance(a, InterpolatedStack)
    for name in ("z_mm", "lo_mm", "hi_mm", "areas_mm2"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert all(g.equals_exact(h, 0.0) for g, h in zip(a.geoms, b.geoms, strict=True))
    with pytest.raises(ValueError):
        interpolated_stack(roi, -1)


# --------------------------------------------------------------------------------------------
# exact solids
# --------------------------------------------------------------------------------------------


def test_truncated_cone_exact_where_slabs_are_off():
    """r = 1 + z/2 mm for z = 0..24 mm (planes 3 mm apart), no end caps: a frustum of volume
    K (13^3 - 1) / 1.5 mm^3. The slab model is the trapezoid rule (+h^2/12 of A'' = +0.61 %);
    four sub-slabs per step are the midpoint rule with h = 0.75 mm (-0.019 %)."""
    zs = np.arange(0.0, 24.1, 3.0)
    roi = cone(zs, lambda z: 1 + 0.5 * z, cx=4.0, cy=-2.0)
    exact = K * (13**3 - 1) / 1.5 / 1000  # cc
    d2a = 2 * K * 0.5**2 * 24 / 1000  # integral of A'' (cc / mm^2)
    slab = slab_stack(roi, end_cap_mm=0.0).volume_cc
    assert slab == pytest.approx(exact + 3.0**2 / 12 * d2a, rel=1e-9)
    assert slab / exact - 1 > 0.006
    stack = interpolated_stack(roi, 4, end_cap_mm=0.0)
    assert stack.volume_cc == pytest.approx(exact - 0.75**2 / 24 * d2a, rel=1e-8)
    assert abs(stack.volume_cc / exact - 1) < 2e-4
    assert stack.fallback_steps == 0 and stack.joined_steps == 8 and len(stack.geoms) == 32
    # every sub-slab holds the cone's cross-section at its middle z
    for z, g in zip(stack.z_mm, stack.geoms, strict=True):
        assert shape_error(g, shapely.Polygon(ngon(4.0, -2.0, 1 + 0.5 * z))) < 1e-8


def test_tilted_elliptic_cylinder_exact():
    """A cylinder of radius 6 mm tilted in the x-z plane (axis x = z / 2): each plane holds the
    same ellipse (semi-axes 6 / cos(a) and 6) shifted by z / 2. Interpolated sub-slabs hold the
    ellipse at their middle z; the slab model's staircase is off by up to 0.75 mm in x."""
    sec = np.sqrt(1 + 0.5**2)  # 1 / cos of the tilt

    def ellipse(z):
        e = ngon(0.0, 0.0, 6.0)
        return np.column_stack([0.5 * z + sec * e[:, 0], e[:, 1]])

    zs = np.arange(0.0, 30.1, 3.0)
    roi = roi_of(zs, lambda z: (PlanarPolygon(ellipse(z)),))
    stack = interpolated_stack(roi, 4)
    area = K * 36 * sec
    assert stack.volume_cc == pytest.approx(area * (30 + 3) / 1000, rel=1e-9)
    for z, g in zip(stack.z_mm, stack.geoms, strict=True):
        if 0 < z < 30:  # the end caps are the end planes' ellipses
            assert shape_error(g, shapely.Polygon(ellipse(z))) < 1e-8
    # the slab model: at a slab's edge its ellipse is 0.75 mm off the cylinder's
    slab = slab_stack(roi)
    assert shape_error(slab.geoms[3], shapely.Polygon(ellipse(slab.hi_mm[3]))) > 0.05


def test_sphere_contoured_from_pole_to_pole():
    """R = 12 mm, planes every 3 mm from pole to pole (tiny 0.1 mm contours at the poles, as
    planning systems write them): the slab model loses 1.56 % of 4/3 pi R^3; the interpolation
    (exact for a sphere up to the midpoint rule, +h^2 / 8R^2 = +0.049 % at h = 0.75 mm) does
    not."""
    R = 12.0
    zs = np.arange(-12.0, 12.1, 3.0)
    roi = cone(zs, lambda z: max(np.sqrt(max(R * R - z * z, 0.0)), 0.1))
    analytic = 4 / 3 * np.pi * R**3 / 1000
    slab = slab_stack(roi).volume_cc
    assert slab / analytic - 1 == pytest.approx(-0.0156, abs=0.001)
    fine = interpolated_stack(roi, 4).volume_cc
    assert fine / analytic - 1 == pytest.approx(0.75**2 / (8 * R * R), abs=2e-4)
    assert interpolated_stack(roi, 8).volume_cc / analytic - 1 == pytest.approx(
        0.375**2 / (8 * R * R), abs=2e-4
    )


def test_sphere_between_off_pole_planes_is_the_spherical_segment():
    """Planes at z = -10.5 .. 10.5 mm: without end caps the interpolated stack is the segment of
    the sphere between the end planes (midpoint rule), while the slab model is 1.3 % short."""
    R = 12.0
    zs = np.arange(-10.5, 10.6, 3.0)
    roi = cone(zs, lambda z: np.sqrt(R * R - z * z))
    segment = K * (2 * 10.5 * R * R - 2 * 10.5**3 / 3) / 1000
    d2a = K * 2 * 21.0 / 1000
    assert slab_stack(roi, end_cap_mm=0.0).volume_cc / segment - 1 < -0.012
    stack = interpolated_stack(roi, 4, end_cap_mm=0.0)
    assert stack.volume_cc == pytest.approx(segment + 0.75**2 / 24 * d2a, rel=1e-8)


def test_cylinder_lying_across_the_planes():
    """A cylinder of radius 12 mm and length 24 mm with its axis along y: each plane holds a
    rectangle 2 sqrt(R^2 - z^2) wide, a line (zero width) at z = -12 and 12 mm. Volume
    pi R^2 * 24: the slab model loses 4.6 % of it, the interpolation keeps it to 0.2 %."""
    R, length = 12.0, 24.0

    def rect(z):
        w = np.sqrt(max(R * R - z * z, 0.0))
        ys = np.linspace(-length / 2, length / 2, 25)
        return np.vstack(
            [np.column_stack([np.full(25, w), ys]), np.column_stack([np.full(25, -w), ys[::-1]])]
        )

    zs = np.arange(-12.0, 12.1, 3.0)
    roi = roi_of(zs, lambda z: (PlanarPolygon(rect(z)),))
    analytic = np.pi * R * R * length / 1000
    assert slab_stack(roi).volume_cc / analytic - 1 == pytest.approx(-0.0464, abs=0.001)
    stack = interpolated_stack(roi, 4)
    assert stack.fallback_steps == 0  # the zero-width ends link to their neighbours
    assert abs(stack.volume_cc / analytic - 1) < 0.002
    # a sub-slab holds the rectangle of the cylinder's width at its middle z (to 1 %)
    z = stack.z_mm[len(stack.z_mm) // 2 + 1]
    assert shape_error(stack.geoms[len(stack.z_mm) // 2 + 1], shapely.Polygon(rect(z))) < 0.01


def test_ring_with_a_narrowing_hole():
    """Outer radius 10 mm, hole radius 2 + z/3 mm (z = 0..12 mm, no end caps): the hole is a
    frustum, interpolated like the outer ring."""
    zs = np.arange(0.0, 12.1, 3.0)
    roi = roi_of(zs, lambda z: (PlanarPolygon(ngon(0, 0, 10.0), (ngon(0, 0, 2 + z / 3),)),))
    hole = K * (6**3 - 2**3)  # K * integral of (2 + z/3)^2 over 0..12
    d2a_hole = K * 2 / 9 * 12
    expected = K * 100 * 12 - (hole - 0.75**2 / 24 * d2a_hole)
    stack = interpolated_stack(roi, 4, end_cap_mm=0.0)
    assert stack.fallback_steps == 0
    assert stack.volume_cc == pytest.approx(expected / 1000, rel=1e-8)


# --------------------------------------------------------------------------------------------
# topology changes, gaps
# --------------------------------------------------------------------------------------------


def test_branching_falls_back_to_slabs_and_says_so():
    """One circle (r 5) at z = 0, two circles (r 2, at x = +-2.5) at z = 3 and 6: the step
    0 -> 3 is a branch (slab model: the big circle up to 1.5 mm, the two small ones above);
    3 -> 6 is interpolated (identical circles)."""

    def polys(z):
        if z == 0:
            return (PlanarPolygon(ngon(0, 0, 5.0)),)
        return (PlanarPolygon(ngon(-2.5, 0, 2.0)), PlanarPolygon(ngon(2.5, 0, 2.0)))

    roi = roi_of([0.0, 3.0, 6.0], polys)
    stack = interpolated_stack(roi, 3)
    assert (stack.joined_steps, stack.fallback_steps) == (2, 1)
    big, small = K * 25, 2 * K * 4
    assert stack.volume_cc == pytest.approx(slab_stack(roi).volume_cc, rel=1e-9)
    assert stack.volume_cc == pytest.approx((big * 3 + small * 6) / 1000, rel=1e-9)
    # the odd middle sub-slab of the branching step is split where the slab halves meet
    for z_lo, z_hi, area in zip(stack.lo_mm, stack.hi_mm, stack.areas_mm2, strict=True):
        if z_lo >= 0.0 and z_hi <= 1.5:
            assert area == pytest.approx(big, rel=1e-9)
        elif z_lo >= 1.5 and z_hi <= 3.0:
            assert area == pytest.approx(small, rel=1e-9)
    dose = grid(lambda x, y, z: 0 * x + 10.0)
    sd = structure_dvh(roi, dose, interpolate_steps=3)
    info = [n.message for n in sd.notes if n.level is Level.INFO]
    assert any("in 1 of 2 steps" in m for m in info)
    assert structure_dvh(roi, dose).notes == []


def test_hole_appearing_is_cut_on_its_half_only():
    """A disc (r 8) at z = 0 and 3 mm, with a hole (r 3) only at z = 3: slab model for the
    hole (cut from 1.5 mm up)."""

    def polys(z):
        holes = (ngon(0, 0, 3.0),) if z == 3 else ()
        return (PlanarPolygon(ngon(0, 0, 8.0), holes),)

    roi = roi_of([0.0, 3.0], polys)
    stack = interpolated_stack(roi, 2, end_cap_mm=0.0)
    assert stack.fallback_steps == 1
    assert stack.volume_cc == pytest.approx(K * (64 * 3 - 9 * 1.5) / 1000, rel=1e-9)


def test_a_gap_stays_a_gap():
    """Circles r 3 at z = 0, 3, 6 and r 6 at z = 15, 18, 21: the 9 mm step is a gap; each part
    keeps its end caps and nothing lies between z = 7.5 and 13.5 mm."""
    zs = [0.0, 3.0, 6.0, 15.0, 18.0, 21.0]
    roi = cone(zs, lambda z: 3.0 if z < 10 else 6.0)
    stack = interpolated_stack(roi, 4)
    assert stack.gaps == 1 and stack.joined_steps == 4
    assert stack.hi_mm[stack.z_mm < 10].max() == pytest.approx(7.5)
    assert stack.lo_mm[stack.z_mm > 10].min() == pytest.approx(13.5)
    assert stack.volume_cc == pytest.approx(K * (9 * 9 + 36 * 9) / 1000, rel=1e-9)


# --------------------------------------------------------------------------------------------
# DVH
# --------------------------------------------------------------------------------------------


def grid(f, spacing=2.5):
    xy = np.arange(-15.0, 15.01, spacing)
    zz = np.arange(-5.0, 30.01, spacing)
    Z, Y, X = np.meshgrid(zz, xy, xy, indexing="ij")
    return DoseGrid(f(X, Y, Z), xy, xy.copy(), zz, None)


def test_cone_dvh_in_a_dose_linear_along_z():
    """The frustum of the first test (r = 1 + z/2, z = 0..24 mm, no end caps) in a dose
    10 + z/2 Gy. Analytic: V(>= 10 + t/2 Gy) = K ((13^3 - (1 + t/2)^3) / 1.5) mm^3, so
    D at volume v is 10 + t/2 with (1 + t/2)^3 = 13^3 - 1.5 v / K; the mean dose is
    10 + integral(z A) / (2 integral(A)). The interpolated DVH is within 0.005 Gy of these;
    the slab model's D99 and D95 are 0.03 Gy off."""
    roi = cone(np.arange(0.0, 24.1, 3.0), lambda z: 1 + 0.5 * z)
    dose = grid(lambda x, y, z: 10.0 + 0.5 * z + 0 * x)
    area = np.polynomial.Polynomial([1.0, 0.5]) ** 2
    moment = np.polynomial.Polynomial([0.0, 1.0]) * area
    volume = K * (area.integ()(24.0) - area.integ()(0.0))
    mean = 10.0 + 0.5 * (moment.integ()(24.0) - moment.integ()(0.0)) * K / volume

    def dose_at(pct):
        t = ((13**3 - 1.5 * pct / 100 * volume / K) ** (1 / 3) - 1) / 0.5
        return 10.0 + 0.5 * t

    fine = structure_dvh(roi, dose, end_cap_mm=0.0, interpolate_steps=4).dvh
    slab = structure_dvh(roi, dose, end_cap_mm=0.0).dvh
    assert fine.total_volume_cc == pytest.approx(volume / 1000, rel=3e-4)
    assert fine.mean_gy == pytest.approx(mean, abs=0.003)
    for pct in (99, 95, 50, 5, 1):
        assert fine.dose_at_volume_pct(pct) == pytest.approx(dose_at(pct), abs=0.005)
    for pct in (99, 95):
        assert abs(slab.dose_at_volume_pct(pct) - dose_at(pct)) > 0.02


def test_occupancy_of_an_interpolated_stack_keeps_its_volume():
    roi = cone(np.arange(0.0, 24.1, 3.0), lambda z: 1 + 0.5 * z)
    stack = interpolated_stack(roi, 4, end_cap_mm=0.0)
    occ = occupancy(stack, grid(lambda x, y, z: 0 * x + 1.0), name="S")
    assert occ.volume_cc == pytest.approx(stack.volume_cc, rel=1e-6)
    assert occ.outside_cc == 0.0


# --------------------------------------------------------------------------------------------
# end caps: domes where the profile closes, flat caps elsewhere
# --------------------------------------------------------------------------------------------


def midpoint_excess(lengths_and_steps) -> float:
    """Sum of ``h^2 / 12 * length`` over pieces of ``length`` mm cut in sub-slabs ``h`` thick:
    where the area is ``-K * z^2 + ...`` (A'' = -2K), the midpoint rule's excess over the
    integral is ``K`` times this."""
    return sum((length / n) ** 2 / 12 * length for length, n in lengths_and_steps)


@pytest.mark.parametrize("phase", [0.7, 1.1, 1.5, 2.4])
def test_sphere_between_off_pole_planes_gets_domes(phase):
    """R = 10 mm contoured every 3 mm on planes that miss the poles: the slab model's flat caps
    are off by 0.4-0.8 %, the domes (the profile's parabola continued to the poles) leave the
    interpolated volume within 0.3 % (the midpoint rule: 4 sub-slabs per step and per dome)."""
    R = 10.0
    zs = np.arange(-R + phase, R, 3.0)
    roi = cone(zs, lambda z: np.sqrt(R * R - z * z))
    analytic = 4 / 3 * np.pi * R**3 / 1000
    assert abs(slab_stack(roi).volume_cc / analytic - 1) > 0.003
    stack = interpolated_stack(roi, 4)
    lo, hi = zs[0] + R, R - zs[-1]  # dome lengths
    excess = midpoint_excess([(zs[-1] - zs[0], 4 * (len(zs) - 1)), (lo, 4), (hi, 4)])
    assert stack.volume_cc == pytest.approx(K * (4 / 3 * R**3 + excess) / 1000, rel=1e-7)
    assert abs(stack.volume_cc / analytic - 1) < 0.003
    assert stack.lo_mm.min() == pytest.approx(-R, abs=1e-6)
    assert stack.hi_mm.max() == pytest.approx(R, abs=1e-6)
    # a dome sub-slab holds the sphere's cross-section at its middle z
    z = stack.z_mm[-2]
    assert zs[-1] < z < R
    assert shape_error(stack.geoms[-2], shapely.Polygon(ngon(0, 0, np.sqrt(R * R - z * z)))) < 1e-8


@pytest.mark.parametrize("phase", [0.9, 1.5, 2.1, 2.7])
def test_sheared_ellipsoid_gets_domes(phase):
    """Semi-axes 12 mm (x), 7 mm (y), 10 mm (z) around z = 1 mm, centre x = 3 + z / 5 (sheared:
    the centroid moves along z, the volume stays 4/3 pi a b c), planes every 3 mm missing the
    poles: within 0.3 % of the analytic volume, exactly the midpoint rule."""
    a, b, c, cz = 12.0, 7.0, 10.0, 1.0

    def ellipse(z):
        s = np.sqrt(max(1 - (z - cz) ** 2 / c**2, 0.0))
        e = ngon(0.0, 0.0, 1.0)
        return np.column_stack([3 + z / 5 + a * s * e[:, 0], -2 + b * s * e[:, 1]])

    zs = np.arange(cz - c + phase, cz + c, 3.0)
    roi = roi_of(zs, lambda z: (PlanarPolygon(ellipse(z)),))
    analytic = 4 / 3 * np.pi * a * b * c / 1000
    assert abs(slab_stack(roi).volume_cc / analytic - 1) > 0.003
    stack = interpolated_stack(roi, 4)
    lo, hi = zs[0] - (cz - c), cz + c - zs[-1]
    excess = midpoint_excess([(zs[-1] - zs[0], 4 * (len(zs) - 1)), (lo, 4), (hi, 4)])
    expected = K * a * b * (4 / 3 * c + excess / c**2) / 1000
    assert stack.volume_cc == pytest.approx(expected, rel=1e-7)
    assert abs(stack.volume_cc / analytic - 1) < 0.003


def test_cylinder_keeps_its_flat_caps():
    """r = 5 mm on z = 0..12 mm: the profile does not shrink, so the caps stay flat: half a
    spacing by default, ``end_cap_mm`` where given, exactly the slab model's volume."""
    roi = cone(np.arange(0.0, 12.1, 3.0), lambda z: 5.0)
    for cap, length in ((None, 15.0), (2.0, 16.0), (0.0, 12.0)):
        stack = interpolated_stack(roi, 4, end_cap_mm=cap)
        assert stack.volume_cc == pytest.approx(K * 25 * length / 1000, rel=1e-9)
        assert stack.volume_cc == pytest.approx(slab_stack(roi, cap).volume_cc, rel=1e-9)


def test_cone_apex_beyond_the_last_plane():
    """r = (13.5 - z) / 2 on z = 0..12 mm: the signed squares are quadratic with a double root
    at the apex (z = 13.5 mm), so the dome ends there; the base end flares outward and keeps
    the flat cap (r = 6.75 mm, 1.5 mm). Volume: K (6.75^2 * 1.5 + 13.5^3 / 12) less the
    midpoint rule's h^2 / 24 * integral of A'' (A'' = K / 2), h = 0.75 mm between planes and
    0.375 mm over the 1.5 mm dome."""
    roi = cone(np.arange(0.0, 12.1, 3.0), lambda z: (13.5 - z) / 2)
    stack = interpolated_stack(roi, 4)
    exact = K * (6.75**2 * 1.5 + 13.5**3 / 12)
    expected = exact - K / 2 / 24 * (0.75**2 * 12 + 0.375**2 * 1.5)
    assert stack.volume_cc == pytest.approx(expected / 1000, rel=1e-9)
    assert stack.hi_mm.max() == pytest.approx(13.5, abs=1e-6)
    assert stack.lo_mm.min() == pytest.approx(-1.5, abs=1e-12)


def test_two_plane_chain_keeps_flat_caps():
    """Radii 5 and 3 mm at z = 0 and 3 mm: a frustum between them (linear, the midpoint rule
    with A'' = 8K / 9) and flat caps of 1.5 mm on both ends."""
    roi = roi_of([0.0, 3.0], lambda z: (PlanarPolygon(ngon(0, 0, 5.0 - 2 * z / 3)),))
    frustum = K * (5**3 - 3**3) / 2 - 0.75**2 / 24 * 8 * K / 9 * 3
    expected = K * (25 + 9) * 1.5 + frustum
    assert interpolated_stack(roi, 4).volume_cc == pytest.approx(expected / 1000, rel=1e-9)


def test_end_cap_mm_is_the_dome_limit():
    """R = 10 mm, planes z = -8.9 .. 9.1 mm, ``end_cap_mm = 1``: the top pole lies 0.9 mm beyond
    the last plane (a dome), the bottom one 1.1 mm beyond the first (flat cap of 1 mm of the
    first plane's disc)."""
    R = 10.0
    zs = np.arange(-8.9, 9.2, 3.0)
    roi = cone(zs, lambda z: np.sqrt(R * R - z * z))
    stack = interpolated_stack(roi, 4, end_cap_mm=1.0)
    segment = 2 * R**3 / 3 - (-8.9 * R * R + 8.9**3 / 3)  # integral of R^2 - z^2 over -8.9..R
    excess = midpoint_excess([(18.0, 24), (0.9, 4)])
    expected = K * (segment + excess + (R * R - 8.9**2) * 1.0)
    assert stack.volume_cc == pytest.approx(expected / 1000, rel=1e-7)
    assert stack.lo_mm.min() == pytest.approx(-9.9, abs=1e-9)
    assert stack.hi_mm.max() == pytest.approx(R, abs=1e-6)
