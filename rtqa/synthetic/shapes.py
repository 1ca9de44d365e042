"""Closed-form solids for the synthetic phantoms: elliptic cylinders, ellipsoids and unions.

Lengths in mm, volumes in cc. Every solid is described by its axial cross-sections (ellipses), so
its contours, its analytic volume and the slab-model volume of its contours are all exact
formulas. Solids may be turned about the z axis and shifted (:class:`RigidZ`): cross-sections
stay ellipses, so a phantom seen in another frame of reference is still exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Vertices per contour ring.
RING_POINTS = 64


def equal_area_factor(n: int = RING_POINTS) -> float:
    """Radial scale that gives a regular ``n``-gon the area of the ellipse it approximates.

    A polygon with vertices on an ellipse of semi-axes (a, b) has area (n/2)·a·b·sin(2π/n); scaling
    the vertices by this factor makes it exactly π·a·b.
    """
    return math.sqrt(2.0 * math.pi / (n * math.sin(2.0 * math.pi / n)))


@dataclass(frozen=True)
class Ellipse:
    """An axial cross-section: centre (mm), semi-axes (mm) and the angle of ``a`` to +x (deg)."""

    cx: float
    cy: float
    a: float
    b: float
    angle_deg: float = 0.0

    @property
    def area_mm2(self) -> float:
        return math.pi * self.a * self.b

    def ring(self, n: int = RING_POINTS) -> np.ndarray:
        """(n, 2) polygon of equal area (see :func:`equal_area_factor`), counter-clockwise."""
        k = equal_area_factor(n)
        t = 2.0 * math.pi * np.arange(n) / n
        u = k * self.a * np.cos(t)
        v = k * self.b * np.sin(t)
        c, s = math.cos(math.radians(self.angle_deg)), math.sin(math.radians(self.angle_deg))
        return np.column_stack([self.cx + c * u - s * v, self.cy + s * u + c * v])


@dataclass(frozen=True)
class RigidZ:
    """p' = Rz(angle)·p + t: a turn about z (deg) then a shift (mm). Maps frame B to frame A."""

    angle_deg: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    tz: float = 0.0

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix (column vectors)."""
        c, s = math.cos(math.radians(self.angle_deg)), math.sin(math.radians(self.angle_deg))
        return np.array(
            [[c, -s, 0.0, self.tx], [s, c, 0.0, self.ty], [0.0, 0.0, 1.0, self.tz], [0, 0, 0, 1.0]]
        )

    def inverse(self) -> RigidZ:
        c, s = math.cos(math.radians(self.angle_deg)), math.sin(math.radians(self.angle_deg))
        # R^T (-t)
        return RigidZ(
            -self.angle_deg,
            -(c * self.tx + s * self.ty),
            -(-s * self.tx + c * self.ty),
            -self.tz,
        )

    def apply(self, x, y, z):
        """Map coordinates (arrays broadcast)."""
        c, s = math.cos(math.radians(self.angle_deg)), math.sin(math.radians(self.angle_deg))
        return c * x - s * y + self.tx, s * x + c * y + self.ty, z + self.tz


@dataclass(frozen=True)
class EllipticCylinder:
    """Cylinder along z, z0 <= z <= z1; cross-section ellipse with ``a`` at ``angle_deg`` to +x."""

    cx: float
    cy: float
    a: float
    b: float
    z0: float
    z1: float
    angle_deg: float = 0.0

    @property
    def volume_cc(self) -> float:
        return math.pi * self.a * self.b * (self.z1 - self.z0) / 1000.0

    def sections(self, z: float) -> tuple[Ellipse, ...]:
        if not self.z0 <= z <= self.z1:
            return ()
        return (Ellipse(self.cx, self.cy, self.a, self.b, self.angle_deg),)

    def contains(self, x, y, z) -> np.ndarray:
        u, v = _local(x - self.cx, y - self.cy, self.angle_deg)
        inside = (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0
        return inside & (z >= self.z0) & (z <= self.z1)

    def signed_distance(self, x, y, z) -> np.ndarray:
        """Exact signed distance (mm, negative inside) for a circular cylinder (a == b)."""
        if self.a != self.b:
            raise ValueError("signed distance is closed-form only for a circular cylinder")
        dr = np.hypot(x - self.cx, y - self.cy) - self.a
        half = 0.5 * (self.z1 - self.z0)
        dz = np.abs(z - 0.5 * (self.z0 + self.z1)) - half
        outside = np.hypot(np.maximum(dr, 0.0), np.maximum(dz, 0.0))
        return np.where((dr <= 0) & (dz <= 0), np.maximum(dr, dz), outside)

    def offset_volume_cc(self, t: float) -> float:
        """Volume (cc) of the points within signed distance ``t`` mm (circular cylinder).

        Outward (t > 0): Steiner's formula for the parallel body, π(r+t)²L + 2πr²t + π²rt² +
        4/3·πt³; inward (t < 0): the cylinder of radius r+t and length L+2t.
        """
        r, length = self.a, self.z1 - self.z0
        if t >= 0:
            v = (
                math.pi * (r + t) ** 2 * length
                + 2 * math.pi * r**2 * t
                + math.pi**2 * r * t**2
                + 4.0 / 3.0 * math.pi * t**3
            )
        else:
            v = math.pi * max(r + t, 0.0) ** 2 * max(length + 2 * t, 0.0)
        return v / 1000.0

    def moved(self, rigid: RigidZ) -> EllipticCylinder:
        cx, cy, _ = rigid.apply(self.cx, self.cy, 0.0)
        return replace(
            self,
            cx=float(cx),
            cy=float(cy),
            z0=self.z0 + rigid.tz,
            z1=self.z1 + rigid.tz,
            angle_deg=self.angle_deg + rigid.angle_deg,
        )


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with axes along (rotated x, rotated y, z); a sphere when a == b == c."""

    cx: float
    cy: float
    cz: float
    a: float
    b: float
    c: float
    angle_deg: float = 0.0

    @property
    def volume_cc(self) -> float:
        return 4.0 / 3.0 * math.pi * self.a * self.b * self.c / 1000.0

    def sections(self, z: float) -> tuple[Ellipse, ...]:
        q = 1.0 - ((z - self.cz) / self.c) ** 2
        if q <= 0.0:
            return ()
        f = math.sqrt(q)
        return (Ellipse(self.cx, self.cy, self.a * f, self.b * f, self.angle_deg),)

    def contains(self, x, y, z) -> np.ndarray:
        u, v = _local(x - self.cx, y - self.cy, self.angle_deg)
        return (u / self.a) ** 2 + (v / self.b) ** 2 + ((z - self.cz) / self.c) ** 2 <= 1.0

    def signed_distance(self, x, y, z) -> np.ndarray:
        """Exact signed distance (mm, negative inside) for a sphere (a == b == c)."""
        if not self.a == self.b == self.c:
            raise ValueError("signed distance is closed-form only for a sphere")
        return np.sqrt((x - self.cx) ** 2 + (y - self.cy) ** 2 + (z - self.cz) ** 2) - self.a

    def offset_volume_cc(self, t: float) -> float:
        """Volume (cc) of the points within signed distance ``t`` mm of a sphere."""
        return 4.0 / 3.0 * math.pi * max(self.a + t, 0.0) ** 3 / 1000.0

    def moved(self, rigid: RigidZ) -> Ellipsoid:
        cx, cy, cz = rigid.apply(self.cx, self.cy, self.cz)
        return replace(
            self,
            cx=float(cx),
            cy=float(cy),
            cz=float(cz),
            angle_deg=self.angle_deg + rigid.angle_deg,
        )


@dataclass(frozen=True)
class Union:
    """Disjoint solids taken together (e.g. both lungs)."""

    parts: tuple[EllipticCylinder | Ellipsoid, ...]

    @property
    def volume_cc(self) -> float:
        return sum(p.volume_cc for p in self.parts)

    def sections(self, z: float) -> tuple[Ellipse, ...]:
        return tuple(e for p in self.parts for e in p.sections(z))

    def contains(self, x, y, z) -> np.ndarray:
        out = np.zeros(np.broadcast(x, y, z).shape, dtype=bool)
        for p in self.parts:
            out |= p.contains(x, y, z)
        return out

    def moved(self, rigid: RigidZ) -> Union:
        return Union(tuple(p.moved(rigid) for p in self.parts))


Solid = EllipticCylinder | Ellipsoid | Union


def slab_volume_cc(solid: Solid, planes_mm: np.ndarray) -> float:
    """Volume (cc) of the contours of ``solid`` on ``planes_mm`` under the slab model.

    Each contoured plane stands for the slab from halfway to the neighbouring contoured planes
    (half the adjacent spacing beyond the first and last plane); ring areas are exact
    (equal-area rings).
    """
    areas = [sum(e.area_mm2 for e in solid.sections(float(z))) for z in planes_mm]
    planes = np.array([z for z, a in zip(planes_mm, areas, strict=True) if a > 0], dtype=float)
    areas = [a for a in areas if a > 0]
    if planes.size < 2:
        raise ValueError("the slab model needs at least two contoured planes")
    total = 0.0
    for k, area in enumerate(areas):
        lo = planes[k] - planes[k - 1] if k > 0 else planes[1] - planes[0]
        hi = planes[k + 1] - planes[k] if k + 1 < planes.size else planes[-1] - planes[-2]
        total += area * 0.5 * (lo + hi)
    return total / 1000.0


def _local(dx, dy, angle_deg: float):
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return c * dx + s * dy, -s * dx + c * dy
