"""Write a small axial CT series (one file per slice) for tests, exports and sample data.

Geometry: ImageOrientationPatient (1,0,0,0,1,0), ImagePositionPatient = (x[0], y[0], z[k]),
PixelSpacing = (dy, dx) (row spacing first), SliceThickness = the mean slice step (mm).
Stored values are uint16; Hounsfield units = stored * RescaleSlope + RescaleIntercept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydicom.valuerep import format_number_as_ds

from rtqa.dicom.common import CT_IMAGE, make_uid
from rtqa.dicom.write.base import Header, new_dataset, save

PixelSource = np.ndarray | Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def write_ct_series(
    folder: str | Path,
    header: Header,
    *,
    frame_uid: str,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    z: Sequence[float] | np.ndarray,
    pixels: PixelSource | None = None,
    series_instance_uid: str | None = None,
    series_number: int = 1,
    rescale_slope: float = 1.0,
    rescale_intercept: float = -1024.0,
    file_pattern: str = "CT.{n}.dcm",
    patient_position: str = "HFS",
) -> list[Path]:
    """Write one CT slice per ``z`` (mm) into ``folder`` and return the paths in slice order.

    ``x`` and ``y`` (mm, uniform, increasing) are the column and row centres. ``pixels`` is an
    array ``(nz, ny, nx)`` of HU or a function ``f(X, Y, z) -> HU`` on the ``(ny, nx)`` meshgrid;
    default: water (0 HU) everywhere. SOP Instance UIDs derive from the series UID and the slice
    index, so rewriting gives the same files.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    zs = np.asarray(z, dtype=float)
    if xs.size < 2 or ys.size < 2 or zs.size < 1:
        raise ValueError("a CT series needs at least 2 columns, 2 rows and 1 slice")
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    if dx <= 0 or dy <= 0 or not (np.allclose(np.diff(xs), dx) and np.allclose(np.diff(ys), dy)):
        raise ValueError("x and y must be uniform and increasing")
    series_uid = series_instance_uid or make_uid("ct-series", frame_uid)
    thickness = float(np.mean(np.diff(zs))) if zs.size > 1 else 1.0
    grid_x, grid_y = np.meshgrid(xs, ys)
    paths = []
    for k, zk in enumerate(zs):
        if pixels is None:
            hu = np.zeros((ys.size, xs.size))
        elif callable(pixels):
            hu = np.asarray(pixels(grid_x, grid_y, float(zk)), dtype=float)
        else:
            hu = np.asarray(pixels, dtype=float)[k]
        stored = np.clip(np.rint((hu - rescale_intercept) / rescale_slope), 0, 65535)
        ds = new_dataset(
            header,
            sop_class_uid=CT_IMAGE,
            sop_instance_uid=make_uid("ct", series_uid, k),
            modality="CT",
            series_instance_uid=series_uid,
            series_number=series_number,
            frame_of_reference_uid=frame_uid,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.PatientPosition = patient_position
        ds.ImagePositionPatient = [format_number_as_ds(v) for v in (xs[0], ys[0], float(zk))]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = format_number_as_ds(float(zk))
        ds.SliceThickness = format_number_as_ds(thickness)
        ds.PixelSpacing = [format_number_as_ds(dy), format_number_as_ds(dx)]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ys.size
        ds.Columns = xs.size
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = format_number_as_ds(rescale_slope)
        ds.RescaleIntercept = format_number_as_ds(rescale_intercept)
        ds.RescaleType = "HU"
        ds.KVP = "120"
        ds.PixelData = stored.astype("<u2").tobytes()
        paths.append(save(ds, Path(folder) / file_pattern.format(n=k + 1)))
    return paths
