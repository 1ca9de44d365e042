"""Typed, immutable protocol objects: what a constraint file says, after validation.

Every number carries its :class:`Source` and :class:`Confidence` (``verified`` read in the cited
primary source, ``secondary`` read in a reproduction or parent protocol, ``unverified`` from
recollection, shown as such in every report). Doses are total physical Gy over the course
unless a section says EQD2; volumes cc; distances mm. ``line`` is the 1-based line of the item
in its file. The evaluation engine consumes these objects; nothing here reads files.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rtqa.model import TARGET_TYPES, Status
from rtqa.protocol.bands import Bands, Condition, Judgement
from rtqa.protocol.metrics import MetricRequest


class Confidence(enum.StrEnum):
    VERIFIED = "verified"
    SECONDARY = "secondary"
    UNVERIFIED = "unverified"

    @property
    def rank(self) -> int:
        """0 verified, 1 secondary, 2 unverified (higher is weaker)."""
        return list(Confidence).index(self)


def weakest(*confidences: Confidence) -> Confidence:
    """The least established of several confidences."""
    return max(confidences, key=lambda c: c.rank)


@dataclass(frozen=True)
class Source:
    """Where a number was read: a document and, where known, its table or section."""

    document: str
    table: str = ""
    section: str = ""
    note: str = ""

    def __str__(self) -> str:
        parts = [self.document]
        if self.table:
            parts.append(f"Table {self.table}")
        if self.section:
            parts.append(self.section)
        text = ", ".join(parts)
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class SourcedValue:
    """A scalar (or list) setting with its provenance; ``severity`` is the status a violated
    rule gets (``major`` unless the file says ``minor`` or ``info``)."""

    value: object
    source: Source | None
    confidence: Confidence | None
    line: int | None = None
    note: str = ""
    severity: Status = Status.MAJOR


@dataclass(frozen=True)
class Limit:
    """One judged metric: ``metric`` with its ``bands``, provenance and the fraction count it
    applies to (``None``: any fraction count)."""

    metric: MetricRequest
    bands: Bands
    source: Source
    confidence: Confidence
    line: int | None = None
    fractions: int | None = None
    note: str = ""

    def judge(self, value: float) -> Judgement:
        """Judge a value in ``metric.unit`` against the bands (see :class:`Bands`)."""
        return self.bands.judge(value)

    @property
    def conditions(self) -> dict[str, str]:
        """Band name -> condition as written (the ``Finding.limits`` shape)."""
        return self.bands.written


# Target types an ROI selector may name: RTROIInterpretedType values (TARGET_TYPES).
ROI_TYPES = (*TARGET_TYPES, "ORGAN", "EXTERNAL", "AVOIDANCE")


def derived_label(base: str, plus: Iterable[str] = (), minus: Iterable[str] = ()) -> str:
    """The name of a derived structure: ``'Trachea + Bronchus'``, ``'Lungs - GTV - ITV'``."""
    return base + "".join(f" + {p}" for p in plus) + "".join(f" - {m}" for m in minus)


@dataclass(frozen=True)
class RoiSpec:
    """How a file names a structure.

    ``name``: the TG-263 name (organs) or ``None`` for a selector by ``type`` (every PTV).
    ``aliases``: other accepted names (compared after normalising case, spaces, punctuation).
    ``patterns``: regular expressions searched case-insensitively in the ROI name.
    ``minus``: a derived structure: this ROI minus the union of the listed structures, each
    either another organ of the file or a target type (``GTV``, ``ITV``, ``CTV``, ``PTV`` = every
    such target), e.g. ``{name: Lungs, minus: [GTV, ITV]}``. ``plus``: a derived structure: the
    union of this ROI and the listed organs of the file, one structure for a limit written for
    both (TG-101's trachea and large bronchus: ``{name: Trachea, plus: [Bronchus]}``); judged on
    the parts that are contoured. ``plus`` is taken before ``minus``.
    """

    name: str | None = None
    type: str | None = None
    aliases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    minus: tuple[str, ...] = ()
    plus: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return derived_label(self.name or (self.type or "?"), self.plus, self.minus)

    @property
    def is_derived(self) -> bool:
        return bool(self.minus or self.plus)


@dataclass(frozen=True)
class TargetRule:
    """Coverage and hot-spot checks for every target the selector matches.

    ``id`` names the rule for mappings (``--map PTV=PTV_T8``); ``sites`` limits the rule to
    those sites (empty: all); a check's ``fractions`` (``None``: any) limits it to one count.
    """

    id: str
    roi: RoiSpec
    checks: tuple[Limit, ...]
    sites: tuple[str, ...] = ()
    line: int | None = None
    note: str = ""

    def checks_for(self, fractions: int | None) -> tuple[Limit, ...]:
        return tuple(c for c in self.checks if c.fractions is None or c.fractions == fractions)


@dataclass(frozen=True)
class Organ:
    """An organ at risk: names, whether it must be contoured, and limits by fraction count.

    ``limits[n]`` holds the limits for an ``n``-fraction course; ``limits[None]`` those that
    apply to any fraction count. ``required``: always required; ``required_for_sites``: required
    when a target of one of these sites is treated; ``sites``: the organ is judged only when a
    target of one of these sites is treated (empty: always), like ``plan_quality``'s.
    """

    name: str
    roi: RoiSpec
    limits: dict[int | None, tuple[Limit, ...]] = field(default_factory=dict)
    required: bool = False
    required_for_sites: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    alpha_beta: SourcedValue | None = None
    title: str = ""
    line: int | None = None
    note: str = ""

    def limits_for(self, fractions: int | None) -> tuple[Limit, ...]:
        """Limits for a course of ``fractions`` fractions (plus the any-count limits)."""
        own = self.limits.get(fractions, ()) if fractions is not None else ()
        return own + self.limits.get(None, ())

    def is_required(self, sites: tuple[str, ...] | list[str] = ()) -> bool:
        return self.required or any(s in self.required_for_sites for s in sites)

    @property
    def fraction_counts(self) -> tuple[int, ...]:
        return tuple(sorted(k for k in self.limits if k is not None))


@dataclass(frozen=True)
class Site:
    """A treatment-site category (``spine``, ``central_lung``...). ``keywords`` are regular
    expressions searched case-insensitively in the plan's treatment site, label and target
    names: a hint to propose the site, never proof."""

    id: str
    title: str = ""
    keywords: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Regimen:
    """An allowed prescription for a site: total dose (Gy) in ``fractions`` fractions."""

    site: str
    total_gy: float
    fractions: int
    source: Source
    confidence: Confidence
    line: int | None = None
    note: str = ""

    @property
    def dose_per_fraction_gy(self) -> float:
        return self.total_gy / self.fractions


@dataclass(frozen=True)
class Fractionation:
    """Schedule rules. Unset rules (``None``) are not checked.

    ``allowed_fractions.value``: tuple of allowed counts; ``complete_within_days.value``: last
    minus first treatment date (calendar days) over all plans of the course, inclusive limit;
    ``min_interval_hours.value``: shortest allowed time between fractions of one plan;
    ``min_targets``/``max_targets``: number of targets treated in the course;
    ``excluded_sites``: site ids that may not be treated under the protocol (e.g. ``cns``).
    """

    sites: dict[str, Site] = field(default_factory=dict)
    regimens: tuple[Regimen, ...] = ()
    allowed_fractions: SourcedValue | None = None
    complete_within_days: SourcedValue | None = None
    min_interval_hours: SourcedValue | None = None
    min_targets: SourcedValue | None = None
    max_targets: SourcedValue | None = None
    excluded_sites: tuple[SourcedValue, ...] = ()

    def regimens_for(self, site: str | None) -> tuple[Regimen, ...]:
        return tuple(r for r in self.regimens if site is None or r.site == site)


class OutsideTable(ValueError):
    """A plan-quality lookup outside the tabulated PTV volumes: never extrapolated."""


@dataclass(frozen=True)
class QualityRow:
    """One row of a volume-dependent table: at ``ptv_cc``, the per-protocol and acceptable
    limits."""

    ptv_cc: float
    per_protocol: float
    acceptable: float | None
    source: Source
    confidence: Confidence
    line: int | None = None
    note: str = ""


@dataclass(frozen=True)
class QualityRule:
    """A plan-quality metric judged either by constant ``bands`` or by a table looked up by
    PTV volume (linear interpolation between rows; outside the first and last row the rule is
    not evaluable, see :class:`OutsideTable`)."""

    metric: MetricRequest
    source: Source
    confidence: Confidence
    bands: Bands | None = None
    per_protocol_op: str = "<"
    acceptable_op: str | None = "<="
    rows: tuple[QualityRow, ...] = ()
    line: int | None = None
    note: str = ""

    @property
    def volume_range_cc(self) -> tuple[float, float] | None:
        if not self.rows:
            return None
        return self.rows[0].ptv_cc, self.rows[-1].ptv_cc

    def _rows_at(self, ptv_cc: float) -> tuple[QualityRow, QualityRow, float]:
        """The table rows around ``ptv_cc`` cc and the linear weight of the upper one
        (OutsideTable beyond the tabulated range; one row twice on a tabulated volume)."""
        lo, hi = self.volume_range_cc  # type: ignore[misc]
        if not lo <= ptv_cc <= hi:
            raise OutsideTable(
                f"{self.metric}: PTV volume {ptv_cc:g} cc is outside the tabulated range "
                f"{lo:g}-{hi:g} cc"
            )
        vols = [r.ptv_cc for r in self.rows]
        i = bisect.bisect_left(vols, ptv_cc)
        if vols[i] == ptv_cc:
            return self.rows[i], self.rows[i], 0.0
        a, b = self.rows[i - 1], self.rows[i]
        return a, b, (ptv_cc - a.ptv_cc) / (b.ptv_cc - a.ptv_cc)

    def interpolation_note(self, ptv_cc: float) -> str:
        """How the bands for ``ptv_cc`` cc were read: empty for fixed bands and a tabulated
        volume, else the two rows interpolated between."""
        if self.bands is not None:
            return ""
        a, b, _ = self._rows_at(ptv_cc)
        if a is b:
            return ""
        return f"limits interpolated linearly between the {a.ptv_cc:g} and {b.ptv_cc:g} cc rows"

    def bands_at(self, ptv_cc: float) -> tuple[Bands, Confidence]:
        """The bands for a target of ``ptv_cc`` cc and the weakest confidence they rest on."""
        if self.bands is not None:
            return self.bands, self.confidence
        a, b, t = self._rows_at(ptv_cc)
        pp = a.per_protocol + t * (b.per_protocol - a.per_protocol)
        per = Condition(self.per_protocol_op, pp, f"{self.per_protocol_op} {pp:.6g}")
        acc = None
        if self.acceptable_op is not None and a.acceptable is not None:
            assert b.acceptable is not None
            av = a.acceptable + t * (b.acceptable - a.acceptable)
            acc = Condition(self.acceptable_op, av, f"{self.acceptable_op} {av:.6g}")
        return Bands(per, acc), weakest(a.confidence, b.confidence)


@dataclass(frozen=True)
class PlanQuality:
    """Plan-quality rules applied to each target of the listed ``sites`` (empty: every site)."""

    rules: tuple[QualityRule, ...]
    sites: tuple[str, ...] = ()
    line: int | None = None
    note: str = ""


@dataclass(frozen=True)
class PlanChecks:
    """Technical plan rules: ``max_grid_spacing_mm`` (dose grid spacing in every direction),
    ``grid_covers_structures`` (bool: every target and required organ lies inside the dose
    grid), ``heterogeneity_correction`` (``required`` | ``recommended`` | ``not_required``)."""

    max_grid_spacing_mm: SourcedValue | None = None
    grid_covers_structures: SourcedValue | None = None
    heterogeneity_correction: SourcedValue | None = None


PRIOR_POLICIES = ("exclude", "review", "cumulative")


@dataclass(frozen=True)
class PriorRadiation:
    """How a prior course is handled (reserved shape; evaluated by the prior-course engine).

    ``policy``: ``exclude`` (a prior course overlapping the target makes the case ineligible),
    ``review`` (report the overlap for a physician to judge), ``cumulative`` (judge the
    limits below). ``alpha_beta[organ]`` (key ``default`` for any other organ) in Gy;
    ``cumulative_eqd2[organ]``: limits on prior + current EQD2 (Gy, at the organ's alpha/beta),
    metrics as in the organ limits; ``course_eqd2[organ]``: limits on the current course's EQD2
    alone; ``course_share[organ]``: limits on current-course EQD2 / cumulative EQD2 of the same
    metric (a ratio); ``recovery[organ]``: the fraction r of the prior EQD2 discounted
    (cumulative = (1 - r) prior + current; 0 when absent); ``min_interval_months``: least time
    from the end of the prior course; ``overlap_isodose_pct``: the isodose, in % of each
    course's own prescription, whose volumes decide whether the irradiated volumes overlap
    (absent: 50 %, an rtqa convention; the consensus fixes none).
    """

    policy: SourcedValue
    alpha_beta: dict[str, SourcedValue] = field(default_factory=dict)
    cumulative_eqd2: dict[str, tuple[Limit, ...]] = field(default_factory=dict)
    course_eqd2: dict[str, tuple[Limit, ...]] = field(default_factory=dict)
    course_share: dict[str, tuple[Limit, ...]] = field(default_factory=dict)
    recovery: dict[str, SourcedValue] = field(default_factory=dict)
    min_interval_months: SourcedValue | None = None
    overlap_isodose_pct: SourcedValue | None = None
    line: int | None = None
    note: str = ""

    def alpha_beta_for(self, organ: str) -> SourcedValue | None:
        return self.alpha_beta.get(organ, self.alpha_beta.get("default"))


@dataclass(frozen=True)
class Provenance:
    """One number of a protocol with where it sits in the file and where it came from."""

    where: str
    value: str
    source: Source | None
    confidence: Confidence | None
    line: int | None


@dataclass(frozen=True)
class Protocol:
    """A validated constraint file."""

    id: str
    version: str
    title: str
    description: str
    path: str
    sources: tuple[Source, ...] = ()
    fractionation: Fractionation = field(default_factory=Fractionation)
    targets: tuple[TargetRule, ...] = ()
    organs: tuple[Organ, ...] = ()
    plan_quality: PlanQuality | None = None
    plan_checks: PlanChecks = field(default_factory=PlanChecks)
    prior_radiation: PriorRadiation | None = None

    def organ(self, name: str) -> Organ:
        """The organ with this protocol name (KeyError otherwise)."""
        for o in self.organs:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def source_summary(self) -> str:
        """The documents the file is built from, in one line."""
        return "; ".join(s.document for s in self.sources)

    def provenance(self) -> Iterator[Provenance]:
        """Every number of the protocol with its source and confidence."""
        fr = self.fractionation
        for name in (
            "allowed_fractions",
            "complete_within_days",
            "min_interval_hours",
            "min_targets",
            "max_targets",
        ):
            sv = getattr(fr, name)
            if sv is not None:
                yield _pv(f"fractionation/{name}", sv)
        for sv in fr.excluded_sites:
            yield _pv("fractionation/excluded_sites", sv)
        for r in fr.regimens:
            yield Provenance(
                f"fractionation/regimens/{r.site}",
                f"{r.total_gy:g} Gy / {r.fractions}",
                r.source,
                r.confidence,
                r.line,
            )
        for t in self.targets:
            for c in t.checks:
                yield _pl(f"targets/{t.id}", c)
        for o in self.organs:
            for limits in o.limits.values():
                for lim in limits:
                    yield _pl(f"organs/{o.name}/{lim.fractions or 'any'}", lim)
            if o.alpha_beta is not None:
                yield _pv(f"organs/{o.name}/alpha_beta", o.alpha_beta)
        if self.plan_quality is not None:
            for q in self.plan_quality.rules:
                if q.bands is not None:
                    yield Provenance(
                        f"plan_quality/{q.metric}", str(q.bands), q.source, q.confidence, q.line
                    )
                for row in q.rows:
                    value = f"{row.ptv_cc:g} cc: {row.per_protocol:g} / {row.acceptable}"
                    yield Provenance(
                        f"plan_quality/{q.metric}", value, row.source, row.confidence, row.line
                    )
        pc = self.plan_checks
        for name in ("max_grid_spacing_mm", "grid_covers_structures", "heterogeneity_correction"):
            sv = getattr(pc, name)
            if sv is not None:
                yield _pv(f"plan_checks/{name}", sv)
        pr = self.prior_radiation
        if pr is not None:
            yield _pv("prior_radiation/policy", pr.policy)
            if pr.min_interval_months is not None:
                yield _pv("prior_radiation/min_interval_months", pr.min_interval_months)
            if pr.overlap_isodose_pct is not None:
                yield _pv("prior_radiation/overlap_isodose_pct", pr.overlap_isodose_pct)
            for organ, sv in pr.alpha_beta.items():
                yield _pv(f"prior_radiation/alpha_beta/{organ}", sv)
            for organ, sv in pr.recovery.items():
                yield _pv(f"prior_radiation/recovery/{organ}", sv)
            for section in ("cumulative_eqd2", "course_eqd2", "course_share"):
                for organ, limits in getattr(pr, section).items():
                    for lim in limits:
                        yield _pl(f"prior_radiation/{section}/{organ}", lim)


def _pv(where: str, sv: SourcedValue) -> Provenance:
    return Provenance(where, str(sv.value), sv.source, sv.confidence, sv.line)


def _pl(where: str, lim: Limit) -> Provenance:
    return Provenance(f"{where}/{lim.metric}", str(lim.bands), lim.source, lim.confidence, lim.line)
