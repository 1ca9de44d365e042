"""Layout of the HTML report and batch index in a real headless Chromium: a limit, a number, an
id or a column title never breaks inside a word ("<= 21.9" drawn as "<= 21." over "9" reads as
another limit), and the pages never scroll sideways.

Chromium is required: without it these tests fail with the command that installs it.
"""

from __future__ import annotations

import pytest
from browser import console_errors
from test_html_cases import checked

from rtqa.report import render
from rtqa.report.html_index import render_index

#: Words of the cells matched by a selector that the browser drew over more than one line (a
#: line may end after a hyphen, as in "RTQA-" / "SPINE3FX": the hyphen stays visible).
BROKEN_WORDS = """
const out = [];
for (const cell of document.querySelectorAll(arguments[0])) {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const words = /[^\\s-]+-?/g;
    let m;
    while ((m = words.exec(node.data))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
      if (tops.size > 1) out.push(m[0]);
    }
  }
}
return out;
"""

SIDEWAYS = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _open(driver, path):
    driver.set_window_size(1280, 2000)
    driver.get(path.as_uri())
    driver.execute_script("return document.readyState")
    return console_errors(driver)


@pytest.mark.parametrize(("case", "protocol"), [("lung_5fx", None), ("spine_prior", "boss")])
def test_limits_numbers_and_titles_are_never_broken_inside_a_word(driver, tmp_path, case, protocol):
    result = checked(case, protocol)
    page = tmp_path / f"{case}.html"
    page.write_text(render(result, "html"), encoding="utf-8")
    assert _open(driver, page) == []
    # columns: status, structure, metric / rule, value, limit, margin, source, message
    cells = ", ".join(
        f"#findings tr.finding td:nth-child({n}), #deviations tr.dev td:nth-child({n})"
        for n in (3, 4, 5, 6)
    )
    assert driver.execute_script(BROKEN_WORDS, cells) == []
    assert driver.execute_script(BROKEN_WORDS, "#findings thead th, #deviations thead th") == []
    assert driver.execute_script(SIDEWAYS) <= 0


def test_index_ids_and_titles_are_never_broken_inside_a_word(driver, tmp_path):
    names = ["BONE1FX", "PRIOREXCEEDS", "SPINENOCORD", "SPINEOVERRUN", "SPINEPRIOR"]
    rows = [
        {
            "case_id": name,
            "patient_id": f"RTQA-{name}",
            "plan": name,
            "fractions": 3,
            "rx_gy": 30.0,
            "verdict": "not_evaluable",
            "counts": {"not_evaluable": 1, "pass": 25, "info": 24},
            "worst_finding": "not_evaluable: SpinalCord: SpinalCord (required for site spine) "
            "not found: no ROI matched (looked for 'SpinalCord', 'cord', 'spinal cord', 'SC', "
            "pattern '^(spinal[\\s_-]*)?cord\\b'); map one with --map SpinalCord=NAME",
            "runtime_s": 1.4649,
            "error": "",
            "report": f"results/{name}.html",
        }
        for name in names
    ]
    rows.append(
        {
            "case_id": "trunc",
            "verdict": None,
            "error": "input unreadable: folder trunc gave no course (1 of 6 files unreadable): "
            "RD.SPINE3FX.dcm: truncated file: item of (7FE0,0010) needs 3460 bytes",
            "runtime_s": 0.02,
            "report": "results/trunc.html",
        }
    )
    index = render_index(rows, tmp_path)
    assert _open(driver, index) == []
    # columns: case, patient, plan, fractions, Rx, verdict, counts, worst finding, runtime, error
    cells = ", ".join(f"#summary tbody td:nth-child({n})" for n in (1, 2, 3, 4, 5, 9))
    assert driver.execute_script(BROKEN_WORDS, cells) == []
    assert driver.execute_script(BROKEN_WORDS, "#summary thead th") == []
    assert driver.execute_script(SIDEWAYS) <= 0
