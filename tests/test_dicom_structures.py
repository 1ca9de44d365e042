"""RT Structure Set writer and reader: contours, holes, degenerate rings and joins by ROI number
(edge cases S1-S8, S12, S14, S16 of the DICOM notes). Areas are closed-form polygon areas."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian
from shapely.geometry import Polygon

from rtqa.dicom.common import make_uid
from rtqa.dicom.structures import read_structure_set
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.structures import RawContour, rings_at, write_structure_set
from rtqa.geometry.slabs import contour_volume_cc
from rtqa.model import ContourPlane, Level, PlanarPolygon, Roi, StructureSet

HEADER = Header("RTQA-SS", "Phantom^Contours", make_uid("ss-study"), datetime(2024, 4, 1, 12, 0))
FRAME = make_uid("ss-frame")
CT_SERIES = make_uid("ss-ct")


def square(cx: float, cy: float, half: float) -> np.ndarray:
    return np.array(
        [
            (cx - half, cy - half),
            (cx + half, cy - half),
            (cx + half, cy + half),
            (cx - half, cy + half),
        ]
    )


def structure_set(*rois: Roi) -> StructureSet:
    return StructureSet("", make_uid("ss", len(rois)), "SS_TEST", FRAME, rois)


def write(tmp_path: Path, ss: StructureSet, raw=None, **kw) -> Path:
    return write_structure_set(
        ss,
        tmp_path / "RS.test.dcm",
        HEADER,
        series_instance_uid=make_uid("ss-series"),
        referenced_frame_uid=FRAME,
        referenced_series_uid=CT_SERIES,
        raw_contours=raw,
        **kw,
    )


def read_raw(tmp_path: Path, rings: dict[int, list[RawContour]]) -> StructureSet:
    rois = tuple(Roi(n, f"ROI{n}", "ORGAN") for n in rings)
    return read_structure_set(str(write(tmp_path, structure_set(*rois), rings)))


def area(plane: ContourPlane) -> float:
    return sum(Polygon(p.exterior, p.holes).area for p in plane.polygons)


SINGLE_PLANE = "closed contours on a single plane"


def other_notes(roi: Roi) -> tuple:
    """The ROI's notes but the single-plane warning (tested on its own below)."""
    return tuple(n for n in roi.notes if SINGLE_PLANE not in n.message)


def messages(roi: Roi) -> list[str]:
    return [n.message for n in other_notes(roi)]


def test_round_trip_keeps_points_holes_and_attributes(tmp_path):
    ring = PlanarPolygon(square(0, 0, 10), (square(0, 0, 4),))
    ptv = Roi(
        5,
        "PTV_30",
        "PTV",
        planes=(ContourPlane(-2.5, (ring,), 2), ContourPlane(0.0, (ring,), 2)),
        tps_volume_cc=1.68,
    )
    marker = Roi(9, "Iso", "ISOCENTER", points=(np.array([[1.5, -2.0, 3.25]]),))
    wire = Roi(
        2, "Wire", "MARKER", open_contours=(np.array([[0, 0, 1.0], [5, 0, 1.0], [5, 5, 1]]),)
    )
    path = write(tmp_path, structure_set(ptv, marker, wire), colors={5: (0, 255, 0)})
    ss = read_structure_set(str(path))
    assert [r.number for r in ss.rois] == [5, 9, 2]
    assert ss.frame_of_reference_uid == FRAME and ss.referenced_series_uid == CT_SERIES
    assert ss.label == "SS_TEST" and ss.patient_id == "RTQA-SS"
    assert ss.structure_set_datetime == datetime(2024, 4, 1, 12, 0)
    read = ss.roi("PTV_30")
    assert read.interpreted_type == "PTV" and read.tps_volume_cc == 1.68
    assert read.frame_of_reference_uid == FRAME and read.contour_count == 4
    assert [p.z_mm for p in read.planes] == [-2.5, 0.0]
    (polygon,) = read.planes[0].polygons
    assert np.array_equal(polygon.exterior, square(0, 0, 10))
    assert np.array_equal(polygon.holes[0], square(0, 0, 4))
    assert area(read.planes[1]) == 400 - 64
    assert read.notes == ()
    assert ss.roi(9).points[0].tolist() == [[1.5, -2.0, 3.25]]
    assert ss.roi(9).is_empty and ss.roi(9).interpreted_type == "ISOCENTER"
    assert ss.roi(2).open_contours[0].tolist() == [[0, 0, 1], [5, 0, 1], [5, 5, 1]]
    assert messages(ss.roi(2)) == ["ROI 2 'Wire': only POINT/OPEN contours, no volume"]
    contour = pydicom.dcmread(path).ROIContourSequence[0]
    assert list(contour.ROIDisplayColor) == [0, 255, 0]


def test_nested_rings_give_polygon_with_hole_plus_island(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 4.0, square(0, 0, 10), square(0, 0, 6), square(0, 0, 2))
    rings += rings_at("CLOSED_PLANAR", 4.0, square(30, 0, 3))  # a second island, same plane
    (roi,) = read_raw(tmp_path, {1: rings}).rois
    (plane,) = roi.planes
    assert plane.ring_count == 4 and len(plane.polygons) == 3
    assert area(plane) == (400 - 144) + 16 + 36
    outer = next(p for p in plane.polygons if p.holes)
    assert np.array_equal(outer.exterior, square(0, 0, 10))
    assert np.array_equal(outer.holes[0], square(0, 0, 6))
    assert other_notes(roi) == ()


def test_crossing_rings_combined_by_even_odd_rule(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 2), square(2, 0, 2))
    (roi,) = read_raw(tmp_path, {3: rings}).rois
    assert area(roi.planes[0]) == 16 + 16 - 2 * 8  # overlap 2 x 4 counted twice → removed
    assert messages(roi) == [
        "ROI 3 'ROI3' at z 0 mm: contours cross each other: combined by the even-odd rule",
        "ROI 3 'ROI3' at z 0 mm: contours 1 and 2 overlap in part (8 mm^2): combined by the "
        "even-odd rule (the shared part a hole), though a union is as plausible; no figure of the "
        "ROI is judged as within a limit",
    ]
    assert roi.incomplete == (
        "contours 1 and 2 at z 0 mm overlap in part (8 mm^2): a union or a hole, both plausible",
    )


def test_empty_roi_reported(tmp_path):
    ss = read_raw(tmp_path, {7: []})
    roi = ss.roi(7)
    assert roi.is_empty and roi.contour_count == 0
    assert roi.notes[0].level is Level.WARNING
    assert messages(roi) == ["ROI 7 'ROI7': defined with no contours (empty)"]


def test_two_point_closed_contour_dropped_with_warning(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 1.0, [(0, 0), (5, 5)])
    rings += rings_at("CLOSED_PLANAR", 2.0, square(0, 0, 1))
    roi = read_raw(tmp_path, {1: rings}).roi(1)
    assert [p.z_mm for p in roi.planes] == [2.0]
    assert messages(roi)[:2] == [
        "ROI 1 'ROI1' at z 1 mm, contour 1: closed contour with 2 distinct point(s) is not a "
        "polygon: dropped",
        "ROI 1 'ROI1' at z 1 mm: no area left on this plane",
    ]
    assert roi.notes[0].attribute == "ContourData (3006,0050)"


def test_duplicate_points_removed(tmp_path):
    ring = [(0, 0), (0, 0), (4, 0), (4, 3), (4, 3), (0, 3), (0, 0)]
    roi = read_raw(tmp_path, {1: rings_at("CLOSED_PLANAR", 0.0, ring)}).roi(1)
    (polygon,) = roi.planes[0].polygons
    assert polygon.exterior.tolist() == [[0, 0], [4, 0], [4, 3], [0, 3]]
    assert area(roi.planes[0]) == 12
    assert messages(roi) == ["ROI 1 'ROI1' at z 0 mm, contour 1: 3 repeated point(s) removed"]


def test_zero_area_contour_dropped(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 0.0, [(0, 0), (1, 1), (2, 2)], square(9, 9, 1))
    roi = read_raw(tmp_path, {1: rings}).roi(1)
    assert area(roi.planes[0]) == 4
    assert messages(roi) == [
        "ROI 1 'ROI1' at z 0 mm, contour 1: closed contour has zero area: dropped"
    ]


def test_bow_tie_repaired_by_even_odd_fill(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 0.0, [(0, 0), (4, 4), (4, 0), (0, 4)])
    roi = read_raw(tmp_path, {1: rings}).roi(1)
    (plane,) = roi.planes
    assert len(plane.polygons) == 2 and area(plane) == pytest.approx(8.0, abs=1e-12)
    assert messages(roi) == [
        "ROI 1 'ROI1' at z 0 mm: self-intersecting contour(s) 1 repaired (even-odd fill)"
    ]


def test_pentagram_centre_excluded_by_even_odd_rule(tmp_path):
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.column_stack([10 * np.cos(angles), 10 * np.sin(angles)])
    roi = read_raw(tmp_path, {1: rings_at("CLOSED_PLANAR", 0.0, star)}).roi(1)
    # five tips; the pentagon in the middle is wound twice and so is outside
    r_inner = 10 * np.cos(2 * np.pi / 5) / np.cos(np.pi / 5)
    star_area = 5 * 10 * r_inner * np.sin(np.pi / 5)
    pentagon = 2.5 * r_inner**2 * np.sin(2 * np.pi / 5)
    assert len(roi.planes[0].polygons) == 5
    assert area(roi.planes[0]) == pytest.approx(star_area - pentagon, rel=1e-9)


def test_contours_joined_by_roi_number_not_order(tmp_path):
    rois = (Roi(2, "Small", "ORGAN"), Roi(17, "Large", "ORGAN"), Roi(63, "Mid", "PTV"))
    raw = {
        2: rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 1)),
        17: rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 5)),
        63: rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 3)),
    }
    path = write(tmp_path, structure_set(*rois), raw)
    ds = pydicom.dcmread(path)
    items = list(ds.ROIContourSequence)
    random.Random(3).shuffle(items)
    ds.ROIContourSequence = items
    ds.RTROIObservationsSequence = list(ds.RTROIObservationsSequence)[::-1]
    assert [int(i.ReferencedROINumber) for i in ds.ROIContourSequence] != [2, 17, 63]
    ds.save_as(path)
    ss = read_structure_set(str(path))
    assert [(r.number, r.name, area(r.planes[0])) for r in ss.rois] == [
        (2, "Small", 4.0),
        (17, "Large", 100.0),
        (63, "Mid", 36.0),
    ]
    assert ss.roi(63).interpreted_type == "PTV"


def test_duplicate_names_kept_and_noted(tmp_path):
    rois = (Roi(1, "PTV", "PTV"), Roi(4, "PTV", "PTV"))
    raw = {1: rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 1)), 4: []}
    ss = read_structure_set(str(write(tmp_path, structure_set(*rois), raw)))
    assert [r.number for r in ss.rois] == [1, 4]
    assert messages(ss.roi(1)) == ["ROI name 'PTV' is used by ROI numbers 1, 4"]


def test_duplicate_roi_number_makes_both_unusable(tmp_path):
    rois = (Roi(1, "A", "ORGAN"), Roi(1, "B", "ORGAN"))
    path = write(tmp_path, structure_set(*rois), {1: rings_at("CLOSED_PLANAR", 0, square(0, 0, 1))})
    ss = read_structure_set(str(path))
    assert all(r.is_empty for r in ss.rois)
    assert ss.rois[0].notes[0].level is Level.ERROR
    assert ss.rois[0].notes[0].message == (
        "ROI number 1 is used by several ROIs: contours cannot be attributed"
    )


def test_orphan_contour_item_noted(tmp_path):
    path = write(tmp_path, structure_set(Roi(1, "A", "ORGAN")), {1: []})
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[0].ReferencedROINumber = 8
    ds.save_as(path)
    ss = read_structure_set(str(path))
    assert [n.message for n in ss.notes] == [
        "ROIContourSequence item references ROI number 8, which StructureSetROISequence does "
        "not define: ignored"
    ]


def test_non_axial_contour_is_an_error_for_that_roi(tmp_path):
    tilted = RawContour("CLOSED_PLANAR", np.array([[0, 0, 0], [5, 0, 0], [5, 0, 5], [0, 0, 5.0]]))
    raw = {1: [tilted, *rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 1))]}
    raw[2] = rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 2))
    ss = read_raw(tmp_path, raw)
    bad = ss.roi(1)
    assert bad.is_empty and bad.notes[0].level is Level.ERROR
    assert bad.notes[0].message == (
        "ROI 1 'ROI1': contour 1 is not axial (z from 0 to 5 mm): the ROI cannot be used as a "
        "volume"
    )
    assert area(ss.roi(2).planes[0]) == 16  # other ROIs unaffected


def test_planes_matched_within_0_01_mm(tmp_path):
    rings = rings_at("CLOSED_PLANAR", 5.0, square(0, 0, 1))
    rings += rings_at("CLOSED_PLANAR", 5.006, square(10, 0, 1))
    rings += rings_at("CLOSED_PLANAR", 5.03, square(0, 0, 1))
    roi = read_raw(tmp_path, {1: rings}).roi(1)
    assert [(round(p.z_mm, 6), p.ring_count) for p in roi.planes] == [(5.003, 2), (5.03, 1)]


def test_unknown_geometric_type_excluded_with_warning(tmp_path):
    raw = {1: [RawContour("INTERPOLATED", np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0.0]]))]}
    roi = read_raw(tmp_path, raw).roi(1)
    assert messages(roi)[0] == (
        "ROI 1 'ROI1': contour 1 has ContourGeometricType 'INTERPOLATED': excluded"
    )
    assert roi.is_empty and roi.contour_count == 1


def test_open_and_point_contours_among_closed_ones_are_named(tmp_path):
    # two closed squares (z 0 and 3 mm) and the z 6 mm square exported OPEN_PLANAR, plus a point
    raw = {
        1: [
            RawContour("CLOSED_PLANAR", np.column_stack([square(0, 0, 3), np.full(4, z)]))
            for z in (0.0, 3.0)
        ]
        + [
            RawContour("OPEN_PLANAR", np.column_stack([square(0, 0, 3), np.full(4, 6.0)])),
            RawContour("POINT", np.array([[0.0, 0.0, 3.0]])),
        ]
    }
    roi = read_raw(tmp_path, raw).roi(1)
    assert [p.z_mm for p in roi.planes] == [0.0, 3.0]  # the open square is not part of it
    assert messages(roi) == [
        "ROI 1 'ROI1': 1 POINT and 1 OPEN contour(s) among its closed planar contours: not part "
        "of its volume (a closed contour exported with the wrong type would be missing from it)"
    ]
    assert roi.notes[-1].level is Level.WARNING


def test_a_speck_of_a_contour_is_kept_and_named(tmp_path):
    # a 6 mm square and, 30 mm away on the same plane, a 0.12 mm square: 0.0144 mm^2
    speck = np.array([[30.0, 0.0], [30.12, 0.0], [30.12, 0.12], [30.0, 0.12]])
    raw = {
        1: [
            RawContour("CLOSED_PLANAR", np.column_stack([square(0, 0, 3), np.zeros(4)])),
            RawContour("CLOSED_PLANAR", np.column_stack([speck, np.zeros(4)])),
        ]
    }
    roi = read_raw(tmp_path, raw).roi(1)
    assert area(roi.planes[0]) == pytest.approx(36 + 0.0144, abs=1e-9)
    assert messages(roi) == [
        "ROI 1 'ROI1' at z 0 mm, contour 2: closed contour of 0.0144 mm^2 (below 0.1 mm^2, finer "
        "than any planning contour): kept; a stray speck sets the ROI's minimum or maximum dose "
        "wherever it lies"
    ]


def test_deflated_structure_set(tmp_path):
    roi = Roi(1, "A", "ORGAN", planes=(ContourPlane(0.0, (PlanarPolygon(square(0, 0, 3)),), 1),))
    path = write(tmp_path, structure_set(roi), deflate=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert area(read_structure_set(str(path)).roi(1).planes[0]) == 36


def _rewrite_contour_data(path: Path, text: str, *, implicit: bool = False) -> Path:
    """Replace the first contour's ContourData by the literal DS text ``text``."""
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    contour.ContourData = text.split("\\")
    contour.NumberOfContourPoints = len(text.split("\\")) // 3
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("implicit", [False, True])
def test_contour_text_forms_parse_to_exact_values(tmp_path, implicit):
    # Exponents, signs, surrounding spaces and an odd-length pad all read as the numbers written.
    roi = Roi(1, "A", "ORGAN", planes=(ContourPlane(0.0, (PlanarPolygon(square(0, 0, 3)),), 1),))
    path = write(tmp_path, structure_set(roi))
    text = "-3\\-3.0E0\\ 2.5\\+3\\-3\\2.5\\3.00\\+0.3e1\\2.5 \\-0.03e2\\3\\25e-1"
    ss = read_structure_set(str(_rewrite_contour_data(path, text, implicit=implicit)))
    plane = ss.roi(1).planes[0]
    assert plane.z_mm == 2.5
    assert plane.polygons[0].exterior.tolist() == [[-3, -3], [3, -3], [3, 3], [-3, 3]]
    assert area(plane) == 36
    assert other_notes(ss.roi(1)) == ()


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_unparseable_contour_value_is_reported_not_read(tmp_path):
    roi = Roi(1, "A", "ORGAN", planes=(ContourPlane(0.0, (PlanarPolygon(square(0, 0, 3)),), 1),))
    path = write(tmp_path, structure_set(roi))
    text = "-3\\-3\\0\\3\\-3\\0\\3\\3\\0\\-3\\3\\nan"
    roi = read_structure_set(str(_rewrite_contour_data(path, text))).roi(1)
    assert roi.planes == ()
    assert messages(roi)[0] == (
        "ROI 1 'A': contour 1 ContourData holds 1 of 12 values that are not numbers: contour "
        "excluded, the structure is incomplete"
    )
    assert roi.notes[0].level is Level.ERROR


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_a_point_count_that_is_not_a_number_is_noted_and_the_points_used(tmp_path):
    roi = Roi(1, "A", "ORGAN", planes=(ContourPlane(0.0, (PlanarPolygon(square(0, 0, 3)),), 1),))
    path = write(tmp_path, structure_set(roi))
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    tag = Tag(0x30060046)  # NumberOfContourPoints, stored as a non-conformant writer would
    contour._dict[tag] = RawDataElement(tag, "IS", 2, b"x ", 0, False, True)
    ds.save_as(path)
    roi = read_structure_set(str(path)).roi(1)
    assert area(roi.planes[0]) == 36
    assert messages(roi)[0] == (
        "ROI 1 'A': contour 1 NumberOfContourPoints 'x' (not a number) but ContourData holds 4 "
        "points: the points were used"
    )


def test_separate_rings_and_a_ring_with_hole_on_one_plane(tmp_path):
    # Bounding boxes of the outer squares are disjoint; only the hole lies inside one of them.
    rings = rings_at(
        "CLOSED_PLANAR", 0.0, square(30, 0, 2), square(0, 0, 5), square(0, 0, 1), square(-30, 0, 3)
    )
    plane = read_raw(tmp_path, {1: rings}).roi(1).planes[0]
    assert plane.ring_count == 4
    assert sorted(len(p.holes) for p in plane.polygons) == [0, 0, 1]
    assert area(plane) == 16 + (100 - 4) + 36


def test_rings_touching_at_an_edge_are_combined_by_even_odd_rule(tmp_path):
    # Two 2x2 squares sharing the edge x = 1: their boundaries meet, so they are combined.
    rings = rings_at("CLOSED_PLANAR", 0.0, square(0, 0, 1), square(2, 0, 1))
    roi = read_raw(tmp_path, {1: rings}).roi(1)
    assert area(roi.planes[0]) == pytest.approx(8)
    assert "contours cross each other: combined by the even-odd rule" in messages(roi)[0]


def test_contour_value_that_is_not_a_number_is_reported(tmp_path):
    # The file holds the text "x.25" where a coordinate belongs (written over "1.25").
    ring = [(0, 0), (4, 0), (4, 1.25), (0, 3)]
    path = write(
        tmp_path, structure_set(Roi(1, "A", "ORGAN")), {1: rings_at("CLOSED_PLANAR", 0.0, ring)}
    )
    data = path.read_bytes()
    assert data.count(b"\\1.25\\") == 1
    path.write_bytes(data.replace(b"\\1.25\\", b"\\x.25\\"))
    roi = read_structure_set(str(path)).roi(1)
    assert roi.planes == ()
    assert messages(roi)[0] == (
        "ROI 1 'A': contour 1 ContourData holds 1 of 12 values that are not numbers: contour "
        "excluded, the structure is incomplete"
    )


# --------------------------------------------------------------------------------------------
# S11: an ROI contoured on a single plane
# --------------------------------------------------------------------------------------------


def test_single_plane_roi_warns_that_its_volume_is_a_convention(tmp_path):
    # ROI 1 on planes 3 mm apart (0, 3, 6, 9), ROI 2 on planes 2 mm apart (0, 2): the steps are
    # 3, 3, 3 and 2 mm, median 3 mm. ROI 3: a 20 mm square with a 12 mm hole on z = 4.5 mm only.
    def stack(zs, half):
        return [r for z in zs for r in rings_at("CLOSED_PLANAR", z, square(0, 0, half))]

    rings = {
        1: stack((0.0, 3.0, 6.0, 9.0), 5),
        2: stack((0.0, 2.0), 2),
        3: rings_at("CLOSED_PLANAR", 4.5, square(0, 0, 10), square(0, 0, 6)),
    }
    ss = read_raw(tmp_path, rings)
    assert ss.roi(1).notes == () and ss.roi(2).notes == ()
    (note,) = ss.roi(3).notes
    assert note.level is Level.WARNING and note.attribute == "ContourData (3006,0050)"
    area_mm2 = 20 * 20 - 12 * 12  # 256
    assert note.message == (
        "ROI 3 'ROI3': closed contours on a single plane (z 4.5 mm, area 256 mm^2): its "
        "thickness is not contoured, so its volume is a convention, not a measurement: with the "
        "structure set's plane spacing of 3 mm (the median step between the planes of its ROIs) "
        "as slab thickness (z 4.5 +/- 1.5 mm), each mm^2 of contour counts as 3 mm^3: 256 mm^2 "
        "x 3 mm = 0.768 cc; rtqa gives it this thickness wherever it computes its volume or "
        "dose: its DVH and every figure of it rest on this convention"
    )
    # the ROI carries that thickness, and the slab model gives it the volume the note states,
    # with the plane spacing passed or without
    assert ss.roi(3).single_plane_thickness_mm == 3.0
    assert ss.roi(1).single_plane_thickness_mm is None
    assert ss.roi(2).single_plane_thickness_mm is None
    assert contour_volume_cc(ss.roi(3), spacing_mm=3.0) == pytest.approx(
        area_mm2 * 3.0 / 1000, rel=1e-12
    )
    assert contour_volume_cc(ss.roi(3)) == pytest.approx(area_mm2 * 3.0 / 1000, rel=1e-12)


def test_single_plane_rois_without_any_plane_spacing(tmp_path):
    rings = {
        1: rings_at("CLOSED_PLANAR", -2.5, square(0, 0, 2)),
        2: rings_at("CLOSED_PLANAR", 7.5, square(0, 0, 1)),
    }
    ss = read_raw(tmp_path, rings)
    assert [n.message for n in ss.roi(1).notes] == [
        "ROI 1 'ROI1': closed contours on a single plane (z -2.5 mm, area 16 mm^2): its "
        "thickness is not contoured, so its volume is a convention, not a measurement: no ROI of "
        "the structure set has two planes to give a plane spacing, so it has no thickness, no "
        "volume and no DVH unless a plane spacing or end cap is given"
    ]
    assert "(z 7.5 mm, area 4 mm^2)" in ss.roi(2).notes[0].message
    assert ss.roi(1).single_plane_thickness_mm is None
    with pytest.raises(ValueError, match="single contour plane"):
        contour_volume_cc(ss.roi(1))


def test_contour_values_longer_than_a_ds_allows_are_read_and_warned(tmp_path):
    # S15: "-3.0000000000000004" (19 characters, as float repr writes it) where DS allows 16
    roi = Roi(1, "A", "ORGAN", planes=(ContourPlane(0.0, (PlanarPolygon(square(0, 0, 3)),), 1),))
    path = write(tmp_path, structure_set(roi))
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    text = b"-3.0000000000000004\\-3\\0\\3\\-3\\0\\3\\3\\0\\-3\\3\\0 "
    tag = Tag(0x30060050)
    contour._dict[tag] = RawDataElement(tag, "DS", len(text), text, 0, False, True)
    ds.save_as(path)
    ss = read_structure_set(str(path))
    assert area(ss.roi(1).planes[0]) == pytest.approx(36.0)
    (note,) = [n for n in ss.notes if "longer than 16 characters" in n.message]
    assert note.level is Level.WARNING and "'-3.0000000000000004'" in note.message
    # the same values at 16 characters and less: no note
    short = b"-3.0000000000001\\-3\\0\\3\\-3\\0\\3\\3\\0\\-3\\3\\0 "
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[0].ContourSequence[0]._dict[tag] = RawDataElement(
        tag, "DS", len(short), short, 0, False, True
    )
    ds.save_as(path)
    assert not [n for n in read_structure_set(str(path)).notes if "16 characters" in n.message]
