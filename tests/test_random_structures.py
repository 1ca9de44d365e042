"""Random structures (ellipses, rotated boxes, stars, rings with a hole, two blobs; planes evenly
or slightly unevenly spaced; random dose grids and offsets; benchmarks/random_cases.py) in
linear dose fields, against the exact DVH of their slab model (benchmarks/exact_dvh.py:
ExactDvh for a gradient along an axis, ObliqueDvh for any other). Tolerances are the
contour-truth targets of the DVH engine: volume and mean within 0.5 %, D99/D95/D50/D5/D1/D0.03cc
within max(1 %, 0.05 Gy). The seeds of the derived-structure test are pairs that combining
occupancies cell by cell failed (volume up to -2.9 %, D1 up to +2.0 Gy)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtqa.dvh import structure_dvh
from rtqa.protocol.structure_dvhs import derived_dvh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import exact_dvh as ex
import random_cases as rc

PERCENTS = (99, 95, 50, 5, 1)


def _assert_within(dvh, truth_volume_cc, truth_mean, dose_at) -> None:
    assert dvh.total_volume_cc == pytest.approx(truth_volume_cc, rel=5e-3)
    assert dvh.mean_gy == pytest.approx(truth_mean, rel=5e-3)
    for pct in PERCENTS:
        want = dose_at(pct / 100 * truth_volume_cc)
        assert dvh.dose_at_volume_pct(pct) == pytest.approx(want, abs=max(0.01 * want, 0.05))
    if truth_volume_cc > 0.1:
        want = dose_at(0.03)
        assert dvh.dose_at_volume_cc(0.03) == pytest.approx(want, abs=max(0.01 * want, 0.05))


@pytest.mark.parametrize("seed", [3, 11, 26, 40, 57, 74, 93, 120])
def test_random_structure_in_a_dose_linear_along_an_axis(seed):
    case = rc.random_case(seed)
    truth = rc.axis_truth(case)
    sd = structure_dvh(case.roi, rc.linear_grid(case.nodes, case.offset_gy, case.gradient))
    assert sd.volume_cc == pytest.approx(truth.total_volume_cc, rel=1e-9)
    _assert_within(sd.dvh, truth.total_volume_cc, truth.mean_gy, truth.dose_at_volume_cc)


@pytest.mark.parametrize("seed", [101, 117, 142, 168])
def test_random_structure_in_an_oblique_linear_dose(seed):
    """The trilinear field of an oblique gradient is the gradient itself; each sample's spread
    is exact only for a gradient along an axis, so this is where it is tested."""
    case = rc.random_case(seed)
    off, g = rc.oblique(case)
    truth = ex.ObliqueDvh(rc.slabs_of(case.roi), off, g)
    sd = structure_dvh(case.roi, rc.linear_grid(case.nodes, off, g))
    _assert_within(sd.dvh, truth.total_volume_cc, truth.mean_gy, truth.dose_at_volume_cc)


@pytest.mark.parametrize(
    ("seed", "op"),
    [
        (4, "union"),
        (80, "union"),
        (207, "difference"),
        (216, "union"),
        (24, "difference"),
        (66, "difference"),
    ],
)
def test_random_derived_structure(seed, op):
    """The second structure is the first with every plane scaled and moved in plane, so both
    share their planes and the truth is the union or difference plane by plane (shapely) on the
    first structure's slabs, on a grid widened (same nodes) to hold both."""
    case = rc.random_case(seed)
    other = rc.partner(case)
    truth, nodes, off = rc.derived_truth(case, other, op)
    plus, minus = ((other,), ()) if op == "union" else ((), (other,))
    dose = rc.linear_grid(nodes, off, case.gradient)
    sd = derived_dvh(case.roi, dose, minus=minus, plus=plus)
    assert sd.volume_cc == pytest.approx(truth.total_volume_cc, rel=1e-9)
    _assert_within(sd.dvh, truth.total_volume_cc, truth.mean_gy, truth.dose_at_volume_cc)
