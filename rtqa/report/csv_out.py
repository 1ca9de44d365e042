"""CSV report of ``rtqa check``: one row per finding, a header row, RFC 4180 quoting.

Rows follow the report order (grouped, deviations first). Numbers are written unrounded (the
shortest text that reads back as the same float); a missing or non-finite number is an empty
cell. The protocol is in three columns: ``protocol`` (id), ``protocol_version`` and
``default_protocol`` (``true`` when no protocol was asked for and the default one was applied),
so the file holds data only, no comment lines. ``per_protocol`` holds the per-protocol
condition (or the lone ``limit``), ``acceptable`` the acceptable one, ``other_limits`` any
other band as ``band: condition`` pairs joined by ``; ``. ``value_low`` and ``value_high``
bound the figure (``Finding.value_range``): both equal ``value`` where it is the figure itself,
and an empty one is an open end (both empty: the figure is unknown or not evaluated). A course
that could not be checked (:class:`~rtqa.report.common.CourseError`) is one row with status
``error`` and the message.
Lines end with ``\\n``.

Spreadsheet formula injection (OWASP "CSV Injection"): a text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return (a patient id ``=HYPERLINK(...)``, an ROI name, a
message) is written with a leading ``'`` so that a spreadsheet shows it as text and never
evaluates it. Only text columns are touched: the numeric columns (``value``, its bounds and
``margin``) hold numbers written by rtqa, and a negative number such as ``-1.25`` stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rtqa.model import CheckResult, Finding
from rtqa.report.common import (
    BAND_ORDER,
    CourseError,
    Renderable,
    as_list,
    finite,
    ordered_findings,
    per_protocol_condition,
    status_of,
)

COLUMNS: tuple[str, ...] = (
    "course_id",
    "case_id",
    "patient_id",
    "protocol",
    "protocol_version",
    "default_protocol",
    "group",
    "rule",
    "roi",
    "match",
    "metric",
    "value",
    "value_low",
    "value_high",
    "unit",
    "per_protocol",
    "acceptable",
    "other_limits",
    "status",
    "margin",
    "source",
    "confidence",
    "message",
)


#: Columns that hold numbers written by rtqa (never neutralised, see :func:`neutralise`).
NUMERIC_COLUMNS = frozenset({"value", "value_low", "value_high", "margin"})

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV Injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` safe for a spreadsheet text cell: prefixed with ``'`` when it begins with a
    formula trigger (``=``, ``+``, ``-``, ``@``, tab, CR); otherwise unchanged. Idempotent."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def safe_cells(
    row: Mapping[str, Any], columns: Sequence[str], numeric: Collection[str] = NUMERIC_COLUMNS
) -> dict[str, str]:
    """``row`` as CSV cells for ``columns``: None is empty, numbers and the ``numeric`` columns
    as they are, every other text cell through :func:`neutralise`."""
    cells: dict[str, str] = {}
    for key in columns:
        value = row.get(key)
        if value is None:
            cells[key] = ""
        elif key in numeric or isinstance(value, bool | int | float):
            cells[key] = str(value)
        else:
            cells[key] = neutralise(str(value))
    return cells


def _number(value: float | None) -> str:
    x = finite(value)
    return "" if x is None else repr(x)


def _finding_row(result: CheckResult, finding: Finding) -> dict[str, str]:
    others = [f"{b}: {c}" for b, c in finding.limits.items() if b not in BAND_ORDER and c]
    low, high = finding.value_range or (finding.value, finding.value)
    return {
        "course_id": result.course_id,
        "case_id": finding.case_id or "",
        "patient_id": result.patient_id,
        "protocol": result.protocol_id,
        "protocol_version": result.protocol_version,
        "default_protocol": "true" if result.default_protocol else "false",
        "group": finding.group,
        "rule": finding.rule,
        "roi": finding.roi or "",
        "match": finding.match or "",
        "metric": finding.metric or "",
        "value": _number(finding.value),
        "value_low": _number(low),
        "value_high": _number(high),
        "unit": finding.unit or "",
        "per_protocol": per_protocol_condition(finding.limits),
        "acceptable": finding.limits.get("acceptable", ""),
        "other_limits": "; ".join(others),
        "status": status_of(finding).value,
        "margin": _number(finding.margin),
        "source": finding.source or "",
        "confidence": finding.confidence or "",
        "message": finding.message,
    }


def _error_row(error: CourseError) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        course_id=error.course_id,
        patient_id=error.patient_id,
        status="error",
        message=error.message,
    )
    return row


def rows(result: Renderable | Sequence[Renderable]) -> list[dict[str, str]]:
    """The CSV rows (column name -> cell text) of one course or several."""
    out: list[dict[str, str]] = []
    for item in as_list(result):
        if isinstance(item, CourseError):
            out.append(_error_row(item))
        else:
            out.extend(_finding_row(item, f) for f in ordered_findings(item.findings))
    return out


def render_csv(result: Renderable | Sequence[Renderable]) -> str:
    """The CSV report: a header row, then one row per finding of every course."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=COLUMNS, lineterminator="\n", quoting=csv.QUOTE_MINIMAL
    )
    writer.writeheader()
    writer.writerows(safe_cells(row, COLUMNS) for row in rows(result))
    return buffer.getvalue()
