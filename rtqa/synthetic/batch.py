"""Varied synthetic cases for batch tests and benchmarks (not committed).

``generate_batch(root, n, seed)`` writes ``n`` case folders: sites, regimens, OAR distances and
delivery spans drawn from a seeded generator, and about 10 % of the cases deliberately corrupt
(a truncated dose file, a structure set replaced by garbage bytes, or a missing plan).
``root/manifest.json`` lists what each case is and what it should give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from rtqa.synthetic.cases import bone_course, lung_course, spine_course
from rtqa.synthetic.spec import CaseSpec, CourseSpec
from rtqa.synthetic.write import write_case

CORRUPT_SHARE = 0.10
CORRUPTIONS = ("truncated_dose", "garbage_file", "truncated_plan")
REGIMENS = {
    "spine": ((30.0, 3), (35.0, 5), (16.0, 1)),
    "lung": ((50.0, 5), (54.0, 3), (34.0, 1)),
    "bone": ((20.0, 1), (30.0, 3), (35.0, 5)),
}


@dataclass(frozen=True)
class BatchEntry:
    name: str
    site: str
    rx_gy: float
    fractions: int
    oar_gap_mm: float | None
    span_days: int
    corruption: str | None


def corrupt_count(n: int) -> int:
    """How many of ``n`` cases are corrupt: 10 %, rounded half up."""
    return int(np.floor(n * CORRUPT_SHARE + 0.5))


def plan_batch(n: int, seed: int = 0) -> list[BatchEntry]:
    rng = np.random.default_rng(seed)
    corrupt = set(rng.permutation(n)[: corrupt_count(n)].tolist())
    kinds = iter(CORRUPTIONS * n)
    entries = []
    for i in range(n):
        site = str(rng.choice(list(REGIMENS)))
        rx, fx = REGIMENS[site][int(rng.integers(len(REGIMENS[site])))]
        gap = None
        if site == "spine":
            gap = float(rng.choice([2.0, 5.0, 6.5]))
        elif site == "lung":
            gap = float(rng.choice([1.25, 6.0, 10.0]))
        overrun = fx > 1 and rng.random() < 0.15
        span = 2 * (fx - 1) + (20 if overrun else 0)
        entries.append(
            BatchEntry(
                f"case_{i:04d}", site, rx, fx, gap, span, next(kinds) if i in corrupt else None
            )
        )
    return entries


def entry_spec(entry: BatchEntry, seed: int) -> CaseSpec:
    start = datetime(2024, 1, 8, 9, 0) + timedelta(days=7 * (int(entry.name[5:]) % 40))
    label = f"B{seed % 1000:03d}{entry.name[5:]}"
    days = tuple(2 * i for i in range(entry.fractions))
    if entry.span_days > days[-1]:
        days = (*days[:-1], entry.span_days)
    course: CourseSpec
    if entry.site == "spine":
        course = spine_course(
            label,
            entry.oar_gap_mm or 5.0,
            start,
            days,
            rx_gy=entry.rx_gy,
            fractions=entry.fractions,
        )
    elif entry.site == "lung":
        course = lung_course(label, entry.rx_gy, entry.fractions, entry.oar_gap_mm or 6.0, start)
        course = _with_days(course, start, days)
    else:
        course = _with_days(bone_course(label, entry.rx_gy, entry.fractions, start), start, days)
    pid = f"RTQA-BATCH{seed}-{entry.name[5:]}"
    return CaseSpec(
        name=entry.name,
        patient_id=pid,
        patient_name=f"RTQA^BATCH{seed}^{entry.name[5:]}",
        birth_date="19600101",
        sex="O",
        courses=(course,),
        protocol="",
        verdict="",
        summary="",
    )


def _with_days(course: CourseSpec, start: datetime, days: tuple[int, ...]) -> CourseSpec:
    from dataclasses import replace

    return replace(course, fraction_datetimes=tuple(start + timedelta(days=d) for d in days))


def corrupt(folder: Path, kind: str, rng: np.random.Generator) -> None:
    """Damage one case folder in the way ``kind`` names."""
    if kind == "truncated_dose":
        dose = next(folder.glob("RD.*.dcm"))
        data = dose.read_bytes()
        dose.write_bytes(data[: len(data) // 2])
    elif kind == "garbage_file":
        ss = next(folder.glob("RS.*.dcm"))
        ss.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated_plan":
        plan = next(folder.glob("RP.*.dcm"))
        data = plan.read_bytes()
        plan.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(f"unknown corruption {kind!r}")


def generate_batch(root: str | Path, n: int, seed: int = 0) -> list[BatchEntry]:
    """Write ``n`` varied cases into ``root`` and their manifest; return the entries."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = plan_batch(n, seed)
    rng = np.random.default_rng(seed + 1)
    for entry in entries:
        write_case(entry_spec(entry, seed), root)
        if entry.corruption:
            corrupt(root / entry.name, entry.corruption, rng)
    manifest = {"seed": seed, "cases": [e.__dict__ for e in entries]}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return entries
