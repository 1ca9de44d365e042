"""The batch summary page ``DIR/index.html``: one row per course, sortable and filterable.

Self-contained like the case reports: inline CSS and a small inline script (sorting by a click
on a column header, filtering by verdict), nothing loaded from a network. Every cell is escaped
(Jinja2 autoescaping); the link to each case's report is relative to the index and URL-quoted.

Row keys (a missing key is an empty cell; the first key of each tuple that is present wins):

===============  =====================================================================
column           keys
===============  =====================================================================
case             ``case_id``, ``course_id``, ``case``
patient          ``pseudonym``, ``patient``, ``patient_id``
plan             ``plan``, ``plans`` (a list is joined with ", ")
fractions        ``fractions``
Rx [Gy]          ``rx_gy``, ``rx``
verdict          ``verdict`` (pass, minor, major, not_evaluable, error; error when
                 ``error`` is set and no verdict is given)
counts           ``counts`` (a dict status -> count, or text)
worst finding    ``worst_finding``, ``worst``
runtime [s]      ``runtime_s``, ``runtime``
error            ``error``
(link)           ``report``: the report file, relative to ``out_dir`` (or absolute inside it)
===============  =====================================================================

An incomplete batch (``pending`` courses without a result, e.g. after an interruption) says so
in a banner above the table and in the summary line, so that the rows shown are never read as
the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rtqa import __version__
from rtqa.report.common import STATUS_ORDER, VERDICT_LABELS, finite, format_number, iso_datetime
from rtqa.report.html import environment, stylesheet

INDEX_NAME = "index.html"

#: (title, row keys, sort type)
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("case", ("case_id", "course_id", "case"), "text"),
    ("patient", ("pseudonym", "patient", "patient_id"), "text"),
    ("plan", ("plan", "plans"), "text"),
    ("fractions", ("fractions",), "number"),
    ("Rx [Gy]", ("rx_gy", "rx"), "number"),
    ("verdict", ("verdict",), "number"),
    ("counts", ("counts",), "text"),
    ("worst finding", ("worst_finding", "worst"), "text"),
    ("runtime [s]", ("runtime_s", "runtime"), "number"),
    ("error", ("error",), "text"),
)

#: Columns of free text, which may break inside a word; ids, names and numbers never do.
FREE_TEXT = frozenset({"worst finding", "error"})

#: Verdict order for sorting (most severe last) and labels.
VERDICT_ORDER = ("pass", "info", "not_evaluable", "minor", "major", "error")
_VERDICT_LABELS = {s.value: label for s, label in VERDICT_LABELS.items()} | {"error": "ERROR"}


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def verdict_of(row: Mapping[str, Any]) -> str:
    """The row's verdict value (``error`` for a failed case without a verdict)."""
    verdict = row.get("verdict")
    if verdict in (None, ""):
        return "error" if row.get("error") else "not_evaluable"
    return str(getattr(verdict, "value", verdict))


def _counts_text(counts: Any) -> str:
    if isinstance(counts, Mapping):
        order = [s.value for s in STATUS_ORDER]
        keys = sorted(counts, key=lambda k: order.index(k) if k in order else len(order))
        return ", ".join(f"{counts[k]} {str(k).replace('_', ' ')}" for k in keys if counts[k])
    return "" if counts is None else str(counts)


def report_link(report: Any, out_dir: Path) -> str | None:
    """A relative, URL-quoted link from ``out_dir/index.html`` to ``report``."""
    if report in (None, ""):
        return None
    path = Path(str(report))
    if path.is_absolute():
        path = Path(os.path.relpath(path, out_dir))
    return quote(path.as_posix(), safe="/")


def _cell(title: str, value: Any, kind: str, row: Mapping[str, Any], link: str | None) -> dict:
    if title == "verdict":
        v = verdict_of(row)
        rank = VERDICT_ORDER.index(v) if v in VERDICT_ORDER else len(VERDICT_ORDER)
        return {
            "text": _VERDICT_LABELS.get(v, v),
            "sort": rank,
            "badge": v,
            "num": False,
            "free": False,
            "link": None,
        }
    if title == "counts":
        text = _counts_text(value)
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    elif kind == "number":
        x = finite(value)
        if x is not None:
            text = str(int(x)) if float(x).is_integer() else format_number(x)
        else:  # e.g. "3; 5" for a course of two plans: shown as given, sorted first
            text = "" if value is None else str(value)
    else:
        text = "" if value is None else str(value)
    sort: Any = text
    if kind == "number":
        x = finite(value)
        sort = "" if x is None else repr(x)
    return {
        "text": text,
        "sort": sort,
        "badge": None,
        "num": kind == "number",
        "free": title in FREE_TEXT,
        "link": link if title == "case" and link else None,
    }


def incomplete_text(pending: int, total: int | None = None, why: str | None = None) -> str:
    """``"Incomplete: 38 of 40 courses pending (interrupted by SIGINT) ..."`` ("" if none)."""
    if pending <= 0:
        return ""
    of = f" of {total}" if total is not None else ""
    noun = "course" if (total if total is not None else pending) == 1 else "courses"
    cause = f" ({why})" if why else ""
    return (
        f"Incomplete: {pending}{of} {noun} pending, not checked{cause}. "
        "The table shows only the courses with a result; run the same command again to "
        "check the rest."
    )


def render_index_html(
    rows: Sequence[Mapping[str, Any]],
    out_dir: Path,
    title: str = "",
    *,
    pending: int = 0,
    why: str | None = None,
) -> str:
    """The index page as a string (see :func:`render_index`)."""
    table = []
    tally: dict[str, int] = {}
    for row in rows:
        link = report_link(row.get("report"), out_dir)
        cells = [_cell(t, _first(row, keys), kind, row, link) for t, keys, kind in COLUMNS]
        if link and not cells[0]["text"]:
            cells[0]["text"] = "report"
            cells[0]["link"] = link
        verdict = verdict_of(row)
        tally[verdict] = tally.get(verdict, 0) + 1
        table.append({"verdict": verdict, "cells": cells})
    verdicts = [
        {"value": v, "label": _VERDICT_LABELS.get(v, v), "count": tally[v]}
        for v in sorted(tally, key=lambda v: -VERDICT_ORDER.index(v) if v in VERDICT_ORDER else 1)
    ]
    summary = f"{len(rows)} case(s): " + ", ".join(
        f"{v['count']} {v['label'].lower()}" for v in verdicts
    )
    if not rows:
        summary = "no cases"
    if pending > 0:
        summary += f"; {pending} pending (no result yet)"
    columns = [{"title": t, "type": kind} for t, _, kind in COLUMNS]
    return (
        environment()
        .get_template("index.html")
        .render(
            title=title or "rtqa batch summary",
            summary=summary,
            incomplete=incomplete_text(pending, len(rows) + pending, why),
            columns=columns,
            rows=table,
            verdicts=verdicts,
            css=stylesheet(),
            version=__version__,
            created=iso_datetime(datetime.now()),
        )
    )


def render_index(
    rows: list[dict],
    out_dir: str | os.PathLike[str],
    title: str = "",
    *,
    pending: int = 0,
    why: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` (the batch summary, one row per course) and return its path.

    ``rows``: the batch summary rows (keys in the module docstring); each row's ``report`` is
    the file name of that case's HTML report, linked relative to the index. ``pending``: courses
    of the batch without a result (shown in a banner; ``why``, e.g. "interrupted by SIGTERM").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / INDEX_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_index_html(rows, out, title, pending=pending, why=why), encoding="utf-8")
    os.replace(tmp, path)
    return path
