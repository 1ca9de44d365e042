"""Organ rules: the protocol's organ limits judged on the course dose.

The course dose is the physical sum of the plans when their fraction counts agree, judged against
the organ's table for that count. Plans of different counts are summed as voxel-wise EQD2 at the
organ's alpha/beta and judged against the tables of every count present, each limit converted to
EQD2 at its own count, the strictest per metric (:mod:`rtqa.protocol.fraction_tables`; said in
the finding, whatever the order of the plans). An organ with limits in the protocol but no table
for a count of the course is ``not_evaluable``. Doses Gy, volumes cc.

In a course with prior courses, every organ with ``prior_radiation`` limits is matched and its
judged structure handed to the prior-radiation rules (``ctx.organs``, ``ctx.organ_parts``),
whether or not it has limits of its own, with any other plan's contour of it reaching beyond
the judged one and why its contours do not define all of it (``ctx.organ_further``); where it
cannot be (not contoured, ambiguous, no usable contour, contoured only in another frame), a
``prior`` finding says which of its limits go unjudged and why
(:func:`rtqa.protocol.prior_organs.unjudged_organ_findings`). An organ with no limit at all is
named for matching only and skipped.
"""

from __future__ import annotations

import numpy as np

from rtqa.model import Finding, Note, Status
from rtqa.protocol.case_work import CaseWork
from rtqa.protocol.course_dose import eqd2_dvh, plan_doses_on_first, summed_grid
from rtqa.protocol.evaluation import EvaluationContext, Settings
from rtqa.protocol.fraction_tables import (
    course_limits,
    eqd2_candidates,
    judge_strictest,
    missing_counts,
    missing_table_finding,
)
from rtqa.protocol.judging import judge_limit, outside_cc
from rtqa.protocol.match_findings import optional_organs_finding, unmatched_organ_finding
from rtqa.protocol.model import Organ, Protocol
from rtqa.protocol.organ_extent import (
    contoured_further,
    incomplete_contours,
    match_elsewhere,
    unjudged_part,
)
from rtqa.protocol.plan_rules import unknown_count_reason
from rtqa.protocol.prior_organs import prior_limits, unjudged_organ_findings
from rtqa.protocol.structure_dvhs import (
    derived_dvh,
    dvh_or_finding,
    keep_dvh,
    volume_integrity,
)

#: alpha/beta (Gy) for an organ with none in the protocol nor on the command line.
DEFAULT_ALPHA_BETA_GY = 3.0


def _alpha_beta(organ: Organ, protocol: Protocol, st: Settings) -> tuple[float, str]:
    if organ.alpha_beta is not None:
        return float(organ.alpha_beta.value), "protocol"  # type: ignore[arg-type]
    pr = protocol.prior_radiation
    if pr is not None:
        sv = pr.alpha_beta_for(organ.name)
        if sv is not None:
            return float(sv.value), "protocol prior_radiation"  # type: ignore[arg-type]
    if st.alpha_beta is not None:
        return float(st.alpha_beta), "--alpha-beta"
    return DEFAULT_ALPHA_BETA_GY, "default for late-reacting tissue; set with --alpha-beta"


def _unmatched(m) -> str:
    """Why an organ's match ``m`` gives nothing to judge: no ROI, ambiguous, or a matched ROI
    without a usable closed contour."""
    if m.roi is None:
        text = m.describe()  # 'SpinalCord: no ROI matched (...)', 'SpinalCord: ambiguous, ...'
        return text.removeprefix(f"{m.spec_name}: ")
    why = "; ".join(n.message for n in m.roi.notes)
    return f"'{m.roi.name}' has no usable closed contour{': ' + why if why else ''}"


def _all_limits(organ: Organ) -> tuple:
    return tuple(lim for lims in organ.limits.values() for lim in lims)


def organ_findings(
    protocol: Protocol,
    usable: list[CaseWork],
    ctx: EvaluationContext,
    curves,
    notes: list[Note],
    outside: list,
    st: Settings,
    ref_fractions: int | None,
    sites: tuple[str, ...],
    integrity_checked: set[str],
) -> list[Finding]:
    """Findings of every organ of ``protocol`` on the course dose of the ``usable`` plans. Sets
    ``ctx.dose``; every organ's DVH goes into ``ctx`` and ``curves``, its notes into ``notes``
    and its volume outside the grid into ``outside``."""
    from rtqa.dvh import structure_dvh

    out: list[Finding] = []
    first = usable[0]
    assert first.match is not None and first.case.dose is not None
    ref = first.case.dose
    cases = [w.case for w in usable]
    arrays: list[np.ndarray] = [np.asarray(ref.dose_gy, float)]
    fractions = [w.case.plan.fractions_planned if w.case.plan else None for w in usable]
    if len(cases) > 1:
        arrays, said, failed = plan_doses_on_first(cases)
        for s, doubtful in said:
            # as for a prior course: a doubtful registration is for a person to check
            out.append(
                Finding(
                    group="plan",
                    rule="dose_sum",
                    status=Status.MINOR if doubtful else Status.INFO,
                    message=s
                    + (
                        "; check the registration: the summed organ doses rest on it"
                        if doubtful
                        else ""
                    ),
                    source="rtqa: plan doses summed on the first plan's grid",
                )
            )
        if failed:
            out.append(
                Finding(
                    group="organ",
                    rule="dose_sum",
                    status=Status.NOT_EVALUABLE,
                    message=failed + "; organ limits not judged",
                    source="rtqa",
                )
            )
            return out
        labels = " + ".join(f"'{c.label}'" for c in cases)
        physical = summed_grid(ref, np.sum(arrays, axis=0), f"physical sum of plans {labels}")
        ctx.dose = physical
    else:
        physical = ref
        ctx.dose = ref
    # plans of unknown fraction count cannot join a sum judged per fractionation, physical
    # (the count decides the limits) or EQD2 alike
    if len(cases) > 1 and any(f is None for f in fractions):
        out.append(
            Finding(
                group="organ",
                rule="dose_sum",
                status=Status.NOT_EVALUABLE,
                message="the fraction count of a plan of the course is unknown ("
                + "; ".join(
                    f"'{c.label}': {unknown_count_reason(c.plan)}"
                    for c, f in zip(cases, fractions, strict=True)
                    if f is None
                )
                + "): no EQD2 sum possible",
                source="rtqa",
            )
        )
        return out

    # the course's fraction counts (sorted: the verdict must not depend on the plans' order)
    course_counts = sorted({f for f in fractions if f})
    mixed = len(course_counts) > 1
    ss_rois = {r.name: r for r in first.case.structure_set.rois}  # type: ignore[union-attr]
    missing_optional: list[str] = []
    matched_names = {m.roi_name for m in first.match.organs.values() if m.roi is not None}
    # the prior-radiation rules judge the organs handed to them in ctx.organs (only in a course
    # with prior courses: without one they judge nothing)
    with_priors = bool(ctx.course.priors)
    for organ in protocol.organs:
        prior_limited = with_priors and bool(prior_limits(protocol, organ.name))
        if organ.sites and not set(organ.sites) & set(sites):
            # judged for other sites only (e.g. lung V20Gy for lung targets)
            if prior_limited:
                why = (
                    f"the protocol judges {organ.name} only for sites {', '.join(organ.sites)}, "
                    "and no target of them is treated"
                )
                out += unjudged_organ_findings(protocol, organ.name, why, Status.INFO)
            continue
        m = first.match.organs[organ.name]
        required = organ.is_required(sites)
        own = bool(organ.limits) or required  # judged by these rules, not only the prior ones
        if not own and not prior_limited:
            continue  # named for matching only (e.g. the body outline)
        # counts of the course the organ's tables do not list: its per-count limits unjudged
        missing = missing_counts(organ, course_counts)
        limits = course_limits(organ, course_counts) if mixed else organ.limits_for(ref_fractions)
        src = next((str(lim.source) for lims in organ.limits.values() for lim in lims), None)
        conf = next((lim.confidence.value for lims in organ.limits.values() for lim in lims), None)
        # an organ the first plan's structure set lacks, contoured in another plan's
        m, elsewhere, refused = match_elsewhere(organ.name, m, usable, src, conf)
        if refused is not None:
            if own:
                out.append(refused)
            if prior_limited:
                out += unjudged_organ_findings(protocol, organ.name, refused.message)
            continue
        if m.roi is None or m.roi.is_empty:
            if prior_limited:
                out += unjudged_organ_findings(protocol, organ.name, _unmatched(m))
            if not own:
                continue
            f = unmatched_organ_finding(
                organ,
                m,
                required=required,
                # an unusable contour of an organ with limits is not judged, table or no table
                limits=limits or (_all_limits(organ) if missing else ()),
                sites=sites,
                ss_rois=ss_rois,
                matched_names=matched_names,
                ref_fractions=ref_fractions,
                src=src,
                conf=conf,
            )
            if f is None:
                missing_optional.append(organ.name)
            else:
                out.append(f)
            continue
        roi = m.roi
        how = m.describe() + elsewhere
        # a derived organ: plus and minus the listed structures, each where usably contoured
        derived = bool(m.minus or organ.roi.plus)
        added = tuple(s.roi for s in m.plus if s.roi is not None and not s.roi.is_empty)
        subtracted = tuple(s.roi for s in m.minus if s.roi is not None and not s.roi.is_empty)
        ctx.organs[organ.name] = roi
        if added or subtracted:  # the prior-radiation rules judge the same structure
            ctx.organ_parts[organ.name] = (added, subtracted)
        # another plan's own contour of the organ reaching beyond this one: part unjudged (by
        # these rules and by the prior-radiation rules alike)
        further = contoured_further(organ.name, usable) if len(usable) > 1 else ""
        # contours not defining all of the organ or of what it is derived from: part unjudged too
        incomplete = incomplete_contours(roi, *added, *subtracted)
        further = "; ".join(w for w in (incomplete, further) if w)
        if further:
            ctx.organ_further[organ.name] = further
        if not own:
            continue  # limits under prior_radiation only: judged by the prior rules
        if missing:
            out.append(
                missing_table_finding(
                    organ,
                    course_counts,
                    missing,
                    any_count_judged=bool(limits),
                    roi=roi.name,
                    match=how,
                    source=src,
                    confidence=conf,
                )
            )
            if not limits:
                continue
        if not limits:
            counts = sorted(n for n in organ.limits if n is not None)
            unknown = ref_fractions is None and bool(counts)
            if unknown:
                message = (
                    "the fraction count is unknown: which of the protocol's limits apply "
                    f"(for {', '.join(map(str, counts))} fractions) cannot be told"
                )
            elif not organ.limits:  # required, with no dose limits of its own
                message = "no dose limits of its own in the protocol"
                if prior_limits(protocol, organ.name):
                    message += (
                        "; its prior_radiation limits are judged with the prior courses"
                        if with_priors
                        else "; its prior_radiation limits apply where a prior course is found"
                        " (none here)"
                    )
            else:
                message = f"no limits for {ref_fractions} fractions in the protocol"
            out.append(
                Finding(
                    group="organ",
                    rule="limits",
                    status=Status.NOT_EVALUABLE if unknown else Status.INFO,
                    message=message,
                    roi=roi.name,
                    match=how,
                    source=src,
                    confidence=conf,
                )
            )
            continue
        # DVH on the physical course dose (derived structures: plus and minus the listed ones)
        if derived:
            words = []
            if organ.roi.plus:
                listed = ", ".join(r.name for r in added) or "nothing else found"
                words.append(f"union with {listed}")
            if m.minus:
                listed = ", ".join(r.name for r in subtracted) or "nothing found to subtract"
                words.append(f"minus {listed}")
            how += f" (derived: {'; '.join(words)})"
            sd = dvh_or_finding(
                derived_dvh, roi, physical, out, None, how, "organ", minus=subtracted, plus=added
            )
        else:
            sd = dvh_or_finding(structure_dvh, roi, physical, out, None, how, "organ")
        if sd is None:
            continue
        name = sd.roi_name  # the ROI's, or the derived structure's ('Lungs - GTV')
        keep_dvh(ctx, curves, roi, sd, how)
        outside.append((name, False, outside_cc(sd.dvh), sd.dvh.total_volume_cc))
        notes.extend(sd.notes)
        out += volume_integrity(roi, sd, physical, first.case.case_id, integrity_checked)
        if not mixed:
            note = ""
            if len(usable) > 1:
                note = f"physical sum of {len(usable)} plans of {ref_fractions} fractions"
            for lim in limits:
                f = judge_limit(
                    lim, sd.dvh, group="organ", roi=name, match=how, case_id=None, note=note
                )
                out.append(unjudged_part(f, lim, further) if further else f)
            continue
        ab, ab_from = _alpha_beta(organ, protocol, st)
        edvh = (
            eqd2_dvh(sd.occupancy, ref, arrays, fractions, ab) if sd.occupancy is not None else None
        )
        counts = ", ".join(f"'{c.label}' {n} fx" for c, n in zip(cases, fractions, strict=True))
        groups, refused = eqd2_candidates(organ, course_counts, ab, tables=not missing)
        for lim, why in refused:
            out.append(
                Finding(
                    group="organ",
                    rule=lim.metric.canonical,
                    status=Status.NOT_EVALUABLE,
                    message=why,
                    roi=name,
                    match=how,
                    metric=lim.metric.canonical,
                    source=str(lim.source),
                    confidence=lim.confidence.value,
                )
            )
        for group in groups:
            f, chosen = judge_strictest(
                group,
                edvh,
                roi=name,
                match=how,
                note=f"plans of different fraction counts ({counts})",
                tail=f"alpha/beta from {ab_from}",
            )
            out.append(unjudged_part(f, chosen.limit, further) if further else f)
    if missing_optional:
        out.append(optional_organs_finding(protocol, missing_optional))
    return out


__all__ = ["DEFAULT_ALPHA_BETA_GY", "organ_findings"]
