"""Shared reading helpers: open a file, require attributes, parse DICOM dates and times.

Every failure is a :class:`~rtqa.errors.DicomError` that names the file and the attribute
(keyword and tag), so the user learns exactly what is wrong and where.
"""

from __future__ import annotations

import math
import warnings
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pydicom
from pydicom import uid
from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from rtqa.errors import DicomError
from rtqa.model import Level, Note

# SOP Class UIDs rtqa reads (PS3.4 Annex B)
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
RT_BEAMS_RECORD = "1.2.840.10008.5.1.4.1.1.481.4"
RT_ION_BEAMS_RECORD = "1.2.840.10008.5.1.4.1.1.481.9"
RT_BRACHY_RECORD = "1.2.840.10008.5.1.4.1.1.481.6"
RT_SUMMARY_RECORD = "1.2.840.10008.5.1.4.1.1.481.7"
SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# Root under which rtqa makes UIDs (the pydicom-registered prefix for applications without one).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


#: More fractions than this (about three years of daily fractions) is no course of treatment:
#: a fraction count or number beyond it is read as unknown.
MAX_FRACTIONS = 1000

#: A patient coordinate (mm) farther than this (100 m) from the origin is no position in a
#: patient: contour points and dose voxels beyond it are refused.
MAX_COORDINATE_MM = 1e5


def make_uid(*entropy: object) -> str:
    """A UID derived only from ``entropy`` (deterministic), under :data:`UID_PREFIX`."""
    return str(pydicom.uid.generate_uid(UID_PREFIX, entropy_srcs=[str(e) for e in entropy]))


def tag_name(keyword: str) -> str:
    """``"DoseGridScaling (3004,000E)"`` for a keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def pydicom_failure(exc: BaseException) -> str | None:
    """What pydicom could not decode, where ``exc`` was raised inside pydicom while converting a
    value on first use (a garbled value representation, an IS of '-inf'), e.g. ``"a value
    pydicom cannot decode in NumberOfFractionsPlanned (300A,0078): OverflowError: ..."``;
    None for an exception raised elsewhere (an rtqa fault stays one)."""
    tb, last, tag = exc.__traceback__, None, None
    while tb is not None:
        raw = tb.tb_frame.f_locals.get("raw")
        tag = getattr(raw, "tag", tag)
        last, tb = tb, tb.tb_next
    if last is None or "pydicom" not in Path(last.tb_frame.f_code.co_filename).parts:
        return None
    where = ""
    if tag is not None:
        keyword = keyword_for_tag(tag)
        where = f" in {tag_name(keyword) if keyword else f'({tag >> 16:04X},{tag & 0xFFFF:04X})'}"
    return f"a value pydicom cannot decode{where}: {type(exc).__name__}: {exc}"


def garbled_sequence(ds: Dataset) -> str | None:
    """The first element of ``ds`` (or of an item within it) that the DICOM dictionary makes a
    sequence but the file writes with another value representation, e.g. ``"MatrixSequence
    (0070,030A) is written with VR 'OB', not as a sequence"``; None if there is none. Its value
    would be read as bytes or text where items are expected: called once reading has failed,
    to name the cause."""
    for element in ds.elements():
        tag, vr = element.tag, element.VR
        if vr == "SQ":
            items = ds[tag].value
            found = next((g for g in map(garbled_sequence, items) if g is not None), None)
            if found is not None:
                return found
        elif dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ":  # never a private tag
            return f"{tag_name(keyword_for_tag(tag))} is written with VR {vr!r}, not as a sequence"
    return None


def read_dataset(
    path: str, *, stop_before_pixels: bool = False, defer_size: int | None = None
) -> tuple[Dataset, list[Note]]:
    """Read a DICOM file, tolerating a missing preamble or file meta header.

    ``defer_size`` (bytes): values longer than this are not read, only located (pydicom's
    deferred read; the value is read from the file when first accessed).
    Returns the dataset and notes about non-conformance (no meta header, invalid values).
    Raises :class:`DicomError` when the file is not DICOM or cannot be parsed.
    """
    notes: list[Note] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=defer_size)
        except InvalidDicomError:
            ds = _forced_read(path, stop_before_pixels, defer_size)
            notes.append(
                Note(Level.WARNING, "non-conformant file: no preamble or file meta header", path)
            )
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise DicomError(f"not a readable DICOM file ({reason})", path) from exc
    notes.extend(value_notes(caught, path))
    return ds, notes


def value_notes(caught: list[warnings.WarningMessage], path: str) -> list[Note]:
    """pydicom's warnings about the values of the file at ``path`` (an invalid value, read at
    once or converted on first use) as WARNING notes, each message once; any other warning is
    passed on as it was raised."""
    notes: list[Note] = []
    seen: set[str] = set()
    for w in caught:
        if "pydicom" not in Path(str(w.filename)).parts:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            notes.append(Note(Level.WARNING, f"invalid value: {text}", path))
    return notes


def _forced_read(path: str, stop_before_pixels: bool, defer_size: int | None) -> Dataset:
    """Read a file without preamble/meta header; it must still carry a SOP Class UID."""
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=True
        )
    except Exception as exc:
        raise DicomError(f"not a readable DICOM file ({exc})", path) from exc
    if "SOPClassUID" not in ds:
        raise DicomError("not a DICOM file (no DICM prefix and no SOP Class UID)", path)
    if "TransferSyntaxUID" not in ds.file_meta:
        # the encoding the data set was read in stands for the missing header's (pixel data
        # of such a file is native: an encapsulated one cannot be read without it)
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            uid.ImplicitVRLittleEndian
            if implicit
            else uid.ExplicitVRLittleEndian
            if little
            else uid.ExplicitVRBigEndian
        )
    return ds


def require(ds: Dataset, keyword: str, path: str, what: str = "") -> Any:
    """The value of a Type 1 attribute, or a :class:`DicomError` naming file and tag."""
    value = ds.get(keyword)
    if value is None or (isinstance(value, str | bytes) and value == ""):
        context = f" in {what}" if what else ""
        raise DicomError(f"required attribute missing or empty{context}", path, tag_name(keyword))
    return value


def lenient_value(item: Dataset, keyword: str) -> object:
    """``item.get(keyword)``, or the element's raw text where pydicom cannot convert it (an IS
    of '-inf' overflows), for a lenient reader such as :func:`whole_number` to refuse."""
    try:
        return item.get(keyword)
    except (ValueError, OverflowError):
        raw = getattr(item.get_item(keyword), "value", None)
        return raw.decode("latin-1") if isinstance(raw, bytes) else None


def whole_number(value: object) -> int | None:
    """An IS/US value read leniently (padding, '3.0') as an integer; None when it is absent, empty
    or not a whole number."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def as_int(value: object, keyword: str, path: str, what: str = "") -> int:
    """An IS/US value as an integer, or a :class:`DicomError` naming file, tag and value."""
    number = whole_number(value)
    if number is not None:
        return number
    context = f" in {what}" if what else ""
    raise DicomError(f"{keyword} {value!r}{context} is not an integer", path, tag_name(keyword))


def as_floats(value: object, keyword: str, path: str) -> list[float]:
    """A DS/FD value (one or several) as finite floats, or a :class:`DicomError` naming file,
    tag and the first bad value."""
    if value is None:
        values: list = []
    elif isinstance(value, str | bytes | int | float):
        values = [value]
    else:
        values = list(value)  # pydicom MultiValue
    out = []
    for v in values:
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise DicomError(f"{keyword} holds {v!r}, not a number", path, tag_name(keyword))
        out.append(number)
    return out


def optional_str(ds: Dataset, keyword: str) -> str:
    """A string attribute, '' when absent or empty."""
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def optional_float(ds: Dataset, keyword: str) -> float | None:
    """A DS/FD attribute as a finite float; None when absent, empty or not a finite number
    ('nan' and 'inf' are no values)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def optional_number(
    ds: Dataset, keyword: str, path: str, notes: list[Note], where: str = ""
) -> float | None:
    """:func:`optional_float`, with a WARNING note naming ``where``, the attribute and its text
    when the attribute is present but holds no finite number: it is then treated as absent."""
    number = optional_float(ds, keyword)
    value = ds.get(keyword)
    if number is None and value is not None and str(value).strip() != "":
        context = f"{where}: " if where else ""
        notes.append(
            Note(
                Level.WARNING,
                f"{context}{keyword} {str(value).strip()!r} is not a number: treated as absent",
                path,
                tag_name(keyword),
            )
        )
    return number


def parse_date(value: object) -> date | None:
    """DICOM DA (YYYYMMDD) → date; None when empty or malformed."""
    text = str(value or "").strip()
    if len(text) < 8:
        return None
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def parse_time(value: object) -> time | None:
    """DICOM TM (HHMMSS.FFFFFF, components optional from the right) → time; None if empty."""
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, frac = text.partition(".")
    try:
        hour = int(whole[0:2])
        minute = int(whole[2:4]) if len(whole) >= 4 else 0
        second = int(whole[4:6]) if len(whole) >= 6 else 0
        micro = int((frac + "000000")[:6]) if frac else 0
        return time(hour, minute, min(second, 59), micro)
    except ValueError:
        return None


def parse_datetime(date_value: object, time_value: object) -> datetime | None:
    """A DA and a TM attribute → datetime (time 00:00 when only the date is known)."""
    day = parse_date(date_value)
    if day is None:
        return None
    return datetime.combine(day, parse_time(time_value) or time(0, 0))
