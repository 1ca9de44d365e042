"""Load and validate constraint files (YAML) into :class:`~rtqa.protocol.model.Protocol`.

YAML is read by :func:`~rtqa.protocol.yaml_lines.read_yaml` (line numbers, no duplicate keys,
no object tags); each section is read by its ``loader_*`` module. Every problem is a
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
from pathlib import Path
from typing import Any

from rtqa.errors import ConstraintFileError, UsageError
from rtqa.protocol.loader_fractionation import parse_fractionation
from rtqa.protocol.loader_plan import parse_plan_checks, parse_plan_quality
from rtqa.protocol.loader_prior import parse_prior_radiation
from rtqa.protocol.loader_provenance import read_source
from rtqa.protocol.loader_structures import parse_organ, parse_target
from rtqa.protocol.model import TARGET_TYPES, Fractionation, Organ, PlanChecks, Protocol, TargetRule
from rtqa.protocol.yaml_lines import read_yaml
from rtqa.protocol.yaml_node import Ctx, Node, kind

DEFAULT_PROTOCOL = "nrg_br002"

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


def parse_protocol(data: Any, path: str) -> Protocol:
    """Validate parsed YAML (from :func:`read_yaml`) into a :class:`Protocol`."""
    ctx = Ctx(path)
    if data is None:
        raise ctx.fail("the file is empty", None, None)
    root = Node(ctx, data, getattr(data, "line", 1), "")
    if not isinstance(data, dict):
        raise root.fail(f"expected a mapping at the top level, found {kind(data)}")
    m = root.mapping(_TOP_KEYS, ("protocol", "version", "title", "description", "sources"))
    version = root.child("version")
    if not isinstance(version.value, str):
        raise version.fail(f'expected a string (quote it: "1.0"), found {kind(version.value)}')
    sources = tuple(read_source(e) for e in root.child("sources").elements())
    if not sources:
        raise root.child("sources").fail("list at least one source document")
    fractionation = (
        parse_fractionation(root.child("fractionation"))
        if "fractionation" in m
        else (Fractionation())
    )
    sites = fractionation.sites
    organs: dict[str, Organ] = {}
    if "organs" in m:
        for el in root.child("organs").elements():
            organ = parse_organ(el, sites)
            if organ.name in organs:
                raise el.child("roi").child("name").fail(f"organ {organ.name!r} is listed twice")
            organs[organ.name] = organ
    targets: list[TargetRule] = []
    if "targets" in m:
        for el in root.child("targets").elements():
            rule = parse_target(el, sites)
            if any(t.id == rule.id for t in targets):
                raise el.fail(f"target rule id {rule.id!r} is used twice; give each an 'id'")
            targets.append(rule)
    # derived structures: every 'minus' term names an organ of the file or a target type, every
    # 'plus' term another organ of the file
    for el, organ in zip(
        root.child("organs").elements() if "organs" in m else [], organs.values(), strict=False
    ):
        for term in organ.roi.plus:
            if term not in organs or term == organ.name:
                raise (
                    el.child("roi")
                    .child("plus")
                    .fail(f"unknown structure {term!r} in 'plus': name another organ of this file")
                )
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
            parse_plan_quality(root.child("plan_quality"), sites) if "plan_quality" in m else None
        ),
        plan_checks=parse_plan_checks(root.child("plan_checks"))
        if "plan_checks" in m
        else (PlanChecks()),
        prior_radiation=parse_prior_radiation(root.child("prior_radiation"), organs)
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
