"""rtqa's mean doses beside the planning system's own DVHs (DVHSequence) of the same RT Dose: a
misread dose is caught even where its level stays plausible, one structure that disagrees is
named, and the TPS numbers themselves are read as the DICOM convention says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.dicom.structures import read_structure_set
from rtqa.dvh import Dvh
from rtqa.dvh.tps import tps_dose_at, tps_mean_gy
from rtqa.model import DoseGrid, Status, TpsDvh
from rtqa.protocol.dose_agreement import MeanPair, agreement_findings, mean_pairs
from rtqa.protocol.structure_dvhs import volume_integrity

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
LUNG = SAMPLES / "lung_5fx"
# the ROIs of lung_5fx that nrg_br002 judges with a TPS mean >= 1 Gy and >= 0.5 cc
COMPARED = ("PTV_50Gy", "Esophagus", "Bronchus", "Lungs")


def check(case: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "nrg_br002", "--format", "json"]
    )
    return result.exit_code, json.loads(result.output)


def rule(data: dict, name: str) -> list[dict]:
    return [f for f in data["findings"] if f["rule"] == name]


def dvh_items(rd: Path) -> dict[str, pydicom.Dataset]:
    """The DVHSequence items of ``rd`` by ROI name (from the structure set beside it), read
    with pydicom alone."""
    names = {
        int(r.ROINumber): r.ROIName
        for r in pydicom.dcmread(next(rd.parent.glob("RS.*"))).StructureSetROISequence
    }
    return {
        names[int(item.DVHReferencedROISequence[0].ReferencedROINumber)]: item
        for item in pydicom.dcmread(rd).DVHSequence
    }


def tps_means(rd: Path) -> dict[str, float]:
    """DVHMeanDose (Gy) by ROI name."""
    return {name: float(item.DVHMeanDose) for name, item in dvh_items(rd).items()}


def rtqa_means(case: Path) -> dict[str, float]:
    result = CliRunner().invoke(cli, ["dvh", str(case), "--metric", "Mean[Gy]", "--format", "json"])
    return {r["roi"]: r["metrics"]["Mean[Gy]"] for r in json.loads(result.output)["rois"]}


def copy_case(tmp_path: Path) -> tuple[Path, Path]:
    case = tmp_path / "lung_5fx"
    shutil.copytree(LUNG, case)
    return case, next(case.glob("RD.*.dcm"))


def test_the_lung_sample_agrees_with_its_planning_system_dvhs():
    code, data = check(LUNG)
    (agree,) = rule(data, "dose_agreement")
    theirs, ours = tps_means(next(LUNG.glob("RD.*.dcm"))), rtqa_means(LUNG)
    expected = 100.0 * float(np.median([ours[n] / theirs[n] for n in COMPARED]))
    assert agree["status"] == "pass" and agree["group"] == "integrity"
    assert agree["value"] == pytest.approx(expected, rel=1e-9)
    assert abs(agree["value"] - 100.0) < 0.5  # closed-form DVHs vs trilinear on a 2.5 mm grid
    assert f"median of {len(COMPARED)} ROI(s)" in agree["message"]
    assert agree["margin"] == pytest.approx(5.0 - abs(expected - 100.0), rel=1e-9)
    assert rule(data, "tps_dvh_mean") == []
    assert code == 1  # the sample's oesophagus deviation, judged


def test_a_scaling_misread_with_a_plausible_level_withholds_every_dose_judgement(tmp_path):
    _, base = check(LUNG)
    case, rd = copy_case(tmp_path)
    ds = pydicom.dcmread(rd)
    ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * 1.5:.10g}"  # the DVHs are left as stored
    ds.save_as(rd)
    code, data = check(case)
    (level,) = rule(data, "dose_level")
    (agree,) = rule(data, "dose_agreement")
    # 122 % of Rx read as 183 %: inside 90-300 %, the level cannot tell
    assert level["status"] == "pass" and 180.0 < level["value"] < 186.0
    assert agree["status"] == "not_evaluable"
    assert agree["value"] == pytest.approx(1.5 * rule(base, "dose_agreement")[0]["value"], rel=1e-6)
    assert (
        "rtqa does not read the dose the planning system computed its DVHs on" in agree["message"]
    )
    (eso,) = [
        f for f in data["findings"] if f["metric"] == "D0.03cc[Gy]" and f["roi"] == "Esophagus"
    ]
    assert eso["status"] == "not_evaluable" and "measured as major" in eso["message"]
    assert "dose_agreement of LUNG5FX not evaluable" in eso["message"]
    assert rule(data, "tps_dvh_mean") == []  # the systematic error explains them all
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_one_structure_the_planning_system_saw_otherwise_is_named(tmp_path):
    case, rd = copy_case(tmp_path)
    number = dvh_items(rd)["Esophagus"].DVHReferencedROISequence[0].ReferencedROINumber
    ds = pydicom.dcmread(rd)
    (item,) = [
        i for i in ds.DVHSequence if i.DVHReferencedROISequence[0].ReferencedROINumber == number
    ]
    tps = float(f"{2.0 * float(item.DVHMeanDose):.6g}")  # the value as written
    item.DVHMeanDose = f"{tps:.6g}"
    ds.save_as(rd)
    code, data = check(case)
    (agree,) = rule(data, "dose_agreement")
    assert agree["status"] == "pass"  # the median of four: three agree
    (one,) = rule(data, "tps_dvh_mean")
    ours = rtqa_means(case)["Esophagus"]
    assert one["roi"] == "Esophagus" and one["status"] == "minor"
    assert one["value"] == pytest.approx(ours, rel=1e-9)
    assert one["margin"] == pytest.approx(0.1 * tps - abs(ours - tps), rel=1e-6)
    assert code == 1


def _dvh_of(name: str, number: int, doses, volumes, outside: float = 0.0):
    dvh = Dvh.from_samples(np.asarray(doses, float), np.asarray(volumes, float), outside)
    return SimpleNamespace(roi_name=name, roi_number=number, dvh=dvh, volume_cc=dvh.total_volume_cc)


def _grid(tps_dvhs, scaling_note=None) -> DoseGrid:
    axis = np.arange(3.0)
    return DoseGrid(
        np.zeros((3, 3, 3)),
        axis,
        axis,
        axis,
        None,
        tps_dvhs=tuple(tps_dvhs),
        scaling_note=scaling_note,
    )


def _tps(number: int, mean: float) -> TpsDvh:
    return TpsDvh(number, np.array([0.0, 1.0]), np.array([1.0, 0.0]), 1.0, mean_gy=mean)


def test_only_whole_structures_inside_the_grid_on_this_dose_are_compared():
    rois = [SimpleNamespace(name=n, number=k) for k, n in enumerate(("A", "B", "C", "D"), 1)]
    dvhs = {
        "A": _dvh_of("A", 1, [10.0, 12.0], [1.0, 1.0]),
        "B": _dvh_of("B - A", 2, [5.0], [2.0]),  # a derived structure kept under B's name
        "C": _dvh_of("C", 3, [4.0], [2.0], outside=0.5),  # partly outside the grid
        "D": _dvh_of("D", 99, [4.0], [2.0]),  # another structure set's D
    }
    grid = _grid([_tps(k, 11.0) for k in (1, 2, 3, 4)])
    (pair,) = mean_pairs(grid, rois, dvhs)
    assert pair == MeanPair("A", 2.0, 11.0, 11.0)
    (f,) = agreement_findings(grid, rois, dvhs, "P")
    assert f.status is Status.PASS and f.value == pytest.approx(100.0)


def test_thresholds_of_comparison_and_disagreement():
    assert not MeanPair("r", 5.0, 1.0, 0.99).comparable  # under 1 Gy
    assert not MeanPair("r", 0.49, 30.0, 30.0).comparable  # under 0.5 cc
    assert MeanPair("r", 0.5, 1.0, 1.0).comparable
    assert MeanPair("r", 1.0, 11.2, 10.0).disagrees  # 1.2 Gy and 12 %
    assert not MeanPair("r", 1.0, 2.8, 2.0).disagrees  # 40 % but 0.8 Gy
    assert not MeanPair("r", 1.0, 31.5, 30.0).disagrees  # 1.5 Gy but 5 %


def test_a_scaled_dose_and_nothing_comparable_are_said_not_judged():
    rois = [SimpleNamespace(name="A", number=1)]
    dvhs = {"A": _dvh_of("A", 1, [0.5], [2.0])}
    (f,) = agreement_findings(_grid([_tps(1, 0.5)], "session dose x 5 fractions"), rois, dvhs, "P")
    assert f.status is Status.INFO and "session dose x 5 fractions" in f.message
    (g,) = agreement_findings(_grid([_tps(1, 0.5)]), rois, dvhs, "P")
    assert g.status is Status.INFO and "1 ROI(s)" in g.message and g.value is None
    assert agreement_findings(_grid([]), rois, dvhs, "P") == []


def test_tps_mean_and_dose_at_volume_from_a_cumulative_curve():
    # 2 cc spread uniformly over 0-10 Gy: V(d) = 2 (1 - d / 10), mean 5 Gy, D50% = 5 Gy
    dose = np.linspace(0.0, 10.0, 11)
    volume = 2.0 * (1.0 - dose / 10.0)
    tps = TpsDvh(1, dose, volume, 2.0)
    assert tps_mean_gy(tps) == pytest.approx(5.0, rel=1e-12)
    assert tps_dose_at(volume, dose, 1.0) == pytest.approx(5.0, rel=1e-12)
    assert tps_dose_at(volume, dose, 0.3) == pytest.approx(8.5, rel=1e-12)
    assert tps_dose_at(volume, dose, 2.5) is None  # more than the curve holds
    assert tps_mean_gy(TpsDvh(1, dose, volume, 2.0, mean_gy=4.2)) == 4.2  # DVHMeanDose first


def test_a_derived_structures_volume_check_uses_the_whole_roi():
    ss = read_structure_set(next(LUNG.glob("RS.*.dcm")))
    (lungs,) = [r for r in ss.rois if r.name == "Lungs"]
    grid = _grid([])
    derived = SimpleNamespace(roi_name="Lungs - GTV", volume_cc=0.6 * lungs.tps_volume_cc)
    (f,) = volume_integrity(lungs, derived, grid, "P", set())
    assert f.status is Status.PASS
    assert f.value == pytest.approx(lungs.tps_volume_cc, rel=1e-4)  # ROIVolume: 3 decimals
    whole = SimpleNamespace(roi_name="Lungs", volume_cc=0.6 * lungs.tps_volume_cc)
    (g,) = volume_integrity(lungs, whole, grid, "P", set())
    assert g.status is Status.MINOR and g.value == pytest.approx(0.6 * lungs.tps_volume_cc)


@pytest.mark.parametrize("case", ["lung_5fx", "spine_3fx"])
def test_info_lists_the_roi_numbers_of_the_planning_system_dvhs(case):
    folder = SAMPLES / case
    ds = pydicom.dcmread(next(folder.glob("RD.*.dcm")))
    stored = [
        int(i.DVHReferencedROISequence[0].ReferencedROINumber) for i in ds.get("DVHSequence", [])
    ]
    result = CliRunner().invoke(cli, ["info", str(folder), "--format", "json"])
    (found,) = json.loads(result.output)["cases"]
    assert found["dose"]["tps_dvh_rois"] == stored
    assert len(stored) == (9 if case == "lung_5fx" else 0)  # every ROI but the body, or none
