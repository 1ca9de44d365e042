"""``rtqa dvh PATH...``: DVH metrics of every structure, without a protocol.

PATHs are files or folders holding at least a structure set and a dose (a plan is optional).
Without ``--metric`` the default set :data:`DEFAULT_METRICS` is reported (doses in Gy).
``--rx`` gives the prescription (Gy) for metrics relative to it; otherwise the plan's is used
when it states one total for the whole plan dose (with several, or one fraction group's share,
each PTV uses its own and the other structures none). JSON gives the case's prescription at the
top (``prescription_gy``) and the one each ROI's metrics used in its entry (``prescription_gy``,
with ``prescription_note`` where a PTV's own was sought).
Plan-quality metrics (CI, CI_Paddick, GI, R50%, D2cm[%], HI, Spill105[%]) are computed for PTVs,
with the isodose volumes counted inside the EXTERNAL (body) ROI when there is one.
``--interpolate N`` (N > 0) interpolates the contour shapes between neighbouring planes in N
sub-slabs per step (:mod:`rtqa.geometry.interpolation`) instead of the slab model.
"""

from __future__ import annotations

import csv
import io
import json
import math

import click
import numpy as np

from rtqa.dvh import display_bin_gy
from rtqa.errors import InputError, UsageError
from rtqa.model import Case, Level, Roi, body_outline

DEFAULT_METRICS = (
    "Min[Gy]",
    "Mean[Gy]",
    "Max[Gy]",
    "D98%[Gy]",
    "D95%[Gy]",
    "D50%[Gy]",
    "D2%[Gy]",
    "D0.03cc[Gy]",
)
TARGET_TYPES = ("PTV",)
_LEVELS = tuple(f"{level.value}: " for level in Level)


@click.command("dvh")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--metric", "metrics", multiple=True, help="TG-263 metric, e.g. D95%[Gy], V20Gy[%].")
@click.option("--rx", "rx_gy", type=float, default=None, help="Prescription dose (Gy).")
@click.option("--curves", is_flag=True, help="Add cumulative DVH curves (0.1 Gy steps).")
@click.option("--compare-tps", is_flag=True, help="Compare with the DVHs stored in the RT Dose.")
@click.option(
    "--interpolate",
    "interpolate_steps",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Interpolate contour shapes between neighbouring planes, N sub-slabs per step "
    "(0: slab model).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True
)
def dvh(paths, metrics, rx_gy, curves, compare_tps, interpolate_steps, fmt) -> None:
    """DVH metrics of every structure in PATH... (structure set and dose; plan optional)."""
    from rtqa.dicom.dose_frame import why_not_aligned
    from rtqa.dicom.scan import scan
    from rtqa.protocol.metrics import MetricSyntaxError, parse_metric

    texts = list(metrics) or list(DEFAULT_METRICS)
    try:
        requests = [parse_metric(t) for t in texts]
    except MetricSyntaxError as exc:
        raise UsageError(str(exc)) from exc
    if rx_gy is not None and not (math.isfinite(rx_gy) and rx_gy > 0):
        raise UsageError(f"--rx must be a positive dose in Gy, got {rx_gy}")
    result = scan(list(paths))
    cases = [c for c in result.cases if c.structure_set is not None and c.dose is not None]
    if not cases:
        notes = [*result.notes, *(n for c in result.cases for n in c.notes)]
        why = "; ".join(dict.fromkeys(str(n) for n in notes if n.level is not Level.INFO))
        raise InputError(
            "no structure set with a dose was found" + (f" ({why})" if why else ""),
            path=", ".join(paths),
        )
    for c in cases:  # a dose that cannot be laid on the contours gives no DVH at all
        assert c.structure_set is not None and c.dose is not None
        why = why_not_aligned(c.dose, c.structure_set.frame_of_reference_uid, c.registrations)
        if why:
            raise InputError(why, path=f"{c.structure_set.path}, {', '.join(c.dose.paths)}")
    reports = [
        _case_report(c, requests, rx_gy, curves, compare_tps, interpolate_steps) for c in cases
    ]
    if fmt == "json":
        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    elif fmt == "csv":
        click.echo(_csv(reports), nl=False)
    else:
        click.echo(_text(reports))


# --------------------------------------------------------------------------------------------


def _case_rx(case: Case, rx_gy: float | None) -> tuple[float | None, str]:
    """The prescription (Gy) for metrics relative to it: ``--rx``, else the plan's when it states
    one total for the whole plan dose. A plan stating several (SIB levels, a boost) or one
    fraction group's share has none for the case (never the first or the highest), and says
    why; its PTVs then use their own (:func:`_target_rx`)."""
    from rtqa.protocol.prescription import plan_prescription

    if rx_gy is not None or case.plan is None:
        return rx_gy, ""
    rx, why = plan_prescription(case.plan)
    if not why:
        return rx, ""
    return None, (
        f"{why}; metrics relative to the prescription use a PTV's own (its dose reference or "
        "its name's dose suffix); for the other structures give --rx GY"
    )


def _target_rx(case: Case, roi: Roi) -> tuple[float | None, str]:
    """A PTV's own prescription (Gy) and where it came from, or None and why."""
    from rtqa.protocol.prescription import target_prescription

    rx = target_prescription(roi, case.plan)
    return rx.total_gy, rx.describe()


def _case_report(
    case: Case, requests, rx_cli, curves: bool, compare_tps: bool, steps: int = 0
) -> dict:
    from rtqa.dicom.case_dose import tps_dvhs_in_cc
    from rtqa.dicom.structures import plane_spacing_mm
    from rtqa.dvh import MetricUndefined, plan_quality, structure_dvh
    from rtqa.protocol.metrics import MetricNotEvaluable

    ss, dose = case.structure_set, case.dose
    assert ss is not None and dose is not None
    rx, rx_why = _case_rx(case, rx_cli)
    spacing = plane_spacing_mm(ss.rois)
    warnings: list[str] = [
        str(n) for n in dict.fromkeys((*case.notes, *dose.notes)) if n.level is not Level.INFO
    ]
    if rx_why:
        warnings.append(rx_why)
    body_roi = body_outline(ss.rois)
    body_occ = None
    wants_quality = any(r.is_quality for r in requests)
    stored = tps_dvhs_in_cc(dose, ss.rois) if compare_tps else {}
    tps = {} if dose.scaling_note else stored  # DVHs of the file, not of a scaled dose
    rois = []
    for roi in ss.rois:
        entry: dict = {"roi": roi.name, "number": roi.number, "type": roi.interpreted_type}
        if roi.is_empty:
            kinds = "POINT" if roi.points else ("OPEN_PLANAR" if roi.open_contours else "no")
            entry.update(volume_cc=None, volume_in_dose_grid_cc=None, metrics={})
            entry["note"] = f"{kinds} contours only: no volume, no DVH"
            rois.append(entry)
            continue
        try:
            sd = structure_dvh(roi, dose, spacing_mm=spacing, interpolate_steps=steps)
        except ValueError as exc:
            entry.update(volume_cc=None, volume_in_dose_grid_cc=None, metrics={})
            entry["note"] = str(exc)
            rois.append(entry)
            continue
        warnings += [n.message for n in sd.notes if n.level is not Level.INFO]
        entry["volume_cc"] = sd.volume_cc
        entry["volume_in_dose_grid_cc"] = sd.volume_in_grid_cc
        quality = None
        is_target = roi.interpreted_type in TARGET_TYPES or roi.name.upper().startswith("PTV")
        roi_rx = rx
        if rx_why and is_target:
            roi_rx, how = _target_rx(case, roi)
            entry["prescription_note"] = how
        entry["prescription_gy"] = roi_rx
        if wants_quality and is_target and roi_rx:
            if body_roi is not None and body_occ is None:
                body_occ = _occupancy(body_roi, dose, spacing, steps)
            other_rois = [
                r
                for r in ss.rois
                if r is not roi and r.planes and r.interpreted_type in TARGET_TYPES
            ]
            others = [_occupancy(r, dose, spacing, steps) for r in other_rois]
            other_rx = [_target_rx(case, r)[0] if rx_why else rx for r in other_rois]
            quality = plan_quality(
                sd.occupancy,
                dose,
                roi_rx,
                body=body_occ,
                other_targets=others,
                other_rx_gy=other_rx,
            )
        values: dict[str, float | None] = {}
        for req in requests:
            try:
                if req.is_quality and not is_target:
                    values[req.text] = None
                    continue
                value, why = _enclosed(req, sd.dvh, roi_rx, quality)
                values[req.text] = value
                if why:
                    warnings.append(f"ROI '{roi.name}': {req.text}: {why}")
            except (MetricUndefined, MetricNotEvaluable) as exc:
                values[req.text] = None
                warnings.append(f"ROI '{roi.name}': {req.text}: {exc}")
        entry["metrics"] = values
        if curves:
            d, v = sd.dvh.cumulative(display_bin_gy(sd.dvh, 0.1))
            total = sd.dvh.total_volume_cc
            entry["curve"] = {
                "dose_gy": np.round(d, 4).tolist(),
                "volume_pct": np.round(100 * v / total, 4).tolist() if total else [],
            }
        if compare_tps:
            entry["tps"] = _compare(sd, tps.get(roi.number))
            if entry["tps"]:
                warnings += [
                    f"ROI '{roi.name}': TPS comparison: {n}" for n in entry["tps"]["notes"]
                ]
        rois.append(entry)
    if compare_tps:
        warnings += _tps_coverage(dose, ss, stored)
    if body_roi is None and wants_quality:
        warnings.append(
            "no body outline (one ROI of type EXTERNAL, or named Body, External or Outline): "
            "isodose volumes counted over the whole dose grid"
        )
    return {
        "structure_set": ss.path,
        "dose": dose.paths[0] if len(dose.paths) == 1 else list(dose.paths),
        "prescription_gy": rx,
        "interpolation_steps": steps,
        "rois": rois,
        "warnings": warnings,
    }


def _enclosed(req, dvh, rx_gy, quality) -> tuple[float | None, str]:
    """The metric's value; for a structure partly outside the dose grid whose part beyond is
    bounded (``beyond_grid_max_gy``), its values with that part at 0 Gy and at the bound: one
    value when they agree, else None and the range. MetricUndefined / MetricNotEvaluable as
    :func:`rtqa.protocol.metrics.evaluate`."""
    from rtqa.dvh.core import VOLUME_ATOL_CC
    from rtqa.protocol.metrics import evaluate

    bound = dvh.beyond_grid_max_gy
    if req.is_quality or bound is None or dvh.unknown_volume_cc <= VOLUME_ATOL_CC:
        return evaluate(req, dvh, rx_gy=rx_gy, quality=quality), ""
    cold = evaluate(req, dvh.completed(0.0), rx_gy=rx_gy, quality=quality)
    hot = evaluate(req, dvh.completed(bound), rx_gy=rx_gy, quality=quality)
    if math.isclose(cold, hot, rel_tol=1e-9, abs_tol=1e-9):
        return cold, ""
    return None, (
        f"not a single value: between {min(cold, hot):.4g} and {max(cold, hot):.4g}, as the "
        f"{dvh.unknown_volume_cc:.4g} cc outside the dose grid receives anything from 0 Gy to "
        f"{bound:.4g} Gy (the highest dose on the grid faces it crosses)"
    )


def _tps_coverage(dose, ss, tps: dict) -> list[str]:
    """Why nothing, or not every planning-system DVH (``tps``, as read), was compared."""
    from rtqa.dicom.common import tag_name

    numbers = {roi.number for roi in ss.rois}
    unmatched = sorted(set(tps) - numbers)
    out = [
        f"the RT Dose's DVH of ROI number {n} is not compared: the structure set has no such ROI"
        for n in unmatched
    ]
    if tps and dose.scaling_note:  # a session dose scaled: its DVHs are of one session
        return [
            *out,
            "the planning system's DVHs describe the RT Dose as stored, not the dose "
            f"evaluated ({dose.scaling_note}): not compared",
        ]
    if tps:
        return out
    if len(dose.paths) > 1:
        return [
            *out,
            f"the dose evaluated is the sum of {len(dose.paths)} RT Dose files "
            f"({dose.scaling_note}): a DVH stored in one of them is of that file, not of the "
            "sum: nothing to compare with",
        ]
    where = tag_name("DVHSequence")
    if any(n.attribute == where for n in dose.notes):  # items read but none usable
        return [*out, "no DVH in the RT Dose (DVHSequence) is usable: nothing to compare with"]
    return [*out, "the RT Dose carries no DVHs (DVHSequence) to compare with"]


def _occupancy(roi: Roi, dose, spacing: float | None, steps: int):
    """Occupancy of ``roi`` on ``dose`` from the same contour model as the DVHs."""
    from rtqa.geometry import interpolated_stack, occupancy

    return occupancy(interpolated_stack(roi, steps, spacing_mm=spacing), dose, name=roi.name)


def _compare(sd, tps) -> dict | None:
    """Volume, mean and D95% from rtqa and from the planning system's DVH, with differences.

    A value that cannot be had is None, and ``notes`` says why: rtqa's D95% when 95 % of the
    structure reaches outside the dose grid; the TPS volume of a DVH in PERCENT or PER_U without
    the structure set's ROIVolume (its mean and D95% need no absolute volume); the TPS D95% when
    its DVH covers less than 95 % of the ROI. The difference of the means is None when part of
    the structure lies outside rtqa's dose grid (rtqa's mean is then that of the part inside).
    """
    from rtqa.dicom.dose import RelativeTpsDvh
    from rtqa.dvh import MetricUndefined
    from rtqa.dvh.tps import tps_curve, tps_dose_at, tps_mean_gy

    if tps is None or tps.dose_gy.size == 0:
        return None
    notes: list[str] = []
    dose, curve, total = tps_curve(tps)
    volume = None if isinstance(tps, RelativeTpsDvh) else total
    if volume is None:
        notes.append(
            f"the planning system's DVH is in DVHVolumeUnits {tps.volume_units} and the "
            "structure set gives no ROIVolume (3006,002C) for this ROI: its volume is not "
            "known (mean and D95% are compared)"
        )
    mean = tps_mean_gy(tps)
    d95 = tps_dose_at(curve, dose, 0.95 * total)
    if d95 is None:
        notes.append(
            f"D95%: the planning system's DVH covers {100 * curve.max() / total:.4g} % of the "
            "ROI at most (less than 95 %)"
        )
    try:
        our_d95 = sd.dvh.dose_at_volume_pct(95)
    except MetricUndefined as exc:
        our_d95 = None
        notes.append(f"rtqa D95%: {exc}")
    ours = {
        "volume_cc": sd.dvh.total_volume_cc,
        "mean_gy": sd.dvh.mean_gy,
        "D95%_gy": our_d95,
    }
    theirs = {"volume_cc": volume, "mean_gy": mean, "D95%_gy": d95}
    diff = {
        k: (ours[k] - theirs[k]) if ours[k] is not None and theirs[k] is not None else None
        for k in ours
    }
    if sd.dvh.unknown_volume_cc > 0:
        diff["mean_gy"] = None
        notes.append(
            f"mean: rtqa's is that of the {sd.dvh.known_volume_cc:.4g} cc inside the dose grid "
            f"({sd.dvh.unknown_volume_cc:.4g} cc outside), not of the whole structure: "
            "no difference given"
        )
    return {"rtqa": ours, "tps": theirs, "difference": diff, "notes": notes}


# --------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _text(reports: list[dict]) -> str:
    lines: list[str] = []
    for rep in reports:
        rx = rep["prescription_gy"]
        lines.append(f"Structure set: {rep['structure_set']}")
        lines.append(f"Dose: {rep['dose']}")
        lines.append(f"Prescription: {_fmt(rx)} Gy" if rx else "Prescription: unknown")
        if rep.get("interpolation_steps"):
            lines.append(
                "Contours: shapes interpolated between planes, "
                f"{rep['interpolation_steps']} sub-slabs per step"
            )
        names = []
        for r in rep["rois"]:
            names += [m for m in r.get("metrics", {}) if m not in names]
        header = ["ROI", "type", "volume[cc]", "in grid[cc]", *names]
        rows = [header]
        for r in rep["rois"]:
            m = r.get("metrics", {})
            rows.append(
                [r["roi"], r["type"], _fmt(r["volume_cc"]), _fmt(r["volume_in_dose_grid_cc"])]
                + [_fmt(m.get(n)) for n in names]
            )
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        for r in rep["rois"]:
            if "note" in r:
                lines.append(f"note: ROI '{r['roi']}': {r['note']}")
            if "prescription_note" in r:
                lines.append(f"note: ROI '{r['roi']}': {r['prescription_note']}")
            if r.get("tps"):
                t = r["tps"]
                lines.append(
                    f"TPS comparison '{r['roi']}': "
                    + ", ".join(
                        f"{k} rtqa {_fmt(t['rtqa'][k])} / TPS {_fmt(t['tps'][k])} "
                        f"(diff {_fmt(t['difference'][k])})"
                        for k in t["rtqa"]
                    )
                )
        # a file's note already starts with its level ("warning: ", "error: ")
        lines += [w if w.startswith(_LEVELS) else f"warning: {w}" for w in rep["warnings"]]
        lines.append("")
    return "\n".join(lines)


def _csv(reports: list[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["structure_set", "dose", "roi", "number", "type", "quantity", "value"])
    for rep in reports:
        dose = rep["dose"] if isinstance(rep["dose"], str) else ";".join(rep["dose"])
        for r in rep["rois"]:
            base = [rep["structure_set"], dose, r["roi"], r["number"], r["type"]]
            w.writerow([*base, "volume_cc", _csv_value(r["volume_cc"])])
            w.writerow([*base, "volume_in_dose_grid_cc", _csv_value(r["volume_in_dose_grid_cc"])])
            for name, value in r.get("metrics", {}).items():
                w.writerow([*base, name, _csv_value(value)])
            curve = r.get("curve")
            if curve:
                for d, v in zip(curve["dose_gy"], curve["volume_pct"], strict=True):
                    w.writerow([*base, f"V{d:g}Gy[%] (curve)", v])
    return out.getvalue()


def _csv_value(value) -> str:
    return "" if value is None else repr(float(value))


__all__ = ["DEFAULT_METRICS", "dvh"]
