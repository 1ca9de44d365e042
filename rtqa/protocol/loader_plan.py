"""The ``plan_quality`` and ``plan_checks`` sections of a constraint file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtqa.protocol.loader_fractionation import read_sites_ref
from rtqa.protocol.loader_limits import LIMIT_KEYS, read_bands
from rtqa.protocol.loader_provenance import (
    PROV_KEYS,
    Prov,
    read_note,
    read_prov,
    read_sourced,
    require_prov,
)
from rtqa.protocol.metrics import MetricSyntaxError, parse_metric
from rtqa.protocol.model import PlanChecks, PlanQuality, QualityRow, QualityRule, Site, SourcedValue
from rtqa.protocol.yaml_node import Node, kind

_OPS = ("<", "<=", ">", ">=")


def _quality_rule(key: Any, node: Node, inherited: Prov) -> QualityRule:
    try:
        metric = parse_metric(key)
    except MetricSyntaxError as exc:
        raise node.fail(str(exc)) from None
    if not metric.is_quality:
        raise node.fail(
            f"{metric.canonical} is a DVH metric; plan_quality takes CI, CI_Paddick, GI, R50%, "
            f"D2cm[%], HI or Spill105[%] (put DVH metrics under targets)"
        )
    if not isinstance(node.value, dict):
        raise node.fail(f"expected a mapping, found {kind(node.value)}")
    prov = read_prov(node, inherited)
    if "table" not in node.value:
        m = node.mapping(LIMIT_KEYS)
        bands = read_bands(
            node, {k: m[k] for k in ("limit", "per_protocol", "acceptable") if k in m}
        )
        source, conf = require_prov(node, prov)
        return QualityRule(metric, source, conf, bands=bands, line=node.line, note=read_note(node))
    m = node.mapping(
        ("table", "per_protocol", "acceptable", *PROV_KEYS, "note"), ("table", "per_protocol")
    )
    pp_op = node.child("per_protocol").string(_OPS)
    acc_op = node.child("acceptable").string(_OPS) if "acceptable" in m else None
    if acc_op is not None and (acc_op in ("<", "<=")) != (pp_op in ("<", "<=")):
        raise node.child("acceptable").fail("per_protocol and acceptable point in opposite ways")
    rows: list[QualityRow] = []
    for el in node.child("table").elements():
        if isinstance(el.value, list):
            if len(el.value) != (3 if acc_op else 2):
                raise el.fail(
                    f"expected [ptv_cc, per_protocol{', acceptable' if acc_op else ''}], "
                    f"found {len(el.value)} values"
                )
            vals = [el.child(i).number() for i in range(len(el.value))]
            rprov, note = prov, ""
        else:
            el.mapping(
                ("ptv_cc", "per_protocol", "acceptable", *PROV_KEYS, "note"),
                ("ptv_cc", "per_protocol", *(("acceptable",) if acc_op else ())),
            )
            vals = [el.child("ptv_cc").number(), el.child("per_protocol").number()]
            if acc_op:
                vals.append(el.child("acceptable").number())
            rprov, note = read_prov(el, prov), read_note(el)
        source, conf = require_prov(el, rprov)
        ptv, per = vals[0], vals[1]
        acc = vals[2] if acc_op else None
        if ptv <= 0:
            raise el.fail(f"the PTV volume must be positive, found {ptv:g}")
        if rows and ptv <= rows[-1].ptv_cc:
            raise el.fail("table rows must have increasing PTV volumes")
        if acc is not None:
            looser = acc >= per if pp_op in ("<", "<=") else acc <= per
            if not looser:
                raise el.fail(f"acceptable {acc:g} is stricter than per_protocol {per:g}")
            if acc == per:  # as read_bands: the acceptable limit must lie strictly beyond
                raise el.fail(
                    f"acceptable {acc:g} equals per_protocol {per:g}: no minor band; "
                    f"acceptable's limit must lie {'above' if pp_op in ('<', '<=') else 'below'} "
                    f"{per:g}"
                )
        rows.append(QualityRow(ptv, per, acc, source, conf, el.line, note))
    if len(rows) < 2:
        raise node.child("table").fail("a plan-quality table needs at least two rows")
    source, conf = require_prov(node, prov)
    return QualityRule(
        metric, source, conf, None, pp_op, acc_op, tuple(rows), node.line, read_note(node)
    )


def parse_plan_quality(node: Node, sites: dict[str, Site]) -> PlanQuality:
    m = node.mapping(("sites", "metrics", *PROV_KEYS, "note"), ("metrics",))
    prov = read_prov(node, Prov())
    mn = node.child("metrics")
    mn.mapping(tuple(mn.value) if isinstance(mn.value, dict) else ())
    rules = tuple(_quality_rule(key, sub, prov) for key, sub in mn.items())
    return PlanQuality(
        rules=rules,
        sites=read_sites_ref(node.child("sites"), sites) if "sites" in m else (),
        line=node.line,
        note=read_note(node),
    )


_HETERO = ("required", "recommended", "not_required")


def parse_plan_checks(node: Node) -> PlanChecks:
    keys = ("max_grid_spacing_mm", "grid_covers_structures", "heterogeneity_correction")
    m = node.mapping((*keys, *PROV_KEYS, "note"))
    prov = read_prov(node, Prov())

    def opt(key: str, read: Callable[[Node], object], numeric: bool) -> SourcedValue | None:
        if key not in m:
            return None
        return read_sourced(node.child(key), prov, read, numeric=numeric, severity=True)

    return PlanChecks(
        max_grid_spacing_mm=opt(
            "max_grid_spacing_mm", lambda n: n.number(positive=True), numeric=True
        ),
        grid_covers_structures=opt("grid_covers_structures", Node.boolean, numeric=False),
        heterogeneity_correction=opt(
            "heterogeneity_correction", lambda n: n.string(_HETERO), numeric=False
        ),
    )
