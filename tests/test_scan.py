"""Folder scanning and linking by UID (edge cases L3, L4-L9, R2, R5, X2, X4, F1-F3, F7)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from test_scan_builders import HEADER, PATIENT, X, Y, Z, linear_dose, uids, write_case, write_reg

from rtqa.dicom.common import DEFORMABLE_REGISTRATION, RT_BRACHY_RECORD, make_uid, read_dataset
from rtqa.dicom.dose import read_dose
from rtqa.dicom.image_references import image_references
from rtqa.dicom.linking import safe_name
from rtqa.dicom.scan import scan
from rtqa.dicom.write.dose import write_dose
from rtqa.dicom.write.records import write_treatment_record
from rtqa.model import DeliveredBeam, DoseGrid, Level, TreatmentRecord


def messages(notes, level=None):
    return [n.message for n in notes if level is None or n.level is level]


def test_complete_case_with_ct_and_records(tmp_path):
    built = write_case(tmp_path / "course", "SPINE", ct=True, records=3)
    result = scan(str(tmp_path / "course"))
    (case,) = result.cases
    assert case.case_id == "SPINE"
    assert case.is_complete
    assert case.plan.sop_instance_uid == built.plan_uid
    assert case.structure_set.sop_instance_uid == built.ss_uid
    assert case.dose.frame_of_reference_uid == built.frame
    # the dose as written (linear in x, y, z) comes back on the same grid
    assert case.dose.dose_gy == pytest.approx(linear_dose(), abs=1e-4)
    assert case.images.slice_positions_mm == tuple(Z)
    assert [r.fraction_number for r in case.records] == [1, 2, 3]
    assert case.patient_id == PATIENT
    assert case.source_dir == str((tmp_path / "course").resolve())
    assert messages(case.notes, Level.ERROR) == []
    assert not any(m.startswith("missing") for m in messages(case.notes))
    assert result.files == {"CT": 5, "RTDOSE": 1, "RTPLAN": 1, "RTRECORD": 3, "RTSTRUCT": 1}
    assert messages(result.notes, Level.ERROR) == []


def test_files_given_directly_and_nested_folders(tmp_path):
    built = write_case(tmp_path / "a" / "b", "SPINE")
    result = scan([str(built.paths["plan"]), str(built.paths["dose"]), str(built.paths["ss"])])
    assert [c.case_id for c in result.cases] == ["SPINE"]
    assert result.cases[0].is_complete
    assert scan(str(tmp_path)).cases[0].is_complete


def test_missing_dose_is_a_note(tmp_path):
    write_case(tmp_path, "SPINE", dose=False)
    (case,) = scan(str(tmp_path)).cases
    assert case.dose is None and not case.is_complete
    assert "missing: RT Dose" in messages(case.notes, Level.WARNING)


def test_missing_structure_set_named_by_uid(tmp_path):
    built = write_case(tmp_path, "SPINE", structures=False)
    (case,) = scan(str(tmp_path)).cases
    assert case.structure_set is None
    assert f"plan references structure set {built.ss_uid}, not present" in messages(case.notes)
    assert "missing: RT Structure Set" in messages(case.notes)


def test_several_plans_link_by_uid_not_file_name(tmp_path):
    # the files of plan B carry the names of plan A's and vice versa
    a = write_case(tmp_path, "LUNG", names={"dose": "RD.SPINE.dcm", "ss": "RS.SPINE.dcm"})
    b = write_case(tmp_path / "x", "SPINE", names={"dose": "RD.LUNG.dcm", "ss": "RS.LUNG.dcm"})
    result = scan(str(tmp_path))
    assert [c.case_id for c in result.cases] == ["LUNG", "SPINE"]
    lung, spine = result.cases
    assert lung.dose.sop_instance_uids == (a.dose_uid,) or lung.dose.paths == (
        str(a.paths["dose"]),
    )
    assert lung.dose.paths == (str(a.paths["dose"]),)
    assert spine.dose.paths == (str(b.paths["dose"]),)
    assert spine.structure_set.sop_instance_uid == b.ss_uid


def test_colliding_labels_get_a_short_uid_hash(tmp_path):
    one = write_case(tmp_path / "one", "Spine T7", frame_name="f1")
    two = write_case(tmp_path / "two", "Spine T7", frame_name="f2", key="second")
    assert one.plan_uid != two.plan_uid
    ids = sorted(c.case_id for c in scan(str(tmp_path)).cases)
    expected = sorted(
        f"Spine_T7-{hashlib.sha1(uid.encode()).hexdigest()[:6]}"
        for uid in (one.plan_uid, two.plan_uid)
    )
    assert ids == expected
    assert ids == sorted(c.case_id for c in scan(str(tmp_path)).cases)  # deterministic


def test_safe_name():
    assert safe_name("  PTV 30/3 (L1) ") == "PTV_30_3_L1"
    assert safe_name("../..") == "case"


def test_dose_of_an_absent_plan_is_not_used(tmp_path):
    write_case(tmp_path, "SPINE")
    write_case(
        tmp_path,
        "OLD",
        plan=False,
        structures=False,
        frame_name="SPINE",
        dose_plan_uid=make_uid("plan", "gone"),
    )
    result = scan(str(tmp_path))
    (case,) = result.cases
    assert case.dose.paths == (str(tmp_path / "RD.SPINE.dcm"),)
    (note,) = [n for n in result.notes if n.path == str(tmp_path / "RD.OLD.dcm")]
    assert note.message == f"dose references plan {make_uid('plan', 'gone')}, not present: not used"


def _regenerate_plan_uid(built, new_uid: str) -> None:
    """The plan's SOP Instance UID changed (re-export, anonymisation) while the dose and the
    records keep referencing the old one."""
    ds = pydicom.dcmread(built.paths["plan"])
    ds.SOPInstanceUID = new_uid
    ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    ds.save_as(built.paths["plan"])


def test_dose_and_records_of_a_plan_whose_uid_changed_link_by_frame_and_study(tmp_path):
    # L5: explicit references -> same frame of reference and study -> cannot link
    built = write_case(tmp_path, "SPINE", records=3)
    new_uid = make_uid("plan", "re-exported")
    _regenerate_plan_uid(built, new_uid)
    result = scan(str(tmp_path))
    (case,) = result.cases
    assert case.dose is not None and case.dose.paths == (str(built.paths["dose"]),)
    assert [r.referenced_plan_uid for r in case.records] == [new_uid] * 3
    warned = messages(result.notes + case.notes, Level.WARNING)
    assert any(
        m.startswith(f"dose references plan {built.plan_uid}, not present; linked to plan 'SPINE'")
        for m in warned
    )
    assert (
        sum(f"references plan {built.plan_uid}, not present: taken as plan {new_uid}" in m
            for m in warned) == 3
    )  # fmt: skip


def test_dose_of_an_absent_plan_is_not_guessed_between_two_plans(tmp_path):
    built = write_case(tmp_path, "SPINE")
    _regenerate_plan_uid(built, make_uid("plan", "re-exported"))
    write_case(tmp_path, "BOOST", dose=False, frame_name="SPINE")  # same frame and study
    result = scan(str(tmp_path))
    assert all(c.dose is None for c in result.cases)
    (note,) = [n for n in result.notes if n.path == str(built.paths["dose"])]
    assert note.message == f"dose references plan {built.plan_uid}, not present: not used"


def test_dose_without_plan_reference_linked_by_frame_with_warning(tmp_path):
    write_case(tmp_path, "SPINE", dose_plan_uid="")
    result = scan(str(tmp_path))
    (case,) = result.cases
    assert case.dose is not None
    assert any(
        "linked to plan 'SPINE' by frame of reference (inferred)" in m
        for m in messages(result.notes, Level.WARNING)
    )


def test_planless_case_from_one_structure_set_and_one_dose(tmp_path):
    built = write_case(tmp_path, "DVHONLY", plan=False, dose_plan_uid="")
    (case,) = scan(str(tmp_path)).cases
    assert case.plan is None
    assert case.case_id == "SS_DVHONLY"
    assert case.structure_set.sop_instance_uid == built.ss_uid
    assert case.dose is not None
    assert f"no RT Plan: structure set and dose linked by frame of reference {built.frame}" in (
        messages(case.notes, Level.WARNING)
    )


def test_two_structure_sets_and_no_plan_is_ambiguous(tmp_path):
    write_case(tmp_path, "A", plan=False, dose_plan_uid="", frame_name="shared")
    write_case(tmp_path, "B", plan=False, dose=False, frame_name="shared")
    result = scan(str(tmp_path))
    assert result.cases == []
    assert any(
        "several structure sets share frame of reference" in m
        for m in messages(result.notes, Level.ERROR)
    )


def test_dose_in_another_frame_without_registration_is_an_error(tmp_path):
    built = write_case(tmp_path, "SPINE", dose_frame_name="elsewhere")
    (case,) = scan(str(tmp_path)).cases
    other = make_uid("frame", "elsewhere")
    errors = messages(case.notes, Level.ERROR)
    assert (
        f"plan (frame {built.frame}) and dose (frame {other}) are in different frames of "
        "reference and no registration links them"
    ) in errors


def test_registration_links_frames_and_is_attached(tmp_path):
    built = write_case(tmp_path, "SPINE", dose_frame_name="elsewhere")
    other = make_uid("frame", "elsewhere")
    reg_path = write_reg(tmp_path, built.frame, other)
    (case,) = scan(str(tmp_path)).cases
    assert messages(case.notes, Level.ERROR) == []
    assert [r.path for r in case.registrations] == [str(reg_path)]
    # the dose is moved into the structure set's frame by the registration (here the identity)
    moved = "the dose grid was moved by (0.000, 0.000, 0.000) mm into the structure set's frame"
    assert any(moved in m for m in messages(case.notes, Level.WARNING))
    assert case.dose.frame_of_reference_uid == built.frame


def test_prior_course_registration_attached_to_both_cases(tmp_path):
    current = write_case(tmp_path / "cur", "CURRENT")
    prior = write_case(tmp_path / "pri", "PRIOR", first_day=datetime(2022, 1, 3))
    shift = np.eye(4)
    shift[:3, 3] = (5.0, -2.0, 0.0)
    write_reg(tmp_path, current.frame, prior.frame, shift)
    cases = {c.case_id: c for c in scan(str(tmp_path)).cases}
    assert set(cases) == {"CURRENT", "PRIOR"}
    (reg,) = cases["CURRENT"].registrations
    assert cases["PRIOR"].registrations == (reg,)
    point = reg.matrix(prior.frame, current.frame) @ np.array([1.0, 1.0, 1.0, 1.0])
    assert point[:3] == pytest.approx([6.0, -1.0, 1.0])


def test_truncated_and_non_dicom_files_reported_rest_loads(tmp_path):
    write_case(tmp_path, "SPINE")
    broken = write_case(tmp_path / "broken", "BROKEN")
    data = broken.paths["plan"].read_bytes()
    broken.paths["plan"].write_bytes(data[: len(data) - 40])
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 60)
    (tmp_path / "notes.txt").write_text("not an image\n")
    result = scan(str(tmp_path))
    # the broken plan's structure set and dose still load, as a case without its plan
    assert [c.case_id for c in result.cases] == ["SPINE", "SS_BROKEN"]
    assert result.cases[0].is_complete
    assert result.cases[1].plan is None and result.cases[1].dose is not None
    assert f"dose references plan {broken.plan_uid}, not present" in messages(result.cases[1].notes)
    (truncated,) = [n for n in result.notes if n.path == str(broken.paths["plan"])]
    assert truncated.level is Level.ERROR
    assert truncated.message.startswith("truncated file: ")
    skipped = sorted(n.path for n in result.notes if n.message == "not a DICOM file: skipped")
    assert skipped == [str(tmp_path / ".DS_Store"), str(tmp_path / "notes.txt")]
    assert result.files["not DICOM"] == 2 and result.files["unreadable"] == 1


def test_truncated_dose_pixel_data_is_reported(tmp_path):
    built = write_case(tmp_path, "SPINE")
    data = built.paths["dose"].read_bytes()
    built.paths["dose"].write_bytes(data[:-100])
    result = scan(str(tmp_path))
    (case,) = result.cases
    assert case.dose is None
    (note,) = [n for n in result.notes if n.path == str(built.paths["dose"])]
    assert note.level is Level.ERROR and "(7FE0,0010) needs" in note.message


def test_dicomdir_ignored_and_empty_folder(tmp_path):
    write_case(tmp_path, "SPINE")
    ds = pydicom.dcmread(tmp_path / "RP.SPINE.dcm")
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    del ds.SOPClassUID
    ds.save_as(tmp_path / "DICOMDIR")
    result = scan(str(tmp_path))
    assert len(result.cases) == 1
    assert "DICOMDIR ignored (files are found by walking)" in messages(result.notes, Level.INFO)
    assert result.files["DICOMDIR"] == 1
    (tmp_path / "empty").mkdir()
    empty = scan(str(tmp_path / "empty"))
    assert (empty.cases, empty.notes, empty.files) == ([], [], {})
    missing = scan(str(tmp_path / "nope"))
    assert messages(missing.notes, Level.ERROR) == ["no such file or folder"]


def test_records_of_unknown_plan_and_unanalysed_kinds(tmp_path):
    write_case(tmp_path, "SPINE")
    gone = make_uid("plan", "gone")
    record = TreatmentRecord("", make_uid("rec", "x"), gone, 1, None, (DeliveredBeam(1, 5.0, 5.0),))
    write_treatment_record(record, tmp_path / "RT.x.dcm", HEADER, series_instance_uid=make_uid("s"))
    brachy = tmp_path / "RT.brachy.dcm"
    shutil.copy(tmp_path / "RT.x.dcm", brachy)
    ds = pydicom.dcmread(brachy)
    ds.SOPClassUID = RT_BRACHY_RECORD
    ds.SOPInstanceUID = make_uid("brachy")
    ds.save_as(brachy)
    result = scan(str(tmp_path))
    assert result.cases[0].records == ()
    assert f"treatment record (fraction 1) references unknown plan {gone}" in messages(result.notes)
    assert "RT Brachy Treatment Record: not analysed" in messages(result.notes, Level.WARNING)


def test_deformable_registration_reported(tmp_path):
    built = write_case(tmp_path, "SPINE")
    path = write_reg(tmp_path, built.frame, make_uid("frame", "mr"))
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = DEFORMABLE_REGISTRATION
    ds.save_as(path)
    result = scan(str(tmp_path))
    assert result.cases[0].registrations == ()
    (note,) = [n for n in result.notes if n.path == str(path)]
    assert (note.level, note.message) == (Level.ERROR, "deformable registration not supported")


def test_file_without_meta_header_still_loads(tmp_path):
    built = write_case(tmp_path, "SPINE")
    ds = pydicom.dcmread(built.paths["plan"])
    del ds.file_meta
    ds.preamble = None
    ds.save_as(built.paths["plan"], enforce_file_format=False, implicit_vr=True, little_endian=True)
    result = scan(str(tmp_path))
    assert result.cases[0].is_complete
    assert result.cases[0].plan.prescriptions[0].total_gy == 30.0
    assert any(
        "no preamble or file meta header" in m for m in messages(result.notes, Level.WARNING)
    )


@pytest.mark.parametrize("implicit", [True, False])
def test_dose_without_meta_header_gives_the_same_grid(tmp_path, implicit):
    # an RT Dose with neither preamble nor file meta (a TPS export quirk): its pixel data are
    # decoded in the encoding the data set was read in, the dose equal to the conformant file's
    built = write_case(tmp_path, "SPINE")
    path = built.paths["dose"]
    want = read_dose(path).dose_gy
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(path, enforce_file_format=False, implicit_vr=implicit, little_endian=True)
    result = scan(str(tmp_path))
    dose = result.cases[0].dose
    assert dose is not None and np.array_equal(dose.dose_gy, want)
    assert any(
        str(n.path).endswith(path.name) and "no preamble or file meta header" in n.message
        for n in result.notes
        if n.level is Level.WARNING
    )


def test_several_doses_of_one_plan_are_combined(tmp_path):
    built = write_case(tmp_path, "SPINE", dose=False)
    for beam in (1, 2):
        grid = DoseGrid(
            linear_dose() * beam / 3,
            X,
            Y,
            Z,
            built.frame,
            summation_type="BEAM",
            referenced_beam_numbers=(beam,),
        )
        write_dose(
            grid,
            tmp_path / f"RD.beam{beam}.dcm",
            HEADER,
            sop_instance_uid=make_uid("beam-dose", beam),
            series_instance_uid=make_uid("rd"),
            referenced_plan_uid=built.plan_uid,
            referenced_beam_number=beam,
        )
    (case,) = scan(str(tmp_path)).cases
    assert len(case.dose.paths) == 2
    assert case.dose.dose_gy == pytest.approx(linear_dose(), rel=1e-4)
    assert uids("SPINE")["plan"] == built.plan_uid


def _image_items(*sop_instance_uids: str) -> list[pydicom.Dataset]:
    items = []
    for uid in sop_instance_uids:
        item = pydicom.Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = uid
        items.append(item)
    return items


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_image_references_series_and_contour_level(tmp_path, syntax):
    built = write_case(tmp_path, "SPINE")
    series_uid = make_uid("ref-ct-series")
    listed = [make_uid("ref-ct", n) for n in range(5)]
    only_in_contour = make_uid("ref-ct", "contour-only")
    ds = pydicom.dcmread(built.paths["ss"])
    series = pydicom.Dataset()
    series.SeriesInstanceUID = series_uid
    series.ContourImageSequence = _image_items(*listed)
    study = pydicom.Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = HEADER.study_instance_uid
    study.RTReferencedSeriesSequence = [series]
    ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence = [study]
    ptv = ds.ROIContourSequence[0].ContourSequence  # 3 contours
    for contour, uid in zip(ptv, (listed[0], listed[1], only_in_contour), strict=True):
        contour.ContourImageSequence = _image_items(uid)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(built.paths["ss"], enforce_file_format=True)
    expected = {*listed, only_in_contour}  # 5 listed for the series, 1 more named by a contour
    read, _ = read_dataset(str(built.paths["ss"]), stop_before_pixels=True)
    refs = image_references(read)
    assert refs.series == ((series_uid, built.frame),)
    assert refs.image_uids == expected
    for item in read.ROIContourSequence[0].ContourSequence:  # sequences already converted
        assert len(item.ContourImageSequence) == 1
    assert image_references(read).image_uids == expected


def test_value_notes_keep_pydicom_warnings_once_and_pass_on_the_others():
    """pydicom's warnings become notes of the file (a repeated message once); a warning raised
    elsewhere (numpy here) is not a note about the file and is raised again as it was."""
    import warnings

    import numpy
    import pydicom.valuerep

    from rtqa.dicom.common import value_notes

    def message(text, filename):
        return warnings.WarningMessage(UserWarning(text), UserWarning, filename, 1)

    caught = [
        message("Invalid value for VR IS: 'x'", pydicom.valuerep.__file__),
        message("Invalid value for VR IS: 'x'", pydicom.valuerep.__file__),
        message("divide by zero", numpy.__file__),
    ]
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        notes = value_notes(caught, "RS.x.dcm")
    assert [(n.level, n.message, n.path) for n in notes] == [
        (Level.WARNING, "invalid value: Invalid value for VR IS: 'x'", "RS.x.dcm")
    ]
    assert [str(w.message) for w in again] == ["divide by zero"]
