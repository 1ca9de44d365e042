"""``rtqa dvh --compare-tps``: TPS DVHs in PERCENT / PER_U, structures partly outside the dose
grid, and DVHSequences with nothing usable, on files written with pydicom."""

import json
from datetime import datetime

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.dicom.case_dose import tps_dvhs_in_cc
from rtqa.dicom.common import make_uid
from rtqa.dicom.dose import RelativeTpsDvh, read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.dicom.write.plan import write_plan
from rtqa.dicom.write.structures import write_structure_set
from rtqa.model import (
    Beam,
    ContourPlane,
    DoseGrid,
    FractionGroup,
    Plan,
    PlanarPolygon,
    Roi,
    StructureSet,
    TpsDvh,
)

PATIENT = "RTQA-TPSU-1"
HEADER = Header(PATIENT, "Phantom^Tpsu", make_uid("study", PATIENT), datetime(2024, 3, 1, 9, 0))
FRAME = make_uid("frame", "tpsu")
X = Y = np.arange(-10.0, 10.1, 2.0)
Z = np.arange(-6.0, 6.1, 3.0)
# PTV: an 8 x 8 mm square on planes -3, 0, 3 mm: slabs -4.5 .. 4.5 mm, 0.576 cc (rtqa's volume).
# Dose 20 + z / 10 Gy: mean 20 Gy, D95% at z = -4.05 mm: 19.595 Gy.
PTV_CC = 8 * 8 * 9 / 1000
# The TPS DVH: 100 % of the ROI gets 19.5 Gy, none 20.5 Gy (linear between). D95% = 19.5 + 0.05
# = 19.55 Gy; mean = integral of V(d) / V = (19.5 + 0.5) = 20.0 Gy (no DVHMeanDose written).
TPS_DVH = TpsDvh(1, np.array([0.0, 19.5, 20.5]), np.array([0.6, 0.6, 0.0]), 0.6)
PLAN_UID = make_uid("plan", "tpsu")


def square(half, zs):
    ring = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=float)
    return tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs)


def make_case(root, *, roi_volume=None, dvhs=(TPS_DVH,), units="CM3", z=Z, **dose_kw):
    """Structure set (PTV, ROIVolume ``roi_volume``) and RT Dose with ``dvhs`` in ``units``."""
    roi = Roi(
        1, "PTV", "PTV", frame_of_reference_uid=FRAME, planes=square(4, [-3, 0, 3]),
        tps_volume_cc=roi_volume,
    )  # fmt: skip
    ss = StructureSet(
        "", make_uid("ss", str(root)), "TPSU", FRAME, (roi,), patient_id=PATIENT,
        study_instance_uid=HEADER.study_instance_uid,
    )  # fmt: skip
    rs = write_structure_set(
        ss, root / "RS.dcm", HEADER, series_instance_uid=make_uid("rs", str(root)),
        referenced_frame_uid=FRAME,
    )  # fmt: skip
    zz, yy, xx = np.meshgrid(z, Y, X, indexing="ij")
    grid = DoseGrid(20.0 + zz / 10 + 0 * xx + 0 * yy, X, Y, z, FRAME)
    rd = write_dose(
        grid, root / "RD.dcm", HEADER, sop_instance_uid=make_uid("dose", str(root)),
        series_instance_uid=make_uid("rd", str(root)), tps_dvhs=list(dvhs),
        dvh_volume_units=units, **dose_kw,
    )  # fmt: skip
    return rs, rd


def run_json(folder):
    result = CliRunner().invoke(cli, ["dvh", str(folder), "--compare-tps", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def tps_warnings(rep):
    return [w for w in rep["warnings"] if "DVH" in w or "TPS comparison" in w]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def test_percent_dvh_without_a_volume_is_kept_relative(tmp_path):
    _, rd = make_case(tmp_path, units="PERCENT")
    assert [float(v) for v in pydicom.dcmread(rd).DVHSequence[0].DVHData[1::2]] == [100, 100, 0]
    grid = read_dose(str(rd))
    assert grid.notes == ()
    (dvh,) = grid.tps_dvhs
    assert isinstance(dvh, RelativeTpsDvh)
    assert dvh.volume_units == "PERCENT" and dvh.total_volume_cc is None
    assert dvh.volume_fraction.tolist() == [1.0, 1.0, 0.0]
    assert np.isnan(dvh.volume_cc).all()  # no absolute volume to be taken by mistake


def test_per_u_dvh_converted_with_the_structure_sets_roi_volume(tmp_path):
    dvh = TpsDvh(1, np.array([0.0, 10.0, 20.0, 30.0]), np.array([8.0, 6.0, 2.0, 0.5]), 8.0)
    rs, rd = make_case(tmp_path, roi_volume=16.0, dvhs=[dvh], units="PER_U")
    ss = read_structure_set(str(rs))
    assert ss.rois[0].tps_volume_cc == 16.0  # ROIVolume (3006,002C) as read
    (converted,) = tps_dvhs_in_cc(read_dose(str(rd)), ss.rois).values()
    assert not isinstance(converted, RelativeTpsDvh)
    assert converted.volume_cc.tolist() == [16.0, 12.0, 4.0, 1.0]
    assert converted.total_volume_cc == 16.0


def test_per_u_values_above_one_are_refused(tmp_path):
    _, rd = make_case(tmp_path, units="PERCENT")
    ds = pydicom.dcmread(rd)
    ds.DVHSequence[0].DVHVolumeUnits = "PER_U"  # values 100, 100, 0 labelled as fractions
    ds.save_as(rd)
    grid = read_dose(str(rd))
    assert grid.tps_dvhs == ()
    assert [n.message for n in grid.notes] == [
        "DVH item 1 (ROI 1) not used: DVHVolumeUnits PER_U but the volumes reach 100 "
        "(more than the whole ROI, 1)",
        "1 of the 1 DVHs in the RT Dose not usable (each one's reason is given in its own note)",
    ]


@pytest.mark.parametrize(("scaling", "shown"), [("1\\2", "[1, 2]"), ("0", "'0'"), ("-1", "'-1'")])
def test_dvh_dose_scaling_not_one_positive_number_is_refused(tmp_path, scaling, shown):
    _, rd = make_case(tmp_path)
    ds = pydicom.dcmread(rd)
    ds.DVHSequence[0]["DVHDoseScaling"] = pydicom.DataElement(0x30040052, "DS", scaling)
    ds.save_as(rd)
    grid = read_dose(str(rd))
    assert grid.tps_dvhs == ()
    assert grid.notes[0].message == (
        f"DVH item 1 (ROI 1) not used: DVHDoseScaling {shown} is not a positive number"
    )


def test_dvh_dose_scaling_scales_the_bins(tmp_path):
    _, rd = make_case(tmp_path)
    ds = pydicom.dcmread(rd)
    item = ds.DVHSequence[0]
    widths = [float(v) for v in item.DVHData[0::2]]
    item.DVHDoseScaling = 0.5
    counts = [float(c) for c in item.DVHData[1::2]]
    item.DVHData = [v for w, c in zip(widths, counts, strict=True) for v in (2 * w, c)]
    ds.save_as(rd)
    (dvh,) = read_dose(str(rd)).tps_dvhs
    assert dvh.dose_gy.tolist() == pytest.approx([0.0, 19.5, 20.5])


# --------------------------------------------------------------------------------------------
# rtqa dvh --compare-tps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("units", ["CM3", "PERCENT"])
def test_compare_with_roi_volume(tmp_path, units):
    make_case(tmp_path, roi_volume=0.6, units=units)
    rep = run_json(tmp_path)
    t = rep["rois"][0]["tps"]
    assert t["tps"]["volume_cc"] == pytest.approx(0.6, abs=1e-9)
    assert t["tps"]["mean_gy"] == pytest.approx(20.0, abs=1e-9)
    assert t["tps"]["D95%_gy"] == pytest.approx(19.55, abs=1e-9)
    assert t["rtqa"]["volume_cc"] == pytest.approx(PTV_CC, abs=1e-9)
    assert t["difference"]["volume_cc"] == pytest.approx(PTV_CC - 0.6, abs=1e-9)
    assert t["difference"]["D95%_gy"] == pytest.approx(19.595 - 19.55, abs=2e-3)
    assert t["difference"]["mean_gy"] == pytest.approx(0.0, abs=1e-3)
    assert t["notes"] == []
    assert tps_warnings(rep) == []


def test_percent_dvh_without_roi_volume_compares_mean_and_d95(tmp_path):
    make_case(tmp_path, units="PERCENT")
    rep = run_json(tmp_path)
    t = rep["rois"][0]["tps"]
    assert t["tps"] == {
        "volume_cc": None,
        "mean_gy": pytest.approx(20.0, abs=1e-9),
        "D95%_gy": pytest.approx(19.55, abs=1e-9),
    }
    assert t["difference"]["volume_cc"] is None
    assert t["difference"]["D95%_gy"] == pytest.approx(0.045, abs=2e-3)
    why = (
        "the planning system's DVH is in DVHVolumeUnits PERCENT and the structure set gives no "
        "ROIVolume (3006,002C) for this ROI: its volume is not known (mean and D95% are compared)"
    )
    assert t["notes"] == [why]
    assert tps_warnings(rep) == [f"ROI 'PTV': TPS comparison: {why}"]


def test_structure_partly_outside_the_dose_grid(tmp_path):
    # dose nodes at z = 0, 3, 6 mm: the grid starts half a spacing below, at z = -1.5 mm, so
    # 6 of the 9 mm of slabs lie inside (0.384 cc) and 0.192 cc outside; D95% is undefined
    make_case(tmp_path, roi_volume=0.6, z=np.array([0.0, 3.0, 6.0]))
    rep = run_json(tmp_path)
    roi = rep["rois"][0]
    assert roi["volume_in_dose_grid_cc"] == pytest.approx(0.384, abs=1e-9)
    assert roi["metrics"]["D95%[Gy]"] is None
    t = roi["tps"]
    assert t["rtqa"]["D95%_gy"] is None and t["difference"]["D95%_gy"] is None
    assert t["tps"]["D95%_gy"] == pytest.approx(19.55, abs=1e-9)
    assert t["difference"]["volume_cc"] == pytest.approx(PTV_CC - 0.6, abs=1e-9)
    # Mean[Gy] of the whole is a range (the part outside at 0 Gy up to the faces' dose); its
    # cold end is the inside part's mean, the one compared, times the inside share
    assert roi["metrics"]["Mean[Gy]"] is None
    (why,) = [w for w in rep["warnings"] if w.startswith("ROI 'PTV': Mean[Gy]: not a single")]
    cold = float(why.split("between ")[1].split(" and ")[0])
    assert cold == pytest.approx(t["rtqa"]["mean_gy"] * 0.384 / 0.576, rel=1e-3)
    assert t["difference"]["mean_gy"] is None
    assert t["notes"] == [
        "rtqa D95%: D0.5472cc reaches into the 0.192 cc of the structure outside the dose grid "
        "(dose unknown)",
        "mean: rtqa's is that of the 0.384 cc inside the dose grid (0.192 cc outside), not of "
        "the whole structure: no difference given",
    ]


def test_no_usable_dvh_is_not_called_no_dvh(tmp_path):
    _, rd = make_case(tmp_path, units="PERCENT")
    ds = pydicom.dcmread(rd)
    ds.DVHSequence[0].DVHVolumeUnits = "PER_U"
    ds.save_as(rd)
    rep = run_json(tmp_path)
    assert rep["rois"][0]["tps"] is None
    assert tps_warnings(rep) == [
        f"warning: {rd}: DVH item 1 (ROI 1) not used: DVHVolumeUnits PER_U but the volumes "
        "reach 100 (more than the whole ROI, 1) [DVHSequence (3004,0050)]",
        f"warning: {rd}: 1 of the 1 DVHs in the RT Dose not usable (each one's reason is given "
        "in its own note) [DVHSequence (3004,0050)]",
        "no DVH in the RT Dose (DVHSequence) is usable: nothing to compare with",
    ]


def test_no_dvh_sequence(tmp_path):
    make_case(tmp_path, dvhs=())
    rep = run_json(tmp_path)
    assert "DVHSequence" not in pydicom.dcmread(tmp_path / "RD.dcm")
    assert tps_warnings(rep) == ["the RT Dose carries no DVHs (DVHSequence) to compare with"]


def test_session_dose_scaled_is_not_compared_with_its_dvhs(tmp_path):
    plan = Plan(
        path="",
        sop_instance_uid=PLAN_UID,
        label="UNITS",
        beams=(Beam(1, "A1"),),
        fraction_groups=(FractionGroup(1, 5),),
        frame_of_reference_uid=FRAME,
    )
    write_plan(plan, tmp_path / "RP.dcm", HEADER, series_instance_uid=make_uid("rp", "tpsu"))
    make_case(
        tmp_path,
        roi_volume=0.6,
        summation_type="FRACTION_SESSION",
        referenced_plan_uid=PLAN_UID,
    )
    rep = run_json(tmp_path)
    assert rep["rois"][0]["tps"] is None
    assert rep["rois"][0]["metrics"]["Mean[Gy]"] == pytest.approx(100.0, abs=5e-3)  # 5 x 20
    assert tps_warnings(rep) == [
        "the planning system's DVHs describe the RT Dose as stored, not the dose evaluated "
        "(FRACTION_SESSION dose multiplied by 5 fractions planned): not compared"
    ]
