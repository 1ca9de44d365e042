"""The course-versus-prior rule: grouping by patient and delivery window."""

from datetime import datetime, timedelta

import pytest

from rtqa.courses import delivery, group_courses
from rtqa.errors import UsageError
from rtqa.model import Case, Plan, TreatmentRecord


def _case(label: str, patient: str, *days: int, plan_day: int | None = None) -> Case:
    start = datetime(2026, 3, 2, 9, 0)
    plan = Plan(
        path=f"{label}.dcm",
        sop_instance_uid=f"1.2.{abs(hash(label)) % 10**8}",
        label=label,
        patient_id=patient,
        plan_datetime=start + timedelta(days=plan_day) if plan_day is not None else None,
    )
    records = tuple(
        TreatmentRecord(
            path=f"{label}.fx{i}.dcm",
            sop_instance_uid=f"1.3.{i}",
            referenced_plan_uid=plan.sop_instance_uid,
            fraction_number=i + 1,
            delivered_at=start + timedelta(days=d),
        )
        for i, d in enumerate(days)
    )
    return Case(case_id=label, plan=plan, records=records)


def test_delivery_prefers_records_over_plan_date():
    case = _case("A", "P1", 3, 5, 7, plan_day=0)
    span = delivery(case)
    assert span.source == "treatment records"
    assert span.first == datetime(2026, 3, 5, 9, 0)
    assert span.last == datetime(2026, 3, 9, 9, 0)
    assert delivery(_case("B", "P1", plan_day=4)).source == "plan date"
    assert delivery(_case("C", "P1")).source == "no dates"


def test_two_lesion_plans_in_one_window_form_one_course():
    a = _case("LUNG_L", "P1", 0, 2, 4)
    b = _case("LUNG_R", "P1", 7, 9, 11)
    (course,) = group_courses([b, a], window_days=21)
    assert [c.label for c in course.cases] == ["LUNG_L", "LUNG_R"]
    assert course.priors == ()
    assert "start within 21 days" in course.reason


def test_case_exactly_at_window_joins_and_one_day_later_is_a_new_course():
    first = _case("A", "P1", 0)
    at_window = _case("B", "P1", 21)
    (course,) = group_courses([first, at_window], window_days=21)
    assert len(course.cases) == 2
    late = _case("C", "P1", 22)
    (course,) = group_courses([first, late], window_days=21)
    assert [c.label for c in course.cases] == ["C"]
    assert [c.label for c in course.priors] == ["A"]


def test_earlier_course_is_prior_with_reason():
    prior = _case("T9_2025", "P1", -365, -364, -363)
    current = _case("T10", "P1", 0, 2, 4)
    (course,) = group_courses([current, prior])
    assert [c.label for c in course.cases] == ["T10"]
    assert [c.label for c in course.priors] == ["T9_2025"]
    assert "prior: 'T9_2025' (treatment records from 2025-03-02" in course.reason


def test_patients_are_never_mixed():
    courses = group_courses([_case("A", "P1", 0), _case("B", "P2", 0)])
    assert sorted(c.patient_id for c in courses) == ["P1", "P2"]
    assert all(c.priors == () for c in courses)


def test_current_override_and_unknown_label():
    prior = _case("OLD", "P1", -100)
    current = _case("NEW", "P1", 0)
    (course,) = group_courses([prior, current], current_label="OLD")
    assert [c.label for c in course.cases] == ["OLD"]
    assert course.priors == ()
    assert "not judged" in course.reason and "'NEW'" in course.reason
    with pytest.raises(UsageError, match="names no plan found"):
        group_courses([prior, current], current_label="MISSING")


def test_separate_judges_each_plan_alone():
    a = _case("A", "P1", 0)
    b = _case("B", "P1", 3)
    courses = group_courses([a, b], separate=True)
    assert [[c.label for c in k.cases] for k in courses] == [["A"], ["B"]]


def test_undated_case_joins_current_with_reason():
    dated = _case("A", "P1", 0)
    undated = _case("U", "P1")
    (course,) = group_courses([dated, undated])
    assert [c.label for c in course.cases] == ["A", "U"]
    assert "no delivery dates for 'U'" in course.reason
