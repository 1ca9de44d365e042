"""Read YAML with line numbers, refusing duplicate keys and object-building tags.

:class:`LineLoader` is a :class:`yaml.SafeLoader` subclass that records the line of every
mapping key and list item (:class:`LineMap`, :class:`LineList`), refuses duplicate keys and
refuses any tag that would construct an object (``!!python/object`` and the like).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from rtqa.errors import ConstraintFileError


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
