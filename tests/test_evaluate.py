"""Judging limits on exact DVHs: boundaries, bands, critical volumes, EQD2 conversion."""

from __future__ import annotations

import pytest

from rtqa.dvh import Dvh
from rtqa.model import Status
from rtqa.protocol.bands import bands_from_texts
from rtqa.protocol.judging import eqd2_limit, judge_limit
from rtqa.protocol.metrics import parse_metric
from rtqa.protocol.model import Confidence, Limit, Source
from rtqa.radiobiology import eqd2


def limit(metric: str, **bands) -> Limit:
    return Limit(
        parse_metric(metric),
        bands_from_texts(**bands),
        Source("TG", table="III"),
        Confidence.SECONDARY,
    )


def uniform(dose_gy: float, volume_cc: float = 10.0) -> Dvh:
    return Dvh.from_samples([dose_gy], [volume_cc])


def judge(lim, dvh, **kw):
    return judge_limit(lim, dvh, group="organ", roi="Cord", match="exact", case_id="C", **kw)


@pytest.mark.parametrize(
    ("dose", "status", "margin"),
    [(21.9, Status.PASS, 0.0), (21.9000001, Status.MAJOR, -1e-7), (21.8999, Status.PASS, 1e-4)],
)
def test_lone_limit_inclusive_unrounded(dose, status, margin):
    f = judge(limit("Max[Gy]", limit="<= 21.9"), uniform(dose))
    assert f.status is status and f.value == dose
    assert f.margin == pytest.approx(margin, abs=1e-12)
    assert f.limits == {"limit": "<= 21.9"} and f.source == "TG, Table III"
    assert f.confidence == "secondary" and f.roi == "Cord" and f.match == "exact"


@pytest.mark.parametrize(
    ("v100", "status"),
    [(95.0, Status.PASS), (94.99, Status.MINOR), (90.0, Status.MINOR), (89.99, Status.MAJOR)],
)
def test_bands_on_coverage(v100, status):
    # v100 % of a 100 cc target at 31 Gy, the rest at 29 Gy; Rx 30 Gy
    dvh = Dvh.from_samples([31.0, 29.0], [v100, 100.0 - v100])
    f = judge(limit("V100%[%]", per_protocol=">= 95", acceptable=">= 90"), dvh, rx_gy=30.0)
    assert f.status is status and f.value == pytest.approx(v100, rel=1e-12)
    assert f.limits == {"per_protocol": ">= 95", "acceptable": ">= 90"}


def test_relative_metric_without_rx_is_not_evaluable():
    f = judge(limit("V100%[%]", per_protocol=">= 95"), uniform(30.0), rx_gy=None)
    assert f.status is Status.NOT_EVALUABLE and "prescription" in f.message


def test_critical_volume_organ_smaller_than_spared_volume_is_major():
    lungs = Dvh.from_samples([5.0, 20.0], [900.0, 100.0])  # 1000 cc organ
    cv = judge(limit("CV7Gy[cc]", limit=">= 1500"), lungs)
    assert cv.status is Status.MAJOR and cv.value == pytest.approx(900.0)
    assert "smaller than the 1500 cc" in cv.message
    dc = judge(limit("DC1500cc[Gy]", limit="<= 7"), lungs)
    assert dc.status is Status.MAJOR and "smaller" in dc.message
    ok = judge(limit("CV7Gy[cc]", limit=">= 900"), lungs)
    assert ok.status is Status.PASS and ok.margin == pytest.approx(0.0)


def test_undefined_metric_is_not_evaluable_never_a_number():
    f = judge(limit("D5cc[Gy]", limit="<= 10"), uniform(3.0, volume_cc=3.0))
    assert f.status is Status.NOT_EVALUABLE and f.value is None


def test_unknown_volume_is_reported():
    dvh = Dvh.from_samples([5.0], [8.0], unknown_volume_cc=2.0)
    f = judge(limit("D0.03cc[Gy]", limit="<= 21.9"), dvh)
    assert "2 cc lies outside the dose grid" in f.message


def test_eqd2_limit_conversion_closed_form():
    lim = limit("D0.03cc[Gy]", per_protocol="<= 21.9", acceptable="<= 24")
    elim, words = eqd2_limit(lim, 3, 2.0)
    want = 21.9 * (21.9 / 3 + 2.0) / 4.0
    assert elim.bands.per_protocol.limit == pytest.approx(want)
    assert elim.bands.acceptable.limit == pytest.approx(float(eqd2(24.0, 3, 2.0)))
    assert "EQD2" in words and "alpha/beta 2" in words
    vlim, _ = eqd2_limit(limit("CV12.5Gy[cc]", limit=">= 1500"), 5, 3.0)
    assert vlim.metric.value == pytest.approx(12.5 * (2.5 + 3) / 5)
    assert vlim.bands.per_protocol.limit == 1500


@pytest.mark.parametrize(
    ("metric", "dose", "status", "ending"),
    [
        # a pass over part of the organ says nothing of the whole
        ("D0.03cc[Gy]", 10.0, Status.NOT_EVALUABLE, "on the judged contour, but plan 'B' is"),
        # a dose to 0.03 cc only grows with the rest: the deviation stands (the judgement wrote
        # no message of its own: the reason alone, with no separator before it)
        ("D0.03cc[Gy]", 30.0, Status.MAJOR, "plan 'B' is"),
        # a mean or a share of the organ may fall with the rest
        ("Mean[Gy]", 30.0, Status.NOT_EVALUABLE, "could lie on either side of the limit"),
        ("D50%[Gy]", 30.0, Status.NOT_EVALUABLE, "could lie on either side of the limit"),
    ],
)
def test_a_limit_judged_on_part_of_an_organ(metric, dose, status, ending):
    from rtqa.protocol.organ_extent import unjudged_part

    lim = limit(metric, limit="<= 21.9")
    f = unjudged_part(judge(lim, uniform(dose)), lim, "plan 'B' is")
    assert f.status is status and f.value == dose
    assert f.message.endswith(ending) and not f.message.startswith(";")
