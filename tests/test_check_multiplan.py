"""Courses of several plans: organs on the summed dose (physical or EQD2), windows over all plans,
--separate."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from rtqa.check import CheckOptions, run_check
from rtqa.dicom.dose import read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dvh import structure_dvh
from rtqa.model import Status
from rtqa.radiobiology import eqd2

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "spine_3fx"
DAY = datetime(2024, 5, 1)


def two_plan_case(tmp_path: Path, fractions_b: int = 3, day_shift: int = 1) -> Path:
    """spine_3fx plus a copy of its plan (same structure set, same dose grid) with
    ``fractions_b`` fractions, delivered ``day_shift`` days after each fraction of the first."""
    out = tmp_path / "course"
    out.mkdir()
    for name in ("RP", "RS", "RD"):
        shutil.copy(SAMPLE / f"{name}.SPINE3FX.dcm", out)
    for i in (1, 2, 3):
        shutil.copy(SAMPLE / f"RT.SPINE3FX.fx{i}.dcm", out)
    plan = pydicom.dcmread(SAMPLE / "RP.SPINE3FX.dcm")
    uid = generate_uid()
    plan.SOPInstanceUID = uid
    plan.file_meta.MediaStorageSOPInstanceUID = uid
    plan.RTPlanLabel = "SPINEBOOST"
    plan.FractionGroupSequence[0].NumberOfFractionsPlanned = fractions_b
    plan.save_as(out / "RP.B.dcm")
    dose = pydicom.dcmread(SAMPLE / "RD.SPINE3FX.dcm")
    dose.SOPInstanceUID = generate_uid()
    dose.file_meta.MediaStorageSOPInstanceUID = dose.SOPInstanceUID
    dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = uid
    dose.save_as(out / "RD.B.dcm")
    for i in range(1, fractions_b + 1):
        rec = pydicom.dcmread(SAMPLE / f"RT.SPINE3FX.fx{min(i, 3)}.dcm")
        rec.SOPInstanceUID = generate_uid()
        rec.file_meta.MediaStorageSOPInstanceUID = rec.SOPInstanceUID
        rec.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = uid
        when = pydicom.valuerep.DA(rec.TreatmentDate)
        rec.TreatmentDate = (when + timedelta(days=day_shift + 2 * max(i - 3, 0))).strftime(
            "%Y%m%d"
        )
        rec.CurrentFractionNumber = i
        rec.save_as(out / f"RT.B.fx{i}.dcm")
    return out


def cord_shifted_copy(source: Path, target: Path, dz_mm: float) -> pydicom.Dataset:
    """A copy of structure set ``source`` under a new UID with its cord moved ``dz_mm`` along z
    (as another plan's CT contoured around its own level), written to ``target``."""
    rs = pydicom.dcmread(source)
    rs.SOPInstanceUID = rs.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    cord_number = next(
        int(r.ROINumber) for r in rs.StructureSetROISequence if r.ROIName == "SpinalCord"
    )
    (cord_item,) = [i for i in rs.ROIContourSequence if int(i.ReferencedROINumber) == cord_number]
    for contour in cord_item.ContourSequence:
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        points[:, 2] += dz_mm
        contour.ContourData = [f"{v:.6f}" for v in points.reshape(-1)]
    rs.save_as(target)
    return rs


def organ(result, roi, metric):
    return next(
        f for f in result.findings if f.group == "organ" and f.roi == roi and f.metric == metric
    )


@pytest.fixture(scope="module")
def single():
    (result,) = run_check([str(SAMPLE)], CheckOptions())
    return result


def test_physical_sum_of_plans_with_equal_fraction_counts(tmp_path, single):
    (result,) = run_check([str(two_plan_case(tmp_path))], CheckOptions())
    assert len(result.plans) == 2
    one = organ(single, "SpinalCord", "D0.03cc[Gy]").value
    cord = organ(result, "SpinalCord", "D0.03cc[Gy]")
    # the same dose twice on the same grid: every DVH dose doubles exactly
    assert cord.value == pytest.approx(2 * one, rel=1e-9)
    assert cord.status is Status.MAJOR and "physical sum of 2 plans" in cord.message
    # targets are judged on their own plan's dose (one PTV, owned by the plan that references it)
    targets = [f for f in result.findings if f.group == "target"]
    assert targets and all(f.value == organ_value(single, f) for f in targets)
    assert result.exit_code == 1


def organ_value(result, finding):
    return next(
        f.value for f in result.findings if f.group == finding.group and f.metric == finding.metric
    )


def test_eqd2_sum_when_fraction_counts_differ(tmp_path, single):
    (result,) = run_check([str(two_plan_case(tmp_path, fractions_b=5))], CheckOptions())
    d = organ(single, "SpinalCord", "D0.03cc[Gy]").value
    cord = organ(result, "SpinalCord", "D0.03cc[Gy]")
    ab = 2.0  # NRG-BR002's SpinalCord alpha/beta (Sahgal 2012)
    want = float(eqd2(d, 3, ab) + eqd2(d, 5, ab))
    assert cord.value == pytest.approx(want, rel=2e-3)
    assert cord.limits["limit"].startswith("<= ")
    assert float(cord.limits["limit"].split()[1]) == pytest.approx(
        float(eqd2(21.9, 3, ab)), rel=1e-5
    )
    assert "EQD2" in cord.message and "alpha/beta 2 Gy" in cord.message


def test_no_eqd2_sum_when_a_plans_fraction_groups_differ_in_count(tmp_path):
    """Plan B gains a second fraction group of 5 fractions: its count is unknown, so the plans
    cannot be summed in EQD2 and the finding says which plan and why."""
    import copy

    case = two_plan_case(tmp_path, fractions_b=5)
    plan = pydicom.dcmread(case / "RP.B.dcm")
    group = copy.deepcopy(plan.FractionGroupSequence[0])
    group.FractionGroupNumber, group.NumberOfFractionsPlanned = 2, 3
    plan.FractionGroupSequence.append(group)
    plan.save_as(case / "RP.B.dcm")
    (result,) = run_check([str(case)], CheckOptions())
    (ne,) = [f for f in result.findings if f.group == "organ" and f.rule == "dose_sum"]
    assert ne.status is Status.NOT_EVALUABLE
    assert ne.message == (
        "the fraction count of a plan of the course is unknown ('SPINEBOOST': the plan's "
        "fraction groups state different numbers of fractions (3, 5)): no EQD2 sum possible"
    )


def test_alpha_beta_option_and_separate(tmp_path):
    case = two_plan_case(tmp_path, fractions_b=5)
    (result,) = run_check([str(case)], CheckOptions(alpha_beta=2.5))
    # --alpha-beta serves organs the protocol gives none (the oesophagus), not the cord (2 Gy)
    assert "(alpha/beta 2.5 Gy)" in organ(result, "Esophagus", "D0.03cc[Gy]").message
    assert "(alpha/beta 2 Gy)" in organ(result, "SpinalCord", "D0.03cc[Gy]").message
    (default,) = run_check([str(case)], CheckOptions())
    assert "(alpha/beta 3 Gy)" in organ(default, "Esophagus", "D0.03cc[Gy]").message
    separate = run_check([str(case)], CheckOptions(separate=True))
    assert len(separate) == 2
    assert {r.course_id for r in separate} == {p.case_id for p in result.plans}


def test_window_rule_spans_both_plans(tmp_path):
    (result,) = run_check([str(two_plan_case(tmp_path, day_shift=20))], CheckOptions())
    span = next(f for f in result.findings if f.rule == "completion_window")
    assert span.value == 24 and span.status is Status.MAJOR


def move_plan_b_to_another_frame(case: Path, shift_mm: tuple[float, float, float]) -> str:
    """Put plan B of ``two_plan_case`` (plan, its own structure set and dose) in a new frame of
    reference whose coordinates are the first frame's plus ``shift_mm``, and write a spatial
    registration in the first frame that lists only the new frame (its own frame implied)."""
    from rtqa.dicom.write.base import Header
    from rtqa.dicom.write.registration import write_registration
    from rtqa.geometry.transform import translation_matrix
    from rtqa.model import Registration

    frame = generate_uid()
    shift = np.asarray(shift_mm, dtype=float)
    rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    first = str(rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    rs.SOPInstanceUID = rs.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = frame
    for roi in rs.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = frame
    for item in rs.ROIContourSequence:
        for contour in item.ContourSequence:
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3) + shift
            contour.ContourData = [f"{v:.6f}" for v in points.reshape(-1)]
    rs.save_as(case / "RS.B.dcm")
    plan = pydicom.dcmread(case / "RP.B.dcm")
    plan.FrameOfReferenceUID = frame
    plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = rs.SOPInstanceUID
    plan.save_as(case / "RP.B.dcm")
    dose = pydicom.dcmread(case / "RD.B.dcm")
    dose.FrameOfReferenceUID = frame
    dose.ImagePositionPatient = [f"{v:.6f}" for v in np.add(dose.ImagePositionPatient, shift)]
    dose.save_as(case / "RD.B.dcm")
    # frame B points into the first frame: subtract the shift
    reg = Registration("", generate_uid(), first, {frame: translation_matrix(-shift)})
    header = Header(str(rs.PatientID), str(rs.PatientName), str(rs.StudyInstanceUID), DAY)
    write_registration(reg, case / "RE.B.dcm", header, series_instance_uid=generate_uid())
    return frame


def test_plans_in_two_frames_are_summed_through_the_registration(tmp_path, single):
    case = two_plan_case(tmp_path)
    frame = move_plan_b_to_another_frame(case, (5.0, -7.5, 10.0))
    (result,) = run_check([str(case)], CheckOptions())
    cord = organ(result, "SpinalCord", "D0.03cc[Gy]")
    # whole-voxel shifts: plan B's dose pulled back through the registration lands on the
    # first grid's nodes, so the sum is the sample dose twice
    assert cord.value == pytest.approx(2 * organ(single, "SpinalCord", "D0.03cc[Gy]").value, 1e-9)
    assert "physical sum of 2 plans" in cord.message
    assert "beyond" not in cord.message  # plan B's own cord, mapped back, is plan A's
    (summed,) = [f.message for f in result.findings if f.rule == "dose_sum"]
    assert summed.startswith("dose of 'SPINEBOOST' resampled onto the grid of 'SPINE3FX'")
    assert f"mapped into {frame} by spatial registration" in summed


def test_plans_summed_through_a_contradicted_registration_ask_for_a_check(tmp_path, single):
    """A second registration maps plan B's frame 4 mm away from the first: the sum still uses
    the first (as before) but, as for a prior course, the dose_sum finding is a minor 'check the
    registration' instead of information."""
    from rtqa.dicom.write.base import Header
    from rtqa.dicom.write.registration import write_registration
    from rtqa.geometry.transform import translation_matrix
    from rtqa.model import Registration

    case = two_plan_case(tmp_path)
    frame = move_plan_b_to_another_frame(case, (5.0, -7.5, 10.0))
    (agreed,) = [
        f for f in run_check([str(case)], CheckOptions())[0].findings if f.rule == "dose_sum"
    ]
    assert agreed.status is Status.INFO
    rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    first = str(rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    other = Registration("", generate_uid(), first, {frame: translation_matrix((-1.0, 7.5, -10.0))})
    header = Header(str(rs.PatientID), str(rs.PatientName), str(rs.StudyInstanceUID), DAY)
    write_registration(other, case / "RE.C.dcm", header, series_instance_uid=generate_uid())
    (result,) = run_check([str(case)], CheckOptions())
    (summed,) = [f for f in result.findings if f.rule == "dose_sum"]
    assert summed.status is Status.MINOR
    assert "differently" in summed.message
    assert summed.message.endswith("; check the registration: the summed organ doses rest on it")
    cord = organ(result, "SpinalCord", "D0.03cc[Gy]")
    assert cord.value == pytest.approx(2 * organ(single, "SpinalCord", "D0.03cc[Gy]").value, 1e-9)


def test_an_organ_another_plan_contours_further_is_not_judged_on_the_first_contour_alone(
    tmp_path,
):
    """Plan B brings its own structure set (same frame) whose cord runs 30 mm further up, as
    when each lesion's CT is contoured around its own level. The summed dose was judged on plan
    A's cord alone, though B's part of the cord was never looked at. Its deviations (doses to
    absolute volumes, which only grow with the missing part) stand, with the reason; passes
    become not evaluable (tests/test_evaluate.py). The esophagus, contoured alike in both, is
    judged as before."""
    case = two_plan_case(tmp_path)
    rs = cord_shifted_copy(case / "RS.SPINE3FX.dcm", case / "RS.B.dcm", 30.0)
    plan = pydicom.dcmread(case / "RP.B.dcm")
    plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = rs.SOPInstanceUID
    plan.save_as(case / "RP.B.dcm")
    why = (
        "plan 'SPINEBOOST' contours 'SpinalCord' up to 30 mm beyond 'SpinalCord' of the first "
        "plan's structure set, on which the summed dose is judged"
    )
    (full,) = run_check([str(case)], CheckOptions())
    cord = [f for f in full.findings if f.group == "organ" and f.roi == "SpinalCord"]
    assert {f.status for f in cord} == {Status.MAJOR}
    assert all(f.message.endswith(why) for f in cord)
    esophagus = [f for f in full.findings if f.group == "organ" and f.roi == "Esophagus"]
    assert {f.status for f in esophagus} == {Status.PASS}
    assert all(why not in f.message for f in esophagus)


def _drop_cord(path: Path) -> None:
    rs = pydicom.dcmread(path)
    number = next(int(r.ROINumber) for r in rs.StructureSetROISequence if r.ROIName == "SpinalCord")
    rs.StructureSetROISequence = [
        i for i in rs.StructureSetROISequence if int(i.ROINumber) != number
    ]
    for seq in ("RTROIObservationsSequence", "ROIContourSequence"):
        setattr(rs, seq, [i for i in getattr(rs, seq) if int(i.ReferencedROINumber) != number])
    rs.save_as(path)


def test_an_organ_only_another_plans_structure_set_holds_is_judged_on_it(tmp_path, single):
    """Plan A's structure set lacks the cord, plan B's own holds it. In the same frame the cord
    (missing from the course's judgement before) is judged on B's contour, said in the match, on
    the summed dose (here twice the sample's); in another frame it is not evaluable, named."""
    (tmp_path / "same").mkdir()
    (tmp_path / "moved").mkdir()
    case = two_plan_case(tmp_path / "same")
    original = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    original.SOPInstanceUID = original.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    original.save_as(case / "RS.B.dcm")
    plan = pydicom.dcmread(case / "RP.B.dcm")
    plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = original.SOPInstanceUID
    plan.save_as(case / "RP.B.dcm")
    _drop_cord(case / "RS.SPINE3FX.dcm")
    (result,) = run_check([str(case)], CheckOptions())
    cord = organ(result, "SpinalCord", "D0.03cc[Gy]")
    assert cord.value == pytest.approx(2 * organ(single, "SpinalCord", "D0.03cc[Gy]").value, 1e-9)
    assert cord.match.endswith("(in plan 'SPINEBOOST''s structure set; the first plan's has none)")

    moved = two_plan_case(tmp_path / "moved")
    move_plan_b_to_another_frame(moved, (5.0, -7.5, 10.0))
    _drop_cord(moved / "RS.SPINE3FX.dcm")
    (result,) = run_check([str(moved)], CheckOptions())
    (f,) = [f for f in result.findings if f.group == "organ" and f.roi == "SpinalCord"]
    assert f.status is Status.NOT_EVALUABLE and f.rule == "match"
    assert f.message == (
        "'SpinalCord' is contoured only in plan 'SPINEBOOST''s structure set ('SpinalCord'), in "
        "another frame of reference than the course dose: not judged"
    )


def test_the_prior_rules_say_when_another_plan_contours_the_organ_further(tmp_path):
    """spine_prior (a prior course, BOSS) with a second current plan whose own structure set
    (same frame) runs the cord 30 mm further up, and whose dose is a hundredth of the first's.
    The course's cumulative and course EQD2 of the cord are read on the first plan's cord only,
    which leaves the second plan's part out: every cord row that passed there is not evaluable
    and says why, as the organ rules' rows do."""
    case = tmp_path / "course"
    shutil.copytree(SAMPLE.parent / "spine_prior", case)
    uid = generate_uid()
    rs = cord_shifted_copy(case / "RS.SPINEPRIOR.dcm", case / "RS.B.dcm", 30.0)
    plan = pydicom.dcmread(case / "RP.SPINEPRIOR.dcm")
    plan.SOPInstanceUID = plan.file_meta.MediaStorageSOPInstanceUID = uid
    plan.RTPlanLabel = "SPINEBOOST"
    plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = rs.SOPInstanceUID
    plan.save_as(case / "RP.B.dcm")
    dose = pydicom.dcmread(case / "RD.SPINEPRIOR.dcm")
    dose.SOPInstanceUID = dose.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = uid
    dose.DoseGridScaling = float(dose.DoseGridScaling) / 100.0
    dose.save_as(case / "RD.B.dcm")
    for i in (1, 2, 3):
        rec = pydicom.dcmread(case / f"RT.SPINEPRIOR.fx{i}.dcm")
        rec.SOPInstanceUID = rec.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        rec.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = uid
        when = pydicom.valuerep.DA(rec.TreatmentDate)
        rec.TreatmentDate = (when + timedelta(days=1)).strftime("%Y%m%d")
        rec.save_as(case / f"RT.B.fx{i}.dcm")
    why = (
        "plan 'SPINEBOOST' contours 'SpinalCord' up to 30 mm beyond 'SpinalCord' of the first "
        "plan's structure set, on which the summed dose is judged"
    )
    (result,) = run_check([str(case)], CheckOptions(protocol="boss"))
    assert sorted(p.label for p in result.plans) == ["PRIOR_T7", "SPINEBOOST", "SPINEPRIOR"]
    rows = {
        f.rule: f
        for f in result.findings
        if f.group == "prior" and f.roi == "SpinalCord" and f.status is not Status.INFO
    }
    assert sorted(rows) == ["course_eqd2", "course_share", "cumulative_eqd2"]
    # the cord's maximum of the first plan's dose, 1.01 times over 3 fractions, plus the prior
    # 20 Gy in 5 (EQD2 at alpha/beta 2 Gy: 30 Gy): 51.11 Gy, within 70 Gy
    cord = read_structure_set(case / "RS.SPINEPRIOR.dcm").roi("SpinalCord")
    peak = 1.01 * structure_dvh(cord, read_dose(case / "RD.SPINEPRIOR.dcm")).dvh.max_gy
    cumulative = float(eqd2(peak, 3, 2.0)) + 30.0
    assert cumulative == pytest.approx(51.11, abs=0.01)
    assert rows["cumulative_eqd2"].value == pytest.approx(cumulative, rel=1e-6)
    for f in rows.values():
        assert f.status is Status.NOT_EVALUABLE
        assert f.message.endswith(f"within the limit on the judged contour, but {why}")
    organ_rows = [f for f in result.findings if f.group == "organ" and f.roi == "SpinalCord"]
    assert organ_rows and all(f.message.endswith(why) for f in organ_rows)
    assert result.exit_code == 4
