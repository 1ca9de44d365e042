"""The prescription dose of each target, and where it was read.

Sources in order of precedence:

1. the plan's dose references that point to the ROI (``ReferencedROINumber``; the reader turns
   them into :class:`~rtqa.model.Prescription` items with ``roi_number``) when they state one
   total; several totals (a boost's part and the whole, SIB levels on one ROI) are ambiguous,
   never resolved by taking one of them, and so is a dose reference that only some of the
   plan's fraction groups list (one group's share of a plan dose summing all): the name suffix
   or ``--rx`` decides, else the prescription is unknown;
2. a TG-263 dose suffix in the target's name: ``PTV_30Gy``, ``PTV_50.4Gy``, ``PTV_3000cGy`` or
   a bare number of at least 100 read as cGy (``PTV_3000`` = 30 Gy; smaller bare numbers such
   as ``PTV_1`` number lesions and are never read as a dose);
3. ``--rx ROI=GY`` from the command line.

A plan with a single prescription that names no ROI gives it to its single target. Doses are
total Gy over the course.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rtqa.model import Plan, Prescription, Roi
from rtqa.protocol.matching import copy_base, shared_name

#: Bare numbers below this are lesion indices (``PTV_1``), not doses in cGy.
MIN_BARE_CGY = 100.0

_SUFFIX = re.compile(r"(?:^|[_\-\s])(\d+(?:[.,]\d+)?)\s*(cgy|gy)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TargetRx:
    """A target's prescription: total Gy, fraction count where known, and its source."""

    roi_name: str
    total_gy: float | None
    fractions: int | None
    source: str  # "dose reference", "ROI name", "--rx", "ambiguous", "none"
    detail: str = ""

    @property
    def known(self) -> bool:
        return self.total_gy is not None

    def describe(self) -> str:
        if self.total_gy is None and self.source == "ambiguous":
            return f"the prescription of '{self.roi_name}' is ambiguous ({self.detail})"
        if self.total_gy is None:
            return f"no prescription found for '{self.roi_name}' ({self.detail})"
        fx = f" in {self.fractions} fractions" if self.fractions else ""
        return f"Rx {self.total_gy:g} Gy{fx} from {self.source}" + (
            f" ({self.detail})" if self.detail else ""
        )


def dose_from_name(name: str) -> float | None:
    """The dose (Gy) a TG-263 suffix in ``name`` states, or ``None``.

    ``PTV_30Gy`` -> 30, ``PTV_50.4Gy`` -> 50.4, ``PTV_3000cGy`` -> 30, ``PTV_3000`` -> 30;
    ``PTV_1`` and ``PTV`` -> None. A re-import copy number is not the dose:
    ``PTV_30Gy (1)`` -> 30.
    """
    m = _SUFFIX.search((copy_base(name) or name).strip())
    if not m:
        return None
    number = float(m.group(1).replace(",", "."))
    unit = (m.group(2) or "").lower()
    if unit == "gy":
        return number if number > 0 else None
    if unit == "cgy":
        return number / 100.0 if number > 0 else None
    if number < MIN_BARE_CGY:
        return None
    return number / 100.0


def parse_rx_args(items: Sequence[str]) -> dict[str, float]:
    """``["PTV_T8=27", ...]`` -> ``{"PTV_T8": 27.0}`` (ValueError with the item if malformed)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        name = name.strip()
        try:
            gy = float(value)
        except ValueError:
            gy = float("nan")
        if not sep or not name or not gy > 0 or gy != gy or gy == float("inf"):
            raise ValueError(f"--rx {item!r}: expected ROI=GY with a positive dose in Gy")
        out[name] = gy
    return out


def group_share(p: Prescription, plan: Plan) -> str:
    """Why ``p`` is one fraction group's share of the plan dose ('' when it is not): its dose
    reference is listed by some of the plan's fraction groups, not all (a sequential boost)."""
    groups = plan.fraction_groups
    if len(groups) < 2 or p.dose_reference_number is None:
        return ""
    n = p.dose_reference_number
    listing = [g.number for g in groups if g.lists_dose_reference(n)]
    if not listing or len(listing) == len(groups):
        return ""
    which = ", ".join(map(str, listing))
    return (
        f"dose reference {n} ({p.total_gy:g} Gy) is listed by fraction group {which} only, of "
        f"the plan's {len(groups)} groups whose doses the plan dose sums: it prescribes a share"
    )


def shares(prescriptions: Sequence[Prescription], plan: Plan) -> str:
    """The first :func:`group_share` reason among ``prescriptions`` ('' when none is one)."""
    return next((why for why in (group_share(p, plan) for p in prescriptions) if why), "")


def plan_prescription(plan: Plan) -> tuple[float | None, str]:
    """The prescription (Gy) of the plan's whole dose: its one total; ``None`` and why where it
    states several (SIB levels, a boost) or its one total is a fraction group's share
    (:func:`group_share`); ``(None, '')`` where it states none. Never the first or the highest."""
    given = plan.prescriptions
    totals = sorted({round(p.total_gy, 6) for p in given}, reverse=True)
    if not totals:
        return None, ""
    if len(totals) > 1:
        return None, f"the plan prescribes several doses ({', '.join(f'{t:g}' for t in totals)} Gy)"
    share = shares(given, plan)
    return (None, share) if share else (given[0].total_gy, "")


def prescription_levels(plan: Plan | None) -> tuple[float, ...]:
    """A plan's distinct prescription totals (Gy), ascending: the levels whose isodoses bound
    its irradiated volumes. A fraction group's share of the plan dose
    (:func:`~rtqa.protocol.prescription.group_share`) is no level of it; where every total is
    a share, the plan's highest stands alone (a sequential course's first phase)."""
    if plan is None:
        return ()
    given = [p for p in plan.prescriptions if p.total_gy and p.total_gy > 0]
    whole = [p for p in given if not group_share(p, plan)]
    if not whole:
        return (max(p.total_gy for p in given),) if given else ()
    return tuple(sorted({p.total_gy for p in whole}))


def target_prescription(
    roi: Roi,
    plan: Plan | None,
    rx_args: Mapping[str, float] | None = None,
    *,
    single_target: bool = False,
    copies: Sequence[int] = (),
) -> TargetRx:
    """The prescription of ``roi`` from ``plan`` (sources in the module docstring).

    ``single_target``: the ROI is the plan's only target, so a prescription naming no ROI is
    taken as its own. ``copies``: numbers of ROIs with the same contours (re-import copies,
    :func:`rtqa.protocol.matching.match_type`), whose dose references count as its own.
    """
    fractions = plan.fractions_planned if plan is not None else None
    ambiguous = ""
    if plan is not None:
        numbers = {roi.number, *copies}
        own = [p for p in plan.prescriptions if p.roi_number in numbers]
        totals = sorted({round(p.total_gy, 6) for p in own})
        partial = shares(own, plan)
        if len(totals) == 1 and not partial:
            p = own[0]
            return TargetRx(
                roi.name,
                p.total_gy,
                p.fractions or fractions,
                "dose reference",
                f"{p.source} points to ROI {p.roi_number}"
                + ("" if p.roi_number == roi.number else ", its re-import copy"),
            )
        if len(totals) > 1:
            shown = ", ".join(f"{t:g} Gy" for t in sorted(totals, reverse=True))
            which = ", ".join(str(n) for n in sorted(numbers & {p.roi_number for p in own}))
            ambiguous = f"several dose references point to ROI {which} ({shown})"
        elif partial:
            ambiguous = partial
    # an ROI sharing its name with another is shown as 'name #number'; its own name counts
    own_name = shared_name(roi.name)
    why = f"{ambiguous}; " if ambiguous else ""
    named = dose_from_name(own_name)
    if named is not None:
        return TargetRx(
            roi.name, named, fractions, "ROI name", f"{why}TG-263 dose suffix in '{own_name}'"
        )
    for key in dict.fromkeys((roi.name, own_name)):
        if rx_args and key in rx_args:
            return TargetRx(roi.name, rx_args[key], fractions, "--rx", f"{why}--rx {key}=...")
    if ambiguous:  # never a guess between the plan's own totals (a boost's part is not the whole)
        return TargetRx(
            roi.name,
            None,
            fractions,
            "ambiguous",
            f"{ambiguous}; give --rx {roi.name}=GY, the plan's total to it",
        )
    if plan is not None and single_target:
        loose = [p for p in plan.prescriptions if p.roi_number is None]
        if len({round(p.total_gy, 6) for p in loose}) == 1:
            p = loose[0]
            return TargetRx(
                roi.name,
                p.total_gy,
                p.fractions or fractions,
                "plan prescription",
                f"{p.source} names no ROI; '{roi.name}' is the plan's only target",
            )
    return TargetRx(
        roi.name,
        None,
        fractions,
        "none",
        f"no dose reference points to it, its name carries no dose; give --rx {roi.name}=GY",
    )
