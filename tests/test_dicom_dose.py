"""RT Dose writer and reader: geometry of the eight standard orientations, frame offsets,
stored values and transfer syntaxes (edge cases G1-G4, G8, D2-D5, F4, F7 of the DICOM notes).

Orientation checks do not trust the writer: expected voxel positions come from the DICOM formula
P = IPP + c·PixelSpacing[1]·rowcos + r·PixelSpacing[0]·colcos + offset·(rowcos × colcos),
evaluated here on the attributes actually stored, and from datasets built by hand.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    MPEG4HP41,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    RLELossless,
)

from rtqa.dicom.common import RT_DOSE, make_uid
from rtqa.dicom.dose import read_dose
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.errors import DicomError
from rtqa.model import DoseGrid

HEADER = Header("RTQA-DOSE", "Phantom^Dose", make_uid("dose-study"), datetime(2024, 5, 6, 7, 8))
FRAME = make_uid("dose-frame")
ORIENTATIONS = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
    "HFDL": (0, -1, 0, 1, 0, 0),
    "HFDR": (0, 1, 0, -1, 0, 0),
    "FFDL": (0, 1, 0, 1, 0, 0),
    "FFDR": (0, -1, 0, -1, 0, 0),
}
# Head first: slices stack towards +z (normal +z); feet first: towards -z.
EXPECTED_NORMAL_Z = {"HFS": 1, "HFP": 1, "HFDL": 1, "HFDR": 1, "FFS": -1, "FFP": -1, "FFDL": -1}
EXPECTED_NORMAL_Z["FFDR"] = -1

# Canonical test grid: non-square pixels (2.5 mm in x, 3 mm in y), uneven z.
X = -10.0 + 2.5 * np.arange(5)
Y = 20.0 + 3.0 * np.arange(4)
Z = np.array([-6.0, -3.0, 0.0, 4.5])
A, B, C, D = 0.5, 0.25, 0.125, 20.0  # dose = A x + B y + C z + D (Gy), multiples of 1/1024 here
SCALING = 2.0**-10  # exact in binary, so stored values and read doses are exact


def linear(x, y, z):
    return A * x + B * y + C * z + D


def linear_grid(**changes) -> DoseGrid:
    zz, yy, xx = np.meshgrid(Z, Y, X, indexing="ij")
    values = dict(dose_gy=linear(xx, yy, zz), x_mm=X, y_mm=Y, z_mm=Z, frame_of_reference_uid=FRAME)
    values.update(changes)
    return DoseGrid(**values)


def write(tmp_path: Path, name: str = "RD.test.dcm", grid: DoseGrid | None = None, **kw) -> Path:
    kw.setdefault("dose_grid_scaling", SCALING)
    return write_dose(
        grid if grid is not None else linear_grid(),
        tmp_path / name,
        HEADER,
        sop_instance_uid=make_uid("dose", name),
        series_instance_uid=make_uid("dose-series"),
        **kw,
    )


def voxel_positions(ds: Dataset) -> np.ndarray:
    """(frames, rows, cols, 3) patient positions of the stored voxels by the DICOM formula."""
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
    if offsets[0] != 0:  # absolute form: offsets are z, valid only for 1\0\0\0\1\0
        offsets = offsets - ipp[2]
    f, r, c = np.meshgrid(offsets, np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
    return ipp + c[..., None] * dc * row + r[..., None] * dr * col + f[..., None] * normal


def lookup(grid: DoseGrid, point: np.ndarray) -> float:
    """Dose of the canonical grid at a voxel centre given in patient coordinates."""
    i = int(np.flatnonzero(np.isclose(grid.x_mm, point[0], atol=1e-6))[0])
    j = int(np.flatnonzero(np.isclose(grid.y_mm, point[1], atol=1e-6))[0])
    k = int(np.flatnonzero(np.isclose(grid.z_mm, point[2], atol=1e-6))[0])
    return float(grid.dose_gy[k, j, i])


def hand_built(
    path: Path,
    iop,
    ipp,
    spacing,
    offsets,
    pixels: np.ndarray,
    scaling: float = 0.5,
    big_endian: bool = False,
    **attrs,
) -> Path:
    """An RT Dose built attribute by attribute (not through the writer)."""
    ds = Dataset()
    ds.SOPClassUID = RT_DOSE
    ds.SOPInstanceUID = make_uid("hand", path.name)
    ds.Modality = "RTDOSE"
    ds.PatientID = "HAND"
    ds.Manufacturer = "Hand"
    ds.FrameOfReferenceUID = FRAME
    ds.ImageOrientationPatient = list(iop)
    ds.ImagePositionPatient = list(ipp)
    ds.PixelSpacing = list(spacing)
    ds.GridFrameOffsetVector = list(offsets)
    ds.FrameIncrementPointer = 0x3004000C
    ds.NumberOfFrames, ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    order = ">" if big_endian else "<"
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(order)).tobytes()
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = scaling
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_DOSE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def error_text(path: Path) -> str:
    with pytest.raises(DicomError) as info:
        read_dose(str(path))
    return str(info.value)


# --------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_hand_built_orientation_maps_every_voxel_to_its_patient_position(tmp_path, name):
    iop = ORIENTATIONS[name]
    rng = np.random.default_rng(len(name))
    pixels = rng.integers(0, 60000, size=(3, 4, 5)).astype(np.uint32)
    offsets = [0.0, -2.0, -7.0]  # descending and uneven along the normal
    path = hand_built(
        tmp_path / f"{name}.dcm", iop, [12.5, -40.0, 33.0], [3.0, 2.5], offsets, pixels
    )
    grid = read_dose(str(path))
    ds = pydicom.dcmread(path)
    positions = voxel_positions(ds)
    for index in np.ndindex(pixels.shape):
        assert lookup(grid, positions[index]) == pixels[index] * 0.5
    assert np.all(np.diff(grid.x_mm) > 0) and np.all(np.diff(grid.y_mm) > 0)
    assert np.all(np.diff(grid.z_mm) > 0)
    normal_z = EXPECTED_NORMAL_Z[name]
    assert grid.z_mm.tolist() == sorted(33.0 + normal_z * np.array(offsets))
    assert grid.source_orientation == tuple(float(v) for v in iop)


@pytest.mark.parametrize("name", list(ORIENTATIONS))
@pytest.mark.parametrize("descending", [False, True])
def test_written_orientation_describes_the_same_physical_dose(tmp_path, name, descending):
    path = write(tmp_path, orientation=ORIENTATIONS[name], descending=descending)
    ds = pydicom.dcmread(path)
    positions = voxel_positions(ds)
    stored = ds.pixel_array * float(ds.DoseGridScaling)
    expected = linear(positions[..., 0], positions[..., 1], positions[..., 2])
    assert np.array_equal(stored, expected)  # the file itself, by the DICOM formula
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert offsets[0] == 0.0
    assert (np.diff(offsets) < 0).all() == descending
    grid = read_dose(str(path))
    assert grid.x_mm.tolist() == X.tolist()
    assert grid.y_mm.tolist() == Y.tolist()
    assert grid.z_mm.tolist() == Z.tolist()
    # known points: dose = A x + B y + C z + D
    assert grid.dose_gy[0, 0, 0] == linear(-10.0, 20.0, -6.0) == 19.25
    assert grid.dose_gy[3, 2, 4] == linear(0.0, 26.0, 4.5) == 27.0625
    assert grid.dose_gy[2, 3, 1] == linear(-7.5, 29.0, 0.0) == 23.5


def test_pixel_spacing_is_row_then_column_for_non_square_pixels(tmp_path):
    ds = pydicom.dcmread(write(tmp_path))
    assert [float(v) for v in ds.PixelSpacing] == [3.0, 2.5]  # rows step along y, columns x
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (4, 5, 4)
    assert [float(v) for v in ds.ImagePositionPatient] == [-10.0, 20.0, -6.0]
    decubitus = pydicom.dcmread(write(tmp_path, "RD.hfdl.dcm", orientation=ORIENTATIONS["HFDL"]))
    assert [float(v) for v in decubitus.PixelSpacing] == [2.5, 3.0]  # rows along x now
    assert (decubitus.Rows, decubitus.Columns) == (5, 4)
    assert [float(v) for v in decubitus.ImagePositionPatient] == [-10.0, 29.0, -6.0]


def test_oblique_orientation_refused(tmp_path):
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    pixels = np.ones((2, 2, 2), np.uint16)
    path = hand_built(
        tmp_path / "oblique.dcm", [c, s, 0, -s, c, 0], [0, 0, 0], [1, 1], [0, 1], pixels
    )
    text = error_text(path)
    assert "oblique.dcm" in text and "ImageOrientationPatient (0020,0037)" in text
    assert "0.984808\\0.173648\\0\\-0.173648\\0.984808\\0 is oblique" in text


def test_sagittal_dose_planes_refused(tmp_path):
    pixels = np.ones((2, 2, 2), np.uint16)
    path = hand_built(tmp_path / "sag.dcm", [0, 1, 0, 0, 0, -1], [0, 0, 0], [1, 1], [0, 1], pixels)
    assert "0\\1\\0\\0\\0\\-1 is oblique or not axial" in error_text(path)


# --------------------------------------------------------------------------------------------
# GridFrameOffsetVector
# --------------------------------------------------------------------------------------------


def test_absolute_offsets_accepted_for_hfs(tmp_path):
    path = write(tmp_path, offsets="absolute")
    ds = pydicom.dcmread(path)
    assert [float(v) for v in ds.GridFrameOffsetVector] == Z.tolist()
    grid = read_dose(str(path))
    assert grid.z_mm.tolist() == Z.tolist()
    assert grid.dose_gy[3, 0, 0] == linear(-10.0, 20.0, 4.5)


def test_absolute_offsets_descending_for_hfs(tmp_path):
    pixels = np.arange(3 * 2 * 2, dtype=np.uint16).reshape(3, 2, 2)
    path = hand_built(
        tmp_path / "abs.dcm", ORIENTATIONS["HFS"], [0, 0, 50], [1, 1], [50, 47, 41], pixels
    )
    grid = read_dose(str(path))
    assert grid.z_mm.tolist() == [41.0, 47.0, 50.0]
    assert grid.dose_gy[:, 0, 0].tolist() == [4.0, 2.0, 0.0]  # frame 2, 1, 0 × 0.5 Gy


@pytest.mark.parametrize("name", ["FFS", "HFP", "HFDL"])
def test_absolute_offsets_refused_for_other_orientations(tmp_path, name):
    path = write(tmp_path, orientation=ORIENTATIONS[name], offsets="absolute")
    text = error_text(path)
    assert "RD.test.dcm" in text and "GridFrameOffsetVector (3004,000C)" in text
    assert "allowed only with ImageOrientationPatient 1\\0\\0\\0\\1\\0" in text


def test_absolute_offsets_refused_for_oblique(tmp_path):
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
    pixels = np.ones((2, 2, 2), np.uint16)
    path = hand_built(tmp_path / "obl.dcm", [c, s, 0, -s, c, 0], [0, 0, 9], [1, 1], [9, 10], pixels)
    assert "is oblique" in error_text(path)


def test_offsets_neither_relative_nor_absolute(tmp_path):
    pixels = np.ones((2, 2, 2), np.uint16)
    path = hand_built(tmp_path / "bad.dcm", ORIENTATIONS["HFS"], [0, 0, 9], [1, 1], [3, 6], pixels)
    text = error_text(path)
    assert "bad.dcm" in text and "GridFrameOffsetVector (3004,000C)" in text
    assert "first offset 3 is neither 0 (relative) nor IPP z 9 (absolute)" in text


def test_uneven_offsets_kept_exactly(tmp_path):
    pixels = np.ones((4, 2, 2), np.uint16)
    offsets = [0.0, 2.5, 3.0, 10.25]
    path = hand_built(
        tmp_path / "uneven.dcm", ORIENTATIONS["HFS"], [0, 0, -1.5], [1, 1], offsets, pixels
    )
    grid = read_dose(str(path))
    assert grid.z_mm.tolist() == [-1.5, 1.0, 1.5, 8.75]
    assert grid.spacing_mm == (1.0, 1.0, None)


def test_offset_count_must_match_frames(tmp_path):
    pixels = np.ones((3, 2, 2), np.uint16)
    path = hand_built(
        tmp_path / "count.dcm", ORIENTATIONS["HFS"], [0, 0, 0], [1, 1], [0, 1], pixels
    )
    text = error_text(path)
    assert "2 offsets for NumberOfFrames 3" in text and "GridFrameOffsetVector (3004,000C)" in text


def test_frame_increment_pointer_must_point_to_offsets(tmp_path):
    pixels = np.ones((2, 2, 2), np.uint16)
    path = hand_built(
        tmp_path / "fip.dcm",
        ORIENTATIONS["HFS"],
        [0, 0, 0],
        [1, 1],
        [0, 1],
        pixels,
        FrameIncrementPointer=0x00180050,
    )
    text = error_text(path)
    assert "FrameIncrementPointer (0018,0050) must point to GridFrameOffsetVector" in text
    assert "FrameIncrementPointer (0028,0009)" in text


# --------------------------------------------------------------------------------------------
# Values, units and types
# --------------------------------------------------------------------------------------------


def test_relative_units_refused(tmp_path):
    text = error_text(write(tmp_path, units="RELATIVE"))
    assert "RD.test.dcm" in text and "DoseUnits (3004,0002)" in text and "'RELATIVE'" in text


def test_missing_dose_grid_scaling(tmp_path):
    path = write(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.DoseGridScaling
    ds.save_as(path)
    text = error_text(path)
    assert "RD.test.dcm" in text and "DoseGridScaling (3004,000E)" in text
    assert "required attribute missing" in text


def test_truncated_pixel_data(tmp_path):
    path = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    expected = 5 * 4 * 4 * 4
    text = error_text(path)
    assert f"truncated pixel data (got {expected - 40} of {expected} bytes)" in text
    assert "PixelData (7FE0,0010)" in text and "RD.test.dcm" in text


def test_unsigned_16_bit_values_above_32767(tmp_path):
    grid = linear_grid()
    path = write(tmp_path, grid=grid, bits=16, dose_grid_scaling=2.0**-11)
    ds = pydicom.dcmread(path)
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
    assert int(ds.pixel_array.max()) == 27.8125 * 2048 == 56960  # read as signed: negative
    read = read_dose(str(path))
    assert read.max_gy == linear(0.0, 29.0, 4.5) == 27.8125
    assert np.array_equal(read.dose_gy, grid.dose_gy)


def test_negative_dose_refused(tmp_path):
    grid = linear_grid(dose_gy=linear_grid().dose_gy - 20.0)
    path = write(tmp_path, grid=grid)
    assert pydicom.dcmread(path).PixelRepresentation == 1
    text = error_text(path)
    assert "negative dose -0.75 Gy (stored value -768)" in text and "PixelData" in text


def test_dose_type_error_refused_and_effective_kept(tmp_path):
    text = error_text(write(tmp_path, dose_type="ERROR"))
    assert "DoseType (3004,0004)" in text and "'ERROR'" in text
    grid = read_dose(str(write(tmp_path, "RD.rbe.dcm", dose_type="EFFECTIVE")))
    assert grid.dose_type == "EFFECTIVE"


@pytest.mark.parametrize(
    "summation",
    ["PLAN", "FRACTION", "BEAM", "FRACTION_SESSION", "BEAM_SESSION", "MULTI_PLAN", "CONTROL_POINT"],
)
def test_summation_type_kept(tmp_path, summation):
    assert read_dose(str(write(tmp_path, summation_type=summation))).summation_type == summation


def test_references_and_identity(tmp_path):
    path = write(
        tmp_path,
        referenced_plan_uid="1.2.3.4",
        referenced_beam_number=7,
        summation_type="BEAM",
        patient_position="FFS",
    )
    grid = read_dose(str(path))
    assert grid.referenced_plan_uids == ("1.2.3.4",)
    assert grid.referenced_beam_numbers == (7,)
    assert grid.patient_position == "FFS"  # reported only: geometry comes from IOP (HFS here)
    assert grid.dose_gy[0, 0, 0] == 19.25
    assert (grid.patient_id, grid.manufacturer) == ("RTQA-DOSE", "rtqa")
    assert grid.frame_of_reference_uid == FRAME
    assert grid.paths == (str(path),)


# --------------------------------------------------------------------------------------------
# Transfer syntaxes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 32])
def test_rle_round_trip(tmp_path, bits):
    scaling = SCALING * (4 if bits == 16 else 1)
    path = write(tmp_path, bits=bits, compress="rle", dose_grid_scaling=scaling)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(read_dose(str(path)).dose_gy, linear_grid().dose_gy)


def test_deflate_round_trip(tmp_path):
    path = write(tmp_path, deflate=True, orientation=ORIENTATIONS["FFP"])
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(read_dose(str(path)).dose_gy, linear_grid().dose_gy)


def test_transfer_syntax_without_decoder(tmp_path):
    path = write(tmp_path, compress="rle")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.save_as(path)
    text = error_text(path)
    assert "no decoder installed for transfer syntax MPEG-4 AVC/H.264 High Profile" in text
    assert str(MPEG4HP41) in text and "RD.test.dcm" in text


def test_big_endian_dose_read_through_pixel_array(tmp_path):
    pixels = np.array([[[1, 40000], [300, 65535]]], dtype=np.uint16)
    path = hand_built(
        tmp_path / "be.dcm", ORIENTATIONS["HFS"], [0, 0, 0], [1, 1], [0], pixels, big_endian=True
    )
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    grid = read_dose(str(path))
    assert grid.dose_gy[0].tolist() == [[0.5, 20000.0], [150.0, 32767.5]]


# --------------------------------------------------------------------------------------------
# Malformed values: a clear error naming file and tag, never an internal error
# --------------------------------------------------------------------------------------------


def set_raw(ds: Dataset, tag: int, vr: str, text: str) -> None:
    """Store ``text`` as the element's bytes, as a non-conformant writer would (no validation)."""
    data = text.encode() + (b" " if len(text) % 2 else b"")
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(data), data, 0, False, True)


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
@pytest.mark.parametrize(
    ("tag", "vr", "text", "expected"),
    [
        (
            0x00280008,
            "IS",
            "x",
            "NumberOfFrames 'x' is not an integer [NumberOfFrames (0028,0008)]",
        ),
        (
            0x3004000C,
            "DS",
            "0\\abc\\2\\3\\4",
            "GridFrameOffsetVector holds 'abc', not a number [GridFrameOffsetVector (3004,000C)]",
        ),
    ],
)
def test_a_value_that_is_not_a_number_is_named(tmp_path, tag, vr, text, expected):
    path = write(tmp_path)
    ds = pydicom.dcmread(path)
    set_raw(ds, tag, vr, text)
    ds.save_as(path)
    message = error_text(path)
    assert message.endswith(expected) and "RD.test.dcm" in message


def test_empty_pixel_data_is_named(tmp_path):
    path = write(tmp_path)
    ds = pydicom.dcmread(path)
    ds.PixelData = None
    ds.save_as(path)
    expected = 5 * 4 * 4 * 4  # columns x rows x frames x 4 bytes
    assert error_text(path).endswith(
        f"empty pixel data (PixelData holds no bytes; {expected} expected) [PixelData (7FE0,0010)]"
    )
