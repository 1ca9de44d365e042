"""Does rtqa read the dose the planning system computed its own DVHs on?

An RT Dose may carry the planning system's DVHs (DVHSequence), computed from the dose it
stored. Their mean doses are an independent reading of that dose: a DoseGridScaling,
DoseUnits or pixel-spacing misread (rtqa's or the exporter's) moves rtqa's means away from them
while the dose level may stay plausible (a 1.5x scaling error of a plan reaching 110 % of Rx
reads 165 %, inside the 90-300 % that ``dose_level`` accepts). Conventions:

* Compared: each ROI of the plan's structure set whose DVH rtqa computed on this plan's own dose,
  whole (not a derived structure), entirely inside the dose grid, with a DVH in the RT Dose
  (its mean: DVHMeanDose, else the curve's). Comparable for the rules below: planning-system
  mean at least :data:`MIN_MEAN_GY` and volume at least :data:`MIN_VOLUME_CC` (below, a small
  absolute difference is a large relative one).
* ``dose_agreement`` (integrity, per plan): the median over the comparable ROIs of rtqa's mean
  / the planning system's, in %. Outside 100 +/- :data:`SYSTEMATIC_PCT` % the dose is read
  differently from the way the planning system computed its DVHs, and the finding is
  ``not_evaluable``: a trust rule (:mod:`rtqa.protocol.dose_trust`) that withholds every
  judgement drawn from the dose. A median is robust to a few structures edited after the
  planning system computed their DVHs.
* ``tps_dvh_mean`` (integrity, per ROI, only when the median agrees): an ROI whose mean differs
  from the planning system's by more than :data:`ROI_PCT` % and :data:`ROI_GY` Gy is
  ``minor``: the structure or dose judged is not the one the planning system's DVH describes.
* A dose rtqa scaled or summed (a session dose times the fraction count, beam doses summed) is
  not the dose the stored DVHs describe: not compared (``info``).

Doses Gy, volumes cc; all tolerances are rtqa conventions (a planning system's DVH and an
independent calculation on the same dose agree within a few % in mean dose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rtqa.model import DoseGrid, Finding, Roi, Status

if TYPE_CHECKING:
    from rtqa.dvh.structure import StructureDvh

#: Median ratio of the means outside 100 +/- this % (rtqa convention): the dose is misread.
SYSTEMATIC_PCT = 5.0
#: One ROI's mean differing by more than both of these disagrees (rtqa convention).
ROI_PCT = 10.0
ROI_GY = 1.0
#: ROIs compared for the rules: planning-system mean (Gy) and volume (cc) at least these.
MIN_MEAN_GY = 1.0
MIN_VOLUME_CC = 0.5
SOURCE = (
    "rtqa convention: rtqa's mean doses within "
    f"{SYSTEMATIC_PCT:g} % of the planning system's own DVHs (DVHSequence) in the median"
)
ROI_SOURCE = (
    f"rtqa convention: an ROI's mean dose within {ROI_PCT:g} % or {ROI_GY:g} Gy of the planning "
    "system's DVH (DVHSequence)"
)


@dataclass(frozen=True)
class MeanPair:
    """One ROI's mean dose (Gy) from rtqa and from the planning system's DVH."""

    roi: str
    volume_cc: float
    rtqa_gy: float
    tps_gy: float

    @property
    def comparable(self) -> bool:
        return self.tps_gy >= MIN_MEAN_GY and self.volume_cc >= MIN_VOLUME_CC

    @property
    def ratio(self) -> float:
        return self.rtqa_gy / self.tps_gy

    @property
    def disagrees(self) -> bool:
        diff = abs(self.rtqa_gy - self.tps_gy)
        return diff > ROI_GY and diff > ROI_PCT / 100.0 * abs(self.tps_gy)


def mean_pairs(
    dose: DoseGrid, rois: Iterable[Roi], dvhs: Mapping[str, StructureDvh]
) -> list[MeanPair]:
    """The ROIs of ``rois`` with a planning-system DVH in ``dose`` and a whole-structure rtqa
    DVH in ``dvhs`` (StructureDvh by ROI name, computed on ``dose``) lying inside the grid."""
    from rtqa.dvh.tps import tps_mean_gy

    stored = {t.roi_number: t for t in dose.tps_dvhs}
    out = []
    for roi in rois:
        tps, sd = stored.get(roi.number), dvhs.get(roi.name)
        if tps is None or sd is None or (sd.roi_name, sd.roi_number) != (roi.name, roi.number):
            continue
        dvh = sd.dvh
        theirs = tps_mean_gy(tps)
        if theirs is None or dvh.unknown_volume_cc > 0 or dvh.known_volume_cc <= 0:
            continue
        out.append(MeanPair(roi.name, float(sd.volume_cc), float(dvh.mean_gy), theirs))
    return out


def agreement_findings(
    dose: DoseGrid, rois: Iterable[Roi], dvhs: Mapping[str, StructureDvh], case_id: str | None
) -> list[Finding]:
    """``dose_agreement`` and ``tps_dvh_mean`` findings of one plan's dose (see the module
    docstring); none when the RT Dose carries no DVHs."""
    if not dose.tps_dvhs:
        return []
    if dose.scaling_note:
        return [
            _finding(
                Status.INFO,
                "the planning system's DVHs describe the RT Dose as stored, not the dose "
                f"evaluated ({dose.scaling_note}): not compared",
                case_id,
            )
        ]
    pairs = mean_pairs(dose, rois, dvhs)
    used = [p for p in pairs if p.comparable]
    if not used:
        return [
            _finding(
                Status.INFO,
                f"{len(pairs)} ROI(s) with a planning-system DVH compared, none with a mean of "
                f"at least {MIN_MEAN_GY:g} Gy and {MIN_VOLUME_CC:g} cc: agreement not judged",
                case_id,
            )
        ]
    pct = 100.0 * float(np.median([p.ratio for p in used]))
    worst = max(used, key=lambda p: abs(p.ratio - 1.0))
    ok = abs(pct - 100.0) <= SYSTEMATIC_PCT
    message = (
        f"rtqa's mean doses are {pct:.4g} % of the planning system's own DVHs (median of "
        f"{len(used)} ROI(s); furthest: '{worst.roi}' {worst.rtqa_gy:.4g} vs "
        f"{worst.tps_gy:.4g} Gy)"
    )
    if not ok:
        message += (
            ": rtqa does not read the dose the planning system computed its DVHs on "
            "(DoseGridScaling, DoseUnits or the grid geometry misread or rewritten?); the DVH "
            "numbers of this plan cannot be trusted"
        )
    out = [_finding(Status.PASS if ok else Status.NOT_EVALUABLE, message, case_id, pct)]
    if ok:
        out += [_roi_finding(p, case_id) for p in used if p.disagrees]
    return out


def _finding(
    status: Status, message: str, case_id: str | None, pct: float | None = None
) -> Finding:
    return Finding(
        group="integrity",
        rule="dose_agreement",
        status=status,
        message=message,
        metric="Mean[% of TPS]" if pct is not None else None,
        value=pct,
        unit="%" if pct is not None else None,
        limits={"limit": f"{100 - SYSTEMATIC_PCT:g}-{100 + SYSTEMATIC_PCT:g} %"},
        margin=SYSTEMATIC_PCT - abs(pct - 100.0) if pct is not None else None,
        source=SOURCE,
        case_id=case_id,
    )


def _roi_finding(p: MeanPair, case_id: str | None) -> Finding:
    diff = p.rtqa_gy - p.tps_gy
    return Finding(
        group="integrity",
        rule="tps_dvh_mean",
        status=Status.MINOR,
        message=f"mean dose rtqa {p.rtqa_gy:.4g} Gy, planning system {p.tps_gy:.4g} Gy "
        f"(DVHSequence): {diff:+.3g} Gy ({100 * diff / p.tps_gy:+.3g} %); the structure or "
        "dose judged is not the one the planning system's DVH describes",
        roi=p.roi,
        metric="Mean[Gy]",
        value=p.rtqa_gy,
        unit="Gy",
        limits={"limit": f"within {ROI_PCT:g} % or {ROI_GY:g} Gy of {p.tps_gy:.4g} Gy"},
        margin=max(ROI_PCT / 100.0 * abs(p.tps_gy), ROI_GY) - abs(diff),
        source=ROI_SOURCE,
        case_id=case_id,
    )


__all__ = ["agreement_findings", "mean_pairs"]
