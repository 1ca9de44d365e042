"""DVH speed and memory of rtqa beside dicompyler-core 0.5.6, in one run.

Inputs: (1) the sample data (``sample_data/<case>/`` with ``RS.*.dcm`` and ``RD.*.dcm``, paired
by frame of reference), (2) a generated large case in ``benchmarks/out/`` (1 mm dose grid,
300 x 300 x 240 voxels, 30 structures with a body outline), (3) the Nelms et al. (2015) analytical
set (90 cases). Each tool runs in its own subprocess per input (dicompyler-core in a virtual
environment under ``benchmarks/.venvs/``, since it needs pydicom < 3); each subprocess reports
the time to read the files and compute the DVH of every ROI, and its own peak resident memory.

Targets: rtqa at least 20x faster than dicompyler-core's default calculation on the large case
and on the sample data; rtqa's peak memory under 2 GB on the large case. Also prints both tools'
mean absolute error against the analytic D95 and mean dose.

Usage: python benchmarks/speed_dvh.py [--skip-peer] [--quick] [--data DIR] [--strict]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nelms
import pydicom

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PEER = "dicompyler-core==0.5.6"
VENV = HERE / ".venvs" / "dicompyler-core-0.5.6"
PEER_REQUIREMENTS = [PEER, "pydicom<3", "numpy", "matplotlib", "six"]
SPEEDUP_TARGET = 20.0
MEMORY_TARGET_MB = 2048.0
TIMEOUT_S = 3600


# ------------------------------------------------------------------------------------------
# The peer's environment
# ------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_peer_env(venv: Path = VENV) -> Path | str:
    """The peer environment's python (created on first use), or why it could not be made."""
    py = venv_python(venv)
    check = [str(py), "-c", "import dicompylercore, pydicom; assert pydicom.__version__ < '3'"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"creating {venv.relative_to(ROOT)} with {' '.join(PEER_REQUIREMENTS)} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"could not set up {PEER}: {' '.join(cmd[:4])} failed: {' / '.join(tail)}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return f"{PEER} installed but does not import in {venv}"
    return py


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------


def _frame(ds: pydicom.Dataset) -> str | None:
    uid = getattr(ds, "FrameOfReferenceUID", None)
    if uid:
        return str(uid)
    for item in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        return str(item.FrameOfReferenceUID)
    return None


def sample_jobs(sample_dir: Path) -> list[dict]:
    """One job per (structure set, dose) pair sharing a frame of reference in each case folder."""
    jobs = []
    for case in sorted(p for p in sample_dir.glob("*") if p.is_dir()):
        rs_files = sorted(case.glob("RS.*.dcm"))
        rd_files = sorted(case.glob("RD.*.dcm"))
        for rs in rs_files:
            frame = _frame(pydicom.dcmread(rs, stop_before_pixels=True))
            for rd in rd_files:
                if _frame(pydicom.dcmread(rd, stop_before_pixels=True)) == frame:
                    label = f"{case.name}/{rs.name}+{rd.name}"
                    jobs.append({"label": label, "structure": str(rs), "dose": str(rd)})
    return jobs


def large_case_jobs(quick: bool) -> tuple[list[dict], str]:
    import large_case

    shape = (150, 150, 120) if quick else (300, 300, 240)
    out = OUT / ("large_quick" if quick else "large")
    rs, rd = out / "RS.large.dcm", out / "RD.large.dcm"
    if not (rs.exists() and rd.exists()):
        print(f"writing the large case to {out.relative_to(ROOT)} ...", flush=True)
        large_case.write_case(out, shape)
    n = shape[0] * shape[1] * shape[2]
    what = f"{shape[0]}x{shape[1]}x{shape[2]} = {n / 1e6:.1f} M voxels of 1 mm, 30 ROIs"
    return [{"label": "large", "structure": str(rs), "dose": str(rd), "rois": None}], what


def analytical_jobs(data: Path, quick: bool) -> tuple[list[dict], list[nelms.NelmsCase]]:
    cases = nelms.runnable_cases(data)
    if quick:
        cases = cases[::5]
    jobs = [
        {
            "label": c.label,
            "structure": str(c.structure_path),
            "dose": str(c.dose_path),
            "rois": [nelms.ROI_NUMBER],
        }
        for c in cases
    ]
    return jobs, cases


# ------------------------------------------------------------------------------------------
# Running one side on one input
# ------------------------------------------------------------------------------------------


def run_side(python: Path | str, runner: Path, jobs: list[dict]) -> dict:
    """Run ``runner`` on ``jobs`` in a fresh subprocess; its JSON plus the process wall time."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(jobs, fh)
        job_file = fh.name
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), str(runner), job_file],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S} s"}
    finally:
        Path(job_file).unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    result = json.loads(done.stdout)
    result["wall_s"] = wall
    result["compute_s"] = sum(j["total_s"] for j in result["jobs"])
    result["n_rois"] = sum(len(j["rois"]) for j in result["jobs"])
    result["n_errors"] = sum(len(j["errors"]) for j in result["jobs"])
    return result


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def print_speed_table(rows: list[tuple[str, str, dict, dict | None]]) -> list[bool]:
    """rows: (input name, description, rtqa result, peer result or None)."""
    print("\n== speed and peak memory (read + DVH of every ROI; each side in its own process) ==")
    print(
        f"{'input':<12}{'ROIs':>5}  {'rtqa s':>9}{'rtqa MB':>9}  {'dc-core s':>10}{'dc MB':>8}"
        f"  {'speed-up':>9}  targets"
    )
    verdicts = []
    failures = []
    for name, _what, mine, peer in rows:
        targets = []
        if "error" in mine:
            failures.append(f"{name}: rtqa failed: {mine['error']}")
            n_rois = peer["n_rois"] if peer and "error" not in peer else 0
            line = f"{name:<12}{n_rois:>5}  {'n/a':>9}{'n/a':>9}"
            if name in ("large", "sample"):
                verdicts.append(False)
        else:
            line = f"{name:<12}{mine['n_rois']:>5}  {mine['compute_s']:>9.3f}"
            line += f"{mine['peak_rss_mb']:>9.0f}"
        if peer is None:
            line += f"  {'-':>10}{'-':>8}  {'-':>9}"
        elif "error" in peer:
            line += f"  {'n/a':>10}{'n/a':>8}  {'-':>9}"
            failures.append(f"{name}: dicompyler-core failed: {peer['error']}")
        elif "error" in mine:
            line += f"  {peer['compute_s']:>10.3f}{peer['peak_rss_mb']:>8.0f}  {'-':>9}"
        else:
            ratio = peer["compute_s"] / mine["compute_s"] if mine["compute_s"] > 0 else math.inf
            line += f"  {peer['compute_s']:>10.3f}{peer['peak_rss_mb']:>8.0f}  {ratio:>8.1f}x"
            if name in ("large", "sample"):
                ok = ratio >= SPEEDUP_TARGET
                targets.append(f">= {SPEEDUP_TARGET:.0f}x {_verdict(ok)}")
                verdicts.append(ok)
        if name == "large" and "error" not in mine:
            ok = mine["peak_rss_mb"] < MEMORY_TARGET_MB
            targets.append(f"memory < {MEMORY_TARGET_MB / 1024:.0f} GB {_verdict(ok)}")
            verdicts.append(ok)
        print(line + "  " + ", ".join(targets))
        errors = [mine.get("n_errors", 0), (peer or {}).get("n_errors", 0)]
        if any(errors):
            print(f"{'':<12}ROI failures: rtqa {errors[0]}, dicompyler-core {errors[1]}")
    for failure in failures:
        print(f"  {failure}")
    print("\n(process wall times incl. interpreter start and imports, s)")
    for name, what, mine, peer in rows:
        peer_wall = f"{peer['wall_s']:.2f}" if peer and "wall_s" in peer else "-"
        mine_wall = f"{mine['wall_s']:.2f}" if "wall_s" in mine else "-"
        print(f"  {name:<10} rtqa {mine_wall:>8}   dicompyler-core {peer_wall:>8}   {what}")
    return verdicts


def print_floor(rows: list[tuple[str, str, dict, dict | None]], floors: dict[str, dict]) -> None:
    """pydicom's own reading time per input beside the time the speed-up target allows."""
    print("\n== reading floor: pydicom alone (contour sequences walked, dose pixels decoded) ==")
    print(f"{'input':<12}{'floor s':>9}  {'allowed s':>10}  share of the allowed time")
    for name, _what, _mine, peer in rows:
        floor = floors.get(name, {})
        if "error" in floor or "compute_s" not in floor:
            print(f"{name:<12}{'n/a':>9}  {floor.get('error', '')}")
            continue
        line = f"{name:<12}{floor['compute_s']:>9.3f}"
        if peer and "compute_s" in peer:
            allowed = peer["compute_s"] / SPEEDUP_TARGET
            line += f"  {allowed:>10.3f}  {100 * floor['compute_s'] / allowed:.0f} %"
        print(line)


def print_accuracy(cases: list[nelms.NelmsCase], results: dict[str, dict | None]) -> None:
    print("\n== accuracy on the analytical set: mean |error| against the analytic values ==")
    print(f"{'tool':<18}{'cases':>6}{'D95 Gy':>9}{'D95 %':>8}{'mean Gy':>9}{'mean %':>8}")
    for tool, res in results.items():
        if res is None or "error" in res:
            why = "not run" if res is None else res["error"]
            print(f"{tool:<18} {why}")
            continue
        by_label = {j["label"]: j for j in res["jobs"]}
        errs = {"D95": [], "mean_gy": []}
        for c in cases:
            job = by_label.get(c.label)
            got = job["rois"].get(str(nelms.ROI_NUMBER)) if job else None
            if got is None:
                continue
            for m in errs:
                errs[m].append((got[m] - c.analytic[m], (got[m] - c.analytic[m]) / c.analytic[m]))
        n = len(errs["D95"])
        if n == 0:
            print(f"{tool:<18} no results")
            continue

        def mae(m: str, i: int, scale: float = 1.0) -> float:
            return sum(abs(e[i]) for e in errs[m]) / n * scale  # noqa: B023

        print(
            f"{tool:<18}{n:>6}{mae('D95', 0):>9.3f}{mae('D95', 1, 100):>8.2f}"
            f"{mae('mean_gy', 0):>9.3f}{mae('mean_gy', 1, 100):>8.2f}"
        )


def print_agreement(mine: dict, peer: dict | None) -> None:
    """How far the two tools' volumes and mean doses lie apart on the large case."""
    if not peer or "error" in peer or "error" in mine:
        return
    a, b = mine["jobs"][0]["rois"], peer["jobs"][0]["rois"]
    common = sorted(set(a) & set(b), key=int)
    if not common:
        return
    dv = max(abs(a[k]["volume_cc"] - b[k]["volume_cc"]) / b[k]["volume_cc"] for k in common)
    dm = max(abs(a[k]["mean_gy"] - b[k]["mean_gy"]) for k in common)
    print(
        f"\nlarge case, rtqa vs dicompyler-core over {len(common)} ROIs: largest volume difference"
        f" {100 * dv:.2f} %, largest mean-dose difference {dm:.3f} Gy"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-peer", action="store_true", help="run rtqa only")
    parser.add_argument("--quick", action="store_true", help="smaller large case, 1/5 of Nelms")
    parser.add_argument("--data", type=Path, default=nelms.DEFAULT_DATA, help="nelms2015 folder")
    parser.add_argument("--samples", type=Path, default=ROOT / "sample_data")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)

    peer_py: Path | None = None
    if not args.skip_peer:
        got = ensure_peer_env()
        if isinstance(got, str):
            print(f"note: {got}; continuing with rtqa only")
        else:
            peer_py = got
    mine_runner = HERE / "peers" / "rtqa_runner.py"
    peer_runner = HERE / "peers" / "dicompyler_runner.py"
    floor_runner = HERE / "peers" / "pydicom_floor.py"

    inputs: list[tuple[str, str, list[dict]]] = []
    samples = sample_jobs(args.samples) if args.samples.is_dir() else []
    if samples:
        n_cases = len({j["label"].split("/")[0] for j in samples})
        inputs.append(("sample", f"{n_cases} sample cases", samples))
    else:
        print(
            f"note: no sample data ({args.samples.name}/<case>/ with RS.*.dcm and RD.*.dcm);"
            " generate it first to benchmark it"
        )
    large, what = large_case_jobs(args.quick)
    inputs.append(("large", what, large))
    nelms_jobs, nelms_cases = analytical_jobs(args.data, args.quick)
    inputs.append(("analytical", f"{len(nelms_jobs)} Nelms cases", nelms_jobs))

    rows = []
    floors: dict[str, dict] = {}
    accuracy: dict[str, dict | None] = {"rtqa": None, "dicompyler-core": None}
    for name, what, jobs in inputs:
        print(f"running {name} ({what}) ...", flush=True)
        mine = run_side(sys.executable, mine_runner, jobs)
        peer = run_side(peer_py, peer_runner, jobs) if peer_py else None
        floors[name] = run_side(sys.executable, floor_runner, jobs)
        rows.append((name, what, mine, peer))
        if name == "analytical":
            accuracy = {"rtqa": mine, "dicompyler-core": peer}
        if name == "large":
            large_pair = (mine, peer)
    if peer_py:
        print(f"\npeer: {rows[0][3].get('tool', PEER) if rows[0][3] else PEER}, defaults")
    verdicts = print_speed_table(rows)
    print_floor(rows, floors)
    print_agreement(*large_pair)
    print_accuracy(nelms_cases, accuracy)
    if args.strict and not all(verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
