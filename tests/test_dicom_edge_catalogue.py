"""Edge cases of the DICOM-RT notes probed end to end on copies of the sample cases: an ROI in
another frame of reference (L10), ROI warnings reaching the reports (S2, S3), planes of one ROI
closer than any CT slice spacing (S8), a dose far from the plan's prescription (D2, D6), pixel
data that does not match its transfer syntax (F5) and an RT Dose holding DVHs only (D11).

Expected values are read from the files with pydicom (stored values x DoseGridScaling, ROIVolume)
or are closed-form areas, never taken from rtqa's output.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import ExplicitVRLittleEndian

from rtqa.cli import cli
from rtqa.dicom.common import make_uid
from rtqa.dicom.dose import read_dose
from rtqa.dicom.scan import scan
from rtqa.dicom.structures import read_structure_set
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.structures import rings_at, write_structure_set
from rtqa.errors import DicomError
from rtqa.model import Level, Roi, StructureSet

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
OTHER_FRAME = make_uid("edge-other-frame")


def copy_case(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(SAMPLES / name, target)
    return target


def edit(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def check_json(folder: Path, *options: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        cli, ["check", str(folder), "--format", "json", *options], catch_exceptions=False
    )
    return result.exit_code, json.loads(result.output)


def roi_number(ds: pydicom.Dataset, name: str) -> int:
    return next(int(i.ROINumber) for i in ds.StructureSetROISequence if i.ROIName == name)


def contours_of(ds: pydicom.Dataset, number: int) -> pydicom.Dataset:
    return next(i for i in ds.ROIContourSequence if int(i.ReferencedROINumber) == number)


def peak_gy(path: Path) -> float:
    """Dose maximum straight from the file: largest stored value x DoseGridScaling."""
    ds = pydicom.dcmread(path)
    return float(ds.pixel_array.max()) * float(ds.DoseGridScaling)


# --------------------------------------------------------------------------------------------
# L10: an ROI drawn in another frame of reference
# --------------------------------------------------------------------------------------------


def square(half: float) -> np.ndarray:
    return np.array([(-half, -half), (half, -half), (half, half), (-half, half)])


def test_roi_in_another_frame_is_refused_and_its_neighbour_kept(tmp_path):
    frame = make_uid("edge-frame")
    rings = {
        1: rings_at("CLOSED_PLANAR", 0.0, square(5)),
        2: rings_at("CLOSED_PLANAR", 0.0, square(3)),
    }
    ss = StructureSet(
        "", make_uid("edge-ss"), "EDGE", frame, (Roi(1, "A", "ORGAN"), Roi(2, "B", "ORGAN"))
    )
    header = Header("RTQA-EDGE", "Edge^Frames", make_uid("edge-study"), datetime(2024, 4, 1, 12))
    path = write_structure_set(
        ss, tmp_path / "RS.dcm", header, series_instance_uid=make_uid("edge-series"),
        referenced_frame_uid=frame, referenced_series_uid=make_uid("edge-ct"), raw_contours=rings,
    )  # fmt: skip
    edit(
        path,
        lambda ds: setattr(
            ds.StructureSetROISequence[1], "ReferencedFrameOfReferenceUID", OTHER_FRAME
        ),
    )
    read = read_structure_set(str(path))
    kept, refused = read.roi(1), read.roi(2)
    assert len(kept.planes) == 1
    assert kept.planes[0].polygons[0].exterior.tolist() == square(5).tolist()  # 10 x 10 mm square
    assert refused.is_empty and refused.frame_of_reference_uid == OTHER_FRAME
    (note,) = [n for n in refused.notes if n.level is Level.ERROR]
    assert OTHER_FRAME in note.message and frame in note.message
    assert note.attribute == "ReferencedFrameOfReferenceUID (3006,0024)"


def test_roi_in_another_frame_gives_no_numbers_in_check(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rs = folder / "RS.BONE1FX.dcm"

    def other_frame(ds):
        item = next(i for i in ds.StructureSetROISequence if i.ROIName == "Bowel_Small")
        item.ReferencedFrameOfReferenceUID = OTHER_FRAME

    edit(rs, other_frame)
    _, data = check_json(folder, "--protocol", "tg101")
    assert not [f for f in data["findings"] if f["roi"] == "Bowel_Small" and f["value"] is not None]
    errors = [n for n in data["notes"] if n["level"] == "error"]
    assert [n["path"] for n in errors] == [str(rs)]
    assert errors[0]["message"].startswith("ROI 5 'Bowel_Small': drawn in frame of reference")


# --------------------------------------------------------------------------------------------
# S2, S3: what the structure set reader drops reaches the check report
# --------------------------------------------------------------------------------------------


def test_empty_roi_and_dropped_contour_reach_the_check_notes(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rs = folder / "RS.BONE1FX.dcm"
    dropped_z: list[float] = []

    def damage(ds):
        del contours_of(ds, roi_number(ds, "Rectum")).ContourSequence
        bowel = contours_of(ds, roi_number(ds, "Bowel_Small")).ContourSequence[0]
        dropped_z.append(float(bowel.ContourData[2]))
        bowel.ContourData = [float(v) for v in bowel.ContourData[:6]]  # two points
        bowel.NumberOfContourPoints = 2

    edit(rs, damage)
    code, data = check_json(folder, "--protocol", "tg101")
    # Rectum is optional in TG-101 but has limits: its empty ROI is not "not contoured" (a pass)
    (rectum,) = [f for f in data["findings"] if f["group"] == "organ" and f["roi"] == "Rectum"]
    assert rectum["status"] == "not_evaluable" and rectum["match"] == "no usable contour"
    assert "defined with no contours (empty)" in rectum["message"]
    assert "limits for 1 fractions are not judged" in rectum["message"]
    assert code == 4
    shown = {n["message"]: n for n in data["notes"] if n["level"] == "warning"}
    assert shown["ROI 6 'Rectum': defined with no contours (empty)"]["path"] == str(rs)
    dropped = f"ROI 5 'Bowel_Small' at z {dropped_z[0]:g} mm, contour 1: closed contour with 2"
    assert any(m.startswith(dropped) and m.endswith("is not a polygon: dropped") for m in shown)


# --------------------------------------------------------------------------------------------
# S8: planes of one ROI closer than any slice spacing
# --------------------------------------------------------------------------------------------


def test_planes_of_one_roi_0_03_mm_apart_are_noted(tmp_path):
    frame = make_uid("edge-frame")
    rings = rings_at("CLOSED_PLANAR", 5.0, square(5)) + rings_at("CLOSED_PLANAR", 5.03, square(2))
    ss = StructureSet("", make_uid("edge-ss2"), "EDGE", frame, (Roi(1, "Ring", "ORGAN"),))
    header = Header("RTQA-EDGE", "Edge^Planes", make_uid("edge-study"), datetime(2024, 4, 1, 12))
    path = write_structure_set(
        ss, tmp_path / "RS.dcm", header, series_instance_uid=make_uid("edge-series"),
        referenced_frame_uid=frame, referenced_series_uid=make_uid("edge-ct"),
        raw_contours={1: rings},
    )  # fmt: skip
    roi = read_structure_set(str(path)).roi(1)
    assert [p.z_mm for p in roi.planes] == [5.0, 5.03]
    (note,) = [n for n in roi.notes if n.level is Level.WARNING]
    assert note.message.startswith(
        "ROI 1 'Ring': contour planes at z 5 and 5.03 mm are only 0.03 mm apart"
    )


# --------------------------------------------------------------------------------------------
# D2, D6: a dose maximum the plan's prescription cannot produce
# --------------------------------------------------------------------------------------------


def scaled_case(tmp_path: Path, name: str, factor: float) -> tuple[Path, Path]:
    folder = copy_case(tmp_path, name)
    rd = next(folder.glob("RD.*.dcm"))
    edit(rd, lambda ds: setattr(ds, "DoseGridScaling", float(ds.DoseGridScaling) * factor))
    return folder, rd


def dose_warnings(folder: Path) -> list:
    (case,) = scan(folder).cases
    return [n for n in case.notes if n.message.startswith("dose maximum")]


def test_one_fraction_dose_under_a_course_label_is_named(tmp_path):
    folder, rd = scaled_case(tmp_path, "lung_5fx", 1 / 5)  # 50 Gy in 5 fractions
    peak = peak_gy(rd)
    assert 0.9 * 10 <= peak < 0.9 * 50  # one fraction's dose: near 10 Gy, far below 50 Gy
    (note,) = dose_warnings(folder)
    assert note.level is Level.WARNING and note.path == str(rd)
    assert note.message.startswith(
        f"dose maximum {peak:.4g} Gy is below 90% of the prescription 50 Gy; it matches one "
        "fraction (50 Gy / 5 = 10 Gy)"
    )
    assert note.attribute == "DoseSummationType (3004,000A)"


def test_dose_scaling_far_too_large_or_small_is_named(tmp_path):
    folder, rd = scaled_case(tmp_path, "bone_1fx", 10.0)  # 20 Gy in 1 fraction
    peak = peak_gy(rd)
    (note,) = dose_warnings(folder)
    assert note.message == (
        f"dose maximum {peak:.4g} Gy is {peak / 20:.3g} x the prescription 20 Gy: check the "
        "dose scaling and units"
    )
    folder, rd = scaled_case(tmp_path / "low", "bone_1fx", 0.5)
    (note,) = dose_warnings(folder)
    assert note.message == (
        f"dose maximum {peak_gy(rd):.4g} Gy is below 90% of the prescription 20 Gy; the numbers "
        "are reported as read"
    )


@pytest.mark.parametrize("name", ["bone_1fx", "lung_5fx", "spine_prior"])
def test_sample_doses_agree_with_their_prescriptions(name):
    for case in scan(SAMPLES / name).cases:
        rx = max(p.total_gy for p in case.plan.prescriptions)
        peak = max(peak_gy(Path(p)) for p in case.dose.paths)
        assert 0.9 * rx <= peak <= 3 * rx
        assert not [n for n in case.notes if n.message.startswith("dose maximum")]


# --------------------------------------------------------------------------------------------
# F5: pixel data that does not match the transfer syntax; D11: an RT Dose with DVHs only
# --------------------------------------------------------------------------------------------


def test_native_pixels_under_a_compressed_syntax(tmp_path):
    rd = copy_case(tmp_path, "bone_1fx") / "RD.BONE1FX.dcm"
    ds = pydicom.dcmread(rd)
    ds.decompress()
    ds.save_as(rd)
    native = rd.read_bytes()
    explicit = ExplicitVRLittleEndian.encode("ascii") + b"\x00"
    assert native.count(explicit) == 1
    rd.write_bytes(native.replace(explicit, b"1.2.840.10008.1.2.5\x00"))  # RLE Lossless
    size = ds.Rows * ds.Columns * ds.NumberOfFrames * ds.BitsAllocated // 8
    with pytest.raises(DicomError) as err:
        read_dose(str(rd))
    assert err.value.reason == (
        "pixel data does not match transfer syntax: RLE Lossless (1.2.840.10008.1.2.5) is "
        f"compressed but PixelData is not encapsulated ({size} bytes; uncompressed values "
        f"would be {size} bytes)"
    )


def test_encapsulated_pixels_under_a_native_syntax(tmp_path):
    rd = copy_case(tmp_path, "bone_1fx") / "RD.BONE1FX.dcm"
    ds = pydicom.dcmread(rd)
    assert ds.file_meta.TransferSyntaxUID.is_compressed  # the sample is RLE Lossless
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds["PixelData"].is_undefined_length = False
    ds.save_as(rd)
    with pytest.raises(DicomError) as err:
        read_dose(str(rd))
    assert err.value.reason == (
        "pixel data does not match transfer syntax: Explicit VR Little Endian is uncompressed "
        "but PixelData holds encapsulated (compressed) fragments"
    )
    assert err.value.attribute == "TransferSyntaxUID (0002,0010)"


def test_dose_with_dvhs_only_is_not_evaluated(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rd = folder / "RD.BONE1FX.dcm"

    def strip(ds):
        for keyword in ("PixelData", "GridFrameOffsetVector", "FrameIncrementPointer"):
            del ds[keyword]
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        roi = pydicom.Dataset()
        roi.ReferencedROINumber = 2
        dvh = pydicom.Dataset()
        dvh.DVHReferencedROISequence = [roi]
        dvh.DVHType, dvh.DoseUnits, dvh.DoseType = "CUMULATIVE", "GY", "PHYSICAL"
        dvh.DVHDoseScaling, dvh.DVHVolumeUnits, dvh.DVHNumberOfBins = 1.0, "CM3", 2
        dvh.DVHData = [10.0, 11.5, 10.0, 5.0]
        ds.DVHSequence = [dvh]

    edit(rd, strip)
    code, data = check_json(folder, "--protocol", "tg101")
    assert code == 3
    (note,) = [n for n in data["notes"] if n["path"] == str(rd)]
    assert note["level"] == "error" and note["attribute"] == "PixelData (7FE0,0010)"
    assert note["message"] == (
        "dose not used: RT Dose without a dose grid (DVH only): no dose to evaluate"
    )
    # rtqa dvh names the file and the reason, not only "no structure set with a dose"
    result = CliRunner().invoke(cli, ["dvh", str(folder)])
    assert result.exit_code == 3
    assert "no structure set with a dose was found" in result.stderr
    assert f"{rd}: dose not used: RT Dose without a dose grid (DVH only)" in result.stderr


def test_info_lists_an_roi_note_once_under_its_roi(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")

    def other_frame(ds):
        item = next(i for i in ds.StructureSetROISequence if i.ROIName == "Rectum")
        item.ReferencedFrameOfReferenceUID = OTHER_FRAME

    edit(folder / "RS.BONE1FX.dcm", other_frame)
    result = CliRunner().invoke(cli, ["info", str(folder), "--format", "json"])
    (case,) = json.loads(result.output)["cases"]
    rectum = next(r for r in case["structure_set"]["rois"] if r["name"] == "Rectum")
    assert rectum["empty"] and [n["level"] for n in rectum["notes"]] == ["error"]
    assert rectum["notes"][0] not in case["notes"]
