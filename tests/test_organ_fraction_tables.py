"""Organ limits by fraction-count table: a count the protocol lists no table for leaves the organ
not evaluable; a course of plans of different counts is judged against the strictest EQD2 limit of
the tables of every count present, whatever the order of the plans."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rtqa.check import CheckOptions, run_check
from rtqa.dvh import Dvh
from rtqa.model import Status
from rtqa.protocol.bands import bands_from_texts
from rtqa.protocol.fraction_tables import (
    course_limits,
    eqd2_candidates,
    judge_strictest,
    missing_counts,
)
from rtqa.protocol.metrics import parse_metric
from rtqa.protocol.model import Confidence, Limit, Organ, RoiSpec, Source
from rtqa.synthetic.cases import CaseSpec, spine_course
from rtqa.synthetic.write import write_case

START = datetime(2024, 3, 4, 9, 0)


def spine_case(root: Path, name: str, plans: list[tuple[float, int, int]]) -> Path:
    """One folder with a spine SBRT plan per (rx Gy, fractions, start day) of ``plans``, the
    cord 1 mm behind the PTV; written in the order given."""
    courses = tuple(
        spine_course(f"P{n}FX{i}", 1.0, START + timedelta(days=day), rx_gy=rx, fractions=n)
        for i, (rx, n, day) in enumerate(plans)
    )
    spec = CaseSpec(
        name=name,
        patient_id=f"RTQA-{name}",
        patient_name="RTQA^FX",
        birth_date="19600101",
        sex="F",
        courses=courses,
        protocol="x",
        verdict="x",
        summary="x",
    )
    write_case(spec, root)
    return root / name


def check(folder: Path, protocol: str):
    (result,) = run_check([str(folder)], CheckOptions(protocol=protocol))
    return result


def organs(result):
    return [f for f in result.findings if f.group == "organ" and f.rule != "optional_organs"]


# ---- a fraction count without a table ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["boss", "archer"])
def test_count_without_table_is_not_evaluable_not_a_pass(tmp_path, protocol):
    """28 Gy in 4 fractions: the protocol sets no allowed counts and tabulates 1, 3 and 5: no
    organ is judged, so the course is not evaluable (exit 4), not a pass (it was exit 0)."""
    result = check(spine_case(tmp_path, "s4", [(28.0, 4, 0)]), protocol)
    found = organs(result)
    assert {f.roi for f in found} == {"SpinalCord", "Esophagus"}
    for f in found:
        assert f.status is Status.NOT_EVALUABLE and f.rule == "limits"
        assert f.message == (
            f"no {f.roi} limits for 4 fractions in the protocol, which lists them for 1, 3 "
            "and 5 fractions only: the organ's limits are not judged"
        )
    assert result.exit_code == 4


def test_count_without_table_under_allowed_fractions_stays_a_deviation(tmp_path):
    """tg101 lists allowed counts: the count is a major deviation, the organs not evaluable."""
    result = check(spine_case(tmp_path, "s4", [(28.0, 4, 0)]), "tg101")
    (count,) = [f for f in result.findings if f.rule == "fraction_count"]
    assert count.status is Status.MAJOR
    assert {(f.roi, f.status) for f in organs(result)} == {
        ("SpinalCord", Status.NOT_EVALUABLE),
        ("Esophagus", Status.NOT_EVALUABLE),
    }
    assert result.exit_code == 1


def test_count_with_table_is_judged(tmp_path):
    result = check(spine_case(tmp_path, "s3", [(27.0, 3, 0)]), "boss")
    found = organs(result)
    assert not [f for f in found if f.rule == "limits"]
    cord = {f.metric: f for f in found if f.roi == "SpinalCord"}
    assert set(cord) == {"D0.35cc[Gy]", "D1.2cc[Gy]", "D0.035cc[Gy]"}
    assert cord["D0.035cc[Gy]"].limits == {"limit": "<= 21.9"}


def test_mixed_course_with_a_count_without_table_is_not_evaluable(tmp_path):
    result = check(spine_case(tmp_path, "m34", [(27.0, 3, 0), (28.0, 4, 1)]), "boss")
    found = organs(result)
    assert {(f.roi, f.status, f.rule) for f in found} == {
        ("SpinalCord", Status.NOT_EVALUABLE, "limits"),
        ("Esophagus", Status.NOT_EVALUABLE, "limits"),
    }
    assert found[0].message.startswith(
        "the course's plans have 3 and 4 fractions; no SpinalCord limits for 4 fractions in the "
        "protocol, which lists them for 1, 3 and 5 fractions only"
    )


# ---- plans of different counts: the strictest EQD2 limit, whatever the order ----------------

# alpha/beta 3 Gy (tg101 states none: the default), EQD2 = D (D/n + 3) / (2 + 3)
WANT = {
    # metric: (per-protocol EQD2 limit, table) -- 3 fx vs 5 fx; the cord at its protocol
    # alpha/beta of 2 Gy (EQD2 = D (d + 2) / 4), the oesophagus at the default 3 Gy
    ("SpinalCord", "D0.35cc[Gy]"): (36.0, 3),  # 18*(6+2)/4 = 36 vs 23*(4.6+2)/4 = 37.95
    ("SpinalCord", "D1.2cc[Gy]"): (17.762, 5),  # 12.3*6.1/4 = 18.758 vs 14.5*4.9/4 = 17.7625
    ("SpinalCord", "D0.035cc[Gy]"): (50.917, 3),  # 21.9*(7.3+2)/4 = 50.9175 vs 30*(6+2)/4 = 60
    ("Esophagus", "D5cc[Gy]"): (26.91, 5),  # 17.7*(5.9+3)/5 = 31.506 vs 19.5*(3.9+3)/5 = 26.91
    ("Esophagus", "D0.035cc[Gy]"): (57.456, 3),  # 25.2*(8.4+3)/5 = 57.456 vs 35*(7+3)/5 = 70
}


@pytest.fixture(scope="module")
def both_orders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    three_first = check(spine_case(root, "a", [(30.0, 3, 0), (30.0, 5, 1)]), "tg101")
    five_first = check(spine_case(root, "b", [(30.0, 5, 0), (30.0, 3, 1)]), "tg101")
    return three_first, five_first


def test_mixed_course_limits_are_the_strictest_eqd2_of_each_table(both_orders):
    for result in both_orders:
        got = {(f.roi, f.metric): f for f in organs(result)}
        assert set(got) == set(WANT)
        for key, (limit, table) in WANT.items():
            f = got[key]
            assert round(float(f.limits["limit"].split()[1]), 3) == limit
            assert f"limit of the {table}-fraction table, the strictest in EQD2" in f.message
            assert f"alpha/beta {2 if key[0] == 'SpinalCord' else 3} Gy" in f.message


def test_mixed_course_verdict_does_not_depend_on_plan_order(both_orders):
    a, b = (
        {(f.roi, f.metric): (f.status, f.value, f.limits) for f in organs(r)} for r in both_orders
    )
    assert a == b
    # the cord 1 mm behind a 30 Gy PTV in both plans: over the strictest limits
    assert {k: v[0] for k, v in a.items()} == {
        ("SpinalCord", "D0.35cc[Gy]"): Status.MAJOR,
        ("SpinalCord", "D1.2cc[Gy]"): Status.MAJOR,
        ("SpinalCord", "D0.035cc[Gy]"): Status.MAJOR,
        ("Esophagus", "D5cc[Gy]"): Status.PASS,
        ("Esophagus", "D0.035cc[Gy]"): Status.PASS,
    }
    assert both_orders[0].exit_code == both_orders[1].exit_code == 1


# ---- the choice itself, on exact DVHs --------------------------------------------------------


def limit(metric: str, **bands) -> Limit:
    return Limit(
        parse_metric(metric),
        bands_from_texts(**bands),
        Source("T", table="1"),
        Confidence.SECONDARY,
    )


def organ(limits) -> Organ:
    return Organ("Cord", RoiSpec(name="Cord"), limits=limits)


def uniform(dose_gy: float) -> Dvh:
    return Dvh.from_samples([dose_gy], [10.0])


def judged(o: Organ, counts, dose_gy: float, ab: float = 3.0):
    groups, refused = eqd2_candidates(o, counts, ab)
    assert not refused
    return [
        judge_strictest(g, uniform(dose_gy), roi="Cord", match="exact", note="n", tail="t")
        for g in groups
    ]


def test_most_severe_verdict_wins_over_the_stricter_per_protocol_limit():
    """3 fx: per protocol <= 18 (EQD2 32.4), acceptable <= 21.9 (45.114); 5 fx: a lone limit
    <= 23 (34.96). At 40 Gy EQD2 the 3-fraction table says minor, the 5-fraction one major."""
    o = organ(
        {
            3: (limit("Max[Gy]", per_protocol="<= 18", acceptable="<= 21.9"),),
            5: (limit("Max[Gy]", limit="<= 23"),),
        }
    )
    ((f, chosen),) = judged(o, [3, 5], 40.0)
    assert f.status is Status.MAJOR and chosen.fractions == 5
    assert round(f.margin, 3) == round(34.96 - 40.0, 3)
    assert "the most severe verdict of the course's tables" in f.message
    # within both per-protocol limits: the stricter (3 fx) judges
    ((f, chosen),) = judged(o, [3, 5], 30.0)
    assert f.status is Status.PASS and chosen.fractions == 3
    assert round(f.margin, 3) == 2.4


def test_lower_limits_and_volume_queries():
    """A critical volume (>= cc below a dose) has a different EQD2 dose per table: each judged;
    for a lower limit the larger bound is the stricter."""
    o = organ(
        {
            3: (limit("CV11.6Gy[cc]", limit=">= 5"), limit("D5cc[Gy]", limit=">= 1")),
            5: (limit("CV13.5Gy[cc]", limit=">= 5"), limit("D5cc[Gy]", limit=">= 2")),
        }
    )
    out = judged(o, [5, 3], 10.0)
    metrics = sorted(c.limit.metric.canonical for _, c in out)
    # 11.6*(11.6/3+3)/5 = 15.931; 13.5*(2.7+3)/5 = 15.39
    assert metrics == ["CV15.39Gy[cc]", "CV15.93Gy[cc]", "D5cc[Gy]"]
    (d5,) = [(f, c) for f, c in out if c.limit.metric.canonical == "D5cc[Gy]"]
    # 1 Gy in 3 fx = 1*(1/3+3)/5 = 0.667; 2 Gy in 5 fx = 2*(0.4+3)/5 = 1.36
    assert d5[1].fractions == 5 and round(d5[1].limit.bands.per_protocol.limit, 3) == 1.36


def test_any_count_limits_and_missing_tables():
    anyc = limit("Max[Gy]", limit="<= 30")
    o = organ({3: (limit("Max[Gy]", limit="<= 21.9"),), None: (anyc,)})
    assert missing_counts(o, [3, 4]) == (4,)
    assert missing_counts(organ({}), [4]) == ()
    # a count without table: only the any-count limits judge
    assert course_limits(o, [3, 4]) == (anyc,)
    groups, _ = eqd2_candidates(o, [3, 4], 3.0, tables=False)
    assert len(groups) == 1 and len(groups[0]) == 2
    f, chosen = judge_strictest(groups[0], uniform(1.0), roi="C", match="m", note="n", tail="t")
    # 30 Gy in 4 fx = 30*(7.5+3)/5 = 63 is stricter than in 3 fx = 30*(10+3)/5 = 78
    assert chosen.fractions == 4 and f.status is Status.PASS
    assert round(chosen.limit.bands.per_protocol.limit, 3) == 63.0
    assert "any-count limits at 4 fx" in f.message
