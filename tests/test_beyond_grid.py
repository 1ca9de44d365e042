"""Organs reaching beyond the dose grid: the dose there bounded by the dose on the grid faces
they cross, and limits judged over the whole range 0 Gy .. bound.

Phantoms: cylinders of radius 20 mm (96-gon, area ``A``) with contours every 2.5 mm, on a
2.5 mm dose grid with nodes -50..50 mm on every axis (its extent, voxel edges, -51.25..51.25
mm), doses in closed form at the nodes.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import shapely
from click.testing import CliRunner
from test_evaluate import limit

from rtqa.cli import cli
from rtqa.dvh import structure_dvh
from rtqa.dvh.beyond_grid import beyond_grid_max_gy
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi, Status
from rtqa.protocol.judging import judge_limit

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
AX = np.arange(-50.0, 50.0 + 1e-9, 2.5)


def ngon(cx: float, cy: float, r: float = 20.0, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


AREA_MM2 = shapely.Polygon(ngon(0.0, 0.0)).area


def cylinder(z_lo: float, z_hi: float, cx: float = 0.0, name: str = "Organ") -> Roi:
    zs = np.arange(z_lo, z_hi + 1e-9, 2.5)
    return Roi(
        3,
        name,
        planes=tuple(ContourPlane(float(z), (PlanarPolygon(ngon(cx, 0.0)),), 1) for z in zs),
    )


def grid(f) -> DoseGrid:
    z, y, x = np.meshgrid(AX, AX, AX, indexing="ij")
    return DoseGrid(f(x, y, z), AX, AX.copy(), AX.copy(), None)


def judge(lim, dvh):
    return judge_limit(lim, dvh, group="organ", roi="Organ", match="exact", case_id="C")


def test_bound_is_the_highest_dose_on_the_faces_crossed():
    # dose 10 + 0.1 x + 0.01 y + 0.02 z: highest on the -x face (x = -50) 10 - 5 + 0.5 + 1 = 6.5,
    # on the +z face (z = 50) 10 + 5 + 0.5 + 1 = 16.5 Gy
    dose = grid(lambda x, y, z: 10 + 0.1 * x + 0.01 * y + 0.02 * z)
    lateral = structure_dvh(cylinder(-20.0, 20.0, cx=-45.0), dose)  # out through -x only
    upward = structure_dvh(cylinder(0.0, 80.0), dose)  # out through +z only
    inside = structure_dvh(cylinder(-20.0, 20.0), dose)
    assert lateral.dvh.beyond_grid_max_gy == pytest.approx(6.5, abs=1e-9)
    assert upward.dvh.beyond_grid_max_gy == pytest.approx(16.5, abs=1e-9)
    assert inside.dvh.beyond_grid_max_gy is None and inside.dvh.unknown_volume_cc == 0.0
    assert "at most 16.5 Gy" in upward.notes[0].message
    # an occupancy without a slab model (a set operation on occupancies): no bound, judged on
    # the known part
    occ = upward.occupancy
    assert occ is not None
    occ.slabs = None
    assert beyond_grid_max_gy(occ, dose) is None


def test_critical_volume_counts_the_part_beyond_the_grid_below_the_dose():
    # dose 10 - 0.1 |z|: 5 Gy on both z faces. The cylinder spans z -81.25..81.25 mm (end caps
    # of half a step): 102.5 mm of it lies below 7 Gy (|z| > 30), 42.5 mm of that inside the
    # grid. The 60 mm beyond the grid receive at most 5 Gy < 7 Gy, so CV7Gy is A * 102.5 mm
    # whatever their dose, not the A * 42.5 mm of the known part (which read as a major
    # deviation of a >= 100 cc rule before)
    dose = grid(lambda x, y, z: 10 - 0.1 * np.abs(z))
    sd = structure_dvh(cylinder(-80.0, 80.0), dose)
    assert sd.dvh.beyond_grid_max_gy == pytest.approx(5.0, abs=1e-9)
    assert sd.dvh.cold_volume_cc(7.0) == pytest.approx(AREA_MM2 * 42.5 / 1000, rel=2e-3)
    f = judge(limit("CV7Gy[cc]", limit=">= 100"), sd.dvh)
    assert f.status is Status.PASS
    assert f.value == pytest.approx(AREA_MM2 * 102.5 / 1000, rel=2e-3)
    assert "CV7Gy[cc] is 128.7 either way" in f.message


@pytest.fixture(scope="module")
def hot_face():
    # dose 3 + 0.1 x - 0.02 |z|: the cylinder (x within 20 mm of 0) is hottest at x = 20, z = 0
    # (5 Gy); the z faces reach 3 + 5 - 1 = 7 Gy at x = 50
    dose = grid(lambda x, y, z: 3 + 0.1 * x - 0.02 * np.abs(z))
    return structure_dvh(cylinder(-80.0, 80.0), dose).dvh


def test_maximum_below_the_limit_on_the_grid_but_not_beyond_is_not_evaluable(hot_face):
    assert hot_face.beyond_grid_max_gy == pytest.approx(7.0, abs=1e-9)
    known = hot_face.dose_at_volume_cc(0.035)
    assert 4.8 < known < 5.0  # within the limit on the grid: a pass before
    f = judge(limit("D0.035cc[Gy]", limit="<= 6"), hot_face)
    assert f.status is Status.NOT_EVALUABLE and f.value is None
    assert f"lies between {known:.4g} and 7" in f.message
    assert "per protocol at one end only" in f.message


def test_limit_above_the_face_dose_passes_on_the_worst_case(hot_face):
    f = judge(limit("D0.035cc[Gy]", limit="<= 8"), hot_face)
    assert f.status is Status.PASS
    assert f.value == pytest.approx(7.0, abs=1e-9) and f.margin == pytest.approx(1.0, abs=1e-9)


def test_two_deviations_give_the_certain_one_and_name_the_other(hot_face):
    known = hot_face.dose_at_volume_cc(0.035)
    f = judge(limit("D0.035cc[Gy]", per_protocol="<= 4", acceptable="<= 6"), hot_face)
    assert f.status is Status.MINOR and f.value == pytest.approx(known)
    assert f.message.endswith("major at the other end")


def _cropped_spine(tmp_path, half_mm: float) -> tuple[Path, float]:
    """spine_3fx with its RT Dose cut to the frames |z| <= ``half_mm``, and the highest dose
    (Gy) on the cut faces, read from the frames independently of rtqa."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    path = case / "RD.SPINE3FX.dcm"
    ds = pydicom.dcmread(path)
    ds.decompress()
    z = float(ds.ImagePositionPatient[2]) + np.array([float(v) for v in ds.GridFrameOffsetVector])
    keep = np.nonzero(np.abs(z) <= half_mm)[0]
    pixels = ds.pixel_array[keep]
    face_gy = max(pixels[0].max(), pixels[-1].max()) * float(ds.DoseGridScaling)
    ds.PixelData = pixels.tobytes()
    ds.NumberOfFrames = keep.size
    ds.ImagePositionPatient = [*(float(v) for v in ds.ImagePositionPatient[:2]), float(z[keep[0]])]
    ds.GridFrameOffsetVector = [float(v) for v in z[keep] - z[keep[0]]]
    ds.save_as(path)
    return case, float(face_gy)


def test_sample_grid_cropped_through_the_target_withholds_the_cord_limits(tmp_path):
    # spine_3fx with its RT Dose cut to the frames |z| <= 15 mm: the cord and oesophagus
    # (z -40..40 mm) leave the grid where it cuts through the 30 Gy region. Their limits passed
    # on the part inside before; now the dose beyond (up to the faces' highest, read here from
    # the cut frames independently of rtqa) keeps them from a verdict
    case, face_gy = _cropped_spine(tmp_path, 15.0)
    result = CliRunner().invoke(cli, ["check", str(case), "--format", "json"])
    data = json.loads(result.stdout)
    cord = [f for f in data["findings"] if f["roi"] == "SpinalCord" and f["metric"].startswith("D")]
    assert len(cord) == 3 and {f["status"] for f in cord} == {"not_evaluable"}
    assert all(f"to {face_gy:.3g} Gy (the most on the grid faces" in f["message"] for f in cord)
    assert face_gy > 21.9  # above the cord's point limit: no verdict can rest on the part inside
    assert result.exit_code == 1  # the minor grid-coverage deviation stands


def test_dvh_command_gives_a_range_not_a_value_where_the_part_beyond_could_move_it(tmp_path):
    # the same cut at |z| <= 25 mm: the faces carry at most ~10 Gy. The cord's hottest 0.03 cc
    # (15 Gy, inside the grid) is above anything beyond: one value. Its median is not: half the
    # cord lies beyond, at 0 Gy to the face dose, and the value read on the part inside with the
    # rest taken as cold (what was printed before) is only the lower end
    case, face_gy = _cropped_spine(tmp_path, 25.0)
    metrics = ["D0.03cc[Gy]", "D50%[Gy]"]
    args = ["dvh", str(case), "--format", "json", *(a for m in metrics for a in ("--metric", m))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (cord,) = [r for r in data["rois"] if r["roi"] == "SpinalCord"]
    assert cord["metrics"]["D0.03cc[Gy]"] > face_gy + 5.0
    assert cord["metrics"]["D50%[Gy]"] is None
    (why,) = [w for w in data["warnings"] if w.startswith("ROI 'SpinalCord': D50%[Gy]")]
    low, high = (float(v) for v in why.split("between ")[1].split(", as")[0].split(" and "))
    assert low < high <= face_gy + 1e-6
    assert f"from 0 Gy to {face_gy:.4g} Gy" in why
    (gtv,) = [r for r in data["rois"] if r["roi"] == "GTV"]  # inside the grid: a value
    assert gtv["metrics"]["D50%[Gy]"] > 30.0


def test_eqd2_sum_bounds_the_part_beyond_by_each_plans_faces():
    # two plans (3 and 5 fractions) on one grid, each 5 Gy on its z faces at most
    # (10 - 0.1 |z|) and 2 Gy (4 - 0.04 |z|): the part beyond is at most
    # EQD2(5 Gy / 3 fx) + EQD2(2 Gy / 5 fx) at alpha/beta 2 Gy
    from rtqa.geometry.sampling import occupancy
    from rtqa.protocol.course_dose import eqd2_dvh

    first = grid(lambda x, y, z: 10 - 0.1 * np.abs(z))
    second = 0.4 * first.dose_gy
    occ = occupancy(cylinder(-80.0, 80.0), first)
    dvh = eqd2_dvh(occ, first, [first.dose_gy, second], [3, 5], 2.0)
    want = 5.0 * (5.0 / 3 + 2.0) / 4.0 + 2.0 * (2.0 / 5 + 2.0) / 4.0
    assert dvh.beyond_grid_max_gy == pytest.approx(want, abs=1e-9)
    assert dvh.unknown_volume_cc == pytest.approx(AREA_MM2 * 60.0 / 1000, rel=1e-9)


def test_derived_structure_takes_the_bound_of_the_faces_it_crosses():
    # organ minus a target inside the grid: the derived structure crosses the organ's z faces,
    # at most 5 Gy; its V6Gy[cc] (upper limit) is the same at 0 Gy and 5 Gy beyond: judged
    from rtqa.protocol.structure_dvhs import derived_dvh

    dose = grid(lambda x, y, z: 10 - 0.1 * np.abs(z))
    sd = derived_dvh(cylinder(-80.0, 80.0), dose, (cylinder(-10.0, 10.0, name="GTV"),))
    assert sd.roi_name == "Organ - GTV"
    assert sd.dvh.beyond_grid_max_gy == pytest.approx(5.0, abs=1e-9)
    assert "at most 5 Gy" in sd.notes[0].message
    # >= 6 Gy: |z| <= 40 less the target's |z| <= 11.25 (end caps), all inside the grid
    f = judge(limit("V6Gy[cc]", limit="<= 100"), sd.dvh)
    assert f.status is Status.PASS
    assert f.value == pytest.approx(AREA_MM2 * (80.0 - 22.5) / 1000, rel=2e-3)
    assert f"V6Gy[cc] is {f.value:.4g} either way" in f.message
