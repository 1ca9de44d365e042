"""Figures of the HTML report, drawn with matplotlib (Agg) and returned as PNG data URIs.

matplotlib is imported on first use only, so that text and JSON reports never load it. The
figures draw what :mod:`rtqa.views` extracted: grid planes as stored (no resampling: each
voxel is a cell between the midpoints of its neighbours), contours as given, DVH curves as
computed upstream. Isodose lines are contour levels of the drawn plane.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from rtqa.model import Status
from rtqa.views import Curve, Plane, PriorView, Timeline

#: Colour of each status (findings table badges use the same values).
STATUS_COLORS: dict[str, str] = {
    Status.MAJOR.value: "#c62828",
    Status.MINOR.value: "#e65100",
    Status.NOT_EVALUABLE.value: "#6a1b9a",
    Status.PASS.value: "#2e7d32",
    Status.INFO.value: "#1565c0",
}

#: Structure colours, assigned in name order (targets first) so a structure keeps its colour.
PALETTE: tuple[str, ...] = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#ff7f0e",
    "#7f7f7f",
)
#: Isodose lines drawn on dose planes: (fraction of Rx, colour, width, style).
ISODOSE_LINES = ((0.5, "#ffffff", 1.2, "--"), (1.0, "#000000", 1.6, "-"))
ROLE_ORDER = {"target": 0, "organ": 1, "other": 2, "body": 3}
DPI = 96


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def data_uri(fig) -> str:
    """The figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


#: Longest structure name a figure legend prints whole; a longer one is cut with an ellipsis
#: (the tables carry the full name) so that the legend never squeezes the plot.
LEGEND_CHARS = 32


def plain(text: str) -> str:
    """``text`` (a name read from DICOM) drawn as written: matplotlib reads ``$...$`` as math,
    and a name such as ``Eso$x^$`` would stop the whole report with a parse error."""
    return text.replace("$", r"\$")


def legend_label(name: str) -> str:
    """``name`` for a figure legend, drawn as written (:func:`plain`): cut to
    :data:`LEGEND_CHARS` characters with ``…``; a leading underscore (which makes matplotlib
    leave the entry out of the legend) is kept by a leading space."""
    text = name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "…"
    return plain(" " + text if text.startswith("_") else text)


def structure_colors(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Colour per structure name from (name, role) pairs: targets first, then by name."""
    ordered = sorted(set(items), key=lambda nr: (ROLE_ORDER.get(nr[1], 2), nr[0]))
    colors: dict[str, str] = {}
    for name, role in ordered:
        if name in colors:
            continue
        colors[name] = "#555555" if role == "body" else PALETTE[len(colors) % len(PALETTE)]
    return colors


# --------------------------------------------------------------------------------------------
# DVH
# --------------------------------------------------------------------------------------------


def dvh_figure(curves: Sequence[Curve], colors: dict[str, str]) -> str:
    """Cumulative DVHs (volume % against dose Gy); each judged metric a marker coloured by its
    status (filled: the achieved value; open, joined by a thin line: the per-protocol limit)."""
    fig = _figure(9.0, 4.8)
    ax = fig.add_subplot()
    for c in curves:
        color = colors.get(c.roi, "#333333")
        style = "-" if c.role == "target" else ("--" if c.role == "body" else "-")
        ax.plot(c.dose_gy, c.volume_pct, style, color=color, lw=1.6, label=legend_label(c.roi))
        for m in c.markers:
            mcolor = STATUS_COLORS.get(m.status.value, "#000000")
            ax.plot([m.dose_gy], [m.volume_pct], "o", ms=7, mfc=mcolor, mec="white", zorder=5)
            if m.limit_dose_gy is not None:
                ax.plot(
                    [m.dose_gy, m.limit_dose_gy],
                    [m.volume_pct] * 2,
                    "-",
                    color=mcolor,
                    lw=0.8,
                    zorder=4,
                )
                ax.plot(
                    [m.limit_dose_gy], [m.volume_pct], "|", ms=14, mew=2.2, color=mcolor, zorder=5
                )
            elif m.limit_volume_pct is not None:
                ax.plot(
                    [m.dose_gy] * 2,
                    [m.volume_pct, m.limit_volume_pct],
                    "-",
                    color=mcolor,
                    lw=0.8,
                    zorder=4,
                )
                ax.plot(
                    [m.dose_gy], [m.limit_volume_pct], "_", ms=14, mew=2.2, color=mcolor, zorder=5
                )
    ax.set_xlabel("Dose [Gy]")
    ax.set_ylabel("Volume [% of structure]")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(True, color="#dddddd", lw=0.6)
    handles, labels = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    # every status a marker is drawn in has its legend entry (a not-evaluable metric is never a
    # colour without a word)
    for status in (Status.MAJOR, Status.MINOR, Status.NOT_EVALUABLE, Status.PASS, Status.INFO):
        if any(Status(m.status) is status for c in curves for m in c.markers):
            handles.append(
                Line2D(
                    [], [], ls="", marker="o", mfc=STATUS_COLORS[status.value], mec="white", ms=7
                )
            )
            labels.append(f"metric: {status.value.replace('_', ' ')}")
    if any(
        m.limit_dose_gy is not None or m.limit_volume_pct is not None
        for c in curves
        for m in c.markers
    ):
        handles.append(Line2D([], [], ls="", marker="|", color="#444444", ms=12, mew=2))
        labels.append("per-protocol limit")
    ax.legend(
        handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False
    )
    return data_uri(fig)


# --------------------------------------------------------------------------------------------
# Planes
# --------------------------------------------------------------------------------------------


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


_AXIS_WORDS = {
    "x": "x [mm] (patient left →)",
    "y": "y [mm] (posterior →)",
    "z": "z [mm] (superior ↑)",
}


def _draw_plane(ax, plane: Plane, colors: dict[str, str], vmax: float, cmap: str) -> object:
    h_name, v_name = plane.axis_names
    values = np.ma.masked_invalid(np.asarray(plane.values, dtype=float))
    floor = 0.05 * vmax
    shown = np.ma.masked_less(values, floor)
    ax.set_facecolor("#f4f4f4")
    mesh = ax.pcolormesh(
        _edges(plane.h_mm),
        _edges(plane.v_mm),
        shown,
        cmap=cmap,
        vmin=0,
        vmax=vmax,
        alpha=0.85,
        shading="flat",
        rasterized=True,
    )
    rx = plane.rx_gy
    if rx and plane.quantity == "dose" and values.count():
        lo, hi = float(values.min()), float(values.max())
        # (level, colour, width, style): 50 % of Rx dashed white, Rx solid black
        lines = [ln for ln in ISODOSE_LINES if lo < ln[0] * rx < hi]
        if lines:
            ax.contour(
                plane.h_mm,
                plane.v_mm,
                values,
                levels=[ln[0] * rx for ln in lines],
                colors=[ln[1] for ln in lines],
                linewidths=[ln[2] for ln in lines],
                linestyles=[ln[3] for ln in lines],
            )
    for outline in plane.outlines:
        color = colors.get(outline.roi, "#333333")
        for line in outline.lines:
            ax.plot(line[:, 0], line[:, 1], "-", color=color, lw=1.3)
    if plane.overlap is not None and np.nanmax(plane.overlap) > 0.5 > np.nanmin(plane.overlap):
        ax.contour(
            plane.h_mm,
            plane.v_mm,
            plane.overlap,
            levels=[0.5],
            colors=["#00e5ff"],
            linewidths=2.0,
            linestyles=[":"],
        )
    ax.set_xlim(_edges(plane.h_mm)[[0, -1]])
    lo, hi = _edges(plane.v_mm)[[0, -1]]
    if plane.view == "axial":
        ax.set_ylim(hi, lo)  # anterior (small y) at the top
    else:
        ax.set_ylim(lo, hi)  # superior at the top
    ax.set_aspect("equal")
    ax.set_xlabel(_AXIS_WORDS[h_name], fontsize=8)
    ax.set_ylabel(_AXIS_WORDS[v_name], fontsize=8)
    ax.tick_params(labelsize=7)
    normal = {"axial": "z", "coronal": "y", "sagittal": "x"}[plane.view]
    ax.set_title(f"{plane.view} {normal} = {plane.position_mm:.1f} mm", fontsize=9)
    return mesh


def planes_figure(planes: Sequence[Plane], colors: dict[str, str]) -> str:
    """One row of panels (e.g. axial, coronal, sagittal of one target) sharing a colour scale."""
    fig = _figure(3.4 * len(planes) + 0.9, 3.6)
    vmax = max(float(np.nanmax(p.values)) if np.isfinite(p.values).any() else 0 for p in planes)
    vmax = vmax if vmax > 0 else 1.0
    axes = fig.subplots(1, len(planes), squeeze=False)[0]
    mesh = None
    for ax, plane in zip(axes, planes, strict=True):
        mesh = _draw_plane(ax, plane, colors, vmax, "turbo")
    if mesh is not None:
        bar = fig.colorbar(mesh, ax=list(axes), shrink=0.85, pad=0.01)
        bar.set_label(
            "Gy" if planes[0].quantity == "dose" else f"{planes[0].quantity} [Gy]", fontsize=8
        )
        bar.ax.tick_params(labelsize=7)
    return data_uri(fig)


def prior_figure(prior: PriorView, colors: dict[str, str]) -> list[str]:
    """One figure per view: prior, current and cumulative EQD2 on one colour scale, the overlap
    dotted."""
    images = []
    for row in prior.planes:
        fig = _figure(3.4 * len(row) + 0.9, 3.6)
        vmax = max(float(np.nanmax(p.values)) if np.isfinite(p.values).any() else 0 for p in row)
        vmax = vmax if vmax > 0 else 1.0
        axes = fig.subplots(1, len(row), squeeze=False)[0]
        mesh = None
        for ax, plane in zip(axes, row, strict=True):
            mesh = _draw_plane(ax, plane, colors, vmax, "magma_r")
            ax.set_title(f"{plane.quantity}\n{ax.get_title()}", fontsize=9)
        if mesh is not None:
            bar = fig.colorbar(mesh, ax=list(axes), shrink=0.85, pad=0.01)
            bar.set_label("EQD2 [Gy]", fontsize=8)
            bar.ax.tick_params(labelsize=7)
        images.append(data_uri(fig))
    return images


# --------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------


def timeline_figure(tl: Timeline, status: str | None = None) -> str:
    """Fractions on a day axis from the first fraction, the allowed window shaded; the markers
    coloured and labelled by ``status``, the completion window finding's status (without one:
    red when the span exceeds the window)."""
    fig = _figure(9.0, 1.9)
    ax = fig.add_subplot()
    t0 = tl.starts[0]
    days = np.array([(t - t0).total_seconds() / 86400.0 for t in tl.starts])
    end = max(float(days.max()) if days.size else 0.0, tl.window_days or 0.0) + 1.0
    if tl.window_days is not None:
        # the window is on calendar dates: it ends at the end of day first + window
        window_end = tl.window_days + 1.0 - (t0.hour * 3600 + t0.minute * 60) / 86400.0
        ax.axvspan(
            0 - (t0.hour * 3600 + t0.minute * 60) / 86400.0,
            window_end,
            color="#c8e6c9",
            alpha=0.7,
            lw=0,
            label=f"allowed: within {tl.window_days:g} days",
        )
    if status is None and tl.within is False:
        status = Status.MAJOR.value
    color = STATUS_COLORS[status] if status not in (None, Status.PASS.value) else "#1b5e20"
    marker_label = f"fraction (completion window: {status.replace('_', ' ')})" if status else None
    labels = sorted(set(tl.labels))
    for n, label in enumerate(labels):
        sel = np.array([lb == label for lb in tl.labels])
        ax.plot(
            days[sel],
            np.full(sel.sum(), n),
            "D",
            color=color,
            ms=8,
            label=marker_label if n == 0 else None,
        )
        for k, d in enumerate(days[sel]):
            ax.annotate(
                f"fx{k + 1}",
                (d, n),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=7,
            )
    ax.set_yticks(range(len(labels)), [legend_label(lb) for lb in labels], fontsize=8)
    ax.set_ylim(-0.8, len(labels) - 0.2 + 0.6)
    ax.set_xlim(-1.0, end)
    ax.set_xlabel(f"days from the first fraction ({t0:%Y-%m-%d %H:%M})", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="x", color="#dddddd", lw=0.6)
    if tl.window_days is not None or status:
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    return data_uri(fig)
