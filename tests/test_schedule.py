"""Delivery schedule from treatment records: fractions, span in calendar days, intervals."""

from datetime import datetime

from rtqa.model import TreatmentRecord
from rtqa.protocol.schedule import schedule


def _rec(plan: str, fx: int | None, when: datetime | None) -> TreatmentRecord:
    return TreatmentRecord(
        path=f"{plan}.{fx}.dcm",
        sop_instance_uid=f"{plan}.{fx}.{when}",
        referenced_plan_uid=plan,
        fraction_number=fx,
        delivered_at=when,
    )


def test_span_counts_calendar_days_not_hours():
    s = schedule(
        [
            _rec("A", 1, datetime(2026, 3, 2, 17, 0)),
            _rec("A", 2, datetime(2026, 3, 4, 8, 0)),
            _rec("A", 3, datetime(2026, 3, 23, 8, 0)),
        ]
    )
    assert s.delivered == 3
    assert s.span_days == 21
    assert s.min_interval_h == 39.0


def test_interrupted_fraction_counts_once_at_its_first_session():
    s = schedule(
        [
            _rec("A", 1, datetime(2026, 3, 2, 9, 0)),
            _rec("A", 1, datetime(2026, 3, 2, 11, 30)),  # completion of an interrupted fraction
            _rec("A", 2, datetime(2026, 3, 4, 9, 0)),
        ]
    )
    assert s.delivered == 2
    assert s.partial_fractions == (1,)
    assert s.min_interval_h == 48.0


def test_two_plans_in_one_session_are_not_an_interval():
    s = schedule(
        [
            _rec("A", 1, datetime(2026, 3, 2, 9, 0)),
            _rec("B", 1, datetime(2026, 3, 2, 9, 40)),
            _rec("A", 2, datetime(2026, 3, 4, 9, 0)),
            _rec("B", 2, datetime(2026, 3, 4, 9, 40)),
        ]
    )
    assert s.delivered == 4
    assert s.span_days == 2
    assert s.min_interval_h == 48.0


def test_undated_records_are_counted_not_guessed():
    s = schedule([_rec("A", 1, None), _rec("A", 2, datetime(2026, 3, 4, 9, 0))])
    assert s.undated_records == 1
    assert s.delivered == 1
    assert s.span_days == 0
    assert s.min_interval_h is None
    assert schedule([]).span_days is None


def test_fractions_missing_below_the_highest_recorded_one_are_listed_per_plan():
    s = schedule(
        [
            _rec("A", 2, datetime(2026, 3, 4, 9, 0)),
            _rec("A", 4, None),  # undated, yet recorded
            _rec("B", 1, datetime(2026, 3, 4, 9, 40)),
        ]
    )
    assert s.missing_fractions == (("A", 1), ("A", 3))
    assert s.highest_fraction == {"A": 4, "B": 1}
    assert schedule([_rec("A", 1, None), _rec("A", 2, None)]).missing_fractions == ()
