"""CT series writer and image geometry reader."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import pytest

from rtqa.dicom.common import make_uid
from rtqa.dicom.images import read_image, series_from_slices
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.images import write_ct_series
from rtqa.model import Level

HEADER = Header("RTQA-001", "Phantom^Spine", make_uid("study"), datetime(2024, 3, 1, 9, 30))
FRAME = make_uid("frame")


def test_ct_series_geometry_and_hounsfield_units(tmp_path):
    x = np.arange(-6.0, 6.0, 2.0)  # 6 columns, 2 mm
    y = np.arange(-3.0, 3.0, 1.5)  # 4 rows, 1.5 mm
    z = [-2.5, 0.0, 2.5, 7.5]  # uneven: one skipped slice
    paths = write_ct_series(
        tmp_path / "ct",
        HEADER,
        frame_uid=FRAME,
        x=x,
        y=y,
        z=z,
        pixels=lambda gx, gy, zk: 10 * gx + gy + 100 * zk,
    )
    assert [p.name for p in paths] == ["CT.1.dcm", "CT.2.dcm", "CT.3.dcm", "CT.4.dcm"]
    ds = pydicom.dcmread(paths[3])
    assert [float(v) for v in ds.ImagePositionPatient] == [-6.0, -3.0, 7.5]
    assert [float(v) for v in ds.PixelSpacing] == [1.5, 2.0]  # row spacing, column spacing
    assert (ds.Rows, ds.Columns) == (4, 6)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # row j, column i holds f(x[i], y[j], z): rounded to whole HU on storage
    gx, gy = np.meshgrid(x, y)
    assert hu == pytest.approx(np.rint(10 * gx + gy + 750.0))

    slices = [read_image(str(p)) for p in reversed(paths)]
    series, notes = series_from_slices(slices)
    (note,) = notes  # the skipped slice: reported, nothing else
    assert note.level.value == "info"
    assert "uneven slice spacing: steps from 2.5 to 5 mm (median 2.5 mm)" in note.message
    assert series.frame_of_reference_uid == FRAME
    assert series.slice_positions_mm == (-2.5, 0.0, 2.5, 7.5)
    assert series.paths == tuple(str(p) for p in paths)
    assert series.patient_id == "RTQA-001"


def test_position_is_measured_along_the_slice_normal(tmp_path):
    (path,) = write_ct_series(tmp_path, HEADER, frame_uid=FRAME, x=[0, 1], y=[0, 1], z=[4.0])
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal: normal = row x column = +y
    ds.ImagePositionPatient = [3.0, -12.5, 40.0]
    ds.save_as(path)
    image = read_image(str(path))
    assert image.position_mm == pytest.approx(-12.5)


def test_mixed_frames_in_one_series_are_an_error(tmp_path):
    paths = write_ct_series(tmp_path, HEADER, frame_uid=FRAME, x=[0, 1], y=[0, 1], z=[0, 1])
    ds = pydicom.dcmread(paths[1])
    ds.FrameOfReferenceUID = make_uid("other")
    ds.save_as(paths[1])
    _, notes = series_from_slices([read_image(str(p)) for p in paths])
    assert [n.level for n in notes] == [Level.ERROR]
    assert "spans frames of reference" in notes[0].message
