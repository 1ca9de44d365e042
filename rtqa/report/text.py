"""Terminal report of ``rtqa check``: a header, one table per finding group, notes, a summary.

Every line fits in :data:`WIDTH` columns (counted in characters, ANSI codes excluded). Findings
are grouped (plan, targets, organs, plan quality, integrity, prior radiation), deviations first.
A cell too long for its column is cut with ``...``; for deviations the full text follows on
indented lines, together with the finding's message, so nothing a reviewer must act on is lost.
The confidence tag of a source (``[unverified]``) is never cut. ANSI colour only with
``color=True``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rtqa.model import ALSO_MATCHED, CheckResult, Finding, PlanSummary, Status
from rtqa.report.common import (
    DEVIATIONS,
    STATUS_ORDER,
    VERDICT_LABELS,
    CourseError,
    Renderable,
    as_list,
    courses_tally,
    finite,
    format_margin,
    format_value,
    group_order,
    group_title,
    iso_datetime,
    limits_label,
    ordered_findings,
    protocol_label,
    status_counts,
    status_of,
    structure_label,
    thresholds,
)

WIDTH = 100
INDENT = "  "
SEP = "  "
CUT = "..."
_LABEL = len("Protocol")  # width of the header field names

STATUS_LABELS: dict[Status, str] = {
    Status.MAJOR: "MAJOR",
    Status.MINOR: "MINOR",
    Status.NOT_EVALUABLE: "NOT EVAL",
    Status.PASS: "pass",
    Status.INFO: "info",
}

SUMMARY_LABELS: dict[Status, str] = {
    Status.MAJOR: "major",
    Status.MINOR: "minor",
    Status.NOT_EVALUABLE: "not evaluable",
    Status.PASS: "pass",
    Status.INFO: "info",
}

_ANSI = {
    "major": "\x1b[1;31m",
    "minor": "\x1b[33m",
    "not_evaluable": "\x1b[35m",
    "pass": "\x1b[32m",
    "info": "\x1b[36m",
    "error": "\x1b[1;31m",
    "warning": "\x1b[33m",
    "bold": "\x1b[1m",
}
_RESET = "\x1b[0m"

# column: (header, minimum width when space runs short)
_COLUMNS: dict[str, tuple[str, int]] = {
    "status": ("status", len("NOT EVAL")),
    "structure": ("structure", 16),
    "metric": ("metric", 11),
    "value": ("value", 9),
    "limits": ("limit", 12),
    "margin": ("margin", 8),
    "source": ("source", 14),
}
_SOURCE_FIRST_FLOOR = 18
# numbers (value, margin) are never cut
_SHRINK_ORDER = ("source", "structure", "limits", "metric")


def _paint(text: str, style: str, color: bool) -> str:
    return f"{_ANSI[style]}{text}{_RESET}" if color and style in _ANSI else text


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word end where one is near."""
    if len(text) <= width:
        return text
    if width <= len(CUT):
        return text[:width]
    head = text[: width - len(CUT)]
    space = head.rfind(" ")
    if space >= len(head) // 2:
        head = head[:space]
    return head.rstrip() + CUT


def _wrap(text: str, indent: str, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


@dataclass
class _Row:
    finding: Finding
    status: Status
    cells: dict[str, str]
    source: str
    confidence: str


def _row(finding: Finding) -> _Row:
    status = status_of(finding)
    refs = thresholds(finding.limits)
    cells = {
        "status": STATUS_LABELS[status],
        "structure": structure_label(finding),
        "metric": finding.metric or finding.rule,
        "value": format_value(finding, refs),
        "limits": limits_label(finding.limits),
        "margin": format_margin(finding.margin, finding.unit, with_unit=False),
    }
    source = finding.source or ""
    confidence = f"[{finding.confidence}]" if finding.confidence else ""
    cells["source"] = " ".join(p for p in (source, confidence) if p)
    return _Row(finding, status, cells, source, confidence)


def _widths(rows: list[_Row]) -> dict[str, int]:
    """Column widths: natural widths, the widest shrinkable one cut first until rows fit."""
    widths = {
        name: max([len(header)] + [len(r.cells[name]) for r in rows])
        for name, (header, _) in _COLUMNS.items()
    }
    floors = {name: max(low, len(header)) for name, (header, low) in _COLUMNS.items()}
    budget = WIDTH - len(INDENT) - len(SEP) * (len(_COLUMNS) - 1)
    excess = sum(widths.values()) - budget
    # the source gives way first (down to a readable width), then the widest column
    cut = min(max(0, excess), max(0, widths["source"] - _SOURCE_FIRST_FLOOR))
    widths["source"] -= cut
    excess -= cut
    while excess > 0:
        room = [n for n in _SHRINK_ORDER if widths[n] > floors[n]]
        if not room:
            break
        widest = max(room, key=lambda n: widths[n])
        widths[widest] -= 1
        excess -= 1
    return widths


def _source_cell(row: _Row, width: int) -> str:
    """The source cut to ``width`` but never its confidence tag."""
    if len(row.cells["source"]) <= width or not row.confidence:
        return _cut(row.cells["source"], width)
    room = width - len(row.confidence) - 1
    if room < len(CUT) + 4:  # too little of the source to be worth printing
        return _cut(row.confidence, width)
    return f"{_cut(row.source, room)} {row.confidence}"


def _table_line(cells: dict[str, str], widths: dict[str, int], status_style: str, color: bool):
    parts = []
    for name in _COLUMNS:
        text = cells[name] if name == "source" else _cut(cells[name], widths[name])
        if name == "value" or name == "margin":
            text = text.rjust(widths[name])
        else:
            text = text.ljust(widths[name])
        if name == "status":
            text = _paint(text, status_style, color)
        parts.append(text)
    return (INDENT + SEP.join(parts)).rstrip()


def _render_row(row: _Row, widths: dict[str, int], color: bool) -> list[str]:
    cells = dict(row.cells)
    cells["source"] = _source_cell(row, widths["source"])
    lines = [_table_line(cells, widths, row.status.value, color)]
    indent = INDENT + " " * (widths["status"] + len(SEP))
    if row.status not in DEVIATIONS:
        # a judgement on one of several ROIs that matched says which others did
        if ALSO_MATCHED in (row.finding.match or ""):
            lines.extend(_wrap(f"structure: {row.cells['structure']}", indent))
        return lines
    # a deviation keeps every word: the message, then whatever a column had to cut
    extra: list[str] = []
    if row.finding.message:
        extra.append(row.finding.message)
    for name, label in (("structure", "structure"), ("limits", "limit"), ("metric", "metric")):
        if len(row.cells[name]) > widths[name]:
            extra.append(f"{label}: {row.cells[name]}")
    if cells["source"] != row.cells["source"]:
        extra.append(f"source: {row.cells['source']}")
    for text in extra:
        lines.extend(_wrap(text, indent))
    return lines


def _plan_text(plan: PlanSummary) -> str:
    details = []
    rx = f"{plan.prescription_gy:.6g}" if finite(plan.prescription_gy) is not None else ""
    if rx and plan.fractions:
        details.append(f"{rx} Gy / {plan.fractions} fx")
    elif rx:
        details.append(f"{rx} Gy")
    elif plan.fractions:
        details.append(f"{plan.fractions} fx")
    if plan.approval_status:
        details.append(plan.approval_status)
    if plan.planning_system:
        details.append(plan.planning_system)
    name = plan.label or plan.case_id
    return f"{name} ({', '.join(details)})" if details else name


def _header(result: CheckResult, color: bool) -> list[str]:
    current = [p for p in result.plans if not p.prior]
    prior = [p for p in result.plans if p.prior]
    lines = [f"rtqa check - course {result.course_id}"]
    plans = "; ".join(_plan_text(p) for p in current) or "none"
    if prior:
        plans += "; prior: " + "; ".join(_plan_text(p) for p in prior)
    lines.extend(_wrap_field("Patient", result.patient_id or "(none)"))
    lines.extend(_wrap_field(f"Plan{'s' if len(current) != 1 else ''}", plans))
    protocol = protocol_label(result)
    if result.protocol_title:
        protocol += f" - {result.protocol_title}"
    if result.default_protocol:
        protocol += " [default protocol]"
    lines.extend(_wrap_field("Protocol", protocol))
    if result.protocol_source:
        lines.extend(_wrap_field("", f"from {result.protocol_source}"))
    if result.grouping:
        lines.extend(_wrap_field("Grouping", result.grouping))
    verdict = _paint(VERDICT_LABELS[Status(result.verdict)], Status(result.verdict).value, color)
    lines.append(f"{'Verdict':<{_LABEL}}: {verdict} (exit code {result.exit_code})")
    return lines


def _wrap_field(name: str, text: str) -> list[str]:
    """``Name     : text`` wrapped with continuation lines under the text."""
    pad = " " * (_LABEL + 2)
    head = f"{name:<{_LABEL}}: " if name else pad
    wrapped = textwrap.wrap(
        text, width=WIDTH, initial_indent=head, subsequent_indent=pad, break_on_hyphens=False
    )
    return wrapped or [head.rstrip()]


def _summary(findings: Sequence[Finding], result: CheckResult, color: bool) -> str:
    counts = status_counts(findings)
    parts = []
    for status in STATUS_ORDER:
        text = f"{counts[status.value]} {SUMMARY_LABELS[status]}"
        parts.append(_paint(text, status.value, color) if counts[status.value] else text)
    verdict = _paint(VERDICT_LABELS[Status(result.verdict)], Status(result.verdict).value, color)
    n = len(findings)
    return f"{verdict}: {n} finding{'s' if n != 1 else ''} - {', '.join(parts)}"


def render_result(result: CheckResult, *, color: bool = False) -> str:
    """The terminal report of one course (lines of at most :data:`WIDTH` characters)."""
    findings = ordered_findings(result.findings)
    lines = _header(result, color)
    lines.extend(
        _wrap_field("Checked", f"{iso_datetime(result.created)} by rtqa {result.rtqa_version}")
    )
    rows = [_row(f) for f in findings]
    widths = _widths(rows)
    if rows:
        lines.append("")
        lines.extend(
            _wrap(
                "limit: per protocol / acceptable; margin: value to per-protocol limit, + inside",
                "",
            )
        )
    for group in group_order(findings):
        members = [r for r in rows if r.finding.group == group]
        counts = status_counts(r.finding for r in members)
        tally = ", ".join(
            f"{counts[s.value]} {SUMMARY_LABELS[s]}" for s in STATUS_ORDER if counts[s.value]
        )
        lines.append("")
        lines.append(_paint(f"{group_title(group)} ({tally})", "bold", color))
        header = {name: title for name, (title, _) in _COLUMNS.items()}
        lines.append(_table_line(header, widths, "", False))
        for row in members:
            lines.extend(_render_row(row, widths, color))
    if not rows:
        lines.extend(["", "No findings."])
    if result.notes:
        lines.extend(["", _paint(f"Notes ({len(result.notes)})", "bold", color)])
        for note in result.notes:
            level = note.level.value
            text = str(note)
            wrapped = _wrap(text, INDENT)
            wrapped[0] = wrapped[0].replace(level, _paint(level, level, color), 1)
            lines.extend(wrapped)
    lines.extend(["", _summary(findings, result, color)])
    return "\n".join(lines) + "\n"


def render_error(error: CourseError, *, color: bool = False) -> str:
    """The terminal report of a course that could not be checked."""
    lines = [f"rtqa check - course {error.course_id}"]
    if error.patient_id:
        lines.extend(_wrap_field("Patient", error.patient_id))
    wrapped = _wrap(f"ERROR (exit code {error.exit_code}): {error.message}", "")
    wrapped[0] = wrapped[0].replace("ERROR", _paint("ERROR", "error", color), 1)
    lines.extend(wrapped)
    return "\n".join(lines) + "\n"


def render_text(result: Renderable | Sequence[Renderable], *, color: bool = False) -> str:
    """Terminal report of one course or several (separated by a rule, then a course tally)."""
    items = as_list(result)
    blocks = [
        render_error(r, color=color)
        if isinstance(r, CourseError)
        else render_result(r, color=color)
        for r in items
    ]
    if len(items) <= 1:
        return "".join(blocks)
    summary = courses_tally(items)
    rule = "-" * WIDTH + "\n"
    return rule.join(blocks) + rule + "\n".join(_wrap(summary, "")) + "\n"
