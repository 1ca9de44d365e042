"""The minimum interval since a prior course, in calendar months: at least N months when the
prior course's last treatment date plus N calendar months (clamped to the month's last day) is
on or before the current course's first treatment date; boundary days on both sides."""

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from test_prior_rules import by_rule, uniform_setup

from rtqa.model import Status
from rtqa.protocol.loader import load_protocol
from rtqa.protocol.prior_rules import add_months, calendar_months, evaluate_prior


@pytest.fixture(scope="module")
def boss():
    protocol = load_protocol("boss")
    assert protocol.prior_radiation.min_interval_months.value == 5.0
    return protocol


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2023, 9, 30), 5, date(2024, 2, 29)),  # leap year: clamped to 29 Feb
        (date(2022, 9, 30), 5, date(2023, 2, 28)),  # clamped to 28 Feb
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2023, 8, 31), 6, date(2024, 2, 29)),
        (date(2023, 10, 31), 1, date(2023, 11, 30)),
        (date(2023, 11, 15), 2, date(2024, 1, 15)),  # across the year end
        (date(2023, 3, 10), 0, date(2023, 3, 10)),
        (date(2023, 3, 10), 25, date(2025, 4, 10)),
    ],
)
def test_add_months_clamps_to_the_last_day_of_the_month(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("end", "start", "expected"),
    [
        (date(2023, 9, 30), date(2024, 2, 29), (5, 0, 30)),  # 29 Feb -> 30 Mar: 30 days
        (date(2023, 9, 30), date(2024, 2, 28), (4, 29, 30)),  # from 30 Jan
        (date(2023, 9, 30), date(2024, 3, 1), (5, 1, 30)),
        (date(2023, 1, 2), date(2023, 3, 2), (2, 0, 31)),
        (date(2023, 1, 2), date(2024, 2, 5), (13, 3, 29)),  # 2 Feb -> 2 Mar 2024: 29 days
        (date(2023, 3, 10), date(2024, 3, 4), (11, 23, 29)),
        (date(2023, 5, 5), date(2023, 5, 5), (0, 0, 31)),
    ],
)
def test_calendar_months_exact(end, start, expected):
    assert calendar_months(end, start) == expected


def test_calendar_months_refuses_a_start_before_the_end():
    with pytest.raises(ValueError, match="2023-05-04 is before 2023-05-05"):
        calendar_months(date(2023, 5, 5), date(2023, 5, 4))


def dated(prior_end: datetime, current_start: datetime):
    """uniform_setup (BOSS, cord) with the prior course's last record on ``prior_end`` and the
    current course's first record on ``current_start`` (one day per fraction after it)."""
    inp = uniform_setup()
    (now,) = inp.course.cases
    (before,) = inp.course.priors
    before.records = (
        replace(before.records[0], delivered_at=prior_end.replace(day=1, hour=9)),
        *(replace(r, delivered_at=prior_end) for r in before.records[1:]),
    )
    now.records = tuple(
        replace(r, delivered_at=current_start + timedelta(days=i))
        for i, r in enumerate(now.records)
    )
    return inp


def interval(boss, prior_end, current_start):
    (finding,) = by_rule(evaluate_prior(dated(prior_end, current_start), boss)[0], "min_interval")
    return finding


def test_five_calendar_months_to_the_day_passes(boss):
    """30 Sep 2023 + 5 months = 29 Feb 2024 (clamped): 152 days, 4.99 average months (was a
    MAJOR by days / 30.44); the end's afternoon and the start's morning do not matter."""
    f = interval(boss, datetime(2023, 9, 30, 17, 0), datetime(2024, 2, 29, 8, 0))
    assert f.status is Status.PASS
    assert f.value == 5.0 and f.margin == 0.0
    assert f.limits == {"limit": ">= 5"}
    assert f.message == (
        "prior course 'BEFORE' ended on 2023-09-30, 152 days (5.0 calendar months) before the "
        "current course began on 2024-02-29"
    )


def test_one_day_short_of_five_calendar_months_is_major(boss):
    f = interval(boss, datetime(2023, 9, 30, 17, 0), datetime(2024, 2, 28, 8, 0))
    assert f.status is Status.MAJOR
    assert f.value == pytest.approx(4 + 29 / 30, abs=1e-12)  # 30 Jan + 29 of 30 days
    assert f.margin == pytest.approx(-1 / 30, abs=1e-12)
    # shown truncated: 4.97 months is 4.9, never 5.0 next to "less than the 5 months"
    assert f.message == (
        "prior course 'BEFORE' ended on 2023-09-30, 151 days (4.9 calendar months) before the "
        "current course began on 2024-02-28, less than the 5 months required; 5 months after "
        "2023-09-30 is 2024-02-29"
    )


def test_one_day_over_five_calendar_months_passes(boss):
    f = interval(boss, datetime(2023, 9, 30), datetime(2024, 3, 1))
    assert f.status is Status.PASS
    assert f.value == pytest.approx(5 + 1 / 30, abs=1e-12)


@pytest.mark.parametrize(
    ("start", "status"),
    [
        (datetime(2023, 2, 27, 23, 0), Status.MAJOR),  # a day short of 28 Feb
        (datetime(2023, 2, 28, 0, 0), Status.PASS),  # 30 Sep 2022 + 5 = 28 Feb 2023
    ],
)
def test_five_months_from_30_september_in_a_common_year(boss, start, status):
    f = interval(boss, datetime(2022, 9, 30, 12, 0), start)
    assert f.status is status
    assert (f.value >= 5.0) is (status is Status.PASS)


@pytest.mark.parametrize(
    ("start", "status", "value"),
    [
        (datetime(2023, 12, 14), Status.MAJOR, 4 + 29 / 30),  # 15 Nov + 29 of 30 days
        (datetime(2023, 12, 15), Status.PASS, 5.0),
    ],
)
def test_mid_month_boundary(boss, start, status, value):
    f = interval(boss, datetime(2023, 7, 15, 10, 0), start)
    assert f.status is status
    assert f.value == pytest.approx(value, abs=1e-12)
