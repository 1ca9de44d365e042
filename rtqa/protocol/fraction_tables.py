"""Which of an organ's per-fraction-count limit tables judge a course, and the strictest of them
in EQD2 for a course of plans with different fraction counts.

A protocol lists organ limits per fraction count (``Organ.limits[n]``) and, under ``None``, for
any count. A course whose fraction count has no table of the organ leaves the organ unjudged:
``not_evaluable``, naming the counts the protocol lists, never an info that reads as a pass. A
course of plans of different counts is judged in EQD2 against the tables of every count present:
each limit converted at its own count with the organ's alpha/beta, and per metric the most severe
verdict (equal verdicts: the strictest limit) reported, naming the table it came from. The result
does not depend on the order of the plans. Doses Gy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rtqa.model import Finding, Status
from rtqa.protocol.judging import eqd2_limit, judge_limit
from rtqa.protocol.metrics import MetricNotEvaluable
from rtqa.protocol.model import Limit, Organ


def _join(counts: Sequence[int]) -> str:
    items = [str(n) for n in counts]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def missing_counts(organ: Organ, counts: Sequence[int]) -> tuple[int, ...]:
    """The fraction counts of the course (``counts``) for which ``organ`` has no table, where it
    has tables for some counts; () for an organ with no per-count limits at all."""
    listed = organ.fraction_counts
    if not listed:
        return ()
    return tuple(n for n in counts if n not in listed)


def course_limits(organ: Organ, counts: Sequence[int]) -> tuple[Limit, ...]:
    """The limits of ``organ`` that judge a course of ``counts`` fractions (sorted, known): the
    tables of every count present plus the any-count limits; only the any-count ones when a
    count present has no table (:func:`missing_counts`)."""
    anycount = organ.limits.get(None, ())
    if not counts or missing_counts(organ, counts):
        return anycount
    return tuple(lim for n in counts for lim in organ.limits.get(n, ())) + anycount


def missing_table_finding(
    organ: Organ,
    counts: Sequence[int],
    missing: Sequence[int],
    *,
    any_count_judged: bool,
    roi: str | None,
    match: str | None,
    source: str | None,
    confidence: str | None,
) -> Finding:
    """``not_evaluable``: the protocol lists ``organ`` limits for other fraction counts than
    ``missing`` (of the course's ``counts``), so its per-count limits are not judged."""
    course = f"the course's plans have {_join(counts)} fractions; " if len(counts) > 1 else ""
    message = (
        f"{course}no {organ.name} limits for {_join(missing)} fractions in the protocol, which "
        f"lists them for {_join(organ.fraction_counts)} fractions only: "
        + (
            "only its limits for any fraction count are judged"
            if any_count_judged
            else "the organ's limits are not judged"
        )
    )
    return Finding(
        group="organ",
        rule="limits",
        status=Status.NOT_EVALUABLE,
        message=message,
        roi=roi,
        match=match,
        source=source,
        confidence=confidence,
    )


@dataclass(frozen=True)
class Candidate:
    """One protocol limit converted to EQD2 at its own fraction count."""

    table: str  # "3-fraction table" or "any-count limits at 3 fractions"
    fractions: int
    limit: Limit  # in EQD2
    words: str  # how it was converted (eqd2_limit)


def eqd2_candidates(
    organ: Organ, counts: Sequence[int], alpha_beta_gy: float, *, tables: bool = True
) -> tuple[list[list[Candidate]], list[tuple[Limit, str]]]:
    """Every limit of ``organ`` for the ``counts`` present (its tables when ``tables``, and its
    any-count limits at each count), converted to EQD2 at ``alpha_beta_gy``, grouped by the EQD2
    metric they judge (a dose at a volume: one group across tables; a volume at a dose: one group
    per EQD2 dose). Also the limits that have no EQD2 form, each metric once, with the reason."""
    groups: dict[str, list[Candidate]] = {}
    refused: dict[str, tuple[Limit, str]] = {}
    for n in sorted(set(counts)):
        keys: tuple[int | None, ...] = (n, None) if tables else (None,)
        for key in keys:
            for lim in organ.limits.get(key, ()):
                try:
                    elim, words = eqd2_limit(lim, n, alpha_beta_gy)
                except MetricNotEvaluable as exc:
                    refused.setdefault(lim.metric.canonical, (lim, str(exc)))
                    continue
                table = f"{n}-fraction table" if key is not None else f"any-count limits at {n} fx"
                found = Candidate(table, n, elim, words)
                groups.setdefault(elim.metric.canonical, []).append(found)
    return list(groups.values()), list(refused.values())


def _strictness(lim: Limit) -> tuple[float, float]:
    """Smaller is stricter: the per-protocol limit, then the acceptable one (none: the
    per-protocol limit, beyond which is major)."""
    per = lim.bands.per_protocol
    sign = 1.0 if per.upper else -1.0
    acc = lim.bands.acceptable
    return sign * per.limit, sign * (acc.limit if acc is not None else per.limit)


def _eqd2_text(c: Candidate) -> str:
    per = c.limit.bands.per_protocol
    unit = c.limit.metric.unit
    return f"{c.fractions} fx {per.op} {per.limit:.4g}{' Gy' if unit in ('Gy', 'cGy') else ''}"


def judge_strictest(
    group: Sequence[Candidate], edvh, *, roi: str | None, match: str | None, note: str, tail: str
) -> tuple[Finding, Candidate]:
    """Judge every candidate of ``group`` (one EQD2 metric) on ``edvh`` and keep the most severe
    verdict; among equal verdicts the strictest limit, then the fewest fractions. The finding's
    message says which table gave the limit and what the others were."""
    judged = [
        (c, judge_limit(c.limit, edvh, group="organ", roi=roi, match=match, case_id=None))
        for c in group
    ]
    chosen, f = min(
        judged, key=lambda cf: (-cf[1].status.rank, _strictness(cf[0].limit), cf[0].fractions)
    )
    if len(group) == 1:
        which = f"limit of the {chosen.table} (no other table of the course's counts lists it)"
    else:
        strictest = min(group, key=lambda c: (_strictness(c.limit), c.fractions))
        how = (
            "the strictest in EQD2"
            if _strictness(strictest.limit) == _strictness(chosen.limit)
            else "the most severe verdict"
        )
        which = (
            f"limit of the {chosen.table}, {how} of the course's tables ("
            + "; ".join(_eqd2_text(c) for c in group)
            + " EQD2)"
        )
    head = f"{note}: {chosen.words}; {tail}; {which}"
    return replace(f, message=head + ("; " + f.message if f.message else "")), chosen


__all__ = [
    "Candidate",
    "course_limits",
    "eqd2_candidates",
    "judge_strictest",
    "missing_counts",
    "missing_table_finding",
]
