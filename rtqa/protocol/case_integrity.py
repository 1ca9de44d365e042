"""Do the parts of a case belong together? Integrity findings that withhold the verdicts.

* ``dose_frame``: the plan's dose and its structure set lie in different frames of reference and
  no registration moves the dose exactly into the structures' frame
  (:mod:`rtqa.dicom.dose_frame`): the DVH numbers would be those of a dose shifted against the
  contours by an unknown amount.
* ``patient_identity``: the plan, structure set, dose and treatment records do not all name one
  PatientID: the dose or the records may be another patient's.
* ``dose_type``: a PHYSICAL dose of a plan with proton or ion beams (its limits are
  RBE-weighted); information only for an RBE-weighted (EFFECTIVE) dose, whose numbers are
  Gy(RBE); ``prior_dose_type`` when a prior course's dose is of another DoseType than the
  current one (never summed: the prior figures are withheld).
* ``dose_source``: a dose written by a converter (:mod:`rtqa.dicom.converters`) rather than
  exported by the planning system. Such converters have written doses flipped
  superior-inferior for prone patients: not evaluable unless the patient is known to lie head
  first supine (PatientPosition HFS in the dose and every setup of the plan); information then.
  ``prior_dose_source`` judges a prior course's dose so, withholding the prior figures.

Where they apply they are ``not_evaluable`` (absent otherwise); as trust rules
(:mod:`rtqa.protocol.dose_trust`) they make every judgement drawn from the dose, and for
``patient_identity`` also the plan's own rules (fractions, schedule, delivery),
``not_evaluable``: a misplaced or foreign input must not read as a verdict, either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from rtqa.dicom.dose_frame import why_not_aligned
from rtqa.model import Case, DoseGrid, Finding, Status

SOURCE = "DICOM-RT input"


def frame_finding(case: Case) -> Finding | None:
    """``dose_frame`` of ``case``: not evaluable when its dose cannot be laid on its contours."""
    if case.dose is None or case.structure_set is None:
        return None
    frame = case.structure_set.frame_of_reference_uid
    why = why_not_aligned(case.dose, frame, case.registrations)
    if why is None:
        return None
    return Finding(
        group="integrity",
        rule="dose_frame",
        status=Status.NOT_EVALUABLE,
        message=why,
        source=SOURCE,
        case_id=case.case_id,
    )


def patient_finding(case: Case) -> Finding | None:
    """``patient_identity`` of ``case``: not evaluable when its parts name different patients."""
    ids = case.patient_ids
    if len(set(ids.values())) < 2:
        return None
    named = "; ".join(f"{part} '{pid}'" for part, pid in ids.items())
    return Finding(
        group="integrity",
        rule="patient_identity",
        status=Status.NOT_EVALUABLE,
        message=f"the parts of this case name different patients ({named}): the dose or the "
        "treatment records may be another patient's",
        source=SOURCE,
        case_id=case.case_id,
    )


def dose_type_finding(case: Case) -> Finding | None:
    """``dose_type`` of ``case``: information for an RBE-weighted dose (DoseType EFFECTIVE: its
    doses are Gy(RBE)); not evaluable for a PHYSICAL dose of a plan with proton or ion beams
    (limits for such plans are RBE-weighted, and rtqa applies no RBE)."""
    dose = case.dose
    if dose is None:
        return None
    base = dict(group="integrity", rule="dose_type", source=SOURCE, case_id=case.case_id)
    if dose.dose_type == "EFFECTIVE":
        return Finding(
            status=Status.INFO,
            message="the dose is RBE-weighted (DoseType EFFECTIVE): its doses are Gy(RBE), "
            "judged against the protocol's limits as given",
            **base,
        )
    kinds = sorted(
        {
            b.radiation_type.upper()
            for b in (case.plan.beams if case.plan is not None else ())
            if b.delivery_type.upper() == "TREATMENT" and b.radiation_type.upper() in PARTICLE_TYPES
        }
    )
    if not kinds:
        return None
    return Finding(
        status=Status.NOT_EVALUABLE,
        message=f"a {dose.dose_type} dose of a plan with {'/'.join(kinds)} beams: limits for "
        "such plans are RBE-weighted (Gy(RBE)) and rtqa applies no RBE; export the RBE-weighted "
        "dose (DoseType EFFECTIVE)",
        **base,
    )


def prior_dose_type_findings(priors: Sequence[Case], current: DoseGrid) -> list[Finding]:
    """``prior_dose_type`` (group ``prior``): not evaluable for each prior course whose dose is
    not of the current dose's DoseType (an RBE-weighted and a physical dose are never summed:
    every prior and cumulative figure is withheld)."""
    out = []
    for case in priors:
        if case.dose is None or case.dose.dose_type == current.dose_type:
            continue
        out.append(
            Finding(
                group="prior",
                rule="prior_dose_type",
                status=Status.NOT_EVALUABLE,
                message=f"prior course '{case.label}' has a {case.dose.dose_type} dose, the "
                f"current course a {current.dose_type} one (DoseType): an RBE-weighted and a "
                "physical dose are never summed",
                source=SOURCE,
                case_id=case.case_id,
            )
        )
    return out


def dose_source_finding(case: Case) -> Finding | None:
    """``dose_source`` of ``case``: a dose written by a converter is not evaluable unless every
    PatientPosition known (the dose's, the plan's setups') is HFS, and information then."""
    judged = _converted_dose(case, "the dose")
    if judged is None:
        return None
    status, message = judged
    return Finding(
        group="integrity",
        rule="dose_source",
        status=status,
        message=message,
        source=SOURCE,
        case_id=case.case_id,
    )


def prior_dose_source_findings(priors: Sequence[Case]) -> list[Finding]:
    """``prior_dose_source`` (group ``prior``) of each prior course whose dose was written by a
    converter, judged as :func:`dose_source_finding` (not evaluable: every prior and cumulative
    figure is withheld)."""
    out = []
    for case in priors:
        judged = _converted_dose(case, f"the dose of prior course '{case.label}'")
        if judged is not None:
            out.append(
                Finding(
                    group="prior",
                    rule="prior_dose_source",
                    status=judged[0],
                    message=judged[1],
                    source=SOURCE,
                    case_id=case.case_id,
                )
            )
    return out


def _converted_dose(case: Case, what: str) -> tuple[Status, str] | None:
    """(status, message) of a case whose dose was written by a converter; None otherwise."""
    dose = case.dose
    if dose is None or not dose.converter:
        return None
    positions = {p for p in (dose.patient_position or "",) if p}
    positions |= set(case.plan.patient_positions if case.plan is not None else ())
    head = f"{what} was written by {dose.converter}, not exported by the planning system"
    if positions == {"HFS"}:
        return Status.INFO, (
            f"{head}; the patient lies head first supine (HFS), the orientation such converters "
            "handle"
        )
    lying = (
        f"patient position {'/'.join(sorted(positions))}"
        if positions
        else "the patient position is not stated (no PatientPosition in the dose or the plan's "
        "setups)"
    )
    return Status.NOT_EVALUABLE, (
        f"{head}, and {lying}: such converters have written doses flipped superior-inferior "
        "for other than head-first supine patients; export the dose from the planning system"
    )


#: Treatment beam radiation types (RadiationType) whose dose limits are RBE-weighted.
PARTICLE_TYPES = ("PROTON", "ION", "NEUTRON")


def integrity_findings(case: Case) -> list[Finding]:
    """The integrity findings of this module that apply to ``case``."""
    found = (
        frame_finding(case),
        patient_finding(case),
        dose_type_finding(case),
        dose_source_finding(case),
    )
    return [f for f in found if f is not None]
