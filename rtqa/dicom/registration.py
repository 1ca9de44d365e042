"""Read a Spatial Registration object (rigid, rigid-with-scale or affine matrices).

Convention (DICOM PS3.3 C.20.2, PS3.17 Annex O): the object's own FrameOfReferenceUID is the
Registered RCS; each RegistrationSequence item's matrix maps points of that item's frame (the
Source RCS) into the Registered RCS: ``p_reg = M @ [x, y, z, 1]`` (mm). When an item lists
several matrices they are applied in listed order, so the item's matrix is ``M_n ... M_2 M_1``.
The registration's own frame maps to itself by the identity. Deformable registrations (which map
the other way and need a vector grid) are refused.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from rtqa.dicom.common import (
    DEFORMABLE_REGISTRATION,
    SPATIAL_REGISTRATION,
    optional_str,
    read_dataset,
    tag_name,
)
from rtqa.errors import DicomError
from rtqa.model import Level, Note, Registration

TOLERANCE = 1e-4
_GENERALITY = {"RIGID": 0, "RIGID_SCALE": 1, "AFFINE": 2}


def read_registration(path: str) -> Registration:
    """Read the Spatial Registration at ``path`` (DicomError for deformable or invalid ones)."""
    ds, notes = read_dataset(path, stop_before_pixels=True)
    return registration_from_dataset(ds, path, notes)


def registration_from_dataset(
    ds: Dataset, path: str, notes: list[Note] | None = None
) -> Registration:
    """A :class:`Registration` from an already-read dataset."""
    notes = list(notes or [])
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == DEFORMABLE_REGISTRATION:
        raise DicomError("deformable registration not supported", path, tag_name("SOPClassUID"))
    if sop_class != SPATIAL_REGISTRATION:
        raise DicomError(
            f"not a Spatial Registration (SOP Class UID {sop_class or 'missing'})",
            path,
            tag_name("SOPClassUID"),
        )
    own_frame = optional_str(ds, "FrameOfReferenceUID")
    if not own_frame:
        raise DicomError(
            "Spatial Registration without its own frame of reference",
            path,
            tag_name("FrameOfReferenceUID"),
        )
    items = ds.get("RegistrationSequence") or []
    if not items:
        raise DicomError("registration has no items", path, tag_name("RegistrationSequence"))
    matrices: dict[str, np.ndarray] = {}
    types: dict[str, str] = {}
    for index, item in enumerate(items, start=1):
        frame = optional_str(item, "FrameOfReferenceUID")
        if not frame:
            raise DicomError(
                f"registration item {index} names no frame of reference",
                path,
                tag_name("FrameOfReferenceUID"),
            )
        matrix, kind = _item_matrix(item, index, path)
        if frame in matrices and not np.allclose(matrices[frame], matrix, atol=TOLERANCE):
            raise DicomError(
                f"frame {frame} appears in several registration items with different matrices",
                path,
                tag_name("RegistrationSequence"),
            )
        matrices[frame] = matrix
        types[frame] = kind
        if kind != "RIGID":
            notes.append(
                Note(
                    Level.WARNING,
                    f"{kind} registration for frame {frame}: applied as given; volumes and "
                    "distances are not preserved",
                    path,
                    tag_name("FrameOfReferenceTransformationMatrixType"),
                )
            )
    if own_frame not in matrices:
        matrices[own_frame] = np.eye(4)
        types[own_frame] = "RIGID"
    return Registration(
        path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        frame_of_reference_uid=own_frame,
        matrices=matrices,
        matrix_types=types,
        patient_id=optional_str(ds, "PatientID"),
        notes=tuple(notes),
    )


def _item_matrix(item: Dataset, index: int, path: str) -> tuple[np.ndarray, str]:
    """The composed matrix of one item and its most general type."""
    registrations = item.get("MatrixRegistrationSequence") or []
    if not registrations:
        raise DicomError(
            f"registration item {index} has no matrix (deformable items are not supported)",
            path,
            tag_name("MatrixRegistrationSequence"),
        )
    sequence = registrations[0].get("MatrixSequence") or []
    if not sequence:
        raise DicomError(
            f"registration item {index} has an empty MatrixSequence",
            path,
            tag_name("MatrixSequence"),
        )
    composed = np.eye(4)
    kind = "RIGID"
    for entry in sequence:
        matrix = _matrix(entry, index, path)
        entry_kind = optional_str(entry, "FrameOfReferenceTransformationMatrixType") or "RIGID"
        if entry_kind not in _GENERALITY:
            raise DicomError(
                f"registration item {index}: unknown matrix type '{entry_kind}'",
                path,
                tag_name("FrameOfReferenceTransformationMatrixType"),
            )
        if entry_kind == "RIGID":
            _check_rigid(matrix, index, path)
        if _GENERALITY[entry_kind] > _GENERALITY[kind]:
            kind = entry_kind
        composed = matrix @ composed
    return composed, kind


def _matrix(entry: Dataset, index: int, path: str) -> np.ndarray:
    values = entry.get("FrameOfReferenceTransformationMatrix")
    attribute = tag_name("FrameOfReferenceTransformationMatrix")
    try:
        numbers = [float(v) for v in (values or [])]
    except (TypeError, ValueError) as exc:
        raise DicomError(
            f"registration item {index}: matrix is not numeric", path, attribute
        ) from exc
    if len(numbers) != 16 or not np.all(np.isfinite(numbers)):
        raise DicomError(
            f"registration item {index}: matrix needs 16 finite values, got {len(numbers)}",
            path,
            attribute,
        )
    matrix = np.array(numbers).reshape(4, 4)  # row-major as written
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=TOLERANCE):
        raise DicomError(
            f"registration item {index}: last matrix row is {matrix[3].tolist()}, not (0,0,0,1)",
            path,
            attribute,
        )
    return matrix


def _check_rigid(matrix: np.ndarray, index: int, path: str) -> None:
    rotation = matrix[:3, :3]
    attribute = tag_name("FrameOfReferenceTransformationMatrix")
    error = float(np.max(np.abs(rotation @ rotation.T - np.eye(3))))
    if error > TOLERANCE:
        raise DicomError(
            f"registration item {index}: RIGID matrix is not orthonormal "
            f"(max |R R^T - I| = {error:.2g} > {TOLERANCE:g})",
            path,
            attribute,
        )
    det = float(np.linalg.det(rotation))
    if abs(det - 1.0) > TOLERANCE:
        raise DicomError(
            f"registration item {index}: RIGID matrix has determinant {det:.6g} "
            "(a reflection is not a rigid transform)",
            path,
            attribute,
        )
