"""Delivery schedule facts from treatment records: fractions delivered, span and intervals.

Pure functions over :class:`~rtqa.model.TreatmentRecord`. A fraction delivered in several
sessions (an interrupted fraction completed later, PS3.3 RT Beams Session Record) counts once,
at its first session; records without a date are counted and reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise

from rtqa.model import TreatmentRecord


@dataclass(frozen=True)
class Schedule:
    """What the records say about one course's delivery.

    ``starts_by_plan`` holds, per referenced plan UID, the first session of each delivered
    fraction, sorted (local time, as recorded); ``span_days`` is last minus first treatment date
    over all plans in calendar days (``None`` without dates); ``min_interval_h`` is the shortest
    time between the starts of consecutive fractions of one plan (hours): lesions of a
    multi-plan course treated in one session are not an interval. Where every record of a plan
    gives its TimezoneOffsetFromUTC, ``utc_starts_by_plan`` holds that plan's starts in UTC and
    its intervals are counted on them.
    """

    starts_by_plan: dict[str | None, tuple[datetime, ...]]
    undated_records: int
    partial_fractions: tuple[int, ...]  # fraction numbers delivered in more than one session
    #: (plan UID, fraction number) below a plan's highest recorded fraction number that no
    #: record holds: delivered (a later fraction was), when is unknown
    missing_fractions: tuple[tuple[str | None, int], ...] = ()
    #: plan UID -> highest fraction number its records hold (dated or not): fractions 1 to it
    #: were delivered
    highest_fraction: dict[str | None, int] = field(default_factory=dict)
    #: plan UID -> its fractions' starts in UTC (naive), for plans whose every dated record
    #: gives TimezoneOffsetFromUTC
    utc_starts_by_plan: dict[str | None, tuple[datetime, ...]] = field(default_factory=dict)

    @property
    def unknown_dates(self) -> str:
        """What the records leave undated: records without a date, fractions without a record
        below a plan's highest recorded fraction ('' when nothing)."""
        parts = []
        if self.undated_records:
            parts.append(f"{self.undated_records} treatment record(s) carry no treatment date")
        if self.missing_fractions:
            shown = [str(n) for _, n in self.missing_fractions]
            if len(shown) > 6:
                shown = [*shown[:5], f"... ({len(shown)} in all)"]
            listed = ", ".join(shown)
            parts.append(f"fraction(s) {listed} have no treatment record though later ones do")
        return "; ".join(parts)

    @property
    def fraction_starts(self) -> tuple[datetime, ...]:
        return tuple(sorted(t for starts in self.starts_by_plan.values() for t in starts))

    @property
    def delivered(self) -> int:
        return len(self.fraction_starts)

    @property
    def first_date(self) -> date | None:
        return self.fraction_starts[0].date() if self.fraction_starts else None

    @property
    def last_date(self) -> date | None:
        return self.fraction_starts[-1].date() if self.fraction_starts else None

    @property
    def span_days(self) -> int | None:
        if not self.fraction_starts:
            return None
        return (self.last_date - self.first_date).days

    @property
    def min_interval_h(self) -> float | None:
        gaps = [
            (b - a).total_seconds() / 3600.0
            for uid, local in self.starts_by_plan.items()
            for a, b in pairwise(self.utc_starts_by_plan.get(uid, local))
        ]
        return min(gaps) if gaps else None


def schedule(records: list[TreatmentRecord] | tuple[TreatmentRecord, ...]) -> Schedule:
    """Aggregate records into fractions keyed by (plan UID, fraction number).

    Records of several plans of one course are kept apart by plan: fraction 1 of plan A and
    fraction 1 of plan B are two deliveries. A record without a fraction number is its own
    delivery.
    """
    starts: dict[tuple[str | None, object], datetime] = {}
    offsets: dict[tuple[str | None, object], int | None] = {}
    sessions: dict[tuple[str | None, object], int] = {}
    numbers: dict[str | None, set[int]] = {}
    undated = 0
    for index, record in enumerate(records):
        if record.fraction_number:
            numbers.setdefault(record.referenced_plan_uid, set()).add(int(record.fraction_number))
        if record.delivered_at is None:
            undated += 1
            continue
        number: object = record.fraction_number if record.fraction_number else f"#{index}"
        key = (record.referenced_plan_uid, number)
        sessions[key] = sessions.get(key, 0) + 1
        if key not in starts or record.delivered_at < starts[key]:
            starts[key] = record.delivered_at
            offsets[key] = record.utc_offset_min
    partial = tuple(
        sorted(int(k[1]) for k, n in sessions.items() if n > 1 and isinstance(k[1], int))
    )
    by_plan: dict[str | None, list[datetime]] = {}
    utc: dict[str | None, list[datetime] | None] = {}
    for key, start in starts.items():
        plan_uid, offset = key[0], offsets[key]
        by_plan.setdefault(plan_uid, []).append(start)
        known = utc.setdefault(plan_uid, [])
        if offset is None or known is None:
            utc[plan_uid] = None
        else:
            known.append(start - timedelta(minutes=offset))
    missing = tuple(
        (uid, n) for uid, seen in numbers.items() for n in range(1, max(seen)) if n not in seen
    )
    return Schedule(
        {k: tuple(sorted(v)) for k, v in by_plan.items()},
        undated,
        partial,
        missing,
        {uid: max(seen) for uid, seen in numbers.items()},
        {uid: tuple(sorted(v)) for uid, v in utc.items() if v is not None},
    )
