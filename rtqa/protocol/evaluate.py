"""Evaluate one course against a protocol: match structures, compute DVHs, judge every rule.

Targets are judged on their own plan's dose with their own prescription (conformity and
gradient per target); organs on the course dose: the physical sum of the plans when their
fraction counts agree, else the sum of voxel-wise EQD2 at the organ's alpha/beta with each limit
converted to EQD2 at the course's reference fraction count (both said in the finding). Plan
grids are summed directly when they share frame and geometry, else resampled onto the first
plan's grid. Doses Gy, volumes cc; every value is kept unrounded.

This module runs the evaluation in order; the rules live in :mod:`~rtqa.protocol.plan_rules`,
:mod:`~rtqa.protocol.target_rules`, :mod:`~rtqa.protocol.quality_rules` and
:mod:`~rtqa.protocol.organ_rules`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtqa.model import Course, Finding, Note, Status, body_outline
from rtqa.protocol import plan_rules
from rtqa.protocol.case_integrity import integrity_findings
from rtqa.protocol.case_work import CaseWork, judged_roi_numbers, match_cases
from rtqa.protocol.delivery import delivery_findings
from rtqa.protocol.dose_agreement import agreement_findings
from rtqa.protocol.dose_trust import PLAN_DOSE_RULES, dose_level_finding, target_dose_finding
from rtqa.protocol.evaluation import Evaluation, EvaluationContext, settings_from
from rtqa.protocol.match_findings import no_target_finding
from rtqa.protocol.model import Protocol
from rtqa.protocol.organ_rules import organ_findings
from rtqa.protocol.quality_rules import quality_findings
from rtqa.protocol.schedule import schedule
from rtqa.protocol.target_rules import target_findings


def evaluate_course(course: Course, protocol: Protocol, options: Any = None) -> Evaluation:
    """Judge ``course`` against ``protocol``. ``options``: a ``CheckOptions`` (site, rx,
    mapping, alpha_beta and the prior settings)."""
    from rtqa.protocol.dose_sanity import placement_finding

    st = settings_from(options)
    findings: list[Finding] = []
    notes: list[Note] = []
    ctx = EvaluationContext(course, protocol)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    outside: list[tuple[str, bool, float, float]] = []
    integrity_checked: set[str] = set()

    usable: list[CaseWork] = []
    for case in course.cases:
        missing = [
            what
            for what, part in (
                ("RT Plan", case.plan),
                ("RT Structure Set", case.structure_set),
                ("RT Dose", case.dose),
            )
            if part is None
        ]
        if missing:
            findings.append(
                Finding(
                    group="plan",
                    rule="inputs",
                    status=Status.NOT_EVALUABLE,
                    message=f"case '{case.case_id}' has no {', no '.join(missing)}: "
                    "its plan cannot be judged",
                    case_id=case.case_id,
                    source="DICOM-RT input",
                )
            )
            if case.structure_set is None or case.dose is None:
                continue
        usable.append(CaseWork(case))

    # ---- matching, targets and prescriptions per plan
    match_cases(protocol, usable, st)

    # ---- fraction counts of the course
    counts = [w.case.plan.fractions_planned for w in usable if w.case.plan is not None]
    known_counts = [c for c in counts if c]
    ref_fractions = known_counts[0] if known_counts else None
    sites = tuple(dict.fromkeys(s for w in usable if w.site for s in w.site.sites))

    # ---- plan rules per plan
    fr = protocol.fractionation
    pc = protocol.plan_checks
    for w in usable:
        cid = w.case.case_id
        plan = w.case.plan
        dose = w.case.dose
        assert dose is not None and w.site is not None
        if plan is not None:
            findings += plan_rules.fraction_count(fr, plan, cid)
            findings += plan_rules.prescription(protocol, plan, list(w.rxs.values()), w.site, cid)
            findings += plan_rules.unjudged_prescriptions(
                plan,
                w.case.structure_set.rois,  # type: ignore[union-attr]
                list(w.rxs),
                judged_roi_numbers(usable, w),
                cid,
            )
            findings += plan_rules.excluded_sites(protocol, w.texts, w.site, cid)
        findings += plan_rules.grid_resolution(pc, dose, cid)
        findings += plan_rules.dose_summation(dose, cid)
        findings += plan_rules.heterogeneity(pc, dose, cid)
        findings += plan_rules.approval(plan, cid)
        findings += integrity_findings(w.case)
        ctx.doses[cid] = dose

    # ---- schedule rules over the whole course
    records = [r for c in course.cases for r in c.records]
    sched = schedule(records)
    planned = {
        c.plan.sop_instance_uid: c.plan.fractions_planned
        for c in course.cases
        if c.plan is not None and c.plan.fractions_planned
    }
    findings += plan_rules.completion_window(fr, sched, planned)
    findings += plan_rules.min_interval(fr, sched)
    for c in course.cases:
        if c.plan is not None:
            findings += delivery_findings(c.plan, c.records, c.case_id)
    all_targets = [name for w in usable for name in dict.fromkeys(n for n in w.rxs)]
    if usable:
        findings += plan_rules.target_count(fr, all_targets)

    # ---- targets: coverage on their own plan's dose, plan quality per target
    for w in usable:
        cid = w.case.case_id
        dose = w.case.dose
        assert dose is not None and w.site is not None
        plan_fx = w.case.plan.fractions_planned if w.case.plan else None
        found, target_occ = target_findings(
            protocol, w, ctx, curves, notes, outside, integrity_checked
        )
        findings += found
        findings += quality_findings(protocol, w, ctx, target_occ, cid)
        # does the dose lie in the patient? (the body occupancy of the quality indices reused)
        body = body_outline(w.case.structure_set.rois)  # type: ignore[union-attr]
        known = ctx.occupancies.get(body.name) if body and ctx.rois.get(body.name) is body else None
        findings.append(placement_finding(dose, body, cid, body_occupancy=known))
        rx_top = max((rx.total_gy for rx in w.rxs.values() if rx.total_gy), default=None)
        level = dose_level_finding(dose, rx_top, plan_fx, cid)
        if level is not None:
            findings.append(level)
        distrusted = any(
            f.rule in PLAN_DOSE_RULES and f.status is Status.NOT_EVALUABLE and f.case_id == cid
            for f in findings
        )
        if not distrusted:  # a wrong level, frame or placement explains itself
            on_target = target_dose_finding(
                [(n, ctx.dvhs[n].dvh, rx.total_gy) for n, rx in w.rxs.items() if n in ctx.dvhs],
                cid,
            )
            if on_target is not None:
                findings.append(on_target)

    if not any(w.targets for w in usable) and usable and protocol.targets:
        findings.append(no_target_finding(protocol))

    # ---- organs on the course dose
    if usable:
        findings += organ_findings(
            protocol,
            usable,
            ctx,
            curves,
            notes,
            outside,
            st,
            ref_fractions,
            sites,
            integrity_checked,
        )
        # rtqa's reading of each plan's dose beside the planning system's own DVHs of it
        for w in usable:
            assert w.case.dose is not None and w.case.structure_set is not None
            own = _own_dose_dvhs(ctx, w)
            findings += agreement_findings(
                w.case.dose, w.case.structure_set.rois, own, w.case.case_id
            )
    findings += plan_rules.grid_coverage(pc, outside)
    unknown = plan_rules.course_fractions_unknown([w.case.plan for w in usable])
    return Evaluation(findings, curves, notes, ctx, ref_fractions, sites, unknown)


def _own_dose_dvhs(ctx: EvaluationContext, w: CaseWork) -> dict[str, Any]:
    """The DVHs in ``ctx`` computed on ``w``'s own dose, by name: its targets, and the organs
    when the course dose is that dose (a course of one plan)."""
    own = {}
    for name, sd in ctx.dvhs.items():
        case = ctx.target_cases.get(name)
        if (case == w.case.case_id) if case is not None else ctx.dose is w.case.dose:
            own[name] = sd
    return own


__all__ = ["evaluate_course"]
