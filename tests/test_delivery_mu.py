"""Delivered against planned MU (edge cases R3, R4): real RT Plan and RT Beams Treatment Record
files, written and read back, then judged.

The plan has two treatment arcs (250 and 300 MU per fraction) and a setup beam (2 MU) over three
fractions; the tolerance is max(1 % of planned, 0.5 MU) per beam and fraction, so 2.5 MU for
ARC1 and 3 MU for ARC2.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.dicom.common import make_uid
from rtqa.dicom.plan import read_plan
from rtqa.dicom.records import read_treatment_record
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.plan import write_plan
from rtqa.dicom.write.records import write_treatment_record
from rtqa.model import (
    Beam,
    DeliveredBeam,
    FractionGroup,
    Plan,
    ReferencedBeam,
    Status,
    TreatmentRecord,
)
from rtqa.protocol.delivery import delivery_findings, fraction_deliveries, tolerance_mu

HEADER = Header("RTQA-MU", "Phantom^MU", make_uid("mu-study"), datetime(2024, 3, 1, 9, 0))
PLAN_UID = make_uid("mu-plan")
DAY1 = datetime(2024, 3, 4, 9, 0)
ARC1, ARC2, SETUP = 250.0, 300.0, 2.0


def plan_file(
    tmp_path: Path,
    meterset1: float | None = ARC1,
    uid: str = PLAN_UID,
    label: str = "LUNG_MU",
) -> Plan:
    plan = Plan(
        path="",
        sop_instance_uid=uid,
        label=label,
        approval_status="APPROVED",
        beams=(
            Beam(1, "ARC1", beam_type="DYNAMIC"),
            Beam(2, "ARC2", beam_type="DYNAMIC"),
            Beam(3, "CBCT", delivery_type="SETUP"),
        ),
        fraction_groups=(
            FractionGroup(
                1,
                3,
                (
                    ReferencedBeam(1, meterset1, 4.0),
                    ReferencedBeam(2, ARC2, 6.0),
                    ReferencedBeam(3, SETUP, None),
                ),
            ),
        ),
    )
    path = tmp_path / f"RP.{label}.dcm"
    write_plan(plan, path, HEADER, series_instance_uid=make_uid("mu-plan-series"))
    return read_plan(str(path))


def record_file(
    tmp_path: Path,
    name: str,
    fraction: int | None,
    beams,
    when: datetime | None = None,
    plan_uid: str = PLAN_UID,
    group: int | None = None,
) -> TreatmentRecord:
    when = when or DAY1 + timedelta(days=2 * ((fraction or 1) - 1))
    rec = TreatmentRecord(
        path="",
        sop_instance_uid=make_uid("mu-record", name, plan_uid),
        referenced_plan_uid=plan_uid,
        fraction_number=fraction,
        delivered_at=when,
        beams=tuple(beams),
        fraction_group=group,
    )
    path = tmp_path / name
    write_treatment_record(rec, path, HEADER, series_instance_uid=make_uid("mu-record-series"))
    return read_treatment_record(str(path))


def full(arc1: float = ARC1, arc2: float = ARC2, setup: float = 5.0) -> list[DeliveredBeam]:
    """All three beams ending NORMAL; the setup exposure deliberately differs from its 2 MU."""
    return [
        DeliveredBeam(1, arc1, ARC1, "NORMAL"),
        DeliveredBeam(2, arc2, ARC2, "NORMAL"),
        DeliveredBeam(3, setup, SETUP, "NORMAL"),
    ]


def course(tmp_path: Path, fx2: list[DeliveredBeam] | None = None) -> list[TreatmentRecord]:
    return [
        record_file(tmp_path, f"RT.fx{n}.dcm", n, fx2 if (n == 2 and fx2) else full())
        for n in (1, 2, 3)
    ]


def by_rule(findings, rule: str, status: Status | None = None):
    return [f for f in findings if f.rule == rule and (status is None or f.status is status)]


@pytest.mark.parametrize(
    ("planned", "tolerance"), [(300.0, 3.0), (250.0, 2.5), (50.0, 0.5), (20.0, 0.5)]
)
def test_tolerance_is_one_percent_with_a_half_mu_floor(planned, tolerance):
    assert tolerance_mu(planned) == pytest.approx(tolerance, abs=1e-12)


def test_matching_records_give_one_pass_and_setup_beams_are_not_counted(tmp_path):
    plan = plan_file(tmp_path)
    findings = delivery_findings(plan, course(tmp_path), "C")
    (f,) = findings
    assert f.status is Status.PASS and f.group == "plan" and f.rule == "delivered_mu"
    # 2 treatment beams x 3 fractions; the CBCT (5 MU against 2 planned) is left out
    assert f.message == (
        "delivered MU within tolerance on 6 beam deliveries (2 treatment beams, 3 fractions) "
        "over 3 sessions; 3 setup/imaging beam deliveries not counted"
    )
    assert f.source.startswith("rtqa convention") and "max(1 % of planned, 0.5 MU)" in f.source


def test_no_records_no_finding(tmp_path):
    assert delivery_findings(plan_file(tmp_path), [], "C") == []


def test_beam_short_by_three_percent_with_normal_termination_is_minor(tmp_path):
    plan = plan_file(tmp_path)
    short = 0.97 * ARC2  # 291 MU: 9 MU short, 3 times the 3 MU tolerance
    findings = delivery_findings(plan, course(tmp_path, full(arc2=short)), "C")
    (f,) = by_rule(findings, "delivered_mu")
    assert f.status is Status.MINOR
    assert f.value == pytest.approx(291.0, abs=1e-9) and f.unit == "MU"
    assert f.limits == {"limit": "300 ± 3 MU"}
    assert f.margin == pytest.approx(3.0 - 9.0, abs=1e-9)
    assert f.message.startswith("beam 2 'ARC2': planned 300 MU per fraction; fraction 2: ")
    assert "291 MU delivered (-9 MU, -3 %; RT.fx2.dcm; termination NORMAL)" in f.message
    assert "tolerance 3 MU (max(1 % of planned, 0.5 MU))" in f.message
    assert by_rule(findings, "fraction_delivery") == []


@pytest.mark.parametrize(
    ("arc1", "status"),
    [
        (ARC1 - 2.5, Status.PASS),  # exactly the tolerance
        (ARC1 + 2.5, Status.PASS),
        (ARC1 - 2.6, Status.MINOR),
        (ARC1 + 2.6, Status.MINOR),  # over-delivery counts as well
    ],
)
def test_tolerance_boundary(tmp_path, arc1, status):
    findings = delivery_findings(plan_file(tmp_path), course(tmp_path, full(arc1=arc1)), "C")
    (f,) = by_rule(findings, "delivered_mu")
    assert f.status is status


def test_operator_termination_not_completed_is_an_incomplete_fraction(tmp_path):
    plan = plan_file(tmp_path)
    cut = record_file(tmp_path, "RT.fx3.dcm", 3, [DeliveredBeam(1, 100.0, ARC1, "OPERATOR")])
    records = [*course(tmp_path)[:2], cut]
    findings = delivery_findings(plan, records, "C")
    (fx,) = by_rule(findings, "fraction_delivery")
    assert fx.status is Status.MINOR and fx.metric == "fraction 3"
    assert fx.message == (
        "fraction 3 not fully delivered: beam 1 'ARC1' terminated OPERATOR after 100 of 250 MU "
        "(RT.fx3.dcm): 100 of 250 planned MU; beam 2 'ARC2' in none of its records"
    )
    # the termination explains the shortfall: no MU discrepancy, the rest is within tolerance
    (summary,) = by_rule(findings, "delivered_mu")
    assert summary.status is Status.PASS
    assert summary.message.startswith("delivered MU within tolerance on 4 beam deliveries ")
    assert "; 1 short after an early termination" in summary.message


def test_interrupted_fraction_completed_in_a_second_session_is_information(tmp_path):
    plan = plan_file(tmp_path)
    t = DAY1 + timedelta(days=2)
    first = record_file(tmp_path, "a.dcm", 2, [DeliveredBeam(1, 100.0, ARC1, "MACHINE")], t)
    second = record_file(
        tmp_path,
        "b.dcm",
        2,
        [DeliveredBeam(1, 150.0, 150.0, "NORMAL"), DeliveredBeam(2, ARC2, ARC2, "NORMAL")],
        t + timedelta(minutes=40),
    )
    records = [course(tmp_path)[0], second, first, course(tmp_path)[2]]
    findings = delivery_findings(plan, records, "C")
    (fx,) = by_rule(findings, "fraction_delivery")
    assert fx.status is Status.INFO
    assert fx.message == (
        "fraction 2 interrupted: beam 1 'ARC1' terminated MACHINE after 100 of 250 MU (a.dcm), "
        "completed in 2 sessions: 250 of 250 planned MU"
    )
    (summary,) = by_rule(findings, "delivered_mu")
    assert summary.status is Status.PASS
    assert summary.message.startswith(
        "delivered MU within tolerance on 6 beam deliveries (2 treatment beams, 3 fractions) "
        "over 4 sessions"
    )


def test_unknown_beam_number_is_not_evaluable_and_named(tmp_path):
    plan = plan_file(tmp_path)
    fx2 = [*full(), DeliveredBeam(7, 120.0, 120.0, "NORMAL")]
    findings = delivery_findings(plan, course(tmp_path, fx2), "C")
    (ne,) = by_rule(findings, "delivered_mu", Status.NOT_EVALUABLE)
    assert ne.message == (
        "treatment record beam number 7 not in plan 'LUNG_MU': beam 7 in RT.fx2.dcm "
        "(fraction 2); their MU cannot be compared"
    )
    (ok,) = by_rule(findings, "delivered_mu", Status.PASS)
    assert "on 6 beam deliveries" in ok.message


def test_plan_without_beam_meterset_is_not_evaluable_for_that_beam(tmp_path):
    plan = plan_file(tmp_path, meterset1=None)
    findings = delivery_findings(plan, course(tmp_path), "C")
    (ne,) = by_rule(findings, "delivered_mu", Status.NOT_EVALUABLE)
    assert ne.message == (
        "planned MU unknown, delivered MU not compared for beam 1 'ARC1': "
        "no BeamMeterset in the plan"
    )
    (ok,) = by_rule(findings, "delivered_mu", Status.PASS)
    assert "on 3 beam deliveries (1 treatment beam, 3 fractions)" in ok.message


def test_check_reports_a_short_beam_of_the_sample_case(tmp_path):
    """End to end: spine_3fx (9 beams of 400 MU, 3 fractions) with beam 3 of fraction 2 made
    12 MU short: 3 times the 4 MU tolerance, a minor deviation (exit 1)."""
    case = tmp_path / "spine"
    shutil.copytree(Path(__file__).parent.parent / "sample_data" / "spine_3fx", case)
    rt = case / "RT.SPINE3FX.fx2.dcm"
    ds = pydicom.dcmread(rt)
    (item,) = [i for i in ds.TreatmentSessionBeamSequence if int(i.ReferencedBeamNumber) == 3]
    assert float(item.DeliveredMeterset) == 400.0
    item.DeliveredMeterset = "388"
    ds.save_as(rt)
    result = CliRunner().invoke(cli, ["check", str(case), "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    (f,) = [f for f in doc["findings"] if f["rule"] == "delivered_mu"]
    assert f["status"] == "minor" and f["value"] == 388.0 and f["limits"] == {"limit": "400 ± 4 MU"}
    assert f["margin"] == pytest.approx(4.0 - 12.0, abs=1e-9)
    assert doc["verdict"] == "minor"


def two_group_plan(tmp_path: Path, boost_arc1: float = ARC1) -> Plan:
    """Groups 1 = {ARC1 250 MU, ARC2 300 MU} x 3 and 2 = {ARC1 ``boost_arc1`` MU, BOOST 100 MU}
    x 2, written and read back."""
    plan = Plan(
        path="",
        sop_instance_uid=PLAN_UID,
        label="TWO_GROUPS",
        beams=(Beam(1, "ARC1"), Beam(2, "ARC2"), Beam(4, "BOOST")),
        fraction_groups=(
            FractionGroup(1, 3, (ReferencedBeam(1, ARC1), ReferencedBeam(2, ARC2))),
            FractionGroup(2, 2, (ReferencedBeam(1, boost_arc1), ReferencedBeam(4, 100.0))),
        ),
    )
    path = tmp_path / "RP2.dcm"
    write_plan(plan, path, HEADER, series_instance_uid=make_uid("mu-plan-series"))
    return read_plan(str(path))


def test_beam_planned_differently_in_two_groups_is_judged_on_the_group_its_beams_fit(tmp_path):
    """ARC1: 250 MU in group 1, 200 MU in group 2. Beams 1 and 2 fit group 1 only, which they
    complete: 250 MU delivered pass, 200 MU (group 2's value) is a deviation."""
    plan = two_group_plan(tmp_path, boost_arc1=200.0)
    arc2 = DeliveredBeam(2, ARC2, ARC2, "NORMAL")
    good = [record_file(tmp_path, "RT.dcm", 1, [DeliveredBeam(1, ARC1, ARC1, "NORMAL"), arc2])]
    findings = delivery_findings(plan, good, "C")
    (ok,) = by_rule(findings, "delivered_mu")
    assert ok.status is Status.PASS
    assert "on 2 beam deliveries (2 treatment beams, 1 fraction) over 1 session" in ok.message
    assert by_rule(findings, "fraction_delivery") == []
    wrong = [record_file(tmp_path, "RT.dcm", 1, [DeliveredBeam(1, 200.0, 200.0, "NORMAL"), arc2])]
    (bad,) = by_rule(delivery_findings(plan, wrong, "C"), "delivered_mu")
    assert bad.status is Status.MINOR and bad.limits == {"limit": "250 ± 2.5 MU"}


# --------------------------------------------------------------------------------------------
# Per-fraction completeness (``rtqa info``): the judgement of rule fraction_delivery
# --------------------------------------------------------------------------------------------


def states(plan, records) -> list[tuple]:
    return [
        (f.fraction, f.sessions, f.complete, f.reason) for f in fraction_deliveries(plan, records)
    ]


@pytest.mark.parametrize(
    ("fx2", "expected"),
    [
        (full(), (True, None)),
        (full(arc2=0.97 * ARC2), (True, None)),  # an MU discrepancy (delivered_mu), all beams there
        (
            [DeliveredBeam(1, ARC1, ARC1, "NORMAL")],
            (False, "beam 2 'ARC2' in none of its records"),
        ),
        (
            [DeliveredBeam(1, 100.0, ARC1, "OPERATOR"), DeliveredBeam(2, ARC2, ARC2, "NORMAL")],
            (
                False,
                "beam 1 'ARC1' terminated OPERATOR after 100 of 250 MU (RT.fx2.dcm): "
                "100 of 250 planned MU",
            ),
        ),
        (
            [DeliveredBeam(3, 2.0, 2.0, "NORMAL")],  # the CBCT only
            (
                False,
                "beam 1 'ARC1' in none of its records; beam 2 'ARC2' in none of its records",
            ),
        ),
    ],
)
def test_fraction_complete_exactly_when_check_finds_it_fully_delivered(tmp_path, fx2, expected):
    plan = plan_file(tmp_path)
    records = course(tmp_path, fx2)
    assert states(plan, records) == [(1, 1, True, None), (2, 1, *expected), (3, 1, True, None)]
    incomplete = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery", Status.MINOR)
    assert [f.message for f in incomplete] == (
        [f"fraction 2 not fully delivered: {expected[1]}"] if expected[0] is False else []
    )


def test_records_of_another_plan_do_not_join_its_fractions(tmp_path):
    """Fraction 1 of plan A (complete) and fraction 1 of plan B (ARC2 missing, beam 7 unknown
    to A): judging plan A with both plans' records counts A's session only."""
    plan_a = plan_file(tmp_path)
    uid_b = make_uid("mu-plan", "B")
    plan_b = plan_file(tmp_path, uid=uid_b, label="LUNG_MU_B")
    a = record_file(tmp_path, "A.fx1.dcm", 1, full())
    b = record_file(
        tmp_path,
        "B.fx1.dcm",
        1,
        [DeliveredBeam(1, ARC1, ARC1, "NORMAL"), DeliveredBeam(7, 10.0, 10.0, "NORMAL")],
        DAY1,
        uid_b,
    )
    assert states(plan_a, [a, b]) == [(1, 1, True, None)]
    assert states(plan_b, [a, b]) == [(1, 1, False, "beam 2 'ARC2' in none of its records")]
    # without a plan both are listed, each under its own plan, neither judged
    unjudged = fraction_deliveries(None, [a, b])
    assert sorted((f.plan_uid, f.fraction, f.sessions, f.complete) for f in unjudged) == sorted(
        [(PLAN_UID, 1, 1, None), (uid_b, 1, 1, None)]
    )
    assert {f.reason for f in unjudged} == {"no plan to compare beams with"}


def test_completeness_unknown_when_an_early_terminated_beam_has_no_planned_mu(tmp_path):
    plan = plan_file(tmp_path, meterset1=None)
    fx3 = [DeliveredBeam(1, 100.0, ARC1, "OPERATOR"), DeliveredBeam(2, ARC2, ARC2, "NORMAL")]
    records = [*course(tmp_path)[:2], record_file(tmp_path, "RT.fx3.dcm", 3, fx3)]
    assert states(plan, records)[2] == (
        3,
        1,
        None,
        "beam 1 'ARC1' terminated OPERATOR after 100 of 250 MU (RT.fx3.dcm); "
        "its planned or delivered MU unknown",
    )
    (fx,) = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery")
    assert fx.status is Status.NOT_EVALUABLE
    assert (
        fx.message
        == "fraction 3: whether it was fully delivered is unknown: " + states(plan, records)[2][3]
    )


def test_completeness_unknown_when_beams_fit_two_fraction_groups_none_in_full(tmp_path):
    """Groups {1, 2} and {1, 4}: a fraction delivering beam 1 only lacks beam 2 or beam 4,
    which one is not known."""
    plan = two_group_plan(tmp_path)
    one = [DeliveredBeam(1, ARC1, ARC1, "NORMAL")]
    both = [*one, DeliveredBeam(4, 100.0, 100.0, "NORMAL")]
    records = [record_file(tmp_path, "a.dcm", 1, both), record_file(tmp_path, "b.dcm", 2, one)]
    assert states(plan, records) == [
        (1, 1, True, None),
        (
            2,
            1,
            None,
            "treatment beam 1 delivered; fraction groups 1, 2 of the plan list them, none in "
            "full: which beams were due is unknown",
        ),
    ]
    # check says the same: not evaluable, never silent
    (fx,) = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery")
    assert fx.status is Status.NOT_EVALUABLE
    assert fx.message == (
        "fraction 2: whether it was fully delivered is unknown: treatment beam 1 delivered; "
        "fraction groups 1, 2 of the plan list them, none in full: which beams were due is unknown"
    )


def test_the_fraction_group_a_record_names_is_read_back_and_a_bad_one_noted(tmp_path):
    one = [DeliveredBeam(1, ARC1, ARC1, "NORMAL")]
    assert record_file(tmp_path, "a.dcm", 1, one, group=2).fraction_group == 2
    assert record_file(tmp_path, "b.dcm", 1, one).fraction_group is None
    path = tmp_path / "b.dcm"
    ds = pydicom.dcmread(path)
    ds.add_new(0x300C0022, "IS", None)
    ds[0x300C0022]._value = "two"  # written as it stands: an invalid IS from another system
    ds.save_as(path)
    with pytest.warns(UserWarning):  # pydicom's own warning on the invalid IS
        rec = read_treatment_record(str(path))
    assert rec.fraction_group is None
    assert [n.message for n in rec.notes if "FractionGroup" in n.message] == [
        "ReferencedFractionGroupNumber 'two' is not a whole number: the fraction group is "
        "taken from the delivered beams"
    ]


@pytest.mark.parametrize(
    ("group", "expected"),
    [(1, "beam 2 'ARC2' in none of its records"), (2, "beam 4 'BOOST' in none of its records")],
)
def test_a_named_fraction_group_says_which_beams_were_due(tmp_path, group, expected):
    """Beam 1 alone fits groups 1 and 2 (unknown without a name, see above); the group the
    record names settles it: the other beam of that group was not delivered."""
    plan = two_group_plan(tmp_path)
    one = [DeliveredBeam(1, ARC1, ARC1, "NORMAL")]
    records = [record_file(tmp_path, "b.dcm", 2, one, group=group)]
    assert states(plan, records) == [(2, 1, False, expected)]
    (fx,) = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery")
    assert fx.status is Status.MINOR
    assert fx.message == f"fraction 2 not fully delivered: {expected}"


def test_a_named_fraction_group_gives_the_planned_mu_where_groups_differ(tmp_path):
    """ARC1: 250 MU in group 1, 200 MU in group 2. Beam 1 alone fits both groups: its planned
    MU is unknown unless the record names the group, whose MU then apply."""
    plan = two_group_plan(tmp_path, boost_arc1=200.0)
    arc1 = [DeliveredBeam(1, 200.0, 200.0, "NORMAL")]
    unnamed = delivery_findings(plan, [record_file(tmp_path, "a.dcm", 1, arc1)], "C")
    (f,) = by_rule(unnamed, "delivered_mu")
    assert f.status is Status.NOT_EVALUABLE
    assert f.message == (
        "planned MU unknown, delivered MU not compared for beam 1 'ARC1': fraction groups give "
        "200, 250 MU"
    )
    for group, status, limit in (
        (2, Status.PASS, "± max(1 %, 0.5 MU)"),
        (1, Status.MINOR, "250 ± 2.5 MU"),
    ):
        named = delivery_findings(plan, [record_file(tmp_path, "a.dcm", 1, arc1, group=group)], "C")
        (f,) = by_rule(named, "delivered_mu")
        assert (f.status, f.limits) == (status, {"limit": limit})


@pytest.mark.parametrize(
    ("groups", "beams", "why"),
    [
        (
            (3,),
            (1, 4),
            "its records name fraction group 3, which the plan does not list with treatment beams",
        ),
        (
            (1,),
            (1, 4),
            "its records name fraction group 1, which does not list treatment beam 4 delivered",
        ),
        ((1, 2), (1,), "its records name different fraction groups (1, 2)"),
    ],
)
def test_a_named_fraction_group_that_cannot_be_the_one_delivered_is_not_evaluable(
    tmp_path, groups, beams, why
):
    plan = two_group_plan(tmp_path)
    mu = {1: ARC1, 4: 100.0}
    records = [
        record_file(
            tmp_path,
            f"s{i}.dcm",
            1,
            [DeliveredBeam(b, mu[b], mu[b], "NORMAL") for b in beams],
            group=g,
        )
        for i, g in enumerate(groups)
    ]
    reason = f"{why}: which beams were due is unknown"
    assert states(plan, records) == [(1, len(groups), None, reason)]
    (fx,) = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery")
    assert fx.status is Status.NOT_EVALUABLE
    assert fx.message == f"fraction 1: whether it was fully delivered is unknown: {reason}"


def test_record_without_fraction_number_is_its_own_fraction(tmp_path):
    plan = plan_file(tmp_path)
    rec = record_file(tmp_path, "RT.nofx.dcm", None, [DeliveredBeam(1, ARC1, ARC1, "NORMAL")])
    records = [*course(tmp_path), rec]
    assert states(plan, records)[3] == (None, 1, False, "beam 2 'ARC2' in none of its records")
    (fx,) = by_rule(delivery_findings(plan, records, "C"), "fraction_delivery")
    assert fx.message == (
        "the record RT.nofx.dcm (no fraction number) not fully delivered: "
        "beam 2 'ARC2' in none of its records"
    )


def test_a_beam_planned_with_zero_mu_but_delivered_is_a_deviation_without_a_percentage(tmp_path):
    plan = plan_file(tmp_path, meterset1=0.0)
    findings = delivery_findings(plan, course(tmp_path), "C")
    (f,) = by_rule(findings, "delivered_mu", Status.MINOR)
    assert f.message.startswith("beam 1 'ARC1': planned 0 MU per fraction; fraction 1: ")
    assert "250 MU delivered (+250 MU; RT.fx1.dcm; termination NORMAL)" in f.message
    assert f.limits == {"limit": "0 ± 0.5 MU"} and f.margin == pytest.approx(0.5 - 250.0)
