"""Inter-slice interpolation of contour shapes: a finer slab stack between contour planes.

The slab model (:mod:`rtqa.geometry.slabs`) extrudes each plane's contour halfway to its
neighbours, a staircase. :func:`interpolated_stack` splits each step between two neighbouring
planes of one part into ``steps`` sub-slabs of equal thickness, each holding the contour shape
interpolated at its middle z. The result is a :class:`~rtqa.geometry.slabs.SlabStack`, so
occupancy, volumes and DVHs are computed from it exactly as from the slab model.

Method
------
* **Matching.** Per pair of neighbouring planes, a polygon (outer ring with its holes) of one
  plane is linked to a polygon of the other where their areas overlap; a link whose two
  polygons overlap nothing else on the other plane is interpolated. The holes of two linked
  polygons are linked the same way. A ring no wider than :data:`LINK_TOLERANCE_MM` (a line or
  a sliver, as drawn at the tip of a shape) links to the polygon it touches within that
  distance.
* **Correspondence.** Each ring runs counter-clockwise and is parametrised by arc length
  measured after whitening it by its own second moments (of the enclosed area, centred on its
  centroid), so that rings that are affine images of each other (circle and ellipse, two
  rectangles of different widths) are parametrised alike. The upper ring's start is the one
  minimising the summed squared distance between the whitened points at equal fractions
  (circular cross-correlation by FFT, refined to a fraction of a sample). The interpolated
  ring has a point at every vertex of both rings, so at either plane it is that plane's ring.
* **Profile in z.** Each point's offset from its ring's centroid is taken along the principal
  axes of the two rings' second moments; the centroid and the *signed square* ``d |d|`` of
  each offset coordinate ``d`` are interpolated in z by cubic Hermite pieces whose slope at a
  plane is that of the parabola through the plane and its two neighbours along the chain of
  linked rings (at a chain's end, the parabola through its last three planes). This is exact,
  up to the polygon discretisation of the contours, along a chain of three or more planes
  wherever the centroid is at most quadratic in z and each offset coordinate is a constant
  times the square root of a quadratic in z: cylinders, cones and truncated cones, their tilted
  versions, spheres and ellipsoids, and a cylinder lying across the planes (rectangles of
  width ``2 sqrt(R^2 - (z - z0)^2)``). A plain linear interpolation of the points is exact
  only for the cones and tilted cylinders; across the rounded ends of spheres and of lying
  cylinders it keeps only the chords (a 12 mm sphere contoured every 3 mm loses 4.6 % of its
  volume that way, the slab model's staircase 1.6 %). A chain of two planes is interpolated
  linearly (a frustum). A ring of zero area (a line) has no arc-length parametrisation of its
  own: its points are its neighbour's projected onto it. Where contours change abruptly from
  plane to plane the cubic pieces overshoot: with radii drawn at random between 4 and 10 mm on
  planes 3 mm apart, a sub-slab's area exceeded the larger of its two planes' by up to 10 %.
* **Topology changes fall back to slabs.** A polygon linked to none or to several polygons of
  the other plane (an end, a branch) and a hole without its counterpart keep the slab model for
  their half of the step; :attr:`InterpolatedStack.fallback_steps` counts the steps where this
  happened.
* **Rounded ends: domes.** Beyond the first and last plane of each part, a polygon without
  holes whose chain of linked rings reaches three planes into the part has its profile
  continued: the centroid and each point's signed squares follow the parabola through the
  chain's last three planes (the one whose slope the Hermite pieces use at the end plane, so
  the profile stays smooth across it). Its size along each principal axis, the mean of
  ``|d| |d|`` over the ring's points (a multiple of the squared half-width, so quadratic in z
  for the solids above), follows the same parabola; where it reaches zero for either axis
  (the ring shrinks to a point or a line) short of the **dome limit**, the cap ends there, a
  dome of ``steps`` sub-slabs of equal thickness, each holding the extrapolated ring at its
  middle z. This is exact, up to the midpoint rule, for a sphere or ellipsoid whose pole lies
  between the end plane and the limit, for the apex of a cone (its signed squares are
  quadratic with a double root at the apex) and for the rounded end of a lying cylinder. The
  dome limit is one neighbouring spacing beyond the end plane by default (a pole further out
  would have been cut by the next plane, which holds no contour), or ``end_cap_mm`` where
  given (the structure then ends within that distance; ``end_cap_mm = 0`` leaves no cap); a
  pole or apex exactly at the limit (on the next plane, where a contour of no area was not
  drawn) closes the dome there. A point whose extrapolated signed square changes sign stops
  at the principal axis.
* **Flat end caps** otherwise, as in the slab model (:func:`~rtqa.geometry.slabs.slab_stack`):
  where the profile does not shrink to zero within the limit (a cylinder, a flaring or slowly
  narrowing end), for chains of fewer than three planes, polygons with holes, rings of zero
  area and parts of a single plane, the plane's own contour extends by the end cap (half the
  neighbouring spacing by default, ``end_cap_mm`` where given). Nothing is interpolated
  across a gap between parts.
* A sub-slab holds the shape at its middle z: the midpoint rule in z, whose error falls as
  ``1 / steps^2`` (for a sphere of radius R contoured every ``s`` mm the volume is high by about
  ``s^2 / (8 R^2 steps^2)``).
* Interpolated coordinates are rounded to :data:`SNAP_DECIMALS` decimals (mm), so that a point
  on a straight edge shared by the two rings stays exactly on it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import shapely

from rtqa.geometry.slabs import SlabStack, gap_steps, plane_groups, slab_stack
from rtqa.model import Roi

#: Overlap (as a fraction of the smaller area) above which two polygons are linked.
MIN_OVERLAP = 1e-6
#: Rings no wider than this (mm) link to rings within this distance (the tip of a shape).
LINK_TOLERANCE_MM = 0.01
#: Interpolated coordinates are rounded to this many decimals (mm).
SNAP_DECIMALS = 9
#: Samples per ring (at least; a power of two) for the start-point search.
ALIGN_SAMPLES = 256
#: Largest number of samples per ring for the start-point search.
MAX_ALIGN_SAMPLES = 4096


@dataclass(frozen=True, eq=False)
class InterpolatedStack(SlabStack):
    """A :class:`~rtqa.geometry.slabs.SlabStack` of interpolated sub-slabs (``z_mm`` is the
    height at which each slab's shape was taken). ``steps`` sub-slabs per step between planes;
    ``fallback_steps`` of the ``joined_steps`` steps between neighbouring planes of one part
    have a contour (or hole) extruded as in the slab model because it has no single counterpart
    on the neighbouring plane."""

    steps: int = 1
    joined_steps: int = 0
    fallback_steps: int = 0


# --------------------------------------------------------------------------------------------
# Rings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Ring:
    """A closed ring: vertices ``xy`` (n + 1, 2) counter-clockwise, the first repeated at the
    end; ``cum`` (n + 1),
    the arc-length fraction of each vertex and of the closing point (1) measured on the
    whitened ring (see :func:`_ring`); centroid and second-moment matrix (mm, mm^2)."""

    xy: np.ndarray
    cum: np.ndarray
    centre: np.ndarray
    cov: np.ndarray
    whitening: np.ndarray  # cov^(-1/2), eigenvalues floored at 1e-12 of the largest
    fill: shapely.Geometry  # the filled ring; a line for a ring of zero area

    @property
    def area(self) -> float:
        return float(self.fill.area)


def _whitening(cov: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(cov)
    lam = np.maximum(lam, 1e-12 * max(float(lam.max()), 1e-300))
    return (vec / np.sqrt(lam)) @ vec.T


def _ring(coords) -> _Ring | None:
    """A ring from its vertices: oriented counter-clockwise; centroid and second moments of
    the enclosed area (of the outline, for a ring of no area within rounding); arc length
    measured after whitening by those moments, so that rings that are affine images of each
    other (a circle and an ellipse, two rectangles) have the same parametrisation."""
    xy = np.asarray(coords, dtype=float)[:, :2]
    if xy.shape[0] > 1 and np.array_equal(xy[0], xy[-1]):
        xy = xy[:-1]
    keep = np.any(xy != np.roll(xy, 1, axis=0), axis=1)
    xy = xy[keep] if keep.any() else xy[:1]
    if xy.shape[0] < 2:
        return None
    nxt = np.roll(xy, -1, axis=0)
    cross = xy[:, 0] * nxt[:, 1] - nxt[:, 0] * xy[:, 1]
    signed = 0.5 * float(cross.sum())
    if signed < 0:
        xy, signed = xy[::-1].copy(), -signed
        nxt = np.roll(xy, -1, axis=0)
        cross = xy[:, 0] * nxt[:, 1] - nxt[:, 0] * xy[:, 1]
    seg = np.hypot(*(nxt - xy).T)
    total = float(seg.sum())
    if total <= 0:
        return None
    if xy.shape[0] >= 3 and signed > 1e-9 * total * total:
        fill = shapely.Polygon(xy)
        x0, y0, x1, y1 = xy[:, 0], xy[:, 1], nxt[:, 0], nxt[:, 1]
        centre = np.array([((x0 + x1) * cross).sum(), ((y0 + y1) * cross).sum()]) / (6 * signed)
        sxx = ((x0 * x0 + x0 * x1 + x1 * x1) * cross).sum() / (12 * signed)
        syy = ((y0 * y0 + y0 * y1 + y1 * y1) * cross).sum() / (12 * signed)
        sxy = ((x0 * y1 + 2 * x0 * y0 + 2 * x1 * y1 + x1 * y0) * cross).sum() / (24 * signed)
        cov = np.array([[sxx, sxy], [sxy, syy]]) - np.outer(centre, centre)
    else:
        fill = shapely.LineString(np.vstack([xy, xy[:1]]))
        mid = 0.5 * (xy + nxt)
        centre = (mid * seg[:, None]).sum(axis=0) / total
        d = mid - centre
        cov = (d[:, :, None] * d[:, None, :] * seg[:, None, None]).sum(axis=0) / total
    white = _whitening(cov)
    wseg = np.hypot(*((nxt - xy) @ white).T)
    wtotal = float(wseg.sum())
    if not np.isfinite(wtotal) or wtotal <= 0:
        wseg, wtotal = seg, total
    cum = np.concatenate([[0.0], np.cumsum(wseg)]) / wtotal
    cum[-1] = 1.0
    return _Ring(np.vstack([xy, xy[:1]]), cum, centre, cov, white, fill)


def _at(ring: _Ring, u: np.ndarray) -> np.ndarray:
    """Points (m, 2) at arc-length fractions ``u`` (taken modulo 1) of ``ring``."""
    u = np.mod(u, 1.0)
    closed = ring.xy
    n = closed.shape[0] - 1
    i = np.clip(np.searchsorted(ring.cum, u, side="right") - 1, 0, n - 1)
    span = ring.cum[i + 1] - ring.cum[i]
    f = np.where(span > 0, (u - ring.cum[i]) / np.where(span > 0, span, 1.0), 0.0)
    return closed[i] + f[:, None] * (closed[i + 1] - closed[i])


def _align(a: _Ring, b: _Ring) -> float:
    """Offset ``o`` such that ``b`` at fraction ``u + o`` corresponds to ``a`` at ``u``: the
    start minimising the summed squared distance of the whitened, centred points."""
    m = ALIGN_SAMPLES
    while m < 2 * max(a.xy.shape[0], b.xy.shape[0]) - 2 and m < MAX_ALIGN_SAMPLES:
        m *= 2
    u = np.arange(m) / m
    pa = (_at(a, u) - a.centre) @ a.whitening
    pb = (_at(b, u) - b.centre) @ b.whitening
    ca = pa[:, 0] + 1j * pa[:, 1]
    cb = pb[:, 0] + 1j * pb[:, 1]
    corr = np.fft.ifft(np.conj(np.fft.fft(ca)) * np.fft.fft(cb)).real
    s = int(np.argmax(corr))
    y0, y1, y2 = corr[s - 1], corr[s], corr[(s + 1) % m]
    den = y0 - 2.0 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return float(np.mod((s + frac) / m, 1.0))


@dataclass(eq=False)
class _Shape:
    """One polygon of a plane: outer ring, holes, and the polygon itself (empty for a contour
    of zero area)."""

    outer: _Ring
    holes: list[_Ring]
    geom: shapely.Geometry


def _plane_shapes(geom: shapely.Geometry, polygons) -> list[_Shape]:
    """The polygons of a plane's (united, valid) geometry, and its contours of zero area that
    touch none of them."""
    shapes: list[_Shape] = []
    for part in shapely.get_parts(geom):
        if shapely.get_type_id(part) != 3 or part.area <= 0:
            continue
        outer = _ring(shapely.get_coordinates(part.exterior))
        if outer is None:
            continue
        holes = [_ring(shapely.get_coordinates(h)) for h in part.interiors]
        shapes.append(_Shape(outer, [h for h in holes if h is not None and h.area > 0], part))
    areal = [s.geom for s in shapes]
    for poly in polygons:
        ring = _ring(poly.exterior)
        if ring is None or ring.area > 0:
            continue
        if not any(shapely.intersects(ring.fill, g) for g in areal):
            shapes.append(_Shape(ring, [], shapely.Polygon()))
    return shapes


def _links(lower: list[_Ring], upper: list[_Ring]) -> dict[int, int]:
    """One-to-one links ``i -> j`` between rings of two planes (filled) that overlap each other
    and nothing else on the other plane. A thin ring (no wider than :data:`LINK_TOLERANCE_MM`,
    e.g. a line drawn at a shape's tip) links to what lies within that distance."""
    if not lower or not upper:
        return {}
    a = np.array([r.fill for r in lower], dtype=object)
    b = np.array([r.fill for r in upper], dtype=object)
    i, j = shapely.STRtree(b).query(a, predicate="dwithin", distance=LINK_TOLERANCE_MM)
    if i.size == 0:
        return {}
    area_a, area_b = shapely.area(a[i]), shapely.area(b[j])
    thin = (area_a <= LINK_TOLERANCE_MM * shapely.length(a[i])) | (
        area_b <= LINK_TOLERANCE_MM * shapely.length(b[j])
    )
    overlap = np.zeros(i.size)
    if (~thin).any():
        overlap[~thin] = shapely.area(shapely.intersection(a[i[~thin]], b[j[~thin]]))
    keep = thin | (overlap > MIN_OVERLAP * np.minimum(area_a, area_b))
    i, j = i[keep], j[keep]
    deg_a = np.bincount(i, minlength=len(lower))
    deg_b = np.bincount(j, minlength=len(upper))
    one = (deg_a[i] == 1) & (deg_b[j] == 1)
    return dict(zip(i[one].tolist(), j[one].tolist(), strict=True))


# --------------------------------------------------------------------------------------------
# Profile in z
# --------------------------------------------------------------------------------------------


def _slopes(f: list, z: list) -> tuple:
    """Slopes at the two middle entries of up to four samples ``f[0..3]`` at ``z[0..3]``
    (``f[0]``, ``f[3]`` may be None): the parabola through each plane and its neighbours."""
    f0, f1, f2, f3 = f
    z0, z1, z2, z3 = z
    h = z2 - z1
    s12 = (f2 - f1) / h
    if f0 is not None:
        h0 = z1 - z0
        m1 = (h * h * (f1 - f0) + h0 * h0 * (f2 - f1)) / (h0 * h * (h0 + h))
    elif f3 is not None:
        h3 = z3 - z2
        m1 = s12 - h * ((f3 - f2) / h3 - s12) / (h + h3)
    else:
        m1 = s12
    if f3 is not None:
        h3 = z3 - z2
        m2 = (h3 * h3 * (f2 - f1) + h * h * (f3 - f2)) / (h * h3 * (h + h3))
    elif f0 is not None:
        h0 = z1 - z0
        m2 = s12 + h * (s12 - (f1 - f0) / h0) / (h0 + h)
    else:
        m2 = s12
    return m1, m2


def _hermite(f1, f2, m1, m2, h: float, t: np.ndarray):
    """Cubic Hermite from ``f1`` (slope ``m1``) to ``f2`` (slope ``m2``) over a step of length
    ``h``, at fractions ``t`` (shaped to broadcast against the values)."""
    t2 = t * t
    t3 = t2 * t
    return (
        (2 * t3 - 3 * t2 + 1) * f1
        + (t3 - 2 * t2 + t) * (h * m1)
        + (-2 * t3 + 3 * t2) * f2
        + (t3 - t2) * (h * m2)
    )


def _interpolate_ring(rings: list, z: list, t: np.ndarray, offset) -> np.ndarray:
    """Rings (T, m, 2) at fractions ``t`` of the step between ``rings[1]`` (at ``z[1]``) and
    ``rings[2]``; ``rings[0]`` and ``rings[3]`` (or None) are the neighbours along the chain.
    ``offset(a, b)`` is :func:`_align` (cached). A ring of zero area (a line) has no
    arc-length correspondence of its own: its points are those of its nearest ring of the
    chain projected onto it (along its principal axis, clipped to its extent)."""
    flat = [r is not None and r.area <= 0 for r in rings]
    if flat[1] and flat[2]:
        return np.empty((t.size, 0, 2))
    ref = 2 if flat[1] else 1
    # arc-length offsets relative to the reference ring, composed along the chain
    offs: list = [None] * 4
    offs[ref] = 0.0
    for order in (range(ref + 1, 4), range(ref - 1, -1, -1)):
        known = ref
        for k in order:
            if rings[k] is None or flat[k]:
                continue
            if k > known:
                offs[k] = offs[known] + offset(rings[known], rings[k])
            else:
                offs[k] = offs[known] - offset(rings[k], rings[known])
            known = k
    u = _fractions([(rings[k], offs[k]) for k in (1, 2) if not flat[k]])
    pts: list = [None] * 4
    for k in range(4):
        if rings[k] is not None and not flat[k]:
            pts[k] = _at(rings[k], u + offs[k])
    for k, near in ((1, (2, 0, 3)), (2, (1, 3, 0)), (0, (1, 2, 3)), (3, (2, 1, 0))):
        if flat[k]:
            source = next(pts[j] for j in near if pts[j] is not None)
            pts[k] = _project(source, rings[k])
    frame = _frame(rings[1], rings[2])
    d: list = [None] * 4  # offsets from the centroid in the frame, (m, 2)
    c: list = [None] * 4
    for k, ring in enumerate(rings):
        if ring is not None:
            d[k] = (pts[k] - ring.centre) @ frame
            c[k] = ring.centre
    h = z[2] - z[1]
    tc = t[:, None]
    if rings[0] is None and rings[3] is None:  # a chain of two planes: a frustum
        off = (1 - tc[..., None]) * d[1] + tc[..., None] * d[2]
        cen = (1 - tc) * c[1] + tc * c[2]
    else:
        q = [None if v is None else v * np.abs(v) for v in d]  # signed squares
        qt = _hermite(q[1], q[2], *_slopes(q, z), h, tc[..., None])
        off = np.sign(qt) * np.sqrt(np.abs(qt))
        cen = _hermite(c[1], c[2], *_slopes(c, z), h, tc)
    # rounding noise snapped off (a point on a straight edge stays on it)
    return np.round(cen[:, None, :] + off @ frame.T, SNAP_DECIMALS)


def _fractions(rings_offsets: list) -> np.ndarray:
    """The arc-length fractions (sorted, in [0, 1), duplicates within 1e-12 dropped) of the
    vertices of every ``(ring, offset)``, shifted by minus its offset: the interpolated ring has
    a point at every vertex of each."""
    u = np.unique(np.concatenate([np.mod(r.cum[:-1] - o, 1.0) for r, o in rings_offsets]))
    u = u[np.concatenate([[True], np.diff(u) > 1e-12])]
    if u.size > 1 and u[-1] > 1.0 - 1e-12:
        u = u[:-1]
    return u


def _frame(a: _Ring, b: _Ring) -> np.ndarray:
    """The frame (2, 2) of principal axes of two rings' second moments, each scaled to unit
    trace: point offsets are interpolated along these axes."""
    _, frame = np.linalg.eigh(
        a.cov / max(np.trace(a.cov), 1e-300) + b.cov / max(np.trace(b.cov), 1e-300)
    )
    return frame


def _first_root(coef: np.ndarray, limit: float) -> float | None:
    """The first x in (0, ``limit``] (``limit`` within rounding included) where
    ``a x^2 + b x + c`` (``coef``, ``c > 0``) reaches zero; a minimum of zero within rounding
    (a double root, as at a cone's apex) counts."""
    a, b, c = (float(v) for v in coef)
    roots = []
    if abs(a) * limit * limit <= 1e-12 * (abs(b) * limit + c):
        if b < 0:
            roots.append(-c / b)
    else:
        disc = b * b - 4 * a * c
        if a > 0 and abs(disc) <= 4e-9 * a * c:  # touches zero at its vertex (double root)
            roots.append(-b / (2 * a))
        elif disc >= 0:
            sq = np.sqrt(disc)
            q = -0.5 * (b + np.copysign(sq, b))
            roots += [q / a, c / q] if q != 0 else [-b / (2 * a)]
    roots = [x for x in roots if 0 < x <= limit * (1 + 1e-9)]
    return min(roots) if roots else None


def _dome(rings: list, dist: list, low_end: bool, limit: float, offset):
    """The extrapolated profile beyond an end ring (see the module docstring): ``rings`` are
    the chain's rings from the end plane inward, ``dist`` their distances (mm) from the end
    plane (0 and two negative values), ``low_end`` whether the end plane is the part's lowest.
    ``(length, rings_at)``: the dome's length (mm) and a function giving the rings (T, m, 2)
    at outward distances ``x`` (T,), or None where the profile does not close within
    ``limit`` mm or the extrapolation is ill-defined (a ring of zero area)."""
    if limit <= 0 or any(r.area <= 0 for r in rings):
        return None
    r0, r1, r2 = rings
    # arc-length offsets as the interpolation takes them (lower ring first)
    if low_end:
        o1 = offset(r0, r1)
        o2 = o1 + offset(r1, r2)
    else:
        o1 = -offset(r1, r0)
        o2 = o1 - offset(r2, r1)
    offs = (0.0, o1, o2)
    u = _fractions([(r0, 0.0), (r1, o1)])
    frame = _frame(r0, r1)
    d = [(_at(r, u + o) - r.centre) @ frame for r, o in zip(rings, offs, strict=True)]
    q = np.stack([v * np.abs(v) for v in d])  # (3, m, 2) signed squares
    cen = np.stack([r.centre for r in rings])  # (3, 2)
    x0, x1, x2 = (float(v) for v in dist)
    size = np.abs(q).mean(axis=1)  # (3, 2): per-axis size at each plane
    if not np.all(size[0] > 0):
        return None
    length = None
    for axis in range(2):
        coef = np.polyfit(np.array([x0, x1, x2]), size[:, axis], 2)
        root = _first_root(coef, limit)
        if root is not None and (length is None or root < length):
            length = root
    if length is None:
        return None
    sign0 = np.sign(q[0])

    def rings_at(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)[:, None]
        w = np.hstack(
            [
                (x - x1) * (x - x2) / ((x0 - x1) * (x0 - x2)),
                (x - x0) * (x - x2) / ((x1 - x0) * (x1 - x2)),
                (x - x0) * (x - x1) / ((x2 - x0) * (x2 - x1)),
            ]
        )  # (T, 3) Lagrange weights
        qt = np.einsum("tk,kma->tma", w, q)
        qt = np.where(sign0 * qt < 0, 0.0, qt)  # a point stops at the principal axis
        off = np.sign(qt) * np.sqrt(np.abs(qt))
        centre = w @ cen
        return np.round(centre[:, None, :] + off @ frame.T, SNAP_DECIMALS)

    return length, rings_at


def _project(points: np.ndarray, ring: _Ring) -> np.ndarray:
    """``points`` projected onto the principal axis of a ring of zero area, within its extent."""
    axis = np.linalg.eigh(ring.cov)[1][:, -1]
    extent = (ring.xy - ring.centre) @ axis
    s = np.clip((points - ring.centre) @ axis, extent.min(), extent.max())
    return ring.centre + s[:, None] * axis


def _polygons(coords: np.ndarray) -> np.ndarray:
    """Valid (multi)polygons from rings (T, m, 2); a self-intersecting ring is repaired."""
    if coords.shape[1] < 3:
        return np.array([shapely.Polygon()] * coords.shape[0], dtype=object)
    polys = shapely.polygons(shapely.linearrings(coords))
    bad = ~shapely.is_valid(polys)
    for k in np.flatnonzero(bad):
        fixed = shapely.make_valid(polys[k])
        parts = [p for p in shapely.get_parts(fixed) if shapely.get_type_id(p) in (3, 6)]
        polys[k] = shapely.union_all(parts) if parts else shapely.Polygon()
    return polys


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


def interpolated_stack(
    roi: Roi,
    steps: int,
    end_cap_mm: float | None = None,
    spacing_mm: float | None = None,
) -> SlabStack:
    """The contours of ``roi`` interpolated between neighbouring planes (see the module
    docstring): ``steps`` sub-slabs per step between planes. ``steps = 0`` is the slab model
    (:func:`~rtqa.geometry.slabs.slab_stack`, returned as is). ``end_cap_mm`` and ``spacing_mm``
    as for the slab model. ValueError as for the slab model, or for ``steps < 0``."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"interpolation steps must be an integer >= 0, got {steps}")
    steps = int(steps)
    base = slab_stack(roi, end_cap_mm, spacing_mm)
    if steps == 0:
        return base
    z, polys = plane_groups(roi)
    n = z.size
    gap = gap_steps(z, spacing_mm, roi.bridged_steps_mm)
    shapes = [_plane_shapes(base.geoms[p], polys[p]) for p in range(n)]
    up: list[dict[int, int]] = []
    hole_up: list[dict[tuple[int, int], tuple[int, int]]] = []
    for p in range(n - 1):
        links = (
            {} if gap[p] else _links([s.outer for s in shapes[p]], [s.outer for s in shapes[p + 1]])
        )
        up.append(links)
        holes = {}
        for i, j in links.items():
            hl = _links(shapes[p][i].holes, shapes[p + 1][j].holes)
            holes.update({(i, a): (j, b) for a, b in hl.items()})
        hole_up.append(holes)
    down = [{j: i for i, j in d.items()} for d in up]
    hole_down = [{j: i for i, j in d.items()} for d in hole_up]
    aligned: dict[tuple[int, int], float] = {}

    def offset(r1: _Ring, r2: _Ring) -> float:
        key = (id(r1), id(r2))
        if key not in aligned:
            aligned[key] = _align(r1, r2)
        return aligned[key]

    def chain_ring(p: int, i, hole: bool) -> list:
        """The rings at planes p - 1, p, p + 1, p + 2 of the link from ``i`` on plane p."""
        links, back = (hole_up, hole_down) if hole else (up, down)
        j = links[p][i]
        prev = back[p - 1].get(i) if p >= 1 else None
        nxt = links[p + 1].get(j) if p + 1 < n - 1 else None

        def get(q, key):
            if key is None:
                return None
            return shapes[q][key[0]].holes[key[1]] if hole else shapes[q][key].outer

        return [get(p - 1, prev), get(p, i), get(p + 1, j), get(p + 2, nxt)]

    def ring_at(p: int, i, hole: bool, t: np.ndarray) -> np.ndarray:
        r = chain_ring(p, i, hole)
        zs = [z[p - 1] if p >= 1 else None, z[p], z[p + 1], z[p + 2] if p + 2 < n else None]
        return _interpolate_ring(r, zs, t, offset)

    out_z, out_lo, out_hi, out_geoms = [], [], [], []

    def add(zz: float, lo: float, hi: float, geom) -> None:
        if hi > lo and not geom.is_empty:
            out_z.append(zz)
            out_lo.append(lo)
            out_hi.append(hi)
            out_geoms.append(geom)

    joined = fallback = 0
    t = (np.arange(steps) + 0.5) / steps

    def end_cap(p: int, low_end: bool) -> None:
        """The slabs beyond end plane ``p`` (below it for the part's lowest plane): domes for
        the polygons whose profile closes within the limit, the flat cap for the rest."""
        sgn = -1.0 if low_end else 1.0
        cap = z[p] - base.lo_mm[p] if low_end else base.hi_mm[p] - z[p]
        q1, q2 = (p + 1, p + 2) if low_end else (p - 1, p - 2)
        limit = float(end_cap_mm) if end_cap_mm is not None else abs(z[q1] - z[p])
        pieces, flat = [], []  # (edges: outward distances (mm), geometries between them)
        for i, shape in enumerate(shapes[p]):
            dome = None
            if not shape.holes and shape.geom.area > 0:
                if low_end:
                    j = up[p].get(i)
                    k = up[q1].get(j) if j is not None and q1 < n - 1 else None
                else:
                    j = down[q1].get(i)
                    k = down[q2].get(j) if j is not None and q2 >= 0 else None
                if k is not None:
                    chain = [shape.outer, shapes[q1][j].outer, shapes[q2][k].outer]
                    dist = [0.0, -abs(z[q1] - z[p]), -abs(z[q2] - z[p])]
                    dome = _dome(chain, dist, low_end, limit, offset)
            if dome is None:
                flat.append(shape.geom)
                continue
            length, rings_at = dome
            edges = np.linspace(0.0, length, steps + 1)
            pieces.append((edges, list(_polygons(rings_at(t * length)))))
        if not pieces:  # the slab model's flat cap
            lo, hi = (z[p] - cap, z[p]) if low_end else (z[p], z[p] + cap)
            add(z[p], lo, hi, base.geoms[p])
            return
        if flat and cap > 0:
            pieces.append((np.array([0.0, cap]), [_union(flat)]))
        cuts = np.unique(np.concatenate([e for e, _ in pieces]))
        cuts = cuts[np.concatenate([[True], np.diff(cuts) > 1e-9])]
        slabs = []
        for a, b in itertools.pairwise(cuts):
            mid = 0.5 * (a + b)
            geoms = [g[int(np.searchsorted(e, mid)) - 1] for e, g in pieces if e[0] <= mid <= e[-1]]
            zs = (z[p] + sgn * a, z[p] + sgn * b)
            slabs.append((z[p] + sgn * mid, min(zs), max(zs), _union(geoms)))
        for zz, lo, hi, geom in slabs[::-1] if low_end else slabs:
            add(zz, lo, hi, geom)

    for p in range(n):
        first = p == 0 or gap[p - 1]
        last = p == n - 1 or gap[p]
        if first and last:
            add(z[p], base.lo_mm[p], base.hi_mm[p], base.geoms[p])
            continue
        if first:
            end_cap(p, True)
        if last:
            end_cap(p, False)
            continue
        joined += 1
        lo_pieces, hi_pieces, side_lo, side_hi, fell_back = _step_pieces(
            p, shapes, up[p], hole_up[p], ring_at, t
        )
        fallback += fell_back
        edges = np.linspace(z[p], z[p + 1], steps + 1)
        for k in range(steps):
            lo, hi = edges[k], edges[k + 1]
            mid = z[p] + (z[p + 1] - z[p]) * t[k]
            below = [g[k] for g in lo_pieces] + [side_lo]
            above = [g[k] for g in hi_pieces] + [side_hi]
            if t[k] < 0.5:
                add(mid, lo, hi, _union(below))
            elif t[k] > 0.5 or not fell_back:
                add(mid, lo, hi, _union(above))
            else:  # the middle sub-slab of an odd count, split where the slab halves meet
                add(mid, lo, mid, _union(below))
                add(mid, mid, hi, _union(above))
    geoms = tuple(out_geoms)
    return InterpolatedStack(
        np.array(out_z),
        np.array(out_lo),
        np.array(out_hi),
        geoms,
        np.array([g.area for g in geoms]),
        base.gap_steps_mm,
        steps,
        joined,
        fallback,
    )


def _step_pieces(p, shapes, links, hole_links, ring_at, t):
    """The step above plane ``p``: per linked polygon its interpolated polygons over ``t`` on
    the lower and on the upper half of the step (the same unless a hole of one plane has no
    counterpart: it is cut on its own half), the slab-model geometry of each half (polygons
    without a counterpart), and whether anything fell back to the slab model."""
    lower, upper = shapes[p], shapes[p + 1]
    lo_pieces, hi_pieces = [], []
    fell_back = False
    for i, j in links.items():
        poly = _polygons(ring_at(p, i, False, t))
        linked = sorted(a for (ii, a) in hole_links if ii == i)
        linked_up = {b for (jj, b) in hole_links.values() if jj == j}
        for a in linked:
            poly = shapely.difference(poly, _polygons(ring_at(p, (i, a), True, t)))
        lo_holes = [h.fill for a, h in enumerate(lower[i].holes) if a not in linked]
        hi_holes = [h.fill for b, h in enumerate(upper[j].holes) if b not in linked_up]
        fell_back = fell_back or bool(lo_holes or hi_holes)
        lo_pieces.append(
            shapely.difference(poly, shapely.union_all(lo_holes)) if lo_holes else poly
        )
        hi_pieces.append(
            shapely.difference(poly, shapely.union_all(hi_holes)) if hi_holes else poly
        )
    back = set(links.values())
    side_lo = [s.geom for i, s in enumerate(lower) if i not in links and s.geom.area > 0]
    side_hi = [s.geom for j, s in enumerate(upper) if j not in back and s.geom.area > 0]
    fell_back = fell_back or bool(side_lo or side_hi)
    return lo_pieces, hi_pieces, _union(side_lo), _union(side_hi), fell_back


def _union(parts: list) -> shapely.Geometry:
    parts = [g for g in parts if g is not None and not g.is_empty]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)
