"""Target findings of the prior-radiation rules: the volume of each current target (cc, %)
receiving the prior prescription isodose and its 50 %, the prior EQD2 (Gy) inside it, and the
overlap (cc, Dice) of the prior course's own targets mapped onto it."""

from __future__ import annotations

import numpy as np

from rtqa.dvh.core import weighted_sum
from rtqa.geometry.transform import invert
from rtqa.model import TARGET_TYPES, Case, Finding, Roi, Status
from rtqa.protocol.model import Protocol
from rtqa.protocol.prior_alpha_beta import AlphaBeta, alpha_beta
from rtqa.protocol.prior_inputs import (
    GROUP,
    ISODOSE_RTOL,
    UNKNOWN_TOLERANCE_CC,
    MappedPrior,
    PriorInput,
)
from rtqa.protocol.prior_sampling import Samples, sample
from rtqa.radiobiology import eqd2


def target_findings(inp: PriorInput, priors: list[MappedPrior], protocol: Protocol):
    out: list[Finding] = []
    for name, (roi, _rx_now) in inp.targets.items():
        if roi is None or roi.is_empty:
            continue
        try:
            samples, occ = sample(roi, inp, priors)
        except ValueError as exc:
            out.append(
                Finding(
                    GROUP,
                    "target_overlap",
                    Status.INFO,
                    f"target '{name}': prior dose not sampled ({exc})",
                    roi=name,
                )
            )
            continue
        ab = alpha_beta(name, inp, protocol)
        total = float(samples.volumes_cc.sum()) + samples.outside_cc
        for p, dose in zip(priors, samples.priors_gy, strict=True):
            out.extend(_target_rows(name, p, dose, samples, total, ab))
            out.extend(_prior_target_overlap(name, roi, occ, p))
    return out


def _target_rows(name, p: MappedPrior, dose, s: Samples, total_cc: float, ab: AlphaBeta):
    known = ~np.isnan(dose)
    unknown = float(s.volumes_cc[~known].sum()) + s.outside_cc
    rows: list[Finding] = []
    where = f"prior course '{p.label}'"
    tail = ""
    partial = unknown > UNKNOWN_TOLERANCE_CC
    if partial:
        tail = f"; {unknown:.3g} cc of the target has no prior dose (outside the prior grid)"
    levels: list[tuple[str, float]] = []
    if p.rx_gy:
        levels = [
            (f"prior Rx isodose {p.rx_gy:g} Gy", p.rx_gy),
            (f"50 % prior Rx isodose {0.5 * p.rx_gy:g} Gy", 0.5 * p.rx_gy),
        ]
    for what, level in levels:
        vol = float(s.volumes_cc[known & (dose >= level * (1.0 - ISODOSE_RTOL))].sum())
        pct = 100.0 * vol / total_cc if total_cc > 0 else 0.0
        rows.append(
            Finding(
                GROUP,
                "target_overlap",
                Status.INFO,
                f"target '{name}': {vol:.3g} cc ({pct:.1f} %) receives at least the {what} of "
                f"{where}{tail}",
                roi=name,
                metric=f"V{level:g}Gy prior",
                value=vol,
                unit="cc",
                case_id=p.case.case_id,
                value_range=(vol, None) if partial else None,  # at least: the part known
            )
        )
    if np.any(known):
        eq = np.asarray(eqd2(dose[known], p.fractions, ab.value), dtype=float)
        vols = s.volumes_cc[known]
        mx, mean = float(eq.max()), weighted_sum(eq, vols) / float(vols.sum())
        rows.append(
            Finding(
                GROUP,
                "target_prior_eqd2",
                Status.INFO,
                f"target '{name}': prior EQD2 max {mx:.2f} Gy, mean {mean:.2f} Gy from {where} "
                f"({ab.text}){tail}",
                roi=name,
                metric="EQD2pri Max",
                value=mx,
                unit="Gy",
                case_id=p.case.case_id,
                value_range=(mx, None) if partial else None,
            )
        )
    elif not levels:
        rows.append(
            Finding(
                GROUP,
                "target_overlap",
                Status.INFO,
                f"target '{name}': no prior dose known inside it{tail}",
                roi=name,
            )
        )
    return rows


def _prior_targets(case: Case) -> list[Roi]:
    if case.structure_set is None:
        return []
    return [
        r
        for r in case.structure_set.rois
        if r.interpreted_type.upper() in TARGET_TYPES and not r.is_empty
    ]


def _prior_target_overlap(name: str, roi: Roi, occ, p: MappedPrior) -> list[Finding]:
    """Overlap of each mapped prior PTV (else any prior target) with the current target."""
    targets = _prior_targets(p.case)
    ptvs = [r for r in targets if r.interpreted_type.upper() == "PTV"]
    rows = []
    for prior_roi in ptvs or targets:
        try:
            ov = mapped_overlap(prior_roi, p.matrix, occ)
        except ValueError as exc:
            rows.append(
                Finding(
                    GROUP,
                    "target_overlap",
                    Status.INFO,
                    f"prior target '{prior_roi.name}' not mapped: {exc}",
                    roi=name,
                )
            )
            continue
        rows.append(
            Finding(
                GROUP,
                "prior_target_overlap",
                Status.INFO,
                f"prior target '{prior_roi.name}' of '{p.label}' mapped onto the current frame "
                f"overlaps target '{name}' by {ov.overlap_cc:.3g} cc (Dice {ov.dice:.3f}; "
                f"volumes {ov.volume_a_cc:.3g} cc prior, {ov.volume_b_cc:.3g} cc current)",
                roi=name,
                metric="prior PTV overlap",
                value=ov.overlap_cc,
                unit="cc",
                case_id=p.case.case_id,
            )
        )
    return rows


#: Points per axis in each cell of the current structure's lattice where the overlap with a
#: mapped prior structure is counted, and points counted at a time.
OVERLAP_POINTS = 4
OVERLAP_CHUNK = 250_000


def mapped_overlap(prior_roi: Roi, matrix_prior_to_current, current_occ):
    """Overlap (cc, Dice) of a prior-frame structure, mapped by ``matrix_prior_to_current``
    (``None``: identity), with a current structure given by its occupancy on the current grid's
    lattice.

    Both are slab models of their own contours: :data:`OVERLAP_POINTS`^3 regular points in
    each occupied cell of the current structure (within the mapped prior structure's bounding
    box) are tested against both, the prior one at the point mapped back into its frame
    (:func:`rtqa.geometry.slabs.contains_points`), and each point in both counts its share of
    the cell. Structures that only meet at a face share nothing. The prior volume is its own
    (a rigid mapping keeps volumes).
    """
    from rtqa.geometry.slabs import contains_points, slab_stack
    from rtqa.geometry.transform import map_points
    from rtqa.prior import VolumeOverlap

    prior = slab_stack(prior_roi)
    va, vb = prior.volume_cc, current_occ.volume_cc
    current = current_occ.slabs
    k, j, i = np.nonzero(current_occ.values > 0)
    if current is None or k.size == 0:
        return VolumeOverlap(overlap_cc=0.0, volume_a_cc=va, volume_b_cc=vb, dice=0.0)
    x, y, z = current_occ.centres()
    lat = current_occ.lattice
    dz = lat.dz[current_occ.offset[0] + k]
    centres = np.column_stack([x[i], y[j], z[k]])
    size = np.column_stack([np.full(k.size, lat.dx), np.full(k.size, lat.dy), dz])
    # cells that may meet the mapped prior structure's bounding box
    x0, y0, z0, x1, y1, z1 = prior.bounds_mm
    corners = np.array([[a, b, c] for a in (x0, x1) for b in (y0, y1) for c in (z0, z1)])
    mapped = map_points(corners, matrix_prior_to_current)
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    meets = np.all((centres + size / 2 >= lo) & (centres - size / 2 <= hi), axis=1)
    centres, size = centres[meets], size[meets]
    n = OVERLAP_POINTS
    t = (np.arange(n) + 0.5) / n - 0.5
    offsets = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)
    back = None if matrix_prior_to_current is None else invert(matrix_prior_to_current)
    both = 0.0
    per_chunk = max(1, OVERLAP_CHUNK // offsets.shape[0])
    for s in range(0, centres.shape[0], per_chunk):
        c, w = centres[s : s + per_chunk], size[s : s + per_chunk]
        pts = (c[:, None, :] + offsets[None] * w[:, None, :]).reshape(-1, 3)
        hit = contains_points(current, pts) & contains_points(prior, map_points(pts, back))
        share = np.repeat(w.prod(axis=1) / offsets.shape[0], offsets.shape[0])
        both += float(share[hit].sum()) / 1000.0
    dice = 2.0 * both / (va + vb) if va + vb > 0 else 0.0
    return VolumeOverlap(overlap_cc=both, volume_a_cc=va, volume_b_cc=vb, dice=dice)
