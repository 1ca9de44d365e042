"""CSV report: one row per finding, quoting, exact round trip of numbers."""

from __future__ import annotations

import csv
import io
import math

from test_report_common import EVIL, LONG_SOURCE, make_error, make_result

from rtqa.model import Finding, Status
from rtqa.report.common import ordered_findings
from rtqa.report.csv_out import COLUMNS, render_csv


def _read(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def test_header_and_one_row_per_finding_in_report_order():
    result = make_result()
    header, rows = _read(render_csv(result))
    assert header == list(COLUMNS)
    assert len(rows) == 32
    expected = ordered_findings(result.findings)
    assert [r["rule"] for r in rows] == [f.rule for f in expected]
    assert [r["status"] for r in rows[:5]] == ["major", "minor", "not_evaluable", "pass", "info"]
    assert {r["group"] for r in rows[:5]} == {"plan"}


def test_round_trip_of_every_field():
    result = make_result()
    _, rows = _read(render_csv(result))
    for row, f in zip(rows, ordered_findings(result.findings), strict=True):
        assert row["course_id"] == "C1+C2"
        assert row["patient_id"] == "SYN-0001"
        assert row["protocol"] == "NRG-BR002"
        assert row["protocol_version"] == "2024.1"
        assert row["default_protocol"] == "true"
        assert row["case_id"] == f.case_id
        assert row["roi"] == (f.roi or "")
        assert row["match"] == (f.match or "")
        assert row["metric"] == (f.metric or "")
        assert row["unit"] == (f.unit or "")
        assert row["source"] == (f.source or "")
        assert row["confidence"] == (f.confidence or "")
        assert row["message"] == f.message
        assert row["status"] == f.status.value
        if f.value is None or not math.isfinite(f.value):
            assert row["value"] == ""
        else:
            assert float(row["value"]) == f.value  # unrounded
        if f.margin is None or not math.isfinite(f.margin):
            assert row["margin"] == ""
        else:
            assert float(row["margin"]) == f.margin
    evil = next(r for r in rows if r["rule"] == "organ-evil")
    assert evil["roi"] == EVIL
    assert evil["source"] == LONG_SOURCE
    assert (evil["per_protocol"], evil["acceptable"]) == ("<= 21.9", "<= 24")
    missing = next(r for r in rows if r["rule"] == "organ-rule-21")
    assert (missing["per_protocol"], missing["acceptable"]) == ("<= 21.9", "")  # lone limit
    # 21.9 - 22.4 is not exactly -0.5 in binary: the CSV keeps every digit
    minor = next(r for r in rows if r["rule"] == "plan-rule-17")
    assert minor["margin"] == repr(21.9 - 22.4)


def test_quoting_of_commas_quotes_and_newlines():
    message = 'line one, with "quotes"\nline two; <b>&'
    f = Finding(
        "organ",
        "r,1",
        Status.MINOR,
        message,
        roi="Lung, left",
        limits={"per_protocol": "<= 20", "ideal": "<= 15"},
    )
    text = render_csv(make_result(findings=[f], verdict=Status.MINOR, default_protocol=False))
    assert '"Lung, left"' in text
    _, rows = _read(text)
    assert len(rows) == 1
    row = rows[0]
    assert (row["rule"], row["roi"], row["message"]) == ("r,1", "Lung, left", message)
    assert row["default_protocol"] == "false"
    assert row["other_limits"] == "ideal: <= 15"


def test_several_courses_and_an_error_row():
    _, rows = _read(render_csv([make_result(), make_error(), make_result(course_id="C3")]))
    assert len(rows) == 32 + 1 + 32
    error = rows[32]
    assert (error["course_id"], error["status"], error["patient_id"]) == ("C9", "error", "SYN-0009")
    assert error["message"].startswith("RD.C9.dcm: DoseGridScaling missing")
    assert {r["course_id"] for r in rows[33:]} == {"C3"}


def test_no_findings_is_a_header_only():
    text = render_csv(make_result(findings=[], verdict=Status.PASS))
    assert text == ",".join(COLUMNS) + "\n"
