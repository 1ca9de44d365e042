"""DVHs of structures: contours (or derived occupancies) sampled on a dose grid.

The structure's occupancy is built on a lattice of the dose grid (see
:mod:`rtqa.geometry.sampling`), the dose interpolated trilinearly at every occupied cell, and the
exact weighted distribution kept as a :class:`~rtqa.dvh.core.Dvh`. The part of the structure
outside the dose grid becomes ``Dvh.unknown_volume_cc`` and a warning note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtqa.dvh.beyond_grid import beyond_grid_max_gy
from rtqa.dvh.core import Dvh
from rtqa.geometry.interpolation import InterpolatedStack, interpolated_stack
from rtqa.geometry.sampling import Occupancy, occupancy, split_samples
from rtqa.model import DoseGrid, Level, Note, Roi

#: Outside-grid volume (as a fraction of the structure) below which no note is made.
OUTSIDE_NOTE_FRACTION = 1e-4


@dataclass(eq=False)
class StructureDvh:
    """The DVH of one structure with its volumes (cc) and what the user should know."""

    roi_name: str
    roi_number: int | None
    dvh: Dvh
    volume_cc: float  # from the contours alone (slab model, or the interpolated stack)
    volume_in_grid_cc: float  # the part with a known dose
    notes: list[Note] = field(default_factory=list)
    occupancy: Occupancy | None = field(default=None, repr=False)


def structure_dvh(roi: Roi, dose: DoseGrid, **options) -> StructureDvh:
    """DVH of ``roi`` on ``dose``. ``options`` go to :func:`rtqa.geometry.occupancy`
    (``factors``, ``min_samples``, ``end_cap_mm``, ``spacing_mm``), except
    ``interpolate_steps``: 0 (default) for the slab model, N > 0 for the contour shapes
    interpolated between neighbouring planes in N sub-slabs per step
    (:func:`rtqa.geometry.interpolation.interpolated_stack`). ValueError for an ROI without
    closed contours."""
    steps = options.pop("interpolate_steps", 0) or 0
    slabs = interpolated_stack(
        roi, steps, options.pop("end_cap_mm", None), options.pop("spacing_mm", None)
    )
    occ = occupancy(slabs, dose, name=roi.name, **options)
    result = occupancy_dvh(occ, dose, roi.name, roi_number=roi.number)
    result.volume_cc = slabs.volume_cc
    if slabs.gaps:
        result.notes.append(
            Note(
                Level.INFO,
                f"ROI '{roi.name}': {slabs.gaps} gap(s) between contour planes; "
                "taken as separate parts, each with its own end caps",
            )
        )
    if isinstance(slabs, InterpolatedStack) and slabs.fallback_steps:
        result.notes.append(
            Note(
                Level.INFO,
                f"ROI '{roi.name}': in {slabs.fallback_steps} of {slabs.joined_steps} steps "
                "between contour planes a contour or hole has no single counterpart on the "
                "neighbouring plane (an end, a branch); it is extruded halfway (slab model) "
                "instead of interpolated",
            )
        )
    return result


def occupancy_dvh(
    occ: Occupancy,
    dose: DoseGrid,
    name: str,
    *,
    roi_number: int | None = None,
) -> StructureDvh:
    """DVH of an occupancy (a structure's, or a derived one's such as lungs minus GTV) on
    ``dose``, which must be the grid the occupancy's lattice was built on. The grid faces its
    slab model crosses bound the dose of its part beyond the grid."""
    samples = split_samples(occ, dose)  # a cell where the dose bends counts by its octants
    dvh = Dvh.from_samples(samples[0], samples[1], occ.outside_cc, samples[2])
    dvh.beyond_grid_max_gy = beyond_grid_max_gy(occ, dose)
    notes: list[Note] = []
    total = dvh.total_volume_cc
    if occ.outside_cc > OUTSIDE_NOTE_FRACTION * max(total, 1e-12):
        bound = dvh.beyond_grid_max_gy
        faces = (
            f"; the dose on the grid faces it crosses is at most {bound:.3g} Gy"
            if bound is not None
            else ""
        )
        notes.append(
            Note(
                Level.WARNING,
                f"ROI '{name}': {occ.outside_cc:.3g} cc ({100 * occ.outside_cc / total:.3g} %) "
                f"lies outside the dose grid; its dose is unknown (not counted as 0 Gy){faces}",
            )
        )
    return StructureDvh(name, roi_number, dvh, total, dvh.known_volume_cc, notes, occ)
