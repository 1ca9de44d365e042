"""The byte-level completeness check of DICOM files, on real files written with pydicom in each
transfer syntax and then cut short."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from rtqa.dicom.truncation import truncation_reason

SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]


def _structure_like(path, syntax, *, undefined: bool) -> bytes:
    """A small data set with a two-level sequence and a long text value, saved in ``syntax``."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "SYNTH"
    contours = []
    for k in range(3):
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.NumberOfContourPoints = 4
        c.ContourData = [0.0, 0.0, float(k), 10.0, 0.0, float(k), 10.0, 10.0, float(k), 0, 10, k]
        contours.append(c)
    roi = Dataset()
    roi.ReferencedROINumber = 1
    roi.ContourSequence = Sequence(contours)
    ds.ROIContourSequence = Sequence([roi])
    ds.StructureSetDescription = "x" * 300
    if undefined:
        ds["ROIContourSequence"].is_undefined_length = True
        for item in ds.ROIContourSequence:
            item["ContourSequence"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: s.name)
@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
def test_complete_file_passes_and_every_cut_is_found(tmp_path, syntax, undefined):
    whole = tmp_path / "whole.dcm"
    data = _structure_like(whole, syntax, undefined=undefined)
    assert pydicom.dcmread(whole).ROIContourSequence[0].ContourSequence[2].ContourData[2] == 2
    assert truncation_reason(str(whole)) is None
    cut = tmp_path / "cut.dcm"
    # every cut after the preamble and meta header, through to one byte short of the end
    for end in range(160, len(data), 7):
        cut.write_bytes(data[:end])
        reason = truncation_reason(str(cut))
        assert reason, f"{syntax.name}: cut at byte {end} of {len(data)} not found"
    if syntax != DeflatedExplicitVRLittleEndian:  # (a deflated stream may end in a pad byte)
        cut.write_bytes(data[:-1])
        assert truncation_reason(str(cut))


def test_messages_name_the_element_and_the_missing_bytes(tmp_path):
    whole = tmp_path / "whole.dcm"
    data = _structure_like(whole, ExplicitVRLittleEndian, undefined=False)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: data.index(b"x" * 300) + 100])  # inside StructureSetDescription
    assert truncation_reason(str(cut)) == "(3006,0006) needs 300 bytes, only 100 left"


def test_unclosed_undefined_length_sequence(tmp_path):
    whole = tmp_path / "whole.dcm"
    data = _structure_like(whole, ImplicitVRLittleEndian, undefined=True)
    # drop the sequence delimiters at the very end of the nested sequences
    end = data.rfind(b"\xfe\xff\xdd\xe0")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:end])
    reason = truncation_reason(str(cut))
    assert reason is not None and ("not closed" in reason or "cut short" in reason)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert truncation_reason(str(empty)) is None  # nothing to walk: not a truncated element
    missing = tmp_path / "missing.dcm"
    assert "No such file" in truncation_reason(str(missing))
