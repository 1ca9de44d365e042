"""The cumulative EQD2 grid of the prior-radiation rules (Gy, on the current dose grid) and its
export as an RT Dose file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtqa.model import DoseGrid, Finding, Status
from rtqa.prior import effective_dose_grid
from rtqa.protocol.prior_alpha_beta import MODEL
from rtqa.protocol.prior_inputs import GROUP, MappedPrior, PriorInput
from rtqa.radiobiology import eqd2

if TYPE_CHECKING:
    from rtqa.protocol.prior_rules import PriorContext


def current_eqd2(inp: PriorInput, ab: float) -> np.ndarray:
    """The current course's EQD2 (Gy) on its own dose grid at α/β ``ab`` (Gy)."""
    return np.asarray(eqd2(inp.dose.dose_gy, inp.fractions, ab), dtype=float)


def prior_eqd2(priors: list[MappedPrior], ab: float) -> np.ndarray:
    """The summed EQD2 (Gy) of the mapped prior courses on the current dose grid at α/β ``ab``
    (Gy), each converted with its own fraction count; NaN where a prior dose is unknown."""
    total = np.zeros(priors[0].dose_gy.shape) if priors else np.zeros(0)
    for p in priors:
        total = total + np.asarray(eqd2(p.dose_gy, p.fractions, ab), dtype=float)
    return total


def cumulative_grid(
    inp: PriorInput, priors: list[MappedPrior], ab: float, source: str, current: np.ndarray
) -> DoseGrid:
    """The cumulative EQD2 grid: ``current`` (:func:`current_eqd2`) plus every prior course's
    EQD2 (:func:`prior_eqd2`), NaN where a prior dose is unknown."""
    total = current + prior_eqd2(priors, ab) if priors else current.copy()
    courses = ", ".join(
        [f"current {inp.fractions} fx"] + [f"'{p.label}' {p.fractions} fx" for p in priors]
    )
    description = (
        f"cumulative EQD2 (Gy), {MODEL} model, alpha/beta {ab:g} Gy ({source}), no recovery "
        f"discount; courses: {courses}"
    )
    return effective_dose_grid(inp.dose, total, description)


def export_cumulative_grid(
    inp: PriorInput, priors: list[MappedPrior], ctx: PriorContext
) -> Finding:
    from rtqa.dicom.write.cumulative import write_cumulative_eqd2

    path = str(inp.export_cumulative)
    try:
        unknown = write_cumulative_eqd2(
            ctx.cumulative,
            path,
            current_dose=inp.dose,
            current_eqd2_gy=ctx.current_eqd2_gy,
            alpha_beta_gy=ctx.alpha_beta_gy,
            course=inp.course,
        )
    except (OSError, ValueError) as exc:
        return Finding(
            GROUP,
            "export_cumulative",
            Status.NOT_EVALUABLE,
            f"cumulative EQD2 not written to {path}: {exc}",
        )
    ctx.export_path = path
    text = (
        f"cumulative EQD2 grid written to {path} (RT Dose, EFFECTIVE, MULTI_PLAN, "
        f"{ctx.cumulative.scaling_note})"
    )
    if unknown:
        text += (
            f"; in {unknown} voxel(s) a prior dose is unknown (outside its grid): the file holds "
            "the current course's EQD2 alone there"
        )
    return Finding(GROUP, "export_cumulative", Status.INFO, text)
