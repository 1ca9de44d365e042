"""The ``rtqa check`` pipeline: scan -> courses (:func:`rtqa.courses.group_courses`) -> evaluate
each course against the protocol -> :class:`~rtqa.model.CheckResult`.

Exit code of one course (``--fail-on minor|major``): 1 when a deviation at or above ``fail_on``
exists; else 4 when something required is not evaluable; else 0; 3 when nothing of the course
could be evaluated (no structure set or dose could be read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rtqa.errors import (
    EXIT_DEVIATION,
    EXIT_NOT_EVALUABLE,
    EXIT_OK,
    EXIT_UNREADABLE,
    InputError,
    UsageError,
)
from rtqa.model import (
    Case,
    CheckResult,
    Course,
    Finding,
    Level,
    Note,
    PlanSummary,
    Status,
    worst_status,
)

FAIL_ON = ("minor", "major")
#: Completion window (days) used to group courses when the protocol sets none.
DEFAULT_WINDOW_DAYS = 21


@dataclass
class CheckOptions:
    """Settings of one ``rtqa check`` run (see the command's help for each)."""

    protocol: str | None = None  # id / file stem / path; None -> default (NRG-BR002)
    fail_on: str = "minor"  # minor | major
    site: str | None = None
    rx: dict[str, float] = field(default_factory=dict)  # --rx ROI=GY
    mapping: dict[str, Any] = field(default_factory=dict)  # --map ProtocolName=ROI
    separate: bool = False
    current_label: str | None = None
    priors: list[str] = field(default_factory=list)  # --prior DIR (repeatable)
    prior_fractions: int | None = None
    assume_aligned: bool = False
    export_cumulative: str | None = None
    alpha_beta: float | None = None
    keep_context: bool = False  # keep CheckResult.context for HTML

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise UsageError(f"--fail-on {self.fail_on!r}: choose minor or major")
        if self.alpha_beta is not None and not self.alpha_beta > 0:
            raise UsageError(f"--alpha-beta {self.alpha_beta}: must be > 0 Gy")
        if self.prior_fractions is not None and self.prior_fractions < 1:
            raise UsageError(f"--prior-fractions {self.prior_fractions}: must be >= 1")


def load_protocol_for(options: CheckOptions):
    """The protocol to use and whether it is the default one."""
    from rtqa.protocol.loader import load_protocol

    return load_protocol(options.protocol), options.protocol is None


def _window(protocol) -> int:
    sv = protocol.fractionation.complete_within_days
    return int(sv.value) if sv is not None else DEFAULT_WINDOW_DAYS


def _scan(paths: list[str]):
    from rtqa.dicom.scan import scan

    result = scan(paths)
    if not result.cases:
        reasons = "; ".join(str(n) for n in result.notes[:5]) or "no DICOM files"
        shown = ", ".join(paths)
        raise InputError(f"nothing readable as DICOM-RT in {shown}: {reasons}")
    return result


def _courses(paths: list[str], options: CheckOptions, protocol) -> tuple[list[Course], Any]:
    from rtqa.courses import group_courses

    scanned = _scan(paths)
    courses = group_courses(
        scanned.cases,
        _window(protocol),
        current_label=options.current_label,
        separate=options.separate,
    )
    if options.priors:
        extra = _scan(list(options.priors)).cases
        said = ", ".join(f"'{c.label}'" for c in extra)
        courses = [
            dataclasses.replace(
                c,
                priors=tuple(c.priors) + tuple(extra),
                reason=f"{c.reason}; prior from --prior: {said}",
            )
            for c in courses
        ]
    return courses, scanned


def _course_files(course: Course) -> list[str]:
    files: list[str] = []
    for case in (*course.cases, *course.priors):
        files.extend(p for p in case.input_paths if p not in files)
    return files


def plan_courses(paths: list[str], options: CheckOptions) -> list[tuple[str, list[str]]]:
    """(course id, every input file of the course including its priors) for each course."""
    protocol, _ = load_protocol_for(options)
    courses, _ = _courses(paths, options, protocol)
    return [(c.course_id, _course_files(c)) for c in courses]


def run_check(
    paths: list[str],
    options: CheckOptions,
    select: Callable[[list[Course]], list[Course]] | None = None,
) -> list[CheckResult]:
    """Judge every course found under ``paths`` (those ``select`` picks from them, when given:
    a batch task judges only its planned course)."""
    protocol, default = load_protocol_for(options)
    courses, scanned = _courses(paths, options, protocol)
    _check_rx_rois(courses, options)
    if select is not None:
        courses = select(courses)
    return [check_course(c, protocol, options, default, scanned.notes) for c in courses]


def _check_rx_rois(courses: list[Course], options: CheckOptions) -> None:
    """UsageError for an ``--rx ROI=GY`` whose ROI no structure set of the plans holds (exact
    name, or ``'name #number'`` for an ROI sharing its name), naming the target ROIs there are.
    Not raised when a plan's structure set could not be read: the ROI may be in it (the
    course's notes then say the ``--rx`` was not used)."""
    if not options.rx:
        return
    from rtqa.protocol.matching import shared_name
    from rtqa.protocol.model import TARGET_TYPES

    cases = [case for course in courses for case in course.cases]
    if any(case.structure_set is None for case in cases):
        return
    rois = [roi for case in cases for roi in case.structure_set.rois]  # type: ignore[union-attr]
    names = {roi.name for roi in rois}
    missing = [key for key in options.rx if key not in names and shared_name(key) not in names]
    if not missing:
        return
    targets = [r.name for r in rois if r.interpreted_type.upper() in TARGET_TYPES]
    targets = list(dict.fromkeys(targets))
    kinds = "/".join(TARGET_TYPES)
    if targets:
        present = f"target ROIs ({kinds}) present: " + ", ".join(f"'{n}'" for n in targets)
    else:
        shown = [f"'{n}'" for n in dict.fromkeys(r.name for r in rois)]
        if len(shown) > 20:
            shown = [*shown[:20], f"... ({len(shown)} in all)"]
        present = f"no ROI is typed {kinds}; ROIs present: " + (", ".join(shown) or "none")
    given = "; ".join(f"--rx {key}={options.rx[key]:g}" for key in missing)
    s = "s" if len(missing) > 1 else ""
    raise UsageError(f"{given}: no structure set has ROI{s} of that name; {present}")


def _rx_notes(options: CheckOptions, findings: list[Finding], several: bool = False) -> list[Note]:
    """Warnings for each ``--rx ROI=GY`` the evaluation did not use: the ROI is not judged as
    a target, or the plan's dose reference or the ROI name gives it another prescription
    (those take precedence over ``--rx``). Read from the rule ``prescription`` findings, one per
    judged target, whose source says where its Rx came from; ``several``: the course has several
    plans (each note then names its case)."""
    from rtqa.protocol.matching import shared_name

    rx_findings = [f for f in findings if f.rule == "prescription" and f.roi]
    out = []
    for key, gy in options.rx.items():
        given = f"--rx {key}={gy:g} Gy not used"
        mine = [f for f in rx_findings if key in (f.roi, shared_name(f.roi or ""))]
        if not mine:
            judged = ", ".join(dict.fromkeys(f"'{f.roi}'" for f in rx_findings)) or "none"
            out.append(
                Note(
                    Level.WARNING,
                    f"{given}: ROI '{key}' is not judged as a target of the protocol (targets "
                    f"judged: {judged})",
                )
            )
            continue
        for f in mine:
            if f.value is None or f.source == "plan (--rx)" or abs(f.value - gy) <= 1e-6:
                continue
            where = f" for '{f.roi}'" if f.roi != key else ""
            if f.source == "plan (ROI name)":
                why = f"the ROI name gives {f.value:g} Gy{where}, which takes precedence"
            else:
                origin = (f.source or "plan").removeprefix("plan (").removesuffix(")")
                why = f"the plan prescribes {f.value:g} Gy{where} ({origin})"
            case = f" (case {f.case_id})" if several and f.case_id else ""
            out.append(Note(Level.WARNING, f"{given}: {why}{case}"))
    return out


def exit_code(findings: list[Finding], fail_on: str = "minor") -> int:
    """1 for a deviation at or above ``fail_on``; else 4 if something is not evaluable; else 0."""
    threshold = Status.MINOR if fail_on == "minor" else Status.MAJOR
    statuses = {Status(f.status) for f in findings}
    if any(s.rank >= threshold.rank for s in statuses if s is not Status.INFO):
        return EXIT_DEVIATION
    if Status.NOT_EVALUABLE in statuses:
        return EXIT_NOT_EVALUABLE
    return EXIT_OK


def _input_errors(notes: list[Note]) -> list[Finding]:
    """A ``not_evaluable`` integrity finding when the course's input holds errors (notes of
    level error: an unreadable file, contours that cannot be attributed, a malformed element):
    what was judged stands, but a course whose input is in error is never a plain pass.
    Conflicting copies of one SOP instance have their own finding (:func:`_conflicting_copies`)."""
    from rtqa.dicom.scan import CONFLICT_ATTRIBUTE

    errors = [n for n in notes if n.level is Level.ERROR and n.attribute != CONFLICT_ATTRIBUTE]
    if not errors:
        return []
    first = errors[0]
    where = f"{os.path.basename(first.path)}: " if first.path else ""
    more = f" (and {len(errors) - 1} more, see the notes)" if len(errors) > 1 else ""
    return [
        Finding(
            "integrity",
            "input_errors",
            Status.NOT_EVALUABLE,
            f"{len(errors)} error(s) in the input: {where}{first.message}{more}; what they "
            "touch may be missing from the judgement",
        )
    ]


def _unreadable(course: Course, scan_notes: list[Note]) -> bool:
    """True when the course cannot be judged because input could not be read: no case has both
    structures and dose, or a case lacks a part while a file beside it was unreadable."""
    if not any(c.structure_set is not None and c.dose is not None for c in course.cases):
        return True
    incomplete = [c for c in course.cases if not c.is_complete]
    if not incomplete:
        return False
    folders = {os.path.dirname(p) for c in incomplete for p in c.input_paths}
    return any(
        n.level is Level.ERROR and n.path and os.path.dirname(n.path) in folders for n in scan_notes
    )


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_course(
    course: Course,
    protocol,
    options: CheckOptions,
    default_protocol: bool = False,
    scan_notes: list[Note] | None = None,
) -> CheckResult:
    """Evaluate one course and fill its :class:`CheckResult`."""
    from rtqa import __version__
    from rtqa.protocol.dose_trust import withhold_untrusted
    from rtqa.protocol.evaluate import evaluate_course

    ev = evaluate_course(course, protocol, options)
    findings = withhold_untrusted([*ev.findings, *_prior(course, protocol, options, ev)])
    findings += _conflicting_copies(course, scan_notes or [])
    for f in findings:
        if f.case_id is None and len(course.cases) == 1:
            f.case_id = course.cases[0].case_id
    notes: list[Note] = list(scan_notes or [])
    for case in (*course.cases, *course.priors):
        notes.extend(case.notes)
        if case.plan is not None:
            notes.extend(case.plan.notes)
        if case.dose is not None:
            notes.extend(case.dose.notes)
    notes.extend(ev.notes)
    notes.extend(_rx_notes(options, ev.findings, len(course.cases) > 1))
    notes = list(dict.fromkeys(notes))
    findings += _input_errors(notes)
    verdict = worst_status(findings)
    code = exit_code(findings, options.fail_on)
    if code != EXIT_DEVIATION and _unreadable(course, scan_notes or []):
        code = EXIT_UNREADABLE
    plans = [_summary(c, ev, prior=False) for c in course.cases]
    plans += [_summary(c, ev, prior=True) for c in course.priors]
    hashes: dict[str, str] = {}
    for path in _course_files(course):
        try:
            hashes[path] = sha256(path)
        except OSError as exc:
            notes.append(Note(Level.WARNING, f"cannot hash: {exc.strerror or exc}", path))
    return CheckResult(
        course_id=course.course_id,
        patient_id=course.patient_id,
        plans=plans,
        protocol_id=protocol.id,
        protocol_version=protocol.version,
        protocol_title=protocol.title,
        protocol_source=str(protocol.path),
        default_protocol=default_protocol,
        findings=findings,
        verdict=verdict,
        exit_code=code,
        rtqa_version=__version__,
        created=datetime.now(UTC),
        notes=notes,
        input_hashes=hashes,
        grouping=course.reason,
        curves=ev.curves,
        context=ev.context if options.keep_context else None,
    )


def _summary(case: Case, ev, prior: bool) -> PlanSummary:
    """What the report says of the plan. Its prescription (Gy): the plan's one total
    (:func:`~rtqa.protocol.prescription.plan_prescription`), else the
    highest judged for its targets (a SIB plan's top level, never a guess between several totals
    of one ROI), else None; a prior course's plan: its highest level, as the prior rules take
    it (:func:`~rtqa.protocol.prescription.prescription_levels`)."""
    from rtqa.protocol.prescription import plan_prescription, prescription_levels

    plan = case.plan
    rx = plan_prescription(plan)[0] if plan is not None else None
    if rx is None and not prior:
        known = [
            v
            for name, v in ev.context.targets.items()
            if v is not None and ev.context.target_cases.get(name) == case.case_id
        ]
        rx = max(known) if known else None
    elif rx is None:  # a prior course's plan: its highest level, as the prior rules take it
        levels = prescription_levels(plan)
        rx = levels[-1] if levels else None
    return PlanSummary(
        case_id=case.case_id,
        label=case.label,
        sop_instance_uid=plan.sop_instance_uid if plan else None,
        fractions=plan.fractions_planned if plan else None,
        prescription_gy=rx,
        approval_status=plan.approval_status if plan else None,
        prior=prior,
        planning_system=plan.planning_system if plan else None,
    )


def _conflicting_copies(course: Course, scan_notes: list[Note]) -> list[Finding]:
    """A ``not_evaluable`` input finding for each file of the course whose SOP Instance UID
    another file holds with different content (which one is right cannot be told)."""
    from rtqa.dicom.scan import CONFLICT_ATTRIBUTE

    files = set(_course_files(course))
    return [
        Finding(
            group="plan",
            rule="inputs",
            status=Status.NOT_EVALUABLE,
            message=f"{n.path}: {n.message}",
            source="DICOM-RT input",
        )
        for n in scan_notes
        if n.level is Level.ERROR and n.attribute == CONFLICT_ATTRIBUTE and n.path in files
    ]


def _prior(course: Course, protocol, options: CheckOptions, ev) -> list[Finding]:
    """Prior-radiation findings (group ``prior``) when a prior exists or the protocol asks."""
    has_prior = bool(course.priors)
    if not has_prior and protocol.prior_radiation is None:
        return []
    from rtqa.protocol.case_integrity import prior_dose_source_findings, prior_dose_type_findings
    from rtqa.protocol.prior_inputs import PriorInput
    from rtqa.protocol.prior_rules import evaluate_prior

    ctx = ev.context
    if ctx.dose is None:
        return [
            Finding(
                group="prior",
                rule="prior_radiation",
                status=Status.NOT_EVALUABLE if has_prior else Status.INFO,
                message="no course dose to add a prior course to",
            )
        ]
    body = ctx.rois.get(ctx.body) if ctx.body else None
    if body is None:
        from rtqa.model import body_outline

        ss = next((c.structure_set for c in course.cases if c.structure_set), None)
        body = body_outline(ss.rois) if ss is not None else None
    unknown = ev.fractions_unknown if has_prior else ""
    inp = PriorInput(
        course=course,
        dose=ctx.dose,
        fractions=None if unknown else ev.fractions,
        fractions_unknown=unknown,
        organs=dict(ctx.organs),
        organ_parts=dict(ctx.organ_parts),
        organ_further=dict(ctx.organ_further),
        targets={n: (ctx.rois[n], rx) for n, rx in ctx.targets.items() if n in ctx.rois},
        body=body,
        prior_fractions=options.prior_fractions,
        assume_aligned=options.assume_aligned,
        export_cumulative=options.export_cumulative,
        alpha_beta=options.alpha_beta,
    )
    found, pctx = evaluate_prior(inp, protocol)
    ctx.prior = pctx
    return [
        *found,
        *prior_dose_type_findings(course.priors, ctx.dose),
        *prior_dose_source_findings(course.priors),
    ]
