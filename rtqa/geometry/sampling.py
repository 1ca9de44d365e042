"""Fractional occupancy of a structure on a sampling lattice aligned to a dose grid.

Conventions
-----------
* The **lattice** of a :class:`~rtqa.model.DoseGrid` with factors ``(fz, fy, fx)`` splits every
  dose voxel into ``fz * fy * fx`` equal cells. In x and y a dose voxel spans half a spacing
  either side of its centre; in z a voxel spans from halfway to the frame below to halfway to the
  frame above (half the neighbouring step beyond the outer frames), so uneven frames work. The
  dose grid's extent is the union of its voxels; in the outer half voxel the dose is the outer
  frame's (clamped, not extrapolated). Structure volume outside that extent has unknown dose and
  is reported as ``outside_cc``, never given 0 Gy.
* A cell's value is the fraction of it inside the structure's slab model
  (:mod:`rtqa.geometry.slabs`): the exact polygon-pixel area in plane
  (:mod:`rtqa.geometry.raster`) times the overlap of each contour slab with the cell in z. The
  volume is therefore exact for the slab model; only the dose at each cell (interpolated
  trilinearly at the cell centre, :func:`sample_doses`) is a sample.
* A partly occupied cell (value below :data:`WHOLE`, :class:`PartialCells`) is sampled at the
  **centroid of its occupied part**, not at the cell centre: the exact in-plane moments of each
  contour's pixel (:func:`rtqa.geometry.raster.coverage`) combined with the z extent of each
  slab inside the cell. Its dose spread uses the width of the occupied part along each axis
  (``sqrt(12 * variance)``). A structure end cap lying inside a dose cell is therefore sampled
  at the middle of the capped slab, so a dose gradient across the cell adds no bias.
* Factors are chosen per structure (:func:`choose_factors`) so that the structure holds at least
  :data:`MIN_SAMPLES` cells (about isotropic cells; at most :data:`MAX_FACTOR` per axis): small
  SBRT targets are sampled finely, a body outline stays on the dose grid itself (factor 1, exact
  areas at the boundary voxels only).
* Set operations on occupancies (fuzzy-set rules on the fractions): union ``max(a, b)``,
  intersection ``min(a, b)``, difference ``max(a - b, 0)``. They are exact where one structure
  contains the other at a cell (lungs minus GTV, body minus PTV), not where both boundaries cross
  a cell (two adjoining organs); ``outside_cc`` of the result is an estimate (an upper bound for
  union and difference, the smaller for intersection). Derived structures of contoured ROIs are
  built exactly from their slab models instead (:mod:`rtqa.geometry.boolean`) and sampled like
  any structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import shapely

from rtqa.geometry.node_range import NodeRanges, clip_intervals, node_range_of_block
from rtqa.geometry.slabs import SlabStack, slab_stack
from rtqa.model import DoseGrid, Roi

#: Minimum number of cells a structure is sampled with (when MAX_FACTOR allows).
MIN_SAMPLES = 20_000
#: Largest subdivision of a dose voxel along one axis.
MAX_FACTOR = 16
#: Largest number of lattice cells in a structure's bounding box (bounds memory).
MAX_CELLS = 30_000_000
#: A structure whose in-grid volume falls short of its contour volume by less than this fraction
#: lies wholly inside the dose grid: occupancies are float32 (relative rounding 6e-8 each), so
#: the two volumes differ by up to ~2e-9 of the volume with nothing outside (the oesophagus of
#: spine_3fx: 3.6e-8 of 20.6 cc), and a 1e-9 bound refused its Min and D100% as reaching outside.
INSIDE_RTOL = 1e-6


@dataclass(frozen=True, eq=False)
class Lattice:
    """Cell centres ``x_mm``, ``y_mm`` (uniform) and cell edges ``z_edges_mm`` covering a dose grid,
    each dose voxel split ``factors = (fz, fy, fx)`` times."""

    x_mm: np.ndarray
    y_mm: np.ndarray
    z_edges_mm: np.ndarray
    factors: tuple[int, int, int]

    @property
    def dx(self) -> float:
        return float(self.x_mm[1] - self.x_mm[0]) if self.x_mm.size > 1 else 0.0

    @property
    def dy(self) -> float:
        return float(self.y_mm[1] - self.y_mm[0]) if self.y_mm.size > 1 else 0.0

    @property
    def z_mm(self) -> np.ndarray:
        return 0.5 * (self.z_edges_mm[:-1] + self.z_edges_mm[1:])

    @property
    def dz(self) -> np.ndarray:
        return np.diff(self.z_edges_mm)

    @property
    def x_edges_mm(self) -> np.ndarray:
        return np.append(self.x_mm - 0.5 * self.dx, self.x_mm[-1] + 0.5 * self.dx)

    @property
    def y_edges_mm(self) -> np.ndarray:
        return np.append(self.y_mm - 0.5 * self.dy, self.y_mm[-1] + 0.5 * self.dy)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z_edges_mm.size - 1, self.y_mm.size, self.x_mm.size)

    def same_as(self, other: Lattice) -> bool:
        return (
            self.factors == other.factors
            and np.array_equal(self.x_mm, other.x_mm)
            and np.array_equal(self.y_mm, other.y_mm)
            and np.array_equal(self.z_edges_mm, other.z_edges_mm)
        )


def voxel_edges(centres: np.ndarray, spacing: float | None = None) -> np.ndarray:
    """Voxel boundaries (mm) of sorted centres: midpoints, and half the outer step beyond the
    ends (``spacing`` for a single centre)."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        if not spacing:
            raise ValueError("a single dose frame has no thickness")
        return np.array([c[0] - 0.5 * spacing, c[0] + 0.5 * spacing])
    mid = 0.5 * (c[:-1] + c[1:])
    return np.concatenate([[c[0] - 0.5 * (c[1] - c[0])], mid, [c[-1] + 0.5 * (c[-1] - c[-2])]])


def _split(edges: np.ndarray, f: int) -> np.ndarray:
    t = np.arange(f) / f
    inner = edges[:-1, None] + np.diff(edges)[:, None] * t[None, :]
    return np.append(inner.ravel(), edges[-1])


def lattice_for(grid: DoseGrid, factors: tuple[int, int, int] = (1, 1, 1)) -> Lattice:
    """The lattice of ``grid`` with each voxel split ``factors = (fz, fy, fx)`` times."""
    fz, fy, fx = (int(f) for f in factors)
    if min(fz, fy, fx) < 1:
        raise ValueError(f"subdivision factors must be >= 1, got {factors}")
    dx, dy, _ = grid.spacing_mm
    xe = _split(voxel_edges(grid.x_mm, dx or 1.0), fx)
    ye = _split(voxel_edges(grid.y_mm, dy or 1.0), fy)
    ze = _split(voxel_edges(grid.z_mm, min(dx, dy) or 1.0), fz)
    return Lattice(0.5 * (xe[:-1] + xe[1:]), 0.5 * (ye[:-1] + ye[1:]), ze, (fz, fy, fx))


def choose_factors(
    volume_cc: float, grid: DoseGrid, min_samples: int = MIN_SAMPLES, max_factor: int = MAX_FACTOR
) -> tuple[int, int, int]:
    """Subdivision ``(fz, fy, fx)`` giving about-isotropic cells of side
    ``h = (volume / min_samples)^(1/3)`` (so the structure holds >= ``min_samples`` cells), each
    factor within ``1..max_factor``."""
    dx, dy, _ = grid.spacing_mm
    dz = float(np.median(np.diff(grid.z_mm))) if grid.z_mm.size > 1 else min(dx, dy)
    if volume_cc <= 0:
        return (max_factor, max_factor, max_factor)
    h = (volume_cc * 1000.0 / min_samples) ** (1.0 / 3.0)
    return tuple(min(max(math.ceil(s / h - 1e-9), 1), max_factor) for s in (dz, dy, dx))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class PartialCells:
    """The partly occupied cells of an occupancy built from contours: ``index`` (sorted flat
    indices into ``Occupancy.values``), the centroid of the occupied part as an offset (mm) from
    the cell centre, ``offset_mm[:, a]`` for axis ``a`` in (x, y, z) order, and the width (mm)
    of the uniform distribution with the same variance of that coordinate over the occupied
    part, ``width_mm[:, a]`` (the cell size for a whole cell, less for a part)."""

    index: np.ndarray
    offset_mm: np.ndarray
    width_mm: np.ndarray


@dataclass(eq=False)
class Occupancy:
    """Fractional occupancy (0..1) of a structure on a :class:`Lattice` of a dose grid.

    ``values[k, j, i]`` is the fraction of lattice cell ``(k0 + k, j0 + j, i0 + i)`` inside the
    structure, ``offset = (k0, j0, i0)``; cells beyond the array are empty. ``outside_cc`` is the
    structure volume outside the dose grid (dose unknown). ``slabs`` keeps the contour geometry
    where known (exact distances for :meth:`expand`).
    """

    lattice: Lattice
    offset: tuple[int, int, int]
    values: np.ndarray
    outside_cc: float = 0.0
    name: str = ""
    slabs: SlabStack | None = field(default=None, repr=False)
    partial: PartialCells | None = field(default=None, repr=False)

    # ------------------------------------------------------------ measures

    def cell_volumes_mm3(self) -> np.ndarray:
        """Volume (mm^3) of the cells of ``values``, broadcastable to its shape (nz, 1, 1)."""
        k0 = self.offset[0]
        dz = self.lattice.dz[k0 : k0 + self.values.shape[0]]
        return (dz * self.lattice.dx * self.lattice.dy)[:, None, None]

    @property
    def volume_cc(self) -> float:
        """Volume (cc) inside the dose grid (plane sums in double precision)."""
        planes = self.values.reshape(self.values.shape[0], -1).sum(axis=1, dtype=np.float64)
        return float(np.dot(planes, self.cell_volumes_mm3()[:, 0, 0]) / 1000.0)

    @property
    def total_volume_cc(self) -> float:
        return self.volume_cc + self.outside_cc

    @property
    def centroid_mm(self) -> tuple[float, float, float]:
        """Volume-weighted centre (x, y, z) in mm of the part inside the dose grid."""
        w = self.values * self.cell_volumes_mm3()
        total = w.sum()
        if total <= 0:
            raise ValueError(f"structure '{self.name}' has no volume inside the dose grid")
        x, y, z = self.centres()
        return (
            float((w.sum(axis=(0, 1)) * x).sum() / total),
            float((w.sum(axis=(0, 2)) * y).sum() / total),
            float((w.sum(axis=(1, 2)) * z).sum() / total),
        )

    def centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell-centre coordinates (x, y, z) in mm along each axis of ``values``."""
        k0, j0, i0 = self.offset
        nz, ny, nx = self.values.shape
        lat = self.lattice
        return lat.x_mm[i0 : i0 + nx], lat.y_mm[j0 : j0 + ny], lat.z_mm[k0 : k0 + nz]

    # ------------------------------------------------------------ set operations

    def _aligned(self, other: Occupancy) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
        if not self.lattice.same_as(other.lattice):
            raise ValueError(
                f"'{self.name}' and '{other.name}' are sampled on different lattices "
                f"(factors {self.lattice.factors} and {other.lattice.factors}): build both with "
                "the same factors"
            )
        lo = tuple(min(a, b) for a, b in zip(self.offset, other.offset, strict=True))
        hi = tuple(
            max(a + n, b + m)
            for a, n, b, m in zip(
                self.offset, self.values.shape, other.offset, other.values.shape, strict=True
            )
        )
        return lo, self._padded(lo, hi), other._padded(lo, hi)

    def _padded(self, lo, hi) -> np.ndarray:
        out = np.zeros(tuple(h - low for low, h in zip(lo, hi, strict=True)), dtype=np.float32)
        sl = tuple(
            slice(o - low, o - low + n)
            for o, low, n in zip(self.offset, lo, self.values.shape, strict=True)
        )
        out[sl] = self.values
        return out

    def _derived(self, offset, values, outside_cc, name) -> Occupancy:
        return Occupancy(self.lattice, offset, values.astype(np.float32), outside_cc, name)

    def union(self, other: Occupancy) -> Occupancy:
        lo, a, b = self._aligned(other)
        return self._derived(
            lo, np.maximum(a, b), self.outside_cc + other.outside_cc, f"{self.name}|{other.name}"
        )

    def intersection(self, other: Occupancy) -> Occupancy:
        lo, a, b = self._aligned(other)
        return self._derived(
            lo,
            np.minimum(a, b),
            min(self.outside_cc, other.outside_cc),
            f"{self.name}&{other.name}",
        )

    def difference(self, other: Occupancy) -> Occupancy:
        lo, a, b = self._aligned(other)
        return self._derived(
            lo, np.maximum(a - b, 0.0), self.outside_cc, f"{self.name}-{other.name}"
        )

    def expand(self, margin_mm: float) -> Occupancy:
        """The set of points within ``margin_mm`` (>= 0) of the structure, on the same lattice
        (see :func:`rtqa.geometry.distance.expand`)."""
        from rtqa.geometry.distance import expand

        return expand(self, margin_mm)

    def shell(self, inner_mm: float, outer_mm: float) -> Occupancy:
        """Points between ``inner_mm`` and ``outer_mm`` from the structure's surface, outside it
        (e.g. ``shell(0, 20)``: the ring from a target's surface to 2 cm)."""
        if not 0 <= inner_mm < outer_mm:
            raise ValueError(f"a shell needs 0 <= inner < outer, got {inner_mm}, {outer_mm}")
        inner = self if inner_mm == 0 else self.expand(inner_mm)
        out = self.expand(outer_mm).difference(inner)
        out.name = f"{self.name} shell {inner_mm:g}-{outer_mm:g} mm"
        return out


def occupancy(
    roi: Roi | SlabStack,
    grid: DoseGrid,
    *,
    factors: tuple[int, int, int] | None = None,
    min_samples: int = MIN_SAMPLES,
    end_cap_mm: float | None = None,
    spacing_mm: float | None = None,
    margin_cells: int = 0,
    name: str | None = None,
) -> Occupancy:
    """Occupancy of ``roi`` (or its slab model) on the dose grid's lattice.

    ``factors = (fz, fy, fx)`` fixes the subdivision (needed for set operations between
    structures); by default :func:`choose_factors` picks it from the contour volume.
    ``margin_cells`` pads the bounding box (room for an expansion). ValueError for an ROI with no
    closed contour.
    """
    slabs = roi if isinstance(roi, SlabStack) else slab_stack(roi, end_cap_mm, spacing_mm)
    label = name if name is not None else getattr(roi, "name", "")
    if not slabs.geoms:  # a derived structure with nothing left (all of it taken away)
        lat = lattice_for(grid, factors or (1, 1, 1))
        return Occupancy(lat, (0, 0, 0), np.zeros((0, 0, 0), np.float32), 0.0, label, slabs)
    total_cc = slabs.volume_cc
    if factors is None:
        factors = choose_factors(total_cc, grid, min_samples)
        factors = _limit_cells(factors, slabs, grid)
    lat = lattice_for(grid, factors)
    xe, ye, ze = lat.x_edges_mm, lat.y_edges_mm, lat.z_edges_mm
    xmin, ymin, zmin, xmax, ymax, zmax = slabs.bounds_mm
    i0, i1 = _index_range(xe, xmin, xmax, margin_cells)
    j0, j1 = _index_range(ye, ymin, ymax, margin_cells)
    k0, k1 = _index_range(ze, zmin, zmax, margin_cells)
    if i0 >= i1 or j0 >= j1 or k0 >= k1:
        return Occupancy(lat, (0, 0, 0), np.zeros((0, 0, 0), np.float32), total_cc, label, slabs)
    from rtqa.geometry.raster import coverage

    nz, ny, nx = k1 - k0, j1 - j0, i1 - i0
    values = np.zeros((nz, ny, nx), dtype=np.float32)
    zl, zh = ze[k0:k1], ze[k0 + 1 : k1 + 1]
    # identical contours (common along a structure) are rasterised once
    unique: dict[bytes, int] = {}
    which = []
    for geom in slabs.geoms:
        key = shapely.to_wkb(geom)
        which.append(unique.setdefault(key, len(unique)))
    geoms = [None] * len(unique)
    for geom, u in zip(slabs.geoms, which, strict=True):
        geoms[u] = geom
    cov = coverage(geoms, xe[i0 : i1 + 1], ye[j0 : j1 + 1])
    pairs = []  # (z cell, slab) overlaps
    for p, (lo, hi) in enumerate(zip(slabs.lo_mm, slabs.hi_mm, strict=True)):
        overlap = np.clip(np.minimum(zh, hi) - np.maximum(zl, lo), 0.0, None) / (zh - zl)
        ks = np.nonzero(overlap > 0)[0]
        if ks.size == 0 or slabs.geoms[p].is_empty:
            continue
        frac = cov.fraction[which[p]]
        for k in ks:
            if overlap[k] >= 1.0:
                values[k] += frac
            else:
                values[k] += np.float32(overlap[k]) * frac
        pairs.append((ks, np.full(ks.size, p)))
    np.clip(values, 0.0, 1.0, out=values)
    occ = Occupancy(lat, (k0, j0, i0), values, 0.0, label, slabs)
    if pairs:
        pk = np.concatenate([a for a, _ in pairs])
        pp = np.concatenate([b for _, b in pairs])
        occ.partial = _partial_cells(occ, cov, np.asarray(which), pk, pp)
    occ.outside_cc = max(total_cc - occ.volume_cc, 0.0)
    if occ.outside_cc < INSIDE_RTOL * max(total_cc, 1.0):
        occ.outside_cc = 0.0
    return occ


#: Cells occupied at least this much are whole cells (sampled at their centre).
WHOLE = 1.0 - 1e-6
#: Cells occupied less than this are empty: a contour edge on a cell edge leaves slivers of
#: ~1e-12 of a cell from rounding, whose dose spread (the whole cell's, their moments being
#: rounding too) would stretch Min and Max by up to a cell's dose range.
SLIVER = 1e-7


def _partial_cells(occ: Occupancy, cov, which, pair_k, pair_p) -> PartialCells | None:
    """Centroid offsets and widths of the partly occupied cells of ``occ`` (see
    :class:`PartialCells`), from the exact in-plane moments of each contour's pixels and the
    z extent of each slab within the cell. Cells occupied less than :data:`SLIVER` are emptied
    first (in ``occ.values``)."""
    from rtqa.geometry.raster import FULL_MOMENTS

    values = occ.values
    _, ny, nx = values.shape
    flat = np.flatnonzero((values > 0) & (values < WHOLE))
    cells = values.reshape(-1)  # a view: values is contiguous
    sliver = cells[flat] < SLIVER
    if sliver.any():  # rounding where a contour edge meets a cell edge: empty cells
        cells[flat[sliver]] = 0.0
        flat = flat[~sliver]
    if flat.size == 0:
        return None
    kk = flat // (ny * nx)
    rest = flat - kk * (ny * nx)
    # expand: every (cell, slab) pair sharing the cell's z
    order = np.argsort(pair_k, kind="stable")
    pair_k, pair_p = pair_k[order], pair_p[order]
    first = np.searchsorted(kk, pair_k, side="left")
    last = np.searchsorted(kk, pair_k, side="right")
    count = last - first
    n = int(count.sum())
    if n == 0:
        return None
    pair = np.repeat(np.arange(pair_k.size), count)
    cell = first[pair] + (np.arange(n) - np.repeat(np.cumsum(count) - count, count))
    p = pair_p[pair]
    k0 = occ.offset[0]
    ze = occ.lattice.z_edges_mm
    k = kk[cell] + k0
    zl, zh = ze[k], ze[k + 1]
    h = zh - zl
    za = (np.maximum(zl, occ.slabs.lo_mm[p]) - zl) / h - 0.5
    zb = (np.minimum(zh, occ.slabs.hi_mm[p]) - zl) / h - 0.5
    t = np.clip(zb - za, 0.0, None)
    zb = za + t
    # in-plane moments of the slab's contour at the cell's pixel
    key = which[p] * (ny * nx) + rest[cell]
    # moments: a boundary pixel's own, FULL_MOMENTS for a whole pixel, else 0 (rows of ``table``)
    nk = cov.key.size
    table = np.vstack([cov.moments.reshape(nk, 5), FULL_MOMENTS, np.zeros(5)]).T.copy()
    row = np.where(cov.fraction.reshape(-1)[key] >= WHOLE, nk, nk + 1)
    if nk:
        at = np.minimum(np.searchsorted(cov.key, key), nk - 1)
        hit = cov.key[at] == key
        row[hit] = at[hit]
    mom = [table[c].take(row) for c in range(5)]
    m = np.empty((flat.size, 7))
    m[:, 0] = np.bincount(cell, weights=mom[0] * t, minlength=flat.size)
    m[:, 1] = np.bincount(cell, weights=mom[1] * t, minlength=flat.size)
    m[:, 2] = np.bincount(cell, weights=mom[2] * t, minlength=flat.size)
    m[:, 3] = np.bincount(cell, weights=mom[0] * (zb * zb - za * za) / 2, minlength=flat.size)
    m[:, 4] = np.bincount(cell, weights=mom[3] * t, minlength=flat.size)
    m[:, 5] = np.bincount(cell, weights=mom[4] * t, minlength=flat.size)
    z3 = zb * zb * zb - za * za * za  # not **3: numpy's power is far slower
    m[:, 6] = np.bincount(cell, weights=mom[0] * z3 / 3, minlength=flat.size)
    m0 = np.where(m[:, 0] > 0, m[:, 0], 1.0)
    mean = m[:, 1:4] / m0[:, None]
    # the centroid of any part of a cell lies in the cell: where the part is a sliver whose
    # moments are mostly rounding (area ~1e-20 of the cell), the ratio may not
    np.clip(mean, -0.5, 0.5, out=mean)
    var = np.clip(m[:, 4:7] / m0[:, None] - mean**2, 0.0, 1.0 / 12.0)
    lat = occ.lattice
    size = np.empty((flat.size, 3))
    size[:, 0], size[:, 1] = lat.dx, lat.dy
    size[:, 2] = lat.dz[kk + k0]
    empty = m[:, 0] <= 0
    mean[empty] = 0.0
    var[empty] = 1.0 / 12.0
    return PartialCells(flat, mean * size, np.sqrt(12.0 * var) * size)


def _index_range(edges: np.ndarray, lo: float, hi: float, pad: int) -> tuple[int, int]:
    """Cells of ``edges`` overlapping [lo, hi], padded by ``pad`` cells, clipped to the lattice."""
    n = edges.size - 1
    a = int(np.searchsorted(edges, lo, side="right")) - 1 - pad
    b = int(np.searchsorted(edges, hi, side="left")) + pad
    return max(a, 0), min(b, n)


def _limit_cells(factors, slabs: SlabStack, grid: DoseGrid) -> tuple[int, int, int]:
    """Reduce the factors evenly until the bounding box holds at most MAX_CELLS cells."""
    xmin, ymin, zmin, xmax, ymax, zmax = slabs.bounds_mm
    dx, dy, _ = grid.spacing_mm
    dz = float(np.median(np.diff(grid.z_mm))) if grid.z_mm.size > 1 else min(dx, dy)
    voxels = (
        ((xmax - xmin) / (dx or 1.0) + 2)
        * ((ymax - ymin) / (dy or 1.0) + 2)
        * ((zmax - zmin) / (dz or 1.0) + 2)
    )
    f = list(factors)
    while voxels * f[0] * f[1] * f[2] > MAX_CELLS and max(f) > 1:
        f = [max(x - 1, 1) if x == max(f) else x for x in f]
    return tuple(f)  # type: ignore[return-value]


def sample_doses(occ: Occupancy, grid: DoseGrid, chunk: int = 250_000):
    """Doses (Gy), volumes (cc) and dose spreads (Gy) of the occupied cells of ``occ``, in the
    order of ``np.nonzero(occ.values)``.

    The dose is trilinear in the dose grid, clamped (not extrapolated) in the outer half voxel.
    A whole cell is sampled at its centre; a partly occupied cell (:class:`PartialCells`) at the
    centroid of its occupied part. The spread of a sample is
    ``sqrt(sum_a (D(p + w_a/2) - D(p - w_a/2))^2)`` over the three axes, ``w_a`` the cell size
    (whole cells) or the width of the occupied part along ``a`` (partial cells): the width of
    the uniform distribution with the variance of a linear dose over the occupied part (exact
    when the gradient lies along an axis, and when a plane perpendicular to it cuts the cell);
    see :class:`rtqa.dvh.core.Dvh`. Whole cells are interpolated axis by axis over blocks of
    lattice planes (separable trilinear), partial cells point by point. Where every cell centre
    is a dose-grid node (factor 1 on every axis, locally even frames), the same interpolation
    reduces to a node value and to differences of neighbouring nodes (:func:`_node_axes`).
    A sample's interval ``dose -/+ spread / 2`` is kept within the lowest and highest dose-grid
    node around its cell (:mod:`rtqa.geometry.node_range`; a trilinear field over the cell
    never leaves that range). A whole cell's interval is clipped there and the sample becomes
    the clipped interval, its middle as the dose and its width as the spread: where the dose is
    linear across the cell nothing is clipped; at a kink (a plateau edge, the clamped outer
    half voxel, a field falling to 0 Gy) the interval no longer reaches beyond the dose present
    there, and its middle is the exact mean over the cell of a field kinked at a node along one
    axis (e.g. nodes 16, 20, 20 Gy: 20 -/+ 1 becomes 19.5 -/+ 0.5). A partial cell's interval
    is narrowed about its dose instead (its dose at the centroid stays exact in a linear field,
    where only the width, uniform-equivalent, can reach past the cell). A spread is also capped
    at twice its dose where the dose is not negative."""
    return _sample(occ, grid, chunk, nodes=_node_axes(occ, grid))


def _sample(occ: Occupancy, grid: DoseGrid, chunk: int, nodes, extra: int = 0):
    """:func:`sample_doses`, whole cells by node differences when ``nodes`` (from
    :func:`_node_axes`) is given, else by separable interpolation; ``extra`` entries (left
    unset) follow the samples in each array."""
    nz, ny, nx = occ.values.shape
    cell = occ.cell_volumes_mm3()[:, 0, 0] / 1000.0
    n = int(np.count_nonzero(occ.values))
    doses, vols, spreads = np.empty(n + extra), np.empty(n + extra), np.empty(n + extra)
    whole = _NodeCells(occ, grid, nodes) if nodes else _InterpolatedCells(occ, grid)
    part = occ.partial
    planes = max(1, chunk // max(ny * nx, 1))
    at = 0
    for ks in range(0, nz, planes):
        ke = min(ks + planes, nz)
        vals = occ.values[ks:ke]
        mask = vals > 0
        per_plane = np.count_nonzero(mask.reshape(ke - ks, -1), axis=1)
        m = int(per_plane.sum())
        if m == 0:
            continue
        out = slice(at, at + m)
        vols[out] = vals[mask]
        vols[out] *= np.repeat(cell[ks:ke], per_plane)
        doses[out], spreads[out] = whole(ks, ke, mask)
        partial_here = None  # positions of the partial cells among this block's samples
        if part is not None:
            base = ks * ny * nx
            lo_i, hi_i = np.searchsorted(part.index, [base, ke * ny * nx])
            if hi_i > lo_i:
                flat = np.flatnonzero(mask) + base
                sel = slice(lo_i, hi_i)
                pos = at + np.searchsorted(flat, part.index[sel])
                d_p, s_p = _point_samples(occ, grid, part, sel)
                doses[pos] = d_p
                spreads[pos] = s_p
                partial_here = pos - at
        clip_intervals(whole.ranges(ks, ke), mask, doses[out], spreads[out], partial_here)
        # a dose field that is nowhere negative: no sample's interval reaches below 0 Gy (per
        # block: block-sized temporaries)
        d, s = doses[out], spreads[out]
        np.minimum(s, 2.0 * d, out=s, where=d >= 0)
        at += m
    return doses, vols, spreads


class _InterpolatedCells:
    """Dose and spread at the centres of the occupied cells of a block of lattice planes, by
    separable trilinear interpolation (any lattice)."""

    def __init__(self, occ: Occupancy, grid: DoseGrid):
        k0, j0, i0 = occ.offset
        nz, ny, nx = occ.values.shape
        lat = occ.lattice
        x, y = lat.x_mm[i0 : i0 + nx], lat.y_mm[j0 : j0 + ny]
        zc, half_dz = lat.z_mm[k0 : k0 + nz], 0.5 * lat.dz[k0 : k0 + nz]
        wx = [_axis_weights(grid.x_mm, x + s * lat.dx / 2) for s in (0, -1, 1)]
        wy = [_axis_weights(grid.y_mm, y + s * lat.dy / 2) for s in (0, -1, 1)]
        self.wz = [_axis_weights(grid.z_mm, zc + s * half_dz) for s in (0, -1, 1)]
        xs = _span(wx)
        ys = _span(wy)
        self.block = grid.dose_gy[:, ys, xs]
        self.wx = [_rebase(w, xs.start) for w in wx]
        self.wy = [_rebase(w, ys.start) for w in wy]
        self.ranges = NodeRanges.of(occ, grid)  # (ks, ke) -> node ranges of those planes

    def __call__(self, ks: int, ke: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wx, wy = self.wx, self.wy
        zw = [tuple(a[ks:ke] for a in w) for w in self.wz]
        zs = _span(zw)
        sub = self.block[zs]
        zw = [_rebase(w, zs.start) for w in zw]
        dz_c, dz_lo, dz_hi = (_interp(sub, 0, w) for w in zw)
        dzy_c = _interp(dz_c, 1, wy[0])
        dose = _interp(dzy_c, 2, wx[0])[mask]
        var = (_interp(dzy_c, 2, wx[2]) - _interp(dzy_c, 2, wx[1]))[mask] ** 2
        del dzy_c
        var += (
            _interp(_interp(dz_c, 1, wy[2]), 2, wx[0]) - _interp(_interp(dz_c, 1, wy[1]), 2, wx[0])
        )[mask] ** 2
        del dz_c
        var += (
            _interp(_interp(dz_hi, 1, wy[0]), 2, wx[0])
            - _interp(_interp(dz_lo, 1, wy[0]), 2, wx[0])
        )[mask] ** 2
        return dose, np.sqrt(var)


def _node_axes(occ: Occupancy, grid: DoseGrid):
    """Per axis (z, y, x) ``(g0, below, above)`` when the centre of lattice cell ``c`` along
    every axis is dose-grid node ``g0 + c`` (so :func:`_interp` takes the node value there) and
    the half-cell positions either side lie within the neighbouring node intervals; else None.

    Then ``D(p + w/2) - D(p - w/2)`` along an axis is exactly (up to rounding)
    ``below[c] * (D[g] - D[g-1]) + above[c] * (D[g+1] - D[g])``, the same linear interpolation
    with the weights of :func:`_axis_weights`, clamping included (at a grid edge the missing
    difference has weight 0)."""
    if occ.values.size == 0 or grid.dose_gy.dtype != np.float64:
        return None
    k0, j0, i0 = occ.offset
    nz, ny, nx = occ.values.shape
    lat = occ.lattice
    x, y = lat.x_mm[i0 : i0 + nx], lat.y_mm[j0 : j0 + ny]
    zc, half_dz = lat.z_mm[k0 : k0 + nz], 0.5 * lat.dz[k0 : k0 + nz]
    axes = (
        _node_axis(grid.z_mm, zc, half_dz),
        _node_axis(grid.y_mm, y, lat.dy / 2),
        _node_axis(grid.x_mm, x, lat.dx / 2),
    )
    return None if any(a is None for a in axes) else axes


def _node_axis(centres: np.ndarray, at: np.ndarray, half):
    """``(g0, below, above)`` of :func:`_node_axes` for one axis, or None."""
    lo, hi, t = _axis_weights(centres, at)
    if float(np.max(np.minimum(t, 1.0 - t))) > 1e-12:  # the test of _interp for a take
        return None
    g = np.where(t < 0.5, lo, hi)
    if not np.array_equal(g, g[0] + np.arange(g.size)):
        return None
    below, above = np.zeros(g.size), np.zeros(g.size)
    for sign, pos in ((1.0, at + half), (-1.0, at - half)):
        lo, hi, t = _axis_weights(centres, pos)
        # D(pos) - D[g] = -(1 - t) (D[g] - D[g-1]) on [g-1, g]; t (D[g+1] - D[g]) on [g, g+1]
        left = (lo == g - 1) & (hi == g)
        right = (lo == g) & (hi == g + 1)
        if not np.all(left | right | ((lo == g) & (hi == g))):
            return None
        below += sign * np.where(left, t - 1.0, 0.0)
        above += sign * np.where(right, t, 0.0)
    return int(g[0]), below, above


class _NodeCells:
    """Dose and spread at the centres of the occupied cells of a block of lattice planes when
    the centres are dose-grid nodes (:func:`_node_axes`): node values and weighted differences
    of neighbouring nodes, with the grid's outer nodes repeated beyond its edges (there the
    difference is 0, as its weight is). Where both weights are one number ``h`` along an axis
    (``h = 1/2`` on an even grid), the term is ``h * (D[g+1] - D[g-1])``."""

    def __init__(self, occ: Occupancy, grid: DoseGrid, nodes, symmetric: bool = True):
        self.dose = grid.dose_gy
        self.shape = occ.values.shape
        self.axes = []
        for axis, (g0, below, above) in enumerate(nodes):
            n = below.size
            # the differences beyond the grid's edges vanish: their weights do not matter
            b, a = below.copy(), above.copy()
            if g0 == 0:
                b[0] = a[0]
            if g0 + n == grid.dose_gy.shape[axis]:
                a[-1] = b[-1]
            h = float(b[0]) if symmetric and np.all(b == b[0]) and np.all(a == b[0]) else None
            self.axes.append((g0, below, above, h))

    def _block(self, ks: int, ke: int) -> np.ndarray:
        """The nodes of lattice planes ``ks:ke`` with a rim of one node on every side."""
        _, ny, nx = self.shape
        start = (self.axes[0][0] + ks, self.axes[1][0], self.axes[2][0])
        return _block_with_rim(self.dose, start, (ke - ks, ny, nx))

    def ranges(self, ks: int, ke: int) -> tuple[np.ndarray, np.ndarray]:
        """Node ranges of the cells of lattice planes ``ks:ke``: the 3 x 3 x 3 nodes around
        each cell's node (:func:`~rtqa.geometry.node_range.node_range_of_block`)."""
        return node_range_of_block(self._block(ks, ke))

    def __call__(self, ks: int, ke: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        block = self._block(ks, ke)
        dose = block[1:-1, 1:-1, 1:-1][mask]
        var = np.zeros(dose.size)
        for axis in (2, 1, 0):
            _, below, above, h = self.axes[axis]
            if axis == 0:
                below, above = below[ks:ke], above[ks:ke]
            lower = [slice(1, -1)] * 3
            upper = [slice(1, -1)] * 3
            if h is not None:
                lower[axis], upper[axis] = slice(0, -2), slice(2, None)
                term = (block[tuple(upper)] - block[tuple(lower)])[mask]
                term *= h
            else:
                shape = [1, 1, 1]
                shape[axis] = below.size
                rim = [slice(1, -1)] * 3
                rim[axis] = slice(None)
                step = np.diff(block[tuple(rim)], axis=axis)  # D[g+1] - D[g], g = -1 .. n - 1
                lower, upper = [slice(None)] * 3, [slice(None)] * 3
                lower[axis], upper[axis] = slice(0, -1), slice(1, None)
                term = step[tuple(lower)] * below.reshape(shape)
                term += step[tuple(upper)] * above.reshape(shape)
                term = term[mask]
            term *= term
            var += term
        return dose, np.sqrt(var)


def _block_with_rim(dose: np.ndarray, start, size) -> np.ndarray:
    """``dose[start : start + size]`` with one more node on every side, the outer nodes of the
    grid repeated where the block reaches the grid's edge (the clamping of the interpolation)."""
    lo = [max(s - 1, 0) for s in start]
    hi = [min(s + n + 1, d) for s, n, d in zip(start, size, dose.shape, strict=True)]
    block = dose[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    pad = [(a - (s - 1), (s + n + 1) - b) for s, n, a, b in zip(start, size, lo, hi, strict=True)]
    if any(p or q for p, q in pad):
        block = np.pad(block, pad, mode="edge")
    return block


def _point_samples(occ: Occupancy, grid: DoseGrid, part: PartialCells, sel: slice):
    """Dose and spread of the partial cells ``part[sel]`` at the centroid of their part: the
    centre and the six half-width points of every cell, interpolated in one pass."""
    _, ny, nx = occ.values.shape
    k0, j0, i0 = occ.offset
    idx = part.index[sel]
    n = idx.size
    kk = idx // (ny * nx)
    jj = (idx // nx) % ny
    ii = idx % nx
    lat = occ.lattice
    half = 0.5 * part.width_mm[sel]
    off = part.offset_mm[sel]
    x = lat.x_mm[ii + i0] + off[:, 0]
    y = lat.y_mm[jj + j0] + off[:, 1]
    z = lat.z_mm[kk + k0] + off[:, 2]
    # weights per axis at the centre, centre - half and centre + half (entries 0, n, 2n)
    ax = _axis_weights(grid.x_mm, np.concatenate([x, x - half[:, 0], x + half[:, 0]]))
    ay = _axis_weights(grid.y_mm, np.concatenate([y, y - half[:, 1], y + half[:, 1]]))
    az = _axis_weights(grid.z_mm, np.concatenate([z, z - half[:, 2], z + half[:, 2]]))
    return _centre_and_spread(grid.dose_gy, az, ay, ax, n)


def _centre_and_spread(dose: np.ndarray, az, ay, ax, n: int):
    """Trilinear dose at ``n`` centres and the spread ``sqrt(sum_a (D(+a) - D(-a))^2)`` from
    per-axis weights whose entries ``0:n``, ``n:2n``, ``2n:3n`` are the centre, minus and plus
    positions. Along an axis where both half-width points lie in the centre's grid interval the
    field is linear in that axis, so the difference is the weight difference times the slope
    from the centre's eight corners; the other points are interpolated on their own."""
    c, lo, hi = slice(0, n), slice(n, 2 * n), slice(2 * n, 3 * n)
    (kl, kh, wz), (jl, jh, wy), (il, ih, wx) = (tuple(a[c] for a in w) for w in (az, ay, ax))
    _, ny, nx = dose.shape
    flat = dose.reshape(-1) if dose.flags.c_contiguous else None

    def at(kk, jj, ii):
        return dose[kk, jj, ii] if flat is None else flat[(kk * ny + jj) * nx + ii]

    # the eight corners: q[z][y] = (value at il, value at ih)
    q = [[(at(kk, jj, il), at(kk, jj, ih)) for jj in (jl, jh)] for kk in (kl, kh)]
    row = [[a + wx * (b - a) for a, b in q[z]] for z in (0, 1)]  # along x, per (z, y)
    plane = [r[0] + wy * (r[1] - r[0]) for r in row]  # along x and y, per z
    dose_c = plane[0] + wz * (plane[1] - plane[0])
    slope = {
        2: sum(
            fz * fy * (q[z][y][1] - q[z][y][0])
            for z, fz in ((0, 1 - wz), (1, wz))
            for y, fy in ((0, 1 - wy), (1, wy))
        ),
        1: (1 - wz) * (row[0][1] - row[0][0]) + wz * (row[1][1] - row[1][0]),
        0: plane[1] - plane[0],
    }
    var = np.zeros(n)
    weights = (az, ay, ax)
    for axis in (2, 1, 0):
        low, _, t = weights[axis]
        diff = (t[hi] - t[lo]) * slope[axis]
        other = np.flatnonzero((low[hi] != low[c]) | (low[lo] != low[c]))
        if other.size:
            # the other two axes' weights are the centre's at both ends
            sel = [
                None if ax_ == axis else tuple(a[c][other] for a in w)
                for ax_, w in enumerate(weights)
            ]
            ends = []
            for part in (hi, lo):
                sel[axis] = tuple(a[part][other] for a in weights[axis])
                ends.append(_trilinear(dose, *sel))
            diff[other] = ends[0] - ends[1]
        var += diff * diff
    return dose_c, np.sqrt(var)


def _span(weights) -> slice:
    """The index range the interpolation weights reach."""
    lo = min(int(w[0].min()) for w in weights) if weights[0][0].size else 0
    hi = max(int(w[1].max()) for w in weights) if weights[0][0].size else 0
    return slice(lo, hi + 1)


def _rebase(w, start: int):
    return (w[0] - start, w[1] - start, w[2])


def _interp(arr: np.ndarray, axis: int, w) -> np.ndarray:
    """Linear interpolation of ``arr`` along ``axis`` at the positions of weights ``w``."""
    lo, hi, t = w
    shape = [1, 1, 1]
    shape[axis] = t.size
    if t.size and float(np.max(np.minimum(t, 1.0 - t))) <= 1e-12:
        return np.take(arr, np.where(t < 0.5, lo, hi), axis=axis)
    a = np.take(arr, lo, axis=axis)
    b = np.take(arr, hi, axis=axis)
    b -= a
    b *= t.reshape(shape)
    a += b
    return a


def _axis_weights(centres: np.ndarray, at: np.ndarray):
    """Lower index, upper index and upper weight for linear interpolation (clamped)."""
    n = centres.size
    if n == 1:
        z = np.zeros(at.size, dtype=np.int64)
        return z, z, np.zeros(at.size)
    lo = np.clip(np.searchsorted(centres, at, side="right") - 1, 0, n - 2)
    w = np.clip((at - centres[lo]) / (centres[lo + 1] - centres[lo]), 0.0, 1.0)
    return lo, lo + 1, w


#: A whole cell centred on a dose-grid node is split into its octants where the dose's second
#: difference at the node along some axis exceeds this fraction of the grid's maximum dose.
KINK_FRACTION = 5e-3


def split_samples(occ: Occupancy, grid: DoseGrid, chunk: int = 250_000):
    """:func:`sample_doses` with the whole cells centred on a dose-grid node where the dose
    bends split into octants, in one array each (doses Gy, volumes cc, spreads Gy): a split
    cell's sample is its first octant, its other seven follow the samples of the occupied cells.

    A cell of a lattice that does not split the dose voxels (factors 1, 1, 1; e.g. a large
    organ) is centred on a node, where the trilinear field changes slope along every axis:
    there the uniform-equivalent spread of :func:`sample_doses` (exact for a dose linear across
    the cell) misdescribes the cell, by up to a quarter of the node's second difference (a
    peak's spread is 0; bone_1fx's body V20Gy read +5.8 %, lung_5fx's right lung D2% -1.6 %).
    Each of its octants lies inside one interpolation cell, where the field is trilinear: an
    octant is sampled at its centre with the spread of :func:`sample_doses`. Cells whose
    largest second difference (Gy, along x, y or z) exceeds :data:`KINK_FRACTION` of the grid's
    maximum dose are split; none on a finer lattice, off the nodes, or without a bend."""
    kinks = _kinks(occ, grid)
    extra = 0 if kinks is None else kinks[2][0].size
    samples = _sample(occ, grid, chunk, nodes=_node_axes(occ, grid), extra=extra)
    if kinks is not None:
        at, first, rest = kinks
        n = samples[0].size - extra
        for out, head, tail in zip(samples, first, rest, strict=True):
            out[at] = head
            out[n:] = tail
    return samples


def _kinks(occ: Occupancy, grid: DoseGrid):
    """The cells :func:`split_samples` splits: their positions in the order of
    ``np.nonzero(occ.values)``, their first octants and the other seven (doses Gy, volumes
    cc, spreads Gy each); None where nothing is split."""
    if occ.values.size == 0 or tuple(occ.lattice.factors) != (1, 1, 1):
        return None
    nodes = _node_axes(occ, grid)
    if nodes is None:
        return None
    nz, ny, nx = occ.values.shape
    tau = KINK_FRACTION * grid.max_gy
    lat = occ.lattice
    k0 = occ.offset[0]
    ze, zc = lat.z_edges_mm, lat.z_mm
    quarter = lat.dx / 2 * lat.dy / 2 / 1000.0  # cc per mm of octant height
    partial = occ.partial.index if occ.partial is not None else np.zeros(0, dtype=np.int64)
    out_at: list[np.ndarray] = []
    out_first: tuple[list, list, list] = ([], [], [])
    out_d, out_v, out_s = [], [], []
    before = 0  # occupied cells in the planes already done: the sample order's offset
    planes = max(1, KINK_CELLS // max(ny * nx, 1))
    for ks in range(0, nz, planes):
        ke = min(ks + planes, nz)
        values = occ.values[ks:ke]
        occupied = np.flatnonzero(values != 0)
        # the nodes of these planes with a rim of one (the grid's edge nodes repeated where the
        # block reaches the edge, as the interpolation clamps)
        start = (nodes[0][0] + ks, nodes[1][0], nodes[2][0])
        block = _block_with_rim(grid.dose_gy, start, (ke - ks, ny, nx))
        split = _bent(block, tau)
        split &= values >= WHOLE
        which = np.searchsorted(occupied, np.flatnonzero(split))
        if partial.size and which.size:  # partial cells have samples of their own
            cells = occupied[which] + ks * ny * nx
            at = np.minimum(np.searchsorted(partial, cells), partial.size - 1)
            which = which[partial[at] != cells]
        if which.size:
            k, j, i = np.unravel_index(occupied[which], values.shape)
            kk = k + ks + k0
            heights = (zc[kk] - ze[kk], ze[kk + 1] - zc[kk])  # lower, upper octant (mm)
            octants = _octants(block, (k, j, i), heights, quarter)
            out_at.append(before + which)
            for (first, *rest), heads, out in zip(
                octants, out_first, (out_d, out_v, out_s), strict=True
            ):
                heads.append(first)
                out.extend(rest)
        before += occupied.size
    if not out_d:
        return None
    rest = (np.concatenate(out_d), np.concatenate(out_v), np.concatenate(out_s))
    first = tuple(np.concatenate(h) for h in out_first)
    return np.concatenate(out_at), first, rest


def _bent(block: np.ndarray, tau: float) -> np.ndarray:
    """Whether the second difference (Gy) along some axis at each node of a block with a rim
    of one node exceeds ``tau`` (Gy): a boolean array the shape of the block less its rim."""
    nz, ny, nx = (n - 2 for n in block.shape)
    out = np.empty((nz, ny, nx), dtype=bool)
    planes = max(1, BENT_CELLS // max(ny * nx, 1))
    largest = np.empty((min(planes, nz), ny, nx))
    second = np.empty_like(largest)
    for ks in range(0, nz, planes):
        ke = min(ks + planes, nz)
        part = block[ks : ke + 2]
        core = part[1:-1, 1:-1, 1:-1]
        big, step = largest[: ke - ks], second[: ke - ks]
        big.fill(0.0)
        for lo, hi in (
            (part[:-2, 1:-1, 1:-1], part[2:, 1:-1, 1:-1]),
            (part[1:-1, :-2, 1:-1], part[1:-1, 2:, 1:-1]),
            (part[1:-1, 1:-1, :-2], part[1:-1, 1:-1, 2:]),
        ):
            np.add(lo, hi, out=step)
            step -= core
            step -= core
            np.abs(step, out=step)
            np.maximum(big, step, out=big)
        np.greater(big, tau, out=out[ks:ke])
    return out


def _octants(block, cells, heights, quarter) -> tuple[list, list, list]:
    """The octant samples of ``cells`` (indices into ``block`` less its rim): per octant (z,
    y, x order, lower first) the doses, volumes and spreads of every cell, the field taken from
    each cell's 3 x 3 x 3 nodes at the 5 points -1/2, -1/4, 0, 1/4, 1/2 of the cell along each
    axis (octant centres and faces), separably."""
    k, j, i = cells
    step = np.arange(3)
    parts: list[list[np.ndarray]] = [[] for _ in range(24)]
    for s in range(0, k.size, OCTANT_CHUNK):
        c = slice(s, s + OCTANT_CHUNK)
        nodes = block[
            (k[c, None] + step)[:, :, None, None],
            (j[c, None] + step)[:, None, :, None],
            (i[c, None] + step)[:, None, None, :],
        ]
        v = _five_points(nodes)
        octant = 0
        for oz in (0, 1):
            height = heights[oz][c]
            for oy in (0, 1):
                for ox in (0, 1):
                    cz, cy, cx = 1 + 2 * oz, 1 + 2 * oy, 1 + 2 * ox
                    along_z = v[:, 2 * oz + 2, cy, cx] - v[:, 2 * oz, cy, cx]
                    along_y = v[:, cz, 2 * oy + 2, cx] - v[:, cz, 2 * oy, cx]
                    along_x = v[:, cz, cy, 2 * ox + 2] - v[:, cz, cy, 2 * ox]
                    parts[octant].append(v[:, cz, cy, cx])
                    parts[8 + octant].append(quarter * height)
                    parts[16 + octant].append(np.sqrt(along_z**2 + along_y**2 + along_x**2))
                    octant += 1
    joined = [np.concatenate(p) for p in parts]
    return joined[:8], joined[8:16], joined[16:]


def _five_points(nodes: np.ndarray) -> np.ndarray:
    """The field (Gy) at the 5 x 5 x 5 points of :data:`_FIVE` of each cell from its 3 x 3 x 3
    nodes, ``(n, 3, 3, 3) -> (n, 5, 5, 5)`` in (z, y, x) order: along x, then y, then z, one
    matrix product each, for :data:`PRODUCT_CELLS` cells at a time."""
    out = np.empty((nodes.shape[0], 5, 5, 5))
    for s in range(0, nodes.shape[0], PRODUCT_CELLS):
        c = slice(s, s + PRODUCT_CELLS)
        v = np.tensordot(nodes[c], _FIVE, axes=([3], [1]))  # (n, z, y, x5)
        v = np.tensordot(v, _FIVE, axes=([2], [1]))  # (n, z, x5, y5)
        v = np.tensordot(v, _FIVE, axes=([1], [1]))  # (n, x5, y5, z5)
        out[c] = v.transpose(0, 3, 2, 1)
    return out


#: Linear interpolation weights of the three nodes g-1, g, g+1 at -1/2, -1/4, 0, 1/4, 1/2 of a
#: node-centred cell (in fractions of the half-steps to the neighbouring nodes, so that uneven
#: steps take the same weights).
_FIVE = np.array(
    [
        [0.5, 0.5, 0.0],
        [0.25, 0.75, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.75, 0.25],
        [0.0, 0.5, 0.5],
    ]
)
#: Cells split into octants at a time (bounds the memory: 125 values each), and cells whose
#: bend is measured at a time (whole planes).
OCTANT_CHUNK = 20_000
KINK_CELLS = 1_000_000
#: Cells whose 5 x 5 x 5 points are one matrix product: at most 375 multiply-adds per cell keep
#: each product small enough for BLAS to run it on one thread (its threads would contend for the
#: cores with the caller and with other processes).
PRODUCT_CELLS = 512
#: Nodes whose second differences are taken at a time (the temporaries stay in cache).
BENT_CELLS = 1 << 16


def dose_at_points(grid: DoseGrid, pts: np.ndarray) -> np.ndarray:
    """Dose (Gy) of ``grid``'s trilinear field at points ``(n, 3)`` (x, y, z mm), clamped (not
    extrapolated) beyond the outermost nodes."""
    return _trilinear(
        np.asarray(grid.dose_gy, dtype=float),
        _axis_weights(grid.z_mm, pts[:, 2]),
        _axis_weights(grid.y_mm, pts[:, 1]),
        _axis_weights(grid.x_mm, pts[:, 0]),
    )


def trilinear(dose, az, ay, ax, k, j, i) -> np.ndarray:
    """Trilinear interpolation of ``dose`` at lattice cells (k, j, i) given per-axis weights."""
    return _trilinear(
        dose,
        (az[0][k], az[1][k], az[2][k]),
        (ay[0][j], ay[1][j], ay[2][j]),
        (ax[0][i], ax[1][i], ax[2][i]),
    )


def _trilinear(dose, az, ay, ax) -> np.ndarray:
    """Trilinear interpolation of ``dose`` at points with weights ``(lower, upper, t)`` per axis
    (one entry per point)."""
    kl, kh, wz = az
    jl, jh, wy = ay
    il, ih, wx = ax
    _, ny, nx = dose.shape
    flat = dose.reshape(-1) if dose.flags.c_contiguous else None
    out = np.zeros(kl.size)
    wx0 = 1 - wx
    for kk, fz in ((kl, 1 - wz), (kh, wz)):
        for jj, fy in ((jl, 1 - wy), (jh, wy)):
            fzy = fz * fy
            if flat is None:
                lo, hi = dose[kk, jj, il], dose[kk, jj, ih]
            else:
                row = (kk * ny + jj) * nx
                lo, hi = flat[row + il], flat[row + ih]
            out += fzy * (wx0 * lo + wx * hi)
    return out


def with_values(occ: Occupancy, values: np.ndarray, **changes) -> Occupancy:
    """A copy of ``occ`` with new ``values`` (same lattice and offset; the partial-cell
    centroids no longer apply unless given)."""
    changes.setdefault("partial", None)
    return replace(occ, values=values.astype(np.float32), **changes)
