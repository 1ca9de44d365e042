"""How the prior-radiation rules sample a structure: its occupied cells on the current dose
grid's lattice with the current and each mapped prior physical dose (Gy) there; its part beyond
the current dose grid with each prior's dose there and a bound on the current dose
(:func:`sample_beyond`); and the coarse lattices (mm) on which body outlines are compared for
the registration direction check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import shapely

from rtqa.geometry.transform import invert, map_points, resample_dose
from rtqa.model import DoseGrid, Roi
from rtqa.protocol.prior_inputs import MappedPrior, PriorInput

if TYPE_CHECKING:
    from rtqa.geometry.sampling import Occupancy

#: Points beyond a prior grid's outer node plane by less than this (mm) do not cross it.
FACE_TOL_MM = 1e-6
#: Most lattice cells over the part of a structure beyond the current dose grid; a larger part
#: is sampled on coarser cubic cells (its volume stays exact: the occupancy is fractional).
BEYOND_MAX_CELLS = 2_000_000


@dataclass(eq=False)
class Samples:
    """A structure's occupied lattice cells: volumes (cc), current physical dose (Gy) with its
    spread across each cell (Gy, as the DVH engine samples it), and each prior's physical dose
    (Gy, NaN where unknown: beyond the prior's grid); ``outside_cc``: beyond the current grid.
    ``prior_bounds_gy``: per prior, the bound of its dose where unknown (:func:`prior_face_bound`;
    None where nothing is unknown)."""

    volumes_cc: np.ndarray
    current_gy: np.ndarray
    priors_gy: list[np.ndarray]
    outside_cc: float
    current_spread_gy: np.ndarray | None = None
    prior_bounds_gy: list[float | None] = field(default_factory=list)


def cell_grid(occ) -> DoseGrid:
    """The cell centres of an occupancy's box as a (dose-less) grid to resample onto."""
    x, y, z = occ.centres()
    return DoseGrid(
        dose_gy=np.zeros(occ.values.shape),
        x_mm=np.asarray(x, dtype=float),
        y_mm=np.asarray(y, dtype=float),
        z_mm=np.asarray(z, dtype=float),
        frame_of_reference_uid=None,
    )


def sample(roi: Roi, inp: PriorInput, priors: list[MappedPrior], **options) -> tuple:
    """(samples, occupancy) of ``roi`` on the current dose grid's lattice."""
    from rtqa.geometry.sampling import occupancy

    occ = occupancy(roi, inp.dose, name=roi.name, **options)
    return sample_occupancy(occ, inp, priors), occ


def sample_derived(
    roi: Roi,
    plus: tuple[Roi, ...],
    minus: tuple[Roi, ...],
    inp: PriorInput,
    priors: list[MappedPrior],
) -> tuple:
    """(samples, occupancy) of the union of ``roi`` and ``plus`` minus ``minus``, built as the
    organ rules build it (:func:`rtqa.protocol.structure_dvhs.derived_occupancy`)."""
    from rtqa.protocol.structure_dvhs import derived_occupancy

    occ = derived_occupancy(roi, inp.dose, minus, plus)
    return sample_occupancy(occ, inp, priors), occ


def sample_occupancy(occ: Occupancy, inp: PriorInput, priors: list[MappedPrior]) -> Samples:
    """The occupied cells of ``occ`` (an occupancy on ``inp.dose``'s lattice) with the current
    and each mapped prior physical dose (Gy) there."""
    from rtqa.geometry.sampling import sample_doses

    if occ.values.size == 0:
        empty = np.zeros(0)
        nothing = [None for _ in priors]
        return Samples(empty, empty, [empty for _ in priors], occ.outside_cc, None, nothing)
    current, volumes, spread = sample_doses(occ, inp.dose)
    prior_doses, bounds = _prior_doses(occ, priors)
    return Samples(volumes, current, prior_doses, occ.outside_cc, spread, bounds)


def _prior_doses(
    occ: Occupancy, priors: list[MappedPrior]
) -> tuple[list[np.ndarray], list[float | None]]:
    """Each prior's physical dose (Gy) at the centres of ``occ``'s occupied cells (in the order
    of ``np.nonzero``; NaN beyond its grid), and the bound of each where unknown."""
    k, j, i = np.nonzero(occ.values > 0)
    cells = cell_grid(occ)
    doses, bounds = [], []
    for p in priors:
        back = None if p.matrix is None else invert(p.matrix)
        at_cells, _ = resample_dose(p.grid, cells, back)
        dose = at_cells[k, j, i]
        unknown = np.isnan(dose)
        points = np.column_stack(
            [cells.x_mm[i[unknown]], cells.y_mm[j[unknown]], cells.z_mm[k[unknown]]]
        )
        doses.append(dose)
        bounds.append(prior_face_bound(p.grid, map_points(points, back)))
    return doses, bounds


def prior_face_bound(grid: DoseGrid, points_mm: np.ndarray) -> float | None:
    """The highest physical dose (Gy, at least 0) on the faces of a prior's dose ``grid`` (its
    outermost node planes) that ``points_mm`` (n x 3, in the grid's frame) lie beyond: the
    bound of its dose where it is unknown, under the assumption of :mod:`rtqa.dvh.beyond_grid`
    (a grid is placed around the high dose). None without points, or where none lies beyond a
    face by more than rounding."""
    if points_mm.size == 0:
        return None
    dose = np.asarray(grid.dose_gy)
    faces = []
    # dose_gy is indexed (z, y, x); the axes increase
    for column, axis_mm, axis in ((0, grid.x_mm, 2), (1, grid.y_mm, 1), (2, grid.z_mm, 0)):
        if np.any(points_mm[:, column] < float(axis_mm[0]) - FACE_TOL_MM):
            faces.append(np.take(dose, 0, axis=axis))
        if np.any(points_mm[:, column] > float(axis_mm[-1]) + FACE_TOL_MM):
            faces.append(np.take(dose, -1, axis=axis))
    if not faces:
        return None
    return max(0.0, max(float(np.max(f)) for f in faces))


@dataclass(eq=False)
class Beyond:
    """A structure's part beyond the current dose grid, sampled on a lattice of the grid's
    spacing that reaches past it: volumes (cc) and each prior's physical dose (Gy, NaN where
    unknown) at the cell centres. No current dose was computed there; ``bound_gy`` bounds it
    from above: the highest current dose (Gy) on the grid faces the structure crosses
    (:mod:`rtqa.dvh.beyond_grid`). The part's volume is ``volumes_cc.sum()``: the structure's
    ``outside_cc`` to within the rounding of the lattice."""

    volumes_cc: np.ndarray
    priors_gy: list[np.ndarray]
    bound_gy: float
    prior_bounds_gy: list[float | None] = field(default_factory=list)


def sample_beyond(occ: Occupancy, inp: PriorInput, priors: list[MappedPrior]) -> Beyond | None:
    """The part of ``occ``'s structure beyond the current dose grid (``inp.dose``), sampled
    with each prior's dose on a lattice of the grid's spacing (coarser beyond
    :data:`BEYOND_MAX_CELLS` cells); None where nothing lies beyond, or where the structure's
    extent is not known (no slab model) so that neither the part nor a bound can be had."""
    from rtqa.dvh.beyond_grid import beyond_grid_max_gy
    from rtqa.geometry.sampling import occupancy

    bound = beyond_grid_max_gy(occ, inp.dose)
    if bound is None or occ.slabs is None:
        return None
    part = outside_stack(occ)
    if part is None:
        return None
    cells = lattice_cells(inp.dose, part.bounds_mm)
    edge = 0.0
    if cells > BEYOND_MAX_CELLS:
        # a large part (a body beyond a clipped grid): cubic cells of about the same total
        steps = [step for _, step, _ in _lattice_axes(inp.dose, part.bounds_mm)]
        edge = float(np.cbrt(np.prod(steps) * cells / BEYOND_MAX_CELLS))
    lattice = _lattice_like(inp.dose, part.bounds_mm, edge)
    beyond = occupancy(part, lattice, name=occ.name)
    if beyond.values.size == 0:
        return None
    k, _, _ = np.nonzero(beyond.values > 0)
    volumes = beyond.values[beyond.values > 0] * beyond.cell_volumes_mm3()[k, 0, 0] / 1000.0
    prior_doses, bounds = _prior_doses(beyond, priors)
    return Beyond(volumes.astype(float), prior_doses, float(bound), bounds)


def outside_stack(occ: Occupancy):
    """The slab model of the part of ``occ``'s structure outside its lattice's box (the
    current dose grid's voxels), or None when none is left."""
    from rtqa.geometry.boolean import combined_stack
    from rtqa.geometry.slabs import SlabStack

    lat = occ.lattice
    x, y, z = lat.x_edges_mm, lat.y_edges_mm, lat.z_edges_mm
    box = shapely.box(float(x[0]), float(y[0]), float(x[-1]), float(y[-1]))
    grid_box = SlabStack(
        z_mm=np.array([0.5 * (z[0] + z[-1])]),
        lo_mm=np.array([float(z[0])]),
        hi_mm=np.array([float(z[-1])]),
        geoms=(box,),
        areas_mm2=np.array([box.area]),
    )
    part = combined_stack(occ.slabs, (), (grid_box,))
    return part if part.geoms else None


def _lattice_axes(
    grid: DoseGrid, bounds: tuple[float, ...], min_step_mm: float = 0.0
) -> list[tuple[float, float, int]]:
    """(first voxel centre mm, step mm, voxel count) per axis x, y, z of :func:`_lattice_like`."""
    x0, y0, z0, x1, y1, z1 = bounds
    axes = []
    for lo, hi, ref in ((x0, x1, grid.x_mm), (y0, y1, grid.y_mm), (z0, z1, grid.z_mm)):
        step = float(np.median(np.abs(np.diff(ref)))) if ref.size > 1 else BODY_LATTICE_MM
        step = max(step, min_step_mm)
        axes.append((lo - step, step, math.ceil((hi - lo) / step) + 3))
    return axes


def lattice_cells(grid: DoseGrid, bounds: tuple[float, ...], min_step_mm: float = 0.0) -> float:
    """How many voxels :func:`_lattice_like` would hold (a float: it may be astronomical)."""
    return math.prod(float(n) for _, _, n in _lattice_axes(grid, bounds, min_step_mm))


def _lattice_like(grid: DoseGrid, bounds: tuple[float, ...], min_step_mm: float = 0.0) -> DoseGrid:
    """An empty grid in ``grid``'s frame covering ``bounds`` (x0, y0, z0, x1, y1, z1; mm) with a
    voxel to spare on every side, spaced as ``grid`` (its median step per axis; 3 mm along an
    axis of one voxel) but no finer than ``min_step_mm``. ValueError beyond
    :data:`LATTICE_MAX_CELLS` voxels (a contour point metres away, say), before allocating."""
    cells = lattice_cells(grid, bounds, min_step_mm)
    if not cells <= LATTICE_MAX_CELLS:
        extent = max(abs(float(b)) for b in bounds)
        raise ValueError(
            f"a lattice over the contours would hold {cells:.3g} voxels (more than "
            f"{LATTICE_MAX_CELLS:.3g}): they reach {extent:.4g} mm from the origin"
        )
    x, y, z = (
        first + step * np.arange(n) for first, step, n in _lattice_axes(grid, bounds, min_step_mm)
    )
    return DoseGrid(
        dose_gy=np.zeros((z.size, y.size, x.size)),
        x_mm=x,
        y_mm=y,
        z_mm=z,
        frame_of_reference_uid=grid.frame_of_reference_uid,
    )


#: Most voxels of a lattice made to sample a structure (160 MB of float64): more means contours
#: reaching metres away, which no patient has.
LATTICE_MAX_CELLS = 20_000_000

#: Coarsest useful spacing (mm) for a body outline compared by Dice; finer grids are not needed.
BODY_LATTICE_MM = 3.0


def roi_bounds(roi: Roi) -> tuple[float, ...]:
    """(x0, y0, z0, x1, y1, z1) of ``roi``'s slab model, mm (ValueError without volume)."""
    from rtqa.geometry.slabs import slab_stack

    return slab_stack(roi).bounds_mm


def lattice_over(roi: Roi, grid: DoseGrid, bounds: tuple[float, ...] | None = None) -> DoseGrid:
    """An empty lattice in ``grid``'s frame covering ``roi``'s contours (or ``bounds``, mm) with
    one voxel to spare, spaced as ``grid`` but no finer than :data:`BODY_LATTICE_MM`: a body
    outline rasterised on it is whole however far the dose grid reaches (ValueError for an ROI
    without volume)."""
    return _lattice_like(grid, bounds if bounds is not None else roi_bounds(roi), BODY_LATTICE_MM)


def grid_occupancy(roi: Roi, grid: DoseGrid) -> np.ndarray:
    """Fraction of each voxel of ``grid`` inside ``roi`` (array of the grid's shape)."""
    from rtqa.geometry.sampling import occupancy

    occ = occupancy(roi, grid, factors=(1, 1, 1))
    out = np.zeros(grid.dose_gy.shape, dtype=float)
    if occ.values.size:
        k0, j0, i0 = occ.offset
        nz, ny, nx = occ.values.shape
        out[k0 : k0 + nz, j0 : j0 + ny, i0 : i0 + nx] = occ.values
    return out
