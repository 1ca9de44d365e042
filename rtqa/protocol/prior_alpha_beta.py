"""The α/β (Gy) of the prior-radiation EQD2 figures and where it came from: each organ's, and
that of the cumulative EQD2 grid."""

from __future__ import annotations

from dataclasses import dataclass

from rtqa.protocol.model import Protocol
from rtqa.protocol.prior_inputs import PriorInput

MODEL = "LQ"
#: α/β (Gy) used when neither the protocol nor the command line gives one: the planning
#: convention for late-reacting normal tissue (see the protocol files' sources).
FALLBACK_ALPHA_BETA_GY = 3.0
FALLBACK_ALPHA_BETA_SOURCE = (
    "convention for late-reacting normal tissue (no alpha/beta in the protocol; set one with "
    "--alpha-beta or in prior_radiation.alpha_beta)"
)


@dataclass(frozen=True)
class AlphaBeta:
    value: float
    source: str
    confidence: str | None

    @property
    def text(self) -> str:
        return f"{MODEL}, alpha/beta {self.value:g} Gy ({self.source})"


def alpha_beta(organ_name: str, inp: PriorInput, protocol: Protocol) -> AlphaBeta:
    """The organ's α/β: the organ's own entry, else prior_radiation.alpha_beta (organ, then
    ``default``), else ``--alpha-beta``, else the late-tissue convention (3 Gy), saying which."""
    sv = None
    try:
        sv = protocol.organ(organ_name).alpha_beta
    except KeyError:
        sv = None
    where = "protocol organ alpha_beta"
    pr = protocol.prior_radiation
    if sv is None and pr is not None:
        sv = pr.alpha_beta.get(organ_name)
        where = f"prior_radiation.alpha_beta.{organ_name}"
        if sv is None:
            sv = pr.alpha_beta.get("default")
            where = "prior_radiation.alpha_beta.default"
    if sv is not None:
        source = str(sv.source) if sv.source is not None else where
        conf = sv.confidence.value if sv.confidence is not None else None
        return AlphaBeta(float(sv.value), source, conf)  # type: ignore[arg-type]
    if inp.alpha_beta is not None:
        return AlphaBeta(float(inp.alpha_beta), "--alpha-beta", None)
    return AlphaBeta(FALLBACK_ALPHA_BETA_GY, FALLBACK_ALPHA_BETA_SOURCE, None)


def export_alpha_beta(inp: PriorInput, protocol: Protocol) -> tuple[float, str]:
    """α/β of the cumulative grid: ``--alpha-beta``, else that of the first organ the protocol
    judges cumulatively, else the protocol's default, else the late-tissue convention."""
    if inp.alpha_beta is not None:
        return float(inp.alpha_beta), "--alpha-beta"
    pr = protocol.prior_radiation
    if pr is not None:
        for organ in pr.cumulative_eqd2:
            ab = alpha_beta(organ, inp, protocol)
            return ab.value, f"alpha/beta of {organ}: {ab.source}"
        if "default" in pr.alpha_beta:
            sv = pr.alpha_beta["default"]
            return float(sv.value), f"protocol default: {sv.source}"  # type: ignore[arg-type]
    return FALLBACK_ALPHA_BETA_GY, FALLBACK_ALPHA_BETA_SOURCE
