"""Closed contours left out when a structure set is read (points that are not numbers, a
geometric type not known): the structure's figures cover what is left of it, so none of them
passes a limit; a deviation stands only where the figure can only grow with the missing part.
And CLOSEDPLANAR_XOR contours, which are closed contours combined by exclusive or: read as such.
Real DICOM: sample cases rewritten with pydicom."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
from click.testing import CliRunner
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from rtqa.cli import cli
from rtqa.dicom.structures import read_structure_set

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
CONTOUR_DATA = Tag(0x30060050)


def copy_case(tmp_path: Path, case: str) -> Path:
    return Path(shutil.copytree(SAMPLES / case, tmp_path / case))


def structure_file(case: Path) -> Path:
    """The current course's structure set (spine_prior also holds its prior course's)."""
    (path,) = (p for p in case.glob("RS.*.dcm") if "PRIOR_" not in p.name)
    return path


def contours_of(ds: pydicom.Dataset, name: str) -> pydicom.Sequence:
    number = next(int(s.ROINumber) for s in ds.StructureSetROISequence if s.ROIName == name)
    item = next(r for r in ds.ROIContourSequence if int(r.ReferencedROINumber) == number)
    return item.ContourSequence


def spoil_contour(case: Path, name: str, k: int) -> None:
    """Write contour ``k`` (1-based) of ROI ``name`` with its last coordinate as the text 'x',
    as a faulty exporter would (the file is otherwise unchanged)."""
    path = structure_file(case)
    ds = pydicom.dcmread(path)
    contour = contours_of(ds, name)[k - 1]
    values = [f"{float(v):g}" for v in contour.ContourData]
    text = "\\".join([*values[:-1], "x"]).encode()
    text += b" " * (len(text) % 2)
    contour._dict[CONTOUR_DATA] = RawDataElement(
        CONTOUR_DATA, "DS", len(text), text, 0, False, True
    )
    ds.save_as(path)


def set_types(case: Path, name: str | None, kind: str, k: int | None = None) -> None:
    """ContourGeometricType ``kind`` for contour ``k`` of ROI ``name`` (every contour where
    ``k`` is None; every ROI where ``name`` is None)."""
    path = structure_file(case)
    ds = pydicom.dcmread(path)
    names = [name] if name else [s.ROIName for s in ds.StructureSetROISequence]
    for n in names:
        contours = contours_of(ds, n)
        for contour in contours if k is None else [contours[k - 1]]:
            contour.ContourGeometricType = kind
    ds.save_as(path)


def check(case: Path) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "nrg_br002", "--format", "json"]
    )
    doc = json.loads(result.output)
    return result.exit_code, doc["findings"]


def rows(findings: list[dict], group: str, roi: str) -> dict[str, dict]:
    return {f["rule"]: f for f in findings if f["group"] == group and f["roi"] == roi}


def test_the_reader_names_the_contours_an_roi_lost(tmp_path):
    case = copy_case(tmp_path, "spine_3fx")
    spoil_contour(case, "SpinalCord", 20)
    set_types(case, "SpinalCord", "CLOSED_PLANR", k=30)
    ss = read_structure_set(str(structure_file(case)))
    cord = next(r for r in ss.rois if r.name == "SpinalCord")
    assert cord.lost_contours == (
        "contour 20 (its points could not be read)",
        "contour 30 (ContourGeometricType 'CLOSED_PLANR')",
    )
    assert len(cord.planes) == 39  # 41 contours, one a plane
    assert all(r.lost_contours == () for r in ss.rois if r.name != "SpinalCord")


def test_an_organ_that_lost_a_contour_passes_no_limit(tmp_path):
    """spine_3fx passes every cord limit (exit 0). With one of its 41 cord contours unreadable,
    the cord's figures cover 40 planes: each row is not evaluable, naming the contour, and the
    course exits 4. The oesophagus, read whole, still passes."""
    case = copy_case(tmp_path, "spine_3fx")
    code, before = check(case)
    assert code == 0
    spoil_contour(case, "SpinalCord", 21)
    code, after = check(case)
    cord = rows(after, "organ", "SpinalCord")
    assert (
        set(cord)
        == set(rows(before, "organ", "SpinalCord"))
        == {
            "D0.03cc[Gy]",
            "D0.35cc[Gy]",
            "D1.2cc[Gy]",
        }
    )
    for f in cord.values():
        assert f["status"] == "not_evaluable"
        assert (
            "within the limit on the judged contour, but 'SpinalCord' lacks contour 21 (its "
            "points could not be read), left out when its structure set was read"
        ) in f["message"]
        # the known part's figure, the lower end of what the whole cord could read
        assert f["value_range"]["low"] == f["value"] and f["value_range"]["high"] is None
    assert {f["status"] for f in rows(after, "organ", "Esophagus").values()} == {"pass"}
    assert code == 4


def test_a_target_that_lost_a_contour_has_no_judged_coverage(tmp_path):
    case = copy_case(tmp_path, "spine_3fx")
    spoil_contour(case, "PTV_30Gy", 6)
    code, findings = check(case)
    ptv = rows(findings, "target", "PTV_30Gy")
    assert set(ptv) == {"V100%[%]", "V90%[%]"}
    for f in ptv.values():
        assert f["status"] == "not_evaluable"
        assert "'PTV_30Gy' lacks contour 6 (its points could not be read)" in f["message"]
    # its volume beside the planning system's ROIVolume: a part, not a disagreement (minor)
    volume = rows(findings, "integrity", "PTV_30Gy")["volume"]
    assert volume["status"] == "not_evaluable"
    assert volume["message"].startswith("rtqa 20.11 cc, planning system 22.12 cc")
    assert "not compared: 'PTV_30Gy' lacks contour 6" in volume["message"]
    assert volume["value_range"] == {"low": volume["value"], "high": None}
    assert code == 4


def test_a_deviation_that_can_only_grow_stands_and_a_derived_organ_follows_its_parts(tmp_path):
    """lung_5fx: the oesophagus D0.03cc is a major deviation (exit 1). With one of its contours
    unreadable it stays major (the whole organ's D0.03cc can only be higher), its D5cc pass is
    not evaluable; with a GTV contour unreadable, 'Lungs - GTV' V20Gy[%] is not evaluable."""
    case = copy_case(tmp_path, "lung_5fx")
    code, before = check(case)
    assert code == 1
    assert rows(before, "organ", "Esophagus")["D0.03cc[Gy]"]["status"] == "major"
    assert rows(before, "organ", "Lungs - GTV")["V20Gy[%]"]["status"] == "pass"
    spoil_contour(case, "Esophagus", 2)
    spoil_contour(case, "GTV", 2)
    code, after = check(case)
    eso = rows(after, "organ", "Esophagus")
    assert eso["D0.03cc[Gy]"]["status"] == "major"
    assert "'Esophagus' lacks contour 2" in eso["D0.03cc[Gy]"]["message"]
    assert eso["D5cc[Gy]"]["status"] == "not_evaluable"
    lungs = rows(after, "organ", "Lungs - GTV")["V20Gy[%]"]
    assert lungs["status"] == "not_evaluable"
    assert "'GTV' lacks contour 2 (its points could not be read)" in lungs["message"]
    assert code == 1


def test_plan_quality_of_a_target_with_a_body_outline_that_lost_a_contour(tmp_path):
    """The conformity and gradient indices count isodose volumes inside the body outline: with
    a body contour unreadable, none of lung_5fx's four passing indices passes."""
    case = copy_case(tmp_path, "lung_5fx")
    spoil_contour(case, "Body", 30)
    _, findings = check(case)
    quality = rows(findings, "quality", "PTV_50Gy")
    assert set(quality) == {"CI", "Spill105[%]", "R50%", "D2cm[%]"}
    for f in quality.values():
        assert f["status"] == "not_evaluable"
        assert "'Body' lacks contour 30" in f["message"]


def test_closedplanar_xor_contours_are_read_as_closed_contours(tmp_path):
    """Every contour of spine_3fx written as CLOSEDPLANAR_XOR (PS3.3 C.8.8.6.3: the rings of a
    plane combined by exclusive or, the even-odd rule): the same figures, the same verdict.
    Before, every contour was excluded and no ROI had a volume."""
    case = copy_case(tmp_path, "spine_3fx")
    _, before = check(case)
    set_types(case, None, "CLOSEDPLANAR_XOR")
    code, after = check(case)
    assert code == 0
    judged = [f for f in before if f["group"] in ("organ", "target")]
    assert len(judged) == 8  # seven limits and the optional organs not contoured
    assert [(f["rule"], f["roi"], f["status"], f["value"]) for f in judged] == [
        (f["rule"], f["roi"], f["status"], f["value"])
        for f in after
        if f["group"] in ("organ", "target")
    ]


def test_the_prior_radiation_rows_of_an_organ_that_lost_a_contour(tmp_path):
    """spine_prior under spine_reirradiation passes the cord's cumulative EQD2 maximum (50.76 Gy,
    exit 0). With a cord contour unreadable, the cumulative, current-course and share rows of
    the cord are not evaluable: the prior-radiation rules judge the same incomplete structure."""
    case = copy_case(tmp_path, "spine_prior")
    spoil_contour(case, "SpinalCord", 21)
    result = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "spine_reirradiation", "--format", "json"]
    )
    cord = rows(json.loads(result.output)["findings"], "prior", "SpinalCord")
    for rule in ("course_eqd2", "cumulative_eqd2", "course_share"):
        assert cord[rule]["status"] == "not_evaluable", rule
        assert (
            "'SpinalCord' lacks contour 21 (its points could not be read)"
            in (cord[rule]["message"])
        )
    assert result.exit_code == 4
