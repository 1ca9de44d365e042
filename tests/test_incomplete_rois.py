"""Structures whose contours do not define all of them: closed contours left out when a structure
set is read (points that are not numbers, a geometric type not known), and rings of a plane
overlapping in part or drawn twice (a union or a hole: both plausible). Their figures cover what
is defined, so none of them passes a limit; a deviation stands only where the figure can only
grow with the rest. And CLOSEDPLANAR_XOR contours, which are closed contours combined by
exclusive or: read as such. Real DICOM: sample cases rewritten with pydicom, and structure sets
written with the project's writer."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from shapely.geometry import Polygon

from rtqa.cli import cli
from rtqa.dicom.common import make_uid
from rtqa.dicom.structures import read_structure_set
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.structures import rings_at, write_structure_set
from rtqa.model import Roi, StructureSet

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
    assert cord.incomplete == (
        "contour 20 left out at read: its points could not be read",
        "contour 30 left out at read: ContourGeometricType 'CLOSED_PLANR'",
    )
    assert len(cord.planes) == 39  # 41 contours, one a plane
    assert all(r.incomplete == () for r in ss.rois if r.name != "SpinalCord")


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
        assert f["message"].endswith(
            "within the limit on the judged contour, but the contours of 'SpinalCord' do not "
            "define all of it (contour 21 left out at read: its points could not be read)"
        )
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
        assert f["message"].endswith(
            "the contours of 'PTV_30Gy' do not define all of it (contour 6 left out at read: its "
            "points could not be read)"
        )
    # its volume beside the planning system's ROIVolume: a part, not a disagreement (minor)
    volume = rows(findings, "integrity", "PTV_30Gy")["volume"]
    assert volume["status"] == "not_evaluable"
    assert volume["message"].startswith("rtqa 20.11 cc, planning system 22.12 cc")
    assert volume["message"].endswith(
        "not compared: the contours of 'PTV_30Gy' do not define all of it (contour 6 left out at "
        "read: its points could not be read)"
    )
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
    assert (
        "'Esophagus' do not define all of it (contour 2 left out" in eso["D0.03cc[Gy]"]["message"]
    )
    assert eso["D5cc[Gy]"]["status"] == "not_evaluable"
    lungs = rows(after, "organ", "Lungs - GTV")["V20Gy[%]"]
    assert lungs["status"] == "not_evaluable"
    assert "'GTV' do not define all of it (contour 2 left out at read" in lungs["message"]
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
        assert "'Body' do not define all of it (contour 30 left out" in f["message"]


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
            "the contours of 'SpinalCord' do not define all of it (contour 21 left out at read: "
            "its points could not be read)" in cord[rule]["message"]
        )
    assert result.exit_code == 4


# --------------------------------------------------------------------------------------------
# Rings of a plane whose combination is ambiguous
# --------------------------------------------------------------------------------------------

FRAME = make_uid("incomplete-frame")
AMBIGUOUS = "a union or a hole, both plausible"


def square(cx: float, cy: float, half: float) -> np.ndarray:
    return np.array([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                     (cx - half, cy + half)])  # fmt: skip


def read_plane(tmp_path: Path, kind: str, *rings: np.ndarray) -> Roi:
    """One ROI: ``rings`` on plane z 0 mm, then one 10 mm square on z 2.5 mm."""
    raw = rings_at(kind, 0.0, *rings) + rings_at("CLOSED_PLANAR", 2.5, square(0, 0, 5))
    header = Header("RTQA-IN", "Phantom^Rings", make_uid("in-study"), datetime(2024, 4, 1, 12))
    path = write_structure_set(
        StructureSet("", make_uid("in-ss"), "SS", FRAME, (Roi(1, "R", "ORGAN"),)),
        tmp_path / "RS.rings.dcm",
        header,
        series_instance_uid=make_uid("in-series"),
        referenced_frame_uid=FRAME,
        referenced_series_uid=make_uid("in-ct"),
        raw_contours={1: raw},
    )
    return read_structure_set(str(path)).roi(1)


def plane_area(roi: Roi, z: float) -> float:
    (plane,) = [p for p in roi.planes if p.z_mm == z]
    return sum(Polygon(p.exterior, p.holes).area for p in plane.polygons)


def test_rings_overlapping_in_part_are_ambiguous(tmp_path):
    """Two 10 mm squares 4 mm apart share 6 x 10 = 60 mm^2: the even-odd rule leaves
    2 x 100 - 2 x 60 = 80 mm^2, a union 140 mm^2."""
    roi = read_plane(tmp_path, "CLOSED_PLANAR", square(0, 0, 5), square(4, 0, 5))
    assert plane_area(roi, 0.0) == pytest.approx(80.0)
    assert roi.incomplete == (f"contours 1 and 2 at z 0 mm overlap in part (60 mm^2): {AMBIGUOUS}",)
    assert any("though a union is as plausible" in n.message for n in roi.notes)


def test_one_ring_drawn_twice_is_ambiguous(tmp_path):
    """The even-odd rule leaves nothing of the plane (the plane is dropped); a union keeps it."""
    roi = read_plane(tmp_path, "CLOSED_PLANAR", square(0, 0, 5), square(0, 0, 5))
    assert [p.z_mm for p in roi.planes] == [2.5]
    assert roi.incomplete == (f"contours 1 and 2 at z 0 mm are one ring drawn twice: {AMBIGUOUS}",)


@pytest.mark.parametrize(
    ("rings", "area"),
    [
        # two islands sharing the edge x = 1: no area in common
        ((square(0, 0, 1), square(2, 0, 1)), 8.0),
        # a triangular hole touching its ring at the corner (-5, -5): 100 - 6 mm^2
        ((square(0, 0, 5), np.array([(-5, -5), (-1, -5), (-5, -2)])), 100.0 - 6.0),
        # a square hole sharing an edge with its ring
        ((square(0, 0, 5), np.array([(-5, -2), (0, -2), (0, 2), (-5, 2)])), 100.0 - 20.0),
    ],
)
def test_rings_touching_or_holding_each_other_are_not_ambiguous(tmp_path, rings, area):
    roi = read_plane(tmp_path, "CLOSED_PLANAR", *rings)
    assert plane_area(roi, 0.0) == pytest.approx(area)
    assert roi.incomplete == ()


def test_overlapping_closedplanar_xor_rings_are_exclusive_or_by_definition(tmp_path):
    roi = read_plane(tmp_path, "CLOSEDPLANAR_XOR", square(0, 0, 5), square(4, 0, 5))
    assert plane_area(roi, 0.0) == pytest.approx(80.0)
    assert roi.incomplete == ()


def test_an_organ_with_a_contour_drawn_twice_passes_no_limit(tmp_path):
    """spine_3fx with cord contour 21 written a second time (contour 42): that plane holds no
    area by the even-odd rule, though a union would keep it. Every cord row is not evaluable."""
    case = copy_case(tmp_path, "spine_3fx")
    path = structure_file(case)
    ds = pydicom.dcmread(path)
    contours = contours_of(ds, "SpinalCord")
    contours.append(copy.deepcopy(contours[20]))
    z = float(contours[20].ContourData[2])
    ds.save_as(path)
    code, findings = check(case)
    cord = rows(findings, "organ", "SpinalCord")
    assert len(cord) == 3
    for f in cord.values():
        assert f["status"] == "not_evaluable"
        assert (
            f"(contours 21 and 42 at z {z:g} mm are one ring drawn twice: {AMBIGUOUS})"
            in (f["message"])
        )
    assert code == 4


def test_rings_whose_shared_area_cannot_be_computed_are_ambiguous(tmp_path, monkeypatch):
    """An overlay GEOS cannot resolve: the pair is not told apart, so it is ambiguous."""
    import shapely.errors

    def fail(self, other, grid_size=None):
        raise shapely.errors.GEOSException("TopologyException: side location conflict")

    monkeypatch.setattr(Polygon, "intersection", fail)
    roi = read_plane(tmp_path, "CLOSED_PLANAR", square(0, 0, 5), square(4, 0, 5))
    assert roi.incomplete == (
        "contours 1 and 2 at z 0 mm cross each other (their shared area could not be computed): "
        f"{AMBIGUOUS}",
    )


@pytest.mark.parametrize(
    ("ring", "planes", "clause"),
    [
        # one 10 mm square traced twice in one contour: no even-odd area (the plane is dropped),
        # all of it by the non-zero rule
        (
            np.vstack([square(0, 0, 5), square(0, 0, 5)]),
            [2.5],
            "winds twice or more around 100 of the 100 mm^2 it encloses",
        ),
        # the square, then its lower-left quarter again: that quarter is a hole by the even-odd
        # rule and inside by the non-zero rule
        (
            np.array([(-5, -5), (5, -5), (5, 5), (-5, 5), (-5, -5), (0, -5), (0, 0), (-5, 0)]),
            [0.0, 2.5],
            "winds twice or more around 25 of the 100 mm^2 it encloses",
        ),
    ],
)
def test_a_ring_winding_twice_around_part_of_itself_is_ambiguous(tmp_path, ring, planes, clause):
    roi = read_plane(tmp_path, "CLOSED_PLANAR", ring)
    assert [p.z_mm for p in roi.planes] == planes
    assert roi.incomplete == (f"contour 1 at z 0 mm {clause}: a hole or inside, both plausible",)


def test_a_bow_tie_winds_once_around_each_lobe_and_is_not_ambiguous(tmp_path):
    """Its lobes are wound around once each way: the even-odd and non-zero rules agree."""
    roi = read_plane(tmp_path, "CLOSED_PLANAR", np.array([(0, 0), (10, 10), (10, 0), (0, 10)]))
    assert plane_area(roi, 0.0) == pytest.approx(50.0)
    assert roi.incomplete == ()
