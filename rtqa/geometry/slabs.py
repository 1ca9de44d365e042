"""The slab model of a contoured structure, and its volume from the contours alone.

Conventions
-----------
* A contour plane at ``z`` stands for the slab from halfway to its lower neighbour plane to
  halfway to its upper neighbour plane (so uneven plane spacing is handled exactly).
* A step between planes larger than :data:`GAP_FACTOR` times each of its neighbouring
  steps (or, for a structure of two planes, than ``spacing_mm`` where given) is a **gap**: the
  structure has separate parts there, and each part gets its own end caps instead of a slab
  bridging the gap. A step of 1.5x a neighbour is what a single missing plane in an even stack
  gives (2x), with margin for rounding; a gradual change of CT spacing is not a gap.
  Such a step is not a gap, but joined like any other, where the ROI lists it in
  ``Roi.bridged_steps_mm``: no image plane lies in it (a slice missing from the images, found
  by :mod:`rtqa.dicom.plane_bridges`), so the structure could not be drawn there.
* End caps: beyond the first and last plane of each part the slab extends by ``end_cap_mm``;
  by default (``None``) half the neighbouring spacing, the same rule as between planes. A part
  of a single plane takes half ``spacing_mm`` (the structure set's plane spacing) on each side,
  else half the median spacing of the structure's other planes. An ROI contoured on a single
  plane, given neither, takes half its ``Roi.single_plane_thickness_mm`` on each side: the
  structure set's plane spacing, set by the reader (a convention it warns of); without one it
  has no thickness (ValueError).
* Polygons of one plane are united (the reader resolved holes by the even-odd rule); invalid
  rings (self-intersecting) are repaired with ``shapely.make_valid``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from rtqa.model import Roi

#: A step larger than this factor times its neighbouring steps separates two parts.
GAP_FACTOR = 1.5
#: Planes closer than this (mm) are the same plane.
SAME_PLANE_MM = 1e-3
#: A listed step matches a step between planes whose ends are both within this (mm).
STEP_MATCH_MM = 0.01


@dataclass(frozen=True, eq=False)
class SlabStack:
    """A structure as slabs: plane ``p`` is the polygon ``geoms[p]`` (x, y in mm) extruded from
    ``lo_mm[p]`` to ``hi_mm[p]``. ``gap_steps_mm`` are the (lower z, upper z) of the gaps found
    between parts."""

    z_mm: np.ndarray
    lo_mm: np.ndarray
    hi_mm: np.ndarray
    geoms: tuple  # shapely geometries, one per plane
    areas_mm2: np.ndarray
    gap_steps_mm: tuple[tuple[float, float], ...] = ()

    @property
    def gaps(self) -> int:
        """The number of gaps between parts."""
        return len(self.gap_steps_mm)

    @property
    def volume_cc(self) -> float:
        return float(np.sum(self.areas_mm2 * (self.hi_mm - self.lo_mm)) / 1000.0)

    @property
    def bounds_mm(self) -> tuple[float, float, float, float, float, float]:
        """(xmin, ymin, zmin, xmax, ymax, zmax) of the slab stack."""
        b = np.array([g.bounds for g in self.geoms])
        return (
            float(b[:, 0].min()),
            float(b[:, 1].min()),
            float(self.lo_mm.min()),
            float(b[:, 2].max()),
            float(b[:, 3].max()),
            float(self.hi_mm.max()),
        )


def plane_geometry(polygons) -> shapely.Geometry:
    """The (multi)polygon of one plane from :class:`~rtqa.model.PlanarPolygon` items."""
    parts = []
    for poly in polygons:
        ext = np.asarray(poly.exterior, dtype=float)
        if ext.shape[0] < 3:
            continue
        holes = [np.asarray(h, dtype=float) for h in poly.holes if len(h) >= 3]
        geom = shapely.Polygon(ext, holes)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        parts.append(geom)
    if not parts:
        return shapely.Polygon()
    geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    # keep only areal parts (make_valid may leave lines or points)
    if geom.geom_type == "GeometryCollection":
        geom = shapely.union_all([g for g in geom.geoms if g.area > 0] or [shapely.Polygon()])
    return geom


def plane_groups(roi: Roi) -> tuple[np.ndarray, list[list]]:
    """The distinct plane positions ``z`` (mm, ascending) of ``roi`` and the
    :class:`~rtqa.model.PlanarPolygon` items of each (planes closer than
    :data:`SAME_PLANE_MM` are one plane)."""
    zs: list[float] = []
    polys: list[list] = []
    for plane in sorted(roi.planes, key=lambda p: p.z_mm):
        if zs and abs(plane.z_mm - zs[-1]) < SAME_PLANE_MM:
            polys[-1].extend(plane.polygons)
        else:
            zs.append(float(plane.z_mm))
            polys.append(list(plane.polygons))
    return np.array(zs), polys


def gap_steps(
    z: np.ndarray,
    spacing_mm: float | None = None,
    bridged: tuple[tuple[float, float], ...] = (),
) -> np.ndarray:
    """Which steps between the sorted planes ``z`` (mm) are gaps between parts (see the module
    docstring): one boolean per step. A wide step listed in ``bridged`` (lower z, upper z; mm)
    is not a gap."""
    steps = np.diff(z)
    gap = np.zeros(steps.size, dtype=bool)
    for j, step in enumerate(steps):
        neighbours = [steps[k] for k in (j - 1, j + 1) if 0 <= k < steps.size]
        ref = max(neighbours) if neighbours else spacing_mm
        gap[j] = ref is not None and step > GAP_FACTOR * ref
        if gap[j] and step_listed(z[j], z[j + 1], bridged):
            gap[j] = False
    return gap


def step_listed(lo_mm: float, hi_mm: float, listed: tuple[tuple[float, float], ...]) -> bool:
    """Whether the step from ``lo_mm`` to ``hi_mm`` is one of ``listed`` (both ends within
    :data:`STEP_MATCH_MM`)."""
    return any(
        abs(lo_mm - a) <= STEP_MATCH_MM and abs(hi_mm - b) <= STEP_MATCH_MM for a, b in listed
    )


def contains_points(slabs: SlabStack, pts: np.ndarray, *, closed: bool = False) -> np.ndarray:
    """Whether each point ``(n, 3)`` (x, y, z mm) lies in the slab model: in the polygon
    (even-odd) of a slab whose ``[lo, hi)`` holds its z (half-open, so that two structures
    meeting at a face share no point; ``closed``: ``[lo, hi]``, the faces included)."""
    inside = np.zeros(pts.shape[0], dtype=bool)
    z = pts[:, 2]
    for geom, lo, hi in zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True):
        below_top = (z <= hi) if closed else (z < hi)
        inz = np.flatnonzero((z >= lo) & below_top & ~inside)
        if inz.size and not geom.is_empty:
            inside[inz] = shapely.contains_xy(geom, pts[inz, 0], pts[inz, 1])
    return inside


def slab_stack(
    roi: Roi, end_cap_mm: float | None = None, spacing_mm: float | None = None
) -> SlabStack:
    """The slab model of ``roi`` (see the module docstring). ValueError when the ROI has no
    closed contour, or has a single plane and no ``spacing_mm``/``end_cap_mm``/
    ``roi.single_plane_thickness_mm`` to give it a thickness."""
    if roi.is_empty:
        raise ValueError(f"ROI '{roi.name}' has no closed planar contour")
    if end_cap_mm is not None and (not np.isfinite(end_cap_mm) or end_cap_mm < 0):
        raise ValueError(f"end cap must be >= 0 mm, got {end_cap_mm}")
    z, polys = plane_groups(roi)
    geoms = tuple(plane_geometry(p) for p in polys)
    areas = np.array([g.area for g in geoms])
    n = z.size
    steps = np.diff(z)
    gap = gap_steps(z, spacing_mm, roi.bridged_steps_mm)
    joined = steps[~gap]
    if spacing_mm:
        fallback = spacing_mm
    elif joined.size:
        fallback = float(np.median(joined))
    else:  # no step of its own: the thickness the reader gave a one-plane ROI, if any
        fallback = roi.single_plane_thickness_mm
    lo = np.empty(n)
    hi = np.empty(n)
    for p in range(n):
        below = p > 0 and not gap[p - 1]
        above = p < n - 1 and not gap[p]
        half_below = 0.5 * steps[p - 1] if below else None
        half_above = 0.5 * steps[p] if above else None
        lo[p] = z[p] - half_below if below else z[p] - _cap(end_cap_mm, half_above, fallback, roi)
        hi[p] = z[p] + half_above if above else z[p] + _cap(end_cap_mm, half_below, fallback, roi)
    gap_z = tuple((float(z[j]), float(z[j + 1])) for j in np.flatnonzero(gap))
    return SlabStack(z, lo, hi, geoms, areas, gap_z)


def _cap(end_cap_mm: float | None, half_neighbour: float | None, fallback, roi: Roi) -> float:
    if end_cap_mm is not None:
        return float(end_cap_mm)
    if half_neighbour is not None:
        return half_neighbour
    if fallback is None:
        raise ValueError(
            f"ROI '{roi.name}' has a single contour plane: its thickness is unknown "
            "(give the plane spacing or an end cap)"
        )
    return 0.5 * fallback


def contour_volume_cc(
    roi: Roi, end_cap_mm: float | None = None, spacing_mm: float | None = None
) -> float:
    """Volume (cc) of ``roi`` from its contours alone (slab model, no dose grid): the sum of
    plane polygon areas times slab thickness, end caps included (see the module docstring)."""
    return slab_stack(roi, end_cap_mm, spacing_mm).volume_cc
