"""An ROI contoured on a single plane (edge case S11: a cochlea or chiasm drawn on one CT slice)
is given the structure set's plane spacing as its thickness by ``rtqa check`` as by ``rtqa dvh``:
its organ, target, derived-structure and prior-radiation figures are judged on that slab, and
every finding on it names the convention. Without any plane spacing it stays not evaluable.

Expected values are closed-form (a dose linear in z over a slab of known bounds; shoelace areas
of the rings as written) or the DVH of the same ROI given the plane spacing explicitly."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from test_derived_structures import RING
from test_dicom_edge_catalogue import check_json, contours_of, copy_case, edit, roi_number

from rtqa.check import CheckOptions, run_check
from rtqa.dicom.common import make_uid
from rtqa.dicom.dose import read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.structures import rings_at, write_structure_set
from rtqa.dvh import structure_dvh
from rtqa.geometry import contour_volume_cc
from rtqa.geometry.slabs import slab_stack
from rtqa.model import DoseGrid, Roi, Status, StructureSet

ROOT = Path(__file__).resolve().parent.parent
#: Every sample contour plane lies on z = k x 2.5 mm (sample_data/README.md).
SAMPLE_SPACING = 2.5
CONVENTION = "2.5 mm thick by convention (the structure set's plane spacing)"


def shoelace_mm2(contour_data) -> float:
    x, y = np.asarray([float(v) for v in contour_data]).reshape(-1, 3)[:, :2].T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def keep_plane(path: Path, name: str, z: float) -> list:
    """Keep only the contours of ROI ``name`` on plane ``z``; the contours kept."""
    kept: list = []

    def change(ds):
        item = contours_of(ds, roi_number(ds, name))
        item.ContourSequence = [c for c in item.ContourSequence if float(c.ContourData[2]) == z]
        kept.extend(item.ContourSequence)

    edit(path, change)
    return kept


def set_roi_volume(path: Path, name: str, cc: float | None) -> None:
    """ROIVolume of ROI ``name``: ``cc`` (as a planning system giving the ROI one slice
    thickness states it), or removed."""

    def change(ds):
        item = next(i for i in ds.StructureSetROISequence if i.ROIName == name)
        if cc is None:
            del item.ROIVolume
        else:
            item.ROIVolume = f"{cc:.10g}"

    edit(path, change)


def by_rule(report: dict, roi: str, group: str) -> dict:
    return {f["rule"]: f for f in report["findings"] if f["roi"] == roi and f["group"] == group}


# --------------------------------------------------------------------------------------------
# rtqa check on the samples
# --------------------------------------------------------------------------------------------


def test_one_plane_esophagus_is_judged_on_a_slab_of_the_plane_spacing(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"
    (contour,) = keep_plane(rs, "Esophagus", 0.0)
    area = shoelace_mm2(contour.ContourData)
    assert area == pytest.approx(201.062, abs=1e-3)  # the sample's ring at z 0 (64 points)
    volume_cc = area * SAMPLE_SPACING / 1000
    set_roi_volume(rs, "Esophagus", volume_cc)
    code, report = check_json(folder, "--protocol", "tg101")

    roi = read_structure_set(rs).roi("Esophagus")
    assert roi.single_plane_thickness_mm == SAMPLE_SPACING
    slab = structure_dvh(roi, read_dose(folder / "RD.SPINE3FX.dcm"), spacing_mm=SAMPLE_SPACING)
    organ = by_rule(report, "Esophagus", "organ")
    assert sorted(organ) == ["D0.035cc[Gy]", "D5cc[Gy]"]  # no 'dvh' finding: it has a DVH
    point = organ["D0.035cc[Gy]"]
    assert point["status"] == "pass"
    assert point["value"] == pytest.approx(slab.dvh.dose_at_volume_cc(0.035), rel=1e-9)
    # 5 cc of a 0.5 cc structure: not evaluable for that reason, with the convention's volume
    assert organ["D5cc[Gy]"]["status"] == "not_evaluable"
    assert organ["D5cc[Gy]"]["message"] == (f"D5cc asks for 5 cc of a {volume_cc:.4g} cc structure")
    match = (
        "Esophagus -> 'Esophagus' (exact TG-263 name); contoured on one plane (z 0 mm): "
        + CONVENTION
    )
    assert {f["match"] for f in organ.values()} == {match}
    volume = by_rule(report, "Esophagus", "integrity")["volume"]
    assert volume["status"] == "pass"
    assert volume["value"] == pytest.approx(volume_cc, rel=1e-9)
    assert volume["message"].endswith("; contoured on one plane (z 0 mm): " + CONVENTION)
    # the verdict's exit code: only the 5 cc figure is not evaluable
    not_evaluable = [f for f in report["findings"] if f["status"] == "not_evaluable"]
    assert [(f["roi"], f["rule"]) for f in not_evaluable] == [("Esophagus", "D5cc[Gy]")]
    assert code == report["exit_code"] == 4


def test_one_slice_cochlea_passes_tg101(tmp_path):
    """A left cochlea drawn on one CT slice (a 3 mm circle, 0.07 cc with the 2.5 mm spacing):
    its TG-101 point maximum is judged and the plan passes (exit 0), where it used to be not
    evaluable (exit 4)."""
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"
    t = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    ring = np.column_stack([14 + 3 * np.cos(t), -14 + 3 * np.sin(t), np.full(t.size, 2.5)])
    written = [f"{v:.6f}" for v in ring.ravel()]

    def cochlea(ds):
        number = roi_number(ds, "Esophagus")
        next(
            i for i in ds.StructureSetROISequence if int(i.ROINumber) == number
        ).ROIName = "Cochlea_L"
        item = contours_of(ds, number)
        item.ContourSequence = item.ContourSequence[:1]
        item.ContourSequence[0].ContourData = written
        item.ContourSequence[0].NumberOfContourPoints = t.size

    edit(rs, cochlea)
    set_roi_volume(rs, "Cochlea_L", None)
    code, report = check_json(folder, "--protocol", "tg101")
    roi = read_structure_set(rs).roi("Cochlea_L")
    area = shoelace_mm2(written)
    slab = structure_dvh(roi, read_dose(folder / "RD.SPINE3FX.dcm"), spacing_mm=SAMPLE_SPACING)
    assert slab.volume_cc == pytest.approx(area * SAMPLE_SPACING / 1000, rel=1e-9)
    (finding,) = by_rule(report, "Cochlea_L", "organ").values()
    assert finding["rule"] == "D0.035cc[Gy]" and finding["status"] == "pass"
    assert finding["value"] == pytest.approx(slab.dvh.dose_at_volume_cc(0.035), rel=1e-9)
    assert finding["match"].endswith("contoured on one plane (z 2.5 mm): " + CONVENTION)
    assert report["verdict"] == "pass" and code == report["exit_code"] == 0


def test_one_plane_target_is_judged_and_its_findings_name_the_convention(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"
    keep_plane(rs, "PTV_30Gy", 0.0)
    _, report = check_json(folder, "--protocol", "nrg_br002")
    target = by_rule(report, "PTV_30Gy", "target")
    assert sorted(target) == ["V100%[%]", "V90%[%]"]
    # the PTV's slab z 0 +/- 1.25 mm lies wholly inside the prescription isodose
    assert all(f["status"] == "pass" for f in target.values())
    assert target["V100%[%]"]["value"] == pytest.approx(100.0, abs=1e-6)
    for f in target.values():
        assert f["match"].startswith(
            "interpreted type PTV; contoured on one plane (z 0 mm): " + CONVENTION + "; Rx 30 Gy"
        )


def test_without_any_plane_spacing_a_one_plane_roi_stays_not_evaluable(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"

    def one_plane_each(ds):
        for item in ds.ROIContourSequence:
            item.ContourSequence = [
                c for c in item.ContourSequence if float(c.ContourData[2]) == 0.0
            ]

    edit(rs, one_plane_each)
    assert all(r.single_plane_thickness_mm is None for r in read_structure_set(rs).rois)
    code, report = check_json(folder, "--protocol", "tg101")
    dvh = {f["roi"]: f for f in report["findings"] if f["rule"] == "dvh"}
    assert sorted(dvh) == ["Esophagus", "PTV_30Gy", "SpinalCord"]
    assert dvh["Esophagus"]["status"] == "not_evaluable"
    assert dvh["Esophagus"]["message"] == (
        "no DVH for 'Esophagus': ROI 'Esophagus' has a single contour plane: its thickness is "
        "unknown (give the plane spacing or an end cap)"
    )
    assert dvh["Esophagus"]["match"] == "Esophagus -> 'Esophagus' (exact TG-263 name)"
    assert code == report["exit_code"] == 4


def test_a_one_plane_roi_subtracted_takes_out_its_slab(tmp_path):
    """'PTV_30Gy - GTV' with the GTV on its middle plane only: the ring is the PTV less the
    GTV's slab of one plane spacing (the PTV's own slab at that plane, which holds it)."""
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"
    (contour,) = keep_plane(rs, "GTV", 0.0)
    protocol = tmp_path / "ring.yaml"
    text = (ROOT / "constraints" / "nrg_br002.yaml").read_text()
    protocol.write_text(text.replace("organs:\n", RING, 1))
    (result,) = run_check(
        [str(folder)], CheckOptions(protocol=str(protocol), mapping={"Ring": "PTV_30Gy"})
    )
    ring = {f.rule: f for f in result.findings if f.roi == "PTV_30Gy - GTV"}
    assert sorted(ring) == ["Mean[Gy]", "V0Gy[cc]"]
    ptv = read_structure_set(rs).roi("PTV_30Gy")
    gtv_cc = shoelace_mm2(contour.ContourData) * SAMPLE_SPACING / 1000
    assert ring["V0Gy[cc]"].status is Status.PASS
    assert ring["V0Gy[cc]"].value == pytest.approx(contour_volume_cc(ptv) - gtv_cc, rel=1e-6)
    assert "minus 'GTV'; 'GTV' contoured on one plane (z 0 mm): " + CONVENTION in (
        ring["Mean[Gy]"].match
    )


def test_prior_radiation_rules_judge_a_one_plane_cord(tmp_path):
    """spine_prior (30 Gy/3 now) with the current cord on one plane: its maximum EQD2 (alpha/beta
    2 Gy) is that of the cord's slab, D x (D / 3 + 2) / 4 for the slab's maximum D."""
    folder = copy_case(tmp_path, "spine_prior")
    rs = folder / "RS.SPINEPRIOR.dcm"
    keep_plane(rs, "SpinalCord", 0.0)
    _, report = check_json(folder, "--protocol", "boss")
    roi = read_structure_set(rs).roi("SpinalCord")
    peak = structure_dvh(
        roi, read_dose(folder / "RD.SPINEPRIOR.dcm"), spacing_mm=SAMPLE_SPACING
    ).dvh.max_gy
    prior = by_rule(report, "SpinalCord", "prior")
    assert prior["course_eqd2"]["status"] == "pass"
    assert prior["course_eqd2"]["value"] == pytest.approx(peak * (peak / 3 + 2) / 4, rel=1e-5)
    message = prior["course_eqd2"]["message"]
    assert "'SpinalCord' contoured on one plane (z 0 mm): " + CONVENTION in message


# --------------------------------------------------------------------------------------------
# The slab model of a one-plane ROI read from a structure set
# --------------------------------------------------------------------------------------------

FRAME = make_uid("single-plane-frame")


def square(half: float) -> np.ndarray:
    return np.array([(-half, -half), (half, -half), (half, half), (-half, half)])


@pytest.fixture
def read(tmp_path) -> StructureSet:
    """ROI 1 on planes 3 mm apart (z 0, 3, 6, 9): the plane spacing, 3 mm. ROI 2: a 20 mm
    square on z 4.5 mm only (400 mm^2)."""
    rings = {
        1: [r for z in (0.0, 3.0, 6.0, 9.0) for r in rings_at("CLOSED_PLANAR", z, square(5))],
        2: rings_at("CLOSED_PLANAR", 4.5, square(10)),
    }
    ss = StructureSet(
        "", make_uid("single-plane-ss"), "ONE", FRAME, (Roi(1, "Stack"), Roi(2, "Flat"))
    )
    header = Header("RTQA-ONE", "One^Plane", make_uid("single-plane-study"), datetime(2024, 5, 1))
    path = write_structure_set(
        ss, tmp_path / "RS.one.dcm", header, series_instance_uid=make_uid("single-plane-series"),
        referenced_frame_uid=FRAME, referenced_series_uid=make_uid("single-plane-ct"),
        raw_contours=rings,
    )  # fmt: skip
    return read_structure_set(str(path))


def linear_z(a: float, b: float) -> DoseGrid:
    """Dose a + b z (Gy, z mm) on a 2.5 mm lattice: trilinear interpolation of it is exact."""
    ax = np.arange(-50.0, 50.0 + 1e-9, 2.5)
    z, _, _ = np.meshgrid(ax, ax, ax, indexing="ij")
    return DoseGrid(a + b * z, ax, ax.copy(), ax.copy(), FRAME)


def test_a_one_plane_roi_gets_the_plane_spacing_and_a_closed_form_dvh(read):
    flat, stack = read.roi("Flat"), read.roi("Stack")
    assert flat.single_plane_thickness_mm == 3.0 and stack.single_plane_thickness_mm is None
    slabs = slab_stack(flat)
    assert slabs.lo_mm.tolist() == [3.0] and slabs.hi_mm.tolist() == [6.0]
    # the multi-plane ROI keeps its own steps: caps of half a step, 12 mm in all
    assert contour_volume_cc(stack) == pytest.approx(100 * 12 / 1000, rel=1e-12)
    sd = structure_dvh(flat, linear_z(20.0, 1.0))
    assert sd.volume_cc == pytest.approx(400 * 3 / 1000, rel=1e-12)
    # dose uniform over z in [3, 6]: mean 24.5 Gy, the hottest p of the volume above 26 - 3p
    assert sd.dvh.mean_gy == pytest.approx(24.5, rel=1e-3)
    assert sd.dvh.dose_at_volume_pct(5) == pytest.approx(26.0 - 3 * 0.05, abs=0.05)
    assert sd.dvh.dose_at_volume_pct(95) == pytest.approx(26.0 - 3 * 0.95, abs=0.05)


def test_a_spacing_or_end_cap_given_overrides_the_roi_thickness(read):
    flat = read.roi("Flat")
    dose = linear_z(20.0, 1.0)
    sd = structure_dvh(flat, dose, spacing_mm=5.0)  # slab z 2 to 7
    assert sd.volume_cc == pytest.approx(400 * 5 / 1000, rel=1e-12)
    assert sd.dvh.dose_at_volume_pct(95) == pytest.approx(27.0 - 5 * 0.95, abs=0.05)
    capped = slab_stack(flat, end_cap_mm=0.5)
    assert capped.lo_mm.tolist() == [4.0] and capped.hi_mm.tolist() == [5.0]
    assert contour_volume_cc(flat, end_cap_mm=0.5) == pytest.approx(0.4, rel=1e-12)
