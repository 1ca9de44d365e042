"""Judging one limit on a DVH (status, margin, unrounded value) and its EQD2 form.

Doses Gy (or cGy where the metric says so), volumes cc or %.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rtqa.model import Finding, Status
from rtqa.protocol.bands import Bands, Condition
from rtqa.protocol.metrics import MetricKind, MetricNotEvaluable, evaluate, grows_with_volume
from rtqa.protocol.model import Limit

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
    bound = getattr(dvh, "beyond_grid_max_gy", None) if unknown > 0 else None
    if bound is not None and not req.is_quality:
        enclosed = _judge_enclosed(lim, bands, dvh, unknown, bound, rx_gy)
        if enclosed is not None:
            status, value, margin, words, ends = enclosed
            extra += [*_too_small(req, bands, dvh), words]
            if status is not Status.PASS and lim.note:
                extra.append(lim.note)
            return Finding(
                status=status,
                message="; ".join(extra),
                value=value,
                margin=margin,
                value_range=value_range(ends),
                **base,
            )
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
    extra[:0] = _too_small(req, bands, dvh)
    if j.status is not Status.PASS and lim.note:
        extra.append(lim.note)
    # read on the part inside the grid: the whole's figure is at least this where it can only
    # grow with the part outside, else unknown
    known = value_range([value], partial=True, grows=grows_with_volume(req)) if unknown else None
    return Finding(
        status=j.status,
        message="; ".join(extra),
        value=value,
        margin=j.margin,
        value_range=known,
        **base,
    )


def _too_small(req, bands: Bands, dvh: Any) -> list[str]:
    """The words for a critical-volume rule (CV..[cc] >= v) on a structure smaller than v."""
    if (
        req.kind is MetricKind.COLD_VOLUME_AT_DOSE
        and req.unit == "cc"
        and not bands.per_protocol.upper
        and dvh is not None
        and dvh.total_volume_cc < bands.per_protocol.limit
    ):
        return [
            f"the structure ({dvh.total_volume_cc:.4g} cc) is smaller than the "
            f"{bands.per_protocol.limit:g} cc it must spare"
        ]
    return []


def _judge_enclosed(
    lim: Limit, bands: Bands, dvh: Any, unknown_cc: float, bound_gy: float, rx_gy: float | None
) -> tuple[Status, float | None, float | None, str, list[float]] | None:
    """Judge a structure partly outside the dose grid over the dose its outside part may have:
    from 0 Gy to ``bound_gy``, the highest dose on the grid faces it crosses
    (:mod:`rtqa.dvh.beyond_grid`). Every DVH metric moves one way with that dose, so its values
    at the two ends enclose the structure's; they are judged by :func:`judge_ends`.
    ``(status, value, margin, words, ends)``, or None where the metric is undefined at an
    end (the caller judges the known part alone)."""
    from rtqa.dvh import MetricUndefined

    req = lim.metric
    ends = []
    for dose in (0.0, bound_gy):
        try:
            ends.append(evaluate(req, dvh.completed(dose), rx_gy=rx_gy))
        except (MetricUndefined, MetricNotEvaluable):
            return None
    words = (
        f"{unknown_cc:.3g} cc lies outside the dose grid: with its dose anywhere from 0 Gy to "
        f"{bound_gy:.3g} Gy (the most on the grid faces it crosses), {req.canonical} "
        f"{span_words(*ends)}"
    )
    status, value, margin, verdict = judge_ends(bands, ends)
    return status, value, margin, f"{words}: {verdict}" if verdict else words, ends


def span_words(a: float, b: float) -> str:
    """``is 12.3 either way`` or ``lies between 12.3 and 14.5`` (4 significant figures)."""
    low, high = sorted((a, b))
    if f"{low:.4g}" == f"{high:.4g}":
        return f"is {low:.4g} either way"
    return f"lies between {low:.4g} and {high:.4g}"


def value_range(
    ends: Sequence[float | None], *, partial: bool = False, grows: bool = False
) -> tuple[float | None, float | None] | None:
    """``Finding.value_range`` of a figure computed at ``ends`` (its values with the unknown
    doses at 0 Gy and at their bounds): None where they agree (the figure is known), else
    ``(low, high)``. With ``partial`` the figures cover part of the structure only: the whole's
    is at least the lowest where it can only grow with the missing part (``grows``,
    :func:`~rtqa.protocol.metrics.grows_with_volume`), else unknown ``(None, None)``."""
    known = [float(v) for v in ends if v is not None and math.isfinite(v)]
    if partial:
        return (min(known), None) if grows and known and len(known) == len(ends) else (None, None)
    if len(known) < len(ends):
        return (None, None)
    low, high = min(known), max(known)
    return None if low == high else (low, high)


def judge_ends(bands: Bands, ends: list[float]) -> tuple[Status, float | None, float | None, str]:
    """Judge a figure known only to lie between two values (``ends``, in the metric's unit):
    ``(status, value, margin, verdict)``. The same verdict at both ends stands, with the end
    nearer the limit (or farther beyond it) as value and ``verdict`` empty; a pass at one end
    and a deviation at the other is ``not_evaluable`` (no value); two different deviations give
    the lesser, ``verdict`` naming the greater."""
    judged = [(v, bands.judge(v)) for v in ends]
    (_, j0), (_, j1) = judged
    if j0.status is j1.status:
        value, j = min(judged, key=lambda e: e[1].margin)
        return j.status, value, j.margin, ""
    (value, better), (_, worse) = sorted(judged, key=lambda e: e[1].status.rank)
    if better.status is Status.PASS:
        return Status.NOT_EVALUABLE, None, None, "per protocol at one end only"
    return better.status, value, better.margin, f"{worse.status.value} at the other end"


def _critical_volume_too_large(req, bands: Bands, total_cc: float) -> bool:
    if req.kind not in (MetricKind.COLD_DOSE_AT_VOLUME, MetricKind.COLD_VOLUME_AT_DOSE):
        return False
    return req.query_unit == "cc" and req.value is not None and req.value > total_cc


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


__all__ = [
    "OUTSIDE_TOLERANCE_CC",
    "OUTSIDE_TOLERANCE_FRACTION",
    "eqd2_limit",
    "judge_limit",
    "outside_cc",
    "value_range",
]
