"""Case specifications: everything a synthetic case is made of, as plain frozen dataclasses.

A :class:`CaseSpec` is one folder: one patient, one or more courses (:class:`CourseSpec`: a plan
with its structure set, dose and treatment records, in one frame of reference) and, for a prior
course in another frame, the rigid map between the frames. Lengths mm, doses Gy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from rtqa.synthetic.dose import FieldDose, TargetDose
from rtqa.synthetic.shapes import RigidZ, Solid


@dataclass(frozen=True)
class RoiSpec:
    """One structure: TG-263 name, closed-form solid, RTROIInterpretedType, display colour."""

    name: str
    solid: Solid
    interpreted_type: str = "ORGAN"
    color: tuple[int, int, int] = (255, 255, 0)


@dataclass(frozen=True)
class Axis:
    """A uniform coordinate axis: ``n`` points from ``start`` mm in steps of ``step`` mm."""

    start: float
    step: float
    n: int

    @property
    def values(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.n)


@dataclass(frozen=True)
class BeamSpec:
    """A beam of the plan: name, delivery type (TREATMENT or SETUP) and MU per fraction."""

    number: int
    name: str
    delivery_type: str = "TREATMENT"
    meterset_mu: float | None = None


@dataclass(frozen=True)
class CtSpec:
    """A small axial CT on the contour planes: in-plane axes and HU per solid (later wins)."""

    x: Axis
    y: Axis
    hu: tuple[tuple[Solid, float], ...]
    background_hu: float = -1000.0


@dataclass(frozen=True)
class CourseSpec:
    """One plan with its structure set, dose and records, in frame ``frame_key`` of the case."""

    label: str  # RTPlanLabel (<= 16 characters); also names the files
    plan_name: str
    description: str
    treatment_site: str
    intent: str
    rx_gy: float
    fractions: int
    target_roi: str  # the ROI the prescription (DoseReference) points to
    rois: tuple[RoiSpec, ...]
    dose: TargetDose | FieldDose
    grid: tuple[Axis, Axis, Axis]  # dose grid x, y, z (canonical order)
    planes_mm: tuple[float, ...]  # contour planes (and CT slices)
    plan_datetime: datetime
    review_datetime: datetime
    reviewer: str
    fraction_datetimes: tuple[datetime, ...]
    beams: tuple[BeamSpec, ...]
    frame_key: str = "A"
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ct: CtSpec | None = None
    # RT Dose pixel encoding: "rle16" (16-bit, RLE Lossless) or "deflate32" (32-bit, deflated)
    dose_encoding: str = "rle16"
    physician: str = "ONCOLOGIST^SYNTHETIC"
    # the RT Dose carries the planning system's DVHs (DVHSequence) of every ROI but the body
    tps_dvhs: bool = False


@dataclass(frozen=True)
class CaseSpec:
    """One sample-data folder: a patient, the current course first, then prior courses."""

    name: str
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    courses: tuple[CourseSpec, ...]
    protocol: str  # how to check it, e.g. "NRG-BR002 (default)"
    verdict: str  # the intended result
    summary: str
    # frame key -> rigid map from that frame into the current course's frame ("A")
    frames: dict[str, RigidZ] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def current(self) -> CourseSpec:
        return self.courses[0]
