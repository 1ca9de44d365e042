"""``rtqa dvh`` on a structure set and dose written with pydicom (no plan)."""

import csv
import io
import json
from datetime import datetime

import numpy as np
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.dicom.common import make_uid
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.dicom.write.structures import write_structure_set
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi, StructureSet, TpsDvh

PATIENT = "RTQA-DVH-1"
HEADER = Header(PATIENT, "Phantom^Dvh", make_uid("study", PATIENT), datetime(2024, 3, 1, 9, 0))
X = np.arange(-10.0, 10.1, 2.0)
Y = np.arange(-10.0, 10.1, 2.0)
Z = np.arange(-6.0, 6.1, 3.0)
# PTV: an 8 x 8 mm square on planes -3, 0, 3 mm: slabs -4.5 .. 4.5 mm, 0.576 cc
PTV_CC = 8 * 8 * 9 / 1000
# Pyramid: squares of half-size 2 + z/3 mm on planes -3, 0, 3 mm (a square frustum). Slab model:
# (4 + 16 + 36) mm^2 x 3 mm = 0.168 cc. Interpolated, 4 sub-slabs per step: the frustum
# 4 * integral of (2 + z/3)^2 over -3..3 mm = 104 mm^3, less the midpoint-rule term
# h^2 / 24 * integral of A'' = 0.75^2 / 24 * 8/9 * 6 = 0.125 mm^3; below -3 mm the profile
# closes at the apex, z = -6 mm, one spacing out: a pointed cap of 4 * integral of (2 + z/3)^2
# over -6..-3 mm = 4 mm^3 less its midpoint term 0.75^2 / 24 * 8/9 * 3 = 0.0625 mm^3; above
# 3 mm the square grows (flares): the flat cap 36 mm^2 x 1.5 mm = 54 mm^3. 0.1618125 cc.
PYRAMID_SLAB_CC = 0.168
PYRAMID_INTERPOLATED_CC = (104 - 0.125 + 4 - 0.0625 + 54) / 1000


def square(half, zs):
    ring = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=float)
    return tuple(ContourPlane(float(z), (PlanarPolygon(ring),), 1) for z in zs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvhcase")
    frame = make_uid("frame", "dvh")
    rois = (
        Roi(1, "PTV", "PTV", frame_of_reference_uid=frame, planes=square(4, [-3, 0, 3])),
        Roi(2, "BODY", "EXTERNAL", frame_of_reference_uid=frame, planes=square(9, Z)),
        Roi(
            4,
            "Pyramid",
            "ORGAN",
            frame_of_reference_uid=frame,
            planes=tuple(p for z in (-3, 0, 3) for p in square(2 + z / 3, [z])),
        ),
        Roi(
            3,
            "Marker",
            "MARKER",
            frame_of_reference_uid=frame,
            points=(np.array([[0.0, 0.0, 0.0]]),),
        ),
    )
    ss = StructureSet(
        "",
        make_uid("ss", "dvh"),
        "DVH",
        frame,
        rois,
        patient_id=PATIENT,
        study_instance_uid=HEADER.study_instance_uid,
    )
    write_structure_set(
        ss,
        root / "RS.dvh.dcm",
        HEADER,
        series_instance_uid=make_uid("rs", "dvh"),
        referenced_frame_uid=frame,
    )
    zz, yy, xx = np.meshgrid(Z, Y, X, indexing="ij")
    grid = DoseGrid(20.0 + zz / 10 + 0 * xx + 0 * yy, X, Y, Z, frame)
    tps = TpsDvh(1, np.array([0.0, 19.5, 20.5]), np.array([0.6, 0.6, 0.0]), 0.6, mean_gy=20.1)
    write_dose(
        grid,
        root / "RD.dvh.dcm",
        HEADER,
        sop_instance_uid=make_uid("dose", "dvh"),
        series_instance_uid=make_uid("rd", "dvh"),
        tps_dvhs=[tps],
    )
    return root


def run(*args):
    result = CliRunner().invoke(cli, ["dvh", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_metrics_and_point_roi(folder):
    args = ["--format", "json", "--rx", "20", "--compare-tps"]
    args += ["--metric", "Mean[Gy]", "--metric", "D95%[%]", "--metric", "V20Gy[%]"]
    out = json.loads(run(folder, *args))
    assert out["prescription_gy"] == 20.0
    rois = {r["roi"]: r for r in out["rois"]}
    ptv = rois["PTV"]
    assert ptv["volume_cc"] == pytest.approx(PTV_CC)
    assert ptv["volume_in_dose_grid_cc"] == pytest.approx(PTV_CC, rel=1e-6)
    # dose 20 + z / 10 Gy over z -4.5 .. 4.5: mean 20, D95% at z = -4.05: 19.595 Gy = 97.975 %
    assert ptv["metrics"]["Mean[Gy]"] == pytest.approx(20.0, abs=1e-3)
    assert ptv["metrics"]["D95%[%]"] == pytest.approx(97.975, abs=0.05)
    assert ptv["metrics"]["V20Gy[%]"] == pytest.approx(50.0, abs=0.5)
    assert ptv["tps"]["difference"]["mean_gy"] == pytest.approx(-0.1, abs=1e-3)
    assert ptv["tps"]["tps"]["volume_cc"] == pytest.approx(0.6)
    marker = rois["Marker"]
    assert marker["metrics"] == {} and "POINT" in marker["note"]


def test_default_metrics_csv(folder):
    rows = list(csv.DictReader(io.StringIO(run(folder, "--format", "csv"))))
    ptv = {r["quantity"]: r["value"] for r in rows if r["roi"] == "PTV"}
    assert float(ptv["Max[Gy]"]) == pytest.approx(20.45, abs=0.01)  # cell centre nearest z=4.5
    assert float(ptv["D50%[Gy]"]) == pytest.approx(20.0, abs=0.01)
    assert set(ptv) >= {"Min[Gy]", "D98%[Gy]", "D2%[Gy]", "D0.03cc[Gy]", "volume_cc"}


def test_bad_metric_is_a_usage_error(folder):
    result = CliRunner().invoke(cli, ["dvh", str(folder), "--metric", "D95"])
    assert result.exit_code == 2
    assert "D95" in result.output


def test_interpolate_option(folder):
    plain = json.loads(run(folder, "--format", "json"))
    fine = json.loads(run(folder, "--format", "json", "--interpolate", "4"))
    assert plain["interpolation_steps"] == 0
    assert fine["interpolation_steps"] == 4
    p = {r["roi"]: r for r in plain["rois"]}
    f = {r["roi"]: r for r in fine["rois"]}
    assert p["Pyramid"]["volume_cc"] == pytest.approx(PYRAMID_SLAB_CC, rel=1e-9)
    assert f["Pyramid"]["volume_cc"] == pytest.approx(PYRAMID_INTERPOLATED_CC, rel=1e-8)
    # identical squares on every plane: the same solid either way
    assert f["PTV"]["volume_cc"] == pytest.approx(PTV_CC, rel=1e-9)
    assert f["PTV"]["metrics"]["Mean[Gy]"] == pytest.approx(20.0, abs=1e-3)
    assert "4 sub-slabs per step" in run(folder, "--interpolate", "4")
    assert "sub-slabs" not in run(folder)
    bad = CliRunner().invoke(cli, ["dvh", str(folder), "--interpolate", "-1"])
    assert bad.exit_code == 2
