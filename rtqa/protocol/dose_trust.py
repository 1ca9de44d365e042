"""Can the dose be trusted? Its level against the prescription, and what follows when it cannot.

A dose that is wrongly scaled (DoseGridScaling or DoseUnits wrong, cGy stored as Gy), a dose of
one fraction or one beam exported in place of the plan's, or a dose grid misplaced relative to
the structures (:mod:`rtqa.protocol.dose_sanity`) gives DVH numbers that look like numbers and
judge nothing. Conventions:

* ``dose_level`` (integrity): the largest value of a plan's dose grid (Gy) in % of the plan's
  highest target prescription, judged by the rule of :mod:`rtqa.dose_level` (plausible from
  90 to 300 %); outside it the finding is ``not_evaluable`` and names the likely cause.
* ``dose_on_target`` (integrity): the highest median dose of a plan's prescribed targets in %
  of each one's prescription; below 50 % the dose lies on none of them (a misplacement that
  keeps the high dose inside the body) and the finding is ``not_evaluable``.
* When a plan's ``dose_level``, ``dose_placement`` or ``dose_on_target`` is ``not_evaluable``,
  every judgement
  drawn from the dose (groups ``target``, ``organ``, ``quality`` and ``prior``; with a misplaced
  dose also ``grid_coverage``, whether the grid covers the structures; not the interval since a
  prior course) is withheld: ``pass``, ``minor`` and ``major`` become ``not_evaluable``, the
  measured value kept and the reason put first in the message. A misread dose must not read as
  a verdict, either way. Target and plan-quality findings are judged on their own plan's dose:
  another plan's untrusted dose leaves them standing (organs and prior radiation, judged on the
  course dose, are withheld whichever plan's dose is untrusted).
* ``dose_agreement`` (integrity): rtqa's mean doses against the planning system's own DVHs
  of the dose (:mod:`rtqa.protocol.dose_agreement`); ``not_evaluable`` withholds the same.
* A dose in another frame of reference than its structures that could not be moved into it
  (``dose_frame``) is withheld as a misplaced dose; parts of a case naming different patients
  (``patient_identity``) withhold the plan's own rules too (fractions, schedule, delivery), as
  the records may be another patient's (:mod:`rtqa.protocol.case_integrity`). A dose written by
  a converter for a patient not known to lie head first supine (``dose_source``) is withheld
  as a misplaced dose.
* A prior course's dose judged by the same rules (``prior_dose_level``,
  ``prior_dose_placement``) withholds the judgements of group ``prior`` alone.
* A registration in doubt (``registration_direction``: the prior body outline mapped into the
  current frame fits the current one poorly, or better with the inverse matrix) withholds the
  judgements of group ``prior`` that place a prior dose in the current frame; the current
  course's own EQD2 limits (``course_eqd2``) stand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rtqa.dose_level import HIGH_PCT, LOW_PCT, is_plausible, level_text
from rtqa.model import DoseGrid, Finding, Status

SOURCE = (
    f"rtqa convention: the dose maximum lies between {LOW_PCT:g} and {HIGH_PCT:g} % of the "
    "highest prescription"
)
#: Groups whose judgements are drawn from the dose.
DOSE_GROUPS = ("target", "organ", "quality", "prior")
#: Rules whose ``not_evaluable`` status means the dose itself cannot be trusted, each with the
#: groups whose judgements it withholds.
TRUST_RULES = {
    "dose_level": DOSE_GROUPS,
    "dose_placement": DOSE_GROUPS,
    "dose_on_target": DOSE_GROUPS,
    "dose_agreement": DOSE_GROUPS,
    "dose_frame": DOSE_GROUPS,
    "dose_type": DOSE_GROUPS,
    "dose_source": DOSE_GROUPS,
    "patient_identity": (*DOSE_GROUPS, "plan"),
    "prior_dose_level": ("prior",),
    "prior_dose_placement": ("prior",),
    "prior_dose_type": ("prior",),
    "prior_dose_source": ("prior",),
    "registration_direction": ("prior",),
}
#: Rules of group ``prior`` drawn from the current course's dose alone: a registration in doubt
#: leaves them standing.
NOT_FROM_REGISTRATION = ("course_eqd2",)
#: Trust rules about one plan's own dose (its targets and plan quality withheld, not those of
#: the course's other plans).
PLAN_DOSE_RULES = (
    "dose_level",
    "dose_placement",
    "dose_on_target",
    "dose_agreement",
    "dose_frame",
    "dose_type",
    "dose_source",
    "patient_identity",
)
#: Trust rules whose ``not_evaluable`` may mean a misplaced dose grid (``grid_coverage`` withheld).
MISPLACING_RULES = (
    "dose_placement",
    "dose_on_target",
    "dose_frame",
    "dose_agreement",
    "dose_source",
)
#: Groups judged on each plan's own dose (the others on the course dose).
PLAN_GROUPS = ("target", "quality")
#: Rules of those groups not drawn from the dose (the interval since the prior course).
NOT_FROM_DOSE = ("min_interval",)
_JUDGED = (Status.PASS, Status.MINOR, Status.MAJOR)


def dose_level_finding(
    dose: DoseGrid,
    rx_gy: float | None,
    fractions: int | None,
    case_id: str | None,
    subject: str = "this plan",
) -> Finding | None:
    """The integrity finding ``dose_level`` of one plan's dose against its highest
    prescription ``rx_gy`` (Gy, total); None when the prescription is unknown. ``subject``
    names whose DVH numbers cannot be trusted in the message."""
    if not rx_gy or rx_gy <= 0:
        return None
    peak = dose.max_gy
    pct = 100.0 * peak / rx_gy
    plausible = is_plausible(peak, rx_gy)
    message = level_text(peak, rx_gy, fractions)
    if not plausible:
        message += (
            f"; the DVH numbers of {subject} cannot be trusted until the dose is the plan's total "
            "dose in Gy"
        )
    return Finding(
        group="integrity",
        rule="dose_level",
        status=Status.PASS if plausible else Status.NOT_EVALUABLE,
        message=message,
        metric="Max[%Rx]",
        value=pct,
        unit="%",
        limits={"limit": f"{LOW_PCT:g}-{HIGH_PCT:g} %"},
        margin=min(pct - LOW_PCT, HIGH_PCT - pct),
        source=SOURCE,
        case_id=case_id,
    )


#: A prescribed target's median dose below this % of its prescription: the dose does not lie
#: on the target (rtqa convention; a planned target receives about its prescription).
TARGET_MEDIAN_MIN_PCT = 50.0
TARGET_SOURCE = (
    f"rtqa convention: each prescribed target's median dose is at least "
    f"{TARGET_MEDIAN_MIN_PCT:g} % of its prescription"
)


def target_dose_finding(
    targets: Sequence[tuple[str, Any, float | None]], case_id: str | None
) -> Finding | None:
    """The integrity finding ``dose_on_target`` of one plan's dose: the highest median dose
    (D50%, Gy) of its prescribed targets ``(name, Dvh, prescription Gy)`` in % of each one's
    prescription; ``not_evaluable`` below :data:`TARGET_MEDIAN_MIN_PCT`, where the dose lies on
    none of the targets it was planned for (rows and columns transposed, an axis flipped, a grid
    offset or another plan's dose, inside the body, where ``dose_placement`` cannot see it).
    One target dosed and another not is a coverage deviation, not a misplaced dose. None
    without a target whose median and prescription are known."""
    from rtqa.dvh.core import MetricUndefined

    rows = []
    for name, dvh, rx in targets:
        if not rx or rx <= 0:
            continue
        try:
            median = float(dvh.dose_at_volume_pct(50.0))
        except (MetricUndefined, ValueError):  # most of the target outside the grid
            continue
        rows.append((100.0 * median / rx, name, median, rx))
    if not rows:
        return None
    pct, name, median, rx = max(rows)
    ok = pct >= TARGET_MEDIAN_MIN_PCT
    message = f"median dose of '{name}' {median:.4g} Gy = {pct:.3g} % of its {rx:g} Gy"
    if not ok:
        message += (
            ": the dose lies on none of the targets it was planned for (rows and columns "
            "transposed, an axis flipped, a grid offset, another plan's dose?); the DVH numbers "
            "of this plan cannot be trusted"
        )
    return Finding(
        group="integrity",
        rule="dose_on_target",
        status=Status.PASS if ok else Status.NOT_EVALUABLE,
        message=message,
        roi=name,
        metric="Median[%Rx]",
        value=pct,
        unit="%",
        limits={"limit": f">= {TARGET_MEDIAN_MIN_PCT:g} %"},
        margin=pct - TARGET_MEDIAN_MIN_PCT,
        source=TARGET_SOURCE,
        case_id=case_id,
    )


def withhold_untrusted(findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` with every judgement drawn from an untrusted dose made ``not_evaluable``
    (see the module docstring); the others unchanged, in order."""
    untrusted = [f for f in findings if f.rule in TRUST_RULES and f.status is Status.NOT_EVALUABLE]
    if not untrusted:
        return list(findings)
    groups = {g for f in untrusted for g in TRUST_RULES[f.rule]}
    misplaced = any(f.rule in MISPLACING_RULES for f in untrusted)
    foreign = any(f.rule == "patient_identity" for f in untrusted)  # no dates to trust either
    mapping_only = all(f.rule == "registration_direction" for f in untrusted)
    # a plan's own dose: its targets and plan quality; the course dose (organs, prior): all
    plans = {f.case_id for f in untrusted if f.rule in PLAN_DOSE_RULES}
    why = "; ".join(f"{f.rule}" + (f" of {f.case_id}" if f.case_id else "") for f in untrusted)
    what = "the prior dose's placement is in doubt" if mapping_only else "the dose is not trusted"
    head = f"not judged: {what} ({why} not evaluable)"
    out = []
    for f in findings:
        from_dose = f.group in groups or (f.rule == "grid_coverage" and misplaced)
        kept = f.rule in TRUST_RULES or (f.rule in NOT_FROM_DOSE and not foreign)
        kept = kept or (mapping_only and f.rule in NOT_FROM_REGISTRATION)
        if f.group in PLAN_GROUPS and f.case_id is not None and None not in plans:
            kept = kept or f.case_id not in plans
        if from_dose and f.status in _JUDGED and not kept:
            message = f"{head}; measured as {f.status.value}" + (
                f": {f.message}" if f.message else ""
            )
            # a value measured on that dose says nothing of the figure
            unknown = None if f.value is None else (None, None)
            f = dataclasses.replace(
                f, status=Status.NOT_EVALUABLE, message=message, value_range=unknown
            )
        out.append(f)
    return out
