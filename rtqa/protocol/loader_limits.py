"""Limits in constraint files: a metric with its condition bands, singly or as a table."""

from __future__ import annotations

from typing import Any

from rtqa.protocol.bands import Bands, ConditionSyntaxError, bands_from_texts
from rtqa.protocol.loader_provenance import PROV_KEYS, Prov, read_note, read_prov, require_prov
from rtqa.protocol.metrics import MetricSyntaxError, parse_metric
from rtqa.protocol.model import Limit
from rtqa.protocol.yaml_node import Node, kind

LIMIT_KEYS = ("limit", "per_protocol", "acceptable", *PROV_KEYS, "note")


def read_bands(node: Node, texts: dict[str, Any]) -> Bands:
    try:
        return bands_from_texts(**texts)
    except ConditionSyntaxError as exc:
        raise node.fail(str(exc)) from None
    except ValueError as exc:
        raise node.fail(str(exc)) from None


def read_limit(
    metric_node: Node, spec: Node, inherited: Prov, fractions: int | None, *, key: Any
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
    source, confidence = require_prov(spec, prov)
    return Limit(metric, bands, source, confidence, spec.line, fractions, note)


def read_limit_table(node: Node, inherited: Prov, fractions: int | None) -> tuple[Limit, ...]:
    """A mapping metric -> spec."""
    node.mapping(tuple(node.value) if isinstance(node.value, dict) else ())
    return tuple(read_limit(sub, sub, inherited, fractions, key=key) for key, sub in node.items())
