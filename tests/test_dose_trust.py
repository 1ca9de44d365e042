"""Can the dose be trusted? The dose level against the prescription, and judgements withheld
when the dose (its level or its placement) cannot be trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.model import Finding, Status
from rtqa.protocol.dose_trust import withhold_untrusted

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
RX_GY = 30.0  # spine_3fx and spine_3fx_overrun: 30 Gy in 3 fractions


def scaled_case(tmp_path: Path, name: str, factor: float) -> tuple[Path, float]:
    """A copy of sample case ``name`` with its DoseGridScaling multiplied by ``factor``, and
    the sample's own dose maximum in % of Rx, read with pydicom alone."""
    case = tmp_path / name
    shutil.copytree(SAMPLES / name, case)
    (rd,) = case.glob("RD.*.dcm")
    ds = pydicom.dcmread(rd)
    scaling = float(ds.DoseGridScaling)
    max_pct = 100.0 * float(ds.pixel_array.max()) * scaling / RX_GY
    ds.DoseGridScaling = f"{scaling * factor:.10g}"
    ds.save_as(rd)
    return case, max_pct


def check(case: Path):
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "nrg_br002", "--format", "json"]
    )
    data = json.loads(result.output)
    (level,) = [f for f in data["findings"] if f["rule"] == "dose_level"]
    return result.exit_code, data, level


def test_the_sample_dose_level_passes(tmp_path):
    code, _, level = check(SAMPLES / "spine_3fx")
    _, max_pct = scaled_case(tmp_path, "spine_3fx", 1.0)
    assert code == 0 and level["status"] == "pass" and level["group"] == "integrity"
    assert level["value"] == pytest.approx(max_pct, rel=1e-9)
    assert 120.0 < max_pct < 125.0  # the sample's hot spot: 122 % of Rx
    assert level["margin"] == pytest.approx(max_pct - 90.0, rel=1e-9)  # to the nearer edge


def test_a_dose_of_one_fraction_is_named_and_withholds_every_dose_judgement(tmp_path):
    case, max_pct = scaled_case(tmp_path, "spine_3fx", 1.0 / 3.0)
    code, data, level = check(case)
    assert level["status"] == "not_evaluable"
    assert level["value"] == pytest.approx(max_pct / 3.0, rel=1e-6)
    assert "it matches one fraction (30 Gy / 3 = 10 Gy)" in level["message"]
    assert level["message"].startswith(
        f"dose maximum {max_pct * 0.1:.4g} Gy = {max_pct / 3:.4g} % of the prescription 30 Gy"
    )
    from_dose = [f for f in data["findings"] if f["group"] in ("target", "organ", "quality")]
    withheld = [f for f in from_dose if f["status"] != "info"]
    assert [f["rule"] for f in from_dose if f not in withheld] == ["optional_organs"]
    assert len(withheld) == 7 and all(f["status"] == "not_evaluable" for f in withheld)
    head = "not judged: the dose is not trusted (dose_level of SPINE3FX not evaluable)"
    assert all(f["message"].startswith(head) for f in withheld)
    # a third of the dose: no PTV voxel reaches Rx, measured as a major deviation, not judged
    (v100,) = [f for f in withheld if f["metric"] == "V100%[%]"]
    assert v100["value"] == 0.0 and "measured as major" in v100["message"]
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_a_dose_in_cgy_stored_as_gy_is_named(tmp_path):
    case, max_pct = scaled_case(tmp_path, "spine_3fx", 100.0)
    code, _, level = check(case)
    assert level["value"] == pytest.approx(100.0 * max_pct, rel=1e-6)
    assert "divided by 100 it would be plausible: cGy stored as Gy?" in level["message"]
    assert code == 4


def test_an_absurd_dose_scaling_is_not_evaluable_not_an_internal_error(tmp_path):
    case, max_pct = scaled_case(tmp_path, "spine_3fx", 1e12)
    code, data, level = check(case)
    assert level["value"] == pytest.approx(1e12 * max_pct, rel=1e-6)
    assert "check the dose scaling and units" in level["message"]
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_a_deviation_not_drawn_from_the_dose_still_counts(tmp_path):
    # spine_3fx_overrun exceeds the 3-week completion window (a plan rule): with an untrusted
    # dose the schedule deviation stands, so the exit is still 1
    case, _ = scaled_case(tmp_path, "spine_3fx_overrun", 1.0 / 3.0)
    code, data, level = check(case)
    assert level["status"] == "not_evaluable"
    (window,) = [f for f in data["findings"] if f["rule"] == "completion_window"]
    assert window["status"] in ("minor", "major") and window["group"] == "plan"
    assert code == 1


def finding(group: str, rule: str, status: Status, message: str = "", case_id="A") -> Finding:
    return Finding(group=group, rule=rule, status=status, message=message, case_id=case_id)


def test_withholding_touches_only_judgements_drawn_from_the_dose():
    findings = [
        finding("organ", "D0.03cc[Gy]", Status.MAJOR, "cord"),
        finding("target", "V100%[%]", Status.PASS),
        finding("organ", "optional_organs", Status.INFO, "none missing"),
        finding("plan", "fractions", Status.MAJOR, "6 fractions"),
        finding("plan", "grid_coverage", Status.MINOR, "cord partly outside the grid"),
        finding("integrity", "Volume[cc]", Status.PASS),
        finding("integrity", "dose_placement", Status.NOT_EVALUABLE, "misplaced", "A"),
    ]
    out = withhold_untrusted(findings)
    assert [f.status for f in out] == [
        Status.NOT_EVALUABLE,
        Status.NOT_EVALUABLE,
        Status.INFO,
        Status.MAJOR,
        Status.NOT_EVALUABLE,  # a misplaced grid: whether it covers the structures is moot
        Status.PASS,
        Status.NOT_EVALUABLE,
    ]
    assert out[0].message == (
        "not judged: the dose is not trusted (dose_placement of A not evaluable); "
        "measured as major: cord"
    )
    assert out[1].message.endswith("measured as pass")
    # a trusted dose: nothing changes
    assert withhold_untrusted(findings[:6]) == findings[:6]
    # a dose of the wrong level in the right place: grid coverage still stands
    level = finding("integrity", "dose_level", Status.NOT_EVALUABLE, "one fraction")
    assert withhold_untrusted([*findings[:6], level])[4].status is Status.MINOR


def test_another_plans_untrusted_dose_leaves_this_plans_targets_standing():
    """Two plans of one course: plan B's dose is one fraction's. Plan A's coverage, on A's own
    dose, stands; B's coverage and the organs (on the summed course dose) are withheld."""
    findings = [
        finding("target", "V100%[%]", Status.PASS, case_id="A"),
        finding("quality", "CI", Status.MINOR, case_id="A"),
        finding("target", "V100%[%]", Status.MAJOR, case_id="B"),
        finding("organ", "D0.03cc[Gy]", Status.PASS, case_id=None),
        finding("integrity", "dose_level", Status.NOT_EVALUABLE, "one fraction", case_id="B"),
    ]
    out = withhold_untrusted(findings)
    assert [f.status for f in out] == [
        Status.PASS,
        Status.MINOR,
        Status.NOT_EVALUABLE,
        Status.NOT_EVALUABLE,
        Status.NOT_EVALUABLE,
    ]


def test_target_median_below_half_its_prescription_means_the_dose_is_not_on_the_target():
    from rtqa.dvh import Dvh
    from rtqa.protocol.dose_trust import target_dose_finding

    # median of (10, 20, 30 Gy, 1 cc each) is 20 Gy: 50 % of 40 Gy passes, of 40.1 Gy does not
    dvh = Dvh.from_samples([10.0, 20.0, 30.0], [1.0, 1.0, 1.0])
    ok = target_dose_finding([("PTV", dvh, 40.0), ("GTV", dvh, None)], "A")
    assert (ok.status, ok.value, ok.roi) == (Status.PASS, pytest.approx(50.0), "PTV")
    # one target dosed and another not: a coverage matter, not a misplaced dose
    mixed = target_dose_finding([("PTV_hi", dvh, 20.0), ("PTV_lo", dvh, 400.0)], "A")
    assert (mixed.status, mixed.roi, mixed.value) == (Status.PASS, "PTV_hi", pytest.approx(100))
    low = target_dose_finding([("PTV_a", dvh, 41.0), ("PTV_b", dvh, 40.1)], "A")
    assert low.status is Status.NOT_EVALUABLE and low.roi == "PTV_b"
    assert low.value == pytest.approx(100 * 20 / 40.1)
    assert "the dose lies on none of the targets" in low.message
    assert target_dose_finding([("GTV", dvh, None)], "A") is None


def test_rows_and_columns_transposed_inside_the_body_withhold_every_dose_judgement(tmp_path):
    # the sample dose grid is 45 rows x 37 columns; read as 37 x 45 its high dose stays inside
    # the body (dose_placement passes) and its maximum unchanged (dose_level passes), but off
    # the PTV. Under boss, which has no coverage rule, this once passed (exit 0)
    case = tmp_path / "spine_prior_exceeds"
    shutil.copytree(SAMPLES / "spine_prior_exceeds", case)
    rd = case / "RD.PRIOREXCEEDS.dcm"  # the current course (RD.PRIOR_T7.dcm: the prior)
    ds = pydicom.dcmread(rd)
    assert (ds.Rows, ds.Columns) == (45, 37)
    ds.Rows, ds.Columns = ds.Columns, ds.Rows
    ds.save_as(rd)
    result = CliRunner().invoke(cli, ["check", str(case), "--protocol", "boss", "--format", "json"])
    data = json.loads(result.output)
    by_rule = {f["rule"]: f for f in data["findings"] if f["group"] == "integrity"}
    assert by_rule["dose_level"]["status"] == "pass"
    assert by_rule["dose_placement"]["status"] == "pass"
    on_target = by_rule["dose_on_target"]
    assert on_target["status"] == "not_evaluable" and on_target["value"] < 50.0
    # every judgement drawn from the dose is withheld (the prior course's own checks and the
    # interval since it stand)
    own = ("prior_dose_placement", "prior_dose_level", "prior_dose_type", "min_interval")
    judged = [
        f
        for f in data["findings"]
        if f["group"] in ("organ", "prior", "target") and f["rule"] not in own
    ]
    assert judged and not [f for f in judged if f["status"] in ("pass", "minor", "major")]
    assert result.exit_code == 4 and data["verdict"] == "not_evaluable"
    # the intact case: the PTV median lies above its prescription
    intact = CliRunner().invoke(
        cli,
        ["check", str(SAMPLES / "spine_prior_exceeds"), "--protocol", "boss", "--format", "json"],
    )
    (f,) = [f for f in json.loads(intact.output)["findings"] if f["rule"] == "dose_on_target"]
    assert f["status"] == "pass" and 100.0 <= f["value"] <= 130.0
