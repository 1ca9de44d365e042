"""What the HTML report draws, taken from a :class:`~rtqa.model.CheckResult` and its context.

Nothing here computes a new dose. Dose planes are planes of the evaluated grid (the one nearest
each target's centroid, no interpolation); structure outlines are the contours themselves on an
axial plane and, on coronal and sagittal planes, the cut through the slab model the DVHs use
(each axial contour extends from halfway to the plane below to halfway to the plane above).
DVH curves come from ``CheckResult.curves`` or, failing that, from ``StructureDvh.dvh``; markers
sit where the finding's metric puts them (a ``D`` metric at its volume, a ``V`` metric at its
dose). The context is read by attribute name (see :func:`judged_structures`), so this module
depends on no evaluation code.

Units: dose Gy, coordinates mm (DICOM patient axes: x to the patient's left, y posterior,
z superior), volume % of the structure's total volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from rtqa.dvh import display_bin_gy
from rtqa.model import TARGET_TYPES, CheckResult, DoseGrid, Finding, Roi, Status

#: Axes of each view: (horizontal, vertical) coordinate names.
VIEW_AXES: dict[str, tuple[str, str]] = {
    "axial": ("x", "y"),
    "coronal": ("x", "z"),
    "sagittal": ("y", "z"),
}


# --------------------------------------------------------------------------------------------
# Data drawn
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """One judged metric on a DVH: the achieved point and, where known, the limit point."""

    roi: str
    metric: str
    status: Status
    dose_gy: float
    volume_pct: float
    limit_dose_gy: float | None = None  # for a dose limit (D, Max, Mean ...)
    limit_volume_pct: float | None = None  # for a volume limit (V, CV)


@dataclass(frozen=True)
class Curve:
    """A cumulative DVH: volume (% of the structure) receiving at least ``dose_gy``."""

    roi: str
    role: str  # target | organ | body | other
    dose_gy: np.ndarray
    volume_pct: np.ndarray
    markers: tuple[Marker, ...] = ()


@dataclass(frozen=True)
class Outline:
    """A structure's cut through a plane: polylines of (h, v) points in mm."""

    roi: str
    role: str  # target | organ | body | other
    lines: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Plane:
    """One grid plane of a dose distribution, as drawn.

    ``values[v, h]`` is the grid value at (``h_mm[h]``, ``v_mm[v]``) exactly as stored (Gy, or
    EQD2 Gy for prior panels); ``position_mm`` is the grid coordinate of the plane along the
    axis it is normal to; ``centroid_mm`` the target centroid (x, y, z) it was chosen for.
    """

    view: str  # axial | coronal | sagittal
    target: str
    position_mm: float
    h_mm: np.ndarray
    v_mm: np.ndarray
    values: np.ndarray
    outlines: tuple[Outline, ...]
    centroid_mm: tuple[float, float, float]
    rx_gy: float | None = None
    quantity: str = "dose"  # dose | prior EQD2 | current EQD2 | cumulative EQD2
    overlap: np.ndarray | None = None  # mask plane (same shape as values) of the overlap

    @property
    def axis_names(self) -> tuple[str, str]:
        return VIEW_AXES[self.view]


@dataclass(frozen=True)
class Timeline:
    """Fraction starts (from the treatment records) against the allowed window (days)."""

    starts: tuple[datetime, ...]
    labels: tuple[str, ...]  # plan label of each start
    window_days: float | None
    span_days: int | None
    undated_records: int = 0

    @property
    def within(self) -> bool | None:
        if self.window_days is None or self.span_days is None:
            return None
        return self.span_days <= self.window_days


@dataclass(frozen=True)
class PriorView:
    """Prior, current and cumulative EQD2 on the same planes, with the overlap outlined."""

    alpha_beta_gy: float | None
    planes: tuple[tuple[Plane, ...], ...]  # per view: (prior, current, cumulative) planes
    notes: tuple[str, ...] = ()


@dataclass
class ReportView:
    """Everything the HTML report draws besides the findings table."""

    curves: list[Curve] = field(default_factory=list)
    planes: list[Plane] = field(default_factory=list)
    timeline: Timeline | None = None
    prior: PriorView | None = None
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why


# --------------------------------------------------------------------------------------------
# Reading the context
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """One judged structure of the context."""

    name: str
    roi: Roi | None
    dvh: object | None  # rtqa.dvh.StructureDvh
    occupancy: object | None  # rtqa.geometry.Occupancy


def _get(obj: object, *names: str, default=None):
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


def judged_structures(context: object) -> dict[str, Judged]:
    """The judged structures of an evaluation context, keyed by ROI name.

    Accepts per-ROI dicts ``rois`` (Roi), ``dvhs`` (StructureDvh) and ``occupancies``, or one
    dict ``structures`` whose items carry ``roi``, ``dvh`` and ``occupancy``.
    """
    out: dict[str, Judged] = {}
    items = _get(context, "structures", "judged")
    if isinstance(items, Mapping):
        for name, item in items.items():
            out[str(name)] = Judged(
                str(name),
                _get(item, "roi"),
                _get(item, "dvh", "structure_dvh"),
                _get(item, "occupancy", "occ"),
            )
        return out
    rois = _get(context, "rois", default={}) or {}
    dvhs = _get(context, "dvhs", default={}) or {}
    occs = _get(context, "occupancies", default={}) or {}
    for name in [*rois, *(n for n in dvhs if n not in rois)]:
        dvh = dvhs.get(name)
        occ = occs.get(name) if name in occs else getattr(dvh, "occupancy", None)
        out[str(name)] = Judged(str(name), rois.get(name), dvh, occ)
    return out


def target_rx(context: object) -> dict[str, float | None]:
    """Target ROI name -> prescription (Gy, total) from ``context.targets``.

    ``targets`` may map names to Rx (a number), to ``(Roi, Rx)`` pairs, or be a list of names
    with ``context.rx`` giving the Rx by name.
    """
    targets = _get(context, "targets", default={}) or {}
    rx_map = _get(context, "rx", "target_rx", default={}) or {}
    out: dict[str, float | None] = {}
    if isinstance(targets, Mapping):
        for name, value in targets.items():
            if isinstance(value, tuple):
                value = value[-1]
            value = _get(value, "total_gy", default=value) if not _is_number(value) else value
            out[str(name)] = float(value) if _is_number(value) else None
    else:
        for name in targets:
            value = rx_map.get(name) if isinstance(rx_map, Mapping) else None
            out[str(name)] = float(value) if _is_number(value) else None
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)


def _role(name: str, roi: Roi | None, targets: Iterable[str], body: str | None) -> str:
    if name in targets:
        return "target"
    if body and name == body:
        return "body"
    kind = (roi.interpreted_type if roi else "").upper()
    if kind in TARGET_TYPES:
        return "target"
    if kind == "EXTERNAL":
        return "body"
    return "organ"


# --------------------------------------------------------------------------------------------
# DVH curves and markers
# --------------------------------------------------------------------------------------------


def _curve_from_dvh(dvh, bin_gy: float) -> tuple[np.ndarray, np.ndarray]:
    dose, vol_cc = dvh.cumulative(display_bin_gy(dvh, bin_gy))
    total = float(dvh.total_volume_cc)
    pct = np.asarray(vol_cc, dtype=float) / total * 100.0 if total > 0 else np.zeros(0)
    return np.asarray(dose, dtype=float), pct


def _limit_number(finding: Finding) -> float | None:
    from rtqa.report.common import finite, per_protocol_condition, thresholds

    numbers = thresholds({"c": per_protocol_condition(finding.limits)})
    return finite(numbers[0]) if len(numbers) == 1 else None


def marker_for(
    finding: Finding,
    total_volume_cc: float,
    rx_gy: float | None,
    curve: tuple[np.ndarray, np.ndarray] | None = None,
) -> Marker | None:
    """Where ``finding`` sits on its structure's DVH, or None when it has no place there
    (no value, a plan-quality ratio, a percent of an unknown prescription)."""
    from rtqa.protocol.metrics import MetricKind, MetricSyntaxError, parse_metric

    if finding.value is None or not finding.metric or not np.isfinite(finding.value):
        return None
    try:
        req = parse_metric(finding.metric)
    except MetricSyntaxError:
        return None
    if req.is_quality:
        return None

    def dose_gy(x: float, unit: str | None) -> float | None:
        if unit == "Gy":
            return x
        if unit == "cGy":
            return x / 100.0
        if unit == "%" and rx_gy:
            return x / 100.0 * rx_gy
        return None

    def volume_pct(x: float, unit: str | None) -> float | None:
        if unit == "%":
            return x
        if unit == "cc" and total_volume_cc > 0:
            return x / total_volume_cc * 100.0
        return None

    limit = _limit_number(finding)
    status = Status(finding.status)
    k = req.kind
    if k in (MetricKind.DOSE_AT_VOLUME, MetricKind.COLD_DOSE_AT_VOLUME):
        d = dose_gy(finding.value, req.unit)
        v = volume_pct(req.value, req.query_unit)
        if k is MetricKind.COLD_DOSE_AT_VOLUME and v is not None:
            v = 100.0 - v
        lim = dose_gy(limit, req.unit) if limit is not None else None
        if d is None or v is None:
            return None
        return Marker(finding.roi or "", req.canonical, status, d, v, limit_dose_gy=lim)
    if k in (MetricKind.VOLUME_AT_DOSE, MetricKind.COLD_VOLUME_AT_DOSE):
        d = dose_gy(req.value, req.query_unit)
        v = volume_pct(finding.value, req.unit)
        lim = volume_pct(limit, req.unit) if limit is not None else None
        if k is MetricKind.COLD_VOLUME_AT_DOSE:
            v = None if v is None else 100.0 - v
            lim = None if lim is None else 100.0 - lim
        if d is None or v is None:
            return None
        return Marker(finding.roi or "", req.canonical, status, d, v, limit_volume_pct=lim)
    # statistics: a dose; placed on the drawn curve at that dose (placement only)
    d = dose_gy(finding.value, req.unit)
    if d is None:
        return None
    if k is MetricKind.MAX:
        v = 0.0
    elif k is MetricKind.MIN:
        v = 100.0
    elif k is MetricKind.MEDIAN:
        v = 50.0
    elif curve is not None and curve[0].size:
        v = float(np.interp(d, curve[0], curve[1]))
    else:
        return None
    lim = dose_gy(limit, req.unit) if limit is not None else None
    return Marker(finding.roi or "", req.canonical, status, d, v, limit_dose_gy=lim)


def judged_in_eqd2(finding: Finding) -> bool:
    """Whether ``finding`` was judged in EQD2 against limits converted from physical ones (an
    organ of a course of plans with different fraction counts, conditions written
    ``"<= 26.91 (EQD2 of <= 19.5)"``): its dose, or its volume's dose threshold, is an EQD2."""
    return any("EQD2" in (condition or "") for condition in finding.limits.values())


def dvh_curves(result: CheckResult, bin_gy: float = 0.05) -> list[Curve]:
    """A cumulative DVH per judged structure (physical dose), with a marker per finding on
    it; a finding judged in EQD2 (:func:`judged_in_eqd2`) has no marker.

    Curves come from ``result.curves`` where present (dose Gy, volume %), else from the
    context's ``StructureDvh``; structures with neither are left out.
    """
    context = result.context
    judged = judged_structures(context) if context is not None else {}
    rx = target_rx(context) if context is not None else {}
    body = _get(context, "body", "body_name") if context is not None else None
    body = _get(body, "name", default=body) if body is not None else None
    names = list(judged) + [n for n in result.curves if n not in judged]
    findings_by_roi: dict[str, list[Finding]] = {}
    for f in result.findings:
        if f.roi and f.group != "prior":
            findings_by_roi.setdefault(f.roi, []).append(f)
    rx_default = _single_rx(result, rx)
    curves: list[Curve] = []
    for name in names:
        item = judged.get(name)
        sdvh = item.dvh if item else None
        dvh = getattr(sdvh, "dvh", None)
        if name in result.curves:
            dose, vol = (np.asarray(a, dtype=float) for a in result.curves[name])
        elif dvh is not None:
            dose, vol = _curve_from_dvh(dvh, bin_gy)
        else:
            continue
        total = float(dvh.total_volume_cc) if dvh is not None else 0.0
        role = _role(name, item.roi if item else None, rx, body)
        if role == "body" and not findings_by_roi.get(name):
            continue
        structure_rx = rx.get(name) or rx_default
        markers = []
        for f in findings_by_roi.get(name, []):
            if judged_in_eqd2(f):
                continue  # an EQD2 has no place on a physical-dose curve
            m = marker_for(f, total, structure_rx, (dose, vol))
            if m is not None:
                markers.append(m)
        curves.append(Curve(name, role, dose, vol, tuple(markers)))
    return curves


def _single_rx(result: CheckResult, rx: Mapping[str, float | None]) -> float | None:
    """The prescription when the course has one (for % of Rx on organs), else None."""
    values = {v for v in rx.values() if v}
    if len(values) == 1:
        return values.pop()
    plans = {p.prescription_gy for p in result.plans if p.prescription_gy and not p.prior}
    return plans.pop() if len(plans) == 1 else None


# --------------------------------------------------------------------------------------------
# Planes and outlines
# --------------------------------------------------------------------------------------------


def _slabs(roi: Roi):
    from rtqa.geometry.slabs import slab_stack

    try:
        return slab_stack(roi)
    except ValueError:
        return None


def slab_centroid_mm(roi: Roi) -> tuple[float, float, float] | None:
    """Volume centroid (x, y, z) mm of the slab model of ``roi``; None without a volume."""
    slabs = _slabs(roi)
    if slabs is None:
        return None
    weights = slabs.areas_mm2 * (slabs.hi_mm - slabs.lo_mm)
    total = float(weights.sum())
    if total <= 0:
        return None
    cx = sum(w * g.centroid.x for w, g in zip(weights, slabs.geoms, strict=True) if w > 0)
    cy = sum(w * g.centroid.y for w, g in zip(weights, slabs.geoms, strict=True) if w > 0)
    cz = float(np.sum(weights * 0.5 * (slabs.lo_mm + slabs.hi_mm)))
    return float(cx / total), float(cy / total), cz / total


def _rings(geom) -> list[np.ndarray]:
    """Boundary rings/lines of a shapely geometry as (N, 2) arrays."""
    import shapely

    lines = []
    boundary = geom.boundary
    parts = getattr(boundary, "geoms", [boundary])
    for part in parts:
        if part.is_empty:
            continue
        coords = np.asarray(shapely.get_coordinates(part), dtype=float)
        if coords.shape[0] >= 2:
            lines.append(coords)
    return lines


def roi_outline(roi: Roi, view: str, position_mm: float) -> list[np.ndarray]:
    """Polylines (h, v in mm) of ``roi`` cut by the plane of ``view`` at ``position_mm``.

    Axial: the contours of the slab containing ``position_mm`` (z). Coronal (y) and sagittal
    (x): the union of the slab-model rectangles (contour chord x slab thickness).
    """
    import shapely

    slabs = _slabs(roi)
    if slabs is None:
        return []
    if view == "axial":
        inside = np.flatnonzero((slabs.lo_mm <= position_mm) & (position_mm < slabs.hi_mm))
        lines: list[np.ndarray] = []
        for p in inside:
            lines.extend(_rings(slabs.geoms[p]))
        return lines
    xmin, ymin, _, xmax, ymax, _ = slabs.bounds_mm
    if view == "coronal":
        cut = shapely.LineString([(xmin - 1, position_mm), (xmax + 1, position_mm)])
        pick = 0  # chord along x
    else:
        cut = shapely.LineString([(position_mm, ymin - 1), (position_mm, ymax + 1)])
        pick = 1  # chord along y
    boxes = []
    for geom, lo, hi in zip(slabs.geoms, slabs.lo_mm, slabs.hi_mm, strict=True):
        chord = geom.intersection(cut)
        for seg in getattr(chord, "geoms", [chord]):
            if seg.is_empty or seg.length <= 0:
                continue
            c = np.asarray(shapely.get_coordinates(seg))[:, pick]
            boxes.append(shapely.box(float(c.min()), float(lo), float(c.max()), float(hi)))
    if not boxes:
        return []
    return _rings(shapely.union_all(boxes))


def _plane_values(grid: DoseGrid, values: np.ndarray, view: str, centroid) -> tuple:
    """(position, h, v, 2-D values) of the grid plane nearest ``centroid`` in ``view``."""
    cx, cy, cz = centroid
    if view == "axial":
        k = int(np.argmin(np.abs(grid.z_mm - cz)))
        return float(grid.z_mm[k]), grid.x_mm, grid.y_mm, values[k, :, :]
    if view == "coronal":
        j = int(np.argmin(np.abs(grid.y_mm - cy)))
        return float(grid.y_mm[j]), grid.x_mm, grid.z_mm, values[:, j, :]
    i = int(np.argmin(np.abs(grid.x_mm - cx)))
    return float(grid.x_mm[i]), grid.y_mm, grid.z_mm, values[:, :, i]


def dose_planes(
    grid: DoseGrid,
    targets: Mapping[str, tuple[Roi, float | None]],
    structures: Mapping[str, tuple[Roi, str]],
    *,
    values: np.ndarray | None = None,
    quantity: str = "dose",
    views: Iterable[str] = ("axial", "coronal", "sagittal"),
    overlap: np.ndarray | None = None,
) -> list[Plane]:
    """Axial, coronal and sagittal grid planes through each target's centroid.

    ``targets``: name -> (Roi, Rx Gy); ``structures``: name -> (Roi, role) outlined on every
    plane; ``values``: the grid array to show (default ``grid.dose_gy``); ``overlap``: a mask on
    the grid whose plane is kept for outlining.
    """
    values = grid.dose_gy if values is None else values
    planes: list[Plane] = []
    for name, (roi, rx_gy) in targets.items():
        centroid = slab_centroid_mm(roi)
        if centroid is None:
            continue
        for view in views:
            position, h, v, plane = _plane_values(grid, values, view, centroid)
            outlines = []
            for sname, (sroi, role) in structures.items():
                lines = roi_outline(sroi, view, position)
                if lines:
                    outlines.append(Outline(sname, role, tuple(lines)))
            mask = None
            if overlap is not None:
                mask = np.asarray(_plane_values(grid, overlap, view, centroid)[3], dtype=float)
            planes.append(
                Plane(
                    view,
                    name,
                    position,
                    h,
                    v,
                    np.asarray(plane),
                    tuple(outlines),
                    centroid,
                    rx_gy,
                    quantity,
                    mask,
                )
            )
    return planes


def _context_planes(result: CheckResult) -> tuple[list[Plane], list[str]]:
    context = result.context
    grid = _get(context, "dose", "dose_grid")
    if grid is None:
        return [], ["no evaluated dose grid: dose slices are not drawn"]
    judged = judged_structures(context)
    rx = target_rx(context)
    body = _get(context, "body", "body_name")
    body = _get(body, "name", default=body)
    targets: dict[str, tuple[Roi, float | None]] = {}
    notes: list[str] = []
    for name, rx_gy in rx.items():
        roi = judged[name].roi if name in judged else None
        roi = roi or _find_roi(context, name)
        if roi is None or roi.is_empty:
            notes.append(f"target '{name}': no contours, no slices drawn")
            continue
        targets[name] = (roi, rx_gy)
    structures = {
        n: (j.roi, _role(n, j.roi, rx, body))
        for n, j in judged.items()
        if j.roi is not None and not j.roi.is_empty
    }
    return dose_planes(grid, targets, structures), notes


def _find_roi(context: object, name: str) -> Roi | None:
    course = _get(context, "course")
    for case in getattr(course, "cases", ()):
        ss = case.structure_set
        if ss is None:
            continue
        for roi in ss.rois:
            if roi.name == name:
                return roi
    return None


# --------------------------------------------------------------------------------------------
# Fractionation timeline
# --------------------------------------------------------------------------------------------


def timeline(context: object) -> Timeline | None:
    """Fraction starts of the course's treatment records against the protocol's window;
    None when the course has no records."""
    from rtqa.protocol.schedule import schedule

    course = _get(context, "course")
    if course is None:
        return None
    records = [r for case in course.cases for r in case.records]
    if not records:
        return None
    labels_by_uid = {
        case.plan.sop_instance_uid: case.label for case in course.cases if case.plan is not None
    }
    sched = schedule(records)
    pairs = sorted(
        (t, labels_by_uid.get(uid, uid or "?"))
        for uid, starts in sched.starts_by_plan.items()
        for t in starts
    )
    protocol = _get(context, "protocol")
    rule = getattr(getattr(protocol, "fractionation", None), "complete_within_days", None)
    window = getattr(rule, "value", None)
    window = float(window) if _is_number(window) else None
    return Timeline(
        tuple(t for t, _ in pairs),
        tuple(label for _, label in pairs),
        window,
        sched.span_days,
        sched.undated_records,
    )


# --------------------------------------------------------------------------------------------
# Prior radiation
# --------------------------------------------------------------------------------------------


def _prior_arrays(prior: object) -> dict[str, np.ndarray | None]:
    """The EQD2 grids of a prior context (:class:`rtqa.protocol.prior_rules.PriorContext`):
    prior, current and cumulative (Gy, NaN where a prior dose is unknown), overlap mask."""
    names = {
        "prior": "prior_eqd2_gy",
        "current": "current_eqd2_gy",
        "cumulative": "cumulative_eqd2_gy",
        "overlap": "overlap_mask",
    }
    out: dict[str, np.ndarray | None] = {}
    for key, name in names.items():
        value = getattr(prior, name, None)
        out[key] = value if isinstance(value, np.ndarray) and value.size else None
    return out


def prior_view(result: CheckResult, target_planes: list[Plane]) -> PriorView | None:
    """Prior, current and cumulative EQD2 on the planes of the dose slices; None when the
    context holds no prior context (or it has no cumulative grid)."""
    context = result.context
    prior = _get(context, "prior")
    grid = _get(context, "dose", "dose_grid")
    if prior is None or grid is None:
        return None
    arrays = _prior_arrays(prior)
    if arrays["cumulative"] is None:
        return None
    judged = judged_structures(context)
    rx = target_rx(context)
    body = _get(context, "body", "body_name")
    body = _get(body, "name", default=body)
    structures = {
        n: (j.roi, _role(n, j.roi, rx, body))
        for n, j in judged.items()
        if j.roi is not None and not j.roi.is_empty and _role(n, j.roi, rx, body) != "body"
    }
    overlap = arrays["overlap"]
    if overlap is not None and overlap.shape != grid.shape:
        overlap = None
    targets: dict[str, tuple[Roi, float | None]] = {}
    for plane in target_planes:
        if plane.target not in targets:
            roi = judged[plane.target].roi if plane.target in judged else None
            roi = roi or _find_roi(context, plane.target)
            if roi is not None:
                targets[plane.target] = (roi, None)
    rows = []
    for quantity in ("prior", "current", "cumulative"):
        values = arrays[quantity]
        if values is None or values.shape != grid.shape:
            continue
        rows.append(
            dose_planes(
                grid,
                targets,
                structures,
                values=values,
                quantity=f"{quantity} EQD2",
                overlap=overlap,
            )
        )
    if not rows:
        return None
    per_view = tuple(zip(*rows, strict=True))
    ab = _get(prior, "alpha_beta_gy", "alpha_beta")
    ab = float(ab) if _is_number(ab) else None
    return PriorView(ab, per_view)


# --------------------------------------------------------------------------------------------
# All of it
# --------------------------------------------------------------------------------------------


def report_view(result: CheckResult) -> ReportView:
    """Curves, planes, timeline and prior panels of ``result`` (empty parts when the result
    carries no context)."""
    view = ReportView()
    view.curves = dvh_curves(result)
    in_eqd2 = [f for f in result.findings if f.roi and f.group != "prior" and judged_in_eqd2(f)]
    if in_eqd2:
        view.notes.append(
            f"{len(in_eqd2)} metric(s) judged in EQD2 (plans with different fraction counts) "
            "are not marked on the DVHs, which show physical dose"
        )
    if result.context is None:
        if not view.curves:
            view.notes.append("no evaluation context kept: figures are not drawn")
        return view
    view.planes, notes = _context_planes(result)
    view.notes.extend(notes)
    view.timeline = timeline(result.context)
    view.prior = prior_view(result, view.planes)
    return view
