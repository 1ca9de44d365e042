"""Prior-radiation rules (evaluate_prior) against closed-form phantoms built in memory."""

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rtqa.errors import ConstraintFileError
from rtqa.geometry.sampling import occupancy
from rtqa.geometry.slabs import slab_stack
from rtqa.geometry.transform import map_points, rotation_matrix, translation_matrix
from rtqa.model import (
    Case,
    ContourPlane,
    Course,
    DoseGrid,
    FractionGroup,
    Plan,
    PlanarPolygon,
    Prescription,
    Registration,
    Roi,
    Status,
    StructureSet,
    TreatmentRecord,
)
from rtqa.protocol.loader import load_protocol, load_protocol_file
from rtqa.protocol.model import Confidence, Source, SourcedValue
from rtqa.protocol.prior_inputs import PriorInput
from rtqa.protocol.prior_rules import evaluate_prior
from rtqa.protocol.prior_targets import OVERLAP_POINTS, mapped_overlap

FRAME_A = "1.2.826.0.1.3680043.8.498.101"  # current
FRAME_B = "1.2.826.0.1.3680043.8.498.202"  # prior
ROOT = Path(__file__).resolve().parents[1]


# --- phantoms -------------------------------------------------------------------------------


def grid(centre, half, step, frame, value=0.0):
    axes = [np.arange(c - h, c + h + 1e-9, step) for c, h in zip(centre, half, strict=True)]
    x, y, z = axes
    return DoseGrid(
        dose_gy=np.full((z.size, y.size, x.size), float(value)),
        x_mm=x,
        y_mm=y,
        z_mm=z,
        frame_of_reference_uid=frame,
    )


def sphere_roi(number, name, centre, radius, frame, kind="PTV", h=1.0, points=256):
    """A sphere as axial polygons whose slabs hold exactly the sphere's volume: each plane's
    circle has r^2 = R^2 - z^2 - h^2/12 (the mean cross-section over the slab), and the polygon
    the circle's area."""
    cx, cy, cz = centre
    planes = []
    factor = np.sqrt(2 * np.pi / (points * np.sin(2 * np.pi / points)))
    for z in np.arange(-radius + h / 2, radius, h):
        r2 = radius**2 - z**2 - h**2 / 12
        if r2 <= 0:
            continue
        t = 2 * np.pi * np.arange(points) / points
        rho = np.sqrt(r2) * factor
        ring = np.column_stack([cx + rho * np.cos(t), cy + rho * np.sin(t)])
        planes.append(ContourPlane(cz + z, (PlanarPolygon(ring),), 1))
    return Roi(
        number, name, interpreted_type=kind, frame_of_reference_uid=frame, planes=tuple(planes)
    )


def case(label, dose, rois, frame, total, fractions, day, registrations=()):
    plan = Plan(
        path=f"RP.{label}.dcm",
        sop_instance_uid=f"1.2.826.0.1.3680043.8.498.9{len(label)}{day}",
        label=label,
        patient_id="PHANTOM",
        frame_of_reference_uid=frame,
        fraction_groups=(FractionGroup(1, fractions),),
        prescriptions=(Prescription(total, fractions, "test"),) if total else (),
        plan_datetime=datetime(2024, 1, 1),
    )
    ss = StructureSet(f"RS.{label}.dcm", f"1.2.3.{day}", label, frame, tuple(rois), "PHANTOM")
    records = tuple(
        TreatmentRecord(
            f"RT.{label}.{i}",
            f"1.2.4.{day}.{i}",
            plan.sop_instance_uid,
            i + 1,
            datetime(2023, 1, 1)
            + (datetime(2023, 1, 2) - datetime(2023, 1, 1)) * (day + min(i, 1)),
        )
        # every fraction planned is recorded: the first on ``day``, the others on the next day
        for i in range(fractions)
    )
    return Case(label, plan, ss, dose, records=records, registrations=tuple(registrations))


def reg(matrix_b_to_a):
    return Registration(
        "RE.dcm",
        "1.2.826.0.1.3680043.8.498.77",
        FRAME_A,
        {FRAME_A: np.eye(4), FRAME_B: np.asarray(matrix_b_to_a)},
    )


@pytest.fixture(scope="module")
def boss():
    return load_protocol("boss")


def uniform_setup(prior_total=20.0, prior_fx=5, current=9.0, shift=(0.0, 0.0, 0.0), day=400):
    """Current 'current' Gy uniform in 3 fx, prior 'prior_total' Gy uniform in frame B, a cord
    sphere (radius 6 mm) judged with BOSS; the registration shifts B into A by ``shift``."""
    cur_dose = grid((0, 0, 0), (30, 30, 30), 2.0, FRAME_A, current)
    pri_dose = grid(shift, (40, 40, 40), 2.0, FRAME_B, prior_total)
    cord = sphere_roi(2, "SpinalCord", (0, 0, 0), 6.0, FRAME_A, kind="ORGAN")
    ptv = sphere_roi(1, "PTV", (10, 0, 0), 8.0, FRAME_A)
    current_case = case("NOW", cur_dose, [ptv, cord], FRAME_A, 27.0, 3, day)
    prior_ptv = sphere_roi(1, "PTV_prior", shift, 8.0, FRAME_B)
    prior_case = case(
        "BEFORE",
        pri_dose,
        [prior_ptv],
        FRAME_B,
        prior_total,
        prior_fx,
        0,
        [reg(translation_matrix(np.negative(shift)))],
    )
    course = Course((current_case,), (prior_case,))
    return PriorInput(
        course=course,
        dose=cur_dose,
        fractions=3,
        organs={"SpinalCord": cord},
        targets={"PTV": (ptv, 27.0)},
        body=None,
    )


def by_rule(findings, rule, roi=None):
    return [f for f in findings if f.rule == rule and (roi is None or f.roi == roi)]


# --- EQD2 -------------------------------------------------------------------------------------


def test_uniform_prior_dose_gives_the_hand_computed_eqd2(boss):
    findings, ctx = evaluate_prior(uniform_setup(), boss)
    # alpha/beta 2 (Sahgal): prior 20 Gy/5 -> 20 (4 + 2)/4 = 30; current 9 Gy/3 -> 9 (3 + 2)/4
    prior, current = 30.0, 9.0 * 5.0 / 4.0
    (cum,) = by_rule(findings, "cumulative_eqd2", "SpinalCord")
    assert cum.value == pytest.approx(prior + current, abs=1e-9)
    assert cum.status is Status.PASS and cum.limits == {"limit": "<= 70"}
    assert "alpha/beta 2 Gy" in cum.message and "LQ" in cum.message
    assert "prior 30.00 Gy, current 11.25 Gy, cumulative 41.25 Gy" in cum.message
    (share,) = by_rule(findings, "course_share", "SpinalCord")
    assert share.value == pytest.approx(current / (prior + current), rel=1e-12)
    (course,) = by_rule(findings, "course_eqd2", "SpinalCord")
    assert course.value == pytest.approx(current, abs=1e-9)
    assert all(f.group == "prior" for f in findings)
    assert ctx.alpha_beta_gy == 2.0
    assert np.allclose(ctx.cumulative.dose_gy, prior + current)


def test_higher_prior_dose_breaks_the_cumulative_limit(boss):
    findings, _ = evaluate_prior(uniform_setup(prior_total=24.0, prior_fx=3, current=15.0), boss)
    # 24 Gy/3 -> 24 (8 + 2)/4 = 60; 15 Gy/3 -> 15 (5 + 2)/4 = 26.25: cumulative 86.25 > 70
    (cum,) = by_rule(findings, "cumulative_eqd2", "SpinalCord")
    assert cum.value == pytest.approx(86.25, abs=1e-9)
    assert cum.status is Status.MAJOR and cum.margin == pytest.approx(70 - 86.25)
    (course,) = by_rule(findings, "course_eqd2", "SpinalCord")
    assert course.status is Status.MAJOR  # 26.25 > 25


def test_recovery_applies_only_when_the_protocol_names_it(boss):
    pr = boss.prior_radiation
    src = Source("test recovery source")
    rec = SourcedValue(0.25, src, Confidence.UNVERIFIED)
    protocol = replace(boss, prior_radiation=replace(pr, recovery={"SpinalCord": rec}))
    findings, _ = evaluate_prior(uniform_setup(), protocol)
    (cum,) = by_rule(findings, "cumulative_eqd2", "SpinalCord")
    assert cum.value == pytest.approx(0.75 * 30.0 + 11.25, abs=1e-9)
    assert "25 % recovery" in cum.message and "test recovery source" in cum.message


def test_interval_shorter_than_the_protocol_minimum(boss):
    findings, _ = evaluate_prior(uniform_setup(day=60), boss)
    (interval,) = by_rule(findings, "min_interval")
    # prior records on days 0, 1; current starts on day 60: 59 days, 2 calendar months < 5
    assert interval.value == 2.0
    assert interval.status is Status.MAJOR


def test_an_undated_first_record_of_the_current_course_leaves_the_interval_unknown(boss):
    """The current course's fraction-1 record has no date: the course may have begun earlier
    than its dated records say, so a pass on the interval since the prior course is not
    certain (was a pass on the fraction-2 date)."""
    inp = uniform_setup()
    now = inp.course.cases[0]
    now.records = (replace(now.records[0], delivered_at=None), *now.records[1:])
    findings, _ = evaluate_prior(inp, boss)
    (interval,) = by_rule(findings, "min_interval")
    assert interval.status is Status.NOT_EVALUABLE
    assert interval.message.endswith(
        "; 1 treatment record(s) carry no treatment date: the current course's start is not certain"
    )
    # both records dated: a pass (day 0-1 prior, day 400 current: 399 days, 13 calendar
    # months and 3 days of a 29-day month)
    (interval,) = by_rule(evaluate_prior(uniform_setup(), boss)[0], "min_interval")
    assert interval.status is Status.PASS
    assert interval.value == pytest.approx(13 + 3 / 29, rel=1e-12)


def test_a_prior_course_ending_after_the_current_one_began_is_not_evaluable(boss):
    # the "prior" records on days 0, 1; the current course on days -10, -9: the prior course
    # ended 11 days after the current one began (was a MAJOR interval of -0.36 months)
    findings, _ = evaluate_prior(uniform_setup(day=-10), boss)
    (interval,) = by_rule(findings, "min_interval")
    assert interval.status is Status.NOT_EVALUABLE
    assert interval.value == pytest.approx(-11 / (365.25 / 12), rel=1e-9)
    assert interval.message == (
        "prior course 'BEFORE' ended 11 days after the current course began: the dates of its "
        "records contradict its being a prior course; the interval cannot be judged"
    )


# --- mapping ----------------------------------------------------------------------------------


def test_shifted_spheres_overlap_only_through_the_registration():
    """Prior sphere at the origin of frame B, current sphere 10 mm off its mapped centre: the
    overlap is the lens pi (4R + d)(2R - d)^2 / 12 (within 2 %)."""
    r, d = 15.0, 10.0
    shift = np.array([5.0, -3.0, 100.0])  # B -> A
    current_grid = grid(np.add(shift, (d / 2, 0, 0)), (30, 24, 24), 2.0, FRAME_A)
    prior_roi = sphere_roi(1, "PTV_B", (0, 0, 0), r, FRAME_B)
    current_roi = sphere_roi(1, "PTV_A", tuple(np.add(shift, (d, 0, 0))), r, FRAME_A)
    occ = occupancy(current_roi, current_grid)
    ov = mapped_overlap(prior_roi, translation_matrix(shift), occ)
    lens_cc = np.pi * (4 * r + d) * (2 * r - d) ** 2 / 12 / 1000
    sphere_cc = 4 / 3 * np.pi * r**3 / 1000
    assert ov.overlap_cc == pytest.approx(lens_cc, rel=0.005)
    assert ov.dice == pytest.approx(lens_cc / sphere_cc, rel=0.005)
    # without the registration the spheres are 100 mm apart: no overlap
    assert mapped_overlap(prior_roi, None, occ).overlap_cc == 0.0


def _box_roi(number, name, x, y, z_planes, frame):
    ring = np.array([[x[0], y[0]], [x[1], y[0]], [x[1], y[1]], [x[0], y[1]]])
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in z_planes)
    return Roi(number, name, interpreted_type="PTV", frame_of_reference_uid=frame, planes=planes)


def test_structures_meeting_at_a_face_do_not_overlap():
    """A prior box whose slab model ends at z = 13.75 mm, mapped by a 2.5 degree turn about z
    and a shift along z onto the face where the current box begins: they share no volume
    (fractional occupancies of the cells across the face once read 0.17 cc of overlap); moved
    2 mm further down they share a 2 mm layer of the current box's 20 x 20 mm section."""
    current_grid = grid((0, 0, 20), (30, 30, 30), 2.5, FRAME_A)
    current = _box_roi(1, "PTV_A", (-10, 10), (-10, 10), np.arange(14.5, 30, 1.5), FRAME_A)
    occ = occupancy(current, current_grid)
    assert occ.slabs.lo_mm.min() == pytest.approx(13.75)
    prior = _box_roi(1, "PTV_B", (-8, 8), (-8, 8), np.arange(-12.5, 13.1, 2.5), FRAME_B)
    assert slab_stack(prior).hi_mm.max() == pytest.approx(13.75)
    turn = rotation_matrix((0, 0, 1), 2.5, centre=(0.0, 0.0, 0.0))
    m = translation_matrix((0.0, 0.0, 0.0)) @ turn
    assert mapped_overlap(prior, m, occ).overlap_cc == 0.0
    # the layer's upper face (z = 15.75 mm) is found within half a point spacing in z
    spacing = float(occ.lattice.dz.max()) / OVERLAP_POINTS
    m = translation_matrix((0.0, 0.0, 2.0)) @ turn
    ov = mapped_overlap(prior, m, occ)
    assert ov.overlap_cc == pytest.approx(16 * 16 * 2.0 / 1000, abs=16 * 16 * spacing / 2 / 1000)


def test_rotation_about_a_known_axis_maps_a_known_point_and_the_dose():
    """90 degrees about z through (10, 0, 0): (20, 0, 5) maps to (10, 10, 5); a prior dose
    linear in x_B reads, at a current point p, as x_B of the back-mapped point."""
    m = rotation_matrix((0, 0, 1), 90.0, centre=(10.0, 0.0, 0.0))
    from rtqa.prior import registration_between

    matrix, _ = registration_between(FRAME_B, FRAME_A, [reg(m)])
    assert np.linalg.norm(map_points((20.0, 0.0, 5.0), matrix) - (10.0, 10.0, 5.0)) < 0.1
    prior = grid((10, 0, 0), (40, 40, 20), 2.0, FRAME_B)
    prior.dose_gy[:] = 30.0 + 0.5 * prior.x_mm[None, None, :]
    cur_dose = grid((10, 0, 0), (10, 10, 10), 2.0, FRAME_A, 1.0)
    cord = sphere_roi(2, "SpinalCord", (10, 0, 0), 4.0, FRAME_A, kind="ORGAN")
    prior_case = case("BEFORE", prior, [], FRAME_B, 20.0, 5, 0, [reg(m)])
    inp = PriorInput(
        Course((case("NOW", cur_dose, [cord], FRAME_A, 9.0, 3, 400),), (prior_case,)),
        cur_dose,
        3,
        {"SpinalCord": cord},
        {},
        None,
    )
    _, ctx = evaluate_prior(inp, load_protocol("boss"))
    mapped = ctx.priors[0].dose_gy
    # the inverse rotation (-90 degrees about the same axis) gives x_B = 10 + y_A
    expected = 30.0 + 0.5 * (10.0 + cur_dose.y_mm)[None, :, None]
    assert np.allclose(mapped, np.broadcast_to(expected, mapped.shape), atol=1e-9)


def test_missing_registration_is_not_evaluable_naming_both_frames(boss):
    inp = uniform_setup()
    prior = inp.course.priors[0]
    prior.registrations = ()
    findings, ctx = evaluate_prior(inp, boss)
    assert ctx is None
    f, placement, level = findings
    assert f.status is Status.NOT_EVALUABLE and f.rule == "prior_registration"
    # the uniform 20 Gy prior dose is 100 % of its 20 Gy prescription
    assert (level.rule, level.status, level.value) == ("prior_dose_level", Status.PASS, 100.0)
    assert FRAME_A in f.message and FRAME_B in f.message
    # the prior dose is still checked in its own frame (here: no body outline to check it by)
    assert placement.rule == "prior_dose_placement" and placement.status is Status.INFO
    assert placement.message.startswith("prior course 'BEFORE' (dose (no file), structure set")
    assert "no body outline" in placement.message and placement.group == "prior"
    inp.assume_aligned = True
    findings, ctx = evaluate_prior(inp, boss)
    assert ctx is not None
    assert all("assumed aligned (--assume-aligned)" in f.message for f in findings)


def test_missing_prior_dose_or_fraction_count_is_not_evaluable(boss):
    inp = uniform_setup()
    prior = inp.course.priors[0]
    prior.plan.fraction_groups = (FractionGroup(1, None),)
    findings, _ = evaluate_prior(inp, boss)
    assert [f.rule for f in findings if f.status is Status.NOT_EVALUABLE] == ["prior_fractions"]
    assert findings[0].message == (
        f"prior course '{prior.label}': the fraction count is unknown (the plan states no "
        "number of fractions (FractionGroupSequence)); give it with --prior-fractions N (EQD2 "
        "needs it)"
    )
    inp.prior_fractions = 5
    findings, _ = evaluate_prior(inp, boss)
    (cum,) = by_rule(findings, "cumulative_eqd2", "SpinalCord")
    assert cum.value == pytest.approx(41.25, abs=1e-9)
    prior.dose = None
    findings, ctx = evaluate_prior(inp, boss)
    assert ctx is None and findings[0].rule == "prior_dose"
    assert findings[0].status is Status.NOT_EVALUABLE


def test_part_of_an_organ_outside_the_prior_grid_takes_the_dose_on_its_faces(boss):
    """The prior grid stops at x = 0: about half the cord (radius 6 mm at the origin) has no
    prior dose sampled. It is reported, never taken as 0 Gy alone: its prior dose lies between
    0 Gy and the 20 Gy on the grid face it crosses, so the cumulative maximum is 30 + 11.25 =
    41.25 Gy either way (a pass), and the mean lies between the known half's 41.25 Gy weighted
    with the other half's 11.25 Gy and 41.25 Gy."""
    inp = uniform_setup()
    prior = inp.course.priors[0]
    prior.dose = grid((-20, 0, 0), (20, 40, 40), 2.0, FRAME_B, 20.0)
    findings, ctx = evaluate_prior(inp, boss)
    (cum,) = by_rule(findings, "cumulative_eqd2", "SpinalCord")
    assert cum.status is Status.PASS and cum.value == pytest.approx(41.25, abs=1e-9)
    assert cum.message.endswith(
        "with the dose of 'BEFORE' beyond its grid anywhere from 0 Gy to 20 Gy, EQD2cum Max is "
        "41.25 either way; limit: cumulative point-maximum EQD2 about 70 Gy (nBED 70 Gy2/2)"
    )
    res = ctx.organ_dvhs["SpinalCord"]
    ((label, cc, bound),) = res.prior_parts
    assert (label, bound) == ("BEFORE", 20.0) and res.unknown_prior_cc == 0.0
    half_sphere_cc = 2 / 3 * np.pi * 6.0**3 / 1000
    assert cc == pytest.approx(half_sphere_cc, rel=0.05)  # the cells right of x = 0
    outside = f"{cc:.3g} cc of 'SpinalCord' lies outside the dose grid of 'BEFORE': its dose "
    assert outside + "there taken from 0 Gy to 20 Gy" in cum.message
    whole = res.cumulative.total_volume_cc
    low = (41.25 * (whole - cc) + 11.25 * cc) / whole
    assert res.cumulative.mean_gy == pytest.approx(low, rel=1e-9)
    assert res.cumulative_high.mean_gy == pytest.approx(41.25, rel=1e-9)
    assert res.prior.mean_gy == pytest.approx(30 * (whole - cc) / whole, rel=1e-9)


# --- target overlap, policy, classification ---------------------------------------------------


def test_target_overlap_volumes_and_policies(boss):
    findings, _ = evaluate_prior(uniform_setup(), boss)
    ptv_cc = 4 / 3 * np.pi * 8.0**3 / 1000
    levels = by_rule(findings, "target_overlap", "PTV")
    assert [f.metric for f in levels] == ["V20Gy prior", "V10Gy prior"]
    assert all(f.value == pytest.approx(ptv_cc, rel=1e-3) for f in levels)  # uniform prior
    (eq,) = by_rule(findings, "target_prior_eqd2", "PTV")
    # the target has no alpha/beta of its own: BOSS default 3 Gy -> 20 (4 + 3)/5 = 28
    assert eq.value == pytest.approx(28.0, abs=1e-9)
    assert "alpha/beta 3 Gy" in eq.message
    # current 9 Gy < 50 % of its 27 Gy Rx: no irradiated overlap; the cord (cumulative limits)
    # is dosed by both courses -> type 2
    (kind,) = by_rule(findings, "reirradiation_type")
    assert kind.message.startswith("type 2 re-irradiation") and "SpinalCord" in kind.message
    # current 27 Gy everywhere: the whole current grid (60 mm cube + half voxels) lies in both
    # irradiated volumes -> type 1, and the policies judge that overlap
    found, ctx = evaluate_prior(uniform_setup(current=27.0), boss)
    (kind,) = by_rule(found, "reirradiation_type")
    assert kind.message.startswith("type 1 re-irradiation")
    assert ctx.overlap_mask.all()
    pr = boss.prior_radiation
    for policy, status in (("exclude", Status.MAJOR), ("review", Status.MINOR)):
        protocol = replace(
            boss, prior_radiation=replace(pr, policy=replace(pr.policy, value=policy))
        )
        found, _ = evaluate_prior(uniform_setup(current=27.0), protocol)
        (f,) = by_rule(found, "prior_policy")
        assert f.status is status
        assert f.value == pytest.approx(6.2**3)  # 31 voxels of 2 mm a side: 62 mm cube, cc
        assert ("excluded" if policy == "exclude" else "documented review required") in f.message
        found, _ = evaluate_prior(uniform_setup(current=9.0), protocol)
        (f,) = by_rule(found, "prior_policy")
        assert f.status is Status.PASS


def test_a_protocol_without_a_prior_policy_leaves_overlap_not_evaluable(boss):
    # no prior_radiation section: overlapping irradiated volumes cannot pass silently
    bare = replace(boss, prior_radiation=None)
    found, _ = evaluate_prior(uniform_setup(current=27.0), bare)
    (f,) = by_rule(found, "prior_policy")
    assert f.status is Status.NOT_EVALUABLE
    assert f.value == pytest.approx(6.2**3)  # the whole current grid: 62 mm cube, cc
    assert "sets no prior-radiation policy" in f.message and "BOSS" in f.message
    # current 9 Gy < 50 % of its Rx: the irradiated volumes do not overlap -> only a note
    found, _ = evaluate_prior(uniform_setup(current=9.0), bare)
    (f,) = by_rule(found, "prior_policy")
    assert f.status is Status.INFO and f.value == 0.0
    assert not [g for g in found if g.status is Status.NOT_EVALUABLE]


def test_negative_alpha_beta_in_a_constraint_file_is_refused(tmp_path):
    text = (ROOT / "constraints" / "spine_reirradiation.yaml").read_text()
    bad = text.replace("SpinalCord: {value: 2,", "SpinalCord: {value: -3,")
    assert bad != text
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(ConstraintFileError) as err:
        load_protocol_file(path)
    assert "bad.yaml" in str(err.value) and "-3" in str(err.value)


def test_the_protocol_sets_the_isodose_bounding_the_irradiated_volumes(boss):
    """Current 9 Gy of a 27 Gy Rx is 33 %: outside the irradiated volume at the default 50 %,
    inside it at 30 %; both plateaus at exactly 100 % of their Rx count at 100 %."""
    pr = boss.prior_radiation
    review = replace(pr, policy=replace(pr.policy, value="review"))

    def at(pct):
        if pct is None:
            return replace(boss, prior_radiation=review)
        sv = SourcedValue(pct, pr.policy.source, Confidence.UNVERIFIED)
        return replace(boss, prior_radiation=replace(review, overlap_isodose_pct=sv))

    whole_grid_cc = 6.2**3  # 31 voxels of 2 mm a side
    found, _ = evaluate_prior(uniform_setup(current=9.0), at(None))
    (f,) = by_rule(found, "prior_policy")
    assert f.value == 0.0 and "(50 % of 27 Gy)" in f.message
    found, _ = evaluate_prior(uniform_setup(current=9.0), at(30.0))
    (f,) = by_rule(found, "prior_policy")
    assert f.value == pytest.approx(whole_grid_cc) and f.status is Status.MINOR
    assert "6 Gy (30 % of 20 Gy) with the current 8.1 Gy (30 % of 27 Gy)" in f.message
    found, _ = evaluate_prior(uniform_setup(current=27.0), at(100.0))
    (f,) = by_rule(found, "prior_policy")
    assert f.value == pytest.approx(whole_grid_cc)


def test_a_course_of_several_prescription_levels_irradiates_the_union_of_their_volumes(boss):
    """A second current target prescribed 15 Gy beside the 27 Gy PTV: the current irradiated
    volume (50 %) reaches down to 7.5 Gy around it, so the uniform 9 Gy now overlaps the prior
    irradiated volume everywhere (with the highest level, 13.5 Gy, it overlapped nowhere)."""
    pr = boss.prior_radiation
    review = replace(boss, prior_radiation=replace(pr, policy=replace(pr.policy, value="review")))
    setup = uniform_setup(current=9.0)
    (f,) = by_rule(evaluate_prior(setup, review)[0], "prior_policy")
    assert f.value == 0.0 and f.status is Status.PASS
    second = sphere_roi(3, "PTV_2", (-10, 0, 0), 6.0, FRAME_A)
    two_levels = replace(setup, targets={**setup.targets, "PTV_2": (second, 15.0)})
    (f,) = by_rule(evaluate_prior(two_levels, review)[0], "prior_policy")
    assert f.value == pytest.approx(6.2**3) and f.status is Status.MINOR
    assert (
        "'BEFORE' 10 Gy (50 % of 20 Gy) with the current 7.5 Gy (50 % of 15 Gy, the lowest of "
        "15, 27 Gy)" in f.message
    )
