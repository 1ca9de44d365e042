"""The ``organs`` and ``targets`` sections of a constraint file: ROIs with their limits."""

from __future__ import annotations

from typing import Any

from rtqa.protocol.loader_fractionation import read_sites_ref
from rtqa.protocol.loader_limits import LIMIT_KEYS, read_limit, read_limit_table
from rtqa.protocol.loader_provenance import PROV_KEYS, Prov, read_note, read_prov, read_sourced
from rtqa.protocol.model import TARGET_TYPES, Limit, Organ, RoiSpec, Site, TargetRule
from rtqa.protocol.yaml_lines import LineMap
from rtqa.protocol.yaml_node import Node, kind, read_regexes


def _roi(node: Node, *, organ: bool) -> RoiSpec:
    m = node.mapping(("name", "type", "aliases", "patterns", "minus", "plus"))
    name = node.child("name").string() if "name" in m else None
    rtype = node.child("type").string((*TARGET_TYPES, "ORGAN", "EXTERNAL")) if "type" in m else None
    if organ and name is None:
        raise node.fail("an organ needs 'name' (its TG-263 name)")
    if not organ and name is None and rtype is None:
        raise node.fail("a target needs 'type' (PTV, CTV, GTV, ITV) or 'name'")
    patterns = read_regexes(node, "patterns") if "patterns" in m else ()
    return RoiSpec(
        name=name,
        type=rtype,
        aliases=node.child("aliases").strings() if "aliases" in m else (),
        patterns=patterns,
        minus=node.child("minus").strings() if "minus" in m else (),
        plus=node.child("plus").strings() if "plus" in m else (),
    )


def _fraction_key(node: Node, key: Any) -> int | None:
    if key == "any":
        return None
    if isinstance(key, bool) or not isinstance(key, int) or key < 1:
        raise node.fail(f"expected a fraction count (a whole number >= 1) or 'any', found {key!r}")
    return key


def parse_organ(node: Node, sites: dict[str, Site]) -> Organ:
    keys = (
        "roi",
        "title",
        "required",
        "required_for_sites",
        "sites",
        "alpha_beta",
        "limits",
        *PROV_KEYS,
        "note",
    )
    m = node.mapping(keys, ("roi",))
    roi = _roi(node.child("roi"), organ=True)
    name = roi.name or ""
    prov = read_prov(node, Prov())
    limits: dict[int | None, tuple[Limit, ...]] = {}
    if "limits" in m:
        ln = node.child("limits")
        ln.mapping(tuple(ln.value) if isinstance(ln.value, dict) else ())
        for key, sub in ln.items():
            fx = _fraction_key(sub, key)
            limits[fx] = read_limit_table(sub, prov, fx)
    alpha = None
    if "alpha_beta" in m:
        alpha = read_sourced(node.child("alpha_beta"), prov, lambda n: n.number(positive=True))
    return Organ(
        name=name,
        roi=roi,
        limits=limits,
        required=node.child("required").boolean() if "required" in m else False,
        required_for_sites=(
            read_sites_ref(node.child("required_for_sites"), sites)
            if "required_for_sites" in m
            else ()
        ),
        sites=read_sites_ref(node.child("sites"), sites) if "sites" in m else (),
        alpha_beta=alpha,
        title=node.child("title").string() if "title" in m else name,
        line=node.line,
        note=read_note(node),
    )


def parse_target(node: Node, sites: dict[str, Site]) -> TargetRule:
    m = node.mapping(("id", "roi", "sites", "checks", *PROV_KEYS, "note"), ("roi", "checks"))
    roi = _roi(node.child("roi"), organ=False)
    rule_id = node.child("id").string() if "id" in m else (roi.name or roi.type or "")
    prov = read_prov(node, Prov())
    checks: list[Limit] = []
    for el in node.child("checks").elements():
        el.mapping(("metric", "fractions", *LIMIT_KEYS), ("metric",))
        metric_node = el.child("metric")
        if not isinstance(metric_node.value, str):
            raise metric_node.fail(f"expected a metric string, found {kind(metric_node.value)}")
        spec = {k: el.value[k] for k in LIMIT_KEYS if k in el.value}
        spec_node = Node(el.ctx, LineMap(spec), el.line, el.path)
        spec_node.value.line, spec_node.value.key_lines = el.value.line, el.value.key_lines
        counts: tuple[int | None, ...] = (None,)
        if el.has("fractions"):
            fn = el.child("fractions")
            counts = (
                (fn.integer(),)
                if isinstance(fn.value, int)
                else tuple(e.integer() for e in fn.elements())
            )
        for fx in counts:
            checks.append(read_limit(metric_node, spec_node, prov, fx, key=metric_node.value))
    return TargetRule(
        id=rule_id,
        roi=roi,
        checks=tuple(checks),
        sites=read_sites_ref(node.child("sites"), sites) if "sites" in m else (),
        line=node.line,
        note=read_note(node),
    )
