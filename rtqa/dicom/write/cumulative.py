"""Write a cumulative EQD2 grid (``rtqa check --export-cumulative FILE``) as an RT Dose.

The file is an ordinary RT Dose a viewer can open over the current course's images: same frame of
reference, axes and orientation as the current dose, a new SOP Instance UID in a new series,
DoseType ``EFFECTIVE``, DoseSummationType ``MULTI_PLAN``, DoseUnits ``GY``. DoseComment (at most
64 characters) says what it is and at which α/β; ImageComments carries the full description
(model, α/β and its source, courses). A voxel whose prior dose is unknown (outside the prior
grid) cannot hold NaN in a DICOM file: it holds the current course's EQD2 alone, and the count
of such voxels is returned so that the caller reports it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom.uid

from rtqa.dicom.common import UID_PREFIX
from rtqa.dicom.dose import standard_axes
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import HFS, write_dose
from rtqa.model import Course, DoseGrid

#: DoseComment is LO: 64 characters at most.
COMMENT_MAX = 64


def dose_comment(alpha_beta_gy: float) -> str:
    """The DoseComment of a cumulative EQD2 file (≤ 64 characters)."""
    text = f"Cumulative EQD2 (LQ), alpha/beta {alpha_beta_gy:g} Gy, prior+current"
    return text[:COMMENT_MAX]


def write_cumulative_eqd2(
    cumulative: DoseGrid,
    path: str | Path,
    *,
    current_dose: DoseGrid,
    current_eqd2_gy: np.ndarray,
    alpha_beta_gy: float,
    course: Course,
    when: datetime | None = None,
) -> int:
    """Write ``cumulative`` (EQD2 Gy on the current dose grid, NaN where a prior dose is
    unknown) to ``path``; return how many voxels held NaN and were written with
    ``current_eqd2_gy`` (the current course's EQD2, same shape) instead.

    ValueError when the grids disagree; OSError when the file cannot be written.
    """
    values = np.asarray(cumulative.dose_gy, dtype=float)
    fallback = np.asarray(current_eqd2_gy, dtype=float)
    if values.shape != current_dose.dose_gy.shape or fallback.shape != values.shape:
        raise ValueError(
            f"cumulative grid {values.shape}, current EQD2 {fallback.shape} and current dose "
            f"{current_dose.dose_gy.shape} must share one shape"
        )
    unknown = np.isnan(values)
    values = np.where(unknown, fallback, values)
    if np.any(np.isnan(values)) or np.any(values < 0):
        raise ValueError("the cumulative EQD2 holds values that cannot be written")
    grid = DoseGrid(
        dose_gy=values,
        x_mm=current_dose.x_mm,
        y_mm=current_dose.y_mm,
        z_mm=current_dose.z_mm,
        frame_of_reference_uid=current_dose.frame_of_reference_uid,
        dose_type="EFFECTIVE",
        summation_type="MULTI_PLAN",
        units="GY",
        source_orientation=current_dose.source_orientation,
        patient_position=current_dose.patient_position,
    )
    orientation = tuple(current_dose.source_orientation)
    if standard_axes(orientation) is None:
        orientation = HFS
    plan = next((c.plan for c in course.cases if c.plan is not None), None)
    stamp = when or datetime.now().replace(microsecond=0)
    header = Header(
        patient_id=course.patient_id or current_dose.patient_id,
        patient_name=plan.patient_name if plan else "",
        study_instance_uid=(plan.study_instance_uid if plan and plan.study_instance_uid else "")
        or pydicom.uid.generate_uid(UID_PREFIX),
        study_datetime=(plan.plan_datetime if plan and plan.plan_datetime else stamp),
    )
    description = cumulative.scaling_note or dose_comment(alpha_beta_gy)
    if unknown.any():
        description += (
            f"; {int(unknown.sum())} voxel(s) without a prior dose (outside the prior grid) hold "
            "the current course's EQD2 alone"
        )
    out = write_dose(
        grid,
        path,
        header,
        sop_instance_uid=pydicom.uid.generate_uid(UID_PREFIX),
        series_instance_uid=pydicom.uid.generate_uid(UID_PREFIX),
        series_number=900,
        referenced_plan_uid=plan.sop_instance_uid if plan else None,
        orientation=orientation,
        summation_type="MULTI_PLAN",
        dose_type="EFFECTIVE",
        units="GY",
        patient_position=current_dose.patient_position,
        comment=dose_comment(alpha_beta_gy),
        content_datetime=stamp,
    )
    _add_description(out, description)
    return int(unknown.sum())


def _add_description(path: Path, description: str) -> None:
    """Add ImageComments (LT) and SeriesDescription (LO) to the written file."""
    import pydicom

    ds = pydicom.dcmread(path)
    ds.ImageComments = description[:10240]
    ds.SeriesDescription = "Cumulative EQD2"
    ds.save_as(path, enforce_file_format=True)
