"""Time rtqa's DVH calculation: the counterpart of dicompyler_runner.py, same JSON in and out.

Usage: python rtqa_runner.py JOBS.json  -> prints one JSON document on stdout.

For each job the structure set and dose are read once (rtqa's readers), then
``rtqa.dvh.structure_dvh(roi, dose)`` runs with its defaults for every ROI (``rois`` null: every
ROI with closed contours). Times in seconds, volumes in cc, doses in Gy; ``peak_rss_mb`` is this
process's peak resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from rtqa import __version__
from rtqa.dicom.dose import read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dvh import structure_dvh


def _or_nan(fn, *args) -> float:
    """A metric's value, NaN where it is undefined (e.g. D99% of a body reaching outside the
    dose grid, D0.03cc of a structure under 0.03 cc): the DVH itself was computed."""
    try:
        return float(fn(*args))
    except ValueError:
        return float("nan")


def metrics(sd) -> dict[str, float]:
    d = sd.dvh
    out = {
        "volume_cc": float(d.total_volume_cc),
        "mean_gy": float(d.mean_gy),
        "min_gy": float(d.min_gy),
        "max_gy": float(d.max_gy),
    }
    for pct in (99, 95, 5, 1):
        out[f"D{pct}"] = _or_nan(d.dose_at_volume_pct, pct)
    out["D0.03cc"] = _or_nan(d.dose_at_volume_cc, 0.03)
    return out


def run(job: dict) -> dict:
    t0 = time.perf_counter()
    structure_set = read_structure_set(job["structure"])
    dose = read_dose(job["dose"])
    t_read = time.perf_counter() - t0
    wanted = job.get("rois")
    rois = [r for r in structure_set.rois if not r.is_empty and (not wanted or r.number in wanted)]
    results, errors = {}, {}
    t1 = time.perf_counter()
    for roi in rois:
        try:
            results[str(roi.number)] = metrics(structure_dvh(roi, dose))
        except Exception as exc:  # report and go on
            errors[str(roi.number)] = f"{type(exc).__name__}: {exc}"
    t_calc = time.perf_counter() - t1
    return {
        "label": job["label"],
        "read_s": t_read,
        "calc_s": t_calc,
        "total_s": t_read + t_calc,
        "rois": results,
        "errors": errors,
    }


def peak_rss_mb():
    """Peak resident memory of this process (MB): VmHWM, which, unlike ru_maxrss, does not carry
    over the memory of the process this one was forked from."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)
    out = [run(job) for job in jobs]
    peak = peak_rss_mb()
    json.dump({"tool": f"rtqa {__version__}", "peak_rss_mb": peak, "jobs": out}, sys.stdout)


if __name__ == "__main__":
    main()
