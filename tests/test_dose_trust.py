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
