"""Load and validate constraint files (YAML) into :class:`~rtqa.protocol.model.Protocol`.

YAML is read with a :class:`yaml.SafeLoader` subclass that records the line of every mapping
key and list item, refuses duplicate keys and refuses any tag that would construct an object
(``!!python/object`` and the like). Every problem is a
:class:`~rtqa.errors.ConstraintFileError` naming the file, the line, the key (a ``/`` path
such as ``organs/SpinalCord/limits/3/D0.03cc[Gy]``) and what was expected.

Shipped protocols live in the repository's ``constraints/`` folder, found relative to this
package (an editable or source install), then in ``rtqa/protocol/data/`` (where a wheel build
may copy them); ``RTQA_CONSTRAINTS`` (a path list) is searched first. The schema is documented in
``constraints/README.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rtqa.errors import ConstraintFileError, UsageError
from rtqa.model import Status
from rtqa.protocol.bands import Bands, ConditionSyntaxError, bands_from_texts
from rtqa.protocol.metrics import MetricSyntaxError, parse_metric
from rtqa.protocol.model import (
    PRIOR_POLICIES,
    TARGET_TYPES,
    Confidence,
    Fractionation,
    Limit,
    Organ,
    PlanChecks,
    PlanQuality,
    PriorRadiation,
    Protocol,
    QualityRow,
    QualityRule,
    Regimen,
    RoiSpec,
    Site,
    Source,
    SourcedValue,
    TargetRule,
)

DEFAULT_PROTOCOL = "nrg_br002"

# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


class LineMap(dict):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A list that remembers its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _YamlRefused(Exception):
    def __init__(self, message: str, line: int):
        self.message = message
        self.line = line
        super().__init__(message)


class LineLoader(yaml.SafeLoader):
    """SafeLoader that builds :class:`LineMap`/:class:`LineList`, refuses duplicate keys and
    refuses every tag it does not know (no object is ever constructed)."""


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise _YamlRefused("a mapping key must be a plain value", line) from None
        if key in out:
            raise _YamlRefused(f"duplicate key {key!r} (first at line {out.key_lines[key]})", line)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


def _construct_refused(loader: LineLoader, node: yaml.Node) -> None:
    raise _YamlRefused(
        f"YAML tag {node.tag!r} is not allowed: constraint files hold plain data only",
        node.start_mark.line + 1,
    )


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:omap", _construct_refused)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
LineLoader.add_constructor("tag:yaml.org,2002:set", _construct_refused)
LineLoader.add_constructor("tag:yaml.org,2002:binary", _construct_refused)
LineLoader.add_constructor(None, _construct_refused)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file with :class:`LineLoader`; errors become ConstraintFileError."""
    p = str(path)
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConstraintFileError(p, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConstraintFileError(p, f"not UTF-8 text ({exc.reason})") from None
    try:
        data = yaml.load(text, Loader=LineLoader)  # a SafeLoader subclass
    except _YamlRefused as exc:
        raise ConstraintFileError(p, exc.message, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "invalid YAML"
        raise ConstraintFileError(p, f"YAML syntax error: {what}", line) from None
    except yaml.YAMLError as exc:
        raise ConstraintFileError(p, f"YAML syntax error: {exc}") from None
    return data


# --------------------------------------------------------------------------------------------
# Validation utilities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prov:
    """Inherited provenance: an enclosing section's source and confidence."""

    source: Source | None = None
    confidence: Confidence | None = None


class _Ctx:
    def __init__(self, path: str):
        self.path = path

    def fail(self, message: str, line: int | None, key: str | None) -> ConstraintFileError:
        return ConstraintFileError(self.path, message, line, key)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _line(container: Any, key: Any) -> int | None:
    if isinstance(container, LineMap):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList):
        return container.item_lines[key] if isinstance(key, int) else container.line
    return None


class _Node:
    """A value with its location: the container it sits in, its key and its ``/`` path."""

    def __init__(self, ctx: _Ctx, value: Any, line: int | None, path: str):
        self.ctx, self.value, self.line, self.path = ctx, value, line, path

    def fail(self, message: str) -> ConstraintFileError:
        return self.ctx.fail(message, self.line, self.path or None)

    # -- structure ------------------------------------------------------------------------
    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> LineMap:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, found {_kind(self.value)}")
        for key in self.value:
            if key not in allowed:
                raise self.child(key).fail(
                    f"unknown key {key!r}; expected one of: {', '.join(allowed)}"
                )
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing key {key!r}")
        return self.value

    def child(self, key: Any, label: str | None = None) -> _Node:
        sub = f"{self.path}/{label if label is not None else key}" if self.path else str(key)
        value = self.value.get(key) if isinstance(self.value, dict) else self.value[key]
        line = _line(self.value, key)
        return _Node(self.ctx, value, line, sub)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> list[tuple[Any, _Node]]:
        return [(k, self.child(k)) for k in self.value]

    def elements(self) -> list[_Node]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, found {_kind(self.value)}")
        return [self.child(i, f"{i}") for i in range(len(self.value))]

    # -- scalars --------------------------------------------------------------------------
    def string(self, choices: tuple[str, ...] = ()) -> str:
        v = self.value
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"expected a non-empty string, found {_kind(v)}")
        if choices and v not in choices:
            raise self.fail(f"expected one of {', '.join(choices)}, found {v!r}")
        return v

    def number(self, positive: bool = False, minimum: float | None = None) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(f"expected a number, found {_kind(v)}")
        if positive and not v > 0:
            raise self.fail(f"expected a positive number, found {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(f"expected a number >= {minimum:g}, found {v!r}")
        return float(v)

    def integer(self, minimum: int = 1) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"expected a whole number >= {minimum}, found {_kind(v)}")
        return int(v)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, found {_kind(self.value)}")
        return self.value

    def strings(self) -> tuple[str, ...]:
        return tuple(e.string() for e in self.elements())


_PROV_KEYS = ("source", "confidence")


def _source(node: _Node) -> Source:
    if isinstance(node.value, str):
        return Source(node.string())
    m = node.mapping(("document", "table", "section", "note"), ("document",))
    extra = {}
    for key in ("table", "section", "note"):
        if key in m:
            sub = node.child(key)
            if isinstance(sub.value, int | float) and not isinstance(sub.value, bool):
                extra[key] = f"{sub.value:g}"
            else:
                extra[key] = sub.string()
    return Source(node.child("document").string(), **extra)


def _prov(node: _Node, inherited: _Prov) -> _Prov:
    """Read optional ``source``/``confidence`` keys of a mapping over the inherited ones."""
    source, confidence = inherited.source, inherited.confidence
    if node.has("source"):
        source = _source(node.child("source"))
    if node.has("confidence"):
        confidence = Confidence(node.child("confidence").string(tuple(Confidence)))
    return _Prov(source, confidence)


def _require_prov(node: _Node, prov: _Prov) -> tuple[Source, Confidence]:
    if prov.source is None:
        raise node.fail(
            "no source: give 'source' (document, and table or section) here or on the "
            "enclosing section"
        )
    if prov.confidence is None:
        raise node.fail(
            "no confidence: give 'confidence: verified | secondary | unverified' here or on "
            "the enclosing section"
        )
    return prov.source, prov.confidence


def _note(node: _Node) -> str:
    return node.child("note").string() if node.has("note") else ""


_SEVERITIES = (Status.MAJOR.value, Status.MINOR.value, Status.INFO.value)


def _sourced(
    node: _Node,
    inherited: _Prov,
    read: Callable[[_Node], object],
    *,
    numeric: bool = True,
    severity: bool = False,
) -> SourcedValue:
    """``{value: ..., source, confidence, note[, severity]}`` or a bare value (inheriting
    the enclosing section's provenance). Numbers must end with a source and a confidence."""
    if isinstance(node.value, dict):
        keys = ("value", *_PROV_KEYS, "note", *(("severity",) if severity else ()))
        node.mapping(keys, ("value",))
        prov = _prov(node, inherited)
        value = read(node.child("value"))
        note = _note(node)
        sev = Status(node.child("severity").string(_SEVERITIES)) if node.has("severity") else None
    else:
        prov, value, note, sev = inherited, read(node), "", None
    if numeric:
        src, conf = _require_prov(node, prov)
    else:
        src, conf = prov.source, prov.confidence
    return SourcedValue(value, src, conf, node.line, note, sev or Status.MAJOR)


_LIMIT_KEYS = ("limit", "per_protocol", "acceptable", *_PROV_KEYS, "note")


def _bands(node: _Node, texts: dict[str, Any]) -> Bands:
    try:
        return bands_from_texts(**texts)
    except ConditionSyntaxError as exc:
        raise node.fail(str(exc)) from None
    except ValueError as exc:
        raise node.fail(str(exc)) from None


def _limit(
    metric_node: _Node, spec: _Node, inherited: _Prov, fractions: int | None, *, key: Any
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
        bands, prov, note = _bands(spec, {"limit": spec.value}), inherited, ""
    elif isinstance(spec.value, dict):
        m = spec.mapping(_LIMIT_KEYS)
        bands = _bands(spec, {k: m[k] for k in ("limit", "per_protocol", "acceptable") if k in m})
        prov, note = _prov(spec, inherited), _note(spec)
    else:
        raise spec.fail(
            f"expected a condition such as '<= 21.9' or a mapping with limit / per_protocol / "
            f"acceptable, found {_kind(spec.value)}"
        )
    source, confidence = _require_prov(spec, prov)
    return Limit(metric, bands, source, confidence, spec.line, fractions, note)


def _limit_table(node: _Node, inherited: _Prov, fractions: int | None) -> tuple[Limit, ...]:
    """A mapping metric -> spec."""
    node.mapping(tuple(node.value) if isinstance(node.value, dict) else ())
    return tuple(_limit(sub, sub, inherited, fractions, key=key) for key, sub in node.items())


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

_TOP_KEYS = (
    "protocol",
    "version",
    "title",
    "description",
    "sources",
    "fractionation",
    "targets",
    "organs",
    "plan_quality",
    "plan_checks",
    "prior_radiation",
    "notes",
)


def _roi(node: _Node, *, organ: bool) -> RoiSpec:
    m = node.mapping(("name", "type", "aliases", "patterns", "minus"))
    name = node.child("name").string() if "name" in m else None
    rtype = node.child("type").string((*TARGET_TYPES, "ORGAN", "EXTERNAL")) if "type" in m else None
    if organ and name is None:
        raise node.fail("an organ needs 'name' (its TG-263 name)")
    if not organ and name is None and rtype is None:
        raise node.fail("a target needs 'type' (PTV, CTV, GTV, ITV) or 'name'")
    patterns = _regexes(node, "patterns") if "patterns" in m else ()
    return RoiSpec(
        name=name,
        type=rtype,
        aliases=node.child("aliases").strings() if "aliases" in m else (),
        patterns=patterns,
        minus=node.child("minus").strings() if "minus" in m else (),
    )


def _regexes(node: _Node, key: str) -> tuple[str, ...]:
    """The strings under ``key``, each checked to compile as a regular expression."""
    texts = node.child(key).strings()
    for i, text in enumerate(texts):
        try:
            re.compile(text)
        except re.error as exc:
            raise (
                node.child(key).child(i).fail(f"invalid regular expression {text!r}: {exc}")
            ) from None
    return texts


def _sites_ref(node: _Node, sites: dict[str, Site]) -> tuple[str, ...]:
    out = []
    for el in node.elements():
        s = el.string()
        if s not in sites:
            known = ", ".join(sites) or "none defined under fractionation/sites"
            raise el.fail(f"unknown site {s!r}; known sites: {known}")
        out.append(s)
    return tuple(out)


def _fractionation(node: _Node) -> Fractionation:
    keys = (
        "sites",
        "regimens",
        "allowed_fractions",
        "complete_within_days",
        "min_interval_hours",
        "min_targets",
        "max_targets",
        "excluded_sites",
        *_PROV_KEYS,
        "note",
    )
    m = node.mapping(keys)
    prov = _prov(node, _Prov())
    sites: dict[str, Site] = {}
    if "sites" in m:
        sn = node.child("sites")
        sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
        for sid, sub in sn.items():
            if not isinstance(sid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", sid):
                raise sub.fail("a site id is lower-case letters, digits and '_'")
            sub.mapping(("title", "keywords"))
            kws = _regexes(sub, "keywords") if sub.has("keywords") else ()
            title = sub.child("title").string() if sub.has("title") else sid
            sites[sid] = Site(sid, title, kws, sub.line)
    regimens = []
    if "regimens" in m:
        for el in node.child("regimens").elements():
            el.mapping(
                ("site", "total_gy", "fractions", *_PROV_KEYS, "note"),
                ("site", "total_gy", "fractions"),
            )
            site = el.child("site").string()
            if site not in sites:
                raise el.child("site").fail(
                    f"unknown site {site!r}; known sites: {', '.join(sites) or 'none'}"
                )
            source, conf = _require_prov(el, _prov(el, prov))
            regimens.append(
                Regimen(
                    site,
                    el.child("total_gy").number(positive=True),
                    el.child("fractions").integer(),
                    source,
                    conf,
                    el.line,
                    _note(el),
                )
            )

    def ints(n: _Node) -> tuple[int, ...]:
        values = tuple(e.integer() for e in n.elements())
        if not values:
            raise n.fail("expected at least one fraction count")
        return values

    def opt(key: str, read: Callable[[_Node], object], **kw: Any) -> SourcedValue | None:
        return _sourced(node.child(key), prov, read, **kw) if key in m else None

    excluded = []
    if "excluded_sites" in m:
        for el in node.child("excluded_sites").elements():
            el.mapping(("site", *_PROV_KEYS, "note"), ("site",))
            site = el.child("site").string()
            if site not in sites:
                raise el.child("site").fail(
                    f"unknown site {site!r}; known sites: {', '.join(sites) or 'none'}"
                )
            source, conf = _require_prov(el, _prov(el, prov))
            excluded.append(SourcedValue(site, source, conf, el.line, _note(el)))
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


def _fraction_key(node: _Node, key: Any) -> int | None:
    if key == "any":
        return None
    if isinstance(key, bool) or not isinstance(key, int) or key < 1:
        raise node.fail(f"expected a fraction count (a whole number >= 1) or 'any', found {key!r}")
    return key


def _organ(node: _Node, sites: dict[str, Site]) -> Organ:
    keys = (
        "roi",
        "title",
        "required",
        "required_for_sites",
        "alpha_beta",
        "limits",
        *_PROV_KEYS,
        "note",
    )
    m = node.mapping(keys, ("roi",))
    roi = _roi(node.child("roi"), organ=True)
    name = roi.name or ""
    prov = _prov(node, _Prov())
    limits: dict[int | None, tuple[Limit, ...]] = {}
    if "limits" in m:
        ln = node.child("limits")
        ln.mapping(tuple(ln.value) if isinstance(ln.value, dict) else ())
        for key, sub in ln.items():
            fx = _fraction_key(sub, key)
            limits[fx] = _limit_table(sub, prov, fx)
    alpha = None
    if "alpha_beta" in m:
        alpha = _sourced(node.child("alpha_beta"), prov, lambda n: n.number(positive=True))
    return Organ(
        name=name,
        roi=roi,
        limits=limits,
        required=node.child("required").boolean() if "required" in m else False,
        required_for_sites=(
            _sites_ref(node.child("required_for_sites"), sites) if "required_for_sites" in m else ()
        ),
        alpha_beta=alpha,
        title=node.child("title").string() if "title" in m else name,
        line=node.line,
        note=_note(node),
    )


def _target(node: _Node, sites: dict[str, Site]) -> TargetRule:
    m = node.mapping(("id", "roi", "sites", "checks", *_PROV_KEYS, "note"), ("roi", "checks"))
    roi = _roi(node.child("roi"), organ=False)
    rule_id = node.child("id").string() if "id" in m else (roi.name or roi.type or "")
    prov = _prov(node, _Prov())
    checks: list[Limit] = []
    for el in node.child("checks").elements():
        el.mapping(("metric", "fractions", *_LIMIT_KEYS), ("metric",))
        metric_node = el.child("metric")
        if not isinstance(metric_node.value, str):
            raise metric_node.fail(f"expected a metric string, found {_kind(metric_node.value)}")
        spec = {k: el.value[k] for k in _LIMIT_KEYS if k in el.value}
        spec_node = _Node(el.ctx, LineMap(spec), el.line, el.path)
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
            checks.append(_limit(metric_node, spec_node, prov, fx, key=metric_node.value))
    return TargetRule(
        id=rule_id,
        roi=roi,
        checks=tuple(checks),
        sites=_sites_ref(node.child("sites"), sites) if "sites" in m else (),
        line=node.line,
        note=_note(node),
    )


_OPS = ("<", "<=", ">", ">=")


def _quality_rule(key: Any, node: _Node, inherited: _Prov) -> QualityRule:
    try:
        metric = parse_metric(key)
    except MetricSyntaxError as exc:
        raise node.fail(str(exc)) from None
    if not metric.is_quality:
        raise node.fail(
            f"{metric.canonical} is a DVH metric; plan_quality takes CI, CI_Paddick, GI, R50%, "
            f"D2cm[%] or HI (put DVH metrics under targets)"
        )
    if not isinstance(node.value, dict):
        raise node.fail(f"expected a mapping, found {_kind(node.value)}")
    prov = _prov(node, inherited)
    if "table" not in node.value:
        m = node.mapping(_LIMIT_KEYS)
        bands = _bands(node, {k: m[k] for k in ("limit", "per_protocol", "acceptable") if k in m})
        source, conf = _require_prov(node, prov)
        return QualityRule(metric, source, conf, bands=bands, line=node.line, note=_note(node))
    m = node.mapping(
        ("table", "per_protocol", "acceptable", *_PROV_KEYS, "note"), ("table", "per_protocol")
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
                ("ptv_cc", "per_protocol", "acceptable", *_PROV_KEYS, "note"),
                ("ptv_cc", "per_protocol", *(("acceptable",) if acc_op else ())),
            )
            vals = [el.child("ptv_cc").number(), el.child("per_protocol").number()]
            if acc_op:
                vals.append(el.child("acceptable").number())
            rprov, note = _prov(el, prov), _note(el)
        source, conf = _require_prov(el, rprov)
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
        rows.append(QualityRow(ptv, per, acc, source, conf, el.line, note))
    if len(rows) < 2:
        raise node.child("table").fail("a plan-quality table needs at least two rows")
    source, conf = _require_prov(node, prov)
    return QualityRule(
        metric, source, conf, None, pp_op, acc_op, tuple(rows), node.line, _note(node)
    )


def _plan_quality(node: _Node, sites: dict[str, Site]) -> PlanQuality:
    m = node.mapping(("sites", "metrics", *_PROV_KEYS, "note"), ("metrics",))
    prov = _prov(node, _Prov())
    mn = node.child("metrics")
    mn.mapping(tuple(mn.value) if isinstance(mn.value, dict) else ())
    rules = tuple(_quality_rule(key, sub, prov) for key, sub in mn.items())
    return PlanQuality(
        rules=rules,
        sites=_sites_ref(node.child("sites"), sites) if "sites" in m else (),
        line=node.line,
        note=_note(node),
    )


_HETERO = ("required", "recommended", "not_required")


def _plan_checks(node: _Node) -> PlanChecks:
    keys = ("max_grid_spacing_mm", "grid_covers_structures", "heterogeneity_correction")
    m = node.mapping((*keys, *_PROV_KEYS, "note"))
    prov = _prov(node, _Prov())

    def opt(key: str, read: Callable[[_Node], object], numeric: bool) -> SourcedValue | None:
        if key not in m:
            return None
        return _sourced(node.child(key), prov, read, numeric=numeric, severity=True)

    return PlanChecks(
        max_grid_spacing_mm=opt(
            "max_grid_spacing_mm", lambda n: n.number(positive=True), numeric=True
        ),
        grid_covers_structures=opt("grid_covers_structures", _Node.boolean, numeric=False),
        heterogeneity_correction=opt(
            "heterogeneity_correction", lambda n: n.string(_HETERO), numeric=False
        ),
    )


def _prior(node: _Node, organs: dict[str, Organ]) -> PriorRadiation:
    sections = ("cumulative_eqd2", "course_eqd2", "course_share")
    keys = (
        "policy",
        "alpha_beta",
        "recovery",
        "min_interval_months",
        "overlap_isodose_pct",
        *sections,
    )
    m = node.mapping((*keys, *_PROV_KEYS, "note"), ("policy",))
    prov = _prov(node, _Prov())

    def organ_key(sub: _Node, key: Any, allow_default: bool = False) -> str:
        if allow_default and key == "default":
            return key
        if key not in organs:
            raise sub.fail(
                f"unknown organ {key!r}: prior-radiation keys name organs of this file "
                f"({', '.join(organs) or 'none'})"
            )
        return key

    def per_organ(key: str, read: Callable[[_Node], object], default: bool) -> dict:
        out: dict[str, SourcedValue] = {}
        if key in m:
            sn = node.child(key)
            sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
            for organ, sub in sn.items():
                out[organ_key(sub, organ, default)] = _sourced(sub, prov, read)
        return out

    limits: dict[str, dict[str, tuple[Limit, ...]]] = {s: {} for s in sections}
    for section in sections:
        if section in m:
            sn = node.child(section)
            sn.mapping(tuple(sn.value) if isinstance(sn.value, dict) else ())
            for organ, sub in sn.items():
                limits[section][organ_key(sub, organ)] = _limit_table(sub, prov, None)
    return PriorRadiation(
        policy=_sourced(
            node.child("policy"), prov, lambda n: n.string(PRIOR_POLICIES), numeric=False
        ),
        alpha_beta=per_organ("alpha_beta", lambda n: n.number(positive=True), True),
        cumulative_eqd2=limits["cumulative_eqd2"],
        course_eqd2=limits["course_eqd2"],
        course_share=limits["course_share"],
        recovery=per_organ("recovery", lambda n: _fraction(n), False),
        min_interval_months=(
            _sourced(
                node.child("min_interval_months"),
                prov,
                lambda n: n.number(minimum=0),
                severity=True,
            )
            if "min_interval_months" in m
            else None
        ),
        overlap_isodose_pct=(
            _sourced(node.child("overlap_isodose_pct"), prov, _percent_of_rx)
            if "overlap_isodose_pct" in m
            else None
        ),
        line=node.line,
        note=_note(node),
    )


def _percent_of_rx(n: _Node) -> float:
    v = n.number(positive=True)
    if v > 100:
        raise n.fail(f"expected a percentage of the prescription in (0, 100], found {v:g}")
    return v


def _fraction(n: _Node) -> float:
    v = n.number(minimum=0)
    if v > 1:
        raise n.fail(f"expected a fraction between 0 and 1, found {v:g}")
    return v


def parse_protocol(data: Any, path: str) -> Protocol:
    """Validate parsed YAML (from :func:`read_yaml`) into a :class:`Protocol`."""
    ctx = _Ctx(path)
    if data is None:
        raise ctx.fail("the file is empty", None, None)
    root = _Node(ctx, data, getattr(data, "line", 1), "")
    if not isinstance(data, dict):
        raise root.fail(f"expected a mapping at the top level, found {_kind(data)}")
    m = root.mapping(_TOP_KEYS, ("protocol", "version", "title", "description", "sources"))
    version = root.child("version")
    if not isinstance(version.value, str):
        raise version.fail(f'expected a string (quote it: "1.0"), found {_kind(version.value)}')
    sources = tuple(_source(e) for e in root.child("sources").elements())
    if not sources:
        raise root.child("sources").fail("list at least one source document")
    fractionation = (
        _fractionation(root.child("fractionation")) if "fractionation" in m else (Fractionation())
    )
    sites = fractionation.sites
    organs: dict[str, Organ] = {}
    if "organs" in m:
        for el in root.child("organs").elements():
            organ = _organ(el, sites)
            if organ.name in organs:
                raise el.child("roi").child("name").fail(f"organ {organ.name!r} is listed twice")
            organs[organ.name] = organ
    targets: list[TargetRule] = []
    if "targets" in m:
        for el in root.child("targets").elements():
            rule = _target(el, sites)
            if any(t.id == rule.id for t in targets):
                raise el.fail(f"target rule id {rule.id!r} is used twice; give each an 'id'")
            targets.append(rule)
    # derived structures: every 'minus' term names an organ of the file or a target type
    for el, organ in zip(
        root.child("organs").elements() if "organs" in m else [], organs.values(), strict=False
    ):
        for term in organ.roi.minus:
            if term not in TARGET_TYPES and term not in organs:
                raise (
                    el.child("roi")
                    .child("minus")
                    .fail(
                        f"unknown structure {term!r} in 'minus': name an organ of this file or a "
                        f"target type ({', '.join(TARGET_TYPES)})"
                    )
                )
    return Protocol(
        id=root.child("protocol").string(),
        version=version.string(),
        title=root.child("title").string(),
        description=root.child("description").string(),
        path=path,
        sources=sources,
        fractionation=fractionation,
        targets=tuple(targets),
        organs=tuple(organs.values()),
        plan_quality=(
            _plan_quality(root.child("plan_quality"), sites) if "plan_quality" in m else None
        ),
        plan_checks=_plan_checks(root.child("plan_checks"))
        if "plan_checks" in m
        else (PlanChecks()),
        prior_radiation=_prior(root.child("prior_radiation"), organs)
        if "prior_radiation" in m
        else None,
    )


def load_protocol_file(path: str | os.PathLike[str]) -> Protocol:
    """Read and validate one constraint file (raises ConstraintFileError)."""
    return parse_protocol(read_yaml(path), str(path))


# --------------------------------------------------------------------------------------------
# Finding shipped protocols
# --------------------------------------------------------------------------------------------


def constraint_dirs() -> list[Path]:
    """Folders searched for protocols by name, in order (only those that exist)."""
    dirs: list[Path] = [
        Path(p) for p in os.environ.get("RTQA_CONSTRAINTS", "").split(os.pathsep) if p
    ]
    here = Path(__file__).resolve().parent
    dirs += [here.parents[1] / "constraints", here / "data"]
    return [d for d in dirs if d.is_dir()]


def shipped_protocol_files() -> list[Path]:
    """Every ``*.yaml`` protocol in :func:`constraint_dirs` (first folder wins per stem)."""
    seen: dict[str, Path] = {}
    for d in constraint_dirs():
        for p in sorted(d.glob("*.yaml")):
            seen.setdefault(p.stem, p)
    return [seen[k] for k in sorted(seen)]


def _norm_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def find_protocol(name: str) -> Path:
    """The file for ``name``: a path to a file, a file stem (``tg101``) or a protocol id
    (``NRG-BR002``; case, ``-`` and ``_`` ignored). UsageError when none matches."""
    p = Path(name)
    if p.suffix.lower() in (".yaml", ".yml") or os.sep in name or p.is_file():
        if not p.is_file():
            raise UsageError(f"protocol file not found: {name}")
        return p
    files = shipped_protocol_files()
    key = _norm_id(name)
    for f in files:
        if _norm_id(f.stem) == key:
            return f
    for f in files:
        try:
            data = read_yaml(f)
        except ConstraintFileError:
            continue
        pid = data.get("protocol") if isinstance(data, dict) else None
        if isinstance(pid, str) and _norm_id(pid) == key:
            return f
    known = ", ".join(f.stem for f in files) or "none found"
    raise UsageError(f"unknown protocol {name!r}; shipped protocols: {known}")


def load_protocol(name: str | None = None) -> Protocol:
    """Load a protocol by name or path (the default protocol, NRG-BR002, when ``None``)."""
    return load_protocol_file(find_protocol(name or DEFAULT_PROTOCOL))
