"""A plan's dose in another frame of reference than its structures, and parts of one case naming
different patients: moved exactly where a registration allows, else every judgement withheld.

Inputs: copies of the sample case spine_3fx with the RT Dose re-framed (new
FrameOfReferenceUID, ImagePositionPatient moved 20 mm along x: the same physical dose written in
a frame B with x_B = x_A + 20 mm) and, where said, a Spatial Registration (the sample's
spine_prior RE file re-pointed) mapping B into A. The truth is the unmodified case's own result.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import generate_uid

from rtqa.cli import cli
from rtqa.model import Beam, Case, DoseGrid, Plan
from rtqa.protocol.case_integrity import dose_type_finding, prior_dose_type_findings
from rtqa.protocol.course_dose import plan_doses_on_first
from rtqa.protocol.dose_trust import TRUST_RULES

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
SHIFT_MM = 20.0


def run(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout


def check_json(case: Path) -> tuple[int, dict]:
    code, out = run("check", str(case), "--format", "json")
    return code, json.loads(out)


def values(data: dict) -> dict[tuple[str, str], float]:
    """(ROI, metric) -> value of the target and organ findings."""
    return {
        (f["roi"], f["metric"]): f["value"]
        for f in data["findings"]
        if f["group"] in ("target", "organ") and f.get("value") is not None
    }


def reframed(tmp_path: Path, matrix: np.ndarray | None) -> Path:
    """spine_3fx with its dose in a new frame B (x_B = x_A + 20 mm) and, when ``matrix`` is
    given, a registration whose item for B carries it (B into the registration's frame A)."""
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rd_path = case / "RD.SPINE3FX.dcm"
    rd = pydicom.dcmread(rd_path)
    frame_a, frame_b = rd.FrameOfReferenceUID, generate_uid()
    rd.FrameOfReferenceUID = frame_b
    ipp = [float(v) for v in rd.ImagePositionPatient]
    rd.ImagePositionPatient = [ipp[0] + SHIFT_MM, ipp[1], ipp[2]]
    rd.save_as(rd_path)
    if matrix is not None:
        reg = pydicom.dcmread(SAMPLES / "spine_prior" / "RE.SPINEPRIOR.dcm")
        reg.PatientID, reg.PatientName = rd.PatientID, rd.PatientName
        reg.StudyInstanceUID = rd.StudyInstanceUID
        reg.SOPInstanceUID = generate_uid()
        reg.file_meta.MediaStorageSOPInstanceUID = reg.SOPInstanceUID
        reg.FrameOfReferenceUID = frame_a
        own, other = reg.RegistrationSequence[0], reg.RegistrationSequence[1]
        own.FrameOfReferenceUID, other.FrameOfReferenceUID = frame_a, frame_b
        item = other.MatrixRegistrationSequence[0].MatrixSequence[0]
        item.FrameOfReferenceTransformationMatrix = [f"{v:.6g}" for v in matrix.ravel()]
        reg.save_as(case / "RE.DOSE.dcm")
    return case


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict:
    code, data = check_json(SAMPLES / "spine_3fx")
    assert code == 0
    return values(data)


def test_dose_moved_by_a_translating_registration_gives_the_original_numbers(tmp_path, truth):
    m = np.eye(4)
    m[0, 3] = -SHIFT_MM  # x_A = x_B - 20 mm
    code, data = check_json(reframed(tmp_path, m))
    assert code == 0 and data["verdict"] == "pass"
    got = values(data)
    assert got.keys() == truth.keys() and len(got) >= 7
    for key, want in truth.items():
        assert got[key] == pytest.approx(want, rel=1e-9, abs=1e-9), key
    assert not [f for f in data["findings"] if f["rule"] == "dose_frame"]
    notes = [n["message"] for n in data["notes"] if "moved by" in n["message"]]
    assert len(notes) == 1 and "moved by (-20.000, 0.000, 0.000) mm" in notes[0]


def test_dvh_command_moves_the_dose_too(tmp_path):
    m = np.eye(4)
    m[0, 3] = -SHIFT_MM
    case = reframed(tmp_path, m)
    metric = "D0.03cc[Gy]"
    code, out = run("dvh", str(case), "--metric", metric, "--format", "json")
    assert code == 0
    code0, out0 = run("dvh", str(SAMPLES / "spine_3fx"), "--metric", metric, "--format", "json")
    assert code0 == 0
    moved = {r["roi"]: r["metrics"][metric] for r in json.loads(out)["rois"]}
    orig = {r["roi"]: r["metrics"][metric] for r in json.loads(out0)["rois"]}
    assert moved == pytest.approx(orig, rel=1e-9)
    assert orig["SpinalCord"] > 10.0  # the cord is dosed: a shifted dose would change it


def test_dose_in_another_frame_without_registration_withholds_every_dose_judgement(tmp_path):
    code, data = check_json(reframed(tmp_path, None))
    (frame,) = [f for f in data["findings"] if f["rule"] == "dose_frame"]
    assert frame["status"] == "not_evaluable" and frame["group"] == "integrity"
    assert "no spatial registration links the two frames" in frame["message"]
    head = "not judged: the dose is not trusted (dose_frame of SPINE3FX not evaluable)"
    judged = [
        f for f in data["findings"] if f["group"] in ("target", "organ") and f["status"] != "info"
    ]
    assert len(judged) == 7  # the sample's 2 coverage and 5 organ rules
    assert all(f["status"] == "not_evaluable" for f in judged)
    assert all(f["message"].startswith(head) for f in judged)
    # the shifted dose measured the PTV coverage far below the limits: withheld all the same
    v100 = next(f for f in judged if f["metric"] == "V100%[%]")
    assert v100["value"] < 50.0 and "measured as major" in v100["message"]
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_rotating_registration_is_not_applied(tmp_path):
    m = np.eye(4)
    m[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]  # 90 degrees about z
    code, data = check_json(reframed(tmp_path, m))
    (frame,) = [f for f in data["findings"] if f["rule"] == "dose_frame"]
    assert frame["status"] == "not_evaluable" and "rotates" in frame["message"]
    assert code == 4


def test_dvh_command_refuses_a_dose_it_cannot_lay_on_the_contours(tmp_path):
    case = reframed(tmp_path, None)
    res = CliRunner().invoke(cli, ["dvh", str(case)])
    assert res.exit_code == 3
    assert "RD.SPINE3FX.dcm" in res.output
    assert "the dose cannot be laid on the contours" in res.output
    assert "Traceback" not in res.output


def test_parts_naming_different_patients_withhold_the_verdict(tmp_path):
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    rd_path = case / "RD.SPINE3FX.dcm"
    rd = pydicom.dcmread(rd_path)
    own = rd.PatientID
    rd.PatientID = "SOMEONE-ELSE"
    rd.save_as(rd_path)
    code, data = check_json(case)
    (who,) = [f for f in data["findings"] if f["rule"] == "patient_identity"]
    assert who["status"] == "not_evaluable"
    assert "dose 'SOMEONE-ELSE'" in who["message"] and f"plan '{own}'" in who["message"]
    head = "not judged: the dose is not trusted (patient_identity of SPINE3FX not evaluable)"
    fractions = next(f for f in data["findings"] if f["rule"] == "fraction_count")
    assert fractions["status"] == "not_evaluable" and fractions["message"].startswith(head)
    judged = [f for f in data["findings"] if f["group"] in ("target", "organ", "plan")]
    assert not [f for f in judged if f["status"] in ("pass", "minor", "major")]
    assert code == 4 and data["verdict"] == "not_evaluable"


# --------------------------------------------------------------- dose type (RBE-weighted)


def _grid(dose_type: str) -> DoseGrid:
    ax = np.arange(-5.0, 5.1, 2.5)
    return DoseGrid(np.full((5, 5, 5), 10.0), ax, ax, ax, "1.2.3", dose_type=dose_type)


def _plan(radiation: str) -> Plan:
    return Plan(
        path="RP.dcm",
        sop_instance_uid="1.2.3.4",
        label="P",
        beams=(Beam(1, "B1", "TREATMENT", radiation), Beam(2, "SETUP", "SETUP", "PHOTON")),
    )


@pytest.mark.parametrize(
    ("radiation", "dose_type", "status"),
    [
        ("PROTON", "PHYSICAL", "not_evaluable"),  # limits in Gy(RBE), no RBE applied
        ("ION", "PHYSICAL", "not_evaluable"),
        ("PROTON", "EFFECTIVE", "info"),  # Gy(RBE): said, judged as given
        ("PHOTON", "EFFECTIVE", "info"),
        ("PHOTON", "PHYSICAL", None),  # nothing to say
    ],
)
def test_dose_type_of_particle_plans(radiation, dose_type, status):
    case = Case("C", plan=_plan(radiation), dose=_grid(dose_type))
    found = dose_type_finding(case)
    assert (found.status.value if found else None) == status
    if status == "not_evaluable":
        assert f"PHYSICAL dose of a plan with {radiation} beams" in found.message
        assert "dose_type" in TRUST_RULES


def test_physical_and_rbe_weighted_plan_doses_are_never_summed():
    cases = [
        Case("A", plan=_plan("PHOTON"), dose=_grid("PHYSICAL")),
        Case("B", plan=_plan("PROTON"), dose=_grid("EFFECTIVE")),
    ]
    arrays, said, failed = plan_doses_on_first(cases)
    assert failed is not None and "never summed" in failed
    assert "EFFECTIVE dose" in failed and len(arrays) == 1 and said == []
    same = [cases[0], Case("C", plan=_plan("PHOTON"), dose=_grid("PHYSICAL"))]
    arrays, _, failed = plan_doses_on_first(same)
    assert failed is None and len(arrays) == 2
    assert float(arrays[1].sum()) == pytest.approx(10.0 * 125)


def test_prior_course_of_another_dose_type_is_withheld():
    priors = [
        Case("PRIOR_A", plan=_plan("PHOTON"), dose=_grid("PHYSICAL")),
        Case("PRIOR_B", plan=_plan("PHOTON"), dose=_grid("EFFECTIVE")),
    ]
    (found,) = prior_dose_type_findings(priors, _grid("PHYSICAL"))
    assert found.case_id == "PRIOR_B" and found.status.value == "not_evaluable"
    assert found.group == "prior" and TRUST_RULES[found.rule] == ("prior",)
    assert "EFFECTIVE dose, the current course a PHYSICAL one" in found.message
