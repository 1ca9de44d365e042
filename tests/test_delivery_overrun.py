"""More fractions delivered than planned (rule ``fractions_delivered``): real RT Plan and RT
Beams Treatment Record files, written and read back, then judged.

The plan has two treatment arcs (250 and 300 MU per fraction, 550 MU in all) over three
fractions. A record of fraction 4 was passed without a word (33 % more dose than planned).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import generate_uid

from rtqa.cli import cli
from rtqa.dicom.common import make_uid
from rtqa.dicom.plan import read_plan
from rtqa.dicom.records import read_treatment_record
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.plan import write_plan
from rtqa.dicom.write.records import write_treatment_record
from rtqa.model import (
    Beam,
    DeliveredBeam,
    FractionGroup,
    Plan,
    ReferencedBeam,
    Status,
    TreatmentRecord,
)
from rtqa.protocol.delivery import delivery_findings, fraction_deliveries

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
HEADER = Header("RTQA-OVR", "Phantom^Overrun", make_uid("ovr-study"), datetime(2024, 3, 1, 9, 0))
PLAN_UID = make_uid("ovr-plan")
DAY1 = datetime(2024, 3, 4, 9, 0)
ARC1, ARC2, BOOST = 250.0, 300.0, 100.0
SOURCE = "RT Beams Treatment Record against RT Plan"


def plan_file(tmp_path: Path, groups: tuple[FractionGroup, ...] | None = None) -> Plan:
    plan = Plan(
        path="",
        sop_instance_uid=PLAN_UID,
        label="LUNG_OVR",
        approval_status="APPROVED",
        beams=(Beam(1, "ARC1"), Beam(2, "ARC2"), Beam(4, "BOOST")),
        fraction_groups=groups
        or (FractionGroup(1, 3, (ReferencedBeam(1, ARC1), ReferencedBeam(2, ARC2))),),
    )
    path = tmp_path / "RP.LUNG_OVR.dcm"
    write_plan(plan, path, HEADER, series_instance_uid=make_uid("ovr-plan-series"))
    return read_plan(str(path))


def record_file(
    tmp_path: Path,
    name: str,
    fraction: int | None,
    beams,
    when: datetime | None = None,
    group: int | None = None,
) -> TreatmentRecord:
    when = when or DAY1 + timedelta(days=2 * ((fraction or 1) - 1))
    rec = TreatmentRecord(
        path="",
        sop_instance_uid=make_uid("ovr-record", name),
        referenced_plan_uid=PLAN_UID,
        fraction_number=fraction,
        delivered_at=when,
        beams=tuple(beams),
        fraction_group=group,
    )
    path = tmp_path / name
    write_treatment_record(rec, path, HEADER, series_instance_uid=make_uid("ovr-record-series"))
    return read_treatment_record(str(path))


def full(arc1: float = ARC1, status: str = "NORMAL") -> list[DeliveredBeam]:
    return [DeliveredBeam(1, arc1, ARC1, status), DeliveredBeam(2, ARC2, ARC2, "NORMAL")]


def course(tmp_path: Path, n: int = 3) -> list[TreatmentRecord]:
    return [record_file(tmp_path, f"RT.fx{k}.dcm", k, full()) for k in range(1, n + 1)]


def by_rule(findings, rule: str):
    return [f for f in findings if f.rule == rule]


def test_a_fourth_fraction_of_a_three_fraction_plan_is_a_major_deviation(tmp_path):
    plan = plan_file(tmp_path)
    extra = record_file(tmp_path, "RT.fx4.dcm", 4, full(), when=datetime(2024, 3, 11, 9, 0))
    findings = delivery_findings(plan, [*course(tmp_path), extra], "C")
    (f,) = by_rule(findings, "fractions_delivered")
    assert f.status is Status.MAJOR and f.group == "plan" and f.case_id == "C"
    assert f.message == (
        "4 fractions delivered, plan 'LUNG_OVR' plans 3: beyond the plan fraction 4 on "
        "2024-03-11 (RT.fx4.dcm), 550 MU of treatment beams delivered (550 MU planned per "
        "fraction)"
    )
    assert (f.value, f.unit, f.margin) == (4.0, "fractions", -1.0)
    assert f.limits == {"limit": "<= 3 fractions"} and f.source == SOURCE
    # each fraction's MU agree with the plan: that is still said, and is no excuse
    (mu,) = by_rule(findings, "delivered_mu")
    assert mu.status is Status.PASS and "4 fractions" in mu.message


def test_fractions_beyond_the_plan_are_each_named_with_their_mu(tmp_path):
    """Fractions 4 (partial: ARC1 stopped at 100 MU) and 5 on two days: both named."""
    plan = plan_file(tmp_path)
    fx4 = record_file(tmp_path, "RT.fx4.dcm", 4, full(arc1=100.0, status="OPERATOR"))
    fx5 = record_file(tmp_path, "RT.fx5.dcm", 5, full())
    (f,) = by_rule(
        delivery_findings(plan, [*course(tmp_path), fx4, fx5], "C"), "fractions_delivered"
    )
    assert f.status is Status.MAJOR
    assert f.message == (
        "5 fractions delivered, plan 'LUNG_OVR' plans 3: beyond the plan fraction 4 on "
        "2024-03-10 (RT.fx4.dcm), 400 MU of treatment beams delivered (550 MU planned per "
        "fraction); fraction 5 on 2024-03-12 (RT.fx5.dcm), 550 MU of treatment beams delivered "
        "(550 MU planned per fraction)"
    )
    assert (f.value, f.margin) == (5.0, -2.0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_more_fractions_than_planned_gives_no_finding(tmp_path, n):
    """Fewer than planned is the completion rule's 'course not finished'; as many is fine."""
    plan = plan_file(tmp_path)
    assert by_rule(delivery_findings(plan, course(tmp_path, n), "C"), "fractions_delivered") == []


def test_one_fraction_recorded_twice_keeps_its_mu_deviation_and_is_not_a_fourth(tmp_path):
    plan = plan_file(tmp_path)
    again = record_file(tmp_path, "RT.fx3b.dcm", 3, full(), when=datetime(2024, 3, 11, 9, 0))
    findings = delivery_findings(plan, [*course(tmp_path), again], "C")
    assert by_rule(findings, "fractions_delivered") == []
    mu = by_rule(findings, "delivered_mu")
    assert [(f.status, f.value) for f in mu] == [(Status.MINOR, 500.0), (Status.MINOR, 600.0)]


def test_the_count_of_the_fraction_group_delivered_decides(tmp_path):
    """Group 1 (ARC1, ARC2) x 3, group 2 (BOOST) x 2: fraction 3 of group 2 is beyond its 2,
    fraction 3 of group 1 is not."""
    plan = plan_file(
        tmp_path,
        (
            FractionGroup(1, 3, (ReferencedBeam(1, ARC1), ReferencedBeam(2, ARC2))),
            FractionGroup(2, 2, (ReferencedBeam(4, BOOST),)),
        ),
    )
    boost = [DeliveredBeam(4, BOOST, BOOST, "NORMAL")]
    ok = [record_file(tmp_path, "RT.g1fx3.dcm", 3, full(), group=1)]
    assert by_rule(delivery_findings(plan, ok, "C"), "fractions_delivered") == []
    over = [record_file(tmp_path, "RT.g2fx3.dcm", 3, boost, group=2)]
    (f,) = by_rule(delivery_findings(plan, over, "C"), "fractions_delivered")
    assert f.status is Status.MAJOR and f.limits == {"limit": "<= 2 fractions"}
    assert (f.value, f.margin) == (3.0, -1.0)
    assert f.message == (
        "fractions delivered beyond plan 'LUNG_OVR': fraction 3 of fraction group 2 (2 planned) "
        "on 2024-03-08 (RT.g2fx3.dcm), 100 MU of treatment beams delivered (100 MU planned per "
        "fraction)"
    )


def test_records_without_a_fraction_number_past_the_count(tmp_path):
    """Three numbered fractions and an unnumbered record: delivered in full it is a fourth
    fraction (major); ARC1 alone leaves it unknown whether a fourth was delivered."""
    plan = plan_file(tmp_path)
    whole = record_file(tmp_path, "RT.nofx.dcm", None, full(), when=datetime(2024, 3, 11))
    (f,) = by_rule(delivery_findings(plan, [*course(tmp_path), whole], "C"), "fractions_delivered")
    assert f.status is Status.MAJOR and (f.value, f.margin) == (4.0, -1.0)
    assert f.message == (
        "4 fractions delivered in full, plan 'LUNG_OVR' plans 3: records hold 3 numbered "
        "fractions and 1 record without a fraction number (RT.nofx.dcm)"
    )
    part = record_file(tmp_path, "RT.nofx.dcm", None, full()[:1], when=datetime(2024, 3, 11))
    (f,) = by_rule(delivery_findings(plan, [*course(tmp_path), part], "C"), "fractions_delivered")
    assert f.status is Status.NOT_EVALUABLE and f.value is None
    assert f.message == (
        "records hold 3 numbered fractions and 1 record without a fraction number "
        "(RT.nofx.dcm), plan 'LUNG_OVR' plans 3 fractions: whether more fractions than planned "
        "were delivered is unknown (3 delivered in full)"
    )


def spine_with_fourth_fraction(tmp_path: Path) -> Path:
    """spine_3fx (3 x 10 Gy) with its fraction 3 record copied as fraction 4 on 2024-03-11."""
    case = tmp_path / "spine"
    shutil.copytree(SAMPLES / "spine_3fx", case)
    ds = pydicom.dcmread(case / "RT.SPINE3FX.fx3.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.TreatmentDate = "20240311"
    for item in ds.TreatmentSessionBeamSequence:
        item.CurrentFractionNumber = 4
        for cp in item.ControlPointDeliverySequence:
            cp.TreatmentControlPointDate = "20240311"
    ds.save_as(case / "RT.extra.fx4.dcm")
    return case


def test_check_of_spine_3fx_with_a_fourth_fraction_record_exits_1(tmp_path):
    """End to end, the reviewer's case: spine_3fx (3 x 10 Gy, 9 beams of 400 MU) with its
    fraction 3 record copied as fraction 4 on 2024-03-11. It passed (exit 0)."""
    case = spine_with_fourth_fraction(tmp_path)
    result = CliRunner().invoke(cli, ["check", str(case), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "major"
    (f,) = [f for f in doc["findings"] if f["rule"] == "fractions_delivered"]
    assert f["status"] == "major" and f["value"] == 4.0 and f["margin"] == -1.0
    assert f["message"] == (
        "4 fractions delivered, plan 'SPINE3FX' plans 3: beyond the plan fraction 4 on "
        "2024-03-11 (RT.extra.fx4.dcm), 3600 MU of treatment beams delivered (3600 MU planned "
        "per fraction)"
    )


def test_fraction_deliveries_and_info_name_the_fraction_beyond_the_plan(tmp_path):
    """``rtqa info`` listed a fourth fraction of a three-fraction plan like any other; each
    fraction now carries the count planned for its group, the fourth is said to be beyond it,
    and the completion window's text counts it."""
    plan = plan_file(
        tmp_path,
        (
            FractionGroup(1, 3, (ReferencedBeam(1, ARC1), ReferencedBeam(2, ARC2))),
            FractionGroup(2, 2, (ReferencedBeam(4, BOOST),)),
        ),
    )
    boost = [DeliveredBeam(4, BOOST, BOOST, "NORMAL")]
    g1 = record_file(tmp_path, "RT.g1fx3.dcm", 3, full(), group=1)
    g2 = record_file(tmp_path, "RT.g2fx3.dcm", 3, boost, group=2)
    by_group = {f.planned: (f.fraction, f.beyond_plan) for f in fraction_deliveries(plan, [g1])} | {
        f.planned: (f.fraction, f.beyond_plan) for f in fraction_deliveries(plan, [g2])
    }
    assert by_group == {3: (3, False), 2: (3, True)}

    case = spine_with_fourth_fraction(tmp_path)
    info = CliRunner().invoke(cli, ["info", str(case), "--format", "json"])
    (listed,) = json.loads(info.stdout)["cases"]
    assert [
        (f["fraction"], f["planned"], f["beyond_plan"]) for f in listed["fractions_delivered"]
    ] == [(1, 3, False), (2, 3, False), (3, 3, False), (4, 3, True)]
    text = CliRunner().invoke(cli, ["info", str(case)]).stdout
    assert "fraction 4: 2024-03-11, BEYOND the 3 planned" in text
    check = CliRunner().invoke(cli, ["check", str(case), "--format", "json"])
    (window,) = [
        f for f in json.loads(check.stdout)["findings"] if f["rule"] == "completion_window"
    ]
    assert window["message"].startswith("4 fraction(s) delivered (1 beyond the plan) from ")
