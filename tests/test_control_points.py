"""Control-point integrity of TREATMENT beams (catalogue row P9): values given only where they
change are carried forward and never noted; what makes a beam's control points inconsistent is a
warning naming the file, the beam and the control point, never an exception."""

from __future__ import annotations

import glob
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from test_dicom_plan import edit, make_plan, write

from rtqa.dicom.plan import read_plan
from rtqa.model import Level

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
RX_NOTE = "prescription read from DoseReferenceSequence"
WEIGHT = "CumulativeMetersetWeight (300A,0134)"


def messages(plan) -> list[str]:
    return [n.message for n in plan.notes]


def device(kind: str, positions: list[float]) -> Dataset:
    item = Dataset()
    item.RTBeamLimitingDeviceType = kind
    item.LeafJawPositions = positions
    return item


def raystation_arc(beam: Dataset, n: int = 5, iso=(0.0, 20.0, 0.0)) -> None:
    """A VMAT arc as RayStation writes it (P9): jaws, angles, isocentre, energy and dose rate in
    control point 0; later control points give only the two MLC layers (MLCX1, MLCX2) and the
    cumulative meterset weight."""
    leaves = 4
    first = Dataset()
    first.ControlPointIndex = 0
    first.NominalBeamEnergy = 6
    first.DoseRateSet = 600
    first.GantryAngle = 181
    first.GantryRotationDirection = "CW"
    first.BeamLimitingDeviceAngle = 5
    first.BeamLimitingDeviceRotationDirection = "NONE"
    first.PatientSupportAngle = 0
    first.PatientSupportRotationDirection = "NONE"
    first.IsocenterPosition = list(iso)
    first.CumulativeMetersetWeight = 0
    first.BeamLimitingDevicePositionSequence = Sequence(
        [
            device("ASYMX", [-30.0, 30.0]),
            device("ASYMY", [-40.0, 40.0]),
            device("MLCX1", [-5.0] * leaves + [5.0] * leaves),
            device("MLCX2", [-6.0] * leaves + [6.0] * leaves),
        ]
    )
    points = [first]
    for i in range(1, n):
        cp = Dataset()
        cp.ControlPointIndex = i
        cp.BeamLimitingDevicePositionSequence = Sequence(
            [
                device("MLCX1", [-5.0 - i] * leaves + [5.0 + i] * leaves),
                device("MLCX2", [-6.0 - i] * leaves + [6.0 + i] * leaves),
            ]
        )
        cp.CumulativeMetersetWeight = f"{i / (n - 1):.6g}"
        points.append(cp)
    beam.BeamType = "DYNAMIC"
    beam.BeamLimitingDeviceSequence = Sequence(
        [
            _limiting("ASYMX", 1),
            _limiting("ASYMY", 1),
            _limiting("MLCX1", leaves),
            _limiting("MLCX2", leaves),
        ]
    )
    beam.NumberOfControlPoints = n
    beam.FinalCumulativeMetersetWeight = 1
    beam.ControlPointSequence = Sequence(points)


def _limiting(kind: str, pairs: int) -> Dataset:
    item = Dataset()
    item.RTBeamLimitingDeviceType = kind
    item.NumberOfLeafJawPairs = pairs
    return item


def arcs(change=None):
    """An edit making the plan's two treatment beams RayStation arcs, then applying ``change``
    to the dataset."""

    def apply(ds):
        for beam in ds.BeamSequence[:2]:
            raystation_arc(beam)
        if change is not None:
            change(ds)

    return apply


def arc_plan(tmp_path, change=None, name="RP.dcm"):
    return read_plan(edit(write(tmp_path, make_plan(), name), arcs(change)))


def set_raw(item: Dataset, keyword: str, vr: str, text: bytes) -> None:
    """Store ``text`` as the element's bytes, as a non-conformant writer would."""
    tag = Tag(keyword)
    data = text + (b" " if len(text) % 2 else b"")
    item._dict[tag] = RawDataElement(tag, vr, len(data), data, 0, False, True)


def test_raystation_arc_with_values_only_where_they_change_is_not_noted(tmp_path):
    plan = arc_plan(tmp_path)
    assert messages(plan) == [RX_NOTE]

    # the same arcs with control point 0's collimation gone: now it is noted, once per arc
    def no_jaws(ds):
        del ds.BeamSequence[1].ControlPointSequence[0].BeamLimitingDevicePositionSequence

    broken = arc_plan(tmp_path, no_jaws, "RP.nojaws.dcm")
    assert messages(broken) == [
        "beam 2 'ARC2': control point 0 does not define BeamLimitingDevicePositionSequence "
        "(later control points take their values from it)",
        RX_NOTE,
    ]


def test_decreasing_meterset_weight_names_beam_and_control_point(tmp_path):
    def fall(ds):
        ds.BeamSequence[0].ControlPointSequence[3].CumulativeMetersetWeight = "0.4"

    plan = arc_plan(tmp_path, fall)
    (note,) = [n for n in plan.notes if n.message.startswith("beam")]
    assert note.level is Level.WARNING
    assert note.path == str(tmp_path / "RP.dcm")
    assert note.attribute == WEIGHT
    assert note.message == (
        "beam 1 'ARC1': CumulativeMetersetWeight decreases at control point 3 (0.4 after 0.5 at "
        "control point 2)"
    )


def test_last_weight_not_final_cumulative_meterset_weight(tmp_path):
    def mismatch(ds):
        ds.BeamSequence[1].FinalCumulativeMetersetWeight = "1.01"

    plan = arc_plan(tmp_path, mismatch)
    assert messages(plan) == [
        "beam 2 'ARC2': CumulativeMetersetWeight of the last control point (4) is 1, not the "
        "beam's FinalCumulativeMetersetWeight 1.01 (relative tolerance 1e-06)",
        RX_NOTE,
    ]
    # a difference within the tolerance (DS rounding) is no note
    within = arc_plan(
        tmp_path,
        lambda ds: setattr(ds.BeamSequence[1], "FinalCumulativeMetersetWeight", "1.0000001"),
        "RP.within.dcm",
    )
    assert messages(within) == [RX_NOTE]


def test_first_weight_not_zero_and_missing_weights(tmp_path):
    def shift(ds):
        points = ds.BeamSequence[0].ControlPointSequence
        points[0].CumulativeMetersetWeight = "0.1"
        del points[2].CumulativeMetersetWeight
        points[3].CumulativeMetersetWeight = ""  # Type 2, empty: no weight either

    plan = arc_plan(tmp_path, shift)
    assert messages(plan) == [
        "beam 1 'ARC1': CumulativeMetersetWeight missing at control point 2 and control point 3",
        "beam 1 'ARC1': CumulativeMetersetWeight of control point 0 is 0.1, not 0",
        RX_NOTE,
    ]


def test_control_point_0_without_isocenter(tmp_path):
    plan = arc_plan(
        tmp_path,
        lambda ds: delattr(ds.BeamSequence[0].ControlPointSequence[0], "IsocenterPosition"),
    )
    (note,) = [n for n in plan.notes if n.message.startswith("beam")]
    assert note.message == (
        "beam 1 'ARC1': control point 0 does not define IsocenterPosition (later control points "
        "take their values from it)"
    )
    assert note.attribute == "ControlPointSequence (300A,0111)"


def test_control_point_0_missing_several_lists_them_in_one_warning(tmp_path):
    def strip(ds):
        first = ds.BeamSequence[0].ControlPointSequence[0]
        for keyword in ("GantryAngle", "BeamLimitingDeviceAngle", "NominalBeamEnergy"):
            delattr(first, keyword)
        first.IsocenterPosition = ""  # Type 2C: legal, but the isocentre is unknown

    plan = arc_plan(tmp_path, strip)
    assert messages(plan) == [
        "beam 1 'ARC1': control point 0 does not define GantryAngle, BeamLimitingDeviceAngle, "
        "IsocenterPosition, NominalBeamEnergy (later control points take their values from it)",
        RX_NOTE,
    ]


def test_number_of_control_points_not_the_number_of_items(tmp_path):
    plan = arc_plan(tmp_path, lambda ds: setattr(ds.BeamSequence[0], "NumberOfControlPoints", 6))
    (note,) = [n for n in plan.notes if n.message.startswith("beam")]
    assert note.message == (
        "beam 1 'ARC1': NumberOfControlPoints 6 but ControlPointSequence holds 5 control points"
    )
    assert note.attribute == "NumberOfControlPoints (300A,0110)"


def test_isocentre_moving_within_a_beam(tmp_path):
    def move(ds):
        points = ds.BeamSequence[0].ControlPointSequence
        points[2].IsocenterPosition = [0.0, 20.005, 0.0]  # restated within 0.01 mm: no note
        points[3].IsocenterPosition = [3.0, 24.0, 0.0]  # 5 mm away

    plan = arc_plan(tmp_path, move)
    assert messages(plan) == [
        "beam 1 'ARC1': IsocenterPosition at control point 3 differs from control point 0's by "
        "up to 5.00 mm (tolerance 0.01 mm): the isocentre cannot move within a beam",
        RX_NOTE,
    ]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_non_numeric_values_are_warnings_not_exceptions(tmp_path):
    def garble(ds):
        points = ds.BeamSequence[0].ControlPointSequence
        set_raw(points[2], "CumulativeMetersetWeight", "DS", b"abc")
        set_raw(points[0], "GantryAngle", "DS", b"nan")
        set_raw(points[0], "IsocenterPosition", "DS", b"0\\20")  # two values, not three

    plan = arc_plan(tmp_path, garble)
    assert messages(plan) == [
        "beam 1 'ARC1': CumulativeMetersetWeight is not a number at control point 2 ('abc'): "
        "treated as absent",
        "beam 1 'ARC1': GantryAngle is not a number at control point 0 ('nan'): treated as absent",
        "beam 1 'ARC1': IsocenterPosition is not a number at control point 0 ('0\\\\20'): "
        "treated as absent",
        RX_NOTE,
    ]


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@pytest.mark.parametrize(
    ("keyword", "vr", "text", "expected"),
    [
        (
            "NumberOfControlPoints",
            "IS",
            b"five",
            "beam 1 'ARC1': NumberOfControlPoints 'five' is not an integer "
            "(ControlPointSequence holds 5 control points)",
        ),
        (
            "FinalCumulativeMetersetWeight",
            "DS",
            b"inf",
            "beam 1 'ARC1': FinalCumulativeMetersetWeight 'inf' is not a number: treated as absent",
        ),
    ],
)
def test_malformed_beam_values_are_warnings(tmp_path, keyword, vr, text, expected):
    plan = arc_plan(tmp_path, lambda ds: set_raw(ds.BeamSequence[0], keyword, vr, text))
    assert messages(plan) == [expected, RX_NOTE]


def test_beam_without_control_points_and_setup_beams_skipped(tmp_path):
    def strip(ds):
        del ds.BeamSequence[1].ControlPointSequence
        del ds.BeamSequence[2].ControlPointSequence  # the SETUP beam: not checked
        ds.BeamSequence[2].NumberOfControlPoints = 9

    plan = read_plan(edit(write(tmp_path, make_plan()), strip))
    assert [b.delivery_type for b in plan.beams] == ["TREATMENT", "TREATMENT", "SETUP"]
    (note,) = [n for n in plan.notes if n.message.startswith("beam")]
    assert note.message == (
        "beam 2 'ARC2': no ControlPointSequence: the beam's delivery (angles, collimation, "
        "meterset weights) is not described"
    )
    assert note.attribute == "ControlPointSequence (300A,0111)"


def test_ion_plan_control_points(tmp_path):
    plan = read_plan(write(tmp_path, make_plan(), ion=True))
    assert messages(plan) == [RX_NOTE]

    def break_ion(ds):
        points = ds.IonBeamSequence[0].IonControlPointSequence
        points[1].CumulativeMetersetWeight = "0.9"
        del points[0].NominalBeamEnergy

    broken = read_plan(edit(write(tmp_path, make_plan(), "RP.ion.dcm", ion=True), break_ion))
    assert [(n.message, n.attribute) for n in broken.notes][:2] == [
        (
            "beam 1 'ARC1': CumulativeMetersetWeight of the last control point (1) is 0.9, not "
            "the beam's FinalCumulativeMetersetWeight 1 (relative tolerance 1e-06)",
            WEIGHT,
        ),
        (
            "beam 1 'ARC1': control point 0 does not define NominalBeamEnergy (later control "
            "points take their values from it)",
            "IonControlPointSequence (300A,03A8)",
        ),
    ]
    assert len(broken.notes) == 3


def test_odd_shapes_never_raise(tmp_path):
    """Whatever the control points hold, the plan is read; each oddity is a warning."""

    def odd(ds):
        beam = ds.BeamSequence[0]
        beam.ControlPointSequence = Sequence([Dataset()])  # an empty item: nothing defined
        del beam.NumberOfControlPoints
        del beam.FinalCumulativeMetersetWeight
        other = ds.BeamSequence[1]
        other.ControlPointSequence = Sequence()  # present, no items

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = read_plan(edit(write(tmp_path, make_plan()), odd))
    assert plan.prescriptions[0].total_gy == 30
    assert messages(plan) == [
        "beam 1 'ARC1': NumberOfControlPoints missing (ControlPointSequence holds 1 control point)",
        "beam 1 'ARC1': CumulativeMetersetWeight missing at control point 0",
        "beam 1 'ARC1': control point 0 does not define GantryAngle, BeamLimitingDeviceAngle, "
        "IsocenterPosition, BeamLimitingDevicePositionSequence, NominalBeamEnergy (later "
        "control points take their values from it)",
        "beam 2 'ARC2': no ControlPointSequence: the beam's delivery (angles, collimation, "
        "meterset weights) is not described",
        RX_NOTE,
    ]


def test_sample_plans_get_no_control_point_note(tmp_path):
    paths = sorted(glob.glob(str(SAMPLES / "*" / "RP.*.dcm")))
    assert len(paths) == 9
    for path in paths:
        assert [n for n in read_plan(path).notes if n.message.startswith("beam")] == [], path
    # the same sample plan with its first treatment beam cut after control point 0 (a
    # half-exported beam): noted, twice
    rp = tmp_path / "RP.SPINE3FX.dcm"
    ds = pydicom.dcmread(SAMPLES / "spine_3fx" / "RP.SPINE3FX.dcm")
    del ds.BeamSequence[0].ControlPointSequence[1]
    ds.save_as(rp)
    assert [n.message for n in read_plan(str(rp)).notes if n.message.startswith("beam")] == [
        "beam 1 'SBRT01': NumberOfControlPoints 2 but ControlPointSequence holds 1 control point",
        "beam 1 'SBRT01': CumulativeMetersetWeight of the last control point (0) is 0, not the "
        "beam's FinalCumulativeMetersetWeight 1 (relative tolerance 1e-06)",
    ]
