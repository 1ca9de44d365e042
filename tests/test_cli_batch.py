"""``rtqa batch`` from the command line: sample data, reruns, usage errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from click.testing import CliRunner

from rtqa.cli import cli

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
COURSES = {
    "BONE1FX",
    "LUNG5FX",
    "PRIOREXCEEDS",
    "SPINE3FX",
    "SPINENOCORD",
    "SPINEOVERRUN",
    "SPINEPRIOR",
}


def test_sample_data_result_per_course_and_rerun_recomputes_nothing(tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(cli, ["batch", str(SAMPLE), "--out", str(out), "--format-extra", "junit"])
    # spine_3fx_overrun deviates (fractionation span) under the default protocol: exit 1
    assert first.exit_code == 1, first.output
    results = sorted((out / "results").glob("*.json"))
    assert len(results) == len(COURSES)
    docs = {json.loads(p.read_text())["course_id"]: json.loads(p.read_text()) for p in results}
    assert set(docs) == COURSES
    with open(out / "summary.csv", newline="") as fh:
        rows = {r["course_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == COURSES
    assert rows["SPINE3FX"]["status"] == "pass" and rows["SPINE3FX"]["fractions"] == "3"
    assert float(rows["SPINE3FX"]["prescription_gy"]) == 30.0
    assert rows["SPINEOVERRUN"]["status"] == "major"
    assert rows["SPINENOCORD"]["status"] == "not_evaluable"
    for name, row in rows.items():  # counts agree with the result documents
        assert int(row["major"]) == docs[name]["counts"]["major"]
        assert int(row["pass"]) == docs[name]["counts"]["pass"]
    assert (out / "junit.xml").read_text().count("<testsuite ") == len(COURSES)

    mtimes = {p: p.stat().st_mtime_ns for p in results}
    second = runner.invoke(cli, ["batch", str(SAMPLE), "--out", str(out)])
    assert second.exit_code == 1
    assert f"{len(COURSES)} already done (skipped), 0 to check" in second.output
    assert {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == mtimes
    summary = json.loads((out / "summary.json").read_text())
    assert summary["computed"] == 0 and summary["skipped"] == len(COURSES)
    assert len(summary["rows"]) == len(COURSES)


def test_usage_errors_exit_2(tmp_path):
    runner = CliRunner()
    args = ["batch", str(SAMPLE), "--out", str(tmp_path / "o")]
    r = runner.invoke(cli, [*args, "--pseudonymize"])
    assert r.exit_code == 2 and "--key-file" in r.output
    r = runner.invoke(cli, [*args, "--scheduler", "tcp://127.0.0.1:1", "--local-cluster"])
    assert r.exit_code == 2 and "exclude each other" in r.output
    r = runner.invoke(cli, [*args, "--protocol", "no_such_protocol"])
    assert r.exit_code == 2 and "unknown protocol" in r.output
    short = tmp_path / "key"
    short.write_bytes(b"short")
    r = runner.invoke(cli, [*args, "--pseudonymize", "--key-file", str(short)])
    assert r.exit_code == 2 and "at least 16" in r.output
    r = runner.invoke(cli, [*args, "--format-extra", "pdf"])
    assert r.exit_code == 2 and "--format-extra" in r.output


def test_missing_dask_is_a_clear_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    r = CliRunner().invoke(
        cli, ["batch", str(SAMPLE / "bone_1fx"), "--out", str(tmp_path), "--local-cluster"]
    )
    assert r.exit_code == 2
    assert "pip install 'rtqa[dask]'" in r.output
