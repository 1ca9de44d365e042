"""Write an RT Structure Set from a :class:`~rtqa.model.StructureSet` (coordinates in mm).

Written: Structure Set module (label, date, ReferencedFrameOfReferenceSequence with the referenced
study and CT series), StructureSetROISequence (with ROIVolume in cc where the ROI carries a
planning-system volume), ROIContourSequence and RTROIObservationsSequence. A polygon's exterior
and each hole are written as separate CLOSED_PLANAR contours (the even-odd rule restores the
holes); POINT and OPEN_PLANAR contours are written as they are held.

:class:`RawContour` lets a caller write contours exactly as given (degenerate, self-intersecting,
non-axial ...) in place of those derived from an ROI, to test readers on such input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from rtqa.dicom.common import RT_STRUCTURE_SET
from rtqa.dicom.write.base import Header, new_dataset, save
from rtqa.dicom.write.dose import ds_text
from rtqa.model import Roi, StructureSet

# Study Component Management SOP Class (retired) — what RTReferencedStudySequence conventionally
# names as ReferencedSOPClassUID.
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"
DEFAULT_COLOR = (255, 0, 0)


@dataclass(frozen=True)
class RawContour:
    """One ContourSequence item as written: geometric type and (N, 3) points in mm."""

    geometric_type: str  # CLOSED_PLANAR | POINT | OPEN_PLANAR | OPEN_NONPLANAR | ...
    points: np.ndarray


def roi_contours(roi: Roi) -> list[RawContour]:
    """The contours that describe ``roi``: each polygon's exterior and holes as separate
    CLOSED_PLANAR rings (z from the plane), then POINT and OPEN_PLANAR contours."""
    contours = []
    for plane in roi.planes:
        for polygon in plane.polygons:
            for ring in (polygon.exterior, *polygon.holes):
                xy = np.asarray(ring, dtype=float).reshape(-1, 2)
                xyz = np.column_stack([xy, np.full(len(xy), plane.z_mm)])
                contours.append(RawContour("CLOSED_PLANAR", xyz))
    contours += [RawContour("POINT", np.asarray(p, float).reshape(-1, 3)) for p in roi.points]
    contours += [
        RawContour("OPEN_PLANAR", np.asarray(c, float).reshape(-1, 3)) for c in roi.open_contours
    ]
    return contours


def rings_at(
    geometric_type: str, z_mm: float, *rings: Sequence[Sequence[float]]
) -> list[RawContour]:
    """Raw contours from (x, y) rings on plane ``z_mm``: a shorthand for tests and fixtures."""
    out = []
    for ring in rings:
        xy = np.asarray(ring, dtype=float).reshape(-1, 2)
        out.append(RawContour(geometric_type, np.column_stack([xy, np.full(len(xy), z_mm)])))
    return out


def write_structure_set(
    ss: StructureSet,
    path: str | Path,
    header: Header,
    *,
    series_instance_uid: str,
    referenced_frame_uid: str,
    referenced_series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 1,
    colors: Mapping[int, tuple[int, int, int]] | None = None,
    raw_contours: Mapping[int, Sequence[RawContour]] | None = None,
    content_datetime: datetime | None = None,
    deflate: bool = False,
) -> Path:
    """Write ``ss`` as an RT Structure Set at ``path`` and return the path.

    ``referenced_frame_uid`` is the frame of reference of every ROI (ReferencedFrameOfReferenceUID
    of an ROI defaults to it); ``referenced_series_uid`` (defaults to ``ss.referenced_series_uid``)
    names the CT series contoured on. ``colors`` maps ROI numbers to RGB display colours.
    ``raw_contours`` maps ROI numbers to contours written instead of those of the ROI (an empty
    list writes an ROI without ContourSequence).
    """
    when = content_datetime or ss.structure_set_datetime or header.study_datetime
    ds = new_dataset(
        header,
        sop_class_uid=RT_STRUCTURE_SET,
        sop_instance_uid=sop_instance_uid or ss.sop_instance_uid,
        modality="RTSTRUCT",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        content_datetime=when,
    )
    ds.InstanceNumber = 1
    ds.StructureSetLabel = ss.label[:16]
    ds.StructureSetName = ss.label[:64]
    ds.StructureSetDate = when.strftime("%Y%m%d")
    ds.StructureSetTime = when.strftime("%H%M%S")
    series_uid = referenced_series_uid or ss.referenced_series_uid
    ds.ReferencedFrameOfReferenceSequence = _frame_reference(
        referenced_frame_uid, header.study_instance_uid, series_uid
    )
    colors = colors or {}
    raw = raw_contours or {}
    roi_items, contour_items, observation_items = [], [], []
    for n, roi in enumerate(ss.rois, start=1):
        roi_items.append(_roi_item(roi, referenced_frame_uid))
        contours = list(raw[roi.number]) if roi.number in raw else roi_contours(roi)
        contour_items.append(_contour_item(roi.number, contours, colors.get(roi.number)))
        observation_items.append(_observation_item(n, roi))
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observation_items)
    return save(ds, path, deflate=deflate)


def _frame_reference(frame_uid: str, study_uid: str, series_uid: str | None) -> DicomSequence:
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    if series_uid:
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        study = Dataset()
        study.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
        study.ReferencedSOPInstanceUID = study_uid
        study.RTReferencedSeriesSequence = DicomSequence([series])
        frame.RTReferencedStudySequence = DicomSequence([study])
    return DicomSequence([frame])


def _roi_item(roi: Roi, frame_uid: str) -> Dataset:
    item = Dataset()
    item.ROINumber = roi.number
    item.ReferencedFrameOfReferenceUID = roi.frame_of_reference_uid or frame_uid
    item.ROIName = roi.name
    item.ROIGenerationAlgorithm = "MANUAL"
    if roi.tps_volume_cc is not None:
        item.ROIVolume = ds_text(roi.tps_volume_cc)
    return item


def _contour_item(
    number: int, contours: list[RawContour], color: tuple[int, int, int] | None
) -> Dataset:
    item = Dataset()
    item.ReferencedROINumber = number
    item.ROIDisplayColor = list(color or DEFAULT_COLOR)
    if contours:
        sequence = []
        for k, contour in enumerate(contours, start=1):
            points = np.asarray(contour.points, dtype=float).reshape(-1, 3)
            c = Dataset()
            c.ContourNumber = k
            c.ContourGeometricType = contour.geometric_type
            c.NumberOfContourPoints = len(points)
            c.ContourData = [ds_text(v) for v in points.ravel()]
            sequence.append(c)
        item.ContourSequence = DicomSequence(sequence)
    return item


def _observation_item(number: int, roi: Roi) -> Dataset:
    item = Dataset()
    item.ObservationNumber = number
    item.ReferencedROINumber = roi.number
    item.ROIObservationLabel = (roi.observation_label or roi.name)[:16]
    item.RTROIInterpretedType = roi.interpreted_type
    item.ROIInterpreter = ""
    return item
