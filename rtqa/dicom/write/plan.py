"""Write an RT Plan (or RT Ion Plan) from a :class:`~rtqa.model.Plan`.

What is written: RT General Plan (label, name, date, intent, geometry, referenced structure set),
Approval (status, review date/time/reviewer), RT Prescription (DoseReferenceSequence), RT Fraction
Scheme (fraction groups with beam metersets (MU) and beam doses (Gy per fraction), and the dose
references each group delivers), RT Patient Setup and RT Beams (or RT Ion Beams) with two control
points per beam: the smallest beam description the standard accepts. Doses are in Gy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import format_number_as_ds

from rtqa.dicom.common import RT_ION_PLAN, RT_PLAN
from rtqa.dicom.write.base import Header, new_dataset, save
from rtqa.model import Beam, DoseReference, FractionGroup, Plan


def write_plan(
    plan: Plan,
    path: str | Path,
    header: Header,
    *,
    series_instance_uid: str,
    series_number: int = 1,
    sop_instance_uid: str | None = None,
    ion: bool = False,
    isocenter_mm: Sequence[float] = (0.0, 0.0, 0.0),
    nominal_energy_mv: float = 6.0,
    treatment_machine: str = "RTQA_LINAC",
    patient_position: str = "HFS",
    content_datetime: datetime | None = None,
) -> Path:
    """Write ``plan`` as an RT Plan (RT Ion Plan when ``ion``) to ``path`` and return the path.

    ``sop_instance_uid`` defaults to ``plan.sop_instance_uid``. Beams listed in a fraction group
    but absent from ``plan.beams`` are written as static TREATMENT beams. Gantry angles are spread
    evenly over the treatment beams around ``isocenter_mm`` (mm).
    """
    when = content_datetime or plan.plan_datetime or header.study_datetime
    ds = new_dataset(
        header,
        sop_class_uid=RT_ION_PLAN if ion else RT_PLAN,
        sop_instance_uid=sop_instance_uid or plan.sop_instance_uid,
        modality="RTPLAN",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        frame_of_reference_uid=plan.frame_of_reference_uid,
        content_datetime=when,
    )
    ds.InstanceNumber = 1
    ds.RTPlanLabel = plan.label
    ds.RTPlanName = plan.name
    ds.RTPlanDescription = plan.description
    if plan.plan_datetime is not None:
        ds.RTPlanDate = plan.plan_datetime.strftime("%Y%m%d")
        ds.RTPlanTime = plan.plan_datetime.strftime("%H%M%S")
    else:
        ds.RTPlanDate = ""
        ds.RTPlanTime = ""
    if plan.intent:
        ds.PlanIntent = plan.intent
    if plan.treatment_site:
        ds.TreatmentSite = plan.treatment_site
    if plan.referenced_structure_set_uid:
        ds.RTPlanGeometry = "PATIENT"
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
        ref.ReferencedSOPInstanceUID = plan.referenced_structure_set_uid
        ds.ReferencedStructureSetSequence = DicomSequence([ref])
    else:
        ds.RTPlanGeometry = "TREATMENT_DEVICE"
    _write_approval(ds, plan)
    if plan.dose_references:
        ds.DoseReferenceSequence = DicomSequence(
            [_dose_reference_item(d) for d in plan.dose_references]
        )
    beams = _all_beams(plan)
    if plan.fraction_groups:
        ds.FractionGroupSequence = DicomSequence(
            [_fraction_group_item(g) for g in plan.fraction_groups]
        )
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = patient_position
    ds.PatientSetupSequence = DicomSequence([setup])
    treatment = [b for b in beams if b.delivery_type == "TREATMENT"]
    angles = {b.number: (360.0 * i / max(len(treatment), 1)) % 360.0 for i, b in enumerate(beams)}
    items = [
        _beam_item(b, ion, angles[b.number], isocenter_mm, nominal_energy_mv, treatment_machine)
        for b in beams
    ]
    if ion:
        ds.IonBeamSequence = DicomSequence(items)
    else:
        ds.BeamSequence = DicomSequence(items)
    return save(ds, path)


def _write_approval(ds: Dataset, plan: Plan) -> None:
    if plan.approval_status is None:
        return
    ds.ApprovalStatus = plan.approval_status
    if plan.approval_status in ("APPROVED", "REJECTED"):
        when = plan.review_datetime
        ds.ReviewDate = when.strftime("%Y%m%d") if when else ""
        ds.ReviewTime = when.strftime("%H%M%S") if when else ""
        ds.ReviewerName = plan.reviewer_name


def _dose_reference_item(ref: DoseReference) -> Dataset:
    item = Dataset()
    item.DoseReferenceNumber = ref.number
    if ref.uid:
        item.DoseReferenceUID = ref.uid
    item.DoseReferenceStructureType = ref.structure_type
    item.DoseReferenceDescription = ref.description
    item.DoseReferenceType = ref.reference_type
    if ref.roi_number is not None:
        item.ReferencedROINumber = ref.roi_number
    for keyword, value in (
        ("DeliveryMaximumDose", ref.delivery_maximum_dose_gy),
        ("TargetMinimumDose", ref.target_minimum_dose_gy),
        ("TargetPrescriptionDose", ref.target_prescription_dose_gy),
        ("OrganAtRiskMaximumDose", ref.organ_at_risk_maximum_dose_gy),
    ):
        if value is not None:
            setattr(item, keyword, _ds(value))
    return item


def _fraction_group_item(group: FractionGroup) -> Dataset:
    item = Dataset()
    item.FractionGroupNumber = group.number
    item.NumberOfFractionsPlanned = group.fractions_planned
    item.NumberOfBeams = len(group.beams)
    item.NumberOfBrachyApplicationSetups = 0
    refs: list[Dataset] = []
    doses = dict(group.dose_reference_doses_gy)
    numbers = list(group.referenced_dose_reference_numbers)
    numbers += [n for n in doses if n not in numbers]
    for number in numbers:
        ref = Dataset()
        ref.ReferencedDoseReferenceNumber = number
        if number in doses:
            ref.TargetPrescriptionDose = _ds(doses[number])
        refs.append(ref)
    if refs:
        item.ReferencedDoseReferenceSequence = DicomSequence(refs)
    beams: list[Dataset] = []
    for beam in group.beams:
        ref = Dataset()
        ref.ReferencedBeamNumber = beam.beam_number
        if beam.beam_dose_gy is not None:
            ref.BeamDose = _ds(beam.beam_dose_gy)
        if beam.meterset is not None:
            ref.BeamMeterset = _ds(beam.meterset)
        beams.append(ref)
    item.ReferencedBeamSequence = DicomSequence(beams)
    return item


def _all_beams(plan: Plan) -> list[Beam]:
    """The plan's beams plus a static treatment beam for each number only a group lists."""
    beams = list(plan.beams)
    known = {b.number for b in beams}
    for group in plan.fraction_groups:
        for ref in group.beams:
            if ref.beam_number not in known:
                beams.append(Beam(number=ref.beam_number, name=f"B{ref.beam_number}"))
                known.add(ref.beam_number)
    return sorted(beams, key=lambda b: b.number)


def _beam_item(
    beam: Beam,
    ion: bool,
    gantry_deg: float,
    isocenter_mm: Sequence[float],
    energy: float,
    machine: str,
) -> Dataset:
    item = Dataset()
    item.BeamNumber = beam.number
    item.BeamName = beam.name or f"B{beam.number}"
    item.BeamType = beam.beam_type or "STATIC"
    item.RadiationType = beam.radiation_type or ("PROTON" if ion else "PHOTON")
    item.TreatmentDeliveryType = beam.delivery_type
    item.TreatmentMachineName = machine
    item.PrimaryDosimeterUnit = "MU"
    item.NumberOfWedges = 0
    item.NumberOfCompensators = 0
    item.NumberOfBoli = 0
    item.NumberOfBlocks = 0
    item.FinalCumulativeMetersetWeight = _ds(1.0)
    item.NumberOfControlPoints = 2
    item.ReferencedPatientSetupNumber = 1
    first = Dataset()
    first.ControlPointIndex = 0
    first.NominalBeamEnergy = _ds(energy)
    first.GantryAngle = _ds(gantry_deg)
    first.GantryRotationDirection = "NONE"
    first.BeamLimitingDeviceAngle = _ds(0.0)
    first.BeamLimitingDeviceRotationDirection = "NONE"
    first.PatientSupportAngle = _ds(0.0)
    first.PatientSupportRotationDirection = "NONE"
    first.IsocenterPosition = [_ds(v) for v in isocenter_mm]
    first.CumulativeMetersetWeight = _ds(0.0)
    last = Dataset()
    last.ControlPointIndex = 1
    last.CumulativeMetersetWeight = _ds(1.0)
    if ion:
        item.ScanMode = "MODULATED"
        item.NumberOfRangeShifters = 0
        item.NumberOfLateralSpreadingDevices = 0
        item.NumberOfRangeModulators = 0
        item.PatientSupportType = "TABLE"
        first.SnoutPosition = 300.0
        item.IonControlPointSequence = DicomSequence([first, last])
    else:
        jaws_x = Dataset()
        jaws_x.RTBeamLimitingDeviceType = "ASYMX"
        jaws_x.LeafJawPositions = [_ds(-20.0), _ds(20.0)]
        jaws_y = Dataset()
        jaws_y.RTBeamLimitingDeviceType = "ASYMY"
        jaws_y.LeafJawPositions = [_ds(-20.0), _ds(20.0)]
        first.BeamLimitingDevicePositionSequence = DicomSequence([jaws_x, jaws_y])
        devices = []
        for name in ("ASYMX", "ASYMY"):
            device = Dataset()
            device.RTBeamLimitingDeviceType = name
            device.NumberOfLeafJawPairs = 1
            devices.append(device)
        item.BeamLimitingDeviceSequence = DicomSequence(devices)
        item.ControlPointSequence = DicomSequence([first, last])
    return item


def _ds(value: float) -> str:
    """A DS string of at most 16 characters."""
    return format_number_as_ds(float(value))
