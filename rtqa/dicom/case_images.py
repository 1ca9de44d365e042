"""The image series of a case: the series built from the slices found, the one chosen for a
case (referenced by its structure set, else the single series of its frame of reference), and
the notes on referenced images that are absent or in another frame of reference."""

from __future__ import annotations

from rtqa.dicom.common import tag_name
from rtqa.dicom.found import Found
from rtqa.dicom.image_references import ImageReferences
from rtqa.dicom.images import series_from_slices
from rtqa.model import Case, ImageSeries, Level, Note, StructureSet


def build_series(found: Found) -> dict[str, ImageSeries]:
    """The image series of the slices found, by SeriesInstanceUID."""
    series = {}
    for uid, slices in sorted(found.slices.items()):
        built, notes = series_from_slices(slices)
        series[uid] = built
        found.notes.extend(notes)
    return series


def case_images(
    case: Case, found: Found, series: dict[str, ImageSeries], notes: list[Note]
) -> ImageSeries | None:
    """The case's image series: the one its structure set references when present and in the
    frame the structure set places it in (else an ERROR naming both frames), otherwise the single
    series of the case's frame of reference. Referenced images that are absent are noted."""
    ss = case.structure_set
    refs = found.image_refs.get(ss.sop_instance_uid, ImageReferences()) if ss else None
    chosen = None
    refused: set[str] = set()
    if ss is not None and refs is not None:
        for uid, frame in refs.series:
            candidate = series.get(uid)
            if candidate is None:
                continue
            declared = frame or ss.frame_of_reference_uid
            if declared and candidate.frame_of_reference_uid != declared:
                notes.append(_other_frame_note(ss, candidate, declared))
                refused.add(uid)
                continue
            chosen = candidate
            break
    if chosen is None:
        others = {uid: s for uid, s in series.items() if uid not in refused}
        chosen = _same_frame_series(case, others, notes)
    if ss is not None and refs is not None:
        notes.extend(_missing_images(ss, refs, series, chosen))
    return chosen


def _same_frame_series(
    case: Case, series: dict[str, ImageSeries], notes: list[Note]
) -> ImageSeries | None:
    frame = case.frame_of_reference_uid
    same = [s for s in series.values() if frame and s.frame_of_reference_uid == frame]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        listed = ", ".join(s.series_instance_uid for s in same)
        notes.append(
            Note(Level.INFO, f"several image series in the case's frame of reference: {listed}")
        )
    return None


def _other_frame_note(ss: StructureSet, images: ImageSeries, declared: str) -> Note:
    """L11: the referenced CT lies in another frame than the structure set says."""
    return Note(
        Level.ERROR,
        f"the structure set's frame of reference {declared} differs from that of the CT it "
        f"references (series {images.series_instance_uid}, frame "
        f"{images.frame_of_reference_uid}): the structure set's frame is kept, not replaced by "
        "the CT's (it links the structures to the dose, and DVHs are computed in it); the CT is "
        "not used with these structures (it cannot be shown under them)",
        ss.path,
        tag_name("FrameOfReferenceUID"),
    )


def _missing_images(
    ss: StructureSet,
    refs: ImageReferences,
    series: dict[str, ImageSeries],
    chosen: ImageSeries | None,
) -> list[Note]:
    """L3: a WARNING when images the structure set references are not in the input (INFO when
    the input holds no images at all)."""
    absent_series = [uid for uid, _ in refs.series if uid not in series]
    named = ", ".join(uid for uid, _ in refs.series)
    if refs.image_uids:
        present = {uid for s in series.values() for uid in s.sop_instance_uids}
        missing = len(refs.image_uids - present)
        if not missing:
            return []
        what = f"referenced CT missing: {missing} of {len(refs.image_uids)} images"
        what += f" (series {named})" if named else ""
        whole = missing == len(refs.image_uids)
    elif absent_series:
        what = (
            f"referenced CT missing: series {', '.join(absent_series)} (the structure set lists "
            "none of its images)"
        )
        whole = len(absent_series) == len(refs.series)
    else:
        return []
    what += "; nothing rtqa computes needs the CT (DVHs use the contours and the dose grid)"
    if chosen is not None and all(chosen.series_instance_uid != uid for uid, _ in refs.series):
        what += (
            f"; image series {chosen.series_instance_uid} of the case's frame of reference is "
            "linked instead"
        )
    elif whole:
        what += "; skipped: the check that the CT shares the structure set's frame of reference"
    # no image at all in the input: an export of the RT objects alone, common and harmless; some
    # images present but not those referenced, or only part of them: a warning
    level = Level.INFO if whole and not series else Level.WARNING
    return [Note(level, what, ss.path, tag_name("ReferencedFrameOfReferenceSequence"))]
