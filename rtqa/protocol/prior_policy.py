"""Whether the prior and current irradiated volumes overlap, what the protocol's re-irradiation
policy makes of it, and the ESTRO-EORTC re-irradiation type.

The irradiated volume of a course is where its dose reaches a % of its own prescription
(``prior_radiation.overlap_isodose_pct``; 50 % when the protocol sets none, an rtqa
convention: the consensus fixes no isodose). A course of several prescription levels (SIB
targets, lesions prescribed differently) irradiates the union of each level's volume: where its
dose reaches that % of its lowest level (the highest would leave out the volume around the
lower-dose targets). Volumes in cc on the current dose grid.
"""

from __future__ import annotations

import numpy as np

from rtqa.model import Finding, Status
from rtqa.prior import classify_reirradiation, irradiated_overlap_cc
from rtqa.protocol.prior_inputs import (
    DOSED_EQD2_GY,
    GROUP,
    ISODOSE_RTOL,
    UNKNOWN_TOLERANCE_CC,
    MappedPrior,
    PriorInput,
    provenance,
)

#: Irradiated volumes are bounded by this % of each course's prescription, unless the protocol
#: sets ``prior_radiation.overlap_isodose_pct`` (an rtqa convention; the consensus fixes none).
IRRADIATED_ISODOSE_PCT = 50.0


def overlap_pct(pr) -> float:
    """The isodose (% of each course's prescription) bounding the irradiated volumes."""
    sv = pr.overlap_isodose_pct if pr is not None else None
    return float(sv.value) if sv is not None else IRRADIATED_ISODOSE_PCT


def irradiated_overlap(inp: PriorInput, priors: list[MappedPrior], pct: float):
    """(overlap cc, mask on the current grid, description) of the irradiated volumes: where the
    prior dose reaches ``pct`` % of the prior prescription and the current dose ``pct`` % of
    the current one."""
    levels_now = sorted({rx for _, rx in inp.targets.values() if rx})
    rx_now = levels_now[0] if levels_now else None
    mask = np.zeros(inp.dose.dose_gy.shape, dtype=bool)
    if not rx_now:
        return None, mask, "current prescription unknown: irradiated overlap not measured"
    total = 0.0
    parts = []
    for p in priors:
        rx_prior = p.rx_levels_gy[0] if p.rx_levels_gy else None
        if not rx_prior:
            parts.append(f"'{p.label}': prior prescription unknown")
            continue
        level_prior, level_now = pct / 100.0 * rx_prior, pct / 100.0 * rx_now
        # a plateau stored at exactly the level reads a hair below it (ISODOSE_RTOL)
        at_prior, at_now = (level * (1.0 - ISODOSE_RTOL) for level in (level_prior, level_now))
        cc, unknown = irradiated_overlap_cc(p.dose_gy, at_prior, inp.dose.dose_gy, at_now, inp.dose)
        with np.errstate(invalid="ignore"):
            mask |= (p.dose_gy >= at_prior) & (inp.dose.dose_gy >= at_now)
        total += cc
        text = (
            f"'{p.label}' {level_prior:g} Gy ({pct:g} % of {_level(rx_prior, p.rx_levels_gy)}) "
            f"with the current {level_now:g} Gy ({pct:g} % of {_level(rx_now, levels_now)}): "
            f"{cc:.3g} cc"
        )
        if unknown > UNKNOWN_TOLERANCE_CC:
            text += f" ({unknown:.3g} cc of the current irradiated volume has no prior dose)"
        parts.append(text)
    if len(parts) and all("unknown" in t and "Gy" not in t for t in parts):
        return None, mask, "; ".join(parts)
    return total, mask, "irradiated volumes (isodoses) overlap: " + "; ".join(parts)


def _level(rx: float, levels) -> str:
    """``'30 Gy'``, or ``'30 Gy, the lowest of 30, 40 Gy'`` for a course of several levels."""
    if len(levels) < 2:
        return f"{rx:g} Gy"
    return f"{rx:g} Gy, the lowest of {', '.join(f'{v:g}' for v in levels)} Gy"


def policy_findings(
    pr, overlap_cc: float | None, overlap_text: str, protocol_id: str
) -> list[Finding]:
    """The ``prior_policy`` finding: ``cumulative`` leaves the judgement to the cumulative EQD2
    limits (information here); an overlap is a major deviation under ``exclude`` and a minor one
    under ``review``; a protocol without a policy: :func:`_no_policy_finding`."""
    if pr is None:
        return [_no_policy_finding(overlap_cc, overlap_text, protocol_id)]
    policy = str(pr.policy.value)
    prov = provenance(pr.policy)
    if policy == "cumulative":
        return [
            Finding(
                GROUP,
                "prior_policy",
                Status.INFO,
                "policy 'cumulative': prior radiation judged by the cumulative EQD2 "
                f"limits; {overlap_text}",
                **prov,
            )
        ]
    if overlap_cc is None:
        return [
            Finding(
                GROUP,
                "prior_policy",
                Status.NOT_EVALUABLE,
                f"policy '{policy}': overlap not measured ({overlap_text})",
                **prov,
            )
        ]
    overlaps = overlap_cc > 0
    if policy == "exclude":
        status = Status.MAJOR if overlaps else Status.PASS
        what = (
            "prior radiation overlaps the current irradiated volume: excluded by the protocol"
            if overlaps
            else "no overlap with prior radiation"
        )
    else:  # review
        status = Status.MINOR if overlaps else Status.PASS
        what = (
            "prior radiation overlaps the current irradiated volume: documented review required"
            if overlaps
            else "no overlap with prior radiation"
        )
    return [
        Finding(
            GROUP,
            "prior_policy",
            status,
            f"policy '{policy}': {what}; {overlap_text}",
            metric="overlap",
            value=overlap_cc,
            unit="cc",
            **prov,
        )
    ]


def _no_policy_finding(overlap_cc: float | None, overlap_text: str, protocol_id: str) -> Finding:
    """A protocol without a ``prior_radiation`` section says nothing on re-irradiation: where
    the irradiated volumes overlap (or the overlap is unknown) the course cannot be judged
    per protocol, so the finding is ``not_evaluable``, never a silent pass."""
    how = f"protocol {protocol_id} sets no prior-radiation policy (no prior_radiation section)"
    if overlap_cc is not None and overlap_cc <= 0:
        return Finding(
            GROUP,
            "prior_policy",
            Status.INFO,
            f"{how}; the irradiated volumes do not overlap; {overlap_text}",
            metric="overlap",
            value=overlap_cc,
            unit="cc",
        )
    what = "overlap not measured" if overlap_cc is None else "re-irradiation"
    return Finding(
        GROUP,
        "prior_policy",
        Status.NOT_EVALUABLE,
        f"{how}: {what} not judged; use a protocol that sets one (e.g. --protocol boss) or "
        f"add a prior_radiation section; {overlap_text}",
        metric="overlap",
        value=overlap_cc,
        unit="cc" if overlap_cc is not None else "",
    )


def classification(overlap_cc, concern, repeat, overlap_text) -> Finding:
    """The ``reirradiation_type`` finding: the ESTRO-EORTC type from the irradiated overlap (cc)
    and the organs dosed by both courses (``concern``, ``repeat``)."""
    if overlap_cc is None:
        return Finding(
            GROUP,
            "reirradiation_type",
            Status.INFO,
            f"re-irradiation type not determined ({overlap_text})",
        )
    c = classify_reirradiation(overlap_cc, concern, repeat)
    return Finding(
        GROUP,
        "reirradiation_type",
        Status.INFO,
        f"{c.kind.value} (ESTRO-EORTC, Andratschke et al. Lancet Oncol 2022): {c.reason}; "
        f"{overlap_text}; organs count as dosed by a course above {DOSED_EQD2_GY:g} Gy EQD2",
        metric="ESTRO-EORTC type",
        source="Andratschke et al., Lancet Oncol 2022 (ESTRO-EORTC re-irradiation consensus)",
    )
