"""Report output that read differently from the JSON it renders: limits read wrong for rounding,
values drawn next to a limit they are not at, EQD2 values without the word, a not-evaluable
completion window drawn as met, figure legends missing a status or crashing on a name."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_html_cases import SAMPLE, checked
from test_report_common import make_result

from rtqa.check import CheckOptions, run_check
from rtqa.model import Finding, PlanSummary, Status, worst_status
from rtqa.report import figures as figs
from rtqa.report import render
from rtqa.report.common import (
    display_unit,
    format_margin,
    format_number,
    format_quantity,
    thresholds,
)
from rtqa.report.html import stylesheet
from rtqa.report.junit import failure_message
from rtqa.views import Curve, Marker, Timeline, report_view

# ---- limits read for rounding ---------------------------------------------------------------


def test_a_range_is_two_bounds_not_a_negative_number():
    # the dose_level rule writes its range as "90-300 %": 300, not -300, is the upper bound
    assert thresholds({"limit": "90-300 %"}) == [90.0, 300.0]
    assert thresholds({"limit": "-5--1"}) == [-5.0, -1.0]
    assert thresholds({"limit": ">= -5"}) == [-5.0]
    # a number glued to a word is not a limit (the 2 of EQD2)
    assert thresholds({"limit": "<= 32.4 (EQD2 of <= 18)"}) == [32.4, 18.0]


def test_a_plus_minus_tolerance_gives_its_bounds():
    # delivered_mu writes "250 ± 2.5 MU": judged against 247.5 and 252.5
    assert thresholds({"limit": "250 ± 2.5 MU"}) == [250.0, 2.5, 247.5, 252.5]


def _dose_level(pct: float) -> Finding:
    """An integrity dose_level finding as rtqa.protocol.dose_trust writes it."""
    plausible = 90.0 <= pct <= 300.0
    return Finding(
        group="integrity",
        rule="dose_level",
        status=Status.PASS if plausible else Status.NOT_EVALUABLE,
        message=f"dose maximum = {pct} % of the prescription",
        metric="Max[%Rx]",
        value=pct,
        unit="%",
        limits={"limit": "90-300 %"},
        margin=min(pct - 90.0, 300.0 - pct),
        source="rtqa convention",
    )


def _delivered_mu(mu: float) -> Finding:
    """A delivered_mu deviation as rtqa.protocol.delivery writes it (planned 250 MU, tol 2.5)."""
    return Finding(
        group="plan",
        rule="delivered_mu",
        status=Status.MINOR,
        message="planned 250 MU per fraction",
        metric="MU beam 1",
        value=mu,
        unit="MU",
        limits={"limit": "250 ± 2.5 MU"},
        margin=2.5 - abs(mu - 250.0),
        source="rtqa convention",
    )


def _result(*findings: Finding, **overrides):
    items = list(findings)
    return make_result(findings=items, verdict=worst_status(items), **overrides)


@pytest.mark.parametrize("fmt", ["text", "html", "junit"])
def test_a_dose_maximum_above_the_range_never_prints_as_its_bound(fmt):
    # 300.04 % is outside 90-300 % (not evaluable); "300.0 %" would read as inside it
    assert format_quantity(300.04, "%", thresholds({"limit": "90-300 %"})) == "300.04 %"
    out = render(_result(_dose_level(300.04)), fmt)
    assert "300.04 %" in out
    assert "300.0 %" not in out


@pytest.mark.parametrize("fmt", ["text", "html", "junit"])
def test_delivered_mu_just_outside_the_tolerance_never_prints_as_its_bound(fmt):
    assert format_quantity(252.52, "MU", thresholds({"limit": "250 ± 2.5 MU"})) == "252.52 MU"
    assert format_quantity(247.48, "MU", thresholds({"limit": "250 ± 2.5 MU"})) == "247.48 MU"
    out = render(_result(_delivered_mu(252.52)), fmt)
    assert "252.52 MU" in out
    assert "252.5 MU" not in out


@pytest.mark.parametrize(
    ("value", "refs", "expected"),
    [
        (15.0000001, (15.0,), "15.0000001"),  # was "15.000000": the limit itself, next to MAJOR
        (14.9999999, (15.0,), "14.9999999"),
        (2e-7, (0.0,), "2e-07"),  # grid_coverage "<= 0 cc": was "0.000000"
        (100.00000000009025, (100.0,), "100.0000000001"),
    ],
)
def test_a_value_closer_to_its_limit_than_six_decimals_never_prints_as_the_limit(
    value, refs, expected
):
    assert format_number(value, refs) == expected


def test_a_tiny_negative_margin_never_prints_as_zero():
    assert format_margin(-1e-7, "Gy") == "-1e-07 Gy"  # was "-0.000000 Gy"
    assert format_margin(4e-7, None) == "+4e-07"


@pytest.mark.parametrize("fmt", ["text", "html", "junit"])
def test_an_organ_just_over_its_limit_shows_that_it_is_over(fmt):
    f = Finding(
        group="organ",
        rule="D0.03cc[Gy]",
        status=Status.MAJOR,
        roi="SpinalCord",
        metric="D0.03cc[Gy]",
        value=15.0000001,
        unit="Gy",
        limits={"limit": "<= 15"},
        margin=-1e-7,
    )
    out = render(_result(f), fmt)
    assert "15.0000001 Gy" in out
    assert "15.000000 Gy" not in out
    assert "-0.000000" not in out


def test_count_margins_print_as_counts():
    assert format_margin(3.0, "targets") == "+3 targets"
    assert format_margin(-1.0, "fractions") == "-1 fraction"  # one: singular
    assert format_quantity(1.0, "targets") == "1 target"
    assert format_quantity(3.0, "targets") == "3 targets"
    assert format_margin(0.0, "targets") == "0 targets"
    assert format_margin(0.5, "targets") == "+0.500 targets"


# ---- EQD2 values are said to be EQD2 -------------------------------------------------------


def _eqd2_organ() -> Finding:
    """An organ of a course of 3- and 5-fraction plans, judged in EQD2 (as organ_rules writes
    it: the metric and unit as for a physical dose, the limit converted)."""
    return Finding(
        group="organ",
        rule="D5cc[Gy]",
        status=Status.PASS,
        message="plans of different fraction counts: EQD2 sum of the plans (alpha/beta 3 Gy)",
        roi="Esophagus",
        metric="D5cc[Gy]",
        value=11.364899944350443,
        unit="Gy",
        limits={"limit": "<= 26.91 (EQD2 of <= 19.5)"},
        margin=15.545100055649557,
    )


def test_an_eqd2_value_carries_the_word():
    f = _eqd2_organ()
    assert display_unit(f) == "Gy EQD2"
    text = render(_result(f), "text")
    row = next(line for line in text.splitlines() if "D5cc[Gy]" in line)
    assert "11.36 Gy EQD2" in row  # a pass row: its limit is cut, its message not printed
    html = render(_result(f), "html")
    assert "11.36 Gy EQD2" in html and "+15.55 Gy EQD2" in html
    assert "value 11.36 Gy EQD2" in failure_message(replace(f, status=Status.MAJOR))
    # the machine-readable unit stays Gy
    assert json.loads(render(_result(f), "json"))["findings"][0]["unit"] == "Gy"


def test_a_metric_that_names_eqd2_and_a_physical_dose_are_left_alone():
    prior = Finding(
        group="prior",
        rule="cumulative_eqd2",
        status=Status.MAJOR,
        roi="SpinalCord",
        metric="EQD2cum Max",
        value=80.76,
        unit="Gy",
        limits={"limit": "<= 70"},
        margin=-10.76,
    )
    physical = replace(_eqd2_organ(), limits={"limit": "<= 19.5"})
    assert display_unit(prior) == "Gy"
    assert display_unit(physical) == "Gy"
    assert "80.76 Gy EQD2" not in render(_result(prior), "text")


def test_mixed_fraction_course_labels_its_organ_values_eqd2(tmp_path):
    from test_organ_fraction_tables import spine_case

    folder = spine_case(tmp_path, "mixed", [(30.0, 3, 0), (30.0, 5, 1)])
    (result,) = run_check([str(folder)], CheckOptions(protocol="tg101"))
    doc = json.loads(render(result, "json"))
    organs = [f for f in doc["findings"] if f["group"] == "organ" and f["value"] is not None]
    assert organs and all("EQD2 of" in f["limits"]["limit"] for f in organs)
    text = render(result, "text")
    for f in organs:
        row = next(
            line
            for line in text.splitlines()
            if f["metric"] in line and line.split()[1].startswith(f["roi"][:8])
        )
        shown = format_number(f["value"], thresholds(f["limits"]))
        assert f"{shown} Gy EQD2" in row
    # the DVHs show physical dose: an EQD2 is never marked on them, and the report says so
    view = report_view(result)
    judged = {f["roi"] for f in organs}
    marked = {m.roi for c in view.curves for m in c.markers}
    assert judged and not judged & marked
    assert f"{len(organs)} metric(s) judged in EQD2" in " ".join(view.notes)


# ---- the HTML report ------------------------------------------------------------------------


def test_html_header_states_the_exit_code_and_what_it_means():
    f = replace(_eqd2_organ(), status=Status.NOT_EVALUABLE)
    html = render(_result(f, exit_code=4), "html")
    meaning = "(not fully evaluable, nothing deviated)"
    assert f'<td class="exit-code">4 <span class="muted">{meaning}' in html
    # a minor deviation under --fail-on major: the verdict and exit 0 side by side
    minor = replace(_eqd2_organ(), status=Status.MINOR)
    html = render(_result(minor, exit_code=0), "html")
    assert "MINOR DEVIATION" in html
    assert '<td class="exit-code">0 <span class="muted">(everything per protocol)' in html


def test_html_of_several_courses_tallies_them_like_the_text_report():
    a = _result(_dose_level(120.0), course_id="A", exit_code=0)
    b = _result(
        replace(_eqd2_organ(), status=Status.MAJOR, limits={"limit": "<= 5"}),
        course_id="B",
        exit_code=1,
    )
    html = render([a, b], "html")
    assert '<p id="courses-summary">2 courses: 1 pass, 1 major deviation</p>' in html
    assert "2 courses: 1 pass, 1 major deviation" in render([a, b], "text")
    assert '<a href="#course-2">B</a>' in html


def test_html_never_prints_nan_as_a_prescription():
    plans = [PlanSummary("C1", "SpineT7", "1.2.3", 3, math.nan, "APPROVED")]
    html = render(_result(_dose_level(120.0), plans=plans), "html")
    assert "nan Gy" not in html
    assert "SpineT7 · 3 fx · approved" in html


def test_html_limit_cells_never_break_inside_a_word():
    html = render(_result(_eqd2_organ()), "html")
    assert '<td class="limit">&lt;= 26.91 (EQD2 of &lt;= 19.5)</td>' in html
    css = stylesheet()
    assert "overflow-wrap: break-word" in css
    assert "td.roi, td.source, td.msg" in css


# ---- the completion window drawn as judged --------------------------------------------------


def _undated_third_fraction(tmp_path: Path) -> Path:
    """spine_3fx (without its CT) whose third treatment record carries no date."""
    folder = tmp_path / "spine_undated"
    folder.mkdir()
    for f in (SAMPLE / "spine_3fx").glob("R*.dcm"):
        shutil.copy(f, folder / f.name)
    record = folder / "RT.SPINE3FX.fx3.dcm"
    ds = pydicom.dcmread(record)
    dated = (
        "TreatmentDate",
        "TreatmentTime",
        "TreatmentControlPointDate",
        "TreatmentControlPointTime",
    )

    def strip(d):
        for el in list(d):
            if el.keyword in dated:
                del d[el.tag]
            elif el.VR == "SQ":
                for item in el.value:
                    strip(item)

    strip(ds)
    ds.save_as(record)
    return folder


def test_fractionation_caption_says_not_evaluable_when_the_finding_does(tmp_path, monkeypatch):
    drawn = {}

    def timeline(tl, status=None):
        drawn["status"] = status
        return "data:image/png;base64,"

    monkeypatch.setattr(figs, "timeline_figure", timeline)
    folder = _undated_third_fraction(tmp_path)
    (result,) = run_check([str(folder)], CheckOptions(keep_context=True))
    doc = json.loads(render(result, "json"))
    (window,) = [f for f in doc["findings"] if f["rule"] == "completion_window"]
    assert window["status"] == "not_evaluable"
    html = render(result, "html")
    assert "allowed: within 21 days (not evaluable)" in html
    assert "(met)" not in html  # was: "allowed: within 21 days (met)"
    assert "2 dated fraction(s) delivered" in html
    assert drawn["status"] == "not_evaluable"


def _capture(monkeypatch) -> dict:
    """Make figure functions return their matplotlib Figure instead of a PNG."""
    monkeypatch.setattr(figs, "data_uri", lambda fig: fig)
    return {}


def test_timeline_markers_take_the_findings_colour_and_say_it(monkeypatch):
    _capture(monkeypatch)
    tl = Timeline(
        (datetime(2024, 3, 4, 9), datetime(2024, 3, 6, 9)), ("T8", "T8"), 21.0, 2, 1
    )  # within the window as far as dated, one record undated
    fig = figs.timeline_figure(tl, "not_evaluable")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fraction (completion window: not evaluable)" in texts
    marker = next(line for line in ax.get_lines() if line.get_marker() == "D")
    assert marker.get_color() == figs.STATUS_COLORS["not_evaluable"]


# ---- DVH legend -----------------------------------------------------------------------------


def _curve(name: str, *statuses: Status) -> Curve:
    markers = tuple(
        Marker(name, "D0.03cc[Gy]", s, 10.0 + i, 1.0, limit_dose_gy=12.0)
        for i, s in enumerate(statuses)
    )
    return Curve(name, "organ", np.array([0.0, 10.0, 20.0]), np.array([100.0, 50.0, 0.0]), markers)


def test_dvh_legend_names_every_status_a_marker_is_drawn_in(monkeypatch):
    _capture(monkeypatch)
    curves = [_curve("Heart", Status.NOT_EVALUABLE, Status.INFO), _curve("Cord", Status.PASS)]
    fig = figs.dvh_figure(curves, figs.structure_colors([("Heart", "organ"), ("Cord", "organ")]))
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    # a withheld (not evaluable) metric was drawn purple with no legend entry
    assert "metric: not evaluable" in texts
    assert "metric: info" in texts
    assert "metric: pass" in texts
    assert "metric: not_evaluable" not in texts


def test_dvh_legend_shows_names_as_written_and_short(monkeypatch):
    long_name = "SpinalCord_" + "X" * 53
    names = ["Eso$x^$", "_Cord", long_name]
    # a name with $...$ stopped the whole HTML report (matplotlib mathtext ValueError)
    uri = figs.dvh_figure([_curve(n) for n in names], {})
    assert uri.startswith("data:image/png;base64,")
    _capture(monkeypatch)
    fig = figs.dvh_figure([_curve(n) for n in names], {})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert r"Eso\$x^\$" in texts  # drawn as "Eso$x^$"
    assert " _Cord" in texts  # a leading "_" would leave it out of the legend
    cut = [t for t in texts if t.startswith("SpinalCord_")]
    assert cut == ["SpinalCord_" + "X" * 20 + "…"]
    assert len(cut[0]) == figs.LEGEND_CHARS


def test_a_dollar_in_names_never_stops_the_html_report(tmp_path):
    folder = tmp_path / "dollar"
    folder.mkdir()
    for f in (SAMPLE / "spine_3fx").glob("R*.dcm"):
        ds = pydicom.dcmread(f)
        for item in getattr(ds, "StructureSetROISequence", []):
            if item.ROIName == "Esophagus":
                item.ROIName = "Eso$x^$"
        if "RTPlanLabel" in ds:
            ds.RTPlanLabel = "T8$_$"
        ds.save_as(folder / f.name)
    options = CheckOptions(keep_context=True, mapping={"Esophagus": ("Eso$x^$",)})
    (result,) = run_check([str(folder)], options)
    html = render(result, "html")
    assert "Eso$x^$" in html and "T8$_$" in html
    assert html.count("data:image/png;base64,") >= 3  # DVH, slices, timeline


# ---- JUnit: no two test cases alike ---------------------------------------------------------


def _targets(rule: str, status: Status, limit: str, margin: float) -> Finding:
    return Finding(
        group="plan",
        rule=rule,
        status=status,
        message="5 target(s)",
        metric="targets",
        value=5.0,
        unit="targets",
        limits={"limit": limit},
        margin=margin,
    )


def test_junit_names_repeated_metrics_apart():
    # min_targets and max_targets are both "targets": a dashboard keeping one of two alike
    # could show the pass and lose the deviation
    low = _targets("min_targets", Status.PASS, ">= 1", 4.0)
    high = _targets("max_targets", Status.MAJOR, "<= 4", -1.0)
    root = ET.fromstring(render(_result(low, high), "junit").encode())
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert names == [("plan", "targets (max_targets)"), ("plan", "targets (min_targets)")]
    same = replace(low, message="again")
    root = ET.fromstring(render(_result(low, same), "junit").encode())
    assert [c.get("name") for c in root.iter("testcase")] == [
        "targets (min_targets) #1",
        "targets (min_targets) #2",
    ]


@pytest.mark.parametrize(("case", "protocol"), [("bone_1fx", None), ("spine_prior", "boss")])
def test_junit_test_cases_of_sample_cases_are_unique(case, protocol):
    result = checked(case, protocol)
    root = ET.fromstring(render(result, "junit").encode())
    keys = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert len(keys) == len(set(keys)) == len(result.findings)


def test_prior_eqd2_panels_show_each_course_and_their_lq_sum():
    # the prior course is mapped and judged (cumulative EQD2 findings): the report draws its
    # panels, each the linear-quadratic EQD2 of its own course at the context's alpha/beta
    result = checked("spine_prior_exceeds", "boss")
    assert any(f.rule == "cumulative_eqd2" for f in result.findings)
    ctx = result.context
    ab = ctx.prior.alpha_beta_gy
    assert ab == 2.0
    view = report_view(result)
    assert view.prior is not None and view.prior.alpha_beta_gy == ab
    prior_plane, current_plane, cumulative_plane = view.prior.planes[0]
    assert [p.quantity for p in view.prior.planes[0]] == [
        "prior EQD2",
        "current EQD2",
        "cumulative EQD2",
    ]
    k = int(np.flatnonzero(ctx.dose.z_mm == current_plane.position_mm)[0])
    now = ctx.dose.dose_gy[k]  # 3 fractions
    (mapped,) = ctx.prior.priors
    before = mapped.dose_gy[k]  # 3 fractions
    now_eqd2 = now * (now / 3 + ab) / (2 + ab)
    before_eqd2 = before * (before / 3 + ab) / (2 + ab)
    np.testing.assert_allclose(current_plane.values, now_eqd2, rtol=1e-12)
    np.testing.assert_allclose(prior_plane.values, before_eqd2, rtol=1e-12)
    np.testing.assert_allclose(cumulative_plane.values, now_eqd2 + before_eqd2, rtol=1e-12)
    # the prior course was 24 Gy in 3 fractions: 24 (8 + 2) / (2 + 2) = 60 Gy EQD2 in its field
    assert np.nanmax(prior_plane.values) == pytest.approx(60.0, abs=1e-6)
    html = render(result, "html")
    assert "<h2>Prior radiation: cumulative EQD2</h2>" in html
    assert "panels are not drawn" not in html


def test_text_margins_of_whole_counts_have_no_decimals():
    text = render(checked("spine_3fx_overrun", None), "text")
    (span,) = [line for line in text.splitlines() if " span " in line]
    assert span.split()[-2:] == ["-3", "[verified]"]  # 24 days against <= 21 days, not -3.00
    assert format_margin(2.5, "days", with_unit=False) == "+2.50"
    assert format_margin(3.0, "targets") == "+3 targets"
