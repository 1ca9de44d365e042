"""DVH accuracy on random structures against the exact DVH of their slab model.

Four families of cases drawn from seeds (``random_cases.py``), each judged by the contour-truth
target of the engine (volume and mean within 0.5 %, D99/D95/D50/D5/D1/D0.03cc within
max(1 %, 0.05 Gy); D0.03cc only for structures over 0.1 cc):

* ``axis``: the dose linear along x, y or z (``exact_dvh.ExactDvh``);
* ``oblique``: the dose linear along a random direction (``exact_dvh.ObliqueDvh``), where the
  spread of each sample is not exact by construction;
* ``grid-cut``: the dose grid cut through the structure across another axis than the gradient;
  the volume with a known dose and the volume beyond the grid against the slab model clipped to
  the grid's extent (half a step beyond its outer nodes), and the mean of the known part;
* ``union`` / ``difference``: a second structure (the first with every plane scaled and moved
  in plane) united with or taken from the first, as rtqa's constraint files derive structures
  (``structure_dvhs.derived_dvh``); beside it, the same structure made by combining the two
  occupancies cell by cell (the larger fraction, or the difference of the fractions).

Usage: python benchmarks/accuracy_random.py [--cases N] [--seed S] [--strict]
"""

from __future__ import annotations

import argparse
import sys
import time

import exact_dvh as ex
import random_cases as rc
import shapely
from accuracy_nelms import within_target

from rtqa.dvh import occupancy_dvh, structure_dvh
from rtqa.geometry import choose_factors, contour_volume_cc, occupancy
from rtqa.protocol.structure_dvhs import derived_dvh

PERCENTS = (99, 95, 50, 5, 1)
METRICS = ("volume", "mean", *(f"D{p}" for p in PERCENTS), "D0.03cc")


#: accuracy_nelms.within_target's names for the volume and the mean.
TARGET_NAMES = {"volume": "volume_cc", "mean": "mean_gy"}


def compared(dvh, truth) -> dict[str, tuple[float, float]]:
    """(rtqa, truth) per metric: volume (cc), mean and dose metrics (Gy)."""
    total = truth.total_volume_cc
    out = {"volume": (dvh.total_volume_cc, total), "mean": (dvh.mean_gy, truth.mean_gy)}
    for p in PERCENTS:
        out[f"D{p}"] = (dvh.dose_at_volume_pct(p), truth.dose_at_volume_cc(p / 100 * total))
    if total > 0.1:
        out["D0.03cc"] = (dvh.dose_at_volume_cc(0.03), truth.dose_at_volume_cc(0.03))
    return out


def error(metric: str, got: float, want: float) -> float:
    """Volume and mean in % of the truth, doses in Gy (got - truth)."""
    return 100 * (got - want) / want if metric in TARGET_NAMES else got - want


def meets(pairs: dict[str, tuple[float, float]]) -> bool:
    """Whether every metric is within the contour-truth target."""
    return all(within_target(TARGET_NAMES.get(m, m), got, want) for m, (got, want) in pairs.items())


def axis_case(seed: int):
    case = rc.random_case(seed)
    truth = rc.axis_truth(case)
    sd = structure_dvh(case.roi, rc.linear_grid(case.nodes, case.offset_gy, case.gradient))
    return [("rtqa", truth, sd.dvh)]


def oblique_case(seed: int):
    case = rc.random_case(seed)
    off, g = rc.oblique(case)
    truth = ex.ObliqueDvh(rc.slabs_of(case.roi), off, g)
    return [("rtqa", truth, structure_dvh(case.roi, rc.linear_grid(case.nodes, off, g)).dvh)]


def derived_case(seed: int, op: str):
    case = rc.random_case(seed)
    other = rc.partner(case)
    truth, nodes, off = rc.derived_truth(case, other, op)
    dose = rc.linear_grid(nodes, off, case.gradient)
    plus, minus = ((other,), ()) if op == "union" else ((), (other,))
    exact = derived_dvh(case.roi, dose, minus=minus, plus=plus).dvh
    # the same structure from the two occupancies, cell by cell
    factors = choose_factors(contour_volume_cc(case.roi) + contour_volume_cc(other), dose)
    a = occupancy(case.roi, dose, factors=factors)
    b = occupancy(other, dose, factors=factors)
    cells = occupancy_dvh(a.union(b) if op == "union" else a.difference(b), dose, op).dvh
    return [("rtqa", truth, exact), ("cell by cell", truth, cells)]


def grid_cut_case(seed: int) -> dict[str, float] | None:
    """Errors (% of the structure) of the known and the unknown volume and of the known part's
    mean, with the grid cut across a random other axis than the gradient; None when the cut
    leaves the structure whole or the grid under two nodes."""
    case = rc.random_case(seed)
    rng = case.rng
    cut = int(rng.choice([a for a in range(3) if a != case.axis]))
    slabs = rc.slabs_of(case.roi)
    whole = shapely.union_all([s.shape for s in slabs]).bounds
    lo, hi = ((whole[0], whole[2]), (whole[1], whole[3]), (slabs[0].z_lo, slabs[-1].z_hi))[cut]
    at = lo + rng.uniform(0.2, 0.8) * (hi - lo)
    nodes = list(case.nodes)
    keep = nodes[cut] <= at if rng.random() < 0.5 else nodes[cut] >= at
    if keep.sum() < 2 or keep.all():
        return None
    nodes[cut] = nodes[cut][keep]
    grid = rc.linear_grid(tuple(nodes), case.offset_gy, case.gradient)
    k = nodes[cut]
    e0, e1 = k[0] - (k[1] - k[0]) / 2, k[-1] + (k[-1] - k[-2]) / 2
    inside = []
    for s in slabs:
        if cut == 2:
            z0, z1 = max(s.z_lo, e0), min(s.z_hi, e1)
            if z1 > z0:
                inside.append(ex.Slab(s.z_mm, z0, z1, s.shape))
        else:
            big = 1e6
            band = shapely.box(e0, -big, e1, big) if cut == 0 else shapely.box(-big, e0, big, e1)
            part = s.shape.intersection(band)
            if part.area > 0:
                inside.append(ex.Slab(s.z_mm, s.z_lo, s.z_hi, part))
    total = sum(s.shape.area * s.thickness_mm for s in slabs) / 1000
    known = sum(s.shape.area * s.thickness_mm for s in inside) / 1000
    dvh = structure_dvh(case.roi, grid).dvh
    out = {
        "known": 100 * (dvh.known_volume_cc - known) / total,
        "beyond": 100 * (dvh.unknown_volume_cc - (total - known)) / total,
    }
    if inside and known > 1e-3:
        dose = ex.LinearDose(case.axis, case.offset_gy, case.gradient_gy_per_mm)
        truth = ex.ExactDvh(inside, dose)
        out["mean known"] = 100 * (dvh.mean_gy - truth.mean_gy) / truth.mean_gy
    return out


def run_family(name: str, seeds, make) -> tuple[dict, dict]:
    """{tool: (cases, meeting, {metric: (worst error, seed)})} for one family."""
    table: dict[str, list] = {}
    for seed in seeds:
        for tool, truth, dvh in make(seed):
            entry = table.setdefault(tool, [0, 0, {}])
            pairs = compared(dvh, truth)
            entry[0] += 1
            entry[1] += meets(pairs)
            for m, (got, want) in pairs.items():
                v = error(m, got, want)
                if abs(v) > abs(entry[2].get(m, (0.0, None))[0]):
                    entry[2][m] = (v, seed)
    return name, table


def print_family(name: str, table: dict) -> list[bool]:
    verdicts = []
    for tool, (n, ok, worst) in table.items():
        print(f"{name:<11}{tool:<14}{n:>6}{ok:>8}", end="")
        for m in METRICS:
            v, seed = worst.get(m, (float("nan"), None))
            unit = "%" if m in ("volume", "mean") else "Gy"
            print(f"  {m} {v:+.3f} {unit} (#{seed})", end="")
        print()
        if tool == "rtqa":
            verdicts.append(ok == n)
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per family")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a case misses")
    args = parser.parse_args(argv)
    seeds = range(args.seed, args.seed + args.cases)
    t0 = time.perf_counter()
    print("family     tool           cases  meeting  worst error per metric (seed)")
    verdicts = []
    for name, make in (
        ("axis", axis_case),
        ("oblique", oblique_case),
        ("union", lambda s: derived_case(s, "union")),
        ("difference", lambda s: derived_case(s, "difference")),
    ):
        verdicts += print_family(*run_family(name, seeds, make))
    cut_worst: dict[str, tuple[float, int]] = {}
    n_cut = n_ok = 0
    for seed in seeds:
        err = grid_cut_case(seed)
        if err is None:
            continue
        n_cut += 1
        n_ok += all(abs(v) <= 0.5 for v in err.values())
        for m, v in err.items():
            if abs(v) > abs(cut_worst.get(m, (0.0, seed))[0]):
                cut_worst[m] = (v, seed)
    print(
        f"{'grid-cut':<11}{'rtqa':<14}{n_cut:>6}{n_ok:>8}  "
        + "  ".join(f"{m} {v:+.4f} % (#{s})" for m, (v, s) in cut_worst.items())
    )
    verdicts.append(n_ok == n_cut)
    print(f"\n(grid-cut: % of the whole structure; total time {time.perf_counter() - t0:.0f} s)")
    return 1 if args.strict and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
