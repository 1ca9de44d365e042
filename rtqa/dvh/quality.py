"""SBRT plan-quality indices of one target, relative to the prescription Rx (never the plan max).

Definitions (volumes in cc; PTV = the target's volume inside the dose grid):

* ``CI``        RTOG conformity index ``PIV / TV`` (``PIV``: volume receiving >= Rx).
* ``CI_Paddick`` ``TV_PIV^2 / (TV * PIV)`` (``TV_PIV``: target volume receiving >= Rx).
* ``GI``        Paddick-Lippitz gradient index ``PIV50 / PIV`` (``PIV50``: volume >= 50 % Rx).
* ``R50%``      RTOG ``PIV50 / TV``.
* ``D2cm[%]``   the maximum dose (in % of Rx) at any point 2 cm or more from the target, inside
  the body; ``nan`` when no such point lies inside the dose grid and body.
* ``HI``        ``Dmax / Rx`` with ``Dmax`` the maximum dose inside the target (RTOG).
* ``Spill105[%]`` RTOG high-dose spillage: the volume outside the target (inside the body)
  receiving >= 105 % of Rx, in % of the target volume ``TV``. Another target that shares
  volume with this one and is prescribed at least 105 % of its Rx (a boost reaching beyond it)
  is planned to receive that dose: its volume is not spill.

Isodose volumes are counted inside the body outline (the whole dose grid when no body is
given). With several targets every isodose point is attributed to the nearest target (distance
to points covering each target's contour surface, :func:`rtqa.geometry.distance.distance_to`:
within a fraction of a millimetre next to a surface) and counts only for it; a point equally
near several targets is shared equally, so the targets' shares add up to the whole isodose.
D2cm of one of several targets is taken over the points attributed to it the same way (another
lesion's high dose 2 cm away is not this target's spill). Targets that share volume (a boost PTV
inside its lower-dose PTV) do not compete: each counts the whole isodose around it
(:func:`overlapping`).

Isodose volumes are those of the trilinear, edge-clamped dose field over the voxels of the grid
(a voxel reaches halfway to its neighbours). Voxels whose 3x3x3 neighbourhood lies wholly at or
above the level count whole. A voxel the isodose surface may cross is split into its eight
octants, each inside one interpolation cell, where the field is trilinear with known corner
values (averages of the grid nodes). A box whose corners all lie at or above the level counts
whole, one whose corners all lie below it not at all (a trilinear field takes its extremes at
the corners). A crossed box is halved along every axis (corner values of the halves: exact
averages) down to ``ISODOSE_DEPTH`` levels, unless the field is linear across it within
``ISODOSE_LINEAR_TOL``; each remaining box counts by the volume of the box above the plane of
the field's linear part (centre value: mean of the corners; slope: mean corner difference
along each axis), in closed form. This is exact where the dose is linear across a box and
converges to the trilinear isodose volume as the boxes shrink (error O(box side^2)).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import shapely

from rtqa.dvh.core import MetricUndefined
from rtqa.dvh.structure import occupancy_dvh
from rtqa.geometry.distance import distance_to
from rtqa.geometry.sampling import Occupancy, dose_at_points, occupancy, voxel_edges
from rtqa.model import DoseGrid

#: Levels of boxes in the isodose integration: the octants of a crossed voxel are level 1, their
#: halves level 2, ...; no box is smaller than 1/2^ISODOSE_DEPTH of a voxel side.
ISODOSE_DEPTH = 2
#: A crossed box is not halved further once the trilinear field departs from its linear part by
#: at most this fraction of the linear part's largest range across the box (the box's volume
#: error is then below twice this fraction of the box volume).
ISODOSE_LINEAR_TOL = 1e-3
#: Crossed voxels integrated at a time (bounds the memory of the subdivision).
CROSSED_CHUNK = 20_000
#: Sub-cells per axis when a voxel straddles the 2 cm surface.
SUBCELLS = 4
#: Points projected onto the 2 cm surface at a time, and at most in all, highest bound first
#: (see ``_Field.surface_best``; where more could beat the best, e.g. a dose symmetric about
#: the target, the first already reach the surface maximum).
SURFACE_CHUNK = 4_000
SURFACE_POINTS = 12_000
#: Surface points from which the dose is climbed along the surface, the steps at most, the
#: step (mm) under which a climb stops, and the step (mm) of the central differences.
CLIMB_STARTS = 8
CLIMB_STEPS = 60
CLIMB_TOL_MM = 1e-3
CLIMB_DIFF_MM = 1e-3
#: Voxels taken at a time, hottest first, by the D2cm of one of several targets.
MAX_CHUNK = 4_000
#: Distance (mm) of the D2cm rule.
D2CM_MM = 20.0
#: Points whose distances to two targets differ by at most this (mm) are equally near both.
TIE_MM = 1e-6
#: Dose level of the high-dose spillage, as a fraction of Rx (RTOG: 105 %).
SPILL_LEVEL = 1.05


def plan_quality(
    target: Occupancy,
    dose: DoseGrid,
    rx_gy: float,
    *,
    body: Occupancy | None,
    other_targets: list[Occupancy] | tuple[Occupancy, ...] = (),
    other_rx_gy: list[float | None] | tuple[float | None, ...] | None = None,
) -> dict[str, float]:
    """The indices above for ``target`` on ``dose`` with prescription ``rx_gy`` (Gy): keys
    ``CI``, ``CI_Paddick``, ``GI``, ``R50%``, ``D2cm[%]``, ``HI``, ``Spill105[%]`` plus the
    volumes used (``TV[cc]``, ``PIV[cc]``, ``PIV50[cc]``, ``TV_PIV[cc]``, ``Spill105[cc]``).
    ``other_rx_gy``: the prescription (Gy, None where unknown) of each of ``other_targets``; an
    overlapping one of unknown prescription counts as spill."""
    if not rx_gy or not math.isfinite(rx_gy) or rx_gy <= 0:
        raise MetricUndefined("plan-quality indices need a prescription Rx > 0 Gy")
    tdvh = occupancy_dvh(target, dose, target.name).dvh
    tv = tdvh.known_volume_cc
    if tv <= 0:
        raise MetricUndefined(f"target '{target.name}' has no volume inside the dose grid")
    field = _Field(dose)
    rivals = [o for o in other_targets if not overlapping(target, o)]
    targets = [target, *rivals]
    piv = field.isodose_volume_cc(rx_gy, body, targets)
    piv50 = field.isodose_volume_cc(0.5 * rx_gy, body, targets)
    rxs = list(other_rx_gy) if other_rx_gy is not None else [None] * len(other_targets)
    planned = [
        o
        for o, r in zip(other_targets, rxs, strict=True)
        if r is not None and r >= SPILL_LEVEL * rx_gy and all(o is not x for x in rivals)
    ]
    spill_outside = planned_union(target, planned, dose)
    spill = field.isodose_volume_cc(SPILL_LEVEL * rx_gy, body, targets, outside=spill_outside)
    tv_piv = tdvh.volume_at_dose_cc(rx_gy)
    d2cm = (
        field.max_beyond_among(target, rivals, D2CM_MM, body)
        if rivals
        else field.max_beyond(target, D2CM_MM, body)
    )
    return {
        "CI": piv / tv,
        "CI_Paddick": (tv_piv**2 / (tv * piv)) if piv > 0 else 0.0,
        "GI": piv50 / piv if piv > 0 else math.inf,
        "R50%": piv50 / tv,
        "D2cm[%]": 100.0 * d2cm / rx_gy,
        "HI": tdvh.max_gy / rx_gy,
        "Spill105[%]": 100.0 * spill / tv,
        "TV[cc]": tv,
        "PIV[cc]": piv,
        "PIV50[cc]": piv50,
        "TV_PIV[cc]": tv_piv,
        "Spill105[cc]": spill,
    }


def isodose_volume_cc(dose: DoseGrid, level_gy: float, body: Occupancy | None = None) -> float:
    """Volume (cc) where the trilinear, edge-clamped dose field over the voxels of ``dose`` is at
    or above ``level_gy`` (Gy), weighted by the body occupancy where ``body`` is given (see
    the module docstring)."""
    return _Field(dose).isodose_volume_cc(level_gy, body, ())


#: Points per axis in a voxel where two isodose regions may meet (see :func:`both_at_or_above_cc`).
JOINT_POINTS = 4
JOINT_CHUNK = 20_000


def both_at_or_above_cc(
    dose: DoseGrid, other_gy: np.ndarray, level_gy: float, other_level_gy: float
) -> float:
    """Volume (cc) where the trilinear, edge-clamped field of ``dose`` is at or above
    ``level_gy`` and that of ``other_gy`` (values at the same grid nodes, NaN where unknown) at
    or above ``other_level_gy``: e.g. a mapped prior dose and the current dose.

    Voxels whose 3x3x3 nodes lie at or above both levels count whole, those with all of one
    field's nodes below its level not at all; the others are sampled at
    :data:`JOINT_POINTS`^3 regular points, both fields interpolated there. A voxel next to an
    unknown node of ``other_gy`` is not counted."""
    other = np.asarray(other_gy, dtype=float)
    if other.shape != dose.dose_gy.shape:
        raise ValueError(f"other field {other.shape} is not on the dose grid {dose.dose_gy.shape}")
    a = _Field(dose)
    b = _Field(dataclasses.replace(dose, dose_gy=other))
    with np.errstate(invalid="ignore"):
        whole = (a.lo >= level_gy) & (b.lo >= other_level_gy)
        crossed = np.nonzero((a.hi >= level_gy) & (b.hi >= other_level_gy) & ~whole)
    volume = a.dz[:, None, None] * a.dx * a.dy  # mm^3 per voxel, by plane
    total = float((whole * volume).sum())
    f = JOINT_POINTS
    for s in range(0, crossed[0].size, JOINT_CHUNK):
        idx = tuple(c[s : s + JOINT_CHUNK] for c in crossed)
        with np.errstate(invalid="ignore"):
            hit = (a._subcell_dose(idx, f) >= level_gy) & (
                b._subcell_dose(idx, f) >= other_level_gy
            )
        share = hit.reshape(idx[0].size, f**3).mean(axis=1)
        total += float((share * volume[idx[0], 0, 0]).sum())
    return total / 1000.0


class _Field:
    """The dose grid as a continuous (trilinear, edge-clamped) field over its voxels."""

    def __init__(self, dose: DoseGrid):
        self.grid = dose
        self.d = np.asarray(dose.dose_gy, dtype=float)
        self.lo, self.hi = range_3x3x3(self.d)
        dx, dy, _ = dose.spacing_mm
        self.ze = voxel_edges(dose.z_mm, min(dx, dy) or 1.0)
        self.dz = np.diff(self.ze)
        self.dx, self.dy = dx, dy

    def centres(self, idx: tuple[np.ndarray, ...]) -> np.ndarray:
        g = self.grid
        return np.column_stack([g.x_mm[idx[2]], g.y_mm[idx[1]], g.z_mm[idx[0]]])

    def _subcells(self, idx, f: int, which: np.ndarray) -> np.ndarray:
        """Centres ``(m, 3)`` of the sub-cells ``which`` (flat indices ``voxel * f^3 + (a f + b)
        f + c``, sub-cell (a, b, c) along (z, y, x)) of a regular f x f x f split of the voxels
        ``idx``."""
        t = (np.arange(f) + 0.5) / f - 0.5
        v, sub = np.divmod(which, f**3)
        a, bc = np.divmod(sub, f * f)
        b, c = np.divmod(bc, f)
        k = idx[0][v]
        zc = 0.5 * (self.ze[k] + self.ze[k + 1])  # voxel middle (uneven frames)
        g = self.grid
        return np.column_stack(
            [
                g.x_mm[idx[2][v]] + t[c] * self.dx,
                g.y_mm[idx[1][v]] + t[b] * self.dy,
                zc + t[a] * self.dz[k],
            ]
        )

    def _subcell_dose(self, idx, f: int) -> np.ndarray:
        """Dose (Gy) at all sub-cells of :meth:`_subcells`, in their order: the voxel's 3x3x3
        nodes (clamped at the edges) times fixed interpolation weights per axis."""
        g = self.grid
        k = idx[0]
        nodes = self._nodes(idx)
        t = (np.arange(f) + 0.5) / f - 0.5  # sub-cell offsets, in voxel sides
        w_xy = _weights_1d(t)  # (f, 3): uniform x and y
        # z: physical offsets from the node, over the node steps below and above it
        zc = 0.5 * (self.ze[k] + self.ze[k + 1])
        dz_pts = zc[:, None] + t[None] * self.dz[k][:, None] - g.z_mm[k][:, None]
        below = g.z_mm[k] - self.ze[k]  # half the step to the node below
        above = self.ze[k + 1] - g.z_mm[k]
        frac = np.where(
            dz_pts < 0, dz_pts / (2.0 * below[:, None]), dz_pts / (2.0 * above[:, None])
        )
        w_z = _weights_1d(frac)  # (n, f, 3)
        out = np.einsum("nai,nijk->najk", w_z, nodes)
        out = np.einsum("bj,najk->nabk", w_xy, out)
        out = np.einsum("ck,nabk->nabc", w_xy, out)
        return out.reshape(-1)

    def _nodes(self, idx) -> np.ndarray:
        """Dose (Gy) at the 3x3x3 grid nodes around voxels ``idx`` ``(n, 3, 3, 3)`` (z, y, x),
        clamped at the edges of the grid."""
        k, j, i = idx
        nz, ny, nx = self.d.shape
        step = np.arange(-1, 2)
        kk = np.clip(k[:, None] + step, 0, nz - 1)
        jj = np.clip(j[:, None] + step, 0, ny - 1)
        ii = np.clip(i[:, None] + step, 0, nx - 1)
        return self.d[kk[:, :, None, None], jj[:, None, :, None], ii[:, None, None, :]]

    def isodose_volume_cc(
        self, level: float, body: Occupancy | None, targets, outside: Occupancy | None = None
    ) -> float:
        """Volume (cc) at or above ``level`` (Gy), weighted by the body occupancy (and, with
        ``outside``, by the share of each point's cell outside that structure), counted only
        where ``targets[0]`` is the nearest of ``targets``."""
        inner = np.nonzero(self.lo >= level)
        crossed = np.nonzero((self.hi >= level) & (self.lo < level))
        pts_in = self.centres(inner)
        w_in = self.dz[inner[0]] * self.dx * self.dy
        parts = []
        for s in range(0, crossed[0].size, CROSSED_CHUNK):  # bounded memory
            pts_e, w_e, owner = self._crossed(
                tuple(a[s : s + CROSSED_CHUNK] for a in crossed), level, outside
            )
            keep = w_e > 0
            parts.append((pts_e[keep], w_e[keep], owner[keep] + s))
        pts_e, w_e, owner = (
            (np.concatenate(p) for p in zip(*parts, strict=True))
            if parts
            else (np.empty((0, 3)), np.empty(0), np.empty(0, dtype=np.int64))
        )
        if body is not None:
            w_in = w_in * occupancy_at(body, pts_in)
            w_e = w_e * occupancy_at(body, pts_e)
        if outside is not None:  # the boxes of crossed voxels are weighted in _crossed
            w_in = w_in * (1.0 - voxel_share(outside, inner))
        if len(targets) > 1:
            w_in = w_in * _nearest_is_first(targets, pts_in)
            # a crossed voxel goes whole to the target nearest its centre where that target is
            # nearer by more than the voxel's reach (distances change by at most the
            # separation of two points; 1 mm more for the sampling of the contours); the boxes
            # of the other voxels go by their own centres
            d = np.stack([distance_to(t, self.centres(crossed)) for t in targets])
            margin = d[1:].min(axis=0) - d[0]
            clear = 2.0 * self._reach_mm() + 1.0
            share = (margin > clear)[owner].astype(float)
            unsure = (np.abs(margin) <= clear)[owner]
            if unsure.any():
                share[unsure] = _nearest_is_first(targets, pts_e[unsure])
            w_e = w_e * share
        return float((w_in.sum() + w_e.sum()) / 1000.0)

    def _crossed(self, idx: tuple[np.ndarray, ...], level: float, outside: Occupancy | None = None):
        """Box centres ``(m, 3)`` (mm), their volumes at or above ``level`` (mm^3) and their
        voxels (indices into ``idx``), covering the voxels ``idx`` (see the module docstring).
        With ``outside``, each volume counts only its share outside that structure
        (:func:`share_above`)."""
        g = self.grid
        k, j, i = idx
        n = k.size
        if n == 0:
            return np.empty((0, 3)), np.empty(0), np.empty(0, dtype=np.int64)
        nodes = self._nodes(idx)
        # the field at the voxel's corners, edge and face middles and centre (half-node steps)
        half = nodes
        for axis in (1, 2, 3):
            a0, a1, a2 = (np.take(half, q, axis=axis) for q in range(3))
            half = np.stack([0.5 * (a0 + a1), a1, 0.5 * (a1 + a2)], axis=axis)
        corners = _sub_boxes(half)  # octant (a, b, c) = (z, y, x) half of the voxel
        zc = g.z_mm[k]
        z_lo = np.stack([self.ze[k], zc])
        z_size = np.stack([zc - self.ze[k], self.ze[k + 1] - zc])
        xy_lo = np.stack([g.x_mm[i] - 0.5 * self.dx, g.y_mm[j] - 0.5 * self.dy], axis=1)
        lower = np.empty((8, n, 3))
        size = np.empty((8, n, 3))
        for o, (a, b, c) in enumerate(_OCTANTS):
            lower[o, :, 0] = xy_lo[:, 0] + c * 0.5 * self.dx
            lower[o, :, 1] = xy_lo[:, 1] + b * 0.5 * self.dy
            lower[o, :, 2] = z_lo[int(a)]
            size[o, :, 0] = 0.5 * self.dx
            size[o, :, 1] = 0.5 * self.dy
            size[o, :, 2] = z_size[int(a)]
        lower, size = lower.reshape(-1, 3), size.reshape(-1, 3)
        owner = np.tile(np.arange(n), 8)  # the voxel (index into idx) of each box
        pts, vols, owners = [], [], []
        for depth in range(1, ISODOSE_DEPTH + 1):
            flat = corners.reshape(corners.shape[0], 8)
            full = flat.min(axis=1) >= level
            cross = ~full & (flat.max(axis=1) >= level)
            pts.append(lower[full] + 0.5 * size[full])
            vol = size[full].prod(axis=1)
            if outside is not None:
                vol = vol * (1.0 - share_above(outside, lower[full], size[full]))
            vols.append(vol)
            owners.append(owner[full])
            corners, lower, size, owner = corners[cross], lower[cross], size[cross], owner[cross]
            centre, slope, dev = _linear_part(corners)
            leaf = np.ones(centre.size, dtype=bool)
            if depth < ISODOSE_DEPTH:
                leaf = 2.0 * dev <= ISODOSE_LINEAR_TOL * np.abs(slope).max(axis=1)
            frac = box_fraction_at_or_above(centre[leaf] - level, slope[leaf])
            pts.append(lower[leaf] + 0.5 * size[leaf])
            vol = size[leaf].prod(axis=1) * frac
            if outside is not None:
                linear = (centre[leaf] - level, slope[leaf])
                vol = vol * (1.0 - share_above(outside, lower[leaf], size[leaf], linear))
            vols.append(vol)
            owners.append(owner[leaf])
            corners, lower, size, owner = corners[~leaf], lower[~leaf], size[~leaf], owner[~leaf]
            if corners.shape[0] == 0:
                break
            corners = _sub_boxes(_halve(corners))
            size = 0.5 * size
            lower = (lower[None] + _OCTANTS[:, None, ::-1] * size[None]).reshape(-1, 3)
            size = np.tile(size, (8, 1))
            owner = np.tile(owner, 8)
        return np.concatenate(pts), np.concatenate(vols), np.concatenate(owners)

    def max_beyond(self, target: Occupancy, distance_mm: float, body: Occupancy | None) -> float:
        """Maximum dose (Gy) at points at least ``distance_mm`` from ``target`` (inside body).

        The points are the voxel centres and, in voxels that reach beyond ``distance_mm`` and
        may hold more than the best so far (their neighbourhood maximum is higher), a regular
        ``SUBCELLS``^3 split of the voxel; then the points near the surface are projected onto
        it (:meth:`surface_best`). Distances are exact for the slab model; a sub-cell
        whose distance is settled by its voxel centre's (a distance changes by at most the
        separation of two points) is not measured again.
        """
        g = self.grid
        half_diag = self._reach_mm()
        reach = distance_mm + half_diag
        x, y, z = target.centres()
        nz_, ny_, nx_ = np.nonzero(target.values > 0)
        if nz_.size == 0:
            return math.nan
        box = [
            (x[nx_].min(), x[nx_].max()),
            (y[ny_].min(), y[ny_].max()),
            (z[nz_].min(), z[nz_].max()),
        ]
        near_axes = [
            (c >= lo - reach) & (c <= hi + reach)
            for c, (lo, hi) in zip((g.x_mm, g.y_mm, g.z_mm), box, strict=True)
        ]
        near_box = near_axes[2][:, None, None] & near_axes[1][None, :, None] & near_axes[0][None]
        body_ok = self._body_mask(body)
        far_vals = self.d[~near_box & body_ok]
        best = float(far_vals.max()) if far_vals.size else -math.inf
        idx = np.nonzero(near_box & body_ok & (self.hi > best))
        centres = self.centres(idx)
        dc, _ = _distance(target, centres)
        far_c = dc >= distance_mm
        if far_c.any():
            best = max(best, float(self.d[idx][far_c].max()))
        # voxels whose interior may be hotter than the best so far: sub-cells
        split = (self.hi[idx] > best) & (dc + half_diag >= distance_mm)
        far_hot = np.nonzero((~near_box) & body_ok & (self.hi > best))
        near = tuple(a[split] for a in idx)
        anchors = (dc[split], centres[split], _distance(target, centres[split], True)[1])
        best = self._best_of_subcells(target, near, anchors, SUBCELLS, best, distance_mm, body)
        best = self._best_of_subcells(target, far_hot, None, SUBCELLS, best, distance_mm, body)
        # the maximum of a dose falling away from the target lies on the distance surface,
        # between the points above: the points near it are projected onto it
        again = np.flatnonzero(self.hi[near] > best)
        if again.size:
            sel = tuple(a[again] for a in near)
            best = self.surface_best(target, (), sel, best, distance_mm, body)
        return best if best > -math.inf else math.nan

    def _best_of_subcells(self, target, sel, anchor, f, best, distance_mm, body) -> float:
        """The larger of ``best`` and the highest dose at the points of a regular ``f``^3 split of
        voxels ``sel`` that lie ``distance_mm`` or more from ``target`` (inside the body).
        ``anchor``: per voxel its centre's distance, the centre and the target point nearest
        it (or None: every point is far enough)."""
        if sel[0].size == 0:
            return best
        n_sub = f**3
        dose_pts = self._subcell_dose(sel, f)
        hot = np.nonzero(dose_pts > best)[0]
        pts = self._subcells(sel, f, hot)
        sure = np.ones(hot.size, dtype=bool)
        if anchor is not None:
            # bounds from the voxel centre c: d(c) - |p - c| <= d(p) <= |p - q| (q: the
            # target point nearest c), else d(c) + |p - c|
            d_c, c, q = (None if a is None else a[hot // n_sub] for a in anchor)
            r = np.linalg.norm(pts - c, axis=1)
            upper = d_c + r if q is None else np.linalg.norm(pts - q, axis=1)
            keep = upper >= distance_mm
            hot, pts = hot[keep], pts[keep]
            sure = (d_c - r)[keep] >= distance_mm
        if body is not None:
            inside = occupancy_at(body, pts) >= 0.5
            hot, pts, sure = hot[inside], pts[inside], sure[inside]
        if sure.any():
            best = max(best, float(dose_pts[hot[sure]].max()))
        # the rest, hottest first, until none can beat the best
        order = np.argsort(-dose_pts[hot[~sure]], kind="stable")
        rest, pts = hot[~sure][order], pts[~sure][order]
        for s in range(0, rest.size, 2_000):
            chunk = slice(s, s + 2_000)
            if dose_pts[rest[s]] <= best:
                break
            ok = (dose_pts[rest[chunk]] > best) & (_distance(target, pts[chunk])[0] >= distance_mm)
            if ok.any():
                best = max(best, float(dose_pts[rest[chunk]][ok].max()))
        return best

    def max_beyond_among(
        self, target: Occupancy, rivals, distance_mm: float, body: Occupancy | None
    ) -> float:
        """Maximum dose (Gy) at points at least ``distance_mm`` from ``target`` that are no
        nearer to any of ``rivals`` (the other targets) than to it, inside the body: the D2cm
        of one of several lesions, over the points attributed to it as the isodose volumes are.

        Voxels are taken hottest first (by the highest node around them); a voxel whose every
        point is nearer ``target`` than ``distance_mm`` or nearer a rival than ``target`` (by
        more than its reach) is passed over whole, the others are split into ``SUBCELLS``^3
        points (and their centre), each judged on its own."""
        reach = self._reach_mm()
        idx = np.nonzero(self._body_mask(body))
        order = np.argsort(-self.hi[idx], kind="stable")
        best = -math.inf
        split: list[tuple[np.ndarray, ...]] = []
        for s in range(0, order.size, MAX_CHUNK):
            sel = order[s : s + MAX_CHUNK]
            if self.hi[idx][sel[0]] <= best:
                break
            vox = tuple(a[sel] for a in idx)
            c = self.centres(vox)
            d_t = _distance(target, c)[0]
            d_r = np.min([distance_to(r, c) for r in rivals], axis=0)
            # distances change by at most the separation of two points (1 mm more for the
            # sampling of the rivals' contours)
            maybe = (d_t + reach >= distance_mm) & (d_r + reach + 1.0 >= d_t - reach)
            maybe &= self.hi[vox] > best
            if not maybe.any():
                continue
            vox = tuple(a[maybe] for a in vox)
            split.append(vox)
            best = self._best_among(target, rivals, vox, SUBCELLS, best, distance_mm, body)
        # the maximum lies on the distance surface, between the points above: the points near
        # it are projected onto it
        if split:
            vox = tuple(np.concatenate(a) for a in zip(*split, strict=True))
            again = np.flatnonzero(self.hi[vox] > best)
            if again.size:
                sel = tuple(a[again] for a in vox)
                best = self.surface_best(target, rivals, sel, best, distance_mm, body)
        return best if best > -math.inf else math.nan

    def _best_among(self, target, rivals, vox, f, best, distance_mm, body) -> float:
        """The larger of ``best`` and the highest dose at the centres and the ``f``^3 split
        points of voxels ``vox`` that lie ``distance_mm`` or more from ``target`` and no nearer
        to any of ``rivals`` (inside the body)."""
        n_sub = f**3
        dose_pts = np.concatenate([self._subcell_dose(vox, f), self.d[vox]])
        pts = np.concatenate(
            [self._subcells(vox, f, np.arange(vox[0].size * n_sub)), self.centres(vox)]
        )
        hot = np.nonzero(dose_pts > best)[0]
        pts, dose_pts = pts[hot], dose_pts[hot]
        if body is not None:
            inside = occupancy_at(body, pts) >= 0.5
            pts, dose_pts = pts[inside], dose_pts[inside]
        d_p = _distance(target, pts)[0]
        ok = d_p >= distance_mm
        if ok.any():
            near_rival = np.min([distance_to(r, pts[ok]) for r in rivals], axis=0)
            ok[np.flatnonzero(ok)[near_rival < d_p[ok] - TIE_MM]] = False
        if ok.any():
            best = max(best, float(dose_pts[ok].max()))
        return best

    def surface_best(self, target, rivals, vox, best, distance_mm, body) -> float:
        """The larger of ``best`` and the highest dose found on the surface ``distance_mm``
        from ``target`` near voxels ``vox``, where the maximum of a dose falling away from the
        target lies.

        The ``SUBCELLS``^3 split points of the voxels within half a sub-cell diagonal of the
        surface are projected onto it: a point ``p`` at distance ``d`` from its nearest target
        point ``q`` moves along the ray from ``q`` to ``q + (p - q) distance_mm / d`` (from
        outside, onto the segment from ``q``, whose points all have ``q`` as nearest target
        point; from inside, beyond ``p``, kept only where its distance is measured at
        ``distance_mm`` or more). Points are taken by an upper bound of their projection's dose
        (their dose plus the largest dose gradient around their voxel times the distance moved),
        highest first, until none can beat the best or :data:`SURFACE_POINTS` were taken. From
        the :data:`CLIMB_STARTS` hottest projections the dose is then climbed along the surface
        (:meth:`_climb`). Every point counted lies on or beyond the surface, inside the body and
        no nearer a rival than ``target``: the result never exceeds the true maximum."""
        f = SUBCELLS
        n_sub = f**3
        g = self.grid
        k = vox[0]
        # the largest gradient (Gy/mm) over the 3x3x3 nodes around each voxel (a trilinear
        # field's gradient is a mean of node differences)
        nodes = self._nodes(vox)
        below = g.z_mm[k] - g.z_mm[np.maximum(k - 1, 0)]
        above = g.z_mm[np.minimum(k + 1, g.z_mm.size - 1)] - g.z_mm[k]
        step_z = np.where(below > 0, below, above)
        step_z = np.where((above > 0) & (above < step_z), above, step_z)
        step_z = np.where(step_z > 0, step_z, 1.0)
        grad = np.sqrt(
            (np.abs(np.diff(nodes, axis=3)).max(axis=(1, 2, 3)) / (self.dx or 1.0)) ** 2
            + (np.abs(np.diff(nodes, axis=2)).max(axis=(1, 2, 3)) / (self.dy or 1.0)) ** 2
            + (np.abs(np.diff(nodes, axis=1)).max(axis=(1, 2, 3)) / step_z) ** 2
        )
        # half a sub-cell diagonal (mm) per voxel
        reach = 0.5 * np.sqrt((self.dx / f) ** 2 + (self.dy / f) ** 2 + (self.dz[k] / f) ** 2)
        dose_pts = self._subcell_dose(vox, f)
        owner = np.repeat(np.arange(k.size), n_sub)
        # cheap bounds on each point's distance from its voxel centre c and the target point q
        # nearest c: d(c) - |p - c| <= d(p) <= |p - q|
        centres = self.centres(vox)
        d_c, q_c = _distance(target, centres, True)
        if q_c is None:
            return best  # no contours: no nearest points to project from
        pts_all = self._subcells(vox, f, np.arange(owner.size))
        lower = d_c[owner] - np.linalg.norm(pts_all - centres[owner], axis=1)
        upper = np.linalg.norm(pts_all - q_c[owner], axis=1)
        r = reach[owner]
        moved = np.clip(np.maximum(upper - distance_mm, distance_mm - lower), 0.0, r)
        bound = dose_pts + grad[owner] * moved
        near_surface = (lower <= distance_mm + r) & (upper >= distance_mm - r)
        cand = np.nonzero((bound > best) & near_surface)[0]
        cand = cand[np.argsort(-bound[cand], kind="stable")][:SURFACE_POINTS]
        found: list[tuple[np.ndarray, np.ndarray]] = []
        for s in range(0, cand.size, SURFACE_CHUNK):
            chunk = cand[s : s + SURFACE_CHUNK]
            if bound[chunk[0]] <= best:
                break
            chunk = chunk[bound[chunk] > best]
            pts = pts_all[chunk]
            d, q = _distance(target, pts, True)
            on = (np.abs(d - distance_mm) <= reach[owner[chunk]]) & (d > 0)
            if q is None or not on.any():
                continue
            proj, ok = self._onto_surface(target, rivals, pts[on], d[on], q[on], distance_mm, body)
            if ok.any():
                dose = dose_at_points(g, proj[ok])
                best = max(best, float(dose.max()))
                found.append((proj[ok], dose))
        if found:
            pts = np.concatenate([a for a, _ in found])
            dose = np.concatenate([b for _, b in found])
            top = np.argsort(-dose, kind="stable")[:CLIMB_STARTS]
            best = max(best, self._climb(target, rivals, pts[top], distance_mm, body, reach.max()))
        return best

    def _onto_surface(self, target, rivals, pts, d, q, distance_mm, body):
        """Points ``pts`` (distances ``d``, nearest target points ``q``) moved along their rays
        onto the surface ``distance_mm`` from ``target``, and which of them count (on or beyond
        the surface, inside the body, no nearer a rival)."""
        on = distance_mm * (1.0 + 1e-12) + 1e-9  # onto the surface, never short of it
        proj = q + (pts - q) * (on / d)[:, None]
        ok = np.ones(proj.shape[0], dtype=bool)
        inward = d < on
        if inward.any():
            ok[inward] = _distance(target, proj[inward])[0] >= distance_mm
        if body is not None:
            ok &= occupancy_at(body, proj) >= 0.5
        if len(rivals) and ok.any():
            d_t = _distance(target, proj[ok])[0]
            near_rival = np.min([distance_to(r, proj[ok]) for r in rivals], axis=0)
            ok[np.flatnonzero(ok)[near_rival < d_t - TIE_MM]] = False
        return proj, ok

    def _climb(self, target, rivals, starts, distance_mm, body, step_mm) -> float:
        """The highest dose reached climbing from the surface points ``starts`` along the
        surface ``distance_mm`` from ``target``: each step moves every point up the dose's
        tangential gradient (central differences of the trilinear field) by its step length,
        back onto the surface (:meth:`_onto_surface`), and keeps the move where the dose rose
        and the point still counts, else halves that point's step; until every step is under
        :data:`CLIMB_TOL_MM` or :data:`CLIMB_STEPS` steps."""
        g = self.grid
        pts = starts.copy()
        dose = dose_at_points(g, pts)
        step = np.full(pts.shape[0], float(step_mm))
        eye = np.eye(3) * CLIMB_DIFF_MM
        for _ in range(CLIMB_STEPS):
            live = step >= CLIMB_TOL_MM
            if not live.any():
                break
            p = pts[live]
            grad = np.column_stack(
                [
                    dose_at_points(g, p + e) - dose_at_points(g, p - e)
                    for e in eye  # x, y, z
                ]
            ) / (2.0 * CLIMB_DIFF_MM)
            d, q = _distance(target, p, True)
            if q is None:
                break
            normal = (p - q) / np.maximum(d, 1e-12)[:, None]
            tangent = grad - (grad * normal).sum(axis=1)[:, None] * normal
            norm = np.linalg.norm(tangent, axis=1)
            flat = norm <= 0
            moved = p + tangent / np.where(flat, 1.0, norm)[:, None] * step[live][:, None]
            d_m, q_m = _distance(target, moved, True)
            if q_m is None:
                break
            proj, ok = self._onto_surface(
                target, rivals, moved, np.maximum(d_m, 1e-12), q_m, distance_mm, body
            )
            new = dose_at_points(g, proj)
            better = ok & (new > dose[live]) & ~flat & (d_m > 0)
            idx = np.flatnonzero(live)
            pts[idx[better]] = proj[better]
            dose[idx[better]] = new[better]
            step[idx[~better]] *= 0.5
        return float(dose.max())

    def _reach_mm(self) -> float:
        """The farthest a point of a voxel lies from its node (mm); the node need not be
        mid-voxel in z."""
        z = self.grid.z_mm
        z_half = max(float(np.max(z - self.ze[:-1])), float(np.max(self.ze[1:] - z)))
        return math.sqrt(0.25 * self.dx**2 + 0.25 * self.dy**2 + z_half**2)

    def _body_mask(self, body: Occupancy | None) -> np.ndarray:
        """Dose voxels whose centre lies inside the body (occupancy >= 0.5)."""
        g = self.grid
        if body is None:
            return np.ones(g.dose_gy.shape, dtype=bool)
        # the lattice cell holding a voxel centre, one axis at a time (as occupancy_at)
        cells = [
            _lookup_index(body, axis, centres)
            for axis, centres in enumerate((g.x_mm, g.y_mm, g.z_mm))
        ]
        (i, ok_i), (j, ok_j), (k, ok_k) = cells
        inside = body.values[np.ix_(k[ok_k], j[ok_j], i[ok_i])] >= 0.5
        mask = np.zeros(g.dose_gy.shape, dtype=bool)
        mask[np.ix_(ok_k, ok_j, ok_i)] = inside
        return mask


def planned_union(target: Occupancy, others: list[Occupancy], dose: DoseGrid) -> Occupancy:
    """``target`` united with ``others`` on the target's lattice (each other target sampled
    again from its contours on that lattice where it lies on another); one without contour
    geometry on another lattice is left out (its volume then counts as spill)."""
    out = target
    for other in others:
        if not other.lattice.same_as(target.lattice):
            if other.slabs is None:
                continue
            other = occupancy(other.slabs, dose, factors=target.lattice.factors, name=other.name)
        out = out.union(other)
    return out


def overlapping(a: Occupancy, b: Occupancy) -> bool:
    """Whether targets ``a`` and ``b`` share volume: a cell of ``a`` occupied at least half
    whose centre lies in a cell of ``b`` occupied at least half (a boost PTV inside its lower-dose
    PTV, two PTVs of one lesion). Such targets do not compete for isodose points: each counts
    the whole isodose around it (with its other rivals), as nearest-target attribution would
    give the spill of the inner one to the outer."""
    k, j, i = np.nonzero(a.values >= 0.5)
    if k.size == 0:
        return False
    x, y, z = a.centres()
    return bool(np.any(occupancy_at(b, np.column_stack([x[i], y[j], z[k]])) >= 0.5))


def _nearest_is_first(targets, pts: np.ndarray) -> np.ndarray:
    """The share of each point ``(n, 3)`` that belongs to the first of ``targets``: 1.0 where
    it is the nearest, 0.0 where another is, ``1 / k`` where it is one of ``k`` targets equally
    near (within :data:`TIE_MM`), so that the shares of all targets add up to the whole."""
    if pts.shape[0] == 0:
        return np.zeros(0)
    dist = np.stack([distance_to(t, pts) for t in targets])
    tied = dist <= dist.min(axis=0) + TIE_MM
    return tied[0] / np.count_nonzero(tied, axis=0)


def _distance(
    target: Occupancy, pts: np.ndarray, nearest: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Distance (mm) from points ``(n, 3)`` to ``target`` and, if ``nearest`` and its contours
    are known, a nearest point of the target to each ``(n, 3)`` (else ``None``). With contours
    the distance is exact for the slab model: the least over slabs of ``sqrt(d_xy^2 + d_z^2)``,
    0 inside."""
    if target.slabs is None:
        return distance_to(target, pts), None
    slabs = target.slabs
    columns, inv = np.unique(pts[:, 0] + 1j * pts[:, 1], return_inverse=True)
    flat = shapely.points(columns.real, columns.imag)
    z = pts[:, 2]
    best = np.full(pts.shape[0], np.inf)
    which = np.full(pts.shape[0], -1)
    for s, (geom, lo, hi) in enumerate(zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True)):
        if geom.is_empty:
            continue
        dz = np.maximum(np.maximum(lo - z, z - hi), 0.0)
        if not (dz * dz < best).any():
            continue
        shapely.prepare(geom)
        d2 = shapely.distance(flat, geom)[inv] ** 2 + dz * dz
        closer = d2 < best
        best[closer] = d2[closer]
        which[closer] = s
    if not nearest:
        return np.sqrt(best), None
    near = pts.copy()
    for s in np.unique(which[which >= 0]):
        sel = np.nonzero(which == s)[0]
        cols, back = np.unique(inv[sel], return_inverse=True)
        line = shapely.shortest_line(flat[cols], slabs.geoms[s])
        ends = shapely.get_coordinates(line).reshape(-1, 2, 2)[:, 1]
        near[sel, :2] = ends[back]
        near[sel, 2] = np.clip(z[sel], slabs.lo_mm[s], slabs.hi_mm[s])
    return np.sqrt(best), near


#: Octant offsets (a, b, c) along (z, y, x), in the order :func:`_sub_boxes` returns them.
_OCTANTS = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
#: Corner offsets (-1/2 or +1/2 of a box side) along one axis.
_SIGN = np.array([-0.5, 0.5])


def _weights_1d(frac: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights ``(..., 3)`` on the nodes -1, 0, +1 for offsets ``frac``
    (in node steps, -1..1) from the middle node."""
    neg = np.minimum(frac, 0.0)
    pos = np.maximum(frac, 0.0)
    return np.stack([-neg, 1.0 - np.abs(frac), pos], axis=-1)


def range_3x3x3(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum over each node's 3x3x3 neighbourhood (clamped at the edges)."""
    out = []
    for op in (np.minimum, np.maximum):
        r = d.copy()
        for axis in range(3):
            a = np.moveaxis(r, axis, 0)  # a view: writes go to r
            if a.shape[0] < 2:
                continue
            pair = op(a[:-1], a[1:])
            a[1:-1] = op(pair[:-1], pair[1:])
            a[0] = pair[0]
            a[-1] = pair[-1]
        out.append(r)
    return out[0], out[1]


def _halve(corners: np.ndarray) -> np.ndarray:
    """Corner values ``(m, 2, 2, 2)`` of trilinear boxes -> the values ``(m, 3, 3, 3)`` at their
    corners, edge and face middles and centre (exact: averages)."""
    m = corners.shape[0]
    out = np.empty((m, 3, 3, 3))
    out[:, ::2, ::2, ::2] = corners
    out[:, 1, ::2, ::2] = 0.5 * (out[:, 0, ::2, ::2] + out[:, 2, ::2, ::2])
    out[:, :, 1, ::2] = 0.5 * (out[:, :, 0, ::2] + out[:, :, 2, ::2])
    out[:, :, :, 1] = 0.5 * (out[:, :, :, 0] + out[:, :, :, 2])
    return out


def _sub_boxes(values: np.ndarray) -> np.ndarray:
    """The eight half-size boxes ``(8 m, 2, 2, 2)`` (octant-major, order of ``_OCTANTS``) of the
    values ``(m, 3, 3, 3)`` at half-steps."""
    windows = np.lib.stride_tricks.sliding_window_view(values, (2, 2, 2), axis=(1, 2, 3))
    return np.ascontiguousarray(windows.transpose(1, 2, 3, 0, 4, 5, 6)).reshape(-1, 2, 2, 2)


def _linear_part(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear part of trilinear boxes with corner values ``(m, 2, 2, 2)`` (z, y, x): its value
    at the centre (mean of the corners), its change across the box along x, y, z ``(m, 3)``
    (mean corner difference) and the largest departure of the field from it (at a corner)."""
    centre = corners.mean(axis=(1, 2, 3))
    dz = (corners[:, 1] - corners[:, 0]).mean(axis=(1, 2))
    dy = (corners[:, :, 1] - corners[:, :, 0]).mean(axis=(1, 2))
    dx = (corners[:, :, :, 1] - corners[:, :, :, 0]).mean(axis=(1, 2))
    linear = (
        centre[:, None, None, None]
        + dz[:, None, None, None] * _SIGN[:, None, None]
        + dy[:, None, None, None] * _SIGN[None, :, None]
        + dx[:, None, None, None] * _SIGN[None, None, :]
    )
    dev = np.abs(corners - linear).reshape(corners.shape[0], 8).max(axis=1)
    return centre, np.column_stack([dx, dy, dz]), dev


def box_fraction_at_or_above(s: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Fraction of a box where a field linear across it is at or above a level.

    ``s`` ``(m,)``: the field at the box centre minus the level; ``change`` ``(m, 3)``: the
    change of the field across the box along each side. The fraction is the volume of the unit
    cube on one side of a plane: ``P(c1 U1 + c2 U2 + c3 U3 <= t)`` for independent uniform
    ``U`` on [0, 1], ``c = |change|``, ``t = (c1 + c2 + c3) / 2 - |s|``, taken for the smaller
    side and mirrored (the distribution is symmetric). Evaluated without cancellation for any
    ratio of the ``c`` (a side with no change included).
    """
    c = -np.sort(-np.abs(change), axis=1)  # c1 >= c2 >= c3 >= 0
    c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2]
    t = 0.5 * (c1 + c2 + c3) - np.abs(s)
    smaller = (t >= 0).astype(float)  # a constant field: at or above iff s >= 0
    ok = c1 > 0
    t, c1, c2, c3 = t[ok], c1[ok], c2[ok], c3[ok]
    smaller[ok] = np.clip((_mean_excess(t, c2, c3) - _mean_excess(t - c1, c2, c3)) / c1, 0, 1)
    return np.where(s > 0, 1.0 - smaller, smaller)


def _mean_excess(t: np.ndarray, c2: np.ndarray, c3: np.ndarray) -> np.ndarray:
    """``E[(t - c2 U2 - c3 U3)+]`` for uniform ``U`` on [0, 1] and ``c2 >= c3 >= 0``: piecewise
    polynomial in ``t``, each piece written without dividing by a vanishing width."""
    out = np.zeros_like(t)
    past = t >= c2 + c3
    upper = ~past & (t >= c2)
    middle = ~past & ~upper & (t >= c3)
    low = ~past & ~upper & ~middle & (t > 0)
    out[past] = t[past] - 0.5 * (c2[past] + c3[past])
    for sel in (upper, middle):
        tt, b2, b3 = t[sel], c2[sel], c3[sel]
        out[sel] = (3.0 * tt * tt - 3.0 * tt * b3 + b3 * b3) / (6.0 * b2)
    u, b2, b3 = t[upper] - c2[upper], c2[upper], c3[upper]
    out[upper] -= u * (u / b3) * (u / b2) / 6.0
    tt, b2, b3 = t[low], c2[low], c3[low]
    out[low] = tt * (tt / b2) * (tt / b3) / 6.0
    return out


#: Sample points per box side where the share of a box inside a structure is estimated.
SHARE_POINTS = 4


def share_above(
    occ: Occupancy,
    lower: np.ndarray,
    size: np.ndarray,
    linear: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Share (0..1) of each box (lower corner and sides ``(m, 3)``, mm, x y z) that ``occ``
    occupies, from :data:`SHARE_POINTS`^3 regular points; with ``linear = (s, change)`` (the
    field's linear part minus the level at the centre and its change across the box, as for
    :func:`box_fraction_at_or_above`) only over the points where that part is at or above the
    level (all points where none is)."""
    m = lower.shape[0]
    if m == 0:
        return np.zeros(0)
    t = (np.arange(SHARE_POINTS) + 0.5) / SHARE_POINTS  # in box sides from the lower corner
    grid = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)  # (p, 3)
    pts = lower[:, None, :] + grid[None] * size[:, None, :]
    occ_pts = occupancy_at(occ, pts.reshape(-1, 3)).reshape(m, -1)
    if linear is None:
        return occ_pts.mean(axis=1)
    s, change = linear
    above = (s[:, None] + change @ (grid - 0.5).T) >= 0.0  # (m, p)
    n_above = above.sum(axis=1)
    inside = np.where(above, occ_pts, 0.0).sum(axis=1)
    return np.where(n_above > 0, inside / np.maximum(n_above, 1), occ_pts.mean(axis=1))


def voxel_share(occ: Occupancy, idx: tuple[np.ndarray, ...]) -> np.ndarray:
    """Share (0..1) of each dose voxel ``idx = (k, j, i)`` that ``occ`` occupies: the mean of
    its lattice cells (``occ`` on a lattice of the same dose grid, each voxel split
    ``factors`` times; 0 outside the occupancy's array)."""
    fz, fy, fx = occ.lattice.factors
    k, j, i = idx
    out = np.zeros(k.size)
    nz, ny, nx = occ.values.shape
    a, b, c = k * fz - occ.offset[0], j * fy - occ.offset[1], i * fx - occ.offset[2]
    near = (a > -fz) & (a < nz) & (b > -fy) & (b < ny) & (c > -fx) & (c < nx)
    if not near.any():
        return out
    padded = np.pad(occ.values, ((fz, fz), (fy, fy), (fx, fx)))
    a, b, c = a[near] + fz, b[near] + fy, c[near] + fx
    total = np.zeros(a.size)
    for dk in range(fz):
        for dj in range(fy):
            for di in range(fx):
                total += padded[a + dk, b + dj, c + di]
    out[near] = total / (fz * fy * fx)
    return out


def occupancy_at(occ: Occupancy, pts: np.ndarray) -> np.ndarray:
    """Occupancy fraction of the lattice cell holding each point (0 outside the array)."""
    (i, ok_i), (j, ok_j), (k, ok_k) = (_lookup_index(occ, a, pts[:, a]) for a in range(3))
    ok = ok_i & ok_j & ok_k
    out = np.zeros(pts.shape[0])
    out[ok] = occ.values[k[ok], j[ok], i[ok]]
    return out


def _lookup_index(occ: Occupancy, axis: int, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``occ.values`` along ``axis`` (0: x, 1: y, 2: z) of the lattice cell holding
    each coordinate ``at`` (mm), and whether it lies inside the array."""
    lat = occ.lattice
    if axis == 2:
        idx = np.searchsorted(lat.z_edges_mm, at, side="right") - 1
    else:
        edges, step = (lat.x_edges_mm, lat.dx) if axis == 0 else (lat.y_edges_mm, lat.dy)
        idx = np.floor((at - edges[0]) / step).astype(np.int64)
    idx = idx - occ.offset[2 - axis]
    return idx, (idx >= 0) & (idx < occ.values.shape[2 - axis])
