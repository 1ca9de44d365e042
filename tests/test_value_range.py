"""``Finding.value_range``: a figure known only within bounds carries both ends, in every report.

Distribution used throughout: 10 cc at 10 Gy known, 1 cc beyond the dose grid whose dose lies
anywhere from 0 Gy to a 15 Gy bound. Closed form: Max 10 or 15 Gy, Mean 100 / 11 = 9.0909 or
(100 + 15) / 11 = 10.4545 Gy, D0.5cc 10 or 15 Gy.
"""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from test_evaluate import limit

from rtqa.dvh import Dvh
from rtqa.model import Finding, Status
from rtqa.protocol.judging import judge_limit, value_range
from rtqa.protocol.organ_extent import unjudged_part
from rtqa.report.common import format_bounded, format_value
from rtqa.report.csv_out import render_csv
from rtqa.report.jsonfmt import load_schema, render_json
from rtqa.report.text import render_text

MEAN_LOW, MEAN_HIGH = 100 / 11, 115 / 11


def partly_beyond(bound_gy: float | None = 15.0) -> Dvh:
    dvh = Dvh.from_samples([10.0], [10.0], unknown_volume_cc=1.0)
    dvh.beyond_grid_max_gy = bound_gy
    return dvh


def judge(metric: str, condition: str, dvh: Dvh) -> Finding:
    return judge_limit(
        limit(metric, limit=condition), dvh, group="organ", roi="Cord", match="exact", case_id="C"
    )


def test_value_range_of_ends():
    assert value_range([3.0, 3.0]) is None  # known: the figure itself
    assert value_range([5.0, 2.0]) == (2.0, 5.0)
    assert value_range([2.0, None]) == (None, None)
    assert value_range([2.0, 5.0], partial=True, grows=True) == (2.0, None)
    assert value_range([2.0, 5.0], partial=True, grows=False) == (None, None)
    assert value_range([float("nan")], partial=True, grows=True) == (None, None)


def test_a_pass_at_one_end_only_keeps_both_ends():
    f = judge("Max[Gy]", "<= 12", partly_beyond())
    assert f.status is Status.NOT_EVALUABLE and f.value is None
    assert f.value_range == (10.0, 15.0)


def test_a_verdict_at_both_ends_keeps_the_end_nearer_the_limit_and_the_range():
    f = judge("Mean[Gy]", "<= 12", partly_beyond())
    assert f.status is Status.PASS
    assert f.value == pytest.approx(MEAN_HIGH, rel=1e-12)
    assert f.value_range == pytest.approx((MEAN_LOW, MEAN_HIGH), rel=1e-12)
    deviation = judge("Mean[Gy]", "<= 8", partly_beyond())
    assert deviation.status is Status.MAJOR
    assert deviation.value == pytest.approx(MEAN_HIGH, rel=1e-12)  # farther beyond the limit
    assert deviation.value_range == pytest.approx((MEAN_LOW, MEAN_HIGH), rel=1e-12)


def test_the_figure_itself_has_no_range():
    f = judge("Max[Gy]", "<= 12", Dvh.from_samples([10.0], [10.0]))
    assert f.status is Status.PASS and f.value == 10.0 and f.value_range is None


def test_without_a_bound_the_known_part_is_a_lower_end_only_where_the_figure_can_only_grow():
    # no bound (an occupancy without a slab model): read on the 10 cc inside the grid
    mx = judge("Max[Gy]", "<= 12", partly_beyond(None))
    assert mx.value == 10.0 and mx.value_range == (10.0, None)
    mean = judge("Mean[Gy]", "<= 12", partly_beyond(None))
    assert mean.value == 10.0 and mean.value_range == (None, None)


def test_a_contour_missing_part_of_the_organ_leaves_the_upper_end_open():
    why = "plan 'B' contours 'Cord' up to 30 mm beyond"
    lim = limit("D0.5cc[Gy]", limit="<= 12")
    inside = judge("D0.5cc[Gy]", "<= 12", Dvh.from_samples([10.0], [10.0]))
    f = unjudged_part(inside, lim, why)
    assert f.status is Status.NOT_EVALUABLE and f.value == 10.0
    assert f.value_range == (10.0, None)
    # a bounded figure: the lower end carries over
    bounded = unjudged_part(judge("D0.5cc[Gy]", "<= 12", partly_beyond()), lim, why)
    assert bounded.value_range == (10.0, None)
    # a mean can move either way with the part missing
    mean_lim = limit("Mean[Gy]", limit="<= 12")
    mean = unjudged_part(judge("Mean[Gy]", "<= 12", partly_beyond()), mean_lim, why)
    assert mean.status is Status.NOT_EVALUABLE and mean.value_range == (None, None)


def test_a_dose_not_trusted_leaves_the_figure_unknown():
    from rtqa.protocol.dose_trust import TRUST_RULES, withhold_untrusted

    rule = next(r for r, groups in TRUST_RULES.items() if "organ" in groups)
    untrusted = Finding("integrity", rule, Status.NOT_EVALUABLE, "dose units unknown")
    organ = judge("Max[Gy]", "<= 12", Dvh.from_samples([10.0], [10.0]))
    out = withhold_untrusted([untrusted, organ])
    (judged,) = [f for f in out if f.group == "organ"]
    assert judged.status is Status.NOT_EVALUABLE and judged.value == 10.0
    assert judged.value_range == (None, None)


@pytest.mark.parametrize(
    ("value", "bounds", "text"),
    [
        (50.764, None, "50.76 Gy"),
        (70.12, (50.764, 70.12), "50.76-70.12 Gy"),
        (None, (50.764, 70.12), "50.76-70.12 Gy"),
        (11.31, (11.31, None), ">= 11.31 Gy"),
        (11.31, (None, 4.2), "<= 4.20 Gy"),
        (11.31, (None, None), "(11.31 Gy)"),
        (None, (None, None), ""),
        (20.0, (20.0, 20.0000001), "20.00 Gy"),
    ],
)
def test_format_bounded(value, bounds, text):
    assert format_bounded(value, bounds, "Gy") == text


def test_rounding_of_a_range_never_touches_the_limit():
    # 69.9999 rounds to 70.00, the limit itself: more decimals instead
    assert format_bounded(None, (60.0, 69.9999), "Gy", (70.0,)) == "60.00-69.9999 Gy"


def _result_with(finding: Finding):
    from test_report_common import make_result

    return make_result(findings=[finding])


def test_json_csv_and_text_carry_both_ends():
    f = judge("Max[Gy]", "<= 12", partly_beyond())
    result = _result_with(f)
    doc = json.loads(render_json(result))
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    (row,) = doc["findings"]
    assert row["value"] is None and row["value_range"] == {"low": 10.0, "high": 15.0}
    (cells,) = list(csv.DictReader(io.StringIO(render_csv(result))))
    assert (cells["value"], cells["value_low"], cells["value_high"]) == ("", "10.0", "15.0")
    assert "10.00-15.00 Gy" in render_text(result)
    assert format_value(f) == "10.00-15.00 Gy"
    # the figure itself: both CSV ends equal the value, JSON says null
    exact = judge("Max[Gy]", "<= 12", Dvh.from_samples([10.0], [10.0]))
    (cells,) = list(csv.DictReader(io.StringIO(render_csv(_result_with(exact)))))
    assert cells["value"] == cells["value_low"] == cells["value_high"] == "10.0"
    assert json.loads(render_json(_result_with(exact)))["findings"][0]["value_range"] is None
