"""Pseudonymisation (DICOM PS3.15 Basic Profile subset) of batch outputs."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
from datetime import date
from pathlib import Path

import pydicom

from rtqa.batch import BatchOptions, run_batch
from rtqa.pseudonym import (
    PREFIX,
    Identifiers,
    Pseudonymizer,
    collect_identifiers,
    name_forms,
)

KEY = b"0123456789abcdef0123456789abcdef"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

NAME = "DOE^JANE^Q"
PID = "MRN-4711-XZ"
BIRTH = "19550312"
INSTITUTION = "Saint Example Hospital"
PHYSICIAN = "HOUSE^GREGORY"
OPERATOR = "THERAPIST^TINA"
ACCESSION = "ACC998877"
FOLDER = "DOE_JANE_MRN-4711-XZ"


def test_pseudonym_is_truncated_hmac_sha256_with_prefix():
    psn = Pseudonymizer(KEY)
    expected = hmac.new(KEY, b"patient\x00" + PID.encode(), hashlib.sha256).hexdigest()[:16]
    assert psn.pseudonym(PID) == PREFIX + expected
    assert Pseudonymizer(b"another key of sixteen+").pseudonym(PID) != psn.pseudonym(PID)


def test_date_shift_is_per_patient_and_keeps_intervals():
    psn = Pseudonymizer(KEY)
    ids = Identifiers(patient_ids=frozenset({PID}))
    scrub = psn.scrubber(ids, "PSN-course")
    days = psn.date_offset_days(PID)
    assert 365 <= days < 365 + 3650
    text = scrub.text("delivered from 2024-01-08 to 2024-01-29 (21 days); plan 20240105")
    first, last = re.findall(r"\d{4}-\d{2}-\d{2}", text)
    assert (date.fromisoformat(last) - date.fromisoformat(first)).days == 21
    assert (date(2024, 1, 8) - date.fromisoformat(first)).days == days
    assert "2024-01-08" not in text and "20240105" not in text


def test_scrubber_removes_names_ids_paths_and_uids():
    psn = Pseudonymizer(KEY)
    ids = Identifiers(
        patient_ids=frozenset({PID}),
        removed=frozenset(name_forms(NAME) | {INSTITUTION}),
        birth_dates=frozenset({BIRTH}),
        paths=frozenset({f"/data/{FOLDER}/RD.X.dcm"}),
        folders=frozenset({FOLDER}),
        root="/data",
    )
    scrub = psn.scrubber(ids, "PSN-c")
    text = scrub.text(
        f"/data/{FOLDER}/RD.X.dcm: Jane Doe ({PID}, born 1955-03-12) at {INSTITUTION}; "
        "uid 1.2.826.0.1.3680043.8.498.1"
    )
    for leak in ("Jane", "Doe", PID, "1955", INSTITUTION, FOLDER, "/data", "1.2.826.0.1"):
        assert leak.lower() not in text.lower()
    assert "PSN-c/RD.X.dcm" in text and psn.pseudonym(PID) in text and "2.25." in text


def _identified_case(root: Path) -> None:
    """sample_data/spine_3fx_overrun rewritten with identifiers in every header."""
    dst = root / "site_a" / FOLDER
    shutil.copytree(SAMPLE / "spine_3fx_overrun", dst)
    for path in dst.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = NAME
        ds.PatientID = PID
        ds.PatientBirthDate = BIRTH
        ds.InstitutionName = INSTITUTION
        ds.ReferringPhysicianName = PHYSICIAN
        ds.OperatorsName = OPERATOR
        ds.AccessionNumber = ACCESSION
        ds.save_as(path)


def test_collect_identifiers_reads_headers_and_folders(tmp_path):
    _identified_case(tmp_path)
    files = [str(p) for p in (tmp_path / "site_a" / FOLDER).glob("*.dcm")]
    ids = collect_identifiers(files, tmp_path)
    assert ids.patient_ids == {PID} and ids.birth_dates == {BIRTH}
    assert {"DOE^JANE^Q", "JANE Q DOE", INSTITUTION, ACCESSION, "HOUSE"} <= ids.removed
    assert ids.folders == {"site_a", FOLDER}


def test_pseudonymised_batch_outputs_hold_no_identifier(tmp_path):
    root = tmp_path / "in"
    _identified_case(root)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    out = tmp_path / "out"
    opts = BatchOptions(
        root=str(root),
        out=str(out),
        workers=1,
        key_file=str(key_file),
        progress_mode="quiet",
        format_extra=("csv", "junit"),
    )
    report = run_batch(opts)
    assert report.computed == 1
    row = report.rows[0]
    psn = Pseudonymizer(KEY)
    assert row["patient_id"] == psn.pseudonym(PID)
    # the 21-day rule is still judged on true intervals: the overrun stays a deviation
    assert row["status"] == "major" and "span = 24 days" in row["worst_finding"]
    leaks = [NAME, "DOE", "JANE", PID, BIRTH, "1955-03-12", INSTITUTION, "HOUSE", "GREGORY"]
    leaks += [OPERATOR, "THERAPIST", ACCESSION, FOLDER, "site_a", "SPINEOVERRUN_orig"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"summary.csv", "summary.json", "findings.csv", "junit.xml"}
    for path in files:
        rel = str(path.relative_to(out))
        text = path.read_text("utf-8", errors="replace")
        for leak in leaks:
            assert leak.lower() not in rel.lower(), (leak, rel)
            assert leak.lower() not in text.lower(), (leak, rel)
        assert str(root) not in text
    # the same key gives the same pseudonyms on a rerun, which skips the finished course
    again = run_batch(opts)
    assert again.skipped == 1 and again.rows[0]["patient_id"] == row["patient_id"]
