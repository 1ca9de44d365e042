"""Find DICOM-RT objects in folders and link them into :class:`~rtqa.model.Case` objects.

Linking uses UIDs only, never file names or file times:

* RT Plan -> RT Structure Set: ReferencedStructureSetSequence; when the plan names none (or one
  that is absent) the single structure set of the plan's frame of reference and study is used,
  with a warning.
* RT Dose -> RT Plan: ReferencedRTPlanSequence; a dose naming no plan is given to the single plan
  of its frame of reference, with a warning. Several doses of one plan are combined
  (:func:`rtqa.dicom.dose.combine_doses`).
* Treatment records -> RT Plan: ReferencedRTPlanSequence.
* CT -> case: the series the structure set references, else the single series of the case's frame.
  Referenced images (RTReferencedSeriesSequence and every ContourImageSequence) that are absent
  are a WARNING ("referenced CT missing: N of M images"; INFO when the input holds no images at
  all, an export of the RT objects alone): nothing computed needs the CT (DVHs use
  the contours and the dose grid), only the check that the CT shares the structure set's frame
  of reference is then skipped. A referenced CT in another frame of reference than the structure
  set is an ERROR naming both frames; the structure set's frame is kept (it links the structures
  to the dose) and the CT is not used with the structures.
* Spatial registrations -> every case whose frame of reference they register.

The WARNING and ERROR notes of the structure set's ROIs join the case's notes, and a dose whose
maximum is far from the plan's prescription (one fraction's dose under a course label, a wrong
DoseGridScaling) is noted.

A frame of reference holding no plan but at most one structure set (and any doses) forms a
plan-less case (enough for ``rtqa dvh``). Dose pixels are read only for doses that belong to a
case. Unreadable, truncated and non-DICOM files are reported with their path and reason; the rest
still loads.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

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
    optional_str,
    read_dataset,
    tag_name,
)
from rtqa.dicom.images import ImageSlice, image_from_dataset, series_from_slices
from rtqa.dicom.plan import plan_from_dataset
from rtqa.dicom.records import UNANALYSED_RECORDS, record_from_dataset
from rtqa.dicom.registration import registration_from_dataset
from rtqa.dicom.truncation import truncation_reason
from rtqa.dose_level import is_one_fraction, is_plausible, level_text
from rtqa.errors import InputError
from rtqa.model import (
    Case,
    DoseGrid,
    ImageSeries,
    Level,
    Note,
    Plan,
    Registration,
    StructureSet,
    TreatmentRecord,
)

IMAGE_CLASSES = {CT_IMAGE, MR_IMAGE, "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.20"}
NOT_DICOM = "not DICOM"
UNREADABLE = "unreadable"
CONTOUR_IMAGE_SEQUENCE = 0x30060016
REFERENCED_SOP_INSTANCE_TAG = b"\x08\x00\x55\x11"  # (0008,1155), little endian


@dataclass(frozen=True)
class DoseHeader:
    """What linking needs of an RT Dose, read without its pixels."""

    path: str
    sop_instance_uid: str
    frame_of_reference_uid: str | None
    referenced_plan_uids: tuple[str, ...]
    summation_type: str
    study_instance_uid: str = ""


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


@dataclass(frozen=True)
class ImageReferences:
    """The images a structure set names as drawn on: the series of RTReferencedSeriesSequence,
    each with the FrameOfReferenceUID of the ReferencedFrameOfReferenceSequence item holding it,
    and the SOP Instance UIDs of every ContourImageSequence (series- and contour-level)."""

    series: tuple[tuple[str, str | None], ...] = ()  # (SeriesInstanceUID, frame holding it)
    image_uids: frozenset[str] = frozenset()


@dataclass
class _Found:
    """Everything read from the files, before linking."""

    plans: dict[str, Plan] = field(default_factory=dict)
    structure_sets: dict[str, StructureSet] = field(default_factory=dict)
    doses: dict[str, DoseHeader] = field(default_factory=dict)
    records: list[TreatmentRecord] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    slices: dict[str, list[ImageSlice]] = field(default_factory=lambda: defaultdict(list))
    image_refs: dict[str, ImageReferences] = field(default_factory=dict)  # by structure set UID
    notes: list[Note] = field(default_factory=list)
    files: Counter = field(default_factory=Counter)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def scan(paths: list[str] | str | Path) -> ScanResult:
    """Read every file under ``paths`` (folders recursively, files directly) and link cases."""
    if isinstance(paths, str | Path):
        paths = [str(paths)]
    found = _Found()
    for path in _walk([str(p) for p in paths], found.notes):
        _read_file(path, found)
    cases = _link(found)
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


def _read_file(path: str, found: _Found) -> None:
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
    try:
        _dispatch(ds, sop_class, path, found, read_notes)
    except InputError as exc:
        found.notes.append(Note(Level.ERROR, exc.reason, path, exc.attribute))


def _dispatch(
    ds: Dataset, sop_class: str, path: str, found: _Found, read_notes: list[Note]
) -> None:
    if sop_class in (RT_PLAN, RT_ION_PLAN):
        plan = plan_from_dataset(ds, path)
        _add_unique(found.plans, plan.sop_instance_uid, plan, path, found.notes)
    elif sop_class == RT_STRUCTURE_SET:
        from rtqa.dicom.structures import structure_set_from_dataset  # shapely: on first use

        ss = structure_set_from_dataset(ds, path, read_notes)  # the header read holds the whole set
        _add_unique(found.structure_sets, ss.sop_instance_uid, ss, path, found.notes)
        found.image_refs.setdefault(ss.sop_instance_uid, image_references(ds))
    elif sop_class == RT_DOSE:
        header = _dose_header(ds, path)
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
    elif sop_class in IMAGE_CLASSES or "ImagePositionPatient" in ds:
        image = image_from_dataset(ds, path)
        found.slices[image.series_instance_uid].append(image)
    else:
        modality = optional_str(ds, "Modality") or "?"
        found.notes.append(
            Note(Level.INFO, f"{modality} object not used (SOP Class UID {sop_class})", path)
        )


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


def image_references(ds: Dataset) -> ImageReferences:
    """The images an RT Structure Set dataset references (see :class:`ImageReferences`).
    ContourImageSequence items are read from their raw bytes where pydicom has not yet converted
    them (one item per contour would otherwise cost more than the contours)."""
    series: dict[str, str | None] = {}
    images: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        frame_uid = optional_str(frame, "FrameOfReferenceUID") or None
        for study in frame.get("RTReferencedStudySequence") or []:
            for item in study.get("RTReferencedSeriesSequence") or []:
                uid = optional_str(item, "SeriesInstanceUID")
                if uid:
                    series.setdefault(uid, frame_uid)
                images.update(_contour_image_uids(item))
    for roi in ds.get("ROIContourSequence") or []:
        for contour in roi.get("ContourSequence") or []:
            images.update(_contour_image_uids(contour))
    images.discard("")
    return ImageReferences(tuple(series.items()), frozenset(images))


def _contour_image_uids(item: Dataset) -> list[str]:
    """ReferencedSOPInstanceUID of every item of ``item``'s ContourImageSequence."""
    if CONTOUR_IMAGE_SEQUENCE not in item:
        return []
    raw = item.get_item(CONTOUR_IMAGE_SEQUENCE)
    value = getattr(raw, "value", None)
    if isinstance(value, bytes) and getattr(raw, "is_little_endian", False):
        return _raw_sop_instance_uids(value, bool(raw.is_implicit_VR))
    return [
        optional_str(ref, "ReferencedSOPInstanceUID")
        for ref in item.get("ContourImageSequence") or []
    ]


def _raw_sop_instance_uids(value: bytes, implicit: bool) -> list[str]:
    """ReferencedSOPInstanceUID values in the little-endian bytes of a sequence (tag, then VR
    "UI" and a 2-byte length when explicit, else a 4-byte length, then the padded UID)."""
    uids = []
    at = value.find(REFERENCED_SOP_INSTANCE_TAG)
    while at >= 0:
        head = at + len(REFERENCED_SOP_INSTANCE_TAG)
        if implicit:
            length, begin = int.from_bytes(value[head : head + 4], "little"), head + 4
        elif value[head : head + 2] == b"UI":
            length, begin = int.from_bytes(value[head + 2 : head + 4], "little"), head + 4
        else:
            at = value.find(REFERENCED_SOP_INSTANCE_TAG, head)
            continue
        uids.append(value[begin : begin + length].rstrip(b"\x00 ").decode("ascii", "replace"))
        at = value.find(REFERENCED_SOP_INSTANCE_TAG, begin + length)
    return uids


def _dose_header(ds: Dataset, path: str) -> DoseHeader:
    refs = tuple(
        str(r.get("ReferencedSOPInstanceUID", ""))
        for r in ds.get("ReferencedRTPlanSequence") or []
        if r.get("ReferencedSOPInstanceUID")
    )
    return DoseHeader(
        path=path,
        sop_instance_uid=str(ds.SOPInstanceUID),
        frame_of_reference_uid=optional_str(ds, "FrameOfReferenceUID") or None,
        referenced_plan_uids=refs,
        summation_type=optional_str(ds, "DoseSummationType"),
        study_instance_uid=optional_str(ds, "StudyInstanceUID"),
    )


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------


def _link(found: _Found) -> list[Case]:
    notes = found.notes
    series = _build_series(found)
    ss_used: set[str] = set()
    dose_used: set[str] = set()
    drafts: list[_Draft] = []

    # plans and what they reference
    doses_by_plan: dict[str, list[DoseHeader]] = defaultdict(list)
    for dose in found.doses.values():
        targets = [u for u in dose.referenced_plan_uids if u in found.plans]
        if targets:
            doses_by_plan[targets[0]].append(dose)
            dose_used.add(dose.sop_instance_uid)
            if len(targets) > 1:
                notes.append(
                    Note(
                        Level.WARNING,
                        f"dose references several plans present; given to plan {targets[0]}",
                        dose.path,
                    )
                )
    for dose in found.doses.values():
        if dose.sop_instance_uid in dose_used or dose.referenced_plan_uids:
            continue
        same_frame = [
            p
            for p in found.plans.values()
            if p.frame_of_reference_uid == dose.frame_of_reference_uid
        ]
        if len(same_frame) == 1:
            plan = same_frame[0]
            doses_by_plan[plan.sop_instance_uid].append(dose)
            dose_used.add(dose.sop_instance_uid)
            notes.append(
                Note(
                    Level.WARNING,
                    f"dose references no plan; linked to plan '{plan.label}' by frame of "
                    "reference (inferred)",
                    dose.path,
                )
            )

    for plan in sorted(found.plans.values(), key=lambda p: (p.label, p.sop_instance_uid)):
        draft = _Draft(plan=plan)
        draft.structure_set = _plan_structure_set(plan, found, draft.notes)
        if draft.structure_set is not None:
            ss_used.add(draft.structure_set.sop_instance_uid)
        draft.doses = doses_by_plan.get(plan.sop_instance_uid, [])
        draft.records = sorted(
            (r for r in found.records if r.referenced_plan_uid == plan.sop_instance_uid),
            key=lambda r: (r.fraction_number or 0, r.delivered_at or plan.plan_datetime or 0),
        )
        drafts.append(draft)

    drafts += _planless_drafts(found, ss_used, dose_used)
    for dose in found.doses.values():
        if dose.sop_instance_uid not in dose_used:
            notes.append(_unlinked_dose_note(dose, found))
    for ss in found.structure_sets.values():
        if ss.sop_instance_uid not in ss_used:
            notes.append(
                Note(
                    Level.WARNING,
                    f"structure set '{ss.label}' is not linked to any plan or dose",
                    ss.path,
                )
            )
    for record in found.records:
        if record.referenced_plan_uid not in found.plans:
            ref = record.referenced_plan_uid or "no plan"
            notes.append(
                Note(
                    Level.WARNING,
                    f"treatment record (fraction {record.fraction_number}) references unknown "
                    f"plan {ref}",
                    record.path,
                )
            )
            notes.extend(record.notes)

    ids = _case_ids(drafts)
    cases = [d.build(case_id, found, series) for d, case_id in zip(drafts, ids, strict=True)]
    _report_unused(found, cases, series, notes)
    return cases


@dataclass
class _Draft:
    plan: Plan | None = None
    structure_set: StructureSet | None = None
    doses: list[DoseHeader] = field(default_factory=list)
    records: list[TreatmentRecord] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def frame(self) -> str | None:
        for part in (self.plan, self.structure_set):
            if part is not None and part.frame_of_reference_uid:
                return part.frame_of_reference_uid
        return self.doses[0].frame_of_reference_uid if self.doses else None

    @property
    def label(self) -> str:
        if self.plan is not None:
            return self.plan.label
        if self.structure_set is not None and self.structure_set.label:
            return self.structure_set.label
        return "noplan"

    @property
    def uid(self) -> str:
        if self.plan is not None:
            return self.plan.sop_instance_uid
        if self.structure_set is not None:
            return self.structure_set.sop_instance_uid
        return self.doses[0].sop_instance_uid if self.doses else ""

    def build(self, case_id: str, found: _Found, series: dict[str, ImageSeries]) -> Case:
        notes = list(self.notes)
        if self.plan is not None:
            notes.extend(self.plan.notes)
        if self.structure_set is not None:
            notes.extend(self.structure_set.notes)
            notes.extend(roi_warnings(self.structure_set))
        for record in self.records:
            notes.extend(record.notes)
        dose = _load_dose(self.doses, self.plan, notes)
        if dose is not None and self.plan is not None:
            notes.extend(dose_against_prescription(dose, self.plan))
        case = Case(
            case_id=case_id,
            plan=self.plan,
            structure_set=self.structure_set,
            dose=dose,
            records=tuple(self.records),
            notes=notes,
        )
        case.images = _case_images(case, found, series, notes)
        case.registrations = tuple(
            r for r in found.registrations if case.frame_of_reference_uid in r.frames
        )
        _check_frames(case, found.registrations, notes)
        _check_patient(case, notes)
        _missing(case, self.doses, notes)
        own = [p.path for p in (case.plan, case.structure_set) if p is not None]
        own += [h.path for h in self.doses]
        case.source_dir = _common_dir(tuple(own))
        return case


def dose_against_prescription(dose: DoseGrid, plan: Plan) -> list[Note]:
    """A WARNING when the dose maximum (Gy) cannot be that of a plan for its highest prescribed
    total dose Rx (the rule of :mod:`rtqa.dose_level`, the likely cause named). Nothing when
    the plan states no prescription."""
    totals = [p.total_gy for p in plan.prescriptions if p.total_gy and p.total_gy > 0]
    if not totals or dose.dose_gy.size == 0:
        return []
    rx = max(totals)
    peak = dose.max_gy
    if is_plausible(peak, rx):
        return []
    fractions = plan.fractions_planned
    attribute = "DoseSummationType" if is_one_fraction(peak, rx, fractions) else "DoseGridScaling"
    return [
        Note(
            Level.WARNING,
            level_text(peak, rx, fractions) + "; the numbers are reported as read",
            ", ".join(dose.paths),
            tag_name(attribute),
        )
    ]


def roi_warnings(structure_set: StructureSet) -> list[Note]:
    """The WARNING and ERROR notes of the structure set's ROIs (contours dropped, repaired or
    refused), so that they reach every report of the case; INFO notes (repeated points removed)
    stay with the ROI."""
    return [n for r in structure_set.rois for n in r.notes if n.level is not Level.INFO]


def _plan_structure_set(plan: Plan, found: _Found, notes: list[Note]) -> StructureSet | None:
    ref = plan.referenced_structure_set_uid
    if ref and ref in found.structure_sets:
        return found.structure_sets[ref]
    candidates = [
        s
        for s in found.structure_sets.values()
        if s.frame_of_reference_uid
        and s.frame_of_reference_uid == plan.frame_of_reference_uid
        and (not s.study_instance_uid or s.study_instance_uid == plan.study_instance_uid)
    ]
    if ref:
        notes.append(
            Note(Level.WARNING, f"plan references structure set {ref}, not present", plan.path)
        )
    if len(candidates) == 1:
        notes.append(
            Note(
                Level.WARNING,
                f"structure set '{candidates[0].label}' linked by frame of reference and study "
                "(the plan's reference does not resolve)",
                plan.path,
            )
        )
        return candidates[0]
    if len(candidates) > 1:
        listed = ", ".join(s.path for s in candidates)
        notes.append(
            Note(
                Level.ERROR,
                f"cannot link a structure set: several in the plan's frame of reference ({listed})",
                plan.path,
            )
        )
    return None


def _planless_drafts(found: _Found, ss_used: set[str], dose_used: set[str]) -> list[_Draft]:
    """Cases without a plan: per frame of reference holding no plan, at most one structure set."""
    plan_frames = {p.frame_of_reference_uid for p in found.plans.values()}
    by_frame: dict[str | None, tuple[list[StructureSet], list[DoseHeader]]] = defaultdict(
        lambda: ([], [])
    )
    for ss in found.structure_sets.values():
        if ss.sop_instance_uid not in ss_used and ss.frame_of_reference_uid not in plan_frames:
            by_frame[ss.frame_of_reference_uid][0].append(ss)
    for dose in found.doses.values():
        if (
            dose.sop_instance_uid not in dose_used
            and dose.frame_of_reference_uid not in plan_frames
        ):
            by_frame[dose.frame_of_reference_uid][1].append(dose)
    drafts = []
    for frame in sorted(by_frame, key=str):
        structure_sets, doses = by_frame[frame]
        if frame is None:
            continue
        if len(structure_sets) > 1:
            listed = ", ".join(s.path for s in structure_sets)
            note = Note(
                Level.ERROR,
                f"several structure sets share frame of reference {frame} with no plan to choose "
                f"between them: {listed}",
            )
            found.notes.append(note)
            continue
        draft = _Draft(structure_set=structure_sets[0] if structure_sets else None, doses=doses)
        draft.notes.append(
            Note(
                Level.WARNING,
                f"no RT Plan: structure set and dose linked by frame of reference {frame}",
            )
        )
        for ss in structure_sets:
            ss_used.add(ss.sop_instance_uid)
        for dose in doses:
            dose_used.add(dose.sop_instance_uid)
            for ref in dose.referenced_plan_uids:
                draft.notes.append(
                    Note(Level.WARNING, f"dose references plan {ref}, not present", dose.path)
                )
        drafts.append(draft)
    return drafts


def _unlinked_dose_note(dose: DoseHeader, found: _Found) -> Note:
    if dose.referenced_plan_uids:
        refs = ", ".join(dose.referenced_plan_uids)
        return Note(Level.WARNING, f"dose references plan {refs}, not present: not used", dose.path)
    plans = [
        p.label
        for p in found.plans.values()
        if p.frame_of_reference_uid == dose.frame_of_reference_uid
    ]
    if len(plans) > 1:
        return Note(
            Level.ERROR,
            f"dose references no plan and its frame of reference holds several plans "
            f"({', '.join(sorted(plans))}): cannot link",
            dose.path,
        )
    return Note(Level.WARNING, "dose is not linked to any plan or structure set", dose.path)


def _load_dose(headers: list[DoseHeader], plan: Plan | None, notes: list[Note]) -> DoseGrid | None:
    """Read the pixels of a case's doses and combine them into the course dose."""
    if not headers:
        return None
    from rtqa.dicom.dose import combine_doses as combine
    from rtqa.dicom.dose import read_dose

    grids = []
    for header in sorted(headers, key=lambda h: h.path):
        try:
            grids.append(read_dose(header.path))
        except InputError as exc:
            notes.append(
                Note(Level.ERROR, f"dose not used: {exc.reason}", header.path, exc.attribute)
            )
    if not grids:
        return None
    try:
        grid, combine_notes = combine(grids, plan)
    except InputError as exc:
        notes.append(
            Note(Level.ERROR, f"doses not combined: {exc.reason}", exc.path, exc.attribute)
        )
        return None
    notes.extend(combine_notes)
    return grid


def _build_series(found: _Found) -> dict[str, ImageSeries]:
    series = {}
    for uid, slices in sorted(found.slices.items()):
        built, notes = series_from_slices(slices)
        series[uid] = built
        found.notes.extend(notes)
    return series


def _case_images(
    case: Case, found: _Found, series: dict[str, ImageSeries], notes: list[Note]
) -> ImageSeries | None:
    """The case's image series: the one its structure set references when present and in the
    frame the structure set places it in (else an ERROR naming both frames), otherwise the single
    series of the case's frame of reference. Referenced images that are absent are noted."""
    ss = case.structure_set
    refs = found.image_refs.get(ss.sop_instance_uid, ImageReferences()) if ss else None
    chosen = None
    refused: set[str] = set()
    if ss is not None and refs is not None:
        for uid, frame in refs.series:
            candidate = series.get(uid)
            if candidate is None:
                continue
            declared = frame or ss.frame_of_reference_uid
            if declared and candidate.frame_of_reference_uid != declared:
                notes.append(_other_frame_note(ss, candidate, declared))
                refused.add(uid)
                continue
            chosen = candidate
            break
    if chosen is None:
        others = {uid: s for uid, s in series.items() if uid not in refused}
        chosen = _same_frame_series(case, others, notes)
    if ss is not None and refs is not None:
        notes.extend(_missing_images(ss, refs, series, chosen))
    return chosen


def _same_frame_series(
    case: Case, series: dict[str, ImageSeries], notes: list[Note]
) -> ImageSeries | None:
    frame = case.frame_of_reference_uid
    same = [s for s in series.values() if frame and s.frame_of_reference_uid == frame]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        listed = ", ".join(s.series_instance_uid for s in same)
        notes.append(
            Note(Level.INFO, f"several image series in the case's frame of reference: {listed}")
        )
    return None


def _other_frame_note(ss: StructureSet, images: ImageSeries, declared: str) -> Note:
    """L11: the referenced CT lies in another frame than the structure set says."""
    return Note(
        Level.ERROR,
        f"the structure set's frame of reference {declared} differs from that of the CT it "
        f"references (series {images.series_instance_uid}, frame "
        f"{images.frame_of_reference_uid}): the structure set's frame is kept, not replaced by "
        "the CT's (it links the structures to the dose, and DVHs are computed in it); the CT is "
        "not used with these structures (it cannot be shown under them)",
        ss.path,
        tag_name("FrameOfReferenceUID"),
    )


def _missing_images(
    ss: StructureSet,
    refs: ImageReferences,
    series: dict[str, ImageSeries],
    chosen: ImageSeries | None,
) -> list[Note]:
    """L3: a WARNING when images the structure set references are not in the input (INFO when
    the input holds no images at all)."""
    absent_series = [uid for uid, _ in refs.series if uid not in series]
    named = ", ".join(uid for uid, _ in refs.series)
    if refs.image_uids:
        present = {uid for s in series.values() for uid in s.sop_instance_uids}
        missing = len(refs.image_uids - present)
        if not missing:
            return []
        what = f"referenced CT missing: {missing} of {len(refs.image_uids)} images"
        what += f" (series {named})" if named else ""
        whole = missing == len(refs.image_uids)
    elif absent_series:
        what = (
            f"referenced CT missing: series {', '.join(absent_series)} (the structure set lists "
            "none of its images)"
        )
        whole = len(absent_series) == len(refs.series)
    else:
        return []
    what += "; nothing rtqa computes needs the CT (DVHs use the contours and the dose grid)"
    if chosen is not None and all(chosen.series_instance_uid != uid for uid, _ in refs.series):
        what += (
            f"; image series {chosen.series_instance_uid} of the case's frame of reference is "
            "linked instead"
        )
    elif whole:
        what += "; skipped: the check that the CT shares the structure set's frame of reference"
    # no image at all in the input: an export of the RT objects alone, common and harmless; some
    # images present but not those referenced, or only part of them: a warning
    level = Level.INFO if whole and not series else Level.WARNING
    return [Note(level, what, ss.path, tag_name("ReferencedFrameOfReferenceSequence"))]


def _check_frames(case: Case, registrations: list[Registration], notes: list[Note]) -> None:
    """Every part in one frame of reference, or a registration linking the two frames."""
    parts = [
        ("plan", case.plan.frame_of_reference_uid if case.plan else None),
        (
            "structure set",
            case.structure_set.frame_of_reference_uid if case.structure_set else None,
        ),
        ("dose", case.dose.frame_of_reference_uid if case.dose else None),
        ("image series", case.images.frame_of_reference_uid if case.images else None),
    ]
    present = [(name, uid) for name, uid in parts if uid]
    reported: set[frozenset[str]] = set()
    for i, (name_a, uid_a) in enumerate(present):
        for name_b, uid_b in present[i + 1 :]:
            if uid_a == uid_b or frozenset((uid_a, uid_b)) in reported:
                continue
            reported.add(frozenset((uid_a, uid_b)))
            linking = [r for r in registrations if r.links(uid_a, uid_b)]
            if linking:
                notes.append(
                    Note(
                        Level.WARNING,
                        f"{name_a} (frame {uid_a}) and {name_b} (frame {uid_b}) are in different "
                        f"frames of reference, linked by registration {linking[0].path}",
                    )
                )
                if linking[0] not in case.registrations:
                    case.registrations = (*case.registrations, linking[0])
            else:
                notes.append(
                    Note(
                        Level.ERROR,
                        f"{name_a} (frame {uid_a}) and {name_b} (frame {uid_b}) are in different "
                        "frames of reference and no registration links them",
                    )
                )


def _check_patient(case: Case, notes: list[Note]) -> None:
    ids = {
        part.patient_id
        for part in (case.plan, case.structure_set, case.dose, *case.records)
        if part is not None and part.patient_id
    }
    if len(ids) > 1:
        notes.append(
            Note(Level.ERROR, f"parts of this case name different patients: {sorted(ids)}")
        )


def _missing(case: Case, doses: list[DoseHeader], notes: list[Note]) -> None:
    if case.plan is None:
        notes.append(Note(Level.WARNING, "missing: RT Plan"))
    if case.structure_set is None:
        notes.append(Note(Level.WARNING, "missing: RT Structure Set"))
    if case.dose is None and not doses:
        notes.append(Note(Level.WARNING, "missing: RT Dose"))
    elif case.dose is None:
        notes.append(Note(Level.ERROR, "no usable RT Dose (see the notes above)"))


def _report_unused(
    found: _Found, cases: list[Case], series: dict[str, ImageSeries], notes: list[Note]
) -> None:
    used_series = {c.images.series_instance_uid for c in cases if c.images}
    for uid, s in series.items():
        if uid not in used_series:
            notes.append(
                Note(
                    Level.INFO,
                    f"image series {uid} ({len(s.paths)} files, frame {s.frame_of_reference_uid}) "
                    "not linked to a case",
                    s.paths[0],
                )
            )
    for reg in found.registrations:
        notes.extend(reg.notes)
        if not any(reg in c.registrations for c in cases):
            frames = ", ".join(sorted(reg.frames))
            notes.append(
                Note(
                    Level.WARNING, f"registration of frames {frames} not linked to a case", reg.path
                )
            )


# --------------------------------------------------------------------------------------------
# Case ids and helpers
# --------------------------------------------------------------------------------------------


def safe_name(text: str) -> str:
    """``text`` reduced to letters, digits, '.', '_' and '-' (path-safe), never empty."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._-")
    return name or "case"


def _case_ids(drafts: list[_Draft]) -> list[str]:
    """Plan labels made path-safe; a short UID hash is appended only where labels collide."""
    names = [safe_name(d.label) for d in drafts]
    counts = Counter(n.lower() for n in names)
    ids = []
    for draft, name in zip(drafts, names, strict=True):
        if counts[name.lower()] > 1:
            name = f"{name}-{hashlib.sha1(draft.uid.encode()).hexdigest()[:6]}"
        ids.append(name)
    return ids


def _common_dir(paths: tuple[str, ...]) -> str:
    if not paths:
        return ""
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:
        return ""
