"""Renderers of ``rtqa check`` results: terminal text, JSON (with a schema), CSV, JUnit XML.

They draw the :class:`~rtqa.model.CheckResult` they are given and compute nothing. Each format
is a pure function in its own module, imported only when used so that ``rtqa check`` starts
fast; :func:`render` dispatches by format name.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from rtqa.errors import UsageError
from rtqa.report.common import CourseError, Renderable, ordered_findings

# format name -> "module:function"; each function takes one result or a list of them
FORMATS: dict[str, str] = {
    "text": "rtqa.report.text:render_text",
    "json": "rtqa.report.jsonfmt:render_json",
    "csv": "rtqa.report.csv_out:render_csv",
    "junit": "rtqa.report.junit:render_junit",
    "html": "rtqa.report.html:render_html",
}

__all__ = ["FORMATS", "CourseError", "available_formats", "ordered_findings", "render"]


def _renderer(fmt: str):
    if fmt not in FORMATS:
        known = ", ".join(available_formats())
        raise UsageError(f"unknown report format '{fmt}' (choose one of: {known})")
    module_name, attr = FORMATS[fmt].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UsageError(f"report format '{fmt}' is not available in this installation") from None
    return getattr(module, attr)


def available_formats() -> list[str]:
    """Format names whose renderer is installed, in :data:`FORMATS` order."""
    import importlib.util

    return [
        name
        for name, target in FORMATS.items()
        if importlib.util.find_spec(target.split(":")[0]) is not None
    ]


def render(
    result: Renderable | Sequence[Renderable],
    fmt: str,
    *,
    color: bool = False,
    include_curves: bool = False,
) -> str:
    """The report of one course (or several) in format ``fmt``.

    ``color`` applies ANSI colour to the text format only; ``include_curves`` adds the DVH
    curves to JSON (they are always available to HTML). An unknown or uninstalled format is a
    :class:`~rtqa.errors.UsageError`.
    """
    renderer = _renderer(fmt)
    if fmt == "text":
        return renderer(result, color=color)
    if fmt == "json":
        return renderer(result, include_curves=include_curves)
    return renderer(result)
