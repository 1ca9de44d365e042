"""What both runners share (standard library only: it runs in either tool's environment).

:func:`run_jobs` reads each job's files once and computes every ROI's metrics, timing the two
steps; :func:`main` prints the JSON document that ``speed_dvh.py`` reads. Times in seconds;
``peak_rss_mb`` is the process's peak resident memory (MB).
"""

import json
import resource
import sys
import time


def run_job(job, read, rois_of, metrics_of):
    """``read(job) -> data``, ``rois_of(job, data) -> [roi]``, ``metrics_of(data, roi) -> dict``;
    a failing ROI is recorded under ``errors`` and the others go on."""
    t0 = time.perf_counter()
    data = read(job)
    t_read = time.perf_counter() - t0
    results, errors = {}, {}
    t1 = time.perf_counter()
    for roi in rois_of(job, data):
        try:
            results[str(roi)] = metrics_of(data, roi)
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


def main(tool, read, rois_of, metrics_of):
    """Run the jobs of the JSON file named on the command line; print the result as JSON."""
    with open(sys.argv[1]) as fh:
        jobs = json.load(fh)
    out = [run_job(job, read, rois_of, metrics_of) for job in jobs]
    json.dump({"tool": tool, "peak_rss_mb": peak_rss_mb(), "jobs": out}, sys.stdout)
