"""RT objects written by a Pinnacle-to-DICOM converter (domain catalogue V3): recognised by
Manufacturer or implementation class UID; the plan's MU and, unless the patient is known to lie
head first supine, the dose are not trusted. Real DICOM: spine_3fx rewritten with pydicom."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset

from rtqa.cli import cli
from rtqa.dicom.converters import PINNACLE_CONVERTER_UID, converter_of

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def _dataset(manufacturer: str = "", implementation: str = "") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    if manufacturer:
        ds.Manufacturer = manufacturer
    if implementation:
        ds.file_meta.ImplementationClassUID = implementation
    return ds


@pytest.mark.parametrize(
    ("manufacturer", "implementation", "expected"),
    [
        ("PyMedPhys Pinnacle Export", "", "Manufacturer 'PyMedPhys Pinnacle Export'"),
        ("pinnacle philips", "", "Manufacturer 'pinnacle philips'"),
        ("", PINNACLE_CONVERTER_UID, f"implementation class UID {PINNACLE_CONVERTER_UID}"),
        ("Philips", "1.2.840.113669.2.931128", ""),  # a planning system's own export
        ("", "", ""),
    ],
)
def test_converter_fingerprints(manufacturer, implementation, expected):
    found = converter_of(_dataset(manufacturer, implementation))
    if expected:
        assert found == f"a Pinnacle-to-DICOM converter ({expected})"
    else:
        assert found == ""


def converted_spine(tmp_path: Path, position: str | None) -> Path:
    """spine_3fx with its plan and dose written by the PyMedPhys converter; ``position``: the
    PatientPosition of the plan's setup and the dose (None: removed from both)."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    for name in ("RP.SPINE3FX.dcm", "RD.SPINE3FX.dcm"):
        ds = pydicom.dcmread(case / name)
        ds.Manufacturer = "PyMedPhys Pinnacle Export"
        ds.file_meta.ImplementationClassUID = PINNACLE_CONVERTER_UID
        holders = [ds, *ds.get("PatientSetupSequence", [])]
        for item in holders:
            if "PatientPosition" in item:
                del item.PatientPosition
            if position is not None and (item is not ds or name.startswith("RD")):
                item.PatientPosition = position
        ds.save_as(case / name)
    return case


def check(case: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "nrg_br002", "--format", "json"]
    )
    return result.exit_code, json.loads(result.output)


def by_rule(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


def test_a_converted_head_first_supine_case_keeps_its_dose_but_not_its_mu(tmp_path):
    code, doc = check(converted_spine(tmp_path, "HFS"))
    (source,) = by_rule(doc, "dose_source")
    assert source["status"] == "info" and "head first supine (HFS)" in source["message"]
    (mu,) = by_rule(doc, "delivered_mu")
    assert mu["status"] == "not_evaluable"
    assert mu["message"].startswith("planned MU not trusted: plan 'SPINE3FX' was written by")
    assert "within tolerance on 27 beam deliveries" in mu["message"]  # measured, kept
    # the organ judgements stand on the dose (the sample's cord D0.03cc passes)
    (cord,) = [
        f for f in doc["findings"] if f["roi"] == "SpinalCord" and f["rule"] == "D0.03cc[Gy]"
    ]
    assert cord["status"] == "pass"
    warned = [n for n in doc["notes"] if "not exported by the planning system" in n["message"]]
    assert sorted(Path(n["path"]).name for n in warned) == ["RD.SPINE3FX.dcm", "RP.SPINE3FX.dcm"]
    assert code == 4  # the MU comparison is withheld, nothing deviates


@pytest.mark.parametrize("position", ["HFP", None])
def test_a_converted_dose_of_a_patient_not_known_supine_is_withheld(tmp_path, position):
    code, doc = check(converted_spine(tmp_path, position))
    (source,) = by_rule(doc, "dose_source")
    assert source["status"] == "not_evaluable"
    said = "patient position HFP" if position else "the patient position is not stated"
    assert said in source["message"] and "flipped superior-inferior" in source["message"]
    judged = [f for f in doc["findings"] if f["group"] in ("target", "organ", "quality")]
    assert judged and all(f["status"] in ("not_evaluable", "info") for f in judged)
    (cord,) = [f for f in judged if f["roi"] == "SpinalCord" and f["rule"] == "D0.03cc[Gy]"]
    assert cord["message"].startswith("not judged: the dose is not trusted (dose_source")
    assert cord["value"] == pytest.approx(15.31, abs=0.005)  # measured, kept
    assert cord["value_range"] == {"low": None, "high": None}
    assert code == 4


def test_the_planning_system_export_has_no_dose_source_finding():
    result = CliRunner().invoke(
        cli, ["check", str(SAMPLES / "spine_3fx"), "--protocol", "nrg_br002", "--format", "json"]
    )
    doc = json.loads(result.output)
    assert by_rule(doc, "dose_source") == [] and result.exit_code == 0
    (mu,) = by_rule(doc, "delivered_mu")
    assert mu["status"] == "pass"


def test_a_converted_prior_dose_of_a_patient_not_known_supine_withholds_the_prior_figures(
    tmp_path,
):
    """spine_prior under BOSS: the prior course's dose from the converter with no patient
    position stated: every prior-radiation judgement is withheld, the current course's stand."""
    case = tmp_path / "spine_prior"
    shutil.copytree(SAMPLES / "spine_prior", case)
    ds = pydicom.dcmread(case / "RD.PRIOR_T7.dcm")
    ds.Manufacturer = "Pinnacle Philips"
    if "PatientPosition" in ds:
        del ds.PatientPosition
    ds.save_as(case / "RD.PRIOR_T7.dcm")
    plan = pydicom.dcmread(case / "RP.PRIOR_T7.dcm")
    for item in plan.get("PatientSetupSequence", []):
        del item.PatientPosition
    plan.save_as(case / "RP.PRIOR_T7.dcm")
    result = CliRunner().invoke(cli, ["check", str(case), "--protocol", "boss", "--format", "json"])
    doc = json.loads(result.output)
    (source,) = by_rule(doc, "prior_dose_source")
    assert source["status"] == "not_evaluable"
    assert source["message"].startswith("the dose of prior course 'PRIOR_T7' was written by a ")
    (cum,) = [f for f in by_rule(doc, "cumulative_eqd2") if f["roi"] == "SpinalCord"]
    assert cum["status"] == "not_evaluable"
    assert cum["message"].startswith("not judged: the dose is not trusted (prior_dose_source")
    # the current course's own organ judgements stand
    cord = [f for f in doc["findings"] if f["roi"] == "SpinalCord" and f["group"] == "organ"]
    assert len(cord) == 3 and {f["status"] for f in cord} == {"pass"}
    assert by_rule(doc, "dose_source") == []
    assert result.exit_code == 4
