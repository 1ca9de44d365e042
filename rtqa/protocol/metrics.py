"""The TG-263 DVH metric grammar: parse metric strings into typed requests and evaluate them.

Grammar (AAPM TG-263 §9, Mayo et al. 2016): ``{Qt}{Qv}{Qu}[{Ud}]``, the result unit in brackets.

==============  ===================================================  ===========================
form            meaning                                              example
==============  ===================================================  ===========================
``D``           minimum dose to the hottest ``v`` (cc or % of the    ``D95%[Gy]``, ``D0.03cc[Gy]``,
                structure); ``[%]`` = percent of the prescription    ``D2cc[Gy]``, ``D95%[%]``
``V``           volume receiving at least ``d`` (Gy, cGy or % of     ``V20Gy[%]``, ``V20Gy[cc]``,
                the prescription), in cc or % of the structure       ``V100%[%]``
``CV``          volume receiving less than ``d`` (the spared volume) ``CV7Gy[cc]``
``DC``          highest dose to the coldest ``v`` cc (or %)          ``DC1500cc[Gy]``
statistics      ``Mean``, ``Max``, ``Min``, ``Median`` (also          ``Mean[Gy]``, ``Max[%]``
                ``Dmean``, ``Dmax``, ``Dmin``, ``Dmedian``)
plan quality    ``CI`` (RTOG PIV/TV), ``CI_Paddick``, ``GI``          ``R50%``, ``D2cm[%]``
                (PIV50/PIV), ``R50%`` (PIV50/TV), ``D2cm[%]`` (% Rx), ``Spill105[%]``
                ``HI``, ``Spill105[%]`` (% of TV outside the
                target at >= 105 % Rx): read from the dict
                ``plan_quality`` returns
==============  ===================================================  ===========================

Percent of a structure is of its *total* volume (known plus outside the dose grid, the
:class:`rtqa.dvh.Dvh` convention). Results are in ``request.unit``: ``Gy``, ``cGy``, ``cc``, ``%``
or ``""`` for the dimensionless quality ratios.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DOSE_UNITS = ("Gy", "cGy")
QUALITY_METRICS: dict[str, str] = {
    # metric string -> result unit ("" for a ratio)
    "CI": "",
    "CI_Paddick": "",
    "GI": "",
    "R50%": "",
    "D2cm[%]": "%",
    "HI": "",
    "Spill105[%]": "%",
}
_STAT_ALIASES = {
    "Max": "Max",
    "Dmax": "Max",
    "Min": "Min",
    "Dmin": "Min",
    "Mean": "Mean",
    "Dmean": "Mean",
    "Median": "Median",
    "Dmedian": "Median",
}

_DV = re.compile(
    r"^(?P<qt>DC|CV|D|V)(?P<qv>\d+(?:\.\d+)?)(?P<qu>%|cGy|Gy|cc)\[(?P<ud>%|cGy|Gy|cc)\]$"
)
_STAT = re.compile(r"^(?P<stat>[A-Za-z]+)\[(?P<ud>%|cGy|Gy)\]$")


class MetricSyntaxError(ValueError):
    """A metric string outside the grammar; ``text`` is the string as written."""

    def __init__(self, text: object, reason: str):
        self.text = text
        self.reason = reason
        super().__init__(f"unknown metric {text!r}: {reason}")


class MetricNotEvaluable(ValueError):
    """A well-formed metric that cannot be evaluated here (no prescription, no plan-quality
    value, a non-finite result). Undefined DVH queries raise ``rtqa.dvh.MetricUndefined``."""


class MetricKind(enum.StrEnum):
    DOSE_AT_VOLUME = "D"
    VOLUME_AT_DOSE = "V"
    COLD_DOSE_AT_VOLUME = "DC"
    COLD_VOLUME_AT_DOSE = "CV"
    MEAN = "Mean"
    MAX = "Max"
    MIN = "Min"
    MEDIAN = "Median"
    QUALITY = "quality"


_STAT_KINDS = {
    "Mean": MetricKind.MEAN,
    "Max": MetricKind.MAX,
    "Min": MetricKind.MIN,
    "Median": MetricKind.MEDIAN,
}


@dataclass(frozen=True)
class MetricRequest:
    """One parsed metric.

    ``value``/``query_unit``: the query (``0.03``/``"cc"`` for ``D0.03cc[Gy]``; ``None`` for
    statistics and quality metrics). ``unit``: the unit of the evaluated result (``Gy``, ``cGy``,
    ``cc``, ``%`` or ``""``). ``text``: as written; ``canonical``: the normalised spelling
    (``Dmax[Gy]`` → ``Max[Gy]``).
    """

    text: str
    kind: MetricKind
    unit: str
    value: float | None = None
    query_unit: str | None = None
    canonical: str = ""

    @property
    def is_quality(self) -> bool:
        return self.kind is MetricKind.QUALITY

    @property
    def needs_rx(self) -> bool:
        """True when the query or the result is a percent of the prescription dose."""
        if self.is_quality:
            return False
        dose_query = self.kind in (MetricKind.VOLUME_AT_DOSE, MetricKind.COLD_VOLUME_AT_DOSE)
        dose_result = not dose_query
        return (dose_query and self.query_unit == "%") or (dose_result and self.unit == "%")

    @property
    def description(self) -> str:
        """A plain-words reading of the metric, for reports."""
        k, v, q, u = self.kind, self.value, self.query_unit, self.unit
        of_rx = "% of the prescription"
        vol = f"{v:g} cc" if q == "cc" else f"{v:g}% of the volume"
        dose = f"{v:g} {q}" if q in DOSE_UNITS else f"{v:g}{of_rx}"
        res = of_rx if u == "%" and k not in _VOLUME_RESULT else u
        if k is MetricKind.DOSE_AT_VOLUME:
            return f"minimum dose to the hottest {vol} ({res})"
        if k is MetricKind.COLD_DOSE_AT_VOLUME:
            return f"highest dose to the coldest {vol} ({res})"
        if k is MetricKind.VOLUME_AT_DOSE:
            return f"volume receiving at least {dose} ({'% of the volume' if u == '%' else u})"
        if k is MetricKind.COLD_VOLUME_AT_DOSE:
            return f"volume receiving less than {dose} ({'% of the volume' if u == '%' else u})"
        if k is MetricKind.QUALITY:
            return _QUALITY_WORDS[self.canonical]
        return f"{k.value.lower()} dose ({res})"

    def __str__(self) -> str:
        return self.canonical


_VOLUME_RESULT = (MetricKind.VOLUME_AT_DOSE, MetricKind.COLD_VOLUME_AT_DOSE)
_QUALITY_WORDS = {
    "CI": "RTOG conformity index: prescription isodose volume / target volume",
    "CI_Paddick": "Paddick conformity index: TV_PIV^2 / (TV x PIV)",
    "GI": "Paddick gradient index: half-prescription isodose volume / prescription isodose volume",
    "R50%": "half-prescription isodose volume / target volume",
    "D2cm[%]": "maximum dose 2 cm or more from the target (% of the prescription)",
    "HI": "homogeneity index",
    "Spill105[%]": "high-dose spillage: volume outside the target receiving >= 105 % of the "
    "prescription (% of the target volume)",
}


def grows_with_volume(request: MetricRequest) -> bool:
    """True when the metric can only grow as a missing part of the structure is added back
    (every voxel adds volume at a dose >= 0): the maximum, the dose to an absolute volume (cc)
    and the volume (cc) above a dose. Then a value above an upper limit over a part of the
    structure is above it for the whole; means, medians and shares can move either way."""
    if request.kind is MetricKind.MAX:
        return True
    if request.kind is MetricKind.DOSE_AT_VOLUME:
        return request.query_unit == "cc"
    return request.kind is MetricKind.VOLUME_AT_DOSE and request.unit == "cc"


def parse_metric(text: object) -> MetricRequest:
    """Parse a TG-263 metric string; raise :class:`MetricSyntaxError` naming the string."""
    if not isinstance(text, str):
        raise MetricSyntaxError(text, "a metric is a string such as 'D0.03cc[Gy]'")
    s = text.strip()
    if s in QUALITY_METRICS:
        return MetricRequest(text, MetricKind.QUALITY, QUALITY_METRICS[s], canonical=s)
    m = _DV.match(s)
    if m:
        qt, qu, ud = m.group("qt"), m.group("qu"), m.group("ud")
        qv = float(m.group("qv"))
        if qt in ("D", "DC"):
            if qu not in ("%", "cc"):
                raise MetricSyntaxError(text, f"{qt} takes a volume (cc or %), not {qu}")
            if ud not in ("Gy", "cGy", "%"):
                raise MetricSyntaxError(text, f"{qt} returns a dose (Gy, cGy or %), not {ud}")
            if qu == "%" and qv > 100:
                raise MetricSyntaxError(text, "a percent of the volume cannot exceed 100")
        else:
            if qu not in ("Gy", "cGy", "%"):
                raise MetricSyntaxError(text, f"{qt} takes a dose (Gy, cGy or %), not {qu}")
            if ud not in ("cc", "%"):
                raise MetricSyntaxError(text, f"{qt} returns a volume (cc or %), not {ud}")
        return MetricRequest(text, MetricKind(qt), ud, qv, qu, canonical=s)
    m = _STAT.match(s)
    if m and m.group("stat") in _STAT_ALIASES:
        stat = _STAT_ALIASES[m.group("stat")]
        return MetricRequest(
            text, _STAT_KINDS[stat], m.group("ud"), canonical=f"{stat}[{m.group('ud')}]"
        )
    if "[" not in s:
        reason = "the result unit in brackets is missing (e.g. 'D95%[Gy]')"
    else:
        reason = (
            "expected D<v>(cc|%)[Gy|cGy|%], V<d>(Gy|cGy|%)[cc|%], DC.., CV.., "
            "Mean|Max|Min|Median[Gy|cGy|%] or one of " + ", ".join(QUALITY_METRICS)
        )
    raise MetricSyntaxError(text, reason)


def _rx(request: MetricRequest, rx_gy: float | None) -> float:
    if rx_gy is None or not math.isfinite(rx_gy) or rx_gy <= 0:
        raise MetricNotEvaluable(
            f"{request.canonical} is relative to the prescription, and no prescription dose "
            f"is known"
        )
    return float(rx_gy)


def _dose_out(request: MetricRequest, dose_gy: float, rx_gy: float | None) -> float:
    if request.unit == "Gy":
        return dose_gy
    if request.unit == "cGy":
        return dose_gy * 100.0
    return dose_gy / _rx(request, rx_gy) * 100.0


def _dose_in(request: MetricRequest, rx_gy: float | None) -> float:
    assert request.value is not None
    if request.query_unit == "Gy":
        return request.value
    if request.query_unit == "cGy":
        return request.value / 100.0
    return request.value / 100.0 * _rx(request, rx_gy)


def evaluate(
    request: MetricRequest,
    dvh: Any = None,
    *,
    rx_gy: float | None = None,
    quality: Mapping[str, float] | None = None,
) -> float:
    """Evaluate ``request`` on an :class:`rtqa.dvh.Dvh` (or, for plan-quality metrics, read
    it from ``quality``, the dict ``rtqa.dvh.plan_quality`` returns). Result in ``request.unit``.

    ``rx_gy``: the prescription (total Gy) for ``%``-of-prescription queries and results.
    Raises :class:`MetricNotEvaluable` when an input is missing or the result is not finite;
    ``rtqa.dvh.MetricUndefined`` propagates (e.g. ``D1500cc`` of a 1000 cc organ).
    """
    if request.is_quality:
        if quality is None or request.canonical not in quality:
            raise MetricNotEvaluable(f"no plan-quality value {request.canonical} was computed")
        result = float(quality[request.canonical])
    else:
        if dvh is None:
            raise MetricNotEvaluable(f"{request.canonical} needs a DVH")
        result = _evaluate_dvh(request, dvh, rx_gy)
    if not math.isfinite(result):
        raise MetricNotEvaluable(f"{request.canonical} evaluated to {result}")
    return result


def _evaluate_dvh(request: MetricRequest, dvh: Any, rx_gy: float | None) -> float:
    k = request.kind
    if k is MetricKind.MEAN:
        return _dose_out(request, float(dvh.mean_gy), rx_gy)
    if k is MetricKind.MAX:
        return _dose_out(request, float(dvh.max_gy), rx_gy)
    if k is MetricKind.MIN:
        return _dose_out(request, float(dvh.min_gy), rx_gy)
    if k is MetricKind.MEDIAN:
        return _dose_out(request, float(dvh.median_gy), rx_gy)
    assert request.value is not None
    if k is MetricKind.DOSE_AT_VOLUME:
        if request.query_unit == "cc":
            dose = dvh.dose_at_volume_cc(request.value)
        else:
            dose = dvh.dose_at_volume_pct(request.value)
        return _dose_out(request, float(dose), rx_gy)
    if k is MetricKind.COLD_DOSE_AT_VOLUME:
        v_cc = request.value
        if request.query_unit == "%":
            v_cc = request.value / 100.0 * float(dvh.total_volume_cc)
        return _dose_out(request, float(dvh.cold_dose_at_volume_cc(v_cc)), rx_gy)
    d_gy = _dose_in(request, rx_gy)
    if k is MetricKind.VOLUME_AT_DOSE:
        if request.unit == "cc":
            return float(dvh.volume_at_dose_cc(d_gy))
        return float(dvh.volume_at_dose_pct(d_gy))
    cold_cc = float(dvh.cold_volume_cc(d_gy))
    if request.unit == "cc":
        return cold_cc
    total = float(dvh.total_volume_cc)
    if total <= 0:
        raise MetricNotEvaluable(f"{request.canonical}: the structure has no volume")
    return cold_cc / total * 100.0
