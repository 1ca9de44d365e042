"""The fast forms of the DVH curve against a brute-force evaluation of the same model.

``V(x) = sum_i v_i * clip((d_i + w_i / 2 - x) / w_i, 0, 1)`` (point masses: ``v_i [d_i >= x]``)
is evaluated sample by sample, and ``D(v)`` (the largest ``x`` with ``V(x) >= v``) by dense
bisection on it; the sorted curve (:class:`_Curve`), the bucketed curve (:class:`_BucketCurve`,
with its per-bucket search, its streaming evaluation of many doses, and from any starting
bucket) and the public :class:`Dvh` metrics on both paths must agree with it.
"""

from __future__ import annotations

import numpy as np
import pytest

import rtqa.dvh.core as core
from rtqa.dvh.core import Dvh, _BucketCurve, _Curve

LIMIT_REL = core.MIN_SPREAD_REL


def samples(seed: int, n: int = 1500):
    """Doses in two clusters (a plateau of V between them), many ties, 15 % point masses
    (spread 0), 5 % spreads below the point-mass limit, the rest spread up to 2 Gy."""
    rng = np.random.default_rng(seed)
    cold = rng.uniform(5.0, 20.0, n // 2)
    hot = rng.uniform(40.0, 60.0, n - n // 2)
    d = np.round(np.concatenate((cold, hot)), 1)  # ties
    rng.shuffle(d)
    v = rng.uniform(1e-3, 2e-3, n)
    w = rng.uniform(0.0, 2.0, n)
    kind = rng.random(n)
    w[kind < 0.15] = 0.0
    w[(kind >= 0.15) & (kind < 0.2)] = 1e-9  # below MIN_SPREAD_REL * 60 Gy: point masses
    return d, v, w


def brute_v(d, v, w, x: float) -> float:
    limit = LIMIT_REL * max(np.abs(d).max(), 1.0)
    point = w <= limit
    spread = ~point
    frac = np.clip((d[spread] + w[spread] / 2 - x) / w[spread], 0.0, 1.0)
    return float(np.sum(v[spread] * frac) + np.sum(v[point][d[point] >= x]))


def brute_d(d, v, w, target: float) -> float:
    lo, hi = float((d - w).min()) - 1.0, float((d + w).max()) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if brute_v(d, v, w, mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo


def curves(d, v, w, buckets: int, monkeypatch):
    """The sorted curve and a bucketed curve of ``buckets`` buckets of the same samples."""
    dvh = Dvh.from_samples(d, v, spreads_gy=w)
    monkeypatch.setattr(core, "BUCKETS", buckets)
    bucketed = _BucketCurve(dvh._d, dvh._v, dvh._w, dvh._point_limit, dvh._extent)
    return _Curve.from_samples(dvh._d, dvh._v, dvh._w, dvh._point_limit), bucketed


def probe_doses(d, w):
    """Doses at every kind of breakpoint (point masses, spread ends, their neighbours), inside
    the plateau, and beyond both ends."""
    keys = np.concatenate((d, d - w / 2, d + w / 2))
    near = np.concatenate((np.nextafter(keys, -np.inf), np.nextafter(keys, np.inf)))
    rng = np.random.default_rng(0)
    picks = rng.choice(np.concatenate((keys, near)), 120, replace=False)
    return np.concatenate((picks, [-5.0, 0.0, 30.0, 35.0, 100.0], rng.uniform(0.0, 65.0, 40)))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("buckets", [1, 7, 64, 4096])
def test_volume_at_dose_matches_brute_force(seed, buckets, monkeypatch):
    d, v, w = samples(seed)
    ordered, bucketed = curves(d, v, w, buckets, monkeypatch)
    xs = probe_doses(d, w)
    want = np.array([brute_v(d, v, w, x) for x in xs])
    tol = 1e-12 * v.sum()
    assert np.abs(ordered.at_least_many(xs) - want).max() < tol
    assert np.abs([bucketed.at_least(x) - y for x, y in zip(xs, want, strict=True)]).max() < tol
    # many doses at once: one streaming pass; a few: bucket by bucket
    assert np.abs(bucketed.at_least_many(xs) - want).max() < tol
    assert np.abs(bucketed.at_least_many(xs[:3]) - want[:3]).max() < tol


def volume_targets(d, v, w):
    """Volumes (cc) at random, just under and over the level of the plateau (answers: its top
    and its bottom), and at the steps of the highest point masses (answer: the point dose).
    Levels reached exactly are read less a relative 1e-12, as :class:`Dvh` does."""
    total = float(v.sum())
    rng = np.random.default_rng(3)
    plateau = brute_v(d, v, w, 30.0)
    limit = LIMIT_REL * max(np.abs(d).max(), 1.0)
    hot_points = np.sort(d[(w <= limit) & (d > 50.0)])[::-1][:5]
    steps = [brute_v(d, v, w, x) * (1 - 1e-12) for x in hot_points]
    levels = [plateau * (1 - 1e-12), plateau * (1 + 1e-9), 1e-6, total * (1 - 1e-12)]
    return np.concatenate((rng.uniform(0.0, total, 25), levels, steps))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("buckets", [1, 7, 4096])
def test_dose_at_volume_matches_brute_force_inverse(seed, buckets, monkeypatch):
    d, v, w = samples(seed, 800)
    ordered, bucketed = curves(d, v, w, buckets, monkeypatch)
    for target in volume_targets(d, v, w):
        want = brute_d(d, v, w, target)
        for got in (ordered.dose_at(target), bucketed.dose_at(target)):
            assert got == pytest.approx(want, abs=1e-9), target


def test_bucket_search_converges_from_any_start(monkeypatch):
    d, v, w = samples(4, 800)
    ordered, bucketed = curves(d, v, w, 16, monkeypatch)
    for target in volume_targets(d, v, w)[::3]:
        want = ordered.dose_at(target)
        for start in range(16):
            assert bucketed._dose_from(start, target) == pytest.approx(want, abs=1e-9)


def test_point_masses_land_exactly_on_their_dose(monkeypatch):
    # 10 point masses of 1 cc at 1..10 Gy: D(k cc) = 11 - k exactly on both curves, and the
    # bucket edges (4 buckets over 1..10 Gy) fall on sample doses
    d = np.arange(1.0, 11.0)
    v = np.ones(10)
    dvh = Dvh.from_samples(d, v)
    monkeypatch.setattr(core, "BUCKETS", 4)
    bucketed = _BucketCurve(d, v, None, dvh._point_limit, dvh._extent)
    ordered = _Curve.from_samples(d, v, None, dvh._point_limit)
    for k in range(1, 11):
        target = k * (1 - 1e-12)
        assert ordered.dose_at(target) == 11 - k
        assert bucketed.dose_at(target) == 11 - k
        assert bucketed.at_least(11.0 - k) == pytest.approx(k)
        assert bucketed.at_least(np.nextafter(11.0 - k, np.inf)) == pytest.approx(k - 1)
        # from any bucket: flat stretches (no spread) above and below point the way
        for start in range(4):
            assert bucketed._dose_from(start, target) == 11 - k


def test_all_samples_at_one_dose_use_one_bucket(monkeypatch):
    monkeypatch.setattr(core, "SORT_LIMIT", 0)
    dvh = Dvh.from_samples(np.full(30, 12.5), np.full(30, 0.1))
    assert isinstance(dvh._curve, _BucketCurve)
    assert dvh.dose_at_volume_pct(50) == 12.5
    assert dvh.volume_at_dose_cc(12.5) == pytest.approx(3.0)
    assert dvh.volume_at_dose_cc(12.5 + 1e-6) == 0.0
    assert (dvh.min_gy, dvh.max_gy) == (12.5, 12.5)


def public_metrics(dvh: Dvh) -> list[float]:
    """Every public metric; Min and the cold-end doses only where the whole structure lies in
    the dose grid (else they are refused: the coldest part may lie outside)."""
    known = dvh.known_volume_cc
    values = [dvh.max_gy, dvh.mean_gy, dvh.median_gy, dvh.dose_at_volume_cc(0.03)]
    values += [dvh.dose_at_volume_pct(p) for p in (0, 1, 2, 5, 50, 95, 98, 99)]
    if dvh.unknown_volume_cc == 0:
        values += [dvh.min_gy]
        values += [dvh.cold_dose_at_volume_cc(c) for c in (0.0, 0.1, 0.5 * known)]
    values += [dvh.volume_at_dose_cc(x) for x in (-1.0, 0.0, 12.3, 20.0, 30.0, 45.0, 61.0)]
    values += [dvh.volume_at_dose_pct(20.0), dvh.cold_volume_cc(45.0)]
    return values


@pytest.mark.parametrize("unknown_cc", [0.0, 0.2])
@pytest.mark.parametrize("spread", [True, False])
def test_public_metrics_agree_on_both_paths(spread, unknown_cc, monkeypatch):
    d, v, w = samples(5, 30_000)
    w = w if spread else None
    monkeypatch.setattr(core, "SORT_LIMIT", 10_000)
    bucketed = Dvh.from_samples(d, v, unknown_cc, w)
    assert isinstance(bucketed._curve, _BucketCurve)
    monkeypatch.setattr(core, "SORT_LIMIT", 10**9)
    ordered = Dvh.from_samples(d, v, unknown_cc, w)
    assert isinstance(ordered._curve, _Curve)
    assert public_metrics(bucketed) == pytest.approx(public_metrics(ordered), rel=1e-9, abs=1e-9)
    # the analytic anchors: D0% is the highest spread end, V below all doses the known volume
    assert bucketed.dose_at_volume_pct(0) == bucketed.max_gy
    assert bucketed.volume_at_dose_cc(-1.0) == pytest.approx(v.sum(), rel=1e-12)


def test_cumulative_is_volume_at_dose_on_every_path(monkeypatch):
    d, v, w = samples(6, 3000)
    monkeypatch.setattr(core, "SORT_LIMIT", 1000)
    reference = Dvh.from_samples(d, v, spreads_gy=w)
    doses = np.arange(0.0, d.max() + 0.5, 0.5)
    points = [reference.volume_at_dose_cc(x) for x in doses]
    brute = [brute_v(d, v, w, x) for x in doses]
    for sorted_limit in (10**9, 0):  # sort for the curve, or stream over the samples
        monkeypatch.setattr(core, "SORTED_CURVE_LIMIT", sorted_limit)
        dvh = Dvh.from_samples(d, v, spreads_gy=w)
        got_doses, volumes = dvh.cumulative(0.5)
        assert got_doses.tolist() == doses.tolist()
        assert volumes == pytest.approx(points, rel=1e-12, abs=1e-12)
        assert volumes == pytest.approx(brute, rel=1e-9, abs=1e-9)


def test_samples_are_sorted_only_when_read():
    d, v, w = samples(7, 500)
    dvh = Dvh.from_samples(d, v, spreads_gy=w)
    metrics = public_metrics(dvh)
    order = np.argsort(-d, kind="stable")
    assert dvh.doses_gy.tolist() == d[order].tolist()
    assert dvh.volumes_cc.tolist() == v[order].tolist()
    assert dvh.spreads_gy.tolist() == w[order].tolist()
    assert public_metrics(Dvh.from_samples(d, v, spreads_gy=w)) == metrics


@pytest.mark.parametrize("n", [1, 1000, core.BLOCK, 3 * core.BLOCK + 17])
def test_weighted_sum_matches_an_exactly_rounded_sum(n):
    """The blockwise sum of products (no BLAS) against math.fsum of the same products, across
    block boundaries (a lost or doubled block would be off by about 1/3 of the total)."""
    import math

    rng = np.random.default_rng(n)
    a = rng.uniform(0.0, 60.0, n)
    b = rng.uniform(0.0, 0.05, n)
    exact = math.fsum((a * b).tolist())
    assert core.weighted_sum(a, b) == pytest.approx(exact, rel=1e-13)
    d = Dvh.from_samples(a, b)
    assert d.mean_gy == pytest.approx(exact / math.fsum(b.tolist()), rel=1e-12)
