"""Terminal report: layout, order, width, colour."""

from __future__ import annotations

import re

from test_report_common import EVIL, GROUPS, LONG_SOURCE, make_error, make_result

from rtqa.model import Finding, Status
from rtqa.report.text import STATUS_LABELS, WIDTH, render_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TITLES = ["Plan", "Targets", "Organs at risk", "Plan quality", "Integrity", "Prior radiation"]
ROW = re.compile(r"^  (MAJOR|MINOR|NOT EVAL|pass|info)\s")


def _rows_by_group(text: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        title = line.split(" (")[0]
        if title in TITLES and line.endswith(")"):
            current = title
            groups[current] = []
        elif current and (m := ROW.match(line)):
            groups[current].append(m.group(1))
    return groups


def test_every_line_fits_100_columns():
    for color in (False, True):
        for item in (make_result(), make_error(), [make_result(), make_error()]):
            text = ANSI.sub("", render_text(item, color=color))
            widths = [len(line) for line in text.splitlines()]
            assert max(widths) <= WIDTH == 100


def test_groups_in_order_and_deviations_first():
    text = render_text(make_result())
    groups = _rows_by_group(text)
    assert list(groups) == TITLES
    assert len(GROUPS) == len(TITLES)
    expected = ["MAJOR", "MINOR", "NOT EVAL", "pass", "info"]
    for title, rows in groups.items():
        if title == "Organs at risk":  # holds the extra major finding
            assert rows == ["MAJOR", *expected]
        elif title == "Targets":  # holds the extra info finding
            assert rows == [*expected, "info"]
        else:
            assert rows == expected
    assert sum(len(r) for r in groups.values()) == 32


def test_header_names_course_patient_protocol_and_verdict():
    lines = render_text(make_result()).splitlines()
    header = "\n".join(lines[:10])
    assert lines[0] == "rtqa check - course C1+C2"
    assert "Patient : SYN-0001" in header
    assert "SpineT7 (30 Gy / 3 fx, APPROVED)" in header
    assert "prior: OldSpine (20" in header
    assert "NRG-BR002 v2024.1 - Metastasis-directed SBRT" in header
    assert "[default protocol]" in header
    assert "Verdict : MAJOR DEVIATION (exit code 1)" in header
    assert "Checked : 2024-05-06T07:08:09+02:00 by rtqa 0.1.0" in header
    not_default = render_text(make_result(default_protocol=False))
    assert "default protocol" not in not_default


def test_row_cells():
    text = render_text(make_result())
    pass_row = next(line for line in text.splitlines() if line.startswith("  pass      PlanPass"))
    cells = re.split(r"\s{2,}", pass_row.strip())
    assert cells[:6] == ["pass", "PlanPass", "D0.03cc[Gy]", "18.25 Gy", "<= 21.9 / <= 24", "+3.65"]
    assert cells[6].endswith("[secondary]")
    # a minor 22.4 Gy against <= 21.9: margin -0.5, printed with its sign
    minor = next(line for line in text.splitlines() if line.startswith("  MINOR     PlanMinor"))
    assert "22.40 Gy" in minor and " -0.500 " in minor


def test_confidence_tag_survives_cutting():
    text = render_text(make_result())
    for line in text.splitlines():
        if line.startswith("  MAJOR "):
            assert line.endswith("[unverified]")
        elif ROW.match(line) and not line.startswith(("  info      PTV_30",)):
            assert line.endswith("[secondary]")


def test_deviation_keeps_full_text_on_following_lines():
    text = render_text(make_result())
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  MAJOR     {EVIL[:5]}"))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 12):
            break
        block.append(line.strip())
    joined = " ".join(block)
    assert block[0] == "D0.03cc 30.5 Gy above 21.9 Gy"
    assert f"structure: {EVIL} (pattern cord*)" in joined
    assert f"source: {LONG_SOURCE} [unverified]" in joined
    # the not-evaluable reason is printed
    assert "organ: structure not found among the contours (reason 21)" in text


def test_colour_only_when_asked():
    plain = render_text(make_result())
    coloured = render_text(make_result(), color=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31mMAJOR   \x1b[0m" in coloured
    assert "\x1b[33mMINOR   \x1b[0m" in coloured
    assert "\x1b[35mNOT EVAL\x1b[0m" in coloured
    assert "\x1b[32mpass    \x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_notes_and_summary():
    text = render_text(make_result())
    assert "  warning: RP.C1.dcm: no treatment records: plan dates used" in text
    assert "  info: RS.C1.dcm: ROIVolume absent [ROIVolume (3006,002C)]" in text
    assert text.splitlines()[-1] == (
        "MAJOR DEVIATION: 32 findings - 7 major, 6 minor, 6 not evaluable, 6 pass, 7 info"
    )


def test_pass_course_and_empty_course():
    f = Finding("organ", "r", Status.PASS, roi="SpinalCord", metric="D0.03cc[Gy]", value=10.0)
    text = render_text(make_result(findings=[f], verdict=Status.PASS, exit_code=0, notes=[]))
    assert "Verdict : PASS (exit code 0)" in text
    assert (
        text.splitlines()[-1]
        == "PASS: 1 finding - 0 major, 0 minor, 0 not evaluable, 1 pass, 0 info"
    )
    assert "Notes" not in text
    empty = render_text(make_result(findings=[], verdict=Status.PASS, exit_code=0))
    assert "No findings." in empty


def test_several_courses_and_an_error():
    text = render_text([make_result(), make_error()])
    assert text.count("-" * 100 + "\n") == 2
    assert "rtqa check - course C9" in text
    assert "ERROR (exit code 3): RD.C9.dcm: DoseGridScaling missing" in text
    assert text.splitlines()[-1] == "2 courses: 1 major deviation, 1 error"


def test_status_labels_cover_every_status():
    assert set(STATUS_LABELS) == set(Status)


def test_a_pass_on_one_of_several_matching_rois_names_the_others():
    # an exact name beat an alias: the pass is on 'SpinalCord'; 'cord' matched too and the
    # reader is told, as the JSON and HTML reports tell
    match = "SpinalCord -> 'SpinalCord' (exact TG-263 name); also matched: 'cord'"
    finding = Finding(
        group="organ",
        rule="organ-cord",
        status=Status.PASS,
        message="D0.03cc 12 Gy",
        roi="SpinalCord",
        match=match,
        metric="D0.03cc[Gy]",
        value=12.0,
        unit="Gy",
        limits={"per_protocol": "<= 21.9"},
        margin=9.9,
        case_id="C1",
    )
    lines = render_text(make_result(findings=[finding])).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("  pass    SpinalCord"))
    following = " ".join(line.strip() for line in lines[row + 1 : row + 3])
    assert following.startswith(f"structure: SpinalCord ({match})")
    # without another match, a pass stays one line
    finding.match = "SpinalCord -> 'SpinalCord' (exact TG-263 name)"
    lines = render_text(make_result(findings=[finding])).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("  pass    SpinalCord"))
    assert not lines[row + 1].strip().startswith("structure:")
