"""JUnit XML report of ``rtqa check``, for continuous-integration dashboards.

One ``<testsuite>`` per course (named by the course id) inside ``<testsuites>``; one
``<testcase>`` per finding, ``classname`` the finding group and ``name`` the structure and the
metric (or rule), unique within the group (a repeated name gets its rule, then a number).
``minor`` and ``major`` are ``<failure type="minor|major">`` whose message
gives value, limits, margin and source; ``not_evaluable`` is ``<skipped message="reason">``;
``pass`` and ``info`` are plain test cases. The course's patient, protocol (with
``default_protocol``), verdict, exit code and notes are ``<property>`` elements. A course that
could not be checked is a suite with one ``<error>``; so is a course checked although its input
could not be read (exit code 3, an ``error`` row of the batch summary): its suite starts with an
``<error>`` test case (``course`` / ``check``, the reasons as message) before the findings, so
that JUnit's ``errors`` count equals the number of error courses. Characters XML 1.0 cannot
hold are replaced by U+FFFD.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence

from rtqa.errors import EXIT_UNREADABLE
from rtqa.model import CheckResult, Finding, Level, Status
from rtqa.report.common import (
    CourseError,
    Renderable,
    as_list,
    display_unit,
    format_margin,
    format_value,
    iso_datetime,
    ordered_findings,
    ordered_limits,
    source_label,
    status_counts,
    status_of,
    structure_label,
    thresholds,
)

_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: object) -> str:
    return _ILLEGAL_XML.sub("\ufffd", str(text))


def _element(parent: ET.Element, tag: str, **attributes: object) -> ET.Element:
    return ET.SubElement(parent, tag, {k: _clean(v) for k, v in attributes.items()})


def case_name(finding: Finding, with_case: bool = False) -> str:
    """``"SpinalCord D0.03cc[Gy]"``: structure and metric (or rule); ``[case]`` when asked."""
    what = finding.metric or finding.rule
    name = f"{finding.roi} {what}" if finding.roi else what
    if with_case and finding.case_id:
        name = f"{name} [{finding.case_id}]"
    return name


def unique_names(findings: Sequence[Finding], names: Sequence[str]) -> list[str]:
    """``names`` made unique within each group (a dashboard keys test cases by class and name,
    and keeps one of two alike): a repeated name gets its rule (``"targets (min_targets)"``,
    ``"targets (max_targets)"``), then, if still repeated, a number (``#2``)."""
    count = Counter((f.group, n) for f, n in zip(findings, names, strict=True))
    out = [
        f"{n} ({f.rule})" if count[(f.group, n)] > 1 and f.rule and f.rule not in n else n
        for f, n in zip(findings, names, strict=True)
    ]
    count = Counter((f.group, n) for f, n in zip(findings, out, strict=True))
    seen: Counter[tuple[str, str]] = Counter()
    for i, (f, n) in enumerate(zip(findings, out, strict=True)):
        if count[(f.group, n)] > 1:
            seen[(f.group, n)] += 1
            out[i] = f"{n} #{seen[(f.group, n)]}"
    return out


def failure_message(finding: Finding) -> str:
    """Value, limits, margin and source of a finding, in one line."""
    parts = []
    value = format_value(finding, thresholds(finding.limits))
    if value:
        parts.append(f"value {value}")
    for band, condition in ordered_limits(finding.limits):
        parts.append(f"{band.replace('_', ' ')} {condition}")
    margin = format_margin(finding.margin, display_unit(finding))
    if margin:
        parts.append(f"margin {margin}")
    source = source_label(finding)
    if source:
        parts.append(f"source {source}")
    text = "; ".join(parts)
    if finding.message:
        text = f"{finding.message} ({text})" if text else finding.message
    return text


def _properties(suite: ET.Element, result: CheckResult) -> None:
    props = _element(suite, "properties")
    values = [
        ("patient_id", result.patient_id),
        ("protocol", result.protocol_id),
        ("protocol_version", result.protocol_version),
        ("protocol_title", result.protocol_title),
        ("protocol_source", result.protocol_source),
        ("default_protocol", "true" if result.default_protocol else "false"),
        ("verdict", Status(result.verdict).value),
        ("exit_code", result.exit_code),
        ("rtqa_version", result.rtqa_version),
        ("grouping", result.grouping),
    ]
    values += [("plan", p.case_id if not p.prior else f"{p.case_id} (prior)") for p in result.plans]
    values += [(f"note.{n.level.value}", str(n)) for n in result.notes]
    for name, value in values:
        _element(props, "property", name=name, value=value)


def unreadable_reason(result: CheckResult) -> str | None:
    """Why a course whose input could not be read (exit code 3) is an error; None otherwise.
    The error notes, else the most severe finding that is not a pass."""
    if result.exit_code != EXIT_UNREADABLE:
        return None
    reasons = [n.message for n in result.notes if n.level == Level.ERROR]
    if reasons:
        return "; ".join(dict.fromkeys(reasons))
    for finding in ordered_findings(result.findings):
        status = status_of(finding)
        if status not in (Status.PASS, Status.INFO):
            return f"{status.value}: {case_name(finding)}: {finding.message}".rstrip(": ")
    return "the input could not be read"


def _suite(root: ET.Element, result: CheckResult) -> ET.Element:
    findings = ordered_findings(result.findings)
    counts = status_counts(findings)
    reason = unreadable_reason(result)
    suite = _element(
        root,
        "testsuite",
        name=result.course_id,
        tests=len(findings) + (reason is not None),
        failures=counts["minor"] + counts["major"],
        errors=int(reason is not None),
        skipped=counts["not_evaluable"],
        timestamp=iso_datetime(result.created),
    )
    _properties(suite, result)
    if reason is not None:
        case = _element(suite, "testcase", classname="course", name="check")
        error = _element(case, "error", message=reason, type="unreadable")
        error.text = _clean(reason)
    several_cases = len({f.case_id for f in findings if f.case_id}) > 1
    names = unique_names(findings, [case_name(f, several_cases) for f in findings])
    for finding, name in zip(findings, names, strict=True):
        case = _element(suite, "testcase", classname=finding.group, name=name)
        status = status_of(finding)
        if status in (Status.MINOR, Status.MAJOR):
            message = failure_message(finding)
            failure = _element(case, "failure", message=message, type=status.value)
            label = structure_label(finding)
            failure.text = _clean(f"{status.value}: {label}: {message}" if label else message)
        elif status is Status.NOT_EVALUABLE:
            _element(case, "skipped", message=finding.message or "not evaluable")
    return suite


def _error_suite(root: ET.Element, error: CourseError) -> ET.Element:
    suite = _element(
        root,
        "testsuite",
        name=error.course_id,
        tests=1,
        failures=0,
        errors=1,
        skipped=0,
        timestamp=iso_datetime(error.created),
    )
    props = _element(suite, "properties")
    _element(props, "property", name="patient_id", value=error.patient_id)
    _element(props, "property", name="exit_code", value=error.exit_code)
    case = _element(suite, "testcase", classname="course", name="check")
    _element(case, "error", message=error.message, type="error")
    return suite


def render_junit(result: Renderable | Sequence[Renderable]) -> str:
    """The JUnit XML document (UTF-8 declaration, indented) of one course or several."""
    root = ET.Element("testsuites", {"name": "rtqa check"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for item in as_list(result):
        error = isinstance(item, CourseError)
        suite = _error_suite(root, item) if error else _suite(root, item)  # type: ignore[arg-type]
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
