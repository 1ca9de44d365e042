"""Metric grammar: parse every form and evaluate on a Dvh with a closed-form dose-volume curve.

The DVH: 4000 samples of 0.01 cc centred on 40 - (i + 0.5) * 0.01 Gy, each spread uniformly over
its 0.01 Gy bin, i.e. exactly the continuous cumulative curve D(v) = 40 - v Gy over a 40 cc
structure (0 to 40 Gy), plus 10 cc outside the dose grid in the % examples.
"""

import numpy as np
import pytest

from rtqa.dvh import Dvh
from rtqa.protocol.metrics import (
    MetricKind,
    MetricNotEvaluable,
    MetricSyntaxError,
    evaluate,
    parse_metric,
)

N, STEP = 4000, 0.01


def linear_dvh(unknown_cc: float = 0.0) -> Dvh:
    i = np.arange(N)
    return Dvh.from_samples(
        40.0 - (i + 0.5) * STEP, np.full(N, STEP), unknown_cc, spreads_gy=np.full(N, STEP)
    )


@pytest.fixture(scope="module")
def dvh():
    return linear_dvh()


@pytest.mark.parametrize(
    ("text", "rx", "expected"),
    [
        ("D95%[Gy]", None, 40.0 - 0.95 * 40.0),  # hottest 38 cc: 2 Gy
        ("D0.03cc[Gy]", None, 39.97),
        ("D2cc[Gy]", None, 38.0),
        ("D2cc[cGy]", None, 3800.0),
        ("D95%[%]", 30.0, 2.0 / 30.0 * 100.0),
        ("V20Gy[%]", None, 50.0),  # 20 cc of 40 receive >= 20 Gy
        ("V20Gy[cc]", None, 20.0),
        ("V2000cGy[cc]", None, 20.0),
        ("V100%[%]", 30.0, 25.0),  # >= 30 Gy: 10 cc of 40
        ("V50%[cc]", 30.0, 25.0),  # >= 15 Gy: 25 cc
        ("CV7Gy[cc]", None, 7.0),  # < 7 Gy: the coldest 7 cc
        ("CV7Gy[%]", None, 17.5),
        ("DC10cc[Gy]", None, 10.0),  # coldest 10 cc: at most 10 Gy
        ("DC25%[Gy]", None, 10.0),
        ("Mean[Gy]", None, 20.0),
        ("Mean[%]", 40.0, 50.0),
        ("Max[Gy]", None, 40.0),  # top of the hottest sample's spread
        ("Min[Gy]", None, 0.0),
        ("Median[Gy]", None, 20.0),
        ("Dmax[Gy]", None, 40.0),
    ],
)
def test_evaluate_every_form(dvh, text, rx, expected):
    req = parse_metric(text)
    assert evaluate(req, dvh, rx_gy=rx) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_percent_metrics_use_the_whole_volume_including_outside_the_grid():
    dvh = linear_dvh(unknown_cc=10.0)  # 50 cc in all
    assert evaluate(parse_metric("V20Gy[%]"), dvh) == pytest.approx(40.0)
    assert evaluate(parse_metric("V20Gy[cc]"), dvh) == pytest.approx(20.0)
    assert evaluate(parse_metric("CV7Gy[%]"), dvh) == pytest.approx(7.0 / 50.0 * 100.0)
    # D50% of 50 cc = hottest 25 cc -> 15 Gy
    assert evaluate(parse_metric("D50%[Gy]"), dvh) == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("text", "kind", "value", "qunit", "unit"),
    [
        ("D95%[Gy]", MetricKind.DOSE_AT_VOLUME, 95.0, "%", "Gy"),
        ("D0.03cc[Gy]", MetricKind.DOSE_AT_VOLUME, 0.03, "cc", "Gy"),
        ("V20Gy[%]", MetricKind.VOLUME_AT_DOSE, 20.0, "Gy", "%"),
        ("CV7Gy[cc]", MetricKind.COLD_VOLUME_AT_DOSE, 7.0, "Gy", "cc"),
        ("DC1500cc[Gy]", MetricKind.COLD_DOSE_AT_VOLUME, 1500.0, "cc", "Gy"),
        ("Mean[Gy]", MetricKind.MEAN, None, None, "Gy"),
        ("CI", MetricKind.QUALITY, None, None, ""),
        ("D2cm[%]", MetricKind.QUALITY, None, None, "%"),
    ],
)
def test_parse_fields(text, kind, value, qunit, unit):
    req = parse_metric(text)
    assert (req.kind, req.value, req.query_unit, req.unit) == (kind, value, qunit, unit)


def test_needs_rx():
    assert parse_metric("V100%[%]").needs_rx
    assert parse_metric("D95%[%]").needs_rx
    assert parse_metric("Max[%]").needs_rx
    assert not parse_metric("D95%[Gy]").needs_rx
    assert not parse_metric("V20Gy[%]").needs_rx


def test_alias_is_canonicalised():
    assert parse_metric("Dmean[Gy]").canonical == "Mean[Gy]"


@pytest.mark.parametrize("name", ["CI", "CI_Paddick", "GI", "R50%", "D2cm[%]", "HI"])
def test_quality_metrics_read_from_plan_quality(name):
    quality = {"CI": 1.1, "CI_Paddick": 0.8, "GI": 3.2, "R50%": 4.1, "D2cm[%]": 48.0, "HI": 1.3}
    assert evaluate(parse_metric(name), None, quality=quality) == quality[name]


def test_quality_missing_is_not_evaluable():
    with pytest.raises(MetricNotEvaluable, match="no plan-quality value R50%"):
        evaluate(parse_metric("R50%"), None, quality={"CI": 1.0})


def test_relative_metric_without_rx_is_not_evaluable(dvh):
    with pytest.raises(MetricNotEvaluable, match="relative to the prescription"):
        evaluate(parse_metric("V100%[%]"), dvh)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("D95%", "the result unit in brackets is missing (e.g. 'D95%[Gy]')"),
        ("D95Gy[Gy]", "D takes a volume (cc or %), not Gy"),
        ("V20cc[%]", "V takes a dose (Gy, cGy or %), not cc"),
        ("V20Gy[Gy]", "V returns a volume (cc or %), not Gy"),
        ("D95%[cc]", "D returns a dose (Gy, cGy or %), not cc"),
        ("D101%[Gy]", "a percent of the volume cannot exceed 100"),
    ],
)
def test_bad_strings(text, reason):
    with pytest.raises(MetricSyntaxError) as exc:
        parse_metric(text)
    assert str(exc.value) == f"unknown metric {text!r}: {reason}"
    assert exc.value.text == text
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("text", ["Dmax", "Foo[Gy]", "D 95%[Gy]", "", "D-1cc[Gy]", "Mean[cc]"])
def test_other_bad_strings_are_refused(text):
    with pytest.raises(MetricSyntaxError, match="unknown metric"):
        parse_metric(text)
