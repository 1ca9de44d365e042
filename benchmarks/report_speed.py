"""Wall time of a whole ``rtqa check ... --format html`` process (start-up, reading, DVHs,
evaluation, figures, writing the page).

Target: under 3 s (median of the runs) for ``sample_data/spine_3fx``. Each run is a fresh
process, as a user would start it; the first run also warms the operating system's file cache
and is reported but not counted.

Usage: python benchmarks/report_speed.py [--case spine_3fx] [--runs 5] [--strict]
(``--strict``: exit 1 when the median is over the target).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 3.0


def command(case_dir: Path, output: Path, extra: list[str]) -> list[str]:
    exe = shutil.which("rtqa")
    base = [exe] if exe else [sys.executable, "-m", "rtqa"]
    return [*base, "check", str(case_dir), "--format", "html", "--output", str(output), *extra]


def one_run(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1, 4):  # pass, deviation, not fully evaluable
        raise SystemExit(f"rtqa check failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="spine_3fx", help="folder under sample_data/")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--protocol", default=None)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    case_dir = ROOT / "sample_data" / args.case
    extra = ["--protocol", args.protocol] if args.protocol else []
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "report.html"
        cmd = command(case_dir, output, extra)
        warm = one_run(cmd)
        times = [one_run(cmd) for _ in range(max(args.runs, 1))]
        size_kb = output.stat().st_size / 1024
    median = statistics.median(times)
    print(f"case: {args.case}; command: rtqa check <case> --format html --output report.html")
    print(f"warm-up run: {warm:.2f} s (not counted)")
    print("runs: " + ", ".join(f"{t:.2f}" for t in times) + " s")
    print(f"median: {median:.2f} s (target < {TARGET_S:g} s); report size {size_kb:.0f} KB")
    ok = median < TARGET_S
    print("OK" if ok else "SLOWER THAN TARGET")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
