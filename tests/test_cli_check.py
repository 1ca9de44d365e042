"""``rtqa check`` through click's CliRunner: sample verdicts, formats, exit codes, matching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.cli.check import combined_exit_code

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def run(*args: str):
    return CliRunner().invoke(cli, ["check", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def spine_json():
    res = run(str(SAMPLES / "spine_3fx"), "--format", "json")
    return res, json.loads(res.stdout)


def test_spine_3fx_passes_with_default_protocol_said(spine_json):
    res, data = spine_json
    assert res.exit_code == 0, res.output
    assert data["verdict"] == "pass"
    assert "default protocol" in res.stderr
    cord = [f for f in data["findings"] if f["roi"] == "SpinalCord" and f["group"] == "organ"]
    assert {f["metric"] for f in cord} == {"D0.03cc[Gy]", "D0.35cc[Gy]", "D1.2cc[Gy]"}
    assert all("exact TG-263 name" in f["match"] for f in cord)
    target = next(f for f in data["findings"] if f["group"] == "target")
    assert "Rx 30 Gy" in target["match"] and "dose reference" in target["match"]


def test_overrun_is_a_fractionation_deviation():
    res = run(str(SAMPLES / "spine_3fx_overrun"))
    assert res.exit_code == 1
    assert "MAJOR DEVIATION" in res.stdout and "24 days" in res.stdout


@pytest.mark.parametrize("protocol", ["nrg_br002", "boss"])
def test_nocord_is_not_evaluable(protocol):
    # a spine target requires the cord (boss, the spine re-irradiation profile, once passed it)
    res = run(str(SAMPLES / "spine_3fx_nocord"), "--protocol", protocol, "--format", "json")
    assert res.exit_code == 4
    data = json.loads(res.stdout)
    assert data["verdict"] == "not_evaluable"
    (missing,) = [f for f in data["findings"] if f["status"] == "not_evaluable"]
    assert "SpinalCord" in missing["message"] and "candidates" in missing["message"]
    assert "required for site spine" in missing["message"]


def test_lung_esophagus_deviation():
    res = run(str(SAMPLES / "lung_5fx"), "--format", "json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    bad = [f for f in data["findings"] if f["status"] in ("major", "minor")]
    assert [(f["roi"], f["metric"]) for f in bad] == [("Esophagus", "D0.03cc[Gy]")]
    assert bad[0]["value"] > 35 and bad[0]["limits"] == {"limit": "<= 35"}


def test_bone_passes_with_tg101():
    res = run(str(SAMPLES / "bone_1fx"), "--protocol", "tg101")
    assert res.exit_code == 0, res.output
    assert "default protocol" not in res.stderr


@pytest.mark.parametrize("case", ["spine_prior", "spine_prior_exceeds"])
def test_prior_cases_run(case):
    res = run(str(SAMPLES / case), "--protocol", "boss", "--format", "json")
    assert res.exit_code in (0, 1, 4), res.output
    data = json.loads(res.stdout)
    assert [p["prior"] for p in data["plans"]] == [False, True]
    assert any(f["group"] == "prior" for f in data["findings"])


@pytest.mark.parametrize("case", ["spine_prior", "spine_prior_exceeds"])
def test_prior_overlap_under_a_protocol_without_prior_policy_is_not_evaluable(case):
    # the default protocol (NRG-BR002) sets no prior-radiation policy: a type 1 re-irradiation
    # (54.4 cc of overlapping 50 % isodoses; an independent dense sampling of the two dose
    # fields gives 54.37 +/- 0.18 cc) must not read as a pass
    res = run(str(SAMPLES / case), "--format", "json")
    assert res.exit_code == 4, res.output
    data = json.loads(res.stdout)
    (policy,) = [f for f in data["findings"] if f["rule"] == "prior_policy"]
    assert policy["status"] == "not_evaluable"
    assert policy["value"] == pytest.approx(54.37, abs=0.05)
    assert "NRG-BR002 sets no prior-radiation policy" in policy["message"]


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "junit"])
def test_every_format_written_to_file(tmp_path, fmt):
    out = tmp_path / f"report.{fmt}"
    res = run(str(SAMPLES / "spine_3fx_overrun"), "--format", fmt, "--output", str(out))
    assert res.exit_code == 1 and res.stdout == ""
    text = out.read_text()
    assert "SPINEOVERRUN" in text
    assert "\x1b[" not in text
    assert "default" in text.lower()


def test_fail_on_major_ignores_minor(tmp_path):
    # the overrun deviation is major: still 1 with --fail-on major
    assert run(str(SAMPLES / "spine_3fx_overrun"), "--fail-on", "major").exit_code == 1


def test_mapping_override_and_ambiguity():
    res = run(
        str(SAMPLES / "spine_3fx_nocord"), "--map", "SpinalCord=Esophagus", "--format", "json"
    )
    data = json.loads(res.stdout)
    cord = [f for f in data["findings"] if f["group"] == "organ" and f["roi"] == "Esophagus"]
    assert any(f["match"].startswith("SpinalCord -> 'Esophagus' (mapping") for f in cord)
    bad = run(str(SAMPLES / "spine_3fx"), "--map", "Nonsense=Body")
    assert bad.exit_code == 2 and "Nonsense" in bad.stderr


def test_bad_constraint_file_exits_2_with_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: X\nversion: '1'\ntitle: t\ndescription: d\norgans:\n  - roi: 3\n")
    res = run(str(SAMPLES / "spine_3fx"), "--protocol", str(bad))
    assert res.exit_code == 2 and "bad.yaml:" in res.stderr


@pytest.mark.parametrize("args", [["--rx", "PTV"], ["--fail-on", "sometimes"], ["--site", "moon"]])
def test_bad_options_exit_2(args):
    assert run(str(SAMPLES / "spine_3fx"), *args).exit_code == 2


def test_nothing_readable_exits_3(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    res = run(str(tmp_path))
    assert res.exit_code == 3 and "nothing readable" in res.stderr


def test_combined_exit_code_order():
    assert combined_exit_code([0, 4, 3, 1]) == 1
    assert combined_exit_code([0, 4, 3]) == 3
    assert combined_exit_code([0, 4]) == 4
    assert combined_exit_code([0, 0]) == 0


def test_several_courses_all_judged(tmp_path):
    import shutil

    for case in ("spine_3fx", "spine_3fx_overrun"):
        shutil.copytree(SAMPLES / case, tmp_path / case)
    res = run(str(tmp_path), "--format", "json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    results = data["results"] if isinstance(data, dict) and "results" in data else data
    assert sorted(r["course_id"] for r in results) == ["SPINE3FX", "SPINEOVERRUN"]


def test_lung_quality_limits_interpolated_in_the_protocol_table():
    res = run(str(SAMPLES / "lung_5fx"), "--format", "json")
    data = json.loads(res.stdout)
    r50 = next(f for f in data["findings"] if f["group"] == "quality" and f["rule"] == "R50%")
    ptv_cc = float(r50["message"].split()[1])
    assert ptv_cc == pytest.approx(14.04, abs=0.01)
    # nrg_br002 R50% rows at 13.2 cc (< 4.7, <= 5.8) and 22 cc (< 4.5, <= 5.5)
    t = (ptv_cc - 13.2) / (22.0 - 13.2)
    per, acc = r50["limits"]["per_protocol"].split(), r50["limits"]["acceptable"].split()
    assert per[0] == "<" and float(per[1]) == pytest.approx(4.7 - 0.2 * t, abs=2e-4)
    assert acc[0] == "<=" and float(acc[1]) == pytest.approx(5.8 - 0.3 * t, abs=2e-4)
    assert "interpolated linearly between the 13.2 and 22 cc rows" in r50["message"]
    assert r50["margin"] == pytest.approx(float(per[1]) - r50["value"], abs=1e-4)


def test_a_missing_first_fraction_record_leaves_the_course_span_not_evaluable(tmp_path):
    """spine_3fx without the record of fraction 1 (fractions 2 and 3 recorded, 2 days apart):
    fraction 1 was delivered on an unknown date, so neither the 3-week span nor the intervals
    can pass; was a 3-day pass on the two later records, exit 0."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    (case / "RT.SPINE3FX.fx1.dcm").unlink()
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    findings = json.loads(result.output)["findings"]
    (span,) = [f for f in findings if f["rule"] == "completion_window"]
    assert span["status"] == "not_evaluable" and span["value"] == 2.0
    assert "fraction(s) 1 have no treatment record though later ones do" in span["message"]


def test_an_unknown_fraction_count_is_not_evaluable_never_a_regimen_deviation(tmp_path):
    """spine_3fx with NumberOfFractionsPlanned deleted: the regimen (30 Gy/3) and the organ
    limits (tabulated per fraction count) cannot be told; was a MAJOR '30 Gy/None' regimen
    deviation (exit 1) and organs without limits reported as information."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = case / "RP.SPINE3FX.dcm"
    ds = pydicom.dcmread(rp)
    del ds.FractionGroupSequence[0].NumberOfFractionsPlanned
    ds.save_as(rp)
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    findings = json.loads(result.output)["findings"]
    judged = {(f["rule"], f["roi"]) for f in findings if f["status"] not in ("pass", "info")}
    assert judged == {
        ("fraction_count", None),
        ("regimen", "PTV_30Gy"),
        ("limits", "SpinalCord"),
        ("limits", "Esophagus"),
    }
    (cord,) = [f for f in findings if f["rule"] == "limits" and f["roi"] == "SpinalCord"]
    assert cord["message"] == (
        "the fraction count is unknown: which of the protocol's limits apply (for 1, 3, 5 "
        "fractions) cannot be told"
    )


def test_a_value_pydicom_finds_invalid_on_first_use_is_a_note_of_its_file(tmp_path):
    """pydicom warns when it converts an invalid value late (here NumberOfContourPoints 'x' of
    the cord): the warning is a note naming the file, as one found at reading, and nothing of
    the library (no warning line, no source path) reaches standard error."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rs = case / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    tag = Tag(0x30060046)
    ds.ROIContourSequence[3].ContourSequence[0]._dict[tag] = RawDataElement(
        tag, "IS", 2, b"x ", 0, False, True
    )
    ds.save_as(rs)
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    notes = [(n["message"], n["path"]) for n in json.loads(result.stdout)["notes"]]
    assert any("NumberOfContourPoints 'x' (not a number)" in m for m, _ in notes)
    (invalid,) = [(m, p) for m, p in notes if m.startswith("invalid value: ")]
    assert invalid[0].startswith("invalid value: Invalid value for VR IS: 'x'")
    assert invalid[1].endswith("RS.SPINE3FX.dcm")


def test_a_library_warning_outside_reading_is_one_rtqa_line_without_a_source_path(capsys):
    """A warning no reader turns into a note (raised by a library elsewhere) is one line naming
    the library, not its source file."""
    import pydicom.valuerep

    from rtqa.cli import _show_warning

    _show_warning("something odd", UserWarning, pydicom.valuerep.__file__, 440)
    assert capsys.readouterr().err == "rtqa: warning: pydicom: something odd\n"


def test_a_case_exported_twice_counts_each_treatment_record_once(tmp_path):
    """spine_3fx copied into two folders under one root: the records of each fraction share
    their SOP Instance UIDs, so each fraction is one session of 400 MU per beam (the copies were
    summed: 800 MU delivered, a minor deviation per beam); the copies are named as duplicates."""
    for name in ("export_a", "export_b"):
        shutil.copytree(SAMPLES / "spine_3fx", tmp_path / name)
    result = run(str(tmp_path), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    (mu,) = [f for f in doc["findings"] if f["rule"] == "delivered_mu"]
    assert (
        mu["status"] == "pass"
        and "9 treatment beams, 3 fractions) over 3 sessions" in (mu["message"])
    )
    duplicates = [n for n in doc["notes"] if "duplicate SOP Instance UID" in n["message"]]
    assert sorted(Path(n["path"]).name for n in duplicates if "RT." in n["path"]) == [
        "RT.SPINE3FX.fx1.dcm",
        "RT.SPINE3FX.fx2.dcm",
        "RT.SPINE3FX.fx3.dcm",
    ]
    assert all("export_b" in n["path"] for n in duplicates)


def test_two_files_with_one_uid_and_different_content_leave_the_course_not_evaluable(tmp_path):
    """The second export of spine_3fx has its dose scaled by 2 but keeps the SOP Instance UID:
    which dose is right cannot be told; the first file found is used and named with the other
    (an ERROR note), and the course is not evaluable (was: the copy dropped as a duplicate and
    the course passed, exit 0)."""
    for name in ("export_a", "export_b"):
        shutil.copytree(SAMPLES / "spine_3fx", tmp_path / name)
    rd = tmp_path / "export_b" / "RD.SPINE3FX.dcm"
    ds = pydicom.dcmread(rd)
    ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * 2:.10g}"
    ds.save_as(rd)
    result = run(str(tmp_path), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    used = str(tmp_path / "export_a" / "RD.SPINE3FX.dcm")
    (conflict,) = [n for n in doc["notes"] if "with different content" in n["message"]]
    assert conflict["level"] == "error" and conflict["path"] == used
    assert conflict["attribute"] == "SOPInstanceUID (0008,0018)"
    assert conflict["message"].startswith(f"{rd} has this file's SOP Instance UID ")
    assert conflict["message"].endswith(
        "with different content: it is ignored and this file used; which of the two is right "
        "cannot be told"
    )
    (inputs,) = [f for f in doc["findings"] if f["rule"] == "inputs"]
    assert inputs["status"] == "not_evaluable" and inputs["message"].startswith(f"{used}: {rd}")
    assert not [f for f in doc["findings"] if f["rule"] == "input_errors"]  # not counted twice


def spine_with_roi_5(tmp_path: Path, name: str, interpreted_type: str | None = None) -> Path:
    """A copy of spine_3fx whose ROI 5 (the Esophagus) is renamed, and retyped if asked."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rs = case / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    (roi,) = [r for r in ds.StructureSetROISequence if r.ROINumber == 5]
    roi.ROIName = name
    if interpreted_type:
        (obs,) = [o for o in ds.RTROIObservationsSequence if o.ReferencedROINumber == 5]
        obs.RTROIInterpretedType = interpreted_type
    ds.save_as(rs)
    return case


def test_rois_sharing_a_name_are_chosen_by_number(tmp_path):
    """spine_3fx with its Esophagus (ROI 5) renamed 'SpinalCord': the cord is ambiguous between
    ROIs 4 and 5 (not judged, exit 4) and a mapping by name cannot tell them apart; mapping by
    number judges ROI 4 with the cord values of the untouched case, shown as 'SpinalCord #4'."""
    case = spine_with_roi_5(tmp_path, "SpinalCord")

    def cord(result):
        doc = json.loads(result.stdout)
        return [
            f for f in doc["findings"] if f["group"] == "organ" and "SpinalCord" in (f["roi"] or "")
        ]

    original = run(str(SAMPLES / "spine_3fx"), "--protocol", "nrg_br002", "--format", "json")
    want = {f["metric"]: f["value"] for f in cord(original)}
    assert set(want) == {"D0.35cc[Gy]", "D1.2cc[Gy]", "D0.03cc[Gy]"}

    ambiguous = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert ambiguous.exit_code == 4
    (f,) = [f for f in json.loads(ambiguous.stdout)["findings"] if f["rule"] == "match"]
    assert (f["status"], f["match"]) == ("not_evaluable", "ambiguous: SpinalCord #4, SpinalCord #5")
    assert f["message"].endswith(
        "choose one with --map SpinalCord=NAME (ROIs sharing a name by number: --map SpinalCord=#4)"
    )
    by_name = run(str(case), "--protocol", "nrg_br002", "--map", "SpinalCord=SpinalCord")
    assert by_name.exit_code == 2
    assert (
        "mapping SpinalCord=SpinalCord: several ROIs are named 'SpinalCord' (ROI numbers #4, #5); "
        "choose one by number, e.g. SpinalCord=#4" in by_name.stderr
    )
    mapped = run(str(case), "--protocol", "nrg_br002", "--map", "SpinalCord=#4", "--format", "json")
    assert mapped.exit_code == 0, mapped.output
    got = cord(mapped)
    assert {f["roi"] for f in got} == {"SpinalCord #4"}
    assert {f["metric"]: f["value"] for f in got} == pytest.approx(want, rel=1e-12)
    assert {f["status"] for f in got} == {"pass"}
    assert run(str(case), "--protocol", "nrg_br002", "--map", "SpinalCord=#9").exit_code == 2


def test_two_targets_sharing_a_name_are_each_judged(tmp_path):
    """spine_3fx with its Esophagus (ROI 5) made a second PTV named 'PTV_30Gy': both targets are
    judged, as 'PTV_30Gy #2' and 'PTV_30Gy #5' (30 Gy from the name), and the second one's
    missing coverage is a major deviation (the second target of a shared name went unjudged:
    exit 0)."""
    case = spine_with_roi_5(tmp_path, "PTV_30Gy", "PTV")
    original = run(str(SAMPLES / "spine_3fx"), "--protocol", "nrg_br002", "--format", "json")
    (v100,) = [f for f in json.loads(original.stdout)["findings"] if f["metric"] == "V100%[%]"]
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 1, result.output
    got = {f["roi"]: f for f in json.loads(result.stdout)["findings"] if f["metric"] == "V100%[%]"}
    assert set(got) == {"PTV_30Gy #2", "PTV_30Gy #5"}
    assert got["PTV_30Gy #2"]["value"] == pytest.approx(v100["value"], rel=1e-12)
    assert got["PTV_30Gy #2"]["status"] == "pass"
    assert got["PTV_30Gy #5"]["status"] == "major" and got["PTV_30Gy #5"]["value"] < 1.0
    assert "Rx 30 Gy in 3 fractions from ROI name" in got["PTV_30Gy #5"]["match"]


def test_targets_of_two_plans_sharing_a_name_are_each_judged_on_their_own_dose(tmp_path):
    """spine_3fx plus a second plan SPINE_B of the same course with its own copy of the
    structure set and 0.8 x the dose: each plan's 'PTV_30Gy' is judged on its own plan's dose,
    as 'PTV_30Gy [plan]' (the plan read second was judged on the first plan's target DVH)."""
    from pydicom.uid import generate_uid

    case = tmp_path / "two_plans"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    rd = pydicom.dcmread(case / "RD.SPINE3FX.dcm")
    for ds in (rp, rs, rd):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    rp.RTPlanLabel = "SPINE_B"
    rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = rs.SOPInstanceUID
    rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = rp.SOPInstanceUID
    rd.DoseGridScaling = float(rd.DoseGridScaling) * 0.8
    for ds, name in ((rp, "RP"), (rs, "RS"), (rd, "RD")):
        ds.save_as(case / f"{name}.B.dcm")
    original = run(str(SAMPLES / "spine_3fx"), "--protocol", "nrg_br002", "--format", "json")
    (v100,) = [f for f in json.loads(original.stdout)["findings"] if f["metric"] == "V100%[%]"]
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 1, result.output
    got = {
        (f["case_id"], f["roi"]): f
        for f in json.loads(result.stdout)["findings"]
        if f["metric"] == "V100%[%]"
    }
    assert set(got) == {
        ("SPINE3FX", "PTV_30Gy [SPINE3FX]"),
        ("SPINE_B", "PTV_30Gy [SPINE_B]"),
    }
    a, b = got[("SPINE3FX", "PTV_30Gy [SPINE3FX]")], got[("SPINE_B", "PTV_30Gy [SPINE_B]")]
    assert a["status"] == "pass" and a["value"] == pytest.approx(v100["value"], rel=1e-12)
    assert b["status"] == "major" and b["value"] < 1.0
    assert "Rx 30 Gy in 3 fractions from dose reference" in b["match"]


def test_a_plan_whose_fraction_groups_differ_in_count_is_not_judged_on_one_of_them(tmp_path):
    """spine_3fx with a second fraction group of 5 fractions: the plan's fraction count is
    unknown (it was taken as the first group's 3, and organs were judged against 3-fraction
    limits), so regimen, fraction count and organ limits are not evaluable and the reader
    says why."""
    import copy

    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    group = copy.deepcopy(rp.FractionGroupSequence[0])
    group.FractionGroupNumber, group.NumberOfFractionsPlanned = 2, 5
    rp.FractionGroupSequence.append(group)
    rp.save_as(case / "RP.SPINE3FX.dcm")
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    not_evaluable = {
        (f["rule"], f["roi"]) for f in doc["findings"] if f["status"] == "not_evaluable"
    }
    assert not_evaluable == {
        ("fraction_count", None),
        ("regimen", "PTV_30Gy"),
        ("limits", "SpinalCord"),
        ("limits", "Esophagus"),
    }
    (regimen,) = [f for f in doc["findings"] if f["rule"] == "regimen"]
    assert regimen["message"].startswith(
        "30 Gy in an unknown number of fractions (the plan's fraction groups state different "
        "numbers of fractions (3, 5)): the regimen cannot be judged"
    )
    assert any(
        n["message"].startswith(
            "fraction groups plan different numbers of fractions (group 1: 3, group 2: 5)"
        )
        for n in doc["notes"]
    )


def test_an_rle_dose_whose_header_does_not_match_its_pixels_is_refused(tmp_path):
    """spine_3fx's RLE dose with Columns one less than its compressed pixels hold: pydicom
    keeps the first Rows x Columns bytes of each segment, a sheared dose that still passed
    (cord D0.03cc moved by more than 1 Gy, no warning). Now the dose is not used: exit 3."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rd = pydicom.dcmread(case / "RD.SPINE3FX.dcm")
    assert rd.file_meta.TransferSyntaxUID.name == "RLE Lossless"
    rows, cols = int(rd.Rows), int(rd.Columns)
    rd.Columns = cols - 1
    rd.save_as(case / "RD.SPINE3FX.dcm")
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 3, result.output
    notes = [n["message"] for n in json.loads(result.stdout)["notes"] if n["level"] == "error"]
    assert (
        f"dose not used: pixel data does not match Rows x Columns ({rows} x {cols - 1}): each "
        f"RLE segment decodes to {rows * cols} bytes, not {rows * (cols - 1)}" in notes[0]
    )


def test_the_dose_readers_notes_reach_the_report(tmp_path):
    """A planning-system DVH the dose reader cannot use is a WARNING note of the dose file in
    the check report (the dose's own notes were only shown by rtqa info)."""
    from pydicom.dataset import Dataset

    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rd = pydicom.dcmread(case / "RD.SPINE3FX.dcm")
    ref = Dataset()
    ref.ReferencedROINumber = 4
    item = Dataset()
    item.DVHReferencedROISequence = [ref]
    item.DVHType, item.DoseUnits, item.DoseType = "CUMULATIVE", "GY", "PHYSICAL"
    item.DVHDoseScaling, item.DVHVolumeUnits, item.DVHNumberOfBins = 1.0, "CM3", 2
    item.DVHData = [1.0, 8.0, 1.0]  # three values: not (width, volume) pairs
    rd.DVHSequence = [item]
    rd.save_as(case / "RD.SPINE3FX.dcm")
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 0, result.output
    (note,) = [n for n in json.loads(result.stdout)["notes"] if "DVH item" in n["message"]]
    assert note["level"] == "warning" and note["path"].endswith("RD.SPINE3FX.dcm")
    assert note["message"].startswith("DVH item 1 (ROI 4) not used: ")
    dvh = CliRunner().invoke(cli, ["dvh", str(case), "--format", "json"], catch_exceptions=False)
    assert dvh.exit_code == 0, dvh.output
    (warning,) = [w for w in json.loads(dvh.stdout)["warnings"] if "DVH item" in w]
    assert "RD.SPINE3FX.dcm: DVH item 1 (ROI 4) not used: " in warning


def _with_second_dose_reference(tmp_path: Path, gy: float, ptv_name: str | None = None) -> Path:
    """spine_3fx whose plan has a second TARGET dose reference of ``gy`` Gy to the PTV (ROI 2),
    the PTV renamed to ``ptv_name`` when given."""
    import copy

    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    second = copy.deepcopy(rp.DoseReferenceSequence[0])
    second.DoseReferenceNumber, second.TargetPrescriptionDose = 2, gy
    rp.DoseReferenceSequence.append(second)
    rp.save_as(case / "RP.SPINE3FX.dcm")
    if ptv_name:
        rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
        (ptv,) = [r for r in rs.StructureSetROISequence if int(r.ROINumber) == 2]
        ptv.ROIName = ptv_name
        rs.save_as(case / "RS.SPINE3FX.dcm")
    return case


def test_two_prescriptions_to_one_target_are_never_resolved_by_taking_the_highest(tmp_path):
    """Dose references of 30 and 36 Gy to spine_3fx's PTV: the highest was judged (V100 of
    36 Gy, a major coverage deviation, and '36 Gy / 3 fx' in the header). The name's suffix
    (PTV_30Gy) now decides, said in the finding; a PTV without one leaves coverage not
    evaluable until --rx names the prescription."""
    case = _with_second_dose_reference(tmp_path, 36.0)
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["plans"][0]["prescription_gy"] == 30.0
    (rx,) = [f for f in doc["findings"] if f["rule"] == "prescription"]
    assert rx["value"] == 30.0 and rx["source"] == "plan (ROI name)"
    assert "several dose references point to ROI 2 (36 Gy, 30 Gy)" in rx["message"]

    unnamed = _with_second_dose_reference(tmp_path / "unnamed", 36.0, ptv_name="PTV")
    result = run(str(unnamed), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["plans"][0]["prescription_gy"] is None
    not_evaluable = {
        (f["rule"], f["roi"]) for f in doc["findings"] if f["status"] == "not_evaluable"
    }
    assert not_evaluable == {("prescription", "PTV"), ("V100%[%]", "PTV"), ("V90%[%]", "PTV")}
    given = run(str(unnamed), "--protocol", "nrg_br002", "--rx", "PTV=30", "--format", "json")
    assert given.exit_code == 0, given.output
    (v100,) = [f for f in json.loads(given.stdout)["findings"] if f["rule"] == "V100%[%]"]
    assert v100["value"] == pytest.approx(99.57, abs=0.01)


def test_dvh_of_a_plan_with_several_prescriptions_uses_each_ptvs_own(tmp_path):
    """rtqa dvh took the plan's first prescription for every structure. With 30 and 36 Gy to
    the PTV the case has none: the PTV_30Gy uses its name's 30 Gy, the organs' V100% is not
    given, and the warning says to give --rx."""
    case = _with_second_dose_reference(tmp_path, 36.0)
    args = ["dvh", str(case), "--format", "json", "--metric", "V100%[%]"]
    out = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["prescription_gy"] is None
    rois = {r["roi"]: r for r in doc["rois"]}
    assert rois["PTV_30Gy"]["prescription_gy"] == 30.0
    assert rois["PTV_30Gy"]["metrics"]["V100%[%]"] == pytest.approx(99.57, abs=0.01)
    assert rois["SpinalCord"]["prescription_gy"] is None
    assert rois["SpinalCord"]["metrics"]["V100%[%]"] is None
    assert any(
        w.startswith("the plan prescribes several doses (36, 30 Gy)") for w in doc["warnings"]
    )
    plain = CliRunner().invoke(cli, ["dvh", str(SAMPLES / "spine_3fx"), "--format", "json"])
    assert json.loads(plain.stdout)["prescription_gy"] == 30.0


def test_a_dose_reference_of_one_fraction_group_is_not_the_plans_prescription(tmp_path):
    """spine_3fx (PTV renamed 'PTV') gains a second fraction group listing no dose reference:
    the 30 Gy of dose reference 1, listed by group 1 only, is that group's share of a plan dose
    summing both, so coverage is not judged against it (it was); check and dvh say why."""
    import copy

    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    group = copy.deepcopy(rp.FractionGroupSequence[0])
    group.FractionGroupNumber = 2
    del group.ReferencedDoseReferenceSequence
    rp.FractionGroupSequence.append(group)
    rp.save_as(case / "RP.SPINE3FX.dcm")
    rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    (ptv,) = [r for r in rs.StructureSetROISequence if int(r.ROINumber) == 2]
    ptv.ROIName = "PTV"
    rs.save_as(case / "RS.SPINE3FX.dcm")
    share = (
        "dose reference 1 (30 Gy) is listed by fraction group 1 only, of the plan's 2 groups "
        "whose doses the plan dose sums: it prescribes a share"
    )
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    not_evaluable = {
        (f["rule"], f["roi"]) for f in doc["findings"] if f["status"] == "not_evaluable"
    }
    assert not_evaluable == {("prescription", "PTV"), ("V100%[%]", "PTV"), ("V90%[%]", "PTV")}
    (rx,) = [f for f in doc["findings"] if f["rule"] == "prescription"]
    assert share in rx["message"] and doc["plans"][0]["prescription_gy"] is None
    args = ["dvh", str(case), "--format", "json", "--metric", "V100%[%]"]
    dvh = json.loads(CliRunner().invoke(cli, args, catch_exceptions=False).stdout)
    assert dvh["prescription_gy"] is None
    assert any(w.startswith(share) for w in dvh["warnings"])
    (ptv_row,) = [r for r in dvh["rois"] if r["roi"] == "PTV"]
    assert ptv_row["prescription_gy"] is None and ptv_row["metrics"]["V100%[%]"] is None


@pytest.mark.parametrize(
    ("roi", "status", "exit_code", "said"),
    [
        # a TARGET dose reference on the cord: a plan inconsistency, not a pass
        (4, "not_evaluable", 4, "to ROI 4 'SpinalCord' (ORGAN), not a target the protocol judges"),
        # the GTV prescribed beside the judged PTV: said, the PTV judged as before
        (3, "info", 0, "to ROI 3 'GTV' (GTV), not a target the protocol judges"),
        # an ROI the structure set does not hold
        (9, "not_evaluable", 4, "to ROI 9, which its structure set does not hold"),
    ],
)
def test_a_prescribed_roi_that_is_not_judged_is_said(tmp_path, roi, status, exit_code, said):
    """A dose reference pointing to an ROI the protocol does not judge as a target was
    ignored without a word (a boost typed ORGAN would have gone unjudged and passed)."""
    case = _with_second_dose_reference(tmp_path, 24.0)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    rp.DoseReferenceSequence[1].ReferencedROINumber = roi
    rp.save_as(case / "RP.SPINE3FX.dcm")
    result = run(str(case), "--protocol", "nrg_br002", "--format", "json")
    assert result.exit_code == exit_code, result.output
    (f,) = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "prescribed_roi"]
    assert f["status"] == status
    assert f"the plan prescribes 24 Gy {said}: its coverage is not judged" in f["message"]


def test_no_target_found_suggests_the_protocols_own_target_id():
    """The breast protocol's target rule is PTV_Eval: the hint said '--map PTV=NAME', a mapping
    that rule does not take. Following the hint now judges the target."""
    lost = json.loads(
        run(str(SAMPLES / "spine_3fx"), "--protocol", "breast_chestwall", "--format", "json").stdout
    )
    (f,) = [f for f in lost["findings"] if f["rule"] == "targets"]
    assert f["status"] == "not_evaluable"
    assert f["message"].endswith("map one with --map PTV_Eval=NAME")
    mapped = run(
        str(SAMPLES / "spine_3fx"),
        *("--protocol", "breast_chestwall", "--map", "PTV_Eval=PTV_30Gy", "--format", "json"),
    )
    targets = [f for f in json.loads(mapped.stdout)["findings"] if f["group"] == "target"]
    assert [(f["roi"], f["metric"]) for f in targets] == [("PTV_30Gy", "V95%[%]")]
