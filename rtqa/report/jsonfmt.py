"""JSON report of ``rtqa check``, described by ``schema/check_result.schema.json``.

One course is one object carrying a top-level ``"schema"`` field; several courses are wrapped as
``{"schema": ..., "results": [...]}``. Every number is finite or ``null`` (NaN and infinity are
never written). DVH curves are left out unless ``include_curves`` is set.
A course that could not be checked (:class:`~rtqa.report.common.CourseError`) is an object with
``"status": "error"`` and an ``"error"`` message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from rtqa import __version__
from rtqa.model import CheckResult, Finding, Note, PlanSummary, Status
from rtqa.report.common import (
    CourseError,
    Renderable,
    as_list,
    finite,
    iso_datetime,
    ordered_findings,
    status_counts,
    status_of,
)

#: Value of the top-level ``"schema"`` field; bump with any incompatible change of the schema.
SCHEMA_VERSION = "rtqa-check-result/2"
SCHEMA_FILE = "check_result.schema.json"


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the documents :func:`render_json` writes."""
    text = resources.files("rtqa.report").joinpath("schema", SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)


def _range(bounds: tuple[float | None, float | None] | None) -> dict[str, float | None] | None:
    """``{"low", "high"}`` of a figure known only within bounds (null ends open)."""
    if bounds is None:
        return None
    return {"low": finite(bounds[0]), "high": finite(bounds[1])}


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "group": finding.group,
        "rule": finding.rule,
        "status": status_of(finding).value,
        "message": finding.message,
        "case_id": finding.case_id,
        "roi": finding.roi,
        "match": finding.match,
        "metric": finding.metric,
        "value": finite(finding.value),
        "value_range": _range(finding.value_range),
        "unit": finding.unit,
        "limits": {str(k): str(v) for k, v in finding.limits.items()},
        "margin": finite(finding.margin),
        "source": finding.source,
        "confidence": finding.confidence,
    }


def plan_to_dict(plan: PlanSummary) -> dict[str, Any]:
    return {
        "case_id": plan.case_id,
        "label": plan.label,
        "sop_instance_uid": plan.sop_instance_uid,
        "fractions": _int(plan.fractions),
        "prescription_gy": finite(plan.prescription_gy),
        "approval_status": plan.approval_status,
        "prior": bool(plan.prior),
        "planning_system": plan.planning_system,
    }


def note_to_dict(note: Note) -> dict[str, Any]:
    return {
        "level": note.level.value,
        "message": note.message,
        "path": note.path,
        "attribute": note.attribute,
    }


def _curves(result: CheckResult) -> dict[str, Any]:
    curves = {}
    for roi, (dose_gy, volume_pct) in result.curves.items():
        curves[str(roi)] = {
            "dose_gy": [finite(x) for x in dose_gy],
            "volume_pct": [finite(x) for x in volume_pct],
        }
    return curves


def result_to_dict(result: CheckResult, *, include_curves: bool = False) -> dict[str, Any]:
    """One course as a JSON-ready dict (without the top-level ``schema`` field)."""
    findings = ordered_findings(result.findings)
    verdict = Status(result.verdict).value
    doc: dict[str, Any] = {
        "course_id": result.course_id,
        "status": verdict,
        "verdict": verdict,
        "exit_code": int(result.exit_code),
        "patient_id": result.patient_id,
        "plans": [plan_to_dict(p) for p in result.plans],
        "protocol": {
            "id": result.protocol_id,
            "version": result.protocol_version,
            "title": result.protocol_title,
            "source": result.protocol_source,
            "default": bool(result.default_protocol),
        },
        "counts": status_counts(findings),
        "findings": [finding_to_dict(f) for f in findings],
        "notes": [note_to_dict(n) for n in result.notes],
        "grouping": result.grouping,
        "input_hashes": {str(k): str(v) for k, v in result.input_hashes.items()},
        "rtqa_version": result.rtqa_version,
        "created": iso_datetime(result.created),
    }
    if include_curves:
        doc["curves"] = _curves(result)
    return doc


def error_to_dict(error: CourseError) -> dict[str, Any]:
    """A course that could not be checked: ``status`` ``error`` and the message."""
    return {
        "course_id": error.course_id,
        "status": "error",
        "error": error.message,
        "exit_code": int(error.exit_code),
        "patient_id": error.patient_id,
        "rtqa_version": error.rtqa_version or __version__,
        "created": iso_datetime(error.created or datetime.now().astimezone()),
    }


def to_document(
    result: Renderable | Sequence[Renderable], *, include_curves: bool = False
) -> dict[str, Any]:
    """The JSON document: one course object, or ``{"results": [...]}`` for a list."""

    def one(r: Renderable) -> dict[str, Any]:
        if isinstance(r, CourseError):
            return error_to_dict(r)
        return result_to_dict(r, include_curves=include_curves)

    if isinstance(result, CheckResult | CourseError):
        return {"schema": SCHEMA_VERSION, **one(result)}
    return {"schema": SCHEMA_VERSION, "results": [one(r) for r in result]}


def render_json(
    result: Renderable | Sequence[Renderable], *, include_curves: bool = False, indent: int = 2
) -> str:
    """The JSON report as text (UTF-8 characters kept, finite numbers only)."""
    doc = to_document(
        result if isinstance(result, CheckResult | CourseError) else as_list(result),
        include_curves=include_curves,
    )
    return json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
