"""Edge cases of the DICOM-RT notes probed end to end on copies of the sample cases: an ROI in
another frame of reference (L10), ROI warnings reaching the reports (S2, S3), planes of one ROI
closer than any CT slice spacing (S8), a dose far from the plan's prescription (D2, D6), pixel
data that does not match its transfer syntax (F5), an RT Dose holding DVHs only (D11), an ROI
contoured on one plane (S11), referenced CT images that are absent (L3), a referenced CT in
another frame of reference than its structure set (L11), DS values that are not finite numbers
('nan', 'inf') in a prescription, planned or delivered MU and ROI volume, and an
ImagePositionPatient too large to place voxels (F9), and a fraction count beyond any course (P4).

Rows covered elsewhere: G2, G3, G8 in test_dicom_dose.py (the eight orientations); G5, G6, G7
in test_dvh_structure.py and test_geometry.py (planes off the dose frames, a structure partly
outside the grid) and test_plan_rules.py (grid coverage); G9, G10 in test_dose_sanity.py
(a misplaced or transposed dose); G11 in test_transform.py (resampling by patient
coordinates); D3, D4, F6 in test_dicom_dose.py and test_dicom_fast_read.py (unsigned, 32-bit,
big endian, short or long pixel data); D9, D12 in test_geometry.py, test_dvh_structure.py,
test_geometry_interpolation.py and test_geometry_sampling_fast.py; S4, S5, S6, S7 in
test_dicom_structures.py; L5, L6, L8 in test_scan.py; P3, P4, P5 in test_dicom_plan.py; P6 in
test_delivery_mu.py; F2 in test_scan.py; F8 in test_dicom_fast_read.py and
test_dicom_structures.py (implicit VR); S10, S13 in test_plane_bridges.py; P9 in
test_control_points.py.

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
    assert note.message == (
        f"dose maximum {peak:.4g} Gy = {2 * peak:.4g} % of the prescription 50 Gy, outside "
        "90-300 %: it matches one fraction (50 Gy / 5 = 10 Gy): the file may hold a single "
        "fraction's dose; the numbers are reported as read"
    )
    assert note.attribute == "DoseSummationType (3004,000A)"


def test_dose_scaling_far_too_large_or_small_is_named(tmp_path):
    folder, rd = scaled_case(tmp_path, "bone_1fx", 10.0)  # 20 Gy in 1 fraction
    peak = peak_gy(rd)
    (note,) = dose_warnings(folder)
    assert note.message == (
        f"dose maximum {peak:.4g} Gy = {5 * peak:.4g} % of the prescription 20 Gy, outside "
        "90-300 %: check the dose scaling and units, and that the dose is the plan's total dose; "
        "the numbers are reported as read"
    )
    assert note.attribute == "DoseGridScaling (3004,000E)"
    folder, rd = scaled_case(tmp_path / "low", "bone_1fx", 0.5)
    (note,) = dose_warnings(folder)
    assert note.message.startswith(
        f"dose maximum {peak_gy(rd):.4g} Gy = {5 * peak_gy(rd):.4g} % of the prescription 20 Gy, "
        "outside 90-300 %: check the dose scaling"
    )
    # cGy stored as Gy: a hundredfold dose is named as such
    folder, rd = scaled_case(tmp_path / "cgy", "bone_1fx", 100.0)
    (note,) = dose_warnings(folder)
    assert "divided by 100 it would be plausible: cGy stored as Gy?" in note.message


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


# --------------------------------------------------------------------------------------------
# S11: an ROI contoured on a single plane
# --------------------------------------------------------------------------------------------


def shoelace_mm2(contour_data) -> float:
    xy = np.asarray([float(v) for v in contour_data]).reshape(-1, 3)[:, :2]
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_one_plane_gtv_gets_a_stated_conventional_volume(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rs = folder / "RS.BONE1FX.dcm"
    kept = []

    def one_plane(ds):
        gtv = contours_of(ds, roi_number(ds, "GTV"))
        gtv.ContourSequence = [c for c in gtv.ContourSequence if float(c.ContourData[2]) == 0.0]
        kept.extend(gtv.ContourSequence)

    edit(rs, one_plane)
    (contour,) = kept
    # The GTV is a sphere of 3.054 cc (radius 9 mm) whose rings have exactly the area of the
    # section (sample_data/README.md): at its centre plane pi x 9^2 = 254.47 mm^2.
    area = shoelace_mm2(contour.ContourData)
    assert area == pytest.approx(np.pi * 9**2, rel=1e-6)
    spacing = 2.5  # every sample contour plane lies on z = k x 2.5 mm (sample_data/README.md)
    message = (
        f"ROI 3 'GTV': closed contours on a single plane (z 0 mm, area {area:.6g} mm^2): its "
        "thickness is not contoured, so its volume is a convention, not a measurement: with the "
        "structure set's plane spacing of 2.5 mm (the median step between the planes of its "
        "ROIs) as slab thickness (z 0 +/- 1.25 mm), each mm^2 of contour counts as 2.5 mm^3: "
        f"{area:.6g} mm^2 x 2.5 mm = {area * spacing / 1000:.6g} cc; rtqa gives it this "
        "thickness wherever it computes its volume or dose: its DVH and every figure of it rest "
        "on this convention"
    )
    result = CliRunner().invoke(cli, ["dvh", str(folder), "--format", "json"])
    data = json.loads(result.output)
    (gtv,) = [r for r in data["rois"] if r["roi"] == "GTV"]
    assert gtv["volume_cc"] == pytest.approx(area * spacing / 1000, rel=1e-9)
    assert f"warning: {rs}: {message} [ContourData (3006,0050)]" in data["warnings"]
    _, report = check_json(folder, "--protocol", "tg101")
    (note,) = [n for n in report["notes"] if "single plane" in n["message"]]
    assert note["level"] == "warning" and note["path"] == str(rs)
    assert note["message"] == message


# --------------------------------------------------------------------------------------------
# L3: referenced CT images absent; L11: the referenced CT in another frame of reference
# --------------------------------------------------------------------------------------------


def ct_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("CT.*.dcm"), key=lambda p: int(p.name.split(".")[1]))


def image_item(sop_instance_uid: str) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def reference_ct_images(folder: Path, extra: str | None = None) -> tuple[str, list[str]]:
    """List every CT image of the folder in the structure set's RTReferencedSeriesSequence, and
    ``extra`` under the GTV's first contour; the CT series UID and the images' UIDs."""
    cts = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_files(folder)]
    image_uids = [str(ct.SOPInstanceUID) for ct in cts]

    def add(ds):
        frame = ds.ReferencedFrameOfReferenceSequence[0]
        series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        series.ContourImageSequence = [image_item(uid) for uid in image_uids]
        if extra:
            gtv = contours_of(ds, roi_number(ds, "GTV"))
            gtv.ContourSequence[0].ContourImageSequence = [image_item(extra)]

    edit(folder / "RS.SPINE3FX.dcm", add)
    return str(cts[0].SeriesInstanceUID), image_uids


def ct_notes(folder: Path) -> list:
    (case,) = scan(folder).cases
    return [n for n in case.notes if "CT" in n.message]


def test_some_referenced_ct_images_absent(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    absent = make_uid("edge-absent-ct")
    series, image_uids = reference_ct_images(folder, extra=absent)
    assert len(image_uids) == 57  # sample_data/README.md: 57 CT slices
    for path in ct_files(folder)[:3]:
        path.unlink()
    (note,) = ct_notes(folder)
    assert note.level is Level.WARNING and note.path == str(folder / "RS.SPINE3FX.dcm")
    assert note.message == (  # 3 slices deleted + 1 image only the GTV's contour names, of 58
        f"referenced CT missing: 4 of 58 images (series {series}); nothing rtqa computes needs "
        "the CT (DVHs use the contours and the dose grid)"
    )
    (case,) = scan(folder).cases
    assert len(case.images.slice_positions_mm) == 54


def test_all_referenced_ct_absent_keeps_the_dvhs(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    series, _ = reference_ct_images(folder)
    for path in ct_files(folder):
        path.unlink()
    code, data = check_json(folder, "--protocol", "nrg_br002")
    assert code == 0 and data["verdict"] == "pass"  # spine_3fx: pass (NRG-BR002), README
    (note,) = [n for n in data["notes"] if "referenced CT" in n["message"]]
    assert note["level"] == "info"  # no image at all in the input: the RT objects alone
    assert note["message"] == (
        f"referenced CT missing: 57 of 57 images (series {series}); nothing rtqa computes needs "
        "the CT (DVHs use the contours and the dose grid); skipped: the check that the CT shares "
        "the structure set's frame of reference"
    )
    assert [f["value"] for f in data["findings"] if f["group"] == "target"]
    assert all(f["value"] is not None for f in data["findings"] if f["group"] == "target")


def test_referenced_series_absent_and_another_of_the_frame_linked(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    named = make_uid("edge-named-series")
    actual = str(pydicom.dcmread(ct_files(folder)[0], stop_before_pixels=True).SeriesInstanceUID)

    def rename(ds):
        frame = ds.ReferencedFrameOfReferenceSequence[0]
        frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID = named

    edit(folder / "RS.SPINE3FX.dcm", rename)
    (case,) = scan(folder).cases
    assert case.images.series_instance_uid == actual
    (note,) = ct_notes(folder)
    assert note.level is Level.WARNING
    assert note.message == (
        f"referenced CT missing: series {named} (the structure set lists none of its images); "
        "nothing rtqa computes needs the CT (DVHs use the contours and the dose grid); image "
        f"series {actual} of the case's frame of reference is linked instead"
    )


def test_referenced_ct_in_another_frame_is_an_error_and_not_adopted(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rs = pydicom.dcmread(folder / "RS.SPINE3FX.dcm")
    ss_frame = str(rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    series = ""
    for path in ct_files(folder):
        edit(path, lambda ds: setattr(ds, "FrameOfReferenceUID", OTHER_FRAME))
        series = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    (case,) = scan(folder).cases
    assert case.images is None  # the CT is not used with the structures
    assert case.structure_set.frame_of_reference_uid == ss_frame  # not replaced by the CT's
    code, data = check_json(folder, "--protocol", "nrg_br002")
    # the DVHs stand (every judgement of spine_3fx passes), but an input in error is never a
    # plain pass: not fully evaluable (README)
    assert code == 4 and data["verdict"] == "not_evaluable"
    judged = [f for f in data["findings"] if f["status"] not in ("pass", "info")]
    assert [f["rule"] for f in judged] == ["input_errors"]
    (error,) = [n for n in data["notes"] if n["level"] == "error"]
    assert error["path"] == str(folder / "RS.SPINE3FX.dcm")
    assert error["message"] == (
        f"the structure set's frame of reference {ss_frame} differs from that of the CT it "
        f"references (series {series}, frame {OTHER_FRAME}): the structure set's frame is kept, "
        "not replaced by the CT's (it links the structures to the dose, and DVHs are computed "
        "in it); the CT is not used with these structures (it cannot be shown under them)"
    )


def test_structure_set_with_a_new_frame_does_not_adopt_its_ct(tmp_path):
    # An autosegmentation written with a new frame of reference: plan, dose and CT keep theirs.
    folder = copy_case(tmp_path, "spine_3fx")
    rs = folder / "RS.SPINE3FX.dcm"
    ct_frame = str(
        pydicom.dcmread(ct_files(folder)[0], stop_before_pixels=True).FrameOfReferenceUID
    )

    def new_frame(ds):
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = OTHER_FRAME
        for item in ds.StructureSetROISequence:
            item.ReferencedFrameOfReferenceUID = OTHER_FRAME

    edit(rs, new_frame)
    (case,) = scan(folder).cases
    assert case.structure_set.frame_of_reference_uid == OTHER_FRAME
    assert case.images is None  # the CT of the plan's frame is not linked in its place
    errors = [n.message for n in case.notes if n.level is Level.ERROR]
    assert errors[0].startswith(
        f"the structure set's frame of reference {OTHER_FRAME} differs from that of the CT it "
        f"references (series "
    )
    assert f"frame {ct_frame}):" in errors[0]


# --------------------------------------------------------------------------------------------
# F9: values that are not finite numbers ('nan', 'inf' in a DS) are named and never used
# --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_f9_nan_prescription_dose_is_named_and_the_fraction_group_dose_used(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rp = folder / "RP.BONE1FX.dcm"
    edit(rp, lambda ds: setattr(ds.DoseReferenceSequence[0], "TargetPrescriptionDose", "nan"))
    ds = pydicom.dcmread(rp)
    group = ds.FractionGroupSequence[0].ReferencedDoseReferenceSequence[0]
    group_rx = float(group.TargetPrescriptionDose)  # 20 Gy, the same dose reference
    assert int(group.ReferencedDoseReferenceNumber) == int(
        ds.DoseReferenceSequence[0].DoseReferenceNumber
    )
    _, data = check_json(folder, "--protocol", "tg101")
    (rx,) = [f for f in data["findings"] if f["metric"] == "Rx"]
    assert rx["value"] == group_rx == 20.0
    assert "FractionGroupSequence (ReferencedDoseReferenceSequence)" in rx["message"]
    assert "nan" not in rx["message"]
    (note,) = [n for n in data["notes"] if "'nan'" in n["message"]]
    assert note["level"] == "warning" and note["path"] == str(rp)
    assert note["message"] == (
        "dose reference 1: TargetPrescriptionDose 'nan' is not a number: treated as absent"
    )
    assert note["attribute"] == "TargetPrescriptionDose (300A,0026)"


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_f9_infinite_planned_mu_is_not_a_tolerance_that_passes_everything(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rp = folder / "RP.SPINE3FX.dcm"

    def infinite(ds):
        ds.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset = "inf"

    edit(rp, infinite)
    ds = pydicom.dcmread(rp)
    beam = int(ds.FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber)
    name = next(b.BeamName for b in ds.BeamSequence if int(b.BeamNumber) == beam)
    code, data = check_json(folder, "--protocol", "nrg_br002")
    assert code == 4 and data["verdict"] == "not_evaluable"  # spine_3fx alone: pass (README)
    (unknown,) = [f for f in data["findings"] if f["metric"] == "planned MU"]
    assert unknown["status"] == "not_evaluable"
    assert unknown["message"].startswith(
        f"planned MU unknown, delivered MU not compared for beam {beam} '{name}'"
    )
    (note,) = [n for n in data["notes"] if "'inf'" in n["message"]]
    assert note["level"] == "warning" and note["path"] == str(rp)
    assert note["message"] == (
        f"fraction group 1 beam {beam}: BeamMeterset 'inf' is not a number: treated as absent"
    )


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_f9_nan_delivered_mu_and_roi_volume_are_named(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rt, rs = folder / "RT.SPINE3FX.fx1.dcm", folder / "RS.SPINE3FX.dcm"
    edit(rt, lambda ds: setattr(ds.TreatmentSessionBeamSequence[0], "DeliveredMeterset", "nan"))
    edit(rs, lambda ds: setattr(ds.StructureSetROISequence[1], "ROIVolume", "nan"))
    beam = int(pydicom.dcmread(rt).TreatmentSessionBeamSequence[0].ReferencedBeamNumber)
    roi = pydicom.dcmread(rs).StructureSetROISequence[1]
    code, data = check_json(folder, "--protocol", "nrg_br002")
    assert code == 4
    assert not [f for f in data["findings"] if "nan" in f["message"]]
    (delivered,) = [f for f in data["findings"] if f["status"] == "not_evaluable"]
    assert delivered["metric"] == "delivered MU"
    assert delivered["message"].startswith(f"no DeliveredMeterset for beam {beam} ")
    # no volume comparison against a NaN ROIVolume (the median dose on the PTV is another rule)
    assert not [
        f
        for f in data["findings"]
        if f["group"] == "integrity" and f["roi"] == roi.ROIName and f["rule"] != "dose_on_target"
    ]
    warnings = {n["message"]: n["path"] for n in data["notes"] if n["level"] == "warning"}
    assert warnings == {
        f"beam {beam}: DeliveredMeterset 'nan' is not a number: treated as absent": str(rt),
        f"ROI {roi.ROINumber} '{roi.ROIName}': ROIVolume 'nan' is not a number: treated as "
        "absent": str(rs),
    }


# --------------------------------------------------------------------------------------------
# P4: a fraction count out of range; F9: an ImagePositionPatient no voxel can be placed from
# --------------------------------------------------------------------------------------------


def test_p4_fraction_count_beyond_any_course_is_unknown_not_an_internal_error(tmp_path):
    folder = copy_case(tmp_path, "spine_3fx")
    rp = folder / "RP.SPINE3FX.dcm"
    edit(rp, lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", 99999999))
    code, data = check_json(folder, "--protocol", "nrg_br002")  # was an OverflowError, exit 5
    # the fraction count unknown: regimen and organ limits not evaluable, nothing deviates
    assert code == 4 and data["exit_code"] == 4
    (note,) = [n for n in data["notes"] if "NumberOfFractionsPlanned" in n["message"]]
    assert note["level"] == "warning" and note["path"] == str(rp)
    assert note["message"] == (
        "fraction group 1: NumberOfFractionsPlanned 99999999 is more than 1000; number of "
        "fractions unknown"
    )
    (fractions,) = [f for f in data["findings"] if f["rule"] == "fraction_count"]
    assert fractions["status"] == "not_evaluable" and fractions["value"] is None


def test_f9_position_too_large_to_place_voxels_is_named(tmp_path):
    folder = copy_case(tmp_path, "bone_1fx")
    rd = folder / "RD.BONE1FX.dcm"
    edit(rd, lambda ds: setattr(ds, "ImagePositionPatient", [1e300, 0.0, 0.0]))
    assert 1e300 + 2.5 == 1e300  # float64: the columns of the grid would all sit at one x
    code, data = check_json(folder, "--protocol", "tg101")  # was a ZeroDivisionError, exit 5
    assert code == 3
    (note,) = [n for n in data["notes"] if n["path"] == str(rd)]
    assert note["level"] == "error" and note["attribute"] == "ImagePositionPatient (0020,0032)"
    assert note["message"] == (
        "dose not used: the voxel positions along x reach 1e+300 mm, beyond 100 m of the origin: "
        "not positions in a patient"
    )
    result = CliRunner().invoke(cli, ["dvh", str(folder)])
    assert result.exit_code == 3 and "beyond 100 m of the origin" in result.stderr


def test_contours_that_cannot_be_attributed_are_never_a_pass(tmp_path):
    # two ROIs under one number: the contours of that number cannot be attributed (an error
    # note); what is judged stands, but the course is not a plain pass
    folder = copy_case(tmp_path, "spine_3fx")

    def share_number(ds):
        numbers = {str(r.ROIName): r.ROINumber for r in ds.StructureSetROISequence}
        for r in ds.StructureSetROISequence:
            if r.ROIName == "Esophagus":
                r.ROINumber = numbers["GTV"]

    edit(folder / "RS.SPINE3FX.dcm", share_number)
    code, data = check_json(folder, "--protocol", "nrg_br002")
    errors = [n for n in data["notes"] if n["level"] == "error"]
    assert errors and any("cannot be attributed" in n["message"] for n in errors)
    (finding,) = [f for f in data["findings"] if f["rule"] == "input_errors"]
    assert finding["status"] == "not_evaluable"
    assert finding["message"].startswith(f"{len(errors)} error(s) in the input: ")
    assert code == 4 and data["verdict"] == "not_evaluable"


def test_an_rt_dose_under_an_unknown_sop_class_is_named_not_skipped(tmp_path):
    # Modality RTDOSE, SOP Class UID changed: the file was read as an image slice and the case
    # reported 'missing: RT Dose' without naming it
    folder = copy_case(tmp_path, "spine_3fx")
    odd = "1.2.826.0.1.3680043.8.498.1"
    edit(folder / "RD.SPINE3FX.dcm", lambda ds: setattr(ds, "SOPClassUID", odd))
    want = (
        f"Modality RTDOSE but SOP Class UID {odd}, not RT Dose Storage "
        "(1.2.840.10008.5.1.4.1.1.481.2): not read"
    )
    code, data = check_json(folder, "--protocol", "nrg_br002")
    (note,) = [n for n in data["notes"] if n["level"] == "error"]
    assert (note["path"], note["message"]) == (str(folder / "RD.SPINE3FX.dcm"), want)
    assert code == 3
    result = CliRunner().invoke(cli, ["dvh", str(folder)])
    assert result.exit_code == 3
    assert f"{folder / 'RD.SPINE3FX.dcm'}: {want}" in result.output


def test_a_body_outline_drawn_but_unusable_is_an_input_error(tmp_path):
    # every Body contour cut to one point: the dose placement check could not run and the
    # course passed (exit 0); an organ whose contours are all degenerate stays a warning
    folder = copy_case(tmp_path, "spine_3fx")

    def degenerate(ds, name):
        number = roi_number(ds, name)
        (item,) = [c for c in ds.ROIContourSequence if c.ReferencedROINumber == number]
        for contour in item.ContourSequence:
            contour.ContourData = list(contour.ContourData)[:3]
            contour.NumberOfContourPoints = 1

    edit(folder / "RS.SPINE3FX.dcm", lambda ds: degenerate(ds, "Body"))
    code, data = check_json(folder, "--protocol", "nrg_br002")
    (error,) = [n for n in data["notes"] if n["level"] == "error"]
    assert error["message"] == (
        "ROI 1 'Body': no usable closed contour, no volume (the body outline: whether the dose "
        "lies in the patient cannot be checked)"
    )
    (placement,) = [f for f in data["findings"] if f["rule"] == "dose_placement"]
    assert placement["status"] == "info"
    assert code == 4 and [f["rule"] for f in data["findings"] if f["status"] != "pass" and
                          f["status"] != "info"] == ["input_errors"]  # fmt: skip
    edit(folder / "RS.SPINE3FX.dcm", lambda ds: degenerate(ds, "Esophagus"))
    rois = {r.name: r for r in scan(folder).cases[0].structure_set.rois}
    assert [n.level for n in rois["Esophagus"].notes][-1] is Level.WARNING
