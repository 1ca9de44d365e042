"""Prior-radiation rules: map each prior course onto the current dose grid, sum in EQD2, judge.

Conventions
-----------
* Every finding has ``group="prior"``. Doses are EQD2 in Gy (linear-quadratic model, each
  course converted voxel by voxel with its own fraction count, then summed); every cumulative
  number names the model and the α/β it was computed with, and where the α/β came from.
* Organ metrics are computed on the structure's sampling lattice (as the organ DVHs are): the
  current dose and each mapped prior dose are interpolated trilinearly at every occupied cell,
  converted to EQD2 and summed cell by cell. The part of a structure the prior dose grid does not
  cover has an unknown prior dose: it is left out of the prior and cumulative figures and
  reported, never counted as 0 Gy.
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
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from rtqa.courses import delivery
from rtqa.dvh.core import Dvh, MetricUndefined, weighted_sum
from rtqa.geometry.transform import invert, map_points, resample_dose
from rtqa.model import Case, Course, DoseGrid, Finding, Level, Note, Roi, Status, body_outline
from rtqa.prior import (
    check_registration_direction,
    effective_dose_grid,
    map_prior_dose,
    registration_between,
)
from rtqa.protocol.metrics import (
    MetricKind,
    MetricNotEvaluable,
    MetricRequest,
    evaluate,
    parse_metric,
)
from rtqa.protocol.model import Limit, Protocol, SourcedValue
from rtqa.protocol.prior_inputs import (
    DOSED_EQD2_GY,
    GROUP,
    ISODOSE_RTOL,
    UNKNOWN_TOLERANCE_CC,
    MappedPrior,
    PriorInput,
    provenance,
)
from rtqa.protocol.prior_policy import (
    classification,
    irradiated_overlap,
    overlap_pct,
    policy_findings,
)
from rtqa.protocol.schedule import schedule
from rtqa.radiobiology import LQ_DOUBTFUL_ABOVE_GY, eqd2, high_dose_per_fraction_note

MODEL = "LQ"
#: α/β (Gy) used when neither the protocol nor the command line gives one: the planning
#: convention for late-reacting normal tissue (see the protocol files' sources).
FALLBACK_ALPHA_BETA_GY = 3.0
FALLBACK_ALPHA_BETA_SOURCE = (
    "convention for late-reacting normal tissue (no alpha/beta in the protocol; set one with "
    "--alpha-beta or in prior_radiation.alpha_beta)"
)
#: Days per month when an interval is compared with a limit in months (365.25 / 12).
DAYS_PER_MONTH = 365.25 / 12.0
ASSUMED = "assumed aligned (--assume-aligned)"
_UNJUDGED_METRICS = ("Max[Gy]", "Mean[Gy]")


@dataclass(eq=False)
class PriorContext:
    """What the prior evaluation worked on, for renderers that draw it.

    ``cumulative``: the cumulative EQD2 grid (Gy, DoseType EFFECTIVE) at ``alpha_beta_gy`` on the
    current dose grid (NaN where a prior dose is unknown); ``overlap_mask``: current voxels in
    both irradiated volumes (see the module docstring); ``export_path``: where it was written.
    """

    priors: list[MappedPrior]
    alpha_beta_gy: float
    alpha_beta_source: str
    cumulative: DoseGrid
    overlap_mask: np.ndarray
    model: str = MODEL
    export_path: str | None = None
    organ_eqd2: dict[str, dict[str, float]] = field(default_factory=dict)
    organ_dvhs: dict[str, OrganEqd2] = field(default_factory=dict)


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
    rx_now = max((rx for _, rx in inp.targets.values() if rx), default=None)
    out.extend(_lq_notes([("current course", rx_now, inp.fractions)]))
    ab_export, ab_export_source = _export_alpha_beta(inp, protocol)
    out.extend(_target_findings(inp, mapped, protocol))
    organ_rows, concern, repeat, organ_values, organ_dvhs = _organ_findings(inp, mapped, protocol)
    out.extend(organ_rows)
    overlap_cc, overlap_mask, overlap_text = irradiated_overlap(inp, mapped, overlap_pct(pr))
    out.extend(policy_findings(pr, overlap_cc, overlap_text, protocol.id))
    out.append(classification(overlap_cc, concern, repeat, overlap_text))
    cumulative = _cumulative_grid(inp, mapped, ab_export, ab_export_source)
    context = PriorContext(
        priors=mapped,
        alpha_beta_gy=ab_export,
        alpha_beta_source=ab_export_source,
        cumulative=cumulative,
        overlap_mask=overlap_mask,
        organ_eqd2=organ_values,
        organ_dvhs=organ_dvhs,
    )
    if inp.export_cumulative:
        out.append(_export(inp, mapped, context))
    if assumed:
        for f in out:
            if ASSUMED not in f.message:
                f.message = f"{f.message}; {ASSUMED}" if f.message else ASSUMED
    for f in out:
        f.group = GROUP
    return findings + out, context


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
    if not fractions:
        fractions, how = inp.prior_fractions, "--prior-fractions"
    if not fractions:
        return _not_evaluable(
            "prior_fractions",
            f"prior course '{label}': the fraction count is unknown (the plan states none); "
            "give it with --prior-fractions N (EQD2 needs it)",
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
    )


def _course_start(course: Course) -> datetime | None:
    starts = [d.first for d in (delivery(c) for c in course.cases) if d.first is not None]
    return min(starts) if starts else None


def _rx(case: Case) -> float | None:
    """The prior course's prescription (Gy): the highest total the plan prescribes."""
    if case.plan is None:
        return None
    totals = [p.total_gy for p in case.plan.prescriptions if p.total_gy and p.total_gy > 0]
    return max(totals) if totals else None


def _mapping_finding(p: MappedPrior) -> Finding:
    status = Status.INFO
    text = f"prior course '{p.label}' ({_rx_text(p.rx_gy, p.fractions)}): {p.mapping_note.message}"
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


def _direction_findings(p: MappedPrior, inp: PriorInput) -> list[Finding]:
    """Registration direction check with the body outlines (only when a matrix is applied)."""
    if p.matrix is None or inp.body is None:
        return []
    prior_body = _body(p.case)
    if prior_body is None:
        return []
    try:
        lattice = _lattice_over(prior_body, p.grid)
        prior_occ = _grid_occupancy(prior_body, lattice)
        # Dice on a lattice holding the whole current outline and the prior one mapped either
        # way (a lattice over one of them would clip the other and overstate the fit)
        lo, hi = np.reshape(_bounds(prior_body), (2, 3))
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
        points = [np.reshape(_bounds(inp.body), (2, 3))]
        points += [map_points(corners, m) for m in (p.matrix, invert(p.matrix))]
        every = np.vstack(points)
        union = (*every.min(axis=0), *every.max(axis=0))
        current_lattice = _lattice_over(inp.body, inp.dose, union)
        current_occ = _grid_occupancy(inp.body, current_lattice)
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
    status = Status.MINOR if check.note.level is Level.WARNING else Status.INFO
    return [
        Finding(
            GROUP,
            "registration_direction",
            status,
            f"prior course '{p.label}': {check.note.message} (body outlines "
            f"'{prior_body.name}' and '{inp.body.name}')",
            roi=inp.body.name,
            metric="Dice body",
            value=check.dice,
            unit="",
            case_id=p.case.case_id,
        )
    ]


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
    text = (
        f"prior course '{p.label}' ended {p.interval_days:.0f} days ({months:.1f} months) before "
        "the current course began"
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
            text + ("" if ok else f", less than the {least:g} months required"),
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


# --------------------------------------------------------------------------------------------
# Sampling structures
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Samples:
    """A structure's occupied lattice cells: volumes (cc), current physical dose (Gy) with its
    spread across each cell (Gy, as the DVH engine samples it), and each prior's physical dose
    (Gy, NaN where unknown); ``outside_cc``: beyond the current grid."""

    volumes_cc: np.ndarray
    current_gy: np.ndarray
    priors_gy: list[np.ndarray]
    outside_cc: float
    current_spread_gy: np.ndarray | None = None


def _cell_grid(occ) -> DoseGrid:
    """The cell centres of an occupancy's box as a (dose-less) grid to resample onto."""
    x, y, z = occ.centres()
    return DoseGrid(
        dose_gy=np.zeros(occ.values.shape),
        x_mm=np.asarray(x, dtype=float),
        y_mm=np.asarray(y, dtype=float),
        z_mm=np.asarray(z, dtype=float),
        frame_of_reference_uid=None,
    )


def _sample(roi: Roi, inp: PriorInput, priors: list[MappedPrior], **options) -> tuple:
    """(samples, occupancy) of ``roi`` on the current dose grid's lattice."""
    from rtqa.geometry.sampling import occupancy, sample_doses

    occ = occupancy(roi, inp.dose, name=roi.name, **options)
    if occ.values.size == 0:
        empty = np.zeros(0)
        return _Samples(empty, empty, [empty for _ in priors], occ.outside_cc), occ
    current, volumes, spread = sample_doses(occ, inp.dose)
    k, j, i = np.nonzero(occ.values > 0)
    cells = _cell_grid(occ)
    prior_doses = []
    for p in priors:
        back = None if p.matrix is None else invert(p.matrix)
        at_cells, _ = resample_dose(p.grid, cells, back)
        prior_doses.append(at_cells[k, j, i])
    return _Samples(volumes, current, prior_doses, occ.outside_cc, spread), occ


@dataclass(frozen=True)
class OrganEqd2:
    """EQD2 DVHs of one organ: current course, all prior courses (undiscounted), cumulative
    (after any recovery discount); ``unknown_prior_cc``: volume without a prior dose."""

    current: Dvh
    prior: Dvh | None
    cumulative: Dvh | None
    unknown_prior_cc: float
    max_physical: list[tuple[str, float, int]]  # (course, organ max Gy, fractions)


def _organ_eqd2(
    s: _Samples, inp: PriorInput, priors: list[MappedPrior], ab: float, recovery: float
) -> OrganEqd2:
    current = np.asarray(eqd2(s.current_gy, inp.fractions, ab), dtype=float)
    spread = None
    if s.current_spread_gy is not None:
        # the current dose's spread within a cell, carried through the local slope of EQD2
        slope = (2.0 * np.clip(s.current_gy, 0.0, None) / inp.fractions + ab) / (2.0 + ab)
        spread = slope * np.asarray(s.current_spread_gy, dtype=float)
    prior_sum = np.zeros_like(current)
    for p, dose in zip(priors, s.priors_gy, strict=True):
        prior_sum = prior_sum + np.asarray(eqd2(dose, p.fractions, ab), dtype=float)
    known = ~np.isnan(prior_sum)
    unknown_prior = float(s.volumes_cc[~known].sum())
    cur_dvh = Dvh.from_samples(current, s.volumes_cc, s.outside_cc, spreads_gy=spread)
    if np.any(known):
        lost = s.outside_cc + unknown_prior
        prior_dvh = Dvh.from_samples(prior_sum[known], s.volumes_cc[known], lost)
        cum = current[known] + (1.0 - recovery) * prior_sum[known]
        cum_spread = None if spread is None else spread[known]
        cum_dvh = Dvh.from_samples(cum, s.volumes_cc[known], lost, spreads_gy=cum_spread)
    else:
        prior_dvh = cum_dvh = None
    maxima = [("current course", _nanmax(s.current_gy), inp.fractions)]
    maxima += [
        (f"prior course '{p.label}'", _nanmax(d), p.fractions)
        for p, d in zip(priors, s.priors_gy, strict=True)
    ]
    return OrganEqd2(cur_dvh, prior_dvh, cum_dvh, unknown_prior, maxima)


def _nanmax(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else 0.0


#: Coarsest useful spacing (mm) for a body outline compared by Dice; finer grids are not needed.
BODY_LATTICE_MM = 3.0


def _bounds(roi: Roi) -> tuple[float, ...]:
    """(x0, y0, z0, x1, y1, z1) of ``roi``'s slab model, mm (ValueError without volume)."""
    from rtqa.geometry.slabs import slab_stack

    return slab_stack(roi).bounds_mm


def _lattice_over(roi: Roi, grid: DoseGrid, bounds: tuple[float, ...] | None = None) -> DoseGrid:
    """An empty lattice in ``grid``'s frame covering ``roi``'s contours (or ``bounds``, mm) with
    one voxel to spare, spaced as ``grid`` but no finer than :data:`BODY_LATTICE_MM`: a body
    outline rasterised on it is whole however far the dose grid reaches (ValueError for an ROI
    without volume)."""
    x0, y0, z0, x1, y1, z1 = bounds if bounds is not None else _bounds(roi)
    axes = []
    for lo, hi, ref in ((x0, x1, grid.x_mm), (y0, y1, grid.y_mm), (z0, z1, grid.z_mm)):
        step = float(np.median(np.abs(np.diff(ref)))) if ref.size > 1 else BODY_LATTICE_MM
        step = max(step, BODY_LATTICE_MM)
        n = math.ceil((hi - lo) / step) + 3
        axes.append(lo - step + step * np.arange(n))
    x, y, z = axes
    return DoseGrid(
        dose_gy=np.zeros((z.size, y.size, x.size)),
        x_mm=x,
        y_mm=y,
        z_mm=z,
        frame_of_reference_uid=grid.frame_of_reference_uid,
    )


def _grid_occupancy(roi: Roi, grid: DoseGrid) -> np.ndarray:
    """Fraction of each voxel of ``grid`` inside ``roi`` (array of the grid's shape)."""
    from rtqa.geometry.sampling import occupancy

    occ = occupancy(roi, grid, factors=(1, 1, 1))
    out = np.zeros(grid.dose_gy.shape, dtype=float)
    if occ.values.size:
        k0, j0, i0 = occ.offset
        nz, ny, nx = occ.values.shape
        out[k0 : k0 + nz, j0 : j0 + ny, i0 : i0 + nx] = occ.values
    return out


# --------------------------------------------------------------------------------------------
# α/β and recovery
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AlphaBeta:
    value: float
    source: str
    confidence: str | None

    @property
    def text(self) -> str:
        return f"{MODEL}, alpha/beta {self.value:g} Gy ({self.source})"


def _alpha_beta(organ_name: str, inp: PriorInput, protocol: Protocol) -> _AlphaBeta:
    """The organ's α/β: the organ's own entry, else prior_radiation.alpha_beta (organ, then
    ``default``), else ``--alpha-beta``, else the late-tissue convention (3 Gy), saying which."""
    sv = None
    try:
        sv = protocol.organ(organ_name).alpha_beta
    except KeyError:
        sv = None
    where = "protocol organ alpha_beta"
    pr = protocol.prior_radiation
    if sv is None and pr is not None:
        sv = pr.alpha_beta.get(organ_name)
        where = f"prior_radiation.alpha_beta.{organ_name}"
        if sv is None:
            sv = pr.alpha_beta.get("default")
            where = "prior_radiation.alpha_beta.default"
    if sv is not None:
        source = str(sv.source) if sv.source is not None else where
        conf = sv.confidence.value if sv.confidence is not None else None
        return _AlphaBeta(float(sv.value), source, conf)  # type: ignore[arg-type]
    if inp.alpha_beta is not None:
        return _AlphaBeta(float(inp.alpha_beta), "--alpha-beta", None)
    return _AlphaBeta(FALLBACK_ALPHA_BETA_GY, FALLBACK_ALPHA_BETA_SOURCE, None)


def _recovery(organ_name: str, protocol: Protocol) -> tuple[float, str]:
    """Recovery factor r for the organ (0 unless the protocol names one) and its description."""
    pr = protocol.prior_radiation
    sv = pr.recovery.get(organ_name) if pr is not None else None
    if sv is None:
        return 0.0, ""
    r = float(sv.value)  # type: ignore[arg-type]
    src = str(sv.source) if sv.source is not None else "protocol prior_radiation.recovery"
    return r, f"prior EQD2 discounted by {100 * r:g} % recovery ({src})"


def _export_alpha_beta(inp: PriorInput, protocol: Protocol) -> tuple[float, str]:
    """α/β of the cumulative grid: ``--alpha-beta``, else that of the first organ the protocol
    judges cumulatively, else the protocol's default, else the late-tissue convention."""
    if inp.alpha_beta is not None:
        return float(inp.alpha_beta), "--alpha-beta"
    pr = protocol.prior_radiation
    if pr is not None:
        for organ in pr.cumulative_eqd2:
            ab = _alpha_beta(organ, inp, protocol)
            return ab.value, f"alpha/beta of {organ}: {ab.source}"
        if "default" in pr.alpha_beta:
            sv = pr.alpha_beta["default"]
            return float(sv.value), f"protocol default: {sv.source}"  # type: ignore[arg-type]
    return FALLBACK_ALPHA_BETA_GY, FALLBACK_ALPHA_BETA_SOURCE


# --------------------------------------------------------------------------------------------
# Organs
# --------------------------------------------------------------------------------------------


def _organ_findings(inp: PriorInput, priors: list[MappedPrior], protocol: Protocol):
    """Prior, current and cumulative EQD2 per organ, judged where the protocol sets limits.

    Returns (findings, organs with a cumulative-dose concern, organs dosed by both, values)."""
    pr = protocol.prior_radiation
    out: list[Finding] = []
    concern: list[str] = []
    repeat: list[str] = []
    values: dict[str, dict[str, float]] = {}
    dvhs: dict[str, OrganEqd2] = {}
    for name, roi in inp.organs.items():
        if roi is None or roi.is_empty or roi.interpreted_type.upper() == "EXTERNAL":
            continue
        if inp.body is not None and roi is inp.body:
            continue
        sections = {
            s: (getattr(pr, s).get(name, ()) if pr is not None else ())
            for s in ("cumulative_eqd2", "course_eqd2", "course_share")
        }
        judged = any(sections.values())
        ab = _alpha_beta(name, inp, protocol)
        recovery, recovery_text = _recovery(name, protocol)
        try:
            samples, _ = _sample(roi, inp, priors)
            if samples.volumes_cc.size == 0:
                raise ValueError("it lies outside the current dose grid")
            res = _organ_eqd2(samples, inp, priors, ab.value, recovery)
        except ValueError as exc:
            out.append(
                _organ_not_evaluable(name, roi, f"EQD2 could not be computed: {exc}", judged)
            )
            continue
        dvhs[name] = res
        context = _organ_context(res, ab, recovery_text, roi)
        out.append(
            Finding(
                GROUP,
                "alpha_beta",
                Status.INFO,
                f"{name}: EQD2 with {ab.text}",
                roi=roi.name,
                match=name,
                metric="alpha/beta",
                value=ab.value,
                unit="Gy",
                source=ab.source,
                confidence=ab.confidence,
            )
        )
        metrics = _metrics(sections) if judged else [parse_metric(m) for m in _UNJUDGED_METRICS]
        for request in metrics:
            trio = _trio(request, res)
            values[f"{name} {request.canonical}"] = {
                k: v
                for k, v in zip(("prior", "current", "cumulative"), trio, strict=True)
                if v is not None
            }
            out.extend(_organ_rows(name, roi, request, trio, sections, context, res, ab.value))
        prior_max = res.prior.max_gy if res.prior is not None else 0.0
        if prior_max >= DOSED_EQD2_GY and res.current.max_gy >= DOSED_EQD2_GY:
            (concern if judged else repeat).append(name)
    return out, concern, repeat, values, dvhs


def _metrics(sections: dict[str, tuple[Limit, ...]]) -> list[MetricRequest]:
    seen: dict[str, MetricRequest] = {}
    for limits in sections.values():
        for lim in limits:
            seen.setdefault(lim.metric.canonical, lim.metric)
    return list(seen.values())


def _trio(request: MetricRequest, res: OrganEqd2) -> tuple[float | None, ...]:
    return tuple(_value(request, d) for d in (res.prior, res.current, res.cumulative))


def _value(request: MetricRequest, dvh: Dvh | None) -> float | None:
    if dvh is None:
        return None
    try:
        return evaluate(request, dvh)
    except (MetricNotEvaluable, MetricUndefined, ValueError):
        return None


def _organ_context(res: OrganEqd2, ab: _AlphaBeta, recovery_text: str, roi: Roi) -> str:
    parts = [f"EQD2 {ab.text}, each course voxel-wise with its own fraction count, summed"]
    if recovery_text:
        parts.append(recovery_text)
    if res.unknown_prior_cc > UNKNOWN_TOLERANCE_CC:
        parts.append(
            f"{res.unknown_prior_cc:.3g} cc of '{roi.name}' lies outside the prior dose grid "
            "(prior dose unknown there; prior and cumulative figures cover the rest)"
        )
    for who, max_gy, n in res.max_physical:
        if n >= 1 and max_gy / n > LQ_DOUBTFUL_ABOVE_GY:
            parts.append(high_dose_per_fraction_note(max_gy, n, label=f"{roi.name}, {who}") or "")
    return "; ".join(p for p in parts if p)


def _fmt(v: float | None) -> str:
    return "unknown" if v is None else f"{v:.2f} Gy"


_TAGS = {"prior": "EQD2pri", "now": "EQD2now", "cum": "EQD2cum", "ratio": "now/cum"}


def _label(request: MetricRequest, ab: float, tag: str) -> str:
    """Short metric label for a table, e.g. ``EQD2cum Max`` (cumulative EQD2, point maximum);
    the α/β is in the message and in the organ's ``alpha_beta`` row."""
    return f"{_TAGS[tag]} {request.canonical.split('[')[0]}"


def _organ_rows(name, roi, request, trio, sections, context, res, ab: float) -> list[Finding]:
    prior, current, cumulative = trio
    metric = request.canonical
    side = (
        f"{name} {metric} EQD2: prior {_fmt(prior)}, current {_fmt(current)}, cumulative "
        f"{_fmt(cumulative)}"
    )
    message = f"{side} ({context})"
    base = {"roi": roi.name, "match": name}
    if request.unit not in ("Gy", "cGy", "cc", "%") or request.needs_rx:
        return [_organ_not_evaluable(name, roi, f"{metric}: not an EQD2 dose metric", True)]

    def shown(rule: str, which: str, value: float | None) -> Finding:
        """An unjudged row showing one course's value."""
        return Finding(
            GROUP,
            rule,
            Status.INFO,
            message,
            metric=_label(request, ab, which),
            value=value,
            unit=request.unit,
            **base,
        )

    rows = [shown("prior_eqd2", "prior", prior)]
    limits = {s: [lim for lim in sections[s] if lim.metric.canonical == metric] for s in sections}

    if not any(limits.values()):
        rows.append(shown("current_eqd2", "now", current))
        rows.append(shown("cumulative_eqd2", "cum", cumulative))
        return rows
    for lim in limits["course_eqd2"]:
        rows.append(
            _judge(
                "course_eqd2", _label(request, ab, "now"), current, request.unit, lim, message, base
            )
        )
    if not limits["course_eqd2"]:
        rows.append(shown("current_eqd2", "now", current))
    for lim in limits["cumulative_eqd2"]:
        rows.append(
            _judge(
                "cumulative_eqd2",
                _label(request, ab, "cum"),
                cumulative,
                request.unit,
                lim,
                message,
                base,
                unknown_cc=res.unknown_prior_cc,
                grows=_grows_with_the_organ(request),
            )
        )
    for lim in limits["course_share"]:
        share = current / cumulative if current is not None and cumulative else None
        share_msg = (
            f"{side}; current / cumulative = {share:.3f} ({context})"
            if share is not None
            else message
        )
        rows.append(
            _judge(
                "course_share",
                _label(request, ab, "ratio"),
                share,
                "",
                lim,
                share_msg,
                base,
                unknown_cc=res.unknown_prior_cc,
            )
        )
    return rows


def _grows_with_the_organ(request: MetricRequest) -> bool:
    """True when the metric can only grow as the part of the organ without prior dose is added
    back (every voxel adds volume at a cumulative dose >= 0): the maximum, the dose to an
    absolute volume (cc) and the volume (cc) above a dose. Then a value above an upper limit
    over the part with prior dose is above it for the whole organ; means, medians and shares
    of the organ can move either way."""
    if request.kind is MetricKind.MAX:
        return True
    if request.kind is MetricKind.DOSE_AT_VOLUME:
        return request.query_unit == "cc"
    return request.kind is MetricKind.VOLUME_AT_DOSE and request.unit == "cc"


def _judge(
    rule, metric, value, unit, lim: Limit, message, base, unknown_cc=0.0, grows=False
) -> Finding:
    """A prior-group finding judging ``value`` against ``lim``. With ``unknown_cc`` of the organ
    outside the prior dose grid the value covers the rest only: a pass is not evaluable, and so
    is a deviation unless ``grows`` (see :func:`_grows_with_the_organ`) and the limit is an
    upper one."""
    prov = {"source": str(lim.source), "confidence": lim.confidence.value}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Finding(
            GROUP,
            rule,
            Status.NOT_EVALUABLE,
            f"{message}; value unknown",
            metric=metric,
            unit=unit,
            limits=lim.conditions,
            **prov,
            **base,
        )
    j = lim.judge(value)
    status = j.status
    text = message
    if lim.note:
        text += f"; limit: {lim.note}"
    if unknown_cc > UNKNOWN_TOLERANCE_CC and status is Status.PASS:
        status = Status.NOT_EVALUABLE
        text += (
            f"; within the limit where the prior dose is known, but {unknown_cc:.3g} cc of the "
            "organ has no prior dose (outside the prior grid)"
        )
    elif unknown_cc > UNKNOWN_TOLERANCE_CC and not (grows and lim.bands.per_protocol.upper):
        status = Status.NOT_EVALUABLE
        text += (
            f"; beyond the limit where the prior dose is known, but {unknown_cc:.3g} cc of the "
            "organ has no prior dose (outside the prior grid) and this figure for the whole "
            "organ could lie on either side of the limit"
        )
    return Finding(
        GROUP,
        rule,
        status,
        text,
        metric=metric,
        value=value,
        unit=unit,
        limits=lim.conditions,
        margin=j.margin,
        **prov,
        **base,
    )


def _organ_not_evaluable(name: str, roi: Roi, why: str, judged: bool) -> Finding:
    return Finding(
        GROUP,
        "cumulative_eqd2",
        Status.NOT_EVALUABLE if judged else Status.INFO,
        f"{name}: {why}",
        roi=roi.name,
        match=name,
    )


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def _target_findings(inp: PriorInput, priors: list[MappedPrior], protocol: Protocol):
    out: list[Finding] = []
    for name, (roi, _rx_now) in inp.targets.items():
        if roi is None or roi.is_empty:
            continue
        try:
            samples, occ = _sample(roi, inp, priors)
        except ValueError as exc:
            out.append(
                Finding(
                    GROUP,
                    "target_overlap",
                    Status.INFO,
                    f"target '{name}': prior dose not sampled ({exc})",
                    roi=name,
                )
            )
            continue
        ab = _alpha_beta(name, inp, protocol)
        total = float(samples.volumes_cc.sum()) + samples.outside_cc
        for p, dose in zip(priors, samples.priors_gy, strict=True):
            out.extend(_target_rows(name, p, dose, samples, total, ab))
            out.extend(_prior_target_overlap(name, roi, occ, p))
    return out


def _target_rows(name, p: MappedPrior, dose, s: _Samples, total_cc: float, ab: _AlphaBeta):
    known = ~np.isnan(dose)
    unknown = float(s.volumes_cc[~known].sum()) + s.outside_cc
    rows: list[Finding] = []
    where = f"prior course '{p.label}'"
    tail = ""
    if unknown > UNKNOWN_TOLERANCE_CC:
        tail = f"; {unknown:.3g} cc of the target has no prior dose (outside the prior grid)"
    levels: list[tuple[str, float]] = []
    if p.rx_gy:
        levels = [
            (f"prior Rx isodose {p.rx_gy:g} Gy", p.rx_gy),
            (f"50 % prior Rx isodose {0.5 * p.rx_gy:g} Gy", 0.5 * p.rx_gy),
        ]
    for what, level in levels:
        vol = float(s.volumes_cc[known & (dose >= level * (1.0 - ISODOSE_RTOL))].sum())
        pct = 100.0 * vol / total_cc if total_cc > 0 else 0.0
        rows.append(
            Finding(
                GROUP,
                "target_overlap",
                Status.INFO,
                f"target '{name}': {vol:.3g} cc ({pct:.1f} %) receives at least the {what} of "
                f"{where}{tail}",
                roi=name,
                metric=f"V{level:g}Gy prior",
                value=vol,
                unit="cc",
                case_id=p.case.case_id,
            )
        )
    if np.any(known):
        eq = np.asarray(eqd2(dose[known], p.fractions, ab.value), dtype=float)
        vols = s.volumes_cc[known]
        mx, mean = float(eq.max()), weighted_sum(eq, vols) / float(vols.sum())
        rows.append(
            Finding(
                GROUP,
                "target_prior_eqd2",
                Status.INFO,
                f"target '{name}': prior EQD2 max {mx:.2f} Gy, mean {mean:.2f} Gy from {where} "
                f"({ab.text}){tail}",
                roi=name,
                metric="EQD2pri Max",
                value=mx,
                unit="Gy",
                case_id=p.case.case_id,
            )
        )
    elif not levels:
        rows.append(
            Finding(
                GROUP,
                "target_overlap",
                Status.INFO,
                f"target '{name}': no prior dose known inside it{tail}",
                roi=name,
            )
        )
    return rows


def _prior_targets(case: Case) -> list[Roi]:
    if case.structure_set is None:
        return []
    return [
        r
        for r in case.structure_set.rois
        if r.interpreted_type.upper() in ("PTV", "CTV", "GTV", "ITV") and not r.is_empty
    ]


def _prior_target_overlap(name: str, roi: Roi, occ, p: MappedPrior) -> list[Finding]:
    """Overlap of each mapped prior PTV (else any prior target) with the current target."""
    targets = _prior_targets(p.case)
    ptvs = [r for r in targets if r.interpreted_type.upper() == "PTV"]
    rows = []
    for prior_roi in ptvs or targets:
        try:
            ov = mapped_overlap(prior_roi, p.grid, p.matrix, occ)
        except ValueError as exc:
            rows.append(
                Finding(
                    GROUP,
                    "target_overlap",
                    Status.INFO,
                    f"prior target '{prior_roi.name}' not mapped: {exc}",
                    roi=name,
                )
            )
            continue
        rows.append(
            Finding(
                GROUP,
                "prior_target_overlap",
                Status.INFO,
                f"prior target '{prior_roi.name}' of '{p.label}' mapped onto the current frame "
                f"overlaps target '{name}' by {ov.overlap_cc:.3g} cc (Dice {ov.dice:.3f}; "
                f"volumes {ov.volume_a_cc:.3g} cc prior, {ov.volume_b_cc:.3g} cc current)",
                roi=name,
                metric="prior PTV overlap",
                value=ov.overlap_cc,
                unit="cc",
                case_id=p.case.case_id,
            )
        )
    return rows


def mapped_overlap(prior_roi: Roi, prior_grid: DoseGrid, matrix_prior_to_current, current_occ):
    """Overlap (cc, Dice) of a prior-frame structure, mapped by ``matrix_prior_to_current``
    (``None``: identity), with a current structure given by its occupancy on the current grid's
    lattice.

    The prior structure's occupancy is built on its own grid's lattice (fine sampling, padded by
    one empty cell), interpolated trilinearly at the current structure's cell centres, and the
    shared part of a cell is ``min`` of both fractions. The prior volume is its own (a rigid
    mapping keeps volumes).
    """
    from rtqa.geometry.sampling import occupancy
    from rtqa.prior import VolumeOverlap

    prior_occ = occupancy(prior_roi, prior_grid, margin_cells=1, name=prior_roi.name)
    if prior_occ.values.size == 0:
        raise ValueError(f"'{prior_roi.name}' lies outside the prior dose grid")
    x, y, z = prior_occ.centres()
    lattice = DoseGrid(
        dose_gy=np.asarray(prior_occ.values, dtype=float),
        x_mm=np.asarray(x, dtype=float),
        y_mm=np.asarray(y, dtype=float),
        z_mm=np.asarray(z, dtype=float),
        frame_of_reference_uid=None,
    )
    cells = _cell_grid(current_occ)
    back = None if matrix_prior_to_current is None else invert(matrix_prior_to_current)
    mapped, outside = resample_dose(lattice, cells, back)
    mapped[outside] = 0.0
    volumes = np.asarray(current_occ.cell_volumes_mm3(), dtype=float) / 1000.0
    current = np.asarray(current_occ.values, dtype=float)
    both = float((np.minimum(np.clip(mapped, 0.0, 1.0), current) * volumes).sum())
    va, vb = prior_occ.volume_cc, current_occ.volume_cc
    dice = 2.0 * both / (va + vb) if va + vb > 0 else 0.0
    return VolumeOverlap(overlap_cc=both, volume_a_cc=va, volume_b_cc=vb, dice=dice)


# --------------------------------------------------------------------------------------------
# Cumulative grid and export
# --------------------------------------------------------------------------------------------


def _cumulative_grid(inp: PriorInput, priors: list[MappedPrior], ab: float, source: str):
    total = np.asarray(eqd2(inp.dose.dose_gy, inp.fractions, ab), dtype=float)
    for p in priors:
        total = total + np.asarray(eqd2(p.dose_gy, p.fractions, ab), dtype=float)
    courses = ", ".join(
        [f"current {inp.fractions} fx"] + [f"'{p.label}' {p.fractions} fx" for p in priors]
    )
    description = (
        f"cumulative EQD2 (Gy), {MODEL} model, alpha/beta {ab:g} Gy ({source}), no recovery "
        f"discount; courses: {courses}"
    )
    return effective_dose_grid(inp.dose, total, description)


def _export(inp: PriorInput, priors: list[MappedPrior], ctx: PriorContext) -> Finding:
    from rtqa.dicom.write.cumulative import write_cumulative_eqd2

    path = str(inp.export_cumulative)
    try:
        unknown = write_cumulative_eqd2(
            ctx.cumulative,
            path,
            current_dose=inp.dose,
            current_eqd2_gy=np.asarray(
                eqd2(inp.dose.dose_gy, inp.fractions, ctx.alpha_beta_gy), dtype=float
            ),
            alpha_beta_gy=ctx.alpha_beta_gy,
            course=inp.course,
        )
    except (OSError, ValueError) as exc:
        return Finding(
            GROUP,
            "export_cumulative",
            Status.NOT_EVALUABLE,
            f"cumulative EQD2 not written to {path}: {exc}",
        )
    ctx.export_path = path
    text = (
        f"cumulative EQD2 grid written to {path} (RT Dose, EFFECTIVE, MULTI_PLAN, "
        f"{ctx.cumulative.scaling_note})"
    )
    if unknown:
        text += (
            f"; in {unknown} voxel(s) a prior dose is unknown (outside its grid): the file holds "
            "the current course's EQD2 alone there"
        )
    return Finding(GROUP, "export_cumulative", Status.INFO, text)


# --------------------------------------------------------------------------------------------


def _not_evaluable(rule: str, message: str, case: Case) -> Finding:
    return Finding(GROUP, rule, Status.NOT_EVALUABLE, message, case_id=case.case_id)


def _rx_text(rx: float | None, fractions: int) -> str:
    return f"{rx:g} Gy in {fractions} fx" if rx else f"{fractions} fx, prescription unknown"
