"""Evaluate one course against a protocol: match structures, compute DVHs, judge every rule.

Targets are judged on their own plan's dose with their own prescription (conformity and
gradient per target); organs on the course dose: the physical sum of the plans when their
fraction counts agree, else the sum of voxel-wise EQD2 at the organ's alpha/beta with each limit
converted to EQD2 at the course's reference fraction count (both said in the finding). Plan
grids are summed directly when they share frame and geometry, else resampled onto the first
plan's grid. Doses Gy, volumes cc; every value is kept unrounded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtqa.dvh import display_bin_gy
from rtqa.model import Case, Course, DoseGrid, Finding, Level, Note, Roi, Status, body_outline
from rtqa.protocol import plan_rules
from rtqa.protocol.bands import Bands, Condition
from rtqa.protocol.delivery import delivery_findings
from rtqa.protocol.dose_trust import dose_level_finding
from rtqa.protocol.matching import MatchKind, ProtocolMatch, RoiMatch, match_protocol
from rtqa.protocol.metrics import MetricKind, MetricNotEvaluable, evaluate
from rtqa.protocol.model import Limit, Organ, OutsideTable, Protocol
from rtqa.protocol.prescription import TargetRx, target_prescription
from rtqa.protocol.schedule import schedule

#: TPS and rtqa volumes disagree when they differ by more than both of these.
VOLUME_TOLERANCE_PCT = 5.0
VOLUME_TOLERANCE_CC = 0.5
#: alpha/beta (Gy) for an organ with none in the protocol nor on the command line.
DEFAULT_ALPHA_BETA_GY = 3.0
#: Bin width (Gy) of the cumulative curves kept for plotting.
CURVE_BIN_GY = 0.05
#: Volume outside the dose grid below which a structure counts as inside (rounding of the
#: occupancy): this many cc, or this fraction of the structure, whichever is larger.
OUTSIDE_TOLERANCE_CC = 1e-3
OUTSIDE_TOLERANCE_FRACTION = 1e-4


def outside_cc(dvh: Any) -> float:
    """The structure volume (cc) outside the dose grid, 0 below the rounding tolerance."""
    unknown = float(getattr(dvh, "unknown_volume_cc", 0.0) or 0.0)
    total = float(getattr(dvh, "total_volume_cc", 0.0) or 0.0)
    if unknown <= max(OUTSIDE_TOLERANCE_CC, OUTSIDE_TOLERANCE_FRACTION * total):
        return 0.0
    return unknown


@dataclass
class EvaluationContext:
    """What the evaluation worked on, for renderers that draw it (HTML).

    ``dose``: the course dose organs were judged on (physical Gy; for plans of different
    fraction counts the physical sum, the EQD2 grids being per organ); ``doses``: each plan's
    own dose by case id; ``rois``/``occupancies``/``dvhs`` keyed by ROI name; ``targets``: target
    ROI name -> Rx (Gy, ``None`` when unknown); ``body``: the body ROI name; ``prior``: set by
    the prior-radiation rules.
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


@dataclass
class _Settings:
    site: str | None = None
    rx: Mapping[str, float] = field(default_factory=dict)
    mapping: Mapping[str, Any] = field(default_factory=dict)
    alpha_beta: float | None = None


def settings_from(options: Any) -> _Settings:
    """The evaluation settings of a ``CheckOptions`` (or any object with those attributes)."""
    return _Settings(
        getattr(options, "site", None),
        dict(getattr(options, "rx", {}) or {}),
        dict(getattr(options, "mapping", {}) or {}),
        getattr(options, "alpha_beta", None),
    )


# --------------------------------------------------------------------------------------------
# Judging one limit
# --------------------------------------------------------------------------------------------


def judge_limit(
    lim: Limit,
    dvh: Any = None,
    *,
    group: str,
    roi: str | None,
    match: str | None,
    case_id: str | None,
    rx_gy: float | None = None,
    quality: Mapping[str, float] | None = None,
    note: str = "",
    bands: Bands | None = None,
    confidence: str | None = None,
) -> Finding:
    """Judge ``lim`` on a :class:`rtqa.dvh.Dvh` (or on plan-quality values): status, margin
    to the per-protocol limit, value unrounded in the metric's unit."""
    from rtqa.dvh import MetricUndefined

    req = lim.metric
    bands = bands or lim.bands
    base = dict(
        group=group,
        rule=req.canonical,
        roi=roi,
        match=match,
        metric=req.canonical,
        unit=req.unit,
        limits=dict(bands.written),
        source=str(lim.source),
        confidence=confidence or lim.confidence.value,
        case_id=case_id,
    )
    extra = [note] if note else []
    unknown = outside_cc(dvh)
    if unknown > 0:
        extra.append(f"{unknown:.3g} cc lies outside the dose grid (dose unknown)")
    try:
        value = evaluate(req, dvh, rx_gy=rx_gy, quality=quality)
    except MetricUndefined as exc:
        total = float(getattr(dvh, "total_volume_cc", 0.0) or 0.0)
        if _critical_volume_too_large(req, bands, total):
            msg = (
                f"the structure ({total:.4g} cc) is smaller than the {req.value:g} cc it must "
                f"spare below the dose: the rule cannot be met"
            )
            return Finding(status=Status.MAJOR, message="; ".join([msg, *extra]), **base)
        return Finding(status=Status.NOT_EVALUABLE, message="; ".join([str(exc), *extra]), **base)
    except MetricNotEvaluable as exc:
        return Finding(status=Status.NOT_EVALUABLE, message="; ".join([str(exc), *extra]), **base)
    j = bands.judge(value)
    if (
        req.kind is MetricKind.COLD_VOLUME_AT_DOSE
        and req.unit == "cc"
        and not bands.per_protocol.upper
        and dvh is not None
        and dvh.total_volume_cc < bands.per_protocol.limit
    ):
        extra.insert(
            0,
            f"the structure ({dvh.total_volume_cc:.4g} cc) is smaller than the "
            f"{bands.per_protocol.limit:g} cc it must spare",
        )
    if j.status is not Status.PASS and lim.note:
        extra.append(lim.note)
    return Finding(status=j.status, message="; ".join(extra), value=value, margin=j.margin, **base)


def _critical_volume_too_large(req, bands: Bands, total_cc: float) -> bool:
    if req.kind not in (MetricKind.COLD_DOSE_AT_VOLUME, MetricKind.COLD_VOLUME_AT_DOSE):
        return False
    return req.query_unit == "cc" and req.value is not None and req.value > total_cc


# --------------------------------------------------------------------------------------------
# EQD2 conversion of a limit (plans of different fraction counts)
# --------------------------------------------------------------------------------------------


def eqd2_limit(lim: Limit, fractions: int, alpha_beta_gy: float) -> tuple[Limit, str]:
    """``lim`` (physical Gy in ``fractions`` fractions) with its dose query and dose bands
    converted to EQD2 at ``alpha_beta_gy``; MetricNotEvaluable for %-of-Rx metrics."""
    from rtqa.radiobiology import eqd2

    req = lim.metric
    if req.needs_rx or req.is_quality:
        raise MetricNotEvaluable(
            f"{req.canonical} is relative to the prescription: no EQD2 form across plans"
        )

    def conv(gy: float) -> float:
        return float(eqd2(gy, fractions, alpha_beta_gy))

    words = []
    if req.kind in (MetricKind.VOLUME_AT_DOSE, MetricKind.COLD_VOLUME_AT_DOSE):
        assert req.value is not None
        gy = req.value / 100.0 if req.query_unit == "cGy" else req.value
        new_gy = conv(gy)
        text = f"{req.kind.value}{new_gy:.4g}Gy[{req.unit}]"
        req = dataclasses.replace(req, value=new_gy, query_unit="Gy", text=text, canonical=text)
        words.append(f"dose {gy:g} Gy in {fractions} fx = {new_gy:.4g} Gy EQD2")
        bands = lim.bands
    else:
        scale = 0.01 if req.unit == "cGy" else 1.0

        def cond(c: Condition | None) -> Condition | None:
            if c is None:
                return None
            v = conv(c.limit * scale) / scale
            return Condition(c.op, v, f"{c.op} {v:.6g} (EQD2 of {c.text})")

        per = cond(lim.bands.per_protocol)
        assert per is not None
        bands = Bands(per, cond(lim.bands.acceptable))
        words.append(
            f"limit {lim.bands.per_protocol.text} Gy in {fractions} fx = "
            f"{per.op} {per.limit:.4g} Gy EQD2"
        )
    how = f"EQD2 sum of the plans (alpha/beta {alpha_beta_gy:g} Gy); " + ", ".join(words)
    return dataclasses.replace(lim, metric=req, bands=bands), how


# --------------------------------------------------------------------------------------------
# Dose of the course
# --------------------------------------------------------------------------------------------


def _same_geometry(a: DoseGrid, b: DoseGrid) -> bool:
    return (
        a.frame_of_reference_uid == b.frame_of_reference_uid
        and a.shape == b.shape
        and all(
            np.allclose(u, v, atol=1e-3)
            for u, v in ((a.x_mm, b.x_mm), (a.y_mm, b.y_mm), (a.z_mm, b.z_mm))
        )
    )


def plan_doses_on_first(cases: Sequence[Case]) -> tuple[list[np.ndarray], list[str], str | None]:
    """Each case's dose on the first case's grid, what was done, and why summing failed
    (``None`` when it worked). Dose outside another plan's own grid is taken as 0 Gy there
    (the planning system computed none) and said so."""
    ref = cases[0].dose
    assert ref is not None
    arrays = [np.asarray(ref.dose_gy, dtype=float)]
    said: list[str] = []
    for case in cases[1:]:
        d = case.dose
        assert d is not None
        if _same_geometry(ref, d):
            arrays.append(np.asarray(d.dose_gy, dtype=float))
            continue
        from rtqa.geometry.transform import resample_dose
        from rtqa.prior import registration_between

        matrix = None
        via = ""
        if d.frame_of_reference_uid != ref.frame_of_reference_uid:
            registrations = list({id(r): r for c in cases for r in c.registrations}.values())
            # points of the first plan's frame into this plan's: resample_dose's direction
            matrix, note = registration_between(
                ref.frame_of_reference_uid, d.frame_of_reference_uid, registrations
            )
            if matrix is None:
                return (
                    arrays,
                    said,
                    f"plan '{case.label}' lies in another frame of reference than the first "
                    f"plan: {note.message}; the plan doses cannot be summed (use --separate to "
                    "judge each plan alone)",
                )
            via = f" ({note.message})"
        values, outside = resample_dose(d, ref, matrix)
        n_out = int(outside.sum())
        values = np.where(outside, 0.0, values)
        arrays.append(values)
        msg = f"dose of '{case.label}' resampled onto the grid of '{cases[0].label}'{via}"
        if n_out:
            msg += f" ({n_out} voxels beyond its own grid taken as 0 Gy)"
        said.append(msg)
    return arrays, said, None


def eqd2_dvh(
    occ: Any,
    ref: DoseGrid,
    arrays: Sequence[np.ndarray],
    fractions: Sequence[int | None],
    ab: float,
):
    """DVH of the voxel-wise EQD2 sum of several plans (doses on ``ref``'s grid) over ``occ``.

    Each plan's physical dose is interpolated at the structure's sample points first and
    converted there (EQD2 is convex: converting grid values and interpolating them afterwards
    would overstate it between voxels); the conversions are then summed sample by sample."""
    from rtqa.dvh import Dvh
    from rtqa.geometry.sampling import sample_doses
    from rtqa.radiobiology import eqd2

    total = spread = vols = None
    for values, n in zip(arrays, fractions, strict=True):
        sampled = sample_doses(occ, dataclasses.replace(ref, dose_gy=values))
        doses = np.clip(np.asarray(sampled[0], float), 0.0, None)
        vols = np.asarray(sampled[1], float)
        k = int(n or 1)
        converted = np.asarray(eqd2(doses, k, ab), float)
        total = converted if total is None else total + converted
        if len(sampled) > 2 and sampled[2] is not None:
            # the spread of the dose within a cell, carried through the local slope of EQD2
            slope = (2.0 * doses / k + ab) / (2.0 + ab)
            part = slope * np.asarray(sampled[2], float)
            spread = part if spread is None else spread + part
    assert total is not None and vols is not None
    if spread is None:
        return Dvh.from_samples(total, vols, occ.outside_cc)
    return Dvh.from_samples(total, vols, occ.outside_cc, spreads_gy=spread)


def summed_grid(ref: DoseGrid, values: np.ndarray, note: str) -> DoseGrid:
    """A copy of ``ref`` holding ``values`` (Gy) with ``note`` as its scaling note."""
    return dataclasses.replace(
        ref, dose_gy=values, scaling_note=note, summation_type="MULTI_PLAN", tps_dvhs=()
    )


# --------------------------------------------------------------------------------------------
# The course
# --------------------------------------------------------------------------------------------


@dataclass
class _CaseWork:
    case: Case
    match: ProtocolMatch | None = None
    targets: list[tuple[str, RoiMatch]] = field(default_factory=list)  # (rule id, match)
    rxs: dict[str, TargetRx] = field(default_factory=dict)
    site: plan_rules.SiteChoice | None = None
    texts: list[str] = field(default_factory=list)


def evaluate_course(course: Course, protocol: Protocol, options: Any = None) -> Evaluation:
    """Judge ``course`` against ``protocol``. ``options``: a ``CheckOptions`` (site, rx,
    mapping, alpha_beta and the prior settings)."""
    from rtqa.dvh import structure_dvh
    from rtqa.protocol.dose_sanity import placement_finding

    st = settings_from(options)
    findings: list[Finding] = []
    notes: list[Note] = []
    ctx = EvaluationContext(course, protocol)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    outside: list[tuple[str, bool, float, float]] = []
    integrity_checked: set[str] = set()

    usable: list[_CaseWork] = []
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
        usable.append(_CaseWork(case))

    # ---- matching, targets and prescriptions per plan
    owner: dict[tuple[str, int], str] = {}
    for w in usable:
        ss = w.case.structure_set
        assert ss is not None
        w.match = match_protocol(protocol, ss.rois, st.mapping)
        plan = w.case.plan
        referenced = {p.roi_number for p in (plan.prescriptions if plan else ()) if p.roi_number}
        for ms in w.match.targets.values():
            for m in ms:
                if m.roi is None:
                    continue
                key = (ss.sop_instance_uid, m.roi.number)
                if m.roi.number in referenced:
                    owner[key] = w.case.case_id
                else:
                    owner.setdefault(key, w.case.case_id)
    for w in usable:
        ss = w.case.structure_set
        assert ss is not None and w.match is not None
        seen = set()
        for rule_id, ms in w.match.targets.items():
            for m in ms:
                if m.roi is None or (rule_id, m.roi.name) in seen:
                    continue
                if owner.get((ss.sop_instance_uid, m.roi.number)) != w.case.case_id:
                    continue
                seen.add((rule_id, m.roi.name))
                w.targets.append((rule_id, m))
        names = sorted({m.roi.name for _, m in w.targets if m.roi is not None})
        by_name = {m.roi.name: m.roi for _, m in w.targets if m.roi is not None}
        for name in names:
            w.rxs[name] = target_prescription(
                by_name[name], w.case.plan, st.rx, single_target=len(names) == 1
            )
        plan = w.case.plan
        w.texts = [
            t
            for t in (
                (plan.treatment_site, plan.label, plan.name, plan.description) if plan else ()
            )
            if t
        ] + names
        first_rx = next((r.total_gy for r in w.rxs.values() if r.total_gy is not None), None)
        fractions = plan.fractions_planned if plan else None
        w.site = plan_rules.choose_site(protocol, w.texts, first_rx, fractions, st.site)

    # ---- fraction counts of the course
    counts = [w.case.plan.fractions_planned for w in usable if w.case.plan is not None]
    known_counts = [c for c in counts if c]
    ref_fractions = known_counts[0] if known_counts else None
    mixed = len(set(known_counts)) > 1
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
            findings += plan_rules.fraction_count(fr, plan.fractions_planned, cid)
            findings += plan_rules.prescription(protocol, plan, list(w.rxs.values()), w.site, cid)
            findings += plan_rules.excluded_sites(protocol, w.texts, w.site, cid)
        findings += plan_rules.grid_resolution(pc, dose, cid)
        findings += plan_rules.dose_summation(dose, cid)
        findings += plan_rules.heterogeneity(pc, dose, cid)
        findings += plan_rules.approval(plan, cid)
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
        target_occ: dict[str, Any] = {}
        for rule_id, m in w.targets:
            roi = m.roi
            assert roi is not None
            if roi.name not in ctx.dvhs:
                sd = _dvh(structure_dvh, roi, dose, findings, cid, m.how, "target")
                if sd is None:
                    continue
                _keep(ctx, curves, roi, sd, m.how)
                outside.append((roi.name, True, outside_cc(sd.dvh), sd.volume_cc))
                notes.extend(sd.notes)
                ctx.target_cases[roi.name] = cid
                findings += _integrity(roi, sd, dose, cid, integrity_checked)
            sd = ctx.dvhs[roi.name]
            target_occ[roi.name] = sd.occupancy
            rx = w.rxs[roi.name]
            ctx.targets[roi.name] = rx.total_gy
            rule = next(t for t in protocol.targets if t.id == rule_id)
            if rule.sites and not set(rule.sites) & set(w.site.sites):
                continue
            how = f"{m.how}; {rx.describe()}"
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
                findings.append(
                    judge_limit(
                        lim,
                        sd.dvh,
                        group="target",
                        roi=roi.name,
                        match=how,
                        case_id=cid,
                        rx_gy=rx.total_gy,
                    )
                )
        findings += _quality(protocol, w, ctx, target_occ, cid)
        # does the dose lie in the patient? (the body occupancy of the quality indices reused)
        body = body_outline(w.case.structure_set.rois)  # type: ignore[union-attr]
        known = ctx.occupancies.get(body.name) if body and ctx.rois.get(body.name) is body else None
        findings.append(placement_finding(dose, body, cid, body_occupancy=known))
        rx_top = max((rx.total_gy for rx in w.rxs.values() if rx.total_gy), default=None)
        level = dose_level_finding(dose, rx_top, plan_fx, cid)
        if level is not None:
            findings.append(level)

    if not any(w.targets for w in usable) and usable and protocol.targets:
        looked = ", ".join(t.roi.label for t in protocol.targets)
        findings.append(
            Finding(
                group="target",
                rule="targets",
                status=Status.NOT_EVALUABLE,
                message=f"no target found (looked for {looked} by interpreted type or name); "
                "map one with --map PTV=NAME",
                source=protocol.id,
            )
        )

    # ---- organs on the course dose
    if usable:
        findings += _organs(
            protocol,
            usable,
            ctx,
            curves,
            notes,
            outside,
            st,
            ref_fractions,
            mixed,
            sites,
            integrity_checked,
        )
    findings += plan_rules.grid_coverage(pc, outside)
    return Evaluation(findings, curves, notes, ctx, ref_fractions, sites)


def _dvh(fn, roi: Roi, dose: DoseGrid, findings: list[Finding], cid, how, group, **kw):
    """A StructureDvh, or None (with a not_evaluable finding) for an ROI without volume."""
    from rtqa.dvh import MetricUndefined

    try:
        return fn(roi, dose, **kw)
    except (ValueError, MetricUndefined) as exc:
        findings.append(
            Finding(
                group=group,
                rule="dvh",
                status=Status.NOT_EVALUABLE,
                message=f"no DVH for '{roi.name}': {exc}",
                roi=roi.name,
                match=how,
                case_id=cid,
                source="structure set",
            )
        )
        return None


def _derived_dvh(roi: Roi, dose: DoseGrid, minus: tuple[Roi, ...]):
    """The StructureDvh of ``roi`` minus the union of ``minus`` (occupancy difference, every
    structure sampled as finely as ``roi`` needs); ValueError for an ROI without volume."""
    from rtqa.dvh import occupancy_dvh
    from rtqa.geometry import contour_volume_cc, occupancy
    from rtqa.geometry.sampling import choose_factors

    factors = choose_factors(contour_volume_cc(roi), dose)
    occ = occupancy(roi, dose, factors=factors)
    for sub in minus:
        occ = occ.difference(occupancy(sub, dose, factors=factors))
    name = " - ".join([roi.name, *(r.name for r in minus)])
    return occupancy_dvh(occ, dose, name, roi_number=roi.number)


def _keep(ctx: EvaluationContext, curves, roi: Roi, sd, how: str) -> None:
    ctx.rois[roi.name] = roi
    ctx.dvhs[roi.name] = sd
    ctx.occupancies[roi.name] = sd.occupancy
    ctx.matches[roi.name] = how
    curves[roi.name] = _curve(sd.dvh)


def _curve(dvh) -> tuple[np.ndarray, np.ndarray]:
    if dvh.known_volume_cc <= 0:
        return np.zeros(1), np.zeros(1)
    dose, vol = dvh.cumulative(display_bin_gy(dvh, CURVE_BIN_GY))
    total = dvh.total_volume_cc
    return np.asarray(dose, float), 100.0 * np.asarray(vol, float) / total


def _integrity(roi: Roi, sd, dose: DoseGrid, cid, done: set[str]) -> list[Finding]:
    """rtqa's contour volume beside the planning system's (ROIVolume, else DVHSequence)."""
    if roi.name in done:
        return []
    done.add(roi.name)
    tps, where = roi.tps_volume_cc, "ROIVolume (3006,002C)"
    if tps is None:
        tdvh = next((t for t in dose.tps_dvhs if t.roi_number == roi.number), None)
        if tdvh is not None and tdvh.total_volume_cc:
            tps, where = tdvh.total_volume_cc, "DVHSequence"
    if tps is None:
        return []
    ours = sd.volume_cc
    diff = ours - tps
    pct = 100.0 * abs(diff) / tps if tps > 0 else math.inf
    bad = pct > VOLUME_TOLERANCE_PCT and abs(diff) > VOLUME_TOLERANCE_CC
    return [
        Finding(
            group="integrity",
            rule="volume",
            status=Status.MINOR if bad else Status.PASS,
            message=f"rtqa {ours:.4g} cc, planning system {tps:.4g} cc ({where}): "
            f"{diff:+.3g} cc ({pct:.3g} %)",
            roi=roi.name,
            metric="Volume[cc]",
            value=ours,
            unit="cc",
            limits={"limit": f"within {VOLUME_TOLERANCE_PCT:g} % or {VOLUME_TOLERANCE_CC:g} cc"},
            margin=max(
                VOLUME_TOLERANCE_PCT / 100.0 * tps - abs(diff), VOLUME_TOLERANCE_CC - abs(diff)
            ),
            source="rtqa convention: volumes differing by > 5 % and > 0.5 cc",
            case_id=cid,
        )
    ]


def _quality(protocol: Protocol, w: _CaseWork, ctx, target_occ: dict, cid) -> list[Finding]:
    pq = protocol.plan_quality
    assert w.site is not None
    if pq is None or not target_occ:
        return []
    if pq.sites and not set(pq.sites) & set(w.site.sites):
        return []
    from rtqa.dvh import MetricUndefined, plan_quality

    ss = w.case.structure_set
    dose = w.case.dose
    assert ss is not None and dose is not None
    body_roi = body_outline(ss.rois)
    body = None
    no_body = "no body outline"
    out: list[Finding] = []
    if body_roi is not None:
        from rtqa.geometry import occupancy

        try:
            body = occupancy(body_roi, dose)
        except ValueError as exc:  # an outline without volume: said, never a crash
            no_body = f"body outline '{body_roi.name}' has no volume ({exc})"
        else:
            ctx.body = body_roi.name
            ctx.rois.setdefault(body_roi.name, body_roi)
            ctx.occupancies.setdefault(body_roi.name, body)
    for name, occ in target_occ.items():
        rx = w.rxs[name]
        others = [o for n, o in target_occ.items() if n != name and o is not None]
        sd = ctx.dvhs[name]
        how = f"{ctx.matches.get(name, '')}; {rx.describe()}"
        if body is None:
            how += f"; {no_body}: isodose volumes over the whole dose grid"
        values = None
        why = ""
        if rx.total_gy is None:
            why = rx.describe()
        elif occ is None:
            why = "no occupancy"
        else:
            try:
                values = plan_quality(occ, dose, rx.total_gy, body=body, other_targets=others)
            except (MetricUndefined, ValueError) as exc:
                why = str(exc)
        for rule in pq.rules:
            base = dict(
                group="quality",
                rule=rule.metric.canonical,
                roi=name,
                match=how,
                metric=rule.metric.canonical,
                unit=rule.metric.unit,
                source=str(rule.source),
                confidence=rule.confidence.value,
                case_id=cid,
            )
            if values is None:
                out.append(Finding(status=Status.NOT_EVALUABLE, message=why, **base))
                continue
            try:
                bands, conf = rule.bands_at(sd.volume_cc)
            except OutsideTable as exc:
                v = values.get(rule.metric.canonical)
                out.append(
                    Finding(
                        status=Status.INFO,
                        message=f"outside the tabulated range: {exc}; not extrapolated",
                        value=None if v is None or not math.isfinite(v) else float(v),
                        **base,
                    )
                )
                continue
            lim = Limit(rule.metric, bands, rule.source, conf, rule.line, note=rule.note)
            f = judge_limit(
                lim,
                None,
                group="quality",
                roi=name,
                match=how,
                case_id=cid,
                quality=values,
                confidence=conf.value,
            )
            if rule.rows:
                parts = (f"PTV {sd.volume_cc:.4g} cc", rule.interpolation_note(sd.volume_cc))
                f.message = "; ".join(x for x in (*parts, f.message) if x)
            out.append(f)
    return out


def _alpha_beta(organ: Organ, protocol: Protocol, st: _Settings) -> tuple[float, str]:
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


def _unusable_optional(
    organ: str, roi: Roi, fractions: int, src: str | None, conf: str | None
) -> Finding:
    """An optional organ whose matched ROI holds no usable closed contour (empty, degenerate,
    non-axial or in another frame): its limits cannot be judged, which is not the same as the
    organ not being contoured at all."""
    why = "; ".join(n.message for n in roi.notes if n.level is not Level.INFO)
    return Finding(
        group="organ",
        rule="match",
        status=Status.NOT_EVALUABLE,
        message=f"{organ} (optional) matches '{roi.name}', which has no usable closed contour"
        f"{': ' + why if why else ''}; its limits for {fractions} fractions are not judged",
        roi=roi.name,
        match="no usable contour",
        source=src,
        confidence=conf,
    )


def _organs(
    protocol: Protocol,
    usable: list[_CaseWork],
    ctx: EvaluationContext,
    curves,
    notes: list[Note],
    outside: list,
    st: _Settings,
    ref_fractions: int | None,
    mixed: bool,
    sites: tuple[str, ...],
    integrity_checked: set[str],
) -> list[Finding]:
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
        for s in said:
            out.append(
                Finding(
                    group="plan",
                    rule="dose_sum",
                    status=Status.INFO,
                    message=s,
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
    if mixed and any(f is None for f in fractions):
        out.append(
            Finding(
                group="organ",
                rule="dose_sum",
                status=Status.NOT_EVALUABLE,
                message="a plan of the course states no fraction count: no EQD2 sum possible",
                source="rtqa",
            )
        )
        return out

    ss_rois = {r.name: r for r in first.case.structure_set.rois}  # type: ignore[union-attr]
    missing_optional: list[str] = []
    matched_names = {m.roi_name for m in first.match.organs.values() if m.roi is not None}
    for organ in protocol.organs:
        m = first.match.organs[organ.name]
        required = organ.is_required(sites)
        if not organ.limits and not required:
            continue  # named for matching only (e.g. the body outline)
        limits = organ.limits_for(ref_fractions)
        src = next((str(lim.source) for lims in organ.limits.values() for lim in lims), None)
        conf = next((lim.confidence.value for lims in organ.limits.values() for lim in lims), None)
        if m.roi is None or m.roi.is_empty:
            if m.kind is MatchKind.AMBIGUOUS:
                out.append(
                    Finding(
                        group="organ",
                        rule="match",
                        status=Status.NOT_EVALUABLE,
                        message=m.describe(),
                        roi=None,
                        match="ambiguous: " + ", ".join(m.competitors),
                        source=src,
                        confidence=conf,
                    )
                )
            elif required:
                why = m.describe()
                if m.roi is not None:
                    why = f"'{m.roi.name}' has no closed contour"
                reqd = (
                    "required by the protocol"
                    if organ.required
                    else "required for site "
                    + ", ".join(s for s in sites if s in organ.required_for_sites)
                )
                candidates = ", ".join(
                    f"'{r.name}'"
                    for r in ss_rois.values()
                    if r.interpreted_type.upper() not in ("PTV", "CTV", "GTV", "ITV", "EXTERNAL")
                    and r.name not in matched_names
                )
                out.append(
                    Finding(
                        group="organ",
                        rule="match",
                        status=Status.NOT_EVALUABLE,
                        message=f"{organ.name} ({reqd}) not found: {why}; candidates in the "
                        f"structure set: {candidates or 'none'}; map one with "
                        f"--map {organ.name}=NAME",
                        roi=organ.name,
                        match="no match",
                        source=src,
                        confidence=conf,
                    )
                )
            elif m.roi is not None and limits:
                out.append(_unusable_optional(organ.name, m.roi, ref_fractions, src, conf))
            else:
                missing_optional.append(organ.name)
            continue
        roi = m.roi
        how = m.describe()
        ctx.organs[organ.name] = roi
        if not limits:
            counts = sorted(n for n in organ.limits if n is not None)
            unknown = ref_fractions is None and bool(counts)
            message = (
                "the fraction count is unknown: which of the protocol's limits apply "
                f"(for {', '.join(map(str, counts))} fractions) cannot be told"
                if unknown
                else f"no limits for {ref_fractions} fractions in the protocol"
            )
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
        # DVH on the physical course dose (derived structures: minus the listed ones)
        if m.minus:
            subtracted = tuple(s.roi for s in m.minus if s.roi is not None and not s.roi.is_empty)
            name = " - ".join([roi.name, *(r.name for r in subtracted)])
            how += " (derived: minus "
            how += f"{', '.join(r.name for r in subtracted) or 'nothing found to subtract'})"
            sd = _dvh(_derived_dvh, roi, physical, out, None, how, "organ", minus=subtracted)
        else:
            name = roi.name
            sd = _dvh(structure_dvh, roi, physical, out, None, how, "organ")
        if sd is None:
            continue
        _keep(ctx, curves, roi, sd, how)
        if name != roi.name:
            ctx.dvhs[name] = sd
            curves[name] = curves[roi.name]
        outside.append((name, False, outside_cc(sd.dvh), sd.dvh.total_volume_cc))
        notes.extend(sd.notes)
        out += _integrity(roi, sd, physical, first.case.case_id, integrity_checked)
        if not mixed:
            note = ""
            if len(usable) > 1:
                note = f"physical sum of {len(usable)} plans of {ref_fractions} fractions"
            for lim in limits:
                out.append(
                    judge_limit(
                        lim, sd.dvh, group="organ", roi=name, match=how, case_id=None, note=note
                    )
                )
            continue
        ab, ab_from = _alpha_beta(organ, protocol, st)
        edvh = (
            eqd2_dvh(sd.occupancy, ref, arrays, fractions, ab) if sd.occupancy is not None else None
        )
        counts = ", ".join(f"'{c.label}' {n} fx" for c, n in zip(cases, fractions, strict=True))
        for lim in limits:
            try:
                elim, words = eqd2_limit(lim, int(ref_fractions or 1), ab)
            except MetricNotEvaluable as exc:
                out.append(
                    Finding(
                        group="organ",
                        rule=lim.metric.canonical,
                        status=Status.NOT_EVALUABLE,
                        message=str(exc),
                        roi=name,
                        match=how,
                        metric=lim.metric.canonical,
                        source=str(lim.source),
                        confidence=lim.confidence.value,
                    )
                )
                continue
            out.append(
                judge_limit(
                    elim,
                    edvh,
                    group="organ",
                    roi=name,
                    match=how,
                    case_id=None,
                    note=f"plans of different fraction counts ({counts}): {words}; "
                    f"alpha/beta from {ab_from}; limits of the {ref_fractions}-fraction table",
                )
            )
    if missing_optional:
        out.append(
            Finding(
                group="organ",
                rule="optional_organs",
                status=Status.INFO,
                message="not contoured (optional for this plan): " + ", ".join(missing_optional),
                source=protocol.id,
            )
        )
    return out


__all__ = [
    "Evaluation",
    "EvaluationContext",
    "eqd2_limit",
    "evaluate_course",
    "judge_limit",
    "plan_doses_on_first",
]
