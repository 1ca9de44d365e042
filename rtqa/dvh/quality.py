"""SBRT plan-quality indices of one target, relative to the prescription Rx (never the plan max).

Definitions (volumes in cc; PTV = the target's volume inside the dose grid):

* ``CI``        RTOG conformity index ``PIV / TV`` (``PIV``: volume receiving >= Rx).
* ``CI_Paddick`` ``TV_PIV^2 / (TV * PIV)`` (``TV_PIV``: target volume receiving >= Rx).
* ``GI``        Paddick-Lippitz gradient index ``PIV50 / PIV`` (``PIV50``: volume >= 50 % Rx).
* ``R50%``      RTOG ``PIV50 / TV``.
* ``D2cm[%]``   the maximum dose (in % of Rx) at any point 2 cm or more from the target, inside
  the body; ``nan`` when no such point lies inside the dose grid and body.
* ``HI``        ``Dmax / Rx`` with ``Dmax`` the maximum dose inside the target (RTOG).

Isodose volumes are counted inside the body outline (the whole dose grid when no body is
given). With several targets every isodose point is attributed to the nearest target (exact
distance to the contours) and counts only for it. Isodose volumes are integrated with
sub-voxel accuracy: voxels whose 3x3x3 neighbourhood lies wholly above the level count whole;
voxels the isodose surface may cross are split into sub-cells, each counted by the fraction of
it above the level (a linear ramp across the cell along the local dose gradient, symmetric about
the isodose surface).
"""

from __future__ import annotations

import math

import numpy as np

from rtqa.dvh.core import MetricUndefined
from rtqa.dvh.structure import occupancy_dvh
from rtqa.geometry.distance import distance_to
from rtqa.geometry.sampling import Occupancy, voxel_edges
from rtqa.model import DoseGrid

#: Points (sub-cells) used at most per isodose surface.
MAX_SURFACE_POINTS = 4_000_000
#: Sub-cells per axis when a voxel straddles the 2 cm surface.
SUBCELLS = 4
#: Distance (mm) of the D2cm rule.
D2CM_MM = 20.0


def plan_quality(
    target: Occupancy,
    dose: DoseGrid,
    rx_gy: float,
    *,
    body: Occupancy | None,
    other_targets: list[Occupancy] | tuple[Occupancy, ...] = (),
) -> dict[str, float]:
    """The indices above for ``target`` on ``dose`` with prescription ``rx_gy`` (Gy): keys
    ``CI``, ``CI_Paddick``, ``GI``, ``R50%``, ``D2cm[%]``, ``HI`` plus the volumes used
    (``TV[cc]``, ``PIV[cc]``, ``PIV50[cc]``, ``TV_PIV[cc]``)."""
    if not rx_gy or not math.isfinite(rx_gy) or rx_gy <= 0:
        raise MetricUndefined("plan-quality indices need a prescription Rx > 0 Gy")
    tdvh = occupancy_dvh(target, dose, target.name).dvh
    tv = tdvh.known_volume_cc
    if tv <= 0:
        raise MetricUndefined(f"target '{target.name}' has no volume inside the dose grid")
    field = _Field(dose)
    targets = [target, *other_targets]
    piv = field.isodose_volume_cc(rx_gy, body, targets)
    piv50 = field.isodose_volume_cc(0.5 * rx_gy, body, targets)
    tv_piv = tdvh.volume_at_dose_cc(rx_gy)
    return {
        "CI": piv / tv,
        "CI_Paddick": (tv_piv**2 / (tv * piv)) if piv > 0 else 0.0,
        "GI": piv50 / piv if piv > 0 else math.inf,
        "R50%": piv50 / tv,
        "D2cm[%]": 100.0 * field.max_beyond(target, D2CM_MM, body) / rx_gy,
        "HI": tdvh.max_gy / rx_gy,
        "TV[cc]": tv,
        "PIV[cc]": piv,
        "PIV50[cc]": piv50,
        "TV_PIV[cc]": tv_piv,
    }


class _Field:
    """The dose grid as a continuous (trilinear, edge-clamped) field over its voxels."""

    def __init__(self, dose: DoseGrid):
        from scipy import ndimage

        self.grid = dose
        d = dose.dose_gy.astype(float)
        self.hi = ndimage.maximum_filter(d, size=3, mode="nearest")
        self.lo = ndimage.minimum_filter(d, size=3, mode="nearest")
        dx, dy, _ = dose.spacing_mm
        self.ze = voxel_edges(dose.z_mm, min(dx, dy) or 1.0)
        self.dz = np.diff(self.ze)
        self.dx, self.dy = dx, dy

    def at(self, pts: np.ndarray) -> np.ndarray:
        """Dose (Gy) at points ``(n, 3)`` (x, y, z), trilinear, clamped at the edges."""
        from scipy import ndimage

        g = self.grid
        coords = [
            _frac_index(g.z_mm, pts[:, 2]),
            _uniform_index(g.y_mm, pts[:, 1]),
            _uniform_index(g.x_mm, pts[:, 0]),
        ]
        return ndimage.map_coordinates(g.dose_gy, coords, order=1, mode="nearest")

    def centres(self, idx: tuple[np.ndarray, ...]) -> np.ndarray:
        g = self.grid
        return np.column_stack([g.x_mm[idx[2]], g.y_mm[idx[1]], g.z_mm[idx[0]]])

    def _subcells(self, idx, f: int):
        """Sub-cell centres (n * f^3, 3) and their volumes (mm^3) of voxels ``idx``."""
        t = (np.arange(f) + 0.5) / f - 0.5
        oz, oy, ox = (a.ravel() for a in np.meshgrid(t, t, t, indexing="ij"))
        c = self.centres(idx)
        dz = self.dz[idx[0]]
        pts = np.empty((c.shape[0], f**3, 3))
        pts[..., 0] = c[:, 0:1] + ox[None] * self.dx
        pts[..., 1] = c[:, 1:2] + oy[None] * self.dy
        pts[..., 2] = c[:, 2:3] + oz[None] * dz[:, None]
        # z cell edges of uneven frames: keep sub-cells inside the voxel's z extent
        vol = np.repeat(dz * self.dx * self.dy / f**3, f**3)
        h = np.repeat(
            np.column_stack([np.full(dz.size, self.dx / f), np.full(dz.size, self.dy / f), dz / f]),
            f**3,
            axis=0,
        )
        return pts.reshape(-1, 3), vol, h

    def isodose_volume_cc(self, level: float, body: Occupancy | None, targets) -> float:
        d = self.grid.dose_gy
        inner = np.nonzero(self.lo >= level)
        edge = np.nonzero((self.hi >= level) & (self.lo < level))
        # whole voxels
        pts_in = self.centres(inner)
        w_in = self.dz[inner[0]] * self.dx * self.dy * 1.0
        # sub-cells of the voxels the surface may cross
        n_edge = edge[0].size
        f = max(1, min(8, int((MAX_SURFACE_POINTS / max(n_edge, 1)) ** (1 / 3))))
        pts_e, vol_e, h = self._subcells(edge, f)
        de = self.at(pts_e)
        span = np.zeros(de.size)
        for axis in range(3):
            step = np.zeros(3)
            shift = np.zeros_like(pts_e)
            step[axis] = 1.0
            shift[:, axis] = 0.5 * h[:, axis]
            span += np.abs(self.at(pts_e + shift) - self.at(pts_e - shift))
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(span > 0, np.clip(0.5 + (de - level) / span, 0, 1), de >= level)
        pts = np.concatenate([pts_in, pts_e])
        w = np.concatenate([w_in, vol_e * frac])
        del d
        keep = w > 0
        pts, w = pts[keep], w[keep]
        if body is not None:
            w = w * _lookup(body, pts)
        if len(targets) > 1 and pts.shape[0]:
            dist = np.stack([distance_to(t, pts) for t in targets])
            w = w * (np.argmin(dist, axis=0) == 0)
        return float(w.sum() / 1000.0)

    def max_beyond(self, target: Occupancy, distance_mm: float, body: Occupancy | None) -> float:
        """Maximum dose (Gy) at points at least ``distance_mm`` from ``target`` (inside body).

        Voxel centres far enough away give a first value; voxels that straddle the distance
        surface and may hold more (their neighbourhood maximum is higher) are then split into
        sub-cells, each measured exactly.
        """
        g = self.grid
        half_diag = 0.5 * math.sqrt(self.dx**2 + self.dy**2 + float(self.dz.max()) ** 2)
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
        far_vals = g.dose_gy[~near_box & body_ok]
        best = float(far_vals.max()) if far_vals.size else -math.inf
        idx = np.nonzero(near_box & body_ok & (self.hi > best))
        centres = self.centres(idx)
        dc = distance_to(target, centres, distance_mm)
        far_c = dc >= distance_mm
        if far_c.any():
            best = max(best, float(g.dose_gy[idx][far_c].max()))
        # voxels whose interior may be hotter than the best so far: sub-cells, hottest first
        split = (self.hi[idx] > best) & (dc + half_diag >= distance_mm)
        far_hot = np.nonzero((~near_box) & body_ok & (self.hi > best))
        for sel, exact in ((tuple(a[split] for a in idx), True), (far_hot, False)):
            if sel[0].size == 0:
                continue
            pts, _, _ = self._subcells(sel, SUBCELLS)
            dose_pts = self.at(pts)
            order = np.argsort(-dose_pts, kind="stable")
            for s in range(0, order.size, 20_000):
                chunk = order[s : s + 20_000]
                if dose_pts[chunk[0]] <= best:
                    break
                chunk = chunk[dose_pts[chunk] > best]
                ok = np.ones(chunk.size, dtype=bool)
                if exact:
                    ok = distance_to(target, pts[chunk], distance_mm) >= distance_mm
                if body is not None:
                    ok &= _lookup(body, pts[chunk]) >= 0.5
                if ok.any():
                    best = max(best, float(dose_pts[chunk][ok].max()))
        return best if best > -math.inf else math.nan

    def _body_mask(self, body: Occupancy | None) -> np.ndarray:
        """Dose voxels whose centre lies inside the body (occupancy >= 0.5)."""
        g = self.grid
        if body is None:
            return np.ones(g.dose_gy.shape, dtype=bool)
        mask = np.zeros(g.dose_gy.shape, dtype=bool)
        gx, gy = np.meshgrid(g.x_mm, g.y_mm)
        for kk in range(g.z_mm.size):
            pts = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, g.z_mm[kk])])
            mask[kk] = (_lookup(body, pts) >= 0.5).reshape(gx.shape)
        return mask


def _frac_index(centres: np.ndarray, at: np.ndarray) -> np.ndarray:
    if centres.size == 1:
        return np.zeros_like(at)
    return np.interp(at, centres, np.arange(centres.size, dtype=float))


def _uniform_index(centres: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Fractional index of ``at`` on uniform ``centres``, clamped to the ends (as np.interp)."""
    n = centres.size
    if n == 1:
        return np.zeros_like(at)
    step = (float(centres[-1]) - float(centres[0])) / (n - 1)
    out = (at - float(centres[0])) / step
    return np.clip(out, 0.0, n - 1.0, out=out)


def _lookup(occ: Occupancy, pts: np.ndarray) -> np.ndarray:
    """Occupancy fraction of the lattice cell holding each point (0 outside the array)."""
    lat = occ.lattice
    k0, j0, i0 = occ.offset
    nz, ny, nx = occ.values.shape
    i = np.floor((pts[:, 0] - lat.x_edges_mm[0]) / lat.dx).astype(np.int64) - i0
    j = np.floor((pts[:, 1] - lat.y_edges_mm[0]) / lat.dy).astype(np.int64) - j0
    k = np.searchsorted(lat.z_edges_mm, pts[:, 2], side="right") - 1 - k0
    ok = (i >= 0) & (i < nx) & (j >= 0) & (j < ny) & (k >= 0) & (k < nz)
    out = np.zeros(pts.shape[0])
    out[ok] = occ.values[k[ok], j[ok], i[ok]]
    return out
