"""The dose of a course of several plans: plan doses on one grid, their sum, their EQD2 DVH.

Plan grids are summed directly when they share frame and geometry, else resampled onto the first
plan's grid. Doses Gy, coordinates mm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from rtqa.model import Case, DoseGrid, Level, Registration


def _same_geometry(a: DoseGrid, b: DoseGrid) -> bool:
    return (
        a.frame_of_reference_uid == b.frame_of_reference_uid
        and a.shape == b.shape
        and all(
            np.allclose(u, v, atol=1e-3)
            for u, v in ((a.x_mm, b.x_mm), (a.y_mm, b.y_mm), (a.z_mm, b.z_mm))
        )
    )


def course_registrations(cases: Sequence[Case]) -> list[Registration]:
    """The spatial registrations of ``cases``, each once (several cases may share one)."""
    return list({id(r): r for c in cases for r in c.registrations}.values())


def plan_doses_on_first(
    cases: Sequence[Case],
) -> tuple[list[np.ndarray], list[tuple[str, bool]], str | None]:
    """Each case's dose on the first case's grid, what was done (each with ``True`` where it
    rests on a doubtful registration: not rigid, or contradicted by another), and why summing
    failed (``None`` when it worked). Dose outside another plan's own grid is taken as 0 Gy
    there (the planning system computed none) and said so."""
    ref = cases[0].dose
    assert ref is not None
    arrays = [np.asarray(ref.dose_gy, dtype=float)]
    said: list[tuple[str, bool]] = []
    for case in cases[1:]:
        d = case.dose
        assert d is not None
        if d.dose_type != ref.dose_type:  # an RBE-weighted dose and a physical one
            return (
                arrays,
                said,
                f"plan '{case.label}' has a {d.dose_type} dose, plan '{cases[0].label}' a "
                f"{ref.dose_type} one (DoseType): an RBE-weighted and a physical dose are never "
                "summed (use --separate to judge each plan alone)",
            )
        if _same_geometry(ref, d):
            arrays.append(np.asarray(d.dose_gy, dtype=float))
            continue
        from rtqa.geometry.transform import resample_dose
        from rtqa.prior import registration_between

        matrix = None
        via = ""
        doubtful = False
        if d.frame_of_reference_uid != ref.frame_of_reference_uid:
            # points of the first plan's frame into this plan's: resample_dose's direction
            matrix, note = registration_between(
                ref.frame_of_reference_uid, d.frame_of_reference_uid, course_registrations(cases)
            )
            if matrix is None:
                return (
                    arrays,
                    said,
                    f"plan '{case.label}' lies in another frame of reference than the first "
                    f"plan: {note.message}; the plan doses cannot be summed (use --separate to "
                    "judge each plan alone)",
                )
            via = f" ({note.message})"
            doubtful = note.level is Level.ERROR
        values, outside = resample_dose(d, ref, matrix)
        n_out = int(outside.sum())
        values = np.where(outside, 0.0, values)
        arrays.append(values)
        msg = f"dose of '{case.label}' resampled onto the grid of '{cases[0].label}'{via}"
        if n_out:
            msg += f" ({n_out} voxels beyond its own grid taken as 0 Gy)"
        said.append((msg, doubtful))
    return arrays, said, None


def eqd2_dvh(
    occ: Any,
    ref: DoseGrid,
    arrays: Sequence[np.ndarray],
    fractions: Sequence[int | None],
    ab: float,
):
    """DVH of the voxel-wise EQD2 sum of several plans (doses on ``ref``'s grid) over ``occ``.

    Each plan's physical dose is interpolated at the structure's sample points first and
    converted there (EQD2 is convex: converting grid values and interpolating them afterwards
    would overstate it between voxels); the conversions are then summed sample by sample. The
    part of the structure beyond the grid is bounded by the sum of the EQD2 of each plan's
    highest dose on the grid faces it crosses (:mod:`rtqa.dvh.beyond_grid`)."""
    from rtqa.dvh import Dvh
    from rtqa.dvh.beyond_grid import beyond_grid_max_gy
    from rtqa.geometry.sampling import sample_doses
    from rtqa.radiobiology import eqd2

    total = spread = vols = None
    bound: float | None = 0.0
    for values, n in zip(arrays, fractions, strict=True):
        grid = dataclasses.replace(ref, dose_gy=values)
        face = beyond_grid_max_gy(occ, grid)
        bound = None if face is None or bound is None else bound + eqd2(face, int(n or 1), ab)
        sampled = sample_doses(occ, grid)
        doses = np.clip(np.asarray(sampled[0], float), 0.0, None)
        vols = np.asarray(sampled[1], float)
        k = int(n or 1)
        converted = np.asarray(eqd2(doses, k, ab), float)
        total = converted if total is None else total + converted
        if len(sampled) > 2 and sampled[2] is not None:
            # the spread of the dose within a cell, carried through the local slope of EQD2
            slope = (2.0 * doses / k + ab) / (2.0 + ab)
            part = slope * np.asarray(sampled[2], float)
            spread = part if spread is None else spread + part
    assert total is not None and vols is not None
    dvh = Dvh.from_samples(total, vols, occ.outside_cc, spreads_gy=spread)
    dvh.beyond_grid_max_gy = float(bound) if bound is not None else None
    return dvh


def summed_grid(ref: DoseGrid, values: np.ndarray, note: str) -> DoseGrid:
    """A copy of ``ref`` holding ``values`` (Gy) with ``note`` as its scaling note."""
    return dataclasses.replace(
        ref, dose_gy=values, scaling_note=note, summation_type="MULTI_PLAN", tps_dvhs=()
    )


__all__ = ["course_registrations", "eqd2_dvh", "plan_doses_on_first", "summed_grid"]
