"""Plan-quality rules: conformity and gradient indices of each target on its own plan's dose.

Prescriptions Gy, target volumes cc; without a body outline the isodose volumes are taken over
the whole dose grid (said in the finding).
"""

from __future__ import annotations

import math

from rtqa.model import Finding, Status, body_outline
from rtqa.protocol.case_work import CaseWork
from rtqa.protocol.judging import judge_limit
from rtqa.protocol.model import Limit, OutsideTable, Protocol
from rtqa.protocol.organ_extent import incomplete_contours, unjudged_part


def quality_findings(protocol: Protocol, w: CaseWork, ctx, target_occ: dict, cid) -> list[Finding]:
    """Plan-quality findings of the targets of ``w`` (occupancies by ROI name in ``target_occ``),
    the body outline's occupancy kept in ``ctx``."""
    pq = protocol.plan_quality
    assert w.site is not None
    if pq is None or not target_occ:
        return []
    if pq.sites and not set(pq.sites) & set(w.site.sites):
        return []
    from rtqa.dvh import MetricUndefined, plan_quality

    ss = w.case.structure_set
    dose = w.case.dose
    assert ss is not None and dose is not None
    body_roi = body_outline(ss.rois)
    body = None
    no_body = "no body outline"
    out: list[Finding] = []
    if body_roi is not None:
        from rtqa.geometry import occupancy

        try:
            body = occupancy(body_roi, dose)
        except ValueError as exc:  # an outline without volume: said, never a crash
            no_body = f"body outline '{body_roi.name}' has no volume ({exc})"
        else:
            ctx.body = body_roi.name
            ctx.rois.setdefault(body_roi.name, body_roi)
            ctx.occupancies.setdefault(body_roi.name, body)
    for name, occ in target_occ.items():
        rx = w.rxs[name]
        other_names = [n for n, o in target_occ.items() if n != name and o is not None]
        others = [target_occ[n] for n in other_names]
        other_rx = [w.rxs[n].total_gy if n in w.rxs else None for n in other_names]
        sd = ctx.dvhs[name]
        how = f"{ctx.matches.get(name, '')}; {rx.describe()}"
        if body is None:
            how += f"; {no_body}: isodose volumes over the whole dose grid"
        values = None
        why = ""
        # the target, the other targets and the body outline: contours not defining all of them
        incomplete = incomplete_contours(
            *(ctx.rois[n] for n in (name, *other_names) if n in ctx.rois),
            *((body_roi,) if body is not None and body_roi is not None else ()),
        )
        if rx.total_gy is None:
            why = rx.describe()
        elif occ is None:
            why = "no occupancy"
        else:
            try:
                values = plan_quality(
                    occ, dose, rx.total_gy, body=body, other_targets=others, other_rx_gy=other_rx
                )
            except (MetricUndefined, ValueError) as exc:
                why = str(exc)
        for rule in pq.rules:
            base = dict(
                group="quality",
                rule=rule.metric.canonical,
                roi=name,
                match=how,
                metric=rule.metric.canonical,
                unit=rule.metric.unit,
                source=str(rule.source),
                confidence=rule.confidence.value,
                case_id=cid,
            )
            if values is None:
                out.append(Finding(status=Status.NOT_EVALUABLE, message=why, **base))
                continue
            try:
                bands, conf = rule.bands_at(sd.volume_cc)
            except OutsideTable as exc:
                v = values.get(rule.metric.canonical)
                out.append(
                    Finding(
                        status=Status.INFO,
                        message=f"outside the tabulated range: {exc}; not extrapolated",
                        value=None if v is None or not math.isfinite(v) else float(v),
                        **base,
                    )
                )
                continue
            lim = Limit(rule.metric, bands, rule.source, conf, rule.line, note=rule.note)
            f = judge_limit(
                lim,
                None,
                group="quality",
                roi=name,
                match=how,
                case_id=cid,
                quality=values,
                confidence=conf.value,
            )
            if rule.rows:
                parts = (f"PTV {sd.volume_cc:.4g} cc", rule.interpolation_note(sd.volume_cc))
                f.message = "; ".join(x for x in (*parts, f.message) if x)
            out.append(unjudged_part(f, lim, incomplete) if incomplete else f)
    return out


__all__ = ["quality_findings"]
