"""``rtqa check --rx ROI=GY``: an ROI no structure set holds is a usage error; an --rx the plan's
own prescription (dose reference, name suffix) overrides, or that names no judged target, is
said in a warning note. Both were silent: the output was byte-identical to no --rx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.check import CheckOptions, run_check
from rtqa.cli import cli
from rtqa.errors import UsageError
from rtqa.model import Level

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def run(*args: str):
    return CliRunner().invoke(cli, ["check", *args], catch_exceptions=False)


def notes(result) -> list[dict]:
    return json.loads(result.stdout)["notes"]


def rx_notes(result) -> list[str]:
    return [n["message"] for n in notes(result) if n["message"].startswith("--rx ")]


def without_dose_reference(tmp_path: Path, ptv_name: str) -> Path:
    """spine_3fx whose plan has no dose reference and whose PTV (ROI 2) is renamed."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rp = pydicom.dcmread(case / "RP.SPINE3FX.dcm")
    del rp.DoseReferenceSequence
    for group in rp.FractionGroupSequence:
        if "ReferencedDoseReferenceSequence" in group:
            del group.ReferencedDoseReferenceSequence
    rp.save_as(case / "RP.SPINE3FX.dcm")
    rs = pydicom.dcmread(case / "RS.SPINE3FX.dcm")
    (ptv,) = [r for r in rs.StructureSetROISequence if int(r.ROINumber) == 2]
    ptv.ROIName = ptv_name
    rs.save_as(case / "RS.SPINE3FX.dcm")
    return case


@pytest.mark.parametrize("given", ["NOSUCH=45", "ptv_30gy=45"])
def test_an_rx_for_an_roi_no_structure_set_holds_is_a_usage_error(given):
    res = run(str(SAMPLES / "spine_3fx"), "--rx", given)
    assert res.exit_code == 2 and res.stdout == ""
    name = given.split("=")[0]
    assert (
        f"rtqa: error: --rx {name}=45: no structure set has ROI of that name; target ROIs "
        "(PTV/CTV/GTV/ITV) present: 'PTV_30Gy', 'GTV'" in res.stderr
    )


def test_every_unknown_rx_roi_is_named_in_one_error():
    with pytest.raises(UsageError) as err:
        run_check(
            [str(SAMPLES / "spine_3fx")], CheckOptions(rx={"A": 1.0, "PTV_30Gy": 30.0, "B": 2.5})
        )
    assert str(err.value).startswith("--rx A=1; --rx B=2.5: no structure set has ROIs of that name")


def test_an_rx_the_dose_reference_overrides_is_said_and_changes_nothing_else():
    plain = run(str(SAMPLES / "spine_3fx"), "--format", "json")
    given = run(str(SAMPLES / "spine_3fx"), "--rx", "PTV_30Gy=45", "--format", "json")
    assert (plain.exit_code, given.exit_code) == (0, 0)
    assert rx_notes(plain) == []
    (note,) = [n for n in notes(given) if n["message"].startswith("--rx ")]
    assert note == {
        "level": Level.WARNING.value,
        "message": "--rx PTV_30Gy=45 Gy not used: the plan prescribes 30 Gy (dose reference)",
        "path": None,
        "attribute": None,
    }
    a, b = json.loads(plain.stdout), json.loads(given.stdout)
    assert [(f["rule"], f["roi"], f["value"]) for f in a["findings"]] == [
        (f["rule"], f["roi"], f["value"]) for f in b["findings"]
    ]
    (rx,) = [f for f in b["findings"] if f["rule"] == "prescription"]
    assert rx["value"] == 30.0 and rx["source"] == "plan (dose reference)"
    text = run(str(SAMPLES / "spine_3fx"), "--rx", "PTV_30Gy=45")
    assert "warning: --rx PTV_30Gy=45 Gy not used: the plan prescribes 30 Gy" in text.stdout


def test_an_rx_agreeing_with_the_plan_is_not_noted():
    res = run(str(SAMPLES / "spine_3fx"), "--rx", "PTV_30Gy=30", "--format", "json")
    assert res.exit_code == 0 and rx_notes(res) == []


def test_an_rx_for_an_roi_that_is_not_a_judged_target_is_said():
    res = run(str(SAMPLES / "spine_3fx"), "--rx", "SpinalCord=45", "--format", "json")
    assert res.exit_code == 0
    assert rx_notes(res) == [
        "--rx SpinalCord=45 Gy not used: ROI 'SpinalCord' is not judged as a target of the "
        "protocol (targets judged: 'PTV_30Gy')"
    ]


def test_an_rx_the_name_suffix_overrides_is_said(tmp_path):
    case = without_dose_reference(tmp_path, "PTV_27Gy")
    res = run(str(case), "--rx", "PTV_27Gy=30", "--format", "json")
    (rx,) = [f for f in json.loads(res.stdout)["findings"] if f["rule"] == "prescription"]
    assert rx["value"] == 27.0 and rx["source"] == "plan (ROI name)"
    assert rx_notes(res) == [
        "--rx PTV_27Gy=30 Gy not used: the ROI name gives 27 Gy, which takes precedence"
    ]


def test_an_rx_that_is_used_is_not_noted(tmp_path):
    case = without_dose_reference(tmp_path, "PTV")
    res = run(str(case), "--rx", "PTV=30", "--format", "json")
    assert res.exit_code == 0, res.output
    (rx,) = [f for f in json.loads(res.stdout)["findings"] if f["rule"] == "prescription"]
    assert rx["value"] == 30.0 and rx["source"] == "plan (--rx)"
    assert rx_notes(res) == []
