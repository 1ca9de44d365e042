"""JUnit XML report: suites, cases, counts, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from test_report_common import EVIL, LONG_SOURCE, make_error, make_result

from rtqa.model import Finding, Status
from rtqa.report.common import ordered_findings
from rtqa.report.junit import render_junit


def _props(suite: ET.Element) -> dict[str, list[str]]:
    props: dict[str, list[str]] = {}
    for p in suite.iter("property"):
        props.setdefault(p.get("name"), []).append(p.get("value"))
    return props


def test_one_suite_with_correct_counts():
    result = make_result()
    text = render_junit(result)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    counts = {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": "32", "failures": "13", "errors": "0", "skipped": "6"}
    assert {k: root.get(k) for k in counts} == counts
    assert suite.get("name") == "C1+C2"
    assert suite.get("timestamp") == "2024-05-06T07:08:09+02:00"
    cases = suite.findall("testcase")
    assert len(cases) == 32
    assert len(suite.findall("testcase/failure")) == 13
    assert len(suite.findall("testcase/skipped")) == 6


def test_cases_in_report_order_with_group_as_classname():
    result = make_result()
    suite = ET.fromstring(render_junit(result)).find("testsuite")
    expected = ordered_findings(result.findings)
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == [f.group for f in expected]
    # two cases (C1, C2) in the course: the case id tells same-named tests apart
    assert cases[0].get("name") == "PlanMajor D0.03cc[Gy] [C1]"
    for case, f in zip(cases, expected, strict=True):
        children = [child.tag for child in case]
        if f.status in (Status.MINOR, Status.MAJOR):
            assert children == ["failure"]
            assert case.find("failure").get("type") == f.status.value
        elif f.status is Status.NOT_EVALUABLE:
            assert children == ["skipped"]
            assert case.find("skipped").get("message") == f.message
        else:
            assert children == []


def test_failure_message_gives_value_limits_margin_source():
    suite = ET.fromstring(render_junit(make_result())).find("testsuite")
    case = next(c for c in suite.findall("testcase") if c.get("name").startswith(EVIL))
    assert case.get("name") == f"{EVIL} D0.03cc[Gy] [C2]"
    failure = case.find("failure")
    assert failure.get("message") == (
        "D0.03cc 30.5 Gy above 21.9 Gy (value 30.50 Gy; per protocol <= 21.9; acceptable <= 24; "
        f"margin -8.60 Gy; source {LONG_SOURCE} [unverified])"
    )
    assert failure.text.startswith(f"major: {EVIL} (pattern cord*): ")


def test_course_data_as_properties():
    suite = ET.fromstring(render_junit(make_result())).find("testsuite")
    props = _props(suite)
    assert props["default_protocol"] == ["true"]
    assert props["protocol"] == ["NRG-BR002"]
    assert props["protocol_version"] == ["2024.1"]
    assert props["verdict"] == ["major"]
    assert props["exit_code"] == ["1"]
    assert props["patient_id"] == ["SYN-0001"]
    assert props["plan"] == ["C1", "C2", "P0 (prior)"]
    assert props["note.warning"] == ["warning: RP.C1.dcm: no treatment records: plan dates used"]
    other = ET.fromstring(render_junit(make_result(default_protocol=False))).find("testsuite")
    assert _props(other)["default_protocol"] == ["false"]


def test_special_and_illegal_characters():
    f = Finding(
        "organ",
        "r",
        Status.NOT_EVALUABLE,
        message="missing\x01 <contour> & \"quoted\" 'x'\nsecond line",
        roi=EVIL,
        metric="Mean[Gy]",
    )
    text = render_junit(make_result(findings=[f], verdict=Status.NOT_EVALUABLE, exit_code=4))
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case.get("name") == f"{EVIL} Mean[Gy]"  # one case id only: no [C1]
    assert case.find("skipped").get("message") == (
        "missing\ufffd <contour> & \"quoted\" 'x'\nsecond line"
    )


def test_several_courses_and_an_error():
    root = ET.fromstring(render_junit([make_result(), make_error()]))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["C1+C2", "C9"]
    assert suites[1].get("errors") == "1" and suites[1].get("tests") == "1"
    assert suites[1].find("testcase/error").get("message").startswith("RD.C9.dcm")
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "33",
        "failures": "13",
        "errors": "1",
        "skipped": "6",
    }


def test_empty_course_is_an_empty_suite():
    root = ET.fromstring(render_junit(make_result(findings=[], verdict=Status.PASS)))
    suite = root.find("testsuite")
    assert suite.get("tests") == "0" and suite.findall("testcase") == []
