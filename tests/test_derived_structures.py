"""Derived organs (``roi: {minus: [...]}``) judged by ``rtqa check``: the occupancy difference
against the additivity of volumes and dose integrals, and a derived organ on an ROI contoured on
one plane judged with the structure set's plane spacing as its thickness."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtqa.check import CheckOptions, run_check
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


def test_derived_organ_on_a_one_plane_roi_is_judged_with_the_plane_spacing(protocol, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(SAMPLE, case)
    rs = case / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Esophagus")
    item = next(i for i in ds.ROIContourSequence if i.ReferencedROINumber == number)
    item.ContourSequence = item.ContourSequence[:1]
    (contour,) = item.ContourSequence
    ds.save_as(rs)
    x, y = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)[:, :2].T
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace, mm^2
    z = float(contour.ContourData[2])
    findings = ring_findings(case, protocol, "Esophagus")
    ring = {f.rule: f for f in findings if f.match and "minus 'GTV'" in f.match}
    assert sorted(ring) == ["Mean[Gy]", "V0Gy[cc]"]
    assert all(f.status is Status.PASS and f.roi == "Esophagus - GTV" for f in ring.values())
    assert "contoured on one plane (z -50 mm): 2.5 mm thick by convention" in ring["Mean[Gy]"].match
    # the GTV (z -7.5 to 7.5 mm) is far from the one plane at z -50 mm: the ring is the
    # Esophagus's slab of one plane spacing (2.5 mm, the sample's), its mean that slab's
    assert z == -50.0
    assert ring["V0Gy[cc]"].value == pytest.approx(area * 2.5 / 1000, rel=1e-6)
    roi = read_structure_set(rs).roi("Esophagus")
    slab = structure_dvh(roi, read_dose(case / "RD.SPINE3FX.dcm"), spacing_mm=2.5).dvh
    assert ring["Mean[Gy]"].value == pytest.approx(slab.mean_gy, rel=1e-3)
    assert not [f for f in findings if f.rule == "dvh"]


def test_a_derived_organ_judged_after_its_base_leaves_the_base_dvh_and_curve(tmp_path):
    """'Ring' = PTV minus GTV, listed after every organ of the protocol: the PTV's own DVH,
    curve and volume check stay those of the whole PTV (the ring's were kept under the PTV's
    name as well, over them)."""
    text = (ROOT / "constraints" / "nrg_br002.yaml").read_text()
    path = tmp_path / "ring_last.yaml"
    ring = RING.replace("organs:\n", "")
    path.write_text(text.replace("plan_quality:\n", ring + "plan_quality:\n", 1))
    (result,) = run_check(
        [str(SAMPLE)],
        CheckOptions(protocol=str(path), mapping={"Ring": "PTV_30Gy"}, keep_context=True),
    )
    rois = {r.name: r for r in read_structure_set(SAMPLE / "RS.SPINE3FX.dcm").rois}
    whole = structure_dvh(rois["PTV_30Gy"], read_dose(SAMPLE / "RD.SPINE3FX.dcm")).dvh
    ctx = result.context
    assert ctx.dvhs["PTV_30Gy"].roi_name == "PTV_30Gy"
    assert ctx.dvhs["PTV_30Gy - GTV"].roi_name == "PTV_30Gy - GTV"
    assert ctx.dvhs["PTV_30Gy"].dvh.mean_gy == pytest.approx(whole.mean_gy, rel=1e-12)
    # the curve at the PTV's median reads 50 % of the PTV (the ring, its hot core gone, less)
    dose, pct = result.curves["PTV_30Gy"]
    median = whole.dose_at_volume_pct(50.0)
    assert np.interp(median, dose, pct) == pytest.approx(50.0, abs=0.5)
    ring_dose, ring_pct = result.curves["PTV_30Gy - GTV"]
    assert np.interp(median, ring_dose, ring_pct) < 45.0
    (vol,) = [f for f in result.findings if f.rule == "volume" and f.roi == "PTV_30Gy"]
    assert vol.value == pytest.approx(contour_volume_cc(rois["PTV_30Gy"]), rel=1e-9)
