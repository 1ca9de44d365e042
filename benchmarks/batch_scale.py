"""Scaling of ``rtqa batch``: throughput with 1 and 2 local workers and a 2-worker Dask
LocalCluster, rerun time, peak memory per worker, and recovery after SIGKILL halfway.

    python benchmarks/batch_scale.py [--cases 100] [--seed 0] [--no-dask]

Targets: 2 workers >= 1.7x the throughput of 1 (on 2 cores); a rerun with everything done
< 5 % of the first run; with 10 % corrupt cases, 90 results + 10 error rows, also after the run
was killed halfway and restarted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtqa.batch import BatchOptions, read_run_log, run_batch
from rtqa.synthetic import generate_batch


def timed_run(root: Path, out: Path, **kw) -> tuple[float, object]:
    start = time.perf_counter()
    report = run_batch(BatchOptions(root=str(root), out=str(out), progress_mode="quiet", **kw))
    return time.perf_counter() - start, report


def peak_mb(out: Path) -> float:
    values = [e.get("peak_rss_mb") or 0.0 for e in read_run_log(out).values()]
    return max(values) if values else float("nan")


def killed_and_restarted(root: Path, out: Path, n: int) -> tuple[int, object]:
    cmd = [sys.executable, "-m", "rtqa", "batch", str(root), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    results = out / "results"
    while proc.poll() is None:
        if results.is_dir() and len(list(results.glob("*.json"))) >= n // 2:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(results.glob("*.json")))
    _, report = timed_run(root, out)
    return done, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cases"
        t0 = time.perf_counter()
        entries = generate_batch(root, args.cases, args.seed)
        corrupt = sum(1 for e in entries if e.corruption)
        rows.append(("cases (corrupt)", f"{args.cases} ({corrupt})"))
        rows.append(("generation", f"{time.perf_counter() - t0:.1f} s"))
        rows.append(
            ("os.cpu_count / affinity", f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}")
        )
        t1, _ = timed_run(root, Path(tmp) / "w1", workers=1)
        t2, r2 = timed_run(root, Path(tmp) / "w2", workers=2)
        rows.append(("1 worker", f"{t1:.1f} s ({args.cases / t1 * 60:.1f} cases/min)"))
        rows.append(("2 workers", f"{t2:.1f} s ({args.cases / t2 * 60:.1f} cases/min)"))
        rows.append(("speed-up 2 vs 1 (target >= 1.7)", f"{t1 / t2:.2f}x"))
        if not args.no_dask:
            td, rd = timed_run(root, Path(tmp) / "dask", workers=2, local_cluster=True)
            same = sorted((r["course_id"], r["status"]) for r in rd.rows) == sorted(
                (r["course_id"], r["status"]) for r in r2.rows
            )
            rows.append(("Dask LocalCluster, 2 workers", f"{td:.1f} s (same summary: {same})"))
        tr, _ = timed_run(root, Path(tmp) / "w2", workers=2)
        rows.append(("rerun, all done (target < 5 %)", f"{tr:.2f} s ({tr / t2 * 100:.1f} %)"))
        rows.append(("peak memory per worker", f"{peak_mb(Path(tmp) / 'w2'):.0f} MiB"))
        errors = sum(1 for r in r2.rows if r["status"] == "error")
        rows.append(("results + error rows", f"{len(r2.rows) - errors} + {errors}"))
        done, rk = killed_and_restarted(root, Path(tmp) / "killed", args.cases)
        errors_k = sum(1 for r in rk.rows if r["status"] == "error")
        rows.append(
            (
                "SIGKILL halfway, restart",
                f"{done} kept, {rk.computed} computed, {len(rk.rows) - errors_k} + {errors_k} rows",
            )
        )
        summary = json.loads((Path(tmp) / "killed" / "summary.json").read_text())
        rows.append(("pending after restart", str(summary["pending"])))
    width = max(len(a) for a, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
