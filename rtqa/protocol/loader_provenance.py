"""Provenance in constraint files: sources, confidence, notes and sourced values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rtqa.model import Status
from rtqa.protocol.model import Confidence, Source, SourcedValue
from rtqa.protocol.yaml_node import Node


@dataclass(frozen=True)
class Prov:
    """Inherited provenance: an enclosing section's source and confidence."""

    source: Source | None = None
    confidence: Confidence | None = None


PROV_KEYS = ("source", "confidence")


def read_source(node: Node) -> Source:
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


def read_prov(node: Node, inherited: Prov) -> Prov:
    """Read optional ``source``/``confidence`` keys of a mapping over the inherited ones."""
    source, confidence = inherited.source, inherited.confidence
    if node.has("source"):
        source = read_source(node.child("source"))
    if node.has("confidence"):
        confidence = Confidence(node.child("confidence").string(tuple(Confidence)))
    return Prov(source, confidence)


def require_prov(node: Node, prov: Prov) -> tuple[Source, Confidence]:
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


def read_note(node: Node) -> str:
    return node.child("note").string() if node.has("note") else ""


_SEVERITIES = (Status.MAJOR.value, Status.MINOR.value, Status.INFO.value)


def read_sourced(
    node: Node,
    inherited: Prov,
    read: Callable[[Node], object],
    *,
    numeric: bool = True,
    severity: bool = False,
) -> SourcedValue:
    """``{value: ..., source, confidence, note[, severity]}`` or a bare value (inheriting
    the enclosing section's provenance). Numbers must end with a source and a confidence."""
    if isinstance(node.value, dict):
        keys = ("value", *PROV_KEYS, "note", *(("severity",) if severity else ()))
        node.mapping(keys, ("value",))
        prov = read_prov(node, inherited)
        value = read(node.child("value"))
        note = read_note(node)
        sev = Status(node.child("severity").string(_SEVERITIES)) if node.has("severity") else None
    else:
        prov, value, note, sev = inherited, read(node), "", None
    if numeric:
        src, conf = require_prov(node, prov)
    else:
        src, conf = prov.source, prov.confidence
    return SourcedValue(value, src, conf, node.line, note, sev or Status.MAJOR)
