"""JSON report: content, finite numbers, and validation against the committed schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from test_report_common import EVIL, LONG_SOURCE, make_error, make_result

import rtqa.report
from rtqa.report.common import ordered_findings
from rtqa.report.jsonfmt import SCHEMA_VERSION, load_schema, render_json

SCHEMA_PATH = Path(rtqa.report.__file__).parent / "schema" / "check_result.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_schema_is_draft_2020_12_and_packaged():
    schema = load_schema()
    assert schema == json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["schemaVersion"]["const"] == SCHEMA_VERSION


def test_single_course_is_valid_and_complete(validator):
    result = make_result()
    text = render_json(result)
    doc = json.loads(text)
    validator.validate(doc)
    assert doc["schema"] == SCHEMA_VERSION
    assert doc["course_id"] == "C1+C2"
    assert doc["status"] == doc["verdict"] == "major"
    assert doc["exit_code"] == 1
    assert doc["patient_id"] == "SYN-0001"
    assert doc["protocol"] == {
        "id": "NRG-BR002",
        "version": "2024.1",
        "title": "Metastasis-directed SBRT (reconstruction from NRG-BR001 and TG-101)",
        "source": "constraints/nrg_br002.yaml",
        "default": True,
    }
    assert doc["created"] == "2024-05-06T07:08:09+02:00"
    assert doc["rtqa_version"] == "0.1.0"
    assert doc["counts"] == {"major": 7, "minor": 6, "not_evaluable": 6, "pass": 6, "info": 7}
    assert doc["input_hashes"] == result.input_hashes
    assert doc["grouping"] == result.grouping
    assert doc["notes"][1] == {
        "level": "info",
        "message": "ROIVolume absent",
        "path": "RS.C1.dcm",
        "attribute": "ROIVolume (3006,002C)",
    }
    assert [p["prior"] for p in doc["plans"]] == [False, False, True]
    assert doc["plans"][0]["prescription_gy"] == 30.0
    assert "curves" not in doc


def test_findings_in_report_order_with_every_field(validator):
    result = make_result()
    doc = json.loads(render_json(result))
    expected = ordered_findings(result.findings)
    assert len(doc["findings"]) == 32
    assert [f["rule"] for f in doc["findings"]] == [f.rule for f in expected]
    evil = next(f for f in doc["findings"] if f["rule"] == "organ-evil")
    assert evil == {
        "group": "organ",
        "rule": "organ-evil",
        "status": "major",
        "message": "D0.03cc 30.5 Gy above 21.9 Gy",
        "case_id": "C2",
        "roi": EVIL,
        "match": "pattern cord*",
        "metric": "D0.03cc[Gy]",
        "value": 30.5,
        "value_range": None,
        "unit": "Gy",
        "limits": {"per_protocol": "<= 21.9", "acceptable": "<= 24"},
        "margin": -8.6,
        "source": LONG_SOURCE,
        "confidence": "unverified",
    }
    first = doc["findings"][0]
    assert (first["group"], first["status"]) == ("plan", "major")


def test_non_finite_numbers_become_null():
    text = render_json(make_result(), include_curves=True)
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    nan = next(f for f in doc["findings"] if f["rule"] == "target-nan")
    assert nan["value"] is None and nan["margin"] is None
    assert doc["curves"]["PTV_30"] == {
        "dose_gy": [0.0, 10.0, 30.0, None],
        "volume_pct": [100.0, 99.5, 95.0, 0.0],
    }


def test_several_courses_and_an_error_are_valid(validator):
    doc = json.loads(
        render_json([make_result(), make_error(), make_result(default_protocol=False)])
    )
    validator.validate(doc)
    assert set(doc) == {"schema", "results"}
    statuses = [r["status"] for r in doc["results"]]
    assert statuses == ["major", "error", "major"]
    error = doc["results"][1]
    assert error["error"].startswith("RD.C9.dcm: DoseGridScaling missing")
    assert error["exit_code"] == 3
    assert "findings" not in error and "verdict" not in error
    assert [r.get("protocol", {}).get("default") for r in doc["results"]] == [True, None, False]
    # a lone error document is valid too
    validator.validate(json.loads(render_json(make_error())))


def test_curves_on_request_are_valid(validator):
    validator.validate(json.loads(render_json(make_result(), include_curves=True)))


def _mutilations():
    def drop_status(d):
        del d["findings"][0]["status"]

    def bad_status(d):
        d["findings"][0]["status"] = "fail"

    def string_value(d):
        d["findings"][0]["value"] = "NaN"

    def extra_field(d):
        d["findings"][0]["colour"] = "red"

    def no_default(d):
        del d["protocol"]["default"]

    def no_schema(d):
        del d["schema"]

    def wrong_schema(d):
        d["schema"] = "rtqa-check-result/0"

    def bad_created(d):
        d["created"] = "06/05/2024"

    def bad_hash(d):
        d["input_hashes"]["RP.C1.dcm"] = "xyz"

    def error_without_message(d):
        d["status"] = "error"

    def verdict_info(d):
        d["verdict"] = "info"

    def bad_exit(d):
        d["exit_code"] = 7

    def no_value_range(d):
        del d["findings"][0]["value_range"]

    def one_ended_range(d):
        d["findings"][0]["value_range"] = {"low": 1.0}

    def range_as_list(d):
        d["findings"][0]["value_range"] = [1.0, 2.0]

    return [
        drop_status,
        bad_status,
        string_value,
        extra_field,
        no_default,
        no_schema,
        wrong_schema,
        bad_created,
        bad_hash,
        error_without_message,
        verdict_info,
        bad_exit,
        no_value_range,
        one_ended_range,
        range_as_list,
    ]


@pytest.mark.parametrize("mutilate", _mutilations(), ids=lambda f: f.__name__)
def test_mutilated_document_fails(validator, mutilate):
    doc = json.loads(render_json(make_result()))
    validator.validate(doc)
    broken = copy.deepcopy(doc)
    mutilate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_mutilated_error_entry_fails(validator):
    doc = json.loads(render_json([make_error()]))
    doc["results"][0]["findings"] = []
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)
    doc = json.loads(render_json([make_error()]))
    doc["results"][0]["exit_code"] = 0  # an error never exits 0
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)


def test_the_planning_system_is_named_where_the_plan_gives_it(validator):
    from dataclasses import replace

    from rtqa.model import Plan

    def plan(maker: str, version: str) -> Plan:
        return Plan("", "1.2", "P", manufacturer=maker, software_versions=version)

    assert plan("Vendor TPS", "16.1").planning_system == "Vendor TPS 16.1"
    assert plan("Vendor", "Vendor 16.1").planning_system == "Vendor 16.1"  # said once
    assert plan("", "").planning_system is None
    result = make_result()
    result.plans[0] = replace(result.plans[0], planning_system="Vendor TPS 16.1")
    doc = json.loads(render_json(result))
    validator.validate(doc)
    assert [p["planning_system"] for p in doc["plans"]] == ["Vendor TPS 16.1", None, None]
