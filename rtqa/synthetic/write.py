"""Write synthetic cases as DICOM-RT folders (one folder per case).

File names follow ``RP.<label>.dcm``, ``RS.<label>.dcm``, ``RD.<label>.dcm``,
``RT.<label>.fx<n>.dcm``, ``RE.<label>.dcm`` and ``CT.<n>.dcm``; readers link by UID only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from rtqa.dicom.common import make_uid
from rtqa.dicom.write.base import save
from rtqa.synthetic.build import BuiltCourse, build_course, build_registration, roi_colors
from rtqa.synthetic.spec import CaseSpec, CtSpec

# RT Dose pixel encodings: bits, compression, deflated transfer syntax.
DOSE_ENCODINGS = {"rle16": (16, "rle", False), "deflate32": (32, None, True)}


def write_case(case: CaseSpec, root: str | Path) -> list[Path]:
    """Write every course of ``case`` (and its registration) into ``root/case.name``.

    DICOM files of a previous run in that folder are removed first. Returns the paths written.
    """
    folder = Path(root) / case.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    paths: list[Path] = []
    built = [build_course(case, course) for course in case.courses]
    for course in built:
        paths += write_course(course, folder)
    registration = build_registration(case)
    if registration is not None:
        from rtqa.dicom.write.registration import write_registration

        current = built[0]
        paths.append(
            write_registration(
                registration,
                folder / f"RE.{current.spec.label}.dcm",
                current.header,
                series_instance_uid=make_uid("rtqa-synthetic", case.name, "registration-series"),
                series_number=5,
                content_datetime=current.spec.plan_datetime,
            )
        )
    return paths


def write_course(course: BuiltCourse, folder: Path) -> list[Path]:
    """Write one course: CT (when specified), structure set, plan, dose and records."""
    from rtqa.dicom.write.dose import write_dose
    from rtqa.dicom.write.plan import write_plan
    from rtqa.dicom.write.records import write_treatment_record
    from rtqa.dicom.write.structures import write_structure_set

    spec, uids, header = course.spec, course.uids, course.header
    label = spec.label
    bits, compress, deflate = DOSE_ENCODINGS[spec.dose_encoding]
    paths: list[Path] = []
    if spec.ct is not None:
        paths += write_ct(course, spec.ct, folder)
    paths.append(
        write_structure_set(
            course.structure_set,
            folder / f"RS.{label}.dcm",
            header,
            series_instance_uid=uids.structure_series,
            referenced_frame_uid=uids.frame,
            colors=roi_colors(spec),
            deflate=True,
        )
    )
    paths.append(
        write_plan(
            course.plan,
            folder / f"RP.{label}.dcm",
            header,
            series_instance_uid=uids.plan_series,
            series_number=2,
            isocenter_mm=spec.isocenter_mm,
            content_datetime=spec.plan_datetime,
        )
    )
    dose_path = write_dose(
        course.dose,
        folder / f"RD.{label}.dcm",
        header,
        sop_instance_uid=uids.dose,
        series_instance_uid=uids.dose_series,
        referenced_plan_uid=uids.plan,
        bits=bits,
        compress=compress,
        deflate=deflate,
        patient_position="HFS",
        content_datetime=spec.plan_datetime,
        tps_dvhs=course.dose.tps_dvhs,
    )
    paths.append(dose_path)
    names = {b.number: b.name for b in spec.beams}
    for record in course.records:
        paths.append(
            write_treatment_record(
                record,
                folder / f"RT.{label}.fx{record.fraction_number}.dcm",
                header,
                series_instance_uid=uids.record_series,
                series_number=4,
                beam_names=names,
            )
        )
    return paths


def ct_hu(ct: CtSpec, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
    """HU on one slice: the background, then each solid's HU where it contains the point."""
    hu = np.full(x.shape, ct.background_hu)
    for solid, value in ct.hu:
        hu[solid.contains(x, y, np.full(x.shape, z))] = value
    return hu


def write_ct(course: BuiltCourse, ct: CtSpec, folder: Path) -> list[Path]:
    """A CT slice per contour plane, re-saved with the deflated transfer syntax (small files)."""
    from rtqa.dicom.write.images import write_ct_series

    paths = write_ct_series(
        folder,
        course.header,
        frame_uid=course.uids.frame,
        x=ct.x.values,
        y=ct.y.values,
        z=np.asarray(course.spec.planes_mm),
        pixels=lambda gx, gy, z: ct_hu(ct, gx, gy, z),
        series_instance_uid=course.uids.ct_series,
        series_number=1,
    )
    for path in paths:
        save(pydicom.dcmread(path), path, deflate=True)
    return paths
