"""Time dicompyler-core's default DVH calculation; run inside the dicompyler-core environment.

Usage: python dicompyler_runner.py JOBS.json  -> prints one JSON document on stdout.

JOBS.json: ``[{"label": str, "structure": path, "dose": path, "rois": [int, ...] | null}]``
(``null``: every ROI with a CLOSED_PLANAR contour). For each job the structure set and dose are
read once with pydicom, then ``dicompylercore.dvhcalc.get_dvh(structure, dose, roi)`` runs with
its defaults for every ROI. Times in seconds, volumes in cc, doses in Gy; ``peak_rss_mb`` is this
process's peak resident memory.
"""

import json
import resource
import sys
import time

import dicompylercore
import pydicom
from dicompylercore import dvhcalc


def closed_planar_rois(ds):
    rois = []
    for item in getattr(ds, "ROIContourSequence", []):
        seq = getattr(item, "ContourSequence", [])
        if any(str(c.ContourGeometricType).upper() == "CLOSED_PLANAR" for c in seq):
            rois.append(int(item.ReferencedROINumber))
    return rois


def metrics(dvh):
    out = {"volume_cc": float(dvh.volume), "mean_gy": float(dvh.mean)}
    out["min_gy"] = float(dvh.min)
    out["max_gy"] = float(dvh.max)
    for pct in (99, 95, 5, 1):
        out[f"D{pct}"] = float(dvh.dose_constraint(pct).value)
    out["D0.03cc"] = float(dvh.dose_constraint(0.03, "cc").value)
    return out


def run(job):
    t0 = time.perf_counter()
    rs = pydicom.dcmread(job["structure"])
    rd = pydicom.dcmread(job["dose"])
    t_read = time.perf_counter() - t0
    rois = job.get("rois") or closed_planar_rois(rs)
    results, errors = {}, {}
    t1 = time.perf_counter()
    for roi in rois:
        try:
            results[str(roi)] = metrics(dvhcalc.get_dvh(rs, rd, roi))
        except Exception as exc:  # report and go on
            errors[str(roi)] = f"{type(exc).__name__}: {exc}"
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


def main():
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)
    out = [run(job) for job in jobs]
    peak = peak_rss_mb()
    tool = f"dicompyler-core {dicompylercore.__version__} (pydicom {pydicom.__version__})"
    json.dump({"tool": tool, "peak_rss_mb": peak, "jobs": out}, sys.stdout)


if __name__ == "__main__":
    main()
