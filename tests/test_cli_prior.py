"""`rtqa check` on the prior-radiation sample cases (BOSS): text, JSON, exit codes, export."""

import json

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli


def run(*args):
    return CliRunner().invoke(cli, ["check", *args])


def test_text_shows_the_prior_section_with_overlap_and_cumulative_rows():
    result = run("sample_data/spine_prior", "--protocol", "boss")
    assert result.exit_code == 0, result.output
    section = result.output.split("Prior radiation")[1].split("Notes")[0]
    assert "EQD2cum Max" in section and "EQD2pri Max" in section and "EQD2now Max" in section
    assert "<= 70" in section and "<= 25" in section and "<= 0.5" in section
    assert "V20Gy prior" in section and "prior PTV" in section and "ESTRO-EORTC" in section
    assert "alpha/beta" in section


def test_json_holds_the_prior_findings():
    result = run("sample_data/spine_prior", "--protocol", "boss", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    results = doc if isinstance(doc, list) else doc.get("results", [doc])
    findings = [f for r in results for f in r["findings"] if f["group"] == "prior"]
    rules = {f["rule"] for f in findings}
    assert {"cumulative_eqd2", "course_eqd2", "course_share", "target_overlap"} <= rules
    (cum,) = [f for f in findings if f["rule"] == "cumulative_eqd2" and f["roi"] == "SpinalCord"]
    assert cum["status"] == "pass" and "alpha/beta 2 Gy" in cum["message"]
    assert "prior 30.00 Gy" in cum["message"]


def test_exceeding_prior_exits_1_with_the_cumulative_deviation():
    result = run("sample_data/spine_prior_exceeds", "--protocol", "boss")
    assert result.exit_code == 1, result.output
    section = result.output.split("Prior radiation")[1]
    assert "MAJOR" in section and "prior 60.00 Gy" in section


def test_export_cumulative_from_the_command_line(tmp_path):
    out = tmp_path / "cum.dcm"
    result = run(
        "sample_data/spine_prior",
        "--protocol",
        "boss",
        "--export-cumulative",
        str(out),
        "--alpha-beta",
        "2",
    )
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(out)
    current = pydicom.dcmread("sample_data/spine_prior/RD.SPINEPRIOR.dcm")
    assert ds.FrameOfReferenceUID == current.FrameOfReferenceUID
    assert ds.SOPInstanceUID != current.SOPInstanceUID
    assert ds.DoseType == "EFFECTIVE" and "alpha/beta 2 Gy" in ds.DoseComment
    # cumulative max: the PTV hot spot 36.66 Gy/3 in EQD2 (a/b 2) plus the 30 Gy prior plateau
    peak = float((ds.pixel_array * float(ds.DoseGridScaling)).max())
    d = float(np.max(current.pixel_array) * float(current.DoseGridScaling))
    assert peak == pytest.approx(d * (d / 3 + 2) / 4 + 30.0, abs=0.01)
