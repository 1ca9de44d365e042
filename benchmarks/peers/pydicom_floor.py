"""The reading floor: what pydicom alone costs to read the inputs both tools read, no DVH.

Usage: python pydicom_floor.py JOBS.json  -> prints one JSON document on stdout (the format of
the other runners, with no ROIs).

For each job: ``pydicom.dcmread`` of the structure set, a walk over every contour item taking
its ContourData as raw bytes (no conversion to numbers), and ``dcmread`` of the dose with its
pixel array decoded (not scaled). Any DVH tool that reads DICOM with pydicom pays at least
this; ``speed_dvh.py`` sets it beside the time a speed-up target allows. Times in seconds.
"""

import pydicom
import timing

CONTOUR_DATA = 0x30060050


def read(job):
    ds = pydicom.dcmread(job["structure"])
    size = 0
    for item in getattr(ds, "ROIContourSequence", []):
        for contour in getattr(item, "ContourSequence", []):
            raw = contour.get_item(CONTOUR_DATA)
            size += len(raw.value) if raw is not None and raw.value is not None else 0
    dose = pydicom.dcmread(job["dose"])
    return size, dose.pixel_array.shape


def rois_of(job, data):
    return []


def metrics_of(data, roi):
    return {}


if __name__ == "__main__":
    timing.main(f"pydicom {pydicom.__version__} (read only)", read, rois_of, metrics_of)
