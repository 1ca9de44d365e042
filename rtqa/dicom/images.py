"""Read image slices (CT, MR) for their geometry only: frame of reference, series, slice position.

A slice's position is ImagePositionPatient projected on the slice normal (row cosine x column
cosine), in mm; a series is its slices sorted by that position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from rtqa.dicom.common import optional_str, read_dataset, tag_name
from rtqa.errors import DicomError
from rtqa.model import ImageSeries, Level, Note

#: Slice steps differing by more than this (mm) make a series unevenly spaced.
UNEVEN_MM = 0.01


@dataclass(frozen=True)
class ImageSlice:
    """Geometry of one image file (mm)."""

    path: str
    sop_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    position_mm: float  # along the slice normal
    orientation: tuple[float, ...]
    patient_id: str = ""


def read_image(path: str) -> ImageSlice:
    """Read the geometry of the image at ``path`` (pixels are not read)."""
    ds, _ = read_dataset(path, stop_before_pixels=True)
    return image_from_dataset(ds, path)


def image_from_dataset(ds: Dataset, path: str) -> ImageSlice:
    series = optional_str(ds, "SeriesInstanceUID")
    if not series:
        raise DicomError("image without SeriesInstanceUID", path, tag_name("SeriesInstanceUID"))
    try:
        position = np.array([float(v) for v in ds.ImagePositionPatient])
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomError(
            "image position or orientation missing or not numeric",
            path,
            tag_name("ImagePositionPatient"),
        ) from exc
    if position.size != 3 or orientation.size != 6:
        raise DicomError(
            "ImagePositionPatient needs 3 values and ImageOrientationPatient 6",
            path,
            tag_name("ImageOrientationPatient"),
        )
    normal = np.cross(orientation[:3], orientation[3:])
    return ImageSlice(
        path=path,
        sop_instance_uid=optional_str(ds, "SOPInstanceUID"),
        series_instance_uid=series,
        frame_of_reference_uid=optional_str(ds, "FrameOfReferenceUID") or None,
        modality=optional_str(ds, "Modality"),
        position_mm=float(position @ normal),
        orientation=tuple(float(v) for v in orientation),
        patient_id=optional_str(ds, "PatientID"),
    )


def series_from_slices(slices: list[ImageSlice]) -> tuple[ImageSeries, list[Note]]:
    """One :class:`ImageSeries` from slices of one series, sorted along the normal.

    Notes flag slices in more than one frame of reference or orientation, and duplicate positions.
    """
    if not slices:
        raise ValueError("no slices")
    ordered = sorted(slices, key=lambda s: s.position_mm)
    first = ordered[0]
    notes: list[Note] = []
    frames = {s.frame_of_reference_uid for s in ordered}
    if len(frames) > 1:
        notes.append(
            Note(
                Level.ERROR,
                f"series {first.series_instance_uid} spans frames of reference "
                f"{', '.join(sorted(str(f) for f in frames))}",
                first.path,
                tag_name("FrameOfReferenceUID"),
            )
        )
    if any(not np.allclose(s.orientation, first.orientation, atol=1e-4) for s in ordered):
        notes.append(
            Note(
                Level.WARNING,
                f"series {first.series_instance_uid} mixes slice orientations",
                first.path,
                tag_name("ImageOrientationPatient"),
            )
        )
    positions = [s.position_mm for s in ordered]
    if len(positions) > 1 and np.min(np.diff(positions)) < 1e-3:
        notes.append(
            Note(
                Level.WARNING,
                f"series {first.series_instance_uid} has slices at the same position",
                first.path,
                tag_name("ImagePositionPatient"),
            )
        )
    steps = np.diff(positions)
    if steps.size > 1 and steps.min() >= 1e-3 and steps.max() - steps.min() > UNEVEN_MM:
        notes.append(
            Note(
                Level.INFO,
                f"series {first.series_instance_uid} has uneven slice spacing: steps from "
                f"{steps.min():.4g} to {steps.max():.4g} mm (median {np.median(steps):.4g} mm); "
                "structures take each contour plane's own neighbouring planes, never one "
                "spacing or SliceThickness",
                first.path,
                tag_name("ImagePositionPatient"),
            )
        )
    series = ImageSeries(
        series_instance_uid=first.series_instance_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        slice_positions_mm=tuple(positions),
        sop_instance_uids=tuple(s.sop_instance_uid for s in ordered),
        paths=tuple(s.path for s in ordered),
        modality=first.modality or "CT",
        patient_id=first.patient_id,
        slice_z_mm=_axial_z(ordered),
    )
    return series, notes


def _axial_z(slices: list[ImageSlice]) -> tuple[float, ...]:
    """The z (mm) of every slice, ascending, when all are axial (normal along z); else ()."""
    z = []
    for s in slices:
        o = np.asarray(s.orientation, dtype=float)
        normal = np.cross(o[:3], o[3:])
        if abs(abs(normal[2]) - 1.0) > 1e-4:
            return ()
        z.append(s.position_mm * float(np.sign(normal[2])))
    return tuple(sorted(z))
