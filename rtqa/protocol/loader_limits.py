"""Limits in constraint files: a metric with its condition bands, singly or as a table.

Besides the syntax, a limit must be possible and able to fail (:func:`check_plausible`) and an
``acceptable`` band must be strictly looser than ``per_protocol`` (:func:`read_bands`): a file that
breaks either is refused like any other malformed file (the loader has no warnings).
"""

from __future__ import annotations

from typing import Any

from rtqa.protocol.bands import Bands, Condition, ConditionSyntaxError, bands_from_texts
from rtqa.protocol.loader_provenance import PROV_KEYS, Prov, read_note, read_prov, require_prov
from rtqa.protocol.metrics import MetricKind, MetricRequest, MetricSyntaxError, parse_metric
from rtqa.protocol.model import Limit
from rtqa.protocol.yaml_node import Node, kind

LIMIT_KEYS = ("limit", "per_protocol", "acceptable", *PROV_KEYS, "note")

#: A limit in Gy above this is taken for a unit slip (cGy written as Gy): no organ or target
#: limit, physical or cumulative EQD2, comes near it, and a plan never exceeds it.
MAX_PLAUSIBLE_GY = 200.0
#: A limit in cGy below this (1 Gy) is taken for a unit slip (Gy written as cGy); a genuine
#: sub-gray limit (e.g. fetal dose) is written in Gy.
MIN_PLAUSIBLE_CGY = 100.0


def read_bands(node: Node, texts: dict[str, Any]) -> Bands:
    """The bands written at ``node``. An ``acceptable`` condition must point the same way as
    ``per_protocol`` and be strictly looser: its number beyond per_protocol's (greater for ``<``
    and ``<=``, smaller for ``>`` and ``>=``). Equal numbers are refused whatever the operators:
    ``<= 14`` with ``<= 14`` leaves no minor band, ``<= 14`` with ``< 14`` a stricter one, and
    ``< 14`` with ``<= 14`` a minor band of the single value 14."""
    try:
        bands = bands_from_texts(**texts)
    except ConditionSyntaxError as exc:
        raise node.fail(str(exc)) from None
    except ValueError as exc:
        raise node.fail(str(exc)) from None
    pp, acc = bands.per_protocol, bands.acceptable
    if acc is not None and acc.limit == pp.limit:
        if acc.op == pp.op:
            why = "the minor band between them is empty"
        elif pp.op.endswith("="):
            why = "acceptable is stricter"
        else:
            why = f"the minor band between them is the single value {pp.limit:g}"
        raise node.fail(
            f"acceptable {acc.text!r} is not looser than per_protocol {pp.text!r}: {why}; "
            f"acceptable's limit must lie {'above' if pp.upper else 'below'} {pp.limit:g}"
        )
    return bands


def check_plausible(
    node: Node, metric: MetricRequest, bands: Bands, *, share: bool = False
) -> None:
    """Refuse a condition that is impossible, can never fail, or is implausible for ``metric``.

    Every DVH metric is >= 0, so a negative limit, or ``< 0``, is refused. A percentage of a
    structure's volume (``V..[%]``, ``CV..[%]``) lies in 0-100, and a ``share`` (a prior
    course's share of the cumulative EQD2) in 0-1: a limit outside that range, ``<= 100``
    (``<= 1``), ``>= 0`` or ``> 100`` (``> 1``) is refused. A dose limit above
    :data:`MAX_PLAUSIBLE_GY` Gy (20000 cGy) or below :data:`MIN_PLAUSIBLE_CGY` cGy (but above
    0) is taken for a unit slip and refused."""
    conds = [("limit" if bands.acceptable is None else "per_protocol", bands.per_protocol)]
    if bands.acceptable is not None:
        conds.append(("acceptable", bands.acceptable))
    volume_pct = metric.unit == "%" and metric.kind in (
        MetricKind.VOLUME_AT_DOSE,
        MetricKind.COLD_VOLUME_AT_DOSE,
    )
    if share:
        what, top = "a share of the cumulative EQD2", 1.0
    elif volume_pct:
        what, top = "a percentage of the structure's volume", 100.0
    else:
        what, top = (
            {"Gy": "a dose", "cGy": "a dose", "cc": "a volume", "%": "a percentage"}.get(
                metric.unit, "a value"
            ),
            None,
        )
    for label, cond in conds:
        problem = _implausible(cond, metric, what, top, share)
        if problem:
            raise node.fail(f"{label} {cond.text!r} for {metric.canonical}: {problem}")


def _implausible(
    cond: Condition, metric: MetricRequest, what: str, top: float | None, share: bool
) -> str:
    lim, op = cond.limit, cond.op
    if lim < 0:
        return f"{what} is never negative; a negative limit is impossible"
    if op == "<" and lim == 0:
        return f"{what} is never below 0: the limit can never be met"
    if top is not None:
        rng = f"0-{top:g}"
        if lim > top:
            return f"{what} lies in {rng}; a limit above {top:g} is impossible or can never fail"
        if op == "<=" and lim == top:
            return f"{what} is never above {top:g}: the limit can never fail"
        if op == ">" and lim == top:
            return f"{what} is never above {top:g}: the limit can never be met"
        if op == ">=" and lim == 0:
            return f"{what} is never below 0: the limit can never fail"
    if share:
        return ""
    if metric.unit == "Gy" and lim > MAX_PLAUSIBLE_GY:
        return (
            f"a dose limit above {MAX_PLAUSIBLE_GY:g} Gy is implausible (a limit in cGy? write "
            f"the metric with [cGy])"
        )
    if metric.unit == "cGy" and lim > MAX_PLAUSIBLE_GY * 100:
        return f"a dose limit above {MAX_PLAUSIBLE_GY * 100:g} cGy is implausible"
    if metric.unit == "cGy" and 0 < lim < MIN_PLAUSIBLE_CGY:
        return (
            f"a dose limit under {MIN_PLAUSIBLE_CGY:g} cGy (1 Gy) is implausible (a limit in Gy? "
            f"write the metric with [Gy]; a genuine sub-gray limit is written in Gy, "
            f"e.g. '{op} {lim / 100:g}' with [Gy])"
        )
    return ""


def read_limit(
    metric_node: Node,
    spec: Node,
    inherited: Prov,
    fractions: int | None,
    *,
    key: Any,
    share: bool = False,
) -> Limit:
    try:
        metric = parse_metric(key)
    except MetricSyntaxError as exc:
        raise metric_node.fail(str(exc)) from None
    if metric.is_quality:
        raise metric_node.fail(
            f"{metric.canonical} is a plan-quality metric: put it under plan_quality"
        )
    if isinstance(spec.value, str):
        bands, prov, note = read_bands(spec, {"limit": spec.value}), inherited, ""
    elif isinstance(spec.value, dict):
        m = spec.mapping(LIMIT_KEYS)
        bands = read_bands(
            spec, {k: m[k] for k in ("limit", "per_protocol", "acceptable") if k in m}
        )
        prov, note = read_prov(spec, inherited), read_note(spec)
    else:
        raise spec.fail(
            f"expected a condition such as '<= 21.9' or a mapping with limit / per_protocol / "
            f"acceptable, found {kind(spec.value)}"
        )
    check_plausible(spec, metric, bands, share=share)
    source, confidence = require_prov(spec, prov)
    return Limit(metric, bands, source, confidence, spec.line, fractions, note)


def read_limit_table(
    node: Node, inherited: Prov, fractions: int | None, *, share: bool = False
) -> tuple[Limit, ...]:
    """A mapping metric -> spec (``share``: the values are shares 0-1, see
    :func:`check_plausible`)."""
    node.mapping(tuple(node.value) if isinstance(node.value, dict) else ())
    return tuple(
        read_limit(sub, sub, inherited, fractions, key=key, share=share)
        for key, sub in node.items()
    )
