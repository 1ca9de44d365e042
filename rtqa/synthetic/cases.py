"""The committed sample cases (``sample_data/<name>/``), built from closed-form phantoms.

Patient coordinates (mm): x to the patient's left, y posterior, z superior. Contours lie on the
planes ``z = k·2.5 mm``; solids bounded in z end halfway between planes, so the slab model of
their contours is exact. All dates are fixed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from rtqa.synthetic.dose import FieldDose, Profile, TargetDose
from rtqa.synthetic.shapes import Ellipsoid, EllipticCylinder, RigidZ, Union
from rtqa.synthetic.spec import Axis, BeamSpec, CaseSpec, CourseSpec, CtSpec, RoiSpec

PLANE_STEP_MM = 2.5

# Radial dose profiles (fraction of Rx against signed distance to the PTV surface, mm).
# Spine: steep edge towards the cord (about 8 %/mm at the PTV surface, 50 % at 5.4 mm).
SPINE_PROFILE = Profile(a=0.774, s1=2.31, w1=4.137, b=0.451, s2=19.582, w2=18.992)
# Lung: gentler spread (50 % at about 6 mm, R50% 2.8 and D2cm 23 % for the 14 cc sphere).
LUNG_PROFILE = Profile(a=0.55, s1=2.5, w1=3.6, b=0.72, s2=12.0, w2=24.0)

REVIEWER = "PHYSICIAN^SYNTHETIC"


def planes(z_min: float, z_max: float) -> tuple[float, ...]:
    """Contour planes (mm) from z_min to z_max inclusive, on the 2.5 mm lattice."""
    k0, k1 = round(z_min / PLANE_STEP_MM), round(z_max / PLANE_STEP_MM)
    return tuple(float(k * PLANE_STEP_MM) for k in range(k0, k1 + 1))


def z_cylinder(cx, cy, r, first_plane, last_plane, b=None) -> EllipticCylinder:
    """A cylinder along z contoured on the planes first..last (ends half a step beyond)."""
    h = PLANE_STEP_MM / 2
    return EllipticCylinder(cx, cy, r, r if b is None else b, first_plane - h, last_plane + h)


def axis(lo: float, hi: float, step: float) -> Axis:
    return Axis(lo, step, round((hi - lo) / step) + 1)


def sbrt_beams(n: int, mu_total: float) -> tuple[BeamSpec, ...]:
    """``n`` static treatment beams sharing ``mu_total`` MU per fraction, then a kV setup beam."""
    mu = round(mu_total / n, 1)
    treat = tuple(BeamSpec(i + 1, f"SBRT{i + 1:02d}", "TREATMENT", mu) for i in range(n))
    return (*treat, BeamSpec(n + 1, "SETUP_KV", "SETUP", None))


def every_other_day(first: datetime, n: int) -> tuple[datetime, ...]:
    return tuple(first + timedelta(days=2 * i) for i in range(n))


# --------------------------------------------------------------------------------------------
# Spine: thoracic vertebral body PTV with the cord behind and the oesophagus in front
# --------------------------------------------------------------------------------------------

SPINE_PTV_R = 16.0
SPINE_PTV_CENTRE = (0.0, 20.0)
CORD_R = 5.0


def spine_body(first_plane: float = -70.0, last_plane: float = 70.0) -> RoiSpec:
    """The thoracic body outline (elliptic, 320 x 220 mm) contoured on first..last (frame A)."""
    solid = z_cylinder(0.0, 0.0, 160.0, first_plane, last_plane, b=110.0)
    return RoiSpec("Body", solid, "EXTERNAL", (0, 255, 0))


def spine_anatomy(
    cord_gap_mm: float, with_cord: bool = True, rx_gy: float = 30.0
) -> tuple[RoiSpec, ...]:
    """Body, PTV (vertebral body), GTV, SpinalCord, Esophagus (frame A)."""
    cx, cy = SPINE_PTV_CENTRE
    cord_y = cy + SPINE_PTV_R + cord_gap_mm + CORD_R
    rois = [
        spine_body(),
        RoiSpec(
            f"PTV_{rx_gy:g}Gy", z_cylinder(cx, cy, SPINE_PTV_R, -12.5, 12.5), "PTV", (255, 0, 0)
        ),
        RoiSpec("GTV", z_cylinder(cx, cy - 2.0, 11.0, -7.5, 7.5), "GTV", (255, 128, 0)),
    ]
    if with_cord:
        rois.append(
            RoiSpec(
                "SpinalCord", z_cylinder(0.0, cord_y, CORD_R, -50.0, 50.0), "ORGAN", (255, 255, 0)
            )
        )
    rois.append(
        RoiSpec("Esophagus", z_cylinder(14.0, -14.0, 8.0, -50.0, 50.0), "ORGAN", (0, 128, 255))
    )
    return tuple(rois)


def spine_ct(rois: tuple[RoiSpec, ...]) -> CtSpec:
    """96 x 96 CT, 4 mm pixels: air, body (20 HU), bone of the vertebra, cord, oesophagus air."""
    cx, cy = SPINE_PTV_CENTRE
    bone = z_cylinder(cx, cy, SPINE_PTV_R + 1.0, -70.0, 70.0)
    canal = z_cylinder(0.0, cy + SPINE_PTV_R + 10.0, 9.0, -70.0, 70.0)
    by_name = {r.name: r.solid for r in rois}
    hu = [(by_name["Body"], 20.0), (bone, 450.0), (canal, 30.0)]
    lung_r = Ellipsoid(-75.0, 10.0, 0.0, 55.0, 70.0, 140.0)
    lung_l = Ellipsoid(75.0, 10.0, 0.0, 55.0, 70.0, 140.0)
    hu += [(lung_r, -800.0), (lung_l, -800.0)]
    return CtSpec(axis(-190.0, 190.0, 4.0), axis(-190.0, 190.0, 4.0), tuple(hu))


def spine_course(
    label: str,
    cord_gap_mm: float,
    first_fraction: datetime,
    fraction_days: tuple[int, ...] | None = None,
    with_cord: bool = True,
    with_ct: bool = False,
    rx_gy: float = 30.0,
    fractions: int = 3,
) -> CourseSpec:
    """Vertebral-body SBRT with the cord ``cord_gap_mm`` behind the PTV; fractions every other
    day unless ``fraction_days`` (days after the first) say otherwise."""
    rois = spine_anatomy(cord_gap_mm, with_cord, rx_gy)
    target = f"PTV_{rx_gy:g}Gy"
    ptv = next(r for r in rois if r.name == target).solid
    plan_day = first_fraction - timedelta(days=6)
    days = fraction_days if fraction_days is not None else tuple(2 * i for i in range(fractions))
    return CourseSpec(
        label=label,
        plan_name=f"T8 SBRT {rx_gy:g}Gy/{fractions}",
        description=f"Spine SBRT, T8 vertebral body, {rx_gy:g} Gy in {fractions} fraction(s)",
        treatment_site="T8 vertebra",
        intent="PALLIATIVE",
        rx_gy=rx_gy,
        fractions=fractions,
        target_roi=target,
        rois=rois,
        dose=TargetDose(ptv, rx_gy, SPINE_PROFILE),
        grid=(axis(-45.0, 45.0, 2.5), axis(-35.0, 75.0, 2.5), axis(-55.0, 55.0, 2.5)),
        planes_mm=planes(-70.0, 70.0),
        plan_datetime=plan_day.replace(hour=14, minute=30),
        review_datetime=plan_day.replace(hour=17, minute=5),
        reviewer=REVIEWER,
        fraction_datetimes=tuple(
            first_fraction + timedelta(days=d, minutes=15 * i) for i, d in enumerate(days)
        ),
        beams=sbrt_beams(9, 3600.0),
        isocenter_mm=(SPINE_PTV_CENTRE[0], SPINE_PTV_CENTRE[1], 0.0),
        ct=spine_ct(rois) if with_ct else None,
    )


SPINE_START = datetime(2024, 3, 4, 9, 0)  # a Monday


def spine_3fx() -> CaseSpec:
    return CaseSpec(
        name="spine_3fx",
        patient_id="RTQA-SPINE3FX",
        patient_name="RTQA^SPINE3FX",
        birth_date="19580412",
        sex="F",
        courses=(spine_course("SPINE3FX", 5.0, SPINE_START, with_ct=True),),
        protocol="NRG-BR002 (the default protocol)",
        verdict="pass",
        summary="Thoracic spine SBRT 30 Gy/3, delivered every other day within 5 days; "
        "cord and oesophagus well within the 3-fraction limits.",
    )


def spine_3fx_overrun() -> CaseSpec:
    return CaseSpec(
        name="spine_3fx_overrun",
        patient_id="RTQA-SPINEOVERRUN",
        patient_name="RTQA^SPINEOVERRUN",
        birth_date="19611023",
        sex="M",
        courses=(spine_course("SPINEOVERRUN", 5.0, SPINE_START, fraction_days=(0, 2, 24)),),
        protocol="NRG-BR002 (the default protocol)",
        verdict="deviation: fractionation (3 fractions span 24 days > 21 days)",
        summary="The spine_3fx plan; the third fraction was delayed by three weeks "
        "(records on days 0, 2 and 24).",
    )


def spine_3fx_nocord() -> CaseSpec:
    return CaseSpec(
        name="spine_3fx_nocord",
        patient_id="RTQA-SPINENOCORD",
        patient_name="RTQA^SPINENOCORD",
        birth_date="19550301",
        sex="F",
        courses=(spine_course("SPINENOCORD", 5.0, SPINE_START, with_cord=False),),
        protocol="NRG-BR002 (the default protocol)",
        verdict="not_evaluable (no spinal cord contour for the required cord limits)",
        summary="The spine_3fx plan without a SpinalCord structure.",
    )


# --------------------------------------------------------------------------------------------
# Spine with a prior course in another frame of reference
# --------------------------------------------------------------------------------------------

PRIOR_CORD_GAP_MM = 6.5
# Maps the prior CT's frame (B) into the current one (A): 2.5 deg about z, then a shift (mm).
PRIOR_TO_CURRENT = RigidZ(angle_deg=2.5, tx=6.0, ty=-9.5, tz=-160.0)


def prior_course(
    label: str, rx_gy: float, fractions: int, days: tuple[int, ...], first: datetime
) -> CourseSpec:
    """A conventional opposed-pair course to T7 (one level above) covering T6-T8, in frame B.

    The box field is aligned with frame B; anatomy is the current anatomy seen from B. The
    prior planning CT reaches further superiorly than the current one: its body outline (the
    current body, extended) covers the whole prior dose grid, as a planning system's would.
    """
    to_b = PRIOR_TO_CURRENT.inverse()
    current = spine_anatomy(PRIOR_CORD_GAP_MM)
    by_name = {r.name: r.solid for r in current}
    cx, cy = SPINE_PTV_CENTRE
    ptv_a = z_cylinder(cx, cy, SPINE_PTV_R + 4.0, 15.0, 45.0)  # T7 body with margin (frame A)
    # Field centre on T7 (frame A (0, 30, 30)), seen in B; half widths 45 x 70 x 57.5 mm.
    centre_b = tuple(float(v) for v in to_b.apply(0.0, 30.0, 30.0))
    field_dose = FieldDose(centre_b, (45.0, 70.0, 57.5), rx_gy, penumbra_mm=4.0)
    gx, gy, gz = (round(v / 3.0) * 3.0 for v in centre_b)
    grid = (
        axis(gx - 66.0, gx + 66.0, 3.0),
        axis(gy - 75.0, gy + 75.0, 3.0),
        axis(gz - 84.0, gz + 84.0, 3.0),
    )
    # contour planes (frame B) from the current body's first plane to the first plane at or
    # beyond the far edge of the dose grid's last voxel
    grid_top_b = float(grid[2].values[-1]) + grid[2].step / 2
    first_b = -70.0 - PRIOR_TO_CURRENT.tz
    last_b = PLANE_STEP_MM * math.ceil(grid_top_b / PLANE_STEP_MM - 1e-9)
    # the same planes in frame A (B differs from A by a turn about z and a shift)
    body_a = spine_body(first_b + PRIOR_TO_CURRENT.tz, last_b + PRIOR_TO_CURRENT.tz).solid
    rois = (
        RoiSpec("Body", body_a.moved(to_b), "EXTERNAL", (0, 255, 0)),
        RoiSpec(f"PTV_{rx_gy:g}Gy", ptv_a.moved(to_b), "PTV", (255, 0, 0)),
        RoiSpec("SpinalCord", by_name["SpinalCord"].moved(to_b), "ORGAN", (255, 255, 0)),
        RoiSpec("Esophagus", by_name["Esophagus"].moved(to_b), "ORGAN", (0, 128, 255)),
    )
    plan_day = first - timedelta(days=3)
    return CourseSpec(
        label=label,
        plan_name=f"T7 {rx_gy:g}Gy/{fractions}",
        description=f"Palliative opposed pair to T6-T8, {rx_gy:g} Gy in {fractions} fractions",
        treatment_site="T6-T8 vertebrae",
        intent="PALLIATIVE",
        rx_gy=rx_gy,
        fractions=fractions,
        target_roi=f"PTV_{rx_gy:g}Gy",
        rois=rois,
        dose=field_dose,
        grid=grid,
        planes_mm=planes(first_b, last_b),
        plan_datetime=plan_day.replace(hour=11, minute=0),
        review_datetime=plan_day.replace(hour=15, minute=40),
        reviewer=REVIEWER,
        fraction_datetimes=tuple(first + timedelta(days=d) for d in days),
        beams=(
            BeamSpec(1, "AP", "TREATMENT", 265.0 * rx_gy / fractions / 4.0),
            BeamSpec(2, "PA", "TREATMENT", 230.0 * rx_gy / fractions / 4.0),
            BeamSpec(3, "SETUP_KV", "SETUP", None),
        ),
        frame_key="B",
        isocenter_mm=centre_b,
        dose_encoding="deflate32",
    )


def _spine_prior(
    name: str, pid: str, prior_rx: float, prior_fx: int, prior_days, verdict: str, summary: str
) -> CaseSpec:
    current = spine_course(pid.split("-")[1], PRIOR_CORD_GAP_MM, SPINE_START)
    prior = prior_course("PRIOR_T7", prior_rx, prior_fx, prior_days, datetime(2023, 3, 6, 10, 0))
    return CaseSpec(
        name=name,
        patient_id=pid,
        patient_name="RTQA^" + pid.split("-")[1],
        birth_date="19500707",
        sex="M",
        courses=(current, prior),
        protocol="BOSS (prior radiation), `--protocol boss`",
        verdict=verdict,
        summary=summary,
        frames={"B": PRIOR_TO_CURRENT},
    )


def spine_prior() -> CaseSpec:
    return _spine_prior(
        "spine_prior",
        "RTQA-SPINEPRIOR",
        20.0,
        5,
        (0, 1, 2, 3, 4),
        "pass: cumulative cord EQD2 (alpha/beta 2) within Sahgal 2012",
        "Spine SBRT 30 Gy/3 to T8 (frame A) one year after a palliative 20 Gy/5 opposed pair "
        "to T6-T8 (frame B), with a Spatial Registration linking the frames.",
    )


def spine_prior_exceeds() -> CaseSpec:
    return _spine_prior(
        "spine_prior_exceeds",
        "RTQA-PRIOREXCEEDS",
        24.0,
        3,
        (0, 2, 4),
        "deviation: cumulative cord EQD2 (alpha/beta 2) above 70 Gy",
        "As spine_prior, but the prior course was 24 Gy in 3 fractions of 8 Gy.",
    )


# --------------------------------------------------------------------------------------------
# Central lung 50 Gy/5 with an oesophagus deviation
# --------------------------------------------------------------------------------------------

LUNG_PTV = Ellipsoid(-24.0, 16.0, 10.0, 15.0, 15.0, 15.0)
ESOPHAGUS_GAP_MM = 1.25


def lung_course(
    label: str,
    rx_gy: float,
    fractions: int,
    esophagus_gap_mm: float,
    start: datetime,
    tps_dvhs: bool = False,
) -> CourseSpec:
    """Central right-lung SBRT; the oesophagus ``esophagus_gap_mm`` from the PTV surface;
    ``tps_dvhs``: the RT Dose carries the planning system's DVHs."""
    ptv = LUNG_PTV
    gtv = Ellipsoid(ptv.cx, ptv.cy, ptv.cz, 10.0, 10.0, 10.0)
    lung_r = Ellipsoid(-66.0, 5.0, 0.0, 48.0, 70.0, 95.0)
    lung_l = Ellipsoid(66.0, 5.0, 0.0, 48.0, 70.0, 95.0)
    # Oesophagus (radius 7 mm) posterior-medial of the PTV.
    direction = np.array([0.55, 0.835]) / np.hypot(0.55, 0.835)
    ex, ey = np.array([ptv.cx, ptv.cy]) + (15.0 + esophagus_gap_mm + 7.0) * direction
    target = f"PTV_{rx_gy:g}Gy"
    rois = (
        RoiSpec(
            "Body", z_cylinder(0.0, 0.0, 170.0, -110.0, 110.0, b=120.0), "EXTERNAL", (0, 255, 0)
        ),
        RoiSpec(target, ptv, "PTV", (255, 0, 0)),
        RoiSpec("GTV", gtv, "GTV", (255, 128, 0)),
        RoiSpec("Lung_L", lung_l, "ORGAN", (128, 200, 255)),
        RoiSpec("Lung_R", lung_r, "ORGAN", (100, 180, 255)),
        RoiSpec("Lungs", Union((lung_r, lung_l)), "ORGAN", (80, 160, 255)),
        RoiSpec(
            "Esophagus", z_cylinder(float(ex), float(ey), 7.0, -80.0, 80.0), "ORGAN", (0, 128, 255)
        ),
        RoiSpec("Bronchus", z_cylinder(4.0, -2.0, 9.0, 20.0, 60.0), "ORGAN", (200, 200, 200)),
        RoiSpec("Heart", Ellipsoid(20.0, -40.0, -60.0, 45.0, 35.0, 40.0), "ORGAN", (255, 0, 128)),
        RoiSpec("SpinalCord", z_cylinder(0.0, 85.0, 5.0, -80.0, 80.0), "ORGAN", (255, 255, 0)),
    )
    plan_day = start - timedelta(days=7)
    return CourseSpec(
        label=label,
        plan_name=f"RUL SBRT {rx_gy:g}Gy/{fractions}",
        description=f"Central lung SBRT, right upper lobe, {rx_gy:g} Gy in {fractions} fraction(s)",
        treatment_site="Lung, right, central",
        intent="CURATIVE",
        rx_gy=rx_gy,
        fractions=fractions,
        target_roi=target,
        rois=rois,
        dose=TargetDose(ptv, rx_gy, LUNG_PROFILE),
        grid=(axis(-115.0, 115.0, 2.5), axis(-77.5, 92.5, 2.5), axis(-102.5, 100.0, 2.5)),
        planes_mm=planes(-110.0, 110.0),
        plan_datetime=plan_day.replace(hour=13, minute=0),
        review_datetime=plan_day.replace(hour=16, minute=20),
        reviewer=REVIEWER,
        fraction_datetimes=every_other_day(start, fractions),
        beams=sbrt_beams(10, 2800.0 * rx_gy / fractions / 10.0),
        isocenter_mm=(ptv.cx, ptv.cy, ptv.cz),
        dose_encoding="deflate32",
        tps_dvhs=tps_dvhs,
    )


def lung_5fx() -> CaseSpec:
    course = lung_course(
        "LUNG5FX", 50.0, 5, ESOPHAGUS_GAP_MM, datetime(2024, 5, 13, 10, 30), tps_dvhs=True
    )
    return CaseSpec(
        name="lung_5fx",
        patient_id="RTQA-LUNG5FX",
        patient_name="RTQA^LUNG5FX",
        birth_date="19470215",
        sex="M",
        courses=(course,),
        protocol="NRG-BR002 (the default protocol)",
        verdict="deviation: Esophagus D0.03cc above the 5-fraction limit (35 Gy)",
        summary="Central right-lung SBRT 50 Gy/5 with the oesophagus 1.25 mm from the PTV; "
        "every other limit is met. Its RT Dose carries the planning system's DVHs (DVHSequence) "
        "of every ROI but the body, computed from the closed-form dose on finely sampled "
        "contours.",
    )


# --------------------------------------------------------------------------------------------
# Bone SBRT (right acetabulum)
# --------------------------------------------------------------------------------------------


def bone_course(label: str, rx_gy: float, fractions: int, start: datetime) -> CourseSpec:
    """Bone SBRT to a right acetabular lesion with femoral head, bowel, rectum and bladder."""
    ptv = Ellipsoid(-62.0, 10.0, 0.0, 14.0, 14.0, 14.0)
    gtv = Ellipsoid(-62.0, 10.0, 0.0, 9.0, 9.0, 9.0)
    target = f"PTV_{rx_gy:g}Gy"
    rois = (
        RoiSpec("Body", z_cylinder(0.0, 0.0, 180.0, -80.0, 80.0, b=120.0), "EXTERNAL", (0, 255, 0)),
        RoiSpec(target, ptv, "PTV", (255, 0, 0)),
        RoiSpec("GTV", gtv, "GTV", (255, 128, 0)),
        RoiSpec(
            "Femur_Head_R", Ellipsoid(-85.0, 15.0, -48.0, 23.0, 23.0, 23.0), "ORGAN", (200, 200, 0)
        ),
        RoiSpec(
            "Bowel_Small", Ellipsoid(-33.0, -30.0, 20.0, 40.0, 28.0, 35.0), "ORGAN", (255, 170, 0)
        ),
        RoiSpec("Rectum", z_cylinder(0.0, 60.0, 15.0, -60.0, 20.0), "ORGAN", (150, 75, 0)),
        RoiSpec(
            "Bladder", Ellipsoid(0.0, -35.0, -35.0, 38.0, 32.0, 30.0), "ORGAN", (255, 255, 128)
        ),
    )
    plan_day = start - timedelta(days=5)
    return CourseSpec(
        label=label,
        plan_name=f"R ACETAB {rx_gy:g}Gy/{fractions}",
        description=f"Bone SBRT, right acetabulum, {rx_gy:g} Gy in {fractions} fraction(s)",
        treatment_site="Pelvis, right acetabulum",
        intent="PALLIATIVE",
        rx_gy=rx_gy,
        fractions=fractions,
        target_roi=target,
        rois=rois,
        dose=TargetDose(ptv, rx_gy, SPINE_PROFILE),
        grid=(axis(-120.0, 40.0, 2.5), axis(-70.0, 77.5, 2.5), axis(-75.0, 75.0, 2.5)),
        planes_mm=planes(-80.0, 80.0),
        plan_datetime=plan_day.replace(hour=10, minute=10),
        review_datetime=plan_day.replace(hour=12, minute=0),
        reviewer=REVIEWER,
        fraction_datetimes=every_other_day(start, fractions),
        beams=sbrt_beams(8, 4800.0 * rx_gy / fractions / 20.0),
        isocenter_mm=(ptv.cx, ptv.cy, ptv.cz),
    )


def bone_1fx() -> CaseSpec:
    course = bone_course("BONE1FX", 20.0, 1, datetime(2024, 9, 17, 8, 45))
    return CaseSpec(
        name="bone_1fx",
        patient_id="RTQA-BONE1FX",
        patient_name="RTQA^BONE1FX",
        birth_date="19660930",
        sex="F",
        courses=(course,),
        protocol="AAPM TG-101, `--protocol tg101`",
        verdict="pass",
        summary="Single-fraction 20 Gy SBRT to a right acetabular lesion; femoral head, small "
        "bowel, rectum and bladder within the 1-fraction limits.",
    )


SAMPLE_CASES = (
    spine_3fx,
    spine_3fx_overrun,
    spine_3fx_nocord,
    lung_5fx,
    bone_1fx,
    spine_prior,
    spine_prior_exceeds,
)


def sample_cases() -> tuple[CaseSpec, ...]:
    """The seven committed cases, in README order."""
    return tuple(make() for make in SAMPLE_CASES)
