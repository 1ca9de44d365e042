"""The dose of a case: the RT Dose header that linking needs, the doses of a case read and
combined, the planning system's DVHs in cc, and the dose maximum checked against the plan's
prescription."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from rtqa.dicom.common import optional_str, pydicom_failure, tag_name
from rtqa.dose_level import is_one_fraction, is_plausible, level_text
from rtqa.errors import InputError
from rtqa.model import DoseGrid, Level, Note, Plan, Roi, TpsDvh


@dataclass(frozen=True)
class DoseHeader:
    """What linking needs of an RT Dose, read without its pixels."""

    path: str
    sop_instance_uid: str
    frame_of_reference_uid: str | None
    referenced_plan_uids: tuple[str, ...]
    summation_type: str
    study_instance_uid: str = ""


def dose_header(ds: Dataset, path: str) -> DoseHeader:
    """The :class:`DoseHeader` of an RT Dose dataset."""
    refs = tuple(
        str(r.get("ReferencedSOPInstanceUID", ""))
        for r in ds.get("ReferencedRTPlanSequence") or []
        if r.get("ReferencedSOPInstanceUID")
    )
    return DoseHeader(
        path=path,
        sop_instance_uid=str(ds.SOPInstanceUID),
        frame_of_reference_uid=optional_str(ds, "FrameOfReferenceUID") or None,
        referenced_plan_uids=refs,
        summation_type=optional_str(ds, "DoseSummationType"),
        study_instance_uid=optional_str(ds, "StudyInstanceUID"),
    )


def load_dose(headers: list[DoseHeader], plan: Plan | None, notes: list[Note]) -> DoseGrid | None:
    """Read the pixels of a case's doses and combine them into the course dose."""
    if not headers:
        return None
    from rtqa.dicom.dose import combine_doses as combine
    from rtqa.dicom.dose import read_dose

    grids = []
    for header in sorted(headers, key=lambda h: h.path):
        try:
            grids.append(read_dose(header.path))
        except InputError as exc:
            notes.append(
                Note(Level.ERROR, f"dose not used: {exc.reason}", header.path, exc.attribute)
            )
        except Exception as exc:  # a value pydicom fails to convert on first use
            why = pydicom_failure(exc)
            if why is None:
                raise
            notes.append(Note(Level.ERROR, f"dose not used: {why}", header.path))
    if not grids:
        return None
    try:
        grid, combine_notes = combine(grids, plan)
    except InputError as exc:
        notes.append(
            Note(Level.ERROR, f"doses not combined: {exc.reason}", exc.path, exc.attribute)
        )
        return None
    notes.extend(combine_notes)
    return grid


def tps_dvhs_in_cc(dose: DoseGrid, rois: Iterable[Roi]) -> dict[int, TpsDvh]:
    """The planning system's DVHs of ``dose`` by ROI number, those stored in PERCENT or PER_U
    converted to cc with the ROI's ROIVolume (3006,002C), the planning system's own volume (not
    rtqa's contour volume, which would make a volume comparison circular). Without a ROIVolume
    such a DVH stays relative (:class:`~rtqa.dicom.dose.RelativeTpsDvh`)."""
    from rtqa.dicom.dose import tps_dvh_in_cc

    volumes = {roi.number: roi.tps_volume_cc for roi in rois}
    return {t.roi_number: tps_dvh_in_cc(t, volumes.get(t.roi_number)) for t in dose.tps_dvhs}


def dose_against_prescription(dose: DoseGrid, plan: Plan) -> list[Note]:
    """A WARNING when the dose maximum (Gy) cannot be that of a plan for its highest prescribed
    total dose Rx (the rule of :mod:`rtqa.dose_level`, the likely cause named). Nothing when
    the plan states no prescription."""
    totals = [p.total_gy for p in plan.prescriptions if p.total_gy and p.total_gy > 0]
    if not totals or dose.dose_gy.size == 0:
        return []
    rx = max(totals)
    peak = dose.max_gy
    if is_plausible(peak, rx):
        return []
    fractions = plan.fractions_planned
    attribute = "DoseSummationType" if is_one_fraction(peak, rx, fractions) else "DoseGridScaling"
    return [
        Note(
            Level.WARNING,
            level_text(peak, rx, fractions) + "; the numbers are reported as read",
            ", ".join(dose.paths),
            tag_name(attribute),
        )
    ]
