"""Read RT Dose files into canonical :class:`~rtqa.model.DoseGrid` objects (Gy, mm, cc).

Everything the standard promises about the grid is checked here, and each failure is a
:class:`~rtqa.errors.DicomError` naming the file, the attribute (keyword and tag) and the value:

* dose = stored value × DoseGridScaling (3004,000E), in float64; the stored values come from
  pydicom's ``pixel_array`` (PixelRepresentation, byte order and RLE/deflate honoured) after the
  byte count and the encapsulation have been checked against the transfer syntax (a compressed
  syntax with plain values, a native syntax with encapsulated fragments, or RLE segments that
  decode to more than Rows × Columns bytes plus one padding byte, is refused), except
  in the common plain case (native little-endian transfer syntax, one sample of 16 or 32 bits,
  all bits stored, MONOCHROME2), where they are the pixel bytes themselves seen as integers:
  memory-mapped from the file for a large grid, never copied;
  negative doses and DoseType ERROR are refused, DoseUnits RELATIVE is refused (no absolute dose);
* geometry comes from ImageOrientationPatient (IOP) alone (PatientPosition is only reported): the
  eight axis-aligned orientations are mapped to canonical order by exact transposes and flips;
  oblique grids are refused. Voxel (row r, column c) of frame f lies at
  ``IPP + c·PixelSpacing[1]·rowcos + r·PixelSpacing[0]·colcos + offset_f·normal`` with
  ``normal = rowcos × colcos`` (PS3.3 C.7.6.2.1.1, C.8.8.3.2);
* GridFrameOffsetVector (3004,000C) in the relative form (first value 0, offsets along the
  normal) or the absolute form (first value = IPP z, allowed only with IOP 1\\0\\0\\0\\1\\0);
  descending and uneven offsets are kept exactly.

:func:`combine_doses` turns the doses of one plan into the one dose to evaluate (PLAN as it is,
BEAM doses summed, session doses scaled by the fractions planned) and says what it did.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from rtqa.dicom.common import (
    MAX_COORDINATE_MM,
    RT_DOSE,
    as_floats,
    as_int,
    garbled_sequence,
    lenient_value,
    optional_float,
    optional_str,
    read_dataset,
    require,
    tag_name,
    whole_number,
)
from rtqa.dicom.converters import converter_notes, converter_of
from rtqa.errors import DicomError
from rtqa.model import DoseGrid, Level, Note, Plan, TpsDvh

AXIS_TOLERANCE = 1e-4  # direction cosines within this of 0/±1 count as axis-aligned
ABSOLUTE_OFFSET_TOLERANCE_MM = 0.01  # absolute GridFrameOffsetVector[0] vs IPP z
GRID_FRAME_OFFSET_VECTOR_TAG = 0x3004000C
HFS_AXES = ((0, 1), (1, 1), (2, 1))
DOSE_TYPES = ("PHYSICAL", "EFFECTIVE")
SESSION_TYPES = ("FRACTION_SESSION", "BEAM_SESSION")
PIXEL_DATA_TAG = 0x7FE00010
ITEM_TAG_BYTES = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian: encapsulated pixel data
DEFER_BYTES = 1 << 20  # values longer than this are located when the file is read, not loaded
# Transfer syntaxes whose PixelData is the stored values as little-endian integers; pixel data
# left in the file (deferred) is read directly only where file offsets are those of the file
# (not inside a deflated stream).
PLAIN_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
PLAIN_FILE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

Axes = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def standard_axes(orientation: Sequence[float]) -> Axes | None:
    """((axis, sign) of the row cosine, of the column cosine, of the normal row × column).

    Axis 0, 1, 2 is patient x, y, z; sign is +1 or -1. None when ImageOrientationPatient is not
    axis-aligned (within 1e-4) or the two cosines are not orthogonal unit vectors.
    """
    try:
        values = np.asarray([float(v) for v in orientation], dtype=float)
    except (TypeError, ValueError):
        return None
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        return None
    found = []
    for cosine in (values[:3], values[3:]):
        axis = int(np.argmax(np.abs(cosine)))
        unit = np.zeros(3)
        unit[axis] = np.sign(cosine[axis])
        if np.max(np.abs(cosine - unit)) > AXIS_TOLERANCE:
            return None
        found.append((axis, int(unit[axis])))
    if found[0][0] == found[1][0]:
        return None
    row = np.eye(3)[found[0][0]] * found[0][1]
    col = np.eye(3)[found[1][0]] * found[1][1]
    normal = np.cross(row, col)
    axis = int(np.argmax(np.abs(normal)))
    return found[0], found[1], (axis, int(np.sign(normal[axis])))


# --------------------------------------------------------------------------------------------
# read_dose
# --------------------------------------------------------------------------------------------


def read_dose(path: str, *, roi_volumes_cc: Mapping[int, float] | None = None) -> DoseGrid:
    """Read an RT Dose file into a canonical :class:`DoseGrid` (Gy).

    ``roi_volumes_cc`` (ROI number → cc) lets TPS DVHs written in PERCENT or PER_U volume units
    be converted to cc; without it such DVHs are left out with a note.
    """
    path = str(path)
    ds, notes = read_dataset(path, defer_size=DEFER_BYTES if _plain_file(path) else None)
    if _deferred_pixels(ds) is not None and _plain_layout(ds, path) is None:
        ds, notes = read_dataset(path)  # pixel data for pydicom's decoders: read it all
    try:
        return _dose_grid(ds, path, notes, roi_volumes_cc or {})
    except (AttributeError, TypeError) as exc:  # items expected, bytes or text found
        why = garbled_sequence(ds)
        if why is None:
            raise
        raise DicomError(why, path) from exc


def _dose_grid(
    ds: Dataset, path: str, notes: list[Note], roi_volumes_cc: Mapping[int, float]
) -> DoseGrid:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != RT_DOSE:
        raise DicomError(f"not an RT Dose (SOP Class UID {sop_class!r})", path, "SOPClassUID")
    notes += converter_notes(ds, path, "dose")
    if "PixelData" not in ds:
        raise DicomError(
            "RT Dose without a dose grid (DVH only): no dose to evaluate",
            path,
            tag_name("PixelData"),
        )
    units = _check_units(ds, path)
    dose_type = _check_dose_type(ds, path)
    summation = str(require(ds, "DoseSummationType", path)).strip().upper()
    scaling = _scaling(ds, path)
    axes = _orientation(ds, path)
    ipp = _floats(ds, "ImagePositionPatient", path, 3)
    spacing = _floats(ds, "PixelSpacing", path, 2)
    if min(spacing) <= 0:
        raise DicomError(f"PixelSpacing {spacing} must be positive", path, tag_name("PixelSpacing"))
    rows, cols, frames = _dimensions(ds, path)
    positions = _frame_positions(ds, path, axes, ipp, frames)
    stored = _pixels(ds, path, rows, cols, frames, notes)
    del ds["PixelData"]  # the encoded bytes are no longer needed: free them before the dose
    lowest = stored.min() if stored.size and stored.dtype.kind != "u" else 0
    if lowest < 0:  # scaling > 0, so the lowest stored value gives the lowest dose
        raise DicomError(
            f"negative dose {float(lowest) * scaling:.6g} Gy (stored value {int(lowest)})",
            path,
            tag_name("PixelData"),
        )
    dose_gy, x, y, z = _canonical(stored, scaling, axes, ipp, spacing, positions)
    del stored
    dose_gy.flags.writeable = False  # as read: its maximum is kept (DoseGrid.max_gy)
    _check_positions((x, y, z), ipp, path)
    tps_dvhs, dvh_notes = _read_dvhs(ds, path, roi_volumes_cc)
    plan_uids, beam_numbers, fraction_groups = _references(ds)
    orientation = tuple(float(v) for v in ds.ImageOrientationPatient)
    return DoseGrid(
        dose_gy=dose_gy,
        x_mm=x,
        y_mm=y,
        z_mm=z,
        frame_of_reference_uid=optional_str(ds, "FrameOfReferenceUID") or None,
        dose_type=dose_type,
        summation_type=summation,
        units=units,
        paths=(path,),
        sop_instance_uids=(str(require(ds, "SOPInstanceUID", path)),),
        referenced_plan_uids=plan_uids,
        referenced_beam_numbers=beam_numbers,
        referenced_fraction_groups=fraction_groups,
        source_orientation=orientation,
        patient_position=optional_str(ds, "PatientPosition") or None,
        heterogeneity_correction=tuple(
            str(v) for v in _as_list(ds.get("TissueHeterogeneityCorrection"))
        ),
        tps_dvhs=tuple(tps_dvhs),
        patient_id=optional_str(ds, "PatientID"),
        manufacturer=optional_str(ds, "Manufacturer"),
        converter=converter_of(ds),
        notes=tuple(notes + dvh_notes),
    )


def _as_list(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float):
        return [value]
    return list(value)


def _check_units(ds: Dataset, path: str) -> str:
    units = str(require(ds, "DoseUnits", path)).strip().upper()
    if units == "RELATIVE":
        raise DicomError(
            "DoseUnits 'RELATIVE': relative dose has no absolute value in Gy to evaluate",
            path,
            tag_name("DoseUnits"),
        )
    if units != "GY":
        raise DicomError(
            f"DoseUnits {units!r} not supported (GY expected)", path, tag_name("DoseUnits")
        )
    return units


def _check_dose_type(ds: Dataset, path: str) -> str:
    dose_type = str(require(ds, "DoseType", path)).strip().upper()
    if dose_type == "ERROR":
        raise DicomError(
            "DoseType 'ERROR': an uncertainty map, not a dose", path, tag_name("DoseType")
        )
    if dose_type not in DOSE_TYPES:
        raise DicomError(
            f"DoseType {dose_type!r} not supported (PHYSICAL or EFFECTIVE)",
            path,
            tag_name("DoseType"),
        )
    return dose_type


def _scaling(ds: Dataset, path: str) -> float:
    value = require(ds, "DoseGridScaling", path)
    try:
        scaling = float(value)
    except (TypeError, ValueError):
        scaling = float("nan")
    if not np.isfinite(scaling) or scaling <= 0:
        raise DicomError(
            f"DoseGridScaling {value!r} must be a positive number",
            path,
            tag_name("DoseGridScaling"),
        )
    return scaling


def _floats(ds: Dataset, keyword: str, path: str, count: int) -> list[float]:
    values = _as_list(require(ds, keyword, path))
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != count or not all(np.isfinite(numbers)):
        raise DicomError(f"{keyword} {values!r} must hold {count} numbers", path, tag_name(keyword))
    return numbers


def _orientation(ds: Dataset, path: str) -> Axes:
    values = _floats(ds, "ImageOrientationPatient", path, 6)
    axes = standard_axes(values)
    if axes is None or axes[2][0] != 2:
        shown = "\\".join(f"{v:g}" for v in values)
        raise DicomError(
            f"ImageOrientationPatient {shown} is oblique or not axial: only the eight "
            "axis-aligned patient orientations with axial dose planes are supported",
            path,
            tag_name("ImageOrientationPatient"),
        )
    return axes


def _dimensions(ds: Dataset, path: str) -> tuple[int, int, int]:
    rows = as_int(require(ds, "Rows", path), "Rows", path)
    cols = as_int(require(ds, "Columns", path), "Columns", path)
    frames = as_int(ds.get("NumberOfFrames") or 1, "NumberOfFrames", path)
    if min(rows, cols, frames) < 1:
        raise DicomError(
            f"empty dose grid (Rows {rows}, Columns {cols}, NumberOfFrames {frames})",
            path,
            tag_name("NumberOfFrames"),
        )
    return rows, cols, frames


def _frame_positions(
    ds: Dataset, path: str, axes: Axes, ipp: list[float], frames: int
) -> np.ndarray:
    """Patient coordinate of each frame along the normal's axis (z), in file order (mm)."""
    (_, _), (_, _), (normal_axis, normal_sign) = axes
    keyword = "GridFrameOffsetVector"
    where = tag_name(keyword)
    if frames > 1:
        pointer = ds.get("FrameIncrementPointer")
        pointers = [int(p) for p in _as_list(pointer)]
        if pointers != [GRID_FRAME_OFFSET_VECTOR_TAG]:
            shown = ", ".join(f"({p >> 16:04X},{p & 0xFFFF:04X})" for p in pointers) or "absent"
            raise DicomError(
                f"FrameIncrementPointer {shown} must point to {where}",
                path,
                tag_name("FrameIncrementPointer"),
            )
    if keyword not in ds or ds[keyword].VM == 0:
        if frames == 1:
            return np.array([ipp[normal_axis]])
        raise DicomError("required for a multi-frame dose", path, where)
    offsets = np.asarray(as_floats(ds[keyword].value, keyword, path), dtype=float)
    if offsets.size != frames:
        raise DicomError(f"{offsets.size} offsets for NumberOfFrames {frames}", path, where)
    if len(np.unique(offsets)) != offsets.size:
        raise DicomError(f"repeated offsets {offsets.tolist()}", path, where)
    if offsets[0] == 0:
        return ipp[normal_axis] + normal_sign * offsets
    first_z = ipp[2]
    if abs(offsets[0] - first_z) > ABSOLUTE_OFFSET_TOLERANCE_MM:
        raise DicomError(
            f"GridFrameOffsetVector inconsistent with ImagePositionPatient: first offset "
            f"{offsets[0]:g} is neither 0 (relative) nor IPP z {first_z:g} (absolute)",
            path,
            where,
        )
    if axes != HFS_AXES:
        shown = "\\".join(f"{float(v):g}" for v in ds.ImageOrientationPatient)
        raise DicomError(
            f"absolute offsets (first offset {offsets[0]:g} = IPP z) are allowed only with "
            f"ImageOrientationPatient 1\\0\\0\\0\\1\\0, not {shown}",
            path,
            where,
        )
    return offsets


def _pixels(
    ds: Dataset, path: str, rows: int, cols: int, frames: int, notes: list[Note]
) -> np.ndarray:
    """Stored values as (frames, rows, columns), after the byte count, encapsulation and
    decoder checks; what pydicom warns while decoding is added to ``notes``."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    bits = as_int(require(ds, "BitsAllocated", path), "BitsAllocated", path)
    if bits not in (8, 16, 32):
        raise DicomError(f"BitsAllocated {bits} not supported", path, tag_name("BitsAllocated"))
    plain = _plain_layout(ds, path)
    encapsulated = _leading_bytes(ds, path, plain) == ITEM_TAG_BYTES
    name = syntax.name if syntax is not None else "unknown transfer syntax"
    expected = rows * cols * frames * bits // 8
    if syntax is not None and syntax.is_compressed:
        if not encapsulated:
            size = len(ds.PixelData or b"")
            raise DicomError(
                f"pixel data does not match transfer syntax: {name} ({syntax}) is compressed "
                f"but PixelData is not encapsulated ({size} bytes; uncompressed "
                f"values would be {expected} bytes)",
                path,
                tag_name("TransferSyntaxUID"),
            )
        _require_decoder(syntax, path)
    else:
        got = plain[2] if plain is not None else len(ds.PixelData or b"")
        if got == 0:
            raise DicomError(
                f"empty pixel data (PixelData holds no bytes; {expected} expected)",
                path,
                tag_name("PixelData"),
            )
        if encapsulated and got != expected:
            raise DicomError(
                f"pixel data does not match transfer syntax: {name} is uncompressed but "
                "PixelData holds encapsulated (compressed) fragments",
                path,
                tag_name("TransferSyntaxUID"),
            )
        if got < expected:
            raise DicomError(
                f"truncated pixel data (got {got} of {expected} bytes)", path, tag_name("PixelData")
            )
        if got > expected + 1:
            raise DicomError(
                f"pixel data length mismatch (got {got} bytes, expected {expected} for "
                f"{frames} frames of {rows}x{cols} at {bits} bits)",
                path,
                tag_name("PixelData"),
            )
    if plain is not None:
        dtype, source, _ = plain
        count = rows * cols * frames
        if isinstance(source, bytes):
            return np.frombuffer(source, dtype=dtype, count=count).reshape(frames, rows, cols)
        with open(path, "rb") as handle:
            try:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a file system without memory mapping
                handle.seek(source)
                mapped, source = handle.read(count * dtype.itemsize), 0
        array = np.frombuffer(mapped, dtype=dtype, count=count, offset=source)
        return array.reshape(frames, rows, cols)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            array = ds.pixel_array
    except Exception as exc:
        raise DicomError(
            f"pixel data could not be decoded ({name}): {type(exc).__name__}: {exc}",
            path,
            tag_name("PixelData"),
        ) from exc
    for text in dict.fromkeys(str(w.message) for w in caught):  # one note per message
        longer = _RLE_LONGER.search(text)
        if longer and int(longer.group(1)) - int(longer.group(2)) > 1:
            raise DicomError(
                f"pixel data does not match Rows x Columns ({rows} x {cols}): each RLE segment "
                f"decodes to {longer.group(1)} bytes, not {longer.group(2)}; the header and the "
                "compressed pixels disagree (read as it stands the dose would be sheared)",
                path,
                tag_name("PixelData"),
            )
        notes.append(Note(Level.WARNING, f"pixel data: {text}", path, tag_name("PixelData")))
    if array.size != rows * cols * frames:
        raise DicomError(
            f"decoded {array.size} values, expected {rows * cols * frames}",
            path,
            tag_name("PixelData"),
        )
    return np.asarray(array).reshape(frames, rows, cols)


#: pydicom's warning for an RLE segment that decodes to more bytes than Rows x Columns (it keeps
#: the first Rows x Columns): one byte more is the even-length padding PS3.5 G.3 allows, more
#: means the header's Rows or Columns do not describe the compressed pixels.
_RLE_LONGER = re.compile(r"RLE segment contains non-conformant padding - (\d+) vs\. (\d+) bytes")


def _leading_bytes(ds: Dataset, path: str, plain: tuple | None) -> bytes:
    """The first four bytes of the PixelData value (read from the file when the value was left
    there); b"" when they cannot be had."""
    if plain is not None and isinstance(plain[1], int):
        try:
            with open(path, "rb") as handle:
                handle.seek(plain[1])
                return handle.read(4)
        except OSError:
            return b""
    value = ds.get_item(PIXEL_DATA_TAG).value
    return bytes(value[:4]) if isinstance(value, bytes) else b""


def _plain_file(path: str) -> bool:
    """Whether the file meta header names a transfer syntax whose values lie in the file as
    written (native little endian, not deflated): only then may pixel data be left in the file
    when the file is read, to be viewed there directly."""
    try:
        syntax = read_file_meta_info(path).get("TransferSyntaxUID")
    except Exception:  # no meta header, unreadable: the ordinary read reports it
        return False
    return syntax in PLAIN_FILE_SYNTAXES


def _deferred_pixels(ds: Dataset) -> RawDataElement | None:
    """The PixelData element when its value was left in the file (deferred read), else None."""
    raw = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.value is None:
        return raw
    return None


def _plain_layout(ds: Dataset, path: str) -> tuple[np.dtype, bytes | int, int] | None:
    """(dtype, source, byte count) when PixelData holds the stored values as plain
    little-endian integers that numpy can view directly: ``source`` is the value's bytes, or
    its offset in the file at ``path`` when the value was left there (the file then holds all
    of it). None in every other case, which pydicom's ``pixel_array`` decodes."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax not in PLAIN_SYNTAXES or PIXEL_DATA_TAG not in ds:
        return None
    try:
        bits = int(ds.get("BitsAllocated"))
        bits_stored = int(ds.get("BitsStored"))
        signed = int(ds.get("PixelRepresentation"))
        samples = int(ds.get("SamplesPerPixel"))
        photometric = str(ds.get("PhotometricInterpretation")).strip()
    except Exception:  # absent or malformed: pydicom's decoders report it
        return None
    if bits not in (16, 32) or bits_stored != bits or signed not in (0, 1):
        return None
    if samples != 1 or photometric != "MONOCHROME2":
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    raw = _deferred_pixels(ds)
    if raw is None:
        value = ds.get_item(PIXEL_DATA_TAG).value
        return (dtype, value, len(value)) if isinstance(value, bytes) else None
    if syntax not in PLAIN_FILE_SYNTAXES or not raw.is_little_endian:
        return None
    length, offset = raw.length, raw.value_tell
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if length == 0xFFFFFFFF or offset + length > size:
        return None  # undefined length or a file cut short: pydicom reads what there is
    return dtype, offset, length


def _require_decoder(syntax, path: str) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
        available = decoder.is_available
        missing = "; ".join(decoder.missing_dependencies) if not available else ""
    except NotImplementedError:
        available, missing = False, "pydicom has no decoder for it"
    if not available:
        raise DicomError(
            f"no decoder installed for transfer syntax {syntax.name} ({syntax})"
            + (f": {missing}" if missing else ""),
            path,
            tag_name("TransferSyntaxUID"),
        )


def _canonical(
    stored: np.ndarray,
    scaling: float,
    axes: Axes,
    ipp: list[float],
    spacing: list[float],
    positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dose[k, j, i] in Gy, x, y, z) in canonical order from the file-order stored values.

    The reordering is done on views of the stored array where it can be (frames already sorted
    or reversed, flips, transposes); the dose (stored value x scaling, float64) is then written
    once, into the one result array."""
    (row_axis, row_sign), (col_axis, col_sign), (normal_axis, _) = axes
    _, nr, nc = stored.shape
    coords: dict[int, np.ndarray] = {
        row_axis: ipp[row_axis] + np.arange(nc) * spacing[1] * row_sign,  # along a row: columns
        col_axis: ipp[col_axis] + np.arange(nr) * spacing[0] * col_sign,  # down a column: rows
        normal_axis: positions,
    }
    order = np.argsort(positions, kind="stable")
    if np.array_equal(order, np.arange(order.size)):
        array = stored
    elif np.array_equal(order, np.arange(order.size)[::-1]):
        array = stored[::-1]
    else:
        array = stored[order]
    coords[normal_axis] = positions[order]
    if col_sign < 0:
        array = array[:, ::-1, :]
        coords[col_axis] = coords[col_axis][::-1]
    if row_sign < 0:
        array = array[:, :, ::-1]
        coords[row_axis] = coords[row_axis][::-1]
    file_axis = {normal_axis: 0, col_axis: 1, row_axis: 2}
    array = array.transpose(file_axis[2], file_axis[1], file_axis[0])
    dose = np.empty(array.shape, dtype=np.float64)
    np.multiply(array, scaling, out=dose, dtype=np.float64)
    return dose, coords[0], coords[1], coords[2]


def _check_positions(coords: tuple[np.ndarray, ...], ipp: list[float], path: str) -> None:
    """Voxel positions (mm) must lie within :data:`MAX_COORDINATE_MM` of the origin (a grid
    metres long has no meaning in a patient, and 1e308 overflows the geometry) and be distinct
    along x, y and z."""
    for name, axis in zip("xyz", coords, strict=True):
        far = float(np.abs(axis).max())
        if not far <= MAX_COORDINATE_MM:  # also inf and nan
            if not max(abs(v) for v in ipp) <= MAX_COORDINATE_MM:
                keyword = "ImagePositionPatient"
            else:  # reached by the steps from it
                keyword = "GridFrameOffsetVector" if name == "z" else "PixelSpacing"
            raise DicomError(
                f"the voxel positions along {name} reach {far:.3g} mm, beyond "
                f"{MAX_COORDINATE_MM / 1000:g} m of the origin: not positions in a patient",
                path,
                tag_name(keyword),
            )
        if np.all(np.diff(axis) > 0):
            continue
        shown = "\\".join(f"{v:g}" for v in ipp)
        raise DicomError(
            f"ImagePositionPatient {shown}: the voxel positions along {name} "
            f"({axis[0]:g} to {axis[-1]:g} mm) are not distinct",
            path,
            tag_name("ImagePositionPatient"),
        )


def _references(ds: Dataset) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """(plan SOP Instance UIDs, beam numbers, fraction group numbers) the dose references;
    numbers that are not whole numbers are left out."""
    plans: list[str] = []
    beams: list[int] = []
    groups: list[int] = []
    for ref in ds.get("ReferencedRTPlanSequence") or []:
        uid = str(ref.get("ReferencedSOPInstanceUID", "")).strip()
        if uid:
            plans.append(uid)
        for group in ref.get("ReferencedFractionGroupSequence") or []:
            number = whole_number(lenient_value(group, "ReferencedFractionGroupNumber"))
            if number is not None:
                groups.append(number)
            for beam in group.get("ReferencedBeamSequence") or []:
                number = whole_number(lenient_value(beam, "ReferencedBeamNumber"))
                if number is not None:
                    beams.append(number)
    return tuple(plans), tuple(beams), tuple(groups)


# --------------------------------------------------------------------------------------------
# TPS DVHs
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class RelativeTpsDvh(TpsDvh):
    """A TPS DVH stored in DVHVolumeUnits PERCENT or PER_U whose ROI volume (cc) was not known
    when it was read. ``volume_fraction[n]`` is the fraction of the ROI (1 = the whole ROI)
    receiving at least ``dose_gy[n]``; ``volume_cc`` is NaN and ``total_volume_cc`` None, so no
    absolute volume can be taken from it by mistake. Doses at a % volume and the mean need no
    absolute volume; :func:`tps_dvh_in_cc` converts it once the ROI's volume is known."""

    volume_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    volume_units: str = "PERCENT"


def tps_dvh_in_cc(dvh: TpsDvh, roi_volume_cc: float | None) -> TpsDvh:
    """``dvh`` in cc: a :class:`RelativeTpsDvh` scaled by ``roi_volume_cc`` (the whole ROI, cc)
    when that is a positive number; anything else is returned as it is."""
    if not isinstance(dvh, RelativeTpsDvh) or not _usable_volume(roi_volume_cc):
        return dvh
    assert roi_volume_cc is not None
    return TpsDvh(
        roi_number=dvh.roi_number,
        dose_gy=dvh.dose_gy,
        volume_cc=dvh.volume_fraction * float(roi_volume_cc),
        total_volume_cc=float(roi_volume_cc),
        mean_gy=dvh.mean_gy,
        min_gy=dvh.min_gy,
        max_gy=dvh.max_gy,
    )


def _usable_volume(volume_cc: float | None) -> bool:
    return volume_cc is not None and math.isfinite(volume_cc) and volume_cc > 0


def _read_dvhs(
    ds: Dataset, path: str, roi_volumes_cc: Mapping[int, float]
) -> tuple[list[TpsDvh], list[Note]]:
    """DVHSequence items as cumulative DVHs in Gy and cc.

    ``dose_gy[n]`` is the lower edge of DICOM bin n (the sum of the widths of the bins before
    it) and ``volume_cc[n]`` the volume receiving at least that dose. An item in PERCENT or
    PER_U is converted with its ROI's volume from ``roi_volumes_cc``, else kept as a
    :class:`RelativeTpsDvh`. Each item not used gets a WARNING saying why, and when any is not
    used one more says how many of how many.
    """
    dvhs: list[TpsDvh] = []
    notes: list[Note] = []
    where = tag_name("DVHSequence")
    items = list(ds.get("DVHSequence") or [])
    for n, item in enumerate(items, start=1):
        refs = item.get("DVHReferencedROISequence") or []
        try:
            roi = int(refs[0].ReferencedROINumber) if refs else None
        except (AttributeError, TypeError, ValueError):
            roi = None
        label = f"DVH item {n} (ROI {roi})"
        try:
            dvh = _dvh_item(item, roi, roi_volumes_cc)
        except ValueError as exc:
            notes.append(Note(Level.WARNING, f"{label} not used: {exc}", path, where))
            continue
        dvhs.append(dvh)
    dropped = len(items) - len(dvhs)
    if dropped:
        notes.append(
            Note(
                Level.WARNING,
                f"{dropped} of the {len(items)} DVHs in the RT Dose not usable "
                "(each one's reason is given in its own note)",
                path,
                where,
            )
        )
    return dvhs, notes


def _dvh_item(item: Dataset, roi: int | None, roi_volumes_cc: Mapping[int, float]) -> TpsDvh:
    if roi is None:
        raise ValueError("no DVHReferencedROISequence")
    if str(item.get("DoseUnits", "")).upper() != "GY":
        raise ValueError(f"DoseUnits {item.get('DoseUnits')!r} (only GY is converted)")
    if str(item.get("DoseType", "PHYSICAL")).upper() == "ERROR":
        raise ValueError("DoseType ERROR")
    data = np.asarray([float(v) for v in _as_list(item.get("DVHData"))], dtype=float)
    if data.size < 2 or data.size % 2:
        raise ValueError(f"DVHData holds {data.size} values (pairs expected)")
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise ValueError("DVHData holds a negative or non-finite value")
    scale = 1.0
    if str(item.get("DVHDoseScaling", "")).strip():
        scale = optional_float(item, "DVHDoseScaling") or 0.0
        if scale <= 0:
            raise ValueError(
                f"DVHDoseScaling {item.get('DVHDoseScaling')!r} is not a positive number"
            )
    widths = data[0::2] * scale
    volumes = data[1::2]
    lower = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    kind = str(item.get("DVHType", "")).upper()
    if kind == "DIFFERENTIAL":
        total = float(volumes.sum())
        volumes = np.cumsum(volumes[::-1])[::-1]
    elif kind == "CUMULATIVE":
        total = float(volumes[0])
    else:
        raise ValueError(f"DVHType {kind!r} (CUMULATIVE or DIFFERENTIAL expected)")
    unit = str(item.get("DVHVolumeUnits", "")).upper()
    stats = {
        "mean_gy": optional_float(item, "DVHMeanDose"),
        "min_gy": optional_float(item, "DVHMinimumDose"),
        "max_gy": optional_float(item, "DVHMaximumDose"),
    }
    if unit in ("PERCENT", "PER_U"):
        whole_unit = 100.0 if unit == "PERCENT" else 1.0
        fraction = volumes / whole_unit
        if fraction.max() > 1.0 + 1e-3:  # rounding of the written values allowed
            raise ValueError(
                f"DVHVolumeUnits {unit} but the volumes reach {volumes.max():g} "
                f"(more than the whole ROI, {whole_unit:g})"
            )
        relative = RelativeTpsDvh(
            roi_number=roi,
            dose_gy=lower,
            volume_cc=np.full(fraction.shape, np.nan),
            total_volume_cc=None,
            volume_fraction=fraction,
            volume_units=unit,
            **stats,
        )
        return tps_dvh_in_cc(relative, roi_volumes_cc.get(roi))
    if unit != "CM3":
        raise ValueError(f"DVHVolumeUnits {unit!r} (CM3, PERCENT or PER_U expected)")
    return TpsDvh(roi_number=roi, dose_gy=lower, volume_cc=volumes, total_volume_cc=total, **stats)


# --------------------------------------------------------------------------------------------
# combine_doses
# --------------------------------------------------------------------------------------------


def combine_doses(
    doses: Sequence[DoseGrid], plan: Plan | None
) -> tuple[DoseGrid | None, list[Note]]:
    """The one dose to evaluate for ``plan`` from the doses that reference it, with notes.

    One PLAN dose is used as it is (several are ambiguous: none is chosen); else one FRACTION
    dose (a whole fraction group) as it is, or, for a plan of several fraction groups, one
    FRACTION dose naming each group (ReferencedFractionGroupNumber) summed; else BEAM doses are
    summed when their beam numbers are exactly the plan's treatment beams on one grid; else one
    FRACTION_SESSION dose (or BEAM_SESSION doses summed) is multiplied by the plan's fractions
    planned (a FRACTION_SESSION dose of a plan of several fraction groups is refused: it holds
    one group). Other summation types are refused. EFFECTIVE and PHYSICAL doses are never summed
    together.
    """
    notes: list[Note] = []
    if not doses:
        return None, notes
    by_type: dict[str, list[DoseGrid]] = {}
    for dose in doses:
        by_type.setdefault(dose.summation_type, []).append(dose)
    for kind in ("PLAN", "FRACTION", "BEAM", "FRACTION_SESSION", "BEAM_SESSION"):
        if kind not in by_type:
            continue
        chosen = by_type.pop(kind)
        result = _combine_kind(kind, chosen, plan, notes)
        if result is not None:
            for kind_left, left in by_type.items():
                notes.append(
                    Note(
                        Level.INFO,
                        f"{kind_left} dose not used: a {kind} dose was used instead",
                        ", ".join(p for d in left for p in d.paths),
                    )
                )
            return result, notes
        if not _fallback_allowed(kind):
            return None, notes
    for kind, left in by_type.items():
        notes.append(
            Note(
                Level.ERROR,
                f"DoseSummationType {kind} not supported: dose not used",
                ", ".join(p for d in left for p in d.paths),
                tag_name("DoseSummationType"),
            )
        )
    return None, notes


def _fallback_allowed(kind: str) -> bool:
    """After an ambiguous PLAN or FRACTION set, lower-level doses are not a safe substitute."""
    return kind not in ("PLAN", "FRACTION")


def _paths(doses: Sequence[DoseGrid]) -> str:
    return ", ".join(p for d in doses for p in d.paths)


def _combine_kind(
    kind: str, doses: list[DoseGrid], plan: Plan | None, notes: list[Note]
) -> DoseGrid | None:
    attr = tag_name("DoseSummationType")
    groups = _groups_with_treatment_beams(plan)
    if kind in ("FRACTION", "FRACTION_SESSION") and plan is not None and len(groups) > 1:
        return _per_group(kind, doses, plan, groups, notes)
    if kind in ("PLAN", "FRACTION", "FRACTION_SESSION"):
        if len(doses) > 1:
            notes.append(
                Note(
                    Level.ERROR,
                    f"{len(doses)} {kind} doses for one plan: ambiguous, none used",
                    _paths(doses),
                    attr,
                )
            )
            return None
        grid = doses[0]
    else:
        grid = _sum_beams(kind, doses, plan, notes)
        if grid is None:
            return None
    if kind in SESSION_TYPES:
        fractions = plan.fractions_planned if plan is not None else None
        if not fractions:
            notes.append(
                Note(
                    Level.ERROR,
                    f"{kind} dose holds one session: no plan with NumberOfFractionsPlanned "
                    "to scale it by, not used",
                    _paths(doses),
                    attr,
                )
            )
            return None
        what = grid.scaling_note + "; " if grid.scaling_note else ""
        grid = replace(
            grid,
            dose_gy=grid.dose_gy * fractions,
            scaling_note=f"{what}{kind} dose multiplied by {fractions} fractions planned",
        )
    return grid


def _groups_with_treatment_beams(plan: Plan | None) -> tuple[int, ...]:
    """The numbers of the plan's fraction groups that deliver a treatment beam."""
    if plan is None:
        return ()
    treatment = plan.treatment_beam_numbers
    return tuple(
        sorted(
            g.number
            for g in plan.fraction_groups
            if any(b.beam_number in treatment for b in g.beams)
        )
    )


def _sum_beams(
    kind: str, doses: list[DoseGrid], plan: Plan | None, notes: list[Note]
) -> DoseGrid | None:
    attr = tag_name("ReferencedBeamNumber")
    paths = _paths(doses)
    if plan is None:
        notes.append(Note(Level.ERROR, f"{kind} doses without a plan: not summed", paths, attr))
        return None
    numbers = [b for d in doses for b in d.referenced_beam_numbers]
    if any(len(d.referenced_beam_numbers) != 1 for d in doses) or len(set(numbers)) != len(numbers):
        notes.append(
            Note(
                Level.ERROR,
                f"{kind} doses must each reference one distinct beam (found "
                f"{[list(d.referenced_beam_numbers) for d in doses]}): not summed",
                paths,
                attr,
            )
        )
        return None
    expected = plan.treatment_beam_numbers
    if set(numbers) != expected:
        notes.append(
            Note(
                Level.ERROR,
                f"{kind} doses for beams {sorted(numbers)} do not match the plan's treatment "
                f"beams {sorted(expected)}: not summed",
                paths,
                attr,
            )
        )
        return None
    ordered = sorted(doses, key=lambda d: d.referenced_beam_numbers[0])
    return _summed(kind, ordered, f"beams {', '.join(map(str, sorted(numbers)))}", notes)


def _per_group(
    kind: str, doses: list[DoseGrid], plan: Plan, groups: tuple[int, ...], notes: list[Note]
) -> DoseGrid | None:
    """The dose of a plan of several fraction groups from doses of one group each: FRACTION
    doses that name every group once are summed; anything else is refused (one group's dose is
    not the plan's)."""
    attr = tag_name("ReferencedFractionGroupNumber")
    listed = ", ".join(map(str, groups))
    if kind != "FRACTION":
        notes.append(
            Note(
                Level.ERROR,
                f"{kind} dose holds one session of one fraction group; plan '{plan.label}' has "
                f"fraction groups {listed}: not used",
                _paths(doses),
                attr,
            )
        )
        return None
    named = [d.referenced_fraction_groups for d in doses]
    if any(len(n) != 1 for n in named) or sorted(n[0] for n in named) != list(groups):
        found = "; ".join(
            f"{'/'.join(d.paths)} names {list(d.referenced_fraction_groups) or 'none'}"
            for d in doses
        )
        notes.append(
            Note(
                Level.ERROR,
                f"a FRACTION dose holds one fraction group; plan '{plan.label}' has fraction "
                f"groups {listed} and the FRACTION doses do not name each once ({found}): "
                "not used",
                _paths(doses),
                attr,
            )
        )
        return None
    ordered = sorted(doses, key=lambda d: d.referenced_fraction_groups[0])
    return _summed(kind, ordered, f"fraction groups {listed}", notes)


def _summed(kind: str, ordered: list[DoseGrid], what: str, notes: list[Note]) -> DoseGrid | None:
    """The sum (Gy) of doses on one grid, ``what`` they are of said in its scaling note; None
    (with an ERROR note) when their grids, types or units differ."""
    first = ordered[0]
    for other in ordered[1:]:
        problem = _grid_mismatch(first, other)
        if problem:
            notes.append(Note(Level.ERROR, f"{kind} doses not summed: {problem}", _paths(ordered)))
            return None
    total = np.sum([d.dose_gy for d in ordered], axis=0)
    return replace(
        first,
        dose_gy=total,
        paths=tuple(p for d in ordered for p in d.paths),
        sop_instance_uids=tuple(u for d in ordered for u in d.sop_instance_uids),
        referenced_beam_numbers=tuple(
            sorted({b for d in ordered for b in d.referenced_beam_numbers})
        ),
        referenced_fraction_groups=tuple(
            sorted({g for d in ordered for g in d.referenced_fraction_groups})
        ),
        tps_dvhs=(),
        notes=tuple(n for d in ordered for n in d.notes),
        scaling_note=f"sum of {len(ordered)} {kind} doses ({what})",
    )


def _grid_mismatch(a: DoseGrid, b: DoseGrid) -> str:
    if a.dose_type != b.dose_type:
        return f"DoseType {a.dose_type} and {b.dose_type} cannot be added"
    if a.units != b.units:
        return f"DoseUnits {a.units} and {b.units} differ"
    if a.frame_of_reference_uid != b.frame_of_reference_uid:
        return "different frames of reference"
    for name, u, v in (("x", a.x_mm, b.x_mm), ("y", a.y_mm, b.y_mm), ("z", a.z_mm, b.z_mm)):
        if u.shape != v.shape or not np.allclose(u, v, rtol=0, atol=1e-3):
            return f"different dose grids ({name} coordinates differ)"
    return ""
