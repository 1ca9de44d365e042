"""``rtqa info``: what was found in the input folders and how it links."""

from __future__ import annotations

import json
from typing import Any

import click

from rtqa import __version__
from rtqa.courses import group_courses
from rtqa.dicom.scan import ScanResult, scan
from rtqa.errors import EXIT_NOT_EVALUABLE, EXIT_OK, EXIT_UNREADABLE
from rtqa.model import Case, Level, Note, system_name
from rtqa.protocol.delivery import fraction_deliveries


@click.command("info")
@click.argument("plan_dirs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--window-days",
    type=click.IntRange(min=0),
    default=21,
    show_default=True,
    help="Days within which plans of one patient form one course.",
)
@click.pass_context
def info(ctx: click.Context, plan_dirs: tuple[str, ...], fmt: str, window_days: int) -> None:
    """Show every case found in PLAN_DIR... (folders are searched recursively; files may be given
    directly): its plan, prescriptions, structures, dose, treatment records, registrations and
    images, what is missing or unlinked, the grouping into courses, and the files skipped.

    Exit status: 0 every case is complete (plan, structure set and dose) and nothing is in
    error; 4 a case lacks its plan, structure set or dose, or an error note was raised (e.g. a
    truncated file, frames of reference that no registration links); 3 nothing usable was found.

    JSON (``--format json``) holds the same content as data:

    \b
    {"rtqa_version": str, "inputs": [str], "exit_code": int,
     "files": {modality or "not DICOM"/"unreadable"/"DICOMDIR": count},
     "notes": [note],                      # files skipped, unreadable, objects not linked
     "courses": [{"cases": [case_id], "priors": [case_id], "reason": str}],
     "cases": [{
       "case_id": str, "complete": bool, "patient_id": str, "frame_of_reference_uid": str|null,
       "source_dir": str, "missing": ["RT Plan"|"RT Structure Set"|"RT Dose"],
       "plan": null | {"label", "name", "path", "sop_instance_uid", "intent", "manufacturer",
          "software_versions",
          "approval_status": str|null, "review_datetime": iso|null, "reviewer_name",
          "plan_datetime": iso|null, "fractions": int|null,
          "fraction_groups": [{"number", "fractions", "beams": [{"number", "meterset_mu",
             "beam_dose_gy"}]}],
          "beams": [{"number", "name", "delivery_type"}],
          "dose_references": [{"number", "type", "structure_type", "roi_number", "description",
             "target_prescription_dose_gy"}],
          "prescriptions": [{"total_gy", "fractions", "dose_per_fraction_gy", "source",
             "roi_number", "roi_name", "dose_reference_number", "description"}]},
       "structure_set": null | {"label", "path", "sop_instance_uid", "frame_of_reference_uid",
          "manufacturer",
          "rois": [{"number", "name", "type", "contours", "empty", "notes": [note]}]},
       "dose": null | {"paths": [str], "shape_xyz": [nx, ny, nz],
          "spacing_mm": [dx, dy, dz|null], "origin_mm": [x, y, z], "summation_type",
          "dose_type", "max_gy", "scaling_note": str|null, "frame_of_reference_uid",
          "manufacturer", "tps_dvh_rois": [ROI number] (the planning system's DVHs it carries),
          "notes": [note]},
       "records": [{"path", "fraction", "fraction_group": int|null, "delivered_at": iso|null,
          "beams": int, "interrupted": bool}],
       "fractions_delivered": [{"fraction": int|null, "dates": [iso], "sessions",
          "complete": bool|null, "reason": str|null, "planned": int|null,
          "beyond_plan": bool}],
       "registrations": [{"path", "frame_of_reference_uid", "frames": [str],
          "types": {frame: type}}],
       "images": null | {"series_instance_uid", "modality", "frame_of_reference_uid",
          "slices", "first_mm", "last_mm"},
       "notes": [note]}]}
    note = {"level": "error"|"warning"|"info", "message": str, "path": str|null,
            "attribute": str|null}
    A fraction is complete as ``rtqa check`` judges it (its plan's treatment beams delivered,
    none left short by an early termination); "complete" is null when that cannot be told (no
    plan, MU unknown), with the reason; fraction null is a record without a fraction number;
    "planned" is the fractions planned for the fraction group delivered, and "beyond_plan" a
    fraction number above it (a major deviation in ``rtqa check``).
    Doses in Gy (course total after the scaling note), lengths in mm.
    """
    result = scan(list(plan_dirs))
    data = info_data(result, list(plan_dirs), window_days)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_text(data), nl=False)
    if data["exit_code"] == EXIT_UNREADABLE:
        click.echo("rtqa: error: no usable DICOM-RT case found", err=True)
    ctx.exit(data["exit_code"])


def exit_code(result: ScanResult) -> int:
    """0 all complete and no errors; 4 something missing or in error; 3 no case at all."""
    if not result.cases:
        return EXIT_UNREADABLE
    if any(not c.is_complete for c in result.cases) or result.errors:
        return EXIT_NOT_EVALUABLE
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def info_data(result: ScanResult, inputs: list[str], window_days: int = 21) -> dict[str, Any]:
    """Everything ``rtqa info`` reports, as JSON-ready data (shape: see the command's help)."""
    courses = group_courses(result.cases, window_days) if result.cases else []
    return {
        "rtqa_version": __version__,
        "inputs": inputs,
        "exit_code": exit_code(result),
        "files": result.files,
        "notes": [_note(n) for n in result.notes],
        "courses": [
            {
                "cases": [c.case_id for c in course.cases],
                "priors": [c.case_id for c in course.priors],
                "reason": course.reason,
            }
            for course in courses
        ],
        "cases": [_case(c) for c in result.cases],
    }


def _note(note: Note) -> dict[str, Any]:
    return {
        "level": note.level.value,
        "message": note.message,
        "path": note.path,
        "attribute": note.attribute,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _case(case: Case) -> dict[str, Any]:
    missing = [
        name
        for name, part in (
            ("RT Plan", case.plan),
            ("RT Structure Set", case.structure_set),
            ("RT Dose", case.dose),
        )
        if part is None
    ]
    return {
        "case_id": case.case_id,
        "complete": case.is_complete,
        "patient_id": case.patient_id,
        "frame_of_reference_uid": case.frame_of_reference_uid,
        "source_dir": case.source_dir,
        "missing": missing,
        "plan": _plan(case),
        "structure_set": _structure_set(case),
        "dose": _dose(case),
        "records": [
            {
                "path": r.path,
                "fraction": r.fraction_number,
                "fraction_group": r.fraction_group,
                "delivered_at": _iso(r.delivered_at),
                "beams": len(r.beams),
                "interrupted": any(b.termination_status not in ("", "NORMAL") for b in r.beams),
            }
            for r in case.records
        ],
        "fractions_delivered": [
            {
                "fraction": f.fraction,
                "dates": [d.isoformat() for d in f.dates],
                "sessions": f.sessions,
                "complete": f.complete,
                "reason": f.reason,
                "planned": f.planned,
                "beyond_plan": f.beyond_plan,
            }
            for f in fraction_deliveries(case.plan, case.records)
        ],
        "registrations": [
            {
                "path": r.path,
                "frame_of_reference_uid": r.frame_of_reference_uid,
                "frames": sorted(r.matrices),
                "types": dict(sorted(r.matrix_types.items())),
            }
            for r in case.registrations
        ],
        "images": _images(case),
        "notes": _case_notes(case),
    }


def _case_notes(case: Case) -> list[dict[str, Any]]:
    """The case's notes without those already listed under their ROI."""
    ss = case.structure_set
    listed = {n for r in ss.rois for n in r.notes} if ss is not None else set()
    return [_note(n) for n in case.notes if n not in listed]


def _plan(case: Case) -> dict[str, Any] | None:
    plan = case.plan
    if plan is None:
        return None
    names = {r.number: r.name for r in case.structure_set.rois} if case.structure_set else {}
    return {
        "label": plan.label,
        "name": plan.name,
        "path": plan.path,
        "sop_instance_uid": plan.sop_instance_uid,
        "intent": plan.intent,
        "manufacturer": plan.manufacturer,
        "software_versions": plan.software_versions,
        "approval_status": plan.approval_status,
        "review_datetime": _iso(plan.review_datetime),
        "reviewer_name": plan.reviewer_name,
        "plan_datetime": _iso(plan.plan_datetime),
        "fractions": plan.fractions_planned,
        "fraction_groups": [
            {
                "number": g.number,
                "fractions": g.fractions_planned,
                "beams": [
                    {
                        "number": b.beam_number,
                        "meterset_mu": b.meterset,
                        "beam_dose_gy": b.beam_dose_gy,
                    }
                    for b in g.beams
                ],
            }
            for g in plan.fraction_groups
        ],
        "beams": [
            {"number": b.number, "name": b.name, "delivery_type": b.delivery_type}
            for b in plan.beams
        ],
        "dose_references": [
            {
                "number": d.number,
                "type": d.reference_type,
                "structure_type": d.structure_type,
                "roi_number": d.roi_number,
                "description": d.description,
                "target_prescription_dose_gy": d.target_prescription_dose_gy,
            }
            for d in plan.dose_references
        ],
        "prescriptions": [
            {
                "total_gy": p.total_gy,
                "fractions": p.fractions,
                "dose_per_fraction_gy": p.dose_per_fraction_gy,
                "source": p.source,
                "roi_number": p.roi_number,
                "roi_name": names.get(p.roi_number) if p.roi_number is not None else None,
                "dose_reference_number": p.dose_reference_number,
                "description": p.description,
            }
            for p in plan.prescriptions
        ],
    }


def _structure_set(case: Case) -> dict[str, Any] | None:
    ss = case.structure_set
    if ss is None:
        return None
    return {
        "label": ss.label,
        "path": ss.path,
        "sop_instance_uid": ss.sop_instance_uid,
        "frame_of_reference_uid": ss.frame_of_reference_uid,
        "manufacturer": ss.manufacturer,
        "rois": [
            {
                "number": r.number,
                "name": r.name,
                "type": r.interpreted_type,
                "contours": r.contour_count,
                "empty": r.is_empty,
                "notes": [_note(n) for n in r.notes],
            }
            for r in ss.rois
        ],
    }


def _dose(case: Case) -> dict[str, Any] | None:
    dose = case.dose
    if dose is None:
        return None
    nz, ny, nx = dose.shape
    return {
        "paths": list(dose.paths),
        "shape_xyz": [nx, ny, nz],
        "spacing_mm": list(dose.spacing_mm),
        "origin_mm": list(dose.origin_mm),
        "summation_type": dose.summation_type,
        "dose_type": dose.dose_type,
        "max_gy": dose.max_gy,
        "scaling_note": dose.scaling_note,
        "frame_of_reference_uid": dose.frame_of_reference_uid,
        "manufacturer": dose.manufacturer,
        "tps_dvh_rois": [t.roi_number for t in dose.tps_dvhs],
        "notes": [_note(n) for n in dose.notes],
    }


def _images(case: Case) -> dict[str, Any] | None:
    images = case.images
    if images is None:
        return None
    positions = images.slice_positions_mm
    return {
        "series_instance_uid": images.series_instance_uid,
        "modality": images.modality,
        "frame_of_reference_uid": images.frame_of_reference_uid,
        "slices": len(positions),
        "first_mm": positions[0] if positions else None,
        "last_mm": positions[-1] if positions else None,
    }


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def render_text(data: dict[str, Any]) -> str:
    """The terminal report of :func:`info_data`."""
    lines: list[str] = []
    if not data["cases"]:
        lines.append("No case found.")
    for case in data["cases"]:
        lines.extend(_case_lines(case))
        lines.append("")
    if data["courses"]:
        lines.append("Courses:")
        for course in data["courses"]:
            priors = f"; prior: {', '.join(course['priors'])}" if course["priors"] else ""
            lines.append(f"  {' + '.join(course['cases'])}{priors}")
            lines.append(f"    {course['reason']}")
        lines.append("")
    files = ", ".join(f"{k} {v}" for k, v in data["files"].items()) or "none"
    lines.append(f"Files: {files}")
    if data["notes"]:
        lines.append("Notes:")
        lines.extend(f"  {_note_text(n)}" for n in data["notes"])
    return "\n".join(lines) + "\n"


def _note_text(note: dict[str, Any]) -> str:
    return str(Note(Level(note["level"]), note["message"], note["path"], note["attribute"]))


def _num(value: float | None, unit: str = "") -> str:
    return "?" if value is None else f"{value:g}{unit}"


def _case_lines(case: dict[str, Any]) -> list[str]:
    state = "complete" if case["complete"] else "missing " + ", ".join(case["missing"])
    lines = [f"Case {case['case_id']} ({state})"]
    lines.append(f"  patient: {case['patient_id'] or '?'}")
    lines.append(f"  frame of reference: {case['frame_of_reference_uid'] or '?'}")
    plan = case["plan"]
    if plan is not None:
        approval = plan["approval_status"] or "approval status absent"
        if plan["review_datetime"]:
            approval += f" {plan['review_datetime']}"
        if plan["reviewer_name"]:
            approval += f" by {plan['reviewer_name']}"
        lines.append(f"  plan: {plan['label']} [{plan['path']}]")
        written = system_name(plan["manufacturer"], plan["software_versions"])
        if written:
            lines.append(f"    written by {written}")
        lines.append(
            f"    {approval}; intent {plan['intent'] or '?'}; "
            f"fractions {_num(plan['fractions'])}; plan date {plan['plan_datetime'] or '?'}"
        )
        treatment = [b for b in plan["beams"] if b["delivery_type"] == "TREATMENT"]
        lines.append(
            f"    beams: {len(treatment)} treatment, {len(plan['beams']) - len(treatment)} other"
        )
        if not plan["prescriptions"]:
            lines.append("    prescription: unknown")
        for rx in plan["prescriptions"]:
            roi = ""
            if rx["roi_number"] is not None:
                roi = f" to ROI {rx['roi_number']}"
                roi += f" ({rx['roi_name']})" if rx["roi_name"] else ""
            per = (
                f" ({rx['dose_per_fraction_gy']:g} Gy/fx)"
                if rx["dose_per_fraction_gy"] is not None
                else ""
            )
            lines.append(
                f"    prescription: {rx['total_gy']:g} Gy in {_num(rx['fractions'])} fractions"
                f"{per}{roi} [from {rx['source']}]"
            )
    ss = case["structure_set"]
    if ss is not None:
        by = f", written by {ss['manufacturer']}" if ss["manufacturer"] else ""
        lines.append(f"  structure set: {ss['label']} [{ss['path']}], {len(ss['rois'])} ROIs{by}")
        for roi in ss["rois"]:
            empty = ", empty" if roi["empty"] else ""
            lines.append(
                f"    {roi['number']:>3} {roi['name']} ({roi['type'] or 'no type'}, "
                f"{roi['contours']} contours{empty})"
            )
            lines.extend(f"        {_note_text(n)}" for n in roi["notes"])
    dose = case["dose"]
    if dose is not None:
        nx, ny, nz = dose["shape_xyz"]
        dx, dy, dz = dose["spacing_mm"]
        dz_text = "uneven" if dz is None else f"{dz:g}"
        by = f", written by {dose['manufacturer']}" if dose["manufacturer"] else ""
        lines.append(f"  dose: {', '.join(dose['paths'])}{by}")
        lines.append(
            f"    grid {nx} x {ny} x {nz} (x, y, z), spacing {dx:g} x {dy:g} x {dz_text} mm; "
            f"summation {dose['summation_type']}; max {dose['max_gy']:.4g} Gy"
        )
        if dose["tps_dvh_rois"]:
            numbers = ", ".join(map(str, dose["tps_dvh_rois"]))
            lines.append(f"    planning-system DVHs (DVHSequence) of ROIs {numbers}")
        if dose["scaling_note"]:
            lines.append(f"    scaling: {dose['scaling_note']}")
        lines.extend(f"    {_note_text(n)}" for n in dose["notes"])
    if case["fractions_delivered"]:
        lines.append("  records:")
        for f in case["fractions_delivered"]:
            status = {True: "", False: ", incomplete", None: ", completeness unknown"}
            reason = f": {f['reason']}" if f["reason"] else ""
            sessions = f", {f['sessions']} sessions" if f["sessions"] > 1 else ""
            where = (
                "record without fraction number"
                if f["fraction"] is None
                else f"fraction {f['fraction']}"
            )
            beyond = f", BEYOND the {f['planned']} planned" if f["beyond_plan"] else ""
            lines.append(
                f"    {where}: {', '.join(f['dates']) or 'no date'}{sessions}"
                f"{status[f['complete']]}{beyond}{reason}"
            )
    for reg in case["registrations"]:
        lines.append(
            f"  registration: {reg['path']} (frame {reg['frame_of_reference_uid']}) links "
            + ", ".join(f"{f} [{reg['types'][f]}]" for f in reg["frames"])
        )
    images = case["images"]
    if images is not None:
        lines.append(
            f"  images: {images['modality']} series {images['series_instance_uid']}, "
            f"{images['slices']} slices from {images['first_mm']:g} to {images['last_mm']:g} mm"
        )
    if case["notes"]:
        lines.append("  notes:")
        lines.extend(f"    {_note_text(n)}" for n in case["notes"])
    return lines
