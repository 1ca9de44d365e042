"""The exact dose-volume distribution of one structure: :class:`Dvh`.

Conventions
-----------
* Doses in Gy, volumes in cc. A DVH is built from weighted samples (one dose and one volume per
  sample: the sub-voxels of a structure's occupancy), never from a histogram.
* Each sample stands for a small cell over which the dose varies; its volume is spread
  **uniformly** over the dose interval ``[d_i - w_i / 2, d_i + w_i / 2]`` (``spreads_gy``: the
  dose change across the cell, e.g. ``|grad D| * cell size`` from the sampler). A spread below
  1e-7 of the dose scale, or no ``spreads_gy`` at all, makes a sample a point mass: its whole
  volume receives exactly its dose (a step in the curve).
* The cumulative curve ``V(d)`` (volume receiving at least ``d``) is exact for this model:
  piecewise linear between interval ends, with steps at point masses. ``D(v)`` (the minimum
  dose to the hottest ``v`` cc) is its inverse: the largest ``d`` with ``V(d) >= v``. For a dose
  linear across each cell the model is exact; as cells shrink it converges to the continuous
  DVH with no binning error. The mean is that of the sample doses (a symmetric spread does not
  move it); min and max are the outer ends of the spreads.
* ``unknown_volume_cc`` is the part of the structure whose dose is unknown (outside the dose
  grid). It is **never** taken as 0 Gy: it only enters the denominator of every % metric
  (``total_volume_cc = known + unknown``); volume-at-dose and dose-at-volume metrics are read on
  the known part, counting from the hot end (so they hold if the unknown part is no hotter than
  the value read — which the caller must report, see ``StructureDvh.notes``). A metric whose
  volume exceeds the known part raises :class:`MetricUndefined`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: Relative tolerance on dose comparisons (floating-point noise of interpolation, not rounding).
DOSE_RTOL = 1e-9
#: Spreads narrower than this fraction of the largest dose are treated as none (point masses).
MIN_SPREAD_REL = 1e-7
#: Absolute tolerance (cc) when a requested volume is compared with the structure volume.
VOLUME_ATOL_CC = 1e-9
#: Distributions with more samples than this are not sorted (see :class:`_BucketCurve`).
SORT_LIMIT = 400_000
#: Buckets of :class:`_BucketCurve`.
BUCKETS = 65_536


class MetricUndefined(ValueError):
    """A metric cannot be evaluated for this structure (e.g. D1500cc of a 1000 cc organ)."""


class Dvh:
    """Exact weighted dose distribution of one structure (no binning).

    ``doses_gy`` are per-sample doses sorted descending and ``volumes_cc`` their volumes (cc) in
    the same order (``spreads_gy``: the per-sample full width of the dose spread, Gy, or None);
    build one with :meth:`from_samples`. See the module docstring for the interpolation
    convention and the meaning of ``unknown_volume_cc``.

    Large distributions (more than :data:`SORT_LIMIT` samples) are kept unsorted: their metrics
    are read from an exact bucketed form of the same curve (:class:`_BucketCurve`), and the
    sorted arrays are only made when ``doses_gy``, ``volumes_cc`` or ``spreads_gy`` is read.
    """

    def __init__(
        self,
        doses_gy: np.ndarray,
        volumes_cc: np.ndarray,
        unknown_volume_cc: float = 0.0,
        spreads_gy: np.ndarray | None = None,
        *,
        is_sorted: bool = True,
    ):
        self._d = np.asarray(doses_gy, dtype=float)
        self._v = np.asarray(volumes_cc, dtype=float)
        self._w = None if spreads_gy is None else np.asarray(spreads_gy, dtype=float)
        self._sorted = is_sorted
        self.unknown_volume_cc = float(unknown_volume_cc)

    def __repr__(self) -> str:
        return (
            f"Dvh({self._d.size} samples, known {self.known_volume_cc:.6g} cc, "
            f"unknown {self.unknown_volume_cc:.6g} cc)"
        )

    def _sort(self) -> None:
        if not self._sorted:
            order = np.argsort(-self._d, kind="stable")
            self._d, self._v = self._d[order], self._v[order]
            if self._w is not None:
                self._w = self._w[order]
            self._sorted = True

    @property
    def doses_gy(self) -> np.ndarray:
        """Per-sample doses (Gy), sorted descending."""
        self._sort()
        return self._d

    @property
    def volumes_cc(self) -> np.ndarray:
        """Per-sample volumes (cc), in the order of ``doses_gy``."""
        self._sort()
        return self._v

    @property
    def spreads_gy(self) -> np.ndarray | None:
        """Per-sample full widths of the dose spread (Gy), in the order of ``doses_gy``."""
        self._sort()
        return self._w

    @classmethod
    def from_samples(
        cls,
        doses_gy: ArrayLike,
        volumes_cc: ArrayLike,
        unknown_volume_cc: float = 0.0,
        spreads_gy: ArrayLike | None = None,
    ) -> Dvh:
        """The distribution of weighted samples, dropping zero-volume samples (sorted by dose,
        hottest first, when read).

        ValueError on mismatched lengths, non-finite doses or negative volumes or spreads.
        """
        d = np.asarray(doses_gy, dtype=float).ravel()
        v = np.asarray(volumes_cc, dtype=float).ravel()
        w = None if spreads_gy is None else np.asarray(spreads_gy, dtype=float).ravel()
        if d.shape != v.shape or (w is not None and w.shape != d.shape):
            raise ValueError(f"{d.size} doses but {v.size} volumes")
        if w is not None and (not np.isfinite(w.sum()) or (w.size and w.min() < 0)):
            raise ValueError("dose spreads must be finite and non-negative")
        if not np.isfinite(d.sum()):
            raise ValueError("sample doses must be finite")
        if not np.isfinite(v.sum()) or (v.size and v.min() < 0):
            raise ValueError("sample volumes must be finite and non-negative")
        if not np.isfinite(unknown_volume_cc) or unknown_volume_cc < 0:
            raise ValueError(f"unknown volume must be >= 0 cc, got {unknown_volume_cc}")
        if v.size and v.min() <= 0:
            keep = v > 0
            d, v = d[keep], v[keep]
            w = None if w is None else w[keep]
        if d.size > SORT_LIMIT:
            return cls(d, v, float(unknown_volume_cc), w, is_sorted=False)
        order = np.argsort(-d, kind="stable")
        w = None if w is None else w[order]
        return cls(d[order], v[order], float(unknown_volume_cc), w)

    # ---------------------------------------------------------------- volumes

    @property
    def known_volume_cc(self) -> float:
        """Volume (cc) whose dose is known."""
        cached = self.__dict__.get("_known")
        if cached is None:
            cached = float(np.sum(self._v)) if self._v.size else 0.0
            self._known = cached
        return cached

    @property
    def total_volume_cc(self) -> float:
        """Known + unknown volume (cc): the denominator of every % metric."""
        return self.known_volume_cc + self.unknown_volume_cc

    @property
    def _curve(self) -> _Curve:
        cached = self.__dict__.get("_curve_cache")
        if cached is None:
            if self._sorted:
                cached = _Curve(self._d, self._v, self._w)
            else:
                cached = _BucketCurve(self._d, self._v, self._w)
            self._curve_cache = cached
        return cached

    def _require_samples(self) -> None:
        if self._v.size == 0:
            raise MetricUndefined("the structure has no volume with a known dose")

    # ---------------------------------------------------------------- summary doses

    @property
    def min_gy(self) -> float:
        """Minimum dose (Gy) over the known part: the lowest end of the sample spreads."""
        self._require_samples()
        return self._curve.lowest

    @property
    def max_gy(self) -> float:
        """Maximum dose (Gy) over the known part: the highest end of the sample spreads (a
        point dose; see D0.03cc for a volume-based maximum)."""
        self._require_samples()
        return self._curve.highest

    @property
    def mean_gy(self) -> float:
        """Volume-weighted mean dose (Gy) over the known part."""
        self._require_samples()
        return float(np.dot(self._d, self._v) / self.known_volume_cc)

    @property
    def median_gy(self) -> float:
        """Dose (Gy) at half the known volume (D50% of the known part)."""
        return self.dose_at_volume_cc(0.5 * self.known_volume_cc)

    # ---------------------------------------------------------------- dose at volume

    def dose_at_volume_cc(self, v_cc: float) -> float:
        """D{v}cc (Gy): the minimum dose to the hottest ``v_cc`` cc.

        MetricUndefined when ``v_cc`` exceeds the known volume (the rest has unknown dose) or the
        structure volume.
        """
        v_cc = float(v_cc)
        self._require_samples()
        if not np.isfinite(v_cc) or v_cc < 0:
            raise ValueError(f"volume must be >= 0 cc, got {v_cc}")
        if v_cc > self.total_volume_cc + VOLUME_ATOL_CC:
            raise MetricUndefined(
                f"D{v_cc:g}cc asks for {v_cc:g} cc of a {self.total_volume_cc:.4g} cc structure"
            )
        if v_cc > self.known_volume_cc + VOLUME_ATOL_CC:
            raise MetricUndefined(
                f"D{v_cc:g}cc reaches into the {self.unknown_volume_cc:.4g} cc of the structure "
                "outside the dose grid (dose unknown)"
            )
        return self._dose_at(v_cc)

    def _dose_at(self, v_cc: float) -> float:
        """The largest dose ``x`` with ``V(x) >= v_cc`` (bisection on the exact curve)."""
        curve = self._curve
        lo, hi = curve.lowest, curve.highest
        if v_cc <= 0:
            return hi
        target = v_cc * (1 - 1e-12)
        if isinstance(curve, _BucketCurve):
            return curve.dose_at(target)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if curve.at_least(mid) >= target:
                lo = mid
            else:
                hi = mid
        return float(lo)

    def dose_at_volume_pct(self, pct: float) -> float:
        """D{pct}% (Gy): the minimum dose to the hottest ``pct`` % of the whole structure."""
        pct = float(pct)
        if not np.isfinite(pct) or pct < 0 or pct > 100:
            raise MetricUndefined(f"D{pct:g}%: a percentage must lie in [0, 100]")
        return self.dose_at_volume_cc(pct / 100.0 * self.total_volume_cc)

    def cold_dose_at_volume_cc(self, v_cc: float) -> float:
        """DC{v}cc (Gy): the highest dose received by the coldest ``v_cc`` cc of the known part."""
        v_cc = float(v_cc)
        self._require_samples()
        if not np.isfinite(v_cc) or v_cc < 0:
            raise ValueError(f"volume must be >= 0 cc, got {v_cc}")
        known = self.known_volume_cc
        if v_cc > known + VOLUME_ATOL_CC:
            raise MetricUndefined(
                f"DC{v_cc:g}cc asks for {v_cc:g} cc of a structure with {known:.4g} cc "
                "of known dose"
            )
        return self._dose_at(max(known - v_cc, 0.0))

    # ---------------------------------------------------------------- volume at dose

    def volume_at_dose_cc(self, d_gy: float) -> float:
        """V{d}Gy (cc): the volume receiving at least ``d_gy`` (known part)."""
        d_gy = float(d_gy)
        if not np.isfinite(d_gy):
            raise ValueError(f"dose must be finite, got {d_gy}")
        if self._v.size == 0:
            return 0.0
        curve = self._curve
        exact = curve.at_least(d_gy)
        # "at least", up to floating-point noise: a plateau (or point masses) lying just below
        # d_gy counts; a continuous slope is read at d_gy itself
        noisy = curve.at_least(d_gy - DOSE_RTOL * max(abs(d_gy), 1.0))
        value = noisy if noisy - exact > 1e-6 * self.known_volume_cc else exact
        return min(max(value, 0.0), self.known_volume_cc)

    def volume_at_dose_pct(self, d_gy: float) -> float:
        """V{d}Gy (%): volume receiving at least ``d_gy`` in % of the whole structure volume."""
        total = self.total_volume_cc
        if total <= 0:
            raise MetricUndefined("the structure has no volume")
        return 100.0 * self.volume_at_dose_cc(d_gy) / total

    def volume_at_rx_pct(self, pct_of_rx: float, rx_gy: float) -> float:
        """V{pct}% of a reference dose (%): e.g. V100% with ``rx_gy`` the prescription."""
        if not rx_gy or rx_gy <= 0:
            raise MetricUndefined("a metric relative to the prescription needs Rx > 0 Gy")
        return self.volume_at_dose_pct(pct_of_rx / 100.0 * rx_gy)

    def cold_volume_cc(self, d_gy: float) -> float:
        """CV{d}Gy (cc): the known volume receiving less than ``d_gy``."""
        return max(self.known_volume_cc - self.volume_at_dose_cc(d_gy), 0.0)

    # ---------------------------------------------------------------- curves

    def cumulative(self, bin_gy: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative DVH for display: ``(dose_gy, volume_cc)`` at doses 0, bin, 2 bin, ... up
        to the first step at or beyond the maximum; volume receiving at least each dose."""
        if bin_gy <= 0:
            raise ValueError("bin width must be > 0 Gy")
        top = float(self._d.max()) if self._d.size else 0.0
        doses = np.arange(0.0, top + bin_gy, bin_gy)
        volumes = np.array([self.volume_at_dose_cc(x) for x in doses]) if doses.size else doses
        return doses, volumes

    def differential(self, bin_gy: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Differential DVH for display: ``(bin_centre_gy, volume_cc per bin)``, bins of
        ``bin_gy`` from 0 Gy."""
        if bin_gy <= 0:
            raise ValueError("bin width must be > 0 Gy")
        top = float(self._d.max()) if self._d.size else 0.0
        edges = np.arange(0.0, top + 2 * bin_gy, bin_gy)
        hist, _ = np.histogram(self._d, bins=edges, weights=self._v)
        return 0.5 * (edges[:-1] + edges[1:]), hist


class _Curve:
    """``V(x)``, the volume receiving at least ``x``, for point masses and uniform spreads:
    sorted interval ends with suffix sums, so one evaluation costs O(log n)."""

    def __init__(self, d: np.ndarray, v: np.ndarray, w: np.ndarray | None):
        scale = max(float(np.max(np.abs(d))) if d.size else 0.0, 1.0)
        # spreads below MIN_SPREAD_REL of the dose scale are rounding noise: point masses
        step = np.ones(d.size, bool) if w is None else w <= MIN_SPREAD_REL * scale
        self.step_d = np.ascontiguousarray(d[step][::-1])  # ascending
        self.step_c = _suffix(v[step][::-1])
        if step.all():
            self.has_spread = False
            self.lowest = float(d[-1]) if d.size else 0.0
            self.highest = float(d[0]) if d.size else 0.0
            return
        self.has_spread = True
        assert w is not None
        if step.any():
            d, v, w = d[~step], v[~step], w[~step]
        rate = v / w
        self.lo_k, self.lo_r, self.lo_rk = _sorted_sums(d - w / 2, rate)
        self.up_k, self.up_r, self.up_rk = _sorted_sums(d + w / 2, rate)
        del rate
        self.lowest = float(min(self.lo_k[0], self.step_d[0] if self.step_d.size else np.inf))
        # (up_k[-1] is the highest upper end: the keys are sorted)
        self.highest = float(max(self.up_k[-1], self.step_d[-1] if self.step_d.size else -np.inf))

    def at_least(self, x: float) -> float:
        """Volume (cc) with dose >= x."""
        total = float(self.step_c[np.searchsorted(self.step_d, x, side="left")])
        if self.has_spread:
            iu = np.searchsorted(self.up_k, x, side="right")
            il = np.searchsorted(self.lo_k, x, side="right")
            total += (self.up_rk[iu] - x * self.up_r[iu]) - (self.lo_rk[il] - x * self.lo_r[il])
        return float(total)


def _suffix(values: np.ndarray) -> np.ndarray:
    """``out[i] = sum(values[i:])``, with a trailing 0 (no temporary of the input's size)."""
    out = np.zeros(values.size + 1)
    if values.size:
        np.cumsum(values[::-1], out=out[-2::-1])
    return out


def _sorted_sums(keys: np.ndarray, rate: np.ndarray):
    """Keys sorted ascending, with suffix sums of ``rate`` and of ``rate * key``."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    r = rate[order]
    del order
    rk = _suffix(r * k)
    return k, _suffix(r), rk


class _BucketCurve:
    """The same ``V(x)`` as :class:`_Curve` without sorting: the interval ends (and point
    masses) are grouped in equal dose buckets, each holding the sums of ``rate`` and of
    ``rate * (key - bucket start)``. ``V`` at any bucket edge follows exactly from suffix sums;
    inside a bucket the few samples whose keys fall in it are evaluated one by one. Exact like
    :class:`_Curve` (no binning error); O(n) to build, O(n) per query for a mask over the bucket
    indices (no sort)."""

    def __init__(self, d: np.ndarray, v: np.ndarray, w: np.ndarray | None):
        scale = max(float(np.max(np.abs(d))) if d.size else 0.0, 1.0)
        step = np.ones(d.size, bool) if w is None else w <= MIN_SPREAD_REL * scale
        sets = []
        if step.all():
            sets.append((d, v, 1.0))
            lo_all, hi_all = float(d.min()), float(d.max())
        else:
            assert w is not None
            if step.any():
                sets.append((d[step], v[step], 1.0))
                dd, vv, ww = d[~step], v[~step], w[~step]
            else:
                dd, vv, ww = d, v, w
            rate = vv / ww
            half = 0.5 * ww
            sets.append((dd + half, rate, 0.0))
            sets.append((dd - half, rate, -1.0))
            lo_all = min(float(k.min()) for k, _, _ in sets)
            hi_all = max(float(k.max()) for k, _, _ in sets)
        self.lowest, self.highest = lo_all, hi_all
        n = BUCKETS
        width = (hi_all - lo_all) / n if hi_all > lo_all else 1.0
        self.edges = lo_all + width * np.arange(n + 1)
        self.width = width
        self.sets = []
        # V at every bucket edge: contributions of the keys at or above it
        v_edge = np.zeros(n + 1)
        for keys, wt, kind in sets:
            b = self._bucket(keys)
            s0 = np.bincount(b, weights=wt, minlength=n)
            if kind == 1.0:  # point masses: volume of keys >= x
                suffix = np.append(np.cumsum(s0[::-1])[::-1], 0.0)
                v_edge += suffix
                self.sets.append((keys, wt, kind, b, suffix, None))
            else:  # rate * (key - x)^+, with the sign of the set
                s1 = np.bincount(b, weights=wt * (keys - self.edges[b]), minlength=n)
                # sum over buckets c >= b of s1_c + (e_c - x) s0_c
                r = np.append(np.cumsum(s0[::-1])[::-1], 0.0)
                rk = np.append(np.cumsum((s1 + self.edges[:-1] * s0)[::-1])[::-1], 0.0)
                sign = 1.0 if kind == 0.0 else -1.0
                v_edge += sign * (rk - self.edges * r)
                self.sets.append((keys, wt, sign, b, r, rk))
        self.v_edge = v_edge

    def _bucket(self, keys: np.ndarray) -> np.ndarray:
        """Bucket b of each key with edges[b] <= key < edges[b + 1] (the last bucket closed),
        up to the rounding of one division (a key within an ulp of an edge may fall on either
        side, which moves a result by at most that ulp)."""
        t = (keys - self.edges[0]) * (1.0 / self.width)
        np.clip(t, 0, BUCKETS - 1, out=t)
        return t.astype(np.intp)

    def _inside(self, b: int):
        """The bucket-``b`` function: V(x) for edges[b] <= x <= edges[b + 1]."""
        parts = []
        const, slope = 0.0, 0.0
        for keys, wt, kind, bk, a, rk in self.sets:
            sel = np.flatnonzero(bk == b)
            if rk is None:
                const += a[b + 1]
                parts.append((keys[sel], wt[sel], None))
            else:
                const += kind * rk[b + 1]
                slope -= kind * a[b + 1]
                parts.append((keys[sel], wt[sel], kind))

        def value(x: float) -> float:
            total = const + slope * x
            for k, wt, kind in parts:
                if kind is None:
                    total += float(wt[k >= x].sum())
                else:
                    total += kind * float(np.dot(wt, np.clip(k - x, 0.0, None)))
            return total

        return value

    def at_least(self, x: float) -> float:
        """Volume (cc) with dose >= x."""
        if x <= self.edges[0]:
            b = 0
        elif x >= self.edges[-1]:
            b = BUCKETS - 1
        else:
            b = int(self._bucket(np.array([x]))[0])
        return self._inside(b)(x)

    def dose_at(self, target: float) -> float:
        """The largest dose x with V(x) >= target (> 0)."""
        ok = np.flatnonzero(self.v_edge >= target)
        if ok.size == 0:
            return self.lowest
        b = int(ok[-1])
        if b >= BUCKETS:
            return self.highest
        f = self._inside(b)
        lo, hi = float(self.edges[b]), float(self.edges[b + 1])
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if f(mid) >= target:
                lo = mid
            else:
                hi = mid
        return float(lo)
