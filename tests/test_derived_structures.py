"""Derived organs (``roi: {minus: [...]}``) judged by ``rtqa check``: the occupancy difference
against the additivity of volumes and dose integrals, and an unusable ROI as not evaluable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from rtqa.check import CheckOptions, exit_code, run_check
from rtqa.dicom.dose import read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dvh import structure_dvh
from rtqa.geometry import contour_volume_cc
from rtqa.model import Status

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "spine_3fx"
RING = """organs:
  - roi: {name: Ring, minus: [GTV]}
    title: "a structure minus the GTV"
    source: *tg101
    confidence: secondary
    limits:
      3:
        Mean[Gy]: "<= 100"
        V0Gy[cc]: ">= 0"
"""


@pytest.fixture
def protocol(tmp_path: Path) -> Path:
    """NRG-BR002 with one more organ: 'Ring', whatever it maps to, minus the GTV."""
    text = (ROOT / "constraints" / "nrg_br002.yaml").read_text()
    path = tmp_path / "ring.yaml"
    path.write_text(text.replace("organs:\n", RING, 1))
    return path


def ring_findings(case: Path, protocol: Path, base: str):
    result = run_check([str(case)], CheckOptions(protocol=str(protocol), mapping={"Ring": base}))
    return result[0].findings


def test_ptv_minus_gtv_is_the_difference_of_volumes_and_dose_integrals(protocol):
    found = {f.rule: f for f in ring_findings(SAMPLE, protocol, "PTV_30Gy")}
    assert found["Mean[Gy]"].roi == "PTV_30Gy - GTV"
    rois = {r.name: r for r in read_structure_set(SAMPLE / "RS.SPINE3FX.dcm").rois}
    dose = read_dose(SAMPLE / "RD.SPINE3FX.dcm")
    ptv, gtv = rois["PTV_30Gy"], rois["GTV"]
    # the GTV (r 11 mm) lies inside the PTV (r 16 mm): the ring's volume is the difference of
    # the two contour volumes, and its dose integral the difference of theirs
    ring_cc = contour_volume_cc(ptv) - contour_volume_cc(gtv)
    assert ring_cc == pytest.approx(15.4645, abs=1e-3)
    assert found["V0Gy[cc]"].value == pytest.approx(ring_cc, rel=1e-6)
    p, g = structure_dvh(ptv, dose).dvh, structure_dvh(gtv, dose).dvh
    integral = p.mean_gy * p.total_volume_cc - g.mean_gy * g.total_volume_cc
    # 0.25 %: the GTV is sampled as finely as the PTV inside the ring, finer on its own
    assert found["Mean[Gy]"].value == pytest.approx(integral / ring_cc, rel=2.5e-3)
    assert found["Mean[Gy]"].value < p.mean_gy  # the hotter core is gone


def test_derived_organ_on_a_one_plane_roi_is_not_evaluable(protocol, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(SAMPLE, case)
    rs = case / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Esophagus")
    item = next(i for i in ds.ROIContourSequence if i.ReferencedROINumber == number)
    item.ContourSequence = item.ContourSequence[:1]
    ds.save_as(rs)
    findings = ring_findings(case, protocol, "Esophagus")
    ring = [f for f in findings if f.match and "minus 'GTV'" in f.match]
    assert [(f.rule, f.status) for f in ring] == [("dvh", Status.NOT_EVALUABLE)]
    assert "single contour plane" in ring[0].message and ring[0].roi == "Esophagus"
    assert exit_code(findings) == 4
