"""Every organ with prior-radiation limits is judged by the prior rules, or a finding says why
not: an organ whose only limits are under ``prior_radiation`` (no limits of its own, not
required), the body outline (an EXTERNAL ROI), and an organ that is not contoured, matched
ambiguously or scoped to other sites in a course with a prior course.

Sample case: spine_prior (30 Gy/3 now, 20 Gy/5 before, BOSS with limits added in a copy of
constraints/boss.yaml). Phantom: the uniform doses of tests/test_prior_rules.py (current 9 Gy in
3 fractions, prior 20 Gy in 5), where EQD2 at alpha/beta 3 Gy is 9 (3 + 3) / 5 = 10.8 Gy now,
20 (4 + 3) / 5 = 28 Gy before, 38.8 Gy cumulative."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_prior_rules import FRAME_A, by_rule, sphere_roi, uniform_setup

from rtqa.check import CheckOptions, run_check
from rtqa.geometry.sampling import voxel_edges
from rtqa.geometry.transform import invert, map_points, resample_dose
from rtqa.model import DoseGrid, Status
from rtqa.protocol.loader import load_protocol_file
from rtqa.protocol.prior_rules import evaluate_prior
from rtqa.protocol.prior_sampling import grid_occupancy
from rtqa.radiobiology import eqd2

ROOT = Path(__file__).resolve().parents[1]
BOSS = (ROOT / "constraints" / "boss.yaml").read_text()
SPINE_PRIOR = str(ROOT / "sample_data" / "spine_prior")

ESOPHAGUS = """  - roi:
      name: Esophagus
      aliases: ["oesophagus", "esoph", "Oesophagus"]
    title: "Esophagus"
"""
ESOPHAGUS_LIMITS = """    source: *tg101
    confidence: secondary
    limits:
      1:
        D5cc[Gy]: "<= 11.9"
        D0.035cc[Gy]: "<= 15.4"
      3:
        D5cc[Gy]: "<= 17.7"
        D0.035cc[Gy]: "<= 25.2"
      5:
        D5cc[Gy]: "<= 19.5"
        D0.035cc[Gy]: "<= 35"
"""


def _limit(metric: str, condition: str) -> str:
    return f'      {metric}: {{limit: "{condition}", source: *sahgal, confidence: unverified}}\n'


def boss_with(
    tmp_path: Path, name: str, cumulative: dict[str, str], organs: str = "", own: bool = True
) -> Path:
    """A copy of BOSS with ``cumulative`` (organ -> its limit lines) added first under
    ``prior_radiation.cumulative_eqd2``, ``organs`` (YAML list items) added first under
    ``organs``; without ``own`` the oesophagus loses its limits of its own."""
    text = BOSS
    lines = "".join(f"    {organ}:\n{rows}" for organ, rows in cumulative.items())
    for old, new in (("  cumulative_eqd2:\n", lines), ("organs:\n", organs)):
        assert text.count(old) == 1
        text = text.replace(old, old + new, 1)
    if not own:
        assert text.count(ESOPHAGUS + ESOPHAGUS_LIMITS) == 1
        text = text.replace(ESOPHAGUS + ESOPHAGUS_LIMITS, ESOPHAGUS, 1)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def check(path: str, protocol: Path | str):
    (r,) = run_check([path], CheckOptions(protocol=str(protocol), keep_context=True))
    return r


def prior_rows(r, organ: str, rule: str = "cumulative_eqd2"):
    return [f for f in r.findings if f.group == "prior" and f.rule == rule and f.match == organ]


# --- 1. an organ whose only limits are prior-radiation limits --------------------------------


def test_an_organ_with_only_a_cumulative_limit_is_judged(tmp_path):
    """The oesophagus without limits of its own (BOSS lists it with TG-101 limits; here they
    are removed) and not required, with a cumulative point-maximum limit (<= 45 Gy EQD2 at the
    BOSS default alpha/beta 3 Gy): judged, 28 Gy prior (20 Gy/5 plateau) + 11.54 Gy now =
    39.54 Gy, a pass; the same value as where it keeps its own limits, and as the EQD2 of the
    organ rules' own maximum (9.41 Gy physical in 3 fractions) on the 28 Gy plateau."""
    limit = {"Esophagus": _limit("Max[Gy]", "<= 45")}
    alone = check(SPINE_PRIOR, boss_with(tmp_path, "alone", limit, own=False))
    (cum,) = prior_rows(alone, "Esophagus")
    assert cum.roi == "Esophagus" and cum.metric == "EQD2cum Max"
    assert cum.value == pytest.approx(39.54, abs=0.01)
    assert cum.status is Status.PASS and cum.margin == pytest.approx(45 - cum.value, abs=1e-9)
    assert cum.limits == {"limit": "<= 45"}
    assert cum.message.startswith("Esophagus Max[Gy] EQD2: prior 28.00 Gy, current 11.54 Gy")
    # no organ-group row for it: it has no limits of its own (not 'no limits for 3 fractions')
    assert not [f for f in alone.findings if f.group == "organ" and f.roi == "Esophagus"]
    assert alone.exit_code == 0
    # with its own TG-101 limits too, the organ rules judge it and hand the same ROI over
    both = check(SPINE_PRIOR, boss_with(tmp_path, "both", limit, own=True))
    (same,) = prior_rows(both, "Esophagus")
    assert same.value == pytest.approx(cum.value, abs=1e-9) and same.status is Status.PASS
    physical = both.context.dvhs["Esophagus"].dvh.max_gy
    assert physical == pytest.approx(9.41, abs=0.01)
    assert cum.value == pytest.approx(28.0 + eqd2(physical, 3, 3.0), abs=0.05)
    # the limit moved below the value: a deviation, exit 1
    strict = {"Esophagus": _limit("Max[Gy]", "<= 35")}
    r = check(SPINE_PRIOR, boss_with(tmp_path, "strict", strict, own=False))
    (cum,) = prior_rows(r, "Esophagus")
    assert cum.status is Status.MAJOR and cum.value == pytest.approx(39.54, abs=0.01)
    assert r.exit_code == 1


# --- 2. an organ with prior limits that cannot be judged ------------------------------------

UNJUDGED_ORGANS = """  - roi: {name: Mediastinum, aliases: [SpinalCord, Esophagus]}
    title: "matches two ROIs of spine_prior at the alias level"
  - roi: {name: Thyroid}
    title: "not contoured in spine_prior"
  - roi: {name: Brain}
    sites: [cns]
    title: "judged for CNS targets only"
"""
UNJUDGED_LIMITS = {
    "CaudaEquina": _limit("Max[Gy]", "<= 40"),  # limits of its own, optional, not contoured
    "Mediastinum": _limit("Max[Gy]", "<= 80"),
    "Thyroid": _limit("Mean[Gy]", "<= 20"),
    "Brain": _limit("Max[Gy]", "<= 60"),
}


def test_an_organ_with_prior_limits_not_judged_is_not_evaluable(tmp_path):
    """spine_prior passes BOSS (exit 0). With cumulative limits on organs it does not contour
    (CaudaEquina, with limits of its own; Thyroid, without) or matches ambiguously (an organ
    whose aliases name both the cord and the oesophagus), each is a not-evaluable prior finding
    naming the organ, the section, its limit and why, and the course is not fully evaluable
    (exit 4). An organ scoped to other sites is said to be unjudged, for information. The same
    protocol on a course without a prior (spine_3fx) gives the findings plain BOSS gives."""
    protocol = boss_with(tmp_path, "unjudged", UNJUDGED_LIMITS, UNJUDGED_ORGANS)
    r = check(SPINE_PRIOR, protocol)
    assert r.exit_code == 4 and r.verdict is Status.NOT_EVALUABLE
    (cauda,) = prior_rows(r, "CaudaEquina")
    assert cauda.status is Status.NOT_EVALUABLE and cauda.roi is None
    assert cauda.message.startswith(
        "CaudaEquina: prior_radiation cumulative_eqd2 limits (Max[Gy] <= 40) not judged: "
        "no ROI matched (looked for 'CaudaEquina', 'cauda equina', 'cauda')"
    )
    assert cauda.limits == {"limit": "<= 40"} and cauda.confidence == "unverified"
    (thyroid,) = prior_rows(r, "Thyroid")
    assert thyroid.status is Status.NOT_EVALUABLE
    assert thyroid.message.startswith(
        "Thyroid: prior_radiation cumulative_eqd2 limits (Mean[Gy] <= 20) not judged: "
        "no ROI matched"
    )
    (ambiguous,) = prior_rows(r, "Mediastinum")
    assert ambiguous.status is Status.NOT_EVALUABLE
    assert "not judged: ambiguous, several ROIs match ('SpinalCord', 'Esophagus')" in (
        ambiguous.message
    )
    (brain,) = prior_rows(r, "Brain")
    assert brain.status is Status.INFO
    assert brain.message.endswith(
        "not judged: the protocol judges Brain only for sites cns, and no target of them is treated"
    )
    # what is judged stands: the cord's cumulative maximum passes as under plain BOSS
    (cord,) = prior_rows(r, "SpinalCord")
    assert cord.status is Status.PASS and cord.value == pytest.approx(50.76, abs=0.01)
    # the organ-group findings are those of plain BOSS (the prior-only organs add none)
    plain = check(SPINE_PRIOR, "boss")
    assert plain.exit_code == 0

    def organ_rows(result):
        return [(f.rule, f.status, f.roi, f.message) for f in result.findings if f.group == "organ"]

    assert organ_rows(r) == organ_rows(plain)
    # no prior course: nothing is added, nothing is not evaluable for these limits
    spine = str(ROOT / "sample_data" / "spine_3fx")
    without, base = check(spine, protocol), check(spine, "boss")
    assert [(f.group, f.rule, f.status, f.roi, f.value) for f in without.findings] == [
        (f.group, f.rule, f.status, f.roi, f.value) for f in base.findings
    ]
    assert without.exit_code == base.exit_code


# --- 3. the body outline (EXTERNAL) with prior limits ----------------------------------------


def test_a_body_outline_with_cumulative_limits_is_judged_on_a_phantom(tmp_path):
    """An EXTERNAL sphere (radius 20 mm, inside both dose grids) under uniform doses: cumulative
    mean 28 + 10.8 = 38.8 Gy EQD2 (> 30: major) and V20Gy 33.51 cc, its whole volume (> 10 cc:
    major); minus the PTV (radius 8 mm) the mean is the same and the volume 31.37 cc. Without
    limits on it the body is not judged, as before."""
    limits = {"External": _limit("Mean[Gy]", "<= 30") + _limit("V20Gy[cc]", "<= 10")}
    protocol = load_protocol_file(boss_with(tmp_path, "body", limits))
    inp = uniform_setup()
    body = sphere_roi(3, "Body", (0, 0, 0), 20.0, FRAME_A, kind="EXTERNAL")
    inp.organs["External"], inp.body = body, body
    found, ctx = evaluate_prior(inp, protocol)
    rows = {f.metric: f for f in by_rule(found, "cumulative_eqd2", "Body")}
    mean, v20 = rows["EQD2cum Mean"], rows["EQD2cum V20Gy"]
    assert mean.match == "External" and mean.value == pytest.approx(28.0 + 10.8, abs=1e-9)
    assert mean.status is Status.MAJOR and mean.margin == pytest.approx(30 - 38.8, abs=1e-9)
    sphere_cc = 4 / 3 * np.pi * 20.0**3 / 1000
    assert v20.value == pytest.approx(sphere_cc, rel=1e-3) and v20.status is Status.MAJOR
    assert v20.unit == "cc" and f"prior {v20.value:.2f} cc" in v20.message
    (ab,) = by_rule(found, "alpha_beta", "Body")
    assert ab.value == 3.0
    # the body is dosed by both courses, but it is no organ of the ESTRO-EORTC type
    (kind,) = by_rule(found, "reirradiation_type")
    assert "SpinalCord" in kind.message and "External" not in kind.message
    # a body minus the PTV ('External - PTV'), as the organ rules hand it over
    ptv = inp.targets["PTV"][0]
    inp.organ_parts["External"] = ((), (ptv,))
    found, ctx = evaluate_prior(inp, protocol)
    rows = {f.metric: f for f in by_rule(found, "cumulative_eqd2", "Body - PTV")}
    assert rows["EQD2cum Mean"].value == pytest.approx(38.8, abs=1e-9)
    minus_cc = sphere_cc - 4 / 3 * np.pi * 8.0**3 / 1000
    assert rows["EQD2cum V20Gy"].value == pytest.approx(minus_cc, rel=1e-3)
    assert ctx.organ_dvhs["External"].cumulative.total_volume_cc == pytest.approx(
        minus_cc, rel=1e-3
    )
    # no limits on the body: no rows for it
    found, _ = evaluate_prior(inp, load_protocol_file(ROOT / "constraints" / "boss.yaml"))
    assert not [f for f in found if f.match == "External"]


def test_a_body_outline_with_cumulative_limits_is_judged_in_a_check(tmp_path):
    """spine_prior's Body (EXTERNAL, named for matching only in BOSS) with cumulative limits:
    handed to the prior rules and judged. 1171 cc of it lies inside the current dose grid,
    6708 cc beyond, where the prior dose is sampled and the current dose taken from 0 Gy to the
    most on the current grid's faces (3.27 Gy); 5377 cc lies beyond the prior grid too, where
    the prior dose is taken from 0 Gy to the most on that grid's faces (1.31 Gy). The cumulative
    V20Gy, 1111-1131 cc between those ends, exceeds 500 cc either way (major, exit 1); the mean,
    5.16-8.01 Gy, is within 30 Gy either way (pass). Both ends of both figures agree with an
    independent computation: the EQD2 grids of the two courses (alpha/beta 3 Gy) read over the
    body inside the current grid, plus the body beyond it rasterised on a finer lattice aligned
    with the grid's faces with the prior dose resampled there; the prior grid's bound from the
    faces the body's contour points cross in the prior frame."""
    limits = {"External": _limit("Mean[Gy]", "<= 30") + _limit("V20Gy[cc]", "<= 500")}
    r = check(SPINE_PRIOR, boss_with(tmp_path, "body", limits))
    rows = {f.metric: f for f in prior_rows(r, "External")}
    mean, v20 = rows["EQD2cum Mean"], rows["EQD2cum V20Gy"]
    assert mean.roi == v20.roi == "Body"
    bounds_text = (
        "with the current dose beyond the grid anywhere from 0 Gy to 3.27 Gy and the dose of "
        "'PRIOR_T7' beyond its grid anywhere from 0 Gy to 1.31 Gy"
    )
    assert v20.status is Status.MAJOR and v20.value == pytest.approx(1130.51, abs=0.01)
    assert v20.message.endswith(f"{bounds_text}, EQD2cum V20Gy lies between 1111 and 1131")
    assert mean.status is Status.PASS and mean.value == pytest.approx(8.013, abs=1e-3)
    assert mean.message.endswith(f"{bounds_text}, EQD2cum Mean lies between 5.155 and 8.013")
    assert "6708 cc of 'Body' lies outside the current dose grid: the prior dose is sampled" in (
        mean.message
    )
    assert "5377 cc of 'Body' lies outside the dose grid of 'PRIOR_T7'" in mean.message
    assert r.exit_code == 1
    res = r.context.prior.organ_dvhs["External"]
    assert res.outside_cc == pytest.approx(6708.4, abs=0.1) and res.unknown_prior_cc == 0.0
    ((label, unknown_cc, prior_bound),) = res.prior_parts
    assert label == "PRIOR_T7" and unknown_cc == pytest.approx(5376.8, abs=0.1)
    ctx = r.context.prior
    assert ctx.alpha_beta_gy == 3.0
    (prior,) = ctx.priors
    back = None if prior.matrix is None else invert(prior.matrix)
    body = r.context.course.cases[0].structure_set.roi("Body")
    # the prior grid's faces the body crosses, from its contour points in the prior frame
    points = np.concatenate(
        [
            np.column_stack([q.exterior, np.full(len(q.exterior), pl.z_mm)])
            for pl in body.planes
            for q in pl.polygons
        ]
    )
    q = map_points(points, back)
    dose, faces = prior.grid.dose_gy, []
    for column, axis_mm, axis in (
        (0, prior.grid.x_mm, 2),
        (1, prior.grid.y_mm, 1),
        (2, prior.grid.z_mm, 0),
    ):
        if q[:, column].min() < axis_mm[0]:
            faces.append(np.take(dose, 0, axis=axis).max())
        if q[:, column].max() > axis_mm[-1]:
            faces.append(np.take(dose, -1, axis=axis).max())
    assert prior_bound == pytest.approx(max(faces), rel=1e-12)
    prior_top = float(eqd2(prior_bound, prior.fractions, 3.0))
    current_top = float(eqd2(res.beyond_bound_gy, 3, 3.0))
    # inside the current grid: the two courses' EQD2 grids
    grid = ctx.cumulative
    inside = grid_occupancy(body, grid)
    now, before = ctx.current_eqd2_gy, ctx.prior_eqd2_gy
    # beyond it: the body on a lattice of half the grid's spacing, aligned with its faces
    lattice, beyond = _lattice_beyond(grid, (-200, -200, -90, 200, 200, 90), 0.5)
    prior_gy, _ = resample_dose(prior.grid, lattice, back)
    prior_eqd2 = eqd2(np.nan_to_num(prior_gy, nan=0.0), prior.fractions, 3.0)
    part = grid_occupancy(body, lattice) * beyond
    assert _count(part, lattice) == pytest.approx(res.outside_cc, rel=1e-6)
    unknown = np.isnan(before), np.isnan(prior_gy)
    assert _count(inside * unknown[0], grid) + _count(part * unknown[1], lattice) == (
        pytest.approx(unknown_cc, rel=1e-3)
    )
    total = _count(inside, grid) + _count(part, lattice)
    figures = []
    for top_now, top_prior in ((0.0, 0.0), (current_top, prior_top)):
        cum_in = now + np.where(unknown[0], top_prior, np.nan_to_num(before))
        cum_out = top_now + np.where(unknown[1], top_prior, prior_eqd2)
        v20_cc = _count_at_least(inside, grid, cum_in, 20.0)
        v20_cc += _count_at_least(part, lattice, cum_out, 20.0)
        integral = _count(inside * cum_in, grid) + _count(part * cum_out, lattice)
        figures.append((v20_cc, integral / total))
    (v20_low, mean_low), (v20_high, mean_high) = figures
    assert (v20_low, v20_high) == (
        pytest.approx(1111.49, rel=3e-3),
        pytest.approx(v20.value, rel=3e-3),
    )
    assert (mean_low, mean_high) == (
        pytest.approx(5.155, rel=5e-3),
        pytest.approx(mean.value, rel=5e-3),
    )


def _count(fractions: np.ndarray, lattice) -> float:
    """Volume (cc) of the cells' ``fractions`` on a lattice of even spacing."""
    steps = [abs(float(a[1] - a[0])) for a in (lattice.x_mm, lattice.y_mm, lattice.z_mm)]
    return float(fractions.sum()) * float(np.prod(steps)) / 1000.0


def _count_at_least(fractions: np.ndarray, lattice, dose: np.ndarray, level: float) -> float:
    """Volume (cc) of the cells' ``fractions`` where ``dose`` is at least ``level`` (NaN: not)."""
    return _count(fractions * (np.nan_to_num(dose, nan=-np.inf) >= level), lattice)


def _lattice_beyond(grid, bounds, share: float):
    """A lattice spaced ``share`` times ``grid``'s spacing whose cell faces include the grid's
    outer faces, covering ``bounds`` (mm), and the mask of its cells beyond the grid."""
    axes, inside = [], []
    for a, lo, hi in zip((grid.x_mm, grid.y_mm, grid.z_mm), bounds[:3], bounds[3:], strict=True):
        edges = voxel_edges(a)
        h = share * float(a[1] - a[0])
        start = edges[0] - h * np.ceil((edges[0] - lo) / h)
        centres = np.arange(start + h / 2, hi + h, h)
        axes.append(centres)
        inside.append((centres > edges[0]) & (centres < edges[-1]))
    x, y, z = axes
    lattice = DoseGrid(np.zeros((z.size, y.size, x.size)), x, y, z, grid.frame_of_reference_uid)
    ix, iy, iz = inside
    return lattice, ~(iz[:, None, None] & iy[None, :, None] & ix[None, None, :])


def test_an_organ_with_prior_limits_and_no_usable_contour_is_not_evaluable(tmp_path):
    """spine_prior with the oesophagus's contours exported OPEN_PLANAR (no volume): its
    cumulative limit is not judged, and a prior finding says so with the structure set's own
    words; the organ rules' finding on its limits of its own stays."""
    case = tmp_path / "spine_prior"
    shutil.copytree(SPINE_PRIOR, case)
    path = case / "RS.SPINEPRIOR.dcm"
    ds = pydicom.dcmread(path)
    (number,) = [r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Esophagus"]
    (item,) = [c for c in ds.ROIContourSequence if c.ReferencedROINumber == number]
    for contour in item.ContourSequence:
        contour.ContourGeometricType = "OPEN_PLANAR"
    ds.save_as(path)
    limit = {"Esophagus": _limit("Max[Gy]", "<= 45")}
    r = check(str(case), boss_with(tmp_path, "open", limit))
    (cum,) = prior_rows(r, "Esophagus")
    assert cum.status is Status.NOT_EVALUABLE
    assert cum.message == (
        "Esophagus: prior_radiation cumulative_eqd2 limits (Max[Gy] <= 45) not judged: "
        "'Esophagus' has no usable closed contour: ROI 5 'Esophagus': only POINT/OPEN "
        "contours, no volume"
    )
    (own,) = [f for f in r.findings if f.group == "organ" and f.match == "no usable contour"]
    assert own.roi == "Esophagus" and own.status is Status.NOT_EVALUABLE
    assert r.exit_code == 4


def test_a_figure_without_a_limit_of_its_own_is_shown_beside_the_judged_one(tmp_path):
    """BOSS with the cord's cumulative and share limits removed, its course limit kept: the
    course EQD2 maximum is judged and the cumulative one (not limited) is shown as info, with
    the same value as where it is judged (50.76 Gy: 30 Gy before + 20.76 Gy now)."""
    text = BOSS
    for block in (
        "  cumulative_eqd2:\n    SpinalCord:\n",
        "  course_share:\n    SpinalCord:\n",
    ):
        start = text.index(block)
        end = text.index("\n", text.index("Max[Gy]", start)) + 1
        text = text[:start] + text[end:]
    path = tmp_path / "course_only.yaml"
    path.write_text(text)
    r = check(SPINE_PRIOR, path)
    (course,) = prior_rows(r, "SpinalCord", "course_eqd2")
    (shown,) = prior_rows(r, "SpinalCord", "cumulative_eqd2")
    assert course.metric == "EQD2now Max" and course.limits == {"limit": "<= 25"}
    assert course.value == pytest.approx(20.76, abs=0.01) and course.status is Status.PASS
    assert shown.metric == "EQD2cum Max" and shown.status is Status.INFO
    assert shown.value == pytest.approx(50.76, abs=0.01)
    full = check(SPINE_PRIOR, "boss")
    (judged,) = prior_rows(full, "SpinalCord")
    assert judged.status is not Status.INFO and shown.value == pytest.approx(judged.value, abs=1e-9)
    assert prior_rows(r, "SpinalCord", "course_share") == []


@pytest.mark.parametrize(
    ("case", "tail"),
    [
        ("spine_prior", "its prior_radiation limits are judged with the prior courses"),
        ("spine_3fx", "its prior_radiation limits apply where a prior course is found (none here)"),
    ],
)
def test_a_required_organ_with_only_prior_limits_says_where_they_are_judged(case, tail):
    """spine_reirradiation requires the cord and limits it under prior_radiation only: its
    organ row says that it has no dose limits of its own, not that the protocol lacks a table
    for 3 fractions."""
    r = check(str(ROOT / "sample_data" / case), "spine_reirradiation")
    (row,) = [f for f in r.findings if f.group == "organ" and f.rule == "limits"]
    assert row.roi == "SpinalCord" and row.status is Status.INFO
    assert row.message == f"no dose limits of its own in the protocol; {tail}"
