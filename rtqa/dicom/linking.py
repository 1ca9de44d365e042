"""Link the DICOM-RT objects a scan found into :class:`~rtqa.model.Case` objects.

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
* Spatial registrations -> every case whose frame of reference they register. A dose in another
  frame than its structure set is moved into the structure set's frame where a registration
  links the two by a translation (exact), with a warning
  (:mod:`rtqa.dicom.dose_frame`); otherwise it stays in its own frame and the check withholds
  every judgement drawn from it.

The WARNING and ERROR notes of the structure set's ROIs join the case's notes, and a dose whose
maximum is far from the plan's prescription (one fraction's dose under a course label, a wrong
DoseGridScaling) is noted.

A frame of reference holding no plan but at most one structure set (and any doses) forms a
plan-less case (enough for ``rtqa dvh``). Dose pixels are read only for doses that belong to a
case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rtqa.dicom.case_checks import check_frames, check_missing, check_patient, report_unused
from rtqa.dicom.case_dose import DoseHeader, dose_against_prescription, load_dose
from rtqa.dicom.case_images import build_series, case_images
from rtqa.dicom.dose_frame import dose_in_frame
from rtqa.dicom.found import Found
from rtqa.dicom.plane_bridges import case_bridges
from rtqa.model import Case, ImageSeries, Level, Note, Plan, StructureSet, TreatmentRecord


def link(found: Found) -> list[Case]:
    """The cases of the objects found; notes on what no case uses join ``found.notes``."""
    notes = found.notes
    series = build_series(found)
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
            _give(dose, plan, doses_by_plan, dose_used)
            notes.append(
                Note(
                    Level.WARNING,
                    f"dose references no plan; linked to plan '{plan.label}' by frame of "
                    "reference (inferred)",
                    dose.path,
                )
            )

    aliases = _dangling_links(found, doses_by_plan, dose_used, notes)
    found.records = [_aliased(r, aliases, notes) for r in found.records]

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
    report_unused(found, cases, series, notes)
    return cases


def _give(
    dose: DoseHeader, plan: Plan, doses_by_plan: dict[str, list[DoseHeader]], dose_used: set[str]
) -> None:
    """Link ``dose`` to ``plan``."""
    doses_by_plan[plan.sop_instance_uid].append(dose)
    dose_used.add(dose.sop_instance_uid)


def _dangling_links(
    found: Found,
    doses_by_plan: dict[str, list[DoseHeader]],
    dose_used: set[str],
    notes: list[Note],
) -> dict[str, str]:
    """L5: doses whose plan reference does not resolve (UIDs regenerated by re-export or
    anonymisation) go to the one plan of their frame of reference and study that has no dose,
    when all such doses there reference the same absent plan (never across frames, never
    beside a plan's own dose). Returns absent plan UID -> plan UID, for the records."""
    dangling: dict[tuple, list[DoseHeader]] = defaultdict(list)
    for dose in found.doses.values():
        if dose.sop_instance_uid not in dose_used and dose.referenced_plan_uids:
            key = (dose.frame_of_reference_uid, dose.study_instance_uid)
            dangling[key].append(dose)
    aliases: dict[str, str] = {}
    for (frame, study), doses in dangling.items():
        refs = {d.referenced_plan_uids for d in doses}
        plans = [
            p
            for p in found.plans.values()
            if frame
            and p.frame_of_reference_uid == frame
            and study
            and p.study_instance_uid == study
            and not doses_by_plan.get(p.sop_instance_uid)
        ]
        if len(refs) != 1 or len(plans) != 1:
            continue
        plan = plans[0]
        (gone,) = refs
        for dose in doses:
            _give(dose, plan, doses_by_plan, dose_used)
            notes.append(
                Note(
                    Level.WARNING,
                    f"dose references plan {', '.join(gone)}, not present; linked to plan "
                    f"'{plan.label}', the one plan of its frame of reference and study without a "
                    "dose (a plan UID changed by re-export or anonymisation?): check that it is "
                    "this plan's dose",
                    dose.path,
                )
            )
        aliases.update({uid: plan.sop_instance_uid for uid in gone})
    return aliases


def _aliased(
    record: TreatmentRecord, aliases: dict[str, str], notes: list[Note]
) -> TreatmentRecord:
    """``record`` referencing the plan its absent plan UID was taken as (see
    :func:`_dangling_links`), with a WARNING; else ``record`` as it is."""
    uid = aliases.get(record.referenced_plan_uid or "")
    if uid is None:
        return record
    notes.append(
        Note(
            Level.WARNING,
            f"treatment record (fraction {record.fraction_number}) references plan "
            f"{record.referenced_plan_uid}, not present: taken as plan {uid}, to which the dose "
            "referencing the same absent plan was linked",
            record.path,
        )
    )
    return dataclasses.replace(record, referenced_plan_uid=uid)


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

    def build(self, case_id: str, found: Found, series: dict[str, ImageSeries]) -> Case:
        notes = list(self.notes)
        if self.plan is not None:
            notes.extend(self.plan.notes)
        if self.structure_set is not None:
            notes.extend(self.structure_set.notes)
            notes.extend(roi_warnings(self.structure_set))
        for record in self.records:
            notes.extend(record.notes)
        dose = load_dose(self.doses, self.plan, notes)
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
        case.images = case_images(case, found, series, notes)
        if case.structure_set is not None:
            notes.extend(case_bridges(case.structure_set, case.images))
        case.registrations = tuple(
            r for r in found.registrations if case.frame_of_reference_uid in r.frames
        )
        if case.dose is not None and case.structure_set is not None:
            case.dose, moved = dose_in_frame(
                case.dose, case.structure_set.frame_of_reference_uid, found.registrations
            )
            if moved is not None:
                notes.append(moved)
        check_frames(case, found.registrations, notes)
        check_patient(case, notes)
        check_missing(case, self.doses, notes)
        own = [p.path for p in (case.plan, case.structure_set) if p is not None]
        own += [h.path for h in self.doses]
        case.source_dir = _common_dir(tuple(own))
        return case


def roi_warnings(structure_set: StructureSet) -> list[Note]:
    """The WARNING and ERROR notes of the structure set's ROIs (contours dropped, repaired or
    refused), so that they reach every report of the case; INFO notes (repeated points removed)
    stay with the ROI."""
    return [n for r in structure_set.rois for n in r.notes if n.level is not Level.INFO]


def _plan_structure_set(plan: Plan, found: Found, notes: list[Note]) -> StructureSet | None:
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


def _planless_drafts(found: Found, ss_used: set[str], dose_used: set[str]) -> list[_Draft]:
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


def _unlinked_dose_note(dose: DoseHeader, found: Found) -> Note:
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
