"""The images an RT Structure Set references (image series and SOP Instance UIDs), read from
its dataset."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from rtqa.dicom.common import optional_str

CONTOUR_IMAGE_SEQUENCE = 0x30060016
REFERENCED_SOP_INSTANCE_TAG = b"\x08\x00\x55\x11"  # (0008,1155), little endian


@dataclass(frozen=True)
class ImageReferences:
    """The images a structure set names as drawn on: the series of RTReferencedSeriesSequence,
    each with the FrameOfReferenceUID of the ReferencedFrameOfReferenceSequence item holding it,
    and the SOP Instance UIDs of every ContourImageSequence (series- and contour-level)."""

    series: tuple[tuple[str, str | None], ...] = ()  # (SeriesInstanceUID, frame holding it)
    image_uids: frozenset[str] = frozenset()


def image_references(ds: Dataset) -> ImageReferences:
    """The images an RT Structure Set dataset references (see :class:`ImageReferences`).
    ContourImageSequence items are read from their raw bytes where pydicom has not yet converted
    them (one item per contour would otherwise cost more than the contours)."""
    series: dict[str, str | None] = {}
    images: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        frame_uid = optional_str(frame, "FrameOfReferenceUID") or None
        for study in frame.get("RTReferencedStudySequence") or []:
            for item in study.get("RTReferencedSeriesSequence") or []:
                uid = optional_str(item, "SeriesInstanceUID")
                if uid:
                    series.setdefault(uid, frame_uid)
                images.update(_contour_image_uids(item))
    for roi in ds.get("ROIContourSequence") or []:
        for contour in roi.get("ContourSequence") or []:
            images.update(_contour_image_uids(contour))
    images.discard("")
    return ImageReferences(tuple(series.items()), frozenset(images))


def _contour_image_uids(item: Dataset) -> list[str]:
    """ReferencedSOPInstanceUID of every item of ``item``'s ContourImageSequence."""
    if CONTOUR_IMAGE_SEQUENCE not in item:
        return []
    raw = item.get_item(CONTOUR_IMAGE_SEQUENCE)
    value = getattr(raw, "value", None)
    if isinstance(value, bytes) and getattr(raw, "is_little_endian", False):
        return _raw_sop_instance_uids(value, bool(raw.is_implicit_VR))
    return [
        optional_str(ref, "ReferencedSOPInstanceUID")
        for ref in item.get("ContourImageSequence") or []
    ]


def _raw_sop_instance_uids(value: bytes, implicit: bool) -> list[str]:
    """ReferencedSOPInstanceUID values in the little-endian bytes of a sequence (tag, then VR
    "UI" and a 2-byte length when explicit, else a 4-byte length, then the padded UID)."""
    uids = []
    at = value.find(REFERENCED_SOP_INSTANCE_TAG)
    while at >= 0:
        head = at + len(REFERENCED_SOP_INSTANCE_TAG)
        if implicit:
            length, begin = int.from_bytes(value[head : head + 4], "little"), head + 4
        elif value[head : head + 2] == b"UI":
            length, begin = int.from_bytes(value[head + 2 : head + 4], "little"), head + 4
        else:
            at = value.find(REFERENCED_SOP_INSTANCE_TAG, head)
            continue
        uids.append(value[begin : begin + length].rstrip(b"\x00 ").decode("ascii", "replace"))
        at = value.find(REFERENCED_SOP_INSTANCE_TAG, begin + length)
    return uids
