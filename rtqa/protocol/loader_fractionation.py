"""The ``fractionation`` section of a constraint file: sites, regimens and schedule limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rtqa.protocol.loader_provenance import (
    PROV_KEYS,
    Prov,
    read_note,
    read_prov,
    read_sourced,
    require_prov,
)
from rtqa.protocol.model import Fractionation, Regimen, Site, SourcedValue
from rtqa.protocol.yaml_node import Node, read_regexes


def read_sites_ref(node: Node, sites: dict[str, Site]) -> tuple[str, ...]:
    out = []
    for el in node.elements():
        s = el.string()
        if s not in sites:
            known = ", ".join(sites) or "none defined under fractionation/sites"
            raise el.fail(f"unknown site {s!r}; known sites: {known}")
        out.append(s)
    return tuple(out)


def parse_fractionation(node: Node) -> Fractionation:
    keys = (
        "sites",
        "regimens",
        "allowed_fractions",
        "complete_within_days",
        "min_interval_hours",
        "min_targets",
        "max_targets",
        "excluded_sites",
        *PROV_KEYS,
        "note",
    )
    m = node.mapping(keys)
    prov = read_prov(node, Prov())
    sites: dict[str, Site] = {}
    if "sites" in m:
        sn = node.child("sites")
        sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
        for sid, sub in sn.items():
            if not isinstance(sid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", sid):
                raise sub.fail("a site id is lower-case letters, digits and '_'")
            sub.mapping(("title", "keywords"))
            kws = read_regexes(sub, "keywords") if sub.has("keywords") else ()
            title = sub.child("title").string() if sub.has("title") else sid
            sites[sid] = Site(sid, title, kws, sub.line)
    regimens = []
    if "regimens" in m:
        for el in node.child("regimens").elements():
            el.mapping(
                ("site", "total_gy", "fractions", *PROV_KEYS, "note"),
                ("site", "total_gy", "fractions"),
            )
            site = el.child("site").string()
            if site not in sites:
                raise el.child("site").fail(
                    f"unknown site {site!r}; known sites: {', '.join(sites) or 'none'}"
                )
            source, conf = require_prov(el, read_prov(el, prov))
            regimens.append(
                Regimen(
                    site,
                    el.child("total_gy").number(positive=True),
                    el.child("fractions").integer(),
                    source,
                    conf,
                    el.line,
                    read_note(el),
                )
            )

    def ints(n: Node) -> tuple[int, ...]:
        values = tuple(e.integer() for e in n.elements())
        if not values:
            raise n.fail("expected at least one fraction count")
        return values

    def opt(key: str, read: Callable[[Node], object], **kw: Any) -> SourcedValue | None:
        return read_sourced(node.child(key), prov, read, **kw) if key in m else None

    excluded = []
    if "excluded_sites" in m:
        for el in node.child("excluded_sites").elements():
            el.mapping(("site", *PROV_KEYS, "note"), ("site",))
            site = el.child("site").string()
            if site not in sites:
                raise el.child("site").fail(
                    f"unknown site {site!r}; known sites: {', '.join(sites) or 'none'}"
                )
            source, conf = require_prov(el, read_prov(el, prov))
            excluded.append(SourcedValue(site, source, conf, el.line, read_note(el)))
    return Fractionation(
        sites=sites,
        regimens=tuple(regimens),
        allowed_fractions=opt("allowed_fractions", ints, severity=True),
        complete_within_days=opt(
            "complete_within_days", lambda n: n.number(minimum=0), severity=True
        ),
        min_interval_hours=opt("min_interval_hours", lambda n: n.number(minimum=0), severity=True),
        min_targets=opt("min_targets", lambda n: n.integer(1), severity=True),
        max_targets=opt("max_targets", lambda n: n.integer(1), severity=True),
        excluded_sites=tuple(excluded),
    )
