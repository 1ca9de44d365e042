"""Random structures and linear dose fields drawn from a seed, for accuracy runs against the
exact DVHs of :mod:`exact_dvh` (``accuracy_random.py``, ``tests/test_random_structures.py``).

A case is a structure of 2 to 15 planes (an ellipse, a rotated box, a star, a ring with a hole
or two blobs, of 2 to 50 mm, each plane scaled and moved a little; planes evenly spaced or
within 0.8-1.15 of one step, so that no step reads as a gap between parts), a dose grid of
1-4 mm in plane and 1-5 mm between frames, offset at random and reaching three voxels beyond
the structure in plane and five steps along z, and a dose linear along one axis (0.05-3 Gy/mm,
at least 1 Gy on the grid). Units: mm, Gy, cc. The same seed gives the same case everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import exact_dvh as ex
import numpy as np
import shapely
from shapely import affinity

from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi

SHAPES = ("ellipse", "box", "star", "ring", "two blobs")


@dataclass
class RandomCase:
    """A random structure, the nodes of a dose grid over it (x, y, z in mm) and a linear dose
    ``offset_gy + gradient_gy_per_mm * p[axis]``; ``rng`` goes on drawing for the case."""

    seed: int
    roi: Roi
    nodes: tuple[np.ndarray, np.ndarray, np.ndarray]
    axis: int
    offset_gy: float
    gradient_gy_per_mm: float
    scale_mm: float
    shape: str
    rng: np.random.Generator

    @property
    def gradient(self) -> np.ndarray:
        g = np.zeros(3)
        g[self.axis] = self.gradient_gy_per_mm
        return g


def _shape(rng: np.random.Generator, scale: float) -> tuple[str, shapely.Geometry]:
    kind = int(rng.integers(0, 5))
    cx, cy = rng.uniform(-scale, scale, 2) * 0.3
    if kind == 0:
        disc = shapely.Point(cx, cy).buffer(1.0, 32)
        geom = affinity.scale(disc, rng.uniform(0.3, 1) * scale, rng.uniform(0.3, 1) * scale)
    elif kind == 1:
        w, h = rng.uniform(0.2, 1, 2) * scale
        geom = affinity.rotate(shapely.box(cx - w, cy - h, cx + w, cy + h), rng.uniform(0, 180))
    elif kind == 2:
        n = int(rng.integers(5, 12))
        t = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.3, 0.8))
        r = r * scale * rng.uniform(0.4, 1)
        geom = shapely.Polygon(np.c_[cx + r * np.cos(t), cy + r * np.sin(t)])
    elif kind == 3:
        big = rng.uniform(0.4, 1) * scale
        hole = shapely.Point(cx + rng.uniform(-0.2, 0.2) * big, cy)
        geom = shapely.Point(cx, cy).buffer(big, 32)
        geom = geom.difference(hole.buffer(big * rng.uniform(0.2, 0.6), 32))
    else:
        left = shapely.Point(cx - scale * 0.5, cy).buffer(scale * rng.uniform(0.15, 0.4), 16)
        right = shapely.Point(cx + scale * 0.5, cy).buffer(scale * rng.uniform(0.15, 0.4), 16)
        geom = left.union(right)
    return SHAPES[kind], geom


def polygons(geom: shapely.Geometry) -> list[PlanarPolygon]:
    """The areal polygons of ``geom`` as model polygons (open rings, holes kept)."""
    out = []
    for p in getattr(geom, "geoms", [geom]):
        if p.geom_type == "Polygon" and p.area > 0:
            holes = tuple(np.asarray(h.coords)[:-1] for h in p.interiors)
            out.append(PlanarPolygon(np.asarray(p.exterior.coords)[:-1], holes))
    return out


def geometry(plane: ContourPlane) -> shapely.Geometry:
    """The region of one plane of a model ROI."""
    return shapely.union_all([shapely.Polygon(p.exterior, p.holes) for p in plane.polygons])


def random_case(seed: int) -> RandomCase:
    """The case of ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    scale = float(rng.choice([2.0, 4.0, 8.0, 20.0, 50.0]))
    n = int(rng.integers(2, 16))
    step = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 5.0]))
    uneven = rng.random() < 0.5
    steps = step * (rng.uniform(0.8, 1.15, size=n - 1) if uneven else np.ones(n - 1))
    zs = rng.uniform(-20, 20) + np.concatenate([[0.0], np.cumsum(steps)])
    kind, base = _shape(rng, scale)
    planes = []
    for z in zs:
        geom = base
        if rng.random() < 0.5:
            geom = affinity.scale(geom, rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.2))
        if rng.random() < 0.3:
            geom = affinity.translate(geom, *rng.uniform(-0.2, 0.2, 2) * scale)
        polys = polygons(shapely.make_valid(geom))
        if polys:
            planes.append(ContourPlane(float(z), tuple(polys), len(polys)))
    roi = Roi(1, "R", planes=tuple(planes))
    dx = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 4.0]))
    dy = dx if rng.random() < 0.8 else float(rng.choice([1.0, 2.0, 3.0]))
    dz = float(rng.choice([1.0, 2.0, 2.5, 3.0, 5.0]))
    x0, y0, x1, y1 = shapely.union_all([geometry(p) for p in planes]).bounds
    reach = 5 * max(steps.max(), dz)
    ox, oy, oz = rng.uniform(0, 1, 3)
    xs = np.arange(x0 - 3 * dx - ox * dx, x1 + 3 * dx, dx)
    ys = np.arange(y0 - 3 * dy - oy * dy, y1 + 3 * dy, dy)
    zz = np.arange(zs[0] - reach - oz * dz, zs[-1] + reach, dz)
    axis = int(rng.integers(0, 3))
    grad = float(rng.choice([-1, 1]) * rng.uniform(0.05, 3.0))
    coord = (xs, ys, zz)[axis]
    off = float(rng.uniform(1, 20) - grad * (coord[0] if grad > 0 else coord[-1]))
    return RandomCase(seed, roi, (xs, ys, zz), axis, off, grad, scale, kind, rng)


def linear_grid(nodes, offset_gy: float, gradient) -> DoseGrid:
    """The dose ``offset_gy + gradient . p`` (Gy; gradient x, y, z in Gy/mm) on ``nodes``."""
    xs, ys, zz = nodes
    g = np.asarray(gradient, dtype=float)
    field = (
        offset_gy + g[0] * xs[None, None, :] + g[1] * ys[None, :, None] + g[2] * zz[:, None, None]
    )
    return DoseGrid(field, xs, ys, zz, None)


def slabs_of(roi: Roi) -> list:
    """The exact slab model of a model ROI (:func:`exact_dvh.slab_stack`)."""
    return ex.slab_stack([(p.z_mm, geometry(p)) for p in roi.planes])


def axis_truth(case: RandomCase) -> ex.ExactDvh:
    """The exact DVH of the case in its own dose."""
    dose = ex.LinearDose(case.axis, case.offset_gy, case.gradient_gy_per_mm)
    return ex.ExactDvh(slabs_of(case.roi), dose)


def oblique(case: RandomCase) -> tuple[float, np.ndarray]:
    """(offset Gy, gradient Gy/mm) of a dose along a random direction, 0.05-3 Gy/mm, at least
    1 Gy on the case's grid (drawn from the case's generator)."""
    direction = case.rng.normal(size=3)
    g = case.rng.uniform(0.05, 3.0) * direction / np.linalg.norm(direction)
    low = sum(min(g[a] * c[0], g[a] * c[-1]) for a, c in enumerate(case.nodes))
    return float(1.0 - low + case.rng.uniform(0, 20)), g


def partner(case: RandomCase) -> Roi:
    """A second structure for a union or difference: the case's with every plane scaled and
    moved in plane (drawn from the case's generator), on the same planes."""
    sx, sy = case.rng.uniform(0.4, 1.1, 2)
    dx, dy = case.rng.uniform(-0.6, 0.6, 2) * case.scale_mm
    planes = []
    for p in case.roi.planes:
        moved = affinity.translate(affinity.scale(geometry(p), sx, sy), dx, dy)
        polys = polygons(shapely.make_valid(moved))
        planes.append(ContourPlane(p.z_mm, tuple(polys), len(polys)))
    return Roi(2, "B", planes=tuple(planes))


def derived_truth(case: RandomCase, other: Roi, op: str) -> tuple[ex.ExactDvh, tuple, float]:
    """(exact DVH, grid nodes holding both structures, dose offset Gy) of ``case.roi`` united
    with (``op`` 'union') or less ('difference') ``other``, which shares its planes: plane by
    plane with shapely, on the case's slabs. The grid keeps the case's nodes, extended to three
    steps beyond both in plane; the offset is raised where needed to keep 1 Gy on it."""
    combine = shapely.union if op == "union" else shapely.difference
    sections = [
        (p.z_mm, combine(geometry(p), geometry(q)))
        for p, q in zip(case.roi.planes, other.planes, strict=True)
    ]
    slabs = [s for s in ex.slab_stack(sections) if s.shape.area > 0]
    x0, y0, x1, y1 = shapely.union_all(
        [geometry(p) for p in (*case.roi.planes, *other.planes)]
    ).bounds
    xs, ys, zz = case.nodes
    nodes = (_widened(xs, x0, x1), _widened(ys, y0, y1), zz)
    coord = nodes[case.axis]
    lowest = min(case.gradient_gy_per_mm * coord[0], case.gradient_gy_per_mm * coord[-1])
    off = case.offset_gy + max(1.0 - (case.offset_gy + lowest), 0.0)
    dose = ex.LinearDose(case.axis, off, case.gradient_gy_per_mm)
    return ex.ExactDvh(slabs, dose), nodes, off


def _widened(nodes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Even ``nodes`` (mm) extended on the same lattice to three steps beyond ``lo..hi``."""
    step = nodes[1] - nodes[0]
    start = nodes[0] - step * np.ceil(max(nodes[0] - lo + 3 * step, 0) / step)
    return np.arange(start, hi + 3 * step, step)
