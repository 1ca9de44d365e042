"""Wall time of ``rtqa check`` on a sample case, whole process including Python start-up.

Runs the command several times in fresh processes and prints the median (target: < 1 s).

    python benchmarks/check_speed.py [CASE_DIR] [--runs N] [-- extra rtqa check options]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0


def time_check(case: Path, runs: int, extra: list[str]) -> list[float]:
    cmd = [sys.executable, "-m", "rtqa", "check", str(case), *extra]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1, 4):
            sys.exit(f"rtqa check failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default=str(ROOT / "sample_data" / "spine_3fx"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("extra", nargs="*", help="options passed to rtqa check (after --)")
    args = parser.parse_args(argv)
    times = time_check(Path(args.case), args.runs, args.extra)
    median = statistics.median(times)
    shown = ", ".join(f"{t:.3f}" for t in times)
    verdict = "within" if median < TARGET_S else "ABOVE"
    print(f"rtqa check {args.case}: median {median:.3f} s over {args.runs} runs ({shown})")
    print(f"{verdict} the {TARGET_S:g} s target")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
