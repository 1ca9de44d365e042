"""The one body-outline rule every check uses (:func:`rtqa.model.body_outline`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.model import ContourPlane, Roi, body_outline

ROOT = Path(__file__).resolve().parent.parent

PLANE = ContourPlane(0.0, (), 1)


def roi(number: int, name: str, kind: str, contoured: bool = True) -> Roi:
    return Roi(number, name, kind, planes=(PLANE,) if contoured else ())


@pytest.mark.parametrize(
    ("rois", "expected"),
    [
        # the one contoured EXTERNAL, whatever its name
        ([roi(1, "Skin", "EXTERNAL"), roi(2, "Body", "ORGAN")], 1),
        # an empty EXTERNAL does not count: the ROI named Outline does
        ([roi(1, "Patient", "EXTERNAL", contoured=False), roi(2, "OUTLINE ", "ORGAN")], 2),
        # two EXTERNALs: the one named Body
        ([roi(1, "Couch", "EXTERNAL"), roi(2, "body", "EXTERNAL")], 2),
        # two EXTERNALs, neither named: no guess
        ([roi(1, "Skin", "EXTERNAL"), roi(2, "Mask", "EXTERNAL")], None),
        # two ROIs named as a body outline and no EXTERNAL: no guess
        ([roi(1, "Body", "ORGAN"), roi(2, "External", "ORGAN")], None),
        ([roi(1, "PTV", "PTV")], None),
    ],
)
def test_body_outline(rois, expected):
    found = body_outline(rois)
    assert (found.number if found is not None else None) == expected


def test_a_body_outline_without_contours_is_said_never_an_internal_error(tmp_path):
    """lung_5fx with its Body's contours pointing at an undefined ROI: the Body is empty; the
    check still runs (exit 1, the sample's oesophagus deviation), the isodose volumes of the
    quality indices say why they span the whole grid, and placement is not checked."""
    case = tmp_path / "lung_5fx"
    shutil.copytree(ROOT / "sample_data" / "lung_5fx", case)
    (rs,) = case.glob("RS.*.dcm")
    ds = pydicom.dcmread(rs)
    assert ds.StructureSetROISequence[0].ROIName == "Body"
    ds.ROIContourSequence[0].ReferencedROINumber = 999
    ds.save_as(rs)
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "nrg_br002", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    findings = json.loads(result.output)["findings"]
    (ci,) = [f for f in findings if f["rule"] == "CI"]
    assert ci["match"].endswith(
        "body outline 'Body' has no volume (ROI 'Body' has no closed planar contour): isodose "
        "volumes over the whole dose grid"
    )
    (placement,) = [f for f in findings if f["rule"] == "dose_placement"]
    assert placement["status"] == "info" and "'Body' is empty" in placement["message"]
