"""``rtqa batch`` planning: courses told apart by UID when their plans share a label, folders
whose files gave no course, an output folder whose name prefixes the input's, and input files
that vanish between planning and checking. Real DICOM (sample_data, modified with pydicom)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

import rtqa.batch as batch
from rtqa.batch import BatchOptions, run_batch
from rtqa.batch_task import CourseTask, compute_course
from rtqa.check import CheckOptions, run_check

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def _options(root, out, **kw) -> BatchOptions:
    return BatchOptions(root=str(root), out=str(out), progress_mode="quiet", html=False, **kw)


def _relabelled(case: str, dst: Path, patient: str, label: str) -> Path:
    """The RT objects of a sample case with fresh UIDs (consistently remapped), another patient
    and plan label ``label``."""
    dst.mkdir(parents=True)
    uids: dict[str, str] = {}
    for src in sorted((SAMPLES / case).glob("R*.dcm")):
        ds = pydicom.dcmread(src)
        for el in ds.iterall():
            if el.VR == "UI" and el.value:
                many = isinstance(el.value, (list, pydicom.multival.MultiValue))
                vals = [str(v) for v in (el.value if many else [el.value])]
                new = [
                    v if v.startswith("1.2.840.10008") else uids.setdefault(v, generate_uid())
                    for v in vals
                ]
                el.value = new if many else new[0]
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = patient
        if "RTPlanLabel" in ds:
            ds.RTPlanLabel = label
        ds.save_as(dst / src.name)
    return dst


def _truncated_copy(case: str, dst: Path, size: int = 400) -> Path:
    dst.mkdir(parents=True)
    for src in sorted((SAMPLES / case).glob("R*.dcm")):
        (dst / src.name).write_bytes(src.read_bytes()[:size])
    return dst


def _rows(report) -> dict[str, dict]:
    return {r["course_id"]: r for r in report.rows}


# --------------------------------------------------------------------------------------------
# 1. courses whose plans share a label
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("twins")
    _relabelled("spine_3fx", root / "a", "PAT-A", "SBRT")
    _relabelled("spine_3fx_overrun", root / "b", "PAT-B", "SBRT")
    _relabelled("lung_5fx", root / "c", "PAT-C", "sbrt")
    return root


def _expected(root: Path) -> dict[str, tuple[str, int, str]]:
    """course id -> (verdict, exit code, patient) as rtqa check on the whole root gives them."""
    results = run_check([str(root)], CheckOptions())
    return {r.course_id: (r.verdict.value, r.exit_code, r.patient_id) for r in results}


def test_courses_sharing_a_plan_label_get_the_verdicts_of_rtqa_check(twins, tmp_path):
    expected = _expected(twins)
    assert sorted(v[:2] for v in expected.values()) == [("major", 1), ("major", 1), ("pass", 0)]
    assert all(cid.lower().startswith("sbrt-") and len(cid) == 11 for cid in expected)
    out = tmp_path / "out"
    report = run_batch(_options(twins, out))
    rows = _rows(report)
    assert {c: (r["status"], r["exit_code"], r["patient_id"]) for c, r in rows.items()} == expected
    assert report.exit_code == 1 and report.computed == 3
    for cid, row in rows.items():
        assert row["error"] == "" and row["result_file"].startswith(f"results/{cid}--")
        assert not row["result_file"].endswith(".failed.json")
    by_patient = {r["patient_id"]: r for r in rows.values()}
    assert by_patient["PAT-A"]["status"] == "pass"
    assert by_patient["PAT-C"]["plans"] == "sbrt" and by_patient["PAT-C"]["fractions"] == "5"
    # each result names its cases as the planner (and rtqa check on the root) did
    for cid, row in rows.items():
        doc = json.loads((out / row["result_file"]).read_text())
        assert doc["course_id"] == cid
        assert [p["case_id"] for p in doc["plans"]] == [cid]
        assert {f["case_id"] for f in doc["findings"]} == {cid}
    again = run_batch(_options(twins, out))
    assert (again.skipped, again.computed, again.exit_code) == (3, 0, 1)


def test_courses_sharing_a_label_on_a_dask_local_cluster(twins, tmp_path):
    pytest.importorskip("distributed")
    report = run_batch(_options(twins, tmp_path / "out", workers=2, local_cluster=True))
    rows = _rows(report)
    assert {c: (r["status"], r["exit_code"]) for c, r in rows.items()} == {
        c: v[:2] for c, v in _expected(twins).items()
    }
    assert report.exit_code == 1


def test_a_course_the_worker_cannot_find_is_stored_as_failed_and_retried(
    twins, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real = batch.make_tasks

    def wrong_uids(*args, **kwargs):
        return [
            dataclasses.replace(t, cases=(("1.2.3.4", t.course_id),)) for t in real(*args, **kwargs)
        ]

    monkeypatch.setattr(batch, "make_tasks", wrong_uids)
    report = run_batch(_options(twins, out))
    assert report.exit_code == 3 and len(report.rows) == 3
    for cid, row in _rows(report).items():
        assert (row["status"], row["exit_code"]) == ("error", 5)
        assert row["result_file"].endswith(".failed.json")
        assert row["error"] == (
            f"internal error: the course's files gave other courses "
            f"({cid.split('-')[0]}) than planned ({cid})"
        )
    monkeypatch.setattr(batch, "make_tasks", real)
    again = run_batch(_options(twins, out))
    assert (again.skipped, again.computed, again.exit_code) == (0, 3, 1)
    assert sorted(r["status"] for r in again.rows) == ["major", "major", "pass"]
    assert not any(r["result_file"].endswith(".failed.json") for r in again.rows)


# --------------------------------------------------------------------------------------------
# 2. folders whose files gave no course
# --------------------------------------------------------------------------------------------


def test_folders_that_gave_no_course_are_error_rows_or_notes(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLES / "spine_3fx", root / "good")
    _truncated_copy("lung_5fx", root / "allbad")
    (root / "fake").mkdir()
    (root / "fake" / "RD.fake.dcm").write_text("not DICOM at all\n")
    (root / "fake" / "README.txt").write_text("notes\n")
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("how we scan\n")
    out = tmp_path / "out"
    report = run_batch(_options(root, out))
    rows = _rows(report)
    assert set(rows) == {"SPINE3FX", "allbad", "fake"}
    assert (rows["SPINE3FX"]["status"], rows["SPINE3FX"]["exit_code"]) == ("pass", 0)
    bad = rows["allbad"]
    assert (bad["status"], bad["exit_code"]) == ("error", 3)
    assert bad["error"].startswith(
        "input unreadable: folder allbad gave no course (8 of 8 files unreadable): "
        "RD.LUNG5FX.dcm: not a readable DICOM file"
    )
    assert (
        "RP.LUNG5FX.dcm: truncated file: data element header cut short at byte 398 of 400"
        in (bad["error"])
    )
    assert bad["error"].endswith("; and 3 more")
    assert rows["fake"]["error"] == (
        "input unreadable: folder fake gave no course (1 of 2 files unreadable): "
        "RD.fake.dcm: not a readable DICOM file"
    )
    assert report.exit_code == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"] == ["folder docs: 1 file, no DICOM files: nothing to check"]
    assert summary["exit_code"] == 3 and summary["courses"] == 3
    # done (deterministic), so a rerun skips them; repairing the folder checks it
    again = run_batch(_options(root, out))
    assert (again.skipped, again.computed, again.exit_code) == (3, 0, 3)
    shutil.rmtree(root / "allbad")
    shutil.copytree(SAMPLES / "lung_5fx", root / "allbad")
    fixed = run_batch(_options(root, out))
    assert (fixed.skipped, fixed.computed) == (2, 1)
    assert _rows(fixed)["LUNG5FX"]["status"] == "major"
    assert "allbad" not in _rows(fixed)


def test_a_dicom_preamble_without_dcm_suffix_counts_and_unused_images_are_a_note(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SAMPLES / "bone_1fx", root / "good")
    (root / "noext").mkdir()
    plan = next((SAMPLES / "lung_5fx").glob("RP.*.dcm")).read_bytes()
    (root / "noext" / "plan").write_bytes(plan[:300])
    assert batch.looks_like_dicom(str(root / "noext" / "plan"))
    images = root / "images"
    images.mkdir()
    for ct in sorted((SAMPLES / "spine_3fx").glob("CT.1*.dcm")):
        ds = pydicom.dcmread(ct)
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.999"
        ds.save_as(images / ct.name)
    report = run_batch(_options(root, tmp_path / "out"))
    rows = _rows(report)
    assert set(rows) == {"BONE1FX", "noext"}
    assert rows["noext"]["exit_code"] == 3
    assert rows["noext"]["error"].startswith(
        "input unreadable: folder noext gave no course (1 of 1 files unreadable): plan: "
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notes"] == [
        "folder images: 11 files, 11 DICOM files of no course: nothing to check"
    ]


def test_a_root_of_only_unreadable_files_gives_error_rows_and_an_empty_one_exit_3(tmp_path):
    root = tmp_path / "root"
    _truncated_copy("spine_3fx", root / "x" / "y")
    report = run_batch(_options(root, tmp_path / "out"))
    assert [(r["course_id"], r["status"], r["exit_code"]) for r in report.rows] == [
        ("x/y", "error", 3)
    ]
    assert report.exit_code == 3
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("nothing\n")
    from rtqa.errors import InputError

    with pytest.raises(InputError, match="nothing readable as DICOM-RT"):
        run_batch(_options(tmp_path / "empty", tmp_path / "out2"))


# --------------------------------------------------------------------------------------------
# 3. --out a string prefix of the root; files vanishing after planning
# --------------------------------------------------------------------------------------------


def test_tree_state_excludes_by_path_components(tmp_path):
    for name in ("qa/x.json", "qa_2024/a/RP.dcm", "qa2/b.dcm", "c/d.dcm"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    listed = {
        Path(p).relative_to(tmp_path).as_posix()
        for p, _, _ in batch._tree_state(tmp_path, tmp_path / "qa")
    }
    assert listed == {"qa_2024/a/RP.dcm", "qa2/b.dcm", "c/d.dcm"}
    assert batch._tree_state(tmp_path / "c", tmp_path / "c") == []


@pytest.mark.parametrize("layout", ["out_prefixes_root", "out_prefixes_subfolder"])
def test_new_and_changed_courses_are_seen_when_out_prefixes_the_input(
    tmp_path, layout, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    if layout == "out_prefixes_root":
        root, out, cases = Path("rc/cases"), Path("rc/c"), Path("rc/cases")
    else:
        root, out, cases = Path("R"), Path("R/qa"), Path("R/qa_2024")
    shutil.copytree(SAMPLES / "spine_3fx", cases / "spine")
    first = run_batch(_options(root, out))
    assert [r["course_id"] for r in first.rows] == ["SPINE3FX"]
    shutil.copytree(SAMPLES / "lung_5fx", cases / "lung")
    second = run_batch(_options(root, out))
    assert (second.planned, second.skipped, second.computed) == (2, 1, 1)
    assert _rows(second)["LUNG5FX"]["status"] == "major"
    (cases / "lung" / "RT.LUNG5FX.fx5.dcm").unlink()
    third = run_batch(_options(root, out))
    assert (third.planned, third.skipped, third.computed, third.exit_code) == (2, 1, 1, 1)
    doc = json.loads((out / _rows(third)["LUNG5FX"]["result_file"]).read_text())
    assert not any(p.endswith("RT.LUNG5FX.fx5.dcm") for p in doc["input_hashes"])


def test_a_file_gone_between_planning_and_digesting_is_an_error_row(tmp_path, monkeypatch):
    root, out = tmp_path / "root", tmp_path / "out"
    shutil.copytree(SAMPLES / "spine_3fx", root / "spine")
    shutil.copytree(SAMPLES / "lung_5fx", root / "lung")
    gone = root / "lung" / "RT.LUNG5FX.fx5.dcm"
    real = batch.plan

    def plan_then_delete(*args, **kwargs):
        planned = real(*args, **kwargs)
        gone.unlink()
        return planned

    monkeypatch.setattr(batch, "plan", plan_then_delete)
    report = run_batch(_options(root, out))
    rows = _rows(report)
    assert (rows["LUNG5FX"]["status"], rows["LUNG5FX"]["exit_code"]) == ("error", 3)
    assert rows["LUNG5FX"]["error"] == (
        f"input file gone since planning: {gone} (No such file or directory)"
    )
    assert rows["LUNG5FX"]["result_file"].endswith(".failed.json")  # retried next run
    assert rows["SPINE3FX"]["status"] == "pass" and report.exit_code == 3
    monkeypatch.setattr(batch, "plan", real)
    again = run_batch(_options(root, out))
    assert (again.skipped, again.computed, again.exit_code) == (1, 1, 1)
    assert _rows(again)["LUNG5FX"]["status"] == "major"


def test_a_file_gone_before_the_worker_reads_it_is_retried_not_a_crash(tmp_path):
    course = shutil.copytree(SAMPLES / "spine_3fx", tmp_path / "spine")
    files = tuple(sorted(str(p) for p in course.iterdir()))
    os.remove(course / "RD.SPINE3FX.dcm")
    task = CourseTask(course_id="SPINE3FX", files=files, key="0" * 64, stem="SPINE3FX")
    outcome = compute_course(task)
    assert (outcome.status, outcome.exit_code, outcome.retry) == ("error", 3, True)
    assert outcome.error == f"input file gone since planning: {course / 'RD.SPINE3FX.dcm'}"
    assert json.loads(outcome.text)["status"] == "error"


def test_a_result_of_another_schema_version_is_not_reused(tmp_path, monkeypatch):
    """The course key covers the result schema: a batch resumed by an rtqa writing another
    version of the JSON recomputes every course instead of mixing the two forms."""
    import rtqa.report.jsonfmt as jsonfmt

    files = [str(p) for p in sorted((SAMPLES / "spine_3fx").glob("R*.dcm"))]
    protocol = Path(batch.__file__).resolve().parents[1] / "constraints" / "nrg_br002.yaml"
    options = _options(SAMPLES, tmp_path / "out")

    def key() -> str:
        (task,) = batch.make_tasks([("SPINE3FX", files)], options, protocol, None)
        return task.key

    now = key()
    assert key() == now  # the same inputs, the same key
    monkeypatch.setattr(jsonfmt, "SCHEMA_VERSION", "rtqa-check-result/99")
    assert key() != now
