"""Exact pixel coverage moments (area and centroid of polygon ∩ pixel) against shapely."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from rtqa.geometry.raster import coverage


def test_coverage_moments_match_shapely_intersections():
    outer = shapely.affinity.rotate(shapely.box(-7.3, -4.1, 8.2, 6.6), 23.0, origin=(0.0, 0.0))
    hole = shapely.Polygon([(-2.2, -1.0), (3.1, -0.4), (0.3, 3.7)])
    geom = outer.difference(hole)
    dx, dy = 1.7, 1.3
    xe = -12.0 + dx * np.arange(16)
    ye = -11.0 + dy * np.arange(19)
    cov = coverage([geom], xe, ye)
    ny, nx = ye.size - 1, xe.size - 1
    assert cov.key.size > 20
    for key, mom in zip(cov.key, cov.moments, strict=True):
        j, i = divmod(int(key), nx)
        assert j < ny
        pix = shapely.box(xe[i], ye[j], xe[i + 1], ye[j + 1])
        part = geom.intersection(pix)
        area = part.area / (dx * dy)
        assert mom[0] == pytest.approx(area, abs=1e-9)
        assert cov.fraction[0, j, i] == pytest.approx(area, abs=1e-6)
        if part.area > 1e-9:
            c = part.centroid
            u = (c.x - 0.5 * (xe[i] + xe[i + 1])) / dx
            v = (c.y - 0.5 * (ye[j] + ye[j + 1])) / dy
            assert mom[1] == pytest.approx(area * u, abs=1e-9)
            assert mom[2] == pytest.approx(area * v, abs=1e-9)
    # pixels not listed are wholly inside or outside
    listed = np.zeros(ny * nx, bool)
    listed[cov.key] = True
    for flat in np.flatnonzero(~listed):
        j, i = divmod(int(flat), nx)
        pix = shapely.box(xe[i], ye[j], xe[i + 1], ye[j + 1])
        assert cov.fraction[0, j, i] == pytest.approx(geom.intersection(pix).area / (dx * dy))


def test_pixels_crossed_only_by_vertical_edges_are_listed_with_their_moments():
    # an axis-aligned outline with a notch and a hole: vertical edges through pixel interiors
    # (x = 5.5, -4.3, 1.9) and along pixel lines (x = -2.0), horizontal ones likewise
    outer = shapely.Polygon(
        [(-4.3, -5.5), (5.5, -5.5), (5.5, 6.1), (1.9, 6.1), (1.9, 2.0), (-4.3, 2.0)]
    )
    geom = outer.difference(shapely.box(-2.0, -3.3, 0.7, -1.0))
    dx = dy = 2.0
    xe = -8.0 + dx * np.arange(9)
    ye = -8.0 + dy * np.arange(9)
    cov = coverage([geom], xe, ye)
    nx = xe.size - 1
    listed = dict(zip(cov.key.tolist(), cov.moments, strict=True))
    checked = 0
    for j in range(ye.size - 1):
        for i in range(nx):
            pix = shapely.box(xe[i], ye[j], xe[i + 1], ye[j + 1])
            part = geom.intersection(pix)
            area = part.area / (dx * dy)
            if not 1e-9 < area < 1 - 1e-9:
                continue
            assert j * nx + i in listed, f"partly covered pixel ({j}, {i}) has no moments"
            mom = listed[j * nx + i]
            cx, cy = 0.5 * (xe[i] + xe[i + 1]), 0.5 * (ye[j] + ye[j + 1])
            assert mom[0] == pytest.approx(area, abs=1e-12)
            assert mom[1] == pytest.approx(area * (part.centroid.x - cx) / dx, abs=1e-12)
            assert mom[2] == pytest.approx(area * (part.centroid.y - cy) / dy, abs=1e-12)
            if part.area == pytest.approx(part.envelope.area):  # a rectangle: second moments
                a, c, b, d = part.bounds
                a, b = (a - cx) / dx, (b - cx) / dx
                c, d = (c - cy) / dy, (d - cy) / dy
                assert mom[3] == pytest.approx((b**3 - a**3) / 3 * (d - c), abs=1e-12)
                assert mom[4] == pytest.approx((d**3 - c**3) / 3 * (b - a), abs=1e-12)
            checked += 1
    assert checked >= 20
