"""What every renderer shares: the order of findings, status labels, counts, number formatting.

Nothing here computes a dose: the renderers only draw the :class:`~rtqa.model.CheckResult` they
are given. Numbers are formatted so that a rounded value never appears on the other side of a
limit than the unrounded one (``21.904 Gy`` against ``<= 21.9`` prints ``21.904``, not ``21.90``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rtqa.model import CheckResult, Finding, Status

#: Finding groups in report order, with their section titles.
GROUP_TITLES: dict[str, str] = {
    "plan": "Plan",
    "target": "Targets",
    "organ": "Organs at risk",
    "quality": "Plan quality",
    "integrity": "Integrity",
    "prior": "Prior radiation",
}

#: Status order within a group: deviations first, then what is not evaluable, then the rest.
STATUS_ORDER: tuple[Status, ...] = (
    Status.MAJOR,
    Status.MINOR,
    Status.NOT_EVALUABLE,
    Status.PASS,
    Status.INFO,
)

#: Statuses that need a reader's attention.
DEVIATIONS: frozenset[Status] = frozenset({Status.MAJOR, Status.MINOR, Status.NOT_EVALUABLE})

#: Band names in the order they are printed; a lone ``limit`` is a per-protocol limit.
BAND_ORDER: tuple[str, ...] = ("per_protocol", "limit", "acceptable")

VERDICT_LABELS: dict[Status, str] = {
    Status.PASS: "PASS",
    Status.INFO: "PASS",
    Status.NOT_EVALUABLE: "NOT EVALUABLE",
    Status.MINOR: "MINOR DEVIATION",
    Status.MAJOR: "MAJOR DEVIATION",
}


@dataclass(frozen=True)
class CourseError:
    """A course that could not be checked at all (e.g. in a batch): what renderers draw instead.

    ``exit_code`` is the code the failure carries (see :mod:`rtqa.errors`).
    """

    course_id: str
    message: str
    exit_code: int
    patient_id: str = ""
    rtqa_version: str = ""
    created: datetime | None = None


Renderable = CheckResult | CourseError


def as_list(result: Renderable | Sequence[Renderable]) -> list[Renderable]:
    """One result or many, as a list."""
    if isinstance(result, CheckResult | CourseError):
        return [result]
    return list(result)


def courses_tally(items: Sequence[Renderable]) -> str:
    """``"2 courses: 1 major deviation, 1 pass"``: the verdicts of several courses (``error``
    for a course that could not be checked), in the order first met."""
    tally: dict[str, int] = {}
    for r in items:
        key = "error" if isinstance(r, CourseError) else VERDICT_LABELS[Status(r.verdict)].lower()
        tally[key] = tally.get(key, 0) + 1
    return f"{len(items)} courses: " + ", ".join(f"{n} {k}" for k, n in tally.items())


def status_of(finding: Finding) -> Status:
    """The finding's status as a :class:`Status` (a plain string is accepted and checked)."""
    return Status(finding.status)


def group_order(findings: Iterable[Finding]) -> list[str]:
    """The groups present: known ones in report order, then unknown ones as they appear."""
    present: list[str] = []
    for f in findings:
        if f.group not in present:
            present.append(f.group)
    known = [g for g in GROUP_TITLES if g in present]
    return known + [g for g in present if g not in GROUP_TITLES]


def ordered_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings grouped (plan, target, organ, quality, integrity, prior), deviations first.

    Within a group: major, minor, not_evaluable, pass, info; findings of the same status keep
    their given order.
    """
    items = list(findings)
    groups = {g: i for i, g in enumerate(group_order(items))}
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    return sorted(items, key=lambda f: (groups[f.group], rank[status_of(f)]))


def status_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Count of findings per status value, every status present (zeros included)."""
    counts = {s.value: 0 for s in STATUS_ORDER}
    for f in findings:
        counts[status_of(f).value] += 1
    return counts


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, group.capitalize() if group else "Other")


def finite(value: float | int | None) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def ordered_limits(limits: dict[str, str]) -> list[tuple[str, str]]:
    """The (band, condition) pairs: per_protocol, limit, acceptable, then any other band."""
    known = [(b, limits[b]) for b in BAND_ORDER if limits.get(b)]
    return known + [(b, c) for b, c in limits.items() if b not in BAND_ORDER and c]


def per_protocol_condition(limits: dict[str, str]) -> str:
    """The per-protocol condition; a lone ``limit`` counts as per protocol."""
    return "; ".join(limits[b] for b in ("per_protocol", "limit") if limits.get(b))


_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SIGNED_NUMBER = re.compile(rf"[-+]?{_NUM}")
# "250 ± 2.5 MU": the bounds 247.5 and 252.5 are what a value is judged against
_PLUS_MINUS = re.compile(rf"([-+]?{_NUM})\s*±\s*({_NUM})")


def _numbers(text: str) -> list[float]:
    """The numbers written in ``text``: a sign right after a digit is a range's dash (``90-300``
    is 90 and 300, not 90 and -300); a number glued to a word (the 2 of ``EQD2``) is no number."""
    out: list[float] = []
    for m in _SIGNED_NUMBER.finditer(text):
        token, start = m.group(), m.start()
        before = text[start - 1] if start > 0 else ""
        if token[0] in "-+":
            if before.isdigit():
                token = token[1:]
        elif before.isalpha() or before == "_":
            continue
        x = finite(token)
        if x is not None:
            out.append(x)
    return out


def thresholds(limits: dict[str, str]) -> list[float]:
    """Numbers in the limit conditions, for consistent rounding: ``"<= 21.9"`` -> 21.9,
    ``"90-300 %"`` -> 90, 300, ``"250 ± 2.5 MU"`` -> 250, 2.5 and the bounds 247.5, 252.5."""
    found: list[float] = []
    for condition in limits.values():
        text = condition or ""
        found.extend(_numbers(text))
        for m in _PLUS_MINUS.finditer(text):
            centre, half = finite(m.group(1)), finite(m.group(2))
            if centre is not None and half is not None:
                found.extend((centre - half, centre + half))
    return found


def _base_decimals(x: float) -> int:
    ax = abs(x)
    if ax >= 100:
        return 1
    if ax >= 1:
        return 2
    if ax >= 0.1:
        return 3
    if ax >= 0.01:
        return 4
    return 5


def _side(a: float, b: float) -> int:
    return (a > b) - (a < b)


def format_number(
    value: float | None, refs: Sequence[float] = (), *, signed: bool = False, max_decimals: int = 6
) -> str:
    """A number rounded for reading, never crossing or touching a reference value by rounding.

    Starts at about four significant digits and adds decimals (up to ``max_decimals``) until
    the printed number lies on the same side of every reference in ``refs`` as ``value``; a
    value closer to a reference than ``max_decimals`` decimals tell (``15.0000001`` against
    ``15``, a margin of ``-1e-07``) is written with as many significant digits as it takes
    (``15.0000001``, ``-1e-07``), never as the reference itself or as zero.
    Returns ``""`` for a missing or non-finite value.
    """
    x = finite(value)
    if x is None:
        return ""
    if x == 0:
        return "0"
    sign = "+" if signed else ""

    def keeps_sides(text: str) -> bool:
        shown = float(text)
        return all(_side(shown, r) == _side(x, r) for r in refs)

    decimals = _base_decimals(x)
    while True:
        text = f"{x:{sign}.{decimals}f}"
        if keeps_sides(text):
            return text
        if decimals >= max_decimals:
            break
        decimals += 1
    for digits in range(7, 18):
        text = f"{x:{sign}.{digits}g}"
        if keeps_sides(text):
            return text
    return f"{x:{sign}.17g}"


#: Units of whole counts: a whole value prints without decimals ("3 fractions", "24 days").
COUNT_UNITS = frozenset({"fractions", "targets", "lesions", "sites", "days"})


def _count(n: int, unit: str, sign: str = "") -> str:
    """A whole count with its unit, singular for one (``"1 target"``, ``"-3 days"``)."""
    return f"{n:{sign}d} {unit[:-1] if abs(n) == 1 else unit}"


def format_quantity(value: float | None, unit: str | None, refs: Sequence[float] = ()) -> str:
    """``value`` with its unit (``"21.94 Gy"``, ``"95.20 %"``, ``"3 fractions"``); ``""`` when
    missing. Whole counts (fractions, targets) print without decimals, singular for one."""
    x = finite(value)
    if x is not None and unit in COUNT_UNITS and x == round(x):
        return _count(round(x), unit)
    text = format_number(value, refs)
    if not text:
        return ""
    return f"{text} {unit}" if unit else text


def format_bounded(
    value: float | None,
    bounds: Sequence[float | None] | None,
    unit: str | None,
    refs: Sequence[float] = (),
) -> str:
    """A value that may be known only within ``bounds`` (``Finding.value_range``): the value
    (:func:`format_quantity`) where ``bounds`` is None; else ``"50.76-70.12 Gy"``,
    ``">= 11.31 Gy"``, ``"<= 4.2 Gy"``, or ``"(11.31 Gy)"`` for a value of part of the structure
    with nothing known of the whole (``""`` with no value either)."""
    if bounds is None:
        return format_quantity(value, unit, refs)
    low, high = (finite(b) for b in bounds)
    if low is not None and high is not None:
        if format_number(low, refs) == format_number(high, refs):
            return format_quantity(low, unit, refs)
        return f"{format_number(low, refs)}-{format_quantity(high, unit, refs)}"
    if low is not None or high is not None:
        sign, end = (">=", low) if low is not None else ("<=", high)
        return f"{sign} {format_quantity(end, unit, refs)}"
    shown = format_quantity(value, unit, refs)
    return f"({shown})" if shown else ""


def format_value(finding: Finding, refs: Sequence[float] = ()) -> str:
    """The value column of a finding (:func:`format_bounded` in its :func:`display_unit`)."""
    return format_bounded(finding.value, finding.value_range, display_unit(finding), refs)


def format_margin(margin: float | None, unit: str | None, *, with_unit: bool = True) -> str:
    """Signed margin with unit (without it when ``with_unit`` is false, for a table whose value
    column shows it); a non-zero margin never prints as zero. A whole count margin prints
    without decimals (``"+3 targets"``, ``"-3 days"``)."""
    x = finite(margin)
    shown = unit if with_unit else None
    if x is not None and unit in COUNT_UNITS and x == round(x):
        if shown and x:
            return _count(round(x), shown, "+")
        text = f"{round(x):+d}" if x else "0"
    else:
        text = format_number(margin, (0.0,), signed=True)
    if not text:
        return ""
    return f"{text} {shown}" if shown else text


def is_eqd2_value(finding: Finding) -> bool:
    """Whether the finding's dose value is an EQD2 its metric name does not say: an organ of a
    course of plans with different fraction counts, judged against limits converted to EQD2
    (conditions written ``"<= 26.91 (EQD2 of <= 19.5)"``)."""
    return _is_eqd2(finding.unit, finding.metric, finding.limits)


def _is_eqd2(unit: str | None, metric: str | None, limits: dict[str, str]) -> bool:
    if unit not in ("Gy", "cGy") or "EQD2" in (metric or ""):
        return False
    return any("EQD2" in (condition or "") for condition in limits.values())


def unit_shown(unit: str | None, metric: str | None, limits: dict[str, str]) -> str | None:
    """The unit a report prints after a value and margin: ``unit``, with ``EQD2`` added where
    the value is an EQD2 the metric does not name (``"Gy EQD2"``, see :func:`is_eqd2_value`)."""
    return f"{unit} EQD2" if _is_eqd2(unit, metric, limits) else unit


def display_unit(finding: Finding) -> str | None:
    """:func:`unit_shown` of a finding."""
    return unit_shown(finding.unit, finding.metric, finding.limits)


def structure_label(finding: Finding) -> str:
    """The judged contour and how it matched, e.g. ``"cord (alias of SpinalCord)"``."""
    roi, match = finding.roi or "", finding.match or ""
    if roi and match and match != roi:
        return f"{roi} ({match})"
    return roi or match


def source_label(finding: Finding) -> str:
    """Source with its confidence tag, e.g. ``"TG-101 Tab III [secondary]"``."""
    parts = [finding.source or ""]
    if finding.confidence:
        parts.append(f"[{finding.confidence}]")
    return " ".join(p for p in parts if p)


def limits_label(limits: dict[str, str]) -> str:
    """``"<= 21.9 / <= 24"`` (per protocol / acceptable); other bands named."""
    parts = []
    for band, condition in ordered_limits(limits):
        parts.append(condition if band in BAND_ORDER else f"{band}: {condition}")
    return " / ".join(parts)


def protocol_label(result: CheckResult) -> str:
    """``"NRG-BR002 v1.0"``: protocol id and version."""
    version = f" v{result.protocol_version}" if result.protocol_version else ""
    return f"{result.protocol_id}{version}"


def iso_datetime(when: datetime | None) -> str:
    """ISO 8601 with seconds and a UTC offset; a naive time is taken as local time."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.astimezone()
    return when.isoformat(timespec="seconds")
