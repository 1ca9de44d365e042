"""Structure DVHs of closed-form phantoms on analytic dose fields, against the exact DVH of
the slab model computed here from polygon areas (dose linear in z) or half-plane clips
(dose linear in x or y)."""

import numpy as np
import pytest
import shapely

from rtqa.dvh import MetricUndefined, structure_dvh
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi


def ngon(cx, cy, r, n=96):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def roi_from(zs, rings_at, name="S"):
    return Roi(7, name, planes=tuple(ContourPlane(float(z), (rings_at(z),), 1) for z in zs))


def grid(f, spacing=2.5, lo=-50.0, hi=50.0, z_offset=0.0):
    ax = np.arange(lo, hi + 1e-9, spacing)
    zz = ax + z_offset
    Z, Y, X = np.meshgrid(zz, ax, ax, indexing="ij")
    return DoseGrid(f(X, Y, Z), ax, ax.copy(), zz, None)


def slabs_of(zs, rings_at):
    """(polygon, lo, hi) of each plane: half the neighbouring spacing, same at the ends."""
    zs = np.asarray(zs, float)
    mids = 0.5 * (zs[1:] + zs[:-1])
    lo = np.concatenate([[zs[0] - (zs[1] - zs[0]) / 2], mids])
    hi = np.concatenate([mids, [zs[-1] + (zs[-1] - zs[-2]) / 2]])
    return [
        (shapely.Polygon(rings_at(z).exterior), a, b) for z, a, b in zip(zs, lo, hi, strict=True)
    ]


def exact_v_at_least(slabs, axis, a, b, d):
    """Slab-model volume (mm^3) receiving >= d for dose a + b * coordinate (b > 0)."""
    t = (d - a) / b
    total = 0.0
    for poly, lo, hi in slabs:
        if axis == "z":
            total += poly.area * max(hi - max(lo, t), 0.0)
        else:
            box = (t, -1e3, 1e3, 1e3) if axis == "x" else (-1e3, t, 1e3, 1e3)
            total += shapely.clip_by_rect(poly, *box).area * (hi - lo)
    return total


def exact_dose_at(slabs, axis, a, b, v_mm3):
    lo, hi = a - 1e3 * abs(b), a + 1e3 * abs(b)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if exact_v_at_least(slabs, axis, a, b, mid) >= v_mm3:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def check(sd, slabs, axis, a, b):
    volume = sum(p.area * (hi - lo) for p, lo, hi in slabs)
    assert sd.volume_cc == pytest.approx(volume / 1000, rel=1e-9)
    assert sd.dvh.total_volume_cc == pytest.approx(volume / 1000, rel=0.005)
    mean = exact_v_mean(slabs, axis, a, b) / volume
    assert sd.dvh.mean_gy == pytest.approx(mean, rel=0.005)
    for pct in (99, 95, 5, 1):
        exact = exact_dose_at(slabs, axis, a, b, pct / 100 * volume)
        assert sd.dvh.dose_at_volume_pct(pct) == pytest.approx(exact, abs=max(0.01 * exact, 0.05))
    exact = exact_dose_at(slabs, axis, a, b, 30.0)
    assert sd.dvh.dose_at_volume_cc(0.03) == pytest.approx(exact, abs=max(0.01 * exact, 0.05))


def exact_v_mean(slabs, axis, a, b):
    """Integral of the dose over the slab model (Gy mm^3)."""
    total = 0.0
    for poly, lo, hi in slabs:
        if axis == "z":
            total += poly.area * (a * (hi - lo) + b * (hi**2 - lo**2) / 2)
        else:
            c = poly.centroid.x if axis == "x" else poly.centroid.y
            total += poly.area * (hi - lo) * (a + b * c)
    return total


def sphere_rings(R, cx=0.0, cy=0.0):
    return lambda z: PlanarPolygon(ngon(cx, cy, np.sqrt(max(R * R - z * z, 0.01)), 128))


@pytest.mark.parametrize("z_offset", [0.0, 1.25, 0.7])
def test_sphere_dose_linear_in_z_planes_offset_from_dose_frames(z_offset):
    zs = np.arange(-11.0, 11.1, 2.0)
    rings = sphere_rings(12.0)
    a, b = 20.0, 0.5
    sd = structure_dvh(roi_from(zs, rings), grid(lambda x, y, z: a + b * z, z_offset=z_offset))
    check(sd, slabs_of(zs, rings), "z", a, b)
    assert sd.notes == []


def test_sub_cc_target_dose_linear_in_x():
    zs = np.arange(-4.5, 4.6, 1.5)
    rings = sphere_rings(5.0, cx=3.3, cy=-1.1)
    a, b = 30.0, 1.0
    sd = structure_dvh(roi_from(zs, rings), grid(lambda x, y, z: a + b * x))
    assert sd.volume_cc < 1.0
    check(sd, slabs_of(zs, rings), "x", a, b)


def test_uneven_planes_dose_linear_in_y():
    zs = np.array([-9.0, -6.0, -3.0, -1.0, 0.0, 1.0, 2.0, 4.5, 7.0])
    rings = lambda z: PlanarPolygon(ngon(0, 0, 8 + 0.3 * z, 96))  # noqa: E731 (a cone)
    a, b = 10.0, 0.8
    sd = structure_dvh(roi_from(zs, rings), grid(lambda x, y, z: a + b * y))
    check(sd, slabs_of(zs, rings), "y", a, b)


def test_ring_with_hole_uniform_dose():
    outer, inner = ngon(0, 0, 20), ngon(0, 0, 10)
    zs = np.arange(-10, 10.1, 2.5)
    roi = roi_from(zs, lambda z: PlanarPolygon(outer, (inner,)))
    sd = structure_dvh(roi, grid(lambda x, y, z: 0 * x + 12.5))
    assert sd.dvh.mean_gy == pytest.approx(12.5)
    assert sd.dvh.volume_at_dose_pct(12.5) == pytest.approx(100.0)
    assert sd.dvh.dose_at_volume_pct(50) == pytest.approx(12.5)


def test_structure_partly_outside_the_dose_grid():
    ring = ngon(0, 0, 10)
    zs = np.arange(30.0, 70.1, 2.0)  # slabs 29 .. 71; dose voxels end at 51.25
    a, b = 5.0, 0.2
    sd = structure_dvh(roi_from(zs, lambda z: PlanarPolygon(ring)), grid(lambda x, y, z: a + b * z))
    poly = shapely.Polygon(ring)
    assert sd.volume_cc == pytest.approx(poly.area * 42 / 1000)
    assert sd.volume_in_grid_cc == pytest.approx(poly.area * (51.25 - 29) / 1000, rel=1e-6)
    assert sd.dvh.unknown_volume_cc == pytest.approx(poly.area * (71 - 51.25) / 1000, rel=1e-5)
    assert any("outside the dose grid" in n.message for n in sd.notes)
    # dose clamped (not extrapolated) beyond the top frame at z = 50 mm; the one cell across
    # the kink spreads its dose linearly, so the maximum is good to a cell's dose step
    assert sd.dvh.max_gy == pytest.approx(a + b * 50.0, abs=0.05)
    with pytest.raises(MetricUndefined):
        sd.dvh.dose_at_volume_pct(95)  # reaches into the part of unknown dose
    assert sd.dvh.volume_at_dose_pct(0.0) == pytest.approx(100 * 22.25 / 42, rel=1e-5)


def test_end_cap_inside_a_dose_cell_sampled_at_its_centroid():
    """Both end caps (z = 0.1 and 11.1 mm) lie inside 5 mm dose cells, dose linear in z: the
    partial cells are sampled at the centroid of their capped part, so D99 matches the slab
    model exactly (a cell-centre sample would be off by up to half a cell of gradient)."""
    zs = np.arange(0.6, 10.7, 1.0)
    rings_at = lambda z: PlanarPolygon(ngon(0.0, 0.0, 9.0))  # noqa: E731
    roi = roi_from(zs, rings_at)
    dose = grid(lambda X, Y, Z: 10.0 + 2.0 * Z, spacing=5.0)
    sd = structure_dvh(roi, dose, factors=(1, 1, 1))
    slabs = slabs_of(zs, rings_at)
    vol = sum(p.area * (hi - lo) for p, lo, hi in slabs)
    # wholly inside: the volume is the float32 occupancy's sum (relative rounding 1e-8 here)
    assert sd.dvh.total_volume_cc == pytest.approx(vol / 1000.0, rel=1e-7)
    assert sd.dvh.unknown_volume_cc == 0.0
    for pct in (99.0, 50.0, 2.0):
        want = exact_dose_at(slabs, "z", 10.0, 2.0, pct / 100.0 * vol)
        assert sd.dvh.dose_at_volume_pct(pct) == pytest.approx(want, abs=1e-3)


def test_no_dose_below_zero_where_the_field_falls_to_zero():
    # 0 Gy up to x = 0, then 10 Gy/mm: cells straddling the kink have a dose gradient that the
    # uniform spread would carry below 0 Gy
    g = grid(lambda x, y, z: np.maximum(x, 0.0) * 10.0, spacing=2.5)
    roi = roi_from(np.arange(-10.0, 10.1, 2.5), lambda z: PlanarPolygon(ngon(0.0, 0.0, 8.0)))
    d = structure_dvh(roi, g).dvh
    assert d.min_gy == 0.0
    assert d.dose_at_volume_pct(100) == 0.0
    assert d.dose_at_volume_pct(99) >= 0.0
    assert np.all(d.doses_gy - 0.5 * d.spreads_gy >= -1e-12)
    # the hot side is untouched: the maximum sits at x = 8 mm, 80 Gy (plus the cell's spread)
    assert d.max_gy == pytest.approx(80.0, abs=12.5)


@pytest.mark.parametrize("factors", [(1, 1, 1), None])
def test_no_dose_above_a_plateau_the_field_never_exceeds(factors):
    """Dose 2 Gy/mm along x up to a 20 Gy plateau from x = 10 mm (a node of the 2 mm grid), a
    box x 3..17, y 3..7, z 1..7 mm. The trilinear field equals min(20, 2x) there, so: max 20 Gy
    (a spread centred on the kink's node once reached 21 Gy), min 6 Gy at x = 3 mm, and the
    mean (1 / 14) * (integral of 2x over 3..10 + 20 * 7) = 231 / 14 = 16.5 Gy exactly."""
    g = grid(lambda x, y, z: np.minimum(2.0 * x, 20.0), spacing=2.0, lo=0.0, hi=24.0)
    box = np.array([[3.0, 3.0], [17.0, 3.0], [17.0, 7.0], [3.0, 7.0]])
    roi = roi_from([2.0, 4.0, 6.0], lambda z: PlanarPolygon(box))
    options = {} if factors is None else {"factors": factors}
    sd = structure_dvh(roi, g, **options)
    d = sd.dvh
    assert sd.volume_cc == pytest.approx(14 * 4 * 6 / 1000.0, rel=1e-12)
    # (the node ranges are float32 bounds moved outward: loose by ~1e-7 of the dose)
    assert d.max_gy == pytest.approx(20.0, abs=1e-5)
    assert d.dose_at_volume_cc(0.001) == pytest.approx(20.0, abs=1e-5)
    assert d.min_gy == pytest.approx(6.0, abs=1e-5)
    assert d.mean_gy == pytest.approx(16.5, rel=1e-7)
    # the plateau x 10..17 holds 7/14 of the volume; the cell straddling the kink (x 9..11 at
    # factor 1) carries its half at 20 Gy as part of a uniform spread: at least the whole cells
    # x 11..17 (6/14) are at 20 Gy, at most 7/14
    v20 = d.volume_at_dose_pct(20.0 - 1e-9)
    assert 100.0 * 6 / 14 - 1e-6 <= v20 <= 50.0 + 1e-6


@pytest.mark.parametrize("nudge_mm", [1e-12, -1e-12])
def test_contour_edges_on_cell_edges_leave_min_and_max_unmoved_by_rounding(nudge_mm):
    """A 20 mm square prism whose edges lie on dose-cell edges (x, y = node - 1.25 mm, at any
    subdivision), in a dose linear in x and y: moving the contour by 1e-12 mm leaves slivers of
    ~1e-12 of a cell, which must not stretch Min or Max by a cell's dose range."""
    dose = grid(lambda x, y, z: 20.0 + 0.3 * x + 0.2 * y)

    def square(shift):
        lo, hi = -11.25 + shift, 8.75 + shift
        return lambda z: PlanarPolygon(np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]]))

    zs = np.arange(-10.0, 10.1, 2.5)
    exact = structure_dvh(roi_from(zs, square(0.0)), dose).dvh
    nudged = structure_dvh(roi_from(zs, square(nudge_mm)), dose).dvh
    # within the prism's own extremes, at its corners (the spread is variance-matched, so the
    # corner cell's interval stops short of the corner itself)
    assert 24.0 < exact.max_gy <= 20.0 + 0.5 * 8.75
    assert 20.0 - 0.5 * 11.25 <= exact.min_gy < 14.8
    assert nudged.max_gy == pytest.approx(exact.max_gy, abs=1e-6)
    assert nudged.min_gy == pytest.approx(exact.min_gy, abs=1e-6)
    assert nudged.total_volume_cc == pytest.approx(exact.total_volume_cc, rel=1e-9)
