"""Does the dose lie in the patient? The high-dose region against the body outline.

A dose grid misplaced relative to the structures (rows and columns transposed, an axis
flipped, ImagePositionPatient written as the corner of the grid instead of the centre of its
first voxel, the dose of another frame of reference) gives DVH numbers that look plausible and
are wrong. A planning system deposits its high dose inside the patient, so such a dose shows
itself by high dose outside the body outline.

Definitions (doses Gy, volumes cc):

* The **high-dose region** is where the dose is at or above :data:`HIGH_DOSE_FRACTION` (50 %)
  of the dose maximum. Its volume is the isodose volume of :mod:`rtqa.dvh.quality` (the
  trilinear, edge-clamped dose field over the voxels of the grid, integrated exactly where the
  isodose crosses a voxel); the part **inside the body** is the same volume weighted by the
  body's fractional occupancy (:func:`rtqa.geometry.sampling.occupancy`); the part **outside**
  is the difference. The dose maximum is the largest grid value (the trilinear field takes its
  extremes at the nodes). Where the body wholly occupies (to within 1e-6) every voxel that
  can hold high dose, the outside part is 0 without a second integration.
* Only the voxels within two of a node at or above the level can hold high dose (a voxel's
  isodose volume depends on its 3x3x3 nodes), so the integration runs on that part of the grid
  alone; the volumes are those of the whole grid.
* The **dose maximum lies in the body** when the body occupancy at the hottest voxel's centre
  is at least one half (several hottest voxels of equal dose: their mean occupancy).
* The dose is **in place** when the high-dose volume outside the body is at most
  :data:`TOLERANCE_PCT` % of the high-dose volume or :data:`TOLERANCE_CC`, whichever is larger
  (rtqa convention, for the edge of superficial high dose: the last half voxel of the dose field
  beyond the skin, and partly occupied boundary voxels; misplaced doses put tens of % outside).

What this cannot see: a misplacement that keeps the high dose inside the body (a half-voxel
IPP offset away from the skin, a transposition that mirrors a target onto another point inside
a round body), and a body outline that does not cover the dose for other reasons (bolus outside
the outline, an outline missing on some planes) looks the same as a misplaced dose.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from rtqa.dvh.quality import isodose_volume_cc, occupancy_at, range_3x3x3
from rtqa.geometry.sampling import WHOLE, Occupancy, lattice_for, occupancy
from rtqa.model import DoseGrid, Finding, Roi, Status

#: The high-dose region: at or above this fraction of the dose maximum.
HIGH_DOSE_FRACTION = 0.5
#: High-dose volume allowed outside the body: this % of the high-dose volume, or
#: TOLERANCE_CC, whichever is larger.
TOLERANCE_PCT = 5.0
TOLERANCE_CC = 0.5
#: Voxels kept around the nodes at or above the level (a voxel's isodose volume depends on
#: its 3x3x3 nodes: two voxels keep the neighbourhood of every voxel that can hold high dose).
PAD_VOXELS = 2
SOURCE = (
    "rtqa convention: dose >= 50 % of its maximum lies inside the body outline, "
    f"outside at most {TOLERANCE_PCT:g} % of that volume or {TOLERANCE_CC:g} cc"
)


@dataclass(frozen=True)
class DosePlacement:
    """Where the high dose lies relative to the body outline (see the module docstring).

    ``max_mm``: centre (x, y, z) of the hottest voxel (the first in grid order);
    ``max_body_fraction``: body occupancy there (mean over voxels of equal maximum dose).
    """

    max_gy: float
    level_gy: float
    high_cc: float
    outside_cc: float
    max_mm: tuple[float, float, float]
    max_body_fraction: float

    @property
    def inside_cc(self) -> float:
        return self.high_cc - self.outside_cc

    @property
    def outside_pct(self) -> float:
        """The outside part in % of the high-dose volume (0 when there is none)."""
        return 100.0 * self.outside_cc / self.high_cc if self.high_cc > 0 else 0.0

    @property
    def tolerance_cc(self) -> float:
        return max(TOLERANCE_PCT / 100.0 * self.high_cc, TOLERANCE_CC)

    @property
    def max_in_body(self) -> bool:
        return self.max_body_fraction >= 0.5

    @property
    def in_place(self) -> bool:
        return self.outside_cc <= self.tolerance_cc


def dose_placement(
    dose: DoseGrid,
    body: Roi,
    *,
    body_occupancy: Occupancy | None = None,
    fraction: float = HIGH_DOSE_FRACTION,
) -> DosePlacement:
    """The high dose of ``dose`` (Gy) against the outline ``body``. ``body_occupancy``: the
    body's occupancy on the lattice of ``dose`` when already computed (else it is computed
    here). ValueError for a body without closed contour or a dose without a positive maximum."""
    d = np.asarray(dose.dose_gy, dtype=float)
    top = float(d.max()) if d.size else 0.0
    if not math.isfinite(top) or top <= 0:
        raise ValueError("the dose has no positive maximum")
    occ = body_occupancy
    if occ is None or not occ.lattice.same_as(lattice_for(dose, occ.lattice.factors)):
        occ = occupancy(body, dose)
    level = fraction * top
    near, start = _around_level(dose, level)
    high = isodose_volume_cc(near, level)
    # where every weight would be 1 (to WHOLE) the weighted sum is the same
    wholly_in = _wholly_in(occ, near, start, level)
    inside = high if wholly_in else isodose_volume_cc(near, level, occ)
    hottest = np.nonzero(d == top)
    pts = np.column_stack([dose.x_mm[hottest[2]], dose.y_mm[hottest[1]], dose.z_mm[hottest[0]]])
    return DosePlacement(
        max_gy=top,
        level_gy=level,
        high_cc=high,
        outside_cc=max(high - inside, 0.0),
        max_mm=(float(pts[0, 0]), float(pts[0, 1]), float(pts[0, 2])),
        max_body_fraction=float(occupancy_at(occ, pts).mean()),
    )


def _wholly_in(occ: Occupancy, near: DoseGrid, start: tuple[int, int, int], level: float) -> bool:
    """True when the body occupies (to :data:`~rtqa.geometry.sampling.WHOLE`) every voxel that
    can hold dose at or above ``level`` (Gy): those within one voxel of a node at or above it.
    ``near``: the part of the dose grid from voxel ``start`` (z, y, x) on. Only for an
    occupancy on the dose grid itself (factors 1); False otherwise (not known)."""
    if occ.lattice.factors != (1, 1, 1):
        return False
    reach = range_3x3x3(np.asarray(near.dose_gy, dtype=float))[1] >= level  # the voxels counted
    whole = np.zeros(reach.shape, dtype=bool)
    src, dst = [], []
    for o, s, n, m in zip(occ.offset, start, occ.values.shape, reach.shape, strict=True):
        lo, hi = max(o, s), min(o + n, s + m)
        if lo >= hi:
            return False
        src.append(slice(lo - o, hi - o))
        dst.append(slice(lo - s, hi - s))
    whole[tuple(dst)] = occ.values[tuple(src)] >= WHOLE
    return bool(np.all(whole[reach]))


def _around_level(dose: DoseGrid, level: float) -> tuple[DoseGrid, tuple[int, int, int]]:
    """``dose`` cut to the box of its nodes at or above ``level`` (Gy), widened by
    :data:`PAD_VOXELS` within the grid (the same isodose volume at ``level``, less work), and
    the index (z, y, x) of the box's first voxel."""
    hot = np.asarray(dose.dose_gy) >= level
    cuts = []
    for axis, n in enumerate(hot.shape):
        others = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(hot.any(axis=others))
        cuts.append(slice(max(idx[0] - PAD_VOXELS, 0), min(idx[-1] + PAD_VOXELS + 1, n)))
    kz, jy, ix = cuts
    near = dataclasses.replace(
        dose,
        dose_gy=np.asarray(dose.dose_gy)[kz, jy, ix],
        x_mm=dose.x_mm[ix],
        y_mm=dose.y_mm[jy],
        z_mm=dose.z_mm[kz],
        tps_dvhs=(),
    )
    return near, (kz.start, jy.start, ix.start)


def placement_finding(
    dose: DoseGrid,
    body: Roi | None,
    case_id: str | None,
    *,
    body_occupancy: Occupancy | None = None,
) -> Finding:
    """The integrity finding ``dose_placement`` of one plan's dose: ``pass`` when the dose is in
    place, ``not_evaluable`` when it is not (the DVH numbers cannot be trusted, whatever the
    plan), ``info`` when it could not be checked (no body outline, no dose)."""
    base = dict(
        group="integrity",
        rule="dose_placement",
        roi=body.name if body is not None else None,
        source=SOURCE,
        case_id=case_id,
    )
    if body is None or body.is_empty:
        why = "no body outline" if body is None else f"the body outline '{body.name}' is empty"
        return Finding(
            status=Status.INFO,
            message=f"{why} (EXTERNAL, or named Body, External or Outline): whether the dose "
            "lies in the patient was not checked",
            **base,
        )
    try:
        p = dose_placement(dose, body, body_occupancy=body_occupancy)
    except ValueError as exc:
        return Finding(
            status=Status.INFO,
            message=f"whether the dose lies in the patient was not checked: {exc}",
            **base,
        )
    allowed_pct = max(TOLERANCE_PCT, 100.0 * TOLERANCE_CC / p.high_cc)  # high_cc > 0
    x, y, z = p.max_mm
    where = "inside" if p.max_in_body else "OUTSIDE"
    facts = (
        f"{p.outside_cc:.3g} cc ({p.outside_pct:.3g} %) of the {p.high_cc:.4g} cc at or above "
        f"{p.level_gy:.4g} Gy ({100 * HIGH_DOSE_FRACTION:g} % of the maximum {p.max_gy:.4g} Gy) "
        f"lies outside '{body.name}'; the maximum, at ({x:.1f}, {y:.1f}, {z:.1f}) mm, lies "
        f"{where} it"
    )
    status = Status.PASS
    if not p.in_place:
        status = Status.NOT_EVALUABLE
        facts = (
            "the dose appears misplaced relative to the structures: "
            + facts
            + "; likely causes: dose rows and columns transposed or an axis flipped, "
            "ImagePositionPatient written as the grid corner instead of the first voxel "
            "centre, a dose or structure set of another frame of reference, or a body outline "
            "that does not cover the treated region (bolus, missing planes); the DVH numbers "
            "of this plan cannot be trusted until the files agree"
        )
    return Finding(
        status=status,
        message=facts,
        metric="HighDoseOutsideBody[%]",
        value=p.outside_pct,
        unit="%",
        limits={"limit": f"<= {TOLERANCE_PCT:g} % or <= {TOLERANCE_CC:g} cc"},
        margin=allowed_pct - p.outside_pct,
        **base,
    )
