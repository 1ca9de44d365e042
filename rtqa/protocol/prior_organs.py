"""Organ findings of the prior-radiation rules: each organ's prior, current and cumulative EQD2
(Gy, on its sampling lattice, after any recovery discount), judged where the protocol sets
``cumulative_eqd2``, ``course_eqd2`` or ``course_share`` limits. A derived organ (``plus``,
``minus``) is the structure the organ rules judge: its ROI with the contoured ``plus`` parts
added and the ``minus`` parts taken away (``PriorInput.organ_parts``).

The body outline (an EXTERNAL ROI, or a structure derived from it such as ``External - PTV``)
is judged like any organ where the protocol sets prior-radiation limits on it, and left out
otherwise (its unjudged EQD2 rows would say nothing of an organ).

A structure reaching beyond the current dose grid (a clipped grid; the body always does) has no
current dose computed there. That part is sampled on its own (:func:`sample_beyond`) with each
prior's dose, and its current dose is taken anywhere from 0 Gy to the highest current dose on
the grid faces the structure crosses (the assumption of :mod:`rtqa.dvh.beyond_grid`, stated in
every finding that uses it). Likewise a part beyond a prior's dose grid takes that prior's dose
anywhere from 0 Gy to the most on the faces of its grid the structure crosses
(:func:`~rtqa.protocol.prior_sampling.prior_face_bound`). Each figure is computed with every
such dose at 0 Gy and at its bound; as every DVH metric grows with those doses, the two values
enclose the figure, and they are judged as the organ rules judge a structure beyond the grid
(:func:`~rtqa.protocol.judging.judge_ends`). Where no bound can be had, or a part too small to
count (rounding) has no prior dose, the figure covers the known part only: a pass is then
``not_evaluable``, and a deviation stands only where the figure can only grow with the rest.
So it is where another plan of the course contours the organ beyond the judged ROI
(``PriorInput.organ_further``, :func:`~rtqa.protocol.organ_extent.contoured_further`), as in
the organ rules. An organ with prior-radiation limits that the organ rules could not hand
over (not contoured, ambiguous, unusable) is named by :func:`unjudged_organ_findings`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtqa.dvh.core import Dvh, MetricUndefined
from rtqa.model import Finding, Roi, Status
from rtqa.protocol.judging import judge_ends, span_words, value_range
from rtqa.protocol.matching import single_plane_notes
from rtqa.protocol.metrics import (
    MetricNotEvaluable,
    MetricRequest,
    evaluate,
    grows_with_volume,
    parse_metric,
)
from rtqa.protocol.model import Limit, Protocol
from rtqa.protocol.prior_alpha_beta import AlphaBeta, alpha_beta
from rtqa.protocol.prior_inputs import (
    DOSED_EQD2_GY,
    GROUP,
    UNKNOWN_TOLERANCE_CC,
    MappedPrior,
    PriorInput,
)
from rtqa.protocol.prior_sampling import Beyond, Samples, sample, sample_beyond, sample_derived
from rtqa.protocol.structure_dvhs import derived_name
from rtqa.radiobiology import LQ_DOUBTFUL_ABOVE_GY, eqd2, high_dose_per_fraction_note

_UNJUDGED_METRICS = ("Max[Gy]", "Mean[Gy]")


@dataclass(frozen=True)
class OrganEqd2:
    """EQD2 DVHs of one organ (Gy): current course, all prior courses (undiscounted),
    cumulative (after any recovery discount); ``unknown_prior_cc``: volume whose prior dose is
    unknown and unbounded (left out of the prior and cumulative distributions).

    ``outside_cc``: volume beyond the current dose grid. Where ``beyond_bound_gy`` (physical Gy)
    is set, that part was sampled with the prior doses and its current dose lies between 0 Gy
    and the bound: ``current`` leaves it unknown with ``current.beyond_grid_max_gy`` the bound's
    EQD2, and the prior and cumulative distributions include it. Otherwise no dose of either
    course is known there and every figure covers the rest. ``prior_parts``: per prior whose
    grid the organ reaches beyond, ``(label, cc, bound Gy)``: its dose there lies between 0 Gy
    and the bound (:func:`~rtqa.protocol.prior_sampling.prior_face_bound`). ``prior`` and
    ``cumulative`` hold every bounded dose at 0 Gy, ``prior_high`` and ``cumulative_high`` at its
    bound (None where nothing is bounded: the one distribution is exact)."""

    current: Dvh
    prior: Dvh | None
    cumulative: Dvh | None
    unknown_prior_cc: float
    max_physical: list[tuple[str, float, int]]  # (course, organ max Gy, fractions)
    outside_cc: float = 0.0
    beyond_bound_gy: float | None = None
    cumulative_high: Dvh | None = None
    prior_high: Dvh | None = None
    prior_parts: tuple[tuple[str, float, float], ...] = ()

    @property
    def bounded(self) -> bool:
        """Whether the part beyond the current dose grid is judged over its bound."""
        return self.outside_cc > 0 and self.beyond_bound_gy is not None


#: The sections of ``prior_radiation`` that set limits on an organ.
LIMIT_SECTIONS = ("cumulative_eqd2", "course_eqd2", "course_share")
#: Volume beyond the current dose grid below which a structure counts as inside (rounding of
#: the occupancy): this many cc, or this fraction of the structure, whichever is larger.
OUTSIDE_TOLERANCE_FRACTION = 1e-4


def prior_limits(protocol: Protocol, organ: str) -> dict[str, tuple[Limit, ...]]:
    """The prior-radiation limits set on ``organ`` (a protocol organ name), by section; empty
    when the protocol sets none."""
    pr = protocol.prior_radiation
    if pr is None:
        return {}
    return {s: getattr(pr, s)[organ] for s in LIMIT_SECTIONS if getattr(pr, s).get(organ)}


def unjudged_organ_findings(
    protocol: Protocol, organ: str, why: str, status: Status = Status.NOT_EVALUABLE
) -> list[Finding]:
    """One finding per ``prior_radiation`` section that sets limits on ``organ`` saying that
    they are not judged and ``why`` (none when the protocol sets no prior limit on it)."""
    out = []
    for section, limits in prior_limits(protocol, organ).items():
        written = "; ".join(
            f"{lim.metric.canonical} {', '.join(lim.conditions.values())}" for lim in limits
        )
        out.append(
            Finding(
                GROUP,
                section,
                status,
                f"{organ}: prior_radiation {section} limits ({written}) not judged: {why}",
                roi=None,
                match=organ,
                metric=limits[0].metric.canonical if len(limits) == 1 else None,
                limits=dict(limits[0].conditions) if len(limits) == 1 else {},
                source=str(limits[0].source),
                confidence=limits[0].confidence.value,
            )
        )
    return out


def is_body(roi: Roi, inp: PriorInput) -> bool:
    """Whether ``roi`` is the body outline: an EXTERNAL ROI, or the course's body."""
    return roi.interpreted_type.upper() == "EXTERNAL" or (inp.body is not None and roi is inp.body)


def _organ_eqd2(
    s: Samples,
    inp: PriorInput,
    priors: list[MappedPrior],
    ab: float,
    recovery: float,
    beyond: Beyond | None = None,
) -> OrganEqd2:
    current = np.asarray(eqd2(s.current_gy, inp.fractions, ab), dtype=float)
    spread = None
    if s.current_spread_gy is not None:
        # the current dose's spread within a cell, carried through the local slope of EQD2
        slope = (2.0 * np.clip(s.current_gy, 0.0, None) / inp.fractions + ab) / (2.0 + ab)
        spread = slope * np.asarray(s.current_spread_gy, dtype=float)
    outside = s.outside_cc
    if not _reaches_beyond(s):
        outside, beyond = 0.0, None
    cur_dvh = Dvh.from_samples(current, s.volumes_cc, s.outside_cc, spreads_gy=spread)
    # the samples of the prior and cumulative distributions: inside the current grid, then
    # beyond it (current EQD2 0 Gy there at the low end, the bound's at the high end)
    volumes, now_lo, now_hi, now_spread = s.volumes_cc, current, current, spread
    doses, bounds = s.priors_gy, s.prior_bounds_gy or [None for _ in priors]
    lost_outside = s.outside_cc
    if beyond is not None:
        bound_eqd2 = float(eqd2(beyond.bound_gy, inp.fractions, ab))
        cur_dvh.beyond_grid_max_gy = bound_eqd2
        n = beyond.volumes_cc.size
        volumes = np.concatenate([volumes, beyond.volumes_cc])
        now_lo = np.concatenate([current, np.zeros(n)])
        now_hi = np.concatenate([current, np.full(n, bound_eqd2)])
        now_spread = None if spread is None else np.concatenate([spread, np.zeros(n)])
        doses = [np.concatenate(pair) for pair in zip(doses, beyond.priors_gy, strict=True)]
        bounds = [_larger(a, b) for a, b in zip(bounds, beyond.prior_bounds_gy, strict=True)]
        lost_outside = 0.0
    prior_lo, prior_hi, parts = _prior_ends(priors, doses, bounds, volumes, ab)
    known = ~np.isnan(prior_hi)
    unknown_prior = float(volumes[~known].sum())
    prior_dvh = prior_high = cum_dvh = cum_high = None
    if np.any(known):
        lost = lost_outside + unknown_prior
        v = volumes[known]
        cum_spread = None if now_spread is None else now_spread[known]
        prior_dvh = Dvh.from_samples(prior_lo[known], v, lost)
        cum_lo = now_lo[known] + (1.0 - recovery) * prior_lo[known]
        cum_dvh = Dvh.from_samples(cum_lo, v, lost, spreads_gy=cum_spread)
        if parts:
            prior_high = Dvh.from_samples(prior_hi[known], v, lost)
        if parts or beyond is not None:
            cum_hi = now_hi[known] + (1.0 - recovery) * prior_hi[known]
            cum_high = Dvh.from_samples(cum_hi, v, lost, spreads_gy=cum_spread)
    maxima = [("current course", _nanmax(s.current_gy), inp.fractions)]
    maxima += [
        (f"prior course '{p.label}'", _nanmax(d), p.fractions)
        for p, d in zip(priors, doses, strict=True)
    ]
    bound = beyond.bound_gy if beyond is not None else None
    return OrganEqd2(
        cur_dvh,
        prior_dvh,
        cum_dvh,
        unknown_prior,
        maxima,
        outside,
        bound,
        cum_high,
        prior_high,
        tuple(parts),
    )


def _reaches_beyond(s: Samples) -> bool:
    """Whether the structure's volume beyond the current dose grid counts: more than
    :data:`UNKNOWN_TOLERANCE_CC` and than :data:`OUTSIDE_TOLERANCE_FRACTION` of it (less is
    rounding of the occupancy)."""
    total = float(s.volumes_cc.sum()) + s.outside_cc
    return s.outside_cc > max(UNKNOWN_TOLERANCE_CC, OUTSIDE_TOLERANCE_FRACTION * total)


def _larger(a: float | None, b: float | None) -> float | None:
    return b if a is None else (a if b is None else max(a, b))


def _prior_ends(
    priors: list[MappedPrior],
    doses: list[np.ndarray],
    bounds: list[float | None],
    volumes: np.ndarray,
    ab: float,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]:
    """The prior courses' EQD2 (Gy) summed per sample with each prior's unknown dose at 0 Gy
    and at its bound (NaN where a dose is unknown and unbounded, or its unknown part is below
    :data:`UNKNOWN_TOLERANCE_CC`: rounding, left out as before), and the bounded parts as
    ``(label, cc, bound Gy)``."""
    low, high = np.zeros(volumes.size), np.zeros(volumes.size)
    parts = []
    for p, dose, bound in zip(priors, doses, bounds, strict=True):
        unknown = np.isnan(dose)
        known = np.asarray(eqd2(np.where(unknown, 0.0, dose), p.fractions, ab), dtype=float)
        cc = float(volumes[unknown].sum())
        if bound is None or cc <= UNKNOWN_TOLERANCE_CC:
            low = low + np.where(unknown, np.nan, known)
            high = high + np.where(unknown, np.nan, known)
            continue
        parts.append((p.label, cc, bound))
        low = low + np.where(unknown, 0.0, known)
        high = high + np.where(unknown, float(eqd2(bound, p.fractions, ab)), known)
    return low, high, parts


def _nanmax(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else 0.0


def _recovery(organ_name: str, protocol: Protocol) -> tuple[float, str]:
    """Recovery factor r for the organ (0 unless the protocol names one) and its description."""
    pr = protocol.prior_radiation
    sv = pr.recovery.get(organ_name) if pr is not None else None
    if sv is None:
        return 0.0, ""
    r = float(sv.value)  # type: ignore[arg-type]
    src = str(sv.source) if sv.source is not None else "protocol prior_radiation.recovery"
    return r, f"prior EQD2 discounted by {100 * r:g} % recovery ({src})"


def organ_findings(inp: PriorInput, priors: list[MappedPrior], protocol: Protocol):
    """Prior, current and cumulative EQD2 per organ, judged where the protocol sets limits.

    Returns (findings, organs with a cumulative-dose concern, organs dosed by both, values)."""
    out: list[Finding] = []
    concern: list[str] = []
    repeat: list[str] = []
    values: dict[str, dict[str, float]] = {}
    dvhs: dict[str, OrganEqd2] = {}
    for name, roi in inp.organs.items():
        limited = prior_limits(protocol, name)
        sections = {s: limited.get(s, ()) for s in LIMIT_SECTIONS}
        judged = any(sections.values())
        body = roi is not None and is_body(roi, inp)
        if roi is None or roi.is_empty or (body and not judged):
            # the body outline is judged only where the protocol limits it
            if judged:
                why = f"'{roi.name}' has no usable contour" if roi is not None else "no ROI"
                out.extend(unjudged_organ_findings(protocol, name, why))
            continue
        plus, minus = inp.organ_parts.get(name, ((), ()))
        # the structure judged: the ROI, or the derived one ('Trachea + Bronchus', 'Lungs - GTV')
        judged_name = derived_name(roi, minus, plus)
        title = judged_name if plus or minus else name  # what the messages name
        ab = alpha_beta(name, inp, protocol)
        recovery, recovery_text = _recovery(name, protocol)
        try:
            if plus or minus:
                samples, occ = sample_derived(roi, plus, minus, inp, priors)
            else:
                samples, occ = sample(roi, inp, priors)
            if samples.volumes_cc.size == 0:
                raise ValueError("it has no volume inside the current dose grid")
            beyond = sample_beyond(occ, inp, priors) if _reaches_beyond(samples) else None
            res = _organ_eqd2(samples, inp, priors, ab.value, recovery, beyond)
        except ValueError as exc:
            out.append(
                _organ_not_evaluable(
                    title, judged_name, name, f"EQD2 could not be computed: {exc}", judged
                )
            )
            continue
        dvhs[name] = res
        context = _organ_context(res, ab, recovery_text, judged_name)
        # an ROI contoured on one plane has its thickness by convention: say so
        context = "; ".join([context, *single_plane_notes((roi, *plus, *minus))])
        out.append(
            Finding(
                GROUP,
                "alpha_beta",
                Status.INFO,
                f"{title}: EQD2 with {ab.text}",
                roi=judged_name,
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
            figs = _figures(request, res)
            shown = {"prior": figs.prior[1], "current": figs.now[1], "cumulative": figs.cum[1]}
            values[f"{name} {request.canonical}"] = {
                k: v for k, v in shown.items() if v is not None
            }
            out.extend(
                _organ_rows(
                    (title, judged_name, name),
                    request,
                    figs,
                    sections,
                    context,
                    res,
                    ab.value,
                    further=inp.organ_further.get(name, ""),
                )
            )
        prior_max = res.prior.max_gy if res.prior is not None else 0.0
        # the body is dosed by every course: that tells nothing of an organ's cumulative dose
        if body:
            continue
        if prior_max >= DOSED_EQD2_GY and res.current.max_gy >= DOSED_EQD2_GY:
            (concern if judged else repeat).append(title)
    return out, concern, repeat, values, dvhs


def _metrics(sections: dict[str, tuple[Limit, ...]]) -> list[MetricRequest]:
    seen: dict[str, MetricRequest] = {}
    for limits in sections.values():
        for lim in limits:
            seen.setdefault(lim.metric.canonical, lim.metric)
    return list(seen.values())


Ends = tuple[float | None, float | None]


@dataclass(frozen=True)
class _Figures:
    """One metric of an organ: the prior, current and cumulative values, each at the two ends
    of the bounded unknown doses (every one at 0 Gy, every one at its bound; equal where
    nothing is bounded)."""

    prior: Ends
    now: Ends
    cum: Ends


def _figures(request: MetricRequest, res: OrganEqd2) -> _Figures:
    def ends(low: Dvh | None, high: Dvh | None) -> Ends:
        value = _value(request, low)
        return (value, value if high is None else _value(request, high))

    if res.bounded:
        top = res.current.beyond_grid_max_gy or 0.0
        now = ends(res.current.completed(0.0), res.current.completed(top))
    else:
        now = ends(res.current, None)
    prior = ends(res.prior, res.prior_high)
    return _Figures(prior, now, ends(res.cumulative, res.cumulative_high))


def _share(figs: _Figures) -> Ends:
    """The current / cumulative ratio's ends: the least and greatest ratio of either end of
    each (both figures grow, or both shrink, with the dose beyond the grid)."""
    ratios = [
        n / c for n in figs.now for c in figs.cum if n is not None and c is not None and c > 0
    ]
    if len(ratios) < 4:
        return (None, None)
    return (min(ratios), max(ratios))


def _value(request: MetricRequest, dvh: Dvh | None) -> float | None:
    if dvh is None:
        return None
    try:
        return evaluate(request, dvh)
    except (MetricNotEvaluable, MetricUndefined, ValueError):
        return None


def _organ_context(res: OrganEqd2, ab: AlphaBeta, recovery_text: str, roi_name: str) -> str:
    parts = [f"EQD2 {ab.text}, each course voxel-wise with its own fraction count, summed"]
    if recovery_text:
        parts.append(recovery_text)
    if res.bounded:
        top = res.current.beyond_grid_max_gy or 0.0
        parts.append(
            f"{_cc(res.outside_cc)} cc of '{roi_name}' lies outside the current dose grid: the "
            f"prior dose is sampled there, and its current dose taken from 0 Gy to "
            f"{res.beyond_bound_gy:.3g} Gy (EQD2 {top:.3g} Gy), the most on the grid faces it "
            "crosses (assuming the dose falls off beyond the grid); current and cumulative "
            "figures are given at both ends"
        )
    elif res.outside_cc > 0:
        parts.append(
            f"{_cc(res.outside_cc)} cc of '{roi_name}' lies outside the current dose grid (no "
            "dose of either course sampled there; every figure covers the rest)"
        )
    for name, cc, bound in res.prior_parts:
        parts.append(
            f"{_cc(cc)} cc of '{roi_name}' lies outside the dose grid of '{name}': its dose there "
            f"taken from 0 Gy to {bound:.3g} Gy, the most on that grid's faces it crosses "
            "(assuming the dose falls off beyond the grid); prior and cumulative figures are "
            "given at both ends"
        )
    if res.unknown_prior_cc > UNKNOWN_TOLERANCE_CC:
        parts.append(
            f"{_cc(res.unknown_prior_cc)} cc of '{roi_name}' lies outside the prior dose grid "
            "(prior dose unknown there; prior and cumulative figures cover the rest)"
        )
    for who, max_gy, n in res.max_physical:
        if n >= 1 and max_gy / n > LQ_DOUBTFUL_ABOVE_GY:
            parts.append(high_dose_per_fraction_note(max_gy, n, label=f"{roi_name}, {who}") or "")
    return "; ".join(p for p in parts if p)


def _fmt(v: float | None, unit: str = "Gy") -> str:
    return "unknown" if v is None else f"{v:.2f} {unit}".rstrip()


def _fmt_ends(ends: Ends, unit: str = "Gy") -> str:
    """One value, or ``20.76 to 21.30 Gy`` where the two ends differ (2 decimals)."""
    lo, hi = ends
    if lo is None or hi is None or f"{lo:.2f}" == f"{hi:.2f}":
        return _fmt(hi if lo is None else lo, unit)
    lo, hi = sorted((lo, hi))
    return f"{lo:.2f} to {_fmt(hi, unit)}"


def _cc(v: float) -> str:
    """A volume (cc) in three significant figures, without an exponent."""
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


_TAGS = {"prior": "EQD2pri", "now": "EQD2now", "cum": "EQD2cum", "ratio": "now/cum"}


def _label(request: MetricRequest, ab: float, tag: str) -> str:
    """Short metric label for a table, e.g. ``EQD2cum Max`` (cumulative EQD2, point maximum);
    the α/β is in the message and in the organ's ``alpha_beta`` row."""
    return f"{_TAGS[tag]} {request.canonical.split('[')[0]}"


def _organ_rows(
    names, request, figs: _Figures, sections, context, res, ab: float, further: str = ""
) -> list[Finding]:
    """The rows of one metric; ``names``: (what messages name the organ, the structure judged,
    the protocol's organ name); ``further``: why another plan's contour of the organ reaches
    beyond the judged one ('' where none does)."""
    title, roi_name, organ = names
    metric = request.canonical
    unit = request.unit
    side = (
        f"{title} {metric} EQD2: prior {_fmt_ends(figs.prior, unit)}, current "
        f"{_fmt_ends(figs.now, unit)}, cumulative {_fmt_ends(figs.cum, unit)}"
    )
    message = f"{side} ({context})"
    base = {"roi": roi_name, "match": organ}
    if request.unit not in ("Gy", "cGy", "cc", "%") or request.needs_rx:
        why = f"{metric}: not an EQD2 dose metric"
        return [_organ_not_evaluable(title, roi_name, organ, why, True)]

    grows = grows_with_volume(request)

    def shown(rule: str, which: str, ends: Ends, prior_part: bool) -> Finding:
        """An unjudged row showing one course's value (at the bound where it has two)."""
        known = _gaps(res, prior=prior_part, further=further)
        return Finding(
            GROUP,
            rule,
            Status.INFO,
            message,
            metric=_label(request, ab, which),
            value=ends[1],
            unit=request.unit,
            value_range=value_range(ends, partial=bool(known), grows=grows),
            **base,
        )

    rows = [shown("prior_eqd2", "prior", figs.prior, True)]
    limits = {s: [lim for lim in sections[s] if lim.metric.canonical == metric] for s in sections}

    # each course's figure: judged against its limits, else shown
    for section, shown_rule, tag, ends, prior_part in (
        ("course_eqd2", "current_eqd2", "now", figs.now, False),
        ("cumulative_eqd2", "cumulative_eqd2", "cum", figs.cum, True),
    ):
        for lim in limits[section]:
            label = _label(request, ab, tag)
            rows.append(
                _judge(
                    section,
                    label,
                    ends,
                    request.unit,
                    lim,
                    message,
                    base,
                    gaps=_gaps(res, prior=prior_part, further=further),
                    grows=grows,
                    beyond=_bound_words(res, prior=prior_part, label=label),
                )
            )
        if not limits[section]:
            rows.append(shown(shown_rule, tag, ends, prior_part))
    for lim in limits["course_share"]:
        share = _share(figs)
        share_msg = (
            f"{side}; current / cumulative = {_fmt_ends(share, '')} ({context})"
            if share[0] is not None
            else message
        )
        label = _label(request, ab, "ratio")
        rows.append(
            _judge(
                "course_share",
                label,
                share,
                "",
                lim,
                share_msg,
                base,
                gaps=_gaps(res, prior=True, further=further),
                beyond=_bound_words(res, prior=True, label=label),
            )
        )
    return rows


def _bound_words(res: OrganEqd2, prior: bool, label: str) -> str:
    """The bounds a figure ``label`` is judged over, ending with the figure's name ('' where
    none is used): the current dose beyond the current grid and, with ``prior``, each prior
    dose beyond its own grid."""
    parts = []
    if res.bounded:
        parts.append(
            f"the current dose beyond the grid anywhere from 0 Gy to {res.beyond_bound_gy:.3g} Gy"
        )
    if prior:
        parts += [
            f"the dose of '{name}' beyond its grid anywhere from 0 Gy to {bound:.3g} Gy"
            for name, _, bound in res.prior_parts
        ]
    return f"with {' and '.join(parts)}, {label}" if parts else ""


def _gaps(res: OrganEqd2, prior: bool, further: str = "") -> list[tuple[float | None, str, str]]:
    """The parts of the organ a figure leaves out, as (cc or None, what the figure covers, what
    is unknown there): beyond the current dose grid where no bound is known; with ``prior``,
    beyond the prior grid where no bound is known; and where another plan contours the organ
    further (``further``, :func:`~rtqa.protocol.organ_extent.contoured_further`)."""
    out: list[tuple[float | None, str, str]] = []
    if res.outside_cc > 0 and not res.bounded:
        known = "where the doses are known" if prior else "where the current dose is known"
        out.append((res.outside_cc, known, "lies outside the current dose grid"))
    if prior and res.unknown_prior_cc > UNKNOWN_TOLERANCE_CC:
        text = "has no prior dose (outside the prior grid)"
        out.append((res.unknown_prior_cc, "where the prior dose is known", text))
    if further:
        out.append((None, "on the judged contour", further))
    return out


def _judge(
    rule, metric, ends: Ends, unit, lim: Limit, message, base, gaps=(), grows=False, beyond=""
) -> Finding:
    """A prior-group finding judging a figure against ``lim``. ``ends``: its values with the
    bounded unknown doses at 0 Gy and at their bounds (equal where no bound is used);
    ``beyond`` (:func:`_bound_words`) marks a bounded figure, judged by
    :func:`~rtqa.protocol.judging.judge_ends`. Where ``gaps`` (:func:`_gaps`) leave part of the
    organ out, the value covers the rest only: a pass is not evaluable, and so is a deviation
    unless ``grows`` (:func:`~rtqa.protocol.metrics.grows_with_volume`) and the limit is an
    upper one."""
    prov = {"source": str(lim.source), "confidence": lim.confidence.value}
    lo, hi = ends
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in ends):
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
    text = message
    if beyond:
        status, value, margin, verdict = judge_ends(lim.bands, [lo, hi])
        text += f"; {beyond} {span_words(lo, hi)}" + (f": {verdict}" if verdict else "")
    else:
        j = lim.judge(lo)
        status, value, margin = j.status, lo, j.margin
    if lim.note:
        text += f"; limit: {lim.note}"
    if gaps:
        known = gaps[0][1] if len(gaps) == 1 else "where the doses are known"
        missing = " and ".join(
            what if cc is None else f"{_cc(cc)} cc of the organ {what}" for cc, _, what in gaps
        )
        if status is Status.PASS:
            status = Status.NOT_EVALUABLE
            text += f"; within the limit {known}, but {missing}"
        elif status is Status.NOT_EVALUABLE:
            text += f"; besides, {missing}"
        elif not (grows and lim.bands.per_protocol.upper):
            status = Status.NOT_EVALUABLE
            text += (
                f"; beyond the limit {known}, but {missing} and this figure for the whole "
                "organ could lie on either side of the limit"
            )
        else:  # a deviation that the missing part can only deepen
            text += f"; beyond the limit {known} already, though {missing}"
    return Finding(
        GROUP,
        rule,
        status,
        text,
        metric=metric,
        value=value,
        unit=unit,
        limits=lim.conditions,
        margin=margin,
        value_range=value_range(ends, partial=bool(gaps), grows=grows),
        **prov,
        **base,
    )


def _organ_not_evaluable(title: str, roi_name: str, organ: str, why: str, judged: bool) -> Finding:
    return Finding(
        GROUP,
        "cumulative_eqd2",
        Status.NOT_EVALUABLE if judged else Status.INFO,
        f"{title}: {why}",
        roi=roi_name,
        match=organ,
    )
