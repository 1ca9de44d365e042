"""Rewritings of a case that describe the same patient must give the same numbers.

Each test rewrites a copy of a sample case's files with pydicom and compares ``rtqa dvh``'s JSON
(every ROI's volume and metrics) with the original's: contour rings written in the other
direction, from another start point, with the first point repeated at the end, contours and ROIs
listed in another order; the whole patient (contours and dose grid) moved by whole and by
fractions of dose voxels; the dose stored as other integers under another DoseGridScaling.
The contour values are rearranged as written (their decimal text kept), so nothing but the
rewriting itself changes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from rtqa.cli import cli

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
METRICS = ("D99%[Gy]", "D95%[Gy]", "D2%[Gy]", "Mean[Gy]", "Max[Gy]", "D0.03cc[Gy]", "V20Gy[cc]")
CONTOUR_DATA = 0x30060050


def _copy(case: str, tmp_path: Path) -> Path:
    dst = tmp_path / case
    shutil.copytree(SAMPLES / case, dst, ignore=shutil.ignore_patterns("CT.*", "RT.*"))
    return dst


def _dvh(case: Path) -> dict[str, tuple[float, dict[str, float | None]]]:
    args = ["dvh", str(case), "--format", "json"]
    for metric in METRICS:
        args += ["--metric", metric]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return {r["roi"]: (r["volume_cc"], r["metrics"]) for r in json.loads(result.output)["rois"]}


def _assert_same(before: dict, after: dict, rtol: float) -> None:
    assert sorted(after) == sorted(before)
    for roi, (volume, metrics) in before.items():
        assert after[roi][0] == pytest.approx(volume, rel=rtol), roi
        for metric, value in metrics.items():
            got = after[roi][1][metric]
            if value is None:
                assert got is None, (roi, metric)
            else:
                assert got == pytest.approx(value, rel=rtol, abs=1e-9), (roi, metric)


def _edit_contours(case: Path, points) -> None:
    """Rewrite every contour's ContourData: ``points`` maps its (n, 3) array of decimal
    strings, as written, to a new one."""
    (rs,) = case.glob("RS*.dcm")
    ds = pydicom.dcmread(rs)
    for item in ds.ROIContourSequence:
        for contour in item.get("ContourSequence") or []:
            raw = contour.get_item(CONTOUR_DATA).value.decode().strip(" \x00")
            text = np.array(raw.split("\\"), dtype=object).reshape(-1, 3)
            contour.ContourData = "\\".join(points(text).ravel())
    ds.save_as(rs)


@pytest.mark.parametrize("case", ["spine_3fx", "lung_5fx"])
def test_rings_rewritten_and_reordered_give_the_same_numbers(tmp_path, case):
    folder = _copy(case, tmp_path)
    before = _dvh(folder)

    def rewritten(text):
        text = np.roll(text[::-1], 3, axis=0)  # the other direction, another start point
        return np.vstack([text, text[:1]])  # the first point repeated at the end

    _edit_contours(folder, rewritten)
    (rs,) = folder.glob("RS*.dcm")
    ds = pydicom.dcmread(rs)
    for keyword in ("StructureSetROISequence", "ROIContourSequence", "RTROIObservationsSequence"):
        setattr(ds, keyword, pydicom.Sequence(list(getattr(ds, keyword))[::-1]))
    for item in ds.ROIContourSequence:
        item.ContourSequence = pydicom.Sequence(list(item.ContourSequence)[::-1])
    ds.save_as(rs)
    _assert_same(before, _dvh(folder), rtol=1e-12)


@pytest.mark.parametrize("shift", [(30.0, -45.0, 60.0), (0.5, 0.25, 1.25)])
def test_the_patient_moved_gives_the_same_numbers(tmp_path, shift):
    """Contours and dose grid moved together: by whole dose voxels (spine_3fx: 2.5 mm on every
    axis; 30, -45 and 60 mm are 12, 18 and 24 voxels) and by fractions of them."""
    folder = _copy("spine_3fx", tmp_path)
    for rp in folder.glob("RP*.dcm"):
        rp.unlink()  # the plan's isocentre and dose points are not moved
    before = _dvh(folder)
    sx, sy, sz = shift

    def moved(text):
        return np.array(
            [[format_number_as_ds(float(v) + s) for v, s in zip(row, shift, strict=True)]
             for row in text],
            dtype=object,
        )  # fmt: skip

    _edit_contours(folder, moved)
    (rd,) = folder.glob("RD*.dcm")
    ds = pydicom.dcmread(rd)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + sx, y + sy, z + sz]
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    if offsets[0] != 0:  # absolute frame positions (the first frame's z) move with the grid
        ds.GridFrameOffsetVector = [v + sz for v in offsets]
    ds.save_as(rd)
    _assert_same(before, _dvh(folder), rtol=1e-9)


def test_dose_stored_under_another_scaling_gives_the_same_numbers(tmp_path):
    folder = _copy("spine_3fx", tmp_path)
    before = _dvh(folder)
    (rd,) = folder.glob("RD*.dcm")
    ds = pydicom.dcmread(rd)
    stored = ds.pixel_array.astype(np.uint64)
    assert int(stored.max()) * 4 < 2**32
    ds.PixelData = (stored * 4).astype(np.uint32).tobytes()
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseGridScaling = float(ds.DoseGridScaling) / 4
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(rd)
    _assert_same(before, _dvh(folder), rtol=1e-12)
