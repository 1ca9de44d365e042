"""Closed-form dose distributions (Gy) that look like SBRT and conventional fields.

:class:`TargetDose` depends only on the signed distance s (mm, negative inside) to the target
surface, through the radial :class:`Profile` (fraction of the prescription). Because the profile
falls monotonically with s, every isodose surface is a parallel surface of the target, so
isodose volumes (V100%, R50%, CI) are closed-form too. :class:`FieldDose` is a box field with
error-function penumbrae, as from a conventional opposed-pair treatment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf, erfc

from rtqa.synthetic.shapes import Ellipsoid, EllipticCylinder, RigidZ


@dataclass(frozen=True)
class Profile:
    """Relative dose g(s) = a·½erfc((s−s1)/w1) + b·½erfc((s−s2)/w2); s in mm, g in units of Rx.

    The first term is the high-dose core with its steep edge, the second the low-dose spread.
    """

    a: float
    s1: float
    w1: float
    b: float
    s2: float
    w2: float

    def __call__(self, s):
        s = np.asarray(s, dtype=float)
        return self.a * 0.5 * erfc((s - self.s1) / self.w1) + self.b * 0.5 * erfc(
            (s - self.s2) / self.w2
        )

    def distance_at(self, level: float) -> float:
        """The signed distance (mm) where g(s) equals ``level`` (g falls monotonically)."""
        return float(brentq(lambda s: float(self(s)) - level, -60.0, 200.0, xtol=1e-12))

    def gradient_pct_per_mm(self, s: float) -> float:
        """−dg/ds at ``s`` in % of Rx per mm (central difference, 1 µm)."""
        h = 1e-3
        return float(self(s - h) - self(s + h)) / (2 * h) * 100.0


@dataclass(frozen=True)
class TargetDose:
    """SBRT-like dose around one target (a sphere or a circular capped cylinder), Gy total."""

    target: Ellipsoid | EllipticCylinder
    rx_gy: float
    profile: Profile

    def dose_at(self, x, y, z) -> np.ndarray:
        """Dose (Gy) at patient coordinates (mm), arrays broadcast."""
        return self.rx_gy * self.profile(self.target.signed_distance(x, y, z))

    @property
    def max_gy(self) -> float:
        """Maximum dose: at the deepest point of the target."""
        t = self.target
        depth = t.a if isinstance(t, Ellipsoid) else min(t.a, 0.5 * (t.z1 - t.z0))
        return float(self.rx_gy * self.profile(-depth))

    def isodose_volume_cc(self, level: float) -> float:
        """Volume (cc) receiving at least ``level`` × Rx (a parallel body of the target)."""
        return self.target.offset_volume_cc(self.profile.distance_at(level))


IDENTITY = RigidZ()


@dataclass(frozen=True)
class FieldDose:
    """Box field: Rx × Π over axes of ½[erf((u−c+h)/σ) − erf((u−c−h)/σ)], in a frame of its own.

    ``to_field`` maps patient coordinates of the frame the dose is evaluated in into the frame
    the box is aligned with (identity by default). ``half_mm`` are the half widths (x, y, z) and
    ``penumbra_mm`` the erf width σ.
    """

    center: tuple[float, float, float]
    half_mm: tuple[float, float, float]
    rx_gy: float
    penumbra_mm: float = 3.5
    to_field: RigidZ = IDENTITY

    def dose_at(self, x, y, z) -> np.ndarray:
        u = self.to_field.apply(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float))
        out = np.full(np.broadcast(*u).shape, self.rx_gy)
        for coord, c, h in zip(u, self.center, self.half_mm, strict=True):
            d = coord - c
            out = out * 0.5 * (erf((d + h) / self.penumbra_mm) - erf((d - h) / self.penumbra_mm))
        return out

    def seen_from(self, rigid: RigidZ) -> FieldDose:
        """The same field evaluated in another frame F, given ``rigid`` mapping F into this one."""
        return FieldDose(
            self.center, self.half_mm, self.rx_gy, self.penumbra_mm, _compose(self.to_field, rigid)
        )


def _compose(outer: RigidZ, inner: RigidZ) -> RigidZ:
    """outer ∘ inner as one RigidZ."""
    tx, ty, tz = outer.apply(inner.tx, inner.ty, inner.tz)
    return RigidZ(outer.angle_deg + inner.angle_deg, float(tx), float(ty), float(tz))
