"""A YAML value with its location, and typed readers that fail with the file, line and key.

The key is a ``/`` path such as ``organs/SpinalCord/limits/3/D0.03cc[Gy]``.
"""

from __future__ import annotations

import re
from typing import Any

from rtqa.errors import ConstraintFileError
from rtqa.protocol.yaml_lines import LineList, LineMap


class Ctx:
    def __init__(self, path: str):
        self.path = path

    def fail(self, message: str, line: int | None, key: str | None) -> ConstraintFileError:
        return ConstraintFileError(self.path, message, line, key)


def kind(value: Any) -> str:
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


class Node:
    """A value with its location: the container it sits in, its key and its ``/`` path."""

    def __init__(self, ctx: Ctx, value: Any, line: int | None, path: str):
        self.ctx, self.value, self.line, self.path = ctx, value, line, path

    def fail(self, message: str) -> ConstraintFileError:
        return self.ctx.fail(message, self.line, self.path or None)

    # -- structure ------------------------------------------------------------------------
    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> LineMap:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, found {kind(self.value)}")
        for key in self.value:
            if key not in allowed:
                raise self.child(key).fail(
                    f"unknown key {key!r}; expected one of: {', '.join(allowed)}"
                )
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing key {key!r}")
        return self.value

    def child(self, key: Any, label: str | None = None) -> Node:
        sub = f"{self.path}/{label if label is not None else key}" if self.path else str(key)
        value = self.value.get(key) if isinstance(self.value, dict) else self.value[key]
        line = _line(self.value, key)
        return Node(self.ctx, value, line, sub)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> list[tuple[Any, Node]]:
        return [(k, self.child(k)) for k in self.value]

    def elements(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, found {kind(self.value)}")
        return [self.child(i, f"{i}") for i in range(len(self.value))]

    # -- scalars --------------------------------------------------------------------------
    def string(self, choices: tuple[str, ...] = ()) -> str:
        v = self.value
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"expected a non-empty string, found {kind(v)}")
        if choices and v not in choices:
            raise self.fail(f"expected one of {', '.join(choices)}, found {v!r}")
        return v

    def number(self, positive: bool = False, minimum: float | None = None) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(f"expected a number, found {kind(v)}")
        if positive and not v > 0:
            raise self.fail(f"expected a positive number, found {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(f"expected a number >= {minimum:g}, found {v!r}")
        return float(v)

    def integer(self, minimum: int = 1) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"expected a whole number >= {minimum}, found {kind(v)}")
        return int(v)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, found {kind(self.value)}")
        return self.value

    def strings(self) -> tuple[str, ...]:
        return tuple(e.string() for e in self.elements())


def read_regexes(node: Node, key: str) -> tuple[str, ...]:
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
