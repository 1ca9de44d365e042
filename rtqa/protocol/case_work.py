"""Each plan's working state in a course evaluation: its structures matched to the protocol, the
targets it owns, their prescriptions (Gy) and its treatment site."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rtqa.model import Case
from rtqa.protocol import plan_rules
from rtqa.protocol.evaluation import Settings
from rtqa.protocol.matching import ProtocolMatch, RoiMatch, match_protocol
from rtqa.protocol.model import Protocol
from rtqa.protocol.prescription import TargetRx, target_prescription


@dataclass
class CaseWork:
    """One plan of the course: its match, its own targets (rule id, match), their Rx by ROI
    name, its site and the texts the site was chosen from."""

    case: Case
    match: ProtocolMatch | None = None
    targets: list[tuple[str, RoiMatch]] = field(default_factory=list)  # (rule id, match)
    rxs: dict[str, TargetRx] = field(default_factory=dict)
    site: plan_rules.SiteChoice | None = None
    texts: list[str] = field(default_factory=list)


def match_cases(protocol: Protocol, usable: list[CaseWork], st: Settings) -> None:
    """Fill in each plan's match, own targets, prescriptions, texts and site. A target ROI of a
    structure set several plans share belongs to a plan whose prescription references it, else
    to the first plan that matched it."""
    owner: dict[tuple[str, int], str] = {}
    for w in usable:
        ss = w.case.structure_set
        assert ss is not None
        w.match = match_protocol(protocol, ss.rois, st.mapping)
        plan = w.case.plan
        referenced = {p.roi_number for p in (plan.prescriptions if plan else ()) if p.roi_number}
        for ms in w.match.targets.values():
            for m in ms:
                if m.roi is None:
                    continue
                key = (ss.sop_instance_uid, m.roi.number)
                if m.roi.number in referenced:
                    owner[key] = w.case.case_id
                else:
                    owner.setdefault(key, w.case.case_id)
    for w in usable:
        ss = w.case.structure_set
        assert ss is not None and w.match is not None
        seen = set()
        for rule_id, ms in w.match.targets.items():
            for m in ms:
                if m.roi is None or (rule_id, m.roi.name) in seen:
                    continue
                if owner.get((ss.sop_instance_uid, m.roi.number)) != w.case.case_id:
                    continue
                seen.add((rule_id, m.roi.name))
                w.targets.append((rule_id, m))
    _qualify_shared_target_names(usable)
    for w in usable:
        names = sorted({m.roi.name for _, m in w.targets if m.roi is not None})
        by_name = {m.roi.name: m for _, m in w.targets if m.roi is not None}
        for name in names:
            m = by_name[name]
            w.rxs[name] = target_prescription(
                m.roi, w.case.plan, st.rx, single_target=len(names) == 1, copies=m.copies
            )
        plan = w.case.plan
        w.texts = [
            t
            for t in (
                (plan.treatment_site, plan.label, plan.name, plan.description) if plan else ()
            )
            if t
        ] + names
        first_rx = next((r.total_gy for r in w.rxs.values() if r.total_gy is not None), None)
        fractions = plan.fractions_planned if plan else None
        w.site = plan_rules.choose_site(protocol, w.texts, first_rx, fractions, st.site)


def _qualify_shared_target_names(usable: list[CaseWork]) -> None:
    """Targets of different plans that share a name are called ``'name [plan]'``: each is
    judged on its own plan's dose, and everything keyed by a target's name (its DVH, its
    prescription) stays apart."""
    plans_of: dict[str, set[str]] = {}
    for w in usable:
        for _, m in w.targets:
            assert m.roi is not None
            plans_of.setdefault(m.roi.name, set()).add(w.case.case_id)
    shared = {name for name, plans in plans_of.items() if len(plans) > 1}
    if not shared:
        return
    for w in usable:
        w.targets = [
            (rule_id, _qualified(m, w.case.case_id) if m.roi.name in shared else m)  # type: ignore[union-attr]
            for rule_id, m in w.targets
        ]


def _qualified(m: RoiMatch, case_id: str) -> RoiMatch:
    assert m.roi is not None
    return replace(m, roi=replace(m.roi, name=f"{m.roi.name} [{case_id}]"))


def judged_roi_numbers(usable: list[CaseWork], w: CaseWork) -> set[int]:
    """Numbers of the ROIs of ``w``'s structure set judged as targets, by ``w`` or by another
    plan sharing that structure set (a target belongs to one plan, :func:`match_cases`), with
    the identical re-import copies judged through them."""
    ss = w.case.structure_set
    uid = ss.sop_instance_uid if ss is not None else None
    return {
        number
        for o in usable
        if o.case.structure_set is not None and o.case.structure_set.sop_instance_uid == uid
        for _, m in o.targets
        if m.roi is not None
        for number in (m.roi.number, *m.copies)
    }


__all__ = ["CaseWork", "judged_roi_numbers", "match_cases"]
