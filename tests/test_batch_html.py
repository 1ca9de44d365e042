"""``rtqa batch`` HTML output: one report per course beside its result JSON, and ``index.html``
linking them all; reruns, ``--no-html``, failed courses, pseudonymisation, and the report
falling back to tables when a figure cannot be drawn."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from rtqa.batch import BatchOptions, is_done, report_path, run_batch
from rtqa.batch_store import StoredResult
from rtqa.batch_task import TEST_HOOK_ENV, render_report
from rtqa.cli import cli
from rtqa.report import render

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
COURSES = {
    "BONE1FX",
    "LUNG5FX",
    "PRIOREXCEEDS",
    "SPINE3FX",
    "SPINENOCORD",
    "SPINEOVERRUN",
    "SPINEPRIOR",
}
LABELS = {
    "pass": "PASS",
    "minor": "MINOR DEVIATION",
    "major": "MAJOR DEVIATION",
    "not_evaluable": "NOT EVALUABLE",
}


class _Index(HTMLParser):
    """The rows of an index page: (data-verdict, [cell texts], [link targets])."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str], list[str]]] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "case":
            self.rows.append((a["data-verdict"], [], []))
        elif self.rows and tag == "td":
            self.rows[-1][1].append("")
            self._in_cell = True
        elif self.rows and tag == "a":
            self.rows[-1][2].append(a["href"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell and self.rows:
            self.rows[-1][1][-1] += data


def index_rows(out: Path) -> list[tuple[str, list[str], list[str]]]:
    parser = _Index()
    parser.feed((out / "index.html").read_text("utf-8"))
    return parser.rows


def _options(root, out, **kw) -> BatchOptions:
    return BatchOptions(root=str(root), out=str(out), progress_mode="quiet", **kw)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch_html") / "out"
    r = CliRunner().invoke(cli, ["batch", str(SAMPLE), "--out", str(out), "--quiet"])
    assert r.exit_code == 1, r.output  # spine_3fx_overrun deviates under the default protocol
    return out


def test_sample_data_writes_a_report_per_course_and_an_index_linking_them(sample_run):
    out = sample_run
    results = sorted((out / "results").glob("*.json"))
    reports = sorted((out / "results").glob("*.html"))
    assert len(results) == len(reports) == len(COURSES)
    assert [p.with_suffix("").name for p in reports] == [p.with_suffix("").name for p in results]
    docs = {json.loads(p.read_text())["course_id"]: (p, json.loads(p.read_text())) for p in results}
    assert set(docs) == COURSES

    rows = index_rows(out)
    assert len(rows) == len(COURSES)
    summary = {r["course_id"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    for verdict, cells, links in rows:
        course = cells[0]
        path, doc = docs[course]
        assert verdict == doc["verdict"] == summary[course]["status"]
        assert len(links) == 1
        target = out / unquote(links[0])
        assert target.is_file() and target == report_path(path)
        assert summary[course]["report_file"] == links[0]
        page = target.read_text("utf-8")
        # the linked page is this course's report: its verdict and one row per JSON finding
        assert re.search(r'id="verdict">([^<]+)<', page)[1] == LABELS[doc["verdict"]]
        assert page.count('<tr class="finding') == len(doc["findings"])
        assert "data:image/png;base64," in page  # figures drawn from the kept context


def test_browser_opens_the_index_filters_and_follows_a_link(sample_run, tmp_path):
    from browser import console_errors, launch
    from selenium.webdriver.common.by import By

    out = sample_run
    driver = launch(tmp_path / "profile")
    try:
        driver.get((out / "index.html").as_uri())
        assert console_errors(driver) == []
        rows = driver.find_elements(By.CSS_SELECTOR, "#summary tbody tr")
        assert len(rows) == len(COURSES)
        majors = sum(r.get_attribute("data-verdict") == "major" for r in rows)
        assert majors >= 1
        box = driver.find_element(By.CSS_SELECTOR, "#filters input[value=major]")
        box.click()
        assert sum(r.is_displayed() for r in rows) == len(COURSES) - majors
        box.click()
        assert sum(r.is_displayed() for r in rows) == len(COURSES)
        driver.find_element(By.LINK_TEXT, "LUNG5FX").click()
        assert driver.current_url.endswith(".html") and "/results/" in driver.current_url
        findings = driver.find_elements(By.CSS_SELECTOR, "#findings tbody tr.finding")
        doc = json.loads(report_path_json(out, "LUNG5FX").read_text())
        assert len(findings) == len(doc["findings"])
        assert driver.find_element(By.ID, "verdict").text == "MAJOR DEVIATION"
        assert console_errors(driver) == []
    finally:
        driver.quit()


def report_path_json(out: Path, course: str) -> Path:
    (path,) = (out / "results").glob(f"{course}--*.json")
    return path


def test_a_result_without_its_report_is_checked_again(sample_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    gone = report_path(report_path_json(out, "SPINE3FX"))
    gone.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    report = run_batch(_options(SAMPLE, out, workers=1))
    assert report.computed == 1 and report.skipped == len(COURSES) - 1
    assert gone.is_file() and 'id="findings"' in gone.read_text("utf-8")
    others = {p: t for p, t in kept.items() if "SPINE3FX" not in p.name}
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert sum(len(links) for _, _, links in index_rows(out)) == len(COURSES)


def test_no_html_writes_the_index_without_links_and_html_comes_later(tmp_path):
    root = tmp_path / "in"
    shutil.copytree(SAMPLE / "spine_3fx", root / "spine_3fx")
    out = tmp_path / "out"
    args = ["batch", str(root), "--out", str(out), "--quiet"]
    r = CliRunner().invoke(cli, [*args, "--no-html"])
    assert r.exit_code == 0, (r.output, (out / "summary.csv").read_text())
    assert not list((out / "results").glob("*.html"))
    ((verdict, cells, links),) = index_rows(out)
    assert (verdict, cells[0], links) == ("pass", "SPINE3FX", [])
    # no-html rerun: done; default rerun: checked again to draw the report
    assert run_batch(_options(root, out, html=False)).skipped == 1
    again = run_batch(_options(root, out))
    assert again.computed == 1 and again.rows[0]["report_file"].endswith(".html")
    assert index_rows(out)[0][2] == [again.rows[0]["report_file"]]


def test_a_crashed_course_gets_a_page_saying_why_and_is_retried(tmp_path, monkeypatch):
    root = tmp_path / "in"
    shutil.copytree(SAMPLE / "spine_3fx", root / "spine_3fx")
    out = tmp_path / "out"
    monkeypatch.setenv(TEST_HOOK_ENV, "crash:SPINE3FX")
    first = run_batch(_options(root, out, workers=1))
    row = first.rows[0]
    assert row["status"] == "error" and row["result_file"].endswith(".failed.json")
    page = (out / row["report_file"]).read_text("utf-8")
    assert "ERROR" in page and "exited with status 70" in page
    assert index_rows(out)[0][0] == "error"
    monkeypatch.delenv(TEST_HOOK_ENV)
    second = run_batch(_options(root, out, workers=1))
    assert second.computed == 1 and second.rows[0]["status"] == "pass"
    assert second.rows[0]["report_file"] == row["report_file"]  # replaced in place
    assert "exited with status" not in (out / row["report_file"]).read_text("utf-8")


def test_pseudonymised_reports_and_index_hold_no_identifier(tmp_path):
    from test_pseudonym import (
        ACCESSION,
        BIRTH,
        FOLDER,
        INSTITUTION,
        KEY,
        NAME,
        OPERATOR,
        PID,
        _identified_case,
    )

    root = tmp_path / "in"
    _identified_case(root)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    out = tmp_path / "out"
    report = run_batch(_options(root, out, workers=1, key_file=str(key_file)))
    pages = sorted(out.rglob("*.html"))
    assert [p.name for p in pages if p.parent == out] == ["index.html"]
    assert len(pages) == 2
    leaks = [NAME, "DOE", "JANE", PID, BIRTH, "1955-03-12", INSTITUTION, OPERATOR, ACCESSION]
    leaks += [FOLDER, "site_a", str(root)]
    for page in pages:
        text = page.read_text("utf-8")
        for leak in leaks:
            assert leak.lower() not in text.lower(), (leak, page.name)
            assert leak.lower() not in page.name.lower()
    course_report = out / report.rows[0]["report_file"]
    text = course_report.read_text("utf-8")
    assert report.rows[0]["patient_id"] in text and 'id="findings"' in text


def test_is_done_needs_the_report_beside_a_done_result(tmp_path):
    done = tmp_path / "X--0123456789abcdef0123.json"
    failed = tmp_path / "X--0123456789abcdef0123.failed.json"
    assert report_path(done) == report_path(failed) == tmp_path / "X--0123456789abcdef0123.html"
    done.write_text("{}")
    item = StoredResult(done, "0123456789abcdef0123", False)
    assert not is_done(item) and is_done(item, html=False)
    report_path(done).write_text("<p>")
    assert is_done(item)
    assert not is_done(StoredResult(failed, "0123456789abcdef0123", True))
    assert not is_done(None, html=False)


def test_a_figure_that_fails_leaves_the_tables_and_a_note(monkeypatch):
    from test_html_cases import checked

    import rtqa.report.figures as figures

    result = checked("bone_1fx", "tg101")
    copy = type(result)(**{**result.__dict__, "notes": list(result.notes)})

    def boom(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(figures, "dvh_figure", boom)
    page = render_report(copy)
    assert "HTML report drawn without figures: RuntimeError: no canvas" in page
    assert page.count('<tr class="finding') == len(result.findings)
    assert "data:image/png" not in page
    doc = json.loads(render(copy, "json"))
    assert any("drawn without figures" in n["message"] for n in doc["notes"])
