"""Linear-quadratic (LQ) dose conversions, voxel by voxel: BED, EQD2 and their inverses.

Conventions
-----------
* A course delivers a total physical dose ``D`` (Gy) in ``n`` equal fractions; the dose per
  fraction is ``d = D / n``. In a dose grid every voxel has its *own* ``d`` (its own total dose
  divided by the course's fraction count): the prescription dose per fraction is never used for
  other voxels (that would overstate the effect in an organ lying in a steep SBRT gradient).
* ``alpha_beta_gy`` (α/β, Gy) is a tissue property; it must be given explicitly (no default here).
* ``BED = D · (1 + d / (α/β))`` in Gy (often written Gy_α/β, e.g. "Gy2").
* ``EQD2 = BED / (1 + 2 / (α/β)) = D · (d + α/β) / (2 + α/β)`` in Gy: the total dose in 2-Gy
  fractions with the same LQ effect.
* Courses are summed *after* conversion (each with its own ``n``): cumulative
  ``EQD2 = Σ EQD2_course``; see :func:`discount_recovered`.
* Doses of 0 stay 0; NaN (dose unknown) stays NaN; negative doses are refused.

Functions accept a scalar (returning ``float``) or an array (returning an array of the same shape;
α/β may also be an array that broadcasts against the dose, e.g. a voxel-wise α/β map).

This module imports no I/O and knows nothing of files, DICOM or structures.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

#: Dose per fraction (Gy) above which the LQ model is doubtful (Brenner, Semin Radiat Oncol 2008:
#: reasonably validated up to about 10 Gy per fraction, "reasonable" up to about 18 Gy).
LQ_DOUBTFUL_ABOVE_GY = 10.0

DoseLike = float | np.ndarray


def check_alpha_beta(alpha_beta_gy: ArrayLike) -> np.ndarray | float:
    """α/β (Gy) as given, after checking it is positive and finite (ValueError otherwise)."""
    values = _floats(alpha_beta_gy, "α/β must be a positive number of Gy")
    if values.size == 0:
        raise ValueError("α/β is empty: give a positive number of Gy")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"α/β must be finite, got {_show(alpha_beta_gy)}")
    if not np.all(values > 0):
        raise ValueError(f"α/β must be positive (Gy), got {_show(alpha_beta_gy)}")
    return float(values) if values.ndim == 0 else values


def check_fractions(fractions: object) -> int:
    """The fraction count as an ``int`` after checking it is a positive integer (ValueError)."""
    if isinstance(fractions, bool) or not isinstance(fractions, numbers.Integral):
        raise ValueError(f"fraction count must be a positive integer, got {fractions!r}")
    if int(fractions) < 1:
        raise ValueError(f"fraction count must be a positive integer, got {int(fractions)}")
    return int(fractions)


def bed(total_gy: ArrayLike, fractions: int, alpha_beta_gy: ArrayLike) -> DoseLike:
    """Biologically effective dose (Gy), voxel-wise: ``BED = D · (1 + D / (n · α/β))``.

    ``total_gy`` is the physical dose of the whole course (Gy) delivered in ``fractions`` equal
    fractions.
    """
    n = check_fractions(fractions)
    ab = check_alpha_beta(alpha_beta_gy)
    dose = _dose(total_gy, "total dose")
    return _out(dose * (1.0 + dose / (n * np.asarray(ab))), total_gy, alpha_beta_gy)


def eqd2(total_gy: ArrayLike, fractions: int, alpha_beta_gy: ArrayLike) -> DoseLike:
    """Equivalent dose in 2-Gy fractions (Gy), voxel-wise: ``EQD2 = D · (d + α/β) / (2 + α/β)``
    with ``d = D / n``."""
    n = check_fractions(fractions)
    ab = np.asarray(check_alpha_beta(alpha_beta_gy))
    dose = _dose(total_gy, "total dose")
    return _out(dose * (dose / n + ab) / (2.0 + ab), total_gy, alpha_beta_gy)


def eqd2_from_bed(bed_gy: ArrayLike, alpha_beta_gy: ArrayLike) -> DoseLike:
    """EQD2 (Gy) from BED (Gy): ``EQD2 = BED / (1 + 2 / (α/β))``."""
    ab = np.asarray(check_alpha_beta(alpha_beta_gy))
    value = _dose(bed_gy, "BED")
    return _out(value * ab / (ab + 2.0), bed_gy, alpha_beta_gy)


def bed_from_eqd2(eqd2_gy: ArrayLike, alpha_beta_gy: ArrayLike) -> DoseLike:
    """BED (Gy) from EQD2 (Gy): ``BED = EQD2 · (1 + 2 / (α/β))``."""
    ab = np.asarray(check_alpha_beta(alpha_beta_gy))
    value = _dose(eqd2_gy, "EQD2")
    return _out(value * (1.0 + 2.0 / ab), eqd2_gy, alpha_beta_gy)


def physical_from_bed(bed_gy: ArrayLike, fractions: int, alpha_beta_gy: ArrayLike) -> DoseLike:
    """Total physical dose (Gy) in ``fractions`` equal fractions that gives this BED (Gy).

    Solves ``n·d² / (α/β) + n·d − BED = 0`` for the dose per fraction ``d ≥ 0``:
    ``d = 2c / (α/β + sqrt((α/β)² + 4c))`` with ``c = BED · (α/β) / n`` (the root
    ``[−α/β + sqrt((α/β)² + 4c)] / 2`` written without cancellation), and returns ``D = n · d``.
    """
    n = check_fractions(fractions)
    ab = np.asarray(check_alpha_beta(alpha_beta_gy))
    value = _dose(bed_gy, "BED")
    c = value * ab / n
    d = 2.0 * c / (ab + np.sqrt(ab * ab + 4.0 * c))
    return _out(n * d, bed_gy, alpha_beta_gy)


def physical_from_eqd2(eqd2_gy: ArrayLike, fractions: int, alpha_beta_gy: ArrayLike) -> DoseLike:
    """Total physical dose (Gy) in ``fractions`` equal fractions with this EQD2 (Gy).

    The inverse of :func:`eqd2`, e.g. to turn a cumulative EQD2 limit into the physical dose a
    course of ``n`` fractions may still give: solves ``n·d² + n·(α/β)·d − EQD2·(2 + α/β) = 0``,
    ``d = [−α/β + sqrt((α/β)² + 4·EQD2·(2 + α/β)/n)] / 2``, ``D = n · d``.
    """
    ab = np.asarray(check_alpha_beta(alpha_beta_gy))
    value = _dose(eqd2_gy, "EQD2")
    return physical_from_bed(_out(value * (1.0 + 2.0 / ab), eqd2_gy, alpha_beta_gy), fractions, ab)


def discount_recovered(prior_eqd2_gy: ArrayLike, recovery_factor: float) -> DoseLike:
    """Prior-course EQD2 (Gy) after recovery: ``(1 − r) · EQD2_prior``.

    ``r`` (0 ≤ r ≤ 1) is the fraction of the prior dose taken as recovered, for one organ and the
    interval since the prior course; ``r = 0`` (no recovery) is the conservative default. Any
    ``r > 0`` is a modelling choice that must come from a constraint file with its source (e.g.
    25 % after 6 months and 50 % after 12 months for the spinal cord, quoted by Doi et al.,
    Strahlenther Onkol 2021).
    """
    r = _fraction(recovery_factor, "recovery factor")
    value = _dose(prior_eqd2_gy, "prior EQD2")
    return _out(value * (1.0 - r), prior_eqd2_gy, 0.0)


def recovery_factor(interval_days: float, steps: Sequence[tuple[float, float]]) -> float:
    """The recovery factor for an interval (days) from a step rule ``[(min_days, factor), ...]``.

    The factor of the longest ``min_days`` that the interval reaches applies; below every step
    (or with no steps) the factor is 0. E.g. ``[(182, 0.25), (365, 0.5)]`` gives 0 at 100 days,
    0.25 at 200 days and 0.5 at 400 days.
    """
    if not np.isfinite(interval_days) or interval_days < 0:
        raise ValueError(f"interval must be a non-negative number of days, got {interval_days!r}")
    factor = 0.0
    reached = -np.inf
    for min_days, step_factor in steps:
        if not np.isfinite(min_days) or min_days < 0:
            raise ValueError(f"recovery step needs a non-negative interval, got {min_days!r}")
        r = _fraction(step_factor, "recovery factor")
        if interval_days >= min_days and min_days >= reached:
            factor, reached = r, min_days
    return factor


def high_dose_per_fraction_note(
    total_gy: float,
    fractions: int,
    *,
    label: str = "",
    threshold_gy: float = LQ_DOUBTFUL_ABOVE_GY,
) -> str | None:
    """A note when the course's dose per fraction (``total_gy / fractions``) exceeds
    ``threshold_gy`` (about 10 Gy), where the LQ model is doubtful; ``None`` otherwise.

    Pass the dose that matters for the number being converted: the prescription for a target,
    the maximum dose of an organ for that organ's conversion.
    """
    n = check_fractions(fractions)
    total = float(_dose(total_gy, "total dose"))
    per_fraction = total / n
    if not per_fraction > threshold_gy:
        return None
    who = f"{label}: " if label else ""
    return (
        f"{who}{per_fraction:.4g} Gy per fraction ({total:.4g} Gy in {n} fraction"
        f"{'s' if n != 1 else ''}) exceeds about {threshold_gy:g} Gy, where the linear-quadratic "
        "model is doubtful (it tends to overstate the effect of large single doses); BED and EQD2 "
        "are shown as the LQ model gives them"
    )


# --------------------------------------------------------------------------------------------


def _dose(value: ArrayLike, what: str) -> np.ndarray:
    """A float array of doses (Gy); NaN (unknown) is kept, negative or infinite values refused."""
    array = _floats(value, f"{what} must be a number of Gy")
    if array.size:
        if np.any(np.isinf(array)):
            raise ValueError(f"{what} must be finite (Gy), got an infinite value")
        low = np.nanmin(array) if not np.all(np.isnan(array)) else 0.0
        if low < 0:
            raise ValueError(f"{what} must not be negative, got {low:g} Gy")
    return array


def _floats(value: ArrayLike, refusal: str) -> np.ndarray:
    """``value`` as a float array; ``refusal`` (+ the value) is the message of the ValueError for
    anything not numeric (a bool included: ``True`` is no dose)."""
    if isinstance(value, bool):
        raise ValueError(f"{refusal}, got {value!r}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{refusal}, got {value!r}") from exc


def _fraction(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number between 0 and 1, got {value!r}")
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be between 0 and 1, got {value!r}")
    return float(value)


def _out(result: np.ndarray, *inputs: ArrayLike) -> DoseLike:
    """A float when every input was a scalar, else the array."""
    if all(np.ndim(i) == 0 for i in inputs):
        return float(result)
    return np.asarray(result, dtype=float)


def _show(value: ArrayLike) -> str:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return f"{float(array):g}"
    bad = array[~(np.isfinite(array) & (array > 0))]
    return f"{bad.size} invalid value(s), e.g. {float(bad.flat[0]):g}"
