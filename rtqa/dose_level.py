"""The one rule for a dose maximum a plan's prescription cannot produce.

A plan is prescribed to an isodose that covers its target, so its dose maximum is at least
its prescribed total dose Rx: 100-125 % of Rx for most SBRT plans, 200 % for a prescription to
the 50 % isodose. A dose whose maximum (Gy) lies below :data:`LOW_PCT` or above
:data:`HIGH_PCT` % of Rx is not the plan's total dose as prescribed: one fraction's dose under a
course label, cGy stored as Gy, a wrong DoseGridScaling, the dose of one beam or of another
plan (rtqa convention; used by the reader's warning and by ``check``'s ``dose_level`` rule).
"""

from __future__ import annotations

#: Plausible dose maximum, in % of the highest prescribed total dose.
LOW_PCT = 90.0
HIGH_PCT = 300.0


def level_text(peak_gy: float, rx_gy: float, fractions: int | None) -> str:
    """The dose maximum ``peak_gy`` against the prescription ``rx_gy`` (Gy, total); outside the
    plausible range with its likely cause."""
    pct = 100.0 * peak_gy / rx_gy
    text = f"dose maximum {peak_gy:.4g} Gy = {pct:.4g} % of the prescription {rx_gy:g} Gy"
    if is_plausible(peak_gy, rx_gy):
        return text
    return f"{text}, outside {LOW_PCT:g}-{HIGH_PCT:g} %: {likely_cause(peak_gy, rx_gy, fractions)}"


def is_plausible(peak_gy: float, rx_gy: float) -> bool:
    return LOW_PCT <= 100.0 * peak_gy / rx_gy <= HIGH_PCT


def is_one_fraction(peak_gy: float, rx_gy: float, fractions: int | None) -> bool:
    """Whether ``fractions`` times the maximum would be plausible (the file holds one fraction)."""
    return bool(fractions and fractions > 1) and is_plausible(peak_gy * fractions, rx_gy)


def likely_cause(peak_gy: float, rx_gy: float, fractions: int | None) -> str:
    """Why a maximum outside the plausible range is likely so (a sentence)."""
    if is_one_fraction(peak_gy, rx_gy, fractions):
        return (
            f"it matches one fraction ({rx_gy:g} Gy / {fractions} = {rx_gy / fractions:.4g} Gy): "
            "the file may hold a single fraction's dose"
        )
    if is_plausible(peak_gy / 100.0, rx_gy):
        return "divided by 100 it would be plausible: cGy stored as Gy? (check DoseGridScaling)"
    if is_plausible(peak_gy * 100.0, rx_gy):
        return "times 100 it would be plausible: Gy read as cGy? (check DoseGridScaling)"
    if peak_gy <= 0:
        return "the dose grid holds no dose"
    return "check the dose scaling and units, and that the dose is the plan's total dose"
