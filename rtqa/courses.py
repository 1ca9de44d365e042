"""The one rule that groups cases into courses and tells a course from a prior course.

A **course** is one patient's cases whose deliveries start within the protocol's completion window
of the first of them (multi-lesion SBRT is often one plan per lesion, delivered in the same weeks).
The patient's latest course is the one judged; every case of that patient whose delivery began
before it is a **prior** course. Delivery dates come from RT Beams Treatment Records, else from the
plan date; a case with neither is put in the judged course, and the reason says so.

``rtqa info``, ``rtqa check`` (and so ``rtqa batch``) and the prior-radiation analysis all call
:func:`group_courses`; no other code decides course versus prior.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from rtqa.errors import UsageError
from rtqa.model import Case, Course


@dataclass(frozen=True)
class Delivery:
    """When a case was (or is planned to be) delivered, and from what that is known."""

    first: datetime | None
    last: datetime | None
    source: str  # "treatment records", "plan date", "no dates"


def delivery(case: Case) -> Delivery:
    """The delivery span of one case: records first, else the plan date (RTPlanDate/Time)."""
    times = sorted(r.delivered_at for r in case.records if r.delivered_at is not None)
    if times:
        return Delivery(times[0], times[-1], "treatment records")
    if case.plan is not None and case.plan.plan_datetime is not None:
        return Delivery(case.plan.plan_datetime, case.plan.plan_datetime, "plan date")
    return Delivery(None, None, "no dates")


def group_courses(
    cases: list[Case],
    window_days: int = 21,
    *,
    current_label: str | None = None,
    separate: bool = False,
) -> list[Course]:
    """Group cases into the courses to judge, each with its prior courses.

    ``window_days``: the protocol's completion window (days from the first delivery).
    ``current_label``: the plan label (or case id) of a case to take as current, overriding dates.
    ``separate``: judge each plan of the current course on its own (priors stay as found).
    Cases without a plan (structure set and dose only) form courses of their own.
    """
    by_patient: dict[str, list[Case]] = defaultdict(list)
    planless = [c for c in cases if c.plan is None]
    for case in (c for c in cases if c.plan is not None):
        by_patient[case.patient_id or f"(no patient id: {case.case_id})"].append(case)

    if current_label is not None and not any(current_label in (c.label, c.case_id) for c in cases):
        labels = ", ".join(sorted({c.label for c in cases})) or "none"
        raise UsageError(f"--current {current_label!r} names no plan found (plans: {labels})")

    courses: list[Course] = [
        Course(cases=(c,), reason=f"'{c.case_id}' has no plan: judged on its own") for c in planless
    ]
    for patient in sorted(by_patient):
        courses.extend(_patient_courses(by_patient[patient], window_days, current_label, separate))
    return courses


def _patient_courses(
    cases: list[Case], window_days: int, current_label: str | None, separate: bool
) -> list[Course]:
    spans = {c.case_id: delivery(c) for c in cases}
    dated = sorted(
        (c for c in cases if spans[c.case_id].first is not None),
        key=lambda c: (spans[c.case_id].first, c.case_id),
    )
    undated = sorted((c for c in cases if spans[c.case_id].first is None), key=lambda c: c.case_id)

    # Clusters of dated cases: a case joins the cluster when it starts within the window of the
    # cluster's first delivery.
    clusters: list[list[Case]] = []
    for case in dated:
        start = spans[case.case_id].first
        if clusters and (start - spans[clusters[-1][0].case_id].first).days <= window_days:
            clusters[-1].append(case)
        else:
            clusters.append([case])

    if current_label is not None and any(current_label in (c.label, c.case_id) for c in cases):
        chosen = next(c for c in cases if current_label in (c.label, c.case_id))
        current = next((cl for cl in clusters if chosen in cl), [chosen])
        why = f"plan '{chosen.label}' taken as current by --current"
    elif clusters:
        current = clusters[-1]
        why = _why_current(current, spans, window_days)
    else:
        current = []
        why = ""
    current = current + [c for c in undated if c not in current]
    if undated:
        why += (
            ("; " if why else "")
            + "no delivery dates for "
            + ", ".join(f"'{c.label}'" for c in undated)
            + " (records and plan date absent): taken as current"
        )

    start = min((spans[c.case_id].first for c in current if spans[c.case_id].first), default=None)
    priors = tuple(
        c
        for c in dated
        if c not in current and start is not None and spans[c.case_id].first < start
    )
    if priors:
        why += "; prior: " + ", ".join(
            f"'{c.label}' ({spans[c.case_id].source} from "
            f"{spans[c.case_id].first:%Y-%m-%d}, before this course began {start:%Y-%m-%d})"
            for c in priors
        )
    later = [c for c in dated if c not in current and c not in priors]
    if later:
        why += "; not judged (delivered after the chosen course): " + ", ".join(
            f"'{c.label}'" for c in later
        )

    if separate and len(current) > 1:
        return [
            Course(cases=(c,), priors=priors, reason=why + f"; --separate: '{c.label}' alone")
            for c in current
        ]
    return [Course(cases=tuple(current), priors=priors, reason=why)]


def _why_current(current: list[Case], spans: dict[str, Delivery], window_days: int) -> str:
    first = spans[current[0].case_id]
    if len(current) == 1:
        return (
            f"plan '{current[0].label}' is the latest course ({first.source} from "
            f"{first.first:%Y-%m-%d})"
        )
    labels = ", ".join(f"'{c.label}'" for c in current)
    return (
        f"plans {labels} start within {window_days} days of {first.first:%Y-%m-%d} "
        "and form one course"
    )
