"""RT Beams Treatment Record writer and reader (edge cases R1, R2, R5)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pydicom
import pytest

from rtqa.dicom.common import RT_BRACHY_RECORD, RT_ION_BEAMS_RECORD, RT_SUMMARY_RECORD, make_uid
from rtqa.dicom.records import read_treatment_record
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.records import write_treatment_record
from rtqa.errors import DicomError
from rtqa.model import DeliveredBeam, Level, Status, TreatmentRecord
from rtqa.protocol.delivery import fraction_deliveries

HEADER = Header("RTQA-001", "Phantom^Spine", make_uid("study"), datetime(2024, 3, 1, 9, 30))
PLAN_UID = make_uid("plan")


def record(fraction: int, when: datetime, beams, name: str | None = None) -> TreatmentRecord:
    return TreatmentRecord(
        path="",
        sop_instance_uid=make_uid("record", fraction, when, name),
        referenced_plan_uid=PLAN_UID,
        fraction_number=fraction,
        delivered_at=when,
        beams=tuple(beams),
    )


def write(tmp_path, rec: TreatmentRecord, name: str, **kwargs) -> str:
    path = tmp_path / name
    write_treatment_record(rec, path, HEADER, series_instance_uid=make_uid("rec"), **kwargs)
    return str(path)


def test_round_trip(tmp_path):
    original = record(
        2,
        datetime(2024, 3, 6, 8, 15, 30),
        [DeliveredBeam(1, 1200.0, 1200.0, "NORMAL"), DeliveredBeam(2, 1100.0, 1100.0, "NORMAL")],
    )
    rec = read_treatment_record(write(tmp_path, original, "RT.fx2.dcm"))
    assert rec.sop_instance_uid == original.sop_instance_uid
    assert rec.referenced_plan_uid == PLAN_UID
    assert rec.fraction_number == 2
    assert rec.delivered_at == datetime(2024, 3, 6, 8, 15, 30)
    assert rec.delivery_date == date(2024, 3, 6)
    assert rec.beams == original.beams
    assert rec.patient_id == "RTQA-001"
    assert rec.notes == ()


def test_interrupted_fraction_is_one_fraction_of_two_sessions(tmp_path):
    first = record(
        2, datetime(2024, 3, 6, 8, 0), [DeliveredBeam(1, 400.0, 1200.0, "OPERATOR")], "a"
    )
    second = record(2, datetime(2024, 3, 6, 9, 0), [DeliveredBeam(1, 800.0, 800.0, "NORMAL")], "b")
    one = read_treatment_record(write(tmp_path, first, "a.dcm"))
    (note,) = one.notes
    assert note.level is Level.WARNING
    assert note.message == "beam 1 terminated OPERATOR: delivered 400 of 1200 MU"
    two = read_treatment_record(write(tmp_path, second, "b.dcm"))

    assert [b.delivered_meterset for b in (*one.beams, *two.beams)] == [400.0, 800.0]

    # without the plan its beams are unknown: grouped, completeness not judged
    (fraction,) = fraction_deliveries(None, [one, two])
    assert (fraction.plan_uid, fraction.fraction, fraction.sessions) == (PLAN_UID, 2, 2)
    assert fraction.dates == (date(2024, 3, 6),)
    assert (fraction.complete, fraction.reason) == (None, "no plan to compare beams with")


def test_setup_and_imaging_items_are_left_out(tmp_path):
    beams = [DeliveredBeam(n, 100.0 * n, 100.0 * n, "NORMAL") for n in (1, 2, 3, 4)]
    path = write(tmp_path, record(1, datetime(2024, 3, 4, 8, 0), beams), "r.dcm")
    ds = pydicom.dcmread(path)
    kinds = {1: "TREATMENT", 2: "CONTINUATION", 3: "SETUP", 4: "OPEN_PORTFILM"}
    for item in ds.TreatmentSessionBeamSequence:
        item.TreatmentDeliveryType = kinds[int(item.ReferencedBeamNumber)]
    ds.save_as(path)
    rec = read_treatment_record(path)
    assert [(b.beam_number, b.delivered_meterset) for b in rec.beams] == [(1, 100.0), (2, 200.0)]
    assert rec.notes == ()


def test_date_falls_back_to_control_point_delivery(tmp_path):
    rec = record(1, datetime(2024, 3, 4, 7, 45, 12), [DeliveredBeam(1, 10.0, 10.0)])
    path = write(tmp_path, rec, "r.dcm")
    ds = pydicom.dcmread(path)
    ds.TreatmentDate = ""
    ds.TreatmentTime = ""
    ds.save_as(path)
    assert read_treatment_record(path).delivered_at == datetime(2024, 3, 4, 7, 45, 12)


def test_record_without_plan_reference(tmp_path):
    rec = record(1, datetime(2024, 3, 4), [DeliveredBeam(1, 10.0, 10.0)])
    path = write(tmp_path, rec, "r.dcm", plan_uid="")
    read = read_treatment_record(path)
    assert read.referenced_plan_uid is None
    assert [n.message for n in read.notes] == ["record references no RT Plan"]


@pytest.mark.parametrize(
    ("sop_class", "kind"),
    [
        (RT_BRACHY_RECORD, "RT Brachy Treatment Record"),
        (RT_ION_BEAMS_RECORD, "RT Ion Beams Treatment Record"),
        (RT_SUMMARY_RECORD, "RT Treatment Summary Record"),
    ],
)
def test_other_record_kinds_are_not_analysed(tmp_path, sop_class, kind):
    path = write(tmp_path, record(1, datetime(2024, 3, 4), []), "r.dcm")
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = sop_class
    ds.save_as(path)
    with pytest.raises(DicomError, match=f"{kind}: not analysed"):
        read_treatment_record(path)


def test_a_fraction_number_beyond_any_course_is_unknown(tmp_path):
    """CurrentFractionNumber 2147483647: no course has that many fractions; the record's
    fraction is unknown, with a warning (the schedule would otherwise list 2^31 fractions as
    missing below it)."""
    rec = record(2147483647, datetime(2024, 3, 6, 8, 0), [DeliveredBeam(1, 400.0, 400.0, "NORMAL")])
    read = read_treatment_record(write(tmp_path, rec, "RT.big.dcm"))
    assert read.fraction_number is None
    (note,) = read.notes
    assert note.level is Level.WARNING and note.attribute == "CurrentFractionNumber (3008,0022)"
    assert note.message == (
        "CurrentFractionNumber 2147483647 is not in 1-1000: the record's fraction number is unknown"
    )


def _dated(fraction: int, when: datetime, offset_min: int | None) -> TreatmentRecord:
    rec = record(fraction, when, [DeliveredBeam(1, 1200.0, 1200.0, "NORMAL")])
    return dataclasses.replace(rec, utc_offset_min=offset_min)


def test_hours_between_fractions_are_counted_in_utc_across_a_clock_change(tmp_path):
    # Central Europe, spring 2024: clocks go from +0100 to +0200 on Sunday 31 March. Fraction 1
    # Saturday 15:30 (14:30 UTC), fraction 2 Monday 08:00 (06:00 UTC): 40.5 h on the wall
    # clock, 39.5 h elapsed, under a 40 h minimum
    from rtqa.protocol.model import Fractionation, SourcedValue
    from rtqa.protocol.plan_rules import min_interval
    from rtqa.protocol.schedule import schedule

    fx1 = _dated(1, datetime(2024, 3, 30, 15, 30), 60)
    fx2 = _dated(2, datetime(2024, 4, 1, 8, 0), 120)
    read = [
        read_treatment_record(write(tmp_path, r, f"RT.fx{r.fraction_number}.dcm"))
        for r in (fx1, fx2)
    ]
    assert [r.utc_offset_min for r in read] == [60, 120]
    assert pydicom.dcmread(read[1].path).TimezoneOffsetFromUTC == "+0200"
    fr = Fractionation(min_interval_hours=SourcedValue(40, None, None))
    (f,) = min_interval(fr, schedule(read))
    assert f.value == pytest.approx(39.5) and f.status is Status.MAJOR
    # without the offsets (or with one missing) the wall clock is all there is: 40.5 h
    local = [dataclasses.replace(read[0], utc_offset_min=None), read[1]]
    (g,) = min_interval(fr, schedule(local))
    assert g.value == pytest.approx(40.5) and g.status is Status.PASS
    # the calendar days stay local
    assert schedule(read).span_days == 2


@pytest.mark.parametrize("raw", ["+2500", "0100", "+01:00", "UTC"])
def test_malformed_timezone_offset_is_ignored_with_a_warning(tmp_path, raw):
    path = write(tmp_path, _dated(1, datetime(2024, 3, 6, 8, 0), None), "RT.fx1.dcm")
    ds = pydicom.dcmread(path)
    ds.TimezoneOffsetFromUTC = raw
    ds.save_as(path)
    rec = read_treatment_record(path)
    assert rec.utc_offset_min is None
    (note,) = [n for n in rec.notes if "TimezoneOffsetFromUTC" in n.message]
    assert note.level is Level.WARNING and repr(raw) in note.message
