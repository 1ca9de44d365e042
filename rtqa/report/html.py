"""Self-contained HTML report of ``rtqa check``: one file, inline CSS, figures as PNG data URIs.

Read in the order a reviewer reads: the header (plans, patient, protocol, verdict, exit code,
version, date, SHA-256 of every input; several courses are tallied first), the deviations,
every finding (deviations first within each group,
:func:`rtqa.report.common.ordered_findings`), then the DVHs with each judged metric marked,
dose slices through each target, the fractionation timeline (coloured by the completion
window's finding) and, for a course with prior radiation, prior / current / cumulative EQD2
(or a note that they are not drawn). The page loads nothing from a network and
runs no script (its Content-Security-Policy forbids both). Every name read from DICOM is
escaped (Jinja2 autoescaping).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from rtqa import __version__
from rtqa.model import CheckResult, Finding, Status
from rtqa.report.common import (
    DEVIATIONS,
    VERDICT_LABELS,
    CourseError,
    Renderable,
    as_list,
    courses_tally,
    display_unit,
    finite,
    format_margin,
    format_value,
    group_order,
    group_title,
    iso_datetime,
    limits_label,
    ordered_findings,
    protocol_label,
    source_label,
    status_counts,
    status_of,
    structure_label,
    thresholds,
)

TEMPLATE = "report.html"

#: What each exit code of a course says (README, exit codes).
EXIT_MEANINGS: dict[int, str] = {
    0: "everything per protocol",
    1: "a deviation at or above --fail-on",
    3: "input could not be read",
    4: "not fully evaluable, nothing deviated",
}

#: The completion window's verdict in the fractionation caption, by its finding's status.
WINDOW_WORDS: dict[Status, str] = {
    Status.PASS: "met",
    Status.INFO: "information only",
    Status.NOT_EVALUABLE: "not evaluable",
    Status.MINOR: "exceeded: minor deviation",
    Status.MAJOR: "exceeded: major deviation",
}


def window_status(findings: Sequence[Finding]) -> Status | None:
    """The worst status of the course's ``completion_window`` findings (None without one): what
    the fractionation figure shows, never a verdict of its own."""
    statuses = [status_of(f) for f in findings if f.rule == "completion_window"]
    return max(statuses, key=lambda s: s.rank) if statuses else None


@cache
def environment():
    """The Jinja2 environment of the report templates (autoescaping on for every template)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("rtqa.report", "templates"),
        autoescape=True,
        trim_blocks=False,
        undefined=jinja2.StrictUndefined,
    )


@cache
def stylesheet() -> str:
    return resources.files("rtqa.report").joinpath("templates", "base.css").read_text("utf-8")


def _finding_row(f: Finding) -> dict[str, Any]:
    status = status_of(f)
    refs = thresholds(f.limits)
    metric = f.metric or f.rule
    if f.metric and f.rule and f.rule != f.metric and f.group not in ("organ", "target"):
        metric = f"{f.rule}: {f.metric}"
    return {
        "status": status.value,
        "status_label": status.value.replace("_", " "),
        "deviation": status in DEVIATIONS,
        "structure": structure_label(f),
        "metric": metric,
        "value": format_value(f, refs),
        "limits": limits_label(f.limits),
        "margin": format_margin(f.margin, display_unit(f)),
        "source": source_label(f),
        "message": f.message,
    }


def _counts_label(findings: Sequence[Finding]) -> str:
    counts = status_counts(findings)
    parts = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n]
    return ", ".join(parts) if parts else "no findings"


def _plan_text(p) -> str:
    parts = [p.label]
    rx = finite(p.prescription_gy)
    if rx is not None:
        fx = f"/{p.fractions} fx" if p.fractions else ""
        parts.append(f"{rx:g} Gy{fx}")
    elif p.fractions:
        parts.append(f"{p.fractions} fx")
    if p.approval_status:
        parts.append(p.approval_status.lower())
    if p.planning_system:
        parts.append(p.planning_system)
    return " · ".join(parts)


def _figures(result: CheckResult) -> dict[str, Any]:
    """The figures of ``result`` as data URIs (matplotlib is loaded here only)."""
    from rtqa.report import figures
    from rtqa.views import report_view

    view = report_view(result)
    out: dict[str, Any] = {
        "dvh": None,
        "dvh_size": (0, 0),
        "slices": [],
        "timeline": None,
        "prior": None,
        "view_notes": list(view.notes),
    }
    if view.prior is None and getattr(result.context, "prior", None) is not None:
        # a prior course was mapped and judged, but its EQD2 panels are not drawn: say so, never
        # leave a section out silently
        out["view_notes"].append(
            "prior radiation: the prior, current and cumulative EQD2 panels are not drawn for "
            "this course; the prior-radiation findings above give the numbers"
        )
    roles = [(c.roi, c.role) for c in view.curves]
    roles += [(o.roi, o.role) for p in view.planes for o in p.outlines]
    colors = figures.structure_colors(roles)
    if view.curves:
        out["dvh"] = figures.dvh_figure(view.curves, colors)
        out["dvh_size"] = (int(9.0 * figures.DPI), int(4.8 * figures.DPI))
    by_target: dict[str, list] = {}
    for plane in view.planes:
        by_target.setdefault(plane.target, []).append(plane)
    for target, planes in by_target.items():
        rx = planes[0].rx_gy
        cx, cy, cz = planes[0].centroid_mm
        iso = (
            f"Isodose lines: prescription {rx:g} Gy (solid black), 50 % {0.5 * rx:g} Gy "
            "(dashed white)."
            if rx
            else "No prescription known for this target: no isodose lines."
        )
        out["slices"].append(
            {
                "target": target,
                "src": figures.planes_figure(planes, colors),
                "caption": (
                    f"{target}: dose-grid planes nearest its centroid "
                    f"({cx:.1f}, {cy:.1f}, {cz:.1f}) mm, dose as stored (no interpolation). "
                    f"{iso} Structure outlines: the contours (axial) and the slab model used "
                    "for the DVHs (coronal, sagittal)."
                ),
            }
        )
    if view.timeline is not None and view.timeline.starts:
        tl = view.timeline
        status = window_status(result.findings)
        when = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in tl.starts)
        if status is not None:
            verdict = WINDOW_WORDS[status]
        elif tl.within is not None:
            verdict = "met" if tl.within else "exceeded"
        else:
            verdict = ""
        window = (
            f"; allowed: within {tl.window_days:g} days ({verdict})"
            if tl.window_days is not None and verdict
            else ""
        )
        undated = f"; {tl.undated_records} record(s) without a date" if tl.undated_records else ""
        dated = "dated fraction(s)" if tl.undated_records else "fraction(s)"
        out["timeline"] = {
            "src": figures.timeline_figure(tl, status.value if status is not None else None),
            "caption": (
                f"{len(tl.starts)} {dated} delivered: {when}; span {tl.span_days} day(s)"
                f"{window}{undated}."
            ),
        }
    if view.prior is not None:
        ab = f"α/β {view.prior.alpha_beta_gy:g} Gy; " if view.prior.alpha_beta_gy else ""
        out["prior"] = {
            "images": figures.prior_figure(view.prior, colors),
            "caption": (
                f"EQD2 ({ab}each course with its own fraction count) of the prior courses "
                "mapped onto the current dose grid, of the current course, and their sum; "
                "the overlap is dotted cyan."
            ),
        }
    return out


def _result_context(result: CheckResult) -> dict[str, Any]:
    findings = ordered_findings(result.findings)
    groups = []
    for g in group_order(findings):
        rows = [_finding_row(f) for f in findings if f.group == g]
        groups.append({"title": group_title(g), "findings": rows})
    current = [p for p in result.plans if not p.prior]
    prior = [p for p in result.plans if p.prior]
    verdict = Status(result.verdict)
    ctx: dict[str, Any] = {
        "error": False,
        "plans_label": ", ".join(p.label for p in current) or result.course_id,
        "plans": [_plan_text(p) for p in current],
        "prior_plans": [_plan_text(p) for p in prior],
        "patient_id": result.patient_id,
        "course_id": result.course_id,
        "protocol": protocol_label(result),
        "protocol_title": result.protocol_title,
        "default_protocol": result.default_protocol,
        "verdict": verdict.value,
        "verdict_label": VERDICT_LABELS[verdict],
        "exit_code": result.exit_code,
        "exit_meaning": EXIT_MEANINGS.get(result.exit_code, ""),
        "counts_label": _counts_label(result.findings),
        "rtqa_version": result.rtqa_version,
        "created": iso_datetime(result.created),
        "grouping": result.grouping,
        "hashes": sorted(result.input_hashes.items()),
        "groups": groups,
        "deviations": [_finding_row(f) for f in findings if status_of(f) in DEVIATIONS],
        "notes": [{"level": n.level.value, "text": str(n)} for n in result.notes],
    }
    ctx.update(_figures(result))
    return ctx


def _error_context(error: CourseError) -> dict[str, Any]:
    return {
        "error": True,
        "course_id": error.course_id,
        "patient_id": error.patient_id,
        "message": error.message,
        "exit_code": error.exit_code,
        "rtqa_version": error.rtqa_version or __version__,
        "created": iso_datetime(error.created or datetime.now()),
    }


def render_html(result: Renderable | Sequence[Renderable]) -> str:
    """The report page of one course (or several, one after the other) as an HTML string."""
    items = as_list(result)
    reports = [
        _error_context(r) if isinstance(r, CourseError) else _result_context(r) for r in items
    ]
    if len(items) == 1 and not reports[0]["error"]:
        title = f"rtqa {reports[0]['verdict_label']}: {reports[0]['plans_label']}"
    elif len(items) == 1:
        title = f"rtqa ERROR: {reports[0]['course_id']}"
    else:
        title = f"rtqa check: {len(items)} courses"
    template = environment().get_template(TEMPLATE)
    return template.render(
        reports=reports,
        title=title,
        summary=courses_tally(items) if len(items) > 1 else "",
        css=stylesheet(),
        version=__version__,
    )
