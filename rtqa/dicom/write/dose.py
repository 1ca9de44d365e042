"""Write an RT Dose from a :class:`~rtqa.model.DoseGrid` (canonical order, Gy).

The file is a conformant multi-frame RT Dose: Image Plane (ImagePositionPatient is the centre of
the first voxel written, PixelSpacing is [row spacing, column spacing] in mm), Multi-frame
(FrameIncrementPointer → GridFrameOffsetVector), Image Pixel (unsigned integers unless the grid
holds negative values) and RT Dose (DoseGridScaling: Gy per stored unit) modules, plus an
RT DVH module when TPS DVHs are given. Any of the eight axis-aligned patient orientations can be
written: the canonical array is re-laid (transposed and flipped) so that the file describes the
same physical dose at the same patient coordinates.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders.native import _encode_segment
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RLELossless
from pydicom.valuerep import format_number_as_ds

from rtqa.dicom.common import RT_PLAN
from rtqa.dicom.dose import standard_axes
from rtqa.dicom.write.base import Header, new_dataset, save
from rtqa.model import DoseGrid, TpsDvh

RT_DOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
GRID_FRAME_OFFSET_VECTOR_TAG = 0x3004000C
HFS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def ds_text(value: float) -> str:
    """``value`` as a DICOM DS string of at most 16 characters."""
    return format_number_as_ds(float(value))


def write_dose(
    grid: DoseGrid,
    path: str | Path,
    header: Header,
    *,
    sop_instance_uid: str,
    series_instance_uid: str,
    series_number: int = 1,
    referenced_plan_uid: str | None = None,
    orientation: Sequence[float] = HFS,
    offsets: str = "relative",
    descending: bool = False,
    summation_type: str | None = None,
    dose_type: str | None = None,
    units: str | None = None,
    referenced_beam_number: int | None = None,
    referenced_fraction_group: int | None = None,
    bits: int = 32,
    compress: str | None = None,
    deflate: bool = False,
    tps_dvhs: Sequence[TpsDvh] = (),
    dvh_type: str = "CUMULATIVE",
    dvh_volume_units: str = "CM3",
    dvh_dose_scaling: float = 1.0,
    patient_position: str | None = None,
    comment: str = "",
    dose_grid_scaling: float | None = None,
    content_datetime: datetime | None = None,
) -> Path:
    """Write ``grid`` as an RT Dose file at ``path`` and return the path.

    ``orientation`` is the ImageOrientationPatient to write (one of the eight axis-aligned ones).
    ``offsets``: ``"relative"`` (GridFrameOffsetVector starts at 0, offsets along the normal
    row × column) or ``"absolute"`` (first offset = ImagePositionPatient z; the standard allows it
    only with orientation 1\\0\\0\\0\\1\\0 — written for any orientation so that readers can be
    tested on the non-conformant form). ``descending`` writes the frames against the normal.
    ``bits`` is 16 or 32; ``compress="rle"`` writes RLE Lossless; ``deflate`` the deflated
    transfer syntax. ``dose_grid_scaling`` (Gy per stored unit) defaults to the largest that fits
    the dose into the stored range. TPS DVHs are written with ``dvh_type`` (CUMULATIVE or
    DIFFERENTIAL), ``dvh_volume_units`` (CM3, PERCENT or PER_U) and ``dvh_dose_scaling``.
    ``referenced_fraction_group`` (default 1 with a beam number, else none) and
    ``referenced_beam_number`` go into the plan reference's ReferencedFractionGroupSequence.
    """
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits}")
    if offsets not in ("relative", "absolute"):
        raise ValueError(f"offsets must be 'relative' or 'absolute', not {offsets!r}")
    axes = standard_axes(orientation)
    if axes is None:
        raise ValueError(f"orientation {tuple(orientation)} is not axis-aligned")
    layout = _layout(grid, axes, descending)
    ds = new_dataset(
        header,
        sop_class_uid=RT_DOSE_SOP_CLASS,
        sop_instance_uid=sop_instance_uid,
        modality="RTDOSE",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        frame_of_reference_uid=grid.frame_of_reference_uid,
        content_datetime=content_datetime,
    )
    if patient_position:
        ds.PatientPosition = patient_position
    ds.InstanceNumber = 1
    _write_image_plane(ds, layout, orientation, offsets)
    scaling, pixels, signed = _quantise(layout.array, bits, dose_grid_scaling)
    _write_pixels(ds, pixels, bits, signed)
    ds.DoseUnits = units or grid.units
    ds.DoseType = dose_type or grid.dose_type
    ds.DoseSummationType = summation_type or grid.summation_type
    ds.DoseGridScaling = ds_text(scaling)
    if comment:
        ds.DoseComment = comment
    if grid.heterogeneity_correction:
        ds.TissueHeterogeneityCorrection = list(grid.heterogeneity_correction)
    if referenced_plan_uid:
        ds.ReferencedRTPlanSequence = _plan_reference(
            referenced_plan_uid, referenced_beam_number, referenced_fraction_group
        )
    if tps_dvhs:
        _write_dvhs(ds, tps_dvhs, dvh_type, dvh_volume_units, dvh_dose_scaling)
    if compress is not None:
        if compress.lower() != "rle":
            raise ValueError(f"compress must be None or 'rle', not {compress!r}")
        _compress_rle(ds, pixels)
    return save(ds, path, deflate=deflate)


class _Layout:
    """The dose array in file order (frame, row, column) with its patient coordinates."""

    def __init__(self, array, ipp, row_spacing, col_spacing, frame_positions, normal_sign):
        self.array: np.ndarray = array
        self.ipp: list[float] = ipp
        self.row_spacing: float = row_spacing
        self.col_spacing: float = col_spacing
        self.frame_positions: np.ndarray = frame_positions  # along the normal's patient axis
        self.normal_sign: int = normal_sign


def _layout(grid: DoseGrid, axes, descending: bool) -> _Layout:
    (row_axis, row_sign), (col_axis, col_sign), (normal_axis, normal_sign) = axes
    coords = (np.asarray(grid.x_mm), np.asarray(grid.y_mm), np.asarray(grid.z_mm))
    array_axis = (2, 1, 0)  # patient axis x, y, z → canonical array axis
    frame_sign = -normal_sign if descending else normal_sign
    array = np.asarray(grid.dose_gy, dtype=np.float64).transpose(
        array_axis[normal_axis], array_axis[col_axis], array_axis[row_axis]
    )
    flips = tuple(
        slice(None, None, -1) if s < 0 else slice(None) for s in (frame_sign, col_sign, row_sign)
    )
    array = array[flips]

    def ordered(axis: int, sign: int) -> np.ndarray:
        return coords[axis] if sign > 0 else coords[axis][::-1]

    frames = ordered(normal_axis, frame_sign)
    rows = ordered(col_axis, col_sign)
    cols = ordered(row_axis, row_sign)
    ipp = [0.0, 0.0, 0.0]
    ipp[row_axis] = float(cols[0])
    ipp[col_axis] = float(rows[0])
    ipp[normal_axis] = float(frames[0])
    return _Layout(array, ipp, _step(rows), _step(cols), frames, normal_sign)


def _step(values: np.ndarray) -> float:
    """Uniform spacing of an in-plane coordinate vector (mm)."""
    if values.size < 2:
        return 1.0
    steps = np.abs(np.diff(values))
    if not np.allclose(steps, steps[0], rtol=0, atol=1e-6):
        raise ValueError("in-plane coordinates of a dose grid must be evenly spaced")
    return float(steps[0])


def _write_image_plane(ds: Dataset, layout: _Layout, orientation, offsets: str) -> None:
    nf, nr, nc = layout.array.shape
    ds.ImagePositionPatient = [ds_text(v) for v in layout.ipp]
    ds.ImageOrientationPatient = [ds_text(v) for v in orientation]
    ds.PixelSpacing = [ds_text(layout.row_spacing), ds_text(layout.col_spacing)]
    ds.SliceThickness = ""
    ds.NumberOfFrames = nf
    ds.FrameIncrementPointer = GRID_FRAME_OFFSET_VECTOR_TAG
    relative = (layout.frame_positions - layout.frame_positions[0]) * layout.normal_sign
    values = relative + layout.frame_positions[0] if offsets == "absolute" else relative
    ds.GridFrameOffsetVector = [ds_text(v) for v in values]
    ds.Rows = nr
    ds.Columns = nc


def _quantise(
    array: np.ndarray, bits: int, scaling: float | None
) -> tuple[float, np.ndarray, bool]:
    """(DoseGridScaling as written, stored integers, signed) for a dose array in Gy."""
    signed = bool(array.size and array.min() < 0)
    top = 2 ** (bits - 1 if signed else bits) - 1
    peak = float(np.abs(array).max()) if array.size else 0.0
    if scaling is None:
        scaling = peak / (top - 1) if peak > 0 else 1.0
    scaling = float(ds_text(scaling))
    stored = np.rint(array / scaling)
    if stored.size and np.abs(stored).max() > top:
        raise ValueError(f"dose {peak} Gy does not fit {bits} bits at DoseGridScaling {scaling}")
    dtype = {(16, False): "<u2", (16, True): "<i2", (32, False): "<u4", (32, True): "<i4"}
    return scaling, stored.astype(dtype[bits, signed]), signed


def _write_pixels(ds: Dataset, pixels: np.ndarray, bits: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


def _compress_rle(ds: Dataset, pixels: np.ndarray) -> None:
    """RLE Lossless with pydicom's native encoder.

    ``Dataset.compress`` accepts 8 and 16 bits only (its encoding profile), though RLE allows
    32 (four byte segments per sample, PS3.5 G.2): 32-bit frames go through the same native
    segment encoder directly and are encapsulated with a basic offset table.
    """
    ds.file_meta = FileMetaDataset()
    if ds.BitsAllocated <= 16:
        ds.compress(RLELossless, pixels, encoding_plugin="pydicom", generate_instance_uid=False)
        return
    frames = []
    for frame in pixels.reshape(-1, ds.Rows, ds.Columns):
        raw = np.ascontiguousarray(frame.astype(frame.dtype.newbyteorder("<"))).tobytes()
        width = frame.dtype.itemsize
        segments = [_encode_segment(raw[b::width], ds.Columns) for b in reversed(range(width))]
        offsets = [64]
        for segment in segments[:-1]:
            offsets.append(offsets[-1] + len(segment))
        head = struct.pack(f"<{1 + len(offsets)}L", len(segments), *offsets)
        frames.append(head.ljust(64, b"\0") + b"".join(segments))
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = RLELossless


def _plan_reference(
    plan_uid: str, beam_number: int | None, group_number: int | None
) -> DicomSequence:
    ref = Dataset()
    ref.ReferencedSOPClassUID = RT_PLAN
    ref.ReferencedSOPInstanceUID = plan_uid
    if beam_number is not None or group_number is not None:
        group = Dataset()
        group.ReferencedFractionGroupNumber = int(group_number or 1)
        if beam_number is not None:
            beam = Dataset()
            beam.ReferencedBeamNumber = int(beam_number)
            group.ReferencedBeamSequence = DicomSequence([beam])
        ref.ReferencedFractionGroupSequence = DicomSequence([group])
    return DicomSequence([ref])


def _write_dvhs(
    ds: Dataset, dvhs: Sequence[TpsDvh], dvh_type: str, volume_units: str, dose_scaling: float
) -> None:
    """RT DVH module. ``dvh.dose_gy`` are the doses at which ``volume_cc`` is the volume
    receiving at least that dose, starting at 0 Gy (the lower edges of the DICOM bins)."""
    items = []
    for dvh in dvhs:
        dose = np.asarray(dvh.dose_gy, dtype=float)
        volume = np.asarray(dvh.volume_cc, dtype=float)
        if dose.size < 2 or dose[0] != 0:
            raise ValueError("a TPS DVH needs at least two doses starting at 0 Gy")
        widths = np.diff(dose)
        widths = np.append(widths, widths[-1])
        if dvh_type == "DIFFERENTIAL":
            volume = volume - np.append(volume[1:], 0.0)
        elif dvh_type != "CUMULATIVE":
            raise ValueError(f"dvh_type must be CUMULATIVE or DIFFERENTIAL, not {dvh_type!r}")
        total = dvh.total_volume_cc if dvh.total_volume_cc else float(np.asarray(dvh.volume_cc)[0])
        if volume_units == "PERCENT":
            volume = volume / total * 100.0
        elif volume_units == "PER_U":
            volume = volume / total
        elif volume_units != "CM3":
            raise ValueError(f"dvh_volume_units must be CM3, PERCENT or PER_U, not {volume_units}")
        item = Dataset()
        roi = Dataset()
        roi.ReferencedROINumber = dvh.roi_number
        roi.DVHROIContributionType = "INCLUDED"
        item.DVHReferencedROISequence = DicomSequence([roi])
        item.DVHType = dvh_type
        item.DoseUnits = "GY"
        item.DoseType = "PHYSICAL"
        item.DVHDoseScaling = ds_text(dose_scaling)
        item.DVHVolumeUnits = volume_units
        item.DVHNumberOfBins = int(dose.size)
        pairs = np.column_stack([widths / dose_scaling, volume]).ravel()
        item.DVHData = [ds_text(v) for v in pairs]
        for keyword, value in (
            ("DVHMinimumDose", dvh.min_gy),
            ("DVHMaximumDose", dvh.max_gy),
            ("DVHMeanDose", dvh.mean_gy),
        ):
            if value is not None:
                setattr(item, keyword, ds_text(value))
        items.append(item)
    ds.DVHSequence = DicomSequence(items)
