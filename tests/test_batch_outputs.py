"""What a batch writes: CSV cells safe from formula injection, JUnit errors for unreadable
courses, the incomplete-batch banner of index.html, progress that never stops a batch."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtqa.batch_exec import as_reported
from rtqa.batch_progress import Progress
from rtqa.batch_task import Outcome
from rtqa.model import CheckResult, Finding, Level, Note, Status
from rtqa.report import CourseError
from rtqa.report.csv_out import neutralise, render_csv, safe_cells
from rtqa.report.html_index import render_index
from rtqa.report.junit import render_junit

EVIL = '=HYPERLINK("http://x","y")'
WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _result(patient_id: str = "P1", exit_code: int = 1, notes=(), findings=None) -> CheckResult:
    if findings is None:
        findings = [
            Finding(
                rule="constraint",
                group="oar",
                status=Status.MAJOR,
                roi="-SpinalCord",
                metric="D0.03cc",
                value=-1.25,
                unit="Gy",
                limits={"per_protocol": "<= 14 Gy"},
                margin=-2.5,
                message="@cmd",
            )
        ]
    return CheckResult(
        course_id="C1",
        patient_id=patient_id,
        plans=[],
        protocol_id="NRG-BR002",
        protocol_version="1",
        protocol_title="",
        protocol_source="",
        default_protocol=True,
        findings=findings,
        verdict=Status.MAJOR,
        exit_code=exit_code,
        rtqa_version="0",
        created=WHEN,
        notes=list(notes),
    )


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("P=1", "P=1"),
        ("", ""),
        ("'=1", "'=1"),  # idempotent
    ],
)
def test_neutralise_prefixes_formula_triggers_only(text, safe):
    assert neutralise(text) == safe


def test_safe_cells_leave_numbers_and_numeric_columns_alone():
    row = {"id": EVIL, "value": "-1.25", "n": -3, "x": 2.5, "none": None}
    cells = safe_cells(row, ["id", "value", "n", "x", "none"], numeric={"value"})
    assert cells == {"id": "'" + EVIL, "value": "-1.25", "n": "-3", "x": "2.5", "none": ""}


def test_findings_csv_neutralises_text_but_keeps_negative_numbers():
    text = render_csv(_result(patient_id=EVIL))
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["patient_id"] == "'" + EVIL
    assert row["roi"] == "'-SpinalCord"
    assert row["message"] == "'@cmd"
    assert row["value"] == "-1.25" and float(row["value"]) == -1.25
    assert row["margin"] == "-2.5"
    assert row["status"] == "major"


def test_junit_reports_an_unreadable_course_as_an_error():
    unreadable = _result(
        exit_code=3,
        notes=[Note(Level.ERROR, "truncated file: RD.dcm"), Note(Level.WARNING, "odd")],
        findings=[
            Finding(rule="dose", group="inputs", status=Status.NOT_EVALUABLE, message="no dose")
        ],
    )
    crashed = CourseError(course_id="C2", message="worker died", exit_code=5, created=WHEN)
    fine = _result()
    root = ET.fromstring(render_junit([unreadable, crashed, fine]).split("\n", 1)[1])
    assert root.get("errors") == "2"
    assert root.get("tests") == "4" and root.get("failures") == "1" and root.get("skipped") == "1"
    suite = root.findall("testsuite")[0]
    assert (suite.get("errors"), suite.get("tests"), suite.get("skipped")) == ("1", "2", "1")
    first = suite.find("testcase")
    assert (first.get("classname"), first.get("name")) == ("course", "check")
    error = first.find("error")
    assert error.get("message") == "truncated file: RD.dcm"
    assert error.get("type") == "unreadable"
    assert root.findall("testsuite")[2].get("errors") == "0"


def test_junit_error_without_error_notes_names_the_worst_finding():
    bare = _result(
        exit_code=3,
        findings=[
            Finding(rule="inputs", group="inputs", status=Status.NOT_EVALUABLE, message="no RS")
        ],
    )
    root = ET.fromstring(render_junit(bare).split("\n", 1)[1])
    assert root.find("testsuite/testcase/error").get("message") == "not_evaluable: inputs: no RS"


def _outcome(status: str, exit_code: int, text: str) -> Outcome:
    return Outcome(
        course_id="C", key="k" * 64, stem="C", text=text, status=status, exit_code=exit_code
    )


def test_unreadable_outcome_is_reported_as_error_with_its_reasons():
    doc = {
        "notes": [
            {"level": "error", "message": "truncated file"},
            {"level": "warning", "message": "w"},
        ],
        "findings": [],
    }
    out = as_reported(_outcome("not_evaluable", 3, json.dumps(doc)))
    assert (out.status, out.error) == ("error", "truncated file")
    ok = as_reported(_outcome("not_evaluable", 4, "{}"))
    assert (ok.status, ok.error) == ("not_evaluable", None)
    garbled = as_reported(_outcome("major", 3, "not json"))
    assert (garbled.status, garbled.error) == ("error", "the input could not be read")


def test_index_shows_pending_courses_in_a_banner(tmp_path: Path):
    rows = [{"case_id": "A", "verdict": "pass"}, {"case_id": "B", "verdict": "pass"}]
    page = render_index(rows, tmp_path, pending=38, why="interrupted by SIGINT").read_text()
    assert "2 case(s): 2 pass; 38 pending (no result yet)" in page
    assert (
        'role="alert"><strong>Incomplete: 38 of 40 courses pending, not checked '
        "(interrupted by SIGINT)." in page
    )
    complete = render_index(rows, tmp_path).read_text()
    assert "Incomplete" not in complete and 'id="incomplete"' not in complete
    assert "2 case(s): 2 pass</p>" in complete


class _Broken(io.StringIO):
    def __init__(self, error: type[Exception]) -> None:
        super().__init__()
        self.error = error
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise self.error("gone")


@pytest.mark.parametrize("error", [BrokenPipeError, OSError, ValueError])
def test_a_broken_stream_silences_progress_but_counting_goes_on(error):
    stream = _Broken(error)
    p = Progress(3, stream=stream, mode="log")
    p.message("start")
    p.update("a", "pass", 1.0)
    p.update("b", "error", 1.0, "boom")
    p.close()
    assert stream.writes == 1  # tried once, then quiet
    assert (p.mode, p.done, p.failed) == ("quiet", 2, 1)


def test_a_closed_stderr_means_quiet_progress(monkeypatch):
    monkeypatch.setattr("sys.stderr", None)
    p = Progress(2)
    p.update("a", "pass", 1.0)
    assert (p.mode, p.done) == ("quiet", 1)


def test_worst_finding_names_the_most_exceeded_and_never_rounds_onto_its_limit():
    from rtqa.batch import worst_finding

    def organ(roi, value, limit, margin, status="major"):
        return {"group": "organ", "rule": "organ", "status": status, "roi": roi,
                "metric": "D0.035cc[Gy]", "value": value, "unit": "Gy",
                "limits": {"per_protocol": limit}, "margin": margin}  # fmt: skip

    doc = {
        "findings": [
            organ("Esophagus", 25.5, "<= 25.2", -0.3),  # 1.2 % beyond
            organ("SpinalCord", 21.9000004, "<= 21.9", -4e-7),  # just beyond: never '21.9'
            organ("Duodenum", 20.0, "<= 16.5", -3.5),  # 21 % beyond: the worst
            organ("Stomach", 10.0, "<= 16.5", 6.5, status="pass"),
        ]
    }
    assert worst_finding(doc) == (
        "major: Duodenum D0.035cc[Gy] = 20.00 Gy (limit <= 16.5) (+2 more major)"
    )
    doc["findings"] = doc["findings"][1:2]
    assert worst_finding(doc) == "major: SpinalCord D0.035cc[Gy] = 21.9000004 Gy (limit <= 21.9)"
    # an organ of a course of mixed fraction counts is judged in EQD2 against converted limits
    mixed = organ("SpinalCord", 30.1, "<= 26.91 (EQD2 of <= 19.5)", -3.19)
    assert worst_finding({"findings": [mixed]}).endswith(
        "= 30.10 Gy EQD2 (limit <= 26.91 (EQD2 of <= 19.5))"
    )
    assert worst_finding({"findings": doc["findings"][:0]}) == ""
    # a figure known within bounds: both ends, or the lower one where the upper is open
    cum = organ("SpinalCord", 80.76, "<= 70", -10.76)
    cum.update(metric="EQD2cum Max", value_range={"low": 78.41, "high": 80.76})
    assert worst_finding({"findings": [cum]}) == (
        "major: SpinalCord EQD2cum Max = 78.41-80.76 Gy (limit <= 70)"
    )
    cum["value_range"] = {"low": 78.41, "high": None}
    assert (
        worst_finding({"findings": [cum]})
        == "major: SpinalCord EQD2cum Max >= 78.41 Gy (limit <= 70)"
    )
    # not evaluable: why, not the value measured
    why = "the protocol sets no prior-radiation policy"
    ne = organ("Prior", 54.37, "", None, status="not_evaluable")
    ne.update(rule="prior_policy", metric="overlap", unit="cc", message=why)
    assert worst_finding({"findings": [ne]}) == (
        "not_evaluable: Prior overlap: the protocol sets no prior-radiation policy"
    )
