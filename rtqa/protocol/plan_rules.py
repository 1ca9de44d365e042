"""Plan-level rules: fractionation, prescription, schedule, targets, sites and the dose grid.

One pure function per rule; each returns a list of :class:`~rtqa.model.Finding` with group
``plan`` (an empty list when the protocol does not set the rule). A violated rule gets the
severity the constraint file gives it (``major`` unless written otherwise). Dates are calendar
days, intervals hours, grid spacings mm, doses Gy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from rtqa.model import DoseGrid, Finding, Plan, Roi, Status
from rtqa.protocol.model import TARGET_TYPES, Fractionation, PlanChecks, Protocol, SourcedValue
from rtqa.protocol.prescription import TargetRx
from rtqa.protocol.schedule import Schedule

GROUP = "plan"
#: Two prescriptions agree when they differ by at most this many Gy.
RX_TOLERANCE_GY = 0.01
#: DICOM TissueHeterogeneityCorrection terms that correct for heterogeneity.
HETEROGENEITY_TERMS = ("IMAGE", "ROI_OVERRIDE")


def _src(sv: SourcedValue | None) -> tuple[str | None, str | None]:
    if sv is None:
        return None, None
    return (
        str(sv.source) if sv.source is not None else None,
        sv.confidence.value if sv.confidence is not None else None,
    )


def _finding(
    rule: str,
    status: Status,
    message: str,
    sv: SourcedValue | None = None,
    case_id: str | None = None,
    **kw,
) -> Finding:
    source, confidence = _src(sv)
    if sv is not None and sv.note and status is not Status.PASS:
        message = f"{message} [{sv.note}]"
    return Finding(
        group=GROUP,
        rule=rule,
        status=status,
        message=message,
        source=kw.pop("source", source),
        confidence=kw.pop("confidence", confidence),
        case_id=case_id,
        **kw,
    )


# --------------------------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteChoice:
    """The treatment site a plan is judged as: ``site`` (``None`` when it cannot be told),
    ``candidates`` (site ids whose keywords matched) and ``how`` (plain words)."""

    site: str | None
    candidates: tuple[str, ...]
    how: str

    @property
    def sites(self) -> tuple[str, ...]:
        """The site, else every candidate (used for site-dependent requirements)."""
        return (self.site,) if self.site else self.candidates


def keyword_hits(fr: Fractionation, texts: Sequence[str]) -> dict[str, str]:
    """Site id -> ``"keyword 'k' in 'text'"`` for every site whose keyword occurs in a text."""
    hits: dict[str, str] = {}
    for site in fr.sites.values():
        for kw in site.keywords:
            text = next((t for t in texts if t and re.search(kw, t, re.IGNORECASE)), None)
            if text is not None:
                hits[site.id] = f"keyword '{kw}' in '{text}'"
                break
    return hits


def choose_site(
    protocol: Protocol,
    texts: Sequence[str],
    rx_gy: float | None,
    fractions: int | None,
    site_option: str | None = None,
) -> SiteChoice:
    """Infer the plan's site from the protocol's keywords (plan site, label, name, description,
    target names); when several sites match, the one whose regimen the prescription follows.
    ``site_option`` (``--site``) overrides; a site the protocol does not list is refused."""
    fr = protocol.fractionation
    if site_option is not None:
        if fr.sites and site_option not in fr.sites:
            from rtqa.errors import UsageError

            known = ", ".join(fr.sites)
            raise UsageError(f"--site {site_option!r}: protocol {protocol.id} lists {known}")
        return SiteChoice(site_option, (site_option,), f"--site {site_option}")
    hits = keyword_hits(fr, texts)
    excluded = {sv.value for sv in fr.excluded_sites}
    usable = [s for s in hits if s not in excluded]
    if len(usable) == 1:
        return SiteChoice(usable[0], tuple(hits), f"{usable[0]} ({hits[usable[0]]})")
    if len(usable) > 1:
        fitting = [
            s
            for s in usable
            if any(
                _regimen_fits(r.total_gy, r.fractions, rx_gy, fractions) for r in fr.regimens_for(s)
            )
        ]
        listed = "; ".join(f"{s}: {hits[s]}" for s in usable)
        if len(fitting) == 1:
            return SiteChoice(
                fitting[0],
                tuple(hits),
                f"{fitting[0]} (keywords matched {listed}; the prescription follows the "
                f"{fitting[0]} regimen)",
            )
        return SiteChoice(None, tuple(hits), f"several sites match ({listed})")
    if hits:
        return SiteChoice(None, tuple(hits), "only excluded sites match")
    return SiteChoice(None, (), "no site keyword of the protocol occurs in the plan")


def _regimen_fits(total: float, n: int, rx_gy: float | None, fractions: int | None) -> bool:
    return rx_gy is not None and fractions == n and abs(rx_gy - total) <= RX_TOLERANCE_GY


# --------------------------------------------------------------------------------------------
# Fractionation and prescription
# --------------------------------------------------------------------------------------------


def unknown_count_reason(plan: Plan | None) -> str:
    """Why a plan's fraction count is unknown: no group states one, or groups state several."""
    counts = plan.fraction_counts if plan is not None else ()
    if len(counts) > 1:
        listed = ", ".join(map(str, counts))
        return f"the plan's fraction groups state different numbers of fractions ({listed})"
    return "the plan states no number of fractions (FractionGroupSequence)"


def course_fractions_unknown(plans: list[Plan | None]) -> str:
    """Why a course of ``plans`` (its evaluated cases' plans) has no single fraction count ('' when
    it has one): a plan with none, or plans with different counts (their summed dose has no one
    EQD2)."""
    unknown = [p for p in plans if p is None or p.fractions_planned is None]
    if not plans or unknown:
        return (
            "; ".join(
                f"plan '{p.label}': {unknown_count_reason(p)}" if p else "a case without a plan"
                for p in unknown
            )
            or "no plan of the current course"
        )
    counts = sorted({p.fractions_planned for p in plans if p is not None})
    if len(counts) > 1:
        return (
            "the current course's plans have different fraction counts "
            f"({', '.join(map(str, counts))})"
        )
    return ""


def fraction_count(fr: Fractionation, plan: Plan, case_id: str | None) -> list[Finding]:
    """The plan's fraction count is one of the allowed counts."""
    fractions = plan.fractions_planned
    sv = fr.allowed_fractions
    if sv is None:
        return []
    allowed = tuple(int(v) for v in sv.value)  # type: ignore[union-attr]
    limits = {"limit": "in {" + ", ".join(str(a) for a in allowed) + "}"}
    if fractions is None:
        return [
            _finding(
                "fraction_count",
                Status.NOT_EVALUABLE,
                unknown_count_reason(plan),
                sv,
                case_id,
                limits=limits,
            )
        ]
    ok = fractions in allowed
    return [
        _finding(
            "fraction_count",
            Status.PASS if ok else sv.severity,
            f"{fractions} fractions planned"
            + ("" if ok else f"; the protocol allows {', '.join(map(str, allowed))}"),
            sv,
            case_id,
            metric="fractions",
            value=float(fractions),
            unit="fractions",
            limits=limits,
        )
    ]


def prescription(
    protocol: Protocol,
    plan: Plan | None,
    rxs: Sequence[TargetRx],
    site: SiteChoice,
    case_id: str | None,
) -> list[Finding]:
    """Prescriptions agree with each other and with the plan's fraction count, and follow an
    allowed regimen of the site where the protocol lists regimens."""
    out: list[Finding] = []
    fractions = plan.fractions_planned if plan is not None else None
    for rx in rxs:
        if rx.total_gy is None:
            out.append(
                _finding(
                    "prescription",
                    Status.NOT_EVALUABLE,
                    rx.describe(),
                    None,
                    case_id,
                    roi=rx.roi_name,
                    source="plan",
                )
            )
            continue
        problems = []
        if rx.fractions and fractions and rx.fractions != fractions:
            problems.append(
                f"the prescription is for {rx.fractions} fractions, the plan has {fractions}"
            )
        from rtqa.protocol.prescription import dose_from_name

        named = dose_from_name(rx.roi_name)
        if (
            rx.source != "ROI name"
            and named is not None
            and abs(named - rx.total_gy) > RX_TOLERANCE_GY
        ):
            problems.append(f"the ROI name says {named:g} Gy, the {rx.source} {rx.total_gy:g} Gy")
        per_fx = f" ({rx.total_gy / fractions:g} Gy x {fractions})" if fractions else ""
        out.append(
            _finding(
                "prescription",
                Status.MINOR if problems else Status.PASS,
                f"{rx.describe()}{per_fx}" + ("; " + "; ".join(problems) if problems else ""),
                None,
                case_id,
                roi=rx.roi_name,
                metric="Rx",
                value=rx.total_gy,
                unit="Gy",
                source=f"plan ({rx.source})",
            )
        )
    fr = protocol.fractionation
    if not fr.regimens:
        return out
    source = str(fr.regimens[0].source)
    confidence = fr.regimens[0].confidence.value
    if site.site is None:
        listed = ", ".join(sorted({r.site for r in fr.regimens}))
        out.append(
            _finding(
                "regimen",
                Status.NOT_EVALUABLE,
                f"the treatment site could not be inferred from the protocol's site keywords "
                f"({site.how}); give --site (one of: {listed})",
                None,
                case_id,
                source=source,
                confidence=confidence,
            )
        )
        return out
    regimens = fr.regimens_for(site.site)
    if not regimens:
        return out
    allowed = ", ".join(f"{r.total_gy:g} Gy/{r.fractions}" for r in regimens)
    for rx in rxs:
        if rx.total_gy is None:
            continue
        fit = next(
            (r for r in regimens if _regimen_fits(r.total_gy, r.fractions, rx.total_gy, fractions)),
            None,
        )
        if not fractions:
            status = Status.NOT_EVALUABLE
            text = (
                f"{rx.total_gy:g} Gy in an unknown number of fractions "
                f"({unknown_count_reason(plan)}): the regimen cannot be judged; the protocol's "
                f"for {site.site}: {allowed}"
            )
        else:
            status = Status.PASS if fit else Status.MAJOR
            text = f"{rx.total_gy:g} Gy/{fractions} for site {site.how}"
            text += "" if fit else f"; the protocol's regimen for {site.site}: {allowed}"
        out.append(
            _finding(
                "regimen",
                status,
                text,
                None,
                case_id,
                roi=rx.roi_name,
                metric="regimen",
                value=rx.total_gy,
                unit="Gy",
                limits={"limit": allowed},
                source=str(fit.source) if fit else source,
                confidence=(fit.confidence.value if fit else confidence),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


def completion_window(
    fr: Fractionation, sched: Schedule, planned: dict[str | None, int], case_id: str | None = None
) -> list[Finding]:
    """Last minus first treatment date (calendar days, all plans) within the window.

    ``planned`` maps plan UID to its planned fraction count. A course not yet finished is judged
    on the earliest possible completion: the remaining fractions one a day after the last one
    delivered (said in the finding)."""
    sv = fr.complete_within_days
    if sv is None:
        return []
    window = int(sv.value)  # type: ignore[arg-type]
    limits = {"limit": f"<= {window} days"}
    if sched.first_date is None:
        why = "no RT Beams Treatment Records with a treatment date"
        if sched.undated_records:
            why = f"{sched.undated_records} treatment record(s) carry no treatment date"
        return [
            _finding(
                "completion_window",
                Status.NOT_EVALUABLE,
                f"{why}: the course duration cannot be judged",
                sv,
                case_id,
                limits=limits,
            )
        ]
    delivered = {uid: len(starts) for uid, starts in sched.starts_by_plan.items()}
    for uid, highest in sched.highest_fraction.items():  # fractions 1..highest were delivered
        delivered[uid] = max(delivered.get(uid, 0), highest)
    remaining = {uid: max(n - delivered.get(uid, 0), 0) for uid, n in planned.items()}
    last = sched.last_date
    assert last is not None
    end = last
    for uid, left in remaining.items():
        if left:
            starts = sched.starts_by_plan.get(uid, ())
            own_last = starts[-1].date() if starts else last
            end = max(end, max(own_last, last) + timedelta(days=left))
    span = (end - sched.first_date).days
    left_total = sum(remaining.values())
    if left_total:
        how = (
            f"course not finished: {sched.delivered} fraction(s) delivered from "
            f"{sched.first_date:%Y-%m-%d} to {last:%Y-%m-%d}, {left_total} remaining; earliest "
            f"possible completion {end:%Y-%m-%d} (one fraction a day) gives {span} days"
        )
    else:
        extra = sum(max(delivered.get(uid, 0) - n, 0) for uid, n in planned.items())
        beyond = f" ({extra} beyond the plan)" if extra > 0 else ""
        how = (
            f"{sched.delivered} fraction(s) delivered{beyond} from {sched.first_date:%Y-%m-%d} "
            f"to {last:%Y-%m-%d}: {span} days"
        )
    ok = span <= window
    unknown = sched.unknown_dates
    status = Status.PASS if ok else sv.severity
    if not ok:
        how += f", more than the {window} days allowed"
        if unknown:
            how += f" ({unknown}: the span is at least this)"
    elif unknown:
        status = Status.INFO if sv.severity is Status.INFO else Status.NOT_EVALUABLE
        how += f"; {unknown}: the course span is not known (at least {span} days)"
    return [
        _finding(
            "completion_window",
            status,
            how,
            sv,
            case_id,
            metric="span",
            value=float(span),
            unit="days",
            limits=limits,
            margin=float(window - span),
        )
    ]


def min_interval(fr: Fractionation, sched: Schedule, case_id: str | None = None) -> list[Finding]:
    """Shortest time between consecutive fractions of one plan, in hours."""
    sv = fr.min_interval_hours
    if sv is None:
        return []
    limit = float(sv.value)  # type: ignore[arg-type]
    limits = {"limit": f">= {limit:g} h"}
    gap = sched.min_interval_h
    if gap is None:
        status = Status.INFO if sched.delivered else Status.NOT_EVALUABLE
        if sv.severity is Status.INFO:
            status = Status.INFO
        why = (
            "a single fraction delivered: no interval"
            if sched.delivered == 1
            else "no dated treatment records: intervals unknown"
        )
        return [_finding("min_interval", status, why, sv, case_id, limits=limits)]
    ok = gap >= limit
    status = Status.PASS if ok else sv.severity
    text = f"shortest interval between fractions {gap:.4g} h"
    unknown = sched.unknown_dates
    if unknown and ok:
        status = Status.INFO if sv.severity is Status.INFO else Status.NOT_EVALUABLE
        text = (
            f"shortest interval between the dated fractions {gap:.4g} h; {unknown}: the "
            "intervals next to them are unknown"
        )
    elif unknown:
        text += f" ({unknown})"
    return [
        _finding(
            "min_interval",
            status,
            text,
            sv,
            case_id,
            metric="interval",
            value=gap,
            unit="h",
            limits=limits,
            margin=gap - limit,
        )
    ]


# --------------------------------------------------------------------------------------------
# Targets and sites
# --------------------------------------------------------------------------------------------


def target_count(
    fr: Fractionation, names: Sequence[str], case_id: str | None = None
) -> list[Finding]:
    """Number of targets treated in the course within min/max; not evaluable when no target was
    found (a plan treats something: its targets were not recognised, so they cannot be
    counted)."""
    out = []
    n = len(names)
    listed = ", ".join(f"'{t}'" for t in names) or "none"
    for rule, sv, op in (
        ("min_targets", fr.min_targets, ">="),
        ("max_targets", fr.max_targets, "<="),
    ):
        if sv is None:
            continue
        limit = int(sv.value)  # type: ignore[arg-type]
        ok = n >= limit if op == ">=" else n <= limit
        status = Status.PASS if ok else sv.severity
        message = f"{n} target(s): {listed}"
        if n == 0:
            status = Status.NOT_EVALUABLE
            message = "no target found: the targets treated cannot be counted"
        out.append(
            _finding(
                rule,
                status,
                message,
                sv,
                case_id,
                metric="targets",
                value=float(n),
                unit="targets",
                limits={"limit": f"{op} {limit}"},
                margin=float(n - limit if op == ">=" else limit - n),
            )
        )
    return out


def unjudged_prescriptions(
    plan: Plan,
    rois: Sequence[Roi],
    judged: Sequence[str],
    judged_numbers: set[int],
    case_id: str | None = None,
) -> list[Finding]:
    """Each ROI the plan prescribes to (a dose reference pointing to it) that is not judged as
    a target: its coverage would otherwise go unsaid. Not evaluable where the ROI is missing or
    is no target at all (a boost typed ORGAN, a dose reference on the wrong ROI); information
    where it is a target the protocol does not judge (a GTV prescribed, its PTV judged)."""
    by_number = {r.number: r for r in rois}
    out = []
    numbers = sorted({p.roi_number for p in plan.prescriptions if p.roi_number is not None})
    for number in numbers:
        if number in judged_numbers:
            continue
        totals = sorted({p.total_gy for p in plan.prescriptions if p.roi_number == number})
        gy = ", ".join(f"{t:g}" for t in totals)
        roi = by_number.get(number)
        if roi is None:
            status = Status.NOT_EVALUABLE
            what = f"ROI {number}, which its structure set does not hold"
        else:
            kind = roi.interpreted_type or "no type"
            what = f"ROI {number} '{roi.name}' ({kind}), not a target the protocol judges"
            status = (
                Status.INFO
                if roi.interpreted_type in TARGET_TYPES and judged
                else Status.NOT_EVALUABLE
            )
        text = f"the plan prescribes {gy} Gy to {what}: its coverage is not judged"
        if status is Status.NOT_EVALUABLE:
            text += " (map it to a target of the protocol with --map, or correct the dose "
            text += "reference)"
        else:
            text += f" (judged: {', '.join(repr(t) for t in judged)})"
        out.append(
            _finding(
                "prescribed_roi",
                status,
                text,
                None,
                case_id,
                roi=roi.name if roi is not None else None,
                source="plan",
            )
        )
    return out


def excluded_sites(
    protocol: Protocol, texts: Sequence[str], site: SiteChoice, case_id: str | None = None
) -> list[Finding]:
    """A target of a site the protocol excludes (e.g. CNS), by keyword or ``--site``."""
    fr = protocol.fractionation
    if not fr.excluded_sites:
        return []
    hits = keyword_hits(fr, texts)
    out = []
    for sv in fr.excluded_sites:
        sid = str(sv.value)
        if site.site == sid or sid in hits:
            why = f"--site {sid}" if site.site == sid and sid not in hits else hits[sid]
            out.append(
                _finding(
                    "excluded_site",
                    sv.severity,
                    f"site '{sid}' is excluded by the protocol ({why})",
                    sv,
                    case_id,
                )
            )
    if not out:
        names = ", ".join(str(sv.value) for sv in fr.excluded_sites)
        sv = fr.excluded_sites[0]
        out.append(
            _finding(
                "excluded_site",
                Status.PASS,
                f"no keyword of an excluded site ({names})",
                sv,
                case_id,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Dose grid and plan state
# --------------------------------------------------------------------------------------------


def grid_resolution(pc: PlanChecks, dose: DoseGrid, case_id: str | None = None) -> list[Finding]:
    """Largest dose-grid spacing (mm, any direction) within the protocol's maximum."""
    sv = pc.max_grid_spacing_mm
    if sv is None:
        return []
    import numpy as np

    dx, dy, _ = dose.spacing_mm
    dz = float(np.max(np.diff(dose.z_mm))) if dose.z_mm.size > 1 else 0.0
    worst = max(dx, dy, dz)
    limit = float(sv.value)  # type: ignore[arg-type]
    ok = worst <= limit
    return [
        _finding(
            "grid_resolution",
            Status.PASS if ok else sv.severity,
            f"dose grid spacing {dx:g} x {dy:g} x {dz:g} mm (x, y, z; largest z step)",
            sv,
            case_id,
            metric="spacing",
            value=worst,
            unit="mm",
            limits={"limit": f"<= {limit:g} mm"},
            margin=limit - worst,
        )
    ]


def grid_coverage(
    pc: PlanChecks,
    outside: Sequence[tuple[str, bool, float, float]],
    case_id: str | None = None,
) -> list[Finding]:
    """Every judged structure inside the dose grid.

    ``outside``: (ROI name, is target, cc outside, total cc). A target partly outside makes its
    coverage not evaluable; an organ partly outside is a minor finding (its metrics then say the
    dose of that part is unknown, never 0 Gy)."""
    sv = pc.grid_covers_structures
    out = []
    for name, is_target, cc, total in outside:
        if cc <= 0:
            continue
        pct = 100.0 * cc / total if total > 0 else 100.0
        if is_target:
            status = Status.NOT_EVALUABLE
            what = "its coverage metrics are not evaluable"
        else:
            status = Status.MINOR if sv is not None and sv.value else Status.INFO
            what = "its dose there is unknown (not counted as 0 Gy)"
        out.append(
            _finding(
                "grid_coverage",
                status,
                f"{cc:.3g} cc ({pct:.3g} %) of '{name}' lies outside the dose grid: {what}",
                sv,
                case_id,
                roi=name,
                metric="outside",
                value=cc,
                unit="cc",
                limits={"limit": "<= 0 cc"},
            )
        )
    if not out and sv is not None and outside:
        out.append(
            _finding(
                "grid_coverage",
                Status.PASS,
                f"all {len(outside)} judged structures lie inside the dose grid",
                sv,
                case_id,
            )
        )
    return out


def dose_summation(dose: DoseGrid, case_id: str | None = None) -> list[Finding]:
    """How the stored dose became the course dose (session dose scaled, beams summed)."""
    if dose.scaling_note:
        return [
            _finding(
                "dose_summation",
                Status.INFO,
                f"DoseSummationType {dose.summation_type}: {dose.scaling_note}",
                case_id=case_id,
                source="RT Dose",
            )
        ]
    if dose.summation_type.upper() not in ("PLAN", "MULTI_PLAN"):
        return [
            _finding(
                "dose_summation",
                Status.INFO,
                f"DoseSummationType {dose.summation_type}",
                case_id=case_id,
                source="RT Dose",
            )
        ]
    return []


def heterogeneity(pc: PlanChecks, dose: DoseGrid, case_id: str | None = None) -> list[Finding]:
    """Heterogeneity correction as the dose file states it (TissueHeterogeneityCorrection)."""
    sv = pc.heterogeneity_correction
    if sv is None:
        return []
    want = str(sv.value)
    terms = tuple(t.upper() for t in dose.heterogeneity_correction)
    if not terms:
        return [
            _finding(
                "heterogeneity_correction",
                Status.INFO,
                f"the dose file does not state TissueHeterogeneityCorrection; protocol: {want}",
                sv,
                case_id,
            )
        ]
    corrected = any(t in HETEROGENEITY_TERMS for t in terms)
    if corrected or want == "not_required":
        status = Status.PASS
    else:
        status = sv.severity if want == "required" else Status.INFO
    return [
        _finding(
            "heterogeneity_correction",
            status,
            f"TissueHeterogeneityCorrection {'/'.join(terms)}; protocol: {want}",
            sv,
            case_id,
        )
    ]


def approval(plan: Plan | None, case_id: str | None = None) -> list[Finding]:
    """An unapproved (or rejected) plan is reported as information."""
    if plan is None:
        return []
    status = (plan.approval_status or "").upper()
    if status == "APPROVED":
        return []
    said = plan.approval_status or "not stated"
    return [
        _finding(
            "approval",
            Status.INFO,
            f"plan '{plan.label}' approval status: {said}",
            case_id=case_id,
            source="RT Plan (ApprovalStatus)",
        )
    ]
