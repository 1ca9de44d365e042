"""The data model: plain typed dataclasses shared by every layer.

Conventions
-----------
* Dose in Gy, lengths in mm, volumes in cc (1 cc = 1000 mm^3), angles in degrees.
* Coordinates are DICOM patient coordinates (x to the patient's left, y posterior, z superior).
* A :class:`DoseGrid` is stored in *canonical* order: ``dose_gy[k, j, i]`` is the dose at
  ``(x_mm[i], y_mm[j], z_mm[k])`` and all three coordinate vectors increase strictly. Readers map
  any of the eight standard patient orientations onto this order by exact flips and transposes;
  the orientation as written is kept in ``source_orientation`` for reporting and export.
* Contours are axial: every contour point of a plane shares one z, and polygons are given in
  (x, y) mm.

This module imports no I/O and knows nothing of DICOM or files beyond the paths it records.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

# --------------------------------------------------------------------------------------------
# Notes: what a reader or a rule wants the user to know
# --------------------------------------------------------------------------------------------


class Level(enum.StrEnum):
    """Severity of a :class:`Note`."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Note:
    """A message about the input: what is missing, unlinked, repaired or refused.

    ``path`` names the file concerned, ``attribute`` the DICOM keyword (and tag) where one applies.
    """

    level: Level
    message: str
    path: str | None = None
    attribute: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        attr = f" [{self.attribute}]" if self.attribute else ""
        return f"{self.level.value}: {where}{self.message}{attr}"


# --------------------------------------------------------------------------------------------
# RT Plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoseReference:
    """One item of DoseReferenceSequence (300A,0010). Doses in Gy (total over the course)."""

    number: int
    structure_type: str  # POINT | VOLUME | COORDINATES | SITE
    reference_type: str  # TARGET | ORGAN_AT_RISK
    description: str = ""
    roi_number: int | None = None  # ReferencedROINumber, where given
    target_prescription_dose_gy: float | None = None
    delivery_maximum_dose_gy: float | None = None
    target_minimum_dose_gy: float | None = None
    organ_at_risk_maximum_dose_gy: float | None = None
    uid: str | None = None


@dataclass(frozen=True)
class ReferencedBeam:
    """A beam as listed in a fraction group: number, meterset (MU) and beam dose (Gy)."""

    beam_number: int
    meterset: float | None = None
    beam_dose_gy: float | None = None


@dataclass(frozen=True)
class FractionGroup:
    """One item of FractionGroupSequence (300A,0070)."""

    number: int
    fractions_planned: int | None
    beams: tuple[ReferencedBeam, ...] = ()
    referenced_dose_reference_numbers: tuple[int, ...] = ()
    # ReferencedDoseReferenceSequence items that carry a prescription per fraction group:
    # (dose reference number, TargetPrescriptionDose in Gy)
    dose_reference_doses_gy: tuple[tuple[int, float], ...] = ()

    def lists_dose_reference(self, number: int) -> bool:
        """Whether the group lists dose reference ``number`` (with or without its own dose)."""
        return number in self.referenced_dose_reference_numbers or number in dict(
            self.dose_reference_doses_gy
        )


@dataclass(frozen=True)
class Beam:
    """One item of BeamSequence / IonBeamSequence (300A,00B0)."""

    number: int
    name: str = ""
    delivery_type: str = "TREATMENT"  # TREATMENT | SETUP | OPEN_PORTFILM | ...
    radiation_type: str = ""
    beam_type: str = ""  # STATIC | DYNAMIC


@dataclass(frozen=True)
class Prescription:
    """A prescribed total dose (Gy) and the fraction count it is delivered in.

    ``source`` says where it was read: ``"DoseReferenceSequence"``, ``"FractionGroupSequence"``,
    ``"roi name"`` (a TG-263 dose suffix), ``"command line"`` ...
    """

    total_gy: float
    fractions: int | None
    source: str
    roi_number: int | None = None
    dose_reference_number: int | None = None
    description: str = ""

    @property
    def dose_per_fraction_gy(self) -> float | None:
        if not self.fractions:
            return None
        return self.total_gy / self.fractions


def system_name(manufacturer: str, software_versions: str) -> str | None:
    """``"Manufacturer SoftwareVersions"`` (the manufacturer said once where the versions
    start with it), or None when both are empty."""
    maker, version = manufacturer.strip(), software_versions.strip()
    if maker and version.lower().startswith(maker.lower()):
        maker = ""
    return " ".join(w for w in (maker, version) if w) or None


@dataclass(eq=False)
class Plan:
    """An RT Plan (or RT Ion Plan) as read."""

    path: str
    sop_instance_uid: str
    label: str
    name: str = ""
    description: str = ""
    intent: str = ""  # PlanIntent: CURATIVE | PALLIATIVE | PROPHYLACTIC | ...
    patient_id: str = ""
    patient_name: str = ""
    study_instance_uid: str = ""
    frame_of_reference_uid: str | None = None
    referenced_structure_set_uid: str | None = None
    approval_status: str | None = None  # APPROVED | UNAPPROVED | REJECTED; None when absent
    review_datetime: datetime | None = None
    reviewer_name: str = ""
    plan_datetime: datetime | None = None  # RTPlanDate + RTPlanTime
    fraction_groups: tuple[FractionGroup, ...] = ()
    beams: tuple[Beam, ...] = ()
    dose_references: tuple[DoseReference, ...] = ()
    prescriptions: tuple[Prescription, ...] = ()
    manufacturer: str = ""
    software_versions: str = ""
    treatment_site: str = ""  # from the plan where written (e.g. RTPlanGeometry is not a site)
    converter: str = ""  # the converter that wrote it, when recognised (rtqa.dicom.converters)
    #: PatientPosition of each PatientSetupSequence item (HFS, FFP, ...; reported, never geometry)
    patient_positions: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()  # what the reader repaired, assumed or could not use

    @property
    def planning_system(self) -> str | None:
        """Manufacturer and SoftwareVersions, e.g. "Vendor TPS 16.1" (:func:`system_name`)."""
        return system_name(self.manufacturer, self.software_versions)

    @property
    def fractions_planned(self) -> int | None:
        """The plan's fraction count: that of its fraction groups (the usual plan has one).
        None when no group states one, or when groups state different counts: the dose of such
        a plan sums fractionations that one count cannot describe (EQD2, per-fraction limits)."""
        counts = self.fraction_counts
        return counts[0] if len(counts) == 1 else None

    @property
    def fraction_counts(self) -> tuple[int, ...]:
        """The distinct fraction counts its fraction groups state, ascending."""
        return tuple(
            sorted({g.fractions_planned for g in self.fraction_groups if g.fractions_planned})
        )

    @property
    def treatment_beam_numbers(self) -> frozenset[int]:
        return frozenset(b.number for b in self.beams if b.delivery_type == "TREATMENT")


# --------------------------------------------------------------------------------------------
# RT Structure Set
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class PlanarPolygon:
    """A polygon with holes on one axial plane: rings as (N, 2) arrays of (x, y) in mm.

    Rings are open (the first point is not repeated). Holes were resolved by the even-odd rule.
    """

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()


@dataclass(eq=False)
class ContourPlane:
    """All CLOSED_PLANAR contours of one ROI on one axial plane at ``z_mm``."""

    z_mm: float
    polygons: tuple[PlanarPolygon, ...]
    ring_count: int  # contours read on this plane (before hole resolution)


#: RTROIInterpretedType values of targets.
TARGET_TYPES = ("PTV", "CTV", "GTV", "ITV")


@dataclass(eq=False)
class Roi:
    """One ROI: StructureSetROISequence + ROIContourSequence + RTROIObservationsSequence.

    ``planes`` hold the CLOSED_PLANAR contours sorted by z; POINT and OPEN_PLANAR contours are
    kept in ``points`` and ``open_contours`` (as (N, 3) arrays) and never rasterised as volumes.
    ``tps_volume_cc`` is ROIVolume (3006,002C) where the structure set carries it.
    """

    number: int
    name: str
    interpreted_type: str = ""  # RTROIInterpretedType: PTV | CTV | GTV | ORGAN | EXTERNAL | ...
    observation_label: str = ""
    frame_of_reference_uid: str | None = None
    planes: tuple[ContourPlane, ...] = ()
    points: tuple[np.ndarray, ...] = ()
    open_contours: tuple[np.ndarray, ...] = ()
    tps_volume_cc: float | None = None
    contour_count: int = 0  # contours of every geometric type as read
    notes: tuple[Note, ...] = ()
    #: (lower z, upper z) mm of wide steps between this ROI's planes that no image plane lies
    #: in (a slice missing from the images): joined by the slab model, not taken as gaps
    bridged_steps_mm: tuple[tuple[float, float], ...] = ()
    #: (lower z, upper z) mm of wide steps with an image plane known to lie in them: gaps
    confirmed_gaps_mm: tuple[tuple[float, float], ...] = ()
    #: Slab thickness (mm) of an ROI whose closed contours lie on one plane, given by
    #: convention: the structure set's plane spacing, half on each side of the plane. None for
    #: an ROI of two planes or more, or when no ROI of the structure set has two planes
    single_plane_thickness_mm: float | None = None
    #: Why its contours do not define all of its volume, one clause each: a closed contour left
    #: out at read (points that could not be read, a geometric type not known), or two closed
    #: rings of a plane overlapping in part or drawn twice (a union or a hole: both plausible)
    incomplete: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the ROI has no closed contour to make a volume from."""
        return not self.planes


@dataclass(eq=False)
class StructureSet:
    path: str
    sop_instance_uid: str
    label: str
    frame_of_reference_uid: str | None
    rois: tuple[Roi, ...]
    patient_id: str = ""
    patient_name: str = ""
    study_instance_uid: str = ""
    referenced_series_uid: str | None = None
    structure_set_datetime: datetime | None = None
    manufacturer: str = ""
    notes: tuple[Note, ...] = ()  # file-level: orphan contours/observations, non-conformance

    def roi(self, name_or_number: str | int) -> Roi:
        """The ROI with this exact name or number (KeyError otherwise)."""
        for r in self.rois:
            if r.number == name_or_number or r.name == name_or_number:
                return r
        raise KeyError(name_or_number)


#: Names (case-insensitive) that mark the body outline when no single ROI is of type EXTERNAL.
BODY_NAMES = ("body", "external", "outline")


def body_outline(rois: Sequence[Roi]) -> Roi | None:
    """The patient's body outline among ``rois``: the one ROI of interpreted type EXTERNAL that
    has contours, else the one ROI named Body, External or Outline; None when neither is
    unique (the one rule for every check that needs the body)."""
    ext = [r for r in rois if r.interpreted_type.upper() == "EXTERNAL" and not r.is_empty]
    if len(ext) == 1:
        return ext[0]
    named = [r for r in rois if r.name.strip().lower() in BODY_NAMES]
    return named[0] if len(named) == 1 else None


# --------------------------------------------------------------------------------------------
# RT Dose
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class TpsDvh:
    """A planning system's DVH from DVHSequence (3004,0050): cumulative, dose Gy / volume cc."""

    roi_number: int
    dose_gy: np.ndarray  # lower edge of each DICOM bin, from 0 Gy
    volume_cc: np.ndarray  # volume_cc[n]: volume receiving at least dose_gy[n]
    total_volume_cc: float | None
    mean_gy: float | None = None
    min_gy: float | None = None
    max_gy: float | None = None


@dataclass(eq=False)
class DoseGrid:
    """A 3-D dose distribution in canonical order (see the module docstring), Gy.

    ``x_mm`` and ``y_mm`` are uniformly spaced; ``z_mm`` may be uneven. ``scaling_note`` says
    how the stored values were turned into a course dose (e.g. a session dose multiplied by the
    plan's fraction count, or BEAM doses summed).
    """

    dose_gy: np.ndarray  # (nz, ny, nx) float
    x_mm: np.ndarray
    y_mm: np.ndarray
    z_mm: np.ndarray
    frame_of_reference_uid: str | None
    dose_type: str = "PHYSICAL"  # PHYSICAL | EFFECTIVE | ERROR
    summation_type: str = "PLAN"  # DoseSummationType as read
    units: str = "GY"
    paths: tuple[str, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()
    referenced_plan_uids: tuple[str, ...] = ()
    referenced_beam_numbers: tuple[int, ...] = ()
    referenced_fraction_groups: tuple[int, ...] = ()  # ReferencedFractionGroupNumber values
    source_orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    patient_position: str | None = None  # reported only; never used for geometry
    scaling_note: str | None = None
    heterogeneity_correction: tuple[str, ...] = ()  # TissueHeterogeneityCorrection (3004,0014)
    tps_dvhs: tuple[TpsDvh, ...] = ()
    patient_id: str = ""
    manufacturer: str = ""
    converter: str = ""  # the converter that wrote it, when recognised (rtqa.dicom.converters)
    notes: tuple[Note, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.dose_gy.shape)  # type: ignore[return-value]

    @property
    def origin_mm(self) -> tuple[float, float, float]:
        """Centre of the voxel with the smallest x, y and z."""
        return (float(self.x_mm[0]), float(self.y_mm[0]), float(self.z_mm[0]))

    @property
    def spacing_mm(self) -> tuple[float, float, float | None]:
        """(dx, dy, dz); dz is None when the frames are unevenly spaced."""
        dx = float(self.x_mm[1] - self.x_mm[0]) if self.x_mm.size > 1 else 0.0
        dy = float(self.y_mm[1] - self.y_mm[0]) if self.y_mm.size > 1 else 0.0
        if self.z_mm.size < 2:
            return dx, dy, 0.0
        steps = np.diff(self.z_mm)
        dz = float(steps[0]) if np.allclose(steps, steps[0], atol=1e-3) else None
        return dx, dy, dz

    @property
    def max_gy(self) -> float:
        """The highest dose (Gy); taken once for a read-only ``dose_gy`` (as read from a file),
        each time for one that may change."""
        dose = self.dose_gy
        if not dose.size:
            return 0.0
        kept = self.__dict__.get("_max_gy")
        if kept is not None and kept[0] is dose and not dose.flags.writeable:
            return kept[1]
        value = float(dose.max())
        if not dose.flags.writeable:
            self.__dict__["_max_gy"] = (dose, value)
        return value


# --------------------------------------------------------------------------------------------
# CT, treatment records, registrations
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ImageSeries:
    """A CT (or other image) series: only what the checks need."""

    series_instance_uid: str
    frame_of_reference_uid: str | None
    slice_positions_mm: tuple[float, ...]  # along the slice normal, sorted
    sop_instance_uids: tuple[str, ...]
    paths: tuple[str, ...]
    modality: str = "CT"
    patient_id: str = ""
    #: z (mm) of every slice, ascending, when all slices are axial; else empty
    slice_z_mm: tuple[float, ...] = ()


@dataclass(frozen=True)
class DeliveredBeam:
    beam_number: int
    delivered_meterset: float | None = None
    specified_meterset: float | None = None
    termination_status: str = ""  # NORMAL | OPERATOR | MACHINE | UNKNOWN


@dataclass(eq=False)
class TreatmentRecord:
    """One RT Beams Treatment Record: a delivered session of one fraction."""

    path: str
    sop_instance_uid: str
    referenced_plan_uid: str | None
    fraction_number: int | None  # CurrentFractionNumber
    delivered_at: datetime | None  # TreatmentDate + TreatmentTime (first beam session)
    beams: tuple[DeliveredBeam, ...] = ()
    patient_id: str = ""
    notes: tuple[Note, ...] = ()
    fraction_group: int | None = None  # ReferencedFractionGroupNumber of the plan
    #: TimezoneOffsetFromUTC (0008,0201) of ``delivered_at`` in minutes east of UTC, where given
    utc_offset_min: int | None = None

    @property
    def delivery_date(self) -> date | None:
        return self.delivered_at.date() if self.delivered_at else None


@dataclass(eq=False)
class Registration:
    """A Spatial Registration object with rigid matrices.

    ``matrices[uid]`` is the 4x4 matrix that maps points from frame of reference ``uid`` into
    the registration's own frame ``frame_of_reference_uid`` (DICOM PS3.3 C.20.2), in mm,
    homogeneous column vectors: ``p_reg = M @ [x, y, z, 1]``.
    """

    path: str
    sop_instance_uid: str
    frame_of_reference_uid: str
    matrices: dict[str, np.ndarray]
    matrix_types: dict[str, str] = field(default_factory=dict)  # RIGID | RIGID_SCALE | AFFINE
    patient_id: str = ""
    notes: tuple[Note, ...] = ()

    @property
    def frames(self) -> tuple[str, ...]:
        """The frames of reference this registration links: its items' and its own."""
        return tuple(dict.fromkeys([*self.matrices, self.frame_of_reference_uid]))

    def to_own(self, uid: str) -> np.ndarray | None:
        """The matrix taking points of frame ``uid`` into the registration's own frame: the
        item's matrix, the identity for the own frame when no item lists it, else None."""
        if uid in self.matrices:
            return np.asarray(self.matrices[uid], dtype=float)
        if uid and uid == self.frame_of_reference_uid:
            return np.eye(4)
        return None

    def links(self, a: str, b: str) -> bool:
        """True when this registration links both frames of reference (see :meth:`to_own`)."""
        return self.to_own(a) is not None and self.to_own(b) is not None

    def matrix(self, source: str, target: str) -> np.ndarray:
        """4x4 matrix mapping points of frame ``source`` into frame ``target``:
        ``inverse(M_target) @ M_source``, both mapping into the registration's own frame
        (PS3.3 C.20.2); KeyError for a frame the registration does not link."""
        m_source, m_target = self.to_own(source), self.to_own(target)
        if m_source is None or m_target is None:
            missing = source if m_source is None else target
            raise KeyError(f"registration {self.sop_instance_uid} does not link frame {missing}")
        return np.linalg.inv(m_target) @ m_source


# --------------------------------------------------------------------------------------------
# Cases and courses
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Case:
    """One RT Plan with what belongs to it (linked by UID), plus notes on what is missing.

    A case may lack its plan (a structure set and dose only, as for ``rtqa dvh``); ``dose`` is
    the dose to evaluate after summation/scaling (``None`` when none could be used).
    """

    case_id: str
    plan: Plan | None = None
    structure_set: StructureSet | None = None
    dose: DoseGrid | None = None
    images: ImageSeries | None = None
    records: tuple[TreatmentRecord, ...] = ()
    registrations: tuple[Registration, ...] = ()
    notes: list[Note] = field(default_factory=list)
    source_dir: str = ""

    @property
    def patient_id(self) -> str:
        for part in (self.plan, self.structure_set, self.dose):
            if part is not None and part.patient_id:
                return part.patient_id
        return ""

    @property
    def patient_ids(self) -> dict[str, str]:
        """The PatientID each part of the case names (plan, structure set, dose, records), by
        part; parts naming none left out."""
        parts = [("plan", self.plan), ("structure set", self.structure_set), ("dose", self.dose)]
        parts += [(f"record {r.path}", r) for r in self.records]
        return {name: p.patient_id for name, p in parts if p is not None and p.patient_id}

    @property
    def label(self) -> str:
        return self.plan.label if self.plan else self.case_id

    @property
    def frame_of_reference_uid(self) -> str | None:
        for part in (self.plan, self.structure_set, self.dose):
            uid = getattr(part, "frame_of_reference_uid", None)
            if uid:
                return uid
        return None

    @property
    def is_complete(self) -> bool:
        return self.plan is not None and self.structure_set is not None and self.dose is not None

    @property
    def input_paths(self) -> tuple[str, ...]:
        """Every file this case was read from."""
        paths: list[str] = []
        if self.plan:
            paths.append(self.plan.path)
        if self.structure_set:
            paths.append(self.structure_set.path)
        if self.dose:
            paths.extend(self.dose.paths)
        if self.images:
            paths.extend(self.images.paths)
        paths.extend(r.path for r in self.records)
        paths.extend(r.path for r in self.registrations)
        return tuple(paths)


@dataclass(eq=False)
class Course:
    """What ``rtqa check`` judges: one patient's cases delivered within one protocol window,
    plus that patient's prior courses (cases delivered before this course began).

    ``reason`` says why these cases were grouped and why the priors were taken as prior.
    """

    cases: tuple[Case, ...]
    priors: tuple[Case, ...] = ()
    reason: str = ""

    @property
    def patient_id(self) -> str:
        return self.cases[0].patient_id if self.cases else ""

    @property
    def course_id(self) -> str:
        return "+".join(c.case_id for c in self.cases)


# --------------------------------------------------------------------------------------------
# Findings and results
# --------------------------------------------------------------------------------------------


class Status(enum.StrEnum):
    """Status of one finding. Deviations are ``minor`` and ``major``."""

    PASS = "pass"
    INFO = "info"
    NOT_EVALUABLE = "not_evaluable"
    MINOR = "minor"
    MAJOR = "major"

    @property
    def rank(self) -> int:
        """Severity order: pass < info < not_evaluable < minor < major."""
        return _STATUS_RANK[self]


_STATUS_RANK = {
    Status.PASS: 0,
    Status.INFO: 1,
    Status.NOT_EVALUABLE: 2,
    Status.MINOR: 3,
    Status.MAJOR: 4,
}


#: Words of a ``Finding.match`` that name the lower-ranked ROIs that matched too.
ALSO_MATCHED = "also matched"


@dataclass
class Finding:
    """One judged rule.

    ``group`` is ``plan``, ``target``, ``organ``, ``quality``, ``integrity`` or ``prior``;
    ``value`` is in ``unit``; ``limits`` maps band names (``per_protocol``, ``acceptable``,
    ``limit``) to the condition as written (e.g. ``"<= 21.9"``); ``margin`` is the signed distance
    from the value to the per-protocol limit in ``unit`` (positive: inside the limit).

    ``value_range`` is None where ``value`` is the figure itself. Otherwise the structure's figure
    is known only to lie in ``(low, high)`` (in ``unit``; None: an open end), and ``value`` (when
    set) is one end, or a figure of the part known: a dose beyond the grid taken from 0 Gy to
    a bound, part of an organ missing from the judged contour, a dose not trusted.
    """

    group: str
    rule: str
    status: Status
    message: str = ""
    roi: str | None = None
    match: str | None = None
    metric: str | None = None
    value: float | None = None
    unit: str | None = None
    limits: dict[str, str] = field(default_factory=dict)
    margin: float | None = None
    source: str | None = None
    confidence: str | None = None
    case_id: str | None = None
    value_range: tuple[float | None, float | None] | None = None


def worst_status(findings: list[Finding] | tuple[Finding, ...]) -> Status:
    """The verdict: the most severe status among the findings (``pass`` when there are none).

    ``info`` findings never change the verdict.
    """
    worst = Status.PASS
    for f in findings:
        if f.status is not Status.INFO and f.status.rank > worst.rank:
            worst = f.status
    return worst


@dataclass(frozen=True)
class PlanSummary:
    """What a report says of one plan of the course."""

    case_id: str
    label: str
    sop_instance_uid: str | None
    fractions: int | None
    prescription_gy: float | None
    approval_status: str | None
    prior: bool = False  # True for a plan of a prior course
    #: Manufacturer and SoftwareVersions of the plan, e.g. "Vendor TPS 16.1" (None if absent)
    planning_system: str | None = None


@dataclass
class CheckResult:
    """Everything ``rtqa check`` found for one course: the input to every renderer.

    ``verdict`` is :func:`worst_status` of ``findings``; ``exit_code`` applies ``--fail-on``.
    ``curves`` maps an ROI name to its cumulative DVH ``(dose_gy, volume_pct)`` for plotting;
    ``input_hashes`` maps each input file to its SHA-256.
    """

    course_id: str
    patient_id: str
    plans: list[PlanSummary]
    protocol_id: str
    protocol_version: str
    protocol_title: str
    protocol_source: str  # file the protocol was loaded from
    default_protocol: bool
    findings: list[Finding]
    verdict: Status
    exit_code: int
    rtqa_version: str
    created: datetime
    notes: list[Note] = field(default_factory=list)
    input_hashes: dict[str, str] = field(default_factory=dict)
    grouping: str = ""  # why these plans form the course and which were taken as prior
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # What the evaluation worked on (cases, dose grids, matched ROIs, prior/cumulative grids),
    # kept for renderers that draw it (HTML); never serialised.
    context: object | None = None
