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
* Factors are chosen per structure (:func:`choose_factors`) so that the structure holds at least
  :data:`MIN_SAMPLES` cells (about isotropic cells; at most :data:`MAX_FACTOR` per axis): small
  SBRT targets are sampled finely, a body outline stays on the dose grid itself (factor 1, exact
  areas at the boundary voxels only).
* Derived structures (fuzzy-set rules on the fractions): union ``max(a, b)``, intersection
  ``min(a, b)``, difference ``max(a - b, 0)``. They are exact where one structure contains the
  other at a cell (lungs minus GTV, body minus PTV). ``outside_cc`` of a derived structure is an
  estimate (an upper bound for union and difference, the smaller for intersection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from rtqa.geometry.slabs import SlabStack, slab_stack
from rtqa.model import DoseGrid, Roi

#: Minimum number of cells a structure is sampled with (when MAX_FACTOR allows).
MIN_SAMPLES = 20_000
#: Largest subdivision of a dose voxel along one axis.
MAX_FACTOR = 16
#: Largest number of lattice cells in a structure's bounding box (bounds memory).
MAX_CELLS = 30_000_000


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

    # ------------------------------------------------------------ measures

    def cell_volumes_mm3(self) -> np.ndarray:
        """Volume (mm^3) of the cells of ``values``, broadcastable to its shape (nz, 1, 1)."""
        k0 = self.offset[0]
        dz = self.lattice.dz[k0 : k0 + self.values.shape[0]]
        return (dz * self.lattice.dx * self.lattice.dy)[:, None, None]

    @property
    def volume_cc(self) -> float:
        """Volume (cc) inside the dose grid."""
        return float(np.sum(self.values * self.cell_volumes_mm3()) / 1000.0)

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
    from rtqa.geometry.raster import pixel_fractions

    values = np.zeros((k1 - k0, j1 - j0, i1 - i0), dtype=np.float32)
    zl, zh = ze[k0:k1], ze[k0 + 1 : k1 + 1]
    for geom, lo, hi in zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True):
        overlap = np.clip(np.minimum(zh, hi) - np.maximum(zl, lo), 0.0, None) / (zh - zl)
        ks = np.nonzero(overlap > 0)[0]
        if ks.size == 0 or geom.is_empty:
            continue
        frac = pixel_fractions(geom, xe[i0 : i1 + 1], ye[j0 : j1 + 1]).astype(np.float32)
        values[ks] += overlap[ks, None, None].astype(np.float32) * frac[None]
    np.clip(values, 0.0, 1.0, out=values)
    occ = Occupancy(lat, (k0, j0, i0), values, 0.0, label, slabs)
    occ.outside_cc = max(total_cc - occ.volume_cc, 0.0)
    if occ.outside_cc < 1e-9 * max(total_cc, 1.0):
        occ.outside_cc = 0.0
    return occ


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


def sample_doses(occ: Occupancy, grid: DoseGrid, chunk: int = 1_000_000):
    """Doses (Gy, trilinear at the cell centres), volumes (cc) and dose spreads (Gy) of the
    occupied cells of ``occ``. The dose is clamped (not extrapolated) in the outer half voxel of
    the grid. The spread of a cell is ``sqrt(sum_a (D(c + h_a/2) - D(c - h_a/2))^2)`` over the
    three axes: the width of the uniform distribution with the variance of a linear dose over
    the cell (exact when the gradient lies along an axis); see :class:`rtqa.dvh.core.Dvh`."""
    k0, j0, i0 = occ.offset
    nz, ny, nx = occ.values.shape
    lat = occ.lattice
    x, y = lat.x_mm[i0 : i0 + nx], lat.y_mm[j0 : j0 + ny]
    zc, half_dz = lat.z_mm[k0 : k0 + nz], 0.5 * lat.dz[k0 : k0 + nz]
    centre = (
        _axis_weights(grid.z_mm, zc),
        _axis_weights(grid.y_mm, y),
        _axis_weights(grid.x_mm, x),
    )
    shifted = (
        (_axis_weights(grid.z_mm, zc - half_dz), _axis_weights(grid.z_mm, zc + half_dz)),
        (_axis_weights(grid.y_mm, y - lat.dy / 2), _axis_weights(grid.y_mm, y + lat.dy / 2)),
        (_axis_weights(grid.x_mm, x - lat.dx / 2), _axis_weights(grid.x_mm, x + lat.dx / 2)),
    )
    cell = occ.cell_volumes_mm3()[:, 0, 0] / 1000.0
    n = int(np.count_nonzero(occ.values))
    doses, vols, spreads = np.empty(n), np.empty(n), np.empty(n)
    planes = max(1, chunk // max(ny * nx, 1))
    at = 0
    for ks in range(0, nz, planes):
        kk, jj, ii = np.nonzero(occ.values[ks : ks + planes])
        kk = kk + ks
        m = kk.size
        if m == 0:
            continue
        out = slice(at, at + m)
        vols[out] = occ.values[kk, jj, ii] * cell[kk]
        doses[out] = trilinear(grid.dose_gy, *centre, kk, jj, ii)
        var = np.zeros(m)
        for axis in range(3):
            lo_w, hi_w = list(centre), list(centre)
            lo_w[axis], hi_w[axis] = shifted[axis]
            var += (
                trilinear(grid.dose_gy, *hi_w, kk, jj, ii)
                - trilinear(grid.dose_gy, *lo_w, kk, jj, ii)
            ) ** 2
        spreads[out] = np.sqrt(var)
        at += m
    return doses, vols, spreads


def _axis_weights(centres: np.ndarray, at: np.ndarray):
    """Lower index, upper index and upper weight for linear interpolation (clamped)."""
    n = centres.size
    if n == 1:
        z = np.zeros(at.size, dtype=np.int64)
        return z, z, np.zeros(at.size)
    lo = np.clip(np.searchsorted(centres, at, side="right") - 1, 0, n - 2)
    w = np.clip((at - centres[lo]) / (centres[lo + 1] - centres[lo]), 0.0, 1.0)
    return lo, lo + 1, w


def trilinear(dose, az, ay, ax, k, j, i) -> np.ndarray:
    """Trilinear interpolation of ``dose`` at lattice cells (k, j, i) given per-axis weights."""
    kl, kh, wz = az[0][k], az[1][k], az[2][k]
    jl, jh, wy = ay[0][j], ay[1][j], ay[2][j]
    il, ih, wx = ax[0][i], ax[1][i], ax[2][i]
    out = np.zeros(k.size)
    for kk, fz in ((kl, 1 - wz), (kh, wz)):
        for jj, fy in ((jl, 1 - wy), (jh, wy)):
            fzy = fz * fy
            out += fzy * ((1 - wx) * dose[kk, jj, il] + wx * dose[kk, jj, ih])
    return out


def with_values(occ: Occupancy, values: np.ndarray, **changes) -> Occupancy:
    """A copy of ``occ`` with new ``values`` (same lattice and offset)."""
    return replace(occ, values=values.astype(np.float32), **changes)
