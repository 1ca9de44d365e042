"""The ``render`` entry point: dispatch by format, errors, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_report_common import make_error, make_result

from rtqa.errors import EXIT_USAGE, UsageError
from rtqa.report import FORMATS, available_formats, render
from rtqa.report.csv_out import render_csv
from rtqa.report.jsonfmt import render_json
from rtqa.report.junit import render_junit
from rtqa.report.text import render_text


def test_dispatch_matches_the_format_functions():
    result = make_result()
    assert render(result, "text") == render_text(result)
    assert render(result, "text", color=True) == render_text(result, color=True)
    assert render(result, "json") == render_json(result)
    assert "curves" in json.loads(render(result, "json", include_curves=True))
    assert render(result, "csv") == render_csv(result)
    assert render(result, "junit") == render_junit(result)
    several = [make_result(), make_error()]
    assert render(several, "junit") == render_junit(several)
    assert list(json.loads(render(several, "json"))) == ["schema", "results"]


def test_colour_applies_to_text_only():
    result = make_result()
    for fmt in ("json", "csv", "junit"):
        assert "\x1b" not in render(result, fmt, color=True)


def test_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown report format 'pdf'") as info:
        render(make_result(), "pdf")
    assert info.value.exit_code == EXIT_USAGE


def test_formats_listed_with_a_place_for_html():
    assert list(FORMATS) == ["text", "json", "csv", "junit", "html"]
    assert available_formats()[:4] == ["text", "json", "csv", "junit"]


def test_rendering_imports_nothing_heavy():
    code = (
        "import sys, rtqa.report as r\n"
        "from datetime import datetime, UTC\n"
        "from rtqa.model import CheckResult, Status\n"
        "res = CheckResult('c', 'p', [], 'P', '1', 't', 's', False, [], Status.PASS, 0, '0',"
        " datetime(2024, 1, 1, tzinfo=UTC))\n"
        "for fmt in ('text', 'json', 'csv', 'junit'):\n"
        "    r.render(res, fmt)\n"
        "heavy = {'scipy', 'matplotlib', 'jinja2', 'pydicom', 'shapely', 'dask', 'jsonschema'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
