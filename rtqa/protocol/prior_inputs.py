"""What the prior-radiation rules work on: the course's input, each prior course carried onto
the current grid, and the conventions the rule modules share (:mod:`rtqa.protocol.prior_rules`,
:mod:`rtqa.protocol.prior_organs`, :mod:`rtqa.protocol.prior_targets`,
:mod:`rtqa.protocol.prior_policy`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtqa.model import Case, Course, DoseGrid, Note, Roi
from rtqa.protocol.model import Confidence, SourcedValue

#: The (plus, minus) ROIs of a derived organ: its ROI with ``plus`` added and ``minus`` removed.
OrganParts = tuple[tuple[Roi, ...], tuple[Roi, ...]]
#: The group of every prior-radiation finding.
GROUP = "prior"
#: Prior-grid gaps smaller than this (cc) are rounding, not an uncovered part of a structure.
UNKNOWN_TOLERANCE_CC = 1e-3
#: Relative tolerance on an isodose level (a plateau stored at exactly the prescription reads a
#: hair below it after DoseGridScaling quantisation and interpolation).
ISODOSE_RTOL = 1e-4
#: An organ is "dosed by a course" for the ESTRO–EORTC classification above this EQD2 (Gy).
DOSED_EQD2_GY = 1.0


@dataclass
class PriorInput:
    """What the prior-radiation rules need of a course (see :mod:`rtqa.protocol.prior_rules`)."""

    course: Course  # course.cases current, course.priors prior cases (+ --prior dirs)
    dose: DoseGrid  # the course's evaluated physical dose (Gy), current frame
    fractions: int | None  # current course fraction count; None: unknown (see below)
    organs: dict[str, Roi]  # protocol organ name -> matched current Roi
    targets: dict[str, tuple[Roi, float | None]]  # target ROI name -> (Roi, Rx Gy)
    body: Roi | None
    prior_fractions: int | None = None
    assume_aligned: bool = False
    export_cumulative: str | None = None
    alpha_beta: float | None = None
    fractions_unknown: str = ""  # why the current fraction count is unknown (no EQD2 then)
    # protocol organ name -> (plus, minus) ROIs of a derived organ (union with plus, minus the
    # union of minus), as the organ rules judge it; organs not listed are their ROI alone
    organ_parts: dict[str, OrganParts] = field(default_factory=dict)
    # protocol organ name -> why another plan of the course contours it beyond the judged ROI
    # (its figures then leave that part out; see rtqa.protocol.organ_extent)
    organ_further: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class MappedPrior:
    """One prior course carried onto the current grid.

    ``matrix``: prior frame -> current frame (4x4, mm; ``None`` = identity, same frame or
    assumed aligned); ``dose_gy``/``outside``: the prior physical dose on the current dose grid
    (NaN where ``outside``); ``rx_gy``: its prescription (Gy) where known, the highest of
    several; ``rx_levels_gy``: its distinct prescription levels (Gy), ascending (see
    :func:`rtqa.protocol.prescription.prescription_levels`).
    """

    case: Case
    label: str
    fractions: int
    grid: DoseGrid
    matrix: np.ndarray | None
    assumed_aligned: bool
    dose_gy: np.ndarray
    outside: np.ndarray
    rx_gy: float | None
    interval_days: float | None
    mapping_note: Note
    rx_levels_gy: tuple[float, ...] = ()


def provenance(sv: SourcedValue | None) -> dict:
    """A limit's source and confidence as Finding keyword arguments (none without one)."""
    if sv is None:
        return {}
    conf = sv.confidence.value if isinstance(sv.confidence, Confidence) else None
    return {"source": str(sv.source) if sv.source is not None else None, "confidence": conf}
