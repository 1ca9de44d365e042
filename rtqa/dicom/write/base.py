"""The modules every rtqa-written object shares: file meta, patient, study, series, equipment.

UIDs are passed in (see :func:`rtqa.dicom.common.make_uid`) so that writers are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
)

from rtqa import __version__


@dataclass(frozen=True)
class Header:
    """Patient and study identity shared by the objects of one synthetic or exported course."""

    patient_id: str
    patient_name: str
    study_instance_uid: str
    study_datetime: datetime
    patient_birth_date: str = ""
    patient_sex: str = "O"
    study_id: str = "1"
    accession_number: str = ""
    referring_physician: str = ""
    institution: str = ""
    operator: str = ""
    manufacturer: str = "rtqa"
    model_name: str = "rtqa"


def new_dataset(
    header: Header,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    modality: str,
    series_instance_uid: str,
    series_number: int = 1,
    frame_of_reference_uid: str | None = None,
    content_datetime: datetime | None = None,
) -> Dataset:
    """A dataset with SOP Common, Patient, General Study, Series, Equipment (and Frame of
    Reference when a UID is given) filled in."""
    when = content_datetime or header.study_datetime
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.StudyDate = header.study_datetime.strftime("%Y%m%d")
    ds.StudyTime = header.study_datetime.strftime("%H%M%S")
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AccessionNumber = header.accession_number
    ds.Modality = modality
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution
    ds.ReferringPhysicianName = header.referring_physician
    ds.OperatorsName = header.operator
    ds.ManufacturerModelName = header.model_name
    ds.SoftwareVersions = f"rtqa {__version__}"
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.patient_birth_date
    ds.PatientSex = header.patient_sex
    ds.StudyInstanceUID = header.study_instance_uid
    ds.StudyID = header.study_id
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    if frame_of_reference_uid:
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
    return ds


def save(ds: Dataset, path: str | Path, *, deflate: bool = False) -> Path:
    """Write ``ds`` as a Part 10 file (explicit VR little endian, or deflated) and return its path.

    A dataset already compressed (e.g. RLE pixel data) keeps its transfer syntax.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    existing = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if existing is not None and existing.is_compressed:
        meta.TransferSyntaxUID = existing
    else:
        meta.TransferSyntaxUID = (
            DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
        )
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"RTQA_{__version__}"[:16]
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.save_as(path, enforce_file_format=True)
    return path
