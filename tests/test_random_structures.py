"""Random structures (ellipses, rotated boxes, stars, rings with a hole, two blobs; planes evenly
or slightly unevenly spaced; random dose grids and offsets) in linear dose fields, against the
exact DVH of their slab model (benchmarks/exact_dvh.py for a gradient along an axis; a
half-plane clip moving with z for an oblique one). Tolerances are the contour-truth targets of
the DVH engine: volume and mean within 0.5 %, D99/D95/D50/D5/D1/D0.03cc within
max(1 %, 0.05 Gy). The seeds of the derived-structure test are pairs that combining
occupancies cell by cell failed (volume up to -2.9 %, D1 up to +2.0 Gy)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely import affinity

from rtqa.dvh import structure_dvh
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi
from rtqa.protocol.structure_dvhs import derived_dvh

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "exact_dvh.py"
if "bench_exact_dvh" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("bench_exact_dvh", _PATH)
    assert _spec is not None and _spec.loader is not None
    sys.modules["bench_exact_dvh"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["bench_exact_dvh"])
ex = sys.modules["bench_exact_dvh"]

PERCENTS = (99, 95, 50, 5, 1)


def _shape(rng, scale):
    kind = rng.integers(0, 5)
    cx, cy = rng.uniform(-scale, scale, 2) * 0.3
    if kind == 0:  # ellipse
        disc = shapely.Point(cx, cy).buffer(1.0, 32)
        return affinity.scale(disc, rng.uniform(0.3, 1) * scale, rng.uniform(0.3, 1) * scale)
    if kind == 1:  # rotated rectangle
        w, h = rng.uniform(0.2, 1, 2) * scale
        return affinity.rotate(shapely.box(cx - w, cy - h, cx + w, cy + h), rng.uniform(0, 180))
    if kind == 2:  # star
        n = rng.integers(5, 12)
        t = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.3, 0.8))
        r = r * scale * rng.uniform(0.4, 1)
        return shapely.Polygon(np.c_[cx + r * np.cos(t), cy + r * np.sin(t)])
    if kind == 3:  # ring with a hole
        big = rng.uniform(0.4, 1) * scale
        hole = shapely.Point(cx + rng.uniform(-0.2, 0.2) * big, cy)
        return (
            shapely.Point(cx, cy)
            .buffer(big, 32)
            .difference(hole.buffer(big * rng.uniform(0.2, 0.6), 32))
        )
    left = shapely.Point(cx - scale * 0.5, cy).buffer(scale * rng.uniform(0.15, 0.4), 16)
    return left.union(
        shapely.Point(cx + scale * 0.5, cy).buffer(scale * rng.uniform(0.15, 0.4), 16)
    )


def _polygons(geom) -> list[PlanarPolygon]:
    out = []
    for p in getattr(geom, "geoms", [geom]):
        if p.geom_type == "Polygon" and p.area > 0:
            holes = tuple(np.asarray(h.coords)[:-1] for h in p.interiors)
            out.append(PlanarPolygon(np.asarray(p.exterior.coords)[:-1], holes))
    return out


def _geometry(plane: ContourPlane):
    return shapely.union_all([shapely.Polygon(p.exterior, p.holes) for p in plane.polygons])


def _case(seed: int):
    """(roi, dose grid over it, (axis, offset Gy, gradient Gy/mm), structure scale mm)."""
    rng = np.random.default_rng(seed)
    scale = float(rng.choice([2.0, 4.0, 8.0, 20.0, 50.0]))
    n = int(rng.integers(2, 16))
    step = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 5.0]))
    uneven = rng.random() < 0.5  # steps within 0.8..1.15 of each other: no gap between parts
    steps = step * (rng.uniform(0.8, 1.15, size=n - 1) if uneven else np.ones(n - 1))
    zs = rng.uniform(-20, 20) + np.concatenate([[0.0], np.cumsum(steps)])
    base = _shape(rng, scale)
    planes = []
    for z in zs:
        geom = base
        if rng.random() < 0.5:
            geom = affinity.scale(geom, rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.2))
        if rng.random() < 0.3:
            geom = affinity.translate(geom, *rng.uniform(-0.2, 0.2, 2) * scale)
        polys = _polygons(shapely.make_valid(geom))
        if polys:
            planes.append(ContourPlane(float(z), tuple(polys), len(polys)))
    roi = Roi(1, "R", planes=tuple(planes))
    dx = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 4.0]))
    dy = dx if rng.random() < 0.8 else float(rng.choice([1.0, 2.0, 3.0]))
    dz = float(rng.choice([1.0, 2.0, 2.5, 3.0, 5.0]))
    x0, y0, x1, y1 = shapely.union_all([_geometry(p) for p in planes]).bounds
    reach = 5 * max(steps.max(), dz)
    ox, oy, oz = rng.uniform(0, 1, 3)
    xs = np.arange(x0 - 3 * dx - ox * dx, x1 + 3 * dx, dx)
    ys = np.arange(y0 - 3 * dy - oy * dy, y1 + 3 * dy, dy)
    zz = np.arange(zs[0] - reach - oz * dz, zs[-1] + reach, dz)
    axis = int(rng.integers(0, 3))
    grad = float(rng.choice([-1, 1]) * rng.uniform(0.05, 3.0))
    coord = (xs, ys, zz)[axis]
    off = float(rng.uniform(1, 20) - grad * (coord[0] if grad > 0 else coord[-1]))
    return roi, (xs, ys, zz), (axis, off, grad), scale, rng


def _grid(axes, off, g) -> DoseGrid:
    xs, ys, zz = axes
    field = off + g[0] * xs[None, None, :] + g[1] * ys[None, :, None] + g[2] * zz[:, None, None]
    return DoseGrid(field, xs, ys, zz, None)


def _widened(nodes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``nodes`` (even, mm) extended on the same lattice to three steps beyond ``lo..hi``."""
    step = nodes[1] - nodes[0]
    start = nodes[0] - step * np.ceil(max(nodes[0] - lo + 3 * step, 0) / step)
    return np.arange(start, hi + 3 * step, step)


def _slabs(planes) -> list:
    return ex.slab_stack([(z, geom) for z, geom in planes])


def _assert_within(dvh, truth_volume_cc, truth_mean, dose_at) -> None:
    assert dvh.total_volume_cc == pytest.approx(truth_volume_cc, rel=5e-3)
    assert dvh.mean_gy == pytest.approx(truth_mean, rel=5e-3)
    for pct in PERCENTS:
        want = dose_at(pct / 100 * truth_volume_cc)
        assert dvh.dose_at_volume_pct(pct) == pytest.approx(want, abs=max(0.01 * want, 0.05))
    if truth_volume_cc > 0.1:
        want = dose_at(0.03)
        assert dvh.dose_at_volume_cc(0.03) == pytest.approx(want, abs=max(0.01 * want, 0.05))


@pytest.mark.parametrize("seed", [3, 11, 26, 40, 57, 74, 93, 120])
def test_random_structure_in_a_dose_linear_along_an_axis(seed):
    roi, axes, (axis, off, grad), _, _ = _case(seed)
    g = np.zeros(3)
    g[axis] = grad
    truth = ex.ExactDvh(
        _slabs([(p.z_mm, _geometry(p)) for p in roi.planes]), ex.LinearDose(axis, off, grad)
    )
    sd = structure_dvh(roi, _grid(axes, off, g))
    assert sd.volume_cc == pytest.approx(truth.total_volume_cc, rel=1e-9)
    _assert_within(sd.dvh, truth.total_volume_cc, truth.mean_gy, truth.dose_at_volume_cc)


class _ObliqueTruth:
    """Exact V(d) of slabs in ``D = off + g . p`` (mm, Gy): per slab, the polygon clipped by a
    half-plane whose offset moves linearly with z; the clipped area is quadratic in z between
    the z where the line passes a vertex, so Simpson's rule per piece is exact."""

    def __init__(self, slabs, off, g):
        self.slabs = [s for s in slabs if s.shape.area > 0]
        self.off, self.g = off, np.asarray(g, float)
        self.volume_mm3 = sum(s.shape.area * s.thickness_mm for s in self.slabs)
        gx, gy, gz = self.g
        self.mean_gy = (
            sum(
                s.shape.area
                * s.thickness_mm
                * (gx * s.shape.centroid.x + gy * s.shape.centroid.y + gz * (s.z_lo + s.z_hi) / 2)
                for s in self.slabs
            )
            / self.volume_mm3
            + off
        )
        self.vertices = [shapely.get_coordinates(s.shape) for s in self.slabs]
        ends = [
            off + v @ self.g[:2] + gz * z
            for s, v in zip(self.slabs, self.vertices, strict=True)
            for z in (s.z_lo, s.z_hi)
        ]
        self.low, self.high = min(e.min() for e in ends), max(e.max() for e in ends)

    def _area(self, shape, t: float) -> float:
        """Area (mm2) of ``shape`` where ``gx x + gy y >= t``."""
        u = self.g[:2] / np.hypot(*self.g[:2])
        c = t / np.hypot(*self.g[:2])
        side, big = np.array([-u[1], u[0]]), 1e5
        p = u * c
        half = shapely.Polygon(
            [p + side * big, p - side * big, p - side * big + u * big, p + side * big + u * big]
        )
        return float(shapely.area(shapely.intersection(shape, half)))

    def volume_at(self, d: float) -> float:
        gz = self.g[2]
        total = 0.0
        for s, v in zip(self.slabs, self.vertices, strict=True):
            cuts = (d - self.off - v @ self.g[:2]) / gz
            z = np.unique(np.clip(np.r_[s.z_lo, s.z_hi, cuts], s.z_lo, s.z_hi))
            for a, b in itertools.pairwise(z):
                f = [self._area(s.shape, d - self.off - gz * w) for w in (a, (a + b) / 2, b)]
                total += (b - a) / 6 * (f[0] + 4 * f[1] + f[2])
        return total

    def dose_at_volume_cc(self, cc: float) -> float:
        lo, hi = self.low, self.high
        while hi - lo > 1e-7:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.volume_at(mid) >= cc * 1000 else (lo, mid)
        return (lo + hi) / 2


@pytest.mark.parametrize("seed", [101, 117, 142, 168])
def test_random_structure_in_an_oblique_linear_dose(seed):
    """The trilinear field of an oblique gradient is the gradient itself; each sample's spread
    is exact only for a gradient along an axis, so this is where it is tested."""
    roi, axes, _, _, rng = _case(seed)
    direction = rng.normal(size=3)
    g = rng.uniform(0.05, 3.0) * direction / np.linalg.norm(direction)
    xs, ys, zz = axes
    low = sum(min(g[a] * c[0], g[a] * c[-1]) for a, c in enumerate((xs, ys, zz)))
    off = 1.0 - low + rng.uniform(0, 20)
    truth = _ObliqueTruth(_slabs([(p.z_mm, _geometry(p)) for p in roi.planes]), off, g)
    sd = structure_dvh(roi, _grid(axes, off, g))
    _assert_within(sd.dvh, truth.volume_mm3 / 1000, truth.mean_gy, truth.dose_at_volume_cc)


@pytest.mark.parametrize(
    ("seed", "op"),
    [
        (4, "union"),
        (80, "union"),
        (207, "difference"),
        (216, "union"),
        (24, "difference"),
        (66, "difference"),
    ],
)
def test_random_derived_structure(seed, op):
    """The second structure is the first with every plane scaled and moved in plane, so both
    share their planes and the truth is the union or difference plane by plane (shapely) on the
    first structure's slabs. The dose grid is widened (same nodes) to hold both."""
    roi, axes, (axis, off, grad), scale, rng = _case(seed)
    sx, sy = rng.uniform(0.4, 1.1, 2)
    dx, dy = rng.uniform(-0.6, 0.6, 2) * scale
    planes = []
    for p in roi.planes:
        moved = affinity.translate(affinity.scale(_geometry(p), sx, sy), dx, dy)
        polys = _polygons(shapely.make_valid(moved))
        planes.append(ContourPlane(p.z_mm, tuple(polys), len(polys)))
    other = Roi(2, "B", planes=tuple(planes))
    combine = shapely.union if op == "union" else shapely.difference
    sections = [
        (p.z_mm, combine(_geometry(p), _geometry(q)))
        for p, q in zip(roi.planes, planes, strict=True)
    ]
    slabs = [s for s in _slabs(sections) if s.shape.area > 0]
    x0, y0, x1, y1 = shapely.union_all([_geometry(p) for p in (*roi.planes, *planes)]).bounds
    xs, ys, zz = axes
    xs, ys = _widened(xs, x0, x1), _widened(ys, y0, y1)
    g = np.zeros(3)
    g[axis] = grad
    lowest = min(g[axis] * c for c in ((xs, ys, zz)[axis][[0, -1]]))
    off += max(1.0 - (off + lowest), 0.0)  # a dose above 0 Gy on the widened grid
    truth = ex.ExactDvh(slabs, ex.LinearDose(axis, off, grad))
    plus, minus = ((other,), ()) if op == "union" else ((), (other,))
    sd = derived_dvh(roi, _grid((xs, ys, zz), off, g), minus=minus, plus=plus)
    assert sd.volume_cc == pytest.approx(truth.total_volume_cc, rel=1e-9)
    _assert_within(sd.dvh, truth.total_volume_cc, truth.mean_gy, truth.dose_at_volume_cc)
