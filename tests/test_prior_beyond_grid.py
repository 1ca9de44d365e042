"""An organ reaching beyond a clipped current dose grid is judged by the prior rules: its part
beyond the grid is sampled with the prior dose, and its current dose there is taken anywhere
from 0 Gy to the most on the grid faces it crosses (as the organ rules take it); a figure is
judged at both ends.

Phantom (closed form): a cord cylinder (radius 5 mm, z -60..60 mm: 120 slabs of 1 mm) through a
current grid whose voxels span z -31..31 mm, uniform 9 Gy in 3 fractions (so the bound is 9 Gy),
and a prior grid covering all of it, 20 Gy in 5 fractions. At alpha/beta 2 Gy (BOSS, Sahgal):
current EQD2 9 (3 + 2) / 4 = 11.25 Gy, prior 20 (4 + 2) / 4 = 30 Gy. 62 of the 120 mm lie
inside the current grid, so the cumulative mean lies between (62 x 41.25 + 58 x 30) / 120 =
35.8125 Gy (current dose 0 Gy beyond the grid) and 41.25 Gy (9 Gy beyond). A prior hot spot of
30 Gy in 5 fractions (EQD2 30 (6 + 2) / 4 = 60 Gy) beyond the current grid raises the cumulative
maximum to 60-71.25 Gy, which the part inside the grid (41.25 Gy) never shows.

Sample: spine_prior with its current dose grid clipped to z -30..30 mm (the cord runs -50..50):
judged as with the whole grid."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_prior_rules import FRAME_A, FRAME_B, by_rule, case, grid, reg, sphere_roi

from rtqa.check import CheckOptions, run_check
from rtqa.geometry.sampling import occupancy
from rtqa.model import ContourPlane, Course, PlanarPolygon, Roi, Status
from rtqa.protocol.loader import load_protocol_file
from rtqa.protocol.prior_inputs import PriorInput
from rtqa.protocol.prior_rules import evaluate_prior

ROOT = Path(__file__).resolve().parents[1]
BOSS = (ROOT / "constraints" / "boss.yaml").read_text()
CUMULATIVE_MAX = (
    '      Max[Gy]: {limit: "<= 70", source: *sahgal, confidence: verified, note: "cumulative '
    'point-maximum EQD2 about 70 Gy (nBED 70 Gy2/2)"}\n'
)
CURRENT, PRIOR = 9.0 * 5 / 4, 20.0 * 6 / 4  # EQD2 (Gy) at alpha/beta 2 Gy
INSIDE = 62 / 120  # share of the cylinder inside the current grid


def cylinder(number: int, name: str, radius: float = 5.0, half_length: float = 60.0) -> Roi:
    """A cylinder along z as 256-gons on planes 1 mm apart (slabs -half_length..half_length)."""
    t = 2 * np.pi * np.arange(256) / 256
    ring = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    zs = np.arange(-half_length + 0.5, half_length, 1.0)
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs)
    return Roi(
        number, name, interpreted_type="ORGAN", frame_of_reference_uid=FRAME_A, planes=planes
    )


def setup(hot_beyond: bool = False) -> PriorInput:
    """The phantom of the module docstring; ``hot_beyond``: the prior 30 Gy at z >= 42 mm."""
    cur_dose = grid((0, 0, 0), (30, 30, 30), 2.0, FRAME_A, 9.0)
    pri_dose = grid((0, 0, 0), (40, 40, 80), 2.0, FRAME_B, 20.0)
    if hot_beyond:
        pri_dose.dose_gy[pri_dose.z_mm >= 42.0] = 30.0
    cord = cylinder(2, "SpinalCord")
    ptv = sphere_roi(1, "PTV", (10, 0, 0), 8.0, FRAME_A)
    now = case("NOW", cur_dose, [ptv, cord], FRAME_A, 27.0, 3, 400)
    prior_ptv = sphere_roi(1, "PTV_prior", (0, 0, 0), 8.0, FRAME_B)
    before = case("BEFORE", pri_dose, [prior_ptv], FRAME_B, 20.0, 5, 0, [reg(np.eye(4))])
    return PriorInput(
        course=Course((now,), (before,)),
        dose=cur_dose,
        fractions=3,
        organs={"SpinalCord": cord},
        targets={"PTV": (ptv, 27.0)},
        body=None,
    )


def boss_with_cord(tmp_path: Path, rows: str) -> object:
    """BOSS with the cord's cumulative EQD2 limits replaced by ``rows``."""
    assert BOSS.count(CUMULATIVE_MAX) == 1
    path = tmp_path / "boss_cord.yaml"
    path.write_text(BOSS.replace(CUMULATIVE_MAX, rows, 1))
    return load_protocol_file(path)


def _row(metric: str, limit: str) -> str:
    return f'      {metric}: {{limit: "{limit}", source: *sahgal, confidence: verified}}\n'


def test_a_cord_beyond_the_grid_is_judged_over_the_bound_of_its_current_dose(tmp_path):
    rows = _row("Max[Gy]", "<= 70") + _row("Mean[Gy]", "<= 38") + _row("D2cc[Gy]", "<= 45")
    found, ctx = evaluate_prior(setup(), boss_with_cord(tmp_path, rows))
    cum = {f.metric: f for f in by_rule(found, "cumulative_eqd2", "SpinalCord")}
    res = ctx.organ_dvhs["SpinalCord"]
    section_cc = 256 / 2 * 25 * np.sin(2 * np.pi / 256) / 1000  # the 256-gon's area x 1 mm
    # (the volume beyond, the whole's less the part inside: rounding of about 1e-9)
    assert res.outside_cc == pytest.approx(58 * section_cc, rel=1e-6)
    assert res.beyond_bound_gy == pytest.approx(9.0, abs=1e-9)
    assert res.unknown_prior_cc == 0.0
    # the maximum and the hottest 2 cc lie inside the grid whatever the dose beyond it: judged
    mx = cum["EQD2cum Max"]
    assert mx.status is Status.PASS and mx.value == pytest.approx(CURRENT + PRIOR, abs=1e-9)
    assert mx.value_range is None  # the same either way: the figure itself
    assert mx.message.endswith(
        "with the current dose beyond the grid anywhere from 0 Gy to 9 Gy, EQD2cum Max is 41.25 "
        "either way"
    )
    assert cum["EQD2cum D2cc"].status is Status.PASS
    # the mean: 35.81 Gy with 0 Gy beyond the grid, 41.25 Gy with 9 Gy there; <= 38 holds at
    # one end only
    mean = cum["EQD2cum Mean"]
    low = INSIDE * (CURRENT + PRIOR) + (1 - INSIDE) * PRIOR
    assert low == pytest.approx(35.8125)
    assert mean.status is Status.NOT_EVALUABLE and mean.value is None
    assert mean.value_range == pytest.approx((low, CURRENT + PRIOR), rel=1e-7)  # both ends kept
    assert mean.message.endswith(
        "EQD2cum Mean lies between 35.81 and 41.25: per protocol at one end only"
    )
    assert "cumulative 35.81 to 41.25 Gy" in mean.message
    assert res.cumulative.mean_gy == pytest.approx(low, rel=1e-7)
    assert res.cumulative_high.mean_gy == pytest.approx(CURRENT + PRIOR, rel=1e-9)
    # the prior distribution covers the whole cord; the current one leaves the part beyond
    # unknown and bounds it at the EQD2 of 9 Gy in 3 fractions
    assert res.prior.total_volume_cc == pytest.approx(120 * section_cc, rel=1e-6)
    assert res.prior.unknown_volume_cc == 0.0 and res.prior.mean_gy == pytest.approx(PRIOR)
    assert res.current.unknown_volume_cc == pytest.approx(58 * section_cc, rel=1e-6)
    assert res.current.beyond_grid_max_gy == pytest.approx(CURRENT, abs=1e-9)


def test_a_large_part_beyond_the_grid_is_sampled_on_coarser_cells(tmp_path, monkeypatch):
    """With room for only 500 lattice cells beyond the grid, the cord's two parts there (29 mm
    long each, 10 mm across, 120 mm apart) are sampled on coarser cubic cells than the grid's
    2 mm: their volume and the figures (uniform doses) are the same to rounding."""
    from rtqa.protocol import prior_sampling

    protocol = boss_with_cord(tmp_path, _row("Mean[Gy]", "<= 45"))
    _, ctx = evaluate_prior(setup(), protocol)
    fine = ctx.organ_dvhs["SpinalCord"]
    lattices = []
    lattice_like = prior_sampling._lattice_like

    def recorded(*args):
        lattices.append(lattice_like(*args))
        return lattices[-1]

    monkeypatch.setattr(prior_sampling, "BEYOND_MAX_CELLS", 500)
    monkeypatch.setattr(prior_sampling, "_lattice_like", recorded)
    occ = occupancy(cylinder(2, "SpinalCord"), setup().dose)
    beyond = prior_sampling.sample_beyond(occ, setup(), [])
    assert beyond is not None and len(lattices) == 1  # the coarse one only: never the fine one
    fine_cells = prior_sampling.lattice_cells(
        setup().dose, prior_sampling.outside_stack(occ).bounds_mm
    )
    coarse_cells = lattices[0].dose_gy.size
    assert fine_cells > 3 * coarse_cells and fine_cells > 500  # (a voxel to spare on each side)
    assert float(np.diff(lattices[0].x_mm[:2])[0]) > 2.5
    assert beyond.volumes_cc.sum() == pytest.approx(occ.outside_cc, rel=1e-6)
    _, ctx = evaluate_prior(setup(), protocol)
    coarse = ctx.organ_dvhs["SpinalCord"]
    for a, b in ((fine.cumulative, coarse.cumulative), (fine.prior, coarse.prior)):
        assert b.total_volume_cc == pytest.approx(a.total_volume_cc, rel=1e-9)
        assert b.mean_gy == pytest.approx(a.mean_gy, rel=1e-9)


def test_a_prior_hot_spot_beyond_the_current_grid_is_a_deviation(tmp_path):
    """The prior's 60 Gy EQD2 beyond the current grid: the cumulative maximum is 60 Gy with no
    current dose there and 71.25 Gy at the bound; > 55 either way (major), <= 70 at one end
    only (not evaluable). Judged on the part inside the grid alone it would read 41.25 Gy."""
    strict = boss_with_cord(tmp_path, _row("Max[Gy]", "<= 55"))
    found, ctx = evaluate_prior(setup(hot_beyond=True), strict)
    (mx,) = by_rule(found, "cumulative_eqd2", "SpinalCord")
    hot = 30.0 * 8 / 4
    assert mx.status is Status.MAJOR and mx.value == pytest.approx(hot + CURRENT, abs=1e-9)
    assert mx.margin == pytest.approx(55 - (hot + CURRENT), abs=1e-9)
    assert mx.value_range == pytest.approx((hot, hot + CURRENT), abs=1e-9)
    assert "EQD2cum Max lies between 60 and 71.25" in mx.message
    assert ctx.organ_dvhs["SpinalCord"].prior.max_gy == pytest.approx(hot, abs=1e-9)
    (path := tmp_path / "loose").mkdir()
    found, _ = evaluate_prior(setup(hot_beyond=True), boss_with_cord(path, CUMULATIVE_MAX))
    (mx,) = by_rule(found, "cumulative_eqd2", "SpinalCord")
    assert mx.status is Status.NOT_EVALUABLE
    assert mx.message.endswith(
        "EQD2cum Max lies between 60 and 71.25: per protocol at one end only; limit: cumulative "
        "point-maximum EQD2 about 70 Gy (nBED 70 Gy2/2)"
    )
    # the course share: current 11.25 Gy over a cumulative maximum of 60 to 71.25 Gy
    (share,) = by_rule(found, "course_share", "SpinalCord")
    assert share.status is Status.PASS
    assert share.value == pytest.approx(CURRENT / hot, rel=1e-9)
    assert share.value_range == pytest.approx((CURRENT / (hot + CURRENT), CURRENT / hot), rel=1e-9)
    assert "current / cumulative = 0.16 to 0.19" in share.message


# --- the sample case with a clipped current dose grid -----------------------------------------


def clipped_spine_prior(tmp_path: Path, first: int, last: int) -> Path:
    """spine_prior with its current dose grid cut to frames ``first..last - 1``."""
    folder = tmp_path / "spine_prior_clipped"
    shutil.copytree(ROOT / "sample_data" / "spine_prior", folder)
    path = folder / "RD.SPINEPRIOR.dcm"
    ds = pydicom.dcmread(path)
    ds.decompress()
    frames = ds.pixel_array[first:last].copy()
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    ipp = [float(v) for v in ds.ImagePositionPatient]
    ipp[2] += offsets[first]
    ds.ImagePositionPatient = ipp
    ds.GridFrameOffsetVector = [o - offsets[first] for o in offsets[first:last]]
    ds.NumberOfFrames = frames.shape[0]
    ds.PixelData = frames.tobytes()
    ds.save_as(path)
    return folder


def test_a_clipped_current_grid_gives_the_whole_grid_verdict_on_the_sample(tmp_path):
    """The cord (z -50..50 mm) under a current grid clipped to z -30..30 mm: 3.14 cc of it
    beyond, where the faces bound the current dose at 8.09 Gy. Its cumulative maximum
    (50.76 Gy EQD2, at the target level) is the whole grid's either way: exit 0, as unclipped
    (before, the part beyond left every cord row not evaluable: exit 4)."""
    whole = ROOT / "sample_data" / "spine_prior"
    clipped = clipped_spine_prior(tmp_path, 10, 35)
    opts = CheckOptions(protocol="spine_reirradiation", keep_context=True)
    (ref,) = run_check([str(whole)], opts)
    (r,) = run_check([str(clipped)], opts)
    assert (ref.exit_code, r.exit_code) == (0, 0)

    def cord_rows(result):
        return {
            f.metric: f
            for f in result.findings
            if f.group == "prior" and f.roi == "SpinalCord" and f.status is not Status.INFO
        }

    rows, ref_rows = cord_rows(r), cord_rows(ref)
    assert sorted(rows) == sorted(ref_rows) == ["EQD2cum Max", "EQD2now Max", "now/cum Max"]
    for metric, f in rows.items():
        assert f.status is Status.PASS
        assert f.value == pytest.approx(ref_rows[metric].value, rel=1e-9)
    assert rows["EQD2cum Max"].value == pytest.approx(50.76, abs=0.01)
    res = r.context.prior.organ_dvhs["SpinalCord"]
    assert res.outside_cc == pytest.approx(np.pi, rel=1e-6)  # radius 5 mm x 40 mm beyond
    assert res.beyond_bound_gy == pytest.approx(8.09, abs=0.005)
    assert "3.14 cc of 'SpinalCord' lies outside the current dose grid: the prior dose is " in (
        rows["EQD2cum Max"].message
    )
