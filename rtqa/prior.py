"""Prior radiation: map an earlier course onto the current dose grid and measure the overlap.

Conventions
-----------
* Matrices are 4x4 homogeneous (mm, column vectors). :func:`registration_between` gives the
  matrix mapping points of one frame of reference into another, per DICOM PS3.3 C.20.2 (a Spatial
  Registration maps each item's frame into the object's own frame; ``Registration.matrix``
  composes two items). The prior dose is *pulled back*: each current voxel centre is mapped into
  the prior frame by the inverse matrix and the prior dose is interpolated there.
* Everything measured here lives on the current dose grid: doses are arrays of its shape
  ``(nz, ny, nx)`` (canonical order, Gy), structures are fractional occupancy arrays of the same
  shape (0..1, the fraction of each voxel inside the structure), volumes are in cc.
* A prior dose is NaN where the prior grid does not cover the current voxel: that part is
  reported as unknown volume, never counted as 0 Gy.
* EQD2 is computed voxel-wise per course (each course with its own fraction count) and summed
  afterwards; see :mod:`rtqa.radiobiology`.
* Re-irradiation types follow the ESTRO–EORTC consensus (Andratschke et al., Lancet Oncol 2022):
  type 1 = geometric overlap of the volumes irradiated in the two courses; type 2 = no overlap but
  concern about toxicity from the cumulative dose; repeat organ irradiation = the same organ again
  without overlap or cumulative concern; repeat irradiation = a different region.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rtqa.geometry.transform import (
    check_matrix,
    invert,
    resample_dose,
    rigidity_error,
)
from rtqa.model import DoseGrid, Level, Note, Registration
from rtqa.radiobiology import check_fractions, discount_recovered, eqd2

#: Two registrations linking the same frames "agree" when they map points within this (mm) of
#: each other over a 200 mm cube.
AGREEMENT_MM = 0.5


# --------------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------------


def registration_between(
    frame_a: str | None, frame_b: str | None, registrations: Sequence[Registration]
) -> tuple[np.ndarray | None, Note]:
    """The 4x4 matrix mapping points of frame of reference ``frame_a`` into ``frame_b`` (mm),
    with a note saying where it came from.

    Same frame: the identity. Different frames: the matrix of the first Spatial Registration that
    lists both frames (``inverse(M_b) @ M_a``, each ``M`` mapping its frame into the
    registration's own frame, PS3.3 C.20.2; the own frame maps by the identity even when no item
    lists it). Where none lists both, the shortest chain of registrations through intermediate
    frames (at most :data:`MAX_CHAIN` registrations, each used once), composed step by step; the
    note names every frame and registration of the chain, since the errors of its links add.
    Other registrations or chains of the same length that map the frames more than
    :data:`AGREEMENT_MM` apart are named too. The note is INFO for a direct rigid registration,
    WARNING for a chain, ERROR when the matrix is not rigid or another registration contradicts
    it (the mapping is used, and doubtful). No link at all, or an unknown frame: ``None``
    with a note naming both frame UIDs (the caller reports the prior course as not evaluable unless
    the user states the frames are aligned).
    """
    if not frame_a or not frame_b:
        return None, Note(
            Level.WARNING,
            "cannot map between frames of reference: frame of reference UID "
            f"{frame_a or '(missing)'} and {frame_b or '(missing)'}; "
            "a frame of reference UID is missing",
            attribute="FrameOfReferenceUID (0020,0052)",
        )
    if frame_a == frame_b:
        return np.eye(4), Note(
            Level.INFO,
            f"same frame of reference {frame_a}: no registration needed (identity)",
        )
    chains = _shortest_chains(frame_a, frame_b, registrations)
    if not chains:
        return None, Note(
            Level.WARNING,
            f"no spatial registration links frame of reference {frame_a} with frame of "
            f"reference {frame_b}, directly or through up to {MAX_CHAIN - 1} other frames: the "
            "prior dose cannot be mapped onto the current grid",
            attribute="RegistrationSequence (0070,0308)",
        )
    chosen = chains[0]
    try:
        matrix = _chain_matrix(chosen)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return None, Note(
            Level.WARNING,
            f"{_chain_text(chosen)} links frame of reference {frame_a} with {frame_b} but its "
            f"matrices cannot be used: {exc}",
            path=chosen[0].registration.path or None,
            attribute="FrameOfReferenceTransformationMatrix (3006,00C6)",
        )
    problems: list[str] = []
    why_not_rigid = rigidity_error(matrix)
    if why_not_rigid:
        problems.append(f"the mapping is not rigid ({why_not_rigid}); applied as given")
    for other in chains[1:]:
        try:
            shift = _max_disagreement_mm(matrix, _chain_matrix(other))
        except (ValueError, np.linalg.LinAlgError):
            shift = np.inf
        if shift > AGREEMENT_MM:
            problems.append(
                f"{_chain_text(other)} maps the same frames differently (up to {shift:.3g} mm "
                "apart); the first one is used"
            )
    chained = len(chosen) > 1
    # a registration that is not rigid or that others contradict makes the mapping doubtful
    level = Level.ERROR if problems else Level.WARNING if chained else Level.INFO
    message = f"frame of reference {frame_a} mapped into {frame_b} by {_chain_text(chosen)}"
    if chained:
        through = ", ".join(step.target for step in chosen[:-1])
        message += (
            f", chained through frame of reference {through} (no registration lists both "
            "frames; the errors of the chained registrations add)"
        )
    if problems:
        message += ": " + "; ".join(problems)
    return matrix, Note(level, message, path=chosen[0].registration.path or None)


#: At most this many registrations are chained to link two frames of reference.
MAX_CHAIN = 3


@dataclass(frozen=True)
class _Step:
    """One link of a chain: ``registration`` maps frame ``source`` into frame ``target``."""

    registration: Registration
    source: str
    target: str


def _shortest_chains(
    frame_a: str, frame_b: str, registrations: Sequence[Registration]
) -> list[tuple[_Step, ...]]:
    """Every shortest chain of steps from ``frame_a`` to ``frame_b`` (breadth first, at most
    :data:`MAX_CHAIN` steps, no registration twice, no frame twice), in registration order."""
    level: list[tuple[_Step, ...]] = [()]
    for _ in range(MAX_CHAIN):
        grown: list[tuple[_Step, ...]] = []
        for chain in level:
            here = chain[-1].target if chain else frame_a
            seen = {frame_a, *(s.target for s in chain)}
            used = {id(s.registration) for s in chain}
            for reg in registrations:
                if id(reg) in used or reg.to_own(here) is None:
                    continue
                for frame in reg.frames:
                    if frame not in seen:
                        grown.append((*chain, _Step(reg, here, frame)))
        done = [c for c in grown if c[-1].target == frame_b]
        if done:
            return done
        level = grown
    return []


def _chain_matrix(chain: Sequence[_Step]) -> np.ndarray:
    """The composed matrix of a chain: the last step's matrix applied last."""
    matrix = np.eye(4)
    for step in chain:
        matrix = _matrix_between(step.registration, step.source, step.target) @ matrix
    return check_matrix(matrix)


def _chain_text(chain: Sequence[_Step]) -> str:
    regs = [s.registration.sop_instance_uid or "(no SOP Instance UID)" for s in chain]
    return ("spatial registration " if len(regs) == 1 else "spatial registrations ") + ", ".join(
        regs
    )


def map_prior_dose(
    prior_dose: DoseGrid, current_grid: DoseGrid, matrix_prior_to_current: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The prior dose (Gy) on the current grid and the mask of current voxels it does not cover.

    ``matrix_prior_to_current`` maps prior-frame points into the current frame (as returned by
    ``registration_between(prior_frame, current_frame, ...)``; ``None``: same frame). Each current
    voxel centre is mapped back into the prior frame and the prior dose interpolated trilinearly
    there. Returns ``(dose, outside)`` of the current grid's shape; ``dose`` is NaN where
    ``outside`` is True.
    """
    back = None if matrix_prior_to_current is None else invert(matrix_prior_to_current)
    return resample_dose(prior_dose, current_grid, back)


def map_occupancy(
    occupancy: np.ndarray,
    grid: DoseGrid,
    current_grid: DoseGrid,
    matrix_prior_to_current: np.ndarray | None,
) -> np.ndarray:
    """A fractional occupancy (0..1) given on ``grid`` (prior frame), carried onto the current grid.

    The occupancy is interpolated trilinearly like a dose; current voxels beyond ``grid`` get 0
    (the structure is taken to lie within the lattice it was rasterised on).
    """
    occ = np.asarray(occupancy, dtype=float)
    if occ.shape != grid.dose_gy.shape:
        raise ValueError(f"occupancy shape {occ.shape} differs from its grid {grid.dose_gy.shape}")
    lattice = effective_dose_grid(grid, occ, "structure occupancy (0..1)")
    back = None if matrix_prior_to_current is None else invert(matrix_prior_to_current)
    mapped, outside = resample_dose(lattice, current_grid, back)
    mapped[outside] = 0.0
    return np.clip(mapped, 0.0, 1.0)


def voxel_volumes_cc(grid: DoseGrid) -> np.ndarray:
    """Volume of each voxel of ``grid`` (cc), shaped ``(nz, 1, 1)`` to broadcast over the grid.

    x and y spacings are uniform; in z a voxel reaches halfway to the neighbouring planes (at the
    first and last plane, as far beyond as to its one neighbour), so uneven planes are handled.
    """
    if min(grid.x_mm.size, grid.y_mm.size, grid.z_mm.size) < 2:
        raise ValueError(
            "voxel volumes need at least two planes along each axis, got grid shape "
            f"(z {grid.z_mm.size}, y {grid.y_mm.size}, x {grid.x_mm.size})"
        )
    dx = float(grid.x_mm[1] - grid.x_mm[0])
    dy = float(grid.y_mm[1] - grid.y_mm[0])
    steps = np.diff(np.asarray(grid.z_mm, dtype=float))
    thickness = np.empty(grid.z_mm.size)
    thickness[0] = steps[0]
    thickness[-1] = steps[-1]
    thickness[1:-1] = 0.5 * (steps[:-1] + steps[1:])
    return (dx * dy * thickness / 1000.0)[:, None, None]


# --------------------------------------------------------------------------------------------
# Cumulative EQD2
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CourseDose:
    """One course's physical total dose on the current grid (Gy; NaN where unknown) and the
    fraction count it was delivered in."""

    dose_gy: np.ndarray
    fractions: int
    label: str = ""


def course_eqd2(course: CourseDose, alpha_beta_gy: float | np.ndarray) -> np.ndarray:
    """Voxel-wise EQD2 (Gy) of one course with its own fraction count (see
    :func:`rtqa.radiobiology.eqd2`); α/β may be a number or a voxel-wise map (Gy)."""
    check_fractions(course.fractions)
    return np.asarray(eqd2(course.dose_gy, course.fractions, alpha_beta_gy), dtype=float)


def cumulative_eqd2(
    current: CourseDose,
    priors: Sequence[CourseDose],
    alpha_beta_gy: float | np.ndarray,
    recovery_factors: Sequence[float] | None = None,
) -> np.ndarray:
    """Cumulative EQD2 (Gy) on the current grid: ``EQD2_current + Σ (1 − r_i) · EQD2_prior_i``.

    Each course is converted voxel-wise with its own fraction count before summing;
    ``alpha_beta_gy`` is the α/β (Gy) of the structure being judged (a number, or a map of the
    grid's shape). ``recovery_factors`` (one per prior course, for this organ and interval;
    default none) discount the prior EQD2. NaN (a prior dose unknown in that voxel) stays NaN
    in the sum.
    """
    if recovery_factors is None:
        recovery_factors = [0.0] * len(priors)
    if len(recovery_factors) != len(priors):
        raise ValueError(
            f"{len(recovery_factors)} recovery factors given for {len(priors)} prior courses"
        )
    shape = np.shape(current.dose_gy)
    total = course_eqd2(current, alpha_beta_gy)
    for prior, factor in zip(priors, recovery_factors, strict=True):
        if np.shape(prior.dose_gy) != shape:
            raise ValueError(
                f"prior course {prior.label or '(unnamed)'} dose has shape "
                f"{np.shape(prior.dose_gy)}, not the current grid's {shape}: map it first"
            )
        total = total + np.asarray(discount_recovered(course_eqd2(prior, alpha_beta_gy), factor))
    return total


# --------------------------------------------------------------------------------------------
# Overlap measures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPriorDose:
    """How much prior dose a current target received (doses in the units of the map given,
    usually prior EQD2 in Gy; volumes in cc and % of the target volume on the grid)."""

    threshold_gy: float
    volume_cc: float  # target volume receiving at least threshold_gy of prior dose
    volume_pct: float
    target_volume_cc: float  # known + unknown
    unknown_volume_cc: float  # target volume the prior dose grid does not cover
    max_gy: float | None  # None when the prior dose is unknown in the whole target
    mean_gy: float | None  # occupancy- and volume-weighted, over the known part


def prior_dose_in_target(
    target: np.ndarray, prior_dose_gy: np.ndarray, grid: DoseGrid, threshold_gy: float
) -> TargetPriorDose:
    """Volume of ``target`` (occupancy on ``grid``) receiving at least ``threshold_gy`` of prior
    dose, and the maximum and mean prior dose inside it.

    Pass the prior EQD2 map to get prior EQD2 figures, or the physical prior dose with a physical
    threshold (e.g. the prior prescription isodose or its 50 %).
    """
    occ, dose = _on_grid(grid, target=target, prior_dose=prior_dose_gy)
    weights = occ * voxel_volumes_cc(grid)
    known = ~np.isnan(dose)
    total = float(weights.sum())
    unknown = float(weights[~known].sum())
    hot = known & (dose >= threshold_gy)
    volume = float(weights[hot].sum())
    inside = known & (occ > 0)
    if np.any(inside):
        max_gy = float(dose[inside].max())
        known_weight = float(weights[inside].sum())
        mean_gy = float((weights[inside] * dose[inside]).sum() / known_weight)
    else:
        max_gy = mean_gy = None
    return TargetPriorDose(
        threshold_gy=float(threshold_gy),
        volume_cc=volume,
        volume_pct=100.0 * volume / total if total > 0 else 0.0,
        target_volume_cc=total,
        unknown_volume_cc=unknown,
        max_gy=max_gy,
        mean_gy=mean_gy,
    )


def unknown_volume_cc(occupancy: np.ndarray, outside: np.ndarray, grid: DoseGrid) -> float:
    """Volume (cc) of a structure (occupancy on ``grid``) where the mapped dose is unknown."""
    occ, mask = _on_grid(grid, occupancy=occupancy, outside=outside)
    return float((occ * voxel_volumes_cc(grid))[mask.astype(bool)].sum())


def dose_samples(
    occupancy: np.ndarray, dose_gy: np.ndarray, grid: DoseGrid
) -> tuple[np.ndarray, np.ndarray, float]:
    """A structure's voxel doses on ``grid`` as ``(doses_gy, volumes_cc, unknown_volume_cc)``:
    every voxel it occupies where the dose is known, with the volume it has there, and the
    volume where the dose is NaN (unknown) — the arguments of ``Dvh.from_samples`` for prior,
    current or cumulative EQD2 metrics of one organ."""
    occ, dose = _on_grid(grid, occupancy=occupancy, dose=dose_gy)
    weights = occ * voxel_volumes_cc(grid)
    inside = occ > 0
    known = inside & ~np.isnan(dose)
    unknown = float(weights[inside & np.isnan(dose)].sum())
    return dose[known], weights[known], unknown


def effective_dose_grid(grid: DoseGrid, values_gy: np.ndarray, description: str) -> DoseGrid:
    """A dose grid with the axes and frame of ``grid`` holding derived values (e.g. a cumulative
    EQD2 map, Gy): DoseType EFFECTIVE, summed over several plans; ``description`` says what it
    is (model, α/β, courses) and is kept as the scaling note."""
    values = np.asarray(values_gy, dtype=float)
    if values.shape != grid.dose_gy.shape:
        raise ValueError(f"values have shape {values.shape}, not the grid's {grid.dose_gy.shape}")
    return DoseGrid(
        dose_gy=values,
        x_mm=grid.x_mm,
        y_mm=grid.y_mm,
        z_mm=grid.z_mm,
        frame_of_reference_uid=grid.frame_of_reference_uid,
        dose_type="EFFECTIVE",
        summation_type="MULTI_PLAN",
        source_orientation=grid.source_orientation,
        patient_position=grid.patient_position,
        scaling_note=description,
        patient_id=grid.patient_id,
    )


@dataclass(frozen=True)
class VolumeOverlap:
    """Overlap of two structures on one grid: volumes in cc, Dice = 2|A∩B| / (|A| + |B|)."""

    overlap_cc: float
    volume_a_cc: float
    volume_b_cc: float
    dice: float


def volume_overlap(a: np.ndarray, b: np.ndarray, grid: DoseGrid) -> VolumeOverlap:
    """Overlap of two fractional occupancies on ``grid`` (e.g. a mapped prior target and the
    current target); the shared part of a voxel is ``min(a, b)`` of its volume."""
    occ_a, occ_b = _on_grid(grid, a=a, b=b)
    volumes = voxel_volumes_cc(grid)
    va = float((occ_a * volumes).sum())
    vb = float((occ_b * volumes).sum())
    both = float((np.minimum(occ_a, occ_b) * volumes).sum())
    dice = 2.0 * both / (va + vb) if va + vb > 0 else 0.0
    return VolumeOverlap(overlap_cc=both, volume_a_cc=va, volume_b_cc=vb, dice=dice)


def irradiated_overlap_cc(
    prior_dose_gy: np.ndarray,
    prior_threshold_gy: float,
    current_dose_gy: np.ndarray,
    current_threshold_gy: float,
    grid: DoseGrid,
) -> tuple[float, float]:
    """Volume (cc) irradiated by both courses: prior dose ≥ ``prior_threshold_gy`` and current
    dose ≥ ``current_threshold_gy`` (the isodoses that define each irradiated volume, e.g. 50 % of
    each prescription; a choice for the caller, the consensus fixes none). Also returns the volume
    (cc) within the current irradiated volume where the prior dose is unknown (voxels whose
    centre it is). The overlap is of the two trilinear dose fields over the current grid's
    voxels (:func:`rtqa.dvh.quality.both_at_or_above_cc`), not a count of voxel centres."""
    from rtqa.dvh.quality import both_at_or_above_cc

    prior, current = _on_grid(grid, prior_dose=prior_dose_gy, current_dose=current_dose_gy)
    volumes = np.broadcast_to(voxel_volumes_cc(grid), prior.shape)
    unknown = np.isnan(prior) & (current >= current_threshold_gy)
    field = dataclasses.replace(grid, dose_gy=current)
    both = both_at_or_above_cc(field, prior, current_threshold_gy, prior_threshold_gy)
    return both, float(volumes[unknown].sum())


def dosed_by_both(
    organ: np.ndarray,
    prior_dose_gy: np.ndarray,
    prior_threshold_gy: float,
    current_dose_gy: np.ndarray,
    current_threshold_gy: float,
) -> bool:
    """True when an organ (occupancy) receives at least ``prior_threshold_gy`` from the prior
    course somewhere and at least ``current_threshold_gy`` from the current course somewhere (not
    necessarily in the same voxels): the cumulative-dose concern of type 2 re-irradiation."""
    occ = np.asarray(organ, dtype=float)
    prior, current = (np.asarray(d, dtype=float) for d in (prior_dose_gy, current_dose_gy))
    if not occ.shape == prior.shape == current.shape:
        raise ValueError(
            f"organ {occ.shape}, prior dose {prior.shape} and current dose {current.shape} "
            "must share the current grid's shape"
        )
    inside = occ > 0
    prior, current = prior[inside], current[inside]
    prior_hit = bool(np.any(prior[~np.isnan(prior)] >= prior_threshold_gy))
    current_hit = bool(np.any(current[~np.isnan(current)] >= current_threshold_gy))
    return prior_hit and current_hit


class ReirradiationType(enum.StrEnum):
    """ESTRO–EORTC re-irradiation categories (Andratschke et al., Lancet Oncol 2022)."""

    TYPE_1 = "type 1 re-irradiation"
    TYPE_2 = "type 2 re-irradiation"
    REPEAT_ORGAN = "repeat organ irradiation"
    REPEAT = "repeat irradiation"


@dataclass(frozen=True)
class Classification:
    kind: ReirradiationType
    reason: str


def classify_reirradiation(
    overlap_cc: float,
    concern_organs: Sequence[str] = (),
    repeat_organs: Sequence[str] = (),
    *,
    overlap_tolerance_cc: float = 0.0,
) -> Classification:
    """Classify a new course against a prior one by the ESTRO–EORTC definitions.

    ``overlap_cc``: volume irradiated by both courses (:func:`irradiated_overlap_cc`); more than
    ``overlap_tolerance_cc`` is a geometric overlap (type 1). Otherwise ``concern_organs`` (organs
    with a cumulative-dose concern, e.g. :func:`dosed_by_both` for organs with cumulative limits)
    make it type 2; ``repeat_organs`` (organs irradiated by both without concern) repeat organ
    irradiation; else repeat irradiation.
    """
    if not np.isfinite(overlap_cc) or overlap_cc < 0:
        raise ValueError(f"overlap volume must be a non-negative number of cc, got {overlap_cc!r}")
    if overlap_cc > overlap_tolerance_cc:
        return Classification(
            ReirradiationType.TYPE_1,
            f"the volumes irradiated by the prior and the current course overlap "
            f"({overlap_cc:.3g} cc)",
        )
    if concern_organs:
        return Classification(
            ReirradiationType.TYPE_2,
            "no geometric overlap of the irradiated volumes, but a cumulative-dose concern for "
            + ", ".join(concern_organs),
        )
    if repeat_organs:
        return Classification(
            ReirradiationType.REPEAT_ORGAN,
            "no overlap and no cumulative-dose concern; the same organ is irradiated again: "
            + ", ".join(repeat_organs),
        )
    return Classification(
        ReirradiationType.REPEAT,
        "no overlap, no cumulative-dose concern and no organ irradiated by both courses",
    )


# --------------------------------------------------------------------------------------------
# Registration direction sanity check
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionCheck:
    """Dice of the mapped prior body with the current body, with the matrix and its inverse."""

    dice: float
    dice_inverse: float
    note: Note


def check_registration_direction(
    prior_body: np.ndarray,
    prior_body_grid: DoseGrid,
    current_body: np.ndarray,
    current_body_grid: DoseGrid,
    matrix_prior_to_current: np.ndarray,
    *,
    margin: float = 0.02,
    min_dice: float = 0.8,
) -> DirectionCheck:
    """Compare the prior body outline mapped by the matrix, and by its inverse, with the current
    body outline (occupancies on the lattices given; Dice on the current body's lattice, which
    should cover the whole current outline, over the planes where both outlines are present:
    scans of different length are no misfit).

    Warns when the inverse fits better by more than ``margin`` in Dice (registrations are known to
    be exported inverted by some systems), or when the fit is poor (Dice below ``min_dice``).
    """
    matrix = check_matrix(matrix_prior_to_current)
    direct = map_occupancy(prior_body, prior_body_grid, current_body_grid, matrix)
    reverse = map_occupancy(prior_body, prior_body_grid, current_body_grid, invert(matrix))
    dice = _dice_on_common_planes(direct, current_body, current_body_grid)
    dice_inverse = _dice_on_common_planes(reverse, current_body, current_body_grid)
    if dice_inverse > dice + margin:
        note = Note(
            Level.WARNING,
            f"the registration may be inverted: the prior body outline matches the current one "
            f"better with the inverse matrix (Dice {dice_inverse:.3f}) than as written "
            f"(Dice {dice:.3f}); check the registration's direction",
        )
    elif dice < min_dice:
        note = Note(
            Level.WARNING,
            f"the mapped prior body outline matches the current one poorly (Dice {dice:.3f} < "
            f"{min_dice:g}); check the registration",
        )
    else:
        note = Note(
            Level.INFO,
            f"mapped prior body outline matches the current one (Dice {dice:.3f}; with the "
            f"inverse matrix {dice_inverse:.3f})",
        )
    return DirectionCheck(dice=dice, dice_inverse=dice_inverse, note=note)


def _dice_on_common_planes(a: np.ndarray, b: np.ndarray, grid: DoseGrid) -> float:
    """Dice of two occupancies on ``grid`` over the z planes where both are present (0 when
    there are none)."""
    both = (a.reshape(a.shape[0], -1).max(axis=1) > 0) & (b.reshape(b.shape[0], -1).max(axis=1) > 0)
    if not both.any():
        return 0.0
    keep = both[:, None, None]
    return volume_overlap(np.where(keep, a, 0.0), np.where(keep, b, 0.0), grid).dice


# --------------------------------------------------------------------------------------------


def _on_grid(grid: DoseGrid, **arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as float arrays, after checking each has the grid's shape."""
    shape = tuple(grid.dose_gy.shape)
    out = []
    for name, value in arrays.items():
        array = np.asarray(value, dtype=float)
        if array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, not the grid's {shape}")
        out.append(array)
    return out


def _matrix_between(reg: Registration, frame_a: str, frame_b: str) -> np.ndarray:
    """``inverse(M_b) @ M_a`` (PS3.3 Eq. C.20.2-3), as ``Registration.matrix`` computes it."""
    m_a = check_matrix(reg.to_own(frame_a))
    m_b = check_matrix(reg.to_own(frame_b))
    return check_matrix(invert(m_b) @ m_a)


def _max_disagreement_mm(m1: np.ndarray, m2: np.ndarray) -> float:
    """Largest distance (mm) between the images of the corners of a 200 mm cube about the origin
    under two matrices (a registration's difference where the patient is)."""
    corners = np.array(
        [[x, y, z] for x in (-100.0, 100.0) for y in (-100.0, 100.0) for z in (-100.0, 100.0)]
    )
    a = corners @ m1[:3, :3].T + m1[:3, 3]
    b = corners @ np.asarray(m2, dtype=float)[:3, :3].T + np.asarray(m2, dtype=float)[:3, 3]
    return float(np.max(np.linalg.norm(a - b, axis=1)))
