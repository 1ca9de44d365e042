"""The sample-data README: construction, protocol, intended verdict and reference numbers.

Numbers are computed here from the closed forms (see :mod:`rtqa.synthetic.reference`), so the
README always matches the files written next to it.
"""

from __future__ import annotations

import numpy as np

from rtqa.synthetic.dose import FieldDose, TargetDose
from rtqa.synthetic.reference import sampled_dvh
from rtqa.synthetic.shapes import slab_volume_cc
from rtqa.synthetic.spec import CaseSpec, CourseSpec

CORD_ALPHA_BETA = 2.0

INTRO = """\
# Sample data

Synthetic DICOM-RT cases for the README demo, the tests and the benchmarks. No patient data:
every patient, plan and date is invented, and every structure and dose is a closed-form phantom.

Regenerate (byte for byte identical, fixed dates, deterministic UIDs):

```bash
python -m rtqa.synthetic sample_data
```

`python -m rtqa.synthetic OUT --cases N [--seed S]` writes N varied cases for batch tests and
benchmarks instead (not committed; about 10 % of them deliberately corrupt, listed in
`OUT/manifest.json`).

## Construction

- Coordinates: DICOM patient coordinates in mm (x to the patient's left, y posterior, z superior).
- Structures are elliptic cylinders along z, ellipsoids (spheres) or unions of them, contoured on
  the planes z = k x 2.5 mm with 64 points per ring. Ring vertices sit on the ellipse scaled by
  sqrt(2 pi / (64 sin(2 pi / 64))) = 1.0008, so each polygon has exactly the ellipse's area.
  Cylinders end half a plane spacing beyond their first and last contour, so their slab-model
  volume equals the analytic volume; for ellipsoids the two differ by the slab staircase (both
  are listed). ROIVolume (3006,002C) carries the slab-model volume.
- SBRT doses depend only on the signed distance s (mm, negative inside) to the PTV surface:
  D = Rx x [a·½erfc((s−s1)/w1) + b·½erfc((s−s2)/w2)], evaluated at the dose-grid points
  (`rtqa.synthetic.dose.TargetDose.dose_at`). Isodose surfaces are parallel surfaces of the PTV,
  so CI, R50% and the isodose volumes are closed-form (Steiner's formula for the cylinder).
- The prior courses are conventional opposed pairs: a box field with error-function penumbrae
  (σ = 4 mm), uniform (100 % of its prescription) over T6–T8 including the cord. Their planning
  CT reaches further superiorly: the prior body outline (the current one, extended) covers the
  whole prior dose grid.
- Dose grids: 2.5 mm (3 mm for the prior courses). RT Dose pixels: 16-bit RLE Lossless for the
  spine and bone plans, 32-bit with the deflated transfer syntax for lung_5fx and the prior
  courses (DoseGridScaling: the largest that fits the maximum into the stored range).
- Reference numbers below integrate the closed-form dose over the slab-model solid of each
  structure (0.25–1 mm sampling). A perfect dose engine on an infinitely fine grid gives these;
  rtqa's numbers on the 2.5 mm grid should agree to within the grid interpolation error
  (typically < 1 % of Rx in the high-dose region, more in steep gradients).
- Files: `RP.<label>.dcm` plan, `RS.<label>.dcm` structure set, `RD.<label>.dcm` dose,
  `RT.<label>.fx<n>.dcm` treatment records, `RE.<label>.dcm` spatial registration,
  `CT.<n>.dcm` CT slices (spine_3fx only; 96 x 96, 4 mm pixels, deflated). rtqa links files by
  UID, never by name.
"""


def eqd2(dose_gy, fractions: int, alpha_beta: float):
    """EQD2 (Gy) of a total dose given in ``fractions`` equal fractions."""
    d = np.asarray(dose_gy, dtype=float)
    return d * (d / fractions + alpha_beta) / (2.0 + alpha_beta)


def _fmt(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}"


def course_lines(course: CourseSpec) -> list[str]:
    span = (course.fraction_datetimes[-1].date() - course.fraction_datetimes[0].date()).days
    lines = [
        f"Plan `{course.label}` ({course.plan_name}): {course.description}; "
        f"{course.rx_gy:g} Gy in {course.fractions} fraction(s) prescribed to "
        f"`{course.target_roi}` (DoseReferenceSequence, TargetPrescriptionDose); "
        f"plan approved {course.review_datetime:%Y-%m-%d} by {course.reviewer}.",
        "",
        "Fractions delivered (treatment records): "
        + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in course.fraction_datetimes)
        + f" (span {span} days).",
        "",
    ]
    dose = course.dose
    if isinstance(dose, TargetDose):
        t = dose.target
        rx = course.rx_gy
        lines += [
            f"Dose: max {_fmt(dose.max_gy)} Gy ({_fmt(100 * dose.max_gy / rx, 1)} % of Rx); "
            f"the Rx isodose lies {_fmt(dose.profile.distance_at(1.0))} mm outside the PTV "
            f"surface, gradient there {_fmt(dose.profile.gradient_pct_per_mm(0.0), 1)} %/mm; "
            f"CI (V_Rx/V_PTV) {_fmt(dose.isodose_volume_cc(1.0) / t.volume_cc, 3)}; "
            f"R50% {_fmt(dose.isodose_volume_cc(0.5) / t.volume_cc, 3)}; "
            f"dose 2 cm from the PTV {_fmt(100 * float(dose.profile(20.0)), 1)} % of Rx "
            "(all closed-form).",
            "",
        ]
    else:
        lines += [
            f"Dose: box field, {course.rx_gy:g} Gy on the plateau, half widths "
            f"{dose.half_mm} mm (x, y, z of frame {course.frame_key}).",
            "",
        ]
    lines += [
        "| structure | type | volume analytic [cc] | volume contours [cc] | Max [Gy] | "
        "D0.03cc [Gy] | D0.35cc [Gy] | D1.2cc [Gy] | D5cc [Gy] | Mean [Gy] | V100% [%] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for roi in course.rois:
        analytic = roi.solid.volume_cc
        slab = slab_volume_cc(roi.solid, course.planes_mm)
        row = f"| {roi.name} | {roi.interpreted_type} | {_fmt(analytic, 3)} | {_fmt(slab, 3)} |"
        if roi.interpreted_type == "EXTERNAL":
            lines.append(row + " – | – | – | – | – | – | – |")
            continue
        dvh = sampled_dvh(roi.solid, course.planes_mm, course.dose.dose_at)
        cells = [dvh.max_gy, dvh.d_cc(0.03)]
        cells += [dvh.d_cc(v) if v < dvh.volume_cc else float("nan") for v in (0.35, 1.2, 5.0)]
        cells += [dvh.mean_gy, dvh.v_gy_pct(course.rx_gy)]
        row += " " + " | ".join("–" if np.isnan(c) else _fmt(c) for c in cells) + " |"
        lines.append(row)
    return [*lines, ""]


def prior_lines(case: CaseSpec) -> list[str]:
    """Cumulative cord EQD2 (α/β = 2), voxel by voxel, on the current cord contours."""
    current, prior = case.courses[0], case.courses[1]
    cord = next(r for r in current.rois if r.name == "SpinalCord")
    rigid_b_to_a = case.frames[prior.frame_key]
    assert isinstance(prior.dose, FieldDose)
    prior_in_a = prior.dose.seen_from(rigid_b_to_a.inverse())
    from rtqa.synthetic.reference import slab_samples

    pts, dv = slab_samples(cord.solid, current.planes_mm, 0.25)
    x, y, z = pts.T
    cur = eqd2(current.dose.dose_at(x, y, z), current.fractions, CORD_ALPHA_BETA)
    pri = eqd2(prior_in_a.dose_at(x, y, z), prior.fractions, CORD_ALPHA_BETA)

    def d003(values: np.ndarray) -> float:
        n = int(np.ceil(0.03 / dv - 1e-9))
        return float(np.sort(values)[::-1][n - 1])

    cur_max, pri_max, cum_max = d003(cur), d003(pri), d003(cur + pri)
    interval = (current.fraction_datetimes[0].date() - prior.fraction_datetimes[-1].date()).days
    m = rigid_b_to_a
    return [
        f"Prior course `{prior.label}` in frame of reference B; the registration "
        f"`RE.{current.label}.dcm` "
        f"maps B into the current frame A: rotation {m.angle_deg:g}° about z, then translation "
        f"({m.tx:g}, {m.ty:g}, {m.tz:g}) mm (p_A = R·p_B + t; the item of frame A carries the "
        "identity).",
        "",
        "Spinal cord, EQD2 with α/β = 2 Gy, converted voxel by voxel (d = D/n of each course), "
        "evaluated on the current SpinalCord:",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| current course D0.03cc EQD2 (n = {current.fractions}) | {_fmt(cur_max)} Gy |",
        f"| prior course D0.03cc EQD2 (n = {prior.fractions}) | {_fmt(pri_max)} Gy |",
        f"| cumulative D0.03cc EQD2 | {_fmt(cum_max)} Gy |",
        f"| current / cumulative | {_fmt(cur_max / cum_max, 3)} |",
        f"| interval between courses | {interval} days |",
        "",
        "Sahgal et al. 2012 (thecal sac, α/β 2): cumulative Pmax EQD2 <= 70 Gy, SBRT course Pmax "
        "EQD2 <= 25 Gy, SBRT/cumulative <= 0.5, interval >= 5 months.",
        "",
    ]


def case_section(case: CaseSpec) -> list[str]:
    lines = [
        f"## {case.name}",
        "",
        case.summary,
        "",
        f"- Patient: `{case.patient_name}` (ID `{case.patient_id}`)",
        f"- Protocol: {case.protocol}",
        f"- Intended verdict: **{case.verdict}**",
        "",
    ]
    for i, course in enumerate(case.courses):
        if i:
            lines += [f"### Prior course `{course.label}`", ""]
        lines += course_lines(course)
    if len(case.courses) > 1:
        lines += prior_lines(case)
    return lines


def readme_text(cases: tuple[CaseSpec, ...]) -> str:
    overview = [
        "## Cases",
        "",
        "| case | regimen | protocol | intended verdict |",
        "|---|---|---|---|",
    ]
    for c in cases:
        regimen = " + prior ".join(f"{co.rx_gy:g} Gy/{co.fractions}" for co in c.courses)
        overview.append(f"| {c.name} | {regimen} | {c.protocol} | {c.verdict} |")
    body = [INTRO, *overview, ""]
    for c in cases:
        body += case_section(c)
    return "\n".join(body).rstrip() + "\n"
