"""Conditions and bands: inclusive as written, compared unrounded, at and around the limit."""

import math

import pytest

from rtqa.model import Status
from rtqa.protocol.bands import Bands, ConditionSyntaxError, bands_from_texts, parse_condition


def test_parse():
    c = parse_condition("<= 21.9")
    assert (c.op, c.limit, c.text, c.upper) == ("<=", 21.9, "<= 21.9", True)
    assert parse_condition(">=95").op == ">="


@pytest.mark.parametrize("text", ["21.9", "=< 21.9", "<= ", "<= abc", "== 3", "<= 1e999"])
def test_malformed(text):
    with pytest.raises(ConditionSyntaxError, match="malformed condition"):
        parse_condition(text)


def test_bare_number_refused():
    with pytest.raises(ConditionSyntaxError, match="expected a string"):
        parse_condition(21.9)


def test_lone_limit_at_over_under():
    b = bands_from_texts(limit="<= 21.9")
    assert b.judge(21.9).status is Status.PASS  # exactly at the limit: inclusive as written
    assert b.judge(math.nextafter(21.9, 30)).status is Status.MAJOR  # unrounded: just over
    assert b.judge(21.8999999).status is Status.PASS
    assert b.judge(21.9).margin == 0.0
    assert b.judge(20.9).margin == pytest.approx(1.0)


def test_strict_condition_excludes_the_limit():
    b = bands_from_texts(limit="< 1.2")
    assert b.judge(1.2).status is Status.MAJOR
    assert b.judge(math.nextafter(1.2, 0)).status is Status.PASS


def test_two_bands_upper():
    b = bands_from_texts(per_protocol="<= 14", acceptable="<= 16")
    assert b.judge(14.0).status is Status.PASS
    assert b.judge(14.000001).status is Status.MINOR
    assert b.judge(16.0).status is Status.MINOR
    assert b.judge(16.000001).status is Status.MAJOR
    j = b.judge(15.0)
    assert (j.band, j.margin) == ("acceptable", -1.0)


def test_two_bands_lower():
    b = bands_from_texts(per_protocol=">= 95", acceptable=">= 90")
    assert b.judge(95.0).status is Status.PASS
    assert b.judge(94.99999).status is Status.MINOR
    assert b.judge(90.0).status is Status.MINOR
    assert b.judge(89.99999).status is Status.MAJOR
    assert b.judge(97.0).margin == pytest.approx(2.0)


def test_nan_is_never_judged():
    with pytest.raises(ValueError, match="NaN"):
        bands_from_texts(limit="<= 1").judge(math.nan)


def test_inconsistent_bands_refused():
    with pytest.raises(ValueError, match="stricter"):
        bands_from_texts(per_protocol="<= 16", acceptable="<= 14")
    with pytest.raises(ValueError, match="opposite"):
        bands_from_texts(per_protocol="<= 16", acceptable=">= 14")
    with pytest.raises(ValueError, match="not both"):
        bands_from_texts(limit="<= 1", per_protocol="<= 1")


def test_written_form():
    assert Bands(parse_condition("<= 14")).written == {"limit": "<= 14"}
    b = bands_from_texts(per_protocol="<= 14", acceptable="<= 16")
    assert b.written == {"per_protocol": "<= 14", "acceptable": "<= 16"}
