"""Spatial Registration writer and reader: the direction convention, composition order and the
checks of section 7 of the DICOM edge-case notes (X1-X3)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import pytest

from rtqa.dicom.common import DEFORMABLE_REGISTRATION, make_uid
from rtqa.dicom.registration import read_registration
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.registration import write_registration
from rtqa.errors import DicomError
from rtqa.model import Level, Registration

HEADER = Header("RTQA-001", "Phantom^Spine", make_uid("study"), datetime(2024, 3, 1, 9, 30))
CURRENT = make_uid("frame", "current")
PRIOR = make_uid("frame", "prior")
OTHER = make_uid("frame", "other")


def rigid(angle_deg: float, translation) -> np.ndarray:
    """Rotation about +z by ``angle_deg`` then translation (mm)."""
    a = np.radians(angle_deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = translation
    return m


def write(tmp_path, matrices, *, own=CURRENT, types=None, chains=None, name="RE.dcm") -> str:
    reg = Registration("", make_uid("reg", name), own, matrices, types or {})
    path = tmp_path / name
    write_registration(reg, path, HEADER, series_instance_uid=make_uid("reg-series"), chains=chains)
    return str(path)


def point(matrix: np.ndarray, xyz) -> np.ndarray:
    return (matrix @ np.append(np.asarray(xyz, float), 1.0))[:3]


def test_item_matrix_maps_its_frame_into_the_registration_frame(tmp_path):
    # prior frame rotated 90 degrees about z and shifted 10 mm in x relative to the current frame
    path = write(tmp_path, {CURRENT: np.eye(4), PRIOR: rigid(90, (10, 0, 0))})
    reg = read_registration(path)
    assert reg.frame_of_reference_uid == CURRENT
    assert reg.links(CURRENT, PRIOR)
    # (1, 2, 3) in the prior frame: rotated to (-2, 1, 3), shifted to (8, 1, 3) in the current
    assert point(reg.matrix(PRIOR, CURRENT), (1, 2, 3)) == pytest.approx([8, 1, 3])
    assert point(reg.matrix(CURRENT, PRIOR), (8, 1, 3)) == pytest.approx([1, 2, 3])
    assert reg.matrix_types == {CURRENT: "RIGID", PRIOR: "RIGID"}
    assert reg.notes == ()


def test_registration_frame_is_identity_when_not_listed_and_pairs_compose(tmp_path):
    m_prior = rigid(90, (10, 0, 0))
    m_other = rigid(0, (0, 5, 0))
    reg = read_registration(write(tmp_path, {PRIOR: m_prior, OTHER: m_other}, own=CURRENT))
    assert np.array_equal(reg.matrices[CURRENT], np.eye(4))
    # prior (1,2,3) -> registered (8,1,3) -> other frame: subtract (0,5,0) -> (8,-4,3)
    assert point(reg.matrix(PRIOR, OTHER), (1, 2, 3)) == pytest.approx([8, -4, 3])


def test_several_matrices_of_one_item_apply_in_listed_order(tmp_path):
    first = rigid(0, (5, 0, 0))  # M1
    second = rigid(90, (0, 0, 0))  # M2
    path = write(tmp_path, {CURRENT: np.eye(4)}, chains={PRIOR: [first, second]})
    assert (
        len(
            pydicom.dcmread(path)
            .RegistrationSequence[1]
            .MatrixRegistrationSequence[0]
            .MatrixSequence
        )
        == 2
    )
    reg = read_registration(path)
    # M2 . M1 . (1,0,0): shift to (6,0,0), then rotate to (0,6,0); the other order gives (5,1,0)
    assert point(reg.matrix(PRIOR, CURRENT), (1, 0, 0)) == pytest.approx([0, 6, 0])


def test_matrix_is_written_row_major(tmp_path):
    path = write(tmp_path, {CURRENT: np.eye(4), PRIOR: rigid(0, (1, 2, 3))})
    values = pydicom.dcmread(path).RegistrationSequence[1].MatrixRegistrationSequence[0]
    written = [float(v) for v in values.MatrixSequence[0].FrameOfReferenceTransformationMatrix]
    assert written[3] == 1 and written[7] == 2 and written[11] == 3


def test_non_orthonormal_rigid_matrix_is_refused(tmp_path):
    skewed = rigid(0, (0, 0, 0))
    skewed[0, 1] = 0.01
    path = write(tmp_path, {CURRENT: np.eye(4), PRIOR: skewed})
    with pytest.raises(DicomError, match="RIGID matrix is not orthonormal") as info:
        read_registration(path)
    assert info.value.attribute == "FrameOfReferenceTransformationMatrix (3006,00C6)"
    assert info.value.path == path


def test_orthonormal_within_tolerance_is_accepted(tmp_path):
    nearly = rigid(30, (1, 2, 3))
    nearly[0, 0] += 2e-5
    reg = read_registration(write(tmp_path, {CURRENT: np.eye(4), PRIOR: nearly}))
    assert reg.matrices[PRIOR][0, 0] == pytest.approx(nearly[0, 0], abs=1e-12)


def test_reflection_is_not_rigid(tmp_path):
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(DicomError, match="determinant -1"):
        read_registration(write(tmp_path, {CURRENT: np.eye(4), PRIOR: mirror}))


def test_affine_is_applied_as_given_with_a_warning(tmp_path):
    scale = np.diag([1.1, 1.0, 1.0, 1.0])
    reg = read_registration(
        write(tmp_path, {CURRENT: np.eye(4), PRIOR: scale}, types={PRIOR: "AFFINE"})
    )
    assert reg.matrix_types[PRIOR] == "AFFINE"
    assert point(reg.matrix(PRIOR, CURRENT), (10, 0, 0)) == pytest.approx([11, 0, 0])
    (note,) = reg.notes
    assert note.level is Level.WARNING and note.message.startswith(
        f"AFFINE registration for frame {PRIOR}"
    )


def test_bad_last_row_and_deformable_class_refused(tmp_path):
    bad = np.eye(4)
    bad[3, 0] = 0.5
    with pytest.raises(DicomError, match=r"last matrix row is \[0.5, 0.0, 0.0, 1.0\]"):
        read_registration(
            write(tmp_path, {CURRENT: np.eye(4), PRIOR: bad}, types={PRIOR: "AFFINE"})
        )

    path = write(tmp_path, {CURRENT: np.eye(4)}, name="DRE.dcm")
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = DEFORMABLE_REGISTRATION
    ds.save_as(path)
    with pytest.raises(DicomError, match="deformable registration not supported"):
        read_registration(path)
