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
  volume exceeds the known part raises :class:`MetricUndefined`, and so do the metrics that the
  unknown part could lower under that very assumption: Min and the cold-end doses DC (the
  coldest volume may lie outside the grid). The median is D50% of the whole structure; the mean
  and CV are those of the known part (an upper and a lower bound under the assumption).
* ``beyond_grid_max_gy``, where known, bounds the dose of the unknown part from above (the dose
  on the faces of the dose grid the structure crosses, see :mod:`rtqa.dvh.beyond_grid`).
  :meth:`Dvh.completed` gives the whole structure's distribution with the unknown part at one
  dose: every metric grows (CV shrinks) with that dose, so its values with the unknown part at
  0 Gy and at the bound enclose the structure's value.

How the curve is evaluated
--------------------------
``V`` is a sum over *keys*: each point mass contributes its volume to every ``x <= d_i``; each
spread sample contributes ``r_i (u_i - x)^+ - r_i (l_i - x)^+`` with ``r_i = v_i / w_i`` and
``l_i, u_i = d_i -/+ w_i / 2``. With all keys sorted, three suffix sums (point-mass volume, signed
rate, signed rate * key) give ``V(x)`` from one binary search, and ``D(v)`` from one binary
search over ``V`` at the keys followed by solving the linear piece it lands in
(:class:`_Curve`). Distributions of more than :data:`SORT_LIMIT` samples are not sorted: per-bucket
sums of the same three quantities give ``V`` above any bucket, and the one bucket a query lands
in is sorted on its own (:class:`_BucketCurve`). Both are exact up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

#: Relative tolerance on dose comparisons (floating-point noise of interpolation, not rounding).
DOSE_RTOL = 1e-9
#: Spreads narrower than this fraction of the largest dose are treated as none (point masses).
MIN_SPREAD_REL = 1e-7
#: Absolute tolerance (cc) when a requested volume is compared with the structure volume.
VOLUME_ATOL_CC = 1e-9
#: Distributions with more samples than this are not sorted for single metrics (see
#: :class:`_BucketCurve`: one O(n) pass, then O(n) per query, beats an O(n log n) sort from
#: about 10^4 samples on).
SORT_LIMIT = 20_000
#: Curves (many doses at once, e.g. :meth:`Dvh.cumulative`) of distributions up to this many
#: samples sort them (kept for every later query); larger ones stream over the samples.
SORTED_CURVE_LIMIT = 4_000_000
#: Buckets of :class:`_BucketCurve` (their sums stay in the first-level cache).
BUCKETS = 4096
#: Samples per block in the streaming passes over large distributions (blocks stay in cache).
BLOCK = 1 << 16
#: Query points above which :meth:`_BucketCurve.at_least_many` streams over all samples once
#: instead of sorting the bucket of each point.
STREAM_POINTS = 8
#: Most points a display curve may have (a wider bin is asked for beyond it).
MAX_CURVE_POINTS = 10_000_000
#: Points of a display curve at most, with :func:`display_bin_gy`.
DISPLAY_POINTS = 20_000


class MetricUndefined(ValueError):
    """A metric cannot be evaluated for this structure (e.g. D1500cc of a 1000 cc organ)."""


class Dvh:
    """Exact weighted dose distribution of one structure (no binning).

    ``doses_gy`` are per-sample doses sorted descending and ``volumes_cc`` their volumes (cc) in
    the same order (``spreads_gy``: the per-sample full width of the dose spread, Gy, or None);
    build one with :meth:`from_samples`. See the module docstring for the interpolation
    convention and the meaning of ``unknown_volume_cc``.

    The metrics do not need the samples in order: :meth:`from_samples` keeps them as given and
    the sorted arrays are only made when ``doses_gy``, ``volumes_cc`` or ``spreads_gy`` is read.
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
        #: Upper bound (Gy) of the unknown part's dose, where known (else None).
        self.beyond_grid_max_gy: float | None = None

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
        v_sum = float(np.sum(v)) if v.size else 0.0
        v_min = float(v.min()) if v.size else 1.0
        if not np.isfinite(v_sum) or v_min < 0:
            raise ValueError("sample volumes must be finite and non-negative")
        if not np.isfinite(unknown_volume_cc) or unknown_volume_cc < 0:
            raise ValueError(f"unknown volume must be >= 0 cc, got {unknown_volume_cc}")
        if v_min <= 0:
            keep = v > 0
            d, v = d[keep], v[keep]
            w = None if w is None else w[keep]
        dvh = cls(d, v, float(unknown_volume_cc), w, is_sorted=d.size < 2)
        if v_min > 0:
            dvh._known = v_sum  # the sum known_volume_cc would take
        return dvh

    def completed(self, dose_gy: float) -> Dvh:
        """The whole structure's distribution with its unknown volume at ``dose_gy`` (Gy, a point
        mass): nothing unknown is left. The unknown part's dose lies between 0 Gy and
        ``beyond_grid_max_gy``; evaluated at both ends, a metric encloses its value (kept: one
        per dose)."""
        cache = self.__dict__.setdefault("_completions", {})
        key = float(dose_gy)
        if key not in cache:
            w = None if self._w is None else np.append(self._w, 0.0)
            cache[key] = Dvh(
                np.append(self._d, key),
                np.append(self._v, self.unknown_volume_cc),
                0.0,
                w,
                is_sorted=False,
            )
        return cache[key]

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
    def _point_limit(self) -> float:
        """Spreads (Gy) at or below this make a sample a point mass."""
        cached = self.__dict__.get("_limit")
        if cached is None:
            d = self._d
            scale = max(float(d.max()), -float(d.min()), 1.0) if d.size else 1.0
            cached = self._limit = MIN_SPREAD_REL * scale
        return cached

    @property
    def _extent(self) -> tuple[float, float]:
        """(lowest, highest) dose (Gy) of the known part: the outer ends of the spreads."""
        cached = self.__dict__.get("_extent_cache")
        if cached is None:
            cached = _extent(self._d, self._w, self._point_limit)
            self._extent_cache = cached
        return cached

    @property
    def _curve(self) -> _Curve | _BucketCurve:
        """The exact ``V(x)``: bucketed above :data:`SORT_LIMIT` samples unless sorted already."""
        cached = self.__dict__.get("_curve_cache")
        if cached is None:
            if self._d.size > SORT_LIMIT:
                cached = _BucketCurve(self._d, self._v, self._w, self._point_limit, self._extent)
                self._curve_cache = cached
            else:
                cached = self._sorted_curve()
        return cached

    def _sorted_curve(self) -> _Curve:
        """The sorted form of ``V(x)``, which then serves every query."""
        cached = self.__dict__.get("_curve_cache")
        if not isinstance(cached, _Curve):
            cached = _Curve.from_samples(self._d, self._v, self._w, self._point_limit)
            self._curve_cache = cached
        return cached

    def _require_samples(self) -> None:
        if self._v.size == 0:
            raise MetricUndefined("the structure has no volume with a known dose")

    # ---------------------------------------------------------------- summary doses

    @property
    def min_gy(self) -> float:
        """Minimum dose (Gy): the lowest end of the sample spreads. MetricUndefined when part of
        the structure lies outside the dose grid (its dose, perhaps lower, is unknown)."""
        self._require_samples()
        self._require_known("Min")
        return self._extent[0]

    def _require_known(self, what: str) -> None:
        """MetricUndefined for a cold-end metric ``what`` of a structure partly outside the grid."""
        if self.unknown_volume_cc > VOLUME_ATOL_CC:
            raise MetricUndefined(
                f"{what} reaches into the {self.unknown_volume_cc:.4g} cc of the structure "
                "outside the dose grid (dose unknown, perhaps lower)"
            )

    @property
    def max_gy(self) -> float:
        """Maximum dose (Gy) over the known part: the highest end of the sample spreads (a
        point dose; see D0.03cc for a volume-based maximum)."""
        self._require_samples()
        return self._extent[1]

    @property
    def mean_gy(self) -> float:
        """Volume-weighted mean dose (Gy) over the known part."""
        self._require_samples()
        return weighted_sum(self._d, self._v) / self.known_volume_cc

    @property
    def median_gy(self) -> float:
        """Median dose (Gy): D50% of the whole structure (MetricUndefined where that half
        reaches outside the dose grid)."""
        return self.dose_at_volume_pct(50.0)

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
        """The largest dose ``x`` with ``V(x) >= v_cc`` (less a relative 1e-12 of ``v_cc``, so
        that a volume reached exactly at a step or a breakpoint is read there), within
        [lowest, highest]."""
        lowest, highest = self._extent
        if v_cc <= 0:
            return highest
        x = self._curve.dose_at(v_cc * (1 - 1e-12))
        return float(min(max(x, lowest), highest))

    def dose_at_volume_pct(self, pct: float) -> float:
        """D{pct}% (Gy): the minimum dose to the hottest ``pct`` % of the whole structure."""
        pct = float(pct)
        if not np.isfinite(pct) or pct < 0 or pct > 100:
            raise MetricUndefined(f"D{pct:g}%: a percentage must lie in [0, 100]")
        return self.dose_at_volume_cc(pct / 100.0 * self.total_volume_cc)

    def cold_dose_at_volume_cc(self, v_cc: float) -> float:
        """DC{v}cc (Gy): the highest dose received by the coldest ``v_cc`` cc. MetricUndefined
        when part of the structure lies outside the dose grid (the coldest cc may lie there)."""
        v_cc = float(v_cc)
        self._require_samples()
        self._require_known(f"DC{v_cc:g}cc")
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
        return float(self._volumes_at(np.array([d_gy]))[0])

    def _volumes_at(self, doses: np.ndarray) -> np.ndarray:
        """V (cc) at each of ``doses`` (Gy, finite): the volume receiving at least the dose, up
        to floating-point noise — a plateau (or point masses) lying just below a dose counts; a
        continuous slope is read at the dose itself."""
        if self._v.size == 0:
            return np.zeros(doses.size)
        both = np.concatenate((doses, doses - DOSE_RTOL * np.maximum(np.abs(doses), 1.0)))
        curve = self._curve
        if doses.size > STREAM_POINTS and self._d.size <= SORTED_CURVE_LIMIT:
            curve = self._sorted_curve()
        values = curve.at_least_many(both)
        exact, noisy = values[: doses.size], values[doses.size :]
        known = self.known_volume_cc
        value = np.where(noisy - exact > 1e-6 * known, noisy, exact)
        return np.minimum(np.maximum(value, 0.0), known)

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
        to the first step at or beyond the maximum; volume receiving at least each dose (each
        value is that of :meth:`volume_at_dose_cc`)."""
        if bin_gy <= 0:
            raise ValueError("bin width must be > 0 Gy")
        top = float(self._d.max()) if self._d.size else 0.0
        _check_points(top, bin_gy)
        doses = np.arange(0.0, top + bin_gy, bin_gy)
        return doses, self._volumes_at(doses)

    def differential(self, bin_gy: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Differential DVH for display: ``(bin_centre_gy, volume_cc per bin)``, bins of
        ``bin_gy`` from 0 Gy."""
        if bin_gy <= 0:
            raise ValueError("bin width must be > 0 Gy")
        top = float(self._d.max()) if self._d.size else 0.0
        _check_points(top, bin_gy)
        edges = np.arange(0.0, top + 2 * bin_gy, bin_gy)
        hist, _ = np.histogram(self._d, bins=edges, weights=self._v)
        return 0.5 * (edges[:-1] + edges[1:]), hist


# -------------------------------------------------------------------- shared pieces


def display_bin_gy(dvh: Dvh, bin_gy: float) -> float:
    """``bin_gy`` (Gy), widened so that a display curve of ``dvh`` has at most DISPLAY_POINTS
    points (a dose grid scaled by mistake to 1e12 Gy must not ask for 1e13 bins)."""
    if dvh.known_volume_cc <= 0:
        return bin_gy
    return max(bin_gy, dvh.max_gy / DISPLAY_POINTS)


def _check_points(top_gy: float, bin_gy: float) -> None:
    """ValueError when bins of ``bin_gy`` up to ``top_gy`` (Gy) exceed MAX_CURVE_POINTS."""
    if top_gy / bin_gy > MAX_CURVE_POINTS:
        raise ValueError(
            f"bins of {bin_gy:g} Gy up to the maximum {top_gy:.6g} Gy would give more than "
            f"{MAX_CURVE_POINTS} points: choose a wider bin"
        )


def _blocks(n: int) -> Iterator[slice]:
    """Consecutive slices of at most :data:`BLOCK` samples covering ``range(n)``."""
    for start in range(0, n, BLOCK):
        yield slice(start, min(start + BLOCK, n))


def weighted_sum(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` of two 1-D float arrays, block by block with numpy's pairwise sum.

    Not ``np.dot``: BLAS may split a long dot product over threads, and where other processes
    keep the cores busy (batch workers, parallel pipelines) waiting for those threads costs
    milliseconds per call, more than the sum itself."""
    if a.size <= BLOCK:
        return float(np.multiply(a, b).sum())
    tmp = np.empty(BLOCK)
    total = 0.0
    for block in _blocks(a.size):
        part = tmp[: block.stop - block.start]
        np.multiply(a[block], b[block], out=part)
        total += float(part.sum())
    return total


def _rates(v: np.ndarray, w: np.ndarray, point: np.ndarray | None) -> np.ndarray:
    """``v / w`` (cc/Gy), 0 for point masses."""
    if point is None:
        return v / w
    rate = np.zeros(v.size)
    np.divide(v, w, out=rate, where=~point)
    return rate


def _extent(d: np.ndarray, w: np.ndarray | None, limit: float) -> tuple[float, float]:
    """(lowest, highest) key: the outer ends of the spreads, the doses of point masses."""
    if d.size == 0:
        return 0.0, 0.0
    if w is None:
        return float(d.min()), float(d.max())
    lowest, highest = np.inf, -np.inf
    for block in _blocks(d.size):
        dc, wc = d[block], w[block]
        half = wc * 0.5
        low, high = dc - half, dc + half
        point = wc <= limit
        if point.any():
            low[point] = dc[point]
            high[point] = dc[point]
        lowest, highest = min(lowest, float(low.min())), max(highest, float(high.max()))
    return lowest, highest


def _keys(
    d: np.ndarray,
    v: np.ndarray,
    w: np.ndarray | None,
    limit: float,
    lower: bool = True,
    upper: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The keys of samples ``d, v, w`` as one unsorted set ``(keys, point-mass volumes or None,
    signed rates or None)``: where asked, the lower ends ``d - 0.5 w`` (rate ``-v / w``) and
    then the upper ends ``d + 0.5 w`` (rate ``v / w``); a point mass (spread at or below
    ``limit``) has its dose as both keys, rate 0 and its volume on the upper key. The keys are
    the same floats whichever curve builds them."""
    if w is None:
        return d, v, None
    n = d.size
    point = w <= limit
    if not point.any():
        point = None
    half = w * 0.5
    rate = _rates(v, w, point)
    keys = np.empty(n * (lower + upper))
    rates = np.empty(keys.size)
    start = 0
    if lower:
        np.subtract(d, half, out=keys[:n])
        np.negative(rate, out=rates[:n])
        start = n
    if upper:
        np.add(d, half, out=keys[start:])
        rates[start:] = rate
    masses = None
    if point is not None:
        if lower:
            keys[:n][point] = d[point]
        if upper:
            keys[start:][point] = d[point]
            masses = np.zeros(keys.size)
            masses[start:][point] = v[point]
    return keys, masses, rates


def _suffix(values: np.ndarray | None, base: float, size: int) -> np.ndarray:
    """``out[i] = base + sum(values[i:])`` for ``i`` in ``0..size`` (``out[size] = base``),
    summed from the end; all ``base`` when ``values`` is None."""
    out = np.empty(size + 1)
    if values is None:
        out.fill(base)
        return out
    out[0] = base
    out[1:] = values[::-1]
    np.cumsum(out, out=out)
    return out[::-1]


class _Curve:
    """``V(x)``, the volume receiving at least ``x``: keys sorted ascending with three suffix
    sums, so that for ``x`` in ``(k[i-1], k[i]]`` (the keys at or above ``x`` are ``k[i:]``)
    ``V(x) = c[i] + rk[i] - x r[i]``: ``c`` point-mass volume (cc), ``r`` signed rate (cc/Gy),
    ``rk`` signed rate * key (cc). ``base`` adds keys above all of these (a bucket's
    surroundings, see :class:`_BucketCurve`) through their sums. One evaluation costs
    O(log n); so does one inversion once ``V`` at the keys is known."""

    def __init__(
        self,
        keys: np.ndarray,
        masses: np.ndarray | None,
        rates: np.ndarray | None,
        base: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ):
        # the order of equal keys does not matter: they are on the same side of every x, and a
        # spread end equal to x contributes rate * 0
        order = np.argsort(keys)
        k = self.k = keys[order]
        m = k.size
        self.c = _suffix(None if masses is None else masses[order], base[0], m)
        r = None if rates is None else rates[order]
        del order
        self.r = _suffix(r, base[1], m)
        self.rk = _suffix(None if r is None else r * k, base[2], m)
        self._neg_at_keys: np.ndarray | None = None

    @classmethod
    def from_samples(cls, d: np.ndarray, v: np.ndarray, w: np.ndarray | None, limit: float):
        """The curve of all samples (spreads at or below ``limit`` Gy are point masses)."""
        return cls(*_keys(d, v, w, limit, lower=True, upper=True))

    def at_least(self, x: float) -> float:
        """Volume (cc) with dose >= x."""
        return float(self.at_least_many(np.array([x], dtype=float))[0])

    def at_least_many(self, xs: np.ndarray) -> np.ndarray:
        """Volumes (cc) with dose >= each of ``xs``."""
        i = np.searchsorted(self.k, xs, side="left")
        return self.c[i] + (self.rk[i] - xs * self.r[i])

    def dose_at(self, target: float) -> float:
        """The largest ``x`` with ``V(x) >= target``; -inf or inf when ``V`` (extended as a line
        beyond the keys) never or always reaches it."""
        k, c, r, rk = self.k, self.c, self.r, self.rk
        m = k.size
        if self._neg_at_keys is None:
            # -V(k[i]) for the first of equal keys, a value between V(k[i]+) and V(k[i]) for
            # the others: non-decreasing in i
            self._neg_at_keys = -(c[:m] + (rk[:m] - k * r[:m]))
        # keys k[:j] have V >= target, k[j:] not: the answer lies in [k[j-1], k[j])
        j = int(np.searchsorted(self._neg_at_keys, -target, side="right"))
        level, slope = float(c[j] + rk[j]), float(r[j])  # V(x) = level - slope x there
        # (flat: all of the interval or none of it)
        flat = np.inf if level >= target else -np.inf
        x = (level - target) / slope if slope > 0 else flat
        if j < m:
            x = min(x, float(np.nextafter(k[j], -np.inf)))
        if j > 0:
            x = max(x, float(k[j - 1]))
        return x


class _BucketCurve:
    """The same ``V(x)`` as :class:`_Curve` without sorting all keys: keys are grouped in
    :data:`BUCKETS` equal dose buckets, each holding the sums of point-mass volume, signed rate
    and signed rate * key, computed block by block in one pass. Bucket ids are a monotone
    function of the key (``floor((key - lowest) * inv)``, the same floating-point operations for
    keys and query doses), so every key in a higher bucket than ``x`` is above ``x`` and every
    key in a lower one below: ``V(x)`` is the sums of the buckets above (a line in ``x``) plus
    the keys of ``x``'s own bucket, which are gathered and sorted into a small :class:`_Curve`
    on demand. Exact like :class:`_Curve`; O(n) to build, O(n) scan of 2-byte bucket ids plus
    O(bucket) per new bucket queried."""

    def __init__(
        self,
        d: np.ndarray,
        v: np.ndarray,
        w: np.ndarray | None,
        limit: float,
        extent: tuple[float, float],
    ):
        self.d, self.v, self.w, self.limit = d, v, w, limit
        lowest, highest = extent
        n, nb = d.size, BUCKETS
        self.nb = nb
        self.lowest = lowest
        # (a hair under nb / range, so that every key in [lowest, highest] maps below nb)
        self.inv = nb / (highest - lowest) * (1 - 1e-12) if highest > lowest else 0.0
        # bucket id of each sample's upper key (or point mass) and lower key (nb: none)
        self.up = np.empty(n, np.uint16)
        self.low = None if w is None else np.empty(n, np.uint16)
        sums = np.zeros((5, nb + 1))  # point mass; rate, rate*key of upper ends; of lower ends
        points_anywhere = w is None or bool(w.min() <= limit)
        half, rate, key, tmp = (np.empty(min(n, BLOCK)) for _ in range(4))
        for block in _blocks(n):
            m = block.stop - block.start
            dc, vc, up = d[block], v[block], self.up[block]
            if w is None:
                self._key_ids(dc, up, tmp[:m])
                sums[0] += np.bincount(up, vc, nb + 1)
                continue
            wc = w[block]
            point = wc <= limit if points_anywhere else None
            if point is not None and not point.any():
                point = None
            h = np.multiply(wc, 0.5, out=half[:m])
            r = np.divide(vc, wc, out=rate[:m]) if point is None else _rates(vc, wc, point)
            k = np.add(dc, h, out=key[:m])
            if point is not None:
                k[point] = dc[point]
            self._key_ids(k, up, tmp[:m])
            if point is not None:
                sums[0] += np.bincount(up[point], vc[point], nb + 1)
            sums[1] += np.bincount(up, r, nb + 1)
            sums[2] += np.bincount(up, np.multiply(r, k, out=tmp[:m]), nb + 1)
            low = self.low[block]
            np.subtract(dc, h, out=k)
            self._key_ids(k, low, tmp[:m])
            if point is not None:
                low[point] = nb
            sums[3] += np.bincount(low, r, nb + 1)
            sums[4] += np.bincount(low, np.multiply(r, k, out=tmp[:m]), nb + 1)
        # suffix sums over buckets: [b] = buckets b and above, [nb] = none
        self.c = _suffix(sums[0, :nb], 0.0, nb)
        self.r = _suffix(sums[1, :nb] - sums[3, :nb], 0.0, nb)
        self.rk = _suffix(sums[2, :nb] - sums[4, :nb], 0.0, nb)
        self._buckets: dict[int, _Curve] = {}

    def _key_ids(self, keys: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        """Bucket ids of keys in [lowest, highest] into ``out`` (uint16; ``tmp``: scratch of the
        same size): ``floor((key - lowest) * inv)``, the function :meth:`_ids` clips."""
        np.subtract(keys, self.lowest, out=tmp)
        tmp *= self.inv
        np.copyto(out, tmp, casting="unsafe")

    def _ids(self, xs: np.ndarray) -> np.ndarray:
        """Bucket id (intp) of each dose: monotone in the dose, and that of :meth:`_key_ids`
        for doses in [lowest, highest] (clipping changes nothing there)."""
        t = np.subtract(xs, self.lowest)
        t *= self.inv
        np.clip(t, 0, self.nb - 1, out=t)
        return t.astype(np.intp)

    def _bucket_of(self, x: float) -> int:
        if x == np.inf:
            return self.nb - 1
        if x == -np.inf:
            return 0
        return int(self._ids(np.array([x], dtype=float))[0])

    def _bucket(self, b: int) -> _Curve:
        """The exact curve for doses in bucket ``b``: its keys, plus the sums of the buckets
        above as a base."""
        curve = self._buckets.get(b)
        if curve is None:
            d, v, w = self.d, self.v, self.w
            sel = np.flatnonzero(self.up == b)
            keys, masses, rates = _keys(
                d[sel], v[sel], None if w is None else w[sel], self.limit, lower=False, upper=True
            )
            if self.low is not None:
                sel = np.flatnonzero(self.low == b)
                lk, _, lr = _keys(d[sel], v[sel], w[sel], self.limit, lower=True, upper=False)
                nu = keys.size
                keys = np.concatenate((keys, lk))
                rates = np.concatenate((np.zeros(nu) if rates is None else rates, lr))
                if masses is not None:
                    masses = np.concatenate((masses, np.zeros(lk.size)))
            base = (float(self.c[b + 1]), float(self.r[b + 1]), float(self.rk[b + 1]))
            curve = _Curve(keys, masses, rates, base)
            if len(self._buckets) >= 64:
                self._buckets.clear()
            self._buckets[b] = curve
        return curve

    def at_least(self, x: float) -> float:
        """Volume (cc) with dose >= x."""
        return self._bucket(self._bucket_of(x)).at_least(x)

    def at_least_many(self, xs: np.ndarray) -> np.ndarray:
        """Volumes (cc) with dose >= each of ``xs``."""
        ids = self._ids(xs)
        buckets = np.unique(ids)
        if buckets.size > STREAM_POINTS:
            return self._stream(xs)
        out = np.empty(xs.size)
        for b in buckets:
            at = ids == b
            out[at] = self._bucket(int(b)).at_least_many(xs[at])
        return out

    def _stream(self, xs: np.ndarray) -> np.ndarray:
        """``V`` at many doses in one pass over the samples: sums of each key's terms binned by
        the query doses below it."""
        points, where = np.unique(xs, return_inverse=True)
        q = points.size
        sums = np.zeros((3, q + 1))  # point mass, signed rate, signed rate * key
        d, v, w = self.d, self.v, self.w
        for block in _blocks(d.size):
            keys, masses, rates = _keys(
                d[block], v[block], None if w is None else w[block], self.limit, True, True
            )
            if masses is not None or rates is None:
                # a point mass counts for every x <= its dose
                j = np.searchsorted(points, keys, side="right")
                sums[0] += np.bincount(j, v[block] if masses is None else masses, q + 1)
            if rates is not None:
                # a spread end counts for every x below it (at it, its term is 0)
                j = np.searchsorted(points, keys, side="left")
                sums[1] += np.bincount(j, rates, q + 1)
                sums[2] += np.bincount(j, rates * keys, q + 1)
        c = _suffix(sums[0, 1:], 0.0, q)[:q]
        r = _suffix(sums[1, 1:], 0.0, q)[:q]
        rk = _suffix(sums[2, 1:], 0.0, q)[:q]
        return (c + (rk - points * r))[where]

    def dose_at(self, target: float) -> float:
        """The largest dose x with V(x) >= target (> 0)."""
        # V at the nominal bucket starts picks the bucket (up to keys within rounding of an
        # edge); the bucket's exact curve is then inverted, moving to a neighbour when its
        # answer lies outside the bucket (then so does the true one)
        nb = self.nb
        edges = self.lowest + np.arange(nb) / self.inv if self.inv else np.zeros(nb)
        reach = self.c[:nb] + (self.rk[:nb] - edges * self.r[:nb])
        ok = np.flatnonzero(reach >= target)
        return self._dose_from(int(ok[-1]) if ok.size else 0, target)

    def _dose_from(self, b: int, target: float) -> float:
        """:meth:`dose_at` searching from bucket ``b`` (any bucket: it moves towards the one
        holding the answer, each bucket's exact curve telling which way to go)."""
        direction = 0
        for _ in range(self.nb):
            x = self._bucket(b).dose_at(target)
            found = self._bucket_of(x)
            if found == b:
                return x
            step = 1 if found > b else -1
            if direction == -step:  # rounding noise on a bucket boundary
                return x
            direction = step
            b += step
        return x
