"""Target findings of the prior-radiation rules: the volume of each current target (cc, %)
receiving the prior prescription isodose and its 50 %, the prior EQD2 (Gy) inside it, and the
overlap (cc, Dice) of the prior course's own targets mapped onto it."""

from __future__ import annotations

import numpy as np

from rtqa.dvh.core import weighted_sum
from rtqa.geometry.transform import invert, resample_dose
from rtqa.model import Case, DoseGrid, Finding, Roi, Status
from rtqa.protocol.model import Protocol
from rtqa.protocol.prior_alpha_beta import AlphaBeta, alpha_beta
from rtqa.protocol.prior_inputs import (
    GROUP,
    ISODOSE_RTOL,
    UNKNOWN_TOLERANCE_CC,
    MappedPrior,
    PriorInput,
)
from rtqa.protocol.prior_sampling import Samples, cell_grid, sample
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
    if unknown > UNKNOWN_TOLERANCE_CC:
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
        if r.interpreted_type.upper() in ("PTV", "CTV", "GTV", "ITV") and not r.is_empty
    ]


def _prior_target_overlap(name: str, roi: Roi, occ, p: MappedPrior) -> list[Finding]:
    """Overlap of each mapped prior PTV (else any prior target) with the current target."""
    targets = _prior_targets(p.case)
    ptvs = [r for r in targets if r.interpreted_type.upper() == "PTV"]
    rows = []
    for prior_roi in ptvs or targets:
        try:
            ov = mapped_overlap(prior_roi, p.grid, p.matrix, occ)
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


def mapped_overlap(prior_roi: Roi, prior_grid: DoseGrid, matrix_prior_to_current, current_occ):
    """Overlap (cc, Dice) of a prior-frame structure, mapped by ``matrix_prior_to_current``
    (``None``: identity), with a current structure given by its occupancy on the current grid's
    lattice.

    The prior structure's occupancy is built on its own grid's lattice (fine sampling, padded by
    one empty cell), interpolated trilinearly at the current structure's cell centres, and the
    shared part of a cell is ``min`` of both fractions. The prior volume is its own (a rigid
    mapping keeps volumes).
    """
    from rtqa.geometry.sampling import occupancy
    from rtqa.prior import VolumeOverlap

    prior_occ = occupancy(prior_roi, prior_grid, margin_cells=1, name=prior_roi.name)
    if prior_occ.values.size == 0:
        raise ValueError(f"'{prior_roi.name}' lies outside the prior dose grid")
    x, y, z = prior_occ.centres()
    lattice = DoseGrid(
        dose_gy=np.asarray(prior_occ.values, dtype=float),
        x_mm=np.asarray(x, dtype=float),
        y_mm=np.asarray(y, dtype=float),
        z_mm=np.asarray(z, dtype=float),
        frame_of_reference_uid=None,
    )
    cells = cell_grid(current_occ)
    back = None if matrix_prior_to_current is None else invert(matrix_prior_to_current)
    mapped, outside = resample_dose(lattice, cells, back)
    mapped[outside] = 0.0
    volumes = np.asarray(current_occ.cell_volumes_mm3(), dtype=float) / 1000.0
    current = np.asarray(current_occ.values, dtype=float)
    both = float((np.minimum(np.clip(mapped, 0.0, 1.0), current) * volumes).sum())
    va, vb = prior_occ.volume_cc, current_occ.volume_cc
    dice = 2.0 * both / (va + vb) if va + vb > 0 else 0.0
    return VolumeOverlap(overlap_cc=both, volume_a_cc=va, volume_b_cc=vb, dice=dice)
