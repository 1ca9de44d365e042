"""Can the dose be trusted? Its level against the prescription, and what follows when it cannot.

A dose that is wrongly scaled (DoseGridScaling or DoseUnits wrong, cGy read as Gy), a dose of
one fraction or one beam exported in place of the plan's, or a dose grid misplaced relative to
the structures (:mod:`rtqa.protocol.dose_sanity`) gives DVH numbers that look like numbers and
judge nothing. Conventions:

* ``dose_level`` (integrity): the largest value of a plan's dose grid (Gy) in % of the plan's
  highest target prescription. It is plausible from :data:`LOW_PCT` to :data:`HIGH_PCT` %
  (rtqa convention: an SBRT plan is prescribed to an isodose of 50-100 % of its maximum, so its
  maximum is 100-200 % of Rx; a scaling check of 0.5-2 x Rx is common practice, widened here to
  2.5 x so that a prescription to the 40 % isodose still passes). Outside it the finding is
  ``not_evaluable`` and names the likely cause.
* When a plan's ``dose_level`` or ``dose_placement`` is ``not_evaluable``, every judgement
  drawn from the dose (groups ``target``, ``organ``, ``quality`` and ``prior``; with a misplaced
  dose also ``grid_coverage``, whether the grid covers the structures) is withheld: ``pass``,
  ``minor`` and ``major`` become ``not_evaluable``, the measured value kept and the reason put
  first in the message. A misread dose must not read as a verdict, either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rtqa.model import DoseGrid, Finding, Status

#: Plausible dose maximum, in % of the highest prescription (rtqa convention, see above).
LOW_PCT = 50.0
HIGH_PCT = 250.0
SOURCE = (
    f"rtqa convention: the dose maximum lies between {LOW_PCT:g} and {HIGH_PCT:g} % of the "
    "highest prescription"
)
#: Groups whose judgements are drawn from the dose.
DOSE_GROUPS = ("target", "organ", "quality", "prior")
#: Rules whose ``not_evaluable`` status means the dose itself cannot be trusted.
TRUST_RULES = ("dose_level", "dose_placement")
_JUDGED = (Status.PASS, Status.MINOR, Status.MAJOR)


def dose_level_finding(
    dose: DoseGrid, rx_gy: float | None, fractions: int | None, case_id: str | None
) -> Finding | None:
    """The integrity finding ``dose_level`` of one plan's dose against its highest
    prescription ``rx_gy`` (Gy, total); None when the prescription is unknown."""
    if not rx_gy or rx_gy <= 0:
        return None
    values = dose.dose_gy[np.isfinite(dose.dose_gy)]
    top = float(values.max()) if values.size else 0.0
    pct = 100.0 * top / rx_gy
    plausible = LOW_PCT <= pct <= HIGH_PCT
    message = f"dose maximum {top:.4g} Gy = {pct:.4g} % of the prescription {rx_gy:g} Gy"
    if not plausible:
        message += (
            f", outside {LOW_PCT:g}-{HIGH_PCT:g} %: {_likely_cause(pct, fractions)}; the DVH "
            "numbers of this plan cannot be trusted until the dose is the plan's total dose in Gy"
        )
    margin = min(pct - LOW_PCT, HIGH_PCT - pct)
    return Finding(
        group="integrity",
        rule="dose_level",
        status=Status.PASS if plausible else Status.NOT_EVALUABLE,
        message=message,
        metric="Max[%Rx]",
        value=pct,
        unit="%",
        limits={"limit": f"{LOW_PCT:g}-{HIGH_PCT:g} %"},
        margin=margin,
        source=SOURCE,
        case_id=case_id,
    )


def _likely_cause(pct: float, fractions: int | None) -> str:
    if pct > 0 and fractions and fractions > 1 and LOW_PCT <= pct * fractions <= HIGH_PCT:
        return f"likely the dose of one fraction (x {fractions} = {pct * fractions:.4g} %)"
    if LOW_PCT <= pct / 100.0 <= HIGH_PCT:
        return (
            f"likely a dose in cGy stored as Gy (/ 100 = {pct / 100.0:.4g} %; check DoseUnits "
            "and DoseGridScaling)"
        )
    if LOW_PCT <= pct * 100.0 <= HIGH_PCT:
        return (
            f"likely a dose in Gy read as cGy (x 100 = {pct * 100.0:.4g} %; check DoseUnits "
            "and DoseGridScaling)"
        )
    if pct == 0:
        return "the dose grid holds no dose"
    return (
        "possibly a wrong DoseGridScaling or DoseUnits, the dose of one beam, or the dose of "
        "another plan"
    )


def withhold_untrusted(findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` with every judgement drawn from an untrusted dose made ``not_evaluable``
    (see the module docstring); the others unchanged, in order."""
    untrusted = [f for f in findings if f.rule in TRUST_RULES and f.status is Status.NOT_EVALUABLE]
    if not untrusted:
        return list(findings)
    why = "; ".join(f"{f.rule}" + (f" of {f.case_id}" if f.case_id else "") for f in untrusted)
    head = f"not judged: the dose is not trusted ({why} not evaluable)"
    misplaced = any(f.rule == "dose_placement" for f in untrusted)
    out = []
    for f in findings:
        from_dose = f.group in DOSE_GROUPS or (f.rule == "grid_coverage" and misplaced)
        if from_dose and f.status in _JUDGED:
            message = f"{head}; measured as {f.status.value}" + (
                f": {f.message}" if f.message else ""
            )
            f = dataclasses.replace(f, status=Status.NOT_EVALUABLE, message=message)
        out.append(f)
    return out
