"""``rtqa info``: exit codes and the content of the text and JSON reports."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from test_delivery_mu import ARC1, ARC2, DAY1, course, full, plan_file, record_file
from test_scan_builders import X, Y, Z, linear_dose, write_case, write_reg

from rtqa.cli import cli
from rtqa.cli.info import info_data, render_text
from rtqa.dicom.common import make_uid
from rtqa.dicom.scan import ScanResult
from rtqa.model import Case, DeliveredBeam


def run(*args: str):
    return CliRunner().invoke(cli, ["info", *args])


def run_json(*args: str) -> tuple[int, dict]:
    result = run(*args, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def test_complete_case_text_and_json(tmp_path):
    built = write_case(tmp_path, "SPINE", ct=True, records=3)
    result = run(str(tmp_path))
    assert result.exit_code == 0
    text = result.stdout
    assert "Case SPINE (complete)" in text
    assert f"  plan: SPINE [{built.paths['plan']}]" in text
    assert "    APPROVED 2024-03-02T12:00:00 by Physicist^A; intent PALLIATIVE; fractions 3" in text
    assert (
        "    prescription: 30 Gy in 3 fractions (10 Gy/fx) to ROI 1 (PTV) "
        "[from DoseReferenceSequence]"
    ) in text
    assert "PTV (PTV, 3 contours" in text and "BODY (EXTERNAL, 5 contours" in text
    assert "    grid 11 x 9 x 5 (x, y, z), spacing 2 x 2 x 3 mm; summation PLAN" in text
    assert "    fraction 2: 2024-03-06" in text
    assert "5 slices from -6 to 6 mm" in text
    assert "Files: CT 5, RTDOSE 1, RTPLAN 1, RTRECORD 3, RTSTRUCT 1" in text

    code, data = run_json(str(tmp_path))
    assert code == 0 and data["exit_code"] == 0
    (case,) = data["cases"]
    assert case["case_id"] == "SPINE" and case["complete"] and case["missing"] == []
    assert case["plan"]["approval_status"] == "APPROVED"
    assert case["plan"]["fractions"] == 3
    (rx,) = case["plan"]["prescriptions"]
    assert rx == {
        "total_gy": 30.0,
        "fractions": 3,
        "dose_per_fraction_gy": 10.0,
        "source": "DoseReferenceSequence",
        "roi_number": 1,
        "roi_name": "PTV",
        "dose_reference_number": 1,
        "description": "PTV",
    }
    assert [(r["name"], r["type"], r["contours"]) for r in case["structure_set"]["rois"]] == [
        ("PTV", "PTV", 3),
        ("BODY", "EXTERNAL", 5),
    ]
    dose = case["dose"]
    assert dose["shape_xyz"] == [X.size, Y.size, Z.size]
    assert dose["spacing_mm"] == [2.0, 2.0, 3.0]
    assert dose["origin_mm"] == [-10.0, -8.0, -6.0]
    assert dose["max_gy"] == pytest.approx(linear_dose().max(), abs=1e-3)
    assert [(f["fraction"], f["dates"]) for f in case["fractions_delivered"]] == [
        (1, ["2024-03-04"]),
        (2, ["2024-03-06"]),
        (3, ["2024-03-08"]),
    ]
    assert [(r["fraction"], r["fraction_group"], r["beams"]) for r in case["records"]] == [
        (1, None, 2),
        (2, None, 2),
        (3, None, 2),
    ]
    assert case["images"]["slices"] == 5
    assert data["courses"] == [
        {
            "cases": ["SPINE"],
            "priors": [],
            "reason": "plan 'SPINE' is the latest course (treatment records from 2024-03-04)",
        }
    ]


def test_missing_dose_exits_4(tmp_path):
    write_case(tmp_path, "SPINE", dose=False)
    result = run(str(tmp_path))
    assert result.exit_code == 4
    assert "Case SPINE (missing RT Dose)" in result.stdout
    code, data = run_json(str(tmp_path))
    assert code == 4 and data["cases"][0]["missing"] == ["RT Dose"]
    assert data["cases"][0]["dose"] is None


def test_several_plans_in_one_folder(tmp_path):
    write_case(tmp_path, "LESION_A", frame_name="shared", key="a")
    write_case(tmp_path, "LESION_B", frame_name="shared2", key="b")
    code, data = run_json(str(tmp_path))
    assert code == 0
    assert [c["case_id"] for c in data["cases"]] == ["LESION_A", "LESION_B"]
    assert [c["dose"]["paths"] for c in data["cases"]] == [
        [str(tmp_path / "RD.LESION_A.dcm")],
        [str(tmp_path / "RD.LESION_B.dcm")],
    ]
    assert data["courses"][0]["cases"] == ["LESION_A", "LESION_B"]


def test_unlinked_dose_is_listed(tmp_path):
    write_case(tmp_path, "SPINE")
    gone = make_uid("plan", "gone")
    write_case(
        tmp_path, "STRAY", plan=False, structures=False, frame_name="SPINE", dose_plan_uid=gone
    )
    result = run(str(tmp_path))
    assert result.exit_code == 0
    assert (
        f"warning: {tmp_path / 'RD.STRAY.dcm'}: dose references plan {gone}, not present: not used"
    ) in result.stdout


def test_mismatched_frames_exit_4_naming_both(tmp_path):
    built = write_case(tmp_path, "SPINE", dose_frame_name="elsewhere")
    other = make_uid("frame", "elsewhere")
    code, data = run_json(str(tmp_path))
    assert code == 4
    errors = [n["message"] for n in data["cases"][0]["notes"] if n["level"] == "error"]
    assert errors == [
        f"plan (frame {built.frame}) and dose (frame {other}) are in different frames of "
        "reference and no registration links them"
    ]
    write_reg(tmp_path, built.frame, other)
    code, data = run_json(str(tmp_path))
    assert code == 0
    assert data["cases"][0]["registrations"][0]["frames"] == sorted([built.frame, other])


def test_truncated_file_reported_and_exit_4(tmp_path):
    write_case(tmp_path, "SPINE")
    extra = write_case(tmp_path / "other", "OTHER")
    data = extra.paths["plan"].read_bytes()
    extra.paths["plan"].write_bytes(data[:-40])
    result = run(str(tmp_path))
    assert result.exit_code == 4
    assert "Case SPINE (complete)" in result.stdout
    assert f"error: {extra.paths['plan']}: truncated file: " in result.stdout


def test_non_dicom_files_only_and_empty_folder_exit_3(tmp_path):
    (tmp_path / "readme.txt").write_text("hello\n")
    result = run(str(tmp_path))
    assert result.exit_code == 3
    assert "No case found." in result.stdout
    assert f"info: {tmp_path / 'readme.txt'}: not a DICOM file: skipped" in result.stdout
    assert "no usable DICOM-RT case found" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    code, data = run_json(str(empty))
    assert code == 3
    assert (data["cases"], data["files"], data["notes"]) == ([], {}, [])


def test_non_dicom_file_next_to_a_complete_case(tmp_path):
    write_case(tmp_path, "SPINE")
    (tmp_path / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    code, data = run_json(str(tmp_path))
    assert code == 0
    assert data["files"]["not DICOM"] == 1
    assert data["notes"] == [
        {
            "level": "info",
            "message": "not a DICOM file: skipped",
            "path": str(tmp_path / "Thumbs.db"),
            "attribute": None,
        }
    ]


# --------------------------------------------------------------------------------------------
# Fractions delivered: completeness as ``rtqa check`` judges it (rtqa.protocol.delivery)
# --------------------------------------------------------------------------------------------


def fractions(data: dict, case_id: str) -> list[tuple]:
    (case,) = [c for c in data["cases"] if c["case_id"] == case_id]
    return [
        (f["fraction"], f["dates"], f["sessions"], f["complete"], f["reason"])
        for f in case["fractions_delivered"]
    ]


def test_fraction_missing_a_treatment_beam_is_incomplete_as_check_says(tmp_path):
    """Fraction 2 ends NORMAL but its record lacks ARC2: every beam session normal made it
    'complete' before; the plan's fraction group says beam 2 was due."""
    plan_file(tmp_path)
    fx2 = [DeliveredBeam(1, ARC1, ARC1, "NORMAL"), DeliveredBeam(3, 5.0, 2.0, "NORMAL")]
    course(tmp_path, fx2)
    code, data = run_json(str(tmp_path))
    assert code == 4  # plan and records only: no structure set, no dose
    assert fractions(data, "LUNG_MU") == [
        (1, ["2024-03-04"], 1, True, None),
        (2, ["2024-03-06"], 1, False, "beam 2 'ARC2' in none of its records"),
        (3, ["2024-03-08"], 1, True, None),
    ]
    text = run(str(tmp_path)).stdout
    assert "    fraction 1: 2024-03-04\n" in text
    assert "    fraction 2: 2024-03-06, incomplete: beam 2 'ARC2' in none of its records\n" in text
    check = CliRunner().invoke(cli, ["check", str(tmp_path), "--format", "json"])
    (fx,) = [f for f in json.loads(check.stdout)["findings"] if f["rule"] == "fraction_delivery"]
    assert (fx["status"], fx["message"]) == (
        "minor",
        "fraction 2 not fully delivered: beam 2 'ARC2' in none of its records",
    )


def test_fraction_terminated_early_and_made_up_the_next_day_is_complete(tmp_path):
    plan_file(tmp_path)
    t2, t3 = DAY1 + timedelta(days=2), DAY1 + timedelta(days=4)
    records = [
        record_file(tmp_path, "fx1.dcm", 1, full()),
        record_file(tmp_path, "fx2a.dcm", 2, [DeliveredBeam(1, 100.0, ARC1, "MACHINE")], t2),
        record_file(
            tmp_path,
            "fx2b.dcm",
            2,
            [DeliveredBeam(1, 150.0, 150.0, "NORMAL"), DeliveredBeam(2, ARC2, ARC2, "NORMAL")],
            t2 + timedelta(days=1),
        ),
        record_file(tmp_path, "fx3.dcm", 3, [DeliveredBeam(1, 100.0, ARC1, "OPERATOR")], t3),
    ]
    assert len(records) == 4
    _, data = run_json(str(tmp_path))
    assert fractions(data, "LUNG_MU") == [
        (1, ["2024-03-04"], 1, True, None),
        (2, ["2024-03-06", "2024-03-07"], 2, True, None),
        (
            3,
            ["2024-03-08"],
            1,
            False,
            "beam 1 'ARC1' terminated OPERATOR after 100 of 250 MU (fx3.dcm): 100 of 250 "
            "planned MU; beam 2 'ARC2' in none of its records",
        ),
    ]
    text = run(str(tmp_path)).stdout
    assert "    fraction 2: 2024-03-06, 2024-03-07, 2 sessions\n" in text


def test_records_of_two_plans_with_the_same_fraction_number_are_kept_apart(tmp_path):
    """Plan A delivered fraction 1 completely; plan B's fraction 1 lacks ARC2. Each plan's
    fraction 1 is judged on its own records against its own beams."""
    uid_b = make_uid("mu-plan", "B")
    plan_file(tmp_path)
    plan_file(tmp_path, uid=uid_b, label="LUNG_MU_B")
    record_file(tmp_path, "A.fx1.dcm", 1, full())
    record_file(tmp_path, "B.fx1.dcm", 1, [DeliveredBeam(1, ARC1, ARC1, "NORMAL")], DAY1, uid_b)
    _, data = run_json(str(tmp_path))
    assert fractions(data, "LUNG_MU") == [(1, ["2024-03-04"], 1, True, None)]
    assert fractions(data, "LUNG_MU_B") == [
        (1, ["2024-03-04"], 1, False, "beam 2 'ARC2' in none of its records")
    ]


def test_case_without_plan_says_completeness_is_unknown(tmp_path):
    """No plan: no beams to compare the records with, so no fraction is called complete."""
    records = course(tmp_path)
    data = info_data(ScanResult([Case("NOPLAN", records=tuple(records))]), [str(tmp_path)])
    assert fractions(data, "NOPLAN") == [
        (n, [day], 1, None, "no plan to compare beams with")
        for n, day in ((1, "2024-03-04"), (2, "2024-03-06"), (3, "2024-03-08"))
    ]
    text = render_text(data)
    assert (
        "    fraction 1: 2024-03-04, completeness unknown: no plan to compare beams with\n"
    ) in text


def test_the_systems_that_wrote_each_object_are_named(tmp_path):
    import pydicom

    built = write_case(tmp_path, "SPINE")
    ds = pydicom.dcmread(built.paths["plan"])
    ds.Manufacturer, ds.SoftwareVersions = "Vendor TPS", "16.1.2"
    ds.save_as(built.paths["plan"])
    code, data = run_json(str(tmp_path))
    assert code == 0
    (case,) = data["cases"]
    assert case["plan"]["manufacturer"] == "Vendor TPS"
    assert case["plan"]["software_versions"] == "16.1.2"
    for kind, key in (("structure_set", "ss"), ("dose", "dose")):
        written = pydicom.dcmread(built.paths[key]).Manufacturer
        assert case[kind]["manufacturer"] == written != ""
    assert "    written by Vendor TPS 16.1.2" in run(str(tmp_path)).stdout
