"""Time dicompyler-core's default DVH calculation; run inside the dicompyler-core environment.

Usage: python dicompyler_runner.py JOBS.json  -> prints one JSON document on stdout.

JOBS.json: ``[{"label": str, "structure": path, "dose": path, "rois": [int, ...] | null}]``
(``null``: every ROI with a CLOSED_PLANAR contour). For each job the structure set and dose are
read once with pydicom, then ``dicompylercore.dvhcalc.get_dvh(structure, dose, roi)`` runs with
its defaults for every ROI. Times in seconds, volumes in cc, doses in Gy; ``peak_rss_mb`` is this
process's peak resident memory.
"""

import dicompylercore
import pydicom
import timing
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


def read(job):
    return pydicom.dcmread(job["structure"]), pydicom.dcmread(job["dose"])


def rois_of(job, data):
    return job.get("rois") or closed_planar_rois(data[0])


def metrics_of(data, roi):
    return metrics(dvhcalc.get_dvh(data[0], data[1], roi))


if __name__ == "__main__":
    timing.main(
        f"dicompyler-core {dicompylercore.__version__} (pydicom {pydicom.__version__})",
        read,
        rois_of,
        metrics_of,
    )
