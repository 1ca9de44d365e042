"""A plan's dose brought into its structure set's frame of reference, where that is exact.

A dose exported in another frame of reference than the contours (a re-framed export, a dose
computed on a registered image set) cannot be laid on the contours as it is: the DVH numbers
would be those of a shifted dose. Where a Spatial Registration links the two frames rigidly (one
registration or a chain, not contradicted) by a pure translation, the dose grid's voxel
coordinates are moved by it, which is exact (no resampling). In every other case (no
registration, a rotation, a doubtful registration) the dose stays in its own frame and
:func:`why_not_aligned` says why; the check's ``dose_frame`` finding then withholds every
judgement drawn from the dose. Coordinates in mm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rtqa.model import DoseGrid, Level, Note, Registration

#: Largest deviation of the registration's rotation part from the identity (direction cosines)
#: for the mapping to count as a pure translation.
ROTATION_TOLERANCE = 1e-6


def dose_in_frame(
    dose: DoseGrid, frame: str | None, registrations: Sequence[Registration]
) -> tuple[DoseGrid, Note | None]:
    """``dose`` in frame of reference ``frame`` (the structure set's) and a WARNING saying how it
    was moved; ``dose`` unchanged and no note when it already is in that frame, when either frame
    is unknown, or when it cannot be moved exactly (:func:`why_not_aligned` tells why)."""
    own = dose.frame_of_reference_uid
    if not frame or not own or own == frame:
        return dose, None
    shift, how = _translation(frame, own, registrations)
    if shift is None:
        return dose, None
    moved = dataclasses.replace(
        dose,
        x_mm=np.asarray(dose.x_mm, dtype=float) - shift[0],
        y_mm=np.asarray(dose.y_mm, dtype=float) - shift[1],
        z_mm=np.asarray(dose.z_mm, dtype=float) - shift[2],
        frame_of_reference_uid=frame,
    )
    dx, dy, dz = (round(float(-v), 3) + 0.0 for v in shift)  # no '-0.000'
    return moved, Note(
        Level.WARNING,
        f"the dose lies in frame of reference {own}, the structure set in {frame}: the dose grid "
        f"was moved by ({dx:.3f}, {dy:.3f}, {dz:.3f}) mm into the structure set's frame ({how})",
        path=dose.paths[0] if dose.paths else None,
    )


def why_not_aligned(
    dose: DoseGrid, frame: str | None, registrations: Sequence[Registration]
) -> str | None:
    """Why ``dose`` cannot be laid on contours of frame of reference ``frame``; None when it can
    (same frame, or a frame unknown: nothing to compare)."""
    own = dose.frame_of_reference_uid
    if not frame or not own or own == frame:
        return None
    shift, how = _translation(frame, own, registrations)
    if shift is not None:
        return None
    return (
        f"the dose lies in frame of reference {own}, the structure set in {frame}, and {how}: "
        "the dose cannot be laid on the contours (export the dose in the structure set's frame, "
        "or supply a Spatial Registration that links the frames by a translation)"
    )


def _translation(
    frame: str, own: str, registrations: Sequence[Registration]
) -> tuple[np.ndarray | None, str]:
    """The shift ``t`` (mm) with ``p_own = p_frame + t``, or None, with what was found."""
    from rtqa.prior import registration_between

    matrix, note = registration_between(frame, own, registrations)
    if matrix is None:
        return None, "no spatial registration links the two frames"
    if note.level is Level.ERROR:
        return None, f"the registration is doubtful: {note.message}"
    rotation = np.asarray(matrix, dtype=float)[:3, :3]
    if not np.allclose(rotation, np.eye(3), rtol=0.0, atol=ROTATION_TOLERANCE):
        return None, (
            f"the registration rotates one frame against the other ({note.message}); rtqa "
            "moves a plan's own dose by a translation only, it does not resample it"
        )
    return np.asarray(matrix, dtype=float)[:3, 3], note.message
