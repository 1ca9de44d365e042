"""Dose placement against the body outline (rtqa.protocol.dose_sanity): closed-form phantoms
(a Gaussian dose whose 50 % isodose is a sphere, cut by flat body faces: spherical caps) and a
sample case whose files were made inconsistent, through ``rtqa check``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from scipy import ndimage

from rtqa.cli import cli
from rtqa.dvh.quality import isodose_volume_cc
from rtqa.geometry import occupancy
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi, Status
from rtqa.protocol.dose_sanity import dose_placement, placement_finding

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"

H = 2.0  # grid spacing (mm); nodes at even mm, voxel edges at odd mm
R50 = 20.0  # radius (mm) of the 50 % isodose sphere
W = R50 / math.sqrt(2.0 * math.log(2.0))  # Gaussian width giving it
AXIS = np.arange(-100.0, 100.0 + H / 2, H)
ZS = np.arange(-30.0, 30.0 + H / 2, H)
SPHERE_CC = 4.0 / 3.0 * math.pi * R50**3 / 1000.0
# Trilinear interpolation of the Gaussian errs by at most (h^2 / 8) sum_i |d2D/dx_i^2| <=
# (h^2 / 8) * 3 * 0.5 / W^2 = 0.0026 (max 1) near the 50 % level, where the radial gradient is
# 0.5 R50 / W^2 = 0.035 per mm: the isodose radius is off by at most 0.075 mm, the sphere volume
# by 3 * 0.075 / 20 = 1.1 %, a cap of height c by 2 pi R50 c * 0.075 mm^3.
DR_MM = 0.075


def cap_cc(height: float) -> float:
    """Volume (cc) of a cap of ``height`` (mm) cut from the sphere of radius R50."""
    return math.pi * height**2 * (3.0 * R50 - height) / 3.0 / 1000.0


def blob(cx: float, cy: float = 0.0, r50: float = R50) -> DoseGrid:
    """Gaussian dose of maximum 40 Gy at the node (cx, cy, 0): its 50 % isodose is the sphere of
    radius ``r50`` (mm) there."""
    w = r50 / math.sqrt(2.0 * math.log(2.0))
    z, y, x = np.meshgrid(ZS, AXIS, AXIS, indexing="ij")
    r2 = (x - cx) ** 2 + (y - cy) ** 2 + z**2
    return DoseGrid(40.0 * np.exp(-r2 / (2.0 * w * w)), AXIS.copy(), AXIS.copy(), ZS.copy(), "F")


def body(ring: np.ndarray) -> Roi:
    """An outline of cross-section ``ring`` on planes 2 mm apart well beyond the dose grid."""
    zs = np.arange(-50.0, 50.0 + 1.0, 2.0)
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs)
    return Roi(1, "Body", "EXTERNAL", frame_of_reference_uid="F", planes=planes)


def rectangle(half_x: float, half_y: float) -> Roi:
    return body(
        np.array([[-half_x, -half_y], [half_x, -half_y], [half_x, half_y], [-half_x, half_y]])
    )


def circle(radius: float) -> Roi:
    t = np.linspace(0.0, 2.0 * np.pi, 256, endpoint=False)
    return body(radius * np.column_stack([np.cos(t), np.sin(t)]))


def test_centred_dose_lies_wholly_in_a_cylinder():
    dose = blob(0.0)
    p = dose_placement(dose, circle(80.0))
    assert p.max_gy == pytest.approx(40.0, rel=1e-12)  # the centre is a node
    assert p.level_gy == pytest.approx(20.0, rel=1e-12)
    assert p.high_cc == pytest.approx(SPHERE_CC, rel=3 * DR_MM / R50)
    assert p.outside_cc == pytest.approx(0.0, abs=1e-9)
    # the same as weighting the whole grid's isodose by the body occupancy
    weighted = isodose_volume_cc(dose, 20.0, occupancy(circle(80.0), dose))
    assert p.inside_cc == pytest.approx(weighted, rel=1e-6)
    assert p.max_mm == (0.0, 0.0, 0.0) and p.max_in_body
    f = placement_finding(dose, circle(80.0), "C1")
    assert f.status is Status.PASS and f.group == "integrity" and f.rule == "dose_placement"
    assert f.value == pytest.approx(0.0, abs=1e-9) and f.unit == "%"
    assert f.margin == pytest.approx(5.0, abs=1e-9)  # 5 % of ~33.5 cc exceeds 0.5 cc


def test_cut_region_equals_the_whole_grid():
    # the integration runs on the grid near the high dose; the whole grid gives the same volumes
    dose = blob(70.0)
    outline = rectangle(81.0, 61.0)
    p = dose_placement(dose, outline)
    assert p.level_gy == pytest.approx(20.0, rel=1e-12)
    assert p.high_cc == pytest.approx(isodose_volume_cc(dose, 20.0), rel=1e-12)
    inside = isodose_volume_cc(dose, 20.0, occupancy(outline, dose))
    assert p.inside_cc == pytest.approx(inside, rel=1e-12)


@pytest.mark.parametrize(
    ("cx", "cap_mm", "status"),
    [
        (70.0, 9.0, Status.NOT_EVALUABLE),  # shifted 9 mm too far: 12.9 % outside
        (64.0, 3.0, Status.PASS),  # superficial high dose: 1.6 % outside, within tolerance
    ],
)
def test_shifted_dose_leaves_the_body_by_a_spherical_cap(cx, cap_mm, status):
    # the body face x = 81 mm lies on voxel edges: each voxel is wholly in or out
    dose = blob(cx)
    outline = rectangle(81.0, 61.0)
    p = dose_placement(dose, outline)
    want_pct = 100.0 * cap_cc(cap_mm) / SPHERE_CC
    tol_cc = 2.0 * math.pi * R50 * cap_mm * DR_MM / 1000.0  # see DR_MM
    assert p.outside_cc == pytest.approx(cap_cc(cap_mm), abs=tol_cc)
    assert p.outside_pct == pytest.approx(want_pct, rel=tol_cc / cap_cc(cap_mm) + 3 * DR_MM / R50)
    assert p.max_mm == (cx, 0.0, 0.0) and p.max_in_body
    f = placement_finding(dose, outline, "C1")
    assert f.status is status
    assert f.value == pytest.approx(p.outside_pct, rel=1e-12)
    assert (f.margin > 0) is (status is Status.PASS)


def test_transposed_dose_is_not_evaluable():
    # an AP-thin body; the dose written with rows and columns exchanged moves the hot spot from
    # (40, 0) to (0, 40), 19 mm of its 50 % sphere beyond the face y = 41 mm: 46.3 % outside
    outline = rectangle(81.0, 41.0)
    right = blob(40.0)
    assert dose_placement(right, outline).outside_cc == pytest.approx(0.0, abs=1e-9)
    wrong = DoseGrid(right.dose_gy.swapaxes(1, 2).copy(), AXIS, AXIS, ZS, "F")
    p = dose_placement(wrong, outline)
    assert p.max_mm == (0.0, 40.0, 0.0) and p.max_in_body
    want_pct = 100.0 * cap_cc(19.0) / SPHERE_CC
    assert want_pct == pytest.approx(46.25, abs=0.01)
    tol_cc = 2.0 * math.pi * R50 * 19.0 * DR_MM / 1000.0  # see DR_MM
    assert p.outside_pct == pytest.approx(want_pct, rel=tol_cc / cap_cc(19.0) + 3 * DR_MM / R50)
    f = placement_finding(wrong, outline, "C1")
    assert f.status is Status.NOT_EVALUABLE
    assert "misplaced" in f.message and "transposed" in f.message
    assert "ImagePositionPatient" in f.message and f"{p.outside_pct:.3g} %" in f.message


def test_dose_wholly_outside_names_its_maximum_outside():
    outline = rectangle(40.0, 40.0)
    p = dose_placement(blob(70.0), outline)  # the 50 % sphere spans x 50..90 mm
    assert p.outside_pct == pytest.approx(100.0, abs=1e-9)
    assert not p.max_in_body and p.max_body_fraction == 0.0
    assert "lies OUTSIDE it" in placement_finding(blob(70.0), outline, None).message


def test_small_high_dose_volume_keeps_the_half_cc_floor():
    # a 0.9 cc high-dose sphere (radius 6 mm) with a 5 mm cap (0.34 cc, 37.6 %) beyond the face:
    # more than 5 % but under 0.5 cc, so it passes. Bound as for DR_MM with W = 5.1 mm:
    # radius within 0.25 mm, the cap within 2 pi * 6 * 5 * 0.25 mm^3 = 0.047 cc
    r50 = 6.0
    dose = blob(80.0, r50=r50)
    outline = rectangle(81.0, 61.0)
    p = dose_placement(dose, outline)
    want = math.pi * 5.0**2 * (3.0 * r50 - 5.0) / 3.0 / 1000.0
    assert p.outside_cc == pytest.approx(want, abs=0.047)
    assert p.tolerance_cc == 0.5
    assert placement_finding(dose, outline, "C1").status is Status.PASS


def test_no_body_outline_is_said_not_checked():
    f = placement_finding(blob(0.0), None, "C1")
    assert f.status is Status.INFO and "not checked" in f.message and f.value is None
    empty = Roi(2, "External", "EXTERNAL")
    g = placement_finding(blob(0.0), empty, "C1")
    assert g.status is Status.INFO and "'External' is empty" in g.message
    zero = DoseGrid(np.zeros((ZS.size, AXIS.size, AXIS.size)), AXIS, AXIS, ZS, "F")
    h = placement_finding(zero, circle(80.0), "C1")
    assert h.status is Status.INFO and "no positive maximum" in h.message


def test_a_body_occupancy_already_computed_is_used_as_is():
    dose = blob(70.0)
    outline = rectangle(81.0, 61.0)
    occ = occupancy(outline, dose)
    a = dose_placement(dose, outline, body_occupancy=occ)
    b = dose_placement(dose, outline)
    assert a == b
    # one of another grid is not: computed again on this one
    coarse = DoseGrid(dose.dose_gy[:, ::2, ::2], AXIS[::2], AXIS[::2], ZS, "F")
    other = occupancy(outline, coarse)
    assert dose_placement(dose, outline, body_occupancy=other) == b


# --------------------------------------------------------------- through rtqa check

SUB = 4  # reference sub-points per voxel side


def check_json(case: Path):
    res = CliRunner().invoke(cli, ["check", str(case), "--format", "json"], catch_exceptions=False)
    data = json.loads(res.stdout)
    (found,) = [f for f in data["findings"] if f["rule"] == "dose_placement"]
    return res.exit_code, data, found


def reference_pct(rd: pydicom.Dataset, a_mm: float, b_mm: float) -> float:
    """Share (%) of the dose >= 50 % of its maximum outside the elliptic cylinder x^2/a^2 +
    y^2/b^2 <= 1, by brute force: the RT Dose read with pydicom alone, the field interpolated
    trilinearly (edge-clamped, scipy) at SUB^3 points per voxel near that level."""
    d = rd.pixel_array * float(rd.DoseGridScaling)
    x0, y0, _ = (float(v) for v in rd.ImagePositionPatient)
    dy, dx = (float(v) for v in rd.PixelSpacing)
    level = 0.5 * d.max()
    k, j, i = np.nonzero(ndimage.maximum_filter(d, size=3, mode="nearest") >= level)
    t = (np.arange(SUB) + 0.5) / SUB - 0.5
    off = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = (np.column_stack([k, j, i])[:, None, :] + off[None]).reshape(-1, 3)
    hot = ndimage.map_coordinates(d, idx.T, order=1, mode="nearest") >= level
    x, y = x0 + idx[:, 2] * dx, y0 + idx[:, 1] * dy
    outside = (x / a_mm) ** 2 + (y / b_mm) ** 2 > 1.0
    return 100.0 * np.count_nonzero(hot & outside) / np.count_nonzero(hot)


def test_sample_dose_moved_out_of_the_body(tmp_path):
    # spine_3fx with the RT Dose's ImagePositionPatient moved 100 mm posterior (+y): the hot
    # spot at y = 20 mm goes to y = 120 mm, partly beyond the body (an elliptic cylinder of
    # semi-axes 160 x 110 mm in x, y over z -70..70 mm, rtqa.synthetic.cases; the dose spans
    # z -55..55 mm). The reference resolves the outline to a quarter voxel and the contour
    # polygon (64 vertices) departs from the ellipse by < 0.15 mm: within 0.5 % points
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rd = case / "RD.SPINE3FX.dcm"
    ds = pydicom.dcmread(rd)
    ipp = [float(v) for v in ds.ImagePositionPatient]
    ipp[1] += 100.0
    ds.ImagePositionPatient = ipp
    ds.save_as(rd)
    want_pct = reference_pct(ds, 160.0, 110.0)
    assert 50.0 < want_pct < 95.0  # a partial exit, not all or nothing

    code, data, found = check_json(case)
    assert found["status"] == "not_evaluable" and found["group"] == "integrity"
    assert found["value"] == pytest.approx(want_pct, abs=0.5)
    assert "misplaced" in found["message"] and "lies OUTSIDE it" in found["message"]
    # the structures left the moved grid too: measured as a minor grid-coverage deviation, not
    # judged since the dose is not where the structures are (the files disagree), so exit 4
    coverage = [f for f in data["findings"] if f["rule"] == "grid_coverage"]
    assert {f["status"] for f in coverage} == {"not_evaluable"}
    assert any("measured as minor" in f["message"] for f in coverage)
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_sample_body_outline_not_covering_the_dose_is_not_evaluable(tmp_path):
    # spine_3fx with its body outline shrunk 5 times about the axis (semi-axes 32 x 22 mm):
    # every other rule still passes; the dose check alone makes the course not evaluable
    # (exit 4), and every judgement drawn from the dose is withheld. Reference as above
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rs = case / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Body")
    roi = next(c for c in ds.ROIContourSequence if c.ReferencedROINumber == number)
    for contour in roi.ContourSequence:
        xyz = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        xyz[:, :2] *= 0.2
        contour.ContourData = [f"{v:.4f}" for v in xyz.ravel()]
    ds.save_as(rs)
    want_pct = reference_pct(pydicom.dcmread(case / "RD.SPINE3FX.dcm"), 32.0, 22.0)
    assert 10.0 < want_pct < 90.0

    code, data, found = check_json(case)
    assert found["status"] == "not_evaluable"
    assert found["value"] == pytest.approx(want_pct, abs=0.5)
    others = [f for f in data["findings"] if f["status"] not in ("pass", "info")]
    head = "not judged: the dose is not trusted (dose_placement of SPINE3FX not evaluable); "
    withheld = [f for f in others if f["message"].startswith(head)]
    assert [f for f in others if f not in withheld] == [found]
    # the sample's 5 organ and 2 coverage rules and its grid coverage, each measured as a pass
    assert sorted(f["group"] for f in withheld) == ["organ"] * 5 + ["plan"] + ["target"] * 2
    assert all(f["message"].startswith(head + "measured as pass") for f in withheld)
    assert code == 4 and data["verdict"] == "not_evaluable"
