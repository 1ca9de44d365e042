"""What a course evaluation works with and returns: its settings, its context and its result.

Doses Gy, volumes cc.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtqa.model import Course, DoseGrid, Finding, Note, Roi
from rtqa.protocol.model import Protocol


@dataclass
class EvaluationContext:
    """What the evaluation worked on, for renderers that draw it (HTML).

    ``dose``: the course dose organs were judged on (physical Gy; for plans of different
    fraction counts the physical sum, the EQD2 grids being per organ); ``doses``: each plan's
    own dose by case id; ``rois``/``occupancies``/``dvhs`` keyed by ROI name; ``targets``: target
    ROI name -> Rx (Gy, ``None`` when unknown); ``organs``: protocol organ name -> matched ROI;
    ``organ_parts``: for a derived organ, its (plus, minus) ROIs as judged (the union with
    ``plus`` minus ``minus``); ``organ_further``: protocol organ name -> why another plan's
    contour of it reaches beyond the judged one
    (:func:`~rtqa.protocol.organ_extent.contoured_further`); ``body``: the body ROI name;
    ``prior``: set by the prior-radiation rules.
    """

    course: Course
    protocol: Protocol
    dose: DoseGrid | None = None
    doses: dict[str, DoseGrid] = field(default_factory=dict)
    rois: dict[str, Roi] = field(default_factory=dict)
    occupancies: dict[str, Any] = field(default_factory=dict)
    dvhs: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float | None] = field(default_factory=dict)
    target_cases: dict[str, str] = field(default_factory=dict)
    organs: dict[str, Roi] = field(default_factory=dict)
    organ_parts: dict[str, tuple[tuple[Roi, ...], tuple[Roi, ...]]] = field(default_factory=dict)
    organ_further: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    matches: dict[str, str] = field(default_factory=dict)
    prior: object | None = None


@dataclass
class Evaluation:
    """Findings, DVH curves (ROI -> (dose Gy, volume %)), notes and the context of a course."""

    findings: list[Finding]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    notes: list[Note]
    context: EvaluationContext
    fractions: int | None = None
    sites: tuple[str, ...] = ()
    fractions_unknown: str = ""  # why the course has no single fraction count ('' if it has)


@dataclass
class Settings:
    """The options an evaluation uses: site, target Rx (Gy), structure mapping, alpha/beta (Gy)."""

    site: str | None = None
    rx: Mapping[str, float] = field(default_factory=dict)
    mapping: Mapping[str, Any] = field(default_factory=dict)
    alpha_beta: float | None = None


def settings_from(options: Any) -> Settings:
    """The evaluation settings of a ``CheckOptions`` (or any object with those attributes)."""
    return Settings(
        getattr(options, "site", None),
        dict(getattr(options, "rx", {}) or {}),
        dict(getattr(options, "mapping", {}) or {}),
        getattr(options, "alpha_beta", None),
    )


__all__ = ["Evaluation", "EvaluationContext", "Settings", "settings_from"]
