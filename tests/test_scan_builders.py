"""Builders of small DICOM-RT folders for the scan and ``rtqa info`` tests (no tests here).

Every object is written with rtqa's writers; UIDs derive from the names given, so two builds of
the same case are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from rtqa.dicom.common import make_uid
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.dicom.write.images import write_ct_series
from rtqa.dicom.write.plan import write_plan
from rtqa.dicom.write.records import write_treatment_record
from rtqa.dicom.write.registration import write_registration
from rtqa.dicom.write.structures import write_structure_set
from rtqa.model import (
    ContourPlane,
    DeliveredBeam,
    DoseGrid,
    DoseReference,
    FractionGroup,
    Plan,
    PlanarPolygon,
    ReferencedBeam,
    Registration,
    Roi,
    StructureSet,
    TreatmentRecord,
)

PATIENT = "RTQA-SCAN-1"
HEADER = Header(PATIENT, "Phantom^Scan", make_uid("study", PATIENT), datetime(2024, 3, 1, 9, 0))

# dose grid: 2 mm in x and y, 3 mm in z, dose = 0.1 * (x + 2 y) + z / 10 + 20 Gy (linear)
X = np.arange(-10.0, 10.1, 2.0)
Y = np.arange(-8.0, 8.1, 2.0)
Z = np.arange(-6.0, 6.1, 3.0)


def linear_dose() -> np.ndarray:
    zz, yy, xx = np.meshgrid(Z, Y, X, indexing="ij")
    return 0.1 * (xx + 2 * yy) + zz / 10 + 20.0


def square(half: float, z_values) -> tuple[ContourPlane, ...]:
    ring = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=float)
    return tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in z_values)


@dataclass
class Built:
    """UIDs and paths of one written case."""

    label: str
    frame: str
    plan_uid: str
    ss_uid: str
    dose_uid: str
    paths: dict[str, Path]


def uids(key: str, frame_name: str | None = None) -> dict[str, str]:
    """The UIDs of the case written with ``key`` (its label unless given)."""
    return {
        "frame": make_uid("frame", frame_name or key),
        "plan": make_uid("plan", key),
        "ss": make_uid("ss", key),
        "dose": make_uid("dose", key),
        "ct": make_uid("ct-series", key),
    }


def write_case(
    folder: Path,
    label: str,
    *,
    plan: bool = True,
    structures: bool = True,
    dose: bool = True,
    ct: bool = False,
    records: int = 0,
    frame_name: str | None = None,
    dose_frame_name: str | None = None,
    dose_plan_uid: str | None = None,
    names: dict[str, str] | None = None,
    first_day: datetime = datetime(2024, 3, 4, 8, 0),
    key: str | None = None,
) -> Built:
    """Write one case (30 Gy in 3 fractions to PTV) into ``folder``; ``names`` overrides file
    names (to prove linking ignores them)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = key or label
    u = uids(key, frame_name)
    names = {"plan": f"RP.{label}.dcm", "ss": f"RS.{label}.dcm", "dose": f"RD.{label}.dcm"} | (
        names or {}
    )
    paths: dict[str, Path] = {}
    if plan:
        model = Plan(
            path="",
            sop_instance_uid=u["plan"],
            label=label,
            name=label.lower(),
            intent="PALLIATIVE",
            frame_of_reference_uid=u["frame"],
            referenced_structure_set_uid=u["ss"],
            approval_status="APPROVED",
            review_datetime=datetime(2024, 3, 2, 12, 0),
            reviewer_name="Physicist^A",
            plan_datetime=datetime(2024, 3, 1, 10, 0),
            fraction_groups=(
                FractionGroup(
                    1, 3, (ReferencedBeam(1, 1000.0, 5.0), ReferencedBeam(2, 1000.0, 5.0)), (1,)
                ),
            ),
            dose_references=(
                DoseReference(
                    1, "VOLUME", "TARGET", "PTV", roi_number=1, target_prescription_dose_gy=30.0
                ),
            ),
        )
        paths["plan"] = write_plan(
            model, folder / names["plan"], HEADER, series_instance_uid=make_uid("rp", key)
        )
    if structures:
        ss = StructureSet(
            path="",
            sop_instance_uid=u["ss"],
            label=f"SS_{label}",
            frame_of_reference_uid=u["frame"],
            rois=(
                Roi(
                    1, "PTV", "PTV", frame_of_reference_uid=u["frame"], planes=square(4, [-3, 0, 3])
                ),
                Roi(2, "BODY", "EXTERNAL", frame_of_reference_uid=u["frame"], planes=square(9, Z)),
            ),
            patient_id=PATIENT,
            study_instance_uid=HEADER.study_instance_uid,
        )
        paths["ss"] = write_structure_set(
            ss,
            folder / names["ss"],
            HEADER,
            series_instance_uid=make_uid("rs", key),
            referenced_frame_uid=u["frame"],
        )
    if dose:
        frame = make_uid("frame", dose_frame_name) if dose_frame_name else u["frame"]
        grid = DoseGrid(linear_dose(), X, Y, Z, frame, summation_type="PLAN")
        paths["dose"] = write_dose(
            grid,
            folder / names["dose"],
            HEADER,
            sop_instance_uid=u["dose"],
            series_instance_uid=make_uid("rd", key),
            referenced_plan_uid=dose_plan_uid if dose_plan_uid is not None else u["plan"],
        )
    if ct:
        write_ct_series(
            folder / "ct",
            HEADER,
            frame_uid=u["frame"],
            x=X,
            y=Y,
            z=Z,
            series_instance_uid=u["ct"],
            file_pattern=f"CT.{label}.{{n}}.dcm",
        )
    for n in range(1, records + 1):
        record = TreatmentRecord(
            path="",
            sop_instance_uid=make_uid("record", key, n),
            referenced_plan_uid=u["plan"],
            fraction_number=n,
            delivered_at=first_day + timedelta(days=2 * (n - 1)),
            beams=(
                DeliveredBeam(1, 1000.0, 1000.0, "NORMAL"),
                DeliveredBeam(2, 1000.0, 1000.0, "NORMAL"),
            ),
        )
        paths[f"record{n}"] = write_treatment_record(
            record,
            folder / f"RT.{label}.fx{n}.dcm",
            HEADER,
            series_instance_uid=make_uid("rt", key),
        )
    return Built(label, u["frame"], u["plan"], u["ss"], u["dose"], paths)


def write_reg(folder: Path, fixed: str, moving: str, matrix: np.ndarray | None = None) -> Path:
    """A registration whose own frame is ``fixed``; ``moving`` maps in by ``matrix``."""
    reg = Registration(
        path="",
        sop_instance_uid=make_uid("reg", fixed, moving),
        frame_of_reference_uid=fixed,
        matrices={fixed: np.eye(4), moving: np.eye(4) if matrix is None else matrix},
    )
    return write_registration(
        reg, folder / "RE.dcm", HEADER, series_instance_uid=make_uid("re", fixed, moving)
    )
