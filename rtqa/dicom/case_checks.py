"""Consistency notes on linked cases: frames of reference, patient, missing parts, and the
image series and registrations no case uses."""

from __future__ import annotations

from rtqa.dicom.case_dose import DoseHeader
from rtqa.dicom.found import Found
from rtqa.model import Case, ImageSeries, Level, Note, Registration


def check_frames(case: Case, registrations: list[Registration], notes: list[Note]) -> None:
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


def check_patient(case: Case, notes: list[Note]) -> None:
    """An ERROR when the parts of the case name different patients."""
    ids = set(case.patient_ids.values())
    if len(ids) > 1:
        notes.append(
            Note(Level.ERROR, f"parts of this case name different patients: {sorted(ids)}")
        )


def check_missing(case: Case, doses: list[DoseHeader], notes: list[Note]) -> None:
    """Notes on a missing plan, structure set or dose (an ERROR when no dose was usable)."""
    if case.plan is None:
        notes.append(Note(Level.WARNING, "missing: RT Plan"))
    if case.structure_set is None:
        notes.append(Note(Level.WARNING, "missing: RT Structure Set"))
    if case.dose is None and not doses:
        notes.append(Note(Level.WARNING, "missing: RT Dose"))
    elif case.dose is None:
        notes.append(Note(Level.ERROR, "no usable RT Dose (see the notes above)"))


def report_unused(
    found: Found, cases: list[Case], series: dict[str, ImageSeries], notes: list[Note]
) -> None:
    """INFO on image series no case uses; the registrations' notes, and a WARNING on each
    registration no case uses."""
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
