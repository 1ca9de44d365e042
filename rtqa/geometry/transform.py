"""Rigid (and affine) transforms of patient coordinates, and dose resampling between grids.

Conventions
-----------
* Points are in mm, as ``(..., 3)`` arrays of (x, y, z) patient coordinates.
* A transform is a 4x4 homogeneous matrix acting on column vectors: ``p' = M @ [x, y, z, 1]``
  (the DICOM Spatial Registration convention, PS3.3 C.20.2.1.1). Its last row is (0, 0, 0, 1).
* A matrix is named by what it maps: ``matrix_target_to_source`` takes points given in the
  target grid's frame of reference to the same anatomical points in the source grid's frame.
* Grids are :class:`~rtqa.model.DoseGrid` in canonical order (``dose_gy[k, j, i]`` at
  ``(x_mm[i], y_mm[j], z_mm[k])``, axes strictly increasing; z may be uneven).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from rtqa.model import DoseGrid

#: Tolerance on orthonormality and determinant when judging a matrix rigid.
RIGID_TOLERANCE = 1e-4
#: How far (in voxel units) a sample may lie beyond the outermost voxel centres and still count
#: as inside (floating-point noise of a transform, not extrapolation).
EDGE_TOLERANCE_VOXELS = 1e-6
#: Target voxels processed at a time by :func:`resample_dose` (bounds the temporary memory).
CHUNK_VOXELS = 1_000_000


def check_matrix(matrix: ArrayLike) -> np.ndarray:
    """``matrix`` as a float 4x4 array, after checking shape, finiteness, last row and that it is
    invertible (ValueError otherwise)."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"a transform must be a 4x4 matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("a transform matrix must hold finite numbers")
    if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise ValueError(f"the last row of a transform must be (0, 0, 0, 1), got {m[3].tolist()}")
    if abs(np.linalg.det(m[:3, :3])) < 1e-12:
        raise ValueError("a transform matrix must be invertible (its 3x3 part is singular)")
    return m


def rigidity_error(matrix: ArrayLike, tolerance: float = RIGID_TOLERANCE) -> str | None:
    """Why ``matrix`` is not a rigid transform (rotation + translation), or ``None`` if it is.

    Rigid means ``R Rᵀ = I`` and ``det R = +1`` within ``tolerance`` (a reflection or a scaling is
    not rigid).
    """
    m = check_matrix(matrix)
    rotation = m[:3, :3]
    error = float(np.max(np.abs(rotation @ rotation.T - np.eye(3))))
    if error > tolerance:
        return f"the 3x3 part is not orthonormal (max |R Rᵀ − I| = {error:.3g})"
    det = float(np.linalg.det(rotation))
    if abs(det - 1.0) > tolerance:
        return f"the 3x3 part has determinant {det:.6g}, not +1 (a reflection)"
    return None


def is_rigid(matrix: ArrayLike, tolerance: float = RIGID_TOLERANCE) -> bool:
    """True when ``matrix`` is a rotation plus a translation (see :func:`rigidity_error`)."""
    return rigidity_error(matrix, tolerance) is None


def invert(matrix: ArrayLike) -> np.ndarray:
    """The matrix of the opposite direction (``source → target`` from ``target → source``).

    A rigid matrix is inverted exactly as ``[Rᵀ, −Rᵀ t]``; any other by ``numpy.linalg.inv``.
    """
    m = check_matrix(matrix)
    if not is_rigid(m, 1e-9):
        return np.linalg.inv(m)
    rotation_t = m[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = rotation_t
    out[:3, 3] = -rotation_t @ m[:3, 3]
    return out


def rotation_matrix(
    axis: ArrayLike, degrees: float, centre: ArrayLike = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """4x4 rigid matrix rotating by ``degrees`` about ``axis`` (a direction, any length) through
    the point ``centre`` (mm), right-handed (Rodrigues' formula): ``p' = R (p − c) + c``."""
    k = np.asarray(axis, dtype=float)
    norm = float(np.linalg.norm(k)) if k.shape == (3,) else 0.0
    if not norm > 0 or not np.isfinite(norm):
        raise ValueError(f"rotation axis must be a non-zero 3-vector, got {axis!r}")
    k = k / norm
    angle = np.radians(float(degrees))
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross
    c = np.asarray(centre, dtype=float)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = c - rotation @ c
    return out


def translation_matrix(shift_mm: ArrayLike) -> np.ndarray:
    """4x4 matrix shifting points by ``shift_mm`` (x, y, z)."""
    shift = np.asarray(shift_mm, dtype=float)
    if shift.shape != (3,) or not np.all(np.isfinite(shift)):
        raise ValueError(f"a shift must be three finite numbers of mm, got {shift_mm!r}")
    out = np.eye(4)
    out[:3, 3] = shift
    return out


def apply_matrix(matrix: ArrayLike, points: ArrayLike) -> np.ndarray:
    """Points (N, 3) mm mapped by the 4x4 ``matrix``: ``p' = R p + t`` for each row."""
    m = check_matrix(matrix)
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must be an (N, 3) array of mm, got shape {p.shape}")
    return p @ m[:3, :3].T + m[:3, 3]


def map_points(points: ArrayLike, matrix: ArrayLike | None) -> np.ndarray:
    """Points of any shape ``(..., 3)`` (a single point too) mapped by ``matrix`` (mm).

    ``None`` stands for the identity (same frame of reference) and returns a copy.
    """
    p = np.asarray(points, dtype=float)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have 3 coordinates (x, y, z) in mm, got shape {p.shape}")
    if matrix is None:
        return p.copy()
    return apply_matrix(matrix, p.reshape(-1, 3)).reshape(p.shape)


def voxel_centres(grid: DoseGrid) -> np.ndarray:
    """All voxel centres of ``grid`` as an ``(nz, ny, nx, 3)`` array of (x, y, z) mm."""
    z, y, x = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def resample_dose(
    source: DoseGrid,
    target: DoseGrid,
    matrix_target_to_source: np.ndarray | None,
    *,
    chunk_voxels: int = CHUNK_VOXELS,
) -> tuple[np.ndarray, np.ndarray]:
    """The source dose at every voxel centre of the target grid, and where it is unknown.

    Each target voxel centre ``p`` (target frame, mm) is mapped to ``q = M p`` in the source frame
    and the source dose is interpolated trilinearly there (linear along each axis between the
    neighbouring voxel centres; z may be unevenly spaced). ``matrix_target_to_source`` ``None``
    means both grids share a frame of reference.

    Returns ``(dose, outside)``, both of the target's shape ``(nz, ny, nx)``: ``dose`` in the
    source's units (Gy) as float64, NaN where ``outside`` is True, i.e. where ``q`` lies beyond
    the source's outermost voxel centres, so that the dose there is unknown (never 0).

    Memory: the target is processed in slabs of whole z-planes of about ``chunk_voxels`` voxels,
    so the temporaries stay small beside the result even for grids of tens of millions of voxels.
    """
    m = np.eye(4) if matrix_target_to_source is None else check_matrix(matrix_target_to_source)
    values = np.asarray(source.dose_gy)
    nz, ny, nx = target.dose_gy.shape
    if values.shape != (source.z_mm.size, source.y_mm.size, source.x_mm.size):
        raise ValueError(
            f"source dose shape {values.shape} does not match its axes "
            f"(z {source.z_mm.size}, y {source.y_mm.size}, x {source.x_mm.size})"
        )
    if (nz, ny, nx) != (target.z_mm.size, target.y_mm.size, target.x_mm.size):
        raise ValueError(
            f"target dose shape {(nz, ny, nx)} does not match its axes "
            f"(z {target.z_mm.size}, y {target.y_mm.size}, x {target.x_mm.size})"
        )
    dose = np.empty((nz, ny, nx), dtype=float)
    outside = np.zeros((nz, ny, nx), dtype=bool)
    if dose.size == 0:
        return dose, outside
    if values.size == 0:
        dose.fill(np.nan)
        outside.fill(True)
        return dose, outside
    x = np.asarray(target.x_mm, dtype=float)[None, None, :]
    y = np.asarray(target.y_mm, dtype=float)[None, :, None]
    source_axes = (source.z_mm, source.y_mm, source.x_mm)  # index order of ``values``
    rows = (2, 1, 0)  # matrix row giving each source coordinate z, y, x
    planes = max(1, int(chunk_voxels) // max(1, ny * nx))
    for k0 in range(0, nz, planes):
        z = np.asarray(target.z_mm[k0 : k0 + planes], dtype=float)[:, None, None]
        indices = []
        out = np.zeros((z.shape[0], ny, nx), dtype=bool)
        for axis, row in zip(source_axes, rows, strict=True):
            coordinate = m[row, 0] * x + m[row, 1] * y + m[row, 2] * z + m[row, 3]
            index, beyond = _fractional_index(coordinate, np.asarray(axis, dtype=float))
            indices.append(np.broadcast_to(index, out.shape))
            out |= beyond
        block = ndimage.map_coordinates(
            values, indices, order=1, mode="nearest", prefilter=False, output=float
        )
        block[out] = np.nan
        dose[k0 : k0 + planes] = block
        outside[k0 : k0 + planes] = out
    return dose, outside


def _fractional_index(coordinate: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional voxel index of each coordinate along a strictly increasing axis (mm), clipped
    into range, and whether it lies beyond the outermost centres (more than the edge tolerance)."""
    n = axis.size
    if n == 1:
        scale = 1.0  # a single plane: only points on it are inside (to within 1e-6 mm)
        beyond = np.abs(coordinate - axis[0]) > EDGE_TOLERANCE_VOXELS * scale
        return np.zeros_like(coordinate), beyond
    steps = np.diff(axis)
    if np.any(steps <= 0):
        raise ValueError("grid coordinates must increase strictly")
    if np.allclose(steps, steps[0], rtol=0.0, atol=1e-9 * max(1.0, abs(steps[0]))):
        index = (coordinate - axis[0]) / steps[0]
    else:
        index = np.interp(coordinate, axis, np.arange(n, dtype=float))
        # np.interp clips: recover how far beyond the ends a coordinate lies, in voxels
        index = np.where(coordinate < axis[0], (coordinate - axis[0]) / steps[0], index)
        index = np.where(coordinate > axis[-1], n - 1 + (coordinate - axis[-1]) / steps[-1], index)
    beyond = (index < -EDGE_TOLERANCE_VOXELS) | (index > n - 1 + EDGE_TOLERANCE_VOXELS)
    return np.clip(index, 0.0, n - 1.0), beyond
