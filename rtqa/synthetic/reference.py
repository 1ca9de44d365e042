"""Reference dose-volume numbers of the phantoms, from the closed-form dose.

The solid integrated is the slab model of the contours (each contoured plane's exact ellipse
extruded over its slab), sampled on a fine regular lattice; the dose is the closed-form
``dose_at``. These are the numbers rtqa should reproduce with an ideal dose grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtqa.synthetic.shapes import Solid


@dataclass(frozen=True)
class SampledDvh:
    """Doses (Gy) of equal-volume samples, sorted descending; ``dv_cc`` the volume of each."""

    doses_gy: np.ndarray
    dv_cc: float

    @property
    def volume_cc(self) -> float:
        return self.doses_gy.size * self.dv_cc

    def d_cc(self, v_cc: float) -> float:
        """Minimum dose to the hottest ``v_cc``."""
        n = max(int(np.ceil(v_cc / self.dv_cc - 1e-9)), 1)
        return float(self.doses_gy[min(n, self.doses_gy.size) - 1])

    def d_pct(self, pct: float) -> float:
        return self.d_cc(self.volume_cc * pct / 100.0)

    def v_gy_cc(self, d_gy: float) -> float:
        return float(np.count_nonzero(self.doses_gy >= d_gy) * self.dv_cc)

    def v_gy_pct(self, d_gy: float) -> float:
        return 100.0 * self.v_gy_cc(d_gy) / self.volume_cc

    @property
    def max_gy(self) -> float:
        return float(self.doses_gy[0])

    @property
    def mean_gy(self) -> float:
        return float(self.doses_gy.mean())


def slab_samples(solid: Solid, planes_mm, step_mm: float) -> tuple[np.ndarray, float]:
    """Points (N, 3) sampling the slab-model solid on a lattice of pitch ``step_mm`` in plane;
    along z each slab is cut into equal layers no thicker than ``step_mm`` (a whole number of
    them, so that every slab is sampled over its full thickness), and the volume (cc) each
    point stands for. ValueError when the slabs' layers would differ in thickness (planes
    not evenly spaced), where the points would not stand for equal volumes."""
    planes = [float(z) for z in planes_mm if solid.sections(float(z))]
    arr = np.asarray(planes)
    chunks = []
    pitches = set()
    for k, z in enumerate(planes):
        lo = (arr[k] - arr[k - 1]) / 2 if k > 0 else (arr[1] - arr[0]) / 2
        hi = (arr[k + 1] - arr[k]) / 2 if k + 1 < arr.size else (arr[-1] - arr[-2]) / 2
        layers = max(int(np.ceil((lo + hi) / step_mm - 1e-9)), 1)
        dz = (lo + hi) / layers
        pitches.add(round(dz, 9))
        zs = z - lo + dz * (np.arange(layers) + 0.5)
        for e in solid.sections(z):
            r = max(e.a, e.b)
            g = np.arange(-r + step_mm / 2, r, step_mm)
            u, v = np.meshgrid(g, g)
            c, s = np.cos(np.radians(e.angle_deg)), np.sin(np.radians(e.angle_deg))
            du, dv = c * u + s * v, -s * u + c * v  # lattice turned into the ellipse's axes
            inside = (du / e.a) ** 2 + (dv / e.b) ** 2 <= 1.0
            px, py = e.cx + u[inside], e.cy + v[inside]
            for zz in zs:
                chunks.append(np.column_stack([px, py, np.full(px.size, zz)]))
    if len(pitches) > 1:
        raise ValueError(f"slab layers of {sorted(pitches)} mm: planes not evenly spaced")
    dz = pitches.pop() if pitches else step_mm
    return np.concatenate(chunks), step_mm * step_mm * dz / 1000.0


def sampled_dvh(
    solid: Solid,
    planes_mm,
    dose_at: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    step_mm: float | None = None,
) -> SampledDvh:
    """The exact-DVH reference of ``solid`` under ``dose_at`` (Gy)."""
    if step_mm is None:
        step_mm = 0.25 if solid.volume_cc < 30 else 0.5 if solid.volume_cc < 300 else 1.0
    pts, dv = slab_samples(solid, planes_mm, step_mm)
    doses = np.sort(dose_at(pts[:, 0], pts[:, 1], pts[:, 2]))[::-1]
    return SampledDvh(doses, dv)
