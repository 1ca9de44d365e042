"""Prior-radiation limits on a derived organ (``plus`` / ``minus`` in the constraint file) are
judged on the derived structure the organ rules judge, not on its base ROI alone.

Closed-form phantom (BOSS): the current dose is 10 Gy in 3 fractions for x <= -2 mm and 24 Gy
in 3 fractions for x >= 0 mm (a ramp between the two grid nodes), the prior dose a uniform 20 Gy
in 5 fractions; boxes lie clear of the ramp, so every cell of a box reads one plateau. EQD2:
alpha/beta 3 Gy (BOSS default): current 10 Gy -> 10 (10/3 + 3) / 5 = 12.667 Gy, 24 Gy ->
24 (8 + 3) / 5 = 52.8 Gy, prior 20 (4 + 3) / 5 = 28 Gy; alpha/beta 2 Gy (BOSS cord): current
10 (10/3 + 2) / 4 = 13.333 Gy, 24 (8 + 2) / 4 = 60 Gy, prior 20 (4 + 2) / 4 = 30 Gy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_prior_rules import FRAME_A, FRAME_B, by_rule, case, grid, reg

from rtqa.check import CheckOptions, run_check
from rtqa.model import ContourPlane, Course, PlanarPolygon, Roi, Status
from rtqa.protocol.loader import load_protocol
from rtqa.protocol.prior_inputs import PriorInput
from rtqa.protocol.prior_rules import evaluate_prior
from rtqa.radiobiology import eqd2

ROOT = Path(__file__).resolve().parents[1]
# EQD2 (Gy) of the plateaus, see the module docstring
NOW_10_AB3, NOW_24_AB3, PRIOR_AB3 = 10 * (10 / 3 + 3) / 5, 24 * 11 / 5, 28.0
NOW_10_AB2, NOW_24_AB2, PRIOR_AB2 = 10 * (10 / 3 + 2) / 4, 60.0, 30.0


def box(number: int, name: str, x: tuple[float, float], half_yz: float = 6.0) -> Roi:
    """A box x0..x1, -half_yz..half_yz (mm) in y, its 2 mm slabs -half_yz..half_yz in z."""
    y0, y1 = -half_yz, half_yz
    ring = np.array([[x[0], y0], [x[1], y0], [x[1], y1], [x[0], y1]])
    zs = np.arange(-half_yz + 1.0, half_yz, 2.0)
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs)
    return Roi(number, name, "ORGAN", frame_of_reference_uid=FRAME_A, planes=planes)


def setup(organs: dict[str, Roi], parts=None, targets=None) -> PriorInput:
    """The phantom of the module docstring with ``organs`` and their derived ``parts``."""
    now = grid((0, 0, 0), (30, 30, 30), 2.0, FRAME_A)
    now.dose_gy[:] = np.where(now.x_mm < 0, 10.0, 24.0)[None, None, :]
    before = grid((0, 0, 0), (40, 40, 40), 2.0, FRAME_B, 20.0)
    current = case("NOW", now, list(organs.values()), FRAME_A, 27.0, 3, 400)
    prior = case("BEFORE", before, [], FRAME_B, 20.0, 5, 0, [reg(np.eye(4))])
    return PriorInput(
        course=Course((current,), (prior,)),
        dose=now,
        fractions=3,
        organs=organs,
        targets=targets or {},
        body=None,
        organ_parts=parts or {},
    )


@pytest.fixture(scope="module")
def boss():
    return load_protocol("boss")


@pytest.fixture(scope="module")
def trachea_limited(boss):
    """BOSS with the cord's cumulative point-maximum limit (<= 70 Gy EQD2) set on 'Trachea'."""
    pr = boss.prior_radiation
    limits = {**pr.cumulative_eqd2, "Trachea": pr.cumulative_eqd2["SpinalCord"]}
    return replace(boss, prior_radiation=replace(pr, cumulative_eqd2=limits))


def test_a_union_is_judged_with_its_hot_part(trachea_limited):
    """Trachea (10 Gy side) plus Bronchus (24 Gy side): the cumulative maximum is the bronchus's
    28 + 52.8 = 80.8 Gy (above 70), where the trachea alone read 28 + 12.667 = 40.667 Gy."""
    trachea, bronchus = box(1, "Trachea", (-20.0, -6.0)), box(2, "Bronchus", (6.0, 20.0))
    union = setup({"Trachea": trachea}, {"Trachea": ((bronchus,), ())})
    found, ctx = evaluate_prior(union, trachea_limited)
    (cum,) = by_rule(found, "cumulative_eqd2")
    assert cum.value == pytest.approx(PRIOR_AB3 + NOW_24_AB3, abs=1e-9)  # 80.8 Gy
    assert cum.status is Status.MAJOR and cum.margin == pytest.approx(70 - 80.8, abs=1e-9)
    # the same as the bronchus's own cumulative maximum, sampled alone
    alone, _ = evaluate_prior(setup({"Bronchus": bronchus}), trachea_limited)
    (part,) = [f for f in by_rule(alone, "cumulative_eqd2") if f.metric == "EQD2cum Max"]
    assert part.status is Status.INFO and part.value == pytest.approx(cum.value, abs=1e-9)
    # the union's volume is both boxes' (14 x 12 x 12 mm each), its mean EQD2 halfway
    res = ctx.organ_dvhs["Trachea"]
    assert res.cumulative.total_volume_cc == pytest.approx(2 * 14 * 12 * 12 / 1000, rel=1e-6)
    mid = PRIOR_AB3 + (NOW_10_AB3 + NOW_24_AB3) / 2  # 60.733 Gy
    assert res.cumulative.mean_gy == pytest.approx(mid, abs=1e-6)
    # judged on the trachea alone (before: the bronchus left out) it passes at 40.667 Gy
    base, _ = evaluate_prior(setup({"Trachea": trachea}), trachea_limited)
    (cum,) = by_rule(base, "cumulative_eqd2")
    assert cum.value == pytest.approx(PRIOR_AB3 + NOW_10_AB3, abs=1e-9)
    assert cum.status is Status.PASS


def test_a_difference_is_judged_without_the_part_taken_away(boss):
    """SpinalCord x -20..20 mm minus Block x -6..22 mm (wider in y and z): the 10 Gy side
    alone. Cumulative maximum and mean 30 + 13.333 = 43.333 Gy, course 13.333 Gy, share 0.308,
    all within BOSS; the whole cord reads its 24 Gy side: 90 Gy, 60 Gy, 0.667, all beyond."""
    cord, block = box(1, "SpinalCord", (-20.0, 20.0)), box(2, "Block", (-6.0, 22.0), 8.0)
    found, ctx = evaluate_prior(setup({"SpinalCord": cord}, {"SpinalCord": ((), (block,))}), boss)
    rows = {r: by_rule(found, r) for r in ("cumulative_eqd2", "course_eqd2", "course_share")}
    (cum,), (course,), (share,) = rows.values()
    derived = PRIOR_AB2 + NOW_10_AB2  # 43.333 Gy
    assert cum.value == pytest.approx(derived, abs=1e-9)
    assert course.value == pytest.approx(NOW_10_AB2, abs=1e-9)
    assert share.value == pytest.approx(NOW_10_AB2 / derived, rel=1e-9)  # 0.308
    assert {f.status for f in (cum, course, share)} == {Status.PASS}
    res = ctx.organ_dvhs["SpinalCord"]
    assert res.cumulative.mean_gy == pytest.approx(derived, abs=1e-6)
    assert res.cumulative.total_volume_cc == pytest.approx(14 * 12 * 12 / 1000, rel=1e-6)
    # the whole cord: the 24 Gy side sets every figure
    whole, wctx = evaluate_prior(setup({"SpinalCord": cord}), boss)
    (cum,), (course,), (share,) = (by_rule(whole, r) for r in rows)
    assert cum.value == pytest.approx(PRIOR_AB2 + NOW_24_AB2, abs=1e-9)  # 90 Gy
    assert course.value == pytest.approx(NOW_24_AB2, abs=1e-9)  # 60 Gy
    assert share.value == pytest.approx(60 / 90, rel=1e-9)
    assert {f.status for f in (cum, course, share)} == {Status.MAJOR}
    assert wctx.organ_dvhs["SpinalCord"].cumulative.mean_gy > derived + 10.0


def test_findings_name_the_derived_structure(trachea_limited):
    trachea, bronchus = box(1, "Trachea", (-20.0, -6.0)), box(2, "Bronchus", (6.0, 20.0))
    gtv = box(3, "GTV", (-12.0, -8.0), 2.0)
    parts = {"Trachea": ((bronchus,), (gtv,))}
    # a target prescribed 60 Gy: its 30 Gy isodose is nowhere, so no irradiated overlap, and
    # the organs dosed by both courses are named
    targets = {"PTV": (box(4, "PTV", (-30.0, -24.0), 2.0), 60.0)}
    found, _ = evaluate_prior(setup({"Trachea": trachea}, parts, targets), trachea_limited)
    (cum,) = by_rule(found, "cumulative_eqd2")
    assert cum.roi == "Trachea + Bronchus - GTV" and cum.match == "Trachea"
    assert cum.message.startswith(
        "Trachea + Bronchus - GTV Max[Gy] EQD2: prior 28.00 Gy, current 52.80 Gy, "
        "cumulative 80.80 Gy (EQD2 LQ, alpha/beta 3 Gy"
    )
    (ab,) = by_rule(found, "alpha_beta")
    assert ab.roi == "Trachea + Bronchus - GTV"
    assert ab.message.startswith("Trachea + Bronchus - GTV: EQD2 with LQ, alpha/beta 3 Gy")
    (kind,) = by_rule(found, "reirradiation_type")
    assert kind.message.startswith("type 2 re-irradiation")
    assert "Trachea + Bronchus - GTV" in kind.message


# --- through rtqa check: the organ rules hand the derived parts to the prior rules -----------

ESOPHAGUS_PLUS_CORD = """  - roi:
      name: Esophagus
      aliases: ["oesophagus", "esoph", "Oesophagus"]
      plus: [SpinalCord]
"""
ESOPHAGUS_PRIOR = """  cumulative_eqd2:
    Esophagus:
      Max[Gy]: {limit: "<= 45", source: *sahgal, confidence: unverified}
"""
ESOPHAGUS_AB = """    SpinalCord: {value: 2, source: *sahgal, confidence: verified}
    Esophagus: {value: 2, source: *sahgal, confidence: unverified}
"""


def _boss_with_esophagus_limit(tmp_path: Path, union: bool) -> Path:
    """BOSS with a cumulative maximum EQD2 limit (<= 45 Gy, alpha/beta 2) on the oesophagus,
    with ``union``: on the oesophagus plus the spinal cord."""
    text = (ROOT / "constraints" / "boss.yaml").read_text()
    esophagus = ESOPHAGUS_PLUS_CORD.replace("      plus: [SpinalCord]\n", "")
    assert esophagus in text
    if union:
        text = text.replace(esophagus, ESOPHAGUS_PLUS_CORD, 1)
    ab = ESOPHAGUS_AB.splitlines(keepends=True)[0]
    for old, new in ((ab, ESOPHAGUS_AB), ("  cumulative_eqd2:\n", ESOPHAGUS_PRIOR)):
        assert text.count(old) == 1
        text = text.replace(old, new, 1)
    path = tmp_path / ("union.yaml" if union else "alone.yaml")
    path.write_text(text)
    return path


def _prior_rows(tmp_path: Path, union: bool):
    protocol = _boss_with_esophagus_limit(tmp_path, union)
    options = CheckOptions(protocol=str(protocol), keep_context=True)
    (r,) = run_check([str(ROOT / "sample_data" / "spine_prior")], options)
    rows = [f for f in r.findings if f.group == "prior" and f.rule == "cumulative_eqd2"]
    return {f.match: f for f in rows}, r.context


def test_check_judges_the_prior_limit_of_a_union_on_the_union(tmp_path):
    """spine_prior, both organs under the prior 20 Gy/5 plateau (30 Gy EQD2 at alpha/beta 2):
    the oesophagus alone reads a cumulative maximum of 42.07 Gy (pass, <= 45); with the cord,
    whose own maximum is 50.76 Gy, 50.74 Gy (deviation): the union's maximum is the cord's,
    sampled on the union's lattice (factors 3, where the cord alone takes 4; physical 13.058
    against 13.067 Gy)."""
    alone, _ = _prior_rows(tmp_path, union=False)
    assert alone["Esophagus"].roi == "Esophagus"
    assert alone["Esophagus"].value == pytest.approx(42.07, abs=0.01)
    assert alone["Esophagus"].status is Status.PASS
    rows, ctx = _prior_rows(tmp_path, union=True)
    union, cord = rows["Esophagus"], rows["SpinalCord"]
    assert union.roi == "Esophagus + SpinalCord" and union.match == "Esophagus"
    assert union.message.startswith("Esophagus + SpinalCord Max[Gy] EQD2: prior 30.00 Gy")
    assert union.value == pytest.approx(50.74, abs=0.01)
    assert union.status is Status.MAJOR and union.limits == {"limit": "<= 45"}
    # the cord's own row is unchanged by the union
    assert cord.value == pytest.approx(alone["SpinalCord"].value, abs=1e-9)
    assert cord.value == pytest.approx(50.76, abs=0.01)
    assert union.value == pytest.approx(cord.value, abs=0.05)
    # the current part is the EQD2 of the maximum of the organ rules' DVH of the same union
    physical = ctx.dvhs["Esophagus + SpinalCord"].dvh.max_gy
    assert physical == pytest.approx(13.06, abs=0.01)
    current = ctx.prior.organ_dvhs["Esophagus"].current.max_gy
    assert current == pytest.approx(eqd2(physical, 3, 2.0), abs=0.05)
    assert union.value == pytest.approx(30.0 + current, abs=0.01)
