"""What the HTML report draws: grid planes as stored, outlines from the slab model, DVH markers
placed by the metric's own numbers, the fractionation timeline and the prior panels."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from rtqa.dvh import Dvh
from rtqa.model import (
    Case,
    CheckResult,
    ContourPlane,
    Course,
    DoseGrid,
    Finding,
    PlanarPolygon,
    Roi,
    Status,
    TreatmentRecord,
)
from rtqa.views import dose_planes, marker_for, prior_view, report_view, roi_outline, timeline

# a 20 x 20 mm square, x 0..20, y -5..15, contoured on z = 0, 2.5, ..., 20: slabs -1.25..21.25
SQUARE = np.array([[0.0, -5.0], [20.0, -5.0], [20.0, 15.0], [0.0, 15.0]])
ZS = np.arange(0.0, 20.01, 2.5)


def square_roi(name="PTV", kind="PTV") -> Roi:
    planes = tuple(ContourPlane(float(z), (PlanarPolygon(SQUARE),), 1) for z in ZS)
    return Roi(1, name, kind, planes=planes)


def grid() -> DoseGrid:
    x = np.arange(-20.0, 40.01, 2.5)
    y = np.arange(-20.0, 30.01, 2.5)
    z = np.array([-5.0, -2.0, 1.0, 4.0, 7.0, 9.5, 11.0, 14.0, 17.0, 20.0, 25.0])  # uneven
    k, j, i = np.meshgrid(np.arange(z.size), np.arange(y.size), np.arange(x.size), indexing="ij")
    return DoseGrid(1000.0 * k + 10.0 * j + 0.01 * i, x, y, z, None)


def test_planes_are_grid_planes_nearest_the_centroid():
    g = grid()
    roi = square_roi()
    planes = {p.view: p for p in dose_planes(g, {"PTV": (roi, 30.0)}, {"PTV": (roi, "target")})}
    # slab centroid (10, 5, 10); nearest grid planes: z = 9.5 (k 5), y = 5 (j 10), x = 10 (i 12)
    ax, co, sa = planes["axial"], planes["coronal"], planes["sagittal"]
    assert ax.centroid_mm == pytest.approx((10.0, 5.0, 10.0))
    assert (ax.position_mm, co.position_mm, sa.position_mm) == (9.5, 5.0, 10.0)
    np.testing.assert_array_equal(ax.values, g.dose_gy[5])
    np.testing.assert_array_equal(co.values, g.dose_gy[:, 10, :])
    np.testing.assert_array_equal(sa.values, g.dose_gy[:, :, 12])
    np.testing.assert_array_equal(co.v_mm, g.z_mm)
    assert ax.rx_gy == 30.0


def _bounds(lines):
    pts = np.vstack(lines)
    return tuple(pts.min(axis=0)) + tuple(pts.max(axis=0))


def test_outlines_cut_the_slab_model():
    roi = square_roi()
    assert _bounds(roi_outline(roi, "axial", 9.5)) == (0.0, -5.0, 20.0, 15.0)
    assert _bounds(roi_outline(roi, "coronal", 5.0)) == (0.0, -1.25, 20.0, 21.25)
    assert _bounds(roi_outline(roi, "sagittal", 10.0)) == (-5.0, -1.25, 15.0, 21.25)
    assert roi_outline(roi, "axial", 21.3) == []  # beyond the end cap
    assert roi_outline(roi, "coronal", 15.5) == []  # beyond the square


def test_markers_sit_where_the_metric_puts_them():
    def f(metric, value, limits, unit):
        return Finding("organ", metric, Status.MAJOR, roi="Cord", metric=metric, value=value,
                       unit=unit, limits=limits)  # fmt: skip

    d = marker_for(f("D0.03cc[Gy]", 14.0, {"per_protocol": "<= 21.9"}, "Gy"), 8.0, None)
    assert (d.dose_gy, d.volume_pct, d.limit_dose_gy) == (14.0, pytest.approx(0.375), 21.9)
    v = marker_for(f("V100%[%]", 96.0, {"per_protocol": ">= 95"}, "%"), 20.0, 30.0)
    assert (v.dose_gy, v.volume_pct, v.limit_volume_pct) == (30.0, 96.0, 95.0)
    cv = marker_for(f("CV7Gy[cc]", 700.0, {"per_protocol": ">= 500"}, "cc"), 1000.0, None)
    assert (cv.dose_gy, cv.volume_pct, cv.limit_volume_pct) == (7.0, 30.0, 50.0)
    dose = np.array([0.0, 10.0, 20.0])
    mean = marker_for(f("Mean[Gy]", 15.0, {}, "Gy"), 8.0, None, (dose, np.array([100, 60, 0])))
    assert (mean.dose_gy, mean.volume_pct, mean.limit_dose_gy) == (15.0, 30.0, None)
    assert marker_for(f("D95%[%]", 98.0, {}, "%"), 8.0, None) is None  # no Rx: no place
    assert marker_for(f("CI", 1.1, {}, ""), 8.0, 30.0) is None


def _result(context, findings=(), curves=None) -> CheckResult:
    return CheckResult("C", "P", [], "T", "1", "t", "t", False, list(findings), Status.PASS, 0,
                       "0", datetime(2024, 1, 1), curves=curves or {}, context=context)  # fmt: skip


@dataclass
class Ctx:
    course: Course
    dose: DoseGrid
    rois: dict
    dvhs: dict
    targets: dict
    protocol: object = None
    body: str | None = None
    prior: object = None
    occupancies: dict = field(default_factory=dict)


def _records(days):
    return tuple(
        TreatmentRecord(f"r{n}", f"u{n}", "plan-uid", n + 1, datetime(2024, 3, 1 + d, 9, 0))
        for n, d in enumerate(days)
    )


def test_timeline_against_the_window():
    protocol = SimpleNamespace(
        fractionation=SimpleNamespace(complete_within_days=SimpleNamespace(value=21))
    )
    course = Course((Case("A", records=_records([0, 2, 24])),))
    tl = timeline(SimpleNamespace(course=course, protocol=protocol))
    assert tl.span_days == 24 and tl.window_days == 21.0 and tl.within is False
    assert [t.day for t in tl.starts] == [1, 3, 25]
    assert timeline(SimpleNamespace(course=Course((Case("B"),)), protocol=protocol)) is None


def test_report_view_draws_curves_planes_and_the_prior():
    g = grid()
    roi = square_roi()
    dvh = Dvh.from_samples([30.0, 20.0, 10.0], [2.0, 1.0, 1.0])  # 4 cc
    cord_dvh = Dvh.from_samples([12.0, 6.0], [1.0, 3.0])
    finding = Finding("target", "cov", Status.PASS, roi="PTV", metric="D50%[Gy]", value=30.0,
                      unit="Gy", limits={"per_protocol": ">= 29"})  # fmt: skip
    prior = SimpleNamespace(
        prior_eqd2_gy=g.dose_gy * 0.5,
        current_eqd2_gy=g.dose_gy,
        cumulative_eqd2_gy=g.dose_gy * 1.5,
        overlap_mask=g.dose_gy > 5000,
        alpha_beta_gy=2.0,
    )
    ctx = Ctx(
        Course((Case("A"),)), g, {"PTV": roi, "Cord": square_roi("Cord", "ORGAN")},
        {"PTV": SimpleNamespace(dvh=dvh), "Cord": SimpleNamespace(dvh=cord_dvh)},
        {"PTV": 30.0}, prior=prior,
    )  # fmt: skip
    view = report_view(_result(ctx, [finding]))
    curves = {c.roi: c for c in view.curves}
    assert set(curves) == {"PTV", "Cord"} and curves["PTV"].role == "target"
    # cumulative: 100 % at 0 Gy, 50 % (2 of 4 cc) just above 20 Gy
    ptv = curves["PTV"]
    assert ptv.volume_pct[0] == pytest.approx(100.0)
    assert np.interp(25.0, ptv.dose_gy, ptv.volume_pct) == pytest.approx(50.0)
    (m,) = ptv.markers
    assert (m.dose_gy, m.volume_pct, m.limit_dose_gy) == (30.0, 50.0, 29.0)
    assert len(view.planes) == 3
    assert {o.roi for o in view.planes[0].outlines} == {"PTV", "Cord"}
    assert view.prior is not None and view.prior.alpha_beta_gy == 2.0
    axial = view.prior.planes[0]
    assert [p.quantity for p in axial] == ["prior EQD2", "current EQD2", "cumulative EQD2"]
    np.testing.assert_array_equal(axial[2].values, 1.5 * g.dose_gy[5])
    np.testing.assert_array_equal(axial[0].overlap, (g.dose_gy[5] > 5000).astype(float))
    # no prior context: no prior section
    ctx.prior = None
    assert prior_view(_result(ctx), view.planes) is None


def test_without_context_only_the_curves_are_drawn():
    curves = {"Cord": (np.array([0.0, 10.0]), np.array([100.0, 0.0]))}
    view = report_view(_result(None, curves=curves))
    assert [c.roi for c in view.curves] == ["Cord"] and view.planes == []
    assert report_view(_result(None)).notes
