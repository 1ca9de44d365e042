"""Prior-course mapping, cumulative EQD2 and overlap measures against closed-form geometry."""

from datetime import datetime

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from rtqa.geometry.transform import (
    invert,
    map_points,
    rotation_matrix,
    translation_matrix,
    voxel_centres,
)
from rtqa.model import DoseGrid, Level, Registration
from rtqa.prior import (
    CourseDose,
    ReirradiationType,
    check_registration_direction,
    classify_reirradiation,
    cumulative_eqd2,
    dose_samples,
    dosed_by_both,
    effective_dose_grid,
    irradiated_overlap_cc,
    map_occupancy,
    map_prior_dose,
    prior_dose_in_target,
    registration_between,
    unknown_volume_cc,
    volume_overlap,
    voxel_volumes_cc,
)

CURRENT = "1.2.826.0.1.3680043.8.498.11"
PRIOR = "1.2.826.0.1.3680043.8.498.22"
OTHER = "1.2.826.0.1.3680043.8.498.33"
SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"


# --- phantoms and files -----------------------------------------------------------------------


def make_grid(x, y, z, frame=CURRENT, values=None):
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    if values is None:
        values = np.zeros((z.size, y.size, x.size))
    return DoseGrid(dose_gy=values, x_mm=x, y_mm=y, z_mm=z, frame_of_reference_uid=frame)


def sphere_occupancy(grid, centre, radius, sub=4):
    """Fraction of each (uniform) voxel inside a sphere, by sub x sub x sub point sampling."""
    dx = grid.x_mm[1] - grid.x_mm[0]
    dy = grid.y_mm[1] - grid.y_mm[0]
    dz = grid.z_mm[1] - grid.z_mm[0]
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    occ = np.zeros(grid.dose_gy.shape)
    zz, yy, xx = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    for ox in offsets:
        for oy in offsets:
            for oz in offsets:
                r2 = (
                    (xx + ox * dx - centre[0]) ** 2
                    + (yy + oy * dy - centre[1]) ** 2
                    + (zz + oz * dz - centre[2]) ** 2
                )
                occ += r2 <= radius**2
    return occ / sub**3


def sphere_cc(r):
    return 4.0 / 3.0 * np.pi * r**3 / 1000.0


def lens_cc(r1, r2, d):
    """Intersection volume (cc) of two spheres with radii r1, r2 (mm) and centres d mm apart."""
    return (
        np.pi
        * (r1 + r2 - d) ** 2
        * (d**2 + 2 * d * r2 - 3 * r2**2 + 2 * d * r1 + 6 * r1 * r2 - 3 * r1**2)
        / (12 * d)
        / 1000.0
    )


def cap_cc(r, h):
    """Volume (cc) of a spherical cap of height h (mm) of a sphere of radius r."""
    return np.pi * h**2 * (3 * r - h) / 3.0 / 1000.0


def write_reg_by_hand(path, own_frame, items):
    """A Spatial Registration written with pydicom alone: ``items`` maps frame UID -> matrix that
    takes points of that frame into ``own_frame`` (PS3.3 C.20.2), written row-major."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SPATIAL_REGISTRATION
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.99"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SPATIAL_REGISTRATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "REG"
    ds.PatientID = "PHANTOM"
    ds.FrameOfReferenceUID = own_frame
    seq = []
    for uid, matrix in items.items():
        entry = Dataset()
        entry.FrameOfReferenceTransformationMatrixType = "RIGID"
        entry.FrameOfReferenceTransformationMatrix = [
            f"{v:.10g}" for v in np.asarray(matrix).reshape(-1)
        ]
        mreg = Dataset()
        mreg.MatrixSequence = Sequence([entry])
        item = Dataset()
        item.FrameOfReferenceUID = uid
        item.MatrixRegistrationSequence = Sequence([mreg])
        seq.append(item)
    ds.RegistrationSequence = Sequence(seq)
    ds.save_as(path, enforce_file_format=True)
    return path


def read_reg_by_hand(path):
    """Registration from the file, parsed attribute by attribute (no rtqa reader)."""
    ds = pydicom.dcmread(path)
    matrices = {}
    for item in ds.RegistrationSequence:
        values = item.MatrixRegistrationSequence[0].MatrixSequence[0]
        matrix = np.array([float(v) for v in values.FrameOfReferenceTransformationMatrix])
        matrices[str(item.FrameOfReferenceUID)] = matrix.reshape(4, 4)
    return Registration(
        path=str(path),
        sop_instance_uid=str(ds.SOPInstanceUID),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID),
        matrices=matrices,
    )


# --- registration direction ------------------------------------------------------------------


def test_same_frame_is_the_identity():
    matrix, note = registration_between(CURRENT, CURRENT, [])
    np.testing.assert_array_equal(matrix, np.eye(4))
    assert note.level is Level.INFO


def test_missing_registration_names_both_frames():
    reg = Registration("r.dcm", "1.9", OTHER, {OTHER: np.eye(4), CURRENT: np.eye(4)})
    matrix, note = registration_between(PRIOR, CURRENT, [reg])
    assert matrix is None
    assert note.level is Level.WARNING
    assert PRIOR in note.message and CURRENT in note.message
    matrix, note = registration_between(None, CURRENT, [reg])
    assert matrix is None and CURRENT in note.message and "(missing)" in note.message


def test_direction_of_a_pydicom_written_registration(tmp_path):
    # the REG lives in the current frame; the prior item's matrix maps prior points into it:
    # a quarter turn about the z axis through (100, 50, 0), then a 7 mm shift along z
    prior_to_current = translation_matrix((0, 0, 7)) @ rotation_matrix((0, 0, 1), 90, (100, 50, 0))
    path = write_reg_by_hand(
        tmp_path / "RE.dcm", CURRENT, {CURRENT: np.eye(4), PRIOR: prior_to_current}
    )
    reg = read_reg_by_hand(path)
    matrix, note = registration_between(PRIOR, CURRENT, [reg])
    assert note.level is Level.INFO and reg.sop_instance_uid in note.message
    # prior point (120, 50, 10): offset (20, 0, 10) from the axis point -> (0, 20, 10) -> +7 z
    assert np.max(np.abs(map_points([120.0, 50.0, 10.0], matrix) - [100.0, 70.0, 17.0])) < 0.1
    # and the other way round
    back, _ = registration_between(CURRENT, PRIOR, [reg])
    assert np.max(np.abs(map_points([100.0, 70.0, 17.0], back) - [120.0, 50.0, 10.0])) < 0.1


def test_registration_in_a_third_frame_composes_both_items(tmp_path):
    # REG frame R: prior -> R shifts +10 mm in x; current -> R shifts +5 mm in y
    path = write_reg_by_hand(
        tmp_path / "RE.dcm",
        OTHER,
        {PRIOR: translation_matrix((10, 0, 0)), CURRENT: translation_matrix((0, 5, 0))},
    )
    matrix, _ = registration_between(PRIOR, CURRENT, [read_reg_by_hand(path)])
    # prior (0, 0, 0) is R (10, 0, 0), which is current (10, -5, 0)
    np.testing.assert_allclose(map_points([0.0, 0.0, 0.0], matrix), [10.0, -5.0, 0.0])


def test_project_writer_and_reader_keep_the_direction(tmp_path):
    from rtqa.dicom.registration import read_registration
    from rtqa.dicom.write.base import Header
    from rtqa.dicom.write.registration import write_registration

    m = translation_matrix((1, 2, 3)) @ rotation_matrix((1, 1, 1), 120, (0, 0, 0))
    reg = Registration("", "1.2.826.0.1.3680043.8.498.77", CURRENT, {CURRENT: np.eye(4), PRIOR: m})
    header = Header("PHANTOM", "Phantom^Prior", "1.2.826.0.1.3680043.8.498.5", datetime(2026, 1, 5))
    path = write_registration(
        reg, tmp_path / "RE.dcm", header, series_instance_uid="1.2.826.0.1.3680043.8.498.6"
    )
    back = read_registration(str(path))
    matrix, _ = registration_between(PRIOR, CURRENT, [back])
    # 120 degrees about (1,1,1) sends x -> y: (10, 0, 0) -> (0, 10, 0), then + (1, 2, 3)
    assert np.max(np.abs(map_points([10.0, 0.0, 0.0], matrix) - [1.0, 12.0, 3.0])) < 0.1


def test_registration_frame_without_its_own_item_is_the_identity():
    reg = Registration("r.dcm", "1.4", CURRENT, {PRIOR: translation_matrix((0, 0, -12))})
    matrix, note = registration_between(PRIOR, CURRENT, [reg])
    np.testing.assert_allclose(map_points([1.0, 2.0, 3.0], matrix), [1.0, 2.0, -9.0])
    assert note.level is Level.INFO


def test_unusable_registration_matrix_is_reported_not_raised():
    singular = np.diag([1.0, 0.0, 1.0, 1.0])
    reg = Registration("r.dcm", "1.4", OTHER, {PRIOR: np.eye(4), CURRENT: singular})
    matrix, note = registration_between(PRIOR, CURRENT, [reg])
    assert matrix is None and note.level is Level.WARNING and note.path == "r.dcm"
    assert "singular" in note.message


def test_disagreeing_registrations_warn():
    a = Registration(
        "a.dcm", "1.1", CURRENT, {CURRENT: np.eye(4), PRIOR: translation_matrix((5, 0, 0))}
    )
    b = Registration(
        "b.dcm", "1.2", CURRENT, {CURRENT: np.eye(4), PRIOR: translation_matrix((0, 0, 0))}
    )
    matrix, note = registration_between(PRIOR, CURRENT, [a, b])
    np.testing.assert_allclose(matrix, translation_matrix((5, 0, 0)))
    assert note.level is Level.ERROR and "differently" in note.message
    assert note.path == "a.dcm"


def test_non_rigid_registration_warns():
    scaled = np.diag([1.1, 1.0, 1.0, 1.0])
    reg = Registration("a.dcm", "1.1", CURRENT, {CURRENT: np.eye(4), PRIOR: scaled})
    matrix, note = registration_between(PRIOR, CURRENT, [reg])
    assert matrix is not None and note.level is Level.ERROR and "not rigid" in note.message


# --- mapping and cumulative EQD2 -------------------------------------------------------------


def test_uniform_prior_dose_mapped_and_summed_in_eqd2():
    # prior grid (prior frame) holds 20 Gy / 5 fx everywhere; translation prior -> current +10 x
    prior = make_grid(
        np.arange(0.0, 21.0, 2.0), np.arange(0.0, 11.0), np.arange(0.0, 9.0, 3.0), frame=PRIOR
    )
    prior.dose_gy[...] = 20.0
    current = make_grid(np.arange(0.0, 41.0, 2.5), np.arange(0.0, 11.0), np.arange(0.0, 7.0))
    current.dose_gy[...] = 24.0  # 24 Gy / 3 fx
    matrix = translation_matrix((10.0, 0.0, 0.0))
    dose, outside = map_prior_dose(prior, current, matrix)
    # covered current x: prior x in [0, 20] -> current x in [10, 30]
    covered_x = (current.x_mm >= 10.0) & (current.x_mm <= 30.0)
    assert np.array_equal(outside, np.broadcast_to(~covered_x, outside.shape))
    np.testing.assert_allclose(dose[~outside], 20.0, atol=1e-12)
    total = cumulative_eqd2(CourseDose(current.dose_gy, 3), [CourseDose(dose, 5)], 2.0)
    # current: 24 * (8 + 2) / 4 = 60 Gy; prior: 20 * (4 + 2) / 4 = 30 Gy
    np.testing.assert_allclose(total[~outside], 90.0, rtol=1e-14)
    assert np.isnan(total[outside]).all()
    # 25 % recovery of the prior course: 60 + 0.75 * 30
    total = cumulative_eqd2(CourseDose(current.dose_gy, 3), [CourseDose(dose, 5)], 2.0, [0.25])
    np.testing.assert_allclose(total[~outside], 82.5, rtol=1e-14)
    # two prior courses, each with its own fraction count: + 30 Gy / 10 fx = 30 * 5 / 4
    second = CourseDose(np.full(dose.shape, 30.0), 10)
    total = cumulative_eqd2(CourseDose(current.dose_gy, 3), [CourseDose(dose, 5), second], 2.0)
    np.testing.assert_allclose(total[~outside], 90.0 + 37.5, rtol=1e-14)


def test_cumulative_eqd2_refuses_bad_input():
    current = CourseDose(np.ones((2, 2, 2)), 3)
    with pytest.raises(ValueError, match="map it first"):
        cumulative_eqd2(current, [CourseDose(np.ones((3, 2, 2)), 5)], 2.0)
    with pytest.raises(ValueError, match="α/β"):
        cumulative_eqd2(current, [CourseDose(np.ones((2, 2, 2)), 5)], -3.0)
    with pytest.raises(ValueError, match="fraction count"):
        cumulative_eqd2(current, [CourseDose(np.ones((2, 2, 2)), 0)], 3.0)
    with pytest.raises(ValueError, match="recovery factors"):
        cumulative_eqd2(current, [CourseDose(np.ones((2, 2, 2)), 5)], 3.0, [0.1, 0.2])


def test_voxel_volumes_on_uneven_planes():
    g = make_grid([0.0, 2.0], [0.0, 3.0], [0.0, 1.0, 3.0, 6.0])
    # slab thickness: 1, (1 + 2) / 2, (2 + 3) / 2, 3 mm; voxel area 6 mm^2
    np.testing.assert_allclose(voxel_volumes_cc(g).ravel(), np.array([1, 1.5, 2.5, 3]) * 6e-3)


# --- overlap ---------------------------------------------------------------------------------


def test_shifted_spheres_overlap_matches_the_lens_volume():
    radius = 12.0
    current_centre = np.array([5.0, -3.0, 2.0])
    prior_centre = np.array([-20.0, 10.0, 4.0])  # prior frame
    shift = current_centre + np.array([6.0, 8.0, 0.0]) - prior_centre  # centres 10 mm apart
    reg = Registration(
        "RE.dcm", "1.5", CURRENT, {CURRENT: np.eye(4), PRIOR: translation_matrix(shift)}
    )
    matrix, _ = registration_between(PRIOR, CURRENT, [reg])
    prior_grid = make_grid(
        np.arange(-34.5, -5.0, 1.0), np.arange(-4.5, 25.0, 1.0), np.arange(-10.5, 19.0, 1.0), PRIOR
    )
    prior_target = sphere_occupancy(prior_grid, prior_centre, radius)
    current = make_grid(
        np.arange(-10.0, 26.0, 1.0), np.arange(-18.0, 20.0, 1.0), np.arange(-12.0, 16.0, 1.0)
    )
    current_target = sphere_occupancy(current, current_centre, radius)
    mapped = map_occupancy(prior_target, prior_grid, current, matrix)
    overlap = volume_overlap(mapped, current_target, current)
    expected = lens_cc(radius, radius, 10.0)
    assert overlap.overlap_cc == pytest.approx(expected, rel=0.02)
    assert overlap.volume_a_cc == pytest.approx(sphere_cc(radius), rel=0.02)
    assert overlap.dice == pytest.approx(expected / sphere_cc(radius), rel=0.02)


def test_target_volume_receiving_prior_dose_is_a_spherical_cap():
    radius = 12.0
    g = make_grid(*(np.arange(-15.5, 16.0, 1.0),) * 3)
    target = sphere_occupancy(g, (0.0, 0.0, 0.0), radius)
    x = voxel_centres(g)[..., 0]
    prior_eqd2 = np.where(x > 4.0, 30.0, 10.0)  # plane x = 4 lies between voxel centres
    result = prior_dose_in_target(target, prior_eqd2, g, threshold_gy=20.0)
    cap = cap_cc(radius, radius - 4.0)
    whole = sphere_cc(radius)
    assert result.volume_cc == pytest.approx(cap, rel=0.02)
    assert result.volume_pct == pytest.approx(100.0 * cap / whole, rel=0.02)
    assert result.target_volume_cc == pytest.approx(whole, rel=0.01)
    assert result.unknown_volume_cc == 0.0
    assert result.max_gy == 30.0
    assert result.mean_gy == pytest.approx((30.0 * cap + 10.0 * (whole - cap)) / whole, rel=0.01)


def test_part_of_a_target_beyond_the_prior_grid_is_unknown_not_zero():
    radius = 12.0
    g = make_grid(*(np.arange(-15.5, 16.0, 1.0),) * 3)
    target = sphere_occupancy(g, (0.0, 0.0, 0.0), radius)
    # the prior grid ends at z = 6 (current frame): above it the prior dose is unknown
    prior = make_grid(np.arange(-20.0, 21.0), np.arange(-20.0, 21.0), np.arange(-20.0, 6.01), PRIOR)
    prior.dose_gy[...] = 10.0
    dose, outside = map_prior_dose(prior, g, None)
    result = prior_dose_in_target(target, dose, g, threshold_gy=5.0)
    cap = cap_cc(radius, radius - 6.0)
    assert result.unknown_volume_cc == pytest.approx(cap, rel=0.03)
    assert unknown_volume_cc(target, outside, g) == pytest.approx(result.unknown_volume_cc)
    assert result.volume_cc == pytest.approx(sphere_cc(radius) - cap, rel=0.02)
    assert result.max_gy == 10.0 and result.mean_gy == pytest.approx(10.0)
    # nowhere covered: no maximum or mean to report
    nothing = prior_dose_in_target(target, np.full(g.dose_gy.shape, np.nan), g, 5.0)
    assert nothing.max_gy is None and nothing.mean_gy is None and nothing.volume_cc == 0.0


def test_irradiated_overlap_and_classification():
    g = make_grid(*(np.arange(0.0, 10.0),) * 3)
    x = voxel_centres(g)[..., 0]
    prior = np.where(x <= 4.0, 20.0, 1.0)
    current = np.where(x >= 4.0, 30.0, 2.0)
    both, unknown = irradiated_overlap_cc(prior, 10.0, current, 15.0, g)
    # only the plane x = 4 (10 x 10 voxels of 1 mm^3, full-thickness interior planes) is in both
    assert both == pytest.approx(100 * 1e-3)
    assert unknown == 0.0
    assert classify_reirradiation(both).kind is ReirradiationType.TYPE_1
    separate = np.where(x >= 6.0, 30.0, 2.0)
    none, _ = irradiated_overlap_cc(prior, 10.0, separate, 15.0, g)
    assert none == 0.0
    cord = np.zeros(g.dose_gy.shape)
    cord[:, 5, :] = 1.0  # a column through both fields
    concern = ["SpinalCord"] if dosed_by_both(cord, prior, 10.0, separate, 15.0) else []
    result = classify_reirradiation(none, concern)
    assert result.kind is ReirradiationType.TYPE_2 and "SpinalCord" in result.reason
    assert classify_reirradiation(0.0, [], ["Lung_L"]).kind is ReirradiationType.REPEAT_ORGAN
    assert classify_reirradiation(0.0).kind is ReirradiationType.REPEAT
    assert classify_reirradiation(0.05, overlap_tolerance_cc=0.1).kind is ReirradiationType.REPEAT


def test_inverted_registration_is_detected_from_the_body_outline():
    radius = 40.0
    shift = np.array([15.0, -10.0, 8.0])
    prior_to_current = translation_matrix(shift) @ rotation_matrix((0, 0, 1), 20, (0, 0, 0))
    axis = np.arange(-70.0, 71.0, 3.0)
    prior_grid = make_grid(axis, axis, axis, PRIOR)
    prior_body = sphere_occupancy(prior_grid, (0.0, 0.0, 0.0), radius, sub=3)
    current_grid = make_grid(axis, axis, axis)
    current_centre = map_points([0.0, 0.0, 0.0], prior_to_current)
    current_body = sphere_occupancy(current_grid, current_centre, radius, sub=3)
    good = check_registration_direction(
        prior_body, prior_grid, current_body, current_grid, prior_to_current
    )
    assert good.note.level is Level.INFO
    assert good.dice > 0.97
    # the inverse puts the sphere centre at -shift: 2 |shift| away from the current one, 2 x 8 mm
    # apart in z; Dice over the planes both spheres reach: lens / the sphere's segment in them
    d = 2 * np.linalg.norm(shift)
    dz = 2 * shift[2]

    def primitive(t):
        return np.pi * (radius**2 * t - t**3 / 3.0) / 1000.0  # cc

    segment_cc = primitive(radius) - primitive(dz - radius)
    assert good.dice_inverse == pytest.approx(lens_cc(radius, radius, d) / segment_cc, 0.03)
    bad = check_registration_direction(
        prior_body, prior_grid, current_body, current_grid, invert(prior_to_current)
    )
    assert bad.note.level is Level.WARNING and "inverted" in bad.note.message
    assert bad.dice_inverse == pytest.approx(good.dice)


def test_dose_samples_for_a_dvh_keep_unknown_volume_apart():
    g = make_grid([0.0, 2.0], [0.0, 1.0], [0.0, 1.0, 3.0])  # voxel slabs 1, 1.5, 2 mm; area 2 mm^2
    occ = np.zeros(g.dose_gy.shape)
    occ[0, 0, 0] = 1.0
    occ[1, 1, 1] = 0.5
    occ[2, 0, 1] = 1.0
    dose = np.full(g.dose_gy.shape, 7.0)
    dose[1, 1, 1] = 3.0
    dose[2, 0, 1] = np.nan
    doses, volumes, unknown = dose_samples(occ, dose, g)
    pairs = sorted(zip(doses.tolist(), volumes.tolist(), strict=True))
    assert [d for d, _ in pairs] == pytest.approx([3.0, 7.0])
    assert [v for _, v in pairs] == pytest.approx([0.5 * 2 * 1.5e-3, 2 * 1e-3])
    assert unknown == pytest.approx(2 * 2e-3)
    cumulative = effective_dose_grid(g, dose, "cumulative EQD2, LQ, α/β 2 Gy")
    assert cumulative.dose_type == "EFFECTIVE" and cumulative.summation_type == "MULTI_PLAN"
    assert cumulative.scaling_note == "cumulative EQD2, LQ, α/β 2 Gy"
    assert cumulative.frame_of_reference_uid == g.frame_of_reference_uid
    with pytest.raises(ValueError, match="shape"):
        effective_dose_grid(g, np.zeros((1, 2, 2)), "x")


def test_irradiated_overlap_is_of_the_dose_fields_not_of_voxel_centres():
    # current 3 Gy/mm rising along x, prior falling: both at or above 28.5 Gy exactly where
    # 9.5 <= x <= 10.5 mm, a 1 mm slab of the grid's 22 x 22 mm section (voxels reach half a
    # step beyond the outer nodes): 0.484 cc. Counting voxel centres gave the 2 mm voxel at
    # x = 10 whole, 0.968 cc
    axis = np.arange(0.0, 20.01, 2.0)
    g = make_grid(axis, axis, axis)
    x = voxel_centres(g)[..., 0]
    both, unknown = irradiated_overlap_cc(60.0 - 3.0 * x, 28.5, 3.0 * x, 28.5, g)
    assert both == pytest.approx(1.0 * 22.0 * 22.0 / 1000.0, rel=1e-12)
    assert unknown == 0.0
