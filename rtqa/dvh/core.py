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

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Relative tolerance on dose comparisons (floating-point noise of interpolation, not rounding).
DOSE_RTOL = 1e-9
#: Spreads narrower than this fraction of the largest dose are treated as none (point masses).
MIN_SPREAD_REL = 1e-7
#: Absolute tolerance (cc) when a requested volume is compared with the structure volume.
VOLUME_ATOL_CC = 1e-9


class MetricUndefined(ValueError):
    """A metric cannot be evaluated for this structure (e.g. D1500cc of a 1000 cc organ)."""


@dataclass(frozen=True, eq=False)
class Dvh:
    """Exact weighted dose distribution of one structure (no binning).

    ``doses_gy`` are per-sample doses sorted descending and ``volumes_cc`` their volumes (cc) in
    the same order; build one with :meth:`from_samples`. See the module docstring for the
    interpolation convention and the meaning of ``unknown_volume_cc``.
    """

    doses_gy: np.ndarray
    volumes_cc: np.ndarray
    unknown_volume_cc: float = 0.0
    spreads_gy: np.ndarray | None = None  # per-sample full width of the dose spread (Gy)

    @classmethod
    def from_samples(
        cls,
        doses_gy: ArrayLike,
        volumes_cc: ArrayLike,
        unknown_volume_cc: float = 0.0,
        spreads_gy: ArrayLike | None = None,
    ) -> Dvh:
        """Sort the samples by dose (hottest first), dropping zero-volume samples.

        ValueError on mismatched lengths, non-finite doses or negative volumes or spreads.
        """
        d = np.asarray(doses_gy, dtype=float).ravel()
        v = np.asarray(volumes_cc, dtype=float).ravel()
        w = None if spreads_gy is None else np.asarray(spreads_gy, dtype=float).ravel()
        if d.shape != v.shape or (w is not None and w.shape != d.shape):
            raise ValueError(f"{d.size} doses but {v.size} volumes")
        if w is not None and (np.any(w < 0) or not np.all(np.isfinite(w))):
            raise ValueError("dose spreads must be finite and non-negative")
        if not np.all(np.isfinite(d)):
            raise ValueError("sample doses must be finite")
        if np.any(v < 0) or not np.all(np.isfinite(v)):
            raise ValueError("sample volumes must be finite and non-negative")
        if not np.isfinite(unknown_volume_cc) or unknown_volume_cc < 0:
            raise ValueError(f"unknown volume must be >= 0 cc, got {unknown_volume_cc}")
        keep = v > 0
        d, v = d[keep], v[keep]
        order = np.argsort(-d, kind="stable")
        w = None if w is None else w[keep][order]
        return cls(d[order], v[order], float(unknown_volume_cc), w)

    # ---------------------------------------------------------------- volumes

    @property
    def known_volume_cc(self) -> float:
        """Volume (cc) whose dose is known."""
        return float(np.sum(self.volumes_cc)) if self.volumes_cc.size else 0.0

    @property
    def total_volume_cc(self) -> float:
        """Known + unknown volume (cc): the denominator of every % metric."""
        return self.known_volume_cc + self.unknown_volume_cc

    @property
    def _curve(self) -> _Curve:
        cached = self.__dict__.get("_curve_cache")
        if cached is None:
            cached = _Curve(self.doses_gy, self.volumes_cc, self.spreads_gy)
            object.__setattr__(self, "_curve_cache", cached)
        return cached

    def _require_samples(self) -> None:
        if self.volumes_cc.size == 0:
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
        return float(np.dot(self.doses_gy, self.volumes_cc) / self.known_volume_cc)

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
        if self.volumes_cc.size == 0:
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
        top = self.doses_gy[0] if self.doses_gy.size else 0.0
        doses = np.arange(0.0, top + bin_gy, bin_gy)
        volumes = np.array([self.volume_at_dose_cc(x) for x in doses]) if doses.size else doses
        return doses, volumes

    def differential(self, bin_gy: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Differential DVH for display: ``(bin_centre_gy, volume_cc per bin)``, bins of
        ``bin_gy`` from 0 Gy."""
        if bin_gy <= 0:
            raise ValueError("bin width must be > 0 Gy")
        top = self.doses_gy[0] if self.doses_gy.size else 0.0
        edges = np.arange(0.0, top + 2 * bin_gy, bin_gy)
        hist, _ = np.histogram(self.doses_gy, bins=edges, weights=self.volumes_cc)
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
