"""Frames of reference linked only through a third frame: registrations chained and composed."""

from __future__ import annotations

import copy
import json
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import generate_uid
from pydicom.valuerep import DS

from rtqa.cli import cli
from rtqa.geometry.transform import invert, map_points, rotation_matrix, translation_matrix
from rtqa.model import Level, Registration
from rtqa.prior import MAX_CHAIN, registration_between

CURRENT = "1.2.826.0.1.3680043.8.498.11"
PRIOR = "1.2.826.0.1.3680043.8.498.22"
MIDDLE = "1.2.826.0.1.3680043.8.498.33"
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "spine_prior"


def reg(uid: str, own: str, items: dict[str, np.ndarray]) -> Registration:
    return Registration(f"{uid}.dcm", uid, own, items)


QUARTER_TURN = rotation_matrix((0, 0, 1), 90, (0, 0, 0))
SHIFT_X = translation_matrix((10, 0, 0))


def test_two_registrations_through_a_third_frame_compose_in_order():
    # prior -> middle: +10 mm in x (held by a registration in the middle frame);
    # middle -> current: a quarter turn about z (held by a registration in the current frame)
    first = reg("1.9.1", CURRENT, {CURRENT: np.eye(4), MIDDLE: QUARTER_TURN})
    second = reg("1.9.2", MIDDLE, {PRIOR: SHIFT_X})
    matrix, note = registration_between(PRIOR, CURRENT, [first, second])
    # prior (0, 0, 0) is middle (10, 0, 0), which the quarter turn takes to current (0, 10, 0);
    # the other order would give (10, 0, 0)
    np.testing.assert_allclose(map_points([0.0, 0.0, 0.0], matrix), [0.0, 10.0, 0.0], atol=1e-12)
    assert note.level is Level.WARNING
    assert f"chained through frame of reference {MIDDLE}" in note.message
    assert "spatial registrations 1.9.2, 1.9.1" in note.message
    back, _ = registration_between(CURRENT, PRIOR, [first, second])
    np.testing.assert_allclose(back @ matrix, np.eye(4), atol=1e-12)


def test_a_direct_registration_is_preferred_to_a_chain():
    direct = reg("1.9.0", CURRENT, {PRIOR: translation_matrix((0, 0, 3))})
    first = reg("1.9.1", CURRENT, {MIDDLE: QUARTER_TURN})
    second = reg("1.9.2", MIDDLE, {PRIOR: SHIFT_X})
    matrix, note = registration_between(PRIOR, CURRENT, [first, second, direct])
    np.testing.assert_allclose(map_points([0.0, 0.0, 0.0], matrix), [0.0, 0.0, 3.0])
    assert note.level is Level.INFO and "chained" not in note.message


def test_disagreeing_chains_of_equal_length_are_named():
    other = "1.2.826.0.1.3680043.8.498.44"
    a1 = reg("1.9.1", CURRENT, {MIDDLE: np.eye(4)})
    a2 = reg("1.9.2", MIDDLE, {PRIOR: SHIFT_X})
    b1 = reg("1.9.3", CURRENT, {other: np.eye(4)})
    b2 = reg("1.9.4", other, {PRIOR: translation_matrix((12, 0, 0))})
    matrix, note = registration_between(PRIOR, CURRENT, [a1, a2, b1, b2])
    np.testing.assert_allclose(map_points([0.0, 0.0, 0.0], matrix), [10.0, 0.0, 0.0])
    assert "spatial registrations 1.9.4, 1.9.3 maps the same frames differently (up to 2 mm" in (
        note.message
    )


def test_a_chain_longer_than_the_limit_is_no_link():
    frames = [PRIOR] + [f"1.2.826.0.1.3680043.8.498.{60 + i}" for i in range(MAX_CHAIN)] + [CURRENT]
    regs = [reg(f"1.9.{i}", b, {a: SHIFT_X}) for i, (a, b) in enumerate(pairwise(frames))]
    assert len(regs) == MAX_CHAIN + 1
    matrix, note = registration_between(PRIOR, CURRENT, regs)
    assert matrix is None and note.level is Level.WARNING
    assert f"through up to {MAX_CHAIN - 1} other frames" in note.message
    matrix, _ = registration_between(frames[1], CURRENT, regs[1:])
    np.testing.assert_allclose(map_points([0.0, 0.0, 0.0], matrix), [10.0 * MAX_CHAIN, 0, 0])


def _ds_matrix(matrix: np.ndarray) -> list[DS]:
    return [DS(float(v), auto_format=True) for v in np.asarray(matrix).reshape(-1)]


def _matrix(item) -> np.ndarray:
    values = item.MatrixRegistrationSequence[0].MatrixSequence[0]
    return np.array([float(v) for v in values.FrameOfReferenceTransformationMatrix]).reshape(4, 4)


def split_registration(case: Path) -> None:
    """Replace the sample's registration (prior frame -> current frame) by two: prior -> a new
    frame, and that frame -> current, whose product is the original matrix."""
    path = case / "RE.SPINEPRIOR.dcm"
    ds = pydicom.dcmread(path)
    current = str(ds.FrameOfReferenceUID)
    item = next(i for i in ds.RegistrationSequence if str(i.FrameOfReferenceUID) != current)
    prior, original = str(item.FrameOfReferenceUID), _matrix(item)
    middle = generate_uid()
    # middle -> current: a 30 degree turn about an oblique axis and a shift
    to_current = translation_matrix((4, -7, 11)) @ rotation_matrix((1, 2, 2), 30, (5, 0, -3))
    second = copy.deepcopy(ds)
    item.FrameOfReferenceUID = middle
    item.MatrixRegistrationSequence[0].MatrixSequence[
        0
    ].FrameOfReferenceTransformationMatrix = _ds_matrix(to_current)
    ds.save_as(path)
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    second.FrameOfReferenceUID = middle
    second.RegistrationSequence = [
        i for i in second.RegistrationSequence if str(i.FrameOfReferenceUID) == prior
    ]
    second.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[
        0
    ].FrameOfReferenceTransformationMatrix = _ds_matrix(invert(to_current) @ original)
    second.save_as(case / "RE.CHAIN.dcm")


def prior_values(case: Path) -> tuple[int, dict[tuple[str, str | None], float], str]:
    """Exit code, the value of every prior finding, and the prior mapping's message."""
    res = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "boss", "--format", "json"], catch_exceptions=False
    )
    findings = [f for f in json.loads(res.stdout)["findings"] if f["group"] == "prior"]
    values = {(f["rule"], f["roi"]): f["value"] for f in findings if f["value"] is not None}
    mapping = next(f["message"] for f in findings if f["rule"] == "prior_mapping")
    return res.exit_code, values, mapping


def test_sample_prior_through_a_chained_registration_gives_the_same_numbers(tmp_path):
    case = tmp_path / "spine_prior"
    shutil.copytree(SAMPLE, case)
    code, direct, _ = prior_values(case)
    split_registration(case)
    chained_code, chained, mapping = prior_values(case)
    assert chained_code == code == 0
    assert len(direct) >= 5 and chained.keys() == direct.keys()
    for key, value in direct.items():
        assert chained[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert "by spatial registrations " in mapping
    assert ", chained through frame of reference " in mapping


def test_a_contradicted_registration_is_used_and_flagged_minor(tmp_path):
    """spine_prior with a second registration mapping the prior frame 5 mm further in x: the
    first one is still used (the prior values are unchanged) and prior_mapping becomes a minor
    "check the registration" (it was info: the cumulative doses passed on a contradicted
    registration without a flag)."""
    case = tmp_path / "spine_prior"
    shutil.copytree(SAMPLE, case)
    code, direct, mapping = prior_values(case)
    assert code == 0 and "differently" not in mapping
    ds = pydicom.dcmread(case / "RE.SPINEPRIOR.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    current = str(ds.FrameOfReferenceUID)
    item = next(i for i in ds.RegistrationSequence if str(i.FrameOfReferenceUID) != current)
    item.MatrixRegistrationSequence[0].MatrixSequence[
        0
    ].FrameOfReferenceTransformationMatrix = _ds_matrix(
        translation_matrix((5, 0, 0)) @ _matrix(item)
    )
    ds.save_as(case / "RE.SPINEPRIOR.other.dcm")
    res = CliRunner().invoke(
        cli, ["check", str(case), "--protocol", "boss", "--format", "json"], catch_exceptions=False
    )
    assert res.exit_code == 1
    findings = [f for f in json.loads(res.stdout)["findings"] if f["group"] == "prior"]
    (f,) = [f for f in findings if f["rule"] == "prior_mapping"]
    assert f["status"] == "minor"
    assert (
        "maps the same frames differently (up to 5 mm apart); the first one is used"
        in (f["message"])
    )
    assert f["message"].endswith("; check the registration: the cumulative doses rest on it")
    values = {(g["rule"], g["roi"]): g["value"] for g in findings if g["value"] is not None}
    assert values.keys() == direct.keys()
    for key, value in direct.items():
        assert values[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
