"""A slice missing from the images (every ROI skips one plane) is bridged, not taken as a gap
between parts; a plane the planner left out while the image has it stays a gap.

The cases are the spine_3fx sample (2.5 mm planes, z -70..70 mm, PTV z -12.5..12.5 mm) with the
contours at z = 2.5 mm removed, with and without the CT slice there. Truth for the bridged
volume: the slab model of the remaining planes, each plane's slab reaching halfway to its
neighbour (the PTV's planes at 0 and 5 mm each take 2.5 mm of the missing slab).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import shapely
from click.testing import CliRunner
from test_beyond_grid import ngon

from rtqa.cli import cli
from rtqa.dicom.plane_bridges import bridge_by_images, bridge_by_structure_set
from rtqa.geometry.slabs import slab_stack
from rtqa.model import ContourPlane, PlanarPolygon, Roi

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
DROPPED_Z = 2.5


def _drop_plane(rs_path: Path, z: float, names: set[str] | None = None) -> None:
    """Remove the contours at ``z`` of the ROIs ``names`` (every ROI when None)."""
    ds = pydicom.dcmread(rs_path)
    numbers = {
        int(item.ROINumber)
        for item in ds.StructureSetROISequence
        if names is None or item.ROIName in names
    }
    for rc in ds.ROIContourSequence:
        if int(rc.ReferencedROINumber) in numbers:
            kept = [c for c in rc.ContourSequence if abs(float(c.ContourData[2]) - z) > 1e-3]
            rc.ContourSequence = pydicom.Sequence(kept)
    ds.save_as(rs_path)


def _drop_ct(case: Path, z: float) -> None:
    for path in case.glob("CT*.dcm"):
        if abs(float(pydicom.dcmread(path).ImagePositionPatient[2]) - z) < 1e-3:
            path.unlink()
            return
    raise AssertionError(f"no CT slice at z {z}")


def _ptv_plane_areas_mm2(case: Path) -> dict[float, float]:
    ds = pydicom.dcmread(next(case.glob("RS*.dcm")))
    (number,) = [int(i.ROINumber) for i in ds.StructureSetROISequence if i.ROIName == "PTV_30Gy"]
    (rc,) = [r for r in ds.ROIContourSequence if int(r.ReferencedROINumber) == number]
    areas: dict[float, float] = {}
    for c in rc.ContourSequence:
        pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
        z = round(float(pts[0, 2]), 3)
        areas[z] = areas.get(z, 0.0) + shapely.Polygon(pts[:, :2]).area
    return areas


def _dvh_json(case: Path) -> dict:
    result = CliRunner().invoke(cli, ["dvh", str(case), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _volume(data: dict, name: str) -> float:
    (roi,) = [r for r in data["rois"] if r["roi"] == name]
    return roi["volume_cc"]


@pytest.fixture()
def spine(tmp_path) -> Path:
    case = tmp_path / "spine_3fx"
    shutil.copytree(SAMPLES / "spine_3fx", case, ignore=shutil.ignore_patterns("RT.*"))
    return case


def _bridged_truth_cc(areas: dict[float, float]) -> float:
    """The slab model of the PTV's planes without z = 2.5 mm, bridged: every plane 2.5 mm thick
    except the two beside the missing one (3.75 mm each)."""
    thickness = {z: 2.5 for z in areas}
    thickness[0.0] = thickness[5.0] = 3.75
    return sum(a * thickness[z] for z, a in areas.items() if z != DROPPED_Z) / 1000.0


@pytest.mark.parametrize("with_ct", [True, False])
def test_a_slice_missing_from_the_images_is_bridged(spine, with_ct):
    areas = _ptv_plane_areas_mm2(spine)
    _drop_plane(next(spine.glob("RS*.dcm")), DROPPED_Z)
    if with_ct:
        _drop_ct(spine, DROPPED_Z)
    else:
        for path in spine.glob("CT*.dcm"):
            path.unlink()
    data = _dvh_json(spine)
    truth = _bridged_truth_cc(areas)
    split = sum(a for z, a in areas.items() if z != DROPPED_Z) * 2.5 / 1000.0
    # taken as a gap, each part's end plane is capped by half its other step: 9 % short
    assert split < 0.92 * truth
    assert _volume(data, "PTV_30Gy") == pytest.approx(truth, rel=1e-9)
    source = "image series" if with_ct else "contour planes of every ROI"
    (note,) = [w for w in data["warnings"] if "no image plane between z 0 and 5 mm" in w]
    assert source in note
    for name in ("Body", "PTV_30Gy", "GTV", "SpinalCord", "Esophagus"):
        assert f"'{name}'" in note


def test_a_plane_left_out_on_an_existing_image_slice_stays_a_gap(spine):
    areas = _ptv_plane_areas_mm2(spine)
    _drop_plane(next(spine.glob("RS*.dcm")), DROPPED_Z, {"PTV_30Gy"})
    data = _dvh_json(spine)
    # two parts, each end plane capped by half its neighbouring step: every plane 2.5 mm
    truth = sum(a for z, a in areas.items() if z != DROPPED_Z) * 2.5 / 1000.0
    assert _volume(data, "PTV_30Gy") == pytest.approx(truth, rel=1e-9)
    assert not [w for w in data["warnings"] if "no image plane between" in w]
    # a target left out of an image slice inside it: said (a slice skipped while contouring)
    (note,) = [w for w in data["warnings"] if "target ROI 'PTV_30Gy'" in w]
    assert "no contour on an image plane between its planes (z 0 to 5 mm)" in note


def _disc_roi(name: str, zs, number: int) -> Roi:
    ring = ngon(0.0, 0.0, r=10.0, n=64)
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(ring),), ring_count=1) for z in zs)
    return Roi(number=number, name=name, planes=planes)


def test_structure_set_evidence_needs_another_roi_across_the_step():
    # one ROI alone with a wide step: nothing tells, it stays a gap (reported as unconfirmed)
    alone = _disc_roi("Lesions", [0, 2.5, 5, 10, 12.5], 1)
    bridge_by_structure_set([alone])
    assert alone.bridged_steps_mm == () and alone.confirmed_gaps_mm == ()
    assert slab_stack(alone).gaps == 1
    # a second ROI stepping across the same two planes: a step of the images, bridged
    other = _disc_roi("Body", [-5, -2.5, 0, 2.5, 5, 10, 12.5, 15], 2)
    bridge_by_structure_set([alone, other])
    assert alone.bridged_steps_mm == ((5.0, 10.0),)
    assert slab_stack(alone).gaps == 0
    # a third ROI drawn at 7.5 mm: an image plane lies in the step, a confirmed gap
    inside = _disc_roi("Cord", [7.5, 10], 3)
    bridge_by_structure_set([alone, other, inside])
    assert alone.bridged_steps_mm == () and alone.confirmed_gaps_mm == ((5.0, 10.0),)
    assert slab_stack(alone).gaps == 1


def test_image_slices_decide_over_the_structure_set():
    alone = _disc_roi("Lesions", [0, 2.5, 5, 10, 12.5], 1)
    bridge_by_images([alone], np.arange(-10, 20.1, 2.5))  # CT has 7.5 mm: a real gap
    assert alone.confirmed_gaps_mm == ((5.0, 10.0),) and slab_stack(alone).gaps == 1
    bridge_by_images([alone], [0, 2.5, 5, 10, 12.5])  # CT lacks 7.5 mm: bridged
    assert alone.bridged_steps_mm == ((5.0, 10.0),)
    stack = slab_stack(alone)
    assert stack.gaps == 0
    # each plane reaches halfway: 5 and 10 mm take 2.5 mm of the 5 mm step each
    thickness_mm = 2.5 + 2.5 + 3.75 + 3.75 + 2.5
    assert stack.volume_cc == pytest.approx(stack.areas_mm2[0] * thickness_mm / 1000.0)


def test_uneven_image_spacing_is_reported(spine):
    from rtqa.dicom.scan import scan

    _drop_ct(spine, DROPPED_Z)
    notes = [n.message for n in scan(str(spine)).notes if "uneven slice spacing" in n.message]
    assert len(notes) == 1 and "steps from 2.5 to 5 mm (median 2.5 mm)" in notes[0]
    # the sample as written: even, nothing said
    assert not [n for n in scan(str(SAMPLES / "spine_3fx")).notes if "uneven" in n.message]


def test_slice_location_is_never_taken_for_the_slice_position(spine):
    """S13: SliceLocation of the opposite sign to ImagePositionPatient (a writer that flipped
    it); the image at z = -2.5 mm claims SliceLocation +2.5, inside the missing step. The step is
    still bridged by the images' positions: SliceLocation is not read."""
    areas = _ptv_plane_areas_mm2(spine)
    _drop_plane(next(spine.glob("RS*.dcm")), DROPPED_Z)
    _drop_ct(spine, DROPPED_Z)
    flipped = 0
    for path in spine.glob("CT*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SliceLocation = -float(ds.ImagePositionPatient[2])
        ds.save_as(path)
        flipped += float(ds.SliceLocation) == DROPPED_Z
    assert flipped == 1
    data = _dvh_json(spine)
    assert _volume(data, "PTV_30Gy") == pytest.approx(_bridged_truth_cc(areas), rel=1e-9)
    (note,) = [w for w in data["warnings"] if "no image plane between z 0 and 5 mm" in w]
    assert "image series" in note
