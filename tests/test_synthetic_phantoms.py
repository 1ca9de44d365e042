"""Closed-form phantoms: volumes, contours, dose functions, frames and the intended verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtqa.synthetic.build import build_course, build_registration
from rtqa.synthetic.cases import (
    LUNG_PROFILE,
    SPINE_PROFILE,
    bone_1fx,
    lung_5fx,
    sample_cases,
    spine_3fx,
    spine_3fx_nocord,
    spine_3fx_overrun,
    spine_prior,
    spine_prior_exceeds,
)
from rtqa.synthetic.readme import eqd2
from rtqa.synthetic.reference import sampled_dvh, slab_samples
from rtqa.synthetic.shapes import (
    Ellipse,
    EllipticCylinder,
    RigidZ,
    equal_area_factor,
    slab_volume_cc,
)


def shoelace(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def roi_slab_volume_cc(roi) -> float:
    """Slab-model volume of a model ROI from its own polygons (independent of the solids)."""
    z = np.array([p.z_mm for p in roi.planes])
    areas = [sum(shoelace(poly.exterior) for poly in p.polygons) for p in roi.planes]
    steps = np.diff(z)
    thick = np.empty_like(z)
    thick[0] = steps[0] / 2 + steps[0] / 2
    thick[-1] = steps[-1]
    thick[1:-1] = (steps[:-1] + steps[1:]) / 2
    return float(np.dot(areas, thick)) / 1000.0


@pytest.mark.parametrize("angle", [0.0, 17.0, 90.0])
def test_rings_have_the_exact_ellipse_area(angle):
    e = Ellipse(3.0, -4.0, 12.0, 7.5, angle)
    ring = e.ring()
    assert ring.shape == (64, 2)
    assert shoelace(ring) == pytest.approx(math.pi * 12.0 * 7.5, rel=1e-12)
    assert equal_area_factor() == pytest.approx(1.0008039, abs=1e-6)


def test_spine_ptv_contours_reproduce_the_cylinder_volume():
    course = build_course(spine_3fx(), spine_3fx().current)
    ptv = course.structure_set.roi("PTV_30Gy")
    # 11 planes z = -12.5 ... 12.5 mm, slab model 27.5 mm long, radius 16 mm
    assert len(ptv.planes) == 11
    expected = math.pi * 16.0**2 * 27.5 / 1000.0
    assert roi_slab_volume_cc(ptv) == pytest.approx(expected, rel=1e-12)
    assert ptv.tps_volume_cc == pytest.approx(expected, abs=1e-3)


def test_lung_ptv_sphere_slab_volume_against_analytic():
    case = lung_5fx()
    course = build_course(case, case.current)
    ptv = course.structure_set.roi("PTV_50Gy")
    r, h = 15.0, 2.5
    # planes at z = 10 + 2.5 k, |2.5 k| < 15: slab sum of the circle areas pi (r^2 - (2.5k)^2)
    slab = sum(math.pi * (r**2 - (h * k) ** 2) * h for k in range(-5, 6)) / 1000.0
    assert roi_slab_volume_cc(ptv) == pytest.approx(slab, rel=1e-12)
    assert slab == pytest.approx(4 / 3 * math.pi * r**3 / 1000.0, rel=0.01)
    assert slab_volume_cc(case.current.rois[1].solid, case.current.planes_mm) == pytest.approx(
        slab, rel=1e-12
    )


def test_lungs_union_has_two_polygons_per_plane():
    case = lung_5fx()
    lungs = build_course(case, case.current).structure_set.roi("Lungs")
    assert all(len(p.polygons) == 2 for p in lungs.planes)
    left = build_course(case, case.current).structure_set.roi("Lung_L")
    assert roi_slab_volume_cc(lungs) == pytest.approx(2 * roi_slab_volume_cc(left), rel=1e-12)


def test_cylinder_signed_distance_and_steiner_volume():
    cyl = EllipticCylinder(1.0, 2.0, 6.0, 6.0, -5.0, 5.0)
    assert float(cyl.signed_distance(1.0, 2.0, 0.0)) == pytest.approx(-5.0)  # nearer the caps
    assert float(cyl.signed_distance(10.0, 2.0, 0.0)) == pytest.approx(3.0)
    assert float(cyl.signed_distance(1.0 + 6.0 + 3.0, 2.0, 9.0)) == pytest.approx(5.0)
    step = 0.25
    g = np.arange(-12.0 + step / 2, 12.0, step)
    x, y, z = np.meshgrid(g + 1.0, g + 2.0, g, indexing="ij")
    for t in (-2.0, 0.0, 3.0):
        counted = np.count_nonzero(cyl.signed_distance(x, y, z) <= t) * step**3 / 1000.0
        assert counted == pytest.approx(cyl.offset_volume_cc(t), rel=0.01)


def test_dose_grid_holds_the_closed_form_dose():
    case = spine_3fx()
    course = build_course(case, case.current)
    grid = course.dose
    k, j, i = 20, 30, 11
    expected = case.current.dose.dose_at(grid.x_mm[i], grid.y_mm[j], grid.z_mm[k])
    assert grid.dose_gy[k, j, i] == pytest.approx(float(expected), rel=1e-12)
    assert np.all(np.diff(grid.x_mm) > 0) and np.all(np.diff(grid.z_mm) > 0)
    # centre of the vertebral body: the plateau, 122 % of 30 Gy
    assert float(case.current.dose.dose_at(0.0, 20.0, 0.0)) == pytest.approx(
        case.current.dose.max_gy, rel=1e-12
    )
    assert 1.15 < case.current.dose.max_gy / 30.0 < 1.25


@pytest.mark.parametrize("profile", [SPINE_PROFILE, LUNG_PROFILE])
def test_profiles_are_sbrt_like(profile):
    s100, s50 = profile.distance_at(1.0), profile.distance_at(0.5)
    assert 0.0 < s100 < 1.0  # Rx isodose just outside the PTV: coverage ~100 %
    assert 4.0 < s50 < 8.0
    assert float(profile(0.0)) < 1.05  # no 105 % outside the PTV
    assert 6.0 < profile.gradient_pct_per_mm(0.0) < 12.0
    s = np.linspace(-30, 60, 901)
    assert np.all(np.diff(profile(s)) < 0)  # monotone: isodoses are parallel surfaces


def test_isodose_volumes_match_lattice_counts():
    dose = lung_5fx().current.dose
    step = 0.5
    g = np.arange(-40 + step / 2, 40, step)
    x, y, z = np.meshgrid(g + dose.target.cx, g + dose.target.cy, g + dose.target.cz)
    d = dose.dose_at(x, y, z)
    for level in (1.0, 0.5):
        counted = np.count_nonzero(d >= level * dose.rx_gy) * step**3 / 1000.0
        assert counted == pytest.approx(dose.isodose_volume_cc(level), rel=0.01)


def test_rigid_inverse_and_registration_matrices():
    rigid = RigidZ(2.5, 6.0, -9.5, -160.0)
    assert np.allclose(rigid.matrix @ rigid.inverse().matrix, np.eye(4), atol=1e-12)
    case = spine_prior()
    reg = build_registration(case)
    current = build_course(case, case.courses[0])
    prior = build_course(case, case.courses[1])
    assert reg.frame_of_reference_uid == current.structure_set.frame_of_reference_uid
    m = reg.matrix(prior.structure_set.frame_of_reference_uid, reg.frame_of_reference_uid)
    # the prior cord contour mapped by the registration lands on the current cord contour
    cord_b = prior.structure_set.roi("SpinalCord").planes[0]
    ring = cord_b.polygons[0].exterior
    pts = np.column_stack([ring, np.full(len(ring), cord_b.z_mm), np.ones(len(ring))]) @ m.T
    cord_a = current.structure_set.roi("SpinalCord")
    plane_a = next(p for p in cord_a.planes if abs(p.z_mm - pts[0, 2]) < 1e-9)
    centre_a = plane_a.polygons[0].exterior.mean(axis=0)
    assert np.allclose(pts[:, :2].mean(axis=0), centre_a, atol=1e-9)
    assert (
        prior.structure_set.frame_of_reference_uid != current.structure_set.frame_of_reference_uid
    )


def test_no_organ_overlaps_a_target():
    step = 1.0
    for case in sample_cases():
        for course in case.courses:
            targets = [r.solid for r in course.rois if r.interpreted_type in ("PTV", "GTV")]
            # the lung tumour lies in the lung on purpose
            organs = [
                r
                for r in course.rois
                if r.interpreted_type == "ORGAN" and not r.name.startswith("Lung")
            ]
            for t in targets:
                pts, _ = slab_samples(t, course.planes_mm, step)
                for organ in organs:
                    if case.name.startswith("spine_prior") and course.frame_key == "B":
                        continue  # the palliative field's PTV covers the canal on purpose
                    assert not organ.solid.contains(*pts.T).any(), (case.name, organ.name)


# ------------------------------------------------------------------------------------------
# Intended verdicts, from the closed forms (limits: AAPM TG-101, NRG-BR002, Sahgal 2012)
# ------------------------------------------------------------------------------------------


def dvh(case, name, course_index=0):
    course = case.courses[course_index]
    roi = next(r for r in course.rois if r.name == name)
    return sampled_dvh(roi.solid, course.planes_mm, course.dose.dose_at)


def test_spine_3fx_meets_the_three_fraction_limits():
    case = spine_3fx()
    cord = dvh(case, "SpinalCord")
    assert 13.0 < cord.d_cc(0.03) < 17.0  # "comfortably below" 21.9 Gy
    assert cord.d_cc(0.35) < 18.0
    assert cord.d_cc(1.2) < 12.3
    assert dvh(case, "Esophagus").d_cc(0.03) < 25.2
    assert dvh(case, "Esophagus").d_cc(5.0) < 17.7
    assert dvh(case, "PTV_30Gy").v_gy_pct(30.0) >= 95.0


def test_spine_variants():
    days = [t.date() for t in spine_3fx().current.fraction_datetimes]
    assert (days[-1] - days[0]).days <= 21
    over = [t.date() for t in spine_3fx_overrun().current.fraction_datetimes]
    assert (over[-1] - over[0]).days == 24
    assert "SpinalCord" not in [r.name for r in spine_3fx_nocord().current.rois]


def test_lung_5fx_has_exactly_the_oesophagus_deviation():
    case = lung_5fx()
    eso = dvh(case, "Esophagus")
    assert 38.0 < eso.d_cc(0.03) < 43.0  # > 35 Gy TG-101 5-fx point limit
    assert eso.d_cc(5.0) < 19.5
    assert dvh(case, "Bronchus").d_cc(0.03) < 40.0
    assert dvh(case, "Bronchus").d_cc(4.0) < 16.5
    assert dvh(case, "Heart").d_cc(0.03) < 38.0
    assert dvh(case, "SpinalCord").d_cc(0.03) < 30.0
    lungs = dvh(case, "Lungs")
    assert lungs.volume_cc - lungs.v_gy_cc(12.5) > 1500.0
    assert lungs.volume_cc - lungs.v_gy_cc(13.5) > 1000.0
    assert dvh(case, "PTV_50Gy").v_gy_pct(50.0) >= 95.0


def test_bone_1fx_meets_the_single_fraction_limits():
    case = bone_1fx()
    assert dvh(case, "Bowel_Small").d_cc(0.03) < 15.4
    assert dvh(case, "Bowel_Small").d_cc(5.0) < 11.9
    assert dvh(case, "Rectum").d_cc(0.03) < 18.4
    assert dvh(case, "Bladder").d_cc(0.03) < 18.4
    assert dvh(case, "Femur_Head_R").d_cc(10.0) < 14.0


def cumulative_cord_eqd2(case):
    current, prior = case.courses
    cord = next(r for r in current.rois if r.name == "SpinalCord")
    prior_dose = prior.dose.seen_from(case.frames["B"].inverse())
    pts, dv = slab_samples(cord.solid, current.planes_mm, 0.25)
    cur = eqd2(current.dose.dose_at(*pts.T), current.fractions, 2.0)
    total = cur + eqd2(prior_dose.dose_at(*pts.T), prior.fractions, 2.0)
    n = math.ceil(0.03 / dv - 1e-9)
    return float(np.sort(cur)[::-1][n - 1]), float(np.sort(total)[::-1][n - 1])


def test_prior_courses_cumulative_cord_eqd2():
    sbrt, total = cumulative_cord_eqd2(spine_prior())
    # prior 20 Gy/5 on the cord: EQD2 = 20 (4 + 2) / 4 = 30 Gy
    assert sbrt <= 25.0 and total <= 70.0 and sbrt / total <= 0.5
    assert total == pytest.approx(sbrt + 30.0, abs=0.05)
    sbrt2, total2 = cumulative_cord_eqd2(spine_prior_exceeds())
    # prior 24 Gy/3: EQD2 = 24 (8 + 2) / 4 = 60 Gy
    assert total2 == pytest.approx(sbrt2 + 60.0, abs=0.05)
    assert total2 > 75.0
    interval = case_interval_days(spine_prior())
    assert interval > 150


def case_interval_days(case):
    return (case.courses[0].fraction_datetimes[0] - case.courses[1].fraction_datetimes[-1]).days


def test_building_is_deterministic_and_uids_are_unique():
    first = [build_course(c, co) for c in sample_cases() for co in c.courses]
    second = [build_course(c, co) for c in sample_cases() for co in c.courses]
    uids = []
    for a, b in zip(first, second, strict=True):
        assert a.uids == b.uids
        assert np.array_equal(a.dose.dose_gy, b.dose.dose_gy)
        uids += [a.uids.plan, a.uids.structure_set, a.uids.dose, a.uids.study]
        uids += [r.sop_instance_uid for r in a.records]
    assert len(uids) == len(set(uids))


def test_dose_grids_cover_every_structure_but_the_body():
    for case in sample_cases():
        for course in case.courses:
            x, y, z = (a.values for a in course.grid)
            for roi in course.rois:
                if roi.interpreted_type == "EXTERNAL":
                    continue
                pts, _ = slab_samples(roi.solid, course.planes_mm, 2.0)
                for axis_values, coord in zip((x, y, z), pts.T, strict=True):
                    assert axis_values[0] <= coord.min() and coord.max() <= axis_values[-1], (
                        case.name,
                        course.label,
                        roi.name,
                    )
