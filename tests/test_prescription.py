"""Prescription per target: dose references, TG-263 name suffixes, --rx, and which was used."""

from __future__ import annotations

import dataclasses

import pytest

from rtqa.model import FractionGroup, Plan, Prescription, Roi
from rtqa.protocol.prescription import (
    dose_from_name,
    parse_rx_args,
    prescription_levels,
    target_prescription,
)


@pytest.mark.parametrize(
    ("name", "gy"),
    [
        ("PTV_30Gy", 30.0),
        ("PTV_50.4Gy", 50.4),
        ("PTV_3000", 30.0),
        ("PTV_3000cGy", 30.0),
        ("PTV 2400", 24.0),
        ("PTV_T8_27Gy", 27.0),
        ("PTV", None),
        ("PTV_1", None),  # lesion number, not 1 cGy
        ("PTV_99", None),
        ("PTV_30Gy_opt", None),  # suffix must end the name
    ],
)
def test_dose_from_name(name, gy):
    assert dose_from_name(name) == gy


def _plan(prescriptions=(), fractions=3) -> Plan:
    return Plan(
        path="RP.dcm",
        sop_instance_uid="1.2.3",
        label="P",
        fraction_groups=(FractionGroup(1, fractions),),
        prescriptions=tuple(prescriptions),
    )


def test_dose_reference_pointing_to_roi_wins_over_name():
    roi = Roi(2, "PTV_3000")
    plan = _plan([Prescription(27.0, 3, "DoseReferenceSequence", roi_number=2)])
    rx = target_prescription(roi, plan, {"PTV_3000": 24.0})
    assert (rx.total_gy, rx.fractions, rx.source) == (27.0, 3, "dose reference")
    assert "ROI 2" in rx.detail


def test_name_suffix_then_rx_option():
    plan = _plan([Prescription(27.0, 3, "DoseReferenceSequence", roi_number=9)])
    by_name = target_prescription(Roi(2, "PTV_3000"), plan)
    assert (by_name.total_gy, by_name.source) == (30.0, "ROI name")
    by_option = target_prescription(Roi(3, "PTV_T8"), plan, {"PTV_T8": 24.0})
    assert (by_option.total_gy, by_option.source) == (24.0, "--rx")
    none = target_prescription(Roi(4, "PTV_L1"), plan)
    assert none.total_gy is None and "--rx PTV_L1=GY" in none.describe()


def test_unreferenced_prescription_only_for_a_single_target():
    plan = _plan([Prescription(30.0, 3, "BeamDose")])
    assert target_prescription(Roi(2, "PTV"), plan, single_target=True).total_gy == 30.0
    assert target_prescription(Roi(2, "PTV"), plan, single_target=False).total_gy is None


def test_parse_rx_args():
    assert parse_rx_args(["PTV_T8=27", "PTV=A=30.5"]) == {"PTV_T8": 27.0, "PTV=A": 30.5}
    for bad in ("PTV", "PTV=abc", "PTV=-3", "=30", "PTV=nan"):
        with pytest.raises(ValueError, match="--rx"):
            parse_rx_args([bad])


def test_several_totals_for_one_roi_are_never_resolved_by_picking_one():
    """A boost's part and the whole (or two levels) pointing to one ROI: the plan does not say
    which to judge, so neither is taken (the highest was); the name suffix or --rx decides."""
    both = [
        Prescription(30.0, 3, "DoseReferenceSequence", roi_number=2),
        Prescription(36.0, 3, "DoseReferenceSequence", roi_number=2),
    ]
    plan = _plan(both)
    unknown = target_prescription(Roi(2, "PTV"), plan)
    assert (unknown.total_gy, unknown.source) == (None, "ambiguous")
    assert unknown.describe() == (
        "the prescription of 'PTV' is ambiguous (several dose references point to ROI 2 "
        "(36 Gy, 30 Gy); give --rx PTV=GY, the plan's total to it)"
    )
    named = target_prescription(Roi(2, "PTV_30Gy"), plan)
    assert (named.total_gy, named.source) == (30.0, "ROI name")
    assert named.detail.startswith("several dose references point to ROI 2 (36 Gy, 30 Gy); ")
    given = target_prescription(Roi(2, "PTV"), plan, {"PTV": 36.0})
    assert (given.total_gy, given.source) == (36.0, "--rx")
    # one total stated twice is no ambiguity
    twice = _plan([both[0], Prescription(30.0, 3, "DoseReferenceSequence", roi_number=2)])
    assert target_prescription(Roi(2, "PTV"), twice).total_gy == 30.0


def test_one_fraction_groups_share_is_not_the_plans_prescription():
    """A sequential boost in one plan: group 1 (5 fx) lists dose reference 1 (30 Gy to the
    PTV), group 2 (1 fx) lists dose reference 2 (8 Gy to the boost volume). The plan dose sums
    both groups, so the boost's 8 Gy is a share: coverage against it would pass trivially."""
    groups = (
        FractionGroup(1, 5, referenced_dose_reference_numbers=(1,)),
        FractionGroup(2, 1, referenced_dose_reference_numbers=(2,)),
    )
    plan = Plan(
        path="RP.dcm",
        sop_instance_uid="1.2.3",
        label="P",
        fraction_groups=groups,
        prescriptions=(
            Prescription(30.0, 5, "DoseReferenceSequence", 2, dose_reference_number=1),
            Prescription(8.0, 1, "DoseReferenceSequence", 3, dose_reference_number=2),
        ),
    )
    boost = target_prescription(Roi(3, "PTV_boost"), plan)
    assert (boost.total_gy, boost.source) == (None, "ambiguous")
    assert boost.describe() == (
        "the prescription of 'PTV_boost' is ambiguous (dose reference 2 (8 Gy) is listed by "
        "fraction group 2 only, of the plan's 2 groups whose doses the plan dose sums: it "
        "prescribes a share; give --rx PTV_boost=GY, the plan's total to it)"
    )
    assert target_prescription(Roi(3, "PTV_boost"), plan, {"PTV_boost": 38.0}).total_gy == 38.0
    # listed by every group (or by none: nothing known) it is the plan's
    every = tuple(FractionGroup(g.number, g.fractions_planned, (), (1, 2)) for g in groups)
    listed = dataclasses.replace(plan, fraction_groups=every)
    assert target_prescription(Roi(3, "PTV_boost"), listed).total_gy == 8.0


def test_prescription_levels_of_a_plan():
    """Distinct totals ascending; a fraction group's share is no level (a sequential boost's
    10 Gy of group 2 beside the 50 Gy of group 1); where every total is a share, the highest
    stands alone."""

    def plan(*items, groups=None):
        rx = tuple(
            Prescription(gy, 5, "test", roi, dose_reference_number=n) for gy, roi, n in items
        )
        groups = groups or (FractionGroup(1, 5),)
        return Plan("RP.dcm", "1.2.3", "P", fraction_groups=groups, prescriptions=rx)

    assert prescription_levels(plan((40.0, 1, 1), (30.0, 2, 2), (40.0, 3, 3))) == (30.0, 40.0)
    phases = (
        FractionGroup(1, 25, referenced_dose_reference_numbers=(1,)),
        FractionGroup(2, 5, referenced_dose_reference_numbers=(2,)),
    )
    assert prescription_levels(plan((50.0, 1, 1), (10.0, 2, 2), groups=phases)) == (50.0,)
    both = (FractionGroup(1, 25, (), (1, 2)), FractionGroup(2, 5, (), (2,)))
    assert prescription_levels(plan((50.0, 1, 1), (60.0, 2, 2), groups=both)) == (60.0,)
    assert prescription_levels(None) == ()
