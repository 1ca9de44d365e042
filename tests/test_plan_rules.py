"""Plan-level rules at their boundaries: fractions, window, interval, targets, grid, sites."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from rtqa.model import DoseGrid, FractionGroup, Plan, Status, TreatmentRecord
from rtqa.protocol import plan_rules
from rtqa.protocol.loader import load_protocol
from rtqa.protocol.model import Fractionation, PlanChecks, Source, SourcedValue
from rtqa.protocol.schedule import schedule

SRC = Source("Test protocol", table="1")


def sv(value, severity=Status.MAJOR) -> SourcedValue:
    return SourcedValue(value, SRC, None, severity=severity)


def records(days: list[float], plan_uid: str = "P1") -> list[TreatmentRecord]:
    t0 = datetime(2024, 3, 4, 9, 0)
    return [
        TreatmentRecord(f"RT{i}.dcm", f"1.{i}", plan_uid, i + 1, t0 + timedelta(days=d))
        for i, d in enumerate(days)
    ]


def plan_of(*counts: int | None) -> Plan:
    """A plan with one fraction group per count."""
    groups = tuple(FractionGroup(i + 1, n) for i, n in enumerate(counts))
    return Plan("RP.dcm", "1.1", "P", fraction_groups=groups)


@pytest.mark.parametrize(("n", "status"), [(3, Status.PASS), (4, Status.MAJOR), (5, Status.PASS)])
def test_fraction_count(n, status):
    fr = Fractionation(allowed_fractions=sv([1, 3, 5]))
    (f,) = plan_rules.fraction_count(fr, plan_of(n), "C")
    assert f.status is status and f.value == n and f.group == "plan"
    assert f.limits == {"limit": "in {1, 3, 5}"} and f.source == "Test protocol, Table 1"
    (none,) = plan_rules.fraction_count(fr, plan_of(None), "C")
    assert none.status is Status.NOT_EVALUABLE
    assert none.message == "the plan states no number of fractions (FractionGroupSequence)"


def test_fraction_groups_of_different_counts_leave_the_plans_count_unknown():
    """Groups of 3 and 5 fractions: the plan's dose sums both, no one count describes it (it
    was taken as 3); two groups of 3 are a plan of 3 fractions."""
    assert plan_of(3, 5).fractions_planned is None
    assert plan_of(3, None, 3).fractions_planned == 3
    fr = Fractionation(allowed_fractions=sv([1, 3, 5]))
    (f,) = plan_rules.fraction_count(fr, plan_of(3, 5), "C")
    assert f.status is Status.NOT_EVALUABLE
    assert f.message == "the plan's fraction groups state different numbers of fractions (3, 5)"


@pytest.mark.parametrize(
    ("last_day", "status", "margin"),
    [(20, Status.PASS, 1), (21, Status.PASS, 0), (22, Status.MAJOR, -1)],
)
def test_completion_window_boundaries(last_day, status, margin):
    fr = Fractionation(complete_within_days=sv(21))
    sched = schedule(records([0, 2, last_day]))
    (f,) = plan_rules.completion_window(fr, sched, {"P1": 3})
    assert f.status is status and f.value == last_day and f.margin == margin
    assert f.unit == "days"


def test_completion_window_unfinished_course_is_judged_on_earliest_completion():
    fr = Fractionation(complete_within_days=sv(21))
    # 2 of 5 fractions delivered on days 0 and 18: the 3 left end on day 21 at the earliest
    (f,) = plan_rules.completion_window(fr, schedule(records([0, 18])), {"P1": 5})
    assert f.status is Status.PASS and f.value == 21 and "not finished" in f.message
    (g,) = plan_rules.completion_window(fr, schedule(records([0, 19])), {"P1": 5})
    assert g.status is Status.MAJOR and g.value == 22 and "earliest possible" in g.message


def test_completion_window_without_records():
    fr = Fractionation(complete_within_days=sv(21))
    (f,) = plan_rules.completion_window(fr, schedule([]), {"P1": 3})
    assert f.status is Status.NOT_EVALUABLE and "no RT Beams Treatment Records" in f.message


def test_window_spans_all_plans_of_a_course():
    fr = Fractionation(complete_within_days=sv(21))
    sched = schedule(records([0, 2], "A") + records([20, 23], "B"))
    (f,) = plan_rules.completion_window(fr, sched, {"A": 2, "B": 2})
    assert f.value == 23 and f.status is Status.MAJOR


def test_a_fraction_without_a_record_leaves_the_span_unknown_unless_already_too_long():
    fr = Fractionation(complete_within_days=sv(21), min_interval_hours=sv(40))
    # fractions 2 and 3 of 3 on days 2 and 4: fraction 1 was delivered, when is unknown
    recs = records([0, 2, 4])[1:]
    (f,) = plan_rules.completion_window(fr, schedule(recs), {"P1": 3})
    assert f.status is Status.NOT_EVALUABLE and f.value == 2  # a lower bound, not 3 days
    assert f.message == (
        "2 fraction(s) delivered from 2024-03-06 to 2024-03-08: 2 days; fraction(s) 1 have no "
        "treatment record though later ones do: the course span is not known (at least 2 days)"
    )
    (g,) = plan_rules.min_interval(fr, schedule(recs))
    assert g.status is Status.NOT_EVALUABLE and g.value == pytest.approx(48.0)
    assert "the intervals next to them are unknown" in g.message
    # the dated fractions already span 23 days: too long whatever fraction 1's date
    (f,) = plan_rules.completion_window(fr, schedule(records([0, 2, 25])[1:]), {"P1": 3})
    assert f.status is Status.MAJOR and f.value == 23 and "the span is at least this" in f.message


def test_many_fractions_without_a_record_are_summarised():
    fr = Fractionation(complete_within_days=sv(21))
    recs = records([0, 2])
    recs[1] = TreatmentRecord("RT1.dcm", "1.1", "P1", 20, recs[1].delivered_at)  # fraction 20
    (f,) = plan_rules.completion_window(fr, schedule(recs), {"P1": 20})
    assert f.status is Status.NOT_EVALUABLE
    assert "fraction(s) 2, 3, 4, 5, 6, ... (18 in all) have no treatment record" in f.message


def test_an_undated_record_leaves_the_span_unknown():
    fr = Fractionation(complete_within_days=sv(21))
    recs = records([0, 2, 4])
    recs[0] = TreatmentRecord("RT0.dcm", "1.0", "P1", 1, None)  # a date that did not parse
    (f,) = plan_rules.completion_window(fr, schedule(recs), {"P1": 3})
    assert f.status is Status.NOT_EVALUABLE and f.value == 2
    assert "1 treatment record(s) carry no treatment date" in f.message


@pytest.mark.parametrize(
    ("hours", "status"), [(40.0, Status.PASS), (39.5, Status.INFO), (48.0, Status.PASS)]
)
def test_min_interval_with_file_severity(hours, status):
    fr = Fractionation(min_interval_hours=sv(40, Status.INFO))
    (f,) = plan_rules.min_interval(fr, schedule(records([0, hours / 24.0])))
    assert f.status is status and f.value == pytest.approx(hours)
    assert f.margin == pytest.approx(hours - 40.0)


def test_min_interval_major_when_file_says_so():
    fr = Fractionation(min_interval_hours=sv(40))
    (f,) = plan_rules.min_interval(fr, schedule(records([0, 1])))
    assert f.status is Status.MAJOR and f.value == pytest.approx(24.0)


@pytest.mark.parametrize(("n", "ok"), [(1, True), (4, True), (5, False)])
def test_target_count(n, ok):
    fr = Fractionation(min_targets=sv(1), max_targets=sv(4))
    found = plan_rules.target_count(fr, [f"PTV_{i}" for i in range(n)])
    assert [f.status for f in found] == [Status.PASS, Status.PASS if ok else Status.MAJOR]


def test_no_target_found_cannot_be_counted():
    # a plan whose PTV is typed ORGAN: no target recognised is an input problem, not a plan
    # that treats no target (was a major deviation "0 targets >= 1", and "0 <= 4" a pass)
    fr = Fractionation(min_targets=sv(1), max_targets=sv(4))
    found = plan_rules.target_count(fr, [])
    assert [f.status for f in found] == [Status.NOT_EVALUABLE, Status.NOT_EVALUABLE]
    assert found[0].message == "no target found: the targets treated cannot be counted"


def _grid(dz_steps) -> DoseGrid:
    z = np.concatenate([[0.0], np.cumsum(dz_steps)])
    return DoseGrid(np.zeros((z.size, 3, 3)), np.arange(3) * 2.0, np.arange(3) * 2.0, z, "F")


@pytest.mark.parametrize(
    ("steps", "status"), [([3.0, 3.0], Status.PASS), ([2.0, 3.01], Status.MINOR)]
)
def test_grid_resolution_largest_uneven_z_step(steps, status):
    pc = PlanChecks(max_grid_spacing_mm=sv(3, Status.MINOR))
    (f,) = plan_rules.grid_resolution(pc, _grid(steps))
    assert f.status is status and f.value == pytest.approx(max(steps))


def test_grid_coverage_target_and_organ():
    pc = PlanChecks(grid_covers_structures=sv(True))
    found = plan_rules.grid_coverage(pc, [("PTV", True, 0.4, 20.0), ("Cord", False, 1.5, 8.0)])
    assert [f.status for f in found] == [Status.NOT_EVALUABLE, Status.MINOR]
    assert found[1].value == 1.5 and "never" not in found[1].message
    assert "0 Gy" in found[1].message
    (ok,) = plan_rules.grid_coverage(pc, [("PTV", True, 0.0, 20.0)])
    assert ok.status is Status.PASS


def test_heterogeneity_and_summation_and_approval():
    pc = PlanChecks(heterogeneity_correction=sv("required"))
    grid = _grid([2.0])
    (unstated,) = plan_rules.heterogeneity(pc, grid)
    assert unstated.status is Status.INFO
    grid.heterogeneity_correction = ("WATER",)
    assert plan_rules.heterogeneity(pc, grid)[0].status is Status.MAJOR
    grid.heterogeneity_correction = ("IMAGE",)
    assert plan_rules.heterogeneity(pc, grid)[0].status is Status.PASS
    grid.scaling_note = "FRACTION dose multiplied by 3 fractions"
    (s,) = plan_rules.dose_summation(grid)
    assert s.status is Status.INFO and "multiplied by 3" in s.message
    plan = Plan("RP.dcm", "1", "P", approval_status="UNAPPROVED")
    (a,) = plan_rules.approval(plan)
    assert a.status is Status.INFO and "UNAPPROVED" in a.message
    plan.approval_status = "APPROVED"
    assert plan_rules.approval(plan) == []


def test_site_inference_and_regimen():
    protocol = load_protocol("nrg_br002")
    spine = plan_rules.choose_site(protocol, ["T8 vertebra"], 30.0, 3)
    assert spine.site == "spine"
    # central and peripheral lung both match: the 50 Gy/5 regimen decides
    lung = plan_rules.choose_site(protocol, ["Central lung SBRT, right upper lobe"], 50.0, 5)
    assert lung.site == "central_lung" and "regimen" in lung.how
    unknown = plan_rules.choose_site(protocol, ["Plan 1"], 30.0, 3)
    assert unknown.site is None
    from rtqa.protocol.prescription import TargetRx

    rx = [TargetRx("PTV", 30.0, 3, "dose reference")]
    plan = Plan("RP.dcm", "1", "P", fraction_groups=(), prescriptions=())
    found = plan_rules.prescription(protocol, plan, rx, unknown, "C")
    regimen = next(f for f in found if f.rule == "regimen")
    assert regimen.status is Status.NOT_EVALUABLE and "--site" in regimen.message
    forced = plan_rules.choose_site(protocol, ["Plan 1"], 30.0, 3, site_option="liver")
    from rtqa.model import FractionGroup

    plan3 = Plan("RP.dcm", "1", "P", fraction_groups=(FractionGroup(1, 3),))
    bad = next(
        f for f in plan_rules.prescription(protocol, plan3, rx, forced, "C") if f.rule == "regimen"
    )
    assert bad.status is Status.MAJOR and "45 Gy/3" in bad.message


def test_excluded_site_cns():
    protocol = load_protocol("nrg_br002")
    texts = ["Brain metastasis SRS"]
    site = plan_rules.choose_site(protocol, texts, 20.0, 1)
    (f,) = plan_rules.excluded_sites(protocol, texts, site)
    assert f.status is Status.MAJOR and "cns" in f.message
