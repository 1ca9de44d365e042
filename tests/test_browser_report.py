"""The HTML report and the batch index in a real headless Chromium.

Chromium is required: without it these tests fail with the command that installs it.
"""

from __future__ import annotations

import json

from browser import console_errors, screenshot
from selenium.webdriver.common.by import By
from test_html_cases import XSS_NAME, checked, xss_case

from rtqa.report import render
from rtqa.report.html_index import render_index


def _open(driver, path):
    driver.get(path.as_uri())
    driver.execute_script("return document.readyState")
    return console_errors(driver)


def _check_page(driver, result, name):
    """Console clean, one row per JSON finding, every image decoded, a screenshot saved."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#findings tbody tr.finding")
    assert len(rows) == len(json.loads(render(result, "json"))["findings"])
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
    )
    assert images, "the report has no figures"
    assert all(done and width > 0 for done, width, _ in images), images
    path = screenshot(driver, name)
    assert path.stat().st_size > 10_000


def test_lung_5fx_report_in_chromium(driver, tmp_path):
    result = checked("lung_5fx")
    page = tmp_path / "lung_5fx.html"
    page.write_text(render(result, "html"), encoding="utf-8")
    assert _open(driver, page) == []
    _check_page(driver, result, "report_lung_5fx")
    assert driver.find_element(By.ID, "verdict").text == "MAJOR DEVIATION"
    statuses = [
        r.get_attribute("data-status")
        for r in driver.find_elements(By.CSS_SELECTOR, "#findings tr.finding")
    ]
    assert statuses.count("major") == 1
    attention = driver.find_elements(By.CSS_SELECTOR, "#deviations tbody tr")
    assert len(attention) == 1 and "Esophagus" in attention[0].text
    headings = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
    order = ["Needs attention", "Findings", "Dose-volume histograms", "Dose slices"]
    assert [h for h in headings if h in order] == order
    assert headings.index("Fractionation") > headings.index("Dose slices")


def test_untrusted_structure_name_is_text(driver, tmp_path):
    result = xss_case(tmp_path)
    page = tmp_path / "escaped.html"
    page.write_text(render(result, "html"), encoding="utf-8")
    assert _open(driver, page) == []
    _check_page(driver, result, "report_escaped_name")
    assert XSS_NAME in driver.execute_script("return document.body.innerText")
    assert driver.execute_script("return typeof window.__xss") == "undefined"
    assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0


def _rows():
    return [
        {
            "case_id": "B",
            "pseudonym": "P-002",
            "plan": "LUNG5FX",
            "fractions": 5,
            "rx_gy": 50.0,
            "verdict": "major",
            "counts": {"major": 1, "pass": 9},
            "worst_finding": "Esophagus",
            "runtime_s": 2.5,
            "error": "",
            "report": "b report.html",
        },
        {
            "case_id": "A",
            "pseudonym": XSS_NAME,
            "plan": "SPINE3FX",
            "fractions": 3,
            "rx_gy": 30.0,
            "verdict": "pass",
            "counts": {"pass": 8},
            "worst_finding": "",
            "runtime_s": 10.25,
            "report": "a.html",
        },
        {
            "case_id": "C",
            "pseudonym": "P-003",
            "plan": "",
            "fractions": None,
            "rx_gy": None,
            "verdict": None,
            "error": "RD.dcm: truncated",
            "runtime_s": 0.5,
            "report": None,
        },
    ]


def test_index_sorts_filters_and_links(driver, tmp_path):
    index = render_index(_rows(), tmp_path)
    errors = _open(driver, index)
    assert errors == []

    def column(n):
        return [
            r.find_elements(By.TAG_NAME, "td")[n].text
            for r in driver.find_elements(By.CSS_SELECTOR, "#summary tbody tr")
            if r.is_displayed()
        ]

    assert column(0) == ["B", "A", "C"]
    assert XSS_NAME in driver.execute_script("return document.body.innerText")
    headers = driver.find_elements(By.CSS_SELECTOR, "#summary thead th")
    headers[0].click()
    assert column(0) == ["A", "B", "C"]
    headers[0].click()
    assert column(0) == ["C", "B", "A"]
    headers[8].click()  # runtime, numeric: 0.5 < 2.5 < 10.25 (not as text)
    assert column(8) == ["0.500", "2.50", "10.25"]
    driver.find_element(By.CSS_SELECTOR, "#filters input[value=pass]").click()
    assert column(0) == ["C", "B"]
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('#summary a'))"
        ".map(a => a.getAttribute('href'))"
    )
    assert sorted(links) == ["a.html", "b%20report.html"]
    assert driver.execute_script("return typeof window.__xss") == "undefined"
    assert console_errors(driver) == []
    screenshot(driver, "batch_index")
