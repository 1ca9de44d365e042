"""DVHs of the matched structures: computing them, keeping them with their curves, and checking
their volumes against the planning system's.

Doses Gy, volumes cc, curve volumes %.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rtqa.dvh import display_bin_gy
from rtqa.model import DoseGrid, Finding, Roi, Status
from rtqa.protocol.evaluation import EvaluationContext
from rtqa.protocol.matching import single_plane_text
from rtqa.protocol.model import derived_label
from rtqa.protocol.organ_extent import incomplete_contours

if TYPE_CHECKING:
    from rtqa.geometry.sampling import Occupancy

#: TPS and rtqa volumes disagree when they differ by more than both of these.
VOLUME_TOLERANCE_PCT = 5.0
VOLUME_TOLERANCE_CC = 0.5
#: Bin width (Gy) of the cumulative curves kept for plotting.
CURVE_BIN_GY = 0.05


def dvh_or_finding(fn, roi: Roi, dose: DoseGrid, findings: list[Finding], cid, how, group, **kw):
    """A StructureDvh, or None (with a not_evaluable finding) for an ROI without volume."""
    from rtqa.dvh import MetricUndefined

    try:
        return fn(roi, dose, **kw)
    except (ValueError, MetricUndefined) as exc:
        findings.append(
            Finding(
                group=group,
                rule="dvh",
                status=Status.NOT_EVALUABLE,
                message=f"no DVH for '{roi.name}': {exc}",
                roi=roi.name,
                match=how,
                case_id=cid,
                source="structure set",
            )
        )
        return None


def derived_occupancy(
    roi: Roi, dose: DoseGrid, minus: tuple[Roi, ...] = (), plus: tuple[Roi, ...] = ()
) -> Occupancy:
    """The occupancy on ``dose``'s lattice of the union of ``roi`` and ``plus`` minus the union
    of ``minus``. The set operations are done on the structures' slab models
    (:func:`rtqa.geometry.boolean.combined_stack`), exactly, and the result rasterised like a
    contoured structure (its own slab model kept), with the factors the union's volume (cc)
    needs. ValueError for an ROI without volume."""
    from rtqa.geometry import combined_stack, occupancy, slab_stack
    from rtqa.geometry.sampling import choose_factors

    whole = slab_stack(roi)
    if plus:
        whole = combined_stack(whole, [slab_stack(r) for r in plus])
    factors = choose_factors(whole.volume_cc, dose)
    stack = combined_stack(whole, minus=[slab_stack(r) for r in minus]) if minus else whole
    return occupancy(stack, dose, factors=factors, name=derived_name(roi, minus, plus))


def derived_name(roi: Roi, minus: tuple[Roi, ...] = (), plus: tuple[Roi, ...] = ()) -> str:
    """The name of ``roi`` with ``plus`` added and ``minus`` taken away: ``'Lungs - GTV'``."""
    return derived_label(roi.name, (r.name for r in plus), (r.name for r in minus))


def derived_dvh(roi: Roi, dose: DoseGrid, minus: tuple[Roi, ...], plus: tuple[Roi, ...] = ()):
    """The StructureDvh of the union of ``roi`` and ``plus`` minus the union of ``minus``
    (:func:`derived_occupancy`); ValueError for an ROI without volume. Its volume is that of its
    slab model, and the dose of its part beyond the grid is bounded by the faces it crosses, as
    for a contoured structure."""
    from rtqa.dvh import occupancy_dvh

    occ = derived_occupancy(roi, dose, minus, plus)
    sd = occupancy_dvh(occ, dose, occ.name, roi_number=roi.number)
    sd.volume_cc = occ.slabs.volume_cc if occ.slabs is not None else sd.volume_cc
    return sd


def keep_dvh(ctx: EvaluationContext, curves, roi: Roi, sd, how: str) -> None:
    """Keep ``sd`` (and its ROI, occupancy and match) in ``ctx`` and its curve (dose Gy,
    volume %) in ``curves``, under the name of the structure it describes: the ROI's, or a
    derived structure's own (``'Lungs - GTV'``), never over the whole ROI's."""
    name = sd.roi_name
    ctx.rois[name] = roi
    ctx.dvhs[name] = sd
    ctx.occupancies[name] = sd.occupancy
    ctx.matches[name] = how
    curves[name] = _curve(sd.dvh)


def _curve(dvh) -> tuple[np.ndarray, np.ndarray]:
    if dvh.known_volume_cc <= 0:
        return np.zeros(1), np.zeros(1)
    dose, vol = dvh.cumulative(display_bin_gy(dvh, CURVE_BIN_GY))
    total = dvh.total_volume_cc
    return np.asarray(dose, float), 100.0 * np.asarray(vol, float) / total


def volume_integrity(roi: Roi, sd, dose: DoseGrid, cid, done: set[str]) -> list[Finding]:
    """rtqa's contour volume of ``roi`` beside the planning system's (ROIVolume, else
    DVHSequence); ``sd`` is the DVH judged, whose volume is the ROI's unless it is a derived
    structure (lungs minus GTV), whose volume is not."""
    if roi.name in done:
        return []
    done.add(roi.name)
    tps, where = roi.tps_volume_cc, "ROIVolume (3006,002C)"
    if tps is None:
        tdvh = next((t for t in dose.tps_dvhs if t.roi_number == roi.number), None)
        if tdvh is not None and tdvh.total_volume_cc:
            tps, where = tdvh.total_volume_cc, "DVHSequence"
    if tps is None:
        return []
    if sd.roi_name == roi.name:
        ours = sd.volume_cc
    else:
        from rtqa.geometry import contour_volume_cc

        ours = contour_volume_cc(roi)
    diff = ours - tps
    pct = 100.0 * abs(diff) / tps if tps > 0 else math.inf
    bad = pct > VOLUME_TOLERANCE_PCT and abs(diff) > VOLUME_TOLERANCE_CC
    convention = single_plane_text(roi)
    status = Status.MINOR if bad else Status.PASS
    incomplete = incomplete_contours(roi)
    tail = f"; {convention}" if convention else ""
    if incomplete:  # the volume read is a part: the comparison tells nothing of the plan
        status = Status.NOT_EVALUABLE
        tail += f"; not compared: {incomplete}"
    return [
        Finding(
            group="integrity",
            rule="volume",
            status=status,
            message=f"rtqa {ours:.4g} cc, planning system {tps:.4g} cc ({where}): "
            f"{diff:+.3g} cc ({pct:.3g} %){tail}",
            roi=roi.name,
            metric="Volume[cc]",
            value=ours,
            value_range=(ours, None) if incomplete else None,
            unit="cc",
            limits={"limit": f"within {VOLUME_TOLERANCE_PCT:g} % or {VOLUME_TOLERANCE_CC:g} cc"},
            margin=max(
                VOLUME_TOLERANCE_PCT / 100.0 * tps - abs(diff), VOLUME_TOLERANCE_CC - abs(diff)
            ),
            source="rtqa convention: volumes differing by > 5 % and > 0.5 cc",
            case_id=cid,
        )
    ]


__all__ = [
    "CURVE_BIN_GY",
    "VOLUME_TOLERANCE_CC",
    "VOLUME_TOLERANCE_PCT",
    "derived_dvh",
    "derived_name",
    "derived_occupancy",
    "dvh_or_finding",
    "keep_dvh",
    "volume_integrity",
]
