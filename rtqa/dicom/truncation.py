"""Byte-level check that a DICOM file is complete.

pydicom silently returns a partial dataset for a file cut short. :func:`truncation_reason` walks
the element headers (file meta, explicit or implicit VR, either byte order, deflated data sets,
undefined-length sequences and items, encapsulated pixel data) and says where a value or a
sequence runs past the end of the file.
"""

from __future__ import annotations

import mmap
import struct
import zlib

_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


class _Truncated(Exception):
    pass


def truncation_reason(path: str) -> str | None:
    """Why the file at ``path`` is cut short (an element or sequence runs past the end of the
    file), or None when its structure is complete. Pixel data lengths are checked too.

    The file is memory-mapped: only element headers are touched, so a large defined-length value
    (a dose grid's pixel data) is checked against the file size without being read."""
    try:
        with open(path, "rb") as handle:
            try:
                data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # empty file, or a file system without mmap
                return _truncation(handle.read())
    except OSError as exc:
        return str(exc)
    with data:
        return _truncation(data)


def _truncation(data: bytes | mmap.mmap) -> str | None:
    offset = 132 if data[128:132] == b"DICM" else 0
    try:
        implicit, little, deflated, offset = _meta(data, offset)
        if deflated:
            data, offset = zlib.decompress(data[offset:], -zlib.MAX_WBITS), 0
        _walk_elements(data, offset, len(data), implicit, little, until_delimiter=False)
    except _Truncated as exc:
        return str(exc)
    except zlib.error as exc:
        return f"deflated data cannot be inflated ({exc})"
    return None


def _meta(data: bytes, offset: int) -> tuple[bool, bool, bool, int]:
    """Skip the file meta group (explicit VR little endian): (implicit, little endian, deflated,
    offset of the data set)."""
    syntax = ""
    start = offset
    while offset + 8 <= len(data) and data[offset : offset + 2] == b"\x02\x00":
        tag_elem = struct.unpack_from("<H", data, offset + 2)[0]
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            if offset + 12 > len(data):
                raise _Truncated("file meta information cut short")
            length = struct.unpack_from("<L", data, offset + 8)[0]
            value_at = offset + 12
        else:
            length = struct.unpack_from("<H", data, offset + 6)[0]
            value_at = offset + 8
        if value_at + length > len(data):
            raise _Truncated("file meta information cut short")
        if tag_elem == 0x0010:
            syntax = data[value_at : value_at + length].decode("ascii", "ignore").strip("\0 ")
        offset = value_at + length
    if offset == start:  # no meta: guess the encoding from the first element
        explicit = len(data) >= offset + 6 and data[offset + 4 : offset + 6].isalpha()
        return not explicit, True, False, offset
    implicit = syntax == "1.2.840.10008.1.2"
    big = syntax == "1.2.840.10008.1.2.2"
    return implicit, not big, syntax == "1.2.840.10008.1.2.1.99", offset


def _walk_elements(
    data: bytes, offset: int, end: int, implicit: bool, little: bool, *, until_delimiter: bool
) -> int:
    fmt = "<" if little else ">"
    size = len(data)
    while offset < end:
        if offset + 8 > size:
            raise _Truncated(f"data element header cut short at byte {offset} of {size}")
        group, elem = struct.unpack_from(fmt + "HH", data, offset)
        tag = (group << 16) | elem
        if tag in (_ITEM_END, _SEQ_END):
            return offset + 8
        vr = b""
        if implicit or group == 0xFFFE:
            length = struct.unpack_from(fmt + "L", data, offset + 4)[0]
            value_at = offset + 8
        else:
            vr = data[offset + 4 : offset + 6]
            if vr in _LONG_VRS:
                if offset + 12 > size:
                    raise _Truncated(f"data element header cut short at byte {offset} of {size}")
                length = struct.unpack_from(fmt + "L", data, offset + 8)[0]
                value_at = offset + 12
            else:
                length = struct.unpack_from(fmt + "H", data, offset + 6)[0]
                value_at = offset + 8
        if length == _UNDEFINED:
            offset = _walk_items(data, value_at, implicit, little, tag)
            continue
        if value_at + length > size:
            raise _Truncated(
                f"({group:04X},{elem:04X}) needs {length} bytes, "
                f"only {max(size - value_at, 0)} left"
            )
        offset = value_at + length
    if until_delimiter:
        raise _Truncated("sequence item not closed before the end of the file")
    return offset


def _walk_items(data: bytes, offset: int, implicit: bool, little: bool, tag: int) -> int:
    """Items of an undefined-length sequence (or encapsulated pixel data) up to its delimiter."""
    fmt = "<" if little else ">"
    size = len(data)
    while True:
        if offset + 8 > size:
            raise _Truncated(f"sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) not closed")
        item_tag = (struct.unpack_from(fmt + "H", data, offset)[0] << 16) | struct.unpack_from(
            fmt + "H", data, offset + 2
        )[0]
        length = struct.unpack_from(fmt + "L", data, offset + 4)[0]
        offset += 8
        if item_tag == _SEQ_END:
            return offset
        if item_tag != _ITEM:
            raise _Truncated(f"sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) is malformed")
        if length == _UNDEFINED:
            offset = _walk_elements(data, offset, size, implicit, little, until_delimiter=True)
        else:
            if offset + length > size:
                raise _Truncated(
                    f"item of ({tag >> 16:04X},{tag & 0xFFFF:04X}) needs {length} bytes, "
                    f"only {size - offset} left"
                )
            offset += length
