"""Wide steps between contour planes that no image plane lies in: a missing image slice.

The slab model takes a step between an ROI's planes wider than
:data:`~rtqa.geometry.slabs.GAP_FACTOR` times its neighbouring steps as a gap between parts
(:mod:`rtqa.geometry.slabs`). That is right where an image plane lies in the step (the
structure was not drawn on it) and wrong where the images have no plane there (a slice lost
from the CT, or a series with one wider step): nothing could be drawn there, the structure goes
on across it, and taking it as a gap loses a slab of every ROI crossing it (one of eleven
planes of the spine sample's target: 9 % of its volume). The evidence, strongest first:

* the image series linked to the structure set, when its slices are axial: a wide step with
  no slice strictly inside is **bridged** (joined by the slab model); one with a slice inside
  is a confirmed gap;
* without images, the structure set itself: a wide step of an ROI that at least one other ROI
  also steps across between the same two planes, with no contour plane of any ROI inside it, is
  a step of the images (bridged); one with another ROI's plane inside is a confirmed gap.

A wide step that neither tells about stays a gap, as the slab model has it, with a WARNING that
nothing confirms it; a target ROI with an image plane inside such a step is warned of too (a
slice skipped while contouring). Positions in mm; "strictly inside" means more than
:data:`~rtqa.geometry.slabs.STEP_MATCH_MM` from either end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtqa.geometry.slabs import STEP_MATCH_MM, gap_steps, plane_groups, step_listed
from rtqa.model import TARGET_TYPES, ImageSeries, Level, Note, Roi, StructureSet


def wide_steps(roi: Roi) -> list[tuple[float, float]]:
    """(lower z, upper z) mm of the steps the slab model alone takes as gaps in ``roi``."""
    if len(roi.planes) < 2:
        return []
    z, _ = plane_groups(roi)
    return [(float(z[j]), float(z[j + 1])) for j in np.flatnonzero(gap_steps(z))]


def _inside(planes_mm: np.ndarray, lo: float, hi: float) -> bool:
    """Whether a plane of the sorted ``planes_mm`` lies strictly between ``lo`` and ``hi``."""
    i = np.searchsorted(planes_mm, lo + STEP_MATCH_MM, side="right")
    return bool(i < planes_mm.size and planes_mm[i] < hi - STEP_MATCH_MM)


def bridge_by_structure_set(rois: Sequence[Roi]) -> None:
    """Set ``bridged_steps_mm`` and ``confirmed_gaps_mm`` of ``rois`` from the contour planes of
    the whole structure set (see the module docstring)."""
    planes = {id(r): plane_groups(r)[0] for r in rois if r.planes}
    every = np.unique(np.concatenate(list(planes.values()))) if planes else np.empty(0)
    for roi in rois:
        bridged, confirmed = [], []
        for lo, hi in wide_steps(roi):
            if _inside(every, lo, hi):
                confirmed.append((lo, hi))
            elif any(
                _has_plane(z, lo) and _has_plane(z, hi)
                for key, z in planes.items()
                if key != id(roi)
            ):
                bridged.append((lo, hi))
        roi.bridged_steps_mm = tuple(bridged)
        roi.confirmed_gaps_mm = tuple(confirmed)


def bridge_by_images(rois: Sequence[Roi], slice_z_mm: Sequence[float]) -> None:
    """Set ``bridged_steps_mm`` and ``confirmed_gaps_mm`` of ``rois`` from the z (mm) of the
    axial image slices they were drawn on (replacing what the structure set alone told)."""
    slices = np.sort(np.asarray(slice_z_mm, dtype=float))
    for roi in rois:
        steps = wide_steps(roi)
        roi.bridged_steps_mm = tuple(s for s in steps if not _inside(slices, *s))
        roi.confirmed_gaps_mm = tuple(s for s in steps if _inside(slices, *s))


def _has_plane(z: np.ndarray, at: float) -> bool:
    return bool(np.any(np.abs(z - at) <= STEP_MATCH_MM))


def bridge_notes(ss: StructureSet, source: str) -> list[Note]:
    """One WARNING per bridged step of the structure set, naming the ROIs it joins and what
    told (``source``, e.g. "the image series <uid>")."""
    joined: dict[tuple[float, float], list[str]] = {}
    for roi in ss.rois:
        for step in roi.bridged_steps_mm:
            key = next((k for k in joined if step_listed(*step, (k,))), step)
            joined.setdefault(key, []).append(roi.name)
    notes = []
    for (lo, hi), names in sorted(joined.items()):
        listed = ", ".join(f"'{n}'" for n in names)
        notes.append(
            Note(
                Level.WARNING,
                f"no image plane between z {lo:g} and {hi:g} mm ({hi - lo:g} mm step, wider "
                f"than the steps beside it; from {source}): taken as a slice missing from the "
                f"images, so the ROIs crossing it are joined across it, each plane's slab "
                f"reaching halfway, not split into parts: {listed}",
                ss.path,
            )
        )
    return notes


def case_bridges(ss: StructureSet, images: ImageSeries | None) -> list[Note]:
    """Set the bridged steps of ``ss``'s ROIs from the case's axial image series where it has
    one, else from the structure set's own planes; the WARNINGs naming the steps joined."""
    if images is not None and len(images.slice_z_mm) > 1:
        bridge_by_images(ss.rois, images.slice_z_mm)
        notes = bridge_notes(ss, f"the image series {images.series_instance_uid}")
    else:
        bridge_by_structure_set(ss.rois)
        notes = bridge_notes(ss, "the contour planes of every ROI of the structure set")
    return notes + unconfirmed_gap_notes(ss) + target_gap_notes(ss)


def target_gap_notes(ss: StructureSet) -> list[Note]:
    """A WARNING per target ROI (GTV, CTV, ITV, PTV) left out of an image plane inside it: the
    slab model, as a planning system, takes two parts there; a slice skipped while contouring
    leaves that tissue outside the target."""
    notes = []
    for roi in ss.rois:
        if roi.confirmed_gaps_mm and roi.interpreted_type.upper() in TARGET_TYPES:
            listed = ", ".join(f"z {lo:g} to {hi:g} mm" for lo, hi in roi.confirmed_gaps_mm)
            notes.append(
                Note(
                    Level.WARNING,
                    f"target ROI '{roi.name}' has no contour on an image plane between its "
                    f"planes ({listed}): taken as separate parts, as a planning system does; a "
                    "slice skipped while contouring leaves that tissue outside the target",
                    ss.path,
                )
            )
    return notes


def unconfirmed_gap_notes(ss: StructureSet) -> list[Note]:
    """A WARNING per ROI with wide steps that nothing tells about (see the module docstring):
    taken as gaps, which loses a slab if an image slice is missing there."""
    notes = []
    for roi in ss.rois:
        steps = [
            s
            for s in wide_steps(roi)
            if not step_listed(*s, roi.bridged_steps_mm)
            and not step_listed(*s, roi.confirmed_gaps_mm)
        ]
        if not steps:
            continue
        listed = ", ".join(f"z {lo:g} to {hi:g} mm" for lo, hi in steps)
        notes.append(
            Note(
                Level.WARNING,
                f"ROI '{roi.name}': step(s) between contour planes wider than the steps beside "
                f"them ({listed}) taken as gaps between separate parts; no linked axial image "
                "series and no other ROI tells whether an image slice is missing there (if one "
                "is, the ROI lacks a slab there)",
                ss.path,
            )
        )
    return notes
