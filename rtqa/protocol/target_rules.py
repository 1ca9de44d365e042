"""Target rules: the coverage of each target on its own plan's dose with its own prescription.

Doses Gy, volumes cc or % as the metric says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtqa.model import Finding, Note, Status
from rtqa.protocol.case_work import CaseWork
from rtqa.protocol.evaluation import EvaluationContext
from rtqa.protocol.judging import judge_limit, outside_cc
from rtqa.protocol.model import Protocol
from rtqa.protocol.organ_extent import incomplete_contours, unjudged_part
from rtqa.protocol.structure_dvhs import dvh_or_finding, keep_dvh, volume_integrity


def target_findings(
    protocol: Protocol,
    w: CaseWork,
    ctx: EvaluationContext,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    notes: list[Note],
    outside: list[tuple[str, bool, float, float]],
    integrity_checked: set[str],
) -> tuple[list[Finding], dict[str, Any]]:
    """Coverage findings of the targets ``w`` owns, judged on its own dose, and each target's
    occupancy by ROI name (for the plan-quality indices). Every target's DVH goes into ``ctx``
    and ``curves``, its notes into ``notes`` and its volume outside the grid into ``outside``."""
    from rtqa.dvh import structure_dvh

    findings: list[Finding] = []
    cid = w.case.case_id
    dose = w.case.dose
    assert dose is not None and w.site is not None
    plan_fx = w.case.plan.fractions_planned if w.case.plan else None
    target_occ: dict[str, Any] = {}
    for rule_id, m in w.targets:
        roi = m.roi
        assert roi is not None
        matched = m.how + m.convention  # a one-plane target's thickness is a convention
        if roi.name not in ctx.dvhs:
            sd = dvh_or_finding(structure_dvh, roi, dose, findings, cid, matched, "target")
            if sd is None:
                continue
            keep_dvh(ctx, curves, roi, sd, matched)
            outside.append((roi.name, True, outside_cc(sd.dvh), sd.volume_cc))
            notes.extend(sd.notes)
            ctx.target_cases[roi.name] = cid
            findings += volume_integrity(roi, sd, dose, cid, integrity_checked)
        sd = ctx.dvhs[roi.name]
        target_occ[roi.name] = sd.occupancy
        rx = w.rxs[roi.name]
        ctx.targets[roi.name] = rx.total_gy
        rule = next(t for t in protocol.targets if t.id == rule_id)
        if rule.sites and not set(rule.sites) & set(w.site.sites):
            continue
        how = f"{matched}; {rx.describe()}"
        incomplete = incomplete_contours(roi)  # coverage of a target not wholly defined: unknown
        for lim in rule.checks_for(plan_fx):
            if outside_cc(sd.dvh) > 0:
                findings.append(
                    Finding(
                        group="target",
                        rule=lim.metric.canonical,
                        status=Status.NOT_EVALUABLE,
                        message=f"{outside_cc(sd.dvh):.3g} cc of the target lies "
                        "outside the dose grid: coverage cannot be judged",
                        roi=roi.name,
                        match=how,
                        metric=lim.metric.canonical,
                        unit=lim.metric.unit,
                        limits=lim.conditions,
                        source=str(lim.source),
                        confidence=lim.confidence.value,
                        case_id=cid,
                    )
                )
                continue
            f = judge_limit(
                lim, sd.dvh, group="target", roi=roi.name, match=how, case_id=cid, rx_gy=rx.total_gy
            )
            findings.append(unjudged_part(f, lim, incomplete) if incomplete else f)
    return findings, target_occ


__all__ = ["target_findings"]
