"""Which dose is evaluated for a plan (D1, D5, D6, D7) and the TPS DVHs of an RT Dose (D8)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rtqa.dicom.common import make_uid
from rtqa.dicom.dose import combine_doses, read_dose
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.model import Beam, DoseGrid, FractionGroup, Level, Plan, ReferencedBeam, TpsDvh

HEADER = Header("RTQA-SUM", "Phantom^Sum", make_uid("sum-study"), datetime(2024, 6, 1, 8, 0))
FRAME = make_uid("sum-frame")
X, Y, Z = np.arange(3) * 2.0, np.arange(2) * 3.0 - 3.0, np.array([0.0, 2.5, 7.5])


def linear_grid(**changes) -> DoseGrid:
    """dose = x + 2 y + 4 z + 40 Gy: binary fractions, so stored values are exact."""
    zz, yy, xx = np.meshgrid(Z, Y, X, indexing="ij")
    values = dict(dose_gy=xx + 2 * yy + 4 * zz + 40, x_mm=X, y_mm=Y, z_mm=Z)
    values.update(changes)
    return DoseGrid(frame_of_reference_uid=FRAME, **values)


def write(tmp_path: Path, name: str = "RD.test.dcm", grid: DoseGrid | None = None, **kw) -> Path:
    return write_dose(
        grid if grid is not None else linear_grid(),
        tmp_path / name,
        HEADER,
        sop_instance_uid=make_uid("sum", name),
        series_instance_uid=make_uid("sum-series"),
        dose_grid_scaling=2.0**-8,
        **kw,
    )


PLAN = Plan(
    path="RP.dcm",
    sop_instance_uid=make_uid("combine-plan"),
    label="LUNG",
    beams=(Beam(1, "A1"), Beam(2, "A2"), Beam(3, "CBCT", delivery_type="SETUP")),
    fraction_groups=(FractionGroup(1, 5),),
)


def beam_dose(tmp_path: Path, number: int, weight: float, **kw) -> DoseGrid:
    grid = linear_grid()
    grid = linear_grid(dose_gy=grid.dose_gy * weight)
    kw.setdefault("summation_type", "BEAM")
    path = write(
        tmp_path,
        f"RD.beam{number}.dcm",
        grid=grid,
        referenced_plan_uid=PLAN.sop_instance_uid,
        referenced_beam_number=number,
        **kw,
    )
    return read_dose(str(path))


def test_one_plan_dose_used_as_it_is(tmp_path):
    plan_dose = read_dose(str(write(tmp_path, "RD.plan.dcm")))
    beam = beam_dose(tmp_path, 1, 0.25)
    grid, notes = combine_doses([beam, plan_dose], PLAN)
    assert grid is plan_dose
    assert [(n.level, n.message) for n in notes] == [
        (Level.INFO, "BEAM dose not used: a PLAN dose was used instead")
    ]


def test_two_plan_doses_are_ambiguous(tmp_path):
    a = read_dose(str(write(tmp_path, "RD.a.dcm")))
    b = read_dose(str(write(tmp_path, "RD.b.dcm")))
    beam = beam_dose(tmp_path, 1, 0.25)
    grid, notes = combine_doses([a, b, beam], PLAN)
    assert grid is None
    assert notes[0].level is Level.ERROR
    assert notes[0].message == "2 PLAN doses for one plan: ambiguous, none used"
    assert "RD.a.dcm" in notes[0].path and "RD.b.dcm" in notes[0].path


def test_fraction_dose_used_unscaled(tmp_path):
    dose = read_dose(str(write(tmp_path, summation_type="FRACTION")))
    grid, notes = combine_doses([dose], PLAN)
    assert grid is dose and notes == [] and grid.scaling_note is None


TWO_GROUPS = Plan(
    path="RP2.dcm",
    sop_instance_uid=make_uid("combine-plan-2"),
    label="TWO_LESIONS",
    beams=(Beam(1, "A1"), Beam(2, "A2"), Beam(3, "CBCT", delivery_type="SETUP")),
    fraction_groups=(
        FractionGroup(1, 3, (ReferencedBeam(1, 300.0), ReferencedBeam(3, 2.0))),
        FractionGroup(2, 3, (ReferencedBeam(2, 400.0),)),
    ),
)


def group_dose(tmp_path: Path, group: int | None, weight: float, kind="FRACTION") -> DoseGrid:
    grid = linear_grid(dose_gy=linear_grid().dose_gy * weight)
    path = write(
        tmp_path,
        f"RD.group{group}.{kind}.dcm",
        grid=grid,
        summation_type=kind,
        referenced_plan_uid=TWO_GROUPS.sop_instance_uid,
        referenced_fraction_group=group,
    )
    return read_dose(str(path))


def test_fraction_doses_of_a_plan_of_two_groups_are_summed_when_each_group_is_named(tmp_path):
    """A plan treating two lesions in two fraction groups: one FRACTION dose holds one group,
    so one alone is not the plan's dose (it was used as the plan's); one per group is summed."""
    a, b = group_dose(tmp_path, 2, 0.75), group_dose(tmp_path, 1, 0.25)
    assert (a.referenced_fraction_groups, b.referenced_fraction_groups) == ((2,), (1,))
    grid, notes = combine_doses([a, b], TWO_GROUPS)
    assert notes == []
    np.testing.assert_allclose(grid.dose_gy, linear_grid().dose_gy, rtol=0, atol=2**-8)
    assert grid.scaling_note == "sum of 2 FRACTION doses (fraction groups 1, 2)"
    assert grid.referenced_fraction_groups == (1, 2)
    grid, notes = combine_doses([a], TWO_GROUPS)
    assert grid is None
    assert [n.level for n in notes] == [Level.ERROR]
    assert notes[0].message == (
        "a FRACTION dose holds one fraction group; plan 'TWO_LESIONS' has fraction groups 1, 2 "
        f"and the FRACTION doses do not name each once ({a.paths[0]} names [2]): not used"
    )


def test_a_fraction_session_dose_of_a_plan_of_two_groups_is_refused(tmp_path):
    dose = group_dose(tmp_path, 1, 1.0, kind="FRACTION_SESSION")
    grid, notes = combine_doses([dose], TWO_GROUPS)
    assert grid is None
    assert [(n.level, n.message) for n in notes] == [
        (
            Level.ERROR,
            "FRACTION_SESSION dose holds one session of one fraction group; plan 'TWO_LESIONS' "
            "has fraction groups 1, 2: not used",
        )
    ]


def test_beam_doses_summed_when_they_match_the_treatment_beams(tmp_path):
    doses = [beam_dose(tmp_path, 2, 0.75), beam_dose(tmp_path, 1, 0.25)]
    grid, notes = combine_doses(doses, PLAN)
    assert notes == []
    assert np.array_equal(grid.dose_gy, linear_grid().dose_gy)  # 0.25 + 0.75 of the plan dose
    assert grid.referenced_beam_numbers == (1, 2)
    assert grid.scaling_note == "sum of 2 BEAM doses (beams 1, 2)"
    assert [Path(p).name for p in grid.paths] == ["RD.beam1.dcm", "RD.beam2.dcm"]


def test_beam_doses_not_summed_when_a_beam_is_missing(tmp_path):
    grid, notes = combine_doses([beam_dose(tmp_path, 1, 0.25)], PLAN)
    assert grid is None
    assert notes[0].level is Level.ERROR
    assert notes[0].message == (
        "BEAM doses for beams [1] do not match the plan's treatment beams [1, 2]: not summed"
    )
    assert notes[0].attribute == "ReferencedBeamNumber (300C,0006)"


def test_beam_doses_on_different_grids_not_summed(tmp_path):
    other = linear_grid(x_mm=linear_grid().x_mm + 1.0)
    path = write(
        tmp_path,
        "RD.beam2.dcm",
        grid=other,
        summation_type="BEAM",
        referenced_plan_uid=PLAN.sop_instance_uid,
        referenced_beam_number=2,
    )
    grid, notes = combine_doses([beam_dose(tmp_path, 1, 0.25), read_dose(str(path))], PLAN)
    assert grid is None
    assert notes[0].message == "BEAM doses not summed: different dose grids (x coordinates differ)"


def test_effective_never_summed_with_physical(tmp_path):
    doses = [beam_dose(tmp_path, 1, 0.25), beam_dose(tmp_path, 2, 0.75, dose_type="EFFECTIVE")]
    grid, notes = combine_doses(doses, PLAN)
    assert grid is None
    assert notes[0].message == (
        "BEAM doses not summed: DoseType PHYSICAL and EFFECTIVE cannot be added"
    )


def test_fraction_session_scaled_by_fractions_planned(tmp_path):
    dose = read_dose(str(write(tmp_path, summation_type="FRACTION_SESSION")))
    grid, notes = combine_doses([dose], PLAN)
    assert notes == []
    assert np.array_equal(grid.dose_gy, 5 * linear_grid().dose_gy)
    assert grid.scaling_note == "FRACTION_SESSION dose multiplied by 5 fractions planned"


def test_beam_session_doses_summed_then_scaled(tmp_path):
    doses = [
        beam_dose(tmp_path, 1, 0.25, summation_type="BEAM_SESSION"),
        beam_dose(tmp_path, 2, 0.75, summation_type="BEAM_SESSION"),
    ]
    grid, notes = combine_doses(doses, PLAN)
    assert notes == []
    assert np.array_equal(grid.dose_gy, 5 * linear_grid().dose_gy)
    assert grid.scaling_note == (
        "sum of 2 BEAM_SESSION doses (beams 1, 2); BEAM_SESSION dose multiplied by 5 "
        "fractions planned"
    )


def test_session_dose_without_plan_not_used(tmp_path):
    dose = read_dose(str(write(tmp_path, summation_type="FRACTION_SESSION")))
    grid, notes = combine_doses([dose], None)
    assert grid is None
    assert notes[0].level is Level.ERROR
    assert "FRACTION_SESSION dose holds one session" in notes[0].message
    assert notes[0].attribute == "DoseSummationType (3004,000A)"


@pytest.mark.parametrize("summation", ["MULTI_PLAN", "CONTROL_POINT", "RECORD"])
def test_other_summation_types_refused(tmp_path, summation):
    dose = read_dose(str(write(tmp_path, summation_type=summation)))
    grid, notes = combine_doses([dose], PLAN)
    assert grid is None
    assert notes[0].message == f"DoseSummationType {summation} not supported: dose not used"
    assert notes[0].path.endswith("RD.test.dcm")


# --------------------------------------------------------------------------------------------
# TPS DVHs (DVHSequence)
# --------------------------------------------------------------------------------------------

DVH = TpsDvh(
    roi_number=4,
    dose_gy=np.array([0.0, 10.0, 20.0, 30.0]),
    volume_cc=np.array([8.0, 6.0, 2.0, 0.5]),
    total_volume_cc=8.0,
    mean_gy=14.5,
    min_gy=3.0,
    max_gy=31.0,
)


@pytest.mark.parametrize("dvh_type", ["CUMULATIVE", "DIFFERENTIAL"])
@pytest.mark.parametrize("dose_scaling", [1.0, 0.01])
def test_tps_dvh_read_in_gy_and_cc(tmp_path, dvh_type, dose_scaling):
    path = write(tmp_path, tps_dvhs=[DVH], dvh_type=dvh_type, dvh_dose_scaling=dose_scaling)
    item = pydicom.dcmread(path).DVHSequence[0]
    assert item.DVHType == dvh_type and float(item.DVHDoseScaling) == dose_scaling
    (dvh,) = read_dose(str(path)).tps_dvhs
    assert dvh.roi_number == 4
    assert dvh.dose_gy == pytest.approx([0.0, 10.0, 20.0, 30.0], abs=1e-12)
    assert dvh.volume_cc == pytest.approx([8.0, 6.0, 2.0, 0.5], abs=1e-12)
    assert dvh.total_volume_cc == 8.0
    assert (dvh.mean_gy, dvh.min_gy, dvh.max_gy) == (14.5, 3.0, 31.0)


def test_tps_dvh_in_percent_converted_with_the_roi_volume(tmp_path):
    path = write(tmp_path, tps_dvhs=[DVH], dvh_volume_units="PERCENT")
    assert [float(v) for v in pydicom.dcmread(path).DVHSequence[0].DVHData[1::2]] == [
        100.0,
        75.0,
        25.0,
        6.25,
    ]
    (dvh,) = read_dose(str(path), roi_volumes_cc={4: 16.0}).tps_dvhs
    assert dvh.volume_cc.tolist() == [16.0, 12.0, 4.0, 1.0]
    assert dvh.total_volume_cc == 16.0


def test_tps_dvh_in_percent_without_roi_volume_kept_relative(tmp_path):
    # a PER_U DVH of an ROI whose volume the dose file does not give: kept as fractions of the
    # ROI (no absolute volume can be read from it), converted once the volume is known
    from rtqa.dicom.dose import RelativeTpsDvh, tps_dvh_in_cc

    grid = read_dose(str(write(tmp_path, tps_dvhs=[DVH], dvh_volume_units="PER_U")))
    (dvh,) = grid.tps_dvhs
    assert isinstance(dvh, RelativeTpsDvh) and dvh.total_volume_cc is None
    assert np.all(np.isnan(dvh.volume_cc))
    assert grid.notes == ()
    in_cc = tps_dvh_in_cc(dvh, 16.0)
    assert in_cc.total_volume_cc == 16.0
    np.testing.assert_allclose(in_cc.volume_cc, 16.0 * dvh.volume_fraction)
