"""Dvh: exact weighted distribution, interpolation convention, metric edge cases."""

import numpy as np
import pytest

from rtqa.dvh import Dvh, MetricUndefined, display_bin_gy


def uniform_ramp(n=200_001, top=10.0, total=100.0, unknown=0.0):
    """Doses uniformly spread over [0, top] Gy: V(d) = total * (1 - d / top) exactly."""
    d = np.linspace(0.0, top, n)
    return Dvh.from_samples(d[::-1].copy(), np.full(n, total / n), unknown)


def test_ramp_converges_to_continuous_values():
    dvh = uniform_ramp()
    assert dvh.total_volume_cc == pytest.approx(100.0)
    assert dvh.dose_at_volume_pct(95) == pytest.approx(0.5, abs=1e-4)
    assert dvh.dose_at_volume_cc(2.0) == pytest.approx(9.8, abs=1e-4)
    assert dvh.volume_at_dose_cc(7.5) == pytest.approx(25.0, abs=1e-3)
    assert dvh.volume_at_dose_pct(2.0) == pytest.approx(80.0, abs=1e-3)
    assert dvh.cold_volume_cc(2.0) == pytest.approx(20.0, abs=1e-3)
    assert dvh.cold_dose_at_volume_cc(10.0) == pytest.approx(1.0, abs=1e-4)
    assert dvh.mean_gy == pytest.approx(5.0, abs=1e-9)
    assert dvh.median_gy == pytest.approx(5.0, abs=1e-4)
    assert (dvh.min_gy, dvh.max_gy) == (0.0, 10.0)
    assert dvh.volume_at_rx_pct(50, 10.0) == pytest.approx(50.0, abs=1e-3)


def test_samples_are_sorted_and_zero_volumes_dropped():
    dvh = Dvh.from_samples([1.0, 3.0, 2.0, 9.0], [1.0, 1.0, 1.0, 0.0])
    assert dvh.doses_gy.tolist() == [3.0, 2.0, 1.0]
    assert dvh.known_volume_cc == 3.0
    assert dvh.mean_gy == pytest.approx(2.0)


def test_uniform_dose_is_received_by_the_whole_volume():
    dvh = Dvh.from_samples(np.full(50, 20.0), np.full(50, 0.1))
    assert dvh.volume_at_dose_cc(20.0) == pytest.approx(5.0)
    assert dvh.volume_at_dose_cc(20.0 + 1e-6) == 0.0
    assert dvh.dose_at_volume_pct(99) == 20.0


def test_unknown_volume_is_in_the_denominator_and_never_zero_dose():
    dvh = uniform_ramp(unknown=25.0)
    assert dvh.total_volume_cc == pytest.approx(125.0)
    assert dvh.volume_at_dose_pct(0.0) == pytest.approx(80.0, abs=1e-3)
    assert dvh.dose_at_volume_pct(40) == pytest.approx(5.0, abs=1e-3)  # 50 cc from the hot end
    with pytest.raises(MetricUndefined, match="outside the dose grid"):
        dvh.dose_at_volume_pct(95)


def test_volume_beyond_structure_is_undefined():
    dvh = uniform_ramp()
    with pytest.raises(MetricUndefined, match="100 cc structure"):
        dvh.dose_at_volume_cc(1500)
    with pytest.raises(MetricUndefined):
        dvh.cold_dose_at_volume_cc(101)
    with pytest.raises(MetricUndefined):
        _ = Dvh.from_samples([], []).mean_gy
    assert issubclass(MetricUndefined, ValueError)


def test_curves():
    dvh = uniform_ramp()
    d, v = dvh.cumulative(1.0)
    assert d[0] == 0.0 and v[0] == pytest.approx(100.0)
    assert v[5] == pytest.approx(50.0, abs=1e-3)
    centres, dv = dvh.differential(1.0)
    assert dv.sum() == pytest.approx(100.0)
    assert dv[3] == pytest.approx(10.0, rel=1e-3)
    assert centres[3] == pytest.approx(3.5)


def test_bad_samples_rejected():
    with pytest.raises(ValueError):
        Dvh.from_samples([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError):
        Dvh.from_samples([1.0], [-1.0])


def test_spread_samples_are_uniform_over_their_interval():
    dvh = Dvh.from_samples([10.0, 20.0], [1.0, 1.0], spreads_gy=[2.0, 0.0])
    assert dvh.volume_at_dose_cc(10.5) == pytest.approx(1.25)  # 1 cc at 20 Gy + 1/4 of 9..11
    assert dvh.volume_at_dose_cc(20.0) == pytest.approx(1.0)  # the point mass, at least 20
    assert dvh.dose_at_volume_cc(1.5) == pytest.approx(10.0)
    assert dvh.dose_at_volume_cc(0.5) == pytest.approx(20.0)
    assert dvh.cold_dose_at_volume_cc(0.25) == pytest.approx(9.5)
    assert dvh.mean_gy == pytest.approx(15.0)


def test_display_curves_stay_bounded_for_an_absurd_dose():
    """A dose grid scaled by mistake (1e12 too large) must not ask for 1e14 curve bins: the
    display bin widens to max / 20000, and an explicit too-fine bin is refused by name."""
    dvh = Dvh.from_samples([1.0e13, 2.0e13], [1.0, 1.0])
    bin_gy = display_bin_gy(dvh, 0.05)
    assert bin_gy == pytest.approx(2.0e13 / 20_000)
    d, v = dvh.cumulative(bin_gy)
    assert d.size == 20_001 and v[0] == pytest.approx(2.0) and v[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"bins of 0.05 Gy up to the maximum 2e\+13 Gy"):
        dvh.cumulative(0.05)
    # ordinary doses keep the asked bin
    assert display_bin_gy(Dvh.from_samples([10.0, 50.0], [1.0, 1.0]), 0.05) == 0.05
