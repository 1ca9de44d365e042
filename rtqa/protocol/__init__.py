"""Protocols: constraint files, the TG-263 metric grammar, limit bands and structure matching.

* :mod:`rtqa.protocol.model` — the validated protocol (dataclasses).
* :mod:`rtqa.protocol.loader` — load and validate constraint files, find shipped ones
  (``yaml_lines``: YAML with line numbers; ``yaml_node``: located values and their errors;
  ``loader_*``: one module per part of the schema).
* :mod:`rtqa.protocol.metrics` — ``D95%[Gy]``-style metric strings: parse and evaluate on a Dvh.
* :mod:`rtqa.protocol.bands` — ``"<= 21.9"`` conditions and per-protocol / acceptable bands.
* :mod:`rtqa.protocol.matching` — structure names to ROIs, with how each match was made.
"""

from __future__ import annotations

from rtqa.protocol.bands import Bands, Condition, Judgement, parse_condition
from rtqa.protocol.loader import (
    DEFAULT_PROTOCOL,
    find_protocol,
    load_protocol,
    load_protocol_file,
    shipped_protocol_files,
)
from rtqa.protocol.matching import (
    MatchKind,
    ProtocolMatch,
    RoiMatch,
    load_mapping_file,
    match_protocol,
    parse_mapping_args,
)
from rtqa.protocol.metrics import (
    MetricNotEvaluable,
    MetricRequest,
    MetricSyntaxError,
    evaluate,
    parse_metric,
)
from rtqa.protocol.model import Confidence, Limit, Organ, Protocol, Source

__all__ = [
    "DEFAULT_PROTOCOL",
    "Bands",
    "Condition",
    "Confidence",
    "Judgement",
    "Limit",
    "MatchKind",
    "MetricNotEvaluable",
    "MetricRequest",
    "MetricSyntaxError",
    "Organ",
    "Protocol",
    "ProtocolMatch",
    "RoiMatch",
    "Source",
    "evaluate",
    "find_protocol",
    "load_mapping_file",
    "load_protocol",
    "load_protocol_file",
    "match_protocol",
    "parse_condition",
    "parse_mapping_args",
    "parse_metric",
    "shipped_protocol_files",
]
