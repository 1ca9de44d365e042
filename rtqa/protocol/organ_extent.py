"""Whether another plan of a course contours an organ further than the structure set it is judged
on: the course's summed dose there would go unjudged.

A course of several plans judges its organs on the first plan's structure set. Where another plan
brings its own structure set (another CT, often contoured only around its own lesion), its
contour of the same organ, mapped into the first plan's frame, may reach beyond the judged one:
the cord contoured around T8 in one plan and around L2 in the other. The comparison is of the
contour points' bounding boxes, with :data:`TOLERANCE_MM` for two delineations of one organ.
Coordinates mm.

A structure judged on contours that do not define all of it, for another reason: closed contours
left out when the structure set was read, rings of a plane combined ambiguously
(:func:`incomplete_contours`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from rtqa.model import Finding, Roi, Status, StructureSet
from rtqa.protocol.case_work import CaseWork
from rtqa.protocol.course_dose import course_registrations
from rtqa.protocol.judging import value_range
from rtqa.protocol.matching import MatchKind, RoiMatch
from rtqa.protocol.metrics import grows_with_volume
from rtqa.protocol.model import Limit

#: How far (mm) another plan's contour of an organ may reach beyond the judged one on any side
#: before the part beyond counts as unjudged (two delineations of one organ on two CTs).
TOLERANCE_MM = 5.0


def _bounds(roi: Roi, matrix: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest (x, y, z) in mm of the contour points of ``roi``, mapped by ``matrix``
    (4x4, points of the ROI's frame into the judged frame; None: the same frame)."""
    from rtqa.geometry.transform import map_points

    points = np.concatenate(
        [
            np.column_stack([poly.exterior, np.full(len(poly.exterior), plane.z_mm)])
            for plane in roi.planes
            for poly in plane.polygons
        ]
    )
    if matrix is not None:
        points = map_points(points, matrix)
    return points.min(axis=0), points.max(axis=0)


def _other_contours(
    organ: str, usable: Sequence[CaseWork]
) -> Iterator[tuple[CaseWork, StructureSet, RoiMatch]]:
    """Each later plan with a structure set of its own (not the first's, not one seen before)
    whose match of ``organ`` has a contour: the plan, its structure set, the match."""
    first = usable[0].case.structure_set
    assert first is not None
    seen = {first.sop_instance_uid}
    for w in usable[1:]:
        ss = w.case.structure_set
        if ss is None or w.match is None or ss.sop_instance_uid in seen:
            continue
        seen.add(ss.sop_instance_uid)
        m = w.match.organs.get(organ)
        if m is not None and m.roi is not None and not m.roi.is_empty:
            yield w, ss, m


def contoured_further(organ: str, usable: Sequence[CaseWork]) -> str:
    """Why the organ ``organ`` (a protocol name) judged on the first plan's structure set may miss
    part of the course's dose: each other plan whose own structure set contours it more than
    :data:`TOLERANCE_MM` beyond the judged contour, with how far; '' when none does."""
    from rtqa.prior import registration_between

    first = usable[0]
    assert first.match is not None and first.case.structure_set is not None
    judged = first.match.organs[organ].roi
    if judged is None or judged.is_empty:
        return ""
    lo, hi = _bounds(judged, None)
    frame = first.case.structure_set.frame_of_reference_uid
    registrations = course_registrations([w.case for w in usable])
    parts = []
    for w, ss, m in _other_contours(organ, usable):
        other = m.roi
        assert other is not None
        matrix = None
        if ss.frame_of_reference_uid != frame:
            matrix, _ = registration_between(ss.frame_of_reference_uid, frame, registrations)
            if matrix is None:  # the doses could not be summed either: said there
                continue
        olo, ohi = _bounds(other, matrix)
        beyond = float(max(np.max(lo - olo), np.max(ohi - hi)))
        if beyond > TOLERANCE_MM:
            parts.append(
                f"plan '{w.case.label}' contours '{other.name}' up to {beyond:.0f} mm beyond "
                f"'{judged.name}' of the first plan's structure set, on which the summed dose is "
                "judged"
            )
    return "; ".join(parts)


def contoured_elsewhere(
    organ: str, usable: Sequence[CaseWork]
) -> tuple[RoiMatch | None, str, bool]:
    """Where the first plan's structure set holds no contour of ``organ``: the match of the first
    other plan whose own structure set does, that plan's label, and whether its structure set
    shares the first one's frame of reference (``(None, '', False)`` when none does)."""
    first = usable[0].case.structure_set
    assert first is not None
    found = next(_other_contours(organ, usable), None)
    if found is None:
        return None, "", False
    w, ss, m = found
    return m, w.case.label, ss.frame_of_reference_uid == first.frame_of_reference_uid


def match_elsewhere(
    organ: str, m: RoiMatch, usable: Sequence[CaseWork], src: str | None, conf: str | None
) -> tuple[RoiMatch, str, Finding | None]:
    """The match to judge ``organ`` with on the course dose, what to add to its description, and
    a finding that refuses it. The first plan's match ``m`` unless its structure set holds no
    contour of the organ and another plan's does (:func:`contoured_elsewhere`): in the same
    frame of reference that contour is judged, said; in another, the organ is not evaluable
    (its contour is not carried across frames)."""
    unmatched = m.roi is None or m.roi.is_empty
    if len(usable) < 2 or not unmatched or m.kind is MatchKind.AMBIGUOUS:
        return m, "", None
    other, label, same_frame = contoured_elsewhere(organ, usable)
    if other is None:
        return m, "", None
    assert other.roi is not None
    if same_frame:
        return other, f" (in plan '{label}''s structure set; the first plan's has none)", None
    refused = Finding(
        group="organ",
        rule="match",
        status=Status.NOT_EVALUABLE,
        message=f"'{organ}' is contoured only in plan '{label}''s structure set "
        f"('{other.roi.name}'), in another frame of reference than the course dose: not judged",
        roi=other.roi.name,
        match=other.describe(),
        source=src,
        confidence=conf,
    )
    return m, "", refused


def incomplete_contours(*rois: Roi) -> str:
    """Why the contours of ``rois`` (a structure, and the ones it is derived from) do not define
    all of them (``Roi.incomplete``); '' when they do."""
    parts = [
        f"the contours of '{roi.name}' do not define all of it ({'; '.join(roi.incomplete)})"
        for roi in rois
        if roi.incomplete
    ]
    return "; ".join(parts)


def unjudged_part(finding: Finding, lim: Limit, why: str) -> Finding:
    """``finding`` of an organ judged on a contour that misses part of it (``why``): a pass is
    not evaluable, and so is a deviation unless the figure can only grow with the missing part
    (:func:`~rtqa.protocol.metrics.grows_with_volume`) and the limit is an upper one."""
    grows = grows_with_volume(lim.metric)
    if finding.value is None and finding.value_range is None:
        known = None
    else:  # the judged contour's figure, or the lower end of its range
        low = finding.value_range[0] if finding.value_range else finding.value
        known = value_range([low], partial=True, grows=grows)
    if finding.status is Status.PASS:
        text = f"; within the limit on the judged contour, but {why}"
    elif finding.status in (Status.MINOR, Status.MAJOR) and not (
        grows and lim.bands.per_protocol.upper
    ):
        text = f"; beyond the limit on the judged contour, but {why}, and this figure for the "
        text += "whole organ could lie on either side of the limit"
    else:
        return dataclasses.replace(
            finding, message=_joined(finding.message, why), value_range=known
        )
    return dataclasses.replace(
        finding,
        status=Status.NOT_EVALUABLE,
        message=_joined(finding.message, text.removeprefix("; ")),
        value_range=known,
    )


def _joined(message: str, more: str) -> str:
    return f"{message}; {more}" if message else more


__all__ = [
    "TOLERANCE_MM",
    "contoured_elsewhere",
    "contoured_further",
    "incomplete_contours",
    "match_elsewhere",
    "unjudged_part",
]
