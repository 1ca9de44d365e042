"""Exact DVH of a contour stack in a linear dose, without a voxel grid.

The object a stack of axial contours defines (the slab convention): the polygon on plane ``z_i``
extends from halfway to the plane below to halfway to the plane above; the first and last planes
extend by an end cap beyond themselves (by default half the spacing to their neighbour).
Inner rings on one plane are holes (even-odd rule).

In a dose ``D(p) = offset + gradient * p[axis]`` the cumulative volume ``V(d)`` (volume receiving
at least ``d``) then follows in closed form:

* gradient along z (the slab axis): each slab has a uniform cross-section, so ``V(d)`` is the sum
  of ``area * length of the slab above d`` (piecewise linear in ``d``);
* gradient along x or y (in the plane): ``V(d)`` is the sum of ``thickness * area of the polygon
  clipped to the half-plane above d`` (shapely clipping);
* any other direction (:class:`ObliqueDvh`): the clipping half-plane moves linearly with z
  through each slab, and the clipped area is a quadratic in z between the heights where its
  edge passes a vertex, integrated exactly piece by piece (Simpson's rule).

Mean dose is exact too (a linear dose averages to its value at the centroid). ``D{v}`` metrics
invert the monotone ``V(d)`` by bisection to far below 1e-6 Gy.

Units: mm, Gy, cc (1 cc = 1000 mm^3). Coordinates are DICOM patient coordinates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

AXES = "xyz"


@dataclass(frozen=True)
class LinearDose:
    """``D(p) = offset_gy + gradient_gy_per_mm * p[axis]``, checked to hold on ``valid_mm``."""

    axis: int  # 0 = x, 1 = y, 2 = z
    offset_gy: float
    gradient_gy_per_mm: float
    valid_mm: tuple[float, float] = (-np.inf, np.inf)

    def at(self, coord_mm: float | np.ndarray) -> float | np.ndarray:
        return self.offset_gy + self.gradient_gy_per_mm * coord_mm

    def coord_of(self, dose_gy: float) -> float:
        """The coordinate along ``axis`` where the dose equals ``dose_gy``."""
        return (dose_gy - self.offset_gy) / self.gradient_gy_per_mm


@dataclass(frozen=True)
class Slab:
    """One contour plane's cross-section ``shape`` (x, y in mm) extended over ``[z_lo, z_hi]``."""

    z_mm: float
    z_lo: float
    z_hi: float
    shape: BaseGeometry

    @property
    def thickness_mm(self) -> float:
        return self.z_hi - self.z_lo


def even_odd(rings: Iterable[np.ndarray]) -> BaseGeometry:
    """The region covered by an odd number of rings ((N, 2) arrays of x, y in mm)."""
    region: BaseGeometry = Polygon()
    for ring in rings:
        poly = shapely.make_valid(Polygon(np.asarray(ring, dtype=float)[:, :2]))
        region = shapely.symmetric_difference(region, poly)
    return region


def slab_stack(
    planes: Sequence[tuple[float, BaseGeometry]], end_cap_mm: float | None = None
) -> list[Slab]:
    """Slabs of the planes ``(z_mm, cross-section)``: each reaches halfway to its neighbours.

    ``end_cap_mm`` is how far the first and last planes reach beyond themselves; ``None`` means
    half the spacing to their neighbouring plane (0 for a lone plane needs an explicit value).
    """
    ordered = sorted(planes, key=lambda p: p[0])
    zs = [z for z, _ in ordered]
    if len(set(zs)) != len(zs):
        raise ValueError("two planes share one z; merge them first")
    if not ordered:
        return []
    if len(ordered) == 1 and end_cap_mm is None:
        raise ValueError("a single plane needs an explicit end_cap_mm")
    slabs = []
    for i, (z, shape) in enumerate(ordered):
        lo = (zs[i - 1] + z) / 2 if i > 0 else None
        hi = (zs[i + 1] + z) / 2 if i + 1 < len(zs) else None
        if lo is None:
            lo = z - (end_cap_mm if end_cap_mm is not None else (hi - z))  # type: ignore[operator]
        if hi is None:
            hi = z + (end_cap_mm if end_cap_mm is not None else (z - lo))
        slabs.append(Slab(z, lo, hi, shape))
    return slabs


class ExactDvh:
    """The exact dose-volume distribution of ``slabs`` in the linear ``dose``."""

    def __init__(self, slabs: Sequence[Slab], dose: LinearDose):
        self.slabs = [s for s in slabs if s.shape.area > 0 and s.thickness_mm > 0]
        if not self.slabs:
            raise ValueError("the structure has no volume")
        if dose.gradient_gy_per_mm == 0:
            raise ValueError("the dose has no gradient")
        self.dose = dose
        self._shapes = np.array([s.shape for s in self.slabs], dtype=object)
        self._areas = shapely.area(self._shapes)
        self._lo = np.array([s.z_lo for s in self.slabs])
        self._hi = np.array([s.z_hi for s in self.slabs])
        self._t = self._hi - self._lo
        lo, hi = self._extent_along_axis()
        v0, v1 = dose.valid_mm
        if lo < v0 - 1e-6 or hi > v1 + 1e-6:
            raise ValueError(
                f"structure spans {AXES[dose.axis]} = {lo:g}..{hi:g} mm but the dose is linear"
                f" only on {v0:g}..{v1:g} mm"
            )
        d_a, d_b = float(dose.at(lo)), float(dose.at(hi))
        self.min_gy, self.max_gy = min(d_a, d_b), max(d_a, d_b)

    def _extent_along_axis(self) -> tuple[float, float]:
        if self.dose.axis == 2:
            return float(self._lo.min()), float(self._hi.max())
        bounds = shapely.bounds(self._shapes)  # minx, miny, maxx, maxy
        a = self.dose.axis
        return float(bounds[:, a].min()), float(bounds[:, a + 2].max())

    @property
    def total_volume_cc(self) -> float:
        return float(np.sum(self._areas * self._t)) / 1000.0

    @property
    def mean_gy(self) -> float:
        if self.dose.axis == 2:
            mid = (self._lo + self._hi) / 2
        else:
            cent = shapely.centroid(self._shapes)
            mid = shapely.get_x(cent) if self.dose.axis == 0 else shapely.get_y(cent)
        w = self._areas * self._t
        return float(np.sum(w * self.dose.at(mid)) / np.sum(w))

    def volume_at_dose_cc(self, dose_gy: float) -> float:
        """Volume (cc) receiving at least ``dose_gy``."""
        c = self.dose.coord_of(dose_gy)
        up = self.dose.gradient_gy_per_mm > 0  # dose >= d where coord >= c
        if self.dose.axis == 2:
            if up:
                length = np.clip(self._hi - np.maximum(self._lo, c), 0, None)
            else:
                length = np.clip(np.minimum(self._hi, c) - self._lo, 0, None)
            return float(np.sum(self._areas * length)) / 1000.0
        b = shapely.bounds(self._shapes)
        big = 1e6
        if self.dose.axis == 0:
            box = shapely.box(c, -big, big, big) if up else shapely.box(-big, -big, c, big)
        else:
            box = shapely.box(-big, c, big, big) if up else shapely.box(-big, -big, big, c)
        a = self.dose.axis
        lo_c, hi_c = b[:, a], b[:, a + 2]
        full = (lo_c >= c) if up else (hi_c <= c)
        none = (hi_c <= c) if up else (lo_c >= c)
        part = ~(full | none)
        area = np.where(full, self._areas, 0.0)
        if part.any():
            area[part] = shapely.area(shapely.intersection(self._shapes[part], box))
        return float(np.sum(area * self._t)) / 1000.0

    def dose_at_volume_cc(self, volume_cc: float) -> float:
        """D{v}cc: the highest ``d`` with ``V(d) >= volume_cc`` (bisection, exact to ~1e-9 Gy)."""
        total = self.total_volume_cc
        if not 0 <= volume_cc <= total * (1 + 1e-12):
            raise ValueError(f"{volume_cc} cc is outside 0..{total} cc")
        lo, hi = self.min_gy, self.max_gy
        if volume_cc <= 0:
            return hi
        for _ in range(64):
            mid = (lo + hi) / 2
            if self.volume_at_dose_cc(mid) >= volume_cc:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-10:
                break
        return (lo + hi) / 2

    def dose_at_volume_pct(self, pct: float) -> float:
        """D{pct}%: percent of the structure volume."""
        return self.dose_at_volume_cc(pct / 100.0 * self.total_volume_cc)

    def metrics(self) -> dict[str, float]:
        """Volume (cc), min/max/mean and D99/D95/D5/D1 (%) and D0.03cc (Gy)."""
        return {
            "volume_cc": self.total_volume_cc,
            "mean_gy": self.mean_gy,
            "min_gy": self.min_gy,
            "max_gy": self.max_gy,
            "D99": self.dose_at_volume_pct(99),
            "D95": self.dose_at_volume_pct(95),
            "D5": self.dose_at_volume_pct(5),
            "D1": self.dose_at_volume_pct(1),
            "D0.03cc": self.dose_at_volume_cc(0.03),
        }


class ObliqueDvh:
    """The exact dose-volume distribution of ``slabs`` in ``D(p) = offset_gy + g . p`` for any
    gradient ``g`` (Gy/mm, x y z) with an in-plane part. In one slab the region with dose >= d
    at height z is the polygon clipped to the half-plane ``gx x + gy y >= d - offset - gz z``,
    whose offset moves linearly with z; the clipped area is a quadratic in z between the heights
    where the line passes a vertex, so Simpson's rule on each such piece is exact."""

    def __init__(self, slabs: Sequence[Slab], offset_gy: float, gradient_gy_per_mm):
        self.slabs = [s for s in slabs if s.shape.area > 0 and s.thickness_mm > 0]
        if not self.slabs:
            raise ValueError("the structure has no volume")
        self.offset_gy = offset_gy
        self.g = np.asarray(gradient_gy_per_mm, dtype=float)
        if not np.hypot(*self.g[:2]) > 0:
            raise ValueError("the gradient has no in-plane part (use ExactDvh along z)")
        self._vertices = [shapely.get_coordinates(s.shape) for s in self.slabs]
        volumes = [s.shape.area * s.thickness_mm for s in self.slabs]
        self.total_volume_cc = float(sum(volumes)) / 1000.0
        gx, gy, gz = self.g
        centre = [
            gx * s.shape.centroid.x + gy * s.shape.centroid.y + gz * (s.z_lo + s.z_hi) / 2
            for s in self.slabs
        ]
        self.mean_gy = offset_gy + float(np.dot(volumes, centre) / np.sum(volumes))
        ends = [
            offset_gy + v[:, :2] @ self.g[:2] + gz * z
            for s, v in zip(self.slabs, self._vertices, strict=True)
            for z in (s.z_lo, s.z_hi)
        ]
        self.min_gy = float(min(e.min() for e in ends))
        self.max_gy = float(max(e.max() for e in ends))

    def _clipped_area(self, shape: BaseGeometry, t: float) -> float:
        """Area (mm^2) of ``shape`` where ``gx x + gy y >= t``."""
        norm = float(np.hypot(*self.g[:2]))
        u = self.g[:2] / norm
        side = np.array([-u[1], u[0]])
        foot, big = u * (t / norm), 1e6
        half = Polygon(
            [
                foot + side * big,
                foot - side * big,
                foot - side * big + u * big,
                foot + side * big + u * big,
            ]
        )
        return float(shapely.area(shapely.intersection(shape, half)))

    def volume_at_dose_cc(self, dose_gy: float) -> float:
        """Volume (cc) receiving at least ``dose_gy``."""
        gz = self.g[2]
        total = 0.0
        for s, v in zip(self.slabs, self._vertices, strict=True):
            t0 = dose_gy - self.offset_gy
            if gz == 0:
                total += self._clipped_area(s.shape, t0) * s.thickness_mm
                continue
            passes = (t0 - v[:, :2] @ self.g[:2]) / gz  # heights where the line meets a vertex
            z = np.unique(np.clip(np.r_[s.z_lo, s.z_hi, passes], s.z_lo, s.z_hi))
            for a, b in itertools.pairwise(z):
                f = [self._clipped_area(s.shape, t0 - gz * w) for w in (a, (a + b) / 2, b)]
                total += (b - a) / 6 * (f[0] + 4 * f[1] + f[2])
        return total / 1000.0

    def dose_at_volume_cc(self, volume_cc: float) -> float:
        """D{v}cc: the highest ``d`` with ``V(d) >= volume_cc`` (bisection, to ~1e-7 Gy)."""
        lo, hi = self.min_gy, self.max_gy
        while hi - lo > 1e-7:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.volume_at_dose_cc(mid) >= volume_cc else (lo, mid)
        return (lo + hi) / 2

    def dose_at_volume_pct(self, pct: float) -> float:
        return self.dose_at_volume_cc(pct / 100.0 * self.total_volume_cc)


# ------------------------------------------------------------------------------------------
# Reading the inputs straight from DICOM (independently of rtqa's readers)
# ------------------------------------------------------------------------------------------


def read_planes(path: str | Path, roi_number: int) -> list[tuple[float, BaseGeometry]]:
    """The CLOSED_PLANAR contours of ROI ``roi_number`` as ``(z_mm, even-odd region)`` planes."""
    ds = pydicom.dcmread(str(path))
    for item in ds.ROIContourSequence:
        if int(item.ReferencedROINumber) == roi_number:
            break
    else:
        raise ValueError(f"{path}: no ROI Contour item for ROI {roi_number}")
    by_z: dict[float, list[np.ndarray]] = {}
    for contour in getattr(item, "ContourSequence", []):
        if str(contour.ContourGeometricType).upper() != "CLOSED_PLANAR":
            continue
        pts = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        z = round(float(pts[:, 2].mean()), 3)
        if np.ptp(pts[:, 2]) > 1e-3:
            raise ValueError(f"{path}: a contour of ROI {roi_number} is not axial")
        by_z.setdefault(z, []).append(pts[:, :2])
    return [(z, even_odd(rings)) for z, rings in sorted(by_z.items())]


def read_dose_array(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dose_gy[z, y, x], x_mm, y_mm, z_mm)`` of an axial, identity-oriented RT Dose."""
    ds = pydicom.dcmread(str(path))
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    if not np.allclose(iop, [1, 0, 0, 0, 1, 0], atol=1e-6):
        raise ValueError(f"{path}: only ImageOrientationPatient 1\\0\\0\\0\\1\\0 is supported")
    arr = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    if arr.ndim == 2:
        arr = arr[None]
    x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    x = x0 + dx * np.arange(arr.shape[2])
    y = y0 + dy * np.arange(arr.shape[1])
    z = z0 + np.asarray(ds.GridFrameOffsetVector, dtype=float)
    return arr, x, y, z


def fit_linear_dose(
    dose_gy: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray, z_mm: np.ndarray, tol_gy: float = 1e-3
) -> LinearDose:
    """Fit the one-axis linear ramp of a dose array and the coordinate range where it holds.

    The dose must be constant (within ``tol_gy``) across the other two axes; the ramp is fitted on
    the samples strictly between the profile's minimum and maximum (the unclipped part) and the
    valid range is the run of samples that lie on the line within ``tol_gy``.
    """
    coords = (x_mm, y_mm, z_mm)
    spread = [float(np.ptp(dose_gy, axis=2 - a).max()) for a in range(3)]  # variation along a
    axis = int(np.argmax(spread))
    others = [a for a in range(3) if a != axis]
    if max(spread[a] for a in others) > tol_gy:
        raise ValueError(f"the dose varies along more than one axis: {spread}")
    profile = np.moveaxis(dose_gy, 2 - axis, 0).reshape(dose_gy.shape[2 - axis], -1)[:, 0]
    c = coords[axis]
    inner = (profile > profile.min() + tol_gy) & (profile < profile.max() - tol_gy)
    if inner.sum() < 3:
        raise ValueError("too few unclipped samples to fit a linear dose")
    g, off = np.polyfit(c[inner], profile[inner], 1)
    on_line = np.abs(off + g * c - profile) <= tol_gy
    idx = np.flatnonzero(inner)
    first, last = idx[0], idx[-1]
    if not on_line[first : last + 1].all():
        raise ValueError("the dose is not linear between its clipped ends")
    while first > 0 and on_line[first - 1]:
        first -= 1
    while last + 1 < len(c) and on_line[last + 1]:
        last += 1
    return LinearDose(axis, float(off), float(g), (float(c[first]), float(c[last])))
