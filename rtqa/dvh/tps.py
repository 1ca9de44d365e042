"""Numbers read off a planning system's own cumulative DVH (DVHSequence, as read by
:mod:`rtqa.dicom.dose`): its mean and its dose at a volume.

Convention: ``dose_gy[n]`` is the lower edge of DICOM bin n (Gy, from 0) and the curve
``volume[n]`` the volume receiving at least ``dose_gy[n]`` (cc, or fractions of the ROI for a
DVH stored relative); between points the curve is taken as linear.
"""

from __future__ import annotations

import numpy as np

from rtqa.model import TpsDvh


def tps_curve(tps: TpsDvh) -> tuple[np.ndarray, np.ndarray, float]:
    """(dose Gy, cumulative volume, whole ROI) of ``tps``: in cc, or in fractions of the ROI
    (the whole ROI 1) for a DVH stored relative whose ROI volume is not known."""
    from rtqa.dicom.dose import RelativeTpsDvh

    dose = np.asarray(tps.dose_gy, float)
    if isinstance(tps, RelativeTpsDvh):
        return dose, np.asarray(tps.volume_fraction, float), 1.0
    curve = np.asarray(tps.volume_cc, float)
    total = tps.total_volume_cc if tps.total_volume_cc else float(curve.max(initial=0.0))
    return dose, curve, total


def tps_mean_gy(tps: TpsDvh) -> float | None:
    """The planning system's mean dose (Gy): DVHMeanDose where stored, else the integral of the
    cumulative curve over dose divided by the whole ROI; None for an empty curve."""
    if tps.mean_gy is not None:
        return float(tps.mean_gy)
    dose, curve, total = tps_curve(tps)
    if dose.size < 2 or total <= 0:
        return None
    return float(np.sum(0.5 * (curve[1:] + curve[:-1]) * np.diff(dose)) / total)


def tps_dose_at(curve: np.ndarray, dose: np.ndarray, volume: float) -> float | None:
    """The highest dose (Gy) that ``volume`` of a cumulative DVH receives (``curve[n]``, the
    volume receiving at least ``dose[n]``), linear between the points; None when the curve
    never reaches ``volume``."""
    tol = 1e-9 * max(abs(volume), 1.0)
    reached = np.flatnonzero(curve >= volume - tol)
    if reached.size == 0:
        return None
    i = int(reached[-1])
    if i + 1 >= curve.size or curve[i] <= curve[i + 1]:
        return float(dose[i])
    step = (curve[i] - volume) / (curve[i] - curve[i + 1])
    return float(dose[i] + max(step, 0.0) * (dose[i + 1] - dose[i]))


__all__ = ["tps_curve", "tps_dose_at", "tps_mean_gy"]
