"""LQ conversions against hand-computed values (worked examples of Nieder 2006 and textbook LQ)."""

import numpy as np
import pytest

from rtqa.radiobiology import (
    bed,
    bed_from_eqd2,
    check_alpha_beta,
    check_fractions,
    discount_recovered,
    eqd2,
    eqd2_from_bed,
    high_dose_per_fraction_note,
    physical_from_bed,
    physical_from_eqd2,
    recovery_factor,
)


@pytest.mark.parametrize(
    ("total", "n", "ab", "bed_gy", "eqd2_gy"),
    [
        (50.0, 25, 2.0, 100.0, 50.0),  # 2-Gy fractions: EQD2 = physical dose
        (50.0, 25, 4.0, 75.0, 50.0),  # Nieder 2006: 50 Gy/25 fx = 75 Gy4
        (24.0, 3, 2.0, 120.0, 60.0),  # d = 8: BED = 24 * (1 + 8/2)
        (30.0, 5, 10.0, 48.0, 40.0),  # d = 6: BED = 30 * 1.6, EQD2 = 48 / 1.2
        (20.0, 1, 3.0, 20.0 * (1 + 20 / 3), 20.0 * 23 / 5),
    ],
)
def test_worked_examples(total, n, ab, bed_gy, eqd2_gy):
    assert bed(total, n, ab) == pytest.approx(bed_gy, rel=1e-12)
    assert eqd2(total, n, ab) == pytest.approx(eqd2_gy, rel=1e-12)
    assert eqd2_from_bed(bed_gy, ab) == pytest.approx(eqd2_gy, rel=1e-12)
    assert bed_from_eqd2(eqd2_gy, ab) == pytest.approx(bed_gy, rel=1e-12)
    assert physical_from_eqd2(eqd2_gy, n, ab) == pytest.approx(total, rel=1e-12)
    assert physical_from_bed(bed_gy, n, ab) == pytest.approx(total, rel=1e-12)


def test_scalar_in_scalar_out_array_in_array_out():
    assert isinstance(eqd2(24, 3, 2), float)
    out = eqd2(np.full((2, 3), 24.0), 3, 2)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)


def test_uniform_prior_dose_gives_hand_computed_eqd2_everywhere():
    # 20 Gy in 5 fractions, alpha/beta 2: d = 4 Gy, EQD2 = 20 * (4 + 2) / (2 + 2) = 30 Gy
    dose = np.full((4, 5, 6), 20.0)
    assert np.all(eqd2(dose, 5, 2.0) == pytest.approx(30.0, rel=1e-14))
    # BED = 20 * (1 + 4/2) = 60 Gy2
    assert np.all(bed(dose, 5, 2.0) == pytest.approx(60.0, rel=1e-14))


def test_each_voxel_uses_its_own_dose_per_fraction():
    dose = np.array([0.0, 3.0, 10.0, 30.0])
    # 3 fractions, alpha/beta 2: EQD2 = D (D/3 + 2) / 4
    expected = [0.0, 3.0 * 3.0 / 4.0, 10.0 * (10.0 / 3.0 + 2.0) / 4.0, 30.0 * 12.0 / 4.0]
    np.testing.assert_allclose(eqd2(dose, 3, 2.0), expected, rtol=1e-14)
    # the prescription's dose per fraction (10 Gy) would give 30*3 = 90 Gy only at the 30 Gy voxel
    assert eqd2(dose, 3, 2.0)[1] < 3.0


def test_zero_stays_zero_and_nan_stays_unknown():
    out = eqd2(np.array([0.0, np.nan, 8.0]), 1, 3.0)
    assert out[0] == 0.0
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(8.0 * 11.0 / 5.0)
    assert physical_from_eqd2(0.0, 5, 3.0) == 0.0
    assert bed(0.0, 1, 10.0) == 0.0


def test_voxelwise_alpha_beta_map_broadcasts():
    dose = np.full((2, 2), 24.0)
    ab = np.array([[2.0, 3.0], [10.0, 2.0]])
    expected = 24.0 * (8.0 + ab) / (2.0 + ab)
    np.testing.assert_allclose(eqd2(dose, 3, ab), expected, rtol=1e-14)


def test_inverse_round_trip_over_a_wide_range():
    rng = np.random.default_rng(1)
    total = np.concatenate([[1e-9, 1e-3], rng.uniform(0, 80, 1000)])
    for n in (1, 3, 5, 30):
        for ab in (0.87, 2.0, 10.0):
            back = physical_from_eqd2(eqd2(total, n, ab), n, ab)
            np.testing.assert_allclose(back, total, rtol=1e-12)


def test_eqd2_limit_converted_to_physical_dose():
    # cumulative cord limit 70 Gy EQD2 (alpha/beta 2) minus a prior 40 Gy EQD2 leaves 30 Gy EQD2;
    # in 3 fractions: 3 d^2 + 6 d - 30 * 4 = 0 -> d = -1 + sqrt(41)
    expected = 3 * (-1 + np.sqrt(41.0))
    assert physical_from_eqd2(30.0, 3, 2.0) == pytest.approx(expected, rel=1e-12)
    assert eqd2(expected, 3, 2.0) == pytest.approx(30.0, rel=1e-12)


@pytest.mark.parametrize("bad", [-3.0, 0.0, np.nan, np.inf, -np.inf, True, "three", []])
def test_alpha_beta_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="α/β"):
        eqd2(10.0, 5, bad)


def test_negative_alpha_beta_message_names_the_value():
    with pytest.raises(ValueError, match=r"α/β must be positive \(Gy\), got -2"):
        bed(30.0, 3, -2.0)
    with pytest.raises(ValueError, match="α/β"):
        eqd2(np.ones(3), 3, np.array([2.0, -1.0, 3.0]))
    assert check_alpha_beta(2) == 2.0


@pytest.mark.parametrize("bad", [0, -1, 2.5, 3.0, True, None, "3"])
def test_fraction_count_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="fraction count must be a positive integer"):
        eqd2(10.0, bad, 3.0)


def test_fraction_count_accepts_numpy_integers():
    assert check_fractions(np.int64(5)) == 5
    assert eqd2(30.0, np.int32(5), 10.0) == pytest.approx(40.0)


def test_negative_or_infinite_dose_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        eqd2(np.array([1.0, -0.5]), 3, 2.0)
    with pytest.raises(ValueError, match="finite"):
        bed(np.inf, 3, 2.0)


def test_recovery_discount():
    assert discount_recovered(40.0, 0.25) == pytest.approx(30.0)
    assert discount_recovered(40.0, 0.0) == 40.0
    np.testing.assert_allclose(discount_recovered(np.array([0.0, 50.0]), 0.5), [0.0, 25.0])
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="recovery factor"):
            discount_recovered(40.0, bad)


def test_recovery_factor_step_rule():
    # 25 % after 6 months, 50 % after 12 months (cord rule quoted by Doi et al. 2021)
    steps = [(365.0, 0.5), (182.0, 0.25)]
    assert recovery_factor(100, steps) == 0.0
    assert recovery_factor(182, steps) == 0.25
    assert recovery_factor(200, steps) == 0.25
    assert recovery_factor(400, steps) == 0.5
    assert recovery_factor(400, []) == 0.0
    with pytest.raises(ValueError, match="interval"):
        recovery_factor(-1, steps)


def test_high_dose_per_fraction_note():
    assert high_dose_per_fraction_note(24.0, 3) is None
    assert high_dose_per_fraction_note(30.0, 3) is None  # exactly 10 Gy: not above
    note = high_dose_per_fraction_note(20.0, 1, label="prior course")
    assert note is not None
    assert note.startswith("prior course: 20 Gy per fraction (20 Gy in 1 fraction)")
    assert "linear-quadratic" in note
    assert "fractions" in high_dose_per_fraction_note(36.0, 3)
    assert high_dose_per_fraction_note(36.0, 3, threshold_gy=12.0) is None
