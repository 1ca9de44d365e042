"""The ``prior_radiation`` section of a constraint file: re-irradiation policy and limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtqa.protocol.loader_limits import read_limit_table
from rtqa.protocol.loader_provenance import PROV_KEYS, Prov, read_note, read_prov, read_sourced
from rtqa.protocol.model import PRIOR_POLICIES, Limit, Organ, PriorRadiation, SourcedValue
from rtqa.protocol.yaml_node import Node


def parse_prior_radiation(node: Node, organs: dict[str, Organ]) -> PriorRadiation:
    sections = ("cumulative_eqd2", "course_eqd2", "course_share")
    keys = (
        "policy",
        "alpha_beta",
        "recovery",
        "min_interval_months",
        "overlap_isodose_pct",
        *sections,
    )
    m = node.mapping((*keys, *PROV_KEYS, "note"), ("policy",))
    prov = read_prov(node, Prov())

    def organ_key(sub: Node, key: Any, allow_default: bool = False) -> str:
        if allow_default and key == "default":
            return key
        if key not in organs:
            raise sub.fail(
                f"unknown organ {key!r}: prior-radiation keys name organs of this file "
                f"({', '.join(organs) or 'none'})"
            )
        return key

    def per_organ(key: str, read: Callable[[Node], object], default: bool) -> dict:
        out: dict[str, SourcedValue] = {}
        if key in m:
            sn = node.child(key)
            sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
            for organ, sub in sn.items():
                out[organ_key(sub, organ, default)] = read_sourced(sub, prov, read)
        return out

    limits: dict[str, dict[str, tuple[Limit, ...]]] = {s: {} for s in sections}
    for section in sections:
        if section in m:
            sn = node.child(section)
            sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
            for organ, sub in sn.items():
                limits[section][organ_key(sub, organ)] = read_limit_table(
                    sub, prov, None, share=section == "course_share"
                )
    return PriorRadiation(
        policy=read_sourced(
            node.child("policy"), prov, lambda n: n.string(PRIOR_POLICIES), numeric=False
        ),
        alpha_beta=per_organ("alpha_beta", lambda n: n.number(positive=True), True),
        cumulative_eqd2=limits["cumulative_eqd2"],
        course_eqd2=limits["course_eqd2"],
        course_share=limits["course_share"],
        recovery=per_organ("recovery", lambda n: _fraction(n), False),
        min_interval_months=(
            read_sourced(
                node.child("min_interval_months"),
                prov,
                lambda n: n.number(minimum=0),
                severity=True,
            )
            if "min_interval_months" in m
            else None
        ),
        overlap_isodose_pct=(
            read_sourced(node.child("overlap_isodose_pct"), prov, _percent_of_rx)
            if "overlap_isodose_pct" in m
            else None
        ),
        line=node.line,
        note=read_note(node),
    )


def _percent_of_rx(n: Node) -> float:
    v = n.number(positive=True)
    if v > 100:
        raise n.fail(f"expected a percentage of the prescription in (0, 100], found {v:g}")
    return v


def _fraction(n: Node) -> float:
    v = n.number(minimum=0)
    if v > 1:
        raise n.fail(f"expected a fraction between 0 and 1, found {v:g}")
    return v
