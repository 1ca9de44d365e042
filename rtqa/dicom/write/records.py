"""Write an RT Beams Treatment Record from a :class:`~rtqa.model.TreatmentRecord`.

One record is one delivered session: RT General Treatment Record (treatment date/time, the
referenced RT Plan), RT Treatment Machine Record and RT Beams Session Record
(ReferencedFractionGroupNumber when the record names one; one TreatmentSessionBeamSequence item
per beam with CurrentFractionNumber, TreatmentTerminationStatus, SpecifiedMeterset and
DeliveredMeterset in MU, and a two-point control point delivery sequence dated with the session
date and time).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import format_number_as_ds

from rtqa.dicom.common import RT_BEAMS_RECORD, RT_PLAN
from rtqa.dicom.write.base import Header, new_dataset, save
from rtqa.model import TreatmentRecord


def write_treatment_record(
    record: TreatmentRecord,
    path: str | Path,
    header: Header,
    *,
    plan_uid: str | None = None,
    series_instance_uid: str,
    series_number: int = 1,
    sop_instance_uid: str | None = None,
    instance_number: int | None = None,
    treatment_machine: str = "RTQA_LINAC",
    beam_names: dict[int, str] | None = None,
) -> Path:
    """Write ``record`` as an RT Beams Treatment Record to ``path`` and return the path.

    ``plan_uid`` (default ``record.referenced_plan_uid``) goes into ReferencedRTPlanSequence;
    None writes no plan reference. ``sop_instance_uid`` defaults to ``record.sop_instance_uid``.
    """
    when = record.delivered_at
    ds = new_dataset(
        header,
        sop_class_uid=RT_BEAMS_RECORD,
        sop_instance_uid=sop_instance_uid or record.sop_instance_uid,
        modality="RTRECORD",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        content_datetime=when,
    )
    ds.InstanceNumber = instance_number or record.fraction_number or 1
    ds.TreatmentDate = when.strftime("%Y%m%d") if when else ""
    ds.TreatmentTime = when.strftime("%H%M%S") if when else ""
    if record.utc_offset_min is not None:
        sign = "+" if record.utc_offset_min >= 0 else "-"
        hours, minutes = divmod(abs(record.utc_offset_min), 60)
        ds.TimezoneOffsetFromUTC = f"{sign}{hours:02d}{minutes:02d}"
    plan_uid = plan_uid if plan_uid is not None else record.referenced_plan_uid
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_PLAN
        ref.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = DicomSequence([ref])
    if record.fraction_group is not None:
        ds.ReferencedFractionGroupNumber = record.fraction_group
    machine = Dataset()
    machine.TreatmentMachineName = treatment_machine
    machine.Manufacturer = header.manufacturer
    machine.InstitutionName = header.institution
    machine.ManufacturerModelName = header.model_name
    machine.DeviceSerialNumber = "1"
    ds.TreatmentMachineSequence = DicomSequence([machine])
    names = beam_names or {}
    items = []
    for beam in record.beams:
        item = Dataset()
        item.ReferencedBeamNumber = beam.beam_number
        item.BeamName = names.get(beam.beam_number, f"B{beam.beam_number}")
        item.BeamType = "STATIC"
        item.RadiationType = "PHOTON"
        item.TreatmentDeliveryType = "TREATMENT"
        item.NumberOfWedges = 0
        item.NumberOfCompensators = 0
        item.NumberOfBoli = 0
        item.NumberOfBlocks = 0
        item.PrimaryDosimeterUnit = "MU"
        item.CurrentFractionNumber = record.fraction_number
        item.TreatmentTerminationStatus = beam.termination_status or "NORMAL"
        item.TreatmentVerificationStatus = "VERIFIED"
        if beam.specified_meterset is not None:
            item.SpecifiedMeterset = format_number_as_ds(float(beam.specified_meterset))
        if beam.delivered_meterset is not None:
            item.DeliveredMeterset = format_number_as_ds(float(beam.delivered_meterset))
        item.NumberOfControlPoints = 2
        item.ControlPointDeliverySequence = DicomSequence(
            [_delivery_point(0, 0.0, when), _delivery_point(1, beam.delivered_meterset, when)]
        )
        items.append(item)
    ds.TreatmentSessionBeamSequence = DicomSequence(items)
    return save(ds, path)


def _delivery_point(index: int, meterset: float | None, when: datetime | None) -> Dataset:
    point = Dataset()
    point.ReferencedControlPointIndex = index
    point.TreatmentControlPointDate = when.strftime("%Y%m%d") if when else ""
    point.TreatmentControlPointTime = when.strftime("%H%M%S") if when else ""
    point.DeliveredMeterset = format_number_as_ds(float(meterset or 0.0))
    return point
