"""The benchmark's exact-truth DVH (benchmarks/exact_dvh.py) against hand-derived answers."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from shapely.geometry import Polygon, box

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "exact_dvh.py"
_spec = importlib.util.spec_from_file_location("bench_exact_dvh", _PATH)
assert _spec is not None and _spec.loader is not None
ex = importlib.util.module_from_spec(_spec)
sys.modules["bench_exact_dvh"] = ex
_spec.loader.exec_module(ex)


def _planes(zs, shape):
    return [(float(z), shape) for z in zs]


def test_prism_along_z_in_z_linear_dose():
    # 10 x 10 mm square on planes z = 0..10 (1 mm): slabs span -0.5..10.5 mm, 11 mm long.
    dose = ex.LinearDose(axis=2, offset_gy=2.0, gradient_gy_per_mm=1.0)  # D = 2 + z
    dvh = ex.ExactDvh(ex.slab_stack(_planes(range(11), box(0, 0, 10, 10))), dose)
    assert dvh.total_volume_cc == pytest.approx(1.1, abs=1e-12)
    assert dvh.min_gy == pytest.approx(1.5)
    assert dvh.max_gy == pytest.approx(12.5)
    assert dvh.mean_gy == pytest.approx(7.0)
    assert dvh.dose_at_volume_pct(50) == pytest.approx(7.0, abs=1e-8)  # mid dose
    # hottest 95 %: 10.45 mm from the top, z >= 0.05 -> 2.05 Gy
    assert dvh.dose_at_volume_pct(95) == pytest.approx(2.05, abs=1e-8)
    # 0.03 cc = 30 mm^3 = 100 mm^2 x 0.3 mm -> z >= 10.2 -> 12.2 Gy
    assert dvh.dose_at_volume_cc(0.03) == pytest.approx(12.2, abs=1e-8)
    assert dvh.volume_at_dose_cc(7.0) == pytest.approx(0.55, abs=1e-12)


def test_cylinder_along_z_d50_is_mid_dose_falling_gradient():
    n = 720
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = Polygon(np.c_[12 * np.cos(t), 12 * np.sin(t)])
    area = n / 2 * 12**2 * math.sin(2 * math.pi / n)
    dose = ex.LinearDose(axis=2, offset_gy=30.0, gradient_gy_per_mm=-1.0)  # D = 30 - z
    dvh = ex.ExactDvh(ex.slab_stack(_planes(np.arange(-6, 19, 3.0), circle)), dose)
    assert dvh.total_volume_cc == pytest.approx(area * 27 / 1000, rel=1e-12)  # -7.5..19.5
    assert dvh.dose_at_volume_pct(50) == pytest.approx(30 - 6.0, abs=1e-8)
    # falling dose: the hottest 1 % is the bottom 0.27 mm
    assert dvh.dose_at_volume_pct(1) == pytest.approx(30 - (-7.5 + 0.27), abs=1e-8)
    assert dvh.max_gy == pytest.approx(37.5)
    assert dvh.min_gy == pytest.approx(10.5)


def test_box_in_y_linear_dose():
    # x 0..10, y 0..20 on z = 0, 2, 4: slabs -1..5, 6 mm thick; D = 30 - y/2
    dose = ex.LinearDose(axis=1, offset_gy=30.0, gradient_gy_per_mm=-0.5)
    dvh = ex.ExactDvh(ex.slab_stack(_planes([0, 2, 4], box(0, 0, 10, 20))), dose)
    assert dvh.total_volume_cc == pytest.approx(1.2)
    assert dvh.mean_gy == pytest.approx(25.0)
    assert (dvh.min_gy, dvh.max_gy) == pytest.approx((20.0, 30.0))
    assert dvh.dose_at_volume_pct(95) == pytest.approx(30 - 0.5 * 19, abs=1e-8)
    assert dvh.dose_at_volume_pct(5) == pytest.approx(30 - 0.5 * 1, abs=1e-8)
    # 30 mm^3 = 60 mm^2 per mm of y -> y <= 0.5
    assert dvh.dose_at_volume_cc(0.03) == pytest.approx(29.75, abs=1e-8)


def test_triangle_clip_is_quadratic_in_dose():
    # right triangle (0,0) (10,0) (0,10), one plane with a 1 mm end cap each side: t = 2 mm
    tri = Polygon([(0, 0), (10, 0), (0, 10)])
    dose = ex.LinearDose(axis=1, offset_gy=0.0, gradient_gy_per_mm=1.0)  # D = y
    dvh = ex.ExactDvh(ex.slab_stack([(0.0, tri)], end_cap_mm=1.0), dose)
    assert dvh.total_volume_cc == pytest.approx(0.1)
    assert dvh.mean_gy == pytest.approx(10 / 3)
    # V(d) = (10 - d)^2 / 2 * 2 mm^3
    assert dvh.volume_at_dose_cc(4.0) == pytest.approx(36 / 1000)
    assert dvh.dose_at_volume_pct(50) == pytest.approx(10 - math.sqrt(50), abs=1e-8)


def test_even_odd_hole_and_x_gradient():
    rings = [
        np.array([[0, 0], [20, 0], [20, 20], [0, 20]], float),
        np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float),
    ]
    shape = ex.even_odd(rings)
    assert shape.area == pytest.approx(300.0)
    dose = ex.LinearDose(axis=0, offset_gy=0.0, gradient_gy_per_mm=1.0)  # D = x
    dvh = ex.ExactDvh(ex.slab_stack(_planes([0, 1], shape)), dose)  # 2 mm thick
    assert dvh.total_volume_cc == pytest.approx(0.6)
    assert dvh.mean_gy == pytest.approx(10.0)
    # volume above x = 15: 5 mm strip x 20 mm x 2 mm = 200 mm^3
    assert dvh.volume_at_dose_cc(15.0) == pytest.approx(0.2)
    # above x = 10: 5 x 20 + 5 x 10 = 150 mm^2 -> 300 mm^3
    assert dvh.volume_at_dose_cc(10.0) == pytest.approx(0.3)


def test_uneven_spacing_and_end_caps():
    sq = box(0, 0, 10, 10)  # 100 mm^2
    default = ex.slab_stack(_planes([0, 1, 3], sq))
    assert [(s.z_lo, s.z_hi) for s in default] == [(-0.5, 0.5), (0.5, 2.0), (2.0, 4.0)]
    capped = ex.slab_stack(_planes([0, 1, 3], sq), end_cap_mm=0.0)
    dose = ex.LinearDose(axis=2, offset_gy=0.0, gradient_gy_per_mm=1.0)
    assert ex.ExactDvh(capped, dose).total_volume_cc == pytest.approx(0.3)
    assert ex.ExactDvh(default, dose).total_volume_cc == pytest.approx(0.45)
    with pytest.raises(ValueError, match="explicit end_cap_mm"):
        ex.slab_stack([(0.0, sq)])


def test_fit_linear_dose_finds_ramp_and_its_range():
    x = np.arange(-5.0, 6.0)
    y = np.arange(-30.0, 15.0)
    z = np.arange(0.0, 4.0)
    ramp = np.clip(10.0 - y, 0.0, 36.0)  # 36 Gy at y <= -26, 0 from y >= 10
    dose = np.broadcast_to(ramp[None, :, None], (z.size, y.size, x.size))
    fit = ex.fit_linear_dose(dose, x, y, z)
    assert fit.axis == 1
    assert fit.gradient_gy_per_mm == pytest.approx(-1.0)
    assert fit.offset_gy == pytest.approx(10.0)
    assert fit.valid_mm == (-26.0, 10.0)
    # a box reaching y = -28 lies partly where the dose is clipped: refused
    with pytest.raises(ValueError, match="linear only"):
        ex.ExactDvh(ex.slab_stack(_planes([0, 1], box(0, -28, 1, 0))), fit)
    bumpy = dose.copy()
    bumpy[0, 0, 0] += 1.0
    with pytest.raises(ValueError, match="more than one axis"):
        ex.fit_linear_dose(bumpy, x, y, z)


def test_read_planes_from_a_structure_set(tmp_path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    item = Dataset()
    item.ReferencedROINumber = 3
    contours = []
    for z, ring in [
        (0.0, [0, 0, 20, 0, 20, 20, 0, 20]),
        (0.0, [5, 5, 15, 5, 15, 15, 5, 15]),  # hole
        (2.0, [0, 0, 20, 0, 20, 20, 0, 20]),
    ]:
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        pts = np.array(ring, float).reshape(-1, 2)
        c.ContourData = [float(v) for v in np.c_[pts, np.full(len(pts), z)].ravel()]
        c.NumberOfContourPoints = len(pts)
        contours.append(c)
    item.ContourSequence = contours
    ds.ROIContourSequence = [item]
    path = tmp_path / "RS.test.dcm"
    ds.save_as(path, enforce_file_format=True)
    planes = ex.read_planes(path, 3)
    assert [z for z, _ in planes] == [0.0, 2.0]
    assert [g.area for _, g in planes] == pytest.approx([300.0, 400.0])
    with pytest.raises(ValueError, match="no ROI Contour item"):
        ex.read_planes(path, 2)


def test_oblique_truth_with_an_in_plane_gradient_is_the_one_axis_truth():
    slabs = ex.slab_stack(_planes(np.arange(-6, 7, 3.0), Polygon([(0, 0), (12, 2), (9, 11)])))
    oblique = ex.ObliqueDvh(slabs, 5.0, (0.0, 1.5, 0.0))
    along_y = ex.ExactDvh(slabs, ex.LinearDose(axis=1, offset_gy=5.0, gradient_gy_per_mm=1.5))
    assert oblique.total_volume_cc == pytest.approx(along_y.total_volume_cc, rel=1e-12)
    assert oblique.mean_gy == pytest.approx(along_y.mean_gy, rel=1e-12)
    for d in (6.0, 9.0, 15.0, 20.0):
        assert oblique.volume_at_dose_cc(d) == pytest.approx(along_y.volume_at_dose_cc(d), rel=1e-9)
    assert oblique.dose_at_volume_pct(95) == pytest.approx(along_y.dose_at_volume_pct(95), abs=1e-6)


def test_oblique_truth_of_a_box_in_a_dose_rising_along_x_and_z():
    """A 10 x 20 mm box on planes z = 0..10 (slabs -0.5..10.5 mm) in D = 2 + x + z: the volume
    at or above d is 20 mm times the area of the (x, z) rectangle above the line x + z = d - 2,
    here cut out with shapely in the (x, z) plane."""
    slabs = ex.slab_stack(_planes(range(11), box(0, 0, 10, 20)))
    dvh = ex.ObliqueDvh(slabs, 2.0, (1.0, 0.0, 1.0))
    rect = box(0, -0.5, 10, 10.5)  # (x, z)
    assert dvh.total_volume_cc == pytest.approx(2.2, rel=1e-12)
    assert dvh.mean_gy == pytest.approx(2.0 + 5.0 + 5.0, rel=1e-12)
    assert (dvh.min_gy, dvh.max_gy) == pytest.approx((1.5, 22.5))
    for d in (3.0, 7.25, 12.0, 19.9):
        above = Polygon([(d - 2 - 100, 100), (d - 2 + 100, -100), (200, -100), (200, 200)])
        want = rect.intersection(above).area * 20 / 1000
        assert dvh.volume_at_dose_cc(d) == pytest.approx(want, rel=1e-9)
    # the hottest 0.03 cc: the corner triangle of area 1.5 mm2, legs sqrt(3) mm: 22.5 - sqrt(3)
    assert dvh.dose_at_volume_cc(0.03) == pytest.approx(22.5 - math.sqrt(3.0), abs=1e-6)
