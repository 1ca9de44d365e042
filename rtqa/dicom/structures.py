"""Read RT Structure Set files into :class:`~rtqa.model.StructureSet` objects (mm, cc).

* ROIs are joined to their contours and observations by ROI number (ReferencedROINumber), never
  by position; numbers are opaque keys. A number used twice makes both ROIs unusable (ERROR note);
  duplicate names are kept and noted.
* Every ROI lies in the structure set's frame of reference (the first item of
  ReferencedFrameOfReferenceSequence, by which dose and images are linked); an ROI whose
  ReferencedFrameOfReferenceUID names another frame is unusable as a volume (ERROR note), never
  placed on the dose as if it were in the same frame.
* CLOSED_PLANAR contours must be axial (one z within 0.01 mm); a non-axial contour makes its ROI
  unusable as a volume (ERROR note). Contours are grouped into planes by z with a 0.01 mm
  tolerance (planes of one ROI less than 0.1 mm apart are noted: their rings are not combined); the
  rings of one plane are combined by the even-odd rule (a ring inside a ring is a
  hole, a ring inside that hole an island). Nested rings that do not cross keep their points as
  written; crossing rings are combined with shapely's symmetric difference.
* Degenerate rings are repaired or reported, never dropped silently: a repeated closing point and
  consecutive duplicate points are removed (noted), rings with fewer than 3 distinct points or zero
  area are dropped with a WARNING, self-intersecting rings are made valid (even-odd fill) with a
  WARNING.
* CLOSEDPLANAR_XOR contours (the rings of a plane combined by exclusive or) are closed contours:
  the even-odd rule above is that combination.
* POINT contours go to ``Roi.points``, OPEN_PLANAR / OPEN_NONPLANAR to ``Roi.open_contours``;
  other geometric types are excluded with a WARNING.
* Two CLOSED_PLANAR rings of a plane that overlap in part, or one ring drawn twice, are combined
  by the even-odd rule like any others, but a union is as plausible: the part they share is
  ambiguous (rings touching along an edge, and a hole touching its ring, are not).
* A self-intersecting CLOSED_PLANAR ring winding an even number of times (not zero) around part
  of what it encloses (a ring traced twice over) is ambiguous there too: the even-odd rule
  leaves that part out, the non-zero rule keeps it (a bow-tie's lobes, wound once each way, are
  not).
* A closed contour left out at read (its points unreadable, or a geometric type not known, in an
  ROI with closed contours), an ambiguous pair of rings and an ambiguous ring are named in
  ``Roi.incomplete``: the protocol rules judge none of the ROI's figures as within a limit.
* An ROI whose closed contours lie on a single plane has no contoured thickness: it is given the
  structure set's plane spacing (:func:`plane_spacing_mm`) as slab thickness, half on each side
  of the plane (``Roi.single_plane_thickness_mm``, which
  :func:`rtqa.geometry.slabs.slab_stack` uses where no spacing or end cap is passed), and a
  WARNING names its z and area and that thickness, so that its volume, its DVH and every figure
  of it read as the convention they are: area (mm^2) x thickness (mm). Where no ROI of the
  structure set has two planes there is no plane spacing: it has no thickness and no DVH.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pydicom.dataset import Dataset
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from rtqa.dicom.common import (
    MAX_COORDINATE_MM,
    RT_STRUCTURE_SET,
    lenient_value,
    optional_number,
    optional_str,
    parse_datetime,
    read_dataset,
    require,
    tag_name,
)
from rtqa.dicom.converters import converter_notes
from rtqa.dicom.plane_bridges import bridge_by_structure_set
from rtqa.errors import DicomError
from rtqa.model import ContourPlane, Level, Note, PlanarPolygon, Roi, StructureSet

PLANE_TOLERANCE_MM = 0.01  # contour z values closer than this are one plane
#: Grid (mm) a self-intersecting ring is snapped to where shapely cannot node it as written
NODING_GRID_MM = 1e-6
NEAR_PLANES_MM = 0.1  # distinct planes of one ROI closer than this are noted (no CT is that fine)
SAME_STEP_MM = 1e-3  # steps between planes below this are not plane spacings
AREA_TOLERANCE_MM2 = 1e-9  # rings with less area than this are degenerate
#: Closed contours smaller than this (mm^2) are kept with a warning: specks, not anatomy.
SPECK_MM2 = 0.1
#: Two crossing rings of a plane sharing more than this fraction of the smaller one's area, and
#: not one holding the other, overlap in part (less: rings touching along an edge, up to rounding)
OVERLAP_FRACTION = 0.01
OPEN_TYPES = ("OPEN_PLANAR", "OPEN_NONPLANAR")
#: Geometric types of closed contours (PS3.3 C.8.8.6.3): the rings of a plane are combined by
#: exclusive or, which the even-odd fill of each plane is.
CLOSED_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")
# Tags of the ContourSequence item attributes read from their raw bytes
CONTOUR_GEOMETRIC_TYPE = 0x30060042
NUMBER_OF_CONTOUR_POINTS = 0x30060046
CONTOUR_DATA = 0x30060050
#: Most characters a DS value may have (PS3.5 Table 6.2-1).
DS_CHARS = 16
#: A DS value of more than 16 characters in raw backslash-separated text.
LONG_DS = re.compile(rb"[^\\ \x00]{17,}")


def read_structure_set(path: str) -> StructureSet:
    """Read an RT Structure Set file; per-ROI problems are in ``Roi.notes``, file-level ones in
    ``StructureSet.notes``. Raises :class:`DicomError` when the file is not a usable structure
    set (wrong SOP class, no StructureSetROISequence)."""
    path = str(path)
    ds, notes = read_dataset(path)
    return structure_set_from_dataset(ds, path, notes)


def structure_set_from_dataset(ds: Dataset, path: str, notes: list[Note]) -> StructureSet:
    """:func:`read_structure_set` on a dataset already read from ``path`` (a read without pixel
    data is complete for a structure set); ``notes`` are the notes of that read, extended."""
    path = str(path)
    notes = list(notes)
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != RT_STRUCTURE_SET:
        raise DicomError(
            f"not an RT Structure Set (SOP Class UID {sop_class!r})", path, tag_name("SOPClassUID")
        )
    notes += converter_notes(ds, path, "structure set")
    roi_items = list(require(ds, "StructureSetROISequence", path))
    frame_uid, series_uid = _frame_and_series(ds)
    contours = _by_number(ds, "ROIContourSequence", path, notes)
    observations = _by_number(ds, "RTROIObservationsSequence", path, notes)
    numbers = [_roi_number(item, path) for item in roi_items]
    known = set(numbers)
    for kind, items in (
        ("ROIContourSequence", contours),
        ("RTROIObservationsSequence", observations),
    ):
        for number in sorted(set(items) - known):
            notes.append(
                Note(
                    Level.WARNING,
                    f"{kind} item references ROI number {number}, which "
                    "StructureSetROISequence does not define: ignored",
                    path,
                    tag_name("ReferencedROINumber"),
                )
            )
    names = defaultdict(list)
    for item, number in zip(roi_items, numbers, strict=True):
        names[optional_str(item, "ROIName")].append(number)
    rois = []
    for item, number in zip(roi_items, numbers, strict=True):
        roi_notes: list[Note] = []
        name = optional_str(item, "ROIName")
        if numbers.count(number) > 1:
            roi_notes.append(
                Note(
                    Level.ERROR,
                    f"ROI number {number} is used by several ROIs: contours cannot be attributed",
                    path,
                    tag_name("ROINumber"),
                )
            )
            item_contours: list[Dataset] = []
        else:
            item_contours = contours.get(number, [])
        if len(names[name]) > 1:
            others = ", ".join(str(n) for n in names[name])
            roi_notes.append(
                Note(Level.WARNING, f"ROI name {name!r} is used by ROI numbers {others}", path)
            )
        observation = (observations.get(number) or [Dataset()])[0]
        rois.append(
            _read_roi(item, number, name, item_contours, observation, frame_uid, path, roi_notes)
        )
    _note_single_planes(rois, path)
    bridge_by_structure_set(rois)
    notes.extend(_long_values(ds, path))
    return StructureSet(
        path=path,
        sop_instance_uid=str(require(ds, "SOPInstanceUID", path)),
        label=optional_str(ds, "StructureSetLabel"),
        frame_of_reference_uid=frame_uid,
        rois=tuple(rois),
        patient_id=optional_str(ds, "PatientID"),
        patient_name=optional_str(ds, "PatientName"),
        study_instance_uid=optional_str(ds, "StudyInstanceUID"),
        referenced_series_uid=series_uid,
        structure_set_datetime=parse_datetime(
            ds.get("StructureSetDate"), ds.get("StructureSetTime")
        ),
        manufacturer=optional_str(ds, "Manufacturer"),
        notes=tuple(notes),
    )


def plane_spacing_mm(rois: Sequence[Roi]) -> float | None:
    """The structure set's plane spacing (mm): the median step between neighbouring contour
    planes over every ROI of two planes or more (steps under 0.001 mm ignored); None when no ROI
    has two planes."""
    steps = [np.diff([p.z_mm for p in r.planes]) for r in rois if len(r.planes) > 1]
    flat = np.concatenate(steps) if steps else np.empty(0)
    flat = flat[flat > SAME_STEP_MM]
    return float(np.median(flat)) if flat.size else None


def _long_values(ds: Dataset, path: str) -> list[Note]:
    """S15: a WARNING when ContourData holds values longer than the 16 characters a DS value
    may have (PS3.5 Table 6.2-1; written by some segmentation tools): rtqa reads them as written,
    a planning system may refuse the file."""
    for item in ds.get("ROIContourSequence") or []:
        for contour in item.get("ContourSequence") or []:
            value = getattr(contour.get_item(CONTOUR_DATA), "value", None)
            if not isinstance(value, bytes) or max(map(len, value.split(b"\\"))) <= DS_CHARS:
                continue  # the split is a cheap bound: no value, spaces included, is long
            long = LONG_DS.search(value)
            if long is not None:
                example = long.group().decode("ascii", errors="replace").strip()
                return [
                    Note(
                        Level.WARNING,
                        f"ContourData holds values longer than 16 characters (e.g. {example!r}), "
                        "beyond what a DS value may hold: read as written, but a planning system "
                        "may refuse to import this structure set",
                        path,
                        tag_name("ContourData"),
                    )
                ]
    return []


def _note_single_planes(rois: list[Roi], path: str) -> None:
    """A WARNING on every ROI whose closed contours lie on one plane: its thickness, hence its
    volume, is a convention (see the module docstring). Sets its
    ``single_plane_thickness_mm`` to the structure set's plane spacing, where there is one."""
    single = [r for r in rois if len(r.planes) == 1]
    if not single:
        return
    spacing = plane_spacing_mm(rois)
    for roi in single:
        (plane,) = roi.planes
        area = sum(Polygon(p.exterior, p.holes).area for p in plane.polygons)
        head = (
            f"ROI {roi.number} '{roi.name}': closed contours on a single plane (z {plane.z_mm:g} "
            f"mm, area {area:.6g} mm^2): its thickness is not contoured, so its volume is a "
            "convention, not a measurement"
        )
        if spacing is None:
            tail = (
                ": no ROI of the structure set has two planes to give a plane spacing, so it has "
                "no thickness, no volume and no DVH unless a plane spacing or end cap is given"
            )
        else:
            tail = (
                f": with the structure set's plane spacing of {spacing:g} mm (the median step "
                f"between the planes of its ROIs) as slab thickness (z {plane.z_mm:g} "
                f"+/- {0.5 * spacing:g} mm), each mm^2 of contour counts as {spacing:g} mm^3: "
                f"{area:.6g} mm^2 x {spacing:g} mm = {area * spacing / 1000.0:.6g} cc; rtqa gives "
                "it this thickness wherever it computes its volume or dose: its DVH and every "
                "figure of it rest on this convention"
            )
            roi.single_plane_thickness_mm = spacing
        roi.notes = (*roi.notes, Note(Level.WARNING, head + tail, path, tag_name("ContourData")))


def _frame_and_series(ds: Dataset) -> tuple[str | None, str | None]:
    frame_uid = series_uid = None
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        frame_uid = frame_uid or optional_str(frame, "FrameOfReferenceUID") or None
        for study in frame.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                series_uid = series_uid or optional_str(series, "SeriesInstanceUID") or None
    return frame_uid, series_uid


def _roi_number(item: Dataset, path: str) -> int:
    value = require(item, "ROINumber", path, "StructureSetROISequence")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DicomError(
            f"ROINumber {value!r} is not an integer", path, tag_name("ROINumber")
        ) from exc


def _by_number(ds: Dataset, keyword: str, path: str, notes: list[Note]) -> dict[int, list[Dataset]]:
    """Items of a sequence keyed by ReferencedROINumber (items without one are noted)."""
    found: dict[int, list[Dataset]] = defaultdict(list)
    for n, item in enumerate(ds.get(keyword) or [], start=1):
        value = item.get("ReferencedROINumber")
        try:
            found[int(value)].append(item)
        except (TypeError, ValueError):
            notes.append(
                Note(
                    Level.WARNING,
                    f"{keyword} item {n} has no valid ReferencedROINumber ({value!r}): ignored",
                    path,
                    tag_name("ReferencedROINumber"),
                )
            )
    return found


def _read_roi(
    item: Dataset,
    number: int,
    name: str,
    contour_items: list[Dataset],
    observation: Dataset,
    frame_uid: str | None,
    path: str,
    notes: list[Note],
) -> Roi:
    where = f"ROI {number} '{name}'"
    closed: list[tuple[float, int, np.ndarray, bool]] = []  # (mean z, number, points, xor)
    points: list[np.ndarray] = []
    open_contours: list[np.ndarray] = []
    lost: list[tuple[int, str]] = []  # closed or unknown-type contours left out: (k, why)
    count = 0
    non_axial = False
    for contour_item in contour_items:
        for k, contour in enumerate(contour_item.get("ContourSequence") or [], start=1):
            count += 1
            kind = _raw_text(contour, CONTOUR_GEOMETRIC_TYPE)
            if kind is None:
                kind = optional_str(contour, "ContourGeometricType")
            kind = kind.upper()
            xyz = _contour_points(contour, k, where, path, notes)
            if xyz is None:
                if kind not in ("POINT", *OPEN_TYPES):
                    lost.append((k, "its points could not be read"))
                continue
            if kind in CLOSED_TYPES:
                z = xyz[:, 2]
                low, high = z.min(), z.max()
                if float(high - low) > PLANE_TOLERANCE_MM:
                    notes.append(
                        Note(
                            Level.ERROR,
                            f"{where}: contour {k} is not axial (z from {low:g} to "
                            f"{high:g} mm): the ROI cannot be used as a volume",
                            path,
                            tag_name("ContourData"),
                        )
                    )
                    non_axial = True
                    continue
                closed.append((float(z.sum()) / len(z), k, xyz, kind == "CLOSEDPLANAR_XOR"))
            elif kind == "POINT":
                points.append(xyz)
            elif kind in OPEN_TYPES:
                open_contours.append(xyz)
            else:
                lost.append((k, f"ContourGeometricType {kind!r}"))
                notes.append(
                    Note(
                        Level.WARNING,
                        f"{where}: contour {k} has ContourGeometricType {kind!r}: excluded",
                        path,
                        tag_name("ContourGeometricType"),
                    )
                )
    roi_frame = optional_str(item, "ReferencedFrameOfReferenceUID") or frame_uid
    other_frame = bool(roi_frame and frame_uid and roi_frame != frame_uid and closed)
    if other_frame:
        notes.append(
            Note(
                Level.ERROR,
                f"{where}: drawn in frame of reference {roi_frame}, not in the structure set's "
                f"frame {frame_uid} (the frame its dose and images are linked by): the ROI "
                "cannot be used as a volume",
                path,
                tag_name("ReferencedFrameOfReferenceUID"),
            )
        )
    ambiguous: list[str] = []
    planes = () if non_axial or other_frame else _planes(closed, where, path, notes, ambiguous)
    if not count:
        notes.append(Note(Level.WARNING, f"{where}: defined with no contours (empty)", path))
    elif not planes and not non_axial and not other_frame:
        what = "only POINT/OPEN contours" if closed == [] else "no usable closed contour"
        level = Level.INFO if closed == [] and (points or open_contours) else Level.WARNING
        text = f"{where}: {what}, no volume"
        if closed and optional_str(observation, "RTROIInterpretedType").upper() == "EXTERNAL":
            # a body outline drawn but unusable: the check that the dose lies in the patient and
            # the isodose volumes inside the body are lost with it
            level = Level.ERROR
            text += " (the body outline: whether the dose lies in the patient cannot be checked)"
        notes.append(Note(level, text, path))
    if planes and (points or open_contours):
        kinds = [f"{len(points)} POINT"] if points else []
        kinds += [f"{len(open_contours)} OPEN"] if open_contours else []
        notes.append(
            Note(
                Level.WARNING,
                f"{where}: {' and '.join(kinds)} contour(s) among its closed planar contours: "
                "not part of its volume (a closed contour exported with the wrong type would be "
                "missing from it)",
                path,
                tag_name("ContourGeometricType"),
            )
        )
    tps_volume_cc = optional_number(item, "ROIVolume", path, notes, where)
    return Roi(
        number=number,
        name=name,
        interpreted_type=optional_str(observation, "RTROIInterpretedType").upper(),
        observation_label=optional_str(observation, "ROIObservationLabel"),
        frame_of_reference_uid=roi_frame,
        planes=planes,
        points=tuple(points),
        open_contours=tuple(open_contours),
        tps_volume_cc=tps_volume_cc,
        contour_count=count,
        notes=tuple(notes),
        incomplete=(
            tuple(f"contour {k} left out at read: {why}" for k, why in lost) + tuple(ambiguous)
            if planes
            else ()
        ),
    )


def _number_or_nan(value: object) -> float:
    """``value`` as a float; NaN where it is not a number (counted and reported by the caller)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _contour_points(
    contour: Dataset, k: int, where: str, path: str, notes: list[Note]
) -> np.ndarray | None:
    data = _fast_contour_data(contour)
    if data is None:
        raw = contour.get("ContourData")
        values = [] if raw is None else ([raw] if isinstance(raw, float | int | str) else list(raw))
        data = np.asarray([_number_or_nan(v) for v in values], dtype=float)
    if data.size == 0 or data.size % 3 or not np.all(np.isfinite(data)):
        # the structure loses a contour it has: its volume and every figure of it would be
        # wrong, so this is an error (the course is then at best not fully evaluable)
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if data.size == 0:
            what = "holds no values"
        elif bad:
            what = f"holds {bad} of {data.size} values that are not numbers"
        else:
            what = f"holds {data.size} values, not x, y, z triplets"
        notes.append(
            Note(
                Level.ERROR,
                f"{where}: contour {k} ContourData {what}: contour excluded, the structure is "
                "incomplete",
                path,
                tag_name("ContourData"),
            )
        )
        return None
    far = float(np.abs(data).max())
    if far > MAX_COORDINATE_MM:
        notes.append(
            Note(
                Level.ERROR,
                f"{where}: contour {k} ContourData holds a coordinate of {far:.3g} mm, beyond "
                f"{MAX_COORDINATE_MM / 1000:g} m of the origin: not a position in the patient, "
                "contour excluded, the structure is incomplete",
                path,
                tag_name("ContourData"),
            )
        )
        return None
    xyz = data.reshape(-1, 3)
    stated: object = _raw_text(contour, NUMBER_OF_CONTOUR_POINTS)
    if stated is None or not stated.isdigit():
        stated = lenient_value(contour, "NumberOfContourPoints")
    if stated is None or stated == "":
        return xyz
    try:
        count: int | None = int(str(stated).strip())
    except ValueError:
        count = None
    if count != len(xyz):
        shown = str(count) if count is not None else f"{str(stated)!r} (not a number)"
        notes.append(
            Note(
                Level.WARNING,
                f"{where}: contour {k} NumberOfContourPoints {shown} but ContourData "
                f"holds {len(xyz)} points: the points were used",
                path,
                tag_name("NumberOfContourPoints"),
            )
        )
    return xyz


def _raw_text(item: Dataset, tag: int) -> str | None:
    """A single-valued text attribute read from its raw bytes, stripped ('' when empty), without
    pydicom's per-element conversion; None when absent, already converted, multi-valued or not
    plain ASCII (the caller then reads it the ordinary way)."""
    value = getattr(item.get_item(tag), "value", None)
    if not isinstance(value, bytes) or b"\\" in value or not value.isascii():
        return None
    return value.decode("ascii").rstrip(" \x00").strip()


def _fast_contour_data(contour: Dataset) -> np.ndarray | None:
    """ContourData parsed in bulk from the element's raw text (backslash-separated decimal
    strings), without building one Python object per number; None when the element is absent,
    empty, already converted or not DS text (the caller then reads it element by element). A
    value that is not a number is NaN, which the caller counts and reports."""
    raw = contour.get_item(CONTOUR_DATA)
    value = getattr(raw, "value", None)
    if not isinstance(value, bytes) or raw.VR not in (None, "DS") or not value.strip(b" \x00"):
        return None
    texts = value.rstrip(b" \x00").decode("ascii", errors="replace").split("\\")
    try:
        return np.fromiter(map(float, texts), dtype=float, count=len(texts))
    except ValueError:
        return np.asarray([_number_or_nan(t) for t in texts], dtype=float)


# --------------------------------------------------------------------------------------------
# Planes and even-odd resolution
# --------------------------------------------------------------------------------------------


def _planes(
    closed: list[tuple[float, int, np.ndarray, bool]],
    where: str,
    path: str,
    notes: list[Note],
    ambiguous: list[str],
) -> tuple[ContourPlane, ...]:
    """Group closed contours ``(mean z, contour number, points, CLOSEDPLANAR_XOR)`` into planes
    (z within 0.01 mm) and resolve holes per plane; pairs of rings whose combination is
    ambiguous are added to ``ambiguous``."""
    if not closed:
        return ()
    ordered = sorted(closed, key=_first)
    cleaned = iter(_clean_rings([xyz[:, :2] for _, _, xyz, _ in ordered]))
    groups: list[list[tuple[float, int, np.ndarray, bool]]] = []
    for item in ordered:
        if groups and item[0] - groups[-1][0][0] <= PLANE_TOLERANCE_MM:
            groups[-1].append(item)
        else:
            groups.append([item])
    planes = []
    for group in groups:
        z = group[0][0] if len(group) == 1 else float(np.mean([zc for zc, _, _, _ in group]))
        label = f"{where} at z {z:g} mm"
        rings: list[_PlaneRing] = []
        xor = []
        for _, k, _, exclusive in group:
            clean = next(cleaned)
            ring = _ring_notes(clean, f"{label}, contour {k}", path, notes)
            # (a ring drawn twice over has no even-odd area: dropped, and ambiguous)
            ambiguous += _wound_twice(clean, k, exclusive, z, label, path, notes)
            if ring is not None:
                rings.append((k, *ring))
                xor.append(exclusive)
        # only rings whose bounding boxes overlap can cross or nest: test those pairs alone
        shapes = [shape for _, _, shape, _ in rings]
        pairs = _overlapping_pairs(shapes)
        crossed = [(a, b) for a, b in pairs if shapes[a].boundary.intersects(shapes[b].boundary)]
        polygons = _even_odd(rings, pairs, bool(crossed), label, path, notes)
        ambiguous += _ambiguous_pairs(rings, xor, crossed, f"at z {z:g} mm", label, path, notes)
        if polygons:
            planes.append(ContourPlane(z, tuple(polygons), len(group)))
        else:
            notes.append(Note(Level.WARNING, f"{label}: no area left on this plane", path))
    for below, above in itertools.pairwise(planes):
        gap = above.z_mm - below.z_mm
        if gap < NEAR_PLANES_MM:
            notes.append(
                Note(
                    Level.WARNING,
                    f"{where}: contour planes at z {below.z_mm:g} and {above.z_mm:g} mm are only "
                    f"{gap:.3g} mm apart: taken as two planes, each with its own slab (rings of "
                    "one slice written with different z would not be combined as holes)",
                    path,
                    tag_name("ContourData"),
                )
            )
    return tuple(planes)


def _first(item: tuple) -> float:
    return item[0]


def _distinct_points(ring: np.ndarray) -> int:
    """Number of distinct points, counted exactly up to 3 (3 means "3 or more")."""
    count = 0
    rest = ring
    while len(rest) and count < 3:
        rest = rest[np.any(rest != rest[0], axis=1)]
        count += 1
    return count


@dataclass(frozen=True, eq=False)
class _CleanRing:
    """One closed contour after :func:`_clean_rings`: ``ring`` (M, 2) mm without repeated
    points, ``removed`` points taken out, ``distinct`` points counted up to 3 and, for rings with
    3 distinct points, its polygon, whether that is valid and its even-odd area (mm^2); for a
    self-intersecting ring also its even-odd ``fill`` and ``wound_mm2``, the area it winds
    around an even number of times but not zero (the non-zero rule's, not the even-odd rule's)."""

    ring: np.ndarray
    removed: int
    distinct: int
    shape: Polygon | None = None
    valid: bool = True
    area_mm2: float = 0.0
    fill: BaseGeometry | None = None
    wound_mm2: float = 0.0


def _clean_rings(rings_xy: list[np.ndarray]) -> list[_CleanRing]:
    """Every ring (N_i, 2) of one ROI cleaned at once: consecutive duplicate points and then a
    repeated closing point removed; distinct points counted; polygons built, validated and
    measured by shapely's vectorized functions (a self-intersecting ring's area is that of its
    even-odd fill). Each ring must hold at least one point."""
    lengths = np.fromiter((len(xy) for xy in rings_xy), dtype=np.intp, count=len(rings_xy))
    points = np.concatenate(rings_xy)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    keep[starts] = True  # a ring's first point is never a repeat of the ring before
    kept = points[keep]
    counts = np.add.reduceat(keep, starts, dtype=np.intp)
    begins = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = kept[begins]
    closing = (counts > 1) & np.all(first == kept[begins + counts - 1], axis=1)
    counts -= closing
    # After the removal of consecutive duplicates, points 0-1 and 1-2 differ: a ring has three
    # distinct points when point 2 differs from point 0 (other rings are counted one by one).
    third = kept[np.minimum(begins + 2, len(kept) - 1)]
    three = (counts >= 3) & np.any(third != first, axis=1)
    out: list[_CleanRing] = []
    for n, (b, m) in enumerate(zip(begins.tolist(), counts.tolist(), strict=True)):
        ring = kept[b : b + m]
        distinct = 3 if three[n] else _distinct_points(ring)
        out.append(_CleanRing(ring, int(lengths[n]) - m, distinct))
    polygon_rings = [n for n, r in enumerate(out) if r.distinct >= 3]
    if polygon_rings:
        coords = np.concatenate([out[n].ring for n in polygon_rings])
        owner = np.repeat(np.arange(len(polygon_rings)), [len(out[n].ring) for n in polygon_rings])
        shapes = shapely.polygons(shapely.linearrings(coords, indices=owner))
        valid = shapely.is_valid(shapes)
        areas = shapely.area(shapes)
        for n, shape, ok, area in zip(polygon_rings, shapes, valid, areas, strict=True):
            fill, wound = (None, 0.0) if ok else _fills(shape)
            ring = out[n]
            out[n] = _CleanRing(
                ring.ring,
                ring.removed,
                ring.distinct,
                shape,
                bool(ok),
                float(area if fill is None else fill.area),
                fill,
                wound,
            )
    return out


def _ring_notes(
    ring: _CleanRing, label: str, path: str, notes: list[Note]
) -> tuple[np.ndarray, Polygon, BaseGeometry | None] | None:
    """Note what cleaning did to a ring; None (noted) if it is degenerate, else the ring, its
    polygon and, where that polygon is not valid (self-intersecting), its even-odd fill."""
    if ring.removed:
        notes.append(Note(Level.INFO, f"{label}: {ring.removed} repeated point(s) removed", path))
    if ring.distinct < 3:
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: closed contour with {ring.distinct} distinct point(s) is not a "
                "polygon: dropped",
                path,
                tag_name("ContourData"),
            )
        )
        return None
    if ring.area_mm2 <= AREA_TOLERANCE_MM2:
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: closed contour has zero area: dropped",
                path,
                tag_name("ContourData"),
            )
        )
        return None
    if ring.area_mm2 < SPECK_MM2:
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: closed contour of {ring.area_mm2:.3g} mm^2 (below {SPECK_MM2:g} mm^2, "
                "finer than any planning contour): kept; a stray speck sets the ROI's minimum "
                "or maximum dose wherever it lies",
                path,
                tag_name("ContourData"),
            )
        )
    return ring.ring, ring.shape, ring.fill


#: One ring of a plane: (contour number, points (M, 2) mm, polygon, even-odd fill of a
#: self-intersecting ring or None)
_PlaneRing = tuple[int, np.ndarray, Polygon, BaseGeometry | None]


def _even_odd(
    rings: list[_PlaneRing],
    pairs: list[tuple[int, int]],
    crossing: bool,
    label: str,
    path: str,
    notes: list[Note],
) -> list[PlanarPolygon]:
    """The even-odd combination of the rings ``(k, points, polygon, fill)`` of one plane (``fill``:
    a self-intersecting ring's even-odd fill, else None);
    ``pairs``: the index pairs whose bounding boxes overlap (:func:`_overlapping_pairs`),
    ``crossing``: whether the boundaries of some pair meet."""
    if not rings:
        return []
    if len(rings) == 1 and rings[0][3] is None:  # one valid ring: nothing to cross or nest
        return [PlanarPolygon(rings[0][1])]
    shapes = [shape for _, _, shape, _ in rings]
    invalid = [k for k, _, _, fill in rings if fill is not None]
    if not invalid and not crossing:
        return _nested([ring for _, ring, _, _ in rings], shapes, pairs)
    if invalid:
        numbers = ", ".join(str(k) for k in invalid)
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: self-intersecting contour(s) {numbers} repaired (even-odd fill)",
                path,
                tag_name("ContourData"),
            )
        )
    if crossing:
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: contours cross each other: combined by the even-odd rule",
                path,
                tag_name("ContourData"),
            )
        )
    combined: BaseGeometry = Polygon()
    for _, _, shape, fill in rings:
        piece = shape if fill is None else fill
        combined = combined.symmetric_difference(piece)
    return _to_polygons(combined)


def _wound_twice(
    ring: _CleanRing, k: int, xor: bool, z: float, label: str, path: str, notes: list[Note]
) -> list[str]:
    """A clause (with a WARNING note) when a self-intersecting CLOSED_PLANAR ring winds an even
    number of times (not zero) around more than :data:`OVERLAP_FRACTION` of what it encloses by
    the non-zero rule: a ring drawn twice over, or looping twice around part of itself. The
    even-odd rule leaves that part out, the non-zero rule keeps it."""
    enclosed = ring.area_mm2 + ring.wound_mm2
    if xor or ring.fill is None or ring.wound_mm2 <= OVERLAP_FRACTION * enclosed:
        return []
    what = f"winds twice or more around {ring.wound_mm2:.3g} of the {enclosed:.3g} mm^2 it encloses"
    notes.append(
        Note(
            Level.WARNING,
            f"{label}: contour {k} {what}: left out by the even-odd rule, though inside by the "
            "non-zero rule; no figure of the ROI is judged as within a limit",
            path,
            tag_name("ContourData"),
        )
    )
    return [f"contour {k} at z {z:g} mm {what}: a hole or inside, both plausible"]


def _ambiguous_pairs(
    rings: list[_PlaneRing],
    xor: list[bool],
    crossed: list[tuple[int, int]],
    at: str,
    label: str,
    path: str,
    notes: list[Note],
) -> list[str]:
    """The pairs of rings ``(k, points, polygon, fill)`` of one plane whose combination is
    ambiguous, each as a clause (with a WARNING note): of the pairs ``crossed`` (whose
    boundaries meet), two valid rings, not both CLOSEDPLANAR_XOR, which share more than
    :data:`OVERLAP_FRACTION` of the smaller one's area without one holding the other
    (overlapping in part), or with the same area (one ring drawn twice). The even-odd rule takes
    the shared part as a hole, a union as inside."""
    out = []
    for a, b in crossed:
        (ka, _, sa, fa), (kb, _, sb, fb) = rings[a], rings[b]
        if (xor[a] and xor[b]) or fa is not None or fb is not None:
            continue
        small, large = sorted((sa.area, sb.area))
        try:
            shared = sa.intersection(sb).area
        except shapely.errors.GEOSException:  # an overlay GEOS cannot resolve: not told apart
            shared = math.nan
        tolerance = OVERLAP_FRACTION * small
        if shared <= tolerance or (shared >= small - tolerance and large - small > tolerance):
            continue  # touching along an edge, or a hole touching its ring
        if math.isnan(shared):
            what = "cross each other (their shared area could not be computed)"
        elif large - small <= tolerance and shared >= small - tolerance:
            what = "are one ring drawn twice"
        else:
            what = f"overlap in part ({shared:.3g} mm^2)"
        clause = f"contours {ka} and {kb} {at} {what}: a union or a hole, both plausible"
        notes.append(
            Note(
                Level.WARNING,
                f"{label}: contours {ka} and {kb} {what}: combined by the even-odd rule (the "
                "shared part a hole), though a union is as plausible; no figure of the ROI is "
                "judged as within a limit",
                path,
                tag_name("ContourData"),
            )
        )
        out.append(clause)
    return out


def _overlapping_pairs(shapes: list[Polygon]) -> list[tuple[int, int]]:
    """Index pairs (a < b) of shapes whose closed bounding boxes overlap."""
    if len(shapes) < 2:
        return []
    x0, y0, x1, y1 = shapely.bounds(np.asarray(shapes, dtype=object)).T
    overlap = (
        (x0[:, None] <= x1[None, :])
        & (x0[None, :] <= x1[:, None])
        & (y0[:, None] <= y1[None, :])
        & (y0[None, :] <= y1[:, None])
    )
    a, b = np.nonzero(np.triu(overlap, k=1))
    return list(zip(a.tolist(), b.tolist(), strict=True))


def _fills(shape: Polygon) -> tuple[BaseGeometry, float]:
    """The region a self-intersecting ring encloses by the even-odd rule (the faces of the noded
    ring it winds around an odd number of times), and the area (mm^2) of the faces it winds
    around an even number of times but not zero (which the non-zero rule would add)."""
    ring = np.asarray(shape.exterior.coords)[:, :2]
    try:
        noded = shapely.node(shape.exterior)
    except shapely.errors.GEOSException:
        # noding fails to converge on a ring of nearly collinear points: node it on a 1e-6 mm
        # grid, far below any contour's precision
        noded = shapely.node(shapely.set_precision(shape.exterior, NODING_GRID_MM))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    turns = [_winding(ring, face.point_on_surface()) for face in faces]
    kept = [face for face, w in zip(faces, turns, strict=True) if w % 2]
    wound = sum(face.area for face, w in zip(faces, turns, strict=True) if w and not w % 2)
    return (shapely.union_all(kept) if kept else Polygon()), float(wound)


def _even_odd_fill(shape: Polygon) -> BaseGeometry:
    """The region a self-intersecting ring encloses by the even-odd rule (:func:`_fills`)."""
    return _fills(shape)[0]


def _winding(ring: np.ndarray, point) -> int:
    """How many times a closed ring (given with its end point) winds around ``point``: the
    signed crossings of a ray towards +x (its parity is the even-odd test)."""
    px, py = point.x, point.y
    x0, y0 = ring[:-1, 0], ring[:-1, 1]
    x1, y1 = ring[1:, 0], ring[1:, 1]
    spans = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    hits = spans & (cross_x > px)
    upward = y1 > y0
    return int(np.count_nonzero(hits & upward)) - int(np.count_nonzero(hits & ~upward))


def _nested(
    rings: list[np.ndarray], shapes: list[Polygon], pairs: list[tuple[int, int]]
) -> list[PlanarPolygon]:
    """Even-odd resolution of rings that do not cross: depth 0, 2, ... are exteriors, odd depths
    are holes of the ring that immediately contains them. Points are kept as written. ``pairs``
    are the only index pairs whose bounding boxes overlap (no other ring can contain another)."""
    inside: dict[int, list[int]] = {a: [] for a in range(len(shapes))}  # a -> rings containing a
    for a, b in pairs:
        if shapes[b].contains(shapes[a]):
            inside[a].append(b)
        elif shapes[a].contains(shapes[b]):
            inside[b].append(a)
    depth = [len(inside[a]) for a in range(len(shapes))]
    exteriors = [a for a in range(len(shapes)) if depth[a] % 2 == 0]
    holes: dict[int, list[np.ndarray]] = {a: [] for a in exteriors}
    for a in range(len(shapes)):
        if depth[a] % 2 == 1:
            parent = next(b for b in inside[a] if depth[b] == depth[a] - 1)
            holes[parent].append(rings[a])
    return [PlanarPolygon(rings[a], tuple(holes[a])) for a in exteriors]


def _to_polygons(geometry: BaseGeometry) -> list[PlanarPolygon]:
    parts = getattr(geometry, "geoms", [geometry])
    out = []
    for part in parts:
        if isinstance(part, Polygon) and not part.is_empty and part.area > AREA_TOLERANCE_MM2:
            exterior = np.asarray(part.exterior.coords)[:-1, :2]
            holes = tuple(np.asarray(h.coords)[:-1, :2] for h in part.interiors)
            out.append(PlanarPolygon(exterior, holes))
        elif hasattr(part, "geoms"):
            out.extend(_to_polygons(part))
    out.sort(key=lambda p: (float(p.exterior[:, 0].min()), float(p.exterior[:, 1].min())))
    return out
