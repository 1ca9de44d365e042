"""The bucketed order statistics of large DVHs agree with the sorted curve."""

from __future__ import annotations

import numpy as np
import pytest

from rtqa.dvh.core import SORT_LIMIT, Dvh, _BucketCurve, _Curve


@pytest.mark.parametrize("with_spread", [False, True])
def test_bucket_curve_matches_sorted_curve(with_spread):
    rng = np.random.default_rng(7)
    n = SORT_LIMIT + 50_000
    d = rng.gamma(4.0, 5.0, n)
    v = rng.uniform(0.0, 2e-4, n)
    w = rng.uniform(0.0, 1.5, n) if with_spread else None
    bucketed = Dvh.from_samples(d, v, spreads_gy=w)
    ordered = Dvh.from_samples(d, v, spreads_gy=w)
    assert isinstance(bucketed._curve, _BucketCurve)
    assert isinstance(ordered._sorted_curve(), _Curve)
    assert isinstance(ordered._curve, _Curve)  # once sorted, the sorted curve serves all
    for x in (-1.0, 0.0, 3.3, 17.25, 40.0, 95.5, 1e3):
        assert bucketed.volume_at_dose_cc(x) == pytest.approx(
            ordered.volume_at_dose_cc(x), abs=1e-9
        )
    total = float(v.sum())
    for vol in (1e-4, 0.03, 1.0, 0.5 * total, 0.99 * total):
        assert bucketed.dose_at_volume_cc(vol) == pytest.approx(
            ordered.dose_at_volume_cc(vol), abs=1e-9
        )
