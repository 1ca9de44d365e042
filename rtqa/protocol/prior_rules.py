"""Prior-radiation rules: map each prior course onto the current dose grid, sum in EQD2, judge.

This module holds the entry point (:func:`evaluate_prior`) and the findings on each prior course
as a whole (mapping, placement, dose level, registration direction, interval, LQ validity). The
organ findings are in :mod:`rtqa.protocol.prior_organs`, the target findings in
:mod:`rtqa.protocol.prior_targets`, the cumulative EQD2 grid and its export in
:mod:`rtqa.protocol.prior_export`.

Conventions
-----------
* Every finding has ``group="prior"``. Doses are EQD2 in Gy (linear-quadratic model, each
  course converted voxel by voxel with its own fraction count, then summed); every cumulative
  number names the model and the α/β it was computed with, and where the α/β came from
  (:mod:`rtqa.protocol.prior_alpha_beta`).
* Organ metrics are computed on the structure's sampling lattice (as the organ DVHs are): the
  current dose and each mapped prior dose are interpolated trilinearly at every occupied cell
  (:mod:`rtqa.protocol.prior_sampling`), converted to EQD2 and summed cell by cell. The part of
  a structure the prior dose grid does not cover has an unknown prior dose: it is left out of
  the prior and cumulative figures and reported, never counted as 0 Gy.
* Target overlap is measured on the same lattices: volume (cc, % of the target) receiving at
  least the prior prescription isodose and its 50 %, and the prior EQD2 inside the target; where
  the prior course has targets of its own, their mapped overlap with the current target (cc,
  Dice).
* Each prior dose is checked against the body outline of its own structure set, in its own
  frame of reference, by the rule that checks the current dose
  (:func:`rtqa.protocol.dose_sanity.placement_finding`): finding ``prior_dose_placement``, not
  evaluable where the high dose lies outside the body (a misplaced prior dose).
* Each prior dose's maximum is judged against its own prescription by the rule of the current
  dose (:mod:`rtqa.dose_level`): finding ``prior_dose_level``. A prior dose that is misplaced or
  of an implausible level withholds every prior-radiation judgement
  (:func:`rtqa.protocol.dose_trust.withhold_untrusted`).
* Mapping follows :func:`rtqa.prior.registration_between` (same frame: identity; else the first
  Spatial Registration linking both frames, or the shortest chain through other frames). Without
  one the prior course is not evaluable, unless the user states the frames are aligned
  (``--assume-aligned``): then the identity is used and every prior finding says so.
* The irradiated overlap that decides the ESTRO–EORTC type and the ``exclude``/``review``
  policies is the volume where the prior dose is at least 50 % of the prior prescription and the
  current dose at least 50 % of the current prescription (the consensus fixes no isodose; a
  protocol sets another with ``prior_radiation.overlap_isodose_pct``; the level used is stated
  in the finding): :mod:`rtqa.protocol.prior_policy`. The input and the mapped prior courses
  are the dataclasses of :mod:`rtqa.protocol.prior_inputs`.
* The interval since a prior course (``min_interval_months``) is counted in calendar months, as
  a clinician counts them: it is at least N months when the prior course's last treatment date
  plus N calendar months (clamped to the last day of a shorter month: 30 Sep + 5 months =
  29 Feb in a leap year) is on or before the current course's first treatment date. Times of
  day are ignored. The value reported is the whole calendar months plus the elapsed share of
  the next one (:func:`calendar_months`).
"""

from __future__ import annotations

import calendar
import itertools
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from rtqa.courses import delivery
from rtqa.geometry.transform import invert, map_points
from rtqa.model import Case, Course, DoseGrid, Finding, Level, Note, Roi, Status, body_outline
from rtqa.prior import (
    check_registration_direction,
    map_prior_dose,
    registration_between,
)
from rtqa.protocol.model import Protocol, SourcedValue
from rtqa.protocol.plan_rules import unknown_count_reason
from rtqa.protocol.prescription import prescription_levels
from rtqa.protocol.prior_alpha_beta import MODEL, export_alpha_beta
from rtqa.protocol.prior_export import (
    cumulative_grid,
    current_eqd2,
    export_cumulative_grid,
    prior_eqd2,
)
from rtqa.protocol.prior_inputs import GROUP, MappedPrior, PriorInput, provenance
from rtqa.protocol.prior_organs import OrganEqd2, organ_findings
from rtqa.protocol.prior_policy import (
    classification,
    irradiated_overlap,
    overlap_pct,
    policy_findings,
)
from rtqa.protocol.prior_sampling import (
    BODY_LATTICE_MM,
    LATTICE_MAX_CELLS,
    grid_occupancy,
    lattice_cells,
    lattice_over,
    roi_bounds,
)
from rtqa.protocol.prior_targets import target_findings
from rtqa.protocol.schedule import schedule
from rtqa.radiobiology import high_dose_per_fraction_note

#: Days per average month (365.25 / 12): only for an interval that cannot be counted in calendar
#: months (a "prior" course that ended after the current one began).
DAYS_PER_MONTH = 365.25 / 12.0
ASSUMED = "assumed aligned (--assume-aligned)"


@dataclass(eq=False)
class PriorContext:
    """What the prior evaluation worked on, for renderers that draw it.

    ``cumulative``: the cumulative EQD2 grid (Gy, DoseType EFFECTIVE) at ``alpha_beta_gy`` on the
    current dose grid (NaN where a prior dose is unknown); ``current_eqd2_gy``: the current
    course's part of it (Gy, same grid); ``overlap_mask``: current voxels in both irradiated
    volumes (see the module docstring); ``export_path``: where it was written.
    """

    priors: list[MappedPrior]
    alpha_beta_gy: float
    alpha_beta_source: str
    cumulative: DoseGrid
    overlap_mask: np.ndarray
    current_eqd2_gy: np.ndarray
    model: str = MODEL
    export_path: str | None = None
    organ_eqd2: dict[str, dict[str, float]] = field(default_factory=dict)
    organ_dvhs: dict[str, OrganEqd2] = field(default_factory=dict)

    @property
    def prior_eqd2_gy(self) -> np.ndarray:
        """The prior courses' EQD2 summed (Gy, current dose grid, NaN where unknown)."""
        return prior_eqd2(self.priors, self.alpha_beta_gy)

    @property
    def cumulative_eqd2_gy(self) -> np.ndarray:
        """The cumulative EQD2 values (Gy): ``cumulative.dose_gy``."""
        return self.cumulative.dose_gy


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def evaluate_prior(
    inp: PriorInput, protocol: Protocol
) -> tuple[list[Finding], PriorContext | None]:
    """Findings (group ``prior``) for the prior courses of ``inp.course`` under ``protocol``,
    and the context they were computed on (``None`` when no prior course could be mapped).

    Never raises for missing input: a prior without dose, fraction count or registration is a
    ``not_evaluable`` finding naming what is missing.
    """
    pr = protocol.prior_radiation
    findings: list[Finding] = []
    if not inp.course.priors:
        findings.append(
            Finding(
                GROUP,
                "prior_radiation",
                Status.INFO,
                "no prior course found (give one with --prior DIR); prior radiation not assessed",
            )
        )
        return findings, None
    registrations = [r for c in (*inp.course.cases, *inp.course.priors) for r in c.registrations]
    current_start = _course_start(inp.course)
    mapped: list[MappedPrior] = []
    for case in inp.course.priors:
        result = _map_prior(case, inp, registrations, current_start)
        if isinstance(result, Finding):
            findings.append(result)
            if case.dose is not None:
                findings.append(_placement_finding(case))
                findings.extend(_level_finding(case))
        else:
            mapped.append(result)
    if not mapped:
        return findings, None
    assumed = any(p.assumed_aligned for p in mapped)
    out: list[Finding] = []
    for p in mapped:
        out.append(_mapping_finding(p))
        out.append(_placement_finding(p.case))
        out.extend(_level_finding(p.case))
        out.extend(_direction_findings(p, inp))
        out.extend(_interval_findings(p, pr, inp.course))
        out.extend(_lq_notes([(f"prior course '{p.label}'", p.rx_gy, p.fractions)]))
    out.extend(target_findings(inp, mapped, protocol))
    if inp.fractions is None:
        # the prior courses' own figures and the physical overlap stand; every EQD2 of the
        # current course (organs, type, cumulative grid) needs its fraction count
        out.extend(_current_fractions_unknown(inp))
        overlap_cc, _, overlap_text = irradiated_overlap(inp, mapped, overlap_pct(pr))
        out.extend(policy_findings(pr, overlap_cc, overlap_text, protocol.id))
        out.append(classification(None, [], [], _UNKNOWN_CURRENT_EQD2))
        return findings + _finish(out, assumed), None
    rx_now = max((rx for _, rx in inp.targets.values() if rx), default=None)
    out.extend(_lq_notes([("current course", rx_now, inp.fractions)]))
    ab_export, ab_export_source = export_alpha_beta(inp, protocol)
    organ_rows, concern, repeat, organ_values, organ_dvhs = organ_findings(inp, mapped, protocol)
    out.extend(organ_rows)
    overlap_cc, overlap_mask, overlap_text = irradiated_overlap(inp, mapped, overlap_pct(pr))
    out.extend(policy_findings(pr, overlap_cc, overlap_text, protocol.id))
    out.append(classification(overlap_cc, concern, repeat, overlap_text))
    current = current_eqd2(inp, ab_export)
    cumulative = cumulative_grid(inp, mapped, ab_export, ab_export_source, current)
    context = PriorContext(
        priors=mapped,
        alpha_beta_gy=ab_export,
        alpha_beta_source=ab_export_source,
        cumulative=cumulative,
        overlap_mask=overlap_mask,
        current_eqd2_gy=current,
        organ_eqd2=organ_values,
        organ_dvhs=organ_dvhs,
    )
    if inp.export_cumulative:
        out.append(export_cumulative_grid(inp, mapped, context))
    return findings + _finish(out, assumed), context


#: Information rules whose figures place a prior dose in the current frame (the judged ones are
#: withheld by :func:`rtqa.protocol.dose_trust.withhold_untrusted`).
MAPPED_INFO = (
    "target_overlap",
    "target_prior_eqd2",
    "prior_target_overlap",
    "prior_eqd2",
    "cumulative_eqd2",
    "prior_policy",
    "reirradiation_type",
)


def _finish(out: list[Finding], assumed: bool) -> list[Finding]:
    """The mapped courses' findings in the prior group, each saying so when the frames were
    assumed aligned, and the information placing a prior dose in the current frame saying so
    when a registration is in doubt."""
    doubted = [
        f.case_id or "a prior course"
        for f in out
        if f.rule == "registration_direction" and f.status is Status.NOT_EVALUABLE
    ]
    doubt = f"the registration of {', '.join(doubted)} is in doubt (registration_direction)"
    for f in out:
        if assumed and ASSUMED not in f.message:
            f.message = f"{f.message}; {ASSUMED}" if f.message else ASSUMED
        if doubted and f.status is Status.INFO and f.rule in MAPPED_INFO:
            f.message = f"{f.message}; {doubt}"
        f.group = GROUP
    return out


_UNKNOWN_CURRENT_EQD2 = "the current course's EQD2 is unknown without its fraction count"


def _current_fractions_unknown(inp: PriorInput) -> list[Finding]:
    """Not evaluable: the cumulative EQD2 of the organs (and its export) when the current
    course's fraction count is unknown; it was taken as 1 (EQD2 of the whole course dose given in
    one fraction: 49 Gy instead of 21 Gy on the sample's cord)."""
    why = inp.fractions_unknown or "the current course's fraction count is unknown"
    out = [
        Finding(
            GROUP,
            "cumulative_eqd2",
            Status.NOT_EVALUABLE,
            f"{why}: {_UNKNOWN_CURRENT_EQD2}, so no cumulative EQD2 is judged",
        )
    ]
    if inp.export_cumulative:
        out.append(
            Finding(
                GROUP,
                "export_cumulative",
                Status.NOT_EVALUABLE,
                f"cumulative EQD2 grid not written to {inp.export_cumulative}: {why}",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Mapping each prior course
# --------------------------------------------------------------------------------------------


def _map_prior(
    case: Case, inp: PriorInput, registrations: list, current_start: datetime | None
) -> MappedPrior | Finding:
    label = case.label
    if case.dose is None:
        return _not_evaluable(
            "prior_dose",
            f"prior course '{label}': no usable RT Dose; the prior dose cannot be added "
            "(cumulative dose not judged)",
            case,
        )
    fractions = case.plan.fractions_planned if case.plan is not None else None
    how = "plan"
    recorded = _recorded_fractions(case)
    if fractions and recorded not in (None, fractions):
        if not inp.prior_fractions:
            return _not_evaluable(
                "prior_fractions",
                f"prior course '{label}': its plan plans {fractions} fractions, its treatment "
                f"records show {recorded} delivered: the prior dose per fraction is uncertain "
                "(a course stopped early or continued beyond its plan, a wrong fraction count, "
                "records missing); give the fraction count of the prior dose with "
                "--prior-fractions N (EQD2 needs it)",
                case,
            )
        fractions, how = (
            inp.prior_fractions,
            (f"--prior-fractions (the plan plans {fractions}, its records show {recorded})"),
        )
    if not fractions:
        fractions, how = inp.prior_fractions, "--prior-fractions"
    if not fractions:
        return _not_evaluable(
            "prior_fractions",
            f"prior course '{label}': the fraction count is unknown "
            f"({unknown_count_reason(case.plan)}); give it with --prior-fractions N (EQD2 "
            "needs it)",
            case,
        )
    prior_frame = case.dose.frame_of_reference_uid or case.frame_of_reference_uid
    current_frame = inp.dose.frame_of_reference_uid
    matrix, note = registration_between(prior_frame, current_frame, registrations)
    assumed = False
    if matrix is None:
        if not inp.assume_aligned:
            return _not_evaluable(
                "prior_registration",
                f"prior course '{label}': {note.message} (current frame of reference "
                f"{current_frame or '(missing)'}, prior frame of reference "
                f"{prior_frame or '(missing)'}); provide the registration or state that the "
                "frames are aligned with --assume-aligned",
                case,
            )
        assumed = True
        note = Note(
            Level.WARNING,
            f"prior frame of reference {prior_frame or '(missing)'} taken as aligned with the "
            f"current frame {current_frame or '(missing)'} without a registration ({ASSUMED})",
        )
    elif np.allclose(matrix, np.eye(4), atol=1e-12):
        matrix = None
    dose, outside = map_prior_dose(case.dose, inp.dose, matrix)
    end = delivery(case).last
    interval = (current_start - end).total_seconds() / 86400.0 if current_start and end else None
    return MappedPrior(
        case=case,
        label=label,
        fractions=int(fractions),
        grid=case.dose,
        matrix=matrix,
        assumed_aligned=assumed,
        dose_gy=dose,
        outside=outside,
        rx_gy=_rx(case),
        interval_days=interval,
        mapping_note=Note(note.level, note.message + f"; fractions from the {how}"),
        rx_levels_gy=prescription_levels(case.plan),
    )


def _course_start(course: Course) -> datetime | None:
    starts = [d.first for d in (delivery(c) for c in course.cases) if d.first is not None]
    return min(starts) if starts else None


def _rx(case: Case) -> float | None:
    """The prior course's prescription (Gy): the highest of its levels."""
    levels = prescription_levels(case.plan)
    return levels[-1] if levels else None


def _mapping_finding(p: MappedPrior) -> Finding:
    """How the prior dose was mapped: INFO, or MINOR ("check the registration", as the
    direction check) when the registration used is not rigid or another one contradicts it."""
    status = Status.INFO
    text = f"prior course '{p.label}' ({_rx_text(p.rx_gy, p.fractions)}): {p.mapping_note.message}"
    if p.mapping_note.level is Level.ERROR:
        status = Status.MINOR
        text += "; check the registration: the cumulative doses rest on it"
    return Finding(GROUP, "prior_mapping", status, text, case_id=p.case.case_id)


def _placement_finding(case: Case) -> Finding:
    """Does the prior dose lie in the prior patient? The integrity check of the current dose
    (:func:`rtqa.protocol.dose_sanity.placement_finding`: high dose against the body outline)
    applied to the prior course in its own frame of reference, with the body outline of its own
    structure set, as finding ``prior_dose_placement`` naming the files compared."""
    from rtqa.protocol.dose_sanity import placement_finding

    assert case.dose is not None
    ss = case.structure_set
    body = _body(case)
    f = placement_finding(case.dose, body, case.case_id)
    files = [f"dose {', '.join(case.dose.paths) or '(no file)'}"]
    files.append(f"structure set {ss.path}" if ss is not None else "no structure set")
    f.group, f.rule = GROUP, "prior_dose_placement"
    f.message = (
        f"prior course '{case.label}' ({', '.join(files)}; in its own frame of reference): "
        f"{f.message}"
    )
    if f.status is Status.NOT_EVALUABLE:
        f.message += (
            "; nor can the prior dose mapped onto the current course, nor any prior or "
            "cumulative figure computed from it"
        )
    return f


def _level_finding(case: Case) -> list[Finding]:
    """Can the prior dose be that of its plan? The dose-level rule of the current dose
    (:func:`rtqa.protocol.dose_trust.dose_level_finding`) on the prior course, as finding
    ``prior_dose_level``; none when the prior prescription is unknown."""
    from rtqa.protocol.dose_trust import dose_level_finding

    assert case.dose is not None
    fractions = case.plan.fractions_planned if case.plan is not None else None
    f = dose_level_finding(case.dose, _rx(case), fractions, case.case_id, "this prior course")
    if f is None:
        return []
    f.group, f.rule = GROUP, "prior_dose_level"
    files = ", ".join(case.dose.paths) or "(no file)"
    f.message = f"prior course '{case.label}' (dose {files}): {f.message}"
    return [f]


#: Margin (mm) around the current body outline within which a prior outline mapped metres away
#: is compared (a lattice over both would be too large to hold).
FAR_OUTLINE_PAD_MM = 50.0


def _padded(bounds: tuple[float, ...], pad_mm: float) -> tuple[float, ...]:
    """(x0, y0, z0, x1, y1, z1) widened by ``pad_mm`` on every side."""
    return (*(v - pad_mm for v in bounds[:3]), *(v + pad_mm for v in bounds[3:]))


def _direction_findings(p: MappedPrior, inp: PriorInput) -> list[Finding]:
    """Registration direction check with the body outlines (only when a matrix is applied)."""
    if p.matrix is None or inp.body is None:
        return []
    prior_body = _body(p.case)
    if prior_body is None:
        return []
    try:
        lattice = lattice_over(prior_body, p.grid)
        prior_occ = grid_occupancy(prior_body, lattice)
        # Dice on a lattice holding the whole current outline and the prior one mapped either
        # way (a lattice over one of them would clip the other and overstate the fit)
        lo, hi = np.reshape(roi_bounds(prior_body), (2, 3))
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
        points = [np.reshape(roi_bounds(inp.body), (2, 3))]
        points += [map_points(corners, m) for m in (p.matrix, invert(p.matrix))]
        every = np.vstack(points)
        union = (*every.min(axis=0), *every.max(axis=0))
        within = ""
        if not lattice_cells(inp.dose, union, BODY_LATTICE_MM) <= LATTICE_MAX_CELLS:
            # the mapped outline lies metres away (a registration far off): compared near the
            # current outline only, where it is missing (Dice 0: a poor fit, not a refusal)
            union = _padded(roi_bounds(inp.body), FAR_OUTLINE_PAD_MM)
            within = f" (compared within {FAR_OUTLINE_PAD_MM:g} mm of the current outline: the "
            within += f"mapped prior outline reaches {float(np.abs(every).max()):.4g} mm)"
        current_lattice = lattice_over(inp.body, inp.dose, union)
        current_occ = grid_occupancy(inp.body, current_lattice)
        check = check_registration_direction(
            prior_occ, lattice, current_occ, current_lattice, p.matrix
        )
    except ValueError as exc:
        return [
            Finding(
                GROUP,
                "registration_direction",
                Status.INFO,
                f"prior course '{p.label}': registration direction not checked ({exc})",
            )
        ]
    # in doubt: where the prior dose lies in the current frame is not known, so no figure
    # placing it there is judged (rtqa.protocol.dose_trust)
    doubt = check.note.level is Level.WARNING
    status = Status.NOT_EVALUABLE if doubt else Status.INFO
    after = "; the prior dose is not placed with confidence: not judged" if doubt else ""
    return [
        Finding(
            GROUP,
            "registration_direction",
            status,
            f"prior course '{p.label}': {check.note.message} (body outlines "
            f"'{prior_body.name}' and '{inp.body.name}'){within}{after}",
            roi=inp.body.name,
            metric="Dice body",
            value=check.dice,
            unit="",
            case_id=p.case.case_id,
        )
    ]


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar ``months``, clamped to the last day of the month reached
    (31 Jan + 1 month = 28 or 29 Feb; 30 Sep + 5 months = 28 or 29 Feb)."""
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def calendar_months(end: date, start: date) -> tuple[int, int, int]:
    """The interval from ``end`` to ``start`` (``start >= end``) in calendar months, exactly:
    ``(n, days, span)``: ``n`` whole months (the most with ``add_months(end, n) <= start``), then
    ``days`` more days of the next month, which has ``span`` days (from ``add_months(end, n)``
    to ``add_months(end, n + 1)``). As a number: ``n + days / span``, which is >= N exactly when
    ``add_months(end, N) <= start`` for a whole N."""
    if start < end:
        raise ValueError(f"{start} is before {end}")
    n = (start.year - end.year) * 12 + start.month - end.month
    if add_months(end, n) > start:  # same month as start, a later day of it
        n -= 1
    anchor = add_months(end, n)
    return n, (start - anchor).days, (add_months(end, n + 1) - anchor).days


def _months_text(n: int, days: int, span: int) -> str:
    """Months with one decimal, truncated (4.97 months is '4.9', never '5.0')."""
    return f"{n}.{10 * days // span}"


def _interval_findings(p: MappedPrior, pr, current: Course) -> list[Finding]:
    limit: SourcedValue | None = pr.min_interval_months if pr is not None else None
    if p.interval_days is None:
        status = Status.NOT_EVALUABLE if limit is not None else Status.INFO
        return [
            Finding(
                GROUP,
                "min_interval",
                status,
                f"prior course '{p.label}': the interval since it cannot be computed (no "
                "treatment records or plan dates for one of the courses)",
                case_id=p.case.case_id,
                **provenance(limit),
            )
        ]
    months = p.interval_days / DAYS_PER_MONTH
    if p.interval_days < 0:
        return [
            Finding(
                GROUP,
                "min_interval",
                Status.NOT_EVALUABLE,
                f"prior course '{p.label}' ended {-p.interval_days:.0f} days after the current "
                "course began: the dates of its records contradict its being a prior course; "
                "the interval cannot be judged",
                metric="interval",
                value=months,
                unit="months",
                case_id=p.case.case_id,
                **provenance(limit),
            )
        ]
    end, start = delivery(p.case).last, _course_start(current)
    if end is None or start is None:  # interval_days is set only when both dates are known
        raise ValueError("a prior course's interval needs both dates")
    n, days, span = calendar_months(end.date(), start.date())
    months = n + days / span
    text = (
        f"prior course '{p.label}' ended on {end:%Y-%m-%d}, {(start.date() - end.date()).days} "
        f"days ({_months_text(n, days, span)} calendar months) before the current course began "
        f"on {start:%Y-%m-%d}"
    )
    if limit is None:
        return [
            Finding(
                GROUP,
                "min_interval",
                Status.INFO,
                text,
                metric="interval",
                value=months,
                unit="months",
                case_id=p.case.case_id,
            )
        ]
    least = float(limit.value)  # type: ignore[arg-type]
    ok = months >= least
    due = (
        f"; {least:g} months after {end:%Y-%m-%d} is {add_months(end.date(), int(least)):%Y-%m-%d}"
        if least.is_integer()
        else ""
    )
    status = Status.PASS if ok else limit.severity
    unknown = schedule([r for c in current.cases for r in c.records]).unknown_dates
    if ok and unknown:  # the current course may have begun earlier than its dated records
        status = Status.NOT_EVALUABLE
        text += f"; {unknown}: the current course's start is not certain"
    return [
        Finding(
            GROUP,
            "min_interval",
            status,
            text + ("" if ok else f", less than the {least:g} months required{due}"),
            metric="interval",
            value=months,
            unit="months",
            limits={"limit": f">= {least:g}"},
            margin=months - least,
            case_id=p.case.case_id,
            **provenance(limit),
        )
    ]


def _lq_notes(courses: list[tuple[str, float | None, int]]) -> list[Finding]:
    """Where a course's prescription dose per fraction exceeds ~10 Gy (LQ doubtful);
    ``courses``: (who, prescription Gy or None, fractions)."""
    out = []
    for who, rx, n in courses:
        if rx is None or n < 1:
            continue
        text = high_dose_per_fraction_note(rx, n, label=who)
        if text:
            out.append(Finding(GROUP, "lq_validity", Status.INFO, text))
    return out


def _body(case: Case) -> Roi | None:
    """The course's body outline (:func:`rtqa.model.body_outline`), None without one."""
    ss = case.structure_set
    return body_outline(ss.rois) if ss is not None else None


def _not_evaluable(rule: str, message: str, case: Case) -> Finding:
    return Finding(GROUP, rule, Status.NOT_EVALUABLE, message, case_id=case.case_id)


def _recorded_fractions(case: Case) -> int | None:
    """Fractions of the prior plan its treatment records show delivered (None without records
    of it)."""
    from rtqa.protocol.delivery import fraction_deliveries

    if case.plan is None or not case.records:
        return None
    return len(fraction_deliveries(case.plan, case.records)) or None


def _rx_text(rx: float | None, fractions: int) -> str:
    return f"{rx:g} Gy in {fractions} fx" if rx else f"{fractions} fx, prescription unknown"
