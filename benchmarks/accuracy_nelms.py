"""DVH accuracy of rtqa on the Nelms et al. (2015) analytical set, against two truths.

1. Contour truth: the exact DVH of the object the contours define (slab convention, end caps of
   half the contour spacing by default), computed in closed form without a voxel grid
   (``exact_dvh.py``) from the dose file's own linear ramp. Target for rtqa: volume and mean
   within 0.5 %, D99/D95/D5/D1/D0.03cc within max(1 %, 0.05 Gy) on every case; min and max are
   printed, not judged.
2. Analytic truth: the published values (``analytical_points.csv``, cGy -> Gy), with the exact
   slab stack's own error beside rtqa's, so the share of contour discretisation shows; and rtqa
   with the contour shapes interpolated between planes (``--interpolate N`` sub-slabs per step,
   default 4; 0 leaves it out), so the share of that error interpolation removes shows.

Usage: python benchmarks/accuracy_nelms.py [--data DIR] [--csv FILE] [--end-cap MM]
       [--interpolate N] [--strict]
Exit status 0 unless --strict and a case misses the contour-truth target (or rtqa is missing).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path

import exact_dvh
import nelms

METRICS = ["volume_cc", "mean_gy", "D99", "D95", "D5", "D1", "D0.03cc", "min_gy", "max_gy"]
SHORT = {
    "volume_cc": "vol",
    "mean_gy": "mean",
    "min_gy": "min",
    "max_gy": "max",
}
D_METRICS = ["D99", "D95", "D5", "D1", "D0.03cc"]
ABS_METRICS = {"min_gy", "max_gy"}  # errors in Gy, not judged


def _short(m: str) -> str:
    return SHORT.get(m, m)


def within_target(metric: str, value: float, truth: float) -> bool | None:
    """The contour-truth target; ``None`` for metrics that are printed only."""
    if metric in ABS_METRICS:
        return None
    if metric in ("volume_cc", "mean_gy"):
        return abs(value - truth) <= 0.005 * abs(truth)
    return abs(value - truth) <= max(0.01 * abs(truth), 0.05)


def error(metric: str, value: float, truth: float) -> float:
    """Signed error: Gy for min/max, percent of the truth otherwise."""
    if metric in ABS_METRICS:
        return value - truth
    return 100.0 * (value - truth) / truth


def _fmt(metric: str, err: float | None) -> str:
    if err is None:
        return "   n/a"
    return f"{err:+7.3f}" if metric in ABS_METRICS else f"{err:+7.2f}"


# ------------------------------------------------------------------------------------------
# The two sides
# ------------------------------------------------------------------------------------------


def contour_truth(cases: list[nelms.NelmsCase], end_cap_mm: float | None) -> list[dict]:
    doses: dict[Path, exact_dvh.LinearDose] = {}
    out = []
    for case in cases:
        if case.dose_path not in doses:
            doses[case.dose_path] = exact_dvh.fit_linear_dose(
                *exact_dvh.read_dose_array(case.dose_path)
            )
        planes = exact_dvh.read_planes(case.structure_path, nelms.ROI_NUMBER)
        dvh = exact_dvh.ExactDvh(exact_dvh.slab_stack(planes, end_cap_mm), doses[case.dose_path])
        out.append(dvh.metrics())
    return out


def load_engine(
    interpolate_steps: int = 0,
) -> Callable[[nelms.NelmsCase], dict[str, float]] | str:
    """A function computing rtqa's metrics for a case (contour shapes interpolated in
    ``interpolate_steps`` sub-slabs per step between planes; 0: the slab model), or why rtqa's
    engine cannot be used."""
    try:
        from rtqa.dicom.dose import read_dose
        from rtqa.dicom.structures import read_structure_set
        from rtqa.dvh import structure_dvh
    except ImportError as exc:
        return f"rtqa DVH engine not available ({exc})"
    dose_cache: dict[Path, object] = {}

    def run(case: nelms.NelmsCase) -> dict[str, float]:
        if case.dose_path not in dose_cache:
            dose_cache[case.dose_path] = read_dose(str(case.dose_path))
        roi = read_structure_set(str(case.structure_path)).roi(nelms.ROI_NUMBER)
        sd = structure_dvh(roi, dose_cache[case.dose_path], interpolate_steps=interpolate_steps)
        d = sd.dvh
        return {
            "volume_cc": d.total_volume_cc,
            "mean_gy": d.mean_gy,
            "min_gy": d.min_gy,
            "max_gy": d.max_gy,
            "D99": d.dose_at_volume_pct(99),
            "D95": d.dose_at_volume_pct(95),
            "D5": d.dose_at_volume_pct(5),
            "D1": d.dose_at_volume_pct(1),
            "D0.03cc": d.dose_at_volume_cc(0.03),
            "contour_volume_cc": sd.volume_cc,
        }

    return run


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------


def _header(first: str, width: int) -> str:
    cols = "".join(f"{_short(m):>8}" for m in METRICS)
    return f"{first:<{width}}{cols}"


def print_contour_table(cases, truths, engine, failures) -> int:
    w = max(len(c.label) for c in cases) + 2
    print("\n== rtqa vs the contours' exact DVH (slab convention) ==")
    print("errors: % of the truth; min/max in Gy; '*' marks a miss of the target")
    print(_header("case", w) + "  verdict")
    n_ok = 0
    for case, truth, eng in zip(cases, truths, engine, strict=True):
        if eng is None:
            print(f"{case.label:<{w}}  error: {failures.get(case.label, 'no result')}")
            continue
        cells, ok = [], True
        for m in METRICS:
            hit = within_target(m, eng[m], truth[m])
            ok = ok and hit is not False
            cells.append(_fmt(m, error(m, eng[m], truth[m])) + ("*" if hit is False else " "))
        n_ok += ok
        print(f"{case.label:<{w}}" + "".join(cells) + ("  ok" if ok else "  MISS"))
    print("\nworst case per metric (contour truth)")
    print(f"{'metric':<9}{'worst err':>11}  {'tolerance':<22}{'within':>8}  case")
    for m in METRICS:
        rows = [
            (error(m, e[m], t[m]), within_target(m, e[m], t[m]), c.label)
            for c, t, e in zip(cases, truths, engine, strict=True)
            if e is not None
        ]
        if not rows:
            continue
        worst = max(rows, key=lambda r: abs(r[0]))
        unit = "Gy" if m in ABS_METRICS else "%"
        tol = {
            "volume_cc": "0.5 %",
            "mean_gy": "0.5 %",
        }.get(m, "printed only" if m in ABS_METRICS else "max(1 %, 0.05 Gy)")
        n_in = sum(1 for r in rows if r[1] is not False)
        within = "-" if m in ABS_METRICS else f"{n_in}/{len(rows)}"
        print(f"{_short(m):<9}{worst[0]:>+9.3f} {unit:<2} {tol:<22}{within:>8}  {worst[2]}")
    return n_ok


def print_analytic_table(cases, truths, engine, interp=None, steps: int = 0) -> None:
    w = max(len(c.label) for c in cases) + 9
    print("\n== against the analytic values (Nelms et al. 2015) ==")
    print("errors: % of the analytic value; min/max in Gy; 'slab' = exact DVH of the contours")
    if interp is not None:
        print(f"'interp' = rtqa with the contour shapes interpolated, {steps} sub-slabs per step")
    print(_header("case", w))
    sides = [("rtqa", engine)] + ([("interp", interp)] if interp is not None else [])
    for i, (case, truth) in enumerate(zip(cases, truths, strict=True)):
        a = case.analytic
        print(
            f"{case.label + ' slab':<{w}}"
            + "".join(f"{_fmt(m, error(m, truth[m], a[m]))} " for m in METRICS)
        )
        for name, results in sides:
            if results[i] is not None:
                print(
                    f"{case.label + ' ' + name:<{w}}"
                    + "".join(f"{_fmt(m, error(m, results[i][m], a[m]))} " for m in METRICS)
                )
    print("\nworst case per metric (analytic truth); mean |error| over the cases")
    names = ["slab"] + [name for name, _ in sides]
    print(
        f"{'metric':<9}"
        + "".join(f"{n + ' worst':>13}  {'case':<24}" for n in names)
        + "".join(f"{n + ' mean|e|':>15}" for n in names)
    )
    for m in METRICS:
        unit = "Gy" if m in ABS_METRICS else "%"
        columns = [
            [(error(m, t[m], c.analytic[m]), c.label) for c, t in zip(cases, truths, strict=True)]
        ]
        for _, results in sides:
            columns.append(
                [
                    (error(m, e[m], c.analytic[m]), c.label)
                    for c, e in zip(cases, results, strict=True)
                    if e is not None
                ]
            )
        line = f"{_short(m):<9}"
        for rows in columns:
            if rows:
                worst = max(rows, key=lambda r: abs(r[0]))
                line += f"{worst[0]:>+10.3f} {unit:<2}  {worst[1]:<24}"
            else:
                line += f"{'n/a':>13}  {'':<24}"
        for rows in columns:
            if rows:
                line += f"{sum(abs(r[0]) for r in rows) / len(rows):>12.3f} {unit:<2}"
            else:
                line += f"{'n/a':>15}"
        print(line)


def write_csv(path: Path, cases, truths, engine, interp=None) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "case",
                "structure",
                "gradient",
                "dose_grid_mm",
                "metric",
                "contour_truth",
                "analytic",
                "rtqa",
                "rtqa_err_vs_contour",
                "within_target",
                "rtqa_err_vs_analytic",
                "slab_err_vs_analytic",
                "rtqa_interpolated",
                "rtqa_interpolated_err_vs_analytic",
            ]
        )
        for k, (c, t, e) in enumerate(zip(cases, truths, engine, strict=True)):
            e_i = interp[k] if interp is not None else None
            for m in METRICS:
                val = e[m] if e is not None else None
                val_i = e_i[m] if e_i is not None else None
                out.writerow(
                    [
                        c.label,
                        c.structure,
                        c.gradient,
                        c.grid_mm,
                        m,
                        f"{t[m]:.6f}",
                        f"{c.analytic[m]:.6f}",
                        "" if val is None else f"{val:.6f}",
                        "" if val is None else f"{error(m, val, t[m]):.4f}",
                        "" if val is None else within_target(m, val, t[m]),
                        "" if val is None else f"{error(m, val, c.analytic[m]):.4f}",
                        f"{error(m, t[m], c.analytic[m]):.4f}",
                        "" if val_i is None else f"{val_i:.6f}",
                        "" if val_i is None else f"{error(m, val_i, c.analytic[m]):.4f}",
                    ]
                )


def _run_all(fn, cases, failures: dict[str, str]) -> tuple[list[dict | None], float]:
    """``fn`` on every case (a failing case is recorded in ``failures``) and the time taken."""
    t0 = time.perf_counter()
    out: list[dict | None] = [None] * len(cases)
    for i, case in enumerate(cases):
        try:
            out[i] = fn(case)
        except Exception as exc:  # a benchmark reports a failing case and goes on
            failures[case.label] = f"{type(exc).__name__}: {exc}"
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=nelms.DEFAULT_DATA, help="nelms2015 folder")
    parser.add_argument("--csv", type=Path, help="also write the per-case, per-metric rows here")
    parser.add_argument(
        "--end-cap",
        type=float,
        default=None,
        help="end cap (mm) of the contour truth; default half the contour spacing",
    )
    parser.add_argument(
        "--interpolate",
        type=int,
        default=4,
        metavar="N",
        help="also run rtqa with the contour shapes interpolated, N sub-slabs per step between "
        "planes, against the analytic values (default 4; 0: leave out)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a case misses")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    cases = nelms.runnable_cases(args.data)
    truths = contour_truth(cases, args.end_cap)
    t_truth = time.perf_counter() - t0
    engine_fn = load_engine()
    engine: list[dict | None] = [None] * len(cases)
    interp: list[dict | None] | None = None
    failures: dict[str, str] = {}
    interp_failures: dict[str, str] = {}
    t_engine = t_interp = 0.0
    if isinstance(engine_fn, str):
        print(f"note: {engine_fn}; printing the exact slab stack against the analytic values only")
    else:
        engine, t_engine = _run_all(engine_fn, cases, failures)
        if args.interpolate > 0:
            interp_fn = load_engine(args.interpolate)
            assert not isinstance(interp_fn, str)
            interp, t_interp = _run_all(interp_fn, cases, interp_failures)

    print(f"Nelms et al. 2015 analytical set: {len(cases)} runnable cases from {args.data}")
    end_cap = "half the contour spacing" if args.end_cap is None else f"{args.end_cap} mm"
    print(f"contour truth: slab convention, end caps {end_cap}; computed in {t_truth:.1f} s")
    n_ok = 0
    if not isinstance(engine_fn, str):
        print(f"rtqa: {len(cases) - len(failures)} cases computed in {t_engine:.1f} s")
        if interp is not None:
            n_i = sum(e is not None for e in interp)
            print(
                f"rtqa, contours interpolated ({args.interpolate} sub-slabs per step): "
                f"{n_i} cases computed in {t_interp:.1f} s"
            )
            for label, why in interp_failures.items():
                print(f"  interpolated: {label}: error: {why}")
        cvol = [
            abs(e["contour_volume_cc"] - t["volume_cc"]) / t["volume_cc"] * 100
            for e, t in zip(engine, truths, strict=True)
            if e is not None
        ]
        if cvol:
            print(
                f"rtqa contour volume (no grid) vs the slab truth: worst |error| {max(cvol):.4f} %"
                + ("" if max(cvol) < 0.01 else "  <- end-cap conventions differ?")
            )
        n_ok = print_contour_table(cases, truths, engine, failures)
    print_analytic_table(cases, truths, engine, interp, args.interpolate)
    if args.csv:
        write_csv(args.csv, cases, truths, engine, interp)
        print(f"\nper-case rows written to {args.csv}")
    if not isinstance(engine_fn, str):
        print(f"\ncases meeting the contour-truth target: {n_ok}/{len(cases)}")
    print(f"total time {time.perf_counter() - t0:.1f} s")
    if args.strict and (isinstance(engine_fn, str) or n_ok < len(cases)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
