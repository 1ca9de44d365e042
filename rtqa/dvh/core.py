"""The exact dose-volume distribution of one structure: :class:`Dvh`.

Conventions
-----------
* Doses in Gy, volumes in cc. A DVH is built from weighted samples (one dose and one volume per
  sample: the sub-voxels of a structure's occupancy), never from a histogram.
* The samples are sorted by dose, hottest first, and their volumes cumulated. The cumulative
  curve is taken as **piecewise linear through the sample mid-volumes**: sample ``i`` with dose
  ``d_i`` and volume ``v_i`` sits at cumulative volume ``m_i = c_i - v_i / 2`` where ``c_i`` is
  the volume of samples ``0..i``. ``D(v)`` (the minimum dose to the hottest ``v`` cc) is the
  linear interpolation of ``d`` against ``m`` (constant ``d_0`` before ``m_0`` and ``d_last``
  after the last mid-volume); ``V(d)`` (the volume receiving at least ``d``) is its inverse, taken
  as the largest volume at which the curve still reads ``>= d``. When the samples come from an
  ever finer sampling of a continuous dose field, both converge to the exact continuous values
  (the midpoint rule), with no binning error.
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

    @classmethod
    def from_samples(
        cls, doses_gy: ArrayLike, volumes_cc: ArrayLike, unknown_volume_cc: float = 0.0
    ) -> Dvh:
        """Sort the samples by dose (hottest first), dropping zero-volume samples.

        ValueError on mismatched lengths, non-finite doses or negative volumes.
        """
        d = np.asarray(doses_gy, dtype=float).ravel()
        v = np.asarray(volumes_cc, dtype=float).ravel()
        if d.shape != v.shape:
            raise ValueError(f"{d.size} doses but {v.size} volumes")
        if not np.all(np.isfinite(d)):
            raise ValueError("sample doses must be finite")
        if np.any(v < 0) or not np.all(np.isfinite(v)):
            raise ValueError("sample volumes must be finite and non-negative")
        if not np.isfinite(unknown_volume_cc) or unknown_volume_cc < 0:
            raise ValueError(f"unknown volume must be >= 0 cc, got {unknown_volume_cc}")
        keep = v > 0
        d, v = d[keep], v[keep]
        order = np.argsort(-d, kind="stable")
        return cls(d[order], v[order], float(unknown_volume_cc))

    # ---------------------------------------------------------------- volumes

    @property
    def known_volume_cc(self) -> float:
        """Volume (cc) whose dose is known."""
        return float(self._cumulative[-1]) if self.volumes_cc.size else 0.0

    @property
    def total_volume_cc(self) -> float:
        """Known + unknown volume (cc): the denominator of every % metric."""
        return self.known_volume_cc + self.unknown_volume_cc

    @property
    def _cumulative(self) -> np.ndarray:
        cached = self.__dict__.get("_cum")
        if cached is None:
            cached = np.cumsum(self.volumes_cc)
            object.__setattr__(self, "_cum", cached)
        return cached

    @property
    def _mid(self) -> np.ndarray:
        cached = self.__dict__.get("_mid_cache")
        if cached is None:
            cached = self._cumulative - 0.5 * self.volumes_cc
            object.__setattr__(self, "_mid_cache", cached)
        return cached

    def _require_samples(self) -> None:
        if self.volumes_cc.size == 0:
            raise MetricUndefined("the structure has no volume with a known dose")

    # ---------------------------------------------------------------- summary doses

    @property
    def min_gy(self) -> float:
        """Minimum sample dose (Gy) over the known part."""
        self._require_samples()
        return float(self.doses_gy[-1])

    @property
    def max_gy(self) -> float:
        """Maximum sample dose (Gy) over the known part (a point dose: see D0.03cc)."""
        self._require_samples()
        return float(self.doses_gy[0])

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
        return float(np.interp(v_cc, self._mid, self.doses_gy))

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
        return float(np.interp(max(known - v_cc, 0.0), self._mid, self.doses_gy))

    # ---------------------------------------------------------------- volume at dose

    def volume_at_dose_cc(self, d_gy: float) -> float:
        """V{d}Gy (cc): the volume receiving at least ``d_gy`` (known part)."""
        d_gy = float(d_gy)
        if not np.isfinite(d_gy):
            raise ValueError(f"dose must be finite, got {d_gy}")
        if self.volumes_cc.size == 0:
            return 0.0
        d = self.doses_gy
        threshold = d_gy - DOSE_RTOL * max(abs(d_gy), 1.0)
        # number of samples at or above the dose (d is descending)
        count = int(np.searchsorted(-d, -threshold, side="right"))
        if count == 0:
            return 0.0
        if count == d.size:
            return self.known_volume_cc
        i = count - 1
        m = self._mid
        hi, lo = d[i], d[i + 1]
        frac = 0.0 if hi <= lo else min(max((hi - d_gy) / (hi - lo), 0.0), 1.0)
        return float(m[i] + frac * (m[i + 1] - m[i]))

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
