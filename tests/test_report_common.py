"""Shared check results for the report tests, and tests of what every renderer shares."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from rtqa.model import CheckResult, Finding, Level, Note, PlanSummary, Status, worst_status
from rtqa.report.common import (
    CourseError,
    format_margin,
    format_number,
    format_quantity,
    iso_datetime,
    limits_label,
    ordered_findings,
    status_counts,
    structure_label,
    thresholds,
)

GROUPS = ("plan", "target", "organ", "quality", "integrity", "prior")
# given order is deliberately not the report order
GIVEN_STATUS_ORDER = (Status.PASS, Status.INFO, Status.MINOR, Status.NOT_EVALUABLE, Status.MAJOR)
EXPECTED_STATUS_ORDER = ("major", "minor", "not_evaluable", "pass", "info")
EVIL = "<script>&\"'"
LONG_SOURCE = (
    "AAPM TG-101 (Benedict et al., Med Phys 37:4078, 2010) Table III, serial tissue, "
    "three-fraction column, as transcribed in NRG-BR001 Appendix"
)


def _finding(group: str, status: Status, i: int) -> Finding:
    """One finding per (group, status) with distinct, recognisable values."""
    if status is Status.NOT_EVALUABLE:
        return Finding(
            group=group,
            rule=f"{group}-rule-{i}",
            status=status,
            message=f"{group}: structure not found among the contours (reason {i})",
            roi=f"Missing{group.capitalize()}",
            metric="D0.03cc[Gy]",
            unit="Gy",
            limits={"limit": "<= 21.9"},
            source="AAPM TG-101 Tab III",
            confidence="secondary",
            case_id="C1",
        )
    value = {
        Status.PASS: 18.25,
        Status.INFO: 7.5,
        Status.MINOR: 22.4,
        Status.MAJOR: 25.125,
    }[status]
    return Finding(
        group=group,
        rule=f"{group}-rule-{i}",
        status=status,
        message=f"{group} {status.value} finding {i}",
        roi=f"{group.capitalize()}{status.value.capitalize()}",
        match="alias of SpinalCord" if group == "organ" else None,
        metric="D0.03cc[Gy]",
        value=value,
        unit="Gy",
        limits={"per_protocol": "<= 21.9", "acceptable": "<= 24"},
        margin=21.9 - value,
        source="AAPM TG-101 Tab III",
        confidence="secondary" if status is not Status.MAJOR else "unverified",
        case_id="C1",
    )


def all_findings() -> list[Finding]:
    """30 findings: every status in every group, given in a scrambled order."""
    findings = []
    i = 0
    for status in GIVEN_STATUS_ORDER:
        for group in reversed(GROUPS):
            findings.append(_finding(group, status, i))
            i += 1
    return findings


def make_result(**overrides) -> CheckResult:
    """A course with findings of every status in every group, notes, a prior plan."""
    findings = overrides.pop("findings", None)
    if findings is None:
        findings = all_findings()
        # edge cases a renderer must survive
        findings.append(
            Finding(
                group="organ",
                rule="organ-evil",
                status=Status.MAJOR,
                message="D0.03cc 30.5 Gy above 21.9 Gy",
                roi=EVIL,
                match="pattern cord*",
                metric="D0.03cc[Gy]",
                value=30.5,
                unit="Gy",
                limits={"per_protocol": "<= 21.9", "acceptable": "<= 24"},
                margin=-8.6,
                source=LONG_SOURCE,
                confidence="unverified",
                case_id="C2",
            )
        )
        findings.append(
            Finding(
                group="target",
                rule="target-nan",
                status=Status.INFO,
                message="homogeneity could not be computed",
                roi="PTV_30",
                metric="HI",
                value=math.nan,
                unit=None,
                margin=math.inf,
                case_id="C2",
            )
        )
    fields = dict(
        course_id="C1+C2",
        patient_id="SYN-0001",
        plans=[
            PlanSummary("C1", "SpineT7", "1.2.3.1", 3, 30.0, "APPROVED"),
            PlanSummary("C2", "SpineT9", "1.2.3.2", 3, 30.0, "UNAPPROVED"),
            PlanSummary("P0", "OldSpine", "1.2.3.0", 5, 20.0, "APPROVED", prior=True),
        ],
        protocol_id="NRG-BR002",
        protocol_version="2024.1",
        protocol_title="Metastasis-directed SBRT (reconstruction from NRG-BR001 and TG-101)",
        protocol_source="constraints/nrg_br002.yaml",
        default_protocol=True,
        findings=findings,
        verdict=worst_status(findings),
        exit_code=1,
        rtqa_version="0.1.0",
        created=datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))),
        notes=[
            Note(Level.WARNING, "no treatment records: plan dates used", "RP.C1.dcm"),
            Note(Level.INFO, "ROIVolume absent", "RS.C1.dcm", "ROIVolume (3006,002C)"),
        ],
        input_hashes={"RP.C1.dcm": "a" * 64, "RS.C1.dcm": "0123456789abcdef" * 4},
        grouping="C1 and C2 delivered within 21 days; P0 delivered before C1 began",
        curves={"PTV_30": (np.array([0.0, 10.0, 30.0, np.nan]), np.array([100.0, 99.5, 95.0, 0]))},
    )
    fields.update(overrides)
    return CheckResult(**fields)


def make_error() -> CourseError:
    return CourseError(
        course_id="C9",
        message="RD.C9.dcm: DoseGridScaling missing [DoseGridScaling (3004,000E)]",
        exit_code=3,
        patient_id="SYN-0009",
        rtqa_version="0.1.0",
        created=datetime(2024, 5, 6, 5, 0, 0, tzinfo=UTC),
    )


# ------------------------------------------------------------------------------------------


def test_order_groups_then_deviations_first():
    ordered = ordered_findings(all_findings())
    assert len(ordered) == 30
    assert [f.group for f in ordered] == [g for g in GROUPS for _ in range(5)]
    assert [f.status.value for f in ordered] == list(EXPECTED_STATUS_ORDER) * 6


def test_order_is_stable_and_unknown_groups_go_last():
    a = Finding("organ", "a", Status.PASS)
    b = Finding("custom", "b", Status.MAJOR)
    c = Finding("organ", "c", Status.PASS)
    d = Finding("plan", "d", Status.INFO)
    assert [f.rule for f in ordered_findings([a, b, c, d])] == ["d", "a", "c", "b"]


def test_counts_include_every_status():
    counts = status_counts(all_findings())
    assert counts == {"major": 6, "minor": 6, "not_evaluable": 6, "pass": 6, "info": 6}
    assert status_counts([]) == dict.fromkeys(EXPECTED_STATUS_ORDER, 0)


@pytest.mark.parametrize(
    ("value", "refs", "expected"),
    [
        (21.94, (21.9,), "21.94"),
        (21.904, (21.9,), "21.904"),  # would print 21.90: on the limit, but it is above
        (21.896, (21.9,), "21.896"),  # would print 21.90: on the limit, but it is below
        (21.9, (21.9,), "21.90"),  # exactly on the limit: prints as the limit
        (1523.44, (), "1523.4"),
        (0.0123, (), "0.0123"),
        (0.0, (), "0"),
        (math.nan, (), ""),
        (None, (), ""),
    ],
)
def test_rounding_never_crosses_a_limit(value, refs, expected):
    assert format_number(value, refs) == expected


def test_margin_keeps_sign_and_never_shows_zero_for_nonzero():
    assert format_margin(-1.2, "Gy") == "-1.20 Gy"
    assert format_margin(0.0004, "Gy") == "+0.00040 Gy"
    assert format_margin(-0.0004, "Gy") == "-0.00040 Gy"
    assert format_margin(0.0, "Gy") == "0 Gy"
    assert format_margin(math.inf, "Gy") == ""


def test_labels():
    f = Finding("organ", "r", Status.PASS, roi="cord", match="alias of SpinalCord")
    assert structure_label(f) == "cord (alias of SpinalCord)"
    assert structure_label(Finding("organ", "r", Status.PASS, roi="X", match="X")) == "X"
    assert limits_label({"acceptable": "<= 24", "per_protocol": "<= 21.9"}) == "<= 21.9 / <= 24"
    assert limits_label({"limit": ">= 95", "ideal": ">= 98"}) == ">= 95 / ideal: >= 98"
    assert thresholds({"per_protocol": "<= 21.9", "acceptable": "<= 2.4e1"}) == [21.9, 24.0]
    assert format_quantity(95.0, "%", (95.0,)) == "95.00 %"


def test_iso_datetime_has_an_offset():
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert iso_datetime(when) == "2024-05-06T07:08:09+02:00"
    assert iso_datetime(datetime(2024, 5, 6, 7, 8, 9))[19:] != ""  # naive: local offset added


def test_whole_counts_print_without_decimals():
    from rtqa.report.common import format_quantity

    assert format_quantity(3.0, "fractions") == "3 fractions"
    assert format_quantity(2.5, "fractions") == "2.50 fractions"
    assert format_quantity(30.0, "Gy") == "30.00 Gy"
