"""Findings for protocol structures without a usable match: ambiguous, required and not found,
optional without a usable contour, optional and not contoured, no target at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rtqa.model import TARGET_TYPES, Finding, Level, Roi, Status
from rtqa.protocol.matching import MatchKind, RoiMatch
from rtqa.protocol.model import Limit, Organ, Protocol


def unmatched_organ_finding(
    organ: Organ,
    m: RoiMatch,
    *,
    required: bool,
    limits: Sequence[Limit],
    sites: tuple[str, ...],
    ss_rois: Mapping[str, Roi],
    matched_names: set[str],
    ref_fractions: int | None,
    src: str | None,
    conf: str | None,
) -> Finding | None:
    """The finding for ``organ`` when its match ``m`` holds no ROI or an empty one: ambiguous,
    required and not found (naming the candidates among ``ss_rois`` not matched elsewhere), or
    optional without a usable contour; ``None`` for an optional organ not contoured."""
    if m.kind is MatchKind.AMBIGUOUS:
        return Finding(
            group="organ",
            rule="match",
            status=Status.NOT_EVALUABLE,
            message=m.describe(),
            roi=None,
            match="ambiguous: " + ", ".join(m.competitors),
            source=src,
            confidence=conf,
        )
    if required:
        why = m.describe()
        if m.roi is not None:
            why = f"'{m.roi.name}' has no closed contour"
        reqd = (
            "required by the protocol"
            if organ.required
            else "required for site " + ", ".join(s for s in sites if s in organ.required_for_sites)
        )
        candidates = ", ".join(
            f"'{r.name}'"
            for r in ss_rois.values()
            if r.interpreted_type.upper() not in (*TARGET_TYPES, "EXTERNAL")
            and r.name not in matched_names
        )
        return Finding(
            group="organ",
            rule="match",
            status=Status.NOT_EVALUABLE,
            message=f"{organ.name} ({reqd}) not found: {why}; candidates in the "
            f"structure set: {candidates or 'none'}; map one with "
            f"--map {organ.name}=NAME",
            roi=organ.name,
            match="no match",
            source=src,
            confidence=conf,
        )
    if m.roi is not None and limits:
        return _unusable_optional(organ.name, m.roi, ref_fractions, src, conf)
    return None


def _unusable_optional(
    organ: str, roi: Roi, fractions: int, src: str | None, conf: str | None
) -> Finding:
    """An optional organ whose matched ROI holds no usable closed contour (empty, degenerate,
    non-axial or in another frame): its limits cannot be judged, which is not the same as the
    organ not being contoured at all."""
    why = "; ".join(n.message for n in roi.notes if n.level is not Level.INFO)
    return Finding(
        group="organ",
        rule="match",
        status=Status.NOT_EVALUABLE,
        message=f"{organ} (optional) matches '{roi.name}', which has no usable closed contour"
        f"{': ' + why if why else ''}; its limits for {fractions} fractions are not judged",
        roi=roi.name,
        match="no usable contour",
        source=src,
        confidence=conf,
    )


def optional_organs_finding(protocol: Protocol, missing_optional: list[str]) -> Finding:
    """The one info finding naming the optional organs not contoured."""
    return Finding(
        group="organ",
        rule="optional_organs",
        status=Status.INFO,
        message="not contoured (optional for this plan): " + ", ".join(missing_optional),
        source=protocol.id,
    )


def no_target_finding(protocol: Protocol) -> Finding:
    """No target of the protocol found in any plan of the course."""
    looked = ", ".join(t.roi.label for t in protocol.targets)
    return Finding(
        group="target",
        rule="targets",
        status=Status.NOT_EVALUABLE,
        message=f"no target found (looked for {looked} by interpreted type or name); "
        f"map one with --map {protocol.targets[0].id if protocol.targets else 'PTV'}=NAME",
        source=protocol.id,
    )


__all__ = ["no_target_finding", "optional_organs_finding", "unmatched_organ_finding"]
