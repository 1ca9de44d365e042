"""--export-cumulative: the cumulative EQD2 grid as an RT Dose a viewer can open."""

import numpy as np
import pydicom
import pytest
from test_prior_rules import FRAME_A, FRAME_B, grid, uniform_setup

from rtqa.dicom.dose import read_dose
from rtqa.protocol.loader import load_protocol
from rtqa.protocol.prior_rules import evaluate_prior


def test_cumulative_eqd2_written_and_read_back(tmp_path):
    inp = uniform_setup()
    inp.export_cumulative = str(tmp_path / "RD.cumulative.dcm")
    findings, ctx = evaluate_prior(inp, load_protocol("boss"))
    (done,) = [f for f in findings if f.rule == "export_cumulative"]
    assert str(tmp_path) in done.message and ctx.export_path == inp.export_cumulative
    ds = pydicom.dcmread(inp.export_cumulative)
    assert ds.Modality == "RTDOSE" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2"
    assert ds.DoseType == "EFFECTIVE" and ds.DoseSummationType == "MULTI_PLAN"
    assert ds.DoseUnits == "GY" and ds.FrameOfReferenceUID == FRAME_A
    assert "EQD2" in ds.DoseComment and "alpha/beta 2 Gy" in ds.DoseComment
    assert len(ds.DoseComment) <= 64
    assert "alpha/beta 2 Gy" in ds.ImageComments and "LQ" in ds.ImageComments
    uids = {ds.SOPInstanceUID, *(c.plan.sop_instance_uid for c in inp.course.cases)}
    assert len(uids) == 2
    # 20 Gy/5 prior + 9 Gy/3 current at alpha/beta 2: 30 + 11.25 = 41.25 Gy EQD2 everywhere
    values = ds.pixel_array * float(ds.DoseGridScaling)
    assert values.shape == inp.dose.dose_gy.shape
    assert np.allclose(values, 41.25, atol=float(ds.DoseGridScaling))
    # the project's own reader sees the same grid, on the current dose's axes
    back = read_dose(inp.export_cumulative)
    assert back.dose_type == "EFFECTIVE" and back.frame_of_reference_uid == FRAME_A
    for a, b in (
        (back.x_mm, inp.dose.x_mm),
        (back.y_mm, inp.dose.y_mm),
        (back.z_mm, inp.dose.z_mm),
    ):
        assert np.allclose(a, b)
    assert np.allclose(back.dose_gy, 41.25, atol=float(ds.DoseGridScaling))


def test_alpha_beta_option_sets_the_exported_grid(tmp_path):
    inp = uniform_setup()
    inp.export_cumulative = str(tmp_path / "ab3.dcm")
    inp.alpha_beta = 3.0
    _, ctx = evaluate_prior(inp, load_protocol("boss"))
    ds = pydicom.dcmread(inp.export_cumulative)
    # alpha/beta 3: 20 (4 + 3)/5 + 9 (3 + 3)/5 = 28 + 10.8
    assert ctx.alpha_beta_gy == 3.0 and "alpha/beta 3 Gy" in ds.DoseComment
    values = ds.pixel_array * float(ds.DoseGridScaling)
    assert np.allclose(values, 38.8, atol=float(ds.DoseGridScaling))


def test_prior_unknown_voxels_hold_the_current_eqd2_and_are_reported(tmp_path):
    inp = uniform_setup()
    inp.course.priors[0].dose = grid((-20, 0, 0), (20, 40, 40), 2.0, FRAME_B, 20.0)
    inp.export_cumulative = str(tmp_path / "part.dcm")
    findings, _ = evaluate_prior(inp, load_protocol("boss"))
    (done,) = [f for f in findings if f.rule == "export_cumulative"]
    assert "current course's EQD2 alone" in done.message
    ds = pydicom.dcmread(inp.export_cumulative)
    values = ds.pixel_array * float(ds.DoseGridScaling)
    x = inp.dose.x_mm
    step = float(ds.DoseGridScaling)
    assert np.allclose(values[:, :, x <= 0], 41.25, atol=step)
    assert np.allclose(values[:, :, x > 0], 11.25, atol=step)


@pytest.mark.parametrize("bad", ["/nonexistent-dir/\0bad.dcm"])
def test_unwritable_export_is_reported_not_raised(bad):
    inp = uniform_setup()
    inp.export_cumulative = bad
    findings, _ = evaluate_prior(inp, load_protocol("boss"))
    (f,) = [f for f in findings if f.rule == "export_cumulative"]
    assert f.status.value == "not_evaluable" and "not written" in f.message
