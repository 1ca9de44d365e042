"""Case specifications → rtqa model objects (plan, structure set, dose grid, records, registration).

Every UID comes from :func:`rtqa.dicom.common.make_uid` with the case name and the course label
as entropy, so building twice gives identical objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from rtqa.dicom.common import make_uid
from rtqa.dicom.write.base import Header
from rtqa.model import (
    Beam,
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
    TpsDvh,
    TreatmentRecord,
)
from rtqa.synthetic.reference import sampled_dvh
from rtqa.synthetic.shapes import slab_volume_cc
from rtqa.synthetic.spec import CaseSpec, CourseSpec

INSTITUTION = "RTQA Synthetic Clinic"
MANUFACTURER = "rtqa"
MODEL = "rtqa synthetic phantom"


@dataclass(frozen=True)
class CourseUids:
    study: str
    frame: str
    plan: str
    plan_series: str
    structure_set: str
    structure_series: str
    dose: str
    dose_series: str
    record_series: str
    ct_series: str


@dataclass(eq=False)
class BuiltCourse:
    """A course as model objects, with the header and UIDs the writers need."""

    spec: CourseSpec
    header: Header
    uids: CourseUids
    plan: Plan
    structure_set: StructureSet
    dose: DoseGrid
    records: tuple[TreatmentRecord, ...]


def course_uids(case: CaseSpec, course: CourseSpec) -> CourseUids:
    def uid(kind: str) -> str:
        return make_uid("rtqa-synthetic", case.name, course.label, kind)

    return CourseUids(
        study=uid("study"),
        frame=make_uid("rtqa-synthetic", case.name, "frame", course.frame_key),
        plan=uid("plan"),
        plan_series=uid("plan-series"),
        structure_set=uid("structure-set"),
        structure_series=uid("structure-series"),
        dose=uid("dose"),
        dose_series=uid("dose-series"),
        record_series=uid("record-series"),
        ct_series=uid("ct-series"),
    )


def course_header(case: CaseSpec, course: CourseSpec, uids: CourseUids) -> Header:
    """Patient and study identity; the study (the planning CT) is two days before the plan."""
    simulation = (course.plan_datetime - timedelta(days=2)).replace(hour=8, minute=30, second=0)
    return Header(
        patient_id=case.patient_id,
        patient_name=case.patient_name,
        study_instance_uid=uids.study,
        study_datetime=simulation,
        patient_birth_date=case.birth_date,
        patient_sex=case.sex,
        study_id=course.label[:16],
        accession_number=f"A{abs(hash_label(case.name + course.label)) % 10**8:08d}",
        referring_physician=course.physician,
        institution=INSTITUTION,
        operator="THERAPIST^SYNTHETIC",
        manufacturer=MANUFACTURER,
        model_name=MODEL,
    )


def hash_label(text: str) -> int:
    """A stable (process-independent) integer from ``text``."""
    value = 0
    for ch in text:
        value = (value * 131 + ord(ch)) % (2**61 - 1)
    return value


def build_rois(course: CourseSpec, frame_uid: str) -> tuple[Roi, ...]:
    rois = []
    for number, spec in enumerate(course.rois, start=1):
        planes = []
        for z in course.planes_mm:
            sections = spec.solid.sections(z)
            if sections:
                polys = tuple(PlanarPolygon(e.ring()) for e in sections)
                planes.append(ContourPlane(z_mm=z, polygons=polys, ring_count=len(polys)))
        rois.append(
            Roi(
                number=number,
                name=spec.name,
                interpreted_type=spec.interpreted_type,
                observation_label=spec.name,
                frame_of_reference_uid=frame_uid,
                planes=tuple(planes),
                tps_volume_cc=round(slab_volume_cc(spec.solid, course.planes_mm), 3),
                contour_count=sum(p.ring_count for p in planes),
            )
        )
    return tuple(rois)


def roi_colors(course: CourseSpec) -> dict[int, tuple[int, int, int]]:
    return {n: spec.color for n, spec in enumerate(course.rois, start=1)}


def build_dose(course: CourseSpec, uids: CourseUids, patient_id: str) -> DoseGrid:
    """The closed-form dose sampled at the grid points (canonical order), Gy."""
    x, y, z = (a.values for a in course.grid)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    return DoseGrid(
        dose_gy=np.asarray(course.dose.dose_at(xx, yy, zz), dtype=float),
        x_mm=x,
        y_mm=y,
        z_mm=z,
        frame_of_reference_uid=uids.frame,
        dose_type="PHYSICAL",
        summation_type="PLAN",
        units="GY",
        sop_instance_uids=(uids.dose,),
        referenced_plan_uids=(uids.plan,),
        patient_position="HFS",
        patient_id=patient_id,
        manufacturer=MANUFACTURER,
        tps_dvhs=build_tps_dvhs(course) if course.tps_dvhs else (),
    )


#: Bin width (Gy) of the planning-system DVHs written into a sample RT Dose.
TPS_DVH_BIN_GY = 0.1


def build_tps_dvhs(course: CourseSpec) -> tuple[TpsDvh, ...]:
    """The planning system's cumulative DVHs of every ROI but the body outline, as a planning
    system computes them independently of rtqa: the slab-model solid sampled on a fine lattice
    under the closed-form dose (:func:`rtqa.synthetic.reference.sampled_dvh`), in bins of
    :data:`TPS_DVH_BIN_GY` Gy from 0 Gy, volumes cc, with the samples' mean, min and max."""
    out = []
    for number, spec in enumerate(course.rois, start=1):
        if spec.interpreted_type == "EXTERNAL":
            continue
        ref = sampled_dvh(spec.solid, course.planes_mm, course.dose.dose_at)
        ascending = ref.doses_gy[::-1]
        edges = np.arange(0.0, ref.max_gy + TPS_DVH_BIN_GY, TPS_DVH_BIN_GY)
        at_least = ascending.size - np.searchsorted(ascending, edges, side="left")
        out.append(
            TpsDvh(
                roi_number=number,
                dose_gy=edges,
                volume_cc=at_least * ref.dv_cc,
                total_volume_cc=ref.volume_cc,
                mean_gy=ref.mean_gy,
                min_gy=float(ascending[0]),
                max_gy=ref.max_gy,
            )
        )
    return tuple(out)


def build_plan(case: CaseSpec, course: CourseSpec, uids: CourseUids, rois) -> Plan:
    target = next(r for r in rois if r.name == course.target_roi)
    treatment = [b for b in course.beams if b.delivery_type == "TREATMENT"]
    per_beam_gy = course.rx_gy / course.fractions / len(treatment)
    reference = DoseReference(
        number=1,
        structure_type="VOLUME",
        reference_type="TARGET",
        description=course.target_roi,
        roi_number=target.number,
        target_prescription_dose_gy=course.rx_gy,
        uid=make_uid("rtqa-synthetic", case.name, course.label, "dose-reference", 1),
    )
    group = FractionGroup(
        number=1,
        fractions_planned=course.fractions,
        beams=tuple(
            ReferencedBeam(b.number, b.meterset_mu, round(per_beam_gy, 4)) for b in treatment
        ),
        referenced_dose_reference_numbers=(1,),
        dose_reference_doses_gy=((1, course.rx_gy),),
    )
    beams = tuple(
        Beam(
            number=b.number,
            name=b.name,
            delivery_type=b.delivery_type,
            radiation_type="PHOTON",
            beam_type="STATIC",
        )
        for b in course.beams
    )
    return Plan(
        path="",
        sop_instance_uid=uids.plan,
        label=course.label,
        name=course.plan_name,
        description=course.description,
        intent=course.intent,
        patient_id=case.patient_id,
        patient_name=case.patient_name,
        study_instance_uid=uids.study,
        frame_of_reference_uid=uids.frame,
        referenced_structure_set_uid=uids.structure_set,
        approval_status="APPROVED",
        review_datetime=course.review_datetime,
        reviewer_name=course.reviewer,
        plan_datetime=course.plan_datetime,
        fraction_groups=(group,),
        beams=beams,
        dose_references=(reference,),
        manufacturer=MANUFACTURER,
        treatment_site=course.treatment_site,
    )


def build_records(
    case: CaseSpec, course: CourseSpec, uids: CourseUids
) -> tuple[TreatmentRecord, ...]:
    treatment = [b for b in course.beams if b.delivery_type == "TREATMENT"]
    return tuple(
        TreatmentRecord(
            path="",
            sop_instance_uid=make_uid("rtqa-synthetic", case.name, course.label, "record", n),
            referenced_plan_uid=uids.plan,
            fraction_number=n,
            delivered_at=when,
            beams=tuple(
                DeliveredBeam(b.number, b.meterset_mu, b.meterset_mu, "NORMAL") for b in treatment
            ),
            patient_id=case.patient_id,
            fraction_group=1,  # the plan's one fraction group, as treatment systems record it
        )
        for n, when in enumerate(course.fraction_datetimes, start=1)
    )


def build_course(case: CaseSpec, course: CourseSpec) -> BuiltCourse:
    uids = course_uids(case, course)
    rois = build_rois(course, uids.frame)
    structure_set = StructureSet(
        path="",
        sop_instance_uid=uids.structure_set,
        label=course.label[:16],
        frame_of_reference_uid=uids.frame,
        rois=rois,
        patient_id=case.patient_id,
        patient_name=case.patient_name,
        study_instance_uid=uids.study,
        referenced_series_uid=uids.ct_series,
        structure_set_datetime=course.plan_datetime - timedelta(days=1),
        manufacturer=MANUFACTURER,
    )
    return BuiltCourse(
        spec=course,
        header=course_header(case, course, uids),
        uids=uids,
        plan=build_plan(case, course, uids, rois),
        structure_set=structure_set,
        dose=build_dose(course, uids, case.patient_id),
        records=build_records(case, course, uids),
    )


def build_registration(case: CaseSpec) -> Registration | None:
    """A Spatial Registration in the current frame: identity for it, and for each other frame
    the matrix mapping that frame into the current one (PS3.3 C.20.2)."""
    if not case.frames:
        return None
    current = course_uids(case, case.current)
    matrices = {current.frame: np.eye(4)}
    for key, rigid in sorted(case.frames.items()):
        course = next(c for c in case.courses if c.frame_key == key)
        matrices[course_uids(case, course).frame] = rigid.matrix
    return Registration(
        path="",
        sop_instance_uid=make_uid("rtqa-synthetic", case.name, "registration"),
        frame_of_reference_uid=current.frame,
        matrices=matrices,
        matrix_types={uid: "RIGID" for uid in matrices},
        patient_id=case.patient_id,
    )
