"""Time rtqa's DVH calculation: the counterpart of dicompyler_runner.py, same JSON in and out.

Usage: python rtqa_runner.py JOBS.json  -> prints one JSON document on stdout.

For each job the structure set and dose are read once (rtqa's readers), then
``rtqa.dvh.structure_dvh(roi, dose)`` runs with its defaults for every ROI (``rois`` null: every
ROI with closed contours). Times in seconds, volumes in cc, doses in Gy; ``peak_rss_mb`` is this
process's peak resident memory.
"""

from __future__ import annotations

import timing

from rtqa import __version__
from rtqa.dicom.dose import read_dose
from rtqa.dicom.structures import read_structure_set
from rtqa.dvh import structure_dvh


def _or_nan(fn, *args) -> float:
    """A metric's value, NaN where it is undefined (e.g. D99% or Min of a body reaching outside
    the dose grid, D0.03cc of a structure under 0.03 cc): the DVH itself was computed."""
    try:
        return float(fn(*args))
    except ValueError:
        return float("nan")


def metrics(sd) -> dict[str, float]:
    d = sd.dvh
    out = {
        "volume_cc": float(d.total_volume_cc),
        "mean_gy": float(d.mean_gy),
        "min_gy": _or_nan(lambda: d.min_gy),  # undefined where part lies outside the grid
        "max_gy": float(d.max_gy),
    }
    for pct in (99, 95, 5, 1):
        out[f"D{pct}"] = _or_nan(d.dose_at_volume_pct, pct)
    out["D0.03cc"] = _or_nan(d.dose_at_volume_cc, 0.03)
    return out


def read(job: dict):
    """(ROIs with closed contours by number, dose grid)."""
    structure_set = read_structure_set(job["structure"])
    rois = {r.number: r for r in structure_set.rois if not r.is_empty}
    return rois, read_dose(job["dose"])


def rois_of(job: dict, data) -> list[int]:
    wanted = job.get("rois")
    return [n for n in data[0] if not wanted or n in wanted]


def metrics_of(data, number: int) -> dict[str, float]:
    return metrics(structure_dvh(data[0][number], data[1]))


if __name__ == "__main__":
    timing.main(f"rtqa {__version__}", read, rois_of, metrics_of)
