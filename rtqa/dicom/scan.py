"""Find DICOM-RT objects in folders and link them into :class:`~rtqa.model.Case` objects.

Every file under the given paths is read without its pixels and dispatched by SOP Class UID;
a second file holding a SOP Instance UID already read is ignored (and noted). The objects found
are linked into cases by :mod:`rtqa.dicom.linking`. Unreadable, truncated and non-DICOM files
are reported with their path and reason; the rest still loads.
"""

from __future__ import annotations

import filecmp
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from rtqa.dicom.case_dose import dose_header
from rtqa.dicom.common import (
    CT_IMAGE,
    DEFORMABLE_REGISTRATION,
    ENHANCED_CT_IMAGE,
    MEDIA_STORAGE_DIRECTORY,
    MR_IMAGE,
    RT_BEAMS_RECORD,
    RT_DOSE,
    RT_ION_PLAN,
    RT_PLAN,
    RT_STRUCTURE_SET,
    SPATIAL_REGISTRATION,
    garbled_sequence,
    optional_str,
    pydicom_failure,
    read_dataset,
    tag_name,
    value_notes,
)
from rtqa.dicom.found import Found
from rtqa.dicom.image_references import image_references
from rtqa.dicom.images import image_from_dataset
from rtqa.dicom.linking import link
from rtqa.dicom.plan import plan_from_dataset
from rtqa.dicom.records import UNANALYSED_RECORDS, record_from_dataset
from rtqa.dicom.registration import registration_from_dataset
from rtqa.dicom.truncation import truncation_reason
from rtqa.errors import InputError
from rtqa.model import Case, Level, Note

IMAGE_CLASSES = {CT_IMAGE, MR_IMAGE, "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.20"}
NOT_DICOM = "not DICOM"
UNREADABLE = "unreadable"


@dataclass
class ScanResult:
    """Cases found, with notes about files and objects outside any case.

    ``files`` counts files by Modality, plus ``"not DICOM"`` and ``"unreadable"``.
    """

    cases: list[Case]
    notes: list[Note] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Note]:
        """Error notes of the scan and of every case."""
        found = [n for n in self.notes if n.level is Level.ERROR]
        for case in self.cases:
            found += [n for n in case.notes if n.level is Level.ERROR]
        return found


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def scan(paths: list[str] | str | Path) -> ScanResult:
    """Read every file under ``paths`` (folders recursively, files directly) and link cases."""
    if isinstance(paths, str | Path):
        paths = [str(paths)]
    found = Found()
    for path in _walk([str(p) for p in paths], found.notes):
        _read_file(path, found)
    cases = link(found)
    return ScanResult(cases=cases, notes=found.notes, files=dict(sorted(found.files.items())))


def _walk(paths: list[str], notes: list[Note]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names))
        elif os.path.isfile(path):
            files.append(path)
        else:
            notes.append(Note(Level.ERROR, "no such file or folder", path))
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------


def _read_file(path: str, found: Found) -> None:
    try:
        ds, read_notes = read_dataset(path, stop_before_pixels=True)
    except InputError as exc:
        if "not a DICOM file" in exc.reason:
            found.files[NOT_DICOM] += 1
            found.notes.append(Note(Level.INFO, "not a DICOM file: skipped", path))
        else:
            found.files[UNREADABLE] += 1
            found.notes.append(Note(Level.ERROR, exc.reason, path))
        return
    # pydicom converts most values on first use: what it finds invalid then is a note too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _classify(ds, path, found, read_notes)
        except InputError as exc:
            found.notes.append(Note(Level.ERROR, exc.reason, path, exc.attribute))
        except Exception as exc:  # a value pydicom fails to convert, or a garbled sequence
            why = pydicom_failure(exc) or garbled_sequence(ds)
            if why is None:
                raise
            found.files[UNREADABLE] += 1
            found.notes.append(Note(Level.ERROR, f"not read: {why}", path))
    found.notes.extend(value_notes(caught, path))


def _classify(ds: Dataset, path: str, found: Found, read_notes: list[Note]) -> None:
    """Count the file by modality and read it by SOP class; a DICOMDIR, a truncated file or
    one without UIDs is counted and named, not read."""
    meta_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    sop_class = str(ds.get("SOPClassUID", "") or meta_class)
    if sop_class == MEDIA_STORAGE_DIRECTORY or meta_class == MEDIA_STORAGE_DIRECTORY:
        found.files["DICOMDIR"] += 1
        found.notes.append(Note(Level.INFO, "DICOMDIR ignored (files are found by walking)", path))
        return
    reason = truncation_reason(path)
    if reason is not None:
        found.files[UNREADABLE] += 1
        found.notes.append(Note(Level.ERROR, f"truncated file: {reason}", path))
        return
    if not sop_class or not ds.get("SOPInstanceUID"):
        found.files[UNREADABLE] += 1
        found.notes.append(Note(Level.ERROR, "no SOP Class UID or SOP Instance UID", path))
        return
    modality = optional_str(ds, "Modality") or "?"
    found.files[modality] += 1
    found.notes.extend(read_notes)
    _dispatch(ds, sop_class, path, found, read_notes)


def _dispatch(ds: Dataset, sop_class: str, path: str, found: Found, read_notes: list[Note]) -> None:
    if sop_class in (RT_PLAN, RT_ION_PLAN):
        plan = plan_from_dataset(ds, path)
        _add_unique(found.plans, plan.sop_instance_uid, plan, path, found.notes)
    elif sop_class == RT_STRUCTURE_SET:
        from rtqa.dicom.structures import structure_set_from_dataset  # shapely: on first use

        ss = structure_set_from_dataset(ds, path, read_notes)  # the header read holds the whole set
        _add_unique(found.structure_sets, ss.sop_instance_uid, ss, path, found.notes)
        found.image_refs.setdefault(ss.sop_instance_uid, image_references(ds))
    elif sop_class == RT_DOSE:
        header = dose_header(ds, path)
        _add_unique(found.doses, header.sop_instance_uid, header, path, found.notes)
    elif sop_class == RT_BEAMS_RECORD:
        _append_unique(found.records, record_from_dataset(ds, path), path, found.notes)
    elif sop_class in UNANALYSED_RECORDS:
        found.notes.append(
            Note(Level.WARNING, f"{UNANALYSED_RECORDS[sop_class]}: not analysed", path)
        )
    elif sop_class == SPATIAL_REGISTRATION:
        _append_unique(found.registrations, registration_from_dataset(ds, path), path, found.notes)
    elif sop_class == DEFORMABLE_REGISTRATION:
        found.notes.append(Note(Level.ERROR, "deformable registration not supported", path))
    elif sop_class == ENHANCED_CT_IMAGE:
        found.notes.append(Note(Level.WARNING, "Enhanced (multi-frame) CT: not analysed", path))
    elif sop_class in IMAGE_CLASSES or (
        "ImagePositionPatient" in ds
        and (optional_str(ds, "Modality") or "").upper() not in _EXPECTED_CLASS
    ):
        image = image_from_dataset(ds, path)
        found.slices[image.series_instance_uid].append(image)
    else:
        modality = optional_str(ds, "Modality") or "?"
        expected = _EXPECTED_CLASS.get(modality.upper())
        if expected is not None:
            # an RT object rtqa reads, under a SOP class it does not know: say so by name, as
            # the case will lack it
            name, uid = expected
            found.notes.append(
                Note(
                    Level.ERROR,
                    f"Modality {modality} but SOP Class UID {sop_class}, not {name} ({uid}): "
                    "not read",
                    path,
                    tag_name("SOPClassUID"),
                )
            )
            return
        found.notes.append(
            Note(Level.INFO, f"{modality} object not used (SOP Class UID {sop_class})", path)
        )


#: The SOP class rtqa reads for each RT modality (name, UID): a file of that modality under
#: another class is an error, never skipped silently.
_EXPECTED_CLASS = {
    "RTDOSE": ("RT Dose Storage", RT_DOSE),
    "RTSTRUCT": ("RT Structure Set Storage", RT_STRUCTURE_SET),
    "RTPLAN": ("RT Plan Storage", RT_PLAN),
    "RTRECORD": ("RT Beams Treatment Record Storage", RT_BEAMS_RECORD),
    "REG": ("Spatial Registration Storage", SPATIAL_REGISTRATION),
}


def _add_unique(index: dict, uid: str, obj: object, path: str, notes: list[Note]) -> None:
    """Keep the first object of each SOP Instance UID; a second file with the same UID is
    ignored: a WARNING on it when the two files are byte for byte the same (an export made
    twice), an ERROR on the file kept when they differ (which one is right cannot be told from
    the files; ``check`` makes the course not evaluable, see :data:`CONFLICT_ATTRIBUTE`)."""
    if uid in index:
        first = getattr(index[uid], "path", "")
        if first and not _same_bytes(first, path):
            notes.append(
                Note(
                    Level.ERROR,
                    f"{path} has this file's SOP Instance UID {uid} with different content: it "
                    "is ignored and this file used; which of the two is right cannot be told",
                    first,
                    CONFLICT_ATTRIBUTE,
                )
            )
            return
        notes.append(
            Note(
                Level.WARNING, f"duplicate SOP Instance UID {uid} (also in {first}): ignored", path
            )
        )
        return
    index[uid] = obj


#: The attribute of the ERROR note on a file whose SOP Instance UID another file holds too.
CONFLICT_ATTRIBUTE = tag_name("SOPInstanceUID")


def _same_bytes(a: str, b: str) -> bool:
    """Whether two files hold the same bytes (False when either cannot be read)."""
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _append_unique(items: list, obj, path: str, notes: list[Note]) -> None:
    """Append a record or registration unless one with its SOP Instance UID is there: a file
    exported twice (a copied folder) is one object, not two sessions (noted as a duplicate)."""
    uid = obj.sop_instance_uid
    if uid:
        first = next((o for o in items if o.sop_instance_uid == uid), None)
        if first is not None:
            _add_unique({uid: first}, uid, obj, path, notes)
            return
    items.append(obj)
