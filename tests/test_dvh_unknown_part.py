"""Metrics of a structure partly outside the dose grid: the cold end is unknown.

A structure of 10 cc: 8 cc of known dose spread uniformly over 10-18 Gy (one sample per cc,
each spread over 1 Gy: the curve V(d) = 18 - d cc on [10, 18]) and 2 cc outside the grid.
"""

import numpy as np
import pytest

from rtqa.dvh import Dvh, MetricUndefined


@pytest.fixture
def partial() -> Dvh:
    doses = np.arange(10.5, 18.0, 1.0)  # 8 samples of 1 cc, each spread over 1 Gy
    return Dvh.from_samples(doses, np.ones(8), 2.0, np.ones(8))


def test_hot_end_metrics_are_read_on_the_known_part(partial):
    assert partial.total_volume_cc == pytest.approx(10.0)
    assert partial.dose_at_volume_cc(3.0) == pytest.approx(15.0)
    assert partial.dose_at_volume_pct(50.0) == pytest.approx(13.0)  # 5 cc from the hot end
    assert partial.median_gy == pytest.approx(13.0)  # the median is D50% of the whole
    assert partial.mean_gy == pytest.approx(14.0)  # of the known part
    assert partial.cold_volume_cc(12.0) == pytest.approx(2.0)  # known part below 12 Gy
    with pytest.raises(MetricUndefined, match="outside the dose grid"):
        partial.dose_at_volume_pct(90.0)  # 9 cc: 1 cc into the unknown part


def test_cold_end_metrics_are_refused(partial):
    # the 2 cc outside could be colder than 10 Gy: Min and DC are unknown (they were 10 Gy and,
    # for DC1cc, 11 Gy: the coldest cc of the known part)
    with pytest.raises(MetricUndefined, match="2 cc of the structure outside the dose grid"):
        _ = partial.min_gy
    with pytest.raises(MetricUndefined, match="DC1cc reaches into"):
        partial.cold_dose_at_volume_cc(1.0)


def test_whole_structure_in_the_grid_keeps_its_cold_end():
    doses = np.arange(10.5, 18.0, 1.0)
    whole = Dvh.from_samples(doses, np.ones(8), 0.0, np.ones(8))
    assert whole.min_gy == pytest.approx(10.0)
    assert whole.cold_dose_at_volume_cc(1.0) == pytest.approx(11.0)
    assert whole.median_gy == pytest.approx(14.0)
