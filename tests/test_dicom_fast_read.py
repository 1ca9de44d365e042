"""The readers' fast paths against their general paths.

RT Dose: plain little-endian pixel data is viewed directly (from memory, or memory-mapped from the
file when the value was left there); every other encoding goes through pydicom's ``pixel_array``.
Both must give the same grid, the same notes and the same errors. RT Structure Set: rings are
cleaned all at once per ROI; each ring must come out as the one-ring-at-a-time definition says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian
from shapely.geometry import Polygon
from test_dicom_dose import ORIENTATIONS, hand_built, linear_grid, write

import rtqa.dicom.dose as dose_module
from rtqa.dicom.dose import _plain_layout, read_dose
from rtqa.dicom.structures import _clean_rings, _distinct_points, _even_odd_fill
from rtqa.errors import DicomError

# --------------------------------------------------------------------------------------------
# RT Dose
# --------------------------------------------------------------------------------------------


def general(path: Path, monkeypatch):
    """read_dose with the direct view switched off: pydicom decodes every file."""
    with monkeypatch.context() as patch:
        patch.setattr(dose_module, "_plain_layout", lambda ds, path: None)
        return read_dose(str(path))


def same_grid(a, b) -> bool:
    return (
        a.dose_gy.dtype == b.dose_gy.dtype
        and np.array_equal(a.dose_gy, b.dose_gy)
        and all(np.array_equal(u, v) for u, v in ((a.x_mm, b.x_mm), (a.y_mm, b.y_mm)))
        and np.array_equal(a.z_mm, b.z_mm)
        and a.notes == b.notes
    )


def source_kind(path: Path, defer: int | None) -> type | None:
    """What the direct view reads for this file: bytes (in memory), int (file offset), None."""
    ds = pydicom.dcmread(path, defer_size=defer)
    layout = _plain_layout(ds, str(path))
    return None if layout is None else type(layout[1])


# Stored values chosen where a wrong dtype shows: above 2**15 (uint16 read as int16 turns
# negative), above 2**31 (uint32 as int32), negative (int as uint), and byte-swapped patterns.
VALUES = {
    "u2": [0, 1, 255, 256, 32767, 32768, 40000, 65535],
    "i2": [0, 1, 255, 256, 1000, 32767, 12345, 258],
    "u4": [0, 1, 65535, 65536, 2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1],
    "i4": [0, 1, 65535, 65536, 2**31 - 1, 70000, 16777216, 258],
}


@pytest.mark.parametrize("dtype", list(VALUES))
@pytest.mark.parametrize("defer", [False, True])
def test_direct_pixels_equal_closed_form_and_pixel_array(tmp_path, monkeypatch, dtype, defer):
    if defer:  # every pixel value left in the file: the memory-mapped view
        monkeypatch.setattr(dose_module, "DEFER_BYTES", 16)
    values = np.array(VALUES[dtype], dtype=np.int64)
    pixels = np.stack([values.reshape(2, 4), values[::-1].reshape(2, 4)]).astype(dtype)
    path = hand_built(
        tmp_path / "plain.dcm", ORIENTATIONS["FFP"], [5, -5, 10], [2, 3], [0, 4], pixels
    )
    assert source_kind(path, 16 if defer else None) is (int if defer else bytes)
    grid = read_dose(str(path))
    # FFP: rows run to -y, columns to +x, frames to -z: canonical order flips rows and frames
    expected = pixels.astype(np.float64)[::-1, ::-1, :] * 0.5
    assert np.array_equal(grid.dose_gy, expected)
    assert same_grid(grid, general(path, monkeypatch))


@pytest.mark.parametrize("name", ["HFS", "FFS", "HFDL", "FFDR"])
@pytest.mark.parametrize("bits", [16, 32])
def test_direct_and_decoded_reads_agree_for_every_encoding(tmp_path, monkeypatch, name, bits):
    """The same grid written plain (direct view, in memory and memory-mapped), implicit VR,
    deflated, RLE and big endian (pydicom decodes the last three) reads identically."""
    kw = dict(orientation=ORIENTATIONS[name], bits=bits, descending=name.startswith("F"))
    kw["dose_grid_scaling"] = 2.0**-8
    plain = write(tmp_path, "RD.plain.dcm", **kw)
    reference = general(plain, monkeypatch)
    assert np.array_equal(reference.dose_gy, linear_grid().dose_gy)
    assert source_kind(plain, None) is bytes
    assert same_grid(read_dose(str(plain)), reference)
    implicit = tmp_path / "RD.implicit.dcm"
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    pydicom.dcmwrite(implicit, ds, implicit_vr=True, little_endian=True)
    big = tmp_path / "RD.big.dcm"
    ds = pydicom.dcmread(plain)
    stored = ds.pixel_array
    ds.PixelData = stored.astype(stored.dtype.newbyteorder(">")).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    pydicom.dcmwrite(big, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    deflated = write(tmp_path, "RD.deflated.dcm", deflate=True, **kw)
    rle = write(tmp_path, "RD.rle.dcm", compress="rle", **kw)
    assert source_kind(big, None) is None and source_kind(rle, None) is None
    for defer in (None, 16):
        monkeypatch.setattr(dose_module, "DEFER_BYTES", defer)
        for path in (plain, implicit, deflated, big, rle):
            grid = read_dose(str(path))
            assert np.array_equal(grid.dose_gy, reference.dose_gy), path.name
            assert np.array_equal(grid.z_mm, reference.z_mm), path.name
    assert source_kind(plain, 16) is int and source_kind(implicit, 16) is int


def test_large_grid_is_memory_mapped_with_the_default_threshold(tmp_path, monkeypatch):
    grid = linear_grid()
    tiled = np.tile(grid.dose_gy, (1, 80, 80))  # 4 x 320 x 400 x 4 bytes > DEFER_BYTES
    big = linear_grid(
        dose_gy=tiled, x_mm=-10.0 + 2.5 * np.arange(400), y_mm=20.0 + 3.0 * np.arange(320)
    )
    path = write(tmp_path, grid=big)
    assert tiled.size * 4 > dose_module.DEFER_BYTES
    assert source_kind(path, dose_module.DEFER_BYTES) is int
    assert same_grid(read_dose(str(path)), general(path, monkeypatch))
    assert np.array_equal(read_dose(str(path)).dose_gy, tiled)


@pytest.mark.parametrize("cut", [1, 40, 2])
@pytest.mark.parametrize("defer", [None, 16])
def test_short_and_long_pixel_data_give_the_same_errors(tmp_path, monkeypatch, cut, defer):
    monkeypatch.setattr(dose_module, "DEFER_BYTES", defer)
    path = write(tmp_path)
    expected = 5 * 4 * 4 * 4
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DicomError) as info:
        read_dose(str(path))
    assert f"truncated pixel data (got {expected - cut} of {expected} bytes)" in str(info.value)
    longer = write(tmp_path, "RD.long.dcm")
    ds = pydicom.dcmread(longer)
    ds.PixelData += b"\0" * 4
    ds.save_as(longer)
    with pytest.raises(DicomError) as info:
        read_dose(str(longer))
    assert f"pixel data length mismatch (got {expected + 4} bytes, expected {expected}" in str(
        info.value
    )


@pytest.mark.parametrize("defer", [None, 16])
def test_layouts_left_to_pydicom_are_decoded_as_before(tmp_path, monkeypatch, defer):
    """12 of 16 bits stored (pydicom sign-extends), MONOCHROME1 and 8 bits are never viewed
    directly; with the value left in the file they are read again in full for pydicom."""
    monkeypatch.setattr(dose_module, "DEFER_BYTES", defer)
    pixels = np.array([[[0x0FFF, 0x0123, 5, 0x07FF]]], dtype=np.uint16)
    path = hand_built(tmp_path / "bs.dcm", ORIENTATIONS["HFS"], [0, 0, 0], [1, 1], [0], pixels)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
    ds.save_as(path)
    assert source_kind(path, defer) is None
    with pytest.raises(DicomError, match=r"negative dose -0\.5 Gy \(stored value -1\)"):
        read_dose(str(path))
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME1"
    ds.save_as(path)
    assert source_kind(path, defer) is None
    assert read_dose(str(path)).dose_gy.ravel().tolist() == [2047.5, 145.5, 2.5, 1023.5]
    small = np.array([[[3, 250, 7]]], dtype=np.uint8)
    path = hand_built(tmp_path / "u8.dcm", ORIENTATIONS["HFS"], [0, 0, 0], [1, 1], [0], small)
    assert source_kind(path, defer) is None
    assert read_dose(str(path)).dose_gy.ravel().tolist() == [1.5, 125.0, 3.5]


def test_negative_stored_value_reported_the_same_by_both_paths(tmp_path, monkeypatch):
    pixels = np.array([[[4, -6], [3, 2]]], dtype=np.int32)
    path = hand_built(tmp_path / "neg.dcm", ORIENTATIONS["HFS"], [0, 0, 0], [1, 1], [0], pixels)
    assert source_kind(path, None) is bytes
    texts = []
    for read in (lambda: read_dose(str(path)), lambda: general(path, monkeypatch)):
        with pytest.raises(DicomError) as info:
            read()
        texts.append(str(info.value))
    assert texts[0] == texts[1] and "negative dose -3 Gy (stored value -6)" in texts[0]


# --------------------------------------------------------------------------------------------
# RT Structure Set: rings cleaned all at once
# --------------------------------------------------------------------------------------------


def one_ring(xy: np.ndarray) -> tuple[np.ndarray, int, int, bool | None, float | None]:
    """The per-ring definition: consecutive duplicates, then a repeated closing point removed;
    distinct points counted up to 3; polygon validity and even-odd area for 3 or more."""
    ring = [xy[0]]
    for point in xy[1:]:
        if not np.array_equal(point, ring[-1]):
            ring.append(point)
    if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
        ring.pop()
    ring = np.array(ring)
    distinct = min(len({tuple(p) for p in ring.tolist()}), 3)
    if distinct < 3:
        return ring, len(xy) - len(ring), distinct, None, None
    shape = Polygon(ring)
    area = shape.area if shape.is_valid else _even_odd_fill(shape).area
    return ring, len(xy) - len(ring), distinct, bool(shape.is_valid), area


def test_rings_cleaned_at_once_match_the_per_ring_definition():
    rng = np.random.default_rng(3)
    square = np.array([[0.0, 0], [4, 0], [4, 4], [0, 4]])
    rings = [
        square,
        np.vstack([square, square[:1]]),  # closing point repeated
        np.repeat(square, [1, 3, 1, 2], axis=0),  # consecutive duplicates
        np.array([[0.0, 0], [1, 0], [0, 0]]),  # a, b, a: 2 distinct
        np.array([[0.0, 0], [1, 0], [0, 0], [1, 0]]),  # a, b, a, b: 2 distinct
        np.array([[0.0, 0], [1, 0], [0, 0], [0, 1]]),  # a, b, a, c: 3 distinct, not first three
        np.array([[2.0, 2]] * 3),  # one point
        np.array([[2.0, 2]]),
        np.array([[0.0, 0], [1, 1], [2, 2], [3, 3]]),  # collinear: zero area
        np.array([[0.0, 0], [2, 2], [2, 0], [0, 2]]),  # bow tie: invalid
        np.array([[0.0, 0], [-0.0, 0], [1, 0], [1, 1]]),  # -0 equals 0
        square[[0, 0, 1, 1, 2, 3, 0, 0]],  # duplicates and a closing run
    ]
    for _ in range(40):
        n = int(rng.integers(1, 12))
        points = rng.integers(0, 3, size=(n, 2)).astype(float)  # many repeats and crossings
        rings.append(points)
    cleaned = _clean_rings(rings)
    assert len(cleaned) == len(rings)
    for xy, got in zip(rings, cleaned, strict=True):
        ring, removed, distinct, valid, area = one_ring(xy)
        assert got.ring.tolist() == ring.tolist()
        assert (got.removed, got.distinct) == (removed, distinct)
        assert got.distinct == _distinct_points(got.ring)
        if distinct < 3:
            assert got.shape is None
        else:
            assert got.shape.equals_exact(Polygon(ring), 0)
            assert (got.valid, got.area_mm2) == (valid, area)
