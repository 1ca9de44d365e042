"""The HTML report page and the batch index, read as HTML (the browser tests render them)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from test_html_cases import XSS_NAME, checked, xss_case
from test_report_common import make_error, make_result

from rtqa.report import render
from rtqa.report.common import ordered_findings
from rtqa.report.html import render_html
from rtqa.report.html_index import render_index, report_link


class Page(HTMLParser):
    """Tags with their attributes, and the text of each findings row."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "finding" in (a.get("class") or "").split():
            self._row = []
            self.rows.append(self._row)
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None and data.strip():
            self._row.append(data.strip())

    def attrs(self, tag):
        return [a for t, a in self.tags if t == tag]


@pytest.fixture(scope="module")
def lung():
    result = checked("lung_5fx")
    return result, render_html(result)


def test_page_is_self_contained(lung):
    _, text = lung
    page = Page(text)
    assert page.attrs("script") == [] and page.attrs("link") == []
    images = page.attrs("img")
    assert len(images) >= 3  # DVH, slices of the one target, timeline
    for img in images:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "default-src 'none'" in text  # CSP: nothing fetched, no script runs


def test_header_names_plan_patient_protocol_verdict_and_hashes(lung):
    result, text = lung
    assert "LUNG5FX" in text and result.patient_id in text
    assert f"{result.protocol_id} v{result.protocol_version}" in text
    assert 'class="badge big s-major" id="verdict">MAJOR DEVIATION' in text
    assert result.input_hashes and all(h in text for h in result.input_hashes.values())
    assert f"<td>{result.rtqa_version}</td>" in text


def test_findings_table_matches_the_json_in_report_order(lung):
    result, text = lung
    rows = Page(text).rows
    findings = json.loads(render(result, "json"))["findings"]
    assert len(rows) == len(findings) == len(result.findings)
    expected = [f.status.value.replace("_", " ") for f in ordered_findings(result.findings)]
    assert [r[0] for r in rows] == expected
    oesophagus = next(r for r in rows if r[0] == "major")
    assert any("Esophagus" in cell for cell in oesophagus)
    major = next(f for f in result.findings if f.status.value == "major")
    assert major.metric in oesophagus and "<= 35" in oesophagus


def test_sections_in_reading_order(lung):
    _, text = lung
    order = [text.index(h) for h in ("<h2>Findings", "<h2>Dose-volume", "<h2>Dose slices",
                                     "<h2>Fractionation")]  # fmt: skip
    assert order == sorted(order)
    assert "Prior radiation" not in text.split("<h2>Findings")[1].split("</table>")[-1]


def test_untrusted_names_are_escaped(tmp_path):
    text = render_html(xss_case(tmp_path))
    assert XSS_NAME not in text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in text
    assert all(img["src"].startswith("data:") for img in Page(text).attrs("img"))


def test_course_error_and_several_courses():
    text = render_html([make_result(), make_error()])
    assert text.count('<article class="course"') == 2 and "ERROR" in text


def test_text_and_json_do_not_load_matplotlib():
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from test_report_common import make_result; from rtqa.report import render;"
        "render(make_result(), 'text'); render(make_result(), 'json');"
        "assert 'matplotlib' not in sys.modules, 'matplotlib loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_index_links_and_escapes(tmp_path):
    rows = [
        {"case_id": "A&B", "pseudonym": XSS_NAME, "verdict": "pass", "report": "a b.html",
         "counts": {"pass": 3, "major": 0}, "runtime_s": 1.5},
        {"case_id": "C", "error": "unreadable", "report": str(tmp_path / "sub" / "c.html")},
    ]  # fmt: skip
    path = render_index(rows, tmp_path)
    assert path == tmp_path / "index.html"
    text = path.read_text()
    links = [a["href"] for a in Page(text).attrs("a")]
    assert links == ["a%20b.html", "sub/c.html"]
    assert XSS_NAME not in text and "A&amp;B" in text
    assert ">3 pass<" in text and ">ERROR<" in text
    assert report_link("javascript:alert(1)", tmp_path) == "javascript%3Aalert%281%29"
