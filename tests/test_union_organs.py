"""A limit written for two structures together (TG-101's trachea and large bronchus, one 4 cc
row): the constraint file's ``plus`` judges the union of both contours, not each alone.

The lung sample holds a Bronchus; a Trachea is added as a copy of it moved down (-z) clear of it,
beside the target.
The union's D4cc is checked against the two parts' own DVHs from ``rtqa dvh``: for parts that do
not overlap, the union's volume above a dose is the sum of theirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.errors import ConstraintFileError
from rtqa.model import ContourPlane, PlanarPolygon, Roi
from rtqa.protocol import load_protocol, match_protocol
from rtqa.protocol.matching import MatchKind

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
ROOT = SAMPLES.parent


def _with_trachea(tmp_path: Path) -> tuple[Path, float]:
    """lung_5fx with 'Trachea': the Bronchus moved down clear of it, beside the PTV (bronchus
    z 20..60 mm, PTV x -39..-9 mm); the shift (mm, along z)."""
    case = tmp_path / "lung"
    shutil.copytree(SAMPLES / "lung_5fx", case, ignore=shutil.ignore_patterns("CT.*"))
    (rs,) = case.glob("RS*.dcm")
    ds = pydicom.dcmread(rs)
    (roi,) = [r for r in ds.StructureSetROISequence if r.ROIName == "Bronchus"]
    (contours,) = [
        c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == int(roi.ROINumber)
    ]
    zs = np.concatenate([np.asarray(c.ContourData, float)[2::3] for c in contours.ContourSequence])
    shift = -(float(zs.max() - zs.min()) + 5.0)  # -45 mm: on the 2.5 mm plane grid
    number = max(int(r.ROINumber) for r in ds.StructureSetROISequence) + 1
    new_roi = pydicom.Dataset()
    new_roi.ROINumber, new_roi.ROIName = number, "Trachea"
    new_roi.ReferencedFrameOfReferenceUID = roi.ReferencedFrameOfReferenceUID
    new_roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence.append(new_roi)
    item = pydicom.Dataset()
    item.ReferencedROINumber = number
    item.ROIDisplayColor = [0, 128, 255]
    item.ContourSequence = pydicom.Sequence()
    for c in contours.ContourSequence:
        moved = pydicom.Dataset()
        moved.ContourGeometricType = c.ContourGeometricType
        moved.NumberOfContourPoints = c.NumberOfContourPoints
        pts = np.asarray(c.ContourData, float).reshape(-1, 3) + np.array([0.0, 0.0, shift])
        moved.ContourData = [f"{v:.4f}" for v in pts.ravel()]
        item.ContourSequence.append(moved)
    ds.ROIContourSequence.append(item)
    obs = pydicom.Dataset()
    obs.ObservationNumber, obs.ReferencedROINumber = number, number
    obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
    ds.RTROIObservationsSequence.append(obs)
    ds.save_as(rs)
    return case, shift


def _findings(case: Path) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(cli, ["check", str(case), "--format", "json"])
    return result.exit_code, json.loads(result.stdout)["findings"]


def _volumes_above(case: Path, dose_gy: float) -> dict[str, float]:
    metric = f"V{dose_gy:.6f}Gy[cc]"
    result = CliRunner().invoke(cli, ["dvh", str(case), "--format", "json", "--metric", metric])
    assert result.exit_code == 0, result.output
    return {r["roi"]: r["metrics"][metric] for r in json.loads(result.output)["rois"]}


def test_trachea_and_bronchus_are_judged_as_one_structure(tmp_path):
    case, _ = _with_trachea(tmp_path)
    code, findings = _findings(case)
    union = [f for f in findings if f["roi"] == "Trachea + Bronchus"]
    assert sorted(f["metric"] for f in union) == ["D0.03cc[Gy]", "D4cc[Gy]"]
    assert not [
        f for f in findings if f["group"] == "organ" and f["roi"] in ("Trachea", "Bronchus")
    ]
    (d4,) = [f for f in union if f["metric"] == "D4cc[Gy]"]
    assert "(derived: union with Bronchus)" in d4["match"]
    # the union's D4cc is the dose above which the two parts hold 4 cc between them
    parts = _volumes_above(case, d4["value"])
    assert parts["Trachea"] + parts["Bronchus"] == pytest.approx(4.0, rel=2e-3)
    # and lies above the dose to 4 cc of the bronchus alone, judged before (6.61 Gy)
    bronchus_alone = _volumes_above(case, 6.610474)["Bronchus"]
    assert bronchus_alone == pytest.approx(4.0, rel=2e-3)
    assert d4["value"] > 6.61 + 0.5
    assert d4["status"] == "pass" and code == 1  # the sample's oesophagus deviation


def test_a_missing_part_leaves_the_union_to_what_is_contoured(tmp_path):
    _, findings = _findings(SAMPLES / "lung_5fx")
    (d4,) = [f for f in findings if f["metric"] == "D4cc[Gy]"]
    assert d4["roi"] == "Bronchus"
    assert "no 'Trachea' found: the union is judged on what is contoured" in d4["match"]
    assert d4["value"] == pytest.approx(_volumes_above_dose(SAMPLES / "lung_5fx"), rel=1e-9)


def _volumes_above_dose(case: Path) -> float:
    result = CliRunner().invoke(cli, ["dvh", str(case), "--format", "json", "--metric", "D4cc[Gy]"])
    (bronchus,) = [r for r in json.loads(result.output)["rois"] if r["roi"] == "Bronchus"]
    return bronchus["metrics"]["D4cc[Gy]"]


def _square(number: int, name: str, side: float = 10.0) -> Roi:
    ring = np.array([[0.0, 0.0], [side, 0.0], [side, side], [0.0, side]])
    planes = tuple(ContourPlane(2.5 * k, (PlanarPolygon(ring),), 1) for k in range(3))
    return Roi(number, name, "ORGAN", planes=planes)


def test_union_matching_and_file_errors(tmp_path):
    protocol = load_protocol("tg101")
    (organ,) = [o for o in protocol.organs if o.name == "Trachea"]
    assert organ.roi.plus == ("Bronchus",) and organ.roi.label == "Trachea + Bronchus"
    both = match_protocol(protocol, [_square(1, "Trachea"), _square(2, "ProxBronch")])
    m = both.organs["Trachea"]
    assert m.roi.name == "Trachea" and [p.roi.name for p in m.plus] == ["ProxBronch"]
    assert m.describe().endswith("plus 'ProxBronch'")
    alone = match_protocol(protocol, [_square(2, "ProxBronch")]).organs["Trachea"]
    assert (alone.spec_name, alone.roi.name, alone.plus) == ("Trachea", "ProxBronch", ())
    assert match_protocol(protocol, [_square(3, "Heart")]).organs["Trachea"].roi is None
    # a part matched twice: the union is not judged on the rest
    two = [_square(1, "Trachea"), _square(2, "ProxBronch"), _square(3, "BronchialTree", side=12.0)]
    tied = match_protocol(protocol, two).organs["Trachea"]
    assert tied.roi is None and tied.kind is MatchKind.AMBIGUOUS
    assert tied.describe().startswith("Bronchus: ambiguous, several ROIs match")
    # a trachea without contours is not replaced by the bronchus
    empty = match_protocol(protocol, [Roi(1, "Trachea", "ORGAN"), _square(2, "ProxBronch")])
    assert empty.organs["Trachea"].roi.name == "Trachea"
    text = (ROOT / "constraints" / "tg101.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("plus: [Bronchus]", "plus: [Bronchi]", 1))
    with pytest.raises(ConstraintFileError, match="unknown structure 'Bronchi' in 'plus'"):
        load_protocol(str(bad))


def test_protocols_show_names_the_union():
    result = CliRunner().invoke(cli, ["protocols", "show", "tg101"])
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  Trachea ("))
    assert lines[at + 1] == "    derived: Trachea + Bronchus"
