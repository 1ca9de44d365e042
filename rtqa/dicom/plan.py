"""Read an RT Plan or RT Ion Plan into a :class:`~rtqa.model.Plan`.

Prescriptions (total Gy over the plan's fractions) are derived by one explicit rule, first match:

1. ``DoseReferenceSequence``: every TARGET dose reference with a TargetPrescriptionDose, each
   with the ROI it points to (ReferencedROINumber);
2. ``FractionGroupSequence (ReferencedDoseReferenceSequence)``: TargetPrescriptionDose given per
   fraction group for a dose reference (taken as that group's total);
3. ``FractionGroupSequence (BeamDose)``: the sum of BeamDose (Gy per fraction, at the beams' dose
   specification points) over the group's TREATMENT beams times NumberOfFractionsPlanned.

The plan's notes say which source was used. A plan without FractionGroupSequence is read with the
fraction count unknown (a warning), never refused. The control points of each TREATMENT beam are
checked for integrity (warnings only; see :mod:`rtqa.dicom.control_points`).
"""

from __future__ import annotations

from collections import defaultdict

from pydicom.dataset import Dataset

from rtqa.dicom.common import (
    MAX_FRACTIONS,
    RT_ION_PLAN,
    RT_PLAN,
    lenient_value,
    optional_number,
    optional_str,
    parse_datetime,
    read_dataset,
    tag_name,
    whole_number,
)
from rtqa.dicom.control_points import control_point_notes
from rtqa.dicom.converters import converter_notes, converter_of
from rtqa.errors import DicomError
from rtqa.model import (
    Beam,
    DoseReference,
    FractionGroup,
    Level,
    Note,
    Plan,
    Prescription,
    ReferencedBeam,
)

SOURCE_DOSE_REFERENCE = "DoseReferenceSequence"
SOURCE_FRACTION_GROUP_DOSE_REFERENCE = "FractionGroupSequence (ReferencedDoseReferenceSequence)"
SOURCE_BEAM_DOSE = "FractionGroupSequence (BeamDose)"


def read_plan(path: str) -> Plan:
    """Read the RT Plan or RT Ion Plan at ``path`` (DicomError when it is neither)."""
    ds, notes = read_dataset(path, stop_before_pixels=True)
    return plan_from_dataset(ds, path, notes)


def plan_from_dataset(ds: Dataset, path: str, notes: list[Note] | None = None) -> Plan:
    """A :class:`Plan` from an already-read dataset (``notes``: from reading the file)."""
    notes = list(notes or [])
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in (RT_PLAN, RT_ION_PLAN):
        raise DicomError(
            f"not an RT Plan (SOP Class UID {sop_class or 'missing'})",
            path,
            tag_name("SOPClassUID"),
        )
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not uid:
        raise DicomError("RT Plan without a SOP Instance UID", path, tag_name("SOPInstanceUID"))
    label = optional_str(ds, "RTPlanLabel")
    if not label:
        label = optional_str(ds, "RTPlanName") or f"plan-{uid[-8:]}"
        notes.append(
            Note(
                Level.WARNING, f"RTPlanLabel empty; using '{label}'", path, tag_name("RTPlanLabel")
            )
        )
    notes += converter_notes(ds, path, "plan")
    ion = sop_class == RT_ION_PLAN
    beams = _beams(ds, ion, path, notes)
    dose_refs = _dose_references(ds, path, notes)
    groups = _fraction_groups(ds, path, notes)
    _check_fraction_counts(groups, path, notes)
    _check_beam_links(groups, beams, path, notes)
    prescriptions = _prescriptions(dose_refs, groups, beams, path, notes)
    ss_seq = ds.get("ReferencedStructureSetSequence") or []
    ss_uid = str(ss_seq[0].get("ReferencedSOPInstanceUID", "") or "") if ss_seq else ""
    status = optional_str(ds, "ApprovalStatus") or None
    return Plan(
        path=path,
        sop_instance_uid=uid,
        label=label,
        name=optional_str(ds, "RTPlanName"),
        description=optional_str(ds, "RTPlanDescription"),
        intent=optional_str(ds, "PlanIntent"),
        patient_id=optional_str(ds, "PatientID"),
        patient_name=optional_str(ds, "PatientName"),
        study_instance_uid=optional_str(ds, "StudyInstanceUID"),
        frame_of_reference_uid=optional_str(ds, "FrameOfReferenceUID") or None,
        referenced_structure_set_uid=ss_uid or None,
        approval_status=status,
        review_datetime=parse_datetime(ds.get("ReviewDate"), ds.get("ReviewTime")),
        reviewer_name=optional_str(ds, "ReviewerName"),
        plan_datetime=parse_datetime(ds.get("RTPlanDate"), ds.get("RTPlanTime")),
        fraction_groups=tuple(groups),
        beams=tuple(beams),
        dose_references=tuple(dose_refs),
        prescriptions=tuple(prescriptions),
        manufacturer=optional_str(ds, "Manufacturer"),
        software_versions=optional_str(ds, "SoftwareVersions"),
        treatment_site=optional_str(ds, "TreatmentSite"),
        converter=converter_of(ds),
        patient_positions=tuple(
            str(item.get("PatientPosition", "") or "").strip().upper()
            for item in ds.get("PatientSetupSequence") or []
            if str(item.get("PatientPosition", "") or "").strip()
        ),
        notes=tuple(notes),
    )


def _int(item: Dataset, keyword: str) -> int | None:
    """An IS attribute read leniently (padding, '3.0'); None when absent or not a number."""
    return whole_number(lenient_value(item, keyword))


def _beams(ds: Dataset, ion: bool, path: str, notes: list[Note]) -> list[Beam]:
    keyword = "IonBeamSequence" if ion else "BeamSequence"
    items = ds.get(keyword) or []
    if not items:
        if ds.get("ApplicationSetupSequence"):
            notes.append(
                Note(Level.WARNING, "brachytherapy plan: application setups not analysed", path)
            )
        else:
            notes.append(Note(Level.WARNING, "plan has no beams", path, tag_name(keyword)))
    beams = []
    for index, item in enumerate(items):
        number = _int(item, "BeamNumber")
        if number is None:
            raise DicomError(
                f"beam item {index + 1} has no BeamNumber", path, tag_name("BeamNumber")
            )
        delivery = optional_str(item, "TreatmentDeliveryType") or "TREATMENT"
        if delivery == "TREATMENT":
            notes.extend(control_point_notes(item, ion, path))
        beams.append(
            Beam(
                number=number,
                name=optional_str(item, "BeamName"),
                delivery_type=delivery,
                radiation_type=optional_str(item, "RadiationType"),
                beam_type=optional_str(item, "BeamType"),
            )
        )
    return beams


def _dose_references(ds: Dataset, path: str, notes: list[Note]) -> list[DoseReference]:
    refs = []
    for index, item in enumerate(ds.get("DoseReferenceSequence") or []):
        number = _int(item, "DoseReferenceNumber")
        if number is None:
            number = index + 1
            notes.append(
                Note(
                    Level.WARNING,
                    f"dose reference item {index + 1} has no number; numbered {number}",
                    path,
                    tag_name("DoseReferenceNumber"),
                )
            )
        where = f"dose reference {number}"
        refs.append(
            DoseReference(
                number=number,
                structure_type=optional_str(item, "DoseReferenceStructureType"),
                reference_type=optional_str(item, "DoseReferenceType"),
                description=optional_str(item, "DoseReferenceDescription"),
                roi_number=_int(item, "ReferencedROINumber"),
                target_prescription_dose_gy=optional_number(
                    item, "TargetPrescriptionDose", path, notes, where
                ),
                delivery_maximum_dose_gy=optional_number(
                    item, "DeliveryMaximumDose", path, notes, where
                ),
                target_minimum_dose_gy=optional_number(
                    item, "TargetMinimumDose", path, notes, where
                ),
                organ_at_risk_maximum_dose_gy=optional_number(
                    item, "OrganAtRiskMaximumDose", path, notes, where
                ),
                uid=optional_str(item, "DoseReferenceUID") or None,
            )
        )
    return refs


def _fraction_groups(ds: Dataset, path: str, notes: list[Note]) -> list[FractionGroup]:
    items = ds.get("FractionGroupSequence") or []
    if not items:
        notes.append(
            Note(
                Level.WARNING,
                "FractionGroupSequence missing: number of fractions unknown",
                path,
                tag_name("FractionGroupSequence"),
            )
        )
    groups = []
    for index, item in enumerate(items):
        number = _int(item, "FractionGroupNumber") or index + 1
        where = f"fraction group {number}"
        fractions = _int(item, "NumberOfFractionsPlanned")
        if fractions is not None and not 1 <= fractions <= MAX_FRACTIONS:
            bound = "not >= 1" if fractions < 1 else f"more than {MAX_FRACTIONS}"
            notes.append(
                Note(
                    Level.WARNING,
                    f"fraction group {number}: NumberOfFractionsPlanned {fractions} is {bound}; "
                    "number of fractions unknown",
                    path,
                    tag_name("NumberOfFractionsPlanned"),
                )
            )
            fractions = None
        elif fractions is None:
            written = lenient_value(item, "NumberOfFractionsPlanned")
            said = "missing" if written in (None, "") else f"{str(written).strip()!r}, not a count"
            notes.append(
                Note(
                    Level.WARNING,
                    f"fraction group {number}: NumberOfFractionsPlanned {said}",
                    path,
                    tag_name("NumberOfFractionsPlanned"),
                )
            )
        beams = tuple(
            ReferencedBeam(
                beam_number=n,
                meterset=optional_number(b, "BeamMeterset", path, notes, f"{where} beam {n}"),
                beam_dose_gy=optional_number(b, "BeamDose", path, notes, f"{where} beam {n}"),
            )
            for b in item.get("ReferencedBeamSequence") or []
            if (n := _int(b, "ReferencedBeamNumber")) is not None
        )
        ref_numbers: list[int] = []
        ref_doses: list[tuple[int, float]] = []
        for ref in item.get("ReferencedDoseReferenceSequence") or []:
            ref_number = _int(ref, "ReferencedDoseReferenceNumber")
            if ref_number is None:
                continue
            ref_numbers.append(ref_number)
            dose = optional_number(
                ref, "TargetPrescriptionDose", path, notes, f"{where} dose reference {ref_number}"
            )
            if dose is not None:
                ref_doses.append((ref_number, dose))
        groups.append(
            FractionGroup(
                number=number,
                fractions_planned=fractions,
                beams=beams,
                referenced_dose_reference_numbers=tuple(ref_numbers),
                dose_reference_doses_gy=tuple(ref_doses),
            )
        )
    return groups


def _check_beam_links(
    groups: list[FractionGroup], beams: list[Beam], path: str, notes: list[Note]
) -> None:
    """Fraction-group beams join plan beams by number (never by order)."""
    known = {b.number for b in beams}
    for group in groups:
        unknown = sorted({b.beam_number for b in group.beams} - known)
        if unknown:
            notes.append(
                Note(
                    Level.WARNING,
                    f"fraction group {group.number} references beam number(s) "
                    f"{', '.join(map(str, unknown))} not in the plan's beams",
                    path,
                    tag_name("ReferencedBeamNumber"),
                )
            )


def _check_fraction_counts(groups: list[FractionGroup], path: str, notes: list[Note]) -> None:
    """A WARNING when fraction groups plan different numbers of fractions: the plan's fraction
    count is then unknown (see :attr:`rtqa.model.Plan.fractions_planned`); and when several
    plan the same number: it is taken as the plan's, their fractions as delivered together,
    which the plan cannot confirm (sequential phases would double the sessions)."""
    counted = [(g.number, g.fractions_planned) for g in groups if g.fractions_planned]
    if len(counted) > 1 and len({n for _, n in counted}) == 1:
        n = counted[0][1]
        notes.append(
            Note(
                Level.WARNING,
                f"{len(counted)} fraction groups plan {n} fractions each: taken as delivered "
                f"together, a plan of {n} fractions; if they are sequential phases "
                f"({len(counted) * n} sessions), its fractionation and per-fraction limits are "
                "not those judged",
                path,
                tag_name("NumberOfFractionsPlanned"),
            )
        )
    if len({n for _, n in counted}) > 1:
        listed = ", ".join(f"group {g}: {n}" for g, n in counted)
        notes.append(
            Note(
                Level.WARNING,
                f"fraction groups plan different numbers of fractions ({listed}): the plan's "
                "fraction count is unknown, so are its EQD2 and per-fraction limits (one plan "
                "per fractionation can be checked)",
                path,
                tag_name("NumberOfFractionsPlanned"),
            )
        )


def _fractions_for(number: int, groups: list[FractionGroup]) -> int | None:
    """Fractions of the group delivering dose reference ``number`` (or of the only group)."""
    delivering = [g for g in groups if g.lists_dose_reference(number)]
    if len(delivering) == 1:
        return delivering[0].fractions_planned
    if len(groups) == 1:
        return groups[0].fractions_planned
    return None


def _prescriptions(
    refs: list[DoseReference],
    groups: list[FractionGroup],
    beams: list[Beam],
    path: str,
    notes: list[Note],
) -> list[Prescription]:
    by_number = {r.number: r for r in refs}
    found = _from_dose_references(refs, groups, path, notes)
    source = SOURCE_DOSE_REFERENCE
    if not found:
        source = SOURCE_FRACTION_GROUP_DOSE_REFERENCE
        for group in groups:
            for number, dose in group.dose_reference_doses_gy:
                if dose > 0:
                    ref = by_number.get(number)
                    found.append(
                        Prescription(
                            total_gy=dose,
                            fractions=group.fractions_planned,
                            source=source,
                            roi_number=ref.roi_number if ref else None,
                            dose_reference_number=number,
                            description=ref.description if ref else "",
                        )
                    )
    if not found:
        source = SOURCE_BEAM_DOSE
        found = _from_beam_doses(groups, beams, path, notes)
    if found:
        notes.append(Note(Level.INFO, f"prescription read from {source}", path))
    else:
        notes.append(
            Note(
                Level.WARNING,
                "no prescription dose in the plan (no TargetPrescriptionDose of a TARGET dose "
                "reference, no BeamDose): prescription unknown",
                path,
                tag_name("TargetPrescriptionDose"),
            )
        )
    return found


def _from_dose_references(
    refs: list[DoseReference], groups: list[FractionGroup], path: str, notes: list[Note]
) -> list[Prescription]:
    found: list[Prescription] = []
    doses_by_roi: dict[int | None, set[float]] = defaultdict(set)
    for ref in refs:
        if ref.reference_type != "TARGET":
            continue
        dose = ref.target_prescription_dose_gy
        if dose is None or dose <= 0:
            notes.append(
                Note(
                    Level.WARNING,
                    f"TARGET dose reference {ref.number} ('{ref.description}') has no "
                    "TargetPrescriptionDose",
                    path,
                    tag_name("TargetPrescriptionDose"),
                )
            )
            continue
        doses_by_roi[ref.roi_number].add(dose)
        found.append(
            Prescription(
                total_gy=dose,
                fractions=_fractions_for(ref.number, groups),
                source=SOURCE_DOSE_REFERENCE,
                roi_number=ref.roi_number,
                dose_reference_number=ref.number,
                description=ref.description,
            )
        )
    for roi, doses in doses_by_roi.items():
        if len(doses) > 1 and roi is not None:
            listed = ", ".join(f"{d:g}" for d in sorted(doses, reverse=True))
            notes.append(
                Note(
                    Level.WARNING,
                    f"ROI {roi} has several target prescription doses ({listed} Gy); "
                    "the prescription to judge must be chosen explicitly",
                    path,
                    tag_name("TargetPrescriptionDose"),
                )
            )
    return found


def _from_beam_doses(
    groups: list[FractionGroup], beams: list[Beam], path: str, notes: list[Note]
) -> list[Prescription]:
    treatment = {b.number for b in beams if b.delivery_type == "TREATMENT"}
    found = []
    for group in groups:
        doses = [b.beam_dose_gy for b in group.beams if b.beam_number in treatment]
        if not doses or all(d is None for d in doses):
            continue
        if any(d is None for d in doses) or group.fractions_planned is None:
            notes.append(
                Note(
                    Level.WARNING,
                    f"fraction group {group.number}: BeamDose or fraction count incomplete; "
                    "no prescription derived from beam doses",
                    path,
                    tag_name("BeamDose"),
                )
            )
            continue
        per_fraction = float(sum(d for d in doses if d is not None))
        if per_fraction <= 0:
            continue
        found.append(
            Prescription(
                total_gy=per_fraction * group.fractions_planned,
                fractions=group.fractions_planned,
                source=SOURCE_BEAM_DOSE,
                description=f"sum of BeamDose of fraction group {group.number}",
            )
        )
        notes.append(
            Note(
                Level.WARNING,
                f"fraction group {group.number}: prescription {per_fraction:g} Gy x "
                f"{group.fractions_planned} taken from the sum of BeamDose (dose at the beams' "
                "dose specification points); no TargetPrescriptionDose in the plan",
                path,
                tag_name("BeamDose"),
            )
        )
    return found
