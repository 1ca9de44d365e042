"""RT Plan writer and reader: round trip, prescription sources and the plan edge cases
(P1-P7, L7 of the DICOM edge-case notes)."""

from __future__ import annotations

from datetime import datetime

import pydicom
import pytest

from rtqa.dicom.common import RT_ION_PLAN, make_uid
from rtqa.dicom.plan import (
    SOURCE_BEAM_DOSE,
    SOURCE_DOSE_REFERENCE,
    SOURCE_FRACTION_GROUP_DOSE_REFERENCE,
    read_plan,
)
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.plan import write_plan
from rtqa.errors import DicomError
from rtqa.model import Beam, DoseReference, FractionGroup, Level, Plan, ReferencedBeam

HEADER = Header("RTQA-001", "Phantom^Spine", make_uid("study"), datetime(2024, 3, 1, 9, 30))


def make_plan(**changes) -> Plan:
    values = dict(
        path="",
        sop_instance_uid=make_uid("plan"),
        label="SPINE_T7",
        name="Spine T7 SBRT",
        intent="PALLIATIVE",
        frame_of_reference_uid=make_uid("frame"),
        referenced_structure_set_uid=make_uid("ss"),
        approval_status="APPROVED",
        review_datetime=datetime(2024, 3, 2, 14, 5, 7),
        reviewer_name="Physicist^A",
        plan_datetime=datetime(2024, 3, 1, 10, 0),
        beams=(
            Beam(1, "ARC1", beam_type="DYNAMIC"),
            Beam(2, "ARC2", beam_type="DYNAMIC"),
            Beam(3, "CBCT", delivery_type="SETUP"),
        ),
        fraction_groups=(
            FractionGroup(
                1,
                3,
                (ReferencedBeam(1, 1200.0, 5.0), ReferencedBeam(2, 1100.0, 5.0)),
                (1,),
            ),
        ),
        dose_references=(
            DoseReference(
                1, "VOLUME", "TARGET", "PTV_30", roi_number=4, target_prescription_dose_gy=30
            ),
            DoseReference(
                2,
                "VOLUME",
                "ORGAN_AT_RISK",
                "Cord",
                roi_number=2,
                organ_at_risk_maximum_dose_gy=21.9,
            ),
        ),
    )
    values.update(changes)
    return Plan(**values)


def write(tmp_path, plan: Plan, name: str = "RP.dcm", **kwargs) -> str:
    path = tmp_path / name
    write_plan(plan, path, HEADER, series_instance_uid=make_uid("plan-series"), **kwargs)
    return str(path)


def edit(path: str, change) -> str:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def test_round_trip_keeps_identity_approval_and_fraction_scheme(tmp_path):
    original = make_plan()
    plan = read_plan(write(tmp_path, original))
    assert plan.sop_instance_uid == original.sop_instance_uid
    assert (plan.label, plan.name, plan.intent) == ("SPINE_T7", "Spine T7 SBRT", "PALLIATIVE")
    assert plan.patient_id == "RTQA-001"
    assert plan.frame_of_reference_uid == original.frame_of_reference_uid
    assert plan.referenced_structure_set_uid == original.referenced_structure_set_uid
    assert plan.approval_status == "APPROVED"
    assert plan.review_datetime == datetime(2024, 3, 2, 14, 5, 7)
    assert plan.reviewer_name == "Physicist^A"
    assert plan.plan_datetime == datetime(2024, 3, 1, 10, 0)
    assert plan.fractions_planned == 3
    assert plan.fraction_groups[0].beams == (
        ReferencedBeam(1, 1200.0, 5.0),
        ReferencedBeam(2, 1100.0, 5.0),
    )
    assert plan.treatment_beam_numbers == frozenset({1, 2})
    assert [b.delivery_type for b in plan.beams] == ["TREATMENT", "TREATMENT", "SETUP"]
    assert plan.dose_references == original.dose_references


def test_prescription_from_target_dose_reference_with_its_roi(tmp_path):
    plan = read_plan(write(tmp_path, make_plan()))
    assert len(plan.prescriptions) == 1
    rx = plan.prescriptions[0]
    assert (rx.total_gy, rx.fractions, rx.roi_number, rx.dose_reference_number) == (30, 3, 4, 1)
    assert rx.dose_per_fraction_gy == pytest.approx(10.0)
    assert rx.source == SOURCE_DOSE_REFERENCE
    assert any(n.message == f"prescription read from {SOURCE_DOSE_REFERENCE}" for n in plan.notes)


def test_several_target_levels_are_all_kept_and_conflicts_flagged(tmp_path):
    # P2: a 70 Gy total and a 14 Gy per-beam item on the same ROI, plus a SIB level on ROI 5
    refs = (
        DoseReference(
            1, "VOLUME", "TARGET", "PTV total", roi_number=4, target_prescription_dose_gy=70
        ),
        DoseReference(
            2, "VOLUME", "TARGET", "beam 1", roi_number=4, target_prescription_dose_gy=14
        ),
        DoseReference(
            3, "VOLUME", "TARGET", "PTV low", roi_number=5, target_prescription_dose_gy=56
        ),
    )
    plan = read_plan(write(tmp_path, make_plan(dose_references=refs)))
    assert [(p.total_gy, p.roi_number) for p in plan.prescriptions] == [(70, 4), (14, 4), (56, 5)]
    conflicts = [n for n in plan.notes if "several target prescription doses" in n.message]
    assert len(conflicts) == 1
    assert "ROI 4" in conflicts[0].message and "(70, 14 Gy)" in conflicts[0].message


def test_prescription_from_fraction_group_dose_reference(tmp_path):
    refs = (DoseReference(1, "VOLUME", "TARGET", "PTV", roi_number=4),)
    group = FractionGroup(1, 5, (ReferencedBeam(1, 900.0, None),), (1,), ((1, 50.0),))
    plan = read_plan(write(tmp_path, make_plan(dose_references=refs, fraction_groups=(group,))))
    assert [(p.total_gy, p.fractions, p.roi_number, p.source) for p in plan.prescriptions] == [
        (50.0, 5, 4, SOURCE_FRACTION_GROUP_DOSE_REFERENCE)
    ]
    # P1: the TARGET dose reference without TargetPrescriptionDose is reported
    assert any("has no TargetPrescriptionDose" in n.message for n in plan.notes)


def test_prescription_from_beam_doses_excludes_setup_beams(tmp_path):
    group = FractionGroup(
        1,
        3,
        (
            ReferencedBeam(1, 1200.0, 4.5),
            ReferencedBeam(2, 1100.0, 5.5),
            ReferencedBeam(3, 2.0, 0.7),
        ),
    )
    plan = read_plan(write(tmp_path, make_plan(dose_references=(), fraction_groups=(group,))))
    (rx,) = plan.prescriptions
    assert rx.total_gy == pytest.approx((4.5 + 5.5) * 3)
    assert (rx.fractions, rx.source) == (3, SOURCE_BEAM_DOSE)
    assert any(n.level is Level.WARNING and "sum of BeamDose" in n.message for n in plan.notes)


def test_no_prescription_anywhere_is_unknown_not_invented(tmp_path):
    group = FractionGroup(1, 3, (ReferencedBeam(1, 1200.0, None),))
    refs = (DoseReference(1, "VOLUME", "TARGET", "PTV", roi_number=4),)
    plan = read_plan(write(tmp_path, make_plan(dose_references=refs, fraction_groups=(group,))))
    assert plan.prescriptions == ()
    assert any("prescription unknown" in n.message for n in plan.notes)


def test_missing_fraction_group_sequence_is_a_note_not_a_crash(tmp_path):
    path = edit(write(tmp_path, make_plan()), lambda ds: delattr(ds, "FractionGroupSequence"))
    plan = read_plan(path)
    assert plan.fraction_groups == ()
    assert plan.fractions_planned is None
    assert plan.prescriptions[0].total_gy == 30
    assert plan.prescriptions[0].fractions is None
    (note,) = [n for n in plan.notes if "FractionGroupSequence missing" in n.message]
    assert note.level is Level.WARNING and note.attribute == "FractionGroupSequence (300A,0070)"


def test_lenient_numbers_and_invalid_fraction_count(tmp_path):
    def pad(ds):
        ds.FractionGroupSequence[0].NumberOfFractionsPlanned = " 5 "
        ds.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset = "1.2e+03"

    plan = read_plan(edit(write(tmp_path, make_plan()), pad))
    assert plan.fractions_planned == 5
    assert plan.fraction_groups[0].beams[0].meterset == pytest.approx(1200.0)

    def zero(ds):
        ds.FractionGroupSequence[0].NumberOfFractionsPlanned = 0

    plan = read_plan(edit(write(tmp_path, make_plan(), "RP0.dcm"), zero))
    assert plan.fractions_planned is None
    assert any("is not >= 1" in n.message for n in plan.notes)


def test_beams_join_by_number_not_by_order(tmp_path):
    def reverse(ds):
        beams = ds.FractionGroupSequence[0].ReferencedBeamSequence
        ds.FractionGroupSequence[0].ReferencedBeamSequence = pydicom.Sequence(list(beams)[::-1])
        ds.FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber = 9

    plan = read_plan(edit(write(tmp_path, make_plan()), reverse))
    metersets = {b.beam_number: b.meterset for b in plan.fraction_groups[0].beams}
    assert metersets == {9: 1100.0, 1: 1200.0}
    assert any("beam number(s) 9 not in the plan" in n.message for n in plan.notes)


def test_ion_plan_is_read_for_prescription_and_beams(tmp_path):
    path = write(tmp_path, make_plan(), ion=True)
    assert pydicom.dcmread(path).SOPClassUID == RT_ION_PLAN
    plan = read_plan(path)
    assert [b.number for b in plan.beams] == [1, 2, 3]
    assert plan.beams[0].radiation_type == "PROTON"
    assert plan.prescriptions[0].total_gy == 30


def test_empty_type2_values_and_missing_approval(tmp_path):
    def blank(ds):
        ds.RTPlanLabel = ""
        ds.RTPlanDate = ""
        del ds.ApprovalStatus

    plan = read_plan(edit(write(tmp_path, make_plan()), blank))
    assert plan.label == "Spine T7 SBRT"  # falls back to RTPlanName, with a note
    assert any("RTPlanLabel empty" in n.message for n in plan.notes)
    assert plan.plan_datetime is None
    assert plan.approval_status is None


def test_unapproved_plan_and_other_objects_refused(tmp_path):
    plan = read_plan(write(tmp_path, make_plan(approval_status="UNAPPROVED")))
    assert plan.approval_status == "UNAPPROVED"
    assert plan.review_datetime is None

    path = edit(
        write(tmp_path, make_plan(), "X.dcm"), lambda ds: setattr(ds, "SOPClassUID", "1.2.3")
    )
    with pytest.raises(DicomError, match=r"not an RT Plan \(SOP Class UID 1\.2\.3\)") as info:
        read_plan(path)
    assert info.value.path == path


def test_fraction_groups_of_one_count_are_taken_together_and_said(tmp_path):
    """Two fraction groups of 3 fractions: the plan's count is 3 (groups delivered together),
    which the plan cannot confirm; the reader says so, and what sequential phases would mean."""
    beams = (ReferencedBeam(1, 1200.0, 5.0),)
    groups = (FractionGroup(1, 3, beams, (1,)), FractionGroup(2, 3, beams, (1,)))
    plan = read_plan(write(tmp_path, make_plan(fraction_groups=groups)))
    assert plan.fractions_planned == 3
    (note,) = [n for n in plan.notes if "fraction groups plan" in n.message]
    assert note.level is Level.WARNING
    assert note.message == (
        "2 fraction groups plan 3 fractions each: taken as delivered together, a plan of 3 "
        "fractions; if they are sequential phases (6 sessions), its fractionation and "
        "per-fraction limits are not those judged"
    )
    single = read_plan(write(tmp_path, make_plan(), name="RP.one.dcm"))
    assert not [n for n in single.notes if "fraction groups plan" in n.message]
