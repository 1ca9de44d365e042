"""Limit conditions such as ``"<= 21.9"`` and the bands that judge a value.

A :class:`Condition` is an operator and a number, compared unrounded and inclusive exactly as
written (``<=`` includes the limit, ``<`` does not). :class:`Bands` hold the per-protocol
condition and, optionally, a looser ``acceptable`` one: a value inside ``per_protocol`` is
``pass``, inside ``acceptable`` only is ``minor``, beyond both is ``major``. A lone ``limit`` is
per protocol and beyond it is ``major``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rtqa.model import Status

OPERATORS = ("<=", ">=", "<", ">")

_CONDITION = re.compile(r"^\s*(<=|>=|<|>)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")


class ConditionSyntaxError(ValueError):
    """A condition string that is not ``<op> <number>``; ``text`` is the string as written."""

    def __init__(self, text: object, reason: str = ""):
        self.text = text
        why = reason or "expected an operator (<=, <, >=, >) and a number, e.g. '<= 21.9'"
        super().__init__(f"malformed condition {text!r}: {why}")


@dataclass(frozen=True)
class Condition:
    """``value <op> limit``: ``op`` is one of ``<=``, ``<``, ``>=``, ``>``; ``text`` as written."""

    op: str
    limit: float
    text: str

    @property
    def upper(self) -> bool:
        """True for an upper limit (``<`` or ``<=``)."""
        return self.op in ("<", "<=")

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the condition, compared unrounded (NaN never meets it)."""
        if math.isnan(value):
            return False
        if self.op == "<=":
            return value <= self.limit
        if self.op == "<":
            return value < self.limit
        if self.op == ">=":
            return value >= self.limit
        return value > self.limit

    def margin(self, value: float) -> float:
        """Signed distance from ``value`` to the limit, positive on the allowed side."""
        return self.limit - value if self.upper else value - self.limit

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


def parse_condition(text: object) -> Condition:
    """Parse ``"<= 21.9"`` (a string; bare numbers are refused: the operator must be written)."""
    if not isinstance(text, str):
        raise ConditionSyntaxError(text, "expected a string such as '<= 21.9'")
    m = _CONDITION.match(text)
    if not m:
        raise ConditionSyntaxError(text)
    limit = float(m.group(2))
    if not math.isfinite(limit):
        raise ConditionSyntaxError(text, "the limit must be a finite number")
    return Condition(m.group(1), limit, text.strip())


@dataclass(frozen=True)
class Judgement:
    """The verdict on one value: status, signed margin to the per-protocol limit, and which
    band held it (``per_protocol``, ``acceptable`` or ``none``)."""

    status: Status
    margin: float
    band: str


@dataclass(frozen=True)
class Bands:
    """A per-protocol condition and an optional looser acceptable one (same direction).

    ``written`` records how the file stated them (``{"limit": "<= 14"}`` or
    ``{"per_protocol": ..., "acceptable": ...}``) for reports.
    """

    per_protocol: Condition
    acceptable: Condition | None = None

    def __post_init__(self) -> None:
        acc = self.acceptable
        if acc is None:
            return
        pp = self.per_protocol
        if acc.upper != pp.upper:
            raise ValueError(
                f"acceptable {acc.text!r} and per_protocol {pp.text!r} point in opposite directions"
            )
        looser = acc.limit >= pp.limit if pp.upper else acc.limit <= pp.limit
        if not looser:
            raise ValueError(f"acceptable {acc.text!r} is stricter than per_protocol {pp.text!r}")

    @property
    def written(self) -> dict[str, str]:
        if self.acceptable is None:
            return {"limit": self.per_protocol.text}
        return {"per_protocol": self.per_protocol.text, "acceptable": self.acceptable.text}

    def judge(self, value: float) -> Judgement:
        """Judge ``value``: ``pass`` inside per_protocol, ``minor`` inside acceptable only,
        ``major`` beyond. A NaN value is refused (ValueError): it is never a pass."""
        if math.isnan(value):
            raise ValueError("cannot judge NaN against a limit")
        margin = self.per_protocol.margin(value)
        if self.per_protocol.holds(value):
            return Judgement(Status.PASS, margin, "per_protocol")
        if self.acceptable is not None and self.acceptable.holds(value):
            return Judgement(Status.MINOR, margin, "acceptable")
        return Judgement(Status.MAJOR, margin, "none")

    def __str__(self) -> str:
        if self.acceptable is None:
            return str(self.per_protocol)
        return f"{self.per_protocol} (acceptable {self.acceptable})"


def bands_from_texts(
    per_protocol: str | None = None, acceptable: str | None = None, limit: str | None = None
) -> Bands:
    """Build :class:`Bands` from the strings a file writes (``limit`` alone, or
    ``per_protocol`` with an optional ``acceptable``)."""
    if limit is not None:
        if per_protocol is not None or acceptable is not None:
            raise ValueError("write either 'limit' or 'per_protocol'/'acceptable', not both")
        return Bands(parse_condition(limit))
    if per_protocol is None:
        raise ValueError("a limit needs 'limit' or 'per_protocol'")
    acc = parse_condition(acceptable) if acceptable is not None else None
    return Bands(parse_condition(per_protocol), acc)
