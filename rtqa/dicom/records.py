"""Read RT Beams Treatment Records: one delivered session of one fraction.

Records link to their plan by ReferencedRTPlanSequence only. An interrupted beam
(TreatmentTerminationStatus other than NORMAL) is kept and noted; a fraction delivered in several
sessions appears as several records with the same CurrentFractionNumber, so fractions are counted
per plan and fraction number (:mod:`rtqa.protocol.schedule`; whether one was fully delivered:
:func:`rtqa.protocol.delivery.fraction_deliveries`), never by counting records. Items the record
marks as setup or imaging exposures (TreatmentDeliveryType other than TREATMENT or CONTINUATION)
are left out: they deliver no treatment MU. ReferencedFractionGroupNumber, where given, names the
plan's fraction group the session delivered (which beams were due and their MU).
TimezoneOffsetFromUTC, where given, is kept beside the (local) treatment time: the hours between
fractions are then counted in UTC (a clock change between two fractions moves them by one hour),
calendar days stay local. Brachy, Ion and Summary records are recognised and refused as "not
analysed".
"""

from __future__ import annotations

import re
from datetime import datetime

from pydicom.dataset import Dataset

from rtqa.dicom.common import (
    MAX_FRACTIONS,
    RT_BEAMS_RECORD,
    RT_BRACHY_RECORD,
    RT_ION_BEAMS_RECORD,
    RT_SUMMARY_RECORD,
    lenient_value,
    optional_number,
    optional_str,
    parse_datetime,
    read_dataset,
    tag_name,
    whole_number,
)
from rtqa.errors import DicomError
from rtqa.model import DeliveredBeam, Level, Note, TreatmentRecord

UNANALYSED_RECORDS = {
    RT_BRACHY_RECORD: "RT Brachy Treatment Record",
    RT_ION_BEAMS_RECORD: "RT Ion Beams Treatment Record",
    RT_SUMMARY_RECORD: "RT Treatment Summary Record",
}


def read_treatment_record(path: str) -> TreatmentRecord:
    """Read the RT Beams Treatment Record at ``path``.

    Raises :class:`DicomError` for other SOP classes (other record kinds: "not analysed").
    """
    ds, notes = read_dataset(path, stop_before_pixels=True)
    return record_from_dataset(ds, path, notes)


def record_from_dataset(ds: Dataset, path: str, notes: list[Note] | None = None) -> TreatmentRecord:
    """A :class:`TreatmentRecord` from an already-read dataset."""
    notes = list(notes or [])
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in UNANALYSED_RECORDS:
        raise DicomError(f"{UNANALYSED_RECORDS[sop_class]}: not analysed", path)
    if sop_class != RT_BEAMS_RECORD:
        raise DicomError(
            f"not an RT Beams Treatment Record (SOP Class UID {sop_class or 'missing'})",
            path,
            tag_name("SOPClassUID"),
        )
    plan_refs = ds.get("ReferencedRTPlanSequence") or []
    plan_uid = str(plan_refs[0].get("ReferencedSOPInstanceUID", "") or "") if plan_refs else ""
    if not plan_uid:
        notes.append(
            Note(
                Level.WARNING,
                "record references no RT Plan",
                path,
                tag_name("ReferencedRTPlanSequence"),
            )
        )
    elif len(plan_refs) > 1:
        notes.append(
            Note(
                Level.WARNING,
                f"record references {len(plan_refs)} plans; the first ({plan_uid}) is used",
                path,
                tag_name("ReferencedRTPlanSequence"),
            )
        )
    sessions = list(ds.get("TreatmentSessionBeamSequence") or [])
    if not sessions:
        notes.append(
            Note(
                Level.WARNING,
                "record has no delivered beams",
                path,
                tag_name("TreatmentSessionBeamSequence"),
            )
        )
    stated = (whole_number(lenient_value(s, "CurrentFractionNumber")) for s in sessions)
    fraction_numbers = sorted({n for n in stated if n is not None})
    out_of_range = [n for n in fraction_numbers if not 1 <= n <= MAX_FRACTIONS]
    if out_of_range:
        notes.append(
            Note(
                Level.WARNING,
                f"CurrentFractionNumber {out_of_range[0]} is not in 1-{MAX_FRACTIONS}: the "
                "record's fraction number is unknown",
                path,
                tag_name("CurrentFractionNumber"),
            )
        )
        fraction_numbers = [n for n in fraction_numbers if 1 <= n <= MAX_FRACTIONS]
    if len(fraction_numbers) > 1:
        notes.append(
            Note(
                Level.WARNING,
                f"beams of one record give different fraction numbers {fraction_numbers}; "
                f"fraction {fraction_numbers[0]} is used",
                path,
                tag_name("CurrentFractionNumber"),
            )
        )
    fraction_group = _fraction_group(ds, path, notes)
    beams = []
    for item in sessions:
        number = whole_number(lenient_value(item, "ReferencedBeamNumber"))
        if number is None:
            notes.append(
                Note(
                    Level.WARNING,
                    "a delivered beam has no ReferencedBeamNumber; ignored",
                    path,
                    tag_name("ReferencedBeamNumber"),
                )
            )
            continue
        if optional_str(item, "TreatmentDeliveryType") not in ("", "TREATMENT", "CONTINUATION"):
            continue  # setup/imaging exposures are not dose deliveries
        beam = DeliveredBeam(
            beam_number=number,
            delivered_meterset=optional_number(
                item, "DeliveredMeterset", path, notes, f"beam {number}"
            ),
            specified_meterset=optional_number(
                item, "SpecifiedMeterset", path, notes, f"beam {number}"
            ),
            termination_status=optional_str(item, "TreatmentTerminationStatus"),
        )
        if beam.termination_status and beam.termination_status != "NORMAL":
            notes.append(
                Note(
                    Level.WARNING,
                    f"beam {number} terminated {beam.termination_status}: delivered "
                    f"{_mu(beam.delivered_meterset)} of {_mu(beam.specified_meterset)} MU",
                    path,
                    tag_name("TreatmentTerminationStatus"),
                )
            )
        beams.append(beam)
    return TreatmentRecord(
        path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        referenced_plan_uid=plan_uid or None,
        fraction_number=fraction_numbers[0] if fraction_numbers else None,
        delivered_at=_delivered_at(ds, sessions),
        utc_offset_min=_utc_offset_min(ds, path, notes),
        beams=tuple(beams),
        patient_id=optional_str(ds, "PatientID"),
        notes=tuple(notes),
        fraction_group=fraction_group,
    )


def _fraction_group(ds: Dataset, path: str, notes: list[Note]) -> int | None:
    """ReferencedFractionGroupNumber (300C,0022): the plan's fraction group this session
    delivered, None when absent or not a whole number (noted)."""
    value = lenient_value(ds, "ReferencedFractionGroupNumber")
    if value is None or str(value).strip() == "":
        return None
    number = whole_number(value)
    if number is None:
        notes.append(
            Note(
                Level.WARNING,
                f"ReferencedFractionGroupNumber {str(value)[:40]!r} is not a whole number: the "
                "fraction group is taken from the delivered beams",
                path,
                tag_name("ReferencedFractionGroupNumber"),
            )
        )
    return number


def _mu(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _utc_offset_min(ds: Dataset, path: str, notes: list[Note]) -> int | None:
    """TimezoneOffsetFromUTC ("+HHMM" / "-HHMM") in minutes east of UTC; None when absent, and
    when malformed (WARNING: the intervals between fractions are then read in local time)."""
    raw = optional_str(ds, "TimezoneOffsetFromUTC").strip()
    if not raw:
        return None
    match = re.fullmatch(r"([+-])(\d{2})(\d{2})", raw)
    if match is None or int(match[2]) > 14 or int(match[3]) >= 60:
        notes.append(
            Note(
                Level.WARNING,
                f"TimezoneOffsetFromUTC {raw!r} is not of the form +HHMM or -HHMM: ignored (the "
                "time between fractions is read in local time)",
                path,
                tag_name("TimezoneOffsetFromUTC"),
            )
        )
        return None
    minutes = 60 * int(match[2]) + int(match[3])
    return minutes if match[1] == "+" else -minutes


def _delivered_at(ds: Dataset, sessions: list[Dataset]) -> datetime | None:
    """TreatmentDate/Time, else the earliest dated control point delivery."""
    when = parse_datetime(ds.get("TreatmentDate"), ds.get("TreatmentTime"))
    if when is not None:
        return when
    times = [
        t
        for s in sessions
        for p in s.get("ControlPointDeliverySequence") or []
        if (
            t := parse_datetime(
                p.get("TreatmentControlPointDate"), p.get("TreatmentControlPointTime")
            )
        )
        is not None
    ]
    return min(times) if times else None
