"""Rigid transforms and trilinear dose resampling against closed-form values."""

import numpy as np
import pytest

from rtqa.geometry.transform import (
    apply_matrix,
    check_matrix,
    invert,
    is_rigid,
    map_points,
    resample_dose,
    rigidity_error,
    rotation_matrix,
    translation_matrix,
    voxel_centres,
)
from rtqa.model import DoseGrid


def grid(x, y, z, values=None, frame="1.2.3"):
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    if values is None:
        values = np.zeros((z.size, y.size, x.size))
    return DoseGrid(dose_gy=values, x_mm=x, y_mm=y, z_mm=z, frame_of_reference_uid=frame)


def test_rotation_matrix_is_right_handed_and_validated():
    np.testing.assert_allclose(
        rotation_matrix((0, 0, 2), 90)[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15
    )
    np.testing.assert_allclose(rotation_matrix((1, 0, 0), 0, (4, 5, 6)), np.eye(4))
    np.testing.assert_allclose(translation_matrix((1, 2, 3))[:3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="axis"):
        rotation_matrix((0, 0, 0), 30)
    with pytest.raises(ValueError, match="shift"):
        translation_matrix((1, 2))


def test_quarter_turn_about_z_through_a_centre_maps_a_known_point():
    m = rotation_matrix((0, 0, 1), 90, (10, 20, 30))
    # (20, 20, 50) - c = (10, 0, 20) -> rotated (0, 10, 20) -> + c = (10, 30, 50)
    np.testing.assert_allclose(apply_matrix(m, [[20.0, 20.0, 50.0]]), [[10, 30, 50]], atol=1e-9)


def test_third_turn_about_the_diagonal_cycles_the_axes():
    m = rotation_matrix((1, 1, 1), 120, (5, 5, 5))
    # 120 degrees about (1,1,1) sends x -> y -> z -> x; the axis point (5,5,5) stays
    points = np.array([[15.0, 5.0, 5.0], [5.0, 15.0, 5.0], [5.0, 5.0, 5.0]])
    expected = np.array([[5.0, 15.0, 5.0], [5.0, 5.0, 15.0], [5.0, 5.0, 5.0]])
    assert np.max(np.abs(apply_matrix(m, points) - expected)) < 1e-9


def test_inverse_undoes_and_equals_the_numerical_inverse():
    m = translation_matrix((-4, 5, 6.5)) @ rotation_matrix((0.3, -1, 2), 37, (1, 2, 3))
    np.testing.assert_allclose(invert(m), np.linalg.inv(m), atol=1e-12)
    p = np.array([[1.0, -2.0, 3.0], [100.0, 50.0, -20.0]])
    np.testing.assert_allclose(apply_matrix(invert(m), apply_matrix(m, p)), p, atol=1e-9)
    scale = np.diag([2.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(invert(scale), np.diag([0.5, 1, 1, 1]))


def test_rigidity():
    assert is_rigid(translation_matrix((5, 6, 7)) @ rotation_matrix((1, 2, 3), 71))
    reflection = np.diag([-1.0, 1.0, 1.0, 1.0])
    assert "determinant" in rigidity_error(reflection)
    assert "orthonormal" in rigidity_error(np.diag([1.01, 1.0, 1.0, 1.0]))
    assert rigidity_error(np.eye(4)) is None


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError, match="4x4"):
        check_matrix(np.eye(3))
    bad = np.eye(4)
    bad[3, 0] = 1.0
    with pytest.raises(ValueError, match="last row"):
        check_matrix(bad)
    with pytest.raises(ValueError, match="finite"):
        check_matrix(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="singular"):
        check_matrix(np.diag([1.0, 0.0, 1.0, 1.0]))


def test_map_points_shapes_and_identity():
    m = rotation_matrix((0, 0, 1), 90)
    assert map_points([1.0, 0.0, 0.0], m) == pytest.approx([0.0, 1.0, 0.0])
    many = np.zeros((2, 3, 3))
    many[..., 0] = 1.0
    out = map_points(many, m)
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out[..., 1], 1.0)
    same = map_points(many, None)
    assert same is not many and np.array_equal(same, many)
    with pytest.raises(ValueError, match="3 coordinates"):
        map_points(np.zeros((4, 2)), m)


def _linear(points):
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return 7.0 + 0.31 * x - 0.17 * y + 0.23 * z


def test_linear_dose_through_a_rigid_transform_is_reproduced_at_interior_voxels():
    # source grid with uneven z planes; the dose is linear in source coordinates
    sx = np.arange(-40.0, 40.01, 2.5)
    sy = np.arange(-30.0, 30.01, 2.0)
    sz = np.array([-30.0, -27.0, -20.0, -18.5, -10.0, -2.0, 0.0, 3.0, 11.0, 20.0, 24.0, 30.0])
    source = grid(sx, sy, sz)
    source.dose_gy[...] = _linear(voxel_centres(source))
    target = grid(np.arange(-50.0, 50.0, 3.0), np.arange(-40.0, 40.0, 2.7), np.arange(-35, 36, 2.0))
    m = translation_matrix((4.2, -1.3, 2.7)) @ rotation_matrix((0.2, 1, -0.4), 23, (3, -2, 1))
    dose, outside = resample_dose(source, target, m)
    mapped = map_points(voxel_centres(target), m)
    expected_outside = (
        (mapped[..., 0] < sx[0] - 1e-9)
        | (mapped[..., 0] > sx[-1] + 1e-9)
        | (mapped[..., 1] < sy[0] - 1e-9)
        | (mapped[..., 1] > sy[-1] + 1e-9)
        | (mapped[..., 2] < sz[0] - 1e-9)
        | (mapped[..., 2] > sz[-1] + 1e-9)
    )
    assert np.array_equal(outside, expected_outside)
    assert 0 < outside.sum() < outside.size
    assert np.all(np.isnan(dose[outside]))
    inside = ~outside
    assert np.max(np.abs(dose[inside] - _linear(mapped)[inside])) < 1e-6
    # chunking does not change the result
    dose_small, outside_small = resample_dose(source, target, m, chunk_voxels=500)
    assert np.array_equal(outside_small, outside)
    np.testing.assert_array_equal(dose_small[inside], dose[inside])


def test_same_grid_without_matrix_returns_the_dose_exactly():
    rng = np.random.default_rng(3)
    g = grid(np.arange(5.0), np.arange(4.0) * 2, np.array([0.0, 1.0, 5.0]))
    g.dose_gy[...] = rng.uniform(0, 30, g.dose_gy.shape)
    dose, outside = resample_dose(g, g, None)
    assert not outside.any()
    np.testing.assert_allclose(dose, g.dose_gy, rtol=0, atol=1e-12)


def test_whole_voxel_shift_moves_values_and_marks_the_uncovered_plane():
    rng = np.random.default_rng(4)
    g = grid(np.arange(6.0) * 2, np.arange(5.0) * 2, np.arange(4.0) * 3)
    g.dose_gy[...] = rng.uniform(0, 30, g.dose_gy.shape)
    shift = np.eye(4)
    shift[0, 3] = 2.0  # target point x maps to source x + 2 mm: one voxel along x
    dose, outside = resample_dose(g, g, shift)
    np.testing.assert_allclose(dose[:, :, :-1], g.dose_gy[:, :, 1:], atol=1e-12)
    assert outside[:, :, -1].all() and not outside[:, :, :-1].any()
    assert np.isnan(dose[:, :, -1]).all()


def test_half_voxel_point_is_the_mean_of_its_neighbours_on_uneven_z():
    g = grid([0.0, 1.0], [0.0, 1.0], [0.0, 1.0, 4.0])
    g.dose_gy[...] = np.array([10.0, 20.0, 50.0])[:, None, None]
    target = grid([0.5], [0.5], [0.5, 2.5, 4.0, 4.5])
    dose, outside = resample_dose(g, target, None)
    np.testing.assert_allclose(dose[:3, 0, 0], [15.0, 20.0 + 30.0 * 1.5 / 3.0, 50.0])
    assert outside[:, 0, 0].tolist() == [False, False, False, True]


def test_single_plane_source_covers_only_its_plane():
    g = grid(np.arange(3.0), np.arange(3.0), [5.0], np.full((1, 3, 3), 12.0))
    target = grid(np.arange(3.0), np.arange(3.0), [4.0, 5.0])
    dose, outside = resample_dose(g, target, None)
    assert outside[0].all() and not outside[1].any()
    np.testing.assert_allclose(dose[1], 12.0)
