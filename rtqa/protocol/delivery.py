"""Delivered against planned monitor units: treatment records joined to their plan's beams.

Record beams are joined to the plan's beams by beam number (``ReferencedBeamNumber`` to
``BeamNumber``), never by order or name; a record beam number the plan does not list is named,
with its file, and its MU are not compared. Setup and imaging beams (plan
``TreatmentDeliveryType`` other than TREATMENT; the record reader already leaves out items the
record itself marks as such) are left out of every MU total.

MU are compared per beam and fraction: the MU delivered to a beam in all sessions of one
fraction (same ``CurrentFractionNumber``; an interrupted fraction completed later is one
fraction, its sessions summed) against the plan's ``BeamMeterset`` for that beam, which is MU
per fraction. Tolerance (an rtqa convention, not a protocol limit): ``max(1 % of planned MU,
0.5 MU)`` per beam and fraction. A difference beyond it is

* explained when the beam fell short and one of its sessions ended early
  (``TreatmentTerminationStatus`` not NORMAL with delivered below specified MU): the fraction is
  reported as not fully delivered (rule ``fraction_delivery``, minor: the dose rtqa judges is the
  planned one, which that fraction did not receive);
* otherwise a delivery or data discrepancy (rule ``delivered_mu``, minor, as rtqa's other
  convention-based discrepancies), with the planned and delivered MU of each fraction and the
  tolerance used.

The beams due in a fraction are those of the fraction group its records name
(ReferencedFractionGroupNumber), else of the one fraction group listing every treatment beam
delivered; that group's BeamMeterset is the planned MU (a beam planned with different MU in
several groups is otherwise not compared). Records naming a group that cannot be
the one delivered (another group's beams delivered, a group the plan lacks, two groups named)
leave the fraction's completeness unknown. A fraction whose treatment beams do not all appear
in its records (or whose records hold none of the plan's) is not fully delivered too;
an early termination made up within the same fraction is information. Unknown beam numbers and
missing planned or delivered MU make those comparisons not evaluable. When everything agrees one
``delivered_mu`` pass summarises it. A plan without treatment records gets no finding here (not
yet delivered, or records not supplied). The planned MU of a plan written by a converter
(:mod:`rtqa.dicom.converters`) are not trusted: its ``delivered_mu`` passes and deviations are
not evaluable, the comparison kept in the message.

Fractions beyond the plan (rule ``fractions_delivered``): a record whose CurrentFractionNumber
exceeds the fraction count of the fraction group delivered (else the plan's count; else the
largest its groups state) is a major deviation naming those fractions, their dates, files and
treatment MU; records without a fraction number taking the course past the planned count are
major when more fractions than planned were delivered in full, else not evaluable. One fraction
number recorded twice stays one fraction (its MU summed, ``delivered_mu``).

:func:`fraction_deliveries` gives ``rtqa info`` the same judgement per fraction: incomplete
exactly when ``fraction_delivery`` reports the fraction not fully delivered; unknown when an
early-terminated beam's MU cannot be compared, when the fraction's beams fit no single fraction
group, or when there is no plan; complete otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from rtqa.model import DeliveredBeam, Finding, Plan, Status, TreatmentRecord

GROUP = "plan"
#: Delivered MU agree with planned MU within this share of the planned MU (%) ...
MU_TOLERANCE_PCT = 1.0
#: ... or within this many MU, whichever is larger (per beam and fraction).
MU_TOLERANCE_MU = 0.5
TOLERANCE_TEXT = f"max({MU_TOLERANCE_PCT:g} % of planned, {MU_TOLERANCE_MU:g} MU)"
LIMIT_TEXT = f"max({MU_TOLERANCE_PCT:g} %, {MU_TOLERANCE_MU:g} MU)"
SOURCE = f"rtqa convention: delivered MU per beam and fraction within {TOLERANCE_TEXT}"
RECORD_SOURCE = "RT Beams Treatment Record against RT Plan"
#: Slack for sums of decimal MU read from files (MU).
_EPS_MU = 1e-9
NO_PLAN = "no plan to compare beams with"


def tolerance_mu(planned_mu: float) -> float:
    """Allowed |delivered - planned| for one beam and fraction (MU)."""
    return max(MU_TOLERANCE_PCT / 100.0 * abs(planned_mu), MU_TOLERANCE_MU)


@dataclass(frozen=True)
class Session:
    """One beam as delivered in one record (session)."""

    path: str
    delivered_at: datetime | None
    beam: DeliveredBeam

    @property
    def terminated_early(self) -> bool:
        """Ended other than NORMAL with less than the specified MU delivered (or MU unknown)."""
        b = self.beam
        if b.termination_status in ("", "NORMAL"):
            return False
        if b.delivered_meterset is None or b.specified_meterset is None:
            return True
        return b.delivered_meterset < b.specified_meterset

    def describe(self) -> str:
        b = self.beam
        return (
            f"terminated {b.termination_status} after {_mu(b.delivered_meterset)} of "
            f"{_mu(b.specified_meterset)} MU ({_name(self.path)})"
        )


@dataclass(frozen=True)
class BeamFraction:
    """One treatment beam in one fraction: its planned MU and the sessions that delivered it.

    ``fraction`` is the CurrentFractionNumber (``None`` for a record without one, which is a
    fraction of its own); ``planned_mu`` is the plan's BeamMeterset (MU per fraction; ``None``
    when not stated or ambiguous); ``key`` orders and groups fractions.
    """

    key: tuple[int, int]  # (0, fraction number) or (1, record index)
    fraction: int | None
    beam_number: int
    beam_name: str
    planned_mu: float | None
    sessions: tuple[Session, ...]

    @property
    def delivered_mu(self) -> float | None:
        """MU delivered over all sessions of the fraction; ``None`` when a session lacks it."""
        values = [s.beam.delivered_meterset for s in self.sessions]
        if any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))

    @property
    def comparable(self) -> bool:
        return self.planned_mu is not None and self.delivered_mu is not None

    @property
    def difference_mu(self) -> float:
        assert self.planned_mu is not None and self.delivered_mu is not None
        return self.delivered_mu - self.planned_mu

    @property
    def tolerance_mu(self) -> float:
        assert self.planned_mu is not None
        return tolerance_mu(self.planned_mu)

    @property
    def within(self) -> bool:
        return abs(self.difference_mu) <= self.tolerance_mu + _EPS_MU

    @property
    def early(self) -> tuple[Session, ...]:
        return tuple(s for s in self.sessions if s.terminated_early)

    @property
    def explained_short(self) -> bool:
        """Short beyond tolerance, and a session of it ended early."""
        return not self.within and self.difference_mu < 0 and bool(self.early)

    @property
    def label(self) -> str:
        return _beam_label(self.beam_number, self.beam_name)


@dataclass(frozen=True)
class DeliveryComparison:
    """Records of one plan joined to its beams.

    ``beams``: treatment beams delivered, by fraction then beam number; ``unknown``: (file,
    beam number, fraction) of record beams the plan does not list; ``setup``: (file, beam
    number) of record beams the plan marks as setup/imaging (left out); ``missing``: fraction key
    -> treatment beam numbers of the fraction's group found in none of its records (checked when
    the delivered beams belong to exactly one fraction group, also when its records hold no
    treatment beam of the plan); ``undetermined``: fraction key -> numbers of the fraction groups
    its delivered treatment beams fit, when that is not exactly one and none of them is
    delivered in full (which beams were due is unknown); ``ambiguous``: beam number -> the
    different BeamMeterset values its fraction groups give; ``paths``: fraction key -> files of
    its records; ``conflicts``: fraction key -> why the fraction group its records name
    (ReferencedFractionGroupNumber) cannot be the one delivered (which beams were due is then
    unknown). Where the records name a usable group, its beams are the ones due; where one
    group is known (named, or the only one listing every beam delivered) its BeamMeterset is the
    planned MU.
    """

    sessions: int
    beams: tuple[BeamFraction, ...]
    unknown: tuple[tuple[str, int, int | None], ...]
    setup: tuple[tuple[str, int], ...]
    missing: dict[tuple[int, int], tuple[int, ...]]
    ambiguous: dict[int, tuple[float, ...]]
    undetermined: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    paths: dict[tuple[int, int], tuple[str, ...]] = field(default_factory=dict)
    conflicts: dict[tuple[int, int], str] = field(default_factory=dict)
    #: fraction key -> the one fraction group delivered (named, or the only one fitting)
    groups: dict[tuple[int, int], int] = field(default_factory=dict)


def compare(plan: Plan, records: Sequence[TreatmentRecord]) -> DeliveryComparison:
    """Join the records' delivered beams to ``plan``'s beams by number, per fraction.

    The records are those referencing ``plan`` (its SOP Instance UID). Records without a
    fraction number are each their own fraction.
    """
    kinds = {b.number: b.delivery_type for b in plan.beams}
    names = {b.number: b.name for b in plan.beams}
    planned_by_beam: dict[int, set[float]] = defaultdict(set)
    for group in plan.fraction_groups:
        for ref in group.beams:
            kinds.setdefault(ref.beam_number, "TREATMENT")
            if ref.meterset is not None:
                planned_by_beam[ref.beam_number].add(float(ref.meterset))
    planned = {n: next(iter(v)) for n, v in planned_by_beam.items() if len(v) == 1}
    ambiguous = {n: tuple(sorted(v)) for n, v in planned_by_beam.items() if len(v) > 1}
    group_mu = {
        g.number: {r.beam_number: float(r.meterset) for r in g.beams if r.meterset is not None}
        for g in plan.fraction_groups
    }
    group_beams = [
        (
            g.number,
            frozenset(r.beam_number for r in g.beams if kinds.get(r.beam_number) == "TREATMENT"),
        )
        for g in plan.fraction_groups
    ]
    group_beams = [(number, beams) for number, beams in group_beams if beams]
    beams_of_group = dict(group_beams)

    sessions: dict[tuple[int, int], dict[int, list[Session]]] = defaultdict(
        lambda: defaultdict(list)
    )
    unknown: list[tuple[str, int, int | None]] = []
    setup: list[tuple[str, int]] = []
    paths: dict[tuple[int, int], list[str]] = defaultdict(list)
    named: dict[tuple[int, int], set[int]] = defaultdict(set)  # groups the records name
    ordered = sorted(
        enumerate(records), key=lambda ir: (ir[1].delivered_at is None, ir[1].delivered_at, ir[0])
    )
    for index, record in ordered:
        n = record.fraction_number
        key = (0, n) if n is not None else (1, index)
        by_beam = sessions[key]  # a fraction even without treatment beams of the plan
        paths[key].append(record.path)
        if record.fraction_group is not None:
            named[key].add(record.fraction_group)
        for beam in record.beams:
            kind = kinds.get(beam.beam_number)
            if kind is None:
                unknown.append((record.path, beam.beam_number, n))
            elif kind != "TREATMENT":
                setup.append((record.path, beam.beam_number))
            else:
                by_beam[beam.beam_number].append(Session(record.path, record.delivered_at, beam))

    beams: list[BeamFraction] = []
    missing: dict[tuple[int, int], tuple[int, ...]] = {}
    undetermined: dict[tuple[int, int], tuple[int, ...]] = {}
    conflicts: dict[tuple[int, int], str] = {}
    delivered_group: dict[tuple[int, int], int] = {}
    for key in sorted(sessions):
        by_beam = sessions[key]
        fraction = key[1] if key[0] == 0 else None
        delivered = frozenset(by_beam)
        group, conflict = _named_group(named.get(key, set()), delivered, beams_of_group)
        if conflict:
            conflicts[key] = conflict
            groups = []
        elif group is not None:
            groups = [(group, beams_of_group[group])]
        else:
            groups = [(number, g) for number, g in group_beams if delivered <= g]
        if len(groups) == 1:
            delivered_group[key] = groups[0][0]
            if groups[0][1] - delivered:
                missing[key] = tuple(sorted(groups[0][1] - delivered))
        elif delivered and not conflict and all(g != delivered for _, g in groups):
            undetermined[key] = tuple(number for number, _ in groups)
        # the one group delivered (named or the only one fitting) plans its own MU
        mu = group_mu.get(groups[0][0], {}) if len(groups) == 1 else {}
        for number in sorted(by_beam):
            beams.append(
                BeamFraction(
                    key,
                    fraction,
                    number,
                    names.get(number, ""),
                    mu.get(number, planned.get(number)),
                    tuple(by_beam[number]),
                )
            )
    return DeliveryComparison(
        sessions=len(records),
        beams=tuple(beams),
        unknown=tuple(unknown),
        setup=tuple(setup),
        missing=missing,
        ambiguous=ambiguous,
        undetermined=undetermined,
        paths={key: tuple(p) for key, p in paths.items()},
        conflicts=conflicts,
        groups=delivered_group,
    )


def _named_group(
    named: set[int], delivered: frozenset[int], group_beams: dict[int, frozenset[int]]
) -> tuple[int | None, str | None]:
    """(the fraction group the records of one fraction name, or None; why that name cannot be
    used, or None). A named group is used when it is one, the plan lists it with treatment
    beams and it lists every treatment beam delivered; without a name the group is inferred
    from the delivered beams."""
    if not named:
        return None, None
    if len(named) > 1:
        listed = ", ".join(map(str, sorted(named)))
        return None, f"its records name different fraction groups ({listed})"
    (number,) = named
    beams = group_beams.get(number)
    if beams is None:
        return None, (
            f"its records name fraction group {number}, which the plan does not list with "
            "treatment beams"
        )
    extra = sorted(delivered - beams)
    if extra:
        s = "s" if len(extra) > 1 else ""
        return None, (
            f"its records name fraction group {number}, which does not list treatment "
            f"beam{s} {', '.join(map(str, extra))} delivered"
        )
    return number, None


@dataclass(frozen=True)
class FractionDelivery:
    """One fraction of one plan as its treatment records show it.

    ``plan_uid`` is the plan the records reference; ``fraction`` the CurrentFractionNumber
    (``None``: a record without one, its own fraction); ``dates`` the treatment dates of its
    sessions; ``sessions`` its records; ``complete`` is ``False`` exactly when ``rtqa check``
    reports it not fully delivered (rule ``fraction_delivery``, minor), ``None`` when that cannot
    be told, else ``True``; ``reason`` says why it is not ``True`` (``None`` when it is);
    ``planned`` the fractions planned for the fraction group delivered (else the plan's count;
    ``None`` without a plan): a ``fraction`` above it is beyond the plan (rule
    ``fractions_delivered``, major).
    """

    plan_uid: str | None
    fraction: int | None
    dates: tuple[date, ...]
    sessions: int
    complete: bool | None
    reason: str | None
    planned: int | None = None

    @property
    def beyond_plan(self) -> bool:
        """Whether the fraction number exceeds the fractions planned."""
        return None not in (self.fraction, self.planned) and self.fraction > self.planned


def fraction_deliveries(
    plan: Plan | None, records: Sequence[TreatmentRecord]
) -> list[FractionDelivery]:
    """The fractions delivered in ``records``, judged against ``plan``'s beams by :func:`compare`.

    With a plan only records referencing it (its SOP Instance UID) count: fraction 1 of another
    plan is another delivery. Without a plan, records are grouped by the plan they reference and
    every fraction's completeness is unknown. Ordered by plan UID, then fraction number; records
    without a fraction number, each its own fraction, come last in reading order.
    """
    if plan is not None:
        records = [r for r in records if r.referenced_plan_uid == plan.sop_instance_uid]
    grouped: dict[tuple[str, tuple[int, int]], list[TreatmentRecord]] = defaultdict(list)
    for index, record in enumerate(records):
        n = record.fraction_number
        key = (0, n) if n is not None else (1, index)
        grouped[(record.referenced_plan_uid or "", key)].append(record)
    verdicts: dict[tuple[int, int], tuple[bool | None, str | None]] = {}
    planned: dict[tuple[int, int], int | None] = {}
    if plan is not None:
        cmp = compare(plan, records)
        names = {b.number: b.name for b in plan.beams}
        verdicts = {key: _verdict(parts) for key, parts in _fraction_parts(cmp, names).items()}
        planned = {key: _planned_count(plan, cmp.groups.get(key)) for key in verdicts}
    out = []
    for (uid, key), group in sorted(grouped.items()):
        complete, reason = verdicts[key] if plan is not None else (None, NO_PLAN)
        out.append(
            FractionDelivery(
                plan_uid=uid or None,
                fraction=key[1] if key[0] == 0 else None,
                dates=tuple(sorted({r.delivery_date for r in group if r.delivery_date})),
                sessions=len(group),
                complete=complete,
                reason=reason,
                planned=planned.get(key),
            )
        )
    return out


def _verdict(parts: tuple[list[str], list[str], list[str]]) -> tuple[bool | None, str | None]:
    deviations, _, unknowns = parts
    if deviations:
        return False, "; ".join(deviations)
    if unknowns:
        return None, "; ".join(unknowns)
    return True, None


def delivery_findings(
    plan: Plan, records: Sequence[TreatmentRecord], case_id: str | None = None
) -> list[Finding]:
    """Findings of rules ``delivered_mu`` and ``fraction_delivery`` for one plan's records.

    No records: no finding. Every beam within tolerance and every fraction complete: one
    ``delivered_mu`` pass summarising what was compared.
    """
    if not records:
        return []
    cmp = compare(plan, records)
    names = {b.number: b.name for b in plan.beams}
    out: list[Finding] = []
    out += _not_evaluable(plan, cmp, names, case_id)
    # per beam and planned MU (fraction groups may plan one beam with different MU)
    mismatched: dict[tuple[int, float], list[BeamFraction]] = defaultdict(list)
    for bf in cmp.beams:
        if bf.comparable and not bf.within and not bf.explained_short:
            assert bf.planned_mu is not None
            mismatched[(bf.beam_number, bf.planned_mu)].append(bf)
    for key in sorted(mismatched):
        out.append(_mismatch(mismatched[key], case_id))
    out += _fractions(cmp, names, case_id)
    out += _beyond_plan(plan, records, cmp, names, case_id)
    judged = [bf for bf in cmp.beams if bf.comparable]
    within = [bf for bf in judged if bf.within]
    if within and not mismatched:
        fractions = len({bf.key for bf in judged})
        text = (
            "delivered MU within tolerance on "
            f"{_count(len(within), 'beam delivery', 'beam deliveries')} "
            f"({_count(len({bf.beam_number for bf in within}), 'treatment beam')}, "
            f"{_count(fractions, 'fraction')}) over {_count(cmp.sessions, 'session')}"
        )
        short = len(judged) - len(within)
        if short:
            text += f"; {short} short after an early termination (see fraction_delivery)"
        if cmp.setup:
            text += f"; {len(cmp.setup)} setup/imaging beam deliveries not counted"
        out.append(
            _finding(
                "delivered_mu",
                Status.PASS,
                text,
                case_id,
                metric="delivered MU",
                limits={"limit": f"± {LIMIT_TEXT}"},
                source=SOURCE,
            )
        )
    return _converted(plan, out)


def _converted(plan: Plan, findings: list[Finding]) -> list[Finding]:
    """``findings`` of a plan written by a converter (:mod:`rtqa.dicom.converters`): its
    planned MU are not trusted, so a delivered-MU pass or deviation is not evaluable."""
    if not plan.converter:
        return findings
    head = (
        f"planned MU not trusted: plan '{plan.label}' was written by {plan.converter}, whose "
        "plans have been found not fully correct"
    )
    return [
        replace(f, status=Status.NOT_EVALUABLE, message=f"{head}; measured: {f.message}")
        if f.rule == "delivered_mu" and f.status in (Status.PASS, Status.MINOR, Status.MAJOR)
        else f
        for f in findings
    ]


def _not_evaluable(
    plan: Plan, cmp: DeliveryComparison, names: dict[int, str], case_id: str | None
) -> list[Finding]:
    out = []
    if cmp.unknown:
        listed = "; ".join(
            f"beam {n} in {_name(p)}" + (f" (fraction {fx})" if fx is not None else "")
            for p, n, fx in cmp.unknown
        )
        numbers = sorted({n for _, n, _ in cmp.unknown})
        out.append(
            _finding(
                "delivered_mu",
                Status.NOT_EVALUABLE,
                f"treatment record beam number{'s' if len(numbers) > 1 else ''} "
                f"{', '.join(map(str, numbers))} not in plan '{plan.label}': {listed}; "
                "their MU cannot be compared",
                case_id,
                metric="beam number",
                source=RECORD_SOURCE,
            )
        )
    no_plan_mu = sorted({bf.beam_number for bf in cmp.beams if bf.planned_mu is None})
    if no_plan_mu:
        parts = []
        for n in no_plan_mu:
            label = _beam_label(n, names.get(n, ""))
            if n in cmp.ambiguous:
                values = ", ".join(f"{v:g}" for v in cmp.ambiguous[n])
                parts.append(f"{label}: fraction groups give {values} MU")
            else:
                parts.append(f"{label}: no BeamMeterset in the plan")
        out.append(
            _finding(
                "delivered_mu",
                Status.NOT_EVALUABLE,
                "planned MU unknown, delivered MU not compared for " + "; ".join(parts),
                case_id,
                metric="planned MU",
                source=RECORD_SOURCE,
            )
        )
    no_delivered = [
        (bf, s)
        for bf in cmp.beams
        if bf.planned_mu is not None
        for s in bf.sessions
        if s.beam.delivered_meterset is None
    ]
    if no_delivered:
        listed = "; ".join(f"{bf.label} in {_name(s.path)}" for bf, s in no_delivered)
        out.append(
            _finding(
                "delivered_mu",
                Status.NOT_EVALUABLE,
                f"no DeliveredMeterset for {listed}: delivered MU not compared",
                case_id,
                metric="delivered MU",
                source=RECORD_SOURCE,
            )
        )
    return out


def _mismatch(items: list[BeamFraction], case_id: str | None) -> Finding:
    """One beam whose delivered MU differ from the plan's beyond tolerance in some fractions."""
    first = items[0]
    planned = first.planned_mu
    assert planned is not None
    tol = first.tolerance_mu
    worst = max(items, key=lambda bf: abs(bf.difference_mu))
    parts = []
    for bf in items:
        diff = bf.difference_mu
        files = ", ".join(_name(s.path) for s in bf.sessions)
        where = f"fraction {bf.fraction}" if bf.fraction is not None else "a record"
        statuses = "/".join(dict.fromkeys(s.beam.termination_status or "none" for s in bf.sessions))
        pct = f", {100.0 * diff / planned:+.3g} %" if planned else ""
        parts.append(
            f"{where}: {_mu(bf.delivered_mu)} MU delivered ({diff:+.4g} MU{pct}; {files}; "
            f"termination {statuses})"
        )
    return _finding(
        "delivered_mu",
        Status.MINOR,
        f"{first.label}: planned {planned:g} MU per fraction; "
        + "; ".join(parts)
        + f"; tolerance {tol:g} MU ({TOLERANCE_TEXT}), no early termination explains it",
        case_id,
        metric=f"MU beam {first.beam_number}",
        value=worst.delivered_mu,
        unit="MU",
        limits={"limit": f"{planned:g} ± {tol:g} MU"},
        margin=tol - abs(worst.difference_mu),
        source=SOURCE,
    )


def _fraction_parts(
    cmp: DeliveryComparison, names: dict[int, str]
) -> dict[tuple[int, int], tuple[list[str], list[str], list[str]]]:
    """Per fraction key: (deviations: not fully delivered; notes: early terminations made up or
    not comparable; unknowns: why completeness cannot be told). The one rule behind rule
    ``fraction_delivery`` and :func:`fraction_deliveries`."""
    by_key: dict[tuple[int, int], list[BeamFraction]] = defaultdict(list)
    for bf in cmp.beams:
        by_key[bf.key].append(bf)
    out = {}
    keys = set(by_key) | set(cmp.missing) | set(cmp.undetermined) | set(cmp.paths)
    for key in sorted(keys):
        deviations, notes, unknowns = [], [], []
        if key not in by_key and key not in cmp.missing:
            deviations.append("no treatment beam of the plan in its records")
        for bf in by_key.get(key, []):
            early = "; ".join(s.describe() for s in bf.early)
            if not bf.early:
                continue
            if not bf.comparable:
                text = f"{bf.label} {early}; its planned or delivered MU unknown"
                notes.append(text)
                unknowns.append(text)
            elif bf.explained_short:
                deviations.append(
                    f"{bf.label} {early}: {_mu(bf.delivered_mu)} of {bf.planned_mu:g} planned MU"
                )
            elif bf.within:
                notes.append(
                    f"{bf.label} {early}, completed in {len(bf.sessions)} sessions: "
                    f"{_mu(bf.delivered_mu)} of {bf.planned_mu:g} planned MU"
                )
        for n in cmp.missing.get(key, ()):
            deviations.append(f"{_beam_label(n, names.get(n, ''))} in none of its records")
        if key in cmp.undetermined:
            unknowns.append(_undetermined(by_key.get(key, []), cmp.undetermined[key]))
        if key in cmp.conflicts:
            unknowns.append(f"{cmp.conflicts[key]}: which beams were due is unknown")
        out[key] = (deviations, notes, unknowns)
    return out


def _undetermined(items: list[BeamFraction], groups: tuple[int, ...]) -> str:
    """Why the beams due in a fraction are unknown (``groups``: fraction groups its beams fit)."""
    numbers = ", ".join(str(bf.beam_number) for bf in items)
    if groups:
        where = f"fraction groups {', '.join(map(str, groups))} of the plan list them, none in full"
    else:
        where = "no fraction group of the plan lists them all"
    beams = "treatment beams" if len(items) > 1 else "treatment beam"
    return f"{beams} {numbers} delivered; {where}: which beams were due is unknown"


def _fractions(
    cmp: DeliveryComparison, names: dict[int, str], case_id: str | None
) -> list[Finding]:
    """Fractions not fully delivered (minor), whose completeness is unknown (not evaluable;
    ``rtqa info`` shows them as neither complete nor incomplete) or completed after an early
    termination (info)."""
    out = []
    for key, (deviations, notes, unknowns) in _fraction_parts(cmp, names).items():
        if key[0] == 0:
            where = f"fraction {key[1]}"
        else:
            where = f"the record {_name(cmp.paths[key][0])} (no fraction number)"
        parts = deviations + notes
        if deviations:
            status, text = Status.MINOR, f"{where} not fully delivered: "
        elif unknowns:
            status, text = (
                Status.NOT_EVALUABLE,
                f"{where}: whether it was fully delivered is unknown: ",
            )
            parts = unknowns + [n for n in notes if n not in unknowns]
        elif notes:
            status, text = Status.INFO, f"{where} interrupted: "
        else:
            continue
        out.append(
            _finding(
                "fraction_delivery",
                status,
                text + "; ".join(parts),
                case_id,
                metric=where if key[0] == 0 else "fraction",
                source=RECORD_SOURCE,
            )
        )
    return out


def _planned_count(plan: Plan, group: int | None) -> int | None:
    """Fractions planned for a fraction delivered as fraction group ``group`` (``None``:
    unknown): that group's count, else the plan's one count, else the largest count its groups
    state (a fraction number beyond every group's count is beyond the plan whichever was due)."""
    if group is not None:
        for g in plan.fraction_groups:
            if g.number == group and g.fractions_planned:
                return g.fractions_planned
    if plan.fractions_planned:
        return plan.fractions_planned
    return max(plan.fraction_counts) if plan.fraction_counts else None


def _beyond_plan(
    plan: Plan,
    records: Sequence[TreatmentRecord],
    cmp: DeliveryComparison,
    names: dict[int, str],
    case_id: str | None,
) -> list[Finding]:
    """Rule ``fractions_delivered``: more fractions in the records than the plan plans.

    A fraction number above the planned count of the fraction group delivered (else of the
    plan) is a major deviation, named with its dates, files and treatment MU. Records without a
    fraction number (each its own fraction) that take the course beyond the planned count are a
    major deviation when more fractions than planned were delivered in full (every beam due,
    see :func:`fraction_deliveries`), else not evaluable. The same fraction number recorded
    twice is one fraction (its MU summed, rule ``delivered_mu``) and not counted here.
    """
    count = _planned_count(plan, None)
    if count is None:
        return []
    by_key: dict[tuple[int, int], list[TreatmentRecord]] = defaultdict(list)
    for index, record in enumerate(records):
        n = record.fraction_number
        by_key[(0, n) if n is not None else (1, index)].append(record)
    numbered = sorted(k[1] for k in by_key if k[0] == 0)
    unnumbered = [k for k in sorted(by_key) if k[0] == 1]
    # fractions 1 to the highest recorded number were delivered, each unnumbered record is one
    delivered = max([len(numbered), *numbered]) + len(unnumbered)
    allowed = {(0, n): _planned_count(plan, cmp.groups.get((0, n))) or count for n in numbered}
    beyond = [key for key, most in allowed.items() if key[1] > most]
    loose = ", ".join(_name(by_key[k][0].path) for k in unnumbered)
    common = {
        "metric": "fractions delivered",
        "value": float(delivered),
        "unit": "fractions",
        "limits": {"limit": f"<= {count} fractions"},
        "margin": float(count - delivered),
        "source": RECORD_SOURCE,
    }
    if beyond:
        parts = [_beyond_text(plan, k, by_key[k], cmp, allowed[k]) for k in beyond]
        if len(plan.fraction_counts) > 1:  # groups planned with different counts
            worst = max(beyond, key=lambda k: k[1] - allowed[k])
            most = allowed[worst]
            common["value"], common["margin"] = float(worst[1]), float(most - worst[1])
            common["limits"] = {"limit": f"<= {most} fractions"}
            head = f"fractions delivered beyond plan '{plan.label}': "
        else:
            head = f"{delivered} fractions delivered, plan '{plan.label}' plans {count}: beyond "
            head += "the plan "
        text = head + "; ".join(parts)
        if unnumbered:
            loose_count = _count(len(unnumbered), "record")
            text += f"; also {loose_count} without a fraction number ({loose})"
        return [_finding("fractions_delivered", Status.MAJOR, text, case_id, **common)]
    if not unnumbered or delivered <= count:
        return []
    verdicts = {key: _verdict(parts) for key, parts in _fraction_parts(cmp, names).items()}
    full = sum(1 for key in by_key if verdicts.get(key, (None, None))[0] is True)
    where = (
        f"{_count(len(numbered), 'numbered fraction')} and "
        f"{_count(len(unnumbered), 'record')} without a fraction number ({loose})"
    )
    if full > count:
        text = (
            f"{full} fractions delivered in full, plan '{plan.label}' plans {count}: records "
            f"hold {where}"
        )
        common["value"], common["margin"] = float(full), float(count - full)
        return [_finding("fractions_delivered", Status.MAJOR, text, case_id, **common)]
    text = (
        f"records hold {where}, plan '{plan.label}' plans {count} fractions: whether more "
        f"fractions than planned were delivered is unknown ({full} delivered in full)"
    )
    common["value"], common["margin"] = None, None
    return [_finding("fractions_delivered", Status.NOT_EVALUABLE, text, case_id, **common)]


def _beyond_text(
    plan: Plan,
    key: tuple[int, int],
    records: list[TreatmentRecord],
    cmp: DeliveryComparison,
    allowed: int,
) -> str:
    """One fraction beyond the plan (``allowed``: the fractions planned for it): its fraction
    group where the plan's groups differ in count, dates, files and treatment MU delivered."""
    days = sorted({r.delivered_at.date() for r in records if r.delivered_at is not None})
    when = ", ".join(f"{d:%Y-%m-%d}" for d in days) or "no treatment date"
    files = ", ".join(_name(r.path) for r in records)
    group = cmp.groups.get(key)
    of = ""
    if len(plan.fraction_counts) > 1:
        of = f" of fraction group {group}" if group is not None else " (fraction group unknown)"
        of += f" ({allowed} planned)"
    text = f"fraction {key[1]}{of} on {when} ({files})"
    items = [bf for bf in cmp.beams if bf.key == key]
    if not items:
        return text + ", no treatment beam of the plan in its records"
    mu = [bf.delivered_mu for bf in items]
    if any(v is None for v in mu):
        return text + ", delivered MU not all recorded"
    text += f", {sum(v for v in mu if v is not None):g} MU of treatment beams delivered"
    planned = [
        r.meterset
        for g in plan.fraction_groups
        if g.number == group
        for r in g.beams
        if r.meterset is not None and r.beam_number in {b.beam_number for b in items}
    ]
    if group is not None and planned and len(planned) == len(items):
        text += f" ({sum(planned):g} MU planned per fraction)"
    return text


def _finding(rule: str, status: Status, message: str, case_id: str | None, **kw) -> Finding:
    return Finding(group=GROUP, rule=rule, status=status, message=message, case_id=case_id, **kw)


def _beam_label(number: int, name: str) -> str:
    return f"beam {number} '{name}'" if name else f"beam {number}"


def _name(path: str) -> str:
    return Path(path).name or path


def _mu(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"
