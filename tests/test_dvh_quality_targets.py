"""Plan-quality indices of one of several targets: a boost inside its lower-dose PTV (nested, no
competition for isodose points) and D2cm of one of two lesions (over the points attributed to
it), against closed forms."""

import math

import numpy as np
import pytest

from rtqa.dvh import plan_quality
from rtqa.dvh.quality import overlapping
from rtqa.geometry import occupancy
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi

RX = 30.0
LAM = 11.0 / math.log(2)  # D(r) = 2 Rx exp(-r / LAM): the Rx isodose is the sphere r = 11 mm


def ngon(r: float, n: int = 128) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


def sphere(radius: float, name: str, number: int, cx: float = 0.0) -> Roi:
    zs = np.arange(-radius + 0.25, radius, 0.5)
    planes = tuple(
        ContourPlane(
            float(z), (PlanarPolygon(ngon(math.sqrt(radius**2 - z * z)) + np.array([cx, 0.0])),), 1
        )
        for z in zs
    )
    return Roi(number, name, planes=planes)


def radius_at(level: float) -> float:
    """Radius (mm) of the isodose sphere at ``level`` Gy of the radial dose."""
    return LAM * math.log(2 * RX / level)


@pytest.fixture(scope="module")
def nested():
    ax = np.arange(-42.0, 42.0 + 1e-9, 1.5)
    Z, Y, X = np.meshgrid(ax, ax, ax, indexing="ij")
    dose = DoseGrid(2 * RX * np.exp(-np.sqrt(X**2 + Y**2 + Z**2) / LAM), ax, ax, ax, None)
    boost = occupancy(sphere(6.0, "PTV_boost", 1), dose)
    outer = occupancy(sphere(12.0, "PTV_low", 2), dose)
    return dose, boost, outer


def test_nested_targets_overlap_and_separate_ones_do_not(nested):
    _, boost, outer = nested
    assert overlapping(boost, outer) and overlapping(outer, boost)
    dose = nested[0]
    apart = occupancy(sphere(6.0, "PTV_far", 3, cx=30.0), dose)
    assert not overlapping(boost, apart) and not overlapping(apart, boost)


def test_boost_inside_its_lower_dose_ptv_counts_its_whole_isodose(nested):
    # the boost (r = 6 mm) wholly covered by the Rx isodose sphere (r = 11 mm): CI = (11/6)^3,
    # Paddick CI = TV / PIV; attributing isodose points to the nearest target would have given
    # the spill inside the lower-dose PTV to that PTV (CI below 1 with full coverage)
    dose, boost, outer = nested
    q = plan_quality(boost, dose, RX, body=None, other_targets=[outer])
    assert q["CI"] == pytest.approx((11.0 / 6.0) ** 3, rel=0.01)
    assert q["CI_Paddick"] == pytest.approx((6.0 / 11.0) ** 3, rel=0.01)
    # the lower-dose PTV (r = 12 mm) at a level whose isodose is the sphere r = 13 mm
    rx_low = 2 * RX * math.exp(-13.0 / LAM)
    assert radius_at(rx_low) == pytest.approx(13.0)
    q = plan_quality(outer, dose, rx_low, body=None, other_targets=[boost])
    assert q["CI"] == pytest.approx((13.0 / 12.0) ** 3, rel=0.01)
    assert q["PIV[cc]"] == pytest.approx(4 / 3 * math.pi * 13.0**3 / 1000, rel=0.01)


def test_d2cm_of_one_of_two_lesions_leaves_out_the_other_lesion():
    # two spheres (r = 6 mm) at x = -30 and +30 mm under a cone about the nearer centre,
    # D = a - b r (r: distance to the nearer centre). Points 2 cm or more from the first
    # sphere (r1 >= 26 mm) that are nearer it than the second (r1 <= r2) receive at most
    # a - 26 b; the second lesion's peak a lies 2 cm away too, and is not the first's spill
    h = 2.0
    ax = np.arange(-60.0, 60.0 + 1e-9, h)
    ayz = np.arange(-30.0, 30.0 + 1e-9, h)
    Z, Y, X = np.meshgrid(ayz, ayz, ax, indexing="ij")
    a, b = 2.0 * RX, RX / 40.0
    r = np.sqrt(np.minimum((X + 30.0) ** 2, (X - 30.0) ** 2) + Y**2 + Z**2)
    dose = DoseGrid(a - b * r, ax, ayz, ayz, None)
    first = occupancy(sphere(6.0, "PTV1", 1, cx=-30.0), dose)
    second = occupancy(sphere(6.0, "PTV2", 2, cx=30.0), dose)
    alone = plan_quality(first, dose, RX, body=None)
    assert alone["D2cm[%]"] == pytest.approx(100.0 * a / RX, rel=1e-6)  # the other peak
    q = plan_quality(first, dose, RX, body=None, other_targets=[second])
    assert q["D2cm[%]"] == pytest.approx(100.0 * (a - 26.0 * b) / RX, rel=0.005)
    q2 = plan_quality(second, dose, RX, body=None, other_targets=[first])
    assert q2["D2cm[%]"] == pytest.approx(q["D2cm[%]"], rel=0.005)  # the mirror image


def _spill_truth_cc(spheres: list[tuple[float, float]], h: float = 0.1) -> float:
    """Volume (cc) at or above 105 % Rx of the radial dose outside every sphere (radius, centre
    x; mm), by dense sampling of the analytic shapes (independent of rtqa's geometry)."""
    r105 = radius_at(1.05 * RX)
    g = np.arange(-r105, r105, h) + h / 2
    yy, xx = np.meshgrid(g, g, indexing="ij")
    count = 0
    for z in g:
        keep = xx**2 + yy**2 + z * z <= r105**2
        for radius, cx in spheres:
            keep &= (xx - cx) ** 2 + yy**2 + z * z > radius**2
        count += np.count_nonzero(keep)
    return count * h**3 / 1000.0


@pytest.mark.parametrize(("radius_b", "cx_b"), [(7.0, 5.0), (9.0, 6.0)])
def test_spill_leaves_out_an_overlapping_target_prescribed_above_it(radius_b, cx_b):
    # PTV_A (r = 7 mm at x = -5) and PTV_B overlapping it; the 105 % isodose of A's Rx is the
    # sphere r = 10.2 mm about the origin, partly inside B. B prescribed at 110 % of A's Rx is
    # meant to receive that dose: A's spill is the isodose outside both (dense truth); B at 90 %
    # (or of unknown Rx) is not, and its part counts (the isodose outside A alone)
    ax = np.arange(-30.0, 30.0 + 1e-9, 1.0)
    zz, yy, xx = np.meshgrid(ax, ax, ax, indexing="ij")
    dose = DoseGrid(2 * RX * np.exp(-np.sqrt(xx**2 + yy**2 + zz**2) / LAM), ax, ax, ax, None)
    a = occupancy(sphere(7.0, "PTV_A", 1, cx=-5.0), dose)
    b = occupancy(sphere(radius_b, "PTV_B", 2, cx=cx_b), dose)
    assert overlapping(a, b)
    if radius_b == 9.0:  # sampled on another lattice: B is sampled again on A's
        assert a.lattice.factors != b.lattice.factors
    planned = plan_quality(a, dose, RX, body=None, other_targets=[b], other_rx_gy=[1.1 * RX])
    truth = _spill_truth_cc([(7.0, -5.0), (radius_b, cx_b)])
    assert planned["Spill105[cc]"] == pytest.approx(truth, rel=0.015)
    alone = _spill_truth_cc([(7.0, -5.0)])
    for rx_b in (0.9 * RX, None):
        q = plan_quality(a, dose, RX, body=None, other_targets=[b], other_rx_gy=[rx_b])
        assert q["Spill105[cc]"] == pytest.approx(alone, rel=0.015)
    assert alone > truth + 0.5  # B's part of the isodose is over half a cc
